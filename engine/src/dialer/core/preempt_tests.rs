//! Emergency preemption and prefix pacing on virtual time: a harness with several
//! campaigns plays the store and one carrier (which counts its channels as it sees them:
//! from the INVITE to our BYE or CANCEL, or its own final answer).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use super::preempt::PREEMPTED;
use super::tests_support::{spec, trunk_cfg};
use super::*;
use crate::dialer::campaign::{CampaignState, Priority};
use crate::dialer::numbers::NumberType;
use crate::dialer::prefix_limit::PrefixLimit;
use crate::model::Outcome;
use crate::sip::endpoint::{CallEnd, CallParams, Hangup};
use crate::sip::sdp::NegotiatedMedia;
use crate::store::{AttemptEnd, CampaignRecord, ContactNext, DueContact};

const STORE_LATENCY: Duration = Duration::from_millis(3);
const SIP_DELAY: Duration = Duration::from_millis(20);

#[derive(Debug)]
enum Pending {
    Store(StoreReply),
    Sip(Event),
    Media(MediaNote),
}

#[derive(Debug, Clone)]
struct Contact {
    number: String,
    due: Option<i64>,
    counted: u32,
}

/// What the carrier does: ring this long, then answer and play this long (`None`: 404).
type Script = fn(&str) -> Option<(Duration, Duration)>;

struct CarrierCall {
    token: CallToken,
    number: String,
    answered: bool,
}

struct Harness {
    core: DialerCore,
    now: Instant,
    t0: Instant,
    campaigns: BTreeMap<i64, (crate::dialer::CampaignSpec, bool)>,
    contacts: BTreeMap<(i64, i64), Contact>,
    /// (campaign, contact, end)
    journal: Vec<(i64, i64, Option<AttemptEnd>)>,
    queue: BTreeMap<(Instant, u64), Pending>,
    seq: u64,
    next_handle: u64,
    carrier: Script,
    live: HashMap<CallHandle, CarrierCall>,
    /// INVITEs at the carrier: (time, number).
    invites: Vec<(Duration, String)>,
    /// Our hang-ups of calls of this campaign, by time.
    hangups: Vec<(Duration, String)>,
    max_channels_seen: usize,
}

fn media() -> NegotiatedMedia {
    NegotiatedMedia {
        remote_rtp: "127.0.0.1:40000".parse().unwrap(),
        remote_rtcp: None,
        rtcp_mux: false,
        payload_type: 8,
        codec: "PCMA",
        clock_rate: 8000,
        fmtp: None,
        ptime_ms: 20,
        maxptime_ms: None,
        telephone_event_pt: None,
        direction: crate::sip::sdp::Direction::SendRecv,
        srtp: None,
    }
}

impl Harness {
    fn new(trunk: TrunkConfig, carrier: Script) -> Harness {
        let t0 = Instant::now();
        let cfg = CoreConfig {
            media_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            seed: 11,
        };
        let addr = "127.0.0.1:5060".parse().unwrap();
        Harness {
            core: DialerCore::new(cfg, vec![(trunk, addr)], t0),
            now: t0,
            t0,
            campaigns: BTreeMap::new(),
            contacts: BTreeMap::new(),
            journal: vec![],
            queue: BTreeMap::new(),
            seq: 0,
            next_handle: 1,
            carrier,
            live: HashMap::new(),
            invites: vec![],
            hangups: vec![],
            max_channels_seen: 0,
        }
    }

    /// Adds a running campaign with these numbers and tells the core.
    fn start(&mut self, id: i64, tenant: &str, priority: Priority, numbers: &[String]) {
        let mut s = spec();
        s.tenant = tenant.into();
        s.priority = priority;
        self.campaigns.insert(id, (s, true));
        for (i, n) in numbers.iter().enumerate() {
            let c = Contact {
                number: n.clone(),
                due: Some(self.wall()),
                counted: 0,
            };
            self.contacts.insert((id, i as i64), c);
        }
        let (now, wall) = (self.now, self.wall());
        self.core
            .handle_command(now, wall, ReplyTo(1), Command::Reload);
        self.drain();
    }

    fn wall(&self) -> i64 {
        1_800_000_000_000 + (self.now - self.t0).as_millis() as i64
    }

    fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    fn at(&mut self, delay: Duration, p: Pending) {
        self.seq += 1;
        self.queue.insert((self.now + delay, self.seq), p);
    }

    fn drain(&mut self) {
        while let Some(a) = self.core.poll_action() {
            self.act(a);
        }
    }

    fn act(&mut self, a: Action) {
        match a {
            Action::JournalBegin(call, start) => {
                self.contacts
                    .get_mut(&(start.campaign, start.contact))
                    .unwrap()
                    .due = None;
                self.journal.push((start.campaign, start.contact, None));
                let id = self.journal.len() as i64;
                let r = StoreReply::Journaled(call, Ok(id));
                self.at(STORE_LATENCY, Pending::Store(r));
            }
            Action::JournalFinish(end, next, _) => {
                let row = &mut self.journal[end.attempt as usize - 1];
                let c = self.contacts.get_mut(&(row.0, row.1)).unwrap();
                c.counted += u32::from(end.counted);
                c.due = match next {
                    ContactNext::RetryAt(t) => Some(t),
                    ContactNext::Done => None,
                };
                row.2 = Some(end);
            }
            Action::LoadCampaigns => {
                let list = self
                    .campaigns
                    .iter()
                    .filter(|(_, (_, running))| *running)
                    .map(|(id, (spec, _))| CampaignRecord {
                        id: *id,
                        spec: spec.clone(),
                        state: CampaignState::Running,
                        created_ms: 0,
                    })
                    .collect();
                self.at(STORE_LATENCY, Pending::Store(StoreReply::Campaigns(list)));
            }
            Action::LoadDue {
                campaign,
                now_ms,
                limit,
            } => {
                let due = self
                    .contacts
                    .iter()
                    .filter(|((c, _), x)| *c == campaign.0 && x.due.is_some_and(|t| t <= now_ms))
                    .take(limit as usize)
                    .map(|((_, id), x)| DueContact {
                        contact: *id,
                        number: x.number.clone(),
                        number_type: NumberType::Fixed,
                        attempts: x.counted,
                        message: None,
                    })
                    .collect();
                self.at(
                    STORE_LATENCY,
                    Pending::Store(StoreReply::Due(campaign, due)),
                );
            }
            Action::CheckProgress(c) => {
                let done = self
                    .contacts
                    .iter()
                    .all(|((id, _), x)| *id != c.0 || x.due.is_none());
                let done = done && !self.journal.iter().any(|r| r.0 == c.0 && r.2.is_none());
                self.at(STORE_LATENCY, Pending::Store(StoreReply::Progress(c, done)));
            }
            Action::CompleteCampaign { campaign, .. } => {
                self.campaigns.get_mut(&campaign.0).unwrap().1 = false;
                let r = StoreReply::Completed(campaign);
                self.at(STORE_LATENCY, Pending::Store(r));
            }
            Action::Invite { call, params, .. } => self.invite(call, &params),
            Action::Hangup(h) => self.hangup(h),
            Action::StartMedia { call, .. } => {
                let c = self.live.values().find(|c| c.token == call).unwrap();
                let (_, play) = (self.carrier)(&c.number).unwrap();
                let note = MediaNote::Finished {
                    token: call.0,
                    packets: play.as_millis() as u64 / 20,
                };
                self.at(play, Pending::Media(note));
            }
            Action::StopMedia(call) => {
                let note = MediaNote::Stopped {
                    token: call.0,
                    packets: 0,
                    played_permille: 0,
                };
                self.at(Duration::from_millis(1), Pending::Media(note));
            }
            Action::Reply(..)
            | Action::AllowSources(_)
            | Action::CampaignDone(_)
            | Action::JournalAnswered { .. }
            | Action::CloseContact { .. }
            | Action::ReleasePort(_)
            | Action::Play { .. }
            | Action::ContactGauges(_)
            | Action::Ping { .. } => {}
            a => panic!("unexpected {a:?}"),
        }
    }

    fn invite(&mut self, call: CallToken, params: &CallParams) {
        let number = params.request_uri[4..]
            .split('@')
            .next()
            .unwrap()
            .to_string();
        self.invites.push((self.elapsed(), number.clone()));
        let h = CallHandle(self.next_handle);
        self.next_handle += 1;
        let (now, wall) = (self.now, self.wall());
        self.core
            .handle_driver(now, wall, DriverNote::Placed(call, h));
        let ev = match (self.carrier)(&number) {
            None => Event::Ended {
                call: h,
                end: CallEnd {
                    outcome: Outcome::InvalidNumber,
                    status: 404,
                    reason: "Not Found".into(),
                    hangup: Hangup::None,
                    retry_after: None,
                },
            },
            Some(_) => {
                let p = Event::Progress {
                    call: h,
                    status: 180,
                    early_media: None,
                };
                self.at(SIP_DELAY, Pending::Sip(p));
                Event::Answered {
                    call: h,
                    media: media(),
                }
            }
        };
        let delay = match (self.carrier)(&number) {
            Some((ring, _)) => ring,
            None => SIP_DELAY,
        };
        self.live.insert(
            h,
            CarrierCall {
                token: call,
                number,
                answered: false,
            },
        );
        self.max_channels_seen = self.max_channels_seen.max(self.live.len());
        self.at(delay, Pending::Sip(ev));
    }

    /// Our BYE or CANCEL reaches the carrier now: the channel is free at its end.
    fn hangup(&mut self, h: CallHandle) {
        let Some(c) = self.live.remove(&h) else {
            return;
        };
        self.hangups.push((self.elapsed(), c.number.clone()));
        let end = if c.answered {
            CallEnd {
                outcome: Outcome::Answered,
                status: 200,
                reason: "OK".into(),
                hangup: Hangup::Local,
                retry_after: None,
            }
        } else {
            CallEnd {
                outcome: Outcome::Canceled,
                status: 487,
                reason: "Request Terminated".into(),
                hangup: Hangup::None,
                retry_after: None,
            }
        };
        self.at(SIP_DELAY, Pending::Sip(Event::Ended { call: h, end }));
    }

    fn run_for(&mut self, limit: Duration) {
        let end = self.now + limit;
        self.drain();
        loop {
            let next_q = self.queue.keys().next().map(|k| k.0);
            let next = match (next_q, self.core.poll_timeout()) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(x) => x,
                    None => return,
                },
            };
            if next > end {
                self.now = end;
                return;
            }
            self.now = self.now.max(next);
            let (now, wall) = (self.now, self.wall());
            if next_q == Some(next) {
                let key = *self.queue.keys().next().unwrap();
                match self.queue.remove(&key).unwrap() {
                    Pending::Store(r) => self.core.handle_store(now, wall, r),
                    Pending::Sip(e) => {
                        match &e {
                            // An answer for a call we canceled meanwhile never comes.
                            Event::Answered { call, .. } | Event::Progress { call, .. }
                                if !self.live.contains_key(call) =>
                            {
                                continue
                            }
                            Event::Answered { call, .. } => {
                                self.live.get_mut(call).unwrap().answered = true;
                            }
                            Event::Ended { call, .. } => {
                                self.live.remove(call);
                            }
                            _ => {}
                        }
                        self.core.handle_sip(now, wall, e)
                    }
                    Pending::Media(n) => self.core.handle_media(now, wall, n),
                }
            } else {
                self.core.handle_timeout(now, wall);
            }
            self.drain();
            // Media of a call the core hung up (answered, then our BYE) is stopped by the
            // core itself; the carrier's channel count is what matters here.
        }
    }

    fn ends_of(&self, campaign: i64) -> Vec<&AttemptEnd> {
        self.journal
            .iter()
            .filter(|r| r.0 == campaign)
            .filter_map(|r| r.2.as_ref())
            .collect()
    }
}

fn numbers(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:05}")).collect()
}

/// Normal residents answer after 2 s and listen 60 s; emergency ones 1 s and 5 s.
fn carrier(number: &str) -> Option<(Duration, Duration)> {
    if number.starts_with("+3906") {
        Some((Duration::from_secs(1), Duration::from_secs(5)))
    } else {
        Some((Duration::from_secs(2), Duration::from_secs(60)))
    }
}

#[test]
fn an_emergency_ends_normal_calls_within_a_second_and_they_are_called_again() {
    let mut h = Harness::new(trunk_cfg("a", 10.0, 20), carrier);
    h.start(1, "school", Priority::Normal, &numbers("+390771", 40));
    h.run_for(Duration::from_secs(10));
    assert_eq!(h.live.len(), 20, "the normal campaign fills the trunk");
    let started = h.elapsed();
    h.start(2, "town", Priority::Emergency, &numbers("+3906", 30));
    h.run_for(Duration::from_secs(1));
    // Within a second: as many normal calls ended as the emergency can use in a second
    // (10 CPS), and emergency INVITEs left on the freed channels.
    let cut: Vec<_> = h.hangups.iter().filter(|x| x.0 >= started).collect();
    assert!(cut.len() >= 10, "{} ended in the first second", cut.len());
    let first_emergency = h.invites.iter().find(|i| i.1.starts_with("+3906")).unwrap();
    assert!(first_emergency.0 - started < Duration::from_secs(1));
    h.run_for(Duration::from_secs(600));
    // The carrier never saw more than the trunk's 20 channels.
    assert!(h.max_channels_seen <= 20, "{}", h.max_channels_seen);
    // Every emergency contact answered once.
    let em = h.ends_of(2);
    assert_eq!(em.len(), 30, "{em:?}");
    assert!(em.iter().all(|e| e.outcome == Outcome::Answered));
    // The preempted attempts close `canceled`, uncounted; their contacts were called
    // again later and every normal contact counts exactly one attempt.
    let preempted: Vec<_> = h
        .ends_of(1)
        .into_iter()
        .filter(|e| e.sip_reason == PREEMPTED)
        .collect();
    assert!(preempted.len() >= 10, "{}", preempted.len());
    assert!(preempted
        .iter()
        .all(|e| e.outcome == Outcome::Canceled && !e.counted));
    for ((c, id), x) in &h.contacts {
        assert_eq!(x.counted, 1, "campaign {c} contact {id}");
        assert!(x.due.is_none());
    }
    let answered = h
        .ends_of(1)
        .iter()
        .filter(|e| e.outcome == Outcome::Answered)
        .count();
    assert_eq!(answered, 40);
}

#[test]
fn a_prefix_at_5_cps_never_exceeds_it_and_the_rest_use_the_trunk() {
    // 2,000 numbers, the first half under +39077 (bunched at the head of the queue).
    let mut all = numbers("+3907700", 1000);
    all.extend(numbers("+3902000", 1000));
    let mut h = Harness::new(trunk_cfg("a", 50.0, 200), |_| None);
    let limit = PrefixLimit {
        prefix: "+39077".into(),
        cps: 5.0,
        max_channels: 50,
        tenant: None,
    };
    let (now, wall) = (h.now, h.wall());
    h.core
        .handle_command(now, wall, ReplyTo(2), Command::PrefixLimits(vec![limit]));
    h.start(1, "town", Priority::Normal, &all);
    h.run_for(Duration::from_secs(60));
    let at = |p: &str| -> Vec<Duration> {
        h.invites
            .iter()
            .filter(|i| i.1.starts_with(p))
            .map(|i| i.0)
            .collect()
    };
    let slow = at("+39077");
    let rest = at("+39020");
    for (i, t) in slow.iter().enumerate() {
        let n = slow[i..]
            .iter()
            .take_while(|x| **x < *t + Duration::from_secs(1))
            .count();
        assert!(n <= 5, "{n} INVITEs to +39077 in the second from {t:?}");
    }
    // The limited prefix runs at its rate; the other half used the rest of the trunk
    // (45 of 50 CPS) and finished in about 1000 / 45 = 22 s.
    assert!(slow.len() >= 270, "{} to +39077 in 60 s", slow.len());
    assert_eq!(rest.len(), 1000);
    let span = rest[999] - rest[0];
    assert!(span < Duration::from_secs(25), "{span:?}");
    eprintln!(
        "+39077: {} in 60 s; others: 1000 in {:.1} s",
        slow.len(),
        span.as_secs_f64()
    );
}

/// Normal residents let it ring 30 s before answering: preempted while ringing (CANCEL).
fn slow_answers(number: &str) -> Option<(Duration, Duration)> {
    if number.starts_with("+3906") {
        Some((Duration::from_secs(1), Duration::from_secs(5)))
    } else {
        Some((Duration::from_secs(30), Duration::from_secs(5)))
    }
}

#[test]
fn ringing_normal_calls_are_canceled_for_an_emergency() {
    let mut h = Harness::new(trunk_cfg("a", 10.0, 20), slow_answers);
    h.start(1, "school", Priority::Normal, &numbers("+390771", 30));
    h.run_for(Duration::from_secs(5));
    assert_eq!(h.live.len(), 20, "20 calls ringing");
    assert!(h.live.values().all(|c| !c.answered));
    h.start(2, "town", Priority::Emergency, &numbers("+3906", 10));
    h.run_for(Duration::from_secs(1));
    // Only as many as the 10 emergency contacts need were canceled.
    assert_eq!(h.hangups.len(), 10, "{:?}", h.hangups);
    h.run_for(Duration::from_secs(300));
    assert!(h.max_channels_seen <= 20);
    let cut: Vec<_> = h
        .ends_of(1)
        .into_iter()
        .filter(|e| e.sip_reason == PREEMPTED)
        .collect();
    assert_eq!(cut.len(), 10);
    assert!(cut
        .iter()
        .all(|e| e.outcome == Outcome::Canceled && !e.counted && e.sip_status == 487));
    assert!(h
        .contacts
        .values()
        .all(|c| c.counted == 1 && c.due.is_none()));
}

#[test]
fn a_tenant_limit_holds_its_calls_only() {
    // Two towns call the same exchange; one set a 2 CPS limit of its own on it.
    let mut h = Harness::new(trunk_cfg("a", 40.0, 400), |_| None);
    let own = PrefixLimit {
        prefix: "+39077".into(),
        cps: 2.0,
        max_channels: 400,
        tenant: Some("sora".into()),
    };
    let (now, wall) = (h.now, h.wall());
    h.core
        .handle_command(now, wall, ReplyTo(2), Command::PrefixLimits(vec![own]));
    h.start(1, "sora", Priority::Normal, &numbers("+3907711", 100));
    h.start(2, "itri", Priority::Normal, &numbers("+3907712", 100));
    h.run_for(Duration::from_secs(10));
    let sent = |p: &str| h.invites.iter().filter(|i| i.1.starts_with(p)).count();
    // Sora's calls went at its own 2 CPS; Itri's to the same prefix were not held.
    assert!(
        (18..=21).contains(&sent("+3907711")),
        "{}",
        sent("+3907711")
    );
    assert_eq!(sent("+3907712"), 100);
}

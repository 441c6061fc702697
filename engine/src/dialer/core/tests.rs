//! The core on virtual time: a harness plays the store (an in-memory model of contacts
//! and the journal) and the carriers (a script per trunk), jumps the clock from one
//! event or deadline to the next, and records what went on the wire.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use super::campaigns::{REFILL_BATCH, REFILL_BELOW};
use super::tests_support::{spec, trunk_cfg};
use super::*;
use crate::dialer::campaign::{CampaignSpec, CampaignState};
use crate::dialer::numbers::NumberType;
use crate::dialer::retry::RetryRule;
use crate::model::Outcome;
use crate::sip::endpoint::{CallEnd, CallParams, Hangup};
use crate::sip::sdp::NegotiatedMedia;
use crate::store::{AttemptEnd, CampaignRecord, ContactNext, DueContact};

const CAMPAIGN: i64 = 1;
const STORE_LATENCY: Duration = Duration::from_millis(3);
const SIP_DELAY: Duration = Duration::from_millis(20);

/// What a carrier does with an INVITE.
#[derive(Debug, Clone, Copy)]
pub(super) enum Answer {
    /// A final failure with this status (and Retry-After).
    Fail(u16, Option<u32>),
    /// 200 OK; the prompt plays for this long.
    Pick(Duration),
}

/// A carrier's behaviour: the answer to an INVITE on a trunk (by name) to a number.
pub(super) type Script = Box<dyn FnMut(&str, &str) -> Answer>;

#[derive(Debug, Clone, PartialEq)]
enum ContactState {
    Due(i64),
    Dialing,
    Done,
}

#[derive(Debug, Clone)]
pub(super) struct Row {
    contact: i64,
    trunk: String,
    end: Option<AttemptEnd>,
}

#[derive(Debug)]
enum Pending {
    Store(StoreReply),
    Sip(Event),
    Media(MediaNote),
}

pub(super) struct Harness {
    core: DialerCore,
    now: Instant,
    t0: Instant,
    wall0: i64,
    numbers: BTreeMap<i64, String>,
    contacts: BTreeMap<i64, (ContactState, u32)>,
    /// Contacts not done, so that a refill does not scan the finished ones.
    open: std::collections::BTreeSet<i64>,
    pub(super) journal: Vec<Row>,
    pub(super) carrier: Script,
    /// How long the journal write of an attempt picked at this virtual time takes.
    pub(super) journal_delay: fn(Duration) -> Duration,
    ping_status: HashMap<String, u16>,
    pub(super) invites: Vec<(Duration, String, String)>,
    calls: HashMap<CallHandle, (CallToken, String, bool)>,
    queue: BTreeMap<(Instant, u64), Pending>,
    seq: u64,
    next_handle: u64,
    replies: VecDeque<Reply>,
    trunk_names: Vec<String>,
    running: bool,
    spec: CampaignSpec,
}

fn addr() -> SocketAddr {
    "127.0.0.1:5060".parse().unwrap()
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
    pub(super) fn new(trunks: Vec<TrunkConfig>, spec: CampaignSpec, contacts: usize) -> Harness {
        let t0 = Instant::now();
        let cfg = CoreConfig {
            media_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            seed: 7,
        };
        let names = trunks.iter().map(|t| t.name.clone()).collect();
        let core = DialerCore::new(cfg, trunks.into_iter().map(|t| (t, addr())).collect(), t0);
        let wall0 = 1_800_000_000_000;
        let mut h = Harness {
            core,
            now: t0,
            t0,
            wall0,
            numbers: BTreeMap::new(),
            contacts: BTreeMap::new(),
            open: Default::default(),
            journal: vec![],
            carrier: Box::new(|_, _| Answer::Fail(404, None)),
            journal_delay: |_| STORE_LATENCY,
            ping_status: HashMap::new(),
            invites: vec![],
            calls: HashMap::new(),
            queue: BTreeMap::new(),
            seq: 0,
            next_handle: 1,
            replies: VecDeque::new(),
            trunk_names: names,
            running: true,
            spec,
        };
        for i in 0..contacts as i64 {
            h.numbers.insert(i, format!("+39077100{i:05}"));
            h.contacts.insert(i, (ContactState::Due(wall0), 0));
            h.open.insert(i);
        }
        h
    }

    fn wall(&self) -> i64 {
        self.wall0 + (self.now - self.t0).as_millis() as i64
    }

    fn at(&mut self, delay: Duration, p: Pending) {
        self.seq += 1;
        self.queue.insert((self.now + delay, self.seq), p);
    }

    fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    /// Executes the core's actions as the store and the carriers would.
    fn drain(&mut self) {
        while let Some(a) = self.core.poll_action() {
            self.act(a);
        }
    }

    fn act(&mut self, a: Action) {
        match a {
            Action::JournalBegin(call, start) => {
                self.contacts.get_mut(&start.contact).unwrap().0 = ContactState::Dialing;
                self.journal.push(Row {
                    contact: start.contact,
                    trunk: start.trunk,
                    end: None,
                });
                let id = self.journal.len() as i64;
                let delay = (self.journal_delay)(self.elapsed());
                self.at(delay, Pending::Store(StoreReply::Journaled(call, Ok(id))));
            }
            Action::JournalFinish(end, next, _) => self.journal_finish(end, next),
            Action::LoadCampaigns => {
                let list = self.running.then(|| self.campaign()).into_iter().collect();
                self.at(STORE_LATENCY, Pending::Store(StoreReply::Campaigns(list)));
            }
            Action::LoadDue {
                campaign,
                now_ms,
                limit,
            } => {
                let due = self.due(now_ms, limit);
                self.at(
                    STORE_LATENCY,
                    Pending::Store(StoreReply::Due(campaign, due)),
                );
            }
            Action::CheckProgress(c) => {
                let done = self.open.is_empty();
                self.at(STORE_LATENCY, Pending::Store(StoreReply::Progress(c, done)));
            }
            Action::CompleteCampaign { campaign, .. } => {
                self.running = false;
                self.at(
                    STORE_LATENCY,
                    Pending::Store(StoreReply::Completed(campaign)),
                );
            }
            Action::Invite { call, params, .. } => self.invite(call, &params),
            Action::Hangup(h) => self.hangup(h),
            Action::StartMedia { call, .. } => {
                let (_, (_, trunk, _)) = self.calls.iter().find(|(_, c)| c.0 == call).unwrap();
                let Answer::Pick(d) = (self.carrier)(trunk, "") else {
                    unreachable!()
                };
                let note = MediaNote::Finished {
                    token: call.0,
                    packets: d.as_millis() as u64 / 20,
                };
                self.at(d, Pending::Media(note));
            }
            Action::StopMedia(call) => {
                let note = MediaNote::Stopped {
                    token: call.0,
                    packets: 0,
                    played_permille: 0,
                };
                self.at(Duration::from_millis(1), Pending::Media(note));
            }
            Action::Ping { trunk, .. } => {
                let h = RequestHandle(self.next_handle);
                self.next_handle += 1;
                self.core
                    .handle_driver(self.now, self.wall(), DriverNote::PingSent(trunk, h));
                let name = &self.trunk_names[trunk.0];
                let status = self.ping_status.get(name).copied().unwrap_or(200);
                let ev = Event::OptionsReply {
                    ping: h,
                    status,
                    rtt: SIP_DELAY,
                };
                self.at(SIP_DELAY, Pending::Sip(ev));
            }
            Action::Reply(_, r) => self.replies.push_back(r),
            Action::Register(..) | Action::Unregister(_) => panic!("no trunk registers"),
            Action::AllowSources(_) => {}
            Action::Inbound(_) => panic!("no inbound call here"),
            Action::StartScreening { .. } => panic!("no campaign here detects machines"),
            Action::CampaignDone(_)
            | Action::JournalAnswered { .. }
            | Action::CloseContact { .. }
            | Action::ReleasePort(_)
            | Action::Play { .. }
            | Action::ContactGauges(_) => {}
        }
    }

    fn campaign(&self) -> CampaignRecord {
        CampaignRecord {
            id: CAMPAIGN,
            spec: self.spec.clone(),
            state: CampaignState::Running,
            created_ms: self.wall0,
        }
    }

    fn due(&self, now_ms: i64, limit: u32) -> Vec<DueContact> {
        self.open
            .iter()
            .map(|id| (id, &self.contacts[id]))
            .filter(|(_, (s, _))| matches!(s, ContactState::Due(t) if *t <= now_ms))
            .take(limit as usize)
            .map(|(id, (_, attempts))| DueContact {
                contact: *id,
                number: self.numbers[id].clone(),
                number_type: NumberType::Fixed,
                attempts: *attempts,
                message: None,
            })
            .collect()
    }

    fn journal_finish(&mut self, end: AttemptEnd, next: ContactNext) {
        let row = &mut self.journal[end.attempt as usize - 1];
        let c = self.contacts.get_mut(&row.contact).unwrap();
        c.1 += u32::from(end.counted);
        c.0 = match next {
            ContactNext::RetryAt(t) => ContactState::Due(t),
            ContactNext::Done => ContactState::Done,
        };
        if c.0 == ContactState::Done {
            self.open.remove(&row.contact);
        }
        row.end = Some(end);
    }

    fn invite(&mut self, call: CallToken, params: &CallParams) {
        let trunk = params.trunk.as_deref().unwrap().to_string();
        let number = params.request_uri[4..]
            .split('@')
            .next()
            .unwrap()
            .to_string();
        self.invites
            .push((self.elapsed(), trunk.clone(), number.clone()));
        let h = CallHandle(self.next_handle);
        self.next_handle += 1;
        self.core
            .handle_driver(self.now, self.wall(), DriverNote::Placed(call, h));
        self.calls.insert(h, (call, trunk.clone(), false));
        let ev = match (self.carrier)(&trunk, &number) {
            Answer::Fail(status, retry_after) => Event::Ended {
                call: h,
                end: CallEnd {
                    outcome: Outcome::from_status(status),
                    status,
                    reason: "scripted".into(),
                    hangup: Hangup::None,
                    retry_after,
                },
            },
            Answer::Pick(_) => Event::Answered {
                call: h,
                media: media(),
            },
        };
        self.at(SIP_DELAY, Pending::Sip(ev));
    }

    fn hangup(&mut self, h: CallHandle) {
        let end = CallEnd {
            outcome: Outcome::Answered,
            status: 200,
            reason: "OK".into(),
            hangup: Hangup::Local,
            retry_after: None,
        };
        self.at(SIP_DELAY, Pending::Sip(Event::Ended { call: h, end }));
    }

    /// Runs until `limit` of virtual time has passed or nothing is left to do.
    pub(super) fn run_for(&mut self, limit: Duration) {
        let end = self.now + limit;
        self.drain();
        loop {
            let next_q = self.queue.keys().next().map(|k| k.0);
            let next_t = self.core.poll_timeout();
            let next = match (next_q, next_t) {
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
                        if let Event::Ended { call, .. } = &e {
                            self.calls.remove(call);
                        }
                        self.core.handle_sip(now, wall, e)
                    }
                    Pending::Media(n) => self.core.handle_media(now, wall, n),
                }
            } else {
                self.core.handle_timeout(now, wall);
            }
            self.drain();
        }
    }

    fn snapshot(&mut self) -> DialerSnapshot {
        self.core
            .handle_command(self.now, self.wall(), ReplyTo(0), Command::Snapshot);
        self.drain();
        match self.replies.pop_back() {
            Some(Reply::Snapshot(s)) => s,
            r => panic!("{r:?}"),
        }
    }
}

fn ended(rows: &[Row]) -> Vec<&AttemptEnd> {
    rows.iter().filter_map(|r| r.end.as_ref()).collect()
}

#[test]
fn carrier_503_with_retry_after_fails_over_without_using_a_retry() {
    let a = trunk_cfg("a", 10.0, 10);
    let mut b = trunk_cfg("b", 10.0, 10);
    b.priority = 1;
    let mut h = Harness::new(vec![a, b], spec(), 3);
    h.carrier = Box::new(|trunk, _| match trunk {
        "a" => Answer::Fail(503, Some(30)),
        _ => Answer::Pick(Duration::from_secs(3)),
    });
    h.run_for(Duration::from_secs(20));
    // The first contact went to a, got 503, and was sent to b at once.
    assert_eq!(h.invites[0].1, "a");
    let first = &h.journal[0];
    let end = first.end.as_ref().unwrap();
    assert_eq!((end.outcome, end.sip_status), (Outcome::Failed, 503));
    assert!(
        !end.counted,
        "a carrier fault that fails over does not use a retry"
    );
    let again = h
        .journal
        .iter()
        .skip(1)
        .find(|r| r.contact == first.contact)
        .unwrap();
    assert_eq!(again.trunk, "b");
    assert_eq!(again.end.as_ref().unwrap().outcome, Outcome::Answered);
    // Retry-After holds a for 30 s: every later INVITE within that time went to b.
    let held: Vec<_> = h
        .invites
        .iter()
        .skip(1)
        .filter(|i| i.0 < Duration::from_secs(30))
        .collect();
    assert!(held.iter().all(|i| i.1 == "b"), "{held:?}");
    // Every contact answered once, none charged an attempt by the 503.
    assert!(h.contacts.values().all(|c| c.0 == ContactState::Done));
    assert!(h.contacts.values().all(|c| c.1 <= 1));
}

#[test]
fn trunk_down_after_three_failed_pings_and_up_after_two() {
    let mut a = trunk_cfg("a", 10.0, 10);
    a.options_ping_interval_s = 10;
    let mut h = Harness::new(vec![a], spec(), 0);
    h.running = false;
    h.ping_status.insert("a".into(), 503);
    // Pings leave at 0, 10, 20 s; their replies come 20 ms later.
    h.run_for(Duration::from_millis(10_100));
    assert!(h.snapshot().trunks[0].up, "two failures are not enough");
    h.run_for(Duration::from_secs(10));
    assert!(
        !h.snapshot().trunks[0].up,
        "down after the third failed ping"
    );
    assert_eq!(h.core.poll_timeout(), Some(h.t0 + Duration::from_secs(30)));
    h.ping_status.insert("a".into(), 200);
    h.run_for(Duration::from_secs(10));
    assert!(!h.snapshot().trunks[0].up, "one good ping is not enough");
    h.run_for(Duration::from_secs(10));
    assert!(h.snapshot().trunks[0].up, "up after the second good ping");
}

#[test]
fn a_busy_is_retried_at_its_interval() {
    let mut s = spec();
    s.retry.busy = RetryRule {
        interval_s: 60,
        max_attempts: 3,
    };
    let mut h = Harness::new(vec![trunk_cfg("a", 10.0, 10)], s, 1);
    let mut n = 0;
    h.carrier = Box::new(move |_, number| {
        if !number.is_empty() {
            n += 1;
        }
        if n == 1 {
            Answer::Fail(486, None)
        } else {
            Answer::Pick(Duration::from_secs(2))
        }
    });
    h.run_for(Duration::from_secs(120));
    assert_eq!(h.invites.len(), 2, "{:?}", h.invites);
    let ends = ended(&h.journal);
    assert_eq!(ends[0].outcome, Outcome::Busy);
    assert!(ends[0].counted);
    assert_eq!(ends[1].outcome, Outcome::Answered);
    // Called again 60 s after the busy ended, give or take a refill period.
    let gap = h.invites[1].0 - h.invites[0].0;
    assert!(
        gap >= Duration::from_secs(60) && gap <= Duration::from_millis(61_000),
        "{gap:?}"
    );
    assert_eq!(h.contacts[&0], (ContactState::Done, 2));
    // The campaign completed and nothing is left armed but nothing to do.
    assert!(!h.running);
}

#[test]
fn cps_ceiling_holds_in_every_second_under_a_backlog_of_10000() {
    let cps = 50.0;
    let mut h = Harness::new(vec![trunk_cfg("a", cps, 500)], spec(), 10_000);
    h.carrier = Box::new(|_, _| Answer::Fail(404, None));
    let started = Instant::now();
    h.run_for(Duration::from_secs(400));
    let took = started.elapsed();
    assert_eq!(h.invites.len(), 10_000);
    let times: Vec<Duration> = h.invites.iter().map(|i| i.0).collect();
    let mut j = 0;
    for i in 0..times.len() {
        while times[i] - times[j] >= Duration::from_secs(1) {
            j += 1;
        }
        assert!(
            i - j < cps as usize,
            "{} INVITEs in the second before {:?}",
            i - j + 1,
            times[i]
        );
    }
    let span = (times[times.len() - 1] - times[0]).as_secs_f64();
    let rate = (times.len() - 1) as f64 / span;
    assert!(rate >= 0.97 * cps && rate <= cps, "rate {rate:.2}");
    assert!(!h.running, "the campaign completed");
    eprintln!("10,000 contacts over {span:.0} virtual seconds simulated in {took:?}");
}

#[test]
fn poll_timeout_is_the_earliest_live_deadline() {
    let mut a = trunk_cfg("a", 10.0, 10);
    a.options_ping_interval_s = 15;
    let mut h = Harness::new(vec![a], spec(), 0);
    h.running = false;
    h.run_for(Duration::from_millis(100));
    // Nothing runs: only the next ping is armed.
    assert_eq!(h.core.poll_timeout(), Some(h.t0 + Duration::from_secs(15)));
}

#[test]
fn shutdown_hangs_up_journals_every_end_then_replies() {
    let mut h = Harness::new(vec![trunk_cfg("a", 10.0, 10)], spec(), 20);
    h.carrier = Box::new(|_, _| Answer::Pick(Duration::from_secs(60)));
    h.run_for(Duration::from_secs(1));
    let calls = h.core.calls_in_progress();
    assert!(calls > 0);
    h.core
        .handle_command(h.now, h.wall(), ReplyTo(9), Command::Shutdown);
    h.run_for(Duration::from_secs(5));
    assert!(matches!(h.replies.pop_back(), Some(Reply::ShutDown)));
    assert!(h.core.is_stopped());
    assert_eq!(h.core.poll_timeout(), None);
    // Every journaled attempt has its end; nothing was started after the shutdown.
    assert!(h.journal.iter().all(|r| r.end.is_some()), "{:?}", h.journal);
    assert!(h.invites.iter().all(|i| i.0 < Duration::from_secs(1)));
    // Calls in progress were hung up; attempts whose INVITE had not left are canceled,
    // not counted, and due again.
    for e in ended(&h.journal) {
        match e.outcome {
            Outcome::Answered => assert!(e.counted),
            Outcome::Canceled => assert!(!e.counted),
            o => panic!("{o:?}"),
        }
    }
    assert_eq!(ended(&h.journal).len(), h.journal.len());
}

#[test]
fn what_the_core_holds_follows_live_calls_not_finished_attempts() {
    // Constant concurrency: 30 channels busy with 2 s calls for 5,000 contacts.
    let channels = 30;
    let mut h = Harness::new(vec![trunk_cfg("a", 100.0, channels)], spec(), 5_000);
    h.carrier = Box::new(|_, _| Answer::Pick(Duration::from_secs(2)));
    let mut peak: HashMap<&'static str, usize> = HashMap::new();
    let mut samples = 0;
    while h.running && samples < 1_000 {
        h.run_for(Duration::from_secs(5));
        samples += 1;
        for (name, n) in h.core.held() {
            let p = peak.entry(name).or_default();
            *p = (*p).max(n);
        }
    }
    assert!(!h.running, "the campaign completed");
    let done = h
        .contacts
        .values()
        .filter(|c| c.0 == ContactState::Done)
        .count();
    assert_eq!(done, 5_000);
    // While it ran: calls within the channels, queued contacts within the refill window,
    // answered contacts kept only until a refill can no longer list them (before, every
    // answered contact of the running campaign was kept: 5,000 entries at the end).
    let window = (REFILL_BELOW + REFILL_BATCH as usize + 64) + channels as usize;
    for (name, bound) in [
        ("calls", channels as usize),
        ("by_handle", channels as usize),
        ("sched_in_flight", channels as usize),
        ("sched_known", window),
        (
            "sched_answered",
            2 * (REFILL_BATCH as usize + 64) + channels as usize,
        ),
    ] {
        assert!(
            peak[name] <= bound,
            "{name}: {} > {bound} ({peak:?})",
            peak[name]
        );
    }
    // Done: nothing per call, contact or request is left.
    let left: Vec<_> = h.core.held().into_iter().filter(|(_, n)| *n > 0).collect();
    assert!(left.is_empty(), "still held after the campaign: {left:?}");
}

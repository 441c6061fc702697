//! Inbound calls through the core on virtual time: admission, the menus driven by
//! synthetic media notes and SIP events, channel accounting shared with the trunk, and
//! the staff line's take becoming a campaign.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::super::inbound_io::{InboundAction, InboundInvite, InboundReply, LineContext};
use super::super::tests_support::trunk_cfg;
use super::super::{Action, CallToken, CoreConfig, DialerCore, StoreReply};
use crate::dialer::call_media::MediaNote;
use crate::ivr::{Audio, PinHash, Voice};
use crate::model::dids::Flow;
use crate::model::Outcome;
use crate::sip::endpoint::{CallEnd, CallHandle, Event, Hangup};
use crate::sip::sdp::NegotiatedMedia;

const WALL: i64 = 1_800_000_000_000;

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
        telephone_event_pt: Some(101),
        direction: crate::sip::sdp::Direction::SendRecv,
        srtp: None,
    }
}

fn invite(from_ip: &str, to: &str, caller: &str) -> InboundInvite {
    InboundInvite {
        source: Some(SocketAddr::new(from_ip.parse().unwrap(), 5060)),
        request_uri: format!("sip:{to}@dialer"),
        to_uri: format!("sip:{to}@dialer"),
        from_uri: format!("<sip:{caller}@carrier>;tag=1"),
        asserted_identity: None,
        privacy: None,
    }
}

fn citizen(registered: Option<Option<String>>) -> Box<LineContext> {
    Box::new(LineContext {
        tenant: "itri".into(),
        flow: Flow::Citizen,
        town: "Itri".into(),
        zones: vec!["Centro".into(), "Lido".into()],
        registered,
        pin: None,
        voice: Arc::new(Voice::default()),
    })
}

fn staff() -> Box<LineContext> {
    Box::new(LineContext {
        tenant: "itri".into(),
        flow: Flow::Staff,
        town: "Itri".into(),
        zones: vec![],
        registered: None,
        pin: Some(PinHash::new("2468").unwrap()),
        voice: Arc::new(Voice::default()),
    })
}

struct H {
    core: DialerCore,
    now: Instant,
    next: u64,
    out: Vec<Action>,
}

impl H {
    fn new(channels: u32) -> H {
        let now = Instant::now();
        let cfg = CoreConfig {
            media_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            seed: 3,
        };
        let addr = "127.0.0.1:5060".parse().unwrap();
        let core = DialerCore::new(cfg, vec![(trunk_cfg("a", 10.0, channels), addr)], now);
        let mut h = H {
            core,
            now,
            next: 1,
            out: vec![],
        };
        h.drain();
        h.out.clear();
        h
    }

    fn drain(&mut self) -> Vec<InboundAction> {
        let mut v = vec![];
        while let Some(a) = self.core.poll_action() {
            match a {
                Action::Inbound(i) => v.push(i),
                other => self.out.push(other),
            }
        }
        v
    }

    fn call(&mut self, from_ip: &str, to: &str, caller: &str) -> (CallHandle, Vec<InboundAction>) {
        let h = CallHandle(self.next);
        self.next += 1;
        self.core
            .handle_incoming(self.now, WALL, h, invite(from_ip, to, caller));
        (h, self.drain())
    }

    fn token(acts: &[InboundAction]) -> CallToken {
        acts.iter()
            .find_map(|a| match a {
                InboundAction::Lookup { token, .. } => Some(*token),
                _ => None,
            })
            .expect("a lookup")
    }

    /// Answers the lookup with `ctx` and the ACK: the menu starts.
    fn answer(&mut self, h: CallHandle, t: CallToken, ctx: Box<LineContext>) -> Vec<InboundAction> {
        let r = StoreReply::Inbound(InboundReply::Context(t, Some(ctx)));
        self.core.handle_store(self.now, WALL, r);
        let acts = self.drain();
        assert!(matches!(acts[0], InboundAction::Accept { token, .. } if token == t));
        let ev = Event::Answered {
            call: h,
            media: media(),
        };
        self.core.handle_sip(self.now, WALL, ev);
        self.drain()
    }

    fn key(&mut self, t: CallToken, c: char) -> Vec<InboundAction> {
        let n = MediaNote::Digit {
            token: t.0,
            digit: c,
        };
        self.core.handle_media(self.now, WALL, n);
        self.drain()
    }

    /// Ends play `id` and everything that follows until the menu waits.
    fn played(&mut self, t: CallToken, acts: &[InboundAction]) -> Vec<InboundAction> {
        let id = last_play(acts).expect("a play").0;
        self.core.on_inbound_played(self.now, WALL, t, id);
        self.drain()
    }

    /// Plays every prompt to its end until the menu waits; all actions seen.
    fn listen(&mut self, t: CallToken, mut acts: Vec<InboundAction>) -> Vec<InboundAction> {
        let mut all = vec![];
        for _ in 0..20 {
            let has_play = last_play(&acts).is_some();
            all.extend(acts);
            if !has_play {
                break;
            }
            acts = self.played(t, &all);
        }
        all
    }

    fn active(&mut self) -> u32 {
        let r = super::super::ReplyTo(99);
        self.core
            .handle_command(self.now, WALL, r, super::super::Command::Snapshot);
        self.drain();
        let snap = self.out.iter().rev().find_map(|a| match a {
            Action::Reply(_, super::super::Reply::Snapshot(s)) => Some(s.trunks[0].active),
            _ => None,
        });
        snap.unwrap()
    }

    fn hangups(&self) -> usize {
        self.out
            .iter()
            .filter(|a| matches!(a, Action::Hangup(_)))
            .count()
    }
}

fn last_play(acts: &[InboundAction]) -> Option<(u32, Vec<Audio>)> {
    acts.iter().rev().find_map(|a| match a {
        InboundAction::Play { id, items, .. } => Some((*id, items.clone())),
        _ => None,
    })
}

fn says(acts: &[InboundAction], words: &str) -> bool {
    acts.iter().any(|a| match a {
        InboundAction::Play { items, .. } => items
            .iter()
            .any(|i| matches!(i, Audio::Speech(s) if s.contains(words))),
        _ => false,
    })
}

#[test]
fn a_stranger_gets_403_and_an_unknown_number_404_and_nothing_is_kept() {
    let mut h = H::new(4);
    let (call, acts) = h.call("10.9.9.9", "+390771286891", "+393331234567");
    assert!(matches!(acts[..], [InboundAction::Reject { status: 403, call: c, .. }] if c == call));
    assert_eq!(h.core.inbound_calls(), 0);
    assert_eq!(h.active(), 0);

    let (call, acts) = h.call("127.0.0.1", "0771286891", "+393331234567");
    assert!(matches!(acts[0], InboundAction::Ring(c) if c == call));
    match &acts[1] {
        InboundAction::Lookup { number, caller, .. } => {
            assert_eq!(number, "+390771286891", "national writing read as E.164");
            assert_eq!(caller.as_deref(), Some("+393331234567"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.active(), 1, "the channel is held while the store looks");
    let t = H::token(&acts);
    h.core.handle_store(
        h.now,
        WALL,
        StoreReply::Inbound(InboundReply::Context(t, None)),
    );
    let acts = h.drain();
    assert!(matches!(
        acts[..],
        [InboundAction::Reject { status: 404, .. }]
    ));
    assert_eq!(h.core.inbound_calls(), 0);
    assert_eq!(h.active(), 0);
}

#[test]
fn inbound_calls_take_the_trunks_channels() {
    let mut h = H::new(2);
    let (_, a) = h.call("127.0.0.1", "+390771286891", "+393331234567");
    let (c2, b) = h.call("127.0.0.1", "+390771286891", "+393331234568");
    assert!(matches!(a[0], InboundAction::Ring(_)) && matches!(b[0], InboundAction::Ring(_)));
    let (_, full) = h.call("127.0.0.1", "+390771286891", "+393331234569");
    assert!(matches!(
        full[..],
        [InboundAction::Reject { status: 486, .. }]
    ));
    assert_eq!(h.active(), 2);
    // The caller gives up (CANCEL) while the store looks: the channel comes back.
    let end = CallEnd {
        outcome: Outcome::Canceled,
        status: 487,
        reason: "canceled".into(),
        hangup: Hangup::Remote,
        retry_after: None,
    };
    h.core
        .handle_sip(h.now, WALL, Event::Ended { call: c2, end });
    assert_eq!(h.active(), 1);
    let (_, again) = h.call("127.0.0.1", "+390771286891", "+393331234569");
    assert!(matches!(again[0], InboundAction::Ring(_)));
}

#[test]
fn a_registration_with_zone_choice_is_stored_once() {
    let mut h = H::new(4);
    let (call, acts) = h.call("127.0.0.1", "+390771286891", "3331234567");
    let t = H::token(&acts);
    let acts = h.answer(call, t, citizen(None));
    assert!(matches!(acts[0], InboundAction::StartIdle { token, .. } if token == t));
    assert!(says(&acts, "Itri"), "greeting names the town: {acts:?}");
    let acts = h.listen(t, acts);
    assert!(says(&acts, "premi 1"), "main menu: {acts:?}");
    let acts = h.key(t, '1');
    // Read-back: fixed text, then the last four digits one by one.
    let (_, items) = last_play(&acts).unwrap();
    assert_eq!(
        items[1..5],
        ["4", "5", "6", "7"].map(|d| Audio::Speech(d.into()))
    );
    let acts = h.listen(t, acts);
    assert!(says(&acts, "1 Centro, 2 Lido"), "zone menu: {acts:?}");
    let acts = h.key(t, '2');
    let _ = h.listen(t, acts);
    let acts = h.key(t, '1');
    let regs: Vec<_> = acts
        .iter()
        .filter_map(|a| match a {
            InboundAction::Register { tenant, reg } => Some((tenant.clone(), reg.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(regs.len(), 1);
    assert_eq!(regs[0].0, "itri");
    assert_eq!(regs[0].1.number, "+393331234567");
    assert_eq!(regs[0].1.zone.as_deref(), Some("Lido"));
    assert_eq!(regs[0].1.source, crate::model::Source::Ivr);
    assert_eq!(regs[0].1.consent_ms, WALL);
    let acts = h.listen(t, acts);
    let n = acts
        .iter()
        .filter(|a| matches!(a, InboundAction::Register { .. }));
    assert_eq!(n.count(), 1, "stored once");
    assert_eq!(h.hangups(), 1, "goodbye, then BYE");
}

#[test]
fn keys_by_sip_info_work_like_rfc4733() {
    let mut h = H::new(4);
    let (call, acts) = h.call("127.0.0.1", "+390771286891", "3331234567");
    let t = H::token(&acts);
    let acts = h.answer(call, t, citizen(Some(Some("Centro".into()))));
    let _ = h.listen(t, acts);
    let info = |d: &str| Event::Info {
        call,
        content_type: "application/dtmf-relay".into(),
        body: format!("Signal={d}\r\nDuration=160\r\n").into_bytes(),
    };
    h.core.handle_sip(h.now, WALL, info("2"));
    let acts = h.drain();
    assert!(says(&acts, "1"), "unregister confirm asked: {acts:?}");
    let _ = h.listen(t, acts);
    h.core.handle_sip(h.now, WALL, info("1"));
    let acts = h.drain();
    assert!(acts.iter().any(
        |a| matches!(a, InboundAction::Unregister { number, .. } if number == "+393331234567")
    ));
}

#[test]
fn a_withheld_caller_is_told_and_nothing_is_stored() {
    let mut h = H::new(4);
    let (call, acts) = h.call("127.0.0.1", "+390771286891", "anonymous");
    match &acts[1] {
        InboundAction::Lookup { caller, .. } => assert_eq!(*caller, None),
        other => panic!("{other:?}"),
    }
    let t = H::token(&acts);
    let acts = h.answer(call, t, citizen(None));
    assert!(says(&acts, "nascosto"), "{acts:?}");
    let acts = h.listen(t, acts);
    assert!(!acts.iter().any(|a| matches!(
        a,
        InboundAction::Register { .. } | InboundAction::Unregister { .. }
    )));
    assert_eq!(h.hangups(), 1);
}

#[test]
fn silences_time_out_on_the_core_timer_and_end_the_call_politely() {
    let mut h = H::new(4);
    let (call, acts) = h.call("127.0.0.1", "+390771286891", "3331234567");
    let t = H::token(&acts);
    let acts = h.answer(call, t, citizen(None));
    let _ = h.listen(t, acts);
    for _ in 0..3 {
        let at = h.core.poll_timeout().expect("menu deadline armed");
        assert!(at > h.now && at <= h.now + Duration::from_secs(8));
        h.now = at;
        h.core.handle_timeout(h.now, WALL);
        let acts = h.drain();
        let _ = h.listen(t, acts);
    }
    assert_eq!(h.hangups(), 1);
    // The BYE's end frees the channel and stops the media.
    let end = CallEnd {
        outcome: Outcome::Answered,
        status: 200,
        reason: "bye".into(),
        hangup: Hangup::Local,
        retry_after: None,
    };
    h.core.handle_sip(h.now, WALL, Event::Ended { call, end });
    h.drain();
    assert!(h
        .out
        .iter()
        .any(|a| matches!(a, Action::StopMedia(x) if *x == t)));
    assert_eq!(h.active(), 0);
    assert_eq!(h.core.inbound_calls(), 0);
}

#[test]
fn a_play_waiting_for_speech_is_resent_once_rendered_and_skipped_if_not() {
    let mut h = H::new(4);
    let (call, acts) = h.call("127.0.0.1", "+390771286891", "3331234567");
    let t = H::token(&acts);
    let acts = h.answer(call, t, citizen(None));
    let (id, items) = last_play(&acts).unwrap();
    let r = InboundReply::Rendered {
        token: t,
        id,
        ok: true,
    };
    h.core.handle_store(h.now, WALL, StoreReply::Inbound(r));
    let again = h.drain();
    assert_eq!(last_play(&again), Some((id, items)));
    let r = InboundReply::Rendered {
        token: t,
        id,
        ok: false,
    };
    h.core.handle_store(h.now, WALL, StoreReply::Inbound(r));
    let next = h.drain();
    assert!(
        says(&next, "premi 1"),
        "the failed greeting is skipped: {next:?}"
    );
}

fn pcm() -> Arc<Vec<i16>> {
    Arc::new((0..40_000).map(|i| ((i % 80) * 300) as i16).collect())
}

#[test]
fn the_staff_line_records_plays_back_keeps_and_launches() {
    let mut h = H::new(4);
    let (call, acts) = h.call("127.0.0.1", "+390771286800", "+393471112222");
    let t = H::token(&acts);
    let acts = h.answer(call, t, staff());
    let _ = h.listen(t, acts);
    for d in "2468#".chars() {
        let acts = h.key(t, d);
        if d == '#' {
            let acts = h.listen(t, acts);
            assert!(acts.iter().any(|a| matches!(a, InboundAction::Record { token, max } if *token == t && *max == Duration::from_secs(120))), "{acts:?}");
        }
    }
    let acts = h.key(t, '#');
    assert!(acts
        .iter()
        .any(|a| matches!(a, InboundAction::StopRecord(x) if *x == t)));
    // Playback waits for the take.
    assert!(last_play(&acts).is_none(), "{acts:?}");
    h.core.on_recorded(h.now, WALL, t, pcm(), 8000);
    let acts = h.drain();
    assert!(matches!(
        acts[0],
        InboundAction::PrepareTake { rate: 8000, .. }
    ));
    assert_eq!(last_play(&acts).unwrap().1, [Audio::Take]);
    let _ = h.listen(t, acts);
    let acts = h.key(t, '1');
    assert!(acts.iter().any(
        |a| matches!(a, InboundAction::KeepTake { tenant, rate: 8000, .. } if tenant == "itri")
    ));
    let _ = h.listen(t, acts);
    // The caller chooses before the store answered: the launch waits for the prompt.
    let acts = h.key(t, '1');
    assert!(!acts.iter().any(|a| matches!(a, InboundAction::Launch(_))));
    let kept = Some(("ivr-take-1".to_string(), "ab".repeat(32)));
    let r = InboundReply::TakeKept { token: t, kept };
    h.core.handle_store(h.now, WALL, StoreReply::Inbound(r));
    let acts = h.drain();
    let launch = acts
        .iter()
        .find_map(|a| match a {
            InboundAction::Launch(l) => Some(l.clone()),
            _ => None,
        })
        .expect("launched");
    assert!(launch.now);
    assert_eq!(launch.caller, "+393471112222");
    assert_eq!(launch.prompt, "ivr-take-1");
    assert_eq!(launch.sha256.len(), 64);
    assert_eq!(launch.at_ms, WALL);
}

#[test]
fn wrong_pins_lock_the_caller_out_across_calls() {
    let mut h = H::new(40);
    let mut locked_seen = false;
    for _ in 0..4 {
        let (call, acts) = h.call("127.0.0.1", "+390771286800", "+393471112222");
        let t = H::token(&acts);
        let acts = h.answer(call, t, staff());
        let acts = h.listen(t, acts);
        if says(&acts, "Troppi tentativi") {
            locked_seen = true;
            break;
        }
        for _ in 0..3 {
            for d in "1111#".chars() {
                let acts = h.key(t, d);
                let acts = h.listen(t, acts);
                locked_seen |= says(&acts, "Troppi tentativi");
            }
        }
    }
    assert!(locked_seen, "ten wrong PINs in an hour lock the caller out");
}

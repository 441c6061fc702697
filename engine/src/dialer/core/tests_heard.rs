//! One answered call on virtual time, step by step: the keys the resident presses (by
//! RFC 4733 through the media path and by SIP INFO), the playlists the core asks for, and
//! what is journaled when the call ends (result, until, opt-out).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use super::listen::PlayItem;
use super::tests_support::{spec, trunk_cfg};
use super::*;
use crate::dialer::call_media::MediaNote;
use crate::model::{CallResult, CampaignSpec, CampaignState, NumberType, Outcome, Priority, Until};
use crate::sip::endpoint::{CallEnd, Hangup};
use crate::sip::sdp::NegotiatedMedia;
use crate::store::{AttemptEnd, CampaignRecord, ContactNext, DueContact};

pub(super) const HANDLE: CallHandle = CallHandle(77);

pub(super) fn media() -> NegotiatedMedia {
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

/// A core with one campaign, one contact, its call answered.
pub(super) struct Call {
    pub(super) core: DialerCore,
    pub(super) now: Instant,
    pub(super) wall: i64,
    pub(super) token: CallToken,
    /// Actions seen since the last look.
    pub(super) seen: Vec<Action>,
}

impl Call {
    pub(super) fn answered(spec: CampaignSpec, message: Option<u32>) -> Call {
        let now = Instant::now();
        let addr: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let cfg = CoreConfig {
            media_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            seed: 1,
        };
        let core = DialerCore::new(cfg, vec![(trunk_cfg("a", 50.0, 10), addr)], now);
        let mut c = Call {
            core,
            now,
            wall: 1_800_000_000_000,
            token: CallToken(0),
            seen: vec![],
        };
        let rec = CampaignRecord {
            id: 1,
            spec,
            state: CampaignState::Running,
            created_ms: 0,
        };
        c.core
            .handle_store(c.now, c.wall, StoreReply::Campaigns(vec![rec]));
        let due = DueContact {
            contact: 5,
            number: "+390771000001".into(),
            number_type: NumberType::Fixed,
            attempts: 0,
            message,
        };
        c.core
            .handle_store(c.now, c.wall, StoreReply::Due(CampaignId(1), vec![due]));
        let begin = c.take(|a| matches!(a, Action::JournalBegin(..)));
        let Action::JournalBegin(token, _) = begin else {
            unreachable!()
        };
        c.token = token;
        c.core
            .handle_store(c.now, c.wall, StoreReply::Journaled(token, Ok(9)));
        c.take(|a| matches!(a, Action::Invite { .. }));
        c.core
            .handle_driver(c.now, c.wall, DriverNote::Placed(token, HANDLE));
        c.step(Duration::from_secs(2));
        let ev = Event::Answered {
            call: HANDLE,
            media: media(),
        };
        c.core.handle_sip(c.now, c.wall, ev);
        c
    }

    pub(super) fn step(&mut self, d: Duration) {
        self.now += d;
        self.wall += d.as_millis() as i64;
        self.core.handle_timeout(self.now, self.wall);
    }

    pub(super) fn pump(&mut self) {
        while let Some(a) = self.core.poll_action() {
            self.seen.push(a);
        }
    }

    /// The first action (seen or coming, timers run for at most 5 virtual seconds)
    /// matching `f`; the actions before it are dropped.
    pub(super) fn take(&mut self, f: impl Fn(&Action) -> bool) -> Action {
        for _ in 0..500 {
            self.pump();
            if let Some(i) = self.seen.iter().position(&f) {
                let a = self.seen.remove(i);
                self.seen.drain(..i);
                return a;
            }
            self.step(Duration::from_millis(10));
        }
        panic!("no such action; seen {:?}", self.seen);
    }

    pub(super) fn none(&mut self, f: impl Fn(&Action) -> bool) -> bool {
        self.pump();
        !self.seen.iter().any(f)
    }

    /// The next playlist asked for: its items and id.
    pub(super) fn play(&mut self) -> (Vec<PlayItem>, u32) {
        match self.take(|a| matches!(a, Action::Play { .. })) {
            Action::Play { items, id, call } => {
                assert_eq!(call, self.token);
                (items, id)
            }
            _ => unreachable!(),
        }
    }

    pub(super) fn key(&mut self, digit: char) {
        let note = MediaNote::Digit {
            token: self.token.0,
            digit,
        };
        self.core.handle_media(self.now, self.wall, note);
    }

    pub(super) fn info_key(&mut self, digit: char) {
        let ev = Event::Info {
            call: HANDLE,
            content_type: "application/dtmf-relay".into(),
            body: format!("Signal={digit}\r\nDuration=160\r\n").into_bytes(),
        };
        self.core.handle_sip(self.now, self.wall, ev);
    }

    pub(super) fn played(&mut self, id: u32) {
        let note = MediaNote::Played {
            token: self.token.0,
            id,
        };
        self.core.handle_media(self.now, self.wall, note);
    }

    /// The call ends (our BYE answered or the callee's) with `permille` of the message
    /// sent; what is journaled.
    pub(super) fn end(&mut self, permille: u32) -> (AttemptEnd, ContactNext) {
        let end = CallEnd {
            outcome: Outcome::Answered,
            status: 200,
            reason: "OK".into(),
            hangup: Hangup::Remote,
            retry_after: None,
        };
        self.core
            .handle_sip(self.now, self.wall, Event::Ended { call: HANDLE, end });
        self.take(|a| matches!(a, Action::StopMedia(_)));
        let note = MediaNote::Stopped {
            token: self.token.0,
            packets: 0,
            played_permille: permille,
        };
        self.core.handle_media(self.now, self.wall, note);
        match self.take(|a| matches!(a, Action::JournalFinish(..))) {
            Action::JournalFinish(e, n, _) => (e, n),
            _ => unreachable!(),
        }
    }
}

pub(super) fn is_hangup(a: &Action) -> bool {
    matches!(a, Action::Hangup(h) if *h == HANDLE)
}

#[test]
fn confirm_stops_the_message_thanks_and_records_confirmed() {
    let mut c = Call::answered(spec(), None);
    c.take(|a| matches!(a, Action::StartMedia { .. }));
    c.key('1');
    let (items, id) = c.play();
    assert!(matches!(items[0], PlayItem::Tone { .. }), "{items:?}");
    assert!(c.none(is_hangup), "hangs up only after the thanks");
    c.played(id);
    c.take(is_hangup);
    let (e, next) = c.end(300);
    assert_eq!(e.result, Some(CallResult::Confirmed));
    assert_eq!(e.dtmf.as_deref(), Some("1"));
    assert!(e.satisfied && !e.opt_out);
    assert_eq!(next, ContactNext::Done);
}

#[test]
fn repeat_replays_from_the_first_frame_up_to_max_repeats() {
    let mut s = spec();
    s.delivery.max_repeats = 1;
    let mut c = Call::answered(s, None);
    c.take(|a| matches!(a, Action::StartMedia { .. }));
    c.key('2');
    let (items, id) = c.play();
    assert_eq!(items, vec![PlayItem::Prompt("flood.wav".into())]);
    c.key('2'); // repeats used up: nothing
    assert!(c.none(|a| matches!(a, Action::Play { .. })));
    // The stream's end no longer counts: the playlist replaced it.
    c.core.handle_media(
        c.now,
        c.wall,
        MediaNote::Finished {
            token: c.token.0,
            packets: 1,
        },
    );
    assert!(c.none(is_hangup));
    c.played(id);
    c.take(is_hangup);
    let (e, _) = c.end(1000);
    assert_eq!(e.result, Some(CallResult::Heard));
    assert_eq!(e.dtmf.as_deref(), Some("22"));
}

#[test]
fn optout_by_info_needs_the_confirm_key_then_the_number_is_never_called_again() {
    let mut s = spec();
    s.priority = Priority::Normal;
    s.window = Some(crate::model::CallingWindow::always());
    let mut c = Call::answered(s, None);
    c.take(|a| matches!(a, Action::StartMedia { .. }));
    c.info_key('9');
    let (_, wait) = c.play();
    c.info_key('3'); // not the confirm key: back to the message
    let (items, _) = c.play();
    assert_eq!(items, vec![PlayItem::Prompt("flood.wav".into())]);
    c.info_key('9');
    let (_, wait2) = c.play();
    assert_ne!(wait, wait2);
    c.info_key('1');
    let (_, thanks) = c.play();
    c.played(thanks);
    c.take(is_hangup);
    let (e, next) = c.end(200);
    assert!(e.opt_out);
    assert_eq!(e.dtmf.as_deref(), Some("9391"));
    assert_eq!(next, ContactNext::Done);
}

#[test]
fn emergency_campaigns_offer_no_optout() {
    let mut c = Call::answered(spec(), None);
    c.take(|a| matches!(a, Action::StartMedia { .. }));
    c.key('9');
    assert!(c.none(|a| matches!(a, Action::Play { .. })));
}

#[test]
fn until_confirmed_retries_an_unconfirmed_answer_by_the_no_answer_rule() {
    let mut s = spec();
    s.delivery.until = Until::Confirmed;
    let mut c = Call::answered(s, None);
    c.take(|a| matches!(a, Action::StartMedia { .. }));
    c.core.handle_media(
        c.now,
        c.wall,
        MediaNote::Finished {
            token: c.token.0,
            packets: 100,
        },
    );
    c.take(is_hangup);
    let wall = c.wall;
    let (e, next) = c.end(1000);
    assert_eq!(e.outcome, Outcome::Answered);
    assert_eq!(e.result, Some(CallResult::Heard));
    assert!(!e.satisfied && e.counted);
    let every = crate::dialer::retry::RetryPolicy::default()
        .no_answer
        .interval_s as i64;
    assert_eq!(next, ContactNext::RetryAt(wall + every * 1000));
}

#[test]
fn a_hang_up_mid_message_is_partial_with_its_share() {
    let mut c = Call::answered(spec(), None);
    c.take(|a| matches!(a, Action::StartMedia { .. }));
    let (e, next) = c.end(420);
    assert_eq!(e.result, Some(CallResult::Partial));
    assert_eq!(e.played_permille, Some(420));
    assert_eq!(next, ContactNext::Done); // until = answered
}

#[test]
fn pre_roll_message_then_post_roll_waits_for_the_key() {
    let mut s = spec();
    s.delivery.pre_roll = Some("town.wav".into());
    s.delivery.post_roll = Some("press1.wav".into());
    s.delivery.messages = vec![crate::model::ZoneMessage {
        zones: vec!["Borgo".into()],
        streets: vec![],
        prompt: "borgo.wav".into(),
    }];
    let mut c = Call::answered(s, Some(0));
    match c.take(|a| matches!(a, Action::StartMedia { .. })) {
        Action::StartMedia { prompt, .. } => assert_eq!(prompt, "borgo.wav"),
        _ => unreachable!(),
    }
    let (items, id) = c.play();
    assert_eq!(
        items,
        vec![
            PlayItem::Prompt("town.wav".into()),
            PlayItem::Prompt("borgo.wav".into())
        ]
    );
    c.played(id);
    let (items, post) = c.play();
    assert_eq!(items[0], PlayItem::Prompt("press1.wav".into()));
    assert!(matches!(items[1], PlayItem::Silence { .. }));
    c.key('1'); // during the post-roll: confirmed
    let (_, thanks) = c.play();
    c.played(post); // the replaced post-roll's id: ignored
    assert!(c.none(is_hangup));
    c.played(thanks);
    c.take(is_hangup);
    let (e, _) = c.end(1000);
    assert_eq!(e.result, Some(CallResult::Confirmed));
}

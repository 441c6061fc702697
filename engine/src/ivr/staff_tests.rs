//! The staff line on virtual time: PIN, recording limit, review and dispatch.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::*;
use crate::ivr::CallerId;
use crate::model::NumberType;

fn pin() -> PinHash {
    static P: OnceLock<PinHash> = OnceLock::new();
    P.get_or_init(|| PinHash::new("2468").unwrap()).clone()
}

fn ctx() -> StaffContext {
    StaffContext {
        caller: CallerId::Known {
            e164: "+393331234567".into(),
            number_type: NumberType::Mobile,
        },
        pin: Some(pin()),
        locked: false,
    }
}

struct Call {
    s: StaffLine,
    now: Instant,
}

impl Call {
    fn new(c: StaffContext) -> Call {
        let now = Instant::now();
        Call {
            s: StaffLine::new(now, c, Timing::default()),
            now,
        }
    }

    fn run(&mut self) -> Vec<Action> {
        let mut out = vec![];
        while let Some(a) = self.s.poll_action() {
            if matches!(a, Action::Play(_)) {
                self.now += Duration::from_secs(2);
                self.s.handle_prompt_done(self.now);
            }
            out.push(a);
        }
        out
    }

    fn keys(&mut self, keys: &str) -> Vec<Action> {
        for c in keys.chars() {
            self.now += Duration::from_millis(200);
            self.s.handle_digit(self.now, Key::from_char(c).unwrap());
        }
        self.run()
    }

    fn silence(&mut self) -> Vec<Action> {
        self.now = self.s.poll_timeout().expect("a deadline");
        self.s.handle_timeout(self.now);
        self.run()
    }
}

fn play(p: Prompt) -> Action {
    Action::Play(p)
}

fn recording() -> Vec<Action> {
    vec![
        play(Prompt::RecordAfterBeep),
        play(Prompt::Beep),
        Action::StartRecording,
    ]
}

fn review() -> Vec<Action> {
    vec![
        Action::StopRecording,
        play(Prompt::Playback),
        play(Prompt::KeepOrAgain),
    ]
}

#[test]
fn pin_record_keep_and_send_now() {
    let mut c = Call::new(ctx());
    assert_eq!(c.run(), [play(Prompt::EnterPin)]);
    assert_eq!(c.keys("2468#"), recording());
    // Recording: the limit is 120 s from the beep's end; keys other than # are ignored.
    assert_eq!(c.s.poll_timeout(), Some(c.now + Duration::from_secs(120)));
    assert_eq!(c.keys("5"), []);
    assert_eq!(c.keys("#"), review());
    assert_eq!(
        c.keys("1"),
        [Action::KeepRecording, play(Prompt::SendOrDraft)]
    );
    assert_eq!(
        c.keys("1"),
        [Action::LaunchEmergency, play(Prompt::Sent), Action::Hangup]
    );
    assert_eq!(c.s.poll_timeout(), None);
}

#[test]
fn the_recording_stops_at_120_seconds_and_can_be_redone_then_drafted() {
    let mut c = Call::new(ctx());
    c.run();
    c.keys("2468#");
    let beep_end = c.now;
    assert_eq!(c.silence(), review());
    // The stop came exactly at the limit (the playback prompt then took 2 s).
    assert_eq!(
        c.now,
        beep_end + Duration::from_secs(120) + Duration::from_secs(4)
    );
    let mut again = vec![Action::DiscardRecording];
    again.extend(recording());
    assert_eq!(c.keys("2"), again);
    assert_eq!(c.keys("#"), review());
    c.keys("1");
    assert_eq!(
        c.keys("2"),
        [Action::SaveDraft, play(Prompt::DraftSaved), Action::Hangup]
    );
}

#[test]
fn a_pin_without_hash_is_taken_after_the_inter_digit_timeout() {
    let mut c = Call::new(ctx());
    c.run();
    assert_eq!(c.keys("2468"), []);
    assert_eq!(c.s.poll_timeout(), Some(c.now + Duration::from_secs(3)));
    assert_eq!(c.silence(), recording());
}

#[test]
fn three_wrong_pins_end_the_call_and_each_is_reported() {
    let mut c = Call::new(ctx());
    c.run();
    let wrong = [
        Action::PinFailed,
        play(Prompt::WrongPin),
        play(Prompt::EnterPin),
    ];
    assert_eq!(c.keys("1111#"), wrong);
    assert_eq!(c.keys("2222#"), wrong);
    assert_eq!(
        c.keys("3333#"),
        [
            Action::PinFailed,
            play(Prompt::WrongPin),
            play(Prompt::Goodbye),
            Action::Hangup
        ]
    );
    assert_eq!(c.keys("2468#"), []);
}

#[test]
fn refusals_before_the_pin() {
    for (c, p) in [
        (
            StaffContext {
                caller: CallerId::Withheld,
                ..ctx()
            },
            Prompt::NumberRequired,
        ),
        (StaffContext { pin: None, ..ctx() }, Prompt::NoPin),
        (
            StaffContext {
                locked: true,
                ..ctx()
            },
            Prompt::LockedOut,
        ),
    ] {
        let mut call = Call::new(c);
        assert_eq!(call.run(), [play(p), Action::Hangup]);
        assert_eq!(call.keys("2468#"), []);
    }
}

#[test]
fn a_lockout_reported_by_the_guard_ends_the_call() {
    let mut c = Call::new(ctx());
    c.run();
    c.keys("1111#");
    c.s.handle_locked_out(c.now);
    assert_eq!(c.run(), [play(Prompt::LockedOut), Action::Hangup]);
}

#[test]
fn silences_at_the_review_are_mistakes_and_star_repeats() {
    let mut c = Call::new(ctx());
    c.run();
    c.keys("2468#");
    c.keys("#");
    assert_eq!(
        c.keys("*"),
        [play(Prompt::Playback), play(Prompt::KeepOrAgain)]
    );
    assert_eq!(
        c.keys("7"),
        [
            play(Prompt::Invalid),
            play(Prompt::Playback),
            play(Prompt::KeepOrAgain)
        ]
    );
    c.silence();
    assert_eq!(c.silence(), [play(Prompt::TooManyMistakes), Action::Hangup]);
}

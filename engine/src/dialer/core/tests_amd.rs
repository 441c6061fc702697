//! Campaign calls that detect answering machines, on virtual time: the call answers in
//! silence, the detector's notes (or its deadlines) decide, and the message starts on the
//! very input that allows it (the beep, the greeting's end, a person's verdict).

use std::time::Duration;

use super::amd::{MAILBOX_WAIT_MS, VERDICT_GRACE_MS};
use super::tests_heard::{is_hangup, Call};
use super::tests_support::spec;
use super::*;
use crate::dialer::call_media::MediaNote;
use crate::media::amd::{AmdConfig, AmdDecision, AmdReason, AmdVerdict};
use crate::model::heard::AmdSpec;
use crate::model::{AmdPolicy, CallResult, CampaignSpec};
use crate::store::ContactNext;

fn amd_spec(policy: AmdPolicy) -> CampaignSpec {
    let mut s = spec();
    s.delivery.amd = Some(AmdSpec {
        policy,
        params: Default::default(),
    });
    s
}

/// A call of a campaign with `policy`, answered and screening.
fn screened(policy: AmdPolicy) -> Call {
    let mut c = Call::answered(amd_spec(policy), None);
    match c.take(|a| matches!(a, Action::StartScreening { .. })) {
        Action::StartScreening { call, amd, .. } => {
            assert_eq!(call, c.token);
            assert_eq!(*amd, AmdConfig::default());
        }
        _ => unreachable!(),
    }
    assert!(c.none(|a| matches!(a, Action::StartMedia { .. } | Action::Play { .. })));
    c
}

fn verdict(c: &mut Call, verdict: AmdVerdict, at_ms: u32) {
    let reason = match verdict {
        AmdVerdict::Machine => AmdReason::LongGreeting,
        AmdVerdict::Human => AmdReason::AfterGreetingSilence,
        AmdVerdict::Unsure => AmdReason::TooLong,
    };
    let decision = AmdDecision {
        verdict,
        at_ms,
        reason,
    };
    let note = MediaNote::Amd {
        token: c.token.0,
        decision,
    };
    c.core.handle_media(c.now, c.wall, note);
}

fn beep(c: &mut Call, at_ms: u32) {
    let token = c.token.0;
    c.core
        .handle_media(c.now, c.wall, MediaNote::Beep { token, at_ms });
}

fn greeting_end(c: &mut Call, at_ms: u32) {
    let token = c.token.0;
    let note = MediaNote::GreetingEnd { token, at_ms };
    c.core.handle_media(c.now, c.wall, note);
}

/// The message playlist asked for on the input just given (no virtual time passes).
fn plays_now(c: &mut Call) -> u32 {
    c.pump();
    let i = c
        .seen
        .iter()
        .position(|a| matches!(a, Action::Play { .. }))
        .unwrap_or_else(|| panic!("no Play at once; seen {:?}", c.seen));
    let Action::Play { items, id, .. } = c.seen.remove(i) else {
        unreachable!()
    };
    assert_eq!(items, vec![PlayItem::Prompt("flood.wav".into())]);
    id
}

use super::listen::PlayItem;

#[test]
fn drop_leaves_the_message_on_the_beep() {
    let mut c = screened(AmdPolicy::Drop);
    c.step(Duration::from_millis(1500));
    c.key('1'); // keys mean nothing while screening
    verdict(&mut c, AmdVerdict::Machine, 1500);
    c.step(Duration::from_millis(1000));
    assert!(c.none(|a| matches!(a, Action::Play { .. }) || is_hangup(a)));
    beep(&mut c, 2900);
    let id = plays_now(&mut c);
    c.step(Duration::from_secs(4));
    c.played(id);
    c.take(is_hangup);
    let (e, next) = c.end(0);
    assert_eq!(e.result, Some(CallResult::Machine));
    assert!(e.satisfied, "a message left whole counts as heard");
    assert_eq!(e.beep_ms, Some(2900));
    assert_eq!(next, ContactNext::Done);
}

#[test]
fn drop_without_a_beep_plays_at_the_greetings_end_or_when_the_wait_runs_out() {
    let mut c = screened(AmdPolicy::Drop);
    verdict(&mut c, AmdVerdict::Machine, 1600);
    c.step(Duration::from_millis(2000));
    greeting_end(&mut c, 3300);
    plays_now(&mut c);
    // A late beep changes nothing.
    beep(&mut c, 3600);
    assert!(c.none(|a| matches!(a, Action::Play { .. })));

    let mut c = screened(AmdPolicy::Drop);
    verdict(&mut c, AmdVerdict::Machine, 1600);
    c.step(Duration::from_millis(u64::from(MAILBOX_WAIT_MS) - 10));
    assert!(c.none(|a| matches!(a, Action::Play { .. })));
    c.step(Duration::from_millis(20));
    plays_now(&mut c);
}

#[test]
fn hangup_plays_nothing_and_the_contact_is_done() {
    let mut c = screened(AmdPolicy::Hangup);
    verdict(&mut c, AmdVerdict::Machine, 1700);
    c.pump();
    assert!(c.seen.iter().any(is_hangup), "{:?}", c.seen);
    assert!(c.none(|a| matches!(a, Action::Play { .. })));
    let (e, next) = c.end(0);
    assert_eq!(e.result, Some(CallResult::Machine));
    assert_eq!(e.beep_ms, None);
    assert_eq!(next, ContactNext::Done);
}

#[test]
fn retry_later_hangs_up_and_calls_again_by_the_no_answer_rule() {
    let mut c = screened(AmdPolicy::RetryLater);
    verdict(&mut c, AmdVerdict::Machine, 1700);
    c.take(is_hangup);
    let wall = c.wall;
    let (e, next) = c.end(0);
    assert_eq!(e.result, Some(CallResult::Machine));
    assert!(!e.satisfied && e.counted);
    let every = spec().retry.no_answer.interval_s as i64;
    assert_eq!(next, ContactNext::RetryAt(wall + every * 1000));
}

#[test]
fn a_person_hears_the_message_at_once_and_silence_gets_it_after_the_bound() {
    let mut c = screened(AmdPolicy::Hangup);
    c.step(Duration::from_millis(1200));
    verdict(&mut c, AmdVerdict::Human, 1200);
    let id = plays_now(&mut c);
    c.key('1'); // keys work once the message plays
    c.pump();
    assert!(c.seen.iter().any(|a| matches!(a, Action::Play { .. })));
    let _ = id;
    let (e, _) = c.end(300);
    assert_eq!(e.result, Some(CallResult::Confirmed));

    // No audio at all, so no verdict: the message after the analysis bound and its grace.
    let mut c = screened(AmdPolicy::Hangup);
    let bound = AmdConfig::default().total_analysis_ms + VERDICT_GRACE_MS;
    c.step(Duration::from_millis(u64::from(bound) - 10));
    assert!(c.none(|a| matches!(a, Action::Play { .. }) || is_hangup(a)));
    c.step(Duration::from_millis(20));
    plays_now(&mut c);
    // A verdict after that changes nothing: the message plays on.
    verdict(&mut c, AmdVerdict::Machine, 7000);
    assert!(c.none(is_hangup));
    let (e, _) = c.end(100);
    assert_eq!(e.result, Some(CallResult::Partial));
}

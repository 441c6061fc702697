//! Answering machines on campaign calls. A campaign with `amd` answers its calls in
//! silence while the media path listens (`CallMedia::analyse`); what it hears (the verdict,
//! a beep, the end of a machine's greeting) or a deadline decides, by [`screen`], whether the
//! message plays now, waits for the mailbox to record, or the call hangs up. A person or an
//! undecided call hears the message at once: taking a person for a machine is the costly
//! error, so doubt plays the message.

use std::time::{Duration, Instant};

use tracing::debug;

use super::io::{Action, CallToken};
use super::timers::Deadline;
use super::DialerCore;
use crate::media::amd::{AmdConfig, AmdDecision, AmdVerdict};
use crate::model::heard::{AmdSpec, MachineStep, Stage};
use crate::model::AmdPolicy;

/// Time allowed past the detector's own analysis bound for its verdict to arrive (the
/// callee's audio may start late or not at all: no audio, no verdict).
pub const VERDICT_GRACE_MS: u32 = 1_500;
/// Longest wait, after a `machine` verdict, for the beep or the greeting's end before the
/// message is left anyway.
pub const MAILBOX_WAIT_MS: u32 = 20_000;

/// Where a screened call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// The detector listens; nothing plays.
    Listening,
    /// A machine: silence until its beep (or its greeting's end), then the message.
    AwaitingBeep,
    /// Decided: the message plays, or the call hangs up.
    Done,
}

/// What the screen is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// The detector's verdict.
    Verdict(AmdVerdict),
    /// A beep ended in the callee's audio.
    Beep,
    /// A machine's greeting stopped (silence after it) with no beep.
    GreetingEnd,
    /// The screen's deadline passed.
    TimedOut,
}

/// What the call does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScreenStep {
    /// Nothing yet.
    Wait,
    /// Play the message from its first frame.
    PlayMessage,
    /// Hang up without playing.
    HangUp,
}

/// The screen's decision on one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Screened {
    /// Where the call goes.
    pub next: Screen,
    /// What it does now.
    pub step: ScreenStep,
    /// The callee is now known to be a machine.
    pub machine: bool,
}

const fn to(next: Screen, step: ScreenStep, machine: bool) -> Screened {
    Screened {
        next,
        step,
        machine,
    }
}

/// The campaign's machine policy applied to what the call heard.
///
/// - A person, or no verdict in time (`unsure`, or the deadline): the message, now.
/// - A machine: `drop` waits for the beep; `hangup` and `retry_later` hang up.
/// - A beep before the verdict is a machine ready to record: `drop` plays at once.
/// - Waiting for the beep, the beep or the greeting's end (silence without a beep) plays
///   the message; so does the wait running out (the mailbox records something, better the
///   message than nothing).
pub fn screen(policy: AmdPolicy, at: Screen, heard: Heard) -> Screened {
    use ScreenStep::*;
    let machine = |after_beep: bool| match (policy.on_machine(), after_beep) {
        (MachineStep::HangUp, _) => to(Screen::Done, HangUp, true),
        (MachineStep::WaitForBeep, true) => to(Screen::Done, PlayMessage, true),
        (MachineStep::WaitForBeep, false) => to(Screen::AwaitingBeep, Wait, true),
    };
    match (at, heard) {
        (Screen::Listening, Heard::Verdict(AmdVerdict::Machine)) => machine(false),
        (Screen::Listening, Heard::Beep) => machine(true),
        (Screen::Listening, Heard::Verdict(_) | Heard::TimedOut) => {
            to(Screen::Done, PlayMessage, false)
        }
        (Screen::AwaitingBeep, Heard::Beep | Heard::GreetingEnd | Heard::TimedOut) => {
            to(Screen::Done, PlayMessage, true)
        }
        (at, _) => to(at, Wait, at == Screen::AwaitingBeep),
    }
}

/// How long a screen may stay at `at` before [`Heard::TimedOut`].
pub fn screen_deadline(at: Screen, cfg: &AmdConfig) -> Option<Duration> {
    let ms = match at {
        Screen::Listening => cfg.total_analysis_ms + VERDICT_GRACE_MS,
        Screen::AwaitingBeep => MAILBOX_WAIT_MS,
        Screen::Done => return None,
    };
    Some(Duration::from_millis(u64::from(ms)))
}

/// The detector's configuration from a campaign's `amd` (parameters by name; the
/// validated names of `model::heard::AMD_PARAMS`, absent ones at their defaults).
pub fn amd_config(spec: &AmdSpec) -> AmdConfig {
    let mut c = AmdConfig::default();
    for (k, &v) in &spec.params {
        match k.as_str() {
            "initial_silence_ms" => c.initial_silence_ms = v,
            "greeting_ms" => c.greeting_ms = v,
            "after_greeting_silence_ms" => c.after_greeting_silence_ms = v,
            "total_analysis_ms" => c.total_analysis_ms = v,
            "min_word_ms" => c.min_word_ms = v,
            "between_words_silence_ms" => c.between_words_silence_ms = v,
            "maximum_words" => c.maximum_words = v,
            "silence_threshold" => c.silence_threshold = v.min(u32::from(u16::MAX)) as u16,
            _ => {} // refused at validation
        }
    }
    c
}

/// What detection found on a call, for its journal record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Detected {
    /// Where the call's screen is (none: the campaign does not detect machines).
    pub screen: Option<Screen>,
    /// The verdict and when (ms of audio after the answer).
    pub decision: Option<AmdDecision>,
    /// When the first beep ended, ms of audio after the answer.
    pub beep_ms: Option<u32>,
}

impl DialerCore {
    /// An answered call of a campaign that detects machines: silence and the detector, and
    /// the deadline of its verdict.
    pub(super) fn start_screening(
        &mut self,
        now: Instant,
        token: CallToken,
        media: Box<crate::sip::sdp::NegotiatedMedia>,
    ) {
        let Some(a) = self.calls.get_mut(&token) else {
            return;
        };
        let cfg = a.plan.amd_config.clone().unwrap_or_default();
        a.listen.stage = Some(Stage::Screening);
        a.listen.amd.screen = Some(Screen::Listening);
        let latch = self.trunks[a.trunk.0].cfg().media_latch;
        if let Some(d) = screen_deadline(Screen::Listening, &cfg) {
            self.timers.set(Deadline::Amd(token), now + d);
        }
        self.actions.push_back(Action::StartScreening {
            call: token,
            media,
            latch,
            amd: Box::new(cfg),
        });
    }

    /// What the detector (or the deadline) said about a screened call.
    pub(super) fn on_screen(&mut self, now: Instant, token: CallToken, heard: Heard) {
        let Some(a) = self.calls.get_mut(&token) else {
            return;
        };
        let (Some(policy), Some(at)) = (a.plan.amd, a.listen.amd.screen) else {
            return;
        };
        if !a.phase.plays_media() {
            return; // ending: too late to play anything
        }
        let s = screen(policy, at, heard);
        debug!(call = token.0, ?heard, ?s, "screen");
        a.listen.amd.screen = Some(s.next);
        a.listen.facts.machine |= s.machine;
        if s.next != at {
            let cfg = a.plan.amd_config.clone().unwrap_or_default();
            match screen_deadline(s.next, &cfg) {
                Some(d) => self.timers.set(Deadline::Amd(token), now + d),
                None => self.timers.stop(Deadline::Amd(token)),
            }
        }
        match s.step {
            ScreenStep::Wait => {}
            ScreenStep::PlayMessage => self.play_message(token),
            ScreenStep::HangUp => {
                if let Some(h) = a.phase.call() {
                    self.actions.push_back(Action::Hangup(h));
                }
            }
        }
    }

    /// The detector's verdict on a call.
    pub(super) fn on_amd(&mut self, now: Instant, token: CallToken, decision: AmdDecision) {
        if let Some(a) = self.calls.get_mut(&token) {
            a.listen.amd.decision.get_or_insert(decision);
        }
        self.on_screen(now, token, Heard::Verdict(decision.verdict));
    }

    /// A beep in a call's audio.
    pub(super) fn on_beep(&mut self, now: Instant, token: CallToken, at_ms: u32) {
        if let Some(a) = self.calls.get_mut(&token) {
            a.listen.amd.beep_ms.get_or_insert(at_ms);
        }
        self.on_screen(now, token, Heard::Beep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AmdVerdict::*;

    fn all(policy: AmdPolicy, steps: &[Heard]) -> Vec<Screened> {
        let mut at = Screen::Listening;
        steps
            .iter()
            .map(|h| {
                let s = screen(policy, at, *h);
                at = s.next;
                s
            })
            .collect()
    }

    #[test]
    fn people_and_doubt_hear_the_message_at_once() {
        for p in [AmdPolicy::Drop, AmdPolicy::Hangup, AmdPolicy::RetryLater] {
            for h in [
                Heard::Verdict(Human),
                Heard::Verdict(Unsure),
                Heard::TimedOut,
            ] {
                let s = screen(p, Screen::Listening, h);
                assert_eq!(
                    s,
                    to(Screen::Done, ScreenStep::PlayMessage, false),
                    "{p:?} {h:?}"
                );
            }
        }
    }

    #[test]
    fn drop_waits_for_the_beep_then_plays() {
        let s = all(AmdPolicy::Drop, &[Heard::Verdict(Machine), Heard::Beep]);
        assert_eq!(s[0], to(Screen::AwaitingBeep, ScreenStep::Wait, true));
        assert_eq!(s[1], to(Screen::Done, ScreenStep::PlayMessage, true));
        // Without a beep, the greeting's end; without either, the wait running out.
        let s = all(
            AmdPolicy::Drop,
            &[Heard::Verdict(Machine), Heard::GreetingEnd],
        );
        assert_eq!(s[1].step, ScreenStep::PlayMessage);
        let s = all(AmdPolicy::Drop, &[Heard::Verdict(Machine), Heard::TimedOut]);
        assert_eq!(s[1].step, ScreenStep::PlayMessage);
        // Once played, a later beep or greeting end does nothing.
        let s = all(
            AmdPolicy::Drop,
            &[
                Heard::Verdict(Machine),
                Heard::Beep,
                Heard::GreetingEnd,
                Heard::Beep,
            ],
        );
        assert!(s[2..]
            .iter()
            .all(|x| x.step == ScreenStep::Wait && x.next == Screen::Done));
    }

    #[test]
    fn a_beep_before_the_verdict_is_a_machine_ready_to_record() {
        let s = screen(AmdPolicy::Drop, Screen::Listening, Heard::Beep);
        assert_eq!(s, to(Screen::Done, ScreenStep::PlayMessage, true));
        let s = screen(AmdPolicy::Hangup, Screen::Listening, Heard::Beep);
        assert_eq!(s, to(Screen::Done, ScreenStep::HangUp, true));
        // The verdict after it changes nothing.
        let s = screen(AmdPolicy::Drop, Screen::Done, Heard::Verdict(Machine));
        assert_eq!(s.step, ScreenStep::Wait);
    }

    #[test]
    fn hangup_and_retry_later_hang_up_on_machines() {
        for p in [AmdPolicy::Hangup, AmdPolicy::RetryLater] {
            let s = screen(p, Screen::Listening, Heard::Verdict(Machine));
            assert_eq!(s, to(Screen::Done, ScreenStep::HangUp, true));
        }
        // A greeting end before any verdict means nothing.
        let s = screen(AmdPolicy::Drop, Screen::Listening, Heard::GreetingEnd);
        assert_eq!(s, to(Screen::Listening, ScreenStep::Wait, false));
    }

    #[test]
    fn deadlines_bound_each_wait() {
        let cfg = AmdConfig::default();
        assert_eq!(
            screen_deadline(Screen::Listening, &cfg),
            Some(Duration::from_millis(u64::from(
                cfg.total_analysis_ms + VERDICT_GRACE_MS
            )))
        );
        assert_eq!(
            screen_deadline(Screen::AwaitingBeep, &cfg),
            Some(Duration::from_millis(u64::from(MAILBOX_WAIT_MS)))
        );
        assert_eq!(screen_deadline(Screen::Done, &cfg), None);
    }

    #[test]
    fn campaign_parameters_reach_the_detector() {
        let spec: AmdSpec = serde_json::from_str(
            r#"{"policy":"drop","greeting_ms":2000,"maximum_words":5,"silence_threshold":400}"#,
        )
        .unwrap();
        let c = amd_config(&spec);
        assert_eq!(
            (c.greeting_ms, c.maximum_words, c.silence_threshold),
            (2000, 5, 400)
        );
        assert_eq!(c.min_word_ms, AmdConfig::default().min_word_ms);
    }
}

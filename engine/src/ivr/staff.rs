//! The staff line: a PIN, then a message recorded after the beep, heard back, kept or
//! recorded again, then sent now to the whole town as an emergency or kept as a draft.
//!
//! ```text
//! Pin --right PIN #--> Recording --# or 120 s--> Review --1--> Dispatch --1--> launched, bye
//!  | three wrong: bye                              | 2: record again   --2--> draft, bye
//! ```
//! A caller locked out by the [`super::PinGuard`] (ten wrong PINs in an hour) is told so
//! and the call ends before the PIN is asked.

use std::time::Instant;

use super::caller::CallerId;
use super::pin::PinHash;
use super::script::{Key, Script};
use super::{Action, Prompt, Timing};

/// Wrong PINs that end a call.
pub const WRONG_PINS_PER_CALL: u8 = 3;
/// Longest PIN entry (longer is taken as entered).
const MAX_PIN_KEYS: usize = 10;

/// What the staff line knows when the call starts (looked up by the driver).
#[derive(Debug, Clone)]
pub struct StaffContext {
    /// Who calls.
    pub caller: CallerId,
    /// The tenant's PIN; None: not set, the line is closed.
    pub pin: Option<PinHash>,
    /// The caller is locked out now.
    pub locked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Entering the PIN; `wrong` so far in this call.
    Pin { wrong: u8 },
    /// Recording the message.
    Recording,
    /// 1 keep, 2 again.
    Review,
    /// 1 send now, 2 draft.
    Dispatch,
    /// Saying goodbye.
    Done,
}

/// The staff line for one call.
#[derive(Debug)]
pub struct StaffLine {
    ctx: StaffContext,
    timing: Timing,
    state: State,
    script: Script,
}

fn record() -> [Action; 3] {
    [
        Action::Play(Prompt::RecordAfterBeep),
        Action::Play(Prompt::Beep),
        Action::StartRecording,
    ]
}

impl StaffLine {
    /// Starts the line: the PIN question, or a refusal (withheld number, no PIN set,
    /// caller locked out).
    pub fn new(now: Instant, ctx: StaffContext, timing: Timing) -> StaffLine {
        let refusal = if ctx.caller.number().is_none() {
            Some(Prompt::NumberRequired)
        } else if ctx.pin.is_none() {
            Some(Prompt::NoPin)
        } else if ctx.locked {
            Some(Prompt::LockedOut)
        } else {
            None
        };
        let mut s = StaffLine {
            ctx,
            timing,
            state: State::Pin { wrong: 0 },
            script: Script::new(now),
        };
        match refusal {
            Some(p) => s.end(now, [Action::Play(p)]),
            None => s.script.replace(now, [Action::Play(Prompt::EnterPin)]),
        }
        s
    }

    /// The next action for the driver.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.script.poll()
    }

    /// When [`Self::handle_timeout`] is next due (the recording limit while recording).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let wait = match self.state {
            State::Recording => self.timing.max_recording,
            _ => self.timing.digit,
        };
        self.script.deadline(wait, self.timing.inter_digit)
    }

    /// The prompt asked for last has finished playing.
    pub fn handle_prompt_done(&mut self, now: Instant) {
        self.script.prompt_done(now);
    }

    /// The driver's guard locked this caller out (after a [`Action::PinFailed`]).
    pub fn handle_locked_out(&mut self, now: Instant) {
        if !self.script.ended {
            self.end(now, [Action::Play(Prompt::LockedOut)]);
        }
    }

    /// A silence, an unfinished PIN, or the recording limit.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_none_or(|d| now < d) {
            return;
        }
        match self.state {
            State::Recording => self.stop_recording(now),
            State::Pin { .. } if !self.script.entry.is_empty() => self.check_pin(now),
            _ => {
                let q = self.question();
                self.script.mistake(now, false, q);
            }
        }
    }

    /// A key from the caller.
    pub fn handle_digit(&mut self, now: Instant, key: Key) {
        if self.script.ended {
            return;
        }
        match (self.state, key) {
            (State::Pin { .. }, Key::Digit(d)) => {
                if self.script.entry.is_empty() {
                    self.script.replace(now, []);
                }
                self.script.push_key(now, char::from(b'0' + d));
                if self.script.entry.len() >= MAX_PIN_KEYS {
                    self.check_pin(now);
                }
            }
            (State::Pin { .. }, Key::Hash) if !self.script.entry.is_empty() => self.check_pin(now),
            (State::Recording, Key::Hash) => self.stop_recording(now),
            (State::Recording, _) => {}
            (_, Key::Hash) => self.end(now, [Action::Play(Prompt::Goodbye)]),
            (_, Key::Star) => {
                let q = self.question();
                self.script.replace(now, q);
            }
            (State::Review, Key::Digit(1)) => {
                self.state = State::Dispatch;
                self.script.replace(
                    now,
                    [Action::KeepRecording, Action::Play(Prompt::SendOrDraft)],
                );
            }
            (State::Review, Key::Digit(2)) => {
                self.state = State::Recording;
                let again = std::iter::once(Action::DiscardRecording).chain(record());
                self.script.replace(now, again);
            }
            (State::Dispatch, Key::Digit(1)) => {
                self.end(now, [Action::LaunchEmergency, Action::Play(Prompt::Sent)])
            }
            (State::Dispatch, Key::Digit(2)) => {
                self.end(now, [Action::SaveDraft, Action::Play(Prompt::DraftSaved)])
            }
            _ => {
                let q = self.question();
                self.script.mistake(now, true, q);
            }
        }
    }

    fn end(&mut self, now: Instant, actions: impl IntoIterator<Item = Action>) {
        self.state = State::Done;
        self.script.finish(now, actions);
    }

    fn question(&self) -> Vec<Action> {
        let p = match self.state {
            State::Pin { .. } | State::Recording | State::Done => Prompt::EnterPin,
            State::Review => {
                return vec![
                    Action::Play(Prompt::Playback),
                    Action::Play(Prompt::KeepOrAgain),
                ]
            }
            State::Dispatch => Prompt::SendOrDraft,
        };
        vec![Action::Play(p)]
    }

    fn check_pin(&mut self, now: Instant) {
        let State::Pin { wrong } = self.state else {
            return;
        };
        let entered = std::mem::take(&mut self.script.entry);
        let right = self.ctx.pin.as_ref().is_some_and(|p| p.verify(&entered));
        if right {
            self.state = State::Recording;
            return self.script.replace(now, record());
        }
        let wrong = wrong + 1;
        if wrong >= WRONG_PINS_PER_CALL {
            let bye = [
                Action::PinFailed,
                Action::Play(Prompt::WrongPin),
                Action::Play(Prompt::Goodbye),
            ];
            return self.end(now, bye);
        }
        self.state = State::Pin { wrong };
        let again = [
            Action::PinFailed,
            Action::Play(Prompt::WrongPin),
            Action::Play(Prompt::EnterPin),
        ];
        self.script.replace(now, again);
    }

    fn stop_recording(&mut self, now: Instant) {
        self.state = State::Review;
        let mut review = vec![Action::StopRecording];
        review.extend(self.question());
        self.script.replace(now, review);
    }
}

#[cfg(test)]
#[path = "staff_tests.rs"]
mod tests;

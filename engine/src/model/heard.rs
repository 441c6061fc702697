//! Whether a message was heard: the keys a resident may press while it plays, what each
//! does in each stage of the call, what a call's result is (heard, confirmed, partial,
//! machine), when a contact is done under the campaign's `until`, and what the campaign's
//! answering-machine policy does. Pure rules over data; the dialer core acts on them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Keys a campaign may use (RFC 4733 events 0–11).
pub const KEYS: &str = "0123456789*#";
/// Most restarts of the message a resident may ask for with the repeat key.
pub const MAX_REPEATS: u32 = 5;

/// When a contact of a campaign is done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Until {
    /// Answered is enough (the behaviour before keys existed).
    #[default]
    Answered,
    /// The whole message played (or the resident confirmed).
    Heard,
    /// The resident pressed the confirm key; the others are retried by policy.
    Confirmed,
}

impl Until {
    /// The stored and API word.
    pub fn as_str(&self) -> &'static str {
        match self {
            Until::Answered => "answered",
            Until::Heard => "heard",
            Until::Confirmed => "confirmed",
        }
    }

    /// Parses the word.
    pub fn parse(s: &str) -> Option<Until> {
        Some(match s {
            "answered" => Until::Answered,
            "heard" => Until::Heard,
            "confirmed" => Until::Confirmed,
            _ => return None,
        })
    }

    /// Whether an answered call with these facts finishes its contact. A message dropped
    /// whole into a mailbox counts as heard (the resident will find it), never as confirmed.
    pub fn met(self, facts: &Listened) -> bool {
        match self {
            Until::Answered => true,
            Until::Heard => facts.confirmed || facts.message_done,
            Until::Confirmed => facts.confirmed,
        }
    }
}

/// What the campaign does when answering-machine detection says `machine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AmdPolicy {
    /// Leave the message in the mailbox: play it right after the beep, or after the
    /// greeting's end when no beep comes.
    Drop,
    /// Hang up without playing; the contact is done (`machine`).
    Hangup,
    /// Hang up without playing and call again by the `no_answer` retry rule.
    RetryLater,
}

impl AmdPolicy {
    /// The word.
    pub fn as_str(&self) -> &'static str {
        match self {
            AmdPolicy::Drop => "drop",
            AmdPolicy::Hangup => "hangup",
            AmdPolicy::RetryLater => "retry_later",
        }
    }

    /// What a call does once detection decided `machine`.
    pub fn on_machine(self) -> MachineStep {
        match self {
            AmdPolicy::Drop => MachineStep::WaitForBeep,
            AmdPolicy::Hangup | AmdPolicy::RetryLater => MachineStep::HangUp,
        }
    }

    /// Whether a machine is called again later (by the `no_answer` rule).
    pub fn retries(self) -> bool {
        self == AmdPolicy::RetryLater
    }
}

/// What a call does after a `machine` verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineStep {
    /// Silence until the beep (or the greeting's end), then the message from frame 0.
    WaitForBeep,
    /// Hang up; nothing is played.
    HangUp,
}

/// Answering-machine detection of a campaign: the policy and the detector's parameters
/// (the names of `engine::media::amd::AmdConfig`; absent ones take its defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AmdSpec {
    /// What to do with machines.
    pub policy: AmdPolicy,
    /// Detector parameters by name, milliseconds or counts.
    #[serde(flatten)]
    pub params: std::collections::BTreeMap<String, u32>,
}

/// Detector parameters a campaign may set, with their upper bound.
pub const AMD_PARAMS: [(&str, u32); 8] = [
    ("initial_silence_ms", 10_000),
    ("greeting_ms", 10_000),
    ("after_greeting_silence_ms", 5_000),
    ("total_analysis_ms", 10_000),
    ("min_word_ms", 2_000),
    ("between_words_silence_ms", 2_000),
    ("maximum_words", 20),
    ("silence_threshold", 32_767),
];

impl AmdSpec {
    /// Every parameter is a known name within its bound.
    pub fn validate(&self) -> Result<(), String> {
        for (k, v) in &self.params {
            match AMD_PARAMS.iter().find(|(n, _)| n == k) {
                None => return Err(format!("amd.{k}: unknown parameter")),
                Some((_, max)) if v > max => return Err(format!("amd.{k}: 0..={max}")),
                _ => {}
            }
        }
        Ok(())
    }
}

/// The keys of a campaign as they apply to its calls (opt-out only on normal campaigns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keys {
    /// Stops the message, plays the acknowledgement and records `confirmed`.
    pub confirm: Option<char>,
    /// Restarts the message from its first frame.
    pub repeat: Option<char>,
    /// Asks to be called no more; the confirm key then makes it so.
    pub optout: Option<char>,
    /// Restarts allowed per call.
    pub max_repeats: u32,
}

/// Where an answered call is, as far as keys are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Detection is listening (nothing plays yet) or a machine's greeting is running.
    Screening,
    /// The message playlist (pre-roll, message plays, post-roll) plays; `repeats` restarts
    /// so far.
    Message {
        /// Restarts by the repeat key so far.
        repeats: u32,
    },
    /// The opt-out key was pressed: the confirm key now opts out, any other key (or the
    /// wait running out) goes back to the message.
    OptOutAsked {
        /// Restarts so far (kept for the message that resumes).
        repeats: u32,
    },
    /// The acknowledgement plays; the call hangs up at its end. Keys do nothing.
    Closing,
}

/// What a key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyEffect {
    /// Nothing (unknown key, repeats used up, the wrong stage).
    Ignore,
    /// Stop the message, play the acknowledgement, record `confirmed`, hang up after it.
    Confirm,
    /// Play the message again from its first frame.
    Repeat,
    /// Stop the message and wait for the confirm key.
    AskOptOut,
    /// Opt-out confirmed: record it, acknowledge, hang up; the number is never called again.
    OptOut,
    /// Opt-out not confirmed: the message plays again from its first frame.
    BackToMessage,
}

impl Keys {
    /// What `digit` does in `stage`, and the stage after it.
    pub fn press(&self, stage: Stage, digit: char) -> (KeyEffect, Stage) {
        let is = |k: Option<char>| k == Some(digit);
        match stage {
            Stage::Message { repeats } => {
                if is(self.confirm) {
                    (KeyEffect::Confirm, Stage::Closing)
                } else if is(self.repeat) && repeats < self.max_repeats {
                    let repeats = repeats + 1;
                    (KeyEffect::Repeat, Stage::Message { repeats })
                } else if is(self.optout) && self.confirm.is_some() {
                    (KeyEffect::AskOptOut, Stage::OptOutAsked { repeats })
                } else {
                    (KeyEffect::Ignore, stage)
                }
            }
            Stage::OptOutAsked { repeats } => {
                if is(self.confirm) {
                    (KeyEffect::OptOut, Stage::Closing)
                } else {
                    (KeyEffect::BackToMessage, Stage::Message { repeats })
                }
            }
            Stage::Screening | Stage::Closing => (KeyEffect::Ignore, stage),
        }
    }
}

/// What a call's result is beside its outcome word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallResult {
    /// The whole message played.
    Heard,
    /// The resident pressed the confirm key.
    Confirmed,
    /// The call ended before the message did; the share played is beside it.
    Partial,
    /// An answering machine took the call.
    Machine,
}

impl CallResult {
    /// Every result, in the order reports list them.
    pub const ALL: [CallResult; 4] = [
        CallResult::Heard,
        CallResult::Confirmed,
        CallResult::Partial,
        CallResult::Machine,
    ];

    /// The stored and API word.
    pub fn as_str(&self) -> &'static str {
        match self {
            CallResult::Heard => "heard",
            CallResult::Confirmed => "confirmed",
            CallResult::Partial => "partial",
            CallResult::Machine => "machine",
        }
    }

    /// Parses a stored word.
    pub fn parse(s: &str) -> Option<CallResult> {
        Some(match s {
            "heard" => CallResult::Heard,
            "confirmed" => CallResult::Confirmed,
            "partial" => CallResult::Partial,
            "machine" => CallResult::Machine,
            _ => return None,
        })
    }

    /// How strong a result is, for a contact called more than once: the best one stays.
    pub fn rank(self) -> u8 {
        match self {
            CallResult::Partial => 1,
            CallResult::Machine => 2,
            CallResult::Heard => 3,
            CallResult::Confirmed => 4,
        }
    }
}

impl fmt::Display for CallResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an answered call did with its message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Listened {
    /// The message (all its plays) reached its end at least once.
    pub message_done: bool,
    /// The confirm key was pressed while the message or the post-roll played.
    pub confirmed: bool,
    /// The opt-out was confirmed.
    pub opted_out: bool,
    /// Detection said `machine`.
    pub machine: bool,
    /// Largest share of the message played, per mille.
    pub share_permille: u32,
}

impl Listened {
    /// The call's result: a machine stays a machine (whatever was dropped in its mailbox),
    /// a confirmation beats having heard, an unfinished message is partial.
    pub fn result(&self) -> CallResult {
        if self.machine {
            CallResult::Machine
        } else if self.confirmed || self.opted_out {
            CallResult::Confirmed
        } else if self.message_done {
            CallResult::Heard
        } else {
            CallResult::Partial
        }
    }
}

/// Whether an answered contact whose call had `facts` is done under `until` and `amd`, or
/// retried by the `no_answer` rule: an opt-out is always done; a machine is retried when
/// the policy says `retry_later`, else judged like any call.
pub fn answered_done(until: Until, amd: Option<AmdPolicy>, facts: &Listened) -> bool {
    if facts.opted_out {
        return true;
    }
    if facts.machine && amd.is_some_and(AmdPolicy::retries) {
        return false;
    }
    until.met(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: Keys = Keys {
        confirm: Some('1'),
        repeat: Some('2'),
        optout: Some('9'),
        max_repeats: 2,
    };

    #[test]
    fn confirm_stops_and_closes() {
        let (e, s) = K.press(Stage::Message { repeats: 0 }, '1');
        assert_eq!((e, s), (KeyEffect::Confirm, Stage::Closing));
        // Nothing more happens once closing.
        assert_eq!(K.press(Stage::Closing, '2').0, KeyEffect::Ignore);
        assert_eq!(K.press(Stage::Closing, '1').0, KeyEffect::Ignore);
    }

    #[test]
    fn repeat_up_to_max_repeats() {
        let s = Stage::Message { repeats: 0 };
        let (e, s) = K.press(s, '2');
        assert_eq!((e, s), (KeyEffect::Repeat, Stage::Message { repeats: 1 }));
        let (e, s) = K.press(s, '2');
        assert_eq!((e, s), (KeyEffect::Repeat, Stage::Message { repeats: 2 }));
        let (e, s2) = K.press(s, '2');
        assert_eq!((e, s2), (KeyEffect::Ignore, s));
    }

    #[test]
    fn optout_needs_the_confirm_key() {
        let s = Stage::Message { repeats: 1 };
        let (e, s) = K.press(s, '9');
        assert_eq!(
            (e, s),
            (KeyEffect::AskOptOut, Stage::OptOutAsked { repeats: 1 })
        );
        let (e, back) = K.press(s, '5');
        assert_eq!(
            (e, back),
            (KeyEffect::BackToMessage, Stage::Message { repeats: 1 })
        );
        let (e, s) = K.press(s, '1');
        assert_eq!((e, s), (KeyEffect::OptOut, Stage::Closing));
        // Without a confirm key there is no opt-out (it could never be confirmed).
        let k = Keys { confirm: None, ..K };
        assert_eq!(
            k.press(Stage::Message { repeats: 0 }, '9').0,
            KeyEffect::Ignore
        );
    }

    #[test]
    fn disabled_and_unknown_keys_do_nothing() {
        let k = Keys {
            confirm: None,
            repeat: None,
            optout: None,
            max_repeats: 2,
        };
        for d in KEYS.chars() {
            assert_eq!(
                k.press(Stage::Message { repeats: 0 }, d).0,
                KeyEffect::Ignore
            );
        }
        assert_eq!(
            K.press(Stage::Message { repeats: 0 }, '#').0,
            KeyEffect::Ignore
        );
        assert_eq!(K.press(Stage::Screening, '1').0, KeyEffect::Ignore);
    }

    #[test]
    fn results() {
        let mut f = Listened {
            share_permille: 400,
            ..Default::default()
        };
        assert_eq!(f.result(), CallResult::Partial);
        f.message_done = true;
        assert_eq!(f.result(), CallResult::Heard);
        f.confirmed = true;
        assert_eq!(f.result(), CallResult::Confirmed);
        f.machine = true;
        assert_eq!(f.result(), CallResult::Machine);
        let o = Listened {
            opted_out: true,
            ..Default::default()
        };
        assert_eq!(o.result(), CallResult::Confirmed);
        for r in CallResult::ALL {
            assert_eq!(CallResult::parse(r.as_str()), Some(r));
        }
        assert!(CallResult::Confirmed.rank() > CallResult::Heard.rank());
        assert!(CallResult::Heard.rank() > CallResult::Partial.rank());
    }

    #[test]
    fn until_decides_when_a_contact_is_done() {
        let partial = Listened::default();
        let heard = Listened {
            message_done: true,
            ..Default::default()
        };
        let confirmed = Listened {
            confirmed: true,
            ..Default::default()
        };
        assert!(answered_done(Until::Answered, None, &partial));
        assert!(!answered_done(Until::Heard, None, &partial));
        assert!(answered_done(Until::Heard, None, &heard));
        assert!(answered_done(Until::Heard, None, &confirmed));
        assert!(!answered_done(Until::Confirmed, None, &heard));
        assert!(answered_done(Until::Confirmed, None, &confirmed));
        let out = Listened {
            opted_out: true,
            ..Default::default()
        };
        assert!(answered_done(Until::Confirmed, None, &out));
        for u in [Until::Answered, Until::Heard, Until::Confirmed] {
            assert_eq!(Until::parse(u.as_str()), Some(u));
        }
    }

    #[test]
    fn machine_policies() {
        assert_eq!(AmdPolicy::Drop.on_machine(), MachineStep::WaitForBeep);
        assert_eq!(AmdPolicy::Hangup.on_machine(), MachineStep::HangUp);
        assert_eq!(AmdPolicy::RetryLater.on_machine(), MachineStep::HangUp);
        let hung = Listened {
            machine: true,
            ..Default::default()
        };
        let dropped = Listened {
            machine: true,
            message_done: true,
            ..Default::default()
        };
        // hangup: done under `answered`, not heard.
        assert!(answered_done(
            Until::Answered,
            Some(AmdPolicy::Hangup),
            &hung
        ));
        assert!(!answered_done(Until::Heard, Some(AmdPolicy::Hangup), &hung));
        // drop: a whole message in the mailbox counts as heard, never as confirmed.
        assert!(answered_done(Until::Heard, Some(AmdPolicy::Drop), &dropped));
        assert!(!answered_done(
            Until::Confirmed,
            Some(AmdPolicy::Drop),
            &dropped
        ));
        // retry_later: never done by this call.
        assert!(!answered_done(
            Until::Answered,
            Some(AmdPolicy::RetryLater),
            &hung
        ));
    }

    #[test]
    fn amd_params_are_known_and_bounded() {
        let a: AmdSpec =
            serde_json::from_str(r#"{"policy":"drop","greeting_ms":1500,"maximum_words":4}"#)
                .unwrap();
        assert_eq!(a.policy, AmdPolicy::Drop);
        assert_eq!(a.params["greeting_ms"], 1500);
        assert!(a.validate().is_ok());
        let bad: AmdSpec = serde_json::from_str(r#"{"policy":"hangup","beep":1}"#).unwrap();
        assert!(bad.validate().unwrap_err().starts_with("amd.beep"));
        let big: AmdSpec =
            serde_json::from_str(r#"{"policy":"hangup","greeting_ms":99999}"#).unwrap();
        assert!(big.validate().is_err());
        assert!(serde_json::from_str::<AmdSpec>(r#"{"policy":"ignore"}"#).is_err());
    }
}

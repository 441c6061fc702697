//! Inbound calls' menus as sans-IO state machines: the citizens' registration line
//! ([`citizen`]) and the staff line that records and sends a message ([`staff`]).
//!
//! A menu never plays audio, reads a clock or touches the store. It is fed
//! `handle_digit(now, key)`, `handle_prompt_done(now)` and `handle_timeout(now)`, and it
//! is drained with `poll_action()` (play a prompt, start or stop recording, store a
//! registration, hang up...) and asked `poll_timeout()` for its next deadline. The driver
//! (the dialer core, for an answered inbound call) performs the actions; tests jump
//! virtual time to the deadline, so a 120-second recording limit is tested in
//! microseconds.
//!
//! What a caller hears is a [`Prompt`]: a key naming a per-tenant text template (Italian
//! by default, see [`texts`]) with the values it speaks (the town, digits, zones).

pub mod admission;
pub mod audio;
pub mod caller;
pub mod citizen;
pub mod pin;
pub mod script;
pub mod staff;
pub mod texts;
pub mod warm;

use std::time::Duration;

pub use audio::{Audio, Voice};
pub use caller::{caller_identity, CallerHeaders, CallerId};
pub use citizen::{CitizenContext, CitizenMenu};
pub use pin::{PinGuard, PinHash};
pub use script::Key;
pub use staff::{StaffContext, StaffLine};
pub use texts::{Prompt, PromptKey, Replacement, Templates};

/// Something the driver must do for a menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Play this prompt (replacing whatever plays); report its end by
    /// `handle_prompt_done`. Digits pressed meanwhile are taken (barge-in).
    Play(Prompt),
    /// Store the caller's registration (contact `source = "ivr"`, consent now, the
    /// tenant's notice version); `zone` None means the whole town.
    Register {
        /// The chosen zone; None: the whole town.
        zone: Option<String>,
        /// The number was registered already: only its zone changes.
        change: bool,
    },
    /// Opt the caller's number out and erase it (confirmed by the caller).
    Unregister,
    /// A wrong PIN: the driver counts it against the caller in its [`PinGuard`].
    PinFailed,
    /// Start recording the caller's audio (after the beep).
    StartRecording,
    /// Stop recording; the audio so far is the take.
    StopRecording,
    /// Keep the take: it becomes a prompt of the tenant.
    KeepRecording,
    /// Throw the take away (the caller records again).
    DiscardRecording,
    /// Launch the kept take now to the whole town, as an emergency campaign.
    LaunchEmergency,
    /// Keep the kept take as a draft campaign.
    SaveDraft,
    /// End the call (BYE).
    Hangup,
}

/// How long a menu waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// From the end of a question to the first key.
    pub digit: Duration,
    /// Between keys of a multi-key entry (a PIN, a two-digit zone).
    pub inter_digit: Duration,
    /// Longest recording on the staff line.
    pub max_recording: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            digit: Duration::from_secs(8),
            inter_digit: Duration::from_secs(3),
            max_recording: Duration::from_secs(120),
        }
    }
}

/// Mistakes (wrong keys, silences) tolerated before the polite goodbye.
pub const MAX_MISTAKES: u8 = 3;

//! How a campaign's message is delivered beyond playing it (issue 14): the keys a
//! resident may press, the pre- and post-roll, when a contact is done (`until`), machine
//! detection, and a message per zone; flat in the campaign's JSON beside its other fields.

use serde::{Deserialize, Serialize};

use super::campaign::{CampaignError, Target};
use super::heard::{AmdSpec, Until, KEYS, MAX_REPEATS};

/// Most per-zone messages in one campaign.
pub const MAX_MESSAGES: usize = 50;

/// How a campaign's message is delivered beyond playing it: keys, rolls, when a contact
/// is done, machines, and a message per zone. Absent fields take the defaults (keys 1, 2
/// and 9, two repeats, done when answered, no detection); a key given as null is disabled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Delivery {
    /// Key that confirms the message was heard (null: none).
    pub confirm_digit: Option<char>,
    /// Key that plays the message again from its start (null: none).
    pub repeat_digit: Option<char>,
    /// Key that asks to be called no more, then confirmed with `confirm_digit` (null:
    /// none; emergency campaigns never offer it).
    pub optout_digit: Option<char>,
    /// Restarts the repeat key may ask for per call (0..=[`MAX_REPEATS`]).
    pub max_repeats: u32,
    /// Prompt played before the message (the town's greeting), identifier or path.
    pub pre_roll: Option<String>,
    /// Prompt played after the message ("premi 1 per confermare l'ascolto").
    pub post_roll: Option<String>,
    /// Prompt acknowledging a confirmation ("grazie, confermato"); a short tone without it.
    pub confirmed_prompt: Option<String>,
    /// When a contact is done.
    pub until: Until,
    /// Answering-machine detection and what to do with machines (none: no detection).
    pub amd: Option<AmdSpec>,
    /// Messages by zone or street; a contact none matches hears `prompt`.
    pub messages: Vec<ZoneMessage>,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            confirm_digit: Some('1'),
            repeat_digit: Some('2'),
            optout_digit: Some('9'),
            max_repeats: 2,
            pre_roll: None,
            post_roll: None,
            confirmed_prompt: None,
            until: Until::Answered,
            amd: None,
            messages: vec![],
        }
    }
}

impl Delivery {
    /// Keys (known, distinct), repeats, machine detection and per-zone messages.
    pub fn validate(&self) -> Result<(), CampaignError> {
        let bad = |m: String| Err(CampaignError::Invalid(m));
        let keys = [
            ("confirm_digit", self.confirm_digit),
            ("repeat_digit", self.repeat_digit),
            ("optout_digit", self.optout_digit),
        ];
        for (i, (name, k)) in keys.iter().enumerate() {
            let Some(k) = k else { continue };
            if !KEYS.contains(*k) {
                return bad(format!("{name}: one of {KEYS}"));
            }
            if let Some((other, _)) = keys[..i].iter().find(|(_, o)| *o == Some(*k)) {
                return bad(format!("{name}: same key as {other}"));
            }
        }
        if self.max_repeats > MAX_REPEATS {
            return bad(format!("max_repeats: 0..={MAX_REPEATS}"));
        }
        if let Some(a) = &self.amd {
            a.validate().map_err(CampaignError::Invalid)?;
        }
        for (i, m) in self.messages.iter().enumerate() {
            if m.zones.is_empty() && m.streets.is_empty() {
                return bad(format!("messages[{i}]: some zones or streets"));
            }
            if m.prompt.trim().is_empty() {
                return bad(format!("messages[{i}].prompt: required"));
            }
        }
        if self.messages.len() > MAX_MESSAGES {
            return bad(format!("messages: at most {MAX_MESSAGES}"));
        }
        Ok(())
    }
}

/// A message for some zones and streets of a campaign's target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneMessage {
    /// Zone names (case-insensitive).
    #[serde(default)]
    pub zones: Vec<String>,
    /// Street names (case-insensitive).
    #[serde(default)]
    pub streets: Vec<String>,
    /// Prompt identifier or path.
    pub prompt: String,
}

impl ZoneMessage {
    /// Whether a contact in `zone` on `street` hears this message.
    pub fn matches(&self, zone: &str, street: &str) -> bool {
        Target {
            all: false,
            zones: self.zones.clone(),
            streets: self.streets.clone(),
        }
        .matches(zone, street)
    }
}

//! The phases of journal rows, as stored: an attempt is `dialing` until its end is
//! journaled (`final`); a campaign's contact is `pending` (due for an attempt), `dialing`
//! (in a call now) or `done`. Parsed once where rows are read; a word the code does not
//! know is a corrupt row, not a silent default.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where an attempt is in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttemptState {
    /// Journaled before its INVITE; the end is not known yet (or a crash lost it).
    Dialing,
    /// Its outcome is journaled.
    Final,
}

impl AttemptState {
    /// The stored word.
    pub fn as_str(&self) -> &'static str {
        match self {
            AttemptState::Dialing => "dialing",
            AttemptState::Final => "final",
        }
    }

    /// Parses a stored word.
    pub fn parse(s: &str) -> Option<AttemptState> {
        match s {
            "dialing" => Some(AttemptState::Dialing),
            "final" => Some(AttemptState::Final),
            _ => None,
        }
    }
}

/// Where a targeted contact is within one campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContactState {
    /// Waiting for its (next) attempt.
    Pending,
    /// In a call now.
    Dialing,
    /// Finished in this campaign (answered, or given up).
    Done,
}

impl ContactState {
    /// The stored word.
    pub fn as_str(&self) -> &'static str {
        match self {
            ContactState::Pending => "pending",
            ContactState::Dialing => "dialing",
            ContactState::Done => "done",
        }
    }

    /// Parses a stored word.
    pub fn parse(s: &str) -> Option<ContactState> {
        match s {
            "pending" => Some(ContactState::Pending),
            "dialing" => Some(ContactState::Dialing),
            "done" => Some(ContactState::Done),
            _ => None,
        }
    }
}

impl fmt::Display for AttemptState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for ContactState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for s in [AttemptState::Dialing, AttemptState::Final] {
            assert_eq!(AttemptState::parse(s.as_str()), Some(s));
        }
        for s in [
            ContactState::Pending,
            ContactState::Dialing,
            ContactState::Done,
        ] {
            assert_eq!(ContactState::parse(s.as_str()), Some(s));
        }
        assert_eq!(AttemptState::parse("unknown"), None);
        assert_eq!(ContactState::parse("DONE"), None);
    }
}

//! What became of one call attempt, in DESIGN's words, and how a final SIP status maps to
//! it. The one definition: the SIP layer, the dialer, the journal and the API all use it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What became of one call attempt. The SIP status and reason are always kept beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The callee answered (2xx).
    Answered,
    /// Busy here or everywhere (486, 600).
    Busy,
    /// Nobody answered: our ring timeout, or 408/480 from the far end.
    NoAnswer,
    /// The far end refused the call (other 4xx/6xx, e.g. 403, 603).
    Rejected,
    /// The number does not exist (404, 484, 604).
    InvalidNumber,
    /// A carrier or network fault: 5xx, a transaction timeout, an unusable answer.
    Failed,
    /// We gave up on the call ourselves before it was answered.
    Canceled,
}

impl Outcome {
    /// Every outcome, in DESIGN's order (reports list them all, zero counts included).
    pub const ALL: [Outcome; 7] = [
        Outcome::Answered,
        Outcome::Busy,
        Outcome::NoAnswer,
        Outcome::Rejected,
        Outcome::InvalidNumber,
        Outcome::Failed,
        Outcome::Canceled,
    ];

    /// The outcome's place in [`Outcome::ALL`], for tables indexed by outcome. The match
    /// is exhaustive, so a new variant cannot be forgotten here; a unit test checks that
    /// it agrees with `ALL`.
    pub const fn index(self) -> usize {
        match self {
            Outcome::Answered => 0,
            Outcome::Busy => 1,
            Outcome::NoAnswer => 2,
            Outcome::Rejected => 3,
            Outcome::InvalidNumber => 4,
            Outcome::Failed => 5,
            Outcome::Canceled => 6,
        }
    }

    /// The outcome word used in the journal, the API and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Busy => "busy",
            Outcome::NoAnswer => "no_answer",
            Outcome::Rejected => "rejected",
            Outcome::InvalidNumber => "invalid_number",
            Outcome::Failed => "failed",
            Outcome::Canceled => "canceled",
        }
    }

    /// Parses a stored word. `unknown`, which journals written before this model held for
    /// attempts closed by crash recovery, reads as `failed`: recovery now writes `failed`
    /// for those (the outcome is lost, and like a carrier fault it is not the resident's).
    pub fn parse(s: &str) -> Option<Outcome> {
        Some(match s {
            "answered" => Outcome::Answered,
            "busy" => Outcome::Busy,
            "no_answer" => Outcome::NoAnswer,
            "rejected" => Outcome::Rejected,
            "invalid_number" => Outcome::InvalidNumber,
            "failed" | "unknown" => Outcome::Failed,
            "canceled" => Outcome::Canceled,
            _ => return None,
        })
    }

    /// The outcome of a final response to an INVITE.
    pub fn from_status(status: u16) -> Outcome {
        match status {
            200..=299 => Outcome::Answered,
            486 | 600 => Outcome::Busy,
            408 | 480 | 487 => Outcome::NoAnswer,
            404 | 484 | 604 => Outcome::InvalidNumber,
            500..=599 => Outcome::Failed,
            _ => Outcome::Rejected,
        }
    }

    /// Whether the outcome is the carrier's fault rather than the callee's, so that the
    /// dialer may try another trunk without using up the citizen's retries.
    pub fn is_carrier_fault(&self) -> bool {
        matches!(self, Outcome::Failed)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_statuses() {
        assert_eq!(Outcome::from_status(200), Outcome::Answered);
        assert_eq!(Outcome::from_status(486), Outcome::Busy);
        assert_eq!(Outcome::from_status(600), Outcome::Busy);
        assert_eq!(Outcome::from_status(480), Outcome::NoAnswer);
        assert_eq!(Outcome::from_status(404), Outcome::InvalidNumber);
        assert_eq!(Outcome::from_status(604), Outcome::InvalidNumber);
        assert_eq!(Outcome::from_status(503), Outcome::Failed);
        assert_eq!(Outcome::from_status(603), Outcome::Rejected);
        assert_eq!(Outcome::from_status(403), Outcome::Rejected);
    }

    #[test]
    fn words_round_trip_and_legacy_unknown_is_failed() {
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
            assert_eq!(serde_json::to_string(&o).unwrap(), format!("\"{o}\""));
        }
        assert_eq!(Outcome::parse("unknown"), Some(Outcome::Failed));
        assert_eq!(Outcome::parse("Busy"), None);
    }

    #[test]
    fn index_is_the_place_in_all() {
        for (i, o) in Outcome::ALL.into_iter().enumerate() {
            assert_eq!(o.index(), i, "{o}");
        }
    }
}

//! Mapping final responses to the dialer's outcome words (DESIGN, conventions).

use std::fmt;

/// What became of one call attempt. The SIP status and reason are always kept beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
}

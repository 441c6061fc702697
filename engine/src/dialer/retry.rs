//! Retry policy per outcome: whether and when a contact is called again.
//!
//! Attempts that ended in a carrier fault and went to another trunk do not count against
//! the citizen's allowance (the orchestrator does not pass them here); everything else
//! does.

pub use crate::model::retry::{RetryPolicy, RetryRule};
use crate::model::Outcome;

/// What to do with a contact after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Call again at this wall-clock instant (Unix milliseconds).
    RetryAt(i64),
    /// Done with this contact in this campaign.
    Done,
}

impl RetryPolicy {
    /// The rule of an outcome, `None` for outcomes that never retry.
    pub fn rule(&self, outcome: Option<Outcome>) -> Option<RetryRule> {
        match outcome {
            Some(Outcome::Busy) => Some(self.busy),
            Some(Outcome::NoAnswer) => Some(self.no_answer),
            // `None` is an attempt whose outcome was lost in a crash: retry it like a fault.
            Some(Outcome::Failed) | None => Some(self.failed),
            Some(Outcome::Rejected) => Some(self.rejected),
            Some(Outcome::Answered | Outcome::InvalidNumber | Outcome::Canceled) => None,
        }
    }

    /// Decides after an attempt that ended at `now_ms` with `outcome`, the contact having
    /// had `attempts` counted attempts so far (this one included).
    pub fn decide(&self, outcome: Option<Outcome>, attempts: u32, now_ms: i64) -> Next {
        match self.rule(outcome) {
            Some(r) if attempts < r.max_attempts => {
                Next::RetryAt(now_ms + (r.interval_s as i64) * 1000)
            }
            _ => Next::Done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let p = RetryPolicy::default();
        assert_eq!(p.decide(Some(Outcome::Busy), 1, 0), Next::RetryAt(300_000));
        assert_eq!(p.decide(Some(Outcome::Busy), 2, 10), Next::RetryAt(300_010));
        assert_eq!(p.decide(Some(Outcome::Busy), 3, 0), Next::Done);
        assert_eq!(
            p.decide(Some(Outcome::NoAnswer), 1, 0),
            Next::RetryAt(900_000)
        );
        assert_eq!(
            p.decide(Some(Outcome::Failed), 2, 0),
            Next::RetryAt(120_000)
        );
        assert_eq!(p.decide(None, 1, 0), Next::RetryAt(120_000));
        assert_eq!(p.decide(Some(Outcome::Answered), 1, 0), Next::Done);
        assert_eq!(p.decide(Some(Outcome::InvalidNumber), 1, 0), Next::Done);
        assert_eq!(p.decide(Some(Outcome::Rejected), 1, 0), Next::Done);
        assert_eq!(p.decide(Some(Outcome::Canceled), 1, 0), Next::Done);
    }

    #[test]
    fn configured_from_toml_with_defaults_for_the_rest() {
        let p: RetryPolicy = toml::from_str("busy = { interval_s = 1, max_attempts = 5 }").unwrap();
        assert_eq!(p.busy.max_attempts, 5);
        assert_eq!(p.no_answer, RetryPolicy::default().no_answer);
        assert_eq!(p.decide(Some(Outcome::Busy), 4, 0), Next::RetryAt(1000));
    }
}

//! Retry policy per outcome: whether and when a contact is called again.
//!
//! Attempts that ended in a carrier fault and went to another trunk do not count against
//! the citizen's allowance (the dialer core does not pass them here); everything else
//! does.

use serde::{Deserialize, Serialize};

use crate::sip::outcome::Outcome;

/// Retry rule for one outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryRule {
    /// Seconds between the end of an attempt and the next one.
    pub interval_s: u64,
    /// Total attempts (the first one included) after which the contact is given up.
    pub max_attempts: u32,
}

/// Retry rules per outcome. `answered` and `invalid_number` never retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetryPolicy {
    /// `busy`: default every 5 min, up to 3 attempts.
    pub busy: RetryRule,
    /// `no_answer`: default every 15 min, up to 3 attempts.
    pub no_answer: RetryRule,
    /// `failed` (on every trunk): default every 2 min, up to 3 attempts.
    pub failed: RetryRule,
    /// `rejected`: default no retry.
    pub rejected: RetryRule,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            busy: RetryRule {
                interval_s: 300,
                max_attempts: 3,
            },
            no_answer: RetryRule {
                interval_s: 900,
                max_attempts: 3,
            },
            failed: RetryRule {
                interval_s: 120,
                max_attempts: 3,
            },
            rejected: RetryRule {
                interval_s: 0,
                max_attempts: 1,
            },
        }
    }
}

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
    pub fn rule(&self, outcome: Outcome) -> Option<RetryRule> {
        match outcome {
            Outcome::Busy => Some(self.busy),
            Outcome::NoAnswer => Some(self.no_answer),
            Outcome::Failed => Some(self.failed),
            Outcome::Rejected => Some(self.rejected),
            Outcome::Answered | Outcome::InvalidNumber | Outcome::Canceled => None,
        }
    }

    /// Decides after an attempt that ended at `now_ms` with `outcome`, the contact having
    /// had `attempts` counted attempts so far (this one included).
    pub fn decide(&self, outcome: Outcome, attempts: u32, now_ms: i64) -> Next {
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
        assert_eq!(p.decide(Outcome::Busy, 1, 0), Next::RetryAt(300_000));
        assert_eq!(p.decide(Outcome::Busy, 2, 10), Next::RetryAt(300_010));
        assert_eq!(p.decide(Outcome::Busy, 3, 0), Next::Done);
        assert_eq!(
            p.decide(Outcome::NoAnswer, 1, 0),
            Next::RetryAt(900_000)
        );
        assert_eq!(
            p.decide(Outcome::Failed, 2, 0),
            Next::RetryAt(120_000)
        );
        assert_eq!(p.decide(Outcome::Answered, 1, 0), Next::Done);
        assert_eq!(p.decide(Outcome::InvalidNumber, 1, 0), Next::Done);
        assert_eq!(p.decide(Outcome::Rejected, 1, 0), Next::Done);
        assert_eq!(p.decide(Outcome::Canceled, 1, 0), Next::Done);
    }

    #[test]
    fn configured_from_toml_with_defaults_for_the_rest() {
        let p: RetryPolicy = toml::from_str("busy = { interval_s = 1, max_attempts = 5 }").unwrap();
        assert_eq!(p.busy.max_attempts, 5);
        assert_eq!(p.no_answer, RetryPolicy::default().no_answer);
        assert_eq!(p.decide(Outcome::Busy, 4, 0), Next::RetryAt(1000));
    }
}

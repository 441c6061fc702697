//! Retry rules of a campaign, per outcome: the data an operator gives. The decision
//! (whether and when a contact is called again) is the dialer's (`dialer::retry`).

use serde::{Deserialize, Serialize};

/// Most attempts a rule may allow (the first one included).
pub const MAX_ATTEMPTS: u32 = 10;
/// Longest interval a rule may ask for: a week.
pub const MAX_INTERVAL_S: u64 = 7 * 86_400;

/// Retry rule for one outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryRule {
    /// Seconds between the end of an attempt and the next one.
    pub interval_s: u64,
    /// Total attempts (the first one included) after which the contact is given up.
    pub max_attempts: u32,
}

impl RetryRule {
    /// Whether the rule is within bounds: 1..=10 attempts, at most a week apart.
    pub fn is_valid(&self) -> bool {
        (1..=MAX_ATTEMPTS).contains(&self.max_attempts) && self.interval_s <= MAX_INTERVAL_S
    }
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

impl RetryPolicy {
    /// The rules with the outcome word each applies to.
    pub fn named(&self) -> [(&'static str, RetryRule); 4] {
        [
            ("busy", self.busy),
            ("no_answer", self.no_answer),
            ("failed", self.failed),
            ("rejected", self.rejected),
        ]
    }
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

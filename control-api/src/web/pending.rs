//! Verifications in progress: the code shown on the page, what the verification is for
//! (a registration or an unsubscription), how many calls it made and how the last one
//! ended. Kept in memory: a verification lives at most [`TTL`]; a restart only means the
//! resident starts again.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use engine::dialer::core::VerifyOutcome;
use rand::Rng;

use super::phone::Callable;

/// How long a code is valid.
pub const TTL: Duration = Duration::from_secs(600);
/// Calls one verification may make.
pub const MAX_CALLS: u8 = 3;
/// Verifications kept at once (beyond it, new ones are refused: memory stays bounded).
pub const MAX_PENDING: usize = 10_000;

/// What a confirmed number does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// Register the number in this street.
    Register {
        /// Street (from the town's list).
        street: String,
        /// House number (may be empty).
        house_number: String,
        /// The street's zone.
        zone: String,
        /// When the consent box was ticked, Unix ms.
        consent_ms: i64,
        /// The notice version shown.
        notice_version: String,
    },
    /// Opt out and erase the number.
    Unsubscribe,
}

/// Where a verification is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Code shown; no call yet, or the last one did not confirm (a new one may be asked).
    Ready,
    /// The dialer is calling.
    Calling,
    /// Confirmed and done (registered, or unsubscribed).
    Done,
    /// Confirmed, but storing the result failed.
    StoreFailed,
}

/// One verification.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Tenant id.
    pub tenant: String,
    /// The number to call.
    pub number: Callable,
    /// The code to key.
    pub code: String,
    /// What it is for.
    pub purpose: Purpose,
    /// When it started.
    pub created: Instant,
    /// Calls made.
    pub calls: u8,
    /// Where it is.
    pub step: Step,
    /// How the last call ended.
    pub last: Option<VerifyOutcome>,
}

impl Pending {
    /// Whether the code has expired at `now`.
    pub fn expired(&self, now: Instant) -> bool {
        now.duration_since(self.created) >= TTL
    }

    /// Whether another call may be asked for.
    pub fn may_call(&self, now: Instant) -> bool {
        self.step == Step::Ready && self.calls < MAX_CALLS && !self.expired(now)
    }
}

/// The verifications by id (an unguessable random id in the page's address).
#[derive(Debug, Default)]
pub struct Registry {
    map: HashMap<String, Pending>,
}

/// A random 4-digit code.
pub fn new_code() -> String {
    format!("{:04}", rand::rng().random_range(0..10_000u32))
}

impl Registry {
    /// Starts a verification; its id, or None when too many are pending.
    pub fn start(
        &mut self,
        tenant: &str,
        number: Callable,
        purpose: Purpose,
        now: Instant,
    ) -> Option<String> {
        self.map.retain(|_, p| !p.expired(now));
        if self.map.len() >= MAX_PENDING {
            return None;
        }
        let id = super::csrf::new_token();
        let p = Pending {
            tenant: tenant.to_string(),
            number,
            code: new_code(),
            purpose,
            created: now,
            calls: 0,
            step: Step::Ready,
            last: None,
        };
        self.map.insert(id.clone(), p);
        Some(id)
    }

    /// A verification of `tenant` by id (expired ones included: the page says so).
    pub fn get(&self, tenant: &str, id: &str) -> Option<&Pending> {
        self.map.get(id).filter(|p| p.tenant == tenant)
    }

    /// The same, to change it.
    pub fn get_mut(&mut self, tenant: &str, id: &str) -> Option<&mut Pending> {
        self.map.get_mut(id).filter(|p| p.tenant == tenant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::model::NumberType;

    fn number() -> Callable {
        Callable {
            e164: "+393331234567".into(),
            number_type: NumberType::Mobile,
        }
    }

    #[test]
    fn codes_expire_after_ten_minutes_and_allow_three_calls() {
        let t0 = Instant::now();
        let mut r = Registry::default();
        let id = r.start("town", number(), Purpose::Unsubscribe, t0).unwrap();
        let p = r.get("town", &id).unwrap();
        assert_eq!(p.code.len(), 4);
        assert!(p.code.chars().all(|c| c.is_ascii_digit()));
        assert!(p.may_call(t0));
        assert!(r.get("other", &id).is_none(), "another town cannot see it");
        let p = r.get_mut("town", &id).unwrap();
        p.calls = MAX_CALLS;
        assert!(!p.may_call(t0));
        p.calls = 1;
        assert!(!p.may_call(t0 + TTL));
        p.step = Step::Calling;
        assert!(!p.may_call(t0));
    }
}

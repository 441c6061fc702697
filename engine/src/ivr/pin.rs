//! The staff line's PIN: kept only as a salted, stretched hash, and a guard that locks a
//! caller out for an hour after ten wrong PINs within an hour (three per call end the
//! call; the guard stops a caller who simply calls again).
//!
//! A PIN has few digits, so no hash makes a stolen database safe; the salt and the
//! iterations make each guess cost, and the lockout is what protects the line itself.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// SHA-256 rounds per hash.
const ROUNDS: u32 = 20_000;
/// Wrong PINs in [`WINDOW`] that lock a caller out.
pub const LOCKOUT_FAILURES: usize = 10;
/// The window failures are counted in, and how long a lockout lasts.
pub const WINDOW: Duration = Duration::from_secs(3600);
/// Callers the guard remembers at most (older entries are dropped first).
const MAX_CALLERS: usize = 100_000;

/// Why a PIN was refused when it was set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    /// Not 4 to 10 digits.
    #[error("a PIN is 4 to 10 digits")]
    Format,
    /// A stored hash that does not parse.
    #[error("stored PIN hash is corrupt")]
    Corrupt,
}

/// A PIN's stored form: `sha256x<rounds>$<salt hex>$<hash hex>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinHash(String);

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn stretch(salt: &str, pin: &str, rounds: u32) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(pin.as_bytes());
    let mut d = h.finalize();
    for _ in 1..rounds {
        let mut h = Sha256::new();
        h.update(d);
        h.update(pin.as_bytes());
        d = h.finalize();
    }
    hex(&d)
}

impl PinHash {
    /// Hashes a new PIN (4 to 10 digits) with a fresh random salt.
    pub fn new(pin: &str) -> Result<PinHash, PinError> {
        if !(4..=10).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PinError::Format);
        }
        let salt = hex(&rand::random::<[u8; 16]>());
        let h = stretch(&salt, pin, ROUNDS);
        Ok(PinHash(format!("sha256x{ROUNDS}${salt}${h}")))
    }

    /// A stored hash, checked for shape.
    pub fn parse(s: &str) -> Result<PinHash, PinError> {
        Self::parts(s).map(|_| PinHash(s.to_string()))
    }

    fn parts(s: &str) -> Result<(u32, &str, &str), PinError> {
        let mut it = s.split('$');
        let rounds = it
            .next()
            .and_then(|r| r.strip_prefix("sha256x"))
            .and_then(|r| r.parse().ok())
            .filter(|r| (1..=10_000_000).contains(r))
            .ok_or(PinError::Corrupt)?;
        let (salt, hash) = (it.next(), it.next());
        match (salt, hash, it.next()) {
            (Some(s), Some(h), None) if h.len() == 64 => Ok((rounds, s, h)),
            _ => Err(PinError::Corrupt),
        }
    }

    /// The stored form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `pin` is this PIN (compared in constant time).
    pub fn verify(&self, pin: &str) -> bool {
        let Ok((rounds, salt, hash)) = Self::parts(&self.0) else {
            return false;
        };
        let got = stretch(salt, pin, rounds);
        got.bytes()
            .zip(hash.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
            && got.len() == hash.len()
    }
}

#[derive(Debug, Default)]
struct Failures {
    times: VecDeque<Instant>,
    locked_until: Option<Instant>,
}

/// Wrong PINs per caller (by E.164 number), shared by every call to a staff line.
#[derive(Debug, Default)]
pub struct PinGuard {
    callers: HashMap<String, Failures>,
}

impl PinGuard {
    /// Whether `caller` is locked out at `now`.
    pub fn is_locked(&self, caller: &str, now: Instant) -> bool {
        self.callers
            .get(caller)
            .and_then(|f| f.locked_until)
            .is_some_and(|u| now < u)
    }

    /// Counts a wrong PIN; true when it locks the caller out (the tenth in an hour).
    pub fn failed(&mut self, caller: &str, now: Instant) -> bool {
        metrics::counter!(crate::metrics::IVR_PIN_FAILURES).increment(1);
        if self.callers.len() >= MAX_CALLERS && !self.callers.contains_key(caller) {
            self.prune(now);
        }
        let f = self.callers.entry(caller.to_string()).or_default();
        while f
            .times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            f.times.pop_front();
        }
        f.times.push_back(now);
        if f.times.len() >= LOCKOUT_FAILURES {
            f.times.clear();
            f.locked_until = Some(now + WINDOW);
            metrics::counter!(crate::metrics::IVR_PIN_LOCKOUTS).increment(1);
            tracing::warn!(caller, "staff line: caller locked out for an hour");
            return true;
        }
        false
    }

    /// Forgets callers with no failure in the last hour and no lockout in force.
    pub fn prune(&mut self, now: Instant) {
        self.callers.retain(|_, f| {
            f.locked_until.is_some_and(|u| now < u)
                || f.times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < WINDOW)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_is_stored_salted_and_verified() {
        let a = PinHash::new("2468").unwrap();
        let b = PinHash::new("2468").unwrap();
        assert_ne!(a, b, "salted");
        assert!(!a.as_str().contains("2468"));
        assert!(a.verify("2468"));
        assert!(!a.verify("2469"));
        assert!(!a.verify(""));
        assert_eq!(PinHash::parse(a.as_str()).unwrap(), a);
        for bad in ["123", "12345678901", "12a4", ""] {
            assert_eq!(PinHash::new(bad), Err(PinError::Format), "{bad}");
        }
        for bad in ["", "sha256x$a$b", "md5$a$b", "sha256x10$salt$short"] {
            assert_eq!(PinHash::parse(bad), Err(PinError::Corrupt), "{bad}");
        }
    }

    #[test]
    fn ten_failures_in_an_hour_lock_the_caller_out_for_an_hour() {
        let t0 = Instant::now();
        let mut g = PinGuard::default();
        let c = "+393331234567";
        for i in 0..9 {
            assert!(!g.failed(c, t0 + Duration::from_secs(i * 60)));
        }
        assert!(!g.is_locked(c, t0 + Duration::from_secs(600)));
        let t10 = t0 + Duration::from_secs(3000);
        assert!(g.failed(c, t10));
        assert!(g.is_locked(c, t10));
        assert!(!g.is_locked("+390771286891", t10), "others are not");
        assert!(g.is_locked(c, t10 + WINDOW - Duration::from_secs(1)));
        assert!(!g.is_locked(c, t10 + WINDOW));
    }

    #[test]
    fn failures_older_than_an_hour_do_not_count() {
        let t0 = Instant::now();
        let mut g = PinGuard::default();
        let c = "+393331234567";
        for i in 0..9 {
            g.failed(c, t0 + Duration::from_secs(i));
        }
        // The tenth comes after the first nine left the window.
        let late = t0 + WINDOW + Duration::from_secs(10);
        assert!(!g.failed(c, late));
        assert!(!g.is_locked(c, late));
        g.prune(late + WINDOW);
        assert!(g.callers.is_empty());
    }
}

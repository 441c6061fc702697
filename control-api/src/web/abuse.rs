//! Abuse limits of the verification calls: so many per IP address per hour and per number
//! per day. A sliding window of the instants of the calls granted, per key; pure (the
//! caller passes `now`), bounded (old instants are dropped at every look).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// At most `max` grants per `window` for each key.
#[derive(Debug)]
pub struct Window<K> {
    max: u32,
    window: Duration,
    seen: HashMap<K, VecDeque<Instant>>,
}

impl<K: Eq + Hash + Clone> Window<K> {
    /// A limit of `max` per `window`.
    pub fn new(max: u32, window: Duration) -> Self {
        Window {
            max,
            window,
            seen: HashMap::new(),
        }
    }

    /// Whether `key` may have one more now (nothing is recorded).
    pub fn allows(&mut self, key: &K, now: Instant) -> bool {
        self.count(key, now) < self.max as usize
    }

    /// Records a grant to `key` at `now`.
    pub fn record(&mut self, key: K, now: Instant) {
        self.seen.entry(key).or_default().push_back(now);
    }

    fn count(&mut self, key: &K, now: Instant) -> usize {
        let w = self.window;
        let Some(q) = self.seen.get_mut(key) else {
            return 0;
        };
        while q.front().is_some_and(|t| now.duration_since(*t) >= w) {
            q.pop_front();
        }
        let n = q.len();
        if n == 0 {
            self.seen.remove(key);
        }
        n
    }

    /// Drops every key whose instants all fell out of the window (bounds memory).
    pub fn sweep(&mut self, now: Instant) {
        let w = self.window;
        self.seen
            .retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < w));
    }
}

/// Why a verification call is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// Too many from this address in the last hour.
    Ip,
    /// Too many to this number in the last day.
    Number,
}

/// Both limits of the verification calls.
#[derive(Debug)]
pub struct CallLimits {
    ip: Window<std::net::IpAddr>,
    number: Window<String>,
}

impl CallLimits {
    /// `per_ip` calls per IP per hour, `per_number` per number per day.
    pub fn new(per_ip: u32, per_number: u32) -> Self {
        CallLimits {
            ip: Window::new(per_ip, Duration::from_secs(3600)),
            number: Window::new(per_number, Duration::from_secs(86_400)),
        }
    }

    /// Grants a call from `ip` to `number` and records it, or says which limit refuses it.
    pub fn grant(
        &mut self,
        ip: std::net::IpAddr,
        number: &str,
        now: Instant,
    ) -> Result<(), Limited> {
        self.ip.sweep(now);
        self.number.sweep(now);
        if !self.ip.allows(&ip, now) {
            return Err(Limited::Ip);
        }
        let n = number.to_string();
        if !self.number.allows(&n, now) {
            return Err(Limited::Number);
        }
        self.ip.record(ip, now);
        self.number.record(n, now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sixth_call_from_one_ip_in_an_hour_is_refused() {
        let t0 = Instant::now();
        let mut l = CallLimits::new(5, 3);
        let ip = "192.0.2.7".parse().unwrap();
        for i in 0..5 {
            let n = format!("+39333000000{i}");
            assert_eq!(l.grant(ip, &n, t0 + Duration::from_secs(i)), Ok(()));
        }
        let sixth = l.grant(ip, "+393339999999", t0 + Duration::from_secs(60));
        assert_eq!(sixth, Err(Limited::Ip));
        let other = "192.0.2.8".parse().unwrap();
        assert_eq!(l.grant(other, "+393339999999", t0), Ok(()));
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(l.grant(ip, "+393339999998", later), Ok(()));
    }

    #[test]
    fn a_number_gets_three_calls_a_day_from_any_address() {
        let t0 = Instant::now();
        let mut l = CallLimits::new(5, 3);
        for i in 0..3u8 {
            let ip = std::net::IpAddr::from([10, 0, 0, i]);
            assert_eq!(l.grant(ip, "+393331234567", t0), Ok(()));
        }
        let ip = std::net::IpAddr::from([10, 0, 0, 9]);
        assert_eq!(l.grant(ip, "+393331234567", t0), Err(Limited::Number));
        let tomorrow = t0 + Duration::from_secs(86_400);
        assert_eq!(l.grant(ip, "+393331234567", tomorrow), Ok(()));
    }

    #[test]
    fn a_refused_call_is_not_counted() {
        let t0 = Instant::now();
        let mut l = CallLimits::new(1, 1);
        let a = std::net::IpAddr::from([10, 0, 0, 1]);
        let b = std::net::IpAddr::from([10, 0, 0, 2]);
        assert_eq!(l.grant(a, "+393331234567", t0), Ok(()));
        assert_eq!(l.grant(b, "+393331234567", t0), Err(Limited::Number));
        assert_eq!(l.grant(b, "+393337654321", t0), Ok(()));
    }
}

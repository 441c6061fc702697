//! The core's deadlines: one table keyed by [`Deadline`], a typed handle per kind of
//! wake-up, so that [`Timers::next`] is the exact minimum of what is armed and a fired
//! deadline says what it is for.

use std::time::Instant;

use super::io::{CallToken, CampaignId, TrunkId};
use crate::id_map::IdMap;

/// What a wake-up is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Deadline {
    /// Ask the store for more due contacts of a campaign whose queue is short.
    Refill(CampaignId),
    /// Ask the store whether a campaign with nothing queued nor in calls is done.
    Completion(CampaignId),
    /// Re-read the calling windows of the campaigns that have one.
    Windows,
    /// Send the next OPTIONS ping of a trunk.
    Ping(TrunkId),
    /// A trunk's limiter gets its next token while work waits for it.
    Limiter(TrunkId),
    /// Publish the contacts-by-state gauges.
    Gauges,
    /// An inbound call's menu waits no longer (a silence, an entry, the recording limit).
    Inbound(CallToken),
    /// A verification call's wait for a trunk, or its callee's time to key the code.
    Verify(CallToken),
    /// A trunk's next CPS token, for queued verification calls.
    VerifyWake,
    /// A screened call's wait for its machine verdict, or for the mailbox's beep.
    Amd(CallToken),
}

/// Armed deadlines. Small (a few per trunk and campaign), so the minimum is a scan. Keyed
/// by our own ids, so hashed with foldhash (SipHash here was 4 % of the signalling thread).
#[derive(Debug, Default)]
pub struct Timers {
    at: IdMap<Deadline, Instant>,
}

impl Timers {
    /// Deadlines armed, for [`super::DialerCore::held`].
    pub fn armed(&self) -> usize {
        self.at.len()
    }

    /// Arms `d` at `at`, replacing an earlier arming.
    pub fn set(&mut self, d: Deadline, at: Instant) {
        self.at.insert(d, at);
    }

    /// Arms `d` at `at` unless it is armed already (keeps the earlier plan).
    pub fn set_if_unset(&mut self, d: Deadline, at: Instant) {
        self.at.entry(d).or_insert(at);
    }

    /// Disarms `d`.
    pub fn stop(&mut self, d: Deadline) {
        self.at.remove(&d);
    }

    /// The earliest armed deadline.
    pub fn next(&self) -> Option<Instant> {
        self.at.values().min().copied()
    }

    /// Disarms and returns every deadline due at `now`.
    pub fn expired(&mut self, now: Instant) -> Vec<Deadline> {
        let due: Vec<Deadline> = self
            .at
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(d, _)| *d)
            .collect();
        for d in &due {
            self.at.remove(d);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn next_is_the_exact_minimum_and_expired_disarms() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        assert_eq!(t.next(), None);
        t.set(Deadline::Gauges, t0 + Duration::from_secs(2));
        t.set(Deadline::Ping(TrunkId(0)), t0 + Duration::from_secs(1));
        t.set_if_unset(Deadline::Ping(TrunkId(0)), t0 + Duration::from_secs(9));
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(
            t.expired(t0 + Duration::from_secs(1)),
            [Deadline::Ping(TrunkId(0))]
        );
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(2)));
        t.stop(Deadline::Gauges);
        assert_eq!(t.next(), None);
    }
}

//! The endpoint's wake-ups: one deadline per owner (a transaction, a call, a registration),
//! keyed by typed handles and kept exact.
//!
//! Each owner keeps its own deadlines in a [`TimerTable`]; whenever an owner's table
//! changes, the endpoint re-files the owner's earliest deadline here, replacing the one it
//! had. So [`Wakeups::next`] is always the minimum of live deadlines (never a stale one
//! left by a stopped timer or a finished transaction), and a driver never wakes for
//! nothing.

use std::collections::BTreeSet;
use std::time::Instant;

use crate::id_map::IdMap;
use crate::sip::timer::{TimerKind, TimerTable};

use super::{CallHandle, RequestHandle};

/// A client transaction (including a CANCEL's, which shares its INVITE's branch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct TxId(pub u64);

/// A server transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct ServerId(pub u64);

/// Who a wake-up is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Wake {
    Client(TxId),
    Server(ServerId),
    Call(CallHandle),
    Registration(RequestHandle),
    /// The table of Accepted INVITE transactions, for its earliest Timer M.
    Accepted,
}

/// Deadlines of a call, beside its transactions' own timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CallTimer {
    /// No answer within the ring timeout: CANCEL.
    Ring,
    /// 64·T1 after our CANCEL without a final response: give the INVITE up (§9.1).
    CancelGuard,
    /// We are the session refresher (RFC 4028): send an UPDATE.
    Refresh,
    /// The far end should have refreshed the session by now: BYE.
    Expire,
}

impl TimerKind for CallTimer {
    const ALL: &'static [CallTimer] = &[
        CallTimer::Ring,
        CallTimer::CancelGuard,
        CallTimer::Refresh,
        CallTimer::Expire,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// A call's deadlines.
pub(super) type CallTimers = TimerTable<CallTimer, 4>;

/// Deadlines of a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RegTimer {
    /// Re-REGISTER before the granted binding expires.
    Refresh,
    /// REGISTER again after a failure, once the backoff has passed.
    Retry,
}

impl TimerKind for RegTimer {
    const ALL: &'static [RegTimer] = &[RegTimer::Refresh, RegTimer::Retry];

    fn index(self) -> usize {
        self as usize
    }
}

/// A registration's deadlines.
pub(super) type RegTimers = TimerTable<RegTimer, 2>;

/// One deadline per owner, ordered.
#[derive(Debug, Default)]
pub(super) struct Wakeups {
    filed: IdMap<Wake, Instant>,
    order: BTreeSet<(Instant, Wake)>,
}

impl Wakeups {
    /// Files `owner`'s earliest deadline, replacing its previous one (`None` removes it).
    pub fn set(&mut self, owner: Wake, at: Option<Instant>) {
        match at {
            Some(at) => {
                if let Some(old) = self.filed.insert(owner, at) {
                    if old == at {
                        return;
                    }
                    self.order.remove(&(old, owner));
                }
                self.order.insert((at, owner));
            }
            None => {
                if let Some(old) = self.filed.remove(&owner) {
                    self.order.remove(&(old, owner));
                }
            }
        }
    }

    /// The earliest filed deadline.
    pub fn next(&self) -> Option<Instant> {
        self.order.first().map(|(at, _)| *at)
    }

    /// Removes and returns an owner whose deadline is due at `now`, earliest first.
    pub fn pop_due(&mut self, now: Instant) -> Option<Wake> {
        let &(at, owner) = self.order.first()?;
        if at > now {
            return None;
        }
        self.order.pop_first();
        self.filed.remove(&owner);
        Some(owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn refiling_replaces_the_old_deadline() {
        let t0 = Instant::now();
        let mut w = Wakeups::default();
        let call = Wake::Call(CallHandle(1));
        w.set(call, Some(t0 + Duration::from_secs(1)));
        w.set(Wake::Client(TxId(7)), Some(t0 + Duration::from_secs(5)));
        w.set(call, Some(t0 + Duration::from_secs(9)));
        assert_eq!(w.next(), Some(t0 + Duration::from_secs(5)));
        w.set(Wake::Client(TxId(7)), None);
        assert_eq!(w.next(), Some(t0 + Duration::from_secs(9)));
        assert_eq!(w.pop_due(t0 + Duration::from_secs(8)), None);
        assert_eq!(w.pop_due(t0 + Duration::from_secs(9)), Some(call));
        assert_eq!(w.next(), None);
    }
}

//! INVITE client transactions in the RFC 6026 Accepted state, in a table of their own.
//!
//! After its 2xx an INVITE transaction lives on for Timer M (64·T1, 32 s) only to pass 2xx
//! retransmissions, and 2xx from other forks, to its call. The full [`ClientEntry`] (the
//! transaction's timer table, addresses, branch string, index and wake-up entries) is
//! dropped at the 2xx; what stays is its branch as a number, the call it belongs to and
//! when it ends, about 40 bytes. Timer M has the same length for every transaction and
//! `now` only moves forward, so the ends come in the order the transactions were accepted:
//! a queue orders them and the whole table needs a single wake-up.

use std::collections::VecDeque;

use super::*;
use crate::id_map::IdMap;
use crate::sip::transaction::AcceptedInvite;

/// The Accepted INVITE transactions by branch, with their ends in order.
#[derive(Debug, Default)]
pub(super) struct AcceptedInvites {
    /// Branch key → the call that gets the 2xx.
    calls: IdMap<u64, u64>,
    /// (Timer M, branch key), earliest first.
    ends: VecDeque<(Instant, u64)>,
}

impl AcceptedInvites {
    /// Files the transaction of `branch` for `call` in the Accepted state `accepted`.
    pub fn insert(&mut self, branch: u64, call: u64, accepted: AcceptedInvite) {
        let until = accepted.until();
        self.calls.insert(branch, call);
        // In order already unless a caller's clock stepped back: keep the queue sorted.
        let at = self.ends.partition_point(|(t, _)| *t <= until);
        self.ends.insert(at, (until, branch));
    }

    /// The call of the Accepted transaction whose branch has this key, if one is.
    pub fn call(&self, key: u64) -> Option<u64> {
        self.calls.get(&key).copied()
    }

    /// Ends every transaction whose Timer M is due at `now`.
    pub fn expire(&mut self, now: Instant) {
        while let Some(&(until, branch)) = self.ends.front() {
            if until > now {
                break;
            }
            self.ends.pop_front();
            self.calls.remove(&branch);
        }
    }

    /// The earliest Timer M.
    pub fn next(&self) -> Option<Instant> {
        self.ends.front().map(|(t, _)| *t)
    }

    /// Number of Accepted transactions.
    pub fn len(&self) -> usize {
        self.calls.len()
    }
}

impl Endpoint {
    /// An INVITE transaction got its 2xx: its entry gives way to an Accepted record under
    /// the same branch, and the table's wake-up follows the earliest Timer M.
    pub(super) fn accept_invite(&mut self, id: TxId, accepted: AcceptedInvite) {
        let Some(e) = self.remove_client(id) else {
            return;
        };
        // Without a call the 2xx retransmissions have nowhere to go.
        if let Some(call) = e.call {
            self.accepted.insert(e.branch, call, accepted);
            self.wakeups.set(Wake::Accepted, self.accepted.next());
        }
    }

    /// A response to an Accepted INVITE transaction: a 2xx goes to the call (which ACKs
    /// it again, or ACKs and ends another fork's dialog), anything else is absorbed.
    pub(super) fn on_accepted_response(&mut self, now: Instant, call: u64, r: &Response<'_>) {
        if r.headers.cseq().map(|c| c.method) != Ok(Method::Invite) {
            return client::dropped("no_transaction");
        }
        if !(200..300).contains(&r.status) {
            return;
        }
        let trunk = self.trunk_label(Some(call));
        self.responses.count(trunk, Method::Invite, r.status);
        self.on_call_response(now, call, Method::Invite, r);
    }

    /// Timer M of Accepted transactions fired.
    pub(super) fn accepted_timeout(&mut self, now: Instant) {
        self.accepted.expire(now);
        self.wakeups.set(Wake::Accepted, self.accepted.next());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::timer::TimerConfig;

    #[test]
    fn ends_in_order_of_timer_m_even_when_filed_out_of_order() {
        let t0 = Instant::now();
        let cfg = TimerConfig::default();
        let mut table = AcceptedInvites::default();
        let at = |s| AcceptedInvite::new(t0 + Duration::from_secs(s), &cfg);
        table.insert(1, 10, at(5));
        table.insert(2, 20, at(1));
        table.insert(3, 30, at(9));
        assert_eq!(table.call(2), Some(20));
        assert_eq!(table.next(), Some(t0 + Duration::from_secs(33)));
        table.expire(t0 + Duration::from_secs(37));
        assert_eq!((table.call(1), table.call(2)), (None, None));
        assert_eq!(table.call(3), Some(30));
        assert_eq!(table.next(), Some(t0 + Duration::from_secs(41)));
        table.expire(t0 + Duration::from_secs(41));
        assert_eq!((table.len(), table.next()), (0, None));
    }
}

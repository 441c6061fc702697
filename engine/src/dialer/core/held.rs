//! What the core holds, collection by collection: the check that its memory follows live
//! work (calls in progress, queue windows, armed deadlines) and never the number of
//! attempts a campaign has finished. A campaign of a million contacts must not leave a
//! million entries anywhere in the core.

use super::DialerCore;

impl DialerCore {
    /// Entries in every collection of the core that holds something per call, contact or
    /// request, by name. Tests run campaigns on virtual time and check that these stay
    /// bounded by the live work and fall to zero when it is done.
    pub fn held(&self) -> Vec<(&'static str, usize)> {
        let (known, in_flight, answered) = self.sched.held();
        vec![
            ("calls", self.calls.len()),
            ("by_handle", self.by_handle.len()),
            ("pings", self.pings.len()),
            ("regs", self.regs.len()),
            ("direct_waiting", self.direct_waiting.len()),
            ("direct", self.direct.len()),
            ("verifies", self.verifies.held()),
            ("inbound", self.inbound.held()),
            ("preempts", self.preempts.held()),
            ("pacers", self.pacers.calls_held()),
            ("actions", self.actions.len()),
            (
                "send_queues",
                self.trunks.iter().map(|t| t.send_queue.len()).sum(),
            ),
            ("sched_known", known),
            ("sched_in_flight", in_flight),
            ("sched_answered", answered),
        ]
    }

    /// Deadlines armed (per-call ones included; trunk pings stay armed while idle).
    pub fn deadlines_armed(&self) -> usize {
        self.timers.armed()
    }
}

//! When each call next needs the carrier (final response, our hang-up, the callee's
//! scripted steps, forgetting it), and what happens then.

use super::wire::{build_bye, build_info, reason_for};
use super::*;

impl Uas {
    pub(super) fn next_deadline(call: &Call) -> Option<Instant> {
        [
            call.final_at,
            call.hangup_at,
            call.steps.front().map(|(t, _)| *t),
            call.tx.next_timeout(),
            call.bye.as_ref().and_then(|b| b.next_timeout()),
            call.forget_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub(super) fn schedule(&mut self, serial: u64) {
        if let Some(call) = self.calls.get(&serial) {
            if let Some(t) = Self::next_deadline(call) {
                self.timers.push(Reverse((t, serial)));
            }
        }
    }

    /// Handles every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&Reverse((t, serial))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(call) = self.calls.get(&serial) else {
                continue;
            };
            // Stale heap entries (a deadline that moved) are skipped cheaply.
            if Self::next_deadline(call).is_none_or(|d| d > now) {
                continue;
            }
            self.handle_call_timers(now, serial);
            self.schedule(serial);
        }
    }

    pub(super) fn handle_call_timers(&mut self, now: Instant, serial: u64) {
        self.final_due(now, serial);
        self.run_steps(now, serial);
        self.hangup_due(now, serial);
        self.bye_timers(now, serial);
        let call = self.calls.get_mut(&serial).expect("call");
        if call.tx.next_timeout().is_some_and(|t| t <= now) {
            let actions = call.tx.on_timeout(now);
            self.apply(now, serial, actions);
        }
        let call = self.calls.get_mut(&serial).expect("call");
        let done = call.phase == Phase::Ended
            && call.tx.state() == ServerState::Terminated
            && call.bye.is_none()
            && call.forget_at.is_none_or(|t| t <= now);
        if done {
            let id = call.call_id.clone();
            self.calls.remove(&serial);
            self.by_id.remove(&id);
        }
    }

    /// The final response, when its ring delay is over: the disposition's status (none
    /// for a callee that never answers).
    fn final_due(&mut self, now: Instant, serial: u64) {
        let call = self.calls.get_mut(&serial).expect("call");
        if call.final_at.is_none_or(|t| t > now) {
            return;
        }
        call.final_at = None;
        let (status, reason) = match call.disposition {
            Disposition::Answer => (200, "OK"),
            Disposition::Busy => (486, "Busy Here"),
            Disposition::Reject(c) => (c, reason_for(c)),
            Disposition::NoAnswer => (0, ""),
        };
        if status == 0 {
            return;
        }
        let resp = self.final_response(serial, status, reason);
        let call = self.calls.get_mut(&serial).expect("call");
        if status < 300 {
            call.phase = Phase::Answered;
            call.answer = Some(resp.clone());
        } else {
            call.phase = Phase::Ended;
            self.events.push_back(UasEvent::Ended {
                call: serial,
                by: EndedBy::Final,
            });
        }
        let call = self.calls.get_mut(&serial).expect("call");
        let actions = call.tx.respond(now, status, resp);
        self.apply(now, serial, actions);
    }

    /// The callee hangs up first (our BYE) when its time has come on a confirmed call.
    fn hangup_due(&mut self, now: Instant, serial: u64) {
        let local = self.cfg.local;
        let timers = self.cfg.timers;
        let call = self.calls.get_mut(&serial).expect("call");
        if !(call.hangup_at.is_some_and(|t| t <= now) && call.phase == Phase::Confirmed) {
            return;
        }
        call.hangup_at = None;
        call.phase = Phase::Ended;
        call.forget_at = Some(now + timers.t64());
        let bye = build_bye(call, local, serial);
        call.bye = Some(ClientTx::new(now, false, bye.clone(), false, timers));
        let peer = call.peer;
        self.transmits.push_back(Transmit {
            dest: peer,
            bytes: bye,
        });
        self.events.push_back(UasEvent::Ended {
            call: serial,
            by: EndedBy::Callee,
        });
    }

    /// Our BYE's client transaction: retransmissions, and forgetting it once done.
    fn bye_timers(&mut self, now: Instant, serial: u64) {
        let call = self.calls.get_mut(&serial).expect("call");
        let mut sends = Vec::new();
        if let Some(b) = call.bye.as_mut() {
            if b.next_timeout().is_some_and(|t| t <= now) {
                for a in b.on_timeout(now) {
                    match a {
                        ClientAction::Send(w) => sends.push(w),
                        ClientAction::Timeout | ClientAction::Terminated => {}
                        ClientAction::PassUp | ClientAction::Accepted(_) => {}
                    }
                }
                if b.next_timeout().is_none() {
                    call.bye = None;
                }
            }
        }
        let peer = call.peer;
        for w in sends {
            self.transmits.push_back(Transmit {
                dest: peer,
                bytes: w,
            });
        }
    }
}

impl Uas {
    /// The callee's steps due at `now` (only while the call is up).
    pub(super) fn run_steps(&mut self, now: Instant, serial: u64) {
        let local = self.cfg.local;
        let call = self.calls.get_mut(&serial).expect("call");
        while call.steps.front().is_some_and(|(t, _)| *t <= now) {
            let (_, step) = call.steps.pop_front().expect("front");
            if call.phase != Phase::Confirmed {
                call.steps.clear();
                break;
            }
            match step {
                Step::HangUp => call.hangup_at = Some(now),
                Step::Key(d, Via::Info) => {
                    call.cseq += 1;
                    let info = build_info(call, local, serial, d);
                    self.transmits.push_back(Transmit {
                        dest: call.peer,
                        bytes: info,
                    });
                }
                Step::Key(_, Via::Rtp) | Step::Greeting(_) | Step::Beep => {}
            }
            self.events.push_back(UasEvent::Step {
                call: serial,
                step,
                rtp_to: call.rtp_from,
                payload_type: call.payload_type,
            });
        }
    }
}

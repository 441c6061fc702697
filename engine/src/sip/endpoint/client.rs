//! Client transactions: starting them, their timers, and matching responses to them by
//! Via branch (RFC 3261 §17.1.3).

use super::*;

impl Endpoint {
    /// Sends `bytes` as a new client transaction of `method` and files its timers.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_client(
        &mut self,
        now: Instant,
        branch: u64,
        method: Verb,
        bytes: Wire,
        dest: SocketAddr,
        transport: Transport,
        call: Option<u64>,
    ) -> TxId {
        let invite = method == Method::Invite;
        let tx = ClientTx::new(
            now,
            invite,
            bytes.clone(),
            transport.reliable(),
            self.cfg.timers,
        );
        self.send(transport, dest, bytes);
        let id = TxId(self.next_tx);
        self.next_tx += 1;
        let next = tx.next_timeout();
        let index = if method == Method::Cancel {
            &mut self.cancel_branches
        } else {
            &mut self.client_branches
        };
        if let Some(old) = index.insert(branch, id) {
            // A branch is random; a collision only replaces a transaction that is done.
            self.clients.remove(&old);
            self.wakeups.set(Wake::Client(old), None);
        }
        let entry = ClientEntry {
            tx,
            branch,
            dest,
            transport,
            call,
            method,
        };
        self.clients.insert(id, entry);
        self.wakeups.set(Wake::Client(id), next);
        id
    }

    /// Forgets a client transaction and its wake-up; returns what it was.
    pub(super) fn remove_client(&mut self, id: TxId) -> Option<ClientEntry> {
        let removed = self.clients.remove(&id);
        if let Some(e) = &removed {
            let index = if e.method == Method::Cancel {
                &mut self.cancel_branches
            } else {
                &mut self.client_branches
            };
            if index.get(&e.branch) == Some(&id) {
                index.remove(&e.branch);
            }
        }
        self.wakeups.set(Wake::Client(id), None);
        removed
    }

    pub(super) fn client_timeout(&mut self, now: Instant, id: TxId) {
        let Some(e) = self.clients.get_mut(&id) else {
            return;
        };
        let actions = e.tx.on_timeout(now);
        let (dest, transport, call, method) = (e.dest, e.transport, e.call, e.method);
        let next = e.tx.next_timeout();
        for a in actions {
            match a {
                ClientAction::Send(b) => {
                    let trunk = self.trunk_label(call);
                    metrics::counter!(crate::metrics::SIP_RETRANSMISSIONS, "trunk" => trunk)
                        .increment(1);
                    self.send(transport, dest, b)
                }
                ClientAction::Timeout => {
                    if let Some(h) = call {
                        self.on_client_timeout(now, h, method);
                    }
                }
                ClientAction::Terminated => {
                    self.remove_client(id);
                    return;
                }
                ClientAction::PassUp | ClientAction::Accepted(_) => {}
            }
        }
        if self.clients.contains_key(&id) {
            self.wakeups.set(Wake::Client(id), next);
        }
    }

    // ----- responses --------------------------------------------------------------------

    pub(super) fn on_response(&mut self, now: Instant, r: &Response<'_>) {
        let (Ok(via), Ok(cseq)) = (r.headers.top_via(), r.headers.cseq()) else {
            return dropped("parse_error");
        };
        let Some(branch) = via.branch() else {
            return dropped("parse_error");
        };
        let index = if cseq.method == Method::Cancel {
            &self.cancel_branches
        } else {
            &self.client_branches
        };
        // A branch we did not make has no key, and no transaction of ours.
        let key = branch_key(branch);
        let Some(&id) = key.and_then(|k| index.get(&k)) else {
            let accepted = key
                .filter(|_| cseq.method != Method::Cancel)
                .and_then(|k| self.accepted.call(k));
            return match accepted {
                Some(call) => self.on_accepted_response(now, call, r),
                None => self.on_stray_response(now, r),
            };
        };
        let Some(e) = self.clients.get_mut(&id) else {
            return dropped("no_transaction");
        };
        if e.method != cseq.method {
            return dropped("no_transaction");
        }
        let request = e.tx.request().cloned();
        let actions = e.tx.on_response(now, r.status, || {
            request.map_or_else(Vec::new, |q| build_ack_for_error(&q, r))
        });
        let (dest, transport, call, method) = (e.dest, e.transport, e.call, e.method);
        let next = e.tx.next_timeout();
        let mut terminated = false;
        let mut accepted = None;
        for a in actions {
            match a {
                ClientAction::Send(b) => self.send(transport, dest, b),
                ClientAction::PassUp => {
                    let trunk = self.trunk_label(call);
                    self.responses.count(trunk, method, r.status);
                    if let Some(h) = call {
                        self.on_call_response(now, h, method, r);
                    }
                }
                ClientAction::Terminated => terminated = true,
                ClientAction::Accepted(a) => accepted = Some(a),
                ClientAction::Timeout => {}
            }
        }
        if let Some(a) = accepted {
            self.accept_invite(id, a);
        } else if terminated {
            self.remove_client(id);
        } else if self.clients.contains_key(&id) {
            self.wakeups.set(Wake::Client(id), next);
        }
    }

    /// A response no transaction waits for: a 2xx retransmission after Timer M, or a stray
    /// 2xx from another fork. Either needs an ACK (and a BYE for a fork we don't keep);
    /// anything else is dropped and counted.
    fn on_stray_response(&mut self, now: Instant, r: &Response<'_>) {
        let invite_2xx = r.headers.cseq().is_ok_and(|c| c.method == Method::Invite)
            && (200..300).contains(&r.status);
        let call = r
            .headers
            .call_id()
            .ok()
            .and_then(|id| self.by_call_id.get(id).copied());
        match call {
            Some(h) if invite_2xx => self.on_invite_2xx(now, h, r),
            _ => dropped("no_transaction"),
        }
    }
}

/// Counts a datagram or message the endpoint threw away, by why (DESIGN's metric set:
/// `dialer_sip_dropped_total{reason}`; the driver counts the socket's own drops).
pub(super) fn dropped(reason: &'static str) {
    metrics::counter!(crate::metrics::SIP_DROPPED, "reason" => reason).increment(1);
}

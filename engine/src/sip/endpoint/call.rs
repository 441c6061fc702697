//! Placing calls as a UAC: INVITE, CANCEL, ACK, BYE, digest retries, forks and session
//! timers (RFC 3261 §13–§15, RFC 4028).

use super::*;
use std::borrow::Cow;

impl Endpoint {
    // ----- placing calls ---------------------------------------------------------------

    /// Places a call: builds and sends the INVITE with the SDP offer. The Call-ID is known
    /// (via [`Endpoint::call_id`]) as soon as this returns, before the INVITE is drained.
    pub fn place_call(&mut self, now: Instant, params: CallParams) -> CallHandle {
        let call_id = format!("{}@{}", self.token(20), self.cfg.local_addr.ip());
        self.place_call_with_id(now, params, call_id)
    }

    /// Places a call with a Call-ID chosen by the caller, so that an attempt journal can
    /// record it durably before asking for the call (the dialer journals, then places).
    /// The Call-ID must be unique (RFC 3261 §8.1.1.4): a random token is.
    pub fn place_call_with_id(
        &mut self,
        now: Instant,
        params: CallParams,
        call_id: String,
    ) -> CallHandle {
        let handle = self.next_handle;
        self.next_handle += 1;
        let local_tag = self.token(10);
        let local_party = match &params.from_display {
            Some(d) => format!(
                "\"{}\" <{}>;tag={local_tag}",
                d.replace('"', ""),
                params.from_uri
            ),
            None => ["<", &params.from_uri, ">;tag=", &local_tag].concat(),
        };
        let transport = params.transport.unwrap_or(self.cfg.transport);
        let cseq = self.rng.random_range(1..10_000);
        let mut call = Call::new(
            params,
            transport,
            call_id.clone(),
            local_tag,
            local_party,
            cseq,
        );
        call.timers
            .set(CallTimer::Ring, now + call.params.ring_timeout);
        self.calls.insert(handle, call);
        self.by_call_id.insert(call_id, handle);
        self.send_invite(now, handle);
        self.schedule_call(handle);
        CallHandle(handle)
    }

    /// Hangs a call up: BYE when answered, CANCEL while ringing (deferred until the first
    /// provisional response, RFC 3261 §9.1).
    pub fn hangup(&mut self, now: Instant, call: CallHandle) {
        let Some(c) = self.calls.get_mut(&call.0) else {
            return;
        };
        match c.state {
            CallState::Inviting => {
                if c.cancel.is_none() {
                    c.cancel = Some(CancelReason::User);
                }
                self.try_cancel(now, call.0);
            }
            CallState::Confirmed => {
                let end = CallEnd::new(Outcome::Answered, 200, "OK", Hangup::Local);
                self.send_bye(now, call.0, end);
            }
            // Theirs, not answered yet: refuse it.
            CallState::Incoming => {
                self.reject(now, call, 480, "Temporarily Unavailable");
            }
            // Our 2xx awaits its ACK: the BYE must wait for it (RFC 3261 §15).
            CallState::Accepted => {
                if let Some(i) = c.inbound.as_mut() {
                    i.hangup_after_ack = true;
                }
            }
            CallState::Terminating => {}
        }
    }

    /// Re-files a call's earliest deadline (none once the call has ended).
    pub(super) fn schedule_call(&mut self, h: u64) {
        let at = self.calls.get(&h).and_then(|c| c.timers.next());
        self.wakeups.set(Wake::Call(CallHandle(h)), at);
    }

    pub(super) fn send_invite(&mut self, now: Instant, h: u64) {
        let (key, branch) = self.keyed_branch();
        let Some(c) = self.calls.get_mut(&h) else {
            return;
        };
        c.cseq += 1;
        c.invite_cseq = c.cseq;
        let body = sdp::build_offer(&c.params.offer);
        let dest = c.params.proxy;
        let mut transport = c.transport;
        let mut bytes = build_invite(&self.cfg, c, &branch, transport, body.as_bytes());
        if transport == Transport::Udp && bytes.len() > self.cfg.max_udp_request {
            transport = Transport::Tcp;
            bytes = build_invite(&self.cfg, c, &branch, transport, body.as_bytes());
        }
        let id = self.start_client(
            now,
            key,
            Method::Invite,
            bytes.into(),
            dest,
            transport,
            Some(h),
        );
        if let Some(c) = self.calls.get_mut(&h) {
            c.invite_tx = Some(id);
        }
    }

    pub(super) fn try_cancel(&mut self, now: Instant, h: u64) {
        let Some(c) = self.calls.get_mut(&h) else {
            return;
        };
        if c.cancel.is_none()
            || c.cancel_sent
            || !c.provisional_seen
            || c.state != CallState::Inviting
        {
            return;
        }
        c.cancel_sent = true;
        c.timers.stop(CallTimer::Ring);
        c.timers
            .set(CallTimer::CancelGuard, now + self.cfg.timers.t64());
        let invite_tx = c.invite_tx;
        self.schedule_call(h);
        let Some(invite) = invite_tx.and_then(|id| self.clients.get(&id)) else {
            return;
        };
        let (dest, transport) = (invite.dest, invite.transport);
        let Some(bytes) = invite.tx.request().and_then(|r| build_cancel(r)) else {
            return;
        };
        let branch = invite.branch;
        self.start_client(
            now,
            branch,
            Method::Cancel,
            bytes.into(),
            dest,
            transport,
            Some(h),
        );
    }

    /// Sends an in-dialog request (not an ACK), with a fresh digest answer for it when the
    /// dialog's requests have been challenged.
    pub(super) fn send_in_dialog(
        &mut self,
        now: Instant,
        h: u64,
        method: Verb,
        extra: &[(&str, String)],
        body: Option<(&str, &[u8])>,
    ) {
        let (key, branch) = self.keyed_branch();
        let Some(c) = self.calls.get_mut(&h) else {
            return;
        };
        c.cseq += 1;
        let cseq = c.cseq;
        // Credentials are worked out only for a dialog that met a challenge.
        let extra = if c.auth_challenges.is_empty() {
            Cow::Borrowed(extra)
        } else {
            let cnonce = format!("{:016x}", self.rng.random::<u64>());
            let mut all = extra.to_vec();
            all.extend(fresh_authorizations(c, method, &cnonce));
            Cow::Owned(all)
        };
        let Some((bytes, dest)) =
            build_in_dialog(&self.cfg, c, method, cseq, &branch, &extra, body)
        else {
            return;
        };
        let transport = c.transport;
        self.start_client(now, key, method, bytes.into(), dest, transport, Some(h));
    }

    pub(super) fn send_bye(&mut self, now: Instant, h: u64, end: CallEnd) {
        let Some(c) = self.calls.get_mut(&h) else {
            return;
        };
        if c.state == CallState::Terminating {
            return;
        }
        c.state = CallState::Terminating;
        c.timers.clear();
        c.end_after_bye = Some(end);
        self.schedule_call(h);
        self.send_in_dialog(now, h, Method::Bye, &[], None);
    }

    pub(super) fn end_call(&mut self, h: u64, end: CallEnd) {
        if let Some(c) = self.calls.remove(&h) {
            self.by_call_id.remove(&c.call_id);
            self.wakeups.set(Wake::Call(CallHandle(h)), None);
            self.events.push_back(Event::Ended {
                call: CallHandle(h),
                end,
            });
        }
    }

    pub(super) fn call_timeout(&mut self, now: Instant, h: u64) {
        while let Some(t) = self
            .calls
            .get_mut(&h)
            .and_then(|c| c.timers.pop_expired(now))
        {
            match t {
                CallTimer::Ring if self.calls.get(&h).is_some_and(|c| c.inbound.is_some()) => {
                    self.reject(now, CallHandle(h), 480, "Temporarily Unavailable");
                    return;
                }
                CallTimer::Ring => {
                    if let Some(c) = self.calls.get_mut(&h) {
                        c.cancel.get_or_insert(CancelReason::RingTimeout);
                    }
                    self.try_cancel(now, h);
                }
                CallTimer::CancelGuard => return self.give_up_after_cancel(h),
                CallTimer::Refresh => self.send_refresh(now, h),
                CallTimer::Expire => {
                    let end =
                        CallEnd::new(Outcome::Answered, 200, "session expired", Hangup::Local);
                    self.send_bye(now, h, end);
                }
            }
        }
        self.schedule_call(h);
    }

    /// No final response 64·T1 after CANCEL: the INVITE is given up (RFC 3261 §9.1).
    fn give_up_after_cancel(&mut self, h: u64) {
        let Some(c) = self.calls.get(&h) else {
            return;
        };
        let outcome = cancel_outcome(c.cancel);
        if let Some(id) = c.invite_tx {
            self.remove_client(id);
        }
        self.end_call(
            h,
            CallEnd::new(outcome, 0, "no final response after CANCEL", Hangup::None),
        );
    }

    pub(super) fn send_refresh(&mut self, now: Instant, h: u64) {
        let Some(c) = self.calls.get(&h) else {
            return;
        };
        let Some(secs) = c.session_interval else {
            return;
        };
        let extra = vec![
            ("Session-Expires", format!("{secs};refresher=uac")),
            ("Supported", "timer".to_string()),
        ];
        self.send_in_dialog(now, h, Method::Update, &extra, None);
        if let Some(c) = self.calls.get_mut(&h) {
            c.timers.set(
                CallTimer::Refresh,
                now + Duration::from_secs(u64::from(secs) / 2),
            );
        }
    }

    pub(super) fn on_client_timeout(&mut self, now: Instant, h: u64, method: Verb) {
        if self.pings.contains_key(&h) || self.regs.contains_key(&h) {
            self.on_aux_final(now, h, 408, None);
            return;
        }
        let Some(c) = self.calls.get(&h) else {
            return;
        };
        match (method, c.state) {
            (Method::Invite, CallState::Inviting) => {
                let outcome = match c.cancel {
                    Some(r) if c.cancel_sent => cancel_outcome(Some(r)),
                    _ => Outcome::Failed,
                };
                self.end_call(
                    h,
                    CallEnd::new(outcome, 408, "Request Timeout (no response)", Hangup::None),
                );
            }
            (Method::Bye, CallState::Terminating) => {
                let end = self.calls.get_mut(&h).and_then(|c| c.end_after_bye.take());
                if let Some(end) = end {
                    self.end_call(h, end);
                }
            }
            (Method::Update | Method::Invite, CallState::Confirmed) => {
                // A refresh that times out ends the session (RFC 4028 §10).
                let end = CallEnd::new(
                    Outcome::Answered,
                    200,
                    "session refresh timed out",
                    Hangup::Local,
                );
                self.send_bye(now, h, end);
            }
            _ => {}
        }
    }

    pub(super) fn on_call_response(
        &mut self,
        now: Instant,
        h: u64,
        method: Verb,
        r: &Response<'_>,
    ) {
        if self.pings.contains_key(&h) || self.regs.contains_key(&h) {
            if r.status >= 200 {
                self.on_aux_final(now, h, r.status, Some(r));
            }
            return;
        }
        match method {
            Method::Invite => self.on_invite_response(now, h, r),
            Method::Bye if r.status >= 200 => {
                if matches!(r.status, 401 | 407) && self.retry_with_auth(now, h, Method::Bye, r) {
                    return;
                }
                let end = self.calls.get_mut(&h).and_then(|c| c.end_after_bye.take());
                if let Some(end) = end {
                    self.end_call(h, end);
                }
            }
            Method::Update if r.status >= 300 && r.status != 491 => {
                if let Some(c) = self.calls.get_mut(&h) {
                    c.timers.stop(CallTimer::Refresh);
                }
                self.schedule_call(h);
                // A failed refresh ends the session (RFC 4028 §10).
                if matches!(r.status, 408 | 481) {
                    let end = CallEnd::new(
                        Outcome::Answered,
                        200,
                        "session refresh failed",
                        Hangup::Local,
                    );
                    self.send_bye(now, h, end);
                }
            }
            _ => {}
        }
    }
}

impl Call {
    /// A throwaway copy of a call's identity for a second fork's dialog (to ACK and BYE it).
    pub(super) fn fork_of(c: &Call, dialog: Dialog) -> Call {
        let mut fork = Call::new(
            c.params.clone(),
            c.transport,
            c.call_id.clone(),
            c.local_tag.clone(),
            c.local_party.clone(),
            c.invite_cseq,
        );
        fork.invite_cseq = c.invite_cseq;
        fork.state = CallState::Confirmed;
        fork.provisional_seen = true;
        fork.dialog = Some(dialog);
        fork
    }

    /// A call about to send its first INVITE (or, inbound, to answer one).
    pub(super) fn new(
        params: CallParams,
        transport: Transport,
        call_id: String,
        local_tag: String,
        local_party: String,
        cseq: u32,
    ) -> Call {
        Call {
            trunk_label: params
                .trunk
                .clone()
                .unwrap_or(metrics::SharedString::const_str("none")),
            transport,
            call_id,
            local_tag,
            local_party,
            cseq,
            invite_cseq: 0,
            invite_tx: None,
            state: CallState::Inviting,
            provisional_seen: false,
            cancel: None,
            cancel_sent: false,
            dialog: None,
            ack: None,
            timers: CallTimers::default(),
            auth: DigestClient::default(),
            auth_header: None,
            auth_challenges: Vec::new(),
            auth_tries: 0,
            media: None,
            early_sdp: None,
            session_interval: None,
            pending_reinvite: None,
            answer_version: params.offer.version,
            end_after_bye: None,
            inbound: None,
            params,
        }
    }
}

pub(super) fn cancel_outcome(reason: Option<CancelReason>) -> Outcome {
    match reason {
        Some(CancelReason::User) => Outcome::Canceled,
        _ => Outcome::NoAnswer,
    }
}

/// When to give up on a session the far end should refresh: before it expires, by
/// min(32 s, interval/3) (RFC 4028 §10).
pub(super) fn session_guard(secs: u32) -> Duration {
    let s = u64::from(secs);
    Duration::from_secs(s - (s / 3).min(32))
}

/// Answers to the dialog's challenges for a request of `method` to the dialog's next
/// Request-URI (RFC 2617 §3.2.2: the digest covers the method and URI of the very request
/// that carries it; the nonce count goes up with each use of the nonce).
fn fresh_authorizations(c: &mut Call, method: Verb, cnonce: &str) -> Vec<(&'static str, String)> {
    let (Some(creds), Some(d)) = (c.params.credentials.as_ref(), c.dialog.as_ref()) else {
        return Vec::new();
    };
    let (uri, _) = d.target();
    c.auth_challenges
        .iter()
        .filter_map(|(header, ch)| {
            c.auth
                .authorize(ch, creds, method.as_str(), uri, cnonce)
                .ok()
                .map(|v| (*header, v))
        })
        .collect()
}

/// Keeps `ch` as the challenge of its realm and header, replacing an older one.
pub(super) fn remember_challenge(c: &mut Call, header: &'static str, ch: auth::Challenge) {
    /// More realms than a proxy chain ever has; a bound against a hostile peer.
    const MAX_REALMS: usize = 4;
    c.auth_challenges
        .retain(|(h, old)| !(*h == header && old.realm == ch.realm));
    if c.auth_challenges.len() >= MAX_REALMS {
        c.auth_challenges.remove(0);
    }
    c.auth_challenges.push((header, ch));
}

//! Placing calls as a UAC: INVITE, CANCEL, ACK, BYE, digest retries, forks and session
//! timers (RFC 3261 §13–§15, RFC 4028).

use super::*;

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
            None => format!("<{}>;tag={local_tag}", params.from_uri),
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
        call.ring_deadline = Some(now + call.params.ring_timeout);
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
                let end = CallEnd {
                    outcome: Outcome::Answered,
                    status: 200,
                    reason: "OK".into(),
                    hangup: Hangup::Local,
                    retry_after: None,
                };
                self.send_bye(now, call.0, end);
            }
            CallState::Terminating => {}
        }
    }

    pub(super) fn schedule_call(&mut self, h: u64) {
        if let Some(c) = self.calls.get(&h) {
            let at = [
                c.ring_deadline,
                c.cancel_deadline,
                c.refresh_at,
                c.expire_at,
            ]
            .into_iter()
            .flatten()
            .min();
            self.wake(at, Owner::Call(h));
        }
    }

    pub(super) fn send_invite(&mut self, now: Instant, h: u64) {
        let branch = self.branch();
        let Some(c) = self.calls.get_mut(&h) else {
            return;
        };
        c.cseq += 1;
        c.invite_cseq = c.cseq;
        c.invite_branch = branch.clone();
        let body = sdp::build_offer(&c.params.offer);
        let dest = c.params.proxy;
        let mut transport = c.transport;
        let mut bytes = build_invite(&self.cfg, c, &branch, transport, body.as_bytes());
        if transport == Transport::Udp && bytes.len() > self.cfg.max_udp_request {
            transport = Transport::Tcp;
            bytes = build_invite(&self.cfg, c, &branch, transport, body.as_bytes());
        }
        self.start_client(
            now,
            branch,
            true,
            bytes.into(),
            dest,
            transport,
            Some(h),
            "INVITE",
        );
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
        c.ring_deadline = None;
        c.cancel_deadline = Some(now + self.cfg.timers.t64());
        let Some(invite) = self.clients.get(&c.invite_branch) else {
            return;
        };
        let (dest, transport) = (invite.dest, invite.transport);
        let Some(bytes) = build_cancel(invite.tx.request()) else {
            return;
        };
        let branch = c.invite_branch.clone();
        self.start_client(
            now,
            branch,
            false,
            bytes.into(),
            dest,
            transport,
            Some(h),
            "CANCEL",
        );
        self.schedule_call(h);
    }

    /// Sends an in-dialog request; returns its branch.
    pub(super) fn send_in_dialog(
        &mut self,
        now: Instant,
        h: u64,
        method: &'static str,
        extra: &[(&str, String)],
        body: Option<(&str, &[u8])>,
    ) {
        let branch = self.branch();
        let cfg = self.cfg.clone();
        let Some(c) = self.calls.get_mut(&h) else {
            return;
        };
        c.cseq += 1;
        let cseq = c.cseq;
        let Some((bytes, dest)) = build_in_dialog(&cfg, c, method, cseq, &branch, extra, body)
        else {
            return;
        };
        let transport = c.transport;
        self.start_client(
            now,
            branch,
            method == "INVITE",
            bytes.into(),
            dest,
            transport,
            Some(h),
            method,
        );
    }

    pub(super) fn send_bye(&mut self, now: Instant, h: u64, end: CallEnd) {
        let Some(c) = self.calls.get_mut(&h) else {
            return;
        };
        if c.state == CallState::Terminating {
            return;
        }
        c.state = CallState::Terminating;
        c.refresh_at = None;
        c.expire_at = None;
        c.end_after_bye = Some(end);
        let auth = c.auth_header.clone();
        let extra: Vec<(&str, String)> = auth.into_iter().collect();
        self.send_in_dialog(now, h, "BYE", &extra, None);
    }

    pub(super) fn end_call(&mut self, h: u64, end: CallEnd) {
        if let Some(c) = self.calls.remove(&h) {
            self.by_call_id.remove(&c.call_id);
            self.events.push_back(Event::Ended {
                call: CallHandle(h),
                end,
            });
        }
    }

    pub(super) fn call_timeout(&mut self, now: Instant, h: u64) {
        let Some(c) = self.calls.get_mut(&h) else {
            return;
        };
        if c.ring_deadline.is_some_and(|t| t <= now) {
            c.ring_deadline = None;
            if c.cancel.is_none() {
                c.cancel = Some(CancelReason::RingTimeout);
            }
            self.try_cancel(now, h);
        }
        let Some(c) = self.calls.get_mut(&h) else {
            return;
        };
        if c.cancel_deadline.is_some_and(|t| t <= now) {
            // No final response 64·T1 after CANCEL: the INVITE is given up (RFC 3261 §9.1).
            let outcome = cancel_outcome(c.cancel);
            let branch = c.invite_branch.clone();
            self.clients.remove(&branch);
            self.end_call(
                h,
                CallEnd {
                    outcome,
                    status: 0,
                    reason: "no final response after CANCEL".into(),
                    hangup: Hangup::None,
                    retry_after: None,
                },
            );
            return;
        }
        if c.refresh_at.is_some_and(|t| t <= now) {
            c.refresh_at = None;
            self.send_refresh(now, h);
        }
        let Some(c) = self.calls.get_mut(&h) else {
            return;
        };
        if c.expire_at.is_some_and(|t| t <= now) {
            c.expire_at = None;
            let end = CallEnd {
                outcome: Outcome::Answered,
                status: 200,
                reason: "session expired".into(),
                hangup: Hangup::Local,
                retry_after: None,
            };
            self.send_bye(now, h, end);
        }
        self.schedule_call(h);
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
        self.send_in_dialog(now, h, "UPDATE", &extra, None);
        if let Some(c) = self.calls.get_mut(&h) {
            c.refresh_at = Some(now + Duration::from_secs(u64::from(secs) / 2));
        }
    }

    pub(super) fn on_client_timeout(&mut self, now: Instant, h: u64, method: &str) {
        if self.pings.contains_key(&h) || self.regs.contains_key(&h) {
            self.on_aux_final(now, h, 408, None);
            return;
        }
        let Some(c) = self.calls.get(&h) else {
            return;
        };
        match (method, c.state) {
            ("INVITE", CallState::Inviting) => {
                let outcome = match c.cancel {
                    Some(r) if c.cancel_sent => cancel_outcome(Some(r)),
                    _ => Outcome::Failed,
                };
                self.end_call(
                    h,
                    CallEnd {
                        outcome,
                        status: 408,
                        reason: "Request Timeout (no response)".into(),
                        hangup: Hangup::None,
                        retry_after: None,
                    },
                );
            }
            ("BYE", CallState::Terminating) => {
                let end = self.calls.get_mut(&h).and_then(|c| c.end_after_bye.take());
                if let Some(end) = end {
                    self.end_call(h, end);
                }
            }
            ("UPDATE" | "INVITE", CallState::Confirmed) => {
                // A refresh that times out ends the session (RFC 4028 §10).
                let end = CallEnd {
                    outcome: Outcome::Answered,
                    status: 200,
                    reason: "session refresh timed out".into(),
                    hangup: Hangup::Local,
                    retry_after: None,
                };
                self.send_bye(now, h, end);
            }
            _ => {}
        }
    }

    pub(super) fn on_call_response(
        &mut self,
        now: Instant,
        h: u64,
        method: &str,
        r: &Response<'_>,
    ) {
        if self.pings.contains_key(&h) || self.regs.contains_key(&h) {
            if r.status >= 200 {
                self.on_aux_final(now, h, r.status, Some(r));
            }
            return;
        }
        match method {
            "INVITE" => self.on_invite_response(now, h, r),
            "BYE" if r.status >= 200 => {
                if matches!(r.status, 401 | 407) && self.retry_with_auth(now, h, "BYE", r) {
                    return;
                }
                let end = self.calls.get_mut(&h).and_then(|c| c.end_after_bye.take());
                if let Some(end) = end {
                    self.end_call(h, end);
                }
            }
            "UPDATE" if r.status >= 300 && r.status != 491 => {
                if let Some(c) = self.calls.get_mut(&h) {
                    c.refresh_at = None;
                }
                // A failed refresh ends the session (RFC 4028 §10).
                if matches!(r.status, 408 | 481) {
                    let end = CallEnd {
                        outcome: Outcome::Answered,
                        status: 200,
                        reason: "session refresh failed".into(),
                        hangup: Hangup::Local,
                        retry_after: None,
                    };
                    self.send_bye(now, h, end);
                }
            }
            _ => {}
        }
    }

    pub(super) fn on_invite_response(&mut self, now: Instant, h: u64, r: &Response<'_>) {
        let Some(c) = self.calls.get_mut(&h) else {
            return;
        };
        if r.headers.cseq().map(|s| s.seq) != Ok(c.invite_cseq) {
            return;
        }
        match r.status {
            100..=199 => {
                c.provisional_seen = true;
                let mut early = None;
                if r.status != 100 {
                    if !r.body.is_empty() && is_sdp(r) {
                        c.early_sdp = Some(r.body.to_vec());
                        early = sdp::parse(r.body)
                            .ok()
                            .and_then(|a| sdp::negotiate(&c.params.offer, &a).ok());
                    }
                    self.events.push_back(Event::Progress {
                        call: CallHandle(h),
                        status: r.status,
                        early_media: early,
                    });
                }
                self.try_cancel(now, h);
            }
            200..=299 => self.on_invite_2xx(now, h, r),
            _ => {
                if matches!(r.status, 401 | 407) && self.retry_with_auth(now, h, "INVITE", r) {
                    return;
                }
                let Some(c) = self.calls.get(&h) else {
                    return;
                };
                let outcome = if r.status == 487 && c.cancel.is_some() {
                    cancel_outcome(c.cancel)
                } else {
                    Outcome::from_status(r.status)
                };
                self.end_call(
                    h,
                    CallEnd {
                        outcome,
                        status: r.status,
                        reason: r.reason.to_string(),
                        hangup: Hangup::None,
                        retry_after: r.headers.retry_after(),
                    },
                );
            }
        }
    }

    /// Re-sends `method` with credentials after a 401/407. Returns false when we have none,
    /// or the challenge repeats a nonce we already answered without `stale=true`.
    pub(super) fn retry_with_auth(
        &mut self,
        now: Instant,
        h: u64,
        method: &'static str,
        r: &Response<'_>,
    ) -> bool {
        let Some(c) = self.calls.get_mut(&h) else {
            return false;
        };
        let Some(creds) = c.params.credentials.clone() else {
            return false;
        };
        let uri = match (method, &c.dialog) {
            ("INVITE", _) | (_, None) => c.params.request_uri.clone(),
            (_, Some(d)) => d.remote_target.clone(),
        };
        let cnonce = format!("{:016x}", self.rng.random::<u64>());
        let Some((header, value)) = answer_challenge(
            &mut c.auth,
            c.auth_tries,
            3,
            r,
            &creds,
            method,
            &uri,
            &cnonce,
        ) else {
            return false;
        };
        c.auth_tries += 1;
        c.auth_header = Some((header, value));
        match method {
            "INVITE" => {
                c.provisional_seen = false;
                self.send_invite(now, h);
            }
            _ => {
                let extra: Vec<(&str, String)> = c.auth_header.clone().into_iter().collect();
                self.send_in_dialog(now, h, method, &extra, None);
            }
        }
        true
    }

    pub(super) fn on_invite_2xx(&mut self, now: Instant, h: u64, r: &Response<'_>) {
        let cfg = self.cfg.clone();
        let Some(c) = self.calls.get_mut(&h) else {
            return;
        };
        let Ok(to) = r.headers.to() else {
            return;
        };
        let remote_tag = to.tag().unwrap_or("").to_string();
        let contact = r
            .headers
            .contacts()
            .ok()
            .and_then(|v| v.first().map(|n| n.uri.raw.to_string()));
        let routes: Vec<String> = r
            .headers
            .record_routes()
            .unwrap_or_default()
            .iter()
            .rev()
            .map(|n| format!("<{}>", n.uri.raw))
            .collect();
        let dialog = Dialog {
            remote_tag: remote_tag.clone(),
            remote_party: r.headers.first(HeaderName::To).unwrap_or("").to_string(),
            remote_target: contact.unwrap_or_else(|| c.params.request_uri.clone()),
            route_set: routes,
        };
        if let Some(d) = &c.dialog {
            if d.remote_tag == remote_tag {
                // A retransmitted 2xx: our ACK was lost, send it again.
                if let Some((ack, dest)) = c.ack.clone() {
                    let t = c.transport;
                    self.send(t, dest, ack);
                }
                return;
            }
            // A 2xx from a second fork: acknowledge it, then end that dialog.
            let mut fork = Call::fork_of(c, dialog);
            let (t, invite_cseq) = (c.transport, c.invite_cseq);
            let branch = self.branch();
            if let Some((ack, dest)) =
                build_in_dialog(&cfg, &mut fork, "ACK", invite_cseq, &branch, &[], None)
            {
                self.send(t, dest, ack.into());
            }
            let branch = self.branch();
            if let Some((bye, dest)) =
                build_in_dialog(&cfg, &mut fork, "BYE", invite_cseq + 1, &branch, &[], None)
            {
                self.start_client(now, branch, false, bye.into(), dest, t, None, "BYE");
            }
            return;
        }
        if c.state != CallState::Inviting {
            return;
        }
        c.dialog = Some(dialog);
        c.state = CallState::Confirmed;
        c.ring_deadline = None;
        c.cancel_deadline = None;
        let branch = format!("{BRANCH_MAGIC}{:016x}", self.rng.random::<u64>());
        let extra: Vec<(&str, String)> =
            c.auth_header.iter().map(|(n, v)| (*n, v.clone())).collect();
        let invite_cseq = c.invite_cseq;
        if let Some((ack, dest)) =
            build_in_dialog(&cfg, c, "ACK", invite_cseq, &branch, &extra, None)
        {
            let ack: Wire = ack.into();
            c.ack = Some((ack.clone(), dest));
            let t = c.transport;
            self.send(t, dest, ack);
        }
        let Some(c) = self.calls.get_mut(&h) else {
            return;
        };
        // The answer is in the 2xx; an answer already given in a reliable 183 also counts.
        let answer = if !r.body.is_empty() && is_sdp(r) {
            Some(r.body.to_vec())
        } else {
            c.early_sdp.clone()
        };
        let media = answer
            .ok_or_else(|| "no SDP answer".to_string())
            .and_then(|b| sdp::parse(&b).map_err(|e| e.to_string()))
            .and_then(|a| sdp::negotiate(&c.params.offer, &a).map_err(|e| e.to_string()));
        if let Some(reason) = c.cancel {
            // 200 crossed our CANCEL: acknowledge and hang up at once.
            let end = CallEnd {
                outcome: cancel_outcome(Some(reason)),
                status: 200,
                reason: "answered after CANCEL".into(),
                hangup: Hangup::Local,
                retry_after: None,
            };
            self.send_bye(now, h, end);
            return;
        }
        match media {
            Ok(m) => {
                c.media = Some(m.clone());
                // RFC 4028: if the far end made us the refresher, refresh at half the
                // interval; otherwise expect its refresh before the interval ends.
                if let Some(se) = r.headers.session_expires() {
                    let secs = se.secs.max(90);
                    c.session_interval = Some(secs);
                    if se.refresher_is_uac == Some(true) {
                        c.refresh_at = Some(now + Duration::from_secs(u64::from(secs) / 2));
                    } else {
                        c.expire_at = Some(now + session_guard(secs));
                    }
                }
                self.events.push_back(Event::Answered {
                    call: CallHandle(h),
                    media: m,
                });
                self.schedule_call(h);
            }
            Err(reason) => {
                let end = CallEnd {
                    outcome: Outcome::Failed,
                    status: r.status,
                    reason: format!("unusable answer: {reason}"),
                    hangup: Hangup::Local,
                    retry_after: None,
                };
                self.send_bye(now, h, end);
            }
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

    /// A call about to send its first INVITE.
    fn new(
        params: CallParams,
        transport: Transport,
        call_id: String,
        local_tag: String,
        local_party: String,
        cseq: u32,
    ) -> Call {
        Call {
            transport,
            call_id,
            local_tag,
            local_party,
            cseq,
            invite_cseq: 0,
            invite_branch: String::new(),
            state: CallState::Inviting,
            provisional_seen: false,
            cancel: None,
            cancel_sent: false,
            dialog: None,
            ack: None,
            ring_deadline: None,
            cancel_deadline: None,
            auth: DigestClient::default(),
            auth_header: None,
            auth_tries: 0,
            media: None,
            early_sdp: None,
            refresh_at: None,
            expire_at: None,
            session_interval: None,
            pending_reinvite: None,
            answer_version: params.offer.version,
            end_after_bye: None,
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

//! A UAC's INVITE answered: provisional responses, failures, digest retries, the 2xx (ACK,
//! media negotiation, session timers) and 2xx from a second fork.

use super::*;

impl Endpoint {
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
                if matches!(r.status, 401 | 407) && self.retry_with_auth(now, h, Method::Invite, r)
                {
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
        method: Verb,
        r: &Response<'_>,
    ) -> bool {
        let Some(c) = self.calls.get_mut(&h) else {
            return false;
        };
        let Some(creds) = c.params.credentials.clone() else {
            return false;
        };
        let Some((header, ch)) = pick_challenge(&c.auth, c.auth_tries, 3, r) else {
            return false;
        };
        c.auth_tries += 1;
        remember_challenge(c, header, ch.clone());
        match method {
            Method::Invite => {
                let cnonce = format!("{:016x}", self.rng.random::<u64>());
                let Some(c) = self.calls.get_mut(&h) else {
                    return false;
                };
                let Ok(value) =
                    c.auth
                        .authorize(&ch, &creds, "INVITE", &c.params.request_uri, &cnonce)
                else {
                    return false;
                };
                c.auth_header = Some((header, value));
                c.provisional_seen = false;
                self.send_invite(now, h);
            }
            // Re-sent with an answer computed for this method and URI.
            _ => self.send_in_dialog(now, h, method, &[], None),
        }
        true
    }

    pub(super) fn on_invite_2xx(&mut self, now: Instant, h: u64, r: &Response<'_>) {
        let Some(c) = self.calls.get(&h) else {
            return;
        };
        let Some(dialog) = dialog_of(&c.params.request_uri, r) else {
            return;
        };
        if c.dialog.is_some() {
            self.on_later_2xx(now, h, dialog);
            return;
        }
        if c.state != CallState::Inviting {
            return;
        }
        self.confirm_and_ack(h, dialog);
        self.on_answer(now, h, r);
    }

    /// A 2xx after the call's dialog is set: a retransmission (our ACK was lost: send it
    /// again), or a 2xx from a second fork (acknowledge it, then end that dialog).
    fn on_later_2xx(&mut self, now: Instant, h: u64, dialog: Dialog) {
        let Some(c) = self.calls.get_mut(&h) else {
            return;
        };
        if c.dialog.as_ref().map(|d| &d.remote_tag) == Some(&dialog.remote_tag) {
            if let Some((ack, dest)) = c.ack.clone() {
                let t = c.transport;
                self.send(t, dest, ack);
            }
            return;
        }
        let mut fork = Call::fork_of(c, dialog);
        let (t, invite_cseq) = (c.transport, c.invite_cseq);
        let branch = self.branch();
        if let Some((ack, dest)) = build_in_dialog(
            &self.cfg,
            &mut fork,
            Method::Ack,
            invite_cseq,
            &branch,
            &[],
            None,
        ) {
            self.send(t, dest, ack.into());
        }
        let (key, branch) = self.keyed_branch();
        if let Some((bye, dest)) = build_in_dialog(
            &self.cfg,
            &mut fork,
            Method::Bye,
            invite_cseq + 1,
            &branch,
            &[],
            None,
        ) {
            self.start_client(now, key, Method::Bye, bye.into(), dest, t, None);
        }
    }

    /// The first 2xx: the call is confirmed with `dialog`, its ring timers stop, and the
    /// ACK (kept for retransmitted 2xx) is sent.
    fn confirm_and_ack(&mut self, h: u64, dialog: Dialog) {
        let branch = self.branch();
        let Some(c) = self.calls.get_mut(&h) else {
            return;
        };
        c.dialog = Some(dialog);
        c.state = CallState::Confirmed;
        c.timers.stop(CallTimer::Ring);
        c.timers.stop(CallTimer::CancelGuard);
        let extra: Vec<(&str, String)> =
            c.auth_header.iter().map(|(n, v)| (*n, v.clone())).collect();
        let invite_cseq = c.invite_cseq;
        if let Some((ack, dest)) = build_in_dialog(
            &self.cfg,
            c,
            Method::Ack,
            invite_cseq,
            &branch,
            &extra,
            None,
        ) {
            let ack: Wire = ack.into();
            c.ack = Some((ack.clone(), dest));
            let t = c.transport;
            self.send(t, dest, ack);
        }
    }

    /// The answer of a confirmed call: its media negotiated (the 2xx's SDP, or a reliable
    /// 183's), session timers set, `Answered` reported; a 200 that crossed our CANCEL, or
    /// an answer we cannot use, ends the call with a BYE.
    fn on_answer(&mut self, now: Instant, h: u64, r: &Response<'_>) {
        let Some(c) = self.calls.get_mut(&h) else {
            return;
        };
        // The answer is in the 2xx; an answer already given in a reliable 183 also counts.
        let answer = if !r.body.is_empty() && is_sdp(r) {
            Some(r.body)
        } else {
            c.early_sdp.as_deref()
        };
        let media = answer
            .ok_or_else(|| "no SDP answer".to_string())
            .and_then(|b| sdp::parse(b).map_err(|e| e.to_string()))
            .and_then(|a| sdp::negotiate(&c.params.offer, &a).map_err(|e| e.to_string()));
        if let Some(reason) = c.cancel {
            // 200 crossed our CANCEL: acknowledge and hang up at once.
            let end = CallEnd::new(
                cancel_outcome(Some(reason)),
                200,
                "answered after CANCEL",
                Hangup::Local,
            );
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
                        c.timers.set(
                            CallTimer::Refresh,
                            now + Duration::from_secs(u64::from(secs) / 2),
                        );
                    } else {
                        c.timers.set(CallTimer::Expire, now + session_guard(secs));
                    }
                }
                self.events.push_back(Event::Answered {
                    call: CallHandle(h),
                    media: m,
                });
                self.schedule_call(h);
            }
            Err(reason) => {
                let end = CallEnd::new(
                    Outcome::Failed,
                    r.status,
                    format!("unusable answer: {reason}"),
                    Hangup::Local,
                );
                self.send_bye(now, h, end);
            }
        }
    }
}

/// The dialog a 2xx sets up: the far end's tag and party, its Contact as the remote target
/// (the request URI without one) and the reversed Record-Route set. None without a To.
fn dialog_of(request_uri: &str, r: &Response<'_>) -> Option<Dialog> {
    let to = r.headers.to().ok()?;
    let remote_tag = to.tag().unwrap_or("").to_string();
    let contact = r.headers.first_contact();
    let route_set = r
        .headers
        .record_routes()
        .unwrap_or_default()
        .iter()
        .rev()
        .map(|n| format!("<{}>", n.uri.raw))
        .collect();
    let (remote_target, target_uri) = match contact {
        Some(c) => (c.uri.raw.to_string(), Some(c.uri)),
        None => (request_uri.to_string(), None),
    };
    Some(Dialog::new(
        remote_tag,
        r.headers.first(HeaderName::To).unwrap_or("").to_string(),
        (remote_target, target_uri),
        route_set,
    ))
}

//! Requests we did not ask for: OPTIONS, in-dialog BYE/re-INVITE/UPDATE/INFO, and the
//! refusals (400, 405, 416, 420, 480, 481, 501). A response is never answered.

use super::*;

impl Endpoint {
    // ----- requests ---------------------------------------------------------------------

    pub(super) fn server_key(r: &Request<'_>) -> Option<String> {
        let via = r.headers.top_via().ok()?;
        let method = match r.method {
            Method::Ack => "INVITE",
            m => m.as_str(),
        };
        match via.branch() {
            Some(b) if b.starts_with(BRANCH_MAGIC) => Some(format!(
                "{b}|{}:{}|{method}",
                via.host,
                via.port.unwrap_or(5060)
            )),
            _ => {
                // RFC 2543 peers (RFC 4475 §3.2.1): match on the request's identity.
                let cseq = r.headers.cseq().ok()?;
                let from_tag = r.headers.from().ok()?.tag().unwrap_or("");
                Some(format!(
                    "2543|{}|{}|{}|{}|{}:{}|{method}",
                    r.headers.call_id().ok()?,
                    cseq.seq,
                    from_tag,
                    r.uri.raw,
                    via.host,
                    via.port.unwrap_or(5060)
                ))
            }
        }
    }

    pub(super) fn on_request(
        &mut self,
        now: Instant,
        from: SocketAddr,
        transport: Transport,
        r: &Request<'_>,
        raw: &[u8],
    ) {
        let Some(key) = Self::server_key(r) else {
            self.reject_malformed(from, transport, &[], "missing Via");
            return;
        };
        if !self.screen(now, from, transport, r) {
            return;
        }
        if r.method == Method::Ack {
            self.on_ack(now, &key, r);
            return;
        }
        if let Some(e) = self
            .server_keys
            .get(&key)
            .and_then(|id| self.servers.get_mut(id))
        {
            // A retransmission: resend our last response, if any.
            if let Some(b) = e.tx.on_retransmission() {
                let (t, d) = (e.transport, e.dest);
                self.send(t, d, b);
            }
            return;
        }
        let invite = r.method == Method::Invite;
        let id = self.new_server(key, invite, from, transport);
        let (status, reason, extra, body) = self.decide(now, r);
        let bytes = self.response(r, status, reason, &extra, body.as_deref());
        let Some(e) = self.servers.get_mut(&id) else {
            return;
        };
        let actions = e.tx.respond(now, status, bytes);
        let next = e.tx.next_timeout();
        for a in actions {
            match a {
                ServerAction::Send(b) => self.send(transport, from, b),
                ServerAction::Terminated => {
                    self.remove_server(id);
                    return;
                }
                ServerAction::NoAck => {}
            }
        }
        if invite && status == 100 {
            self.incoming(now, r, raw, id, from, transport);
        } else if r.method == Method::Cancel && status == 200 {
            self.cancel_incoming(now, r);
        }
        if invite && (200..300).contains(&status) {
            if let Some(&h) = r
                .headers
                .call_id()
                .ok()
                .and_then(|id| self.by_call_id.get(id))
            {
                if let (Some(c), Ok(cseq)) = (self.calls.get_mut(&h), r.headers.cseq()) {
                    c.pending_reinvite = Some((cseq.seq, id));
                }
            }
        }
        self.wakeups.set(Wake::Server(id), next);
    }

    /// Opens the server transaction of a new request.
    fn new_server(
        &mut self,
        key: String,
        invite: bool,
        from: SocketAddr,
        transport: Transport,
    ) -> ServerId {
        let id = ServerId(self.next_tx);
        self.next_tx += 1;
        self.server_keys.insert(key.clone(), id);
        self.servers.insert(
            id,
            ServerEntry {
                tx: ServerTx::new(invite, transport.reliable(), self.cfg.timers),
                key,
                dest: from,
                transport,
                call: None,
            },
        );
        id
    }

    /// Our response to `r`: a fresh To tag (none on a 100), the extra headers, our
    /// Server value and the SDP body if any.
    fn response(
        &mut self,
        r: &Request<'_>,
        status: u16,
        reason: &str,
        extra: &[(String, String)],
        body: Option<&str>,
    ) -> Wire {
        let to_tag = self.token(10);
        // A 100 is hop-by-hop and opens no dialog: no To tag (RFC 3261 §8.2.6.2).
        let tag = (status > 100).then_some(to_tag.as_str());
        let mut w = MessageWriter::response_to(r, status, reason, tag);
        for (n, v) in extra {
            w.push_header(n, v);
        }
        w.push_header("Server", &self.cfg.user_agent);
        match body {
            Some(b) => w.finish_with_body(Some("application/sdp"), b.as_bytes()),
            None => w.finish(),
        }
        .into()
    }

    /// Forgets a server transaction and its wake-up.
    pub(super) fn remove_server(&mut self, id: ServerId) {
        if let Some(e) = self.servers.remove(&id) {
            self.server_keys.remove(&e.key);
        }
        self.wakeups.set(Wake::Server(id), None);
    }

    /// Feeds an ACK (or a timer) result to a server transaction and re-files its wake-up.
    pub(super) fn server_ack(&mut self, now: Instant, id: ServerId) {
        let Some(e) = self.servers.get_mut(&id) else {
            return;
        };
        let acts = e.tx.on_ack(now);
        let next = e.tx.next_timeout();
        if acts.contains(&ServerAction::Terminated) {
            self.remove_server(id);
        } else {
            self.wakeups.set(Wake::Server(id), next);
        }
    }

    pub(super) fn server_timeout(&mut self, now: Instant, id: ServerId) {
        let Some(e) = self.servers.get_mut(&id) else {
            return;
        };
        let actions = e.tx.on_timeout(now);
        let (dest, transport, call) = (e.dest, e.transport, e.call);
        let next = e.tx.next_timeout();
        for a in actions {
            match a {
                ServerAction::Send(b) => self.send(transport, dest, b),
                ServerAction::NoAck => {
                    if let Some(h) = call {
                        self.incoming_not_acked(now, h);
                    }
                }
                ServerAction::Terminated => {
                    self.remove_server(id);
                    return;
                }
            }
        }
        self.wakeups.set(Wake::Server(id), next);
    }

    pub(super) fn on_ack(&mut self, now: Instant, key: &str, r: &Request<'_>) {
        if let Some(&id) = self.server_keys.get(key) {
            self.server_ack(now, id);
            return;
        }
        // The ACK of a 2xx to a re-INVITE has its own branch: match it by dialog and CSeq.
        let Some(&h) = r
            .headers
            .call_id()
            .ok()
            .and_then(|id| self.by_call_id.get(id))
        else {
            return client::dropped("no_transaction");
        };
        let Some(c) = self.calls.get_mut(&h) else {
            return client::dropped("no_transaction");
        };
        if c.state == CallState::Accepted && r.headers.cseq().is_ok_and(|s| s.seq == c.invite_cseq)
        {
            return self.incoming_acked(now, h);
        }
        match (c.pending_reinvite, r.headers.cseq()) {
            (Some((seq, id)), Ok(cseq)) if seq == cseq.seq => {
                c.pending_reinvite = None;
                self.server_ack(now, id);
            }
            _ => client::dropped("no_transaction"),
        }
    }

    /// Chooses the response to a new request: status, reason, extra headers, SDP body.
    pub(super) fn decide(
        &mut self,
        now: Instant,
        r: &Request<'_>,
    ) -> (u16, &'static str, Vec<(String, String)>, Option<String>) {
        if let Some((status, reason, extra)) = refusal(r) {
            return (status, reason, extra, None);
        }
        let h = &r.headers;
        let mut extra = Vec::new();
        let to_tag = h.to().ok().and_then(|t| t.tag().map(str::to_string));
        let call = self.dialog_call(r, to_tag.as_deref());
        match (r.method, call) {
            (Method::Options, _) => {
                extra.push(("Allow".into(), ALLOW.into()));
                extra.push(("Accept".into(), "application/sdp".into()));
                extra.push(("Supported".into(), "timer".into()));
                (200, "OK", extra, None)
            }
            (Method::Bye, Some(hd)) => {
                self.remote_bye(hd);
                (200, "OK", extra, None)
            }
            (Method::Cancel, None) if self.cancel_target(r).is_some() => (200, "OK", extra, None),
            (Method::Bye | Method::Cancel, None) => {
                (481, "Call/Transaction Does Not Exist", extra, None)
            }
            (Method::Cancel, Some(_)) => (200, "OK", extra, None),
            (Method::Invite, None) => self.screen_invite(r, to_tag.is_some(), extra),
            (Method::Invite | Method::Update, Some(hd)) => self.answer_refresh(now, hd, r, extra),
            (Method::Info, Some(hd)) => {
                self.events.push_back(Event::Info {
                    call: CallHandle(hd),
                    content_type: h.content_type().unwrap_or("").to_string(),
                    body: r.body.to_vec(),
                });
                (200, "OK", extra, None)
            }
            (_, None) => (481, "Call/Transaction Does Not Exist", extra, None),
            _ => (501, "Not Implemented", extra, None),
        }
    }

    /// The call whose dialog a request is in: its Call-ID, our tag in To and the far
    /// end's tag in From must all match.
    fn dialog_call(&self, r: &Request<'_>, to_tag: Option<&str>) -> Option<u64> {
        let h = &r.headers;
        h.call_id()
            .ok()
            .and_then(|id| self.by_call_id.get(id).copied())
            .filter(|hd| {
                let c = &self.calls[hd];
                to_tag == Some(c.local_tag.as_str())
                    && c.dialog
                        .as_ref()
                        .is_some_and(|d| h.from().ok().and_then(|f| f.tag()) == Some(&d.remote_tag))
            })
    }

    /// The far end hung up: the call ends answered, or, when our own BYE crossed its,
    /// with the end our BYE was for.
    fn remote_bye(&mut self, hd: u64) {
        let Some(c) = self.calls.get(&hd) else {
            return;
        };
        if c.state != CallState::Terminating {
            self.end_call(
                hd,
                CallEnd::new(Outcome::Answered, 200, "OK", Hangup::Remote),
            );
        } else if let Some(end) = self.calls.get_mut(&hd).and_then(|c| c.end_after_bye.take()) {
            // BYEs crossed: both sides are done.
            self.end_call(hd, end);
        }
    }

    /// Answers a far-end re-INVITE or UPDATE: a session refresh, possibly with a new offer.
    pub(super) fn answer_refresh(
        &mut self,
        now: Instant,
        hd: u64,
        r: &Request<'_>,
        mut extra: Vec<(String, String)>,
    ) -> (u16, &'static str, Vec<(String, String)>, Option<String>) {
        let Some(c) = self.calls.get_mut(&hd) else {
            return (481, "Call/Transaction Does Not Exist", extra, None);
        };
        if c.state != CallState::Confirmed {
            return (491, "Request Pending", extra, None);
        }
        if let Some(se) = r.headers.session_expires() {
            let secs = se.secs.max(r.headers.min_se().unwrap_or(0)).max(90);
            // The far end sent the refresh, so it is the refresher unless it says otherwise.
            let we_refresh = se.refresher_is_uac == Some(false);
            extra.push((
                "Session-Expires".into(),
                format!(
                    "{secs};refresher={}",
                    if we_refresh { "uas" } else { "uac" }
                ),
            ));
            extra.push(("Require".into(), "timer".into()));
            c.session_interval = Some(secs);
            if we_refresh {
                c.timers.set(
                    CallTimer::Refresh,
                    now + Duration::from_secs(u64::from(secs) / 2),
                );
                c.timers.stop(CallTimer::Expire);
            } else {
                c.timers.set(CallTimer::Expire, now + session_guard(secs));
                c.timers.stop(CallTimer::Refresh);
            }
        } else if c.timers.get(CallTimer::Expire).is_some() {
            if let Some(secs) = c.session_interval {
                c.timers.set(CallTimer::Expire, now + session_guard(secs));
            }
        }
        extra.push((
            "Contact".into(),
            format!("<sip:dialer@{}>", sip_host_port(self.cfg.local_addr)),
        ));
        extra.push(("Allow".into(), ALLOW.into()));
        let has_offer = !r.body.is_empty();
        let body = if r.method == Method::Invite || has_offer {
            // Answer (or re-offer) what is already in use.
            let mut offer = c.params.offer.clone();
            if has_offer {
                if let Some(m) = &c.media {
                    offer.codecs.retain(|k| k.payload_type == m.payload_type);
                }
                if c.answer_version == c.params.offer.version {
                    c.answer_version += 1;
                }
            }
            offer.version = c.answer_version;
            Some(sdp::build_offer(&offer))
        } else {
            None
        };
        self.schedule_call(hd);
        (200, "OK", extra, body)
    }

    /// Answers 400 to a request we could not parse, when enough of it is readable to
    /// address a response; responses and ACKs are never answered.
    pub(super) fn reject_malformed(
        &mut self,
        from: SocketAddr,
        transport: Transport,
        bytes: &[u8],
        why: &str,
    ) {
        let Some(bytes) = lenient_400(bytes, why) else {
            return;
        };
        self.send(transport, from, bytes.into());
    }
}

/// A status, its reason and extra headers (`Allow`, `Unsupported`).
type Refusal = (u16, &'static str, Vec<(String, String)>);

/// A refusal every new request gets whatever its dialog (RFC 3261 §8.2): a missing or
/// repeated required header, a bad Content-Length, a URI scheme we do not serve, a method
/// we do not know or allow, an extension we do not support. None: the request may go on.
fn refusal(r: &Request<'_>) -> Option<Refusal> {
    let h = &r.headers;
    let mut extra = Vec::new();
    if h.from().is_err() || h.to().is_err() || h.call_id().is_err() || h.cseq().is_err() {
        return Some((
            400,
            "Bad Request (missing or repeated required header)",
            extra,
        ));
    }
    if h.content_length().is_err() {
        return Some((400, "Bad Request (Content-Length)", extra));
    }
    if !matches!(r.uri.scheme, Scheme::Sip | Scheme::Sips | Scheme::Tel) {
        return Some((416, "Unsupported URI Scheme", extra));
    }
    let known = matches!(
        r.method,
        Method::Invite
            | Method::Bye
            | Method::Cancel
            | Method::Options
            | Method::Update
            | Method::Info
    );
    if !known {
        extra.push(("Allow".into(), ALLOW.into()));
        return Some(match r.method {
            Method::Other(_) => (501, "Not Implemented", extra),
            _ => (405, "Method Not Allowed", extra),
        });
    }
    let unsupported: Vec<&str> = h
        .require()
        .filter(|t| !t.eq_ignore_ascii_case("timer"))
        .collect();
    if !unsupported.is_empty() && r.method != Method::Cancel {
        extra.push(("Unsupported".into(), unsupported.join(", ")));
        return Some((420, "Bad Extension", extra));
    }
    None
}

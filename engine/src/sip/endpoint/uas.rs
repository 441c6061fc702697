//! Calls that come to us, as a UAS (RFC 3261 §13.3, §15; RFC 3264 as answerer; RFC 4028).
//!
//! A dialog-opening INVITE from an allowed source is answered `100 Trying` at once and
//! handed to the application as [`Event::Incoming`]; the application rings, accepts (our
//! 2xx with the SDP answer, retransmitted until the ACK, `Answered` on the ACK, a BYE when
//! Timer H passes without one) or rejects with any status. A CANCEL before the answer gets
//! 200, the INVITE 487, the application `Ended` (canceled). Once confirmed the call is like
//! one of ours: BYE either way, INFO, re-INVITE and UPDATE refreshes, session timers.

use super::*;
use crate::sip::sdp::{AnswerParams, SessionDescription};

/// What an incoming call keeps of its INVITE until the dialog is confirmed.
#[derive(Debug)]
pub(super) struct Inbound {
    /// The INVITE's server transaction: every response to it goes through it.
    server: ServerId,
    /// The INVITE as received, to build responses from (RFC 3261 §8.2.6.2 copies).
    invite: Vec<u8>,
    /// The parsed offer, answered on accept.
    offer: Option<SessionDescription<'static>>,
    /// The application hung up between our 2xx and its ACK: BYE once the ACK arrives.
    pub(super) hangup_after_ack: bool,
}

/// The session timer our 2xx grants (RFC 4028).
#[derive(Debug, Clone, Copy)]
struct SessionTimer {
    /// Session interval, seconds.
    secs: u32,
    /// We send the refreshes (`refresher=uas`).
    we_refresh: bool,
    /// The caller supports timers: our 2xx says `Require: timer`.
    require: bool,
}

impl Endpoint {
    /// Whether a dialog-opening INVITE is offered to the application: `(100, ..)` when it
    /// is, else the refusal. An INVITE with a To tag names a dialog we do not have (481);
    /// a Call-ID we already hold is a loop or a spiral back to us (482).
    pub(super) fn screen_invite(
        &self,
        r: &Request<'_>,
        has_to_tag: bool,
        extra: Vec<(String, String)>,
    ) -> (u16, &'static str, Vec<(String, String)>, Option<String>) {
        if has_to_tag {
            return (481, "Call/Transaction Does Not Exist", extra, None);
        }
        if !self.cfg.inbound_calls {
            return (480, "Temporarily Unavailable", extra, None);
        }
        if r.headers
            .call_id()
            .is_ok_and(|id| self.by_call_id.contains_key(id))
        {
            return (482, "Loop Detected", extra, None);
        }
        (100, "Trying", extra, None)
    }

    /// Opens an incoming call for an INVITE just answered 100 and tells the application.
    pub(super) fn incoming(
        &mut self,
        now: Instant,
        r: &Request<'_>,
        bytes: &[u8],
        server: ServerId,
        source: SocketAddr,
        transport: Transport,
    ) {
        let h = &r.headers;
        let (Ok(from), Ok(to), Ok(call_id), Ok(cseq)) = (h.from(), h.to(), h.call_id(), h.cseq())
        else {
            return; // decide() answered 400 to these already
        };
        let offer = (!r.body.is_empty())
            .then(|| sdp::parse(r.body).ok().map(SessionDescription::into_owned))
            .flatten();
        let invite = incoming_call(r, &from, &to, source, transport, offer.clone());
        let dialog = uas_dialog(r, &from);
        let remote_target = dialog.remote_target.clone();
        let local_tag = self.token(10);
        let to_value = h.first(HeaderName::To).unwrap_or("");
        let to_value = to_value.trim_end_matches(|c: char| c == ';' || c.is_ascii_whitespace());
        let local_party = format!("{to_value};tag={local_tag}");
        let params = CallParams {
            proxy: source,
            request_uri: remote_target,
            to_uri: invite.from_uri.clone(),
            from_uri: invite.to_uri.clone(),
            from_display: None,
            offer: sdp::OfferParams::g711(0, self.cfg.local_addr.ip(), 0),
            ring_timeout: self.cfg.inbound_answer_timeout,
            credentials: None,
            transport: Some(transport),
            extra_headers: Vec::new(),
            trunk: None,
        };
        let our_cseq = self.rng.random_range(1..10_000);
        let mut call = Call::new(
            params,
            transport,
            call_id.to_string(),
            local_tag,
            local_party,
            our_cseq,
        );
        call.invite_cseq = cseq.seq;
        call.state = CallState::Incoming;
        call.dialog = Some(dialog);
        call.timers
            .set(CallTimer::Ring, now + self.cfg.inbound_answer_timeout);
        call.inbound = Some(Box::new(Inbound {
            server,
            invite: bytes.to_vec(),
            offer,
            hangup_after_ack: false,
        }));
        let handle = self.next_handle;
        self.next_handle += 1;
        self.calls.insert(handle, call);
        self.by_call_id.insert(call_id.to_string(), handle);
        if let Some(e) = self.servers.get_mut(&server) {
            e.call = Some(handle);
        }
        self.schedule_call(handle);
        metrics::counter!(crate::metrics::SIP_INBOUND, "result" => "offered").increment(1);
        self.events.push_back(Event::Incoming {
            call: CallHandle(handle),
            invite: Box::new(invite),
        });
    }

    /// Sends `180 Ringing` for an incoming call not answered yet (again if asked again).
    pub fn ring(&mut self, now: Instant, call: CallHandle) {
        if self
            .calls
            .get(&call.0)
            .is_some_and(|c| c.state == CallState::Incoming)
        {
            self.respond_incoming(now, call.0, 180, "Ringing", &[], None);
        }
    }

    /// Answers an incoming call: `200 OK` with our SDP answer (the codec is our most
    /// preferred one that the offer holds; telephone-event echoed under the offer's
    /// number), retransmitted until the ACK; [`Event::Answered`] comes with the ACK, or a
    /// BYE goes out when Timer H (64·T1) passes without one.
    ///
    /// Returns what the answer settled, so media can be readied before the ACK. When the
    /// offer cannot be answered (or there is none) the call is refused with 488 and
    /// `Ended` follows.
    pub fn accept(
        &mut self,
        now: Instant,
        call: CallHandle,
        answer: &AnswerParams,
    ) -> Result<NegotiatedMedia, AnswerError> {
        let c = self.calls.get(&call.0).ok_or(AnswerError::UnknownCall)?;
        if c.state != CallState::Incoming {
            return Err(AnswerError::AlreadyAnswered);
        }
        let settled = match c.inbound.as_ref().and_then(|i| i.offer.as_ref()) {
            None => Err(AnswerError::NoOffer),
            Some(offer) => sdp::answer(offer, answer).map_err(AnswerError::Unacceptable),
        };
        let settled = match settled {
            Ok(s) => s,
            Err(e) => {
                self.reject(now, call, 488, "Not Acceptable Here");
                return Err(e);
            }
        };
        let timer = self.session_timer_answer(call.0);
        let Some(c) = self.calls.get_mut(&call.0) else {
            return Err(AnswerError::UnknownCall);
        };
        c.state = CallState::Accepted;
        c.timers.stop(CallTimer::Ring);
        c.media = Some(settled.media.clone());
        // What a re-INVITE from the caller is answered with: the codec in use.
        c.params.offer = sdp::OfferParams {
            session_id: answer.session_id,
            version: answer.session_id,
            addr: answer.addr,
            rtp_port: answer.rtp_port,
            codecs: vec![settled.codec.clone()],
            ptime_ms: settled.media.ptime_ms,
            telephone_event_pt: settled.media.telephone_event_pt,
            srtp: None,
            inactive: false,
        };
        c.answer_version = answer.session_id;
        let mut extra: Vec<(&str, String)> = Vec::new();
        if let Some(t) = timer {
            let secs = t.secs;
            let who = if t.we_refresh { "uas" } else { "uac" };
            extra.push(("Session-Expires", format!("{secs};refresher={who}")));
            if t.require {
                extra.push(("Require", "timer".to_string()));
            }
            c.session_interval = Some(secs);
            if t.we_refresh {
                c.timers.set(
                    CallTimer::Refresh,
                    now + Duration::from_secs(u64::from(secs) / 2),
                );
            } else {
                c.timers.set(CallTimer::Expire, now + session_guard(secs));
            }
        }
        self.schedule_call(call.0);
        self.respond_incoming(
            now,
            call.0,
            200,
            "OK",
            &extra,
            Some(settled.body.as_bytes()),
        );
        metrics::counter!(crate::metrics::SIP_INBOUND, "result" => "accepted").increment(1);
        Ok(settled.media)
    }

    /// Refuses an incoming call not answered yet with `status` (300–699; anything else is
    /// sent as 480) and `reason`; `Ended` follows. The final response is retransmitted
    /// until the caller's ACK by its transaction, which outlives the call.
    pub fn reject(&mut self, now: Instant, call: CallHandle, status: u16, reason: &str) {
        if !self
            .calls
            .get(&call.0)
            .is_some_and(|c| c.state == CallState::Incoming)
        {
            return;
        }
        let (status, reason) = if (300..700).contains(&status) {
            (status, reason)
        } else {
            (480, "Temporarily Unavailable")
        };
        let reason: String = reason
            .chars()
            .filter(|c| !c.is_control())
            .take(100)
            .collect();
        self.respond_incoming(now, call.0, status, &reason, &[], None);
        metrics::counter!(crate::metrics::SIP_INBOUND, "result" => "rejected").increment(1);
        self.end_call(
            call.0,
            CallEnd {
                outcome: Outcome::from_status(status),
                status,
                reason,
                hangup: Hangup::Local,
                retry_after: None,
            },
        );
    }

    /// The session timer of our 2xx (RFC 4028 §9): the caller's request, or our default
    /// interval when it supports timers and asked for none.
    fn session_timer_answer(&self, h: u64) -> Option<SessionTimer> {
        let inv = self.incoming_invite(h)?;
        let Ok(Message::Request(r)) = crate::sip::message::parse(&inv) else {
            return None;
        };
        let supported = r
            .headers
            .supported()
            .chain(r.headers.require())
            .any(|t| t.eq_ignore_ascii_case("timer"));
        let (secs, we_refresh) = match r.headers.session_expires() {
            Some(se) => {
                let secs = se.secs.max(r.headers.min_se().unwrap_or(0)).max(90);
                // A caller that cannot refresh (no `timer` support) leaves it to us.
                (secs, se.refresher_is_uac == Some(false) || !supported)
            }
            None if supported => (self.cfg.session_expires, false),
            None => return None,
        };
        Some(SessionTimer {
            secs,
            we_refresh,
            require: supported,
        })
    }

    fn incoming_invite(&self, h: u64) -> Option<Vec<u8>> {
        self.calls
            .get(&h)
            .and_then(|c| c.inbound.as_ref())
            .map(|i| i.invite.clone())
    }

    /// Sends a response to an incoming call's INVITE through its server transaction: the
    /// copied headers with our To tag, Record-Route echoed and our Contact on 18x/2xx.
    fn respond_incoming(
        &mut self,
        now: Instant,
        h: u64,
        status: u16,
        reason: &str,
        extra: &[(&str, String)],
        sdp_body: Option<&[u8]>,
    ) {
        let Some(c) = self.calls.get(&h) else {
            return;
        };
        let Some(inb) = c.inbound.as_ref() else {
            return;
        };
        let server = inb.server;
        let Ok(Message::Request(r)) = crate::sip::message::parse(&inb.invite) else {
            return;
        };
        let mut w = MessageWriter::response_to(&r, status, reason, Some(&c.local_tag));
        if status < 300 {
            // RFC 3261 §12.1.1: the dialog's route set, for the caller too.
            for rr in r.headers.values(HeaderName::RecordRoute) {
                w.push_header("Record-Route", rr);
            }
            w.push_header("Contact", contact_value(&self.cfg, c.transport));
        }
        if (200..300).contains(&status) {
            w.push_header("Allow", ALLOW);
            w.push_header("Supported", "timer");
        }
        for (n, v) in extra {
            w.push_header(n, v);
        }
        w.push_header("Server", &self.cfg.user_agent);
        let bytes: Wire = match sdp_body {
            Some(b) => w.finish_with_body(Some("application/sdp"), b),
            None => w.finish(),
        }
        .into();
        self.respond_server(now, server, status, bytes);
    }

    /// Hands a response to a server transaction and carries out what it says.
    fn respond_server(&mut self, now: Instant, id: ServerId, status: u16, bytes: Wire) {
        let Some(e) = self.servers.get_mut(&id) else {
            return;
        };
        let actions = e.tx.respond(now, status, bytes);
        let (dest, transport) = (e.dest, e.transport);
        let next = e.tx.next_timeout();
        for a in actions {
            match a {
                ServerAction::Send(b) => self.send(transport, dest, b),
                ServerAction::Terminated => return self.remove_server(id),
                ServerAction::NoAck => {}
            }
        }
        self.wakeups.set(Wake::Server(id), next);
    }

    /// The INVITE server transaction a CANCEL is for (same branch and sent-by, RFC 3261
    /// §9.2), and the incoming call it opened.
    pub(super) fn cancel_target(&self, r: &Request<'_>) -> Option<(ServerId, Option<u64>)> {
        let key = Self::server_key(r)?;
        let invite_key = format!("{}|INVITE", key.strip_suffix("|CANCEL")?);
        let id = *self.server_keys.get(&invite_key)?;
        Some((id, self.servers.get(&id).and_then(|e| e.call)))
    }

    /// After the CANCEL's 200: an incoming call still unanswered gets 487 on its INVITE
    /// and ends as canceled.
    pub(super) fn cancel_incoming(&mut self, now: Instant, r: &Request<'_>) {
        let Some((_, Some(h))) = self.cancel_target(r) else {
            return;
        };
        if !self
            .calls
            .get(&h)
            .is_some_and(|c| c.state == CallState::Incoming)
        {
            return;
        }
        self.respond_incoming(now, h, 487, "Request Terminated", &[], None);
        metrics::counter!(crate::metrics::SIP_INBOUND, "result" => "canceled").increment(1);
        self.end_call(
            h,
            CallEnd::new(Outcome::Canceled, 487, "caller canceled", Hangup::Remote),
        );
    }

    /// The ACK of our 2xx: the dialog is confirmed, media may flow.
    pub(super) fn incoming_acked(&mut self, now: Instant, h: u64) {
        let Some(c) = self.calls.get_mut(&h) else {
            return;
        };
        c.state = CallState::Confirmed;
        let hangup = c.inbound.as_ref().is_some_and(|i| i.hangup_after_ack);
        let server = c.inbound.as_ref().map(|i| i.server);
        let media = c.media.clone();
        // The INVITE is no longer needed; the Inbound record keeps only the flags.
        if let Some(i) = c.inbound.as_mut() {
            i.invite = Vec::new();
            i.offer = None;
        }
        if let Some(id) = server {
            self.server_ack(now, id);
        }
        if hangup {
            let end = CallEnd::new(Outcome::Answered, 200, "OK", Hangup::Local);
            return self.send_bye(now, h, end);
        }
        if let Some(media) = media {
            self.events.push_back(Event::Answered {
                call: CallHandle(h),
                media,
            });
        }
    }

    /// Timer H passed with our 2xx unacknowledged: the session is ended with a BYE
    /// (RFC 3261 §13.3.1.4).
    pub(super) fn incoming_not_acked(&mut self, now: Instant, h: u64) {
        let Some(c) = self.calls.get_mut(&h) else {
            return;
        };
        if c.state != CallState::Accepted {
            return;
        }
        c.state = CallState::Confirmed;
        metrics::counter!(crate::metrics::SIP_INBOUND, "result" => "no_ack").increment(1);
        let end = CallEnd::new(Outcome::Failed, 200, "no ACK for our 200 OK", Hangup::Local);
        self.send_bye(now, h, end);
    }
}

/// What the application is told about an INVITE: who calls whom, from where, with what.
fn incoming_call(
    r: &Request<'_>,
    from: &NameAddr<'_>,
    to: &NameAddr<'_>,
    source: SocketAddr,
    transport: Transport,
    offer: Option<SessionDescription<'static>>,
) -> IncomingCall {
    IncomingCall {
        source,
        transport,
        request_uri: r.uri.raw.to_string(),
        to_uri: to.uri.raw.to_string(),
        from_uri: from.uri.raw.to_string(),
        from_display: from.display.map(str::to_string),
        asserted_identity: r
            .headers
            .p_asserted_identity()
            .ok()
            .and_then(|v| v.first().map(|n| n.uri.raw.to_string())),
        privacy: r
            .headers
            .first(HeaderName::Other("Privacy"))
            .map(str::to_string),
        offer,
    }
}

/// The dialog an incoming INVITE opens, seen from us (RFC 3261 §12.1.1): the caller's tag
/// and From, its Contact as remote target, and the Record-Route set in the order received.
fn uas_dialog(r: &Request<'_>, from: &NameAddr<'_>) -> Dialog {
    let h = &r.headers;
    let target = h.first_contact().map_or(from.uri, |c| c.uri);
    Dialog::new(
        from.tag().unwrap_or("").to_string(),
        h.first(HeaderName::From).unwrap_or("").to_string(),
        (target.raw.to_string(), Some(target)),
        h.record_routes()
            .unwrap_or_default()
            .iter()
            .map(|n| format!("<{}>", n.uri.raw))
            .collect(),
    )
}

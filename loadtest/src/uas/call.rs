//! How an INVITE becomes a call: its disposition, its provisional and final responses,
//! and what its server transaction asks for.

use super::*;

impl Uas {
    pub(super) fn new_call(
        &mut self,
        now: Instant,
        from: SocketAddr,
        req: &Request<'_>,
        raw: &[u8],
        call_id: String,
    ) {
        let serial = self.next_serial;
        self.next_serial += 1;
        let r = self.rand();
        let disposition = self.cfg.mix.pick(r);
        let to_tag = self.rand();
        // Choose G.711 from the offer; remember where the caller's RTP comes from.
        let (mut payload_type, mut rtp_from, mut ok) = (0u8, None, false);
        if let Ok(offer) = sdp::parse(req.body) {
            if let Some(m) = offer
                .media
                .iter()
                .find(|m| m.media == "audio" && m.port != 0)
            {
                if let Some(pt) = m.payload_types().find(|pt| *pt == 0 || *pt == 8) {
                    payload_type = pt;
                    ok = true;
                }
                if let Some(ip) = offer.connection_for(m).and_then(|c| c.ip) {
                    rtp_from = Some(SocketAddr::new(ip, m.port));
                }
            }
        }
        let disposition = if ok || disposition != Disposition::Answer {
            disposition
        } else {
            Disposition::Reject(488)
        };
        let mut tx = ServerTx::new(true, false, self.cfg.timers);
        let trying = MessageWriter::response_to(req, 100, "Trying", None).finish();
        let mut actions = tx.respond(now, 100, trying.into());
        let ring = self.uniform(self.cfg.ring);
        let call = Call {
            call_id: call_id.clone(),
            invite: raw.to_vec(),
            peer: from,
            tx,
            disposition,
            to_tag,
            phase: Phase::Ringing,
            final_at: (disposition != Disposition::NoAnswer).then_some(now + ring),
            hangup_at: None,
            bye: None,
            payload_type,
            rtp_from,
            answer: None,
            forget_at: None,
            steps: VecDeque::new(),
            cseq: 1,
        };
        self.calls.insert(serial, call);
        self.by_id.insert(call_id.clone(), serial);
        self.events.push_back(UasEvent::Offered {
            call: serial,
            call_id,
            disposition,
        });
        let ringing = self.final_response(serial, 180, "Ringing");
        let call = self.calls.get_mut(&serial).expect("inserted");
        actions.extend(call.tx.respond(now, 180, ringing));
        self.apply(now, serial, actions);
        if ring.is_zero() {
            self.handle_call_timers(now, serial);
        }
        self.schedule(serial);
    }

    /// A response to the call's INVITE with our To tag (and Contact, and SDP for a 2xx).
    pub(super) fn final_response(&mut self, serial: u64, status: u16, reason: &str) -> Wire {
        let local = self.cfg.local;
        let media = self.cfg.media;
        let call = self.calls.get_mut(&serial).expect("call");
        let Ok(Message::Request(req)) = parse(&call.invite) else {
            return Arc::from(&b""[..]);
        };
        let tag = format!("{:x}", call.to_tag);
        let mut w = MessageWriter::response_to(&req, status, reason, Some(&tag));
        if status < 300 {
            w.push_header("Contact", format_args!("<sip:carrier@{local}>"));
        }
        if (200..300).contains(&status) {
            let pt = call.payload_type;
            let name = if pt == 8 { "PCMA" } else { "PCMU" };
            let ip = media.ip();
            let fam = if ip.is_ipv4() { "IP4" } else { "IP6" };
            let body = format!(
                "v=0\r\no=carrier {0} 1 IN {fam} {ip}\r\ns=-\r\nc=IN {fam} {ip}\r\nt=0 0\r\n\
                 m=audio {1} RTP/AVP {pt} 101\r\na=rtpmap:{pt} {name}/8000\r\n\
                 a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\n\
                 a=sendrecv\r\n",
                serial,
                media.port()
            );
            w.finish_with_body(Some("application/sdp"), body.as_bytes())
                .into()
        } else {
            w.finish().into()
        }
    }

    pub(super) fn apply(&mut self, _now: Instant, serial: u64, actions: ServerActions) {
        let Some(call) = self.calls.get_mut(&serial) else {
            return;
        };
        let peer = call.peer;
        let mut no_ack = false;
        for a in actions {
            match a {
                ServerAction::Send(bytes) => {
                    self.transmits.push_back(Transmit { dest: peer, bytes })
                }
                ServerAction::NoAck => no_ack = true,
                ServerAction::Terminated => {}
            }
        }
        if no_ack {
            let call = self.calls.get_mut(&serial).expect("call");
            if call.phase == Phase::Answered {
                call.phase = Phase::Ended;
                self.events.push_back(UasEvent::Ended {
                    call: serial,
                    by: EndedBy::NoAck,
                });
            }
        }
    }
}

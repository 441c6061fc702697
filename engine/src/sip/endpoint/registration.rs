//! OPTIONS pings (trunk health) and registrations (RFC 3261 §10).

use super::*;

impl Endpoint {
    // ----- OPTIONS pings and registrations ----------------------------------------------

    /// Sends an OPTIONS ping to `dest` (a trunk's health check); the answer comes back as
    /// [`Event::OptionsReply`], a timeout (Timer F) as status 408.
    pub fn send_options(&mut self, now: Instant, dest: SocketAddr, uri: &str) -> RequestHandle {
        let h = self.next_handle;
        self.next_handle += 1;
        let (key, branch) = self.keyed_branch();
        let tag = self.token(10);
        let call_id = format!("{}@{}", self.token(20), self.cfg.local_addr.ip());
        let transport = self.cfg.transport;
        let bytes = MessageWriter::request(Method::Options.as_str(), uri)
            .header("Via", via_value(&self.cfg, transport, &branch))
            .header("Max-Forwards", 70)
            .header(
                "From",
                format!(
                    "<sip:dialer@{}>;tag={tag}",
                    sip_host_port(self.cfg.local_addr)
                ),
            )
            .header("To", format!("<{uri}>"))
            .header("Call-ID", call_id)
            .header("CSeq", "1 OPTIONS")
            .header("Accept", "application/sdp")
            .header("User-Agent", &self.cfg.user_agent)
            .finish();
        self.pings.insert(h, Ping { sent_at: now });
        self.start_client(
            now,
            key,
            Method::Options,
            bytes.into(),
            dest,
            transport,
            Some(h),
        );
        RequestHandle(h)
    }

    /// Starts registering (RFC 3261 §10): REGISTER now, refreshed before the granted expiry,
    /// retried with exponential backoff after a failure, answering digest challenges.
    pub fn register(&mut self, now: Instant, params: RegisterParams) -> RequestHandle {
        let h = self.next_handle;
        self.next_handle += 1;
        let reg = Registration {
            call_id: format!("{}@{}", self.token(20), self.cfg.local_addr.ip()),
            local_tag: self.token(10),
            cseq: 0,
            auth: DigestClient::default(),
            auth_header: None,
            auth_tries: 0,
            failures: 0,
            timers: RegTimers::default(),
            unregistering: false,
            in_flight: false,
            params,
        };
        self.regs.insert(h, reg);
        self.send_register(now, h);
        RequestHandle(h)
    }

    /// Removes a registration's binding (REGISTER with expires 0).
    pub fn unregister(&mut self, now: Instant, reg: RequestHandle) {
        if let Some(r) = self.regs.get_mut(&reg.0) {
            r.unregistering = true;
            r.timers.clear();
            r.auth_tries = 0;
            self.wakeups.set(Wake::Registration(reg), None);
            self.send_register(now, reg.0);
        }
    }

    pub(super) fn send_register(&mut self, now: Instant, h: u64) {
        let (key, branch) = self.keyed_branch();
        let cfg = self.cfg.clone();
        let Some(r) = self.regs.get_mut(&h) else {
            return;
        };
        r.cseq += 1;
        r.in_flight = true;
        let transport = r.params.transport.unwrap_or(cfg.transport);
        let expires = if r.unregistering { 0 } else { r.params.expires };
        let mut w = MessageWriter::request(Method::Register.as_str(), &r.params.registrar_uri)
            .header("Via", via_value(&cfg, transport, &branch))
            .header("Max-Forwards", 70)
            .header("From", format!("<{}>;tag={}", r.params.aor, r.local_tag))
            .header("To", format!("<{}>", r.params.aor))
            .header("Call-ID", &r.call_id)
            .header("CSeq", crate::sip::builder::SeqMethod(r.cseq, "REGISTER"))
            .header("Contact", contact_value(&cfg, transport))
            .header("Expires", expires)
            .header("User-Agent", &cfg.user_agent);
        if let Some((n, v)) = &r.auth_header {
            w.push_header(n, v);
        }
        let dest = r.params.registrar;
        self.start_client(
            now,
            key,
            Method::Register,
            w.finish().into(),
            dest,
            transport,
            Some(h),
        );
    }

    pub(super) fn registration_timeout(&mut self, now: Instant, h: u64) {
        let Some(r) = self.regs.get_mut(&h) else {
            return;
        };
        let due = r.timers.pop_expired(now).is_some();
        while r.timers.pop_expired(now).is_some() {}
        if due && !r.in_flight {
            r.auth_tries = 0;
            self.send_register(now, h);
        }
        self.schedule_registration(h);
    }

    /// A final response (or timeout) for an OPTIONS ping or a REGISTER.
    pub(super) fn on_aux_final(
        &mut self,
        now: Instant,
        h: u64,
        status: u16,
        r: Option<&Response<'_>>,
    ) {
        if let Some(p) = self.pings.remove(&h) {
            self.events.push_back(Event::OptionsReply {
                ping: RequestHandle(h),
                status,
                rtt: now - p.sent_at,
            });
            return;
        }
        let cnonce = format!("{:016x}", self.rng.random::<u64>());
        let Some(reg) = self.regs.get_mut(&h) else {
            return;
        };
        reg.in_flight = false;
        if let (Some(resp), 401 | 407) = (r, status) {
            if answer_register_challenge(reg, resp, &cnonce) {
                self.send_register(now, h);
                return;
            }
        }
        reg.auth_tries = 0;
        let state = if (200..300).contains(&status) && !reg.unregistering {
            reg.failures = 0;
            let local_ip = self.cfg.local_addr.ip().to_string();
            let granted = granted_expires(r, &local_ip, reg.params.expires);
            reg.timers.clear();
            reg.timers.set(RegTimer::Refresh, now + refresh_in(granted));
            RegistrationState::Registered { expires: granted }
        } else if reg.unregistering {
            self.regs.remove(&h);
            self.wakeups.set(Wake::Registration(RequestHandle(h)), None);
            self.events.push_back(Event::Registration {
                reg: RequestHandle(h),
                state: RegistrationState::Unregistered,
            });
            return;
        } else {
            reg.failures += 1;
            let retry_in = retry_in(reg.failures, r);
            reg.timers.clear();
            reg.timers.set(RegTimer::Retry, now + retry_in);
            RegistrationState::Failed { status, retry_in }
        };
        self.events.push_back(Event::Registration {
            reg: RequestHandle(h),
            state,
        });
        self.schedule_registration(h);
    }

    /// Re-files a registration's earliest deadline.
    fn schedule_registration(&mut self, h: u64) {
        let at = self.regs.get(&h).and_then(|r| r.timers.next());
        self.wakeups.set(Wake::Registration(RequestHandle(h)), at);
    }
}

/// Answers a registrar's digest challenge (at most twice in a row): true when the REGISTER
/// is to be sent again with the new Authorization.
fn answer_register_challenge(reg: &mut Registration, resp: &Response<'_>, cnonce: &str) -> bool {
    let Some(creds) = reg.params.credentials.clone() else {
        return false;
    };
    let uri = reg.params.registrar_uri.clone();
    let Some(auth) = answer_challenge(
        &mut reg.auth,
        reg.auth_tries,
        2,
        resp,
        &creds,
        Method::Register,
        &uri,
        cnonce,
    ) else {
        return false;
    };
    reg.auth_tries += 1;
    reg.auth_header = Some(auth);
    true
}

/// The registrar's grant (at least 1 s): the expires parameter of our Contact (the one at
/// `local_ip`), else the Expires header, else what we asked for.
fn granted_expires(r: Option<&Response<'_>>, local_ip: &str, asked: u32) -> u32 {
    r.and_then(|resp| {
        resp.headers
            .contacts()
            .ok()
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.uri.host.map(|h| h.to_string()).as_deref() == Some(local_ip))
                    .and_then(|c| c.params.get("expires").flatten())
                    .and_then(crate::sip::headers::parse_u32)
            })
            .or_else(|| resp.headers.expires())
    })
    .unwrap_or(asked)
    .max(1)
}

/// When to refresh a registration granted for `granted` seconds: at 80 % of the grant, at
/// least 5 s early on short grants.
fn refresh_in(granted: u32) -> Duration {
    let lead = (u64::from(granted) / 5).max(5.min(u64::from(granted) / 2));
    Duration::from_secs(u64::from(granted) - lead)
}

/// When to try again after the `failures`-th failed REGISTER in a row: exponentially from
/// 30 s to 30 min, or the registrar's Retry-After when larger.
fn retry_in(failures: u32, r: Option<&Response<'_>>) -> Duration {
    let backoff = (30u64 << (failures - 1).min(6)).min(1800);
    let retry_after = r
        .and_then(|x| x.headers.retry_after())
        .map(u64::from)
        .unwrap_or(0);
    Duration::from_secs(backoff.max(retry_after))
}

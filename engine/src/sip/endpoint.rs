//! The sans-IO SIP endpoint: a user agent that places outbound calls and answers the few
//! requests a dialer must answer.
//!
//! Inputs are [`Endpoint::handle_datagram`], [`Endpoint::handle_timeout`] and commands
//! ([`Endpoint::place_call`], [`Endpoint::hangup`]); outputs are drained with
//! [`Endpoint::poll_transmit`], [`Endpoint::poll_event`] and [`Endpoint::poll_timeout`].
//! The endpoint owns every transaction and call; it never reads a clock or touches a socket.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::auth::{self, Credentials, DigestClient};
use super::builder::MessageWriter;
use super::headers::{HeaderName, Method, NameAddr};
use super::message::{parse_framed, Message, Request, Response};
use super::outcome::Outcome;
use super::sdp::{self, NegotiatedMedia, OfferParams};
use super::timer::TimerConfig;
use super::transaction::{ClientAction, ClientTx, ServerAction, ServerTx, Wire};
use super::uri::{Host, Scheme, Uri};

/// A SIP transport. The driver owns the sockets; the core only needs to know which one a
/// message goes over, and whether it is reliable (no retransmissions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP, with retransmissions.
    Udp,
    /// TCP, one connection per peer.
    Tcp,
}

impl Transport {
    /// The Via token.
    pub fn as_str(&self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    fn reliable(&self) -> bool {
        matches!(self, Transport::Tcp)
    }
}

/// Bytes to send, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Transport to use.
    pub transport: Transport,
    /// Destination address.
    pub dest: SocketAddr,
    /// The message.
    pub bytes: Wire,
}

/// Settings of an endpoint.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// The address written in Via and Contact (the driver's bound address).
    pub local_addr: SocketAddr,
    /// Transport for requests unless a call asks otherwise.
    pub transport: Transport,
    /// T1, T2, T4.
    pub timers: TimerConfig,
    /// `User-Agent` and `Server` header value.
    pub user_agent: String,
    /// A UDP request larger than this goes over TCP (RFC 3261 §18.1.1: MTU − 200).
    pub max_udp_request: usize,
    /// Seed for tags, branches and Call-IDs; fixed in tests for reproducible runs.
    pub seed: u64,
    /// Session interval we ask for when the far end supports timers (RFC 4028), seconds.
    pub session_expires: u32,
}

impl EndpointConfig {
    /// Defaults for an endpoint bound to `local_addr`.
    pub fn new(local_addr: SocketAddr) -> Self {
        EndpointConfig {
            local_addr,
            transport: Transport::Udp,
            timers: TimerConfig::default(),
            user_agent: concat!("dialer/", env!("CARGO_PKG_VERSION")).to_string(),
            max_udp_request: 1300,
            seed: rand::random(),
            session_expires: 1800,
        }
    }
}

/// What to call and how.
#[derive(Debug, Clone)]
pub struct CallParams {
    /// Next hop: the trunk's proxy address. Requests whose target host is a name go here.
    pub proxy: SocketAddr,
    /// Request-URI, e.g. `sip:+390771286891@carrier.example.com`.
    pub request_uri: String,
    /// To URI (usually the Request-URI).
    pub to_uri: String,
    /// From URI, e.g. `sip:+390771000000@dialer.example.com`.
    pub from_uri: String,
    /// Optional From display name.
    pub from_display: Option<String>,
    /// Our SDP offer.
    pub offer: OfferParams,
    /// CANCEL after this long without an answer.
    pub ring_timeout: Duration,
    /// Credentials for digest challenges.
    pub credentials: Option<Credentials>,
    /// Transport override.
    pub transport: Option<Transport>,
    /// Extra headers for the INVITE (e.g. P-Asserted-Identity).
    pub extra_headers: Vec<(String, String)>,
}

/// Identifies a call placed on this endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallHandle(pub u64);

/// Who ended an answered call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hangup {
    /// We sent the BYE (or CANCEL).
    Local,
    /// The far end sent the BYE.
    Remote,
    /// The call was never established.
    None,
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallEnd {
    /// The outcome word.
    pub outcome: Outcome,
    /// The final SIP status of the INVITE (0 when none arrived).
    pub status: u16,
    /// Its reason phrase, or why we gave up.
    pub reason: String,
    /// Who hung up.
    pub hangup: Hangup,
}

/// Something the application must know.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A provisional response (180, 183); `early_media` when it carried an SDP answer.
    Progress {
        /// The call.
        call: CallHandle,
        /// Status code.
        status: u16,
        /// Media negotiated from a 183's SDP (early media, not an answer).
        early_media: Option<NegotiatedMedia>,
    },
    /// The call was answered and acknowledged; media may start.
    Answered {
        /// The call.
        call: CallHandle,
        /// What the answer chose.
        media: NegotiatedMedia,
    },
    /// An in-dialog INFO (e.g. DTMF relay), already answered with 200.
    Info {
        /// The call.
        call: CallHandle,
        /// Its Content-Type.
        content_type: String,
        /// Its body.
        body: Vec<u8>,
    },
    /// The answer to an OPTIONS ping: the status, or 408 when it timed out.
    OptionsReply {
        /// The ping.
        ping: RequestHandle,
        /// Final status (408 on timeout).
        status: u16,
        /// Round-trip time to the final response.
        rtt: Duration,
    },
    /// A registration changed state.
    Registration {
        /// The registration.
        reg: RequestHandle,
        /// What happened.
        state: RegistrationState,
    },
    /// The call is over; no further events for it.
    Ended {
        /// The call.
        call: CallHandle,
        /// How it ended.
        end: CallEnd,
    },
}

/// Identifies an OPTIONS ping or a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestHandle(pub u64);

/// The state of a registration, as reported in [`Event::Registration`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationState {
    /// The registrar accepted the binding for this many seconds; a refresh is scheduled
    /// before it expires.
    Registered {
        /// Granted expiry.
        expires: u32,
    },
    /// The REGISTER failed (status, 408 on timeout); a retry is scheduled after `retry_in`.
    Failed {
        /// Final status.
        status: u16,
        /// Backoff before the next attempt.
        retry_in: Duration,
    },
    /// The binding was removed (expires=0 answered, or given up).
    Unregistered,
}

/// What to register and where (a trunk with `register = true`).
#[derive(Debug, Clone)]
pub struct RegisterParams {
    /// Where REGISTER goes.
    pub registrar: SocketAddr,
    /// Request-URI, e.g. `sip:carrier.example.com`.
    pub registrar_uri: String,
    /// Address of record (From and To), e.g. `sip:390771000000@carrier.example.com`.
    pub aor: String,
    /// Digest credentials.
    pub credentials: Option<Credentials>,
    /// Expiry we ask for, seconds.
    pub expires: u32,
    /// Transport override.
    pub transport: Option<Transport>,
}

#[derive(Debug)]
struct Ping {
    sent_at: Instant,
}

#[derive(Debug)]
struct Registration {
    params: RegisterParams,
    call_id: String,
    local_tag: String,
    cseq: u32,
    auth: DigestClient,
    auth_header: Option<(&'static str, String)>,
    auth_tries: u32,
    failures: u32,
    refresh_at: Option<Instant>,
    unregistering: bool,
    in_flight: bool,
}

impl Event {
    /// The call an event belongs to (`None` for pings and registrations).
    pub fn call(&self) -> Option<CallHandle> {
        match self {
            Event::Progress { call, .. }
            | Event::Answered { call, .. }
            | Event::Info { call, .. }
            | Event::Ended { call, .. } => Some(*call),
            Event::OptionsReply { .. } | Event::Registration { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    Inviting,
    Confirmed,
    Terminating,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CancelReason {
    RingTimeout,
    User,
}

#[derive(Debug, Clone)]
struct Dialog {
    remote_tag: String,
    /// The To header value as we send it, with the remote tag.
    remote_party: String,
    remote_target: String,
    route_set: Vec<String>,
}

#[derive(Debug)]
struct Call {
    params: CallParams,
    transport: Transport,
    call_id: String,
    local_tag: String,
    local_party: String,
    cseq: u32,
    invite_cseq: u32,
    invite_branch: String,
    state: CallState,
    provisional_seen: bool,
    cancel: Option<CancelReason>,
    cancel_sent: bool,
    dialog: Option<Dialog>,
    ack: Option<(Wire, SocketAddr)>,
    ring_deadline: Option<Instant>,
    cancel_deadline: Option<Instant>,
    auth: DigestClient,
    auth_header: Option<(&'static str, String)>,
    auth_tries: u32,
    media: Option<NegotiatedMedia>,
    early_sdp: Option<Vec<u8>>,
    /// When we must send a session refresh (we are the refresher).
    refresh_at: Option<Instant>,
    /// When the session expires without a refresh from the far end.
    expire_at: Option<Instant>,
    session_interval: Option<u32>,
    pending_reinvite: Option<(u32, String)>,
    answer_version: u64,
    end_after_bye: Option<CallEnd>,
}

/// Where a timer wake-up belongs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Owner {
    Client(String),
    Cancel(String),
    Server(String),
    Call(u64),
    Registration(u64),
}

struct ClientEntry {
    tx: ClientTx,
    dest: SocketAddr,
    transport: Transport,
    call: Option<u64>,
    method: &'static str,
}

struct ServerEntry {
    tx: ServerTx,
    dest: SocketAddr,
    transport: Transport,
}

/// The SIP user agent core. See the module documentation.
pub struct Endpoint {
    cfg: EndpointConfig,
    rng: SmallRng,
    next_handle: u64,
    calls: HashMap<u64, Call>,
    pings: HashMap<u64, Ping>,
    regs: HashMap<u64, Registration>,
    by_call_id: HashMap<String, u64>,
    clients: HashMap<String, ClientEntry>,
    cancels: HashMap<String, ClientEntry>,
    servers: HashMap<String, ServerEntry>,
    wakeups: BinaryHeap<Reverse<(Instant, Owner)>>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO";
const BRANCH_MAGIC: &str = "z9hG4bK";

impl Endpoint {
    /// A new endpoint.
    pub fn new(cfg: EndpointConfig) -> Self {
        Endpoint {
            rng: SmallRng::seed_from_u64(cfg.seed),
            cfg,
            next_handle: 1,
            calls: HashMap::new(),
            pings: HashMap::new(),
            regs: HashMap::new(),
            by_call_id: HashMap::new(),
            clients: HashMap::new(),
            cancels: HashMap::new(),
            servers: HashMap::new(),
            wakeups: BinaryHeap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EndpointConfig {
        &self.cfg
    }

    /// Number of calls not yet ended.
    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    /// Number of live transactions (for tests and metrics).
    pub fn transactions(&self) -> usize {
        self.clients.len() + self.cancels.len() + self.servers.len()
    }

    /// The next bytes to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Endpoint::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.wakeups.peek().map(|Reverse((at, _))| *at)
    }

    /// The Call-ID of a call, for journaling before the INVITE leaves.
    pub fn call_id(&self, call: CallHandle) -> Option<&str> {
        self.calls.get(&call.0).map(|c| c.call_id.as_str())
    }

    fn token(&mut self, len: usize) -> String {
        const HEX: &[u8] = b"0123456789abcdef";
        (0..len)
            .map(|_| HEX[self.rng.random_range(0..16)] as char)
            .collect()
    }

    fn branch(&mut self) -> String {
        format!("{BRANCH_MAGIC}{}", self.token(16))
    }

    fn wake(&mut self, at: Option<Instant>, owner: Owner) {
        if let Some(at) = at {
            self.wakeups.push(Reverse((at, owner)));
        }
    }

    fn send(&mut self, transport: Transport, dest: SocketAddr, bytes: Wire) {
        self.transmits.push_back(Transmit {
            transport,
            dest,
            bytes,
        });
    }

    // ----- placing calls ---------------------------------------------------------------

    /// Places a call: builds and sends the INVITE with the SDP offer. The Call-ID is known
    /// (via [`Endpoint::call_id`]) as soon as this returns, before the INVITE is drained.
    pub fn place_call(&mut self, now: Instant, params: CallParams) -> CallHandle {
        let handle = self.next_handle;
        self.next_handle += 1;
        let call_id = format!("{}@{}", self.token(20), self.cfg.local_addr.ip());
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
        let call = Call {
            transport,
            call_id: call_id.clone(),
            local_tag,
            local_party,
            cseq: self.rng.random_range(1..10_000),
            invite_cseq: 0,
            invite_branch: String::new(),
            state: CallState::Inviting,
            provisional_seen: false,
            cancel: None,
            cancel_sent: false,
            dialog: None,
            ack: None,
            ring_deadline: Some(now + params.ring_timeout),
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
        };
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
                };
                self.send_bye(now, call.0, end);
            }
            CallState::Terminating => {}
        }
    }

    fn schedule_call(&mut self, h: u64) {
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

    fn send_invite(&mut self, now: Instant, h: u64) {
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

    #[allow(clippy::too_many_arguments)]
    fn start_client(
        &mut self,
        now: Instant,
        branch: String,
        invite: bool,
        bytes: Wire,
        dest: SocketAddr,
        transport: Transport,
        call: Option<u64>,
        method: &'static str,
    ) {
        let tx = ClientTx::new(
            now,
            invite,
            bytes.clone(),
            transport.reliable(),
            self.cfg.timers,
        );
        self.send(transport, dest, bytes);
        let next = tx.next_timeout();
        let entry = ClientEntry {
            tx,
            dest,
            transport,
            call,
            method,
        };
        if method == "CANCEL" {
            self.cancels.insert(branch.clone(), entry);
            self.wake(next, Owner::Cancel(branch));
        } else {
            self.clients.insert(branch.clone(), entry);
            self.wake(next, Owner::Client(branch));
        }
    }

    fn try_cancel(&mut self, now: Instant, h: u64) {
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
    fn send_in_dialog(
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

    fn send_bye(&mut self, now: Instant, h: u64, end: CallEnd) {
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

    fn end_call(&mut self, h: u64, end: CallEnd) {
        if let Some(c) = self.calls.remove(&h) {
            self.by_call_id.remove(&c.call_id);
            self.events.push_back(Event::Ended {
                call: CallHandle(h),
                end,
            });
        }
    }

    // ----- OPTIONS pings and registrations ----------------------------------------------

    /// Sends an OPTIONS ping to `dest` (a trunk's health check); the answer comes back as
    /// [`Event::OptionsReply`], a timeout (Timer F) as status 408.
    pub fn send_options(&mut self, now: Instant, dest: SocketAddr, uri: &str) -> RequestHandle {
        let h = self.next_handle;
        self.next_handle += 1;
        let branch = self.branch();
        let tag = self.token(10);
        let call_id = format!("{}@{}", self.token(20), self.cfg.local_addr.ip());
        let transport = self.cfg.transport;
        let bytes = MessageWriter::request("OPTIONS", uri)
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
            branch,
            false,
            bytes.into(),
            dest,
            transport,
            Some(h),
            "OPTIONS",
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
            refresh_at: None,
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
            r.refresh_at = None;
            r.auth_tries = 0;
            self.send_register(now, reg.0);
        }
    }

    fn send_register(&mut self, now: Instant, h: u64) {
        let branch = self.branch();
        let cfg = self.cfg.clone();
        let Some(r) = self.regs.get_mut(&h) else {
            return;
        };
        r.cseq += 1;
        r.in_flight = true;
        let transport = r.params.transport.unwrap_or(cfg.transport);
        let expires = if r.unregistering { 0 } else { r.params.expires };
        let mut w = MessageWriter::request("REGISTER", &r.params.registrar_uri)
            .header("Via", via_value(&cfg, transport, &branch))
            .header("Max-Forwards", 70)
            .header("From", format!("<{}>;tag={}", r.params.aor, r.local_tag))
            .header("To", format!("<{}>", r.params.aor))
            .header("Call-ID", &r.call_id)
            .header("CSeq", format_args!("{} REGISTER", r.cseq))
            .header("Contact", contact_value(&cfg, transport))
            .header("Expires", expires)
            .header("User-Agent", &cfg.user_agent);
        if let Some((n, v)) = &r.auth_header {
            w.push_header(n, v);
        }
        let dest = r.params.registrar;
        self.start_client(
            now,
            branch,
            false,
            w.finish().into(),
            dest,
            transport,
            Some(h),
            "REGISTER",
        );
    }

    fn registration_timeout(&mut self, now: Instant, h: u64) {
        let Some(r) = self.regs.get_mut(&h) else {
            return;
        };
        if r.refresh_at.is_some_and(|t| t <= now) && !r.in_flight {
            r.refresh_at = None;
            r.auth_tries = 0;
            self.send_register(now, h);
        }
    }

    /// A final response (or timeout) for an OPTIONS ping or a REGISTER.
    fn on_aux_final(&mut self, now: Instant, h: u64, status: u16, r: Option<&Response<'_>>) {
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
        if let (Some(resp), 401 | 407, Some(creds)) = (r, status, reg.params.credentials.clone()) {
            let (values, header): (Vec<&str>, &'static str) = if status == 407 {
                (
                    resp.headers.proxy_authenticate().collect(),
                    "Proxy-Authorization",
                )
            } else {
                (resp.headers.www_authenticate().collect(), "Authorization")
            };
            if let Ok(ch) = auth::select_challenge(values.iter().copied()) {
                if reg.auth_tries < 2 && reg.auth.should_retry(&ch, reg.auth_tries > 0) {
                    let uri = reg.params.registrar_uri.clone();
                    if let Ok(v) = reg.auth.authorize(&ch, &creds, "REGISTER", &uri, &cnonce) {
                        reg.auth_tries += 1;
                        reg.auth_header = Some((header, v));
                        self.send_register(now, h);
                        return;
                    }
                }
            }
        }
        reg.auth_tries = 0;
        let state = if (200..300).contains(&status) && !reg.unregistering {
            reg.failures = 0;
            let asked = reg.params.expires;
            // The registrar's grant: our Contact's expires parameter, else Expires.
            let granted = r
                .and_then(|resp| {
                    resp.headers
                        .contacts()
                        .ok()
                        .and_then(|cs| {
                            cs.iter()
                                .find(|c| {
                                    c.uri.host.map(|h| h.to_string())
                                        == Some(self.cfg.local_addr.ip().to_string())
                                })
                                .and_then(|c| c.params.get("expires").flatten())
                                .and_then(super::headers::parse_u32)
                        })
                        .or_else(|| resp.headers.expires())
                })
                .unwrap_or(asked)
                .max(1);
            // Refresh at 80 % of the grant (at least 5 s early on short grants).
            let lead = (u64::from(granted) / 5).max(5.min(u64::from(granted) / 2));
            reg.refresh_at = Some(now + Duration::from_secs(u64::from(granted) - lead));
            RegistrationState::Registered { expires: granted }
        } else if reg.unregistering {
            self.regs.remove(&h);
            self.events.push_back(Event::Registration {
                reg: RequestHandle(h),
                state: RegistrationState::Unregistered,
            });
            return;
        } else {
            reg.failures += 1;
            // Back off exponentially from 30 s to 30 min; honour Retry-After when larger.
            let backoff = (30u64 << (reg.failures - 1).min(6)).min(1800);
            let retry_after = r
                .and_then(|x| x.headers.retry_after())
                .map(u64::from)
                .unwrap_or(0);
            let retry_in = Duration::from_secs(backoff.max(retry_after));
            reg.refresh_at = Some(now + retry_in);
            RegistrationState::Failed { status, retry_in }
        };
        let at = reg.refresh_at;
        self.events.push_back(Event::Registration {
            reg: RequestHandle(h),
            state,
        });
        self.wake(at, Owner::Registration(h));
    }

    // ----- input ------------------------------------------------------------------------

    /// Feeds a datagram (or one framed stream message) received from `from`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        transport: Transport,
        bytes: &[u8],
    ) {
        if bytes.iter().all(|b| matches!(b, b'\r' | b'\n')) {
            return; // keep-alive
        }
        match parse_framed(bytes, transport.reliable()) {
            Ok((Message::Response(r), _)) => self.on_response(now, &r),
            Ok((Message::Request(r), _)) => self.on_request(now, from, transport, &r),
            Err(e) => self.reject_malformed(from, transport, bytes, &e.to_string()),
        }
    }

    /// Handles every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, _))) = self.wakeups.peek() {
            if *at > now {
                break;
            }
            let Reverse((_, owner)) = self.wakeups.pop().expect("peeked");
            match owner {
                Owner::Client(b) => self.client_timeout(now, b, false),
                Owner::Cancel(b) => self.client_timeout(now, b, true),
                Owner::Server(k) => self.server_timeout(now, k),
                Owner::Call(h) => self.call_timeout(now, h),
                Owner::Registration(h) => self.registration_timeout(now, h),
            }
        }
    }

    fn client_timeout(&mut self, now: Instant, branch: String, cancel: bool) {
        let map = if cancel {
            &mut self.cancels
        } else {
            &mut self.clients
        };
        let Some(e) = map.get_mut(&branch) else {
            return;
        };
        if e.tx.next_timeout().is_none_or(|t| t > now) {
            return; // stale wake-up
        }
        let actions = e.tx.on_timeout(now);
        let (dest, transport, call, method) = (e.dest, e.transport, e.call, e.method);
        let next = e.tx.next_timeout();
        for a in actions {
            match a {
                ClientAction::Send(b) => {
                    metrics::counter!("dialer_sip_retransmissions_total").increment(1);
                    self.send(transport, dest, b)
                }
                ClientAction::Timeout => {
                    if let Some(h) = call {
                        self.on_client_timeout(now, h, method);
                    }
                }
                ClientAction::Terminated => {
                    let map = if cancel {
                        &mut self.cancels
                    } else {
                        &mut self.clients
                    };
                    map.remove(&branch);
                    return;
                }
                ClientAction::PassUp => {}
            }
        }
        let owner = if cancel {
            Owner::Cancel(branch)
        } else {
            Owner::Client(branch)
        };
        self.wake(next, owner);
    }

    fn server_timeout(&mut self, now: Instant, key: String) {
        let Some(e) = self.servers.get_mut(&key) else {
            return;
        };
        if e.tx.next_timeout().is_none_or(|t| t > now) {
            return;
        }
        let actions = e.tx.on_timeout(now);
        let (dest, transport) = (e.dest, e.transport);
        let next = e.tx.next_timeout();
        for a in actions {
            match a {
                ServerAction::Send(b) => self.send(transport, dest, b),
                ServerAction::NoAck => {}
                ServerAction::Terminated => {
                    self.servers.remove(&key);
                    return;
                }
            }
        }
        self.wake(next, Owner::Server(key));
    }

    fn call_timeout(&mut self, now: Instant, h: u64) {
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
            };
            self.send_bye(now, h, end);
        }
        self.schedule_call(h);
    }

    fn send_refresh(&mut self, now: Instant, h: u64) {
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

    fn on_client_timeout(&mut self, now: Instant, h: u64, method: &str) {
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
                };
                self.send_bye(now, h, end);
            }
            _ => {}
        }
    }

    // ----- responses --------------------------------------------------------------------

    fn on_response(&mut self, now: Instant, r: &Response<'_>) {
        let (Ok(via), Ok(cseq)) = (r.headers.top_via(), r.headers.cseq()) else {
            return;
        };
        let Some(branch) = via.branch() else {
            return;
        };
        let is_cancel = cseq.method == Method::Cancel;
        let map = if is_cancel {
            &mut self.cancels
        } else {
            &mut self.clients
        };
        let Some(e) = map.get_mut(branch) else {
            // No transaction: a 2xx retransmission after Timer M, or a stray 2xx from
            // another fork. Either needs an ACK (and a BYE for a fork we don't keep).
            if cseq.method == Method::Invite && (200..300).contains(&r.status) {
                if let Some(&h) = r
                    .headers
                    .call_id()
                    .ok()
                    .and_then(|id| self.by_call_id.get(id))
                {
                    self.on_invite_2xx(now, h, r);
                }
            }
            return;
        };
        if e.method != cseq.method.as_str() {
            return;
        }
        let request = e.tx.request().clone();
        let actions =
            e.tx.on_response(now, r.status, || build_ack_for_error(&request, r));
        let (dest, transport, call, method) = (e.dest, e.transport, e.call, e.method);
        let branch = branch.to_string();
        let next = e.tx.next_timeout();
        let mut terminated = false;
        for a in actions {
            match a {
                ClientAction::Send(b) => self.send(transport, dest, b),
                ClientAction::PassUp => {
                    metrics::counter!("dialer_sip_responses_total", "method" => method, "code" => status_label(r.status)).increment(1);
                    if let Some(h) = call {
                        self.on_call_response(now, h, method, r);
                    }
                }
                ClientAction::Terminated => terminated = true,
                ClientAction::Timeout => {}
            }
        }
        let map = if is_cancel {
            &mut self.cancels
        } else {
            &mut self.clients
        };
        if terminated {
            map.remove(&branch);
        } else {
            let owner = if is_cancel {
                Owner::Cancel(branch)
            } else {
                Owner::Client(branch)
            };
            self.wake(next, owner);
        }
    }

    fn on_call_response(&mut self, now: Instant, h: u64, method: &str, r: &Response<'_>) {
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
                    };
                    self.send_bye(now, h, end);
                }
            }
            _ => {}
        }
    }

    fn on_invite_response(&mut self, now: Instant, h: u64, r: &Response<'_>) {
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
                    },
                );
            }
        }
    }

    /// Re-sends `method` with credentials after a 401/407. Returns false when we have none,
    /// or the challenge repeats a nonce we already answered without `stale=true`.
    fn retry_with_auth(
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
        let (values, header): (Vec<&str>, &'static str) = if r.status == 407 {
            (
                r.headers.proxy_authenticate().collect(),
                "Proxy-Authorization",
            )
        } else {
            (r.headers.www_authenticate().collect(), "Authorization")
        };
        let Ok(ch) = auth::select_challenge(values.iter().copied()) else {
            return false;
        };
        if c.auth_tries >= 3 || !c.auth.should_retry(&ch, c.auth_tries > 0) {
            return false;
        }
        c.auth_tries += 1;
        let uri = match (method, &c.dialog) {
            ("INVITE", _) | (_, None) => c.params.request_uri.clone(),
            (_, Some(d)) => d.remote_target.clone(),
        };
        let cnonce = format!("{:016x}", self.rng.random::<u64>());
        let Ok(value) = c.auth.authorize(&ch, &creds, method, &uri, &cnonce) else {
            return false;
        };
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

    fn on_invite_2xx(&mut self, now: Instant, h: u64, r: &Response<'_>) {
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
                };
                self.send_bye(now, h, end);
            }
        }
    }

    // ----- requests ---------------------------------------------------------------------

    fn server_key(r: &Request<'_>) -> Option<String> {
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

    fn on_request(
        &mut self,
        now: Instant,
        from: SocketAddr,
        transport: Transport,
        r: &Request<'_>,
    ) {
        let Some(key) = Self::server_key(r) else {
            self.reject_malformed(from, transport, &[], "missing Via");
            return;
        };
        if r.method == Method::Ack {
            self.on_ack(now, &key, r);
            return;
        }
        if let Some(e) = self.servers.get_mut(&key) {
            // A retransmission: resend our last response, if any.
            if let Some(b) = e.tx.on_retransmission() {
                let (t, d) = (e.transport, e.dest);
                self.send(t, d, b);
            }
            return;
        }
        let invite = r.method == Method::Invite;
        self.servers.insert(
            key.clone(),
            ServerEntry {
                tx: ServerTx::new(invite, transport.reliable(), self.cfg.timers),
                dest: from,
                transport,
            },
        );
        let (status, reason, extra, body) = self.decide(now, r);
        let to_tag = self.token(10);
        let mut w = MessageWriter::response_to(r, status, reason, Some(&to_tag));
        for (n, v) in &extra {
            w.push_header(n, v);
        }
        w.push_header("Server", &self.cfg.user_agent);
        let bytes: Wire = match &body {
            Some(b) => w.finish_with_body(Some("application/sdp"), b.as_bytes()),
            None => w.finish(),
        }
        .into();
        let Some(e) = self.servers.get_mut(&key) else {
            return;
        };
        let actions = e.tx.respond(now, status, bytes);
        let next = e.tx.next_timeout();
        for a in actions {
            match a {
                ServerAction::Send(b) => self.send(transport, from, b),
                ServerAction::Terminated => {
                    self.servers.remove(&key);
                    return;
                }
                ServerAction::NoAck => {}
            }
        }
        if invite && (200..300).contains(&status) {
            if let Some(&h) = r
                .headers
                .call_id()
                .ok()
                .and_then(|id| self.by_call_id.get(id))
            {
                if let (Some(c), Ok(cseq)) = (self.calls.get_mut(&h), r.headers.cseq()) {
                    c.pending_reinvite = Some((cseq.seq, key.clone()));
                }
            }
        }
        self.wake(next, Owner::Server(key));
    }

    fn on_ack(&mut self, now: Instant, key: &str, r: &Request<'_>) {
        if let Some(e) = self.servers.get_mut(key) {
            let acts = e.tx.on_ack(now);
            let next = e.tx.next_timeout();
            if acts.contains(&ServerAction::Terminated) {
                self.servers.remove(key);
            } else {
                self.wake(next, Owner::Server(key.to_string()));
            }
            return;
        }
        // The ACK of a 2xx to a re-INVITE has its own branch: match it by dialog and CSeq.
        let Some(&h) = r
            .headers
            .call_id()
            .ok()
            .and_then(|id| self.by_call_id.get(id))
        else {
            return;
        };
        let Some(c) = self.calls.get_mut(&h) else {
            return;
        };
        if let (Some((seq, k)), Ok(cseq)) = (&c.pending_reinvite, r.headers.cseq()) {
            if *seq == cseq.seq {
                let k = k.clone();
                c.pending_reinvite = None;
                if let Some(e) = self.servers.get_mut(&k) {
                    e.tx.on_ack(now);
                }
            }
        }
    }

    /// Chooses the response to a new request: status, reason, extra headers, SDP body.
    fn decide(
        &mut self,
        now: Instant,
        r: &Request<'_>,
    ) -> (u16, &'static str, Vec<(String, String)>, Option<String>) {
        let h = &r.headers;
        let mut extra = Vec::new();
        if h.from().is_err() || h.to().is_err() || h.call_id().is_err() || h.cseq().is_err() {
            return (
                400,
                "Bad Request (missing or repeated required header)",
                extra,
                None,
            );
        }
        if h.content_length().is_err() {
            return (400, "Bad Request (Content-Length)", extra, None);
        }
        if !matches!(r.uri.scheme, Scheme::Sip | Scheme::Sips | Scheme::Tel) {
            return (416, "Unsupported URI Scheme", extra, None);
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
            return match r.method {
                Method::Other(_) => (501, "Not Implemented", extra, None),
                _ => (405, "Method Not Allowed", extra, None),
            };
        }
        let unsupported: Vec<&str> = h
            .require()
            .filter(|t| !t.eq_ignore_ascii_case("timer"))
            .collect();
        if !unsupported.is_empty() && r.method != Method::Cancel {
            extra.push(("Unsupported".into(), unsupported.join(", ")));
            return (420, "Bad Extension", extra, None);
        }
        let to_tag = h.to().ok().and_then(|t| t.tag().map(str::to_string));
        let call = h
            .call_id()
            .ok()
            .and_then(|id| self.by_call_id.get(id).copied())
            .filter(|hd| {
                let c = &self.calls[hd];
                to_tag.as_deref() == Some(c.local_tag.as_str())
                    && c.dialog
                        .as_ref()
                        .is_some_and(|d| h.from().ok().and_then(|f| f.tag()) == Some(&d.remote_tag))
            });
        match (r.method, call) {
            (Method::Options, _) => {
                extra.push(("Allow".into(), ALLOW.into()));
                extra.push(("Accept".into(), "application/sdp".into()));
                extra.push(("Supported".into(), "timer".into()));
                (200, "OK", extra, None)
            }
            (Method::Bye, Some(hd)) => {
                if let Some(c) = self.calls.get(&hd) {
                    if c.state != CallState::Terminating {
                        self.end_call(
                            hd,
                            CallEnd {
                                outcome: Outcome::Answered,
                                status: 200,
                                reason: "OK".into(),
                                hangup: Hangup::Remote,
                            },
                        );
                    } else if let Some(end) =
                        self.calls.get_mut(&hd).and_then(|c| c.end_after_bye.take())
                    {
                        // BYEs crossed: both sides are done.
                        self.end_call(hd, end);
                    }
                }
                (200, "OK", extra, None)
            }
            (Method::Bye | Method::Cancel, None) => {
                (481, "Call/Transaction Does Not Exist", extra, None)
            }
            (Method::Cancel, Some(_)) => (200, "OK", extra, None),
            (Method::Invite, None) => (480, "Temporarily Unavailable", extra, None),
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

    /// Answers a far-end re-INVITE or UPDATE: a session refresh, possibly with a new offer.
    fn answer_refresh(
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
                c.refresh_at = Some(now + Duration::from_secs(u64::from(secs) / 2));
                c.expire_at = None;
            } else {
                c.expire_at = Some(now + session_guard(secs));
                c.refresh_at = None;
            }
        } else if c.expire_at.is_some() {
            if let Some(secs) = c.session_interval {
                c.expire_at = Some(now + session_guard(secs));
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
        let hd2 = hd;
        self.schedule_call(hd2);
        (200, "OK", extra, body)
    }

    /// Answers 400 to a request we could not parse, when enough of it is readable to
    /// address a response; responses and ACKs are never answered.
    fn reject_malformed(
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

impl Call {
    /// A throwaway copy of a call's identity for a second fork's dialog (to ACK and BYE it).
    fn fork_of(c: &Call, dialog: Dialog) -> Call {
        Call {
            params: c.params.clone(),
            transport: c.transport,
            call_id: c.call_id.clone(),
            local_tag: c.local_tag.clone(),
            local_party: c.local_party.clone(),
            cseq: c.invite_cseq,
            invite_cseq: c.invite_cseq,
            invite_branch: String::new(),
            state: CallState::Confirmed,
            provisional_seen: true,
            cancel: None,
            cancel_sent: false,
            dialog: Some(dialog),
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
            answer_version: 0,
            end_after_bye: None,
        }
    }
}

fn cancel_outcome(reason: Option<CancelReason>) -> Outcome {
    match reason {
        Some(CancelReason::User) => Outcome::Canceled,
        _ => Outcome::NoAnswer,
    }
}

/// When to give up on a session the far end should refresh: before it expires, by
/// min(32 s, interval/3) (RFC 4028 §10).
fn session_guard(secs: u32) -> Duration {
    let s = u64::from(secs);
    Duration::from_secs(s - (s / 3).min(32))
}

fn status_label(status: u16) -> &'static str {
    match status {
        100 => "100",
        180 => "180",
        183 => "183",
        200 => "200",
        401 => "401",
        407 => "407",
        404 => "404",
        408 => "408",
        480 => "480",
        481 => "481",
        486 => "486",
        487 => "487",
        500 => "500",
        503 => "503",
        603 => "603",
        s if s < 200 => "1xx",
        s if s < 300 => "2xx",
        s if s < 400 => "3xx",
        s if s < 500 => "4xx",
        s if s < 600 => "5xx",
        _ => "6xx",
    }
}

fn is_sdp(r: &Response<'_>) -> bool {
    r.headers
        .content_type()
        .is_some_and(|t| t.eq_ignore_ascii_case("application/sdp"))
}

fn sip_host_port(a: SocketAddr) -> String {
    match a.ip() {
        IpAddr::V4(ip) => format!("{ip}:{}", a.port()),
        IpAddr::V6(ip) => format!("[{ip}]:{}", a.port()),
    }
}

fn via_value(cfg: &EndpointConfig, transport: Transport, branch: &str) -> String {
    format!(
        "SIP/2.0/{} {};branch={branch};rport",
        transport.as_str(),
        sip_host_port(cfg.local_addr)
    )
}

fn contact_value(cfg: &EndpointConfig, transport: Transport) -> String {
    match transport {
        Transport::Udp => format!("<sip:dialer@{}>", sip_host_port(cfg.local_addr)),
        Transport::Tcp => format!(
            "<sip:dialer@{};transport=tcp>",
            sip_host_port(cfg.local_addr)
        ),
    }
}

fn build_invite(
    cfg: &EndpointConfig,
    c: &Call,
    branch: &str,
    transport: Transport,
    body: &[u8],
) -> Vec<u8> {
    let mut w = MessageWriter::request("INVITE", &c.params.request_uri)
        .header("Via", via_value(cfg, transport, branch))
        .header("Max-Forwards", 70)
        .header("From", &c.local_party)
        .header("To", format!("<{}>", c.params.to_uri))
        .header("Call-ID", &c.call_id)
        .header("CSeq", format_args!("{} INVITE", c.cseq))
        .header("Contact", contact_value(cfg, transport))
        .header("Allow", ALLOW)
        .header("Supported", "timer")
        .header("User-Agent", &cfg.user_agent);
    for (n, v) in &c.params.extra_headers {
        w.push_header(n, v);
    }
    if let Some((n, v)) = &c.auth_header {
        w.push_header(n, v);
    }
    w.finish_with_body(Some("application/sdp"), body)
}

/// Builds a request inside the dialog of `c` and finds where it goes: the first Route if
/// there is a route set, else the remote target; a host name goes to the trunk's proxy.
fn build_in_dialog(
    cfg: &EndpointConfig,
    c: &mut Call,
    method: &str,
    cseq: u32,
    branch: &str,
    extra: &[(&str, String)],
    body: Option<(&str, &[u8])>,
) -> Option<(Vec<u8>, SocketAddr)> {
    let d = c.dialog.as_ref()?;
    let first_route_strict = d
        .route_set
        .first()
        .and_then(|r| NameAddr::parse(r, "Route").ok())
        .is_some_and(|n| !n.uri.is_loose_router());
    // Strict routing (RFC 3261 §12.2.1.1): the first route becomes the Request-URI.
    let (ruri, routes): (String, Vec<String>) = if first_route_strict {
        let first = NameAddr::parse(&d.route_set[0], "Route")
            .ok()?
            .uri
            .raw
            .to_string();
        let mut rest: Vec<String> = d.route_set[1..].to_vec();
        rest.push(format!("<{}>", d.remote_target));
        (first, rest)
    } else {
        (d.remote_target.clone(), d.route_set.clone())
    };
    let next_hop = d
        .route_set
        .first()
        .and_then(|r| {
            NameAddr::parse(r, "Route")
                .ok()
                .map(|n| n.uri.raw.to_string())
        })
        .unwrap_or_else(|| d.remote_target.clone());
    let dest = Uri::parse(&next_hop)
        .ok()
        .and_then(|u| {
            let port = u.port.unwrap_or(5060);
            match u.host? {
                Host::V4(ip) => Some(SocketAddr::new(ip.into(), port)),
                Host::V6(ip) => Some(SocketAddr::new(ip.into(), port)),
                Host::Domain(_) => None,
            }
        })
        .unwrap_or(c.params.proxy);
    let cseq_method = if method == "ACK" { "ACK" } else { method };
    let mut w = MessageWriter::request(method, &ruri)
        .header("Via", via_value(cfg, c.transport, branch))
        .header("Max-Forwards", 70)
        .header("From", &c.local_party)
        .header("To", &d.remote_party)
        .header("Call-ID", &c.call_id)
        .header("CSeq", format_args!("{cseq} {cseq_method}"));
    for r in &routes {
        w.push_header("Route", r);
    }
    if method != "BYE" && method != "ACK" {
        w.push_header("Contact", contact_value(cfg, c.transport));
    }
    for (n, v) in extra {
        w.push_header(n, v);
    }
    w.push_header("User-Agent", &cfg.user_agent);
    let bytes = match body {
        Some((ct, b)) => w.finish_with_body(Some(ct), b),
        None => w.finish(),
    };
    Some((bytes, dest))
}

/// CANCEL for an INVITE we sent: same Request-URI, top Via, From, To, Call-ID, CSeq
/// number and Route (RFC 3261 §9.1).
fn build_cancel(invite: &[u8]) -> Option<Vec<u8>> {
    let Ok(Message::Request(inv)) = super::message::parse(invite) else {
        return None;
    };
    let cseq = inv.headers.cseq().ok()?;
    let mut w = MessageWriter::request("CANCEL", inv.uri.raw)
        .header("Via", inv.headers.first(HeaderName::Via)?)
        .header("Max-Forwards", 70)
        .header("From", inv.headers.first(HeaderName::From)?)
        .header("To", inv.headers.first(HeaderName::To)?)
        .header("Call-ID", inv.headers.call_id().ok()?)
        .header("CSeq", format_args!("{} CANCEL", cseq.seq));
    for r in inv.headers.values(HeaderName::Route) {
        w.push_header("Route", r);
    }
    Some(w.finish())
}

/// The ACK a client INVITE transaction sends for a non-2xx final response: same branch,
/// the response's To (with its tag), RFC 3261 §17.1.1.3.
fn build_ack_for_error(invite: &[u8], resp: &Response<'_>) -> Vec<u8> {
    let Ok(Message::Request(inv)) = super::message::parse(invite) else {
        return Vec::new();
    };
    let seq = inv.headers.cseq().map(|c| c.seq).unwrap_or(0);
    let mut w = MessageWriter::request("ACK", inv.uri.raw)
        .header("Via", inv.headers.first(HeaderName::Via).unwrap_or(""))
        .header("Max-Forwards", 70)
        .header("From", inv.headers.first(HeaderName::From).unwrap_or(""))
        .header(
            "To",
            resp.headers
                .first(HeaderName::To)
                .or(inv.headers.first(HeaderName::To))
                .unwrap_or(""),
        )
        .header("Call-ID", inv.headers.call_id().unwrap_or(""))
        .header("CSeq", format_args!("{seq} ACK"));
    for r in inv.headers.values(HeaderName::Route) {
        w.push_header("Route", r);
    }
    w.finish()
}

/// Builds a 400 for a request that failed to parse, copying Via, From, To, Call-ID and CSeq
/// lines as written. `None` for responses, ACKs, and anything without those lines.
fn lenient_400(bytes: &[u8], why: &str) -> Option<Vec<u8>> {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(bytes.len());
    let head = std::str::from_utf8(&bytes[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let start = lines.next()?;
    if start.starts_with("SIP/") || start.starts_with("ACK ") || !start.contains(" SIP/") {
        return None;
    }
    let mut want: [(&str, &str, Vec<&str>); 5] = [
        ("Via", "v", Vec::new()),
        ("From", "f", Vec::new()),
        ("To", "t", Vec::new()),
        ("Call-ID", "i", Vec::new()),
        ("CSeq", "", Vec::new()),
    ];
    for line in lines {
        let Some((n, v)) = line.split_once(':') else {
            continue;
        };
        let n = n.trim();
        for (full, compact, vals) in want.iter_mut() {
            if n.eq_ignore_ascii_case(full)
                || (!compact.is_empty() && n.eq_ignore_ascii_case(compact))
            {
                vals.push(v.trim());
            }
        }
    }
    if want.iter().any(|(_, _, v)| v.is_empty()) {
        return None;
    }
    let reason: String = why
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(80)
        .collect();
    let mut out = String::new();
    let _ = write!(out, "SIP/2.0 400 Bad Request ({reason})\r\n");
    for (full, _, vals) in &want {
        for v in vals {
            let _ = write!(out, "{full}: {v}\r\n");
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    Some(out.into_bytes())
}

/// A shared handle for use as an `Arc` in drivers.
pub type SharedEndpoint = Arc<std::sync::Mutex<Endpoint>>;

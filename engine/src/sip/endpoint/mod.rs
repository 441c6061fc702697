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
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
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

mod call;
mod registration;
mod server;
mod strangers;
mod wire;

pub use strangers::{SourcePolicy, StrangerAction, Verdict};

use call::session_guard;
use wire::*;

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

/// The default `User-Agent` / `Server` value: names no product and no version.
pub const DEFAULT_USER_AGENT: &str = "SIP UA";

/// Settings of an endpoint.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// The address written in Via and Contact (the driver's bound address).
    pub local_addr: SocketAddr,
    /// Transport for requests unless a call asks otherwise.
    pub transport: Transport,
    /// T1, T2, T4.
    pub timers: TimerConfig,
    /// `User-Agent` and `Server` header value. Generic by default ([`DEFAULT_USER_AGENT`]):
    /// a product and version tell scanners which exploits to try.
    pub user_agent: String,
    /// A UDP request larger than this goes over TCP (RFC 3261 §18.1.1: MTU − 200).
    pub max_udp_request: usize,
    /// Seed for tags, branches and Call-IDs, fixed only in tests for reproducible runs.
    /// `None` (the default) seeds the CSPRNG from the OS: in-dialog requests from
    /// strangers are refused only because Call-IDs and tags cannot be guessed.
    pub seed: Option<u64>,
    /// Who may send new requests, and what strangers get (see [`SourcePolicy`]).
    pub sources: SourcePolicy,
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
            user_agent: DEFAULT_USER_AGENT.to_string(),
            max_udp_request: 1300,
            seed: None,
            sources: SourcePolicy::default(),
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
    /// Trunk name for metric labels (`dialer_sip_responses_total{trunk}` and
    /// `dialer_sip_retransmissions_total{trunk}`); `None` is labelled `none`.
    pub trunk: Option<String>,
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
    /// Seconds from a final response's Retry-After (a 503's: how long the carrier asks us
    /// to stay away), for congestion control.
    pub retry_after: Option<u32>,
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
    /// ChaCha12 (rand's StdRng): a CSPRNG, so tags, branches and Call-IDs are unguessable.
    rng: StdRng,
    reply_limiter: strangers::ReplyLimiter,
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
            rng: match cfg.seed {
                Some(seed) => StdRng::seed_from_u64(seed),
                None => StdRng::from_os_rng(),
            },
            reply_limiter: strangers::ReplyLimiter::default(),
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

    /// Replaces the addresses allowed to send new requests (the trunks' proxies), e.g.
    /// when trunks change; `None` lets anyone in.
    pub fn set_allowed_sources(&mut self, allowed: Option<Vec<IpAddr>>) {
        self.cfg.sources.allowed = allowed;
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

    /// The trunk label of the call a transaction belongs to, for metrics.
    fn trunk_label(&self, call: Option<u64>) -> String {
        call.and_then(|h| self.calls.get(&h))
            .and_then(|c| c.params.trunk.clone())
            .unwrap_or_else(|| "none".to_string())
    }

    fn send(&mut self, transport: Transport, dest: SocketAddr, bytes: Wire) {
        self.transmits.push_back(Transmit {
            transport,
            dest,
            bytes,
        });
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
                    let trunk = self.trunk_label(call);
                    metrics::counter!("dialer_sip_retransmissions_total", "trunk" => trunk)
                        .increment(1);
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
                    let trunk = self.trunk_label(call);
                    metrics::counter!("dialer_sip_responses_total", "trunk" => trunk, "method" => method, "code" => status_label(r.status)).increment(1);
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
}

//! The sans-IO SIP endpoint: a user agent that places outbound calls and answers the few
//! requests a dialer must answer.
//!
//! Inputs are [`Endpoint::handle_datagram`], [`Endpoint::handle_timeout`] and commands
//! ([`Endpoint::place_call`], [`Endpoint::hangup`]); outputs are drained with
//! [`Endpoint::poll_transmit`], [`Endpoint::poll_event`] and [`Endpoint::poll_timeout`].
//! The endpoint owns every transaction and call; it never reads a clock or touches a socket.
//! Method names are parsed once (at the message codec); inside, a method is a [`Method`].

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::auth::{self, DigestClient};
use super::builder::MessageWriter;
use super::headers::{HeaderName, Method, NameAddr};
use super::message::{parse_framed, Message, Request, Response};
use super::outcome::Outcome;
use super::sdp::{self, NegotiatedMedia};
use super::transaction::{ClientAction, ClientTx, ServerAction, ServerTx, Wire};
use super::uri::{Host, Scheme, Uri};
use crate::id_map::IdMap;

mod accepted;
mod answer;
mod api;
mod branch;
mod call;
mod cidr;
mod client;
mod counters;
#[cfg(test)]
mod held;
mod registration;
mod server;
mod strangers;
#[cfg(test)]
mod tests;
mod uas;
mod wakeups;
mod wire;

pub use crate::sip::sdp::AnswerParams;
pub use api::{
    AnswerError, CallEnd, CallHandle, CallParams, EndpointConfig, Event, Hangup, IncomingCall,
    RegisterParams, RegistrationState, RequestHandle, Transmit, Transport, DEFAULT_USER_AGENT,
};
use branch::{branch_key, branch_text, push_hex, BRANCH_MAGIC};
use call::{cancel_outcome, remember_challenge, session_guard};
pub use cidr::{Cidr, CidrError};
pub use strangers::{SourcePolicy, StrangerAction, Verdict};
use wakeups::{CallTimer, CallTimers, RegTimer, RegTimers, ServerId, TxId, Wake, Wakeups};
use wire::*;

/// A method the endpoint sends or matches on; parsed from the wire once.
type Verb = Method<'static>;

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
    timers: RegTimers,
    unregistering: bool,
    in_flight: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    /// Ours: the INVITE is out, no 2xx yet.
    Inviting,
    /// Theirs: their INVITE is here, the application has not answered it finally.
    Incoming,
    /// Theirs: we sent the 2xx and retransmit it until the ACK (RFC 3261 §13.3.1.4).
    Accepted,
    Confirmed,
    Terminating,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CancelReason {
    RingTimeout,
    User,
}

/// A dialog as its requests need it. Made by [`Dialog::new`], which works out once how
/// the dialog's requests are addressed (RFC 3261 §12.2.1.1): target and routes do not
/// change during a dialog here, and parsing them again for every ACK and BYE was a tenth
/// of the work of sending those.
#[derive(Debug, Clone)]
struct Dialog {
    remote_tag: String,
    /// The To header value as we send it, with the remote tag.
    remote_party: String,
    remote_target: String,
    route_set: Vec<String>,
    /// With a strict router first in the route set: its URI as the Request-URI, and the
    /// Route values that follow (the rest of the set, the remote target last).
    strict: Option<(String, Vec<String>)>,
    /// The first hop (the first route, else the remote target) when it is written as an IP
    /// address; a name is not resolved here, the call's proxy is used instead.
    hop: Option<SocketAddr>,
}

#[derive(Debug)]
struct Call {
    params: CallParams,
    /// `params.trunk` as a metric label, made once per call.
    trunk_label: metrics::SharedString,
    transport: Transport,
    call_id: String,
    local_tag: String,
    local_party: String,
    cseq: u32,
    invite_cseq: u32,
    /// The INVITE's client transaction (its CANCEL's branch is the same).
    invite_tx: Option<TxId>,
    state: CallState,
    provisional_seen: bool,
    cancel: Option<CancelReason>,
    cancel_sent: bool,
    dialog: Option<Dialog>,
    ack: Option<(Wire, SocketAddr)>,
    /// Ring timeout, CANCEL guard, session refresh and expiry.
    timers: CallTimers,
    auth: DigestClient,
    /// The INVITE's credentials, repeated as they are in its ACK (RFC 3261 §13.2.2.4).
    auth_header: Option<(&'static str, String)>,
    /// The challenges answered, one per realm (a proxy's and the far end's may both ask):
    /// every later request in the dialog carries an answer to each, computed for its own
    /// method and Request-URI with the nonce count moving on (RFC 7616 §3.4), never the
    /// INVITE's answer copied.
    auth_challenges: Vec<(&'static str, auth::Challenge)>,
    auth_tries: u32,
    media: Option<NegotiatedMedia>,
    early_sdp: Option<Vec<u8>>,
    session_interval: Option<u32>,
    /// A far-end re-INVITE we answered 2xx: its CSeq and server transaction, for the ACK.
    pending_reinvite: Option<(u32, ServerId)>,
    answer_version: u64,
    end_after_bye: Option<CallEnd>,
    /// The far end's INVITE and its server transaction, for calls that came to us.
    inbound: Option<Box<uas::Inbound>>,
}

/// A client transaction and what it belongs to.
struct ClientEntry {
    tx: ClientTx,
    /// Its Via branch as the number it encodes, the key responses are matched on.
    branch: u64,
    dest: SocketAddr,
    transport: Transport,
    /// The call, ping or registration (they share one handle space).
    call: Option<u64>,
    method: Verb,
}

/// A server transaction and where its responses go.
struct ServerEntry {
    tx: ServerTx,
    /// The matching key (RFC 3261 §17.2.3), for removal from the index.
    key: String,
    dest: SocketAddr,
    transport: Transport,
    /// The incoming call an INVITE transaction opened (for CANCEL and Timer H).
    call: Option<u64>,
}

/// The SIP user agent core. See the module documentation.
pub struct Endpoint {
    cfg: EndpointConfig,
    /// ChaCha12 (rand's StdRng): a CSPRNG, so tags, branches and Call-IDs are unguessable.
    rng: StdRng,
    reply_limiter: strangers::ReplyLimiter,
    next_handle: u64,
    calls: IdMap<u64, Call>,
    pings: IdMap<u64, Ping>,
    regs: IdMap<u64, Registration>,
    by_call_id: HashMap<String, u64>,
    next_tx: u64,
    clients: IdMap<TxId, ClientEntry>,
    /// Client transactions by Via branch, as the number our branches encode (CANCELs
    /// apart: they share their INVITE's).
    client_branches: IdMap<u64, TxId>,
    cancel_branches: IdMap<u64, TxId>,
    /// INVITE client transactions after their 2xx (RFC 6026 Accepted), kept apart and small.
    accepted: accepted::AcceptedInvites,
    servers: IdMap<ServerId, ServerEntry>,
    server_keys: HashMap<String, ServerId>,
    wakeups: Wakeups,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    responses: counters::ResponseCounters,
}

const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO";

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
            calls: IdMap::default(),
            pings: IdMap::default(),
            regs: IdMap::default(),
            by_call_id: HashMap::new(),
            next_tx: 1,
            clients: IdMap::default(),
            client_branches: IdMap::default(),
            cancel_branches: IdMap::default(),
            accepted: accepted::AcceptedInvites::default(),
            servers: IdMap::default(),
            server_keys: HashMap::new(),
            wakeups: Wakeups::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            responses: counters::ResponseCounters::default(),
        }
    }

    /// Replaces the addresses and blocks allowed to send new requests (the trunks'
    /// proxies and `inbound_from` lists), e.g. when trunks change; `None` lets anyone in.
    pub fn set_allowed_sources(&mut self, allowed: Option<Vec<Cidr>>) {
        self.cfg.sources.allowed = allowed;
    }

    /// The endpoint's settings.
    pub fn config(&self) -> &EndpointConfig {
        &self.cfg
    }

    /// Number of calls not yet ended.
    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    /// Number of live transactions (for tests and metrics).
    pub fn transactions(&self) -> usize {
        self.clients.len() + self.accepted.len() + self.servers.len()
    }

    /// The next bytes to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Whether [`Endpoint::poll_event`] has an event to give.
    pub fn has_event(&self) -> bool {
        !self.events.is_empty()
    }

    /// When [`Endpoint::handle_timeout`] must next be called: exactly the earliest live
    /// deadline of any transaction, call or registration.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.wakeups.next()
    }

    /// The Call-ID of a call, for journaling before the INVITE leaves.
    pub fn call_id(&self, call: CallHandle) -> Option<&str> {
        self.calls.get(&call.0).map(|c| c.call_id.as_str())
    }

    /// `len` random hex digits (tags, branches, Call-IDs): sixteen from each 64-bit draw.
    fn token(&mut self, len: usize) -> String {
        let mut s = String::with_capacity(len);
        self.push_token(&mut s, len);
        s
    }

    /// Appends `len` random hex digits to `s`, sixteen from each draw.
    fn push_token(&mut self, s: &mut String, len: usize) {
        let mut left = len;
        while left > 0 {
            let n = left.min(16);
            push_hex(s, self.rng.random(), n);
            left -= n;
        }
    }

    /// A fresh Via branch, for an ACK (which has no transaction of its own).
    fn branch(&mut self) -> String {
        self.keyed_branch().1
    }

    /// A fresh Via branch and the number it encodes, the key its client transaction is
    /// filed under (see [`branch`]).
    fn keyed_branch(&mut self) -> (u64, String) {
        let key: u64 = self.rng.random();
        (key, branch_text(key))
    }

    /// The trunk label of the call a transaction belongs to, for metrics (shared, so a
    /// response costs no allocation for it).
    fn trunk_label(&self, call: Option<u64>) -> metrics::SharedString {
        call.and_then(|h| self.calls.get(&h))
            .map(|c| c.trunk_label.clone())
            .unwrap_or_else(|| metrics::SharedString::const_str("none"))
    }

    fn send(&mut self, transport: Transport, dest: SocketAddr, bytes: Wire) {
        self.transmits.push_back(Transmit {
            transport,
            dest,
            bytes,
        });
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
            Ok((Message::Request(r), _)) => self.on_request(now, from, transport, &r, bytes),
            Err(e) => {
                client::dropped("parse_error");
                self.reject_malformed(from, transport, bytes, &e.to_string())
            }
        }
    }

    /// Handles every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(owner) = self.wakeups.pop_due(now) {
            match owner {
                Wake::Client(id) => self.client_timeout(now, id),
                Wake::Server(id) => self.server_timeout(now, id),
                Wake::Call(h) => self.call_timeout(now, h.0),
                Wake::Registration(h) => self.registration_timeout(now, h.0),
                Wake::Accepted => self.accepted_timeout(now),
            }
        }
    }
}

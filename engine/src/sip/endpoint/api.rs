//! The endpoint's public vocabulary: what a caller passes in (config, call and register
//! parameters) and what comes out (transmits, events, handles).

use std::net::SocketAddr;
use std::time::Duration;

use super::strangers::SourcePolicy;
use crate::sip::auth::Credentials;
use crate::sip::outcome::Outcome;
use crate::sip::sdp::{NegotiatedMedia, OfferParams, SdpError, SessionDescription};
use crate::sip::timer::TimerConfig;
use crate::sip::transaction::Wire;

/// A SIP transport. The driver owns the sockets; the core only needs to know which one a
/// message goes over, and whether it is reliable (no retransmissions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP, with retransmissions.
    Udp,
    /// TCP, one connection per peer.
    Tcp,
    /// TLS over TCP (RFC 3261 §26.2, RFC 5630), one connection per peer: the only transport
    /// SRTP keys (SDES) may travel on.
    Tls,
}

impl Transport {
    /// The Via token.
    pub fn as_str(&self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    pub(super) fn reliable(&self) -> bool {
        matches!(self, Transport::Tcp | Transport::Tls)
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
    /// The TLS listening address (`[sip] tls_listen`), written in Via and Contact of what
    /// goes over TLS; `None` when there is no TLS listener (Via and Contact then give the
    /// UDP/TCP address, and the far end answers on the connection we opened).
    pub tls_addr: Option<SocketAddr>,
    /// Whether INVITEs that open a dialog are offered to the application as
    /// [`Event::Incoming`]. Off (the default), they are answered 480 as by a dialer that
    /// only places calls: an application that does not handle `Incoming` never leaves a
    /// caller hanging.
    pub inbound_calls: bool,
    /// How long an incoming call may wait for the application's answer (accept or reject)
    /// before it is refused with 480: a stuck application must not hold callers.
    pub inbound_answer_timeout: Duration,
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
            tls_addr: None,
            inbound_calls: false,
            inbound_answer_timeout: Duration::from_secs(120),
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
    /// `dialer_sip_retransmissions_total{trunk}`); `None` is labelled `none`. Shared, so
    /// the dialer hands every call the label its trunk's metrics already hold (a reference
    /// count per call, not two copies of the name).
    pub trunk: Option<metrics::SharedString>,
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

impl CallEnd {
    /// An end without a Retry-After (every end but a final response's).
    pub fn new(outcome: Outcome, status: u16, reason: impl Into<String>, hangup: Hangup) -> Self {
        CallEnd {
            outcome,
            status,
            reason: reason.into(),
            hangup,
            retry_after: None,
        }
    }
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
    /// A new INVITE from an allowed source (the [`SourcePolicy`] judged it), already
    /// answered `100 Trying`. The application answers with [`super::Endpoint::ring`],
    /// [`super::Endpoint::accept`] or [`super::Endpoint::reject`]; `Answered` (when the ACK
    /// of our 2xx arrives), `Info` and `Ended` follow as for our own calls (`Ended` with
    /// outcome `canceled` and status 487 when the caller CANCELs first).
    Incoming {
        /// The call, in the same handle space as placed calls.
        call: CallHandle,
        /// What the INVITE said.
        invite: Box<IncomingCall>,
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

impl Event {
    /// The call an event belongs to (`None` for pings and registrations).
    pub fn call(&self) -> Option<CallHandle> {
        match self {
            Event::Progress { call, .. }
            | Event::Answered { call, .. }
            | Event::Info { call, .. }
            | Event::Incoming { call, .. }
            | Event::Ended { call, .. } => Some(*call),
            Event::OptionsReply { .. } | Event::Registration { .. } => None,
        }
    }
}

/// What an incoming INVITE said, read once at the edge for the application.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingCall {
    /// Where the INVITE came from (the trunk's proxy).
    pub source: SocketAddr,
    /// The transport it came over.
    pub transport: Transport,
    /// The Request-URI as written, e.g. `sip:+390771286891@dialer`.
    pub request_uri: String,
    /// The To URI.
    pub to_uri: String,
    /// The From URI.
    pub from_uri: String,
    /// The From display name, quotes removed.
    pub from_display: Option<String>,
    /// The first P-Asserted-Identity URI (RFC 3325), if any: trust it only from trunks.
    pub asserted_identity: Option<String>,
    /// The Privacy header (RFC 3323) as written (`id`, `none`, `header;id`...), if any.
    pub privacy: Option<String>,
    /// The SDP offer, parsed; `None` when the INVITE carried none (or none that parses).
    pub offer: Option<SessionDescription<'static>>,
}

/// Why [`super::Endpoint::accept`] could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// No incoming call has this handle (it ended, e.g. the caller canceled).
    #[error("no such incoming call")]
    UnknownCall,
    /// The call already has a final answer.
    #[error("the call was already answered or refused")]
    AlreadyAnswered,
    /// The INVITE held no SDP offer; offers in our 2xx (RFC 3261 §13.2.1 delayed offer) are
    /// not made. The call was refused with 488.
    #[error("the INVITE held no SDP offer")]
    NoOffer,
    /// Nothing in the offer can be answered (no common codec, no RTP/AVP audio); the call
    /// was refused with 488 Not Acceptable Here.
    #[error("the offer cannot be answered: {0}")]
    Unacceptable(SdpError),
}

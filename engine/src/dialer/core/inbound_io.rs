//! What goes in and out of the core for inbound calls: the INVITE as the core reads it,
//! the line's context the store looks up, the actions the driver executes and their
//! answers. Kept apart from `io.rs` so the outbound side's types stay as they are; the
//! core's `Action`, `StoreReply` and `DriverNote` carry these in one variant each.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::io::CallToken;
use crate::ivr::{Audio, PinHash, Voice};
use crate::media::MediaLatch;
use crate::model::dids::Flow;
use crate::model::registrations::NewRegistration;
use crate::sip::endpoint::CallHandle;
use crate::sip::sdp::{AnswerParams, NegotiatedMedia};

/// A new inbound INVITE as the core reads it (the endpoint's `IncomingCall`, the fields
/// the admission and the menus use).
#[derive(Debug, Clone, Default)]
pub struct InboundInvite {
    /// Where it came from (a trunk's proxy, or a stranger the source policy let through).
    pub source: Option<SocketAddr>,
    /// Request-URI, e.g. `sip:+390771286891@dialer`.
    pub request_uri: String,
    /// To URI.
    pub to_uri: String,
    /// From header value.
    pub from_uri: String,
    /// First P-Asserted-Identity.
    pub asserted_identity: Option<String>,
    /// Privacy header.
    pub privacy: Option<String>,
}

/// What the store knows of the line a call is for.
#[derive(Debug, Clone)]
pub struct LineContext {
    /// The number's tenant.
    pub tenant: String,
    /// Which menu answers.
    pub flow: Flow,
    /// The town's display name.
    pub town: String,
    /// The town's zones in menu order.
    pub zones: Vec<String>,
    /// The caller's registration, if any (its zone; None inside: the whole town).
    pub registered: Option<Option<String>>,
    /// The tenant's staff PIN.
    pub pin: Option<PinHash>,
    /// The tenant's prompts (templates, recordings, latest message).
    pub voice: Arc<Voice>,
}

/// What the driver does for an inbound call.
#[derive(Debug)]
pub enum InboundAction {
    /// `180 Ringing`.
    Ring(CallHandle),
    /// Refuse the INVITE with this status.
    Reject {
        /// The call.
        call: CallHandle,
        /// 403, 404, 486, 503.
        status: u16,
        /// Reason phrase.
        reason: &'static str,
    },
    /// Look up the number's line and the caller's registration; answer with
    /// [`InboundReply::Context`].
    Lookup {
        /// The call.
        token: CallToken,
        /// The called number, E.164.
        number: String,
        /// The caller, E.164 (None: withheld).
        caller: Option<String>,
    },
    /// Reserve an RTP port, write its number into `answer.rtp_port` and answer `200 OK`
    /// with an SDP answer from the trunk's codec preferences;
    /// [`DriverNote`](super::DriverNote) `Inbound(AcceptFailed)` if it fails.
    Accept {
        /// The call.
        token: CallToken,
        /// Its SIP handle.
        call: CallHandle,
        /// What we answer with (RTP port left 0).
        answer: Box<AnswerParams>,
    },
    /// Start the answered call's media with nothing playing.
    StartIdle {
        /// The call.
        token: CallToken,
        /// What the answer negotiated.
        media: Box<NegotiatedMedia>,
        /// The trunk's latch policy.
        latch: MediaLatch,
    },
    /// Play these pieces (replacing what plays); `MediaNote::Played` with `id` at the end.
    /// A piece of speech not rendered yet is rendered first and the driver answers with
    /// [`InboundReply::Rendered`] instead of playing.
    Play {
        /// The call.
        token: CallToken,
        /// This play's number within the call.
        id: u32,
        /// What to play.
        items: Vec<Audio>,
    },
    /// Capture the caller's audio, at most `max`.
    Record {
        /// The call.
        token: CallToken,
        /// Limit.
        max: Duration,
    },
    /// Stop capturing (the take arrives as `MediaNote::Recorded`).
    StopRecord(CallToken),
    /// Load this call's take as a prompt the call can play back ([`Audio::Take`]).
    PrepareTake {
        /// The call.
        token: CallToken,
        /// 16-bit PCM.
        pcm: Arc<Vec<i16>>,
        /// Its rate.
        rate: u32,
    },
    /// Store a registration (fire and forget; logged on failure).
    Register {
        /// Tenant.
        tenant: String,
        /// The registration.
        reg: NewRegistration,
    },
    /// Opt-out and erasure of a number (fire and forget).
    Unregister {
        /// Tenant.
        tenant: String,
        /// E.164.
        number: String,
    },
    /// Make the take a tenant prompt (levelled like uploads); answer with
    /// [`InboundReply::TakeKept`].
    KeepTake {
        /// The call.
        token: CallToken,
        /// Tenant.
        tenant: String,
        /// 16-bit PCM.
        pcm: Arc<Vec<i16>>,
        /// Its rate.
        rate: u32,
    },
    /// Create a campaign to the whole town with a kept take: started at once as an
    /// emergency, or left as a draft. Who, when and the audio's SHA-256 are recorded.
    Launch(Box<Launch>),
}

/// A campaign a staff member asked for by phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// Tenant.
    pub tenant: String,
    /// The kept take's prompt id.
    pub prompt: String,
    /// SHA-256 of the take's audio (hex).
    pub sha256: String,
    /// Who asked (E.164).
    pub caller: String,
    /// When, Unix ms.
    pub at_ms: i64,
    /// Send now as an emergency (true) or keep as a draft.
    pub now: bool,
}

/// Answers to inbound actions.
#[derive(Debug)]
pub enum InboundReply {
    /// The line of the called number; None: no such number (404). A store error is None
    /// too, logged by the driver.
    Context(CallToken, Option<Box<LineContext>>),
    /// The speech of play `id` was rendered (`ok`) or could not be (skipped).
    Rendered {
        /// The call.
        token: CallToken,
        /// The play.
        id: u32,
        /// Whether rendering worked.
        ok: bool,
    },
    /// The take became a prompt (or could not: None).
    TakeKept {
        /// The call.
        token: CallToken,
        /// Prompt id and SHA-256 of its audio.
        kept: Option<(String, String)>,
    },
    /// A campaign asked for by phone was created (and started if sent now): the core
    /// loads the running campaigns again.
    Launched(i64),
}

/// What the driver tells the core about an inbound call.
#[derive(Debug)]
pub enum InboundNote {
    /// The answer could not be sent (no RTP port, no acceptable codec).
    AcceptFailed(CallToken, String),
    /// Media (idle start, a recording) failed for an answered call: it is hung up.
    MediaFailed(CallToken, String),
}

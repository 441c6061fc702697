//! What goes in and out of the [`super::DialerCore`]: typed tokens, commands and their
//! replies, store replies, notes from the driver, and the actions the driver executes.
//!
//! Every asynchronous answer carries the token of the request it answers (a call, a
//! campaign, a trunk, a reply slot), so the core never matches replies by position.

use std::net::SocketAddr;

use serde::Serialize;

use super::super::campaign::CampaignError;
use super::super::config::ConfigError;
use super::super::trunk::TrunkConfig;
use crate::media::MediaLatch;
use crate::model::Outcome;
use crate::sip::endpoint::{CallHandle, CallParams, RegisterParams, RequestHandle};
use crate::sip::sdp::NegotiatedMedia;
use crate::store::{
    AttemptEnd, AttemptStart, AttemptSubject, CampaignRecord, ContactNext, DueContact, StoreError,
};

/// One attempt from pick to journaled end; also the media path's token for the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallToken(pub u64);

/// A trunk by its slot (slots are never reused, so a token stays valid after removal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrunkId(pub usize);

/// A campaign by its store id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CampaignId(pub i64);

/// Where the reply to a [`Command`] goes (the driver keeps the channel behind it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplyTo(pub u64);

/// Why the dialer refused something.
#[derive(Debug, thiserror::Error)]
pub enum DialerError {
    /// Store failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Invalid campaign.
    #[error(transparent)]
    Campaign(#[from] CampaignError),
    /// Socket or resolution failure.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Bad configuration.
    #[error("config: {0}")]
    Config(String),
    /// The dialer task has stopped.
    #[error("dialer stopped")]
    Stopped,
    /// A trunk's configuration is invalid (checked as the configuration loader does).
    #[error(transparent)]
    InvalidTrunk(#[from] ConfigError),
    /// A trunk's proxy does not resolve.
    #[error("trunk {name}: proxy {proxy}: {reason}")]
    TrunkProxy {
        /// The trunk.
        name: String,
        /// Its `proxy` key.
        proxy: String,
        /// Why it does not resolve.
        reason: String,
    },
    /// A trunk with this name already exists.
    #[error("trunk {0} exists")]
    TrunkExists(String),
    /// No trunk has this name.
    #[error("no trunk {0}")]
    NoTrunk(String),
}

/// Whether a trunk change creates, replaces or does either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    /// Fails if the name exists.
    Create,
    /// Fails if the name does not exist.
    Replace,
    /// Either.
    Upsert,
}

/// A trunk as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TrunkStatus {
    /// Name.
    pub name: String,
    /// Up by OPTIONS pings.
    pub up: bool,
    /// Calls in progress.
    pub active: u32,
    /// Configured channels.
    pub max_channels: u32,
    /// Configured CPS ceiling.
    pub cps_limit: f64,
    /// CPS now allowed by congestion control.
    pub cps_effective: f64,
    /// Attempts admitted since start.
    pub admitted: u64,
    /// Registered with the proxy now; `None` when the trunk does not register.
    pub registered: Option<bool>,
}

/// What the dialer is doing now.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DialerSnapshot {
    /// Trunks.
    pub trunks: Vec<TrunkStatus>,
    /// Calls from journal to end.
    pub calls_in_progress: usize,
    /// Campaigns being dialled.
    pub running_campaigns: Vec<i64>,
}

/// What the facade asks of the core.
#[derive(Debug)]
pub enum Command {
    /// Campaign states changed in the store (start, pause, resume, cancel): load the
    /// running ones again.
    Reload,
    /// Adds or replaces a trunk whose proxy the facade resolved.
    PutTrunk {
        /// The validated configuration.
        cfg: Box<TrunkConfig>,
        /// Its proxy's address.
        addr: SocketAddr,
        /// Create, replace or either.
        mode: PutMode,
    },
    /// Removes a trunk by name.
    RemoveTrunk(String),
    /// The configurations of the live trunks.
    Trunks,
    /// Trunks and calls now.
    Snapshot,
    /// Stop dialling, hang up, journal the ends, then reply and stop.
    Shutdown,
    /// Place one call outside any campaign (`dialer call`); the reply,
    /// [`Reply::Called`], comes when it has ended.
    Call(Box<super::DirectCall>),
    /// This node's shares of the trunks it shares with other nodes (a cluster beat);
    /// the reply is its load for the next beat.
    Shares(Vec<super::ShareUpdate>),
    /// Call a number to verify it (the web form's code); replies [`Reply::Verified`] when
    /// the call ends or the code is keyed.
    Verify(Box<super::verify::VerifyRequest>),
    /// Replaces the limits per destination prefix (configuration and store, global and
    /// tenants'); replies [`Reply::Done`].
    PrefixLimits(Vec<crate::dialer::prefix_limit::PrefixLimit>),
}

/// The answer to a [`Command`].
#[derive(Debug)]
pub enum Reply {
    /// A trunk change was applied or refused.
    Done(Result<(), DialerError>),
    /// Live trunk configurations.
    Trunks(Vec<TrunkConfig>),
    /// The snapshot.
    Snapshot(DialerSnapshot),
    /// Every call ended and was journaled: the driver may stop.
    ShutDown,
    /// A [`Command::Call`] ended.
    Called(Box<super::CallReport>),
    /// The node's load (answer to [`Command::Shares`]).
    Load(super::NodeLoad),
    /// How a verification call ended.
    Verified(super::verify::VerifyOutcome),
}

/// What a store future returned, with the token of the request.
#[derive(Debug)]
pub enum StoreReply {
    /// `begin_attempt` committed (or failed) for this call.
    Journaled(CallToken, Result<i64, StoreError>),
    /// The running campaigns (answer to [`Action::LoadCampaigns`]), without those whose
    /// prompt the media path cannot load (loading it is I/O: the driver does it).
    Campaigns(Vec<CampaignRecord>),
    /// Contacts due for a campaign (answer to [`Action::LoadDue`]); empty on error.
    Due(CampaignId, Vec<DueContact>),
    /// Whether the campaign has nothing pending nor dialling (answer to
    /// [`Action::CheckProgress`]).
    Progress(CampaignId, bool),
    /// The campaign was marked completed (answer to [`Action::CompleteCampaign`]).
    Completed(CampaignId),
    /// An answer to an [`Action::Inbound`].
    Inbound(super::inbound_io::InboundReply),
}

/// Results of actions the driver executed that the core must know.
#[derive(Debug)]
pub enum DriverNote {
    /// The INVITE of this call was handed to the socket; its SIP handle.
    Placed(CallToken, CallHandle),
    /// The INVITE could not be placed (no RTP port, SIP driver gone).
    PlaceFailed(CallToken, String),
    /// Media did not start for an answered call.
    MediaFailed(CallToken, String),
    /// The OPTIONS ping of a trunk left with this handle.
    PingSent(TrunkId, RequestHandle),
    /// The registration of a trunk started with this handle.
    RegisterStarted(TrunkId, RequestHandle),
    /// About an inbound call.
    Inbound(super::inbound_io::InboundNote),
}

/// One input of [`super::DialerCore::handle_all`], which takes several at one instant.
#[derive(Debug)]
pub enum Input {
    /// A SIP endpoint event.
    Sip(crate::sip::endpoint::Event),
    /// A media note.
    Media(crate::dialer::call_media::MediaNote),
    /// A store reply.
    Store(StoreReply),
    /// What the driver did with an action.
    Driver(DriverNote),
    /// A command, with where its reply goes: the commands queued when the driver wakes
    /// are taken in one pass of the core, as its other inputs are.
    Command(ReplyTo, Command),
}

/// What the core asks the driver to do, drained with
/// [`super::DialerCore::poll_action`].
#[derive(Debug)]
pub enum Action {
    /// Journal an attempt; answer with [`StoreReply::Journaled`].
    JournalBegin(CallToken, AttemptStart),
    /// Journal an answer (fire and forget; the store orders it before the end).
    JournalAnswered {
        /// Attempt id.
        attempt: i64,
        /// Unix ms.
        at_ms: i64,
    },
    /// Journal an attempt's end and where its contact goes (fire and forget); whose the
    /// attempt is (tenant, campaign, number) rides along for the call.completed event, so
    /// the outbox writer need not read it back (`None` if the campaign is gone).
    JournalFinish(AttemptEnd, ContactNext, Option<AttemptSubject>),
    /// Close a contact no trunk carries (fire and forget).
    CloseContact {
        /// Campaign.
        campaign: CampaignId,
        /// Contact id.
        contact: i64,
        /// Outcome.
        outcome: Outcome,
    },
    /// Load the running campaigns; answer with [`StoreReply::Campaigns`].
    LoadCampaigns,
    /// Load due contacts; answer with [`StoreReply::Due`].
    LoadDue {
        /// Campaign.
        campaign: CampaignId,
        /// Unix ms "now" for the store.
        now_ms: i64,
        /// At most this many.
        limit: u32,
    },
    /// Ask whether a campaign is done; answer with [`StoreReply::Progress`].
    CheckProgress(CampaignId),
    /// Mark a campaign completed; answer with [`StoreReply::Completed`].
    CompleteCampaign {
        /// Campaign.
        campaign: CampaignId,
        /// Unix ms.
        at_ms: i64,
    },
    /// Tell waiters that a campaign completed.
    CampaignDone(CampaignId),
    /// Place an INVITE with this Call-ID. The driver reserves an RTP port for the call,
    /// writes its number into `params.offer.rtp_port` (binding is I/O), keeps it until
    /// [`Action::StartMedia`] or [`Action::ReleasePort`], and answers with
    /// [`DriverNote::Placed`] or [`DriverNote::PlaceFailed`].
    Invite {
        /// The call.
        call: CallToken,
        /// Its journaled Call-ID.
        call_id: String,
        /// Everything the INVITE says.
        params: Box<CallParams>,
    },
    /// Hang a call up (CANCEL or BYE).
    Hangup(CallHandle),
    /// Play the campaign's prompt on the call's reserved port.
    StartMedia {
        /// The call.
        call: CallToken,
        /// What the answer negotiated.
        media: Box<NegotiatedMedia>,
        /// Prompt to play.
        prompt: String,
        /// Plays.
        play_count: u32,
        /// Where the callee's media is accepted from (the trunk's `media_latch`).
        latch: MediaLatch,
    },
    /// Answer a call in silence and listen for an answering machine (a campaign with
    /// `amd`): start its media idle on the reserved port, then analyse the callee's audio.
    StartScreening {
        /// The call.
        call: CallToken,
        /// What the answer negotiated.
        media: Box<NegotiatedMedia>,
        /// Where the callee's media is accepted from (the trunk's `media_latch`).
        latch: MediaLatch,
        /// The detector's parameters.
        amd: Box<crate::media::amd::AmdConfig>,
    },
    /// Replace what an answered call plays with these items, from the first frame of the
    /// first; the media path notes `Played { id }` when the last has ended.
    Play {
        /// The call.
        call: CallToken,
        /// What to play.
        items: Vec<super::listen::PlayItem>,
        /// Which playlist this is, for its `Played` note.
        id: u32,
    },
    /// Stop a call's media (a stopped note follows).
    StopMedia(CallToken),
    /// Free the RTP port reserved for a call that ended unanswered.
    ReleasePort(CallToken),
    /// Send an OPTIONS ping; answer with [`DriverNote::PingSent`].
    Ping {
        /// The trunk.
        trunk: TrunkId,
        /// Its proxy.
        dest: SocketAddr,
        /// Request-URI.
        uri: String,
    },
    /// Start a registration; answer with [`DriverNote::RegisterStarted`].
    Register(TrunkId, Box<RegisterParams>),
    /// End a registration.
    Unregister(RequestHandle),
    /// The addresses that may send new requests: the live trunks' proxies and their
    /// `inbound_from` blocks (strangers are dropped or refused, `[sip] strangers`).
    /// Emitted when the set of trunks changes.
    AllowSources(Vec<crate::sip::endpoint::Cidr>),
    /// Set `dialer_campaign_contacts` from the progress of these campaigns.
    ContactGauges(Vec<i64>),
    /// Answer a command.
    Reply(ReplyTo, Reply),
    /// Something for an inbound call.
    Inbound(super::inbound_io::InboundAction),
}

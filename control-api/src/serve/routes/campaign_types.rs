//! The JSON shapes of `/v1/campaigns`: what a client sends to create a campaign and what
//! it reads back (the campaign with its progress, attempt records).

use std::collections::BTreeMap;

use engine::store::{AttemptRecord, Tally};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

/// Who is called: `{"all": true}` or zones and/or streets.
#[derive(Debug, Deserialize, Serialize, ToSchema, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct TargetIn {
    /// Every contact of the town.
    #[serde(default)]
    pub all: bool,
    /// Zones.
    #[serde(default)]
    pub zones: Vec<String>,
    /// Streets.
    #[serde(default)]
    pub streets: Vec<String>,
}

/// A retry rule.
#[derive(Debug, Deserialize, Serialize, ToSchema, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct RuleIn {
    /// Seconds before the next attempt.
    pub interval_s: u64,
    /// Attempts in all, the first included (1..=10).
    pub max_attempts: u32,
}

/// Retry rules per outcome (absent: the configuration's).
#[derive(Debug, Deserialize, Serialize, ToSchema, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RetryIn {
    /// After `busy`.
    pub busy: Option<RuleIn>,
    /// After `no_answer`.
    pub no_answer: Option<RuleIn>,
    /// After `failed`.
    pub failed: Option<RuleIn>,
    /// After `rejected`.
    pub rejected: Option<RuleIn>,
}

/// Calling window (normal campaigns; emergency ones ignore it).
#[derive(Debug, Deserialize, Serialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct WindowIn {
    /// Call at any hour.
    #[serde(default)]
    pub always: bool,
    /// IANA time zone (default Europe/Rome).
    pub tz: Option<String>,
    /// Days `mon`..`sun` (default mon–sat).
    pub days: Option<Vec<String>>,
    /// `HH:MM` (default 09:00).
    pub start: Option<String>,
    /// `HH:MM` (default 20:00).
    pub end: Option<String>,
}

/// A new campaign.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    /// Unique per tenant.
    pub name: String,
    /// Prompt id.
    pub prompt_id: String,
    /// Who is called.
    pub target: TargetIn,
    /// `normal` (default) or `emergency`.
    #[serde(default)]
    pub priority: Option<String>,
    /// Caller ID (E.164) unless the trunk forces one.
    #[serde(default)]
    pub caller_id: Option<String>,
    /// Ring timeout, seconds.
    #[serde(default)]
    pub ring_timeout_s: Option<u64>,
    /// Times the message plays.
    #[serde(default)]
    pub play_count: Option<u32>,
    /// Retry rules.
    #[serde(default)]
    pub retry: Option<RetryIn>,
    /// Calling window.
    #[serde(default)]
    pub window: Option<WindowIn>,
    /// Key confirming the message was heard (default "1"; null disables).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub confirm_digit: Option<Option<KeyIn>>,
    /// Key replaying the message from its start (default "2"; null disables).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub repeat_digit: Option<Option<KeyIn>>,
    /// Key asking to be called no more, confirmed with the confirm key (default "9",
    /// normal campaigns only; null disables).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub optout_digit: Option<Option<KeyIn>>,
    /// Replays the repeat key may ask for per call (0..=5, default 2).
    #[serde(default)]
    pub max_repeats: Option<u32>,
    /// Prompt played before the message (the town's greeting).
    #[serde(default)]
    pub pre_roll_prompt_id: Option<String>,
    /// Prompt played after the message ("premi 1 per confermare l'ascolto").
    #[serde(default)]
    pub post_roll_prompt_id: Option<String>,
    /// Prompt acknowledging a confirmation ("grazie, confermato"; two tones without it).
    #[serde(default)]
    pub confirmed_prompt_id: Option<String>,
    /// When a contact is done: `answered` (default), `heard` or `confirmed`.
    #[serde(default)]
    pub until: Option<String>,
    /// Answering-machine detection: `{"policy": "drop" | "hangup" | "retry_later", ...}`
    /// with detector parameters in ms (`greeting_ms`, `total_analysis_ms`, ...).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub amd: Option<serde_json::Value>,
    /// A message per zone or street; contacts none matches hear `prompt_id`.
    #[serde(default)]
    pub messages: Option<Vec<MessageIn>>,
}

/// A key: `"1"` or `1`.
#[derive(Debug, Deserialize, Serialize, Clone)]
#[serde(untagged)]
pub enum KeyIn {
    /// `"1"`, `"*"`, `"#"`.
    Text(String),
    /// `1`.
    Number(u8),
}

impl KeyIn {
    /// The one key character, if it is one.
    pub fn key(&self) -> Option<char> {
        let s = match self {
            KeyIn::Text(s) => s.clone(),
            KeyIn::Number(n) => n.to_string(),
        };
        let mut c = s.chars();
        match (c.next(), c.next()) {
            (Some(k), None) => Some(k),
            _ => None,
        }
    }
}

/// Tells a field given as null (`Some(None)`) from one left out (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A message for some zones and streets.
#[derive(Debug, Deserialize, Serialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct MessageIn {
    /// Zones.
    #[serde(default)]
    pub zones: Vec<String>,
    /// Streets.
    #[serde(default)]
    pub streets: Vec<String>,
    /// Prompt id.
    pub prompt_id: String,
}

/// One message of a campaign with its estimate and progress.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageOut {
    /// Prompt id.
    pub prompt_id: String,
    /// Zones it is for (empty for the default message).
    pub zones: Vec<String>,
    /// Streets it is for.
    pub streets: Vec<String>,
    /// Whether this is the default message (contacts no other message matches).
    pub default: bool,
    /// Contacts it would reach now (opted-out excluded).
    pub estimate_contacts: u64,
    /// The prompt's length, ms (0 when unknown).
    pub duration_ms: i64,
    /// Contacts hearing it (after start): targeted, of which finished, answered, heard,
    /// confirmed, partial, machine.
    #[serde(flatten)]
    pub counts: Tally,
}

/// How long a campaign should take.
#[derive(Debug, Serialize, ToSchema)]
pub struct Estimate {
    /// Contacts targeted now (opted-out excluded).
    pub contacts: u64,
    /// Seconds at the current trunk capacity (null without trunks).
    pub duration_s: Option<f64>,
}

/// A campaign.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignOut {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// `draft`, `running`, `paused`, `completed`, `canceled`.
    pub state: String,
    /// Prompt id.
    pub prompt_id: String,
    /// Target.
    pub target: TargetIn,
    /// Priority.
    pub priority: String,
    /// Caller ID.
    pub caller_id: Option<String>,
    /// Ring timeout.
    pub ring_timeout_s: Option<u64>,
    /// Plays.
    pub play_count: u32,
    /// Confirm key (null: none).
    pub confirm_digit: Option<String>,
    /// Repeat key (null: none).
    pub repeat_digit: Option<String>,
    /// Opt-out key (null: none, always on emergency campaigns).
    pub optout_digit: Option<String>,
    /// Replays per call.
    pub max_repeats: u32,
    /// Pre-roll prompt.
    pub pre_roll_prompt_id: Option<String>,
    /// Post-roll prompt.
    pub post_roll_prompt_id: Option<String>,
    /// Acknowledgement prompt.
    pub confirmed_prompt_id: Option<String>,
    /// `answered`, `heard` or `confirmed`.
    pub until: String,
    /// Machine detection (null: none).
    #[schema(value_type = Option<Object>)]
    pub amd: Option<serde_json::Value>,
    /// Per-message estimate and progress, the default message first.
    pub messages: Vec<MessageOut>,
    /// Unix ms.
    pub created_ms: i64,
    /// Estimate at the current trunk capacity.
    pub estimate: Estimate,
    /// Contacts finished per last outcome, plus `pending` and `in_progress`, and contacts by
    /// best result: `heard` (confirmed included), `confirmed`, `partial`, `machine`.
    pub totals: BTreeMap<String, u64>,
    /// Per zone.
    pub by_zone: BTreeMap<String, Tally>,
    /// Finished share, 0..1.
    pub progress: f64,
    /// Attempts per second over the last minute.
    pub rate_cps: f64,
    /// Seconds left at the current rate (null when unknown).
    pub eta_s: Option<f64>,
    /// When the counts above were taken, Unix ms: a large campaign's counts are shared by
    /// the views of the next few seconds (at most 10 s old; see `campaign_counts`).
    pub counted_ms: i64,
}

/// An attempt record.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallOut {
    /// Attempt id.
    pub id: i64,
    /// Number (empty after erasure).
    pub number: String,
    /// Trunk.
    pub trunk: String,
    /// `dialing` or `final`.
    pub state: String,
    /// Outcome word.
    pub outcome: Option<String>,
    /// SIP status.
    pub sip_status: Option<i64>,
    /// SIP reason.
    pub sip_reason: Option<String>,
    /// Unix ms.
    pub started_ms: i64,
    /// Unix ms.
    pub answered_ms: Option<i64>,
    /// Unix ms.
    pub ended_ms: Option<i64>,
    /// Post-dial delay, ms.
    pub pdd_ms: Option<i64>,
    /// Duration, ms.
    pub duration_ms: Option<i64>,
    /// Share of the message played, per mille.
    pub played_permille: Option<i64>,
    /// Digits pressed.
    pub dtmf: Option<String>,
    /// `heard`, `confirmed`, `partial` or `machine` (answered calls).
    pub result: Option<String>,
    /// When an answering machine's beep ended, ms after the answer (campaigns with `amd`).
    pub beep_ms: Option<i64>,
}

impl From<AttemptRecord> for CallOut {
    fn from(a: AttemptRecord) -> Self {
        CallOut {
            id: a.id,
            number: a.number,
            trunk: a.trunk,
            state: a.state.as_str().to_string(),
            outcome: a.outcome.map(|o| o.as_str().to_string()),
            sip_status: a.sip_status,
            sip_reason: a.sip_reason,
            started_ms: a.started_ms,
            answered_ms: a.answered_ms,
            ended_ms: a.ended_ms,
            pdd_ms: a.pdd_ms,
            duration_ms: a.duration_ms,
            played_permille: a.played_permille,
            dtmf: a.dtmf,
            result: a.result.map(|r| r.as_str().to_string()),
            beep_ms: a.beep_ms,
        }
    }
}

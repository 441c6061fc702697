//! The JSON shapes of `/v1/campaigns`: what a client sends to create a campaign and what
//! it reads back (the campaign with its progress, attempt records).

use std::collections::BTreeMap;

use engine::store::AttemptRecord;
use serde::{Deserialize, Serialize};
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
}

/// How long a campaign should take.
#[derive(Debug, Serialize, ToSchema)]
pub struct Estimate {
    /// Contacts targeted now (opted-out excluded).
    pub contacts: u64,
    /// Seconds at the current trunk capacity (null without trunks).
    pub duration_s: Option<f64>,
}

/// Per-zone counts.
#[derive(Debug, Serialize, ToSchema, Default)]
pub struct ZoneProgress {
    /// Targeted contacts.
    pub targeted: u64,
    /// Finished contacts.
    pub done: u64,
    /// Answered contacts.
    pub answered: u64,
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
    /// Unix ms.
    pub created_ms: i64,
    /// Estimate at the current trunk capacity.
    pub estimate: Estimate,
    /// Contacts finished per last outcome, plus `pending` and `in_progress`.
    pub totals: BTreeMap<String, u64>,
    /// Per zone.
    pub by_zone: BTreeMap<String, ZoneProgress>,
    /// Finished share, 0..1.
    pub progress: f64,
    /// Attempts per second over the last minute.
    pub rate_cps: f64,
    /// Seconds left at the current rate (null when unknown).
    pub eta_s: Option<f64>,
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
        }
    }
}

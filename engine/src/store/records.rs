//! What the store takes and gives for campaigns and the attempt journal.

use serde::Serialize;

use crate::model::{
    AttemptState, CallResult, CampaignSpec, CampaignState, ContactState, NumberType, Outcome,
};

/// A stored campaign.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignRecord {
    /// Id.
    pub id: i64,
    /// Its definition.
    pub spec: CampaignSpec,
    /// Current state.
    pub state: CampaignState,
    /// Creation time, Unix ms.
    pub created_ms: i64,
}

/// A contact due for an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueContact {
    /// Contact id.
    pub contact: i64,
    /// E.164.
    pub number: String,
    /// Type.
    pub number_type: NumberType,
    /// Counted attempts so far.
    pub attempts: u32,
    /// The per-zone message it hears (index into the campaign's `messages`; `None`: the
    /// default prompt).
    pub message: Option<u32>,
}

/// What is journaled before the INVITE leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptStart {
    /// Campaign.
    pub campaign: i64,
    /// Contact.
    pub contact: i64,
    /// E.164 number dialled.
    pub number: String,
    /// The INVITE's Call-ID.
    pub call_id: String,
    /// Trunk name.
    pub trunk: String,
    /// Unix ms.
    pub started_ms: i64,
}

/// What is journaled when an attempt ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptEnd {
    /// Attempt id from [`super::Store::begin_attempt`].
    pub attempt: i64,
    /// What became of it.
    pub outcome: Outcome,
    /// Final SIP status (0: none).
    pub sip_status: u16,
    /// Reason phrase.
    pub sip_reason: String,
    /// Whether it counts against the citizen's retry allowance.
    pub counted: bool,
    /// Unix ms.
    pub ended_ms: i64,
    /// Post-dial delay (INVITE to first ringing or answer), ms.
    pub pdd_ms: Option<i64>,
    /// Answered call duration, ms.
    pub duration_ms: Option<i64>,
    /// Share of the message played, per mille.
    pub played_permille: Option<i64>,
    /// DTMF digits pressed.
    pub dtmf: Option<String>,
    /// Heard, confirmed, partial or machine (answered calls only).
    pub result: Option<CallResult>,
    /// The campaign's `until` is met: the contact is done for good in the campaign
    /// whatever a late attempt says.
    pub satisfied: bool,
    /// The resident confirmed the opt-out: the number is never called again.
    pub opt_out: bool,
    /// When a machine's beep ended, ms of the callee's audio after the answer.
    pub beep_ms: Option<i64>,
}

impl AttemptEnd {
    /// An end with only what every attempt has; timings, digits and result unset, an
    /// answer satisfying the campaign (as before `until` existed).
    pub fn new(attempt: i64, outcome: Outcome, sip_status: u16, sip_reason: &str) -> Self {
        AttemptEnd {
            attempt,
            outcome,
            sip_status,
            sip_reason: sip_reason.to_string(),
            counted: true,
            ended_ms: 0,
            pdd_ms: None,
            duration_ms: None,
            played_permille: None,
            dtmf: None,
            result: None,
            satisfied: outcome == Outcome::Answered,
            opt_out: false,
            beep_ms: None,
        }
    }
}

/// Where the contact goes after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactNext {
    /// Due again at this Unix ms.
    RetryAt(i64),
    /// Finished in this campaign.
    Done,
}

impl ContactNext {
    /// The contact row's state and due time it stands for (both backends' `finish`).
    pub fn row(self) -> (ContactState, i64) {
        match self {
            ContactNext::RetryAt(ms) => (ContactState::Pending, ms),
            ContactNext::Done => (ContactState::Done, 0),
        }
    }
}

/// An attempt left `dialing` by a crash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dangling {
    /// Attempt id.
    pub attempt: i64,
    /// Campaign.
    pub campaign: i64,
    /// Contact.
    pub contact: i64,
    /// Whether its answer was journaled (the message was being played).
    pub answered: bool,
    /// Counted attempts of the contact before this one.
    pub attempts: u32,
}

/// A journaled attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttemptRecord {
    /// Id.
    pub id: i64,
    /// Campaign.
    pub campaign: i64,
    /// Contact.
    pub contact: i64,
    /// Number (empty after the contact's erasure).
    pub number: String,
    /// Call-ID.
    pub call_id: String,
    /// Trunk.
    pub trunk: String,
    /// Dialing, or final once the outcome is journaled.
    pub state: AttemptState,
    /// What became of it (none while dialing).
    pub outcome: Option<Outcome>,
    /// SIP status.
    pub sip_status: Option<i64>,
    /// SIP reason.
    pub sip_reason: Option<String>,
    /// Counted against the allowance.
    pub counted: bool,
    /// Unix ms.
    pub started_ms: i64,
    /// Unix ms.
    pub answered_ms: Option<i64>,
    /// Unix ms.
    pub ended_ms: Option<i64>,
    /// ms.
    pub pdd_ms: Option<i64>,
    /// ms.
    pub duration_ms: Option<i64>,
    /// Per mille.
    pub played_permille: Option<i64>,
    /// Digits.
    pub dtmf: Option<String>,
    /// Heard, confirmed, partial or machine (answered calls only).
    pub result: Option<CallResult>,
    /// When a machine's beep ended, ms of the callee's audio after the answer.
    pub beep_ms: Option<i64>,
}

/// Counts for a campaign's progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// Targeted contacts.
    pub targeted: u64,
    /// Waiting for a (next) attempt.
    pub pending: u64,
    /// In a call now.
    pub dialing: u64,
    /// Finished.
    pub done: u64,
    /// Contacts whose message was answered.
    pub answered: u64,
    /// Attempts journaled.
    pub attempts: u64,
}

/// Contacts by their best call result. `heard` counts the confirmed too (a confirmation
/// says the message was heard).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResultCounts {
    /// Heard the whole message or confirmed.
    pub heard: u64,
    /// Confirmed with the key.
    pub confirmed: u64,
    /// Hung up before the end (and never heard it whole).
    pub partial: u64,
    /// An answering machine took the call.
    pub machine: u64,
}

impl ResultCounts {
    /// Adds `n` contacts whose best result is `r`.
    pub fn add(&mut self, r: CallResult, n: u64) {
        match r {
            CallResult::Heard => self.heard += n,
            CallResult::Confirmed => {
                self.heard += n;
                self.confirmed += n;
            }
            CallResult::Partial => self.partial += n,
            CallResult::Machine => self.machine += n,
        }
    }
}

/// A campaign's figures over some of its targeted contacts (a zone's, a message's); the
/// API shows them as they are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tally {
    /// Targeted contacts.
    pub targeted: u64,
    /// Of which finished.
    pub done: u64,
    /// Of which answered.
    pub answered: u64,
    /// Of which heard, confirmed, partial, machine.
    #[serde(flatten)]
    pub results: ResultCounts,
}

impl Tally {
    /// Adds a group of contacts.
    fn add(&mut self, g: &ContactGroupCount) {
        self.targeted += g.n;
        self.done += if g.done { g.n } else { 0 };
        self.answered += if g.answered { g.n } else { 0 };
        if let Some(r) = g.result {
            self.results.add(r, g.n);
        }
    }
}

/// A campaign's figures per zone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZoneCounts {
    /// Zone name.
    pub zone: String,
    /// Its contacts' figures.
    pub counts: Tally,
}

/// A campaign's figures per message (per-zone messages; `None` is the default prompt).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageCounts {
    /// Index into the campaign's `messages`; `None`: its default prompt.
    pub message: Option<u32>,
    /// Figures of the contacts hearing it.
    pub counts: Tally,
}

/// One group of a campaign's targeted contacts, as the stores count them: zone, message,
/// best result, finished, answered, and how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactGroupCount {
    /// Zone name.
    pub zone: String,
    /// Message index.
    pub message: Option<u32>,
    /// Best result so far.
    pub result: Option<CallResult>,
    /// Finished.
    pub done: bool,
    /// Answered at least once.
    pub answered: bool,
    /// Contacts in the group.
    pub n: u64,
}

/// A row of the stores' contact-group query: zone, message, result word, done,
/// answered, count.
pub type GroupRow = (String, Option<i64>, Option<String>, bool, bool, i64);

impl ContactGroupCount {
    /// Reads a row of the group query (a result word no model knows is corruption).
    pub fn from_row(
        (zone, message, result, done, answered, n): GroupRow,
    ) -> Result<Self, super::StoreError> {
        let result = match result {
            None => None,
            Some(w) => Some(
                CallResult::parse(&w)
                    .ok_or_else(|| super::StoreError::Corrupt(format!("result {w:?}")))?,
            ),
        };
        Ok(ContactGroupCount {
            zone,
            message: message.map(|m| m as u32),
            result,
            done,
            answered,
            n: n as u64,
        })
    }
}

/// An SQL expression ranking the result word in column `col` as [`CallResult::rank`]
/// does (0 for none), so a contact's stored result only ever gets better.
pub fn result_rank_sql(col: &str) -> String {
    let whens: Vec<String> = CallResult::ALL
        .iter()
        .map(|r| format!("WHEN '{}' THEN {}", r.as_str(), r.rank()))
        .collect();
    format!("(CASE {col} {} ELSE 0 END)", whens.join(" "))
}

/// Folds group counts into per-zone and per-message figures (each sorted by its key) and
/// the campaign's result totals: one definition for both stores.
pub fn fold_groups(
    groups: &[ContactGroupCount],
) -> (Vec<ZoneCounts>, Vec<MessageCounts>, ResultCounts) {
    use std::collections::BTreeMap;
    let mut zones: BTreeMap<&str, ZoneCounts> = BTreeMap::new();
    let mut messages: BTreeMap<Option<u32>, MessageCounts> = BTreeMap::new();
    let mut totals = ResultCounts::default();
    for g in groups {
        let z = zones.entry(&g.zone).or_insert_with(|| ZoneCounts {
            zone: g.zone.clone(),
            ..Default::default()
        });
        z.counts.add(g);
        let m = messages.entry(g.message).or_insert_with(|| MessageCounts {
            message: g.message,
            ..Default::default()
        });
        m.counts.add(g);
        if let Some(r) = g.result {
            totals.add(r, g.n);
        }
    }
    (
        zones.into_values().collect(),
        messages.into_values().collect(),
        totals,
    )
}

/// A campaign's counts for its report, read in one go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CampaignReport {
    /// Contacts by state and attempts, as [`crate::store::Store::progress`] counts them.
    pub progress: Progress,
    /// Finished contacts per last outcome (outcomes with none are absent).
    pub outcomes: Vec<(Outcome, u64)>,
    /// Per zone, by zone name.
    pub zones: Vec<ZoneCounts>,
    /// Per message, the default prompt first.
    pub messages: Vec<MessageCounts>,
    /// Contacts by best result.
    pub results: ResultCounts,
    /// Attempts started at or after the `since_ms` asked for.
    pub recent_attempts: u64,
}

/// Result of a contacts import.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// New contacts.
    pub inserted: u64,
    /// Existing numbers whose address or opt-out was updated.
    pub updated: u64,
}

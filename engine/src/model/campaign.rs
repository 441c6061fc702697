//! Campaigns: who is called (target), how urgently (priority), when (calling window), with
//! what (prompt, caller ID, ring timeout, play count), how persistently (retry policy), and
//! the life cycle draft → running → paused → completed or canceled.

use std::fmt;

use serde::{Deserialize, Serialize};

pub use super::delivery::{Delivery, ZoneMessage, MAX_MESSAGES};
use super::heard::Keys;
use super::retry::RetryPolicy;
use super::window::{CallingWindow, Window, WindowError};

/// Most times a message may play on answer. The API has always said 1..=5 (and is the
/// documented surface); the engine alone allowed 10. Five plays of an alert already hold
/// a channel for five message lengths while other residents wait for one.
pub const MAX_PLAY_COUNT: u32 = 5;
/// Ring timeout bounds, seconds: shorter loses residents who walk to the phone, longer
/// holds channels on phones nobody answers.
pub const RING_TIMEOUT_S: std::ops::RangeInclusive<u64> = 5..=120;
/// Longest campaign name, bytes.
pub const MAX_NAME_LEN: usize = 200;

/// Emergency campaigns take trunk capacity before normal ones and ignore calling windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Civil-protection alerts.
    Emergency,
    /// Everything else.
    Normal,
}

impl Priority {
    /// The stored word.
    pub fn as_str(&self) -> &'static str {
        match self {
            Priority::Emergency => "emergency",
            Priority::Normal => "normal",
        }
    }

    /// Parses a stored word.
    pub fn parse(s: &str) -> Option<Priority> {
        match s {
            "emergency" => Some(Priority::Emergency),
            "normal" => Some(Priority::Normal),
            _ => None,
        }
    }
}

/// Who a campaign calls: everybody, or the union of some zones and streets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Target {
    /// Every contact of the tenant.
    pub all: bool,
    /// Zone names.
    pub zones: Vec<String>,
    /// Street names.
    pub streets: Vec<String>,
}

impl Target {
    /// Whether the target selects nobody (an error: a campaign must call someone).
    pub fn is_empty(&self) -> bool {
        !self.all && self.zones.is_empty() && self.streets.is_empty()
    }

    /// Whether a contact in `zone` on `street` is targeted (case-insensitive).
    pub fn matches(&self, zone: &str, street: &str) -> bool {
        let eq = |a: &str, b: &str| a.trim().eq_ignore_ascii_case(b.trim());
        self.all
            || self.zones.iter().any(|z| eq(z, zone))
            || self.streets.iter().any(|s| eq(s, street))
    }
}

/// Campaign state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CampaignState {
    /// Created, not started.
    Draft,
    /// Calling.
    Running,
    /// Stopped for now; in-progress calls finish.
    Paused,
    /// Every targeted contact is done.
    Completed,
    /// Stopped for good by an operator.
    Canceled,
}

impl CampaignState {
    /// The stored word.
    pub fn as_str(&self) -> &'static str {
        match self {
            CampaignState::Draft => "draft",
            CampaignState::Running => "running",
            CampaignState::Paused => "paused",
            CampaignState::Completed => "completed",
            CampaignState::Canceled => "canceled",
        }
    }

    /// Parses a stored word.
    pub fn parse(s: &str) -> Option<CampaignState> {
        Some(match s {
            "draft" => CampaignState::Draft,
            "running" => CampaignState::Running,
            "paused" => CampaignState::Paused,
            "completed" => CampaignState::Completed,
            "canceled" => CampaignState::Canceled,
            _ => return None,
        })
    }

    /// Whether `self → to` is a legal transition: some action of [`CampaignState::after`]
    /// leads there.
    pub fn can_go(self, to: CampaignState) -> bool {
        CampaignAction::ALL
            .iter()
            .any(|a| self.after(*a) == Some(to))
    }

    /// THE transition table: the state an action leads to from `self`, `None` when the
    /// action is not allowed in this state.
    pub fn after(self, action: CampaignAction) -> Option<CampaignState> {
        use CampaignAction as A;
        use CampaignState::*;
        match (self, action) {
            (Draft, A::Start) => Some(Running),
            (Running, A::Pause) => Some(Paused),
            (Paused, A::Resume) => Some(Running),
            (Running, A::Complete) => Some(Completed),
            (Draft | Running | Paused, A::Cancel) => Some(Canceled),
            _ => None,
        }
    }

    /// Whether no action leads anywhere from here.
    pub fn is_final(self) -> bool {
        matches!(self, CampaignState::Completed | CampaignState::Canceled)
    }
}

/// What moves a campaign from one state to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CampaignAction {
    /// An operator starts a draft: its targeted contacts are selected and called.
    Start,
    /// An operator pauses: no new calls, calls in progress finish.
    Pause,
    /// An operator resumes a paused campaign.
    Resume,
    /// An operator stops it for good.
    Cancel,
    /// The dialer found every targeted contact done.
    Complete,
}

impl CampaignAction {
    /// Every action.
    pub const ALL: [CampaignAction; 5] = [
        CampaignAction::Start,
        CampaignAction::Pause,
        CampaignAction::Resume,
        CampaignAction::Cancel,
        CampaignAction::Complete,
    ];

    /// The verb, as in the API's paths (`/v1/campaigns/{id}/start`).
    pub fn as_str(&self) -> &'static str {
        match self {
            CampaignAction::Start => "start",
            CampaignAction::Pause => "pause",
            CampaignAction::Resume => "resume",
            CampaignAction::Cancel => "cancel",
            CampaignAction::Complete => "complete",
        }
    }
}

impl fmt::Display for CampaignState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a campaign definition is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CampaignError {
    /// The target selects nobody.
    #[error("target: {{\"all\": true}} or some zones or streets")]
    EmptyTarget,
    /// The calling window is invalid.
    #[error("window: {0}")]
    Window(#[from] WindowError),
    /// An illegal state change.
    #[error("campaign cannot go from {0} to {1}")]
    Transition(CampaignState, CampaignState),
    /// Some value is out of range; the text names the field.
    #[error("{0}")]
    Invalid(String),
}

/// What an operator gives to create a campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignSpec {
    /// The tenant (town).
    pub tenant: String,
    /// A name, unique per tenant.
    pub name: String,
    /// Prompt (message) identifier or path.
    pub prompt: String,
    /// Who is called.
    pub target: Target,
    /// Emergency or normal.
    pub priority: Priority,
    /// Calling window; `None` uses the default for normal campaigns. Emergency campaigns
    /// ignore it.
    #[serde(default)]
    pub window: Option<CallingWindow>,
    /// Caller ID shown to residents (E.164), unless the trunk forces its own.
    #[serde(default)]
    pub caller_id: Option<String>,
    /// Ring timeout in seconds (the trunk's when absent).
    #[serde(default)]
    pub ring_timeout_s: Option<u64>,
    /// How many times the message plays on answer.
    #[serde(default = "one")]
    pub play_count: u32,
    /// Retry rules.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Keys, pre- and post-roll, `until`, machine detection and per-zone messages (flat in
    /// the JSON, like the fields above).
    #[serde(flatten)]
    pub delivery: Delivery,
}

fn one() -> u32 {
    1
}

impl CampaignSpec {
    /// THE campaign validation, for the API and the engine alike: tenant and name
    /// (1..=200 bytes), a non-empty target, play count 1..=[`MAX_PLAY_COUNT`], ring timeout
    /// in [`RING_TIMEOUT_S`], retry rules 1..=10 attempts at most a week apart, and a
    /// calling window that compiles.
    pub fn validate(&self) -> Result<(), CampaignError> {
        let bad = |m: String| Err(CampaignError::Invalid(m));
        if self.tenant.trim().is_empty() {
            return bad("tenant: required".into());
        }
        let name = self.name.trim();
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return bad(format!("name: 1-{MAX_NAME_LEN} characters"));
        }
        if self.target.is_empty() {
            return Err(CampaignError::EmptyTarget);
        }
        if !(1..=MAX_PLAY_COUNT).contains(&self.play_count) {
            return bad(format!("play_count: 1..={MAX_PLAY_COUNT}"));
        }
        if let Some(r) = self.ring_timeout_s {
            if !RING_TIMEOUT_S.contains(&r) {
                return bad(format!(
                    "ring_timeout_s: {}..={}",
                    RING_TIMEOUT_S.start(),
                    RING_TIMEOUT_S.end()
                ));
            }
        }
        for (what, rule) in self.retry.named() {
            if !rule.is_valid() {
                return bad(format!(
                    "retry.{what}: max_attempts 1..={}, interval_s at most a week",
                    super::retry::MAX_ATTEMPTS
                ));
            }
        }
        if let Some(w) = &self.window {
            w.compile()?;
        }
        self.effective_window()?;
        self.delivery.validate()
    }

    /// The keys as they apply to calls: opt-out only on normal campaigns.
    pub fn keys(&self) -> Keys {
        Keys {
            confirm: self.delivery.confirm_digit,
            repeat: self.delivery.repeat_digit,
            optout: self
                .delivery
                .optout_digit
                .filter(|_| self.priority == Priority::Normal),
            max_repeats: self.delivery.max_repeats,
        }
    }

    /// Which message a contact in `zone` on `street` hears: the index of the first of
    /// `messages` that matches, `None` for the default `prompt`.
    pub fn message_for(&self, zone: &str, street: &str) -> Option<usize> {
        self.delivery
            .messages
            .iter()
            .position(|m| m.matches(zone, street))
    }

    /// Every prompt the campaign's calls may play: the default message, the per-zone ones,
    /// the rolls and the acknowledgement (each loaded before the campaign is dialled).
    pub fn prompts(&self) -> Vec<&str> {
        let d = &self.delivery;
        let mut all = vec![self.prompt.as_str()];
        all.extend(d.messages.iter().map(|m| m.prompt.as_str()));
        all.extend(
            [&d.pre_roll, &d.post_roll, &d.confirmed_prompt]
                .into_iter()
                .flatten()
                .map(String::as_str),
        );
        all
    }

    /// The prompt of message `index` (`None` or out of range: the default).
    pub fn message_prompt(&self, index: Option<usize>) -> &str {
        index
            .and_then(|i| self.delivery.messages.get(i))
            .map_or(self.prompt.as_str(), |m| m.prompt.as_str())
    }

    /// The window that applies: none for emergencies, the given or default otherwise.
    pub fn effective_window(&self) -> Result<Option<Window>, CampaignError> {
        match self.priority {
            Priority::Emergency => Ok(None),
            Priority::Normal => Ok(Some(self.window.clone().unwrap_or_default().compile()?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::heard::{Until, MAX_REPEATS};

    fn spec() -> CampaignSpec {
        CampaignSpec {
            tenant: "latina".into(),
            name: "water".into(),
            prompt: "p.wav".into(),
            target: Target {
                zones: vec!["Centro".into()],
                streets: vec!["Via Roma".into()],
                all: false,
            },
            priority: Priority::Normal,
            window: None,
            caller_id: None,
            ring_timeout_s: None,
            play_count: 1,
            retry: RetryPolicy::default(),
            delivery: Delivery::default(),
        }
    }

    #[test]
    fn keys_are_known_distinct_and_optout_is_for_normal_campaigns() {
        let mut s = spec();
        assert_eq!(s.keys().optout, Some('9'));
        s.priority = Priority::Emergency;
        assert_eq!(s.keys().optout, None);
        let mut s = spec();
        s.delivery.repeat_digit = Some('1');
        assert_eq!(
            s.validate().unwrap_err().to_string(),
            "repeat_digit: same key as confirm_digit"
        );
        s.delivery.repeat_digit = Some('x');
        assert!(s.validate().is_err());
        s.delivery.repeat_digit = None;
        s.delivery.confirm_digit = None;
        assert!(s.validate().is_ok());
        s.delivery.max_repeats = MAX_REPEATS + 1;
        assert!(s.validate().is_err());
    }

    #[test]
    fn stored_specs_without_the_new_fields_read_with_defaults_and_null_disables() {
        let old = r#"{"tenant":"t","name":"n","prompt":"p","target":{"all":true},
            "priority":"normal","play_count":1,"retry":{}}"#;
        let s: CampaignSpec = serde_json::from_str(old).unwrap();
        assert_eq!(
            (
                s.delivery.confirm_digit,
                s.delivery.repeat_digit,
                s.delivery.optout_digit,
                s.delivery.max_repeats
            ),
            (Some('1'), Some('2'), Some('9'), 2)
        );
        assert_eq!(s.delivery.until, Until::Answered);
        let off = old.replace(
            "\"retry\":{}",
            "\"retry\":{},\"confirm_digit\":null,\"until\":\"confirmed\"",
        );
        let s: CampaignSpec = serde_json::from_str(&off).unwrap();
        assert_eq!(
            (s.delivery.confirm_digit, s.delivery.until),
            (None, Until::Confirmed)
        );
    }

    #[test]
    fn a_message_per_zone() {
        let mut s = spec();
        s.delivery.messages = vec![
            ZoneMessage {
                zones: vec!["Centro".into()],
                streets: vec![],
                prompt: "a.wav".into(),
            },
            ZoneMessage {
                zones: vec!["Borgo".into()],
                streets: vec!["Via Roma".into()],
                prompt: "b.wav".into(),
            },
        ];
        assert!(s.validate().is_ok());
        assert_eq!(s.message_for("centro", "Via Roma"), Some(0));
        assert_eq!(s.message_for("Lido", "via roma"), Some(1));
        assert_eq!(s.message_for("Lido", "Via Verdi"), None);
        assert_eq!(s.message_prompt(Some(1)), "b.wav");
        assert_eq!(s.message_prompt(None), "p.wav");
        s.delivery.messages.push(ZoneMessage {
            prompt: "c.wav".into(),
            ..Default::default()
        });
        assert_eq!(
            s.validate().unwrap_err().to_string(),
            "messages[2]: some zones or streets"
        );
    }

    #[test]
    fn target_is_a_union_and_empty_is_an_error() {
        let s = spec();
        assert!(s.target.matches("centro", "Via Verdi"));
        assert!(s.target.matches("Borgo", " via roma "));
        assert!(!s.target.matches("Borgo", "Via Verdi"));
        let mut e = spec();
        e.target = Target::default();
        assert_eq!(e.validate(), Err(CampaignError::EmptyTarget));
        assert!(spec().validate().is_ok());
    }

    #[test]
    fn validation_bounds() {
        let mut s = spec();
        s.play_count = MAX_PLAY_COUNT;
        assert!(s.validate().is_ok());
        s.play_count = MAX_PLAY_COUNT + 1;
        assert_eq!(s.validate().unwrap_err().to_string(), "play_count: 1..=5");
        s.play_count = 0;
        assert!(s.validate().is_err());
        let mut s = spec();
        s.ring_timeout_s = Some(4);
        assert!(s.validate().is_err());
        s.ring_timeout_s = Some(120);
        assert!(s.validate().is_ok());
        let mut s = spec();
        s.retry.busy.max_attempts = 11;
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("retry.busy"));
        let mut s = spec();
        s.name = "x".repeat(201);
        assert!(s.validate().is_err());
        let mut s = spec();
        s.window = Some(CallingWindow {
            tz: "Mars/Olympus".into(),
            ..Default::default()
        });
        s.priority = Priority::Emergency;
        assert!(matches!(s.validate(), Err(CampaignError::Window(_))));
    }

    #[test]
    fn actions_follow_one_table() {
        use CampaignAction as A;
        use CampaignState::*;
        assert_eq!(Draft.after(A::Start), Some(Running));
        assert_eq!(Paused.after(A::Start), None);
        assert_eq!(Paused.after(A::Resume), Some(Running));
        assert_eq!(Running.after(A::Resume), None);
        assert_eq!(Draft.after(A::Complete), None);
        assert!(Completed.is_final() && Canceled.is_final() && !Paused.is_final());
        for from in [Draft, Running, Paused, Completed, Canceled] {
            for a in A::ALL {
                assert!(!from.is_final() || from.after(a).is_none());
            }
        }
    }

    #[test]
    fn transitions() {
        use CampaignState::*;
        assert!(Draft.can_go(Running));
        assert!(Running.can_go(Paused) && Paused.can_go(Running));
        assert!(Running.can_go(Completed));
        assert!(Paused.can_go(Canceled));
        assert!(!Completed.can_go(Running));
        assert!(!Canceled.can_go(Running));
        assert!(!Draft.can_go(Completed));
    }

    #[test]
    fn emergency_has_no_window() {
        let mut s = spec();
        assert!(s.effective_window().unwrap().is_some());
        s.priority = Priority::Emergency;
        assert!(s.effective_window().unwrap().is_none());
    }
}

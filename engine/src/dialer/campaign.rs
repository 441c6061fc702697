//! Campaigns: who is called (target), how urgently (priority), when (calling window), with
//! what (prompt, caller ID, ring timeout, play count), how persistently (retry policy), and
//! the life cycle draft → running → paused → completed or canceled.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::retry::RetryPolicy;
use super::window::{CallingWindow, Window, WindowError};

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

    /// Whether `self → to` is a legal transition.
    pub fn can_go(self, to: CampaignState) -> bool {
        use CampaignState::*;
        matches!(
            (self, to),
            (Draft, Running)
                | (Running, Paused)
                | (Paused, Running)
                | (Running, Completed)
                | (Draft | Running | Paused, Canceled)
        )
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
    #[error("empty target: give all, zones or streets")]
    EmptyTarget,
    /// The calling window is invalid.
    #[error(transparent)]
    Window(#[from] WindowError),
    /// An illegal state change.
    #[error("campaign cannot go from {0} to {1}")]
    Transition(CampaignState, CampaignState),
    /// Some value is out of range.
    #[error("invalid campaign: {0}")]
    Invalid(&'static str),
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
}

fn one() -> u32 {
    1
}

impl CampaignSpec {
    /// Checks the definition.
    pub fn validate(&self) -> Result<(), CampaignError> {
        if self.target.is_empty() {
            return Err(CampaignError::EmptyTarget);
        }
        if self.tenant.trim().is_empty() || self.name.trim().is_empty() {
            return Err(CampaignError::Invalid("tenant and name are required"));
        }
        if self.play_count == 0 || self.play_count > 10 {
            return Err(CampaignError::Invalid("play_count must be 1..=10"));
        }
        self.effective_window()?;
        Ok(())
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
        }
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

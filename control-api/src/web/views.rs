//! The console's templates' data and the little formatting they need (Italian thousands,
//! dates, durations), as pure functions.

use askama::Template;
use serde_json::Value;

/// `6732` → `6.732` (Italian thousands separator).
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let groups: Vec<&str> = s
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|g| std::str::from_utf8(g).unwrap_or_default())
        .collect();
    groups.join(".")
}

/// Seconds as `1 h 05 min`, `12 min`, `40 s`.
pub fn duration(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s.div_ceil(60)),
        _ => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}

/// Unix ms as `2026-11-30 18:45` (UTC).
pub fn date(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60
    )
}

/// The Italian word of a campaign state.
pub fn state_it(s: &str) -> &'static str {
    match s {
        "draft" => "bozza",
        "running" => "in corso",
        "paused" => "in pausa",
        "completed" => "completata",
        "canceled" => "annullata",
        _ => "sconosciuto",
    }
}

/// `/console/accesso`.
#[derive(Template)]
#[template(path = "console/login.html")]
pub struct LoginPage {
    /// Title.
    pub title: String,
    /// Header text.
    pub town: String,
    /// CSRF token.
    pub csrf: String,
    /// Why the last attempt failed.
    pub error: Option<String>,
}

/// A campaign in the list.
#[derive(Debug, Clone)]
pub struct CampaignRow {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// State, Italian.
    pub state: &'static str,
    /// Residents targeted.
    pub contacts: String,
    /// Completion, percent.
    pub percent: u32,
}

impl CampaignRow {
    /// From the API's campaign.
    pub fn from_json(v: &Value) -> CampaignRow {
        CampaignRow {
            id: v["id"].as_i64().unwrap_or_default(),
            name: v["name"].as_str().unwrap_or_default().to_string(),
            state: state_it(v["state"].as_str().unwrap_or_default()),
            contacts: thousands(v["estimate"]["contacts"].as_u64().unwrap_or_default()),
            percent: percent(v),
        }
    }
}

/// A campaign's completion in percent.
pub fn percent(v: &Value) -> u32 {
    (v["progress"].as_f64().unwrap_or_default() * 100.0)
        .round()
        .clamp(0.0, 100.0) as u32
}

/// `/console/campagne`.
#[derive(Template)]
#[template(path = "console/campaigns.html")]
pub struct CampaignsPage {
    /// Title.
    pub title: String,
    /// Header text.
    pub town: String,
    /// CSRF token (the logout form).
    pub csrf: String,
    /// Campaigns, newest first.
    pub rows: Vec<CampaignRow>,
}

/// A registration in the list.
#[derive(Debug, Clone)]
pub struct RegistrationRow {
    /// E.164.
    pub number: String,
    /// `web`, `ivr`, `registration`.
    pub source: String,
    /// Zone or the whole town.
    pub zone: String,
    /// When consent was given.
    pub consent: String,
    /// The notice version.
    pub notice_version: String,
    /// When it was withdrawn (opt-out and erasure), or empty.
    pub deleted: String,
}

impl RegistrationRow {
    /// From the API's registration.
    pub fn from_json(v: &Value) -> RegistrationRow {
        RegistrationRow {
            number: v["number"].as_str().unwrap_or_default().to_string(),
            source: v["source"].as_str().unwrap_or_default().to_string(),
            zone: v["zone"].as_str().unwrap_or("tutto il comune").to_string(),
            consent: date(v["consent_ms"].as_i64().unwrap_or_default()),
            notice_version: v["notice_version"].as_str().unwrap_or_default().to_string(),
            deleted: v["deleted_ms"].as_i64().map(date).unwrap_or_default(),
        }
    }
}

/// `/console/iscrizioni`.
#[derive(Template)]
#[template(path = "console/registrations.html")]
pub struct RegistrationsPage {
    /// Title.
    pub title: String,
    /// Header text.
    pub town: String,
    /// CSRF token.
    pub csrf: String,
    /// Registrations, oldest first.
    pub rows: Vec<RegistrationRow>,
}

/// A street with its callable residents.
#[derive(Debug, Clone)]
pub struct StreetCount {
    /// Street.
    pub street: String,
    /// Residents.
    pub contacts: u64,
}

/// A zone with its streets.
#[derive(Debug, Clone)]
pub struct ZoneCount {
    /// Zone.
    pub zone: String,
    /// Residents in it.
    pub contacts: u64,
    /// Its streets.
    pub streets: Vec<StreetCount>,
}

impl ZoneCount {
    /// From the API's zone.
    pub fn from_json(v: &Value) -> ZoneCount {
        let streets = v["streets"].as_array().cloned().unwrap_or_default();
        ZoneCount {
            zone: v["zone"].as_str().unwrap_or_default().to_string(),
            contacts: v["contacts"].as_u64().unwrap_or_default(),
            streets: streets
                .iter()
                .map(|s| StreetCount {
                    street: s["street"].as_str().unwrap_or_default().to_string(),
                    contacts: s["contacts"].as_u64().unwrap_or_default(),
                })
                .collect(),
        }
    }
}

/// `/console/campagne/nuova`.
#[derive(Template)]
#[template(path = "console/new.html")]
pub struct NewCampaignPage {
    /// Title.
    pub title: String,
    /// Header text.
    pub town: String,
    /// CSRF token.
    pub csrf: String,
    /// Zones with live counts.
    pub zones: Vec<ZoneCount>,
    /// Name to refill.
    pub name: String,
    /// Text to refill.
    pub text: String,
    /// What went wrong.
    pub error: Option<String>,
}

/// A zone's progress.
#[derive(Debug, Clone)]
pub struct ZoneRow {
    /// Zone.
    pub zone: String,
    /// Residents targeted.
    pub targeted: u64,
    /// Done.
    pub done: u64,
    /// Answered.
    pub answered: u64,
}

/// `/console/campagne/{id}`.
#[derive(Template)]
#[template(path = "console/campaign.html")]
pub struct CampaignPage {
    /// Title.
    pub title: String,
    /// Header text.
    pub town: String,
    /// CSRF token.
    pub csrf: String,
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// State, Italian.
    pub state: &'static str,
    /// Priority word.
    pub priority: String,
    /// Its message.
    pub prompt_id: String,
    /// Not launched yet: the estimate and the confirmation show.
    pub draft: bool,
    /// Residents, with thousands separators.
    pub contacts_it: String,
    /// Estimated duration.
    pub duration: Option<String>,
    /// Completion.
    pub percent: u32,
    /// Time left.
    pub eta: Option<String>,
    /// Per zone.
    pub zones: Vec<ZoneRow>,
    /// Buttons: (path segment, label).
    pub actions: Vec<(&'static str, &'static str)>,
    /// Reload every few seconds (running).
    pub refresh: bool,
    /// What went wrong.
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn italian_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(6732), "6.732");
        assert_eq!(thousands(1_234_567), "1.234.567");
    }

    #[test]
    fn dates_and_durations() {
        assert_eq!(date(0), "1970-01-01 00:00");
        assert_eq!(date(1_800_000_000_000), "2027-01-15 08:00");
        assert_eq!(duration(40.0), "40 s");
        assert_eq!(duration(61.0), "2 min");
        assert_eq!(duration(3900.0), "1 h 05 min");
    }
}

//! Inbound numbers (DIDs): a number the carriers route to the dialer, owned by one tenant
//! (town) and answered by one flow (the citizens' registration menu or the staff line).
//!
//! A number is stored in E.164 and found by the E.164 form of whatever the caller's
//! INVITE carries in its Request-URI user (or To): carriers write it nationally
//! (`0771286891`), with the country code and no `+` (`390771286891`), or in E.164. The
//! same reading as for contacts ([`normalize`]) applies, so the three writings of one
//! number meet on one key.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::numbers::{normalize, NumberError};

/// Which menu answers a call to a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flow {
    /// Residents register, change zone, unregister or hear the latest message.
    Citizen,
    /// Town staff enter a PIN, record a message and send it.
    Staff,
}

impl Flow {
    /// The stored and configured word.
    pub fn as_str(&self) -> &'static str {
        match self {
            Flow::Citizen => "citizen",
            Flow::Staff => "staff",
        }
    }

    /// Parses a word; `None` for anything else.
    pub fn parse(s: &str) -> Option<Flow> {
        match s {
            "citizen" => Some(Flow::Citizen),
            "staff" => Some(Flow::Staff),
            _ => None,
        }
    }
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An inbound number and who answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Did {
    /// E.164 (`+390771286891`): the key calls are matched on.
    pub number: String,
    /// The tenant (town) whose menu answers.
    pub tenant: String,
    /// Which menu.
    pub flow: Flow,
    /// Creation time, Unix ms.
    pub created_ms: i64,
}

/// Why a DID definition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DidError {
    /// The number does not read as a valid number, nationally or in E.164.
    #[error("number: {0}")]
    Number(#[from] NumberError),
    /// The flow is not one of the known words.
    #[error("flow: {0:?} is not citizen or staff")]
    Flow(String),
}

/// Parses a DID definition (API body, configuration table) into its stored form: the
/// number normalised to E.164 in `default_region`, the flow word parsed.
pub fn parse_did(
    number: &str,
    tenant: &str,
    flow: &str,
    default_region: &str,
    created_ms: i64,
) -> Result<Did, DidError> {
    let n = normalize(number, default_region)?;
    let flow = Flow::parse(flow).ok_or_else(|| DidError::Flow(flow.to_string()))?;
    Ok(Did {
        number: n.e164,
        tenant: tenant.to_string(),
        flow,
        created_ms,
    })
}

/// The E.164 key of the number an inbound call is for, from the user part of its
/// Request-URI (or To): URI parameters (`;phone-context=…`, `;npdi`) are dropped, then
/// the number is read like any other. `None` when it is not a valid number.
pub fn called_number(user: &str, default_region: &str) -> Option<String> {
    let user = user.split(';').next().unwrap_or("");
    normalize(user, default_region).ok().map(|n| n.e164)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_writings_meet_on_one_key() {
        for w in [
            "+390771286891",
            "0771286891",
            "390771286891",
            "0039 0771 28 68 91",
            "0771286891;phone-context=+39",
        ] {
            assert_eq!(
                called_number(w, "IT").as_deref(),
                Some("+390771286891"),
                "{w}"
            );
        }
    }

    #[test]
    fn a_national_mobile_starting_with_39_stays_a_mobile() {
        assert_eq!(
            called_number("3931234567", "IT").as_deref(),
            Some("+393931234567")
        );
    }

    #[test]
    fn garbage_and_empty_users_match_nothing() {
        for w in [
            "",
            "anonymous",
            "s",
            "12",
            "+",
            ";x=1",
            "07712868910000000000000",
        ] {
            assert_eq!(called_number(w, "IT"), None, "{w}");
        }
    }

    #[test]
    fn parse_did_normalises_and_checks_the_flow() {
        let d = parse_did("0771 286891", "itri", "staff", "IT", 5).unwrap();
        assert_eq!(d.number, "+390771286891");
        assert_eq!(d.flow, Flow::Staff);
        assert_eq!(d.created_ms, 5);
        assert!(matches!(
            parse_did("0771286891", "itri", "mayor", "IT", 0),
            Err(DidError::Flow(_))
        ));
        assert!(matches!(
            parse_did("12", "itri", "citizen", "IT", 0),
            Err(DidError::Number(_))
        ));
    }

    #[test]
    fn flow_words_round_trip() {
        for f in [Flow::Citizen, Flow::Staff] {
            assert_eq!(Flow::parse(f.as_str()), Some(f));
        }
        assert_eq!(Flow::parse("Citizen"), None);
    }
}

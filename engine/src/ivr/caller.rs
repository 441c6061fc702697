//! Who calls: the caller's number from P-Asserted-Identity (trusted only when the call
//! came from a trunk: anybody else can write any header) or else From, normalised to
//! E.164 with its type. A withheld number (`Privacy: id`, `anonymous`, no usable number)
//! is [`CallerId::Withheld`]: the menu explains, in words, how to register otherwise, and
//! nothing is stored.

use crate::model::numbers::{normalize, NumberType};

/// The caller as far as the menu is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerId {
    /// A number we may register.
    Known {
        /// E.164.
        e164: String,
        /// Fixed, mobile or unknown.
        number_type: NumberType,
    },
    /// Hidden or unusable: nothing is stored for this call.
    Withheld,
}

impl CallerId {
    /// The E.164 number, if known.
    pub fn number(&self) -> Option<&str> {
        match self {
            CallerId::Known { e164, .. } => Some(e164),
            CallerId::Withheld => None,
        }
    }

    /// The last `n` digits of the number (read back to the caller); empty if withheld.
    pub fn last_digits(&self, n: usize) -> String {
        let s = self.number().unwrap_or("");
        let digits: Vec<char> = s.chars().filter(char::is_ascii_digit).collect();
        digits[digits.len().saturating_sub(n)..].iter().collect()
    }
}

/// The headers of an inbound INVITE that tell who calls.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallerHeaders<'a> {
    /// The From header's value.
    pub from: &'a str,
    /// The P-Asserted-Identity header's value, if any.
    pub asserted: Option<&'a str>,
    /// The Privacy header's value, if any.
    pub privacy: Option<&'a str>,
}

/// The caller's identity. `from_trunk` says whether the INVITE came from a trunk's
/// address (only then is P-Asserted-Identity believed).
pub fn caller_identity(h: CallerHeaders<'_>, from_trunk: bool, region: &str) -> CallerId {
    let private = h.privacy.is_some_and(|p| {
        p.split(';')
            .map(|t| t.trim().to_ascii_lowercase())
            .any(|t| t == "id" || t == "header" || t == "user")
    });
    if private {
        return CallerId::Withheld;
    }
    let header = match h.asserted {
        Some(a) if from_trunk => a,
        _ => h.from,
    };
    let Some(user) = uri_user(header) else {
        return CallerId::Withheld;
    };
    let lower = user.to_ascii_lowercase();
    if [
        "anonymous",
        "unknown",
        "restricted",
        "private",
        "unavailable",
    ]
    .contains(&lower.as_str())
    {
        return CallerId::Withheld;
    }
    match normalize(user, region) {
        Ok(n) => CallerId::Known {
            e164: n.e164,
            number_type: n.number_type,
        },
        Err(_) => CallerId::Withheld,
    }
}

/// The user part of the URI in a name-addr or addr-spec header value (`"Name"
/// <sip:+39333@host>;tag=x`, `sip:0771@h`, `<tel:+39333;npdi>`), without its parameters.
fn uri_user(value: &str) -> Option<&str> {
    let uri = match value.find('<') {
        Some(i) => {
            let rest = &value[i + 1..];
            &rest[..rest.find('>')?]
        }
        None => value.split(';').next()?.trim(),
    };
    let (scheme, rest) = uri.split_once(':')?;
    let user = match scheme.trim().to_ascii_lowercase().as_str() {
        "sip" | "sips" => rest.split_once('@')?.0,
        "tel" => rest,
        _ => return None,
    };
    let user = user.split(';').next()?.trim();
    (!user.is_empty()).then_some(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(from: &str, pai: Option<&str>, privacy: Option<&str>, trunk: bool) -> CallerId {
        let h = CallerHeaders {
            from,
            asserted: pai,
            privacy,
        };
        caller_identity(h, trunk, "IT")
    }

    fn known(e164: &str, t: NumberType) -> CallerId {
        CallerId::Known {
            e164: e164.into(),
            number_type: t,
        }
    }

    #[test]
    fn pai_is_trusted_only_from_a_trunk() {
        let from = "<sip:0771286891@carrier.example>;tag=1";
        let pai = Some("\"Mario\" <sip:+393331234567@carrier.example>");
        assert_eq!(
            id(from, pai, None, true),
            known("+393331234567", NumberType::Mobile)
        );
        assert_eq!(
            id(from, pai, None, false),
            known("+390771286891", NumberType::Fixed)
        );
    }

    #[test]
    fn tel_uris_and_national_writing_are_normalised() {
        assert_eq!(
            id("x <sip:h>", Some("<tel:3331234567;npdi>"), None, true),
            known("+393331234567", NumberType::Mobile)
        );
        assert_eq!(
            id("sip:00390771286891@h;tag=2", None, None, true),
            known("+390771286891", NumberType::Fixed)
        );
    }

    #[test]
    fn withheld_numbers_are_recognised() {
        for (from, pai, privacy) in [
            (
                "\"Anonymous\" <sip:anonymous@anonymous.invalid>;tag=1",
                None,
                None,
            ),
            ("<sip:+393331234567@h>", None, Some("id")),
            ("<sip:+393331234567@h>", None, Some("header; id")),
            ("<sip:h>", None, None),
            ("<sip:abc@h>", None, None),
            ("garbage", None, None),
            ("<sip:0771286891@h>", Some("<sip:anonymous@h>"), None),
            ("", None, None),
        ] {
            assert_eq!(id(from, pai, privacy, true), CallerId::Withheld, "{from}");
        }
        // Privacy: none is not a request for privacy.
        assert!(id("<sip:0771286891@h>", None, Some("none"), true)
            .number()
            .is_some());
    }

    #[test]
    fn last_digits_for_the_read_back() {
        let c = known("+390771286891", NumberType::Fixed);
        assert_eq!(c.last_digits(4), "6891");
        assert_eq!(c.last_digits(40), "390771286891");
        assert_eq!(CallerId::Withheld.last_digits(4), "");
    }
}

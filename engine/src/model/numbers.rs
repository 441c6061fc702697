//! Phone numbers: E.164 normalisation and fixed/mobile classification.
//!
//! Only the `phonenumber` crate's metadata (the libphonenumber patterns) is used; the
//! reading of a number is ours, for two reasons:
//! - A national writing that starts with the country code's digits is ambiguous: Italian
//!   mobiles `393 1234567`, `392 …`, `398 …` begin with 39. The crate strips 39 as if it
//!   were the country code, rejecting or mangling them. libphonenumber's rule is applied
//!   here: keep the national reading when it is valid; take the country-code reading
//!   (`39 06 …` written without `+`) only when the national one is not.
//! - phonenumber 0.3.10 drops the leading zero of an Italian national number before
//!   matching the type patterns, so every Italian landline comes back `Unknown`; we match
//!   the full national significant number ourselves, against every region sharing the
//!   country code (Vatican City shares +39 and Rome's 06: its `06698…` lines match only
//!   the Vatican's fixed-line pattern).

use std::fmt;
use std::str::FromStr;

use phonenumber::country::Id;
use phonenumber::metadata::{Metadata, DATABASE};

/// The kind of line a number reaches; trunks route on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NumberType {
    /// A landline (from the phone directory).
    Fixed,
    /// A mobile.
    Mobile,
    /// Neither pattern matched (VoIP, toll-free, a foreign oddity).
    Unknown,
}

impl NumberType {
    /// The word stored in the database and used in configuration.
    pub fn as_str(&self) -> &'static str {
        match self {
            NumberType::Fixed => "fixed",
            NumberType::Mobile => "mobile",
            NumberType::Unknown => "unknown",
        }
    }

    /// Parses a stored word; anything else is `Unknown`.
    pub fn parse(s: &str) -> NumberType {
        match s {
            "fixed" => NumberType::Fixed,
            "mobile" => NumberType::Mobile,
            _ => NumberType::Unknown,
        }
    }
}

impl fmt::Display for NumberType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a number was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    /// The text is not a phone number at all.
    #[error("not a phone number: {0}")]
    Unparseable(String),
    /// It parses but is not a valid number of its region.
    #[error("not a valid number: {0}")]
    Invalid(String),
    /// The default region is not a CLDR region code.
    #[error("unknown region {0}")]
    Region(String),
}

/// A number in E.164 form with its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    /// `+390771286891`.
    pub e164: String,
    /// Fixed, mobile or unknown.
    pub number_type: NumberType,
}

/// Longest text accepted as a number (anything longer is not one).
const MAX_TEXT: usize = 40;

/// Normalises `raw` (national or international writing) to E.164 and classifies it.
/// `default_region` is a CLDR code such as `IT`, used when the number has no `+` or
/// international prefix.
pub fn normalize(raw: &str, default_region: &str) -> Result<Normalized, NumberError> {
    let meta = Id::from_str(default_region)
        .ok()
        .and_then(|_| DATABASE.by_id(default_region))
        .ok_or_else(|| NumberError::Region(default_region.into()))?;
    let (plus, digits) = digits_of(raw).ok_or_else(|| NumberError::Unparseable(raw.into()))?;
    let international = if plus {
        Some(digits.as_str())
    } else {
        idd_stripped(meta, &digits)
    };
    let reading = match international {
        Some(rest) => international_reading(rest),
        None => national_reading(meta, &digits).or_else(|| {
            // The country-code reading, only when the national one is not valid.
            let cc = meta.country_code().to_string();
            digits
                .strip_prefix(&cc)
                .and_then(|nsn| reading(meta.country_code(), nsn))
        }),
    };
    reading.ok_or_else(|| NumberError::Invalid(raw.into()))
}

/// The country calling code of a region (`IT` → 39), `None` for an unknown region.
pub fn country_code(region: &str) -> Option<u16> {
    Id::from_str(region)
        .ok()
        .and_then(|_| DATABASE.by_id(region))
        .map(|m| m.country_code())
}

/// Whether a `+` leads, and the digits; `None` when the text holds anything but digits
/// and the usual separators, or no digit at all.
fn digits_of(raw: &str) -> Option<(bool, String)> {
    let t = raw.trim();
    if t.is_empty() || t.len() > MAX_TEXT {
        return None;
    }
    let (plus, body) = match t.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let mut digits = String::with_capacity(body.len());
    for c in body.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' | '/' => {}
            _ => return None,
        }
    }
    (!digits.is_empty()).then_some((plus, digits))
}

/// The digits after the region's international prefix (`00` in Italy), if they start
/// with it.
fn idd_stripped<'a>(meta: &Metadata, digits: &'a str) -> Option<&'a str> {
    let m = meta.international_prefix()?.find(digits)?;
    (m.start() == 0 && m.end() > 0).then(|| &digits[m.end()..])
}

/// `+` and then a country code of one to three digits and its national number.
fn international_reading(digits: &str) -> Option<Normalized> {
    (1..=3).find_map(|n| {
        let cc: u16 = digits.get(..n)?.parse().ok()?;
        DATABASE.by_code(&cc)?;
        reading(cc, &digits[n..])
    })
}

/// The national writing read in the default region: as written, or without the region's
/// national prefix (the UK's leading `0`; Italy keeps its zero, it has none).
fn national_reading(meta: &Metadata, digits: &str) -> Option<Normalized> {
    let cc = meta.country_code();
    let stripped = meta
        .national_prefix()
        .filter(|p| !p.is_empty())
        .and_then(|p| digits.strip_prefix(p));
    stripped
        .and_then(|nsn| reading(cc, nsn))
        .or_else(|| reading(cc, digits))
}

/// The number `+cc nsn` when it is valid in some region sharing `cc`.
fn reading(cc: u16, nsn: &str) -> Option<Normalized> {
    let number_type = classify(cc, nsn)?;
    Some(Normalized {
        e164: format!("+{cc}{nsn}"),
        number_type,
    })
}

/// Fixed, mobile or unknown (valid but neither: toll-free, VoIP, ...); `None` when no
/// region sharing the country code has a number pattern that matches the full national
/// significant number.
fn classify(cc: u16, nsn: &str) -> Option<NumberType> {
    let metas = DATABASE.by_code(&cc)?;
    let mut valid = false;
    for m in metas
        .iter()
        .filter(|m| m.descriptors().general().is_match(nsn))
    {
        let d = m.descriptors();
        let fixed = d.fixed_line().is_some_and(|p| p.is_match(nsn));
        let mobile = d.mobile().is_some_and(|p| p.is_match(nsn));
        match (fixed, mobile) {
            // Regions such as the US share patterns; call it what the line most likely is.
            (true, _) => return Some(NumberType::Fixed),
            (false, true) => return Some(NumberType::Mobile),
            (false, false) => valid |= is_other_valid(m, nsn),
        }
    }
    valid.then_some(NumberType::Unknown)
}

/// Whether a non-geographic pattern (toll-free, premium, shared cost, personal, VoIP,
/// pager, UAN, voicemail) matches.
fn is_other_valid(m: &Metadata, nsn: &str) -> bool {
    let d = m.descriptors();
    [
        d.toll_free(),
        d.premium_rate(),
        d.shared_cost(),
        d.personal_number(),
        d.voip(),
        d.pager(),
        d.uan(),
        d.voicemail(),
    ]
    .into_iter()
    .flatten()
    .any(|p| p.is_match(nsn))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> (String, NumberType) {
        let n = normalize(raw, "IT").unwrap_or_else(|e| panic!("{raw}: {e}"));
        (n.e164, n.number_type)
    }

    #[test]
    fn italian_landline_is_fixed_despite_the_crate_bug() {
        assert_eq!(
            ok("0771 286891"),
            ("+390771286891".into(), NumberType::Fixed)
        );
        assert_eq!(
            ok("+39 06 4567 8901"),
            ("+390645678901".into(), NumberType::Fixed)
        );
        assert_eq!(
            ok("0039 06 4567 8901"),
            ("+390645678901".into(), NumberType::Fixed)
        );
        assert_eq!(
            ok("+390771286891"),
            ("+390771286891".into(), NumberType::Fixed)
        );
        // The crate itself says Unknown: the bug this module works around.
        let raw = phonenumber::parse(Some(Id::IT), "0771286891").unwrap();
        assert_eq!(
            raw.number_type(&DATABASE),
            phonenumber::Type::Unknown,
            "phonenumber fixed its Italian landline bug; the workaround may go"
        );
    }

    #[test]
    fn national_mobiles_starting_with_39_keep_the_national_reading() {
        // Every 39x range, written nationally: the national reading is valid, so it wins
        // (390 and 391 are mobile by Vatican City's pattern, which shares +39).
        for d in 0..=9 {
            let raw = format!("39{d}1234567");
            assert_eq!(ok(&raw), (format!("+39{raw}"), NumberType::Mobile), "{raw}");
        }
        assert_eq!(
            ok("3931234567"),
            ("+393931234567".into(), NumberType::Mobile)
        );
        assert_eq!(
            ok("392 123 4567"),
            ("+393921234567".into(), NumberType::Mobile)
        );
        assert_eq!(
            ok("3989477288"),
            ("+393989477288".into(), NumberType::Mobile)
        );
        // The same mobiles written internationally, with `+`, `00` or bare 12 digits.
        assert_eq!(
            ok("+39 393 1234567"),
            ("+393931234567".into(), NumberType::Mobile)
        );
        assert_eq!(
            ok("0039 3931234567"),
            ("+393931234567".into(), NumberType::Mobile)
        );
        assert_eq!(
            ok("393931234567"),
            ("+393931234567".into(), NumberType::Mobile)
        );
        assert_eq!(
            ok("393471234567"),
            ("+393471234567".into(), NumberType::Mobile)
        );
    }

    #[test]
    fn twelve_digit_international_writing_without_plus_takes_the_country_code() {
        // `39 0771…`: not a valid national number, valid once 39 is the country code.
        assert_eq!(
            ok("390771286891"),
            ("+390771286891".into(), NumberType::Fixed)
        );
        assert_eq!(
            ok("39 06 4567 8901"),
            ("+390645678901".into(), NumberType::Fixed)
        );
    }

    #[test]
    fn invalid_both_ways_is_refused() {
        for raw in ["391234", "3912", "39 999", "390", "39 1 23"] {
            assert!(
                matches!(normalize(raw, "IT"), Err(NumberError::Invalid(_))),
                "{raw}"
            );
        }
    }

    #[test]
    fn vatican_lines_are_fixed() {
        // Vatican City shares +39 and Rome's 06; only its own pattern knows 06698.
        assert_eq!(
            ok("+39 06 698 12345"),
            ("+390669812345".into(), NumberType::Fixed)
        );
        assert_eq!(
            ok("06 698 12345"),
            ("+390669812345".into(), NumberType::Fixed)
        );
    }

    #[test]
    fn italian_mobile_is_mobile() {
        assert_eq!(
            ok("347 123 4567"),
            ("+393471234567".into(), NumberType::Mobile)
        );
        assert_eq!(
            ok("0039 333 1234567"),
            ("+393331234567".into(), NumberType::Mobile)
        );
    }

    #[test]
    fn rejects_garbage() {
        assert!(normalize("", "IT").is_err());
        assert!(normalize("hello", "IT").is_err());
        assert!(normalize("12", "IT").is_err());
        assert!(normalize("+", "IT").is_err());
        assert!(normalize(&"9".repeat(41), "IT").is_err());
        assert!(matches!(
            normalize("0771286891", "XX"),
            Err(NumberError::Region(_))
        ));
    }

    #[test]
    fn foreign_numbers_keep_their_region() {
        let n = normalize("+44 20 7946 0018", "IT").unwrap();
        assert_eq!(n.e164, "+442079460018");
        assert_eq!(n.number_type, NumberType::Fixed);
        // A UK national writing drops its trunk prefix 0.
        let n = normalize("020 7946 0018", "GB").unwrap();
        assert_eq!(n.e164, "+442079460018");
    }
}

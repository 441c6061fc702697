//! Phone numbers: E.164 normalisation and fixed/mobile classification.
//!
//! Numbers are parsed with the `phonenumber` crate (Italy by default, since the residents'
//! directories give national numbers). Its `number_type` is not trusted for the
//! classification: phonenumber 0.3.10 drops the leading zero of the Italian national
//! number before it matches the metadata patterns, so every Italian landline comes back
//! `Unknown`. We rebuild the national significant number with its leading zeros and match
//! it against the region's fixed-line and mobile patterns ourselves.

use std::fmt;
use std::str::FromStr;

use phonenumber::country::Id;
use phonenumber::metadata::DATABASE;
use phonenumber::Mode;

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

/// Normalises `raw` (national or international writing) to E.164 and classifies it.
/// `default_region` is a CLDR code such as `IT`, used when the number has no `+` prefix.
pub fn normalize(raw: &str, default_region: &str) -> Result<Normalized, NumberError> {
    let region =
        Id::from_str(default_region).map_err(|_| NumberError::Region(default_region.into()))?;
    let trimmed = raw.trim();
    if trimmed.is_empty() || trimmed.len() > 40 {
        return Err(NumberError::Unparseable(raw.into()));
    }
    let n = phonenumber::parse(Some(region), trimmed)
        .map_err(|_| NumberError::Unparseable(raw.into()))?;
    if !n.is_valid() {
        return Err(NumberError::Invalid(raw.into()));
    }
    let e164 = n.format().mode(Mode::E164).to_string();
    Ok(Normalized {
        number_type: classify(&n),
        e164,
    })
}

/// The national significant number with its leading zeros restored.
fn national_significant(n: &phonenumber::PhoneNumber) -> String {
    let nat = n.national();
    let mut s = "0".repeat(usize::from(nat.zeros()));
    s.push_str(&nat.value().to_string());
    s
}

/// Fixed or mobile by the metadata patterns, matched on the full national number.
fn classify(n: &phonenumber::PhoneNumber) -> NumberType {
    let nsn = national_significant(n);
    // The crate's own region lookup also uses the number without its leading zeros, so
    // pick the region ourselves: the first one sharing the country code whose general
    // pattern matches the full national number.
    let Some(meta) = DATABASE
        .by_code(&n.code().value())
        .unwrap_or_default()
        .into_iter()
        .find(|m| m.descriptors().general().is_match(&nsn))
    else {
        return NumberType::Unknown;
    };
    let d = meta.descriptors();
    let fixed = d.fixed_line().is_some_and(|p| p.is_match(&nsn));
    let mobile = d.mobile().is_some_and(|p| p.is_match(&nsn));
    match (fixed, mobile) {
        (true, false) => NumberType::Fixed,
        (false, true) => NumberType::Mobile,
        // Regions such as the US share patterns; call it what the line most likely is.
        (true, true) => NumberType::Fixed,
        (false, false) => NumberType::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn italian_landline_is_fixed_despite_the_crate_bug() {
        let n = normalize("0771 286891", "IT").unwrap();
        assert_eq!(n.e164, "+390771286891");
        assert_eq!(n.number_type, NumberType::Fixed);
        // Rome, written internationally.
        let n = normalize("+39 06 4567 8901", "IT").unwrap();
        assert_eq!(n.e164, "+390645678901");
        assert_eq!(n.number_type, NumberType::Fixed);
        // The crate itself says Unknown: the bug this module works around.
        let raw = phonenumber::parse(Some(Id::IT), "0771286891").unwrap();
        assert_eq!(
            raw.number_type(&DATABASE),
            phonenumber::Type::Unknown,
            "phonenumber fixed its Italian landline bug; the workaround may go"
        );
    }

    #[test]
    fn italian_mobile_is_mobile() {
        let n = normalize("347 123 4567", "IT").unwrap();
        assert_eq!(n.e164, "+393471234567");
        assert_eq!(n.number_type, NumberType::Mobile);
        let n = normalize("0039 333 1234567", "IT").unwrap();
        assert_eq!(n.e164, "+393331234567");
        assert_eq!(n.number_type, NumberType::Mobile);
    }

    #[test]
    fn rejects_garbage() {
        assert!(normalize("", "IT").is_err());
        assert!(normalize("hello", "IT").is_err());
        assert!(normalize("12", "IT").is_err());
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
    }
}

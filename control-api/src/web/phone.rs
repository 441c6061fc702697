//! Which numbers the citizens' form accepts: the tenant's country only, and only fixed or
//! mobile numbers (premium-rate, shared-cost, toll-free and short numbers classify as
//! neither, so a form cannot be used to make the dialer call them).

use engine::model::numbers::{country_code, normalize, NumberType};

/// Why a number is refused (the message shown under the field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Not a phone number of any kind.
    #[error("Il numero non è valido: scrivilo con il prefisso, per esempio 333 123 4567.")]
    Invalid,
    /// Another country's number.
    #[error("Sono accettati solo numeri italiani.")]
    Foreign,
    /// A premium, toll-free, short or otherwise special number.
    #[error("Sono accettati solo numeri di cellulare o di rete fissa, non numeri speciali.")]
    Special,
}

/// A number the form may call: E.164 and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callable {
    /// `+393331234567`.
    pub e164: String,
    /// Fixed or mobile.
    pub number_type: NumberType,
}

/// Judges what a resident typed, for a town in `region` (CLDR code, `IT`).
pub fn callable(raw: &str, region: &str) -> Result<Callable, Refused> {
    let n = normalize(raw, region).map_err(|_| Refused::Invalid)?;
    let cc = country_code(region).ok_or(Refused::Invalid)?;
    if !n.e164.starts_with(&format!("+{cc}")) {
        return Err(Refused::Foreign);
    }
    match n.number_type {
        NumberType::Fixed | NumberType::Mobile => Ok(Callable {
            e164: n.e164,
            number_type: n.number_type,
        }),
        NumberType::Unknown => Err(Refused::Special),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn italian_mobiles_and_landlines_pass() {
        let m = callable("333 123 4567", "IT").unwrap();
        assert_eq!(m.e164, "+393331234567");
        assert_eq!(m.number_type, NumberType::Mobile);
        let f = callable("0771 286891", "IT").unwrap();
        assert_eq!(f.number_type, NumberType::Fixed);
    }

    #[test]
    fn foreign_premium_and_short_numbers_are_refused() {
        assert_eq!(callable("+44 7911 123456", "IT"), Err(Refused::Foreign));
        assert_eq!(callable("899 123 456", "IT"), Err(Refused::Special));
        assert!(callable("112", "IT").is_err());
        assert_eq!(callable("ciao", "IT"), Err(Refused::Invalid));
    }
}

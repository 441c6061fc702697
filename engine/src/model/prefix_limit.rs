//! A limit per destination prefix, as configured (`[[prefix_limit]]`), stored and sent
//! through the API; the dialer applies it (`crate::dialer::prefix_limit`).

use serde::{Deserialize, Serialize};

/// One limit: INVITEs to numbers starting with `prefix`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixLimit {
    /// E.164 prefix, `+` and 1 to 15 digits.
    pub prefix: String,
    /// Calls per second towards it: a ceiling never exceeded in any 1 s window.
    pub cps: f64,
    /// Calls in progress towards it at once.
    pub max_channels: u32,
    /// The tenant whose calls it limits; `None`: every tenant's.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// Why a limit is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixLimitError {
    /// Not `+` and 1 to 15 digits.
    #[error("prefix {0:?}: must be + and 1 to 15 digits")]
    Prefix(String),
    /// Not a finite rate from 0.01 to 10,000.
    #[error("cps must be from 0.01 to 10000")]
    Cps,
    /// Zero channels would stop the prefix altogether.
    #[error("max_channels must be at least 1")]
    Channels,
}

impl PrefixLimit {
    /// Checks the limit's fields.
    pub fn validate(&self) -> Result<(), PrefixLimitError> {
        let digits = self.prefix.strip_prefix('+').unwrap_or("");
        if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PrefixLimitError::Prefix(self.prefix.clone()));
        }
        if !(self.cps.is_finite() && self.cps >= 0.01 && self.cps <= 10_000.0) {
            return Err(PrefixLimitError::Cps);
        }
        if self.max_channels == 0 {
            return Err(PrefixLimitError::Channels);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim(prefix: &str, tenant: Option<&str>) -> PrefixLimit {
        PrefixLimit {
            prefix: prefix.into(),
            cps: 5.0,
            max_channels: 10,
            tenant: tenant.map(Into::into),
        }
    }

    #[test]
    fn validation() {
        assert!(lim("+39077", None).validate().is_ok());
        for bad in ["39077", "+", "+39a", "+1234567890123456", ""] {
            assert!(lim(bad, None).validate().is_err(), "{bad}");
        }
        let mut l = lim("+39", None);
        l.cps = 0.0;
        assert_eq!(l.validate(), Err(PrefixLimitError::Cps));
        l.cps = 1e-300;
        assert_eq!(l.validate(), Err(PrefixLimitError::Cps));
        l.cps = f64::NAN;
        assert_eq!(l.validate(), Err(PrefixLimitError::Cps));
        l.cps = 1.0;
        l.max_channels = 0;
        assert_eq!(l.validate(), Err(PrefixLimitError::Channels));
    }
}

//! Pacing per destination network: optional limits per E.164 prefix (`+39077` at 10 CPS
//! and 60 channels) on top of the trunks' own, so that a town's backlog does not trip the
//! terminating operator's congestion controls. A limit is global (the configuration's
//! `[[prefix_limit]]`, or the admin through `/v1/prefix-limits`) or a tenant's own (its
//! calls only). A number falls under the longest global prefix it starts with and under the
//! longest of its tenant's; both apply.
//!
//! [`lanes`] interleaves a campaign's queue by destination; [`pacer`] holds each limit's
//! CPS window and channel count for the core.

pub mod lanes;
pub mod pacer;

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
    /// Not a positive, finite rate up to 10,000.
    #[error("cps must be above 0 and at most 10000")]
    Cps,
    /// Zero channels would stop the prefix altogether.
    #[error("max_channels must be at least 1")]
    Channels,
}

impl PrefixLimit {
    /// Checks the limit's fields.
    pub fn validate(&self) -> Result<(), PrefixLimitError> {
        let digits = self.prefix.strip_prefix('+').unwrap_or("");
        if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(PrefixLimitError::Prefix(self.prefix.clone()));
        }
        if !(self.cps.is_finite() && self.cps > 0.0 && self.cps <= 10_000.0) {
            return Err(PrefixLimitError::Cps);
        }
        if self.max_channels == 0 {
            return Err(PrefixLimitError::Channels);
        }
        Ok(())
    }
}

/// The limits a number falls under: the index in the list of its longest global prefix
/// and of its tenant's longest.
pub fn applying(limits: &[PrefixLimit], tenant: &str, number: &str) -> Vec<usize> {
    let mut best: [Option<usize>; 2] = [None, None];
    for (i, l) in limits.iter().enumerate() {
        if !number.starts_with(&l.prefix) {
            continue;
        }
        let slot = match &l.tenant {
            None => 0,
            Some(t) if t == tenant => 1,
            Some(_) => continue,
        };
        if best[slot].is_none_or(|b| limits[b].prefix.len() < l.prefix.len()) {
            best[slot] = Some(i);
        }
    }
    best.into_iter().flatten().collect()
}

/// The lane a number goes to in its campaign's queue: the longest prefix of the limits it
/// falls under (`""` when none). Numbers of one lane fall under the same limits.
pub fn lane_key<'a>(limits: &'a [PrefixLimit], tenant: &str, number: &str) -> &'a str {
    applying(limits, tenant, number)
        .into_iter()
        .map(|i| limits[i].prefix.as_str())
        .max_by_key(|p| p.len())
        .unwrap_or("")
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
    fn longest_global_and_longest_of_the_tenant_apply() {
        let l = [
            lim("+39", None),
            lim("+39077", None),
            lim("+390771", Some("sora")),
            lim("+3906", Some("roma")),
        ];
        assert_eq!(applying(&l, "sora", "+390771286891"), [1, 2]);
        assert_eq!(lane_key(&l, "sora", "+390771286891"), "+390771");
        // Another tenant: only the global ones.
        assert_eq!(applying(&l, "roma", "+390771286891"), [1]);
        assert_eq!(lane_key(&l, "roma", "+390771286891"), "+39077");
        assert_eq!(applying(&l, "roma", "+39061234"), [0, 3]);
        assert_eq!(lane_key(&l, "x", "+441234"), "");
        assert!(applying(&l, "x", "+441234").is_empty());
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
        l.cps = f64::NAN;
        assert_eq!(l.validate(), Err(PrefixLimitError::Cps));
        l.cps = 1.0;
        l.max_channels = 0;
        assert_eq!(l.validate(), Err(PrefixLimitError::Channels));
    }
}

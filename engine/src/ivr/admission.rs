//! Which inbound INVITEs are answered: only those from a trunk's address (its proxy's
//! resolved addresses, or an `inbound_from` entry: an address or a CIDR block), to a
//! number (DID) the platform knows. Anything else is refused before any dialog state is
//! kept, and counted by reason.

use std::net::IpAddr;

/// An address block (`192.0.2.0/24`) or one address: the endpoint's, so that the source
/// policy and the admission read `inbound_from` alike.
pub use crate::sip::endpoint::Cidr;

/// Where a trunk's inbound calls may come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkSources {
    /// The trunk's name.
    pub trunk: String,
    /// Its proxy's addresses and its `inbound_from` blocks.
    pub blocks: Vec<Cidr>,
}

/// Why an inbound INVITE was refused (the metric's `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not from any trunk's address: 403, nothing kept.
    NotFromTrunk,
    /// To a number no tenant has: 404.
    UnknownNumber,
    /// The trunk has no free channel: 486.
    NoChannel,
}

impl Refusal {
    /// The metric label and log word.
    pub fn as_str(&self) -> &'static str {
        match self {
            Refusal::NotFromTrunk => "not_trunk",
            Refusal::UnknownNumber => "unknown_number",
            Refusal::NoChannel => "no_channel",
        }
    }

    /// The SIP status of the refusal.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::NotFromTrunk => 403,
            Refusal::UnknownNumber => 404,
            Refusal::NoChannel => 486,
        }
    }
}

/// The trunk an INVITE from `source` belongs to (the first whose blocks hold it).
pub fn trunk_of(source: IpAddr, trunks: &[TrunkSources]) -> Option<&str> {
    trunks
        .iter()
        .find(|t| t.blocks.iter().any(|b| b.contains(source)))
        .map(|t| t.trunk.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_invite_is_matched_to_its_trunk_or_refused() {
        let trunks = vec![
            TrunkSources {
                trunk: "a".into(),
                blocks: vec![Cidr::from(ip("127.0.0.1"))],
            },
            TrunkSources {
                trunk: "b".into(),
                blocks: vec!["10.1.0.0/16".parse().unwrap()],
            },
        ];
        assert_eq!(trunk_of(ip("127.0.0.1"), &trunks), Some("a"));
        assert_eq!(trunk_of(ip("10.1.2.3"), &trunks), Some("b"));
        assert_eq!(trunk_of(ip("127.0.0.2"), &trunks), None);
        assert_eq!(Refusal::NotFromTrunk.status(), 403);
        assert_eq!(Refusal::UnknownNumber.as_str(), "unknown_number");
    }
}

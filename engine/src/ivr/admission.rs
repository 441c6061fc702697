//! Which inbound INVITEs are answered: only those from a trunk's address (its proxy's
//! resolved addresses, or an `inbound_from` entry: an address or a CIDR block), to a
//! number (DID) the platform knows. Anything else is refused before any dialog state is
//! kept, and counted by reason.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address block: `192.0.2.0/24`, `2001:db8::/32`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

/// A block that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an address or CIDR block")]
pub struct CidrError(pub String);

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let err = || CidrError(s.to_string());
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let net: IpAddr = addr.parse().map_err(|_| err())?;
        let net = net.to_canonical();
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(err)?,
            None => max,
        };
        Ok(Cidr { net, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

impl Cidr {
    /// One address.
    pub fn host(ip: IpAddr) -> Cidr {
        let ip = ip.to_canonical();
        Cidr {
            net: ip,
            prefix: if ip.is_ipv4() { 32 } else { 128 },
        }
    }

    /// Whether `ip` is in the block (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

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
    fn blocks_parse_and_match() {
        let b: Cidr = "192.0.2.0/24".parse().unwrap();
        assert!(b.contains(ip("192.0.2.200")));
        assert!(!b.contains(ip("192.0.3.1")));
        assert!(b.contains(ip("::ffff:192.0.2.7")), "v4-mapped");
        assert!(!b.contains(ip("2001:db8::1")));
        let h: Cidr = "198.51.100.9".parse().unwrap();
        assert!(h.contains(ip("198.51.100.9")) && !h.contains(ip("198.51.100.10")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.1")));
        assert_eq!(all.to_string(), "0.0.0.0/0");
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0/8",
            "host.example",
            "::/129",
            "1.2.3.4/x",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn an_invite_is_matched_to_its_trunk_or_refused() {
        let trunks = vec![
            TrunkSources {
                trunk: "a".into(),
                blocks: vec![Cidr::host(ip("127.0.0.1"))],
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

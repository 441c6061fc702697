//! Address blocks (`192.0.2.0/24`, `2001:db8::/32`, or a bare address) that may send us
//! new requests: a trunk's proxy and its `inbound_from` list.
//!
//! Parsed once when the configuration is read; matching is a mask and a compare, cheap
//! enough to run on every request from an unknown source.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use thiserror::Error;

/// An IPv4 or IPv6 network: an address and a prefix length. A bare address is a /32 (or
/// /128). IPv4-mapped IPv6 sources (`::ffff:192.0.2.1`, seen on dual-stack sockets) match
/// the IPv4 block they name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// The network address, host bits cleared.
    addr: IpAddr,
    /// Prefix length: 0..=32 for IPv4, 0..=128 for IPv6.
    prefix: u8,
}

/// Why a block could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CidrError {
    /// The part before `/` is not an IP address.
    #[error("{0:?} is not an IP address")]
    Address(String),
    /// The prefix is not a number within the family's bits.
    #[error("bad prefix length in {0:?}")]
    Prefix(String),
}

impl Cidr {
    /// A block of `prefix` bits around `addr` (host bits are cleared); `None` when the
    /// prefix is longer than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Cidr> {
        let addr = addr.to_canonical();
        let bits = max_bits(addr);
        if prefix > bits {
            return None;
        }
        Some(Cidr {
            addr: mask(addr, prefix),
            prefix,
        })
    }

    /// Whether `ip` is inside the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        max_bits(ip) == max_bits(self.addr) && mask(ip, self.prefix) == self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
}

fn max_bits(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & m).into())
        }
        IpAddr::V6(v6) => {
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & m).into())
        }
    }
}

impl From<IpAddr> for Cidr {
    fn from(addr: IpAddr) -> Cidr {
        let addr = addr.to_canonical();
        Cidr {
            addr,
            prefix: max_bits(addr),
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let s = s.trim();
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| CidrError::Address(s.to_string()))?;
        match p {
            None => Ok(Cidr::from(addr)),
            Some(p) => p
                .parse::<u8>()
                .ok()
                .and_then(|p| Cidr::new(addr, p))
                .ok_or_else(|| CidrError::Prefix(s.to_string())),
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_match_their_addresses_only() {
        let c: Cidr = "192.0.2.0/24".parse().unwrap();
        assert!(c.contains(ip("192.0.2.1")));
        assert!(c.contains(ip("192.0.2.255")));
        assert!(!c.contains(ip("192.0.3.1")));
        assert!(!c.contains(ip("2001:db8::1")));
        // A dual-stack socket reports IPv4 peers as mapped addresses.
        assert!(c.contains(ip("::ffff:192.0.2.9")));
        let six: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(six.contains(ip("2001:db8:ffff::1")));
        assert!(!six.contains(ip("2001:db9::1")));
    }

    #[test]
    fn bare_addresses_and_host_bits() {
        let one: Cidr = "203.0.113.7".parse().unwrap();
        assert_eq!(one.prefix(), 32);
        assert!(one.contains(ip("203.0.113.7")));
        assert!(!one.contains(ip("203.0.113.8")));
        // Host bits are cleared, as routers read such a block.
        let c: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/8");
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("198.51.100.1")));
    }

    #[test]
    fn bad_blocks_are_errors() {
        for s in [
            "",
            "10.0.0.0/33",
            "10.0.0/8",
            "::/129",
            "x/1",
            "10.0.0.0/-1",
            "1.2.3.4/",
        ] {
            assert!(s.parse::<Cidr>().is_err(), "{s}");
        }
    }
}

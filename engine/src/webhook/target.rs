//! Which addresses a webhook may be delivered to.
//!
//! A webhook URL is written by a tenant, and the dialer posts to it from inside the
//! operator's network: without a rule, `http://10.0.0.5/admin` or the cloud metadata
//! service at `169.254.169.254` would be reachable by anyone holding a tenant token
//! (server-side request forgery). So by default only globally routable addresses are
//! allowed, checked both when the URL is registered (a literal address) and every time
//! a name is resolved for a delivery (a name can point anywhere, and change). Labs and
//! tests whose receivers live on loopback or a private network opt out in the config.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Where deliveries may go: the `[webhooks] private_targets` setting, parsed once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TargetPolicy {
    /// Only globally routable unicast addresses (the default).
    #[default]
    PublicOnly,
    /// Any address, loopback and private networks included (labs, tests, an operator
    /// whose tenants are all in-house).
    Any,
}

impl TargetPolicy {
    /// Whether a delivery may connect to `ip`.
    pub fn allows(self, ip: IpAddr) -> bool {
        match self {
            TargetPolicy::Any => true,
            TargetPolicy::PublicOnly => is_public(ip),
        }
    }
}

/// Whether `ip` is a globally routable unicast address: not loopback, private,
/// shared (CGNAT), link-local, unspecified, multicast, broadcast, documentation,
/// benchmarking or reserved space, and for IPv6 also not unique-local, and not an
/// IPv4-mapped or IPv4-compatible form of a non-public IPv4 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let special = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space, RFC 6598
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments, RFC 6890
        || (a == 198 && (b == 18 || b == 19)) // benchmarking, RFC 2544
        || a >= 240; // reserved, RFC 1112
    !special
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let seg = ip.segments();
    let low_v4 = || {
        Ipv4Addr::new(
            (seg[6] >> 8) as u8,
            seg[6] as u8,
            (seg[7] >> 8) as u8,
            seg[7] as u8,
        )
    };
    // ::a.b.c.d (the deprecated IPv4-compatible form) and 64:ff9b::a.b.c.d (NAT64)
    // reach the IPv4 address inside: that address decides.
    let compatible = seg[..6] == [0; 6] && !ip.is_unspecified() && !ip.is_loopback();
    let nat64 = seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    if compatible || nat64 {
        return is_public_v4(low_v4());
    }
    let special = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (seg[0] & 0xfe00) == 0xfc00 // unique local, RFC 4193
        || (seg[0] & 0xffc0) == 0xfe80 // link-local
        || (seg[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
        || (seg[0] == 0x0100 && seg[1..4] == [0, 0, 0]); // discard-only, RFC 6666
    !special
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(s: &str) -> bool {
        is_public(s.parse().unwrap())
    }

    #[test]
    fn internal_and_special_addresses_are_refused() {
        for s in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "192.0.0.8",
            "240.0.0.1",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "100::1",
        ] {
            assert!(!public(s), "{s} must not be public");
        }
    }

    #[test]
    fn routable_addresses_are_allowed() {
        for s in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "192.169.0.1",
            "2a00:1450:4001::1",
            "2001:4860::8888",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(public(s), "{s} must be public");
        }
    }

    #[test]
    fn the_lab_policy_allows_everything() {
        assert!(TargetPolicy::Any.allows("127.0.0.1".parse().unwrap()));
        assert!(!TargetPolicy::PublicOnly.allows("127.0.0.1".parse().unwrap()));
        assert!(TargetPolicy::PublicOnly.allows("8.8.8.8".parse().unwrap()));
    }
}

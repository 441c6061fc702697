//! SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966), parsed by borrowing the input.
//!
//! A URI is kept as slices of the message it came from: the parser checks the grammar and
//! records where each part lies, nothing is unescaped or copied. Comparing or unescaping is
//! left to the few callers that need it.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::error::ParseError;
use super::params::Params;
use super::text::{self, find_ascii, rfind_ascii, Class};

/// The scheme of a URI. `sip`, `sips` and `tel` are understood; any other scheme is kept
/// by name so that a header carrying it (RFC 4475 §3.3.4) still parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme<'a> {
    /// `sip:`
    Sip,
    /// `sips:` (TLS end to end)
    Sips,
    /// `tel:` (RFC 3966)
    Tel,
    /// Any other absolute URI scheme, e.g. `im:` or `http:`.
    Other(&'a str),
}

/// A host as written in a URI or Via: a domain name, an IPv4 address or an IPv6 reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host<'a> {
    /// A domain name (not resolved here).
    Domain(&'a str),
    /// A dotted IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 reference, written in brackets on the wire.
    V6(Ipv6Addr),
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// A parsed URI borrowing its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uri<'a> {
    /// The whole URI as written.
    pub raw: &'a str,
    /// Its scheme.
    pub scheme: Scheme<'a>,
    /// User part (SIP) or the subscriber number (tel), still escaped.
    pub user: Option<&'a str>,
    /// Password after `user:` (deprecated but legal).
    pub password: Option<&'a str>,
    /// Host; `None` for `tel:` and other non-SIP schemes.
    pub host: Option<Host<'a>>,
    /// Port, if written.
    pub port: Option<u16>,
    /// URI parameters (`;transport=tcp;lr`), without the leading `;`.
    pub params: Params<'a>,
    /// URI headers after `?`, without the `?`.
    pub headers: Option<&'a str>,
}

impl<'a> Uri<'a> {
    /// Parses a URI. `s` must have no surrounding whitespace.
    pub fn parse(s: &'a str) -> Result<Uri<'a>, ParseError> {
        let colon = find_ascii(s, b':').ok_or(ParseError::Uri("missing scheme"))?;
        let scheme_str = &s[..colon];
        if scheme_str.is_empty()
            || !scheme_str.as_bytes()[0].is_ascii_alphabetic()
            || !scheme_str
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')
        {
            return Err(ParseError::Uri("bad scheme"));
        }
        let rest = &s[colon + 1..];
        if rest.is_empty() {
            return Err(ParseError::Uri("empty URI"));
        }
        if rest.bytes().any(|b| text::is(b, text::URI_ILLEGAL)) {
            return Err(ParseError::Uri("illegal character in URI"));
        }
        let scheme = if scheme_str.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if scheme_str.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else if scheme_str.eq_ignore_ascii_case("tel") {
            Scheme::Tel
        } else {
            Scheme::Other(scheme_str)
        };
        let mut uri = Uri {
            raw: s,
            scheme,
            user: None,
            password: None,
            host: None,
            port: None,
            params: Params::empty(),
            headers: None,
        };
        match scheme {
            Scheme::Sip | Scheme::Sips => parse_sip_rest(rest, &mut uri)?,
            Scheme::Tel => {
                let (number, params) = match find_ascii(rest, b';') {
                    Some(i) => (&rest[..i], &rest[i + 1..]),
                    None => (rest, ""),
                };
                if number.is_empty()
                    || !number.bytes().all(|b| {
                        b.is_ascii_hexdigit()
                            || matches!(b, b'+' | b'-' | b'.' | b'(' | b')' | b'*' | b'#')
                    })
                {
                    return Err(ParseError::Uri("bad tel number"));
                }
                uri.user = Some(number);
                uri.params = Params::parse(params)?;
            }
            Scheme::Other(_) => {}
        }
        Ok(uri)
    }

    /// The host and port as `host[:port]` text, for building a Via or Host-like value.
    pub fn host_port(&self) -> String {
        match (self.host, self.port) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => String::new(),
        }
    }

    /// Whether the URI carries the `lr` parameter (a loose router, RFC 3261 §16.12).
    pub fn is_loose_router(&self) -> bool {
        self.params.get("lr").is_some()
    }

    /// The `transport` URI parameter, if any.
    pub fn transport_param(&self) -> Option<&'a str> {
        self.params.get("transport").flatten()
    }
}

impl fmt::Display for Uri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.raw)
    }
}

/// Checks `%HH` escapes and that every other byte is of `class` (unreserved bytes and the
/// part's own extras, see [`text::URI_USER`] and the others).
fn check_escaped(s: &str, class: Class, what: &'static str) -> Result<(), ParseError> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            let escape =
                i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit();
            if escape {
                i += 3;
                continue;
            }
            // RFC 4475 §3.1.1.5: a `%` that is not an escape is tolerated in user parts.
            if class != text::URI_USER {
                return Err(ParseError::Uri(what));
            }
        } else if !text::is(c, class) {
            return Err(ParseError::Uri(what));
        }
        i += 1;
    }
    Ok(())
}

fn parse_sip_rest<'a>(rest: &'a str, uri: &mut Uri<'a>) -> Result<(), ParseError> {
    // Neither URI parameters nor headers may hold an unescaped '@' (RFC 3261 §25.1), but a
    // user part may hold '?' and ';' (RFC 4475 §3.1.1.2, §3.1.1.9): the last '@' ends it.
    // The host part is walked once for where its parameters and headers begin (it was one
    // search for each): a URI is in every To, Contact and Request-URI.
    let (userinfo, hostpart) = match rfind_ascii(rest, b'@') {
        Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
        None => (None, rest),
    };
    let h = hostpart.as_bytes();
    // The first ';' and '?' of the host part: parameters come before headers.
    let (mut semi, mut query) = (None, None);
    for (i, &c) in h.iter().enumerate() {
        match c {
            b';' if semi.is_none() && query.is_none() => semi = Some(i),
            b'?' => {
                query = Some(i);
                break;
            }
            _ => {}
        }
    }
    let before_query = match query {
        Some(q) => {
            let headers = &hostpart[q + 1..];
            check_escaped(headers, text::URI_HEADER, "bad URI header")?;
            uri.headers = Some(headers);
            &hostpart[..q]
        }
        None => hostpart,
    };
    if let Some(ui) = userinfo {
        let (user, password) = match find_ascii(ui, b':') {
            Some(i) => (&ui[..i], Some(&ui[i + 1..])),
            None => (ui, None),
        };
        if user.is_empty() {
            return Err(ParseError::Uri("empty user"));
        }
        check_escaped(user, text::URI_USER, "bad user part")?;
        if let Some(p) = password {
            check_escaped(p, text::URI_PASSWORD, "bad password")?;
        }
        uri.user = Some(user);
        uri.password = password;
    }
    let (hostport, params) = match semi {
        Some(i) => (&before_query[..i], &before_query[i + 1..]),
        None => (before_query, ""),
    };
    let (host, port) = parse_host_port(hostport)?;
    uri.host = Some(host);
    uri.port = port;
    if !params.is_empty() {
        uri.params = Params::parse_each(params, |name, value| {
            check_escaped(name, text::URI_PARAM, "bad URI parameter")?;
            match value {
                Some(v) => check_escaped(v, text::URI_PARAM, "bad URI parameter"),
                None => Ok(()),
            }
        })?;
    }
    Ok(())
}

/// Parses `host[:port]` where host may be an IPv6 reference in brackets.
pub fn parse_host_port(s: &str) -> Result<(Host<'_>, Option<u16>), ParseError> {
    if let Some(inner) = s.strip_prefix('[') {
        let end = inner
            .find(']')
            .ok_or(ParseError::Uri("unclosed IPv6 reference"))?;
        let addr: Ipv6Addr = inner[..end]
            .parse()
            .map_err(|_| ParseError::Uri("bad IPv6 address"))?;
        let after = &inner[end + 1..];
        let port = match after {
            "" => None,
            p => Some(parse_port(
                p.strip_prefix(':')
                    .ok_or(ParseError::Uri("junk after host"))?,
            )?),
        };
        return Ok((Host::V6(addr), port));
    }
    let (h, port) = match find_ascii(s, b':') {
        Some(i) => (&s[..i], Some(parse_port(&s[i + 1..])?)),
        None => (s, None),
    };
    Ok((parse_host(h)?, port))
}

/// Parses a host without port: a domain name, IPv4 address, or bracketed IPv6 reference.
pub fn parse_host(h: &str) -> Result<Host<'_>, ParseError> {
    if let Some(inner) = h.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
        return inner
            .parse()
            .map(Host::V6)
            .map_err(|_| ParseError::Uri("bad IPv6 address"));
    }
    if h.is_empty() {
        return Err(ParseError::Uri("empty host"));
    }
    // An address fails at its first byte that is neither digit nor dot, so a name costs
    // little here; all digits and dots but not an address is a name, as in `1.2.3`.
    if h.as_bytes()[0].is_ascii_digit() {
        if let Some(a) = parse_ipv4(h.as_bytes()) {
            return Ok(Host::V4(a));
        }
    }
    if !h
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        || h.starts_with('-')
        || h.starts_with('.')
    {
        return Err(ParseError::Uri("bad host name"));
    }
    Ok(Host::Domain(h))
}

/// A dotted-quad IPv4 address, read as `Ipv4Addr::from_str` reads one (four parts of one
/// to three digits, none above 255, no leading zero) in a fraction of its instructions: an
/// address is in the Via, Contact and URIs of every message.
pub(crate) fn parse_ipv4(s: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let (mut part, mut digits, mut value, mut first) = (0usize, 0usize, 0u16, 0u8);
    for &c in s {
        match c {
            b'0'..=b'9' => {
                if digits == 0 {
                    first = c;
                } else if first == b'0' || digits == 3 {
                    return None;
                }
                value = value * 10 + u16::from(c - b'0');
                digits += 1;
            }
            b'.' if digits > 0 && part < 3 => {
                octets[part] = u8::try_from(value).ok()?;
                (part, digits, value) = (part + 1, 0, 0);
            }
            _ => return None,
        }
    }
    if part != 3 || digits == 0 {
        return None;
    }
    octets[3] = u8::try_from(value).ok()?;
    Some(Ipv4Addr::from(octets))
}

fn parse_port(p: &str) -> Result<u16, ParseError> {
    if p.is_empty() || p.len() > 5 {
        return Err(ParseError::Uri("bad port"));
    }
    let mut n: u32 = 0;
    for &c in p.as_bytes() {
        if !c.is_ascii_digit() {
            return Err(ParseError::Uri("bad port"));
        }
        n = n * 10 + u32::from(c - b'0');
    }
    u16::try_from(n).map_err(|_| ParseError::Uri("port out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uri_parts() {
        let u = Uri::parse("sip:alice:pw@example.com:5070;transport=tcp;lr?Subject=hi").unwrap();
        assert_eq!(u.scheme, Scheme::Sip);
        assert_eq!(u.user, Some("alice"));
        assert_eq!(u.password, Some("pw"));
        assert_eq!(u.host, Some(Host::Domain("example.com")));
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.transport_param(), Some("tcp"));
        assert!(u.is_loose_router());
        assert_eq!(u.headers, Some("Subject=hi"));
    }

    #[test]
    fn ipv6_and_tel() {
        let u = Uri::parse("sips:[2001:db8::10]:5061").unwrap();
        assert_eq!(u.host, Some(Host::V6("2001:db8::10".parse().unwrap())));
        assert_eq!(u.port, Some(5061));
        let t = Uri::parse("tel:+39-0771-286891;phone-context=+39").unwrap();
        assert_eq!(t.scheme, Scheme::Tel);
        assert_eq!(t.user, Some("+39-0771-286891"));
        assert!(Uri::parse("sip:2001:db8::10").is_err());
        assert!(Uri::parse("sip:[2001:db8:::192.0.2.1]").is_err());
    }

    #[test]
    fn escapes_and_extras_by_part() {
        // A stray `%` is tolerated in the user part only (RFC 4475 §3.1.1.5).
        assert!(Uri::parse("sip:100%@example.com").is_ok());
        assert!(Uri::parse("sip:a@example.com;p=100%").is_err());
        assert!(Uri::parse("sip:a%20b@example.com;p=a%2Cb?h=x%3Dy").is_ok());
        assert!(Uri::parse("sip:a%2@example.com").is_ok());
        assert!(Uri::parse("sip:a@example.com;p=%2").is_err());
        // Each part's own extras.
        assert!(Uri::parse("sip:a;b?c/d@example.com").is_ok());
        assert!(Uri::parse("sip:a:p&=+$,@example.com").is_ok());
        assert!(Uri::parse("sip:a:p;x@example.com").is_err());
        assert!(Uri::parse("sip:a@example.com;maddr=[::1];x=a:c").is_ok());
        assert!(Uri::parse("sip:a@example.com;x=a,b").is_err());
        assert!(Uri::parse("sip:a@example.com?h=[a]/b?c:d+$=&e").is_ok());
        assert!(Uri::parse("sip:a@example.com?h=a,b").is_err());
        // Quoted parameter values are checked without their quotes.
        assert!(Uri::parse("sip:a@example.com;x=\"y\"").is_err());
    }

    #[test]
    fn ipv4_reads_as_std_does() {
        let parts = [
            "0", "1", "9", "10", "01", "99", "100", "255", "256", "999", "0255", "",
        ];
        for a in parts {
            for b in parts {
                for rest in ["1.2", "255.0", "1", "1.2.3", "1..2", "1.2."] {
                    let s = format!("{a}.{b}.{rest}");
                    assert_eq!(parse_ipv4(s.as_bytes()), s.parse().ok(), "{s}");
                }
            }
        }
    }

    #[test]
    fn rejects_bad() {
        for bad in [
            "",
            "sip:",
            "nocolon",
            "sip:a b@c",
            "sip:user@",
            "sip:@host",
            "1x:y",
        ] {
            assert!(Uri::parse(bad).is_err(), "{bad}");
        }
    }
}

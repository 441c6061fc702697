//! Header names and the typed values a user agent reads: Via, name-addr headers (From, To,
//! Contact, Route, Record-Route, P-Asserted-Identity), CSeq, and the small scalar headers.
//!
//! Values borrow the message. A header value may span folded lines; LWS (including the CRLF
//! of a fold) is skipped wherever the grammar allows it.

use std::fmt;

use super::error::ParseError;
use super::params::{split_quoted, Params};
use super::text::{find_ascii, is_lws, is_token, is_token_byte, quoted_end, rfind_ascii, trim_lws};
use super::uri::{parse_host, parse_host_port, Host, Uri};

/// A SIP method. Unknown extension methods keep their name (RFC 4475 §3.1.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method<'a> {
    /// INVITE
    Invite,
    /// ACK
    Ack,
    /// BYE
    Bye,
    /// CANCEL
    Cancel,
    /// OPTIONS
    Options,
    /// REGISTER
    Register,
    /// INFO (RFC 6086)
    Info,
    /// UPDATE (RFC 3311)
    Update,
    /// PRACK (RFC 3262)
    Prack,
    /// SUBSCRIBE
    Subscribe,
    /// NOTIFY
    Notify,
    /// REFER
    Refer,
    /// MESSAGE
    Message,
    /// PUBLISH
    Publish,
    /// Any other (extension) method, case preserved: methods are case-sensitive.
    Other(&'a str),
}

impl<'a> Method<'a> {
    /// Reads a method token. Methods are case-sensitive (RFC 3261 §7.1).
    pub fn parse(s: &'a str) -> Result<Self, ParseError> {
        Ok(match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "INFO" => Method::Info,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            other if is_token(other) => Method::Other(other),
            _ => return Err(ParseError::StartLine("bad method")),
        })
    }

    /// The method's name as sent.
    pub fn as_str(&self) -> &'a str {
        match self {
            Method::Other(s) => s,
            known => known.standard_name().unwrap_or_default(),
        }
    }

    /// The name of a method RFC 3261 or its extensions define (`None` for
    /// [`Method::Other`]): a bounded set, fit for a metric label.
    pub fn standard_name(&self) -> Option<&'static str> {
        Some(match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Other(_) => return None,
        })
    }
}

impl fmt::Display for Method<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! header_names {
    ($( $variant:ident => $full:literal $(, $compact:literal)? ;)*) => {
        /// Header names the engine understands; anything else is `Other`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum HeaderName<'a> {
            $(
                #[doc = $full]
                $variant,
            )*
            /// Any other header, name as written.
            Other(&'a str),
        }

        impl<'a> HeaderName<'a> {
            /// Looks a header name up, case-insensitively, including compact forms.
            pub fn parse(name: &'a str) -> Self {
                // Compare the first letter (a constant per arm) before the whole name.
                let first = match name.as_bytes().first() {
                    Some(b) => b.to_ascii_lowercase(),
                    None => return HeaderName::Other(name),
                };
                $(
                    if (name.len() == $full.len()
                        && first == $full.as_bytes()[0].to_ascii_lowercase()
                        && name.eq_ignore_ascii_case($full))
                        $(|| (name.len() == 1 && name.eq_ignore_ascii_case($compact)))?
                    {
                        return HeaderName::$variant;
                    }
                )*
                HeaderName::Other(name)
            }

            /// The canonical (long) name, for serializing.
            pub fn as_str(&self) -> &'a str {
                match self {
                    $( HeaderName::$variant => $full, )*
                    HeaderName::Other(s) => s,
                }
            }
        }
    };
}

header_names! {
    Via => "Via", "v";
    From => "From", "f";
    To => "To", "t";
    CallId => "Call-ID", "i";
    CSeq => "CSeq";
    Contact => "Contact", "m";
    RecordRoute => "Record-Route";
    Route => "Route";
    MaxForwards => "Max-Forwards";
    ContentType => "Content-Type", "c";
    ContentLength => "Content-Length", "l";
    ContentEncoding => "Content-Encoding", "e";
    WwwAuthenticate => "WWW-Authenticate";
    ProxyAuthenticate => "Proxy-Authenticate";
    Authorization => "Authorization";
    ProxyAuthorization => "Proxy-Authorization";
    RetryAfter => "Retry-After";
    Require => "Require";
    ProxyRequire => "Proxy-Require";
    Supported => "Supported", "k";
    Unsupported => "Unsupported";
    SessionExpires => "Session-Expires", "x";
    MinSe => "Min-SE";
    RSeq => "RSeq";
    RAck => "RAck";
    Allow => "Allow";
    Accept => "Accept";
    PAssertedIdentity => "P-Asserted-Identity";
    Expires => "Expires";
    Date => "Date";
    Subject => "Subject", "s";
    Event => "Event", "o";
    UserAgent => "User-Agent";
    Server => "Server";
    Reason => "Reason";
}

/// One header line (or folded group of lines) of a parsed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// The recognised name.
    pub name: HeaderName<'a>,
    /// The value, trimmed at both ends; may contain folds.
    pub value: &'a str,
}

/// `Via: SIP/2.0/UDP host:port;branch=...`, one element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'a> {
    /// Transport token (`UDP`, `TCP`, ... any token is accepted).
    pub transport: &'a str,
    /// The sent-by host.
    pub host: Host<'a>,
    /// The sent-by port, if written.
    pub port: Option<u16>,
    /// Via parameters.
    pub params: Params<'a>,
    /// The `branch` parameter's value, found by the walk that checks the parameters: every
    /// message is matched to its transaction by it, so it is not looked up again.
    branch: Option<&'a str>,
}

impl<'a> Via<'a> {
    /// Parses one Via element (`sent-protocol LWS sent-by *(;param)`), LWS allowed around `/`.
    pub fn parse(s: &'a str) -> Result<Self, ParseError> {
        const E: ParseError = ParseError::Header("Via");
        let s = trim_lws(s);
        let mut rest = s;
        let take_token = |rest: &mut &'a str| -> Result<&'a str, ParseError> {
            let r = trim_lws(rest);
            let end = r.bytes().position(|b| !is_token_byte(b)).unwrap_or(r.len());
            let (tok, after) = r.split_at(end);
            if tok.is_empty() {
                return Err(E);
            }
            *rest = after;
            Ok(tok)
        };
        let name = take_token(&mut rest)?;
        let slash = |rest: &mut &'a str| -> Result<(), ParseError> {
            let r = trim_lws(rest);
            *rest = r.strip_prefix('/').ok_or(E)?;
            Ok(())
        };
        slash(&mut rest)?;
        let version = take_token(&mut rest)?;
        slash(&mut rest)?;
        let transport = take_token(&mut rest)?;
        if !name.eq_ignore_ascii_case("SIP") || version != "2.0" {
            return Err(E);
        }
        if !rest.starts_with(|c: char| c.is_ascii() && is_lws(c as u8)) {
            return Err(E);
        }
        let rest = trim_lws(rest);
        let (sent_by, params) = match find_ascii(rest, b';') {
            Some(i) => (trim_lws(&rest[..i]), &rest[i + 1..]),
            None => (rest, ""),
        };
        // LWS is allowed around the port's colon: remove it without copying by only
        // accepting the compact form or `host : port` split.
        let (host, port) = match parse_host_port(sent_by) {
            Ok(hp) => hp,
            Err(_) => {
                let i = rfind_ascii(sent_by, b':').ok_or(E)?;
                let (h, p) = (trim_lws(&sent_by[..i]), trim_lws(&sent_by[i + 1..]));
                let (host, none) = parse_host_port(h).map_err(|_| E)?;
                if none.is_some() {
                    return Err(E);
                }
                (host, Some(p.parse().map_err(|_| E)?))
            }
        };
        // One walk over the list checks its grammar and the values of `received` and
        // `rport`, and finds the branch (the first `branch`, as `Params::get` finds it).
        let mut branch = None;
        let params = Params::parse_each(params, |name, value| {
            if branch.is_none() && name.eq_ignore_ascii_case("branch") {
                branch = Some(value);
            }
            check_via_param(name, value)
        })
        .map_err(|_| E)?;
        let branch = branch.flatten();
        Ok(Via {
            transport,
            host,
            port,
            params,
            branch,
        })
    }

    /// The `branch` parameter: the transaction identifier when it starts with `z9hG4bK`.
    pub fn branch(&self) -> Option<&'a str> {
        self.branch
    }

    /// The `received` parameter.
    pub fn received(&self) -> Option<&'a str> {
        self.params.get("received").flatten()
    }

    /// The `rport` parameter: `None` if absent, `Some(None)` if present without a value.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| p.parse().ok()))
    }
}

/// The grammar of the two Via parameters whose values have one of their own (every
/// response brings our Via back with both).
fn check_via_param(name: &str, value: Option<&str>) -> Result<(), ParseError> {
    const E: ParseError = ParseError::Header("Via");
    match value {
        Some(r) if name.eq_ignore_ascii_case("received") => {
            let r = r.trim_start_matches('[').trim_end_matches(']');
            let ip = if r.contains(':') {
                r.parse::<std::net::Ipv6Addr>().is_ok()
            } else {
                matches!(parse_host(r), Ok(Host::V4(_)))
            };
            ip.then_some(()).ok_or(E)
        }
        Some(p) if name.eq_ignore_ascii_case("rport") => {
            p.parse::<u16>().map(|_| ()).map_err(|_| E)
        }
        _ => Ok(()),
    }
}

/// A `name-addr` or `addr-spec` with header parameters: From, To, Contact, Route,
/// Record-Route, P-Asserted-Identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// Display name, quotes removed (escapes kept), if any.
    pub display: Option<&'a str>,
    /// The URI.
    pub uri: Uri<'a>,
    /// Header parameters after the URI (`tag`, `expires`, `q`, ...).
    pub params: Params<'a>,
}

impl<'a> NameAddr<'a> {
    /// Parses `[display-name] <URI> *(;param)` or `addr-spec *(;param)`.
    pub fn parse(s: &'a str, what: &'static str) -> Result<Self, ParseError> {
        let e = ParseError::Header(what);
        let s = trim_lws(s);
        if s.is_empty() {
            return Err(e);
        }
        let (display, uri_str, rest) = if let Some(lt) = find_laquot(s).map_err(|_| e.clone())? {
            let before = trim_lws(&s[..lt]);
            let display = if before.is_empty() {
                None
            } else if before.starts_with('"') {
                let end = quoted_end(before, 0).ok_or(e.clone())?;
                if end != before.len() {
                    return Err(e);
                }
                Some(&before[1..end - 1])
            } else {
                // A display name of tokens separated by LWS.
                if !before.bytes().all(|b| is_token_byte(b) || is_lws(b)) {
                    return Err(e);
                }
                Some(before)
            };
            let gt = find_ascii(&s[lt..], b'>').ok_or(e.clone())? + lt;
            (display, &s[lt + 1..gt], &s[gt + 1..])
        } else {
            if s.starts_with('"') {
                return Err(e);
            }
            // addr-spec: the URI ends at the first ';' or LWS; its parameters belong to
            // the header, and it may not carry URI headers (RFC 3261 §20.10).
            let end = s
                .bytes()
                .position(|b| b == b';' || is_lws(b))
                .unwrap_or(s.len());
            let uri = &s[..end];
            if uri.contains('?') || uri.contains(',') {
                return Err(e);
            }
            (None, uri, &s[end..])
        };
        let uri = Uri::parse(uri_str).map_err(|_| e.clone())?;
        let rest = trim_lws(rest);
        let params = if rest.is_empty() {
            Params::empty()
        } else {
            let p = rest.strip_prefix(';').ok_or(e.clone())?;
            Params::parse(p).map_err(|_| e)?
        };
        Ok(NameAddr {
            display,
            uri,
            params,
        })
    }

    /// The `tag` parameter (dialog identification).
    pub fn tag(&self) -> Option<&'a str> {
        self.params.get("tag").flatten()
    }
}

/// Finds the `<` that opens a URI, skipping a quoted display name. `Err` on an unbalanced
/// quote.
fn find_laquot(s: &str) -> Result<Option<usize>, ()> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => i = quoted_end(s, i).ok_or(())?,
            b'<' => return Ok(Some(i)),
            _ => i += 1,
        }
    }
    Ok(None)
}

/// `CSeq: 4711 INVITE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    /// Sequence number, below 2^31 (RFC 3261 §8.1.1.5).
    pub seq: u32,
    /// The method it numbers.
    pub method: Method<'a>,
}

impl<'a> CSeq<'a> {
    /// Parses `1*DIGIT LWS Method`.
    pub fn parse(s: &'a str) -> Result<Self, ParseError> {
        const E: ParseError = ParseError::Header("CSeq");
        let s = trim_lws(s);
        let split = s.bytes().position(is_lws).ok_or(E)?;
        let seq = parse_u32(&s[..split]).ok_or(E)?;
        if seq >= 1 << 31 {
            return Err(E);
        }
        let method = Method::parse(trim_lws(&s[split..])).map_err(|_| E)?;
        Ok(CSeq { seq, method })
    }
}

/// `Session-Expires: 1800;refresher=uac` (RFC 4028).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpires {
    /// Interval in seconds.
    pub secs: u32,
    /// Who refreshes: `Some(true)` for `uac`, `Some(false)` for `uas`.
    pub refresher_is_uac: Option<bool>,
}

/// Parses a decimal without sign, at most 10 digits, into u32.
pub fn parse_u32(s: &str) -> Option<u32> {
    let s = trim_lws(s);
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Splits a comma-separated header value into trimmed elements, honouring quotes and
/// angle brackets. Empty elements are kept so that callers can reject them.
pub fn split_list(s: &str) -> impl Iterator<Item = &str> {
    split_quoted(s, b',').map(trim_lws)
}

/// Parses a `Date` value (RFC 1123 form, always GMT, RFC 3261 §20.17).
pub fn check_date(s: &str) -> Result<(), ParseError> {
    const E: ParseError = ParseError::Header("Date");
    let parts: Vec<&str> = trim_lws(s).split_ascii_whitespace().collect();
    let [wk, day, mon, year, time, zone] = parts.as_slice() else {
        return Err(E);
    };
    let wk_ok = ["Mon,", "Tue,", "Wed,", "Thu,", "Fri,", "Sat,", "Sun,"].contains(wk);
    let mon_ok = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .contains(mon);
    let digits = |x: &str, n: usize| x.len() == n && x.bytes().all(|b| b.is_ascii_digit());
    let t: Vec<&str> = time.split(':').collect();
    let time_ok = t.len() == 3 && t.iter().all(|x| digits(x, 2));
    if wk_ok && mon_ok && digits(day, 2) && digits(year, 4) && time_ok && *zone == "GMT" {
        Ok(())
    } else {
        Err(E)
    }
}

/// Checks a comma-separated list of tokens (Require, Supported, Allow, ...).
pub fn check_token_list(s: &str, what: &'static str) -> Result<(), ParseError> {
    if trim_lws(s).is_empty() {
        return Ok(());
    }
    if split_list(s).all(is_token) {
        Ok(())
    } else {
        Err(ParseError::Header(what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_variants() {
        let v = Via::parse("SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.branch(), Some("390skdjuw"));
        let v = Via::parse("SIP/2.0/UDP [2001:db8::9:1]:6050;rport;branch=z9hG4bKx").unwrap();
        assert_eq!(v.port, Some(6050));
        assert_eq!(v.rport(), Some(None));
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;").is_err());
        assert!(Via::parse("SIP/3.0/UDP h").is_err());
    }

    #[test]
    fn the_branch_kept_at_parse_is_the_one_params_find() {
        for params in [
            "branch=z9hG4bKa",
            "BRANCH=z9hG4bKa;branch=z9hG4bKb",
            "branch;branch=z9hG4bKb",
            "rport;branch=\"z9hG4bKq\"",
            "rport",
        ] {
            let text = format!("SIP/2.0/UDP h;{params}");
            let v = Via::parse(&text).unwrap();
            assert_eq!(v.branch(), v.params.get("branch").flatten(), "{params}");
        }
    }

    #[test]
    fn via_received_and_rport_values_have_their_grammar() {
        let ok = |p: &str| Via::parse(&format!("SIP/2.0/UDP h;branch=z9hG4bKx;{p}")).is_ok();
        for good in [
            "received=192.0.2.1",
            "received=2001:db8::1",
            "received=[2001:db8::1]",
            "rport=5060",
            "rport",
            "RECEIVED=10.0.0.1;Rport=1",
        ] {
            assert!(ok(good), "{good}");
        }
        for bad in [
            "received=host.example",
            "received=192.0.2",
            "received=192.0.2.256",
            "received=01.2.3.4",
            "received=2001:db8::g",
            "rport=65536",
            "rport=x",
        ] {
            assert!(!ok(bad), "{bad}");
        }
    }

    #[test]
    fn name_addrs() {
        let n = NameAddr::parse(
            "\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8",
            "From",
        )
        .unwrap();
        assert_eq!(n.tag(), Some("98asjd8"));
        let n = NameAddr::parse("caller<sip:caller@example.com>;tag=323", "From").unwrap();
        assert_eq!(n.display, Some("caller"));
        let n = NameAddr::parse("sip:user@example.com;tag=1", "To").unwrap();
        assert_eq!(n.tag(), Some("1"));
        assert!(NameAddr::parse("\"unterminated <sip:a@b>", "To").is_err());
        assert!(NameAddr::parse("Bell, Alexander <sip:a@b>", "To").is_err());
        assert!(NameAddr::parse("< sip:t.watson@example.org >", "To").is_err());
    }

    #[test]
    fn cseq() {
        let c = CSeq::parse("0009\r\n  INVITE").unwrap();
        assert_eq!((c.seq, c.method), (9, Method::Invite));
        assert!(CSeq::parse("36893488147419103232 REGISTER").is_err());
    }
}

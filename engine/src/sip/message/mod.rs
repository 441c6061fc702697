//! Parsing a SIP message from a datagram or a stream buffer, borrowing the bytes.
//!
//! [`parse`] checks the start line, splits and unfolds the header section without copying,
//! checks the grammar of every header the engine understands, and frames the body with
//! Content-Length. Typed values are re-read on demand from the borrowed text: each is a few
//! dozen bytes, so re-scanning is cheaper than storing every parsed header for every message.

use super::headers::{
    check_date, check_token_list, parse_u32, split_list, CSeq, Header, HeaderName, Method,
    NameAddr, SessionExpires, Via,
};
use super::params::Params;
use super::text::{find_ascii, is_token, trim_lws};
use super::uri::{Scheme, Uri};
use crate::sip::error::ParseError;

mod scan;
#[cfg(test)]
mod tests;

use scan::*;

/// Largest header section accepted (bytes); bigger ones are hostile or broken.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Largest number of header lines accepted.
pub const MAX_HEADERS: usize = 256;

/// A parsed request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// A request.
    Request(Request<'a>),
    /// A response.
    Response(Response<'a>),
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// The method.
    pub method: Method<'a>,
    /// The Request-URI.
    pub uri: Uri<'a>,
    /// The headers.
    pub headers: Headers<'a>,
    /// The body, framed by Content-Length.
    pub body: &'a [u8],
}

/// A parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response<'a> {
    /// Status code, 100..=699.
    pub status: u16,
    /// Reason phrase (may be empty).
    pub reason: &'a str,
    /// The headers.
    pub headers: Headers<'a>,
    /// The body, framed by Content-Length.
    pub body: &'a [u8],
}

impl<'a> Message<'a> {
    /// The headers of either kind.
    pub fn headers(&self) -> &Headers<'a> {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }

    /// The body of either kind.
    pub fn body(&self) -> &'a [u8] {
        match self {
            Message::Request(r) => r.body,
            Message::Response(r) => r.body,
        }
    }
}

/// The header lines of a message, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Headers<'a> {
    list: Vec<Header<'a>>,
    /// What validation parsed on the way, so that the handlers reading the topmost Via,
    /// From or To do not parse them a second time.
    parsed: Parsed<'a>,
}

/// Headers that validation parses anyway, kept: the topmost Via; the first Contact (of a
/// response, only of a 2xx to INVITE or REGISTER, the ones whose Contact is read); From (of
/// a request: a response's is not parsed), To and CSeq when the message gives one value for
/// each (a second, different line leaves it empty, and the accessor then reports
/// `Multiple` as it always did).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Parsed<'a> {
    pub(super) top_via: Option<Via<'a>>,
    pub(super) from: Option<NameAddr<'a>>,
    pub(super) to: Option<NameAddr<'a>>,
    pub(super) contact: Option<NameAddr<'a>>,
    pub(super) cseq: Option<CSeq<'a>>,
}

impl<'a> Headers<'a> {
    /// All header lines in order.
    pub fn iter(&self) -> impl Iterator<Item = &Header<'a>> {
        self.list.iter()
    }

    /// Values of every line with this name, in order.
    pub fn values(&self, name: HeaderName<'a>) -> impl Iterator<Item = &'a str> + '_ {
        self.list
            .iter()
            .filter(move |h| same_name(h.name, name))
            .map(|h| h.value)
    }

    /// The value of a header that must appear once: `Missing` or `Multiple` otherwise.
    pub fn single(&self, name: HeaderName<'a>, what: &'static str) -> Result<&'a str, ParseError> {
        let mut it = self.values(name);
        let first = it.next().ok_or(ParseError::Missing(what))?;
        if it.any(|v| v != first) {
            return Err(ParseError::Multiple(what));
        }
        Ok(first)
    }

    /// The value of the first line with this name.
    pub fn first(&self, name: HeaderName<'a>) -> Option<&'a str> {
        self.values(name).next()
    }

    /// Every element of every line with this name, comma-separated lists flattened.
    pub fn elements(&self, name: HeaderName<'a>) -> impl Iterator<Item = &'a str> + '_ {
        self.values(name).flat_map(split_list)
    }

    /// Every Via element, topmost first.
    pub fn vias(&self) -> impl Iterator<Item = Result<Via<'a>, ParseError>> + '_ {
        self.elements(HeaderName::Via).map(Via::parse)
    }

    /// The topmost Via: it identifies the transaction and where to send the response.
    pub fn top_via(&self) -> Result<Via<'a>, ParseError> {
        if let Some(via) = self.parsed.top_via {
            return Ok(via);
        }
        self.vias().next().ok_or(ParseError::Missing("Via"))?
    }

    /// The From header.
    pub fn from(&self) -> Result<NameAddr<'a>, ParseError> {
        if let Some(from) = self.parsed.from {
            return Ok(from);
        }
        NameAddr::parse(self.single(HeaderName::From, "From")?, "From")
    }

    /// The To header.
    pub fn to(&self) -> Result<NameAddr<'a>, ParseError> {
        if let Some(to) = self.parsed.to {
            return Ok(to);
        }
        NameAddr::parse(self.single(HeaderName::To, "To")?, "To")
    }

    /// The Call-ID.
    pub fn call_id(&self) -> Result<&'a str, ParseError> {
        self.single(HeaderName::CallId, "Call-ID")
    }

    /// The CSeq.
    pub fn cseq(&self) -> Result<CSeq<'a>, ParseError> {
        if let Some(cseq) = self.parsed.cseq {
            return Ok(cseq);
        }
        CSeq::parse(self.single(HeaderName::CSeq, "CSeq")?)
    }

    /// Every Contact (a `*` Contact, only legal in REGISTER, is skipped).
    pub fn contacts(&self) -> Result<Vec<NameAddr<'a>>, ParseError> {
        self.elements(HeaderName::Contact)
            .filter(|e| *e != "*")
            .map(|e| NameAddr::parse(e, "Contact"))
            .collect()
    }

    /// The first Contact (the remote target of a dialog), None without one or when one
    /// does not parse.
    pub fn first_contact(&self) -> Option<NameAddr<'a>> {
        if let Some(c) = self.parsed.contact {
            return Some(c);
        }
        self.contacts().ok()?.into_iter().next()
    }

    /// The Record-Route set, in the order received.
    pub fn record_routes(&self) -> Result<Vec<NameAddr<'a>>, ParseError> {
        self.elements(HeaderName::RecordRoute)
            .map(|e| NameAddr::parse(e, "Record-Route"))
            .collect()
    }

    /// The Route set, in order.
    pub fn routes(&self) -> Result<Vec<NameAddr<'a>>, ParseError> {
        self.elements(HeaderName::Route)
            .map(|e| NameAddr::parse(e, "Route"))
            .collect()
    }

    /// P-Asserted-Identity values (RFC 3325).
    pub fn p_asserted_identity(&self) -> Result<Vec<NameAddr<'a>>, ParseError> {
        self.elements(HeaderName::PAssertedIdentity)
            .map(|e| NameAddr::parse(e, "P-Asserted-Identity"))
            .collect()
    }

    /// Max-Forwards (0..=255), if present.
    pub fn max_forwards(&self) -> Result<Option<u8>, ParseError> {
        self.first(HeaderName::MaxForwards)
            .map(|v| {
                parse_u32(v)
                    .and_then(|n| u8::try_from(n).ok())
                    .ok_or(ParseError::Header("Max-Forwards"))
            })
            .transpose()
    }

    /// The media type of the body (`application/sdp`), parameters stripped, if present.
    pub fn content_type(&self) -> Option<&'a str> {
        self.first(HeaderName::ContentType)
            .map(|v| trim_lws(v.split(';').next().unwrap_or("")))
    }

    /// Content-Length; `Multiple` when several lines disagree (RFC 4475 §3.3.9).
    pub fn content_length(&self) -> Result<Option<usize>, ParseError> {
        let mut result = None;
        for v in self.values(HeaderName::ContentLength) {
            let n = parse_content_length(v)?;
            if result.is_some_and(|r| r != n) {
                return Err(ParseError::Multiple("Content-Length"));
            }
            result = Some(n);
        }
        Ok(result)
    }

    /// WWW-Authenticate challenges (raw values; `sip::auth` parses them).
    pub fn www_authenticate(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.values(HeaderName::WwwAuthenticate)
    }

    /// Proxy-Authenticate challenges (raw values).
    pub fn proxy_authenticate(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.values(HeaderName::ProxyAuthenticate)
    }

    /// Authorization values (raw).
    pub fn authorization(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.values(HeaderName::Authorization)
    }

    /// Retry-After in seconds (comment and parameters ignored).
    pub fn retry_after(&self) -> Option<u32> {
        self.first(HeaderName::RetryAfter).and_then(|v| {
            let end = v
                .bytes()
                .position(|b| !b.is_ascii_digit())
                .unwrap_or(v.len());
            parse_u32(&v[..end])
        })
    }

    /// Option tags of Require.
    pub fn require(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.elements(HeaderName::Require).filter(|t| !t.is_empty())
    }

    /// Option tags of Supported.
    pub fn supported(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.elements(HeaderName::Supported)
            .filter(|t| !t.is_empty())
    }

    /// Methods listed in Allow.
    pub fn allow(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.elements(HeaderName::Allow).filter(|t| !t.is_empty())
    }

    /// Session-Expires (RFC 4028), if present and well formed.
    pub fn session_expires(&self) -> Option<SessionExpires> {
        let v = self.first(HeaderName::SessionExpires)?;
        let (secs, params) = match v.find(';') {
            Some(i) => (&v[..i], &v[i + 1..]),
            None => (v, ""),
        };
        let secs = parse_u32(secs)?;
        let refresher = Params::parse(params).ok()?.get("refresher").flatten();
        Some(SessionExpires {
            secs,
            refresher_is_uac: refresher.map(|r| r.eq_ignore_ascii_case("uac")),
        })
    }

    /// Min-SE in seconds (RFC 4028).
    pub fn min_se(&self) -> Option<u32> {
        self.first(HeaderName::MinSe)
            .and_then(|v| parse_u32(v.split(';').next().unwrap_or("")))
    }

    /// RSeq of a reliable provisional response (RFC 3262).
    pub fn rseq(&self) -> Option<u32> {
        self.first(HeaderName::RSeq).and_then(parse_u32)
    }

    /// Expires in seconds.
    pub fn expires(&self) -> Option<u32> {
        self.first(HeaderName::Expires).and_then(parse_u32)
    }
}

/// Parses one message from a datagram. Octets after the Content-Length body are ignored
/// (RFC 4475 §3.1.1.8); a missing Content-Length means the body runs to the end.
pub fn parse(buf: &[u8]) -> Result<Message<'_>, ParseError> {
    parse_framed(buf, false).map(|(m, _)| m)
}

/// How many bytes the next message in a stream buffer takes (leading CRLFs included), or
/// `None` if more bytes are needed. On a stream, Content-Length is mandatory (RFC 3261
/// §18.3); a missing one counts as zero.
pub fn stream_message_len(buf: &[u8]) -> Result<Option<usize>, ParseError> {
    let skip = skip_leading_crlf(buf);
    let Some((end, body_start)) = header_end(&buf[skip..]) else {
        if buf.len() - skip > MAX_HEADER_BYTES {
            return Err(ParseError::HeaderLine);
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[skip..skip + end]).map_err(|_| ParseError::Utf8)?;
    let mut len = 0;
    for line in head.split("\r\n").skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            if HeaderName::parse(trim_lws(name)) == HeaderName::ContentLength {
                len = parse_content_length(value)?;
                break;
            }
        }
    }
    let total = skip + body_start + len;
    Ok((buf.len() >= total).then_some(total))
}

/// Parses one message; with `stream` set, a missing Content-Length means an empty body.
/// Returns the message and the number of bytes it took.
pub fn parse_framed(buf: &[u8], stream: bool) -> Result<(Message<'_>, usize), ParseError> {
    let skip = skip_leading_crlf(buf);
    let buf_from = &buf[skip..];
    let (end, body_start) = header_end(buf_from).ok_or(ParseError::Incomplete)?;
    if end > MAX_HEADER_BYTES {
        return Err(ParseError::HeaderLine);
    }
    let head = std::str::from_utf8(&buf_from[..end]).map_err(|_| ParseError::Utf8)?;
    let (start_line, header_text) = match find_ascii(head, b'\n') {
        Some(i) if i > 0 && head.as_bytes()[i - 1] == b'\r' => (&head[..i - 1], &head[i + 1..]),
        Some(_) => return Err(ParseError::StartLine("bare LF")),
        None => (head, ""),
    };
    // The message is assembled once, in the return value: built up in steps (headers, then
    // a response holding them, then the message, then the result) it was copied whole at
    // each one, a few kilobytes per message.
    let mut headers = Headers {
        list: split_headers(header_text)?,
        parsed: Parsed::default(),
    };
    let after_version = start_line.strip_prefix("SIP/");
    validate_headers(&headers.list, after_version.is_some(), &mut headers.parsed)?;

    let rest = &buf_from[body_start..];
    let body_len = body_len(&headers, rest.len(), stream)?;
    let body = &rest[..body_len];
    let consumed = skip + body_start + body_len;
    match after_version {
        Some(after_version) => {
            let (status, reason) = status_line(after_version)?;
            check_response_contacts(status, &mut headers)?;
            let r = Response {
                status,
                reason,
                headers,
                body,
            };
            Ok((Message::Response(r), consumed))
        }
        None => {
            let (method, uri) = request_line(start_line, &headers)?;
            let r = Request {
                method,
                uri,
                headers,
                body,
            };
            Ok((Message::Request(r), consumed))
        }
    }
}

/// The body's length: Content-Length when given (never past the bytes there are); without
/// it, nothing on a stream and the rest of the datagram otherwise.
fn body_len(headers: &Headers<'_>, available: usize, stream: bool) -> Result<usize, ParseError> {
    match headers.content_length() {
        Ok(Some(n)) if n > available => Err(ParseError::ContentLength),
        Ok(Some(n)) => Ok(n),
        Ok(None) if stream => Ok(0),
        Ok(None) => Ok(available),
        // Conflicting values: keep the message so the UAS can answer 400.
        Err(ParseError::Multiple(_)) => Ok(available),
        Err(e) => Err(e),
    }
}

/// A response's status code and reason phrase, from its status line after `SIP/`.
fn status_line<'a>(after_version: &'a str) -> Result<(u16, &'a str), ParseError> {
    // Byte searches, not `splitn(' ')`: this runs for every response.
    let at = |s: &'a str, what| {
        find_ascii(s, b' ')
            .map(|i| (&s[..i], &s[i + 1..]))
            .ok_or(ParseError::StartLine(what))
    };
    let (version, rest) = at(after_version, "no status code")?;
    let (code, reason) = at(rest, "no reason phrase")?;
    if version != "2.0" {
        return Err(ParseError::Version);
    }
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::StartLine("bad status code"));
    }
    let status: u16 = code
        .parse()
        .map_err(|_| ParseError::StartLine("bad status code"))?;
    if !(100..=699).contains(&status) {
        return Err(ParseError::StartLine("status code out of range"));
    }
    if reason.bytes().any(|b| b < b' ' && b != b'\t') {
        return Err(ParseError::StartLine("bad reason phrase"));
    }
    Ok((status, reason))
}

/// A request's method and Request-URI, from its request line; the CSeq's method must be
/// the same.
fn request_line<'a>(
    start_line: &'a str,
    headers: &Headers<'a>,
) -> Result<(Method<'a>, Uri<'a>), ParseError> {
    let mut parts = start_line.split(' ');
    let (Some(m), Some(u), Some(v), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::StartLine("request line needs three parts"));
    };
    let method = Method::parse(m)?;
    if !is_token(m) {
        return Err(ParseError::StartLine("bad method"));
    }
    if v != "SIP/2.0" {
        if v.starts_with("SIP/") {
            return Err(ParseError::Version);
        }
        return Err(ParseError::StartLine("bad version"));
    }
    let uri = Uri::parse(u)?;
    if matches!(uri.scheme, Scheme::Sip | Scheme::Sips) && uri.headers.is_some() {
        return Err(ParseError::Uri("headers in Request-URI"));
    }
    if let Ok(cseq) = headers.cseq() {
        if cseq.method != method {
            return Err(ParseError::Header("CSeq method"));
        }
    }
    Ok((method, uri))
}

//! Parsing a SIP message from a datagram or a stream buffer, borrowing the bytes.
//!
//! [`parse`] checks the start line, splits and unfolds the header section without copying,
//! checks the grammar of every header the engine understands, and frames the body with
//! Content-Length. Typed values are re-read on demand from the borrowed text: each is a few
//! dozen bytes, so re-scanning is cheaper than storing every parsed header for every message.

use super::error::ParseError;
use super::headers::{
    check_date, check_token_list, parse_u32, split_list, CSeq, Header, HeaderName, Method,
    NameAddr, SessionExpires, Via,
};
use super::params::Params;
use super::text::{is_token, trim_lws};
use super::uri::{Scheme, Uri};

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
        self.vias().next().ok_or(ParseError::Missing("Via"))?
    }

    /// The From header.
    pub fn from(&self) -> Result<NameAddr<'a>, ParseError> {
        NameAddr::parse(self.single(HeaderName::From, "From")?, "From")
    }

    /// The To header.
    pub fn to(&self) -> Result<NameAddr<'a>, ParseError> {
        NameAddr::parse(self.single(HeaderName::To, "To")?, "To")
    }

    /// The Call-ID.
    pub fn call_id(&self) -> Result<&'a str, ParseError> {
        self.single(HeaderName::CallId, "Call-ID")
    }

    /// The CSeq.
    pub fn cseq(&self) -> Result<CSeq<'a>, ParseError> {
        CSeq::parse(self.single(HeaderName::CSeq, "CSeq")?)
    }

    /// Every Contact (a `*` Contact, only legal in REGISTER, is skipped).
    pub fn contacts(&self) -> Result<Vec<NameAddr<'a>>, ParseError> {
        self.elements(HeaderName::Contact)
            .filter(|e| *e != "*")
            .map(|e| NameAddr::parse(e, "Contact"))
            .collect()
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

fn same_name(a: HeaderName<'_>, b: HeaderName<'_>) -> bool {
    match (a, b) {
        (HeaderName::Other(x), HeaderName::Other(y)) => x.eq_ignore_ascii_case(y),
        _ => a == b,
    }
}

fn parse_content_length(v: &str) -> Result<usize, ParseError> {
    let v = trim_lws(v);
    if v.is_empty() || v.len() > 9 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::ContentLength);
    }
    v.parse().map_err(|_| ParseError::ContentLength)
}

/// Finds the end of the header section: the index of the empty line's CRLF CRLF, and the
/// offset where the body starts.
fn header_end(buf: &[u8]) -> Option<(usize, usize)> {
    // Visit each LF (word-at-a-time) and look back for CR LF CR: far fewer comparisons
    // than testing every 4-byte window.
    let mut from = 3;
    while from < buf.len() {
        let lf = from + find_byte(&buf[from..], b'\n')?;
        if &buf[lf - 3..lf] == b"\r\n\r" {
            return Some((lf - 3, lf + 1));
        }
        from = lf + 1;
    }
    None
}

/// How many times `needle` occurs in `hay`, eight bytes at a time.
fn count_byte(hay: &[u8], needle: u8) -> usize {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let pattern = 0x0101_0101_0101_0101 * u64::from(needle);
    let mut chunks = hay.chunks_exact(8);
    let mut n = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ pattern;
        // High bit set exactly in the bytes of `x` that are zero (no borrow between bytes).
        let zero = !(((x & LOW7) + LOW7) | x | LOW7);
        n += zero.count_ones() as usize;
    }
    n + chunks.remainder().iter().filter(|&&b| b == needle).count()
}

/// The index of the first `needle` in `hay`, eight bytes at a time.
fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO * u64::from(needle);
    let mut chunks = hay.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ pattern;
        // The lowest flagged byte is exactly the first zero byte of `x`.
        let zero = x.wrapping_sub(LO) & !x & HI;
        if zero != 0 {
            return Some(offset + (zero.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == needle)
        .map(|i| offset + i)
}

/// Skips the CRLFs a peer may send before a message (RFC 3261 §7.5) or as a keep-alive.
fn skip_leading_crlf(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count()
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
    let (start_line, header_text) = match head.find('\n') {
        Some(i) if i > 0 && head.as_bytes()[i - 1] == b'\r' => (&head[..i - 1], &head[i + 1..]),
        Some(_) => return Err(ParseError::StartLine("bare LF")),
        None => (head, ""),
    };
    let headers = split_headers(header_text)?;
    let headers = Headers { list: headers };
    validate_headers(&headers)?;

    let rest = &buf_from[body_start..];
    let body_len = match headers.content_length() {
        Ok(Some(n)) => {
            if n > rest.len() {
                return Err(ParseError::ContentLength);
            }
            n
        }
        Ok(None) if stream => 0,
        Ok(None) => rest.len(),
        // Conflicting values: keep the message so the UAS can answer 400.
        Err(ParseError::Multiple(_)) => rest.len(),
        Err(e) => return Err(e),
    };
    let body = &rest[..body_len];
    let consumed = skip + body_start + body_len;

    let msg = if let Some(after_version) = start_line.strip_prefix("SIP/") {
        let mut parts = after_version.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        let code = parts
            .next()
            .ok_or(ParseError::StartLine("no status code"))?;
        let reason = parts
            .next()
            .ok_or(ParseError::StartLine("no reason phrase"))?;
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
        Message::Response(Response {
            status,
            reason,
            headers,
            body,
        })
    } else {
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
        Message::Request(Request {
            method,
            uri,
            headers,
            body,
        })
    };
    Ok((msg, consumed))
}

/// Splits the header section into lines, joining folded continuation lines. Each value is
/// one slice of the input, folds included. A CR or LF that is not part of a CRLF is an error.
fn split_headers(text: &str) -> Result<Vec<Header<'_>>, ParseError> {
    let mut out: Vec<Header<'_>> = Vec::with_capacity(24);
    if text.is_empty() {
        return Ok(out);
    }
    let bytes = text.as_bytes();
    let mut current: Option<(HeaderName<'_>, usize, usize)> = None; // name, value start, value end
    let mut start = 0;
    let mut lines = 0;
    while start <= text.len() {
        // One line: [start, end), then CRLF (or the end of the section).
        let (end, next) = match text[start..].find('\n') {
            Some(i) => {
                let lf = start + i;
                if lf == start || bytes[lf - 1] != b'\r' {
                    return Err(ParseError::HeaderLine);
                }
                (lf - 1, lf + 1)
            }
            None => (text.len(), text.len() + 1),
        };
        let line = &text[start..end];
        lines += 1;
        if line.starts_with(' ') || line.starts_with('\t') {
            let (_, _, value_end) = current.as_mut().ok_or(ParseError::HeaderLine)?;
            *value_end = end;
        } else {
            if let Some((name, value_start, value_end)) = current.take() {
                out.push(Header {
                    name,
                    value: trim_lws(&text[value_start..value_end]),
                });
            }
            if out.len() >= MAX_HEADERS {
                return Err(ParseError::HeaderLine);
            }
            // Names are short: a plain loop beats a memchr call here.
            let colon = line
                .bytes()
                .position(|b| b == b':')
                .ok_or(ParseError::HeaderLine)?;
            let name = line[..colon].trim_end_matches([' ', '\t']);
            if !is_token(name) {
                return Err(ParseError::HeaderLine);
            }
            current = Some((HeaderName::parse(name), start + colon + 1, end));
        }
        start = next;
    }
    if let Some((name, value_start, value_end)) = current {
        out.push(Header {
            name,
            value: trim_lws(&text[value_start..value_end]),
        });
    }
    // Every LF seen was checked to follow a CR; any other CR is a bare one. Counting them
    // once (vectorized) is cheaper than searching every line.
    if count_byte(bytes, b'\r') != lines - 1 {
        return Err(ParseError::HeaderLine);
    }
    Ok(out)
}

/// Checks the grammar of every header the engine reads, so that a message that parses can
/// be trusted by the layers above (RFC 4475 §3.1.2 lists what must be rejected).
fn validate_headers(h: &Headers<'_>) -> Result<(), ParseError> {
    for header in h.iter() {
        let v = header.value;
        match header.name {
            HeaderName::Via => {
                for e in split_list(v) {
                    Via::parse(e)?;
                }
            }
            HeaderName::From => {
                NameAddr::parse(v, "From")?;
            }
            HeaderName::To => {
                NameAddr::parse(v, "To")?;
            }
            HeaderName::Contact if v != "*" => {
                for e in split_list(v) {
                    let c = NameAddr::parse(e, "Contact")?;
                    if let Some(Some(exp)) = c.params.get("expires") {
                        parse_u32(exp).ok_or(ParseError::Header("Contact"))?;
                    }
                }
            }
            HeaderName::Route | HeaderName::RecordRoute | HeaderName::PAssertedIdentity => {
                for e in split_list(v) {
                    NameAddr::parse(e, "Route")?;
                }
            }
            HeaderName::CallId if v.is_empty() || v.bytes().any(|b| b <= b' ' || b >= 0x7f) => {
                return Err(ParseError::Header("Call-ID"));
            }
            HeaderName::CSeq => {
                CSeq::parse(v)?;
            }
            HeaderName::MaxForwards => {
                parse_u32(v)
                    .filter(|n| *n <= 255)
                    .ok_or(ParseError::Header("Max-Forwards"))?;
            }
            HeaderName::ContentLength => {
                parse_content_length(v)?;
            }
            HeaderName::Expires | HeaderName::RSeq | HeaderName::MinSe => {
                parse_u32(v.split(';').next().unwrap_or(""))
                    .ok_or(ParseError::Header("numeric"))?;
            }
            HeaderName::Date => check_date(v)?,
            HeaderName::Require | HeaderName::Supported | HeaderName::ProxyRequire => {
                check_token_list(v, "option tag list")?
            }
            HeaderName::Allow => check_token_list(v, "Allow")?,
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:+390771286891@carrier.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: <sip:+390771286891@carrier.example.com>\r\n\
From: \"Comune\" <sip:comune@192.0.2.1>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@192.0.2.1\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:dialer@192.0.2.1:5060>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\r\nv=0\nEXTRA";

    #[test]
    fn parses_invite() {
        let Message::Request(r) = parse(INVITE).unwrap() else {
            panic!("not a request")
        };
        assert_eq!(r.method, Method::Invite);
        assert_eq!(r.uri.user, Some("+390771286891"));
        assert_eq!(r.headers.call_id().unwrap(), "a84b4c76e66710@192.0.2.1");
        assert_eq!(r.headers.cseq().unwrap().seq, 314159);
        assert_eq!(r.headers.from().unwrap().tag(), Some("1928301774"));
        assert_eq!(
            r.headers.top_via().unwrap().branch(),
            Some("z9hG4bK776asdhds")
        );
        assert_eq!(r.body, b"v=0\n");
        assert_eq!(r.headers.content_type(), Some("application/sdp"));
    }

    #[test]
    fn stream_framing() {
        let mut two = INVITE[..INVITE.len() - 5].to_vec();
        let one = two.len();
        two.extend_from_slice(&INVITE[..INVITE.len() - 5]);
        assert_eq!(stream_message_len(&two).unwrap(), Some(one));
        assert_eq!(stream_message_len(&two[..one - 1]).unwrap(), None);
        let (_, used) = parse_framed(&two, true).unwrap();
        assert_eq!(used, one);
    }

    #[test]
    fn byte_scanners_match_naive() {
        let hay: Vec<u8> = (0..200u32)
            .map(|i| [b'\r', b'\n', b'a', 0x8d, 0x0d ^ 0x80][(i * 7 % 5) as usize])
            .collect();
        for start in 0..hay.len() {
            for needle in [b'\r', b'\n', b'a', 0x8d, b'z'] {
                let h = &hay[start..];
                assert_eq!(find_byte(h, needle), h.iter().position(|&b| b == needle));
                assert_eq!(
                    count_byte(h, needle),
                    h.iter().filter(|&&b| b == needle).count()
                );
            }
        }
        assert_eq!(header_end(b"A\r\n\r\nB"), Some((1, 5)));
        assert_eq!(header_end(b"\r\n\r\n"), Some((0, 4)));
        assert_eq!(header_end(b"\n\r\n\r\r\n"), None);
    }

    #[test]
    fn rejects_truncated_body() {
        assert_eq!(
            parse(&INVITE[..INVITE.len() - 7]),
            Err(ParseError::ContentLength)
        );
    }
}

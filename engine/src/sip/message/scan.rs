//! Scanning the raw bytes of a message: where the header section ends, splitting and
//! unfolding header lines, and the grammar checks every message must pass.

use super::*;

pub(super) fn same_name(a: HeaderName<'_>, b: HeaderName<'_>) -> bool {
    match (a, b) {
        (HeaderName::Other(x), HeaderName::Other(y)) => x.eq_ignore_ascii_case(y),
        _ => a == b,
    }
}

pub(super) fn parse_content_length(v: &str) -> Result<usize, ParseError> {
    let v = trim_lws(v);
    if v.is_empty() || v.len() > 9 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::ContentLength);
    }
    v.parse().map_err(|_| ParseError::ContentLength)
}

/// Finds the end of the header section: the index of the empty line's CRLF CRLF, and the
/// offset where the body starts.
pub(super) fn header_end(buf: &[u8]) -> Option<(usize, usize)> {
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
pub(super) fn count_byte(hay: &[u8], needle: u8) -> usize {
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
pub(super) fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
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
pub(super) fn skip_leading_crlf(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count()
}

/// Splits the header section into lines, joining folded continuation lines. Each value is
/// one slice of the input, folds included. A CR or LF that is not part of a CRLF is an error.
pub(super) fn split_headers(text: &str) -> Result<Vec<Header<'_>>, ParseError> {
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
        // memchr: header lines are short, and str::find's char searcher costs more per
        // call than the scan itself.
        let (end, next) = match memchr::memchr(b'\n', &bytes[start..]) {
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
///
/// A response's From is the exception: it is our own From echoed back, and nothing that
/// handles a response reads it (transactions match on the top Via and CSeq, dialogs on
/// Call-ID and the tags in To). Parsing it anyway was a fifth of a response's validation at
/// thousands of calls a second; `Headers::from` still parses and checks it if asked. A
/// response's Contact is checked afterwards, once its status is known
/// ([`check_response_contacts`]).
pub(super) fn validate_headers<'a>(
    list: &[Header<'a>],
    response: bool,
    parsed: &mut Parsed<'a>,
) -> Result<(), ParseError> {
    // The first line's value of From and of To, to tell a repeated line from a different one.
    let (mut from_line, mut to_line, mut cseq_line) = (None, None, None);
    for header in list {
        let v = header.value;
        match header.name {
            HeaderName::Via => {
                for e in split_list(v) {
                    let via = Via::parse(e)?;
                    parsed.top_via.get_or_insert(via);
                }
            }
            HeaderName::From if !response => {
                let from = NameAddr::parse(v, "From")?;
                keep_single(&mut parsed.from, &mut from_line, v, from);
            }
            HeaderName::To => {
                let to = NameAddr::parse(v, "To")?;
                keep_single(&mut parsed.to, &mut to_line, v, to);
            }
            HeaderName::Contact if !response => check_contact_line(v, &mut parsed.contact)?,
            HeaderName::Route | HeaderName::RecordRoute | HeaderName::PAssertedIdentity => {
                for e in split_list(v) {
                    NameAddr::parse(e, "Route")?;
                }
            }
            HeaderName::CallId if v.is_empty() || v.bytes().any(|b| b <= b' ' || b >= 0x7f) => {
                return Err(ParseError::Header("Call-ID"));
            }
            HeaderName::CSeq => {
                let cseq = CSeq::parse(v)?;
                keep_single(&mut parsed.cseq, &mut cseq_line, v, cseq);
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

/// Checks one Contact line's elements (a `*` is REGISTER's wildcard), keeping the first
/// element of the message in `first`.
fn check_contact_line<'a>(v: &'a str, first: &mut Option<NameAddr<'a>>) -> Result<(), ParseError> {
    if v == "*" {
        return Ok(());
    }
    for e in split_list(v) {
        let c = NameAddr::parse(e, "Contact")?;
        if let Some(Some(exp)) = c.params.get("expires") {
            parse_u32(exp).ok_or(ParseError::Header("Contact"))?;
        }
        first.get_or_insert(c);
    }
    Ok(())
}

/// A response's Contact is read only from a 2xx to INVITE (the dialog's remote target) or
/// to REGISTER (the bindings granted); any other response's (a 180's, a BYE's 200's) is
/// not parsed, as a response's From is not. A response whose CSeq does not parse keeps
/// the full check.
pub(super) fn check_response_contacts(status: u16, h: &mut Headers<'_>) -> Result<(), ParseError> {
    let read = match h.cseq() {
        Ok(c) => {
            (200..300).contains(&status) && matches!(c.method, Method::Invite | Method::Register)
        }
        Err(_) => true,
    };
    if !read {
        return Ok(());
    }
    let mut first = None;
    for v in h.values(HeaderName::Contact) {
        check_contact_line(v, &mut first)?;
    }
    h.parsed.contact = first;
    Ok(())
}

/// Keeps a header that must appear once as parsed from its first line, and drops it when a
/// later line differs (the accessor then parses again and reports `Multiple`).
fn keep_single<'a, T>(
    slot: &mut Option<T>,
    first_line: &mut Option<&'a str>,
    line: &'a str,
    parsed: T,
) {
    match *first_line {
        None => {
            *first_line = Some(line);
            *slot = Some(parsed);
        }
        Some(first) if first != line => *slot = None,
        Some(_) => {}
    }
}

//! Character classes and whitespace rules of RFC 3261 §25.1.

/// A byte class of RFC 3261 §25.1, one bit in [`CLASSES`]: the parsers ask these of every
/// byte of every header, and one table lookup costs less than a chain of comparisons.
pub type Class = u16;

/// `token` bytes.
pub const TOKEN: Class = 1;
/// Linear white space: SP, HTAB and the CR LF of a folded line.
pub const LWS: Class = 1 << 1;
/// `token` bytes and `:` (parameter values such as `maddr` or a `received` IPv6 address).
pub const TOKEN_OR_COLON: Class = 1 << 2;
/// Bytes a URI's user part may hold unescaped (`unreserved` and `user-unreserved`).
pub const URI_USER: Class = 1 << 3;
/// Bytes a URI's password may hold unescaped.
pub const URI_PASSWORD: Class = 1 << 4;
/// Bytes a URI parameter's name or value may hold unescaped (`paramchar`).
pub const URI_PARAM: Class = 1 << 5;
/// Bytes a URI header (after `?`) may hold unescaped (`hnv-unreserved`, `unreserved`).
pub const URI_HEADER: Class = 1 << 6;
/// Bytes no URI may hold: controls, space, DEL, `<`, `>` and `"`.
pub const URI_ILLEGAL: Class = 1 << 7;

/// The class bits of every byte value.
static CLASSES: [Class; 256] = classes();

const fn classes() -> [Class; 256] {
    let mut t = [0; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut c = 0;
        let token = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        if token {
            c |= TOKEN | TOKEN_OR_COLON;
        }
        if b == b':' {
            c |= TOKEN_OR_COLON;
        }
        if matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
            c |= LWS;
        }
        let unreserved = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
            );
        // Bytes above ASCII (UTF-8) are let through unescaped, as peers send them.
        if unreserved || b >= 0x80 {
            c |= URI_USER | URI_PASSWORD | URI_PARAM | URI_HEADER;
        }
        if matches!(b, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/') {
            c |= URI_USER;
        }
        if matches!(b, b'&' | b'=' | b'+' | b'$' | b',') {
            c |= URI_PASSWORD;
        }
        if matches!(b, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$') {
            c |= URI_PARAM;
        }
        if matches!(
            b,
            b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$' | b'=' | b'&'
        ) {
            c |= URI_HEADER;
        }
        if b <= b' ' || b == 0x7f || matches!(b, b'<' | b'>' | b'"') {
            c |= URI_ILLEGAL;
        }
        t[i] = c;
        i += 1;
    }
    t
}

/// Whether `b` is of `class` (one bit or several: any of them).
#[inline]
pub fn is(b: u8, class: Class) -> bool {
    CLASSES[usize::from(b)] & class != 0
}

/// Whether `b` may appear in a `token`.
#[inline]
pub fn is_token_byte(b: u8) -> bool {
    is(b, TOKEN)
}

/// Whether `s` is a non-empty `token`.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

/// Linear white space: SP, HTAB and the CR LF of a folded line.
#[inline]
pub fn is_lws(b: u8) -> bool {
    is(b, LWS)
}

/// The first index of the ASCII byte `b` in `s`. For the short strings of a header value
/// a plain loop is faster than the `memchr` behind `str::find`.
#[inline]
pub fn find_ascii(s: &str, b: u8) -> Option<usize> {
    s.bytes().position(|c| c == b)
}

/// The last index of the ASCII byte `b` in `s`.
#[inline]
pub fn rfind_ascii(s: &str, b: u8) -> Option<usize> {
    s.bytes().rposition(|c| c == b)
}

/// Trims LWS (including folds) from both ends.
#[inline]
pub fn trim_lws(s: &str) -> &str {
    let b = s.as_bytes();
    let (mut start, mut end) = (0, b.len());
    while start < end && is_lws(b[start]) {
        start += 1;
    }
    while end > start && is_lws(b[end - 1]) {
        end -= 1;
    }
    // LWS bytes are ASCII, so both ends are character boundaries.
    &s[start..end]
}

/// If `s` is exactly one quoted string, returns its content (escapes kept as written).
pub fn unquote(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    if b.len() < 2 || b[0] != b'"' {
        return None;
    }
    let end = quoted_end(s, 0)?;
    (end == b.len()).then(|| &s[1..end - 1])
}

/// Given `s[start] == '"'`, returns the index just past the closing quote, honouring
/// backslash escapes; `None` when the string is unterminated.
pub fn quoted_end(s: &str, start: usize) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table says, for every byte, what the grammar's lists say (written out here as
    /// the comparisons the table replaced).
    #[test]
    fn classes_follow_the_grammar() {
        let unreserved =
            |b: u8| b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) || b >= 0x80;
        for b in 0..=255u8 {
            let token = b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b);
            assert_eq!(is(b, TOKEN), token, "token {b}");
            assert_eq!(
                is(b, TOKEN_OR_COLON),
                token || b == b':',
                "token or colon {b}"
            );
            assert_eq!(is(b, LWS), b" \t\r\n".contains(&b), "lws {b}");
            let in_uri = |extra: &[u8]| unreserved(b) || extra.contains(&b);
            assert_eq!(is(b, URI_USER), in_uri(b"&=+$,;?/"), "user {b}");
            assert_eq!(is(b, URI_PASSWORD), in_uri(b"&=+$,"), "password {b}");
            assert_eq!(is(b, URI_PARAM), in_uri(b"[]/:&+$"), "param {b}");
            assert_eq!(is(b, URI_HEADER), in_uri(b"[]/?:+$=&"), "header {b}");
            let illegal = b <= b' ' || b == 0x7f || b"<>\"".contains(&b);
            assert_eq!(is(b, URI_ILLEGAL), illegal, "illegal {b}");
        }
    }
}

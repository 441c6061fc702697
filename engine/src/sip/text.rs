//! Character classes and whitespace rules of RFC 3261 §25.1.

/// Whether `b` may appear in a `token`.
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// Whether `s` is a non-empty `token`.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

/// Linear white space: SP, HTAB and the CR LF of a folded line.
pub fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
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

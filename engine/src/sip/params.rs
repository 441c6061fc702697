//! `;name=value` parameter lists, read lazily from the borrowed text.

use super::error::ParseError;
use super::text::{find_ascii, is, is_token, trim_lws, unquote, TOKEN_OR_COLON};

/// A parameter list as written (without the leading `;`). Lookups walk the text; lists are
/// short, so this is cheaper than building a map for every header of every message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Params<'a> {
    raw: &'a str,
}

impl<'a> Params<'a> {
    /// An empty list.
    pub const fn empty() -> Self {
        Params { raw: "" }
    }

    /// Checks the grammar of `raw` (`name[=value]` separated by `;`, LWS allowed around the
    /// separators, values tokens, bracketed IPv6 references or quoted strings).
    pub fn parse(raw: &'a str) -> Result<Self, ParseError> {
        Params::parse_each(raw, |_, _| Ok(()))
    }

    /// [`Params::parse`], giving `check` each `(name, value)` as [`Params::iter`] would, so
    /// that a caller with rules of its own (URI parameters) walks the list once.
    pub fn parse_each(
        raw: &'a str,
        mut check: impl FnMut(&'a str, Option<&'a str>) -> Result<(), ParseError>,
    ) -> Result<Self, ParseError> {
        let p = Params { raw };
        if trim_lws(raw).is_empty() {
            return Ok(Params::empty());
        }
        for item in split_quoted(raw, b';') {
            let item = trim_lws(item);
            let (name, value) = match find_ascii(item, b'=') {
                Some(i) => (trim_lws(&item[..i]), Some(trim_lws(&item[i + 1..]))),
                None => (item, None),
            };
            if name.is_empty() || !is_token(name) {
                return Err(ParseError::Param);
            }
            let value = match value {
                Some(v) if v.starts_with('"') => Some(unquote(v).ok_or(ParseError::Param)?),
                Some(v) if v.starts_with('[') => {
                    let ipv6 =
                        v.ends_with(']') && v[1..v.len() - 1].parse::<std::net::Ipv6Addr>().is_ok();
                    if !ipv6 {
                        return Err(ParseError::Param);
                    }
                    Some(v)
                }
                Some(v) if v.is_empty() || !v.bytes().all(|b| is(b, TOKEN_OR_COLON)) => {
                    return Err(ParseError::Param)
                }
                v => v,
            };
            check(name, value)?;
        }
        Ok(p)
    }

    /// The text as written.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// Iterates `(name, value)` pairs, names and values trimmed, quotes removed.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + 'a {
        let raw = self.raw;
        split_quoted(raw, b';').filter_map(|item| {
            let item = trim_lws(item);
            if item.is_empty() {
                return None;
            }
            Some(match find_ascii(item, b'=') {
                Some(i) => {
                    let v = trim_lws(&item[i + 1..]);
                    (trim_lws(&item[..i]), Some(unquote(v).unwrap_or(v)))
                }
                None => (item, None),
            })
        })
    }

    /// Looks a parameter up by name, case-insensitively. `Some(None)` means present without
    /// a value (`;lr`).
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

/// Splits on `sep` outside double quotes (a quoted string may hold `;` or `,`) and outside
/// angle brackets (a URI inside `<...>` has its own `;` and `,`). Every header and parameter
/// list of every message goes through here, so it jumps from one byte that can matter in
/// the current state to the next (`memchr`) rather than looking at every byte.
pub(crate) fn split_quoted(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    let b = s.as_bytes();
    let mut start = 0;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        match next_separator(b, start, sep) {
            Some(at) => {
                let item = &s[start..at];
                start = at + 1;
                Some(item)
            }
            None => {
                done = true;
                Some(&s[start.min(s.len())..])
            }
        }
    })
}

/// The index of the next `sep` at or after `from` that is outside quotes and brackets.
fn next_separator(b: &[u8], from: usize, sep: u8) -> Option<usize> {
    let mut i = from;
    let mut angle = 0u32;
    while i < b.len() {
        let rest = &b[i..];
        let hit = if angle == 0 {
            memchr::memchr3(sep, b'"', b'<', rest)
        } else {
            memchr::memchr3(b'"', b'<', b'>', rest)
        }?;
        i += hit;
        match b[i] {
            b'"' => i = closing_quote(b, i + 1)?,
            b'<' => angle += 1,
            b'>' => angle -= 1,
            _ => return Some(i),
        }
        i += 1;
    }
    None
}

/// The index of the `"` that closes a quoted string whose text starts at `from` (a
/// backslash escapes the byte after it); `None` when the string runs to the end.
fn closing_quote(b: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    loop {
        i += memchr::memchr2(b'\\', b'"', b.get(i..)?)?;
        if b[i] == b'"' {
            return Some(i);
        }
        i += 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        let p = Params::parse("branch=z9hG4bK1 ; rport;received=[2001:db8::1];x=\"a;b\"").unwrap();
        assert_eq!(p.get("BRANCH"), Some(Some("z9hG4bK1")));
        assert_eq!(p.get("rport"), Some(None));
        assert_eq!(p.get("received"), Some(Some("[2001:db8::1]")));
        assert_eq!(p.get("x"), Some(Some("a;b")));
        assert_eq!(p.get("nope"), None);
        assert!(Params::parse(";;").is_err());
        assert!(Params::parse("a=").is_err());
    }

    #[test]
    fn splitting_skips_quoted_and_bracketed_separators() {
        let split = |s: &'static str, sep| split_quoted(s, sep).collect::<Vec<_>>();
        assert_eq!(split("", b','), [""]);
        assert_eq!(split("a,b,", b','), ["a", "b", ""]);
        assert_eq!(
            split(r#""x, \"y\"" <sip:a@h;p=1,2>;t=1, <sip:b@h>"#, b','),
            [r#""x, \"y\"" <sip:a@h;p=1,2>;t=1"#, " <sip:b@h>"]
        );
        assert_eq!(split("a<b<c>;d>;e;f", b';'), ["a<b<c>;d>", "e", "f"]);
        // A stray '>' outside brackets is text; an unclosed quote or bracket swallows the
        // rest, as before.
        assert_eq!(split("a>b;c", b';'), ["a>b", "c"]);
        assert_eq!(split(r#"a;"b;c"#, b';'), ["a", r#""b;c"#]);
        assert_eq!(split("a;<b;c", b';'), ["a", "<b;c"]);
        assert_eq!(split(r#"a;"b\"#, b';'), ["a", r#""b\"#]);
    }
}

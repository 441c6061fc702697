//! Reading `WWW-Authenticate` / `Proxy-Authenticate` challenges from the network.

use super::*;

/// Whitespace allowed around separators: SP and HTAB (folds were turned into SP first).
fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

pub(super) fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Unfolds LWS (RFC 3261 §7.3.1: `*WSP CRLF 1*WSP` is one SP, a bare LF tolerated for
/// CRLF). A CR or LF that is not part of a fold cannot be inside one header value.
fn unfold(value: &str) -> Result<String, AuthError> {
    let b = value.as_bytes();
    let mut out = String::with_capacity(value.len());
    let mut i = 0;
    let mut start = 0;
    while i < b.len() {
        if b[i] == b'\r' || b[i] == b'\n' {
            out.push_str(&value[start..i]);
            let mut j = i;
            if b[j] == b'\r' {
                j += 1;
                if b.get(j) != Some(&b'\n') {
                    return Err(AuthError::Malformed("bare CR"));
                }
            }
            j += 1; // the LF
            if !b.get(j).copied().is_some_and(is_ws) {
                return Err(AuthError::Malformed("line break that is not a fold"));
            }
            while b.get(j).copied().is_some_and(is_ws) {
                j += 1;
            }
            let kept = out.trim_end_matches([' ', '\t']).len();
            out.truncate(kept);
            out.push(' ');
            i = j;
            start = j;
        } else {
            i += 1;
        }
    }
    out.push_str(&value[start..]);
    Ok(out)
}

/// Parses a `WWW-Authenticate` / `Proxy-Authenticate` header value.
///
/// Accepts what RFC 3261 §25 and RFC 7616 allow and carriers send: scheme and parameter
/// names in any case, quoted or token values, quoted-pair escapes (`\"`), LWS around `=`
/// and `,` including folded lines, empty list elements. Unknown parameters are ignored (a
/// server may add its own). Rejects a non-Digest scheme with [`AuthError::NotDigest`], an
/// unknown algorithm with [`AuthError::UnsupportedAlgorithm`], and anything malformed —
/// never panics, whatever the input.
pub fn parse_challenge(value: &str) -> Result<Challenge, AuthError> {
    let text = unfold(value)?;
    let mut cur = Cursor { text: &text, i: 0 };
    cur.skip_ws();
    let scheme = cur.token();
    if scheme.is_empty() {
        return Err(AuthError::Malformed("no scheme"));
    }
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(AuthError::NotDigest(scheme.to_owned()));
    }
    if cur.peek().is_some_and(|c| !is_ws(c)) {
        return Err(AuthError::Malformed("no space after scheme"));
    }
    challenge_of(cur.params()?)
}

/// A position in an unfolded challenge.
struct Cursor<'a> {
    text: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(is_ws) {
            self.i += 1;
        }
    }

    fn token(&mut self) -> &'a str {
        let start = self.i;
        while self.peek().is_some_and(is_token_char) {
            self.i += 1;
        }
        &self.text[start..self.i]
    }

    /// The `name=value` list after the scheme: names lowercased, empty elements skipped,
    /// a name given twice refused.
    fn params(&mut self) -> Result<Vec<(String, String)>, AuthError> {
        let mut params: Vec<(String, String)> = Vec::new();
        loop {
            self.skip_ws();
            while self.peek() == Some(b',') {
                self.i += 1;
                self.skip_ws();
            }
            if self.peek().is_none() {
                break;
            }
            let (name, value) = self.param()?;
            if params.iter().any(|(n, _)| *n == name) {
                return Err(AuthError::DuplicateParam(name));
            }
            params.push((name, value));
            self.skip_ws();
            match self.peek() {
                None => break,
                Some(b',') => self.i += 1,
                Some(_) => return Err(AuthError::Malformed("expected ',' between parameters")),
            }
        }
        Ok(params)
    }

    /// One `name = value` (a token or a quoted string).
    fn param(&mut self) -> Result<(String, String), AuthError> {
        let name = self.token();
        if name.is_empty() {
            return Err(AuthError::Malformed("expected a parameter name"));
        }
        let name = name.to_ascii_lowercase();
        self.skip_ws();
        if self.peek() != Some(b'=') {
            return Err(AuthError::Malformed("expected '=' after a parameter name"));
        }
        self.i += 1;
        self.skip_ws();
        let value = if self.peek() == Some(b'"') {
            self.i += 1;
            self.quoted()?
        } else {
            let v = self.token();
            if v.is_empty() {
                return Err(AuthError::Malformed("expected a parameter value"));
            }
            v.to_owned()
        };
        Ok((name, value))
    }

    /// The rest of a quoted string (after its opening quote), escapes resolved.
    fn quoted(&mut self) -> Result<String, AuthError> {
        let (text, b) = (self.text, self.text.as_bytes());
        let mut v = String::new();
        let mut start = self.i;
        loop {
            match b.get(self.i) {
                None => return Err(AuthError::Malformed("unterminated quoted string")),
                Some(b'"') => {
                    v.push_str(&text[start..self.i]);
                    self.i += 1;
                    return Ok(v);
                }
                Some(b'\\') => {
                    v.push_str(&text[start..self.i]);
                    let next = self.i + 1;
                    match b.get(next) {
                        None => return Err(AuthError::Malformed("unterminated quoted string")),
                        Some(c) if c.is_ascii_control() && *c != b'\t' => {
                            return Err(AuthError::Malformed("escaped control character"))
                        }
                        Some(_) => {}
                    }
                    // The escaped character may be multi-byte UTF-8: copy it whole.
                    let len = text[next..].chars().next().map_or(1, char::len_utf8);
                    v.push_str(&text[next..next + len]);
                    self.i = next + len;
                    start = self.i;
                }
                Some(c) if c.is_ascii_control() && *c != b'\t' => {
                    return Err(AuthError::Malformed("control character in quoted string"))
                }
                Some(_) => self.i += 1,
            }
        }
    }
}

/// The challenge a parameter list makes: realm and nonce required, the algorithm known
/// (MD5 when absent), qop tokens read, unknown parameters ignored.
fn challenge_of(mut params: Vec<(String, String)>) -> Result<Challenge, AuthError> {
    let mut take = |name: &str| {
        params
            .iter()
            .position(|(n, _)| n == name)
            .map(|p| params.swap_remove(p).1)
    };
    let realm = take("realm").ok_or(AuthError::MissingParam("realm"))?;
    let nonce = take("nonce").ok_or(AuthError::MissingParam("nonce"))?;
    let algorithm = match take("algorithm") {
        None => Algorithm::Md5,
        Some(a) => Algorithm::from_token(&a).ok_or(AuthError::UnsupportedAlgorithm(a))?,
    };
    let qop = take("qop")
        .map(|q| {
            q.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| {
                    if t.eq_ignore_ascii_case("auth") {
                        Qop::Auth
                    } else if t.eq_ignore_ascii_case("auth-int") {
                        Qop::AuthInt
                    } else {
                        Qop::Other(t.to_owned())
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let is_true = |v: Option<String>| v.is_some_and(|v| v.eq_ignore_ascii_case("true"));
    Ok(Challenge {
        realm,
        nonce,
        opaque: take("opaque"),
        algorithm,
        qop,
        stale: is_true(take("stale")),
        domain: take("domain"),
        userhash: is_true(take("userhash")),
    })
}

/// Parses several challenge values (one per `WWW-Authenticate` or `Proxy-Authenticate`
/// header of one response) and returns the strongest we can answer: SHA-512-256 over
/// SHA-256 over MD5, the server's order among equals. RFC 8760 servers send one challenge
/// per algorithm so that old clients still find MD5; choosing the strongest avoids a
/// downgrade. When none is usable, the error of the first value is returned, and
/// [`AuthError::MissingParam`]`("challenge")` when there are no values at all.
pub fn select_challenge<'a, I>(values: I) -> Result<Challenge, AuthError>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut best: Option<Challenge> = None;
    let mut first_err = None;
    for v in values {
        match parse_challenge(v) {
            Ok(ch) => {
                if best
                    .as_ref()
                    .is_none_or(|b| ch.algorithm.strength() > b.algorithm.strength())
                {
                    best = Some(ch);
                }
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    best.ok_or(first_err.unwrap_or(AuthError::MissingParam("challenge")))
}

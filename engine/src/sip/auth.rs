//! Digest authentication, client side (RFC 2617, RFC 7616, and RFC 8760 for SIP's use of
//! SHA-256 and SHA-512/256).
//!
//! Carriers challenge an INVITE with 401 (`WWW-Authenticate`) or 407
//! (`Proxy-Authenticate`). The UAC parses the challenge with [`parse_challenge`] (or picks
//! the strongest of several with [`select_challenge`]), decides with
//! [`DigestClient::should_retry`] whether answering makes sense, and builds the
//! `Authorization` / `Proxy-Authorization` value with [`DigestClient::authorize`]; the
//! request is then resent with CSeq + 1 and the same Call-ID.
//!
//! Header values come from the network, so parsing returns an [`AuthError`] for anything
//! malformed and never panics; values echoed back are checked so that no CR or LF from a
//! challenge or a credential can inject a header into our request.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;

use md5::Md5;
use sha2::{Digest as _, Sha256, Sha512_256};
use thiserror::Error;

/// Why a challenge could not be parsed or answered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    /// The scheme is not Digest (e.g. `Basic`, which SIP forbids, RFC 3261 §22.1).
    #[error("unsupported authentication scheme {0:?}")]
    NotDigest(String),
    /// The header value breaks the auth-param grammar; the text says where.
    #[error("malformed challenge: {0}")]
    Malformed(&'static str),
    /// A required parameter (`realm`, `nonce`) is absent.
    #[error("challenge lacks {0}")]
    MissingParam(&'static str),
    /// A parameter appears twice, which RFC 7235 §2.1 forbids and which would leave us
    /// guessing which one the server means.
    #[error("parameter {0} appears twice")]
    DuplicateParam(String),
    /// The algorithm is not one we implement (MD5, SHA-256, SHA-512-256, and their -sess).
    #[error("unsupported digest algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// `qop` lists neither `auth` nor `auth-int`.
    #[error("unsupported qop {0:?}")]
    UnsupportedQop(String),
    /// Only `auth-int` is offered, which needs the request body: use
    /// [`DigestClient::authorize_with_body`].
    #[error("qop=auth-int needs the request body")]
    AuthIntNeedsBody,
    /// A value to be written into the header (username, URI, cnonce, or a challenge field
    /// set by hand) holds a control character, which would corrupt or inject a header.
    #[error("{0} contains a control character")]
    InvalidValue(&'static str),
}

/// The hash a challenge asks for. `-sess` variants hash the client nonce into A1 (RFC 7616
/// §3.4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// `MD5`, the default when the challenge names none, still what most carriers use.
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256` (RFC 7616, RFC 8760).
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
    /// `SHA-512-256` (SHA-512/256, RFC 7616, RFC 8760).
    Sha512_256,
    /// `SHA-512-256-sess`.
    Sha512_256Sess,
}

impl Algorithm {
    /// The token as written in headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
            Algorithm::Sha512_256 => "SHA-512-256",
            Algorithm::Sha512_256Sess => "SHA-512-256-sess",
        }
    }

    /// Parses the token case-insensitively (RFC 7616 §3.3).
    pub fn from_token(token: &str) -> Option<Algorithm> {
        [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
            Algorithm::Sha512_256,
            Algorithm::Sha512_256Sess,
        ]
        .into_iter()
        .find(|a| a.as_str().eq_ignore_ascii_case(token))
    }

    /// Whether A1 includes the nonce and cnonce.
    pub fn is_session(self) -> bool {
        matches!(
            self,
            Algorithm::Md5Sess | Algorithm::Sha256Sess | Algorithm::Sha512_256Sess
        )
    }

    /// Preference when a server offers several challenges: stronger hashes first (RFC 8760
    /// §2.4 asks the UAC to use the topmost it supports, and servers list them in their
    /// order of preference, but a downgrade to MD5 is never what we want when better is
    /// offered).
    fn strength(self) -> u8 {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => 0,
            Algorithm::Sha256 | Algorithm::Sha256Sess => 1,
            Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => 2,
        }
    }

    /// Lowercase hex of the hash of `data`.
    fn hex(self, data: &[u8]) -> String {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => to_hex(&Md5::digest(data)),
            Algorithm::Sha256 | Algorithm::Sha256Sess => to_hex(&Sha256::digest(data)),
            Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => to_hex(&Sha512_256::digest(data)),
        }
    }
}

fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// One `qop` option of a challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Qop {
    /// `auth`: authenticate the request line only.
    Auth,
    /// `auth-int`: also the body.
    AuthInt,
    /// Any other token, kept so the error can name it.
    Other(String),
}

/// A parsed Digest challenge (the value of `WWW-Authenticate` or `Proxy-Authenticate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Protection space; credentials are per realm.
    pub realm: String,
    /// Server nonce; nonce counts are kept per (realm, nonce).
    pub nonce: String,
    /// Opaque string the server wants echoed.
    pub opaque: Option<String>,
    /// Hash algorithm (MD5 when absent).
    pub algorithm: Algorithm,
    /// `qop` options in the server's order; empty for an RFC 2069-style challenge.
    pub qop: Vec<Qop>,
    /// `stale=true`: our previous answer used an expired nonce but the credentials were
    /// right, so answer again with the new nonce (RFC 7616 §3.3).
    pub stale: bool,
    /// `domain`, as written.
    pub domain: Option<String>,
    /// `userhash=true` (RFC 7616 §3.4.4): send a hash of the username instead of the name.
    pub userhash: bool,
}

/// Whitespace allowed around separators: SP and HTAB (folds were turned into SP first).
fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn is_token_char(b: u8) -> bool {
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
    let b = text.as_bytes();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && is_ws(b[*i]) {
            *i += 1;
        }
    };
    let token = |i: &mut usize| -> &str {
        let start = *i;
        while *i < b.len() && is_token_char(b[*i]) {
            *i += 1;
        }
        &text[start..*i]
    };

    skip_ws(&mut i);
    let scheme = token(&mut i);
    if scheme.is_empty() {
        return Err(AuthError::Malformed("no scheme"));
    }
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(AuthError::NotDigest(scheme.to_owned()));
    }
    if i < b.len() && !is_ws(b[i]) {
        return Err(AuthError::Malformed("no space after scheme"));
    }

    let mut params: Vec<(String, String)> = Vec::new();
    loop {
        skip_ws(&mut i);
        while i < b.len() && b[i] == b',' {
            i += 1;
            skip_ws(&mut i);
        }
        if i >= b.len() {
            break;
        }
        let name = token(&mut i);
        if name.is_empty() {
            return Err(AuthError::Malformed("expected a parameter name"));
        }
        let name = name.to_ascii_lowercase();
        skip_ws(&mut i);
        if b.get(i) != Some(&b'=') {
            return Err(AuthError::Malformed("expected '=' after a parameter name"));
        }
        i += 1;
        skip_ws(&mut i);
        let value = if b.get(i) == Some(&b'"') {
            i += 1;
            let mut v = String::new();
            let mut start = i;
            loop {
                match b.get(i) {
                    None => return Err(AuthError::Malformed("unterminated quoted string")),
                    Some(b'"') => {
                        v.push_str(&text[start..i]);
                        i += 1;
                        break;
                    }
                    Some(b'\\') => {
                        v.push_str(&text[start..i]);
                        let next = i + 1;
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
                        i = next + len;
                        start = i;
                    }
                    Some(c) if c.is_ascii_control() && *c != b'\t' => {
                        return Err(AuthError::Malformed("control character in quoted string"))
                    }
                    Some(_) => i += 1,
                }
            }
            v
        } else {
            let v = token(&mut i);
            if v.is_empty() {
                return Err(AuthError::Malformed("expected a parameter value"));
            }
            v.to_owned()
        };
        if params.iter().any(|(n, _)| *n == name) {
            return Err(AuthError::DuplicateParam(name));
        }
        params.push((name, value));
        skip_ws(&mut i);
        match b.get(i) {
            None => break,
            Some(b',') => i += 1,
            Some(_) => return Err(AuthError::Malformed("expected ',' between parameters")),
        }
    }

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

/// A username and password for one trunk.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The digest username (often the trunk account, not the caller ID).
    pub username: String,
    /// The password; never printed by `Debug`.
    pub password: String,
}

impl Credentials {
    /// Builds credentials from anything string-like.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// How many (realm, nonce) pairs a [`DigestClient`] remembers. Servers rotate nonces, so
/// a long-lived client would otherwise grow without bound; evicting the oldest only means
/// a very old nonce would restart at nc=1, which the server then rejects with a fresh
/// challenge.
const MAX_NONCES: usize = 1024;

/// Answers Digest challenges and keeps the nonce count (`nc`) for each nonce it has used,
/// so that answering the same nonce again (on the next request that reuses it) sends
/// nc=00000002 and so on, as RFC 7616 §3.4 requires for replay protection.
///
/// It holds no secrets; one client per trunk (or per call) is fine.
#[derive(Debug, Default, Clone)]
pub struct DigestClient {
    counts: HashMap<(String, String), u32>,
    order: VecDeque<(String, String)>,
}

impl DigestClient {
    /// A client that has answered nothing yet.
    pub fn new() -> DigestClient {
        DigestClient::default()
    }

    /// How many times this client has answered `nonce` in `realm`: the last `nc` sent when
    /// the challenge had `qop`, and counted all the same when it had not.
    pub fn nonce_count(&self, realm: &str, nonce: &str) -> u32 {
        self.counts
            .get(&(realm.to_owned(), nonce.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Whether to answer a challenge, given whether the request that drew it already
    /// carried our answer (`previous_failed`).
    ///
    /// * First challenge (`previous_failed == false`): answer it.
    /// * `stale=true`: the credentials were right but the nonce expired: answer again.
    /// * The same nonce challenged again after we answered it, not stale: the server
    ///   rejected our credentials; answering again would only loop. Give up.
    /// * A new nonce after a failed answer: answer once more. RFC 7616 §3.3 reads a
    ///   non-stale re-challenge as wrong credentials, but a 401 from a UAS after a 407 from
    ///   its proxy is legitimate, and some servers rotate nonces without `stale`; the
    ///   caller must still cap attempts (two per request is customary).
    pub fn should_retry(&self, ch: &Challenge, previous_failed: bool) -> bool {
        if !previous_failed || ch.stale {
            return true;
        }
        self.nonce_count(&ch.realm, &ch.nonce) == 0
    }

    /// Builds the `Authorization` (or `Proxy-Authorization`) header value answering `ch`
    /// for a request with this `method` and Request-URI `uri`.
    ///
    /// With `qop` offered, uses `qop=auth` (preferred even when `auth-int` is listed
    /// first, since our requests' bodies are ours to know but `auth` is what every
    /// carrier checks) with the caller's `cnonce` and the next nonce count; without, the
    /// RFC 2069 form without `cnonce`/`nc`/`qop`. `cnonce` should be fresh random text
    /// (the sans-IO core takes it as an argument so tests are deterministic).
    ///
    /// Output shape:
    /// `Digest username="..", realm="..", nonce="..", uri="..", response="..",
    /// algorithm=MD5, cnonce="..", qop=auth, nc=00000001, opaque=".."`.
    pub fn authorize(
        &mut self,
        ch: &Challenge,
        creds: &Credentials,
        method: &str,
        uri: &str,
        cnonce: &str,
    ) -> Result<String, AuthError> {
        self.answer(ch, creds, method, uri, cnonce, None)
    }

    /// As [`DigestClient::authorize`], but also able to answer a challenge that offers
    /// only `qop=auth-int`, which hashes the request `body` (RFC 7616 §3.4.3).
    pub fn authorize_with_body(
        &mut self,
        ch: &Challenge,
        creds: &Credentials,
        method: &str,
        uri: &str,
        cnonce: &str,
        body: &[u8],
    ) -> Result<String, AuthError> {
        self.answer(ch, creds, method, uri, cnonce, Some(body))
    }

    fn answer(
        &mut self,
        ch: &Challenge,
        creds: &Credentials,
        method: &str,
        uri: &str,
        cnonce: &str,
        body: Option<&[u8]>,
    ) -> Result<String, AuthError> {
        check("username", &creds.username)?;
        check("method", method)?;
        check("uri", uri)?;
        check("cnonce", cnonce)?;
        check("realm", &ch.realm)?;
        check("nonce", &ch.nonce)?;
        if let Some(o) = &ch.opaque {
            check("opaque", o)?;
        }
        if method.is_empty() || !method.bytes().all(is_token_char) {
            return Err(AuthError::InvalidValue("method"));
        }

        let qop = if ch.qop.is_empty() {
            None
        } else if ch.qop.contains(&Qop::Auth) {
            Some(Qop::Auth)
        } else if ch.qop.contains(&Qop::AuthInt) {
            if body.is_none() {
                return Err(AuthError::AuthIntNeedsBody);
            }
            Some(Qop::AuthInt)
        } else {
            let names: Vec<&str> = ch
                .qop
                .iter()
                .map(|q| match q {
                    Qop::Other(s) => s.as_str(),
                    Qop::Auth => "auth",
                    Qop::AuthInt => "auth-int",
                })
                .collect();
            return Err(AuthError::UnsupportedQop(names.join(",")));
        };

        let alg = ch.algorithm;
        let mut ha1 =
            alg.hex(format!("{}:{}:{}", creds.username, ch.realm, creds.password).as_bytes());
        if alg.is_session() {
            ha1 = alg.hex(format!("{ha1}:{}:{cnonce}", ch.nonce).as_bytes());
        }
        let ha2 = match (&qop, body) {
            (Some(Qop::AuthInt), Some(body)) => {
                alg.hex(format!("{method}:{uri}:{}", alg.hex(body)).as_bytes())
            }
            _ => alg.hex(format!("{method}:{uri}").as_bytes()),
        };

        // Counted even without qop (where no `nc` is sent): `should_retry` needs to know
        // that this nonce was answered, or a rejected RFC 2069 answer would loop.
        let count = self.next_count(&ch.realm, &ch.nonce);
        let nc = qop.as_ref().map(|_| count);
        let qop_token = match qop {
            Some(Qop::AuthInt) => Some("auth-int"),
            Some(_) => Some("auth"),
            None => None,
        };
        let response = match (qop_token, nc) {
            (Some(q), Some(nc)) => {
                alg.hex(format!("{ha1}:{}:{nc:08x}:{cnonce}:{q}:{ha2}", ch.nonce).as_bytes())
            }
            _ => alg.hex(format!("{ha1}:{}:{ha2}", ch.nonce).as_bytes()),
        };

        let username = if ch.userhash {
            alg.hex(format!("{}:{}", creds.username, ch.realm).as_bytes())
        } else {
            creds.username.clone()
        };
        let mut out = String::with_capacity(256);
        out.push_str("Digest username=");
        push_quoted(&mut out, &username);
        out.push_str(", realm=");
        push_quoted(&mut out, &ch.realm);
        out.push_str(", nonce=");
        push_quoted(&mut out, &ch.nonce);
        out.push_str(", uri=");
        push_quoted(&mut out, uri);
        let _ = write!(out, ", response=\"{response}\", algorithm={}", alg.as_str());
        if qop_token.is_some() || alg.is_session() {
            out.push_str(", cnonce=");
            push_quoted(&mut out, cnonce);
        }
        if let (Some(q), Some(nc)) = (qop_token, nc) {
            let _ = write!(out, ", qop={q}, nc={nc:08x}");
        }
        if let Some(o) = &ch.opaque {
            out.push_str(", opaque=");
            push_quoted(&mut out, o);
        }
        if ch.userhash {
            out.push_str(", userhash=true");
        }
        Ok(out)
    }

    fn next_count(&mut self, realm: &str, nonce: &str) -> u32 {
        let key = (realm.to_owned(), nonce.to_owned());
        if let Some(n) = self.counts.get_mut(&key) {
            *n = n.wrapping_add(1).max(1);
            return *n;
        }
        if self.order.len() >= MAX_NONCES {
            if let Some(old) = self.order.pop_front() {
                self.counts.remove(&old);
            }
        }
        self.order.push_back(key.clone());
        self.counts.insert(key, 1);
        1
    }
}

/// Rejects control characters (HTAB aside) in a value we are about to write.
fn check(what: &'static str, value: &str) -> Result<(), AuthError> {
    if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
        Err(AuthError::InvalidValue(what))
    } else {
        Ok(())
    }
}

/// Appends `"value"` with `"` and `\` escaped as quoted-pairs.
fn push_quoted(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// The body of the digest-challenge fuzz target, shared with the corpus replay test so
/// both run the same code. Not part of the engine's API.
///
/// Besides "no panic", it checks that whatever parses can be answered without breaking
/// the header grammar: the answer parses again with the same realm and nonce.
#[doc(hidden)]
pub fn fuzz_exercise(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = select_challenge(text.split('\u{0}'));
    let Ok(ch) = parse_challenge(text) else {
        return;
    };
    let mut client = DigestClient::new();
    let creds = Credentials::new("user \"x\"\\", "pw");
    let _ = client.should_retry(&ch, true);
    match client.authorize_with_body(
        &ch,
        &creds,
        "INVITE",
        "sip:+3906@example.com",
        "c\"n",
        b"v=0",
    ) {
        Ok(value) => {
            let back = parse_challenge(&value)
                .unwrap_or_else(|e| panic!("our answer does not parse ({e}): {value}"));
            assert_eq!(back.realm, ch.realm, "realm did not round-trip");
            assert_eq!(back.nonce, ch.nonce, "nonce did not round-trip");
            assert_eq!(back.opaque, ch.opaque, "opaque did not round-trip");
            assert!(!client.should_retry(&ch, true) || ch.stale);
        }
        Err(e) => assert!(
            matches!(e, AuthError::UnsupportedQop(_)),
            "parsed challenge could not be answered: {e}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param<'a>(header: &'a str, name: &str) -> Option<&'a str> {
        let rest = header.strip_prefix("Digest ")?;
        rest.split(", ").find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == name).then(|| v.trim_matches('"'))
        })
    }

    #[test]
    fn rfc2617_example() {
        let ch = parse_challenge(
            "Digest\r\n realm=\"testrealm@host.com\",\r\n qop=\"auth,auth-int\",\r\n \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\r\n \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        assert_eq!(ch.realm, "testrealm@host.com");
        assert_eq!(ch.qop, [Qop::Auth, Qop::AuthInt]);
        assert_eq!(ch.algorithm, Algorithm::Md5);
        let mut c = DigestClient::new();
        let v = c
            .authorize(
                &ch,
                &Credentials::new("Mufasa", "Circle Of Life"),
                "GET",
                "/dir/index.html",
                "0a4f113b",
            )
            .unwrap();
        assert_eq!(
            v,
            "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", \
             response=\"6629fae49393a05397450978507c4ef1\", algorithm=MD5, \
             cnonce=\"0a4f113b\", qop=auth, nc=00000001, \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""
        );
    }

    const RFC7616_PARAMS: &str = "realm=\"http-auth@example.org\", qop=\"auth, auth-int\", \
        nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
        opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";
    const RFC7616_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

    #[test]
    fn rfc7616_sha256_example() {
        let ch = parse_challenge(&format!("Digest {RFC7616_PARAMS}, algorithm=SHA-256")).unwrap();
        assert_eq!(ch.algorithm, Algorithm::Sha256);
        let v = DigestClient::new()
            .authorize(
                &ch,
                &Credentials::new("Mufasa", "Circle of Life"),
                "GET",
                "/dir/index.html",
                RFC7616_CNONCE,
            )
            .unwrap();
        assert_eq!(
            param(&v, "response"),
            Some("753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1")
        );
        assert_eq!(param(&v, "algorithm"), Some("SHA-256"));
        assert_eq!(param(&v, "qop"), Some("auth"));
        assert_eq!(param(&v, "nc"), Some("00000001"));
        assert_eq!(
            param(&v, "opaque"),
            Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
        );
    }

    #[test]
    fn rfc7616_md5_example() {
        let ch = parse_challenge(&format!("Digest {RFC7616_PARAMS}, algorithm=MD5")).unwrap();
        let v = DigestClient::new()
            .authorize(
                &ch,
                &Credentials::new("Mufasa", "Circle of Life"),
                "GET",
                "/dir/index.html",
                RFC7616_CNONCE,
            )
            .unwrap();
        assert_eq!(
            param(&v, "response"),
            Some("8ca523f5e9506fed4657c9700eebdbec")
        );
    }

    #[test]
    fn select_prefers_the_strongest() {
        let md5 = format!("Digest {RFC7616_PARAMS}, algorithm=MD5");
        let sha = format!("Digest {RFC7616_PARAMS}, algorithm=SHA-256");
        let ch = select_challenge([md5.as_str(), "Basic realm=\"x\"", sha.as_str()]).unwrap();
        assert_eq!(ch.algorithm, Algorithm::Sha256);
        let ch = select_challenge(["Digest realm=\"a\", nonce=\"b\", algorithm=AKAv1-MD5", &md5])
            .unwrap();
        assert_eq!(ch.algorithm, Algorithm::Md5);
        assert_eq!(
            select_challenge(["Basic realm=\"x\""]),
            Err(AuthError::NotDigest("Basic".into()))
        );
    }

    #[test]
    fn sess_and_sha512_256_and_userhash() {
        // Values computed independently with Python's hashlib for these inputs.
        let mut c = DigestClient::new();
        let creds = Credentials::new("alice", "secret");
        let ch = parse_challenge("Digest realm=\"r\", nonce=\"n\", algorithm=md5-SESS, qop=auth")
            .unwrap();
        assert_eq!(ch.algorithm, Algorithm::Md5Sess);
        let v = c
            .authorize(&ch, &creds, "INVITE", "sip:bob@x", "cn")
            .unwrap();
        assert_eq!(param(&v, "response"), Some(expected("md5-sess")));
        let ch = parse_challenge(
            "Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256, qop=auth, userhash=true",
        )
        .unwrap();
        let mut c = DigestClient::new();
        let v = c
            .authorize(&ch, &creds, "INVITE", "sip:bob@x", "cn")
            .unwrap();
        assert_eq!(param(&v, "response"), Some(expected("sha512-256-userhash")));
        assert_eq!(param(&v, "username"), Some(expected("sha512-256-username")));
        assert_eq!(param(&v, "userhash"), Some("true"));
    }

    fn expected(case: &str) -> &'static str {
        match case {
            "md5-sess" => "c25e059ff512c415a62a337d6bd2f85c",
            "sha512-256-userhash" => {
                "696144c1a5584bd69d8ab7384027d4244601e67d4ad15d0e1eec9a5834e0566e"
            }
            "sha512-256-username" => {
                "da4aa8043cfec4c68a088964af5b39a0fff4b025ac3e252912501f61e32afcc7"
            }
            _ => unreachable!(),
        }
    }

    #[test]
    fn rfc2069_without_qop() {
        let ch = parse_challenge("digest REALM=\"asterisk\" , NONCE=\"4a5b6c\"").unwrap();
        assert!(ch.qop.is_empty());
        let v = DigestClient::new()
            .authorize(
                &ch,
                &Credentials::new("100", "pw"),
                "INVITE",
                "sip:200@pbx",
                "unused",
            )
            .unwrap();
        assert!(!v.contains("cnonce") && !v.contains("qop") && !v.contains("nc="));
        let mut c = DigestClient::new();
        c.authorize(
            &ch,
            &Credentials::new("100", "pw"),
            "INVITE",
            "sip:200@pbx",
            "x",
        )
        .unwrap();
        assert!(
            !c.should_retry(&ch, true),
            "no-qop answers count as answered too"
        );
        // response = MD5(MD5("100:asterisk:pw"):4a5b6c:MD5("INVITE:sip:200@pbx"))
        let ha1 = Algorithm::Md5.hex(b"100:asterisk:pw");
        let ha2 = Algorithm::Md5.hex(b"INVITE:sip:200@pbx");
        let want = Algorithm::Md5.hex(format!("{ha1}:4a5b6c:{ha2}").as_bytes());
        assert_eq!(param(&v, "response"), Some(want.as_str()));
    }

    #[test]
    fn nonce_counts_increment_per_nonce() {
        let mut c = DigestClient::new();
        let creds = Credentials::new("u", "p");
        let a = parse_challenge("Digest realm=\"r\", nonce=\"A\", qop=auth").unwrap();
        let b = parse_challenge("Digest realm=\"r\", nonce=\"B\", qop=auth").unwrap();
        let nc = |v: String| param(&v, "nc").unwrap().to_owned();
        assert_eq!(
            nc(c.authorize(&a, &creds, "INVITE", "sip:x", "1").unwrap()),
            "00000001"
        );
        assert_eq!(
            nc(c.authorize(&a, &creds, "BYE", "sip:x", "2").unwrap()),
            "00000002"
        );
        assert_eq!(
            nc(c.authorize(&b, &creds, "INVITE", "sip:x", "3").unwrap()),
            "00000001"
        );
        assert_eq!(
            nc(c.authorize(&a, &creds, "INVITE", "sip:x", "4").unwrap()),
            "00000003"
        );
        assert_eq!(c.nonce_count("r", "A"), 3);
        assert_eq!(c.nonce_count("r", "B"), 1);
        for i in 0..MAX_NONCES {
            let ch = parse_challenge(&format!("Digest realm=r, nonce=n{i}, qop=auth")).unwrap();
            c.authorize(&ch, &creds, "INVITE", "sip:x", "c").unwrap();
        }
        assert_eq!(c.counts.len(), MAX_NONCES, "bounded");
        assert_eq!(c.nonce_count("r", "A"), 0, "oldest evicted");
    }

    #[test]
    fn retry_decisions() {
        let mut c = DigestClient::new();
        let creds = Credentials::new("u", "p");
        let first = parse_challenge("Digest realm=\"r\", nonce=\"A\", qop=auth").unwrap();
        assert!(c.should_retry(&first, false), "first challenge is answered");
        c.authorize(&first, &creds, "INVITE", "sip:x", "c").unwrap();
        assert!(
            !c.should_retry(&first, true),
            "same nonce again: wrong credentials"
        );
        let stale =
            parse_challenge("Digest realm=\"r\", nonce=\"A\", qop=auth, stale=TRUE").unwrap();
        assert!(stale.stale);
        assert!(c.should_retry(&stale, true), "stale: answer again");
        let other = parse_challenge("Digest realm=\"proxy\", nonce=\"Z\"").unwrap();
        assert!(c.should_retry(&other, true), "a nonce we never answered");
        let not_stale = parse_challenge("Digest realm=r, nonce=A, stale=false").unwrap();
        assert!(!not_stale.stale);
    }

    #[test]
    fn auth_int_only() {
        let ch = parse_challenge("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\"").unwrap();
        let creds = Credentials::new("u", "p");
        let mut c = DigestClient::new();
        assert_eq!(
            c.authorize(&ch, &creds, "INVITE", "sip:x", "c"),
            Err(AuthError::AuthIntNeedsBody)
        );
        let v = c
            .authorize_with_body(&ch, &creds, "INVITE", "sip:x", "c", b"v=0\r\n")
            .unwrap();
        assert_eq!(param(&v, "qop"), Some("auth-int"));
        let ha1 = Algorithm::Md5.hex(b"u:r:p");
        let ha2 = Algorithm::Md5
            .hex(format!("INVITE:sip:x:{}", Algorithm::Md5.hex(b"v=0\r\n")).as_bytes());
        let want = Algorithm::Md5.hex(format!("{ha1}:n:00000001:c:auth-int:{ha2}").as_bytes());
        assert_eq!(param(&v, "response"), Some(want.as_str()));
        let odd = parse_challenge("Digest realm=\"r\", nonce=\"n\", qop=\"x-foo\"").unwrap();
        assert_eq!(
            c.authorize(&odd, &creds, "INVITE", "sip:x", "c"),
            Err(AuthError::UnsupportedQop("x-foo".into()))
        );
    }

    #[test]
    fn parsing_details() {
        let ch = parse_challenge(
            "  DIGEST Realm = \"a \\\"q\\\" \\\\ b\" ,, nonce=abc123 ,\n\tOpaque=\"\", \
             Domain=\"sip:a sip:b\", x-vendor=\"ignored\", Stale=true,",
        )
        .unwrap();
        assert_eq!(ch.realm, "a \"q\" \\ b");
        assert_eq!(ch.nonce, "abc123");
        assert_eq!(ch.opaque.as_deref(), Some(""));
        assert_eq!(ch.domain.as_deref(), Some("sip:a sip:b"));
        assert!(ch.stale);
        // Escapes are written back so the server sees its own realm.
        let v = DigestClient::new()
            .authorize(&ch, &Credentials::new("u", "p"), "REGISTER", "sip:r", "c")
            .unwrap();
        assert!(v.contains("realm=\"a \\\"q\\\" \\\\ b\""));
        assert_eq!(parse_challenge(&v).unwrap().realm, ch.realm);
        // A fold inside a quoted string is one space.
        let ch = parse_challenge("Digest realm=\"a\r\n b\", nonce=n").unwrap();
        assert_eq!(ch.realm, "a b");
        // UTF-8 in values, escaped too.
        let ch = parse_challenge("Digest realm=\"caf\\é\", nonce=n").unwrap();
        assert_eq!(ch.realm, "café");
    }

    #[test]
    fn parse_errors() {
        use AuthError::*;
        let cases: &[(&str, AuthError)] = &[
            ("", Malformed("no scheme")),
            ("Basic realm=\"x\"", NotDigest("Basic".into())),
            ("Digestrealm=x", NotDigest("Digestrealm".into())),
            ("Digest", MissingParam("realm")),
            ("Digest realm=x", MissingParam("nonce")),
            ("Digest nonce=x", MissingParam("realm")),
            ("Digest realm=\"x", Malformed("unterminated quoted string")),
            (
                "Digest realm=\"x\\",
                Malformed("unterminated quoted string"),
            ),
            (
                "Digest realm=x nonce=y",
                Malformed("expected ',' between parameters"),
            ),
            (
                "Digest realm",
                Malformed("expected '=' after a parameter name"),
            ),
            ("Digest realm=", Malformed("expected a parameter value")),
            ("Digest =x", Malformed("expected a parameter name")),
            (
                "Digest realm=a, realm=b, nonce=n",
                DuplicateParam("realm".into()),
            ),
            (
                "Digest realm=a, NONCE=n, nonce=m",
                DuplicateParam("nonce".into()),
            ),
            (
                "Digest realm=a, nonce=n, algorithm=SHA3",
                UnsupportedAlgorithm("SHA3".into()),
            ),
            (
                "Digest realm=a,\r\nnonce=n",
                Malformed("line break that is not a fold"),
            ),
            ("Digest realm=a,\rnonce=n", Malformed("bare CR")),
            (
                "Digest realm=\"a\u{1}\", nonce=n",
                Malformed("control character in quoted string"),
            ),
            (
                "Digest realm=\"a\\\u{0}\", nonce=n",
                Malformed("escaped control character"),
            ),
            (
                "Digest realm=a\r\n",
                Malformed("line break that is not a fold"),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse_challenge(input).as_ref(),
                Err(want),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn header_injection_is_refused() {
        let ch = parse_challenge("Digest realm=r, nonce=n, qop=auth").unwrap();
        let mut c = DigestClient::new();
        let bad = Credentials::new("u\r\nVia: evil", "p");
        assert_eq!(
            c.authorize(&ch, &bad, "INVITE", "sip:x", "c"),
            Err(AuthError::InvalidValue("username"))
        );
        let ok = Credentials::new("u", "p");
        assert_eq!(
            c.authorize(&ch, &ok, "INVITE", "sip:x\n", "c"),
            Err(AuthError::InvalidValue("uri"))
        );
        assert_eq!(
            c.authorize(&ch, &ok, "INV ITE", "sip:x", "c"),
            Err(AuthError::InvalidValue("method"))
        );
        let mut forged = ch.clone();
        forged.nonce = "n\r\n".into();
        assert_eq!(
            c.authorize(&forged, &ok, "INVITE", "sip:x", "c"),
            Err(AuthError::InvalidValue("nonce"))
        );
        assert!(!format!("{ok:?}").contains("\"p\""), "password is redacted");
    }

    #[test]
    fn fuzz_exercise_accepts_its_own_checks() {
        fuzz_exercise(b"Digest realm=\"r\", nonce=\"n\", qop=\"auth\", opaque=\"o\\\"\"");
        fuzz_exercise(b"Digest realm=r, nonce=n, qop=\"x\"");
        fuzz_exercise(&[0xff, 0x00]);
    }
}

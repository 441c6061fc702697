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

mod challenge;
mod digest;
#[cfg(test)]
mod tests;

pub use challenge::{parse_challenge, select_challenge};
pub use digest::DigestClient;

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

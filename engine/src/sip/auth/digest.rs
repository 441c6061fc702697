//! Answering a challenge: the `Authorization` value and the nonce counts behind it.

use super::challenge::is_token_char;
use super::*;

/// How many (realm, nonce) pairs a [`DigestClient`] remembers. Servers rotate nonces, so
/// a long-lived client would otherwise grow without bound; evicting the oldest only means
/// a very old nonce would restart at nc=1, which the server then rejects with a fresh
/// challenge.
pub(super) const MAX_NONCES: usize = 1024;

/// Answers Digest challenges and keeps the nonce count (`nc`) for each nonce it has used,
/// so that answering the same nonce again (on the next request that reuses it) sends
/// nc=00000002 and so on, as RFC 7616 §3.4 requires for replay protection.
///
/// It holds no secrets; one client per trunk (or per call) is fine.
#[derive(Debug, Default, Clone)]
pub struct DigestClient {
    pub(super) counts: HashMap<(String, String), u32>,
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
        check_inputs(ch, creds, method, uri, cnonce)?;
        let qop = choose_qop(ch, body.is_some())?;
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
        let answer = Answer {
            username: &username,
            uri,
            response: &response,
            cnonce,
            qop: qop_token.zip(nc),
        };
        Ok(answer.header(ch))
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

/// What a computed digest answer writes into its `Authorization` header.
struct Answer<'a> {
    username: &'a str,
    uri: &'a str,
    response: &'a str,
    cnonce: &'a str,
    /// The qop token and nonce count, when the challenge offered a qop.
    qop: Option<(&'static str, u32)>,
}

impl Answer<'_> {
    /// `Digest username="..", realm="..", ...` for challenge `ch`.
    fn header(&self, ch: &Challenge) -> String {
        let mut out = String::with_capacity(256);
        out.push_str("Digest username=");
        push_quoted(&mut out, self.username);
        out.push_str(", realm=");
        push_quoted(&mut out, &ch.realm);
        out.push_str(", nonce=");
        push_quoted(&mut out, &ch.nonce);
        out.push_str(", uri=");
        push_quoted(&mut out, self.uri);
        let alg = ch.algorithm;
        let _ = write!(
            out,
            ", response=\"{}\", algorithm={}",
            self.response,
            alg.as_str()
        );
        if self.qop.is_some() || alg.is_session() {
            out.push_str(", cnonce=");
            push_quoted(&mut out, self.cnonce);
        }
        if let Some((q, nc)) = self.qop {
            let _ = write!(out, ", qop={q}, nc={nc:08x}");
        }
        if let Some(o) = &ch.opaque {
            out.push_str(", opaque=");
            push_quoted(&mut out, o);
        }
        if ch.userhash {
            out.push_str(", userhash=true");
        }
        out
    }
}

/// Refuses values that cannot go into a quoted header parameter, and a method that is not
/// a token.
fn check_inputs(
    ch: &Challenge,
    creds: &Credentials,
    method: &str,
    uri: &str,
    cnonce: &str,
) -> Result<(), AuthError> {
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
    Ok(())
}

/// The qop we answer with: `auth` first, `auth-int` only with a body to hash, none when
/// the challenge offers none (RFC 2069); an error when it offers only what we cannot do.
fn choose_qop(ch: &Challenge, has_body: bool) -> Result<Option<Qop>, AuthError> {
    if ch.qop.is_empty() {
        Ok(None)
    } else if ch.qop.contains(&Qop::Auth) {
        Ok(Some(Qop::Auth))
    } else if ch.qop.contains(&Qop::AuthInt) {
        if !has_body {
            return Err(AuthError::AuthIntNeedsBody);
        }
        Ok(Some(Qop::AuthInt))
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
        Err(AuthError::UnsupportedQop(names.join(",")))
    }
}

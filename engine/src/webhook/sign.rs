//! Standard Webhooks signing (standardwebhooks.com): the secret is `whsec_` followed by
//! the base64 of the key; each request carries `webhook-id` (the message id, the same on
//! every retry), `webhook-timestamp` (Unix seconds of this attempt) and
//! `webhook-signature`: `v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of a secret as shown to the tenant.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new secret: 32 random bytes (the specification asks for 24 to 64).
pub fn new_secret() -> String {
    let key: [u8; 32] = rand::random();
    format!("{SECRET_PREFIX}{}", B64.encode(key))
}

/// The key inside a secret; None if it is not `whsec_` + base64.
pub fn key_of(secret: &str) -> Option<Vec<u8>> {
    let b = secret.strip_prefix(SECRET_PREFIX)?;
    B64.decode(b).ok().filter(|k| !k.is_empty())
}

/// The `webhook-signature` value for one attempt.
pub fn signature(key: &[u8], msg_id: &str, timestamp_s: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length, so new_from_slice cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_s.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_specification_example() {
        // The example of the Standard Webhooks reference libraries' tests.
        let key = key_of("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = signature(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_are_fresh_and_parse() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert_eq!(key_of(&a).map(|k| k.len()), Some(32));
        assert_eq!(key_of("whsec_"), None);
        assert_eq!(key_of("nope"), None);
        assert_eq!(key_of("whsec_!!"), None);
    }
}

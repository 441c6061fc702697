//! CSRF protection of the forms: a double-submit token. The page sets a random token in a
//! `SameSite=Strict; HttpOnly` cookie and the same value in a hidden field; a POST is
//! accepted only when both are present and equal (compared in constant time). Another
//! site can make a browser post a form, but can neither read nor set this cookie.

use rand::RngCore;

/// The cookie's name.
pub const COOKIE: &str = "csrf";
/// The form field's name.
pub const FIELD: &str = "csrf";

/// A fresh random token (128 bits, hex).
pub fn new_token() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    crate::serve::state::hex(&b)
}

/// The `Set-Cookie` value carrying `token` for paths under `path`.
pub fn set_cookie(token: &str, path: &str) -> String {
    format!("{COOKIE}={token}; Path={path}; HttpOnly; Secure; SameSite=Strict; Max-Age=7200")
}

/// Whether a POST carries the token of its cookie.
pub fn check(cookie: Option<&str>, field: Option<&str>) -> bool {
    match (cookie, field) {
        (Some(c), Some(f)) if c.len() == 32 && c.len() == f.len() => {
            c.bytes()
                .zip(f.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
        }
        _ => false,
    }
}

/// A cookie's value from a `Cookie` header.
pub fn cookie_value<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_token_in_cookie_and_field_passes() {
        let t = new_token();
        assert_eq!(t.len(), 32);
        assert!(check(Some(&t), Some(&t)));
        assert!(!check(Some(&t), None));
        assert!(!check(None, Some(&t)));
        assert!(!check(Some(&t), Some(&new_token())));
        assert!(!check(Some(""), Some("")));
    }

    #[test]
    fn cookie_values_are_found_by_name() {
        let h = Some("a=1; csrf=abc; console=xyz");
        assert_eq!(cookie_value(h, "csrf"), Some("abc"));
        assert_eq!(cookie_value(h, "console"), Some("xyz"));
        assert_eq!(cookie_value(h, "nope"), None);
        assert_eq!(cookie_value(None, "csrf"), None);
    }
}

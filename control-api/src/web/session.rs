//! The console's sessions: a random id in an `HttpOnly; Secure; SameSite=Strict` cookie
//! names a server-side record holding the tenant token (never sent back to the browser),
//! the session's CSRF token and when it ends. Pure over `now`; bounded in number.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The cookie's name.
pub const COOKIE: &str = "console";
/// How long a session lives.
pub const TTL: Duration = Duration::from_secs(8 * 3600);
/// Sessions kept at once.
pub const MAX: usize = 1000;

/// One operator's session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Tenant id.
    pub tenant: String,
    /// The tenant's API token, for the console's calls to `/v1`.
    pub token: String,
    /// The forms' CSRF token.
    pub csrf: String,
    /// When it started.
    pub created: Instant,
}

/// Sessions by id.
#[derive(Debug, Default)]
pub struct Sessions {
    map: HashMap<String, Session>,
}

impl Sessions {
    /// Opens a session; its id.
    pub fn open(&mut self, tenant: &str, token: &str, now: Instant) -> String {
        self.map.retain(|_, s| now.duration_since(s.created) < TTL);
        if self.map.len() >= MAX {
            // The oldest goes: a flood of logins cannot grow memory.
            if let Some(k) = self
                .map
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(k, _)| k.clone())
            {
                self.map.remove(&k);
            }
        }
        let id = super::csrf::new_token();
        self.map.insert(
            id.clone(),
            Session {
                tenant: tenant.to_string(),
                token: token.to_string(),
                csrf: super::csrf::new_token(),
                created: now,
            },
        );
        id
    }

    /// The live session with this id.
    pub fn get(&self, id: &str, now: Instant) -> Option<&Session> {
        self.map
            .get(id)
            .filter(|s| now.duration_since(s.created) < TTL)
    }

    /// Ends a session.
    pub fn close(&mut self, id: &str) {
        self.map.remove(id);
    }
}

/// The cookie that holds session `id` (or, with `None`, clears it).
pub fn cookie(id: Option<&str>) -> String {
    match id {
        Some(id) => format!(
            "{COOKIE}={id}; Path=/console; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
            TTL.as_secs()
        ),
        None => format!("{COOKIE}=; Path=/console; HttpOnly; Secure; SameSite=Strict; Max-Age=0"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_close() {
        let t0 = Instant::now();
        let mut s = Sessions::default();
        let id = s.open("fondi", "tok", t0);
        assert_eq!(s.get(&id, t0).unwrap().tenant, "fondi");
        assert!(s.get(&id, t0 + TTL).is_none());
        s.close(&id);
        assert!(s.get(&id, t0).is_none());
        assert!(cookie(Some("x")).contains("HttpOnly; Secure; SameSite=Strict"));
    }

    #[test]
    fn the_number_of_sessions_is_bounded() {
        let t0 = Instant::now();
        let mut s = Sessions::default();
        for i in 0..(MAX + 5) {
            s.open("t", "k", t0 + Duration::from_millis(i as u64));
        }
        assert_eq!(s.map.len(), MAX);
    }
}

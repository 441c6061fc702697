//! The `[sip]` settings that harden the SIP side for the open internet: limits on SIP over
//! TCP, what strangers get, and the User-Agent/Server value.

use std::time::Duration;

use serde::Deserialize;

use crate::net::{TcpLimits, TlsFiles};
use crate::sip::endpoint::{StrangerAction, DEFAULT_USER_AGENT};
use crate::sip::stream::DEFAULT_MAX_MESSAGE;

/// `[sip]` (besides the listen address).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SipSettings {
    /// `User-Agent` and `Server` value; generic by default so scanners learn no version.
    pub user_agent: String,
    /// What requests from addresses that are not trunks get: `"drop"` (default) or
    /// `"reject"` (one stateless 403, rate-limited per source).
    pub strangers: StrangerAction,
    /// Answer OPTIONS from strangers (off: only trunks get an answer).
    pub options_from_strangers: bool,
    /// Largest SIP message over TCP, bytes (64 KiB).
    pub max_message_bytes: usize,
    /// Inbound TCP connections open at once.
    pub tcp_max_connections: usize,
    /// Inbound TCP connections open at once from one IP address.
    pub tcp_max_per_source: usize,
    /// A message over TCP must arrive whole within this many seconds of its first byte.
    pub tcp_header_timeout_s: u64,
    /// A TCP connection idle this many seconds is closed.
    pub tcp_idle_timeout_s: u64,
    /// Where to accept SIP over TLS (e.g. `0.0.0.0:5061`); none by default. Trunks with
    /// `transport = "tls"` are reached over TLS whether or not we listen.
    pub tls_listen: Option<std::net::SocketAddr>,
    /// Our certificate chain (PEM): needed by `tls_listen`, and presented to carriers that
    /// ask for a client certificate.
    pub tls_cert: Option<std::path::PathBuf>,
    /// The certificate's private key (PEM).
    pub tls_key: Option<std::path::PathBuf>,
    /// CA certificates (PEM) carriers' certificates are checked against; the system's
    /// roots by default.
    pub tls_ca: Option<std::path::PathBuf>,
    /// Check that a TLS carrier's certificate names the trunk's host (default on; turn off
    /// only for a lab carrier with a self-signed certificate).
    pub tls_verify: bool,
}

impl Default for SipSettings {
    fn default() -> Self {
        let l = TcpLimits::default();
        SipSettings {
            user_agent: DEFAULT_USER_AGENT.to_string(),
            strangers: StrangerAction::Drop,
            options_from_strangers: false,
            max_message_bytes: DEFAULT_MAX_MESSAGE,
            tcp_max_connections: l.max_connections,
            tcp_max_per_source: l.max_per_source,
            tcp_header_timeout_s: l.header_timeout.as_secs(),
            tcp_idle_timeout_s: l.idle_timeout.as_secs(),
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            tls_verify: true,
        }
    }
}

impl SipSettings {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.user_agent.trim().is_empty()
            || !self
                .user_agent
                .chars()
                .all(|c| c.is_ascii_graphic() || c == ' ')
        {
            return Err("sip.user_agent: must be printable ASCII, not empty".into());
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.max_message_bytes) {
            return Err("sip.max_message_bytes: must be 1024..16777216".into());
        }
        for (k, v) in [
            ("sip.tcp_max_connections", self.tcp_max_connections),
            ("sip.tcp_max_per_source", self.tcp_max_per_source),
            (
                "sip.tcp_header_timeout_s",
                self.tcp_header_timeout_s as usize,
            ),
            ("sip.tcp_idle_timeout_s", self.tcp_idle_timeout_s as usize),
        ] {
            if v == 0 {
                return Err(format!("{k}: must be at least 1"));
            }
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err("sip.tls_cert and sip.tls_key: give both or neither".into());
        }
        if self.tls_listen.is_some() && self.tls_cert.is_none() {
            return Err("sip.tls_listen: needs tls_cert and tls_key".into());
        }
        Ok(())
    }

    /// The TLS files as the driver takes them.
    pub fn tls_files(&self) -> TlsFiles {
        TlsFiles {
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
            ca: self.tls_ca.clone(),
            verify: self.tls_verify,
        }
    }

    /// The TCP limits for the driver.
    pub fn tcp_limits(&self) -> TcpLimits {
        TcpLimits {
            max_message: self.max_message_bytes,
            max_connections: self.tcp_max_connections,
            max_per_source: self.tcp_max_per_source,
            header_timeout: Duration::from_secs(self.tcp_header_timeout_s),
            idle_timeout: Duration::from_secs(self.tcp_idle_timeout_s),
            ..TcpLimits::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_defaults() {
        let s: SipSettings =
            toml::from_str("strangers = \"reject\"\ntcp_max_per_source = 4").unwrap();
        assert_eq!(s.strangers, StrangerAction::Reject);
        assert_eq!(s.tcp_limits().max_per_source, 4);
        assert_eq!(s.tcp_limits().max_message, 64 * 1024);
        assert!(!s.user_agent.contains("dialer"));
        assert!(toml::from_str::<SipSettings>("strangers = \"maybe\"").is_err());
        assert!(s.validate().is_ok());
        let bad = SipSettings {
            tcp_idle_timeout_s: 0,
            ..SipSettings::default()
        };
        assert!(bad.validate().unwrap_err().contains("tcp_idle_timeout_s"));
    }
}

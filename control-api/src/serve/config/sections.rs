//! The sections of `dialer serve`'s file: `[http]`, `[sip]`, `[media]`, `[store]`,
//! `[hep]`, `[cluster]`, each with its defaults and its own checks.

use std::path::PathBuf;

use engine::dialer::SipSettings;
use serde::Deserialize;

use super::{key_err, ConfigError};

/// `[http]`: the API listener.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    /// Address of the HTTP API (`127.0.0.1:8080`; port 0 picks a free one).
    pub listen: String,
    /// Largest request body accepted (prompt uploads, CSV imports), bytes.
    pub max_body_bytes: u64,
    /// A request's headers must arrive within this many seconds of the connection's first
    /// byte (or of the previous response): half-open requests are cut.
    pub header_timeout_s: u64,
    /// A request body must arrive whole within this many seconds.
    pub body_timeout_s: u64,
    /// HTTP connections open at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Requests per second each bearer token may make (a token bucket; 429 with
    /// Retry-After beyond it). Requests without a valid token share one bucket per
    /// client address.
    pub rate_limit_per_s: u32,
    /// Burst size of that bucket.
    pub rate_limit_burst: u32,
    /// When set, `/metrics` asks for `Authorization: Bearer <this>` (write `${ENV}`).
    pub metrics_token: Option<String>,
    /// When set, `/metrics` is served on this address only, not on `listen`.
    pub metrics_listen: Option<String>,
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 20 * 1024 * 1024,
            header_timeout_s: 10,
            body_timeout_s: 120,
            max_connections: 1024,
            rate_limit_per_s: 100,
            rate_limit_burst: 400,
            metrics_token: None,
            metrics_listen: None,
        }
    }
}

/// `[sip]`: the SIP listener (UDP and TCP) and the engine's SIP settings, which are
/// defined (with their defaults and checks) once, in [`SipSettings`].
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct SipSection {
    /// Local SIP address.
    pub listen: String,
    /// Every other `[sip]` key. Unknown keys are refused by [`check_sip_keys`] before
    /// this is read (serde cannot deny them through `flatten`).
    #[serde(flatten)]
    pub settings: SipSettings,
}

impl Default for SipSection {
    fn default() -> Self {
        SipSection {
            listen: "127.0.0.1:5060".into(),
            settings: SipSettings::default(),
        }
    }
}

/// Refuses unknown keys and bad values in the `[sip]` table with the key's name, as
/// `deny_unknown_fields` does for the other sections: what is not `listen` must be a
/// [`SipSettings`] key.
pub(super) fn check_sip_keys(root: &toml::Table) -> Result<(), ConfigError> {
    let Some(toml::Value::Table(sip)) = root.get("sip") else {
        return Ok(());
    };
    let mut rest = sip.clone();
    rest.remove("listen");
    serde_path_to_error::deserialize::<_, SipSettings>(toml::Value::Table(rest))
        .map(|_| ())
        .map_err(|e| {
            let path = e.path().to_string();
            let key = if path == "." {
                "sip".to_string()
            } else {
                format!("sip.{path}")
            };
            super::path_error(key, e.into_inner().to_string())
        })
}

/// `[media]`: RTP.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MediaSection {
    /// Lowest RTP port.
    pub rtp_port_min: u16,
    /// Highest RTP port.
    pub rtp_port_max: u16,
    /// Address written in SDP offers; by default the SIP address, or the one the kernel
    /// routes towards the first trunk when SIP listens on 0.0.0.0.
    pub ip: Option<String>,
}

impl Default for MediaSection {
    fn default() -> Self {
        MediaSection {
            rtp_port_min: 20000,
            rtp_port_max: 39999,
            ip: None,
        }
    }
}

/// Where `[store] url` points.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreUrl {
    /// A SQLite file (created with its directory if missing).
    Sqlite(PathBuf),
    /// A PostgreSQL database URL, as given.
    Postgres(String),
}

/// `[store]`: persistence.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// `sqlite://PATH` (the embedded default) or `postgres://USER:PASSWORD@HOST:PORT/DB`
    /// (`postgresql://` too: one database shared by several nodes).
    pub url: String,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            url: "sqlite://./dialer.db".into(),
        }
    }
}

/// `[hep]`: mirror SIP to a HEP v3 collector (Homer, `sngrep -L`). Off without `address`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HepSection {
    /// Collector, `udp:HOST:PORT` (`udp:10.0.0.5:9060`, `udp:[::1]:9060`).
    pub address: Option<String>,
    /// Capture agent id stamped on every packet, to tell dialers apart in Homer.
    pub capture_id: u32,
    /// Auth key the collector requires, if any (write `${ENV}`).
    pub password: Option<String>,
    /// Messages that may wait for the sender; beyond it they are dropped (and counted),
    /// so a slow or absent collector never delays calls.
    pub queue: u32,
}

impl Default for HepSection {
    fn default() -> Self {
        HepSection {
            address: None,
            capture_id: 2001,
            password: None,
            queue: 10_000,
        }
    }
}

impl HepSection {
    /// The collector's `HOST:PORT` when HEP is on; an error names what is wrong.
    pub fn collector(&self) -> Result<Option<String>, ConfigError> {
        let Some(a) = &self.address else {
            return Ok(None);
        };
        let rest = a.strip_prefix("udp:").ok_or_else(|| {
            key_err(
                "hep.address",
                format!("{a:?} is not udp:HOST:PORT (only UDP)"),
            )
        })?;
        let port_ok = rest
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p != 0));
        if !port_ok {
            return Err(key_err(
                "hep.address",
                format!("{a:?} is not udp:HOST:PORT"),
            ));
        }
        Ok(Some(rest.to_string()))
    }
}

/// `[cluster]`: how this node takes part when several share a PostgreSQL store (ignored
/// with SQLite, which has one node).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSection {
    /// This node's id, unique in the cluster; default: the host name and `sip.listen`.
    pub node_id: Option<String>,
    /// Heartbeat interval, ms: lease renewal, trunk shares, takeover of dead nodes' calls.
    pub beat_ms: u64,
    /// How long a node's claims and calls are honoured without a beat, ms.
    pub lease_ms: u64,
}

impl Default for ClusterSection {
    fn default() -> Self {
        ClusterSection {
            node_id: None,
            beat_ms: 1000,
            lease_ms: 5000,
        }
    }
}

impl ClusterSection {
    /// The node id: the configured one, or `HOST/SIP-LISTEN`.
    pub fn node_id(&self, sip_listen: &str) -> String {
        if let Some(id) = self.node_id.as_ref().filter(|s| !s.is_empty()) {
            return id.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "node".into());
        format!("{host}/{sip_listen}")
    }

    /// Checks the timings: a lease of at least two beats.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if self.beat_ms < 100 {
            return Err(key_err("cluster.beat_ms", "at least 100"));
        }
        if self.lease_ms < 2 * self.beat_ms {
            return Err(key_err(
                "cluster.lease_ms",
                "at least two beats (2 × beat_ms)",
            ));
        }
        Ok(())
    }
}

/// `[webhooks]`: where the dialer may post tenants' events.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksSection {
    /// Allow webhook URLs on loopback, private, link-local and other non-public
    /// addresses. Off by default: a tenant's URL must not reach the operator's own
    /// network (metadata services, admin consoles). On for labs and in-house receivers.
    pub allow_private_targets: bool,
}

impl WebhooksSection {
    /// The delivery policy this section sets.
    pub fn policy(&self) -> engine::webhook::TargetPolicy {
        if self.allow_private_targets {
            engine::webhook::TargetPolicy::Any
        } else {
            engine::webhook::TargetPolicy::PublicOnly
        }
    }
}

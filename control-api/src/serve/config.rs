//! `dialer serve` configuration: one TOML file, every key overridable by a
//! `DIALER_<SECTION>_<KEY>` environment variable (`DIALER_<KEY>` for top-level keys),
//! secrets written `${ENV_NAME}`. A bad configuration names the key and what is wrong.
//!
//! The `[[trunk]]` tables and `[retry]` are the engine's ([`DialerConfig`]): they are passed
//! through to [`DialerConfig::load_with`], which applies its own `DIALER_TRUNK_<NAME>_<KEY>`
//! overrides, so trunk keys stay defined in one place.

use std::net::SocketAddr;
use std::path::PathBuf;

use engine::dialer::{DialerConfig, SipSettings};
use engine::sip::endpoint::StrangerAction;
use serde::Deserialize;

/// A configuration that cannot be used; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML (the message carries line and column).
    #[error("config is not valid TOML: {0}")]
    Syntax(String),
    /// A key has a bad value, is unknown, or names an unset variable.
    #[error("config key `{key}`: {msg}")]
    Key {
        /// Dotted key (`media.rtp_port_min`).
        key: String,
        /// What is wrong.
        msg: String,
    },
}

fn key_err(key: &str, msg: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        key: key.to_string(),
        msg: msg.into(),
    }
}

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

/// `[sip]`: the SIP listener (UDP and TCP).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SipSection {
    /// Local SIP address.
    pub listen: String,
    /// `User-Agent`/`Server` header value; generic by default (no product, no version).
    pub user_agent: String,
    /// Requests from addresses that are not trunks: `"drop"` (default) or `"reject"`
    /// (one stateless 403, rate-limited per source).
    pub strangers: StrangerAction,
    /// Answer OPTIONS from strangers too (default: only trunks get an answer).
    pub options_from_strangers: bool,
    /// Largest SIP message over TCP, bytes; larger: 413 and the connection closed.
    pub max_message_bytes: usize,
    /// Inbound SIP TCP connections open at once.
    pub tcp_max_connections: usize,
    /// Inbound SIP TCP connections open at once per source IP.
    pub tcp_max_per_source: usize,
    /// Seconds a SIP message over TCP may take to arrive whole.
    pub tcp_header_timeout_s: u64,
    /// Seconds of silence after which a SIP TCP connection is closed.
    pub tcp_idle_timeout_s: u64,
    /// Where to accept SIP over TLS (e.g. `0.0.0.0:5061`); none by default.
    pub tls_listen: Option<std::net::SocketAddr>,
    /// Our certificate chain (PEM), for `tls_listen` and carriers asking for one.
    pub tls_cert: Option<std::path::PathBuf>,
    /// Its private key (PEM).
    pub tls_key: Option<std::path::PathBuf>,
    /// CA certificates (PEM) for carriers' certificates; the system's roots by default.
    pub tls_ca: Option<std::path::PathBuf>,
    /// Check that a TLS carrier's certificate names the trunk's host (default on).
    pub tls_verify: bool,
}

impl Default for SipSection {
    fn default() -> Self {
        let d = SipSettings::default();
        SipSection {
            listen: "127.0.0.1:5060".into(),
            user_agent: d.user_agent,
            strangers: d.strangers,
            options_from_strangers: d.options_from_strangers,
            max_message_bytes: d.max_message_bytes,
            tcp_max_connections: d.tcp_max_connections,
            tcp_max_per_source: d.tcp_max_per_source,
            tcp_header_timeout_s: d.tcp_header_timeout_s,
            tcp_idle_timeout_s: d.tcp_idle_timeout_s,
            tls_listen: d.tls_listen,
            tls_cert: d.tls_cert,
            tls_key: d.tls_key,
            tls_ca: d.tls_ca,
            tls_verify: d.tls_verify,
        }
    }
}

impl SipSection {
    /// The engine's settings (see [`SipSettings`] for what each key does).
    pub fn settings(&self) -> SipSettings {
        SipSettings {
            user_agent: self.user_agent.clone(),
            strangers: self.strangers,
            options_from_strangers: self.options_from_strangers,
            max_message_bytes: self.max_message_bytes,
            tcp_max_connections: self.tcp_max_connections,
            tcp_max_per_source: self.tcp_max_per_source,
            tcp_header_timeout_s: self.tcp_header_timeout_s,
            tcp_idle_timeout_s: self.tcp_idle_timeout_s,
            tls_listen: self.tls_listen,
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            tls_ca: self.tls_ca.clone(),
            tls_verify: self.tls_verify,
        }
    }
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
    fn check(&self) -> Result<(), ConfigError> {
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

/// The whole `dialer serve` configuration.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// HTTP API.
    #[serde(default)]
    pub http: HttpSection,
    /// SIP.
    #[serde(default)]
    pub sip: SipSection,
    /// RTP.
    #[serde(default)]
    pub media: MediaSection,
    /// Persistence.
    #[serde(default)]
    pub store: StoreSection,
    /// HEP capture.
    #[serde(default)]
    pub hep: HepSection,
    /// Several nodes on one PostgreSQL store.
    #[serde(default)]
    pub cluster: ClusterSection,
    /// Admin bearer token (write `${ENV}`). Absent: `DIALER_ADMIN_TOKEN`, else one is
    /// generated and printed once at first start (only its hash is kept).
    #[serde(default)]
    pub admin_token: Option<String>,
    /// Seconds live calls get to finish after SIGTERM/SIGINT.
    #[serde(default = "default_drain")]
    pub drain_timeout_s: u64,
    /// Region for numbers written without `+` (CLDR code).
    #[serde(default = "default_region")]
    pub default_region: String,
    /// Where uploaded prompts are kept; default: `<database>.prompts/` beside the database.
    #[serde(default)]
    pub data_dir: Option<String>,
    /// Default retry policy (engine keys), passed to the engine.
    #[serde(default)]
    pub retry: Option<toml::Value>,
    /// `[[trunk]]` tables (engine keys, see DESIGN), passed to the engine.
    #[serde(default, rename = "trunk")]
    pub trunks: Vec<toml::Value>,
    /// `[[prefix_limit]]` tables (engine keys: `prefix`, `cps`, `max_channels`, optional
    /// `tenant`), passed to the engine.
    #[serde(default, rename = "prefix_limit")]
    pub prefix_limits: Vec<toml::Value>,
    /// `[[number]]` tables: inbound numbers (see [`super::config_numbers`]).
    #[serde(default, rename = "number")]
    pub numbers: Vec<super::config_numbers::NumberEntry>,
    /// `[web]`: the citizens' pages (privacy notice per town, abuse limits).
    #[serde(default)]
    pub web: crate::web::WebConfig,
}

fn default_drain() -> u64 {
    30
}
fn default_region() -> String {
    "IT".into()
}

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    Bool,
}

/// Keys of this file that have an environment override (the trunk keys have theirs in
/// the engine): section (empty for top level), key, type.
const KEYS: &[(&str, &str, Kind)] = &[
    ("http", "listen", Kind::Str),
    ("http", "max_body_bytes", Kind::Int),
    ("http", "header_timeout_s", Kind::Int),
    ("http", "body_timeout_s", Kind::Int),
    ("http", "max_connections", Kind::Int),
    ("http", "rate_limit_per_s", Kind::Int),
    ("http", "rate_limit_burst", Kind::Int),
    ("http", "metrics_token", Kind::Str),
    ("http", "metrics_listen", Kind::Str),
    ("sip", "listen", Kind::Str),
    ("sip", "user_agent", Kind::Str),
    ("sip", "strangers", Kind::Str),
    ("sip", "options_from_strangers", Kind::Bool),
    ("sip", "max_message_bytes", Kind::Int),
    ("sip", "tcp_max_connections", Kind::Int),
    ("sip", "tcp_max_per_source", Kind::Int),
    ("sip", "tcp_header_timeout_s", Kind::Int),
    ("sip", "tcp_idle_timeout_s", Kind::Int),
    ("media", "rtp_port_min", Kind::Int),
    ("media", "rtp_port_max", Kind::Int),
    ("media", "ip", Kind::Str),
    ("store", "url", Kind::Str),
    ("hep", "address", Kind::Str),
    ("hep", "capture_id", Kind::Int),
    ("hep", "password", Kind::Str),
    ("hep", "queue", Kind::Int),
    ("cluster", "node_id", Kind::Str),
    ("cluster", "beat_ms", Kind::Int),
    ("cluster", "lease_ms", Kind::Int),
    ("", "admin_token", Kind::Str),
    ("", "drain_timeout_s", Kind::Int),
    ("", "default_region", Kind::Str),
    ("", "data_dir", Kind::Str),
];

/// The environment variable overriding `section.key`.
pub fn env_name(section: &str, key: &str) -> String {
    if section.is_empty() {
        format!("DIALER_{}", key.to_ascii_uppercase())
    } else {
        format!(
            "DIALER_{}_{}",
            section.to_ascii_uppercase(),
            key.to_ascii_uppercase()
        )
    }
}

fn dotted(section: &str, key: &str) -> String {
    if section.is_empty() {
        key.to_string()
    } else {
        format!("{section}.{key}")
    }
}

/// Replaces a whole-string `${NAME}` by the variable's value.
fn expand(
    key: &str,
    v: &mut toml::Value,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    if let toml::Value::String(s) = v {
        if let Some(name) = s.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
            *s = env(name)
                .ok_or_else(|| key_err(key, format!("environment variable {name} is not set")))?;
        }
    }
    Ok(())
}

impl ServeConfig {
    /// The built-in configuration (`dialer serve` with no `--config`), with environment
    /// overrides.
    pub fn from_env() -> Result<ServeConfig, ConfigError> {
        Self::parse_with("", &|k| std::env::var(k).ok())
    }

    /// Reads `path` with overrides from the process environment.
    pub fn load(path: &std::path::Path) -> Result<ServeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse_with(&text, &|k| std::env::var(k).ok())
    }

    /// Parses `text` with overrides from `env` (tests pass a map), then checks values.
    pub fn parse_with(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ServeConfig, ConfigError> {
        let mut root: toml::Table =
            toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        for &(section, key, kind) in KEYS {
            let name = env_name(section, key);
            let table = if section.is_empty() {
                &mut root
            } else {
                let t = root
                    .entry(section.to_string())
                    .or_insert_with(|| toml::Value::Table(Default::default()));
                match t {
                    toml::Value::Table(t) => t,
                    _ => return Err(key_err(section, "must be a table")),
                }
            };
            if let Some(raw) = env(&name) {
                let v = match kind {
                    Kind::Str => toml::Value::String(raw),
                    Kind::Int => toml::Value::Integer(raw.trim().parse().map_err(|_| {
                        key_err(
                            &dotted(section, key),
                            format!("{name}={raw:?} is not an integer"),
                        )
                    })?),
                    Kind::Bool => toml::Value::Boolean(match raw.trim() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => {
                            return Err(key_err(
                                &dotted(section, key),
                                format!("{name}={raw:?} is not true or false"),
                            ))
                        }
                    }),
                };
                table.insert(key.to_string(), v);
            }
            if let Some(v) = table.get_mut(key) {
                expand(&dotted(section, key), v, env)?;
            }
        }
        let cfg: ServeConfig =
            serde_path_to_error::deserialize(toml::Value::Table(root)).map_err(|e| {
                let path = e.path().to_string();
                // toml repeats the path on a second line: the first line says it all.
                let inner = e.into_inner().to_string();
                let inner = inner.lines().next().unwrap_or("").trim().to_string();
                // Unknown keys are reported at their parent: name the key itself.
                let key = if path == "." { String::new() } else { path };
                ConfigError::Key {
                    key: if key.is_empty() {
                        "(top level)".into()
                    } else {
                        key
                    },
                    msg: inner,
                }
            })?;
        cfg.check()?;
        // The engine part is validated now so that a bad trunk fails at start.
        cfg.dialer_config_with(env)?;
        Ok(cfg)
    }

    fn check(&self) -> Result<(), ConfigError> {
        for (k, v) in [
            ("http.listen", &self.http.listen),
            ("sip.listen", &self.sip.listen),
        ] {
            v.parse::<SocketAddr>()
                .map_err(|e| key_err(k, format!("{v:?} is not IP:PORT ({e})")))?;
        }
        if self.media.rtp_port_min < 1024 || self.media.rtp_port_min >= self.media.rtp_port_max {
            return Err(key_err(
                "media.rtp_port_min",
                format!(
                    "{}..{} is not a port range (1024 <= min < max)",
                    self.media.rtp_port_min, self.media.rtp_port_max
                ),
            ));
        }
        if let Some(v) = &self.http.metrics_listen {
            v.parse::<SocketAddr>().map_err(|e| {
                key_err("http.metrics_listen", format!("{v:?} is not IP:PORT ({e})"))
            })?;
        }
        if let Some(t) = &self.http.metrics_token {
            if t.len() < 16 {
                return Err(key_err(
                    "http.metrics_token",
                    "must be at least 16 characters",
                ));
            }
        }
        for (k, v) in [
            ("http.header_timeout_s", self.http.header_timeout_s),
            ("http.body_timeout_s", self.http.body_timeout_s),
            ("http.max_connections", self.http.max_connections as u64),
            (
                "http.rate_limit_per_s",
                u64::from(self.http.rate_limit_per_s),
            ),
            (
                "http.rate_limit_burst",
                u64::from(self.http.rate_limit_burst),
            ),
        ] {
            if v == 0 {
                return Err(key_err(k, "must be at least 1"));
            }
        }
        if let Err(msg) = self.sip.settings().validate() {
            let (k, m) = msg.split_once(": ").unwrap_or(("sip", &msg));
            return Err(key_err(k, m));
        }
        if let Some(ip) = &self.media.ip {
            ip.parse::<std::net::IpAddr>()
                .map_err(|e| key_err("media.ip", format!("{ip:?}: {e}")))?;
        }
        self.store_url()?;
        self.cluster.check()?;
        self.hep.collector()?;
        if self.hep.queue == 0 {
            return Err(key_err("hep.queue", "must be at least 1"));
        }
        if self.drain_timeout_s == 0 || self.drain_timeout_s > 3600 {
            return Err(key_err("drain_timeout_s", "must be 1..3600 seconds"));
        }
        if let Some(t) = &self.admin_token {
            if t.len() < 16 {
                return Err(key_err("admin_token", "must be at least 16 characters"));
            }
        }
        if self.default_region.len() != 2 {
            return Err(key_err(
                "default_region",
                "must be a two-letter region code (IT)",
            ));
        }
        super::config_numbers::parse(&self.numbers, &self.default_region, 0)?;
        Ok(())
    }

    /// The store `store.url` names, checked.
    pub fn store_url(&self) -> Result<StoreUrl, ConfigError> {
        let url = &self.store.url;
        if engine::store::is_postgres_url(url) {
            return Ok(StoreUrl::Postgres(url.clone()));
        }
        let p = url.strip_prefix("sqlite://").ok_or_else(|| {
            key_err(
                "store.url",
                format!("{url:?} is neither sqlite://PATH nor postgres://..."),
            )
        })?;
        if p.is_empty() {
            return Err(key_err("store.url", "empty path"));
        }
        Ok(StoreUrl::Sqlite(PathBuf::from(p)))
    }

    /// Directory of uploaded prompts.
    pub fn prompt_dir(&self) -> PathBuf {
        match &self.data_dir {
            Some(d) => PathBuf::from(d).join("prompts"),
            None => {
                // Beside the SQLite file; with PostgreSQL, in the working directory.
                let db = match self.store_url() {
                    Ok(StoreUrl::Sqlite(p)) => p,
                    _ => "dialer.db".into(),
                };
                let mut s = db.into_os_string();
                s.push(".prompts");
                PathBuf::from(s)
            }
        }
    }

    /// The engine's configuration (SIP, RTP, region, retry, trunks) with the process
    /// environment.
    pub fn dialer_config(&self) -> Result<DialerConfig, ConfigError> {
        self.dialer_config_with(&|k| std::env::var(k).ok())
    }

    fn dialer_config_with(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<DialerConfig, ConfigError> {
        let mut t = toml::Table::new();
        t.insert("sip_bind".into(), self.sip.listen.clone().into());
        t.insert(
            "rtp_ports".into(),
            format!("{}-{}", self.media.rtp_port_min, self.media.rtp_port_max).into(),
        );
        t.insert("default_region".into(), self.default_region.clone().into());
        if let Some(r) = &self.retry {
            t.insert("retry".into(), r.clone());
        }
        if !self.trunks.is_empty() {
            t.insert("trunk".into(), toml::Value::Array(self.trunks.clone()));
        }
        if !self.prefix_limits.is_empty() {
            let v = toml::Value::Array(self.prefix_limits.clone());
            t.insert("prefix_limit".into(), v);
        }
        let text = toml::to_string(&t).map_err(|e| key_err("trunk", e.to_string()))?;
        // Only trunk overrides reach the engine: its top-level keys are ours here.
        let engine_env = |k: &str| {
            if k.starts_with("DIALER_") && !k.starts_with("DIALER_TRUNK_") {
                None
            } else {
                env(k)
            }
        };
        let cfg = DialerConfig::load_with(&text, &engine_env).map_err(|e| {
            let msg = e.to_string();
            let msg = msg.strip_prefix("config: ").unwrap_or(&msg).to_string();
            key_err(
                if self.trunks.is_empty() {
                    "retry"
                } else {
                    "trunk"
                },
                msg,
            )
        })?;
        let mut cfg = cfg;
        cfg.sip = self.sip.settings();
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(text: &str, vars: &[(&str, &str)]) -> Result<ServeConfig, ConfigError> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ServeConfig::parse_with(text, &|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_match_the_issue() {
        let c = parse("", &[]).unwrap();
        assert_eq!(c.http.listen, "127.0.0.1:8080");
        assert_eq!(c.sip.listen, "127.0.0.1:5060");
        assert_eq!((c.media.rtp_port_min, c.media.rtp_port_max), (20000, 39999));
        assert_eq!(
            c.store_url().unwrap(),
            StoreUrl::Sqlite(PathBuf::from("./dialer.db"))
        );
        assert_eq!(c.prompt_dir(), PathBuf::from("./dialer.db.prompts"));
    }

    #[test]
    fn env_overrides_and_secrets() {
        let c = parse(
            "admin_token = \"${TOK}\"\n[http]\nlisten = \"127.0.0.1:1\"\n",
            &[
                ("DIALER_HTTP_LISTEN", "127.0.0.1:9999"),
                ("DIALER_MEDIA_RTP_PORT_MIN", "30000"),
                ("TOK", "0123456789abcdef0123"),
            ],
        )
        .unwrap();
        assert_eq!(c.http.listen, "127.0.0.1:9999");
        assert_eq!(c.media.rtp_port_min, 30000);
        assert_eq!(c.admin_token.as_deref(), Some("0123456789abcdef0123"));
    }

    #[test]
    fn errors_name_the_key() {
        let e = parse("[media]\nrtp_port_min = \"x\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("media.rtp_port_min"), "{e}");
        let e = parse("[http]\nlisten = \"nope\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("http.listen"), "{e}");
        let e = parse("[http]\nlistn = \"x\"\n", &[]).unwrap_err();
        assert!(
            e.to_string().contains("http") && e.to_string().contains("listn"),
            "{e}"
        );
        let e = parse("admin_token = \"${NOPE}\"\n", &[]).unwrap_err();
        assert!(
            e.to_string().contains("admin_token") && e.to_string().contains("NOPE"),
            "{e}"
        );
        let e = parse("", &[("DIALER_MEDIA_RTP_PORT_MAX", "many")]).unwrap_err();
        assert!(e.to_string().contains("media.rtp_port_max"), "{e}");
        let e = parse("[store]\nurl = \"mysql://x\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("store.url"), "{e}");
        let c = parse("[store]\nurl = \"postgres://u:p@db:5432/dialer\"\n", &[]).unwrap();
        assert_eq!(
            c.store_url().unwrap(),
            StoreUrl::Postgres("postgres://u:p@db:5432/dialer".into())
        );
        let e = parse(
            "[[trunk]]\nname = \"a\"\nproxy = \"127.0.0.1:5070\"\ncps = \"fast\"\n",
            &[],
        )
        .unwrap_err();
        assert!(e.to_string().contains("trunk"), "{e}");
    }

    #[test]
    fn hep_is_off_by_default_and_checked_when_on() {
        let c = parse("", &[]).unwrap();
        assert_eq!(c.hep.collector().unwrap(), None);
        let c = parse(
            "[hep]\naddress = \"udp:127.0.0.1:9060\"\npassword = \"${HP}\"\n",
            &[("HP", "s3cret"), ("DIALER_HEP_CAPTURE_ID", "42")],
        )
        .unwrap();
        assert_eq!(
            c.hep.collector().unwrap().as_deref(),
            Some("127.0.0.1:9060")
        );
        assert_eq!(
            (c.hep.capture_id, c.hep.password.as_deref()),
            (42, Some("s3cret"))
        );
        let c = parse("[hep]\naddress = \"udp:homer.example:9060\"\n", &[]).unwrap();
        assert_eq!(
            c.hep.collector().unwrap().as_deref(),
            Some("homer.example:9060")
        );
        for bad in [
            "tcp:1.2.3.4:9060",
            "udp:1.2.3.4",
            "udp::9060",
            "udp:h:0",
            "udp:h:x",
        ] {
            let e = parse(&format!("[hep]\naddress = \"{bad}\"\n"), &[]).unwrap_err();
            assert!(e.to_string().contains("hep.address"), "{bad}: {e}");
        }
        let e = parse("[hep]\nqueue = 0\n", &[]).unwrap_err();
        assert!(e.to_string().contains("hep.queue"), "{e}");
        let e = parse("[hep]\nadress = \"udp:h:1\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("adress"), "{e}");
    }

    #[test]
    fn trunks_reach_the_engine() {
        let c = parse(
            "[[trunk]]\nname = \"a\"\nproxy = \"127.0.0.1:5070\"\nmax_channels = 4\ncps = 2\n",
            &[("DIALER_TRUNK_A_CPS", "7")],
        )
        .unwrap();
        let d = c
            .dialer_config_with(&|k| (k == "DIALER_TRUNK_A_CPS").then(|| "7".into()))
            .unwrap();
        assert_eq!(d.trunks.len(), 1);
        assert_eq!(d.trunks[0].cps, 7.0);
        assert_eq!(d.sip_bind, "127.0.0.1:5060");
    }

    #[test]
    fn cluster_section_defaults_and_checks() {
        let c = parse("", &[]).unwrap();
        assert_eq!((c.cluster.beat_ms, c.cluster.lease_ms), (1000, 5000));
        assert!(c
            .cluster
            .node_id("127.0.0.1:5060")
            .ends_with("/127.0.0.1:5060"));
        let c = parse(
            "[cluster]\nnode_id = \"a\"\n",
            &[("DIALER_CLUSTER_LEASE_MS", "3000")],
        )
        .unwrap();
        assert_eq!(
            (c.cluster.node_id("x"), c.cluster.lease_ms),
            ("a".into(), 3000)
        );
        let e = parse("[cluster]\nlease_ms = 1500\n", &[]).unwrap_err();
        assert!(e.to_string().contains("cluster.lease_ms"), "{e}");
    }
}

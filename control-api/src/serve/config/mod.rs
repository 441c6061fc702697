//! `dialer serve` configuration: one TOML file, every key overridable by a
//! `DIALER_<SECTION>_<KEY>` environment variable (`DIALER_<KEY>` for top-level keys),
//! secrets written `${ENV_NAME}`. A bad configuration names the key and what is wrong.
//!
//! The `[[trunk]]` tables and `[retry]` are the engine's ([`DialerConfig`]): they are passed
//! through to [`DialerConfig::load_with`], which applies its own `DIALER_TRUNK_<NAME>_<KEY>`
//! overrides, so trunk keys stay defined in one place.

use std::net::SocketAddr;
use std::path::PathBuf;

use engine::dialer::DialerConfig;
use serde::Deserialize;

mod env;
mod sections;
#[cfg(test)]
mod tests;

pub use env::env_name;
pub use sections::{
    ClusterSection, HepSection, HttpSection, MediaSection, SipSection, StoreSection, StoreUrl,
    WebhooksSection,
};

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

/// A deserialisation error at `key`: toml repeats the path on a second line, the first
/// line says it all.
fn path_error(key: String, inner: String) -> ConfigError {
    let msg = inner.lines().next().unwrap_or("").trim().to_string();
    ConfigError::Key { key, msg }
}

fn key_err(key: &str, msg: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        key: key.to_string(),
        msg: msg.into(),
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
    /// Where webhook deliveries may go.
    #[serde(default)]
    pub webhooks: WebhooksSection,
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
        env::apply(&mut root, env)?;
        sections::check_sip_keys(&root)?;
        let cfg: ServeConfig =
            serde_path_to_error::deserialize(toml::Value::Table(root)).map_err(|e| {
                let path = e.path().to_string();
                // Unknown keys are reported at their parent (here, the top level).
                let key = if path == "." {
                    "(top level)".into()
                } else {
                    path
                };
                path_error(key, e.into_inner().to_string())
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
        if let Err(msg) = self.sip.settings.validate() {
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
        cfg.sip = self.sip.settings.clone();
        Ok(cfg)
    }
}

//! The dialer's TOML configuration: SIP/RTP binding, the default region for numbers, the
//! default retry policy and the trunks.
//!
//! Every key can be overridden by an environment variable: `DIALER_<KEY>` for top-level
//! keys (`DIALER_SIP_BIND`), `DIALER_TRUNK_<NAME>_<KEY>` for a trunk's
//! (`DIALER_TRUNK_CARRIER_A_CPS=20`; the name upper-cased, `-` as `_`). String values
//! may be written `${ENV_NAME}` (for secrets), replaced when loaded.

use std::collections::HashMap;

use serde::Deserialize;

use codecs::Codec;

use super::retry::RetryPolicy;
use super::sip_settings::SipSettings;
use super::trunk::TrunkConfig;
use super::trunk_keys::{unknown_codec, unknown_route, RouteKey, TrunkTransport};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DialerConfig {
    /// Local SIP address (`0.0.0.0:5060`; port 0 picks one).
    #[serde(default = "default_bind")]
    pub sip_bind: String,
    /// RTP port range `MIN-MAX`.
    #[serde(default = "default_rtp_ports")]
    pub rtp_ports: String,
    /// Region for numbers written without `+` (CLDR code).
    #[serde(default = "default_region")]
    pub default_region: String,
    /// Retry rules for campaigns that give none.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Carrier trunks.
    #[serde(default, rename = "trunk")]
    pub trunks: Vec<TrunkConfig>,
    /// `[[prefix_limit]]`: CPS and channels per destination prefix, on top of the trunks'
    /// (global unless the table names a `tenant`).
    #[serde(default, rename = "prefix_limit")]
    pub prefix_limits: Vec<super::prefix_limit::PrefixLimit>,
    /// `[sip]`: TCP limits, strangers, User-Agent.
    #[serde(default)]
    pub sip: SipSettings,
    /// Several nodes share the trunks (set by the server when it joins a cluster, not a
    /// file key): each trunk stays at a zero share until the cluster grants one.
    #[serde(skip)]
    pub clustered: bool,
}

fn default_bind() -> String {
    "0.0.0.0:5060".into()
}
fn default_rtp_ports() -> String {
    "20000-29999".into()
}
fn default_region() -> String {
    "IT".into()
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not TOML, or keys of the wrong type.
    #[error("config: {0}")]
    Toml(#[from] toml::de::Error),
    /// `${NAME}` names an unset variable.
    #[error("config: environment variable {0} is not set")]
    MissingEnv(String),
    /// A semantic problem.
    #[error("config: {0}")]
    Invalid(String),
}

fn env_key(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// An override's text as a TOML value: a number, boolean or array when it parses as one,
/// else a string.
fn env_value(s: &str) -> toml::Value {
    toml::from_str::<HashMap<String, toml::Value>>(&format!("v = {s}"))
        .ok()
        .and_then(|mut m| m.remove("v"))
        .unwrap_or_else(|| toml::Value::String(s.to_string()))
}

fn expand(v: &mut toml::Value, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
    match v {
        toml::Value::String(s) => {
            if let Some(name) = s.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
                *s = env(name).ok_or_else(|| ConfigError::MissingEnv(name.to_string()))?;
            }
        }
        toml::Value::Array(a) => {
            for x in a {
                expand(x, env)?;
            }
        }
        toml::Value::Table(t) => {
            for (_, x) in t.iter_mut() {
                expand(x, env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

const TOP_KEYS: &[&str] = &["sip_bind", "rtp_ports", "default_region"];
const TRUNK_KEYS: &[&str] = &[
    "proxy",
    "transport",
    "realm",
    "username",
    "password",
    "register",
    "from_user",
    "from_domain",
    "caller_id",
    "codecs",
    "ptime_ms",
    "max_channels",
    "cps",
    "options_ping_interval_s",
    "priority",
    "weight",
    "ring_timeout_s",
    "routes",
    "media_latch",
];

impl DialerConfig {
    /// Parses `text` with overrides from the process environment.
    pub fn load(text: &str) -> Result<DialerConfig, ConfigError> {
        Self::load_with(text, &|k| std::env::var(k).ok())
    }

    /// Parses `text` with overrides from `env` (tests pass a map).
    pub fn load_with(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<DialerConfig, ConfigError> {
        let mut v: toml::Table = toml::from_str(text)?;
        for k in TOP_KEYS {
            if let Some(o) = env(&format!("DIALER_{}", env_key(k))) {
                v.insert((*k).to_string(), env_value(&o));
            }
        }
        if let Some(toml::Value::Array(trunks)) = v.get_mut("trunk") {
            for t in trunks {
                let Some(tab) = t.as_table_mut() else {
                    continue;
                };
                let name = tab
                    .get("name")
                    .and_then(|n| n.as_str())
                    .unwrap_or_default()
                    .to_string();
                for k in TRUNK_KEYS {
                    let var = format!("DIALER_TRUNK_{}_{}", env_key(&name), env_key(k));
                    if let Some(o) = env(&var) {
                        let val = match *k {
                            // Always strings, even when they look like numbers.
                            "password" | "username" | "from_user" | "caller_id" | "proxy" => {
                                toml::Value::String(o)
                            }
                            _ => env_value(&o),
                        };
                        tab.insert((*k).to_string(), val);
                    }
                }
            }
        }
        let mut value = toml::Value::Table(v);
        expand(&mut value, env)?;
        check_words(&value)?;
        let cfg: DialerConfig = value.try_into()?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let mut names = std::collections::HashSet::new();
        for t in &self.trunks {
            if !names.insert(t.name.as_str()) {
                return Err(ConfigError::Invalid(format!("duplicate trunk {}", t.name)));
            }
            t.validate()?;
        }
        self.sip.validate().map_err(ConfigError::Invalid)?;
        let mut seen = std::collections::HashSet::new();
        for (i, l) in self.prefix_limits.iter().enumerate() {
            l.validate()
                .map_err(|e| ConfigError::Invalid(format!("prefix_limit[{i}]: {e}")))?;
            if !seen.insert((l.tenant.as_deref(), l.prefix.as_str())) {
                return Err(ConfigError::Invalid(format!(
                    "prefix_limit[{i}]: duplicate prefix {}",
                    l.prefix
                )));
            }
        }
        Ok(())
    }
}

/// Names the key of a trunk word (transport, codec, route) that does not parse, as
/// `trunk[0].codecs[1]: unknown codec "G729"`, before serde reads the enums (whose own
/// errors cannot say which trunk).
fn check_words(v: &toml::Value) -> Result<(), ConfigError> {
    let Some(trunks) = v.get("trunk").and_then(|t| t.as_array()) else {
        return Ok(());
    };
    for (i, t) in trunks.iter().enumerate() {
        if let Some(s) = t.get("transport").and_then(|x| x.as_str()) {
            if TrunkTransport::parse(s).is_none() {
                return Err(ConfigError::Invalid(format!(
                    "trunk[{i}].transport: must be udp, tcp or tls, not {s:?}"
                )));
            }
        }
        let list = |key: &str| {
            t.get(key)
                .and_then(|x| x.as_array())
                .map(|a| a.iter().filter_map(|x| x.as_str()).enumerate().collect())
                .unwrap_or_else(Vec::new)
        };
        for (j, c) in list("codecs") {
            if c.parse::<Codec>().is_err() {
                let why = unknown_codec(c);
                return Err(ConfigError::Invalid(format!(
                    "trunk[{i}].codecs[{j}]: {why}"
                )));
            }
        }
        for (j, r) in list("routes") {
            if RouteKey::parse(r).is_none() {
                let why = unknown_route(r);
                return Err(ConfigError::Invalid(format!(
                    "trunk[{i}].routes[{j}]: {why}"
                )));
            }
        }
    }
    Ok(())
}

impl TrunkConfig {
    /// Checks one trunk as the configuration loader does (positive `cps` and
    /// `max_channels`; the transport, codecs and routes were checked when parsed); used for
    /// trunks changed at run time too.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let t = self;
        if !(t.cps > 0.0 && t.cps.is_finite()) || t.max_channels == 0 {
            return Err(ConfigError::Invalid(format!(
                "trunk {}: cps and max_channels must be positive",
                t.name
            )));
        }
        if t.srtp != crate::sip::sdp::crypto::SrtpMode::Off && t.transport != TrunkTransport::Tls {
            return Err(ConfigError::Invalid(format!(
                "trunk {}: srtp = {:?} needs transport = \"tls\" (SDES keys travel in the SDP, \
                 which only TLS keeps secret)",
                t.name,
                t.srtp.as_str()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"
        sip_bind = "127.0.0.1:0"
        [retry]
        busy = { interval_s = 2, max_attempts = 3 }
        [[trunk]]
        name = "carrier-a"
        proxy = "127.0.0.1:5070"
        max_channels = 30
        cps = 10
        password = "${A_SECRET}"
        routes = ["fixed", "+39"]
        [[trunk]]
        name = "b"
        proxy = "127.0.0.1:5080"
        max_channels = 5
        cps = 2.5
        priority = 1
    "#;

    #[test]
    fn loads_with_env_overrides_and_secrets() {
        let env = |k: &str| match k {
            "A_SECRET" => Some("s3cret".to_string()),
            "DIALER_TRUNK_CARRIER_A_CPS" => Some("20".to_string()),
            "DIALER_TRUNK_B_PASSWORD" => Some("1234".to_string()),
            "DIALER_SIP_BIND" => Some("127.0.0.1:5999".to_string()),
            _ => None,
        };
        let c = DialerConfig::load_with(TEXT, &env).unwrap();
        assert_eq!(c.sip_bind, "127.0.0.1:5999");
        assert_eq!(c.trunks[0].cps, 20.0);
        assert_eq!(c.trunks[0].password.as_deref(), Some("s3cret"));
        assert_eq!(c.trunks[1].password.as_deref(), Some("1234"));
        assert_eq!(c.trunks[1].cps, 2.5);
        assert_eq!(c.trunks[0].weight, 1);
        assert_eq!(c.retry.busy.interval_s, 2);
        assert_eq!(c.default_region, "IT");
    }

    #[test]
    fn the_example_file_loads() {
        let text = include_str!("../../dialer.example.toml");
        let env = |k: &str| (k == "CARRIER_A_PASSWORD").then(|| "x".to_string());
        let c = DialerConfig::load_with(text, &env).unwrap();
        assert_eq!(c.trunks.len(), 2);
        assert!(c.trunks[0].register);
        assert_eq!(c.trunks[1].weight, 1);
    }

    #[test]
    fn errors() {
        assert!(matches!(
            DialerConfig::load_with(TEXT, &|_| None),
            Err(ConfigError::MissingEnv(_))
        ));
        assert!(DialerConfig::load_with(
            "[[trunk]]\nname='a'\nproxy='x'\nmax_channels=1\ncps=0\n",
            &|_| None
        )
        .is_err());
        assert!(DialerConfig::load_with("bogus = 1", &|_| None).is_err());
    }

    #[test]
    fn words_parse_into_enums_and_bad_ones_name_their_key() {
        let base = "[[trunk]]\nname='a'\nproxy='x'\nmax_channels=1\ncps=1\n";
        let ok =
            format!("{base}transport='TCP'\ncodecs=['G722','pcma']\nroutes=['+39','mobile']\n");
        let c = DialerConfig::load_with(&ok, &|_| None).unwrap();
        let t = &c.trunks[0];
        assert_eq!(t.transport, TrunkTransport::Tcp);
        assert_eq!(t.codecs, [Codec::G722, Codec::Pcma]);
        assert_eq!(t.routes[0], RouteKey::Prefix("+39".into()));
        let bad = format!("{base}codecs=['PCMA','G729']\n");
        let e = DialerConfig::load_with(&bad, &|_| None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(r#"trunk[0].codecs[1]: unknown codec "G729""#),
            "{e}"
        );
        let bad = format!("{base}routes=['landline']\n");
        let e = DialerConfig::load_with(&bad, &|_| None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("trunk[0].routes[0]"), "{e}");
        let bad = format!("{base}transport='sctp'\n");
        let e = DialerConfig::load_with(&bad, &|_| None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("trunk[0].transport"), "{e}");
        let tls = format!("{base}transport='tls'\nsrtp='required'\n");
        let c = DialerConfig::load_with(&tls, &|_| None).unwrap();
        assert_eq!(c.trunks[0].transport, TrunkTransport::Tls);
        assert_eq!(
            c.trunks[0].srtp,
            crate::sip::sdp::crypto::SrtpMode::Required
        );
        let keys_in_clear = format!("{base}transport='udp'\nsrtp='optional'\n");
        let e = DialerConfig::load_with(&keys_in_clear, &|_| None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs transport = \"tls\""), "{e}");
    }
}

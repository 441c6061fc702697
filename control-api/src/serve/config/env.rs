//! Environment overrides (`DIALER_<SECTION>_<KEY>`) and `${NAME}` secrets.

use super::{key_err, ConfigError};

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
    ("webhooks", "allow_private_targets", Kind::Bool),
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

/// Applies the environment's overrides to the file's table and expands `${NAME}` values.
pub(super) fn apply(
    root: &mut toml::Table,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    for &(section, key, kind) in KEYS {
        let name = env_name(section, key);
        let table = if section.is_empty() {
            &mut *root
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
    Ok(())
}

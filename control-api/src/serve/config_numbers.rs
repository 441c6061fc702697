//! The configuration file's `[[number]]` tables: inbound numbers (DIDs) declared with the
//! deployment. They are checked when the file is read and written to the store at start
//! (replacing an API-made number of the same key), so that a fresh database answers them.
//!
//! ```toml
//! [[number]]
//! number = "0771 286891"   # national or E.164
//! tenant = "itri"
//! flow = "citizen"         # or "staff"
//! ```

use engine::model::dids::{parse_did, Did};
use engine::store::{Store, StoreResult};
use serde::Deserialize;

use super::config::ConfigError;

/// One `[[number]]` table.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NumberEntry {
    /// National or E.164 writing.
    pub number: String,
    /// The tenant (town) whose menu answers.
    pub tenant: String,
    /// `citizen` or `staff`.
    pub flow: String,
}

/// The entries as DIDs; the error names the table (`number[1].flow`).
pub fn parse(entries: &[NumberEntry], region: &str, now_ms: i64) -> Result<Vec<Did>, ConfigError> {
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            parse_did(&e.number, &e.tenant, &e.flow, region, now_ms).map_err(|err| {
                let field = match err {
                    engine::model::dids::DidError::Flow(_) => "flow",
                    engine::model::dids::DidError::Number(_) => "number",
                };
                ConfigError::Key {
                    key: format!("number[{i}].{field}"),
                    msg: err.to_string(),
                }
            })
        })
        .collect()
}

/// Writes the configured numbers to the store; a number whose tenant does not exist yet
/// is kept (calls to it are refused until the tenant is created) and logged.
pub async fn apply(store: &impl Store, dids: Vec<Did>) -> StoreResult<()> {
    for d in dids {
        if store.tenant(&d.tenant).await?.is_none() {
            tracing::warn!(number = %d.number, tenant = %d.tenant, "configured number: no such tenant yet");
        }
        store.put_did(d).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(number: &str, flow: &str) -> NumberEntry {
        NumberEntry {
            number: number.into(),
            tenant: "itri".into(),
            flow: flow.into(),
        }
    }

    #[test]
    fn entries_are_normalised_and_errors_name_the_table() {
        let d = parse(&[entry("0771 286891", "citizen")], "IT", 1).unwrap();
        assert_eq!(d[0].number, "+390771286891");
        let e = parse(
            &[entry("0771286891", "citizen"), entry("0771286892", "boss")],
            "IT",
            1,
        )
        .unwrap_err();
        assert!(e.to_string().contains("number[1].flow"), "{e}");
        let e = parse(&[entry("12", "staff")], "IT", 1).unwrap_err();
        assert!(e.to_string().contains("number[0].number"), "{e}");
    }
}

//! Trunk changes made through the API on one node, followed by every node.
//!
//! A node that creates, replaces or removes a trunk applies the change to its own dialer
//! and records it in the store (`cluster_trunks`: the latest change per trunk, versions
//! from one sequence). Every node's task reads the changes above the last version it
//! applied at each reload tick (500 ms by default) and applies them; the first read of a
//! run applies every recorded change, so a node that starts (or restarts) takes the
//! cluster's trunks over its configuration file's.
//!
//! A node's own change and the changes it follows are applied under one lock, so a
//! change read from the store cannot land after (and undo) a newer change the node made
//! itself. Two nodes changing one trunk at once end with the change the store recorded
//! last, on both.

use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::dialer::trunk::TrunkConfig;
use crate::dialer::{Dialer, DialerError};
use crate::store::postgres::{PgStore, TrunkChange};
use crate::store::{Store, StoreError};

/// What a node does with one recorded change.
#[derive(Debug, Clone, PartialEq)]
pub enum TrunkOp {
    /// Add the trunk, or replace the one of that name.
    Put(Box<TrunkConfig>),
    /// Remove the trunk if the node has it.
    Remove(String),
    /// Nothing: this run made the change and applied it already.
    Own,
    /// The recorded configuration does not parse as a trunk (written by another version).
    Unreadable(String),
}

/// The operation for `change`, for the run holding fence `mine`.
pub fn plan(change: &TrunkChange, mine: i64) -> TrunkOp {
    if change.fence == mine {
        return TrunkOp::Own;
    }
    let Some(text) = &change.config else {
        return TrunkOp::Remove(change.name.clone());
    };
    match serde_json::from_str::<TrunkConfig>(text) {
        Ok(cfg) if cfg.name == change.name => TrunkOp::Put(Box::new(cfg)),
        Ok(cfg) => TrunkOp::Unreadable(format!("row {} holds trunk {}", change.name, cfg.name)),
        Err(e) => TrunkOp::Unreadable(e.to_string()),
    }
}

/// The JSON text recorded for a trunk configuration the API accepted: its body, with
/// the trunk's name set (a PUT may leave it to the path).
pub fn recorded(body: &serde_json::Map<String, serde_json::Value>, name: &str) -> String {
    let mut body = body.clone();
    body.insert("name".into(), serde_json::Value::String(name.to_string()));
    serde_json::Value::Object(body).to_string()
}

/// Why a trunk change made on this node failed.
#[derive(Debug, thiserror::Error)]
pub enum TrunkChangeError {
    /// The dialer refused it (nothing recorded).
    #[error(transparent)]
    Dialer(#[from] DialerError),
    /// Applied here, but not recorded for the other nodes.
    #[error("trunk change applied on this node but not shared: {0}")]
    Store(#[from] StoreError),
}

/// The node's side of shared trunk changes: the lock and the last version applied.
pub struct TrunkSync {
    store: PgStore,
    /// Highest version applied (or skipped) by this node.
    seen: Mutex<i64>,
}

impl TrunkSync {
    /// A node that has applied no recorded change yet.
    pub fn new(store: PgStore) -> TrunkSync {
        TrunkSync {
            store,
            seen: Mutex::new(0),
        }
    }

    /// Makes a change on this node (`local`, the dialer call) and, if the dialer took it,
    /// records it for the others: `config` is the trunk's JSON text, `None` a removal.
    pub async fn change<F>(
        &self,
        name: &str,
        config: Option<String>,
        local: F,
    ) -> Result<(), TrunkChangeError>
    where
        F: std::future::Future<Output = Result<(), DialerError>>,
    {
        let _held = self.seen.lock().await;
        local.await?;
        let version = self
            .store
            .put_cluster_trunk(name, config.as_deref())
            .await?;
        info!(trunk = %name, version, "trunk change shared with the cluster");
        Ok(())
    }

    /// Applies the changes other nodes recorded since the last call. Returns how many
    /// were applied; a change this node cannot apply (its proxy does not resolve here,
    /// say) is logged and passed over.
    pub async fn follow<S: Store>(&self, dialer: &Dialer<S>) -> Result<usize, DialerError> {
        let mut seen = self.seen.lock().await;
        let changes = match self.store.cluster_trunk_changes(*seen).await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "cluster: reading trunk changes");
                return Ok(0);
            }
        };
        let mine = self.store.fence();
        let mut applied = 0;
        for change in changes {
            *seen = (*seen).max(change.version);
            let name = change.name.clone();
            let result = match plan(&change, mine) {
                TrunkOp::Own => continue,
                TrunkOp::Put(cfg) => dialer.upsert_trunk(*cfg).await,
                TrunkOp::Remove(n) => match dialer.remove_trunk(&n).await {
                    Err(DialerError::NoTrunk(_)) => Ok(()),
                    r => r,
                },
                TrunkOp::Unreadable(why) => {
                    warn!(trunk = %name, version = change.version, %why, "cluster: trunk change not applied");
                    continue;
                }
            };
            match result {
                Ok(()) => {
                    applied += 1;
                    info!(trunk = %name, version = change.version, "cluster: trunk change applied");
                }
                Err(DialerError::Stopped) => return Err(DialerError::Stopped),
                Err(e) => {
                    warn!(trunk = %name, version = change.version, error = %e, "cluster: trunk change not applied")
                }
            }
        }
        Ok(applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(fence: i64, config: Option<&str>) -> TrunkChange {
        TrunkChange {
            name: "a".into(),
            version: 7,
            config: config.map(str::to_string),
            fence,
        }
    }

    const A: &str = r#"{"name":"a","proxy":"127.0.0.1:5060","cps":10,"max_channels":20}"#;

    #[test]
    fn a_change_is_applied_by_the_other_nodes_not_the_one_that_made_it() {
        assert_eq!(plan(&change(3, Some(A)), 3), TrunkOp::Own);
        let TrunkOp::Put(cfg) = plan(&change(3, Some(A)), 4) else {
            panic!("not a put")
        };
        assert_eq!((cfg.cps, cfg.max_channels), (10.0, 20));
        assert_eq!(plan(&change(3, None), 4), TrunkOp::Remove("a".into()));
    }

    #[test]
    fn an_unreadable_or_misnamed_row_is_not_applied() {
        assert!(matches!(
            plan(&change(3, Some(r#"{"name":"a"}"#)), 4),
            TrunkOp::Unreadable(_)
        ));
        let other = A.replace(r#""name":"a""#, r#""name":"b""#);
        assert!(matches!(
            plan(&change(3, Some(&other)), 4),
            TrunkOp::Unreadable(_)
        ));
    }

    #[test]
    fn the_recorded_body_carries_the_paths_name() {
        let body: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"proxy":"127.0.0.1:5060","cps":10,"max_channels":20}"#)
                .unwrap();
        let text = recorded(&body, "a");
        let cfg: TrunkConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(cfg.name, "a");
    }
}

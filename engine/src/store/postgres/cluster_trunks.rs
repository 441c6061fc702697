//! Trunk changes shared by the nodes of a cluster: a change made through the API on one
//! node is written here ([`PgStore::put_cluster_trunk`]) and the others read what is new
//! since the last version they applied ([`PgStore::cluster_trunk_changes`]). What a node
//! does with a change is decided in `crate::cluster::trunks`.

use sqlx::Row;

use super::PgStore;
use crate::store::StoreResult;

/// The latest change of one trunk.
#[derive(Debug, Clone, PartialEq)]
pub struct TrunkChange {
    /// Trunk name.
    pub name: String,
    /// Its place in the order of all trunk changes of the cluster.
    pub version: i64,
    /// The trunk's configuration as the API accepted it (JSON text of a `[[trunk]]`
    /// table); `None`: the trunk was removed.
    pub config: Option<String>,
    /// The run (fence) that made the change: that node has applied it already.
    pub fence: i64,
}

impl PgStore {
    /// Records the latest change of trunk `name` by this node's run: its configuration
    /// (JSON text), or `None` for a removal. Returns the change's version.
    pub async fn put_cluster_trunk(&self, name: &str, config: Option<&str>) -> StoreResult<i64> {
        let version = sqlx::query_scalar(
            "INSERT INTO cluster_trunks (name, version, config, fence, changed_ms)
             VALUES ($1, nextval('cluster_trunk_version'), CAST($2 AS JSONB), $3, dialer_now_ms())
             ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version,
               config = EXCLUDED.config, fence = EXCLUDED.fence,
               changed_ms = EXCLUDED.changed_ms
             RETURNING version",
        )
        .bind(name)
        .bind(config)
        .bind(self.fence())
        .fetch_one(&*self.read)
        .await?;
        Ok(version)
    }

    /// The trunks whose latest change is above `since`, oldest change first.
    pub async fn cluster_trunk_changes(&self, since: i64) -> StoreResult<Vec<TrunkChange>> {
        let rows = sqlx::query(
            "SELECT name, version, CAST(config AS TEXT) AS config, fence
             FROM cluster_trunks WHERE version > $1 ORDER BY version",
        )
        .bind(since)
        .fetch_all(&*self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TrunkChange {
                    name: r.try_get("name")?,
                    version: r.try_get("version")?,
                    config: r.try_get("config")?,
                    fence: r.try_get("fence")?,
                })
            })
            .collect()
    }
}

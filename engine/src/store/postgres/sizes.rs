//! How big the tables are and which indexes the queries used: for the store benchmark
//! (`loadtest store`) and for sizing a database (README, "How to scale the database").

use sqlx::Row;

use super::PgStore;
use crate::store::{StoreError, StoreResult};

/// One table's rows and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSize {
    /// Table name.
    pub table: String,
    /// Rows counted now.
    pub rows: i64,
    /// Bytes of the table itself (with its TOAST).
    pub table_bytes: i64,
    /// Bytes of its indexes.
    pub index_bytes: i64,
}

/// How often the planner used one index since the statistics were reset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexUse {
    /// Its table.
    pub table: String,
    /// The index.
    pub index: String,
    /// Index scans.
    pub scans: i64,
    /// Its size in bytes.
    pub bytes: i64,
}

impl PgStore {
    /// Rows and bytes of each of `tables` (names of the schema's tables: lower-case
    /// letters and `_` only).
    pub async fn table_sizes(&self, tables: &[&str]) -> StoreResult<Vec<TableSize>> {
        let mut out = vec![];
        for t in tables {
            if !t.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                return Err(StoreError::Corrupt(format!("table name {t:?}")));
            }
            let row = sqlx::query(&format!(
                "SELECT count(*) AS n, pg_table_size('{t}') AS tb, pg_indexes_size('{t}') AS ib
                 FROM {t}"
            ))
            .fetch_one(&*self.read)
            .await?;
            out.push(TableSize {
                table: t.to_string(),
                rows: row.try_get("n")?,
                table_bytes: row.try_get("tb")?,
                index_bytes: row.try_get("ib")?,
            });
        }
        Ok(out)
    }

    /// Refreshes the planner's statistics of the whole database (`ANALYZE`), as an
    /// operator does after a large import: until autovacuum gets to it the planner knows
    /// nothing of the new rows and due-contact reads crawl.
    pub async fn analyze(&self) -> StoreResult<()> {
        sqlx::query("ANALYZE").execute(&*self.read).await?;
        Ok(())
    }

    /// Every index of the schema with its scans so far, the least used first.
    pub async fn index_use(&self) -> StoreResult<Vec<IndexUse>> {
        let rows = sqlx::query(
            "SELECT relname, indexrelname, idx_scan, pg_relation_size(indexrelid) AS bytes
             FROM pg_stat_user_indexes ORDER BY idx_scan, relname, indexrelname",
        )
        .fetch_all(&*self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(IndexUse {
                    table: r.try_get("relname")?,
                    index: r.try_get("indexrelname")?,
                    scans: r.try_get("idx_scan")?,
                    bytes: r.try_get("bytes")?,
                })
            })
            .collect()
    }
}

//! The SQLite names the shared SQL in `store::sql` is compiled against.

pub(super) use sqlx::sqlite::{
    SqliteConnection as Conn, SqlitePool as Pool, SqliteRow as DbRow,
};

/// What an upsert's `RETURNING` reads to tell a row it inserted from one it updated: the
/// creation time is the statement's own (`$9`) only on a fresh row.
pub(super) const INSERTED: &str = "created_ms = $9";

/// Row locks: none (the writer's transaction already holds the database's write lock).
pub(super) const FOR_UPDATE: &str = "";

/// The street list's conflict target: the column is `COLLATE NOCASE`.
pub(super) const STREET_KEY: &str = "street";

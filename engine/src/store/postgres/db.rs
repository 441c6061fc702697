//! The PostgreSQL names the shared SQL in `store::sql` is compiled against.

pub(super) use sqlx::postgres::{PgConnection as Conn, PgPool as Pool, PgRow as DbRow};

/// What an upsert's `RETURNING` reads to tell a row it inserted from one it updated:
/// `xmax` is 0 on a row this statement inserted.
pub(super) const INSERTED: &str = "xmax = 0";

/// Row locks: the row is held against other nodes' writers until the commit.
pub(super) const FOR_UPDATE: &str = " FOR UPDATE";

/// The street list's conflict target: the unique index is on `lower(street)`.
pub(super) const STREET_KEY: &str = "lower(street)";

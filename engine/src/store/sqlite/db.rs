//! The SQLite names the shared SQL in `store::sql` is compiled against.

pub(super) use sqlx::sqlite::{
    SqliteConnection as Conn, SqlitePool as Pool, SqliteRow as DbRow,
};

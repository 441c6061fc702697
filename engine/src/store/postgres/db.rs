//! The PostgreSQL names the shared SQL in `store::sql` is compiled against.

pub(super) use sqlx::postgres::{PgConnection as Conn, PgPool as Pool, PgRow as DbRow};

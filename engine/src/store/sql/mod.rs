//! SQL written once for both stores.
//!
//! A concern's queries live in one file here, and each backend compiles it into its own
//! module (`mod dids { use super::db::*; include!("../sql/dids.rs"); }`) where
//! `super::db` names the backend's `Conn` and `Pool`. The file is therefore typed against
//! each backend separately, with no generic bounds over `sqlx::Database`, and the two
//! stores cannot drift apart in what a query does. The SQL uses `$N` placeholders (sqlx
//! binds them by number on SQLite too) and the syntax both engines share: `ON CONFLICT
//! DO NOTHING` rather than `INSERT OR IGNORE`, `CAST(x AS BIGINT)` rather than `x::bigint`.
//! What only one engine can do (PostgreSQL's `FOR UPDATE SKIP LOCKED` claims) stays in
//! that backend's own modules; migrations stay per backend (their column types differ).

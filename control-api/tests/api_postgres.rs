//! The API tests of api.rs with PostgreSQL as the store: each test's server gets a fresh
//! database of this process's throw-away cluster (engine's `test_cluster`). Skipped
//! where PostgreSQL is not installed, a failure there under `CI`.

#[path = "api.rs"]
mod api;

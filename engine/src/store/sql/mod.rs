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

/// Declares, in a backend's module, one module per concern compiled from this folder's
/// file with the backend's `db` names in scope. Both backends invoke it, so the list of
/// concerns is written once; a new concern is one line here and a file beside this one.
macro_rules! shared_sql {
    ($($(#[$doc:meta])* $name:ident => $file:literal,)*) => {
        $(
            $(#[$doc])*
            mod $name {
                use super::db::*;
                include!($file);
            }
        )*
    };
}

/// The concerns written once (paths relative to a backend's `mod.rs`).
macro_rules! shared_concerns {
    () => {
        crate::store::sql::shared_sql! {
            /// The control API's own tables.
            api => "../sql/api.rs",
            /// Campaigns, due contacts and reports.
            campaigns => "../sql/campaigns.rs",
            /// Contacts and the street list.
            contacts => "../sql/contacts.rs",
            /// Inbound numbers (DIDs) and the tenant lookup.
            dids => "../sql/dids.rs",
            /// The attempt journal.
            journal => "../sql/journal.rs",
            /// Registrations, staff PINs and prompt replacements.
            registrations => "../sql/registrations.rs",
            /// The audit trail's hash-chained entries.
            audit_log => "../sql/audit.rs",
            /// Webhook endpoints and their delivery outbox.
            webhooks => "../sql/webhooks.rs",
            /// Limits per destination prefix.
            prefix_limits => "../sql/prefix_limits.rs",
        }
    };
}

pub(crate) use {shared_concerns, shared_sql};

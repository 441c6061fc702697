//! [`AnyStore`]: the store a configuration chose (SQLite or PostgreSQL), for a binary
//! that picks it at run time from `[store] url`.
//!
//! An enum rather than a trait object: [`Store`]'s methods return `impl Future`, so the
//! trait is not object-safe, and keeping it static-dispatch is the point. Each method
//! matches once and returns the chosen store's own future (a write is still queued when
//! the method is called, keeping the trait's call-order rule). The alternative, making
//! the HTTP server generic over `S: Store`, would thread a type parameter through every
//! handler, the router and the OpenAPI wiring, for one `match` saved per call.

use super::*;

/// SQLite or PostgreSQL, as `[store] url` said.
#[derive(Clone)]
pub enum AnyStore {
    /// `sqlite://PATH`: the embedded default.
    Sqlite(SqliteStore),
    /// `postgres://...`: one database for several nodes.
    Postgres(PgStore),
}

impl AnyStore {
    /// Opens the store `url` names: `postgres://` or `postgresql://` (a PostgreSQL
    /// database) or `sqlite://PATH` (a file, created with its directory if missing).
    pub async fn open(url: &str) -> StoreResult<AnyStore> {
        if is_postgres_url(url) {
            return Ok(AnyStore::Postgres(
                PgStore::open(url, PgOptions::default()).await?,
            ));
        }
        let path = url
            .strip_prefix("sqlite://")
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "store url {url:?} is not sqlite://PATH or postgres://..."
                ))
            })?;
        Ok(AnyStore::Sqlite(
            SqliteStore::open(std::path::Path::new(path), SqliteOptions::default()).await?,
        ))
    }

    /// The database's name for logs: `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match self {
            AnyStore::Sqlite(_) => "sqlite",
            AnyStore::Postgres(_) => "postgres",
        }
    }
}

/// The future of one store or the other, before it is awaited.
pub(super) enum Either<A, B> {
    Sqlite(A),
    Postgres(B),
}

/// Calls the method on the chosen store now (a write is queued in call order) and
/// returns a future awaiting that store's own future.
macro_rules! delegate {
    ($s:ident, $m:ident($($a:expr),*)) => {{
        use $crate::store::any::Either;
        let f = match $s {
            AnyStore::Sqlite(s) => Either::Sqlite(s.$m($($a),*)),
            AnyStore::Postgres(s) => Either::Postgres(s.$m($($a),*)),
        };
        async move {
            match f {
                Either::Sqlite(f) => f.await,
                Either::Postgres(f) => f.await,
            }
        }
    }};
}

/// Declares the [`Store`](super::Store) trait from its list of method signatures and
/// implements it for [`AnyStore`] from the same list, every method delegating to the
/// chosen store: a method is written once, where it is documented.
macro_rules! store_api {
    (
        $(#[$tm:meta])*
        pub trait Store {
            $(
                $(#[$m:meta])*
                fn $name:ident(&self $(, $arg:ident: $ty:ty)* $(,)?)
                    -> impl Future<Output = $out:ty> + Send $(+ $use:tt<$($cap:ident)?>)?;
            )*
        }
    ) => {
        $(#[$tm])*
        pub trait Store: Clone + Send + Sync + 'static {
            $(
                $(#[$m])*
                fn $name(&self $(, $arg: $ty)*)
                    -> impl Future<Output = $out> + Send $(+ $use<$($cap)?>)?;
            )*
        }

        // A method whose future captures only `Self` in the trait captures nothing here:
        // `AnyStore` is a concrete type, and the chosen store's future owns its data.
        impl Store for AnyStore {
            $(
                fn $name(&self $(, $arg: $ty)*)
                    -> impl Future<Output = $out> + Send $(+ $use<>)? {
                    delegate!(self, $name($($arg),*))
                }
            )*
        }
    };
}

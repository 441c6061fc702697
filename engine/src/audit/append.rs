// Appending to a chain from anywhere (the API's layer, the staff line).

use super::{AuditEntry, NewAuditEntry};
use crate::store::{Store, StoreError};

/// How often an append is retried when another node took its place in the chain.
const TRIES: usize = 5;

/// Appends `e` to its tenant's chain, again if another writer (a node of a cluster)
/// appended between this writer's read of the head and its insert.
pub async fn append<S: Store>(store: &S, e: NewAuditEntry) -> Result<AuditEntry, StoreError> {
    let mut tries = 1;
    loop {
        match store.append_audit(e.clone()).await {
            Err(StoreError::Conflict(_)) if tries < TRIES => tries += 1,
            r => return r,
        }
    }
}

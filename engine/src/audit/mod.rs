//! The audit trail (issue 16 item 4): every act that changes who is called or what they
//! hear, per tenant, chained by hash so that an edited, inserted or deleted row breaks
//! the chain.
//!
//! Each entry's hash is SHA-256 over every column that matters (tenant, sequence number,
//! time, actor, action, subject, content) and the previous entry's hash, each field
//! length-prefixed so that no two different rows encode alike. The first entry of a
//! chain follows [`GENESIS`]. [`verify`] recomputes a chain read back from the database;
//! the store appends with [`chain_hash`] inside its write transaction. Removing the last
//! entries of a chain leaves a shorter valid chain: an operator who needs that covered
//! keeps the head hash elsewhere (`GET /v1/audit` shows it).

use sha2::{Digest, Sha256};

mod append;

pub use append::append;

/// The `prev_hash` of a chain's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The tenant id of the platform's own chain (trunks, tenants: the admin's acts).
pub const PLATFORM: &str = "";

/// An act to record (the store gives it its place in the chain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    /// The tenant whose chain it joins ([`PLATFORM`] for the admin's acts).
    pub tenant: String,
    /// When, Unix ms.
    pub at_ms: i64,
    /// Who: `token:<first 16 hex of the token's SHA-256>`, `admin`, or `staff:<caller>`.
    pub actor: String,
    /// What, e.g. `campaign.start`.
    pub action: String,
    /// On what, e.g. the campaign id or the prompt id.
    pub subject: String,
    /// The request's essential content and hashes, as a JSON text.
    pub content: String,
}

/// An entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// The act.
    pub entry: NewAuditEntry,
    /// Its place in its tenant's chain, from 1.
    pub seq: i64,
    /// The hash of the entry before it ([`GENESIS`] for the first).
    pub prev_hash: String,
    /// This entry's hash ([`chain_hash`]).
    pub hash: String,
}

/// The hash of entry `seq` of a chain given the previous entry's hash, hex.
pub fn chain_hash(e: &NewAuditEntry, seq: i64, prev_hash: &str) -> String {
    let mut h = Sha256::new();
    let seq = seq.to_string();
    let at = e.at_ms.to_string();
    let fields: [&str; 9] = [
        "dialer-audit-v1",
        &e.tenant,
        &seq,
        &at,
        &e.actor,
        &e.action,
        &e.subject,
        &e.content,
        prev_hash,
    ];
    for f in fields {
        h.update((f.len() as u64).to_be_bytes());
        h.update(f.as_bytes());
    }
    hex(&h.finalize())
}

/// Lower-case hex of bytes.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Lower-case hex SHA-256 of bytes (prompt audio, a target set, a request body).
pub fn sha256_hex(b: &[u8]) -> String {
    hex(&Sha256::digest(b))
}

/// The first entry at which a chain is broken, and how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain of tenant {tenant:?} broken at entry {seq}: {why}")]
pub struct Broken {
    /// The chain's tenant.
    pub tenant: String,
    /// The entry's sequence number (as stored, or the one expected when a row is missing).
    pub seq: i64,
    /// What does not hold.
    pub why: BreakKind,
}

/// How a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BreakKind {
    /// The row's content does not give its stored hash (a column was edited).
    #[error("its content does not match its hash")]
    HashMismatch,
    /// The row does not point at the hash of the row before it (a row was edited, deleted
    /// or inserted before it).
    #[error("it does not follow the entry before it")]
    PrevMismatch,
    /// Sequence numbers skip or repeat (a row was deleted or inserted).
    #[error("sequence number out of order (expected {0})")]
    Sequence(i64),
    /// The row belongs to another tenant than the chain it was read in.
    #[error("row of tenant {0:?} inside this chain")]
    Tenant(String),
}

/// Checks one tenant's chain, given in sequence order: the first broken entry, if any.
pub fn verify<'a>(
    tenant: &str,
    chain: impl IntoIterator<Item = &'a AuditEntry>,
) -> Result<Check, Broken> {
    let mut c = Check::new(tenant);
    for e in chain {
        c.push(e)?;
    }
    Ok(c)
}

/// A chain checked so far (lets a caller verify page by page without holding it all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    tenant: String,
    /// Entries checked.
    pub count: i64,
    /// The last entry's hash ([`GENESIS`] before the first).
    pub head: String,
}

impl Check {
    /// An empty chain of `tenant`.
    pub fn new(tenant: &str) -> Check {
        Check {
            tenant: tenant.to_string(),
            count: 0,
            head: GENESIS.to_string(),
        }
    }

    /// Checks the next entry.
    pub fn push(&mut self, e: &AuditEntry) -> Result<(), Broken> {
        let expected = self.count + 1;
        let broken = |why| Broken {
            tenant: self.tenant.clone(),
            seq: e.seq,
            why,
        };
        if e.entry.tenant != self.tenant {
            return Err(broken(BreakKind::Tenant(e.entry.tenant.clone())));
        }
        if e.seq != expected {
            return Err(Broken {
                seq: expected,
                ..broken(BreakKind::Sequence(expected))
            });
        }
        if e.prev_hash != self.head {
            return Err(broken(BreakKind::PrevMismatch));
        }
        if chain_hash(&e.entry, e.seq, &e.prev_hash) != e.hash {
            return Err(broken(BreakKind::HashMismatch));
        }
        self.count = expected;
        self.head = e.hash.clone();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut out: Vec<AuditEntry> = Vec::new();
        for seq in 1..=n {
            let entry = NewAuditEntry {
                tenant: "t".into(),
                at_ms: 1000 + seq,
                actor: "token:ab".into(),
                action: "campaign.start".into(),
                subject: seq.to_string(),
                content: format!("{{\"n\":{seq}}}"),
            };
            let prev = out.last().map_or(GENESIS.to_string(), |e| e.hash.clone());
            let hash = chain_hash(&entry, seq, &prev);
            out.push(AuditEntry {
                entry,
                seq,
                prev_hash: prev,
                hash,
            });
        }
        out
    }

    #[test]
    fn an_intact_chain_verifies() {
        let c = chain(4);
        let ok = verify("t", &c).unwrap();
        assert_eq!(ok.count, 4);
        assert_eq!(ok.head, c[3].hash);
        assert_eq!(verify("t", &[]).unwrap().head, GENESIS);
    }

    #[test]
    fn every_column_edit_is_caught_at_its_row() {
        type Edit = fn(&mut AuditEntry);
        let edits: [(&str, Edit); 9] = [
            ("at_ms", |e| e.entry.at_ms += 1),
            ("actor", |e| e.entry.actor.push('x')),
            ("action", |e| e.entry.action = "campaign.cancel".into()),
            ("subject", |e| e.entry.subject.push('9')),
            ("content", |e| e.entry.content = "{}".into()),
            ("tenant", |e| e.entry.tenant = "u".into()),
            ("seq", |e| e.seq = 7),
            ("prev_hash", |e| e.prev_hash = GENESIS.into()),
            ("hash", |e| e.hash = GENESIS.into()),
        ];
        for (what, edit) in edits {
            let mut c = chain(4);
            edit(&mut c[2]);
            let b = verify("t", &c).unwrap_err();
            assert_eq!(b.seq, 3, "{what}: {b}");
        }
    }

    #[test]
    fn a_rewritten_row_with_a_fresh_hash_breaks_the_next() {
        let mut c = chain(4);
        c[1].entry.content = "{\"n\":99}".into();
        c[1].hash = chain_hash(&c[1].entry, 2, &c[1].prev_hash);
        let b = verify("t", &c).unwrap_err();
        assert_eq!((b.seq, b.why), (3, BreakKind::PrevMismatch));
    }

    #[test]
    fn deleted_and_inserted_rows_are_caught() {
        let mut c = chain(4);
        c.remove(1);
        assert_eq!(verify("t", &c).unwrap_err().seq, 2);
        let mut c = chain(4);
        let dup = c[1].clone();
        c.insert(2, dup);
        assert_eq!(verify("t", &c).unwrap_err().seq, 3);
    }

    #[test]
    fn fields_cannot_bleed_into_each_other() {
        let a = NewAuditEntry {
            tenant: "t".into(),
            at_ms: 1,
            actor: "ab".into(),
            action: "c".into(),
            subject: String::new(),
            content: String::new(),
        };
        let b = NewAuditEntry {
            actor: "a".into(),
            action: "bc".into(),
            ..a.clone()
        };
        assert_ne!(chain_hash(&a, 1, GENESIS), chain_hash(&b, 1, GENESIS));
    }
}

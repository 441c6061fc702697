//! Hash maps keyed by identifiers the engine hands out itself (call handles, tokens,
//! transaction numbers): a call's messages look such keys up dozens of times, and SipHash,
//! the standard map's hasher, was 6 % of the signalling thread's instructions (callgrind,
//! 2026-12-02). These maps use foldhash, seeded at random per map, which is several times
//! cheaper on an integer. Maps keyed by text from the network (Call-ID, branch) keep
//! SipHash: its keyed hash is the guarantee against crafted collisions there.

use std::collections::HashMap;

/// A map keyed by one of our own identifiers. Build it with `IdMap::default()`.
pub type IdMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

//! Several dialer nodes on one PostgreSQL database (issue 15).
//!
//! Each `dialer serve` node joins with a node id and gets a fencing token for its run
//! ([`crate::store::PgStore::join`]); its heartbeat ([`node`]) renews a lease on the
//! database's clock. Due contacts are claimed by one run at a time (`FOR UPDATE SKIP
//! LOCKED` in the store's due-contacts read), and an attempt is journaled only on a
//! contact its own live run holds: a node back from a stall cannot call on stale
//! claims. A trunk's CPS and channels are the carrier's, so nodes split them
//! ([`shares`]) at each beat, with no database round trip per call. When a node's lease
//! runs out the others close the attempts it left open and its claims become free.
//! Trunks created, replaced or removed through the API on one node are recorded in the
//! store and followed by every node ([`trunks`]).

pub mod node;
pub mod shares;
pub mod trunks;

use std::time::Duration;

pub use node::NodeTask;
pub use trunks::TrunkSync;

/// `[cluster]`: how a node takes part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// The node's id (default: host name and SIP address).
    pub node_id: String,
    /// How often it beats (renews its lease and trunk shares, closes dead nodes' attempts).
    pub beat: Duration,
    /// How long its rows are honoured without a beat.
    pub lease: Duration,
    /// How often it re-reads the running campaigns (pause and cancel on another node).
    pub reload: Duration,
}

impl ClusterSettings {
    /// Settings with the default timings: 1 s beat, 5 s lease, 500 ms reload.
    pub fn new(node_id: impl Into<String>) -> ClusterSettings {
        ClusterSettings {
            node_id: node_id.into(),
            beat: Duration::from_secs(1),
            lease: Duration::from_secs(5),
            reload: Duration::from_millis(500),
        }
    }
}

//! Nodes sharing the PostgreSQL store: joining (a fencing token for the run), the
//! heartbeat that holds the lease and rewrites the node's trunk shares under one advisory
//! lock, leaving, and the node list of `GET /v1/nodes`.
//!
//! Leases are judged on the database's clock (`dialer_now_ms()`), so the nodes' clocks
//! need not agree. How a share is computed is not decided here: [`PgStore::beat`] hands
//! the peers' rows to the caller's rule (`crate::cluster::shares`) inside the locked
//! transaction and writes what it returns.

use std::sync::atomic::Ordering;

use serde::Serialize;
use sqlx::postgres::PgConnection;
use sqlx::{Connection, Row};

use super::PgStore;
use crate::store::{StoreError, StoreResult};

/// Key of the advisory lock every beat takes while it rewrites shares: the shares of all
/// nodes are then computed one at a time, each from the others' committed rows.
pub(super) const SHARES_LOCK: i64 = 0x0D1A_1E15;

/// What a node says of itself when it joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeJoin {
    /// `[cluster] node_id`.
    pub id: String,
    /// Its SIP address.
    pub sip_addr: String,
    /// The address its RTP leaves from.
    pub media_ip: String,
    /// Its HTTP API address.
    pub http_addr: String,
    /// How long its rows are honoured without a beat.
    pub lease_ms: i64,
}

/// Whether a node holds its lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Beating within its lease.
    Up,
    /// Its lease ran out without a goodbye (crash, power cut, partition).
    Dead,
    /// It left on shutdown.
    Left,
}

/// A node as `GET /v1/nodes` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeRecord {
    /// Node id.
    pub id: String,
    /// The fencing token of its current (or last) run.
    pub fence: i64,
    /// SIP address.
    pub sip_addr: String,
    /// RTP source address.
    pub media_ip: String,
    /// HTTP API address.
    pub http_addr: String,
    /// When the run started, Unix ms.
    pub started_ms: i64,
    /// Its last beat, Unix ms (database clock).
    pub last_beat_ms: i64,
    /// How long ago that was, ms.
    pub beat_age_ms: i64,
    /// Its lease, ms.
    pub lease_ms: i64,
    /// Calls it had in progress at its last beat.
    pub live_calls: i64,
    /// Up, dead or left.
    pub state: NodeState,
}

/// One node's share of one trunk, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TrunkShareRow {
    /// Trunk name.
    pub trunk: String,
    /// The node has a backlog that could use the trunk.
    pub wants: bool,
    /// Its CPS share.
    pub cps: f64,
    /// Its channel share.
    pub channels: u32,
    /// Channels it may hold: its share, or more while calls started under a larger share
    /// are still up.
    pub reserved: u32,
    /// Its congestion factor: its own AIMD rate over the ceiling (1 = no congestion).
    pub factor: f64,
}

/// Another live node's share of a trunk.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerShare {
    /// The node.
    pub node: String,
    /// Its row.
    pub row: TrunkShareRow,
}

/// What a beat found.
#[derive(Debug, Clone, PartialEq)]
pub enum BeatOutcome {
    /// The lease is renewed; the node's shares as written, and the peers' rows it saw.
    Held {
        /// This node's rows.
        mine: Vec<TrunkShareRow>,
        /// The other live nodes' rows.
        peers: Vec<PeerShare>,
    },
    /// The lease had run out (the node stalled or was cut off): its fence is no longer
    /// honoured, nothing was written. Join again for a new fence.
    Lost,
}

impl PgStore {
    /// Joins the cluster as `j.id`: draws a new fence for this run, writes the node's row
    /// (replacing a previous run's) and uses the fence for this store's claims and
    /// journal from now on. Returns the fence.
    pub async fn join(&self, j: &NodeJoin) -> StoreResult<i64> {
        let fence: i64 = sqlx::query_scalar(
            "INSERT INTO cluster_nodes (id, fence, sip_addr, media_ip, http_addr, started_ms,
               beat_ms, lease_ms, live_calls, state)
             VALUES ($1, nextval('cluster_fence'), $2, $3, $4, dialer_now_ms(), dialer_now_ms(),
               $5, 0, 'up')
             ON CONFLICT (id) DO UPDATE SET fence = EXCLUDED.fence, sip_addr = EXCLUDED.sip_addr,
               media_ip = EXCLUDED.media_ip, http_addr = EXCLUDED.http_addr,
               started_ms = EXCLUDED.started_ms, beat_ms = EXCLUDED.beat_ms,
               lease_ms = EXCLUDED.lease_ms, live_calls = 0, state = 'up'
             RETURNING fence",
        )
        .bind(&j.id)
        .bind(&j.sip_addr)
        .bind(&j.media_ip)
        .bind(&j.http_addr)
        .bind(j.lease_ms)
        .fetch_one(&*self.read)
        .await?;
        self.read.fence.store(fence, Ordering::Release);
        Ok(fence)
    }

    /// The fence of this node's run (0: not in a cluster).
    pub fn fence(&self) -> i64 {
        self.read.fence()
    }

    /// Renews the lease of node `id` and rewrites its shares of `trunks`: under the
    /// shares lock, `rule` gets the other live nodes' rows of those trunks and returns
    /// this node's. [`BeatOutcome::Lost`] if the lease had run out.
    ///
    /// Runs on the heartbeat's own connection, and the lease is renewed in a statement
    /// of its own before the shares lock is taken: neither readers busy with claims nor
    /// another node's shares transaction can make a live node miss its lease.
    pub async fn beat<F>(
        &self,
        id: &str,
        live_calls: u32,
        trunks: &[String],
        rule: F,
    ) -> StoreResult<BeatOutcome>
    where
        F: FnOnce(&[PeerShare]) -> Vec<TrunkShareRow> + Send,
    {
        let mut slot = self.beat.lock().await;
        let conn = match slot.take() {
            Some(c) => c,
            None => PgConnection::connect_with(&self.opts).await?,
        };
        let conn = slot.insert(conn);
        let r = beat_on(conn, id, self.fence(), live_calls, trunks, rule).await;
        if r.is_err() {
            // A broken or confused connection: the next beat opens a fresh one.
            *slot = None;
        }
        r
    }

    /// Leaves the cluster on shutdown: the node's row says `left` (its lease ends now),
    /// its claims on contacts not being dialled are released and its shares deleted.
    pub async fn leave(&self, id: &str) -> StoreResult<()> {
        let fence = self.fence();
        let mut tx = self.read.begin().await?;
        sqlx::query("UPDATE cluster_nodes SET state = 'left' WHERE id = $1 AND fence = $2")
            .bind(id)
            .bind(fence)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE campaign_contacts SET fence = NULL WHERE fence = $1 AND state = 'pending'",
        )
        .bind(fence)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM cluster_trunk_shares WHERE node = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every node that ever joined, by id, with its state judged now.
    pub async fn nodes(&self) -> StoreResult<Vec<NodeRecord>> {
        let rows = sqlx::query(
            "SELECT id, fence, sip_addr, media_ip, http_addr, started_ms, beat_ms, lease_ms,
               live_calls, state, dialer_now_ms() - beat_ms AS age
             FROM cluster_nodes ORDER BY id",
        )
        .fetch_all(&*self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let word: String = r.try_get("state")?;
                let age: i64 = r.try_get("age")?;
                let lease: i64 = r.try_get("lease_ms")?;
                let state = match word.as_str() {
                    "left" => NodeState::Left,
                    "up" if age <= lease => NodeState::Up,
                    "up" => NodeState::Dead,
                    other => return Err(StoreError::Corrupt(format!("node state {other:?}"))),
                };
                Ok(NodeRecord {
                    id: r.try_get("id")?,
                    fence: r.try_get("fence")?,
                    sip_addr: r.try_get("sip_addr")?,
                    media_ip: r.try_get("media_ip")?,
                    http_addr: r.try_get("http_addr")?,
                    started_ms: r.try_get("started_ms")?,
                    last_beat_ms: r.try_get("beat_ms")?,
                    beat_age_ms: age,
                    lease_ms: lease,
                    live_calls: r.try_get("live_calls")?,
                    state,
                })
            })
            .collect()
    }
}

/// One beat on the heartbeat's connection: the lease first (committed on its own), then
/// the shares under the lock.
async fn beat_on<F>(
    conn: &mut PgConnection,
    id: &str,
    fence: i64,
    live_calls: u32,
    trunks: &[String],
    rule: F,
) -> StoreResult<BeatOutcome>
where
    F: FnOnce(&[PeerShare]) -> Vec<TrunkShareRow> + Send,
{
    let held = sqlx::query(
        "UPDATE cluster_nodes SET beat_ms = dialer_now_ms(), live_calls = $3
         WHERE id = $1 AND fence = $2 AND state = 'up'
           AND beat_ms >= dialer_now_ms() - lease_ms",
    )
    .bind(id)
    .bind(fence)
    .bind(i64::from(live_calls))
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if !held {
        return Ok(BeatOutcome::Lost);
    }
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SHARES_LOCK)
        .execute(&mut *tx)
        .await?;
    let rows = sqlx::query(
        "SELECT s.node, s.trunk, s.wants, s.cps, s.channels, s.reserved, s.factor
         FROM cluster_trunk_shares s JOIN cluster_nodes n ON n.fence = s.fence
         WHERE s.node <> $1 AND s.trunk = ANY($2) AND n.state = 'up'
           AND n.beat_ms >= dialer_now_ms() - n.lease_ms",
    )
    .bind(id)
    .bind(trunks)
    .fetch_all(&mut *tx)
    .await?;
    let peers = rows
        .iter()
        .map(|r| -> StoreResult<PeerShare> {
            Ok(PeerShare {
                node: r.try_get("node")?,
                row: TrunkShareRow {
                    trunk: r.try_get("trunk")?,
                    wants: r.try_get("wants")?,
                    cps: r.try_get("cps")?,
                    channels: to_u32(r.try_get("channels")?),
                    reserved: to_u32(r.try_get("reserved")?),
                    factor: r.try_get("factor")?,
                },
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    let mine = rule(&peers);
    write_shares(&mut tx, id, fence, &mine).await?;
    tx.commit().await?;
    Ok(BeatOutcome::Held { mine, peers })
}

fn to_u32(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

async fn write_shares(
    tx: &mut sqlx::PgConnection,
    node: &str,
    fence: i64,
    rows: &[TrunkShareRow],
) -> StoreResult<()> {
    let trunks: Vec<&str> = rows.iter().map(|r| r.trunk.as_str()).collect();
    let wants: Vec<bool> = rows.iter().map(|r| r.wants).collect();
    let cps: Vec<f64> = rows.iter().map(|r| r.cps).collect();
    let ch: Vec<i64> = rows.iter().map(|r| i64::from(r.channels)).collect();
    let res: Vec<i64> = rows.iter().map(|r| i64::from(r.reserved)).collect();
    let factor: Vec<f64> = rows.iter().map(|r| r.factor).collect();
    sqlx::query(
        "INSERT INTO cluster_trunk_shares (trunk, node, fence, wants, cps, channels, reserved, factor)
         SELECT t, $1, $2, w, c, ch, r, f
         FROM unnest($3::text[], $4::bool[], $5::float8[], $6::bigint[], $7::bigint[], $8::float8[])
           AS u(t, w, c, ch, r, f)
         ON CONFLICT (trunk, node) DO UPDATE SET fence = EXCLUDED.fence, wants = EXCLUDED.wants,
           cps = EXCLUDED.cps, channels = EXCLUDED.channels, reserved = EXCLUDED.reserved,
           factor = EXCLUDED.factor",
    )
    .bind(node)
    .bind(fence)
    .bind(&trunks)
    .bind(&wants)
    .bind(&cps)
    .bind(&ch)
    .bind(&res)
    .bind(&factor)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

//! `GET /v1/nodes` (admin): the dialer nodes sharing this store, read from the store on
//! whichever node answers. With SQLite there is one node, this one.

use axum::extract::State;
use axum::Json;
use engine::store::{AnyStore, NodeState};
use serde::Serialize;
use utoipa::ToSchema;

use crate::serve::auth::Admin;
use crate::serve::pagination::Page;
use crate::serve::problem::{ApiResult, Problem};
use crate::serve::state::{now_ms, AppState};

/// A dialer node.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeOut {
    /// Node id (`[cluster] node_id`).
    pub id: String,
    /// `up` (beating within its lease), `dead` (lease ran out) or `left` (shut down).
    pub state: String,
    /// SIP address.
    pub sip_addr: String,
    /// RTP source address.
    pub media_ip: String,
    /// HTTP API address.
    pub http_addr: String,
    /// Last heartbeat, Unix ms (the database's clock).
    pub last_beat_ms: i64,
    /// Milliseconds since that beat.
    pub beat_age_ms: i64,
    /// Its lease, ms.
    pub lease_ms: i64,
    /// Calls in progress at its last beat.
    pub live_calls: i64,
    /// The fencing token of its current run (0 without a cluster).
    pub fence: i64,
    /// Whether it is the node answering this request.
    pub this_node: bool,
}

/// The nodes sharing the store (admin).
#[utoipa::path(get, path = "/v1/nodes", tag = "ops",
    responses((status = 200, body = Page<NodeOut>), (status = 401, body = Problem),
        (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(State(st): State<AppState>, _a: Admin) -> ApiResult<Json<Page<NodeOut>>> {
    let me = st.cluster.as_ref().map(|c| c.id.clone());
    let items = match &st.store {
        AnyStore::Postgres(pg) => pg
            .nodes()
            .await?
            .into_iter()
            .map(|n| NodeOut {
                this_node: me.as_deref() == Some(n.id.as_str()),
                state: match n.state {
                    NodeState::Up => "up",
                    NodeState::Dead => "dead",
                    NodeState::Left => "left",
                }
                .into(),
                id: n.id,
                sip_addr: n.sip_addr,
                media_ip: n.media_ip,
                http_addr: n.http_addr,
                last_beat_ms: n.last_beat_ms,
                beat_age_ms: n.beat_age_ms,
                lease_ms: n.lease_ms,
                live_calls: n.live_calls,
                fence: n.fence,
            })
            .collect(),
        AnyStore::Sqlite(_) => vec![single(&st).await?],
    };
    Ok(Json(Page {
        items,
        next_cursor: None,
    }))
}

/// The one node of a SQLite deployment: this process, live now.
async fn single(st: &AppState) -> ApiResult<NodeOut> {
    let snap = st.dialer.snapshot().await?;
    Ok(NodeOut {
        id: st.cfg.cluster.node_id(&st.cfg.sip.listen),
        state: "up".into(),
        sip_addr: st.cfg.sip.listen.clone(),
        media_ip: st.cfg.media.ip.clone().unwrap_or_default(),
        http_addr: st.cfg.http.listen.clone(),
        last_beat_ms: now_ms(),
        beat_age_ms: 0,
        lease_ms: 0,
        live_calls: snap.calls_in_progress as i64,
        fence: 0,
        this_node: true,
    })
}

//! The inbound lines' store work, run off the driver task: a line's context for a call,
//! a staff member's take kept as a prompt, and the campaign launched by phone (with its
//! audit entry and webhook event).

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::dialer::core::inbound_io::{Launch, LineContext};
use crate::ivr::{PinHash, PromptKey, Replacement, Voice};
use crate::model::campaign::{CampaignSpec, CampaignState, Priority, Target};
use crate::model::dids::Flow;
use crate::store::{PromptRecord, Store};

use super::speech::hex;

/// The line of `number` and what the menu needs to know of `caller`.
pub(super) async fn lookup<S: Store>(
    store: &S,
    number: &str,
    caller: Option<&str>,
) -> Option<LineContext> {
    let r = async {
        let Some(did) = store.did(number).await? else {
            return Ok(None);
        };
        let t = &did.tenant;
        let town = store.tenant(t).await?.map_or_else(|| t.clone(), |r| r.name);
        let reps = store.ivr_prompts(t).await?;
        let reps = recordings_as_paths(store, t, reps).await?;
        let (mut zones, mut registered, mut pin, mut latest) = (vec![], None, None, None);
        match did.flow {
            Flow::Citizen => {
                zones = town_zones(store, t).await?;
                if let Some(c) = caller {
                    registered = store.registration(t, c).await?.map(|r| r.zone);
                }
                latest = latest_message(store, t).await?;
            }
            Flow::Staff => {
                pin = store
                    .staff_pin(t)
                    .await?
                    .and_then(|h| PinHash::parse(&h).ok());
            }
        }
        Ok::<_, crate::store::StoreError>(Some(LineContext {
            tenant: t.clone(),
            flow: did.flow,
            town,
            zones,
            registered,
            pin,
            voice: Arc::new(Voice::new(&reps, latest)),
        }))
    };
    r.await.unwrap_or_else(|e| {
        warn!(number, error = %e, "inbound line lookup failed");
        None
    })
}

/// A tenant's recordings named by their files (what the media path loads).
async fn recordings_as_paths<S: Store>(
    store: &S,
    tenant: &str,
    reps: Vec<(PromptKey, Replacement)>,
) -> Result<Vec<(PromptKey, Replacement)>, crate::store::StoreError> {
    let mut out = Vec::with_capacity(reps.len());
    for (k, r) in reps {
        match r {
            Replacement::Recording(id) => {
                if let Some(p) = store.prompt(tenant, &id).await? {
                    out.push((k, Replacement::Recording(p.path)));
                }
            }
            text => out.push((k, text)),
        }
    }
    Ok(out)
}

/// The town's zones, in the order of its street list's names.
async fn town_zones<S: Store>(
    store: &S,
    tenant: &str,
) -> Result<Vec<String>, crate::store::StoreError> {
    let mut zones: Vec<String> = store
        .streets(tenant)
        .await?
        .into_iter()
        .map(|s| s.zone)
        .collect();
    zones.sort();
    zones.dedup();
    Ok(zones)
}

/// The prompt of the town's most recent campaign that went out.
async fn latest_message<S: Store>(
    store: &S,
    tenant: &str,
) -> Result<Option<String>, crate::store::StoreError> {
    let (mut after, mut latest) = (0i64, None);
    for _ in 0..50 {
        let page = store.tenant_campaigns(tenant, after, 200).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        let mut sent = page.iter().filter(|c| c.state != CampaignState::Draft);
        if let Some(c) = sent.next_back() {
            latest = Some(c.spec.prompt.clone());
        }
    }
    Ok(latest)
}

/// Writes the take as a tenant prompt; its path and the SHA-256 of the file.
pub(super) async fn keep_take<S: Store>(
    store: &S,
    dir: Option<PathBuf>,
    tenant: &str,
    pcm: &[i16],
    rate: u32,
) -> io::Result<(String, String)> {
    let dir = dir.ok_or_else(|| io::Error::other("no prompt directory"))?;
    let wav = codecs::wav::to_wav_bytes(pcm, rate).map_err(io::Error::other)?;
    let sha = hex(&Sha256::digest(&wav));
    let prep = codecs::PreparedAudio::from_bytes(&wav, &codecs::EncodeSettings::default())
        .map_err(io::Error::other)?;
    let i = prep.info();
    let id = format!("ivr{}", hex(&rand::random::<[u8; 6]>()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{id}.wav"));
    std::fs::write(&path, &wav)?;
    let path = path.to_string_lossy().to_string();
    let num = |x: f64| if x.is_finite() { x } else { -99.0 };
    let rec = PromptRecord {
        id: id.clone(),
        tenant: tenant.to_string(),
        name: format!("registrato al telefono {id}"),
        path: path.clone(),
        duration_ms: (pcm.len() as i64 * 1000) / i64::from(rate.max(1)),
        codecs: codecs::Codec::ALL
            .iter()
            .map(|c| c.name().to_string())
            .collect(),
        loudness: crate::store::Loudness {
            before_lufs: num(i.loudness_before_lufs),
            after_lufs: num(i.loudness_after_lufs),
            peak_dbfs: num(i.peak_after_dbfs),
            gain_db: num(i.gain_db),
        },
        created_ms: crate::store::now_ms(),
    };
    store.insert_prompt(rec).await.map_err(io::Error::other)?;
    info!(tenant, prompt = %id, sha256 = %sha, "staff take kept as a prompt");
    Ok((path, sha))
}

/// Creates the staff member's campaign to the whole town (started when `now`). Its name
/// records who asked, when, and the audio's SHA-256.
pub(super) async fn launch<S: Store>(
    store: &S,
    l: &Launch,
    events: Option<&crate::webhook::EventSink>,
) -> Result<i64, crate::store::StoreError> {
    let when = chrono::DateTime::from_timestamp_millis(l.at_ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    let spec = CampaignSpec {
        tenant: l.tenant.clone(),
        name: format!("telefono {} {} sha256:{}", l.caller, when, l.sha256),
        prompt: l.prompt.clone(),
        target: Target {
            all: true,
            ..Target::default()
        },
        priority: if l.now {
            Priority::Emergency
        } else {
            Priority::Normal
        },
        window: None,
        caller_id: None,
        ring_timeout_s: None,
        play_count: 2,
        retry: Default::default(),
        delivery: Default::default(),
    };
    let rec = store.create_campaign(spec, l.at_ms).await?;
    info!(campaign = rec.id, tenant = %l.tenant, caller = %l.caller, at_ms = l.at_ms,
        sha256 = %l.sha256, now = l.now, "campaign created by the staff line");
    audit_launch(store, l, rec.id, "campaign.create").await;
    if l.now {
        let at_ms = crate::store::now_ms();
        store
            .set_campaign_state(rec.id, CampaignState::Running, at_ms)
            .await?;
        audit_launch(store, l, rec.id, "campaign.start").await;
        if let Some(ev) = events {
            ev.emit(crate::webhook::Event::campaign_state(
                &rec,
                CampaignState::Running,
                at_ms,
            ));
        }
    }
    Ok(rec.id)
}

/// The staff line's act in the tenant's audit trail (actor: the caller's number).
async fn audit_launch<S: Store>(store: &S, l: &Launch, campaign: i64, action: &str) {
    let target = serde_json::json!({ "all": true });
    let content = serde_json::json!({
        "by": "staff line",
        "prompt_id": l.prompt,
        "prompt_sha256": { l.prompt.clone(): l.sha256 },
        "target": target,
        "target_sha256": crate::audit::sha256_hex(target.to_string().as_bytes()),
        "emergency": l.now,
    });
    let e = crate::audit::NewAuditEntry {
        tenant: l.tenant.clone(),
        at_ms: crate::store::now_ms(),
        actor: format!("staff:{}", l.caller),
        action: action.to_string(),
        subject: campaign.to_string(),
        content: content.to_string(),
    };
    if let Err(e) = crate::audit::append(store, e).await {
        warn!(error = %e, campaign, "audit entry of the staff line not appended");
        metrics::counter!(crate::metrics::AUDIT_FAILURES, "reason" => "store").increment(1);
    }
}

//! The dialer driver's inbound half: it executes the core's [`InboundAction`]s against the
//! SIP endpoint (ring, answer, refuse), the media path (idle start, plays, recordings) and
//! the store (the line's context, registrations, the staff member's take and campaign),
//! and turns their results into [`InboundReply`]s for the core.
//!
//! Speech is rendered by espeak-ng once per text for the whole process (a per-text
//! once-cell, so five hundred callers arriving together wait for one rendering of the
//! greeting, not five hundred) and loaded into the media path with `prepare_pcm` under a
//! name derived from the words. Slow work (the synthesiser, store reads, writing a take)
//! runs off the driver task; the answers come back through the store-reply channel.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, OnceCell};
use tracing::{info, warn};

use crate::dialer::call_media::{CallMedia, PlayItem};
use crate::dialer::core::inbound_io::{
    InboundAction, InboundNote, InboundReply, Launch, LineContext,
};
use crate::dialer::core::{CallToken, StoreReply};
use crate::ivr::{Audio, PinHash, PromptKey, Replacement, Voice};
use crate::model::campaign::{CampaignSpec, CampaignState, Priority, Target};
use crate::model::dids::Flow;
use crate::model::Unregistered;
use crate::net::SipDriver;
use crate::sip::endpoint::CallHandle;
use crate::sip::sdp::AnswerParams;
use crate::store::now_ms;
use crate::store::{PromptRecord, Store};
use crate::webhook::{Event, EventKind};

/// What inbound calls need of the SIP side that needs no answer back.
pub trait IvrSip {
    /// 180 Ringing.
    fn ring(&self, call: CallHandle);
    /// A final refusal.
    fn reject(&self, call: CallHandle, status: u16, reason: &str);
}

impl IvrSip for SipDriver {
    fn ring(&self, call: CallHandle) {
        SipDriver::ring(self, call);
    }
    fn reject(&self, call: CallHandle, status: u16, reason: &str) {
        SipDriver::reject(self, call, status, reason.to_string());
    }
}

/// The name a piece of speech is prepared under: its words' digest.
pub fn speech_name(text: &str) -> String {
    let d = Sha256::digest(text.as_bytes());
    format!("tts-{}", hex(&d[..12]))
}

/// The name of a call's take, prepared for playback.
pub fn take_name(token: CallToken) -> String {
    format!("take-{}", token.0)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Renders speech once per text and loads it into the media path.
#[derive(Default)]
pub struct Speech {
    /// Voice of the synthesiser (`it`).
    voice: String,
    cells: Mutex<HashMap<String, Arc<OnceCell<bool>>>>,
}

impl Speech {
    /// Speech in `voice`.
    pub fn new(voice: &str) -> Speech {
        Speech {
            voice: voice.to_string(),
            cells: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `text` is loaded already.
    fn ready(&self, text: &str) -> bool {
        let cells = self.cells.lock().expect("lock");
        cells.get(text).and_then(|c| c.get()).copied() == Some(true)
    }

    /// Renders and loads `text` unless another call did or is doing it; whether it worked.
    async fn ensure<M: CallMedia>(&self, media: &Arc<M>, text: &str) -> bool {
        let cell = {
            let mut cells = self.cells.lock().expect("lock");
            cells.entry(text.to_string()).or_default().clone()
        };
        let (media, words, voice) = (media.clone(), text.to_string(), self.voice.clone());
        let ok = *cell
            .get_or_init(|| async move {
                let name = speech_name(&words);
                let r = tokio::task::spawn_blocking(move || render(&*media, &name, &words, &voice));
                match r.await {
                    Ok(Ok(())) => true,
                    Ok(Err(e)) => {
                        warn!(error = %e, "speech not rendered");
                        false
                    }
                    Err(e) => {
                        warn!(error = %e, "speech task failed");
                        false
                    }
                }
            })
            .await;
        if !ok {
            // Let a later call try again (espeak-ng may be installed meanwhile).
            self.cells.lock().expect("lock").remove(text);
        }
        ok
    }
}

/// espeak-ng → PCM → the media path (levelled and encoded there like uploads).
fn render<M: CallMedia>(media: &M, name: &str, text: &str, voice: &str) -> io::Result<()> {
    let wav = codecs::tts::synthesize_wav(text, Some(voice)).map_err(io::Error::other)?;
    let audio = codecs::import::import(&wav, 120_000).map_err(io::Error::other)?;
    let pcm: Vec<i16> = audio
        .samples
        .iter()
        .map(|s| (s.clamp(-1.0, 1.0) * 32767.0) as i16)
        .collect();
    media.prepare_pcm(name, &pcm, audio.sample_rate)
}

/// The driver's inbound state.
pub struct InboundExec<S: Store> {
    store: S,
    replies: mpsc::UnboundedSender<StoreReply>,
    speech: Arc<Speech>,
    /// Where kept takes are written (the API's prompt directory).
    prompt_dir: Option<PathBuf>,
    /// Where webhook events go: a campaign started by phone is a state change like one
    /// started through the API (the civil-protection room learns of it the same way).
    events: Option<crate::webhook::EventSink>,
}

/// Hands an event to the webhook queue, when there is one (built only then).
fn emit(events: &Option<crate::webhook::EventSink>, ev: impl FnOnce() -> Event) {
    if let Some(sink) = events {
        sink.emit(ev());
    }
}

fn send(tx: &mpsc::UnboundedSender<StoreReply>, r: InboundReply) {
    let _ = tx.send(StoreReply::Inbound(r));
}

impl<S: Store> InboundExec<S> {
    /// Webhook events from the staff line (campaigns started by phone) go to `events`.
    pub fn with_events(mut self, events: Option<crate::webhook::EventSink>) -> Self {
        self.events = events;
        self
    }

    /// Inbound execution over `store`; answers go to `replies`.
    pub fn new(
        store: S,
        replies: mpsc::UnboundedSender<StoreReply>,
        voice: &str,
        prompt_dir: Option<PathBuf>,
    ) -> Self {
        InboundExec {
            store,
            replies,
            speech: Arc::new(Speech::new(voice)),
            prompt_dir,
            events: None,
        }
    }

    /// Renders, in the background and one text at a time, every prompt of every line the
    /// store knows at start, so that the first callers of a line (a town's first flood)
    /// find its speech ready. Lines added later, and templates changed later, are
    /// rendered on first use as before.
    pub fn warm_up<M: CallMedia>(&self, media: &Arc<M>) {
        let (store, speech, media) = (self.store.clone(), self.speech.clone(), media.clone());
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let (mut after, mut texts, mut lines) = (String::new(), 0usize, 0usize);
            metrics::gauge!(crate::metrics::IVR_PROMPTS_READY).set(0.0);
            for _ in 0..1000 {
                let page = match store.dids(&after, 100).await {
                    Ok(p) => p,
                    Err(e) => return warn!(error = %e, "inbound warm-up: listing lines"),
                };
                let Some(last) = page.last() else { break };
                after = last.number.clone();
                for did in page {
                    let Some(ctx) = lookup(&store, &did.number, None).await else {
                        continue;
                    };
                    lines += 1;
                    for p in crate::ivr::warm::line_prompts(ctx.flow, &ctx.town, &ctx.zones) {
                        for a in ctx.voice.audio(&p) {
                            if let Audio::Speech(t) = a {
                                texts += usize::from(speech.ensure(&media, &t).await);
                            }
                        }
                    }
                }
            }
            metrics::gauge!(crate::metrics::IVR_PROMPTS_READY).set(1.0);
            info!(
                lines,
                texts,
                ms = started.elapsed().as_millis() as u64,
                "inbound prompts ready"
            );
        });
    }

    /// Executes one action. `ports` holds RTP ports reserved by `Accept` until
    /// `StartIdle`. A failure the core must know comes back as the note to give it.
    pub fn execute<M: CallMedia, P: IvrSip>(
        &self,
        a: InboundAction,
        sip: &P,
        media: &Arc<M>,
        ports: &mut HashMap<CallToken, M::Port>,
    ) -> Result<(), InboundNote> {
        let failed = |t: CallToken| move |e: io::Error| InboundNote::MediaFailed(t, e.to_string());
        match a {
            InboundAction::Ring(call) => sip.ring(call),
            InboundAction::Reject {
                call,
                status,
                reason,
            } => sip.reject(call, status, reason),
            InboundAction::Lookup {
                token,
                number,
                caller,
            } => {
                let (store, tx) = (self.store.clone(), self.replies.clone());
                tokio::spawn(async move {
                    let ctx = lookup(&store, &number, caller.as_deref()).await;
                    send(&tx, InboundReply::Context(token, ctx.map(Box::new)));
                });
            }
            InboundAction::Accept { token, .. } => {
                return Err(InboundNote::AcceptFailed(
                    token,
                    "accept runs in accept()".into(),
                ));
            }
            InboundAction::StartIdle {
                token,
                media: m,
                latch,
            } => {
                let port = ports.remove(&token).ok_or_else(|| {
                    InboundNote::MediaFailed(token, "no RTP port reserved".into())
                })?;
                media
                    .start_idle(token.0, port, &m, latch)
                    .map_err(failed(token))?;
            }
            InboundAction::Play { token, id, items } => self.play(media, token, id, items),
            InboundAction::Record { token, max } => {
                media.record(token.0, max).map_err(failed(token))?;
            }
            InboundAction::StopRecord(token) => media.stop_record(token.0),
            InboundAction::PrepareTake { token, pcm, rate } => {
                if let Err(e) = media.prepare_pcm(&take_name(token), &pcm, rate) {
                    warn!(call = token.0, error = %e, "take not loaded for playback");
                }
            }
            InboundAction::Register { tenant, reg } => {
                let (number, zone) = (reg.number.clone(), reg.zone.clone());
                let f = self.store.register(&tenant, reg, crate::store::now_ms());
                let events = self.events.clone();
                tokio::spawn(async move {
                    match f.await {
                        Ok(done) => emit(&events, || {
                            Event::registered(
                                done,
                                &tenant,
                                &number,
                                zone.as_deref(),
                                "ivr",
                                now_ms(),
                            )
                        }),
                        Err(e) => warn!(error = %e, "registration by phone not stored"),
                    }
                });
            }
            InboundAction::Unregister { tenant, number } => {
                let f = self
                    .store
                    .unregister(&tenant, &number, crate::store::now_ms());
                let events = self.events.clone();
                tokio::spawn(async move {
                    match f.await {
                        Ok(Unregistered::Unknown) => {}
                        Ok(_) => emit(&events, || {
                            let kind = EventKind::RegistrationDeleted;
                            Event::registration(kind, &tenant, &number, None, "ivr", now_ms())
                        }),
                        Err(e) => warn!(error = %e, "unregistration by phone not stored"),
                    }
                });
            }
            InboundAction::KeepTake {
                token,
                tenant,
                pcm,
                rate,
            } => {
                let (store, tx, dir) = (
                    self.store.clone(),
                    self.replies.clone(),
                    self.prompt_dir.clone(),
                );
                tokio::spawn(async move {
                    let kept = keep_take(&store, dir, &tenant, &pcm, rate).await;
                    let kept = kept.map_err(|e| warn!(error = %e, "take not kept")).ok();
                    send(&tx, InboundReply::TakeKept { token, kept });
                });
            }
            InboundAction::Launch(l) => {
                let (store, tx) = (self.store.clone(), self.replies.clone());
                let events = self.events.clone();
                tokio::spawn(async move {
                    match launch(&store, &l, events.as_ref()).await {
                        Ok(id) => send(&tx, InboundReply::Launched(id)),
                        Err(e) => {
                            warn!(error = %e, tenant = %l.tenant, "campaign by phone not created")
                        }
                    }
                });
            }
        }
        Ok(())
    }

    /// Answers an inbound call: an RTP port reserved (kept in `ports` until `StartIdle`),
    /// then `200 OK` with the SDP answer.
    pub async fn accept<M: CallMedia>(
        &self,
        sip: &SipDriver,
        media: &Arc<M>,
        ports: &mut HashMap<CallToken, M::Port>,
        token: CallToken,
        call: CallHandle,
        mut answer: Box<AnswerParams>,
    ) -> Result<(), InboundNote> {
        let refused = |e: String| InboundNote::AcceptFailed(token, e);
        let port = media
            .bind()
            .map_err(|e| refused(format!("no RTP port: {e}")))?;
        answer.rtp_port = M::port_number(&port);
        match sip.accept(call, *answer).await {
            Ok(Ok(_)) => {
                ports.insert(token, port);
                Ok(())
            }
            Ok(Err(e)) => {
                // No acceptable codec in the offer (or the call is gone): refuse it.
                sip.reject(call, 488, "Not Acceptable Here".to_string());
                Err(refused(format!("answer: {e:?}")))
            }
            Err(e) => Err(refused(format!("SIP driver: {e}"))),
        }
    }

    /// Plays now when every piece is loaded; else renders the missing speech off the
    /// task and tells the core, which asks again.
    fn play<M: CallMedia>(&self, media: &Arc<M>, token: CallToken, id: u32, items: Vec<Audio>) {
        let missing: Vec<String> = items
            .iter()
            .filter_map(|a| match a {
                Audio::Speech(t) if !self.speech.ready(t) => Some(t.clone()),
                _ => None,
            })
            .collect();
        if missing.is_empty() {
            let pieces = items
                .iter()
                .filter_map(|a| piece(&**media, token, a))
                .collect();
            if let Err(e) = media.play(token.0, pieces, id) {
                warn!(call = token.0, error = %e, "play failed");
            }
            return;
        }
        let (speech, media, tx) = (self.speech.clone(), media.clone(), self.replies.clone());
        tokio::spawn(async move {
            let mut ok = true;
            for t in &missing {
                ok &= speech.ensure(&media, t).await;
            }
            send(&tx, InboundReply::Rendered { token, id, ok });
        });
    }
}

/// The media path's piece for a piece of audio (a recording is loaded on first use).
fn piece<M: CallMedia>(media: &M, token: CallToken, a: &Audio) -> Option<PlayItem> {
    Some(match a {
        Audio::Speech(t) => PlayItem::Prompt(speech_name(t)),
        Audio::Recording(path) => {
            if let Err(e) = media.prepare(path) {
                warn!(prompt = %path, error = %e, "replacement recording unusable");
                return None;
            }
            PlayItem::Prompt(path.clone())
        }
        Audio::Tone { hz, ms } => PlayItem::Tone { hz: *hz, ms: *ms },
        Audio::Silence { ms } => PlayItem::Silence { ms: *ms },
        Audio::Take => PlayItem::Prompt(take_name(token)),
    })
}

/// The line of `number` and what the menu needs to know of `caller`.
async fn lookup<S: Store>(store: &S, number: &str, caller: Option<&str>) -> Option<LineContext> {
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
async fn keep_take<S: Store>(
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
async fn launch<S: Store>(
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

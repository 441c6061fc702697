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

mod line_store;
mod speech;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::dialer::call_media::{CallMedia, PlayItem};
use crate::dialer::core::inbound_io::{InboundAction, InboundNote, InboundReply, Launch};
use crate::dialer::core::{CallToken, StoreReply};
use crate::id_map::IdMap;
use crate::ivr::Audio;
use crate::model::registrations::NewRegistration;
use crate::model::Unregistered;
use crate::sip::endpoint::{CallHandle, Endpoint};
use crate::sip::sdp::AnswerParams;
use crate::store::now_ms;
use crate::store::Store;
use crate::webhook::{Event, EventKind};
use line_store::{keep_take, launch, lookup};
pub use speech::{speech_name, take_name, Speech};

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
    pub fn execute<M: CallMedia>(
        &self,
        a: InboundAction,
        sip: &mut Endpoint,
        media: &Arc<M>,
        ports: &mut IdMap<CallToken, M::Port>,
    ) -> Result<(), InboundNote> {
        let failed = |t: CallToken| move |e: io::Error| InboundNote::MediaFailed(t, e.to_string());
        match a {
            InboundAction::Ring(call) => sip.ring(Instant::now(), call),
            InboundAction::Reject {
                call,
                status,
                reason,
            } => sip.reject(Instant::now(), call, status, reason),
            InboundAction::Lookup {
                token,
                number,
                caller,
            } => self.spawn_lookup(token, number, caller),
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
            InboundAction::Register { tenant, reg } => self.spawn_register(tenant, reg),
            InboundAction::Unregister { tenant, number } => self.spawn_unregister(tenant, number),
            InboundAction::KeepTake {
                token,
                tenant,
                pcm,
                rate,
            } => self.spawn_keep_take(token, tenant, pcm, rate),
            InboundAction::Launch(l) => self.spawn_launch(l),
        }
        Ok(())
    }

    /// Reads the line's context for a call off the task; the core gets it as a reply.
    fn spawn_lookup(&self, token: CallToken, number: String, caller: Option<String>) {
        let (store, tx) = (self.store.clone(), self.replies.clone());
        tokio::spawn(async move {
            let ctx = lookup(&store, &number, caller.as_deref()).await;
            send(&tx, InboundReply::Context(token, ctx.map(Box::new)));
        });
    }

    /// Stores a registration (or zone change) made by phone and emits its webhook event.
    fn spawn_register(&self, tenant: String, reg: NewRegistration) {
        let (number, zone) = (reg.number.clone(), reg.zone.clone());
        let f = self.store.register(&tenant, reg, crate::store::now_ms());
        let events = self.events.clone();
        tokio::spawn(async move {
            match f.await {
                Ok(done) => emit(&events, || {
                    Event::registered(done, &tenant, &number, zone.as_deref(), "ivr", now_ms())
                }),
                Err(e) => warn!(error = %e, "registration by phone not stored"),
            }
        });
    }

    /// Erases a number unregistered by phone; a number that was known emits its event.
    fn spawn_unregister(&self, tenant: String, number: String) {
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

    /// Writes a staff member's take as a tenant prompt off the task; the core learns
    /// whether it was kept.
    fn spawn_keep_take(&self, token: CallToken, tenant: String, pcm: Arc<Vec<i16>>, rate: u32) {
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

    /// Creates (and starts, when asked) the campaign a staff member launched by phone.
    fn spawn_launch(&self, l: Box<Launch>) {
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

    /// Answers an inbound call: an RTP port reserved (kept in `ports` until `StartIdle`),
    /// then `200 OK` with the SDP answer.
    pub fn accept<M: CallMedia>(
        &self,
        sip: &mut Endpoint,
        media: &Arc<M>,
        ports: &mut IdMap<CallToken, M::Port>,
        token: CallToken,
        call: CallHandle,
        mut answer: Box<AnswerParams>,
    ) -> Result<(), InboundNote> {
        let refused = |e: String| InboundNote::AcceptFailed(token, e);
        let port = media
            .bind()
            .map_err(|e| refused(format!("no RTP port: {e}")))?;
        answer.rtp_port = M::port_number(&port);
        match sip.accept(Instant::now(), call, &answer) {
            Ok(_) => {
                ports.insert(token, port);
                Ok(())
            }
            Err(e) => {
                // No acceptable codec in the offer (or the call is gone): refuse it.
                sip.reject(Instant::now(), call, 488, "Not Acceptable Here");
                Err(refused(format!("answer: {e:?}")))
            }
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

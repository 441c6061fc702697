//! The dialer driver's store work: each store action of the core runs as a future on the
//! caller's runtime (off the signalling thread); answers come back as [`StoreReply`].

use tracing::warn;

use super::{Driver, Store};
use crate::dialer::call_media::CallMedia;
use crate::dialer::campaign::CampaignState;
use crate::dialer::core::{Action, CampaignId, StoreReply};
use crate::metrics as m;
use crate::store::StoreError;
use tokio::sync::mpsc;

impl<S: Store, M: CallMedia> Driver<S, M> {
    /// Runs a store action as a future of its own; answers come back as [`StoreReply`].
    pub(super) fn spawn_store(&self, a: Action) {
        let (store, tx) = (self.store.clone(), self.store_tx.clone());
        let bg = &self.bg;
        match a {
            Action::JournalBegin(call, start) => {
                // Queued now, so the store orders it before later writes of the attempt.
                let fut = store.begin_attempt(start);
                bg.spawn(async move {
                    let _ = tx.send(StoreReply::Journaled(call, fut.await));
                });
            }
            Action::JournalAnswered { attempt, at_ms } => {
                logged(bg, store.attempt_answered(attempt, at_ms))
            }
            Action::JournalFinish(end, next, subject) => {
                if let Some(ev) = &self.events {
                    ev.emit(crate::webhook::Event::call_completed(&end, subject));
                }
                logged(bg, store.finish_attempt(end, next))
            }
            Action::CloseContact {
                campaign,
                contact,
                outcome,
            } => logged(bg, store.close_contact(campaign.0, contact, outcome)),
            Action::LoadCampaigns => {
                let media = self.media.clone();
                bg.spawn(async move {
                    match store.campaigns(&[CampaignState::Running]).await {
                        Ok(list) => {
                            let _ = tx.send(StoreReply::Campaigns(usable(&*media, list)));
                        }
                        Err(e) => warn!(error = %e, "loading campaigns"),
                    }
                });
            }
            Action::LoadDue {
                campaign,
                now_ms,
                limit,
            } => {
                bg.spawn(async move {
                    let due = store.due_contacts(campaign.0, now_ms, limit).await;
                    let due = due.unwrap_or_else(|e| {
                        warn!(campaign = campaign.0, error = %e, "due contacts");
                        vec![]
                    });
                    let _ = tx.send(StoreReply::Due(campaign, due));
                });
            }
            Action::CheckProgress(c) => {
                bg.spawn(async move {
                    let done = match store.progress(c.0).await {
                        Ok(p) => p.pending == 0 && p.dialing == 0,
                        Err(_) => false,
                    };
                    let _ = tx.send(StoreReply::Progress(c, done));
                });
            }
            Action::CompleteCampaign { campaign, at_ms } => {
                bg.spawn(complete(store, tx, campaign, at_ms, self.events.clone()));
            }
            Action::ContactGauges(ids) => {
                bg.spawn(contact_gauges(store, ids));
            }
            other => warn!(action = ?other, "dialer driver: unexpected action"),
        }
    }
}

/// The campaigns whose prompts (message, per-zone messages, rolls) the media path can load.
fn usable<M: CallMedia>(
    media: &M,
    list: Vec<crate::store::CampaignRecord>,
) -> Vec<crate::store::CampaignRecord> {
    list.into_iter()
        .filter_map(|rec| {
            match rec
                .spec
                .prompts()
                .into_iter()
                .try_for_each(|p| media.prepare(p))
            {
                Ok(()) => Some(rec),
                Err(e) => {
                    warn!(campaign = rec.id, error = %e, "prompt unusable; campaign not dialled");
                    None
                }
            }
        })
        .collect()
}

async fn complete<S: Store>(
    store: S,
    tx: mpsc::UnboundedSender<StoreReply>,
    c: CampaignId,
    at_ms: i64,
    events: Option<crate::webhook::EventSink>,
) {
    match store
        .set_campaign_state(c.0, CampaignState::Completed, at_ms)
        .await
    {
        Ok(rec) => {
            if let Some(ev) = events {
                ev.emit(crate::webhook::Event::campaign_state(
                    &rec,
                    CampaignState::Completed,
                    at_ms,
                ));
            }
            drop(tx.send(StoreReply::Completed(c)))
        }
        Err(e) => warn!(campaign = c.0, error = %e, "completing campaign"),
    }
}

/// Sums the progress of running campaigns into `dialer_campaign_contacts`.
async fn contact_gauges<S: Store>(store: S, ids: Vec<i64>) {
    let (mut pending, mut dialing, mut done) = (0u64, 0u64, 0u64);
    for id in ids {
        if let Ok(p) = store.progress(id).await {
            pending += p.pending;
            dialing += p.dialing;
            done += p.done;
        }
    }
    for (state, n) in [("pending", pending), ("dialing", dialing), ("done", done)] {
        metrics::gauge!(m::CAMPAIGN_CONTACTS, "campaign_state" => state).set(n as f64);
    }
}

/// Runs a queued store write to its end, logging a failure.
fn logged(
    bg: &tokio::runtime::Handle,
    f: impl std::future::Future<Output = Result<(), StoreError>> + Send + 'static,
) {
    bg.spawn(async move {
        if let Err(e) = f.await {
            warn!(error = %e, "journal write failed");
        }
    });
}

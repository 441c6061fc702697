//! The counts behind a campaign's view — its progress, its report and the tenant's callable
//! contacts by zone and street — taken at most as often as their cost allows.
//!
//! Each count reads every contact of the campaign and of its tenant (a 200,000-resident
//! alert in SQLite: about 350 ms of a core on a quiet node, a second on a busy one). A
//! dashboard polling every second, or ten staff watching one alert, would take a core away
//! from the dialing it watches: polled every second, the 2,000 CPS benchmark campaign fell
//! to 86 % of its trunk, and to 96 % with nobody polling. So a view reuses the counts of an
//! earlier one while they are younger than twenty times what taking them cost (never past
//! [`MAX_AGE`]): counting then takes at most a twentieth of one core however many watch, a
//! small campaign's counts stay fresh to the millisecond, and concurrent views of one
//! campaign wait for one count instead of each starting its own. A change of the campaign's
//! state (started, paused, completed) is always counted afresh. The view says when its counts
//! were taken (`counted_ms`).
//!
//! Counts that took long ([`SLOW_COUNT`] or more) are renewed behind the views: the view that
//! finds them too old gets them at once, with their `counted_ms`, and starts one count in the
//! background that the next views show. Counted in the view, a 200,000-contact campaign's
//! dashboard stalled for 0.8-1.8 s once every ten seconds while it dialled. Cheap counts are
//! still taken in the view, so a small campaign's view is never a poll behind.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine::model::CampaignState;
use engine::store::{AnyStore, CampaignRecord, CampaignReport, ContactGroup, Store, StoreResult};

use crate::serve::state::now_ms;

/// The oldest counts a view shows.
pub const MAX_AGE: Duration = Duration::from_secs(10);
/// Counts are reused while younger than this many times what taking them cost.
pub const COST_SHARE: u32 = 20;
/// Campaigns remembered before views older than [`FORGET_AFTER`] are forgotten.
const REMEMBERED: usize = 256;
/// See [`REMEMBERED`].
const FORGET_AFTER: Duration = Duration::from_secs(60);

/// What a campaign's view counts in the store.
#[derive(Debug)]
pub struct Counts {
    /// Contacts by state, outcomes, zones, messages, results and the last minute's attempts.
    pub report: CampaignReport,
    /// The tenant's callable contacts by zone and street (for the estimates).
    pub groups: Vec<ContactGroup>,
    /// When they were taken, Unix ms.
    pub counted_ms: i64,
}

/// Counts that took at least this long are renewed in the background, not in the view.
pub const SLOW_COUNT: Duration = Duration::from_millis(50);

/// Whether counts taken `age` ago at a cost of `cost`, while the campaign was in the state it
/// is in now (`same_state`), may be shown again.
pub fn reusable(age: Duration, cost: Duration, same_state: bool) -> bool {
    same_state && age < (cost * COST_SHARE).min(MAX_AGE)
}

/// What a view does with the last counts of its campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fresh {
    /// Show them.
    Reuse,
    /// Show them and renew them in the background (unless a renewal is under way).
    RenewBehind,
    /// Count now and show the new counts.
    Count,
}

/// The rule for a view that finds counts taken `age` ago at a cost of `cost`, in the state the
/// campaign is in now or not (`same_state`).
pub fn freshness(age: Duration, cost: Duration, same_state: bool) -> Fresh {
    if reusable(age, cost, same_state) {
        Fresh::Reuse
    } else if same_state && cost >= SLOW_COUNT {
        Fresh::RenewBehind
    } else {
        Fresh::Count
    }
}

/// One campaign's last counts.
struct Taken {
    counts: Arc<Counts>,
    at: Instant,
    cost: Duration,
    state: CampaignState,
}

/// What one campaign's views share.
#[derive(Default)]
struct Shared {
    taken: Option<Taken>,
    /// A background renewal is under way: later views do not start another.
    renewing: bool,
}

/// One campaign's place: views of it take turns, so that one count serves them all.
type Slot = Arc<tokio::sync::Mutex<Shared>>;

/// The last counts of the campaigns viewed lately.
#[derive(Default)]
pub struct CountCache {
    slots: Mutex<HashMap<i64, (Slot, Instant)>>,
}

impl CountCache {
    /// The counts for a view of `c`, as [`freshness`] rules: the last ones (renewed behind
    /// the view when they took long to take), or new ones counted now.
    pub async fn counts(&self, store: &AnyStore, c: &CampaignRecord) -> StoreResult<Arc<Counts>> {
        let slot = self.slot(c.id);
        let mut shared = slot.lock().await;
        let now = Instant::now();
        if let Some(t) = shared.taken.as_ref() {
            match freshness(now - t.at, t.cost, t.state == c.state) {
                Fresh::Reuse => return Ok(t.counts.clone()),
                Fresh::RenewBehind => {
                    let counts = t.counts.clone();
                    if !shared.renewing {
                        shared.renewing = true;
                        tokio::spawn(renew(slot.clone(), store.clone(), c.clone()));
                    }
                    return Ok(counts);
                }
                Fresh::Count => {}
            }
        }
        let counts = Arc::new(count(store, c).await?);
        shared.taken = Some(Taken {
            counts: counts.clone(),
            at: now,
            cost: now.elapsed(),
            state: c.state,
        });
        Ok(counts)
    }

    fn slot(&self, campaign: i64) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if slots.len() >= REMEMBERED && !slots.contains_key(&campaign) {
            slots.retain(|_, (_, used)| now - *used < FORGET_AFTER);
        }
        let (slot, used) = slots
            .entry(campaign)
            .or_insert_with(|| (Slot::default(), now));
        *used = now;
        slot.clone()
    }
}

/// Takes `c`'s counts outside the slot's lock (views meanwhile show the last ones) and keeps
/// them unless a view counted afresh in the meantime (a new state).
async fn renew(slot: Slot, store: AnyStore, c: CampaignRecord) {
    let started = Instant::now();
    let counted = count(&store, &c).await;
    let mut shared = slot.lock().await;
    shared.renewing = false;
    match counted {
        Ok(counts) if shared.taken.as_ref().is_none_or(|t| t.at <= started) => {
            shared.taken = Some(Taken {
                counts: Arc::new(counts),
                at: started,
                cost: started.elapsed(),
                state: c.state,
            });
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(campaign = c.id, error = %e, "counting the campaign failed"),
    }
}

async fn count(store: &AnyStore, c: &CampaignRecord) -> StoreResult<Counts> {
    let counted_ms = now_ms();
    Ok(Counts {
        report: store.campaign_report(c.id, counted_ms - 60_000).await?,
        groups: store.contact_groups(&c.spec.tenant, true).await?,
        counted_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn counts_are_reused_for_twenty_times_their_cost_at_most_ten_seconds() {
        // A small campaign: 2 ms to count, fresh after 40 ms.
        assert!(reusable(39 * MS, 2 * MS, true));
        assert!(!reusable(40 * MS, 2 * MS, true));
        // 200,000 residents, 350 ms to count: reused for 7 s.
        assert!(reusable(6_999 * MS, 350 * MS, true));
        assert!(!reusable(7_000 * MS, 350 * MS, true));
        // A count that took 3 s (a loaded node): never older than 10 s.
        assert!(reusable(9_999 * MS, 3_000 * MS, true));
        assert!(!reusable(MAX_AGE, 3_000 * MS, true));
    }

    #[test]
    fn a_new_state_is_always_counted_afresh() {
        assert!(!reusable(Duration::ZERO, 400 * MS, false));
        assert_eq!(freshness(Duration::ZERO, 400 * MS, false), Fresh::Count);
    }

    #[test]
    fn slow_counts_are_renewed_behind_the_view_cheap_ones_in_it() {
        // 200,000 residents, 350 ms to count: shown for 7 s, then shown while renewed.
        assert_eq!(freshness(6_999 * MS, 350 * MS, true), Fresh::Reuse);
        assert_eq!(freshness(7_000 * MS, 350 * MS, true), Fresh::RenewBehind);
        // A small campaign: 2 ms to count, counted in the view once 40 ms old.
        assert_eq!(freshness(40 * MS, 2 * MS, true), Fresh::Count);
        assert_eq!(
            freshness(SLOW_COUNT * 20, SLOW_COUNT, true),
            Fresh::RenewBehind
        );
    }

    /// A SQLite store in `dir` holding one campaign of the whole town, as the API creates it.
    async fn store_with_campaign(dir: &tempfile::TempDir) -> (AnyStore, CampaignRecord) {
        let url = format!("sqlite://{}", dir.path().join("d.db").display());
        let store = AnyStore::open(&url).await.unwrap();
        let spec = serde_json::from_str(
            r#"{"tenant":"latina","name":"water","prompt":"p.wav","target":{"all":true},
                "priority":"normal","play_count":1,"retry":{}}"#,
        )
        .unwrap();
        let c = store.create_campaign(spec, 0).await.unwrap();
        (store, c)
    }

    /// A cache holding counts of `c` that are `MAX_AGE` old and took `cost`; returns them.
    async fn aged(
        cache: &CountCache,
        store: &AnyStore,
        c: &CampaignRecord,
        cost: Duration,
    ) -> Arc<Counts> {
        let old = Arc::new(count(store, c).await.unwrap());
        cache.slot(c.id).lock().await.taken = Some(Taken {
            counts: old.clone(),
            at: Instant::now() - MAX_AGE,
            cost,
            state: c.state,
        });
        old
    }

    /// Counts that took long and are too old: the view gets them at once and the next
    /// views, once the renewal is done, get new ones.
    #[tokio::test]
    async fn a_slow_count_is_shown_while_renewed_behind() {
        let dir = tempfile::tempdir().unwrap();
        let (store, c) = store_with_campaign(&dir).await;
        let cache = CountCache::default();
        let old = aged(&cache, &store, &c, SLOW_COUNT).await;
        let shown = cache.counts(&store, &c).await.unwrap();
        assert!(Arc::ptr_eq(&shown, &old), "the old counts, shown at once");
        let renewed = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let now = cache.counts(&store, &c).await.unwrap();
                if !Arc::ptr_eq(&now, &old) {
                    return now;
                }
                tokio::time::sleep(MS).await;
            }
        })
        .await
        .expect("renewed within 10 s");
        assert_eq!(renewed.report.progress.targeted, 0);
        assert!(!cache.slot(c.id).lock().await.renewing);
    }

    #[tokio::test]
    async fn a_cheap_count_is_taken_in_the_view() {
        let dir = tempfile::tempdir().unwrap();
        let (store, c) = store_with_campaign(&dir).await;
        let cache = CountCache::default();
        let old = aged(&cache, &store, &c, MS).await;
        let shown = cache.counts(&store, &c).await.unwrap();
        assert!(!Arc::ptr_eq(&shown, &old), "counted afresh in the view");
        assert!(!cache.slot(c.id).lock().await.renewing);
    }
}

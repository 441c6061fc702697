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
//! campaign wait for one count instead of each starting its own. A change of the campaign's state (started, paused, completed) is always
//! counted afresh. The view says when its counts were taken (`counted_ms`).

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

/// Whether counts taken `age` ago at a cost of `cost`, while the campaign was in the state it
/// is in now (`same_state`), may be shown again.
pub fn reusable(age: Duration, cost: Duration, same_state: bool) -> bool {
    same_state && age < (cost * COST_SHARE).min(MAX_AGE)
}

/// One campaign's last counts.
struct Taken {
    counts: Arc<Counts>,
    at: Instant,
    cost: Duration,
    state: CampaignState,
}

/// One campaign's place: views of it take turns, so that one count serves them all.
type Slot = Arc<tokio::sync::Mutex<Option<Taken>>>;

/// The last counts of the campaigns viewed lately.
#[derive(Default)]
pub struct CountCache {
    slots: Mutex<HashMap<i64, (Slot, Instant)>>,
}

impl CountCache {
    /// The counts for a view of `c`: the last ones while [`reusable`], else new ones.
    pub async fn counts(&self, store: &AnyStore, c: &CampaignRecord) -> StoreResult<Arc<Counts>> {
        let slot = self.slot(c.id);
        let mut taken = slot.lock().await;
        let now = Instant::now();
        if let Some(t) = taken.as_ref() {
            if reusable(now - t.at, t.cost, t.state == c.state) {
                return Ok(t.counts.clone());
            }
        }
        let counts = Arc::new(count(store, c).await?);
        *taken = Some(Taken {
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
    }
}

//! Campaigns in the core: which are dialled, refilling their queues from the store,
//! calling windows, and noticing when one is done.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tracing::info;

use super::attempt::CallPlan;
use super::io::{Action, CampaignId};
use super::timers::Deadline;
use super::DialerCore;
use crate::dialer::campaign::CampaignSpec;
use crate::dialer::scheduler::DueItem;
use crate::dialer::window::Window;
use crate::store::{CampaignRecord, DueContact};

/// Refill a campaign's queue when fewer than this many contacts are queued.
pub const REFILL_BELOW: usize = 200;
/// Most contacts queued per campaign: a refill waits above it even when they all wait on a
/// prefix limit (lanes held back do not count towards `REFILL_BELOW`).
pub const MAX_QUEUED: usize = 20_000;
/// Contacts asked for per refill, beyond those queued.
pub const REFILL_BATCH: u32 = 500;
/// Least time between two refills of one campaign (due retries are found this late).
pub const REFILL_EVERY: Duration = Duration::from_millis(500);
/// Contacts a node of a cluster claims per refill at least, and the runnable count it
/// refills below at least: a claim is the node's own, so it is sized on the node's share of
/// the trunks (two refill periods of it), not on the trunks' whole ceiling — three nodes
/// each claiming 564 contacts of a 1,000-resident alert would leave the third with none, and
/// a killed node would strand seconds of calls more than its share until its lease ran out.
pub const CLAIM_BATCH: u32 = 50;
/// See [`CLAIM_BATCH`].
pub const CLAIM_BELOW: usize = 20;

/// What a campaign's refills are sized on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RefillBasis {
    /// One node: the trunks' CPS ceilings added up.
    Alone(f64),
    /// A node of a cluster: its shares of the trunks' CPS added up (0 until granted).
    Shared(f64),
}

/// A campaign's refill window: refill below half a refill period of calls, asking for two
/// periods' worth, so one refill per [`REFILL_EVERY`] keeps ahead of the rate (the fixed
/// 500 a refill capped a campaign at about 1,128 attempts a second on a 2,000 CPS trunk).
/// Slow trunks keep the defaults: [`REFILL_BELOW`]/[`REFILL_BATCH`] alone, the smaller
/// [`CLAIM_BELOW`]/[`CLAIM_BATCH`] in a cluster. Returns (refill below this many runnable,
/// contacts asked for beyond those queued).
pub fn refill_window(basis: RefillBasis) -> (usize, u32) {
    let (cps, least_below, least_batch) = match basis {
        RefillBasis::Alone(cps) => (cps, REFILL_BELOW, REFILL_BATCH),
        RefillBasis::Shared(cps) => (cps, CLAIM_BELOW, CLAIM_BATCH),
    };
    let period = (cps.max(0.0) * REFILL_EVERY.as_secs_f64()).ceil();
    let below = (period as usize).clamp(least_below, MAX_QUEUED / 2);
    let batch = ((2.0 * period) as u32).clamp(least_batch, MAX_QUEUED as u32 / 2);
    (below, batch)
}

/// How long a campaign's queue stays empty before the store is asked whether it is done.
pub const SETTLE_BEFORE_CHECK: Duration = Duration::from_millis(300);
/// How often calling windows are re-read while a campaign has one.
pub const WINDOW_EVERY: Duration = Duration::from_secs(1);
/// How often the contacts-by-state gauges are published while campaigns run. Each time
/// the store counts every contact of every running campaign (~0.5 µs a row: 100 ms for a
/// 200,000-resident alert), so not faster than a scrape needs: Prometheus scrapes every
/// 15 s by default and the alert rules take their rates over 5 minutes.
pub const GAUGES_EVERY: Duration = Duration::from_secs(10);

/// A campaign being dialled.
#[derive(Debug)]
pub struct CampaignRt {
    /// Its definition.
    pub spec: CampaignSpec,
    /// What its attempts carry.
    pub plan: CallPlan,
    window: Option<Window>,
    refilling: bool,
    last_refill: Option<Instant>,
    checking: bool,
    /// Since when the store had nothing due and nothing is queued.
    exhausted_at: Option<Instant>,
    /// Attempts from pick to end.
    pub in_calls: usize,
}

/// The UTC time of a wall clock reading (Unix ms).
fn utc(wall: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(wall).unwrap_or_default()
}

impl DialerCore {
    /// The running campaigns, as loaded: stop dialling the others, start the new ones.
    pub(super) fn on_campaigns(&mut self, now: Instant, wall: i64, list: Vec<CampaignRecord>) {
        let running: HashMap<CampaignId, CampaignRecord> =
            list.into_iter().map(|c| (CampaignId(c.id), c)).collect();
        let gone: Vec<CampaignId> = self
            .campaigns
            .keys()
            .filter(|c| !running.contains_key(c))
            .copied()
            .collect();
        for c in gone {
            self.drop_campaign(c);
        }
        if self.draining.is_some() {
            return;
        }
        for (id, rec) in running {
            if self.campaigns.contains_key(&id) {
                continue;
            }
            let spec = rec.spec;
            let window = spec.effective_window().ok().flatten();
            self.sched.add_campaign(id.0, &spec.tenant, spec.priority);
            if let Some(w) = &window {
                self.sched.set_open(id.0, w.is_open(utc(wall)));
                self.timers
                    .set_if_unset(Deadline::Windows, now + WINDOW_EVERY);
            }
            info!(campaign = id.0, name = %spec.name, "campaign dialling");
            let plan = CallPlan::of(&spec);
            let rt = CampaignRt {
                spec,
                plan,
                window,
                refilling: false,
                last_refill: None,
                checking: false,
                exhausted_at: None,
                in_calls: 0,
            };
            self.campaigns.insert(id, rt);
            self.timers.set_if_unset(Deadline::Gauges, now);
        }
    }

    /// Forgets a campaign (paused, canceled, completed, shutdown); its calls finish.
    pub(super) fn drop_campaign(&mut self, c: CampaignId) {
        self.sched.remove_campaign(c.0);
        self.campaigns.remove(&c);
        self.timers.stop(Deadline::Refill(c));
        self.timers.stop(Deadline::Completion(c));
        if self.campaigns.is_empty() {
            self.timers.stop(Deadline::Gauges);
        }
        if self.campaigns.values().all(|rt| rt.window.is_none()) {
            self.timers.stop(Deadline::Windows);
        }
    }

    /// Contacts due for a campaign arrived.
    pub(super) fn on_due(&mut self, now: Instant, c: CampaignId, due: Vec<DueContact>) {
        let Some(rt) = self.campaigns.get_mut(&c) else {
            return;
        };
        rt.refilling = false;
        let mut added = 0;
        for d in due {
            let item = DueItem {
                campaign: c.0,
                contact: d.contact,
                number: d.number,
                number_type: d.number_type,
                attempts: d.attempts,
                excluded: vec![],
                message: d.message,
            };
            added += usize::from(self.sched.push(item));
        }
        self.sched.due_answered(c.0);
        if added == 0 && self.sched.queued(c.0) == 0 {
            rt.exhausted_at.get_or_insert(now);
        } else {
            rt.exhausted_at = None;
        }
    }

    /// The store says whether a campaign is done.
    pub(super) fn on_progress(&mut self, wall: i64, c: CampaignId, done: bool) {
        let Some(rt) = self.campaigns.get_mut(&c) else {
            return;
        };
        rt.checking = false;
        if done {
            let at_ms = wall;
            self.actions
                .push_back(Action::CompleteCampaign { campaign: c, at_ms });
        } else {
            rt.exhausted_at = None;
        }
    }

    /// The store marked a campaign completed.
    pub(super) fn on_completed(&mut self, c: CampaignId) {
        info!(campaign = c.0, "campaign completed");
        self.drop_campaign(c);
        self.actions.push_back(Action::CampaignDone(c));
    }

    /// The most a campaign could dial (removed trunks apart): the trunks' CPS ceilings added
    /// up, or in a cluster this node's shares of them.
    fn refill_basis(&self) -> RefillBasis {
        let live = self.trunks.iter().filter(|t| !t.removed);
        if self.clustered {
            let share = |t: &super::slot::TrunkSlot| t.trunk.share().map_or(0.0, |s| s.cps);
            RefillBasis::Shared(live.map(|t| share(t).min(t.cfg().cps)).sum())
        } else {
            RefillBasis::Alone(live.map(|t| t.cfg().cps).sum())
        }
    }

    /// Asks the store for a campaign's due contacts.
    pub(super) fn refill(&mut self, now: Instant, wall: i64, c: CampaignId) {
        let queued = self.sched.queued(c.0);
        let runnable = self.sched.runnable(c.0);
        let (below, batch) = refill_window(self.refill_basis());
        let Some(rt) = self.campaigns.get_mut(&c) else {
            return;
        };
        if rt.refilling || runnable >= below || queued >= MAX_QUEUED {
            return;
        }
        rt.refilling = true;
        rt.last_refill = Some(now);
        self.sched.asking_due(c.0);
        let limit = queued as u32 + batch + 64;
        self.actions.push_back(Action::LoadDue {
            campaign: c,
            now_ms: wall,
            limit,
        });
    }

    /// Asks the store whether a campaign with nothing queued nor in calls is done.
    pub(super) fn check_completion(&mut self, _now: Instant, c: CampaignId) {
        let Some(rt) = self.campaigns.get_mut(&c) else {
            return;
        };
        if rt.checking || rt.in_calls > 0 || self.sched.queued(c.0) > 0 {
            return;
        }
        rt.checking = true;
        self.actions.push_back(Action::CheckProgress(c));
    }

    /// Opens and closes campaigns by their calling windows.
    pub(super) fn update_windows(&mut self, now: Instant, wall: i64) {
        let mut any = false;
        for (id, rt) in &self.campaigns {
            if let Some(w) = &rt.window {
                any = true;
                self.sched.set_open(id.0, w.is_open(utc(wall)));
            }
        }
        if any {
            self.timers.set(Deadline::Windows, now + WINDOW_EVERY);
        }
    }

    /// Asks for the contacts-by-state gauges while campaigns run.
    pub(super) fn gauges(&mut self, now: Instant) {
        if self.campaigns.is_empty() {
            return;
        }
        let ids = self.campaigns.keys().map(|c| c.0).collect();
        self.actions.push_back(Action::ContactGauges(ids));
        self.timers.set(Deadline::Gauges, now + GAUGES_EVERY);
    }

    /// Arms (or runs) each campaign's refill and completion check.
    pub(super) fn plan_campaigns(&mut self, now: Instant, wall: i64) {
        let ids: Vec<CampaignId> = self.campaigns.keys().copied().collect();
        let (below, _) = refill_window(self.refill_basis());
        for c in ids {
            let queued = self.sched.queued(c.0);
            let short = self.sched.runnable(c.0) < below && queued < MAX_QUEUED;
            let rt = &self.campaigns[&c];
            if !rt.refilling && short {
                let at = rt.last_refill.map_or(now, |t| t + REFILL_EVERY);
                if at <= now {
                    self.timers.stop(Deadline::Refill(c));
                    self.refill(now, wall, c);
                } else {
                    self.timers.set(Deadline::Refill(c), at);
                }
            } else {
                self.timers.stop(Deadline::Refill(c));
            }
            let rt = &self.campaigns[&c];
            match rt.exhausted_at {
                Some(t) if !rt.checking && rt.in_calls == 0 && queued == 0 => {
                    let at = t + SETTLE_BEFORE_CHECK;
                    if at <= now {
                        self.timers.stop(Deadline::Completion(c));
                        self.check_completion(now, c);
                    } else {
                        self.timers.set(Deadline::Completion(c), at);
                    }
                }
                _ => self.timers.stop(Deadline::Completion(c)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refill_window_follows_the_trunks_ceiling() {
        use RefillBasis::Alone;
        // Slow trunks: the defaults.
        assert_eq!(refill_window(Alone(0.0)), (REFILL_BELOW, REFILL_BATCH));
        assert_eq!(refill_window(Alone(50.0)), (REFILL_BELOW, REFILL_BATCH));
        // 2,000 CPS: half a second below, a second asked for (2,000 per 0.5 s refill
        // period can keep 4,000 a second queued).
        assert_eq!(refill_window(Alone(2000.0)), (1000, 2000));
        // Bounded by the queue's ceiling.
        assert_eq!(
            refill_window(Alone(1e9)),
            (MAX_QUEUED / 2, MAX_QUEUED as u32 / 2)
        );
    }

    #[test]
    fn a_cluster_node_claims_on_its_share_so_every_node_finds_work() {
        use RefillBasis::Shared;
        // No share yet: a small first claim (batch + 64 contacts), so three nodes starting
        // a 1,000-resident alert all find some; a node alone would ask for 564 at once.
        let (_, batch) = refill_window(Shared(0.0));
        assert!(3 * (batch + 64) < 1000);
        let (_, alone) = refill_window(RefillBasis::Alone(0.0));
        assert!(3 * (alone + 64) > 1000);
        // A third of two 20 CPS trunks: still the floor.
        assert_eq!(refill_window(Shared(13.3)), (CLAIM_BELOW, CLAIM_BATCH));
        // A third of 2,000 CPS: two refill periods of the share, as a node alone.
        assert_eq!(refill_window(Shared(667.0)), (334, 668));
        assert_eq!(
            refill_window(Shared(667.0)),
            refill_window(RefillBasis::Alone(667.0))
        );
    }
}

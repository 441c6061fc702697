//! The scheduler: which due contact is dialled next.
//!
//! Fair across running campaigns: emergency campaigns first, then round robin by tenant
//! (and by campaign within a tenant), so one town's 50,000-contact campaign cannot starve a
//! village's. It never starts a second simultaneous call to one number (across all
//! campaigns) and never offers again a contact answered in a campaign. Within a campaign
//! the queue is split by destination (see [`super::prefix_limit::lanes`]): numbers under a
//! limited prefix wait in their own lane, so a prefix at its limit never holds back the
//! others. Plain data: the dialer core fills the queues from the store and asks routing and
//! the prefix limits through closures.
//!
//! What it holds follows live work, not a campaign's history: a contact answered is kept
//! only until the store can no longer return it as due. The journal commits writes in the
//! order they were queued, so once an attempt begun after the answer is committed
//! ([`Scheduler::journaled`]), a refill asked after that ([`Scheduler::asking_due`]) reads
//! the answer; its reply ([`Scheduler::due_answered`]) forgets such contacts.

use std::collections::{HashMap, HashSet, VecDeque};

use super::campaign::Priority;
use super::numbers::NumberType;
use super::prefix_limit::lanes::{Lanes, Look};
use super::prefix_limit::{lane_key, PrefixLimit};
use super::routing::Route;

/// A contact due for an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueItem {
    /// Campaign id.
    pub campaign: i64,
    /// Contact id.
    pub contact: i64,
    /// E.164 number.
    pub number: String,
    /// Fixed, mobile or unknown.
    pub number_type: NumberType,
    /// Counted attempts so far.
    pub attempts: u32,
    /// Trunks that already failed this attempt with a carrier fault (indices).
    pub excluded: Vec<usize>,
    /// The contact's per-zone message (`None`: the campaign's default prompt).
    pub message: Option<u32>,
}

/// The scheduler's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// Dial this item on this trunk.
    Dial(DueItem, usize),
    /// No trunk carries this number: finish it as failed.
    NoRoute(DueItem),
    /// Nothing can start now.
    Idle,
}

#[derive(Debug)]
struct Slot {
    tenant: String,
    priority: Priority,
    open: bool,
    /// Journal writes known committed when the refill in flight was asked.
    due_floor: u64,
    queue: Lanes<DueItem>,
}

/// How many queued items of one campaign are looked at per pick (the head may be blocked
/// by a number already in a call, or by a full trunk while others are free).
const SCAN: usize = 32;

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Scheduler {
    slots: HashMap<i64, Slot>,
    /// Round-robin order of tenants per priority class (emergency = 0).
    tenants: [VecDeque<String>; 2],
    /// Round-robin order of campaigns per (class, tenant).
    by_tenant: HashMap<(usize, String), VecDeque<i64>>,
    known: HashSet<(i64, i64)>,
    in_flight: HashSet<String>,
    /// Contacts answered whose answer a refill could still miss, with the number of
    /// attempts journaled before it ([`Scheduler::begin_journal`]).
    answered: HashMap<(i64, i64), u64>,
    /// Attempt journal writes queued so far.
    journals_queued: u64,
    /// The highest of them known committed (every earlier write is committed too).
    journals_committed: u64,
    /// The prefix limits, which give each number its lane.
    limits: Vec<PrefixLimit>,
}

fn class(p: Priority) -> usize {
    match p {
        Priority::Emergency => 0,
        Priority::Normal => 1,
    }
}

impl Scheduler {
    /// An empty scheduler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a running campaign (idempotent).
    pub fn add_campaign(&mut self, id: i64, tenant: &str, priority: Priority) {
        if self.slots.contains_key(&id) {
            return;
        }
        let c = class(priority);
        self.slots.insert(
            id,
            Slot {
                tenant: tenant.to_string(),
                priority,
                open: true,
                due_floor: 0,
                queue: Lanes::default(),
            },
        );
        let key = (c, tenant.to_string());
        if !self.by_tenant.contains_key(&key) {
            self.tenants[c].push_back(tenant.to_string());
        }
        self.by_tenant.entry(key).or_default().push_back(id);
    }

    /// Removes a campaign (paused, canceled, completed) and forgets its queue; calls in
    /// progress stay counted until [`Scheduler::finish`].
    pub fn remove_campaign(&mut self, id: i64) {
        let Some(slot) = self.slots.remove(&id) else {
            return;
        };
        for (_, it) in slot.queue.iter() {
            self.known.remove(&(it.campaign, it.contact));
        }
        // The store remembers answered contacts; a resumed campaign is refilled from it.
        self.answered.retain(|(c, _), _| *c != id);
        let c = class(slot.priority);
        let key = (c, slot.tenant.clone());
        if let Some(q) = self.by_tenant.get_mut(&key) {
            q.retain(|&x| x != id);
            if q.is_empty() {
                self.by_tenant.remove(&key);
                self.tenants[c].retain(|t| *t != slot.tenant);
            }
        }
    }

    /// Campaign ids known to the scheduler.
    pub fn campaigns(&self) -> Vec<i64> {
        self.slots.keys().copied().collect()
    }

    /// Opens or closes a campaign's calling window.
    pub fn set_open(&mut self, id: i64, open: bool) {
        if let Some(s) = self.slots.get_mut(&id) {
            s.open = open;
        }
    }

    /// Items queued for a campaign.
    pub fn queued(&self, id: i64) -> usize {
        self.slots.get(&id).map_or(0, |s| s.queue.len())
    }

    /// Items queued for a campaign in lanes not held back by a prefix limit at the last
    /// pick: what it can dial soon (its refill is judged on these).
    pub fn runnable(&self, id: i64) -> usize {
        self.slots.get(&id).map_or(0, |s| s.queue.runnable())
    }

    /// Replaces the prefix limits: queued items go to their new lanes.
    pub fn set_limits(&mut self, limits: Vec<PrefixLimit>) {
        self.limits = limits;
        for slot in self.slots.values_mut() {
            for (_, it) in slot.queue.drain_all() {
                let key = lane_key(&self.limits, &slot.tenant, &it.number);
                slot.queue.push_back(key, it);
            }
        }
    }

    /// Whether any open campaign has something queued: when none has, a pick would find
    /// nothing, and the core skips asking the trunks whether they could take a call.
    pub fn has_work(&self) -> bool {
        self.slots.values().any(|s| s.open && !s.queue.is_empty())
    }

    /// Whether an emergency campaign has contacts queued (preemption looks then).
    pub fn has_emergency_queued(&self) -> bool {
        self.slots
            .values()
            .any(|s| s.priority == Priority::Emergency && s.open && !s.queue.is_empty())
    }

    /// Up to `limit` contacts queued in open emergency campaigns, in lanes not held by a
    /// prefix limit, whose number is not in a call.
    pub fn emergency_queued(&self, limit: usize) -> Vec<&DueItem> {
        self.slots
            .values()
            .filter(|s| s.priority == Priority::Emergency && s.open)
            .flat_map(|s| s.queue.iter_runnable())
            .filter(|it| !self.in_flight.contains(&it.number))
            .take(limit)
            .collect()
    }

    /// Queues a due item; false if it is already queued or in a call, answered, or its
    /// campaign is not running.
    pub fn push(&mut self, item: DueItem) -> bool {
        let key = (item.campaign, item.contact);
        if self.known.contains(&key) || self.answered.contains_key(&key) {
            return false;
        }
        let Some(slot) = self.slots.get_mut(&item.campaign) else {
            return false;
        };
        self.known.insert(key);
        let lane = lane_key(&self.limits, &slot.tenant, &item.number);
        slot.queue.push_back(lane, item);
        true
    }

    /// Puts an item that is already known (a failover to another trunk) at the head of its
    /// campaign's queue.
    pub fn requeue_front(&mut self, item: DueItem) {
        let key = (item.campaign, item.contact);
        self.in_flight.remove(&item.number);
        match self.slots.get_mut(&item.campaign) {
            Some(slot) if !self.answered.contains_key(&key) => {
                self.known.insert(key);
                let lane = lane_key(&self.limits, &slot.tenant, &item.number);
                slot.queue.push_front(lane, item);
            }
            _ => {
                self.known.remove(&key);
            }
        }
    }

    /// Marks an attempt over: the number is free again; an answered contact is never
    /// offered again by this campaign.
    pub fn finish(&mut self, campaign: i64, contact: i64, number: &str, answered: bool) {
        self.in_flight.remove(number);
        self.known.remove(&(campaign, contact));
        if answered {
            self.answered
                .insert((campaign, contact), self.journals_queued);
        }
    }

    /// An attempt's journal write is queued; its sequence number, for
    /// [`Scheduler::journaled`].
    pub fn begin_journal(&mut self) -> u64 {
        self.journals_queued += 1;
        self.journals_queued
    }

    /// The journal write `seq` committed: so did every write queued before it.
    pub fn journaled(&mut self, seq: u64) {
        self.journals_committed = self.journals_committed.max(seq);
    }

    /// A refill of `campaign` is asked now: its reply reads every write committed so far.
    pub fn asking_due(&mut self, campaign: i64) {
        if let Some(slot) = self.slots.get_mut(&campaign) {
            slot.due_floor = self.journals_committed;
        }
    }

    /// The refill of `campaign` answered: forgets its answered contacts whose answer was
    /// committed before the refill was asked (the store no longer lists them as due).
    pub fn due_answered(&mut self, campaign: i64) {
        let Some(floor) = self.slots.get(&campaign).map(|s| s.due_floor) else {
            return;
        };
        self.answered
            .retain(|(c, _), queued| *c != campaign || *queued >= floor);
    }

    /// Entries held: (contacts queued or in calls, numbers in calls, answered contacts
    /// kept). Each follows live work; none grows with the attempts a campaign has finished.
    pub fn held(&self) -> (usize, usize, usize) {
        (self.known.len(), self.in_flight.len(), self.answered.len())
    }

    /// Numbers in a call now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Picks the next attempt. `route` tells where an item could go now.
    pub fn next(&mut self, route: impl FnMut(&DueItem) -> Route) -> Pick {
        self.next_paced(route, |_, _| true)
    }

    /// Picks the next attempt: `route` tells where an item could go now, `lane_open`
    /// whether a (tenant, lane) may give a call now under its prefix limits.
    pub fn next_paced(
        &mut self,
        mut route: impl FnMut(&DueItem) -> Route,
        mut lane_open: impl FnMut(&str, &str) -> bool,
    ) -> Pick {
        for c in 0..2 {
            let mut blocked = false;
            let nt = self.tenants[c].len();
            for ti in 0..nt {
                let tenant = self.tenants[c][ti].clone();
                let key = (c, tenant.clone());
                let camps: Vec<i64> = self
                    .by_tenant
                    .get(&key)
                    .map(|q| q.iter().copied().collect())
                    .unwrap_or_default();
                for cid in camps {
                    let Some(slot) = self.slots.get_mut(&cid) else {
                        continue;
                    };
                    if !slot.open {
                        continue;
                    }
                    let (in_flight, answered, known) =
                        (&self.in_flight, &self.answered, &mut self.known);
                    let mut routed = None;
                    let found = slot.queue.scan(
                        SCAN,
                        |lane| lane_open(&tenant, lane),
                        |it| {
                            if answered.contains_key(&(it.campaign, it.contact)) {
                                known.remove(&(it.campaign, it.contact));
                                return Look::Drop;
                            }
                            if in_flight.contains(&it.number) {
                                return Look::Skip;
                            }
                            match route(it) {
                                Route::Trunk(t) => {
                                    routed = Some(t);
                                    Look::Take
                                }
                                Route::NoRoute => Look::Remove,
                                Route::Wait => {
                                    blocked = true;
                                    Look::Skip
                                }
                            }
                        },
                    );
                    match (found, routed) {
                        (Some((it, Look::Take)), Some(t)) => {
                            self.in_flight.insert(it.number.clone());
                            // Round robin: this tenant and campaign go to the back.
                            self.tenants[c].remove(ti);
                            self.tenants[c].push_back(tenant);
                            if let Some(q) = self.by_tenant.get_mut(&key) {
                                if let Some(pos) = q.iter().position(|x| *x == cid) {
                                    q.remove(pos);
                                    q.push_back(cid);
                                }
                            }
                            return Pick::Dial(it, t);
                        }
                        (Some((it, _)), _) => {
                            self.known.remove(&(it.campaign, it.contact));
                            return Pick::NoRoute(it);
                        }
                        (None, _) => {}
                    }
                }
            }
            // Emergency calls waiting for capacity keep it from normal campaigns.
            if c == 0 && blocked {
                return Pick::Idle;
            }
        }
        Pick::Idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answered_contact_is_refused_until_a_refill_asked_after_its_commit() {
        let mut s = Scheduler::new();
        s.add_campaign(1, "t", Priority::Normal);
        assert!(s.push(item(1, 7, "+39061")));
        let Pick::Dial(it, _) = s.next(|_| Route::Trunk(0)) else {
            panic!("nothing picked")
        };
        let first = s.begin_journal();
        s.journaled(first);
        s.finish(1, it.contact, &it.number, true);
        // A refill asked before any later write committed may still list it.
        s.asking_due(1);
        assert!(!s.push(item(1, 7, "+39061")), "stale refill");
        s.due_answered(1);
        assert_eq!(s.held().2, 1, "kept: that refill could not see the answer");
        // A later attempt's journal write committed: the answer is in the store too.
        let later = s.begin_journal();
        s.asking_due(1);
        assert!(!s.push(item(1, 7, "+39061")));
        s.due_answered(1);
        assert_eq!(s.held().2, 1, "asked before the later write committed");
        s.journaled(later);
        s.asking_due(1);
        s.due_answered(1);
        assert_eq!(
            s.held().2,
            0,
            "forgotten once a refill can no longer list it"
        );
    }

    fn item(campaign: i64, contact: i64, number: &str) -> DueItem {
        DueItem {
            campaign,
            contact,
            number: number.into(),
            number_type: NumberType::Fixed,
            attempts: 0,
            excluded: vec![],
            message: None,
        }
    }

    #[test]
    fn round_robin_by_tenant_not_by_campaign_size() {
        let mut s = Scheduler::new();
        s.add_campaign(1, "big-town", Priority::Normal);
        s.add_campaign(2, "big-town", Priority::Normal);
        s.add_campaign(3, "village", Priority::Normal);
        for i in 0..100 {
            s.push(item(1, i, &format!("+1{i}")));
            s.push(item(2, 1000 + i, &format!("+2{i}")));
        }
        for i in 0..10 {
            s.push(item(3, 5000 + i, &format!("+3{i}")));
        }
        let mut per = HashMap::new();
        for _ in 0..20 {
            match s.next(|_| Route::Trunk(0)) {
                Pick::Dial(it, _) => *per.entry(it.campaign).or_insert(0) += 1,
                p => panic!("{p:?}"),
            }
        }
        // The village gets half of the capacity; big-town's two campaigns share the rest.
        assert_eq!(per[&3], 10);
        assert_eq!(per[&1], 5);
        assert_eq!(per[&2], 5);
    }

    #[test]
    fn emergency_preempts_and_holds_capacity() {
        let mut s = Scheduler::new();
        s.add_campaign(1, "a", Priority::Normal);
        s.add_campaign(2, "b", Priority::Emergency);
        s.push(item(1, 1, "+1"));
        s.push(item(2, 2, "+2"));
        s.push(item(2, 3, "+3"));
        assert!(matches!(
            s.next(|_| Route::Trunk(0)),
            Pick::Dial(DueItem { campaign: 2, .. }, _)
        ));
        // Capacity is full for the emergency: the normal campaign must not take it.
        assert_eq!(s.next(|_| Route::Wait), Pick::Idle);
        assert!(matches!(
            s.next(|_| Route::Trunk(0)),
            Pick::Dial(DueItem { campaign: 2, .. }, _)
        ));
        assert!(matches!(
            s.next(|_| Route::Trunk(0)),
            Pick::Dial(DueItem { campaign: 1, .. }, _)
        ));
        assert_eq!(s.next(|_| Route::Trunk(0)), Pick::Idle);
    }

    #[test]
    fn one_call_per_number_and_answered_never_again() {
        let mut s = Scheduler::new();
        s.add_campaign(1, "a", Priority::Normal);
        s.add_campaign(2, "b", Priority::Normal);
        s.push(item(1, 1, "+39111"));
        s.push(item(2, 9, "+39111")); // same person, another town's campaign
        let Pick::Dial(first, _) = s.next(|_| Route::Trunk(0)) else {
            panic!()
        };
        assert_eq!(s.next(|_| Route::Trunk(0)), Pick::Idle);
        s.finish(first.campaign, first.contact, &first.number, true);
        let Pick::Dial(second, _) = s.next(|_| Route::Trunk(0)) else {
            panic!()
        };
        assert_ne!(second.campaign, first.campaign);
        // The answered contact cannot be queued again in its campaign.
        assert!(!s.push(item(first.campaign, first.contact, "+39111")));
        // A queued duplicate is refused too.
        assert!(s.push(item(1, 2, "+39222")));
        assert!(!s.push(item(1, 2, "+39222")));
    }

    #[test]
    fn no_route_and_closed_windows() {
        let mut s = Scheduler::new();
        s.add_campaign(1, "a", Priority::Normal);
        s.push(item(1, 1, "+1"));
        s.set_open(1, false);
        assert_eq!(s.next(|_| Route::Trunk(0)), Pick::Idle);
        s.set_open(1, true);
        assert!(matches!(s.next(|_| Route::NoRoute), Pick::NoRoute(_)));
        assert_eq!(s.queued(1), 0);
    }
}

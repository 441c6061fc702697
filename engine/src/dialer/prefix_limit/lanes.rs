//! Interleaving destinations: a campaign's queue split into lanes, one per destination
//! key (the limited prefix a number falls under, `""` for the rest), visited in round
//! robin. A lane whose prefix limit is reached is passed over as a whole, so a backlog that
//! bunches under one slow prefix never stops the numbers of the others; and when a lane
//! gives an item the next pick starts at the lane after it, so the destinations alternate.
//!
//! Plain data, no clock: the scheduler says per lane whether it may give now (`open`) and
//! per item what it thinks of it (`look`).

use std::collections::VecDeque;

/// What the scheduler makes of one queued item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// Take it: removed and returned; the next scan starts at the following lane.
    Take,
    /// Remove it and return it (e.g. no trunk carries it): the scan ends.
    Remove,
    /// Drop it silently and go on (e.g. answered meanwhile).
    Drop,
    /// Leave it queued and look at the next one.
    Skip,
}

#[derive(Debug, Clone)]
struct Lane<T> {
    key: String,
    items: VecDeque<T>,
    /// Passed over at the last scan because its limit was reached.
    held: bool,
}

/// A queue of items in lanes by destination key, taken in round robin.
#[derive(Debug, Clone)]
pub struct Lanes<T> {
    lanes: Vec<Lane<T>>,
    /// The lane the next scan starts at.
    cursor: usize,
    len: usize,
}

impl<T> Default for Lanes<T> {
    fn default() -> Self {
        Lanes {
            lanes: vec![],
            cursor: 0,
            len: 0,
        }
    }
}

impl<T> Lanes<T> {
    fn lane(&mut self, key: &str) -> &mut Lane<T> {
        let i = match self.lanes.iter().position(|l| l.key == key) {
            Some(i) => i,
            None => {
                self.lanes.push(Lane {
                    key: key.to_string(),
                    items: VecDeque::new(),
                    held: false,
                });
                self.lanes.len() - 1
            }
        };
        &mut self.lanes[i]
    }

    /// Queues an item at the back of its lane.
    pub fn push_back(&mut self, key: &str, item: T) {
        self.lane(key).items.push_back(item);
        self.len += 1;
    }

    /// Queues an item at the head of its lane (a failover: next of its destination).
    pub fn push_front(&mut self, key: &str, item: T) {
        self.lane(key).items.push_front(item);
        self.len += 1;
    }

    /// Items queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Items in lanes that were not held back at the last scan: what the campaign can
    /// still dial soon (its refill is judged on these, not on a held lane's backlog).
    pub fn runnable(&self) -> usize {
        self.lanes
            .iter()
            .filter(|l| !l.held)
            .map(|l| l.items.len())
            .sum()
    }

    /// Every queued item with its lane key, lane by lane.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.lanes
            .iter()
            .flat_map(|l| l.items.iter().map(move |x| (l.key.as_str(), x)))
    }

    /// Items of lanes not held back, lane by lane from the cursor.
    pub fn iter_runnable(&self) -> impl Iterator<Item = &T> {
        let n = self.lanes.len();
        (0..n)
            .map(move |k| &self.lanes[(self.cursor + k) % n.max(1)])
            .filter(|l| !l.held)
            .flat_map(|l| l.items.iter())
    }

    /// Empties the lanes (to put the items back under new keys).
    pub fn drain_all(&mut self) -> Vec<(String, T)> {
        self.len = 0;
        self.cursor = 0;
        let lanes = std::mem::take(&mut self.lanes);
        lanes
            .into_iter()
            .flat_map(|l| {
                let k = l.key;
                l.items.into_iter().map(move |x| (k.clone(), x))
            })
            .collect()
    }

    /// Scans the lanes in round robin from the cursor, looking at no more than `budget`
    /// items: lanes `open` refuses are passed over (and marked held); in the others, items
    /// are offered to `look` from the head. Returns the first item taken or removed.
    pub fn scan(
        &mut self,
        mut budget: usize,
        mut open: impl FnMut(&str) -> bool,
        mut look: impl FnMut(&T) -> Look,
    ) -> Option<(T, Look)> {
        let n = self.lanes.len();
        for k in 0..n {
            let li = (self.cursor + k) % n;
            let lane = &mut self.lanes[li];
            if lane.items.is_empty() {
                continue;
            }
            lane.held = !open(&lane.key);
            if lane.held {
                continue;
            }
            let mut idx = 0;
            while idx < lane.items.len() && budget > 0 {
                budget -= 1;
                match look(&lane.items[idx]) {
                    Look::Skip => idx += 1,
                    Look::Drop => {
                        lane.items.remove(idx);
                        self.len -= 1;
                    }
                    verdict @ (Look::Take | Look::Remove) => {
                        let item = lane.items.remove(idx).expect("index in range");
                        self.len -= 1;
                        if verdict == Look::Take {
                            self.cursor = (li + 1) % n;
                        }
                        self.prune();
                        return Some((item, verdict));
                    }
                }
            }
            if budget == 0 {
                break;
            }
        }
        self.prune();
        None
    }

    /// Forgets empty lanes (keeps the cursor on the same lane where it can).
    fn prune(&mut self) {
        if self.lanes.iter().all(|l| !l.items.is_empty()) {
            return;
        }
        let at = self.cursor.min(self.lanes.len().saturating_sub(1));
        let before = self.lanes[..at]
            .iter()
            .filter(|l| l.items.is_empty())
            .count();
        self.lanes.retain(|l| !l.items.is_empty());
        self.cursor = if self.lanes.is_empty() {
            0
        } else {
            (at - before) % self.lanes.len()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes up to `n` items with lanes in `closed` passed over.
    fn take(l: &mut Lanes<u32>, n: usize, closed: &[&str]) -> Vec<u32> {
        let mut out = vec![];
        for _ in 0..n {
            match l.scan(32, |k| !closed.contains(&k), |_| Look::Take) {
                Some((x, _)) => out.push(x),
                None => break,
            }
        }
        out
    }

    #[test]
    fn a_bunched_backlog_is_interleaved_by_destination() {
        let mut l = Lanes::default();
        // 6 numbers under +39077 queued first, then 3 others: picks alternate.
        for i in 0..6 {
            l.push_back("+39077", i);
        }
        for i in 100..103 {
            l.push_back("", i);
        }
        assert_eq!(take(&mut l, 9, &[]), [0, 100, 1, 101, 2, 102, 3, 4, 5]);
        assert!(l.is_empty());
    }

    #[test]
    fn a_held_lane_does_not_stop_the_others() {
        let mut l = Lanes::default();
        for i in 0..100 {
            l.push_back("+39077", i);
        }
        for i in 100..105 {
            l.push_back("", i);
        }
        // +39077 is at its limit: the five others go, none of the 100 held.
        assert_eq!(take(&mut l, 10, &["+39077"]), [100, 101, 102, 103, 104]);
        assert_eq!(l.len(), 100);
        // The held lane's backlog does not count as runnable: the campaign refills.
        assert_eq!(l.runnable(), 0);
        assert_eq!(take(&mut l, 2, &[]), [0, 1]);
        assert_eq!(l.runnable(), 98);
    }

    #[test]
    fn skipped_dropped_and_removed_items() {
        let mut l = Lanes::default();
        for i in 0..4 {
            l.push_back("a", i);
        }
        // 0 is skipped (its number in a call), 1 dropped, 2 removed (no route).
        let r = l.scan(
            10,
            |_| true,
            |x| match x {
                0 => Look::Skip,
                1 => Look::Drop,
                _ => Look::Remove,
            },
        );
        assert_eq!(r, Some((2, Look::Remove)));
        assert_eq!(l.iter().map(|(_, x)| *x).collect::<Vec<_>>(), [0, 3]);
        // The budget bounds the items looked at.
        let mut seen = 0;
        assert_eq!(
            l.scan(
                1,
                |_| true,
                |_| {
                    seen += 1;
                    Look::Skip
                }
            ),
            None
        );
        assert_eq!(seen, 1);
        // A failover goes to the head of its lane.
        l.push_front("a", 9);
        assert_eq!(take(&mut l, 1, &[]), [9]);
    }

    #[test]
    fn drain_and_relane() {
        let mut l = Lanes::default();
        l.push_back("", 1);
        l.push_back("+39", 2);
        let all = l.drain_all();
        assert_eq!(all.len(), 2);
        assert!(l.is_empty());
        for (_, x) in all {
            l.push_back("x", x);
        }
        assert_eq!(take(&mut l, 5, &[]), [1, 2]);
    }
}

//! A trunk rides over slow journal commits: the core picks further ahead once it has seen
//! a commit stall, so the limiter still has journaled attempts to send while the next
//! commit waits (see `crate::dialer::pick_ahead`).

use std::time::Duration;

use super::tests::{Answer, Harness};
use super::tests_support::{spec, trunk_cfg};

/// Every 2 s the journal stalls for 450 ms: what is written then commits at its end, as
/// an fsync held up by the disk would; otherwise a write takes 3 ms.
fn stalling(elapsed: Duration) -> Duration {
    let phase = Duration::from_nanos((elapsed.as_nanos() % 2_000_000_000) as u64);
    let stall = Duration::from_millis(450);
    if phase < stall {
        stall - phase + Duration::from_millis(3)
    } else {
        Duration::from_millis(3)
    }
}

/// INVITEs sent in each whole second from `from` to `to`.
fn per_second(h: &Harness, from: u64, to: u64) -> Vec<usize> {
    (from..to)
        .map(|s| {
            let (a, b) = (Duration::from_secs(s), Duration::from_secs(s + 1));
            h.invites.iter().filter(|i| i.0 >= a && i.0 < b).count()
        })
        .collect()
}

#[test]
fn a_trunk_keeps_its_rate_through_periodic_450_ms_journal_stalls() {
    let cps = 200.0;
    let mut h = Harness::new(vec![trunk_cfg("a", cps, 2000)], spec(), 6_000);
    h.carrier = Box::new(|_, _| Answer::Fail(404, None));
    h.journal_delay = stalling;
    h.run_for(Duration::from_secs(26));
    // From the second stall on, the horizon has learnt the first one. Each second then
    // sends what the limiter's 1,010 ms window allows (198); picking a fixed 200 ms ahead,
    // the stalled seconds sent 168.
    let seconds = per_second(&h, 2, 24);
    for (i, n) in seconds.iter().enumerate() {
        assert!(
            *n as f64 >= 0.97 * cps,
            "second {}: {n} INVITEs at {cps} CPS (all: {seconds:?})",
            i + 2
        );
        assert!(*n as f64 <= cps, "second {}: {n} over the ceiling", i + 2);
    }
}

#[test]
fn with_fast_commits_a_trunk_picks_only_a_fifth_of_a_second_ahead() {
    let cps = 200.0;
    let mut h = Harness::new(vec![trunk_cfg("a", cps, 2000)], spec(), 2_000);
    // The carrier never answers within the run: every picked attempt stays live, so the
    // INVITEs sent plus the journaled-but-unsent are what was picked.
    h.carrier = Box::new(|_, _| Answer::Pick(Duration::from_secs(60)));
    h.run_for(Duration::from_millis(1500));
    assert!(
        h.invites.len() >= 250,
        "{} INVITEs in 1.5 s",
        h.invites.len()
    );
    let picked_unsent = h.journal.len() - h.invites.len();
    assert!(
        picked_unsent <= 40,
        "{picked_unsent} picked ahead at {cps} CPS with 3 ms commits"
    );
}

//! How nodes split a trunk's limits: the rule each node applies at its beat, inside the
//! store's shares lock, to the other live nodes' committed rows. Pure functions.
//!
//! - Every node with a backlog for the trunk gets an equal part of its CPS and channels;
//!   a node without one gives its CPS up and keeps only the channels its calls hold.
//! - A node never takes more than the others left free: the sum of the committed CPS
//!   shares never exceeds the ceiling, nor the sum of reserved channels the trunk's
//!   channels (a node whose share shrank keeps reserving the calls it still has).
//! - A lower CPS share applies at once; a higher one only from the next beat, a second
//!   later, when the nodes that gave that rate up have had their last second at the old
//!   rate leave the carrier's one-second window ([`applied_cps`]).
//! - Congestion travels with the rows: each node publishes its own AIMD factor and
//!   scales its share by the lowest of its peers'.

use crate::dialer::core::TrunkLoad;
use crate::store::postgres::TrunkShareRow;

/// This node's row for one trunk, given the other live nodes' rows for it. `rank` is
/// this node's place among the wanting nodes (by node id): the whole calls per second
/// and channels are split in integers, the first ones taking the remainder, because a
/// node's limiter admits whole INVITEs per one-second window (three nodes at 6.67 CPS
/// would each send 6 a second, 90 % of 20).
pub fn my_share(load: &TrunkLoad, peers: &[&TrunkShareRow], rank: usize) -> TrunkShareRow {
    let wanting = peers.iter().filter(|p| p.wants).count() + usize::from(load.wants);
    let others_cps: f64 = peers.iter().map(|p| p.cps).sum();
    let others_reserved: u32 = peers.iter().map(|p| p.reserved).sum();
    let free_cps = (load.cps - others_cps).max(0.0);
    let free_ch = load.max_channels.saturating_sub(others_reserved);
    let (target_cps, target_ch) = if load.wants {
        let n = wanting.max(1);
        let whole = load.cps.floor();
        let cps =
            split(whole as u32, n, rank) as f64 + if rank == 0 { load.cps - whole } else { 0.0 };
        (cps, split(load.max_channels, n, rank))
    } else {
        (0.0, load.active)
    };
    let channels = target_ch.min(free_ch);
    TrunkShareRow {
        trunk: load.name.clone(),
        wants: load.wants,
        cps: target_cps.min(free_cps),
        channels,
        reserved: channels.max(load.active),
        factor: load.factor,
    }
}

/// The `rank`-th of `n` integer parts of `total` (the first `total % n` one larger).
fn split(total: u32, n: usize, rank: usize) -> u32 {
    let n = n as u32;
    total / n + u32::from((rank as u32) < total % n)
}

/// This node's place among the wanting nodes of a trunk, by node id.
pub fn rank(me: &str, wanting_peers: impl Iterator<Item = String>) -> usize {
    wanting_peers.filter(|p| p.as_str() < me).count()
}

/// The CPS share to apply after a beat that committed `now`, when the previous beat
/// committed `prev` (`None`: the first beat of this run): a decrease at once, an increase
/// only once it has been committed for a beat, unless no other live node shares the
/// trunk (nobody's old rate to wait out).
pub fn applied_cps(prev: Option<f64>, now: f64, alone: bool) -> f64 {
    if alone {
        return now;
    }
    prev.unwrap_or(0.0).min(now)
}

/// The lowest congestion factor among the peers (1 when none is congested).
pub fn peer_factor(peers: &[&TrunkShareRow]) -> f64 {
    peers
        .iter()
        .map(|p| p.factor)
        .fold(1.0, f64::min)
        .clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(wants: bool, active: u32) -> TrunkLoad {
        TrunkLoad {
            name: "a".into(),
            wants,
            active,
            factor: 1.0,
            cps: 30.0,
            max_channels: 60,
        }
    }

    fn peer(wants: bool, cps: f64, channels: u32, reserved: u32) -> TrunkShareRow {
        TrunkShareRow {
            trunk: "a".into(),
            wants,
            cps,
            channels,
            reserved,
            factor: 1.0,
        }
    }

    #[test]
    fn a_lone_node_with_a_backlog_takes_the_whole_trunk() {
        let r = my_share(&load(true, 0), &[], 0);
        assert_eq!((r.cps, r.channels, r.reserved), (30.0, 60, 60));
    }

    #[test]
    fn three_wanting_nodes_split_equally_once_the_others_gave_way() {
        let (b, c) = (peer(true, 10.0, 20, 20), peer(true, 10.0, 20, 20));
        let r = my_share(&load(true, 0), &[&b, &c], 2);
        assert_eq!((r.cps, r.channels), (10.0, 20));
    }

    #[test]
    fn a_node_never_takes_what_the_others_still_hold() {
        // B holds the whole trunk from when it was alone: A waits for B to give way.
        let b = peer(true, 30.0, 60, 60);
        let r = my_share(&load(true, 0), &[&b], 1);
        assert_eq!((r.cps, r.channels), (0.0, 0));
        // B's next beat sees A wanting and halves; then A gets the other half.
        let b2 = my_share(&load(true, 60), &[&peer(true, 0.0, 0, 0)], 0);
        assert_eq!(b2.cps, 15.0);
        assert_eq!(b2.channels, 30);
        assert_eq!(
            b2.reserved, 60,
            "B's 60 calls keep their channels until they end"
        );
        let a2 = my_share(&load(true, 0), &[&b2], 1);
        assert_eq!((a2.cps, a2.channels), (15.0, 0));
    }

    #[test]
    fn sums_never_exceed_the_trunk_whatever_the_order_of_beats() {
        // Three nodes beat in turn for a while with changing backlogs: after each beat
        // the committed rows add up to at most the trunk's limits.
        let mut rows = [
            peer(false, 0.0, 0, 0),
            peer(false, 0.0, 0, 0),
            peer(false, 0.0, 0, 0),
        ];
        let mut active = [0u32; 3];
        for step in 0..60usize {
            let i = step % 3;
            let wants = (step / 7 + i) % 4 != 0;
            active[i] = rows[i].channels.min(active[i] + 5);
            let others: Vec<&TrunkShareRow> =
                (0..3).filter(|j| *j != i).map(|j| &rows[j]).collect();
            let r = my_share(&load(wants, active[i]), &others, i);
            rows[i] = r;
            let cps: f64 = rows.iter().map(|r| r.cps).sum();
            let reserved: u32 = rows.iter().map(|r| r.reserved).sum();
            assert!(cps <= 30.0 + 1e-9, "step {step}: {cps} CPS");
            assert!(reserved <= 60, "step {step}: {reserved} channels");
            if !wants {
                active[i] = active[i].saturating_sub(3);
            }
        }
    }

    #[test]
    fn whole_calls_per_second_are_split_with_the_remainder_first() {
        let mut l = load(true, 0);
        l.cps = 20.0;
        let peers = [peer(true, 0.0, 0, 0), peer(true, 0.0, 0, 0)];
        let p: Vec<&TrunkShareRow> = peers.iter().collect();
        let parts: Vec<f64> = (0..3).map(|r| my_share(&l, &p, r).cps).collect();
        assert_eq!(parts, vec![7.0, 7.0, 6.0]);
        l.cps = 2.5;
        let parts: Vec<f64> = (0..3).map(|r| my_share(&l, &p, r).cps).collect();
        assert_eq!(parts, vec![1.5, 1.0, 0.0]);
        assert_eq!(rank("b", ["a".to_string(), "c".to_string()].into_iter()), 1);
    }

    #[test]
    fn an_idle_node_gives_its_rate_up_and_keeps_its_calls_channels() {
        let r = my_share(&load(false, 7), &[&peer(true, 20.0, 40, 40)], 0);
        assert_eq!((r.cps, r.channels, r.reserved), (0.0, 7, 7));
    }

    #[test]
    fn a_rise_waits_a_beat_a_cut_does_not() {
        assert_eq!(applied_cps(Some(10.0), 15.0, false), 10.0);
        assert_eq!(applied_cps(Some(15.0), 15.0, false), 15.0);
        assert_eq!(applied_cps(Some(15.0), 10.0, false), 10.0);
        assert_eq!(applied_cps(Some(0.0), 30.0, true), 30.0);
        assert_eq!(
            applied_cps(None, 30.0, false),
            0.0,
            "a new run waits a beat"
        );
    }

    #[test]
    fn the_most_congested_peer_sets_the_factor() {
        let mut b = peer(true, 10.0, 20, 20);
        b.factor = 0.5;
        let c = peer(true, 10.0, 20, 20);
        assert_eq!(peer_factor(&[&b, &c]), 0.5);
        assert_eq!(peer_factor(&[]), 1.0);
    }
}

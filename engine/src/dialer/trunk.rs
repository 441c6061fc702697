//! Trunks: their configuration (keys as in FreeSWITCH gateways / jambonz carriers) and their
//! run-time state: channels in use, the CPS limiter under congestion control, and health
//! from OPTIONS pings with hysteresis.

use std::time::{Duration, Instant};

use codecs::Codec;
use serde::Deserialize;

use super::congestion::{Aimd, AimdConfig, Signal};
use super::limiter::CpsLimiter;
use super::trunk_keys::{de_codecs, RouteKey, TrunkTransport};
use super::trunk_metrics::TrunkMetrics;
use crate::metrics as m;

/// One carrier trunk as configured (`[[trunk]]` in the TOML file).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    /// Name used in metrics labels and the journal.
    pub name: String,
    /// `host:port` of the carrier's SIP proxy.
    pub proxy: String,
    /// `udp`, `tcp` or `tls`.
    #[serde(default)]
    pub transport: TrunkTransport,
    /// Media encryption: `off` (the default), `optional` (SDES best effort) or `required`
    /// (RTP/SAVP, a call whose answer has no key ends). Needs `transport = "tls"`: SDES keys
    /// travel in the SDP.
    #[serde(default)]
    pub srtp: crate::sip::sdp::crypto::SrtpMode,
    /// Digest realm (informational: the challenge's realm is used).
    #[serde(default)]
    pub realm: Option<String>,
    /// Digest user name.
    #[serde(default)]
    pub username: Option<String>,
    /// Digest password (may be written `${ENV_NAME}`).
    #[serde(default)]
    pub password: Option<String>,
    /// Whether to REGISTER to the proxy.
    #[serde(default)]
    pub register: bool,
    /// User part of the From URI when the campaign gives no caller ID.
    #[serde(default)]
    pub from_user: Option<String>,
    /// Host part of From and the Request-URI (defaults to the proxy host).
    #[serde(default)]
    pub from_domain: Option<String>,
    /// Caller ID presented on this trunk (overrides the campaign's when set).
    #[serde(default)]
    pub caller_id: Option<String>,
    /// Codecs offered, in preference order (written `PCMU`, `PCMA`, `G722`, `opus`).
    #[serde(default = "default_codecs", deserialize_with = "de_codecs")]
    pub codecs: Vec<Codec>,
    /// Packet time in milliseconds.
    #[serde(default = "default_ptime")]
    pub ptime_ms: u32,
    /// Concurrent calls the carrier allows.
    pub max_channels: u32,
    /// Calls per second the carrier allows: a ceiling never exceeded in any 1 s window.
    pub cps: f64,
    /// Seconds between OPTIONS pings; 0 disables them.
    #[serde(default)]
    pub options_ping_interval_s: u64,
    /// Lower is tried first.
    #[serde(default)]
    pub priority: u32,
    /// Share of calls among trunks of the same priority.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Seconds of ringing before we CANCEL.
    #[serde(default = "default_ring_timeout")]
    pub ring_timeout_s: u64,
    /// What the trunk carries: number types (`fixed`, `mobile`, `unknown`) and E.164
    /// prefixes (`+39`); empty carries everything.
    #[serde(default)]
    pub routes: Vec<RouteKey>,
    /// Where the callee's media is accepted from: `sdp` (its SDP's host only, the default) or
    /// `symmetric` (RFC 4961: latch onto the first RTP source, and send there; for callees
    /// behind NAT). See [`crate::media::latch`].
    #[serde(default)]
    pub media_latch: crate::media::MediaLatch,
    /// Other addresses or blocks (`192.0.2.0/24`) the carrier sends calls from, besides
    /// its proxy: new requests from them are let in, like the proxy's.
    #[serde(default)]
    pub inbound_from: Vec<crate::sip::endpoint::Cidr>,
}

fn default_codecs() -> Vec<Codec> {
    vec![Codec::Pcma, Codec::Pcmu]
}
fn default_ptime() -> u32 {
    20
}
fn default_weight() -> u32 {
    1
}
fn default_ring_timeout() -> u64 {
    40
}

/// Consecutive ping results that flip a trunk's health.
#[derive(Debug, Clone, Copy)]
pub struct Hysteresis {
    /// Failures in a row that mark an up trunk down.
    pub down_after: u32,
    /// Successes in a row that mark a down trunk up.
    pub up_after: u32,
}

impl Default for Hysteresis {
    fn default() -> Self {
        Hysteresis {
            down_after: 3,
            up_after: 2,
        }
    }
}

/// Trunk health from OPTIONS pings (or REGISTER), with hysteresis so that one lost ping
/// does not flap the trunk.
#[derive(Debug, Clone)]
pub struct Health {
    up: bool,
    streak: u32,
    h: Hysteresis,
}

impl Health {
    /// Starts up: a trunk is trusted until pings say otherwise.
    pub fn new(h: Hysteresis) -> Self {
        Health {
            up: true,
            streak: 0,
            h,
        }
    }

    /// Whether the trunk carries calls.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Feeds one ping result; returns `Some(new state)` when it flips.
    pub fn on_ping(&mut self, ok: bool) -> Option<bool> {
        if ok == self.up {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let need = if self.up {
            self.h.down_after
        } else {
            self.h.up_after
        };
        if self.streak >= need {
            self.up = ok;
            self.streak = 0;
            Some(ok)
        } else {
            None
        }
    }
}

/// Whether an OPTIONS reply says the trunk is alive: any answer below 500 except 408
/// (the endpoint's own timeout) proves a SIP stack at the far end is processing requests
/// (a 404 or 405 to OPTIONS is a live proxy that dislikes our URI); a 5xx or a timeout
/// does not.
pub fn ping_ok(status: u16) -> bool {
    status < 500 && status != 408
}

/// Run-time state of one trunk. Plain data: the dialer core calls it with `now`.
#[derive(Debug)]
pub struct Trunk {
    /// Its configuration.
    pub cfg: TrunkConfig,
    limiter: CpsLimiter,
    aimd: Aimd,
    /// Calls in progress (from INVITE to the end of the call).
    pub active: u32,
    /// Health from pings.
    pub health: Health,
    /// Attempts admitted so far (for weighted sharing).
    pub admitted: u64,
    /// Whether the registrar holds our binding now (meaningful when `cfg.register`).
    pub registered: bool,
    /// This node's part of the trunk's limits when several nodes share it (`None`: all
    /// of it, a single node).
    share: Option<NodeShare>,
    /// The trunk's metric handles, each registered once: the core asks for a token at
    /// every pass while the limiter makes an INVITE wait, and building the labelled key
    /// each time (a copy of the name, a registry lookup) was 2 % of the signalling thread.
    pub metrics: TrunkMetrics,
}

/// One node's part of a trunk shared by several nodes (see `crate::cluster::shares`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeShare {
    /// CPS this node may use (0: none now).
    pub cps: f64,
    /// Channels this node may hold.
    pub channels: u32,
    /// The lowest congestion factor other nodes report for the trunk (1: none): a 503
    /// seen by one node slows every node.
    pub peer_factor: f64,
}

impl Trunk {
    /// A trunk at full rate, up, idle.
    pub fn new(cfg: TrunkConfig) -> Self {
        Trunk {
            limiter: CpsLimiter::new(cfg.cps),
            aimd: Aimd::new(cfg.cps, AimdConfig::default()),
            active: 0,
            health: Health::new(Hysteresis::default()),
            admitted: 0,
            registered: false,
            share: None,
            metrics: TrunkMetrics::new(&cfg.name),
            cfg,
        }
    }

    /// Sets this node's part of the trunk's limits (`None`: all of it). A lower CPS
    /// applies to the next admission; the limiter keeps its recent admissions.
    pub fn set_share(&mut self, share: Option<NodeShare>) {
        let ceiling = |s: &Option<NodeShare>| s.map_or(self.cfg.cps, |s| s.cps.min(self.cfg.cps));
        let (old, new) = (ceiling(&self.share), ceiling(&share));
        if new > 0.0 && (old - new).abs() > 1e-9 {
            self.limiter = self.limiter.reconfigured(new);
        }
        self.share = share;
    }

    /// This node's part of the trunk's limits, if it shares them.
    pub fn share(&self) -> Option<NodeShare> {
        self.share
    }

    /// Channels this node may hold: the trunk's, or its share of them.
    pub fn channel_cap(&self) -> u32 {
        self.share.map_or(self.cfg.max_channels, |s| {
            s.channels.min(self.cfg.max_channels)
        })
    }

    /// This node's own congestion factor: its AIMD rate over the ceiling (1: none).
    pub fn congestion_factor(&mut self, now: Instant) -> f64 {
        (self.aimd.rate(now) / self.cfg.cps).clamp(0.0, 1.0)
    }

    /// Applies a new configuration to a running trunk: calls in progress keep their
    /// channels and health is kept; the limiter (keeping its recent admissions) and
    /// congestion control restart at the new CPS, and the new limits apply to the next
    /// attempts.
    ///
    /// A node sharing the trunk with others scales its share down by as much as the
    /// trunk's limits went down, so that the nodes' shares still add up to at most the
    /// new limits once each has seen the change (a rise waits for the next beat's split).
    pub fn reconfigure(&mut self, cfg: TrunkConfig) {
        self.share = self.share.map(|s| shrunk_share(s, &self.cfg, &cfg));
        let ceiling = self.share.map_or(cfg.cps, |s| s.cps.min(cfg.cps));
        self.limiter = self.limiter.reconfigured(ceiling.max(0.01));
        self.aimd = Aimd::new(cfg.cps, AimdConfig::default());
        if cfg.name != self.cfg.name {
            self.metrics = TrunkMetrics::new(&cfg.name);
        }
        self.cfg = cfg;
    }

    fn sync(&mut self, now: Instant) {
        let own = self.aimd.rate(now);
        // Sharing, congestion scales this node's share: by its own AIMD factor, or by a
        // peer's when that one is lower.
        let r = match self.share {
            Some(s) => s.cps * (own / self.cfg.cps).min(s.peer_factor),
            None => own,
        };
        self.limiter.set_rate(r);
        if let Some(h) = self.aimd.hold_until() {
            self.limiter.hold(h);
        }
    }

    /// Whether an attempt could start now: up, a channel free, the limiter ready.
    pub fn available(&mut self, now: Instant) -> bool {
        self.sync(now);
        self.health.is_up()
            && self.active < self.channel_cap()
            && self.share.is_none_or(|s| s.cps > 0.0)
            && self.limiter.next_ready(now) <= now
    }

    /// When this trunk may next admit a call (ignoring channels and health).
    pub fn next_ready(&mut self, now: Instant) -> Instant {
        self.sync(now);
        self.limiter.next_ready(now)
    }

    /// Reserves a channel for an attempt being journaled (the CPS token is taken when its
    /// INVITE leaves, see [`Trunk::take_token`]).
    pub fn reserve_channel(&mut self) {
        self.active += 1;
        self.admitted += 1;
    }

    /// Takes a CPS token for an INVITE about to leave; false when the limiter says wait.
    pub fn take_token(&mut self, now: Instant) -> bool {
        self.sync(now);
        if self.limiter.try_acquire(now) {
            true
        } else {
            self.metrics.throttled().increment(1);
            false
        }
    }

    /// Whether a carrier's Retry-After keeps this trunk idle at `now`.
    pub fn held(&self, now: Instant) -> bool {
        self.aimd.hold_until().is_some_and(|h| h > now)
    }

    /// Records when the INVITEs that took tokens at or after `decided` actually left.
    pub fn stamp_sent(&mut self, decided: Instant, sent: Instant) {
        self.limiter.stamp_since(decided, sent);
    }

    /// A call that was admitted ended (or never left): frees its channel and feeds
    /// congestion control.
    pub fn release(&mut self, now: Instant, signal: Signal) {
        self.active = self.active.saturating_sub(1);
        if self.aimd.on_signal(now, signal) {
            tracing::info!(trunk = %self.cfg.name, rate = self.aimd.rate(now), "congestion: CPS lowered");
        }
    }

    /// Feeds an OPTIONS ping result.
    pub fn on_ping(&mut self, now: Instant, ok: bool) {
        if let Some(up) = self.health.on_ping(ok) {
            tracing::warn!(trunk = %self.cfg.name, up, "trunk health changed");
            metrics::gauge!(m::TRUNK_UP, "trunk" => self.cfg.name.clone()).set(if up {
                1.0
            } else {
                0.0
            });
            if !up {
                self.aimd.on_signal(now, Signal::Down);
            }
        }
    }

    /// The current effective CPS.
    pub fn effective_cps(&mut self, now: Instant) -> f64 {
        self.sync(now);
        self.limiter.rate()
    }

    /// Ring timeout.
    pub fn ring_timeout(&self) -> Duration {
        Duration::from_secs(self.cfg.ring_timeout_s.max(1))
    }
}

/// A node's share of a trunk whose limits changed from `old` to `new`: a lower CPS or
/// channel count scales the share by the same ratio (rounded down); a higher one leaves
/// it as it is until the cluster splits the trunk again.
fn shrunk_share(s: NodeShare, old: &TrunkConfig, new: &TrunkConfig) -> NodeShare {
    let cps = if new.cps < old.cps && old.cps > 0.0 {
        s.cps * new.cps / old.cps
    } else {
        s.cps
    };
    let channels = if new.max_channels < old.max_channels && old.max_channels > 0 {
        let scaled =
            u64::from(s.channels) * u64::from(new.max_channels) / u64::from(old.max_channels);
        u32::try_from(scaled).unwrap_or(u32::MAX)
    } else {
        s.channels
    };
    NodeShare {
        cps,
        channels,
        peer_factor: s.peer_factor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn cfg(name: &str, cps: f64, ch: u32) -> TrunkConfig {
        TrunkConfig {
            name: name.into(),
            proxy: "127.0.0.1:5060".into(),
            transport: TrunkTransport::Udp,
            srtp: Default::default(),
            realm: None,
            username: None,
            password: None,
            register: false,
            from_user: None,
            from_domain: None,
            caller_id: None,
            codecs: default_codecs(),
            ptime_ms: 20,
            max_channels: ch,
            cps,
            options_ping_interval_s: 0,
            priority: 0,
            weight: 1,
            ring_timeout_s: 30,
            routes: vec![],
            media_latch: Default::default(),
            inbound_from: vec![],
        }
    }

    #[test]
    fn a_lower_limit_shrinks_a_nodes_share_a_higher_one_waits_for_the_split() {
        let mut t = Trunk::new(cfg("a", 20.0, 60));
        let share = NodeShare {
            cps: 10.0,
            channels: 30,
            peer_factor: 0.5,
        };
        t.set_share(Some(share));
        t.reconfigure(cfg("a", 10.0, 40));
        let s = t.share().unwrap();
        assert_eq!((s.cps, s.channels, s.peer_factor), (5.0, 20, 0.5));
        t.reconfigure(cfg("a", 40.0, 100));
        assert_eq!(t.share().unwrap().cps, 5.0);
        assert_eq!(t.channel_cap(), 20);
        let mut alone = Trunk::new(cfg("b", 20.0, 60));
        alone.reconfigure(cfg("b", 10.0, 40));
        assert_eq!((alone.share(), alone.channel_cap()), (None, 40));
    }

    /// INVITEs a trunk admits over `secs` virtual seconds, asked every millisecond.
    fn admitted_in(t: &mut Trunk, secs: u64) -> u32 {
        let t0 = Instant::now();
        let mut n = 0;
        for ms in 0..secs * 1000 {
            let now = t0 + std::time::Duration::from_millis(ms);
            if t.available(now) && t.take_token(now) {
                n += 1;
            }
        }
        n
    }

    #[test]
    fn a_peers_congestion_slows_this_nodes_share() {
        // Two nodes share 20 CPS; the other one saw 503s and runs at half its rate: this
        // node, which saw none, slows to half of its 10 too.
        let share = |peer_factor| NodeShare {
            cps: 10.0,
            channels: 1000,
            peer_factor,
        };
        let mut calm = Trunk::new(cfg("a", 20.0, 1000));
        calm.set_share(Some(share(1.0)));
        let mut slowed = Trunk::new(cfg("a", 20.0, 1000));
        slowed.set_share(Some(share(0.5)));
        let (fast, slow) = (admitted_in(&mut calm, 20), admitted_in(&mut slowed, 20));
        assert!((195..=210).contains(&fast), "{fast} in 20 s at 10 CPS");
        assert!((95..=110).contains(&slow), "{slow} in 20 s at 5 CPS");
    }

    #[test]
    fn ping_verdicts() {
        for good in [200, 404, 405, 481, 486] {
            assert!(ping_ok(good), "{good}");
        }
        for bad in [408, 500, 503, 504, 600] {
            assert!(!ping_ok(bad), "{bad}");
        }
    }

    #[test]
    fn hysteresis() {
        let mut h = Health::new(Hysteresis::default());
        assert_eq!(h.on_ping(false), None);
        assert_eq!(h.on_ping(false), None);
        assert_eq!(h.on_ping(true), None); // streak broken
        assert_eq!(h.on_ping(false), None);
        assert_eq!(h.on_ping(false), None);
        assert_eq!(h.on_ping(false), Some(false));
        assert!(!h.is_up());
        assert_eq!(h.on_ping(true), None);
        assert_eq!(h.on_ping(true), Some(true));
    }

    #[test]
    fn channels_and_down_block_admission() {
        let t0 = Instant::now();
        let mut t = Trunk::new(cfg("a", 100.0, 2));
        t.reserve_channel();
        assert!(t.take_token(t0));
        t.reserve_channel();
        assert!(t.take_token(t0 + Duration::from_millis(10)));
        assert!(!t.available(t0 + Duration::from_millis(20)));
        t.release(t0 + Duration::from_millis(30), Signal::Ok);
        assert!(t.available(t0 + Duration::from_millis(40)));
        for i in 0..3 {
            t.on_ping(t0 + Duration::from_secs(i), false);
        }
        assert!(!t.available(t0 + Duration::from_secs(5)));
        assert!(t.effective_cps(t0 + Duration::from_secs(5)) <= 20.0 + 1e-9);
    }
}

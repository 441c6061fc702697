//! Which source a call's media is accepted from (source locking), per trunk.
//!
//! Two policies, chosen per trunk with `media_latch`:
//! - [`MediaLatch::Sdp`] (the default): media is accepted only from the host the callee's SDP
//!   names; the first valid RTP packet from it locks the source (address and SSRC). Safe: a
//!   stranger who guesses the port cannot inject audio or key presses. But a callee behind NAT,
//!   or a softphone that advertises another interface, is never heard.
//! - [`MediaLatch::Symmetric`] (RFC 4961 symmetric RTP, what carriers' SBCs do): during the
//!   first [`SYMMETRIC_LATCH_WINDOW`] of the call, the first valid RTP packet from *any* address
//!   locks the source, and our own RTP is then sent to that address, which is the one a NAT
//!   opened. The trade-off: during that window whoever reaches the port first (an attacker who
//!   guesses it) wins the call's media; choose it for trunks whose media comes through an SBC or
//!   callees known to sit behind NAT.
//!
//! Only datagrams that [`super::demux::classify`] calls RTP reach [`Latch::on_rtp`]: STUN, DTLS
//! and garbage never lock a source. Sans-IO: time is an argument.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How long after the media starts a symmetric-RTP call may latch onto an address other than
/// the SDP's: long enough for a callee's first packet (which follows the 200 OK within a few
/// hundred milliseconds, or after its ICE checks), short enough that a hijack cannot happen
/// in the middle of the call.
pub const SYMMETRIC_LATCH_WINDOW: Duration = Duration::from_secs(5);

/// A trunk's source-locking policy (config key `media_latch`). See the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaLatch {
    /// Accept media from the SDP's host only.
    #[default]
    Sdp,
    /// RFC 4961: latch onto the first valid RTP source, and send there.
    Symmetric,
}

/// What to do with a received RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// From the locked source: use it.
    Accept,
    /// Use it; it has just locked the source at an address other than the SDP's, so our
    /// RTP must go there from now on (symmetric RTP).
    AcceptAndSendTo(SocketAddr),
    /// Not from the locked (or lockable) source: drop and count it.
    Drop,
}

/// One call's source lock.
#[derive(Debug, Clone, Copy)]
pub struct Latch {
    mode: MediaLatch,
    sdp: SocketAddr,
    started: Instant,
    locked: Option<(SocketAddr, u32)>,
}

impl Latch {
    /// A call whose SDP names `sdp`, whose media started at `now`.
    pub fn new(mode: MediaLatch, sdp: SocketAddr, now: Instant) -> Latch {
        Latch {
            mode,
            sdp,
            started: now,
            locked: None,
        }
    }

    /// The locked source (address and SSRC), if any.
    pub fn locked(&self) -> Option<(SocketAddr, u32)> {
        self.locked
    }

    /// Decides about a valid RTP packet from `from` with `ssrc`, received at `now`.
    pub fn on_rtp(&mut self, now: Instant, from: SocketAddr, ssrc: u32) -> Verdict {
        if let Some((addr, s)) = self.locked {
            return if addr == from && s == ssrc {
                Verdict::Accept
            } else {
                Verdict::Drop
            };
        }
        let in_window = now.saturating_duration_since(self.started) <= SYMMETRIC_LATCH_WINDOW;
        if from.ip() == self.sdp.ip() {
            self.locked = Some((from, ssrc));
            if self.mode == MediaLatch::Symmetric && in_window && from != self.sdp {
                return Verdict::AcceptAndSendTo(from);
            }
            return Verdict::Accept;
        }
        if self.mode == MediaLatch::Symmetric && in_window {
            self.locked = Some((from, ssrc));
            return Verdict::AcceptAndSendTo(from);
        }
        Verdict::Drop
    }

    /// Whether RTCP from `from` is accepted: from the SDP's host, or from the locked one.
    pub fn allows_rtcp(&self, from: SocketAddr) -> bool {
        from.ip() == self.sdp.ip() || self.locked.is_some_and(|(a, _)| a.ip() == from.ip())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn sdp_mode_locks_the_first_packet_from_the_sdp_host_only() {
        let t = Instant::now();
        let mut l = Latch::new(MediaLatch::Sdp, a("192.0.2.1:4000"), t);
        assert_eq!(l.on_rtp(t, a("198.51.100.7:4000"), 1), Verdict::Drop);
        assert_eq!(l.locked(), None, "a stranger never locks");
        assert_eq!(l.on_rtp(t, a("192.0.2.1:4002"), 9), Verdict::Accept);
        assert_eq!(l.on_rtp(t, a("192.0.2.1:4002"), 9), Verdict::Accept);
        // Another port or SSRC after the lock: dropped.
        assert_eq!(l.on_rtp(t, a("192.0.2.1:4000"), 9), Verdict::Drop);
        assert_eq!(l.on_rtp(t, a("192.0.2.1:4002"), 8), Verdict::Drop);
        assert!(l.allows_rtcp(a("192.0.2.1:4001")));
        assert!(!l.allows_rtcp(a("198.51.100.7:4001")));
    }

    #[test]
    fn symmetric_mode_latches_any_source_within_the_window_and_sends_there() {
        let t = Instant::now();
        let mut l = Latch::new(MediaLatch::Symmetric, a("10.0.0.5:4000"), t);
        let nat = a("203.0.113.9:61000");
        assert_eq!(
            l.on_rtp(t + Duration::from_millis(300), nat, 42),
            Verdict::AcceptAndSendTo(nat)
        );
        assert_eq!(
            l.on_rtp(t + Duration::from_secs(60), nat, 42),
            Verdict::Accept
        );
        assert_eq!(l.on_rtp(t, a("10.0.0.5:4000"), 42), Verdict::Drop);
        assert!(l.allows_rtcp(a("203.0.113.9:61001")));
    }

    #[test]
    fn symmetric_mode_after_the_window_behaves_like_sdp() {
        let t = Instant::now();
        let mut l = Latch::new(MediaLatch::Symmetric, a("10.0.0.5:4000"), t);
        let late = t + SYMMETRIC_LATCH_WINDOW + Duration::from_millis(1);
        assert_eq!(l.on_rtp(late, a("203.0.113.9:61000"), 1), Verdict::Drop);
        assert_eq!(l.on_rtp(late, a("10.0.0.5:4000"), 1), Verdict::Accept);
    }

    #[test]
    fn config_words() {
        #[derive(Deserialize)]
        struct T {
            #[serde(default)]
            media_latch: MediaLatch,
        }
        let t: T = toml::from_str("media_latch = \"symmetric\"").unwrap();
        assert_eq!(t.media_latch, MediaLatch::Symmetric);
        let t: T = toml::from_str("").unwrap();
        assert_eq!(t.media_latch, MediaLatch::Sdp);
        assert!(toml::from_str::<T>("media_latch = \"nat\"").is_err());
    }
}

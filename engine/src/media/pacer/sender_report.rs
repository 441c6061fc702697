//! RTCP sender reports of the paced streams (RFC 3550 §6.4.1): the NTP/RTP timestamp pair
//! of "now" and the stream's counts, written straight into the send batch.

use std::net::SocketAddr;

use super::{Entry, PacerConfig};
use crate::media::batch::{Batch, BatchItem, PacketKind};
use crate::media::rtcp;

/// Writes a Sender Report (with SDES, and BYE at the end of the stream) for `e` into the
/// batch, addressed to its RTCP destination.
pub(super) fn queue_sr(
    cfg: &PacerConfig,
    e: &Entry,
    rtcp_dest: SocketAddr,
    now_ns: u64,
    due_ns: u64,
    bye: bool,
    batch: &mut Batch,
) {
    let len = rtcp::write_sr(
        batch.next_buf(),
        &rtcp::SenderInfo {
            ssrc: e.stream.params().ssrc,
            ntp: ntp_add(cfg.ntp_at_origin, now_ns),
            rtp_ts: rtp_ts_at(e, now_ns),
            packets: e.stream.packets_sent() as u32,
            octets: e.stream.octets_sent() as u32,
        },
        &cfg.cname,
        bye,
    );
    if len > 0 {
        batch.push(BatchItem {
            route: e.route,
            dest: rtcp_dest,
            len: len as u16,
            due_ns,
            kind: PacketKind::Rtcp,
        });
    }
}

/// The RTP timestamp that corresponds to `now_ns` (for sender reports).
fn rtp_ts_at(e: &Entry, now_ns: u64) -> u32 {
    let elapsed = now_ns.saturating_sub(e.start_ns);
    let ticks = (u128::from(elapsed) * u128::from(e.clock_rate) / 1_000_000_000) as u32;
    e.stream.params().first_timestamp.wrapping_add(ticks)
}

/// Adds nanoseconds to a 64-bit NTP timestamp (32.32 fixed point seconds).
pub fn ntp_add(ntp: u64, ns: u64) -> u64 {
    let secs = ns / 1_000_000_000;
    let frac = ((ns % 1_000_000_000) << 32) / 1_000_000_000;
    ntp.wrapping_add((secs << 32) | frac)
}

/// The NTP timestamp (RFC 5905 era 0) of a system time.
pub fn ntp_from_system(t: std::time::SystemTime) -> u64 {
    const UNIX_TO_NTP: u64 = 2_208_988_800;
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    ntp_add(UNIX_TO_NTP << 32, d.as_nanos() as u64)
}

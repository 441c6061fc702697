//! RTP media: per-call stream state that is a few integers, the sans-IO pacer that schedules
//! every call's packets on one timing wheel, RTCP, what a received datagram is and whom to
//! accept it from, and RFC 4733 / SIP INFO DTMF decoding. The sockets and the pacing clock live
//! in [`crate::net`].

pub mod amd;
pub mod batch;
pub mod demux;
pub mod dtmf;
pub mod latch;
pub mod pacer;
pub mod rtcp;
pub mod srtp;
pub mod stream;
pub mod tap;

pub use batch::{Batch, BatchItem, PacketKind};
pub use demux::{classify, Datagram};
pub use dtmf::{DtmfDecoder, DtmfEvent, DtmfSource};
pub use latch::{Latch, MediaLatch, Verdict};
pub use pacer::{Pacer, PacerConfig, PacerEvent, StreamId, StreamSpec};
pub use stream::{RtpStream, Segment, StreamParams};
pub use tap::{AudioTap, Decoded, Recording};

/// The next number of a xorshift64* generator whose state is `state` (never 0): cheap,
/// deterministic from a seed, and enough for spreading timers or picking test dispositions
/// where no cryptographic randomness is needed.
pub fn xorshift64_star(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

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
pub mod stream;
pub mod tap;

pub use batch::{Batch, BatchItem, PacketKind};
pub use demux::{classify, Datagram};
pub use dtmf::{DtmfDecoder, DtmfEvent, DtmfSource};
pub use latch::{Latch, MediaLatch, Verdict};
pub use pacer::{Pacer, PacerConfig, PacerEvent, StreamId, StreamSpec};
pub use stream::{RtpStream, Segment, StreamParams};
pub use tap::{AudioTap, Decoded, Recording};

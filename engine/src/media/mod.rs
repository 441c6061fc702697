//! RTP media: per-call stream state that is a few integers, the sans-IO pacer that schedules
//! every call's packets on one timing wheel, RTCP, and RFC 4733 / SIP INFO DTMF decoding.
//! The sockets and the pacing clock live in [`crate::net`].

pub mod dtmf;
pub mod pacer;
pub mod rtcp;
pub mod stream;

pub use dtmf::{DtmfDecoder, DtmfEvent, DtmfSource};
pub use pacer::{
    Batch, BatchItem, Pacer, PacerConfig, PacerEvent, PacketKind, StreamId, StreamSpec,
};
pub use stream::{RtpStream, StreamParams};

//! RTP media: per-call stream state that is a few integers, and packet building into a
//! caller's buffer. The sockets and the pacing clock live in [`crate::net`].

pub mod stream;

pub use stream::{RtpStream, StreamParams};

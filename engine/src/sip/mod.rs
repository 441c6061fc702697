//! Sans-IO SIP: message codec, URIs, SDP, digest authentication, transactions, dialogs.
//!
//! Nothing in this module opens a socket, spawns a task or reads a clock: time comes in as
//! an argument and bytes go out through `poll_*` methods, so every path runs in tests on
//! virtual time.

pub mod auth;
pub mod builder;
pub mod endpoint;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod headers;
pub mod message;
pub mod outcome;
pub mod params;
pub mod sdp;
pub mod stream;
pub mod text;
pub mod timer;
pub mod transaction;
pub mod uri;

pub use builder::MessageWriter;
pub use error::ParseError;
pub use headers::{CSeq, Header, HeaderName, Method, NameAddr, SessionExpires, Via};
pub use message::{parse, parse_framed, stream_message_len, Headers, Message, Request, Response};
pub use params::Params;
pub use uri::{Host, Scheme, Uri};

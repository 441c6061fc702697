//! Errors of the SIP codec.

use thiserror::Error;

/// Why a message, header or URI was rejected. Each variant names the part at fault so a
/// 400 response can say what was wrong (its reason phrase is built from this).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// The input ended before the header section did.
    #[error("incomplete message")]
    Incomplete,
    /// The request or status line is malformed.
    #[error("bad start line: {0}")]
    StartLine(&'static str),
    /// The protocol version is not SIP/2.0 (answered with 505).
    #[error("unsupported SIP version")]
    Version,
    /// A header line is malformed.
    #[error("bad header line")]
    HeaderLine,
    /// A header section or message is not valid UTF-8 where text is required.
    #[error("invalid UTF-8 in header section")]
    Utf8,
    /// A known header has a value that breaks its grammar.
    #[error("bad {0} header")]
    Header(&'static str),
    /// A URI breaks its grammar.
    #[error("bad URI: {0}")]
    Uri(&'static str),
    /// A parameter list is malformed.
    #[error("bad parameter")]
    Param,
    /// Content-Length says more octets than the datagram holds, or is not a number.
    #[error("bad Content-Length")]
    ContentLength,
    /// A header required for the operation is absent.
    #[error("missing {0} header")]
    Missing(&'static str),
    /// A header that must appear once appears with several values.
    #[error("several {0} values")]
    Multiple(&'static str),
}

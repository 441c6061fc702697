//! Serializing the messages we send.
//!
//! Outgoing messages are written straight into one byte buffer with their final layout; a
//! transaction keeps that buffer for retransmission, so a message is formatted once.

use std::fmt::Display;
use std::io::Write;

use super::headers::HeaderName;
use super::message::Request;

/// Writes a request or response, header by header, into a buffer.
#[derive(Debug)]
pub struct MessageWriter {
    buf: Vec<u8>,
}

impl MessageWriter {
    /// Starts a request: `METHOD uri SIP/2.0`.
    pub fn request(method: &str, uri: impl Display) -> Self {
        let mut buf = Vec::with_capacity(1024);
        let _ = write!(buf, "{method} {uri} SIP/2.0\r\n");
        MessageWriter { buf }
    }

    /// Starts a response: `SIP/2.0 code reason`.
    pub fn response(status: u16, reason: &str) -> Self {
        let mut buf = Vec::with_capacity(512);
        let _ = write!(buf, "SIP/2.0 {status} {reason}\r\n");
        MessageWriter { buf }
    }

    /// Starts a response to `req` with the headers RFC 3261 §8.2.6.2 copies: every Via,
    /// From, To (with `to_tag` added when it has none), Call-ID and CSeq.
    pub fn response_to(req: &Request<'_>, status: u16, reason: &str, to_tag: Option<&str>) -> Self {
        let mut w = Self::response(status, reason);
        for v in req.headers.values(HeaderName::Via) {
            w = w.header("Via", v);
        }
        if let Some(f) = req.headers.first(HeaderName::From) {
            w = w.header("From", f);
        }
        if let Some(t) = req.headers.first(HeaderName::To) {
            let has_tag = req.headers.to().map(|t| t.tag().is_some()).unwrap_or(true);
            match to_tag {
                Some(tag) if !has_tag => {
                    // A To with an empty parameter list (`<sip:b@h>;`) parses; appending
                    // `;tag=` to it as written would make `;;`, which does not.
                    let t = t.trim_end_matches(|c: char| c == ';' || c.is_ascii_whitespace());
                    let _ = write!(w.buf, "To: {t};tag={tag}\r\n");
                }
                _ => w = w.header("To", t),
            }
        }
        if let Some(c) = req.headers.first(HeaderName::CallId) {
            w = w.header("Call-ID", c);
        }
        if let Some(c) = req.headers.first(HeaderName::CSeq) {
            w = w.header("CSeq", c);
        }
        w
    }

    /// Appends a header line.
    pub fn header(mut self, name: &str, value: impl Display) -> Self {
        let _ = write!(self.buf, "{name}: {value}\r\n");
        self
    }

    /// Appends a header line in place.
    pub fn push_header(&mut self, name: &str, value: impl Display) {
        let _ = write!(self.buf, "{name}: {value}\r\n");
    }

    /// Ends the header section with Content-Length 0.
    pub fn finish(self) -> Vec<u8> {
        self.finish_with_body(None, &[])
    }

    /// Appends Content-Type (when given) and Content-Length, then the body.
    pub fn finish_with_body(mut self, content_type: Option<&str>, body: &[u8]) -> Vec<u8> {
        if let Some(ct) = content_type {
            let _ = write!(self.buf, "Content-Type: {ct}\r\n");
        }
        let _ = write!(self.buf, "Content-Length: {}\r\n\r\n", body.len());
        self.buf.extend_from_slice(body);
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{parse, Message};

    #[test]
    fn round_trip() {
        let bytes = MessageWriter::request("OPTIONS", "sip:carrier.example.com")
            .header("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKabc;rport")
            .header("Max-Forwards", 70)
            .header("From", "<sip:dialer@127.0.0.1>;tag=x1")
            .header("To", "<sip:carrier.example.com>")
            .header("Call-ID", "c1@127.0.0.1")
            .header("CSeq", "1 OPTIONS")
            .finish();
        let Message::Request(req) = parse(&bytes).unwrap() else {
            panic!()
        };
        let resp = MessageWriter::response_to(&req, 200, "OK", Some("t9")).finish();
        let Message::Response(r) = parse(&resp).unwrap() else {
            panic!()
        };
        assert_eq!(r.status, 200);
        assert_eq!(r.headers.to().unwrap().tag(), Some("t9"));
        assert_eq!(r.headers.call_id().unwrap(), "c1@127.0.0.1");
    }
}

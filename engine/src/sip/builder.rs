//! Serializing the messages we send.
//!
//! Outgoing messages are written straight into one byte buffer with their final layout; a
//! transaction keeps that buffer for retransmission, so a message is formatted once. Names,
//! separators and string values are copied as bytes; only a value that is not already text
//! (a number, an address) goes through the formatting machinery, and then through a
//! `fmt::Write` view of the buffer rather than `io::Write`, whose adapter tracks I/O errors
//! that a `Vec` never has.

use std::fmt;

use super::headers::HeaderName;
use super::message::Request;

/// Writes a request or response, header by header, into a buffer.
#[derive(Debug)]
pub struct MessageWriter {
    buf: Vec<u8>,
}

impl MessageWriter {
    /// Starts a request: `METHOD uri SIP/2.0`.
    pub fn request(method: &str, uri: &str) -> Self {
        let mut w = MessageWriter {
            buf: Vec::with_capacity(1024),
        };
        for part in [method, " ", uri, " SIP/2.0\r\n"] {
            w.text(part);
        }
        w
    }

    /// Starts a response: `SIP/2.0 code reason`.
    pub fn response(status: u16, reason: &str) -> Self {
        let mut w = MessageWriter {
            buf: Vec::with_capacity(512),
        };
        w.text("SIP/2.0 ");
        status.write_to(&mut w.buf);
        w.text(" ");
        w.text(reason);
        w.text("\r\n");
        w
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
                    for part in ["To: ", t, ";tag=", tag, "\r\n"] {
                        w.text(part);
                    }
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
    pub fn header(mut self, name: &str, value: impl HeaderValue) -> Self {
        self.push_header(name, value);
        self
    }

    /// Appends a header line in place.
    pub fn push_header(&mut self, name: &str, value: impl HeaderValue) {
        self.text(name);
        self.text(": ");
        value.write_to(&mut self.buf);
        self.text("\r\n");
    }

    fn text(&mut self, s: &str) {
        self.buf.extend_from_slice(s.as_bytes());
    }

    /// Ends the header section with Content-Length 0.
    pub fn finish(self) -> Vec<u8> {
        self.finish_with_body(None, &[])
    }

    /// Appends Content-Type (when given) and Content-Length, then the body.
    pub fn finish_with_body(mut self, content_type: Option<&str>, body: &[u8]) -> Vec<u8> {
        if let Some(ct) = content_type {
            self.push_header("Content-Type", ct);
        }
        self.text("Content-Length: ");
        body.len().write_to(&mut self.buf);
        self.text("\r\n\r\n");
        self.buf.extend_from_slice(body);
        self.buf
    }
}

/// A header value: text is copied as bytes, a number written through itoa, and only
/// `format_args!` goes through the formatting machinery (whose pass cost more than the
/// copy for every header of every message when all values took it).
pub trait HeaderValue {
    /// Appends the value to a message being written.
    fn write_to(self, buf: &mut Vec<u8>);
}

/// Text by reference: `&str`, `&String`, `&&str`.
impl<T: AsRef<str> + ?Sized> HeaderValue for &T {
    fn write_to(self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(self.as_ref().as_bytes());
    }
}

impl HeaderValue for String {
    fn write_to(self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(self.as_bytes());
    }
}

impl HeaderValue for fmt::Arguments<'_> {
    fn write_to(self, buf: &mut Vec<u8>) {
        let _ = fmt::write(&mut Bytes(buf), self);
    }
}

/// A CSeq value, `4711 INVITE`: the number (itoa), then the method's name.
pub struct SeqMethod<'a>(pub u32, pub &'a str);

impl HeaderValue for SeqMethod<'_> {
    fn write_to(self, buf: &mut Vec<u8>) {
        self.0.write_to(buf);
        buf.push(b' ');
        buf.extend_from_slice(self.1.as_bytes());
    }
}

/// A URI in angle brackets, `<sip:...>`: a To or From without a display name.
pub struct Angled<'a>(pub &'a str);

impl HeaderValue for Angled<'_> {
    fn write_to(self, buf: &mut Vec<u8>) {
        buf.push(b'<');
        buf.extend_from_slice(self.0.as_bytes());
        buf.push(b'>');
    }
}

macro_rules! decimal_header_value {
    ($($t:ty),*) => {$(
        impl HeaderValue for $t {
            fn write_to(self, buf: &mut Vec<u8>) {
                buf.extend_from_slice(itoa::Buffer::new().format(self).as_bytes());
            }
        }
    )*};
}

decimal_header_value!(u16, u32, u64, usize);

/// A literal such as `70` (Max-Forwards) is an `i32`.
impl HeaderValue for i32 {
    fn write_to(self, buf: &mut Vec<u8>) {
        if self < 0 {
            buf.push(b'-');
        }
        (self.unsigned_abs()).write_to(buf);
    }
}

/// Appends an IP address as text (IPv6 in the RFC 5952 form `Display` gives). Our own
/// address goes into every Via, Contact, Call-ID and SDP offer: an IPv4 address is written
/// octet by octet (itoa), a tenth of the cost of going through `fmt`.
pub(crate) fn push_ip(s: &mut String, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                push_decimal(s, octet);
            }
        }
        std::net::IpAddr::V6(v6) => {
            let _ = fmt::write(s, format_args!("{v6}"));
        }
    }
}

/// Appends `host:port` as bytes (an IPv6 host in brackets), for header values written
/// straight into a message (our own Via and Contact) without a `String` between.
pub(crate) fn write_host_port(buf: &mut Vec<u8>, a: std::net::SocketAddr) {
    match a.ip() {
        std::net::IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf.push(b'.');
                }
                buf.extend_from_slice(itoa::Buffer::new().format(octet).as_bytes());
            }
        }
        std::net::IpAddr::V6(v6) => {
            let _ = fmt::write(&mut Bytes(buf), format_args!("[{v6}]"));
        }
    }
    buf.push(b':');
    buf.extend_from_slice(itoa::Buffer::new().format(a.port()).as_bytes());
}

/// Appends `n` in decimal (itoa writes two digits per step from a table; the numbers of a
/// message, its ports, octets, CSeq and SDP fields, are a few hundred a call).
pub(crate) fn push_decimal(s: &mut String, n: impl itoa::Integer) {
    s.push_str(itoa::Buffer::new().format(n));
}

/// The buffer as a `fmt::Write` sink.
struct Bytes<'a>(&'a mut Vec<u8>);

impl fmt::Write for Bytes<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{parse, Message};

    #[test]
    fn numbers_are_written_as_display_writes_them() {
        fn text(v: impl HeaderValue) -> String {
            let mut buf = Vec::new();
            v.write_to(&mut buf);
            String::from_utf8(buf).expect("ASCII")
        }
        for n in [0u64, 7, 10, 70, 65_535, 4_294_967_295, u64::MAX] {
            assert_eq!(text(n), n.to_string());
            assert_eq!(text(n as usize), n.to_string());
        }
        assert_eq!(text(u16::MAX), "65535");
        assert_eq!(text(u32::MAX), "4294967295");
        for n in [0i32, 70, -1, i32::MIN, i32::MAX] {
            assert_eq!(text(n), n.to_string());
        }
        assert_eq!(text(format_args!("{} INVITE", 12)), "12 INVITE");
        assert_eq!(text(SeqMethod(4711, "INVITE")), "4711 INVITE");
        assert_eq!(text(Angled("sip:a@b")), "<sip:a@b>");
    }

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

    #[test]
    fn numbers_and_addresses_are_written_as_fmt_would() {
        for ip in [
            "127.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "2001:db8::7",
        ] {
            let ip: std::net::IpAddr = ip.parse().expect("an address");
            let mut s = String::new();
            push_ip(&mut s, ip);
            assert_eq!(s, ip.to_string());
        }
        for n in [0, 7, 10, 65_535, u64::MAX] {
            let mut s = String::new();
            push_decimal(&mut s, n);
            assert_eq!(s, n.to_string());
        }
    }
}

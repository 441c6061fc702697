//! Framing SIP over a byte stream (TCP), bounded and in linear time.
//!
//! A stream peer is not trusted: it may declare a `Content-Length` of a gigabyte, never end
//! its headers, or send megabytes of CRLF keep-alives. [`StreamFramer`] keeps at most one
//! message of [`StreamFramer::max_message`] bytes (plus the chunk being pushed), looks at
//! every byte a bounded number of times, and answers RFC 5626 keep-alives: a double CRLF
//! ("ping") between messages is reported as [`Frame::Ping`], to be answered with one CRLF.

use super::builder::MessageWriter;
use super::message::{parse_framed, Message};

/// Default largest message accepted over a stream (headers and body), bytes.
pub const DEFAULT_MAX_MESSAGE: usize = 64 * 1024;

/// What the framer found at the front of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A whole SIP message (headers and exactly `Content-Length` body bytes).
    Message(Vec<u8>),
    /// A double-CRLF keep-alive ping: answer with a single CRLF (RFC 5626 §4.4.1).
    Ping,
    /// A single CRLF between messages: a keep-alive pong or padding, nothing to do.
    Pong,
}

/// Why the stream cannot go on; the connection is to be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The message is larger than the limit (declared or buffered). `reply` is a 413 to send
    /// before closing when the request's headers were readable.
    #[error("message larger than {limit} bytes")]
    TooLarge {
        /// The limit in force.
        limit: usize,
        /// A `413 Request Entity Too Large` for the request, when it could be built.
        reply: Option<Vec<u8>>,
    },
    /// The header section cannot be framed (bad or conflicting `Content-Length`).
    #[error("unframeable message: {0}")]
    Malformed(&'static str),
}

/// Splits a byte stream into SIP messages. Push bytes as they arrive, then call
/// [`StreamFramer::next_frame`] until it returns `Ok(None)`.
#[derive(Debug)]
pub struct StreamFramer {
    buf: Vec<u8>,
    /// Bytes at the front of `buf` already handed out.
    start: usize,
    /// Bytes after `start` already searched for the end of the headers without success.
    scanned: usize,
    /// Total length of the message at `start` once its headers are complete.
    pending_total: Option<usize>,
    max_message: usize,
}

impl StreamFramer {
    /// A framer that refuses messages larger than `max_message` bytes.
    pub fn new(max_message: usize) -> Self {
        StreamFramer {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            pending_total: None,
            max_message,
        }
    }

    /// The size limit.
    pub fn max_message(&self) -> usize {
        self.max_message
    }

    /// Bytes held for a message not yet complete (what a peer costs us in memory).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Whether part of a message has arrived (the header-read timeout runs).
    pub fn in_message(&self) -> bool {
        self.buf.len() > self.start
    }

    /// Appends bytes read from the stream. Frames already handed out are dropped first, so
    /// the buffer never holds more than one partial message and this chunk.
    pub fn push(&mut self, data: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next frame, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.pending_total.is_none() && self.scanned == 0 {
            if let Some(f) = self.keep_alive() {
                return Ok(f);
            }
        }
        let rest = &self.buf[self.start..];
        let total = match self.pending_total {
            Some(t) => t,
            None => {
                let from = self.scanned.saturating_sub(3);
                let Some(end) = find_crlf2(&rest[from..]).map(|i| from + i) else {
                    self.scanned = rest.len();
                    if rest.len() > self.max_message {
                        return Err(self.too_large(None));
                    }
                    return Ok(None);
                };
                let head = &rest[..end];
                let body = content_length(head)?;
                let total = end
                    .checked_add(4)
                    .and_then(|t| t.checked_add(body))
                    .filter(|&t| t <= self.max_message);
                let Some(total) = total else {
                    return Err(self.too_large(Some(end)));
                };
                self.pending_total = Some(total);
                total
            }
        };
        if rest.len() < total {
            return Ok(None);
        }
        let msg = rest[..total].to_vec();
        self.start += total;
        self.scanned = 0;
        self.pending_total = None;
        Ok(Some(Frame::Message(msg)))
    }

    /// Consumes CR/LF between messages. `Some(None)`: wait for more bytes; `Some(frame)`:
    /// a keep-alive; `None`: a message starts here.
    fn keep_alive(&mut self) -> Option<Option<Frame>> {
        let rest = &self.buf[self.start..];
        match rest {
            [] => Some(None),
            [b'\r', b'\n', b'\r', b'\n', ..] => {
                self.start += 4;
                Some(Some(Frame::Ping))
            }
            [b'\r'] | [b'\r', b'\n'] | [b'\r', b'\n', b'\r'] => Some(None),
            [b'\r', b'\n', ..] => {
                self.start += 2;
                Some(Some(Frame::Pong))
            }
            // A stray CR or LF: skip it (lenient, as the datagram parser is).
            [b'\r' | b'\n', ..] => {
                self.start += 1;
                Some(Some(Frame::Pong))
            }
            _ => None,
        }
    }

    fn too_large(&self, head_end: Option<usize>) -> FrameError {
        // The head with its last line's CRLF, so that every line ends in CRLF.
        let reply = head_end.and_then(|end| reply_413(&self.buf[self.start..self.start + end + 2]));
        FrameError::TooLarge {
            limit: self.max_message,
            reply,
        }
    }
}

/// The index of the first CRLF CRLF.
fn find_crlf2(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + 3 < buf.len() {
        // Step by the LF positions: the third byte of the pattern.
        match buf[i + 3] {
            b'\n' if &buf[i..i + 4] == b"\r\n\r\n" => return Some(i),
            b'\n' | b'\r' => i += 1,
            _ => i += 4,
        }
    }
    None
}

/// The body length a header section declares (0 when absent). Conflicting values cannot
/// be framed; a value with more digits than any allowed message is too large.
fn content_length(head: &[u8]) -> Result<usize, FrameError> {
    let mut found: Option<usize> = None;
    for line in head.split(|&b| b == b'\n').skip(1) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let value = line[colon + 1..].trim_ascii();
        if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
            return Err(FrameError::Malformed("Content-Length"));
        }
        // Saturate: a 30-digit length is simply larger than any limit.
        let n = value.iter().fold(0usize, |n, &d| {
            n.saturating_mul(10).saturating_add(usize::from(d - b'0'))
        });
        if found.is_some_and(|f| f != n) {
            return Err(FrameError::Malformed("conflicting Content-Length"));
        }
        found = Some(n);
    }
    Ok(found.unwrap_or(0))
}

/// A 413 for a request whose header section is `head` (up to the blank line's CRLF):
/// the head is parsed with its Content-Length lines left out, so the codec's own
/// response builder copies Via, From, To, Call-ID and CSeq. `None` for responses, ACKs
/// and heads that do not parse.
fn reply_413(head: &[u8]) -> Option<Vec<u8>> {
    let mut bytes = Vec::with_capacity(head.len() + 4);
    for line in head.split_inclusive(|&b| b == b'\n') {
        let name = line
            .split(|&b| b == b':')
            .next()
            .unwrap_or(b"")
            .trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            continue;
        }
        bytes.extend_from_slice(line);
    }
    bytes.extend_from_slice(b"\r\n");
    match parse_framed(&bytes, true) {
        Ok((Message::Request(r), _)) if r.method != super::Method::Ack => {
            Some(MessageWriter::response_to(&r, 413, "Request Entity Too Large", None).finish())
        }
        _ => None,
    }
}

/// The body of the `sip_stream` fuzz target, shared with the corpus replay test: the
/// input is cut into chunks (sizes from its first byte) and framed with a small limit.
/// Checks that no frame or buffer exceeds the limit and that framing never hands out more
/// bytes than it was given. Not part of the engine's API.
#[doc(hidden)]
pub fn fuzz_exercise(data: &[u8]) {
    const LIMIT: usize = 2048;
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(first % 64) + 1;
    let mut f = StreamFramer::new(LIMIT);
    let mut framed = 0usize;
    for chunk in rest.chunks(step) {
        f.push(chunk);
        loop {
            match f.next_frame() {
                Ok(Some(Frame::Message(m))) => {
                    assert!(m.len() <= LIMIT, "frame beyond the limit");
                    framed += m.len();
                }
                Ok(Some(Frame::Ping)) => framed += 4,
                Ok(Some(Frame::Pong)) => framed += 1,
                Ok(None) => break,
                Err(FrameError::TooLarge { reply, .. }) => {
                    if let Some(r) = reply {
                        assert!(super::parse(&r).is_ok(), "413 does not parse");
                    }
                    return;
                }
                Err(FrameError::Malformed(_)) => return,
            }
            assert!(framed <= rest.len(), "framed more than given");
        }
        assert!(f.buffered() <= LIMIT + step, "buffer beyond the limit");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:dialer@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:dialer@127.0.0.1>\r\n\
Call-ID: c1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 4\r\n\r\nabcd";

    fn drain(f: &mut StreamFramer) -> Result<Vec<Frame>, FrameError> {
        let mut out = Vec::new();
        while let Some(fr) = f.next_frame()? {
            out.push(fr);
        }
        Ok(out)
    }

    #[test]
    fn frames_messages_split_anywhere() {
        let mut two = OPTIONS.to_vec();
        two.extend_from_slice(b"\r\n\r\n");
        two.extend_from_slice(OPTIONS);
        for cut in 0..two.len() {
            let mut f = StreamFramer::new(DEFAULT_MAX_MESSAGE);
            f.push(&two[..cut]);
            let mut frames = drain(&mut f).unwrap();
            f.push(&two[cut..]);
            frames.extend(drain(&mut f).unwrap());
            let msgs: Vec<_> = frames
                .iter()
                .filter(|f| matches!(f, Frame::Message(_)))
                .collect();
            assert_eq!(msgs.len(), 2, "cut at {cut}");
            assert_eq!(msgs[0], &Frame::Message(OPTIONS.to_vec()));
            assert!(frames.contains(&Frame::Ping), "cut at {cut}");
            assert_eq!(f.buffered(), 0);
        }
    }

    #[test]
    fn huge_content_length_is_refused_with_413_before_any_body() {
        let msg = String::from_utf8_lossy(OPTIONS)
            .replace("Content-Length: 4", "Content-Length: 999999999");
        let mut f = StreamFramer::new(DEFAULT_MAX_MESSAGE);
        f.push(msg.as_bytes());
        match f.next_frame() {
            Err(FrameError::TooLarge { reply: Some(r), .. }) => {
                let text = String::from_utf8(r).unwrap();
                assert!(text.starts_with("SIP/2.0 413 "), "{text}");
                assert!(text.contains("Call-ID: c1"), "{text}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn endless_headers_are_refused_at_the_limit() {
        let mut f = StreamFramer::new(1024);
        let line = b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
        f.push(b"INVITE sip:a@b SIP/2.0\r\n");
        let mut refused = false;
        for _ in 0..100 {
            f.push(line);
            match f.next_frame() {
                Ok(None) => assert!(f.buffered() <= 1024 + line.len()),
                Err(FrameError::TooLarge { reply: None, .. }) => {
                    refused = true;
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(refused);
    }

    #[test]
    fn bad_and_conflicting_lengths_are_malformed() {
        for cl in ["Content-Length: x1", "Content-Length: 4\r\nl: 5"] {
            let msg = String::from_utf8_lossy(OPTIONS).replace("Content-Length: 4", cl);
            let mut f = StreamFramer::new(DEFAULT_MAX_MESSAGE);
            f.push(msg.as_bytes());
            assert!(
                matches!(f.next_frame(), Err(FrameError::Malformed(_))),
                "{cl}"
            );
        }
    }

    #[test]
    fn crlf_keep_alives_cost_linear_work_and_no_memory() {
        // 16 MiB of CRLF in 8 KiB chunks: every double CRLF is one ping, nothing is kept.
        let chunk = b"\r\n".repeat(4096);
        let mut f = StreamFramer::new(DEFAULT_MAX_MESSAGE);
        let mut pings = 0usize;
        for _ in 0..2048 {
            f.push(&chunk);
            for fr in drain(&mut f).unwrap() {
                assert_eq!(fr, Frame::Ping);
                pings += 1;
            }
            assert!(f.buffered() < 4);
        }
        assert_eq!(pings, 16 * 1024 * 1024 / 4);
        f.push(OPTIONS);
        assert_eq!(
            drain(&mut f).unwrap(),
            vec![Frame::Message(OPTIONS.to_vec())]
        );
    }

    #[test]
    fn single_crlf_is_a_pong() {
        let mut f = StreamFramer::new(DEFAULT_MAX_MESSAGE);
        f.push(b"\r\n");
        assert_eq!(f.next_frame(), Ok(None));
        f.push(OPTIONS);
        assert_eq!(
            drain(&mut f).unwrap(),
            vec![Frame::Pong, Frame::Message(OPTIONS.to_vec())]
        );
    }

    #[test]
    fn crlf2_scanner_matches_naive() {
        let hay: Vec<u8> = (0..300u32)
            .map(|i| [b'\r', b'\n', b'a'][(i * 7 % 11 % 3) as usize])
            .collect();
        for s in 0..hay.len() {
            let h = &hay[s..];
            assert_eq!(find_crlf2(h), h.windows(4).position(|w| w == b"\r\n\r\n"));
        }
    }
}

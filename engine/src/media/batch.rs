//! A send batch: preallocated buffers for the packets a loop hands to the kernel in one
//! `sendmmsg`, with headroom in front of each for a raw-socket sender's IP and UDP headers.

use std::net::SocketAddr;

/// What kind of packet a batch item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// An RTP media packet.
    Rtp,
    /// An RTCP compound packet (SR, or SR + BYE).
    Rtcp,
}

/// One packet of a batch: where it goes and when it was due.
#[derive(Debug, Clone, Copy)]
pub struct BatchItem {
    /// The stream's `route` (socket index or source port).
    pub route: u32,
    /// Destination.
    pub dest: SocketAddr,
    /// Packet length (after the headroom).
    pub len: u16,
    /// When it was due, in nanoseconds since the pacer's origin.
    pub due_ns: u64,
    /// RTP or RTCP.
    pub kind: PacketKind,
}

/// Preallocated packet buffers: item `i`'s bytes sit at `i * stride + headroom`.
#[derive(Debug)]
pub struct Batch {
    buf: Vec<u8>,
    stride: usize,
    headroom: usize,
    items: Vec<BatchItem>,
    capacity: usize,
}

/// Largest RTP or RTCP packet the pacer writes (payload of 60 ms of G.711 plus header).
pub const MAX_PACKET: usize = 1024;
/// Room kept after every packet for what SRTP appends (the SRTCP index and the tag).
const TRAILER_ROOM: usize = crate::media::srtp::SRTCP_TRAILER_LEN;

impl Batch {
    /// A batch of `capacity` packets with `headroom` bytes before each.
    pub fn new(capacity: usize, headroom: usize) -> Batch {
        let stride = (headroom + MAX_PACKET + TRAILER_ROOM).next_multiple_of(64);
        Batch {
            buf: vec![0; stride * capacity.max(1)],
            stride,
            headroom,
            items: Vec::with_capacity(capacity.max(1)),
            capacity: capacity.max(1),
        }
    }

    /// Number of packets in the batch.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the batch holds no packet.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Empties the batch (keeps its memory).
    pub fn clear(&mut self) {
        self.items.clear();
    }

    /// The items, in order.
    pub fn items(&self) -> &[BatchItem] {
        &self.items
    }

    /// Packet `i`'s bytes.
    pub fn packet(&self, i: usize) -> &[u8] {
        let off = i * self.stride + self.headroom;
        &self.buf[off..off + usize::from(self.items[i].len)]
    }

    /// Packet `i` with its headroom in front, mutable (for a sender that writes headers).
    pub fn with_headroom_mut(&mut self, i: usize) -> &mut [u8] {
        let off = i * self.stride;
        let len = self.headroom + usize::from(self.items[i].len);
        &mut self.buf[off..off + len]
    }

    /// Rewrites packet `i` in place with `f(buffer, len) -> new len`, where the buffer
    /// holds the packet and the trailer room after it (SRTP protection). When `f` fails
    /// the packet is emptied: a packet of an encrypted call never leaves in clear.
    pub fn rewrite<E>(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut [u8], usize) -> Result<usize, E>,
    ) -> Result<(), E> {
        let off = i * self.stride + self.headroom;
        let len = usize::from(self.items[i].len);
        let buf = &mut self.buf[off..off + MAX_PACKET + TRAILER_ROOM];
        let r = f(buf, len);
        self.items[i].len = match &r {
            Ok(n) => (*n).min(MAX_PACKET + TRAILER_ROOM) as u16,
            Err(_) => 0,
        };
        r.map(|_| ())
    }

    /// Whether `n` more packets fit.
    pub(crate) fn has_room(&self, n: usize) -> bool {
        self.items.len() + n <= self.capacity
    }

    /// Appends an item whose bytes were written into [`Batch::next_buf`].
    pub(crate) fn push(&mut self, item: BatchItem) {
        self.items.push(item);
    }

    /// The buffer the next packet is written into.
    pub(crate) fn next_buf(&mut self) -> &mut [u8] {
        let off = self.items.len() * self.stride + self.headroom;
        &mut self.buf[off..off + MAX_PACKET]
    }
}

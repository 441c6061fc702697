//! SRTP and SRTCP (RFC 3711) with the one suite SIP trunks agree on, AES_CM_128_HMAC_SHA1_80,
//! keyed by SDES (RFC 4568, see [`crate::sip::sdp::crypto`]).
//!
//! Sans-IO and in place: [`SrtpSender::protect_rtp`] encrypts a packet where it lies in the
//! media pump's batch buffer and appends the 10-byte tag, so the batch path costs no copy and
//! no allocation; [`SrtpReceiver::unprotect_rtp`] checks the tag before it decrypts, and
//! refuses replays (a 64-packet window) and packets too short to hold a tag. The receiving
//! side estimates the rollover counter as RFC 3711 Appendix A says, so a stream survives its
//! sequence number wrapping and reordering around the wrap.
//!
//! The primitives are RustCrypto's (`aes`, `hmac`, `sha1`); what is written here is only the
//! packet transform. The keystream is AES in counter mode computed a few blocks at a time, so
//! the AES-NI pipeline is fed whole groups.

mod keys;
#[cfg(test)]
mod tests;

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes128;
use hmac::{Hmac, Mac};
use sha1::Sha1;

pub use keys::{MasterKey, MASTER_KEY_LEN, MASTER_SALT_LEN};

/// Bytes of the authentication tag (HMAC-SHA1 truncated to 80 bits).
pub const TAG_LEN: usize = 10;
/// Bytes SRTCP adds: the E flag with the 31-bit index, then the tag.
pub const SRTCP_TRAILER_LEN: usize = 4 + TAG_LEN;
/// Packets the replay window remembers behind the highest index seen.
const REPLAY_WINDOW: u64 = 64;
/// Fixed RTP header bytes (before CSRCs and extensions).
const RTP_HEADER: usize = 12;

/// Why a packet was refused or could not be protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    /// Shorter than a header plus a tag, or its header runs past its end.
    #[error("packet too short for SRTP")]
    Short,
    /// The buffer has no room for the tag.
    #[error("no room for the SRTP tag")]
    NoRoom,
    /// The tag does not match: forged, corrupted, or another key.
    #[error("SRTP authentication failed")]
    Auth,
    /// Seen before, or older than the replay window.
    #[error("SRTP replay")]
    Replay,
}

/// Session keys for one direction of RTP or RTCP, derived from a master key.
#[derive(Clone)]
struct SessionKeys {
    cipher: Aes128,
    salt: [u8; MASTER_SALT_LEN],
    auth: Hmac<Sha1>,
}

impl SessionKeys {
    /// RFC 3711 §4.3 labels: 0, 1, 2 for SRTP; 3, 4, 5 for SRTCP.
    fn derive(master: &MasterKey, first_label: u8) -> SessionKeys {
        let mut key = [0u8; 16];
        let mut salt = [0u8; MASTER_SALT_LEN];
        let mut auth = [0u8; 20];
        master.derive(first_label, &mut key);
        master.derive(first_label + 1, &mut auth);
        master.derive(first_label + 2, &mut salt);
        SessionKeys {
            cipher: Aes128::new(&key.into()),
            salt,
            auth: <Hmac<Sha1> as Mac>::new_from_slice(&auth).expect("HMAC takes any key length"),
        }
    }

    /// XORs the AES-CM keystream for (`ssrc`, `index`) into `data` (RFC 3711 §4.1.1).
    fn apply_keystream(&self, ssrc: u32, index: u64, data: &mut [u8]) {
        let mut iv = [0u8; 16];
        iv[..MASTER_SALT_LEN].copy_from_slice(&self.salt);
        for (b, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
            *b ^= s;
        }
        for (b, s) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
            *b ^= s;
        }
        let base = u128::from_be_bytes(iv);
        const GROUP: usize = 8;
        let mut counter = 0u128;
        for chunk in data.chunks_mut(16 * GROUP) {
            let mut blocks = [aes::Block::default(); GROUP];
            let n = chunk.len().div_ceil(16);
            for b in blocks.iter_mut().take(n) {
                *b = base.wrapping_add(counter).to_be_bytes().into();
                counter += 1;
            }
            self.cipher.encrypt_blocks(&mut blocks[..n]);
            for (d, k) in chunk.iter_mut().zip(blocks.iter().flat_map(|b| b.iter())) {
                *d ^= k;
            }
        }
    }

    /// The 80-bit tag over `data` followed by `trailer` (the ROC for SRTP, nothing for SRTCP).
    fn tag(&self, data: &[u8], trailer: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = self.auth.clone();
        mac.update(data);
        mac.update(trailer);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }
}

/// The RTP header's length (fixed part, CSRCs, extension), or `None` when it runs past `len`.
fn rtp_header_len(p: &[u8]) -> Option<usize> {
    if p.len() < RTP_HEADER {
        return None;
    }
    let mut n = RTP_HEADER + 4 * usize::from(p[0] & 0x0f);
    if p[0] & 0x10 != 0 {
        let words = u16::from_be_bytes([*p.get(n + 2)?, *p.get(n + 3)?]);
        n += 4 + 4 * usize::from(words);
    }
    (n <= p.len()).then_some(n)
}

/// The packet index a sequence number most likely stands for, given the highest sequence
/// number `s_l` and rollover counter `roc` seen so far (RFC 3711 Appendix A).
fn estimate_index(s_l: u16, roc: u32, seq: u16) -> u64 {
    let roc = i64::from(roc);
    let v = if s_l < 0x8000 {
        if i32::from(seq) - i32::from(s_l) > 0x8000 {
            roc - 1
        } else {
            roc
        }
    } else if i32::from(s_l) - 0x8000 > i32::from(seq) {
        roc + 1
    } else {
        roc
    };
    // A guess before the first rollover is a packet from before the stream began: keep the
    // arithmetic in range; its tag will not match.
    (v.max(0) as u64) << 16 | u64::from(seq)
}

/// Where a direction stands: the highest index seen and which of the last 64 arrived.
#[derive(Debug, Clone, Default)]
struct ReplayWindow {
    /// Highest index accepted, `None` before the first packet.
    top: Option<u64>,
    /// Bit `k` set: index `top - k` was accepted.
    seen: u64,
}

impl ReplayWindow {
    fn check(&self, index: u64) -> Result<(), SrtpError> {
        let Some(top) = self.top else { return Ok(()) };
        if index > top {
            return Ok(());
        }
        let back = top - index;
        if back >= REPLAY_WINDOW || self.seen & (1 << back) != 0 {
            return Err(SrtpError::Replay);
        }
        Ok(())
    }

    fn accept(&mut self, index: u64) {
        match self.top {
            Some(top) if index <= top => self.seen |= 1 << (top - index),
            Some(top) => {
                let shift = index - top;
                self.seen = if shift >= REPLAY_WINDOW {
                    0
                } else {
                    self.seen << shift
                };
                self.seen |= 1;
                self.top = Some(index);
            }
            None => {
                self.top = Some(index);
                self.seen = 1;
            }
        }
    }
}

/// Protects what we send: our RTP stream and our RTCP reports.
#[derive(Clone)]
pub struct SrtpSender {
    rtp: SessionKeys,
    rtcp: SessionKeys,
    /// Highest sequence number sent and the rollover counter (`None` before the first).
    last: Option<(u16, u32)>,
    /// Next SRTCP index (31 bits).
    rtcp_index: u32,
}

impl SrtpSender {
    /// Keys for the direction we send, from the key we offered or answered.
    pub fn new(master: &MasterKey) -> Self {
        SrtpSender {
            rtp: SessionKeys::derive(master, 0),
            rtcp: SessionKeys::derive(master, 3),
            last: None,
            rtcp_index: 0,
        }
    }

    /// Encrypts the RTP packet `buf[..len]` in place and appends its tag; returns the new
    /// length. `buf` must have [`TAG_LEN`] bytes of room after `len`.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let hdr = rtp_header_len(&buf[..len.min(buf.len())]).ok_or(SrtpError::Short)?;
        if buf.len() < len + TAG_LEN {
            return Err(SrtpError::NoRoom);
        }
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let index = match self.last {
            None => u64::from(seq),
            Some((s_l, roc)) => estimate_index(s_l, roc, seq),
        };
        let roc = (index >> 16) as u32;
        match self.last {
            Some((s_l, r)) if (roc, seq) <= (r, s_l) => {}
            _ => self.last = Some((seq, roc)),
        }
        self.rtp.apply_keystream(ssrc, index, &mut buf[hdr..len]);
        let tag = self.rtp.tag(&buf[..len], &roc.to_be_bytes());
        buf[len..len + TAG_LEN].copy_from_slice(&tag);
        Ok(len + TAG_LEN)
    }

    /// Encrypts the compound RTCP packet `buf[..len]` in place and appends the SRTCP index
    /// and tag; returns the new length. `buf` needs [`SRTCP_TRAILER_LEN`] bytes of room.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        if len < 8 || len > buf.len() {
            return Err(SrtpError::Short);
        }
        if buf.len() < len + SRTCP_TRAILER_LEN {
            return Err(SrtpError::NoRoom);
        }
        let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let index = self.rtcp_index;
        self.rtcp_index = (self.rtcp_index + 1) & 0x7fff_ffff;
        self.rtcp
            .apply_keystream(ssrc, u64::from(index), &mut buf[8..len]);
        buf[len..len + 4].copy_from_slice(&(index | 0x8000_0000).to_be_bytes());
        let tag = self.rtcp.tag(&buf[..len + 4], &[]);
        buf[len + 4..len + SRTCP_TRAILER_LEN].copy_from_slice(&tag);
        Ok(len + SRTCP_TRAILER_LEN)
    }
}

/// Checks and decrypts what the far end sends, with the key from its SDP.
#[derive(Clone)]
pub struct SrtpReceiver {
    rtp: SessionKeys,
    rtcp: SessionKeys,
    /// Highest sequence number accepted and the rollover counter (`None` before the first).
    last: Option<(u16, u32)>,
    rtp_window: ReplayWindow,
    rtcp_window: ReplayWindow,
}

impl SrtpReceiver {
    /// Keys for the direction we receive, from the far end's `a=crypto` key.
    pub fn new(master: &MasterKey) -> Self {
        SrtpReceiver {
            rtp: SessionKeys::derive(master, 0),
            rtcp: SessionKeys::derive(master, 3),
            last: None,
            rtp_window: ReplayWindow::default(),
            rtcp_window: ReplayWindow::default(),
        }
    }

    /// Authenticates and decrypts the SRTP packet `buf` in place; returns the RTP packet's
    /// length (without the tag). Nothing is changed when it is refused.
    pub fn unprotect_rtp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let len = buf.len().checked_sub(TAG_LEN).ok_or(SrtpError::Short)?;
        let hdr = rtp_header_len(&buf[..len]).ok_or(SrtpError::Short)?;
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let index = match self.last {
            None => u64::from(seq),
            Some((s_l, roc)) => estimate_index(s_l, roc, seq),
        };
        self.rtp_window.check(index)?;
        let roc = (index >> 16) as u32;
        let tag = self.rtp.tag(&buf[..len], &roc.to_be_bytes());
        if !constant_time_eq(&tag, &buf[len..]) {
            return Err(SrtpError::Auth);
        }
        self.rtp_window.accept(index);
        match self.last {
            Some((s_l, r)) if (roc, seq) <= (r, s_l) => {}
            _ => self.last = Some((seq, roc)),
        }
        self.rtp.apply_keystream(ssrc, index, &mut buf[hdr..len]);
        Ok(len)
    }

    /// Authenticates and decrypts the SRTCP packet `buf` in place; returns the RTCP
    /// packet's length.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let len = buf
            .len()
            .checked_sub(SRTCP_TRAILER_LEN)
            .filter(|&n| n >= 8)
            .ok_or(SrtpError::Short)?;
        let (signed, tag) = buf.split_at(len + 4);
        if !constant_time_eq(&self.rtcp.tag(signed, &[]), tag) {
            return Err(SrtpError::Auth);
        }
        let word = u32::from_be_bytes([buf[len], buf[len + 1], buf[len + 2], buf[len + 3]]);
        let index = u64::from(word & 0x7fff_ffff);
        self.rtcp_window.check(index)?;
        self.rtcp_window.accept(index);
        if word & 0x8000_0000 != 0 {
            let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
            self.rtcp.apply_keystream(ssrc, index, &mut buf[8..len]);
        }
        Ok(len)
    }
}

/// Compares two tags in time that does not depend on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The body of the `srtp_packets` fuzz target, shared with the corpus replay test: hostile
/// bytes as SRTP and SRTCP (refused, never a panic, the buffer untouched when refused), and
/// as a plain packet protected then unprotected (the same bytes back).
pub fn fuzz_exercise(data: &[u8]) {
    let key = MasterKey::new([0x5a; MASTER_KEY_LEN], [0xa5; MASTER_SALT_LEN]);
    let mut rx = SrtpReceiver::new(&key);
    let mut buf = data.to_vec();
    if rx.unprotect_rtp(&mut buf).is_err() {
        assert_eq!(buf, data, "a refused packet is left as it came");
    }
    let mut buf = data.to_vec();
    let _ = rx.unprotect_rtcp(&mut buf);
    let mut tx = SrtpSender::new(&key);
    let mut rx = SrtpReceiver::new(&key);
    let mut buf = data.to_vec();
    buf.resize(data.len() + SRTCP_TRAILER_LEN, 0);
    if let Ok(n) = tx.protect_rtp(&mut buf, data.len()) {
        buf.truncate(n);
        let m = rx
            .unprotect_rtp(&mut buf)
            .expect("our own packet authenticates");
        assert_eq!(&buf[..m], data, "round trip");
    }
    let mut buf = data.to_vec();
    buf.resize(data.len() + SRTCP_TRAILER_LEN, 0);
    if let Ok(n) = tx.protect_rtcp(&mut buf, data.len()) {
        buf.truncate(n);
        let m = rx
            .unprotect_rtcp(&mut buf)
            .expect("our own report authenticates");
        assert_eq!(&buf[..m], data, "SRTCP round trip");
    }
}

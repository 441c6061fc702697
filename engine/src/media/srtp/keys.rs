//! The master key and salt of an SRTP session and the AES-CM key derivation of RFC 3711
//! §4.3.1 (key derivation rate 0: one set of session keys for the session's life).

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes128;
use base64::Engine as _;

/// Bytes of an AES-128 master key.
pub const MASTER_KEY_LEN: usize = 16;
/// Bytes of a master salt (112 bits).
pub const MASTER_SALT_LEN: usize = 14;

/// A master key and salt: the 30 bytes an SDES `inline:` parameter carries.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey {
    key: [u8; MASTER_KEY_LEN],
    salt: [u8; MASTER_SALT_LEN],
}

impl std::fmt::Debug for MasterKey {
    /// Never prints the key: logs and panics must not leak it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A key and salt as they are.
    pub fn new(key: [u8; MASTER_KEY_LEN], salt: [u8; MASTER_SALT_LEN]) -> Self {
        MasterKey { key, salt }
    }

    /// A fresh key from a cryptographic generator (one per call and direction).
    pub fn random<R: rand::CryptoRng + rand::RngCore>(rng: &mut R) -> Self {
        let mut key = [0u8; MASTER_KEY_LEN];
        let mut salt = [0u8; MASTER_SALT_LEN];
        rng.fill_bytes(&mut key);
        rng.fill_bytes(&mut salt);
        MasterKey { key, salt }
    }

    /// The key and salt as SDES writes them after `inline:` (base64 of key ‖ salt).
    pub fn to_inline(&self) -> String {
        let mut raw = [0u8; MASTER_KEY_LEN + MASTER_SALT_LEN];
        raw[..MASTER_KEY_LEN].copy_from_slice(&self.key);
        raw[MASTER_KEY_LEN..].copy_from_slice(&self.salt);
        base64::engine::general_purpose::STANDARD.encode(raw)
    }

    /// Parses the base64 of an `inline:` parameter (without lifetime or MKI); `None` when it
    /// is not base64 of exactly 30 bytes.
    pub fn from_inline(b64: &str) -> Option<Self> {
        let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        if raw.len() != MASTER_KEY_LEN + MASTER_SALT_LEN {
            return None;
        }
        let mut key = [0u8; MASTER_KEY_LEN];
        let mut salt = [0u8; MASTER_SALT_LEN];
        key.copy_from_slice(&raw[..MASTER_KEY_LEN]);
        salt.copy_from_slice(&raw[MASTER_KEY_LEN..]);
        Some(MasterKey { key, salt })
    }

    /// Fills `out` with the session key of `label`: AES-CM keyed by the master key over
    /// (master salt XOR label at byte 7) ‖ a 16-bit block counter.
    pub(super) fn derive(&self, label: u8, out: &mut [u8]) {
        let cipher = Aes128::new(&self.key.into());
        let mut x = [0u8; 16];
        x[..MASTER_SALT_LEN].copy_from_slice(&self.salt);
        x[7] ^= label;
        for (i, chunk) in out.chunks_mut(16).enumerate() {
            let mut block = x;
            block[14..].copy_from_slice(&(i as u16).to_be_bytes());
            let mut b = aes::Block::from(block);
            cipher.encrypt_block(&mut b);
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
    }
}

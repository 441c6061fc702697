//! `PromptSet`: one uploaded message and every encoding of it a call may need, encoded once and
//! kept in the on-disk [`PromptCache`].
//!
//! Why: a call streams the codec and packet time its answer picked (PCMA at 30 ms on one trunk,
//! G.722 at 20 ms on another). Encoding at answer time would cost a call's worth of CPU per
//! call, and encoding per campaign start would redo the same work after every restart. The set
//! encodes each wanted (codec, ptime) once, when the message is uploaded or first used, stores
//! it in the versioned cache next to the data directory, and hands out shared `Arc<Prompt>`s.
//! A packet time met later (a trunk added at run time, an answer asking for another `a=ptime`)
//! is encoded lazily, once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};

use crate::prompt::read_limited;
use crate::{Codec, CodecError, EncodeSettings, PreparedAudio, Prompt, PromptCache, PromptKey};

/// The packet time every set is encoded for whatever the trunks say: RFC 3551's default for
/// G.711 and G.722 and the usual one for Opus, so a call always has something to stream.
pub const DEFAULT_PTIME_MS: u32 = 20;

/// The (codec, ptime) pairs to encode a message for: every codec at [`DEFAULT_PTIME_MS`] and at
/// each of `ptimes` it can packetise (Opus has no 30 ms frame), without repeats, in a stable
/// order.
pub fn wanted_encodings(ptimes: &[u32]) -> Vec<(Codec, u32)> {
    let mut times = vec![DEFAULT_PTIME_MS];
    for &p in ptimes {
        if !times.contains(&p) {
            times.push(p);
        }
    }
    let mut out = Vec::new();
    for codec in Codec::ALL {
        for &p in &times {
            if codec.supports_ptime(p) {
                out.push((codec, p));
            }
        }
    }
    out
}

/// One message (its source file) and the encodings of it loaded so far.
#[derive(Debug)]
pub struct PromptSet {
    source: PathBuf,
    source_sha256: [u8; 32],
    settings: EncodeSettings,
    cache: Option<PromptCache>,
    ready: RwLock<HashMap<(Codec, u32), Arc<Prompt>>>,
}

impl PromptSet {
    /// A set for the message in `source` (WAV or MP3). Reads the file once to identify it
    /// (SHA-256: the cache key); nothing is decoded or encoded yet.
    pub fn open(
        source: impl Into<PathBuf>,
        settings: EncodeSettings,
        cache: Option<PromptCache>,
    ) -> Result<PromptSet, CodecError> {
        let source = source.into();
        let bytes = read_limited(&source, settings.max_duration_ms)?;
        Ok(PromptSet {
            source_sha256: Sha256::digest(&bytes).into(),
            source,
            settings,
            cache,
            ready: RwLock::new(HashMap::new()),
        })
    }

    /// The message's file.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The encoding for `codec` at `ptime_ms` if it is loaded: a map lookup, never disk or CPU
    /// work, so a media path may call it on every answer.
    pub fn get(&self, codec: Codec, ptime_ms: u32) -> Option<Arc<Prompt>> {
        self.ready
            .read()
            .expect("prompt set lock")
            .get(&(codec, ptime_ms))
            .cloned()
    }

    /// Makes every pair of `wanted` available: from memory, else from the cache, else encoded
    /// (the source imported and levelled once for all the misses) and stored in the cache.
    pub fn load(&self, wanted: &[(Codec, u32)]) -> Result<(), CodecError> {
        let mut missing = Vec::new();
        for &(codec, ptime) in wanted {
            if !codec.supports_ptime(ptime) {
                return Err(CodecError::UnsupportedPtime {
                    codec,
                    ptime_ms: ptime,
                });
            }
            if self.get(codec, ptime).is_some() {
                continue;
            }
            match self.from_cache(codec, ptime) {
                Some(p) => self.insert(p),
                None => missing.push((codec, ptime)),
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let bytes = read_limited(&self.source, self.settings.max_duration_ms)?;
        if <[u8; 32]>::from(Sha256::digest(&bytes)) != self.source_sha256 {
            return Err(CodecError::CacheInvalid(format!(
                "{} changed since it was opened",
                self.source.display()
            )));
        }
        let prep = PreparedAudio::from_bytes(&bytes, &self.settings)?;
        for (codec, ptime) in missing {
            let p = prep.encode(codec, ptime)?;
            if let Some(c) = &self.cache {
                c.put(&p)?;
            }
            self.insert(p);
        }
        Ok(())
    }

    /// The encoding for `codec` at `ptime_ms`, loading or encoding it first when needed.
    pub fn ensure(&self, codec: Codec, ptime_ms: u32) -> Result<Arc<Prompt>, CodecError> {
        self.load(&[(codec, ptime_ms)])?;
        self.get(codec, ptime_ms)
            .ok_or(CodecError::UnsupportedPtime { codec, ptime_ms })
    }

    fn from_cache(&self, codec: Codec, ptime: u32) -> Option<Prompt> {
        let key = PromptKey::from_source_hash(&self.source_sha256, codec, ptime, &self.settings);
        self.cache.as_ref()?.get(&key)
    }

    fn insert(&self, p: Prompt) {
        self.ready
            .write()
            .expect("prompt set lock")
            .insert((p.codec(), p.ptime_ms()), Arc::new(p));
    }
}

/// Encodes an upload already imported and levelled for every pair of `wanted` and stores each
/// in `cache` (what the upload path does, so no call ever encodes). Returns the encodings.
pub fn encode_into_cache(
    prep: &PreparedAudio,
    cache: &PromptCache,
    wanted: &[(Codec, u32)],
) -> Result<Vec<Prompt>, CodecError> {
    let mut out = Vec::with_capacity(wanted.len());
    for &(codec, ptime) in wanted {
        let p = prep.encode(codec, ptime)?;
        cache.put(&p)?;
        out.push(p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wanted_pairs_cover_default_and_trunk_ptimes_once() {
        let w = wanted_encodings(&[30, 20, 30]);
        assert!(w.contains(&(Codec::Pcma, 30)) && w.contains(&(Codec::G722, 30)));
        assert!(w.contains(&(Codec::Opus, 20)));
        assert!(!w.contains(&(Codec::Opus, 30)), "Opus has no 30 ms frame");
        assert_eq!(w.len(), 4 + 3);
        assert_eq!(wanted_encodings(&[]).len(), 4);
    }
}

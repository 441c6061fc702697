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
    /// The audio itself when the message came from memory (TTS, a recording) rather than a
    /// file: 16-bit mono samples and their rate.
    pcm: Option<(Arc<[i16]>, u32)>,
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
            pcm: None,
            settings,
            cache,
            ready: RwLock::new(HashMap::new()),
        })
    }

    /// A set for audio held in memory (TTS output, a call's recording), known by `name`: 16-bit
    /// mono samples at `rate`. It is levelled like an upload when encoded; the samples are kept
    /// (2 bytes a sample) so a packet time met later can still be encoded.
    pub fn from_pcm(
        name: &str,
        pcm: &[i16],
        rate: u32,
        settings: EncodeSettings,
        cache: Option<PromptCache>,
    ) -> Result<PromptSet, CodecError> {
        if pcm.is_empty() {
            return Err(CodecError::Empty);
        }
        if !(crate::import::MIN_SAMPLE_RATE..=crate::import::MAX_SAMPLE_RATE).contains(&rate) {
            return Err(CodecError::AbsurdHeader(format!("sample rate {rate} Hz")));
        }
        let mut h = Sha256::new();
        h.update(b"pcm16\0");
        h.update(rate.to_le_bytes());
        for s in pcm {
            h.update(s.to_le_bytes());
        }
        Ok(PromptSet {
            source: PathBuf::from(name),
            pcm: Some((pcm.into(), rate)),
            source_sha256: h.finalize().into(),
            settings,
            cache,
            ready: RwLock::new(HashMap::new()),
        })
    }

    /// The message's file (its name for audio from memory).
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
            match self.cached(codec, ptime) {
                Some(p) => self.insert(p),
                None => missing.push((codec, ptime)),
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let prep = self.prepare()?;
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

    /// Removes every cached encoding of this message (every codec and packet time), for when
    /// the message itself is deleted. Returns how many files were removed.
    pub fn forget(&self) -> usize {
        let Some(cache) = &self.cache else { return 0 };
        let mut removed = 0;
        for codec in Codec::ALL {
            for ptime in (10..=60).step_by(10) {
                let key =
                    PromptKey::from_source_hash(&self.source_sha256, codec, ptime, &self.settings);
                if std::fs::remove_file(cache.path_for(&key)).is_ok() {
                    removed += 1;
                }
            }
        }
        self.ready.write().expect("prompt set lock").clear();
        removed
    }

    /// The source imported and levelled: from the file (unchanged since it was opened) or from
    /// the samples in memory.
    fn prepare(&self) -> Result<PreparedAudio, CodecError> {
        if let Some((pcm, rate)) = &self.pcm {
            let audio = crate::Audio {
                samples: pcm.iter().map(|&s| f32::from(s) / 32768.0).collect(),
                sample_rate: *rate,
                source_channels: 1,
                format: crate::SourceFormat::WavInt(16),
            };
            return PreparedAudio::from_audio(audio, self.source_sha256, &self.settings);
        }
        let bytes = read_limited(&self.source, self.settings.max_duration_ms)?;
        if <[u8; 32]>::from(Sha256::digest(&bytes)) != self.source_sha256 {
            return Err(CodecError::CacheInvalid(format!(
                "{} changed since it was opened",
                self.source.display()
            )));
        }
        PreparedAudio::from_bytes(&bytes, &self.settings)
    }

    fn cached(&self, codec: Codec, ptime: u32) -> Option<Prompt> {
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

    fn write_tone(path: &Path) {
        let s: Vec<i16> = (0..8000)
            .map(|i| ((i as f32 * 0.3).sin() * 9000.0) as i16)
            .collect();
        std::fs::write(path, crate::wav::to_wav_bytes(&s, 8000).unwrap()).unwrap();
    }

    #[test]
    fn encoded_once_then_read_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("msg.wav");
        write_tone(&src);
        let cache = PromptCache::new(dir.path().join("cache")).unwrap();
        let wanted = wanted_encodings(&[30]);
        let set = PromptSet::open(&src, EncodeSettings::default(), Some(cache.clone())).unwrap();
        set.load(&wanted).unwrap();
        let files = std::fs::read_dir(cache.dir()).unwrap().count();
        assert_eq!(files, wanted.len());
        let pcma30 = set.get(Codec::Pcma, 30).unwrap();
        assert_eq!(pcma30.frame(0).unwrap().len(), 240);

        // A restart: a new set finds every encoding in the cache. The source is gone, so
        // anything it had to encode would fail.
        let again = PromptSet::open(&src, EncodeSettings::default(), Some(cache)).unwrap();
        std::fs::remove_file(&src).unwrap();
        again.load(&wanted).unwrap();
        assert_eq!(*again.get(Codec::Pcma, 30).unwrap(), *pcma30);
        assert!(again.get(Codec::G722, 20).is_some());
        // A packet time met later needs the source: encoded lazily, here it is an error.
        assert!(again.ensure(Codec::Pcmu, 40).is_err());
        assert!(
            again.ensure(Codec::Opus, 30).is_err(),
            "no 30 ms Opus frame"
        );
    }

    #[test]
    fn a_ptime_met_later_is_encoded_once_and_cached() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("msg.wav");
        write_tone(&src);
        let cache = PromptCache::new(dir.path().join("cache")).unwrap();
        let set = PromptSet::open(&src, EncodeSettings::default(), Some(cache.clone())).unwrap();
        assert!(set.get(Codec::Pcmu, 40).is_none());
        let p = set.ensure(Codec::Pcmu, 40).unwrap();
        assert_eq!(p.frame(0).unwrap().len(), 320);
        assert_eq!(std::fs::read_dir(cache.dir()).unwrap().count(), 1);
        assert_eq!(set.forget(), 1);
        assert_eq!(std::fs::read_dir(cache.dir()).unwrap().count(), 0);
    }

    /// Audio from memory is levelled like an upload (a quiet recording comes out at the
    /// target loudness) and encoded for every wanted pair; silence is refused like an upload.
    #[test]
    fn pcm_from_memory_is_levelled_and_encoded() {
        let quiet: Vec<i16> = (0..16000)
            .map(|i| ((i as f32 * 0.09).sin() * 600.0 * (1.0 + (i as f32 * 0.001).sin())) as i16)
            .collect();
        let set =
            PromptSet::from_pcm("rec-1", &quiet, 16000, EncodeSettings::default(), None).unwrap();
        set.load(&wanted_encodings(&[30])).unwrap();
        let p = set.get(Codec::G722, 30).unwrap();
        assert_eq!(p.frame_count(), 34);
        let info = p.info();
        assert!(info.normalized && info.gain_db > 10.0, "{info:?}");
        assert!((info.loudness_after_lufs - crate::level::DEFAULT_TARGET_LUFS).abs() < 1.5);
        assert!(set.get(Codec::Opus, 20).is_some());
        assert!(
            set.ensure(Codec::Pcmu, 40).is_ok(),
            "a later ptime still encodes"
        );
        assert!(
            PromptSet::from_pcm("s", &[0; 8000], 8000, EncodeSettings::default(), None)
                .unwrap()
                .load(&[(Codec::Pcma, 20)])
                .is_err()
        );
        assert!(PromptSet::from_pcm("e", &[], 8000, EncodeSettings::default(), None).is_err());
    }
}

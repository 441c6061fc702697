//! On-disk cache of encoded prompts, so a restart does not re-encode every message.
//!
//! One file per prompt, named by its [`PromptKey`] (`<hex>.prompt`). The layout is versioned and
//! checksummed; a file that is truncated, corrupt, of another version or of another key is
//! ignored and replaced by a fresh encoding. Files are written to a temporary name and renamed,
//! so a crash never leaves a half-written prompt under a valid name.
//!
//! Layout (little-endian): magic `DLRPRMPT`, u32 [`PROMPT_FORMAT_VERSION`], key (32 bytes),
//! codec name (u8 length + bytes), ptime u32, timestamp step u32, frame count u32, payload length
//! u32, info (see `write_info`), `frame_count + 1` u32 offsets, payload bytes, then SHA-256 of
//! everything before it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::prompt::{EncodeSettings, PreparedAudio, Prompt, PromptInfo, PromptKey};
use crate::{Codec, CodecError, PROMPT_FORMAT_VERSION};

const MAGIC: &[u8; 8] = b"DLRPRMPT";

/// A directory of encoded prompts.
#[derive(Debug, Clone)]
pub struct PromptCache {
    dir: PathBuf,
}

impl PromptCache {
    /// Uses (and creates if needed) `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, CodecError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| CodecError::io(&dir, e))?;
        Ok(PromptCache { dir })
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the file for `key`.
    pub fn path_for(&self, key: &PromptKey) -> PathBuf {
        self.dir.join(format!("{}.prompt", key.to_hex()))
    }

    /// Loads the prompt for `key` if a valid file exists.
    pub fn get(&self, key: &PromptKey) -> Option<Prompt> {
        let bytes = std::fs::read(self.path_for(key)).ok()?;
        let p = from_cache_bytes(&bytes).ok()?;
        (p.key == *key).then_some(p)
    }

    /// Stores `prompt` atomically under its key.
    pub fn put(&self, prompt: &Prompt) -> Result<PathBuf, CodecError> {
        let path = self.path_for(&prompt.key);
        // Unique per process and call, so concurrent writers of one key never share a temp file.
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let tmp = self.dir.join(format!(
            ".{}.{}.{}.tmp",
            prompt.key.to_hex(),
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&tmp, to_cache_bytes(prompt)).map_err(|e| CodecError::io(&tmp, e))?;
        if let Err(e) = std::fs::rename(&tmp, &path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(CodecError::io(&path, e));
        }
        Ok(path)
    }

    /// Returns the cached prompt of `source` for this codec, ptime and settings, encoding and
    /// storing it first when absent or invalid.
    pub fn get_or_encode(
        &self,
        source: &[u8],
        codec: Codec,
        ptime_ms: u32,
        settings: &EncodeSettings,
    ) -> Result<Arc<Prompt>, CodecError> {
        let key = PromptKey::new(source, codec, ptime_ms, settings);
        if let Some(p) = self.get(&key) {
            return Ok(Arc::new(p));
        }
        let prompt = PreparedAudio::from_bytes(source, settings)?.encode(codec, ptime_ms)?;
        debug_assert_eq!(prompt.key, key);
        self.put(&prompt)?;
        Ok(Arc::new(prompt))
    }
}

fn put_u32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn put_u64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn put_f64(v: &mut Vec<u8>, x: f64) {
    v.extend_from_slice(&x.to_bits().to_le_bytes());
}
fn put_str(v: &mut Vec<u8>, s: &str) {
    let b = &s.as_bytes()[..s.len().min(255)];
    v.push(b.len() as u8);
    v.extend_from_slice(b);
}

fn write_info(v: &mut Vec<u8>, i: &PromptInfo) {
    put_str(v, &i.source_format);
    put_u32(v, i.source_sample_rate);
    v.extend_from_slice(&i.source_channels.to_le_bytes());
    put_u64(v, i.source_duration_ms);
    v.extend_from_slice(&i.source_sha256);
    v.push(u8::from(i.normalized));
    put_f64(v, i.loudness_before_lufs);
    put_f64(v, i.loudness_after_lufs);
    put_f64(v, i.peak_before_dbfs);
    put_f64(v, i.peak_after_dbfs);
    put_f64(v, i.gain_db);
    v.push(u8::from(i.limited));
}

/// Serialises a prompt in the cache layout.
pub fn to_cache_bytes(p: &Prompt) -> Vec<u8> {
    let mut v = Vec::with_capacity(p.data.len() + p.offsets.len() * 4 + 256);
    v.extend_from_slice(MAGIC);
    put_u32(&mut v, PROMPT_FORMAT_VERSION);
    v.extend_from_slice(&p.key.0);
    put_str(&mut v, p.codec.name());
    put_u32(&mut v, p.ptime_ms);
    put_u32(&mut v, p.timestamp_step);
    put_u32(&mut v, p.frame_count() as u32);
    put_u32(&mut v, p.data.len() as u32);
    write_info(&mut v, &p.info);
    for &o in p.offsets.iter() {
        put_u32(&mut v, o);
    }
    v.extend_from_slice(&p.data);
    let sum = Sha256::digest(&v);
    v.extend_from_slice(&sum);
    v
}

struct Rd<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Rd<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| CodecError::CacheInvalid("truncated".into()))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, CodecError> {
        let s = self.take(2)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Result<u32, CodecError> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self) -> Result<u64, CodecError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn f64(&mut self) -> Result<f64, CodecError> {
        Ok(f64::from_bits(self.u64()?))
    }
    fn str(&mut self) -> Result<String, CodecError> {
        let n = usize::from(self.u8()?);
        String::from_utf8(self.take(n)?.to_vec())
            .map_err(|_| CodecError::CacheInvalid("non-UTF-8 string".into()))
    }
    fn arr32(&mut self) -> Result<[u8; 32], CodecError> {
        let mut a = [0u8; 32];
        a.copy_from_slice(self.take(32)?);
        Ok(a)
    }
}

/// Parses a prompt from the cache layout, verifying magic, version, checksum and every offset.
pub fn from_cache_bytes(bytes: &[u8]) -> Result<Prompt, CodecError> {
    if bytes.len() < MAGIC.len() + 4 + 32 {
        return Err(CodecError::CacheInvalid("too short".into()));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != sum {
        return Err(CodecError::CacheInvalid("checksum mismatch".into()));
    }
    let mut r = Rd { b: body, pos: 0 };
    if r.take(8)? != MAGIC {
        return Err(CodecError::CacheInvalid("bad magic".into()));
    }
    let version = r.u32()?;
    if version != PROMPT_FORMAT_VERSION {
        return Err(CodecError::CacheInvalid(format!("version {version}")));
    }
    let key = PromptKey(r.arr32()?);
    let codec: Codec = r
        .str()?
        .parse()
        .map_err(|_| CodecError::CacheInvalid("unknown codec".into()))?;
    let ptime_ms = r.u32()?;
    let timestamp_step = r.u32()?;
    let frames = r.u32()? as usize;
    let data_len = r.u32()? as usize;
    if !codec.supports_ptime(ptime_ms) || timestamp_step != codec.timestamp_step(ptime_ms) {
        return Err(CodecError::CacheInvalid("inconsistent ptime".into()));
    }
    let info = PromptInfo {
        source_format: r.str()?,
        source_sample_rate: r.u32()?,
        source_channels: r.u16()?,
        source_duration_ms: r.u64()?,
        source_sha256: r.arr32()?,
        normalized: r.u8()? != 0,
        loudness_before_lufs: r.f64()?,
        loudness_after_lufs: r.f64()?,
        peak_before_dbfs: r.f64()?,
        peak_after_dbfs: r.f64()?,
        gain_db: r.f64()?,
        limited: r.u8()? != 0,
    };
    let remaining = body.len() - r.pos;
    let need = frames
        .checked_add(1)
        .and_then(|n| n.checked_mul(4))
        .and_then(|n| n.checked_add(data_len));
    if need != Some(remaining) {
        return Err(CodecError::CacheInvalid("sizes do not match".into()));
    }
    let mut offsets = Vec::with_capacity(frames + 1);
    let mut prev = 0u32;
    for i in 0..=frames {
        let o = r.u32()?;
        if (i == 0 && o != 0) || o < prev || o as usize > data_len {
            return Err(CodecError::CacheInvalid("bad offsets".into()));
        }
        prev = o;
        offsets.push(o);
    }
    if prev as usize != data_len {
        return Err(CodecError::CacheInvalid(
            "offsets do not cover payload".into(),
        ));
    }
    let data = r.take(data_len)?.to_vec();
    Ok(Prompt {
        codec,
        ptime_ms,
        timestamp_step,
        data: data.into_boxed_slice(),
        offsets: offsets.into_boxed_slice(),
        info,
        key,
    })
}

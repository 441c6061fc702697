//! Writing 16-bit mono WAV, for `dialer prompt --decode-to` and test fixtures.

use std::io::Cursor;
use std::path::Path;

use crate::CodecError;

/// Serialises mono 16-bit samples as a WAV file in memory.
pub fn to_wav_bytes(samples: &[i16], sample_rate: u32) -> Result<Vec<u8>, CodecError> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut cur = Cursor::new(Vec::with_capacity(44 + samples.len() * 2));
    {
        let mut w = hound::WavWriter::new(&mut cur, spec)
            .map_err(|e| CodecError::Encoder(format!("wav: {e}")))?;
        let mut w16 = w.get_i16_writer(samples.len() as u32);
        for &s in samples {
            w16.write_sample(s);
        }
        w16.flush()
            .map_err(|e| CodecError::Encoder(format!("wav: {e}")))?;
        w.finalize()
            .map_err(|e| CodecError::Encoder(format!("wav: {e}")))?;
    }
    Ok(cur.into_inner())
}

/// Writes mono 16-bit samples to a WAV file.
pub fn write_wav(path: &Path, samples: &[i16], sample_rate: u32) -> Result<(), CodecError> {
    let bytes = to_wav_bytes(samples, sample_rate)?;
    std::fs::write(path, bytes).map_err(|e| CodecError::io(path, e))
}

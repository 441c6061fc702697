//! Text to speech with espeak-ng, for IVR prompts and tests.
//!
//! Optional by design: the dialer works without it. When the `espeak-ng` binary is missing the
//! functions return [`CodecError::TtsUnavailable`] so callers can say so clearly.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::prompt::{EncodeSettings, PreparedAudio, Prompt};
use crate::{Codec, CodecError};

/// Longest text accepted (espeak-ng handles more, but prompts are short).
pub const MAX_TEXT_LEN: usize = 4000;

/// Whether `espeak-ng` can be run.
pub fn available() -> bool {
    Command::new("espeak-ng")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Speaks `text` with voice `voice` (e.g. `it`, `en`, `de`; `None` = espeak-ng's default) and
/// returns a WAV file (22.05 kHz mono 16-bit). The text goes through standard input, never the
/// command line, so it cannot be taken for an option.
pub fn synthesize_wav(text: &str, voice: Option<&str>) -> Result<Vec<u8>, CodecError> {
    if text.trim().is_empty() {
        return Err(CodecError::Tts("empty text".into()));
    }
    if text.len() > MAX_TEXT_LEN {
        return Err(CodecError::Tts(format!(
            "text longer than {MAX_TEXT_LEN} bytes"
        )));
    }
    let mut cmd = Command::new("espeak-ng");
    cmd.arg("--stdout");
    if let Some(v) = voice {
        if v.is_empty()
            || !v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_+".contains(c))
        {
            return Err(CodecError::Tts(format!("invalid voice name {v:?}")));
        }
        cmd.arg("-v").arg(v);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => CodecError::TtsUnavailable(
                "espeak-ng is not installed (Debian package `espeak-ng`)".into(),
            ),
            _ => CodecError::Tts(format!("cannot run espeak-ng: {e}")),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| CodecError::Tts(format!("writing text to espeak-ng: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| CodecError::Tts(format!("espeak-ng: {e}")))?;
    if !out.status.success() {
        return Err(CodecError::Tts(format!(
            "espeak-ng failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let mut wav = out.stdout;
    fix_streamed_wav_sizes(&mut wav);
    Ok(wav)
}

/// Builds a prompt from text in one call.
pub fn prompt_from_text(
    text: &str,
    voice: Option<&str>,
    codec: Codec,
    ptime_ms: u32,
    settings: &EncodeSettings,
) -> Result<Prompt, CodecError> {
    let wav = synthesize_wav(text, voice)?;
    PreparedAudio::from_bytes(&wav, settings)?.encode(codec, ptime_ms)
}

/// espeak-ng writing to a pipe cannot seek back, so its RIFF and `data` sizes are placeholders
/// (0x7ffff000-ish). The importer rightly calls such a file truncated; here we know the stream
/// ended cleanly, so set the sizes to what was actually written.
fn fix_streamed_wav_sizes(wav: &mut [u8]) {
    if wav.len() < 12 || &wav[0..4] != b"RIFF" {
        return;
    }
    let riff = (wav.len() - 8) as u32;
    wav[4..8].copy_from_slice(&riff.to_le_bytes());
    let mut pos = 12usize;
    while pos + 8 <= wav.len() {
        let size = u32::from_le_bytes([wav[pos + 4], wav[pos + 5], wav[pos + 6], wav[pos + 7]]);
        if &wav[pos..pos + 4] == b"data" {
            let mut actual = (wav.len() - pos - 8) as u32;
            actual -= actual % 2; // whole 16-bit samples
            wav[pos + 4..pos + 8].copy_from_slice(&actual.min(size).to_le_bytes());
            return;
        }
        pos += 8 + size as usize + (size as usize & 1);
    }
}

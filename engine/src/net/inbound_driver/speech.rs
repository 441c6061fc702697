//! Speech for the inbound lines: espeak-ng renders each text once for the whole process
//! (a per-text once-cell) and the PCM is loaded into the media path under a name derived
//! from the words.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use tracing::warn;

use crate::dialer::call_media::CallMedia;
use crate::dialer::core::CallToken;

/// The name a piece of speech is prepared under: its words' digest.
pub fn speech_name(text: &str) -> String {
    let d = Sha256::digest(text.as_bytes());
    format!("tts-{}", hex(&d[..12]))
}

/// The name of a call's take, prepared for playback.
pub fn take_name(token: CallToken) -> String {
    format!("take-{}", token.0)
}

pub(super) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Renders speech once per text and loads it into the media path.
#[derive(Default)]
pub struct Speech {
    /// Voice of the synthesiser (`it`).
    voice: String,
    cells: Mutex<HashMap<String, Arc<OnceCell<bool>>>>,
}

impl Speech {
    /// Speech in `voice`.
    pub fn new(voice: &str) -> Speech {
        Speech {
            voice: voice.to_string(),
            cells: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `text` is loaded already.
    pub(super) fn ready(&self, text: &str) -> bool {
        let cells = self.cells.lock().expect("lock");
        cells.get(text).and_then(|c| c.get()).copied() == Some(true)
    }

    /// Renders and loads `text` unless another call did or is doing it; whether it worked.
    pub(super) async fn ensure<M: CallMedia>(&self, media: &Arc<M>, text: &str) -> bool {
        let cell = {
            let mut cells = self.cells.lock().expect("lock");
            cells.entry(text.to_string()).or_default().clone()
        };
        let (media, words, voice) = (media.clone(), text.to_string(), self.voice.clone());
        let ok = *cell
            .get_or_init(|| async move {
                let name = speech_name(&words);
                let r = tokio::task::spawn_blocking(move || render(&*media, &name, &words, &voice));
                match r.await {
                    Ok(Ok(())) => true,
                    Ok(Err(e)) => {
                        warn!(error = %e, "speech not rendered");
                        false
                    }
                    Err(e) => {
                        warn!(error = %e, "speech task failed");
                        false
                    }
                }
            })
            .await;
        if !ok {
            // Let a later call try again (espeak-ng may be installed meanwhile).
            self.cells.lock().expect("lock").remove(text);
        }
        ok
    }
}

/// espeak-ng → PCM → the media path (levelled and encoded there like uploads).
fn render<M: CallMedia>(media: &M, name: &str, text: &str, voice: &str) -> io::Result<()> {
    let wav = codecs::tts::synthesize_wav(text, Some(voice)).map_err(io::Error::other)?;
    let audio = codecs::import::import(&wav, 120_000).map_err(io::Error::other)?;
    let pcm: Vec<i16> = audio
        .samples
        .iter()
        .map(|s| (s.clamp(-1.0, 1.0) * 32767.0) as i16)
        .collect();
    media.prepare_pcm(name, &pcm, audio.sample_rate)
}

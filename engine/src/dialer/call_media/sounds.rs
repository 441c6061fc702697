//! What a call can be told to play, resolved to frames in its codec and packet time: prompts
//! (files, or audio from memory such as TTS and recordings), tones and silence.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex};

use codecs::{Codec, Prompt};

use crate::media::Segment;

/// One item of a playlist ([`super::CallMedia::play`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlayItem {
    /// A prompt by name: a file path (as campaigns give) or a name given to
    /// [`super::CallMedia::prepare_pcm`].
    Prompt(String),
    /// A sine tone (the beep before a recording, cues).
    Tone {
        /// Frequency.
        hz: u16,
        /// Length.
        ms: u32,
    },
    /// Silence (encoded silence keeps flowing, so the callee's jitter buffer and NAT stay up).
    Silence {
        /// Length.
        ms: u32,
    },
}

/// Most generated tones kept (per codec and packet time); menus use a handful.
const MAX_TONES: usize = 256;

/// Most prompts from memory kept by name: the oldest is forgotten first (calls playing it keep
/// their frames). A menu's TTS prompts are a few dozen per tenant; per-call ones (a number read
/// back) come and go.
pub(super) const MAX_MEMORY_PROMPTS: usize = 512;

/// Tones and one-packet silences, made once per codec and packet time.
#[derive(Default)]
pub(super) struct Generated {
    silence: Mutex<HashMap<(Codec, u32), Arc<Prompt>>>,
    tones: Mutex<HashMap<(Codec, u32, u16, u32), Arc<Prompt>>>,
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl Generated {
    /// One packet of silence.
    pub(super) fn silence(&self, codec: Codec, ptime: u32) -> io::Result<Arc<Prompt>> {
        let mut m = self.silence.lock().expect("lock");
        if let Some(p) = m.get(&(codec, ptime)) {
            return Ok(p.clone());
        }
        let p = Arc::new(Prompt::silence(codec, ptime, ptime).map_err(io_err)?);
        m.insert((codec, ptime), p.clone());
        Ok(p)
    }

    /// A tone.
    pub(super) fn tone(
        &self,
        codec: Codec,
        ptime: u32,
        hz: u16,
        ms: u32,
    ) -> io::Result<Arc<Prompt>> {
        let key = (codec, ptime, hz, ms);
        if let Some(p) = self.tones.lock().expect("lock").get(&key) {
            return Ok(p.clone());
        }
        let p = Arc::new(Prompt::tone(codec, ptime, hz, ms).map_err(io_err)?);
        let mut m = self.tones.lock().expect("lock");
        if m.len() >= MAX_TONES {
            m.clear();
        }
        m.insert(key, p.clone());
        Ok(p)
    }
}

/// The segments of a playlist: each prompt by `prompt(name)`, tones made, silence as the
/// one-packet silence repeated.
pub(super) fn segments(
    items: &[PlayItem],
    codec: Codec,
    ptime: u32,
    gen: &Generated,
    mut prompt: impl FnMut(&str) -> io::Result<Arc<Prompt>>,
) -> io::Result<Vec<Segment>> {
    items
        .iter()
        .map(|item| match item {
            PlayItem::Prompt(name) => Ok(Segment::once(prompt(name)?)),
            PlayItem::Tone { hz, ms } => Ok(Segment::once(gen.tone(codec, ptime, *hz, *ms)?)),
            PlayItem::Silence { ms } => Ok(Segment {
                prompt: gen.silence(codec, ptime)?,
                plays: ms.div_ceil(ptime.max(1)).max(1),
                gap_frames: 0,
            }),
        })
        .collect()
}

/// Names of the prompts from memory, oldest first, to forget beyond [`MAX_MEMORY_PROMPTS`].
#[derive(Default)]
pub(super) struct MemoryNames(VecDeque<String>);

impl MemoryNames {
    /// Notes `name` (again); returns the name to forget, if the bound is passed.
    pub(super) fn add(&mut self, name: &str) -> Option<String> {
        self.0.retain(|n| n != name);
        self.0.push_back(name.to_string());
        if self.0.len() > MAX_MEMORY_PROMPTS {
            self.0.pop_front()
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playlist_items_become_segments_in_the_calls_ptime() {
        let gen = Generated::default();
        let msg = Arc::new(Prompt::tone(Codec::Pcma, 30, 500, 300).unwrap());
        let items = [
            PlayItem::Prompt("m".into()),
            PlayItem::Tone { hz: 1000, ms: 200 },
            PlayItem::Silence { ms: 100 },
        ];
        let s = segments(&items, Codec::Pcma, 30, &gen, |n| {
            assert_eq!(n, "m");
            Ok(msg.clone())
        })
        .unwrap();
        assert_eq!(s.len(), 3);
        assert!(Arc::ptr_eq(&s[0].prompt, &msg));
        assert_eq!((s[1].prompt.ptime_ms(), s[1].prompt.frame_count()), (30, 7));
        assert_eq!((s[2].prompt.frame_count(), s[2].plays), (1, 4));
        let again = segments(&items[1..2], Codec::Pcma, 30, &gen, |_| unreachable!()).unwrap();
        assert!(Arc::ptr_eq(&again[0].prompt, &s[1].prompt), "made once");
        assert!(segments(&items[..1], Codec::Pcma, 30, &gen, |_| Err(
            io::Error::other("x")
        ))
        .is_err());
    }

    #[test]
    fn memory_names_forget_the_oldest() {
        let mut m = MemoryNames::default();
        for i in 0..MAX_MEMORY_PROMPTS {
            assert_eq!(m.add(&i.to_string()), None);
        }
        assert_eq!(m.add("0"), None, "renewed, not added");
        assert_eq!(m.add("new"), Some("1".to_string()));
    }
}

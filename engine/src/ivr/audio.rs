//! What a [`Prompt`] sounds like: the pieces of audio the driver plays for it, in order.
//!
//! Speech is cut so that the synthesiser's work stays bounded per tenant: every text is
//! rendered once and cached by its words, so a text that changes with each caller (the
//! read-back of the last digits) is split into the template's fixed parts and one piece
//! per digit. Ten digit renderings serve every caller instead of one rendering each.
//! A prompt the tenant replaced by a recording plays that recording; the beep is a tone;
//! the staff member's take and the town's latest message are audio of their own.

use std::collections::HashMap;

use super::texts::{Prompt, PromptKey, Replacement, Templates};

/// The beep before a recording: 1 kHz for 400 ms, then a short silence so the first
/// word is not clipped by the caller reacting to it.
pub const BEEP_HZ: u16 = 1000;
/// How long the beep lasts.
pub const BEEP_MS: u32 = 400;

/// One piece of what a call hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audio {
    /// Words for the synthesiser (espeak-ng), rendered once per text and cached.
    Speech(String),
    /// A tenant's uploaded prompt, by id.
    Recording(String),
    /// A pure tone.
    Tone {
        /// Frequency.
        hz: u16,
        /// Length.
        ms: u32,
    },
    /// Silence.
    Silence {
        /// Length.
        ms: u32,
    },
    /// The staff member's take of this call (prepared from the recording when it ends).
    Take,
}

/// A tenant's prompts: its text templates and the keys it replaced by recordings, and the
/// town's latest message.
#[derive(Debug, Clone, Default)]
pub struct Voice {
    /// Text templates (overrides over the Italian defaults).
    pub templates: Templates,
    /// Keys replaced by an uploaded prompt (its id).
    pub recordings: HashMap<PromptKey, String>,
    /// The prompt of the town's latest message, if it sent one.
    pub latest: Option<String>,
}

impl Voice {
    /// A tenant's voice from its stored replacements.
    pub fn new(replacements: &[(PromptKey, Replacement)], latest: Option<String>) -> Voice {
        let recordings = replacements
            .iter()
            .filter_map(|(k, r)| match r {
                Replacement::Recording(id) => Some((*k, id.clone())),
                Replacement::Text(_) => None,
            })
            .collect();
        Voice {
            templates: Templates::from_replacements(replacements),
            recordings,
            latest,
        }
    }

    /// The pieces that make up `p`.
    pub fn audio(&self, p: &Prompt) -> Vec<Audio> {
        let k = p.key();
        if let Some(id) = self.recordings.get(&k) {
            return vec![Audio::Recording(id.clone())];
        }
        match p {
            Prompt::Beep => vec![
                Audio::Tone {
                    hz: BEEP_HZ,
                    ms: BEEP_MS,
                },
                Audio::Silence { ms: 100 },
            ],
            Prompt::Playback => vec![Audio::Take],
            Prompt::LatestMessage => match &self.latest {
                Some(id) => vec![Audio::Recording(id.clone())],
                None => self.speech(&Prompt::NoMessage),
            },
            Prompt::ReadBack { digits } => self.read_back(digits),
            _ => self.speech(p),
        }
    }

    fn speech(&self, p: &Prompt) -> Vec<Audio> {
        self.templates
            .render(p)
            .map(Audio::Speech)
            .into_iter()
            .collect()
    }

    /// The template's text before and after `{digits}`, and each digit on its own.
    fn read_back(&self, digits: &str) -> Vec<Audio> {
        let marker = "\u{1}";
        let Some(text) = self.templates.render(&Prompt::ReadBack {
            digits: marker.into(),
        }) else {
            return vec![];
        };
        let mut out = vec![];
        let mut parts = text.split(marker);
        let before = parts.next().unwrap_or("");
        push_text(&mut out, before);
        for d in digits.chars().filter(char::is_ascii_digit) {
            out.push(Audio::Speech(d.to_string()));
        }
        for after in parts {
            push_text(&mut out, after);
        }
        out
    }
}

fn push_text(out: &mut Vec<Audio>, s: &str) {
    let s = s.trim();
    if s.chars().any(char::is_alphanumeric) {
        out.push(Audio::Speech(s.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_back_is_fixed_text_plus_one_piece_per_digit() {
        let v = Voice::default();
        let a = v.audio(&Prompt::ReadBack {
            digits: "6891".into(),
        });
        assert_eq!(a.len(), 5, "{a:?}");
        assert!(matches!(&a[0], Audio::Speech(s) if s.contains("termina con")));
        assert_eq!(a[1], Audio::Speech("6".into()));
        assert_eq!(a[4], Audio::Speech("1".into()));
        // Another caller's read-back shares the fixed part.
        let b = v.audio(&Prompt::ReadBack {
            digits: "1234".into(),
        });
        assert_eq!(a[0], b[0]);
    }

    #[test]
    fn recordings_replace_speech_and_audio_prompts_are_not_spoken() {
        let reps = vec![
            (PromptKey::MainMenu, Replacement::Recording("p-menu".into())),
            (PromptKey::Greeting, Replacement::Text("Ciao {town}".into())),
        ];
        let v = Voice::new(&reps, Some("p-latest".into()));
        assert_eq!(
            v.audio(&Prompt::MainMenu),
            [Audio::Recording("p-menu".into())]
        );
        assert_eq!(
            v.audio(&Prompt::Greeting {
                town: "Itri".into()
            }),
            [Audio::Speech("Ciao Itri".into())]
        );
        assert_eq!(
            v.audio(&Prompt::LatestMessage),
            [Audio::Recording("p-latest".into())]
        );
        assert_eq!(v.audio(&Prompt::Playback), [Audio::Take]);
        assert!(matches!(
            v.audio(&Prompt::Beep)[0],
            Audio::Tone { hz: 1000, .. }
        ));
        let none = Voice::default().audio(&Prompt::LatestMessage);
        assert!(
            matches!(&none[0], Audio::Speech(s) if !s.is_empty()),
            "{none:?}"
        );
    }
}

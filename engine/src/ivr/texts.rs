//! What the menus say: prompts, their per-tenant text templates and the Italian defaults.
//!
//! A [`Prompt`] is what a menu asks the driver to play: a [`PromptKey`] plus the values
//! it speaks. By default a prompt is spoken by espeak-ng from its template; a tenant may
//! override a template's text, or replace a key by an uploaded recording (the driver
//! looks the key up before rendering). Three prompts have no text: the beep, the staff
//! member's own take and the town's latest message are audio of their own.
//!
//! Templates hold `{town}`, `{digits}`, `{zone}` and `{zones}` placeholders.

use std::collections::HashMap;

/// Declares [`Prompt`] and its key [`PromptKey`] from one list: each variant once, with
/// the values it speaks and the key's word in the API, so the two enums cannot drift.
macro_rules! prompts {
    ($(
        $(#[$doc:meta])*
        $name:ident $({ $($(#[$fdoc:meta])* $field:ident: $ty:ty),* $(,)? })? => $word:literal,
    )*) => {
        /// A prompt with the values it speaks.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Prompt {
            $($(#[$doc])* $name $({ $($(#[$fdoc])* $field: $ty),* })?,)*
        }

        /// The name of a prompt: what a tenant's template or uploaded recording replaces.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum PromptKey {
            $($(#[$doc])* $name,)*
        }

        impl PromptKey {
            /// Every key, in menu order.
            pub const ALL: [PromptKey; [$($word),*].len()] = [$(PromptKey::$name),*];

            /// The key's word in the API (`main_menu`).
            pub fn as_str(&self) -> &'static str {
                match self {
                    $(PromptKey::$name => $word,)*
                }
            }
        }

        impl Prompt {
            /// The prompt's key.
            pub fn key(&self) -> PromptKey {
                match self {
                    $(Prompt::$name { .. } => PromptKey::$name,)*
                }
            }
        }
    };
}

prompts! {
    /// Welcome, naming the town.
    Greeting {
        /// The tenant's display name.
        town: String,
    } => "greeting",
    /// 1 register, 2 unregister, 3 latest message.
    MainMenu => "main_menu",
    /// The last digits of the caller's number, read back.
    ReadBack {
        /// Digits to read, one by one.
        digits: String,
    } => "read_back",
    /// The number is registered already (and for which zone); the zone may change.
    AlreadyRegistered {
        /// The zone it has; None: the whole town.
        zone: Option<String>,
    } => "already_registered",
    /// The zone list by number, 0 for the whole town.
    ZoneMenu {
        /// The town's zones, in menu order (1 is the first).
        zones: Vec<String>,
    } => "zone_menu",
    /// The consent sentence; 1 to confirm.
    Consent => "consent",
    /// Registration stored.
    Registered {
        /// The zone chosen; None: the whole town.
        zone: Option<String>,
    } => "registered",
    /// The zone of a registered number was changed.
    ZoneChanged {
        /// The new zone; None: the whole town.
        zone: Option<String>,
    } => "zone_changed",
    /// Unregistering a number that is not registered.
    NotRegistered => "not_registered",
    /// Unregistering erases the number: 1 to confirm.
    UnregisterConfirm => "unregister_confirm",
    /// Unregistered and erased.
    Unregistered => "unregistered",
    /// The town's latest message (audio of its campaign).
    LatestMessage => "latest_message",
    /// The town has sent no message yet.
    NoMessage => "no_message",
    /// The caller's number is withheld: call again without hiding it, or use the web form.
    Withheld => "withheld",
    /// A key the menu does not know.
    Invalid => "invalid",
    /// Three mistakes: a polite goodbye.
    TooManyMistakes => "too_many_mistakes",
    /// Goodbye (`#`).
    Goodbye => "goodbye",
    /// Staff: the line needs the caller's number (for the lockout and the record of who
    /// sent a message); a withheld one is refused.
    NumberRequired => "number_required",
    /// Staff: the PIN, then `#`.
    EnterPin => "enter_pin",
    /// Staff: wrong PIN, try again.
    WrongPin => "wrong_pin",
    /// Staff: this caller is locked out for now.
    LockedOut => "locked_out",
    /// Staff: the town has no PIN set: the line is closed.
    NoPin => "no_pin",
    /// Staff: record after the beep, `#` to stop.
    RecordAfterBeep => "record_after_beep",
    /// The beep (a tone, not speech).
    Beep => "beep",
    /// Staff: their own take, played back.
    Playback => "playback",
    /// Staff: 1 keep, 2 record again.
    KeepOrAgain => "keep_or_again",
    /// Staff: 1 send now to the whole town, 2 keep as a draft.
    SendOrDraft => "send_or_draft",
    /// Staff: the emergency message is being sent.
    Sent => "sent",
    /// Staff: kept as a draft.
    DraftSaved => "draft_saved",
}

impl PromptKey {
    /// Parses a word; `None` for anything else.
    pub fn parse(s: &str) -> Option<PromptKey> {
        PromptKey::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The default Italian template; None for audio that is not speech (the beep, the
    /// staff member's take, the latest message).
    pub fn default_text(&self) -> Option<&'static str> {
        italian(*self)
    }
}

/// The default Italian text of a key; None for audio that is not speech.
fn italian(k: PromptKey) -> Option<&'static str> {
    use PromptKey as K;
    Some(match k {
        K::Greeting => "Benvenuto nel servizio di avvisi telefonici del Comune di {town}.",
        K::MainMenu => {
            "Per registrare questo numero premi 1. Per cancellarlo premi 2. \
                        Per ascoltare l'ultimo avviso premi 3."
        }
        K::ReadBack => "Stai registrando il numero che termina con {digits}.",
        K::AlreadyRegistered => {
            "Questo numero è già registrato per la zona {zone}. \
                                 Puoi scegliere un'altra zona."
        }
        K::ZoneMenu => "Scegli la tua zona: {zones}.",
        K::Consent => {
            "Registrandoti accetti di ricevere dal Comune chiamate di avviso su \
                       questo numero, che resterà registrato finché non lo cancellerai: \
                       premi 1 per confermare."
        }
        K::Registered => "Registrazione completata per la zona {zone}. Grazie e arrivederci.",
        K::ZoneChanged => "Zona cambiata: {zone}. Grazie e arrivederci.",
        K::NotRegistered => "Questo numero non è registrato.",
        K::UnregisterConfirm => {
            "Il numero sarà cancellato e non riceverà più avvisi. \
                                 Premi 1 per confermare, asterisco per tornare indietro."
        }
        K::Unregistered => "Il numero è stato cancellato. Arrivederci.",
        K::NoMessage => "Non ci sono avvisi recenti.",
        K::Withheld => {
            "Il tuo numero è nascosto. Richiama senza nasconderlo, oppure \
                        registrati con il modulo sul sito del Comune. Arrivederci."
        }
        K::Invalid => "Scelta non valida.",
        K::TooManyMistakes => {
            "Non è stato possibile completare l'operazione. \
                               Riprova più tardi. Arrivederci."
        }
        K::Goodbye => "Arrivederci.",
        K::NumberRequired => "Per questo servizio il numero non può essere nascosto. Arrivederci.",
        K::EnterPin => "Inserisci il codice personale seguito dal tasto cancelletto.",
        K::WrongPin => "Codice errato.",
        K::LockedOut => "Troppi tentativi errati. Riprova più tardi. Arrivederci.",
        K::NoPin => "Servizio non attivo. Arrivederci.",
        K::RecordAfterBeep => {
            "Registra il messaggio dopo il segnale acustico. \
                               Premi cancelletto per terminare."
        }
        K::KeepOrAgain => "Per confermare il messaggio premi 1, per registrarlo di nuovo premi 2.",
        K::SendOrDraft => {
            "Per inviarlo subito a tutta la città come emergenza premi 1, \
                           per salvarlo come bozza premi 2."
        }
        K::Sent => "Il messaggio è in invio. Arrivederci.",
        K::DraftSaved => "Il messaggio è stato salvato come bozza. Arrivederci.",
        K::LatestMessage | K::Beep | K::Playback => return None,
    })
}

const WHOLE_TOWN: &str = "tutta la città";

/// What a tenant put in place of a default prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replacement {
    /// Its own text template (same placeholders), spoken by espeak-ng.
    Text(String),
    /// An uploaded recording: the id of one of its prompts.
    Recording(String),
}

/// Why a replacement was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplacementError {
    /// The key is audio that cannot be replaced (the take, the latest message).
    #[error("{0} cannot be replaced")]
    Fixed(&'static str),
    /// A text for a key that is not speech.
    #[error("{0} is a sound: replace it by a recording, not a text")]
    NotSpeech(&'static str),
    /// Empty or too long.
    #[error("text must be 1 to 1000 characters")]
    Length,
    /// A `{placeholder}` the key does not fill.
    #[error("unknown placeholder {{{0}}} (this prompt fills {1})")]
    Placeholder(String, String),
}

/// Placeholders a key's template may use.
fn placeholders(k: PromptKey) -> &'static [&'static str] {
    match k {
        PromptKey::Greeting => &["town"],
        PromptKey::ReadBack => &["digits"],
        PromptKey::AlreadyRegistered | PromptKey::Registered | PromptKey::ZoneChanged => &["zone"],
        PromptKey::ZoneMenu => &["zones"],
        _ => &[],
    }
}

/// Checks a tenant's replacement of `k`.
pub fn check_replacement(k: PromptKey, r: &Replacement) -> Result<(), ReplacementError> {
    if matches!(k, PromptKey::Playback | PromptKey::LatestMessage) {
        return Err(ReplacementError::Fixed(k.as_str()));
    }
    let Replacement::Text(t) = r else {
        return Ok(());
    };
    if k.default_text().is_none() {
        return Err(ReplacementError::NotSpeech(k.as_str()));
    }
    if t.trim().is_empty() || t.chars().count() > 1000 {
        return Err(ReplacementError::Length);
    }
    let allowed = placeholders(k);
    let mut rest = t.as_str();
    while let Some(i) = rest.find('{') {
        let after = &rest[i + 1..];
        let name = after.split('}').next().unwrap_or(after);
        if !allowed.contains(&name) {
            let list = if allowed.is_empty() {
                "none".to_string()
            } else {
                allowed.join(", ")
            };
            return Err(ReplacementError::Placeholder(name.to_string(), list));
        }
        rest = after;
    }
    Ok(())
}

/// A tenant's prompt texts: its overrides over the Italian defaults.
#[derive(Debug, Clone, Default)]
pub struct Templates {
    /// Texts the tenant replaced, by key.
    pub overrides: HashMap<PromptKey, String>,
}

impl Templates {
    /// The templates of a tenant's replacements (recordings are the driver's business).
    pub fn from_replacements<'a>(
        list: impl IntoIterator<Item = &'a (PromptKey, Replacement)>,
    ) -> Templates {
        let overrides = list
            .into_iter()
            .filter_map(|(k, r)| match r {
                Replacement::Text(t) => Some((*k, t.clone())),
                Replacement::Recording(_) => None,
            })
            .collect();
        Templates { overrides }
    }

    /// The text to speak for `p`; None for a prompt that is audio, not speech.
    pub fn render(&self, p: &Prompt) -> Option<String> {
        let k = p.key();
        let t = match self.overrides.get(&k) {
            Some(t) => t.as_str(),
            None => italian(k)?,
        };
        let zone = |z: &Option<String>| z.clone().unwrap_or_else(|| WHOLE_TOWN.into());
        let s = match p {
            Prompt::Greeting { town } => t.replace("{town}", town),
            Prompt::ReadBack { digits } => t.replace("{digits}", &spell(digits)),
            Prompt::AlreadyRegistered { zone: z }
            | Prompt::Registered { zone: z }
            | Prompt::ZoneChanged { zone: z } => t.replace("{zone}", &zone(z)),
            Prompt::ZoneMenu { zones } => t.replace("{zones}", &zone_list(zones)),
            _ => t.to_string(),
        };
        Some(s)
    }
}

/// Digits one by one, so that the synthesiser reads `6 8 9 1`, not "six thousand...".
fn spell(digits: &str) -> String {
    let v: Vec<String> = digits.chars().map(String::from).collect();
    v.join(", ")
}

/// `1 Centro, 2 Lido, 0 tutta la città`.
fn zone_list(zones: &[String]) -> String {
    let mut parts: Vec<String> = zones
        .iter()
        .enumerate()
        .map(|(i, z)| format!("{} {z}", i + 1))
        .collect();
    parts.push(format!("0 {WHOLE_TOWN}"));
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_names_the_town_and_zones_are_numbered() {
        let t = Templates::default();
        let g = t
            .render(&Prompt::Greeting {
                town: "Itri".into(),
            })
            .unwrap();
        assert!(g.contains("Comune di Itri"), "{g}");
        let z = t
            .render(&Prompt::ZoneMenu {
                zones: vec!["Centro".into(), "Lido".into()],
            })
            .unwrap();
        assert!(z.contains("1 Centro, 2 Lido, 0 tutta la città"), "{z}");
        let r = t
            .render(&Prompt::ReadBack {
                digits: "6891".into(),
            })
            .unwrap();
        assert!(r.contains("6, 8, 9, 1"), "{r}");
        let r = t.render(&Prompt::Registered { zone: None }).unwrap();
        assert!(r.contains("tutta la città"), "{r}");
    }

    #[test]
    fn a_tenant_override_replaces_the_default_and_audio_has_no_text() {
        let mut t = Templates::default();
        t.overrides
            .insert(PromptKey::Greeting, "Ciao da {town}".into());
        assert_eq!(
            t.render(&Prompt::Greeting {
                town: "Fondi".into()
            })
            .as_deref(),
            Some("Ciao da Fondi")
        );
        assert_eq!(t.render(&Prompt::Beep), None);
        assert_eq!(t.render(&Prompt::LatestMessage), None);
        assert!(t.render(&Prompt::Consent).unwrap().contains("premi 1"));
    }

    #[test]
    fn replacements_are_checked() {
        let t = |s: &str| Replacement::Text(s.into());
        assert!(check_replacement(PromptKey::Greeting, &t("Ciao {town}")).is_ok());
        assert!(matches!(
            check_replacement(PromptKey::Greeting, &t("Ciao {zone}")),
            Err(ReplacementError::Placeholder(..))
        ));
        assert!(matches!(
            check_replacement(PromptKey::MainMenu, &t("{town")),
            Err(ReplacementError::Placeholder(..))
        ));
        assert_eq!(
            check_replacement(PromptKey::Consent, &t("  ")),
            Err(ReplacementError::Length)
        );
        assert!(matches!(
            check_replacement(PromptKey::Beep, &t("bip")),
            Err(ReplacementError::NotSpeech(_))
        ));
        let rec = Replacement::Recording("p1".into());
        assert!(check_replacement(PromptKey::Beep, &rec).is_ok());
        assert!(matches!(
            check_replacement(PromptKey::Playback, &rec),
            Err(ReplacementError::Fixed(_))
        ));
        let list = [
            (PromptKey::Greeting, t("Ciao {town}")),
            (PromptKey::MainMenu, rec),
        ];
        let tpl = Templates::from_replacements(&list);
        assert_eq!(tpl.overrides.len(), 1);
    }

    #[test]
    fn key_words_round_trip() {
        for k in PromptKey::ALL {
            assert_eq!(PromptKey::parse(k.as_str()), Some(k));
        }
        assert_eq!(PromptKey::MainMenu.as_str(), "main_menu");
        assert_eq!(PromptKey::parse("MainMenu"), None);
    }
}

//! Every prompt a line can play, with the values it would speak: what the driver renders
//! ahead of the first call, so that a town's first flood of callers does not pay for
//! speech synthesis and the encoding of each text into every codec while it is being
//! answered (the cost lands on the same CPUs as the campaigns' dialling).

use super::texts::Prompt;
use crate::model::dids::Flow;

/// The prompts of a `flow` line in `town` with these `zones`, each with every value it
/// can take: the zones (and the whole town) where a prompt names one, and all ten
/// digits for the read-back (spoken one by one, so one read-back warms them all).
/// Audio of its own (the beep, a take, the latest message) is left out.
pub fn line_prompts(flow: Flow, town: &str, zones: &[String]) -> Vec<Prompt> {
    let mut out = vec![
        Prompt::Withheld,
        Prompt::Invalid,
        Prompt::TooManyMistakes,
        Prompt::Goodbye,
    ];
    match flow {
        Flow::Citizen => {
            let each: Vec<Option<String>> = zones
                .iter()
                .cloned()
                .map(Some)
                .chain(std::iter::once(None))
                .collect();
            out.extend([
                Prompt::Greeting {
                    town: town.to_string(),
                },
                Prompt::MainMenu,
                Prompt::ReadBack {
                    digits: "0123456789".into(),
                },
                Prompt::ZoneMenu {
                    zones: zones.to_vec(),
                },
                Prompt::Consent,
                Prompt::NotRegistered,
                Prompt::UnregisterConfirm,
                Prompt::Unregistered,
                Prompt::NoMessage,
            ]);
            for z in each {
                out.push(Prompt::AlreadyRegistered { zone: z.clone() });
                out.push(Prompt::Registered { zone: z.clone() });
                out.push(Prompt::ZoneChanged { zone: z });
            }
        }
        Flow::Staff => out.extend([
            Prompt::NumberRequired,
            Prompt::EnterPin,
            Prompt::WrongPin,
            Prompt::LockedOut,
            Prompt::NoPin,
            Prompt::RecordAfterBeep,
            Prompt::KeepOrAgain,
            Prompt::SendOrDraft,
            Prompt::Sent,
            Prompt::DraftSaved,
        ]),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ivr::{Audio, PromptKey, Voice};
    use std::collections::HashSet;

    fn speech(p: &[Prompt]) -> HashSet<String> {
        let v = Voice::default();
        p.iter()
            .flat_map(|p| v.audio(p))
            .filter_map(|a| match a {
                Audio::Speech(t) => Some(t),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn every_spoken_key_of_either_line_is_listed() {
        let zones = vec!["Centro".to_string(), "Lido".to_string()];
        let mut keys: HashSet<PromptKey> = HashSet::new();
        for flow in [Flow::Citizen, Flow::Staff] {
            keys.extend(line_prompts(flow, "Itri", &zones).iter().map(Prompt::key));
        }
        let own_audio = [
            PromptKey::Beep,
            PromptKey::Playback,
            PromptKey::LatestMessage,
        ];
        for k in PromptKey::ALL {
            assert_eq!(keys.contains(&k), !own_audio.contains(&k), "{k:?}");
        }
    }

    #[test]
    fn the_read_back_warms_every_digit_and_each_zone_is_named() {
        let zones = vec!["Centro".to_string(), "Lido".to_string()];
        let texts = speech(&line_prompts(Flow::Citizen, "Itri", &zones));
        for d in '0'..='9' {
            assert!(texts.contains(&d.to_string()), "digit {d}");
        }
        // A caller's read-back of 6891 needs nothing that is not warm.
        let caller = speech(&[Prompt::ReadBack {
            digits: "6891".into(),
        }]);
        assert!(caller.is_subset(&texts));
        for z in [Some("Lido".to_string()), None] {
            let one = speech(&[Prompt::Registered { zone: z }]);
            assert!(one.is_subset(&texts));
        }
        assert!(texts.iter().any(|t| t.contains("Itri")));
    }
}

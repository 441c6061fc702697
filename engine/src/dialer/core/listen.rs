//! An answered campaign call as the resident hears it: the playlists the core asks the
//! media path for (pre-roll and message, post-roll, the acknowledgement, the opt-out
//! wait), the keys acted on as they arrive (RFC 4733 from the media path, INFO from the
//! endpoint) by the campaign's rules (`model::heard`), and the facts the call's result is
//! judged from when it ends.

use std::time::Instant;

use tracing::debug;

use super::attempt::{CallPlan, Phase};
use super::io::{Action, CallToken};
use super::DialerCore;
use crate::model::heard::{KeyEffect, Listened, Stage};

pub use crate::dialer::call_media::PlayItem;

/// Silence between two plays of the message (as the media path's `start` leaves).
pub const PLAY_GAP_MS: u32 = 500;
/// How long the call waits, after the post-roll, for the confirm key it asked for.
pub const AFTER_POST_ROLL_MS: u32 = 4_000;
/// How long the call waits for the confirm key after the opt-out key.
pub const OPTOUT_WAIT_MS: u32 = 8_000;

/// What the call is playing now, by the id of the playlist asked for (0: the campaign
/// stream of `StartMedia`, which reports its end as `Finished`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Playing {
    /// Nothing yet (not answered).
    #[default]
    Nothing,
    /// The `StartMedia` stream of the message.
    Stream,
    /// Pre-roll and the message's plays.
    Message(u32),
    /// Post-roll and the wait for a key after it.
    PostRoll(u32),
    /// The acknowledgement of a confirmation or an opt-out; hang up at its end.
    Thanks(u32),
    /// The tones asking for the confirm key after the opt-out key, and the wait.
    OptOutWait(u32),
}

/// What an answered call plays and what its keys did.
#[derive(Debug, Clone, Default)]
pub struct Listening {
    /// Where the call is for its keys.
    pub stage: Option<Stage>,
    /// What the call did with its message.
    pub facts: Listened,
    /// What machine detection found (campaigns with `amd`).
    pub amd: super::amd::Detected,
    playing: Playing,
    last_id: u32,
}

impl Listening {
    /// Starts playing `items` as what `playing` names (under a fresh playlist id): the
    /// action that plays them on `call`.
    fn play(
        &mut self,
        call: CallToken,
        playing: fn(u32) -> Playing,
        items: Vec<PlayItem>,
    ) -> Action {
        self.last_id += 1;
        let id = self.last_id;
        self.playing = playing(id);
        Action::Play { call, items, id }
    }
}

/// The pre-roll and the message's plays, from the first frame.
fn message_items(plan: &CallPlan) -> Vec<PlayItem> {
    let mut items = vec![];
    if let Some(p) = &plan.pre_roll {
        items.push(PlayItem::Prompt(p.clone()));
    }
    for i in 0..plan.play_count.max(1) {
        if i > 0 {
            items.push(PlayItem::Silence { ms: PLAY_GAP_MS });
        }
        items.push(PlayItem::Prompt(plan.prompt.clone()));
    }
    items
}

/// The acknowledgement: the campaign's prompt, or two short high tones.
fn thanks_items(plan: &CallPlan) -> Vec<PlayItem> {
    match &plan.confirmed_prompt {
        Some(p) => vec![PlayItem::Prompt(p.clone())],
        None => vec![
            PlayItem::Tone { hz: 1200, ms: 150 },
            PlayItem::Silence { ms: 100 },
            PlayItem::Tone { hz: 1200, ms: 150 },
            PlayItem::Silence { ms: 300 },
        ],
    }
}

/// The opt-out question: three low tones, then the wait for the confirm key.
fn optout_items() -> Vec<PlayItem> {
    vec![
        PlayItem::Tone { hz: 600, ms: 120 },
        PlayItem::Silence { ms: 80 },
        PlayItem::Tone { hz: 600, ms: 120 },
        PlayItem::Silence { ms: 80 },
        PlayItem::Tone { hz: 600, ms: 120 },
        PlayItem::Silence { ms: OPTOUT_WAIT_MS },
    ]
}

impl DialerCore {
    /// The call was answered and its media reserved: play the message (through the
    /// campaign stream when there is no pre-roll, so plain campaigns stream as before).
    pub(super) fn start_listening(&mut self, token: CallToken) {
        let Some(a) = self.calls.get_mut(&token) else {
            return;
        };
        if a.plan.pre_roll.is_some() {
            return self.play_message(token);
        }
        a.listen.stage = Some(Stage::Message { repeats: 0 });
        a.listen.playing = Playing::Stream;
    }

    /// Plays the message (pre-roll and plays) from its first frame as a playlist: a
    /// screened call once detection lets it, whatever was playing before.
    pub(super) fn play_message(&mut self, token: CallToken) {
        let Some(a) = self.calls.get_mut(&token) else {
            return;
        };
        a.listen.stage = Some(Stage::Message { repeats: 0 });
        let play = a
            .listen
            .play(token, Playing::Message, message_items(&a.plan));
        self.actions.push_back(play);
    }

    /// A key pressed on an answered call: act on it by the campaign's rules.
    pub(super) fn on_key(&mut self, _now: Instant, token: CallToken, digit: char) {
        let Some(a) = self.calls.get_mut(&token) else {
            return;
        };
        a.digits.push(digit);
        let (Some(stage), Phase::Playing { .. }) = (a.listen.stage, &a.phase) else {
            return;
        };
        let (effect, next) = a.plan.keys.press(stage, digit);
        a.listen.stage = Some(next);
        debug!(call = token.0, %digit, ?effect, "key");
        let (playing, items): (fn(u32) -> Playing, Vec<PlayItem>) = match effect {
            KeyEffect::Ignore => return,
            KeyEffect::Confirm => {
                a.listen.facts.confirmed = true;
                (Playing::Thanks, thanks_items(&a.plan))
            }
            KeyEffect::OptOut => {
                a.listen.facts.opted_out = true;
                (Playing::Thanks, thanks_items(&a.plan))
            }
            KeyEffect::Repeat | KeyEffect::BackToMessage => {
                (Playing::Message, message_items(&a.plan))
            }
            KeyEffect::AskOptOut => (Playing::OptOutWait, optout_items()),
        };
        let play = a.listen.play(token, playing, items);
        self.actions.push_back(play);
    }

    /// The campaign stream played to its end (`Finished`).
    pub(super) fn on_stream_finished(&mut self, token: CallToken) {
        let Some(a) = self.calls.get_mut(&token) else {
            return;
        };
        if a.listen.playing != Playing::Stream {
            return; // replaced by a playlist since
        }
        a.phase.record_played(1000);
        self.after_message(token);
    }

    /// A playlist played to its end.
    pub(super) fn on_played(&mut self, token: CallToken, id: u32) {
        let Some(a) = self.calls.get_mut(&token) else {
            return;
        };
        match a.listen.playing {
            Playing::Message(i) if i == id => {
                a.phase.record_played(1000);
                self.after_message(token);
            }
            Playing::PostRoll(i) | Playing::Thanks(i) if i == id => self.hang_up(token),
            Playing::OptOutWait(i) if i == id => {
                // No confirmation came: back to the message from its first frame.
                if let Some(Stage::OptOutAsked { repeats }) = a.listen.stage {
                    a.listen.stage = Some(Stage::Message { repeats });
                }
                let play = a
                    .listen
                    .play(token, Playing::Message, message_items(&a.plan));
                self.actions.push_back(play);
            }
            _ => {} // an older playlist, replaced since
        }
    }

    /// The message reached its end: the post-roll (and the wait for a key after it), or
    /// the end of the call.
    fn after_message(&mut self, token: CallToken) {
        let Some(a) = self.calls.get_mut(&token) else {
            return;
        };
        a.listen.facts.message_done = true;
        let Some(post) = a.plan.post_roll.clone() else {
            self.hang_up(token);
            return;
        };
        let mut items = vec![PlayItem::Prompt(post)];
        if a.plan.keys.confirm.is_some() {
            items.push(PlayItem::Silence {
                ms: AFTER_POST_ROLL_MS,
            });
        }
        let play = a.listen.play(token, Playing::PostRoll, items);
        self.actions.push_back(play);
    }

    fn hang_up(&mut self, token: CallToken) {
        if let Some(h) = self.calls.get(&token).and_then(|a| a.phase.call()) {
            self.actions.push_back(Action::Hangup(h));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CampaignSpec;

    fn plan() -> CallPlan {
        let mut spec: CampaignSpec = crate::dialer::core::tests_support::spec();
        spec.play_count = 2;
        spec.delivery.pre_roll = Some("hello.wav".into());
        CallPlan::of(&spec)
    }

    #[test]
    fn the_message_playlist_starts_with_the_pre_roll_and_plays_each_time() {
        let p = plan();
        let items = message_items(&p);
        assert_eq!(items[0], PlayItem::Prompt("hello.wav".into()));
        assert_eq!(items[1], PlayItem::Prompt(p.prompt.clone()));
        assert_eq!(items[2], PlayItem::Silence { ms: PLAY_GAP_MS });
        assert_eq!(items[3], PlayItem::Prompt(p.prompt.clone()));
        assert_eq!(items.len(), 4);
    }

    #[test]
    fn thanks_is_the_prompt_or_tones() {
        let mut p = plan();
        assert!(matches!(thanks_items(&p)[0], PlayItem::Tone { .. }));
        p.confirmed_prompt = Some("grazie.wav".into());
        assert_eq!(
            thanks_items(&p),
            vec![PlayItem::Prompt("grazie.wav".into())]
        );
    }
}

//! What both menus share: the keys a caller presses, and the script of actions a menu has
//! queued, which a playing prompt holds back until it is done.
//!
//! The script is the menu's output queue. `poll` hands out actions in order; a `Play`
//! blocks the rest until `prompt_done`. A key pressed while prompts are still queued
//! replaces the script (barge-in: the caller who knows the menu need not listen to it).
//! A menu waits for input once its script has nothing left to play; its deadline runs
//! from that moment (or from the last key of an entry in progress).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{Action, Prompt, MAX_MISTAKES};

/// A key of the phone's keypad, parsed once at the edge (RFC 4733 event or SIP INFO).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    /// 0–9.
    Digit(u8),
    /// `*`: back.
    Star,
    /// `#`: end (of an entry, or of the call at a menu).
    Hash,
}

impl Key {
    /// From a keypad character (`0`–`9`, `*`, `#`), as SIP INFO `Signal=` carries it.
    pub fn from_char(c: char) -> Option<Key> {
        match c {
            '0'..='9' => Some(Key::Digit(c as u8 - b'0')),
            '*' => Some(Key::Star),
            '#' => Some(Key::Hash),
            _ => None,
        }
    }

    /// From an RFC 4733 event code (0–9 digits, 10 `*`, 11 `#`; A–D and tones are not
    /// keys a menu knows).
    pub fn from_rfc4733(event: u8) -> Option<Key> {
        match event {
            0..=9 => Some(Key::Digit(event)),
            10 => Some(Key::Star),
            11 => Some(Key::Hash),
            _ => None,
        }
    }
}

/// A menu's queued actions, its wait and its count of mistakes.
#[derive(Debug)]
pub(crate) struct Script {
    queue: VecDeque<Action>,
    playing: bool,
    since: Instant,
    /// Keys of an entry in progress (a PIN, a zone number) and when the last came.
    pub entry: String,
    last_key: Instant,
    /// Wrong keys and silences so far.
    pub mistakes: u8,
    /// The call is over once the queue drains: no more input is taken.
    pub ended: bool,
}

impl Script {
    pub fn new(now: Instant) -> Script {
        Script {
            queue: VecDeque::new(),
            playing: false,
            since: now,
            entry: String::new(),
            last_key: now,
            mistakes: 0,
            ended: false,
        }
    }

    /// Replaces what is still queued by `actions` (barge-in or a new step).
    pub fn replace(&mut self, now: Instant, actions: impl IntoIterator<Item = Action>) {
        self.queue.clear();
        self.playing = false;
        self.queue.extend(actions);
        self.since = now;
        self.entry.clear();
    }

    /// Ends the call after `actions` (a last prompt, then the hang-up).
    pub fn finish(&mut self, now: Instant, actions: impl IntoIterator<Item = Action>) {
        self.replace(now, actions);
        self.queue.push_back(Action::Hangup);
        self.ended = true;
    }

    /// The next action, unless a prompt is playing.
    pub fn poll(&mut self) -> Option<Action> {
        if self.playing {
            return None;
        }
        let a = self.queue.pop_front()?;
        self.playing = matches!(a, Action::Play(_));
        Some(a)
    }

    pub fn prompt_done(&mut self, now: Instant) {
        if self.playing {
            self.playing = false;
            self.since = now;
        }
    }

    /// Whether the menu is waiting for the caller (nothing left to play).
    pub fn waiting(&self) -> bool {
        !self.ended && !self.playing && !self.queue.iter().any(|a| matches!(a, Action::Play(_)))
    }

    /// Adds a key to the entry in progress.
    pub fn push_key(&mut self, now: Instant, c: char) {
        self.entry.push(c);
        self.last_key = now;
    }

    /// The deadline of the wait: `wait` after the questions ended, or `inter_digit` after
    /// the last key of an entry in progress. None while prompts play or after the end.
    pub fn deadline(&self, wait: Duration, inter_digit: Duration) -> Option<Instant> {
        if !self.waiting() {
            return None;
        }
        Some(if self.entry.is_empty() {
            self.since + wait
        } else {
            self.last_key + inter_digit
        })
    }

    /// Counts a mistake: the question again (after "invalid choice" for a wrong key), or
    /// the polite goodbye at the third.
    pub fn mistake(&mut self, now: Instant, wrong_key: bool, question: Vec<Action>) {
        self.mistakes += 1;
        if self.mistakes >= MAX_MISTAKES {
            self.finish(now, [Action::Play(Prompt::TooManyMistakes)]);
            return;
        }
        let lead = wrong_key.then_some(Action::Play(Prompt::Invalid));
        self.replace(now, lead.into_iter().chain(question));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_from_info_and_rfc4733() {
        assert_eq!(Key::from_char('7'), Some(Key::Digit(7)));
        assert_eq!(Key::from_char('#'), Some(Key::Hash));
        assert_eq!(Key::from_char('A'), None);
        assert_eq!(Key::from_rfc4733(10), Some(Key::Star));
        assert_eq!(Key::from_rfc4733(11), Some(Key::Hash));
        assert_eq!(Key::from_rfc4733(12), None);
    }

    #[test]
    fn a_play_holds_the_script_until_done_and_the_wait_starts_then() {
        let t0 = Instant::now();
        let mut s = Script::new(t0);
        s.replace(t0, [Action::Play(Prompt::MainMenu), Action::StartRecording]);
        let w = Duration::from_secs(8);
        assert_eq!(s.poll(), Some(Action::Play(Prompt::MainMenu)));
        assert_eq!(s.poll(), None);
        assert_eq!(s.deadline(w, w), None);
        let t1 = t0 + Duration::from_secs(5);
        s.prompt_done(t1);
        assert_eq!(s.deadline(w, w), Some(t1 + w));
        assert_eq!(s.poll(), Some(Action::StartRecording));
        assert_eq!(s.poll(), None);
    }

    #[test]
    fn the_third_mistake_says_goodbye_and_hangs_up() {
        let t0 = Instant::now();
        let mut s = Script::new(t0);
        s.mistake(t0, true, vec![Action::Play(Prompt::MainMenu)]);
        assert_eq!(s.poll(), Some(Action::Play(Prompt::Invalid)));
        s.mistake(t0, false, vec![Action::Play(Prompt::MainMenu)]);
        assert_eq!(s.poll(), Some(Action::Play(Prompt::MainMenu)));
        s.mistake(t0, true, vec![Action::Play(Prompt::MainMenu)]);
        assert_eq!(s.poll(), Some(Action::Play(Prompt::TooManyMistakes)));
        s.prompt_done(t0);
        assert_eq!(s.poll(), Some(Action::Hangup));
        assert!(s.ended);
    }
}

//! The citizens' line: register this number (with a zone), change its zone, unregister
//! it (opt-out and erasure), or hear the town's latest message.
//!
//! ```text
//! Menu --1--> [read back | already registered] Zone --n|0--> Consent --1--> registered, bye
//!                                              (registered: Zone --n|0--> zone changed, bye)
//! Menu --2--> ConfirmUnregister --1--> unregistered, bye      (not registered: Menu)
//! Menu --3--> latest message (or none) --> Menu
//! `*` goes back one step, `#` at a menu ends the call (and ends a multi-key entry),
//! a wrong key or a silence is a mistake; the third ends the call politely.
//! ```

use std::time::Instant;

use super::caller::CallerId;
use super::script::{Key, Script};
use super::{Action, Prompt, Timing};

/// What the menu knows of the call when it starts (looked up by the driver).
#[derive(Debug, Clone)]
pub struct CitizenContext {
    /// The town's display name, for the greeting.
    pub town: String,
    /// The town's zones in menu order (key 1 is the first).
    pub zones: Vec<String>,
    /// Who calls.
    pub caller: CallerId,
    /// The caller's registration if the number is registered: its zone (None: the whole
    /// town).
    pub registered: Option<Option<String>>,
    /// Whether the town has a latest message to play.
    pub has_latest: bool,
}

/// Where the caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// 1 / 2 / 3.
    Menu,
    /// A zone number (0: the whole town).
    Zone,
    /// 1 confirms the registration for this zone.
    Consent { zone: Option<String> },
    /// 1 confirms the erasure.
    ConfirmUnregister,
    /// Saying goodbye; no more input.
    Done,
}

/// The citizens' menu for one call.
#[derive(Debug)]
pub struct CitizenMenu {
    ctx: CitizenContext,
    timing: Timing,
    state: State,
    script: Script,
}

impl CitizenMenu {
    /// Starts the menu: the greeting and the main menu, or, for a withheld number, the
    /// explanation and the hang-up (nothing is stored).
    pub fn new(now: Instant, ctx: CitizenContext, timing: Timing) -> CitizenMenu {
        let mut m = CitizenMenu {
            ctx,
            timing,
            state: State::Menu,
            script: Script::new(now),
        };
        if m.ctx.caller.number().is_none() {
            m.state = State::Done;
            m.script.finish(now, [Action::Play(Prompt::Withheld)]);
        } else {
            let greet = Prompt::Greeting {
                town: m.ctx.town.clone(),
            };
            m.script
                .replace(now, [Action::Play(greet), Action::Play(Prompt::MainMenu)]);
        }
        m
    }

    /// The next action for the driver.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.script.poll()
    }

    /// When [`Self::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.script
            .deadline(self.timing.digit, self.timing.inter_digit)
    }

    /// The prompt asked for last has finished playing.
    pub fn handle_prompt_done(&mut self, now: Instant) {
        self.script.prompt_done(now);
    }

    /// A silence or an unfinished entry ran out of time.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_none_or(|d| now < d) {
            return;
        }
        if self.state == State::Zone && !self.script.entry.is_empty() {
            return self.zone_entered(now);
        }
        let q = self.question();
        self.script.mistake(now, false, q);
    }

    /// A key from the caller.
    pub fn handle_digit(&mut self, now: Instant, key: Key) {
        if self.script.ended {
            return;
        }
        match (&self.state, key) {
            (State::Zone, Key::Digit(d)) => return self.zone_key(now, d),
            (State::Zone, Key::Hash) if !self.script.entry.is_empty() => {
                return self.zone_entered(now)
            }
            (_, Key::Hash) => {
                self.state = State::Done;
                return self.script.finish(now, [Action::Play(Prompt::Goodbye)]);
            }
            (_, Key::Star) => return self.back(now),
            _ => {}
        }
        match (self.state.clone(), key) {
            (State::Menu, Key::Digit(1)) => self.start_registration(now),
            (State::Menu, Key::Digit(2)) => self.start_unregistration(now),
            (State::Menu, Key::Digit(3)) => {
                let msg = if self.ctx.has_latest {
                    Prompt::LatestMessage
                } else {
                    Prompt::NoMessage
                };
                self.script
                    .replace(now, [Action::Play(msg), Action::Play(Prompt::MainMenu)]);
            }
            (State::Consent { zone }, Key::Digit(1)) => {
                self.state = State::Done;
                self.script.finish(
                    now,
                    [
                        Action::Register {
                            zone: zone.clone(),
                            change: false,
                        },
                        Action::Play(Prompt::Registered { zone }),
                    ],
                );
            }
            (State::ConfirmUnregister, Key::Digit(1)) => {
                self.state = State::Done;
                self.script.finish(
                    now,
                    [Action::Unregister, Action::Play(Prompt::Unregistered)],
                );
            }
            _ => {
                let q = self.question();
                self.script.mistake(now, true, q);
            }
        }
    }

    /// The current step's question, asked again after a mistake or `*`.
    fn question(&self) -> Vec<Action> {
        let p = match &self.state {
            State::Menu | State::Done => Prompt::MainMenu,
            State::Zone => self.zone_menu(),
            State::Consent { .. } => Prompt::Consent,
            State::ConfirmUnregister => Prompt::UnregisterConfirm,
        };
        vec![Action::Play(p)]
    }

    fn zone_menu(&self) -> Prompt {
        Prompt::ZoneMenu {
            zones: self.ctx.zones.clone(),
        }
    }

    /// `*`: one step back (the main menu is asked again from the main menu).
    fn back(&mut self, now: Instant) {
        self.state = match self.state {
            State::Consent { .. } => State::Zone,
            _ => State::Menu,
        };
        let q = self.question();
        self.script.replace(now, q);
    }

    fn start_registration(&mut self, now: Instant) {
        let intro = match &self.ctx.registered {
            Some(zone) => Prompt::AlreadyRegistered { zone: zone.clone() },
            None => Prompt::ReadBack {
                digits: self.ctx.caller.last_digits(4),
            },
        };
        self.state = State::Zone;
        let zones = self.zone_menu();
        self.script
            .replace(now, [Action::Play(intro), Action::Play(zones)]);
    }

    fn start_unregistration(&mut self, now: Instant) {
        if self.ctx.registered.is_none() {
            let p = [
                Action::Play(Prompt::NotRegistered),
                Action::Play(Prompt::MainMenu),
            ];
            return self.script.replace(now, p);
        }
        self.state = State::ConfirmUnregister;
        self.script
            .replace(now, [Action::Play(Prompt::UnregisterConfirm)]);
    }

    /// Keys a zone number needs: one up to nine zones, two beyond.
    fn zone_width(&self) -> usize {
        self.ctx.zones.len().max(1).to_string().len()
    }

    fn zone_key(&mut self, now: Instant, d: u8) {
        if d == 0 && self.script.entry.is_empty() {
            return self.zone_chosen(now, None);
        }
        if self.script.entry.is_empty() {
            // Barge-in: the zone list stops at the first key.
            self.script.replace(now, []);
        }
        self.script.push_key(now, char::from(b'0' + d));
        if self.script.entry.len() >= self.zone_width() {
            self.zone_entered(now);
        }
    }

    /// The entry is complete (by its width, `#` or the inter-digit timeout).
    fn zone_entered(&mut self, now: Instant) {
        let n: usize = self.script.entry.parse().unwrap_or(0);
        match n.checked_sub(1).and_then(|i| self.ctx.zones.get(i)) {
            Some(z) => self.zone_chosen(now, Some(z.clone())),
            None => {
                let q = self.question();
                self.script.mistake(now, true, q);
            }
        }
    }

    fn zone_chosen(&mut self, now: Instant, zone: Option<String>) {
        if self.ctx.registered.is_some() {
            self.state = State::Done;
            let change = Action::Register {
                zone: zone.clone(),
                change: true,
            };
            self.script
                .finish(now, [change, Action::Play(Prompt::ZoneChanged { zone })]);
        } else {
            self.state = State::Consent { zone };
            self.script.replace(now, [Action::Play(Prompt::Consent)]);
        }
    }
}

#[cfg(test)]
#[path = "citizen_tests.rs"]
mod tests;

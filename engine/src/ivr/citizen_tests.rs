//! The citizens' menu on virtual time: every step, key and timeout.

use std::time::{Duration, Instant};

use super::*;
use crate::ivr::CallerId;
use crate::model::NumberType;

fn caller() -> CallerId {
    CallerId::Known {
        e164: "+393331234567".into(),
        number_type: NumberType::Mobile,
    }
}

fn ctx(registered: Option<Option<String>>) -> CitizenContext {
    CitizenContext {
        town: "Itri".into(),
        zones: vec!["Centro".into(), "Lido".into()],
        caller: caller(),
        registered,
        has_latest: true,
    }
}

/// A call: the menu, a virtual clock, and every action the driver was given.
struct Call {
    m: CitizenMenu,
    now: Instant,
    log: Vec<Action>,
}

impl Call {
    fn new(c: CitizenContext) -> Call {
        let now = Instant::now();
        Call {
            m: CitizenMenu::new(now, c, Timing::default()),
            now,
            log: vec![],
        }
    }

    /// Drains actions, finishing each prompt 2 s after it starts.
    fn run(&mut self) -> Vec<Action> {
        let mut out = vec![];
        while let Some(a) = self.m.poll_action() {
            if matches!(a, Action::Play(_)) {
                self.now += Duration::from_secs(2);
                self.m.handle_prompt_done(self.now);
            }
            out.push(a);
        }
        self.log.extend(out.clone());
        out
    }

    fn key(&mut self, c: char) -> Vec<Action> {
        self.now += Duration::from_millis(300);
        self.m.handle_digit(self.now, Key::from_char(c).unwrap());
        self.run()
    }

    /// Jumps to the deadline and fires it.
    fn silence(&mut self) -> Vec<Action> {
        self.now = self.m.poll_timeout().expect("a deadline");
        self.m.handle_timeout(self.now);
        self.run()
    }
}

fn play(p: Prompt) -> Action {
    Action::Play(p)
}

fn zone_menu() -> Action {
    play(Prompt::ZoneMenu {
        zones: vec!["Centro".into(), "Lido".into()],
    })
}

#[test]
fn registration_with_zone_choice_reads_back_and_asks_consent() {
    let mut c = Call::new(ctx(None));
    assert_eq!(
        c.run(),
        [
            play(Prompt::Greeting {
                town: "Itri".into()
            }),
            play(Prompt::MainMenu)
        ]
    );
    assert_eq!(
        c.key('1'),
        [
            play(Prompt::ReadBack {
                digits: "4567".into()
            }),
            zone_menu()
        ]
    );
    assert_eq!(c.key('2'), [play(Prompt::Consent)]);
    let lido = Some("Lido".to_string());
    assert_eq!(
        c.key('1'),
        [
            Action::Register {
                zone: lido.clone(),
                change: false
            },
            play(Prompt::Registered { zone: lido }),
            Action::Hangup
        ]
    );
    assert_eq!(c.m.poll_timeout(), None);
    assert_eq!(c.key('1'), []);
}

#[test]
fn zero_registers_for_the_whole_town() {
    let mut c = Call::new(ctx(None));
    c.run();
    c.key('1');
    c.key('0');
    let out = c.key('1');
    assert_eq!(
        out[0],
        Action::Register {
            zone: None,
            change: false
        }
    );
}

#[test]
fn an_already_registered_number_is_told_and_may_change_zone_without_new_consent() {
    let mut c = Call::new(ctx(Some(Some("Centro".into()))));
    c.run();
    assert_eq!(
        c.key('1'),
        [
            play(Prompt::AlreadyRegistered {
                zone: Some("Centro".into())
            }),
            zone_menu()
        ]
    );
    let out = c.key('2');
    assert_eq!(
        out,
        [
            Action::Register {
                zone: Some("Lido".into()),
                change: true
            },
            play(Prompt::ZoneChanged {
                zone: Some("Lido".into())
            }),
            Action::Hangup
        ]
    );
}

#[test]
fn unregistration_is_confirmed_with_1_and_star_goes_back() {
    let mut c = Call::new(ctx(Some(None)));
    c.run();
    assert_eq!(c.key('2'), [play(Prompt::UnregisterConfirm)]);
    assert_eq!(c.key('*'), [play(Prompt::MainMenu)]);
    c.key('2');
    assert_eq!(
        c.key('1'),
        [
            Action::Unregister,
            play(Prompt::Unregistered),
            Action::Hangup
        ]
    );
}

#[test]
fn unregistering_an_unknown_number_returns_to_the_menu() {
    let mut c = Call::new(ctx(None));
    c.run();
    assert_eq!(
        c.key('2'),
        [play(Prompt::NotRegistered), play(Prompt::MainMenu)]
    );
    assert!(!c.log.contains(&Action::Unregister));
}

#[test]
fn latest_message_then_the_menu_again_or_none() {
    let mut c = Call::new(ctx(None));
    c.run();
    assert_eq!(
        c.key('3'),
        [play(Prompt::LatestMessage), play(Prompt::MainMenu)]
    );
    let mut c = Call::new(CitizenContext {
        has_latest: false,
        ..ctx(None)
    });
    c.run();
    assert_eq!(
        c.key('3'),
        [play(Prompt::NoMessage), play(Prompt::MainMenu)]
    );
}

#[test]
fn a_withheld_number_is_told_how_to_register_and_nothing_is_stored() {
    let mut c = Call::new(CitizenContext {
        caller: CallerId::Withheld,
        ..ctx(None)
    });
    assert_eq!(c.run(), [play(Prompt::Withheld), Action::Hangup]);
    assert_eq!(c.key('1'), []);
    assert_eq!(c.m.poll_timeout(), None);
}

#[test]
fn consent_star_goes_back_to_the_zones_and_hash_ends_the_call() {
    let mut c = Call::new(ctx(None));
    c.run();
    c.key('1');
    c.key('1');
    assert_eq!(c.key('*'), [zone_menu()]);
    assert_eq!(c.key('#'), [play(Prompt::Goodbye), Action::Hangup]);
    assert!(!c.log.iter().any(|a| matches!(a, Action::Register { .. })));
}

#[test]
fn silences_and_wrong_keys_count_and_the_third_says_goodbye() {
    let mut c = Call::new(ctx(None));
    c.run();
    let t = c.now;
    assert_eq!(c.m.poll_timeout(), Some(t + Duration::from_secs(8)));
    // An early timeout call changes nothing.
    c.m.handle_timeout(t + Duration::from_secs(7));
    assert_eq!(c.run(), []);
    assert_eq!(c.silence(), [play(Prompt::MainMenu)]);
    assert_eq!(c.key('9'), [play(Prompt::Invalid), play(Prompt::MainMenu)]);
    assert_eq!(c.silence(), [play(Prompt::TooManyMistakes), Action::Hangup]);
    assert_eq!(c.m.poll_timeout(), None);
}

#[test]
fn two_digit_zones_wait_for_the_inter_digit_timeout_or_hash() {
    let zones: Vec<String> = (1..=12).map(|i| format!("Z{i}")).collect();
    let mut c = Call::new(CitizenContext {
        zones: zones.clone(),
        ..ctx(None)
    });
    c.run();
    c.key('1');
    // "1" could begin 10, 11, 12: the menu waits 3 s, then takes zone 1.
    assert_eq!(c.key('1'), []);
    assert_eq!(c.m.poll_timeout(), Some(c.now + Duration::from_secs(3)));
    assert_eq!(c.silence(), [play(Prompt::Consent)]);
    // Two keys complete the entry at once; `#` ends a shorter one.
    let mut c = Call::new(CitizenContext {
        zones: zones.clone(),
        ..ctx(Some(None))
    });
    c.run();
    c.key('1');
    c.key('1');
    let out = c.key('2');
    assert_eq!(
        out[0],
        Action::Register {
            zone: Some("Z12".into()),
            change: true
        }
    );
    let mut c = Call::new(CitizenContext {
        zones,
        ..ctx(Some(None))
    });
    c.run();
    c.key('1');
    c.key('7');
    let out = c.key('#');
    assert_eq!(
        out[0],
        Action::Register {
            zone: Some("Z7".into()),
            change: true
        }
    );
}

#[test]
fn a_zone_out_of_the_list_is_a_mistake() {
    let mut c = Call::new(ctx(None));
    c.run();
    c.key('1');
    assert_eq!(c.key('5'), [play(Prompt::Invalid), zone_menu()]);
}

#[test]
fn keys_during_the_greeting_barge_in() {
    let mut c = Call::new(ctx(None));
    let first = c.m.poll_action();
    assert!(matches!(first, Some(Action::Play(Prompt::Greeting { .. }))));
    c.m.handle_digit(c.now, Key::Digit(1));
    assert!(matches!(
        c.m.poll_action(),
        Some(Action::Play(Prompt::ReadBack { .. }))
    ));
}

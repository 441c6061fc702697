//! An answered inbound call's menu and what its outputs become: plays (numbered, held
//! while their speech renders or until the take they play back exists), recordings,
//! registration writes, PIN failures against the shared [`PinGuard`], and a staff
//! member's campaign once the take is stored as a prompt.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::inbound_io::{InboundAction, Launch, LineContext};
use super::io::{Action, CallToken};
use crate::ivr::{
    self, Audio, CallerId, CitizenContext, CitizenMenu, Key, PinGuard, StaffContext, StaffLine,
    Timing,
};
use crate::metrics as m;
use crate::model::dids::Flow;
use crate::model::registrations::{NewRegistration, NOTICE_VERSION};
use crate::model::Source;

/// The line's state machine.
#[derive(Debug)]
enum Line {
    Citizen(CitizenMenu),
    Staff(StaffLine),
}

/// An answered inbound call's menu with what it knows of its line.
#[derive(Debug)]
pub(super) struct Menu {
    ctx: LineContext,
    line: Line,
    max_recording: Duration,
}

/// What one menu action became.
#[derive(Debug, Default)]
pub(super) struct Step {
    /// For the driver.
    pub actions: Vec<Action>,
    /// End the call.
    pub hangup: bool,
    /// A wrong PIN locked the caller out.
    pub locked: bool,
}

impl Menu {
    /// Starts the line's menu for `caller` (`locked`: out for wrong PINs).
    pub fn new(now: Instant, ctx: LineContext, caller: CallerId, locked: bool, t: Timing) -> Menu {
        let line = match ctx.flow {
            Flow::Citizen => Line::Citizen(CitizenMenu::new(
                now,
                CitizenContext {
                    town: ctx.town.clone(),
                    zones: ctx.zones.clone(),
                    caller,
                    registered: ctx.registered.clone(),
                    has_latest: ctx.voice.latest.is_some(),
                },
                t,
            )),
            Flow::Staff => Line::Staff(StaffLine::new(
                now,
                StaffContext {
                    caller,
                    pin: ctx.pin.clone(),
                    locked,
                },
                t,
            )),
        };
        Menu {
            ctx,
            line,
            max_recording: t.max_recording,
        }
    }

    pub fn poll_action(&mut self) -> Option<ivr::Action> {
        match &mut self.line {
            Line::Citizen(m) => m.poll_action(),
            Line::Staff(m) => m.poll_action(),
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.line {
            Line::Citizen(m) => m.poll_timeout(),
            Line::Staff(m) => m.poll_timeout(),
        }
    }

    pub fn handle_digit(&mut self, now: Instant, key: Key) {
        match &mut self.line {
            Line::Citizen(m) => m.handle_digit(now, key),
            Line::Staff(m) => m.handle_digit(now, key),
        }
    }

    pub fn handle_prompt_done(&mut self, now: Instant) {
        match &mut self.line {
            Line::Citizen(m) => m.handle_prompt_done(now),
            Line::Staff(m) => m.handle_prompt_done(now),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match &mut self.line {
            Line::Citizen(m) => m.handle_timeout(now),
            Line::Staff(m) => m.handle_timeout(now),
        }
    }

    pub fn handle_locked_out(&mut self, now: Instant) {
        if let Line::Staff(m) = &mut self.line {
            m.handle_locked_out(now);
        }
    }

    /// What a menu action becomes for the driver.
    #[allow(clippy::too_many_arguments)]
    pub fn execute(
        &self,
        a: ivr::Action,
        token: CallToken,
        caller: &CallerId,
        p: &mut Pending,
        wall: i64,
        guard: &mut PinGuard,
        now: Instant,
    ) -> Step {
        let mut s = Step::default();
        let tenant = self.ctx.tenant.clone();
        let mut act = |a: InboundAction| s.actions.push(Action::Inbound(a));
        match a {
            ivr::Action::Play(prompt) => {
                if let Some((id, items)) = p.play(self.ctx.voice.audio(&prompt)) {
                    act(InboundAction::Play { token, id, items });
                }
            }
            ivr::Action::Register { zone, change } => {
                if let Some(reg) = registration(caller, zone, change, wall) {
                    act(InboundAction::Register { tenant, reg });
                }
            }
            ivr::Action::Unregister => {
                if let Some(number) = caller.number() {
                    metrics::counter!(m::IVR_REGISTRATIONS, "action" => "unregister").increment(1);
                    let number = number.to_string();
                    act(InboundAction::Unregister { tenant, number });
                }
            }
            ivr::Action::PinFailed => {
                if let Some(n) = caller.number() {
                    s.locked = guard.failed(n, now);
                }
            }
            ivr::Action::StartRecording => {
                p.take = None;
                act(InboundAction::Record {
                    token,
                    max: self.max_recording,
                });
            }
            ivr::Action::StopRecording => act(InboundAction::StopRecord(token)),
            ivr::Action::KeepRecording => match &p.take {
                Some((pcm, rate)) => act(InboundAction::KeepTake {
                    token,
                    tenant,
                    pcm: pcm.clone(),
                    rate: *rate,
                }),
                None => warn!(call = token.0, "keep asked before the take arrived"),
            },
            ivr::Action::DiscardRecording => {
                p.take = None;
                p.kept = None;
            }
            ivr::Action::LaunchEmergency | ivr::Action::SaveDraft => {
                p.decision = Some(Decision {
                    tenant,
                    caller: caller.number().unwrap_or_default().to_string(),
                    at_ms: wall,
                    now: matches!(a, ivr::Action::LaunchEmergency),
                });
                if let Some(l) = p.launch_ready() {
                    act(InboundAction::Launch(Box::new(l)));
                }
            }
            ivr::Action::Hangup => s.hangup = true,
        }
        s
    }
}

/// The registration (or zone change) a known caller asked for by phone, counted; `None`
/// for a withheld number, which the menu never registers.
fn registration(
    caller: &CallerId,
    zone: Option<String>,
    change: bool,
    wall: i64,
) -> Option<NewRegistration> {
    let CallerId::Known { e164, number_type } = caller else {
        return None;
    };
    let action = if change { "zone_change" } else { "register" };
    metrics::counter!(m::IVR_REGISTRATIONS, "action" => action).increment(1);
    Some(NewRegistration {
        number: e164.clone(),
        number_type: *number_type,
        source: Source::Ivr,
        zone,
        consent_ms: wall,
        notice_version: NOTICE_VERSION.to_string(),
    })
}

/// A staff member's choice, waiting for the take to be stored.
#[derive(Debug, Clone)]
pub(super) struct Decision {
    tenant: String,
    caller: String,
    at_ms: i64,
    now: bool,
}

/// An inbound call's plays and takes in flight.
#[derive(Debug, Default)]
pub(super) struct Pending {
    next_id: u32,
    /// The play asked last (its id and pieces), until it ends or is replaced.
    current: Option<(u32, Vec<Audio>)>,
    /// The current play waits for the take.
    held: bool,
    /// The last take (PCM and rate).
    take: Option<(Arc<Vec<i16>>, u32)>,
    /// The take stored as a prompt: its id and SHA-256.
    kept: Option<(String, String)>,
    /// Send now or draft, once decided.
    decision: Option<Decision>,
}

impl Pending {
    /// Numbers a new play; gives it back unless it waits for the take.
    pub fn play(&mut self, items: Vec<Audio>) -> Option<(u32, Vec<Audio>)> {
        self.next_id += 1;
        let id = self.next_id;
        self.held = items.contains(&Audio::Take) && self.take.is_none();
        self.current = Some((id, items.clone()));
        (!self.held).then_some((id, items))
    }

    /// The id of the play in progress.
    pub fn current_play(&self) -> Option<u32> {
        self.current.as_ref().map(|(id, _)| *id)
    }

    /// Play `id` ended.
    pub fn played(&mut self) {
        self.current = None;
        self.held = false;
    }

    /// The speech of play `id` is ready: its pieces, to play now.
    pub fn rendered(&self, id: u32) -> Option<Vec<Audio>> {
        match &self.current {
            Some((i, items)) if *i == id && !self.held => Some(items.clone()),
            _ => None,
        }
    }

    /// The take arrived; a play held for it is given back.
    pub fn take_arrived(&mut self, pcm: Arc<Vec<i16>>, rate: u32) -> Option<(u32, Vec<Audio>)> {
        self.take = Some((pcm, rate));
        if !self.held {
            return None;
        }
        self.held = false;
        self.current.clone()
    }

    /// The take became a prompt; the campaign if the choice was made already.
    pub fn kept(&mut self, kept: Option<(String, String)>, _wall: i64) -> Option<Launch> {
        if kept.is_none() {
            warn!("the take could not be stored as a prompt");
        }
        self.kept = kept;
        self.launch_ready()
    }

    /// The campaign, once both the choice and the stored take exist (taken once).
    pub fn launch_ready(&mut self) -> Option<Launch> {
        let (prompt, sha256) = self.kept.clone()?;
        let d = self.decision.take()?;
        info!(tenant = %d.tenant, caller = %d.caller, %sha256, now = d.now, "staff line: campaign by phone");
        Some(Launch {
            tenant: d.tenant,
            prompt,
            sha256,
            caller: d.caller,
            at_ms: d.at_ms,
            now: d.now,
        })
    }

    /// Whether a choice waits for its take to be stored (the call may end meanwhile).
    pub fn awaits_take(&self) -> bool {
        self.decision.is_some() && self.kept.is_none()
    }
}

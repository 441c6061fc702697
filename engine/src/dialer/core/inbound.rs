//! Inbound calls in the core: admission (a trunk's address, a known number, a free
//! channel of that trunk), then the line's menu (`crate::ivr`) run on the core's inputs.
//!
//! ```text
//! INVITE --not a trunk--> 403 (counted, nothing kept)
//!        --no channel---> 486
//!        --> 180, Lookup --no such number--> 404
//!                        --> Accept (200) --ACK--> StartIdle, menu runs --> BYE / caller hangs up
//! ```
//! Inbound calls live in their own map, apart from outbound attempts, but take their
//! channel from the same trunk counter (`Trunk::active`), so a campaign at its ceiling
//! and a registration line share the trunk's channels honestly. A menu's outputs become
//! actions (play, record, store writes); its deadline is `Deadline::Inbound` in the core's
//! timer table; keys come from RFC 4733 (media notes) and SIP INFO.

use std::sync::Arc;
use std::time::Instant;

use tracing::{debug, info, warn};

use super::inbound_io::{InboundAction, InboundInvite, InboundNote, InboundReply, LineContext};
use super::inbound_menu::{Menu, Pending};
use super::io::{Action, CallToken, TrunkId};
use super::timers::Deadline;
use super::DialerCore;
use crate::id_map::IdMap;
use crate::ivr::admission::{trunk_of, Cidr, Refusal, TrunkSources};
use crate::ivr::{caller_identity, CallerHeaders, CallerId, Key, PinGuard, Timing};
use crate::media::dtmf::parse_info;
use crate::metrics as m;
use crate::model::dids::called_number;
use crate::sip::endpoint::{CallEnd, CallHandle};
use crate::sip::sdp::{AnswerParams, NegotiatedMedia};

/// How inbound calls are read and timed.
#[derive(Debug, Clone)]
pub struct InboundConfig {
    /// Region for numbers written nationally (the called DID, the caller).
    pub region: String,
    /// The menus' waits.
    pub timing: Timing,
}

impl Default for InboundConfig {
    fn default() -> Self {
        InboundConfig {
            region: "IT".into(),
            timing: Timing::default(),
        }
    }
}

/// Where an inbound call is.
#[derive(Debug)]
enum Stage {
    /// 180 sent; the store is looking the number up.
    Lookup,
    /// 200 sent; waiting for the ACK.
    Answering(Box<LineContext>),
    /// Media up, the menu runs.
    Menu(Box<Menu>),
}

/// One inbound call.
#[derive(Debug)]
struct InCall {
    handle: CallHandle,
    trunk: TrunkId,
    caller: CallerId,
    stage: Stage,
    /// Plays and takes in flight.
    pending: Pending,
}

/// The core's inbound side.
#[derive(Debug, Default)]
pub(super) struct Inbound {
    cfg: InboundConfig,
    calls: IdMap<CallToken, InCall>,
    by_handle: IdMap<CallHandle, CallToken>,
    guard: PinGuard,
    /// Calls that ended with a staff member's choice waiting for its take to be stored.
    after: IdMap<CallToken, Pending>,
}

impl Inbound {
    /// Entries held (calls, their handles, takes waiting), for [`DialerCore::held`].
    pub(super) fn held(&self) -> usize {
        self.calls.len() + self.by_handle.len() + self.after.len()
    }
}

fn refuse(r: Refusal) {
    metrics::counter!(m::INBOUND_REFUSED, "reason" => r.as_str()).increment(1);
}

/// The user part of a SIP URI (`sip:+39…@host;x` → `+39…`), or a tel URI's number.
fn uri_user(uri: &str) -> Option<&str> {
    let uri = uri.trim().trim_start_matches('<');
    let uri = uri.split('>').next().unwrap_or(uri);
    let (scheme, rest) = uri.split_once(':')?;
    let user = match scheme.to_ascii_lowercase().as_str() {
        "sip" | "sips" => rest.split_once('@')?.0,
        "tel" => rest,
        _ => return None,
    };
    Some(user.split(';').next().unwrap_or(user))
}

/// The called number: the Request-URI's user, or the To's when that is not a number.
pub fn called(inv: &InboundInvite, region: &str) -> Option<String> {
    [&inv.request_uri, &inv.to_uri]
        .into_iter()
        .filter_map(|u| uri_user(u))
        .find_map(|u| called_number(u, region))
}

impl DialerCore {
    /// Sets how inbound calls are read and timed (the server's region, menu waits).
    pub fn set_inbound(&mut self, cfg: InboundConfig) {
        self.inbound.cfg = cfg;
    }

    /// Inbound calls in progress (from INVITE to end).
    pub fn inbound_calls(&self) -> usize {
        self.inbound.calls.len()
    }

    /// A new inbound INVITE (the endpoint answered `100 Trying`).
    pub fn handle_incoming(
        &mut self,
        now: Instant,
        wall: i64,
        call: CallHandle,
        inv: InboundInvite,
    ) {
        self.on_incoming(call, inv);
        self.settle_loop(now, wall);
    }

    fn inbound_sources(&self) -> Vec<TrunkSources> {
        self.trunks
            .iter()
            .filter(|s| !s.removed)
            .map(|s| TrunkSources {
                trunk: s.cfg().name.clone(),
                blocks: std::iter::once(Cidr::from(s.addr.ip()))
                    .chain(s.cfg().inbound_from.iter().copied())
                    .collect(),
            })
            .collect()
    }

    fn reject(&mut self, call: CallHandle, r: Refusal) {
        refuse(r);
        let reason = match r {
            Refusal::NotFromTrunk => "Forbidden",
            Refusal::UnknownNumber => "Not Found",
            Refusal::NoChannel => "Busy Here",
        };
        let status = r.status();
        let a = InboundAction::Reject {
            call,
            status,
            reason,
        };
        self.actions.push_back(Action::Inbound(a));
    }

    pub(super) fn on_incoming(&mut self, call: CallHandle, inv: InboundInvite) {
        let sources = self.inbound_sources();
        let trunk = inv
            .source
            .and_then(|s| trunk_of(s.ip(), &sources))
            .and_then(|name| {
                self.trunks
                    .iter()
                    .position(|s| s.cfg().name == name && !s.removed)
            });
        let Some(trunk) = trunk else {
            debug!(source = ?inv.source, "inbound INVITE not from a trunk");
            return self.reject(call, Refusal::NotFromTrunk);
        };
        let region = self.inbound.cfg.region.clone();
        let Some(number) = called(&inv, &region) else {
            return self.reject(call, Refusal::UnknownNumber);
        };
        let t = &mut self.trunks[trunk].trunk;
        if t.active >= t.cfg.max_channels {
            return self.reject(call, Refusal::NoChannel);
        }
        t.active += 1;
        let headers = CallerHeaders {
            from: &inv.from_uri,
            asserted: inv.asserted_identity.as_deref(),
            privacy: inv.privacy.as_deref(),
        };
        let caller = caller_identity(headers, true, &region);
        let token = self.new_token();
        let lookup = InboundAction::Lookup {
            token,
            number,
            caller: caller.number().map(str::to_string),
        };
        self.inbound.calls.insert(
            token,
            InCall {
                handle: call,
                trunk: TrunkId(trunk),
                caller,
                stage: Stage::Lookup,
                pending: Pending::default(),
            },
        );
        self.inbound.by_handle.insert(call, token);
        self.actions
            .push_back(Action::Inbound(InboundAction::Ring(call)));
        self.actions.push_back(Action::Inbound(lookup));
    }

    /// An answer to an inbound action.
    pub(super) fn on_inbound_reply(&mut self, now: Instant, wall: i64, r: InboundReply) {
        match r {
            InboundReply::Context(token, ctx) => self.on_context(token, ctx),
            InboundReply::Rendered { token, id, ok } => {
                let Some(c) = self.inbound.calls.get_mut(&token) else {
                    return;
                };
                if c.pending.current_play() != Some(id) {
                    return;
                }
                if ok {
                    if let Some(items) = c.pending.rendered(id) {
                        let a = InboundAction::Play { token, id, items };
                        self.actions.push_back(Action::Inbound(a));
                    }
                } else {
                    warn!(
                        call = token.0,
                        "prompt speech could not be rendered; skipped"
                    );
                    self.on_inbound_played(now, wall, token, id);
                }
            }
            InboundReply::Launched(id) => {
                info!(campaign = id, "campaign by phone created; reloading");
                self.actions.push_back(Action::LoadCampaigns);
            }
            InboundReply::TakeKept { token, kept } => {
                let after = self.inbound.after.remove(&token);
                let pending = match self.inbound.calls.get_mut(&token) {
                    Some(c) => Some(&mut c.pending),
                    None => after.map(|p| self.inbound.after.entry(token).or_insert(p)),
                };
                let Some(pending) = pending else {
                    return;
                };
                let launch = pending.kept(kept, wall);
                self.inbound.after.remove(&token);
                if let Some(launch) = launch {
                    self.actions
                        .push_back(Action::Inbound(InboundAction::Launch(Box::new(launch))));
                }
            }
        }
    }

    fn on_context(&mut self, token: CallToken, ctx: Option<Box<LineContext>>) {
        let Some(c) = self.inbound.calls.get_mut(&token) else {
            return;
        };
        if !matches!(c.stage, Stage::Lookup) {
            return;
        }
        let Some(ctx) = ctx else {
            let (call, trunk) = (c.handle, c.trunk);
            self.drop_inbound(token, trunk, call);
            return self.reject(call, Refusal::UnknownNumber);
        };
        metrics::counter!(m::INBOUND_CALLS, "flow" => ctx.flow.as_str()).increment(1);
        let call = c.handle;
        c.stage = Stage::Answering(ctx);
        let cfg = self.trunks[c.trunk.0].cfg();
        let offer = super::invite::offer(cfg, self.cfg.media_ip, self.ids.next());
        let answer = AnswerParams {
            session_id: offer.session_id,
            addr: offer.addr,
            rtp_port: 0,
            codecs: offer.codecs,
            ptime_ms: offer.ptime_ms,
            telephone_event_pt: Some(101),
        };
        let a = InboundAction::Accept {
            token,
            call,
            answer: Box::new(answer),
        };
        self.actions.push_back(Action::Inbound(a));
    }

    /// A driver note about an inbound call.
    pub(super) fn on_inbound_note(&mut self, note: InboundNote) {
        match note {
            InboundNote::AcceptFailed(token, why) => {
                warn!(call = token.0, error = %why, "inbound call could not be answered");
                if let Some(c) = self.inbound.calls.get(&token) {
                    let (trunk, call) = (c.trunk, c.handle);
                    self.drop_inbound(token, trunk, call);
                    let a = InboundAction::Reject {
                        call,
                        status: 503,
                        reason: "Service Unavailable",
                    };
                    self.actions.push_back(Action::Inbound(a));
                }
            }
            InboundNote::MediaFailed(token, why) => {
                warn!(call = token.0, error = %why, "inbound call media failed; hanging up");
                if let Some(c) = self.inbound.calls.get(&token) {
                    self.actions.push_back(Action::Hangup(c.handle));
                }
            }
        }
    }

    /// Forgets an inbound call and frees its trunk channel.
    fn drop_inbound(&mut self, token: CallToken, trunk: TrunkId, call: CallHandle) {
        self.inbound.calls.remove(&token);
        self.inbound.by_handle.remove(&call);
        self.timers.stop(Deadline::Inbound(token));
        let t = &mut self.trunks[trunk.0].trunk;
        t.active = t.active.saturating_sub(1);
    }

    /// Takes the endpoint events of inbound calls; gives back the others.
    pub(super) fn inbound_sip(
        &mut self,
        now: Instant,
        wall: i64,
        ev: crate::sip::endpoint::Event,
    ) -> Option<crate::sip::endpoint::Event> {
        use crate::sip::endpoint::Event;
        let handle = match &ev {
            Event::Answered { call, .. } | Event::Info { call, .. } | Event::Ended { call, .. } => {
                *call
            }
            _ => return Some(ev),
        };
        if let Event::Info {
            content_type, body, ..
        } = &ev
        {
            debug!(call = handle.0, %content_type, body = %String::from_utf8_lossy(body), "INFO");
        }
        let Some(&token) = self.inbound.by_handle.get(&handle) else {
            return Some(ev);
        };
        match ev {
            Event::Answered { media, .. } => self.on_inbound_answered(now, wall, token, media),
            Event::Info {
                content_type, body, ..
            } => {
                if let Some(d) = parse_info(&content_type, &body) {
                    self.on_inbound_key(now, wall, token, d.digit);
                }
            }
            Event::Ended { end, .. } => self.on_inbound_ended(token, &end),
            _ => {}
        }
        None
    }

    fn on_inbound_answered(
        &mut self,
        now: Instant,
        wall: i64,
        token: CallToken,
        media: NegotiatedMedia,
    ) {
        let timing = self.inbound.cfg.timing;
        let Some(c) = self.inbound.calls.get_mut(&token) else {
            return;
        };
        let Stage::Answering(ctx) = std::mem::replace(&mut c.stage, Stage::Lookup) else {
            return;
        };
        debug!(call = token.0, codec = media.codec, te = ?media.telephone_event_pt, "inbound call answered");
        let latch = self.trunks[c.trunk.0].cfg().media_latch;
        let locked = c
            .caller
            .number()
            .is_some_and(|n| self.inbound.guard.is_locked(n, now));
        c.stage = Stage::Menu(Box::new(Menu::new(
            now,
            *ctx,
            c.caller.clone(),
            locked,
            timing,
        )));
        let a = InboundAction::StartIdle {
            token,
            media: Box::new(media),
            latch,
        };
        self.actions.push_back(Action::Inbound(a));
        self.drive_menu(now, wall, token);
    }

    fn on_inbound_ended(&mut self, token: CallToken, end: &CallEnd) {
        let Some(c) = self.inbound.calls.get(&token) else {
            return;
        };
        debug!(call = token.0, outcome = ?end.outcome, "inbound call ended");
        let media_on = matches!(c.stage, Stage::Menu(_));
        let (trunk, call) = (c.trunk, c.handle);
        if let Some(c) = self.inbound.calls.remove(&token) {
            if c.pending.awaits_take() {
                // The caller chose, then hung up before the take was stored: the choice
                // stands and is carried out when the store answers.
                self.inbound.after.insert(token, c.pending);
            }
        }
        self.drop_inbound(token, trunk, call);
        if media_on {
            self.actions.push_back(Action::StopMedia(token));
        }
    }

    /// Takes the media notes of inbound calls; gives back the others.
    pub(super) fn inbound_media(
        &mut self,
        now: Instant,
        wall: i64,
        note: crate::dialer::call_media::MediaNote,
    ) -> Option<crate::dialer::call_media::MediaNote> {
        use crate::dialer::call_media::MediaNote;
        let token = match &note {
            MediaNote::Digit { token, .. }
            | MediaNote::Stopped { token, .. }
            | MediaNote::Played { token, .. }
            | MediaNote::Recorded { token, .. } => CallToken(*token),
            _ => return Some(note),
        };
        if !self.inbound.calls.contains_key(&token) {
            return Some(note);
        }
        match note {
            MediaNote::Digit { digit, .. } => self.on_inbound_key(now, wall, token, digit),
            MediaNote::Played { id, .. } => self.on_inbound_played(now, wall, token, id),
            MediaNote::Recorded { pcm, rate, .. } => self.on_recorded(now, wall, token, pcm, rate),
            _ => {}
        }
        None
    }

    fn on_inbound_key(&mut self, now: Instant, wall: i64, token: CallToken, digit: char) {
        debug!(call = token.0, %digit, "inbound key");
        let Some(key) = Key::from_char(digit) else {
            return;
        };
        let Some(c) = self.inbound.calls.get_mut(&token) else {
            return;
        };
        if let Stage::Menu(m) = &mut c.stage {
            m.handle_digit(now, key);
            self.drive_menu(now, wall, token);
        }
    }

    /// The media path finished play `id` of an inbound call.
    pub fn on_inbound_played(&mut self, now: Instant, wall: i64, token: CallToken, id: u32) {
        let Some(c) = self.inbound.calls.get_mut(&token) else {
            return;
        };
        debug!(call = token.0, id, "inbound play ended");
        if c.pending.current_play() != Some(id) {
            return;
        }
        c.pending.played();
        if let Stage::Menu(m) = &mut c.stage {
            m.handle_prompt_done(now);
            self.drive_menu(now, wall, token);
        }
    }

    /// The take of an inbound call's recording arrived.
    pub fn on_recorded(
        &mut self,
        now: Instant,
        wall: i64,
        token: CallToken,
        pcm: Arc<Vec<i16>>,
        rate: u32,
    ) {
        let Some(c) = self.inbound.calls.get_mut(&token) else {
            return;
        };
        let held = c.pending.take_arrived(pcm.clone(), rate);
        self.actions
            .push_back(Action::Inbound(InboundAction::PrepareTake {
                token,
                pcm,
                rate,
            }));
        if let Some((id, items)) = held {
            self.actions
                .push_back(Action::Inbound(InboundAction::Play { token, id, items }));
        }
        self.drive_menu(now, wall, token);
    }

    /// The menu deadline of an inbound call.
    pub(super) fn on_inbound_timeout(&mut self, now: Instant, wall: i64, token: CallToken) {
        if let Some(Stage::Menu(m)) = self.inbound.calls.get_mut(&token).map(|c| &mut c.stage) {
            m.handle_timeout(now);
            self.drive_menu(now, wall, token);
        }
    }

    /// Hangs up every inbound call (shutdown).
    pub(super) fn hangup_inbound(&mut self) {
        let handles: Vec<CallHandle> = self.inbound.calls.values().map(|c| c.handle).collect();
        for h in handles {
            self.actions.push_back(Action::Hangup(h));
        }
    }

    /// Drains the menu's actions into the core's, then arms its deadline.
    fn drive_menu(&mut self, now: Instant, wall: i64, token: CallToken) {
        let Some(c) = self.inbound.calls.get_mut(&token) else {
            return;
        };
        let Stage::Menu(menu) = &mut c.stage else {
            return;
        };
        let mut out = vec![];
        let mut locked_now = false;
        while let Some(a) = menu.poll_action() {
            let step = menu.execute(
                a,
                token,
                &c.caller,
                &mut c.pending,
                wall,
                &mut self.inbound.guard,
                now,
            );
            locked_now |= step.locked;
            out.extend(step.actions);
            if step.hangup {
                out.push(Action::Hangup(c.handle));
            }
            if locked_now {
                locked_now = false;
                menu.handle_locked_out(now);
            }
        }
        match menu.poll_timeout() {
            Some(at) => self.timers.set(Deadline::Inbound(token), at),
            None => self.timers.stop(Deadline::Inbound(token)),
        }
        self.actions.extend(out);
    }
}

#[cfg(test)]
#[path = "inbound_tests.rs"]
mod tests;

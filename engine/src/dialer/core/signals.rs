//! SIP events and media notes of calls in progress, OPTIONS replies and registrations.

use std::time::Instant;

use tracing::{debug, warn};

use super::attempt::Phase;
use super::io::{Action, CallToken};
use super::DialerCore;
use crate::dialer::call_media::MediaNote;
use crate::dialer::trunk::ping_ok;
use crate::dialer::trunk_metrics::ActiveState;
use crate::media::dtmf::parse_info;
use crate::sip::endpoint::{CallEnd, CallHandle, Event, RegistrationState};

impl DialerCore {
    pub(super) fn on_sip(&mut self, now: Instant, wall: i64, ev: Event) {
        let Some(ev) = self.inbound_sip(now, wall, ev) else {
            return;
        };
        match ev {
            Event::Progress { call, .. } => {
                if let Some(a) = self
                    .by_handle
                    .get(&call)
                    .and_then(|t| self.calls.get_mut(t))
                {
                    a.phase.progress(now);
                }
            }
            Event::Answered { call, media } => self.on_answered(now, wall, call, media),
            Event::Info {
                call,
                content_type,
                body,
            } => {
                let Some(&token) = self.by_handle.get(&call) else {
                    return;
                };
                if let Some(ev) = parse_info(&content_type, &body) {
                    self.on_key(now, token, ev.digit);
                }
            }
            Event::Ended { call, end } => self.on_ended(now, wall, call, end),
            Event::Incoming { call, invite } => {
                let inv = super::inbound_io::InboundInvite {
                    source: Some(invite.source),
                    request_uri: invite.request_uri,
                    to_uri: invite.to_uri,
                    from_uri: invite.from_uri,
                    asserted_identity: invite.asserted_identity,
                    privacy: invite.privacy,
                };
                self.on_incoming(call, inv);
            }
            Event::OptionsReply { ping, status, .. } => {
                if let Some(t) = self.pings.remove(&ping) {
                    self.trunks[t.0].trunk.on_ping(now, ping_ok(status));
                }
            }
            Event::Registration { reg, state } => {
                debug!(?reg, ?state, "registration");
                let Some(&t) = self.regs.get(&reg) else {
                    return;
                };
                let tr = &mut self.trunks[t.0].trunk;
                match state {
                    RegistrationState::Registered { .. } => {
                        tr.registered = true;
                        tr.on_ping(now, true);
                    }
                    RegistrationState::Failed { .. } => {
                        tr.registered = false;
                        tr.on_ping(now, false);
                    }
                    RegistrationState::Unregistered => tr.registered = false,
                }
            }
        }
    }

    fn on_answered(
        &mut self,
        now: Instant,
        wall: i64,
        call: CallHandle,
        media: crate::sip::sdp::NegotiatedMedia,
    ) {
        let Some(&token) = self.by_handle.get(&call) else {
            return;
        };
        let Some(a) = self.calls.get_mut(&token) else {
            return;
        };
        let phase = std::mem::replace(&mut a.phase, Phase::Journaling);
        match phase.answered(now) {
            Ok(p) => a.phase = p,
            Err(p) => {
                a.phase = p;
                return;
            }
        }
        let metrics = &self.trunks[a.trunk.0].trunk.metrics;
        metrics.active(ActiveState::Ringing).decrement(1.0);
        metrics.active(ActiveState::Answered).increment(1.0);
        if let Some(attempt) = a
            .phase
            .attempt()
            .filter(|_| !self.direct.contains_key(&token))
        {
            // Durable soon; the store orders it before the attempt's end.
            let at_ms = wall;
            self.actions
                .push_back(Action::JournalAnswered { attempt, at_ms });
        }
        if a.plan.amd.is_some() {
            // Silence while detection listens; the message waits for its verdict.
            self.start_screening(now, token, Box::new(media));
            return;
        }
        let (prompt, play_count) = (a.plan.prompt.clone(), a.plan.play_count);
        let latch = self.trunks[a.trunk.0].cfg().media_latch;
        self.actions.push_back(Action::StartMedia {
            call: token,
            media: Box::new(media),
            prompt,
            play_count,
            latch,
        });
        self.start_listening(token);
    }

    fn on_ended(&mut self, now: Instant, wall: i64, call: CallHandle, end: CallEnd) {
        let Some(token) = self.by_handle.remove(&call) else {
            return;
        };
        let Some(a) = self.calls.get_mut(&token) else {
            return;
        };
        if !a.phase.plays_media() {
            self.finish(now, wall, token, end);
            return;
        }
        // Media is on: finish once it has said how much of the message it sent.
        let phase = std::mem::replace(&mut a.phase, Phase::Journaling);
        a.phase = phase.ending(end, now).unwrap_or_else(|p| p);
        self.actions.push_back(Action::StopMedia(token));
    }

    pub(super) fn on_media(&mut self, now: Instant, wall: i64, note: MediaNote) {
        let Some(note) = self.inbound_media(now, wall, note) else {
            return;
        };
        match note {
            MediaNote::Finished { token, packets } => {
                self.direct_packets(CallToken(token), packets);
                self.on_stream_finished(CallToken(token));
            }
            MediaNote::Played { token, id } => self.on_played(CallToken(token), id),
            MediaNote::Stopped {
                token,
                played_permille,
                packets,
            } => {
                let token = CallToken(token);
                self.direct_packets(token, packets);
                let Some(a) = self.calls.get_mut(&token) else {
                    return;
                };
                a.phase.record_played(played_permille);
                if let Phase::Ending { end, .. } = &a.phase {
                    let end = end.clone();
                    self.finish(now, wall, token, end);
                }
            }
            MediaNote::Digit { token, digit } => self.on_key(now, CallToken(token), digit),
            MediaNote::Amd { token, decision } => self.on_amd(now, CallToken(token), decision),
            MediaNote::Beep { token, at_ms } => self.on_beep(now, CallToken(token), at_ms),
            MediaNote::GreetingEnd { token, .. } => {
                self.on_screen(now, CallToken(token), super::amd::Heard::GreetingEnd)
            }
            // Recordings: campaign calls ask for none.
            MediaNote::Recorded { .. } => {}
        }
    }

    pub(super) fn on_media_failed(&mut self, call: CallToken, why: &str) {
        warn!(error = %why, "media did not start; hanging up");
        let Some(a) = self.calls.get_mut(&call) else {
            return;
        };
        a.phase.media_failed();
        if let Some(h) = a.phase.call() {
            self.actions.push_back(Action::Hangup(h));
        }
    }
}

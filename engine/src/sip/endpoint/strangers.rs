//! What to do with a request from an address that is not one of our trunks.
//!
//! A dialer only places calls: nobody but its carriers has reason to send it a new
//! request. Answering strangers helps attackers (a 480 to a fraud bot reads "number exists,
//! try later"; a retransmitted answer to a spoofed source is a reflector), so by default
//! their requests are dropped without a word; `reject` answers one stateless 403 (no
//! transaction, no retransmission), at most [`REPLIES_PER_WINDOW`] per source per
//! [`WINDOW`]. Requests inside one of our dialogs are judged by the dialog (its Call-ID and
//! tags come from a CSPRNG), not by the address: a carrier may send a BYE from another of
//! its proxies.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::{Cidr, Endpoint, Transport, Wire};
use crate::sip::builder::MessageWriter;
use crate::sip::headers::Method;
use crate::sip::message::Request;

/// How to treat requests from strangers (`[sip] strangers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StrangerAction {
    /// Say nothing (the default): scanners learn nothing, spoofed sources get nothing.
    #[default]
    Drop,
    /// One stateless 403 per request, rate-limited per source.
    Reject,
}

/// Who may send us new requests, and what strangers get.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourcePolicy {
    /// Addresses and blocks allowed to send requests (the trunks' proxies and their
    /// `inbound_from` lists). `None`: anyone (an endpoint that is not told its trunks, e.g.
    /// in tests or the `call` verb).
    pub allowed: Option<Vec<Cidr>>,
    /// What a stranger's request gets.
    pub strangers: StrangerAction,
    /// Whether strangers' OPTIONS are answered (200) like a trunk's; off by default.
    pub options_from_strangers: bool,
}

/// The decision on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Handle it as usual.
    Handle,
    /// Answer a stateless 403 and forget it.
    Reject,
    /// Ignore it.
    Drop,
}

impl Verdict {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Handle => "handle",
            Verdict::Reject => "reject",
            Verdict::Drop => "drop",
        }
    }
}

/// Length of the per-source reply window.
pub const WINDOW: Duration = Duration::from_secs(1);
/// 403s sent to one source per window; more of its requests are dropped.
pub const REPLIES_PER_WINDOW: u32 = 5;
/// Sources remembered by the limiter; past this the oldest windows are forgotten.
const MAX_SOURCES: usize = 4096;

/// Decides what a request from `ip` gets. `in_dialog`: it names one of our calls.
/// `may_reply`: the per-source reply budget allows a 403 now.
pub fn judge(
    policy: &SourcePolicy,
    ip: IpAddr,
    method: &Method<'_>,
    in_dialog: bool,
    may_reply: bool,
) -> Verdict {
    let trusted = match &policy.allowed {
        None => true,
        Some(list) => list.iter().any(|c| c.contains(ip)),
    };
    if trusted || in_dialog {
        return Verdict::Handle;
    }
    match method {
        // An ACK is never answered anyway.
        Method::Ack => Verdict::Drop,
        Method::Options if policy.options_from_strangers => Verdict::Handle,
        _ => match policy.strangers {
            StrangerAction::Reject if may_reply => Verdict::Reject,
            _ => Verdict::Drop,
        },
    }
}

/// Per-source budget of 403s: a fixed window per address, in a bounded table.
#[derive(Debug, Default)]
pub struct ReplyLimiter {
    windows: HashMap<IpAddr, (Instant, u32)>,
    /// When a full table may next be swept: at most once per window, so a flood from
    /// many addresses costs one scan per window, not one per packet.
    next_sweep: Option<Instant>,
}

impl ReplyLimiter {
    /// Whether a reply to `ip` fits its budget at `now`; counts it if so.
    pub fn allow(&mut self, now: Instant, ip: IpAddr) -> bool {
        if self.windows.len() >= MAX_SOURCES && !self.windows.contains_key(&ip) {
            if self.next_sweep.is_none_or(|t| now >= t) {
                self.windows
                    .retain(|_, (start, _)| now.saturating_duration_since(*start) < WINDOW);
                self.next_sweep = Some(now + WINDOW);
            }
            if self.windows.len() >= MAX_SOURCES {
                // Flooded from many addresses at once: reply to none of the new ones.
                return false;
            }
        }
        let w = self.windows.entry(ip).or_insert((now, 0));
        if now.saturating_duration_since(w.0) >= WINDOW {
            *w = (now, 0);
        }
        if w.1 >= REPLIES_PER_WINDOW {
            return false;
        }
        w.1 += 1;
        true
    }
}

impl Endpoint {
    /// Applies the source policy to a new request: `true` when it is to be handled. A
    /// rejected request gets one stateless 403 here, nothing is kept of it.
    pub(super) fn screen(
        &mut self,
        now: Instant,
        from: std::net::SocketAddr,
        transport: Transport,
        r: &Request<'_>,
    ) -> bool {
        if self.cfg.sources.allowed.is_none() {
            return true;
        }
        let in_dialog = r
            .headers
            .call_id()
            .is_ok_and(|id| self.by_call_id.contains_key(id));
        let mut verdict = judge(&self.cfg.sources, from.ip(), &r.method, in_dialog, true);
        if verdict == Verdict::Reject && !self.reply_limiter.allow(now, from.ip()) {
            verdict = judge(&self.cfg.sources, from.ip(), &r.method, in_dialog, false);
        }
        if verdict == Verdict::Handle {
            return true;
        }
        metrics::counter!(crate::metrics::SIP_STRANGERS,
            "method" => method_label(&r.method), "action" => verdict.label())
        .increment(1);
        if verdict == Verdict::Reject {
            let tag = self.token(10);
            let mut w = MessageWriter::response_to(r, 403, "Forbidden", Some(&tag));
            w.push_header("Server", &self.cfg.user_agent);
            let bytes: Wire = w.finish().into();
            self.send(transport, from, bytes);
        }
        false
    }
}

/// A bounded label for a method: its name, or `other` for one we do not know.
pub fn method_label(m: &Method<'_>) -> &'static str {
    m.standard_name().unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRUNK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 10));
    const STRANGER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 7));

    fn policy(strangers: StrangerAction) -> SourcePolicy {
        SourcePolicy {
            allowed: Some(vec![TRUNK.into()]),
            strangers,
            options_from_strangers: false,
        }
    }

    #[test]
    fn trunks_and_dialogs_are_handled() {
        let p = policy(StrangerAction::Drop);
        assert_eq!(
            judge(&p, TRUNK, &Method::Invite, false, true),
            Verdict::Handle
        );
        assert_eq!(
            judge(&p, TRUNK, &Method::Options, false, true),
            Verdict::Handle
        );
        assert_eq!(
            judge(&p, STRANGER, &Method::Bye, true, true),
            Verdict::Handle
        );
    }

    #[test]
    fn strangers_are_dropped_by_default() {
        let p = policy(StrangerAction::default());
        for m in [
            Method::Invite,
            Method::Register,
            Method::Refer,
            Method::Options,
            Method::Bye,
        ] {
            assert_eq!(judge(&p, STRANGER, &m, false, true), Verdict::Drop, "{m:?}");
        }
    }

    #[test]
    fn reject_answers_403_within_budget_only() {
        let p = policy(StrangerAction::Reject);
        assert_eq!(
            judge(&p, STRANGER, &Method::Invite, false, true),
            Verdict::Reject
        );
        assert_eq!(
            judge(&p, STRANGER, &Method::Invite, false, false),
            Verdict::Drop
        );
        assert_eq!(
            judge(&p, STRANGER, &Method::Ack, false, true),
            Verdict::Drop
        );
    }

    #[test]
    fn options_to_strangers_only_when_enabled() {
        let mut p = policy(StrangerAction::Reject);
        assert_eq!(
            judge(&p, STRANGER, &Method::Options, false, true),
            Verdict::Reject
        );
        p.options_from_strangers = true;
        assert_eq!(
            judge(&p, STRANGER, &Method::Options, false, true),
            Verdict::Handle
        );
    }

    #[test]
    fn blocks_let_a_whole_network_in() {
        let mut p = policy(StrangerAction::Reject);
        p.allowed = Some(vec!["203.0.113.0/28".parse().unwrap()]);
        assert_eq!(
            judge(&p, STRANGER, &Method::Invite, false, true),
            Verdict::Handle
        );
        assert_eq!(
            judge(&p, TRUNK, &Method::Invite, false, true),
            Verdict::Reject
        );
        let outside = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 16));
        assert_eq!(
            judge(&p, outside, &Method::Invite, false, true),
            Verdict::Reject
        );
    }

    #[test]
    fn no_allow_list_means_everyone() {
        let p = SourcePolicy::default();
        assert_eq!(
            judge(&p, STRANGER, &Method::Invite, false, false),
            Verdict::Handle
        );
    }

    #[test]
    fn reply_budget_is_per_source_and_per_window() {
        let t0 = Instant::now();
        let mut l = ReplyLimiter::default();
        let sent = (0..50).filter(|_| l.allow(t0, STRANGER)).count();
        assert_eq!(sent, REPLIES_PER_WINDOW as usize);
        assert!(l.allow(t0, TRUNK));
        assert!(!l.allow(t0 + WINDOW / 2, STRANGER));
        assert!(l.allow(t0 + WINDOW, STRANGER));
    }

    #[test]
    fn limiter_table_stays_bounded_under_a_spoofed_flood() {
        let t0 = Instant::now();
        let mut l = ReplyLimiter::default();
        for i in 0..(MAX_SOURCES as u32 * 3) {
            l.allow(t0, IpAddr::V4(i.into()));
        }
        assert!(l.windows.len() <= MAX_SOURCES);
        // Once the windows pass, new sources are served again.
        assert!(l.allow(t0 + WINDOW, STRANGER));
    }
}

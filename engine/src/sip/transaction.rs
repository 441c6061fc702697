//! Transaction state machines of RFC 3261 §17, with the RFC 6026 Accepted states.
//!
//! A transaction holds the bytes it sent, a [`TxTimers`] table and its state. It decides what to
//! retransmit and when to give up; the endpoint owns the transactions, feeds them responses,
//! requests and timer expiries, and carries out the actions they return.
//!
//! An INVITE client transaction that gets a 2xx leaves [`ClientTx`] for [`AcceptedInvite`]:
//! for the 32 s of Timer M it only has to recognise 2xx retransmissions by branch and hand
//! them to the call (which re-sends its ACK), so it keeps no bytes, timers or addresses. At
//! thousands of calls a second, what that state holds is multiplied by 32 s of calls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use smallvec::{smallvec, SmallVec};

use super::timer::{Timer, TimerConfig, TxTimers};

/// Bytes of a message kept for retransmission, shared without copying.
pub type Wire = Arc<[u8]>;

/// What a client transaction asks of the endpoint after one input: three things at most,
/// kept inline (in a `Vec`, every response to every call cost an allocation for its list).
pub type ClientActions = SmallVec<[ClientAction; 3]>;

/// What a server transaction asks of the endpoint after one input, kept inline.
pub type ServerActions = SmallVec<[ServerAction; 3]>;

/// State of a client transaction (INVITE: Calling/Proceeding/Completed; non-INVITE:
/// Trying/Proceeding/Completed). The INVITE's Accepted state is a type of its own,
/// [`AcceptedInvite`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// Request sent, nothing heard (INVITE "Calling", non-INVITE "Trying").
    Calling,
    /// A provisional response arrived.
    Proceeding,
    /// A final (non-2xx for INVITE) response arrived; absorbing retransmissions.
    Completed,
    /// Done; the endpoint removes it (an INVITE after its 2xx: replaced by its
    /// [`AcceptedInvite`]).
    Terminated,
}

/// What the endpoint must do after a client transaction event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAction {
    /// Send these bytes (a retransmission or the ACK of a non-2xx).
    Send(Wire),
    /// Give the response to the transaction user (call).
    PassUp,
    /// Timer B or F fired: tell the TU the request timed out (as a 408).
    Timeout,
    /// Remove the transaction.
    Terminated,
    /// INVITE got a 2xx (RFC 6026 §7.2): remove the transaction and keep an
    /// [`AcceptedInvite`] in its place under the same branch, for the call.
    Accepted(AcceptedInvite),
}

/// An INVITE client transaction in the RFC 6026 Accepted state: until Timer M fires it
/// passes every 2xx with its branch (a retransmission, or another fork's answer) to the
/// call, which acknowledges it (RFC 6026 §8.4), and absorbs anything else. That is all it
/// does, so all it keeps is when it ends: the request, its timers and addresses stay with
/// the [`ClientTx`] it replaces, which is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptedInvite {
    until: Instant,
}

impl AcceptedInvite {
    /// Accepted by a 2xx received at `now`: Timer M runs 64·T1 on any transport.
    pub fn new(now: Instant, cfg: &TimerConfig) -> Self {
        AcceptedInvite {
            until: now + cfg.t64(),
        }
    }

    /// When Timer M fires and the transaction ends.
    pub fn until(&self) -> Instant {
        self.until
    }

    /// Whether a response of `status` goes up to the call (a 2xx) or is absorbed.
    pub fn passes_up(&self, status: u16) -> bool {
        (200..300).contains(&status)
    }
}

/// An INVITE or non-INVITE client transaction.
#[derive(Debug)]
pub struct ClientTx {
    invite: bool,
    state: ClientState,
    /// The request, kept for retransmissions and CANCEL until a final response; dropped
    /// then, since an INVITE stays Accepted for Timer M (32 s) after its 2xx and at
    /// thousands of calls a second those bytes would be most of what the endpoint holds.
    request: Option<Wire>,
    reliable: bool,
    cfg: TimerConfig,
    timers: TxTimers,
    interval: Duration,
    ack: Option<Wire>,
    /// Retransmissions sent, for metrics.
    pub retransmissions: u32,
}

impl ClientTx {
    /// Starts a client transaction whose request the endpoint has just sent at `now`.
    pub fn new(
        now: Instant,
        invite: bool,
        request: Wire,
        reliable: bool,
        cfg: TimerConfig,
    ) -> Self {
        let mut timers = TxTimers::default();
        let t64 = cfg.t64();
        if invite {
            if !reliable {
                timers.set(Timer::A, now + cfg.t1);
            }
            timers.set(Timer::B, now + t64);
        } else {
            if !reliable {
                timers.set(Timer::E, now + cfg.t1);
            }
            timers.set(Timer::F, now + t64);
        }
        ClientTx {
            invite,
            state: ClientState::Calling,
            request: Some(request),
            reliable,
            cfg,
            timers,
            interval: cfg.t1,
            ack: None,
            retransmissions: 0,
        }
    }

    /// The current state.
    pub fn state(&self) -> ClientState {
        self.state
    }

    /// The request this transaction sends; `None` once a final response arrived.
    pub fn request(&self) -> Option<&Wire> {
        self.request.as_ref()
    }

    /// The earliest armed timer.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Feeds a response with `status`. `ack` builds the ACK for a non-2xx final response of
    /// an INVITE (called once; the same ACK answers every retransmission).
    pub fn on_response(
        &mut self,
        now: Instant,
        status: u16,
        ack: impl FnOnce() -> Vec<u8>,
    ) -> ClientActions {
        use ClientState::*;
        let provisional = status < 200;
        let mut out = SmallVec::new();
        match (self.invite, self.state) {
            (_, Terminated) => {}
            (true, Calling | Proceeding) => {
                self.timers.stop(Timer::A);
                if provisional {
                    // Timer B guards only the Calling state (RFC 3261 §17.1.1.2); once the
                    // far end is ringing, the TU's ring timeout and CANCEL take over.
                    self.timers.stop(Timer::B);
                    self.state = Proceeding;
                    out.push(ClientAction::PassUp);
                } else if status < 300 {
                    self.state = Terminated;
                    self.request = None;
                    self.timers.clear();
                    out.push(ClientAction::PassUp);
                    out.push(ClientAction::Accepted(AcceptedInvite::new(now, &self.cfg)));
                } else {
                    self.state = Completed;
                    self.request = None;
                    self.timers.clear();
                    let ack: Wire = ack().into();
                    self.ack = Some(ack.clone());
                    out.push(ClientAction::Send(ack));
                    out.push(ClientAction::PassUp);
                    let d = self.cfg.d(self.reliable);
                    if d.is_zero() {
                        self.state = Terminated;
                        out.push(ClientAction::Terminated);
                    } else {
                        self.timers.set(Timer::D, now + d);
                    }
                }
            }
            (true, Completed) => {
                if !provisional && status >= 300 {
                    if let Some(a) = &self.ack {
                        out.push(ClientAction::Send(a.clone()));
                    }
                }
            }
            (false, Calling | Proceeding) => {
                if provisional {
                    if self.state == Calling && !self.reliable {
                        // In Proceeding, Timer E fires at T2 (RFC 3261 §17.1.2.2).
                        self.interval = self.cfg.t2;
                    }
                    self.state = Proceeding;
                    out.push(ClientAction::PassUp);
                } else {
                    self.state = Completed;
                    self.request = None;
                    self.timers.clear();
                    out.push(ClientAction::PassUp);
                    if self.reliable {
                        self.state = Terminated;
                        out.push(ClientAction::Terminated);
                    } else {
                        self.timers.set(Timer::K, now + self.cfg.t4);
                    }
                }
            }
            (false, Completed) => {}
        }
        out
    }

    /// Handles every timer due at `now`.
    pub fn on_timeout(&mut self, now: Instant) -> ClientActions {
        let mut out = SmallVec::new();
        while let Some(t) = self.timers.pop_expired(now) {
            match t {
                Timer::A => {
                    let Some(r) = &self.request else { continue };
                    self.retransmissions += 1;
                    out.push(ClientAction::Send(r.clone()));
                    self.interval *= 2;
                    self.timers.set(Timer::A, now + self.interval);
                }
                Timer::E => {
                    let Some(r) = &self.request else { continue };
                    self.retransmissions += 1;
                    out.push(ClientAction::Send(r.clone()));
                    self.interval = if self.state == ClientState::Proceeding {
                        self.cfg.t2
                    } else {
                        (self.interval * 2).min(self.cfg.t2)
                    };
                    self.timers.set(Timer::E, now + self.interval);
                }
                Timer::B | Timer::F => {
                    self.timers.clear();
                    self.state = ClientState::Terminated;
                    out.push(ClientAction::Timeout);
                    out.push(ClientAction::Terminated);
                }
                Timer::D | Timer::K => {
                    self.timers.clear();
                    self.state = ClientState::Terminated;
                    out.push(ClientAction::Terminated);
                }
                _ => {}
            }
        }
        out
    }
}

/// State of a server transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// Request received, no final response yet (non-INVITE "Trying" included).
    Proceeding,
    /// A final (non-2xx for INVITE) response sent.
    Completed,
    /// INVITE: the ACK arrived.
    Confirmed,
    /// INVITE: a 2xx was sent (RFC 6026), retransmitted until its ACK.
    Accepted,
    /// Done; the endpoint removes it.
    Terminated,
}

/// What the endpoint must do after a server transaction event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerAction {
    /// Send these bytes (a response or its retransmission).
    Send(Wire),
    /// Timer H fired, or a 2xx was never acknowledged: the TU should end the dialog.
    NoAck,
    /// Remove the transaction.
    Terminated,
}

/// An INVITE or non-INVITE server transaction.
#[derive(Debug)]
pub struct ServerTx {
    invite: bool,
    state: ServerState,
    reliable: bool,
    cfg: TimerConfig,
    timers: TxTimers,
    interval: Duration,
    last_response: Option<Wire>,
}

impl ServerTx {
    /// Starts a server transaction for a request just received.
    pub fn new(invite: bool, reliable: bool, cfg: TimerConfig) -> Self {
        ServerTx {
            invite,
            state: ServerState::Proceeding,
            reliable,
            cfg,
            timers: TxTimers::default(),
            interval: cfg.t1,
            last_response: None,
        }
    }

    /// The current state.
    pub fn state(&self) -> ServerState {
        self.state
    }

    /// The earliest armed timer.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// A retransmission of the request arrived: resend the last response, if any (absorbed
    /// silently in Confirmed, and in Accepted where the 2xx timer does the resending).
    pub fn on_retransmission(&mut self) -> Option<Wire> {
        match self.state {
            ServerState::Proceeding | ServerState::Completed => self.last_response.clone(),
            _ => None,
        }
    }

    /// The ACK for our final response arrived.
    pub fn on_ack(&mut self, now: Instant) -> ServerActions {
        let mut out = SmallVec::new();
        match self.state {
            ServerState::Completed if self.invite => {
                self.timers.clear();
                if self.reliable {
                    self.state = ServerState::Terminated;
                    out.push(ServerAction::Terminated);
                } else {
                    self.state = ServerState::Confirmed;
                    self.timers.set(Timer::I, now + self.cfg.t4);
                }
            }
            ServerState::Accepted => {
                // The 2xx is acknowledged; keep absorbing INVITE retransmissions until L.
                self.timers.stop(Timer::Ok2xx);
                self.timers.stop(Timer::H);
            }
            _ => {}
        }
        out
    }

    /// Sends a response.
    pub fn respond(&mut self, now: Instant, status: u16, bytes: Wire) -> ServerActions {
        let mut out: ServerActions = smallvec![ServerAction::Send(bytes.clone())];
        if self.state != ServerState::Proceeding {
            return out;
        }
        self.last_response = Some(bytes);
        if status < 200 {
            return out;
        }
        let t64 = self.cfg.t64();
        if self.invite {
            if status < 300 {
                self.state = ServerState::Accepted;
                self.timers.set(Timer::L, now + t64);
                self.timers.set(Timer::H, now + t64);
                if !self.reliable {
                    self.timers.set(Timer::Ok2xx, now + self.cfg.t1);
                }
            } else {
                self.state = ServerState::Completed;
                if !self.reliable {
                    self.timers.set(Timer::G, now + self.cfg.t1);
                }
                self.timers.set(Timer::H, now + t64);
            }
        } else if self.reliable {
            self.state = ServerState::Terminated;
            out.push(ServerAction::Terminated);
        } else {
            self.state = ServerState::Completed;
            self.timers.set(Timer::J, now + t64);
        }
        out
    }

    /// Handles every timer due at `now`.
    pub fn on_timeout(&mut self, now: Instant) -> ServerActions {
        let mut out = SmallVec::new();
        while let Some(t) = self.timers.pop_expired(now) {
            match t {
                Timer::G | Timer::Ok2xx => {
                    if let Some(r) = &self.last_response {
                        out.push(ServerAction::Send(r.clone()));
                    }
                    self.interval = (self.interval * 2).min(self.cfg.t2);
                    self.timers.set(t, now + self.interval);
                }
                Timer::H => {
                    self.timers.clear();
                    self.state = ServerState::Terminated;
                    out.push(ServerAction::NoAck);
                    out.push(ServerAction::Terminated);
                }
                Timer::I | Timer::J | Timer::L => {
                    self.timers.clear();
                    self.state = ServerState::Terminated;
                    out.push(ServerAction::Terminated);
                }
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> TimerConfig {
        TimerConfig::default()
    }

    fn wire(s: &str) -> Wire {
        Arc::from(s.as_bytes())
    }

    /// Runs a client transaction with no response and records when it retransmits.
    fn retransmit_times(invite: bool) -> (Vec<Duration>, Duration) {
        let t0 = Instant::now();
        let mut tx = ClientTx::new(t0, invite, wire("REQ"), false, cfg());
        let mut sends = Vec::new();
        loop {
            let at = tx.next_timeout().unwrap();
            let out = tx.on_timeout(at);
            for a in &out {
                if let ClientAction::Send(_) = a {
                    sends.push(at - t0);
                }
            }
            if out.contains(&ClientAction::Timeout) {
                return (sends, at - t0);
            }
        }
    }

    #[test]
    fn timer_a_doubles_until_timer_b() {
        let (sends, timeout) = retransmit_times(true);
        let ms: Vec<u128> = sends.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, [500, 1500, 3500, 7500, 15500, 31500]);
        assert_eq!(timeout, Duration::from_secs(32));
    }

    #[test]
    fn timer_e_caps_at_t2_until_timer_f() {
        let (sends, timeout) = retransmit_times(false);
        let ms: Vec<u128> = sends.iter().map(|d| d.as_millis()).collect();
        assert_eq!(
            ms,
            [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
        );
        assert_eq!(timeout, Duration::from_secs(32));
    }

    #[test]
    fn non_invite_proceeding_retransmits_at_t2() {
        let t0 = Instant::now();
        let mut tx = ClientTx::new(t0, false, wire("REQ"), false, cfg());
        tx.on_response(t0 + Duration::from_millis(100), 100, Vec::new);
        let first = tx.next_timeout().unwrap();
        assert_eq!(first - t0, Duration::from_millis(500));
        tx.on_timeout(first);
        assert_eq!(tx.next_timeout().unwrap() - first, Duration::from_secs(4));
    }

    #[test]
    fn invite_non_2xx_is_acked_and_absorbed_until_timer_d() {
        let t0 = Instant::now();
        let mut tx = ClientTx::new(t0, true, wire("INVITE"), false, cfg());
        let out = tx.on_response(t0, 486, || b"ACK".to_vec());
        assert_eq!(out[0], ClientAction::Send(wire("ACK")));
        assert_eq!(out[1], ClientAction::PassUp);
        // A retransmitted 486 gets the same ACK and is not passed up again.
        let out = tx.on_response(t0 + Duration::from_secs(1), 486, || unreachable!());
        assert_eq!(out.to_vec(), vec![ClientAction::Send(wire("ACK"))]);
        assert_eq!(tx.next_timeout().unwrap() - t0, Duration::from_secs(32));
        assert_eq!(
            tx.on_timeout(t0 + Duration::from_secs(32)).to_vec(),
            vec![ClientAction::Terminated]
        );
    }

    #[test]
    fn invite_over_tcp_has_no_timer_a_and_no_wait_in_completed() {
        let t0 = Instant::now();
        let mut tx = ClientTx::new(t0, true, wire("INVITE"), true, cfg());
        assert_eq!(tx.next_timeout().unwrap() - t0, Duration::from_secs(32));
        let out = tx.on_response(t0, 503, || b"ACK".to_vec());
        assert!(out.contains(&ClientAction::Terminated));
    }

    #[test]
    fn invite_2xx_hands_over_to_accepted_until_m() {
        let t0 = Instant::now();
        let mut tx = ClientTx::new(t0, true, wire("INVITE"), false, cfg());
        assert_eq!(
            tx.on_response(t0, 180, Vec::new).to_vec(),
            vec![ClientAction::PassUp]
        );
        let at = t0 + Duration::from_secs(2);
        let out = tx.on_response(at, 200, Vec::new);
        let accepted = AcceptedInvite::new(at, &cfg());
        assert_eq!(
            out.to_vec(),
            vec![ClientAction::PassUp, ClientAction::Accepted(accepted)]
        );
        // The full transaction is done: nothing is resent, no timer is left.
        assert_eq!(tx.state(), ClientState::Terminated);
        assert!(tx.request().is_none());
        assert_eq!(tx.next_timeout(), None);
        // Timer M is 64·T1 from the 2xx, on any transport (RFC 6026 §7.2).
        assert_eq!(accepted.until() - at, Duration::from_secs(32));
        assert!(accepted.passes_up(200) && accepted.passes_up(299));
        assert!(!accepted.passes_up(180) && !accepted.passes_up(486));
    }

    #[test]
    fn non_invite_completed_waits_timer_k() {
        let t0 = Instant::now();
        let mut tx = ClientTx::new(t0, false, wire("BYE"), false, cfg());
        tx.on_response(t0, 200, Vec::new);
        assert_eq!(tx.state(), ClientState::Completed);
        assert_eq!(tx.next_timeout().unwrap() - t0, Duration::from_secs(5));
    }

    #[test]
    fn server_invite_retransmits_final_with_g_until_ack_then_i() {
        let t0 = Instant::now();
        let mut tx = ServerTx::new(true, false, cfg());
        tx.respond(t0, 480, wire("480"));
        let mut sends = Vec::new();
        let mut now = t0;
        while now - t0 < Duration::from_secs(10) {
            now = tx.next_timeout().unwrap();
            for a in tx.on_timeout(now) {
                if let ServerAction::Send(_) = a {
                    sends.push((now - t0).as_millis());
                }
            }
        }
        assert_eq!(sends[..5], [500, 1500, 3500, 7500, 11500]);
        assert_eq!(tx.on_retransmission(), Some(wire("480")));
        tx.on_ack(now);
        assert_eq!(tx.state(), ServerState::Confirmed);
        assert_eq!(tx.next_timeout().unwrap() - now, Duration::from_secs(5));
        assert_eq!(tx.on_retransmission(), None);
    }

    #[test]
    fn server_invite_timer_h_reports_missing_ack() {
        let t0 = Instant::now();
        let mut tx = ServerTx::new(true, true, cfg());
        tx.respond(t0, 486, wire("486"));
        let out = tx.on_timeout(t0 + Duration::from_secs(32));
        assert_eq!(
            out.to_vec(),
            vec![ServerAction::NoAck, ServerAction::Terminated]
        );
    }

    #[test]
    fn server_invite_2xx_retransmits_until_ack_then_waits_l() {
        let t0 = Instant::now();
        let mut tx = ServerTx::new(true, false, cfg());
        tx.respond(t0, 200, wire("200"));
        assert_eq!(tx.state(), ServerState::Accepted);
        let at = tx.next_timeout().unwrap();
        assert_eq!(at - t0, Duration::from_millis(500));
        assert_eq!(
            tx.on_timeout(at).to_vec(),
            vec![ServerAction::Send(wire("200"))]
        );
        tx.on_ack(at);
        let l = tx.next_timeout().unwrap();
        assert_eq!(l - t0, Duration::from_secs(32));
        assert_eq!(tx.on_timeout(l).to_vec(), vec![ServerAction::Terminated]);
    }

    #[test]
    fn server_non_invite_absorbs_retransmissions_until_j() {
        let t0 = Instant::now();
        let mut tx = ServerTx::new(false, false, cfg());
        assert_eq!(tx.on_retransmission(), None);
        tx.respond(t0, 200, wire("200"));
        assert_eq!(tx.on_retransmission(), Some(wire("200")));
        let j = tx.next_timeout().unwrap();
        assert_eq!(j - t0, Duration::from_secs(32));
        assert_eq!(tx.on_timeout(j).to_vec(), vec![ServerAction::Terminated]);
    }
}

//! RTP/RTCP port pairs bound ahead of demand.
//!
//! Every outbound call needs its own even RTP port (and RTCP above it) before its INVITE can
//! offer it, so binding a pair sat on the signalling thread's path of every call: two
//! `socket`, two `bind` and two `ioctl` calls, about 8 % of that thread's time at 2,000 calls
//! per second (2026-12-02 profile). The pacing threads, which already close every call's
//! sockets, now also open them: between slots, when the next packet is not due for a while,
//! a loop tops up a small stock of bound pairs, and [`PortStock::take`] hands one out
//! without a system call. A take that finds the stock empty binds on the spot, as before.
//!
//! The stock follows demand: it holds what the last fraction of a second handed out over
//! [`LEAD`], so a fast campaign never waits for a loop, and when demand falls the loops
//! close the surplus, so an idle dialer holds no ports at all (nothing is reserved from the
//! range that it does not use). Pairs go out oldest first. Freshly bound pairs only: a pair
//! is never reused, so a late packet of an old call cannot reach a new one.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::sys::{fd_error, is_fd_exhaustion};
use super::RtpPort;

/// How far ahead of demand the stock reaches: pairs for this long at the recent rate.
pub(super) const LEAD: Duration = Duration::from_millis(50);
/// The most pairs held ready, whatever the rate (1,000 descriptors).
pub(super) const MAX_STOCK: usize = 500;
/// The most pairs one pass of a loop binds or closes, so a top-up never holds a slot's
/// packets back for long (a pair costs a few tens of microseconds).
pub(super) const PER_PASS: usize = 8;
/// How often the rate of takes is re-read.
const RATE_WINDOW: Duration = Duration::from_millis(100);

/// Pairs to hold ready for a demand of `per_second` pairs a second: [`LEAD`]'s worth,
/// rounded up, at most [`MAX_STOCK`]; none when nothing is being taken.
pub(super) fn target(per_second: u64) -> usize {
    let lead_ms = LEAD.as_millis() as u64;
    let want = per_second.saturating_mul(lead_ms).div_ceil(1000);
    usize::try_from(want).unwrap_or(MAX_STOCK).min(MAX_STOCK)
}

/// The configured range and where the next bind attempt starts in it.
struct Range {
    bind_ip: IpAddr,
    min: u32,
    /// Even ports in the range.
    span: u32,
    next: AtomicU32,
}

impl Range {
    /// Binds a free even RTP port and the RTCP port above it; tries each even port of the
    /// range once, starting after the last one handed out.
    fn bind(&self) -> io::Result<RtpPort> {
        for _ in 0..self.span {
            let n = self.next.fetch_add(2, Ordering::Relaxed);
            let port = (self.min + (n.wrapping_sub(self.min) % (self.span * 2))) as u16;
            let rtp = match UdpSocket::bind(SocketAddr::new(self.bind_ip, port)) {
                Ok(s) => s,
                Err(e) if is_fd_exhaustion(&e) => return Err(fd_error(e)),
                Err(_) => continue,
            };
            let rtcp = match UdpSocket::bind(SocketAddr::new(self.bind_ip, port + 1)) {
                Ok(s) => s,
                Err(e) if is_fd_exhaustion(&e) => return Err(fd_error(e)),
                Err(_) => continue,
            };
            rtp.set_nonblocking(true)?;
            rtcp.set_nonblocking(true)?;
            return Ok(RtpPort { rtp, rtcp, port });
        }
        let last = self.min + self.span * 2 - 1;
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("no free even RTP port pair in {}-{last}", self.min),
        ))
    }
}

/// Pairs ready, and the demand they follow.
struct Ready {
    ports: VecDeque<RtpPort>,
    /// Start of the current rate window and the takes counted at its start.
    window: (Instant, u64),
    /// Pairs a second taken over the last full window.
    rate: u64,
}

/// The pump's port pairs: bound ahead by the loops, taken by whoever places a call.
pub(super) struct PortStock {
    range: Range,
    ready: Mutex<Ready>,
    taken: AtomicU64,
    ahead: AtomicU64,
    on_demand: AtomicU64,
}

impl PortStock {
    /// A stock over `port_min..=port_max` (the lowest port rounded up to even).
    pub(super) fn new(bind_ip: IpAddr, port_min: u16, port_max: u16) -> PortStock {
        let min = u32::from(port_min + port_min % 2);
        let span = (u32::from(port_max).saturating_sub(min) / 2).max(1);
        PortStock {
            range: Range {
                bind_ip,
                min,
                span,
                next: AtomicU32::new(min),
            },
            ready: Mutex::new(Ready {
                ports: VecDeque::new(),
                window: (Instant::now(), 0),
                rate: 0,
            }),
            taken: AtomicU64::new(0),
            ahead: AtomicU64::new(0),
            on_demand: AtomicU64::new(0),
        }
    }

    /// A pair for a call: one from the stock, or one bound now when the stock is empty.
    pub(super) fn take(&self) -> io::Result<RtpPort> {
        self.taken.fetch_add(1, Ordering::Relaxed);
        let ready = self.lock().ports.pop_front();
        match ready {
            Some(p) => Ok(p),
            None => {
                self.on_demand.fetch_add(1, Ordering::Relaxed);
                self.range.bind()
            }
        }
    }

    /// Moves the stock up to [`PER_PASS`] pairs towards the target for the recent demand:
    /// binds what is missing (none after `until`) or closes the surplus of a burst that has
    /// passed; called by a loop between slots. A bind that fails (range full, descriptors
    /// short) stops the top-up: [`PortStock::take`] will report the error to the call that
    /// needs the pair.
    pub(super) fn top_up(&self, now: Instant, until: Instant) {
        let (want, surplus) = {
            let mut r = self.lock();
            let (start, at_start) = r.window;
            let elapsed = now.saturating_duration_since(start);
            if elapsed >= RATE_WINDOW {
                let taken = self.taken.load(Ordering::Relaxed);
                let n = taken.saturating_sub(at_start);
                r.rate = (u128::from(n) * 1000 / elapsed.as_millis().max(1)) as u64;
                r.window = (now, taken);
            }
            let (target, held) = (target(r.rate), r.ports.len());
            let surplus: Vec<RtpPort> = r
                .ports
                .drain(..held.saturating_sub(target).min(PER_PASS))
                .collect();
            (target.saturating_sub(held).min(PER_PASS), surplus)
        };
        drop(surplus); // closed outside the lock
        if want == 0 {
            return;
        }
        let mut bound = Vec::with_capacity(want);
        while bound.len() < want && Instant::now() < until {
            match self.range.bind() {
                Ok(p) => bound.push(p),
                Err(_) => break,
            }
        }
        self.ahead.fetch_add(bound.len() as u64, Ordering::Relaxed);
        self.lock().ports.extend(bound);
    }

    /// Pairs bound ahead by the loops, and pairs bound on the spot for want of stock.
    pub(super) fn counts(&self) -> (u64, u64) {
        (
            self.ahead.load(Ordering::Relaxed),
            self.on_demand.load(Ordering::Relaxed),
        )
    }

    /// Pairs held ready now.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.lock().ports.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ready> {
        self.ready.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn the_stock_holds_a_lead_of_the_recent_rate_and_nothing_when_idle() {
        assert_eq!(target(0), 0);
        assert_eq!(target(1), 1, "any demand keeps one pair ready");
        assert_eq!(target(2_000), 100);
        assert_eq!(target(5_000), 250);
        assert_eq!(target(50_000), MAX_STOCK);
        assert_eq!(target(u64::MAX), MAX_STOCK);
    }

    /// A deadline the test never reaches.
    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    fn stock(min: u16, max: u16) -> PortStock {
        PortStock::new(IpAddr::V4(Ipv4Addr::LOCALHOST), min, max)
    }

    #[test]
    fn an_idle_stock_binds_nothing_and_a_take_binds_on_demand() {
        let s = stock(41_000, 41_999);
        let t0 = Instant::now();
        s.top_up(t0 + RATE_WINDOW, far());
        assert_eq!(s.held(), 0);
        let p = s.take().expect("a pair");
        assert_eq!(p.port % 2, 0);
        assert_eq!(s.counts(), (0, 1));
    }

    #[test]
    fn takes_raise_the_stock_which_then_serves_them_without_binding() {
        let s = stock(42_000, 43_999);
        let t0 = Instant::now();
        let mut held = Vec::new();
        for _ in 0..40 {
            held.push(s.take().expect("a pair"));
        }
        // 40 takes in the first window: 400 a second, a lead of 20 pairs; no gap before
        // the loop's next packets, no top-up.
        s.top_up(t0 + RATE_WINDOW, Instant::now());
        assert_eq!(s.held(), 0);
        s.top_up(t0 + RATE_WINDOW, far());
        assert_eq!(s.held(), PER_PASS);
        for _ in 0..4 {
            s.top_up(t0 + RATE_WINDOW, far());
        }
        assert_eq!(s.held(), 20);
        let before = s.counts().1;
        held.push(s.take().expect("from the stock"));
        assert_eq!(s.counts().1, before, "served from the stock");
        assert_eq!(s.held(), 19);
        // Demand falls (one take in the next window, 5 a second: a lead of one pair), then
        // stops: the loops close the surplus, PER_PASS pairs a pass.
        let slower = t0 + RATE_WINDOW * 3;
        s.top_up(slower, far());
        assert_eq!(s.held(), 19 - PER_PASS);
        s.top_up(slower, far());
        assert_eq!(s.held(), 3);
        s.top_up(slower, far());
        assert_eq!(s.held(), 1);
        let idle = t0 + RATE_WINDOW * 5;
        s.top_up(idle, far());
        assert_eq!(s.held(), 0, "an idle dialer holds no ports");
        let ports: std::collections::HashSet<u16> = held.iter().map(|p| p.port).collect();
        assert_eq!(ports.len(), held.len(), "every pair its own port");
    }

    #[test]
    fn a_full_range_stops_the_top_up_and_the_take_reports_it() {
        // A range of one pair, one of whose ports another socket holds.
        let blocker = UdpSocket::bind("127.0.0.1:0").expect("a port");
        let p = blocker.local_addr().expect("bound").port();
        let s = stock(p - p % 2, p - p % 2 + 1);
        for _ in 0..3 {
            let _ = s.take();
        }
        s.top_up(Instant::now() + RATE_WINDOW * 2, far());
        assert_eq!(s.held(), 0, "no free pair to stock");
        let e = s.take().expect_err("the range is used up");
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
    }
}

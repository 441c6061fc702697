//! The first media path: one task per answered call that streams a prompt at its ptime.
//!
//! It sends on the call's own RTP socket (the port offered in our SDP) to the address the
//! answer gave, on an absolute schedule (start + n·ptime) so that timer jitter does not
//! accumulate. The batched pump (one loop per core, `sendmmsg`) replaces this; both use
//! [`RtpStream`] for the packet state.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::UdpSocket;

use crate::media::RtpStream;

/// Binds the first free even port in `[min, max]` on `ip` for RTP (the odd port above it is
/// left for RTCP, as SBCs expect). Starts the search at `hint` so concurrent calls spread.
pub async fn bind_rtp_port(ip: IpAddr, min: u16, max: u16, hint: u16) -> io::Result<UdpSocket> {
    let min = min + (min % 2);
    let span = u32::from((max - min) / 2 + 1);
    for i in 0..span {
        let port = min as u32 + ((u32::from(hint / 2) + i) % span) * 2;
        if let Ok(s) = UdpSocket::bind(SocketAddr::new(ip, port as u16)).await {
            return Ok(s);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        format!("no free even RTP port in {min}-{max}"),
    ))
}

/// Streams `stream` to `dest` every `ptime` until it ends, counting each packet handed to
/// the kernel in `sent` (readable while it plays, exact if the task is aborted).
pub async fn play(
    socket: &UdpSocket,
    dest: SocketAddr,
    mut stream: RtpStream,
    ptime: Duration,
    sent: &AtomicU64,
) {
    let mut buf = [0u8; 1500];
    let start = tokio::time::Instant::now();
    let mut slot: u32 = 0;
    while let Some(len) = stream.next_packet(&mut buf) {
        if len > 0 && socket.send_to(&buf[..len], dest).await.is_ok() {
            sent.fetch_add(1, Ordering::Relaxed);
        }
        slot += 1;
        tokio::time::sleep_until(start + ptime * slot).await;
    }
}

//! Calls without media, for runs that measure signalling alone (`dialer call --no-media`),
//! placed as SIPp's built-in UAC places its calls: an answered call is over at once.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::{CallMedia, MediaNote};
use crate::media::MediaLatch;
use crate::sip::sdp::NegotiatedMedia;

/// The port an offer names when no RTP is bound: discard (RFC 863), which also says to an
/// engineer reading a trace that nothing listens there. The offer is `a=inactive`
/// (RFC 3264 §5.1): no RTP is asked for or sent either way.
pub const NO_MEDIA_PORT: u16 = 9;

/// A [`CallMedia`] that binds nothing and sends nothing: `start` reports the message
/// played (with no packets), so the dialer hangs up right after its ACK.
#[derive(Debug)]
pub struct NoMedia {
    ip: IpAddr,
    notes: mpsc::UnboundedSender<MediaNote>,
}

impl NoMedia {
    /// No media, with `ip` written in the offers; the notes go to the dialer.
    pub fn new(ip: IpAddr) -> (Arc<NoMedia>, mpsc::UnboundedReceiver<MediaNote>) {
        let (notes, rx) = mpsc::unbounded_channel();
        (Arc::new(NoMedia { ip, notes }), rx)
    }
}

impl CallMedia for NoMedia {
    type Port = ();

    fn local_ip(&self) -> IpAddr {
        self.ip
    }

    fn bind(&self) -> io::Result<()> {
        Ok(())
    }

    fn port_number((): &()) -> u16 {
        NO_MEDIA_PORT
    }

    fn offers_media(&self) -> bool {
        false
    }

    fn prepare(&self, _prompt: &str) -> io::Result<()> {
        Ok(())
    }

    fn start(
        &self,
        token: u64,
        (): (),
        _media: &NegotiatedMedia,
        _prompt: &str,
        _play_count: u32,
        _latch: MediaLatch,
    ) -> io::Result<()> {
        let _ = self.notes.send(MediaNote::Finished { token, packets: 0 });
        Ok(())
    }

    fn stop(&self, token: u64) {
        let _ = self.notes.send(MediaNote::Stopped {
            token,
            packets: 0,
            played_permille: 0,
        });
    }
}

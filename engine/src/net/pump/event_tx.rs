//! Where the pacing loops hand their events.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::MediaEvent;

/// Where the pacing loops hand their [`MediaEvent`]s: a function run on the loop's own
/// thread. [`MediaPump::start`](super::MediaPump::start) makes it a channel; the dialer
/// (`PumpMedia`) turns each event into its note and sends it straight to the signalling
/// thread, without a task in between to wake (each hop is a thread wake-up per event).
#[derive(Clone)]
pub struct EventTx(Arc<dyn Fn(MediaEvent) + Send + Sync>);

impl EventTx {
    /// Events go to `f`, called on a pacing loop's thread: it must not block.
    pub fn new(f: impl Fn(MediaEvent) + Send + Sync + 'static) -> Self {
        EventTx(Arc::new(f))
    }

    /// Events go to the returned receiver (dropped once it is gone).
    pub fn channel() -> (EventTx, mpsc::UnboundedReceiver<MediaEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            EventTx::new(move |e| {
                let _ = tx.send(e);
            }),
            rx,
        )
    }

    /// Hands an event on.
    pub fn send(&self, e: MediaEvent) {
        (self.0)(e)
    }
}

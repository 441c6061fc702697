//! Where the driver sends a command's reply.

use tokio::sync::{mpsc, oneshot};

use crate::dialer::core::Reply;

/// Where a command's reply goes.
#[derive(Debug)]
pub enum ReplySink {
    /// To the one caller waiting for it.
    Once(oneshot::Sender<Reply>),
    /// Onto a stream shared by many commands: `dialer call` gets every call's report on
    /// one channel it reads in bursts, instead of a task awaiting a oneshot per call (each
    /// of those awaits had the signalling thread wake the caller's thread).
    Stream(mpsc::UnboundedSender<Reply>),
}

impl ReplySink {
    /// Delivers the reply; a caller gone has nothing left to hear.
    pub(super) fn send(self, r: Reply) {
        let _ = match self {
            ReplySink::Once(tx) => tx.send(r).map_err(drop),
            ReplySink::Stream(tx) => tx.send(r).map_err(drop),
        };
    }
}

// The bounded in-memory queue between whoever notices an event and the outbox writer.

use tokio::sync::mpsc;

use super::EventKind;
use crate::metrics as m;

/// Something that happened, before it is written to the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// Whose it is; None when only the store knows (an attempt: the writer looks its
    /// campaign's tenant up).
    pub tenant: Option<String>,
    /// The campaign it concerns, if any (orders and throttles `campaign.progress`).
    pub campaign: Option<i64>,
    /// The attempt it concerns, if any.
    pub attempt: Option<i64>,
    /// When it happened, Unix ms.
    pub at_ms: i64,
    /// The payload's `data` object.
    pub data: serde_json::Value,
}

/// The dialer's and the API's end of the queue: cheap to clone, `emit` never waits.
#[derive(Debug, Clone)]
pub struct EventSink {
    tx: mpsc::Sender<Event>,
}

impl EventSink {
    /// A sink holding at most `capacity` events, and the writer's end.
    pub fn new(capacity: usize) -> (EventSink, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (EventSink { tx }, rx)
    }

    /// Queues an event; when the queue is full (the outbox writer is behind) the event is
    /// dropped and counted rather than making the caller wait.
    pub fn emit(&self, e: Event) {
        match self.tx.try_send(e) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(e)) => {
                tracing::warn!(kind = %e.kind, "webhook queue full: event dropped");
                metrics::counter!(m::WEBHOOK_EVENTS_DROPPED, "reason" => "full").increment(1);
            }
            // No writer (webhooks off, or shutting down): nothing to deliver to.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
        metrics::gauge!(m::WEBHOOK_QUEUE_DEPTH).set(self.depth() as f64);
    }

    /// Events waiting for the writer.
    pub fn depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: i64) -> Event {
        Event {
            kind: EventKind::CallCompleted,
            tenant: None,
            campaign: Some(1),
            attempt: Some(n),
            at_ms: n,
            data: serde_json::json!({}),
        }
    }

    #[test]
    fn a_full_queue_drops_instead_of_waiting() {
        let (sink, mut rx) = EventSink::new(2);
        for n in 0..5 {
            sink.emit(ev(n));
        }
        assert_eq!(sink.depth(), 2);
        assert_eq!(rx.try_recv().unwrap().attempt, Some(0));
        assert_eq!(rx.try_recv().unwrap().attempt, Some(1));
        assert!(rx.try_recv().is_err());
        drop(rx);
        sink.emit(ev(9)); // no writer: silently nothing
    }
}

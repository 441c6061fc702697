//! A trunk's metric handles, each registered with the recorder the first time it is used.
//!
//! The `metrics` macros build the label set (a vector, a copy of the trunk's name) and
//! look the series up in the recorder at every call; a call ended eight of them, about
//! 3 % of the signalling thread's instructions. A handle is looked up once and is then
//! an atomic update. Registration waits for first use so that a trunk shows no series it
//! never recorded (as before), and the recorder is the one installed by then.

use std::cell::OnceCell;
use std::sync::Arc;

use metrics::{Counter, Gauge, Histogram, SharedString};

use crate::metrics as m;
use crate::model::Outcome;

/// The per-trunk series the dialer core records for every call.
#[derive(Debug)]
pub struct TrunkMetrics {
    /// The `trunk` label, shared (a clone is a reference count, not a copy).
    trunk: SharedString,
    throttled: OnceCell<Counter>,
    attempts: OnceCell<Counter>,
    ringing: OnceCell<Gauge>,
    answered: OnceCell<Gauge>,
    post_dial_delay: OnceCell<Histogram>,
    duration: OnceCell<Histogram>,
    /// `dialer_calls_completed_total`, by [`Outcome::ALL`]'s order.
    completed: [OnceCell<Counter>; Outcome::ALL.len()],
}

/// Where a call in progress is counted in `dialer_calls_active`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActiveState {
    /// INVITE sent, not answered yet.
    Ringing,
    /// Answered (playing or hanging up).
    Answered,
}

impl TrunkMetrics {
    /// Handles for the trunk named `name`; nothing is registered yet.
    pub fn new(name: &str) -> Self {
        TrunkMetrics {
            trunk: SharedString::from(Arc::<str>::from(name)),
            throttled: OnceCell::new(),
            attempts: OnceCell::new(),
            ringing: OnceCell::new(),
            answered: OnceCell::new(),
            post_dial_delay: OnceCell::new(),
            duration: OnceCell::new(),
            completed: Default::default(),
        }
    }

    /// The `trunk` label itself, for series recorded elsewhere (the SIP endpoint's
    /// response counters): a reference count, not a copy of the name.
    pub fn label(&self) -> SharedString {
        self.trunk.clone()
    }

    /// `dialer_cps_throttled_total`: the limiter made an INVITE wait.
    pub fn throttled(&self) -> &Counter {
        self.throttled
            .get_or_init(|| metrics::counter!(m::CPS_THROTTLED, "trunk" => self.trunk.clone()))
    }

    /// `dialer_call_attempts_total`: an INVITE left.
    pub fn attempts(&self) -> &Counter {
        self.attempts
            .get_or_init(|| metrics::counter!(m::CALL_ATTEMPTS, "trunk" => self.trunk.clone()))
    }

    /// `dialer_calls_active{state}`.
    pub fn active(&self, state: ActiveState) -> &Gauge {
        let (cell, label) = match state {
            ActiveState::Ringing => (&self.ringing, "ringing"),
            ActiveState::Answered => (&self.answered, "answered"),
        };
        cell.get_or_init(
            || metrics::gauge!(m::CALLS_ACTIVE, "trunk" => self.trunk.clone(), "state" => label),
        )
    }

    /// `dialer_post_dial_delay_seconds`.
    pub fn post_dial_delay(&self) -> &Histogram {
        self.post_dial_delay
            .get_or_init(|| metrics::histogram!(m::POST_DIAL_DELAY, "trunk" => self.trunk.clone()))
    }

    /// `dialer_call_duration_seconds`.
    pub fn duration(&self) -> &Histogram {
        self.duration
            .get_or_init(|| metrics::histogram!(m::CALL_DURATION, "trunk" => self.trunk.clone()))
    }

    /// `dialer_calls_completed_total{outcome}`.
    pub fn completed(&self, outcome: Outcome) -> &Counter {
        self.completed[outcome.index()].get_or_init(|| {
            metrics::counter!(m::CALLS_COMPLETED, "trunk" => self.trunk.clone(), "outcome" => outcome.as_str())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;

    use metrics::{Key, KeyName, Metadata, Recorder, Unit};

    /// Counters by name and labels; other kinds are handed out unrecorded.
    #[derive(Default)]
    struct Counters(Mutex<Vec<(String, Arc<AtomicU64>)>>);

    impl Counters {
        fn value(&self, key: &str) -> Option<u64> {
            let list = self.0.lock().unwrap();
            let found = list.iter().find(|(k, _)| k == key);
            found.map(|(_, v)| v.load(Ordering::Relaxed))
        }

        fn registered(&self) -> usize {
            self.0.lock().unwrap().len()
        }
    }

    fn text(key: &Key) -> String {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        format!("{}{{{}}}", key.name(), labels.join(","))
    }

    impl Recorder for Counters {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            let v = Arc::new(AtomicU64::new(0));
            self.0.lock().unwrap().push((text(key), v.clone()));
            Counter::from_arc(v)
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            self.0
                .lock()
                .unwrap()
                .push((text(key), Arc::new(AtomicU64::new(0))));
            Gauge::noop()
        }
        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            self.0
                .lock()
                .unwrap()
                .push((text(key), Arc::new(AtomicU64::new(0))));
            Histogram::noop()
        }
    }

    #[test]
    fn handles_record_under_the_trunks_labels_once_registered() {
        let rec = Counters::default();
        metrics::with_local_recorder(&rec, || {
            let t = TrunkMetrics::new("carrier-a");
            t.attempts().increment(2);
            t.attempts().increment(1);
            t.active(ActiveState::Ringing).increment(1.0);
            t.completed(Outcome::Busy).increment(1);
            t.completed(Outcome::Answered).increment(1);
            t.completed(Outcome::Answered).increment(1);
        });
        let attempts = rec.value("dialer_call_attempts_total{trunk=carrier-a}");
        assert_eq!(attempts, Some(3));
        let busy = rec.value("dialer_calls_completed_total{trunk=carrier-a,outcome=busy}");
        assert_eq!(busy, Some(1));
        let answered = rec.value("dialer_calls_completed_total{trunk=carrier-a,outcome=answered}");
        assert_eq!(answered, Some(2));
        assert!(rec
            .value("dialer_calls_active{trunk=carrier-a,state=ringing}")
            .is_some());
        // Each series registered once, and none that was never recorded.
        assert_eq!(rec.registered(), 4);
    }
}

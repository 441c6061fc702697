//! Crash recovery: closing the attempts a previous run left `dialing`.
//!
//! The journal holds every attempt before its INVITE left (DESIGN principle 5), so after
//! a crash the open ones are known; what became of them is not, except whether they were
//! answered. An answered attempt stays `answered` (the message was being played: the
//! contact is done, never called twice). Any other is closed as `failed` with
//! `sip_reason = "recovered after restart"`, not counted, and its contact is due again at
//! once: the resident was not reached through our fault, which like a carrier fault does
//! not use up one of their retries.

use tracing::warn;

use super::core::DialerError;
use crate::model::Outcome;
use crate::store::{AttemptEnd, ContactNext, Dangling, Store};

/// The reason phrase journaled for attempts closed by recovery.
pub const RECOVERED: &str = "recovered after restart";

/// How one dangling attempt is closed at Unix ms `wall`.
pub fn recovered_end(d: &Dangling, wall: i64) -> (AttemptEnd, ContactNext) {
    let (outcome, counted, next) = if d.answered {
        (Outcome::Answered, true, ContactNext::Done)
    } else {
        (Outcome::Failed, false, ContactNext::RetryAt(wall))
    };
    let end = AttemptEnd {
        counted,
        ended_ms: wall,
        ..AttemptEnd::new(d.attempt, outcome, 0, RECOVERED)
    };
    (end, next)
}

/// Closes every attempt a crash left `dialing` (see the module documentation); returns
/// how many.
pub async fn recover<S: Store>(store: &S, wall: i64) -> Result<usize, DialerError> {
    let dangling = store.dangling().await?;
    for d in &dangling {
        let (end, next) = recovered_end(d, wall);
        store.finish_attempt(end, next).await?;
    }
    if !dangling.is_empty() {
        warn!(
            attempts = dangling.len(),
            "recovered attempts left dialing by a previous run"
        );
    }
    Ok(dangling.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dangling(answered: bool) -> Dangling {
        Dangling {
            attempt: 7,
            campaign: 1,
            contact: 2,
            answered,
            attempts: 1,
        }
    }

    #[test]
    fn unanswered_is_failed_uncounted_and_due_at_once() {
        let (end, next) = recovered_end(&dangling(false), 5_000);
        assert_eq!(end.outcome, Outcome::Failed);
        assert_eq!(end.sip_reason, RECOVERED);
        assert!(!end.counted);
        assert_eq!(next, ContactNext::RetryAt(5_000));
    }

    #[test]
    fn answered_stays_answered_and_done() {
        let (end, next) = recovered_end(&dangling(true), 5_000);
        assert_eq!(end.outcome, Outcome::Answered);
        assert!(end.counted);
        assert_eq!(next, ContactNext::Done);
    }
}

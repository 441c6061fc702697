//! `dialer_sip_responses_total` handles by trunk, method and code, registered once each.
//!
//! The `metrics` macro builds the label set (a vector) and looks the series up in the
//! recorder for every response; a call has three or more. The labels are bounded (the
//! trunks, the standard methods, the status labels of [`status_label`]), so the map is too.

use metrics::{Counter, SharedString};

use super::wire::status_label;
use crate::id_map::IdMap;
use crate::sip::headers::Method;

/// Counter handles for the responses received, by (trunk, method, code).
#[derive(Default)]
pub(super) struct ResponseCounters(IdMap<(SharedString, &'static str, &'static str), Counter>);

impl ResponseCounters {
    /// Counts one response to a `method` request of the call labelled `trunk`.
    pub(super) fn count(&mut self, trunk: SharedString, method: Method<'_>, status: u16) {
        let key = (
            trunk,
            method.standard_name().unwrap_or("other"),
            status_label(status),
        );
        self.0
            .entry(key)
            .or_insert_with_key(|(trunk, method, code)| {
                metrics::counter!(crate::metrics::SIP_RESPONSES, "trunk" => trunk.clone(), "method" => *method, "code" => *code)
            })
            .increment(1);
    }
}

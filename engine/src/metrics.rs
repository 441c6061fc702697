//! Every metric the dialer emits: its name (DESIGN's conventions: `dialer_` prefix, base
//! units, counters ending in `_total`, no unbounded label) and its description, in one
//! place. Libraries record through the `metrics` facade with these constants; the binary
//! installs the Prometheus exporter and calls [`describe`] once.

use metrics::Unit;

/// Counter `{trunk}`: attempts whose INVITE left.
pub const CALL_ATTEMPTS: &str = "dialer_call_attempts_total";
/// Counter `{trunk,outcome}`: attempts ended.
pub const CALLS_COMPLETED: &str = "dialer_calls_completed_total";
/// Gauge `{trunk,state}`: calls in progress (`ringing`, `answered`).
pub const CALLS_ACTIVE: &str = "dialer_calls_active";
/// Counter `{trunk,method,code}`: SIP responses received.
pub const SIP_RESPONSES: &str = "dialer_sip_responses_total";
/// Counter `{trunk}`: SIP retransmissions.
pub const SIP_RETRANSMISSIONS: &str = "dialer_sip_retransmissions_total";
/// Histogram `{trunk}`: INVITE to first ringing or answer, seconds.
pub const POST_DIAL_DELAY: &str = "dialer_post_dial_delay_seconds";
/// Histogram `{trunk}`: answered call duration, seconds.
pub const CALL_DURATION: &str = "dialer_call_duration_seconds";
/// Gauge `{trunk}`: 1 when the trunk is up by OPTIONS pings (or REGISTER).
pub const TRUNK_UP: &str = "dialer_trunk_up";
/// Gauge `{trunk}`: configured CPS ceiling.
pub const TRUNK_CPS_LIMIT: &str = "dialer_trunk_cps_limit";
/// Gauge `{trunk}`: configured concurrent channels.
pub const TRUNK_CHANNELS_LIMIT: &str = "dialer_trunk_channels_limit";
/// Counter `{trunk}`: INVITEs the CPS limiter made wait.
pub const CPS_THROTTLED: &str = "dialer_cps_throttled_total";
/// Counter: RTP packets sent.
pub const RTP_PACKETS_SENT: &str = "dialer_rtp_packets_sent_total";
/// Histogram: how late RTP packets leave versus their schedule, seconds.
pub const RTP_SEND_LAG: &str = "dialer_rtp_send_lag_seconds";
/// Counter `{reason}`: RTP packets not sent (`source`, `send_error`).
pub const RTP_DROPPED: &str = "dialer_rtp_dropped_packets_total";
/// Histogram: fraction lost the far end reports in RTCP receiver reports.
pub const RTP_FAR_END_FRACTION_LOST: &str = "dialer_rtp_far_end_fraction_lost";
/// Histogram: interarrival jitter the far end reports, seconds.
pub const RTP_FAR_END_JITTER: &str = "dialer_rtp_far_end_jitter_seconds";
/// Histogram: writes per store commit.
pub const STORE_BATCH_SIZE: &str = "dialer_store_batch_size";
/// Gauge `{campaign_state}`: contacts of running campaigns by state.
pub const CAMPAIGN_CONTACTS: &str = "dialer_campaign_contacts";
/// Histogram: journal batch commit time, seconds.
pub const STORE_COMMIT: &str = "dialer_store_commit_seconds";
/// Counter: attempts left open by a cluster node whose lease ran out, closed by this node.
pub const CLUSTER_TAKEN_OVER: &str = "dialer_cluster_taken_over_total";
/// Gauge: 1 while `/readyz` would say ready, 0 while starting or draining.
pub const READY: &str = "dialer_ready";
/// Counter: SIP messages mirrored to the HEP collector.
pub const HEP_PACKETS_SENT: &str = "dialer_hep_packets_sent_total";
/// Counter `{reason}`: HEP captures dropped.
pub const HEP_DROPPED: &str = "dialer_hep_dropped_total";
/// Counter: wrong PINs entered at the IVR.
pub const IVR_PIN_FAILURES: &str = "dialer_ivr_pin_failures_total";
/// Counter: callers locked out of the IVR after too many wrong PINs.
pub const IVR_PIN_LOCKOUTS: &str = "dialer_ivr_pin_lockouts_total";
/// Counter `{reason}`: inbound INVITEs refused (`not_trunk`, `unknown_number`, `no_channel`).
pub const INBOUND_REFUSED: &str = "dialer_inbound_refused_total";
/// Counter `{flow}`: inbound calls answered, per line (`citizen`, `staff`).
pub const INBOUND_CALLS: &str = "dialer_inbound_calls_total";
/// Counter `{action}`: registrations by phone (`register`, `zone_change`, `unregister`).
pub const IVR_REGISTRATIONS: &str = "dialer_ivr_registrations_total";
/// Counter: staff PINs set or changed through the API.
pub const IVR_STAFF_PIN_CHANGES: &str = "dialer_ivr_staff_pin_changes_total";
/// Gauge: 1 once the prompts of every inbound line known at start are rendered.
pub const IVR_PROMPTS_READY: &str = "dialer_ivr_prompts_ready";
/// Counter `{method,route,status}`: API requests.
pub const HTTP_REQUESTS: &str = "dialer_http_requests_total";
/// Histogram `{method,route}`: API request handling time, seconds.
pub const HTTP_REQUEST_DURATION: &str = "dialer_http_request_duration_seconds";
/// Counter `{reason}`: SIP datagrams or messages lost (`socket_buffer`, `parse_error`, `no_transaction`, `send_error`).
pub const SIP_DROPPED: &str = "dialer_sip_dropped_total";
/// Counter `{method,action}`: requests from addresses that are no trunk's, dropped or refused.
pub const SIP_STRANGERS: &str = "dialer_sip_strangers_total";
/// Counter `{result}`: incoming INVITEs from allowed sources and what became of them
/// (`offered`, `accepted`, `rejected`, `canceled`, `no_ack`).
pub const SIP_INBOUND: &str = "dialer_sip_inbound_total";
/// Gauge: open SIP TCP connections.
pub const SIP_TCP_CONNECTIONS: &str = "dialer_sip_tcp_connections";
/// Counter `{reason}`: SIP TCP connections refused (caps).
pub const SIP_TCP_REFUSED: &str = "dialer_sip_tcp_refused_total";
/// Counter `{reason}`: SIP TCP connections we closed (size, timeouts).
pub const SIP_TCP_CLOSED: &str = "dialer_sip_tcp_closed_total";
/// Counter `{reason}`: SIP messages over TCP dropped.
pub const SIP_TCP_DROPPED: &str = "dialer_sip_tcp_dropped_total";
/// Counter `{kind}`: failed TCP accepts (e.g. file descriptors exhausted), each followed by a back-off.
pub const SIP_TCP_ACCEPT_ERRORS: &str = "dialer_sip_tcp_accept_errors_total";
/// Counter `{side}`: SIP TLS handshakes that failed or timed out (`client`: to a trunk,
/// `server`: on our listener).
pub const SIP_TLS_HANDSHAKE_FAILED: &str = "dialer_sip_tls_handshake_failures_total";
/// Counter `{reason}`: received SRTP/SRTCP packets refused (`auth`, `replay`, `short`).
pub const SRTP_REFUSED: &str = "dialer_srtp_refused_total";
/// Counter `{trunk,stage}`: normal calls ended for an emergency campaign (`queued`,
/// `ringing`, `answered`).
pub const PREEMPTIONS: &str = "dialer_preemptions_total";

/// Gauge: webhook events waiting in the in-memory queue between the dialer and the
/// outbox writer (bounded; a full queue drops the event and counts it, calls never wait).
pub const WEBHOOK_QUEUE_DEPTH: &str = "dialer_webhook_queue_depth";
/// Counter `{reason}`: webhook events dropped before reaching the outbox (`full`).
pub const WEBHOOK_EVENTS_DROPPED: &str = "dialer_webhook_events_dropped_total";
/// Counter `{result}`: webhook delivery attempts (`delivered`, `failed`, `dead`).
pub const WEBHOOK_DELIVERIES: &str = "dialer_webhook_deliveries_total";
/// Counter `{reason}`: audit entries that could not be appended (`store`).
pub const AUDIT_FAILURES: &str = "dialer_audit_failures_total";

/// What kind of metric a name is, for describing it to the recorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric the dialer emits: name, kind, unit (when it has one) and the description
/// shown beside it on /metrics. One row per metric, so a new metric is described where it
/// is listed.
pub const DESCRIPTIONS: &[(&str, Kind, Option<Unit>, &str)] = &[
    (
        CALL_ATTEMPTS,
        Kind::Counter,
        None,
        "Attempts started, per trunk",
    ),
    (
        WEBHOOK_QUEUE_DEPTH,
        Kind::Gauge,
        None,
        "Webhook events waiting for the outbox writer",
    ),
    (
        WEBHOOK_EVENTS_DROPPED,
        Kind::Counter,
        None,
        "Webhook events dropped because the in-memory queue was full",
    ),
    (
        WEBHOOK_DELIVERIES,
        Kind::Counter,
        None,
        "Webhook delivery attempts, per result",
    ),
    (
        AUDIT_FAILURES,
        Kind::Counter,
        None,
        "Audit entries that could not be appended",
    ),
    (
        CALLS_COMPLETED,
        Kind::Counter,
        None,
        "Attempts ended, per trunk and outcome",
    ),
    (
        CALLS_ACTIVE,
        Kind::Gauge,
        None,
        "Calls in progress, per trunk and state",
    ),
    (
        PREEMPTIONS,
        Kind::Counter,
        None,
        "Normal calls ended for an emergency, per trunk and stage",
    ),
    (
        SIP_RESPONSES,
        Kind::Counter,
        None,
        "SIP responses received, per trunk, method and code",
    ),
    (
        SIP_RETRANSMISSIONS,
        Kind::Counter,
        None,
        "SIP retransmissions, per trunk",
    ),
    (
        POST_DIAL_DELAY,
        Kind::Histogram,
        Some(Unit::Seconds),
        "INVITE to first ringing or answer",
    ),
    (
        CALL_DURATION,
        Kind::Histogram,
        Some(Unit::Seconds),
        "Answered call duration",
    ),
    (
        TRUNK_UP,
        Kind::Gauge,
        None,
        "1 when the trunk answers OPTIONS pings",
    ),
    (
        TRUNK_CPS_LIMIT,
        Kind::Gauge,
        None,
        "Configured calls per second",
    ),
    (
        TRUNK_CHANNELS_LIMIT,
        Kind::Gauge,
        None,
        "Configured concurrent channels",
    ),
    (
        CPS_THROTTLED,
        Kind::Counter,
        None,
        "Attempts delayed by the CPS limiter",
    ),
    (RTP_PACKETS_SENT, Kind::Counter, None, "RTP packets sent"),
    (
        RTP_SEND_LAG,
        Kind::Histogram,
        Some(Unit::Seconds),
        "How late RTP packets leave versus their schedule",
    ),
    (
        RTP_DROPPED,
        Kind::Counter,
        None,
        "RTP packets not sent, by reason",
    ),
    (
        RTP_FAR_END_FRACTION_LOST,
        Kind::Histogram,
        None,
        "Fraction of our RTP lost, as the far end reports in RTCP",
    ),
    (
        RTP_FAR_END_JITTER,
        Kind::Histogram,
        Some(Unit::Seconds),
        "Interarrival jitter of our RTP, as the far end reports in RTCP",
    ),
    (
        STORE_BATCH_SIZE,
        Kind::Histogram,
        None,
        "Journal writes per store commit",
    ),
    (
        CAMPAIGN_CONTACTS,
        Kind::Gauge,
        None,
        "Contacts of running campaigns, by contact state (pending, dialing, done)",
    ),
    (
        CLUSTER_TAKEN_OVER,
        Kind::Counter,
        None,
        "Attempts a dead cluster node left open, closed by this node (failed, retried)",
    ),
    (
        STORE_COMMIT,
        Kind::Histogram,
        Some(Unit::Seconds),
        "Journal batch commit time (attempts are journaled before their INVITE)",
    ),
    (
        READY,
        Kind::Gauge,
        None,
        "1 while /readyz would say ready; 0 while starting or draining",
    ),
    (
        HEP_PACKETS_SENT,
        Kind::Counter,
        None,
        "SIP messages mirrored to the HEP collector",
    ),
    (
        HEP_DROPPED,
        Kind::Counter,
        None,
        "HEP captures dropped (queue_full, send_error, unresolved, encode); calls never wait",
    ),
    (
        INBOUND_REFUSED,
        Kind::Counter,
        None,
        "Inbound INVITEs refused, per reason",
    ),
    (
        INBOUND_CALLS,
        Kind::Counter,
        None,
        "Inbound calls answered, per line",
    ),
    (
        IVR_REGISTRATIONS,
        Kind::Counter,
        None,
        "Registrations, zone changes and unregistrations by phone",
    ),
    (
        IVR_PIN_FAILURES,
        Kind::Counter,
        None,
        "Wrong PINs entered at the IVR",
    ),
    (
        IVR_PIN_LOCKOUTS,
        Kind::Counter,
        None,
        "IVR callers locked out after too many wrong PINs",
    ),
    (
        IVR_STAFF_PIN_CHANGES,
        Kind::Counter,
        None,
        "Staff PINs set or changed through the API",
    ),
    (
        IVR_PROMPTS_READY,
        Kind::Gauge,
        None,
        "Whether the prompts of every inbound line known at start are rendered (1) or not yet (0)",
    ),
    (
        HTTP_REQUESTS,
        Kind::Counter,
        None,
        "API requests, per method, route pattern and status",
    ),
    (
        HTTP_REQUEST_DURATION,
        Kind::Histogram,
        Some(Unit::Seconds),
        "API request handling time",
    ),
    (
        SIP_DROPPED,
        Kind::Counter,
        None,
        "SIP datagrams or messages lost, per reason",
    ),
    (
        SIP_STRANGERS,
        Kind::Counter,
        None,
        "Requests from non-trunk addresses, per method and action",
    ),
    (
        SIP_INBOUND,
        Kind::Counter,
        None,
        "Incoming INVITEs from allowed sources, per result",
    ),
    (
        SIP_TCP_CONNECTIONS,
        Kind::Gauge,
        None,
        "Open SIP TCP connections",
    ),
    (
        SIP_TCP_REFUSED,
        Kind::Counter,
        None,
        "SIP TCP connections refused, per reason",
    ),
    (
        SIP_TCP_CLOSED,
        Kind::Counter,
        None,
        "SIP TCP connections closed by us, per reason",
    ),
    (
        SIP_TCP_DROPPED,
        Kind::Counter,
        None,
        "SIP messages over TCP dropped, per reason",
    ),
    (
        SIP_TCP_ACCEPT_ERRORS,
        Kind::Counter,
        None,
        "Failed SIP TCP accepts, per kind",
    ),
    (
        SIP_TLS_HANDSHAKE_FAILED,
        Kind::Counter,
        None,
        "SIP TLS handshakes failed or timed out, per side",
    ),
    (
        SRTP_REFUSED,
        Kind::Counter,
        None,
        "Received SRTP packets refused, per reason",
    ),
];

/// Registers the description (and unit) of every metric with the installed recorder.
pub fn describe() {
    for &(name, kind, unit, text) in DESCRIPTIONS {
        metrics::with_recorder(|r| match kind {
            Kind::Counter => r.describe_counter(name.into(), unit, text.into()),
            Kind::Gauge => r.describe_gauge(name.into(), unit, text.into()),
            Kind::Histogram => r.describe_histogram(name.into(), unit, text.into()),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions() {
        for &(name, kind, _, text) in DESCRIPTIONS {
            assert!(name.starts_with("dialer_"), "{name}");
            assert!(!text.is_empty(), "{name}");
            if kind == Kind::Counter {
                assert!(name.ends_with("_total"), "{name}");
            }
        }
        let unique: std::collections::HashSet<_> = DESCRIPTIONS.iter().map(|d| d.0).collect();
        assert_eq!(unique.len(), DESCRIPTIONS.len());
    }
}

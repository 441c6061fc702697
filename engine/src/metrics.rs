//! Every metric the dialer emits: its name (DESIGN's conventions: `dialer_` prefix, base
//! units, counters ending in `_total`, no unbounded label) and its description, in one
//! place. Libraries record through the `metrics` facade with these constants; the binary
//! installs the Prometheus exporter and calls [`describe`] once.

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

/// Registers the description (and unit) of every metric with the installed recorder.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(CALL_ATTEMPTS, "Attempts started, per trunk");
    describe_gauge!(
        WEBHOOK_QUEUE_DEPTH,
        "Webhook events waiting for the outbox writer"
    );
    describe_counter!(
        WEBHOOK_EVENTS_DROPPED,
        "Webhook events dropped because the in-memory queue was full"
    );
    describe_counter!(WEBHOOK_DELIVERIES, "Webhook delivery attempts, per result");
    describe_counter!(AUDIT_FAILURES, "Audit entries that could not be appended");
    describe_counter!(CALLS_COMPLETED, "Attempts ended, per trunk and outcome");
    describe_gauge!(CALLS_ACTIVE, "Calls in progress, per trunk and state");
    describe_counter!(
        PREEMPTIONS,
        "Normal calls ended for an emergency, per trunk and stage"
    );
    describe_counter!(
        SIP_RESPONSES,
        "SIP responses received, per trunk, method and code"
    );
    describe_counter!(SIP_RETRANSMISSIONS, "SIP retransmissions, per trunk");
    describe_histogram!(
        POST_DIAL_DELAY,
        Unit::Seconds,
        "INVITE to first ringing or answer"
    );
    describe_histogram!(CALL_DURATION, Unit::Seconds, "Answered call duration");
    describe_gauge!(TRUNK_UP, "1 when the trunk answers OPTIONS pings");
    describe_gauge!(TRUNK_CPS_LIMIT, "Configured calls per second");
    describe_gauge!(TRUNK_CHANNELS_LIMIT, "Configured concurrent channels");
    describe_counter!(CPS_THROTTLED, "Attempts delayed by the CPS limiter");
    describe_counter!(RTP_PACKETS_SENT, "RTP packets sent");
    describe_histogram!(
        RTP_SEND_LAG,
        Unit::Seconds,
        "How late RTP packets leave versus their schedule"
    );
    describe_counter!(RTP_DROPPED, "RTP packets not sent, by reason");
    describe_histogram!(
        RTP_FAR_END_FRACTION_LOST,
        "Fraction of our RTP lost, as the far end reports in RTCP"
    );
    describe_histogram!(
        RTP_FAR_END_JITTER,
        Unit::Seconds,
        "Interarrival jitter of our RTP, as the far end reports in RTCP"
    );
    describe_histogram!(STORE_BATCH_SIZE, "Journal writes per store commit");
    describe_gauge!(
        CAMPAIGN_CONTACTS,
        "Contacts of running campaigns, by contact state (pending, dialing, done)"
    );
    describe_counter!(
        CLUSTER_TAKEN_OVER,
        "Attempts a dead cluster node left open, closed by this node (failed, retried)"
    );
    describe_histogram!(
        STORE_COMMIT,
        Unit::Seconds,
        "Journal batch commit time (attempts are journaled before their INVITE)"
    );
    describe_gauge!(
        READY,
        "1 while /readyz would say ready; 0 while starting or draining"
    );
    describe_counter!(
        HEP_PACKETS_SENT,
        "SIP messages mirrored to the HEP collector"
    );
    describe_counter!(
        HEP_DROPPED,
        "HEP captures dropped (queue_full, send_error, unresolved, encode); calls never wait"
    );
    describe_counter!(INBOUND_REFUSED, "Inbound INVITEs refused, per reason");
    describe_counter!(INBOUND_CALLS, "Inbound calls answered, per line");
    describe_counter!(
        IVR_REGISTRATIONS,
        "Registrations, zone changes and unregistrations by phone"
    );
    describe_counter!(IVR_PIN_FAILURES, "Wrong PINs entered at the IVR");
    describe_counter!(
        IVR_PIN_LOCKOUTS,
        "IVR callers locked out after too many wrong PINs"
    );
    describe_counter!(
        IVR_STAFF_PIN_CHANGES,
        "Staff PINs set or changed through the API"
    );
    describe_gauge!(
        IVR_PROMPTS_READY,
        "Whether the prompts of every inbound line known at start are rendered (1) or not yet (0)"
    );
    describe_counter!(
        HTTP_REQUESTS,
        "API requests, per method, route pattern and status"
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION,
        Unit::Seconds,
        "API request handling time"
    );
    describe_counter!(SIP_DROPPED, "SIP datagrams or messages lost, per reason");
    describe_counter!(
        SIP_STRANGERS,
        "Requests from non-trunk addresses, per method and action"
    );
    describe_counter!(
        SIP_INBOUND,
        "Incoming INVITEs from allowed sources, per result"
    );
    describe_gauge!(SIP_TCP_CONNECTIONS, "Open SIP TCP connections");
    describe_counter!(SIP_TCP_REFUSED, "SIP TCP connections refused, per reason");
    describe_counter!(
        SIP_TCP_CLOSED,
        "SIP TCP connections closed by us, per reason"
    );
    describe_counter!(SIP_TCP_DROPPED, "SIP messages over TCP dropped, per reason");
    describe_counter!(SIP_TCP_ACCEPT_ERRORS, "Failed SIP TCP accepts, per kind");
    describe_counter!(
        SIP_TLS_HANDSHAKE_FAILED,
        "SIP TLS handshakes failed or timed out, per side"
    );
    describe_counter!(SRTP_REFUSED, "Received SRTP packets refused, per reason");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions() {
        let all = [
            SIP_DROPPED,
            SIP_STRANGERS,
            SIP_INBOUND,
            SIP_TCP_CONNECTIONS,
            SIP_TCP_REFUSED,
            SIP_TCP_CLOSED,
            SIP_TCP_DROPPED,
            SIP_TCP_ACCEPT_ERRORS,
            SIP_TLS_HANDSHAKE_FAILED,
            SRTP_REFUSED,
            PREEMPTIONS,
            WEBHOOK_QUEUE_DEPTH,
            WEBHOOK_EVENTS_DROPPED,
            WEBHOOK_DELIVERIES,
            AUDIT_FAILURES,
            CALL_ATTEMPTS,
            CALLS_COMPLETED,
            CALLS_ACTIVE,
            SIP_RESPONSES,
            SIP_RETRANSMISSIONS,
            POST_DIAL_DELAY,
            CALL_DURATION,
            TRUNK_UP,
            TRUNK_CPS_LIMIT,
            TRUNK_CHANNELS_LIMIT,
            CPS_THROTTLED,
            RTP_PACKETS_SENT,
            RTP_SEND_LAG,
            RTP_DROPPED,
            RTP_FAR_END_FRACTION_LOST,
            RTP_FAR_END_JITTER,
            STORE_BATCH_SIZE,
            CAMPAIGN_CONTACTS,
            STORE_COMMIT,
            CLUSTER_TAKEN_OVER,
            READY,
            HEP_PACKETS_SENT,
            HEP_DROPPED,
            INBOUND_REFUSED,
            INBOUND_CALLS,
            IVR_REGISTRATIONS,
            IVR_PIN_FAILURES,
            IVR_PIN_LOCKOUTS,
            IVR_STAFF_PIN_CHANGES,
            IVR_PROMPTS_READY,
            HTTP_REQUESTS,
            HTTP_REQUEST_DURATION,
        ];
        for n in all {
            assert!(n.starts_with("dialer_"), "{n}");
        }
        let unique: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(unique.len(), all.len());
    }
}

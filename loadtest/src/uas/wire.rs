//! Requests the carrier sends inside a dialog (BYE, INFO) and its reason phrases.

use super::*;

pub(super) fn reason_for(code: u16) -> &'static str {
    match code {
        403 => "Forbidden",
        404 => "Not Found",
        480 => "Temporarily Unavailable",
        486 => "Busy Here",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        503 => "Service Unavailable",
        603 => "Decline",
        _ => "Rejected",
    }
}

pub(super) fn build_bye(call: &Call, local: SocketAddr, serial: u64) -> Wire {
    let branch = format!("z9hG4bKcb{serial:x}");
    match in_dialog(call, local, "BYE", &branch, 1) {
        Some(w) => w.finish().into(),
        None => Arc::from(&b""[..]),
    }
}

/// An in-dialog INFO with key `d` (`application/dtmf-relay`), sent once: loopback tests
/// do not lose it, and a lost key is what a real phone's user would press again.
pub(super) fn build_info(call: &Call, local: SocketAddr, serial: u64, d: char) -> Wire {
    let cseq = call.cseq;
    let branch = format!("z9hG4bKci{serial:x}x{cseq}");
    match in_dialog(call, local, "INFO", &branch, cseq) {
        Some(w) => w
            .finish_with_body(Some("application/dtmf-relay"), info_body(d).as_bytes())
            .into(),
        None => Arc::from(&b""[..]),
    }
}

/// The headers of a request we (the callee) send inside `call`'s dialog: to the caller's
/// Contact (else its address), From and To swapped from the INVITE. `None` when the
/// INVITE we kept does not parse.
fn in_dialog(
    call: &Call,
    local: SocketAddr,
    method: &str,
    branch: &str,
    cseq: u32,
) -> Option<MessageWriter> {
    let Ok(Message::Request(req)) = parse(&call.invite) else {
        return None;
    };
    let target = req
        .headers
        .contacts()
        .ok()
        .and_then(|c| c.first().map(|c| c.uri.raw.to_string()))
        .unwrap_or_else(|| format!("sip:{}", call.peer));
    let from = req.headers.first(HeaderName::From).unwrap_or("");
    let to = req.headers.first(HeaderName::To).unwrap_or("");
    let to = to.trim_end_matches(|c: char| c == ';' || c.is_ascii_whitespace());
    Some(
        MessageWriter::request(method, &target)
            .header(
                "Via",
                format_args!("SIP/2.0/UDP {local};branch={branch};rport"),
            )
            .header("Max-Forwards", 70)
            .header("From", format_args!("{to};tag={:x}", call.to_tag))
            .header("To", from)
            .header("Call-ID", &call.call_id)
            .header("CSeq", format_args!("{cseq} {method}")),
    )
}

//! Building the requests and responses the endpoint sends.

use super::*;
use crate::sip::builder::{write_host_port, Angled, HeaderValue, SeqMethod};

pub(super) fn status_label(status: u16) -> &'static str {
    match status {
        100 => "100",
        180 => "180",
        183 => "183",
        200 => "200",
        401 => "401",
        407 => "407",
        404 => "404",
        408 => "408",
        480 => "480",
        481 => "481",
        486 => "486",
        487 => "487",
        500 => "500",
        503 => "503",
        603 => "603",
        s if s < 200 => "1xx",
        s if s < 300 => "2xx",
        s if s < 400 => "3xx",
        s if s < 500 => "4xx",
        s if s < 600 => "5xx",
        _ => "6xx",
    }
}

pub(super) fn is_sdp(r: &Response<'_>) -> bool {
    r.headers
        .content_type()
        .is_some_and(|t| t.eq_ignore_ascii_case("application/sdp"))
}

pub(super) fn sip_host_port(a: SocketAddr) -> String {
    let mut bytes = Vec::with_capacity(48);
    write_host_port(&mut bytes, a);
    // Digits, dots, colons and brackets only: always UTF-8.
    String::from_utf8(bytes).unwrap_or_default()
}

/// The address we are reached at over `transport`: the TLS listener for TLS when there is
/// one, the UDP/TCP address otherwise.
fn our_addr(cfg: &EndpointConfig, transport: Transport) -> SocketAddr {
    match (transport, cfg.tls_addr) {
        (Transport::Tls, Some(a)) => a,
        _ => cfg.local_addr,
    }
}

/// Our Via for a request: written into the message as it is built (this and [`OurContact`]
/// were two `String`s per request before).
pub(super) fn via_value<'a>(
    cfg: &EndpointConfig,
    transport: Transport,
    branch: &'a str,
) -> OurVia<'a> {
    OurVia {
        addr: our_addr(cfg, transport),
        transport,
        branch,
    }
}

/// `SIP/2.0/<transport> <our host:port>;branch=<branch>;rport`.
pub(super) struct OurVia<'a> {
    addr: SocketAddr,
    transport: Transport,
    branch: &'a str,
}

impl HeaderValue for OurVia<'_> {
    fn write_to(self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(b"SIP/2.0/");
        buf.extend_from_slice(self.transport.as_str().as_bytes());
        buf.push(b' ');
        write_host_port(buf, self.addr);
        buf.extend_from_slice(b";branch=");
        buf.extend_from_slice(self.branch.as_bytes());
        buf.extend_from_slice(b";rport");
    }
}

pub(super) fn contact_value(cfg: &EndpointConfig, transport: Transport) -> OurContact {
    OurContact {
        addr: our_addr(cfg, transport),
        transport,
    }
}

/// `<sip:dialer@<our host:port>[;transport=...]>`.
pub(super) struct OurContact {
    addr: SocketAddr,
    transport: Transport,
}

impl HeaderValue for OurContact {
    fn write_to(self, buf: &mut Vec<u8>) {
        // RFC 5630 §3.1.3 asks for a SIPS Contact only when the request is SIPS; trunks take
        // `sip:` with TLS on each hop, the usual setup toward carriers' SBCs.
        let suffix: &[u8] = match self.transport {
            Transport::Udp => b">",
            Transport::Tcp => b";transport=tcp>",
            Transport::Tls => b";transport=tls>",
        };
        buf.extend_from_slice(b"<sip:dialer@");
        write_host_port(buf, self.addr);
        buf.extend_from_slice(suffix);
    }
}

pub(super) fn build_invite(
    cfg: &EndpointConfig,
    c: &Call,
    branch: &str,
    transport: Transport,
    body: &[u8],
) -> Vec<u8> {
    let mut w = MessageWriter::request(Method::Invite.as_str(), &c.params.request_uri)
        .header("Via", via_value(cfg, transport, branch))
        .header("Max-Forwards", 70)
        .header("From", &c.local_party)
        .header("To", Angled(&c.params.to_uri))
        .header("Call-ID", &c.call_id)
        .header("CSeq", SeqMethod(c.cseq, "INVITE"))
        .header("Contact", contact_value(cfg, transport))
        .header("Allow", ALLOW)
        .header("Supported", "timer")
        .header("User-Agent", &cfg.user_agent);
    for (n, v) in &c.params.extra_headers {
        w.push_header(n, v);
    }
    if let Some((n, v)) = &c.auth_header {
        w.push_header(n, v);
    }
    w.finish_with_body(Some("application/sdp"), body)
}

/// Builds a request inside the dialog of `c` and finds where it goes: the first Route if
/// there is a route set, else the remote target; a host name goes to the trunk's proxy.
pub(super) fn build_in_dialog(
    cfg: &EndpointConfig,
    c: &mut Call,
    method: Verb,
    cseq: u32,
    branch: &str,
    extra: &[(&str, String)],
    body: Option<(&str, &[u8])>,
) -> Option<(Vec<u8>, SocketAddr)> {
    let d = c.dialog.as_ref()?;
    let (ruri, routes) = d.target();
    let dest = d.hop.unwrap_or(c.params.proxy);
    let mut w = MessageWriter::request(method.as_str(), ruri)
        .header("Via", via_value(cfg, c.transport, branch))
        .header("Max-Forwards", 70)
        .header("From", &c.local_party)
        .header("To", &d.remote_party)
        .header("Call-ID", &c.call_id)
        .header("CSeq", SeqMethod(cseq, method.as_str()));
    for r in routes {
        w.push_header("Route", r);
    }
    if !matches!(method, Method::Bye | Method::Ack) {
        w.push_header("Contact", contact_value(cfg, c.transport));
    }
    for (n, v) in extra {
        w.push_header(n, v);
    }
    w.push_header("User-Agent", &cfg.user_agent);
    let bytes = match body {
        Some((ct, b)) => w.finish_with_body(Some(ct), b),
        None => w.finish(),
    };
    Some((bytes, dest))
}

/// CANCEL for an INVITE we sent: same Request-URI, top Via, From, To, Call-ID, CSeq
/// number and Route (RFC 3261 §9.1).
pub(super) fn build_cancel(invite: &[u8]) -> Option<Vec<u8>> {
    let Ok(Message::Request(inv)) = crate::sip::message::parse(invite) else {
        return None;
    };
    let cseq = inv.headers.cseq().ok()?;
    let mut w = MessageWriter::request(Method::Cancel.as_str(), inv.uri.raw)
        .header("Via", inv.headers.first(HeaderName::Via)?)
        .header("Max-Forwards", 70)
        .header("From", inv.headers.first(HeaderName::From)?)
        .header("To", inv.headers.first(HeaderName::To)?)
        .header("Call-ID", inv.headers.call_id().ok()?)
        .header("CSeq", SeqMethod(cseq.seq, "CANCEL"));
    for r in inv.headers.values(HeaderName::Route) {
        w.push_header("Route", r);
    }
    Some(w.finish())
}

/// The ACK a client INVITE transaction sends for a non-2xx final response: same branch,
/// the response's To (with its tag), RFC 3261 §17.1.1.3.
pub(super) fn build_ack_for_error(invite: &[u8], resp: &Response<'_>) -> Vec<u8> {
    let Ok(Message::Request(inv)) = crate::sip::message::parse(invite) else {
        return Vec::new();
    };
    let seq = inv.headers.cseq().map(|c| c.seq).unwrap_or(0);
    let mut w = MessageWriter::request(Method::Ack.as_str(), inv.uri.raw)
        .header("Via", inv.headers.first(HeaderName::Via).unwrap_or(""))
        .header("Max-Forwards", 70)
        .header("From", inv.headers.first(HeaderName::From).unwrap_or(""))
        .header(
            "To",
            resp.headers
                .first(HeaderName::To)
                .or(inv.headers.first(HeaderName::To))
                .unwrap_or(""),
        )
        .header("Call-ID", inv.headers.call_id().unwrap_or(""))
        .header("CSeq", SeqMethod(seq, "ACK"));
    for r in inv.headers.values(HeaderName::Route) {
        w.push_header("Route", r);
    }
    w.finish()
}

/// Builds a 400 for a request that failed to parse, copying Via, From, To, Call-ID and CSeq
/// lines as written. `None` for responses, ACKs, and anything without those lines.
pub(super) fn lenient_400(bytes: &[u8], why: &str) -> Option<Vec<u8>> {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(bytes.len());
    let head = std::str::from_utf8(&bytes[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let start = lines.next()?;
    if start.starts_with("SIP/") || start.starts_with("ACK ") || !start.contains(" SIP/") {
        return None;
    }
    let mut want: [(&str, &str, Vec<&str>); 5] = [
        ("Via", "v", Vec::new()),
        ("From", "f", Vec::new()),
        ("To", "t", Vec::new()),
        ("Call-ID", "i", Vec::new()),
        ("CSeq", "", Vec::new()),
    ];
    for line in lines {
        let Some((n, v)) = line.split_once(':') else {
            continue;
        };
        let n = n.trim();
        for (full, compact, vals) in want.iter_mut() {
            if n.eq_ignore_ascii_case(full)
                || (!compact.is_empty() && n.eq_ignore_ascii_case(compact))
            {
                vals.push(v.trim());
            }
        }
    }
    if want.iter().any(|(_, _, v)| v.is_empty()) {
        return None;
    }
    let reason: String = why
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(80)
        .collect();
    let mut out = String::new();
    let _ = write!(out, "SIP/2.0 400 Bad Request ({reason})\r\n");
    for (full, _, vals) in &want {
        for v in vals {
            let _ = write!(out, "{full}: {v}\r\n");
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    Some(out.into_bytes())
}

/// Answers a 401/407 for a request: picks the strongest challenge, checks that answering is
/// worthwhile (at most `max_tries`, no repeat of a rejected nonce), and returns the header to
/// add (`Authorization` or `Proxy-Authorization`) with its value.
#[allow(clippy::too_many_arguments)]
pub(super) fn answer_challenge(
    auth: &mut DigestClient,
    tries: u32,
    max_tries: u32,
    r: &Response<'_>,
    creds: &auth::Credentials,
    method: Verb,
    uri: &str,
    cnonce: &str,
) -> Option<(&'static str, String)> {
    let (header, ch) = pick_challenge(auth, tries, max_tries, r)?;
    let value = auth
        .authorize(&ch, creds, method.as_str(), uri, cnonce)
        .ok()?;
    Some((header, value))
}

/// The challenge of a 401/407 worth answering (the strongest offered; at most
/// `max_tries`, no repeat of a rejected nonce) and the header its answers go in.
pub(super) fn pick_challenge(
    auth: &DigestClient,
    tries: u32,
    max_tries: u32,
    r: &Response<'_>,
) -> Option<(&'static str, auth::Challenge)> {
    let (values, header): (Vec<&str>, &'static str) = if r.status == 407 {
        (
            r.headers.proxy_authenticate().collect(),
            "Proxy-Authorization",
        )
    } else {
        (r.headers.www_authenticate().collect(), "Authorization")
    };
    let ch = auth::select_challenge(values.iter().copied()).ok()?;
    if tries >= max_tries || !auth.should_retry(&ch, tries > 0) {
        return None;
    }
    Some((header, ch))
}

impl Dialog {
    /// A dialog with the far end's tag and party, its remote target (with its parsed form
    /// when the caller has it) and route set (in the order the Route headers are sent).
    pub(super) fn new(
        remote_tag: String,
        remote_party: String,
        (remote_target, target_uri): (String, Option<Uri<'_>>),
        route_set: Vec<String>,
    ) -> Dialog {
        let first = route_set
            .first()
            .and_then(|r| NameAddr::parse(r, "Route").ok());
        let strict = first.filter(|n| !n.uri.is_loose_router()).map(|n| {
            let mut rest = route_set[1..].to_vec();
            rest.push(format!("<{remote_target}>"));
            (n.uri.raw.to_string(), rest)
        });
        let hop = match (first, target_uri) {
            (Some(n), _) => ip_address(&n.uri),
            (None, Some(u)) => ip_address(&u),
            (None, None) => Uri::parse(&remote_target).ok().and_then(|u| ip_address(&u)),
        };
        Dialog {
            remote_tag,
            remote_party,
            remote_target,
            route_set,
            strict,
            hop,
        }
    }

    /// The Request-URI and Route values of the dialog's next request: the remote target
    /// and the route set, or with a strict first route, that route's URI and the rest.
    pub(super) fn target(&self) -> (&str, &[String]) {
        match &self.strict {
            Some((uri, routes)) => (uri, routes),
            None => (&self.remote_target, &self.route_set),
        }
    }
}

/// The address a URI names when its host is an IP address (port 5060 when none is given).
fn ip_address(u: &Uri<'_>) -> Option<SocketAddr> {
    let port = u.port.unwrap_or(5060);
    match u.host? {
        Host::V4(ip) => Some(SocketAddr::new(ip.into(), port)),
        Host::V6(ip) => Some(SocketAddr::new(ip.into(), port)),
        Host::Domain(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_is_written_as_fmt_would() {
        for a in [
            "127.0.0.1:5060",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "10.20.3.4:7",
            "[::1]:5080",
            "[2001:db8::1]:5061",
        ] {
            let a: SocketAddr = a.parse().expect("an address");
            assert_eq!(sip_host_port(a), a.to_string());
        }
    }
}

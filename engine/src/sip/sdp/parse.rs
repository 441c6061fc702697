//! Reading an SDP body a peer sent into a [`SessionDescription`].

use super::*;

/// Parses an SDP body.
///
/// Accepts CRLF or bare LF line ends and skips blank lines. The first line must be `v=0`;
/// every other line must be `<letter>=<value>`. Line types this UAC has no use for (`t=`,
/// `b=`, `k=`, `i=`, ...) are skipped; an `a=` attribute that does not parse (say
/// `a=rtpmap:31 LPC`) is kept in `attributes` but not interpreted, because carriers send
/// such lines and rejecting the whole answer for them would fail calls that can work.
/// Non-UTF-8 bytes are replaced, never trusted.
pub fn parse(body: &[u8]) -> Result<SessionDescription<'_>, SdpError> {
    match std::str::from_utf8(body) {
        Ok(text) => parse_text(text),
        Err(_) => parse_text(&String::from_utf8_lossy(body)).map(SessionDescription::into_owned),
    }
}

fn parse_text(text: &str) -> Result<SessionDescription<'_>, SdpError> {
    let mut lines = split_lines(text)
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
        .filter(|(_, l)| !l.trim_ascii().is_empty());

    match lines.next() {
        Some((_, l)) if l.trim_ascii_end() == "v=0" => {}
        _ => return Err(SdpError::NotSdp),
    }

    let mut sdp = SessionDescription {
        origin: None,
        session_name: Cow::Borrowed(""),
        connections: Vec::new(),
        direction: None,
        attributes: Vec::new(),
        // Room for one: most descriptions have a single m= line, and the growth policy's
        // first four (1,184 bytes) fall outside glibc's per-thread cache, where every
        // allocation first merges the arena's fast bins.
        media: Vec::with_capacity(1),
    };

    for (n, line) in lines {
        let bytes = line.as_bytes();
        if bytes.len() < 2 || bytes[1] != b'=' || !bytes[0].is_ascii_alphabetic() {
            return Err(SdpError::BadLine(n));
        }
        let value = &line[2..];
        if bytes[0] == b'm' {
            sdp.media
                .push(parse_media(value).ok_or(SdpError::BadMedia(n))?);
            continue;
        }
        match (bytes[0], sdp.media.last_mut()) {
            (b'c', None) => sdp
                .connections
                .push(parse_connection(value).ok_or(SdpError::BadConnection(n))?),
            (b'c', Some(m)) => m
                .connections
                .push(parse_connection(value).ok_or(SdpError::BadConnection(n))?),
            (b'o', None) => sdp.origin = parse_origin(value),
            (b's', None) => sdp.session_name = value.into(),
            (b'a', None) => {
                let (name, raw) = split_attribute(value);
                if let Some(d) = Direction::from_attr(name) {
                    sdp.direction = Some(d);
                }
                sdp.attributes.push(attribute((name, raw)));
            }
            (b'a', Some(m)) => apply_media_attribute(m, value),
            _ => {}
        }
    }
    Ok(sdp)
}

/// The body's lines as `split('\n')` gives them, found with a byte search: the char
/// searcher behind `split` cost more per line than the rest of the line's parsing.
fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let r = rest?;
        match memchr::memchr(b'\n', r.as_bytes()) {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// `name[:value]`: the name trimmed, the value as written.
fn split_attribute(line: &str) -> (&str, Option<&str>) {
    match memchr::memchr(b':', line.as_bytes()) {
        Some(i) => (line[..i].trim(), Some(&line[i + 1..])),
        None => (line.trim(), None),
    }
}

fn attribute<'a>((name, value): (&'a str, Option<&'a str>)) -> Attribute<'a> {
    Attribute {
        name: name.into(),
        value: value.map(Cow::Borrowed),
    }
}

fn apply_media_attribute<'a>(m: &mut MediaDescription<'a>, line: &'a str) {
    let (name, raw) = split_attribute(line);
    let value = raw.unwrap_or("").trim();
    match name {
        "rtpmap" => {
            if let Some(map) = parse_rtpmap(value) {
                if m.rtpmap(map.payload_type).is_none() {
                    m.rtpmaps.push(map);
                }
            }
        }
        "fmtp" => {
            if let Some((pt, params)) = value.split_once([' ', '\t']) {
                if let Ok(payload_type) = pt.parse::<u8>() {
                    if m.fmtp(payload_type).is_none() {
                        m.fmtps.push(Fmtp {
                            payload_type,
                            params: params.trim().into(),
                        });
                    }
                }
            }
        }
        "ptime" => m.ptime = m.ptime.or_else(|| parse_millis(value)),
        "maxptime" => m.maxptime = m.maxptime.or_else(|| parse_millis(value)),
        "rtcp" => m.rtcp = m.rtcp.take().or_else(|| parse_rtcp(value)),
        "rtcp-mux" => m.rtcp_mux = true,
        name => {
            if let Some(d) = Direction::from_attr(name) {
                m.direction = Some(d);
            }
        }
    }
    m.attributes.push(attribute((name, raw)));
}

/// `20`, `20.0` or `22.5` (truncated); zero is meaningless and treated as absent.
fn parse_millis(value: &str) -> Option<u32> {
    let int = value.split('.').next()?;
    int.parse::<u32>().ok().filter(|v| *v > 0)
}

/// `<pt> <name>/<clock>[/<channels>]`.
fn parse_rtpmap(value: &str) -> Option<RtpMap<'_>> {
    let (pt, rest) = value.split_once([' ', '\t'])?;
    let payload_type = pt.parse::<u8>().ok().filter(|pt| *pt <= 127)?;
    let mut parts = rest.trim().split('/');
    let encoding = parts.next()?.trim();
    let clock_rate = parts.next()?.trim().parse::<u32>().ok()?;
    let channels = match parts.next() {
        Some(c) => Some(c.trim().parse::<u8>().ok()?),
        None => None,
    };
    if encoding.is_empty() {
        return None;
    }
    Some(RtpMap {
        payload_type,
        encoding: encoding.into(),
        clock_rate,
        channels,
    })
}

/// `<port> [<nettype> <addrtype> <address>]` (RFC 3605).
fn parse_rtcp(value: &str) -> Option<Rtcp<'_>> {
    let value = value.trim_ascii_start();
    let (port, rest) = value
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((value, ""));
    let port = port.parse::<u16>().ok()?;
    let rest = rest.trim_ascii();
    let connection = if rest.is_empty() {
        None
    } else {
        Some(parse_connection(rest)?)
    };
    Some(Rtcp { port, connection })
}

/// `<media> <port>[/<count>] <proto> <fmt> ...`.
fn parse_media(value: &str) -> Option<MediaDescription<'_>> {
    let mut fields = value.split_ascii_whitespace();
    let media = fields.next()?.into();
    let port_field = fields.next()?;
    let (port, port_count) = match port_field.split_once('/') {
        Some((p, c)) => (p.parse::<u16>().ok()?, Some(c.parse::<u16>().ok()?)),
        None => (port_field.parse::<u16>().ok()?, None),
    };
    let protocol = fields.next()?.into();
    let formats = fields.map(Cow::Borrowed).collect();
    Some(MediaDescription {
        media,
        port,
        port_count,
        protocol,
        formats,
        connections: Vec::new(),
        rtpmaps: Vec::new(),
        fmtps: Vec::new(),
        ptime: None,
        maxptime: None,
        rtcp: None,
        rtcp_mux: false,
        direction: None,
        attributes: Vec::new(),
    })
}

/// `<nettype> <addrtype> <address>[/<ttl>][/<count>]`.
fn parse_connection(value: &str) -> Option<Connection<'_>> {
    let mut fields = value.split_ascii_whitespace();
    let net_type = fields.next()?;
    let addr_type = fields.next()?;
    let full = fields.next()?;
    let address = full.split('/').next().unwrap_or(full);
    if address.is_empty() {
        return None;
    }
    let ip = if !net_type.eq_ignore_ascii_case("IN") {
        None
    } else if addr_type.eq_ignore_ascii_case("IP4") {
        crate::sip::uri::parse_ipv4(address.as_bytes()).map(IpAddr::V4)
    } else if addr_type.eq_ignore_ascii_case("IP6") {
        // Some stacks bracket IPv6 literals as in URIs; accept that spelling too.
        let bare = address
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(address);
        bare.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
    } else {
        None
    };
    Some(Connection {
        net_type: net_type.into(),
        addr_type: addr_type.into(),
        address: address.into(),
        ip,
    })
}

/// `<username> <sess-id> <sess-version> <nettype> <addrtype> <address>`; anything else
/// yields `None` (the origin is informative for a UAC, not worth failing a call over).
fn parse_origin(value: &str) -> Option<Origin<'_>> {
    let mut f = value.split_ascii_whitespace().map(Cow::Borrowed);
    let origin = Origin {
        username: f.next()?,
        session_id: f.next()?,
        session_version: f.next()?,
        net_type: f.next()?,
        addr_type: f.next()?,
        address: f.next()?,
    };
    f.next().is_none().then_some(origin)
}

#[cfg(test)]
mod tests {
    #[test]
    fn lines_split_as_str_split_does() {
        for text in [
            "",
            "\n",
            "v=0",
            "v=0\r\n",
            "v=0\r\ns=-\r\n\r\n",
            "a\n\nb\n",
            "\n\na",
        ] {
            let ours: Vec<&str> = super::split_lines(text).collect();
            let std: Vec<&str> = text.split('\n').collect();
            assert_eq!(ours, std, "{text:?}");
        }
    }
}

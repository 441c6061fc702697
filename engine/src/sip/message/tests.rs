//! Tests of message parsing and framing.

use super::*;

const INVITE: &[u8] = b"INVITE sip:+390771286891@carrier.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: <sip:+390771286891@carrier.example.com>\r\n\
From: \"Comune\" <sip:comune@192.0.2.1>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@192.0.2.1\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:dialer@192.0.2.1:5060>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\r\nv=0\nEXTRA";

#[test]
fn parses_invite() {
    let Message::Request(r) = parse(INVITE).unwrap() else {
        panic!("not a request")
    };
    assert_eq!(r.method, Method::Invite);
    assert_eq!(r.uri.user, Some("+390771286891"));
    assert_eq!(r.headers.call_id().unwrap(), "a84b4c76e66710@192.0.2.1");
    assert_eq!(r.headers.cseq().unwrap().seq, 314159);
    assert_eq!(r.headers.from().unwrap().tag(), Some("1928301774"));
    assert_eq!(
        r.headers.top_via().unwrap().branch(),
        Some("z9hG4bK776asdhds")
    );
    assert_eq!(r.body, b"v=0\n");
    assert_eq!(r.headers.content_type(), Some("application/sdp"));
}

#[test]
fn stream_framing() {
    let mut two = INVITE[..INVITE.len() - 5].to_vec();
    let one = two.len();
    two.extend_from_slice(&INVITE[..INVITE.len() - 5]);
    assert_eq!(stream_message_len(&two).unwrap(), Some(one));
    assert_eq!(stream_message_len(&two[..one - 1]).unwrap(), None);
    let (_, used) = parse_framed(&two, true).unwrap();
    assert_eq!(used, one);
}

#[test]
fn byte_scanners_match_naive() {
    let hay: Vec<u8> = (0..200u32)
        .map(|i| [b'\r', b'\n', b'a', 0x8d, 0x0d ^ 0x80][(i * 7 % 5) as usize])
        .collect();
    for start in 0..hay.len() {
        for needle in [b'\r', b'\n', b'a', 0x8d, b'z'] {
            let h = &hay[start..];
            assert_eq!(find_byte(h, needle), h.iter().position(|&b| b == needle));
            assert_eq!(
                count_byte(h, needle),
                h.iter().filter(|&&b| b == needle).count()
            );
        }
    }
    assert_eq!(header_end(b"A\r\n\r\nB"), Some((1, 5)));
    assert_eq!(header_end(b"\r\n\r\n"), Some((0, 4)));
    assert_eq!(header_end(b"\n\r\n\r\r\n"), None);
}

#[test]
fn rejects_truncated_body() {
    assert_eq!(
        parse(&INVITE[..INVITE.len() - 7]),
        Err(ParseError::ContentLength)
    );
}

/// The Via, From and To that validation keeps are what parsing them again gives, and a
/// second, different From or To still reads as `Multiple`.
#[test]
fn kept_headers_match_a_fresh_parse() {
    let msg = |extra: &str| {
        format!(
            "SIP/2.0 200 OK\r\n\
             v: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKtop, SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK2\r\n\
             Via: SIP/2.0/TCP 192.0.2.7;branch=z9hG4bK3\r\n\
             From: <sip:a@192.0.2.1>;tag=f1\r\n\
             To: <sip:b@192.0.2.2>;tag=t1\r\n\
             {extra}Call-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let plain = msg("");
    let Message::Response(r) = parse(plain.as_bytes()).unwrap() else {
        panic!("not a response")
    };
    assert_eq!(r.headers.top_via().unwrap().branch(), Some("z9hG4bKtop"));
    assert_eq!(r.headers.top_via(), r.headers.vias().next().unwrap());
    let fresh = |name, what| NameAddr::parse(r.headers.first(name).unwrap(), what);
    assert_eq!(r.headers.from(), fresh(HeaderName::From, "From"));
    assert_eq!(r.headers.to(), fresh(HeaderName::To, "To"));
    assert_eq!(
        r.headers.cseq(),
        CSeq::parse(r.headers.first(HeaderName::CSeq).unwrap())
    );
    assert_eq!(r.headers.first_contact(), None);

    let contacts = msg("Contact: *\r\nm: <sip:b@192.0.2.2:5070>;q=1, <sip:b@192.0.2.4>\r\n");
    let Message::Response(r) = parse(contacts.as_bytes()).unwrap() else {
        panic!("not a response")
    };
    assert_eq!(
        r.headers.first_contact(),
        r.headers.contacts().unwrap().first().copied()
    );
    assert_eq!(r.headers.first_contact().unwrap().uri.port, Some(5070));

    let same = msg("From: <sip:a@192.0.2.1>;tag=f1\r\n");
    let Message::Response(r) = parse(same.as_bytes()).unwrap() else {
        panic!("not a response")
    };
    assert_eq!(r.headers.from().unwrap().tag(), Some("f1"));

    let other = msg("From: <sip:a@192.0.2.1>;tag=f2\r\nTo: <sip:c@192.0.2.3>\r\n");
    let Message::Response(r) = parse(other.as_bytes()).unwrap() else {
        panic!("not a response")
    };
    assert_eq!(r.headers.from(), Err(ParseError::Multiple("From")));
    assert_eq!(r.headers.to(), Err(ParseError::Multiple("To")));

    let cseqs = msg("CSeq: 2 INVITE\r\n");
    let Message::Response(r) = parse(cseqs.as_bytes()).unwrap() else {
        panic!("not a response")
    };
    assert_eq!(r.headers.cseq(), Err(ParseError::Multiple("CSeq")));
}

#[test]
fn a_responses_from_is_checked_only_when_read_a_requests_always() {
    let bad_from = "From: <sip:comune@192.0.2.1;tag=1\r\n";
    let response = format!(
        "SIP/2.0 200 OK\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n\
         {bad_from}To: <sip:b@192.0.2.2>;tag=9\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n\
         Content-Length: 0\r\n\r\n"
    );
    let Message::Response(r) = parse(response.as_bytes()).unwrap() else {
        panic!("not a response")
    };
    assert_eq!(r.headers.to().unwrap().tag(), Some("9"));
    assert_eq!(r.headers.from(), Err(ParseError::Header("From")));

    let request = String::from_utf8(INVITE.to_vec()).unwrap().replace(
        "From: \"Comune\" <sip:comune@192.0.2.1>;tag=1928301774\r\n",
        bad_from,
    );
    assert_eq!(parse(request.as_bytes()), Err(ParseError::Header("From")));
}

#[test]
fn a_responses_contact_is_checked_when_it_is_read() {
    let response = |status: &str, method: &str| {
        format!(
            "SIP/2.0 {status}\r\n\
             Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n\
             From: <sip:comune@192.0.2.1>;tag=1\r\nTo: <sip:b@192.0.2.2>;tag=9\r\n\
             Call-ID: c1\r\nCSeq: 1 {method}\r\nContact: <sip:b@192.0.2.2:5060\r\n\
             Content-Length: 0\r\n\r\n"
        )
    };
    // Read: a 2xx to INVITE (the remote target) or to REGISTER (the bindings).
    for (status, method) in [("200 OK", "INVITE"), ("202 Accepted", "REGISTER")] {
        let r = response(status, method);
        assert_eq!(
            parse(r.as_bytes()),
            Err(ParseError::Header("Contact")),
            "{status} {method}"
        );
    }
    // Not read: a provisional, a failure, a 2xx to BYE.
    for (status, method) in [
        ("180 Ringing", "INVITE"),
        ("486 Busy", "INVITE"),
        ("200 OK", "BYE"),
    ] {
        let r = response(status, method);
        let Message::Response(r) = parse(r.as_bytes()).unwrap() else {
            panic!("not a response")
        };
        assert_eq!(r.headers.first_contact(), None, "{status} {method}");
    }
    // A good Contact on a 2xx to INVITE is kept as validation parsed it.
    let good = response("200 OK", "INVITE").replace(":5060\r\n", ":5060>\r\n");
    let Message::Response(r) = parse(good.as_bytes()).unwrap() else {
        panic!("not a response")
    };
    assert_eq!(
        r.headers.first_contact().unwrap().uri.raw,
        "sip:b@192.0.2.2:5060"
    );
}

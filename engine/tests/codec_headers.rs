//! Typed header accessors of `engine::sip::Headers` that the torture test does not reach:
//! RFC 4028 session timers, RFC 3262 RSeq, option-tag and method lists, RFC 3325
//! P-Asserted-Identity, route sets, authentication challenges, Content-Length conflicts
//! and Max-Forwards bounds.

use engine::sip::{parse, HeaderName, Host, Message, ParseError, Scheme, SessionExpires};

/// A response to an INVITE with `extra` header lines added before Content-Length.
fn response(extra: &[&str]) -> Vec<u8> {
    let mut s = String::from(
        "SIP/2.0 200 OK\r\n\
         Via: SIP/2.0/UDP 198.51.100.10:5060;branch=z9hG4bK-1\r\n\
         From: <sip:dialer@198.51.100.10>;tag=f1\r\n\
         To: <sip:+390771286891@carrier.example.net>;tag=t1\r\n\
         Call-ID: hdr-test@198.51.100.10\r\n\
         CSeq: 1 INVITE\r\n",
    );
    for line in extra {
        s.push_str(line);
        s.push_str("\r\n");
    }
    s.push_str("Content-Length: 0\r\n\r\n");
    s.into_bytes()
}

/// Parses `bytes` and runs `check` on its headers.
fn with_headers(bytes: &[u8], check: impl FnOnce(&engine::sip::Headers<'_>)) {
    let msg = parse(bytes)
        .unwrap_or_else(|e| panic!("does not parse ({e}):\n{}", String::from_utf8_lossy(bytes)));
    check(msg.headers());
}

#[test]
fn retry_after_ignores_comment_and_params() {
    for (line, want) in [
        ("Retry-After: 120", Some(120)),
        ("Retry-After: 120 (maintenance);duration=3600", Some(120)),
        ("Retry-After: 18000;duration=3600", Some(18000)),
        ("Retry-After:   5   ", Some(5)),
        ("Retry-After: (no digits)", None),
    ] {
        with_headers(&response(&[line]), |h| {
            assert_eq!(h.retry_after(), want, "{line}");
        });
    }
    with_headers(&response(&[]), |h| assert_eq!(h.retry_after(), None));
}

#[test]
fn session_expires_and_refresher() {
    for (line, want) in [
        (
            "Session-Expires: 1800;refresher=uac",
            Some((1800, Some(true))),
        ),
        (
            "Session-Expires: 900 ; refresher = UAS",
            Some((900, Some(false))),
        ),
        ("Session-Expires: 600", Some((600, None))),
        ("x: 4000;refresher=uas", Some((4000, Some(false)))),
        ("Session-Expires: soon", None),
    ] {
        with_headers(&response(&[line]), |h| {
            let got = h.session_expires().map(
                |SessionExpires {
                     secs,
                     refresher_is_uac,
                 }| (secs, refresher_is_uac),
            );
            assert_eq!(got, want, "{line}");
        });
    }
}

#[test]
fn min_se_and_rseq() {
    with_headers(&response(&["Min-SE: 90"]), |h| {
        assert_eq!(h.min_se(), Some(90))
    });
    with_headers(&response(&["Min-SE: 1800;x=y"]), |h| {
        assert_eq!(h.min_se(), Some(1800))
    });
    with_headers(&response(&["RSeq: 7221", "Require: 100rel"]), |h| {
        assert_eq!(h.rseq(), Some(7221));
    });
    with_headers(&response(&[]), |h| {
        assert_eq!((h.min_se(), h.rseq()), (None, None))
    });
    // Numeric headers are checked when the message is parsed.
    for bad in [
        "RSeq: one",
        "Min-SE: -5",
        "RSeq: 99999999999",
        "Expires: 1.5",
    ] {
        assert_eq!(
            parse(&response(&[bad])).err(),
            Some(ParseError::Header("numeric")),
            "{bad}"
        );
    }
}

#[test]
fn option_tag_and_method_lists() {
    let bytes = response(&[
        "Require: timer, 100rel",
        "Supported: timer",
        "k: replaces ,\r\n  path",
        "Allow: INVITE,ACK , CANCEL",
        "Allow: BYE, OPTIONS",
    ]);
    with_headers(&bytes, |h| {
        assert_eq!(h.require().collect::<Vec<_>>(), ["timer", "100rel"]);
        assert_eq!(
            h.supported().collect::<Vec<_>>(),
            ["timer", "replaces", "path"]
        );
        assert_eq!(
            h.allow().collect::<Vec<_>>(),
            ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS"]
        );
    });
    // An empty Supported is legal and lists nothing.
    with_headers(&response(&["Supported:"]), |h| {
        assert_eq!(h.supported().count(), 0)
    });
    for bad in [
        "Require: timer 100rel",
        "Allow: INVITE, <ACK>",
        "Supported: a,,b",
    ] {
        assert!(parse(&response(&[bad])).is_err(), "{bad}");
    }
}

#[test]
fn p_asserted_identity_with_tel_uri() {
    let bytes = response(&[
        "P-Asserted-Identity: <tel:+390771469111>",
        "P-Asserted-Identity: \"Comune di Gaeta\" <sip:+390771469111@198.51.100.10;user=phone>",
    ]);
    with_headers(&bytes, |h| {
        let ids = h.p_asserted_identity().unwrap();
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[0].uri.scheme, Scheme::Tel);
        assert_eq!(ids[0].uri.user, Some("+390771469111"));
        assert_eq!(ids[0].uri.host, None);
        assert_eq!(ids[1].display, Some("Comune di Gaeta"));
        assert_eq!(ids[1].uri.scheme, Scheme::Sip);
        assert_eq!(ids[1].uri.params.get("user"), Some(Some("phone")));
    });
    // Both on one line, comma-separated.
    let bytes = response(&[
        "P-Asserted-Identity: <tel:+390771469111;phone-context=+39>, <sip:a@b.example>",
    ]);
    with_headers(&bytes, |h| {
        let ids = h.p_asserted_identity().unwrap();
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[0].uri.params.get("phone-context"), Some(Some("+39")));
        assert_eq!(ids[1].uri.host, Some(Host::Domain("b.example")));
    });
    assert!(parse(&response(&["P-Asserted-Identity: <tel:>"])).is_err());
}

#[test]
fn record_route_keeps_wire_order_across_lines_and_commas() {
    let bytes = response(&[
        "Record-Route: <sip:p1.example.net;lr>, <sip:p2.example.net;lr>",
        "Contact: <sip:callee@203.0.113.20>",
        "Record-Route: <sip:203.0.113.9:5070;transport=tcp;lr>",
    ]);
    with_headers(&bytes, |h| {
        let rr = h.record_routes().unwrap();
        let hosts: Vec<String> = rr.iter().map(|r| r.uri.host_port()).collect();
        assert_eq!(
            hosts,
            ["p1.example.net", "p2.example.net", "203.0.113.9:5070"]
        );
        assert!(rr.iter().all(|r| r.uri.is_loose_router()));
        assert_eq!(rr[2].uri.transport_param(), Some("tcp"));
        assert_eq!(h.routes().unwrap().len(), 0);
    });
}

#[test]
fn authentication_headers_are_raw_values() {
    let www1 = "Digest realm=\"carrier.example.net\", nonce=\"5f9a\", opaque=\"0a1b\", \
                algorithm=MD5, qop=\"auth,auth-int\"";
    let www2 = "Digest realm=\"carrier.example.net\", nonce=\"7e8d\", algorithm=SHA-256, \
                qop=\"auth\", stale=true";
    let proxy = "Digest realm=\"proxy.example.net\",nonce=\"abc\",qop=\"auth\"";
    let l1 = format!("WWW-Authenticate: {www1}");
    let l2 = format!("WWW-Authenticate: {www2}");
    let l3 = format!("Proxy-Authenticate: {proxy}");
    let bytes = response(&[&l1, &l2, &l3]);
    with_headers(&bytes, |h| {
        // One value per header line, never split at the commas inside a challenge.
        assert_eq!(h.www_authenticate().collect::<Vec<_>>(), [www1, www2]);
        assert_eq!(h.proxy_authenticate().collect::<Vec<_>>(), [proxy]);
        assert_eq!(h.authorization().count(), 0);
    });
    let auth = "Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"sip:r\", response=\"00\"";
    let l4 = format!("Authorization: {auth}");
    with_headers(&response(&[&l4]), |h| {
        assert_eq!(h.authorization().collect::<Vec<_>>(), [auth]);
    });
}

#[test]
fn content_length_conflicts() {
    let two = |a: &str, b: &str| -> Vec<u8> {
        format!(
            "MESSAGE sip:a@example.net SIP/2.0\r\n\
             Via: SIP/2.0/UDP 198.51.100.10;branch=z9hG4bK-cl\r\n\
             From: <sip:b@example.net>;tag=1\r\nTo: <sip:a@example.net>\r\n\
             Call-ID: cl@x\r\nCSeq: 1 MESSAGE\r\n\
             Content-Length: {a}\r\nl: {b}\r\n\r\nhello"
        )
        .into_bytes()
    };
    // Two lines that agree are one Content-Length.
    let same = two("5", "5");
    let msg = parse(&same).unwrap();
    assert_eq!(msg.headers().content_length(), Ok(Some(5)));
    assert_eq!(msg.body(), b"hello");
    // Two that disagree: the message is kept (so that the UAS can answer 400) and the
    // accessor says `Multiple`.
    let conflict = two("5", "3");
    let msg = parse(&conflict).unwrap();
    assert_eq!(
        msg.headers().content_length(),
        Err(ParseError::Multiple("Content-Length"))
    );
    assert_eq!(msg.body(), b"hello");
    // Not a number, or longer than the datagram: rejected.
    assert_eq!(parse(&two("5", "x")).err(), Some(ParseError::ContentLength));
    assert_eq!(
        parse(&two("50", "50")).err(),
        Some(ParseError::ContentLength)
    );
    with_headers(&response(&[]), |h| {
        assert_eq!(h.content_length(), Ok(Some(0)))
    });
}

#[test]
fn max_forwards_bounds() {
    let req = |mf: Option<&str>| -> Vec<u8> {
        let mut s = String::from(
            "OPTIONS sip:dialer@198.51.100.10 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 203.0.113.9;branch=z9hG4bK-mf\r\n\
             From: <sip:ping@203.0.113.9>;tag=p\r\nTo: <sip:dialer@198.51.100.10>\r\n\
             Call-ID: mf@203.0.113.9\r\nCSeq: 1 OPTIONS\r\n",
        );
        if let Some(v) = mf {
            s.push_str(&format!("Max-Forwards: {v}\r\n"));
        }
        s.push_str("Content-Length: 0\r\n\r\n");
        s.into_bytes()
    };
    for (v, want) in [("0", 0u8), ("70", 70), ("255", 255), (" 0010 ", 10)] {
        let bytes = req(Some(v));
        let Message::Request(r) = parse(&bytes).unwrap() else {
            panic!("not a request")
        };
        assert_eq!(r.headers.max_forwards(), Ok(Some(want)), "{v:?}");
    }
    let bytes = req(None);
    assert_eq!(parse(&bytes).unwrap().headers().max_forwards(), Ok(None));
    for bad in ["256", "-1", "70 hops", "", "99999999999"] {
        assert_eq!(
            parse(&req(Some(bad))).err(),
            Some(ParseError::Header("Max-Forwards")),
            "{bad:?}"
        );
    }
}

#[test]
fn expires_and_star_contact() {
    let bytes = b"REGISTER sip:registrar.example.net SIP/2.0\r\n\
Via: SIP/2.0/UDP 198.51.100.10;branch=z9hG4bK-r\r\n\
From: <sip:u@registrar.example.net>;tag=r1\r\nTo: <sip:u@registrar.example.net>\r\n\
Call-ID: reg@x\r\nCSeq: 3 REGISTER\r\nContact: *\r\nExpires: 0\r\nContent-Length: 0\r\n\r\n";
    with_headers(bytes, |h| {
        assert_eq!(h.expires(), Some(0));
        // `*` (unregister all) is not an address: it is skipped.
        assert_eq!(h.contacts().unwrap().len(), 0);
        assert_eq!(h.values(HeaderName::Contact).collect::<Vec<_>>(), ["*"]);
    });
}

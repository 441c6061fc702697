//! Tests of challenge parsing and digest answers (RFC 2617, 7616, 8760 vectors).

use super::digest::MAX_NONCES;
use super::*;

fn param<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    let rest = header.strip_prefix("Digest ")?;
    rest.split(", ").find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.trim_matches('"'))
    })
}

#[test]
fn rfc2617_example() {
    let ch = parse_challenge(
        "Digest\r\n realm=\"testrealm@host.com\",\r\n qop=\"auth,auth-int\",\r\n \
         nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\r\n \
         opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
    )
    .unwrap();
    assert_eq!(ch.realm, "testrealm@host.com");
    assert_eq!(ch.qop, [Qop::Auth, Qop::AuthInt]);
    assert_eq!(ch.algorithm, Algorithm::Md5);
    let mut c = DigestClient::new();
    let v = c
        .authorize(
            &ch,
            &Credentials::new("Mufasa", "Circle Of Life"),
            "GET",
            "/dir/index.html",
            "0a4f113b",
        )
        .unwrap();
    assert_eq!(
        v,
        "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
         nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", \
         response=\"6629fae49393a05397450978507c4ef1\", algorithm=MD5, \
         cnonce=\"0a4f113b\", qop=auth, nc=00000001, \
         opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""
    );
}

const RFC7616_PARAMS: &str = "realm=\"http-auth@example.org\", qop=\"auth, auth-int\", \
    nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
    opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";
const RFC7616_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

#[test]
fn rfc7616_sha256_example() {
    let ch = parse_challenge(&format!("Digest {RFC7616_PARAMS}, algorithm=SHA-256")).unwrap();
    assert_eq!(ch.algorithm, Algorithm::Sha256);
    let v = DigestClient::new()
        .authorize(
            &ch,
            &Credentials::new("Mufasa", "Circle of Life"),
            "GET",
            "/dir/index.html",
            RFC7616_CNONCE,
        )
        .unwrap();
    assert_eq!(
        param(&v, "response"),
        Some("753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1")
    );
    assert_eq!(param(&v, "algorithm"), Some("SHA-256"));
    assert_eq!(param(&v, "qop"), Some("auth"));
    assert_eq!(param(&v, "nc"), Some("00000001"));
    assert_eq!(
        param(&v, "opaque"),
        Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
    );
}

#[test]
fn rfc7616_md5_example() {
    let ch = parse_challenge(&format!("Digest {RFC7616_PARAMS}, algorithm=MD5")).unwrap();
    let v = DigestClient::new()
        .authorize(
            &ch,
            &Credentials::new("Mufasa", "Circle of Life"),
            "GET",
            "/dir/index.html",
            RFC7616_CNONCE,
        )
        .unwrap();
    assert_eq!(
        param(&v, "response"),
        Some("8ca523f5e9506fed4657c9700eebdbec")
    );
}

#[test]
fn select_prefers_the_strongest() {
    let md5 = format!("Digest {RFC7616_PARAMS}, algorithm=MD5");
    let sha = format!("Digest {RFC7616_PARAMS}, algorithm=SHA-256");
    let ch = select_challenge([md5.as_str(), "Basic realm=\"x\"", sha.as_str()]).unwrap();
    assert_eq!(ch.algorithm, Algorithm::Sha256);
    let ch =
        select_challenge(["Digest realm=\"a\", nonce=\"b\", algorithm=AKAv1-MD5", &md5]).unwrap();
    assert_eq!(ch.algorithm, Algorithm::Md5);
    assert_eq!(
        select_challenge(["Basic realm=\"x\""]),
        Err(AuthError::NotDigest("Basic".into()))
    );
}

#[test]
fn sess_and_sha512_256_and_userhash() {
    // Values computed independently with Python's hashlib for these inputs.
    let mut c = DigestClient::new();
    let creds = Credentials::new("alice", "secret");
    let ch =
        parse_challenge("Digest realm=\"r\", nonce=\"n\", algorithm=md5-SESS, qop=auth").unwrap();
    assert_eq!(ch.algorithm, Algorithm::Md5Sess);
    let v = c
        .authorize(&ch, &creds, "INVITE", "sip:bob@x", "cn")
        .unwrap();
    assert_eq!(param(&v, "response"), Some(expected("md5-sess")));
    let ch = parse_challenge(
        "Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256, qop=auth, userhash=true",
    )
    .unwrap();
    let mut c = DigestClient::new();
    let v = c
        .authorize(&ch, &creds, "INVITE", "sip:bob@x", "cn")
        .unwrap();
    assert_eq!(param(&v, "response"), Some(expected("sha512-256-userhash")));
    assert_eq!(param(&v, "username"), Some(expected("sha512-256-username")));
    assert_eq!(param(&v, "userhash"), Some("true"));
}

fn expected(case: &str) -> &'static str {
    match case {
        "md5-sess" => "c25e059ff512c415a62a337d6bd2f85c",
        "sha512-256-userhash" => "696144c1a5584bd69d8ab7384027d4244601e67d4ad15d0e1eec9a5834e0566e",
        "sha512-256-username" => "da4aa8043cfec4c68a088964af5b39a0fff4b025ac3e252912501f61e32afcc7",
        _ => unreachable!(),
    }
}

#[test]
fn rfc2069_without_qop() {
    let ch = parse_challenge("digest REALM=\"asterisk\" , NONCE=\"4a5b6c\"").unwrap();
    assert!(ch.qop.is_empty());
    let v = DigestClient::new()
        .authorize(
            &ch,
            &Credentials::new("100", "pw"),
            "INVITE",
            "sip:200@pbx",
            "unused",
        )
        .unwrap();
    assert!(!v.contains("cnonce") && !v.contains("qop") && !v.contains("nc="));
    let mut c = DigestClient::new();
    c.authorize(
        &ch,
        &Credentials::new("100", "pw"),
        "INVITE",
        "sip:200@pbx",
        "x",
    )
    .unwrap();
    assert!(
        !c.should_retry(&ch, true),
        "no-qop answers count as answered too"
    );
    // response = MD5(MD5("100:asterisk:pw"):4a5b6c:MD5("INVITE:sip:200@pbx"))
    let ha1 = Algorithm::Md5.hex(b"100:asterisk:pw");
    let ha2 = Algorithm::Md5.hex(b"INVITE:sip:200@pbx");
    let want = Algorithm::Md5.hex(format!("{ha1}:4a5b6c:{ha2}").as_bytes());
    assert_eq!(param(&v, "response"), Some(want.as_str()));
}

#[test]
fn nonce_counts_increment_per_nonce() {
    let mut c = DigestClient::new();
    let creds = Credentials::new("u", "p");
    let a = parse_challenge("Digest realm=\"r\", nonce=\"A\", qop=auth").unwrap();
    let b = parse_challenge("Digest realm=\"r\", nonce=\"B\", qop=auth").unwrap();
    let nc = |v: String| param(&v, "nc").unwrap().to_owned();
    assert_eq!(
        nc(c.authorize(&a, &creds, "INVITE", "sip:x", "1").unwrap()),
        "00000001"
    );
    assert_eq!(
        nc(c.authorize(&a, &creds, "BYE", "sip:x", "2").unwrap()),
        "00000002"
    );
    assert_eq!(
        nc(c.authorize(&b, &creds, "INVITE", "sip:x", "3").unwrap()),
        "00000001"
    );
    assert_eq!(
        nc(c.authorize(&a, &creds, "INVITE", "sip:x", "4").unwrap()),
        "00000003"
    );
    assert_eq!(c.nonce_count("r", "A"), 3);
    assert_eq!(c.nonce_count("r", "B"), 1);
    for i in 0..MAX_NONCES {
        let ch = parse_challenge(&format!("Digest realm=r, nonce=n{i}, qop=auth")).unwrap();
        c.authorize(&ch, &creds, "INVITE", "sip:x", "c").unwrap();
    }
    assert_eq!(c.counts.len(), MAX_NONCES, "bounded");
    assert_eq!(c.nonce_count("r", "A"), 0, "oldest evicted");
}

#[test]
fn retry_decisions() {
    let mut c = DigestClient::new();
    let creds = Credentials::new("u", "p");
    let first = parse_challenge("Digest realm=\"r\", nonce=\"A\", qop=auth").unwrap();
    assert!(c.should_retry(&first, false), "first challenge is answered");
    c.authorize(&first, &creds, "INVITE", "sip:x", "c").unwrap();
    assert!(
        !c.should_retry(&first, true),
        "same nonce again: wrong credentials"
    );
    let stale = parse_challenge("Digest realm=\"r\", nonce=\"A\", qop=auth, stale=TRUE").unwrap();
    assert!(stale.stale);
    assert!(c.should_retry(&stale, true), "stale: answer again");
    let other = parse_challenge("Digest realm=\"proxy\", nonce=\"Z\"").unwrap();
    assert!(c.should_retry(&other, true), "a nonce we never answered");
    let not_stale = parse_challenge("Digest realm=r, nonce=A, stale=false").unwrap();
    assert!(!not_stale.stale);
}

#[test]
fn auth_int_only() {
    let ch = parse_challenge("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\"").unwrap();
    let creds = Credentials::new("u", "p");
    let mut c = DigestClient::new();
    assert_eq!(
        c.authorize(&ch, &creds, "INVITE", "sip:x", "c"),
        Err(AuthError::AuthIntNeedsBody)
    );
    let v = c
        .authorize_with_body(&ch, &creds, "INVITE", "sip:x", "c", b"v=0\r\n")
        .unwrap();
    assert_eq!(param(&v, "qop"), Some("auth-int"));
    let ha1 = Algorithm::Md5.hex(b"u:r:p");
    let ha2 =
        Algorithm::Md5.hex(format!("INVITE:sip:x:{}", Algorithm::Md5.hex(b"v=0\r\n")).as_bytes());
    let want = Algorithm::Md5.hex(format!("{ha1}:n:00000001:c:auth-int:{ha2}").as_bytes());
    assert_eq!(param(&v, "response"), Some(want.as_str()));
    let odd = parse_challenge("Digest realm=\"r\", nonce=\"n\", qop=\"x-foo\"").unwrap();
    assert_eq!(
        c.authorize(&odd, &creds, "INVITE", "sip:x", "c"),
        Err(AuthError::UnsupportedQop("x-foo".into()))
    );
}

#[test]
fn parsing_details() {
    let ch = parse_challenge(
        "  DIGEST Realm = \"a \\\"q\\\" \\\\ b\" ,, nonce=abc123 ,\n\tOpaque=\"\", \
         Domain=\"sip:a sip:b\", x-vendor=\"ignored\", Stale=true,",
    )
    .unwrap();
    assert_eq!(ch.realm, "a \"q\" \\ b");
    assert_eq!(ch.nonce, "abc123");
    assert_eq!(ch.opaque.as_deref(), Some(""));
    assert_eq!(ch.domain.as_deref(), Some("sip:a sip:b"));
    assert!(ch.stale);
    // Escapes are written back so the server sees its own realm.
    let v = DigestClient::new()
        .authorize(&ch, &Credentials::new("u", "p"), "REGISTER", "sip:r", "c")
        .unwrap();
    assert!(v.contains("realm=\"a \\\"q\\\" \\\\ b\""));
    assert_eq!(parse_challenge(&v).unwrap().realm, ch.realm);
    // A fold inside a quoted string is one space.
    let ch = parse_challenge("Digest realm=\"a\r\n b\", nonce=n").unwrap();
    assert_eq!(ch.realm, "a b");
    // UTF-8 in values, escaped too.
    let ch = parse_challenge("Digest realm=\"caf\\é\", nonce=n").unwrap();
    assert_eq!(ch.realm, "café");
}

#[test]
fn parse_errors() {
    use AuthError::*;
    let cases: &[(&str, AuthError)] = &[
        ("", Malformed("no scheme")),
        ("Basic realm=\"x\"", NotDigest("Basic".into())),
        ("Digestrealm=x", NotDigest("Digestrealm".into())),
        ("Digest", MissingParam("realm")),
        ("Digest realm=x", MissingParam("nonce")),
        ("Digest nonce=x", MissingParam("realm")),
        ("Digest realm=\"x", Malformed("unterminated quoted string")),
        (
            "Digest realm=\"x\\",
            Malformed("unterminated quoted string"),
        ),
        (
            "Digest realm=x nonce=y",
            Malformed("expected ',' between parameters"),
        ),
        (
            "Digest realm",
            Malformed("expected '=' after a parameter name"),
        ),
        ("Digest realm=", Malformed("expected a parameter value")),
        ("Digest =x", Malformed("expected a parameter name")),
        (
            "Digest realm=a, realm=b, nonce=n",
            DuplicateParam("realm".into()),
        ),
        (
            "Digest realm=a, NONCE=n, nonce=m",
            DuplicateParam("nonce".into()),
        ),
        (
            "Digest realm=a, nonce=n, algorithm=SHA3",
            UnsupportedAlgorithm("SHA3".into()),
        ),
        (
            "Digest realm=a,\r\nnonce=n",
            Malformed("line break that is not a fold"),
        ),
        ("Digest realm=a,\rnonce=n", Malformed("bare CR")),
        (
            "Digest realm=\"a\u{1}\", nonce=n",
            Malformed("control character in quoted string"),
        ),
        (
            "Digest realm=\"a\\\u{0}\", nonce=n",
            Malformed("escaped control character"),
        ),
        (
            "Digest realm=a\r\n",
            Malformed("line break that is not a fold"),
        ),
    ];
    for (input, want) in cases {
        assert_eq!(
            parse_challenge(input).as_ref(),
            Err(want),
            "input {input:?}"
        );
    }
}

#[test]
fn header_injection_is_refused() {
    let ch = parse_challenge("Digest realm=r, nonce=n, qop=auth").unwrap();
    let mut c = DigestClient::new();
    let bad = Credentials::new("u\r\nVia: evil", "p");
    assert_eq!(
        c.authorize(&ch, &bad, "INVITE", "sip:x", "c"),
        Err(AuthError::InvalidValue("username"))
    );
    let ok = Credentials::new("u", "p");
    assert_eq!(
        c.authorize(&ch, &ok, "INVITE", "sip:x\n", "c"),
        Err(AuthError::InvalidValue("uri"))
    );
    assert_eq!(
        c.authorize(&ch, &ok, "INV ITE", "sip:x", "c"),
        Err(AuthError::InvalidValue("method"))
    );
    let mut forged = ch.clone();
    forged.nonce = "n\r\n".into();
    assert_eq!(
        c.authorize(&forged, &ok, "INVITE", "sip:x", "c"),
        Err(AuthError::InvalidValue("nonce"))
    );
    assert!(!format!("{ok:?}").contains("\"p\""), "password is redacted");
}

#[test]
fn fuzz_exercise_accepts_its_own_checks() {
    fuzz_exercise(b"Digest realm=\"r\", nonce=\"n\", qop=\"auth\", opaque=\"o\\\"\"");
    fuzz_exercise(b"Digest realm=r, nonce=n, qop=\"x\"");
    fuzz_exercise(&[0xff, 0x00]);
}

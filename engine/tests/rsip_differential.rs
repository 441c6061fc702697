//! Differential test against rsip 0.4, the parser the project brief names (issue 2).
//!
//! For every RFC 4475 / RFC 5118 torture message and every realistic message of the fuzz
//! seed corpus (`fuzz/corpus/sip_message/real-*.sip`), wherever both rsip and our codec
//! parse the message, both must read the same method or status code, Request-URI, Call-ID,
//! CSeq number and method, From and To tags and top Via branch.
//!
//! rsip is not the reference: where it reads a field wrongly, the case is listed in
//! [`RSIP_BUGS`] with the bug explained, and that one field of that one message is skipped.
//! A listed case that stops differing fails the test, so the list never goes stale. Our
//! side is never relaxed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use engine::sip::{parse, Message};
use rsip::message::HeadersExt;

/// Known rsip 0.4 bugs: (file, field, why rsip's reading is wrong).
const RSIP_BUGS: &[(&str, &str, &str)] = &[
    (
        "rfc4475/dblreq.dat",
        "call_id",
        "rsip does not know compact header names: `I: dblreq...` (compact Call-ID, names \
         are case-insensitive) becomes an unknown header, so rsip reports Call-ID missing",
    ),
    (
        "sip_message/real-compact.sip",
        "call_id",
        "rsip reads compact `i:` as an unknown header and reports Call-ID missing",
    ),
    (
        "sip_message/real-compact.sip",
        "from_tag",
        "rsip reads compact `f:` as an unknown header and reports From missing",
    ),
    (
        "sip_message/real-compact.sip",
        "to_tag",
        "rsip reads compact `t:` as an unknown header and reports To missing",
    ),
    (
        "sip_message/real-compact.sip",
        "via_branch",
        "rsip reads compact `v:` as an unknown header and reports Via missing",
    ),
    (
        "rfc4475/multi01.dat",
        "call_id",
        "the message carries two different Call-IDs; rsip silently returns the first line, \
         we report `Multiple` so the UAS answers 400 (RFC 4475 §3.3.8)",
    ),
    (
        "rfc4475/multi01.dat",
        "cseq",
        "two different CSeq lines; rsip returns the first, we report `Multiple`",
    ),
    (
        "rfc4475/multi01.dat",
        "from_tag",
        "two different From lines; rsip returns the first, we report `Multiple`",
    ),
    (
        "rfc4475/multi01.dat",
        "to_tag",
        "two different To lines; rsip returns the first, we report `Multiple`",
    ),
    (
        "rfc4475/unksm2.dat",
        "to_tag",
        "`To: isbn:2983792873` is an addr-spec with an unknown scheme (legal, RFC 4475 §3.3.4); \
         rsip reads `isbn` as a host and `2983792873` as a port and fails: number too large",
    ),
    (
        "sip_message/real-tel-sip-user-phone.sip",
        "to_tag",
        "`To: tel:+390771286891`: rsip knows no tel: URI, reads `tel` as a host and \
         `+390771286891` as a port and fails: number too large",
    ),
    (
        "rfc5118/ipv4-mapped-ipv6",
        "via_branch",
        "Via sent-by `[2001:db8::9:255.255.255.255]`: rsip cannot parse an IPv6 reference in \
         a Via and fails on the first colon: invalid digit",
    ),
    (
        "rfc5118/mult-ip-in-header",
        "via_branch",
        "Via sent-by `[2001:db8::9:1]`: rsip fails on IPv6 references in Via: invalid digit",
    ),
    (
        "sip_message/real-ipv6-200.sip",
        "from_tag",
        "From `<sip:dialer@[2001:db8::10]>`: rsip fails on IPv6 references: invalid digit",
    ),
    (
        "sip_message/real-ipv6-200.sip",
        "to_tag",
        "To `<sip:+393471234567@[2001:db8::20]>`: rsip fails on IPv6 references",
    ),
    (
        "sip_message/real-ipv6-200.sip",
        "via_branch",
        "Via sent-by `[2001:db8::10]:5060`: rsip fails on IPv6 references in Via",
    ),
];

/// The fields both parsers must agree on.
/// Each field is `Ok(text)` or `Err(why it could not be read)`; `Ok("")` for an absent tag
/// or branch. Two errors agree (both sides failed to read the field); an error against a
/// value is a difference.
#[derive(Debug)]
struct Reading {
    start: Field,
    ruri: Field,
    call_id: Field,
    cseq: Field,
    from_tag: Field,
    to_tag: Field,
    via_branch: Field,
}

type Field = Result<String, String>;

fn agree(a: &Field, b: &Field) -> bool {
    match (a, b) {
        (Ok(x), Ok(y)) => x == y,
        (Err(_), Err(_)) => true,
        _ => false,
    }
}

impl Reading {
    fn fields(&self) -> [(&'static str, &Field); 7] {
        [
            ("start", &self.start),
            ("ruri", &self.ruri),
            ("call_id", &self.call_id),
            ("cseq", &self.cseq),
            ("from_tag", &self.from_tag),
            ("to_tag", &self.to_tag),
            ("via_branch", &self.via_branch),
        ]
    }
}

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

fn ours(msg: &Message<'_>) -> Reading {
    let h = msg.headers();
    let (start, ruri) = match msg {
        Message::Request(r) => (r.method.as_str().to_string(), Ok(normalize_uri(r.uri.raw))),
        Message::Response(r) => (r.status.to_string(), Err("response".into())),
    };
    Reading {
        start: Ok(start),
        ruri,
        call_id: h.call_id().map(str::to_string).map_err(err),
        cseq: h
            .cseq()
            .map(|c| format!("{} {}", c.seq, c.method))
            .map_err(err),
        from_tag: h
            .from()
            .map(|f| f.tag().unwrap_or("").to_string())
            .map_err(err),
        to_tag: h
            .to()
            .map(|t| t.tag().unwrap_or("").to_string())
            .map_err(err),
        via_branch: h
            .top_via()
            .map(|v| v.branch().unwrap_or("").to_string())
            .map_err(err),
    }
}

fn theirs(msg: &rsip::SipMessage) -> Reading {
    use rsip::headers::{ToTypedHeader, UntypedHeader};
    let (start, ruri) = match msg {
        rsip::SipMessage::Request(r) => {
            (r.method.to_string(), Ok(normalize_uri(&r.uri.to_string())))
        }
        rsip::SipMessage::Response(r) => (r.status_code.code().to_string(), Err("response".into())),
    };
    Reading {
        start: Ok(start),
        ruri,
        call_id: msg
            .call_id_header()
            .map(|c| c.value().trim().to_string())
            .map_err(err),
        cseq: msg
            .cseq_header()
            .and_then(|c| Ok(format!("{} {}", c.seq()?, c.method()?)))
            .map_err(err),
        from_tag: msg
            .from_header()
            .and_then(|f| f.tag())
            .map(|t| t.map(|t| t.to_string()).unwrap_or_default())
            .map_err(err),
        to_tag: msg
            .to_header()
            .and_then(|t| t.tag())
            .map(|t| t.map(|t| t.to_string()).unwrap_or_default())
            .map_err(err),
        via_branch: msg
            .via_header()
            .and_then(|v| v.typed())
            .map(|v| v.branch().map(|b| b.to_string()).unwrap_or_default())
            .map_err(err),
    }
}

/// Request-URI text with what RFC 3261 §19.1.4 compares case-insensitively lowered (all
/// but the userinfo: scheme, host, parameters), so that rsip's re-serialization, which
/// upper-cases `transport=udp` to `transport=UDP`, compares equal to the wire text.
fn normalize_uri(s: &str) -> String {
    let s = s.trim();
    let (scheme, rest) = s.split_once(':').unwrap_or(("", s));
    let (before_params, params) = match rest.find(';') {
        Some(i) => (&rest[..i], rest[i..].to_ascii_lowercase()),
        None => (rest, String::new()),
    };
    let (user, hostport) = match before_params.rfind('@') {
        Some(i) => (&before_params[..=i], &before_params[i + 1..]),
        None => ("", before_params),
    };
    format!(
        "{}:{user}{}{params}",
        scheme.to_ascii_lowercase(),
        hostport.to_ascii_lowercase()
    )
}

fn inputs() -> Vec<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["tests/fixtures/rfc4475", "tests/fixtures/rfc5118"] {
        files.extend(list(&manifest.join(dir), |n| {
            n != "README" && !n.ends_with(".tsv")
        }));
    }
    files.extend(list(&manifest.join("../fuzz/corpus/sip_message"), |n| {
        n.starts_with("real-")
    }));
    files
}

/// Names (`rfc4475/x.dat`) of the RFC 4475 messages its MANIFEST classifies invalid.
fn rfc4475_invalid() -> BTreeSet<String> {
    let manifest =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rfc4475/MANIFEST.tsv");
    std::fs::read_to_string(manifest)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|c| c.len() > 2 && c[2] == "invalid")
        .map(|c| format!("rfc4475/{}", c[1]))
        .collect()
}

fn list(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| keep(p.file_name().unwrap().to_str().unwrap()))
        .collect();
    v.sort();
    v
}

fn short_name(p: &Path) -> String {
    let dir = p.parent().unwrap().file_name().unwrap().to_string_lossy();
    format!("{dir}/{}", p.file_name().unwrap().to_string_lossy())
}

#[test]
fn agrees_with_rsip_wherever_both_parse() {
    let files = inputs();
    let mut compared = 0;
    let mut only_ours = Vec::new();
    let mut only_rsip = Vec::new();
    let mut differences = Vec::new();
    let mut excused = BTreeSet::new();
    for path in &files {
        let name = short_name(path);
        let bytes = std::fs::read(path).unwrap();
        let rsip_msg = rsip::SipMessage::try_from(&bytes[..]);
        let our_msg = parse(&bytes);
        let (rsip_msg, our_msg) = match (rsip_msg, our_msg) {
            (Ok(r), Ok(o)) => (r, o),
            (Err(_), Ok(_)) => {
                only_ours.push(name);
                continue;
            }
            (Ok(_), Err(_)) => {
                only_rsip.push(name);
                continue;
            }
            (Err(_), Err(_)) => continue,
        };
        compared += 1;
        let (a, b) = (ours(&our_msg), theirs(&rsip_msg));
        for ((field, x), (_, y)) in a.fields().into_iter().zip(b.fields()) {
            if agree(x, y) {
                continue;
            }
            if RSIP_BUGS
                .iter()
                .any(|(f, fl, _)| *f == name && *fl == field)
            {
                excused.insert((name.clone(), field));
                continue;
            }
            differences.push(format!("{name} {field}: ours {x:?}, rsip {y:?}"));
        }
    }
    println!(
        "compared {compared} of {} messages with rsip; only we parse {}: {only_ours:?}; \
         only rsip parses {}: {only_rsip:?}",
        files.len(),
        only_ours.len(),
        only_rsip.len()
    );
    // Where only rsip parses, it is rsip accepting a message RFC 4475 classifies invalid;
    // every realistic message must parse with our codec whatever rsip does.
    let invalid = rfc4475_invalid();
    let wrongly_rejected: Vec<_> = only_rsip
        .iter()
        .filter(|n| !invalid.contains(n.as_str()))
        .collect();
    assert!(
        wrongly_rejected.is_empty(),
        "rsip parses, we reject, and RFC 4475 does not call them invalid: {wrongly_rejected:?}"
    );
    let unparsed: Vec<_> = files
        .iter()
        .filter(|p| short_name(p).starts_with("sip_message/real-"))
        .filter(|p| parse(&std::fs::read(p).unwrap()).is_err())
        .collect();
    assert!(
        unparsed.is_empty(),
        "realistic messages we reject: {unparsed:?}"
    );
    assert!(
        differences.is_empty(),
        "our codec and rsip disagree:\n{}",
        differences.join("\n")
    );
    let stale: Vec<_> = RSIP_BUGS
        .iter()
        .filter(|(f, fl, _)| !excused.contains(&(f.to_string(), *fl)))
        .collect();
    assert!(
        stale.is_empty(),
        "listed rsip bugs that no longer differ: {stale:?}"
    );
    assert!(files.len() >= 61 + 20, "inputs missing: {}", files.len());
    assert!(compared >= 30, "only {compared} messages compared");
}

//! RFC 4475 and RFC 5118 torture messages, each checked against its classification:
//! valid and semantic messages parse, invalid ones are rejected with an error value.

use std::path::PathBuf;

use engine::sip::{parse, Message};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn rfc4475_cases() -> Vec<(String, bool)> {
    let manifest = std::fs::read_to_string(fixtures().join("rfc4475/MANIFEST.tsv")).unwrap();
    manifest
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (format!("rfc4475/{}", cols[1]), cols[2] != "invalid")
        })
        .collect()
}

fn rfc5118_cases() -> Vec<(String, bool)> {
    let valid = [
        "ipv6-good",
        "ipv6-correct-abnf-2-colons",
        "port-ambiguous",
        "port-unambiguous",
        "via-received-param-with-delim",
        "via-received-param-no-delim",
        "mult-ip-in-header",
        "mult-ip-in-sdp",
        "ipv6-in-sdp",
        "ipv4-mapped-ipv6",
    ];
    let invalid = ["ipv6-bad", "ipv6-bug-abnf-3-colons"];
    valid
        .iter()
        .map(|f| (format!("rfc5118/{f}"), true))
        .chain(invalid.iter().map(|f| (format!("rfc5118/{f}"), false)))
        .collect()
}

#[test]
fn torture_messages_as_classified() {
    let cases: Vec<_> = rfc4475_cases().into_iter().chain(rfc5118_cases()).collect();
    assert_eq!(cases.len(), 49 + 12);
    let mut wrong = Vec::new();
    for (file, should_parse) in &cases {
        let bytes = std::fs::read(fixtures().join(file)).unwrap();
        let result = parse(&bytes);
        if result.is_ok() != *should_parse {
            wrong.push(format!(
                "{file}: expected {}, got {:?}",
                if *should_parse { "parse" } else { "reject" },
                result.err()
            ));
        }
    }
    assert!(wrong.is_empty(), "misclassified:\n{}", wrong.join("\n"));
}

#[test]
fn dblreq_reads_only_the_first_message() {
    let bytes = std::fs::read(fixtures().join("rfc4475/dblreq.dat")).unwrap();
    let Message::Request(r) = parse(&bytes).unwrap() else {
        panic!("not a request")
    };
    assert_eq!(r.method.as_str(), "REGISTER");
    assert_eq!(r.body.len(), 0);
}

#[test]
fn wsinv_reads_folded_and_compact_headers() {
    let bytes = std::fs::read(fixtures().join("rfc4475/wsinv.dat")).unwrap();
    let Message::Request(r) = parse(&bytes).unwrap() else {
        panic!("not a request")
    };
    let h = &r.headers;
    assert_eq!(h.call_id().unwrap(), "wsinv.ndaksdj@192.0.2.1");
    assert_eq!(h.cseq().unwrap().seq, 9);
    assert_eq!(h.to().unwrap().tag(), Some("1918181833n"));
    assert_eq!(h.from().unwrap().tag(), Some("98asjd8"));
    assert_eq!(h.max_forwards().unwrap(), Some(68));
    let vias: Vec<_> = h.vias().collect::<Result<_, _>>().unwrap();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[1].branch(), Some("z9hG4bK9ikj8"));
    assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
    assert_eq!(h.contacts().unwrap()[0].params.get("q"), Some(Some("0.33")));
    assert_eq!(r.body.len(), 150);
}

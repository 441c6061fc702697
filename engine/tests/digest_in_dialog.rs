//! Issue 14 item 6, the last defect: requests inside a dialog whose INVITE was challenged
//! carry a digest answer computed for their own method and Request-URI (RFC 2617 §3.2.2,
//! RFC 7616 §3.4), with the nonce count moving on; they used to repeat the INVITE's.
//! Each answer is checked here by recomputing it independently from its parameters.

mod common;

use common::*;
use engine::sip::auth::Credentials;
use engine::sip::{parse, Message, Request};
use md5::{Digest, Md5};

const USER: &str = "comune";
const PASSWORD: &str = "secret";

fn hex_md5(s: &str) -> String {
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The `name=value` pairs of a Digest credentials value, quotes removed.
fn params(value: &str) -> Vec<(String, String)> {
    value
        .trim_start_matches("Digest ")
        .split(", ")
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim_matches('"').to_string()))
        .collect()
}

fn get<'a>(p: &'a [(String, String)], k: &str) -> &'a str {
    p.iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {k} in {p:?}"))
}

/// Checks `req`'s credentials in `header` as a server would: the URI is the request's own,
/// and the response is MD5 qop=auth over this method. Returns (nonce, nc).
fn verify(req: &Request<'_>, header: &str) -> (String, String) {
    let value = req
        .headers
        .iter()
        .find(|h| h.name.as_str().eq_ignore_ascii_case(header))
        .unwrap_or_else(|| panic!("{} has no {header}", req.method))
        .value;
    let p = params(value);
    assert_eq!(
        get(&p, "uri"),
        req.uri.raw,
        "the digest names this request's URI"
    );
    assert_eq!(get(&p, "username"), USER);
    let ha1 = hex_md5(&format!("{USER}:{}:{PASSWORD}", get(&p, "realm")));
    let ha2 = hex_md5(&format!("{}:{}", req.method.as_str(), get(&p, "uri")));
    let want = hex_md5(&format!(
        "{ha1}:{}:{}:{}:{}:{ha2}",
        get(&p, "nonce"),
        get(&p, "nc"),
        get(&p, "cnonce"),
        get(&p, "qop")
    ));
    assert_eq!(get(&p, "response"), want, "digest of {}", req.method);
    (get(&p, "nonce").to_string(), get(&p, "nc").to_string())
}

fn answered_call(bye_challenge: Option<(&'static str, &'static str)>) -> Sim {
    let script = vec![Step::Respond {
        after: ms(100),
        status: 200,
        sdp: true,
        to_tag: "b1",
    }];
    let mut sim = Sim::new(script, Link::perfect());
    sim.carrier.challenge = Some(("carrier.example", "n-invite"));
    sim.carrier.bye_challenge = bye_challenge;
    let mut p = Sim::call_params(secs(30));
    p.credentials = Some(Credentials::new(USER, PASSWORD));
    let call = sim.place(p);
    sim.run_for(secs(5), |s| s.answered(call));
    assert!(sim.answered(call));
    sim.hangup(call);
    let end = sim.run_until_end(call, secs(20));
    assert!(end.is_some(), "the BYE was answered");
    sim
}

#[test]
fn a_bye_after_a_challenged_invite_carries_its_own_answer_with_the_next_nonce_count() {
    let sim = answered_call(None);
    let invites = sim.carrier.requests("INVITE");
    let Ok(Message::Request(inv)) = parse(&invites[1].raw) else {
        panic!()
    };
    assert_eq!(
        verify(&inv, "Authorization"),
        ("n-invite".into(), "00000001".into())
    );
    let byes = sim.carrier.requests("BYE");
    assert_eq!(byes.len(), 1, "accepted the first time");
    let Ok(Message::Request(bye)) = parse(&byes[0].raw) else {
        panic!()
    };
    assert_ne!(bye.uri.raw, inv.uri.raw, "the BYE goes to the Contact");
    assert_eq!(
        verify(&bye, "Authorization"),
        ("n-invite".into(), "00000002".into()),
        "same nonce, next count"
    );
    // The ACK repeats the INVITE's credentials (RFC 3261 §13.2.2.4).
    let acks = sim.carrier.requests("ACK");
    let ack = String::from_utf8_lossy(&acks.last().unwrap().raw).to_string();
    let inv_auth = inv.headers.authorization().next().unwrap();
    assert!(ack.contains(inv_auth), "{ack}");
}

#[test]
fn a_proxy_challenging_the_bye_gets_an_answer_for_the_bye() {
    let sim = answered_call(Some(("proxy.example", "n-bye")));
    let byes = sim.carrier.requests("BYE");
    assert_eq!(byes.len(), 2, "challenged once, then accepted");
    let Ok(Message::Request(first)) = parse(&byes[0].raw) else {
        panic!()
    };
    let Ok(Message::Request(second)) = parse(&byes[1].raw) else {
        panic!()
    };
    verify(&first, "Authorization");
    // Both realms are answered again, each for the BYE, each with its own count.
    assert_eq!(
        verify(&second, "Authorization"),
        ("n-invite".into(), "00000003".into())
    );
    assert_eq!(
        verify(&second, "Proxy-Authorization"),
        ("n-bye".into(), "00000001".into())
    );
    assert_eq!(
        second.headers.cseq().unwrap().seq,
        first.headers.cseq().unwrap().seq + 1
    );
}

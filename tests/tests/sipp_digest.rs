//! Issue 14 item 6, checked by an independent peer: SIPp (`tests/sipp/uas_auth_bye.xml`)
//! challenges the INVITE with a 401 and then runs `<verifyauth>` on the BYE as well, so the
//! BYE must carry a digest answer computed for the BYE (its method, its Request-URI, the
//! next nonce count). A copy of the INVITE's answer gets 403 and SIPp exits non-zero. The
//! caller is the engine's SIP driver itself, placing one call and hanging it up.
//!
//! Without `sipp` on PATH the test prints why and passes, unless `CI` is set: then it fails.

use e2e::{free_media_port, free_port, sipp_available};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use engine::net::sip_driver::SipDriver;
use engine::sip::auth::Credentials;
use engine::sip::endpoint::{CallParams, EndpointConfig, Event, Hangup, Transport};
use engine::sip::outcome::Outcome;
use engine::sip::sdp::OfferParams;

#[test]
fn the_bye_after_a_challenged_invite_passes_sipp_verifyauth() {
    if !sipp_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new("sipp")
        .arg("-sf")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("sipp/uas_auth_bye.xml"))
        .args(["-i", "127.0.0.1", "-mi", "127.0.0.1"])
        .args(["-p", &port.to_string()])
        .args(["-mp", &free_media_port().to_string()])
        .args(["-key", "rtp_port", &free_port().to_string()])
        .args(["-m", "1", "-timeout", "30s", "-timeout_error"])
        .arg("-trace_err")
        .arg("-error_file")
        .arg(dir.path().join("errors.log"))
        .arg("-trace_msg")
        .arg("-message_file")
        .arg(dir.path().join("messages.log"))
        .arg("-nostdin")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sipp");
    std::thread::sleep(Duration::from_millis(400));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let end = rt.block_on(async {
        let cfg = EndpointConfig::new("127.0.0.1:0".parse().unwrap());
        let (sip, mut events) = SipDriver::start("127.0.0.1:0".parse().unwrap(), cfg)
            .await
            .unwrap();
        let sipp = format!("127.0.0.1:{port}");
        let params = CallParams {
            proxy: sipp.parse().unwrap(),
            request_uri: format!("sip:+390771286891@{sipp}"),
            to_uri: format!("sip:+390771286891@{sipp}"),
            from_uri: "sip:comune@127.0.0.1".into(),
            from_display: None,
            offer: OfferParams::g711(1, "127.0.0.1".parse().unwrap(), free_port()),
            ring_timeout: Duration::from_secs(20),
            credentials: Some(Credentials::new("alice", "secret")),
            transport: Some(Transport::Udp),
            extra_headers: Vec::new(),
            trunk: None,
        };
        let (call, _) = sip.place_call(params).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(Event::Answered { call: c, .. })) if c == call => {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    sip.hangup(call);
                }
                Ok(Some(Event::Ended { call: c, end })) if c == call => break Some(end),
                Ok(Some(_)) => {}
                _ => break None,
            }
        }
    });
    let mut status = None;
    for _ in 0..400 {
        if let Ok(Some(st)) = child.try_wait() {
            status = Some(st);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let logs = std::fs::read_to_string(dir.path().join("messages.log")).unwrap_or_default()
        + &std::fs::read_to_string(dir.path().join("errors.log")).unwrap_or_default();
    let end = end.unwrap_or_else(|| panic!("the call did not end\n{logs}"));
    assert_eq!(
        (end.outcome, end.status, end.hangup),
        (Outcome::Answered, 200, Hangup::Local),
        "{logs}"
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "SIPp rejected a digest: {status:?}\n{logs}"
    );
}

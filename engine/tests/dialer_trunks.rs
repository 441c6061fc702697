//! Trunks changed on a running [`Dialer`]: added, replaced (new limits in the snapshot),
//! removed (gone from the snapshot and from routing), and invalid configurations refused
//! with nothing changed. The carriers are UDP sockets that only count INVITEs; media is a
//! stub (no call is answered).

use std::io;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::dialer::call_media::{CallMedia, MediaNote};
use engine::dialer::contacts::{NewContact, Source};
use engine::dialer::trunk::TrunkConfig;
use engine::dialer::{
    CampaignSpec, Dialer, DialerConfig, DialerError, NumberType, Priority, RetryPolicy, Target,
};
use engine::sip::sdp::NegotiatedMedia;
use engine::store::{SqliteOptions, SqliteStore, Store};
use tokio::sync::mpsc;

/// Media that never plays: enough for calls that are never answered.
struct NoMedia;

impl CallMedia for NoMedia {
    type Port = u16;
    fn local_ip(&self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    }
    fn bind(&self) -> io::Result<u16> {
        Ok(40000)
    }
    fn port_number(port: &u16) -> u16 {
        *port
    }
    fn prepare(&self, _prompt: &str) -> io::Result<()> {
        Ok(())
    }
    fn start(
        &self,
        _token: u64,
        _port: u16,
        _media: &NegotiatedMedia,
        _prompt: &str,
        _play_count: u32,
        _latch: engine::media::MediaLatch,
    ) -> io::Result<()> {
        Ok(())
    }
    fn stop(&self, _token: u64) {}
}

/// A carrier that counts the requests it receives, answers REGISTER and OPTIONS with 200
/// and swallows the rest.
struct Sink {
    port: u16,
    invites: Arc<AtomicUsize>,
    registers: Arc<AtomicUsize>,
    unregisters: Arc<AtomicUsize>,
    options: Arc<AtomicUsize>,
}

/// A 200 to a request: its Via, From, To (tagged), Call-ID, CSeq, Contact and Expires.
fn ok_to(req: &str) -> String {
    let mut out = String::from("SIP/2.0 200 OK\r\n");
    for line in req.split("\r\n") {
        let name = line
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match name.as_str() {
            "via" | "from" | "call-id" | "cseq" | "contact" | "expires" => {
                out.push_str(line);
                out.push_str("\r\n");
            }
            "to" => {
                out.push_str(line);
                out.push_str(";tag=sink\r\n");
            }
            _ => {}
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

fn sink() -> Sink {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let port = sock.local_addr().unwrap().port();
    let sink = Sink {
        port,
        invites: Arc::default(),
        registers: Arc::default(),
        unregisters: Arc::default(),
        options: Arc::default(),
    };
    let (inv, reg, unreg, opt) = (
        Arc::clone(&sink.invites),
        Arc::clone(&sink.registers),
        Arc::clone(&sink.unregisters),
        Arc::clone(&sink.options),
    );
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let Ok((len, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let text = String::from_utf8_lossy(&buf[..len]).to_string();
            if text.starts_with("INVITE ") {
                inv.fetch_add(1, Ordering::SeqCst);
            } else if text.starts_with("OPTIONS ") {
                opt.fetch_add(1, Ordering::SeqCst);
                let _ = sock.send_to(ok_to(&text).as_bytes(), from);
            } else if text.starts_with("REGISTER ") {
                if text.contains("\r\nExpires: 0\r\n") {
                    unreg.fetch_add(1, Ordering::SeqCst);
                } else {
                    reg.fetch_add(1, Ordering::SeqCst);
                }
                let _ = sock.send_to(ok_to(&text).as_bytes(), from);
            }
        }
    });
    sink
}

fn trunk(name: &str, port: u16, cps: f64, channels: u32) -> TrunkConfig {
    let text = format!(
        "[[trunk]]\nname = \"{name}\"\nproxy = \"127.0.0.1:{port}\"\n\
         max_channels = {channels}\ncps = {cps}\n"
    );
    DialerConfig::load_with(&text, &|_| None)
        .unwrap()
        .trunks
        .remove(0)
}

async fn start(trunks: &[TrunkConfig]) -> (Dialer<SqliteStore>, SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("d.db"), SqliteOptions::default())
        .await
        .unwrap();
    let mut cfg = DialerConfig::load_with("sip_bind = \"127.0.0.1:0\"\n", &|_| None).unwrap();
    cfg.trunks = trunks.to_vec();
    let (_tx, notes) = mpsc::unbounded_channel::<MediaNote>();
    let dialer = Dialer::start(cfg, store.clone(), Arc::new(NoMedia), notes)
        .await
        .unwrap();
    (dialer, store, dir)
}

#[tokio::test]
async fn add_replace_remove_show_in_the_snapshot() {
    let a = sink();
    let (dialer, _store, _dir) = start(&[trunk("a", a.port, 5.0, 10)]).await;
    let snap = dialer.snapshot().await.unwrap();
    assert_eq!(snap.trunks.len(), 1);
    assert_eq!(snap.trunks[0].cps_limit, 5.0);

    // Add: a second trunk; the same name again is refused.
    let b = sink();
    dialer.add_trunk(trunk("b", b.port, 2.0, 3)).await.unwrap();
    assert!(matches!(
        dialer.add_trunk(trunk("b", b.port, 9.0, 9)).await,
        Err(DialerError::TrunkExists(n)) if n == "b"
    ));
    let snap = dialer.snapshot().await.unwrap();
    let names: Vec<&str> = snap.trunks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);

    // Replace: new limits in the snapshot and in the configuration.
    dialer
        .replace_trunk(trunk("a", a.port, 20.0, 40))
        .await
        .unwrap();
    let snap = dialer.snapshot().await.unwrap();
    let ta = snap.trunks.iter().find(|t| t.name == "a").unwrap();
    assert_eq!((ta.cps_limit, ta.max_channels), (20.0, 40));
    assert_eq!(ta.cps_effective, 20.0);
    let cfgs = dialer.trunk_configs().await.unwrap();
    assert_eq!(cfgs.iter().find(|t| t.name == "a").unwrap().cps, 20.0);
    assert!(matches!(
        dialer.replace_trunk(trunk("zz", a.port, 1.0, 1)).await,
        Err(DialerError::NoTrunk(n)) if n == "zz"
    ));
    // Upsert does either.
    dialer
        .upsert_trunk(trunk("c", a.port, 1.0, 1))
        .await
        .unwrap();
    dialer
        .upsert_trunk(trunk("c", a.port, 3.0, 1))
        .await
        .unwrap();
    let snap = dialer.snapshot().await.unwrap();
    assert_eq!(
        snap.trunks
            .iter()
            .find(|t| t.name == "c")
            .unwrap()
            .cps_limit,
        3.0
    );

    // Remove: gone; removing again is refused; the name can be added back.
    dialer.remove_trunk("c").await.unwrap();
    assert!(matches!(
        dialer.remove_trunk("c").await,
        Err(DialerError::NoTrunk(_))
    ));
    let snap = dialer.snapshot().await.unwrap();
    assert!(snap.trunks.iter().all(|t| t.name != "c"));
    assert_eq!(dialer.trunk_configs().await.unwrap().len(), 2);
    dialer.add_trunk(trunk("c", a.port, 4.0, 2)).await.unwrap();
    assert_eq!(dialer.snapshot().await.unwrap().trunks.len(), 3);
    dialer.shutdown().await.unwrap();
}

#[tokio::test]
async fn invalid_trunks_are_refused_and_change_nothing() {
    let a = sink();
    let (dialer, _store, _dir) = start(&[trunk("a", a.port, 5.0, 10)]).await;
    let before = dialer.snapshot().await.unwrap();
    let mut bad = trunk("a", a.port, 5.0, 10);
    bad.cps = 0.0;
    assert!(matches!(
        dialer.replace_trunk(bad.clone()).await,
        Err(DialerError::InvalidTrunk(_))
    ));
    bad.name = "new".into();
    assert!(matches!(
        dialer.add_trunk(bad).await,
        Err(DialerError::InvalidTrunk(_))
    ));
    // A transport that is not udp or tcp does not even parse into a trunk.
    let text = format!(
        "[[trunk]]\nname = \"new\"\nproxy = \"127.0.0.1:{}\"\n\
         max_channels = 10\ncps = 5\ntransport = \"sctp\"\n",
        a.port
    );
    let e = DialerConfig::load_with(&text, &|_| None).unwrap_err();
    assert!(e.to_string().contains("transport"), "{e}");
    let mut bad = trunk("new", a.port, 5.0, 10);
    bad.max_channels = 0;
    assert!(dialer.add_trunk(bad).await.is_err());
    let mut bad = trunk("new", a.port, 5.0, 10);
    bad.proxy = "no-such-host.invalid:5060".into();
    assert!(matches!(
        dialer.add_trunk(bad).await,
        Err(DialerError::TrunkProxy { .. })
    ));
    assert_eq!(dialer.snapshot().await.unwrap(), before);
    dialer.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_removed_trunk_is_no_longer_routed_to() {
    let (a, b) = (sink(), sink());
    let (dialer, store, _dir) = start(&[trunk("a", a.port, 50.0, 10)]).await;
    dialer
        .add_trunk(trunk("b", b.port, 50.0, 10))
        .await
        .unwrap();
    dialer.remove_trunk("a").await.unwrap();
    let contacts = (0..6)
        .map(|i| NewContact {
            number: format!("+39077128{i:04}"),
            number_type: NumberType::Fixed,
            street: "Via Roma".into(),
            house_number: format!("{i}"),
            zone: "z1".into(),
            source: Source::Directory,
            opt_out: false,
        })
        .collect();
    store.upsert_contacts("anzio", contacts).await.unwrap();
    let c = dialer
        .create_campaign(CampaignSpec {
            tenant: "anzio".into(),
            name: "t".into(),
            prompt: "p.wav".into(),
            target: Target {
                all: true,
                zones: vec![],
                streets: vec![],
            },
            priority: Priority::Emergency,
            window: None,
            caller_id: None,
            ring_timeout_s: Some(30),
            play_count: 1,
            retry: RetryPolicy::default(),
            delivery: Default::default(),
        })
        .await
        .unwrap();
    dialer.start_campaign(c.id).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let attempts = loop {
        let at = store.attempts(c.id, 0, 100).await.unwrap();
        if at.len() >= 6 && b.invites.load(Ordering::SeqCst) >= 6 {
            break at;
        }
        assert!(Instant::now() < deadline, "attempts: {}", at.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(attempts.iter().all(|x| x.trunk == "b"), "{attempts:?}");
    assert_eq!(a.invites.load(Ordering::SeqCst), 0);
    let snap = dialer.snapshot().await.unwrap();
    assert_eq!(snap.trunks.len(), 1);
    assert_eq!(snap.trunks[0].active, 6);
    // Replaced with calls in progress: they stay on it; the new limits show.
    dialer
        .replace_trunk(trunk("b", b.port, 7.0, 8))
        .await
        .unwrap();
    let snap = dialer.snapshot().await.unwrap();
    assert_eq!(
        (
            snap.trunks[0].active,
            snap.trunks[0].max_channels,
            snap.trunks[0].cps_limit
        ),
        (6, 8, 7.0)
    );
    // Removed with calls in progress: gone from the list, its calls go on.
    dialer.remove_trunk("b").await.unwrap();
    let snap = dialer.snapshot().await.unwrap();
    assert!(snap.trunks.is_empty());
    assert_eq!(snap.calls_in_progress, 6);
    // No shutdown: its CANCELs would wait for the silent carrier's timeouts.
    drop(dialer);
}

async fn until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn registration_and_pings_follow_the_trunk() {
    let (a, r) = (sink(), sink());
    let (dialer, _store, _dir) = start(&[trunk("a", a.port, 5.0, 10)]).await;
    let mut t = trunk("r", r.port, 5.0, 10);
    t.register = true;
    t.options_ping_interval_s = 1;
    dialer.add_trunk(t.clone()).await.unwrap();
    until("REGISTER", || r.registers.load(Ordering::SeqCst) >= 1).await;
    until("OPTIONS", || r.options.load(Ordering::SeqCst) >= 1).await;
    // The live state says so: registered for `r`, not applicable for `a`.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let snap = dialer.snapshot().await.unwrap();
        let reg = |n: &str| snap.trunks.iter().find(|s| s.name == n).unwrap().registered;
        assert_eq!(reg("a"), None);
        if reg("r") == Some(true) {
            break;
        }
        assert!(Instant::now() < deadline, "trunk r never shown registered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Replaced without registration: the binding is removed.
    t.register = false;
    dialer.replace_trunk(t.clone()).await.unwrap();
    until("REGISTER expires 0", || {
        r.unregisters.load(Ordering::SeqCst) >= 1
    })
    .await;
    let registers = r.registers.load(Ordering::SeqCst);
    // And back: registered again.
    t.register = true;
    dialer.replace_trunk(t).await.unwrap();
    until("a new REGISTER", || {
        r.registers.load(Ordering::SeqCst) > registers
    })
    .await;
    // Removed: unregistered, and the pings stop.
    dialer.remove_trunk("r").await.unwrap();
    until("REGISTER expires 0 after removal", || {
        r.unregisters.load(Ordering::SeqCst) >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pings = r.options.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        r.options.load(Ordering::SeqCst),
        pings,
        "pings after removal"
    );
    assert_eq!(a.registers.load(Ordering::SeqCst), 0);
    dialer.shutdown().await.unwrap();
}

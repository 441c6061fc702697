use super::*;
use std::collections::HashMap;

fn parse(text: &str, vars: &[(&str, &str)]) -> Result<ServeConfig, ConfigError> {
    let m: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ServeConfig::parse_with(text, &|k| m.get(k).cloned())
}

#[test]
fn defaults_match_the_issue() {
    let c = parse("", &[]).unwrap();
    assert_eq!(c.http.listen, "127.0.0.1:8080");
    assert_eq!(c.sip.listen, "127.0.0.1:5060");
    assert_eq!((c.media.rtp_port_min, c.media.rtp_port_max), (20000, 39999));
    assert_eq!(
        c.store_url().unwrap(),
        StoreUrl::Sqlite(PathBuf::from("./dialer.db"))
    );
    assert_eq!(c.prompt_dir(), PathBuf::from("./dialer.db.prompts"));
}

#[test]
fn env_overrides_and_secrets() {
    let c = parse(
        "admin_token = \"${TOK}\"\n[http]\nlisten = \"127.0.0.1:1\"\n",
        &[
            ("DIALER_HTTP_LISTEN", "127.0.0.1:9999"),
            ("DIALER_MEDIA_RTP_PORT_MIN", "30000"),
            ("TOK", "0123456789abcdef0123"),
        ],
    )
    .unwrap();
    assert_eq!(c.http.listen, "127.0.0.1:9999");
    assert_eq!(c.media.rtp_port_min, 30000);
    assert_eq!(c.admin_token.as_deref(), Some("0123456789abcdef0123"));
}

#[test]
fn errors_name_the_key() {
    let e = parse("[media]\nrtp_port_min = \"x\"\n", &[]).unwrap_err();
    assert!(e.to_string().contains("media.rtp_port_min"), "{e}");
    let e = parse("[http]\nlisten = \"nope\"\n", &[]).unwrap_err();
    assert!(e.to_string().contains("http.listen"), "{e}");
    let e = parse("[http]\nlistn = \"x\"\n", &[]).unwrap_err();
    assert!(
        e.to_string().contains("http") && e.to_string().contains("listn"),
        "{e}"
    );
    let e = parse("admin_token = \"${NOPE}\"\n", &[]).unwrap_err();
    assert!(
        e.to_string().contains("admin_token") && e.to_string().contains("NOPE"),
        "{e}"
    );
    let e = parse("", &[("DIALER_MEDIA_RTP_PORT_MAX", "many")]).unwrap_err();
    assert!(e.to_string().contains("media.rtp_port_max"), "{e}");
    let e = parse("[store]\nurl = \"mysql://x\"\n", &[]).unwrap_err();
    assert!(e.to_string().contains("store.url"), "{e}");
    let c = parse("[store]\nurl = \"postgres://u:p@db:5432/dialer\"\n", &[]).unwrap();
    assert_eq!(
        c.store_url().unwrap(),
        StoreUrl::Postgres("postgres://u:p@db:5432/dialer".into())
    );
    let e = parse(
        "[[trunk]]\nname = \"a\"\nproxy = \"127.0.0.1:5070\"\ncps = \"fast\"\n",
        &[],
    )
    .unwrap_err();
    assert!(e.to_string().contains("trunk"), "{e}");
}

#[test]
fn hep_is_off_by_default_and_checked_when_on() {
    let c = parse("", &[]).unwrap();
    assert_eq!(c.hep.collector().unwrap(), None);
    let c = parse(
        "[hep]\naddress = \"udp:127.0.0.1:9060\"\npassword = \"${HP}\"\n",
        &[("HP", "s3cret"), ("DIALER_HEP_CAPTURE_ID", "42")],
    )
    .unwrap();
    assert_eq!(
        c.hep.collector().unwrap().as_deref(),
        Some("127.0.0.1:9060")
    );
    assert_eq!(
        (c.hep.capture_id, c.hep.password.as_deref()),
        (42, Some("s3cret"))
    );
    let c = parse("[hep]\naddress = \"udp:homer.example:9060\"\n", &[]).unwrap();
    assert_eq!(
        c.hep.collector().unwrap().as_deref(),
        Some("homer.example:9060")
    );
    for bad in [
        "tcp:1.2.3.4:9060",
        "udp:1.2.3.4",
        "udp::9060",
        "udp:h:0",
        "udp:h:x",
    ] {
        let e = parse(&format!("[hep]\naddress = \"{bad}\"\n"), &[]).unwrap_err();
        assert!(e.to_string().contains("hep.address"), "{bad}: {e}");
    }
    let e = parse("[hep]\nqueue = 0\n", &[]).unwrap_err();
    assert!(e.to_string().contains("hep.queue"), "{e}");
    let e = parse("[hep]\nadress = \"udp:h:1\"\n", &[]).unwrap_err();
    assert!(e.to_string().contains("adress"), "{e}");
}

#[test]
fn trunks_reach_the_engine() {
    let c = parse(
        "[[trunk]]\nname = \"a\"\nproxy = \"127.0.0.1:5070\"\nmax_channels = 4\ncps = 2\n",
        &[("DIALER_TRUNK_A_CPS", "7")],
    )
    .unwrap();
    let d = c
        .dialer_config_with(&|k| (k == "DIALER_TRUNK_A_CPS").then(|| "7".into()))
        .unwrap();
    assert_eq!(d.trunks.len(), 1);
    assert_eq!(d.trunks[0].cps, 7.0);
    assert_eq!(d.sip_bind, "127.0.0.1:5060");
}

#[test]
fn cluster_section_defaults_and_checks() {
    let c = parse("", &[]).unwrap();
    assert_eq!((c.cluster.beat_ms, c.cluster.lease_ms), (1000, 5000));
    assert!(c
        .cluster
        .node_id("127.0.0.1:5060")
        .ends_with("/127.0.0.1:5060"));
    let c = parse(
        "[cluster]\nnode_id = \"a\"\n",
        &[("DIALER_CLUSTER_LEASE_MS", "3000")],
    )
    .unwrap();
    assert_eq!(
        (c.cluster.node_id("x"), c.cluster.lease_ms),
        ("a".into(), 3000)
    );
    let e = parse("[cluster]\nlease_ms = 1500\n", &[]).unwrap_err();
    assert!(e.to_string().contains("cluster.lease_ms"), "{e}");
}

#[test]
fn sip_keys_are_the_engines_settings_beside_the_listen_address() {
    let c = parse(
        "[sip]\nlisten = \"127.0.0.1:5070\"\nstrangers = \"reject\"\ntls_verify = false\n",
        &[("DIALER_SIP_TCP_MAX_CONNECTIONS", "7")],
    )
    .unwrap();
    assert_eq!(c.sip.listen, "127.0.0.1:5070");
    let s = &c.sip.settings;
    assert_eq!(s.strangers, engine::sip::endpoint::StrangerAction::Reject);
    assert_eq!((s.tcp_max_connections, s.tls_verify), (7, false));
    assert_eq!(c.dialer_config_with(&|_| None).unwrap().sip, *s);
    let d = parse("", &[]).unwrap();
    assert_eq!(d.sip.settings, engine::dialer::SipSettings::default());
    let e = parse("[sip]\ntcp_max_conections = 3\n", &[]).unwrap_err();
    assert!(
        e.to_string().contains("sip") && e.to_string().contains("tcp_max_conections"),
        "{e}"
    );
    let e = parse("[sip]\ntcp_idle_timeout_s = \"long\"\n", &[]).unwrap_err();
    assert!(e.to_string().contains("sip.tcp_idle_timeout_s"), "{e}");
    let e = parse("[sip]\nuser_agent = \"\"\n", &[]).unwrap_err();
    assert!(e.to_string().contains("sip.user_agent"), "{e}");
}

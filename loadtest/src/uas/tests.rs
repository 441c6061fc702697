use super::*;
use engine::sip::endpoint::{CallParams, Endpoint, EndpointConfig, Event, Hangup};
use engine::sip::outcome::Outcome;
use engine::sip::sdp::OfferParams;

fn cfg(choices: Vec<(Disposition, u32)>, hangup_pct: u32) -> UasConfig {
    UasConfig {
        local: "127.0.0.1:5070".parse().unwrap(),
        media: "127.0.0.1:30000".parse().unwrap(),
        mix: Mix { choices },
        ring: (Duration::from_millis(100), Duration::from_millis(300)),
        hangup_pct,
        hangup_after: (Duration::from_secs(1), Duration::from_secs(2)),
        seed: 7,
        timers: TimerConfig::default(),
        callees: CalleeMix::default(),
    }
}

/// Runs the engine's UAC against the carrier on virtual time; returns the UAC's events and
/// the carrier's.
fn run(uas_cfg: UasConfig, calls: usize, hang_up_after: Duration) -> (Vec<Event>, Vec<UasEvent>) {
    let t0 = Instant::now();
    let mut now = t0;
    let uac_addr: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    let uas_addr = uas_cfg.local;
    let mut uac = Endpoint::new(EndpointConfig::new(uac_addr));
    let mut uas = Uas::new(uas_cfg);
    for i in 0..calls {
        let ruri = format!("sip:{i}@127.0.0.1:5070");
        uac.place_call(
            now,
            CallParams {
                proxy: uas_addr,
                request_uri: ruri.clone(),
                to_uri: ruri,
                from_uri: "sip:dialer@127.0.0.1:5060".into(),
                from_display: None,
                offer: OfferParams::g711(
                    i as u64,
                    "127.0.0.1".parse().unwrap(),
                    20000 + 2 * i as u16,
                ),
                ring_timeout: Duration::from_secs(5),
                credentials: None,
                transport: None,
                extra_headers: Vec::new(),
                trunk: None,
            },
        );
    }
    let (mut uac_events, mut uas_events) = (Vec::new(), Vec::new());
    let mut answered_at = HashMap::new();
    let end = t0 + Duration::from_secs(120);
    while now < end {
        let mut moved = true;
        while moved {
            moved = false;
            while let Some(t) = uac.poll_transmit() {
                uas.handle_datagram(now, uac_addr, &t.bytes);
                moved = true;
            }
            while let Some(t) = uas.poll_transmit() {
                uac.handle_datagram(
                    now,
                    uas_addr,
                    engine::sip::endpoint::Transport::Udp,
                    &t.bytes,
                );
                moved = true;
            }
            while let Some(e) = uac.poll_event() {
                if let Event::Answered { call, .. } = &e {
                    answered_at.insert(*call, now);
                }
                uac_events.push(e);
                moved = true;
            }
            while let Some(e) = uas.poll_event() {
                uas_events.push(e);
            }
        }
        let hang: Vec<_> = answered_at
            .iter()
            .filter(|(_, t)| now >= **t + hang_up_after)
            .map(|(c, _)| *c)
            .collect();
        for c in hang {
            answered_at.remove(&c);
            uac.hangup(now, c);
        }
        let next = [uac.poll_timeout(), uas.poll_timeout()]
            .into_iter()
            .flatten()
            .chain(answered_at.values().map(|t| *t + hang_up_after))
            .min();
        let Some(next) = next else { break };
        now = next.max(now);
        uac.handle_timeout(now);
        uas.handle_timeout(now);
    }
    (uac_events, uas_events)
}

fn outcomes(ev: &[Event]) -> HashMap<Outcome, usize> {
    let mut m = HashMap::new();
    for e in ev {
        if let Event::Ended { end, .. } = e {
            *m.entry(end.outcome).or_default() += 1;
        }
    }
    m
}

#[test]
fn answer_then_caller_bye() {
    let (uac, uas) = run(
        cfg(vec![(Disposition::Answer, 1)], 0),
        20,
        Duration::from_secs(3),
    );
    assert_eq!(outcomes(&uac).get(&Outcome::Answered), Some(&20));
    let answered = uas
        .iter()
        .filter(|e| {
            matches!(
                e,
                UasEvent::Answered {
                    rtp_from: Some(_),
                    payload_type: 0,
                    ..
                }
            )
        })
        .count();
    assert_eq!(answered, 20);
    let byes = uas
        .iter()
        .filter(|e| {
            matches!(
                e,
                UasEvent::Ended {
                    by: EndedBy::Caller,
                    ..
                }
            )
        })
        .count();
    assert_eq!(byes, 20);
}

#[test]
fn busy_reject_and_no_answer() {
    let (uac, uas) = run(
        cfg(
            vec![
                (Disposition::Busy, 1),
                (Disposition::Reject(503), 1),
                (Disposition::NoAnswer, 1),
            ],
            0,
        ),
        30,
        Duration::from_secs(3),
    );
    let o = outcomes(&uac);
    let n = |k| o.get(&k).copied().unwrap_or(0);
    assert_eq!(
        n(Outcome::Busy) + n(Outcome::Failed) + n(Outcome::Rejected) + n(Outcome::NoAnswer),
        30,
        "{o:?}"
    );
    assert!(n(Outcome::Busy) > 0 && n(Outcome::NoAnswer) > 0, "{o:?}");
    let cancels = uas
        .iter()
        .filter(|e| {
            matches!(
                e,
                UasEvent::Ended {
                    by: EndedBy::Cancel,
                    ..
                }
            )
        })
        .count();
    assert_eq!(cancels, n(Outcome::NoAnswer));
}

#[test]
fn callee_hangs_up_first() {
    let (uac, uas) = run(
        cfg(vec![(Disposition::Answer, 1)], 100),
        10,
        Duration::from_secs(30),
    );
    let remote = uac
        .iter()
        .filter(|e| matches!(e, Event::Ended { end, .. } if end.hangup == Hangup::Remote))
        .count();
    assert_eq!(remote, 10);
    let ours = uas
        .iter()
        .filter(|e| {
            matches!(
                e,
                UasEvent::Ended {
                    by: EndedBy::Callee,
                    ..
                }
            )
        })
        .count();
    assert_eq!(ours, 10);
}

#[test]
fn callee_behaviours_key_by_info_and_rtp_and_hang_up() {
    let mut c = cfg(vec![(Disposition::Answer, 1)], 0);
    c.callees = CalleeMix::parse(&["human;key=1@1;key=2@1.5;hangup@3;info".into()]).unwrap();
    let (uac_ev, uas_ev) = run(c, 1, Duration::from_secs(30));
    let infos: Vec<String> = uac_ev
        .iter()
        .filter_map(|e| match e {
            Event::Info { body, .. } => Some(String::from_utf8_lossy(body).to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(infos.len(), 2, "{uac_ev:?}");
    assert!(infos[0].starts_with("Signal=1") && infos[1].starts_with("Signal=2"));
    assert!(uas_ev.contains(&UasEvent::Ended {
        call: 1,
        by: EndedBy::Callee
    }));
    let mut c = cfg(vec![(Disposition::Answer, 1)], 0);
    c.callees = CalleeMix::parse(&["machine;greeting=1200;beep".into()]).unwrap();
    let (_, uas_ev) = run(c, 1, Duration::from_secs(5));
    let steps: Vec<Step> = uas_ev
        .iter()
        .filter_map(|e| match e {
            UasEvent::Step { step, rtp_to, .. } => {
                assert!(rtp_to.is_some());
                Some(*step)
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        steps,
        vec![Step::Greeting(Duration::from_millis(1200)), Step::Beep]
    );
}

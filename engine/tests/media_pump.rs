//! The media pump over loopback, in both send modes: every packet leaves from its call's own
//! even port, the stream end is an event, stop reports the exact count, DTMF is decoded and
//! packets from a foreign source are dropped.

use std::collections::HashMap;
use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};

use codecs::{Codec, EncodeSettings, PreparedAudio};
use engine::media::StreamParams;
use engine::net::{MediaEvent, MediaPump, MediaStart, PumpConfig, SendMode};

fn prompt(ms: u32) -> Arc<codecs::Prompt> {
    let n = (8 * ms) as usize;
    let mut wav = Vec::new();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::new(std::io::Cursor::new(&mut wav), spec).unwrap();
    for i in 0..n {
        w.write_sample(((i as f32 * 0.07).sin() * 6000.0) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
    let s = EncodeSettings {
        normalize: false,
        ..EncodeSettings::default()
    };
    Arc::new(
        PreparedAudio::from_bytes(&wav, &s)
            .unwrap()
            .encode(Codec::Pcmu, 20)
            .unwrap(),
    )
}

fn run(mode: SendMode, base: u16) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        sink.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let dest = sink.local_addr().unwrap();
        let mut cfg = PumpConfig::new("127.0.0.1".parse().unwrap());
        cfg.loops = 2;
        cfg.port_min = base;
        cfg.port_max = base + 999;
        cfg.send_mode = mode;
        let (pump, mut events) = MediaPump::start(cfg).unwrap();
        let p = prompt(200);
        let mut ports = HashMap::new();
        let mut handles = HashMap::new();
        for token in 0..20u64 {
            let port = pump.bind_port().unwrap();
            assert_eq!(port.port() % 2, 0);
            ports.insert(port.port(), token);
            let h = pump.start_media(
                MediaStart {
                    token,
                    remote_rtp: dest,
                    remote_rtcp: None,
                    rtcp_mux: false,
                    prompt: p.clone(),
                    params: StreamParams {
                        payload_type: 0,
                        ssrc: 1000 + token as u32,
                        first_seq: 1,
                        first_timestamp: 0,
                        play_count: 1,
                        gap_frames: 0,
                    },
                    clock_rate: 8000,
                    telephone_event_pt: Some(101),
                    latch: Default::default(),
                    srtp: None,
                    idle: false,
                },
                port,
            );
            handles.insert(token, h);
        }
        let mut per_port: HashMap<u16, usize> = HashMap::new();
        let mut buf = [0u8; 2048];
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            match sink.recv_from(&mut buf) {
                Ok((n, from)) => {
                    assert_eq!(n, 172);
                    *per_port.entry(from.port()).or_default() += 1;
                }
                Err(_) => break,
            }
        }
        assert_eq!(per_port.len(), 20, "{per_port:?}");
        // The 10 frames of the message, then the finish hold's silence tail.
        let tail = engine::media::pacer::FINISH_HOLD.as_millis() as usize / 20;
        for (port, n) in &per_port {
            assert!(ports.contains_key(port), "unknown source port {port}");
            assert_eq!(*n, 10 + tail);
        }
        let mut finished = 0;
        while finished < 20 {
            match tokio::time::timeout(Duration::from_secs(2), events.recv()).await {
                Ok(Some(MediaEvent::Finished { packets, .. })) => {
                    assert_eq!(packets, 10 + tail as u64);
                    finished += 1;
                }
                other => panic!("{other:?}"),
            }
        }
        for h in handles.values() {
            pump.stop(*h);
        }
        let mut stopped = 0;
        while stopped < 20 {
            if let Some(MediaEvent::Stopped { packets, .. }) = events.recv().await {
                assert_eq!(packets, 10 + tail as u64);
                stopped += 1;
            }
        }
        let stats = pump.shutdown();
        assert_eq!(stats.rtp_sent, 20 * (10 + tail as u64));
        assert_eq!(stats.raw, mode == SendMode::Raw);
        assert!(stats.lag.quantile(0.99) < Duration::from_millis(50));
    });
}

#[test]
fn raw_mode_sends_from_each_calls_port() {
    run(SendMode::Raw, 42000);
}

#[test]
fn per_socket_mode_sends_from_each_calls_port() {
    run(SendMode::PerSocket, 44000);
}

#[test]
fn dtmf_from_the_peer_and_foreign_packets_dropped() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut cfg = PumpConfig::new("127.0.0.1".parse().unwrap());
        cfg.loops = 1;
        cfg.port_min = 46000;
        cfg.port_max = 46999;
        cfg.send_mode = SendMode::PerSocket;
        let (pump, mut events) = MediaPump::start(cfg).unwrap();
        let port = pump.bind_port().unwrap();
        let our = port.port();
        let h = pump.start_media(
            MediaStart {
                token: 9,
                remote_rtp: peer.local_addr().unwrap(),
                remote_rtcp: None,
                rtcp_mux: true,
                prompt: prompt(2000),
                params: StreamParams {
                    payload_type: 0,
                    ssrc: 5,
                    first_seq: 1,
                    first_timestamp: 0,
                    play_count: 1,
                    gap_frames: 0,
                },
                clock_rate: 8000,
                telephone_event_pt: Some(101),
                latch: Default::default(),
                srtp: None,
                idle: false,
            },
            port,
        );
        let to = format!("127.0.0.1:{our}");
        let ev = |seq: u16, end: bool, ssrc: u32| {
            let mut p = vec![0x80, 101];
            p.extend_from_slice(&seq.to_be_bytes());
            p.extend_from_slice(&800u32.to_be_bytes());
            p.extend_from_slice(&ssrc.to_be_bytes());
            p.extend_from_slice(&[3, if end { 0x8a } else { 0x0a }, 0x03, 0x20]);
            p
        };
        peer.send_to(&ev(1, false, 77), &to).unwrap();
        // Another source port on the same host with another SSRC: RTP injection, dropped.
        let intruder = UdpSocket::bind("127.0.0.1:0").unwrap();
        intruder.send_to(&ev(2, true, 78), &to).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        for s in 3..6 {
            peer.send_to(&ev(s, true, 77), &to).unwrap();
        }
        let got = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                if let Some(MediaEvent::Dtmf { token, event }) = events.recv().await {
                    return (token, event.digit);
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(got, (9, '3'));
        // A receiver report about our stream, muxed on the RTP port (the answer had
        // rtcp-mux): accepted from the peer, its loss and jitter recorded.
        let mut rr = vec![0x81, 201, 0, 7, 0, 0, 0, 77];
        rr.extend_from_slice(&5u32.to_be_bytes());
        rr.extend_from_slice(&[3, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 80, 0, 0, 0, 0, 0, 0, 0, 0]);
        peer.send_to(&rr, &to).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        pump.stop(h);
        let stats = pump.shutdown();
        assert_eq!(stats.dropped_source, 1);
        // Four telephone-event packets from the peer and the RR.
        assert_eq!(stats.received, 5);
    });
}

//! The media pump over loopback, about what it receives and where it sends: STUN before the
//! first RTP never locks the source (linphone's ICE checks), symmetric RTP latches onto the
//! callee's real address and sends there, the SDP policy refuses it, and every stream's
//! packets arrive in sequence with each pacing loop pinned to its CPU.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use codecs::{Codec, EncodeSettings, PreparedAudio};
use engine::media::{MediaLatch, StreamParams};
use engine::net::{MediaEvent, MediaPump, MediaStart, PumpConfig, PumpStats, SendMode};

fn prompt(ms: u32) -> Arc<codecs::Prompt> {
    let n = (8 * ms) as usize;
    let samples: Vec<i16> = (0..n)
        .map(|i| ((i as f32 * 0.07).sin() * 6000.0) as i16)
        .collect();
    let wav = codecs::wav::to_wav_bytes(&samples, 8000).unwrap();
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

fn start(token: u64, remote: SocketAddr, ms: u32, latch: MediaLatch) -> MediaStart {
    MediaStart {
        token,
        remote_rtp: remote,
        remote_rtcp: None,
        rtcp_mux: true,
        prompt: prompt(ms),
        params: StreamParams {
            payload_type: 0,
            ssrc: 5000 + token as u32,
            first_seq: 65500,
            first_timestamp: 0,
            play_count: 1,
            gap_frames: 0,
        },
        clock_rate: 8000,
        telephone_event_pt: Some(101),
        latch,
        srtp: None,
        idle: false,
    }
}

fn pump(loops: usize) -> (MediaPump, tokio::sync::mpsc::UnboundedReceiver<MediaEvent>) {
    let mut cfg = PumpConfig::new("127.0.0.1".parse().unwrap());
    cfg.loops = loops;
    // Port 0 ranges are not allowed: pick a range from a free port, bound per test.
    let base = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        / 2
        * 2;
    let base = if base > 60000 { 20000 } else { base };
    cfg.port_min = base;
    cfg.port_max = base + 3000;
    cfg.send_mode = SendMode::PerSocket;
    cfg.realtime = false;
    MediaPump::start(cfg).unwrap()
}

/// An RFC 4733 event packet (digit 3) from `ssrc`.
fn dtmf(seq: u16, end: bool, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 101];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&800u32.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[3, if end { 0x8a } else { 0x0a }, 0x03, 0x20]);
    p
}

/// A STUN Binding Request (RFC 8489), as an ICE agent sends before its media.
fn stun_binding() -> Vec<u8> {
    let mut v = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    v.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    v
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn first_digit(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<MediaEvent>,
) -> Option<char> {
    tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match events.recv().await {
                Some(MediaEvent::Dtmf { event, .. }) => return event.digit,
                Some(_) => continue,
                None => return '?',
            }
        }
    })
    .await
    .ok()
}

#[test]
fn stun_before_the_first_rtp_does_not_lock_the_source() {
    runtime().block_on(async {
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (pump, mut events) = pump(1);
        let port = pump.bind_port().unwrap();
        let to = format!("127.0.0.1:{}", port.port());
        let rtcp_to = format!("127.0.0.1:{}", port.port() + 1);
        let h = pump.start_media(
            start(1, peer.local_addr().unwrap(), 2000, MediaLatch::Sdp),
            port,
        );
        // linphone: STUN to the RTP and RTCP ports first, then its RTP (here key presses).
        peer.send_to(&stun_binding(), &to).unwrap();
        peer.send_to(&stun_binding(), &rtcp_to).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        for s in 1..5 {
            peer.send_to(&dtmf(s, s > 2, 77), &to).unwrap();
        }
        assert_eq!(
            first_digit(&mut events).await,
            Some('3'),
            "the key reached us"
        );
        pump.stop(h);
        let stats = pump.shutdown();
        assert_eq!(stats.not_rtp, 2, "both STUN messages counted");
        assert_eq!(stats.dropped_source, 0, "no real packet dropped");
        assert_eq!(stats.received, 4);
    });
}

/// Receives RTP on `sock` for `dur`; returns the packets' SSRCs.
fn rtp_ssrcs(sock: &UdpSocket, dur: Duration) -> Vec<u32> {
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let end = Instant::now() + dur;
    let mut buf = [0u8; 2048];
    let mut out = Vec::new();
    while Instant::now() < end {
        if let Ok(n) = sock.recv(&mut buf) {
            if n >= 12 && !(192..=223).contains(&buf[1]) {
                out.push(u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]));
            }
        }
    }
    out
}

/// The callee's SDP says 127.0.0.2 (the address it believes it has), its packets come from
/// 127.0.0.1 (where its NAT put it). Returns what reached the callee's real socket, the key
/// if one was decoded, and the pump's totals.
fn nat_callee(latch: MediaLatch) -> (usize, Option<char>, PumpStats) {
    runtime().block_on(async {
        let advertised = UdpSocket::bind("127.0.0.2:0").unwrap();
        let real = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (pump, mut events) = pump(1);
        let port = pump.bind_port().unwrap();
        let to = format!("127.0.0.1:{}", port.port());
        let h = pump.start_media(
            start(2, advertised.local_addr().unwrap(), 3000, latch),
            port,
        );
        for s in 1..5 {
            real.send_to(&dtmf(s, s > 2, 88), &to).unwrap();
        }
        let digit = first_digit(&mut events).await;
        let got = rtp_ssrcs(&real, Duration::from_millis(300));
        assert!(got.iter().all(|&s| s == 5002));
        pump.stop(h);
        (got.len(), digit, pump.shutdown())
    })
}

#[test]
fn symmetric_rtp_latches_onto_the_callee_behind_nat_and_sends_there() {
    let (to_real, digit, stats) = nat_callee(MediaLatch::Symmetric);
    assert_eq!(digit, Some('3'), "the callee's key is heard");
    assert!(
        to_real >= 10,
        "our RTP follows the callee: {to_real} packets"
    );
    assert_eq!(stats.relatched, 1);
    assert_eq!(stats.dropped_source, 0);
}

#[test]
fn sdp_latching_refuses_media_from_another_host() {
    let (to_real, digit, stats) = nat_callee(MediaLatch::Sdp);
    assert_eq!(digit, None);
    assert_eq!(to_real, 0, "our RTP goes to the SDP address only");
    assert_eq!(stats.dropped_source, 4);
    assert_eq!(stats.relatched, 0);
}

#[test]
fn every_stream_arrives_in_sequence_from_pinned_loops() {
    runtime().block_on(async {
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        sink.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let dest = sink.local_addr().unwrap();
        // Read from the start, on a thread of its own, so the socket buffer never overflows.
        let reader = std::thread::spawn(move || {
            let mut seen: Vec<(u32, u16)> = Vec::new();
            let mut buf = [0u8; 2048];
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                let Ok(n) = sink.recv(&mut buf) else { break };
                if n >= 12 && !(192..=223).contains(&buf[1]) {
                    let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
                    seen.push((ssrc, u16::from_be_bytes([buf[2], buf[3]])));
                }
            }
            seen
        });
        let (pump, mut events) = pump(2);
        let streams = 200u64;
        let p = prompt(600);
        for token in 0..streams {
            let port = pump.bind_port().unwrap();
            let mut s = start(token, dest, 20, MediaLatch::Sdp);
            s.prompt = p.clone();
            pump.start_media(s, port);
        }
        let mut finished = 0;
        while finished < streams {
            if let Ok(Some(MediaEvent::Finished { .. })) =
                tokio::time::timeout(Duration::from_secs(5), events.recv()).await
            {
                finished += 1;
            } else {
                panic!("{finished} of {streams} streams finished");
            }
        }
        let mut last: HashMap<u32, u16> = HashMap::new();
        let mut counts: HashMap<u32, usize> = HashMap::new();
        let mut reordered = 0;
        for (ssrc, seq) in reader.join().unwrap() {
            if let Some(&prev) = last.get(&ssrc) {
                // Behind the previous packet: overtaken (a loss would be a jump forward).
                if (seq.wrapping_sub(prev) as i16) <= 0 {
                    reordered += 1;
                }
            }
            last.insert(ssrc, seq);
            *counts.entry(ssrc).or_default() += 1;
        }
        assert_eq!(counts.len(), streams as usize, "one stream per call");
        // 30 frames of message, then the finish hold's silence tail.
        let tail = engine::media::pacer::FINISH_HOLD.as_millis() as usize / 20;
        assert!(counts.values().all(|&c| c == 30 + tail), "{counts:?}");
        assert_eq!(reordered, 0, "packets out of sequence within a stream");
        let stats = pump.shutdown();
        assert_eq!(stats.pinned_loops, 2, "each pacing loop stays on one CPU");
    });
}

/// Counts the samples recorded into `dialer_rtp_send_lag_seconds`.
#[derive(Default)]
struct LagSamples(Arc<std::sync::atomic::AtomicU64>);

struct Count(Arc<std::sync::atomic::AtomicU64>);

impl metrics::HistogramFn for Count {
    fn record(&self, _value: f64) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl metrics::Recorder for LagSamples {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::noop()
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(
        &self,
        key: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        if key.name() == "dialer_rtp_send_lag_seconds" {
            metrics::Histogram::from_arc(Arc::new(Count(self.0.clone())))
        } else {
            metrics::Histogram::noop()
        }
    }
}

/// The lag histogram gets a sample per send batch, not per packet: the recorder holds every
/// sample until a scrape, so per-packet samples grew memory with the traffic (FINDINGS,
/// "Memory over a long campaign").
#[test]
fn send_lag_is_sampled_per_batch_not_per_packet() {
    runtime().block_on(async {
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rec = LagSamples::default();
        // The loop takes its metric handles when it is made, on this thread.
        let (pump, mut events) = metrics::with_local_recorder(&rec, || pump(1));
        let p = prompt(400);
        for token in 0..200u64 {
            let port = pump.bind_port().unwrap();
            let mut s = start(token, sink.local_addr().unwrap(), 20, MediaLatch::Sdp);
            s.prompt = p.clone();
            pump.start_media(s, port);
        }
        let mut finished = 0;
        while finished < 200 {
            match tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
                Ok(Some(MediaEvent::Finished { .. })) => finished += 1,
                Ok(Some(_)) => {}
                other => panic!("{other:?} after {finished} streams"),
            }
        }
        let stats = pump.shutdown();
        let samples = rec.0.load(std::sync::atomic::Ordering::Relaxed);
        let tail = engine::media::pacer::FINISH_HOLD.as_millis() as u64 / 20;
        assert_eq!(stats.rtp_sent, 200 * (20 + tail));
        // 200 streams over 20 phase slots: about ten packets leave per batch.
        assert!(
            samples * 4 < stats.rtp_sent,
            "{samples} lag samples for {} packets",
            stats.rtp_sent
        );
    });
}

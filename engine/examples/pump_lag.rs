//! Send lag of the media pump under load: `cargo run -p engine --example pump_lag -- CALLS SECS`
//! starts CALLS streams of a 60 s PCMA prompt to a loopback sink for SECS seconds and prints the
//! pump's send-lag quantiles (actual send instant minus schedule) and CPU. Used to check that a
//! change to the pump does not slow its send path (compare before and after on one machine).

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::Duration;

use codecs::{Codec, EncodeSettings, PreparedAudio};
use engine::media::StreamParams;
use engine::net::{MediaPump, MediaStart, PumpConfig};

fn main() {
    let mut args = std::env::args().skip(1);
    let calls: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let secs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dest = sink.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while sink.recv_from(&mut buf).is_ok() {}
    });
    let pcm: Vec<f32> = (0..8000 * 60)
        .map(|i| (i as f32 * 0.05).sin() * 0.3)
        .collect();
    let audio = codecs::Audio {
        samples: pcm,
        sample_rate: 8000,
        source_channels: 1,
        format: codecs::SourceFormat::WavInt(16),
    };
    let prompt = Arc::new(
        PreparedAudio::from_audio(audio, [0; 32], &EncodeSettings::default())
            .unwrap()
            .encode(Codec::Pcma, 20)
            .unwrap(),
    );
    let mut cfg = PumpConfig::new("127.0.0.1".parse().unwrap());
    cfg.port_min = 50000;
    cfg.port_max = 59999;
    let (pump, _events) = MediaPump::start(cfg).unwrap();
    for token in 0..calls {
        let port = pump.bind_port().unwrap();
        pump.start_media(
            MediaStart {
                token,
                remote_rtp: dest,
                remote_rtcp: None,
                rtcp_mux: true,
                prompt: prompt.clone(),
                params: StreamParams {
                    payload_type: 8,
                    ssrc: token as u32,
                    first_seq: 0,
                    first_timestamp: 0,
                    play_count: 1,
                    gap_frames: 0,
                },
                clock_rate: 8000,
                telephone_event_pt: Some(101),
                latch: Default::default(),
                idle: false,
            },
            port,
        );
    }
    std::thread::sleep(Duration::from_secs(secs));
    let s = pump.shutdown();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "calls {calls} secs {secs} raw {} packets {} lag p50 {:.3} ms p99 {:.3} ms max {:.3} ms loop cpu {:.2} s",
        s.raw,
        s.rtp_sent,
        ms(s.lag.quantile(0.5)),
        ms(s.lag.quantile(0.99)),
        ms(s.lag.max()),
        s.loop_cpu.as_secs_f64()
    );
}

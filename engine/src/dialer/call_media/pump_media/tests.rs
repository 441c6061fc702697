//! Tests of the pump-backed media: frames chosen per answer, share played.
use super::*;
use crate::sip::sdp::Direction;

fn answer(codec: &'static str, pt: u8, clock: u32, ptime: u32) -> NegotiatedMedia {
    NegotiatedMedia {
        remote_rtp: "127.0.0.1:9".parse().unwrap(),
        remote_rtcp: None,
        rtcp_mux: true,
        payload_type: pt,
        codec,
        clock_rate: clock,
        fmtp: None,
        ptime_ms: ptime,
        maxptime_ms: None,
        telephone_event_pt: None,
        direction: Direction::SendRecv,
        srtp: None,
    }
}

/// The answer's codec and packet time pick the frames: prepared ones from the cache, a
/// packet time the codec cannot do falls back to 20 ms, one not prepared is streamed at
/// 20 ms while it is encoded once in the background.
#[tokio::test]
async fn frames_follow_the_negotiated_codec_and_ptime() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("m.wav");
    let s: Vec<i16> = (0..8000)
        .map(|i| ((i as f32 * 0.2).sin() * 8000.0) as i16)
        .collect();
    std::fs::write(&wav, codecs::wav::to_wav_bytes(&s, 8000).unwrap()).unwrap();
    let (media, _notes) = PumpMedia::start(PumpMediaConfig {
        ip: "127.0.0.1".parse().unwrap(),
        port_min: 47000,
        port_max: 47999,
        prompt_cache: Some(dir.path().join("cache")),
        ptimes: vec![30],
    })
    .unwrap();
    let prompt = wav.to_str().unwrap();
    media.prepare(prompt).unwrap();
    let f = |m: NegotiatedMedia| {
        media
            .frames_for(prompt, m.codec.parse().unwrap(), &m)
            .unwrap()
    };
    let p = f(answer("PCMA", 8, 8000, 30));
    assert_eq!(
        (p.codec(), p.ptime_ms(), p.frame(0).unwrap().len()),
        (Codec::Pcma, 30, 240)
    );
    let p = f(answer("G722", 9, 8000, 20));
    assert_eq!((p.codec(), p.frame(0).unwrap().len()), (Codec::G722, 160));
    let p = f(answer("opus", 111, 48000, 30));
    assert_eq!(
        (p.codec(), p.ptime_ms()),
        (Codec::Opus, 20),
        "no 30 ms Opus frame"
    );
    // 40 ms was not prepared: 20 ms now, 40 ms once the background encoding is done.
    let p = f(answer("PCMU", 0, 8000, 40));
    assert_eq!(p.ptime_ms(), 20);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if f(answer("PCMU", 0, 8000, 40)).ptime_ms() == 40 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "40 ms never encoded");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[test]
fn share_played() {
    assert_eq!(played_permille(0, 0), 0);
    assert_eq!(played_permille(50, 200), 250);
    assert_eq!(played_permille(300, 200), 1000);
}

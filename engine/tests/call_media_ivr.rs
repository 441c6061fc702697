//! `PumpMedia` for menus over real sockets on loopback: an idle call streams silence, a
//! playlist (prompt from memory, tone, silence) replaces it and its end is noted, a key is
//! noted from its first RFC 4733 packet, and the callee's audio is recorded decoded from PCMA,
//! G.722 and Opus, bounded by the maximum.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use codecs::{Codec, Prompt};
use engine::dialer::call_media::{CallMedia, MediaNote, PlayItem, PumpMedia, PumpMediaConfig};
use engine::media::MediaLatch;
use engine::sip::sdp::{Direction, NegotiatedMedia};
use tokio::sync::mpsc::UnboundedReceiver;

fn media(port_min: u16) -> (std::sync::Arc<PumpMedia>, UnboundedReceiver<MediaNote>) {
    PumpMedia::start(PumpMediaConfig {
        ip: "127.0.0.1".parse().unwrap(),
        port_min,
        port_max: port_min + 999,
        prompt_cache: None,
        ptimes: vec![],
    })
    .unwrap()
}

fn answer(callee: &UdpSocket, codec: &'static str, pt: u8, clock: u32) -> NegotiatedMedia {
    NegotiatedMedia {
        remote_rtp: callee.local_addr().unwrap(),
        remote_rtcp: None,
        rtcp_mux: true,
        payload_type: pt,
        codec,
        clock_rate: clock,
        fmtp: None,
        ptime_ms: 20,
        maxptime_ms: None,
        telephone_event_pt: Some(101),
        direction: Direction::SendRecv,
    }
}

fn callee() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    s
}

/// The payloads of the next RTP packets the callee receives (RTCP skipped).
fn payloads(sock: &UdpSocket, n: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while out.len() < n {
        let (len, _) = sock.recv_from(&mut buf).expect("RTP from the call");
        if let Ok(r) = rtp_rs::RtpReader::new(&buf[..len]) {
            if r.payload_type() < 64 || r.payload_type() > 95 {
                out.push(r.payload().to_vec());
            }
        }
    }
    out
}

async fn next_note(notes: &mut UnboundedReceiver<MediaNote>, what: &str) -> MediaNote {
    tokio::time::timeout(Duration::from_secs(5), notes.recv())
        .await
        .unwrap_or_else(|_| panic!("no note: {what}"))
        .unwrap()
}

fn rtp(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 12 + payload.len()];
    let n = rtp_rs::RtpPacketBuilder::new()
        .payload_type(pt)
        .sequence(rtp_rs::Seq::from(seq))
        .timestamp(ts)
        .ssrc(0xCA11)
        .payload(payload)
        .build_into(&mut buf)
        .unwrap();
    buf.truncate(n);
    buf
}

fn crossings(pcm: &[i16]) -> usize {
    pcm.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_play_keys_and_record_over_loopback() {
    let (media, mut notes) = media(43000);
    let sock = callee();
    let port = media.bind().unwrap();
    let to = format!("127.0.0.1:{}", PumpMedia::port_number(&port));
    let m = answer(&sock, "PCMA", 8, 8000);
    media.start_idle(1, port, &m, MediaLatch::Sdp).unwrap();

    // Idle: A-law silence (0xD5) every packet time.
    let idle = payloads(&sock, 5);
    assert!(idle
        .iter()
        .all(|p| p.len() == 160 && p.iter().all(|&b| b == 0xd5)));

    // A prompt from memory (a 400 Hz "TTS" at 16 kHz, levelled), a beep, silence.
    let tts: Vec<i16> = (0..16000 * 3 / 10)
        .map(|i| ((i as f32 * 2.0 * std::f32::consts::PI * 400.0 / 16000.0).sin() * 3000.0) as i16)
        .collect();
    media.prepare_pcm("welcome", &tts, 16000).unwrap();
    assert!(media
        .play(1, vec![PlayItem::Prompt("nope".into())], 1)
        .is_err());
    let t_play = Instant::now();
    media
        .play(
            1,
            vec![
                PlayItem::Prompt("welcome".into()),
                PlayItem::Tone { hz: 1000, ms: 200 },
                PlayItem::Silence { ms: 100 },
            ],
            7,
        )
        .unwrap();
    let mut got = Vec::new();
    // Until the first non-silent packet, then the 15 + 10 + 5 packets of the playlist.
    loop {
        let p = payloads(&sock, 1).remove(0);
        if p.iter().any(|&b| b != 0xd5) {
            got.push(p);
            break;
        }
        assert!(t_play.elapsed() < Duration::from_secs(2));
    }
    got.extend(payloads(&sock, 29));
    let pcm: Vec<i16> = got
        .concat()
        .iter()
        .map(|&b| codecs::g711::decode_alaw(b))
        .collect();
    let c = crossings(&pcm[400..2000]);
    assert!((150..=170).contains(&c), "400 Hz prompt first: {c}");
    let c = crossings(&pcm[2500..3900]);
    assert!((340..=360).contains(&c), "then the 1 kHz beep: {c}");
    assert!(
        pcm[4100..4800].iter().all(|s| s.unsigned_abs() < 16),
        "then silence"
    );
    let note = next_note(&mut notes, "played").await;
    assert_eq!(note, MediaNote::Played { token: 1, id: 7 });
    println!("playlist of 600 ms noted after {:?}", t_play.elapsed());

    // A key from its first packet alone (no end packet ever).
    let mut ev = rtp(101, 1, 4000, &[9, 0x0a, 0, 0]);
    let t_key = Instant::now();
    sock.send_to(&ev, &to).unwrap();
    let note = next_note(&mut notes, "digit").await;
    assert_eq!(
        note,
        MediaNote::Digit {
            token: 1,
            digit: '9'
        }
    );
    println!("key noted {:?} after its first packet", t_key.elapsed());
    ev[12 + 1] = 0x8a;
    sock.send_to(&ev, &to).unwrap();

    // Record: 1 s of a 700 Hz A-law tone with one packet lost, stopped by stop_record.
    let sent = Prompt::tone(Codec::Pcma, 20, 700, 1000).unwrap();
    media.record(1, Duration::from_secs(5)).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    for n in 0..sent.frame_count() {
        if n != 10 {
            let pkt = rtp(
                8,
                100 + n as u16,
                9000 + 160 * n as u32,
                sent.frame(n).unwrap(),
            );
            sock.send_to(&pkt, &to).unwrap();
        }
        if n % 10 == 9 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    media.stop_record(1);
    let MediaNote::Recorded { token, pcm, rate } = next_note(&mut notes, "recorded").await else {
        panic!("not a recording")
    };
    assert_eq!((token, rate), (1, 8000));
    let mut want = sent.decode().unwrap();
    want[1600..1760].fill(0);
    assert_eq!(
        pcm.as_slice(),
        want.as_slice(),
        "the callee's audio, lost packet as silence"
    );

    // Bounded by its maximum without stop_record.
    media.record(1, Duration::from_millis(200)).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    for n in 0..20 {
        let pkt = rtp(
            8,
            300 + n as u16,
            90_000 + 160 * n as u32,
            sent.frame(n).unwrap(),
        );
        sock.send_to(&pkt, &to).unwrap();
    }
    let MediaNote::Recorded { pcm, .. } = next_note(&mut notes, "bounded").await else {
        panic!("not a recording")
    };
    assert_eq!(pcm.len(), 1600);
    media.stop(1);
    assert!(matches!(
        next_note(&mut notes, "stopped").await,
        MediaNote::Stopped { token: 1, .. }
    ));
}

/// G.722 and Opus callees are recorded decoded at their own rates, exactly as a decoder of
/// the packets sent hears them; a recording running when the call stops is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wideband_recordings_are_decoded_at_the_codec_rate() {
    let (media, mut notes) = media(44000);
    for (token, codec, name, pt, clock) in [
        (2u64, Codec::G722, "G722", 9u8, 8000u32),
        (3, Codec::Opus, "opus", 111, 48000),
    ] {
        let sock = callee();
        let port = media.bind().unwrap();
        let to = format!("127.0.0.1:{}", PumpMedia::port_number(&port));
        media
            .start_idle(
                token,
                port,
                &answer(&sock, name, pt, clock),
                MediaLatch::Sdp,
            )
            .unwrap();
        payloads(&sock, 1);
        media.record(token, Duration::from_secs(10)).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let sent = Prompt::tone(codec, 20, 700, 400).unwrap();
        let step = sent.timestamp_step();
        for n in 0..sent.frame_count() {
            let pkt = rtp(pt, n as u16, step * n as u32, sent.frame(n).unwrap());
            sock.send_to(&pkt, &to).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        media.stop(token);
        let MediaNote::Recorded {
            token: t,
            pcm,
            rate,
        } = next_note(&mut notes, name).await
        else {
            panic!("{name}: not a recording")
        };
        assert_eq!((t, rate), (token, codec.sample_rate()));
        assert_eq!(pcm.as_slice(), sent.decode().unwrap().as_slice(), "{name}");
        assert!(matches!(
            next_note(&mut notes, "stopped").await,
            MediaNote::Stopped { .. }
        ));
    }
}

//! Virtual-time tests of the pacer.

use super::*;
use crate::media::rtcp;
use codecs::{Codec, EncodeSettings, PreparedAudio};

fn prompt(ms: u32) -> Arc<Prompt> {
    let rate = 8000u32;
    let n = (rate * ms / 1000) as usize;
    let samples: Vec<i16> = (0..n)
        .map(|i| ((i as f32 * 0.05).sin() * 8000.0) as i16)
        .collect();
    let mut wav = Vec::new();
    {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::new(std::io::Cursor::new(&mut wav), spec).unwrap();
        for s in samples {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
    }
    let settings = EncodeSettings {
        normalize: false,
        ..EncodeSettings::default()
    };
    let prepared = PreparedAudio::from_bytes(&wav, &settings).unwrap();
    Arc::new(prepared.encode(Codec::Pcmu, 20).unwrap())
}

fn spec(token: u64, p: &Arc<Prompt>, play_count: u32, gap_frames: u32) -> StreamSpec {
    StreamSpec {
        token,
        route: token as u32,
        dest: "127.0.0.1:4000".parse().unwrap(),
        rtcp_dest: Some("127.0.0.1:4001".parse().unwrap()),
        prompt: p.clone(),
        params: StreamParams {
            payload_type: 0,
            ssrc: 0x1234_0000 + token as u32,
            first_seq: 65530,
            first_timestamp: u32::MAX - 400,
            play_count,
            gap_frames,
        },
        clock_rate: 8000,
        idle: false,
    }
}

/// Runs the pacer on virtual time, ticking every `tick` (with a jitter pattern), and
/// collects (send time ns, item, packet bytes).
fn run(
    pacer: &mut Pacer,
    until: Duration,
    tick_us: u64,
    mut on: impl FnMut(u64, &BatchItem, &[u8]),
) {
    let mut batch = Batch::new(64, 0);
    let t0 = pacer.origin();
    let mut t = 0u64;
    let mut k = 0u64;
    while t <= until.as_nanos() as u64 {
        let now = t0 + Duration::from_nanos(t);
        loop {
            let done = pacer.fill(now, &mut batch);
            for (i, it) in batch.items().iter().enumerate() {
                on(t, it, batch.packet(i));
            }
            batch.clear();
            if done {
                break;
            }
        }
        // Irregular ticks: the loop wakes late by up to 0.7 ms now and then.
        k += 1;
        t += tick_us * 1000 + (k * 7919 % 7) * 100_000;
    }
}

#[test]
fn an_hour_of_media_without_drift() {
    // A one-minute prompt played 60 times back to back: one hour, 180,000 packets.
    let p = prompt(60_000);
    let t0 = Instant::now();
    let mut pacer = Pacer::new(PacerConfig::default(), t0);
    pacer.add(t0, spec(1, &p, 60, 0)).unwrap();
    let mut n = 0u64;
    let mut first_due = None;
    let mut last_seq = None;
    let mut max_lag = 0u64;
    let mut srs = 0;
    run(&mut pacer, Duration::from_secs(3601), 1, |t, it, pkt| {
        if it.kind == PacketKind::Rtcp {
            srs += 1;
            return;
        }
        let fd = *first_due.get_or_insert(it.due_ns);
        assert_eq!(
            it.due_ns,
            fd + n * 20_000_000,
            "packet {n} due off schedule"
        );
        assert!(t >= it.due_ns, "sent early");
        max_lag = max_lag.max(t - it.due_ns);
        let r = rtp_rs::RtpReader::new(pkt).unwrap();
        assert_eq!(
            r.timestamp(),
            (u32::MAX - 400).wrapping_add(160 * n as u32),
            "timestamp of packet {n}"
        );
        assert_eq!(r.mark(), n == 0);
        if let Some(s) = last_seq {
            assert_eq!(u16::from(r.sequence_number()), u16::wrapping_add(s, 1));
        }
        last_seq = Some(u16::from(r.sequence_number()));
        n += 1;
    });
    // An hour of audio, then the silence tail of the finish hold on the same schedule.
    let tail = FINISH_HOLD.as_millis() as u64 / 20;
    assert_eq!(n, 180_000 + tail);
    assert!(max_lag < 1_000_000, "lag {max_lag} ns");
    // An SR every ~5 s plus the final SR+BYE.
    assert!((700..=740).contains(&srs), "{srs} RTCP packets");
    let ev = pacer.poll_event().unwrap();
    assert!(
        matches!(ev, PacerEvent::Finished { token: 1, packets, .. } if packets == 180_000 + tail),
        "{ev:?}"
    );
    assert_eq!(pacer.active(), 0);
}

#[test]
fn simultaneous_answers_spread_over_phases() {
    let p = prompt(1000);
    let t0 = Instant::now();
    let mut pacer = Pacer::new(PacerConfig::default(), t0);
    for i in 0..5000 {
        pacer.add(t0, spec(i, &p, 1, 0)).unwrap();
    }
    let mut per_slot = std::collections::HashMap::<u64, usize>::new();
    run(&mut pacer, Duration::from_millis(200), 1, |_, it, _| {
        if it.kind == PacketKind::Rtp {
            *per_slot.entry(it.due_ns / 1_000_000).or_default() += 1;
        }
    });
    // 5000 streams over 20 phases: 250 per 1 ms slot, every slot busy.
    assert!(per_slot.values().all(|&c| c == 250), "{per_slot:?}");
    assert_eq!(per_slot.len(), 200);
}

#[test]
fn play_count_with_gap_and_stream_end() {
    let p = prompt(200); // 10 frames
    let t0 = Instant::now();
    let mut pacer = Pacer::new(PacerConfig::default(), t0);
    let id = pacer.add(t0, spec(7, &p, 3, 5)).unwrap();
    let mut rtp = Vec::new();
    let mut rtcp = Vec::new();
    run(
        &mut pacer,
        Duration::from_secs(2),
        1,
        |_, it, pkt| match it.kind {
            PacketKind::Rtp => {
                let r = rtp_rs::RtpReader::new(pkt).unwrap();
                rtp.push((it.due_ns, r.timestamp(), r.mark()));
            }
            PacketKind::Rtcp => rtcp.push(pkt.to_vec()),
        },
    );
    // Three plays, then the finish hold's silence tail (unmarked, on schedule).
    let tail = FINISH_HOLD.as_millis() as usize / 20;
    assert_eq!(rtp.len(), 30 + tail);
    assert!(rtp[30..].iter().all(|p| !p.2));
    assert_eq!((rtp[30].0 - rtp[29].0) / 20_000_000, 1);
    // Plays start at slots 0, 15, 30 (10 frames + 5 gap frames) with the marker bit.
    let marks: Vec<usize> = (0..30).filter(|&i| rtp[i].2).collect();
    assert_eq!(marks, vec![0, 10, 20]);
    let d = |i: usize| (rtp[i].0 - rtp[0].0) / 20_000_000;
    assert_eq!((d(10), d(20), d(29)), (15, 30, 39));
    assert_eq!(rtp[10].1.wrapping_sub(rtp[0].1), 15 * 160);
    // The end: one SR + SDES + BYE compound, then the event; the id is then stale.
    let last = rtcp.last().unwrap();
    let kinds: Vec<u8> = rtcp::Compound::new(last).map(|p| p.unwrap().pt).collect();
    assert_eq!(kinds, vec![200, 202, 203]);
    assert_eq!(
        pacer.poll_event(),
        Some(PacerEvent::Finished {
            id,
            token: 7,
            packets: 30 + tail as u64
        })
    );
    assert_eq!(pacer.stop(id), None);
    assert_eq!(pacer.poll_timeout(), None);
}

#[test]
fn stop_midway_counts_exactly_and_frees_the_slot() {
    let p = prompt(1000);
    let t0 = Instant::now();
    let mut pacer = Pacer::new(PacerConfig::default(), t0);
    let a = pacer.add(t0, spec(1, &p, 1, 0)).unwrap();
    let mut batch = Batch::new(64, 0);
    let mut sent = 0;
    for ms in 0..=100u64 {
        pacer.fill(t0 + Duration::from_millis(ms), &mut batch);
        sent += batch.len();
        batch.clear();
    }
    assert_eq!(pacer.stop(a), Some(sent as u64));
    assert_eq!(sent, 6);
    for ms in 101..=200u64 {
        pacer.fill(t0 + Duration::from_millis(ms), &mut batch);
        assert!(batch.is_empty());
    }
    assert!(pacer.poll_event().is_none());
    // The slot is reused with a new generation: the old id stays stale.
    let b = pacer
        .add(t0 + Duration::from_millis(200), spec(2, &p, 1, 0))
        .unwrap();
    assert_ne!(a, b);
    assert_eq!(pacer.stop(a), None);
    assert_eq!(pacer.entries.len(), 1);
}

#[test]
fn a_small_batch_resumes_where_it_stopped() {
    let p = prompt(100);
    let t0 = Instant::now();
    let mut pacer = Pacer::new(
        PacerConfig {
            phases: 1,
            ..PacerConfig::default()
        },
        t0,
    );
    for i in 0..100 {
        pacer.add(t0, spec(i, &p, 1, 0)).unwrap();
    }
    let mut batch = Batch::new(8, 0);
    let mut rounds = 0;
    let mut total = 0;
    while !pacer.fill(t0, &mut batch) {
        total += batch.len();
        batch.clear();
        rounds += 1;
    }
    total += batch.len();
    assert_eq!(total, 100);
    assert!(rounds >= 14);
}

#[test]
fn ntp_conversion() {
    assert_eq!(ntp_add(0, 1_500_000_000), (1 << 32) | (1 << 31));
    let t = std::time::UNIX_EPOCH + Duration::from_secs(1);
    assert_eq!(ntp_from_system(t) >> 32, 2_208_988_801);
}

#[test]
fn finished_waits_for_the_callees_playout() {
    // 10 frames of 20 ms: the last packet is due at 180 ms, its audio ends at 200 ms; the
    // event (and so the BYE) comes FINISH_HOLD later, not 20 ms after the last packet.
    let p = prompt(200);
    let t0 = Instant::now();
    let mut pacer = Pacer::new(PacerConfig::default(), t0);
    let id = pacer.add(t0, spec(3, &p, 1, 0)).unwrap();
    let hold_packets = FINISH_HOLD.as_millis() as u64 / 20;
    let mut batch = Batch::new(64, 0);
    let mut last_rtp_ms = 0;
    let mut finished_at = None;
    for ms in 0..=1000u64 {
        pacer.fill(t0 + Duration::from_millis(ms), &mut batch);
        if batch.items().iter().any(|it| it.kind == PacketKind::Rtp) {
            last_rtp_ms = ms;
        }
        batch.clear();
        if let Some(ev) = pacer.poll_event() {
            // The message's 10 packets and the tail's.
            assert_eq!(ev.packets(), Some(10 + hold_packets));
            finished_at.get_or_insert(ms);
        }
    }
    // The message's last packet at 180 ms, then silence through the hold (a jitter buffer
    // that moves only as packets arrive plays the message out): its last at 180 + hold.
    let hold = FINISH_HOLD.as_millis() as u64;
    assert_eq!(last_rtp_ms, 180 + hold);
    assert!(hold >= 400, "a jitter buffer needs time to play out");
    assert_eq!(finished_at, Some(200 + hold));
    assert_eq!(pacer.stop(id), None, "finished: the id is stale");

    // Stopped (the callee hung up) during the hold: the count is exact and no event follows.
    let id = pacer
        .add(t0 + Duration::from_millis(1000), spec(4, &p, 1, 0))
        .unwrap();
    let mut sent = 0;
    for ms in 1000..=1300u64 {
        pacer.fill(t0 + Duration::from_millis(ms), &mut batch);
        sent += batch
            .items()
            .iter()
            .filter(|it| it.kind == PacketKind::Rtp)
            .count() as u64;
        batch.clear();
    }
    assert!(pacer.poll_event().is_none());
    assert!(pacer.poll_timeout().is_some(), "the hold keeps a wake-up");
    assert!(sent > 10, "the message and some of the tail");
    assert_eq!(
        pacer.stop(id),
        Some(sent),
        "the message and the tail so far"
    );
    for ms in 1300..=2000u64 {
        pacer.fill(t0 + Duration::from_millis(ms), &mut batch);
    }
    assert!(pacer.poll_event().is_none());
    assert_eq!(pacer.poll_timeout(), None);
}

#[test]
fn set_dest_moves_the_rest_of_the_stream() {
    let p = prompt(200);
    let t0 = Instant::now();
    let mut pacer = Pacer::new(PacerConfig::default(), t0);
    let id = pacer.add(t0, spec(5, &p, 1, 0)).unwrap();
    let nat: SocketAddr = "203.0.113.9:61000".parse().unwrap();
    let mut dests = Vec::new();
    let mut batch = Batch::new(64, 0);
    for ms in 0..=400u64 {
        if ms == 50 {
            assert!(pacer.set_dest(id, nat, None));
        }
        pacer.fill(t0 + Duration::from_millis(ms), &mut batch);
        dests.extend(batch.items().iter().map(|it| it.dest));
        batch.clear();
    }
    // 10 frames, then the silence tail (until 400 ms: 11 of its packets), all moved.
    assert_eq!(dests.len(), 21);
    assert!(dests[..3].iter().all(|d| d.port() == 4000));
    assert!(dests[3..].iter().all(|d| *d == nat));
}

/// An idle stream sends silence every packet time and never finishes; a playlist given at
/// any instant goes out from its first frame at the stream's next due packet (within one
/// packet time, on the same schedule), its end is a `Played` event at the instant its last
/// packet leaves, and silence follows on schedule.
#[test]
fn idle_then_playlist_switches_within_one_packet_time() {
    use crate::media::stream::Segment;
    let silence = Arc::new(Prompt::silence(Codec::Pcmu, 20, 20).unwrap());
    let msg = prompt(100);
    let mut pacer = Pacer::new(PacerConfig::default(), Instant::now());
    let t0 = pacer.origin();
    let id = pacer
        .add(
            t0,
            StreamSpec {
                idle: true,
                ..spec(3, &silence, 1, 0)
            },
        )
        .unwrap();
    let mut batch = Batch::new(64, 0);
    let mut sent: Vec<(u64, u64, Vec<u8>)> = Vec::new();
    let mut played_at = None;
    for ms in 0..=400u64 {
        let now = t0 + Duration::from_millis(ms);
        if ms == 137 {
            assert!(pacer.play(id, vec![Segment::once(msg.clone())], silence.clone(), 42));
        }
        pacer.fill(now, &mut batch);
        for (i, it) in batch.items().iter().enumerate() {
            if it.kind == PacketKind::Rtp {
                let r = rtp_rs::RtpReader::new(batch.packet(i)).unwrap();
                sent.push((ms, it.due_ns, r.payload().to_vec()));
            }
        }
        batch.clear();
        while let Some(ev) = pacer.poll_event() {
            match ev {
                PacerEvent::Played { token, play_id, .. } => {
                    assert_eq!((token, play_id), (3, 42));
                    played_at = Some(ms);
                }
                other => panic!("{other:?}"),
            }
        }
    }
    // One packet every 20 ms throughout, on one schedule.
    assert!((20..=21).contains(&sent.len()), "{}", sent.len());
    for w in sent.windows(2) {
        assert_eq!(w[1].1 - w[0].1, 20_000_000);
    }
    let first_msg = sent
        .iter()
        .position(|p| p.2 == msg.frame(0).unwrap())
        .unwrap();
    assert!(sent[first_msg].0 >= 137 && sent[first_msg].0 < 137 + 20);
    for k in 0..5 {
        assert_eq!(sent[first_msg + k].2, msg.frame(k).unwrap());
    }
    assert_eq!(played_at, Some(sent[first_msg + 4].0));
    assert!(sent[first_msg + 5..]
        .iter()
        .all(|p| p.2 == silence.frame(0).unwrap()));
    assert!(pacer.poll_timeout().is_some(), "idle streams keep going");
    assert_eq!(pacer.active(), 1);

    // Another packet time is refused; a stopped stream is gone.
    let wrong = Arc::new(Prompt::silence(Codec::Pcmu, 30, 30).unwrap());
    assert!(!pacer.play(id, vec![Segment::once(wrong)], silence.clone(), 1));
    assert_eq!(pacer.stop(id), Some(sent.len() as u64));
    assert!(!pacer.play(id, vec![], silence, 2));
}

//! The media pump's per-packet work in user space (issue 10, Deliver 4): what one pacing loop
//! does for every RTP packet before the kernel takes the batch — the pacer finds the due
//! streams on its wheel and writes each packet (RTP header and payload) into the batch, then
//! the raw sender writes the IPv4 and UDP headers in front. No system call runs here: the
//! kernel's share is measured by `loadtest bench` (see README, media table).
//!
//! `pump/slot/N` is one 1 ms slot of a loop playing N streams of 20 ms G.711 (N/20 packets
//! a slot), on virtual time; the throughput is in packets. Streams start spread over the 20
//! phase slots and play a 30 s prompt, so every slot holds the same work; the entries are
//! touched once a packet time, as in the pump, so the cache misses of a large table count.
//!
//! Run: `cargo bench -p engine --bench media_pump -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use codecs::{Codec, Prompt};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use engine::media::{Batch, Pacer, PacerConfig, StreamParams, StreamSpec};
use engine::net::pump::write_ipv4_udp;

/// A pacer with `n` streams of `prompt` started at `origin`, and the batch the pump gives it.
fn loaded(n: u32, prompt: &Arc<Prompt>, origin: Instant) -> (Pacer, Batch) {
    let cfg = PacerConfig {
        headroom: 28,
        ..PacerConfig::default()
    };
    let batch = Batch::new(cfg.batch_size, cfg.headroom);
    let mut pacer = Pacer::new(cfg, origin);
    for i in 0..n {
        let spec = StreamSpec {
            token: u64::from(i),
            route: i,
            dest: SocketAddr::from(([127, 0, 0, 1], 31000)),
            rtcp_dest: Some(SocketAddr::from(([127, 0, 0, 1], 31001))),
            prompt: prompt.clone(),
            params: StreamParams {
                payload_type: 0,
                ssrc: 0x1000 + i,
                first_seq: i as u16,
                first_timestamp: i.wrapping_mul(7919),
                play_count: 1,
                gap_frames: 0,
            },
            clock_rate: 8000,
            idle: false,
        };
        pacer.add(origin, spec).expect("20 ms fits the wheel");
    }
    (pacer, batch)
}

/// One slot: every due packet into the batch, headers in front, as the raw sender does.
fn slot(pacer: &mut Pacer, batch: &mut Batch, now: Instant) -> usize {
    let mut packets = 0;
    loop {
        let done = pacer.fill(now, batch);
        for i in 0..batch.len() {
            let it = batch.items()[i];
            let (dst, dport) = match it.dest {
                SocketAddr::V4(d) => (*d.ip(), d.port()),
                SocketAddr::V6(_) => (Ipv4Addr::LOCALHOST, 0),
            };
            let len = usize::from(it.len);
            let p = batch.with_headroom_mut(i);
            write_ipv4_udp(&mut p[..28], [127, 0, 0, 1], dst, 20000, dport, len);
        }
        packets += batch.len();
        black_box(batch.items());
        batch.clear();
        if done {
            return packets;
        }
    }
}

fn pump_slot(c: &mut Criterion) {
    let prompt = Arc::new(Prompt::tone(Codec::Pcmu, 20, 440, 30_000).expect("tone"));
    let mut g = c.benchmark_group("pump/slot");
    for n in [2_500u32, 4_000] {
        let origin = Instant::now();
        let (mut pacer, mut batch) = loaded(n, &prompt, origin);
        // Past the phase spreading: every slot from here holds n/20 packets.
        let mut ms = 40u64;
        for t in 0..ms {
            slot(&mut pacer, &mut batch, origin + Duration::from_millis(t));
        }
        g.throughput(Throughput::Elements(u64::from(n / 20)));
        g.bench_function(n.to_string(), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    ms += 1;
                    // The prompt lasts 30 s: start over (untimed) before it ends.
                    if ms > 25_000 {
                        (pacer, batch) = loaded(n, &prompt, origin);
                        ms = 40;
                        for t in 0..ms {
                            slot(&mut pacer, &mut batch, origin + Duration::from_millis(t));
                        }
                    }
                    let now = origin + Duration::from_millis(ms);
                    let t0 = Instant::now();
                    black_box(slot(&mut pacer, &mut batch, now));
                    spent += t0.elapsed();
                }
                spent
            })
        });
    }
    g.finish();
}

criterion_group!(benches, pump_slot);
criterion_main!(benches);

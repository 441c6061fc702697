//! Cost of answering-machine and beep detection per call (issue 14 item 3): what the media pump
//! pays to analyse one answered call's first seconds.
//!
//! `amd/call/*` runs [`Amd`] over a whole synthetic call in 20 ms packets until it decides
//! (a person: 1.8 s of audio; a machine: 1.8 s; nobody: 2.5 s of silence); `beep/5s/*` runs the
//! beep detector over 5 s of speech-like sound with a beep, at 8 kHz (G.711) and 48 kHz (Opus).
//! Divide by the seconds of audio for the cost per second of a call.
//!
//! Run: `cargo bench -p engine --bench amd -- --warm-up-time 1 --measurement-time 3`

use std::f32::consts::TAU;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use engine::media::amd::{Amd, AmdConfig, BeepDetector};

/// A speech-like sound (harmonics of a wavering fundamental, syllable envelope), a tone or
/// silence, with a little deterministic noise, as 16-bit PCM.
fn signal(rate: u32, parts: &[(&str, u32)]) -> Vec<i16> {
    let mut out = Vec::new();
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for &(kind, ms) in parts {
        let n = (rate * ms / 1000) as usize;
        let mut phase = 0.0f32;
        for i in 0..n {
            let t = i as f32 / rate as f32;
            let s = match kind {
                "speech" => {
                    phase += TAU * (130.0 + 20.0 * (TAU * 3.0 * t).sin()) / rate as f32;
                    let v: f32 = (3..12).map(|h| (phase * h as f32).sin() / h as f32).sum();
                    0.25 * (0.6 + 0.4 * (TAU * 4.0 * t).sin()) * v
                }
                "beep" => 0.3 * (TAU * 1000.0 * t).sin(),
                _ => 0.0,
            };
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let noise = ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.002;
            out.push(((s + noise) * 32767.0) as i16);
        }
    }
    out
}

fn amd_call(c: &mut Criterion) {
    let cfg = AmdConfig::default();
    let calls = [
        (
            "human",
            signal(
                8000,
                &[("silence", 400), ("speech", 600), ("silence", 3000)],
            ),
        ),
        (
            "machine",
            signal(8000, &[("silence", 300), ("speech", 4000)]),
        ),
        ("nobody", signal(8000, &[("silence", 4000)])),
    ];
    let mut group = c.benchmark_group("amd/call");
    for (name, pcm) in &calls {
        group.bench_function(*name, |b| {
            b.iter(|| {
                let mut amd = Amd::new(&cfg, 8000);
                pcm.chunks(160).find_map(|p| amd.push(black_box(p)))
            })
        });
    }
    group.finish();
}

fn beep(c: &mut Criterion) {
    let mut group = c.benchmark_group("beep/5s");
    for rate in [8000u32, 48000] {
        let pcm = signal(rate, &[("speech", 4000), ("beep", 400), ("silence", 600)]);
        let packet = (rate / 50) as usize;
        group.throughput(Throughput::Elements(pcm.len() as u64));
        group.bench_function(format!("{rate}Hz"), |b| {
            b.iter(|| {
                let mut det = BeepDetector::new(rate);
                pcm.chunks(packet)
                    .filter_map(|p| det.push(black_box(p)))
                    .count()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, amd_call, beep);
criterion_main!(benches);

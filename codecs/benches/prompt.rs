//! Cost of preparing a message (import + level + resample + encode, per codec) and of fetching a
//! frame from a shared prompt on the media hot path.
//!
//! The input is a 60 s, 44.1 kHz 16-bit mono WAV (the speech fixture, resampled and repeated),
//! i.e. a typical upload. Throughput is reported in source bytes; "× real time" is
//! 60 s divided by the time per iteration.

use std::hint::black_box;

use codecs::{Codec, EncodeSettings, Prompt};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn sixty_seconds_wav() -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/speech_16k.wav");
    let r = hound::WavReader::open(path).expect("fixture");
    let s: Vec<f32> = r
        .into_samples::<i16>()
        .map(|x| f32::from(x.unwrap()) / 32768.0)
        .collect();
    let up = codecs::resample::resample(&s, 16000, 44100).unwrap();
    let n = 44100 * 60;
    let pcm: Vec<i16> = up
        .iter()
        .cycle()
        .take(n)
        .map(|&x| (x * 32767.0) as i16)
        .collect();
    codecs::wav::to_wav_bytes(&pcm, 44100).unwrap()
}

fn encode_60s(c: &mut Criterion) {
    let wav = sixty_seconds_wav();
    let settings = EncodeSettings::default();
    let mut g = c.benchmark_group("import_encode_60s");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(wav.len() as u64));
    for codec in Codec::ALL {
        g.bench_function(codec.name(), |b| {
            b.iter(|| Prompt::from_bytes(black_box(&wav), codec, 20, &settings).unwrap())
        });
    }
    g.finish();
}

fn frame_fetch(c: &mut Criterion) {
    let wav = sixty_seconds_wav();
    let settings = EncodeSettings::default();
    let mut g = c.benchmark_group("frame_fetch");
    for codec in [Codec::Pcma, Codec::Opus] {
        let p = Prompt::from_bytes(&wav, codec, 20, &settings).unwrap();
        let frames = p.frame_count();
        let mut n = 0usize;
        g.bench_function(codec.name(), |b| {
            b.iter(|| {
                n = (n + 7919) % (frames + 1); // scattered, including one past the end
                black_box(p.frame(black_box(n)).map_or(0, |f| f.len()))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, encode_60s, frame_fetch);
criterion_main!(benches);

//! Fuzzes the upload path: WAV/MP3 import, levelling and G.711 encoding of whatever decodes.
//! Any panic is a bug (DESIGN.md principle 6). The maximum duration is kept small so that each
//! input stays cheap; the corpus in `fuzz/corpus/audio_import/` is replayed by
//! `cargo test -p codecs --test fuzz_corpus`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    codecs::fuzz_entry(data);
});

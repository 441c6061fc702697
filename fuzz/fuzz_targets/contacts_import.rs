//! Fuzzes the contacts CSV import and phone-number normalisation. The body lives in
//! `engine::model::contacts::fuzz_exercise` so that `engine/tests/fuzz_replay.rs` replays
//! the corpus through the same code in the normal test run.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    engine::model::contacts::fuzz_exercise(data);
});

//! Fuzzes the Digest challenge parser and the answer built from whatever parses. The body
//! lives in `engine::sip::auth::fuzz_exercise` so that `engine/tests/fuzz_replay_digest.rs`
//! replays the corpus through the same code in the normal test run.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    engine::sip::auth::fuzz_exercise(data);
});

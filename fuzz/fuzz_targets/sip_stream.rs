//! Fuzzes the SIP-over-TCP framer (message size limit, CRLF keep-alives, 413 replies). The
//! body lives in `engine::sip::stream::fuzz_exercise` so that
//! `engine/tests/fuzz_replay_stream.rs` replays the corpus in the normal test run.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    engine::sip::stream::fuzz_exercise(data);
});

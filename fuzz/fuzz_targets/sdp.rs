//! Fuzzes the SDP parser and offer/answer negotiation. The body lives in
//! `engine::sip::sdp::fuzz_exercise` so that `engine/tests/fuzz_replay_sdp.rs` replays the
//! corpus through the same code in the normal test run.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    engine::sip::sdp::fuzz_exercise(data);
});

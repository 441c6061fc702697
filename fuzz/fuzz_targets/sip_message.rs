//! Fuzzes the SIP message codec: datagram and stream parsing, stream framing, every typed
//! header accessor, and building a response to any request that parses. The body lives in
//! `engine::sip::fuzzing` so that `engine/tests/fuzz_replay_sip.rs` replays the corpus
//! through the same code in the normal test run.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    engine::sip::fuzzing::exercise(data);
});

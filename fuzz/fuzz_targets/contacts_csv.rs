//! Fuzzes the contacts CSV importer (numbers parsed to E.164, bad rows reported). The same
//! body runs in `engine/tests/fuzz_replay_stream.rs`, which replays the corpus in the
//! normal test run.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (ok, _bad) = engine::dialer::contacts::parse_csv(data, "IT");
    for c in ok {
        assert!(c.number.starts_with('+'), "not E.164: {}", c.number);
        assert!(c.number[1..].bytes().all(|b| b.is_ascii_digit()), "not E.164: {}", c.number);
    }
});

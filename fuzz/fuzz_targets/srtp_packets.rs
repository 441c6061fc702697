//! SRTP and SRTCP over hostile bytes: refused packets never panic and are left untouched;
//! anything protected unprotects to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    engine::media::srtp::fuzz_exercise(data);
});

//! Every media-side parser over hostile bytes: RTCP compounds and report blocks, the RTP
//! header, RFC 4733 telephone-events (through the DTMF decoder's state machine) and SIP INFO
//! DTMF bodies. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    engine::media::rtcp::fuzz_exercise(data);
});

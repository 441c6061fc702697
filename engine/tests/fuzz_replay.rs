//! Replays every engine fuzz corpus (`fuzz/corpus/<target>`) through the same code its fuzz
//! target runs, so that each seed and each input that once crashed a parser is checked by
//! the normal test run, without nightly or cargo-fuzz.

use std::path::PathBuf;

/// The files of one corpus, sorted, as bytes.
pub fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).unwrap();
            (p, data)
        })
        .collect()
}

/// Runs `exercise` on every file of `target`'s corpus; fails on the first panic.
fn replay(target: &str, at_least: usize, exercise: fn(&[u8])) {
    let files = corpus(target);
    assert!(
        files.len() >= at_least,
        "{target}: corpus too small: {} files",
        files.len()
    );
    for (path, data) in &files {
        let outcome = std::panic::catch_unwind(|| exercise(data));
        assert!(outcome.is_ok(), "{} panics its parser", path.display());
    }
    println!("{target}: replayed {} corpus files", files.len());
}

#[test]
fn replay_sip_message_corpus() {
    replay("sip_message", 61, engine::sip::fuzzing::exercise);
}

#[test]
fn replay_sdp_corpus() {
    replay("sdp", 12, engine::sip::sdp::fuzz_exercise);
}

#[test]
fn replay_digest_challenge_corpus() {
    replay("digest_challenge", 10, engine::sip::auth::fuzz_exercise);
}

#[test]
fn replay_media_corpus() {
    // RTP, RTCP, RFC 4733 events and INFO DTMF bodies.
    replay("rtp_packets", 15, engine::media::rtcp::fuzz_exercise);
}

#[test]
fn replay_contacts_import_corpus() {
    // Contacts CSV import and phone-number normalisation.
    replay(
        "contacts_import",
        12,
        engine::model::contacts::fuzz_exercise,
    );
}

#[test]
fn replay_srtp_corpus() {
    // SRTP and SRTCP packets, refused or round-tripped.
    replay("srtp_packets", 8, engine::media::srtp::fuzz_exercise);
}

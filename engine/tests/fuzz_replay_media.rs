//! Replays the media fuzz corpus (`fuzz/corpus/rtp_packets`: RTP, RTCP, RFC 4733 events, INFO
//! DTMF bodies) through the code the `rtp_packets` fuzz target runs, so every seed and every
//! input that once crashed a media parser is checked by the normal test run.

use std::path::PathBuf;

#[test]
fn replay_media_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/rtp_packets");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(files.len() >= 15, "corpus too small: {} files", files.len());
    for file in &files {
        let data = std::fs::read(file).unwrap();
        let outcome = std::panic::catch_unwind(|| engine::media::rtcp::fuzz_exercise(&data));
        assert!(
            outcome.is_ok(),
            "{} panics the media parsers",
            file.display()
        );
    }
}

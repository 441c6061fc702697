//! Replays the SDP fuzz corpus (`fuzz/corpus/sdp`) through the same code the fuzz target
//! runs, so every seed and every input that once crashed the SDP parser or the negotiation
//! is checked by the normal test run, without nightly or cargo-fuzz.

use std::path::PathBuf;

#[test]
fn replay_sdp_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/sdp");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(files.len() >= 12, "corpus too small: {} files", files.len());
    for file in &files {
        let data = std::fs::read(file).unwrap();
        let outcome = std::panic::catch_unwind(|| engine::sip::sdp::fuzz_exercise(&data));
        assert!(outcome.is_ok(), "{} panics the SDP code", file.display());
    }
    println!("replayed {} corpus files", files.len());
}

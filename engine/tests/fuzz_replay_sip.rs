//! Replays the SIP parser's fuzz corpus (`fuzz/corpus/sip_message`) through the same code
//! the fuzz target runs, so that every seed and every input that once crashed the codec is
//! checked by the normal test run, without nightly or cargo-fuzz.

use std::path::PathBuf;

#[test]
fn replay_sip_message_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/sip_message");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(files.len() >= 61, "corpus too small: {} files", files.len());
    for file in &files {
        let data = std::fs::read(file).unwrap();
        let outcome = std::panic::catch_unwind(|| engine::sip::fuzzing::exercise(&data));
        assert!(outcome.is_ok(), "{} panics the codec", file.display());
    }
    println!("replayed {} corpus files", files.len());
}

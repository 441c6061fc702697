//! Replays the `audio_import` fuzz corpus (`fuzz/corpus/audio_import/`) in the normal test run,
//! so every input that ever crashed or grew coverage stays a regression test without cargo-fuzz.

use std::path::PathBuf;

#[test]
fn replay_audio_import_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/audio_import");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    assert!(entries.len() >= 10, "corpus has {} files", entries.len());
    let mut encoded = 0;
    for path in &entries {
        let data = std::fs::read(path).unwrap();
        if codecs::fuzz_entry(&data) {
            encoded += 1;
        }
    }
    // Valid seeds must still encode (a regression that rejected everything would pass silently).
    assert!(encoded >= 3, "only {encoded} corpus files encoded");
}

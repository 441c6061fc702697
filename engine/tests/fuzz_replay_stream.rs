//! Replays the corpus of the `sip_stream` fuzz target (the SIP-over-TCP framer,
//! `fuzz/corpus/sip_stream`) through the same code the target runs, so that every seed and
//! every input that once broke it is checked by the normal test run. (The contacts CSV
//! importer has its target, `contacts_import`, replayed by `fuzz_replay.rs`.)

use std::path::PathBuf;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
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

fn replay(target: &str, at_least: usize, exercise: fn(&[u8])) {
    let files = corpus(target);
    assert!(files.len() >= at_least, "{target}: corpus too small");
    for (path, data) in &files {
        let outcome = std::panic::catch_unwind(|| exercise(data));
        assert!(outcome.is_ok(), "{} breaks {target}", path.display());
    }
}

#[test]
fn replay_sip_stream_corpus() {
    replay("sip_stream", 12, engine::sip::stream::fuzz_exercise);
}

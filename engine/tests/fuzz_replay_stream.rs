//! Replays the corpora of the `sip_stream` (TCP framer) and `contacts_csv` fuzz targets
//! (`fuzz/corpus/<target>`) through the same code the targets run, so that every seed and
//! every input that once broke them is checked by the normal test run.

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

/// The body of `fuzz/fuzz_targets/contacts_csv.rs`.
fn contacts_csv(data: &[u8]) {
    let (ok, _bad) = engine::dialer::contacts::parse_csv(data, "IT");
    for c in ok {
        assert!(c.number.starts_with('+'), "not E.164: {}", c.number);
        assert!(
            c.number[1..].bytes().all(|b| b.is_ascii_digit()),
            "not E.164: {}",
            c.number
        );
    }
}

#[test]
fn replay_sip_stream_corpus() {
    replay("sip_stream", 12, engine::sip::stream::fuzz_exercise);
}

#[test]
fn replay_contacts_csv_corpus() {
    replay("contacts_csv", 10, contacts_csv);
}

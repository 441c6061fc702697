//! A bounded, deterministic mutation fuzzer for the SIP codec that runs in the normal test
//! run (cargo-fuzz needs nightly; this does not). A seeded xorshift generator mutates the
//! seed corpus (`fuzz/corpus/sip_message`) with bit flips, truncations, splices, byte
//! insertions of SIP delimiters and dictionary tokens, and runs every mutant through
//! `engine::sip::fuzzing::exercise`, the body of the cargo-fuzz target. Same seed, same
//! mutants: a failure names the mutant's number and is reproduced by rerunning.

use std::path::PathBuf;

const SEED: u64 = 0x5eed_51b0_dead_beef;
const MUTANTS: usize = 20_000;

const DELIMITERS: &[u8] = b"\r\n:;<>\"%@[]\\,=? \t/";
const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\r\n\r\n",
    b"\r\n ",
    b"SIP/2.0",
    b"SIP/2.0/UDP ",
    b"Via: ",
    b"v: ",
    b"To: ",
    b"From: ",
    b"Call-ID: ",
    b"CSeq: 1 INVITE",
    b"Content-Length: ",
    b"l: 99999",
    b"Max-Forwards: 256",
    b"Record-Route: ",
    b";branch=",
    b";tag=",
    b";received=",
    b";rport",
    b";lr",
    b"sip:",
    b"sips:",
    b"tel:",
    b"[2001:db8::1]",
    b"[::ffff:1.2.3.4]:5060",
    b"<sip:a@b>",
    b"\"q\\\"",
    b"%0",
    b"%zz",
    b"4294967296",
    b"\xff\xfe",
    b"\xc3\xa9",
];

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn corpus() -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/sip_message");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn mutate(rng: &mut XorShift, seeds: &[Vec<u8>], data: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let len = data.len();
        match rng.below(9) {
            // Flip one bit.
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            // Replace a byte with a delimiter.
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = DELIMITERS[rng.below(DELIMITERS.len())];
            }
            // Insert a delimiter.
            2 => {
                let i = rng.below(len + 1);
                data.insert(i, DELIMITERS[rng.below(DELIMITERS.len())]);
            }
            // Insert a dictionary token.
            3 => {
                let i = rng.below(len + 1);
                let t = TOKENS[rng.below(TOKENS.len())];
                data.splice(i..i, t.iter().copied());
            }
            // Truncate.
            4 if len > 0 => data.truncate(rng.below(len)),
            // Delete a range.
            5 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(16)).min(len);
                data.drain(a..b);
            }
            // Splice in a range of another seed.
            6 => {
                let other = &seeds[rng.below(seeds.len())];
                if !other.is_empty() {
                    let a = rng.below(other.len());
                    let b = (a + 1 + rng.below(64)).min(other.len());
                    let i = rng.below(len + 1);
                    data.splice(i..i, other[a..b].iter().copied());
                }
            }
            // Duplicate a range (repeated headers, repeated parameters).
            7 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(48)).min(len);
                let copy = data[a..b].to_vec();
                let i = rng.below(len + 1);
                data.splice(i..i, copy);
            }
            // Replace a digit run's digit with a 9 (overflowing numbers).
            _ if len > 0 => {
                let i = rng.below(len);
                if data[i].is_ascii_digit() {
                    data.splice(i..i, b"99999".iter().copied());
                }
            }
            _ => {}
        }
    }
}

#[test]
fn mutated_corpus_never_panics_the_codec() {
    let seeds = corpus();
    assert!(!seeds.is_empty());
    let mut rng = XorShift(SEED);
    let mut parsed = 0usize;
    let mut data = Vec::new();
    for n in 0..MUTANTS {
        data.clear();
        data.extend_from_slice(&seeds[rng.below(seeds.len())]);
        mutate(&mut rng, &seeds, &mut data);
        let outcome = std::panic::catch_unwind(|| engine::sip::fuzzing::exercise(&data));
        if outcome.is_err() {
            panic!(
                "mutant #{n} (seed {SEED:#x}) panics the codec; bytes:\n{:?}",
                String::from_utf8_lossy(&data)
            );
        }
        parsed += usize::from(engine::sip::parse(&data).is_ok());
    }
    println!("{MUTANTS} mutants, {parsed} still parse");
    // Most mutants must stay close enough to SIP to reach the header accessors.
    assert!(parsed > MUTANTS / 10, "only {parsed} mutants parse");
}

#!/bin/sh
# The side-by-side benchmark in one command (see loadtest/README.md). Takes about ten minutes;
# extra arguments go to `loadtest bench` (e.g. --sizes 1000,5000).
set -eu
cd "$(dirname "$0")/.."
cargo build --release -p control-api --bin dialer
cargo build --release -p loadtest
mkdir -p target/bench
sox -n -r 8000 -b 16 -c 1 target/bench/prompt30.wav synth 30 sine 200-3400 vol 0.5
exec target/release/loadtest bench --prompt target/bench/prompt30.wav --out loadtest/results "$@"

#!/usr/bin/env bash
# HEP with the collector down versus no HEP (issue 17 acceptance): N calls with
# `dialer call` against SIPp's built-in UAS on loopback, once without HEP and once with
# DIALER_HEP_ADDRESS pointing at a UDP port where nothing listens (every capture is sent
# and refused by the kernel). Prints one line per run: achieved CPS, elapsed time, RTP send
# lag p50/p99/max and outcomes. A third run with a counting collector shows the captures
# really leave.
#
#   ops/bench/hep_down.sh                  # N=1000, target/debug/dialer
#   N=2000 DIALER_BIN=target/release/dialer ops/bench/hep_down.sh
set -euo pipefail
N=${N:-1000}
CPS=${CPS:-100}
CONC=${CONC:-200}
BIN=${DIALER_BIN:-target/debug/dialer}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A 1 s prompt (8 kHz mono WAV) written without extra tools.
python3 - "$work/prompt.wav" <<'PY'
import math, struct, sys, wave
w = wave.open(sys.argv[1], "wb"); w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000)
w.writeframes(b"".join(struct.pack("<h", int(9000*math.sin(2*math.pi*440*i/8000))) for i in range(8000)))
w.close()
PY

run() {
  local mode=$1 sport mport pid
  sport=$(free_port); mport=$(free_port)
  sipp -sn uas -i 127.0.0.1 -mi 127.0.0.1 -p "$sport" -mp "$mport" -m "$N" \
       -timeout 120s -nostdin >/dev/null 2>&1 &
  pid=$!
  sleep 0.5
  local env=(DIALER_LOG=error) hport lpid=
  hport=$(free_port)
  if [ "$mode" != no-hep ]; then
    env+=(DIALER_HEP_ADDRESS="udp:127.0.0.1:$hport" DIALER_HEP_CAPTURE_ID=1)
  fi
  if [ "$mode" = hep-collector-up ]; then
    # A collector that counts what arrives, to show the captures really leave.
    python3 -c '
import signal, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", int(sys.argv[1])))
n = 0
def done(*_):
    print(f"collector received {n} HEP packets", flush=True); sys.exit(0)
signal.signal(signal.SIGTERM, done)
while True:
    s.recv(70000); n += 1
' "$hport" > "$work/collector.out" &
    lpid=$!
    sleep 0.3
  fi
  env "${env[@]}" "$BIN" call --trunk "sip:127.0.0.1:$sport" \
      --bind "127.0.0.1:$(free_port)" --to +390771286891 --prompt "$work/prompt.wav" \
      --calls "$N" --concurrency "$CONC" --cps "$CPS" > "$work/$mode.out" 2> "$work/$mode.err" || true
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if [ -n "$lpid" ]; then
    kill "$lpid"; wait "$lpid" 2>/dev/null || true
    cat "$work/collector.out"
  fi
  python3 - "$mode" "$work/$mode.out" <<'PY'
import json, sys
mode, path = sys.argv[1], sys.argv[2]
lines = [json.loads(l) for l in open(path) if l.strip().startswith("{")]
s = next(l["summary"] for l in reversed(lines) if "summary" in l)
m = s.get("media", {})
print(f'{mode:20s} calls {s["calls"]} outcomes {s["outcomes"]} cps {s["cps"]:.1f} '
      f'elapsed {s["elapsed_ms"]/1000:.1f}s send lag p50 {m.get("send_lag_p50_ms", 0):.2f} '
      f'p99 {m.get("send_lag_p99_ms", 0):.2f} max {m.get("send_lag_max_ms", 0):.2f} ms')
PY
}

run no-hep
run hep-collector-down
run hep-collector-up

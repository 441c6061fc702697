#!/usr/bin/env python3
"""Signalling at rate: `dialer call` against SIPp's UAC, each against a fresh `sipp -sn uas`.

For each rate R (default 1000 2000 5000) and each UAC, one bounded run of R x SECS calls on
loopback, one run at a time. Reports per run: calls, failed, the achieved rate over the
INVITEs' span (from the UAS's per-second statistics: calls divided by the time between the
first and the last second in which INVITEs arrived), retransmissions seen by the UAS (its
screen dump: requests received again plus its own resends), and CPU per call from the UAC's
rusage (for the dialer, minus its media pump's own loop CPU, which it reports).

Usage: loadtest/signalling.py [--rates 1000,2000,5000] [--secs 10] [--dialer PATH]
Writes JSON lines to stdout. Needs sipp and sox. Not part of the test suite.
"""
import argparse, csv, glob, json, os, re, resource, socket, subprocess, sys, tempfile, time


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def run_rusage(cmd, timeout, stderr=None, **kw):
    """Runs cmd (its stderr to the file `stderr` when given), returns (stdout, rusage, wall
    seconds)."""
    t0 = time.monotonic()
    err = open(stderr, "wb") if stderr else subprocess.DEVNULL
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, **kw)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
    wall = time.monotonic() - t0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return out.decode(errors="replace"), ru, wall


def uas_stats(work):
    """Calls and INVITE span from the UAS's per-second CSV; retransmissions from its screen."""
    rows = []
    for f in glob.glob(os.path.join(work, "uas*.csv")):
        with open(f) as fh:
            rows = list(csv.DictReader(fh, delimiter=";"))
    calls, span = 0, None
    if rows:
        key = next(k for k in rows[0] if k.startswith("IncomingCall(C)"))
        tkey = next(k for k in rows[0] if k.startswith("ElapsedTime(C)"))

        def secs(v):
            h, m, s = v.split(":")[:3]
            return int(h) * 3600 + int(m) * 60 + float(s.replace(",", "."))

        pts = [(secs(r[tkey]), int(r[key])) for r in rows]
        calls = pts[-1][1]
        a_i = next((i for i, (_, c) in enumerate(pts) if c > 0), None)
        b_i = next((i for i, (_, c) in enumerate(pts) if c >= calls), None)
        if a_i is not None and b_i is not None:
            if b_i - 1 > a_i:
                # Whole sampling intervals inside the ramp only (1 s resolution otherwise).
                (ta, ca), (tb, cb) = pts[a_i], pts[b_i - 1]
                span = (tb - ta) * calls / (cb - ca) if cb > ca else None
            else:
                span = max(pts[b_i][0] - pts[a_i][0] + 1.0, 1.0)
    retrans = 0
    for f in glob.glob(os.path.join(work, "*screen*")):
        for line in open(f, errors="replace"):
            m = re.match(r"\s*(<-+|-+>)\s+(\S+)(.*)", line)
            if not m:
                continue
            nums = [int(t) for t in m.group(3).split() if t.isdigit()]
            if len(nums) >= 2:
                retrans += nums[1]  # columns: Messages, Retrans, ...
    return calls, span, retrans


def start_uas(work, port, calls, secs):
    return subprocess.Popen(
        ["sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(port), "-buff_size", "4194304",
         "-m", str(calls), "-timeout", f"{secs + 50}s", "-nostdin", "-trace_stat", "-fd", "1",
         "-stf", os.path.join(work, "uas.csv"), "-trace_screen",
         "-screen_file", os.path.join(work, "uas_screen.log")],
        cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def one(kind, rate, secs, dialer, prompt):
    work = tempfile.mkdtemp(prefix=f"sig-{kind}-{rate}-")
    port = free_port()
    n = rate * secs
    uas = start_uas(work, port, n, secs)
    time.sleep(0.5)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    media_cpu = 0.0
    failed = None
    summary = None
    if kind == "dialer":
        out, after, wall = run_rusage(
            [dialer, "call", "--trunk", f"sip:127.0.0.1:{port}", "--to", "390771286891",
             "--prompt", prompt, "--calls", str(n), "--concurrency", str(2 * rate),
             "--cps", str(rate), "--bind", "127.0.0.1:0"], timeout=secs + 60,
            stderr=os.path.join(work, "dialer.stderr"))
        for line in out.splitlines():
            try:
                j = json.loads(line)
            except ValueError:
                continue
            if "summary" in j:
                s = summary = j["summary"]
                failed = s["calls"] - s["outcomes"].get("answered", 0)
                media_cpu = s.get("media", {}).get("loop_cpu_seconds", 0.0)
    else:
        out, after, wall = run_rusage(
            ["sipp", "-sn", "uac", "-i", "127.0.0.1", f"127.0.0.1:{port}", "-r", str(rate),
             "-m", str(n), "-l", str(2 * rate), "-buff_size", "4194304", "-nostdin",
             "-timeout", f"{secs + 50}s", "-trace_stat", "-fd", "1",
             "-stf", os.path.join(work, "uac.csv")], timeout=secs + 60, cwd=work)
        for f in glob.glob(os.path.join(work, "uac.csv")):
            rows = list(csv.DictReader(open(f), delimiter=";"))
            if rows:
                k = next(k for k in rows[-1] if k.startswith("FailedCall(C)"))
                failed = int(rows[-1][k])
    try:
        uas.wait(timeout=secs + 60)
    except subprocess.TimeoutExpired:
        uas.terminate()
        uas.wait()
    # RUSAGE_CHILDREN includes the UAS too once reaped: take the UAC's share alone.
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    calls, span, retrans = uas_stats(work)
    return {
        "uac": kind, "rate_asked": rate, "secs": secs, "calls": n, "uas_calls": calls,
        "failed": failed, "rate_over_invite_span": round(calls / span, 1) if span else None,
        "uas_retransmissions": retrans, "wall_s": round(wall, 2),
        "cpu_us_per_call": round((cpu - media_cpu) * 1e6 / n, 1),
        "media_cpu_s": media_cpu, "work": work,
        "dialer_summary": summary,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="1000,2000,5000")
    ap.add_argument("--secs", type=int, default=10)
    ap.add_argument("--dialer", default="target/release/dialer")
    ap.add_argument("--uacs", default="dialer,sipp")
    a = ap.parse_args()
    prompt = os.path.join(tempfile.mkdtemp(prefix="sig-prompt-"), "p.wav")
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", prompt, "synth", "0.1",
                    "sine", "440"], check=True)
    for rate in [int(r) for r in a.rates.split(",")]:
        for kind in a.uacs.split(","):
            print(json.dumps(one(kind, rate, a.secs, a.dialer, prompt)), flush=True)


if __name__ == "__main__":
    sys.exit(main())

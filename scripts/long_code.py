#!/usr/bin/env python3
"""Lists the workspace's Rust files over a line budget and functions over a length budget,
outside tests (the house style: no file over ~600 lines nor function over ~80).

Usage: scripts/long_code.py [--file-lines 600] [--fn-lines 80] [ROOT]

Test code is left out: files under tests/, benches/, examples/, fuzz/, files named
tests*.rs, *_tests.rs or test_*.rs, and `#[cfg(test)]` modules inside a file. Function
length is counted from the `fn` line to its closing brace; braces inside string and char
literals and comments are ignored (a rough lexer, good enough for a report).
"""

import argparse
import os
import re
import sys

SKIP_DIRS = {"target", "tests", "benches", "examples", "fuzz", ".git", "node_modules"}
FN = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)")


def is_test_file(name):
    return (
        name.startswith("tests")
        or name.endswith("_tests.rs")
        or name.startswith("test_")
        or name == "tests.rs"
    )


def code_only(line, state):
    """The line without comments and literals; `state` carries an open block comment or
    raw/plain string across lines."""
    out = []
    i = 0
    while i < len(line):
        c = line[i]
        if state["block"]:
            if line.startswith("*/", i):
                state["block"] = False
                i += 2
            else:
                i += 1
            continue
        if state["str"]:
            if c == "\\" and not state["raw"]:
                i += 2
                continue
            if c == '"' and line.startswith('"' + "#" * state["hashes"], i):
                state["str"] = False
                i += 1 + state["hashes"]
            else:
                i += 1
            continue
        if line.startswith("//", i):
            break
        if line.startswith("/*", i):
            state["block"] = True
            i += 2
            continue
        m = re.match(r'r(#*)"', line[i:])
        if m and (i == 0 or not (line[i - 1].isalnum() or line[i - 1] == "_")):
            state.update(str=True, raw=True, hashes=len(m.group(1)))
            i += len(m.group(0))
            continue
        if c == '"':
            state.update(str=True, raw=False, hashes=0)
            i += 1
            continue
        m = re.match(r"'(\\.|[^\\'])'", line[i:])
        if m:
            i += len(m.group(0))
            continue
        out.append(c)
        i += 1
    return "".join(out)


def scan(path):
    """(lines outside test modules, [(fn name, start line, length)])."""
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")
    state = {"block": False, "str": False, "raw": False, "hashes": 0}
    code = [code_only(line, state) for line in lines]
    fns = []
    test_lines = 0
    depth = 0
    skip_until = None  # depth at which a cfg(test) module closes
    cfg_test = False
    stack = []  # (name, start, depth at open)
    pending = None  # fn seen, body brace not yet
    for n, (raw, c) in enumerate(zip(lines, code), 1):
        if skip_until is not None:
            test_lines += 1
        stripped = raw.strip()
        if stripped.startswith("#[cfg(test)]"):
            cfg_test = True
        m = FN.match(c)
        if m and skip_until is None:
            pending = (m.group(6), n)
        for ch in c:
            if ch == "{":
                if cfg_test and skip_until is None and re.match(r"\s*(pub\s+)?mod\s", c):
                    skip_until = depth
                    test_lines += 1
                if pending is not None:
                    stack.append((pending[0], pending[1], depth))
                    pending = None
                depth += 1
            elif ch == "}":
                depth -= 1
                if stack and stack[-1][2] == depth:
                    name, start, _ = stack.pop()
                    fns.append((name, start, n - start + 1))
                if skip_until is not None and depth == skip_until:
                    skip_until = None
            elif ch == ";" and pending is not None and depth >= 0:
                pending = None  # a declaration without a body
        if stripped and not stripped.startswith("#["):
            if not stripped.startswith("#[cfg(test)]"):
                cfg_test = cfg_test and stripped.startswith("#")
    return len(lines) - test_lines, fns


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--file-lines", type=int, default=600)
    ap.add_argument("--fn-lines", type=int, default=80)
    ap.add_argument("root", nargs="?", default=".")
    a = ap.parse_args()
    files, longs = [], []
    for dirpath, dirnames, filenames in os.walk(a.root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames):
            if not name.endswith(".rs") or is_test_file(name):
                continue
            path = os.path.relpath(os.path.join(dirpath, name), a.root)
            total, fns = scan(os.path.join(dirpath, name))
            if total > a.file_lines:
                files.append((total, path))
            for fname, start, length in fns:
                if length > a.fn_lines:
                    longs.append((length, f"{path}:{start}", fname))
    print(f"files over {a.file_lines} lines (test modules not counted): {len(files)}")
    for total, path in sorted(files, reverse=True):
        print(f"  {total:5}  {path}")
    print(f"functions over {a.fn_lines} lines: {len(longs)}")
    for length, where, fname in sorted(longs, reverse=True):
        print(f"  {length:5}  {where}  {fname}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

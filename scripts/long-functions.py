#!/usr/bin/env python3
"""Lists the functions of src/ longer than a limit (default 80 lines), longest first.

Usage: scripts/long-functions.py [LIMIT]. Test modules are skipped. Braces in
strings and comments are not counted.
"""
import os, re, sys

limit = int(sys.argv[1]) if len(sys.argv) > 1 else 80
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
fn = re.compile(r"^\s*(pub(\([a-z]+\))?\s+)?(const\s+)?(async\s+)?fn\s+(\w+)")
strip = re.compile(r'"(\\.|[^"\\])*"|//.*$|\'(\\.|[^\'\\])\'')
found = []
for d, _, files in os.walk(root):
    for f in files:
        if not f.endswith(".rs"):
            continue
        path = os.path.join(d, f)
        lines = open(path).read().split("\n")
        end = len(lines)
        for i, l in enumerate(lines):
            if re.match(r"^#\[cfg\((all\()?test", l):
                end = i
                break
        i = 0
        while i < end:
            m = fn.match(lines[i])
            if not m:
                i += 1
                continue
            depth, started, j = 0, False, i
            while j < end:
                code = strip.sub("", lines[j])
                if not started and ";" in code and "{" not in code:
                    break  # a declaration without a body
                depth += code.count("{") - code.count("}")
                started = started or "{" in code
                if started and depth <= 0:
                    break
                j += 1
            n = j - i + 1
            if started and n > limit:
                found.append((n, os.path.relpath(path, root), i + 1, m.group(5)))
            i += 1
for n, p, line, name in sorted(found, reverse=True):
    print(f"{n:5} src/{p}:{line} {name}")
print(f"{len(found)} function(s) over {limit} lines")

#!/usr/bin/env python3
"""Checks that Cargo.toml's rust-version is honest: no locked dependency
declares a newer one (cargo metadata gives each package's rust_version).
Run from the repository root; CI runs it."""
import json, subprocess, sys

host = next(l.split(": ", 1)[1] for l in subprocess.check_output(["rustc", "-vV"], text=True)
            .splitlines() if l.startswith("host: "))
meta = json.loads(subprocess.check_output(
    ["cargo", "metadata", "--format-version", "1", "--locked", "--all-features",
     "--filter-platform", host]))
root = next(p for p in meta["packages"] if p["id"] in meta["workspace_members"])
ours = root.get("rust_version")
if not ours:
    sys.exit("Cargo.toml sets no rust-version")

def key(v):
    return tuple(int(x) for x in (v.split(".") + ["0", "0"])[:3])

newer = sorted(
    ((p["name"], p["version"], p["rust_version"]) for p in meta["packages"]
     if p.get("rust_version") and key(p["rust_version"]) > key(ours)),
    key=lambda t: key(t[2]), reverse=True)
if newer:
    for name, version, rv in newer[:10]:
        print(f"{name} {version} needs Rust {rv}", file=sys.stderr)
    sys.exit(f"rust-version = {ours!r} is lower than what {len(newer)} locked dependencies need")
need = max((p["rust_version"] for p in meta["packages"] if p.get("rust_version")), key=key)
print(f"rust-version {ours}: every locked dependency builds with it (the newest needs {need})")

#!/usr/bin/env python3
"""Lists import loops between the files of src/ (the house rule: there are none).

A file imports another when it names a path into it: `crate::a::b` or
`super::x`. Loops are the strongly connected components of that graph with
more than one file. Exit code 1 when there is one.
"""
import os, re, sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
mods = {}  # module path tuple -> file
for d, _, fs in os.walk(root):
    for f in fs:
        if not f.endswith(".rs") or f == "main.rs" and d == root:
            continue
        rel = os.path.relpath(os.path.join(d, f), root)
        parts = rel[:-3].split(os.sep)
        if parts[-1] in ("mod", "lib"):
            parts = parts[:-1]
        if d == root and f != "lib.rs" and os.path.exists(os.path.join(root, "main.rs")) and parts and parts[0] == "cli":
            continue
        mods[tuple(parts)] = rel

def resolve(path):
    for n in range(len(path), -1, -1):
        if tuple(path[:n]) in mods:
            return mods[tuple(path[:n])]
    return None

ident = r"[A-Za-z_][A-Za-z0-9_]*"
edges = {f: set() for f in mods.values()}
for mod, f in mods.items():
    text = open(os.path.join(root, f)).read()
    text = re.sub(r"//[^\n]*", "", text)
    # test modules may use anything
    text = re.split(r"#\[cfg\((all\()?test", text)[0]
    for m in re.finditer(r"\bcrate((?:::" + ident + ")+)", text):
        t = resolve(m.group(1).split("::")[1:])
        if t and t != f:
            edges[f].add(t)
    is_dir_mod = f.endswith("mod.rs") or f == "lib.rs"
    for m in re.finditer(r"\bsuper((?:::" + ident + ")+)", text):
        base = list(mod[:-1]) if not is_dir_mod else list(mod[:-1])
        t = resolve(base + m.group(1).split("::")[1:])
        if t and t != f:
            edges[f].add(t)

# Tarjan
index, low, stack, on, sccs, i = {}, {}, [], set(), [], [0]
sys.setrecursionlimit(10000)
def strong(v):
    index[v] = low[v] = i[0]; i[0] += 1; stack.append(v); on.add(v)
    for w in edges[v]:
        if w not in index:
            strong(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        c = []
        while True:
            w = stack.pop(); on.discard(w); c.append(w)
            if w == v: break
        if len(c) > 1: sccs.append(sorted(c))
for v in edges:
    if v not in index: strong(v)
for c in sccs:
    print(f"loop of {len(c)} files: " + ", ".join(c))
    for a in c:
        print(f"  {a} -> " + ", ".join(sorted(b for b in edges[a] if b in c)))
print(f"{len(mods)} files, {sum(len(e) for e in edges.values())} imports, {len(sccs)} loop(s)")
sys.exit(1 if sccs else 0)

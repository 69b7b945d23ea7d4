#!/usr/bin/env python3
"""Writes the test copy of MaintainX's official OpenAPI spec that Prism mocks.

MaintainX declares binary attachment bodies as `type: object, format: binary`;
Prism cannot validate a raw body against that, so the copy says `type: string`.
Nothing else changes. Usage: maintainx_spec.py SPEC_IN SPEC_OUT
"""
import json
import sys


def fix(node):
    if isinstance(node, dict):
        if node.get("format") == "binary" and node.get("type") == "object":
            node["type"] = "string"
        for v in node.values():
            fix(v)
    elif isinstance(node, list):
        for v in node:
            fix(v)


spec = json.load(open(sys.argv[1]))
fix(spec)
with open(sys.argv[2], "w") as out:
    json.dump(spec, out, separators=(",", ":"))

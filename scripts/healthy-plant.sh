#!/usr/bin/env bash
# The false-order protocol on the simulated plant: healthy runs of DAYS days
# (default 30) at 1 s, 5 s and 10 s rows, three seeds each, replayed through
# configs/demo.toml with the shipped models. Every order on this healthy plant
# is a false one; prints them per run and per 1,000 machine-days.
#   scripts/healthy-plant.sh [DAYS] [OUT_DIR]
# Set PROFILE=release for speed (a 30-day run at 1 s rows is 2.6 M rows), or
# HUMS=path to use a binary built already.
set -euo pipefail
cd "$(dirname "$0")/.."
DAYS=${1:-30}
OUT=${2:-target/healthy-plant}
PROFILE=${PROFILE:-debug}
if [ -z "${HUMS:-}" ]; then
  if [ "$PROFILE" = release ]; then cargo build --release --quiet; else cargo build --quiet; fi
  HUMS="target/$PROFILE/hums"
fi
mkdir -p "$OUT"
for every in 1 5 10; do
  for seed in 1 2 3; do
    run="$OUT/every${every}s-seed$seed"
    "$HUMS" simulate --hours $((DAYS * 24)) --every "$every" --seed "$seed" \
      --start 2026-03-02T00:00:00Z --out "$OUT/healthy.csv" > /dev/null
    "$HUMS" replay --config configs/demo.toml --input "$OUT/healthy.csv" --out "$run" \
      --no-report 2> "$run.log" | tail -1
    rm -f "$OUT/healthy.csv"
  done
done
python3 - "$OUT" "$DAYS" <<'PY'
import glob, json, os, sys
out, days = sys.argv[1], float(sys.argv[2])
machines = 6
total = 0
print(f"{'run':<20} {'orders raised':>13}  warnings")
for run in sorted(glob.glob(os.path.join(out, "every*s-seed*"))):
    if not os.path.isdir(run):
        continue
    raised = [json.loads(l) for l in open(os.path.join(run, "workorders.jsonl"))]
    raised = [o for o in raised if o["event"] == "raised"]
    total += len(raised)
    warns = sum(1 for l in open(run + ".log") if " WARN " in l)
    print(f"{os.path.basename(run):<20} {len(raised):>13}  {warns}")
    for o in raised:
        print(f"    {o['detected_at']} {o['asset']['id']}: {o['title']}")
runs = len([r for r in glob.glob(os.path.join(out, "every*s-seed*")) if os.path.isdir(r)])
md = runs * machines * days
print(f"false orders: {total} in {md:,.0f} machine-days = {1000 * total / md:.2f} per 1,000 machine-days")
PY

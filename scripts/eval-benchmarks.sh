#!/usr/bin/env bash
# Replays the public benchmarks in ../shared/datasets (or $1) through hums and
# scores them as their protocols define:
#   scripts/eval-benchmarks.sh [DATASETS_DIR] [OUT_DIR]
# Set PROFILE=release for the speed figures (the default debug build is what
# `cargo build` gives). Prints the figures and the wall time; the replay
# outputs (scores, work orders, summaries, HTML reports) stay in OUT_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=$(realpath "${1:-../shared/datasets}")
OUT=${2:-target/benchmarks}
PROFILE=${PROFILE:-debug}
if [ "$PROFILE" = release ]; then cargo build --release --quiet; else cargo build --quiet; fi
HUMS="target/$PROFILE/hums"
rm -rf "$OUT" && mkdir -p "$OUT"
start=$(date +%s.%N)

for part in valve1 valve2 anomaly-free; do
  "$HUMS" replay --config configs/benchmarks/skab.toml --input "$DATA"/SKAB/data/$part/*.csv --out "$OUT/skab/$part"
done
"$HUMS" eval skab --data "$DATA/SKAB/data" --scores "$OUT/skab" | tee "$OUT/skab.txt"
"$HUMS" eval skab --data "$DATA/SKAB/data" --scores "$OUT/skab" --json > "$OUT/skab.json"

nab_start=$(date +%s.%N)
for dir in "$DATA"/NAB/data/*/; do
  cat=$(basename "$dir")
  "$HUMS" replay --config configs/benchmarks/nab.toml --input "$dir"*.csv --out "$OUT/nab/$cat" --no-report
done
nab_end=$(date +%s.%N)
"$HUMS" eval nab --data "$DATA/NAB" --scores "$OUT/nab" | tee "$OUT/nab.txt"
"$HUMS" eval nab --data "$DATA/NAB" --scores "$OUT/nab" --json > "$OUT/nab.json"
rows=$(cat "$OUT"/nab/*/summary.json | python3 -c 'import sys,json,re; print(sum(json.loads(d)["rows"] for d in re.split(r"(?<=\})\n(?=\{)", sys.stdin.read().strip())))')

"$HUMS" replay --config configs/benchmarks/ims.toml --input "$DATA/IMS/ims_test2_bearings.csv" --out "$OUT/ims"
python3 - "$OUT/ims/workorders.jsonl" <<'PY'
import json, sys
end = "2004-02-19T06:22:39Z"
for line in open(sys.argv[1]):
    o = json.loads(line)
    due = f", due {o['due_by']}" if o.get('due_by') else ""
    print(f"  IMS {o['asset']['id']}: {o['event']} {o['kind']} {o['severity']} at {o['detected_at']}{due} (end {end})")
PY

"$HUMS" eval cmapss --data "$DATA/CMAPSS" --work "$OUT/cmapss" | tee "$OUT/cmapss.txt"

end=$(date +%s.%N)
python3 - "$nab_start" "$nab_end" "$start" "$end" "$rows" <<'PY'
import sys
ns, ne, s, e, rows = map(float, sys.argv[1:])
print(f"NAB replay: {int(rows)} rows in {ne - ns:.2f} s wall, {rows / (ne - ns):,.0f} rows/s (processes included)")
print(f"whole evaluation: {e - s:.1f} s wall")
PY

#!/usr/bin/env bash
# Replay speed on the whole NAB corpus, on one core, against River's
# HalfSpaceTrees and a pandas rolling z-score over the same files in the same
# run (alternating, ROUNDS times each). Rows per second, end to end: reading
# the CSVs, judging every row, writing the scores.
#
#   scripts/nab-speed.sh [DATASETS_DIR]      # needs python3 with river and pandas:
#   python3 -m venv /tmp/rv && /tmp/rv/bin/pip install river pandas && PYTHON=/tmp/rv/bin/python scripts/nab-speed.sh
#
# Set HUMS=path to use a binary built already (default: a release build).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=$(realpath "${1:-../shared/datasets}")
PYTHON=${PYTHON:-python3}
ROUNDS=${ROUNDS:-3}
if [ -z "${HUMS:-}" ]; then
  cargo build --release --quiet
  HUMS=target/release/hums
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
files=("$DATA"/NAB/data/*/*.csv)
rows=$("$PYTHON" -c 'import sys; print(sum(sum(1 for _ in open(f)) - 1 for f in sys.argv[1:]))' "${files[@]}")
echo "NAB corpus: ${#files[@]} files, $rows rows; one core (taskset -c 0)"
hums_run() {
  rm -rf "$out/hums"
  local s e
  s=$(date +%s.%N)
  taskset -c 0 "$HUMS" replay --config configs/benchmarks/nab.toml --input "${files[@]}" \
    --out "$out/hums" --jobs 1 --no-report > /dev/null 2>&1
  e=$(date +%s.%N)
  "$PYTHON" -c "print(f'{$rows / ($e - $s):.0f}')"
}
py_run() {
  taskset -c 0 "$PYTHON" scripts/lib/nab_baselines.py "$1" "${files[@]}"
}
printf "%-6s %14s %18s %18s\n" round "hums rows/s" "HalfSpaceTrees" "pandas z-score"
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then
    h=$(hums_run); t=$(py_run hst); z=$(py_run zscore)
  else
    z=$(py_run zscore); t=$(py_run hst); h=$(hums_run)
  fi
  printf "%-6s %14s %18s %18s   hums/HST %.1f  hums/z-score %.2f\n" "$r" "$h" "$t" "$z" \
    "$("$PYTHON" -c "print($h / $t)")" "$("$PYTHON" -c "print($h / $z)")"
done

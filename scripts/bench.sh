#!/usr/bin/env bash
# The end-to-end ingest benchmark anyone can run: starts mosquitto (with the
# settings deploy/mosquitto.conf recommends) on a free loopback port, then runs
# `hums bench` for each payload form at QoS 1 and QoS 0: the reference plant
# (200 assets × 8 channels) published flat out to a bare rumqttc subscriber and
# to hums in turn, three rounds each, alternating which side goes first. It
# prints each table (rates, hums/bare, readings lost and judged twice, hums's
# peak memory); docs/benchmarks.md records a run.
#
#   scripts/bench.sh                  # release build, 200,000 messages a side
#   MESSAGES=20000 ROUNDS=1 scripts/bench.sh --debug    # a quick look
#
# Needs mosquitto (apt-get install mosquitto) and a Rust toolchain. The figures
# depend on the machine; the ratios, measured in the same run, are the result.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
[ "${1:-}" = "--debug" ] && profile=debug
messages=${MESSAGES:-200000}
rounds=${ROUNDS:-3}

mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$mosquitto" ] || { echo "mosquitto not found: apt-get install mosquitto" >&2; exit 1; }

if [ "$profile" = release ]; then
    cargo build --release --locked
    bin=${CARGO_TARGET_DIR:-target}/release/hums
else
    cargo build --locked
    bin=${CARGO_TARGET_DIR:-target}/debug/hums
fi

work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed -e "s/^listener .*/listener ${port} 127.0.0.1/" -e "s|^persistence_location .*|persistence_location ${work}/|" \
    deploy/mosquitto.conf > "$work/mosquitto.conf"
"$mosquitto" -c "$work/mosquitto.conf" > "$work/mosquitto.log" 2>&1 &
pid=$!
for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null && break
    sleep 0.1
done
echo "mosquitto $("$mosquitto" -h 2>/dev/null | head -n1 | awk '{print $3}') on 127.0.0.1:${port}; hums $("$bin" --version | awk '{print $2}') ($profile); $(nproc) cores"

status=0
for payload in number object; do
    for qos in 1 0; do
        "$bin" bench --broker "127.0.0.1:${port}" --payload "$payload" --qos "$qos" \
            --messages "$messages" --rounds "$rounds" || status=1
        echo
    done
done
exit $status

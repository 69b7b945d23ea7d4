#!/usr/bin/env python3
"""Onset-to-order time while hums is killed (-9) and restarted every few seconds.

A tank is held at 90 °C against an alarm limit of 80 (on-delay 3 s) from the
first second, through mosquitto, while `hums run` is killed with SIGKILL every
`--every` seconds and started again on the same state directory. Prints the
time from the condition's onset to the first work order the HTTP receiver got.

Usage: scripts/onset-under-restarts.py [--hums target/debug/hums] [--every 3] [--runs 3]
Needs mosquitto and mosquitto_pub on the PATH (Debian: mosquitto, mosquitto-clients).
"""
import argparse, http.server, json, os, shutil, signal, socket, subprocess, sys, tempfile
import threading, time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


class Receiver(http.server.BaseHTTPRequestHandler):
    orders = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Receiver.orders.append((time.time(), json.loads(body or b"{}")))
        reply = json.dumps({"id": str(len(Receiver.orders))}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *_):
        pass


CONFIG = """
[gateway]
id = "chaos"
[mqtt]
host = "127.0.0.1"
port = {mqtt}
client_id = "hums-chaos"
max_future_skew = "5s"
[[mqtt.subscriptions]]
filter = "plant/+/+"
template = "plant/{{asset}}/{{channel}}"
[pipeline]
eval_interval = "1s"
window = "10s"
min_window_samples = 1
[alarms]
on_delay = "3s"
off_delay = "5s"
[state]
dir = "{state}"
[backend]
url = "http://127.0.0.1:{http}/workorders"
[log]
level = "warn"
[classes.tank.channels]
temp = {{ unit = "degC", quantity = "temperature" }}
[[classes.tank.limits]]
channel = "temp"
feature = "mean"
direction = "high"
failure_mode = "overheat"
alarm = {{ set = 80.0, clear = 77.0 }}
[classes.tank.failure_modes.overheat]
title = "{{asset_name}}: overheating"
cause = "Too hot."
actions = ["Cool it"]
priority = 2
[[assets]]
id = "t1"
name = "Tank 1"
class = "tank"
location = ["Site"]
"""


def one_run(hums, every, limit):
    work = tempfile.mkdtemp(prefix="hums-chaos-")
    mqtt, http_port = free_port(), free_port()
    broker = subprocess.Popen(["mosquitto", "-p", str(mqtt)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    wait_port(mqtt)
    Receiver.orders = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", http_port), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cfg = os.path.join(work, "hums.toml")
    with open(cfg, "w") as f:
        f.write(CONFIG.format(mqtt=mqtt, http=http_port, state=os.path.join(work, "state")))
    publisher = subprocess.Popen(["mosquitto_pub", "-p", str(mqtt), "-q", "1", "-t", "plant/t1/temp",
                                  "-l"], stdin=subprocess.PIPE, text=True)
    hums_proc = subprocess.Popen([hums, "run", "--config", cfg])
    time.sleep(1.0)  # let it subscribe once, so the broker queues for its session
    onset = time.time()
    kills = 0
    next_kill = onset + every
    order_at = None
    while time.time() - onset < limit and order_at is None:
        publisher.stdin.write("90\n")
        publisher.stdin.flush()
        time.sleep(0.1)
        if Receiver.orders:
            order_at = Receiver.orders[0][0]
        elif time.time() >= next_kill:
            hums_proc.send_signal(signal.SIGKILL)
            hums_proc.wait()
            kills += 1
            hums_proc = subprocess.Popen([hums, "run", "--config", cfg])
            next_kill = time.time() + every
    for p in (hums_proc, publisher, broker):
        p.kill()
        p.wait()
    server.shutdown()
    shutil.rmtree(work, ignore_errors=True)
    return (order_at - onset if order_at else None), kills


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hums", default="target/debug/hums")
    ap.add_argument("--every", type=float, default=3.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--limit", type=float, default=90.0)
    a = ap.parse_args()
    for i in range(a.runs):
        took, kills = one_run(a.hums, a.every, a.limit)
        shown = f"{took:.1f} s" if took is not None else f"no order within {a.limit:.0f} s"
        print(f"run {i + 1}: onset to order {shown}, {kills} kill -9 before it")


if __name__ == "__main__":
    main()

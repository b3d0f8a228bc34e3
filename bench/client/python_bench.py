#!/usr/bin/python3
"""python_bench.py: bench/client's Python rows: segbus.track(user_id, "Order Completed", props)
(the seed's event) into the ring, drained by the sink (the real registry and ring reader, as the
daemon drains it), side by side in the same run with

  - @segment/analytics-node's analytics.track() of the same event (node_peer.mjs), and
  - a hand-rolled Python client: build the message (messageId, timestamp, context.library like
    segbus), json.dumps it and sendto() it over a UNIX datagram socket to a reader process.

Per case: ROUNDS timed batches of N calls; the value is the median of the batches' per-call
means in wall time (p99 of them in "p99"; the process's own CPU time per call in "cpu_ns", and
the load average in "load": on a shared machine wall time includes waiting for a core). Prints JSON lines (suite, case, unit, value, peer, peer_value,
ratio, goal, met). Needs SEGBUS_BUILD (bench/run sets it) and, for the Node peer, npm packages in
bench/client/node_modules (bench/client/run installs them).
"""
import datetime
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("SEGBUS_BUILD") or os.path.join(ROOT, "build", "release")
sys.path.insert(0, os.path.join(BUILD, "bindings", "python"))
import segbus  # noqa: E402

SINK = os.path.join(BUILD, "bindings", "tests", "segbus_test_sink")
N = int(os.environ.get("SEGBUS_BENCH_N", "1000"))
ROUNDS = int(os.environ.get("SEGBUS_BENCH_ROUNDS", "200"))
WARM = 20

# The seed's "Order Completed" example (shared/seed, "Order completion (Segment e-commerce spec)").
ORDER = json.load(open(os.path.join(ROOT, "tests", "data", "order_completed.json")))


def log(*a):
    print("python_bench:", *a, file=sys.stderr, flush=True)


def summarise(samples):
    s = sorted(samples)
    return statistics.median(s), s[min(len(s) - 1, int(len(s) * 0.99))]


def time_segbus():
    track = segbus.track
    uid, name, props = "user-1", "Order Completed", ORDER
    samples, cpu = [], []
    for r in range(WARM + ROUNDS):
        c0 = time.process_time_ns()
        t0 = time.perf_counter_ns()
        for _ in range(N):
            track(uid, name, props)
        dt = time.perf_counter_ns() - t0
        if r >= WARM:
            samples.append(dt / N)
            cpu.append((time.process_time_ns() - c0) / N)
    stats = segbus.default_client.stats()
    failed = stats["full"] + stats["dropped"]
    return summarise(samples), statistics.median(cpu), failed, stats["sent"]


def hand_rolled(sock, addr):
    """What an application writes without an SDK: the same fields segbus stamps, JSON, sendto."""
    dumps, now, utc, uuid4, send = json.dumps, datetime.datetime.now, datetime.timezone.utc, \
        uuid.uuid4, sock.sendto
    library = {"name": "hand-rolled", "version": "0"}
    samples = []
    for r in range(WARM + ROUNDS):
        t0 = time.perf_counter_ns()
        for _ in range(N):
            msg = {"type": "track", "userId": "user-1", "event": "Order Completed",
                   "properties": ORDER, "context": {"library": library},
                   "timestamp": now(utc).isoformat(timespec="milliseconds"),
                   "messageId": str(uuid4())}
            send(dumps(msg).encode(), addr)
        dt = time.perf_counter_ns() - t0
        if r >= WARM:
            samples.append(dt / N)
    return summarise(samples)


READER = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(sys.argv[1])
print("ready", flush=True)
n = 0
while True:
    if s.recv(65536) == b"stop":
        break
    n += 1
print(n, flush=True)
"""


def time_baseline(tmp):
    path = os.path.join(tmp, "baseline.sock")
    reader = subprocess.Popen([sys.executable, "-c", READER, path], stdout=subprocess.PIPE, text=True)
    assert reader.stdout.readline().strip() == "ready"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    result = hand_rolled(sock, path)
    sock.sendto(b"stop", path)
    got = int(reader.stdout.readline())
    reader.wait(10)
    return result, got


def time_node():
    node_dir = HERE
    if not os.path.isdir(os.path.join(node_dir, "node_modules", "@segment", "analytics-node")):
        log("no @segment/analytics-node in bench/client/node_modules (run bench/client/run)")
        return None
    out = subprocess.run(["node", os.path.join(HERE, "node_peer.mjs"), json.dumps(ORDER), str(N),
                          str(max(20, ROUNDS // 4))], cwd=node_dir, capture_output=True, text=True,
                         timeout=600)
    if out.returncode:
        log("node peer failed:", out.stderr[-2000:])
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def row(case, value, unit="ns/call", **kw):
    r = {"suite": "client", "case": case, "unit": unit, "value": round(value, 1)}
    r.update(kw)
    print(json.dumps(r), flush=True)


def main():
    if not os.access(SINK, os.X_OK):
        sys.exit("python_bench: no sink at %s (build the release preset)" % SINK)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "segbus.sock")
        sink = subprocess.Popen([SINK, path, "--discard"], stderr=subprocess.PIPE, text=True)
        if not sink.stderr.readline().startswith("sink: ready"):  # listening from then on
            sys.exit("python_bench: the sink did not start")
        segbus.socket = path
        segbus.write_key = "bench"
        log("segbus.track: %d rounds of %d calls" % (WARM + ROUNDS, N))
        (med, p99), cpu, failed, sent = time_segbus()
        segbus.flush(10)
        sink.terminate()
        sink_report = sink.communicate(timeout=10)[1].strip()
        log(sink_report)
        log("hand-rolled json.dumps + sendto")
        (b_med, b_p99), b_got = time_baseline(tmp)
    log("@segment/analytics-node track()")
    node = time_node()

    row("python segbus.track Order Completed", med, p99=round(p99, 1), cpu_ns=round(cpu, 1),
        goal="<= 2000", met=med <= 2000 and failed == 0, sent=sent, not_taken=failed,
        load=os.getloadavg()[0])
    row("python segbus.track vs hand-rolled json.dumps+sendto", med, peer="python json.dumps + "
        "AF_UNIX sendto", peer_value=round(b_med, 1), ratio=round(b_med / med, 2), goal=">= 3",
        met=b_med / med >= 3, peer_p99=round(b_p99, 1), peer_received=b_got)
    if node:
        row("python segbus.track vs analytics-node track()", med,
            peer="@segment/analytics-node 2.2.1 track() (call only)",
            peer_value=round(node["sync_ns"], 1), ratio=round(node["sync_ns"] / med, 2),
            goal=">= 10", met=node["sync_ns"] / med >= 10)
        row("analytics-node CPU per event, HTTP included (for reference)", node["cpu_ns"],
            unit="ns/event")
    else:
        row("python segbus.track vs analytics-node track()", med,
            peer="@segment/analytics-node (not installed)", peer_value=None, ratio=None,
            goal=">= 10", met=False)


if __name__ == "__main__":
    main()

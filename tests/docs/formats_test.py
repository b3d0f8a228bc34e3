"""tests/docs/formats_test.py: a compatible tool written from docs/formats.md alone works with segbusd.

docs/formats.md promises that others can write compatible tools from it. This test is such a
tool, in Python, using only what that page (and docs/formats-spool.md) says:
  1. a producer: registers over the UNIX socket (hello/reply, the ring's memfd by SCM_RIGHTS),
     checks the control block, writes msgpack event records with the check word, commits them
     and wakes the reader through the futex word;
  2. a hub client: POSTs a msgpack batch envelope (gzip, Basic auth) to the HTTP input;
  3. a spool reader: after a clean shutdown, walks the segment files, checks every header,
     frame and XXH3-64 checksum, and decodes each payload's output tag and batch envelope.
A real segbusd (sidecar and hub in one, NDJSON file output) must deliver every event.

Usage: formats_test.py --build DIR   (ctest passes it; label `doc`). Single producer on its own
daemon: the claim below is a plain store of tail, which only one writer may do (a real
producer uses a compare-and-swap; Python has none, so no other producer may share the ring).
"""
import argparse
import array
import base64
import ctypes
import glob
import gzip
import json
import mmap
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

import msgpack

REG_MAGIC, RING_MAGIC = 0x47455242, 0x31474E5242474553
CTRL = {"magic": 0, "version": 8, "ctrl_size": 12, "capacity": 16, "max_payload": 24,
        "salt": 28, "tail": 128, "head": 384, "futex": 768}
M64 = (1 << 64) - 1
xxh = ctypes.CDLL("libxxhash.so.0")
xxh.XXH3_64bits.restype = ctypes.c_uint64
xxh.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
libc = ctypes.CDLL(None, use_errno=True)
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def check_word(salt, pos, producer, length):
    """docs/formats.md, "Records": the check word."""
    h = ((pos ^ (producer << 40)) * 0x9E3779B97F4A7C15) & M64
    h ^= (length * 0xC2B2AE3D27D4EB4F) & M64
    h ^= h >> 29
    return ((h ^ (h >> 32)) & 0xFFFFFFFF) ^ salt


class Producer:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.connect(path)
        self.sock.send(struct.pack("<IHHiI", REG_MAGIC, 1, 0, os.getpid(), 0))
        fds = array.array("i")
        msg, anc, _, _ = self.sock.recvmsg(64, socket.CMSG_SPACE(4))
        for level, typ, data in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                fds.frombytes(data[:4])
        magic, version, _, status, self.id, cap, ring_id = struct.unpack("<IHHiIQ16s", msg[:40])
        check(len(msg) == 40 and magic == REG_MAGIC and version == 1, "registration reply: 40 bytes, magic, version")
        check(status == 0 and len(fds) == 1, f"registration accepted (status {status}) with one fd")
        self.fd = fds[0]
        size = os.fstat(self.fd).st_size
        self.cap = size - 4096
        check(self.cap == cap and self.cap & (self.cap - 1) == 0, f"memfd is capacity {cap} + 4096")
        self.mm = mmap.mmap(self.fd, size)
        self.ctrl = self.cap
        get = lambda f, fmt: struct.unpack_from(fmt, self.mm, self.ctrl + CTRL[f])[0]
        check(get("magic", "<Q") == RING_MAGIC and get("version", "<I") == 1
              and get("ctrl_size", "<I") == 4096 and get("capacity", "<Q") == self.cap,
              "control block: magic, version 1, size 4096, capacity")
        self.max_payload = get("max_payload", "<I")
        check(self.max_payload == min(32768, self.cap // 8 - 16), "max_payload = min(32768, capacity/8 - 16)")
        self.salt = get("salt", "<I")
        check(self.salt == struct.unpack_from("<I", ring_id)[0], "salt = the first 4 bytes of the ring id")

    def u64(self, off, value=None):
        if value is None:
            return struct.unpack_from("<Q", self.mm, off)[0]
        struct.pack_into("<Q", self.mm, off, value)

    def header(self, pos, length, typ):
        return (length & 0xFFFFFFFF) | ((typ & 0xFFFFFFFF) << 32)

    def write(self, payload, typ=1):
        cap, ctrl = self.cap, self.ctrl
        length = 16 + len(payload)
        need = (length + 7) & ~7
        tail = self.u64(ctrl + CTRL["tail"])
        head = self.u64(ctrl + CTRL["head"])
        to_end = cap - (tail & (cap - 1))
        pad = to_end if need > to_end else 0
        if tail - head + need + pad > cap:
            raise BlockingIOError("ring full")
        self.u64(ctrl + CTRL["tail"], tail + need + pad)  # the claim (one producer: no CAS)
        if pad:
            at = tail & (cap - 1)
            if pad >= 16:
                struct.pack_into("<II", self.mm, at + 8, self.id, check_word(self.salt, tail, self.id, pad))
            self.u64(at, self.header(tail, pad, -1))
            tail += pad
        at = tail & (cap - 1)
        self.u64(at, self.header(tail, -length, typ))            # being written
        struct.pack_into("<II", self.mm, at + 8, self.id, check_word(self.salt, tail, self.id, length))
        self.mm[at + 16:at + 16 + len(payload)] = payload
        self.u64(at, self.header(tail, length, typ))             # committed
        futex = ctrl + CTRL["futex"]
        if struct.unpack_from("<I", self.mm, futex)[0] == 1:
            struct.pack_into("<I", self.mm, futex, 0)
            word = ctypes.c_uint32.from_buffer(self.mm, futex)
            libc.syscall(202, ctypes.byref(word), 1, 1, None, None, 0)  # futex(FUTEX_WAKE), shared
            del word

    def close(self):
        self.mm.close()
        os.close(self.fd)
        self.sock.close()


def event(i, how):
    return {"type": "track", "messageId": str(uuid.uuid4()), "timestamp": "2026-11-28T12:00:00.000Z",
            "userId": f"formats-{i}", "event": "Formats Checked", "properties": {"i": i, "via": how},
            "context": {"library": {"name": "formats-test", "version": "1"}}}


def read_spool(spool):
    """docs/formats-spool.md + docs/formats.md "The spool": every record's tag and envelope."""
    out = []
    for seg in sorted(glob.glob(os.path.join(spool, "*.seg"))):
        data = open(seg, "rb").read()
        gen = int(os.path.basename(seg)[:-4], 16)
        if data[:8] != b"SBSPOOL\0":
            continue
        version, hdr, g, first_seq = struct.unpack_from("<IIQQ", data, 8)
        ok = (version == 1 and hdr == 64 and g == gen
              and struct.unpack_from("<Q", data, 56)[0] == xxh.XXH3_64bits(data[:56], 56))
        check(ok, f"segment {os.path.basename(seg)}: header, generation and checksum")
        off, seq = 64, first_seq
        while off + 40 <= len(data):
            magic, flags, s, g, n, res = struct.unpack_from("<IIQQII", data, off)
            if magic == 0:
                break
            frame = data[off:off + 32] + data[off + 40:off + 40 + n]
            good = (magic == 0x31524253 and flags == 0 and res == 0 and s == seq and g == gen
                    and struct.unpack_from("<Q", data, off + 32)[0] == xxh.XXH3_64bits(frame, len(frame)))
            if not good:
                break  # the first bad record ends the segment (a recycled file's old records)
            payload = data[off + 40:off + 40 + n]
            tag, cover = struct.unpack_from("<HH", payload)
            out.append(((tag, cover, payload[4:4 + cover]), payload[4 + cover:]))
            off += (40 + n + 7) & ~7
            seq += 1
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    build = os.path.abspath(ap.parse_args().build)
    tmp = tempfile.mkdtemp(prefix="segbus-formats-test-")
    hub, metrics = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    cfg = os.path.join(tmp, "segbusd.yaml")
    with open(cfg, "w") as f:
        f.write(f"""log_level: warn
socket: {{path: {tmp}/sock}}
metrics: {{listen: "{metrics}"}}
spool: {{dir: {tmp}/spool, segment_bytes: 1MiB, max_bytes: 8MiB}}
ring: {{capacity: 64KiB}}
batch: {{flush_interval: 10ms}}
http: {{enabled: true, listen: "{hub}"}}
sources: [{{name: web, write_keys: [wk_formats]}}]
outputs: [{{type: file, name: file, settings: {{path: {tmp}/events.ndjson}}}}]
""")
    log = open(os.path.join(tmp, "segbusd.log"), "w")
    d = subprocess.Popen([os.path.join(build, "src", "daemon", "segbusd"), "--config", cfg],
                         stdout=log, stderr=log)
    prod = None
    try:
        deadline = time.time() + 20
        while not os.path.exists(f"{tmp}/sock") and time.time() < deadline and d.poll() is None:
            time.sleep(0.05)
        prod = Producer(f"{tmp}/sock")
        # 64 KiB ring, 8 KiB records (max payload): 40 records go round it 5 times, so the
        # padding at the wrap and the reuse of released space are exercised.
        ring_ids, filler = [], "x" * 7000
        for i in range(40):
            e = event(i, "ring")
            e["properties"]["filler"] = filler
            ring_ids.append(e["messageId"])
            body = msgpack.packb(e)
            for _ in range(2000):
                try:
                    prod.write(body)
                    break
                except BlockingIOError:
                    time.sleep(0.005)
            else:
                check(False, f"ring record {i}: the ring never had room")
        hub_ids = []
        batch = [event(100 + i, "hub") for i in range(3)]
        hub_ids = [e["messageId"] for e in batch]
        body = gzip.compress(msgpack.packb({"batch": batch, "sentAt": "2026-11-28T12:00:01.000Z"}))
        req = urllib.request.Request(f"http://{hub}/v1/batch", data=body, method="POST", headers={
            "Content-Type": "application/msgpack", "Content-Encoding": "gzip",
            "Authorization": "Basic " + base64.b64encode(b"wk_formats:").decode()})
        with urllib.request.urlopen(req, timeout=30) as r:
            answer = json.loads(r.read())
            check(r.status == 200 and answer.get("success") is True, f"hub answered {r.status} {answer}")

        want = set(ring_ids + hub_ids)
        got = {}
        deadline = time.time() + 30
        while time.time() < deadline and not want <= set(got):
            if os.path.exists(f"{tmp}/events.ndjson"):
                for line in open(f"{tmp}/events.ndjson"):
                    e = json.loads(line)
                    got[e["messageId"]] = e
            time.sleep(0.05)
        check(want <= set(got), f"all {len(want)} events delivered ({len(want & set(got))} seen)")
        check(all(got[m]["properties"]["filler"] == filler for m in ring_ids if m in got),
              "ring events arrive byte for byte")
        check(all("receivedAt" in got[m] and "writeKey" not in got[m] for m in hub_ids if m in got),
              "hub events have receivedAt and no writeKey")
        prod.close()
        prod = None
        d.send_signal(signal.SIGTERM)
        check(d.wait(30) == 0, "segbusd shut down cleanly")

        records = read_spool(f"{tmp}/spool")
        spooled = []
        for (tag, cover, table), env in records:
            # cover table: version 1, then N outputs (1 here) and R rings, 16 + 8N bytes a ring
            n_out, n_rings = struct.unpack_from("<HH", table, 2) if cover >= 8 else (0, 0)
            ok = (tag == 0 and (cover == 0 or (table[0] == 1 and n_out == 1
                                                 and cover == 8 + n_rings * (16 + 8 * n_out)))
                  and env[:7] == b"\x82\xa5batch" and env[7] == 0xDD
                  and env[-32:-24] == b"\xa6sentAt\xb8")
            if not ok:
                check(False, f"spool payload framing: tag {tag}, cover table {table.hex()}, head {env[:8].hex()}, tail {env[-32:-24]!r}")
                continue
            doc = msgpack.unpackb(env)
            if len(doc["batch"]) != struct.unpack_from(">I", env, 8)[0]:
                check(False, "array32 count matches the events")
            spooled += [e["messageId"] for e in doc["batch"]]
        check(len(records) > 0, f"spool holds {len(records)} batch records, every frame and payload as documented")
        check(want <= set(spooled), "every delivered event is in a spooled batch envelope")
    finally:
        if prod:
            prod.close()
        if d.poll() is None:
            d.kill()
            d.wait()
        log.close()
        if failures:
            print(open(log.name).read()[-3000:], file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

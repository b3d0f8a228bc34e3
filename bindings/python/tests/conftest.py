"""Fixtures of the Python binding tests: a sink (bindings/tests/sink.c: the real registry and ring
reader standing in for segbusd) whose records the tests decode with the msgpack package."""
import os
import signal
import struct
import subprocess
import threading
import time

import msgpack
import pytest

import segbus

BINARY_DIR = os.environ.get("SEGBUS_BINARY_DIR", "")
SINK = os.path.join(BINARY_DIR, "bindings", "tests", "segbus_test_sink")

# The event-call tests need the C event API; CMake says whether it was built. A build that has it
# but a module without Client must fail, not skip.
collect_ignore = []
if os.environ.get("SEGBUS_BINDINGS_CLIENT") != "ON":
    collect_ignore += ["test_client.py", "test_processes.py"]
else:
    assert hasattr(segbus, "Client"), "the build has the event API but segbus has no Client"
    assert os.access(SINK, os.X_OK), "no sink program at " + SINK


class Sink:
    """segbus_test_sink on a socket in tmp_path; records as (producer id, decoded event)."""

    def __init__(self, path, *args):
        self.path = path
        self.proc = subprocess.Popen([SINK, path, *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.records = []
        self.raw = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        # It prints "sink: ready" once it listens (the socket file exists a moment before that).
        ready = self.proc.stderr.readline().decode()
        if not ready.startswith("sink: ready"):
            raise RuntimeError("sink did not start: " + ready + self.proc.stderr.read().decode())

    def _read(self):
        out = self.proc.stdout
        while True:
            head = out.read(8)
            if len(head) < 8:
                break
            length, producer = struct.unpack("<II", head)
            payload = out.read(length)
            with self.cond:
                self.raw.append(payload)
                self.records.append((producer, msgpack.unpackb(payload, raw=False)))
                self.cond.notify_all()

    def wait(self, n, timeout=10.0):
        """The first n records; fails naming how many arrived."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.records) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("sink got %d records, expected %d" % (len(self.records), n))
                self.cond.wait(left)
            return [r for _, r in self.records[:n]]

    def events(self):
        with self.cond:
            return [r for _, r in self.records]

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def close(self):
        self.proc.send_signal(signal.SIGCONT)
        self.proc.terminate()
        self.proc.wait(10)
        self.reader.join(10)


@pytest.fixture
def sink(tmp_path):
    s = Sink(str(tmp_path / "segbus.sock"))
    yield s
    s.close()


@pytest.fixture
def client(sink):
    c = segbus.Client("wk-test", socket=sink.path, standalone=False)
    yield c
    c.shutdown()


@pytest.fixture(autouse=True)
def fresh_default_client():
    """Module-level settings and the default client start clean in every test."""
    saved = {k: getattr(segbus, k) for k in ("write_key", "send", "sync_mode", "on_error",
                                             "socket", "strict", "debug", "host")}
    segbus.default_client = None
    yield
    if segbus.default_client is not None:
        segbus.default_client = None
    for k, v in saved.items():
        setattr(segbus, k, v)

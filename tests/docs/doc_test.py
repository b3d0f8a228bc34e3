"""tests/docs/doc_test.py: every command shown in README.md and docs/*.md runs, so the docs cannot rot.

Each ```sh / ```console / ```bash / ```shell block of README.md and docs/*.md is either run or
marked, on the line just before its fence, as not runnable here with the reason:

    <!-- not-run: needs Kubernetes -->

Commands run in a copy of the source tree (so nothing they write lands in the checkout), with
the built `segbus` and `segbusd` first on PATH, against a segbusd this test starts on its own
socket, spool and ports (SEGBUS_SOCKET and SEGBUS_METRICS point at it; the daemon is a hub too,
on SEGBUS_HUB = host:port, source `web` with write key wk_prod_web, an NDJSON file output).
A feeder records an "Order Completed" event every 100 ms so that `segbus tail` has something
to show. In ```sh blocks every line is a command (a trailing backslash continues it); in
```console blocks the lines starting with "$ " are (and "> " continues them); the rest is
output and is not compared. Each command must exit 0 within 60 s. A command meant to run until
stopped (`segbus stat --watch`, `segbus tail`) needs, before its block:

    <!-- doc-test: stop-after=3 -->

then a command still running after that many seconds is stopped with SIGINT and passes if it
printed something; one that exits before must exit 0.

Code examples run too: a ```c block that includes <segbus/segbus.h> is compiled against the
built libsegbus (its #include lines at the top, the rest as the body of main) and run; a
```python block that imports segbus and a ```ruby block that requires it run with the built
bindings. All against the same daemon, and each must exit 0. (In sanitizer builds, whose
libraries need the sanitizer runtime, and builds without the bindings, they are reported as
not checked; the ci build checks them.)

Also checked here, because they need the built binaries: every metric family the running
segbusd exposes is named in docs/operations.md; examples/systemd/*.service passes
`systemd-analyze verify`; an unlabelled block that holds one of our commands is an error (label
it ```sh, or ```text if it is not meant to be run).

Usage: doc_test.py --source DIR --build DIR   (ctest passes both; label `doc`)
"""
import argparse
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

RUN_LANGS = {"sh", "console", "bash", "shell"}
COMMAND_TIMEOUT = 60
# A block without a language holding a line that starts like this is a command block in
# disguise: it must be labelled so that it is either run or marked.
OUR_COMMANDS = re.compile(r"^\s*(\$ |segbus |segbusd |scripts/|bench/run|cmake |ctest )")


class Block:
    def __init__(self, path, line, lang, body, marker):
        self.path, self.line, self.lang, self.body, self.marker = path, line, lang, body, marker

    def where(self):
        return f"{self.path}:{self.line}"

    def commands(self):
        """The block's commands, continuation lines joined."""
        out, cur = [], None
        for raw in self.body:
            if self.lang == "console":
                if raw.startswith("$ "):
                    cur = raw[2:]
                elif raw.startswith("> ") and cur is not None:
                    cur = cur[:-1] + "\n" + raw[2:] if cur.endswith("\\") else cur + "\n" + raw[2:]
                else:
                    if cur is not None:
                        out.append(cur)
                    cur = None
                    continue
                if not cur.endswith("\\"):
                    out.append(cur)
                    cur = None
            else:
                line = raw.rstrip()
                if cur is not None:
                    cur += "\n" + line
                elif line.strip() and not line.lstrip().startswith("#"):
                    cur = line
                if cur is not None and not cur.endswith("\\"):
                    out.append(cur)
                    cur = None
        if cur is not None:
            out.append(cur)
        return out


MARK = re.compile(r"^\s*<!--\s*(not-run|doc-test):\s*(.*?)\s*-->\s*$")


def blocks_of(path, rel):
    """Fenced blocks of one Markdown file with the marker on the line before each."""
    lines = open(path, encoding="utf-8").read().split("\n")
    out, i = [], 0
    while i < len(lines):
        m = re.match(r"^(\s*)(```+)\s*([\w+-]*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        fence, lang = m.group(2), m.group(3).lower()
        j = i + 1
        while j < len(lines) and not re.match(r"^\s*" + fence + r"\s*$", lines[j]):
            j += 1
        indent = len(m.group(1))
        body = [l[indent:] if l[:indent].strip() == "" else l for l in lines[i + 1:j]]
        marker = MARK.match(lines[i - 1]) if i > 0 else None
        out.append(Block(rel, i + 1, lang, body, marker))
        i = j + 1
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def copy_tree(src, dst):
    skip = {".git", "node_modules", "__pycache__", ".cache"}

    def ignore(d, names):
        return [n for n in names if n in skip or (d == src and n.startswith("build"))]

    shutil.copytree(src, dst, ignore=ignore, symlinks=True)


class Daemon:
    """A segbusd on the test's own socket, spool and ports: sidecar and hub in one."""

    def __init__(self, build, tmp, source):
        self.dir = os.path.join(tmp, "daemon")
        os.makedirs(self.dir)
        self.metrics = f"127.0.0.1:{free_port()}"
        self.hub = f"127.0.0.1:{free_port()}"
        self.socket = os.path.join(self.dir, "segbus.sock")
        self.config = os.path.join(self.dir, "segbusd.yaml")
        with open(self.config, "w") as f:
            f.write(f"""# the doc test's daemon
log_level: warn
socket: {{path: {self.socket}}}
metrics: {{listen: "{self.metrics}"}}
spool: {{dir: {self.dir}/spool, segment_bytes: 1MiB, max_bytes: 64MiB}}
batch: {{flush_interval: 20ms}}
http: {{enabled: true, listen: "{self.hub}"}}
ring: {{source: web}}
sources:
  - name: web
    write_keys: [wk_prod_web]
    plan: {source}/examples/tracking-plan.json
outputs:
  - {{type: file, name: file, settings: {{path: {self.dir}/events.ndjson}}}}
""")
        self.log = open(os.path.join(self.dir, "segbusd.log"), "w")
        self.proc = subprocess.Popen([os.path.join(build, "src", "daemon", "segbusd"), "--config",
                                      self.config], stdout=self.log, stderr=self.log)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("segbusd exited at start: " + self.log_text())
            try:
                urllib.request.urlopen(f"http://{self.metrics}/health", timeout=1).read()
                if os.path.exists(self.socket):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("segbusd did not come up: " + self.log_text())

    def log_text(self):
        self.log.flush()
        return open(self.log.name).read()[-3000:]

    def metric_families(self):
        text = urllib.request.urlopen(f"http://{self.metrics}/metrics", timeout=5).read().decode()
        return sorted(set(re.findall(r"^# TYPE (\S+)", text, re.M)))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
        finally:
            self.log.close()


class Feeder(threading.Thread):
    """Records an event every 100 ms through the built `segbus` command."""

    def __init__(self, env):
        super().__init__(daemon=True)
        self.env, self.stopping, self.sent, self.failed = env, threading.Event(), 0, 0

    def run(self):
        while not self.stopping.wait(0.1):
            r = subprocess.run(["segbus", "track", "--userId", "doc-feeder", "--event",
                                "Order Completed", "--properties",
                                '{"order_id": "ORD-1", "total": 1.5, "currency": "USD"}',
                                "--quiet"], env=self.env, capture_output=True, timeout=30)
            if r.returncode == 0:
                self.sent += 1
            else:
                self.failed += 1


def sanitizer_build(build):
    try:
        with open(os.path.join(build, "CMakeCache.txt")) as f:
            return bool(re.search(r"^SEGBUS_SANITIZE:STRING=\S+", f.read(), re.M))
    except OSError:
        return False


def code_program(b, build, source, tmp, n):
    """(argv, why not) to run a code block, or (None, None) when it is not a program of ours."""
    text = "\n".join(b.body)
    if b.lang == "c" and "#include <segbus/segbus.h>" in text:
        heads = [l for l in b.body if l.startswith("#include")]
        rest = [l for l in b.body if not l.startswith("#include")]
        src = os.path.join(tmp, f"snippet{n}.c")
        with open(src, "w") as f:
            f.write("#include <stdint.h>\n#include <stdio.h>\n" + "\n".join(heads) +
                    "\nint main(void)\n{\n" + "\n".join(rest) + "\nreturn 0;\n}\n")
        exe = src[:-2]
        lib = os.path.join(build, "src")
        r = subprocess.run(["cc", "-std=gnu11", "-Wall", "-I", os.path.join(source, "include"), src,
                            "-L", lib, "-lsegbus", f"-Wl,-rpath,{lib}", "-o", exe],
                           capture_output=True, text=True, timeout=120)
        if r.returncode:
            return ["false"], f"does not compile:\n{r.stderr[-2000:]}"
        return [exe], None
    if b.lang == "python" and re.search(r"^\s*import segbus\b", text, re.M):
        if not os.path.isdir(os.path.join(build, "bindings", "python", "segbus")):
            return None, "no Python binding in this build"
        return ["/usr/bin/python3", "-c", text], None
    if b.lang == "ruby" and re.search(r"^\s*require ['\"]segbus['\"]", text, re.M):
        lib = os.path.join(build, "bindings", "ruby", "lib")
        if not os.path.exists(os.path.join(lib, "segbus.rb")):
            return None, "no Ruby binding in this build"
        return ["ruby", "-I", lib, "-e", text], None
    return None, None


def run_command(cmd, cwd, env, stop_after):
    """(ok, detail) for one command run with bash -o pipefail."""
    started = time.time()
    p = subprocess.Popen(["bash", "-o", "pipefail", "-c", cmd], cwd=cwd, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    limit = stop_after if stop_after else COMMAND_TIMEOUT
    try:
        out, _ = p.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGINT)
        try:
            out, _ = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, _ = p.communicate()
        if stop_after:
            if out.strip():
                return True, f"stopped after {stop_after} s, printed {len(out.splitlines())} line(s)"
            return False, f"printed nothing in {stop_after} s"
        return False, f"still running after {COMMAND_TIMEOUT} s:\n{out[-2000:]}"
    if p.returncode != 0:
        return False, f"exit {p.returncode} after {time.time() - started:.1f} s:\n{out[-2000:]}"
    return True, f"exit 0 in {time.time() - started:.1f} s"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True)
    ap.add_argument("--build", required=True)
    a = ap.parse_args()
    source, build = os.path.abspath(a.source), os.path.abspath(a.build)
    files = ["README.md"] + sorted(os.path.relpath(p, source)
                                   for p in glob.glob(os.path.join(source, "docs", "*.md")))
    blocks = [b for f in files for b in blocks_of(os.path.join(source, f), f)]
    failures, ran, not_run = [], 0, []

    for b in blocks:
        if b.lang == "" and any(OUR_COMMANDS.match(l) for l in b.body):
            failures.append(f"{b.where()}: a block without a language holds commands: label it "
                            "```sh (it is then run, or marked not-run) or ```text")
        if b.marker and b.lang not in RUN_LANGS:
            failures.append(f"{b.where()}: a doc-test marker before a ```{b.lang or 'text'} block")

    tmp = tempfile.mkdtemp(prefix="segbus-doc-test-")
    daemon = feeder = None
    try:
        tree = os.path.join(tmp, "tree")
        copy_tree(source, tree)
        daemon = Daemon(build, tmp, tree)
        env = dict(os.environ)
        env.update(PATH=os.pathsep.join([os.path.join(build, "src", "cli"),
                                         os.path.join(build, "src", "daemon"), env["PATH"]]),
                   SEGBUS_SOCKET=daemon.socket, SEGBUS_METRICS=daemon.metrics,
                   SEGBUS_HUB=daemon.hub, SEGBUS_BUILD=build, HOME=os.path.join(tmp, "home"),
                   TMPDIR=tmp)
        os.makedirs(env["HOME"])
        feeder = Feeder(env)
        feeder.start()

        for b in blocks:
            if b.lang not in RUN_LANGS:
                continue
            kind, arg = (b.marker.group(1), b.marker.group(2)) if b.marker else (None, "")
            if kind == "not-run":
                if not arg:
                    failures.append(f"{b.where()}: not-run needs a reason")
                not_run.append(f"{b.where()}: {arg}")
                print(f"-- {b.where()}: not run: {arg}")
                continue
            stop_after = None
            if kind == "doc-test":
                m = re.fullmatch(r"stop-after=(\d+(?:\.\d+)?)", arg)
                if not m:
                    failures.append(f"{b.where()}: unknown doc-test marker {arg!r}")
                    continue
                stop_after = float(m.group(1))
            cmds = b.commands()
            if not cmds:
                failures.append(f"{b.where()}: a ```{b.lang} block with no command")
            for cmd in cmds:
                ok, detail = run_command(cmd, tree, env, stop_after)
                ran += 1
                print(f"{'ok' if ok else 'FAIL'} {b.where()}: {cmd.splitlines()[0]}  ({detail.splitlines()[0]})")
                if not ok:
                    failures.append(f"{b.where()}: {cmd}\n    {detail}")

        # Code examples in C, Python and Ruby.
        env["PYTHONPATH"] = os.path.join(build, "bindings", "python")
        snippets = 0
        for n, b in enumerate(blocks):
            if b.lang not in ("c", "python", "ruby"):
                continue
            if b.marker and b.marker.group(1) == "not-run":
                not_run.append(f"{b.where()}: {b.marker.group(2)}")
                continue
            if sanitizer_build(build):
                print(f"-- {b.where()}: ```{b.lang} not checked in a sanitizer build")
                continue
            argv, why = code_program(b, build, source, tmp, n)
            if argv is None:
                if why:
                    print(f"-- {b.where()}: ```{b.lang} not checked: {why}")
                continue
            if why:
                failures.append(f"{b.where()}: ```{b.lang} example {why}")
                print(f"FAIL {b.where()}: ```{b.lang} example {why.splitlines()[0]}")
                continue
            r = subprocess.run(argv, cwd=tree, env=env, capture_output=True, text=True, timeout=60)
            snippets += 1
            ok = r.returncode == 0
            print(f"{'ok' if ok else 'FAIL'} {b.where()}: ```{b.lang} example (exit {r.returncode})")
            if not ok:
                failures.append(f"{b.where()}: ```{b.lang} example exit {r.returncode}:\n"
                                f"{(r.stdout + r.stderr)[-2000:]}")
        print(f"-- {snippets} code examples run")

        # Every subcommand `segbus --help` lists is shown in the docs.
        pages = "\n".join(open(os.path.join(source, f), encoding="utf-8").read() for f in files)
        r = subprocess.run(["segbus", "--help"], env=env, capture_output=True, text=True, timeout=30)
        cmds = re.findall(r"^  (\w+)\s", r.stdout, re.M)
        if len(cmds) < 8:
            failures.append(f"segbus --help lists {len(cmds)} commands: {r.stdout[-500:]}")
        for c in cmds:
            if not re.search(r"\bsegbus " + c + r"\b", pages):
                failures.append(f"no page of the docs shows `segbus {c}` (segbus --help lists it)")
        print(f"-- segbus --help: {len(cmds)} commands, each shown in the docs")

        # Every metric family the daemon exposes is in the operations guide.
        ops = open(os.path.join(source, "docs", "operations.md"), encoding="utf-8").read()
        families = daemon.metric_families()
        if not families:
            failures.append("segbusd exposed no metric families")
        for fam in families:
            if fam not in ops:
                failures.append(f"docs/operations.md does not name the metric {fam}")
        print(f"-- metrics: {len(families)} families exposed, all checked against docs/operations.md")

        # The systemd unit is valid (with ExecStart pointing at the built daemon).
        units = sorted(glob.glob(os.path.join(source, "examples", "systemd", "*.service")))
        if shutil.which("systemd-analyze"):
            for unit in units:
                text = open(unit).read().replace("/usr/local/sbin/segbusd",
                                                 os.path.join(build, "src", "daemon", "segbusd"))
                path = os.path.join(tmp, os.path.basename(unit))
                with open(path, "w") as f:
                    f.write(text)
                r = subprocess.run(["systemd-analyze", "verify", path], capture_output=True,
                                   text=True, timeout=60)
                msgs = (r.stdout + r.stderr).strip()
                if r.returncode or msgs:
                    failures.append(f"systemd-analyze verify {os.path.relpath(unit, source)}: "
                                    f"exit {r.returncode}: {msgs}")
                else:
                    print(f"ok systemd-analyze verify {os.path.relpath(unit, source)}")
        else:
            print("-- systemd-analyze not installed: examples/systemd not verified")

        feeder.stopping.set()
        feeder.join(30)
        if feeder.sent == 0:
            failures.append(f"the feeder recorded no event ({feeder.failed} failed)")
        rc = daemon.stop()
        daemon = None
        if rc != 0:
            failures.append(f"segbusd did not shut down cleanly (exit {rc})")
    finally:
        if feeder:
            feeder.stopping.set()
        if daemon:
            daemon.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\n{ran} commands run from {len(files)} files; {len(not_run)} blocks not run here:")
    for n in not_run:
        print(f"  {n}")
    if ran == 0:
        failures.append("no command ran")
    if failures:
        print(f"\n{len(failures)} failure(s):", file=sys.stderr)
        for f in failures:
            print(f"  {f}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""segbus from many processes at once, and across os.fork() (pre-fork servers: gunicorn, uWSGI,
Celery): every event of every process reaches the ring exactly once and in each process's order."""
import os
import subprocess
import sys
import textwrap

import segbus


def by_source(events):
    out = {}
    for e in events:
        out.setdefault(e["properties"]["src"], []).append(e["properties"]["seq"])
    return out


def test_fork_parent_and_children_all_arrive(client, sink):
    client.track("parent", "Before Fork", {"src": "parent", "seq": 0})
    children = []
    for k in range(3):
        pid = os.fork()
        if pid == 0:  # child: the inherited client must work without any call to reset it
            code = 0
            try:
                for i in range(100):
                    ok, _ = client.track("child", "In Child", {"src": "child%d" % k, "seq": i})
                    if not ok:
                        code = 3
                if not client.flush(timeout=5):
                    code = 4
            except BaseException:
                code = 5
            os._exit(code)
        children.append(pid)
    for i in range(1, 51):
        client.track("parent", "After Fork", {"src": "parent", "seq": i})
    for pid in children:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    seqs = by_source(sink.wait(1 + 300 + 50))
    assert seqs["parent"] == list(range(51))
    for k in range(3):
        assert seqs["child%d" % k] == list(range(100))
    producers = {}
    for producer, e in sink.records:
        producers.setdefault(e["properties"]["src"], set()).add(producer)
    assert len(producers["parent"]) == 1
    child_ids = [producers["child%d" % k] for k in range(3)]
    assert all(len(p) == 1 for p in child_ids)
    assert len(set().union(*child_ids) | producers["parent"]) == 4  # each process its own id


def test_fork_with_module_level_default_client(sink):
    import segbus as analytics

    analytics.socket = sink.path
    analytics.track("p", "Parent", {"src": "parent", "seq": 0})
    pid = os.fork()
    if pid == 0:
        code = 0 if analytics.track("c", "Child", {"src": "child", "seq": 0})[0] else 3
        analytics.flush(5)
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert by_source(sink.wait(2)) == {"parent": [0], "child": [0]}


WRITER = textwrap.dedent("""
    import sys, segbus
    c = segbus.Client(socket=sys.argv[1], standalone=False)
    for i in range(int(sys.argv[3])):
        ok, _ = c.track("proc", "Concurrent", {"src": sys.argv[2], "seq": i, "pad": "p" * (i % 300)})
        assert ok, i
    assert c.flush(timeout=10)
""")


def test_many_processes_writing_at_once(sink):
    n_procs, n_events = 6, 2000
    env = dict(os.environ)
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, sink.path, "w%d" % k, str(n_events)],
                              env=env) for k in range(n_procs)]
    for p in procs:
        assert p.wait(60) == 0
    seqs = by_source(sink.wait(n_procs * n_events, timeout=30))
    assert sorted(seqs) == ["w%d" % k for k in range(n_procs)]
    for k in range(n_procs):
        assert seqs["w%d" % k] == list(range(n_events))

"""bench/report.py: the table and the plots of `bench/run report`, from JSON lines already written.

Kept apart from running the suites so that it can be run (and tested) in a second on existing
results: `bench/run report [--results DIR] [--plots DIR] [--no-plots]`.

Input: every bench/results/<suite>.jsonl (the last run of each suite; the timestamped combined
files all-*.jsonl are history and not read). Rows are the suites' JSON lines (see bench/run).

Output: a table on stdout (case, segbus, peer, ratio, goal, met?) grouped by suite, and four
SVG plots drawn by gnuplot (Debian gnuplot-nox) into docs/bench/:

  enqueue_by_size.svg      ring suite: enqueue cost by record size (median, p99) and the peers
                           (rows whose case names a size "<N>B" and that carry peer/peer_value)
  throughput_producers.svg records/s or events/s by number of producers: rows with a
                           "producers" field, or a case naming "<N>proc" / "<N>_producers"
  drain_hub_throughput.svg events/s of the drain and hub suites (and kafka, warehouse), segbus
                           beside the peer of the same run where there is one
  latency.svg              end-to-end latency distribution: rows whose case names "latency",
                           with percentile fields p50, p90, p99, p999 (and max), in the row's unit

A plot with no rows to draw says so in the figure (and on stderr) rather than disappearing, so
that the README's links stay valid and the missing suite is named.
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")
PLOTS = os.path.join(ROOT, "docs", "bench")
# Suites whose events/s rows go into drain_hub_throughput.svg, in this order.
THROUGHPUT_SUITES = ("drain", "hub", "kafka", "warehouse")
# The command that reproduces each figure; printed in the figure's title.
FIGURES = {
    "enqueue_by_size.svg": "bench/run ring",
    "throughput_producers.svg": "bench/run ring drain",
    "drain_hub_throughput.svg": "bench/run drain hub kafka warehouse",
    "latency.svg": "bench/run drain",
}


def load(results_dir):
    """Rows of every <suite>.jsonl in results_dir, in suite order; bad lines are reported."""
    rows = []
    for path in sorted(glob.glob(os.path.join(results_dir, "*.jsonl"))):
        if os.path.basename(path).startswith("all-"):
            continue
        with open(path) as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    print(f"report: {path}:{n}: not JSON ({e}); line skipped", file=sys.stderr)
                    continue
                if not isinstance(row, dict) or not all(k in row for k in ("suite", "case", "value")):
                    print(f"report: {path}:{n}: needs suite, case and value; line skipped",
                          file=sys.stderr)
                    continue
                rows.append(row)
    return rows


def num(v):
    """A number as the table shows it: 3 significant digits, thousands separated."""
    if v is None:
        return "-"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def table_lines(rows):
    head = ("case", "segbus", "peer", "ratio", "goal", "met?")
    lines, suite = [], None
    body = []
    for r in rows:
        unit = r.get("unit") or ""
        peer = "-"
        if r.get("peer"):
            peer = f"{r['peer']} {num(r.get('peer_value'))}"
        met = {True: "yes", False: "NO"}.get(r.get("met"), "-")
        body.append((r["suite"], (str(r["case"]), f"{num(r['value'])} {unit}".strip(), peer,
                                  num(r.get("ratio")), str(r.get("goal") or "-"), met)))
    widths = [max([len(h)] + [len(b[1][i]) for b in body]) for i, h in enumerate(head)]
    fmt = lambda cols: "  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip()
    lines.append(fmt(head))
    for s, cols in body:
        if s != suite:
            suite = s
            lines.append(f"[{s}]")
        lines.append(fmt(cols))
    return lines


def summary_line(rows):
    goals = [r for r in rows if "met" in r]
    met = sum(1 for r in goals if r["met"] is True)
    return f"{len(rows)} results from {len(set(r['suite'] for r in rows))} suites; " \
           f"goals met: {met} of {len(goals)}"


# ---- plots ---------------------------------------------------------------------------------

def q(s):
    """A gnuplot string literal."""
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


def size_of(case):
    m = re.search(r"(?:^|_)(\d+)(K|KB|KiB)?B?(?:_|$)", case)
    if not m:
        return None
    return int(m.group(1)) * (1024 if m.group(2) else 1)


def enqueue_series(rows):
    """{series title: [(size, ns)]} for the ring's enqueue costs and every peer by size."""
    series = {}
    for r in rows:
        if r["suite"] != "ring":
            continue
        case = r["case"]
        m = re.match(r"enqueue_(\d+)B_(median|p99)$", case)
        if m:
            series.setdefault(f"segbus enqueue, {m.group(2)}", []).append((int(m.group(1)), r["value"]))
            continue
        if case.endswith("_live_reader"):
            size = size_of(case)
            if size:
                series.setdefault("segbus to a live reader", []).append((size, r["value"]))
            continue
        if r.get("peer") and r.get("peer_value") is not None and "p99" not in case:
            size = size_of(case)
            if size:
                series.setdefault(f"peer: {r['peer']}", []).append((size, r["peer_value"]))
    return {k: sorted(set(v)) for k, v in series.items()}


def producer_series(rows):
    """{series title: [(producers, value)]} from rows naming a number of producers."""
    series = {}
    for r in rows:
        unit = r.get("unit") or ""
        if "/s" not in unit:
            continue
        n = r.get("producers")
        stem = r["case"]
        if not isinstance(n, int):
            m = re.search(r"(\d+)_?(?:procs?|producers?)(?=_|\W|$)", r["case"])
            if not m:
                continue
            n = int(m.group(1))
            stem = re.sub(r"__+", "_", r["case"][:m.start()] + r["case"][m.end():]).strip("_ ")
        series.setdefault(f"{r['suite']}: {stem} ({unit})", []).append((n, r["value"]))
        if r.get("peer") and r.get("peer_value") is not None:
            series.setdefault(f"peer: {r['peer']} ({unit})", []).append((n, r["peer_value"]))
    return {k: sorted(set(v)) for k, v in series.items()}


def throughput_rows(rows):
    """[(label, segbus, peer or None)] of events/s rows of the drain, hub, kafka, warehouse suites."""
    out = []
    for suite in THROUGHPUT_SUITES:
        for r in rows:
            if r["suite"] == suite and (r.get("unit") or "").startswith("events/s"):
                peer = r.get("peer_value") if r.get("peer") else None
                out.append((f"{suite}: {r['case']}", r["value"], peer))
    return out


PCT = re.compile(r"^p(\d+)(?:_(?:ns|us|ms|s))?$")
MAX = re.compile(r"^max(?:_(?:ns|us|ms|s))?$")
SUFFIX = re.compile(r"_(p\d+|median|max)$")


def pct_of(tag):
    """50.0 for "p50" or "median", 99.9 for "p999", 100.0 for "max"."""
    if tag == "median":
        return 50.0
    if tag == "max":
        return 100.0
    digits = tag[1:]
    # p999 is the 99.9th percentile, p9999 the 99.99th.
    return float(digits) if len(digits) <= 2 else float(digits[:2] + "." + digits[2:])


def latency_series(rows):
    """{series: [(percentile, value)]} from rows whose case names "latency": percentile fields
    (p50, p99_ms, p999, max, ...) and a case ending in _p99 / _median / _max for the value;
    rows of one case stem (e2e_latency_p50, e2e_latency_p99, ...) make one series."""
    series = {}
    for r in rows:
        if "latency" not in r["case"]:
            continue
        stem, pts = r["case"], {}
        m = SUFFIX.search(stem)
        if m:
            stem = stem[:m.start()]
            if isinstance(r.get("value"), (int, float)):
                pts[pct_of(m.group(1))] = r["value"]
        for k, v in r.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                if PCT.match(k):
                    pts[pct_of(k.split("_")[0])] = v
                elif MAX.match(k):
                    pts[100.0] = v
        if pts:
            series.setdefault(f"{r['suite']}: {stem} ({r.get('unit') or ''})", {}).update(pts)
    return {k: sorted(v.items()) for k, v in series.items()}


HEAD = """set terminal svg size 900,520 dynamic enhanced font "sans,12" background rgb "white"
set output {out}
set title {title} noenhanced
set key outside right top noenhanced
set grid
"""


def empty_plot(out, title, why):
    return HEAD.format(out=q(out), title=q(title)) + (
        "unset border\nunset tics\nunset key\nunset grid\n"
        f"set label 1 {q(why)} at graph 0.5, graph 0.5 center noenhanced\n"
        "plot [0:1][0:1] NaN notitle\n")


def lines_plot(out, title, xlabel, ylabel, series, logx=False, logy=False, xtics=None,
               yfmt=None):
    """A gnuplot script drawing each series as lines+points from inline data blocks."""
    s = HEAD.format(out=q(out), title=q(title))
    s += f"set xlabel {q(xlabel)}\nset ylabel {q(ylabel)}\n"
    if yfmt:
        s += f"set format y {q(yfmt)}\nset yrange [0:*]\n"
    if logx:
        s += "set logscale x 2\n"
    if logy:
        s += "set logscale y 10\n"
    if xtics:
        s += "set xtics (" + ", ".join(f"{q(l)} {x}" for l, x in xtics) + ")\n"
    names = []
    for i, (name, pts) in enumerate(series.items()):
        s += f"$d{i} << EOD\n" + "".join(f"{x} {y}\n" for x, y in pts) + "EOD\n"
        style = "linespoints" if len(pts) > 1 else "points pointsize 1.6"
        names.append(f"$d{i} using 1:2 with {style} linewidth 2 title {q(name)}")
    return s + "plot " + ", \\\n     ".join(names) + "\n"


def bars_plot(out, title, ylabel, bars):
    """Clustered bars: segbus and, where there is one, the peer of the same run."""
    s = HEAD.format(out=q(out), title=q(title))
    s += (f"set ylabel {q(ylabel)}\nset style data histogram\nset style histogram clustered gap 1\n"
          "set style fill solid 0.8 border -1\nset boxwidth 0.9\nset xtics rotate by -30 noenhanced\n"
          "set logscale y 10\nset yrange [1000:*]\nset format y \"%.1s%c\"\nset bmargin 10\n")
    s += "$d << EOD\n"
    for label, v, peer in bars:
        s += f"{q(label)} {v} {peer if peer is not None else 'NaN'}\n"
    s += "EOD\n"
    s += ('plot $d using 2:xtic(1) title "segbus", '
          '$d using 3 title "peer (same run)"\n')
    return s


def draw(script, out):
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if r.returncode or not os.path.exists(out):
        raise RuntimeError(f"gnuplot failed for {out}: {r.stderr.strip()[-2000:]}")


def plots(rows, out_dir):
    """Writes the four SVGs into out_dir; returns [(file, rows drawn)]."""
    if not shutil.which("gnuplot"):
        raise RuntimeError("gnuplot is not installed (apt-get install gnuplot-nox; "
                           "it is in scripts/packages.txt)")
    os.makedirs(out_dir, exist_ok=True)
    done = []

    suites_of = {"enqueue_by_size.svg": ("ring",), "throughput_producers.svg": ("ring", "drain"),
                 "drain_hub_throughput.svg": THROUGHPUT_SUITES, "latency.svg": ("drain",)}

    def load_note(name):
        """The machine's load average during the runs drawn, when the suites recorded it."""
        loads = [r.get("loadavg", r.get("load")) for r in rows if r["suite"] in suites_of[name]]
        loads = [x for x in loads if isinstance(x, (int, float)) and not isinstance(x, bool)]
        if not loads:
            return ""
        lo, hi = min(loads), max(loads)
        return f", load avg {lo:.1f}" + (f"-{hi:.1f}" if hi - lo >= 0.05 else "")

    def title(name, what):
        return f"{what}  [{FIGURES[name]}; bench/run report{load_note(name)}]"

    def emit(name, what, script_fn, n, missing):
        out = os.path.join(out_dir, name)
        tmp = out + ".tmp"
        script = script_fn(tmp) if n else empty_plot(tmp, title(name, what), missing)
        if not n:
            print(f"report: {name}: {missing}", file=sys.stderr)
        draw(script, tmp)
        os.replace(tmp, out)
        done.append((name, n))

    enq = enqueue_series(rows)
    emit("enqueue_by_size.svg", "Enqueue cost by record size", lambda o: lines_plot(
        o, title("enqueue_by_size.svg", "Enqueue cost by record size, segbus and peers"),
        "record payload (bytes)", "ns per record (log)", enq, logx=True, logy=True),
        sum(len(v) for v in enq.values()), "no ring results: run bench/run ring")

    prod = producer_series(rows)
    xt = sorted({x for v in prod.values() for x, _ in v})
    emit("throughput_producers.svg", "Throughput by number of producers", lambda o: lines_plot(
        o, title("throughput_producers.svg", "Throughput by number of producers"),
        "producers", "per second", prod, xtics=[(str(x), x) for x in xt], yfmt="%.1s%c"),
        sum(len(v) for v in prod.values()), "no rows with a number of producers: run bench/run ring drain")

    thr = throughput_rows(rows)
    emit("drain_hub_throughput.svg", "Drain and hub throughput", lambda o: bars_plot(
        o, title("drain_hub_throughput.svg", "Drain, hub and destination throughput"), "events/s (log)",
        thr), len(thr), "no drain or hub results: run bench/run drain hub")

    lat = latency_series(rows)
    pct = sorted({x for v in lat.values() for x, _ in v})
    emit("latency.svg", "End-to-end latency distribution", lambda o: latency_script(
        o, lat, pct, title("latency.svg", "End-to-end latency by percentile (enqueue to receiver)")),
         sum(len(v) for v in lat.values()), "no end-to-end latency results: run bench/run drain")
    return done


def latency_script(out, lat, pct, title):
    # Percentiles are spaced evenly (p50, p90, p99, p99.9, max), not on a linear axis.
    index = {p: i for i, p in enumerate(pct)}
    series = {k: [(index[p], v) for p, v in pts] for k, pts in lat.items()}
    return lines_plot(out, title, "percentile", "latency (unit in the key; log)", series, logy=True,
                      xtics=[("max" if p == 100.0 else f"p{p:g}", i) for p, i in index.items()])


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(prog="bench/run report",
                                 description="Table and plots from bench/results/*.jsonl.")
    ap.add_argument("--results", default=RESULTS, help="directory of <suite>.jsonl (bench/results)")
    ap.add_argument("--plots", default=PLOTS, help="directory for the SVGs (docs/bench)")
    ap.add_argument("--no-plots", action="store_true", help="print the table only")
    a = ap.parse_args(argv)
    rows = load(a.results)
    if not rows:
        print(f"report: no results in {a.results} (run bench/run SUITE first)", file=sys.stderr)
        return 1
    for line in table_lines(rows):
        print(line)
    print(summary_line(rows))
    if not a.no_plots:
        try:
            for name, n in plots(rows, a.plots):
                print(f"report: {os.path.join(a.plots, name)} ({n} points)", file=sys.stderr)
        except RuntimeError as e:
            print(f"report: {e}", file=sys.stderr)
            return 1
    return 0

"""tests/bench/report_test.py: `bench/run report` on a fixture of JSON lines: table and SVG plots.

Runs the real command (bench/run, gnuplot) on tests/bench/fixture/*.jsonl into a temp dir and
checks what a reader of the README relies on: every row in the table with its goal verdict,
the combined history files ignored, bad lines reported, and each figure drawn with its series
and the command that reproduces it.
"""
import os
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN = os.path.join(ROOT, "bench", "run")
FIXTURE = os.path.join(ROOT, "tests", "bench", "fixture")


def report(results, plots, *extra):
    return subprocess.run(["/usr/bin/python3", RUN, "report", "--results", results,
                           "--plots", plots, *extra], capture_output=True, text=True, timeout=60)


def svg_text(path):
    """All text of an SVG (gnuplot writes titles, labels and keys as <text>)."""
    root = ET.parse(path).getroot()
    return " ".join(t for t in root.itertext())


class ReportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="segbus-report-test-")
        cls.plots = os.path.join(cls.tmp.name, "plots")
        cls.r = report(FIXTURE, cls.plots)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_exit_and_summary(self):
        self.assertEqual(self.r.returncode, 0, self.r.stderr)
        # 7 ring + 6 drain + 1 hub rows; goals: 5 in ring, 1 drain, 1 hub (not met).
        self.assertIn("14 results from 3 suites; goals met: 6 of 7", self.r.stdout)

    def test_table_rows(self):
        out = self.r.stdout
        head = out.splitlines()[0].split()
        self.assertEqual(head, ["case", "segbus", "peer", "ratio", "goal", "met?"])
        lines = {l.split()[0]: l for l in out.splitlines() if l and not l.startswith("[")}
        self.assertRegex(lines["enqueue_256B_median_vs_rte_ring"],
                         r"13\.2 ns\s+dpdk_rte_ring_mp 6\.88\s+1\.91\s+ratio <= 2\s+yes$")
        self.assertRegex(lines["throughput_2proc_256B"], r"30,284,450 records/s\s+-\s+-\s+>= 10000000\s+yes$")
        self.assertRegex(lines["json_batch_file"], r"171,234 events/s\s+-\s+-\s+>= 200000\s+NO$")
        self.assertRegex(lines["enqueue_256B_p99"], r"29\.4 ns\s+-\s+-\s+-\s+-$")
        for suite in ("[drain]", "[hub]", "[ring]"):
            self.assertIn(suite, out.splitlines())
        self.assertNotIn("never read by report", out)

    def test_bad_line_reported(self):
        self.assertRegex(self.r.stderr, r"ring\.jsonl:7: not JSON")

    def test_plots(self):
        expect = {
            "enqueue_by_size.svg": ["segbus enqueue, median", "peer: dpdk_rte_ring_mp",
                                    "peer: unix_dgram_socket", "bench/run ring"],
            "throughput_producers.svg": ["ring: throughput_256B (records/s)",
                                         "drain: drain_msgpack_hub (events/s)",
                                         "peer: analytics-node (events/s)"],
            "drain_hub_throughput.svg": ["drain: drain_msgpack_hub", "hub: json_batch_file",
                                         "peer (same run)", "bench/run drain hub"],
            "latency.svg": ["drain: e2e_latency (ms)", "drain: hub_latency_10k (us)", "p50", "p90",
                            "p99", "p99.9", "max", "bench/run drain", "load avg 5.2"],
        }
        for name, texts in expect.items():
            path = os.path.join(self.plots, name)
            self.assertTrue(os.path.exists(path), name)
            text = svg_text(path)
            for t in texts:
                self.assertIn(t, text, f"{name} lacks {t!r}")
            self.assertNotIn("no data", text)
        self.assertEqual(sorted(os.listdir(self.plots)), sorted(expect))

    def test_latency_series_merge_rows_of_one_case(self):
        sys.path.insert(0, os.path.join(ROOT, "bench"))
        import report
        rows = report.load(FIXTURE)
        lat = report.latency_series(rows)
        self.assertEqual(lat["drain: e2e_latency (ms)"], [(50.0, 61.5), (99.0, 104.8), (100.0, 120.4)])
        self.assertEqual(lat["drain: hub_latency_10k (us)"], [(50.0, 800), (90.0, 950), (99.9, 2100)])

    def test_missing_suite_plot_says_so(self):
        with tempfile.TemporaryDirectory() as res, tempfile.TemporaryDirectory() as plots:
            with open(os.path.join(FIXTURE, "ring.jsonl")) as f, \
                    open(os.path.join(res, "ring.jsonl"), "w") as g:
                g.write(f.read())
            r = report(res, plots)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("no end-to-end latency results: run bench/run drain",
                          svg_text(os.path.join(plots, "latency.svg")))
            self.assertIn("latency.svg: no end-to-end latency results", r.stderr)

    def test_no_results_fails(self):
        with tempfile.TemporaryDirectory() as res:
            r = report(res, os.path.join(res, "p"), "--no-plots")
            self.assertEqual(r.returncode, 1)
            self.assertIn("no results in", r.stderr)


if __name__ == "__main__":
    prog = unittest.main(exit=False, verbosity=2)
    res = prog.result
    sys.exit(0 if res.wasSuccessful() and res.testsRun > 0 else 1)

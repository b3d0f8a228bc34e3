"""run_pytest.py: ctest's entry to the Python binding tests: pytest, failing when nothing ran.

pytest exits 5 when it collects no test; that must never pass as green (a renamed file, a broken
conftest or an import error in collection would otherwise hide every test)."""
import sys

import pytest


class _Count:
    passed = 0

    def pytest_runtest_logreport(self, report):
        if report.when == "call" and report.passed:
            self.passed += 1


def main():
    count = _Count()
    rc = pytest.main(sys.argv[1:], plugins=[count])
    if rc == 0 and count.passed == 0:
        print("run_pytest: no test passed (none collected?): failing", file=sys.stderr)
        return 1
    if rc == 5:
        return 1
    return int(rc)


if __name__ == "__main__":
    sys.exit(main())

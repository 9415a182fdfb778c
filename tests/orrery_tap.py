"""The TAP reporter of the Python tests (meson runs them with protocol: 'tap').

Each check prints "ok N - what" or "not ok N - what" followed by the last
lines of its detail, so a failure names itself; finish() prints the plan
and exits 1 if anything failed. tests/tap.h is the same for the C tests.
"""
import sys

DETAIL_LINES = 40


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def check(self, ok, what, detail=None):
        self.n += 1
        print(f"{'ok' if ok else 'not ok'} {self.n} - {what}", flush=True)
        if not ok:
            self.failed += 1
            if detail is not None:
                for line in str(detail).splitlines()[-DETAIL_LINES:]:
                    print(f"#   {line}", flush=True)
        return ok

    def finish(self):
        print(f"1..{self.n}", flush=True)
        sys.exit(1 if self.failed else 0)

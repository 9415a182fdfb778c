"""What the benchmarks share: percentiles, CPU time, the machine they ran on, and a guest on a serial console.

Every bench/*.py that reports a percentile or a CPU figure takes it from
here, so two tables in bench/ computed the same quantity the same way;
every one that drives a guest through its serial console does it with
SerialGuest, so their times are taken at the same point (when the output
was read).
"""
import os
import platform
import re
import subprocess
import sys
import threading
import time

# The helpers the tests have too (a free port, a process's lines) are theirs, shared from here.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
from orrery_test import Lines, free_port  # noqa: E402,F401


def pct(values, p):
    """The p-th percentile (0-100), interpolated between the two nearest ranks; nan without values."""
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def cpu_ticks(pid):
    """utime + stime of a process (all its threads), in clock ticks (os.sysconf('SC_CLK_TCK') a second)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def load():
    """The one-minute load average, as the kernel prints it."""
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def machine():
    """One line naming the CPUs and kernel, for the tables' headers."""
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {model}, Linux {platform.release()}"


class SerialGuest:
    """An emulator (orrery-vm, or QEMU with -nographic) whose serial console is its stdin and stdout.

    Output is kept as it arrives, with the time each piece was read: raw
    in .out (bytes patterns search it, offsets into it) and decoded
    without carriage returns in .text (str patterns search it line by
    line, re.M). stderr is kept apart, its last lines shown when a wait
    fails. .start is when the process was started.
    """

    def __init__(self, cmd, env=None):
        self.start = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env)
        self.out = b""
        self.text = ""
        self.err = []
        self.stamps = []  # (len(out), len(text), time read) after each piece
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self):
        while True:
            data = self.proc.stdout.read1(65536)
            t = time.monotonic()
            if not data:
                break
            with self.cond:
                self.out += data
                self.text += data.decode(errors="replace").replace("\r", "")
                self.stamps.append((len(self.out), len(self.text), t))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def _read_err(self):
        for line in self.proc.stderr:
            with self.cond:
                self.err = (self.err + [line.decode(errors="replace").rstrip()])[-20:]

    def _view(self, pattern):
        """The buffer a pattern searches, and which stamp column measures it."""
        if isinstance(pattern, bytes):
            return self.out, 0, 0
        return self.text, 1, re.M

    def _stamp(self, column, end):
        return next(s[2] for s in self.stamps if s[column] >= end)

    def wait_for(self, pattern, timeout=300, since=0):
        """Waits for pattern after offset since: (the match, the time its end was read). Raises TimeoutError."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                buf, column, flags = self._view(pattern)
                m = re.compile(pattern, flags).search(buf, since)
                if m:
                    return m, self._stamp(column, m.end())
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    state = "timed out" if left <= 0 else f"the emulator exited ({self.proc.returncode})"
                    raise TimeoutError(f"{pattern!r} not seen, {state}: {buf[-800:]!r} {self.err[-5:]}")
                self.cond.wait(min(left, 0.2))

    def all_after(self, pattern, since):
        """Every match after since, each with the time its end was read."""
        with self.cond:
            buf, column, flags = self._view(pattern)
            return [(m, self._stamp(column, m.end())) for m in re.compile(pattern, flags).finditer(buf, since)]

    def send(self, text):
        """Types text on the console; returns the offset in .text where what follows it begins."""
        with self.cond:
            pos = len(self.text)
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()
        return pos

    def command(self, cmd, pattern, timeout=300):
        """Types a shell command and waits for pattern (bytes or str) in what follows; returns the match."""
        with self.cond:
            since = len(self.out) if isinstance(pattern, bytes) else len(self.text)
        self.send(cmd + "\n")
        return self.wait_for(pattern, timeout, since)[0]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

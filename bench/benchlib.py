"""What the benchmarks share: percentiles, CPU time, and the machine they ran on.

Every bench/*.py that reports a percentile or a CPU figure takes it from
here, so two tables in bench/ computed the same quantity the same way.
"""
import os
import platform


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

#!/usr/bin/env python3
"""The code cache a Debian boot needs, and orrery-vm's memory at Debian's login prompt.

Boots `orrery-vm --guest debian --cpu-engine jit` (the image from `meson
compile -C build debian-image`, its disk with snapshot=on so the image is
never written) once per code cache size (ORRERY_JIT_CACHE_SIZE), waits
for systemd's "Reached target ... Multi-User System" on the serial console
(not for "login:": agetty first asks the terminal for its cursor position
and, over a pipe that never answers, may wait for minutes). Then it
waits for the guest to settle (its CPU idle), reads /proc/PID/smaps (classified as
bench/mem_breakdown.py does), then presses the power button (SIGTERM) and
takes the engine's counters (ORRERY_JIT_STATS) from its exit: blocks
translated, whole-cache flushes, and the peak of host code in the cache.

A cache at least as big as the peak never flushes; a smaller one flushes
and translates again what it dropped (the counters show how often).

Known problem: with its serial input a silent pipe, the Debian guest's
boot sometimes stalls, idle, for many minutes (seen with this tree and the
one before it; not the engine: the guest waits in WFI); booted by hand
with /dev/zero as its input it reaches login in about 100 s.

Usage: bench/jit_cache_debian.py [--build DIR] [--cache-mib N]...
"""
import argparse
import os
import re
import signal
import sys
import time

from benchlib import SerialGuest as Guest, cpu_ticks, load, machine
from mem_breakdown import beyond_ram, classify, read_smaps


def run_one(args, cache_mib):
    debian = os.path.join(args.build, "guest", "debian")
    cmd = [os.path.join(args.build, "emulator", "orrery-vm"), "--name", "jitcache", "--no-bus", "--no-config",
           "--guest", "debian", "--cpu-engine", "jit", "--display", "none",
           "--drive", f"file={os.path.join(debian, 'debian.img')},snapshot=on"]
    env = dict(os.environ, ORRERY_JIT_STATS="1", ORRERY_JIT_CACHE_SIZE=str(cache_mib << 20))
    g = Guest(cmd, env=env)
    try:
        login = g.wait_for(rb"Reached target.*Multi-User System", 1800)[1] - g.start
        settle(g.proc.pid)
        cls = classify(read_smaps(g.proc.pid))
        g.proc.send_signal(signal.SIGTERM)
        g.proc.wait(600)
    finally:
        g.stop()
    stats = next((line for line in g.err if re.search(r"jit: \d+ blocks translated", line)), "")
    tables = next((line for line in g.err if "jit: resident" in line), "")
    return login, cls, stats, tables


def settle(pid, timeout=300):
    """Waits until the VM uses under a tenth of a CPU over two seconds: the boot's last jobs are done."""
    deadline = time.monotonic() + timeout
    before = cpu_ticks(pid)
    while time.monotonic() < deadline:
        time.sleep(2)
        now = cpu_ticks(pid)
        if now - before < 0.2 * os.sysconf("SC_CLK_TCK"):
            return
        before = now


def number(pattern, text):
    m = re.search(pattern, text)
    return int(m.group(1)) if m else -1


def main():
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser()
    p.add_argument("--build", default=os.path.join(top, "build"))
    p.add_argument("--cache-mib", type=int, action="append", help="code cache size(s) in MiB (default: 32, 128)")
    args = p.parse_args()

    print(f"machine: {machine()}; load {load()}")
    print("| cache | start to multi-user.target | blocks translated | cache flushes | code cache peak | "
          "code cache resident | resident beyond guest RAM | load |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for mib in args.cache_mib or [32, 128]:
        login, cls, stats, tables = run_one(args, mib)
        blocks = number(r"(\d+) blocks translated", stats)
        flushes = number(r"(\d+) cache flushes", stats)
        peak = number(r"code cache peak (\d+) KiB", stats) / 1024
        print(f"| {mib} MiB | {login:.1f} s | {blocks} | {flushes} | {peak:.1f} MiB | "
              f"{cls['code cache']['Pss'] / 1024:.1f} MiB | {beyond_ram(cls) / 1024:.1f} MiB | {load()} |")
        print(f"  {tables.strip()}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()

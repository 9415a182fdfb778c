#!/usr/bin/env python3
"""Boots the same OpenSBI + kernel + initramfs on orrery-vm and on QEMU's
riscv64 "virt" board (TCG) and prints, over N runs (min/median/max):

  - time from process start to the guest's ready marker,
  - the guest CPU benchmark (orrery-guest-probe cpu-bench) in milliseconds
    as measured by the guest's own clock, and the wall-clock time it took,
  - the busybox shell loop (LOOP iterations of i=$((i+1)) in the guest's
    sh, 300,000 by default), timed on the host between two serial markers
    the guest prints before and after it,
  - orrery-vm's resident memory beyond the guest RAM the guest touched
    (RSS minus the RAM memfd's resident pages).

With --kernel another kernel boots the same initramfs (Debian's: the
kernel copied out next to the Debian image, `meson compile -C build
debian-image`), and the time from process start to the kernel's "Run
/init" line is printed too.

With --also-build DIR, that build's orrery-vm (the tree before a change,
say) is measured too, on the same guest, in the same interleaved rounds.

Usage: bench/boot_vs_qemu.py [--runs N] [--build DIR] [--engine interp|jit]... [--loop N] [--no-qemu]
                             [--kernel IMAGE] [--also-build DIR]...
"""
import argparse
import os
import re
import statistics
import sys
import time

from benchlib import SerialGuest as Guest

READY = b"orrery-guest: ready"
BIOS = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin"


def rss_beyond_ram(pid):
    """RSS of the process minus the resident pages of guest RAM (the orrery-ram memfd mapping)
    and of the JIT's code cache (the orrery-jit memfd, mapped twice: counted once, separately).
    Returns (beyond RAM and code cache, code cache), in MiB."""
    rss = ram = 0
    jit = []
    current = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                current = line
            elif line.startswith("Rss:"):
                kb = int(line.split()[1])
                rss += kb
                if current and "orrery-ram" in current:
                    ram += kb
                elif current and "orrery-jit" in current:
                    jit.append(kb)
    return (rss - ram - sum(jit)) / 1024.0, max(jit, default=0) / 1024.0


def run_one(kind, args):
    if kind.startswith("orrery"):
        engine = kind.partition("-")[2].partition("@")[0] or "interp"
        cmd = [args.binaries.get(kind, args.orrery), "--name", "bench", "--kernel", args.kernel, "--initrd", args.initrd,
               "--bios", BIOS, "--display", "none", "--memory", "512M", "--no-bus", "--cpu-engine", engine]
    else:
        cmd = ["qemu-system-riscv64", "-M", "virt", "-m", "512M", "-nographic", "-bios", BIOS,
               "-kernel", args.kernel, "-initrd", args.initrd, "-append", "console=ttyS0",
               "-global", "virtio-mmio.force-legacy=false", "-monitor", "none", "-serial", "stdio"]
    g = Guest(cmd)
    try:
        to_init = None
        if args.init_marker:
            _, t_init = g.wait_for(rb"Run /init as init process", 300)
            to_init = t_init - g.start
        _, t_ready = g.wait_for(READY, 300)
        ready = t_ready - g.start
        since = len(g.out)
        t0 = time.monotonic()
        g.send("orrery-guest-probe cpu-bench\n")
        m, t1 = g.wait_for(rb"cpu-bench result=(\w+) ms=(\d+)\r?\n", 600, since)
        rss, cache = rss_beyond_ram(g.proc.pid) if kind.startswith("orrery") else (None, None)
        loop = None
        if args.loop:
            # The echoed command line has "echo loop-start" and "loop-end=$i": only the output matches.
            since = len(g.out)
            g.send(f"echo loop-start; i=0; while [ $i -lt {args.loop} ]; do i=$((i+1)); done; echo loop-end=$i\n")
            _, t_start = g.wait_for(rb"\nloop-start", 60, since)
            m_end, t_end = g.wait_for(rb"loop-end=(\d+)\r?\n", 1800, since)
            if int(m_end.group(1)) != args.loop:
                raise RuntimeError(f"the loop ended at {m_end.group(1)!r}")
            loop = t_end - t_start
        return ready, int(m.group(2)), t1 - t0, m.group(1).decode(), rss, cache, loop, to_init
    finally:
        g.stop()


def summary(values):
    return f"min {min(values):8.3f}  median {statistics.median(values):8.3f}  max {max(values):8.3f}"


def main():
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--build", default=os.path.join(top, "build"))
    p.add_argument("--engine", action="append", choices=["interp", "jit"],
                   help="orrery-vm CPU engine(s) to measure (repeatable; default: interp)")
    p.add_argument("--no-qemu", action="store_true", help="measure orrery-vm only")
    p.add_argument("--loop", type=int, default=300000, help="shell loop iterations (0: skip the loop)")
    p.add_argument("--kernel", help="another kernel for the same initramfs (e.g. Debian's); times 'Run /init' too")
    p.add_argument("--also-build", action="append", default=[], metavar="DIR",
                   help="also measure this build's orrery-vm (same guest, interleaved; repeatable), "
                        "e.g. the tree before a change")
    args = p.parse_args()
    args.orrery = os.path.join(args.build, "emulator", "orrery-vm")
    args.init_marker = args.kernel is not None
    args.kernel = args.kernel or os.path.join(args.build, "guest", "Image")
    args.initrd = os.path.join(args.build, "guest", "initramfs.cpio.gz")

    kinds = ["orrery-" + e for e in (args.engine or ["interp"])]
    args.binaries = {}
    for other in args.also_build:
        for e in args.engine or ["interp"]:
            kind = f"orrery-{e}@{other}"
            args.binaries[kind] = os.path.join(other, "emulator", "orrery-vm")
            kinds.append(kind)
    kinds += [] if args.no_qemu else ["qemu"]
    # Rounds interleave the kinds, so that on a shared machine each sees the same changes in load.
    results = {kind: [] for kind in kinds}
    for i in range(args.runs):
        for kind in kinds:
            results[kind].append(run_one(kind, args))
            r = results[kind][-1]
            loop = f", shell loop {r[6]:.2f} s" if args.loop else ""
            init = f"/init {r[7]:.3f} s, " if args.init_marker else ""
            print(f"round {i + 1} {kind}: {init}boot {r[0]:.3f} s, cpu-bench {r[1]} ms{loop}, "
                  f"load {os.getloadavg()[0]:.1f}")
            sys.stdout.flush()
    for kind in kinds:
        rows = results[kind]
        if args.init_marker:
            print(f"{kind:13s} start to /init (s)    {summary([r[7] for r in rows])}")
        print(f"{kind:13s} boot to ready (s)     {summary([r[0] for r in rows])}")
        print(f"{kind:13s} cpu-bench guest (ms)  {summary([r[1] for r in rows])}")
        print(f"{kind:13s} cpu-bench wall (s)    {summary([r[2] for r in rows])}")
        print(f"{kind:13s} cpu-bench checksum    {sorted(set(r[3] for r in rows))}")
        if args.loop:
            print(f"{kind:13s} shell loop (s)        {summary([r[6] for r in rows])}")
        if kind.startswith("orrery"):
            print(f"{kind:13s} RSS beyond RAM (MiB)  {summary([r[4] for r in rows])}")
            if kind.startswith("orrery-jit"):
                print(f"{kind:13s} code cache RSS (MiB)  {summary([r[5] for r in rows])}")
        sys.stdout.flush()

    def med(kind, i):
        return statistics.median(r[i] for r in results[kind])
    if "qemu" in results:
        for kind in results:
            if kind.startswith("orrery"):
                loop = f", shell loop {med(kind, 6) / med('qemu', 6):.2f}x" if args.loop else ""
                init = f"/init {med(kind, 7) / med('qemu', 7):.2f}x, " if args.init_marker else ""
                print(f"ratio {kind}/qemu: {init}boot {med(kind, 0) / med('qemu', 0):.2f}x, "
                      f"cpu-bench {med(kind, 1) / med('qemu', 1):.2f}x{loop}")


if __name__ == "__main__":
    main()

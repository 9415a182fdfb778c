#!/usr/bin/env python3
"""Where orrery-vm's resident memory goes, mapping by mapping (/proc/PID/smaps).

Boots the default guest (or --kernel with the same initramfs), runs
`orrery-guest-probe cpu-bench` and then reads the process's smaps while
the guest sits at its shell prompt. Every mapping falls in one class:

  guest RAM        the orrery-ram memfd (guest-visible, the guest's size)
  framebuffer      the orrery-framebuffer memfd (guest-visible, like RAM)
  code cache       the JIT's orrery-jit memfd (mapped twice, RW and RX:
                   counted once, by its PSS, which splits a page mapped
                   twice between the two mappings)
  orrery-vm        the executable's own file pages
  libraries        other files (shared libraries): Private and Shared
                   (with other processes) are shown apart, with PSS
  heap             [heap] (malloc's main arena)
  thread stacks    anonymous mappings right above a guard page (---p)
  anonymous        every other anonymous mapping: calloc'd tables big
                   enough to get their own mmap (TLB, JIT tables, ...),
                   other malloc arenas
  main stack       [stack]

"Resident beyond guest RAM" (the figure README.md quotes) is the
anonymous memory of every mapping except guest RAM, the framebuffer and
the code cache (smaps' "Anonymous": the heap, stacks, tables, and the
pages of the executable and libraries written after loading). The clean
file pages of the executable and the libraries are left out and printed
apart: they are page cache, shared with every other process that maps the
same files (whether they count as Private or Shared depends on what else
runs), and reclaimable. The code cache is reported apart (it is bounded:
ORRERY_JIT_CACHE_SIZE). The RSS of everything but guest RAM, framebuffer
and code cache is printed too, for comparison with older tables.

The JIT's and the hart's own tables are in the anonymous class; with
ORRERY_JIT_STATS=1 orrery-vm logs each one's resident size at exit
(mincore), which is printed after the table.

Usage: bench/mem_breakdown.py [--build DIR] [--engine interp|jit]... [--kernel IMAGE] [--runs N]
"""
import argparse
import os
import re
import statistics
import sys

from benchlib import SerialGuest as Guest, load, machine

READY = b"orrery-guest: ready"
BIOS = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin"
CLASSES = ["guest RAM", "framebuffer", "code cache", "orrery-vm", "libraries", "heap", "thread stacks",
           "anonymous", "main stack"]


def classify(maps):
    """maps: [(header fields, {key: kB})] in address order -> {class: {key: kB}}."""
    out = {c: {"Rss": 0, "Pss": 0, "Private": 0, "Shared": 0, "Anonymous": 0} for c in CLASSES}
    prev = None
    for fields, kv in maps:
        perms = fields[1]
        path = fields[5] if len(fields) > 5 else ""
        if "orrery-ram" in path:
            c = "guest RAM"
        elif "orrery-framebuffer" in path:
            c = "framebuffer"
        elif "orrery-jit" in path:
            c = "code cache"
        elif path == "[heap]":
            c = "heap"
        elif path == "[stack]":
            c = "main stack"
        elif path.startswith("/") and os.path.basename(path) == "orrery-vm":
            c = "orrery-vm"
        elif path.startswith("/"):
            c = "libraries"
        elif path == "" and prev is not None and prev[0][1] == "---p" and len(prev[0]) == 5 and \
                int(prev[0][0].split("-")[1], 16) == int(fields[0].split("-")[0], 16):
            c = "thread stacks"
        else:
            c = "anonymous"
        o = out[c]
        o["Rss"] += kv.get("Rss", 0)
        o["Pss"] += kv.get("Pss", 0)
        o["Private"] += kv.get("Private_Clean", 0) + kv.get("Private_Dirty", 0)
        o["Shared"] += kv.get("Shared_Clean", 0) + kv.get("Shared_Dirty", 0)
        o["Anonymous"] += kv.get("Anonymous", 0)
        prev = (fields, kv)
    return out


def read_smaps(pid):
    maps = []
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                maps.append((line.split(), {}))
            else:
                m = re.match(r"^(\w+):\s+(\d+) kB", line)
                if m and maps:
                    maps[-1][1][m.group(1)] = int(m.group(2))
    return maps


def beyond_ram(cls):
    """The README's figure, in KiB: see the module's docstring."""
    return sum(o["Anonymous"] for c, o in cls.items() if c not in ("guest RAM", "framebuffer", "code cache"))


def run_one(args, engine):
    cmd = [args.orrery, "--name", "membench", "--kernel", args.kernel, "--initrd", args.initrd, "--bios", BIOS,
           "--display", "none", "--memory", "512M", "--no-bus", "--no-config", "--cpu-engine", engine]
    g = Guest(cmd, env=dict(os.environ, ORRERY_JIT_STATS="1"))
    try:
        g.wait_for(READY, 600)
        since = len(g.out)
        g.send("orrery-guest-probe cpu-bench\n")
        g.wait_for(rb"cpu-bench result=(\w+) ms=(\d+)\r?\n", 600, since)
        cls = classify(read_smaps(g.proc.pid))
        # A clean exit, so that orrery-vm logs its tables' sizes.
        g.send("poweroff -f\n")
        g.proc.wait(120)
    finally:
        g.stop()
    tables = [line for line in g.err if "resident" in line]
    return cls, tables


def main():
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser()
    p.add_argument("--build", default=os.path.join(top, "build"))
    p.add_argument("--engine", action="append", choices=["interp", "jit"])
    p.add_argument("--kernel", help="another kernel for the same initramfs (e.g. Debian's)")
    p.add_argument("--runs", type=int, default=1)
    args = p.parse_args()
    args.orrery = os.path.join(args.build, "emulator", "orrery-vm")
    args.kernel = args.kernel or os.path.join(args.build, "guest", "Image")
    args.initrd = os.path.join(args.build, "guest", "initramfs.cpio.gz")

    print(f"machine: {machine()}; load {load()}")
    for engine in args.engine or ["interp", "jit"]:
        runs = [run_one(args, engine) for _ in range(args.runs)]
        print(f"\n{engine} ({args.runs} run(s); medians, MiB; load {load()})")
        print(f"{'class':14s} {'Rss':>8s} {'Pss':>8s} {'Private':>8s} {'Shared':>8s} {'Anon':>8s}")

        def med(c, k):
            return statistics.median(r[0][c][k] for r in runs) / 1024.0
        for c in CLASSES:
            print(f"{c:14s} " + " ".join(f"{med(c, k):8.2f}" for k in ("Rss", "Pss", "Private", "Shared", "Anonymous")))
        beyond = statistics.median(beyond_ram(r[0]) for r in runs) / 1024.0
        rss_all = statistics.median(sum(o["Rss"] for c, o in r[0].items()
                                        if c not in ("guest RAM", "framebuffer", "code cache")) for r in runs) / 1024.0
        files = statistics.median(r[0]["orrery-vm"]["Rss"] + r[0]["libraries"]["Rss"] - r[0]["orrery-vm"]["Anonymous"] -
                                  r[0]["libraries"]["Anonymous"] for r in runs) / 1024.0
        print(f"resident beyond guest RAM (anonymous, without the code cache): {beyond:.2f} MiB")
        print(f"clean file pages of the executable and libraries (page cache, shared): {files:.2f} MiB")
        print(f"RSS without guest RAM, framebuffer and code cache: {rss_all:.2f} MiB")
        print(f"code cache (PSS of both mappings): {med('code cache', 'Pss'):.2f} MiB")
        for line in runs[-1][1]:
            print("  " + line.strip())
        sys.stdout.flush()


if __name__ == "__main__":
    main()

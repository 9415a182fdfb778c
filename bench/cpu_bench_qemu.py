#!/usr/bin/env python3
"""Records the checksum QEMU's riscv64 "virt" board computes for the guest's
CPU benchmark (orrery-guest-probe cpu-bench), the reference the integration
test test_cpu_bench.py holds orrery-vm to.

QEMU runs the same OpenSBI, kernel and initramfs as orrery-vm, the way
bench/boot_vs_qemu.py runs it. The benchmark's result depends only on the
computation (CRC-32, pointer chase, floating point, sieve, multiply/divide),
not on timing, so any correct RV64GC implementation prints the same value.

Usage: bench/cpu_bench_qemu.py [--build DIR] [--runs N] [--write]
  --write   store the value in tests/integration/cpu-bench-qemu.txt
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from boot_vs_qemu import run_one  # noqa: E402

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORD = os.path.join(TOP, "tests", "integration", "cpu-bench-qemu.txt")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build", default=os.path.join(TOP, "build"))
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--write", action="store_true")
    args = p.parse_args()
    args.orrery = None
    args.kernel = os.path.join(args.build, "guest", "Image")
    args.initrd = os.path.join(args.build, "guest", "initramfs.cpio.gz")

    results = set()
    for i in range(args.runs):
        _, ms, _, checksum, _ = run_one("qemu", args)
        print(f"run {i + 1}: cpu-bench result={checksum} ({ms} ms on the guest clock)", flush=True)
        results.add(checksum)
    if len(results) != 1:
        sys.exit(f"QEMU printed different checksums: {sorted(results)}")
    checksum = results.pop()
    if args.write:
        with open(RECORD, "w") as f:
            f.write("# orrery-guest-probe cpu-bench (default rounds) under qemu-system-riscv64 -M virt,\n"
                    "# recorded by bench/cpu_bench_qemu.py --write; checked by test_cpu_bench.py.\n")
            f.write(checksum + "\n")
        print(f"wrote {RECORD}")


if __name__ == "__main__":
    main()

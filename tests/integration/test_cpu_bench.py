#!/usr/bin/env python3
"""The guest's CPU benchmark computes on orrery-vm the checksum QEMU computes
(recorded in cpu-bench-qemu.txt by bench/cpu_bench_qemu.py): CRC-32, pointer
chasing, double-precision arithmetic with sqrt/div, a sieve and 64-bit
multiply/divide in a real Linux user process, under the real kernel."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(__file__))
from orrery_test import BOOT_TIMEOUT, READY, Tap, Vm  # noqa: E402

with open(os.path.join(os.path.dirname(__file__), "cpu-bench-qemu.txt")) as f:
    want = [line.strip() for line in f if line.strip() and not line.startswith("#")][0]

tap = Tap()
tap.check(re.fullmatch(r"[0-9a-f]{16}", want) is not None, f"the recorded QEMU checksum is well-formed ({want})")
vm = Vm("--display", "none")
try:
    if tap.check(vm.wait_for(READY, BOOT_TIMEOUT) is not None, "the guest reaches ready", vm.tail()):
        m = vm.command("orrery-guest-probe cpu-bench", r"orrery-probe: cpu-bench result=([0-9a-f]{16}) ms=(\d+)", 300)
        got = m.group(1) if m else None
        tap.check(got == want, f"cpu-bench checksum {got} equals QEMU's {want}", vm.tail())
finally:
    vm.kill()
tap.finish()

#!/usr/bin/env python3
"""Code that a disk's DMA wrote runs as written, on both CPU engines.

The guest's `orrery-guest-probe exec-dma /dev/vda` reads page after page
of a raw disk by O_DIRECT into one executable page (the virtio-blk worker
thread writes guest RAM while the CPU thread has run, and translated, the
code that was there), makes it visible with the kernel's FENCE.I and calls
it. Each page of the disk is a function returning a different value, made
here: a stale translation would return the previous page's value.
"""
import os
import random
import re
import shutil
import struct
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from orrery_test import BOOT_TIMEOUT, READY, Tap, Vm  # noqa: E402

PAGES = 16
tap = Tap()
tmp = tempfile.mkdtemp(prefix="orrery-test-exec-dma-")


def li_a0_ret(value):
    """addi a0, zero, value; ret (jalr zero, 0(ra)) as little-endian words."""
    return struct.pack("<II", ((value & 0xfff) << 20) | 0x513, 0x00008067)


# Values in addi's signed 12-bit range, each different from the one before it (and from the CPU-written -1).
rng = random.Random()
values = []
while len(values) < PAGES:
    v = rng.randrange(-2048, 2048)
    if v != -1 and (not values or v != values[-1]):
        values.append(v)
disk = os.path.join(tmp, "code.img")
with open(disk, "wb") as f:
    for v in values:
        f.write(li_a0_ret(v).ljust(4096, b"\0"))

for engine in ("interp", "jit"):
    vm = Vm("--display", "none", "--no-config", "--cpu-engine", engine, "--drive", f"file={disk},readonly=on",
            name=f"exec-dma-{engine}")
    try:
        if not tap.check(vm.wait_for(READY, BOOT_TIMEOUT) is not None, f"{engine}: the guest boots with the disk",
                         vm.tail()):
            continue
        m = vm.command(f"orrery-guest-probe exec-dma /dev/vda {PAGES}; echo exec-dma-''exit=$?", r"exec-dma-exit=\d+", 120)
        out = vm.output
        got = [int(v) for v in re.findall(r"exec-dma page=\d+ value=(-?\d+)", out)]
        first = re.search(r"exec-dma cpu-written value=(-?\d+)", out)
        tap.check(first is not None and first.group(1) == "-1", f"{engine}: the code the CPU wrote runs first",
                  vm.tail())
        tap.check(m is not None and m.group(0) == "exec-dma-exit=0" and got == values,
                  f"{engine}: each of {PAGES} pages read by DMA over code that ran returns its own value",
                  f"expected {values}, got {got}\n{vm.tail()}")
        vm.send("poweroff -f\n")
        tap.check(vm.wait_exit(60) == 0, f"{engine}: the VM powers off", vm.tail())
    finally:
        vm.kill()

shutil.rmtree(tmp, ignore_errors=True)
tap.finish()

#!/usr/bin/env python3
"""Boots the default guest and checks what a user of its serial console relies on."""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from orrery_test import BOOT_TIMEOUT, READY, Tap, Vm  # noqa: E402

FB_CHECK = os.environ["ORRERY_FB_CHECK"]
WIDTH, HEIGHT = 1024, 768

tap = Tap()
vm = Vm("--display", f"{WIDTH}x{HEIGHT}")
try:
    ok = tap.check(vm.wait_for(READY, BOOT_TIMEOUT) is not None, "the guest reaches its ready marker", vm.tail())
    if not ok:
        tap.finish()

    m = vm.command("echo $((6*7))", r"\r?\n42\r?\n", 30)
    tap.check(m is not None, "a command typed on the serial console runs (echo $((6*7)) -> 42)", vm.tail())

    m = vm.command("grep -m1 isa /proc/cpuinfo", r"isa\s*:\s*(rv64\S+)\r?\n", 30)
    tap.check(m is not None and m.group(1).startswith("rv64imafdc"),
              "/proc/cpuinfo shows an rv64imafdc hart", m.group(0) if m else vm.tail())

    # The hart keeps 16 ASID bits, so Linux switches address spaces without flushing the TLB.
    m = re.search(r"ASID allocator using (\d+) bits", vm.output)
    tap.check(m is not None and int(m.group(1)) == 16, "Linux finds 16 ASID bits at boot",
              m.group(0) if m else vm.tail())

    host_before = time.time()
    m = vm.command("date +%s", r"\n(\d{9,})\r?\n", 30)
    host_after = time.time()
    if m:
        guest = int(m.group(1))
        tap.check(host_before - 5 <= guest <= host_after + 5,
                  f"the guest clock matches the host within 5 s (guest {guest}, host {int(host_before)})")
    else:
        tap.check(False, "the guest prints its clock", vm.tail())

    fb = vm.framebuffer()
    tap.check(fb is not None and any(b != 0 for b in fb[:WIDTH * HEIGHT * 4]),
              "the framebuffer is not blank after boot (fbcon drew the console)")

    m = vm.command("orrery-guest-probe pattern 7", r"orrery-probe: pattern drawn (\d+)x(\d+)\r?\n", 60)
    tap.check(m is not None and (int(m.group(1)), int(m.group(2))) == (WIDTH, HEIGHT),
              "the probe draws its test pattern on /dev/fb0 at the configured size", vm.tail())
    fb = vm.framebuffer()
    r = subprocess.run([FB_CHECK, str(WIDTH), str(HEIGHT), str(WIDTH * 4), "7"], input=fb or b"",
                       capture_output=True)
    tap.check(r.returncode == 0, "the framebuffer memfd holds exactly the probe's pattern",
              r.stdout.decode() + r.stderr.decode())

    vm.send("poweroff\n")
    code = vm.wait_exit(60)
    tap.check(code == 0, f"guest poweroff makes orrery-vm exit 0 (exit {code})", vm.tail())
finally:
    vm.kill()
tap.finish()

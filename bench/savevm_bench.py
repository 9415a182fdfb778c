#!/usr/bin/env python3
"""Save and restore: time and stream size, idle and after the guest touched
most of its RAM. Results and the machine they ran on: bench/RESULTS-savevm.md.

    bench/savevm_bench.py [--memory 512M,2G] [--touch 0.9]

For each memory size: boot the default guest, Machine1.Save into a file
(timed from the call to its answer), restore it in a new process
(--restore --restore-paused, timed from the spawn to State "paused" on the
bus), then fill --touch of RAM from the guest (non-zero data in its tmpfs,
written with busybox yes) and measure again. The guest's RAM use beyond the
fill (kernel, page cache) comes on top.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import dbus

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from orrery_test import BOOT_TIMEOUT, ORRERY_VM, PrivateBus, READY, Vm  # noqa: E402

NAME = "savebench"
SERVICE = f"org.orrery.VM.{NAME}"
PATH = f"/org/orrery/VM/{NAME}"


def mib(text):
    return int(text[:-1]) * (1024 if text.endswith("G") else 1)


def measure(bus, pbus, args, path, label):
    machine = dbus.Interface(bus.get_object(SERVICE, PATH), "org.orrery.Machine1")
    with open(path, "wb") as f:
        t0 = time.monotonic()
        machine.Save(dbus.types.UnixFd(f), timeout=600)
        save_s = time.monotonic() - t0
    size = os.path.getsize(path)

    machine.Pause()     # the restored copy takes the bus name only once this one is gone from it
    t0 = time.monotonic()
    restored = subprocess.Popen([ORRERY_VM, "--name", NAME + "r", "--bus", pbus.address, *args, "--restore", path,
                                 "--restore-paused"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
    rservice, rpath = f"org.orrery.VM.{NAME}r", f"/org/orrery/VM/{NAME}r"
    restore_s = None
    while time.monotonic() - t0 < 600 and restored.poll() is None:
        try:
            s = str(bus.get_object(rservice, rpath, introspect=False).Get("org.orrery.Machine1", "State",
                                                        dbus_interface="org.freedesktop.DBus.Properties"))
            if s == "paused":
                restore_s = time.monotonic() - t0
                break
        except dbus.exceptions.DBusException:
            time.sleep(0.005)   # polled: the restored process is not on the bus yet
    restored.kill()
    restored.wait()
    if restore_s is None:
        print(restored.stderr.read().decode(errors="replace")[-500:], file=sys.stderr)
    machine.Resume()
    print(f"| {label} | {size / 2**20:.1f} MiB | {save_s * 1000:.0f} ms | "
          f"{restore_s * 1000:.0f} ms |" if restore_s is not None else f"| {label} | restore failed |", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--memory", default="512M,2G")
    ap.add_argument("--touch", type=float, default=0.9, help="fraction of RAM to fill (0: idle only)")
    opts = ap.parse_args()

    print(f"# {os.uname().nodename}, {os.cpu_count()} CPUs; load at start: {open('/proc/loadavg').read().strip()}")
    print("| guest | stream | Save | restore (spawn to paused on the bus) |")
    print("| --- | --- | --- | --- |")
    tmp = tempfile.mkdtemp(prefix="orrery-bench-savevm-")
    pbus = PrivateBus()
    bus = dbus.bus.BusConnection(pbus.address)
    try:
        for memory in opts.memory.split(","):
            args = ["--memory", memory, "--display", "none", "--no-config"]
            vm = Vm(*args, name=NAME, bus=pbus.address)
            if vm.wait_for(READY, BOOT_TIMEOUT) is None:
                print(f"| {memory} | the guest did not boot |")
                vm.kill()
                continue
            try:
                measure(bus, pbus, args, os.path.join(tmp, "idle.save"), f"{memory} idle")
                fill = int(mib(memory) * opts.touch)
                if fill:
                    m = vm.command(f"yes orrery-fills-its-ram | head -c $(({fill} * 1048576)) > /tmp/fill; "
                                   "echo filled=$(wc -c < /tmp/fill)", r"filled=(\d+)\r?\n", 3600)
                    written = int(m.group(1)) >> 20 if m else 0
                    measure(bus, pbus, args, os.path.join(tmp, "full.save"), f"{memory}, {written} MiB written")
            finally:
                vm.kill()
    finally:
        pbus.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"# load at end: {open('/proc/loadavg').read().strip()}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Save and restore: time and stream size, orrery-vm against QEMU, idle and
after the guest touched 90% of its RAM. Results and the machine they ran
on: bench/RESULTS-savevm.md.

    bench/savevm_bench.py [--memory 512M,2G] [--touch 0.9] [--runs 3] [--no-qemu]

For each memory size both emulators boot the default guest (the same
kernel, initramfs and command line, see qemu_side.py) and stay up; the
measurements alternate between them (Orrery, QEMU, Orrery, ...), --runs
times idle, then after `orrery-guest-probe touch-ram` wrote non-zero data
to --touch of RAM in each guest, --runs times again.

  Save     Orrery: Machine1.Save into a file (from the call to its answer:
           pause, write, resume). QEMU: QMP stop, migrate to
           "exec:cat > FILE" (bandwidth cap lifted), poll query-migrate
           until completed, cont (from stop to cont's answer).
  restore  a new process started from the file, timed from the spawn until
           it holds the guest paused: Orrery --restore FILE --restore-paused
           until State reads "paused" on the bus; QEMU -S -incoming
           "exec:cat FILE" until query-status reads "paused".
  stream   the file's size.
  CPU      user + system time of the emulator process over the same span
           (Orrery: all its threads; QEMU: its threads and its cat child),
           the part of the figure that does not depend on the machine's load.

Prints one table row per memory size, guest state and emulator (medians,
then every run), with the load average before and after each row.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import dbus

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import benchlib  # noqa: E402
from qemu_side import APPEND, UNCAPPED, Qmp, qemu_cmd, spawn_quiet, stop  # noqa: E402
from orrery_test import BOOT_TIMEOUT, BUILD, ORRERY_VM, PrivateBus, READY  # noqa: E402

NAME = "savebench"
HZ = os.sysconf("SC_CLK_TCK")
TOUCHED = r"touch-ram mib=(\d+) ms=\d+|orrery-guest-probe: .*"


def cpu_s(pid):
    """CPU time (user + system) of a process, its reaped children and its live ones, in seconds."""
    def fields(p):
        with open(f"/proc/{p}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    total = sum(int(v) for v in fields(pid)[11:15])
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and int(fields(entry)[1]) == pid:
                total += sum(int(v) for v in fields(entry)[11:13])
        except (OSError, IndexError):
            pass  # gone meanwhile
    return total / HZ


def mib(text):
    return int(text[:-1]) * (1024 if text.endswith("G") else 1)


class OrrerySide:
    label = "orrery-vm"

    def __init__(self, memory, pbus, bus, tmp):
        self.args = ["--memory", memory, "--display", "none", "--no-config", "--append", APPEND]
        self.pbus, self.bus, self.tmp = pbus, bus, tmp
        self.guest = benchlib.SerialGuest([ORRERY_VM, "--name", NAME, "--bus", pbus.address, *self.args])

    def machine(self, name=NAME):
        return dbus.Interface(self.bus.get_object(f"org.orrery.VM.{name}", f"/org/orrery/VM/{name}"),
                              "org.orrery.Machine1")

    def measure(self):
        path = os.path.join(self.tmp, "orrery.save")
        machine = self.machine()
        try:
            with open(path, "wb") as f:
                c0 = cpu_s(self.guest.proc.pid)
                t0 = time.monotonic()
                machine.Save(dbus.types.UnixFd(f), timeout=600)
                save_s = time.monotonic() - t0
                save_cpu = cpu_s(self.guest.proc.pid) - c0
            size = os.path.getsize(path)

            machine.Pause()  # the guest runs in one process at a time
            t0 = time.monotonic()
            restored = spawn_quiet([ORRERY_VM, "--name", NAME + "r", "--bus", self.pbus.address, *self.args,
                                    "--restore", path, "--restore-paused"])
            restore_s = None
            try:
                while time.monotonic() - t0 < 600 and restored.poll() is None:
                    try:
                        state = self.bus.get_object(f"org.orrery.VM.{NAME}r", f"/org/orrery/VM/{NAME}r",
                                                    introspect=False).Get(
                            "org.orrery.Machine1", "State", dbus_interface="org.freedesktop.DBus.Properties")
                        if str(state) == "paused":
                            restore_s = time.monotonic() - t0
                            restore_cpu = cpu_s(restored.pid)
                            break
                    except dbus.exceptions.DBusException:
                        pass
                    time.sleep(0.002)  # polled: the restored process is not on the bus yet
            finally:
                stop(restored)
            machine.Resume()
            if restore_s is None:
                raise RuntimeError(f"orrery-vm --restore failed: {restored.stderr.read()[-400:]!r}")
            return save_s, restore_s, size, save_cpu, restore_cpu
        finally:
            if os.path.exists(path):
                os.unlink(path)

    def stop(self):
        self.guest.stop()


class QemuSide:
    label = "QEMU"

    def __init__(self, memory, tmp):
        self.memory, self.tmp = memory, tmp
        self.guest = benchlib.SerialGuest(qemu_cmd(BUILD, memory, os.path.join(tmp, "qsrc.qmp")))
        self.qmp = None

    def measure(self):
        if not self.qmp:
            self.qmp = Qmp(os.path.join(self.tmp, "qsrc.qmp"))
            self.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": UNCAPPED})
        path = os.path.join(self.tmp, "qemu.save")
        qmp_path = os.path.join(self.tmp, "qdst.qmp")
        try:
            pid = self.guest.proc.pid
            c0 = cpu_s(pid)
            t0 = time.monotonic()
            self.qmp.cmd("stop")
            self.qmp.cmd("migrate", uri=f"exec:cat > {path}")
            self.qmp.wait_migration()
            self.qmp.cmd("cont")
            save_s = time.monotonic() - t0
            save_cpu = cpu_s(pid) - c0
            size = os.path.getsize(path)

            t0 = time.monotonic()
            restored = spawn_quiet(qemu_cmd(BUILD, self.memory, qmp_path, ["-S", "-incoming", f"exec:cat {path}"]))
            restore_s = None
            try:
                dst = Qmp(qmp_path)
                while time.monotonic() - t0 < 600 and restored.poll() is None:
                    if dst.cmd("query-status")["status"] == "paused":
                        restore_s = time.monotonic() - t0
                        restore_cpu = cpu_s(restored.pid)
                        break
                    time.sleep(0.002)  # polled: QEMU loads the stream in its main loop
                dst.close()
            finally:
                stop(restored)
            if restore_s is None:
                raise RuntimeError(f"QEMU -incoming failed: {restored.stderr.read()[-400:]!r}")
            return save_s, restore_s, size, save_cpu, restore_cpu
        finally:
            for p in (path, qmp_path):
                if os.path.exists(p):
                    os.unlink(p)

    def stop(self):
        if self.qmp:
            self.qmp.close()
        self.guest.stop()


def row(memory, state, side, runs, load_before):
    saves, restores, sizes, save_cpus, restore_cpus = zip(*runs)
    print(f"| {memory} {state} | {side.label} | {statistics.median(sizes) / 2**20:.1f} MiB | "
          f"{statistics.median(saves) * 1000:.0f} ms | {statistics.median(save_cpus) * 1000:.0f} ms | "
          f"{statistics.median(restores) * 1000:.0f} ms | {statistics.median(restore_cpus) * 1000:.0f} ms | "
          f"{', '.join(f'{s * 1000:.0f}/{r * 1000:.0f}' for s, r in zip(saves, restores))} | "
          f"{load_before}–{benchlib.load()} |", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--memory", default="512M,2G")
    ap.add_argument("--touch", type=float, default=0.9, help="fraction of RAM to fill (0: idle only)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-qemu", action="store_true")
    opts = ap.parse_args()

    print(f"# {benchlib.machine()}; load at start: {open('/proc/loadavg').read().strip()}")
    print("| guest | emulator | stream | Save | Save CPU | restore (spawn to paused) | restore CPU | "
          "runs (save/restore ms) | load |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    tmp = tempfile.mkdtemp(prefix="orrery-bench-savevm-")
    pbus = PrivateBus()
    bus = dbus.bus.BusConnection(pbus.address)
    try:
        for memory in opts.memory.split(","):
            sides = [OrrerySide(memory, pbus, bus, tmp)]
            if not opts.no_qemu:
                sides.append(QemuSide(memory, tmp))
            try:
                for side in sides:
                    side.guest.wait_for(READY, BOOT_TIMEOUT)
                states = [("idle", 0)]
                if opts.touch:
                    states.append(("touched", int(mib(memory) * opts.touch)))
                for state, fill in states:
                    label = state
                    if fill:
                        written = []
                        for side in sides:
                            m = side.guest.command(f"orrery-guest-probe touch-ram {fill}", TOUCHED, 3600)
                            written.append(m.group(1) or "?")
                        label = f"{' / '.join(written)} MiB touched"
                    results = {side.label: [] for side in sides}
                    load_before = benchlib.load()
                    for _ in range(opts.runs):
                        for side in sides:
                            results[side.label].append(side.measure())
                    for side in sides:
                        row(memory, label, side, results[side.label], load_before)
            finally:
                for side in sides:
                    side.stop()
    finally:
        pbus.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"# load at end: {open('/proc/loadavg').read().strip()}")


if __name__ == "__main__":
    main()

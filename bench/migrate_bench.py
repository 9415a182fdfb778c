#!/usr/bin/env python3
"""Live migration: total time and downtime, orrery-vm against QEMU's migrate.
Results and the machine they ran on: bench/RESULTS-savevm.md.

    bench/migrate_bench.py [--runs 3] [--memory 512M] [--no-qemu]

The same OpenSBI + kernel + initramfs (the default guest) boots in a source
process; it prints a heartbeat every 100 ms ("idle"), or the heartbeat
while rewriting 4 MiB of its memory per beat ("busy"). The VM then moves
to a second process on the same host over a Unix socket: orrery-vm with
Machine1.Migrate to orrery-vm --incoming, QEMU with the monitor's
"migrate -d" to qemu-system-riscv64 -incoming, each with its defaults
(downtime limit 300 ms on both; QEMU also caps bandwidth by default).
Total: from the migrate command until the destination prints its first
beat. Downtime: the gap between the source's last heartbeat and the
destination's first as they arrive on the host, next to the usual gap
between beats (the heartbeat's own 100 ms, more on a loaded machine) and
the longest gap anywhere in the run.
"""
import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import dbus

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.join(HERE, "..", "build")
BIOS = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin"
BEAT = re.compile(rb"beat=(\d+)\r?\n")
READY = b"orrery-guest: ready"
NAME = "migbench"
LOADS = {
    "idle": "(i=0; while true; do i=$((i+1)); echo beat=$i; sleep 0.1; done) &\n",
    "busy": "(i=0; while true; do i=$((i+1)); echo beat=$i; "
            "dd if=/dev/urandom of=/tmp/dirty bs=64k count=64 2>/dev/null; sleep 0.1; done) &\n",
}


class Guest:
    """A process whose serial is on stdio; notes when each beat arrives."""

    def __init__(self, cmd, beats):
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.out = b""
        self.beats = beats
        self.first_beat = None        # when this process printed its first beat
        self.last_beat = None
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            data = self.proc.stdout.read1(65536)
            if not data:
                break
            now = time.monotonic()
            with self.cond:
                start = max(0, len(self.out) - 32)
                self.out += data
                for m in BEAT.finditer(self.out, start):
                    self.beats.setdefault(int(m.group(1)), now)
                    if self.first_beat is None:
                        self.first_beat = now
                    self.last_beat = now
                self.cond.notify_all()

    def wait_for(self, pattern, timeout):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while not rx.search(self.out):
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise RuntimeError(f"no {pattern!r}: {self.out[-400:]!r}")
                self.cond.wait(min(left, 0.2))

    def send(self, text):
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def wait_until(cond, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return False


def result(beats, t0, src, dst):
    """Total (migrate command to the destination's first beat), the gap across the switch (the source's
    last beat to the destination's first), and the usual gap (median)."""
    if b"Kernel panic" in dst.out or dst.first_beat is None:
        tail = dst.out[-300:].decode(errors="replace").replace("\r", "")
        print(f"<!-- the guest did not run on the destination: {tail!r} -->", flush=True)
        return None, None, None, None
    times = sorted(beats.values())
    gaps = [b - a for a, b in zip(times, times[1:])]
    return dst.first_beat - t0, dst.first_beat - src.last_beat, statistics.median(gaps), max(gaps)


def run_orrery(args, tmp, load, bus_address):
    common = ["--kernel", args.kernel, "--initrd", args.initrd, "--bios", BIOS, "--display", "none",
              "--memory", args.memory, "--no-config", "--bus", bus_address, "--name", NAME]
    beats = {}
    src = Guest([args.orrery] + common, beats)
    dst = None
    try:
        src.wait_for(READY, 300)
        src.send(LOADS[load])
        src.wait_for(rb"beat=30\r?\n", 120)
        sock = os.path.join(tmp, "orrery.sock")
        dst = Guest([args.orrery] + common + ["--incoming", f"unix:{sock}"], beats)
        if not wait_until(lambda: os.path.exists(sock), 60):
            raise RuntimeError("the destination did not listen")
        bus = dbus.bus.BusConnection(bus_address)
        machine = dbus.Interface(bus.get_object(f"org.orrery.VM.{NAME}", f"/org/orrery/VM/{NAME}"),
                                 "org.orrery.Machine1")
        t0 = time.monotonic()
        machine.Migrate(f"unix:{sock}")
        if src.proc.wait(300) != 0:
            raise RuntimeError(f"the source exited {src.proc.returncode}: {src.out[-400:]!r}")
        # Ten beats printed by the destination itself (the source printed some during the move).
        wait_until(lambda: dst.first_beat and len([t for t in beats.values() if t >= dst.first_beat]) >= 10, 120)
        return result(beats, t0, src, dst)
    finally:
        src.stop()
        if dst:
            dst.stop()


def hmp(path, command):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.settimeout(10)
        s.sendall(command.encode() + b"\n")
        out = b""
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
            if out.count(b"(qemu)") >= 2:
                break
        return out.decode(errors="replace")


def run_qemu(args, tmp, load):
    def cmd(mon, extra):
        return ["qemu-system-riscv64", "-M", "virt", "-m", args.memory, "-nographic", "-bios", BIOS,
                "-kernel", args.kernel, "-initrd", args.initrd, "-append", "console=ttyS0",
                "-global", "virtio-mmio.force-legacy=false", "-monitor", f"unix:{mon},server,nowait",
                "-serial", "stdio"] + extra
    beats = {}
    mon_src, mon_dst, sock = (os.path.join(tmp, n) for n in ("qsrc.mon", "qdst.mon", "qemu.sock"))
    src = Guest(cmd(mon_src, []), beats)
    dst = None
    try:
        src.wait_for(READY, 300)
        src.send(LOADS[load])
        src.wait_for(rb"beat=30\r?\n", 120)
        dst = Guest(cmd(mon_dst, ["-incoming", f"unix:{sock}"]), beats)
        if not wait_until(lambda: os.path.exists(sock) and os.path.exists(mon_src), 60):
            raise RuntimeError("QEMU's destination did not listen")
        t0 = time.monotonic()
        hmp(mon_src, f"migrate -d unix:{sock}")
        if not wait_until(lambda: "completed" in hmp(mon_src, "info migrate"), 300):
            raise RuntimeError("QEMU's migration did not complete")
        # Ten beats printed by the destination itself (the source printed some during the move).
        wait_until(lambda: dst.first_beat and len([t for t in beats.values() if t >= dst.first_beat]) >= 10, 120)
        return result(beats, t0, src, dst)
    finally:
        src.stop()
        if dst:
            dst.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--memory", default="512M")
    ap.add_argument("--no-qemu", action="store_true")
    ap.add_argument("--build", default=BUILD)
    args = ap.parse_args()
    args.orrery = os.path.join(args.build, "emulator", "orrery-vm")
    args.kernel = os.path.join(args.build, "guest", "Image")
    args.initrd = os.path.join(args.build, "guest", "initramfs.cpio.gz")

    tmp = tempfile.mkdtemp(prefix="orrery-migrate-bench-")
    bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"], stdout=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address = bus.stdout.readline().decode().strip()
    print(f"load before: {os.getloadavg()[0]:.1f}", flush=True)
    print("| emulator | guest | total (median) | heartbeat gap across the switch (median) | usual gap | "
          "longest gap anywhere | runs (total/switch gap ms) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    try:
        for load in ("idle", "busy"):
            kinds = [("orrery-vm", lambda: run_orrery(args, tmp, load, address))]
            if not args.no_qemu and shutil.which("qemu-system-riscv64"):
                kinds.append(("QEMU", lambda: run_qemu(args, tmp, load)))
            for kind, run in kinds:
                totals, gaps, usual, longests, failed = [], [], [], [], 0
                for _ in range(args.runs):
                    for f in os.listdir(tmp):
                        os.unlink(os.path.join(tmp, f))
                    total, gap, normal, longest = run()
                    if total is None:
                        failed += 1
                        continue
                    totals.append(total)
                    gaps.append(gap)
                    usual.append(normal)
                    longests.append(longest)
                if not totals:
                    print(f"| {kind} | {args.memory} {load} | failed | failed | | | {failed} of {args.runs} runs: "
                          "the guest did not run on the destination |", flush=True)
                    continue
                print(f"| {kind} | {args.memory} {load} | {statistics.median(totals) * 1000:.0f} ms | "
                      f"{statistics.median(gaps) * 1000:.0f} ms | {statistics.median(usual) * 1000:.0f} ms | "
                      f"{max(longests) * 1000:.0f} ms | "
                      f"{', '.join(f'{t * 1000:.0f}/{g * 1000:.0f}' for t, g in zip(totals, gaps))}"
                      f"{f'; {failed} of {args.runs} failed' if failed else ''} |", flush=True)
    finally:
        bus.terminate()
        bus.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"load after: {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())

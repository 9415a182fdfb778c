#!/usr/bin/env python3
"""orrery-vnc against QEMU's built-in VNC server, on the same guest.

Both run the default guest (kernel and initramfs of build/guest; the kernel
has virtio-gpu with fbdev emulation for QEMU, simplefb for orrery-vm) with
a guest loop `while read s; do orrery-guest-probe pattern $s; done`:

  - orrery:  orrery-vm --display WxH on a private dbus-daemon + orrery-vnc;
  - qemu:    qemu-system-riscv64 -M virt -device virtio-gpu-device,xres=W,yres=H
             -vnc 127.0.0.1:N (TCG, one vCPU, 512 MiB, the same OpenSBI).

For each of --samples triggers, the host writes a seed on the serial console
and the guest redraws its whole screen with it. One VNC client (vnc-probe,
libvncclient, raw encoding) watches the last pixel the probe draws
(W-5, H-5: the border is constant). Latency = the client holding the new
value of that pixel - the host reading the probe's "pattern drawn" line
(printed right after its last store). It includes the serial console's
own delay on the other side, about 1 ms, for both.

CPU: the display server's CPU time per redraw: orrery-vnc's process; for
QEMU the threads other than its vCPU thread (main loop with the display and
VNC code, and the VNC worker), which also run its other devices.

Usage: bench/vnc_vs_qemu.py [--build DIR] [--display WxH ...] [--samples N]
"""
import argparse
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
from vnc_bench import Lines, pct, parse_pixels  # noqa: E402

BIOS = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin"
READY = "orrery-guest: ready"


class Serial:
    """A process with its serial console on stdin/stdout; lines timestamped as read."""

    def __init__(self, cmd, env=None):
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env)
        self.text = ""
        self.stamps = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self.proc.stderr.read(), daemon=True).start()

    def _read(self):
        while True:
            data = self.proc.stdout.read1(65536)
            t = time.monotonic()
            if not data:
                break
            with self.cond:
                self.text += data.decode(errors="replace")
                self.stamps.append((len(self.text), t))
                self.cond.notify_all()

    def wait_for(self, pattern, timeout=300, since=0):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                m = rx.search(self.text, since)
                if m:
                    t = next(t for end, t in self.stamps if end >= m.end())
                    return m, t
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise TimeoutError(f"{pattern!r} not seen: {self.text[-300:]!r}")
                self.cond.wait(min(left, 0.2))

    def send(self, s):
        with self.cond:
            pos = len(self.text)
        self.proc.stdin.write(s.encode())
        self.proc.stdin.flush()
        return pos

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def thread_ticks(pid, exclude_rx=None):
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                comm = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if exclude_rx and re.search(exclude_rx, comm):
            continue
        total += int(fields[11]) + int(fields[12])
    return total


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(args, guest, vnc_address, width, height, cpu_pid, exclude_rx):
    probe = subprocess.Popen([args.probe, "--encodings", "raw", vnc_address], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = Lines(probe.stdout)
    out.wait(r"^(connected|error)")
    x, y = width - 5, height - 5
    guest.send("while read s; do orrery-guest-probe pattern $s; done\n")
    time.sleep(1)
    duration = args.samples * args.per_sample + 30
    probe.stdin.write(f"watch {x} {y} {duration}\n".encode())
    probe.stdin.flush()
    time.sleep(0.5)
    tick = os.sysconf("SC_CLK_TCK")
    c0 = thread_ticks(cpu_pid, exclude_rx)
    drawn, triggers = [], []
    for i in range(args.samples):
        triggers.append(time.monotonic())
        pos = guest.send(f"{1000 + i}\n")
        _, t = guest.wait_for(rf"pattern drawn {width}x{height}", 120, pos)
        drawn.append(t)
        time.sleep(random.uniform(0.5, 1.0))  # let the client catch up, and the server go idle
    c1 = thread_ticks(cpu_pid, exclude_rx)
    probe.stdin.write(b"quit\n")
    probe.stdin.flush()
    try:
        probe.wait(duration + 60)
    except subprocess.TimeoutExpired:
        probe.kill()
    got = parse_pixels(out.lines)
    lat = []
    triggers.append(float("inf"))
    for i, t in enumerate(drawn):
        # The first change after this trigger and before the next (a seed that
        # leaves the pixel as it was, 1 in 64, gives no sample).
        seen = [tc for tc, _ in got if triggers[i] <= tc < triggers[i + 1]]
        if seen:
            lat.append((seen[0] - t) * 1000)
    return {"p50": pct(lat, 50), "p99": pct(lat, 99), "max": max(lat) if lat else float("nan"),
            "n": len(lat), "cpu_ms_per_frame": 1000 * (c1 - c0) / tick / max(len(drawn), 1)}


def run_orrery(args, display, width, height):
    from orrery_test import PrivateBus
    bus = PrivateBus()
    vm = Serial([args.orrery_vm, "--name", "vvq", "--display", display, "--bus", bus.address],
                env=dict(os.environ, ORRERY_GUEST_DIR=args.guest))
    vnc = None
    try:
        vm.wait_for(READY)
        vnc = subprocess.Popen([args.vnc, "--vm", "vvq", "--bus", bus.address, "--listen", "127.0.0.1:0"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        log = Lines(vnc.stderr)
        address = log.wait(r"listening on (\S+) \(VNC").group(1)
        log.wait(r"serving VM")
        return measure(args, vm, address, width, height, vnc.pid, None)
    finally:
        if vnc:
            vnc.kill()
            vnc.wait()
        vm.stop()
        bus.stop()


def run_qemu(args, display, width, height):
    port = free_port()
    cmd = ["qemu-system-riscv64", "-M", "virt", "-m", "512M", "-bios", BIOS,
           "-kernel", os.path.join(args.guest, "Image"), "-initrd", os.path.join(args.guest, "initramfs.cpio.gz"),
           "-append", "console=tty1 console=ttyS0", "-global", "virtio-mmio.force-legacy=false",
           "-device", f"virtio-gpu-device,xres={width},yres={height}",
           "-vnc", f"127.0.0.1:{port - 5900}", "-display", "none", "-monitor", "none", "-serial", "stdio"]
    q = Serial(cmd)
    try:
        q.wait_for(READY)
        # The vCPU thread is "CPU 0/TCG"; everything else is display, VNC and I/O.
        return measure(args, q, f"127.0.0.1:{port}", width, height, q.proc.pid, r"^CPU \d+/TCG$")
    finally:
        q.stop()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(here, "..", "build"))
    ap.add_argument("--display", action="append")
    ap.add_argument("--samples", type=int, default=20)
    args = ap.parse_args()
    args.per_sample = 3
    args.orrery_vm = os.path.join(args.build, "emulator", "orrery-vm")
    args.vnc = os.path.join(args.build, "services", "vnc", "orrery-vnc")
    args.probe = os.path.join(args.build, "tests", "integration", "vnc", "vnc-probe")
    args.guest = os.path.join(args.build, "guest")
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} samples={args.samples} load={os.getloadavg()}")
    print(f"{'display':>10} {'server':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'n':>4} {'cpu ms/frame':>12}")
    for display in args.display or ["1024x768", "1920x1080"]:
        width, height = (int(v) for v in display.split("x"))
        for name, run in (("orrery", run_orrery), ("qemu", run_qemu)):
            r = run(args, display, width, height)
            print(f"{display:>10} {name:>8} {r['p50']:>8.2f} {r['p99']:>8.2f} {r['max']:>8.2f} {r['n']:>4} "
                  f"{r['cpu_ms_per_frame']:>12.2f}", flush=True)


if __name__ == "__main__":
    main()

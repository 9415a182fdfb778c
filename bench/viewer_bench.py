#!/usr/bin/env python3
"""orrery-viewer under Xvfb at 1920x1080: frames per second, latency to the screen, CPU per frame.

The viewer runs with ORRERY_VIEWER_DEBUG=1, which logs one line per frame
it draws: "frame NAME t=<CLOCK_MONOTONIC us> x= y= w= h=" (the part of the
framebuffer drawn, after the drawing calls have gone to the X server).

Part 1, the viewer alone: orrery-fake-vm (build/tests/common) publishes a
1920x1080 framebuffer; the benchmark calls FakeVM1.Fill (a new colour) and
FakeVM1.EmitUpdate (the damage, as the VM would send it) and times each
Update -> the frame that draws that damage. Full-screen damage is sent at
60 Hz (the most the VM ever sends) and as fast as the viewer keeps up;
small damage (a 64x64 square) at 60 Hz shows that only damage is drawn.
The viewer's CPU time (utime+stime from /proc/PID/stat) is divided by the
frames it drew.

Part 2, a real guest: orrery-vm --display 1920x1080, the guest running
`while read s; do orrery-guest-probe pattern $s; done`. The benchmark
writes a seed and times the probe's "pattern drawn" line (host receipt)
-> the viewer's first frame after which every line of the screen has been
drawn since the seed was sent; it also polls one pixel of the memfd
(read-only mapping, every 0.5 ms) and times "pixel changed in the memfd
-> first frame that drew that pixel".

Usage: bench/viewer_bench.py [--build DIR] [--frames N] [--samples N]
"""
import argparse
import mmap
import os
import re
import statistics
import subprocess
import sys
import threading
import time

import dbus

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from benchlib import cpu_ticks, pct  # noqa: E402

WIDTH, HEIGHT = 1920, 1080
CLK_TCK = os.sysconf("SC_CLK_TCK")


def now_us():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Frames:
    """The viewer's frame lines, as (t_us, x, y, w, h), read as they come."""

    rx = re.compile(r"frame \S+ t=(\d+) x=(\d+) y=(\d+) w=(\d+) h=(\d+)")

    def __init__(self, stream):
        self.frames = []
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream):
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace")
            m = self.rx.search(line)
            with self.cond:
                self.lines.append(line)
                if m:
                    self.frames.append(tuple(int(g) for g in m.groups()))
                self.cond.notify_all()

    def wait(self, pred, timeout=30):
        """The first frame (from the start) for which pred(frame) is true."""
        deadline = time.monotonic() + timeout
        with self.cond:
            i = 0
            while True:
                while i < len(self.frames):
                    if pred(self.frames[i]):
                        return self.frames[i]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(min(left, 0.2))

    def wait_line(self, pattern, timeout=30):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    m = rx.search(line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(min(left, 0.2))

    def count(self):
        with self.cond:
            return len(self.frames)






def row(what, values, unit="ms"):
    if not values:
        print(f"{what:58s} (no samples)")
        return
    print(f"{what:58s} n={len(values):4d}  p50 {statistics.median(values):8.2f}  p90 {pct(values, 90):8.2f}  "
          f"max {max(values):8.2f} {unit}", flush=True)


class Session:
    """Xvfb, a private dbus-daemon and the viewer of one VM."""

    def __init__(self, build, name):
        r, w = os.pipe()
        self.xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", "2048x1280x24", "-nolisten", "tcp"],
                                     pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(w)
        with os.fdopen(r) as f:
            display = ":" + f.readline().strip()
        self.bus_proc = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                                         stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self.address = self.bus_proc.stdout.readline().decode().strip()
        self.env = dict(os.environ, DISPLAY=display, DBUS_SESSION_BUS_ADDRESS=self.address, ORRERY_VIEWER_DEBUG="1",
                        NO_AT_BRIDGE="1", GDK_BACKEND="x11")
        self.build = build
        self.name = name
        self.viewer = None

    def start_viewer(self):
        self.viewer = subprocess.Popen([os.path.join(self.build, "services", "viewer", "orrery-viewer"), self.name],
                                       stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, env=self.env)
        self.frames = Frames(self.viewer.stderr)
        m = self.frames.wait_line(rf"layout {self.name} x=[\d.]+ y=[\d.]+ scale=([\d.]+) size={WIDTH}x{HEIGHT}", 60)
        if not m:
            raise RuntimeError("the viewer did not show the VM's screen")
        return float(m.group(1))

    def stop(self):
        for p in (self.viewer, self.bus_proc, self.xvfb):
            if p and p.poll() is None:
                p.terminate()
                p.wait()


def part_fake(build, n):
    s = Session(build, "benchfake")
    fake = subprocess.Popen([os.path.join(build, "tests", "common", "orrery-fake-vm"), f"--name={s.name}",
                             f"--address={s.address}", f"--width={WIDTH}", f"--height={HEIGHT}"],
                            stdin=subprocess.DEVNULL)
    try:
        bus = dbus.bus.BusConnection(s.address)
        deadline = time.monotonic() + 30
        while not bus.name_has_owner(f"org.orrery.VM.{s.name}") and time.monotonic() < deadline:
            time.sleep(0.05)
        ctl = dbus.Interface(bus.get_object(f"org.orrery.VM.{s.name}", "/org/orrery/FakeVM"), "org.orrery.FakeVM1")
        scale = s.start_viewer()
        print(f"viewer alone (orrery-fake-vm {WIDTH}x{HEIGHT}), drawn at scale {scale:g}", flush=True)
        time.sleep(1)  # let the first full draw and the window's mapping settle before measuring

        def run(rect, interval, label):
            lat = []
            c0, f0, t0 = cpu_ticks(s.viewer.pid), s.frames.count(), time.monotonic()
            x0 = cpu_ticks(s.xvfb.pid)
            for i in range(n):
                tick = time.monotonic()
                ctl.Fill(dbus.UInt32((i * 0x3f1d7) & 0xffffff))
                t_emit = now_us()
                ctl.EmitUpdate([rect])
                f = s.frames.wait(lambda fr: fr[0] >= t_emit and fr[1] <= rect[0] and fr[2] <= rect[1] and
                                  fr[1] + fr[3] >= rect[0] + rect[2] and fr[2] + fr[4] >= rect[1] + rect[3], 10)
                if f:
                    lat.append((f[0] - t_emit) / 1000)
                if interval:
                    time.sleep(max(0, tick + interval - time.monotonic()))
            elapsed = time.monotonic() - t0
            frames = s.frames.count() - f0
            cpu = (cpu_ticks(s.viewer.pid) - c0) / CLK_TCK
            xcpu = (cpu_ticks(s.xvfb.pid) - x0) / CLK_TCK
            row(f"{label}: Update -> frame drawn", lat)
            print(f"{label}: {frames} frames in {elapsed:.2f} s = {frames / elapsed:.1f} fps; viewer CPU "
                  f"{cpu:.2f} s = {1000 * cpu / max(frames, 1):.2f} ms/frame ({100 * cpu / elapsed:.0f} % of a core); "
                  f"Xvfb {1000 * xcpu / max(frames, 1):.2f} ms/frame", flush=True)

        full = (dbus.UInt32(0), dbus.UInt32(0), dbus.UInt32(WIDTH), dbus.UInt32(HEIGHT))
        small = (dbus.UInt32(928), dbus.UInt32(508), dbus.UInt32(64), dbus.UInt32(64))
        run(full, 1 / 60, "1:1, full screen at 60 Hz")
        run(small, 1 / 60, "1:1, 64x64 at 60 Hz")
        wid = subprocess.run(["xdotool", "search", "--name", f"^{s.name} — "], capture_output=True, text=True,
                             env=s.env).stdout.split()[0]
        subprocess.run(["xdotool", "windowsize", wid, "1280", "770"], env=s.env)
        m = s.frames.wait_line(rf"layout {s.name} x=[\d.]+ y=[\d.]+ scale=0\.", 10)
        print(f"window resized to 1280x770: {m.group(0) if m else 'no new layout'}", flush=True)
        run(full, 1 / 60, "scaled to fit, full screen at 60 Hz")
        run(small, 1 / 60, "scaled to fit, 64x64 at 60 Hz")
    finally:
        fake.terminate()
        fake.wait()
        s.stop()


def part_guest(build, samples):
    from orrery_test import BOOT_TIMEOUT, READY, Vm

    s = Session(build, "benchvm")
    os.environ["ORRERY_VM"] = os.path.join(build, "emulator", "orrery-vm")
    os.environ.setdefault("ORRERY_GUEST_DIR", os.path.join(build, "guest"))
    vm = Vm("--display", f"{WIDTH}x{HEIGHT}", name=s.name, bus=s.address)
    try:
        if vm.wait_for(READY, BOOT_TIMEOUT) is None:
            raise RuntimeError("the guest did not boot:\n" + vm.tail())
        scale = s.start_viewer()
        print(f"real guest (orrery-vm --display {WIDTH}x{HEIGHT}), drawn at scale {scale:g}", flush=True)
        fb_fd = None
        for fd in os.listdir(f"/proc/{vm.proc.pid}/fd"):
            if os.readlink(f"/proc/{vm.proc.pid}/fd/{fd}").startswith("/memfd:orrery-framebuffer"):
                fb_fd = os.open(f"/proc/{vm.proc.pid}/fd/{fd}", os.O_RDONLY)
        fb = mmap.mmap(fb_fd, WIDTH * HEIGHT * 4, prot=mmap.PROT_READ)
        # The pattern is drawn top down: the first pixel changes as the guest starts, the last as it ends.
        probes = [(960, 5), (WIDTH - 5, HEIGHT - 5)]
        offs = [(py * WIDTH + px) * 4 for px, py in probes]

        vm.command("while read s; do orrery-guest-probe pattern $s; done", r"\n", 10)
        shown = [[], []]
        draw_time = []
        c0, f0, t0 = cpu_ticks(s.viewer.pid), s.frames.count(), time.monotonic()
        x0 = cpu_ticks(s.xvfb.pid)
        for i in range(samples):
            before = [fb[o:o + 4] for o in offs]
            changed = [None, None]
            t_trigger = now_us()
            vm.send(f"{i + 1}\n")
            deadline = time.monotonic() + 30
            while None in changed and time.monotonic() < deadline:
                for k, o in enumerate(offs):
                    if changed[k] is None and fb[o:o + 4] != before[k]:
                        changed[k] = now_us()
                time.sleep(0.0005)
            if None not in changed:
                draw_time.append((changed[1] - t_trigger) / 1000)
            for k, (px, py) in enumerate(probes):
                if changed[k] is None:
                    continue
                f = s.frames.wait(lambda fr: fr[0] >= changed[k] and fr[1] <= px < fr[1] + fr[3] and
                                  fr[2] <= py < fr[2] + fr[4], 10)
                if f:
                    shown[k].append((f[0] - changed[k]) / 1000)
            vm.wait_for(r"pattern drawn", 30)
        elapsed = time.monotonic() - t0
        frames = s.frames.count() - f0
        cpu = (cpu_ticks(s.viewer.pid) - c0) / CLK_TCK
        xcpu = (cpu_ticks(s.xvfb.pid) - x0) / CLK_TCK
        row("seed sent -> last pixel written (the guest drawing)", draw_time)
        row("first pixel written in the memfd -> frame that drew it", shown[0])
        row("last pixel written in the memfd -> frame that drew it", shown[1])
        print(f"guest redrawing: {frames} frames in {elapsed:.2f} s = {frames / elapsed:.1f} fps; viewer CPU "
              f"{cpu:.2f} s = {1000 * cpu / max(frames, 1):.2f} ms/frame ({100 * cpu / elapsed:.0f} % of a core); "
              f"Xvfb {1000 * xcpu / max(frames, 1):.2f} ms/frame", flush=True)
        fb.close()
        os.close(fb_fd)
    finally:
        vm.kill()
        s.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--frames", type=int, default=300, help="Updates per viewer-alone run")
    ap.add_argument("--samples", type=int, default=10, help="guest redraws")
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    part_fake(build, args.frames)
    part_guest(build, args.samples)


if __name__ == "__main__":
    main()

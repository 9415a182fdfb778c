#!/usr/bin/env python3
"""Live migration: total time and downtime, orrery-vm against QEMU's migrate.
Results and the machine they ran on: bench/RESULTS-savevm.md.

    bench/migrate_bench.py [--runs 3] [--memory 512M] [--loads idle,busy,redraw] [--no-qemu]

The same guest (OpenSBI, kernel, initramfs and command line: qemu_side.py)
boots in a source process and prints a heartbeat every 100 ms:

  idle    nothing else;
  busy    rewriting 4 MiB of its memory per beat (dd from /dev/urandom);
  redraw  the heartbeat, and storing to one framebuffer pixel (dd of 4
          bytes to /dev/fb0, two colours in turn, 100 ms apart) while a VNC
          client (vnc-probe, on libvncclient) watches that pixel.

A guest that idles less often leaves QEMU 7.2 stuck on the destination
more often, even with the workaround of qemu_side.py: runs where the guest
did not go on are counted as failed, and "redraw" draws no faster than the
heartbeat for that reason. Medians over the runs that completed.

The VM then moves to a second process on the same host over a Unix socket:
orrery-vm with Machine1.Migrate to orrery-vm --incoming; QEMU with QMP
migrate to qemu-system-riscv64 -incoming. Downtime limit 300 ms on both
(Orrery's default; QEMU's set with migrate-set-parameters), QEMU's
bandwidth cap lifted (Orrery has none). Runs alternate between the two
emulators (Orrery, QEMU, Orrery, ...).

Measured the same way on both sides:
  total       from the migrate call until the destination's first beat
              reaches the host;
  longest beat gap
              the downtime as the guest shows it: the longest gap between
              two beats reaching the host, from the migrate call until a
              second after the destination's first beat; beside it the gap
              from the source's last beat to the destination's first (a
              beat printed before the pause can come out of the
              destination's serial, so this one can hide the pause) and the
              usual gap between beats (the heartbeat's 100 ms plus the
              loaded machine's delay);
  VNC gap     (redraw) the longest gap between two changes of the watched
              pixel seen by the client from one second before the migrate
              call until three seconds after the destination's first beat.
              orrery-vnc keeps its client across the move: one client. QEMU's
              VNC server is in the emulator process and its clients stay
              with the source; the destination has its own server, so a
              second client is connected to it before the move and the gap
              runs from the source client's last change to the destination
              client's first: the best a client that reconnected at once
              could see.
QEMU's own "total-time" and "downtime" (query-migrate) are printed too.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import dbus

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib  # noqa: E402
from qemu_side import APPEND, BIOS, UNCAPPED, Qmp, qemu_cmd  # noqa: E402
from vnc_bench import Lines  # noqa: E402
from vnc_vs_qemu import DISPLAY_SLOT, SETUP_AT, make_display_setup, make_fb_dtb  # noqa: E402

BUILD = os.path.join(HERE, "..", "build")
BEAT = re.compile(rb"beat=(\d+)\r?\n")
READY = b"orrery-guest: ready"
NAME = "migbench"
DOWNTIME_MS = 300
WIDTH, HEIGHT = 640, 480
HEARTBEAT = "(i=0; while true; do i=$((i+1)); echo beat=$i; sleep 0.1; done) &\n"
LOADS = {
    "idle": HEARTBEAT,
    "busy": "(i=0; while true; do i=$((i+1)); echo beat=$i; "
            "dd if=/dev/urandom of=/tmp/dirty bs=64k count=64 2>/dev/null; sleep 0.1; done) &\n",
    "redraw": HEARTBEAT,
}
# The watched pixel: (W-5, H-5). The guest computes its offset from the framebuffer's stride.
PIXEL = (WIDTH - 5, HEIGHT - 5)
REDRAW = ("stty -echo; orrery-guest-probe pattern 7 >/dev/null; printf '\\377\\000\\000\\000' >/tmp/a; "
          "printf '\\000\\377\\000\\000' >/tmp/b; s=$(( ({y} * $(cat /sys/class/graphics/fb0/stride) + {x} * 4) / 4 )); "
          "(while true; do for c in a b; do dd if=/tmp/$c of=/dev/fb0 bs=4 seek=$s conv=notrunc 2>/dev/null; "
          "sleep 0.1; done; done) &\n").format(x=PIXEL[0], y=PIXEL[1])


class Guest:
    """A process whose serial is on stdio; notes when each beat arrives."""

    def __init__(self, cmd, beats, env=None):
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env=env)
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


class Watcher:
    """vnc-probe watching the pixel the redraw load changes; the times of its changes."""

    def __init__(self, probe, address):
        self.proc = subprocess.Popen([probe, address], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        self.out = Lines(self.proc.stdout)
        m = self.out.wait(r"^(connected (\d+) (\d+)|error.*)")
        if not m.group(2):
            raise RuntimeError(f"vnc-probe {address}: {m.group(1)}")
        self.proc.stdin.write(f"watch {PIXEL[0]} {PIXEL[1]} 86400\n".encode())
        self.proc.stdin.flush()

    def changes(self):
        return [int(m.group(1)) / 1e9 for m in (re.match(r"pixel (\d+) ", line) for line in list(self.out.lines)) if m]

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def wait_until(cond, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return False


def settle(dst, beats):
    """Waits for ten beats printed by the destination itself (the source printed some during the move)."""
    wait_until(lambda: dst.first_beat and len([t for t in beats.values() if t >= dst.first_beat]) >= 10, 45)


def result(beats, t0, src, dst, watchers=()):
    """Total, the beat gap across the switch, the longest beat gap around it, the usual beat gap (median), the VNC
    gap (or None)."""
    if b"Kernel panic" in dst.out or dst.first_beat is None:
        tail = dst.out[-300:].decode(errors="replace").replace("\r", "")
        print(f"<!-- the guest did not run on the destination: {tail!r} -->", flush=True)
        return None
    times = sorted(beats.values())
    gaps = [b - a for a, b in zip(times, times[1:])]
    # The downtime as the guest shows it: the longest gap between beats from the migrate call until a second
    # after the destination's first beat (the first beats there may still wait for the move to settle).
    around = [t for t in times if t0 <= t <= dst.first_beat + 1]
    longest = max((b - a for a, b in zip(around, around[1:])), default=dst.first_beat - src.last_beat)
    vnc = None
    if watchers:
        window = [t for t in sorted(t for w in watchers for t in w.changes()) if t0 - 1 <= t <= dst.first_beat + 3]
        vnc = max((b - a for a, b in zip(window, window[1:])), default=None)
    return {"total": dst.first_beat - t0, "gap": dst.first_beat - src.last_beat, "longest": longest,
            "usual": statistics.median(gaps), "vnc": vnc}


def start_load(src, load):
    if load == "redraw":
        src.send(REDRAW)
    src.send(LOADS[load])
    src.wait_for(rb"beat=30\r?\n", 120)


def run_orrery(args, tmp, load, bus_address):
    display = ["--display", f"{WIDTH}x{HEIGHT}" if load == "redraw" else "none"]
    common = ["--kernel", args.kernel, "--initrd", args.initrd, "--bios", BIOS, "--append", APPEND,
              "--memory", args.memory, "--no-config", "--bus", bus_address, "--name", NAME] + display
    beats = {}
    src = Guest([args.orrery] + common, beats)
    dst = vnc = None
    watchers = []
    try:
        src.wait_for(READY, 300)
        if load == "redraw":
            vnc = subprocess.Popen([args.vnc, "--vm", NAME, "--bus", bus_address, "--listen", "127.0.0.1:0"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            log = Lines(vnc.stderr)
            address = log.wait(r"listening on (\S+) \(VNC").group(1)
            log.wait(r"serving VM")
            watchers.append(Watcher(args.probe, address))
        start_load(src, load)
        sock = os.path.join(tmp, "orrery.sock")
        dst = Guest([args.orrery] + common + ["--incoming", f"unix:{sock}"], beats)
        dst.wait_for(rb"waits for a migration", 60)  # listening (the socket file appears before listen())
        bus = dbus.bus.BusConnection(bus_address)
        machine = dbus.Interface(bus.get_object(f"org.orrery.VM.{NAME}", f"/org/orrery/VM/{NAME}"),
                                 "org.orrery.Machine1")
        t0 = time.monotonic()
        machine.Migrate(f"unix:{sock}")
        if src.proc.wait(300) != 0:
            raise RuntimeError(f"the source exited {src.proc.returncode}: {src.out[-400:]!r}")
        settle(dst, beats)
        return result(beats, t0, src, dst, watchers)
    finally:
        for w in watchers:
            w.stop()
        if vnc:
            vnc.kill()
            vnc.wait()
        src.stop()
        if dst:
            dst.stop()


def kick(dst):
    deadline = time.monotonic() + 30
    while dst.first_beat is None and dst.proc.poll() is None and time.monotonic() < deadline:
        dst.send("\n")
        time.sleep(0.01)


def run_qemu(args, tmp, load):
    extra = []
    if load == "redraw":
        extra = ["-dtb", make_fb_dtb(tmp, WIDTH, HEIGHT),
                 "-device", f"bochs-display,addr={DISPLAY_SLOT:02x}.0,romfile=",
                 "-device", f"loader,file={make_display_setup(tmp, WIDTH, HEIGHT)},addr={SETUP_AT:#x},cpu-num=0"]
    ports = [benchlib.free_port(), benchlib.free_port()]

    def cmd(qmp, more, port):
        vnc = ["-vnc", f"127.0.0.1:{port - 5900}"] if load == "redraw" else []
        return qemu_cmd(os.path.abspath(args.build), args.memory, qmp, extra + vnc + more)

    beats = {}
    qmp_src, qmp_dst, sock = (os.path.join(tmp, n) for n in ("qsrc.qmp", "qdst.qmp", "qemu.sock"))
    src = Guest(cmd(qmp_src, [], ports[0]), beats)
    dst = None
    watchers = []
    try:
        src.wait_for(READY, 300)
        if load == "redraw":
            watchers.append(Watcher(args.probe, f"127.0.0.1:{ports[0]}"))
        start_load(src, load)
        dst = Guest(cmd(qmp_dst, ["-incoming", f"unix:{sock}"], ports[1]), beats)
        qs, qd = Qmp(qmp_src), Qmp(qmp_dst)
        # QEMU 7.2 drops the guest's armed timer on the way (qemu_side.py): an interrupt that finds the
        # guest idle gets it going again. Sent every 10 ms from the resume until the destination's first beat.
        qd.on_event = lambda event: event == "RESUME" and threading.Thread(target=kick, args=(dst,), daemon=True).start()
        if load == "redraw":
            watchers.append(Watcher(args.probe, f"127.0.0.1:{ports[1]}"))
        qs.cmd("migrate-set-parameters", **{"downtime-limit": DOWNTIME_MS, "max-bandwidth": UNCAPPED})
        t0 = time.monotonic()
        qs.cmd("migrate", uri=f"unix:{sock}")
        info = qs.wait_migration(300, interval=0.05)
        settle(dst, beats)
        r = result(beats, t0, src, dst, watchers)
        if r:
            r["qemu"] = (info.get("total-time"), info.get("downtime"))
        qs.close()
        qd.close()
        return r
    finally:
        for w in watchers:
            w.stop()
        src.stop()
        if dst:
            dst.stop()


def ms(v):
    return f"{v * 1000:.0f}" if v is not None else "–"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--memory", default="512M")
    ap.add_argument("--loads", default="idle,busy,redraw")
    ap.add_argument("--no-qemu", action="store_true")
    ap.add_argument("--build", default=BUILD)
    args = ap.parse_args()
    args.orrery = os.path.join(args.build, "emulator", "orrery-vm")
    args.vnc = os.path.join(args.build, "services", "vnc", "orrery-vnc")
    args.probe = os.path.join(args.build, "tests", "integration", "vnc", "vnc-probe")
    args.kernel = os.path.join(args.build, "guest", "Image")
    args.initrd = os.path.join(args.build, "guest", "initramfs.cpio.gz")

    tmp = tempfile.mkdtemp(prefix="orrery-migrate-bench-")
    bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"], stdout=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address = bus.stdout.readline().decode().strip()
    print(f"# {benchlib.machine()}; load at start: {open('/proc/loadavg').read().strip()}", flush=True)
    print("| guest | emulator | total | longest beat gap | beat gap across the switch | usual beat gap | "
          "VNC gap | runs (total/longest beat gap/VNC gap ms) | QEMU's own total/downtime ms | load |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    try:
        for load in args.loads.split(","):
            if load == "redraw" and args.memory != "512M":
                # QEMU's device tree with the framebuffer comes from vnc_vs_qemu.py, which describes 512 MiB.
                print(f"<!-- redraw runs with 512M only, not {args.memory} -->", flush=True)
                continue
            kinds = [("orrery-vm", lambda: run_orrery(args, tmp, load, address))]
            if not args.no_qemu:
                kinds.append(("QEMU", lambda: run_qemu(args, tmp, load)))
            results = {kind: [] for kind, _ in kinds}
            failed = {kind: 0 for kind, _ in kinds}
            load_before = benchlib.load()
            for _ in range(args.runs):
                for kind, run in kinds:
                    for f in os.listdir(tmp):
                        if not f.endswith((".dtb", ".bin")):
                            os.unlink(os.path.join(tmp, f))
                    try:
                        r = run()
                    except (RuntimeError, TimeoutError, dbus.exceptions.DBusException) as e:
                        print(f"<!-- {kind} {load}: {e} -->", flush=True)
                        r = None
                    if r is None:
                        failed[kind] += 1
                    else:
                        results[kind].append(r)
            for kind, _ in kinds:
                rs = results[kind]
                if not rs:
                    print(f"| {args.memory} {load} | {kind} | failed | | | | | all {args.runs} runs: the guest did "
                          f"not run on the destination | | |", flush=True)
                    continue

                def med(key):
                    values = [r[key] for r in rs if r[key] is not None]
                    return statistics.median(values) if values else None
                own = ", ".join(f"{t}/{d}" for t, d in (r["qemu"] for r in rs)) if "qemu" in rs[0] else ""
                print(f"| {args.memory} {load} | {kind} | {ms(med('total'))} ms | {ms(med('longest'))} ms | "
                      f"{ms(med('gap'))} ms | {ms(med('usual'))} ms | "
                      f"{ms(med('vnc')) + ' ms' if med('vnc') is not None else '–'} | "
                      f"{', '.join(ms(r['total']) + '/' + ms(r['longest']) + '/' + ms(r['vnc']) for r in rs)}"
                      f"{f'; {failed[kind]} failed' if failed[kind] else ''} | {own} | "
                      f"{load_before}–{benchlib.load()} |", flush=True)
    finally:
        bus.terminate()
        bus.wait()
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)
    print(f"# load at end: {open('/proc/loadavg').read().strip()}", flush=True)


if __name__ == "__main__":
    sys.exit(main())

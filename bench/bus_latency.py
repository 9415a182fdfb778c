#!/usr/bin/env python3
"""Latency and CPU cost of the VM's bus interfaces, against orrery-vm on a private dbus-daemon.

For each --display size (default 1024x768 and 1920x1080) it boots the
default guest and measures:

  - bus round trips from a client, as a baseline for the daemon hop:
    the daemon alone (org.freedesktop.DBus.GetId), Peer.Ping answered by
    sd-bus inside orrery-vm, Properties.Get (no caller check) and
    Keyboard1.Release of a released key (the caller check, then a no-op);
  - input: Keyboard1.Press/Release called -> the guest probe's
    "event ... type=1 code=30" line read from the serial console
    (orrery-guest-probe events in the guest);
  - display: the host writes a seed to the serial console, where a guest
    loop `while read s; do orrery-guest-probe pattern $s; done` redraws the
    whole screen at once. From that write (the trigger) it times the first
    Update, the probe's "pattern drawn" line, and the Update that
    completes coverage of every line of the screen; and "drawn -> covered",
    the wait between the probe finishing and the client holding Updates
    for the whole screen (the 60 Hz damage timer plus the bus);
  - orrery-vm's CPU use (utime+stime from /proc/PID/stat, and per thread)
    over --cpu-seconds with the guest idle and 0, 1 and 4 watchers (each a
    separate bus connection that calls Console1.Watch and reads every
    signal), and with the guest redrawing continuously with 0, 1 and 4.

Host timestamps are CLOCK_MONOTONIC taken when a reader thread receives the
bytes (serial console pipe, or the watcher's bus socket), so every latency
includes the guest's own reaction time and Python's; the round trips show
how much the bus adds.

Usage: bench/bus_latency.py [--build DIR] [--display WxH ...] [--samples N] [--cpu-seconds S]
"""
import argparse
import os
import random
import re
import statistics
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from benchlib import SerialGuest as Guest, load, machine, pct  # noqa: E402
from orrery_rawbus import RawBus, pad, string  # noqa: E402

READY = b"orrery-guest: ready"
KEY_A = 30


def update_rects(body):
    n = struct.unpack_from("<I", body)[0]
    return [struct.unpack_from("<IIII", body, 8 + 16 * i) for i in range(n // 16)]


class Watcher:
    """A separate connection that watches Console/0 and reads every signal in its own thread."""

    def __init__(self, address, service, console, record=False):
        self.bus = RawBus(address)
        self.lock = threading.Condition()
        self.updates = []  # (time received, rects) when recording
        self.count = 0
        self.record = record
        self.bus.on_signal = self._signal
        rule = f"type='signal',sender='{service}',path='{console}',interface='org.orrery.Console1'"
        self.bus.call_ok("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "AddMatch", "s",
                      string(rule))
        self.bus.call_ok(service, console, "org.orrery.Console1", "Watch")
        self.thread = threading.Thread(target=self.bus.pump, daemon=True)
        self.thread.start()

    def _signal(self, fields, body, t):
        if fields.get(3) != "Update":
            return
        with self.lock:
            self.count += 1
            if self.record:
                self.updates.append((t, update_rects(body)))
                self.lock.notify_all()

    def close(self):
        self.bus.close()
        self.thread.join(5)


def cpu_ticks(pid):
    """utime+stime of the process and of each thread, in seconds."""
    hz = os.sysconf("SC_CLK_TCK")

    def ticks(path):
        with open(path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / hz

    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            threads[int(tid)] = ticks(f"/proc/{pid}/task/{tid}/stat")
        except OSError:
            pass
    return ticks(f"/proc/{pid}/stat"), threads




def other_emulators(mine):
    """Other orrery-vm or qemu processes on the machine (they compete for the CPUs)."""
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != mine:
            try:
                with open(f"/proc/{pid}/comm") as f:
                    comm = f.read().strip()
            except OSError:
                continue
            if comm.startswith(("orrery-vm", "qemu-system")):
                out.append(f"{comm}[{pid}]")
    return out




def run_display(args, size):
    w, h = map(int, size.split("x"))
    name = f"bench{w}x{h}"
    service, path = f"org.orrery.VM.{name}", f"/org/orrery/VM/{name}"
    console = f"{path}/Console/0"
    env = dict(os.environ, ORRERY_GUEST_DIR=os.environ.get("ORRERY_GUEST_DIR", os.path.join(args.build, "guest")))
    daemon = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                              stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address = daemon.stdout.readline().decode().strip()
    vm = Guest([os.path.join(args.build, "emulator", "orrery-vm"), "--name", name, "--display", size, "--bus", address],
               env)
    res = {"size": size, "load_start": load()}
    others_seen = set()
    try:
        vm.wait_for(re.escape(READY), 180, 0)
        client = RawBus(address)

        # -- Bus round trips: the daemon alone, sd-bus in orrery-vm, a vtable property, a method with the caller check.
        def rtt(*call, body=b"", sig=""):
            out = []
            for _ in range(args.rtt_samples):
                t0 = time.monotonic()
                client.call_ok(*call, sig=sig, body=body)
                out.append(time.monotonic() - t0)
            return out
        props = pad(string("org.orrery.Machine1"), 4) + string("State")
        res["rtt_daemon"] = rtt("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetId")
        res["rtt_ping"] = rtt(service, path, "org.freedesktop.DBus.Peer", "Ping")
        res["rtt_get"] = rtt(service, path, "org.freedesktop.DBus.Properties", "Get", sig="ss", body=props)
        res["rtt_method"] = rtt(service, path, "org.orrery.Keyboard1", "Release", sig="u", body=struct.pack("<I", KEY_A))

        # -- Input: Keyboard1.Press/Release -> the probe's line on the serial console.
        vm.command("orrery-guest-probe events &", rb"orrery-probe: listening \d+ devices", 30)
        time.sleep(0.3)
        lat, calls = [], []
        for i in range(args.samples):
            for method, value in (("Press", 1), ("Release", 0)):
                start = len(vm.out)
                t0 = time.monotonic()
                client.call_ok(service, path, "org.orrery.Keyboard1", method, sig="u", body=struct.pack("<I", KEY_A))
                calls.append(time.monotonic() - t0)
                _, t = vm.wait_for(rb"event \w+ type=1 code=30 value=%d\r?\n" % value, 10, start)
                lat.append(t - t0)
            time.sleep(0.01)
        res["input"], res["input_call"] = lat, calls
        vm.command("kill %1; echo probe-$((1+1))-stopped", rb"probe-2-stopped\r?\n", 30)

        # -- Display: trigger -> first Update, "pattern drawn" line, whole screen covered.
        rec = Watcher(address, service, console, record=True)
        vm.send("stty -echo; while read s; do orrery-guest-probe pattern $s; done\n")
        time.sleep(0.5)
        first, drawn, covered, drawn_to_cover, n_updates = [], [], [], [], []
        for i in range(args.samples + 1):
            # Six frames or more: nothing of the previous draw is still on its way. The random part keeps the
            # trigger from locking onto the phase of the emulator's 60 Hz damage timer.
            time.sleep(0.1 + random.uniform(0, 1 / 60))
            with rec.lock:
                rec.updates.clear()
            start = len(vm.out)
            vm.send(f"{i + 1}\n")
            t0 = time.monotonic()
            _, t_drawn = vm.wait_for(rb"pattern drawn \d+x\d+\r?\n", 60, start)
            rows = bytearray(h)
            t_first = t_cover = None
            deadline = time.monotonic() + 10
            with rec.lock:
                seen = 0
                while t_cover is None and time.monotonic() < deadline:
                    for t, rects in rec.updates[seen:]:
                        t_first = t_first or t
                        for (_, y, _, rh) in rects:
                            rows[y:y + rh] = b"\1" * len(rows[y:y + rh])
                        if t_cover is None and all(rows):
                            t_cover = t
                    seen = len(rec.updates)
                    if t_cover is None:
                        rec.lock.wait(0.05)
                count = len(rec.updates)
            if t_cover is None:
                raise TimeoutError(f"the Updates after draw {i} cover {sum(rows)} of {h} lines")
            if i == 0:
                continue  # the first draw switches the VT to graphics: a warm-up
            first.append(t_first - t0)
            drawn.append(t_drawn - t0)
            covered.append(t_cover - t0)
            drawn_to_cover.append(t_cover - t_drawn)
            n_updates.append(count)
        res.update(disp_first=first, disp_drawn=drawn, disp_cover=covered, disp_drawn_to_cover=drawn_to_cover,
                   disp_updates=n_updates)
        rec.close()
        vm.send("\x04")  # end the read loop (^D); the shell prompt comes back
        vm.command("stty echo; echo loop-$((1+1))-done", rb"loop-2-done\r?\n", 30)

        # -- CPU: idle and redrawing, with 0, 1 and 4 watchers.
        def measure(label, n_watchers):
            ws = [Watcher(address, service, console) for _ in range(n_watchers)]
            time.sleep(0.5)
            others_seen.update(other_emulators(vm.proc.pid))
            signals0 = sum(w.count for w in ws)
            total0, thr0 = cpu_ticks(vm.proc.pid)
            d0, _ = cpu_ticks(daemon.pid)
            t0 = time.monotonic()
            time.sleep(args.cpu_seconds)
            total1, thr1 = cpu_ticks(vm.proc.pid)
            d1, _ = cpu_ticks(daemon.pid)
            el = time.monotonic() - t0
            signals = sum(w.count for w in ws) - signals0
            for w_ in ws:
                w_.close()
            pid = vm.proc.pid
            main = (thr1.get(pid, 0) - thr0.get(pid, 0)) / el * 100
            others = sorted(((thr1[t] - thr0.get(t, 0)) / el * 100 for t in thr1 if t != pid), reverse=True)
            res.setdefault("cpu", []).append((label, n_watchers, (total1 - total0) / el * 100, main,
                                              others[0] if others else 0.0, signals / el / max(n_watchers, 1),
                                              (d1 - d0) / el * 100))

        vm.command("echo idle", rb"\nidle\r?\n", 30)
        time.sleep(1)
        for n in (0, 1, 4):
            measure("guest idle", n)
        vm.send("i=0; while true; do orrery-guest-probe pattern $i >/dev/null; i=$((i+1)); done\n")
        time.sleep(1)
        for n in (0, 1, 4):
            measure("guest redrawing", n)
        vm.send("\x03")
        vm.command("echo stopped-$((1+1))", rb"stopped-2\r?\n", 30)
        client.close()
        res["load_end"] = load()
        res["others"] = sorted(others_seen)
    finally:
        vm.stop()
        daemon.terminate()
        daemon.wait()
    return res


def ms(values):
    return f"{pct(values, 50) * 1000:7.2f} {pct(values, 99) * 1000:8.2f}"


def report(results, args, elapsed):
    lines = [f"machine: {machine()}; orrery-vm emulates the guest CPU in software (an interpreter, one hart)", ""]
    lines.append(f"{'latency (ms)':<58} {'display':>9} {'n':>4} {'p50':>7} {'p99':>8}")
    rows = [("bus RTT: client -> dbus-daemon (org.freedesktop.DBus.GetId)", "rtt_daemon"),
            ("bus RTT: Peer.Ping answered by sd-bus in orrery-vm", "rtt_ping"),
            ("bus RTT: Properties.Get Machine1.State", "rtt_get"),
            ("bus RTT: Keyboard1.Release (caller check, no-op)", "rtt_method"),
            ("Keyboard1.Press/Release call returns", "input_call"),
            ("Keyboard1.Press/Release -> probe's event line on serial", "input"),
            ("trigger on serial -> first Update", "disp_first"),
            ("trigger on serial -> 'pattern drawn' line", "disp_drawn"),
            ("trigger on serial -> Updates cover the whole screen", "disp_cover"),
            ("'pattern drawn' line -> Updates cover the screen", "disp_drawn_to_cover")]
    for label, key in rows:
        for r in results:
            lines.append(f"{label:<58} {r['size']:>9} {len(r[key]):>4} {ms(r[key])}")
    for r in results:
        lines.append(f"{'Update signals per full redraw (median)':<58} {r['size']:>9} {len(r['disp_updates']):>4} "
                     f"{statistics.median(r['disp_updates']):7.0f}")
    lines.append("")
    lines.append(f"{'orrery-vm CPU over ' + str(args.cpu_seconds) + ' s':<26} {'display':>9} {'watchers':>8} "
                 f"{'total %':>8} {'event loop %':>13} {'CPU thread %':>13} {'Updates/s/watcher':>18} {'dbus-daemon %':>14}")
    for r in results:
        for label, n, total, main, cpu, rate, dd in r["cpu"]:
            lines.append(f"{label:<26} {r['size']:>9} {n:>8} {total:8.1f} {main:13.1f} {cpu:13.1f} {rate:18.1f} "
                         f"{dd:14.1f}")
    lines.append("")
    for r in results:
        lines.append(f"{r['size']}: load average {r['load_start']} at the start, {r['load_end']} at the end; "
                     f"other emulators running during the CPU measurements: {', '.join(r['others']) or 'none'}")
    lines.append(f"total run time {elapsed:.0f} s")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build"))
    ap.add_argument("--display", action="append", help="WxH (repeatable; default 1024x768 and 1920x1080)")
    ap.add_argument("--samples", type=int, default=50,
                    help="full-screen redraws timed, and key press+release pairs (default 50)")
    ap.add_argument("--rtt-samples", type=int, default=500, help="bus round trips per kind (default 500)")
    ap.add_argument("--cpu-seconds", type=float, default=10.0, help="length of each CPU measurement (default 10)")
    args = ap.parse_args()
    t0 = time.monotonic()
    results = []
    for size in args.display or ["1024x768", "1920x1080"]:
        print(f"# {size} ...", file=sys.stderr, flush=True)
        results.append(run_display(args, size))
    print(report(results, args, time.monotonic() - t0))


if __name__ == "__main__":
    main()

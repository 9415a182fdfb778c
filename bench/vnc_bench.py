#!/usr/bin/env python3
"""orrery-vnc: frames, latency and CPU with the guest redrawing continuously.

For each --display size (default 1024x768 and 1920x1080) it boots the default
guest on a private dbus-daemon, starts orrery-vnc on 127.0.0.1, runs
`while :; do orrery-guest-probe pattern $i; i=$((i+1)); done` in the guest
(every redraw changes almost every pixel) and, for each scenario (encoding,
number of clients), for --seconds:

  - fb-watch reads one pixel of the VM's framebuffer memfd every 100 us and
    timestamps each change: the moment the guest's store is visible on the
    host ("guest draw");
  - each client (vnc-probe, libvncclient) timestamps the end of every
    FramebufferUpdate that changes the same pixel in its copy ("receipt");
  - latency = receipt - the guest draw of the same value, per client, split
    at the first Console1.Update covering the pixel (read by a separate bus
    watcher, bus_latency.py's): guest draw -> Update is the VM's damage
    tick (up to one 60 Hz frame), Update -> receipt is orrery-vnc, the
    socket and libvncclient. The split needs the watcher's Update before
    the receipt, so it covers n split of the n samples (both printed);
  - orrery-vnc's own stamps (its debug log, ORRERY_LOG_LEVEL=debug): an
    Update received -> the FramebufferUpdate carrying it written to the
    socket, every such update of the scenario (n vnc);
  - frames/s = distinct values of the pixel a client received per second
    (the guest's own redraw rate bounds it: the guest CPU is emulated),
    next to the guest's; updates/s = FramebufferUpdate messages per client;
  - orrery-vnc's CPU (utime + stime from /proc) per guest frame and per update.

Then a pointer flood: one client sends N motion events as fast as its socket
takes them; orrery-vnc's log says how many SetAbsPosition calls reached the
VM, and a serial-console round trip after it shows the guest is not stalled.

Usage: bench/vnc_bench.py [--build DIR] [--display WxH ...] [--seconds S] [--flood N]
"""
import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import Lines, cpu_ticks, pct  # noqa: E402
from bus_latency import Watcher  # noqa: E402  (a D-Bus Update watcher without bindings)




def memfd_path(pid):
    d = f"/proc/{pid}/fd"
    for fd in os.listdir(d):
        try:
            if os.readlink(os.path.join(d, fd)).startswith("/memfd:orrery-framebuffer"):
                return os.path.join(d, fd)
        except OSError:
            pass
    return None


def parse_pixels(lines):
    out = []
    for line in lines:
        m = re.match(r"pixel (\d+) ([0-9a-f]+)$", line)
        if m:
            out.append((int(m.group(1)) / 1e9, m.group(2)))
    return out


def run_scenario(args, vm, vnc, width, height, encoding, n_clients):
    probes = []
    for _ in range(n_clients):
        p = subprocess.Popen([args.probe, "--encodings", encoding, vnc.address], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        p.out = Lines(p.stdout)
        p.out.expect(r"^connected")
        probes.append(p)
    time.sleep(1)  # let each client receive its first full frame before measuring
    x, y = width // 2, height * 7 // 8
    tick = os.sysconf("SC_CLK_TCK")
    # fb-watch outlives the clients' watch: every value they receive has its draw recorded.
    watch = subprocess.Popen([args.fb_watch, memfd_path(vm.proc.pid), str((y * width + x) * 4), str(args.seconds + 3)],
                             stdout=subprocess.PIPE)
    wlines = Lines(watch.stdout)
    bw = Watcher(args.bus, "org.orrery.VM.vncbench", "/org/orrery/VM/vncbench/Console/0", record=True)
    log_mark = len(vnc.log.lines)
    c0, t0 = cpu_ticks(vnc.proc.pid), time.monotonic()
    pc0 = sum(cpu_ticks(p.pid) for p in probes)
    for p in probes:
        p.stdin.write(f"watch {x} {y} {args.seconds}\n".encode())
        p.stdin.flush()
    updates = 0
    for p in probes:
        updates += int(p.out.expect(r"^ok (\d+)$", args.seconds + 60).group(1))
    wlines.expect(r"^done$", 60)
    c1, t1 = cpu_ticks(vnc.proc.pid), time.monotonic()
    pc1 = sum(cpu_ticks(p.pid) for p in probes)
    bw.close()
    with bw.lock:
        covering = [t for t, rects in bw.updates
                    if any(rx <= x < rx + rw and ry <= y < ry + rh for rx, ry, rw, rh in rects)]
    drawn = parse_pixels(wlines.lines)
    lat, vm_lat, vnc_lat, received = [], [], [], []
    for p in probes:
        got = parse_pixels(p.out.lines)
        received.append(len(got))
        for t, v in got:
            # The latest draw before the receipt; the client must hold its value.
            before = [(td, vd) for td, vd in drawn if td <= t]
            if before and before[-1][1] == v:
                td = before[-1][0]
                lat.append((t - td) * 1000)
                tu = [u for u in covering if td <= u <= t]
                if tu:
                    vm_lat.append((tu[0] - td) * 1000)
                    vnc_lat.append((t - tu[0]) * 1000)
        p.stdin.write(b"quit\n")
        p.stdin.flush()
        p.wait(30)
    own = []
    for line in vnc.log.lines[log_mark:]:
        m = re.search(r"vnc-timing .* update_ns=(\d+) written_ns=(\d+)", line)
        if m:
            own.append((int(m.group(2)) - int(m.group(1))) / 1e6)
    cpu = (c1 - c0) / tick
    frames = max(len(drawn), 1)
    return {
        "guest_fps": len([d for d in drawn if d[0] <= t1]) / (t1 - t0),
        "n_split": len(vnc_lat),
        "own_p50": pct(own, 50), "own_p99": pct(own, 99), "n_own": len(own),
        "client_fps": statistics.mean(received) / args.seconds,
        "updates_per_s": updates / n_clients / args.seconds,
        "p50": pct(lat, 50), "p99": pct(lat, 99),
        "vm_p50": pct(vm_lat, 50), "vm_p99": pct(vm_lat, 99),
        "vnc_p50": pct(vnc_lat, 50), "vnc_p99": pct(vnc_lat, 99), "max": max(lat) if lat else float("nan"), "n": len(lat),
        "cpu_pct": 100 * cpu / (t1 - t0),
        "client_cpu_pct": 100 * (pc1 - pc0) / tick / (t1 - t0),
        "cpu_ms_per_frame": 1000 * cpu / frames,
        "cpu_ms_per_update": 1000 * cpu / max(updates, 1),
    }


def flood(args, vm, vnc, n):
    p = subprocess.Popen([args.probe, vnc.address], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    p.out = Lines(p.stdout)
    p.out.expect(r"^connected")
    mark = len(vnc.log.lines)
    t0 = time.monotonic()
    p.stdin.write(f"flood-pointer {n}\n".encode())
    p.stdin.flush()
    p.out.expect(r"^ok$", 600)
    t1 = time.monotonic()
    p.stdin.write(b"quit\n")
    p.stdin.flush()
    p.wait(30)
    m = vnc.log.expect(r"; (\d+) pointer events, (\d+) positions sent\)", start=mark)
    t2 = time.monotonic()
    ok = vm.command("echo flood-$((40+2))", r"flood-42\r?\n", 120)
    t3 = time.monotonic()
    return {"events": int(m.group(1)), "sent": int(m.group(2)), "seconds": t1 - t0,
            "echo_ms": (t3 - t2) * 1000 if ok else float("nan")}


class Server:
    def __init__(self, args, bus, name):
        self.proc = subprocess.Popen([args.vnc, "--vm", name, "--bus", bus, "--listen", "127.0.0.1:0"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env=dict(os.environ, ORRERY_LOG_LEVEL="debug"))
        self.log = Lines(self.proc.stderr)
        self.address = self.log.expect(r"listening on (\S+) \(VNC").group(1)
        self.log.expect(r"serving VM")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(here, "..", "build"))
    ap.add_argument("--display", action="append")
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--flood", type=int, default=100000)
    args = ap.parse_args()
    displays = args.display or ["1024x768", "1920x1080"]
    args.vnc = os.path.join(args.build, "services", "vnc", "orrery-vnc")
    args.probe = os.path.join(args.build, "tests", "integration", "vnc", "vnc-probe")
    args.fb_watch = os.path.join(args.build, "tests", "integration", "vnc", "fb-watch")
    os.environ.setdefault("ORRERY_VM", os.path.join(args.build, "emulator", "orrery-vm"))
    os.environ.setdefault("ORRERY_GUEST_DIR", os.path.join(args.build, "guest"))
    import orrery_test
    orrery_test.ORRERY_VM = os.environ["ORRERY_VM"]
    from orrery_test import BOOT_TIMEOUT, READY, PrivateBus, Vm

    print(f"# {time.strftime('%Y-%m-%d %H:%M')} seconds={args.seconds} load={os.getloadavg()}")
    print(f"{'display':>10} {'enc':>5} {'clients':>7} {'guest f/s':>9} {'client f/s':>10} {'upd/s':>6} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'n':>5} {'vm p50':>6} {'vm p99':>6} {'vnc p50':>7} "
          f"{'vnc p99':>7} {'n split':>7} {'own p50':>7} {'own p99':>7} {'n own':>6} {'cpu %':>6} {'ms/frame':>8} "
          f"{'ms/upd':>7} {'clients cpu %':>13}")
    for display in displays:
        width, height = (int(v) for v in display.split("x"))
        bus = PrivateBus()
        args.bus = bus.address
        vm = Vm("--display", display, name="vncbench", bus=bus.address)
        try:
            if vm.wait_for(READY, BOOT_TIMEOUT) is None:
                raise RuntimeError(vm.tail())
            vnc = Server(args, bus.address, "vncbench")
            vm.command("i=0; while :; do orrery-guest-probe pattern $i >/dev/null; i=$((i+1)); done &", r"\n", 30)
            for encoding, n in (("raw", 1), ("raw", 4), ("zrle", 1), ("zrle", 4)):
                r = run_scenario(args, vm, vnc, width, height, encoding, n)
                print(f"{display:>10} {encoding:>5} {n:>7} {r['guest_fps']:>9.2f} {r['client_fps']:>10.2f} "
                      f"{r['updates_per_s']:>6.1f} {r['p50']:>7.2f} {r['p99']:>7.2f} {r['max']:>7.2f} {r['n']:>5} "
                      f"{r['vm_p50']:>6.2f} {r['vm_p99']:>6.2f} {r['vnc_p50']:>7.2f} {r['vnc_p99']:>7.2f} "
                      f"{r['n_split']:>7} {r['own_p50']:>7.3f} {r['own_p99']:>7.3f} {r['n_own']:>6} "
                      f"{r['cpu_pct']:>6.1f} {r['cpu_ms_per_frame']:>8.2f} {r['cpu_ms_per_update']:>7.3f} "
                      f"{r['client_cpu_pct']:>13.1f}", flush=True)
            vm.command("kill %1", r"\n", 30)
            f = flood(args, vm, vnc, args.flood)
            print(f"# {display} pointer flood: {f['events']} events in {f['seconds']:.2f} s -> {f['sent']} "
                  f"SetAbsPosition calls; serial echo right after: {f['echo_ms']:.0f} ms", flush=True)
            vnc.proc.send_signal(signal.SIGTERM)
            vnc.proc.wait(30)
        finally:
            vm.kill()
            bus.stop()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The owner's calls while another user floods the VM with calls it must refuse.

The flood of tests/integration/test_bus_flood.py (a private dbus-daemon
that admits every user; nobody, uid 65534, pipelines Keyboard1.Release on
several connections) runs while the owner, again and again, opens a new
bus connection and times on it:

  - first: its first Machine1.Pause, which makes the VM ask the bus who the
    new caller is (GetConnectionCredentials) before it answers;
  - later: the Resume and the Pause after it, the verdict cached;
  - daemon: org.freedesktop.DBus.GetId, answered by dbus-daemon alone,
    for what the flooded daemon costs by itself.

The same is timed with no flood first, for reference. A flood round that
ends before the samples are taken is followed by another; a sample counts
only if the flood ran all through it. Needs root (setpriv runs the
flooders as nobody).

Usage: bench/bus_flood_bench.py [--build DIR] [--vm PATH] [--samples N] [--connections N] [--calls N]
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

import dbus

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from benchlib import load, machine, pct  # noqa: E402


def owner_sample(address, service, path):
    """(first, later, daemon) in ms on a new connection of the owner."""
    conn = dbus.bus.BusConnection(address)
    try:
        # No introspection: the first call on the bus to the VM is the timed one.
        m = dbus.Interface(conn.get_object(service, path, introspect=False), "org.orrery.Machine1")
        t0 = time.monotonic()
        m.Pause(timeout=120)
        t1 = time.monotonic()
        m.Resume(timeout=120)
        t2 = time.monotonic()
        m.Pause(timeout=120)
        t3 = time.monotonic()
        m.Resume(timeout=120)
        t4 = time.monotonic()
        daemon = dbus.Interface(conn.get_object("org.freedesktop.DBus", "/org/freedesktop/DBus", introspect=False),
                                "org.freedesktop.DBus")
        daemon.GetId(timeout=120)
        t5 = time.monotonic()
        return (t1 - t0) * 1000, [(t2 - t1) * 1000, (t3 - t2) * 1000, (t4 - t3) * 1000], (t5 - t4) * 1000
    finally:
        conn.close()


def row(label, values):
    return f"{label:<44} {len(values):>4} {pct(values, 50):>8.1f} {pct(values, 90):>8.1f} {max(values):>8.1f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--vm", help="the orrery-vm to measure (default: the build's)")
    ap.add_argument("--samples", type=int, default=25)
    ap.add_argument("--connections", type=int, default=4, help="the other user's flooding connections")
    ap.add_argument("--calls", type=int, default=25000, help="calls per flooding connection and round")
    args = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        sys.exit("needs root and setpriv: the flood comes from another user")

    os.environ.setdefault("ORRERY_BUILD_DIR", os.path.abspath(args.build))
    if args.vm:
        os.environ["ORRERY_VM"] = os.path.abspath(args.vm)
    os.environ.setdefault("ORRERY_GUEST_DIR", os.path.join(os.path.abspath(args.build), "guest"))
    import orrery_test
    import test_bus_flood as flood

    if args.vm:
        orrery_test.ORRERY_VM = os.environ["ORRERY_VM"]
    tmp = tempfile.mkdtemp(prefix="orrery-flood-bench-")
    daemon = orrery_test.OpenBus(tmp)
    address = f"unix:path={os.path.join(tmp, 'bus')}"
    vm = orrery_test.Vm("--display", "640x480", name=flood.NAME, bus=address)
    loads = [load()]
    quiet = {"first": [], "later": [], "daemon": []}
    flooded = {"first": [], "later": [], "daemon": []}
    rounds = 0
    try:
        if vm.wait_for(orrery_test.READY, orrery_test.BOOT_TIMEOUT) is None:
            sys.exit(f"the guest did not boot:\n{vm.tail()}")
        for _ in range(args.samples):
            first, later, d = owner_sample(address, flood.SERVICE, flood.PATH)
            quiet["first"].append(first)
            quiet["later"] += later
            quiet["daemon"].append(d)

        script = flood.script_for_others(os.path.join(tmp, "flooder"))
        while len(flooded["first"]) < args.samples and rounds < 20:
            procs = flood.start_flooders(address, args.connections, args.calls, flood.NOBODY, script)
            rounds += 1
            time.sleep(0.5)  # let the flood fill the daemon's queues: the samples are of a flood in full swing
            while len(flooded["first"]) < args.samples and all(p.poll() is None for p in procs):
                first, later, d = owner_sample(address, flood.SERVICE, flood.PATH)
                if not all(p.poll() is None for p in procs):
                    break  # the flood ended during the sample
                flooded["first"].append(first)
                flooded["later"] += later
                flooded["daemon"].append(d)
                loads.append(load())
            flood.finish_flooders(procs)
    finally:
        vm.kill()
        daemon.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"# {machine()}")
    print(f"# orrery-vm: {orrery_test.ORRERY_VM}")
    print(f"# flood: {args.connections} connections of uid {flood.NOBODY} x {args.calls} calls a round, "
          f"{rounds} round(s); load average (1 min) during the run: {min(loads)}-{max(loads)}")
    print(f"{'owner call (ms)':<44} {'n':>4} {'p50':>8} {'p90':>8} {'max':>8}")
    for label, d in (("no flood", quiet), ("flood", flooded)):
        print(row(f"{label}: first call (Pause, new connection)", d["first"]))
        print(row(f"{label}: later calls (Resume, Pause, Resume)", d["later"]))
        print(row(f"{label}: dbus-daemon's GetId", d["daemon"]))


if __name__ == "__main__":
    main()

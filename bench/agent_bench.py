#!/usr/bin/env python3
"""Guest-agent bridge benchmark: Ping round trips and copy throughput through orrery-agent.

Targets, each behind the same bridge and the same D-Bus calls:
  qemu-ga    Debian's qemu-ga on the host (-m unix-listen), through --test-socket: the bridge's own cost
  orrery     orrery-vm with the default guest and its orrery-guest-agent, through the VM's Chardev1
  qemu       qemu-system-riscv64 -M virt (TCG), same firmware, kernel and initramfs, the agent on a
             virtserialport org.qemu.guest_agent.0 behind a QEMU chardev socket, through --test-socket

Usage: bench/agent_bench.py [--build DIR] [--guest-dir DIR] [--pings N] [--size MIB] [--targets a,b,c]
Prints a Markdown table. Timeouts are upper bounds against hangs only.
"""
import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import dbus

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration", "agent"))
BIOS = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin"


def wait(seconds, fn):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if fn():
                return True
        except dbus.DBusException:
            pass
        time.sleep(0.05)
    return False


class Target:
    def __init__(self, name, bus_address, vm):
        self.name = name
        self.bus = dbus.bus.BusConnection(bus_address)
        self.vm = vm

    def agent(self):
        return dbus.Interface(self.bus.get_object("org.orrery.Agent", f"/org/orrery/Agent/{self.vm}",
                                                  introspect=False), "org.orrery.Agent1")

    def connected(self):
        props = dbus.Interface(self.bus.get_object("org.orrery.Agent", f"/org/orrery/Agent/{self.vm}",
                                                   introspect=False), "org.freedesktop.DBus.Properties")
        return bool(props.Get("org.orrery.Agent1", "Connected"))

    def measure(self, pings, size, tmp, guest_path):
        a = self.agent()
        for _ in range(5):
            a.Ping(timeout=60)
        rtts = []
        for _ in range(pings):
            t = time.perf_counter()
            a.Ping(timeout=60)
            rtts.append((time.perf_counter() - t) * 1000)
        data = os.urandom(size)
        src, back = os.path.join(tmp, "src.bin"), os.path.join(tmp, "back.bin")
        with open(src, "wb") as f:
            f.write(data)
        with open(src, "rb") as f:
            t = time.perf_counter()
            n = a.CopyToGuest(dbus.types.UnixFd(f), guest_path, timeout=3600)
            t_in = time.perf_counter() - t
        with open(back, "wb") as f:
            t = time.perf_counter()
            m = a.CopyFromGuest(guest_path, dbus.types.UnixFd(f), timeout=3600)
            t_out = time.perf_counter() - t
        with open(back, "rb") as f:
            ok = n == size and m == size and hashlib.sha256(f.read()).digest() == hashlib.sha256(data).digest()
        rtts.sort()
        return {"p50": statistics.median(rtts), "p99": rtts[int(len(rtts) * 0.99) - 1], "mean": statistics.fmean(rtts),
                "in": size / t_in / 1e6, "out": size / t_out / 1e6, "ok": ok}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--guest-dir", default=None)
    ap.add_argument("--pings", type=int, default=200)
    ap.add_argument("--size", type=int, default=16, help="MiB copied each way")
    ap.add_argument("--targets", default="qemu-ga,orrery,qemu")
    args = ap.parse_args()
    guest_dir = args.guest_dir or os.path.join(args.build, "guest")
    agent_bin = os.path.join(args.build, "services", "agent", "orrery-agent")
    os.environ.setdefault("ORRERY_VM", os.path.join(args.build, "emulator", "orrery-vm"))
    os.environ["ORRERY_GUEST_DIR"] = guest_dir
    from orrery_test import READY, PrivateBus, Vm  # noqa: E402

    size = args.size << 20
    results = []
    for target in args.targets.split(","):
        tmp = tempfile.mkdtemp(prefix="orrery-agent-bench-")
        pbus = PrivateBus()
        procs = []
        vm = None
        try:
            sock = os.path.join(tmp, "agent.sock")
            if target == "qemu-ga":
                procs.append(subprocess.Popen(["qemu-ga", "-m", "unix-listen", "-p", sock, "-t", tmp,
                                               "-f", os.path.join(tmp, "pid"), "-b",
                                               "guest-fsfreeze-freeze,guest-fsfreeze-thaw,guest-shutdown"],
                                              stderr=subprocess.DEVNULL))
                wait(30, lambda: os.path.exists(sock))
                extra, guest_path = ["--test-socket", f"bench={sock}"], os.path.join(tmp, "in-guest.bin")
            elif target == "orrery":
                vm = Vm("--display", "none", name="bench", bus=pbus.address)
                if not vm.wait_for(READY, 600):
                    raise RuntimeError("orrery-vm did not boot: " + vm.tail())
                extra, guest_path = [], "/tmp/bench.bin"
            elif target == "qemu":
                procs.append(subprocess.Popen(
                    ["qemu-system-riscv64", "-M", "virt", "-m", "512M", "-smp", "1", "-display", "none",
                     "-serial", "null", "-monitor", "none", "-bios", BIOS,
                     "-kernel", os.path.join(guest_dir, "Image"),
                     "-initrd", os.path.join(guest_dir, "initramfs.cpio.gz"), "-append", "console=ttyS0",
                     "-global", "virtio-mmio.force-legacy=false",
                     "-device", "virtio-serial-device",
                     "-chardev", f"socket,path={sock},server=on,wait=off,id=qga0",
                     "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0"],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                wait(60, lambda: os.path.exists(sock))
                extra, guest_path = ["--test-socket", f"bench={sock}"], "/tmp/bench.bin"
            else:
                raise SystemExit(f"unknown target {target}")
            procs.append(subprocess.Popen([agent_bin, "--bus", pbus.address, "--timeout", "120"] + extra))
            t = Target(target, pbus.address, "bench")
            if not wait(600, t.connected):
                raise RuntimeError(f"{target}: the guest agent never connected")
            r = t.measure(args.pings, size, tmp, guest_path)
            results.append((target, r))
            print(f"# {target}: {r}", file=sys.stderr, flush=True)
        finally:
            for p in reversed(procs):
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
            if vm:
                vm.kill()
            pbus.stop()
            shutil.rmtree(tmp, ignore_errors=True)

    print("| target | Ping p50 (ms) | Ping p99 (ms) | host→guest (MB/s) | guest→host (MB/s) | sha256 equal |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for name, r in results:
        print(f"| {name} | {r['p50']:.2f} | {r['p99']:.2f} | {r['in']:.2f} | {r['out']:.2f} | {'yes' if r['ok'] else 'NO'} |")
    print(f"\n{args.pings} sequential Pings after 5 warm-up; {args.size} MiB of random bytes each way.")


if __name__ == "__main__":
    main()

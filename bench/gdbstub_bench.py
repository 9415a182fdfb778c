#!/usr/bin/env python3
"""The debugger path, orrery-vm + orrery-gdbstub against QEMU's built-in -gdb,
on the same OpenSBI, kernel and initramfs (the default guest), and the cost
of --debug on a VM with no breakpoint set:

  - single-step rate: 's' packets a second, each answered by its stop reply
    (debugger -> stub -> bus -> VM -> back for orrery; in-process for QEMU);
  - breakpoint round trip: with the VM stopped on an instruction that does
    not branch, a breakpoint on the next one, 'c', and the stop reply;
  - cpu-bench (orrery-guest-probe cpu-bench, guest clock) with and without
    --debug, alternating, on the interpreter.

A minimal RSP client of its own speaks to both stubs, so GDB's own work is
not measured. Note the machine's load next to the numbers (printed).

Usage: bench/gdbstub_bench.py [--build DIR] [--guest DIR] [--steps N] [--breaks N] [--runs N]
"""
import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import SerialGuest as Guest, free_port  # noqa: E402
from boot_vs_qemu import BIOS, READY  # noqa: E402

# A busy shell loop, so the stepped CPU is not idle in WFI waiting for a far timer.
BUSY = "while :; do :; done &\n"
TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Rsp:
    def __init__(self, port):
        deadline = time.monotonic() + 30
        while True:
            try:
                self.s = socket.create_connection(("127.0.0.1", port), timeout=60)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.ack = True
        self.call("qSupported:swbreak+")
        if self.call("QStartNoAckMode") == b"OK":
            self.ack = False

    def send(self, payload):
        data = payload.encode()
        self.s.sendall(b"$" + data + b"#%02x" % (sum(data) & 0xff))

    def recv(self):
        while True:
            m = re.search(rb"\$([^#]*)#[0-9a-fA-F]{2}", self.buf)
            if m:
                self.buf = self.buf[m.end():]
                if self.ack:
                    self.s.sendall(b"+")
                return m.group(1)
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("the stub closed the connection")
            self.buf += chunk

    def call(self, payload):
        self.send(payload)
        reply = self.recv()
        # A stop reply left over (QEMU reports its stop on attach) never answers a query.
        while payload[0] not in "sc?" and reply[:1] in (b"T", b"S"):
            reply = self.recv()
        return reply

    def pc(self):
        regs = self.call("g").decode()           # x0-x31 then pc, 16 hex digits each
        if len(regs) < 33 * 16:
            raise RuntimeError(f"g answered {regs[:80]!r}")
        return int.from_bytes(bytes.fromhex(regs[32 * 16:33 * 16]), "little")


def sequential(insn):
    """Whether the instruction (first 4 bytes, little-endian) always falls through to the next one."""
    if insn & 3 == 3:
        return (insn & 0x7f) not in (0x63, 0x6f, 0x67, 0x73), 4
    half = insn & 0xffff
    quadrant, funct3 = half & 3, half >> 13
    if quadrant == 1 and funct3 in (5, 6, 7):
        return False, 2
    if quadrant == 2 and funct3 == 4 and (half >> 2) & 0x1f == 0:
        return False, 2             # c.jr, c.jalr, c.ebreak
    return True, 2


def measure(rsp, steps, breaks):
    rsp.call("?")
    t0 = time.perf_counter()
    for _ in range(steps):
        reply = rsp.call("s")
        if not reply.startswith(b"T") and not reply.startswith(b"S"):
            raise RuntimeError(f"step answered {reply!r}")
    step_rate = steps / (time.perf_counter() - t0)

    trips = []
    while len(trips) < breaks:
        pc = rsp.pc()
        insn = int.from_bytes(bytes.fromhex(rsp.call("m%x,4" % pc).decode()), "little")
        ok, length = sequential(insn)
        if not ok:
            rsp.call("s")
            continue
        target = pc + length
        assert rsp.call("Z0,%x,%d" % (target, length)) == b"OK"
        t0 = time.perf_counter()
        reply = rsp.call("c")
        dt = time.perf_counter() - t0
        rsp.call("z0,%x,%d" % (target, length))
        if rsp.pc() == target:           # an interrupt may have taken it elsewhere first
            trips.append(dt)
        elif not reply.startswith(b"T"):
            raise RuntimeError(f"continue answered {reply!r}")
    return step_rate, trips


def run_orrery(args):
    bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                           stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    address = bus.stdout.readline().decode().strip()
    g = Guest([os.path.join(args.build, "emulator", "orrery-vm"), "--name", "bench", "--debug", "--bus", address,
               "--kernel", args.kernel, "--initrd", args.initrd, "--bios", BIOS, "--display", "none"])
    stub = None
    try:
        g.wait_for(READY, 600)
        g.send(BUSY)
        port = free_port()
        stub = subprocess.Popen([os.path.join(args.build, "services", "gdbstub", "orrery-gdbstub"), "--vm", "bench",
                                 "--bus", address, "--listen", f"127.0.0.1:{port}"], stderr=subprocess.DEVNULL)
        return measure(Rsp(port), args.steps, args.breaks)
    finally:
        if stub:
            stub.kill()
            stub.wait()
        g.stop()
        bus.kill()
        bus.wait()


def run_qemu(args):
    port = free_port()
    g = Guest(["qemu-system-riscv64", "-M", "virt", "-m", "512M", "-nographic", "-bios", BIOS,
               "-kernel", args.kernel, "-initrd", args.initrd, "-append", "console=ttyS0",
               "-global", "virtio-mmio.force-legacy=false", "-monitor", "none", "-serial", "stdio",
               "-gdb", f"tcp:127.0.0.1:{port}"])
    try:
        g.wait_for(READY, 600)
        g.send(BUSY)
        return measure(Rsp(port), args.steps, args.breaks)
    finally:
        g.stop()


def cpu_bench(args, debug, binary=None):
    """cpu-bench on the guest clock, the VM on a private bus (with --debug: Debug1 served, no debugger)."""
    bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    address = bus.stdout.readline().decode().strip()
    cmd = [binary or os.path.join(args.build, "emulator", "orrery-vm"), "--name", "bench", "--kernel", args.kernel,
           "--initrd", args.initrd, "--bios", BIOS, "--display", "none", "--bus", address] + \
        (["--debug"] if debug else [])
    g = Guest(cmd)
    try:
        g.wait_for(READY, 600)
        since = len(g.out)
        g.send("orrery-guest-probe cpu-bench\n")
        # Up to the end of the line: the output may arrive cut inside the number.
        m, _ = g.wait_for(rb"cpu-bench result=(\w+) ms=(\d+)\s", 900, since)
        return int(m.group(2))
    finally:
        g.stop()
        bus.kill()
        bus.wait()


def ms(values):
    return f"median {statistics.median(values) * 1000:8.3f} ms  (min {min(values) * 1000:.3f}, max {max(values) * 1000:.3f})"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build", default=os.path.join(TOP, "build"))
    p.add_argument("--guest", help="directory with Image and initramfs.cpio.gz (default: BUILD/guest)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--breaks", type=int, default=200)
    p.add_argument("--baseline", help="another orrery-vm (e.g. one built without the debug hooks) to compare")
    p.add_argument("--skip", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--runs", type=int, default=3, help="cpu-bench runs with and without --debug")
    args = p.parse_args()
    guest = args.guest or os.path.join(args.build, "guest")
    args.kernel = os.path.join(guest, "Image")
    args.initrd = os.path.join(guest, "initramfs.cpio.gz")

    print(f"load before: {os.getloadavg()}", flush=True)
    for name, run in (("orrery-vm + orrery-gdbstub", run_orrery), ("qemu -gdb", run_qemu))[args.skip:]:
        rate, trips = run(args)
        print(f"{name:28s} single-step {rate:8.0f}/s   breakpoint round trip {ms(trips)}", flush=True)
    print(f"load: {os.getloadavg()}", flush=True)
    plain, debug, base = [], [], []
    for _ in range(args.runs):
        plain.append(cpu_bench(args, False))
        debug.append(cpu_bench(args, True))
        if args.baseline:
            base.append(cpu_bench(args, False, args.baseline))
        print(f"cpu-bench ms: without --debug {plain[-1]}, with --debug {debug[-1]}"
              + (f", baseline binary {base[-1]}" if base else "") + f"  (load {os.getloadavg()[0]:.1f})", flush=True)
    if base:
        print(f"cpu-bench median: baseline binary {statistics.median(base):.0f} ms")
    if not plain:
        return
    mp, md = statistics.median(plain), statistics.median(debug)
    print(f"cpu-bench median: without --debug {mp:.0f} ms, with --debug {md:.0f} ms ({(md - mp) / mp * 100:+.1f}%)")
    print(f"load after: {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()

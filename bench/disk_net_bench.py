#!/usr/bin/env python3
"""Disk and network throughput of the default guest on orrery-vm and on
QEMU TCG, same firmware, kernel, initramfs and image.

  disk: guest dd, 1 MiB blocks, oflag=direct / iflag=direct, on a raw
        image (cache=writeback on both); 4 KiB random reads, O_DIRECT, one
        at a time, at fixed-seed offsets (orrery-guest-probe randread).
  net:  TCP through a host forward on 127.0.0.1 (restrict=on on both):
        host -> guest into busybox nc, guest -> host out of busybox nc.

Only 127.0.0.1 is ever contacted.

Usage: bench/disk_net_bench.py [--build DIR] [--mib N] [--reads N] [--no-qemu]
"""
import argparse
import os
import socket
import sys
import tempfile
import time

from benchlib import SerialGuest as Guest, free_port

READY = b"orrery-guest: ready"
BIOS = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin"


def dd_rate(g, cmd):
    m = g.command(cmd + " 2>&1; echo dd-do''ne", rb"copied, ([\d.]+) seconds, ([\d.]+)([KMG]?)B/s[\s\S]*?dd-done", 600)
    return float(m.group(2)) * {b"": 1e-6, b"K": 1e-3, b"M": 1, b"G": 1e3}[m.group(3)] * (1e6 / (1 << 20))


def randread_iops(g, count):
    m = g.command(f"orrery-guest-probe randread /dev/vda {count}", rb"orrery-probe: randread ops=\d+ ms=\d+ iops=(\d+)", 600)
    return float(m.group(1))


def connect_retry(port, deadline=60):
    end = time.monotonic() + deadline
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=120)
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


def tcp_in(g, port, mib):
    """Host -> guest: the guest's nc swallows what the host sends."""
    g.command("nc -l -p 5000 </dev/null >/dev/null & echo nc-l''istening", rb"nc-listening", 30)
    buf = b"\0" * (1 << 20)
    while True:
        s = connect_retry(port)
        t0 = time.monotonic()
        try:
            for _ in range(mib):
                s.sendall(buf)
            s.shutdown(socket.SHUT_WR)
            while s.recv(65536):
                pass
            break
        except (ConnectionResetError, BrokenPipeError):
            s.close()       # nc not listening yet: slirp reset us
            continue
    dt = time.monotonic() - t0
    s.close()
    return mib / dt


def tcp_out(g, port, mib):
    """Guest -> host: the guest's nc sends mib MiB of zeros."""
    g.command(f"dd if=/dev/zero bs=1M count={mib} 2>/dev/null | nc -l -p 5001 & echo nc-s''ending", rb"nc-sending", 30)
    while True:
        s = connect_retry(port)
        t0 = time.monotonic()
        n = 0
        while True:
            d = s.recv(1 << 20)
            if not d:
                break
            n += len(d)
        if n:
            break
        s.close()
    dt = time.monotonic() - t0
    s.close()
    return n / (1 << 20) / dt


def thread_cpu(pid):
    """CPU seconds per thread: {tid: seconds}."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[tid] = (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            pass
    return out


def measured(g, fn):
    """Runs fn(); returns its result, and how busy the busiest thread and the whole process were (fractions of wall time)."""
    before, t0 = thread_cpu(g.proc.pid), time.monotonic()
    r = fn()
    after, dt = thread_cpu(g.proc.pid), time.monotonic() - t0
    per = sorted((after[t] - before.get(t, 0) for t in after), reverse=True)
    return r, per[0] / dt, sum(per) / dt


UNITS = {"randread": "IOPS"}


def run(name, cmd, fwd_in, fwd_out, mib, reads):
    g = Guest(cmd)
    try:
        g.wait_for(READY, 300)
        r = {}
        for key, fn in (("write", lambda: dd_rate(g, f"dd if=/dev/zero of=/dev/vda bs=1M count={mib} oflag=direct")),
                        ("read", lambda: dd_rate(g, f"dd if=/dev/vda of=/dev/null bs=1M count={mib} iflag=direct")),
                        ("randread", lambda: randread_iops(g, reads)),
                        ("tcp_in", lambda: tcp_in(g, fwd_in, mib)),
                        ("tcp_out", lambda: tcp_out(g, fwd_out, mib))):
            r[key] = measured(g, fn)
        print(f"{name}: " + ", ".join(f"{k} {v[0]:.1f} {UNITS.get(k, 'MiB/s')} (busiest thread {v[1] * 100:.0f}%, process {v[2] * 100:.0f}%)"
                                      for k, v in r.items()), flush=True)
        return r
    finally:
        g.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "build"))
    ap.add_argument("--mib", type=int, default=128)
    ap.add_argument("--reads", type=int, default=2000, help="4 KiB random reads for the IOPS figure")
    ap.add_argument("--no-qemu", action="store_true")
    a = ap.parse_args()
    guest = os.path.join(a.build, "guest")
    kernel, initrd = os.path.join(guest, "Image"), os.path.join(guest, "initramfs.cpio.gz")

    with tempfile.TemporaryDirectory(prefix="orrery-bench-") as tmp:
        img = os.path.join(tmp, "disk.img")
        with open(img, "wb") as f:
            f.truncate((a.mib + 16) << 20)
        pi, po = free_port(), free_port()
        net = f"user,restrict=on,hostfwd=tcp::{pi}-:5000,hostfwd=tcp::{po}-:5001"
        results = {"orrery-vm": run("orrery-vm", [os.path.join(a.build, "emulator", "orrery-vm"), "--name", "bench",
                                                   "--no-bus", "--no-config", "--display", "none",
                                                   "--drive", f"file={img}", "--net", net], pi, po, a.mib, a.reads)}
        if not a.no_qemu:
            pi, po = free_port(), free_port()
            results["qemu"] = run("qemu", ["qemu-system-riscv64", "-M", "virt", "-m", "512M", "-nographic",
                                           "-bios", BIOS, "-kernel", kernel, "-initrd", initrd,
                                           "-append", "console=ttyS0",
                                           "-drive", f"if=none,id=d0,file={img},format=raw,cache=writeback",
                                           "-device", "virtio-blk-device,drive=d0",
                                           "-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{pi}-:5000,"
                                                      f"hostfwd=tcp:127.0.0.1:{po}-:5001",
                                           "-device", "virtio-net-device,netdev=n0"], pi, po, a.mib, a.reads)
    return 0


if __name__ == "__main__":
    sys.exit(main())

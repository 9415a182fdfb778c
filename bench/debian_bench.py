#!/usr/bin/env python3
"""The Debian guest (guest/debian/) on orrery-vm and on QEMU TCG, same firmware, kernel, initrd and image.

  orrery   orrery-vm --guest debian --cpu-engine jit, the image's own disk copy, a NIC with restrict=on
  qemu     qemu-system-riscv64 -M virt -smp 1 -m 1G, the same OpenSBI, a virtio-blk-device on a copy of
           the same image, a virtio-net-device on user networking with restrict=on

Measured, wall time on the host: process start -> "login:" on serial; `ssh ... true` (median of 20);
`xz -9` of a fixed 32 MiB file and `sha256sum` of 256 MiB inside Debian (each over ssh, minus nothing:
the ssh round trip above is small beside them). Prints a Markdown table for bench/RESULTS.md.

    bench/debian_bench.py [--build build] [--only orrery|qemu]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time

from benchlib import SerialGuest as Guest, free_port

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIOS = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin"
# A fixed 32 MiB input for xz: text-like and compressible, the same on every run.
MAKE_XZ_INPUT = "seq 1 100000000 | head -c 33554432 >/root/xz-input"


def add_key(disk, pub):
    script = f"""mkdir /root/.ssh
rm /root/.ssh/authorized_keys
write {pub} /root/.ssh/authorized_keys
set_inode_field /root/.ssh mode 040700
set_inode_field /root/.ssh/authorized_keys mode 0100600
set_inode_field /root/.ssh/authorized_keys uid 0
set_inode_field /root/.ssh/authorized_keys gid 0
"""
    subprocess.run(["debugfs", "-w", "-f", "-", disk], input=script.encode(), capture_output=True, check=True)


def run(kind, args, tmp, key):
    debian = os.path.join(args.build, "guest", "debian")
    disk = os.path.join(tmp, f"{kind}.img")
    subprocess.run(["cp", "--sparse=always", os.path.join(debian, "debian.img"), disk], check=True)
    add_key(disk, key + ".pub")
    port = free_port()
    if kind == "orrery":
        cmd = [os.path.join(args.build, "emulator", "orrery-vm"), "--name", "debbench", "--no-bus", "--no-config",
               "--guest", "debian", "--cpu-engine", "jit", "--display", "none", "--drive", "file=" + disk,
               "--net", f"user,hostfwd=tcp:127.0.0.1:{port}-:22,restrict=on"]
    else:
        cmd = ["qemu-system-riscv64", "-M", "virt", "-smp", "1", "-m", "1G", "-nographic", "-monitor", "none",
               "-bios", BIOS, "-kernel", os.path.join(debian, "vmlinux"),
               "-initrd", os.path.join(debian, "initrd.img"), "-append", "root=/dev/vda ro console=ttyS0",
               "-global", "virtio-mmio.force-legacy=false",
               "-drive", f"file={disk},format=raw,if=none,id=d0", "-device", "virtio-blk-device,drive=d0",
               "-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22",
               "-device", "virtio-net-device,netdev=n0"]
    ssh = ["ssh", "-p", str(port), "-i", key, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
           "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "root@127.0.0.1"]
    g = Guest(cmd)
    try:
        login = g.wait_for(rb"login:", 1200)[1] - g.start
        deadline = time.monotonic() + 300
        while subprocess.run(ssh + ["true"], capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("ssh never answered")
            time.sleep(1)
        rtts = []
        for _ in range(20):
            t = time.monotonic()
            subprocess.run(ssh + ["true"], check=True, capture_output=True)
            rtts.append(time.monotonic() - t)
        subprocess.run(ssh + [MAKE_XZ_INPUT + " && head -c 268435456 /dev/zero >/root/sha-input && sync"],
                       check=True, capture_output=True, timeout=1800)

        def timed(command):
            t = time.monotonic()
            subprocess.run(ssh + [command], check=True, capture_output=True, timeout=3600)
            return time.monotonic() - t

        xz = timed("xz -9 -T1 -c /root/xz-input >/dev/null")
        sha = timed("sha256sum /root/sha-input")
        return {"login": login, "ssh": statistics.median(rtts), "xz": xz, "sha": sha}
    finally:
        g.stop()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default=os.path.join(TOP, "build"))
    p.add_argument("--only", choices=["orrery", "qemu"])
    args = p.parse_args()
    load = os.getloadavg()
    tmp = tempfile.mkdtemp(prefix="orrery-debian-bench-")
    key = os.path.join(tmp, "id_ed25519")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    results = {}
    try:
        for kind in ["orrery", "qemu"]:
            if args.only in (None, kind):
                results[kind] = run(kind, args, tmp, key)
                print(f"# {kind}: {results[kind]}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"load average at start: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, at end: "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    print("| | orrery-vm (jit) | QEMU TCG | orrery / QEMU |")
    print("| --- | --- | --- | --- |")
    rows = [("process start → `login:`", "login", "s"), ("`ssh … true`, median of 20", "ssh", "s"),
            ("`xz -9` of 32 MiB", "xz", "s"), ("`sha256sum` of 256 MiB", "sha", "s")]
    for label, k, unit in rows:
        o = results.get("orrery", {}).get(k)
        q = results.get("qemu", {}).get(k)
        ratio = f"{o / q:.2f}" if o and q else "–"
        fo = f"{o:.2f} {unit}" if o is not None else "–"
        fq = f"{q:.2f} {unit}" if q is not None else "–"
        print(f"| {label} | {fo} | {fq} | {ratio} |")


if __name__ == "__main__":
    main()

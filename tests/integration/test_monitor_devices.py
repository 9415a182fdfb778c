#!/usr/bin/env python3
"""orrery-monitor's disk and network commands against a real VM on a private bus:
info block, info network, block_resize, hostfwd_add, hostfwd_remove, set_link.

Only ever 127.0.0.1: the NIC runs with restrict=on and every forward listens on loopback.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from orrery_test import BOOT_TIMEOUT, READY, PrivateBus, Tap, Vm, fetch, free_port, poll  # noqa: E402

MONITOR = os.environ["ORRERY_MONITOR"]
NAME = "mondev"
TIMEOUT = 60  # generous: catches hangs only
MIB = 1 << 20

tap = Tap()
pbus = PrivateBus()
tmpdir = tempfile.mkdtemp(prefix="orrery-test-mondev-")
env = dict(os.environ, TERM="dumb", XDG_STATE_HOME=tmpdir)


def monitor(*commands):
    args = [MONITOR, "--bus", pbus.address, NAME]
    for c in commands:
        args += ["-c", c]
    return subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT, env=env, stdin=subprocess.DEVNULL)


vm = None
try:
    img = os.path.join(tmpdir, "data.img")
    with open(img, "wb") as f:
        f.truncate(4 * MIB)
    fwd0 = free_port()
    vm = Vm("--display", "none", "--no-config", "--drive", f"file={img},id=data",
            "--net", f"user,id=n0,mac=52:54:00:ab:cd:ef,hostfwd=tcp::{fwd0}-:80,restrict=on", name=NAME, bus=pbus.address)
    tap.check(vm.wait_for(READY, BOOT_TIMEOUT) is not None, "the VM boots", vm.tail())

    # ---- info block, block_resize
    r = monitor("info block")
    tap.check(r.returncode == 0 and f"data: {img} (raw)" in r.stdout and re.search(r"Size:\s+4194304 bytes", r.stdout),
              "info block: 'ID: FILE (raw)' and the size", r.stdout + r.stderr)
    r = monitor("block_resize data 8M", "info block")
    tap.check(r.returncode == 0 and re.search(r"Size:\s+8388608 bytes", r.stdout) and os.path.getsize(img) == 8 * MIB,
              "block_resize data 8M grows the image; info block shows it", r.stdout + r.stderr)
    m = None
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        m = vm.command("echo size-$(cat /sys/block/vda/size)-end", r"size-(\d+)-end", 30)
        if m and m.group(1) == str(8 * MIB // 512):
            break
        time.sleep(0.5)
    tap.check(m is not None and m.group(1) == str(8 * MIB // 512), "the guest sees the new size", vm.tail())
    r = monitor("block_resize data 1M")
    tap.check(r.returncode == 1 and "shrinking" in r.stderr and os.path.getsize(img) == 8 * MIB,
              "block_resize to a smaller size: refused, exit 1", r.stderr)
    r = monitor("block_resize data 12x")
    tap.check(r.returncode == 2 and "Usage: block_resize" in r.stderr, "block_resize with a bad size: usage, exit 2",
              r.stderr)
    r = monitor("block_resize nodisk 8M")
    tap.check(r.returncode == 1 and "no disk 'nodisk'" in r.stderr, "block_resize of an unknown disk: exit 1", r.stderr)

    # ---- info network, hostfwd_add, hostfwd_remove
    r = monitor("info network")
    tap.check(r.returncode == 0 and "n0: index=0,type=nic,model=virtio-net-device,macaddr=52:54:00:ab:cd:ef\n" in r.stdout
              and f"TCP[HOST_FORWARD]  127.0.0.1:{fwd0} -> 10.0.2.15:80" in r.stdout,
              "info network: the NIC in QEMU's shape and its forward", r.stdout + r.stderr)
    vm.command("mkdir -p /www && echo hello-from-guest > /www/index.html && httpd -p 8080 -h /www && echo httpd-''up",
               r"httpd-up\r?\n", 30)
    port = free_port()
    r = monitor(f"hostfwd_add tcp::{port}-:8080")
    tap.check(r.returncode == 0, "hostfwd_add tcp::PORT-:8080 (the only NIC)", r.stderr)
    tap.check(poll(lambda: fetch(port), TIMEOUT) == b"hello-from-guest\n", "the forward reaches httpd in the guest from 127.0.0.1")
    r = monitor(f"hostfwd_add tcp::{port}-:8080")
    tap.check(r.returncode == 1 and "in use" in r.stderr, "hostfwd_add of a port forwarded already: exit 1", r.stderr)
    uport = free_port(socket.SOCK_DGRAM)
    r = monitor(f"hostfwd_add n0 udp:127.0.0.1:{uport}-10.0.2.15:7777", "info network")
    tap.check(r.returncode == 0 and f"UDP[HOST_FORWARD]  127.0.0.1:{uport} -> 10.0.2.15:7777" in r.stdout
              and f"TCP[HOST_FORWARD]  127.0.0.1:{port} -> 10.0.2.15:8080" in r.stdout,
              "hostfwd_add with a NIC id and udp; info network lists both", r.stdout + r.stderr)
    r = monitor("hostfwd_add sctp::1000-:80")
    tap.check(r.returncode == 2 and "unknown protocol" in r.stderr, "hostfwd_add with another protocol: exit 2", r.stderr)
    r = monitor("hostfwd_add tcp::1000-10.0.2.16:80")
    tap.check(r.returncode == 2 and "10.0.2.15" in r.stderr, "hostfwd_add to another guest address: exit 2", r.stderr)
    r = monitor(f"hostfwd_remove tcp::{port}", f"hostfwd_remove n0 udp:127.0.0.1:{uport}", "info network")
    tap.check(r.returncode == 0 and f":{port} ->" not in r.stdout and f":{uport} ->" not in r.stdout,
              "hostfwd_remove (with and without a NIC id) removes them", r.stdout + r.stderr)
    tap.check(fetch(port) is None, "after hostfwd_remove the port refuses connections")
    r = monitor(f"hostfwd_remove tcp::{port}")
    tap.check(r.returncode == 1 and "No tcp forward" in r.stderr, "hostfwd_remove of an unknown forward: exit 1",
              r.stderr)

    # ---- set_link
    def carrier():
        m = vm.command("echo carrier-$(cat /sys/class/net/eth0/carrier)-end", r"carrier-(\d)-end", 30)
        return m.group(1) if m else None

    r = monitor("set_link n0 off", "info network")
    tap.check(r.returncode == 0 and "macaddr=52:54:00:ab:cd:ef,link=down" in r.stdout,
              "set_link n0 off; info network says link=down", r.stdout + r.stderr)
    tap.check(poll(lambda: carrier() == "0", TIMEOUT), "the guest loses carrier", vm.tail())
    r = monitor("set_link n0 on")
    tap.check(r.returncode == 0 and poll(lambda: carrier() == "1", TIMEOUT), "set_link n0 on: carrier is back", vm.tail())
    r = monitor("set_link nonic off")
    tap.check(r.returncode == 1 and "no NIC 'nonic'" in r.stderr, "set_link of an unknown NIC: exit 1", r.stderr)
    r = monitor("set_link n0 sideways")
    tap.check(r.returncode == 2 and "Usage: set_link" in r.stderr, "set_link with neither on nor off: exit 2", r.stderr)

    vm.send("poweroff\n")
    tap.check(vm.wait_exit(60) == 0, "the guest powers off", vm.tail())
finally:
    if vm:
        vm.kill()
    pbus.stop()
    shutil.rmtree(tmpdir, ignore_errors=True)
tap.finish()

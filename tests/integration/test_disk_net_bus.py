#!/usr/bin/env python3
"""Changing disks and NICs at runtime through the bus: Block1.Resize, Network1.AddForward/RemoveForward.

One VM on a private bus, with a writable disk, a readonly one, a snapshot one
and a NIC with restrict=on. The bus lets other users in, so that nobody
(through setpriv, when the test runs as root, as in CI) is seen refused. Only ever 127.0.0.1: every forward listens on
loopback.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import dbus  # noqa: E402
import dbus.mainloop.glib  # noqa: E402
from gi.repository import GLib  # noqa: E402

from orrery_test import BOOT_TIMEOUT, READY, OpenBus, Tap, Vm, error_name, fetch, free_port, poll  # noqa: E402

dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
tap = Tap()
MIB = 1 << 20


def spin(seconds, until=lambda: False):
    ctx = GLib.MainContext.default()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        while ctx.pending():
            ctx.iteration(False)
        if until():
            return True
        time.sleep(0.02)
    return until()


def as_other_user(args):
    """busctl as nobody through setpriv; None when we are not root and cannot change user (those checks drop out)."""
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else None
    if prefix is None:
        return None
    return subprocess.run(prefix + ["busctl", f"--address={pbus.address}"] + args, capture_output=True, text=True,
                          timeout=60, cwd="/")


tmpdir = tempfile.mkdtemp(prefix="orrery-test-disknet-")
pbus = OpenBus(tmpdir)
vm = None
try:
    imgs = {}
    for name in ("rw", "ro", "snap"):
        imgs[name] = os.path.join(tmpdir, f"{name}.img")
        with open(imgs[name], "wb") as f:
            f.truncate(4 * MIB)
    fwd0 = free_port()
    vm = Vm("--display", "none", "--no-config",
            "--drive", f"file={imgs['rw']},id=rw",
            "--drive", f"file={imgs['ro']},id=ro,readonly=on",
            "--drive", f"file={imgs['snap']},id=snap,snapshot=on",
            "--net", f"user,id=n0,hostfwd=tcp::{fwd0}-:80,restrict=on",
            name="disknet", bus=pbus.address)
    tap.check(vm.wait_for(READY, BOOT_TIMEOUT) is not None, "the VM with three disks and a NIC boots", vm.tail())

    bus = dbus.bus.BusConnection(pbus.address)
    service, base = "org.orrery.VM.disknet", "/org/orrery/VM/disknet"

    def block(i):
        return dbus.Interface(bus.get_object(service, f"{base}/Block/{i}"), "org.orrery.Block1")

    def block_props(i):
        return dbus.Interface(bus.get_object(service, f"{base}/Block/{i}"), "org.freedesktop.DBus.Properties")

    # ---- Block1.Resize
    # Which vdX is which: the serial is the drive's id.
    m = vm.command("for d in /sys/block/vd*; do echo \"disk $(cat $d/serial) ${d##*/} $(cat $d/size)\"; done; echo disks-''done",
                   r"disks-done", 30)
    names = {}
    for line in vm.output[m.start() - 400 if m else 0:].splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == "disk":
            names[parts[1]] = parts[2]
    tap.check(set(names) >= {"rw", "ro", "snap"}, f"the guest lists the three disks by serial ({names})", vm.tail())
    rw = names.get("rw", "vda")

    changes = []
    bus.add_signal_receiver(lambda iface, changed, inval: changes.append(dict(changed)), "PropertiesChanged",
                            "org.freedesktop.DBus.Properties", service, f"{base}/Block/rw")
    tap.check(error_name(lambda: block("rw").Resize(dbus.UInt64(2 * MIB))) == "org.orrery.Error.InvalidArgument",
              "Resize to a smaller size: InvalidArgument")
    tap.check(error_name(lambda: block("rw").Resize(dbus.UInt64(8 * MIB + 100))) == "org.orrery.Error.InvalidArgument",
              "Resize to a size that is not a multiple of 512: InvalidArgument")
    tap.check(error_name(lambda: block("rw").Resize(dbus.UInt64(2**64 - 512))) is not None,
              "Resize to a size beyond what a file can be: an error")
    tap.check(error_name(lambda: block("ro").Resize(dbus.UInt64(8 * MIB))) == "org.orrery.Error.NotSupported",
              "Resize of a readonly=on drive: NotSupported")
    tap.check(error_name(lambda: block("snap").Resize(dbus.UInt64(8 * MIB))) == "org.orrery.Error.NotSupported",
              "Resize of a snapshot=on drive: NotSupported")
    tap.check(os.path.getsize(imgs["rw"]) == 4 * MIB and os.path.getsize(imgs["ro"]) == 4 * MIB
              and os.path.getsize(imgs["snap"]) == 4 * MIB, "refused resizes leave the image files alone")

    r = as_other_user(["call", service, f"{base}/Block/rw", "org.orrery.Block1", "Resize", "t", str(8 * MIB)])
    if r is not None:
        tap.check(r.returncode != 0 and "Access denied" in r.stderr and os.path.getsize(imgs["rw"]) == 4 * MIB,
                  "Resize by another user: AccessDenied, the image unchanged", r.stdout + r.stderr)

    block("rw").Resize(dbus.UInt64(8 * MIB))
    tap.check(os.path.getsize(imgs["rw"]) == 8 * MIB, "Resize grows the image file")
    tap.check(int(block_props("rw").Get("org.orrery.Block1", "SizeBytes")) == 8 * MIB, "SizeBytes follows")
    tap.check(spin(10, lambda: any(int(c.get("SizeBytes", 0)) == 8 * MIB for c in changes)),
              "PropertiesChanged announces the new SizeBytes", changes)
    want = str(8 * MIB // 512)
    deadline, seen = time.monotonic() + 60, None
    while time.monotonic() < deadline:
        m = vm.command(f"echo size-$(cat /sys/block/{rw}/size)-end", r"size-(\d+)-end", 30)
        seen = m.group(1) if m else None
        if seen == want:
            break
        time.sleep(0.5)
    tap.check(seen == want, f"the guest sees the new capacity in /sys/block/{rw}/size ({seen}, want {want})", vm.tail())
    m = vm.command(f"dd if=/dev/zero of=/dev/{rw} bs=512 seek={8 * MIB // 512 - 1} count=1 2>/dev/null; echo dd-''$?",
                   r"dd-(\d+)", 30)
    tap.check(m is not None and m.group(1) == "0", "the guest writes the last sector of the grown disk", vm.tail())

    # ---- Network1: Forwards, AddForward, RemoveForward
    nic = dbus.Interface(bus.get_object(service, f"{base}/Net/n0"), "org.orrery.Network1")
    nprops = dbus.Interface(bus.get_object(service, f"{base}/Net/n0"), "org.freedesktop.DBus.Properties")

    def forwards():
        return [tuple(x if isinstance(x, str) else int(x) for x in f)
                for f in nprops.Get("org.orrery.Network1", "Forwards")]

    tap.check(forwards() == [("tcp", "127.0.0.1", "10.0.2.15", fwd0, 80)],
              f"Forwards lists --net's hostfwd as (proto, host_addr, guest_addr, host_port, guest_port) ({forwards()})")
    vm.command("mkdir -p /www && echo hello-from-guest > /www/index.html && httpd -p 8080 -h /www && echo httpd-''up",
               r"httpd-up\r?\n", 30)
    port = free_port()
    tap.check(fetch(port) is None, "before AddForward nothing listens on the host port")
    nic.AddForward("tcp", "", dbus.UInt16(port), dbus.UInt16(8080))
    tap.check(("tcp", "127.0.0.1", "10.0.2.15", port, 8080) in forwards(), "AddForward shows in Forwards", forwards())
    # httpd and slirp's connection to the guest may need a moment.
    tap.check(poll(lambda: fetch(port), 60) == b"hello-from-guest\n",
              "AddForward at runtime: 127.0.0.1 reaches busybox httpd in the guest (restrict=on)")
    tap.check(error_name(lambda: nic.AddForward("tcp", "127.0.0.1", dbus.UInt16(port), dbus.UInt16(80)))
              == "org.orrery.Error.Busy", "AddForward of a port forwarded already: Busy")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    tap.check(error_name(lambda: nic.AddForward("tcp", "", dbus.UInt16(busy.getsockname()[1]), dbus.UInt16(80)))
              == "org.orrery.Error.Busy", "AddForward of a port another program holds: Busy")
    busy.close()
    tap.check(error_name(lambda: nic.AddForward("sctp", "", dbus.UInt16(free_port()), dbus.UInt16(80)))
              == "org.orrery.Error.InvalidArgument", "AddForward with an unknown protocol: InvalidArgument")
    tap.check(error_name(lambda: nic.AddForward("tcp", "localhost!", dbus.UInt16(free_port()), dbus.UInt16(80)))
              == "org.orrery.Error.InvalidArgument", "AddForward with a bad address: InvalidArgument")
    tap.check(error_name(lambda: nic.AddForward("tcp", "", dbus.UInt16(0), dbus.UInt16(80)))
              == "org.orrery.Error.InvalidArgument", "AddForward with host port 0: InvalidArgument")

    other = free_port()
    r = as_other_user(["call", service, f"{base}/Net/n0", "org.orrery.Network1", "AddForward", "ssqq", "tcp", "",
                       str(other), "8080"])
    if r is not None:
        tap.check(r.returncode != 0 and "Access denied" in r.stderr and fetch(other) is None,
                  "AddForward by another user: AccessDenied, nothing listens", r.stdout + r.stderr)
    r = as_other_user(["call", service, f"{base}/Net/n0", "org.orrery.Network1", "RemoveForward", "ssq", "tcp", "",
                       str(port)])
    if r is not None:
        tap.check(r.returncode != 0 and "Access denied" in r.stderr and fetch(port) == b"hello-from-guest\n",
                  "RemoveForward by another user: AccessDenied, the forward still serves", r.stdout + r.stderr)

    nic.RemoveForward("tcp", "", dbus.UInt16(port))
    tap.check(("tcp", "127.0.0.1", "10.0.2.15", port, 8080) not in forwards(), "RemoveForward drops it from Forwards")
    tap.check(fetch(port) is None, "after RemoveForward the host port refuses connections")
    tap.check(error_name(lambda: nic.RemoveForward("tcp", "", dbus.UInt16(port))) == "org.orrery.Error.InvalidArgument",
              "RemoveForward of an unknown forward: InvalidArgument")

    # UDP: a datagram sent to 127.0.0.1 reaches busybox nc listening in the guest.
    uport = free_port(socket.SOCK_DGRAM)
    nic.AddForward("udp", "127.0.0.1", dbus.UInt16(uport), dbus.UInt16(7777))
    tap.check(("udp", "127.0.0.1", "10.0.2.15", uport, 7777) in forwards(), "a UDP forward shows in Forwards", forwards())
    vm.command("nc -u -l -p 7777 & echo nc-''up", r"nc-up\r?\n", 30)
    with vm.lock:
        since = len(vm.output)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    got = None
    deadline = time.monotonic() + 60
    while got is None and time.monotonic() < deadline:
        sender.sendto(b"udp-hello-4242\n", ("127.0.0.1", uport))
        got = vm.wait_for(r"udp-hello-4242", 1, since=since)
    sender.close()
    tap.check(got is not None, "a UDP host forward reaches nc in the guest", vm.tail())
    nic.RemoveForward("udp", "127.0.0.1", dbus.UInt16(uport))
    tap.check(forwards() == [("tcp", "127.0.0.1", "10.0.2.15", fwd0, 80)], "RemoveForward of the UDP forward", forwards())

    vm.send("poweroff\n")
    tap.check(vm.wait_exit(60) == 0, "the guest powers off", vm.tail())
finally:
    if vm:
        vm.kill()
    pbus.stop()
    shutil.rmtree(tmpdir, ignore_errors=True)
tap.finish()

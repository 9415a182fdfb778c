#!/usr/bin/env python3
"""A VM with a snapshot=on drive neither saves, loads nor migrates: the
guest's writes live in an overlay that exists only in its process and is
in no stream. Save, Load and Migrate are refused at once with
org.orrery.Error.NotSupported naming the drive (no migration starts), the
guest runs on with its heartbeat, and a destination started with such a
drive exits 2 with one line before it waits for anything.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

import dbus

sys.path.insert(0, os.path.dirname(__file__))
from orrery_test import BOOT_TIMEOUT, ext4_image, ORRERY_VM, poll, PrivateBus, READY, Tap, Vm  # noqa: E402

NAME = "snapmig"
BEAT = re.compile(r"beat=(\d+)\r?\n")

tap = Tap()
tmp = tempfile.mkdtemp(prefix="orrery-test-migrate-snapshot-")
pbus = PrivateBus()
vm = None


def refused(call, what):
    try:
        call()
        tap.check(False, f"{what} is refused", "it was accepted")
    except dbus.exceptions.DBusException as e:
        tap.check(e.get_dbus_name() == "org.orrery.Error.NotSupported" and "drive 'data' is snapshot=on" in
                  e.get_dbus_message(), f"{what} is refused: NotSupported ({e.get_dbus_message()})",
                  e.get_dbus_name())


def beats():
    with vm.lock:
        return [int(m.group(1)) for m in BEAT.finditer(vm.output)]


try:
    disk = ext4_image(os.path.join(tmp, "disk.img"), 16 << 20)
    common = ["--display", "none", "--no-config", "--memory", "128M", "--drive", f"file={disk},id=data,snapshot=on"]
    vm = Vm(*common, name=NAME, bus=pbus.address)
    if not tap.check(vm.wait_for(READY, BOOT_TIMEOUT) is not None, "the guest boots", vm.tail()):
        tap.finish()
    vm.send("(i=0; while true; do i=$((i+1)); echo beat=$i; sleep 0.1; done) &\n")
    tap.check(vm.wait_for(r"beat=5\r?\n", 60) is not None, "the heartbeat runs", vm.tail())
    bus = dbus.bus.BusConnection(pbus.address)
    obj = bus.get_object(f"org.orrery.VM.{NAME}", f"/org/orrery/VM/{NAME}")
    machine = dbus.Interface(obj, "org.orrery.Machine1")
    props = dbus.Interface(obj, "org.freedesktop.DBus.Properties")

    with open(os.path.join(tmp, "vm.save"), "wb") as f:
        refused(lambda: machine.Save(dbus.types.UnixFd(f.fileno())), "Save")
    sock = os.path.join(tmp, "dest.sock")
    refused(lambda: machine.Migrate(f"unix:{sock}"), "Migrate")
    tap.check(str(props.Get("org.orrery.Machine1", "MigrationState")) == "none", "no migration started")
    with open(os.path.join(tmp, "other.save"), "wb") as f:
        f.write(b"ORRERYVM" + bytes(64))
    with open(os.path.join(tmp, "other.save"), "rb") as f:
        refused(lambda: machine.Load(dbus.types.UnixFd(f.fileno())), "Load")

    have = len(beats())
    tap.check(poll(lambda: len(beats()) >= have + 5, 60) and str(props.Get("org.orrery.Machine1", "State")) ==
              "running", "the VM runs on, its heartbeat too", vm.tail(300))

    r = subprocess.run([ORRERY_VM, "--name", "dest", "--no-bus", "--serial", "none"] + common +
                       ["--incoming", f"unix:{sock}"], stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    err = r.stderr.decode(errors="replace")
    lines = [line for line in err.splitlines() if line.startswith("orrery-vm:")]
    tap.check(r.returncode == 2 and len(lines) == 1 and "snapshot=on" in lines[0] and not os.path.exists(sock),
              f"a destination with a snapshot=on drive exits 2 with one line ({lines[0] if lines else 'none'})",
              f"exit {r.returncode}\n{err}")
finally:
    if vm:
        vm.kill()
    pbus.stop()
    shutil.rmtree(tmp, ignore_errors=True)

tap.finish()

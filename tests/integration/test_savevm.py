#!/usr/bin/env python3
"""Save and restore end to end: Machine1.Save and SaveAndQuit into a file
the test opened, then orrery-vm --restore in a new process. A counter on
the serial console continues from where it stopped, a file being written
on a disk completes intact, guest uptime does not jump by the time the VM
spent saved, and a damaged stream or another configuration is refused
(exit 2, one line). --on-stop save: SIGTERM saves, the next start
restores (tests/e2e has the same through systemd).
"""
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import dbus

sys.path.insert(0, os.path.dirname(__file__))
from orrery_test import (  # noqa: E402
    BOOT_TIMEOUT, ext4_image, numbered_lines, ORRERY_VM, PrivateBus, READY, Tap, Vm)

NAME = "savetest"
SERVICE = f"org.orrery.VM.{NAME}"
PATH = f"/org/orrery/VM/{NAME}"
LINES = 60
COUNT = re.compile(r"count=(\d+) up=(\d+\.\d+)\r?\n")

tap = Tap()
tmp = tempfile.mkdtemp(prefix="orrery-test-savevm-")
pbus = PrivateBus()
vms = []


def machine(bus):
    obj = bus.get_object(SERVICE, PATH)
    return dbus.Interface(obj, "org.orrery.Machine1"), dbus.Interface(obj, "org.freedesktop.DBus.Properties")


def counts(vm, since=0):
    with vm.lock:
        return [(int(m.group(1)), float(m.group(2))) for m in COUNT.finditer(vm.output, since)]


def refused(args, what, expect):
    """orrery-vm must exit 2 at once with one error line matching 'expect'."""
    r = subprocess.run([ORRERY_VM, "--name", "t", "--no-bus", "--serial", "none"] + args,
                       stdin=subprocess.PIPE, capture_output=True, timeout=120)
    err = r.stderr.decode(errors="replace")
    lines = [line for line in err.splitlines() if line.startswith("orrery-vm:")]
    ok = r.returncode == 2 and len(lines) == 1 and re.search(expect, lines[0]) is not None
    tap.check(ok, f"{what}: exit 2, one line ({lines[0] if lines else 'none'})", f"exit {r.returncode}\n{err}")



try:
    disk = ext4_image(os.path.join(tmp, "disk.img"), 32 << 20)
    common = ["--display", "none", "--no-config", "--memory", "256M", "--drive", f"file={disk},id=data"]

    vm = Vm(*common, name=NAME, bus=pbus.address)
    vms.append(vm)
    if not tap.check(vm.wait_for(READY, BOOT_TIMEOUT) is not None, "the guest boots", vm.tail()):
        tap.finish()
    bus = dbus.bus.BusConnection(pbus.address)
    m1, props = machine(bus)

    vm.command("mount -t ext4 /dev/vda /mnt && echo mounted-''ok", r"mounted-ok\r?\n", 60)
    # A file written a line at a time (each synced), and a counter with the guest's uptime.
    vm.send(f"(for j in $(seq 1 {LINES}); do echo \"line $j of the file being written\" >> /mnt/file; sync; "
            "echo wrote=$j; sleep 0.1; done; echo file-''done) &\n")
    vm.send("(i=0; while true; do i=$((i+1)); echo count=$i up=$(cut -d' ' -f1 /proc/uptime); sleep 0.2; done) &\n")
    tap.check(vm.wait_for(r"count=5 ", 60, since=0) is not None and vm.wait_for(r"wrote=5\r?\n", 60, since=0) is not None,
              "the counter runs and the file is being written", vm.tail())

    # Save while running: the VM goes on, and the file is a stream the loader knows.
    first = os.path.join(tmp, "running.save")
    with open(first, "wb") as f:
        m1.Save(dbus.types.UnixFd(f))
    state = str(props.Get("org.orrery.Machine1", "State"))
    n = len(counts(vm))
    tap.check(state == "running", "Save on a running VM leaves it running", state)
    tap.check(os.path.getsize(first) > 0 and open(first, "rb").read(8) == b"ORRERYVM", "Save wrote a stream",
              os.path.getsize(first))
    deadline = time.monotonic() + 30
    while len(counts(vm)) < n + 3 and time.monotonic() < deadline:
        vm.wait_for(r"count=\d+ ", 5)
    tap.check(len(counts(vm)) >= n + 3, "the counter goes on after Save", vm.tail())

    # SaveAndQuit: written whole, then the process exits 0.
    if not tap.check(vm.wait_for(r"wrote=(1\d|2\d)\r?\n", 60, since=0) is not None, "the file is half written", vm.tail()):
        tap.finish()
    saved = os.path.join(tmp, "vm.save")
    with open(saved, "wb") as f:
        m1.SaveAndQuit(dbus.types.UnixFd(f))
    saved_at = time.monotonic()
    tap.check(vm.wait_exit(60) == 0, "SaveAndQuit: the emulator exits 0", vm.tail())
    before = counts(vm)
    last_count, last_up = before[-1]
    with vm.lock:
        wrote = [int(x) for x in re.findall(r"wrote=(\d+)", vm.output)]
    tap.check(wrote and wrote[-1] < LINES, f"saved with the file half written ({wrote[-1] if wrote else 0} of {LINES} lines)")
    size = os.path.getsize(saved)
    tap.check(size < 256 << 20, f"the stream holds only touched RAM ({size >> 20} MiB for 256 MiB)")

    # Refusals: one line each, exit 2, nothing runs.
    damaged = os.path.join(tmp, "damaged.save")
    data = bytearray(open(saved, "rb").read())
    data[len(data) // 2] ^= 0x40
    open(damaged, "wb").write(data)
    refused(common + ["--restore", damaged], "a corrupted stream", r"corrupted")
    open(damaged, "wb").write(data[: len(data) // 3])
    refused(common + ["--restore", damaged], "a truncated stream", r"truncated")
    other = [a if a != "256M" else "384M" for a in common]
    refused(other + ["--restore", saved], "another memory size", r"memory size differs.*256 MiB.*384 MiB")
    refused(common[:-2] + ["--restore", saved], "a missing drive", r"drives differ")
    st = os.stat(disk)
    os.utime(disk, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    refused(common + ["--restore", saved], "an image modified since the save", r"changed since the save")
    os.utime(disk, ns=(st.st_atime_ns, st.st_mtime_ns))

    # Restore in a new process, paused first: it waits for Resume.
    gap = time.monotonic() - saved_at
    if gap < 3:
        time.sleep(3 - gap)     # a save-to-restore gap long enough to see in the guest's uptime
    gap = time.monotonic() - saved_at
    vm2 = Vm(*common, "--restore", saved, "--restore-paused", name=NAME, bus=pbus.address)
    vms.append(vm2)
    deadline = time.monotonic() + 60
    state = None
    while time.monotonic() < deadline and vm2.proc.poll() is None:
        try:
            m2, props2 = machine(bus)
            state = str(props2.Get("org.orrery.Machine1", "State"))
            break
        except dbus.exceptions.DBusException:
            time.sleep(0.1)
    tap.check(state == "paused", "--restore-paused: the restored VM is paused", vm2.tail())
    if state != "paused":
        tap.finish()
    m2.Resume()

    tap.check(vm2.wait_for(r"count=\d+ up=\d+\.\d+\r?\n", 60) is not None, "the restored guest runs", vm2.tail())
    after = counts(vm2)
    tap.check(READY not in vm2.output and after and last_count < after[0][0] <= last_count + 2,
              f"the counter continues from where it stopped ({last_count} -> {after[0][0] if after else None})", vm2.tail())
    step = after[0][1] - last_up if after else None
    tap.check(step is not None and 0 <= step < 2 and step < gap,
              f"guest uptime steps {step:.2f} s across a {gap:.1f} s save-to-restore gap" if step is not None
              else "guest uptime continues", f"{before[-3:]} {after[:3]}")

    tap.check(vm2.wait_for(r"file-done\r?\n", 120) is not None, "the file's writing completes after the restore",
              vm2.tail())
    m = vm2.command("sync; md5sum /mnt/file", r"\n([0-9a-f]{32})  /mnt/file", 60)
    want = hashlib.md5(numbered_lines(LINES).encode()).hexdigest()
    tap.check(m is not None and m.group(1) == want, "the file has every line once, in order", vm2.tail())
    vm2.command("umount /mnt; echo umounted-''ok", r"umounted-ok\r?\n", 60)
    vm2.send("poweroff\n")
    tap.check(vm2.wait_exit(60) == 0, "the restored guest powers off", vm2.tail())

    # on-stop=save without a service manager: SIGTERM saves to $XDG_STATE_HOME/orrery/NAME.save, the next start restores.
    env = dict(os.environ, XDG_STATE_HOME=os.path.join(tmp, "state"))
    env.pop("STATE_DIRECTORY", None)
    managed = os.path.join(tmp, "state", "orrery", f"{NAME}.save")
    vm3 = Vm(*common, "--on-stop", "save", name=NAME, env=env)
    vms.append(vm3)
    tap.check(vm3.wait_for(READY, BOOT_TIMEOUT) is not None, "a VM with --on-stop save boots", vm3.tail())
    vm3.command("echo kept-in-ram > /tmp/mark; echo marked-''ok", r"marked-ok\r?\n", 60)
    vm3.proc.terminate()
    tap.check(vm3.wait_exit(120) == 0 and os.path.exists(managed),
              "--on-stop save: SIGTERM saves the VM to $XDG_STATE_HOME/orrery and exits 0", vm3.tail())
    vm4 = Vm(*common, "--on-stop", "save", name=NAME, env=env)
    vms.append(vm4)
    m = vm4.command("cat /tmp/mark", r"\n(kept-in-ram)\r?\n", 60)
    tap.check(m is not None and READY not in vm4.output and not os.path.exists(managed),
              "the next start restores the same guest and deletes the save", vm4.tail())
    vm4.send("poweroff\n")
    tap.check(vm4.wait_exit(60) == 0, "the restored guest powers off (exit 0)", vm4.tail())
finally:
    for v in vms:
        v.kill()
    pbus.stop()
    shutil.rmtree(tmp, ignore_errors=True)

tap.finish()

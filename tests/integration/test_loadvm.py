#!/usr/bin/env python3
"""Loading a saved state into a running VM: Machine1.Load and
orrery-monitor's loadvm-file. The default guest prints a heartbeat every
100 ms; the VM is saved, the guest changes a file in its /tmp and counts
on, then the saved state is loaded: the file holds what it held at the
save and the heartbeat goes on from the saved value, in the same process.
A corrupted or truncated stream, another configuration, a disk image
modified since the save and an fd that is not a file are refused with one
line, and the VM runs on unchanged.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zlib

import dbus

sys.path.insert(0, os.path.dirname(__file__))
from orrery_test import BOOT_TIMEOUT, ext4_image, PrivateBus, READY, Tap, Vm, poll  # noqa: E402

NAME = "loadtest"
SERVICE = f"org.orrery.VM.{NAME}"
PATH = f"/org/orrery/VM/{NAME}"
MONITOR = os.environ["ORRERY_MONITOR"]
BEAT = re.compile(r"beat=(\d+)\r?\n")
TIMEOUT = 60

tap = Tap()
tmp = tempfile.mkdtemp(prefix="orrery-test-loadvm-")
pbus = PrivateBus()
vm = None


def beats(since=0):
    with vm.lock:
        return [int(m.group(1)) for m in BEAT.finditer(vm.output, since)]


def output_mark():
    with vm.lock:
        return len(vm.output)


def newest():
    b = beats()
    return b[-1] if b else 0


def beats_go_on(since, what):
    """At least five more beats after 'since', each one more than the one before (no jump back or ahead)."""
    ok = poll(lambda: len(beats(since)) >= 5, TIMEOUT)
    b = beats(since)
    tap.check(ok and b == list(range(b[0], b[0] + len(b))), what, f"{b[-20:]}\n{vm.tail(600)}")


def load(path):
    """Machine1.Load of the file at 'path'; None, or the D-Bus error (name, message)."""
    with open(path, "rb") as f:
        try:
            machine.Load(dbus.types.UnixFd(f.fileno()), timeout=120)
            return None
        except dbus.exceptions.DBusException as e:
            return e.get_dbus_name(), e.get_dbus_message()


def refused(path, what, expect):
    since = output_mark()
    e = load(path)
    tap.check(e is not None and e[0] == "org.orrery.Error.InvalidArgument" and re.search(expect, e[1]) is not None
              and "\n" not in e[1], f"{what} is refused with one line ({e[1] if e else 'loaded'})", e)
    tap.check(str(props.Get("org.orrery.Machine1", "State")) == "running", f"{what}: the VM is still running")
    beats_go_on(since, f"{what}: the heartbeat goes on unchanged")


def with_crc(data):
    """The stream with its trailing CRC-32 recomputed (savevm.h: 'ORRERYND' u32 CRC of every byte before)."""
    body = data[:-4]
    return body + (zlib.crc32(body[:-8]) & 0xFFFFFFFF).to_bytes(4, "little")


def monitor(*args):
    return subprocess.run([MONITOR, "--bus", pbus.address, NAME, "-c", " ".join(args)], capture_output=True,
                          text=True, timeout=180, stdin=subprocess.DEVNULL, env=dict(os.environ, TERM="dumb"))


try:
    # A disk the guest leaves alone: its image is part of the configuration a load is checked against.
    disk = ext4_image(os.path.join(tmp, "disk.img"), 16 << 20)
    vm = Vm("--display", "none", "--no-config", "--memory", "256M", "--drive", f"file={disk},id=data",
            name=NAME, bus=pbus.address)
    if not tap.check(vm.wait_for(READY, BOOT_TIMEOUT) is not None, "the guest boots", vm.tail()):
        tap.finish()
    bus = dbus.bus.BusConnection(pbus.address)
    obj = bus.get_object(SERVICE, PATH)
    machine = dbus.Interface(obj, "org.orrery.Machine1")
    props = dbus.Interface(obj, "org.freedesktop.DBus.Properties")

    vm.command("echo as-saved > /tmp/mark; echo mark-''written", r"mark-written\r?\n", TIMEOUT)
    vm.send("(i=0; while true; do i=$((i+1)); echo beat=$i; sleep 0.1; done) &\n")
    tap.check(vm.wait_for(r"beat=5\r?\n", TIMEOUT) is not None, "the heartbeat runs", vm.tail())

    saved = os.path.join(tmp, "vm.save")
    before = newest()
    with open(saved, "wb") as f:
        machine.Save(dbus.types.UnixFd(f.fileno()), timeout=120)
    # The guest runs on after the save; a beat printed after it bounds the saved count from above.
    after = newest()
    poll(lambda: newest() > after, TIMEOUT)
    after = newest()
    tap.check(os.path.getsize(saved) > 0 and str(props.Get("org.orrery.Machine1", "State")) == "running",
              f"Save wrote the state ({os.path.getsize(saved) >> 20} MiB) and the VM runs on")

    vm.command("echo changed > /tmp/mark; echo mark-''changed", r"mark-changed\r?\n", TIMEOUT)
    tap.check(poll(lambda: newest() >= after + 10, TIMEOUT), "the heartbeat counts on past the save")

    # Refusals first, each leaving the VM running as it was.
    data = open(saved, "rb").read()
    damaged = bytearray(data)
    damaged[len(damaged) // 2] ^= 0x40
    with open(os.path.join(tmp, "damaged.save"), "wb") as f:
        f.write(damaged)
    refused(os.path.join(tmp, "damaged.save"), "a corrupted stream", r"corrupted")
    # Another memory size in the header (8 magic, 4 version, 4 flags, 8 length, then the memory size),
    # with a checksum that matches: the configuration check itself must refuse it.
    other = bytearray(data)
    other[24:32] = (128 << 20).to_bytes(8, "little")
    with open(os.path.join(tmp, "other.save"), "wb") as f:
        f.write(with_crc(bytes(other)))
    refused(os.path.join(tmp, "other.save"), "a state saved with another memory size", r"memory size differs")
    with open(os.path.join(tmp, "truncated.save"), "wb") as f:
        f.write(data[: len(data) // 2])
    refused(os.path.join(tmp, "truncated.save"), "a truncated stream", r"truncated")
    # The image modified since the save (its modification time): old RAM over a newer disk is refused.
    st = os.stat(disk)
    os.utime(disk, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    refused(saved, "a state whose disk image changed since", r"drive 'data': image .* changed since the save")
    os.utime(disk, ns=(st.st_atime_ns, st.st_mtime_ns))
    rd, wr = os.pipe()
    try:
        e = machine.Load(dbus.types.UnixFd(rd), timeout=60)
    except dbus.exceptions.DBusException as ex:
        e = (ex.get_dbus_name(), ex.get_dbus_message())
    os.close(rd)
    os.close(wr)
    tap.check(e and e[0] == "org.orrery.Error.InvalidArgument" and "regular file" in e[1],
              f"a pipe is refused, not waited on ({e[1] if e else 'loaded'})", e)

    # The load itself.
    last = newest()
    since = output_mark()
    e = load(saved)
    tap.check(e is None, "Machine1.Load takes the saved state", e)
    # The guest prints beats up to 'last' or a little past it, then starts again from the saved count.
    ok = poll(lambda: any(b < last - 5 for b in beats(since)) and len(beats(since)) >= 10, TIMEOUT)
    b = beats(since)
    # Beats up to 'last' may still be on their way when Load returns: what follows the drop resumed.
    back = next((i for i in range(1, len(b)) if b[i] < b[i - 1]), 0)
    resumed = b[back:]
    tap.check(ok and resumed and before <= resumed[0] <= after + 1 and
              resumed == list(range(resumed[0], resumed[0] + len(resumed))),
              f"the heartbeat goes on from the saved value (saved between {before} and {after}, "
              f"resumed at {resumed[0] if resumed else None}; it had reached {last})", f"{b[-40:]}\n{vm.tail(600)}")
    m = vm.command("cat /tmp/mark; echo cat-''done", r"(\S+)\r?\ncat-done", TIMEOUT)
    tap.check(m is not None and m.group(1) == "as-saved", "the guest's /tmp holds the file as it was at the save",
              vm.tail(600))
    tap.check(str(props.Get("org.orrery.Machine1", "State")) == "running" and vm.proc.poll() is None,
              "the same process runs the guest on")

    # The monitor: loadvm-file opens the file itself and passes it.
    vm.command("echo changed-again > /tmp/mark; echo mark-''changed", r"mark-changed\r?\n", TIMEOUT)
    r = monitor("loadvm-file", saved)
    tap.check(r.returncode == 0 and "loaded" in r.stdout, "orrery-monitor's loadvm-file loads the state",
              r.stdout + r.stderr)
    m = vm.command("cat /tmp/mark; echo cat-''done", r"(\S+)\r?\ncat-done", TIMEOUT)
    tap.check(m is not None and m.group(1) == "as-saved", "and the file is back as saved", vm.tail(600))
    r = monitor("loadvm-file", os.path.join(tmp, "damaged.save"))
    tap.check(r.returncode == 1 and "corrupted" in r.stderr and len(r.stderr.strip().splitlines()) == 1,
              "loadvm-file of a corrupted file fails (exit 1) with one line", r.stdout + r.stderr)
    r = monitor("loadvm-file", os.path.join(tmp, "missing.save"))
    tap.check(r.returncode == 1 and "cannot open" in r.stderr, "loadvm-file of a missing file says so", r.stderr)
    beats_go_on(output_mark(), "after all that the heartbeat goes on")
finally:
    if vm:
        vm.kill()
    pbus.stop()
    shutil.rmtree(tmp, ignore_errors=True)

tap.finish()

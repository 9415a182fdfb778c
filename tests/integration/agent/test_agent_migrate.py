#!/usr/bin/env python3
"""orrery-agent while its VM migrates: with Machine1.MigrationState "active"
(a migration whose destination takes the stream slowly), new calls are
answered org.orrery.Error.Busy at once instead of queueing for a guest agent
that is about to move; once the migration ends (here: MigrateCancel) the
bridge serves again.

Then a real move with a copy in flight: a CopyToGuest fed from a pipe that
never ends is running when Machine1.Migrate starts; when the VM moves to
its new process the copy fails with org.orrery.Error.Unavailable, the
guest's heartbeat (every 100 ms) goes on across the move with no beat lost,
and the bridge serves the VM in its new process."""
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time

import dbus

sys.path.insert(0, os.path.dirname(__file__))
from bridge_test import ActivatingBus, Client, Tap, spin  # noqa: E402
from orrery_test import BOOT_TIMEOUT, READY, Vm  # noqa: E402

NAME = "agentmig"
COMMON = ["--display", "none", "--no-config", "--memory", "256M"]
BEAT = re.compile(r"beat=(\d+)\r?\n")

tap = Tap()
tmp = tempfile.mkdtemp(prefix="orrery-agent-mig-")
pbus = ActivatingBus(tmp, "--timeout", "60")
client = Client(pbus.address)
vm = None


def wait_until(cond, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


class SlowDestination:
    """Accepts one migration stream and reads 1 MiB of it, then nothing: the migration stays active."""

    def __init__(self, path):
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(1)
        self.conn = None
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        self.conn, _ = self.listener.accept()
        got = 0
        while got < 1 << 20:
            chunk = self.conn.recv(65536)
            if not chunk:
                break
            got += len(chunk)


class EndlessSource:
    """The write end of a pipe, fed with zeros until the reader goes away: a copy that never ends by itself."""

    def __init__(self):
        self.read_fd, self.write_fd = os.pipe()
        self.written = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        chunk = bytes(65536)
        try:
            while True:
                self.written += os.write(self.write_fd, chunk)
        except OSError:
            pass
        os.close(self.write_fd)


def beats(*vms):
    text = ""
    for v in vms:
        with v.lock:
            text += v.output
    return [int(m.group(1)) for m in BEAT.finditer(text)]


vms = []
try:
    vm = Vm(*COMMON, name=NAME, bus=pbus.address)
    vms.append(vm)
    if not tap.check(vm.wait_for(READY, BOOT_TIMEOUT) is not None, "the guest boots", vm.tail()):
        tap.finish()
    r, e = client.call(NAME, "Ping", timeout=120)
    tap.check(e is None, "the guest agent answers Ping through orrery-agent", e)

    bus = dbus.bus.BusConnection(pbus.address)
    obj = bus.get_object(f"org.orrery.VM.{NAME}", f"/org/orrery/VM/{NAME}")
    machine = dbus.Interface(obj, "org.orrery.Machine1")
    props = dbus.Interface(obj, "org.freedesktop.DBus.Properties")
    sock = os.path.join(tmp, "slow.sock")
    # Kept referenced: when its reader thread ends, the object (and so the connection) would be freed.
    slow = SlowDestination(sock)
    machine.Migrate(f"unix:{sock}")
    tap.check(wait_until(lambda: str(props.Get("org.orrery.Machine1", "MigrationState")) == "active", 30),
              "a migration is active")
    # The bridge learns it from PropertiesChanged: give it a moment, bounded.
    busy = wait_until(lambda: (client.call(NAME, "Ping", timeout=30)[1] or ("",))[0] == "org.orrery.Error.Busy", 30)
    r, e = client.call(NAME, "GetHostName", timeout=30)
    tap.check(busy and e is not None and e[0] == "org.orrery.Error.Busy" and "migrating" in e[1],
              f"while it is active, calls are answered Busy ({e[1] if e else 'no error'})", e)

    machine.MigrateCancel()
    tap.check(wait_until(lambda: str(props.Get("org.orrery.Machine1", "MigrationState")) == "failed", 30),
              "MigrateCancel ends it")
    served = wait_until(lambda: client.call(NAME, "Ping", timeout=30)[1] is None, 30)
    tap.check(served, "afterwards the bridge serves again")

    # A real move, with a copy in flight when it starts.
    vm.send("(i=0; while true; do i=$((i+1)); echo beat=$i; sleep 0.1; done) &\n")
    tap.check(vm.wait_for(r"beat=5\r?\n", 60) is not None, "the heartbeat runs", vm.tail())
    source = EndlessSource()
    copy = client.call_async(NAME, "CopyToGuest", dbus.types.UnixFd(source.read_fd), "/dev/null", timeout=300)
    os.close(source.read_fd)
    flowing = spin(60, lambda: source.written > 4 << 20 or copy)
    tap.check(flowing and not copy, f"a CopyToGuest from an endless pipe is in flight ({source.written >> 20} MiB)",
              copy)
    sock = os.path.join(tmp, "dest.sock")
    dst = Vm(*COMMON, "--incoming", f"unix:{sock}", name=NAME, bus=pbus.address)
    vms.append(dst)
    tap.check(wait_until(lambda: "waits for a migration" in dst.stderr, 60), "the destination waits", dst.tail())
    spin(0.1)  # deliver any answer that already came: 'copy' must be empty because the copy runs, not unread
    tap.check(not copy, "the copy is still in flight when the migration starts", copy)
    machine.Migrate(f"unix:{sock}")
    tap.check(vm.wait_exit(120) == 0, "the VM moved: the source exits 0", vm.tail())
    spin(60, lambda: copy)
    e = copy.get("error")
    tap.check(e is not None and e[0] == "org.orrery.Error.Unavailable",
              f"the copy in flight fails with Unavailable ({e[1] if e else copy})", copy)
    served = wait_until(lambda: client.call(NAME, "Ping", timeout=30)[1] is None, 60)
    r, e = client.call(NAME, "GetHostName", timeout=30)
    tap.check(served and e is None, "the bridge serves the VM in its new process", e)
    have = len(beats(dst))
    wait_until(lambda: len(beats(dst)) >= have + 10, 60)
    seq = beats(vm, dst)
    tap.check(len(beats(dst)) >= have + 10 and seq == list(range(seq[0], seq[0] + len(seq))),
              f"the heartbeat goes on across the move, no beat lost or repeated ({len(seq)} beats)", seq[-40:])
finally:
    for v in vms:
        v.kill()
    pbus.stop()
    shutil.rmtree(tmp, ignore_errors=True)

tap.finish()

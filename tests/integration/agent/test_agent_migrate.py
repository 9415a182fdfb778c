#!/usr/bin/env python3
"""orrery-agent while its VM migrates: with Machine1.MigrationState "active"
(a migration whose destination takes the stream slowly), new calls are
answered org.orrery.Error.Busy at once instead of queueing for a guest agent
that is about to move; once the migration ends (here: MigrateCancel) the
bridge serves again."""
import os
import shutil
import socket
import sys
import tempfile
import threading
import time

import dbus

sys.path.insert(0, os.path.dirname(__file__))
from bridge_test import ActivatingBus, Client, Tap  # noqa: E402
from orrery_test import BOOT_TIMEOUT, READY, Vm  # noqa: E402

NAME = "agentmig"

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


try:
    vm = Vm("--display", "none", "--no-config", "--memory", "256M", name=NAME, bus=pbus.address)
    if not tap.check(vm.wait_for(READY, BOOT_TIMEOUT) is not None, "the guest boots", vm.tail()):
        tap.finish()
    r, e = client.call(NAME, "Ping", timeout=120)
    tap.check(e is None, "the guest agent answers Ping through orrery-agent", e)

    bus = dbus.bus.BusConnection(pbus.address)
    obj = bus.get_object(f"org.orrery.VM.{NAME}", f"/org/orrery/VM/{NAME}")
    machine = dbus.Interface(obj, "org.orrery.Machine1")
    props = dbus.Interface(obj, "org.freedesktop.DBus.Properties")
    sock = os.path.join(tmp, "slow.sock")
    SlowDestination(sock)
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
finally:
    if vm:
        vm.kill()
    pbus.stop()
    shutil.rmtree(tmp, ignore_errors=True)

tap.finish()

#!/usr/bin/env python3
"""Bus loss: orrery-vm reconnects, re-registers, and never claims to run on the bus meanwhile.

One VM on a private dbus-daemon listening on a unix socket path. The
daemon is killed: the VM logs the loss, tells the service manager (a
NOTIFY_SOCKET of the test's own) that it is reconnecting and not
"running", and the guest keeps running (its serial console answers). A
new daemon on the same path: the VM owns its name again, answers calls,
and reports "running" again. A SIGTERM at the end is logged with the
sender's pid.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import dbus

sys.path.insert(0, os.path.dirname(__file__))
from orrery_test import BOOT_TIMEOUT, READY, Tap, Vm  # noqa: E402

NAME = "reconnect"
SERVICE = f"org.orrery.VM.{NAME}"
PATH = f"/org/orrery/VM/{NAME}"
TIMEOUT = 60


def start_daemon(address):
    proc = subprocess.Popen(["dbus-daemon", "--session", "--nofork", f"--address={address}", "--print-address=1"],
                            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    if not proc.stdout.readline():
        raise RuntimeError("dbus-daemon did not start")
    return proc


def wait(cond, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


tap = Tap()
tmp = tempfile.mkdtemp(prefix="orrery-reconnect-")
address = f"unix:path={tmp}/bus"
notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
notify.bind(f"{tmp}/notify")
statuses = []
lock = threading.Lock()


def read_notify():
    while True:
        data = notify.recv(4096).decode(errors="replace")
        with lock:
            statuses.extend(line[len("STATUS="):] for line in data.splitlines() if line.startswith("STATUS="))


threading.Thread(target=read_notify, daemon=True).start()


def log_has(pattern):
    with vm.lock:
        return re.search(pattern, vm.stderr) is not None


daemon = start_daemon(address)
vm = Vm("--display", "none", name=NAME, bus=address, env=dict(os.environ, NOTIFY_SOCKET=f"{tmp}/notify"))
try:
    tap.check(vm.wait_for(READY, BOOT_TIMEOUT) is not None, "the guest boots", vm.tail())
    bus = dbus.bus.BusConnection(address)
    tap.check(bus.name_has_owner(SERVICE), f"the VM owns {SERVICE}")
    bus.close()

    daemon.kill()
    daemon.wait()
    tap.check(wait(lambda: log_has(r"lost its bus connection")), "the VM notices the bus is gone", vm.tail())
    tap.check(vm.command("echo alive-$((6*7))", "alive-42", TIMEOUT) is not None,
              "the guest keeps running while the bus is gone", vm.tail())
    tap.check(wait(lambda: any("reconnecting" in s for s in statuses)),
              "STATUS= says it is reconnecting", f"{statuses}")
    with lock:
        lost_at = max(i for i, s in enumerate(statuses) if "reconnecting" in s)
        after = statuses[lost_at + 1:]
    tap.check(not any("running" in s for s in after), "no STATUS= says running while the bus is gone", f"{statuses}")

    daemon = start_daemon(address)
    bus = dbus.bus.BusConnection(address)
    tap.check(wait(lambda: bus.name_has_owner(SERVICE)), f"with a new bus daemon on the same path, {SERVICE} is back",
              vm.tail())
    machine = dbus.Interface(bus.get_object(SERVICE, PATH), "org.orrery.Machine1")
    props = dbus.Interface(bus.get_object(SERVICE, PATH), "org.freedesktop.DBus.Properties")
    machine.Pause()
    paused = str(props.Get("org.orrery.Machine1", "State"))
    machine.Resume()
    tap.check(paused == "paused" and str(props.Get("org.orrery.Machine1", "State")) == "running",
              "Pause and Resume work on the new connection")
    tap.check(wait(lambda: any(s.endswith("running") for s in statuses[lost_at + 1:])),
              "STATUS= says running again", f"{statuses}")
    tap.check(vm.command("echo again-$((6*7))", "again-42", TIMEOUT) is not None,
              "the guest still answers on its serial console", vm.tail())

    vm.proc.send_signal(signal.SIGTERM)
    tap.check(wait(lambda: log_has(rf"requested by signal \w+ from pid {os.getpid()}\b")),
              "a SIGTERM is logged with the sender's pid", vm.tail())
    vm.wait_exit(TIMEOUT)
finally:
    vm.kill()
    daemon.kill()
    daemon.wait()
    shutil.rmtree(tmp, ignore_errors=True)
tap.finish()

#!/usr/bin/env python3
"""VM names with '-': on the bus under the documented names, and found by a client.

orrery-vm --name my-vm owns org.orrery.VM.my-vm and serves
/org/orrery/VM/my_2dvm (sd_bus_path_encode); orrery-monitor, through the
client library, lists it, reads its state and pauses and resumes it.
Names outside the rule are refused with a message that says what is
allowed.
"""
import os
import subprocess
import sys
import time

import dbus

sys.path.insert(0, os.path.dirname(__file__))
from orrery_test import ORRERY_VM, PrivateBus, Tap, Vm  # noqa: E402

NAME = "my-vm"
SERVICE = "org.orrery.VM.my-vm"
PATH = "/org/orrery/VM/my_2dvm"
MONITOR = os.environ["ORRERY_MONITOR"]
TIMEOUT = 60

tap = Tap()
pbus = PrivateBus()
vm = Vm("--display", "none", name=NAME, bus=pbus.address)


def monitor(*args):
    return subprocess.run([MONITOR, "--bus", pbus.address] + list(args), capture_output=True, text=True,
                          timeout=TIMEOUT)


try:
    bus = dbus.bus.BusConnection(pbus.address)
    deadline = time.monotonic() + TIMEOUT
    while not bus.name_has_owner(SERVICE) and time.monotonic() < deadline and vm.proc.poll() is None:
        time.sleep(0.1)
    tap.check(bus.name_has_owner(SERVICE), f"--name {NAME} owns {SERVICE}", vm.tail())
    props = dbus.Interface(bus.get_object(SERVICE, PATH), "org.freedesktop.DBus.Properties")
    tap.check(str(props.Get("org.orrery.Machine1", "Name")) == NAME, f"{PATH} serves Machine1 with Name {NAME}")

    r = monitor("--list")
    tap.check(r.returncode == 0 and NAME in r.stdout.split(), "orrery-monitor --list lists my-vm", r.stdout + r.stderr)
    r = monitor(NAME, "-c", "info status")
    tap.check(r.returncode == 0 and "running" in r.stdout, "orrery-monitor my-vm reads its state", r.stdout + r.stderr)
    r = monitor(NAME, "-c", "stop", "-c", "info status")
    tap.check(r.returncode == 0 and "paused" in r.stdout and str(props.Get("org.orrery.Machine1", "State")) == "paused",
              "orrery-monitor my-vm pauses it", r.stdout + r.stderr)
    r = monitor(NAME, "-c", "cont")
    tap.check(r.returncode == 0 and str(props.Get("org.orrery.Machine1", "State")) == "running",
              "orrery-monitor my-vm resumes it", r.stdout + r.stderr)

    for bad in ("-vm", "9lives", "a.b", "a/b", "x" * 65):
        r = subprocess.run([ORRERY_VM, "--name", bad, "--no-bus"], capture_output=True, text=True, timeout=TIMEOUT)
        tap.check(r.returncode == 2 and "characters of A-Z, a-z, 0-9, '_' and '-'" in r.stderr,
                  f"--name {bad[:12]!r} is refused, saying what is allowed", r.stderr)
finally:
    vm.kill()
    pbus.stop()
tap.finish()

"""Shared pieces of the orrery-agent tests: the bridge on a private bus and a D-Bus client of it."""
import os
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

import dbus
import dbus.mainloop.glib
from gi.repository import GLib

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from orrery_test import PrivateBus, Tap, interface_members  # noqa: E402  (PrivateBus, Tap: the tests import them from here)

__all__ = ["ActivatingBus", "Bridge", "Client", "IFACE", "NAME", "ORRERY_AGENT", "PrivateBus", "Tap", "XML",
           "contract_matches", "spin", "wait_for"]

dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)

ORRERY_AGENT = os.environ.get("ORRERY_AGENT", os.path.join(os.path.dirname(__file__), "..", "..", "..", "build",
                                                            "services", "agent", "orrery-agent"))
XML = os.path.join(os.path.dirname(__file__), "..", "..", "..", "dbus", "org.orrery.Agent1.xml")
NAME = "org.orrery.Agent"
IFACE = "org.orrery.Agent1"


def spin(seconds, until=lambda: False, step=0.01):
    """Runs the GLib loop until until() holds or seconds pass (an upper bound that only catches hangs)."""
    ctx = GLib.MainContext.default()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not until():
        while ctx.iteration(False):
            pass
        time.sleep(step)
    return until()


class Bridge:
    """orrery-agent on the given bus, its stderr collected."""

    def __init__(self, address, *args):
        self.proc = subprocess.Popen([ORRERY_AGENT, "--bus", address, "--verbose"] + list(args),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.log = ""
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stderr:
            self.log += line.decode(errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def healthy(self):
        """Running, and no sanitizer report in its output (in a build with -Db_sanitize)."""
        return self.alive() and "runtime error" not in self.log and "Sanitizer" not in self.log

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Client:
    """A D-Bus connection to the private bus, with helpers for org.orrery.Agent1."""

    def __init__(self, address):
        self.bus = dbus.bus.BusConnection(address)

    def has_name(self):
        return self.bus.name_has_owner(NAME)

    def agent(self, vm):
        return dbus.Interface(self.bus.get_object(NAME, f"/org/orrery/Agent/{vm}", introspect=False), IFACE)

    def props(self, vm):
        return dbus.Interface(self.bus.get_object(NAME, f"/org/orrery/Agent/{vm}", introspect=False),
                              "org.freedesktop.DBus.Properties")

    def connected(self, vm):
        try:
            return bool(self.props(vm).Get(IFACE, "Connected"))
        except dbus.DBusException:
            return False

    def managed(self):
        om = dbus.Interface(self.bus.get_object(NAME, "/org/orrery/Agent", introspect=False),
                            "org.freedesktop.DBus.ObjectManager")
        return om.GetManagedObjects()

    def call(self, vm, method, *args, timeout=60):
        """Returns (result, None) or (None, (error name, message))."""
        try:
            return getattr(self.agent(vm), method)(*args, timeout=timeout), None
        except dbus.DBusException as e:
            return None, (e.get_dbus_name(), e.get_dbus_message())

    def call_async(self, vm, method, *args, timeout=60):
        """Starts a call; returns a dict that gets 'result' or 'error' when it ends (spin to let it)."""
        out = {}
        getattr(self.agent(vm), method)(*args, timeout=timeout,
                                        reply_handler=lambda *r: out.update(result=r, t=time.monotonic()),
                                        error_handler=lambda e: out.update(error=(e.get_dbus_name(),
                                                                                  e.get_dbus_message()),
                                                                           t=time.monotonic()))
        return out

    def introspect(self, vm):
        o = self.bus.get_object(NAME, f"/org/orrery/Agent/{vm}", introspect=False)
        return dbus.Interface(o, "org.freedesktop.DBus.Introspectable").Introspect()


def contract_matches(live_xml):
    """Whether the live introspection of Agent1 equals dbus/org.orrery.Agent1.xml, member by member."""
    want = interface_members(ET.parse(XML).getroot().find(f"interface[@name='{IFACE}']"))
    got_el = ET.fromstring(live_xml).find(f"interface[@name='{IFACE}']")
    got = interface_members(got_el) if got_el is not None else set()
    return want == got, f"missing: {sorted(want - got)}\nextra: {sorted(got - want)}"


class ActivatingBus:
    """A private dbus-daemon whose servicedir activates the build tree's orrery-agent."""

    def __init__(self, tmp, *agent_args):
        services = os.path.join(tmp, "services")
        os.mkdir(services)
        with open(os.path.join(services, "org.orrery.Agent.service"), "w") as f:
            f.write("[D-BUS Service]\nName=org.orrery.Agent\n"
                    f"Exec={' '.join([os.path.abspath(ORRERY_AGENT)] + list(agent_args))}\n")
        conf = os.path.join(tmp, "bus.conf")
        with open(conf, "w") as f:
            f.write(f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={tmp}</listen>
  <servicedir>{services}</servicedir>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
""")
        self.log = open(os.path.join(tmp, "bus.log"), "w")
        self.proc = subprocess.Popen(["dbus-daemon", "--config-file", conf, "--nofork", "--print-address=1"],
                                     stdout=subprocess.PIPE, stderr=self.log, stdin=subprocess.DEVNULL)
        self.address = self.proc.stdout.readline().decode().strip()

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def wait_for(what, seconds, fn):
    return spin(seconds, fn)

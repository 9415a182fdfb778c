#!/usr/bin/env python3
"""orrery-fake-vm against the contract: its introspection, interface by interface, equals dbus/*.xml.

Several client tests run only against the fake VM, so a method, argument
or property the fake serves differently from orrery-vm would let a client
pass here and fail on a real VM. The fake is started on a private
dbus-daemon; every org.orrery.* interface it serves on the VM's objects
(Machine1, Keyboard1, Mouse1 on the VM, Console1, both Chardev1 ports) is
introspected with busctl and compared with its dbus/ file: methods with
typed, directed arguments, signals, properties with type and access.
Interfaces of the contract the fake does not serve are listed, not failed:
the fake says which it implements. Its test-only org.orrery.FakeVM1 is not
part of the contract.
"""
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from orrery_test import PrivateBus, Tap, interface_members  # noqa: E402

XML_DIR = os.path.join(HERE, "..", "..", "dbus")
FAKE_VM = os.environ["ORRERY_FAKE_VM"]
NAME = "contract"
SERVICE = f"org.orrery.VM.{NAME}"
PATH = f"/org/orrery/VM/{NAME}"
OBJECTS = [PATH, f"{PATH}/Console/0", f"{PATH}/Chardev/serial0", f"{PATH}/Chardev/guest_agent"]
# The fake serves the contract's interfaces on these objects (its header comment).
SERVED = {"org.orrery.Machine1", "org.orrery.Keyboard1", "org.orrery.Mouse1", "org.orrery.Console1",
          "org.orrery.Chardev1"}


def introspect(address, path):
    r = subprocess.run(["busctl", "--address", address, "introspect", "--xml-interface", SERVICE, path],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        return None
    return ET.fromstring(r.stdout)


def main():
    tap = Tap()
    specs = {}
    for f in sorted(os.listdir(XML_DIR)):
        if f.startswith("org.orrery.") and f.endswith(".xml"):
            iface = ET.parse(os.path.join(XML_DIR, f)).getroot().find("interface")
            specs[iface.get("name")] = interface_members(iface)
    bus = PrivateBus()
    rfd, wfd = os.pipe()
    fake = subprocess.Popen([FAKE_VM, f"--name={NAME}", f"--address={bus.address}", f"--ready-fd={wfd}"],
                            pass_fds=[wfd])
    os.close(wfd)
    try:
        # The fake writes one byte once it owns its name (EOF: it died first).
        tap.check(os.read(rfd, 1) == b"R", "orrery-fake-vm owns its name on a private bus")
        seen = {}
        for path in OBJECTS:
            node = introspect(bus.address, path)
            tap.check(node is not None, f"busctl introspects {path}")
            if node is None:
                continue
            for iface in node.findall("interface"):
                name = iface.get("name")
                if name.startswith("org.orrery.") and name != "org.orrery.FakeVM1":
                    seen.setdefault(name, interface_members(iface))
        tap.check(set(seen) == SERVED, f"the fake serves {', '.join(sorted(SERVED))}", sorted(seen))
        for name in sorted(seen):
            want = specs.get(name)
            got = seen[name]
            tap.check(want is not None and got == want, f"{name}: the fake's introspection equals dbus/{name}.xml",
                      None if want is None else
                      f"only in the fake: {sorted(got - want)}\nonly in the contract: {sorted(want - got)}")
        unserved = sorted(set(specs) - set(seen))
        print(f"# contract interfaces the fake does not serve: {', '.join(unserved) or 'none'}")
    finally:
        fake.terminate()
        fake.wait()
        bus.stop()
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The VM on a (private) session bus: the org.orrery contract as a client sees it."""
import mmap
import os
import re
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import dbus
import dbus.mainloop.glib
from gi.repository import GLib

sys.path.insert(0, os.path.dirname(__file__))
from orrery_test import BOOT_TIMEOUT, ORRERY_VM, PrivateBus, READY, Tap, Vm, interface_members  # noqa: E402

FB_CHECK = os.environ["ORRERY_FB_CHECK"]
XML_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "dbus")
NAME = "bustest"
SERVICE = f"org.orrery.VM.{NAME}"
PATH = f"/org/orrery/VM/{NAME}"
WIDTH, HEIGHT = 800, 600

dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
tap = Tap()
pbus = PrivateBus()
vm = Vm("--display", f"{WIDTH}x{HEIGHT}", name=NAME, bus=pbus.address)


def spin(seconds, until=lambda: False):
    ctx = GLib.MainContext.default()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not until():
        ctx.iteration(False)
        time.sleep(0.01)
    return until()


def wait_stderr(pattern, timeout=30):
    """Waits for a regex in orrery-vm's log (stderr); returns the match or None."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    with vm.lock:
        while True:
            m = rx.search(vm.stderr)
            if m or time.monotonic() > deadline:
                return m
            vm.lock.wait(0.5)


def uptime():
    m = vm.command("cat /proc/uptime", r"\n(\d+\.\d+) \d+\.\d+\r?\n", 30)
    return float(m.group(1)) if m else None


try:
    if not tap.check(vm.wait_for(READY, BOOT_TIMEOUT) is not None, "the guest reaches ready with the bus enabled", vm.tail()):
        tap.finish()
    bus = dbus.bus.BusConnection(pbus.address)

    # The live introspection matches the XML in dbus/, member for member.
    objects = {"org.orrery.Machine1": PATH, "org.orrery.Keyboard1": PATH, "org.orrery.Mouse1": PATH,
               "org.orrery.Console1": f"{PATH}/Console/0", "org.orrery.Chardev1 (agent)": f"{PATH}/Chardev/guest_agent",
               "org.orrery.Chardev1": f"{PATH}/Chardev/serial0"}
    for label, path in sorted(objects.items()):
        iface = label.split()[0]
        live = ET.fromstring(str(bus.get_object(SERVICE, path).Introspect(dbus_interface="org.freedesktop.DBus.Introspectable")))
        live_iface = [i for i in live.findall("interface") if i.get("name") == iface]
        spec = ET.parse(os.path.join(XML_DIR, f"{iface}.xml")).getroot().find("interface")
        want = interface_members(spec)
        got = interface_members(live_iface[0]) if len(live_iface) == 1 else None
        ok = got == want
        detail = None if ok else f"live-only: {got - want if got is not None else 'missing'}\n" \
                                 f"xml-only: {want - got if got is not None else ''}"
        tap.check(ok, f"{iface} on {path} matches dbus/{iface}.xml", detail)

    # orrery-vm --bus-introspect prints the same interfaces, without a bus.
    r = subprocess.run([ORRERY_VM, "--bus-introspect"], capture_output=True, timeout=60)
    try:
        printed = {i.get("name"): interface_members(i) for i in ET.fromstring(r.stdout).findall("interface")}
    except ET.ParseError as e:
        printed = {"unparsable": str(e)}
    specs = {os.path.basename(f)[:-4]: interface_members(ET.parse(os.path.join(XML_DIR, f)).getroot().find("interface"))
             for f in os.listdir(XML_DIR) if f.startswith("org.orrery.") and f.endswith(".xml")
             and f != "org.orrery.Agent1.xml"}
    tap.check(r.returncode == 0 and printed == specs,
              f"orrery-vm --bus-introspect prints dbus/*.xml's interfaces ({', '.join(sorted(printed))})",
              r.stderr.decode() + "\n" + "\n".join(f"{k}: printed-only {printed.get(k, set()) - specs.get(k, set())}, "
                                                    f"xml-only {specs.get(k, set()) - printed.get(k, set())}"
                                                    for k in sorted(set(printed) | set(specs))))

    machine = dbus.Interface(bus.get_object(SERVICE, PATH), "org.orrery.Machine1")
    props = dbus.Interface(bus.get_object(SERVICE, PATH), "org.freedesktop.DBus.Properties")
    managed = dbus.Interface(bus.get_object(SERVICE, "/org/orrery/VM"),
                             "org.freedesktop.DBus.ObjectManager").GetManagedObjects()
    tap.check(all(dbus.ObjectPath(p) in managed for p in (PATH, f"{PATH}/Console/0", f"{PATH}/Chardev/serial0",
                                                          f"{PATH}/Chardev/guest_agent"))
              and {"org.orrery.Machine1", "org.orrery.Keyboard1", "org.orrery.Mouse1"} <= set(managed[dbus.ObjectPath(PATH)]),
              "one GetManagedObjects on /org/orrery/VM lists the machine, console and chardevs", sorted(str(k) for k in managed))
    p = props.GetAll("org.orrery.Machine1")
    tap.check(p["Name"] == NAME and p["MemoryBytes"] == 512 << 20 and p["VCPUs"] == 1 and p["State"] == "running"
              and re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", str(p["UUID"])),
              "Machine1 properties: Name, MemoryBytes, VCPUs, State, a random UUID", dict(p))

    # Pause: State follows (with PropertiesChanged) and the guest's clock stands still.
    changes = []
    bus.add_signal_receiver(lambda iface, changed, inval: changes.append(dict(changed)), "PropertiesChanged",
                            "org.freedesktop.DBus.Properties", SERVICE, PATH)
    u1, t1 = uptime(), time.monotonic()
    machine.Pause()
    tap.check(props.Get("org.orrery.Machine1", "State") == "paused", "Pause -> State is paused")
    spin(2.0)
    machine.Pause()
    tap.check(props.Get("org.orrery.Machine1", "State") == "paused", "Pause while paused is a no-op")
    machine.Resume()
    u2, t2 = uptime(), time.monotonic()
    tap.check(props.Get("org.orrery.Machine1", "State") == "running", "Resume -> State is running")
    if u1 is not None and u2 is not None:
        tap.check(u2 - u1 < (t2 - t1) - 1.5,
                  f"the guest clock stood still while paused (guest {u2 - u1:.2f} s, host {t2 - t1:.2f} s)")
    else:
        tap.check(False, "the guest reports its uptime", vm.tail())
    spin(1.0, lambda: any(c.get("State") == "running" for c in changes))
    states = [str(c["State"]) for c in changes if "State" in c]
    tap.check(states[:2] == ["paused", "running"], f"PropertiesChanged announced paused then running ({states})")
    machine.Resume()
    tap.check(props.Get("org.orrery.Machine1", "State") == "running", "Resume while running is a no-op")

    # Who paused it: the log names the caller's unique name, pid and command.
    busctl = subprocess.Popen(["busctl", f"--address={pbus.address}", "call", SERVICE, PATH, "org.orrery.Machine1",
                               "Pause"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = busctl.communicate(timeout=60)
    line = wait_stderr(rf"Pause of VM '{NAME}' requested by :\d+\.\d+ \(pid {busctl.pid}, busctl\)")
    tap.check(busctl.returncode == 0 and line is not None, f"a Pause by busctl (pid {busctl.pid}) is logged with its pid",
              err.decode() + vm.tail())
    machine.Resume()

    # The framebuffer: a sealed memfd a client can map read-only and nothing more.
    console_obj = bus.get_object(SERVICE, f"{PATH}/Console/0")
    console = dbus.Interface(console_obj, "org.orrery.Console1")
    updates = []
    bus.add_signal_receiver(lambda rects: updates.append([tuple(int(v) for v in r) for r in rects]), "Update",
                            "org.orrery.Console1", SERVICE, f"{PATH}/Console/0")
    fd_obj, offset, w, h, stride, fmt = console.GetFramebuffer()
    fd = fd_obj.take()
    tap.check((w, h, stride, fmt) == (WIDTH, HEIGHT, WIDTH * 4, 0x34325258),
              f"GetFramebuffer describes {WIDTH}x{HEIGHT} XRGB8888", (w, h, stride, hex(fmt)))
    try:
        mmap.mmap(fd, stride * h, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        tap.check(False, "a writable shared mapping of the framebuffer fd is refused")
    except OSError:
        tap.check(True, "a writable shared mapping of the framebuffer fd is refused")
    try:
        os.ftruncate(fd, 4096)
        tap.check(False, "the framebuffer fd cannot be shrunk")
    except OSError:
        tap.check(True, "the framebuffer fd cannot be shrunk")
    fb = mmap.mmap(fd, stride * h, mmap.MAP_SHARED, mmap.PROT_READ)

    # A connection that asks for Update signals but does not Watch gets none: they go to watchers only.
    bystander = dbus.bus.BusConnection(pbus.address)
    overheard = []
    bystander.add_signal_receiver(lambda rects: overheard.append(1), "Update", "org.orrery.Console1", SERVICE,
                                  f"{PATH}/Console/0")
    console.Watch()
    tap.check(console_obj.Get("org.orrery.Console1", "Watchers", dbus_interface="org.freedesktop.DBus.Properties") == 1,
              "Watch makes one watcher")
    spin(0.5)
    updates.clear()
    m = vm.command("orrery-guest-probe pattern 3", r"pattern drawn \d+x\d+\r?\n", 60)
    rows = set()

    def covered():
        while updates:
            for (x, y, rw, rh) in updates.pop():
                rows.update(range(y, y + rh))
        return len(rows) >= HEIGHT - 50

    got = spin(5.0, lambda: covered() or False) or len(rows) > 0
    tap.check(m is not None and got, "an Update arrives after the probe draws")
    spin(5.0, covered)
    tap.check(covered(), f"the Updates cover the redrawn screen ({len(rows)} of {HEIGHT} lines)")
    tap.check(not overheard, f"a connection that does not Watch receives no Update ({len(overheard)})")
    bystander.close()
    r = subprocess.run([FB_CHECK, str(w), str(h), str(stride), "3"], input=fb[:stride * h], capture_output=True)
    tap.check(r.returncode == 0, "the read-only mapping shows the probe's pattern", r.stdout.decode())
    console.Unwatch(timeout=10)
    tap.check(console_obj.Get("org.orrery.Console1", "Watchers", dbus_interface="org.freedesktop.DBus.Properties") == 0,
              "Unwatch leaves no watcher")

    # serial0 through Chardev1.
    chardev_obj = bus.get_object(SERVICE, f"{PATH}/Chardev/serial0")
    chardev = dbus.Interface(chardev_obj, "org.orrery.Chardev1")
    scroll = bytes(chardev.GetScrollback())
    tap.check(READY.encode() in scroll, "GetScrollback holds the boot output")
    r_pipe, w_pipe = os.pipe()
    try:
        chardev.Register(dbus.types.UnixFd(r_pipe))
        tap.check(False, "Register refuses a pipe")
    except dbus.DBusException as e:
        tap.check(e.get_dbus_name() == "org.orrery.Error.InvalidArgument", f"Register refuses a pipe ({e.get_dbus_name()})")
    os.close(r_pipe)
    os.close(w_pipe)
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    chardev.Register(dbus.types.UnixFd(theirs.fileno()))
    theirs.close()
    tap.check(str(chardev_obj.Get("org.orrery.Chardev1", "Owner", dbus_interface="org.freedesktop.DBus.Properties"))
              == bus.get_unique_name(), "Owner is the registering connection")
    other = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        chardev.Register(dbus.types.UnixFd(other[1].fileno()))
        tap.check(False, "a second Register answers Busy")
    except dbus.DBusException as e:
        tap.check(e.get_dbus_name() == "org.orrery.Error.Busy", f"a second Register answers Busy ({e.get_dbus_name()})")
    mine.sendall(b"echo bus-$((40+2))-ok\n")
    mine.settimeout(30)
    data = b""
    deadline = time.monotonic() + 30
    while b"bus-42-ok" not in data and time.monotonic() < deadline:
        try:
            data += mine.recv(4096)
        except socket.timeout:
            break
    tap.check(b"bus-42-ok" in data, "a command sent through the registered socket runs and its output comes back")
    mine.close()
    spin(1.0, lambda: str(chardev_obj.Get("org.orrery.Chardev1", "Owner",
                                          dbus_interface="org.freedesktop.DBus.Properties")) == "")
    tap.check(str(chardev_obj.Get("org.orrery.Chardev1", "Owner", dbus_interface="org.freedesktop.DBus.Properties")) == "",
              "closing the socket frees serial0")

    # The guest agent's port (virtio-console "org.qemu.guest_agent.0") through Chardev1. The
    # default guest's agent (orrery-guest-agent, started by init) holds it open and speaks QGA.
    agent_obj = bus.get_object(SERVICE, f"{PATH}/Chardev/guest_agent")
    agent_props = dbus.Interface(agent_obj, "org.freedesktop.DBus.Properties")
    tap.check(str(agent_props.Get("org.orrery.Chardev1", "Name")) == "org.qemu.guest_agent.0",
              "guest_agent is named org.qemu.guest_agent.0")
    m = vm.command("cat /sys/class/virtio-ports/vport*/name", r"org\.qemu\.guest_agent\.0\r?\n", 30)
    tap.check(m is not None, "the guest sees a virtio port named org.qemu.guest_agent.0")
    opened = spin(30.0, lambda: bool(agent_props.Get("org.orrery.Chardev1", "GuestOpen")))
    tap.check(opened, "GuestOpen: the guest's agent has its port open")
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    dbus.Interface(agent_obj, "org.orrery.Chardev1").Register(dbus.types.UnixFd(theirs.fileno()))
    theirs.close()
    mine.sendall(b'\xff{"execute":"guest-sync-delimited","arguments":{"id":4242}}\n')
    data = b""
    deadline = time.monotonic() + 30
    mine.settimeout(1)
    while not re.search(rb'\xff\{"return": ?4242\}\n', data) and time.monotonic() < deadline:
        try:
            data += mine.recv(4096)
        except socket.timeout:
            pass
    tap.check(re.search(rb'\xff\{"return": ?4242\}\n', data) is not None,
              "bytes written to the registered socket reach the guest, and its agent's answer comes out of it", data)
    mine.close()

    # A second VM of the same name is refused.
    r = subprocess.run([ORRERY_VM, "--name", NAME, "--bus", pbus.address, "--serial", "none"],
                       stdin=subprocess.PIPE, capture_output=True, timeout=60)
    tap.check(r.returncode == 2 and b"already owned" in r.stderr,
              "a second VM with the same name exits 2: the name is taken", r.stderr.decode())

    machine.Quit()
    code = vm.wait_exit(30)
    tap.check(code == 0, f"Quit stops the emulator (exit {code})")
    tap.check(wait_stderr(rf"Stop \(Quit\) of VM '{NAME}' requested by :\d+\.\d+ \(pid {os.getpid()}, ") is not None,
              "the Quit is logged with the caller's pid", vm.tail())
finally:
    vm.kill()
    pbus.stop()
tap.finish()

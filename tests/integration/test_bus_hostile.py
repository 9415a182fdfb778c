#!/usr/bin/env python3
"""Hostile clients: every method of every interface with boundary values and garbage.

One VM on a private bus. Every method of Machine1, Keyboard1, Mouse1,
Console1 and Chardev1 (serial0 and guest_agent), and the standard
Properties, Introspectable, Peer and ObjectManager interfaces, is called
with boundary values (0, 1, 0x7fffffff, 0xffffffff, INT32_MIN/MAX), with
wrong signatures and argument counts, and with every kind of file
descriptor that is not a connected AF_UNIX stream socket. A hand-written
D-Bus client sends what libdbus refuses to build (an fd index that points
at no fd, a call without an interface). Then 2000 calls are fired at once
from four connections without waiting for replies.

Every call must get a reply, and each reply must be success or one named
error from the contract: org.orrery.Error.* or
org.freedesktop.DBus.Error.{InvalidArgs, UnknownMethod, UnknownProperty,
PropertyReadOnly, AccessDenied}. Three more standard names are accepted
where they are the correct answer of the bus library itself, and only
there: UnknownObject (no such object path, and sd-bus's answer to a call
without an interface field), UnknownInterface (Properties.GetAll of an
interface the object lacks) and InconsistentMessage (a message whose
fd index points past the fds it carries). Never NoReply. At the end the
VM still runs, the guest still answers on its serial console, Reset
boots it again, and Quit ends the emulator with status 0.
"""
import os
import socket
import struct
import sys
import tempfile
import time

import dbus
import dbus.mainloop.glib
from gi.repository import GLib

sys.path.insert(0, os.path.dirname(__file__))
from orrery_test import BOOT_TIMEOUT, READY, PrivateBus, Tap, Vm  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from orrery_rawbus import RawBus, first_string  # noqa: E402

NAME = "hostile"
SERVICE = f"org.orrery.VM.{NAME}"
PATH = f"/org/orrery/VM/{NAME}"
CONSOLE = f"{PATH}/Console/0"
SERIAL = f"{PATH}/Chardev/serial0"
AGENT = f"{PATH}/Chardev/guest_agent"
WIDTH, HEIGHT = 640, 480

E = "org.orrery.Error."
D = "org.freedesktop.DBus.Error."
OK = "ok"
INVALID_ARGUMENT, BUSY, NOT_OWNER = E + "InvalidArgument", E + "Busy", E + "NotOwner"
INVALID_ARGS, UNKNOWN_METHOD, UNKNOWN_PROPERTY, READ_ONLY = (D + "InvalidArgs", D + "UnknownMethod",
                                                             D + "UnknownProperty", D + "PropertyReadOnly")
UNKNOWN_OBJECT, UNKNOWN_INTERFACE, INCONSISTENT = D + "UnknownObject", D + "UnknownInterface", D + "InconsistentMessage"
# The contract (dbus/*.xml, README): these and nothing else, plus success.
DOCUMENTED = {E + n for n in ("InvalidArgument", "Busy", "NotSupported", "Unavailable", "Timeout", "NotOwner")} | \
             {INVALID_ARGS, UNKNOWN_METHOD, UNKNOWN_PROPERTY, READ_ONLY, D + "AccessDenied"}
LIBRARY = {UNKNOWN_OBJECT, UNKNOWN_INTERFACE, INCONSISTENT}

INT32_MIN, INT32_MAX, U32_MAX = -2 ** 31, 2 ** 31 - 1, 2 ** 32 - 1
KEY_A, KEY_ESC, KEY_POWER = 30, 1, 116
BUTTONS = [0x110, 0x111, 0x112, 0x113, 0x114]
CALL_TIMEOUT = 15.0
PROPS = "org.freedesktop.DBus.Properties"

dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
tap = Tap()
pbus = PrivateBus()
vm = Vm("--display", f"{WIDTH}x{HEIGHT}", name=NAME, bus=pbus.address)
calls = 0


def outcome(conn, path, iface, method, sig="", args=(), timeout=CALL_TIMEOUT, dest=SERVICE):
    """Calls and returns ('ok', value) or (error name, message)."""
    global calls
    calls += 1
    try:
        return OK, conn.call_blocking(dest, path, iface, method, sig, tuple(args), timeout=timeout)
    except dbus.DBusException as e:
        return e.get_dbus_name(), e.get_dbus_message()


class Group:
    """Calls whose answers must each be in an expected set; one TAP line for the lot."""

    def __init__(self, conn):
        self.conn = conn
        self.failures = []
        self.n = 0

    def expect(self, label, want, path, iface, method, sig="", args=(), conn=None):
        want = {want} if isinstance(want, str) else set(want)
        for _ in range(100):  # Busy means "try again" (input the guest has not read yet)
            name, value = outcome(conn or self.conn, path, iface, method, sig, args)
            self.n += 1
            if name != BUSY or BUSY in want or OK not in want:
                break
            time.sleep(0.02)
        if name not in want or (name != OK and name not in DOCUMENTED | LIBRARY):
            self.failures.append(f"{label}: {iface}.{method}({sig}) on {path} answered {name} "
                                 f"({str(value)[:160]}), expected {' or '.join(sorted(want))}")
        return name, value

    def check(self, ok, label):
        if not ok:
            self.failures.append(label)

    def done(self, what):
        tap.check(not self.failures, f"{what} ({self.n} calls)", "\n".join(self.failures))


def spin(seconds, until=lambda: False):
    ctx = GLib.MainContext.default()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not until():
        while ctx.iteration(False):
            pass
        time.sleep(0.005)
    return until()


def prop(conn, path, iface, name):
    return conn.call_blocking(SERVICE, path, PROPS, "Get", "ss", (iface, name), timeout=CALL_TIMEOUT)


def echo(tag, timeout=30):
    """The guest answers a shell command on its serial console."""
    return vm.command(f"echo {tag}-$((40+2))", rf"{tag}-42\r?\n", timeout) is not None


# Garbage argument lists: (signature, arguments). Each method gets every one that is not its own signature.
def garbage():
    return [("", ()), ("s", ("garbage",)), ("u", (1,)), ("i", (-1,)), ("uu", (1, 2)), ("ii", (INT32_MIN, INT32_MAX)),
            ("uuu", (1, 2, 3)), ("ay", (dbus.ByteArray(b"\xff" * 64),)), ("v", (dbus.UInt32(1),)),
            ("a{sv}", ({"k": dbus.String("v")},)), ("(uu)", ((1, 2),)), ("t", (2 ** 64 - 1,)), ("x", (-2 ** 63,)),
            ("d", (float("nan"),)), ("b", (True,)), ("o", ("/",)), ("g", ("a{sv}",)), ("s", ("x" * 200000,)),
            ("as", (["a"] * 1000,)), ("us", (U32_MAX, "x")), ("su", ("x", 0))]


METHODS = [  # (path, interface, method, signature) - every method of the contract
    (PATH, "org.orrery.Machine1", "Pause", ""), (PATH, "org.orrery.Machine1", "Resume", ""),
    (PATH, "org.orrery.Machine1", "Reset", ""), (PATH, "org.orrery.Machine1", "PowerDown", ""),
    (PATH, "org.orrery.Machine1", "Quit", ""),
    (PATH, "org.orrery.Keyboard1", "Press", "u"), (PATH, "org.orrery.Keyboard1", "Release", "u"),
    (PATH, "org.orrery.Mouse1", "SetAbsPosition", "uu"), (PATH, "org.orrery.Mouse1", "RelMotion", "ii"),
    (PATH, "org.orrery.Mouse1", "Press", "u"), (PATH, "org.orrery.Mouse1", "Release", "u"),
    (PATH, "org.orrery.Mouse1", "Wheel", "ii"),
    (CONSOLE, "org.orrery.Console1", "GetFramebuffer", ""), (CONSOLE, "org.orrery.Console1", "Watch", ""),
    (CONSOLE, "org.orrery.Console1", "Unwatch", ""),
    (SERIAL, "org.orrery.Chardev1", "Register", "h"), (SERIAL, "org.orrery.Chardev1", "Unregister", ""),
    (SERIAL, "org.orrery.Chardev1", "GetScrollback", ""),
    (AGENT, "org.orrery.Chardev1", "Register", "h"), (AGENT, "org.orrery.Chardev1", "Unregister", ""),
    (AGENT, "org.orrery.Chardev1", "GetScrollback", ""),
    (PATH, PROPS, "Get", "ss"), (PATH, PROPS, "GetAll", "s"), (PATH, PROPS, "Set", "ssv"),
    (CONSOLE, PROPS, "Get", "ss"), (SERIAL, PROPS, "Set", "ssv"),
    (PATH, "org.freedesktop.DBus.Introspectable", "Introspect", ""),
    (PATH, "org.freedesktop.DBus.Peer", "Ping", ""),
    ("/org/orrery/VM", "org.freedesktop.DBus.ObjectManager", "GetManagedObjects", ""),
]


def raw_call(raw, *args, **kw):
    """A call through the hand-written client: ('ok', its first string) or (the error name, '')."""
    error, fields, body = raw.call(*args, **kw)
    return (error, "") if error else (OK, first_string(fields, body))


try:
    if not tap.check(vm.wait_for(READY, BOOT_TIMEOUT) is not None, "the guest reaches ready", vm.tail()):
        tap.finish()
    t_start = time.monotonic()
    bus = dbus.bus.BusConnection(pbus.address)
    other = dbus.bus.BusConnection(pbus.address)

    # The power key must not end the guest: PowerDown and Press(KEY_POWER) are among the calls.
    # 'events' prints what reaches the guest's input devices, so clamping can be checked.
    vm.command("killall orrery-guest-probe; echo probe-gone", r"probe-gone\r?\n", 30)
    m = vm.command("orrery-guest-probe events &", r"orrery-probe: listening (\d+) devices", 30)
    tap.check(m is not None, "the guest's event probe listens", vm.tail(600))

    # ---- Wrong signatures, too many and too few arguments, for every method ----
    g = Group(bus)
    for path, iface, method, sig in METHODS:
        # sd-bus itself answers Peer (it ignores arguments) and reads only what it needs of Properties' and
        # ObjectManager's arguments; the VM's own interfaces must refuse every wrong signature.
        if iface == "org.freedesktop.DBus.Peer":
            want = {INVALID_ARGS, OK}
        elif iface.startswith("org.freedesktop.DBus."):
            want = {INVALID_ARGS, UNKNOWN_INTERFACE, UNKNOWN_PROPERTY}
        else:
            want = INVALID_ARGS
        for gsig, gargs in garbage():
            if gsig != sig:
                g.expect(f"garbage {gsig!r}", want, path, iface, method, gsig, gargs)
        if sig == "h":  # an integer where the fd belongs, two fds
            a, b = socket.socketpair()
            g.expect("two fds", INVALID_ARGS, path, iface, method, "hh", (dbus.types.UnixFd(a), dbus.types.UnixFd(b)))
            a.close()
            b.close()
    g.check(str(prop(bus, PATH, "org.orrery.Machine1", "State")) == "running", "the VM runs after the garbage")
    g.check(str(prop(bus, SERIAL, "org.orrery.Chardev1", "Owner")) == "", "no garbage registered serial0")
    g.done("every method with wrong signatures and argument counts answers InvalidArgs")
    g = Group(bus)
    for path, iface, method, sig in METHODS:  # the right arguments and one more
        if iface.startswith("org.orrery.") and method not in ("Register", "Quit", "Reset", "PowerDown"):
            args = {"": (), "u": (KEY_A,), "uu": (1, 1), "ii": (0, 0)}[sig] + (dbus.UInt32(7),)
            g.expect("one argument too many", INVALID_ARGS, path, iface, method, sig + "u", args)
    g.done("the right arguments plus one more answer InvalidArgs")

    # ---- Unknown members, interfaces, objects; Introspect; Peer; ObjectManager ----
    g = Group(bus)
    g.expect("unknown method", UNKNOWN_METHOD, PATH, "org.orrery.Machine1", "Explode")
    g.expect("unknown interface", UNKNOWN_METHOD, PATH, "org.orrery.Nope1", "Pause")
    g.expect("method of another object", UNKNOWN_METHOD, CONSOLE, "org.orrery.Machine1", "Pause")
    g.expect("Keyboard1 on the console", UNKNOWN_METHOD, CONSOLE, "org.orrery.Keyboard1", "Press", "u", (KEY_A,))
    g.expect("Console1 on the machine", UNKNOWN_METHOD, PATH, "org.orrery.Console1", "Watch")
    g.expect("unknown object", UNKNOWN_OBJECT, PATH + "/Nope", "org.orrery.Machine1", "Pause")
    g.expect("console 1 does not exist", UNKNOWN_OBJECT, PATH + "/Console/1", "org.orrery.Console1", "Watch")
    g.expect("serial1 does not exist", UNKNOWN_OBJECT, PATH + "/Chardev/serial1", "org.orrery.Chardev1", "Unregister")
    for path in ("/", "/org", "/org/orrery", "/org/orrery/VM", PATH, PATH + "/Console", CONSOLE, PATH + "/Chardev",
                 SERIAL, AGENT):
        name, xml = g.expect(f"Introspect {path}", OK, path, "org.freedesktop.DBus.Introspectable", "Introspect")
        g.check(name != OK or "<node" in str(xml), f"Introspect {path} returns XML")
        g.expect(f"Ping {path}", OK, path, "org.freedesktop.DBus.Peer", "Ping")
    g.expect("Introspect an unknown object", UNKNOWN_OBJECT, "/org/orrery/VM/nope",
             "org.freedesktop.DBus.Introspectable", "Introspect")
    g.expect("GetMachineId", OK, PATH, "org.freedesktop.DBus.Peer", "GetMachineId")
    name, managed = g.expect("GetManagedObjects", OK, "/org/orrery/VM", "org.freedesktop.DBus.ObjectManager",
                             "GetManagedObjects")
    g.check(name == OK and {PATH, CONSOLE, SERIAL, AGENT} <= {str(k) for k in managed},
            "GetManagedObjects lists the machine, console and chardevs")
    g.expect("no ObjectManager on the VM path", UNKNOWN_METHOD, PATH, "org.freedesktop.DBus.ObjectManager",
             "GetManagedObjects")
    g.done("unknown methods, interfaces and objects answer UnknownMethod/UnknownObject; Introspect, Ping, ObjectManager")

    # ---- Properties: bad names, Set on read-only properties, GetAll of everything ----
    g = Group(bus)
    objects = {PATH: ["org.orrery.Machine1", "org.orrery.Keyboard1", "org.orrery.Mouse1"],
               CONSOLE: ["org.orrery.Console1"], SERIAL: ["org.orrery.Chardev1"], AGENT: ["org.orrery.Chardev1"]}
    for path, ifaces in objects.items():
        for iface in ifaces:
            name, allp = g.expect(f"GetAll {iface}", OK, path, PROPS, "GetAll", "s", (iface,))
            for pname, value in (allp.items() if name == OK else []):
                g.expect(f"Get {iface}.{pname}", OK, path, PROPS, "Get", "ss", (iface, pname))
                g.expect(f"Set {iface}.{pname} (same type)", READ_ONLY, path, PROPS, "Set", "ssv", (iface, pname, value))
                g.expect(f"Set {iface}.{pname} (wrong type)", {READ_ONLY, INVALID_ARGS}, path, PROPS, "Set", "ssv",
                         (iface, pname, dbus.Struct((1, "x"), signature="us", variant_level=1)))
            for bad in ("", "Nope", "state", "x" * 10000, "State\u00e9", "Name.X"):
                g.expect(f"Get {iface}.{bad[:20]!r}", UNKNOWN_PROPERTY, path, PROPS, "Get", "ss", (iface, bad))
                g.expect(f"Set {iface}.{bad[:20]!r}", UNKNOWN_PROPERTY, path, PROPS, "Set", "ssv",
                         (iface, bad, dbus.String("x", variant_level=1)))
        for biface in ("org.orrery.Nope1", "a..b", "x" * 300, "org.freedesktop.DBus.Peer"):
            g.expect(f"Get {biface[:20]}.State", UNKNOWN_PROPERTY, path, PROPS, "Get", "ss", (biface, "State"))
            g.expect(f"Set {biface[:20]}.State", UNKNOWN_PROPERTY, path, PROPS, "Set", "ssv",
                     (biface, "State", dbus.String("paused", variant_level=1)))
            g.expect(f"GetAll {biface[:20]}", {UNKNOWN_INTERFACE, INVALID_ARGS, OK}, path, PROPS, "GetAll", "s", (biface,))
        g.expect("GetAll of every interface", OK, path, PROPS, "GetAll", "s", ("",))
    g.check(str(prop(bus, PATH, "org.orrery.Machine1", "State")) == "running", "State is still running")
    g.done("Properties: unknown names answer UnknownProperty, Set answers PropertyReadOnly, GetAll works")

    # ---- Machine1: Pause twice, calls while paused, Resume twice; PowerDown with no one listening ----
    g = Group(bus)
    g.expect("Resume while running", OK, PATH, "org.orrery.Machine1", "Resume")
    g.expect("Pause", OK, PATH, "org.orrery.Machine1", "Pause")
    g.expect("Pause while paused", OK, PATH, "org.orrery.Machine1", "Pause", conn=other)
    g.check(str(prop(bus, PATH, "org.orrery.Machine1", "State")) == "paused", "State is paused")
    busy = 0
    for i in range(200):  # the guest reads nothing while paused: the input ring fills up and answers Busy
        name, _ = g.expect("Keyboard1.Press while paused", {OK, BUSY}, PATH, "org.orrery.Keyboard1",
                           "Press" if i % 2 == 0 else "Release", "u", (KEY_ESC,))
        busy += name == BUSY
    g.expect("Release while paused", {OK, BUSY}, PATH, "org.orrery.Keyboard1", "Release", "u", (KEY_ESC,))
    g.check(busy > 0, "a paused guest's full input ring answers Busy")
    # The power key cannot be pressed either: Busy (try again), like every other input.
    g.expect("PowerDown while paused with the input ring full", {OK, BUSY}, PATH, "org.orrery.Machine1", "PowerDown")
    g.expect("GetScrollback while paused", OK, SERIAL, "org.orrery.Chardev1", "GetScrollback")
    g.expect("GetFramebuffer while paused", OK, CONSOLE, "org.orrery.Console1", "GetFramebuffer")
    g.expect("Resume", OK, PATH, "org.orrery.Machine1", "Resume", conn=other)
    g.expect("Resume again", OK, PATH, "org.orrery.Machine1", "Resume")
    g.check(str(prop(bus, PATH, "org.orrery.Machine1", "State")) == "running", "State is running again")
    g.expect("Release after Resume", OK, PATH, "org.orrery.Keyboard1", "Release", "u", (KEY_ESC,))
    g.check(echo("after-resume"), "the guest answers after Resume")
    vm.mark = len(vm.output)
    g.expect("PowerDown (no power-key handler in the guest)", OK, PATH, "org.orrery.Machine1", "PowerDown")
    g.check(vm.wait_for(rf"event \w+ type=1 code={KEY_POWER} value=0", 20) is not None,
            "PowerDown reaches the guest as a KEY_POWER press and release")
    g.check(echo("after-powerdown"), "the guest still answers after PowerDown")
    g.done("Machine1: Pause/Resume twice each, Busy input while paused, PowerDown presses KEY_POWER")

    # ---- Keyboard1 boundary values ----
    g = Group(bus)
    for code in (0, 0x2ff, 0x10000, 0x7fffffff, 0xffffffff, 0xffff, 0x8000):
        for method in ("Press", "Release"):
            g.expect(f"Keyboard1.{method}({code:#x})", INVALID_ARGUMENT, PATH, "org.orrery.Keyboard1", method, "u", (code,))
    for code in (KEY_ESC, KEY_A, KEY_POWER, 0xff):  # 0xff: accepted if declared, else InvalidArgument
        want = {OK, INVALID_ARGUMENT} if code == 0xff else OK
        g.expect(f"Press({code})", want, PATH, "org.orrery.Keyboard1", "Press", "u", (code,))
        g.expect(f"Press({code}) again (repeat)", want, PATH, "org.orrery.Keyboard1", "Press", "u", (code,))
        g.expect(f"Release({code})", want, PATH, "org.orrery.Keyboard1", "Release", "u", (code,))
        g.expect(f"Release({code}) again (no-op)", want, PATH, "org.orrery.Keyboard1", "Release", "u", (code,))
    for button in BUTTONS:  # mouse buttons are not keyboard keys
        g.expect(f"Keyboard1.Press({button:#x})", {OK, INVALID_ARGUMENT}, PATH, "org.orrery.Keyboard1", "Press", "u", (button,))
        g.expect(f"Keyboard1.Release({button:#x})", {OK, INVALID_ARGUMENT}, PATH, "org.orrery.Keyboard1", "Release", "u",
                 (button,))
    g.check(vm.wait_for(rf"event \w+ type=1 code={KEY_A} value=0", 20) is not None, "KEY_A press/release reach the guest")
    g.done("Keyboard1: 0, 0xffff, 0x10000, 0x7fffffff, 0xffffffff answer InvalidArgument; real keys work")

    # ---- Mouse1 boundary values (the probe shows where the pointer ends up) ----
    g = Group(bus)
    mouse = "org.orrery.Mouse1"
    g.expect("SetAbsPosition(5, 5)", OK, PATH, mouse, "SetAbsPosition", "uu", (5, 5))
    g.check(vm.wait_for(r"type=3 code=1 value=5\r?\n", 20) is not None, "SetAbsPosition(5, 5) reaches the guest")
    g.expect("SetAbsPosition(0xffffffff, 0xffffffff)", OK, PATH, mouse, "SetAbsPosition", "uu", (U32_MAX, U32_MAX))
    g.check(vm.wait_for(rf"type=3 code=1 value={HEIGHT - 1}\r?\n", 20) is not None, "huge coordinates clamp to the edge")
    g.expect("RelMotion(INT32_MIN, INT32_MIN)", OK, PATH, mouse, "RelMotion", "ii", (INT32_MIN, INT32_MIN))
    g.check(vm.wait_for(r"type=3 code=1 value=0\r?\n", 20) is not None, "RelMotion(INT32_MIN) clamps to 0")
    g.expect("RelMotion(INT32_MAX, INT32_MAX)", OK, PATH, mouse, "RelMotion", "ii", (INT32_MAX, INT32_MAX))
    g.check(vm.wait_for(rf"type=3 code=1 value={HEIGHT - 1}\r?\n", 20) is not None, "RelMotion(INT32_MAX) clamps to the edge")
    for x, y in ((0, 0), (1, 1), (0x7fffffff, 0), (0, 0x7fffffff), (0x80000000, 0x80000000), (WIDTH, HEIGHT)):
        g.expect(f"SetAbsPosition({x:#x}, {y:#x})", OK, PATH, mouse, "SetAbsPosition", "uu", (x, y))
    for dx, dy in ((0, 0), (1, -1), (INT32_MAX, INT32_MIN), (INT32_MIN, INT32_MAX), (-1, -1)):
        g.expect(f"RelMotion({dx}, {dy})", OK, PATH, mouse, "RelMotion", "ii", (dx, dy))
    for b in BUTTONS:
        g.expect(f"Mouse1.Press({b:#x})", OK, PATH, mouse, "Press", "u", (b,))
        g.expect(f"Mouse1.Release({b:#x})", OK, PATH, mouse, "Release", "u", (b,))
        g.expect(f"Mouse1.Release({b:#x}) again", OK, PATH, mouse, "Release", "u", (b,))
    for b in (0, 1, KEY_A, 0x10f, 0x115, 0xffff, 0x10000, 0x7fffffff, 0xffffffff):
        g.expect(f"Mouse1.Press({b:#x})", INVALID_ARGUMENT, PATH, mouse, "Press", "u", (b,))
        g.expect(f"Mouse1.Release({b:#x})", INVALID_ARGUMENT, PATH, mouse, "Release", "u", (b,))
    for v, h in ((0, 0), (1, 0), (0, -1), (120, 120), (-120, -120)):
        g.expect(f"Wheel({v}, {h})", OK, PATH, mouse, "Wheel", "ii", (v, h))
    for v, h in ((121, 0), (0, -121), (INT32_MIN, 0), (0, INT32_MAX), (INT32_MAX, INT32_MIN), (1, 121)):
        g.expect(f"Wheel({v}, {h})", INVALID_ARGUMENT, PATH, mouse, "Wheel", "ii", (v, h))
    g.done("Mouse1: huge and INT32_MIN/MAX motion clamps; unknown buttons and absurd wheel steps answer InvalidArgument")

    # ---- Console1 ----
    g = Group(bus)
    con = "org.orrery.Console1"
    for _ in range(3):
        name, fb = g.expect("GetFramebuffer", OK, CONSOLE, con, "GetFramebuffer")
        if name == OK:
            g.check(tuple(int(v) for v in fb[2:5]) == (WIDTH, HEIGHT, WIDTH * 4), f"GetFramebuffer geometry {fb[2:5]}")
            os.close(fb[0].take())
    g.expect("Unwatch without Watch", OK, CONSOLE, con, "Unwatch")
    g.expect("Watch", OK, CONSOLE, con, "Watch")
    g.expect("Watch again", OK, CONSOLE, con, "Watch")
    g.check(int(prop(bus, CONSOLE, con, "Watchers")) == 1, "Watch twice from one connection counts once")
    g.expect("Watch from another connection", OK, CONSOLE, con, "Watch", conn=other)
    g.check(int(prop(bus, CONSOLE, con, "Watchers")) == 2, "two connections watch")
    g.expect("Unwatch", OK, CONSOLE, con, "Unwatch")
    g.expect("Unwatch again", OK, CONSOLE, con, "Unwatch")
    g.expect("Unwatch (other)", OK, CONSOLE, con, "Unwatch", conn=other)
    g.check(int(prop(bus, CONSOLE, con, "Watchers")) == 0, "no watchers left")
    leaver = dbus.bus.BusConnection(pbus.address)
    g.expect("Watch, then leave the bus", OK, CONSOLE, con, "Watch", conn=leaver)
    leaver.close()
    g.check(spin(5, lambda: int(prop(bus, CONSOLE, con, "Watchers")) == 0), "a watcher that leaves the bus stops watching")
    g.done("Console1: GetFramebuffer repeatedly, Watch/Unwatch twice, Unwatch without Watch, watcher leaving")

    # ---- Chardev1: every kind of wrong fd, ownership, leaving the bus ----
    cd = "org.orrery.Chardev1"
    for dev in (SERIAL, AGENT):
        g = Group(bus)
        label = dev.rsplit("/", 1)[1]
        g.expect("GetScrollback", OK, dev, cd, "GetScrollback")
        g.expect("Unregister when free", NOT_OWNER, dev, cd, "Unregister")
        bad = []
        bad.append(("/dev/null", os.open("/dev/null", os.O_RDWR)))
        tmp = tempfile.TemporaryFile()
        bad.append(("a regular file", os.dup(tmp.fileno())))
        tmp.close()
        r_pipe, w_pipe = os.pipe()
        bad += [("a pipe's read end", r_pipe), ("a pipe's write end", w_pipe)]
        bad.append(("a memfd", os.memfd_create("hostile")))
        bad.append(("an eventfd", os.eventfd(0)))
        bad.append(("an unconnected AF_UNIX stream socket", socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).detach()))
        lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lst.bind(f"\0orrery-hostile-{os.getpid()}")
        lst.listen(1)
        bad.append(("a listening AF_UNIX socket", lst.detach()))
        for kind, what in ((socket.SOCK_DGRAM, "datagram"), (socket.SOCK_SEQPACKET, "seqpacket")):
            a, b = socket.socketpair(socket.AF_UNIX, kind)
            bad.append((f"an AF_UNIX {what} socketpair end", a.detach()))
            b.close()
        bad.append(("a UDP socket", socket.socket(socket.AF_INET, socket.SOCK_DGRAM).detach()))
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.connect(("127.0.0.1", 9))
        bad.append(("a connected UDP socket", udp.detach()))
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        tcp = socket.create_connection(srv.getsockname())
        bad.append(("a listening TCP socket", srv.detach()))
        bad.append(("a connected TCP socket", tcp.detach()))
        n_bad = len(bad)
        for what, fd in bad:
            g.expect(f"Register({what})", INVALID_ARGUMENT, dev, cd, "Register", "h", (dbus.types.UnixFd(fd),))
            os.close(fd)
        g.check(str(prop(bus, dev, cd, "Owner")) == "", f"no wrong fd registered {label}")

        # A socketpair whose other end is already closed: accepted or refused, but the device ends up free.
        a, b = socket.socketpair()
        b.close()
        name, _ = g.expect("Register(a socket whose peer is closed)", {OK, INVALID_ARGUMENT}, dev, cd, "Register", "h",
                           (dbus.types.UnixFd(a),))
        print(f"# {label}: Register(a socket whose peer is closed) answered {name}", flush=True)
        a.close()
        g.check(spin(5, lambda: str(prop(bus, dev, cd, "Owner")) == ""), "a dead socket does not keep the device")

        # Ownership: Busy for a second Register (also from the owner), NotOwner for others' Unregister.
        mine, theirs = socket.socketpair()
        g.expect("Register", OK, dev, cd, "Register", "h", (dbus.types.UnixFd(theirs),))
        theirs.close()
        g.check(str(prop(bus, dev, cd, "Owner")) == bus.get_unique_name(), "Owner is the registering connection")
        x, y = socket.socketpair()
        g.expect("Register by another client", BUSY, dev, cd, "Register", "h", (dbus.types.UnixFd(y),), conn=other)
        g.expect("Register again by the owner", BUSY, dev, cd, "Register", "h", (dbus.types.UnixFd(y),))
        g.expect("Register(garbage fd) while owned", {BUSY, INVALID_ARGUMENT}, dev, cd, "Register", "h",
                 (dbus.types.UnixFd(os.open("/dev/null", os.O_RDONLY)),))
        x.close()
        y.close()
        g.expect("Unregister by a non-owner", NOT_OWNER, dev, cd, "Unregister", conn=other)
        g.check(str(prop(bus, dev, cd, "Owner")) == bus.get_unique_name(), "a non-owner's Unregister changes nothing")
        g.expect("Unregister by the owner", OK, dev, cd, "Unregister")
        g.expect("Unregister twice", NOT_OWNER, dev, cd, "Unregister")
        g.check(str(prop(bus, dev, cd, "Owner")) == "", "Unregister frees the device")
        mine.settimeout(5)
        try:
            while mine.recv(65536):  # guest output sent before Unregister, then end of file
                pass
            eof = True
        except OSError:
            eof = False
        g.check(eof, "Unregister closes the emulator's end of the socket")
        mine.close()

        # An owner that leaves the bus (keeping its socket open) frees the device.
        leaver = dbus.bus.BusConnection(pbus.address)
        mine, theirs = socket.socketpair()
        g.expect("Register, then leave the bus", OK, dev, cd, "Register", "h", (dbus.types.UnixFd(theirs),), conn=leaver)
        theirs.close()
        leaver.close()
        g.check(spin(5, lambda: str(prop(bus, dev, cd, "Owner")) == ""), "an owner leaving the bus frees the device")
        mine.close()
        g.done(f"Chardev1 on {label}: {n_bad} kinds of wrong fd answer InvalidArgument; Busy, NotOwner, leaving frees it")

    # ---- A registered serial0 client that never reads does not slow the guest ----
    mine, theirs = socket.socketpair()
    bus.call_blocking(SERVICE, SERIAL, cd, "Register", "h", (dbus.types.UnixFd(theirs),), timeout=CALL_TIMEOUT)
    theirs.close()
    t0 = time.monotonic()
    ok = vm.command("seq 1 30000 | tail -c 2000000; echo flood-$((1+1))-done", r"flood-2-done\r?\n", 60) is not None
    tap.check(ok and echo("after-flood"), f"a serial0 client that never reads does not stall ~170 KB of guest output "
                                          f"({time.monotonic() - t0:.1f} s)", vm.tail(300))
    mine.close()
    spin(5, lambda: str(prop(bus, SERIAL, cd, "Owner")) == "")

    # ---- What libdbus will not send: fd indices past the fds carried, calls without an interface ----
    g = Group(bus)
    raw = RawBus(pbus.address, timeout=CALL_TIMEOUT)

    def counted(*args, **kw):
        global calls
        calls += 1
        g.n += 1
        res = raw_call(raw, *args, **kw)
        print(f"# raw {args[3]}({args[4] if len(args) > 4 else ''}) on {args[1]}: {res[0]}", flush=True)
        return res
    u32 = lambda v: struct.pack("<I", v)  # noqa: E731
    for dev in (SERIAL, AGENT):
        res = counted(SERVICE, dev, cd, "Register", "h", u32(0))
        g.check(res[0] in (INVALID_ARGS, INVALID_ARGUMENT, INCONSISTENT),
                f"Register with fd index 0 and no fds attached answered {res}")
        a, b = socket.socketpair()
        res = counted(SERVICE, dev, cd, "Register", "h", u32(1), fds=[b.fileno()])
        g.check(res[0] in (INVALID_ARGS, INVALID_ARGUMENT, INCONSISTENT),
                f"Register with fd index 1 and one fd attached answered {res}")
        res = counted(SERVICE, dev, cd, "Register", "h", u32(0xffffffff), fds=[b.fileno()])
        g.check(res[0] in (INVALID_ARGS, INVALID_ARGUMENT, INCONSISTENT),
                f"Register with fd index 0xffffffff answered {res}")
        res = counted(SERVICE, dev, cd, "Register", "h", u32(0), fds=[b.fileno()])
        g.check(res[0] == OK, f"a raw client can Register properly ({res})")
        res = counted(SERVICE, dev, cd, "Unregister")
        g.check(res[0] == OK, f"and Unregister ({res})")
        a.close()
        b.close()
    for iface_less in (("Pause", "", b""), ("Press", "u", u32(KEY_A)), ("GetScrollback", "", b"")):
        res = counted(SERVICE, SERIAL if iface_less[0] == "GetScrollback" else PATH, None, *iface_less)
        g.check(res[0] in (OK, UNKNOWN_METHOD, UNKNOWN_OBJECT), f"{iface_less[0]} without an interface answered {res}")
    # No reply wanted: the emulator must not get stuck on it.
    raw.send(SERVICE, PATH, "org.orrery.Machine1", "Resume", flags=1)
    raw.send(SERVICE, PATH, "org.orrery.Keyboard1", "Press", "u", u32(0), flags=1)
    res = counted(SERVICE, PATH, "org.freedesktop.DBus.Peer", "Ping")
    g.check(res[0] == OK, f"Ping after NO_REPLY_EXPECTED calls ({res})")
    raw.close()
    g.check(str(prop(bus, SERIAL, cd, "Owner")) == "" and str(prop(bus, AGENT, cd, "Owner")) == "", "both devices free")
    g.done("raw messages: fd index past the fds carried is refused, calls without an interface answered")

    # ---- 2000 calls at once from four connections, not waiting for replies ----
    conns = [dbus.bus.BusConnection(pbus.address) for _ in range(4)]
    fb_fds = []
    mix = [  # (path, interface, method, signature, args, accepted answers)
        (PATH, PROPS, "Get", "ss", ("org.orrery.Machine1", "State"), {OK}),
        (PATH, "org.orrery.Keyboard1", "Press", "u", (KEY_A,), {OK, BUSY}),
        (PATH, "org.orrery.Keyboard1", "Release", "u", (KEY_A,), {OK, BUSY}),
        (PATH, "org.orrery.Mouse1", "RelMotion", "ii", (3, -3), {OK, BUSY}),
        (PATH, "org.orrery.Mouse1", "SetAbsPosition", "uu", (U32_MAX, 7), {OK, BUSY}),
        (PATH, "org.orrery.Mouse1", "Wheel", "ii", (INT32_MIN, 0), {INVALID_ARGUMENT}),
        (PATH, "org.orrery.Keyboard1", "Press", "u", (0xffffffff,), {INVALID_ARGUMENT}),
        (PATH, "org.orrery.Keyboard1", "Press", "s", ("A",), {INVALID_ARGS}),
        (CONSOLE, "org.orrery.Console1", "Watch", "", (), {OK}),
        (CONSOLE, PROPS, "GetAll", "s", ("org.orrery.Console1",), {OK}),
        (CONSOLE, "org.orrery.Console1", "GetFramebuffer", "", (), {OK}),
        (CONSOLE, "org.orrery.Console1", "Unwatch", "", (), {OK}),
        (SERIAL, "org.orrery.Chardev1", "GetScrollback", "", (), {OK}),
        (SERIAL, "org.orrery.Chardev1", "Unregister", "", (), {NOT_OWNER}),
        (AGENT, PROPS, "Set", "ssv", ("org.orrery.Chardev1", "Owner", dbus.String("me", variant_level=1)), {READ_ONLY}),
        (PATH, PROPS, "Get", "ss", ("org.orrery.Machine1", "Nope"), {UNKNOWN_PROPERTY}),
        (PATH, "org.orrery.Machine1", "Pause", "", (), {OK}),
        (PATH, "org.orrery.Machine1", "Resume", "", (), {OK}),
        (PATH, "org.orrery.Machine1", "Nope", "", (), {UNKNOWN_METHOD}),
        ("/org/orrery/VM", "org.freedesktop.DBus.ObjectManager", "GetManagedObjects", "", (), {OK}),
        (PATH, "org.freedesktop.DBus.Introspectable", "Introspect", "", (), {OK}),
    ]
    answers, wrong = {}, []

    def on_reply(i, want, *value):
        answers[i] = OK
        if OK not in want:
            wrong.append(f"call {i}: success, expected {want}")
        for v in value:
            if isinstance(v, tuple) and v and isinstance(v[0], dbus.types.UnixFd):
                fb_fds.append(v[0].take())
            elif isinstance(v, dbus.types.UnixFd):
                fb_fds.append(v.take())

    def on_error(i, want, e):
        answers[i] = e.get_dbus_name()
        if e.get_dbus_name() not in want:
            wrong.append(f"call {i}: {e.get_dbus_name()} ({e.get_dbus_message()[:120]}), expected {want}")

    N = 2000
    t0 = time.monotonic()
    for i in range(N):
        path, iface, method, sig, args, want = mix[i % len(mix)]
        conns[i % len(conns)].call_async(SERVICE, path, iface, method, sig, args,
                                         reply_handler=lambda *v, i=i, want=want: on_reply(i, want, *v),
                                         error_handler=lambda e, i=i, want=want: on_error(i, want, e),
                                         timeout=60)
    sent = time.monotonic() - t0
    spin(90, lambda: len(answers) == N)
    took = time.monotonic() - t0
    calls += N
    no_reply = sum(1 for a in answers.values() if a == D + "NoReply")
    counts = {}
    for a in answers.values():
        counts[a.replace(D, "").replace(E, "")] = counts.get(a.replace(D, "").replace(E, ""), 0) + 1
    tap.check(len(answers) == N and no_reply == 0 and not wrong,
              f"2000 concurrent calls from 4 connections all answered ({len(answers)}/{N} in {took:.1f} s, "
              f"sent in {sent:.2f} s): {dict(sorted(counts.items()))}",
              "\n".join(wrong[:30]) + f"\nno reply: {N - len(answers)}, NoReply errors: {no_reply}")
    for fd in fb_fds:
        os.close(fd)
    bus.call_blocking(SERVICE, PATH, "org.orrery.Machine1", "Resume", "", (), timeout=CALL_TIMEOUT)
    for c in conns:
        c.close()
    tap.check(spin(5, lambda: int(prop(bus, CONSOLE, "org.orrery.Console1", "Watchers")) == 0),
              "the burst's watchers are gone with their connections")

    # ---- The VM survived all of it ----
    vm.command("kill %1; echo probe-stopped", r"probe-stopped\r?\n", 30)
    tap.check(str(prop(bus, PATH, "org.orrery.Machine1", "State")) == "running", "State is still running")
    tap.check(echo("still-alive"), "the guest still answers a command on its serial console", vm.tail(600))
    tap.check(vm.proc.poll() is None, "orrery-vm is still running", vm.tail(600))

    # ---- Reset (while paused: it stays paused), then Quit ----
    bus.call_blocking(SERVICE, PATH, "org.orrery.Machine1", "Pause", "", (), timeout=CALL_TIMEOUT)
    mark = len(vm.output)
    name, _ = outcome(bus, PATH, "org.orrery.Machine1", "Reset")
    tap.check(name == OK and str(prop(bus, PATH, "org.orrery.Machine1", "State")) == "paused",
              f"Reset while paused answers {name} and the VM stays paused")
    bus.call_blocking(SERVICE, PATH, "org.orrery.Machine1", "Resume", "", (), timeout=CALL_TIMEOUT)
    tap.check(vm.wait_for(READY, BOOT_TIMEOUT, since=mark) is not None and echo("rebooted"),
              "after Reset and Resume the guest boots again and answers", vm.tail(600))
    # A count, not a check: every call above was already checked for its answer by outcome()/done().
    print(f"# {calls} calls in {time.monotonic() - t_start:.1f} s", flush=True)
    name, _ = outcome(bus, PATH, "org.orrery.Machine1", "Quit")
    code = vm.wait_exit(30)
    tap.check(name == OK and code == 0, f"Quit answers {name} and the emulator exits {code}", vm.tail(600))
finally:
    vm.kill()
    pbus.stop()
tap.finish()

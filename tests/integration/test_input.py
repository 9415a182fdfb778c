#!/usr/bin/env python3
"""Keyboard1, Mouse1 and the power key: input sent over the bus reaches the guest as evdev events."""
import os
import shutil
import signal
import socket
import sys
import tempfile
import time

import dbus
import dbus.mainloop.glib

sys.path.insert(0, os.path.dirname(__file__))
from orrery_test import BOOT_TIMEOUT, READY, PrivateBus, Tap, Vm  # noqa: E402

NAME = "inputtest"
SERVICE = f"org.orrery.VM.{NAME}"
PATH = f"/org/orrery/VM/{NAME}"
WIDTH, HEIGHT = 640, 480
KEY_A, KEY_LEFTCTRL, KEY_LEFTALT, KEY_DELETE = 30, 29, 56, 111
BTN_LEFT = 0x110
EV_KEY, EV_REL, EV_ABS = 1, 2, 3

dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
tap = Tap()
pbus = PrivateBus()


def boot(*extra):
    vm = Vm("--display", f"{WIDTH}x{HEIGHT}", *extra, name=NAME, bus=pbus.address)
    if not tap.check(vm.wait_for(READY, BOOT_TIMEOUT) is not None, "the guest reaches ready", vm.tail()):
        vm.kill()
        tap.finish()
    return vm


def expect_error(call, name, what):
    try:
        call()
        tap.check(False, f"{what} answers {name}")
    except dbus.DBusException as e:
        tap.check(e.get_dbus_name() == name, f"{what} answers {name}", e.get_dbus_name())


def event(vm, dev_type, code, value, timeout=20):
    return vm.wait_for(rf"orrery-probe: event (\w+) type={dev_type} code={code} value={value}\r?\n", timeout)


vm = boot()
try:
    bus = dbus.bus.BusConnection(pbus.address)
    obj = bus.get_object(SERVICE, PATH)
    kbd = dbus.Interface(obj, "org.orrery.Keyboard1")
    mouse = dbus.Interface(obj, "org.orrery.Mouse1")
    props = dbus.Interface(obj, "org.freedesktop.DBus.Properties")
    tap.check(bool(props.Get("org.orrery.Mouse1", "IsAbsolute")), "IsAbsolute once the guest drives the tablet")

    m = vm.command("orrery-guest-probe events &", r"orrery-probe: listening (\d+) devices", 30)
    tap.check(m is not None and int(m.group(1)) >= 2, "the probe listens on the keyboard and the tablet", vm.tail())

    kbd.Press(KEY_A)
    kbd.Release(KEY_A)
    tap.check(event(vm, EV_KEY, KEY_A, 1) is not None and event(vm, EV_KEY, KEY_A, 0) is not None,
              "Keyboard1.Press/Release(KEY_A) reach the guest as EV_KEY 30 press and release", vm.tail(600))

    mouse.SetAbsPosition(100, 200)
    tap.check(event(vm, EV_ABS, 0, 100) is not None and event(vm, EV_ABS, 1, 200) is not None,
              "SetAbsPosition(100, 200) arrives as ABS_X 100, ABS_Y 200", vm.tail(600))
    mouse.SetAbsPosition(100000, 5)
    tap.check(event(vm, EV_ABS, 0, WIDTH - 1) is not None,
              f"a position beyond the screen is clamped to its edge (ABS_X {WIDTH - 1})", vm.tail(600))
    mouse.RelMotion(-39, 0)
    tap.check(event(vm, EV_ABS, 0, WIDTH - 40) is not None, "RelMotion moves from the current position", vm.tail(600))
    mouse.Press(BTN_LEFT)
    mouse.Release(BTN_LEFT)
    tap.check(event(vm, EV_KEY, BTN_LEFT, 1) is not None and event(vm, EV_KEY, BTN_LEFT, 0) is not None,
              "Mouse1.Press/Release(BTN_LEFT) reach the guest", vm.tail(600))

    # A client that leaves the bus holding a key and a button (a crashed viewer) leaves nothing stuck.
    # (The two devices' events may print in either order, so each is looked for from the same point.)
    gone = dbus.bus.BusConnection(pbus.address)
    gone_obj = gone.get_object(SERVICE, PATH)
    since = vm.mark
    dbus.Interface(gone_obj, "org.orrery.Keyboard1").Press(KEY_LEFTCTRL)
    dbus.Interface(gone_obj, "org.orrery.Mouse1").Press(BTN_LEFT)
    pressed = all(vm.wait_for(rf"type={EV_KEY} code={c} value=1\r?\n", 20, since=since) for c in (KEY_LEFTCTRL, BTN_LEFT))
    gone.close()
    released = all(vm.wait_for(rf"type={EV_KEY} code={c} value=0\r?\n", 20, since=since)
                   for c in (KEY_LEFTCTRL, BTN_LEFT))
    tap.check(pressed and released,
              "keys and buttons held by a client that leaves the bus are released in the guest", vm.tail(600))
    mouse.Wheel(2, 0)
    tap.check(event(vm, EV_REL, 8, 2) is not None, "Wheel(2, 0) arrives as REL_WHEEL 2", vm.tail(600))

    expect_error(lambda: kbd.Press(0), "org.orrery.Error.InvalidArgument", "Keyboard1.Press(0)")
    expect_error(lambda: kbd.Press(0x2ff), "org.orrery.Error.InvalidArgument", "a key the keyboard lacks")
    expect_error(lambda: kbd.Press(2 ** 32 - 1), "org.orrery.Error.InvalidArgument", "Keyboard1.Press(0xffffffff)")
    expect_error(lambda: mouse.Press(KEY_A), "org.orrery.Error.InvalidArgument", "a keyboard key as a mouse button")
    expect_error(lambda: mouse.Wheel(100000, 0), "org.orrery.Error.InvalidArgument", "an absurd wheel step")

    # A flood of input must not stall the guest: it keeps answering on the serial console.
    t0 = time.monotonic()
    refused = 0
    for _ in range(500):
        for call in (lambda: kbd.Press(KEY_A), lambda: kbd.Release(KEY_A), lambda: mouse.RelMotion(1, 1)):
            try:
                call()
            except dbus.DBusException as e:
                if e.get_dbus_name() != "org.orrery.Error.Busy":
                    raise
                refused += 1
    flood = time.monotonic() - t0
    m = vm.command("echo after-$((1+1))-flood", r"after-2-flood\r?\n", 60)
    tap.check(m is not None, f"after 1500 input calls in {flood:.1f} s ({refused} refused as Busy) the guest still answers")

    # Reset: the guest's drivers go away and come back; IsAbsolute follows, with PropertiesChanged.
    from gi.repository import GLib
    seen = []
    bus.add_signal_receiver(lambda iface, changed, inval: seen.append(bool(changed["IsAbsolute"]))
                            if iface == "org.orrery.Mouse1" and "IsAbsolute" in changed else None,
                            "PropertiesChanged", "org.freedesktop.DBus.Properties", SERVICE, PATH)
    vm.command("kill %1", r"\n", 10)
    dbus.Interface(obj, "org.orrery.Machine1").Reset()
    ready = vm.wait_for(READY, BOOT_TIMEOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and seen[-1:] != [True]:
        GLib.MainContext.default().iteration(False)
        time.sleep(0.01)
    tap.check(ready is not None and seen[:1] == [False] and seen[-1:] == [True],
              f"after Reset the guest boots again and IsAbsolute goes false, then true ({seen})", vm.tail(300))

    # Ctrl-Alt-Del on the keyboard: the guest powers off cleanly.
    for code in (KEY_LEFTCTRL, KEY_LEFTALT, KEY_DELETE):
        kbd.Press(code)
    for code in (KEY_DELETE, KEY_LEFTALT, KEY_LEFTCTRL):
        kbd.Release(code)
    code = vm.wait_exit(60)
    tap.check(code == 0 and "reboot: Power down" in vm.output, f"ctrl-alt-del powers the guest off cleanly (exit {code})",
              vm.tail(800))
finally:
    vm.kill()

vm = boot()
try:
    bus = dbus.bus.BusConnection(pbus.address)
    dbus.Interface(bus.get_object(SERVICE, PATH), "org.orrery.Machine1").PowerDown()
    code = vm.wait_exit(60)
    tap.check(code == 0 and "reboot: Power down" in vm.output, f"Machine1.PowerDown shuts the guest down cleanly (exit {code})",
              vm.tail(800))
finally:
    vm.kill()

vm = boot()
try:
    vm.proc.send_signal(signal.SIGTERM)
    code = vm.wait_exit(60)
    tap.check(code == 0 and "reboot: Power down" in vm.output, f"SIGTERM presses the power key: clean shutdown (exit {code})",
              vm.tail(800))
finally:
    vm.kill()

# A guest that cannot answer the power key (here: paused) is stopped after
# orrery-vm's deadline, and the exit status says it was not a clean stop.
vm = boot()
try:
    machine = dbus.Interface(dbus.bus.BusConnection(pbus.address).get_object(SERVICE, PATH), "org.orrery.Machine1")
    machine.Pause()
    vm.proc.send_signal(signal.SIGTERM)
    code = vm.wait_exit(60)
    vm.err_reader.join(10)
    tap.check(code == 1 and "did not shut down within 10 s" in vm.stderr,
              f"SIGTERM to a guest that never powers off: stopped after 10 s, exit 1 with a reason (exit {code})",
              vm.stderr[-400:])
finally:
    vm.kill()

# stop-timeout in the VM's configuration sets that deadline, and orrery-vm
# asks the service manager for as long (EXTEND_TIMEOUT_USEC), so that a unit's
# TimeoutStopSec= does not kill it first. The notify socket is the test's own.
tmp = tempfile.mkdtemp(prefix="orrery-input-")
conf = os.path.join(tmp, "vm.conf")
with open(conf, "w") as f:
    f.write("stop-timeout = 3\n")
notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
notify.bind(os.path.join(tmp, "notify"))
notify.settimeout(1)
vm = Vm("--display", f"{WIDTH}x{HEIGHT}", "--config", conf, name=NAME, bus=pbus.address,
        env=dict(os.environ, NOTIFY_SOCKET=os.path.join(tmp, "notify")))
try:
    if tap.check(vm.wait_for(READY, BOOT_TIMEOUT) is not None, "the guest reaches ready", vm.tail()):
        machine = dbus.Interface(dbus.bus.BusConnection(pbus.address).get_object(SERVICE, PATH), "org.orrery.Machine1")
        machine.Pause()
        t0 = time.monotonic()
        vm.proc.send_signal(signal.SIGTERM)
        code = vm.wait_exit(60)
        took = time.monotonic() - t0
        vm.err_reader.join(10)
        tap.check(code == 1 and "did not shut down within 3 s" in vm.stderr and took >= 3,
                  f"stop-timeout = 3: a guest that never powers off is stopped after 3 s, exit 1 (exit {code}, "
                  f"{took:.1f} s)", vm.stderr[-400:])
        messages = []
        while True:
            try:
                messages.append(notify.recv(4096).decode(errors="replace"))
            except OSError:
                break
        stopping = [m for m in messages if "STOPPING=1" in m]
        tap.check(len(stopping) == 1 and f"EXTEND_TIMEOUT_USEC={(3 + 5) * 1000000}" in stopping[0],
                  "on SIGTERM it asks the service manager for the guest's 3 s and 5 s to stop hard", messages)
finally:
    vm.kill()
    notify.close()
    shutil.rmtree(tmp, ignore_errors=True)
    pbus.stop()
tap.finish()

#!/usr/bin/env python3
"""A storm of bus clients against orrery-vm under LeakSanitizer.

orrery-vm (built with -Db_sanitize=address, so LeakSanitizer runs when it
exits) serves a spinning bare-metal payload on a private bus. ROUNDS
rounds of clients each take what the VM keeps per client: a Console1
watch, the framebuffer fd, a Chardev1 registration holding a socket, the
serial scrollback, a Pause/Resume, Properties and ObjectManager calls;
then each client disconnects without undoing anything (as a killed client
does), one in two before reading its last reply. Machine1.Quit then ends
the VM: it must exit 0 with no LeakSanitizer report, so any allocation a
client left behind fails the test.

Without AddressSanitizer (ORRERY_VM_ASAN unset) there is no leak checker
to ask: meson defines the test only in such a build, and run by hand
elsewhere it says so as a skip.
"""
import os
import socket
import struct
import sys
import tempfile
import time

import dbus
import dbus.lowlevel

sys.path.insert(0, os.path.dirname(__file__))
from orrery_test import PrivateBus, Tap, Vm  # noqa: E402

NAME = "leakstorm"
SERVICE = f"org.orrery.VM.{NAME}"
PATH = f"/org/orrery/VM/{NAME}"
ROUNDS = int(os.environ.get("ORRERY_LEAK_ROUNDS", "40"))
SPIN = struct.pack("<I", 0x0000006F)  # jal x0, 0: the hart spins in place


def payloads(tmp):
    """A firmware that spins, and a 'kernel' with a RISC-V Image header that the firmware never enters."""
    bios = os.path.join(tmp, "spin.bin")
    kernel = os.path.join(tmp, "Image")
    with open(bios, "wb") as f:
        f.write(SPIN)
    header = bytearray(64)
    header[0:4] = SPIN
    struct.pack_into("<Q", header, 16, 4096)
    header[56:60] = b"RSC\x05"
    with open(kernel, "wb") as f:
        f.write(bytes(header) + bytes(4096 - 64))
    return bios, kernel


def wait_for_name(address, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = dbus.bus.BusConnection(address)
        try:
            if conn.name_has_owner(SERVICE):
                return True
        finally:
            conn.close()
        time.sleep(0.1)
    return False


def one_client(address, rnd):
    conn = dbus.bus.BusConnection(address)
    obj = conn.get_object(SERVICE, PATH)
    console = conn.get_object(SERVICE, f"{PATH}/Console/0")
    serial = conn.get_object(SERVICE, f"{PATH}/Chardev/serial0")
    obj.GetAll("org.orrery.Machine1", dbus_interface="org.freedesktop.DBus.Properties")
    conn.get_object(SERVICE, "/org/orrery/VM").GetManagedObjects(dbus_interface="org.freedesktop.DBus.ObjectManager")
    console.Watch(dbus_interface="org.orrery.Console1")
    fb = console.GetFramebuffer(dbus_interface="org.orrery.Console1")
    os.close(fb[0].take())
    serial.GetScrollback(dbus_interface="org.orrery.Chardev1")
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        serial.Register(dbus.types.UnixFd(theirs.fileno()), dbus_interface="org.orrery.Chardev1")
    except dbus.DBusException:
        pass  # another client of this round holds the port: Busy is the contract's answer
    theirs.close()
    obj.Pause(dbus_interface="org.orrery.Machine1")
    if rnd % 2:
        # The last call's reply is never read: the VM answers a peer that has gone.
        conn.send_message(dbus.lowlevel.MethodCallMessage(SERVICE, PATH, "org.orrery.Machine1", "Resume"))
    else:
        obj.Resume(dbus_interface="org.orrery.Machine1")
    return conn, ours


def main():
    tap = Tap()
    if not os.environ.get("ORRERY_VM_ASAN"):
        print("1..0 # SKIP orrery-vm is not built with -Db_sanitize=address: no LeakSanitizer to ask")
        return 0
    tmp = tempfile.mkdtemp(prefix="orrery-leak-")
    bios, kernel = payloads(tmp)
    bus = PrivateBus()
    env = dict(os.environ)
    # Leaks are the point here; everything else about ASan stays as the suite sets it.
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=1").lstrip(":")
    vm = Vm("--bios", bios, "--kernel", kernel, "--memory", "64M", "--display", "640x480",
            name=NAME, bus=bus.address, env=env)
    try:
        tap.check(wait_for_name(bus.address), f"{SERVICE} appears on the bus", vm.tail())
        for rnd in range(ROUNDS):
            clients = [one_client(bus.address, rnd) for _ in range(3)]
            for conn, sock in clients:
                sock.close()
                conn.close()
        tap.check(vm.proc.poll() is None, f"orrery-vm still runs after {ROUNDS} rounds of 3 clients that "
                  "disconnect holding watches, fds and registrations", vm.tail())
        conn = dbus.bus.BusConnection(bus.address)
        conn.get_object(SERVICE, PATH).Quit(dbus_interface="org.orrery.Machine1")
        conn.close()
        code = vm.wait_exit(timeout=120)
        vm.err_reader.join(timeout=60)  # LeakSanitizer's report is the last thing on stderr
        tap.check(code == 0, f"Quit ends orrery-vm with status 0 (got {code})", vm.tail())
        tap.check("LeakSanitizer" not in vm.stderr, "LeakSanitizer reports no leak at exit", vm.stderr[-4000:])
    finally:
        if vm.proc.poll() is None:
            vm.kill()
        bus.stop()
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())

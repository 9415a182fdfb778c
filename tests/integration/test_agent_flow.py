#!/usr/bin/env python3
"""The guest agent's port after a save taken while its client was behind.

The agent's port is flow-controlled: a client that does not read throttles
the device, and the guest agent's write blocks until the client catches up.
The throttle is saved with the VM. A VM saved in that state and restored in
a new process must let the agent's output flow to the next client (before,
the restored device stayed throttled for good: the agent never answered
again). The guest agent's reply to a 1 MiB guest-file-read of /dev/zero is
what fills the port.
"""
import os
import re
import shutil
import socket
import sys
import tempfile
import time

import dbus

sys.path.insert(0, os.path.dirname(__file__))
from orrery_test import BOOT_TIMEOUT, PrivateBus, READY, Tap, Vm, poll  # noqa: E402

NAME = "agentflow"
SERVICE = f"org.orrery.VM.{NAME}"
PATH = f"/org/orrery/VM/{NAME}"
TIMEOUT = 120  # upper bounds only: catches hangs on a loaded machine
# More of the answer than the client's socket holds: the rest waits in the chardev, which throttles the port
# above 64 KiB and never lets go while the client does not read.
BACKLOG = 60000

tap = Tap()
tmp = tempfile.mkdtemp(prefix="orrery-agent-flow-")
pbus = PrivateBus()


def register(bus, sndbuf=None):
    """A socket pair whose far end the VM's guest_agent chardev takes; returns our end."""
    chardev = dbus.Interface(bus.get_object(SERVICE, f"{PATH}/Chardev/guest_agent"), "org.orrery.Chardev1")
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    if sndbuf:
        # Small buffers: the VM's output waits in its own ring at once.
        theirs.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        mine.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, sndbuf)
    chardev.Register(dbus.types.UnixFd(theirs.fileno()))
    theirs.close()
    mine.settimeout(1)
    return mine


def read_until(sock, pattern, seconds, keep=1 << 16):
    """Reads until pattern matches the data (only its last 'keep' bytes are kept); the match or None."""
    data = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        m = re.search(pattern, data)
        if m:
            return m
        try:
            chunk = sock.recv(1 << 16)
        except socket.timeout:
            continue
        if not chunk:
            return None
        data = (data + chunk)[-keep:]
    return re.search(pattern, data)


def answer_backlog(chardev):
    """Whether the last 64 KiB of the agent's output (the scrollback) are all the answer's base64 of zeroes."""
    data = bytes(chardev.GetScrollback())
    return len(data) >= BACKLOG and data[-BACKLOG:] == b"A" * BACKLOG


vms = []
try:
    vm = Vm("--display", "none", name=NAME, bus=pbus.address)
    vms.append(vm)
    if not tap.check(vm.wait_for(READY, BOOT_TIMEOUT) is not None, "the guest boots", vm.tail()):
        tap.finish()
    bus = dbus.bus.BusConnection(pbus.address)
    props = dbus.Interface(bus.get_object(SERVICE, f"{PATH}/Chardev/guest_agent"), "org.freedesktop.DBus.Properties")
    tap.check(poll(lambda: bool(props.Get("org.orrery.Chardev1", "GuestOpen")), TIMEOUT),
              "the guest agent has its port open")

    slow = register(bus, sndbuf=4096)
    slow.sendall(b'\xff{"execute":"guest-sync-delimited","arguments":{"id":7}}\n')
    tap.check(read_until(slow, rb'\xff\{"return": ?7\}', TIMEOUT) is not None, "the guest agent answers")
    slow.sendall(b'{"execute":"guest-file-open","arguments":{"path":"/dev/zero","mode":"r"}}\n')
    m = read_until(slow, rb'\{"return": ?(\d+)\}', TIMEOUT)
    tap.check(m is not None, "guest-file-open of /dev/zero gives a handle")
    handle = int(m.group(1)) if m else 0
    # A 1.4 MB answer that nobody reads: the port throttles, and the agent's write blocks.
    slow.sendall(b'{"execute":"guest-file-read","arguments":{"handle":%d,"count":1048576}}\n' % handle)
    chardev = dbus.Interface(bus.get_object(SERVICE, f"{PATH}/Chardev/guest_agent"), "org.orrery.Chardev1")
    tap.check(poll(lambda: answer_backlog(chardev), TIMEOUT, 0.5),
              "the answer piles up behind the client that does not read")

    saved = os.path.join(tmp, "vm.save")
    machine = dbus.Interface(bus.get_object(SERVICE, PATH), "org.orrery.Machine1")
    with open(saved, "wb") as f:
        machine.SaveAndQuit(dbus.types.UnixFd(f))
    tap.check(vm.wait_exit(TIMEOUT) == 0, "SaveAndQuit with the agent's port throttled", vm.tail())
    slow.close()
    bus.close()

    vm2 = Vm("--display", "none", "--restore", saved, name=NAME, bus=pbus.address)
    vms.append(vm2)
    bus = dbus.bus.BusConnection(pbus.address)
    tap.check(poll(lambda: bus.name_has_owner(SERVICE), TIMEOUT), "the restored VM is on the bus", vm2.tail())
    reader = register(bus)
    # The rest of the 1.4 MB answer comes first; then the agent reads the sync and answers it.
    reader.sendall(b'\xff{"execute":"guest-sync-delimited","arguments":{"id":4242}}\n')
    tap.check(read_until(reader, rb'\xff\{"return": ?4242\}', TIMEOUT) is not None,
              "after the restore the agent's output flows again: it answers a new client", vm2.tail())
    reader.close()
    bus.close()
finally:
    for v in vms:
        v.kill()
    pbus.stop()
    shutil.rmtree(tmp, ignore_errors=True)
tap.finish()

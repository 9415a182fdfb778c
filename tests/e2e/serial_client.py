"""The guest's serial console as a bus client sees it: Chardev1.Register on serial0 with a socketpair."""
import os
import re
import socket
import time

import dbus


class SerialClient:
    def __init__(self, bus_address, vm):
        self.bus = dbus.bus.BusConnection(bus_address)
        path = f"/org/orrery/VM/{vm}/Chardev/serial0"
        self.chardev = dbus.Interface(self.bus.get_object(f"org.orrery.VM.{vm}", path), "org.orrery.Chardev1")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.chardev.Register(dbus.types.UnixFd(theirs.fileno()), timeout=30)
        theirs.close()
        self.sock = ours
        self.sock.settimeout(0.2)
        self.buffer = b""

    def close(self):
        self.sock.close()
        self.bus.close()

    def send(self, text):
        self.sock.sendall(text.encode())

    def read_available(self):
        """What the guest printed since the last call (waits at most 0.2 s); b'' at EOF raises EOFError."""
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return b""
        if not data:
            raise EOFError("the VM closed the serial console")
        self.buffer += data
        return data

    def wait_for(self, pattern, timeout=60):
        """Waits for a regex in the output (a full line: end patterns with \\r?\\n); returns the match."""
        regex = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = regex.search(self.buffer)
            if m:
                self.buffer = self.buffer[m.end():]
                return m
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no {pattern!r} within {timeout} s; last output: {self.buffer[-400:]!r}")
            self.read_available()

    def command(self, cmd, pattern, timeout=60):
        """Types a shell command and waits for its output to match."""
        self.buffer = b""
        self.send(cmd + "\n")
        return self.wait_for(pattern, timeout)


def scrollback(bus_address, vm):
    bus = dbus.bus.BusConnection(bus_address)
    try:
        chardev = dbus.Interface(bus.get_object(f"org.orrery.VM.{vm}", f"/org/orrery/VM/{vm}/Chardev/serial0"),
                                 "org.orrery.Chardev1")
        return bytes(chardev.GetScrollback(timeout=10))
    finally:
        bus.close()


def wait_ready(bus_address, vm, timeout=120):
    """Whether the guest printed its ready marker, read from the scrollback as any late client would."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if b"orrery-guest: ready" in scrollback(bus_address, vm):
                return True
        except dbus.exceptions.DBusException:
            pass
        time.sleep(0.2)
    return False


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0

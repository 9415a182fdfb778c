"""What orrery-vnc's tests share: its log read line by line, a running
orrery-vnc, vnc-probe (libvncclient) driven through its stdin, and a raw
RFB client for the steps before authentication succeeds (no DES needed:
any 16 bytes are a wrong password)."""
import os
import re
import signal
import socket
import subprocess

from orrery_test import Lines, poll  # noqa: F401  (the tests put tests/integration on the path first)

VNC = os.environ["ORRERY_VNC"]
PROBE = os.environ["ORRERY_VNC_PROBE"]
TIMEOUT = 60  # generous: catches hangs only (sanitizer builds on a loaded machine are slow)


def wait_until(cond, timeout=TIMEOUT):
    return poll(cond, timeout, 0.1)


class Server:
    def __init__(self, name, bus, *args, listen="127.0.0.1:0", env=None):
        self.proc = subprocess.Popen([VNC, "--vm", name, "--bus", bus, "--listen", listen] + list(args),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env=env)
        self.log = Lines(self.proc.stderr)
        m = self.log.wait(r"listening on (\S+) \(VNC")
        self.address = m.group(1) if m else None

    def host_port(self):
        host, port = self.address.rsplit(":", 1)
        return host, int(port)

    def alive(self):
        return self.proc.poll() is None

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(TIMEOUT)


class Probe:
    def __init__(self, address, *args, dump_dir=None):
        self.dump_dir = dump_dir
        self.proc = subprocess.Popen([PROBE] + list(args) + [address], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        self.out = Lines(self.proc.stdout)
        m = self.out.wait(r"^(connected (\d+) (\d+)|error.*)$")
        self.connected = bool(m and m.group(1).startswith("connected"))
        self.size = (int(m.group(2)), int(m.group(3))) if self.connected else None

    def cmd(self, line, timeout=TIMEOUT):
        start = len(self.out.lines)
        try:
            self.proc.stdin.write((line + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            return None
        m = self.out.wait(r"^(ok.*|error.*|timeout|disconnected)$", timeout, start)
        return m.group(1) if m else None

    def info(self):
        r = self.cmd("info")
        m = re.match(r"ok (\d+) (\d+) (\d+)", r or "")
        return tuple(int(x) for x in m.groups()) if m else None

    def dump(self):
        path = os.path.join(self.dump_dir, f"dump-{self.proc.pid}.raw")
        r = self.cmd(f"dump {path}")
        m = re.match(r"ok (\d+) (\d+)", r or "")
        if not m:
            return None
        with open(path, "rb") as f:
            return int(m.group(1)), int(m.group(2)), f.read()

    def key(self, keysym, down):
        return self.cmd(f"key {keysym:#x} {1 if down else 0}") == "ok"

    def tap_key(self, keysym):
        return self.key(keysym, True) and self.key(keysym, False)

    def pointer(self, x, y, mask=0):
        return self.cmd(f"pointer {x} {y} {mask}") == "ok"

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b"quit\n")
                self.proc.stdin.flush()
            except BrokenPipeError:
                pass
            try:
                self.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError(f"EOF after {len(data)} of {n} bytes")
        data += chunk
    return data


def closed_by_peer(sock):
    """Reads until the peer ends the connection. Returns "eof" or "reset"; a
    socket.timeout (our own limit, not the server's doing) propagates."""
    try:
        while sock.recv(65536):
            pass
        return "eof"
    except ConnectionResetError:
        return "reset"


class RawClient:
    """RFB 3.8 by hand, up to the VNC authentication challenge."""

    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT)
        self.name = "%s:%d" % self.sock.getsockname()[:2]

    def to_challenge(self):
        recv_exact(self.sock, 12)
        self.sock.sendall(b"RFB 003.008\n")
        n = recv_exact(self.sock, 1)[0]
        types = recv_exact(self.sock, n)
        if 2 not in types:
            raise RuntimeError(f"no VNC authentication offered: {list(types)}")
        self.sock.sendall(b"\x02")
        return recv_exact(self.sock, 16)

    def send_response(self, response=b"\x00" * 16):
        self.sock.sendall(response)

    def result(self):
        """0 (accepted) or 1 (refused)."""
        return int.from_bytes(recv_exact(self.sock, 4), "big")

    def close(self):
        self.sock.close()

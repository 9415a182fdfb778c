"""Shared pieces of the integration tests: the TAP reporter (tests/orrery_tap.py) and a running VM.

A VM is orrery-vm started with a pipe as stdin (never /dev/null: tests must
not depend on it) and its serial console on stdout, which a reader thread
collects so tests can wait for lines with generous timeouts that only catch
hangs.
"""
import fcntl
import os
import pty
import re
import shutil
import signal
import socket
import subprocess
import sys
import termios
import threading
import time
import urllib.request

BUILD = os.environ.get("ORRERY_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
ORRERY_VM = os.environ.get("ORRERY_VM", os.path.join(BUILD, "emulator", "orrery-vm"))
READY = "orrery-guest: ready"
BOOT_TIMEOUT = float(os.environ.get("ORRERY_BOOT_TIMEOUT", "180"))

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from orrery_tap import Tap  # noqa: E402  (the tests import it from here)

__all__ = ["BOOT_TIMEOUT", "BUILD", "ORRERY_VM", "OPEN_BUS", "Lines", "OpenBus", "READY", "PrivateBus", "Pty", "Tap",
           "Vm", "Xvfb", "error_name", "fetch", "free_port", "interface_members", "poll"]


def free_port(kind=socket.SOCK_STREAM):
    """A port on 127.0.0.1 that was free a moment ago (for a host forward)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lines:
    """The lines of a stream (a process's stdout or stderr), collected by a thread as they come.

    wait() returns the first match at or after line 'start', or None once the
    stream closed or 'timeout' passed (a generous bound, against hangs);
    expect() is wait() for callers that cannot go on without the line.
    """

    def __init__(self, stream):
        self.lines = []
        self.cond = threading.Condition()
        self.closed = False
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream):
        for raw in iter(stream.readline, b""):
            with self.cond:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def wait(self, pattern, timeout=60, start=0):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines[start:]:
                    m = rx.search(line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    return None
                self.cond.wait(min(left, 0.5))

    def expect(self, pattern, timeout=60, start=0):
        m = self.wait(pattern, timeout, start)
        if m is None:
            raise TimeoutError(f"{pattern!r} not seen{' (the stream closed)' if self.closed else ''}: "
                               f"{self.lines[-5:]}")
        return m

    def last(self, pattern):
        """The match in the latest line that matches, or None."""
        rx = re.compile(pattern)
        with self.cond:
            for line in reversed(self.lines):
                m = rx.search(line)
                if m:
                    return m
        return None

    def count(self, pattern, start=0):
        rx = re.compile(pattern)
        with self.cond:
            return sum(1 for line in self.lines[start:] if rx.search(line))

    def tail(self, n=40):
        """The last n lines, for a failing check's detail."""
        with self.cond:
            return "\n".join(self.lines[-n:])

    text = tail


def fetch(port):
    """The guest's httpd page through a forward on 127.0.0.1:port; None while the connection is refused."""
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=30).read()
    except OSError:
        return None


def poll(cond, seconds, interval=0.2):
    """cond()'s first true value, tried until 'seconds' pass (a generous bound, against hangs); else its last."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(interval)
    return cond()


def error_name(call):
    """The D-Bus error name call() fails with, or None if it succeeds."""
    try:
        call()
    except Exception as e:
        if not hasattr(e, "get_dbus_name"):
            raise
        return e.get_dbus_name()
    return None


MKFS = shutil.which("mkfs.ext4") or "/sbin/mkfs.ext4"


def ext4_image(path, size):
    """A sparse raw image of 'size' bytes at 'path' with an empty ext4 file system, as the guest mounts it."""
    with open(path, "wb") as f:
        f.truncate(size)
    subprocess.run([MKFS, "-q", "-F", "-O", "^metadata_csum_seed", path], check=True)
    return path


def numbered_lines(n):
    """What the tests' guests write into a file line by line: 'line J of the file being written', J = 1..n."""
    return "".join(f"line {j} of the file being written\n" for j in range(1, n + 1))


def reachable_by_others(directory):
    """orrery-vm and the default guest copied into 'directory' (made 0755 on the way) for a run as
    another user (nobody, through setpriv): the clone may sit in a 0700 directory such as one from
    mktemp -d, out of that user's reach. Returns (orrery_vm, environment naming the guest's copy)."""
    os.makedirs(directory, exist_ok=True)
    os.chmod(directory, 0o755)
    vm = os.path.join(directory, "orrery-vm")
    shutil.copy2(ORRERY_VM, vm)
    guest_src = os.environ.get("ORRERY_GUEST_DIR") or os.path.join(os.path.dirname(os.path.abspath(ORRERY_VM)),
                                                                    "..", "guest")
    guest = os.path.join(directory, "guest")
    os.makedirs(guest, exist_ok=True)
    for name in ("Image", "initramfs.cpio.gz"):
        shutil.copy2(os.path.join(guest_src, name), os.path.join(guest, name))
    for path in (directory, guest, vm, *(os.path.join(guest, n) for n in os.listdir(guest))):
        os.chmod(path, 0o755 if os.path.isdir(path) or path == vm else 0o644)
    return vm, dict(os.environ, ORRERY_GUEST_DIR=guest)


class Vm:
    def __init__(self, *args, name="test", env=None, bus=None):
        cmd = [ORRERY_VM, "--name", name] + list(args) + (["--bus", bus] if bus else ["--no-bus"])
        self.output = ""
        self.lock = threading.Condition()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        self.stderr = ""
        self.reader = threading.Thread(target=self._read, args=(self.proc.stdout, False), daemon=True)
        self.reader.start()
        self.err_reader = threading.Thread(target=self._read, args=(self.proc.stderr, True), daemon=True)
        self.err_reader.start()
        self.mark = 0

    def _read(self, stream, is_err):
        while True:
            data = stream.read1(65536) if hasattr(stream, "read1") else stream.read(1)
            if not data:
                break
            with self.lock:
                if is_err:
                    self.stderr += data.decode(errors="replace")
                else:
                    self.output += data.decode(errors="replace")
                self.lock.notify_all()

    def wait_for(self, pattern, timeout=60, since=None):
        """Waits until 'pattern' (a regex) appears in the console output after 'since'; returns the match or None."""
        start = self.mark if since is None else since
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        with self.lock:
            while True:
                m = rx.search(self.output, start)
                if m:
                    self.mark = m.end()
                    return m
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None and not self.reader.is_alive():
                    return None
                self.lock.wait(min(left, 0.5))

    def send(self, text):
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def command(self, cmd, pattern, timeout=60):
        """Types a shell command on the serial console and waits for 'pattern' in what follows."""
        with self.lock:
            start = len(self.output)
        self.send(cmd + "\n")
        return self.wait_for(pattern, timeout, since=start)

    def wait_exit(self, timeout=60):
        """The exit status (None if still running after 'timeout'), with all of stdout and stderr read."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        # Exited, but its last lines may still be in the pipes: read them to EOF before callers look.
        self.reader.join(timeout)
        self.err_reader.join(timeout)
        return code

    def framebuffer(self):
        """The guest framebuffer, read through the emulator's memfd (no copy in the emulator)."""
        fd_dir = f"/proc/{self.proc.pid}/fd"
        for fd in os.listdir(fd_dir):
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target.startswith("/memfd:orrery-framebuffer"):
                with open(os.path.join(fd_dir, fd), "rb") as f:
                    return f.read()
        return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def tail(self, n=3000):
        with self.lock:
            return self.output[-n:] + ("\n[stderr]\n" + self.stderr[-2000:] if self.stderr else "")


def interface_members(iface_el):
    """A comparable description of an interface: methods with typed, directed args; signals; properties."""
    out = set()
    for el in iface_el:
        if el.tag == "method":
            args = tuple((a.get("name"), a.get("type"), a.get("direction", "in")) for a in el.findall("arg"))
            out.add(("method", el.get("name"), args))
        elif el.tag == "signal":
            args = tuple((a.get("name"), a.get("type")) for a in el.findall("arg"))
            out.add(("signal", el.get("name"), args))
        elif el.tag == "property":
            out.add(("property", el.get("name"), el.get("type"), el.get("access")))
    return out


class Pty:
    """A program on a pseudo-terminal, as a person at a terminal runs it (readline, Ctrl keys)."""

    def __init__(self, argv, env=None, timeout=60):
        self.timeout = timeout
        self.master, slave = pty.openpty()
        # Its own session with the pty as controlling terminal, so Ctrl-C is a signal as at a real terminal.
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True,
                                     preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        os.close(slave)
        self.output = ""
        self.mark = 0
        self.lock = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                data = b""
            with self.lock:
                if not data:
                    self.lock.notify_all()
                    return
                self.output += data.decode(errors="replace")
                self.lock.notify_all()

    def expect(self, pattern, timeout=None):
        """Waits for a regex in the output after the last match; returns the match or None."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        with self.lock:
            while True:
                m = rx.search(self.output, self.mark)
                if m:
                    self.mark = m.end()
                    return m
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.lock.wait(min(left, 0.5))

    def send(self, text):
        os.write(self.master, text.encode())

    def line(self, text, pattern, timeout=None):
        self.send(text + "\r")
        return self.expect(pattern, timeout)

    def tail(self, n=1500):
        with self.lock:
            return self.output[-n:]

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        try:
            os.close(self.master)
        except OSError:
            pass


class Xvfb:
    """A virtual X server on a display number of its own (-displayfd: tests may run side by side)."""

    def __init__(self):
        r, w = os.pipe()
        self.proc = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
                                     pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(w)
        with os.fdopen(r) as f:
            number = f.readline().strip()
        if not number:
            raise RuntimeError("Xvfb did not start")
        self.display = ":" + number

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class PrivateBus:
    """A dbus-daemon of our own, so tests never touch (or need) the user's session bus."""

    def __init__(self):
        self.proc = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                                     stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self.address = self.proc.stdout.readline().decode().strip()
        if not self.address:
            raise RuntimeError("dbus-daemon did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


# A bus that another user may join too, so that a test sees what the VM refuses that user.
# dbus-daemon's built-in limits, not session.conf's: with session.conf's (50000 pending replies per
# connection) a flood of calls saturates dbus-daemon itself, which then stops reading from every
# client, orrery-vm included, whatever orrery-vm does (bench/RESULTS-bus.md).
OPEN_BUS = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={path}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


class OpenBus:
    """A dbus-daemon with the OPEN_BUS policy, its socket in 'tmp' (made 0755: the other user must reach it)."""

    def __init__(self, tmp):
        os.chmod(tmp, 0o755)
        sock = os.path.join(tmp, "bus")
        conf = os.path.join(tmp, "bus.conf")
        with open(conf, "w") as f:
            f.write(OPEN_BUS.format(path=sock))
        self.proc = subprocess.Popen(["dbus-daemon", "--nofork", f"--config-file={conf}", "--print-address=1"],
                                     stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.address = self.proc.stdout.readline().decode().strip()
        os.chmod(sock, 0o777)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()

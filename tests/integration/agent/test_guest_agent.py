#!/usr/bin/env python3
"""orrery-guest-agent, the default guest's QGA agent, spoken to as a client would.

One VM on a private bus. The test registers one end of a socketpair on the
VM's Chardev1 "guest_agent" (the virtio port org.qemu.guest_agent.0) and
speaks QEMU's guest-agent protocol over it: the guest-sync-delimited
handshake, resynchronisation after garbage, the informational commands, a
binary file round trip through guest-file-*, error answers, guest-exec,
the request size limit, fsfreeze on the guest's ext2 RAM disk, and finally
a restart of the agent by init, and finally guest-shutdown, which must
power the VM off (orrery-vm exits 0).
"""
import base64
import hashlib
import json
import os
import random
import socket
import sys
import time

import dbus
import dbus.mainloop.glib

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from orrery_test import BOOT_TIMEOUT, READY, PrivateBus, Tap, Vm  # noqa: E402

NAME = "guestagent"
SERVICE = f"org.orrery.VM.{NAME}"
AGENT = f"/org/orrery/VM/{NAME}/Chardev/guest_agent"
TIMEOUT = 60.0          # an upper bound that only catches hangs
REQUEST_MAX = 16 << 20  # the agent's documented request size limit
WRITE_CHUNK = 48 * 1024  # guest-file-write chunk of the round trip
# guest-file-read chunk: its response (base64, 4/3 of it) stays under the
# emulator's 64 KiB guest-output buffer, which drops what does not fit.
READ_CHUNK = 32 * 1024

dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
tap = Tap()
pbus = PrivateBus()
vm = Vm("--display", "none", name=NAME, bus=pbus.address)


class Agent:
    """A QGA client on a socket: requests out, one response line (JSON) back per request."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no answer from the guest agent")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            raise TimeoutError("no answer from the guest agent") from None
        if not data:
            raise EOFError("the agent socket was closed")
        self.buf += data

    def send(self, data):
        self.sock.sendall(data)

    def line(self, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            self._fill(deadline)
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def response(self, timeout=TIMEOUT):
        return json.loads(self.line(timeout))

    def call(self, command, timeout=TIMEOUT, **arguments):
        req = {"execute": command}
        if arguments:
            req["arguments"] = arguments
        self.send(json.dumps(req).encode() + b"\n")
        return self.response(timeout)

    def sync_delimited(self, timeout=10.0):
        """0xFF, then guest-sync-delimited with a fresh id; discards everything up to the 0xFF that precedes the reply.

        Returns (id, response, bytes discarded before the sentinel)."""
        sync_id = random.randrange(1, 2 ** 62)
        self.send(b"\xff" + json.dumps({"execute": "guest-sync-delimited", "arguments": {"id": sync_id}}).encode() + b"\n")
        deadline = time.monotonic() + timeout
        discarded = b""
        while True:
            while b"\xff" not in self.buf:
                discarded += self.buf
                self.buf = b""
                self._fill(deadline)
            before, self.buf = self.buf.split(b"\xff", 1)
            discarded += before
            rsp = json.loads(self.line(max(deadline - time.monotonic(), 0.1)))
            if rsp.get("return") == sync_id:
                return sync_id, rsp, discarded

    def handshake(self, attempts=10):
        """Sync as a client must after connecting: retry with a fresh id until the agent answers."""
        for _ in range(attempts):
            try:
                return self.sync_delimited()
            except (TimeoutError, ValueError):
                continue
        return None


def error_of(rsp):
    e = rsp.get("error") or {}
    return e.get("class"), e.get("desc", "")


def console(cmd, pattern, timeout=TIMEOUT):
    m = vm.command(cmd, pattern, timeout)
    return m.group(1) if m else None


try:
    if not tap.check(vm.wait_for(READY, BOOT_TIMEOUT) is not None, "the guest reaches ready", vm.tail()):
        tap.finish()
    bus = dbus.bus.BusConnection(pbus.address)
    chardev_obj = bus.get_object(SERVICE, AGENT)
    chardev = dbus.Interface(chardev_obj, "org.orrery.Chardev1")

    def guest_open():
        return bool(chardev_obj.Get("org.orrery.Chardev1", "GuestOpen", dbus_interface="org.freedesktop.DBus.Properties"))

    deadline = time.monotonic() + TIMEOUT
    while not guest_open() and time.monotonic() < deadline:
        time.sleep(0.05)
    tap.check(guest_open(), "the agent started by init opens the port (GuestOpen)")

    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    chardev.Register(dbus.types.UnixFd(theirs.fileno()))
    theirs.close()
    agent = Agent(mine)

    # The handshake: 0xFF + guest-sync-delimited, the reply preceded by 0xFF.
    hs = agent.handshake()
    tap.check(hs is not None and hs[1] == {"return": hs[0]},
              "guest-sync-delimited: the reply follows a 0xFF and returns the id", hs)

    # Resynchronisation: half a request and binary garbage, then 0xFF + sync.
    agent.send(b'{"execute":"guest-ping","arguments":{"x":' + bytes(random.randrange(256) for _ in range(3000)).replace(b"\xff", b"") )
    sync_id, rsp, discarded = agent.sync_delimited(TIMEOUT)
    tap.check(rsp == {"return": sync_id}, "after a half request and garbage, 0xFF + guest-sync-delimited resynchronises",
              (rsp, discarded[:200]))
    tap.check(agent.call("guest-sync", id=-7) == {"return": -7}, "guest-sync returns its id")

    tap.check(agent.call("guest-ping") == {"return": {}}, "guest-ping returns {}")
    agent.send(b'{"execute":"guest-ping","id":"abc-1"}')  # no newline: requests need not end lines
    tap.check(agent.response() == {"return": {}, "id": "abc-1"}, "a request's id is echoed, also without a newline")

    info = agent.call("guest-info").get("return", {})
    names = {c.get("name") for c in info.get("supported_commands", []) if c.get("enabled")}
    wanted = {"guest-sync", "guest-sync-delimited", "guest-ping", "guest-info", "guest-get-osinfo",
              "guest-get-host-name", "guest-get-time", "guest-shutdown", "guest-fsfreeze-freeze",
              "guest-fsfreeze-thaw", "guest-fsfreeze-status", "guest-file-open", "guest-file-close",
              "guest-file-read", "guest-file-write", "guest-file-seek", "guest-file-flush",
              "guest-exec", "guest-exec-status"}
    tap.check(wanted <= names and isinstance(info.get("version"), str) and info["version"],
              "guest-info gives a version and lists the commands", sorted(wanted - names))
    shutdown_entry = [c for c in info.get("supported_commands", []) if c.get("name") == "guest-shutdown"]
    tap.check(shutdown_entry and shutdown_entry[0].get("success-response") is False,
              "guest-info says guest-shutdown sends no response on success", shutdown_entry)

    uname_r = console("echo uname=$(uname -r)", r"\nuname=([^\r\n]+)\r?\n")
    osinfo = agent.call("guest-get-osinfo").get("return", {})
    tap.check(uname_r is not None and osinfo.get("kernel-release") == uname_r and osinfo.get("machine") == "riscv64",
              f"guest-get-osinfo: kernel-release is the guest's uname -r ({uname_r}), machine riscv64", osinfo)
    os_id = console("echo id=$(sed -n 's/^ID=//p' /etc/os-release)", r"\nid=([^\r\n]+)\r?\n")
    tap.check(os_id is not None and osinfo.get("id") == os_id, "guest-get-osinfo: id comes from /etc/os-release",
              (os_id, osinfo))
    hostname = console("echo host=$(hostname)", r"\nhost=([^\r\n]+)\r?\n")
    tap.check(hostname is not None and agent.call("guest-get-host-name") == {"return": {"host-name": hostname}},
              f"guest-get-host-name is the guest's hostname ({hostname})")
    t = agent.call("guest-get-time").get("return")
    tap.check(isinstance(t, int) and abs(t / 1e9 - time.time()) < 120,
              "guest-get-time is nanoseconds since the epoch by the guest's clock (set from the host's RTC)", t)

    # Errors, in QGA's form.
    c, d = error_of(agent.call("guest-no-such-command"))
    tap.check(c == "CommandNotFound", f"an unknown command answers CommandNotFound ({c}: {d})")
    c, d = error_of(agent.call("guest-sync"))
    tap.check(c == "GenericError" and "'id'" in d, f"a missing parameter answers GenericError ({d})")
    c, d = error_of(agent.call("guest-file-open", path="/nonexistent/dir/file"))
    tap.check(c == "GenericError" and "No such file or directory" in d and "/nonexistent/dir/file" in d,
              f"opening a nonexistent file answers GenericError naming it ({d})")
    c, d = error_of(agent.call("guest-file-read", handle=999999))
    tap.check(c == "GenericError" and "999999" in d, f"an unknown handle answers GenericError ({d})")

    # A file round trip: binary data with zero bytes, in chunks, both ways.
    rng = random.Random(42)
    data = bytes(rng.randrange(256) for _ in range(200 * 1024)) + bytes(64 * 1024) + b"\xff\x00" * 20000 + b"end"
    path = "/tmp/agent-roundtrip.bin"
    h = agent.call("guest-file-open", path=path, mode="wb").get("return")
    tap.check(isinstance(h, int), f"guest-file-open returns an integer handle ({h})")
    start = time.monotonic()
    written = 0
    for off in range(0, len(data), WRITE_CHUNK):
        r = agent.call("guest-file-write", handle=h,
                       **{"buf-b64": base64.b64encode(data[off:off + WRITE_CHUNK]).decode()})
        written += r.get("return", {}).get("count", 0)
        if "return" not in r:
            break
    to_guest = time.monotonic() - start
    tap.check(written == len(data), f"guest-file-write wrote {written} of {len(data)} bytes")
    tap.check(agent.call("guest-file-flush", handle=h) == {"return": {}}, "guest-file-flush")
    tap.check(agent.call("guest-file-close", handle=h) == {"return": {}}, "guest-file-close")
    guest_sum = console(f"echo sum=$(sha256sum {path})", r"\nsum=([0-9a-f]{64}) ")
    tap.check(guest_sum == hashlib.sha256(data).hexdigest(), "the file in the guest has exactly the bytes written")

    h2 = agent.call("guest-file-open", path=path).get("return")
    tap.check(isinstance(h2, int) and h2 != h, f"a second open gives a new handle ({h}, {h2})")
    back = b""
    eof = False
    start = time.monotonic()
    while not eof and len(back) <= len(data):
        r = agent.call("guest-file-read", handle=h2, count=READ_CHUNK).get("return", {})
        chunk = base64.b64decode(r.get("buf-b64", ""))
        if r.get("count") != len(chunk) or (not chunk and not r.get("eof")):
            break
        back += chunk
        eof = r.get("eof", False)
    from_guest = time.monotonic() - start
    tap.check(back == data and eof, f"guest-file-read returns the same {len(back)} bytes, then eof")
    print(f"# {len(data)} bytes: to the guest in {WRITE_CHUNK}-byte writes {len(data) / to_guest / 1024:.0f} KiB/s, "
          f"from the guest in {READ_CHUNK}-byte reads {len(data) / from_guest / 1024:.0f} KiB/s", flush=True)

    r = agent.call("guest-file-seek", handle=h2, offset=1000, whence="set").get("return", {})
    chunk = base64.b64decode(agent.call("guest-file-read", handle=h2, count=16).get("return", {}).get("buf-b64", ""))
    tap.check(r.get("position") == 1000 and chunk == data[1000:1016], "guest-file-seek to 1000 (set), then read there")
    r = agent.call("guest-file-seek", handle=h2, offset=-3, whence=2).get("return", {})
    rr = agent.call("guest-file-read", handle=h2, count=100).get("return", {})
    tap.check(r.get("position") == len(data) - 3 and base64.b64decode(rr.get("buf-b64", "")) == b"end" and rr.get("eof"),
              "guest-file-seek -3 from the end (whence 2), then the last 3 bytes and eof", (r, rr))
    c, d = error_of(agent.call("guest-file-read", handle=h2, count=(48 << 20) + 1))
    tap.check(c == "GenericError" and "count" in d, f"a read count above 48 MiB is refused ({d})")
    c, d = error_of(agent.call("guest-file-write", handle=h2, **{"buf-b64": "a!!b"}))
    tap.check(c == "GenericError" and "Base64" in d, f"invalid base64 is refused ({d})")
    agent.call("guest-file-close", handle=h2)
    c, d = error_of(agent.call("guest-file-close", handle=h2))
    tap.check(c == "GenericError", f"a closed handle is gone ({d})")

    # guest-exec: a program with arguments, input on stdin and captured output.
    r = agent.call("guest-exec", path="sh", arg=["-c", "read x; echo out:$x; echo err >&2; exit 3"],
                   **{"input-data": base64.b64encode(b"in-put\n").decode(), "capture-output": True})
    pid = r.get("return", {}).get("pid")
    status = {}
    deadline = time.monotonic() + TIMEOUT
    while isinstance(pid, int) and not status.get("exited") and time.monotonic() < deadline:
        status = agent.call("guest-exec-status", pid=pid).get("return", {})
        if not status.get("exited"):
            time.sleep(0.02)
    out = base64.b64decode(status.get("out-data", ""))
    err = base64.b64decode(status.get("err-data", ""))
    tap.check(status.get("exitcode") == 3 and out == b"out:in-put\n" and err == b"err\n",
              "guest-exec runs a program with input; guest-exec-status gives its exit code, stdout and stderr", status)
    c, d = error_of(agent.call("guest-exec-status", pid=pid))
    tap.check(c == "GenericError" and "pid" in d, f"once reported as exited, the pid is forgotten ({d})")
    c, d = error_of(agent.call("guest-exec", path="/nonexistent/program"))
    tap.check(c == "GenericError" and "No such file or directory" in d, f"guest-exec of a missing program fails ({d})")

    # A request over the size limit: one error, and the agent keeps answering.
    agent.send(b'{"execute":"guest-sync","arguments":{"id":"' + b"A" * (REQUEST_MAX + 4096) + b'"}}\n')
    c, d = error_of(agent.response(timeout=300))
    tap.check(c == "GenericError" and "too large" in d, f"an oversize request answers an error ({d})")
    tap.check(agent.call("guest-ping") == {"return": {}}, "after the oversize request the agent still answers")

    # fsfreeze: the guest's ext2 RAM disk at /mnt/ram is the file system to freeze.
    mounted = console("echo mounts=$(grep -c ' /mnt/ram ext2 ' /proc/mounts)", r"\nmounts=(\d+)\r?\n")
    tap.check(mounted == "1", "the guest has an ext2 file system at /mnt/ram")
    tap.check(agent.call("guest-fsfreeze-status") == {"return": "thawed"}, "guest-fsfreeze-status: thawed")
    r = agent.call("guest-fsfreeze-freeze")
    tap.check(r == {"return": 1}, f"guest-fsfreeze-freeze freezes one file system ({r})")
    tap.check(agent.call("guest-fsfreeze-status") == {"return": "frozen"}, "guest-fsfreeze-status: frozen")
    c, d = error_of(agent.call("guest-file-open", path="/mnt/ram/x", mode="w"))
    tap.check(c == "CommandNotFound" and "frozen" in d, f"while frozen, file commands are refused ({d})")
    tap.check(agent.call("guest-ping") == {"return": {}}, "while frozen, guest-ping still answers")
    r = agent.call("guest-fsfreeze-thaw")
    tap.check(r == {"return": 1}, f"guest-fsfreeze-thaw thaws it ({r})")
    tap.check(agent.call("guest-fsfreeze-status") == {"return": "thawed"}, "guest-fsfreeze-status: thawed again")
    written = console("echo after-thaw > /mnt/ram/t && echo got=$(cat /mnt/ram/t)", r"\ngot=(after-thaw)\r?\n")
    tap.check(written == "after-thaw", "/mnt/ram is writable after the thaw")

    # init respawns the agent: killed, another one takes the port and answers.
    pid1 = console("echo pid=$(pidof orrery-guest-agent)", r"\npid=(\d*)\r?\n")
    vm.send(f"kill {pid1}\n")
    pid2 = pid1
    deadline = time.monotonic() + TIMEOUT
    while pid2 in (pid1, "", None) and time.monotonic() < deadline:
        pid2 = console("echo pid=$(pidof orrery-guest-agent)", r"\npid=(\d*)\r?\n")
    hs = agent.handshake()
    tap.check(pid1 and pid2 and pid2 != pid1 and hs is not None and hs[1] == {"return": hs[0]},
              f"killed, the agent is started again by init and answers (pid {pid1} -> {pid2})")

    # guest-shutdown: no response on success; the VM powers off.
    c, d = error_of(agent.call("guest-shutdown", mode="sideways"))
    tap.check(c == "GenericError" and "mode" in d, f"guest-shutdown with a bad mode is refused ({d})")
    agent.send(b'{"execute":"guest-shutdown","arguments":{"mode":"powerdown"}}\n')
    code = vm.wait_exit(TIMEOUT)
    tap.check(code == 0, f"guest-shutdown powers the VM off: orrery-vm exits 0 ({code})", vm.tail())
    rest = agent.buf
    try:
        mine.settimeout(1)
        while True:
            more = mine.recv(65536)
            if not more:
                break
            rest += more
    except OSError:
        pass
    tap.check(rest.strip() == b"", "guest-shutdown sent no response", rest[:200])
finally:
    vm.kill()
    pbus.stop()
tap.finish()

#!/usr/bin/env python3
"""orrery-agent against Debian's real qemu-ga (run on the host with -m unix-listen), through the
bridge's --test-socket hook, so the bridge cannot drift from the real protocol.

qemu-ga runs as the test's user on the host: the commands that would act on the host itself
(freezing its filesystems, shutting it down) are disabled with -b, and the test checks that the
bridge reports that refusal as a GuestError, as it must for any guest that refuses.
"""
import hashlib
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import dbus

sys.path.insert(0, os.path.dirname(__file__))
from bridge_test import Bridge, Client, PrivateBus, Tap, contract_matches, spin  # noqa: E402

QEMU_GA = os.environ.get("ORRERY_QEMU_GA", shutil.which("qemu-ga") or "/usr/sbin/qemu-ga")
VM = "qga"
BLOCKED = "guest-fsfreeze-freeze,guest-fsfreeze-freeze-list,guest-fsfreeze-thaw,guest-shutdown,guest-set-time," \
          "guest-exec,guest-set-user-password,guest-set-vcpus,guest-set-memory-blocks,guest-suspend-disk," \
          "guest-suspend-ram,guest-suspend-hybrid"

tap = Tap()
tmp = tempfile.mkdtemp(prefix="orrery-qga-")
sock = os.path.join(tmp, "qga.sock")


def start_qga():
    p = subprocess.Popen([QEMU_GA, "-m", "unix-listen", "-p", sock, "-t", tmp, "-f", os.path.join(tmp, "qga.pid"),
                          "-b", BLOCKED], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    spin(30, lambda: os.path.exists(sock) or p.poll() is not None)
    return p


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def qga_version():
    out = subprocess.run([QEMU_GA, "--version"], capture_output=True, text=True).stdout
    return out.split()[3] if len(out.split()) > 3 else None  # "QEMU Guest Agent 7.2.22"


pbus = PrivateBus()
qga = start_qga()
bridge = Bridge(pbus.address, "--test-socket", f"{VM}={sock}", "--timeout", "20")
client = Client(pbus.address)
try:
    tap.check(spin(30, client.has_name), "the bridge owns org.orrery.Agent", bridge.log)
    tap.check(spin(30, lambda: client.connected(VM)), "Connected turns true once qemu-ga answered the handshake",
              bridge.log)

    ok, detail = contract_matches(client.introspect(VM))
    tap.check(ok, "the live Agent1 interface matches dbus/org.orrery.Agent1.xml", detail)

    objs = client.managed()
    path = dbus.ObjectPath(f"/org/orrery/Agent/{VM}")
    tap.check(path in objs and objs[path]["org.orrery.Agent1"]["VM"] == VM
              and bool(objs[path]["org.orrery.Agent1"]["Connected"]),
              "GetManagedObjects on /org/orrery/Agent lists the VM's agent with VM and Connected", objs)

    r, e = client.call(VM, "Ping")
    tap.check(e is None, "Ping answers", e)

    r, e = client.call(VM, "Info")
    tap.check(e is None and r[0] == qga_version() and "guest-ping" in r[1] and "guest-file-open" in r[1]
              and "guest-fsfreeze-freeze" not in r[1],
              "Info gives qemu-ga's version and its enabled commands only (disabled ones are left out)", (r, e))

    r, e = client.call(VM, "GetOSInfo")
    uname = os.uname()
    tap.check(e is None and r.get("kernel-release") == uname.release and r.get("machine") == platform.machine()
              and r.get("kernel-version") == uname.version,
              "GetOSInfo names the kernel qemu-ga runs on (kernel-release, kernel-version, machine)", (r, e))
    os_id = None
    if os.path.exists("/etc/os-release"):
        for line in open("/etc/os-release"):
            if line.startswith("ID="):
                os_id = line.strip().split("=", 1)[1].strip('"')
    tap.check(e is None and (os_id is None or r.get("id") == os_id), "GetOSInfo reports the distribution's id",
              (r, os_id))

    r, e = client.call(VM, "GetHostName")
    tap.check(e is None and r == socket.gethostname(), "GetHostName is the host name qemu-ga sees", (r, e))

    r, e = client.call(VM, "GetTime")
    tap.check(e is None and abs(int(r) - time.time_ns()) < 60 * 10**9, "GetTime is the clock in nanoseconds",
              (r, e))

    # Copies: a 1 MiB random file in, and back out, with progress signals to the caller only.
    src = os.path.join(tmp, "src.bin")
    dst = os.path.join(tmp, "in-guest.bin")
    back = os.path.join(tmp, "back.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(1 << 20) + b"tail")
    progress = []
    client.bus.add_signal_receiver(lambda p, d, t: progress.append((str(p), int(d), int(t))),
                                   signal_name="CopyProgress", dbus_interface="org.orrery.Agent1")
    with open(src, "rb") as f:
        out = client.call_async(VM, "CopyToGuest", dbus.types.UnixFd(f), dst)
    spin(60, lambda: "t" in out)
    tap.check(out.get("result") == ((1 << 20) + 4,) and os.path.exists(dst) and sha(dst) == sha(src),
              "CopyToGuest writes the file in the guest (sha256 equal) and returns its size", out)
    spin(5, lambda: progress and progress[-1][1] == (1 << 20) + 4)
    tap.check(bool(progress) and progress[-1] == (dst, (1 << 20) + 4, (1 << 20) + 4)
              and all(t == (1 << 20) + 4 for _, _, t in progress),
              "CopyProgress reaches done == total (the source's size) at the end", progress[-3:])
    progress.clear()
    with open(back, "wb") as f:
        out = client.call_async(VM, "CopyFromGuest", dst, dbus.types.UnixFd(f))
    spin(60, lambda: "t" in out)
    tap.check(out.get("result") == ((1 << 20) + 4,) and sha(back) == sha(src),
              "CopyFromGuest reads it back (sha256 equal)", out)
    spin(5, lambda: progress and progress[-1][1] == (1 << 20) + 4)
    tap.check(bool(progress) and progress[-1][:2] == (dst, (1 << 20) + 4), "CopyProgress ends at the copied size",
              progress[-3:])

    r_fd, w_fd = os.pipe()
    os.write(w_fd, b"through a pipe\n")
    os.close(w_fd)
    r, e = client.call(VM, "CopyToGuest", dbus.types.UnixFd(r_fd), os.path.join(tmp, "pipe.txt"))
    os.close(r_fd)
    tap.check(e is None and r == 15 and open(os.path.join(tmp, "pipe.txt"), "rb").read() == b"through a pipe\n",
              "CopyToGuest reads a pipe to its end", (r, e))

    # Into a pipe nobody reads yet: the bridge waits for room without blocking anything else.
    r_fd, w_fd = os.pipe()
    out = client.call_async(VM, "CopyFromGuest", dst, dbus.types.UnixFd(w_fd))
    os.close(w_fd)
    spin(2)
    ping = client.call_async(VM, "Ping")
    tap.check(spin(10, lambda: "t" in ping) and "result" in ping and "t" not in out,
              "while a copy waits for a full pipe, Ping still answers", (ping, out))
    got = bytearray()
    os.set_blocking(r_fd, False)

    def drain():
        try:
            while True:
                chunk = os.read(r_fd, 65536)
                if not chunk:
                    return True
                got.extend(chunk)
        except BlockingIOError:
            return False
    spin(60, drain)
    os.close(r_fd)
    spin(10, lambda: "t" in out)
    tap.check(out.get("result") == ((1 << 20) + 4,) and hashlib.sha256(got).hexdigest() == sha(src),
              "CopyFromGuest into a pipe delivers everything once it is read (sha256 equal)", out)

    with open(os.devnull, "wb") as f:
        r, e = client.call(VM, "CopyFromGuest", os.path.join(tmp, "missing", "x"), dbus.types.UnixFd(f))
    tap.check(e is not None and e[0] == "org.orrery.Error.GuestError" and "No such file" in e[1],
              "CopyFromGuest of a missing file is a GuestError with qemu-ga's reason", e)
    with open(src, "rb") as f:
        r, e = client.call(VM, "CopyFromGuest", dst, dbus.types.UnixFd(f))
    tap.check(e is not None and e[0] == "org.orrery.Error.InvalidArgument",
              "CopyFromGuest into a file opened read-only is InvalidArgument", e)
    with open(src, "rb") as f:
        r, e = client.call(VM, "CopyToGuest", dbus.types.UnixFd(f), "")
    tap.check(e is not None and e[0] == "org.orrery.Error.InvalidArgument", "an empty guest path is InvalidArgument",
              e)

    r, e = client.call(VM, "FsFreezeStatus")
    tap.check(e is None and r == "thawed", "FsFreezeStatus answers thawed", (r, e))
    r, e = client.call(VM, "FsFreeze")
    tap.check(e is not None and e[0] == "org.orrery.Error.GuestError" and e[1].startswith("CommandNotFound: "),
              "FsFreeze refused by the agent is a GuestError '<class>: <desc>'", e)
    r, e = client.call(VM, "Shutdown", "sideways")
    tap.check(e is not None and e[0] == "org.orrery.Error.InvalidArgument", "Shutdown with an unknown mode is "
              "InvalidArgument", e)
    r, e = client.call(VM, "Shutdown", "")
    tap.check(e is not None and e[0] == "org.orrery.Error.GuestError" and "guest-shutdown" in e[1],
              "Shutdown refused by the agent is a GuestError (the confirming guest-sync does not hide it)", e)
    r, e = client.call(VM, "Ping")
    tap.check(e is None, "Ping still answers after the refused Shutdown (the channel stayed in step)", e)

    # qemu-ga goes away and comes back: calls fail with Unavailable meanwhile, then work again.
    qga.kill()
    qga.wait()
    tap.check(spin(30, lambda: not client.connected(VM)), "Connected turns false when the agent's socket closes")
    r, e = client.call(VM, "Ping")
    tap.check(e is not None and e[0] == "org.orrery.Error.Unavailable", "Ping without an agent is Unavailable", e)
    os.unlink(sock)
    qga = start_qga()
    tap.check(spin(30, lambda: client.connected(VM)), "the bridge reconnects and resyncs with a new qemu-ga",
              bridge.log)
    r, e = client.call(VM, "Ping")
    tap.check(e is None, "Ping answers again", e)

    tap.check(bridge.healthy(), "the bridge is still running, without a sanitizer report", bridge.log)
    tap.check(bridge.stop() == 0, "SIGTERM stops the bridge with status 0", bridge.log)
finally:
    bridge.kill()
    qga.kill()
    pbus.stop()
    shutil.rmtree(tmp, ignore_errors=True)
tap.finish()

#!/usr/bin/env python3
"""orrery-agent against scripted hostile guest agents: silence, garbage, 0xFF storms, wrong sync ids, an echo,
truncated and oversized JSON, huge numbers, invalid UTF-8, bad base64, replies nobody asked for, a peer that
dies mid-copy. The bridge must stay up, the calls must fail with clear errors (Timeout, GuestError,
Unavailable, Cancelled), and the well-behaved VM next to the hostile one must never wait for it."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import dbus

sys.path.insert(0, os.path.dirname(__file__))
import fake_qga  # noqa: E402
from bridge_test import Bridge, Client, PrivateBus, Tap, spin  # noqa: E402

TIMEOUT = 1.5  # the bridge's --timeout: short, so silent peers fail fast
COPY_MAX = 1 << 20  # the bridge's --copy-max-bytes
tap = Tap()
tmp = tempfile.mkdtemp(prefix="orrery-hostile-")
pbus = PrivateBus()
good = fake_qga.Peer(os.path.join(tmp, "good.sock"), fake_qga.good)
bad = fake_qga.Peer(os.path.join(tmp, "bad.sock"), fake_qga.good)
bridge = Bridge(pbus.address, "--timeout", str(TIMEOUT), "--copy-max-bytes", "1M", "--test-socket", f"good={good.path}",
                "--test-socket", f"bad={bad.path}")
client = Client(pbus.address)


def switch(behaviour, wait_connected=None):
    """Gives the bad VM a new behaviour (the bridge reconnects to it)."""
    n = bad.connections
    bad.switch(behaviour)
    spin(30, lambda: bad.connections > n)
    if wait_connected is not None:
        spin(30, lambda: client.connected("bad") == wait_connected)


def hostile_vs_good(what, behaviour, method="Ping", args=(), error="org.orrery.Error.Timeout"):
    """The hostile VM's call fails with error; a Ping of the good VM started meanwhile answers first."""
    switch(behaviour)
    bad_call = client.call_async("bad", method, *args)
    spin(0.2)
    start = time.monotonic()
    good_call = client.call_async("good", "Ping")
    spin(30, lambda: "t" in bad_call and "t" in good_call)
    tap.check("error" in bad_call and bad_call["error"][0] == error, f"{what}: {method} fails with {error}",
              bad_call)
    tap.check("result" in good_call and good_call["t"] - start < TIMEOUT and good_call["t"] <= bad_call["t"],
              f"{what}: the good VM's Ping answers meanwhile, without waiting", (good_call, bad_call, start))
    return bad_call


try:
    tap.check(spin(30, lambda: client.has_name() and client.connected("good") and client.connected("bad")),
              "both test VMs connect", bridge.log)

    r = hostile_vs_good("silent agent", fake_qga.silent)
    tap.check("did not answer guest-sync-delimited" in r["error"][1] or "did not answer guest-ping" in r["error"][1],
              "the Timeout names what was not answered", r)
    tap.check(not client.connected("bad"), "a silent agent is not Connected")

    # A flood of calls for a silent agent: the queue is bounded, the rest answer Busy at once. On a bridge of
    # its own whose guest calls never time out, so no call can leave the queue, however slow the machine is.
    qbus = PrivateBus()
    quiet = fake_qga.Peer(os.path.join(tmp, "quiet.sock"), fake_qga.silent)
    full = fake_qga.Peer(os.path.join(tmp, "full.sock"), fake_qga.good)
    full.files["/g/some"] = os.urandom(100000)
    # --copy-reserve 100: no file system has all of itself free, so no copy from the guest may write.
    qbridge = Bridge(qbus.address, "--timeout", "3600", "--copy-reserve", "100", "--test-socket", f"quiet={quiet.path}",
                     "--test-socket", f"full={full.path}")
    qclient = Client(qbus.address)
    try:
        spin(30, lambda: qclient.has_name() and "guest-sync-delimited" in quiet.commands())
        calls = [qclient.call_async("quiet", "Ping", timeout=3600) for _ in range(1100)]
        spin(60, lambda: sum("t" in c for c in calls) >= 1100 - 1024)
        spin(0.5)  # long enough for a wrong extra answer to show, never needed to pass
        names = [c["error"][0] if "error" in c else "result" if "result" in c else "waiting" for c in calls]
        tap.check(names.count("org.orrery.Error.Busy") == 1100 - 1024 and names.count("waiting") == 1024,
                  "1100 calls for an agent that never answers: 1024 wait in the queue, the other 76 answer Busy at once",
                  {n: names.count(n) for n in set(names)})

        spin(30, lambda: qclient.connected("full"))
        out = os.path.join(tmp, "reserve.bin")
        with open(out, "wb") as f:
            r, e = qclient.call("full", "CopyFromGuest", "/g/some", dbus.types.UnixFd(f))
        tap.check(e is not None and e[0] == "org.orrery.Error.LimitExceeded" and "reserve" in e[1]
                  and os.path.getsize(out) == 0,
                  "a copy from the guest stops before the host file system's free-space reserve (--copy-reserve)", e)
    finally:
        qbridge.kill()
        full.stop()
        quiet.stop()
        qbus.stop()

    r = hostile_vs_good("garbage flood", fake_qga.flood(lambda: os.urandom(16384).replace(b"\xff", b"x")))
    r = hostile_vs_good("garbage with 0xFF flood", fake_qga.flood(fake_qga.random_garbage))
    r = hostile_vs_good("0xFF storm", fake_qga.flood(lambda: b"\xff" * 16384))
    r = hostile_vs_good("stale sync replies only",
                        fake_qga.flood(lambda: b"\xff" + json.dumps({"return": 12345}).encode() + b"\n" * 100))

    def wrong_id(peer, c, cmd, args):
        if cmd == "guest-sync-delimited":
            c.send(b"\xff" + json.dumps({"return": args["id"] + 1}).encode() + b"\n")
            return True
    hostile_vs_good("sync replies with the wrong id", fake_qga.overriding(wrong_id))
    tap.check(not client.connected("bad"), "an agent that answers the wrong sync id is not Connected")
    hostile_vs_good("an agent that echoes everything", fake_qga.echo)

    # Answers that are wrong in themselves, after a correct handshake.
    truncated_once = []

    def truncated(peer, c, cmd, args):
        if cmd == "guest-ping" and not truncated_once:
            truncated_once.append(1)
            c.send(b'{"return": {"a')
            return True
    switch(fake_qga.overriding(truncated), wait_connected=True)
    r, e = client.call("bad", "Ping")
    tap.check(e is not None and e[0] == "org.orrery.Error.Timeout" and "guest-ping" in e[1],
              "a truncated reply is a Timeout naming guest-ping", e)
    r, e = client.call("bad", "Ping")
    tap.check(e is None, "after the truncated reply the bridge resyncs and the next Ping answers", e)

    def answers(table):
        def fn(peer, c, cmd, args):
            if cmd in table:
                v = table[cmd]
                c.send(v if isinstance(v, bytes) else json.dumps(v).encode() + b"\n")
                return True
        return fake_qga.overriding(fn)

    switch(answers({
        "guest-fsfreeze-freeze": b'{"return": 99999999999999999999999999}\n',
        "guest-fsfreeze-thaw": {"return": -5},
        "guest-get-time": b'{"return": 1e999}\n',
        "guest-get-host-name": b'{"return": {"host-name": "\xc3\x28"}}\n',
        "guest-fsfreeze-status": {"return": "melted"},
        "guest-info": {"return": {"version": 7}},
        "guest-get-osinfo": {"return": {"id": "x" * 100000, "name": 5, "kernel-release": "ok"}},
        "guest-ping": {"error": {"class": "GenericError", "desc": "nope"}},
    }), wait_connected=True)
    for method, what in [("FsFreeze", "a count beyond 64 bits"), ("FsThaw", "a negative count"),
                         ("GetTime", "1e999 as a time"), ("GetHostName", "invalid UTF-8"),
                         ("FsFreezeStatus", "an unknown status"), ("Info", "a version that is not a string")]:
        r, e = client.call("bad", method)
        tap.check(e is not None and e[0] == "org.orrery.Error.GuestError" and "ProtocolError" in e[1],
                  f"{method} answered with {what} is a GuestError 'ProtocolError: …'", (r, e))
    r, e = client.call("bad", "GetOSInfo")
    tap.check(e is None and dict(r) == {"kernel-release": "ok"},
              "GetOSInfo leaves out values that are too long or not strings", (r, e))
    r, e = client.call("bad", "Ping")
    tap.check(e == ("org.orrery.Error.GuestError", "GenericError: nope"),
              "a QGA error is a GuestError '<class>: <desc>'", e)

    switch(answers({"guest-ping": b'{"return": "' + b"A" * (2 << 20) + b'"}\n'}), wait_connected=True)
    r, e = client.call("bad", "Ping")
    tap.check(e is not None and e[0] == "org.orrery.Error.GuestError" and "larger than the limit" in e[1],
              "a reply over the size limit is a GuestError naming the limit", e)

    unsolicited = []

    def chatty(peer, c, cmd, args):
        if cmd == "guest-sync-delimited" and not unsolicited:
            unsolicited.append(1)
            c.send(b"\xff" + json.dumps({"return": args["id"]}).encode() + b"\n")
            for i in range(200):
                c.send({"return": {"unasked": i}})
            return True
    switch(fake_qga.overriding(chatty))
    spin(3)
    ok = False
    for _ in range(5):
        r, e = client.call("bad", "GetHostName")
        if e is None and r == "fake":
            ok = True
            break
    tap.check(ok, "after a burst of replies nobody asked for, the bridge resyncs and answers correctly", (r, e))

    # Copies against hostile file commands.
    src = os.path.join(tmp, "src.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(300000))
    bad.files["/g/file"] = os.urandom(100000)
    switch(answers({"guest-file-read": {"return": {"count": 10, "buf-b64": "AAAA", "eof": False}}}),
           wait_connected=True)
    with open(os.path.join(tmp, "out.bin"), "wb") as f:
        r, e = client.call("bad", "CopyFromGuest", "/g/file", dbus.types.UnixFd(f))
    tap.check(e is not None and e[0] == "org.orrery.Error.GuestError" and "ProtocolError" in e[1],
              "guest-file-read whose data does not match its count is a GuestError", e)
    spin(5, lambda: "guest-file-close" in bad.commands())
    tap.check("guest-file-close" in bad.commands(), "the failed copy closes its guest file handle", bad.commands())

    switch(answers({"guest-file-read": {"return": {"count": 30000, "buf-b64": "", "eof": False}}}),
           wait_connected=True)
    with open(os.path.join(tmp, "out.bin"), "wb") as f:
        r, e = client.call("bad", "CopyFromGuest", "/g/file", dbus.types.UnixFd(f))
    tap.check(e is not None and e[0] == "org.orrery.Error.GuestError", "a read count above the chunk asked for is a "
              "GuestError", e)

    # Bounded copies from a guest whose file never ends (eof:false forever).
    out = os.path.join(tmp, "endless.bin")
    switch(fake_qga.endless(announce=12345), wait_connected=True)
    with open(out, "wb") as f:
        r, e = client.call("bad", "CopyFromGuest", "/g/endless", dbus.types.UnixFd(f))
    size = os.path.getsize(out)
    tap.check(e is not None and e[0] == "org.orrery.Error.LimitExceeded" and size == COPY_MAX
              and "announced 12345 bytes" in e[1],
              f"CopyFromGuest of an endless file stops at --copy-max-bytes with LimitExceeded, naming the size the"
              f" guest announced; the host file holds {size} bytes", e)
    spin(5, lambda: bad.commands()[-1:] == ["guest-file-close"])
    tap.check(bad.commands()[-1:] == ["guest-file-close"], "the stopped copy closes its guest handle",
              bad.commands()[-3:])

    switch(fake_qga.endless(), wait_connected=True)
    with open(out, "wb") as f:
        r, e = client.call("bad", "CopyFromGuestEx", "/g/endless", dbus.types.UnixFd(f),
                           dbus.Dictionary({"MaxBytes": dbus.UInt64(300000)}, signature="sv"))
    size = os.path.getsize(out)
    tap.check(e is not None and e[0] == "org.orrery.Error.LimitExceeded" and size == 300000,
              f"CopyFromGuestEx with MaxBytes 300000 stops there (host file {size} bytes; no size announced)", e)

    switch(fake_qga.endless(announce=1 << 40), wait_connected=True)
    with open(out, "wb") as f:
        r, e = client.call("bad", "CopyFromGuestEx", "/g/huge", dbus.types.UnixFd(f),
                           dbus.Dictionary({"MaxBytes": dbus.UInt64(1 << 30)}, signature="sv"))
    tap.check(e is not None and e[0] == "org.orrery.Error.LimitExceeded" and str(1 << 40) in e[1]
              and os.path.getsize(out) == 0 and "guest-file-read" not in bad.commands()[-4:],
              "a file the guest announces beyond MaxBytes is refused before anything is read", e)

    with open(out, "wb") as f:
        r, e = client.call("bad", "CopyFromGuestEx", "/g/x", dbus.types.UnixFd(f),
                           dbus.Dictionary({"Bogus": dbus.UInt64(1)}, signature="sv"))
    tap.check(e is not None and e[0] == "org.orrery.Error.InvalidArgument" and "Bogus" in e[1],
              "an unknown copy option is InvalidArgument", e)

    # The caller's own time: TimeoutUSec ends the copy (a slow endless file, far below any size bound).
    switch(fake_qga.endless(delay=0.02, count=1000), wait_connected=True)
    with open(out, "wb") as f:
        r, e = client.call("bad", "CopyFromGuestEx", "/g/slow", dbus.types.UnixFd(f),
                           dbus.Dictionary({"TimeoutUSec": dbus.UInt64(500000)}, signature="sv"))
    tap.check(e is not None and e[0] == "org.orrery.Error.Timeout" and "TimeoutUSec" in e[1]
              and os.path.getsize(out) < COPY_MAX,
              "CopyFromGuestEx with TimeoutUSec stops the copy with Timeout when that time has passed", e)

    # A caller that leaves the bus mid-copy stops it: no guest-file-read after the handle is closed.
    spin(10, lambda: bad.commands()[-1:] == ["guest-file-close"])  # the copy before has closed its handle
    n_before = len(bad.commands())
    script = (
        "import dbus, dbus.mainloop.glib, sys, time\n"
        "from gi.repository import GLib\n"
        "dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)\n"
        "b = dbus.bus.BusConnection(sys.argv[1])\n"
        "a = dbus.Interface(b.get_object('org.orrery.Agent', '/org/orrery/Agent/bad', introspect=False),"
        " 'org.orrery.Agent1')\n"
        "f = open(sys.argv[2], 'wb')\n"
        "a.CopyFromGuest('/g/leaving', dbus.types.UnixFd(f), reply_handler=lambda *x: None,"
        " error_handler=lambda e: None, timeout=3600)\n"
        "b.flush()\n"
        "ctx = GLib.MainContext.default()\n"
        "while True:\n"
        "    ctx.iteration(True)\n")
    leaver = subprocess.Popen([sys.executable, "-c", script, pbus.address, out])
    tap.check(spin(30, lambda: bad.commands()[n_before:].count("guest-file-read") >= 3),
              "a copy from the endless file is under way", bad.commands()[n_before:][-5:])
    leaver.kill()
    leaver.wait()
    spin(10, lambda: "guest-file-close" in bad.commands()[n_before:])
    size = os.path.getsize(out)
    r, e = client.call("bad", "Ping")  # queued behind anything the copy would still send
    tail = bad.commands()[n_before:]
    after = tail[tail.index("guest-file-close") + 1:] if "guest-file-close" in tail else None
    size_after = os.path.getsize(out)
    tap.check(e is None and after is not None and "guest-file-read" not in after and size_after == size,
              f"a caller that leaves the bus mid-copy stops it: the handle is closed, no read follows, the host"
              f" file stays at {size} bytes", (e, size_after, tail[-6:]))

    writes = []

    def dies(peer, c, cmd, args):
        if cmd == "guest-file-write":
            writes.append(1)
            if len(writes) >= 3:
                c.close()
                return True
    switch(fake_qga.overriding(dies), wait_connected=True)
    with open(src, "rb") as f:
        r, e = client.call("bad", "CopyToGuest", dbus.types.UnixFd(f), "/g/new")
    tap.check(e is not None and e[0] == "org.orrery.Error.Unavailable",
              "an agent that goes away mid-copy fails the copy with Unavailable", e)

    # Cancellation: a slow agent, a copy from a pipe that never ends.
    def slow(peer, c, cmd, args):
        if cmd == "guest-file-write":
            time.sleep(0.1)
    switch(fake_qga.overriding(slow), wait_connected=True)
    r_fd, w_fd = os.pipe()
    os.set_blocking(w_fd, False)
    n_before = len(bad.commands())
    copy = client.call_async("bad", "CopyToGuest", dbus.types.UnixFd(r_fd), "/g/endless")
    os.close(r_fd)

    def feed():
        try:
            os.write(w_fd, b"z" * 4096)
        except BlockingIOError:
            pass
        return "guest-file-write" in bad.commands()[n_before:]
    tap.check(spin(10, feed), "a copy from a pipe that never ends is under way", bad.commands()[n_before:])
    c2 = client.call_async("bad", "CancelCopies")
    spin(10, lambda: "t" in copy and "t" in c2)
    tap.check(c2.get("result") == (dbus.UInt32(1),), "CancelCopies cancels the caller's one copy", c2)
    tap.check(copy.get("error", ("",))[0] == "org.orrery.Error.Cancelled", "the cancelled copy answers Cancelled",
              copy)
    os.close(w_fd)
    spin(5, lambda: bad.commands()[-1:] == ["guest-file-close"])
    tap.check(bad.commands()[-1:] == ["guest-file-close"], "a cancelled copy closes its guest handle",
              bad.commands()[-5:])

    # Cancelled while the guest is still opening the file: the handle that arrives later is closed too.
    def slow_open(peer, c, cmd, args):
        if cmd == "guest-file-open":
            time.sleep(0.5)
    switch(fake_qga.overriding(slow_open), wait_connected=True)
    n_before = len(bad.commands())
    with open(src, "rb") as f:
        copy = client.call_async("bad", "CopyToGuest", dbus.types.UnixFd(f), "/g/late")
    spin(10, lambda: "guest-file-open" in bad.commands()[n_before:])
    r, e = client.call("bad", "CancelCopies")
    spin(10, lambda: "t" in copy and "guest-file-close" in bad.commands()[n_before:])
    tap.check(r == 1 and copy.get("error", ("",))[0] == "org.orrery.Error.Cancelled"
              and bad.commands()[n_before:] == ["guest-file-open", "guest-file-close"]
              and bad.log[-1][1] == {"handle": bad.next_handle - 1},
              "a copy cancelled during guest-file-open closes the handle once it arrives", (r, copy, bad.commands()[n_before:]))

    # A caller that leaves the bus cancels its copies.
    n_before = len(bad.commands())
    script = (
        "import dbus, dbus.mainloop.glib, os, sys, time\n"
        "dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)\n"
        "b = dbus.bus.BusConnection(sys.argv[1])\n"
        "a = dbus.Interface(b.get_object('org.orrery.Agent', '/org/orrery/Agent/bad', introspect=False),"
        " 'org.orrery.Agent1')\n"
        "r, w = os.pipe()\n"
        "os.write(w, b'q' * 60000)\n"
        "a.CopyToGuest(dbus.types.UnixFd(r), '/g/orphan', reply_handler=lambda *x: None,"
        " error_handler=lambda e: None)\n"
        "b.flush()\n"
        "time.sleep(1)\n"
        "os._exit(0)\n")
    subprocess.run([sys.executable, "-c", script, pbus.address], timeout=60)
    spin(10, lambda: "guest-file-close" in bad.commands()[n_before:])
    tail = bad.commands()[n_before:]
    tap.check("guest-file-write" in tail and tail[-1] == "guest-file-close",
              "a caller that leaves the bus cancels its copy and the guest handle is closed", tail)

    # Shutdown: no answer on success, confirmed by a guest-sync; or the agent goes away.
    switch(fake_qga.good, wait_connected=True)
    r, e = client.call("bad", "Shutdown", "reboot")
    tap.check(e is None and ("guest-shutdown", {"mode": "reboot"}) in bad.log,
              "Shutdown passes the mode and returns once the guest-sync behind it is answered", (e, bad.log[-3:]))

    def vanish(peer, c, cmd, args):
        if cmd == "guest-shutdown":
            c.close()
            return True
    switch(fake_qga.overriding(vanish), wait_connected=True)
    r, e = client.call("bad", "Shutdown", "")
    tap.check(e is None and ("guest-shutdown", {"mode": "powerdown"}) in bad.log,
              "Shutdown counts the agent going away as success; '' is powerdown", e)

    switch(fake_qga.good, wait_connected=True)
    r, e = client.call("bad", "Ping")
    tap.check(e is None, "after all that, the hostile VM's agent answers again once it behaves", e)
    r, e = client.call("good", "GetHostName")
    tap.check(e is None and r == "fake", "the good VM never noticed", (r, e))
    tap.check(bridge.healthy(), "the bridge is still running, without a sanitizer report", bridge.log[-3000:])
finally:
    bridge.kill()
    good.stop()
    bad.stop()
    pbus.stop()
    shutil.rmtree(tmp, ignore_errors=True)
tap.finish()

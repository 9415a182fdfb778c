#!/usr/bin/env python3
"""Live migration end to end with the default guest printing a heartbeat
every 100 ms while it dirties memory: Machine1.Migrate to a new
orrery-vm --incoming over a Unix socket, then onwards over TCP on
127.0.0.1 (through orrery-monitor's migrate), while a file is being
written on a disk both processes open: its lock moves with the guest and
the file completes intact. The heartbeat goes on on the destination's serial with no beat
repeated or lost and no long gap, the bus name moves to the destination
(one owner change) and the source exits 0. A migration cancelled mid-way
(MigrateCancel) and one whose destination goes away mid-stream leave the
source running as before; a corrupted stream and another configuration
are refused by the destination (exit 2, one line) before the guest runs
there.
"""
import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import dbus
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

sys.path.insert(0, os.path.dirname(__file__))
from orrery_test import (  # noqa: E402
    BOOT_TIMEOUT, ext4_image, fetch, free_port, numbered_lines, ORRERY_VM, poll, PrivateBus, Pty, READY, Tap, Vm)

NAME = "migtest"
SERVICE = f"org.orrery.VM.{NAME}"
PATH = f"/org/orrery/VM/{NAME}"
BEAT = re.compile(r"beat=(\d+)\r?\n")
# Generous: a loaded machine may take this long for a whole move.
MONITOR = os.environ["ORRERY_MONITOR"]
MOVE_TIMEOUT = 120
# The longest the heartbeat may stop across a move (the target is far lower; bench/ measures it).
GAP_BOUND = 10.0

DBusGMainLoop(set_as_default=True)
tap = Tap()
tmp = tempfile.mkdtemp(prefix="orrery-test-migrate-")
pbus = PrivateBus()
vms = []
common = ["--display", "none", "--no-config", "--memory", "256M"]
LINES = 100


def machine(bus):
    obj = bus.get_object(SERVICE, PATH)
    return dbus.Interface(obj, "org.orrery.Machine1"), dbus.Interface(obj, "org.freedesktop.DBus.Properties")


def beats(vm):
    with vm.lock:
        return [int(m.group(1)) for m in BEAT.finditer(vm.output)]


def wait_until(cond, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    return cond()


def prop(props, name):
    return props.Get("org.orrery.Machine1", name)


def beats_go_on(vm, what, n=5):
    have = len(beats(vm))
    ok = wait_until(lambda: len(beats(vm)) >= have + n, 60)
    b = beats(vm)
    tap.check(ok and b == list(range(b[0], b[0] + len(b))), what, vm.tail())


class Sink:
    """A destination that is not orrery-vm: accepts one stream and reads at most 'limit' bytes of it."""

    def __init__(self, path, limit=None, close_after=False):
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(1)
        self.limit = limit
        self.close_after = close_after
        self.data = bytearray()
        self.conn = None
        self.done = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        self.conn, _ = self.listener.accept()
        while self.limit is None or len(self.data) < self.limit:
            chunk = self.conn.recv(1 << 20)
            if not chunk:
                break
            self.data += chunk
            if self.data.endswith(b"ORRERYND") or (len(self.data) > 12 and self.data[-12:-4] == b"ORRERYND"):
                break
        if self.close_after:
            self.conn.close()
        self.done.set()


def refused(stream, args, what, expect):
    """A destination fed 'stream' must exit 2 with one error line matching 'expect'."""
    path = os.path.join(tmp, "refuse.sock")
    if os.path.exists(path):
        os.unlink(path)
    proc = subprocess.Popen([ORRERY_VM, "--name", "t", "--no-bus", "--serial", "none"] + args +
                            ["--incoming", f"unix:{path}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    wait_until(lambda: os.path.exists(path) or proc.poll() is not None, 60)
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        s.sendall(stream)
        s.close()
    except OSError:
        pass
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    err = err.decode(errors="replace")
    lines = [line for line in err.splitlines() if line.startswith("orrery-vm:") and "waits for" not in line]
    ok = proc.returncode == 2 and len(lines) == 1 and re.search(expect, lines[0]) is not None
    tap.check(ok, f"{what}: the destination exits 2 with one line ({lines[0] if lines else 'none'})",
              f"exit {proc.returncode}\n{err}")


class Watch:
    """Notes when each beat arrives, from the source's and then the destination's serial (a line may be split)."""

    def __init__(self, src, dst):
        self.src, self.dst = src, dst
        self.seen = {}
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def combined(self):
        with self.src.lock:
            text = self.src.output
        with self.dst.lock:
            text += self.dst.output
        return [int(m.group(1)) for m in BEAT.finditer(text)]

    def _run(self):
        while not self.stop:
            now = time.monotonic()
            for b in self.combined():
                self.seen.setdefault(b, now)
            time.sleep(0.02)

    def longest_gap(self):
        times = sorted(self.seen.values())
        return max((b - a for a, b in zip(times, times[1:])), default=0.0)


def monitor(*args, timeout=MOVE_TIMEOUT):
    return subprocess.run([MONITOR, "--bus", pbus.address, NAME, "-c", " ".join(args)], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=dict(os.environ, TERM="dumb"))


def move(src, uri, listen, what, via_monitor=False):
    """Migrates 'src' to a new destination listening on 'listen'; returns the destination."""
    dst = Vm(*common, "--incoming", listen, name=NAME, bus=pbus.address)
    vms.append(dst)
    waiting = wait_until(lambda: "waits for a migration" in dst.stderr or dst.proc.poll() is not None, 60)
    if not tap.check(waiting and dst.proc.poll() is None, f"{what}: the destination waits", dst.tail()):
        tap.finish()
    bus = dbus.bus.BusConnection(pbus.address)
    owners = []
    bus.add_signal_receiver(lambda name, old, new: owners.append((old, new)), "NameOwnerChanged",
                            "org.freedesktop.DBus", arg0=SERVICE)
    m1, props = machine(bus)
    watch = Watch(src, dst)
    t0 = time.monotonic()
    if via_monitor:
        r = monitor("migrate", uri)
        tap.check(r.returncode == 0 and "migration completed" in r.stdout and "sent" in r.stdout,
                  f"{what}: orrery-monitor's migrate shows progress and the end", r.stdout + r.stderr)
    else:
        m1.Migrate(uri)
    code = src.wait_exit(MOVE_TIMEOUT)
    took = time.monotonic() - t0
    tap.check(code == 0, f"{what}: the source exits 0 after handing over ({took:.1f} s)", src.tail())
    ok = wait_until(lambda: len(beats(dst)) >= 20, 60)
    watch.stop = True
    watch.thread.join()
    tap.check(ok, f"{what}: the heartbeat goes on on the destination's serial", dst.tail())
    seq = watch.combined()
    first = beats(src)[0] if beats(src) else None
    tap.check(seq and seq == list(range(seq[0], seq[0] + len(seq))) and seq[0] == first,
              f"{what}: no beat repeated or lost across the move ({len(seq)} beats)",
              f"{seq[-40:]}\n{dst.tail()}")
    gap = watch.longest_gap()
    tap.check(gap < GAP_BOUND, f"{what}: the longest heartbeat gap is {gap:.2f} s (bound {GAP_BOUND} s)")
    tap.check(READY not in dst.output, f"{what}: the guest did not boot again on the destination", dst.tail())
    # The owner change reaches us through the bus's own connection: let it arrive.
    ctx = GLib.MainContext.default()
    wait_until(lambda: (ctx.iteration(False), len(owners) >= 1)[1], 10)
    tap.check(len(owners) == 1 and owners[0][0] and owners[0][1],
              f"{what}: one NameOwnerChanged, from the source straight to the destination", owners)
    m2, props2 = machine(bus)
    tap.check(str(prop(props2, "State")) == "running", f"{what}: Machine1 answers from the destination", dst.tail())
    return dst



try:
    # A disk shared by source and destination: its lock moves with the guest.
    disk = ext4_image(os.path.join(tmp, "disk.img"), 32 << 20)
    common += ["--drive", f"file={disk},id=data"]
    # A NIC (restrict=on) with a host forward on 127.0.0.1 to busybox httpd: the forward moves too.
    web = free_port()
    common += ["--net", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{web}-:8080"]

    src = Vm(*common, name=NAME, bus=pbus.address)
    vms.append(src)
    if not tap.check(src.wait_for(READY, BOOT_TIMEOUT) is not None, "the guest boots", src.tail()):
        tap.finish()
    bus = dbus.bus.BusConnection(pbus.address)
    m1, props = machine(bus)
    tap.check(str(prop(props, "MigrationState")) == "none" and int(prop(props, "MigrationDowntimeLimit")) == 300,
              "MigrationState starts as none, the downtime limit at 300 ms")

    # A heartbeat every 100 ms, each rewriting 1 MiB of guest memory.
    src.send("(i=0; while true; do i=$((i+1)); echo beat=$i; "
             "dd if=/dev/urandom of=/tmp/dirty bs=64k count=16 2>/dev/null; sleep 0.1; done) &\n")
    tap.check(src.wait_for(r"beat=5\r?\n", 60) is not None, "the heartbeat runs", src.tail())
    src.command("mkdir -p /www && echo served-by-the-guest > /www/index.html && httpd -p 8080 -h /www && "
                "echo httpd-''up", r"httpd-up\r?\n", 60)
    page = b"served-by-the-guest\n"
    tap.check(poll(lambda: fetch(web), 60) == page, "a host forward reaches httpd in the guest")

    # Cancelled mid-way: a destination that takes 1 MiB and then nothing.
    slow = os.path.join(tmp, "slow.sock")
    sink = Sink(slow, limit=1 << 20)
    m1.Migrate(f"unix:{slow}")
    tap.check(wait_until(lambda: str(prop(props, "MigrationState")) == "active", 10),
              "Migrate: MigrationState is active", str(prop(props, "MigrationState")))
    tap.check(wait_until(lambda: sink.done.is_set(), 30), "the stream is flowing")
    try:
        m1.Migrate(f"unix:{slow}")
        tap.check(False, "a second Migrate while one runs is refused")
    except dbus.exceptions.DBusException as e:
        tap.check(e.get_dbus_name() == "org.orrery.Error.Busy", "a second Migrate while one runs is refused (Busy)",
                  e.get_dbus_name())
    m1.MigrateCancel()
    tap.check(wait_until(lambda: str(prop(props, "MigrationState")) == "failed", 30),
              "MigrateCancel: MigrationState turns failed", str(prop(props, "MigrationState")))
    tap.check(str(prop(props, "State")) == "running" and "cancel" in str(prop(props, "MigrationError")),
              f"after the cancel the VM runs ({prop(props, 'MigrationError')})")
    beats_go_on(src, "the heartbeat goes on on the source after the cancel")

    # MigrateFd: the stream goes into a socket the caller connected; closing it ends the migration.
    mine, theirs = socket.socketpair()
    m1.MigrateFd(dbus.types.UnixFd(theirs.fileno()))
    theirs.close()
    mine.settimeout(30)
    head = b""
    try:
        while len(head) < 16:
            head += mine.recv(16 - len(head))
    except OSError:
        pass
    mine.close()
    tap.check(head.startswith(b"ORRERYVM"), "MigrateFd streams into the caller's socket", head)
    tap.check(wait_until(lambda: str(prop(props, "MigrationState")) == "failed", 60)
              and str(prop(props, "State")) == "running", "and the VM runs on once the caller closes it",
              str(prop(props, "MigrationError")))

    # The destination goes away mid-stream.
    gone = os.path.join(tmp, "gone.sock")
    sink = Sink(gone, limit=4 << 20, close_after=True)
    m1.Migrate(f"unix:{gone}")
    tap.check(wait_until(lambda: str(prop(props, "MigrationState")) == "failed", 60),
              "a destination gone mid-stream: MigrationState turns failed", str(prop(props, "MigrationError")))
    tap.check(str(prop(props, "State")) == "running", "and the VM runs on")
    beats_go_on(src, "the heartbeat goes on on the source after the destination left")

    # A whole stream, kept by a destination that never answers 'L': the source gives up and runs on.
    whole = os.path.join(tmp, "whole.sock")
    sink = Sink(whole)
    m1.Migrate(f"unix:{whole}")
    tap.check(wait_until(lambda: sink.done.is_set(), MOVE_TIMEOUT), "a whole stream was sent", len(sink.data))
    stream = bytes(sink.data)
    sink.conn.close()
    tap.check(wait_until(lambda: str(prop(props, "MigrationState")) == "failed", 60),
              "a destination that does not confirm: MigrationState turns failed", str(prop(props, "MigrationError")))
    beats_go_on(src, "the heartbeat goes on on the source after the destination refused")
    tap.check(poll(lambda: fetch(web), 60) == page,
              "and its host forward, let go for the destination, listens again on the source")

    # The destination refuses damaged streams and other configurations before running anything.
    damaged = bytearray(stream)
    damaged[len(damaged) // 2] ^= 0x40
    refused(bytes(damaged), common, "a corrupted stream", r"corrupted")
    refused(stream[: len(stream) // 3], common, "a truncated stream", r"closed the stream before its end")
    other = [a if a != "256M" else "384M" for a in common]
    refused(stream, other, "another memory size", r"memory size differs")

    # The move itself: over a Unix socket, then onwards over TCP on 127.0.0.1, while a file is being
    # written a line at a time (each synced) on the disk.
    src.command("mount -t ext4 /dev/vda /mnt && echo mounted-''ok", r"mounted-ok\r?\n", 60)
    src.send(f"(for j in $(seq 1 {LINES}); do echo \"line $j of the file being written\" >> /mnt/file; sync; "
             "sleep 0.2; done; echo file-''done) &\n")
    sock = os.path.join(tmp, "dest.sock")
    # An interactive monitor attached meanwhile says once that the VM moved, and keeps working.
    session = Pty([MONITOR, "--bus", pbus.address, NAME], env=dict(os.environ, TERM="dumb"))
    tap.check(session.expect(rf"\(orrery {NAME}\) ", 30) is not None, "an interactive orrery-monitor is attached",
              session.tail())
    dst = move(src, f"unix:{sock}", f"unix:{sock}", "Unix socket")
    moved = session.expect(r"moved to a new process", 30)
    tap.check(moved is not None and "gone from the bus" not in session.output,
              "the interactive monitor prints one line about the move", session.tail())
    tap.check(session.line("info status", r"running", 30) is not None, "and keeps working with the new process",
              session.tail())
    tap.check(poll(lambda: fetch(web), 60) == page, "the host forward reaches httpd in the guest on the destination")
    session.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = monitor("migrate_set_parameter", "downtime-limit", "100")
    info = monitor("info", "migrate")
    tap.check(r.returncode == 0 and "downtime limit: 100 ms" in info.stdout and "migration: none" in info.stdout,
              "orrery-monitor: migrate_set_parameter downtime-limit, info migrate", r.stderr + info.stdout + info.stderr)
    r = monitor("migrate_cancel")
    tap.check(r.returncode == 1 and "not being migrated" in r.stderr, "migrate_cancel with none running fails, saying so",
              r.stderr)
    dst2 = move(dst, f"tcp:127.0.0.1:{port}", f"tcp:127.0.0.1:{port}", "TCP on 127.0.0.1 (monitor)", via_monitor=True)
    tap.check(dst2.wait_for(r"file-done\r?\n", 120, since=0) is not None,
              "the file written across both moves completes on the last destination", dst2.tail())
    tap.check(poll(lambda: fetch(web), 60) == page, "after the second move too, the host forward reaches httpd")
    m = dst2.command("sync; md5sum /mnt/file", r"\n([0-9a-f]{32})  /mnt/file", 60)
    want = hashlib.md5(numbered_lines(LINES).encode()).hexdigest()
    tap.check(m is not None and m.group(1) == want, "the file has every line once, in order", dst2.tail())
    dst2.command("umount /mnt; echo umounted-''ok", r"umounted-ok\r?\n", 60)
    dst2.send("poweroff\n")
    tap.check(dst2.wait_exit(60) == 0, "the twice-moved guest powers off (exit 0)", dst2.tail())
finally:
    for v in vms:
        v.kill()
    pbus.stop()
    shutil.rmtree(tmp, ignore_errors=True)

tap.finish()

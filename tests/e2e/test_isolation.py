#!/usr/bin/env python3
"""The seed's promise, measured: services come and go, the VM does not notice.

A VM runs as orrery-vm@iso under a private systemd --user. The guest prints a
heartbeat line every 100 ms on serial0, which a test client watches. Every
client service is attached: a monitor, the guest-agent bridge (busy copying
files), a VNC server with a client receiving frames while the guest
redraws, and the viewer under Xvfb. Each service is then SIGKILLed
ORRERY_ISOLATION_KILLS times (default 40, a multiple of 4) at random moments;
systemd (or, for the monitor, which is no service, the test as a person
would) starts it again and it must reattach. Pass:
  - the heartbeat goes on: its numbers arrive in order with none missing
    (no guest output lost while clients die) and it never stops for
    GAP_HANG (10 s: a stalled VM, not a slow one; the largest gap is
    printed and kept in bench/RESULTS-e2e.md);
  - every kill followed by a reattach, within REATTACH_HANG (30 s: it catches
    a hang, not slowness; the times are printed and kept in
    bench/RESULTS-e2e.md, never asserted);
  - what the storm leaves behind in orrery-vm, measured after N = KILLS/4
    and after 4N kill rounds (a round kills each service once), each time
    once the last killed client is reattached:
      * open fds (/proc/PID/fd): the same after N and 4N rounds as before;
      * heap, as the resident anonymous pages of /proc/PID/smaps (which
        include malloc's free lists) outside the CPU engines' fixed-size
        tables and the threads' stacks: the growth from round N to 4N, per
        round, at most HEAP_SLOPE_KIB. The first N rounds may warm up
        (malloc arenas, sd-bus buffers); a leak per client keeps growing
        and shows as a slope, noise that is page-sized does not. The
        tables and stacks are the unnamed anonymous mappings of 2 MiB or
        more that exist before the storm; they are left out while they
        stay in place (one that moves or grows counts again). The tables
        are bounded and become resident as the guest runs code it had not
        run before, which the guest's side of the storm (copies, the
        heartbeat) does.
"""
import os
import random
import re
import signal
import sys
import socket
import subprocess
import threading
import time

import dbus

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
sys.path.insert(0, os.path.dirname(__file__))
from orrery_test import Pty, Tap, Xvfb  # noqa: E402
from serial_client import SerialClient, fd_count, wait_ready  # noqa: E402
from user_session import open_session, say, wait_for  # noqa: E402

VM = "iso"
UNIT = f"orrery-vm@{VM}.service"
KILLS = max(4, int(os.environ.get("ORRERY_ISOLATION_KILLS", "40")) // 4 * 4)
N = KILLS // 4
REATTACH_HANG = 30.0  # a hang, not a speed: reattach times are reported, not asserted
GAP_HANG = 10.0  # a stalled VM, not a slow one: the largest gap is reported, not asserted below this
VNC_PORT = 5978
VNC_PROBE = os.environ["ORRERY_VNC_PROBE"]
# KiB of heap per kill round (4 clients killed and reattached) from round N to 4N: a page per round of
# noise passes; a leak of a client's connection state (sd-bus buffers, tracked names) does not.
HEAP_SLOPE_KIB = 8


def anon_by_mapping(pid):
    """{address range: (size KiB, path or [heap]/[stack]/'', resident anonymous KiB)} from /proc/PID/smaps."""
    maps, current = {}, None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            fields = line.split()
            if re.fullmatch(r"[0-9a-f]+-[0-9a-f]+", fields[0]):
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                current = fields[0]
                maps[current] = ((hi - lo) >> 10, fields[5] if len(fields) > 5 else "", 0)
            elif fields[0] == "Anonymous:" and current:
                maps[current] = maps[current][:2] + (int(fields[1]),)
    return maps


def engine_tables(pid):
    """The address ranges of the CPU engines' tables: unnamed anonymous mappings of 2 MiB or more."""
    return {r for r, (size, name, _) in anon_by_mapping(pid).items() if size >= 2048 and not name}


def heap_kib(pid, tables):
    """Resident anonymous KiB outside 'tables' (ranges that moved or grew count again)."""
    return sum(anon for r, (_, _, anon) in anon_by_mapping(pid).items() if r not in tables)


class Heartbeat:
    """Watches serial0 for the guest's 'hb N' lines; records the largest gap between arrivals."""

    def __init__(self, bus, vm):
        self.serial = SerialClient(bus, vm)
        self.serial.send("\n")
        self.serial.command("echo hb-ready", r"hb-ready\r?\n", timeout=60)
        self.serial.send("(i=0; while :; do i=$((i+1)); echo hb $i; usleep 100000; done) &\n")
        self.serial.wait_for(r"hb \d+\r?\n", timeout=30)
        self.last = time.monotonic()
        self.max_gap = 0.0
        self.count = 0
        self.last_n = None
        self.out_of_order = 0  # "hb N" lines whose N is not the previous one plus 1
        self.stop = False
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        rx = re.compile(rb"hb (\d+)\r?\n")
        try:
            while not self.stop:
                self.serial.read_available()
                for m in rx.finditer(self.serial.buffer):
                    n = int(m.group(1))
                    if self.last_n is not None and n != self.last_n + 1:
                        self.out_of_order += 1
                    self.last_n = n
                    now = time.monotonic()
                    self.max_gap = max(self.max_gap, now - self.last)
                    self.last = now
                    self.count += 1
                # Keep only an unfinished line.
                cut = self.serial.buffer.rfind(b"\n")
                if cut >= 0:
                    self.serial.buffer = self.serial.buffer[cut + 1:]
        except Exception as e:  # noqa: BLE001 — reported by the test
            self.error = e

    def current_gap(self):
        return max(self.max_gap, time.monotonic() - self.last)

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.serial.close()


class MonitorVictim:
    """An interactive orrery-monitor on a pty, restarted by the test after each kill."""

    name = "orrery-monitor"

    def __init__(self, session):
        self.session = session
        self.pty = None

    def start(self):
        self.pty = Pty([f"{self.session.prefix}/bin/orrery-monitor", VM], env=dict(self.session.env, TERM="dumb"))
        return self.pty.expect(rf"VM '{VM}' \(running\)", timeout=30) is not None

    def pid(self):
        return self.pty.proc.pid

    def after_kill(self):
        self.pty.proc.wait(10)
        self.pty.close()
        return self.start()

    def close(self):
        if self.pty:
            self.pty.close()


class VncVictim:
    """orrery-vnc@iso (systemd unit) with a libvncclient client taking frames while the guest redraws."""

    name = "orrery-vnc"
    unit = f"orrery-vnc@{VM}.service"

    def __init__(self, session):
        self.session = session
        self.client = None

    def connect(self, timeout):
        """A new client, once the server accepts one and sends it the VM's screen size."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", VNC_PORT), timeout=0.5).close()
            except OSError:
                time.sleep(0.02)
                continue
            p = subprocess.Popen([VNC_PROBE, f"127.0.0.1:{VNC_PORT}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 text=True)
            if p.stdout.readline().startswith("connected 320 240"):
                self.client = p
                return True
            p.kill()
            p.wait()
        return False

    def start(self):
        self.session.write_config(f".config/orrery/vnc/{VM}.conf", f"ORRERY_VNC_ARGS=--listen 127.0.0.1:{VNC_PORT}\n")
        self.session.systemctl("start", self.unit)
        return self.connect(10)

    def pid(self):
        return self.session.main_pid(self.unit)

    def after_kill(self):
        self.client.kill()
        self.client.wait()
        return self.connect(REATTACH_HANG)

    def close(self):
        if self.client:
            self.client.kill()
            self.client.wait()


class AgentVictim:
    """orrery-agent.service, kept busy copying files into the guest by a client thread."""

    name = "orrery-agent"
    unit = "orrery-agent.service"

    def __init__(self, session, tmpdir):
        self.session = session
        self.bus = dbus.bus.BusConnection(session.env["DBUS_SESSION_BUS_ADDRESS"])
        self.src = os.path.join(tmpdir, "copy.bin")
        with open(self.src, "wb") as f:
            f.write(os.urandom(256 << 10))
        self.stop = False
        self.copies = self.errors = 0
        self.thread = None

    def agent(self):
        return dbus.Interface(self.bus.get_object("org.orrery.Agent", f"/org/orrery/Agent/{VM}"), "org.orrery.Agent1")

    def ping(self):
        try:
            self.agent().Ping(timeout=REATTACH_HANG)
            return True
        except dbus.DBusException as e:
            self.why = (f"{e.get_dbus_name()}: {e.get_dbus_message()}; "
                        f"{self.session.unit_property(self.unit, 'ActiveState')} "
                        f"{self.session.unit_property(self.unit, 'Result')} "
                        f"status {self.session.unit_property(self.unit, 'ExecMainStatus')} "
                        f"restarts {self.session.unit_property(self.unit, 'NRestarts')}")
            return False

    def _copy_loop(self):
        while not self.stop:
            try:
                with open(self.src, "rb") as f:
                    self.agent().CopyToGuest(dbus.types.UnixFd(f), "/tmp/storm.bin", timeout=60)
                self.copies += 1
            except dbus.DBusException:
                self.errors += 1  # the bridge was killed mid-copy: expected, and the next copy goes on
                time.sleep(0.05)

    def start(self):
        ok = wait_for(self.ping, 60, interval=0.5)
        self.thread = threading.Thread(target=self._copy_loop, daemon=True)
        self.thread.start()
        return ok

    def pid(self):
        return self.session.main_pid(self.unit)

    def after_kill(self):
        # systemd restarts it (or the next call activates it); it must be back with the guest connected.
        return wait_for(self.ping, REATTACH_HANG, interval=0.02)

    def close(self):
        self.stop = True
        if self.thread:
            self.thread.join(90)
        self.bus.close()


class ViewerVictim:
    """orrery-viewer.service under Xvfb; after a crash systemd restarts it and the user opens the VM again."""

    name = "orrery-viewer"
    unit = "orrery-viewer.service"

    def __init__(self, session):
        self.session = session
        self.xvfb = Xvfb()
        self.env = dict(session.env, DISPLAY=self.xvfb.display)
        session.systemctl("set-environment", f"DISPLAY={self.xvfb.display}", "GDK_BACKEND=x11", "NO_AT_BRIDGE=1")

    def window_running(self):
        r = self.session.run(["xdotool", "search", "--name", f"^{VM} — running$"], check=False, env=self.env)
        return bool(r.stdout.split())

    def open(self, timeout):
        r = self.session.run(["gapplication", "launch", "org.orrery.Viewer", VM], check=False, env=self.env,
                             timeout=30)
        self.why = (f"gapplication: {r.returncode} {r.stderr.strip()}; "
                    f"{self.session.unit_property(self.unit, 'ActiveState')} {self.session.unit_property(self.unit, 'Result')} "
                    f"restarts {self.session.unit_property(self.unit, 'NRestarts')}\n"
                    + self.session.systemctl("status", self.unit, "--no-pager", check=False).stdout)
        return r.returncode == 0 and wait_for(self.window_running, timeout, interval=0.02)

    def start(self):
        return self.open(30)

    def pid(self):
        return self.session.main_pid(self.unit)

    def after_kill(self):
        # A launch sent while the bus still routes the name to the dead process fails at once; a person
        # launching again is what this does.
        deadline = time.monotonic() + REATTACH_HANG
        while time.monotonic() < deadline:
            if self.open(max(0.1, deadline - time.monotonic())):
                return True
        return False

    def close(self):
        self.session.systemctl("stop", self.unit, check=False)
        self.xvfb.stop()


def main():
    tap = Tap()
    session = open_session(tap, "isolation")
    bus = session.env["DBUS_SESSION_BUS_ADDRESS"]
    heartbeat = None
    victims = []
    try:
        session.write_config(f".config/orrery/vm/{VM}.conf", "display = 320x240\n")
        session.systemctl("start", UNIT)
        if not tap.check(wait_ready(bus, VM), "the guest reaches ready under orrery-vm@iso"):
            return tap
        vm_pid = session.main_pid(UNIT)
        try:
            heartbeat = Heartbeat(bus, VM)
        except (TimeoutError, EOFError) as e:
            tap.check(False, "the guest prints a heartbeat every 100 ms on serial0", e)
            return tap

        # The VM redraws its (small) screen without pause, so frames are always in flight.
        heartbeat.serial.send("(i=0; while :; do i=$((i+1)); orrery-guest-probe pattern $i >/dev/null; done) &\n")
        victims = [MonitorVictim(session), VncVictim(session), AgentVictim(session, session.root),
                   ViewerVictim(session)]
        for v in victims:
            tap.check(v.start(), f"{v.name} attaches")

        wait_for(lambda: heartbeat.count > 20, 10)
        tables = engine_tables(vm_pid)
        fds_before, heap_before = fd_count(vm_pid), heap_kib(vm_pid, tables)
        marks = {}  # kill rounds done -> (fds, heap KiB)

        reattach = {v.name: [] for v in victims}
        failures = {v.name: 0 for v in victims}
        rng = random.Random(1234)
        t0 = time.monotonic()
        for round_ in range(KILLS):
            for v in rng.sample(victims, len(victims)):
                time.sleep(rng.uniform(0.0, 0.3))  # a random moment in what the client is doing
                pid = v.pid()
                if pid <= 0:  # never kill(0): that is our own process group
                    failures[v.name] += 1
                    say(f"{v.name}: no process to kill before kill {round_ + 1}")
                    continue
                os.kill(pid, signal.SIGKILL)
                killed = time.monotonic()
                ok = v.after_kill()
                took = time.monotonic() - killed
                if ok and took <= REATTACH_HANG:
                    reattach[v.name].append(took)
                else:
                    failures[v.name] += 1
                    say(f"{v.name}: kill {round_ + 1} not reattached ({took:.2f} s, ok={ok}): "
                        f"{getattr(v, 'why', '')}")
            if round_ + 1 in (N, KILLS):
                # The same clients attached again: once orrery-vm has noticed the last killed one is gone, its
                # fds are back where they were (polled: the noticing is asynchronous).
                wait_for(lambda: fd_count(vm_pid) == fds_before, 10)
                marks[round_ + 1] = (fd_count(vm_pid), heap_kib(vm_pid, tables))
        storm = time.monotonic() - t0
        (fds_n, heap_n), (fds_after, heap_after) = marks[N], marks[KILLS]
        slope = (heap_after - heap_n) / (KILLS - N)

        say(f"storm: {KILLS} kills of each of {len(victims)} services in {storm:.0f} s; "
            f"{heartbeat.count} heartbeats, largest gap {heartbeat.current_gap() * 1000:.0f} ms")
        agent = next(v for v in victims if isinstance(v, AgentVictim))
        say(f"copies into the guest meanwhile: {agent.copies} completed, {agent.errors} cut by a kill")
        for v in victims:
            times = sorted(reattach[v.name]) or [float("nan")]
            say(f"{v.name}: reattached {len(reattach[v.name])}/{KILLS}, median {times[len(times) // 2] * 1000:.0f} ms, "
                f"max {times[-1] * 1000:.0f} ms")
        say(f"orrery-vm: fds {fds_before} -> {fds_n} after {N} rounds -> {fds_after} after {KILLS}; heap "
            f"{heap_before} -> {heap_n} -> {heap_after} KiB: {(heap_n - heap_before) / N:.1f} KiB/round over the "
            f"first {N} rounds, {slope:.1f} KiB/round over the next {KILLS - N}")

        tap.check(heartbeat.error is None and heartbeat.out_of_order == 0 and heartbeat.current_gap() <= GAP_HANG,
                  f"the heartbeat went on: {heartbeat.count} lines in order, none missing, never stalled for "
                  f"{GAP_HANG:.0f} s (largest gap {heartbeat.current_gap() * 1000:.0f} ms)",
                  heartbeat.error or f"{heartbeat.out_of_order} lines out of order")
        for v in victims:
            tap.check(failures[v.name] == 0 and len(reattach[v.name]) == KILLS,
                      f"{v.name}: killed {KILLS} times, reattached every time (none hung for {REATTACH_HANG:.0f} s)",
                      f"{failures[v.name]} failures")
        tap.check(agent.copies > 0 and agent.ping(),
                  f"copies went on between the kills ({agent.copies} completed) and the bridge answers at the end")
        tap.check(session.main_pid(UNIT) == vm_pid and session.unit_property(UNIT, "NRestarts") == "0",
                  "orrery-vm kept running throughout (same PID, no restart)")
        tap.check(fds_n == fds_before and fds_after == fds_before,
                  f"orrery-vm's open fds are the same after {N} and {KILLS} rounds ({fds_before} -> {fds_n} -> "
                  f"{fds_after})")
        tap.check(slope <= HEAP_SLOPE_KIB,
                  f"orrery-vm's heap (anonymous memory outside the CPU engines' tables) grows at most "
                  f"{HEAP_SLOPE_KIB} KiB per kill round from round {N} to {KILLS} "
                  f"({heap_n} -> {heap_after} KiB: {slope:.1f} KiB/round)")
    finally:
        for v in victims:
            v.close()
        if heartbeat:
            heartbeat.close()
        session.close()
    return tap


if __name__ == "__main__":
    main().finish()

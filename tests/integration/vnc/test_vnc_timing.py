#!/usr/bin/env python3
"""orrery-vnc's timing lines (what bench/vnc_vs_qemu.py parses), against
orrery-fake-vm on a private bus and a libvncclient client: at debug level
every FramebufferUpdate that carries a VM Update is logged once, as
"vnc-timing client=ADDR:PORT update_ns=T0 written_ns=T1 latency_us=L"
with CLOCK_MONOTONIC stamps that bracket the client's own receipt;
without debug there is no such line."""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from orrery_test import PrivateBus, Tap  # noqa: E402
from vnc_util import TIMEOUT, Probe, Server, wait_until  # noqa: E402

FAKE_VM = os.environ["ORRERY_FAKE_VM"]
NAME = "timingtest"
WIDTH, HEIGHT = 320, 200
ROUNDS = 5
TIMING = re.compile(r"vnc-timing client=(\S+) update_ns=(\d+) written_ns=(\d+) latency_us=(\d+)$")

tap = Tap()
pbus = PrivateBus()


def fake_call(method, signature, *args):
    subprocess.run(["busctl", f"--address={pbus.address}", "call", f"org.orrery.VM.{NAME}", "/org/orrery/FakeVM",
                    "org.orrery.FakeVM1", method, signature] + [str(a) for a in args],
                   check=True, timeout=TIMEOUT, stdout=subprocess.DEVNULL)


def change(value):
    """The whole screen to value, and the Update that says so; when it was sent."""
    fake_call("Fill", "u", value)
    sent = time.monotonic_ns()
    fake_call("EmitUpdate", "a(uuuu)", 1, 0, 0, WIDTH, HEIGHT)
    return sent


r, w = os.pipe()
fake = subprocess.Popen([FAKE_VM, f"--name={NAME}", f"--address={pbus.address}", f"--width={WIDTH}",
                         f"--height={HEIGHT}", f"--ready-fd={w}"], pass_fds=(w,))
os.close(w)
tap.check(len(os.read(r, 1)) == 1, "orrery-fake-vm owns its name")
os.close(r)

servers, probes = [], []
try:
    # With debug: one line per FramebufferUpdate that carried an Update.
    debug = Server(NAME, pbus.address, env=dict(os.environ, ORRERY_LOG_LEVEL="debug"))
    servers.append(debug)
    tap.check(debug.log.wait(r"serving VM") is not None, "orrery-vnc (debug) serves the fake VM")
    probe = Probe(debug.address)
    probes.append(probe)
    tap.check(probe.connected and probe.size == (WIDTH, HEIGHT), "a client connects", str(probe.size))
    first = len(debug.log.lines)
    sent, received = [], []
    for i in range(ROUNDS):
        before = probe.info()[2]
        sent.append(change(0x100000 + i * 0x010101))
        reply = probe.cmd(f"wait-update {before} {int(TIMEOUT * 1000)}", TIMEOUT + 10)
        received.append(time.monotonic_ns())
        tap.check(reply is not None and reply.startswith("ok"), f"update {i} reaches the client", reply)
        # The log line is written after the update: wait for it, not for a fixed time.
        wait_until(lambda: debug.log.count(TIMING.pattern, first) > i)
    lines = [m for m in (TIMING.search(line) for line in debug.log.lines[first:]) if m]
    tap.check(len(lines) == ROUNDS, f"one timing line per update ({ROUNDS})", debug.log.text())
    ok_order = all(sent[i] <= int(m.group(2)) <= int(m.group(3)) <= received[i] for i, m in enumerate(lines))
    tap.check(ok_order, "Update received and FramebufferUpdate written lie between the change and its receipt",
              "\n".join(m.group(0) for m in lines))
    tap.check(all(int(m.group(4)) == (int(m.group(3)) - int(m.group(2))) // 1000 for m in lines),
              "latency_us is written_ns - update_ns")
    tap.check(all(re.fullmatch(r"127\.0\.0\.1:\d+", m.group(1)) for m in lines), "the line names the client",
              lines[0].group(1) if lines else None)

    # Without debug: no timing line at all.
    quiet = Server(NAME, pbus.address, env={k: v for k, v in os.environ.items() if k != "ORRERY_LOG_LEVEL"})
    servers.append(quiet)
    tap.check(quiet.log.wait(r"serving VM") is not None, "orrery-vnc (default level) serves the fake VM")
    qprobe = Probe(quiet.address)
    probes.append(qprobe)
    for i in range(ROUNDS):
        before = qprobe.info()[2]
        change(0x200000 + i)
        reply = qprobe.cmd(f"wait-update {before} {int(TIMEOUT * 1000)}", TIMEOUT + 10)
        tap.check(reply is not None and reply.startswith("ok"), f"update {i} reaches the second client", reply)
    tap.check(quiet.log.count(r"vnc-timing") == 0, "no timing line without debug", quiet.log.text())
finally:
    for p in probes:
        p.close()
    for s in servers:
        s.kill()
    fake.terminate()
    fake.wait()
    pbus.stop()
tap.finish()

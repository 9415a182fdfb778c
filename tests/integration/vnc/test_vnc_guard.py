#!/usr/bin/env python3
"""orrery-vnc against idle connections and password guessing (no VM needed:
the server serves its placeholder screen meanwhile).

Every time bound here is a lower bound the server itself guarantees (a
delay cannot end early) or a generous upper bound that only catches hangs:
nothing depends on the machine's speed."""
import os
import re
import select
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from orrery_test import PrivateBus, Tap  # noqa: E402
from vnc_util import TIMEOUT, Probe, RawClient, Server, closed_by_peer, wait_until  # noqa: E402

NAME = "guardtest"
HANDSHAKE_TIMEOUT = 2.0
BASE_DELAY = 0.5  # guard.h: GUARD_BASE_USEC, doubling per failure

tap = Tap()
pbus = PrivateBus()
tmp = tempfile.TemporaryDirectory()

pw = os.path.join(tmp.name, "password")
with open(pw, "w") as f:
    f.write("owner123\n")
os.chmod(pw, 0o600)
bad = os.path.join(tmp.name, "bad")
with open(bad, "w") as f:
    f.write("guess\n")

s = Server(NAME, pbus.address, "--password-file", pw, "--handshake-timeout", str(HANDSHAKE_TIMEOUT))
host, port = s.host_port()
probes, idle = [], []
try:
    # 1. Idle connections do not lock out the owner, nor take an authenticated client's place.
    first = Probe(s.address, "--password-file", pw)
    probes.append(first)
    tap.check(first.connected, "the owner connects with the password", s.log.text())
    mark = len(s.log.lines)
    for _ in range(40):
        idle.append(socket.create_connection((host, port), timeout=TIMEOUT))
    owner = Probe(s.address, "--password-file", pw)
    probes.append(owner)
    tap.check(owner.connected and owner.info() is not None,
              "with 40 idle connections open before their handshake, the owner still connects and authenticates",
              s.log.text())
    tap.check(first.info() is not None, "the client authenticated before them is still served", s.log.text())
    evicted = r"before the end of their handshake; closing the oldest"
    tap.check(wait_until(lambda: s.log.count(evicted, start=mark) >= 36),
              "the idle connections beyond the per-source limit were closed, oldest first (logged)", s.log.text())
    for c in idle:
        c.close()
    idle = []

    # 2. An idle client is closed by the server after the handshake timeout: EOF or a reset, not our timeout.
    mark = len(s.log.lines)
    t0 = time.monotonic()
    c = socket.create_connection((host, port), timeout=TIMEOUT)
    name = "%s:%d" % c.getsockname()[:2]
    try:
        how = closed_by_peer(c)
    except socket.timeout:
        how = "still open after our own timeout"
    elapsed = time.monotonic() - t0
    c.close()
    logged = s.log.wait(rf"client {re.escape(name)}: handshake not finished within", start=mark)
    tap.check(how in ("eof", "reset") and elapsed >= HANDSHAKE_TIMEOUT and logged is not None,
              f"an idle client is closed by the server after the handshake timeout ({how} after {elapsed:.1f} s,"
              f" timeout {HANDSHAKE_TIMEOUT} s; logged)", s.log.text())

    # 3. Password guessing: four wrong answers sent at once; the server answers them one by one,
    #    each after a longer delay (0, 0.5, 1, 2 s after the previous failure).
    mark = len(s.log.lines)
    guessers = [RawClient(host, port) for _ in range(4)]
    for g in guessers:
        g.to_challenge()
    t0 = time.monotonic()
    for g in guessers:
        g.send_response()
    verdicts, waiting = [], list(guessers)
    deadline = time.monotonic() + TIMEOUT
    while waiting and time.monotonic() < deadline:
        ready, _, _ = select.select([g.sock for g in waiting], [], [], deadline - time.monotonic())
        for g in [g for g in waiting if g.sock in ready]:
            verdicts.append((g.result(), time.monotonic() - t0))
            waiting.remove(g)
    for g in guessers:
        g.close()
    times = sorted(t for _, t in verdicts)
    # The j-th answer cannot come before the sum of the delays of the j failures before it.
    floors = [sum(BASE_DELAY * 2 ** i for i in range(j)) for j in range(4)]
    tap.check(len(verdicts) == 4 and all(r == 1 for r, _ in verdicts) and all(t >= f for t, f in zip(times, floors)),
              "four wrong passwords at once are answered one by one after growing delays "
              f"(answers at {', '.join(f'{t:.2f}' for t in times)} s; no earlier than "
              f"{', '.join(f'{f:.1f}' for f in floors)} s)", verdicts)
    s.log.wait(r"wrong VNC password \(failure 4 ", start=mark)  # written before the answer, read by a thread
    failures = [int(m.group(1)) for m in
                (re.search(r"wrong VNC password \(failure (\d+) from 127\.0\.0\.1", line)
                 for line in s.log.lines[mark:]) if m]
    tap.check(failures == [1, 2, 3, 4], f"each failure is logged with its count ({failures})", s.log.text())

    # 4. The right password still works afterwards (after the current delay), and clears the count.
    t0 = time.monotonic()
    right = Probe(s.address, "--password-file", pw)
    probes.append(right)
    waited = time.monotonic() - t0
    tap.check(right.connected, f"the right password still connects after the failures (after {waited:.1f} s)",
              s.log.text())
    mark = len(s.log.lines)
    wrong = Probe(s.address, "--password-file", bad)
    probes.append(wrong)
    m = s.log.wait(r"wrong VNC password \(failure (\d+)", start=mark)
    tap.check(not wrong.connected and m is not None and m.group(1) == "1",
              "after a right password the source starts afresh (the next failure is failure 1)", s.log.text())
    tap.check(s.alive(), "orrery-vnc is still running", s.log.text())
finally:
    for c in idle:
        c.close()
    for p in probes:
        p.kill()
    s.kill()

pbus.stop()
tap.finish()

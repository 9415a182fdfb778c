#!/usr/bin/env python3
"""orrery-vnc follows a live migration: a real RFB client (vnc-probe, on
libvncclient) connected before Machine1.Migrate stays connected to the same
server while the VM moves to a new orrery-vm --incoming process, sees the
screen the guest left (the framebuffer travels with the VM), and then what
the guest draws in its new process; its keys reach the guest there. The
guest prints a heartbeat every 100 ms throughout: no beat is lost or
repeated across the move.

Keys held during the move: one pressed through Keyboard1.Press and never
released, one held down by the VNC client. The guest's evdev reader
(orrery-guest-probe events) sees both released on the destination, and
neither repeats there afterwards; the VNC client's own release later is a
no-op for the guest."""
import os
import re
import subprocess
import sys
import tempfile

import dbus

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from orrery_test import BOOT_TIMEOUT, READY, PrivateBus, Tap, Vm  # noqa: E402
import vnc_util  # noqa: E402
from vnc_util import TIMEOUT, wait_until  # noqa: E402

FB_CHECK = os.environ["ORRERY_FB_CHECK"]
NAME = "vncmig"
WIDTH, HEIGHT = 640, 480
EV_KEY, KEY_A, XK_a = 1, 30, 0x61
KEY_B, KEY_C, XK_c = 48, 46, 0x63
BEAT = re.compile(r"beat=(\d+)\r?\n")

tap = Tap()
pbus = PrivateBus()
tmp = tempfile.TemporaryDirectory()
common = ["--display", f"{WIDTH}x{HEIGHT}", "--no-config", "--memory", "256M"]


def pattern_ok(probe, seed):
    d = probe.dump()
    if not d or d[0] != WIDTH or d[1] != HEIGHT:
        return False
    r = subprocess.run([FB_CHECK, str(WIDTH), str(HEIGHT), str(WIDTH * 4), str(seed)], input=d[2],
                       capture_output=True)
    return r.returncode == 0


def beats(*vms):
    text = ""
    for vm in vms:
        with vm.lock:
            text += vm.output
    return [int(m.group(1)) for m in BEAT.finditer(text)]


def key_events(vm, code, value, since=0):
    with vm.lock:
        return len(re.findall(rf"orrery-probe: event \w+ type={EV_KEY} code={code} value={value}\r?\n",
                              vm.output[since:]))


def draw(vm, seed):
    return vm.command(f"orrery-guest-probe pattern {seed}", rf"pattern drawn {WIDTH}x{HEIGHT}", TIMEOUT) is not None


vms, server, probe = [], None, None
try:
    src = Vm(*common, name=NAME, bus=pbus.address)
    vms.append(src)
    if not tap.check(src.wait_for(READY, BOOT_TIMEOUT) is not None, "the guest boots", src.tail()):
        tap.finish()
    server = vnc_util.Server(NAME, pbus.address)
    probe = vnc_util.Probe(server.address, dump_dir=tmp.name)
    tap.check(probe.connected, "a libvncclient client connects to orrery-vnc", server.log.text())
    draw(src, 3)
    tap.check(wait_until(lambda: pattern_ok(probe, 3)), "the client sees what the guest drew")

    src.send("(i=0; while true; do i=$((i+1)); echo beat=$i; sleep 0.1; done) &\n")
    tap.check(src.wait_for(r"beat=5\r?\n", 60) is not None, "the heartbeat runs", src.tail())
    tap.check(src.command("orrery-guest-probe events &", r"orrery-probe: listening (\d+) devices", TIMEOUT)
              is not None, "the guest's evdev reader listens", src.tail())
    bus = dbus.bus.BusConnection(pbus.address)
    obj = bus.get_object(f"org.orrery.VM.{NAME}", f"/org/orrery/VM/{NAME}")
    machine = dbus.Interface(obj, "org.orrery.Machine1")
    dbus.Interface(obj, "org.orrery.Keyboard1").Press(dbus.UInt32(KEY_B))
    tap.check(probe.key(XK_c, True), "the VNC client holds a key down")
    tap.check(wait_until(lambda: key_events(src, KEY_B, 1) == 1 and key_events(src, KEY_C, 1) == 1),
              "the guest sees both keys pressed (Keyboard1.Press, the VNC client's key)", src.tail(600))

    sock = os.path.join(tmp.name, "mig.sock")
    dst = Vm(*common, "--incoming", f"unix:{sock}", name=NAME, bus=pbus.address)
    vms.append(dst)
    tap.check(wait_until(lambda: "waits for a migration" in dst.stderr, 60), "the destination waits", dst.tail())
    machine.Migrate(f"unix:{sock}")
    tap.check(src.wait_exit(120) == 0, "the VM moved: the source exits 0", src.tail())
    tap.check(key_events(src, KEY_B, 0) == 0 and key_events(src, KEY_C, 0) == 0,
              "the source's guest never saw the keys released (it paused first)", src.tail(600))
    released = wait_until(lambda: key_events(dst, KEY_B, 0) == 1 and key_events(dst, KEY_C, 0) == 1)
    tap.check(released, "the guest on the destination sees both held keys released", dst.tail(600))
    # A key still down in the guest autorepeats (value 2) every few tens of ms: ten beats show none.
    with dst.lock:
        mark = len(dst.output)
    have = len(beats(dst))
    wait_until(lambda: len(beats(dst)) >= have + 10, 60)
    tap.check(len(beats(dst)) >= have + 10 and
              all(key_events(dst, code, value, mark) == 0 for code in (KEY_B, KEY_C) for value in (1, 2)),
              "no key stays down on the destination (no repeat for a second)", dst.tail(600))
    # Beats on both sides (at least the 5 waited for before the move, the 10 after it), one sequence.
    seq = beats(src, dst)
    tap.check(len(beats(src)) >= 5 and len(beats(dst)) >= 10 and seq == list(range(seq[0], seq[0] + len(seq))),
              f"the heartbeat goes on across the move, no beat lost or repeated ({len(seq)} beats)", seq[-40:])
    tap.check(probe.key(XK_c, False) and wait_until(lambda: len(beats(dst)) >= have + 15, 60) and
              key_events(dst, KEY_C, 0) == 1,
              "the VNC client's own release afterwards changes nothing in the guest", dst.tail(600))

    tap.check(server.alive() and probe.info() is not None and probe.out.count(r"^disconnected$") == 0,
              "orrery-vnc and its client stay connected across the move", server.log.text())
    tap.check(wait_until(lambda: pattern_ok(probe, 3)),
              "right after the move the client still sees the guest's screen (the framebuffer moved with it)")
    draw(dst, 4)
    tap.check(wait_until(lambda: pattern_ok(probe, 4)),
              "the same client sees what the guest draws in its new process", server.log.text())
    probe.key(XK_a, True)
    probe.key(XK_a, False)
    tap.check(dst.wait_for(rf"orrery-probe: event (\w+) type={EV_KEY} code={KEY_A} value=1\r?\n", TIMEOUT) is not None,
              "its keys reach the guest in the new process", dst.tail(600))
finally:
    if probe:
        probe.kill()
    if server:
        server.kill()
    for v in vms:
        v.kill()
    pbus.stop()

tap.finish()

#!/usr/bin/env python3
"""orrery-vnc follows a live migration: a real RFB client (vnc-probe, on
libvncclient) connected before Machine1.Migrate stays connected to the same
server while the VM moves to a new orrery-vm --incoming process, sees the
screen the guest left (the framebuffer travels with the VM), and then what
the guest draws in its new process; its keys reach the guest there."""
import os
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

    sock = os.path.join(tmp.name, "mig.sock")
    dst = Vm(*common, "--incoming", f"unix:{sock}", name=NAME, bus=pbus.address)
    vms.append(dst)
    tap.check(wait_until(lambda: "waits for a migration" in dst.stderr, 60), "the destination waits", dst.tail())
    bus = dbus.bus.BusConnection(pbus.address)
    machine = dbus.Interface(bus.get_object(f"org.orrery.VM.{NAME}", f"/org/orrery/VM/{NAME}"), "org.orrery.Machine1")
    machine.Migrate(f"unix:{sock}")
    tap.check(src.wait_exit(120) == 0, "the VM moved: the source exits 0", src.tail())

    tap.check(server.alive() and probe.info() is not None and probe.out.count(r"^disconnected$") == 0,
              "orrery-vnc and its client stay connected across the move", server.log.text())
    tap.check(wait_until(lambda: pattern_ok(probe, 3)),
              "right after the move the client still sees the guest's screen (the framebuffer moved with it)")
    draw(dst, 4)
    tap.check(wait_until(lambda: pattern_ok(probe, 4)),
              "the same client sees what the guest draws in its new process", server.log.text())
    dst.command("orrery-guest-probe events &", r"orrery-probe: listening (\d+) devices", TIMEOUT)
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

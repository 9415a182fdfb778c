#!/usr/bin/env python3
"""orrery-monitor against a real VM on a private bus: scripted -c runs, exit codes,
screendump against the framebuffer memfd, interactive sessions through a pty
(console, two monitors, kill -9), the VM going away and coming back, ctrl-alt-delete."""
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib

import dbus

sys.path.insert(0, os.path.dirname(__file__))
from orrery_test import BOOT_TIMEOUT, READY, PrivateBus, Pty, Tap, Vm, poll  # noqa: E402

MONITOR = os.environ["ORRERY_MONITOR"]
NAME = "montest"
SERVICE = f"org.orrery.VM.{NAME}"
PATH = f"/org/orrery/VM/{NAME}"
WIDTH, HEIGHT = 320, 240
TIMEOUT = 60  # generous: catches hangs only (sanitizer builds on a loaded machine are slow)

tap = Tap()
pbus = PrivateBus()
state_dir = tempfile.TemporaryDirectory()
env = dict(os.environ, TERM="dumb", XDG_STATE_HOME=state_dir.name)


def monitor(*args, timeout=TIMEOUT):
    return subprocess.run([MONITOR, "--bus", pbus.address] + list(args), capture_output=True, text=True,
                          timeout=timeout, env=env, stdin=subprocess.DEVNULL)


def wait_until(cond, timeout=TIMEOUT):
    return poll(cond, timeout, 0.05)


class Session(Pty):
    """An interactive orrery-monitor on a pty."""

    def __init__(self, *args):
        super().__init__([MONITOR, "--bus", pbus.address] + list(args), env=env, timeout=TIMEOUT)


def png_pixels(path):
    """Decodes an 8-bit RGB, non-interlaced PNG: (width, height, rows of RGB bytes)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if zlib.crc32(kind + body) != struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0]:
            raise ValueError(f"bad CRC in {kind}")
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    w, h, depth, ctype, _, _, interlace = ihdr
    if (depth, ctype, interlace) != (8, 2, 0):
        raise ValueError(f"unexpected PNG layout {ihdr}")
    raw = zlib.decompress(idat)
    stride, bpp = w * 3, 3
    rows, prev = [], bytearray(stride)
    for y in range(h):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xff
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xff
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xff
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xff
        rows.append(bytes(line))
        prev = line
    return w, h, rows


def boot():
    vm = Vm("--display", f"{WIDTH}x{HEIGHT}", name=NAME, bus=pbus.address)
    if not tap.check(vm.wait_for(READY, BOOT_TIMEOUT) is not None, "the guest reaches ready", vm.tail()):
        vm.kill()
        tap.finish()
    return vm


bus = dbus.bus.BusConnection(pbus.address)


def vm_state():
    try:
        return str(bus.get_object(SERVICE, PATH).Get("org.orrery.Machine1", "State",
                                                     dbus_interface="org.freedesktop.DBus.Properties"))
    except dbus.DBusException as e:
        return e.get_dbus_name()


def serial_owner():
    return str(bus.get_object(SERVICE, f"{PATH}/Chardev/serial0").Get(
        "org.orrery.Chardev1", "Owner", dbus_interface="org.freedesktop.DBus.Properties"))


start = time.monotonic()
sessions = []
vm = boot()
try:
    # Scripted runs.
    r = monitor("--list")
    tap.check(r.returncode == 0 and r.stdout.split() == [NAME], "--list lists the VM", r)
    r = monitor(NAME, "-c", "info status")
    tap.check(r.returncode == 0 and "running" in r.stdout, "-c 'info status' prints running", r)
    r = monitor(NAME, "-c", "stop")
    tap.check(r.returncode == 0 and vm_state() == "paused", "-c stop: the bus shows the VM paused", (r, vm_state()))
    r = monitor(NAME, "-c", "info status")
    tap.check(r.returncode == 0 and "paused" in r.stdout, "-c 'info status' prints paused", r)
    r = monitor(NAME, "-c", "cont", "-c", "info status")
    tap.check(r.returncode == 0 and vm_state() == "running" and "running" in r.stdout,
              "-c cont -c 'info status': running again", (r, vm_state()))
    r = monitor(NAME, "-c", "info vm", "-c", "info chardevs", "-c", "info consoles", "-c", "info version")
    tap.check(r.returncode == 0 and f"name: {NAME}" in r.stdout and "serial0" in r.stdout
              and f"{WIDTH}x{HEIGHT}" in r.stdout, "info vm, chardevs, consoles, version", r)
    tap.check(re.search(rf"Console/0: .* {WIDTH}x{HEIGHT} stride {WIDTH * 4} format XR24$", r.stdout, re.M) is not None,
              "info consoles shows Console1.Format as its fourcc (XR24)", r.stdout)
    r = monitor(NAME, "-c", "stpo")
    tap.check(r.returncode == 1 and "did you mean 'stop'" in r.stderr, "an unknown command exits 1 with a suggestion", r)
    r = monitor(NAME, "-c", "sendkey")
    tap.check(r.returncode == 2 and "Usage: sendkey" in r.stderr, "a command with bad arguments exits 2 with its usage", r)
    r = monitor(NAME, "-c", "info bogus")
    tap.check(r.returncode == 2 and "Usage: info" in r.stderr, "a bad info topic exits 2 with the usage", r)
    r = monitor(NAME, "-c", "sendkey ctrl-nokey")
    tap.check(r.returncode == 2 and "unknown key 'nokey'" in r.stderr, "an unknown key name exits 2", r)
    r = monitor("-c", "info status")
    tap.check(r.returncode == 2, "-c without a VM name exits 2", r)
    r = monitor("nosuchvm", "-c", "info status")
    tap.check(r.returncode == 1 and "no VM named 'nosuchvm'" in r.stderr, "a VM that is not there: exit 1, said so", r)
    r = monitor(NAME, "-c", "info status", "-c", "cnt", "-c", "stop")
    tap.check(r.returncode == 1 and vm_state() == "running", "-c stops at the first failing command", r)
    r = subprocess.run([MONITOR, "--bus", pbus.address, NAME], input="info status\n# a comment\n\ninfo vm\nbogus\nstop\n",
                       capture_output=True, text=True, timeout=TIMEOUT, env=env)
    tap.check(r.returncode == 1 and "VM status: running" in r.stdout and "name: " in r.stdout and vm_state() == "running",
              "commands from a pipe run line by line and stop at the first failure", r)
    # No bridge on this bus: a clear reason, not a hang.
    r = monitor(NAME, "-c", "agent ping")
    tap.check(r.returncode == 1 and "org.orrery.Agent is not available" in r.stderr,
              "agent ping without a bridge on the bus fails at once, naming org.orrery.Agent", r)
    r = monitor(NAME, "-c", "agent shutdown sideways")
    tap.check(r.returncode == 2 and "Usage: agent shutdown [powerdown|reboot|halt]" in r.stderr,
              "agent shutdown with a bad mode prints its usage, exit 2", r)
    r = monitor(NAME, "-c", "agent copy-in /nonexistent/file /tmp/x")
    tap.check(r.returncode == 1 and "cannot open '/nonexistent/file'" in r.stderr,
              "agent copy-in of a missing host file names it", r)

    # screendump: the PNG's pixels are the framebuffer memfd's, read while the VM is paused.
    m = vm.command("orrery-guest-probe pattern 4", r"pattern drawn \d+x\d+\r?\n", 60)
    png = os.path.join(state_dir.name, "screen.png")
    r = monitor(NAME, "-c", "stop", "-c", f"screendump {png}")
    fb = vm.framebuffer()
    monitor(NAME, "-c", "cont")
    try:
        w, h, rows = png_pixels(png)
        expected = [bytes(v for x in range(WIDTH) for v in (fb[(y * WIDTH + x) * 4 + 2], fb[(y * WIDTH + x) * 4 + 1],
                                                           fb[(y * WIDTH + x) * 4])) for y in range(HEIGHT)]
        same = (w, h) == (WIDTH, HEIGHT) and rows == expected
        detail = None if same else f"{w}x{h}, differing rows: {[y for y in range(h) if rows[y] != expected[y]][:10]}"
    except (OSError, ValueError, TypeError) as e:
        same, detail = False, f"{e}; {r}"
    tap.check(m is not None and r.returncode == 0 and same, "screendump writes a PNG equal to the framebuffer memfd",
              detail)

    # savevm-file: the monitor opens the file and hands its fd to Machine1.Save; a new process restores it.
    saved = os.path.join(state_dir.name, "vm.save")
    r = monitor(NAME, "-c", f"savevm-file {saved}")
    tap.check(r.returncode == 0 and "saved VM" in r.stdout and vm_state() == "running" and
              open(saved, "rb").read(8) == b"ORRERYVM", "savevm-file saves the running VM, which runs on", r)
    r = monitor(NAME, "-c", f"savevm-file {state_dir.name}/no/such/dir/vm.save")
    tap.check(r.returncode == 1 and "cannot create" in r.stderr and vm_state() == "running",
              "savevm-file into a missing directory fails, naming the file", r)
    r = monitor(NAME, "-c", "savevm-file --bogus x")
    tap.check(r.returncode == 2 and "Usage: savevm-file" in r.stderr, "savevm-file with a bad option prints its usage", r)
    restored = Vm("--display", f"{WIDTH}x{HEIGHT}", "--restore", saved, name=NAME + "_restored")
    m = restored.command("echo restored-''ok", r"restored-ok\r?\n", 60)
    tap.check(m is not None and READY not in restored.output, "orrery-vm --restore runs the saved guest without booting",
              restored.tail())
    restored.kill()

    # Interactive: two monitors at once.
    a = Session(NAME)
    sessions.append(a)
    tap.check(a.expect(rf"\(orrery {NAME}\) ") is not None, "an interactive monitor shows its prompt", a.tail())
    tap.check(a.line("info status", r"VM status: running") is not None, "interactive 'info status' prints running",
              a.tail())
    tap.check(a.line("info sta\t", r"VM status: running") is not None, "Tab completes 'info sta' to 'info status'",
              a.tail())
    b = Session(NAME)
    sessions.append(b)
    b.expect(rf"\(orrery {NAME}\) ")
    a.line("stop", rf"\(orrery {NAME}\) ")
    tap.check(b.expect(rf"VM '{NAME}' paused") is not None, "a second monitor shows the pause made by the first",
              b.tail())
    tap.check(b.line("info status", r"VM status: paused") is not None and
              a.line("info status", r"VM status: paused") is not None, "both monitors report paused")
    b.line("cont", rf"\(orrery {NAME}\) ")
    tap.check(a.expect(rf"VM '{NAME}' running") is not None and vm_state() == "running",
              "the first monitor shows the resume made by the second", a.tail())
    tap.check(a.line("sotp", r"did you mean 'stop'") is not None, "interactive: an unknown command gets a suggestion",
              a.tail())

    # console: scrollback, a command round trip, Ctrl-] leaves.
    tap.check(a.line("console", r"connected to serial0") is not None and READY in a.tail(100000),
              "console attaches to serial0 after printing the scrollback", a.tail())
    r = monitor(NAME, "-c", "console")
    tap.check(r.returncode == 1 and "another client has it" in r.stderr, "a second console on serial0 is refused (Busy)",
              r)
    a.send("echo mon-$((1+2))\r")
    tap.check(a.expect(r"mon-3") is not None, "a command typed in the console runs in the guest", a.tail())
    a.send("\x1d")
    tap.check(a.expect(r"left serial0") is not None and a.line("info status", r"VM status: running") is not None,
              "Ctrl-] leaves the console, back at the monitor prompt", a.tail())
    tap.check(wait_until(lambda: serial_owner() == ""), "leaving the console frees serial0")

    # kill -9 a monitor attached to the console: the VM runs on, serial0 is free again.
    a.line("console", r"connected to serial0")
    tap.check(wait_until(lambda: serial_owner() != ""), "the console owns serial0")
    owner = serial_owner()
    r = monitor(NAME, "-c", "console --dump")
    tap.check(r.returncode == 0 and READY in r.stdout and "mon-3" in r.stdout
              and re.search(r"[\x00-\x08\x0b-\x1f\x7f]", r.stdout) is None and serial_owner() == owner,
              "console --dump prints the scrollback as plain text while another client holds serial0", r)
    r = monitor(NAME, "-c", "console --dump serial0")
    tap.check(r.returncode == 0 and "mon-3" in r.stdout, "console --dump CHARDEV names the chardev", r)
    r = monitor(NAME, "-c", "console --dump nosuch0")
    tap.check(r.returncode == 1 and "has no chardev 'nosuch0'" in r.stderr, "console --dump of a missing chardev: exit 1", r)
    r = monitor(NAME, "-c", "console --dump serial0 extra")
    tap.check(r.returncode == 2 and "Usage: console [--dump] [CHARDEV]" in r.stderr, "console with extra words: usage", r)
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait()
    tap.check(wait_until(lambda: serial_owner() == "") and vm.proc.poll() is None and vm_state() == "running",
              "after kill -9 of the monitor the VM runs on and serial0 is free", vm.tail(300))
    tap.check(b.line("console", r"connected to serial0") is not None, "another monitor can attach to the console",
              b.tail())
    b.send("echo again-$((2*3))\r")
    tap.check(b.expect(r"again-6") is not None, "and talk to the guest", b.tail())
    b.send("\x1d")
    b.expect(r"left serial0")

    # The VM goes away: the monitor says so, waits, and reattaches to a new VM of that name.
    b.send("quit\r")
    tap.check(b.expect(rf"VM '{NAME}' is gone") is not None and vm.wait_exit(TIMEOUT) is not None,
              "quit stops the VM and the monitor says it is gone", b.tail())
    tap.check(b.line("info status", r"is not on the bus") is not None, "commands while it is gone say so", b.tail())
    c = Session(NAME)
    sessions.append(c)
    tap.check(c.expect(rf"VM '{NAME}' is not on the bus; waiting for it") is not None,
              "a monitor started before its VM says it waits for it", c.tail())
    vm = boot()
    tap.check(c.expect(rf"VM '{NAME}' is on the bus \(running\)") is not None and
              c.line("info status", r"VM status: running") is not None,
              "and attaches when the VM arrives", c.tail())
    tap.check(b.expect(rf"VM '{NAME}' is on the bus \(running\)") is not None and
              b.line("info status", r"VM status: running") is not None,
              "the monitor reattaches when the VM comes back", b.tail())
    # Ctrl-D once the prompt is back: typed while a command runs, the terminal is
    # still in canonical mode and the line discipline swallows it (readline).
    b.expect(r"\(orrery [A-Za-z0-9_]+\) ")
    b.send("\x04")
    tap.check(b.proc.wait(TIMEOUT) == 0, "Ctrl-D leaves the monitor with status 0", b.tail())
    with open(os.path.join(state_dir.name, "orrery", "monitor_history")) as f:
        history = f.read()
    tap.check("info status" in history and "console" in history, "the history is kept in $XDG_STATE_HOME/orrery",
              history)

    # sendkey ctrl-alt-delete (on the second VM, at the end): the guest powers off cleanly.
    r = monitor(NAME, "-c", "sendkey ctrl-alt-delete")
    code = vm.wait_exit(60)
    tap.check(r.returncode == 0 and code == 0 and "reboot: Power down" in vm.output,
              f"sendkey ctrl-alt-delete powers the guest off cleanly (exit {code})", (r, vm.tail(500)))
finally:
    for s in sessions:
        s.close()
    vm.kill()
    pbus.stop()

print(f"# the monitor tests took {time.monotonic() - start:.1f} s (reported, not asserted: speed depends on load)")
tap.finish()

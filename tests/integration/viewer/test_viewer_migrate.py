#!/usr/bin/env python3
"""orrery-viewer follows a live migration, under Xvfb: a window open on the
VM before Machine1.Migrate stays open (same X window, same process) while
the VM moves to a new orrery-vm --incoming process, shows the screen the
guest left (the framebuffer travels with the VM), and then what the guest
draws in its new process, pixel for pixel against the new process's
framebuffer memfd. The guest prints a heartbeat every 100 ms throughout."""
import os
import re
import struct
import subprocess
import sys
import tempfile
import threading

import dbus

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from orrery_test import BOOT_TIMEOUT, PrivateBus, READY, Tap, Vm, Xvfb, poll  # noqa: E402

VIEWER = os.environ["ORRERY_VIEWER"]
FB_CHECK = os.environ["ORRERY_FB_CHECK"]
NAME = "viewermig"
WIDTH, HEIGHT = 640, 480
TIMEOUT = 60
COMMON = ["--display", f"{WIDTH}x{HEIGHT}", "--no-config", "--memory", "256M"]
BEAT = re.compile(r"beat=(\d+)\r?\n")

tap = Tap()


class Lines:
    """A process's stderr lines (the viewer reports its layout there with ORRERY_VIEWER_DEBUG=1)."""

    def __init__(self, stream):
        self.lines = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream):
        for raw in iter(stream.readline, b""):
            with self.lock:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def last(self, pattern):
        rx = re.compile(pattern)
        with self.lock:
            for line in reversed(self.lines):
                m = rx.search(line)
                if m:
                    return m
        return None

    def tail(self, n=30):
        with self.lock:
            return "\n".join(self.lines[-n:])


def x(*args):
    return subprocess.run(["xdotool", *args], capture_output=True, text=True, timeout=TIMEOUT, env=xenv)


def windows():
    return x("search", "--name", rf"^{NAME} — ").stdout.split()


def title(wid):
    return x("getwindowname", wid).stdout.strip()


def screenshot(wid):
    """The window's pixels as (width, height, rows of BGRX bytes), read with xwd."""
    data = subprocess.run(["xwd", "-silent", "-id", wid], capture_output=True, timeout=TIMEOUT, env=xenv).stdout
    h = struct.unpack(">25I", data[:100])
    header_size, width, height, byte_order, bpp, bpl, ncolors = h[0], h[4], h[5], h[7], h[11], h[12], h[19]
    if bpp != 32 or byte_order != 0 or h[14] != 0xff0000:
        raise ValueError(f"unexpected xwd format: {bpp} bpp, byte order {byte_order}")
    start = header_size + ncolors * 12
    return width, height, [data[start + y * bpl:start + y * bpl + width * 4] for y in range(height)]


def rgb(row):
    return row[0::4], row[1::4], row[2::4]


def shows_framebuffer(wid, vm):
    """Whether the window shows vm's framebuffer memfd exactly, at 1:1, where the viewer says it is."""
    layout = viewer.last(rf"layout {NAME} x=([\d.]+) y=([\d.]+) scale=([\d.]+) size={WIDTH}x{HEIGHT}")
    fb = vm.framebuffer()
    if not layout or float(layout.group(3)) != 1.0 or not fb:
        return False
    ox, oy = round(float(layout.group(1))), round(float(layout.group(2)))
    try:
        w, h, rows = screenshot(wid)
    except (ValueError, struct.error):
        return False
    if ox + WIDTH > w or oy + HEIGHT > h:
        return False
    return all(rgb(rows[oy + y][ox * 4:(ox + WIDTH) * 4]) == rgb(fb[y * WIDTH * 4:(y + 1) * WIDTH * 4])
               for y in range(HEIGHT))


def is_pattern(vm, seed):
    r = subprocess.run([FB_CHECK, str(WIDTH), str(HEIGHT), str(WIDTH * 4), str(seed)], input=vm.framebuffer() or b"",
                       capture_output=True, timeout=TIMEOUT)
    return r.returncode == 0


def click_one_to_one(wid):
    m = poll(lambda: viewer.last(rf"widget {NAME} one-to-one x=(?!0 y=0 )(\d+) y=(\d+) w=(\d+) h=(\d+)"), TIMEOUT)
    if not m:
        return False
    cx, cy = int(m.group(1)) + int(m.group(3)) // 2, int(m.group(2)) + int(m.group(4)) // 2
    x("windowraise", wid)
    return x("mousemove", "--sync", "--window", wid, str(cx), str(cy), "click", "1").returncode == 0


def draw(vm, seed):
    return vm.command(f"orrery-guest-probe pattern {seed}", rf"pattern drawn {WIDTH}x{HEIGHT}", TIMEOUT) is not None


def beats(*vms):
    text = ""
    for v in vms:
        with v.lock:
            text += v.output
    return [int(m.group(1)) for m in BEAT.finditer(text)]


pbus = PrivateBus()
xvfb = Xvfb()
tmp = tempfile.TemporaryDirectory()
xenv = dict(os.environ, DISPLAY=xvfb.display, ORRERY_VIEWER_DEBUG="1", NO_AT_BRIDGE="1", GDK_BACKEND="x11",
            DBUS_SESSION_BUS_ADDRESS=pbus.address)
# GTK and its dependencies keep caches for the life of the process; they are not the viewer's leaks.
xenv["ASAN_OPTIONS"] = (xenv.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
vms, proc = [], None
try:
    src = Vm(*COMMON, name=NAME, bus=pbus.address)
    vms.append(src)
    if not tap.check(src.wait_for(READY, BOOT_TIMEOUT) is not None, "the guest boots", src.tail()):
        raise SystemExit
    proc = subprocess.Popen([VIEWER, "--bus", pbus.address, NAME], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=xenv)
    viewer = Lines(proc.stderr)
    found = poll(lambda: windows(), TIMEOUT)
    wid = found[0] if found else None
    tap.check(wid is not None and poll(lambda: title(wid).endswith("— running"), TIMEOUT),
              "the viewer's window shows the VM running", viewer.tail())
    tap.check(click_one_to_one(wid), "the window shows the VM at 1:1", viewer.tail())

    src.send("(i=0; while true; do i=$((i+1)); echo beat=$i; sleep 0.1; done) &\n")
    tap.check(src.wait_for(r"beat=5\r?\n", TIMEOUT) is not None, "the heartbeat runs", src.tail())
    tap.check(draw(src, 3) and is_pattern(src, 3) and poll(lambda: shows_framebuffer(wid, src), TIMEOUT),
              "before the move the window shows the guest's drawing, pixel for pixel", viewer.tail())

    sock = os.path.join(tmp.name, "mig.sock")
    dst = Vm(*COMMON, "--incoming", f"unix:{sock}", name=NAME, bus=pbus.address)
    vms.append(dst)
    tap.check(poll(lambda: "waits for a migration" in dst.stderr, TIMEOUT), "the destination waits", dst.tail())
    bus = dbus.bus.BusConnection(pbus.address)
    machine = dbus.Interface(bus.get_object(f"org.orrery.VM.{NAME}", f"/org/orrery/VM/{NAME}"), "org.orrery.Machine1")
    machine.Migrate(f"unix:{sock}")
    tap.check(src.wait_exit(120) == 0, "the VM moved: the source exits 0", src.tail())

    tap.check(proc.poll() is None and windows() == [wid] and poll(lambda: title(wid).endswith("— running"), TIMEOUT),
              "the viewer stays open across the move: the same window, showing the VM running", viewer.tail())
    tap.check(poll(lambda: is_pattern(dst, 3) and shows_framebuffer(wid, dst), TIMEOUT),
              "right after the move the window shows the new process's framebuffer (the drawing moved with it)",
              viewer.tail())
    tap.check(draw(dst, 4) and is_pattern(dst, 4) and poll(lambda: shows_framebuffer(wid, dst), TIMEOUT),
              "what the guest draws in its new process shows in the window, pixel for pixel", viewer.tail())
    have = len(beats(dst))
    poll(lambda: len(beats(dst)) >= have + 10, TIMEOUT)
    seq = beats(src, dst)
    tap.check(len(beats(dst)) >= have + 10 and seq == list(range(seq[0], seq[0] + len(seq))),
              f"the heartbeat goes on across the move, no beat lost or repeated ({len(seq)} beats)", seq[-40:])
except SystemExit:
    pass
except Exception:
    import traceback
    tap.check(False, "the test ran to its end", traceback.format_exc())
finally:
    if proc and proc.poll() is None:
        proc.kill()
        proc.wait()
    for v in vms:
        v.kill()
    xvfb.stop()
    pbus.stop()

tap.finish()

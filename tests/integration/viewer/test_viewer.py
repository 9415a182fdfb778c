#!/usr/bin/env python3
"""orrery-viewer under Xvfb, against a real booted VM on a private bus.

What the viewer shows is read back from the X server (xwd of its window)
and compared pixel for pixel with the framebuffer memfd; its header's state
is read from the window title ("<name> — <state>") and from the window's
GActions over org.gtk.Actions; buttons are clicked with xdotool at the
places the viewer reports with ORRERY_VIEWER_DEBUG=1.
"""
import os
import re
import signal
import struct
import subprocess
import sys

import dbus

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from orrery_test import BOOT_TIMEOUT, Lines, PrivateBus, READY, Tap, Vm, Xvfb, poll as poll_until  # noqa: E402

VIEWER = os.environ["ORRERY_VIEWER"]
BUS_CONF = os.environ["ORRERY_VIEWER_BUS_CONF"]
FB_CHECK = os.environ["ORRERY_FB_CHECK"]
NAME = "viewertest"
WIDTH, HEIGHT = 640, 480
TIMEOUT = 30
KEY_A, KEY_G, KEY_LEFTCTRL, KEY_LEFTALT, KEY_LEFTSHIFT = 30, 34, 29, 56, 42
BTN_LEFT = 0x110
EV_KEY, EV_ABS = 1, 3

tap = Tap()


def poll(fn, timeout=TIMEOUT, interval=0.05):
    """fn() until it returns something true, within timeout; returns the last value."""
    return poll_until(fn, timeout, interval)


def x(*args, timeout=TIMEOUT):
    return subprocess.run(["xdotool", *args], capture_output=True, text=True, timeout=timeout, env=xenv)


def find_window(pattern, timeout=TIMEOUT):
    """The X window whose title matches the regex pattern."""
    def search():
        r = x("search", "--name", pattern)
        ids = r.stdout.split()
        return ids[0] if ids else None
    return poll(search, timeout)


def title(wid):
    return x("getwindowname", wid).stdout.strip()


def wait_title(wid, pattern, timeout=TIMEOUT):
    return poll(lambda: re.search(pattern, title(wid)), timeout)


def screenshot(wid):
    """The window's pixels as (width, height, rows of BGRX bytes), read with xwd."""
    data = subprocess.run(["xwd", "-silent", "-id", wid], capture_output=True, timeout=TIMEOUT, env=xenv).stdout
    h = struct.unpack(">25I", data[:100])
    header_size, depth, width, height, byte_order, bpp, bpl, ncolors = h[0], h[3], h[4], h[5], h[7], h[11], h[12], h[19]
    if bpp != 32 or byte_order != 0 or h[14] != 0xff0000:
        raise ValueError(f"unexpected xwd format: depth {depth}, {bpp} bpp, byte order {byte_order}")
    start = header_size + ncolors * 12
    return width, height, [data[start + y * bpl:start + y * bpl + width * 4] for y in range(height)]


def rgb(row):
    """BGRX bytes without the X: comparable across sources whatever they left in the padding byte."""
    return row[0::4], row[1::4], row[2::4]


def shows_framebuffer(viewer, wid, vm, device_scale=1):
    """Whether the window shows the VM's framebuffer memfd exactly, at the place the viewer reports.

    The viewer reports logical pixels; with GDK_SCALE=device_scale, 1:1 is 1/device_scale of them."""
    layout = viewer.last(rf"layout {NAME} x=([\d.]+) y=([\d.]+) scale=([\d.]+) size={WIDTH}x{HEIGHT}")
    fb = vm.framebuffer()
    if not layout or float(layout.group(3)) != 1.0 / device_scale or not fb:
        return False
    ox, oy = round(float(layout.group(1)) * device_scale), round(float(layout.group(2)) * device_scale)
    try:
        w, h, rows = screenshot(wid)
    except (ValueError, struct.error):
        return False
    if ox + WIDTH > w or oy + HEIGHT > h:
        return False
    for y in range(HEIGHT):
        if rgb(rows[oy + y][ox * 4:(ox + WIDTH) * 4]) != rgb(fb[y * WIDTH * 4:(y + 1) * WIDTH * 4]):
            return False
    return True


def is_pattern(vm, seed):
    r = subprocess.run([FB_CHECK, str(WIDTH), str(HEIGHT), str(WIDTH * 4), str(seed)], input=vm.framebuffer() or b"",
                       capture_output=True, timeout=TIMEOUT)
    return r.returncode == 0


def click(viewer, wid, widget, device_scale=1):
    # Where the widget is now; (0, 0) is its place before the window was first laid out.
    m = poll(lambda: viewer.last(rf"widget {NAME} {widget} x=(?!0 y=0 )(\d+) y=(\d+) w=(\d+) h=(\d+)"))
    if not m:
        return False
    cx = (int(m.group(1)) + int(m.group(3)) // 2) * device_scale
    cy = (int(m.group(2)) + int(m.group(4)) // 2) * device_scale
    x("windowraise", wid)  # there is no window manager: windows overlap at (0, 0)
    return x("mousemove", "--sync", "--window", wid, str(cx), str(cy), "click", "1").returncode == 0


def boot():
    vm = Vm("--display", f"{WIDTH}x{HEIGHT}", "--memory", "256M", name=NAME, bus=address)
    if not tap.check(vm.wait_for(READY, BOOT_TIMEOUT) is not None, "the guest reaches ready", vm.tail()):
        raise SystemExit(cleanup())
    return vm


def vm_state():
    try:
        return str(dbus.Interface(bus.get_object(f"org.orrery.VM.{NAME}", f"/org/orrery/VM/{NAME}"),
                                  "org.freedesktop.DBus.Properties").Get("org.orrery.Machine1", "State"))
    except dbus.DBusException as e:
        return e.get_dbus_name()


def busctl(*args):
    return subprocess.run(["busctl", f"--address={address}", *args], capture_output=True, text=True, timeout=TIMEOUT)


def action_state(window_path, action):
    """A window's GAction state, as every org.gtk.Actions client sees it."""
    desc = dbus.Interface(bus.get_object("org.orrery.Viewer", window_path), "org.gtk.Actions").Describe(action)
    return bool(desc[0]), [bool(v) for v in desc[2]]


def event(vm, dev_type, code, value, timeout=TIMEOUT):
    return vm.wait_for(rf"orrery-probe: event (\w+) type={dev_type} code={code} value={value}\r?\n", timeout)


procs = []
vms = []


def cleanup():
    try:  # the activated viewer is the bus's child, not ours
        pid = int(bus.get_object("org.freedesktop.DBus", "/org/freedesktop/DBus").GetConnectionUnixProcessID(
            "org.orrery.Viewer", dbus_interface="org.freedesktop.DBus"))
        os.kill(pid, signal.SIGKILL)
    except (dbus.DBusException, OSError):
        pass
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    for v in vms:
        v.kill()
    if daemon.poll() is None:
        daemon.terminate()
        daemon.wait()
    xvfb.stop()
    tap.finish()


# No display (a user manager that was never given the session's): a distinct status the unit does not
# restart on, and a message that names the fix.
nodisplay = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
r = subprocess.run([VIEWER, "demo"], env=nodisplay, capture_output=True, text=True, timeout=TIMEOUT)
tap.check(r.returncode == 78 and "systemctl --user import-environment DISPLAY WAYLAND_DISPLAY" in r.stderr,
          "without DISPLAY and WAYLAND_DISPLAY the viewer exits 78 and names the fix", r)
r = subprocess.run([VIEWER, "--gapplication-service"], env=dict(nodisplay, DISPLAY=":4093"), capture_output=True,
                   text=True, timeout=TIMEOUT)
tap.check(r.returncode == 78 and "Cannot open the display (DISPLAY=:4093" in r.stderr,
          "with a display that cannot be opened, as a service too: exit 78, said so", r)
with open(os.environ["ORRERY_VIEWER_UNIT"]) as f:
    unit = f.read()
tap.check(re.search(r"^RestartPreventExitStatus=.*\b78\b", unit, re.M) is not None and "Restart=on-failure" in unit,
          "orrery-viewer.service restarts on failure but not on 78", unit)

xvfb = Xvfb()
# The bus's own environment is what activated services inherit: they need the display too.
xenv = dict(os.environ, DISPLAY=xvfb.display, ORRERY_VIEWER_DEBUG="1", NO_AT_BRIDGE="1", GDK_BACKEND="x11")
# GTK and its dependencies keep caches for the life of the process; they are not the viewer's leaks.
xenv["ASAN_OPTIONS"] = (xenv.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
daemon = subprocess.Popen(["dbus-daemon", f"--config-file={BUS_CONF}", "--nofork", "--print-address=1"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=xenv)
address = daemon.stdout.readline().decode().strip()
activated = Lines(daemon.stderr)  # an activated viewer's stderr is the daemon's
xenv["DBUS_SESSION_BUS_ADDRESS"] = address
bus = dbus.bus.BusConnection(address)


def start_viewer(*args, env=None):
    p = subprocess.Popen([VIEWER, *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env=env or xenv)
    procs.append(p)
    return p, Lines(p.stderr)


try:
    vm = boot()
    vms.append(vm)

    # A viewer for the VM: the window follows it.
    proc, viewer = start_viewer(NAME)
    wid = find_window(rf"^{NAME} — ")
    tap.check(wid is not None and wait_title(wid, r"— running$"), "the window's title shows the VM running",
              viewer.tail())
    window_path = "/org/orrery/Viewer/window/1"

    # 1:1, clicked: the GAction follows.
    tap.check(click(viewer, wid, "one-to-one") and poll(lambda: action_state(window_path, "one-to-one")[1] == [True]),
              "clicking 1:1 sets the window's one-to-one action", viewer.tail())

    # The guest's test pattern, pixel for pixel.
    m = vm.command("orrery-guest-probe pattern 7", r"orrery-probe: pattern drawn (\d+)x(\d+)\r?\n", 60)
    tap.check(m is not None and is_pattern(vm, 7), "the guest draws its test pattern", vm.tail())
    tap.check(poll(lambda: shows_framebuffer(viewer, wid, vm)),
              "the window shows the framebuffer memfd pixel for pixel at 1:1", viewer.tail())

    # HiDPI: at GDK_SCALE=2, 1:1 is one VM pixel per device pixel (half a logical one).
    # (--bus: a process of its own, not a window of the running instance.)
    hidpi, hidpi_log = start_viewer("--bus", address, NAME, env=dict(xenv, GDK_SCALE="2"))
    hidpi_wid = poll(lambda: [w for w in x("search", "--name", rf"^{NAME} — ").stdout.split() if w != wid])
    hidpi_wid = hidpi_wid[0] if hidpi_wid else None
    tap.check(hidpi_wid is not None and click(hidpi_log, hidpi_wid, "one-to-one", 2) and
              poll(lambda: shows_framebuffer(hidpi_log, hidpi_wid, vm, 2)),
              "at GDK_SCALE=2, 1:1 shows the framebuffer pixel for pixel on device pixels", hidpi_log.tail())
    hidpi.terminate()
    hidpi.wait()

    # The header follows Machine1.State, whoever changes it.
    tap.check(click(viewer, wid, "pause") and poll(lambda: vm_state() == "paused"),
              "clicking Pause pauses the VM", vm_state())
    tap.check(wait_title(wid, r"— paused$") and action_state(window_path, "pause") == (True, [True]),
              "the header shows paused", title(wid))
    r = busctl("call", f"org.orrery.VM.{NAME}", f"/org/orrery/VM/{NAME}", "org.orrery.Machine1", "Resume")
    tap.check(r.returncode == 0 and wait_title(wid, r"— running$") and
              action_state(window_path, "pause")[1] == [False],
              "a Resume made with busctl shows in the header", f"{r} {title(wid)}")
    busctl("call", f"org.orrery.VM.{NAME}", f"/org/orrery/VM/{NAME}", "org.orrery.Machine1", "Pause")
    tap.check(wait_title(wid, r"— paused$"), "a Pause made with busctl shows in the header", title(wid))
    tap.check(click(viewer, wid, "pause") and poll(lambda: vm_state() == "running") and
              wait_title(wid, r"— running$"),
              "clicking the button again (now Resume) resumes the VM", vm_state())

    # Keyboard and pointer reach the guest as evdev events.
    m = vm.command("orrery-guest-probe events &", r"orrery-probe: listening (\d+) devices", 30)
    tap.check(m is not None, "the probe listens to the guest's input devices", vm.tail())
    x("windowfocus", "--sync", wid)
    x("key", "a")
    tap.check(event(vm, EV_KEY, KEY_A, 1) is not None and event(vm, EV_KEY, KEY_A, 0) is not None,
              "a key typed into the window with xdotool reaches the guest as KEY_A press and release", vm.tail(600))

    # Ctrl+Alt+G grabs the keyboard and releases it; the guest sees Ctrl and Alt released, never the G.
    with vm.lock:
        grab_mark = len(vm.output)
    x("key", "ctrl+alt+g")
    tap.check(poll(lambda: action_state(window_path, "grab")[1] == [True]),
              "Ctrl+Alt+G grabs the keyboard (the window's grab action says so)")
    x("key", "ctrl+alt+g")
    tap.check(poll(lambda: action_state(window_path, "grab")[1] == [False]), "Ctrl+Alt+G again releases the grab")
    tap.check(event(vm, EV_KEY, KEY_LEFTCTRL, 0) is not None and event(vm, EV_KEY, KEY_LEFTALT, 0) is not None,
              "the guest sees Ctrl and Alt released", vm.tail(600))

    layout = viewer.last(rf"layout {NAME} x=([\d.]+) y=([\d.]+)")
    ox, oy = (int(float(layout.group(1))), int(float(layout.group(2)))) if layout else (0, 0)
    x("mousemove", "--window", wid, str(ox + 100), str(oy + 200), "click", "1")
    tap.check(event(vm, EV_ABS, 0, 100) is not None and event(vm, EV_ABS, 1, 200) is not None and
              event(vm, EV_KEY, BTN_LEFT, 1) is not None and event(vm, EV_KEY, BTN_LEFT, 0) is not None,
              "a click at framebuffer pixel (100, 200) arrives there, as an absolute position and BTN_LEFT",
              vm.tail(600))

    tap.check(not re.search(rf"type=1 code={KEY_G} value=1", vm.output[grab_mark:]),
              "the G of Ctrl+Alt+G never reached the guest", vm.output[grab_mark:][-600:])

    # Keys held when the window loses focus are released in the guest.
    other, other_log = start_viewer("--bus", "unix:path=/nonexistent/bus", "elsewhere")
    other_wid = find_window(r"^elsewhere — ")
    tap.check(other_wid is not None and wait_title(other_wid, r"— error$"),
              "a bus that cannot be reached is shown in the window (title: error)", other_log.tail())
    x("windowfocus", "--sync", wid)
    x("keydown", "shift")
    pressed = event(vm, EV_KEY, KEY_LEFTSHIFT, 1)
    x("windowfocus", "--sync", other_wid)
    released = event(vm, EV_KEY, KEY_LEFTSHIFT, 0)
    x("keyup", "shift")
    tap.check(pressed is not None and released is not None, "a key held when the window loses focus is released",
              vm.tail(600))
    other.terminate()
    other.wait()

    # A bus that goes away under a running viewer: the window says so.
    lost_bus = PrivateBus()
    lost, lost_log = start_viewer("--bus", lost_bus.address, "lost")
    lost_wid = find_window(r"^lost — ")
    waiting = lost_wid is not None and wait_title(lost_wid, r"— not running$")
    lost_bus.stop()
    tap.check(waiting and wait_title(lost_wid, r"— error$") and lost_log.last("Lost the connection to unix:"),
              "a bus connection that fails is shown in the window (title: error)", lost_log.tail())
    lost.terminate()
    lost.wait()

    # No session bus at all: GApplication goes on alone, and the chooser says what is wrong.
    p = subprocess.Popen([VIEWER], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env=dict(xenv, DBUS_SESSION_BUS_ADDRESS="unix:path=/nonexistent/bus"))
    procs.append(p)
    lonely = Lines(p.stderr)
    nobus = find_window(r"^Orrery VMs ")
    tap.check(nobus is not None and wait_title(nobus, r"\(error\)$"),
              "without a session bus the chooser opens and shows the error", lonely.tail())
    p.terminate()
    p.wait()

    # The VM goes away and comes back: the viewer says so, then shows it again.
    x("windowfocus", "--sync", wid)
    x("key", "ctrl+alt+g")
    grabbed = poll(lambda: action_state(window_path, "grab")[1] == [True])
    vm.kill()
    tap.check(wait_title(wid, r"— not running$"), "a killed VM shows as not running", title(wid))
    tap.check(grabbed and poll(lambda: action_state(window_path, "grab") == (False, [False])),
              "a keyboard grab ends when the VM goes away", action_state(window_path, "grab"))
    vms.remove(vm)
    vm = boot()
    vms.append(vm)
    tap.check(wait_title(wid, r"— running$"), "the restarted VM is reattached", title(wid))
    m = vm.command("orrery-guest-probe pattern 5", r"orrery-probe: pattern drawn", 60)
    tap.check(m is not None and is_pattern(vm, 5) and poll(lambda: shows_framebuffer(viewer, wid, vm)),
              "after reattaching the window shows the new VM's framebuffer pixel for pixel", viewer.tail())

    # Closing the window ends the viewer and leaves the VM running.
    tap.check(click(viewer, wid, "close") and proc.wait(TIMEOUT) == 0, "the close button ends the viewer (exit 0)",
              viewer.tail())
    tap.check(vm_state() == "running" and vm.command("echo still-$((20+1))", r"still-21\r?\n", 30) is not None,
              "the VM keeps running after the viewer closed", vm.tail(300))

    # D-Bus activation from the build tree's service file.
    r = subprocess.run(["gapplication", "launch", "org.orrery.Viewer"], capture_output=True, text=True,
                       timeout=TIMEOUT, env=xenv)
    chooser = find_window(r"^Orrery VMs ")
    tap.check(r.returncode == 0 and chooser is not None and wait_title(chooser, r"\(1\)$"),
              "gapplication launch org.orrery.Viewer activates the viewer: a chooser listing the one VM",
              f"{r}\n{chooser and title(chooser)}\n{activated.tail()}")
    clicks = []

    def click_row():
        # The row's place is read anew each time, in case the list was laid out again since. Tries are
        # seconds apart, so two clicks never make a double click.
        m = activated.last(rf"chooser row {NAME} x=(?!0 y=0 )(\d+) y=(\d+) w=(\d+) h=(\d+)")
        if not m:
            return None
        clicks.append(m.group(0))
        x("windowraise", chooser)
        x("mousemove", "--sync", "--window", chooser, str(int(m.group(1)) + int(m.group(3)) // 2),
          str(int(m.group(2)) + int(m.group(4)) // 2), "click", "1")
        return find_window(rf"^{NAME} — ", timeout=3)
    wid = poll(click_row)
    tap.check(wid is not None and wait_title(wid, r"— running$"),
              f"clicking the VM in the chooser opens its window (clicked at {clicks})", activated.tail())
    second = Vm("--display", "none", "--memory", "64M", name="second", bus=address)
    vms.append(second)
    tap.check(wait_title(chooser, r"\(2\)$"), "the chooser lists a VM that starts", title(chooser))
    second.kill()
    tap.check(wait_title(chooser, r"\(1\)$"), "and forgets it when it goes", title(chooser))

    r = subprocess.run(["gapplication", "launch", "org.orrery.Viewer", NAME], capture_output=True, text=True,
                       timeout=TIMEOUT, env=xenv, cwd="/")
    n = len(x("search", "--name", rf"^{NAME} — ").stdout.split())
    tap.check(r.returncode == 0 and n == 1,
              f"gapplication launch org.orrery.Viewer {NAME} presents that window, no second one ({n})",
              f"{r}\n{activated.tail()}")
    r = busctl("call", "org.orrery.Viewer", "/org/orrery/Viewer", "org.freedesktop.Application", "Open", "asa{sv}",
               "1", f"orrery:{NAME}", "0")
    # GApplication replies after its open handler ran: a second window would exist by now.
    n = len(x("search", "--name", rf"^{NAME} — ").stdout.split())
    tap.check(r.returncode == 0 and n == 1, f"Open(orrery:{NAME}) over the bus presents the same window ({n})", r)
    busctl("call", "org.orrery.Viewer", "/org/orrery/Viewer", "org.freedesktop.Application", "Open", "asa{sv}",
           "2", "orrery:nosuchvm", "orrery:9bad", "0")
    absent, bad = find_window(r"^nosuchvm — "), find_window(r"^9bad — ")
    tap.check(absent is not None and wait_title(absent, r"— not running$"),
              "a VM that does not exist gets a window that waits for it", activated.tail())
    tap.check(bad is not None and wait_title(bad, r"— error$"), "an invalid VM name is an error in the window",
              activated.tail())
    tap.check(vm_state() == "running", "the VM is still running")

    # Power down, clicked: the guest shuts down cleanly, the window follows.
    tap.check(click(activated, wid, "power-down") and vm.wait_exit(60) == 0 and "reboot: Power down" in vm.output,
              "clicking Power down shuts the guest down cleanly (exit 0)", vm.tail(600))
    tap.check(wait_title(wid, r"— not running$"), "and the window shows the VM not running", title(wid))

    r = subprocess.run(["gapplication", "action", "org.orrery.Viewer", "quit"], capture_output=True, text=True,
                       timeout=TIMEOUT, env=xenv)
    tap.check(r.returncode == 0 and poll(lambda: not bus.name_has_owner("org.orrery.Viewer")),
              "the app.quit action closes every window and ends the viewer", f"{r}\n{activated.tail()}")
except Exception:
    import traceback
    tap.check(False, "the test ran to its end", traceback.format_exc())
finally:
    cleanup()

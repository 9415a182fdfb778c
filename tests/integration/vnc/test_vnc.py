#!/usr/bin/env python3
"""orrery-vnc against a real VM on a private bus, through vnc-probe (libvncclient):
the framebuffer pixel for pixel against the memfd, updates, keys and pointer
reaching the guest as evdev events, several clients, no stuck keys, a pointer
flood, SIGKILL and restart of the server, the VM restarted under it (with a
new size), passwords, the loopback rule and WebSocket."""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from orrery_test import BOOT_TIMEOUT, READY, PrivateBus, Tap, Vm  # noqa: E402
import vnc_util  # noqa: E402
from vnc_util import TIMEOUT, closed_by_peer, wait_until  # noqa: E402

FB_CHECK = os.environ["ORRERY_FB_CHECK"]
NAME = "vnctest"
WIDTH, HEIGHT = 640, 480
EV_KEY, EV_REL, EV_ABS = 1, 2, 3
KEY_A, KEY_B, KEY_C, KEY_1, KEY_LEFTSHIFT, KEY_LEFTCTRL, KEY_LEFT = 30, 48, 46, 2, 42, 29, 105
BTN_LEFT = 0x110
XK_a, XK_b, XK_c, XK_exclam, XK_Shift_L, XK_Control_L, XK_Left = 0x61, 0x62, 0x63, 0x21, 0xffe1, 0xffe3, 0xff51
PLACEHOLDER_BACKGROUND = 0x202428

tap = Tap()
pbus = PrivateBus()
tmp = tempfile.TemporaryDirectory()


def Server(*args, listen="127.0.0.1:0", env=None):
    return vnc_util.Server(NAME, pbus.address, *args, listen=listen, env=env)


def Probe(address, *args):
    return vnc_util.Probe(address, *args, dump_dir=tmp.name)


def boot(width=WIDTH, height=HEIGHT):
    vm = Vm("--display", f"{width}x{height}", name=NAME, bus=pbus.address)
    if not tap.check(vm.wait_for(READY, BOOT_TIMEOUT) is not None, f"the guest reaches ready ({width}x{height})",
                     vm.tail()):
        vm.kill()
        tap.finish()
    return vm


def rgb(data):
    """XRGB8888 pixels without their X byte."""
    b = bytearray(data)
    b[3::4] = bytes(len(b) // 4)
    return bytes(b)


def matches_memfd(probe, vm, width, height):
    d = probe.dump()
    fb = vm.framebuffer()
    if not d or fb is None or d[0] != width or d[1] != height:
        return False
    return rgb(d[2]) == rgb(fb[:width * height * 4])


def pattern_ok(probe, width, height, seed):
    d = probe.dump()
    if not d or d[0] != width or d[1] != height:
        return False
    r = subprocess.run([FB_CHECK, str(width), str(height), str(width * 4), str(seed)], input=d[2],
                       capture_output=True)
    return r.returncode == 0


def draw(vm, seed, width=WIDTH, height=HEIGHT):
    return vm.command(f"orrery-guest-probe pattern {seed}", rf"pattern drawn {width}x{height}", TIMEOUT) is not None


def event(vm, dev_type, code, value, timeout=TIMEOUT):
    return vm.wait_for(rf"orrery-probe: event (\w+) type={dev_type} code={code} value={value}\r?\n", timeout)


def pixel(data, width, x, y):
    return int.from_bytes(data[(y * width + x) * 4:(y * width + x) * 4 + 3], "little")


class Notify:
    """A NOTIFY_SOCKET of our own: what orrery-vnc tells systemd (READY, STATUS)."""

    def __init__(self):
        self.path = os.path.join(tmp.name, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.statuses = []

    def wait_status(self, pattern, timeout=TIMEOUT):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for st in self.statuses:
                if rx.search(st):
                    return st
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                msg = self.sock.recv(4096).decode(errors="replace")
            except socket.timeout:
                return None
            self.statuses += [line[len("STATUS="):] for line in msg.splitlines() if line.startswith("STATUS=")]


# Started before the VM: it says it waits for it, and serves only once the VM is there.
notify = Notify()
early = Server(env=dict(os.environ, NOTIFY_SOCKET=notify.path))
st = notify.wait_status(r"VM '" + NAME + "'")
tap.check(st is not None and st.startswith("Waiting for VM") and early.log.wait(f"waiting for VM '{NAME}'") is not None
          and not any("Serving" in x for x in notify.statuses),
          f"orrery-vnc started before the VM says it waits for it, not 'Serving' (status: {st})", early.log.text())
vm = boot()
st = notify.wait_status(r"^Serving VM")
tap.check(st is not None and st.startswith(f"Serving VM '{NAME}'"),
          f"once the VM is up the status says 'Serving' ({notify.statuses})", early.log.text())
mark = len(early.log.lines)
notify.statuses = []
vm.kill()
st = notify.wait_status(r"^Waiting for VM")
tap.check(st is not None and early.log.wait(f"waiting for VM '{NAME}'", start=mark) is not None,
          f"the VM gone, the status says 'Waiting for VM' again ({st})", early.log.text())
early.kill()
vm = boot()
server = Server()
probes = []
try:
    tap.check(server.address is not None and server.log.wait(rf"serving VM '{NAME}': {WIDTH}x{HEIGHT}") is not None,
              "orrery-vnc listens on 127.0.0.1 and serves the VM", server.log.text())

    p = Probe(server.address)
    probes.append(p)
    tap.check(p.connected and p.size == (WIDTH, HEIGHT), f"libvncclient connects and sees {WIDTH}x{HEIGHT}", p.size)

    # The framebuffer, pixel for pixel: libvncclient's copy equals the VM's memfd.
    draw(vm, 1)
    ok = wait_until(lambda: pattern_ok(p, WIDTH, HEIGHT, 1) and matches_memfd(p, vm, WIDTH, HEIGHT))
    tap.check(ok, "after the guest draws its pattern, the client's framebuffer equals the memfd pixel for pixel")

    # Another drawing: an update arrives with it.
    n = p.info()[2]
    draw(vm, 2)
    r = p.cmd(f"wait-update {n} {TIMEOUT * 1000}")
    tap.check(r is not None and r.startswith("ok") and wait_until(lambda: pattern_ok(p, WIDTH, HEIGHT, 2)),
              "the guest draws again: an update arrives and the client holds the new pattern", r)

    # Two clients at once, both current.
    q = Probe(server.address)
    probes.append(q)
    draw(vm, 3)
    tap.check(q.connected and wait_until(lambda: pattern_ok(p, WIDTH, HEIGHT, 3) and pattern_ok(q, WIDTH, HEIGHT, 3)),
              "two clients at once both receive the new drawing")

    # Keys: keysyms through the layout's keymap to evdev codes.
    m = vm.command("orrery-guest-probe events &", r"orrery-probe: listening (\d+) devices", TIMEOUT)
    tap.check(m is not None, "the guest probe listens to input events", vm.tail(600))
    p.tap_key(XK_a)
    tap.check(event(vm, EV_KEY, KEY_A, 1) is not None and event(vm, EV_KEY, KEY_A, 0) is not None,
              "keysym 'a' arrives as KEY_A press and release", vm.tail(600))
    p.key(XK_Shift_L, True)
    p.tap_key(XK_exclam)
    p.key(XK_Shift_L, False)
    tap.check(event(vm, EV_KEY, KEY_LEFTSHIFT, 1) is not None and event(vm, EV_KEY, KEY_1, 1) is not None
              and event(vm, EV_KEY, KEY_1, 0) is not None and event(vm, EV_KEY, KEY_LEFTSHIFT, 0) is not None,
              "Shift_L + exclam arrives as KEY_LEFTSHIFT, KEY_1", vm.tail(600))
    for keysym, code, name in ((XK_exclam, KEY_1, "exclam"), (0x28, 10, "parenleft"), (0x24, 5, "dollar")):
        p.tap_key(keysym)  # without Shift, as noVNC sends characters
        tap.check(event(vm, EV_KEY, KEY_LEFTSHIFT, 1) is not None and event(vm, EV_KEY, code, 1) is not None
                  and event(vm, EV_KEY, KEY_LEFTSHIFT, 0) is not None and event(vm, EV_KEY, code, 0) is not None,
                  f"{name} from a client not holding Shift arrives as Shift held around key {code}", vm.tail(600))
    p.tap_key(XK_Left)
    tap.check(event(vm, EV_KEY, KEY_LEFT, 1) is not None and event(vm, EV_KEY, KEY_LEFT, 0) is not None,
              "the Left arrow arrives as KEY_LEFT", vm.tail(600))
    p.key(XK_Control_L, True)
    p.tap_key(XK_c)
    p.key(XK_Control_L, False)
    tap.check(event(vm, EV_KEY, KEY_LEFTCTRL, 1) is not None and event(vm, EV_KEY, KEY_C, 1) is not None
              and event(vm, EV_KEY, KEY_C, 0) is not None and event(vm, EV_KEY, KEY_LEFTCTRL, 0) is not None,
              "Control_L + c arrives as KEY_LEFTCTRL, KEY_C", vm.tail(600))
    p.tap_key(0x0101f600)  # a Unicode keysym (an emoji) no key of 'us' produces
    p.tap_key(XK_b)
    tap.check(event(vm, EV_KEY, KEY_B, 1) is not None and server.alive(),
              "an unmappable keysym is ignored and the next key still arrives", vm.tail(600))

    # Pointer: absolute, in framebuffer pixels, clamped; buttons and wheel.
    p.pointer(100, 200)
    tap.check(event(vm, EV_ABS, 0, 100) is not None and event(vm, EV_ABS, 1, 200) is not None,
              "a pointer event at (100, 200) arrives as ABS_X 100, ABS_Y 200", vm.tail(600))
    p.pointer(65535, 65535)
    tap.check(event(vm, EV_ABS, 0, WIDTH - 1) is not None and event(vm, EV_ABS, 1, HEIGHT - 1) is not None,
              f"a pointer beyond the screen is clamped to ({WIDTH - 1}, {HEIGHT - 1})", vm.tail(600))
    p.pointer(30, 40, 1)
    p.pointer(30, 40, 0)
    tap.check(event(vm, EV_ABS, 0, 30) is not None and event(vm, EV_KEY, BTN_LEFT, 1) is not None
              and event(vm, EV_KEY, BTN_LEFT, 0) is not None,
              "a click moves there first, then BTN_LEFT press and release", vm.tail(600))
    p.pointer(30, 40, 8)
    p.pointer(30, 40, 0)
    p.pointer(30, 40, 16)
    p.pointer(30, 40, 0)
    tap.check(event(vm, EV_REL, 8, 1) is not None and event(vm, EV_REL, 8, -1) is not None,
              "wheel up and down arrive as REL_WHEEL 1 and -1", vm.tail(600))

    # A client that disconnects holding a key: the guest sees it released.
    q.key(XK_b, True)
    tap.check(event(vm, EV_KEY, KEY_B, 1) is not None, "the second client presses b", vm.tail(600))
    q.kill()
    tap.check(event(vm, EV_KEY, KEY_B, 0) is not None,
              "killed while holding b, the client's key is released in the guest (no stuck key)", vm.tail(600))

    # View-only clients: by password (line 2 of the file) and by --view-only. Their
    # input must not reach the guest; a full client's key sent after it shows that.
    def view_only_ignored(view, full, what):
        with vm.lock:
            start = len(vm.output)
        view.tap_key(XK_c)
        view.pointer(7, 7, 1)
        view.pointer(7, 7, 0)
        full.tap_key(XK_b)
        m = event(vm, EV_KEY, KEY_B, 0)
        with vm.lock:
            between = vm.output[start:m.start()] if m else ""
        tap.check(m is not None and f"code={KEY_C} " not in between and "value=7\r" not in between
                  and f"code={BTN_LEFT} " not in between, what, between[-600:])

    pw_full, pw_view = os.path.join(tmp.name, "full"), os.path.join(tmp.name, "view")
    with open(pw_full, "w") as f:
        f.write("fullpass\nviewpass\n")
    with open(pw_view, "w") as f:
        f.write("viewpass\n")
    os.chmod(pw_full, 0o600)
    vs = Server("--password-file", pw_full)
    full = Probe(vs.address, "--password-file", pw_full)
    view = Probe(vs.address, "--password-file", pw_view)
    probes += [full, view]
    tap.check(full.connected and view.connected and wait_until(lambda: matches_memfd(view, vm, WIDTH, HEIGHT)),
              "a second orrery-vnc serves the same VM; the view-only password connects and sees the screen")
    view_only_ignored(view, full, "keys and clicks of a client with the view-only password do not reach the guest")
    full.close()
    view.close()
    vs.kill()
    vs = Server("--view-only")
    view = Probe(vs.address)
    probes.append(view)
    view_only_ignored(view, p, "with --view-only, a client's keys and clicks do not reach the guest")
    view.close()
    vs.kill()

    # A pointer flood: coalesced, and the guest stays responsive.
    vm.command("kill %1", r"\n", 10)
    r = p.cmd("flood-pointer 20000")
    mark = len(server.log.lines)
    p.close()
    m = server.log.wait(r"disconnected .*; (\d+) pointer events, (\d+) positions sent\)", start=mark)
    sent = (int(m.group(1)), int(m.group(2))) if m else None
    tap.check(r == "ok" and sent is not None and sent[0] >= 20000 and sent[1] < sent[0],
              f"20000 pointer events are coalesced before they reach the VM (events, positions sent: {sent})",
              server.log.text())
    tap.check(vm.command("echo after-$((2+3))-flood", r"after-5-flood\r?\n", TIMEOUT) is not None,
              "after the flood the guest still answers on its serial console", vm.tail(600))

    # Hostile and stuck clients: garbage is dropped; a client that stops reading is
    # dropped after libvncserver's wait, and the others keep receiving meanwhile.
    host, port = server.address.rsplit(":", 1)
    h = Probe(server.address)
    probes.append(h)
    mark = len(server.log.lines)
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as junk:
        name = "%s:%d" % junk.getsockname()[:2]
        junk.recv(12)
        junk.sendall(b"RFB 003.008\n" + bytes(range(256)) * 64)
        try:
            how = closed_by_peer(junk)  # EOF or a reset; our own timeout is not a close
        except socket.timeout:
            how = "not closed by the server"
    logged = server.log.wait(rf"client {re.escape(name)} disconnected", start=mark)
    tap.check(how in ("eof", "reset") and logged is not None and server.alive(),
              f"a client sending garbage is disconnected by the server ({how}, its log says so); orrery-vnc carries on",
              server.log.text())

    stuck = socket.create_connection((host, int(port)), timeout=TIMEOUT)
    stuck.recv(12)
    stuck.sendall(b"RFB 003.008\n")
    stuck.recv(2)  # one security type: None
    stuck.sendall(b"\x01")
    stuck.recv(4)
    stuck.sendall(b"\x01")  # shared
    stuck.recv(4096)
    mark = len(server.log.lines)

    def keep_asking():
        # Full-screen requests, never reading the answers, until the server gives up on it.
        request = bytes([3, 0, 0, 0, 0, 0]) + WIDTH.to_bytes(2, "big") + HEIGHT.to_bytes(2, "big")
        deadline = time.monotonic() + TIMEOUT
        try:
            while time.monotonic() < deadline:
                stuck.sendall(request)
                time.sleep(0.02)
        except OSError:
            pass

    asker = threading.Thread(target=keep_asking, daemon=True)
    asker.start()
    draw(vm, 7)
    tap.check(wait_until(lambda: pattern_ok(h, WIDTH, HEIGHT, 7)) and server.alive(),
              "with a client that stopped reading, another client still gets the new drawing")
    tap.check(server.log.wait(r"disconnected", start=mark) is not None,
              "the client that stopped reading is disconnected", server.log.text())
    try:
        stuck.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # the server closed it already
    asker.join(TIMEOUT)
    stuck.close()
    h.close()

    # SIGKILL mid-stream: the guest runs on; a restarted server serves again on the same port.
    p = Probe(server.address)
    probes.append(p)
    vm.command("(i=10; while [ $i -lt 20 ]; do orrery-guest-probe pattern $i; i=$((i+1)); done) >/dev/null &",
               r"\n", 10)
    p.cmd("wait-update 1 30000")
    address = server.address
    server.kill()
    tap.check(p.out.wait(r"^disconnected$") is not None or p.cmd("info") in (None, "disconnected"),
              "SIGKILL of orrery-vnc mid-stream drops its clients")
    tap.check(vm.command("echo still-$((6*7))", r"still-42\r?\n", TIMEOUT) is not None and vm.proc.poll() is None,
              "the guest keeps running after orrery-vnc is killed", vm.tail(600))
    vm.command("wait", r"\n", TIMEOUT)
    server = Server(listen=address)
    p = Probe(server.address)
    probes.append(p)
    draw(vm, 5)
    tap.check(server.address == address and p.connected and wait_until(lambda: pattern_ok(p, WIDTH, HEIGHT, 5)),
              f"a restarted orrery-vnc on {address} serves the VM again", server.log.text())

    # The VM goes away under a running server: the client stays, sees the placeholder, then the new VM.
    vm.kill()
    tap.check(wait_until(lambda: (lambda d: d and pixel(d[2], d[0], 0, 0) == PLACEHOLDER_BACKGROUND)(p.dump()))
              and server.alive(), "the VM killed: orrery-vnc stays up and the client sees the 'not running' screen",
              server.log.text())
    vm = boot(800, 600)
    draw(vm, 6, 800, 600)
    tap.check(wait_until(lambda: pattern_ok(p, 800, 600, 6) and matches_memfd(p, vm, 800, 600)),
              "the VM restarted at 800x600: orrery-vnc reattaches; the same client follows the resize and the new pattern",
              server.log.text())
    with open(f"/proc/{server.proc.pid}/maps") as f:
        fb_maps = [line.split() for line in f if "/memfd:orrery-framebuffer" in line]
    tap.check(server.alive() and fb_maps and all(m[1][0] == "r" and m[1][1] == "-" for m in fb_maps),
              "orrery-vnc maps the VM's framebuffer memfd read-only (no 'w' in /proc/PID/maps) and never crashed",
              fb_maps)
    vm.command("orrery-guest-probe events &", r"orrery-probe: listening (\d+) devices", TIMEOUT)
    p.key(XK_b, True)
    tap.check(event(vm, EV_KEY, KEY_B, 1) is not None, "a client of the reattached server presses b", vm.tail(600))
    code = server.kill(signal.SIGTERM)
    tap.check(code == 0 and event(vm, EV_KEY, KEY_B, 0) is not None,
              f"SIGTERM: orrery-vnc releases what its clients hold and exits 0 (exit {code})", server.log.text())
finally:
    for pr in probes:
        pr.kill()
    server.kill()
    vm.kill()

# Passwords: from a file only its owner can read.
pw = os.path.join(tmp.name, "password")
with open(pw, "w") as f:
    f.write("s3cret\nlookonly\n")
os.chmod(pw, 0o644)
s = Server("--password-file", pw)
code = s.proc.wait(TIMEOUT)
tap.check(code == 2 and s.log.wait("group or others") is not None,
          f"a password file readable by others is refused (exit {code})", s.log.text())

os.chmod(pw, 0o600)
s = Server("--password-file", pw)
bad = os.path.join(tmp.name, "bad")
with open(bad, "w") as f:
    f.write("wrong\n")
good_probe = Probe(s.address, "--password-file", pw)
bad_probe = Probe(s.address, "--password-file", bad)
tap.check(s.address is not None and good_probe.connected and not bad_probe.connected,
          "with a password file (mode 0600) the right password connects and a wrong one is refused",
          s.log.text())
good_probe.close()
bad_probe.kill()
s.kill()

# Credentials from systemd: $CREDENTIALS_DIRECTORY/vnc-password.
creds = os.path.join(tmp.name, "creds")
os.mkdir(creds, 0o700)
with open(os.path.join(creds, "vnc-password"), "w") as f:
    f.write("fromcred\n")
os.chmod(os.path.join(creds, "vnc-password"), 0o400)
s = Server(env=dict(os.environ, CREDENTIALS_DIRECTORY=creds))
nopw = Probe(s.address, "--password-file", bad)
with open(os.path.join(tmp.name, "cred-copy"), "w") as f:
    f.write("fromcred\n")
withpw = Probe(s.address, "--password-file", os.path.join(tmp.name, "cred-copy"))
tap.check(not nopw.connected and withpw.connected, "the vnc-password systemd credential is the password",
          s.log.text())
withpw.close()
nopw.kill()
s.kill()

# Not on a non-loopback address without a password.
s = Server(listen="0.0.0.0:0")
code = s.proc.wait(TIMEOUT)
tap.check(code == 2 and s.log.wait("refusing to listen on 0.0.0.0:0 without a password") is not None,
          f"a non-loopback address without a password is refused (exit {code})", s.log.text())
s = Server("--password-file", pw, listen="0.0.0.0:0")
tap.check(s.alive() and s.address is not None and s.address.startswith("0.0.0.0:"),
          "a non-loopback address with a password is served", s.log.text())
s.kill()

# WebSocket (noVNC): the HTTP upgrade is answered on the --websocket port.
s = Server("--websocket", "0")
m = s.log.wait(r"listening on 127\.0\.0\.1:(\d+) \(WebSocket")
ok = False
if m:
    with socket.create_connection(("127.0.0.1", int(m.group(1))), timeout=TIMEOUT) as c:
        c.sendall(b"GET /websockify HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                  b"Sec-WebSocket-Protocol: binary\r\nOrigin: http://localhost\r\n\r\n")
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = c.recv(4096)
            if not chunk:
                break
            reply += chunk
    ok = reply.startswith(b"HTTP/1.1 101") and b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in reply
tap.check(ok, "a WebSocket handshake on the --websocket port is accepted (noVNC's transport)", s.log.text())
s.kill()

pbus.stop()
tap.finish()

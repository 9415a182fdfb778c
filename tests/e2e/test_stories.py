#!/usr/bin/env python3
"""The user's stories end to end, on a private systemd --user and its session bus, with Orrery installed."""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
sys.path.insert(0, os.path.dirname(__file__))
from orrery_test import Tap, Xvfb  # noqa: E402
from serial_client import SerialClient, scrollback, wait_ready  # noqa: E402
from user_session import check_security, open_session, wait_for  # noqa: E402

VM = "demo"
UNIT = f"orrery-vm@{VM}.service"
VNC_PORT = 5977  # set in the VM's VNC config, as a user would
VNC_PROBE = os.environ["ORRERY_VNC_PROBE"]


def vm_framebuffer(pid):
    """The VM's framebuffer, read through orrery-vm's own memfd."""
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("/memfd:orrery-framebuffer"):
                with open(f"/proc/{pid}/fd/{fd}", "rb") as f:
                    return f.read()
        except OSError:
            pass
    return None


class VncClient:
    """vnc-probe (libvncclient) connected to orrery-vnc, answering one command per line."""

    def __init__(self, port):
        self.proc = subprocess.Popen([VNC_PROBE, f"127.0.0.1:{port}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        self.greeting = self.proc.stdout.readline().strip()

    def cmd(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def frame(self, path):
        """The client's framebuffer as it is now (it keeps taking updates in between)."""
        if not self.cmd(f"dump {path}").startswith("ok 1024 768"):
            return None
        with open(path, "rb") as f:
            return f.read()

    def close(self):
        self.proc.kill()
        self.proc.wait()


tap = Tap()
session = open_session(tap, "stories")
bus = session.env["DBUS_SESSION_BUS_ADDRESS"]

try:
    # 1. README.md's block as written: start orrery-vm@demo, status, introspect, Pause, State, Resume.
    try:
        out, error = session.run_readme("start", timeout=300), None
    except RuntimeError as e:
        out, error = None, str(e)
    tap.check(error is None and 's "paused"' in out and f'VM {VM}' in out,
              "README.md's start block runs as written (start, status, Pause, State paused, Resume)", error or out)
    tap.check(wait_ready(bus, VM), "the guest reaches its ready marker (read from serial0's scrollback)",
              scrollback(bus, VM)[-400:] if error is None else None)
    status = session.systemctl("status", UNIT, check=False).stdout
    tap.check("active (running)" in status and f'Status: "VM {VM} running"' in status,
              "systemctl --user status shows it active, with the VM's state", status)

    # Hardening, as systemd-analyze rates it, may not get worse than docs/security.md says.
    check_security(session, tap, [UNIT])

    # 2. busctl: introspection, Pause and Resume through State.
    r = session.busctl("introspect", f"org.orrery.VM.{VM}", f"/org/orrery/VM/{VM}", check=False)
    tap.check(all(i in r.stdout for i in ("org.orrery.Machine1", "org.orrery.Keyboard1", "org.orrery.Mouse1")),
              "busctl --user introspect lists Machine1, Keyboard1 and Mouse1", r.stdout + r.stderr)

    def state():
        r = session.busctl("get-property", f"org.orrery.VM.{VM}", f"/org/orrery/VM/{VM}", "org.orrery.Machine1",
                           "State", check=False)
        return r.stdout.strip()

    session.busctl("call", f"org.orrery.VM.{VM}", f"/org/orrery/VM/{VM}", "org.orrery.Machine1", "Pause")
    tap.check(wait_for(lambda: state() == 's "paused"', 10), "busctl call Pause: State is paused", state())
    session.busctl("call", f"org.orrery.VM.{VM}", f"/org/orrery/VM/{VM}", "org.orrery.Machine1", "Resume")
    tap.check(wait_for(lambda: state() == 's "running"', 10), "busctl call Resume: State is running", state())

    serial = SerialClient(bus, VM)
    serial.send("\n")
    m = serial.command("echo sum=$((40+2))", r"sum=42\r?\n", timeout=30)
    tap.check(m is not None, "the guest still answers on serial0 after pause and resume")

    # 3. systemctl --user enable --now orrery-vnc@demo: a VNC client gets the framebuffer.
    serial.command("orrery-guest-probe pattern 11", r"pattern drawn \d+x\d+\r?\n", timeout=120)
    session.write_config(f".config/orrery/vnc/{VM}.conf", f"ORRERY_VNC_ARGS=--listen 127.0.0.1:{VNC_PORT}\n")
    r = session.systemctl("enable", "--now", f"orrery-vnc@{VM}.service", check=False)
    tap.check(r.returncode == 0 and session.unit_property(f"orrery-vnc@{VM}.service", "ActiveState") == "active",
              "systemctl --user enable --now orrery-vnc@demo", r.stderr)

    def rgb(data):
        """XRGB8888 without the X byte, which nobody defines."""
        b = bytearray(data or b"")
        b[3::4] = bytes(len(b) // 4)
        return bytes(b)

    vnc = VncClient(VNC_PORT)
    dump = os.path.join(session.root, "vnc.raw")

    def vnc_matches():
        frame = vnc.frame(dump)
        fb = vm_framebuffer(session.main_pid(UNIT))
        return frame is not None and fb is not None and rgb(frame) == rgb(fb[:len(frame)])
    # Polled: updates keep arriving, and the console cursor may blink between the two reads.
    matched = wait_for(vnc_matches, 60, interval=0.2)
    detail = vnc.greeting
    vnc.close()
    tap.check(matched,
              "a libvncclient client gets the VM's framebuffer, pixel for pixel (port from ~/.config/orrery/vnc)",
              detail)
    check_security(session, tap, [f"orrery-vnc@{VM}.service"])

    # 4a. The viewer's unit before the manager knows any display: it exits 78 once, naming the fix, and
    # systemd does not restart it (RestartPreventExitStatus=). Started with systemctl, not through D-Bus
    # activation: dbus-daemon would keep that activation pending (and queue the next launch behind it) until
    # its own start timeout, as systemd does not report the failed start of a Type=dbus unit to it.
    viewer_unit = "orrery-viewer.service"
    session.systemctl("unset-environment", "DISPLAY", "WAYLAND_DISPLAY", check=False)
    r = session.systemctl("start", viewer_unit, check=False)
    ended = wait_for(lambda: session.unit_property(viewer_unit, "ActiveState") in ("failed", "inactive") and
                     session.unit_property(viewer_unit, "ExecMainStatus") == "78", 60)
    restarts = session.unit_property(viewer_unit, "NRestarts")
    tap.check(ended and restarts == "0" and
              "systemctl --user import-environment DISPLAY WAYLAND_DISPLAY" in session.log_text(),
              f"without a display orrery-viewer.service exits 78, is not restarted (NRestarts={restarts}) and "
              "its log names the fix", (r.returncode, r.stderr, session.unit_property(viewer_unit, "Result")))
    session.systemctl("reset-failed", viewer_unit, check=False)

    # 4. gapplication launch org.orrery.Viewer (under Xvfb): a window shows the VM.
    xvfb = Xvfb()
    try:
        # What a desktop session does at login: the manager learns the display.
        session.systemctl("set-environment", f"DISPLAY={xvfb.display}", "GDK_BACKEND=x11", "NO_AT_BRIDGE=1")
        xenv = dict(session.env, DISPLAY=xvfb.display)
        r = session.run(["gapplication", "launch", "org.orrery.Viewer", VM], check=False, env=xenv, timeout=60)

        def window_title():
            ids = session.run(["xdotool", "search", "--name", f"^{VM} — "], check=False, env=xenv).stdout.split()
            return session.run(["xdotool", "getwindowname", ids[0]], check=False, env=xenv).stdout.strip() \
                if ids else ""
        title = wait_for(lambda: re.search(r"— running$", window_title()) and window_title(), 60)
        tap.check(r.returncode == 0 and title and
                  session.unit_property("orrery-viewer.service", "ActiveState") == "active",
                  f"gapplication launch org.orrery.Viewer demo: the unit starts and a window shows the VM ({title!r})",
                  r.stderr)
        check_security(session, tap, ["orrery-viewer.service"])
        session.systemctl("stop", "orrery-viewer.service", check=False)
    finally:
        xvfb.stop()

    # 5. busctl call … Agent1 Ping: the bus activates the bridge through its unit, and the guest answers.
    r = session.busctl("call", "org.orrery.Agent", f"/org/orrery/Agent/{VM}", "org.orrery.Agent1", "Ping",
                       "--timeout=60", check=False)
    tap.check(r.returncode == 0 and session.unit_property("orrery-agent.service", "ActiveState") == "active",
              "busctl --user call org.orrery.Agent … Ping activates orrery-agent.service and the guest answers",
              r.stdout + r.stderr)
    serial.close()

    # Bad input: the unit fails with a one-line reason, nothing half-started.
    def fails_cleanly(instance, needle, what):
        unit = f"orrery-vm@{instance}.service"
        before = len(session.log_text())
        r = session.systemctl("start", unit, check=False)
        log = session.log_text()[before:]
        reasons = [line for line in log.splitlines() if line.startswith("orrery-vm: ")]
        names = session.busctl("list", "--no-legend", check=False).stdout
        tap.check(r.returncode != 0 and session.unit_property(unit, "ActiveState") == "failed"
                  and session.unit_property(unit, "ExecMainStatus") == "2"
                  and len(reasons) == 1 and needle in reasons[0]
                  and f"org.orrery.VM.{instance} " not in names,
                  f"{what}: the unit fails (exit 2) with one line naming the problem, no bus name left",
                  f"start exit {r.returncode}, {session.unit_property(unit, 'ActiveState')}, "
                  f"status {session.unit_property(unit, 'ExecMainStatus')}, log: {log!r}")
        session.systemctl("reset-failed", unit, check=False)

    conf = session.write_config(".config/orrery/vm/badkey.conf", "memory = 1G\nfrobnicate = yes\n")
    fails_cleanly("badkey", f"{conf}:2: unknown key 'frobnicate'", "a config file with an unknown key")
    conf = session.write_config(".config/orrery/vm/badvalue.conf", "display = huge\n")
    fails_cleanly("badvalue", f"{conf}:1: invalid display 'huge'", "a config file with a bad value")
    fails_cleanly("9lives", "invalid VM name '9lives'", "an invalid VM name as the instance")

    # A second unit for the same VM name: the bus name is taken, the first VM is untouched.
    pid = session.main_pid(UNIT)
    before = len(session.log_text())
    r = session.run(["systemd-run", "--user", "--unit=second-demo", "--wait", "-p", "Type=notify",
                     f"{session.prefix}/bin/orrery-vm", "--name", VM, "--serial", "none"], check=False, timeout=60)
    log = session.log_text()[before:]
    tap.check(r.returncode != 0 and "already owned" in log and session.main_pid(UNIT) == pid
              and session.unit_property(UNIT, "ActiveState") == "active",
              "a second unit for the same VM fails cleanly (bus name taken); the first keeps running",
              f"exit {r.returncode}: {r.stderr} {log!r}")
    session.systemctl("reset-failed", "second-demo.service", check=False)

    # The VM's own configuration file is honoured by the unit.
    session.write_config(".config/orrery/vm/small.conf", "# a small VM\nmemory = 96M\ndisplay = 640x480\n")
    session.systemctl("start", "orrery-vm@small.service")
    r = session.busctl("get-property", "org.orrery.VM.small", "/org/orrery/VM/small", "org.orrery.Machine1",
                       "MemoryBytes", check=False)
    tap.check(r.stdout.strip() == f"t {96 << 20}", "orrery-vm@small reads ~/.config/orrery/vm/small.conf",
              r.stdout + r.stderr)
    session.systemctl("stop", "orrery-vm@small.service")

    # 6. systemctl --user stop: the guest shuts down cleanly (the power button, then poweroff, exit 0).
    t0 = time.monotonic()
    r = session.systemctl("stop", UNIT, check=False, timeout=120)
    took = time.monotonic() - t0
    tap.check(r.returncode == 0 and session.unit_property(UNIT, "Result") == "success"
              and session.unit_property(UNIT, "ExecMainStatus") == "0",
              f"systemctl --user stop: the guest powers off and orrery-vm exits 0, not hard-stopped ({took:.1f} s)",
              f"Result={session.unit_property(UNIT, 'Result')} status={session.unit_property(UNIT, 'ExecMainStatus')}")
finally:
    session.close()
tap.finish()

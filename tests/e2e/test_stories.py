#!/usr/bin/env python3
"""The user's stories end to end, on a private systemd --user and its session bus, with Orrery installed."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
sys.path.insert(0, os.path.dirname(__file__))
from orrery_test import Tap  # noqa: E402
from serial_client import SerialClient, scrollback, wait_ready  # noqa: E402
from user_session import check_security, open_session, say, wait_for  # noqa: E402

VM = "demo"
UNIT = f"orrery-vm@{VM}.service"
tap = Tap()
session = open_session(tap, "stories")
bus = session.env["DBUS_SESSION_BUS_ADDRESS"]

try:
    # 1. systemctl --user start orrery-vm@demo: the guest reaches ready; status shows it.
    r = session.systemctl("start", UNIT, check=False)
    tap.check(r.returncode == 0, "systemctl --user start orrery-vm@demo succeeds", r.stderr)
    tap.check(wait_ready(bus, VM), "the guest reaches its ready marker (read from serial0's scrollback)",
              scrollback(bus, VM)[-400:] if r.returncode == 0 else None)
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

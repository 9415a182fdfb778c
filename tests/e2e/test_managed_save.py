#!/usr/bin/env python3
"""Managed save end to end: with on-stop = save in the VM's configuration,
systemctl --user stop saves orrery-vm@NAME to ~/.local/state/orrery/NAME.save
instead of shutting the guest down, and the next start restores the same
guest (what it holds in RAM is still there, it does not boot again) and
deletes the file. Through a private systemd --user and its session bus."""
import os
import sys
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
sys.path.insert(0, os.path.dirname(__file__))
from orrery_test import Tap  # noqa: E402
from serial_client import SerialClient, scrollback, wait_ready  # noqa: E402
from user_session import open_session, wait_for  # noqa: E402

VM = "kept"
UNIT = f"orrery-vm@{VM}.service"

tap = Tap()
session = open_session(tap, "managed-save")
bus = session.env["DBUS_SESSION_BUS_ADDRESS"]
save = os.path.join(session.home, ".local", "state", "orrery", f"{VM}.save")

try:
    session.write_config(f".config/orrery/vm/{VM}.conf", "memory = 256M\ndisplay = none\non-stop = save\n")
    session.systemctl("start", UNIT)
    tap.check(wait_ready(bus, VM), "the VM boots under its unit", session.log_text()[-1500:])

    # Something only this boot of the guest knows, kept in its RAM (the initramfs).
    mark = uuid.uuid4().hex
    serial = SerialClient(bus, VM)
    serial.send("\n")
    m = serial.command(f"echo {mark} > /tmp/mark; echo marked-''ok", r"marked-ok\r?\n", timeout=60)
    tap.check(m is not None, "the guest keeps a mark in RAM")
    serial.close()

    session.systemctl("stop", UNIT, timeout=120)
    result = session.unit_property(UNIT, "Result")
    tap.check(os.path.exists(save) and result == "success",
              f"systemctl --user stop saves the VM to ~/.local/state/orrery/{VM}.save (Result={result})",
              session.log_text()[-1500:])
    tap.check(f"Saved VM '{VM}'" in session.log_text(), "orrery-vm says where it saved the VM", session.log_text()[-1500:])

    session.systemctl("start", UNIT)
    tap.check(wait_for(lambda: not os.path.exists(save), 60), "the next start restores the save and deletes it",
              session.log_text()[-1500:])
    serial = SerialClient(bus, VM)
    m = serial.command("cat /tmp/mark", rf"\n({mark})\r?\n", timeout=60)
    tap.check(m is not None, "the restored guest is the same guest: its mark is still in RAM")
    tap.check(scrollback(bus, VM).count(b"orrery-guest: ready") == 0, "the restored guest did not boot again")
    serial.close()

    # A configuration changed while saved: one line, the save kept, the unit failed (not restarted).
    session.systemctl("stop", UNIT, timeout=120)
    session.write_config(f".config/orrery/vm/{VM}.conf", "memory = 384M\ndisplay = none\non-stop = save\n")
    session.systemctl("start", UNIT, check=False)
    tap.check(wait_for(lambda: session.unit_property(UNIT, "ActiveState") == "failed", 60) and os.path.exists(save)
              and "memory size differs" in session.log_text(),
              "a save that no longer fits the configuration is refused and kept", session.log_text()[-1500:])
finally:
    session.systemctl("stop", UNIT, check=False)
    session.close()

tap.finish()

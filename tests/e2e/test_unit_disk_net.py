#!/usr/bin/env python3
"""A VM with a disk and a NIC under orrery-vm@.service, with README.md's drop-in.

A private systemd --user (user_session.py) with Orrery installed by README.md's
install block runs the installed unit as it is (the drop-in and the sandbox
are what is under test; the build tree may sit in /tmp, which the unit's
PrivateTmp=yes hides). The VM's config names an image below
~/vm and a NIC with restrict=on and a host forward on 127.0.0.1.
  - Without the drop-in the unit refuses to start: the home is read-only to
    it, and orrery-vm says so in one line.
  - With README.md's block, as written, it starts; the guest writes to the
    disk and the host reads it back from the image; busybox httpd in the
    guest answers through the host forward on 127.0.0.1.
Only 127.0.0.1 is ever contacted.
"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
sys.path.insert(0, os.path.dirname(__file__))
from orrery_test import Tap, fetch, free_port  # noqa: E402
from serial_client import SerialClient, wait_ready  # noqa: E402
from user_session import SOURCE_ROOT, open_session, wait_for  # noqa: E402

VM = "disknet"
UNIT = f"orrery-vm@{VM}.service"
tap = Tap()


def readme_dropin():
    with open(os.path.join(SOURCE_ROOT, "README.md")) as f:
        m = re.search(r"^<!-- test: vm drop-in\b[^\n]*-->\n```ini\n(.*?)^```", f.read(), re.M | re.S)
    return m.group(1) if m else None


session = open_session(tap, "disknet")
serial = None
try:
    unit_dir = os.path.join(session.home, ".config", "systemd", "user")
    os.makedirs(os.path.join(session.home, "vm"), exist_ok=True)
    img = os.path.join(session.home, "vm", "disk.img")
    with open(img, "wb") as f:
        f.truncate(4 << 20)
    port = free_port()
    session.write_config(f".config/orrery/vm/{VM}.conf",
                         f"drive = file={img},id=data\nnet = user,id=n0,restrict=on,hostfwd=tcp::{port}-:8080\n")
    session.systemctl("daemon-reload")

    r = session.systemctl("start", UNIT, check=False)
    log = session.log_text()
    tap.check(r.returncode != 0 and re.search(r"orrery-vm: drive 'data': cannot open '.*disk\.img': Read-only file system",
                                              log) is not None,
              "without the drop-in the unit refuses the image in the read-only home, in one line", log[-1500:])
    session.systemctl("reset-failed", UNIT, check=False)

    dropin = readme_dropin()
    tap.check(dropin is not None, "README.md has the drop-in block")
    d = os.path.join(unit_dir, f"{UNIT}.d")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "disk-net.conf"), "w") as f:
        f.write((dropin or "").replace("orrery-vm@demo", f"orrery-vm@{VM}"))
    session.systemctl("daemon-reload")
    r = session.systemctl("start", UNIT, check=False, timeout=300)
    tap.check(r.returncode == 0, "with README.md's drop-in the unit starts", r.stderr + session.log_text()[-1500:])

    bus = session.env["DBUS_SESSION_BUS_ADDRESS"]
    tap.check(wait_ready(bus, VM, timeout=300), "the guest boots under the unit")
    fwd = session.busctl("get-property", f"org.orrery.VM.{VM}", f"/org/orrery/VM/{VM}/Net/n0", "org.orrery.Network1",
                         "Forwards", check=False).stdout
    tap.check(f'"tcp" "127.0.0.1" "10.0.2.15" {port} 8080' in fwd, "Network1.Forwards lists the config's forward", fwd)

    serial = SerialClient(bus, VM)
    serial.send("\n")
    serial.command("printf orrery-unit-disk | dd of=/dev/vda conv=fsync 2>/dev/null; echo disk-''written",
                   r"disk-written\r?\n", timeout=60)
    with open(img, "rb") as f:
        head = f.read(16)
    tap.check(head == b"orrery-unit-disk", "the guest's write reaches the image under the unit", head)

    serial.command("mkdir -p /www && echo hello-from-unit > /www/index.html && httpd -p 8080 -h /www && echo httpd-''up",
                   r"httpd-up\r?\n", timeout=60)
    body = wait_for(lambda: fetch(port), 60, interval=0.2)
    tap.check(body == b"hello-from-unit\n", "a host forward on 127.0.0.1 reaches httpd in the guest under the unit",
              body)

    r = session.systemctl("stop", UNIT, check=False, timeout=120)
    tap.check(r.returncode == 0, "the unit stops", r.stderr)
except Exception as e:  # a harness failure is a failed test with its reason, never a skip
    tap.check(False, "the session runs", str(e))
finally:
    if serial:
        serial.close()
    session.close()
tap.finish()

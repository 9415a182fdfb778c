#!/usr/bin/env python3
"""README.md's drop-in for disks and NICs under orrery-vm@.service: it parses, and it lifts
exactly the unit's network lock (PrivateNetwork, RestrictAddressFamilies, IPAddressDeny)
for loopback, which the unit as built keeps shut.

Checked offline with systemd-analyze security --offline=true on the unit as meson
configured it and the block README.md marks, as written.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from orrery_test import Tap  # noqa: E402

SOURCE_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
UNIT = os.environ["ORRERY_VM_UNIT"]
tap = Tap()


def readme_dropin():
    with open(os.path.join(SOURCE_ROOT, "README.md")) as f:
        text = f.read()
    m = re.search(r"^<!-- test: vm drop-in\b[^\n]*-->\n```ini\n(.*?)^```", text, re.M | re.S)
    return m.group(1) if m else None


def security(unit_dir):
    """Setting -> whether systemd-analyze marks it safe (✓) for orrery-vm@demo."""
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager",
                        os.path.join(unit_dir, "orrery-vm@demo.service")],
                       capture_output=True, text=True, timeout=120)
    marks = {}
    for line in r.stdout.splitlines():
        m = re.match(r"\s*([✓✗])\s+(\S+)", line)
        if m:
            marks[m.group(2)] = m.group(1) == "✓"
    return r, marks


tmp = tempfile.mkdtemp(prefix="orrery-test-dropin-")
try:
    shutil.copy(UNIT, os.path.join(tmp, "orrery-vm@.service"))
    r, plain = security(tmp)
    tap.check(plain.get("PrivateNetwork=") is True and plain.get("RestrictAddressFamilies=~AF_(INET|INET6)") is True
              and plain.get("IPAddressDeny=") is True,
              "the unit as built: no network (PrivateNetwork, no AF_INET, every address denied)", r.stdout + r.stderr)

    dropin = readme_dropin()
    tap.check(dropin is not None and "[Service]" in dropin, "README.md has the drop-in block")
    d = os.path.join(tmp, "orrery-vm@demo.service.d")
    os.makedirs(d)
    with open(os.path.join(d, "disk-net.conf"), "w") as f:
        f.write(dropin or "")
    r, over = security(tmp)
    tap.check(r.returncode == 0 and "Unknown" not in r.stderr and "Failed to parse" not in r.stderr,
              "the drop-in parses without warnings", r.stderr)
    tap.check(over.get("PrivateNetwork=") is False, "with the drop-in: PrivateNetwork is off", r.stdout)
    tap.check(over.get("RestrictAddressFamilies=~AF_(INET|INET6)") is False
              and over.get("RestrictAddressFamilies=~AF_PACKET") is True
              and over.get("RestrictAddressFamilies=~AF_NETLINK") is True,
              "with the drop-in: AF_INET sockets allowed, packet and netlink sockets still not", r.stdout)
    tap.check(re.search(r"IPAddressDeny=\s+Service defines IP address allow list with only localhost entries",
                        r.stdout) is not None, "with the drop-in: only loopback addresses are allowed", r.stdout)
    tap.check(over.get("NoNewPrivileges=") is True and over.get("PrivateDevices=") is True,
              "the rest of the sandbox stays", r.stdout)
finally:
    shutil.rmtree(tmp, ignore_errors=True)
tap.finish()

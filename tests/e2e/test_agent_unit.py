#!/usr/bin/env python3
"""orrery-agent as a user gets it: installed under ~/.local, D-Bus activated through its hardened systemd
user unit by the first call to org.orrery.Agent, registered on a VM's guest agent port from inside the
sandbox, restarted by systemd after a crash."""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
sys.path.insert(0, os.path.dirname(__file__))
from orrery_test import Tap  # noqa: E402
from serial_client import SerialClient, wait_ready  # noqa: E402
from user_session import check_security, open_session, wait_for  # noqa: E402

VM = "demo"
VM_UNIT = f"orrery-vm@{VM}.service"
UNIT = "orrery-agent.service"
tap = Tap()
session = open_session(tap, "agent")
bus = session.env["DBUS_SESSION_BUS_ADDRESS"]


def owner(name):
    r = session.busctl("call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                       "GetNameOwner", "s", name, check=False)
    m = re.match(r's "(.*)"', r.stdout.strip())
    return m.group(1) if m else None


def chardev_owner():
    r = session.busctl("get-property", f"org.orrery.VM.{VM}", f"/org/orrery/VM/{VM}/Chardev/guest_agent",
                       "org.orrery.Chardev1", "Owner", check=False)
    m = re.match(r's "(.*)"', r.stdout.strip())
    return m.group(1) if m else None


def objects():
    return session.busctl("call", "org.orrery.Agent", "/org/orrery/Agent", "org.freedesktop.DBus.ObjectManager",
                          "GetManagedObjects", check=False)


try:
    r = session.systemctl("start", VM_UNIT, check=False)
    tap.check(r.returncode == 0 and wait_ready(bus, VM), "the VM runs (orrery-vm@demo)", r.stderr)
    tap.check(session.unit_property(UNIT, "ActiveState") == "inactive", "nothing started orrery-agent yet")

    r = objects()
    tap.check(r.returncode == 0 and f"/org/orrery/Agent/{VM}" in r.stdout,
              "the first call to org.orrery.Agent activates the bridge, which lists the running VM",
              r.stdout[-500:] + r.stderr)
    tap.check(session.unit_property(UNIT, "ActiveState") == "active", "through systemd: orrery-agent.service is "
              "active", session.log_text()[-1500:])
    check_security(session, tap, [UNIT])

    agent = owner("org.orrery.Agent")
    tap.check(agent is not None and wait_for(lambda: chardev_owner() == agent, 30),
              "from inside its sandbox the bridge registers on the VM's guest agent port",
              (agent, chardev_owner(), session.log_text()[-1500:]))

    r = session.busctl("--timeout=120", "call", "org.orrery.Agent", f"/org/orrery/Agent/{VM}",
                       "org.orrery.Agent1", "Ping", check=False)
    tap.check(r.returncode == 0, "busctl --user call … Ping reaches the guest's agent", r.stderr)

    # A file handed over as an fd (busctl cannot pass one: a client in Python): the sandboxed bridge opens nothing.
    src = session.write_config("agent-e2e.txt", "copied by orrery-agent from its sandbox\n")
    script = ("import dbus, sys\n"
              f"a = dbus.Interface(dbus.SessionBus().get_object('org.orrery.Agent', '/org/orrery/Agent/{VM}'),"
              " 'org.orrery.Agent1')\n"
              "with open(sys.argv[1], 'rb') as f:\n"
              "    print(int(a.CopyToGuest(dbus.types.UnixFd(f), '/tmp/agent-e2e.txt', timeout=120)))\n")
    r = session.run(["/usr/bin/python3", "-c", script, src], check=False)
    tap.check(r.returncode == 0 and r.stdout.strip() == "40", "CopyToGuest with an fd from a session client",
              r.stdout + r.stderr)
    serial = SerialClient(bus, VM)
    serial.send("\n")
    m = serial.command("echo got=$(cat /tmp/agent-e2e.txt | wc -c)", r"got=(\d+)\r?\n", timeout=60)
    serial.close()
    tap.check(m is not None and m.group(1) == b"40", "the file arrived in the guest", m.group(0) if m else None)

    # A crash: systemd restarts the bridge, which registers again.
    pid = session.main_pid(UNIT)
    session.systemctl("kill", "--signal=KILL", UNIT, check=False)
    tap.check(wait_for(lambda: session.main_pid(UNIT) not in (None, 0, pid)
                       and session.unit_property(UNIT, "ActiveState") == "active", 30),
              "after kill -9 systemd restarts orrery-agent (Restart=on-failure)",
              (pid, session.main_pid(UNIT), session.unit_property(UNIT, "ActiveState")))
    agent = owner("org.orrery.Agent")
    tap.check(agent is not None and wait_for(lambda: chardev_owner() == agent, 30),
              "the restarted bridge registers on the port again", (agent, chardev_owner()))

    # The VM stops: its object goes; the bridge stays for the next one.
    session.systemctl("stop", VM_UNIT, check=False, timeout=120)
    tap.check(wait_for(lambda: f"/org/orrery/Agent/{VM}" not in objects().stdout, 30)
              and session.unit_property(UNIT, "ActiveState") == "active",
              "when the VM stops its agent object goes away; the bridge keeps running", objects().stdout[-500:])
    r = session.systemctl("stop", UNIT, check=False)
    tap.check(r.returncode == 0 and session.unit_property(UNIT, "Result") == "success",
              "systemctl --user stop orrery-agent: a clean exit", session.unit_property(UNIT, "Result"))
finally:
    session.close()
tap.finish()

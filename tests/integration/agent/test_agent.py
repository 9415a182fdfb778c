#!/usr/bin/env python3
"""orrery-agent with the real default guest and its guest agent, the way a user gets it: the bridge is
D-Bus activated (a service file in the private dbus-daemon's servicedir, pointing at the build tree's
binary) by the first call. Ping, GetOSInfo against the guest's uname, a 16 MiB random file in and out,
FsFreeze/FsThaw, the bridge killed with -9 in the middle of a copy (the caller gets an error, the next
call activates a new bridge, the copy re-run succeeds, the guest never noticed), Shutdown powering the
VM off."""
import hashlib
import os
import shutil
import signal
import sys
import tempfile

import dbus

sys.path.insert(0, os.path.dirname(__file__))
from bridge_test import ActivatingBus, Client, Tap, contract_matches, spin  # noqa: E402
from orrery_test import BOOT_TIMEOUT, READY, Vm  # noqa: E402

NAME = "agenttest"
SIZE = 16 << 20
COPY_TIMEOUT = 600  # upper bounds only: the guest is emulated on a shared machine

tap = Tap()
tmp = tempfile.mkdtemp(prefix="orrery-agent-")


def sha(data):
    return hashlib.sha256(data).hexdigest()


def bridge_pid():
    try:
        return int(client.bus.call_blocking("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                            "GetConnectionUnixProcessID", "s", ["org.orrery.Agent"]))
    except dbus.DBusException:
        return None


def console(cmd, pattern, timeout=60):
    m = vm.command(cmd, pattern, timeout)
    return m.group(1) if m else None


def guest_agent_pid():
    return console("echo agentpid=$(pidof orrery-guest-agent)", r"\nagentpid=(\d+)\r?\n")


def copy_in(path, data):
    src = os.path.join(tmp, "src.bin")
    with open(src, "wb") as f:
        f.write(data)
    with open(src, "rb") as f:
        out = client.call_async(NAME, "CopyToGuest", dbus.types.UnixFd(f), path, timeout=COPY_TIMEOUT)
    return out


pbus = ActivatingBus(tmp, "--timeout", "60", "--verbose")
client = Client(pbus.address)
vm = Vm("--display", "none", name=NAME, bus=pbus.address)
pid = None
try:
    tap.check(vm.wait_for(READY, BOOT_TIMEOUT) is not None, "the default guest boots", vm.tail())
    tap.check(not client.has_name(), "nobody runs the bridge yet")

    # The first call activates the bridge.
    r, e = client.call(NAME, "Ping", timeout=120)
    tap.check(e is None, "the first Ping activates orrery-agent and the guest agent answers", (e, pbus.proc.pid))
    pid = bridge_pid()
    tap.check(pid is not None and client.connected(NAME), "the activated bridge owns org.orrery.Agent, Connected")
    ok, detail = contract_matches(client.introspect(NAME))
    tap.check(ok, "the live Agent1 interface matches dbus/org.orrery.Agent1.xml", detail)

    r, e = client.call(NAME, "GetOSInfo")
    uname_r = console("echo uname=$(uname -r)", r"\nuname=([^\r\n]+)\r?\n")
    tap.check(e is None and uname_r and r.get("kernel-release") == uname_r and r.get("machine") == "riscv64",
              f"GetOSInfo names the guest kernel ({uname_r}) and riscv64", (r, e))

    # 16 MiB of random bytes in and out.
    data = os.urandom(SIZE)
    out = copy_in("/tmp/agent-in.bin", data)
    spin(COPY_TIMEOUT, lambda: "t" in out)
    tap.check(out.get("result") == (SIZE,), "CopyToGuest copies 16 MiB", out)
    guest_sum = console("echo sum=$(sha256sum /tmp/agent-in.bin)", r"\nsum=([0-9a-f]{64}) ", 120)
    tap.check(guest_sum == sha(data), "the guest's sha256sum of the file equals the host's", guest_sum)
    back = os.path.join(tmp, "back.bin")
    with open(back, "wb") as f:
        out = client.call_async(NAME, "CopyFromGuest", "/tmp/agent-in.bin", dbus.types.UnixFd(f),
                                timeout=COPY_TIMEOUT)
        spin(COPY_TIMEOUT, lambda: "t" in out)
    with open(back, "rb") as f:
        tap.check(out.get("result") == (SIZE,) and sha(f.read()) == sha(data),
                  "CopyFromGuest brings the 16 MiB back (sha256 equal)", out)

    # fsfreeze on the guest's ext2 RAM disk.
    r, e = client.call(NAME, "FsFreeze")
    tap.check(e is None and r >= 1, "FsFreeze freezes the guest's file systems", (r, e))
    r, e = client.call(NAME, "FsFreezeStatus")
    tap.check(e is None and r == "frozen", "FsFreezeStatus: frozen", (r, e))
    r, e = client.call(NAME, "FsThaw")
    tap.check(e is None and r >= 1, "FsThaw thaws them", (r, e))
    r, e = client.call(NAME, "FsFreezeStatus")
    tap.check(e is None and r == "thawed", "FsFreezeStatus: thawed", (r, e))

    # kill -9 the bridge in the middle of a copy.
    agent_before = guest_agent_pid()
    progress = []
    client.bus.add_signal_receiver(lambda p, d, t: progress.append(int(d)), signal_name="CopyProgress",
                                   dbus_interface="org.orrery.Agent1")
    out = copy_in("/tmp/agent-again.bin", data)
    tap.check(spin(COPY_TIMEOUT, lambda: progress and progress[-1] > 0 or "t" in out) and "t" not in out,
              "a second copy is under way", (progress[-3:], out))
    os.kill(pid, signal.SIGKILL)
    spin(60, lambda: "t" in out)
    tap.check("error" in out and "result" not in out, "killing the bridge mid-copy gives the caller an error",
              out)
    tap.check(spin(10, lambda: not client.has_name()), "the bridge is gone")
    out = copy_in("/tmp/agent-again.bin", data)
    spin(COPY_TIMEOUT, lambda: "t" in out)
    new_pid = bridge_pid()
    tap.check(out.get("result") == (SIZE,) and new_pid not in (None, pid),
              "the re-run copy activates a new bridge and succeeds", (out, pid, new_pid))
    guest_sum = console("echo sum=$(sha256sum /tmp/agent-again.bin)", r"\nsum=([0-9a-f]{64}) ", 120)
    tap.check(guest_sum == sha(data), "the re-run copy's file is complete in the guest (sha256 equal)", guest_sum)
    tap.check(agent_before is not None and guest_agent_pid() == agent_before and vm.proc.poll() is None,
              "the guest never noticed: the same guest agent process, the VM running", (agent_before,))
    pid = new_pid

    # Shutdown powers the VM off.
    r, e = client.call(NAME, "Shutdown", "")
    tap.check(e is None, "Shutdown is accepted", e)
    tap.check(vm.wait_exit(120) == 0, "the VM powers off (orrery-vm exits 0)", vm.tail())
    tap.check(spin(30, lambda: NAME not in str(client.managed())), "the VM's agent object goes away with it")
    tap.check(bridge_pid() == pid, "the bridge keeps running for the next VM")

    # The VM starts again under the running bridge: it attaches while the guest boots and connects once the
    # guest's agent opens its port.
    vm = Vm("--display", "none", name=NAME, bus=pbus.address)
    tap.check(spin(BOOT_TIMEOUT, lambda: client.connected(NAME)), "a restarted VM: the running bridge reattaches and "
              "connects once the guest's agent is up", vm.tail())
    r, e = client.call(NAME, "GetHostName")
    tap.check(e is None and r, "and calls reach the new guest", (r, e))
    tap.check(bridge_pid() == pid, "with the same bridge process")
    pbus.log.flush()
    with open(pbus.log.name, errors="replace") as f:
        log = f.read()
    tap.check("runtime error" not in log and "Sanitizer" not in log,
              "no sanitizer report from the activated bridges (their stderr is the bus's)", log[-3000:])
finally:
    vm.kill()
    if pid:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    pbus.stop()
    shutil.rmtree(tmp, ignore_errors=True)
tap.finish()

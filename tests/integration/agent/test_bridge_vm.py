#!/usr/bin/env python3
"""orrery-agent following VMs on the bus (orrery-fake-vm: the whole bus contract without an emulator): one
object per VM with a guest_agent chardev, appearing and disappearing with it; the chardev registered by the
bridge; the handshake over it; in-flight calls failing with Unavailable when the VM goes away, restarts or
migrates, and the bridge reattaching; a port owned by someone else; the bridge killed and restarted."""
import json
import os
import socket
import subprocess
import sys

import dbus

sys.path.insert(0, os.path.dirname(__file__))
from bridge_test import Bridge, Client, PrivateBus, Tap, spin  # noqa: E402

FAKE_VM = os.environ["ORRERY_FAKE_VM"]
tap = Tap()
pbus = PrivateBus()
client = Client(pbus.address)
bus = client.bus


class FakeVm:
    """orrery-fake-vm plus a scripted guest agent behind its guest_agent chardev (FakeVM1.ChardevSend/TakeReceived)."""

    def __init__(self, name, replace_owner=None):
        self.name = name
        replace = replace_owner is not None
        self.proc = subprocess.Popen([FAKE_VM, f"--name={name}", f"--address={pbus.address}"]
                                     + (["--replace"] if replace else []))
        self.buf = b""
        self.answering = True
        self.seen = []
        spin(30, lambda: bus.name_has_owner(f"org.orrery.VM.{name}")
             and bus.get_name_owner(f"org.orrery.VM.{name}") != replace_owner)
        self.owner = bus.get_name_owner(f"org.orrery.VM.{name}")
        # Talk to this very process, not to whoever owns the name later.
        self.control = dbus.Interface(bus.get_object(self.owner, "/org/orrery/FakeVM", introspect=False),
                                      "org.orrery.FakeVM1")
        self.chardev_path = f"/org/orrery/VM/{name}/Chardev/guest_agent"

    def chardev(self, prop):
        o = bus.get_object(self.owner, self.chardev_path, introspect=False)
        return dbus.Interface(o, "org.freedesktop.DBus.Properties").Get("org.orrery.Chardev1", prop)

    def pump(self):
        """Answers what the bridge wrote to the guest agent port, like a guest agent would."""
        try:
            data = bytes(self.control.ChardevTakeReceived("guest_agent"))
        except dbus.DBusException:
            return
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            line = line.replace(b"\xff", b"")
            if not line.strip():
                continue
            req = json.loads(line)
            self.seen.append(req.get("execute"))
            if not self.answering:
                continue
            cmd, args = req.get("execute"), req.get("arguments", {})
            if cmd == "guest-sync-delimited":
                out = b"\xff" + json.dumps({"return": args["id"]}).encode()
            elif cmd == "guest-ping":
                out = b'{"return": {}}'
            elif cmd == "guest-get-host-name":
                out = json.dumps({"return": {"host-name": self.name}}).encode()
            else:
                out = b'{"error": {"class": "CommandNotFound", "desc": "no"}}'
            self.control.ChardevSend("guest_agent", dbus.ByteArray(out + b"\n"))

    def stop(self, kill=False):
        if self.proc.poll() is None:
            (self.proc.kill if kill else self.proc.terminate)()
            self.proc.wait()


def pumping(*vms):
    def p():
        for vm in vms:
            if vm.proc.poll() is None:
                vm.pump()
    return p


def spin_pump(seconds, until, *vms):
    p = pumping(*vms)
    return spin(seconds, lambda: (p(), until())[1], step=0.02)


def objects():
    try:
        return {str(k): v for k, v in client.managed().items()}
    except dbus.DBusException:
        return {}


vm1 = FakeVm("fv1")
bridge = Bridge(pbus.address, "--timeout", "3")
vm2 = None
try:
    tap.check(spin(30, client.has_name), "the bridge owns org.orrery.Agent", bridge.log)
    tap.check(spin(30, lambda: "/org/orrery/Agent/fv1" in objects()), "an object appears for the VM already running")
    o = objects().get("/org/orrery/Agent/fv1", {}).get("org.orrery.Agent1", {})
    tap.check(o.get("VM") == "fv1", "its VM property names the VM", o)
    agent_owner = bus.get_name_owner("org.orrery.Agent")
    tap.check(spin(10, lambda: vm1.chardev("Owner") == agent_owner), "the bridge registered on the guest_agent "
              "chardev")
    tap.check(spin_pump(30, lambda: client.connected("fv1"), vm1), "Connected once the guest answers the handshake "
              "through the chardev", bridge.log)
    ping = client.call_async("fv1", "Ping")
    tap.check(spin_pump(10, lambda: "t" in ping, vm1) and "result" in ping, "Ping through the chardev", ping)
    host = client.call_async("fv1", "GetHostName")
    spin_pump(10, lambda: "t" in host, vm1)
    tap.check(host.get("result") == ("fv1",), "GetHostName through the chardev", host)

    # A second VM appears and disappears with its object.
    vm2 = FakeVm("fv2")
    tap.check(spin(30, lambda: "/org/orrery/Agent/fv2" in objects()), "a VM that starts later gets its object")
    vm2.stop()
    tap.check(spin(30, lambda: "/org/orrery/Agent/fv2" not in objects()), "the object goes when the VM goes")

    # The VM goes away with a call in flight: Unavailable; it comes back: reattach.
    vm1.answering = False
    ping = client.call_async("fv1", "Ping")
    spin_pump(5, lambda: "guest-ping" in vm1.seen[-1:], vm1)
    vm1.stop(kill=True)
    spin(10, lambda: "t" in ping)
    tap.check(ping.get("error", ("",))[0] == "org.orrery.Error.Unavailable",
              "a call in flight when the VM dies fails with Unavailable", ping)
    tap.check(spin(10, lambda: "/org/orrery/Agent/fv1" not in objects()), "and its object goes away")
    vm1 = FakeVm("fv1")
    tap.check(spin(30, lambda: "/org/orrery/Agent/fv1" in objects()), "the restarted VM gets its object back")
    tap.check(spin_pump(30, lambda: client.connected("fv1"), vm1), "the bridge reattaches and resyncs",
              bridge.log[-2000:])

    # Migration: a new process takes the VM's name over (--replace); the old one stays up.
    vm1.answering = False
    ping = client.call_async("fv1", "Ping")
    spin_pump(5, lambda: "guest-ping" in vm1.seen[-1:], vm1)
    old = vm1
    vm1 = FakeVm("fv1", replace_owner=old.owner)
    spin(10, lambda: "t" in ping)
    tap.check(ping.get("error", ("",))[0] == "org.orrery.Error.Unavailable",
              "a call in flight when the VM migrates fails with Unavailable", ping)
    tap.check(spin_pump(30, lambda: client.connected("fv1"), vm1) and vm1.chardev("Owner") == agent_owner,
              "the bridge reattaches to the VM's new process", bridge.log[-2000:])
    ping = client.call_async("fv1", "Ping")
    tap.check(spin_pump(10, lambda: "t" in ping, vm1) and "result" in ping, "Ping reaches the new process", ping)
    old.stop()

    # Someone else owns the port: Unavailable, saying so; once free, the bridge takes it.
    bridge.stop()
    tap.check(spin(10, lambda: vm1.chardev("Owner") == ""), "the port is free again once the bridge exits")
    other = dbus.bus.BusConnection(pbus.address)
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    chardev = dbus.Interface(other.get_object("org.orrery.VM.fv1", vm1.chardev_path, introspect=False),
                             "org.orrery.Chardev1")
    chardev.Register(dbus.types.UnixFd(theirs))
    theirs.close()
    bridge = Bridge(pbus.address, "--timeout", "3")
    tap.check(spin(30, lambda: client.has_name() and "/org/orrery/Agent/fv1" in objects()),
              "a restarted bridge publishes the VM's object even if the port is taken")
    r, e = client.call("fv1", "Ping")
    tap.check(e is not None and e[0] == "org.orrery.Error.Unavailable" and "another client" in e[1],
              "a call while another client owns the port is Unavailable, saying so", e)
    chardev.Unregister()
    mine.close()
    agent_owner = bus.get_name_owner("org.orrery.Agent")
    tap.check(spin_pump(30, lambda: vm1.chardev("Owner") == agent_owner and client.connected("fv1"), vm1),
              "once the port is free the bridge registers and connects", bridge.log[-2000:])

    # The bridge is killed with a call in flight: the caller gets an error; a new bridge picks up.
    vm1.answering = False
    ping = client.call_async("fv1", "Ping")
    spin_pump(5, lambda: "guest-ping" in vm1.seen[-1:], vm1)
    bridge.kill()
    spin(10, lambda: "t" in ping)
    tap.check("error" in ping, "a call in flight when the bridge dies gets an error, not silence", ping)
    vm1.answering = True
    bridge = Bridge(pbus.address, "--timeout", "3")
    agent_owner = None
    tap.check(spin_pump(30, lambda: client.has_name() and client.connected("fv1"), vm1),
              "a new bridge registers again and resyncs", bridge.log[-2000:])
    ping = client.call_async("fv1", "Ping")
    tap.check(spin_pump(10, lambda: "t" in ping, vm1) and "result" in ping, "and the calls work again", ping)
    tap.check(bridge.healthy(), "the bridge is still running, without a sanitizer report", bridge.log[-2000:])
finally:
    bridge.kill()
    vm1.stop()
    if vm2:
        vm2.stop()
    pbus.stop()
tap.finish()

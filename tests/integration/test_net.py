#!/usr/bin/env python3
"""virtio-net with user-mode networking (libslirp), end to end.

Only ever 127.0.0.1: the host's servers listen on loopback, the guest reaches
them as 10.0.2.2 (slirp's name for the host's loopback) and nothing else,
and the VM that tests forwards runs with restrict=on.
"""
import http.server
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import tempfile  # noqa: E402
import xml.etree.ElementTree as ET  # noqa: E402

import dbus  # noqa: E402

from orrery_test import BOOT_TIMEOUT, ORRERY_VM, PrivateBus, READY, Tap, Vm, free_port, interface_members  # noqa: E402

XML_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "dbus")

COMMON = ["--display", "none", "--no-config"]
tap = Tap()


def refused(args, what, expect):
    r = subprocess.run([ORRERY_VM, "--name", "t", "--no-bus", "--serial", "none"] + COMMON + args,
                       stdin=subprocess.PIPE, capture_output=True, timeout=60)
    err = r.stderr.decode(errors="replace")
    lines = [line for line in err.splitlines() if line.startswith("orrery-vm:")]
    ok = r.returncode == 2 and len(lines) == 1 and re.search(expect, lines[0]) is not None
    tap.check(ok, f"{what}: exit 2, one line ({lines[0] if lines else 'none'})", f"exit {r.returncode}\n{err}")


class Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello-from-host\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


# ---- refusals
refused(["--net", "user,mac=01:00:5e:00:00:01"], "a multicast MAC", r"invalid MAC")
refused(["--net", "user,mac=52:54:00:12:34"], "a short MAC", r"invalid MAC")
refused(["--net", "user,hostfwd=tcp::70000-:80"], "a host port out of range", r"port out of range")
refused(["--net", "user,hostfwd=tcp::8080-:0"], "guest port 0", r"port out of range")
refused(["--net", "user,hostfwd=sctp::8080-:80"], "an unknown protocol", r"invalid hostfwd")
refused(["--net", "user,colour=blue"], "an unknown key", r"unknown key 'colour'")
refused(["--net", "tap,id=x"], "a backend other than user", r"only 'user'")
refused(["--net", "user,id=a", "--net", "user,id=a"], "duplicate ids", r"two NICs have the id 'a'")
busy = socket.socket()
busy.bind(("127.0.0.1", 0))
busy.listen(1)
refused(["--net", f"user,hostfwd=tcp::{busy.getsockname()[1]}-:80"], "a host port in use", r"cannot forward tcp:127.0.0.1")
busy.close()

# ---- a host server on loopback, for the guest to fetch from
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
threading.Thread(target=server.serve_forever, daemon=True).start()
host_port = server.server_address[1]

vms = []
try:
    # VM 1: restricted, with a forward to busybox httpd in the guest.
    fwd = free_port()
    vm = Vm(*(COMMON + ["--net", f"user,id=n0,hostfwd=tcp::{fwd}-:80,restrict=on"]), name="netr")
    vms.append(vm)
    m = vm.wait_for(r"orrery: eth0 (\S+)\r?\n", BOOT_TIMEOUT)
    tap.check(m is not None and m.group(1) == "10.0.2.15", "DHCP gives the guest 10.0.2.15", vm.tail())
    tap.check(vm.wait_for(READY, BOOT_TIMEOUT) is not None, "the guest with a NIC boots", vm.tail())
    m = vm.command("cat /sys/class/net/eth0/address", r"\n([0-9a-f:]{17})\r?\n", 30)
    tap.check(m is not None and m.group(1).startswith("52:54:00:"), "the MAC is derived (52:54:00:...)", vm.tail())
    m = vm.command("mkdir -p /www && echo hello-from-guest > /www/index.html && httpd -p 80 -h /www && echo httpd-''up",
                   r"httpd-up\r?\n", 30)
    # httpd daemonises before it listens: until it does, slirp's connection to the guest is reset.
    deadline = time.monotonic() + 60
    while True:
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{fwd}/index.html", timeout=60).read()
            break
        except OSError as e:
            body = str(e).encode()
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
    tap.check(body == b"hello-from-guest\n", "a host forward on 127.0.0.1 reaches busybox httpd in the guest", body)
    m = vm.command(f"wget -T 5 -q -O - http://10.0.2.2:{host_port}/ 2>&1; echo wget-exit-''$?", r"wget-exit-(\d+)", 60)
    tap.check(m is not None and m.group(1) != "0" and "hello-from-host" not in m.string[m.start() - 300:m.start()],
              "restrict=on blocks the guest's outbound connection", vm.tail())
    vm.send("poweroff\n")
    tap.check(vm.wait_exit(60) == 0, "the guest powers off", vm.tail())

    # VM 2: not restricted, with a given MAC, a disk and the bus; the guest fetches from the host's loopback.
    pbus = PrivateBus()
    tmpdir = tempfile.mkdtemp(prefix="orrery-test-net-")
    img = os.path.join(tmpdir, "d.img")
    with open(img, "wb") as f:
        f.truncate(1 << 20)
    vm = Vm(*(COMMON + ["--net", "user,mac=52:54:00:aa:bb:cc,id=lan", "--drive", f"file={img},id=data,readonly=on"]),
            name="netu", bus=pbus.address)
    vms.append(vm)
    tap.check(vm.wait_for(READY, BOOT_TIMEOUT) is not None, "a second VM with a NIC boots", vm.tail())
    m = vm.command("cat /sys/class/net/eth0/address", r"\n([0-9a-f:]{17})\r?\n", 30)
    tap.check(m is not None and m.group(1) == "52:54:00:aa:bb:cc", "mac= is the guest's MAC", vm.tail())
    fetch = f"wget -T 5 -q -O - http://10.0.2.2:{host_port}/ 2>&1; echo wget-exit-''$?"
    m = vm.command(fetch, r"wget-exit-(\d+)", 60)
    tap.check(m is not None and m.group(1) == "0" and "hello-from-host" in vm.output,
              "the guest fetches a page from a host server on 127.0.0.1 (as 10.0.2.2)", vm.tail())

    # The bus: Network1 and Block1 as documented, LinkUp down and up.
    bus = dbus.bus.BusConnection(pbus.address)
    service, base = "org.orrery.VM.netu", "/org/orrery/VM/netu"
    for iface, path in (("org.orrery.Network1", f"{base}/Net/lan"), ("org.orrery.Block1", f"{base}/Block/data")):
        live = ET.fromstring(str(bus.get_object(service, path).Introspect(dbus_interface="org.freedesktop.DBus.Introspectable")))
        got = [i for i in live.findall("interface") if i.get("name") == iface]
        spec = ET.parse(os.path.join(XML_DIR, f"{iface}.xml")).getroot().find("interface")
        tap.check(len(got) == 1 and interface_members(got[0]) == interface_members(spec),
                  f"{iface} on {path} matches dbus/{iface}.xml")
    managed = dbus.Interface(bus.get_object(service, "/org/orrery/VM"), "org.freedesktop.DBus.ObjectManager").GetManagedObjects()
    tap.check(f"{base}/Net/lan" in managed and f"{base}/Block/data" in managed, "the ObjectManager lists the disk and the NIC")
    nprops = dbus.Interface(bus.get_object(service, f"{base}/Net/lan"), "org.freedesktop.DBus.Properties")
    bprops = dbus.Interface(bus.get_object(service, f"{base}/Block/data"), "org.freedesktop.DBus.Properties")
    tap.check(str(nprops.Get("org.orrery.Network1", "MAC")) == "52:54:00:aa:bb:cc" and
              bool(nprops.Get("org.orrery.Network1", "LinkUp")) and int(nprops.Get("org.orrery.Network1", "RxPackets")) > 0,
              "Network1: MAC, LinkUp, counters")
    tap.check(str(bprops.Get("org.orrery.Block1", "Path")) == img and bool(bprops.Get("org.orrery.Block1", "ReadOnly")) and
              int(bprops.Get("org.orrery.Block1", "SizeBytes")) == 1 << 20 and int(bprops.Get("org.orrery.Block1", "ReadOps")) > 0,
              "Block1: Path, ReadOnly, SizeBytes, ReadOps (the guest read the partition table)")
    nprops.Set("org.orrery.Network1", "LinkUp", dbus.Boolean(False))
    m = vm.command("cat /sys/class/net/eth0/carrier; " + fetch, r"\n([01])\r?\n[\s\S]*?wget-exit-(\d+)", 60)
    tap.check(m is not None and m.group(1) == "0" and m.group(2) != "0", "LinkUp=false: the guest loses carrier, its fetch fails",
              vm.tail())
    nprops.Set("org.orrery.Network1", "LinkUp", dbus.Boolean(True))
    m = vm.command("cat /sys/class/net/eth0/carrier; " + fetch, r"\n([01])\r?\n[\s\S]*?wget-exit-(\d+)", 60)
    tap.check(m is not None and m.group(1) == "1" and m.group(2) == "0", "LinkUp=true: carrier back, the fetch works again",
              vm.tail())
    vm.send("poweroff\n")
    tap.check(vm.wait_exit(60) == 0, "the guest powers off", vm.tail())
finally:
    for v in vms:
        v.kill()
    server.shutdown()
    if "pbus" in globals():
        pbus.stop()
    if "tmpdir" in globals():
        import shutil
        shutil.rmtree(tmpdir, ignore_errors=True)
tap.finish()

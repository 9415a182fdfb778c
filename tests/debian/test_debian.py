#!/usr/bin/env python3
"""The Debian guest as a user meets it: `orrery-vm --guest debian` boots Debian's kernel, systemd and getty to
`login:` on the serial console, where root logs in without a password; Debian's OpenSSH answers on the
forwarded port of 127.0.0.1 with a key the test made (`uname -a` prints the guest's kernel); Debian's
qemu-guest-agent answers orrery-agent (GetOSInfo names Debian 13, GetHostName, FsFreeze/FsThaw of the ext4
root, a 16 MiB CopyToGuest + CopyFromGuest with matching sha256); Shutdown("powerdown") ends orrery-vm with
exit 0 and leaves the ext4 root clean (no journal replay on the next boot).

Needs the image: meson compile -C build debian-image."""
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time

import dbus

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration", "agent"))
from orrery_test import ORRERY_VM, PrivateBus, Tap, Vm  # noqa: E402
from bridge_test import Bridge, Client, spin  # noqa: E402

NAME = "deb"
DEBIAN_DIR = os.environ["ORRERY_DEBIAN_DIR"]
# Upper bounds that only catch hangs on a loaded 2-core machine.
BOOT_TIMEOUT = float(os.environ.get("ORRERY_DEBIAN_BOOT_TIMEOUT", "900"))
STEP_TIMEOUT = 300

tap = Tap()
tmp = tempfile.mkdtemp(prefix="orrery-debian-")
env = dict(os.environ, XDG_DATA_HOME=os.path.join(tmp, "data"), XDG_CONFIG_HOME=os.path.join(tmp, "config"))
disk = os.path.join(tmp, "data", "orrery", "vm", NAME, "debian.img")


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# The VM's own disk, made by --guest debian; the test's key goes into it before the first boot.
r = subprocess.run([ORRERY_VM, "--name", NAME, "--no-bus", "--guest", "debian",
                    "--dump-dtb", os.path.join(tmp, "m.dtb")], env=env, capture_output=True, text=True, timeout=600)
if not tap.check(r.returncode == 0 and os.path.isfile(disk), "--guest debian makes the VM's disk", r.stderr):
    tap.finish()
key = os.path.join(tmp, "id_ed25519")
subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True, timeout=60)
script = os.path.join(tmp, "debugfs.cmd")
with open(script, "w") as f:
    f.write(f"mkdir /root/.ssh\nrm /root/.ssh/authorized_keys\nwrite {key}.pub /root/.ssh/authorized_keys\n"
            "set_inode_field /root/.ssh mode 040700\nset_inode_field /root/.ssh uid 0\nset_inode_field /root/.ssh gid 0\n"
            "set_inode_field /root/.ssh/authorized_keys mode 0100600\n"
            "set_inode_field /root/.ssh/authorized_keys uid 0\nset_inode_field /root/.ssh/authorized_keys gid 0\n")
subprocess.run(["debugfs", "-w", "-f", script, disk], capture_output=True, timeout=60)
r = subprocess.run(["debugfs", "-R", "cat /root/.ssh/authorized_keys", disk], capture_output=True, text=True,
                   timeout=60)
with open(key + ".pub") as f:
    tap.check(f.read().strip() in r.stdout, "the test's ssh key is in the disk's /root/.ssh/authorized_keys")

pbus = PrivateBus()
vm = Vm("--guest", "debian", "--cpu-engine", "jit", name=NAME, env=env, bus=pbus.address)
bridge = None
try:
    start = time.monotonic()
    login = vm.wait_for(r"orrery login:", BOOT_TIMEOUT)
    if not tap.check(login is not None, "Debian reaches 'orrery login:' on the serial console", vm.tail()):
        tap.finish()
    print(f"# login: after {time.monotonic() - start:.0f} s", flush=True)
    m = re.search(r"ssh -p (\d+) root@127\.0\.0\.1", vm.stderr)
    tap.check(m is not None, "orrery-vm shows the ssh port", vm.stderr)
    port = m.group(1) if m else "0"

    vm.send("root\n")
    tap.check(vm.wait_for(r"root@orrery:~#", STEP_TIMEOUT) is not None, "root logs in on ttyS0 without a password",
              vm.tail())
    tap.check(vm.command("echo orrery-$((6 * 7))", r"orrery-42", STEP_TIMEOUT) is not None, "the login shell runs commands",
              vm.tail())

    # sshd may come up a little after the getty: retry within the bound.
    ssh = ["ssh", "-p", port, "-i", key, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
           "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=30", "root@127.0.0.1"]
    deadline = time.monotonic() + STEP_TIMEOUT
    while True:
        r = subprocess.run(ssh + ["uname", "-a"], capture_output=True, text=True, timeout=120)
        if r.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(2)
    tap.check(r.returncode == 0 and re.match(r"Linux orrery 6\.\d+\.\S+-riscv64 .* riscv64 GNU/Linux", r.stdout),
              "ssh -p PORT root@127.0.0.1 uname -a prints the guest's Debian kernel", r.stdout + r.stderr)
    r = subprocess.run(ssh + ["systemctl", "show", "-p", "DefaultDeviceTimeoutUSec"], capture_output=True, text=True,
                       timeout=120)
    tap.check(r.stdout.strip() == "DefaultDeviceTimeoutUSec=10min",
              "systemd waits 10 minutes for a device (a slow udev on a loaded host still brings up ttyS0's getty)",
              r.stdout + r.stderr)
    r = subprocess.run(ssh + ["-o", "PubkeyAuthentication=no", "true"], capture_output=True, text=True, timeout=120)
    tap.check(r.returncode != 0, "ssh without the key is refused (no empty password over ssh)", r.stderr)

    bridge = Bridge(pbus.address)
    client = Client(pbus.address)
    tap.check(spin(STEP_TIMEOUT, lambda: client.connected(NAME)),
              "orrery-agent connects to Debian's qemu-guest-agent (port org.qemu.guest_agent.0)", bridge.log[-3000:])
    info, err = client.call(NAME, "GetOSInfo")
    info = dict(info or {})
    tap.check(info.get("id") == "debian" and info.get("version-id") == "13" and "Debian" in info.get("pretty-name", ""),
              "GetOSInfo names Debian 13", (info, err))
    host, err = client.call(NAME, "GetHostName")
    tap.check(host == "orrery", "GetHostName is orrery", (host, err))

    frozen, err = client.call(NAME, "FsFreeze")
    status, _ = client.call(NAME, "FsFreezeStatus")
    tap.check(frozen is not None and frozen >= 1 and status == "frozen", "FsFreeze freezes the ext4 root",
              (frozen, status, err))
    thawed, err = client.call(NAME, "FsThaw")
    status, _ = client.call(NAME, "FsFreezeStatus")
    tap.check(thawed is not None and thawed >= 1 and status == "thawed", "FsThaw thaws it", (thawed, status, err))

    blob = os.path.join(tmp, "blob")
    with open(blob, "wb") as f:
        f.write(os.urandom(16 << 20))
    with open(blob, "rb") as f:
        n, err = client.call(NAME, "CopyToGuest", dbus.types.UnixFd(f.fileno()), "/root/blob", timeout=STEP_TIMEOUT)
    tap.check(n == 16 << 20, "CopyToGuest of 16 MiB", (n, err))
    back = os.path.join(tmp, "back")
    with open(back, "wb") as f:
        n, err = client.call(NAME, "CopyFromGuest", "/root/blob", dbus.types.UnixFd(f.fileno()), timeout=STEP_TIMEOUT)
    tap.check(n == 16 << 20 and sha256(back) == sha256(blob), "CopyFromGuest returns it with the same sha256",
              (n, err))
    r = subprocess.run(ssh + ["sha256sum", "/root/blob"], capture_output=True, text=True, timeout=120)
    tap.check(r.stdout.split()[:1] == [sha256(blob)], "sha256sum in the guest agrees", r.stdout + r.stderr)

    _, err = client.call(NAME, "Shutdown", "powerdown", timeout=STEP_TIMEOUT)
    tap.check(err is None, "Shutdown('powerdown') is accepted", err)
    code = vm.wait_exit(STEP_TIMEOUT)
    tap.check(code == 0, "Debian powers off and orrery-vm exits 0", f"exit {code}\n{vm.tail()}")
    r = subprocess.run(["dumpe2fs", "-h", disk], capture_output=True, text=True, timeout=60)
    tap.check(re.search(r"Filesystem state:\s+clean\n", r.stdout) is not None and "needs_recovery" not in r.stdout,
              "the ext4 root is left clean (no journal replay at the next boot)", r.stdout[-2000:])
finally:
    if bridge:
        bridge.stop()
    vm.kill()
    pbus.stop()
tap.finish()

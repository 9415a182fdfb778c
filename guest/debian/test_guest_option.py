#!/usr/bin/env python3
"""--guest debian / guest = debian: the Debian image's kernel, initrd and command line, the VM's own sparse copy
of the image (made once, never the build output), 1 GiB, and a NIC forwarding ssh from 127.0.0.1. Uses a stand-in
image, so it runs without building Debian; test_debian.py boots the real one."""
import hashlib
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "integration"))
from orrery_test import ORRERY_VM, Tap  # noqa: E402

tap = Tap()
tmp = tempfile.mkdtemp(prefix="orrery-guest-opt-")
debian = os.path.join(tmp, "debian")
os.mkdir(debian)

# A header orrery-vm accepts as a RISC-V Image; --dump-dtb never runs it.
hdr = bytearray(64)
hdr[8:16] = (0x200000).to_bytes(8, "little")
hdr[16:24] = (0x1000).to_bytes(8, "little")
hdr[48:56] = b"RISCV\0\0\0"
hdr[56:60] = b"RSC\x05"
with open(os.path.join(debian, "vmlinux"), "wb") as f:
    f.write(bytes(hdr) + b"\0" * 4032)
with open(os.path.join(debian, "initrd.img"), "wb") as f:
    f.write(b"\0" * 4096)
pristine = os.path.join(debian, "debian.img")
with open(pristine, "wb") as f:
    f.truncate(256 << 20)
    f.seek(100 << 20)
    f.write(b"orrery-debian-stand-in" * 4096)


def sha(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


pristine_sha = sha(pristine)
env = dict(os.environ, ORRERY_DEBIAN_DIR=debian, XDG_DATA_HOME=os.path.join(tmp, "data"),
           XDG_CONFIG_HOME=os.path.join(tmp, "config"))
disk = os.path.join(tmp, "data", "orrery", "vm", "deb", "debian.img")


def run(*args):
    dtb = os.path.join(tmp, "machine.dtb")
    if os.path.exists(dtb):
        os.unlink(dtb)
    r = subprocess.run([ORRERY_VM, "--name", "deb", "--no-bus", "--dump-dtb", dtb] + list(args), env=env,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    dts = ""
    if r.returncode == 0:
        dts = subprocess.run(["dtc", "-I", "dtb", "-O", "dts", dtb], capture_output=True, text=True,
                             timeout=60).stdout
    return r.returncode, r.stderr.decode(errors="replace"), dts


code, err, dts = run("--guest", "debian")
tap.check(code == 0, "--guest debian starts with a built image", err)
tap.check('bootargs = "root=LABEL=debian-root ro console=tty1 console=ttyS0 '
          'systemd.default_device_timeout_sec=600";' in dts,
          "the kernel command line mounts the image (labelled debian-root) as root and gives devices 10 minutes",
          dts)
tap.check(re.search(r"reg = <0x00 0x80000000 0x00 0x40000000>;", dts) is not None, "1 GiB of RAM by default")
tap.check(os.path.isfile(disk) and sha(disk) == pristine_sha, "the VM's disk is a copy of the built image", err)
st = os.stat(disk)
tap.check(st.st_blocks * 512 < (8 << 20), "the copy is sparse", f"{st.st_blocks * 512} bytes allocated")
m = re.search(r"ssh -p (\d+) root@127\.0\.0\.1", err)
tap.check(m is not None and 1024 <= int(m.group(1)) <= 65535, "the ssh port on 127.0.0.1 is shown", err)

# The VM's disk is its own: a second start keeps what the guest wrote, and the build output is untouched.
with open(disk, "r+b") as f:
    f.seek(200 << 20)
    f.write(b"written by the guest")
code, err, dts = run("--guest", "debian")
with open(disk, "rb") as f:
    f.seek(200 << 20)
    kept = f.read(20)
tap.check(code == 0 and kept == b"written by the guest", "a second start keeps the VM's disk", err)
tap.check(sha(pristine) == pristine_sha, "the built image is never written")
tap.check("Made this VM's Debian disk" not in err, "the disk is made only once", err)

# What the user sets wins.
other = os.path.join(tmp, "other.img")
with open(other, "wb") as f:
    f.truncate(16 << 20)
code, err, dts = run("--guest", "debian", "--memory", "768M", "--append", "console=ttyS0 single",
                     "--drive", "file=" + other, "--net", "user,restrict=on")
tap.check(code == 0 and 'bootargs = "console=ttyS0 single";' in dts and "0x30000000>;" in dts,
          "--memory and --append override the guest's", err)
tap.check("ssh -p" not in err, "with a --net of the user's own no ssh forward is added", err)

# Debian's kernel draws tty1 through its virtio_gpu module: the preset's display is a virtio-gpu, and the tree
# describes no simple-framebuffer beside it, unless the user asks for one.
code, err, dts = run("--guest", "debian")
tap.check(code == 0 and "memory@80000000" in dts and "framebuffer@" not in dts,
          "--guest debian: the display is a virtio-gpu, no simple-framebuffer node", err)
code, err, dts = run("--guest", "debian", "--gpu", "simplefb")
tap.check(code == 0 and "simple-framebuffer" in dts, "--guest debian --gpu simplefb keeps the simple-framebuffer", err)
code, err, dts = run("--guest", "debian", "--display", "none")
tap.check(code == 0 and "framebuffer@" not in dts, "--guest debian --display none: no display at all", err)

# The configuration file selects it too.
conf = os.path.join(tmp, "config", "orrery", "vm")
os.makedirs(conf)
with open(os.path.join(conf, "deb.conf"), "w") as f:
    f.write("[vm]\nguest = debian\n")
code, err, dts = run()
tap.check(code == 0 and "root=LABEL=debian-root" in dts and "ssh -p" in err, "'guest = debian' in the VM's config", err)

code, err, dts = run("--guest", "ubuntu")
tap.check(code == 2 and err.startswith("orrery-vm: invalid --guest 'ubuntu'"), "an unknown guest is refused", err)

env["ORRERY_DEBIAN_DIR"] = os.path.join(tmp, "missing")
env["XDG_DATA_HOME"] = os.path.join(tmp, "data2")
code, err, dts = run("--guest", "debian")
tap.check(code == 2 and "meson compile -C build debian-image" in err.splitlines()[0],
          "without a built image: one line saying how to build it", err)
tap.finish()

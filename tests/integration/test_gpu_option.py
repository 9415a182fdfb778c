#!/usr/bin/env python3
"""--gpu virtio / gpu = virtio: the display becomes a virtio-gpu in the highest free virtio slot, the device tree
drops the simple-framebuffer node (it would describe a second, unused display), and what cannot work is refused
with one line. The default guest's kernel has no virtio-gpu driver, but Linux lists every virtio device it finds,
so the guest shows which slot holds DeviceID 16. The device's state goes into a saved VM: a VM saved with it
restores with --gpu virtio and is refused with --gpu simplefb (exit 2, one line)."""
import os
import shutil
import subprocess
import sys
import tempfile

import dbus

sys.path.insert(0, os.path.dirname(__file__))
from orrery_test import BOOT_TIMEOUT, ORRERY_VM, READY, PrivateBus, Tap, Vm  # noqa: E402

tap = Tap()
tmp = tempfile.mkdtemp(prefix="orrery-gpu-opt-")
env = dict(os.environ, XDG_CONFIG_HOME=os.path.join(tmp, "config"))    # no VM configuration of the user's


def dts_of(*args):
    dtb = os.path.join(tmp, "machine.dtb")
    if os.path.exists(dtb):
        os.unlink(dtb)
    r = subprocess.run([ORRERY_VM, "--name", "gpu", "--no-bus", "--dump-dtb", dtb] + list(args),
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60, env=env)
    if r.returncode != 0:
        return None, r.stderr.decode(errors="replace")
    d = subprocess.run(["dtc", "-I", "dtb", "-O", "dts", dtb], capture_output=True, text=True, timeout=60)
    return d.stdout, r.stderr.decode(errors="replace")


dts, err = dts_of("--display", "800x600")
tap.check(dts is not None and "simple-framebuffer" in dts, "by default the display is a simple-framebuffer", err)
dts, err = dts_of("--display", "800x600", "--gpu", "simplefb")
tap.check(dts is not None and "simple-framebuffer" in dts, "--gpu simplefb says the same", err)
dts, err = dts_of("--display", "800x600", "--gpu", "virtio")
tap.check(dts is not None and "framebuffer@" not in dts and dts.count('compatible = "virtio,mmio"') == 8,
          "--gpu virtio: no framebuffer node, the eight virtio slots as before", dts or err)
conf = os.path.join(tmp, "gpu.conf")
with open(conf, "w") as f:
    f.write("[vm]\ngpu = virtio\n")
dts, err = dts_of("--config", conf)
tap.check(dts is not None and "framebuffer@" not in dts, "gpu = virtio in the configuration file", dts or err)


def usage_error(args, message, what):
    r = subprocess.run([ORRERY_VM, "--name", "gpu", "--no-bus", "--no-config"] + args, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=60)
    err = r.stderr.decode(errors="replace")
    tap.check(r.returncode != 0 and message in err and len(err.strip().splitlines()) == 1,
              f"{what}: refused with one line naming it", f"exit {r.returncode}: {err!r}")


usage_error(["--gpu", "vga"], "invalid --gpu 'vga': expected simplefb or virtio", "an unknown --gpu")
usage_error(["--gpu", "virtio", "--display", "none"], "--gpu virtio needs a display", "--gpu virtio without display")
usage_error(["--gpu", "virtio"] + ["--net", "user,restrict=on"] * 4,
            "too many drives and NICs: 4 (at most 3 together with --gpu virtio)", "four NICs and a virtio-gpu")

pbus = PrivateBus()
common = ["--gpu", "virtio", "--display", "640x480", "--no-config"]
vm = vm2 = None
try:
    vm = Vm(*common, name="gpu", bus=pbus.address)
    if not tap.check(vm.wait_for(READY, BOOT_TIMEOUT) is not None, "the default guest boots with --gpu virtio",
                     vm.tail()):
        tap.finish()
    start = len(vm.output)
    m = vm.command("for d in /sys/bus/virtio/devices/*; do echo dev $(cat $d/device) $(readlink -f $d); done; "
                   "echo list$((1+1))ed", r"list2ed\r?\n", 30)
    listing = vm.output[start:m.start()] if m else vm.tail()
    tap.check(m is not None and "dev 0x0010 /sys/devices/platform/soc/10008000.virtio_mmio/" in listing,
              "the guest finds DeviceID 16 in the highest slot (0x10008000)", listing)
    fb = vm.framebuffer()
    tap.check(fb is not None and len(fb) >= 640 * 480 * 4, "the framebuffer memfd is still there for the host side")

    vm.command("echo before-save > /tmp/mark; echo mark$((1+1))ed", r"mark2ed\r?\n", 30)
    saved = os.path.join(tmp, "gpu.save")
    bus = dbus.bus.BusConnection(pbus.address)
    machine = dbus.Interface(bus.get_object("org.orrery.VM.gpu", "/org/orrery/VM/gpu"), "org.orrery.Machine1")
    with open(saved, "wb") as f:
        machine.SaveAndQuit(dbus.types.UnixFd(f))
    tap.check(vm.wait_exit(60) == 0, "SaveAndQuit with a virtio-gpu: the emulator exits 0", vm.tail())

    r = subprocess.run([ORRERY_VM, "--name", "gpu", "--no-bus", "--serial", "none", "--no-config", "--display",
                        "640x480", "--gpu", "simplefb", "--restore", saved], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=120)
    lines = [line for line in r.stderr.decode(errors="replace").splitlines() if line.startswith("orrery-vm:")]
    tap.check(r.returncode == 2 and len(lines) == 1 and "device state" in lines[0],
              "restoring it with --gpu simplefb is refused with one line naming the device state",
              f"exit {r.returncode}: {r.stderr!r}")

    vm2 = Vm(*common, "--restore", saved, name="gpu")
    m = vm2.command("cat /tmp/mark", r"\n(before-save)\r?\n", 60)
    tap.check(m is not None and READY not in vm2.output, "restored with --gpu virtio, the guest goes on", vm2.tail())
finally:
    for v in (vm, vm2):
        if v:
            v.kill()
    pbus.stop()
    shutil.rmtree(tmp, ignore_errors=True)
tap.finish()

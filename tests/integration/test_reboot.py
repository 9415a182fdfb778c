#!/usr/bin/env python3
"""A guest reboot resets the machine and boots again; --no-reboot exits instead.

A reset reads the boot images from their files again (orrery-vm keeps no
copy in memory): the same bytes boot again, and a file that changed since
the start stops the VM with one clear line instead of booting other bytes.
"""
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from orrery_test import BOOT_TIMEOUT, ORRERY_VM, READY, Tap, Vm  # noqa: E402

tap = Tap()
vm = Vm("--display", "none")
try:
    if tap.check(vm.wait_for(READY, BOOT_TIMEOUT) is not None, "first boot reaches ready", vm.tail()):
        vm.send("reboot\n")
        tap.check(vm.wait_for(READY, BOOT_TIMEOUT) is not None, "after 'reboot' the guest reaches ready again", vm.tail())
        tap.check(vm.proc.poll() is None, "orrery-vm is still running after the reboot")
        vm.send("poweroff\n")
        tap.check(vm.wait_exit(60) == 0, "poweroff after a reboot exits 0", vm.tail())
finally:
    vm.kill()

vm = Vm("--display", "none", "--no-reboot")
try:
    if tap.check(vm.wait_for(READY, BOOT_TIMEOUT) is not None, "--no-reboot: boot reaches ready", vm.tail()):
        vm.send("reboot\n")
        code = vm.wait_exit(60)
        tap.check(code == 0, f"--no-reboot: a guest reboot makes orrery-vm exit 0 (exit {code})", vm.tail())
finally:
    vm.kill()
# The images from copies in a private directory, so that one can be changed under the running VM.
tmp = tempfile.mkdtemp(prefix="orrery-test-reboot-")
guest = os.environ.get("ORRERY_GUEST_DIR") or os.path.join(os.path.dirname(os.path.abspath(ORRERY_VM)), "..", "guest")
kernel, initrd = os.path.join(tmp, "Image"), os.path.join(tmp, "initramfs.cpio.gz")
shutil.copyfile(os.path.join(guest, "Image"), kernel)
shutil.copyfile(os.path.join(guest, "initramfs.cpio.gz"), initrd)
vm = Vm("--display", "none", "--kernel", kernel, "--initrd", initrd)
try:
    if tap.check(vm.wait_for(READY, BOOT_TIMEOUT) is not None, "images in a directory of their own: boot reaches ready",
                 vm.tail()):
        vm.send("reboot\n")
        tap.check(vm.wait_for(READY, BOOT_TIMEOUT) is not None, "a reboot reads the unchanged images again", vm.tail())
        # One byte in the middle of the initramfs, the size unchanged: only the bytes tell.
        with open(initrd, "r+b") as f:
            f.seek(os.path.getsize(initrd) // 2)
            b = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([b[0] ^ 0xff]))
        vm.send("reboot\n")
        code = vm.wait_exit(60)
        lines = [line for line in vm.stderr.splitlines() if "changed since the VM started" in line]
        tap.check(code == 1 and len(lines) == 1 and initrd in lines[0],
                  f"a reboot after the initramfs changed stops the VM with one line naming it (exit {code})",
                  vm.tail())
finally:
    vm.kill()
    shutil.rmtree(tmp, ignore_errors=True)
tap.finish()

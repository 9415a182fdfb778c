#!/usr/bin/env python3
"""A guest reboot resets the machine and boots again; --no-reboot exits instead."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from orrery_test import BOOT_TIMEOUT, READY, Tap, Vm  # noqa: E402

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
tap.finish()

#!/usr/bin/env python3
"""The device tree orrery-vm builds, decompiled with dtc: every node the guest relies on, with the right values."""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from orrery_test import ORRERY_VM, Tap  # noqa: E402

tap = Tap()
tmp = tempfile.mkdtemp(prefix="orrery-dtb-")
dtb = os.path.join(tmp, "machine.dtb")
r = subprocess.run([ORRERY_VM, "--name", "dtb", "--memory", "256M", "--display", "800x600",
                    "--append", "console=ttyS0 orrery.test=1", "--no-bus", "--dump-dtb", dtb],
                   stdin=subprocess.PIPE, capture_output=True, timeout=60)
if not tap.check(r.returncode == 0 and os.path.getsize(dtb) > 0, "--dump-dtb writes the device tree", r.stderr.decode()):
    tap.finish()
r = subprocess.run(["dtc", "-I", "dtb", "-O", "dts", dtb], capture_output=True, text=True, timeout=60)
tap.check(r.returncode == 0, "dtc decompiles it", r.stderr)
dts = r.stdout


def node(path_regex):
    """The body of the first node whose name matches, without its children's bodies."""
    m = re.search(r"\n(\t*)" + path_regex + r" \{\n(.*?)\n\1\};", dts, re.S)
    return m.group(2) if m else None


def check_prop(body, prop, value_regex, what):
    ok = body is not None and re.search(r"\b" + re.escape(prop) + r" = " + value_regex + ";", body) is not None
    tap.check(ok, what, body)


root = dts
check_prop(root, "compatible", r'"riscv-virtio"', "the root is riscv-virtio compatible")
chosen = node("chosen")
check_prop(chosen, "bootargs", r'"console=ttyS0 orrery.test=1"', "/chosen has the --append command line")
check_prop(chosen, "stdout-path", r'"/soc/serial@10000000"', "/chosen points stdout at the UART")
check_prop(chosen, "linux,initrd-start", r"<0x00 0x[0-9a-f]+>", "/chosen has the initrd start")
check_prop(chosen, "linux,initrd-end", r"<0x00 0x[0-9a-f]+>", "/chosen has the initrd end")
check_prop(node("memory@80000000"), "reg", r"<0x00 0x80000000 0x00 0x10000000>", "memory@80000000 is 256 MiB")
cpus = node("cpus")
check_prop(cpus, "timebase-frequency", r"<0x989680>", "the timebase is 10 MHz")
cpu = node("cpu@0")
check_prop(cpu, "riscv,isa", r'"rv64imafdc_zicsr_zifencei[^"]*"', "cpu@0 is rv64imafdc with Zicsr and Zifencei")
check_prop(cpu, "riscv,isa-base", r'"rv64i"', "cpu@0 has riscv,isa-base rv64i")
check_prop(cpu, "riscv,isa-extensions",
           r'"i\\0m\\0a\\0f\\0d\\0c\\0zicsr\\0zifencei\\0zihintpause\\0sstc"',
           "cpu@0 lists its extensions in riscv,isa-extensions")
check_prop(cpu, "mmu-type", r'"riscv,sv48"', "cpu@0 has an Sv48 MMU (Sv39 too)")
check_prop(node("interrupt-controller"), "compatible", r'"riscv,cpu-intc"', "cpu@0 has its interrupt controller")
check_prop(node("clint@2000000"), "reg", r"<0x00 0x2000000 0x00 0x10000>", "the CLINT is at 0x2000000")
plic = node("plic@c000000")
check_prop(plic, "riscv,ndev", r"<0x5f>", "the PLIC has 95 sources")
check_prop(plic, "interrupts-extended", r"<0x[0-9a-f]+ 0x0b 0x[0-9a-f]+ 0x09>", "the PLIC drives M and S external interrupts")
uart = node("serial@10000000")
check_prop(uart, "compatible", r'"ns16550a"', "the UART is an ns16550a")
check_prop(uart, "interrupts", r"<0x0a>", "the UART is on IRQ 10")
check_prop(node("rtc@101000"), "compatible", r'"google,goldfish-rtc"', "the goldfish RTC is at 0x101000")
check_prop(node("test@100000"), "compatible", r'"sifive,test1\\0sifive,test0\\0syscon"', "the test finisher is a syscon")
check_prop(node("poweroff"), "value", r"<0x5555>", "syscon-poweroff writes 0x5555")
check_prop(node("reboot"), "value", r"<0x7777>", "syscon-reboot writes 0x7777")
for i in range(8):
    base = 0x10001000 + i * 0x1000
    check_prop(node(f"virtio_mmio@{base:x}"), "interrupts", f"<0x{i + 1:02x}>", f"virtio_mmio@{base:x} on IRQ {i + 1}")
fb = node("framebuffer@40000000")
check_prop(fb, "compatible", r'"simple-framebuffer"', "a simple-framebuffer at 0x40000000")
check_prop(fb, "width", r"<0x320>", "framebuffer width 800")
check_prop(fb, "height", r"<0x258>", "framebuffer height 600")
check_prop(fb, "stride", r"<0xc80>", "framebuffer stride 3200")
check_prop(fb, "format", r'"x8r8g8b8"', "framebuffer format x8r8g8b8")

os.unlink(dtb)
r = subprocess.run([ORRERY_VM, "--name", "dtb", "--display", "none", "--no-bus", "--dump-dtb", dtb],
                   stdin=subprocess.PIPE, capture_output=True, timeout=60)
tap.check(r.returncode == 0 and os.path.exists(dtb) and os.path.getsize(dtb) > 0,
          "--display none: --dump-dtb exits 0 and writes a new device tree", r.stderr.decode(errors="replace"))
r = subprocess.run(["dtc", "-I", "dtb", "-O", "dts", dtb], capture_output=True, text=True, timeout=60)
tap.check(r.returncode == 0 and "memory@80000000" in r.stdout, "--display none: dtc decompiles it", r.stderr)
tap.check("framebuffer@" not in r.stdout, "--display none: no framebuffer node")
tap.finish()

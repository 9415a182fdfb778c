#!/usr/bin/env python3
"""orrery-vnc against QEMU's built-in VNC server, on the same guest display stack.

Both sides run the default guest (kernel and initramfs of build/guest), one
vCPU, 512 MiB, and the guest draws through the same driver: simplefb on a
simple-framebuffer in RAM.

  - orrery:  orrery-vm --display WxH on a private dbus-daemon, orrery-vnc
             (ORRERY_LOG_LEVEL=debug for its timing lines);
  - qemu:    qemu-system-riscv64 -M virt (TCG) with QEMU's own device tree
             plus a simple-framebuffer node (as guest/check-qemu.py does)
             on the VRAM of a bochs-display, and -vnc 127.0.0.1:N. The guest
             kernel has no PCI: a few instructions run before the firmware
             (a generic loader sets the CPU's first pc to them) assign the
             display's BARs and set its mode, so QEMU shows what the
             guest's simplefb writes, through its usual path: VRAM dirty
             tracking read by the display timer (30 ms, backing off by
             50 ms per refresh that found no change, up to 3 s), then the
             VNC server's own compare with its copy.

Each side has one VNC client, vnc-probe (libvncclient, raw encoding by
default), watching pixel (W-5, H-5) and timestamping (CLOCK_MONOTONIC) every
FramebufferUpdate that changes it. Both VMs run at once; the scenarios
alternate between them so that the machine's load falls on both.

The reference instant of a change is the host reading, on the serial
console, the line the storing process prints right after its store; it
includes each VMM's serial output path (the same kind of path on both
sides, and what makes some samples negative: the pixel can reach the VNC
client before that line reaches the host).

  continuous  the guest changes the watched pixel back to back (dd of 4
              bytes to /dev/fb0, then dd's "records out" line is the
              reference), in blocks of --block alternating between the
              sides until each has --samples: the screen never idles, so
              QEMU's refresh stays at its 30 ms base.
  idle        the same single change after a random idle gap (uniform in
              --gap seconds, drawn per change), sides interleaved: QEMU's
              refresh backoff shows as it is.
  frames      whole-screen redraws (orrery-guest-probe pattern SEED, --frames
              per side, alternating in blocks of 10); the watched pixel is
              the last one the probe stores, the reference its "pattern
              drawn" line. Too few for a p99 on a loaded machine; this is
              where the frame rate and CPU per frame come from.

CPU (ms per second of the scenario, and per frame or change): on Orrery's
side orrery-vnc plus orrery-vm's threads other than the one running the
hart; on QEMU's side its threads other than the vCPU thread "CPU 0/TCG"
(main loop with the display and VNC code, the VNC worker, I/O).

orrery-vnc's own part (its debug log: an Update signal received -> the
FramebufferUpdate written to the socket) is published for every sample.

Usage: bench/vnc_vs_qemu.py [--build DIR] [--display WxH] [--samples N] [--encodings LIST]
"""
import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from benchlib import Lines, SerialGuest as Serial, free_port, pct  # noqa: E402

BIOS = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin"
READY = "orrery-guest: ready"

# QEMU side: a bochs-display at 00:02.0 of virt's PCI host (its ECAM), BARs in the PCI window.
ECAM = 0x30000000
DISPLAY_SLOT = 2
VRAM = 0x40000000
DISPLAY_MMIO = 0x41000000
SETUP_AT = 0x9E000000  # RAM the guest reuses later


def thread_ticks(pid, exclude_tid=None, exclude_rx=None):
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                comm = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(tid) == exclude_tid or (exclude_rx and re.search(exclude_rx, comm)):
            continue
        total += int(fields[11]) + int(fields[12])
    return total


def busiest_thread(pid):
    """The thread with the most CPU time: orrery-vm's hart, once the guest has booted."""
    best, most = None, -1
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        t = int(fields[11]) + int(fields[12])
        if t > most:
            best, most = int(tid), t
    return best


def expected_pixels(workdir, width, height, x, y, seeds):
    """The watched pixel of each seed's pattern, computed with the guest's own pattern.h."""
    src = os.path.join(workdir, "px.c")
    exe = os.path.join(workdir, "px")
    with open(src, "w") as f:
        f.write('#include <stdio.h>\n#include <stdlib.h>\n#include "pattern.h"\n'
                "int main(int c, char **v) { for (int i = 1; i < c; i++)\n"
                f'  printf("%06x\\n", orrery_pattern_pixel({x}, {y}, {width}, {height}, '
                "(uint32_t) strtoul(v[i], 0, 10)) & 0xffffff); return 0; }\n")
    subprocess.run(["cc", "-O2", "-I", os.path.join(HERE, "..", "guest", "probe"), "-o", exe, src], check=True)
    out = subprocess.run([exe] + [str(s) for s in seeds], check=True, capture_output=True, text=True).stdout
    return out.split()


def make_fb_dtb(workdir, width, height):
    """QEMU virt's device tree plus a simple-framebuffer on the display's VRAM."""
    base = os.path.join(workdir, "virt.dtb")
    subprocess.run(["qemu-system-riscv64", "-M", "virt,dumpdtb=" + base, "-m", "512M", "-smp", "1",
                    "-display", "none", "-bios", BIOS, "-global", "virtio-mmio.force-legacy=false"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dts = subprocess.run(["dtc", "-q", "-I", "dtb", "-O", "dts", base],
                         check=True, capture_output=True, text=True).stdout
    node = f"""
        framebuffer@{VRAM:x} {{
                compatible = "simple-framebuffer";
                reg = <0x00 {VRAM:#x} 0x00 {width * height * 4:#x}>;
                width = <{width}>;
                height = <{height}>;
                stride = <{width * 4}>;
                format = "x8r8g8b8";
        }};
"""
    dts = dts.rstrip()
    assert dts.endswith("};")
    path = os.path.join(workdir, "virt-fb.dtb")
    subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", path], input=dts[:-2] + node + "};\n",
                   text=True, check=True)
    return path


def make_display_setup(workdir, width, height):
    """A few M-mode instructions run before the firmware: they do what a PCI
    enumeration and a bochs driver would (assign the BARs, enable memory
    decoding, set the mode), then jump to QEMU's reset vector, which starts
    OpenSBI as usual."""
    ecam = ECAM | (DISPLAY_SLOT << 15)
    src = os.path.join(workdir, "setup.S")
    obj = os.path.join(workdir, "setup.o")
    out = os.path.join(workdir, "setup.bin")
    with open(src, "w") as f:
        f.write(f"""        .option norvc
        li t0, {ecam + 0x10:#x}
        li t1, {VRAM:#x}
        sw t1, 0(t0)            /* BAR0: VRAM */
        li t0, {ecam + 0x18:#x}
        li t1, {DISPLAY_MMIO:#x}
        sw t1, 0(t0)            /* BAR2: registers */
        li t0, {ecam + 0x04:#x}
        li t1, 2
        sh t1, 0(t0)            /* command: memory space */
        li t0, {DISPLAY_MMIO + 0x500:#x}
        li t1, {width}
        sh t1, 2(t0)            /* VBE XRES */
        li t1, {height}
        sh t1, 4(t0)            /* VBE YRES */
        li t1, 32
        sh t1, 6(t0)            /* VBE BPP */
        li t1, 0x41
        sh t1, 8(t0)            /* VBE ENABLE: enabled, linear framebuffer */
        li t0, 0x1000
        jr t0                   /* QEMU's reset vector */
""")
    subprocess.run(["riscv64-linux-gnu-as", "-march=rv64gc", "-o", obj, src], check=True)
    subprocess.run(["riscv64-linux-gnu-objcopy", "-O", "binary", obj, out], check=True)
    return out


class Side:
    name = ""

    def cpu_ticks(self):
        raise NotImplementedError

    def stop(self):
        raise NotImplementedError


class OrrerySide(Side):
    name = "orrery"

    def __init__(self, args, width, height):
        from orrery_test import PrivateBus
        self.bus = PrivateBus()
        self.vnc = None
        self.guest = Serial([args.orrery_vm, "--name", "vvq", "--display", f"{width}x{height}",
                             "--bus", self.bus.address], env=dict(os.environ, ORRERY_GUEST_DIR=args.guest))
        self.guest.wait_for(READY)
        self.vnc = subprocess.Popen([args.vnc, "--vm", "vvq", "--bus", self.bus.address, "--listen", "127.0.0.1:0"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    env=dict(os.environ, ORRERY_LOG_LEVEL="debug"))
        self.log = Lines(self.vnc.stderr)
        self.address = self.log.expect(r"listening on (\S+) \(VNC").group(1)
        self.log.expect(r"serving VM")
        self.hart_tid = None

    def cpu_ticks(self):
        if self.hart_tid is None:
            self.hart_tid = busiest_thread(self.guest.proc.pid)
        return (thread_ticks(self.guest.proc.pid, exclude_tid=self.hart_tid) +
                thread_ticks(self.vnc.pid))

    def timings(self, start, end):
        """orrery-vnc's Update -> FramebufferUpdate written, in ms, for updates between start and end."""
        out = []
        for line in list(self.log.lines):
            m = re.search(r"vnc-timing .* update_ns=(\d+) written_ns=(\d+)", line)
            if m and start <= int(m.group(1)) / 1e9 < end:
                out.append((int(m.group(2)) - int(m.group(1))) / 1e6)
        return out

    def stop(self):
        if self.vnc:
            self.vnc.kill()
            self.vnc.wait()
        self.guest.stop()
        self.bus.stop()


class QemuSide(Side):
    name = "qemu"

    def __init__(self, args, width, height, workdir):
        port = free_port()
        cmd = ["qemu-system-riscv64", "-M", "virt", "-m", "512M", "-smp", "1", "-bios", BIOS,
               "-kernel", os.path.join(args.guest, "Image"),
               "-initrd", os.path.join(args.guest, "initramfs.cpio.gz"),
               "-append", "console=ttyS0", "-global", "virtio-mmio.force-legacy=false",
               "-dtb", make_fb_dtb(workdir, width, height),
               "-device", f"bochs-display,addr={DISPLAY_SLOT:02x}.0,romfile=",
               "-device", f"loader,file={make_display_setup(workdir, width, height)},addr={SETUP_AT:#x},cpu-num=0"]
        cmd += ["-vnc", f"127.0.0.1:{port - 5900}", "-display", "none", "-monitor", "none", "-serial", "stdio"]
        self.guest = Serial(cmd)
        self.guest.wait_for(READY)
        self.address = f"127.0.0.1:{port}"

    def cpu_ticks(self):
        # The vCPU thread is "CPU 0/TCG"; everything else is display, VNC and I/O.
        return thread_ticks(self.guest.proc.pid, exclude_rx=r"^CPU \d+/TCG$")

    def timings(self, start, end):
        return []

    def stop(self):
        self.guest.stop()


class Watcher:
    """vnc-probe watching one pixel for the whole run."""

    def __init__(self, args, side, x, y):
        self.proc = subprocess.Popen([args.probe, "--encodings", args.encodings, side.address],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.out = Lines(self.proc.stdout)
        m = self.out.expect(r"^(connected (\d+) (\d+)|error.*)")
        if not m.group(2):
            raise RuntimeError(f"{side.name}: {m.group(1)}")
        self.size = (int(m.group(2)), int(m.group(3)))
        self.proc.stdin.write(f"watch {x} {y} 86400\n".encode())
        self.proc.stdin.flush()

    def pixels(self):
        got = []
        for line in list(self.out.lines):
            m = re.match(r"pixel (\d+) ([0-9a-f]{6})", line)
            if m:
                got.append((int(m.group(1)) / 1e9, m.group(2)))
        return got

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def first_seen(pixels, value, after):
    for t, v in pixels:
        if t >= after and v == value:
            return t
    return None


def pixel_value(k):
    """The k-th value written to the watched pixel: distinct for every k of a run."""
    return (0x10 + k * 0x3b5d1) & 0xffffff


def pixel_write(k):
    """Shell code storing the k-th value at the watched pixel (with the guest's
    shell function w, defined by prepare(); a tty line holds at most 4095 bytes)."""
    value = pixel_value(k)
    b, g, r = value & 0xff, (value >> 8) & 0xff, value >> 16
    return f"w '\\{b:03o}\\{g:03o}\\{r:03o}\\000' {k}"


# What dd prints right after its write(): the reference instant of a change.
DD_DONE = r"records out"


def prepare(sides, width, height):
    """No echo on the serial console (nothing to interleave with the marks), the
    console in graphics mode (no fbcon cursor), and the watched pixel's offset."""
    x, y = width - 5, height - 5
    for side in sides:
        pos = side.guest.send("stty -echo; orrery-guest-probe pattern 7 >/dev/null; "
                              "echo stride=$(cat /sys/class/graphics/fb0/stride)\n")
        m, _ = side.guest.wait_for(r"^stride=(\d+)$", 300, pos)
        offset = (y * int(m.group(1)) + x * 4) // 4
        # w BYTES K: the pixel to BYTES, then a mark (computed by the guest: never in the command text).
        pos = side.guest.send(f"w() {{ printf \"$1\" | dd of=/dev/fb0 bs=4 seek={offset} count=1 conv=notrunc 2>&1; "
                              "echo mk:$(($2+0)); }; echo defined:$((1+1))\n")
        side.guest.wait_for(r"defined:2$", 120, pos)
        side.k = 0


def summary(lat, vnc, ticks, secs, count):
    tick = os.sysconf("SC_CLK_TCK")
    return {"lat": lat, "vnc": vnc, "n_changes": count, "rate": count / secs,
            "cpu_ms_per_s": 1000 * ticks / tick / secs, "cpu_ms_per_change": 1000 * ticks / tick / max(count, 1)}


def continuous(args, sides, watchers):
    """The guest changes the watched pixel back to back (each change followed by
    a mark), in blocks alternating between the sides: the screen never idles."""
    acc = {s.name: {"lat": [], "vnc": [], "ticks": 0, "secs": 0.0, "n": 0} for s in sides}
    while min(a["n"] for a in acc.values()) < args.samples:
        for side in sides:
            a = acc[side.name]
            if a["n"] >= args.samples:
                continue
            ks = list(range(side.k, side.k + args.block))
            side.k += args.block
            body = "; ".join(pixel_write(k) for k in ks)
            t0, c0 = time.monotonic(), side.cpu_ticks()
            pos = side.guest.send(body + "\n")
            side.guest.wait_for(rf"\bmk:{ks[-1]}$", 600, pos)
            t1, c1 = time.monotonic(), side.cpu_ticks()
            time.sleep(0.3)  # the last change reaches the client
            done = [t for _, t in side.guest.all_after(DD_DONE, pos)]
            if len(done) != len(ks):
                raise RuntimeError(f"{side.name}: {len(done)} changes made of {len(ks)}")
            px = watchers[side.name].pixels()
            for k, t in zip(ks, done):
                seen = first_seen(px, f"{pixel_value(k):06x}", t0)
                if seen is not None:
                    a["lat"].append((seen - t) * 1000)
            a["vnc"] += side.timings(t0, t1 + 0.3)
            a["ticks"] += c1 - c0
            a["secs"] += t1 - t0
            a["n"] += len(ks)
    return {name: summary(a["lat"], a["vnc"], a["ticks"], a["secs"], a["n"]) for name, a in acc.items()}


def frames(args, sides, watchers, width, height, workdir):
    """Whole-screen redraws (orrery-guest-probe pattern SEED) in blocks alternating
    between the sides; the watched pixel is the last one each redraw stores."""
    x, y = width - 5, height - 5
    acc = {s.name: {"lat": [], "vnc": [], "ticks": 0, "secs": 0.0, "n": 0} for s in sides}
    seed = 1000
    block = min(10, args.frames)
    while min(a["n"] for a in acc.values()) < args.frames:
        for side in sides:
            a = acc[side.name]
            if a["n"] >= args.frames:
                continue
            seeds = list(range(seed, seed + block))
            seed += block
            values = expected_pixels(workdir, width, height, x, y, [seeds[0] - 1] + seeds)
            t0, c0 = time.monotonic(), side.cpu_ticks()
            pos = side.guest.send(f"for s in {' '.join(map(str, seeds))}; do orrery-guest-probe pattern $s; done; "
                                  "echo bd:$((0+1))\n")
            side.guest.wait_for(r"\bbd:1$", 3600, pos)
            t1, c1 = time.monotonic(), side.cpu_ticks()
            time.sleep(0.3)
            drawn = [t for _, t in side.guest.all_after(rf"orrery-probe: pattern drawn {width}x{height}", pos)]
            if len(drawn) != len(seeds):
                raise RuntimeError(f"{side.name}: {len(drawn)} frames drawn of {len(seeds)}")
            px = watchers[side.name].pixels()
            prev = t0
            for i, t in enumerate(drawn):
                # A seed whose watched pixel equals the previous frame's gives no sample.
                if values[i + 1] != values[i]:
                    seen = first_seen(px, values[i + 1], prev)
                    if seen is not None:
                        a["lat"].append((seen - t) * 1000)
                prev = t
            a["vnc"] += side.timings(t0, t1 + 0.3)
            a["ticks"] += c1 - c0
            a["secs"] += t1 - t0
            a["n"] += len(seeds)
    return {name: summary(a["lat"], a["vnc"], a["ticks"], a["secs"], a["n"]) for name, a in acc.items()}


def idle_gap(args, sides, watchers):
    """One pixel change after a random idle gap, on both sides at once (independent timelines)."""
    time.sleep(args.gap[1])  # idle before the first change too
    rng = random.Random(19)
    state = {s.name: {"next": time.monotonic() + rng.uniform(*args.gap), "sent": [],
                      "c0": s.cpu_ticks()} for s in sides}
    t0 = time.monotonic()
    while min(len(st["sent"]) for st in state.values()) < args.samples:
        side = min(sides, key=lambda s: state[s.name]["next"] if len(state[s.name]["sent"]) < args.samples
                   else float("inf"))
        st = state[side.name]
        time.sleep(max(0.0, st["next"] - time.monotonic()))
        k = side.k
        side.k += 1
        sent_at = time.monotonic()
        pos = side.guest.send(pixel_write(k) + "\n")
        st["sent"].append((pos, k, sent_at))
        # The gap runs from the mark (the change is done), so changes never queue up.
        side.guest.wait_for(rf"\bmk:{k}$", 120, pos)
        st["next"] = time.monotonic() + rng.uniform(*args.gap)
    time.sleep(1)
    t1 = time.monotonic()
    res = {}
    for side in sides:
        st = state[side.name]
        c1 = side.cpu_ticks()
        px = watchers[side.name].pixels()
        lat = []
        for pos, k, sent_at in st["sent"]:
            _, t = side.guest.wait_for(DD_DONE, 60, pos)
            seen = first_seen(px, f"{pixel_value(k):06x}", sent_at)
            if seen is not None:
                lat.append((seen - t) * 1000)
        res[side.name] = summary(lat, side.timings(t0, t1), c1 - st["c0"], t1 - t0, len(st["sent"]))
    return res


def row(*cells):
    return "| " + " | ".join(str(c) for c in cells) + " |"


def stats(v):
    """p50, p99 (only from 200 samples or more), max, n."""
    p99 = f"{pct(v, 99):.2f}" if len(v) >= 200 else "-"
    return f"{pct(v, 50):.2f}", p99, f"{max(v):.2f}" if v else "nan", len(v)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--display", default="1024x768")
    ap.add_argument("--samples", type=int, default=220)
    ap.add_argument("--block", type=int, default=40)
    ap.add_argument("--gap", type=float, nargs=2, default=(0.2, 3.0))
    ap.add_argument("--encodings", default="raw")
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--only", nargs="+", choices=("continuous", "idle", "frames"))
    args = ap.parse_args()
    args.orrery_vm = os.path.join(args.build, "emulator", "orrery-vm")
    args.vnc = os.path.join(args.build, "services", "vnc", "orrery-vnc")
    args.probe = os.path.join(args.build, "tests", "integration", "vnc", "vnc-probe")
    args.guest = os.path.join(args.build, "guest")
    width, height = (int(v) for v in args.display.split("x"))

    print(f"# {time.strftime('%Y-%m-%d %H:%M %Z')} display={args.display} encodings={args.encodings} "
          f"samples={args.samples} gap={args.gap[0]}-{args.gap[1]} s; nproc={os.cpu_count()}; "
          f"load before={os.getloadavg()}", flush=True)
    sides, watchers = [], {}
    with tempfile.TemporaryDirectory() as workdir:
        try:
            sides.append(OrrerySide(args, width, height))
            sides.append(QemuSide(args, width, height, workdir))
            for side in sides:
                w = watchers[side.name] = Watcher(args, side, width - 5, height - 5)
                if w.size != (width, height):
                    raise RuntimeError(f"{side.name}: the VNC screen is {w.size}, not {width}x{height}")
            prepare(sides, width, height)
            scenarios = [("continuous", "continuous pixel changes", lambda: continuous(args, sides, watchers)),
                         ("idle", "idle gap", lambda: idle_gap(args, sides, watchers)),
                         ("frames", "whole-screen redraws", lambda: frames(args, sides, watchers, width, height,
                                                                           workdir))]
            for key, title, run in scenarios:
                if args.only and key not in args.only:
                    continue
                res = run()
                print(f"\n## {title} ({args.display}, {args.encodings}; load after {os.getloadavg()})\n")
                print(row("server", "changes", "per s", "p50 ms", "p99 ms", "max ms", "n", "CPU ms/s",
                          "CPU ms/change", "orrery-vnc p50 ms", "p99 ms", "max ms", "n"))
                print(row(*["---"] * 13))
                for name, r in res.items():
                    vnc = stats(r["vnc"]) if r["vnc"] else ("-",) * 4
                    print(row(name, r["n_changes"], f"{r['rate']:.2f}", *stats(r["lat"]),
                              f"{r['cpu_ms_per_s']:.1f}", f"{r['cpu_ms_per_change']:.1f}", *vnc), flush=True)
            print(f"\n# load after={os.getloadavg()}")
        finally:
            for w in watchers.values():
                w.stop()
            for side in sides:
                side.stop()


if __name__ == "__main__":
    main()

#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Boots the default guest under Debian's QEMU and checks what the project
relies on: the ready marker, an answering shell on the serial console,
reboot, poweroff, Ctrl-Alt-Del, the power key, orrery-guest-probe's events,
cpu-bench and pattern (the last one on a simple-framebuffer added to QEMU's
device tree, read back from guest memory and compared with pattern.h), and
orrery-guest-agent on a QEMU virtserialport named org.qemu.guest_agent.0
(handshake, a file round trip with its speed, fsfreeze, guest-shutdown).

A reference check of the guest image against a known-good machine, not a
test of Orrery itself:

    guest/check-qemu.py [GUEST_DIR]      (default: build/guest)

Needs qemu-system-misc, opensbi, device-tree-compiler and a host C compiler.
"""

import base64
import hashlib
import json
import os
import random
import re
import select
import socket
import subprocess
import sys
import tempfile
import time

GUEST_DIR = os.path.dirname(os.path.abspath(__file__))
BIOS = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin"
READY = "orrery-guest: ready"

FB_BASE = 0x9F000000
FB_WIDTH, FB_HEIGHT = 640, 480
FB_SIZE = FB_WIDTH * FB_HEIGHT * 4


class Failure(Exception):
    pass


class Guest:
    def __init__(self, image_dir, workdir, name, extra=(), dtb=None):
        self.monitor_path = os.path.join(workdir, name + ".monitor")
        self.log_path = os.path.join(workdir, name + ".log")
        self.log = open(self.log_path, "w")
        cmd = ["qemu-system-riscv64", "-M", "virt", "-m", "512M", "-smp", "1",
               "-display", "none", "-serial", "stdio",
               "-monitor", "unix:%s,server=on,wait=off" % self.monitor_path,
               "-bios", BIOS,
               "-kernel", os.path.join(image_dir, "Image"),
               "-initrd", os.path.join(image_dir, "initramfs.cpio.gz"),
               "-append", "console=ttyS0",
               "-global", "virtio-mmio.force-legacy=false",
               "-device", "virtio-keyboard-device"]
        if dtb:
            cmd += ["-dtb", dtb]
        cmd += list(extra)
        self.start = time.monotonic()
        # In workdir, so that monitor commands can name files there with a
        # relative path (HMP reads "SIZE /path" as a division).
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, cwd=workdir)
        self.buf = ""
        self.monitor = None

    def read_some(self, timeout):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return False
        data = os.read(self.proc.stdout.fileno(), 65536)
        if not data:
            raise Failure("QEMU exited (status %s)" % self.proc.poll())
        text = data.decode("utf-8", "replace").replace("\r", "")
        self.log.write(text)
        self.log.flush()
        self.buf += text
        return True

    def expect(self, pattern, timeout=60):
        """Waits for a regex in the complete lines of the output (so that "$"
        cannot match a line still arriving); consumes output up to its end."""
        regex = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            m = regex.search(self.buf, 0, self.buf.rfind("\n") + 1)
            if m:
                self.buf = self.buf[m.end():]
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure("timed out waiting for %r; last output:\n%s" % (pattern, self.buf[-2000:]))
            self.read_some(min(left, 1.0))

    def send(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def run(self, command, pattern, timeout=60):
        self.send(command)
        return self.expect(pattern, timeout)

    def hmp(self, command):
        if self.monitor is None:
            self.monitor = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.monitor.connect(self.monitor_path)
            self.monitor.settimeout(10)
            self._hmp_read()
        self.monitor.sendall(command.encode() + b"\n")
        return self._hmp_read()

    def _hmp_read(self):
        data = b""
        while not data.endswith(b"(qemu) "):
            chunk = self.monitor.recv(65536)
            if not chunk:
                break
            data += chunk
        return data.decode("utf-8", "replace")

    def wait_exit(self, timeout=60):
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise Failure("QEMU did not exit; last output:\n" + self.buf[-2000:])
            try:
                self.read_some(0.2)
            except Failure:
                pass
        return time.monotonic() - self.start

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.monitor:
            self.monitor.close()
        self.log.close()


def step(what):
    print("check-qemu: " + what, flush=True)


def check_main(image_dir, workdir):
    g = Guest(image_dir, workdir, "main")
    try:
        g.expect("^" + re.escape(READY) + "$", 120)
        step("ready after %.1fs" % (time.monotonic() - g.start))

        g.run("echo $((6*7))", r"^42$")
        step("shell answers: 42")

        g.run("hostname; cat /proc/cmdline", r"^orrery$")
        g.run("test -t 0 && jobs -p; sleep 100 & jobs; kill %1", r"\[1\]\+ +Running +sleep 100")
        step("hostname orrery, job control works")

        g.run("orrery-guest-probe events 2", r"^orrery-probe: listening (\d+) devices$")
        time.sleep(0.5)
        g.hmp("sendkey a")
        m1 = g.expect(r"^orrery-probe: event (event\d+) type=1 code=30 value=1$", 20)
        g.expect(r"^orrery-probe: event %s type=1 code=30 value=0$" % m1.group(1), 20)
        step("events: key 'a' seen on %s" % m1.group(1))

        g.send("echo bench-start")
        g.expect("^bench-start$")
        t = time.monotonic()
        m = g.run("orrery-guest-probe cpu-bench", r"^orrery-probe: cpu-bench result=([0-9a-f]{16}) ms=(\d+)$", 300)
        step("cpu-bench: result=%s ms=%s (%.1fs wall)" % (m.group(1), m.group(2), time.monotonic() - t))

        t = time.monotonic()
        g.send("reboot")
        g.expect("^" + re.escape(READY) + "$", 120)
        step("reboot: ready again after %.1fs" % (time.monotonic() - t))
        g.run("echo $((6*7))", r"^42$")

        t = time.monotonic()
        g.send("poweroff")
        g.wait_exit(60)
        step("poweroff: QEMU exited %.1fs after the command (status %d)" % (time.monotonic() - t, g.proc.returncode))
    finally:
        g.close()


def check_key_poweroff(image_dir, workdir, key, what):
    g = Guest(image_dir, workdir, key.replace("-", "_"))
    try:
        g.expect("^" + re.escape(READY) + "$", 120)
        time.sleep(0.5)
        t = time.monotonic()
        g.hmp("sendkey " + key)
        g.wait_exit(60)
        step("%s: QEMU exited %.1fs after the key" % (what, time.monotonic() - t))
    finally:
        g.close()


EXPECTED_C = r"""
#include <stdio.h>
#include <stdint.h>
#include "pattern.h"
int main(int argc, char **argv) {
        uint32_t w = %d, h = %d, seed = %d;
        for (uint32_t y = 0; y < h; y++)
                for (uint32_t x = 0; x < w; x++) {
                        uint32_t p = orrery_pattern_pixel(x, y, w, h, seed);
                        unsigned char b[4] = { p, p >> 8, p >> 16, p >> 24 };
                        fwrite(b, 1, 4, stdout);
                }
        return 0;
}
"""


def make_fb_dtb(workdir):
    """QEMU virt's device tree plus a simple-framebuffer in reserved RAM."""
    base = os.path.join(workdir, "virt.dtb")
    subprocess.run(["qemu-system-riscv64", "-M", "virt,dumpdtb=" + base, "-m", "512M", "-smp", "1",
                    "-display", "none", "-bios", BIOS,
                    "-global", "virtio-mmio.force-legacy=false",
                    "-device", "virtio-keyboard-device"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dts = subprocess.run(["dtc", "-q", "-I", "dtb", "-O", "dts", base],
                         check=True, capture_output=True, text=True).stdout
    node = """
        reserved-memory {
                #address-cells = <0x02>;
                #size-cells = <0x02>;
                ranges;
                framebuffer@%x {
                        reg = <0x00 0x%x 0x00 0x%x>;
                        no-map;
                };
        };
        framebuffer@%x {
                compatible = "simple-framebuffer";
                reg = <0x00 0x%x 0x00 0x%x>;
                width = <%d>;
                height = <%d>;
                stride = <%d>;
                format = "x8r8g8b8";
        };
""" % (FB_BASE, FB_BASE, FB_SIZE, FB_BASE, FB_BASE, FB_SIZE, FB_WIDTH, FB_HEIGHT, FB_WIDTH * 4)
    dts = dts.rstrip()
    assert dts.endswith("};")
    dts = dts[:-2] + node + "};\n"
    path = os.path.join(workdir, "virt-fb.dtb")
    subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", path], input=dts, text=True, check=True)
    return path


def expected_pattern(workdir, seed):
    src = os.path.join(workdir, "expected.c")
    exe = os.path.join(workdir, "expected")
    with open(src, "w") as f:
        f.write(EXPECTED_C % (FB_WIDTH, FB_HEIGHT, seed))
    subprocess.run(["cc", "-O2", "-I", os.path.join(GUEST_DIR, "probe"), "-o", exe, src], check=True)
    return subprocess.run([exe], check=True, capture_output=True).stdout


def check_pattern(image_dir, workdir):
    dtb = make_fb_dtb(workdir)
    g = Guest(image_dir, workdir, "pattern", dtb=dtb)
    try:
        g.expect("^" + re.escape(READY) + "$", 120)
        for seed in (0, 5):
            g.run("orrery-guest-probe pattern %d" % seed,
                  r"^orrery-probe: pattern drawn %dx%d$" % (FB_WIDTH, FB_HEIGHT))
            dump = os.path.join(workdir, "fb-%d.raw" % seed)
            reply = g.hmp("pmemsave 0x%x %d %s" % (FB_BASE, FB_SIZE, os.path.basename(dump)))
            if not os.path.exists(dump):
                raise Failure("pmemsave failed: " + reply)
            got = open(dump, "rb").read()
            want = expected_pattern(workdir, seed)
            if got != want:
                bad = sum(1 for i in range(0, FB_SIZE, 4) if got[i:i + 4] != want[i:i + 4])
                raise Failure("pattern %d: %d of %d pixels differ from pattern.h" % (seed, bad, FB_SIZE // 4))
            step("pattern %d: all %d pixels match pattern.h" % (seed, FB_SIZE // 4))
        g.run("orrery-guest-probe text", r"^orrery-probe: console text mode$")
        g.send("poweroff")
        g.wait_exit(60)
    finally:
        g.close()


class QgaClient:
    """A QEMU guest-agent client on QEMU's chardev socket."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise Failure("the guest agent did not answer")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            raise Failure("the guest agent did not answer") from None
        if not data:
            raise Failure("QEMU closed the guest agent socket")
        self.buf += data

    def call(self, command, timeout=60, **arguments):
        req = {"execute": command}
        if arguments:
            req["arguments"] = arguments
        self.sock.sendall(json.dumps(req).encode() + b"\n")
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            self._fill(deadline)
        line, self.buf = self.buf.split(b"\n", 1)
        rsp = json.loads(line)
        if "return" not in rsp:
            raise Failure("%s: %s" % (command, rsp))
        return rsp["return"]

    def sync(self, timeout=5):
        """0xFF + guest-sync-delimited; skips everything up to the 0xFF before the answer."""
        sync_id = random.randrange(1, 2 ** 62)
        self.sock.sendall(b"\xff" + json.dumps({"execute": "guest-sync-delimited",
                                                "arguments": {"id": sync_id}}).encode() + b"\n")
        deadline = time.monotonic() + timeout
        while True:
            while b"\xff" not in self.buf:
                self.buf = b""
                self._fill(deadline)
            self.buf = self.buf.split(b"\xff", 1)[1]
            while b"\n" not in self.buf:
                self._fill(deadline)
            line, self.buf = self.buf.split(b"\n", 1)
            if json.loads(line).get("return") == sync_id:
                return

    def close(self):
        self.sock.close()


def check_agent(image_dir, workdir):
    sock = os.path.join(workdir, "qga.sock")
    g = Guest(image_dir, workdir, "agent", extra=[
        "-device", "virtio-serial-device",
        "-chardev", "socket,id=qga,path=%s,server=on,wait=off" % sock,
        "-device", "virtserialport,chardev=qga,name=org.qemu.guest_agent.0"])
    qga = None
    try:
        g.expect("^" + re.escape(READY) + "$", 120)
        qga = QgaClient(sock)
        for attempt in range(20):
            try:
                qga.sync()
                break
            except Failure:
                if attempt == 19:
                    raise
        osinfo = qga.call("guest-get-osinfo")
        step("agent: guest-sync-delimited handshake; kernel %s on %s" % (osinfo["kernel-release"], osinfo["machine"]))

        data = random.Random(1).randbytes(4 << 20)
        chunk = 48 << 10
        h = qga.call("guest-file-open", path="/tmp/qga.bin", mode="wb")
        t = time.monotonic()
        for off in range(0, len(data), chunk):
            qga.call("guest-file-write", handle=h, **{"buf-b64": base64.b64encode(data[off:off + chunk]).decode()})
        qga.call("guest-file-close", handle=h)
        to_guest = time.monotonic() - t
        h = qga.call("guest-file-open", path="/tmp/qga.bin")
        back = b""
        t = time.monotonic()
        while True:
            r = qga.call("guest-file-read", handle=h, count=chunk)
            back += base64.b64decode(r["buf-b64"])
            if r["eof"] or not r["count"]:
                break
        from_guest = time.monotonic() - t
        qga.call("guest-file-close", handle=h)
        if hashlib.sha256(back).digest() != hashlib.sha256(data).digest():
            raise Failure("agent: the file read back differs from the one written")
        step("agent: 4 MiB round trip in %d KiB chunks: to the guest %.0f KiB/s, from the guest %.0f KiB/s"
             % (chunk >> 10, len(data) / to_guest / 1024, len(data) / from_guest / 1024))

        frozen = qga.call("guest-fsfreeze-freeze")
        status = qga.call("guest-fsfreeze-status")
        thawed = qga.call("guest-fsfreeze-thaw")
        if (frozen, status, thawed) != (1, "frozen", 1):
            raise Failure("agent: fsfreeze gave %s, %s, %s" % (frozen, status, thawed))
        step("agent: fsfreeze froze and thawed /mnt/ram")

        t = time.monotonic()
        qga.sock.sendall(b'{"execute":"guest-shutdown"}\n')
        g.wait_exit(60)
        step("agent: guest-shutdown: QEMU exited %.1fs after the command" % (time.monotonic() - t))
    finally:
        if qga:
            qga.close()
        g.close()


def main():
    image_dir = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/guest")
    for f in ("Image", "initramfs.cpio.gz"):
        if not os.path.exists(os.path.join(image_dir, f)):
            sys.exit("check-qemu: %s/%s missing: build the guest first" % (image_dir, f))

    workdir = tempfile.mkdtemp(prefix="orrery-check-qemu-")
    try:
        check_main(image_dir, workdir)
        check_key_poweroff(image_dir, workdir, "ctrl-alt-delete", "Ctrl-Alt-Del")
        check_key_poweroff(image_dir, workdir, "power", "power key")
        check_pattern(image_dir, workdir)
        check_agent(image_dir, workdir)
    except Failure as e:
        print("check-qemu: FAILED: %s\n(logs in %s)" % (e, workdir), file=sys.stderr)
        return 1
    print("check-qemu: all checks passed (logs in %s)" % workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""QEMU beside orrery-vm in the save/restore and migration benchmarks: the
same guest on qemu-system-riscv64 -M virt, driven over QMP.

Both benchmarks boot the default guest (build/guest: OpenSBI's
fw_dynamic.bin, the kernel, the busybox initramfs) with the same RAM and
the same kernel command line on both emulators.

QEMU 7.2 (Debian 12) loses the RISC-V timer across a migration or a
restore: the ACLINT's armed timer events are not part of its migration
stream (added upstream in October 2025, after QEMU 10.1, and not
backported), so on the destination the guest's next timer interrupt never
comes and, idle, it never runs again: what "the destination did not
resume" was (query-status there said "running"). Two things get it going
again. "highres=off" on the kernel command line, given to both emulators
so that both run the same guest: Linux's low-resolution NO_HZ mode
reprograms the timer, even one already due, whenever it leaves the idle
loop. And, QEMU side only, a byte ("\\n", an empty shell line) on the
destination's serial console every 10 ms from the moment QMP reports the
guest running there until its first heartbeat: an interrupt that finds the
kernel idle makes it leave the idle loop. Up to 10 ms of QEMU's measured
downtime can be this workaround's (the QMP event, then the next byte).
"""
import json
import os
import socket
import subprocess
import threading
import time

BIOS = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin"
# Both emulators: QEMU needs highres=off (see above); Orrery runs the same guest.
APPEND = "console=ttyS0 highres=off"
# QEMU caps a migration at 32 MiB/s by default; Orrery does not cap its stream: lift QEMU's cap.
UNCAPPED = 1 << 40


def qemu_cmd(build, memory, qmp_path, extra=(), append=APPEND):
    guest = os.path.join(build, "guest")
    return ["qemu-system-riscv64", "-M", "virt", "-m", memory, "-smp", "1", "-display", "none", "-bios", BIOS,
            "-kernel", os.path.join(guest, "Image"), "-initrd", os.path.join(guest, "initramfs.cpio.gz"),
            "-append", append, "-global", "virtio-mmio.force-legacy=false",
            "-qmp", f"unix:{qmp_path},server=on,wait=off", "-monitor", "none", "-serial", "stdio", *extra]


class Qmp:
    """A QMP connection: commands answered in order; events noted with the time they were read."""

    def __init__(self, path, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)  # polled: QEMU creates the socket once it has started
        self.file = self.sock.makefile("rwb")
        self.cond = threading.Condition()
        self.replies = []
        self.events = []  # (name, time read)
        self.on_event = None
        threading.Thread(target=self._read, daemon=True).start()
        self.cmd("qmp_capabilities")

    def _read(self):
        try:
            self._read_lines()
        except OSError:
            pass  # QEMU went away: the waiters below learn it
        with self.cond:
            self.replies.append({"error": {"desc": "QMP connection closed"}})
            self.cond.notify_all()

    def _read_lines(self):
        for line in self.file:
            now = time.monotonic()
            msg = json.loads(line)
            if "event" in msg and self.on_event:
                self.on_event(msg["event"])
            with self.cond:
                if "event" in msg:
                    self.events.append((msg["event"], now))
                elif "QMP" not in msg:
                    self.replies.append(msg)
                self.cond.notify_all()

    def cmd(self, name, timeout=600, **arguments):
        with self.cond:
            self.file.write(json.dumps({"execute": name, "arguments": arguments}).encode() + b"\n")
            self.file.flush()
            deadline = time.monotonic() + timeout
            while not self.replies:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"QMP {name}: no answer")
                self.cond.wait(left)
            reply = self.replies.pop(0)
        if "error" in reply:
            raise RuntimeError(f"QMP {name}: {reply['error'].get('desc')}")
        return reply["return"]

    def wait_migration(self, timeout=600, interval=0.005):
        """Polls query-migrate until it completes; returns its last answer (QEMU's own figures)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.cmd("query-migrate")
            if info.get("status") == "completed":
                return info
            if info.get("status") in ("failed", "cancelled"):
                raise RuntimeError(f"QEMU's migration {info['status']}: {info.get('error-desc', '')}")
            time.sleep(interval)
        raise TimeoutError("QEMU's migration did not complete")

    def close(self):
        self.sock.close()


def stop(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def spawn_quiet(cmd):
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

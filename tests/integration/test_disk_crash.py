#!/usr/bin/env python3
"""Crash consistency of virtio-blk: a guest writes numbered files on ext4,
each followed by sync and a console line naming it; orrery-vm is SIGKILLed
at a random moment; a fresh VM mounts the image (replaying the journal),
every file announced as synced must be intact, and after a clean unmount
the host's e2fsck -fn must find the file system clean.

ORRERY_CRASH_ROUNDS (default 3) sets the number of kills; ORRERY_CRASH_SEED
the random seed (printed, so a failure can be replayed).
"""
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from orrery_test import BOOT_TIMEOUT, READY, Tap, Vm  # noqa: E402

MKFS = shutil.which("mkfs.ext4") or "/sbin/mkfs.ext4"
E2FSCK = shutil.which("e2fsck") or "/sbin/e2fsck"
ROUNDS = int(os.environ.get("ORRERY_CRASH_ROUNDS", "3"))
SEED = int(os.environ.get("ORRERY_CRASH_SEED", str(int(time.time()))))
COMMON = ["--display", "none", "--no-config"]
SIZE = 16384


def content(i):
    # What `yes file-$i | head -c SIZE` writes.
    line = f"file-{i}\n".encode()
    return (line * (SIZE // len(line) + 1))[:SIZE]


tap = Tap()
print(f"# seed {SEED}", flush=True)
rng = random.Random(SEED)
tmp = tempfile.mkdtemp(prefix="orrery-test-crash-")
disk = os.path.join(tmp, "disk.img")
with open(disk, "wb") as f:
    f.truncate(64 << 20)
subprocess.run([MKFS, "-q", "-F", disk], check=True)

synced = set()
next_i = 0
vm = None
try:
    for rnd in range(ROUNDS):
        vm = Vm(*(COMMON + ["--drive", f"file={disk}"]), name="crash")
        if not tap.check(vm.wait_for(READY, BOOT_TIMEOUT) is not None, f"round {rnd}: the writer boots", vm.tail()):
            break
        vm.command("mount -t ext4 /dev/vda /mnt && echo mounted-''ok", r"mounted-ok\r?\n", 60)
        start = next_i
        want = rng.randint(1, 8)
        vm.send(f"i={start}; while :; do yes file-$i | head -c {SIZE} >/mnt/f$i; sync; echo synced-$i; i=$((i+1)); done\n")
        m = vm.wait_for(rf"synced-{start + want - 1}\r?\n", 120)
        time.sleep(rng.uniform(0, 0.3))     # a random moment after that, not a wait for anything
        vm.proc.send_signal(signal.SIGKILL)
        vm.proc.wait()
        announced = {int(x) for x in __import__("re").findall(r"synced-(\d+)", vm.output)}
        tap.check(m is not None and len(announced) >= want, f"round {rnd}: the guest announced {len(announced)} synced files before SIGKILL",
                  vm.tail())
        synced |= announced
        next_i = max(announced | {start}) + 10  # leave room for files written but not announced

        # A fresh VM: journal replay on mount, then every announced file must be intact.
        check = Vm(*(COMMON + ["--drive", f"file={disk}"]), name="check")
        if not tap.check(check.wait_for(READY, BOOT_TIMEOUT) is not None, f"round {rnd}: a fresh VM boots", check.tail()):
            check.kill()
            break
        check.command("mount -t ext4 /dev/vda /mnt && echo mounted-''ok", r"mounted-ok\r?\n", 60)
        files = " ".join(f"/mnt/f{i}" for i in sorted(synced))
        m = check.command(f"sha256sum {files} 2>&1; echo end-of-''sums", r"([\s\S]*)end-of-sums", 120)
        sums = {}
        for line in (m.group(1) if m else "").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].startswith("/mnt/f") and len(parts[0]) == 64:
                sums[int(parts[1][6:])] = parts[0]
        bad = [i for i in sorted(synced) if sums.get(i) != hashlib.sha256(content(i)).hexdigest()]
        tap.check(not bad, f"round {rnd}: all {len(synced)} files announced as synced are intact",
                  f"{check.tail(1500)}\nbad: {bad}, expected {hashlib.sha256(content(bad[0])).hexdigest() if bad else None}")
        check.command("umount /mnt && echo umounted-''ok", r"umounted-ok\r?\n", 60)
        check.send("poweroff\n")
        tap.check(check.wait_exit(60) == 0, f"round {rnd}: the checker powers off", check.tail())
        r = subprocess.run([E2FSCK, "-fn", disk], capture_output=True)
        tap.check(r.returncode == 0, f"round {rnd}: host e2fsck -fn is clean after the replay",
                  r.stdout.decode() + r.stderr.decode())
finally:
    if vm:
        vm.kill()
    shutil.rmtree(tmp, ignore_errors=True)
tap.finish()

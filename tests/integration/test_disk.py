#!/usr/bin/env python3
"""Disks (--drive, virtio-blk) end to end: the refusals, a write that
survives the VM, the image lock between VMs, readonly and snapshot images.

Images are made with the host's mkfs.ext4 (e2fsprogs) in a private
temporary directory; the guest mounts them at /mnt.
"""
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from orrery_test import BOOT_TIMEOUT, ORRERY_VM, READY, Tap, Vm, reachable_by_others  # noqa: E402

MKFS = shutil.which("mkfs.ext4") or "/sbin/mkfs.ext4"
COMMON = ["--display", "none", "--no-config"]

tap = Tap()
tmp = tempfile.mkdtemp(prefix="orrery-test-disk-")


def sha_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def refused(args, what, expect, as_nobody=False):
    """orrery-vm must exit 2 at once with one error line matching 'expect'."""
    # Root reads every file: a permission check needs another user, here nobody through setpriv.
    prefix, vm, env = [], ORRERY_VM, None
    if as_nobody:
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        vm, env = reachable_by_others(os.path.join(tmp, "for-nobody"))
    r = subprocess.run(prefix + [vm, "--name", "t", "--no-bus", "--serial", "none"] + COMMON + args,
                       stdin=subprocess.PIPE, capture_output=True, timeout=60, env=env)
    err = r.stderr.decode(errors="replace")
    lines = [line for line in err.splitlines() if line.startswith("orrery-vm:")]
    ok = r.returncode == 2 and len(lines) == 1 and re.search(expect, lines[0]) is not None
    tap.check(ok, f"{what}: exit 2, one line ({lines[0] if lines else 'none'})", f"exit {r.returncode}\n{err}")
    return lines[0] if lines else ""


def make(name, size, mkfs=False):
    path = os.path.join(tmp, name)
    with open(path, "wb") as f:
        f.truncate(size)
    if mkfs:
        subprocess.run([MKFS, "-q", "-F", "-O", "^metadata_csum_seed", path], check=True)
    return path


def boot(*args, name="test"):
    vm = Vm(*(COMMON + list(args)), name=name)
    if not tap.check(vm.wait_for(READY, BOOT_TIMEOUT) is not None, f"VM {name} boots with {' '.join(args)}", vm.tail()):
        vm.kill()
        return None
    return vm


def hashes(vm, pattern_files="/mnt/f*"):
    m = vm.command(f"sha256sum {pattern_files}; echo end-of-''sums", r"((?:[0-9a-f]{64}  \S+\r?\n)+)end-of-sums", 120)
    if not m:
        return None
    return dict(reversed(line.split()) for line in m.group(1).split("\n") if line.strip())


vms = []
try:
    # ---- refusals: one line, exit 2, before anything runs
    odd = make("odd.img", 1000)
    empty = make("empty.img", 0)
    adir = os.path.join(tmp, "dir.img")
    os.mkdir(adir)
    good = make("good.img", 1 << 20)
    refused(["--drive", f"file={tmp}/missing.img"], "a missing image", r"No such file")
    refused(["--drive", f"file={empty}"], "an empty image", r"is empty")
    refused(["--drive", f"file={adir}"], "a directory", r"is a directory")
    refused(["--drive", f"file={odd}"], "a size that is not a multiple of 512", r"1000 bytes, not a multiple of 512")
    refused(["--drive", f"file={good},colour=blue"], "an unknown key", r"unknown key 'colour'")
    refused(["--drive", f"file={good},cache=sometimes"], "a bad cache mode", r"cache=sometimes")
    refused(["--drive", f"file={good},id=a", "--drive", f"file={odd},id=a"], "duplicate ids", r"two drives have the id 'a'")
    refused(["--drive", "readonly=on"], "no file=", r"file=PATH is required")
    refused(["--drive", f"file={good},id=no-dashes"], "a bad id", r"invalid drive id")
    unreadable = make("unreadable.img", 1 << 20)
    os.chmod(unreadable, 0)
    os.chmod(tmp, 0o711)  # nobody may reach the file, not read it
    refused(["--drive", f"file={unreadable}"], "an unreadable image", r"unreadable\.img.*Permission denied",
            as_nobody=os.geteuid() == 0)
    conf = os.path.join(tmp, "vm.conf")
    with open(conf, "w") as f:
        f.write(f"drive = file={good}\ndrive = file=good.img,discard=maybe\n")
    r = subprocess.run([ORRERY_VM, "--name", "t", "--no-bus", "--serial", "none", "--display", "none", "--config", conf],
                       stdin=subprocess.PIPE, capture_output=True, timeout=60)
    tap.check(r.returncode == 2 and f"{conf}:2:" in r.stderr.decode(), "a bad drive line in the config file names file and line",
              r.stderr.decode())

    # ---- write, power off, read in a new VM
    disk = make("disk.img", 64 << 20, mkfs=True)
    vm = boot("--drive", f"file={disk},id=data", name="writer")
    if vm:
        vms.append(vm)
        m = vm.command("mount -t ext4 /dev/vda /mnt && echo mounted-''ok", r"mounted-ok\r?\n", 60)
        tap.check(m is not None, "the guest mounts the host-made ext4 image", vm.tail())
        vm.command("for i in 1 2 3 4 5; do dd if=/dev/urandom of=/mnt/f$i bs=1k count=$((i*97)) 2>/dev/null; done; "
                   "mkdir /mnt/d && cp /mnt/f2 /mnt/d/f6; sync; echo written-''ok", r"written-ok\r?\n", 120)
        before = hashes(vm, "/mnt/f* /mnt/d/f6")
        tap.check(before is not None and len(before) == 6, "six files written and hashed in the guest", vm.tail())

        # The image is locked: a second writer is refused, naming the first.
        line = refused(["--drive", f"file={disk}"], "a second VM on the same writable image",
                       rf"in use by orrery-vm \(pid {vm.proc.pid}\)")
        refused(["--drive", f"file={disk},readonly=on"], "a reader of an image being written", r"in use by")

        vm.command("umount /mnt && echo umounted-''ok", r"umounted-ok\r?\n", 60)
        vm.send("poweroff\n")
        tap.check(vm.wait_exit(60) == 0, "the writer powers off", vm.tail())
        host_sha = sha_file(disk)

        # Two readers at once, each seeing every file intact.
        r1 = boot("--drive", f"file={disk},readonly=on", name="reader1")
        r2 = boot("--drive", f"file={disk},readonly=on", name="reader2") if r1 else None
        for r in (r1, r2):
            if r:
                vms.append(r)
        if r1 and r2:
            r1.command("mount -t ext4 -o ro /dev/vda /mnt && echo mounted-''ok", r"mounted-ok\r?\n", 60)
            after = hashes(r1, "/mnt/f* /mnt/d/f6")
            tap.check(after == before, "a new VM sees every file with the same sha256", f"{before}\n{after}")
            m = r2.command("cat /sys/block/vda/ro; dd if=/dev/zero of=/dev/vda bs=512 count=1 conv=fsync 2>&1; echo dd-exit-''$?",
                           r"dd-exit-(\d+)", 60)
            tap.check(m is not None and m.group(1) != "0", "the guest cannot write a readonly disk", r2.tail())
            m = r2.command("cat /sys/block/vda/ro", r"\n([01])\r?\n", 30)
            tap.check(m is not None and m.group(1) == "1", "the guest sees the disk read-only", r2.tail())
            for r in (r1, r2):
                r.send("poweroff\n")
                r.wait_exit(60)
        tap.check(sha_file(disk) == host_sha, "readonly VMs left the image unchanged")

        # Snapshot: the guest writes, the image never changes.
        s = boot("--drive", f"file={disk},snapshot=on", name="snap")
        if s:
            vms.append(s)
            m = s.command("mount -t ext4 /dev/vda /mnt && rm /mnt/f1 && dd if=/dev/urandom of=/mnt/big bs=1M count=8 2>/dev/null"
                          " && sync && ls /mnt && echo snap-''ok", r"snap-ok\r?\n", 120)
            tap.check(m is not None and "big" in m.string[m.start() - 200:], "the guest writes to a snapshot disk", s.tail())
            s.send("poweroff\n")
            s.wait_exit(60)
        tap.check(sha_file(disk) == host_sha, "snapshot=on left the image unchanged")
        r = subprocess.run(["/sbin/e2fsck" if os.path.exists("/sbin/e2fsck") else "e2fsck", "-fn", disk],
                           capture_output=True)
        tap.check(r.returncode == 0, "host e2fsck -fn finds the image clean", r.stdout.decode() + r.stderr.decode())
finally:
    for v in vms:
        v.kill()
    shutil.rmtree(tmp, ignore_errors=True)
tap.finish()

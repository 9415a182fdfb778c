#!/usr/bin/env python3
"""Differential test of orrery-vm's CPU against QEMU, which nobody here wrote.

ISA: for each seed, gen.py writes a random RV64GC sequence; prog.S frames it
twice: a static Linux program run by qemu-riscv64 (user mode) and a bare-metal
M-mode payload run by orrery-vm --bios with each CPU engine (and by
qemu-system-riscv64 -M virt -bios when present). The dumps (x1-x31, f0-f31, fcsr, 256 bytes of memory)
must be identical.

Privileged: each priv/*.S is a bare-metal program that exercises traps,
delegation, mstatus transitions, Sv39/Sv48 walks and PMP and dumps what it
saw; it runs on qemu-system-riscv64 -M virt -bios and on orrery-vm --bios and
the dumps must be identical.

    difftest.py [--seeds FIRST:LAST] [--count N] [--jobs N] [--no-priv] [--keep]

Needs riscv64-linux-gnu-gcc (gcc-riscv64-linux-gnu), qemu-riscv64
(qemu-user) and qemu-system-riscv64 (qemu-system-misc); without them the test
is skipped with the reason.
"""
import argparse
import concurrent.futures
import glob
import os
import platform
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("ORRERY_BUILD_DIR", os.path.join(HERE, "..", "..", "build"))
ORRERY_VM = os.environ.get("ORRERY_VM", os.path.join(BUILD, "emulator", "orrery-vm"))
CROSS = "riscv64-linux-gnu-"
CC = [CROSS + "gcc", "-march=rv64gc", "-mabi=lp64d", "-nostdlib", "-static", "-Wl,--build-id=none"]
RUN_TIMEOUT = 60        # a hang, not a slow run
# Every engine of orrery-vm runs every program: the translator (the default on x86-64) and the interpreter.
ENGINES = ["jit", "interp"] if platform.machine() == "x86_64" else ["interp"]

NAMES = [f"x{i}" for i in range(1, 32)] + [f"f{i}" for i in range(32)] + ["fcsr"] + \
        [f"mem[{8 * i}]" for i in range(32)]

sys.path.insert(0, os.path.join(HERE, ".."))
from orrery_tap import Tap  # noqa: E402


def tiny_image(path):
    """A Linux Image header with no code: orrery-vm wants a kernel even when the firmware never jumps to it."""
    hdr = bytearray(64)
    hdr[8:16] = (0x200000).to_bytes(8, "little")
    hdr[16:24] = (0x1000).to_bytes(8, "little")
    hdr[48:56] = b"RISCV\0\0\0"
    hdr[56:60] = b"RSC\x05"
    with open(path, "wb") as f:
        f.write(bytes(hdr) + b"\0" * 4032)


class BuildError(Exception):
    pass


def build(src, workdir, baremetal):
    out = os.path.join(workdir, "bare.elf" if baremetal else "user")
    cmd = CC + ["-I", workdir, src, "-o", out]
    if baremetal:
        cmd[1:1] = ["-DBAREMETAL", "-T", os.path.join(HERE, "link.ld"), "-Wl,--no-warn-rwx-segments"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise BuildError(f"{' '.join(cmd)}\n{r.stderr}")
    if not baremetal:
        return out
    binary = os.path.join(workdir, "bare.bin")
    subprocess.run([CROSS + "objcopy", "-O", "binary", out, binary], check=True)
    return binary


def dump_of(text):
    """The lines between the first marker and '=== end', or None."""
    lines = text.replace("\r", "").split("\n")
    for i, line in enumerate(lines):
        if line.startswith("=== "):
            try:
                end = lines.index("=== end", i)
            except ValueError:
                return None
            return lines[i:end]
    return None


def run(cmd):
    try:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        return None, f"timed out after {RUN_TIMEOUT} s: {' '.join(cmd)}\n{(e.stdout or b'')[-2000:]!r}"
    out = r.stdout.decode(errors="replace")
    d = dump_of(out)
    if d is None:
        return None, f"no dump (exit {r.returncode}): {' '.join(cmd)}\n{out[-2000:]}{r.stderr.decode(errors='replace')[-2000:]}"
    return d, None


def run_orrery(binary, kernel, engine):
    return run([ORRERY_VM, "--name", "difftest", "--bios", binary, "--kernel", kernel, "--no-bus",
                "--display", "none", "--memory", "128M", "--no-reboot", "--cpu-engine", engine])


def run_qemu_system(binary):
    # Without the hypervisor extension, which orrery does not have (it hardwires parts of mideleg).
    return run(["qemu-system-riscv64", "-M", "virt", "-cpu", "rv64,h=false", "-m", "128M", "-smp", "1",
                "-bios", binary, "-nographic", "-no-reboot"])


def compare(want, got, names=None):
    """None if equal, otherwise what differs, by name."""
    if want == got:
        return None
    if want[0] != got[0]:
        return f"different outcome: {want[0]!r} vs {got[0]!r}\n" + "\n".join(want[1:8]) + "\n--\n" + "\n".join(got[1:8])
    diffs = []
    for i, (a, b) in enumerate(zip(want[1:], got[1:])):
        if a != b:
            name = names[i] if names and i < len(names) else f"word {i}"
            diffs.append(f"{name}: {a} vs {b}")
    if len(want) != len(got):
        diffs.append(f"{len(want)} vs {len(got)} lines")
    return "\n".join(diffs)


def isa_case(seed, count, root, kernel, qemu_system):
    workdir = os.path.join(root, f"seed-{seed}")
    os.makedirs(workdir)
    with open(os.path.join(workdir, "body.S"), "w") as f:
        subprocess.run([sys.executable, os.path.join(HERE, "gen.py"), str(seed), str(count)], stdout=f, check=True)
    src = os.path.join(HERE, "prog.S")
    try:
        user = build(src, workdir, False)
        bare = build(src, workdir, True)
    except BuildError as e:
        return [(False, f"seed {seed}: builds", str(e))]
    results = []
    ref, err = run(["qemu-riscv64", user])
    if err:
        return [(False, f"seed {seed}: qemu-riscv64 runs the program", err)]
    for engine in ENGINES:
        got, err = run_orrery(bare, kernel, engine)
        results.append((err is None and compare(ref, got, NAMES) is None,
                        f"seed {seed}: orrery-vm --cpu-engine {engine} --bios == qemu-riscv64 ({count} instructions)",
                        err or f"{compare(ref, got, NAMES)}\n(program: {workdir}/body.S)"))
    if qemu_system:
        got, err = run_qemu_system(bare)
        results.append((err is None and compare(ref, got, NAMES) is None,
                        f"seed {seed}: qemu-system-riscv64 -bios == qemu-riscv64 (the frame itself)",
                        err or compare(ref, got, NAMES)))
    return results


def priv_case(src, root, kernel):
    name = os.path.splitext(os.path.basename(src))[0]
    workdir = os.path.join(root, "priv-" + name)
    os.makedirs(workdir)
    try:
        binary = build(src, workdir, True)
    except BuildError as e:
        return [(False, f"{name}: builds", str(e))]
    ref, err = run_qemu_system(binary)
    if err:
        return [(False, f"{name}: qemu-system-riscv64 runs it", err)]
    results = []
    for engine in ENGINES:
        got, err = run_orrery(binary, kernel, engine)
        results.append((err is None and compare(ref, got) is None,
                        f"{name}: orrery-vm --cpu-engine {engine} --bios == qemu-system-riscv64 -M virt -bios "
                        f"({len(ref) - 1} words)", err or f"{compare(ref, got)}\n(program: {src})"))
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="1:24")
    ap.add_argument("--count", type=int, default=400)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--no-priv", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the programs and dumps")
    args = ap.parse_args()

    missing = [t for t in (CROSS + "gcc", CROSS + "objcopy", "qemu-riscv64", "qemu-system-riscv64")
               if shutil.which(t) is None]
    if missing:
        print(f"1..0 # SKIP {', '.join(missing)} not installed (tools/packages.txt, guest/build-deps.txt)")
        return 0

    first, last = (int(v) for v in args.seeds.split(":"))
    root = tempfile.mkdtemp(prefix="orrery-difftest-")
    kernel = os.path.join(root, "tiny-Image")
    tiny_image(kernel)
    tap = Tap()
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as ex:
        jobs = []
        if not args.no_priv:
            jobs += [ex.submit(priv_case, src, root, kernel) for src in sorted(glob.glob(os.path.join(HERE, "priv", "*.S")))]
        # qemu-system runs the frame for every fourth seed: it checks that the user-mode reference
        # and the bare-metal payload compute the same thing.
        jobs += [ex.submit(isa_case, seed, args.count, root, kernel, seed % 4 == 1) for seed in range(first, last + 1)]
        for job in jobs:
            for ok, what, detail in job.result():
                tap.check(ok, what, detail)
    print(f"1..{tap.n}", flush=True)
    if tap.failed or args.keep:
        print(f"# programs and dumps in {root}", flush=True)
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if tap.failed else 0


if __name__ == "__main__":
    sys.exit(main())

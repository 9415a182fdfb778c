#!/usr/bin/env python3
"""Bad input on the command line: a one-line error naming the problem, exit code 2, never a crash or hang."""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from orrery_test import ORRERY_VM, Tap  # noqa: E402

tap = Tap()
tmp = tempfile.mkdtemp(prefix="orrery-cli-")


def run(*args):
    r = subprocess.run([ORRERY_VM] + list(args), stdin=subprocess.PIPE, capture_output=True, timeout=60)
    return r.returncode, r.stderr.decode(errors="replace")


def expect_usage_error(args, needle, what):
    code, err = run(*args)
    first = err.strip().splitlines()[0] if err.strip() else ""
    tap.check(code == 2 and needle in first, f"{what}: exit 2 and '{needle}' in the message",
              f"exit {code}, stderr: {err!r}")


not_image = os.path.join(tmp, "not-an-image")
with open(not_image, "wb") as f:
    f.write(b"\x7fELF" + b"\0" * 4096)
big = os.path.join(tmp, "big-initrd")
with open(big, "wb") as f:
    f.truncate(64 << 20)
tiny_kernel = os.path.join(tmp, "tiny-Image")
with open(tiny_kernel, "wb") as f:
    hdr = bytearray(64)
    hdr[8:16] = (0x200000).to_bytes(8, "little")
    hdr[16:24] = (0x1000).to_bytes(8, "little")
    hdr[48:56] = b"RISCV\0\0\0"
    hdr[56:60] = b"RSC\x05"
    f.write(bytes(hdr) + b"\0" * 4032)

code, out = run("--help")
tap.check(code == 0, "--help exits 0")
expect_usage_error([], "--name", "no --name")
expect_usage_error(["--name", "9lives"], "invalid VM name", "a name starting with a digit")
expect_usage_error(["--name", "a-b"], "invalid VM name", "a name with a dash")
expect_usage_error(["--name", "x" * 65], "invalid VM name", "a 65-character name")
expect_usage_error(["--name", "t", "--kernel", os.path.join(tmp, "missing")], "cannot open", "a missing kernel")
expect_usage_error(["--name", "t", "--kernel", tmp], "not a regular file", "a directory as kernel")
expect_usage_error(["--name", "t", "--kernel", not_image], "not a RISC-V Linux Image", "an ELF file as kernel")
expect_usage_error(["--name", "t", "--bios", os.path.join(tmp, "missing")], "cannot open", "a missing firmware")
expect_usage_error(["--name", "t", "--kernel", tiny_kernel, "--initrd", big, "--memory", "32M"],
                   "does not fit", "an initrd larger than RAM")
expect_usage_error(["--name", "t", "--memory", "1M"], "out of range", "too little memory")
expect_usage_error(["--name", "t", "--memory", "100T"], "out of range", "too much memory")
expect_usage_error(["--name", "t", "--memory", "lots"], "invalid --memory", "a malformed memory size")
for bad in ["1024", "1024x", "x768", "0x0", "99999x99999", "-5x10", "10x10"]:
    expect_usage_error(["--name", "t", "--display", bad], "invalid --display", f"--display {bad}")
expect_usage_error(["--name", "t", "--serial", "tcp:1"], "invalid --serial", "an unknown serial backend")
expect_usage_error(["--name", "t", "--frobnicate"], "unknown option", "an unknown option")
tap.finish()

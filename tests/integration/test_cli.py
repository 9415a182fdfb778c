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
expect_usage_error(["--name", "a.b"], "invalid VM name", "a name with a dot")
expect_usage_error(["--name", "x" * 65], "invalid VM name", "a 65-character name")
expect_usage_error(["--name", "t", "--kernel", os.path.join(tmp, "missing")], "cannot open", "a missing kernel")
expect_usage_error(["--name", "t", "--kernel", tmp], "not a regular file", "a directory as kernel")
expect_usage_error(["--name", "t", "--kernel", not_image], "not a RISC-V Linux Image", "an ELF file as kernel")
expect_usage_error(["--name", "t", "--bios", os.path.join(tmp, "missing")], "cannot open", "a missing firmware")
expect_usage_error(["--name", "t", "--kernel", tiny_kernel, "--initrd", big, "--memory", "32M"],
                   "does not fit", "an initrd larger than RAM")


def expect_exact_error(args, message, what):
    """Exit 2 and exactly 'message' as the first line of stderr (not merely containing it)."""
    code, err = run(*args)
    first = err.strip().splitlines()[0] if err.strip() else ""
    tap.check(code == 2 and first == "orrery-vm: " + message, f"{what}: exit 2 and exactly '{message}'",
              f"exit {code}, stderr: {err!r}")


expect_exact_error(["--name", "t", "--memory", "1M"], "memory size 1 MiB out of range (16 MiB .. 64 GiB)",
                   "too little memory")
expect_exact_error(["--name", "t", "--memory", "100T"], "memory size 104857600 MiB out of range (16 MiB .. 64 GiB)",
                   "too much memory")
expect_exact_error(["--name", "t", "--memory", "lots"], "invalid --memory 'lots': expected a size such as 512M or 2G",
                   "a malformed memory size")
for bad in ["1024", "1024x", "x768", "0x0", "99999x99999", "-5x10", "10x10"]:
    expect_usage_error(["--name", "t", "--display", bad], "invalid --display", f"--display {bad}")
expect_usage_error(["--name", "t", "--serial", "tcp:1"], "invalid --serial", "an unknown serial backend")
expect_usage_error(["--name", "t", "--frobnicate"], "unknown option", "an unknown option")
expect_usage_error(["--name", "t", "--log-level", "loud"], "invalid --log-level", "an unknown log level")
code, err = run("--name", "t", "--frobnicate")
tap.check("--help" not in err, "errors off a terminal (a unit's journal) carry no 'Try --help' hint", err)

# Without a built default guest: bad input is still named, and describing the machine needs no guest.
no_guest = dict(os.environ, ORRERY_GUEST_DIR=os.path.join(tmp, "no-guest-here"))
r = subprocess.run([ORRERY_VM, "--name", "t", "--no-config", "--memory", "1M"], capture_output=True, timeout=60,
                   env=no_guest)
tap.check(r.returncode == 2 and b"out of range" in r.stderr, "without the default guest, --memory 1M is out of range",
          r.stderr)
r = subprocess.run([ORRERY_VM, "--name", "t", "--no-config"], capture_output=True, timeout=60, env=no_guest)
tap.check(r.returncode == 2 and b"default guest is not built" in r.stderr, "a missing default guest is named", r.stderr)
dtb = os.path.join(tmp, "no-guest.dtb")
r = subprocess.run([ORRERY_VM, "--name", "t", "--no-config", "--dump-dtb", dtb], capture_output=True, timeout=60,
                   env=no_guest)
tap.check(r.returncode == 0 and os.path.getsize(dtb) > 0, "--dump-dtb works without the default guest", r.stderr)


# The VM's configuration file (orrery-vm.conf(5)): bad files fail like bad options, naming file and line.
def write_conf(name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


conf = write_conf("unknown-key.conf", "# a comment\nmemory = 256M\nfrobnicate = 1\n")
expect_usage_error(["--name", "t", "--config", conf], f"{conf}:3: unknown key 'frobnicate'", "a config file with an unknown key")
conf = write_conf("bad-value.conf", "[vm]\nmemory = lots\n")
expect_usage_error(["--name", "t", "--config", conf], f"{conf}:2: invalid memory 'lots'", "a config file with a bad value")
conf = write_conf("bad-flag.conf", "no-reboot = maybe\n")
expect_usage_error(["--name", "t", "--config", conf], f"{conf}:1: invalid no-reboot 'maybe'", "a config file with a bad flag")
conf = write_conf("bad-stop-timeout.conf", "stop-timeout = soon\n")
expect_usage_error(["--name", "t", "--config", conf], f"{conf}:1: invalid stop-timeout 'soon'",
                   "a config file with a stop-timeout that is not a number")
expect_usage_error(["--name", "t", "--stop-timeout", "0"], "invalid --stop-timeout '0'", "--stop-timeout 0")
expect_usage_error(["--name", "t", "--stop-timeout", "3601"], "invalid --stop-timeout '3601'",
                   "--stop-timeout beyond an hour")
conf = write_conf("bad-section.conf", "[network]\nmemory = 1G\n")
expect_usage_error(["--name", "t", "--config", conf], "unknown section [network]", "a config file with an unknown section")
conf = write_conf("no-equals.conf", "memory 1G\n")
expect_usage_error(["--name", "t", "--config", conf], "expected 'key = value'", "a config line without '='")
expect_usage_error(["--name", "t", "--config", os.path.join(tmp, "missing.conf")], "cannot read configuration",
                   "--config naming a missing file")
expect_usage_error(["--name", "t", "--config", conf, "--no-config"], "exclude each other", "--config with --no-config")


def dtb_memory(args, env=None):
    """The guest RAM a configuration leads to, read back from the device tree."""
    dtb = os.path.join(tmp, "conf.dtb")
    r = subprocess.run([ORRERY_VM, "--dump-dtb", dtb] + args, capture_output=True, timeout=60, env=env)
    if r.returncode != 0:
        return f"exit {r.returncode}: {r.stderr.decode(errors='replace')}"
    d = subprocess.run(["dtc", "-I", "dtb", "-O", "dts", dtb], capture_output=True, text=True, timeout=60)
    for line in d.stdout.split("memory@80000000")[1].splitlines():
        if "reg =" in line:
            return line.strip()
    return d.stdout


def memory_reg(size):
    """The exact reg line of memory@80000000 for 'size' bytes."""
    return f"reg = <0x00 0x80000000 0x{size >> 32:02x} 0x{size & 0xffffffff:x}>;"


conf = write_conf("mem.conf", "; settings of a test VM\n[vm]\nmemory = 64M\n")
got = dtb_memory(["--name", "t", "--config", conf])
tap.check(got == memory_reg(64 << 20), "memory from --config reaches the machine", got)
got = dtb_memory(["--name", "t", "--config", conf, "--memory", "128M"])
tap.check(got == memory_reg(128 << 20), "the command line wins over the config file", got)

# Without --config: $XDG_CONFIG_HOME/orrery/vm/NAME.conf, read only for that name.
xdg = os.path.join(tmp, "xdg")
os.makedirs(os.path.join(xdg, "orrery", "vm"))
write_conf(os.path.join(xdg, "orrery", "vm", "confvm.conf"), "memory = 32M\n")
env = dict(os.environ, XDG_CONFIG_HOME=xdg)
got = dtb_memory(["--name", "confvm"], env)
tap.check(got == memory_reg(32 << 20), "the VM's own file under $XDG_CONFIG_HOME is read", got)
got = dtb_memory(["--name", "confvm", "--no-config"], env)
tap.check(got == memory_reg(512 << 20), "--no-config ignores it (512 MiB default)", got)
got = dtb_memory(["--name", "othervm"], env)
tap.check(got == memory_reg(512 << 20), "another VM name does not read it", got)
tap.finish()

#!/usr/bin/env python3
"""orrery-monitor's agent commands with the real bridge (D-Bus activated on a private bus) and the
default guest's agent: ping, info, osinfo, hostname, time, info agent, a copy in and out (sha256
equal; a failed copy-out leaves no host file), fsfreeze/fsthaw, progress and Ctrl-C on a terminal,
a guest that does not answer (a clear Timeout, no hang), shutdown."""
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from bridge_test import ActivatingBus, Tap  # noqa: E402
from orrery_test import BOOT_TIMEOUT, READY, Pty, Vm  # noqa: E402

MONITOR = os.environ["ORRERY_MONITOR"]
NAME = "monagent"
TIMEOUT = 300  # upper bound only: copies through an emulated guest on a shared machine
BRIDGE_TIMEOUT = 5  # the bridge's per-call guest timeout, short so a silent guest is seen quickly

tap = Tap()
tmp = tempfile.mkdtemp(prefix="orrery-monagent-")
pbus = ActivatingBus(tmp, "--timeout", str(BRIDGE_TIMEOUT))
env = dict(os.environ, TERM="dumb", XDG_STATE_HOME=tmp)


def monitor(*commands, timeout=TIMEOUT):
    args = [MONITOR, "--bus", pbus.address, NAME]
    for c in commands:
        args += ["-c", c]
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)


def guest(cmd, pattern, timeout=60):
    m = vm.command(cmd, pattern, timeout)
    return m.group(1) if m else None


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def ping_until_answered():
    """agent ping until the guest answers: on a loaded machine its agent may still be starting, or slower than
    the bridge's short per-call timeout, and the bridge resyncs meanwhile. The bound only catches hangs."""
    deadline = time.monotonic() + TIMEOUT
    attempts = 0
    while True:
        attempts += 1
        r = monitor("agent ping")
        if r.returncode == 0 or time.monotonic() > deadline:
            return r, attempts


vm = Vm("--display", "none", name=NAME, bus=pbus.address)
try:
    tap.check(vm.wait_for(READY, BOOT_TIMEOUT) is not None, "the default guest boots", vm.tail())

    # The first call activates the bridge.
    r, attempts = ping_until_answered()
    tap.check(r.returncode == 0 and re.search(rf"guest agent of '{NAME}' answered in [0-9.]+ ms", r.stdout),
              f"agent ping activates the bridge and the guest answers (attempt {attempts})", r)
    r = monitor("info agent")
    tap.check(r.returncode == 0 and "guest agent: connected" in r.stdout, "info agent: connected", r)

    uname = guest("echo uname=$(uname -r)", r"\nuname=([^\r\n]+)\r?\n")
    r = monitor("agent osinfo")
    tap.check(r.returncode == 0 and f"kernel-release: {uname}\n" in r.stdout and "machine: riscv64" in r.stdout,
              f"agent osinfo shows the guest's kernel ({uname})", r)
    r = monitor("agent info")
    tap.check(r.returncode == 0 and "version: " in r.stdout and "guest-file-read" in r.stdout,
              "agent info shows the agent's version and commands", r)
    r = monitor("agent hostname", "agent time")
    tap.check(r.returncode == 0 and r.stdout.startswith("orrery\n") and "guest time: " in r.stdout,
              "agent hostname and agent time", r)

    # A copy in and out; the guest checks the bytes it got.
    src = os.path.join(tmp, "in.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(3 << 20))
    r = monitor(f"agent copy-in {src} /tmp/mon.bin")
    tap.check(r.returncode == 0 and f"copied {3 << 20} bytes to guest:/tmp/mon.bin" in r.stdout,
              "agent copy-in of 3 MiB reports the bytes copied", r)
    guest_sum = guest("echo sum=$(sha256sum /tmp/mon.bin)", r"\nsum=([0-9a-f]{64}) ", 120)
    tap.check(guest_sum == sha(src), "the guest's sha256sum equals the host file's", guest_sum)
    back = os.path.join(tmp, "back.bin")
    r = monitor(f"agent copy-out /tmp/mon.bin {back}")
    tap.check(r.returncode == 0 and os.path.exists(back) and sha(back) == sha(src),
              "agent copy-out brings it back (sha256 equal)", r)
    missing = os.path.join(tmp, "never.bin")
    r = monitor(f"agent copy-out /nonexistent/file {missing}")
    leftovers = [f for f in os.listdir(tmp) if ".orrery-" in f]
    tap.check(r.returncode == 1 and "the guest refused" in r.stderr and "/nonexistent/file" in r.stderr
              and not os.path.exists(missing) and not leftovers,
              "a failed copy-out names the guest's reason and leaves no host file behind", (r, leftovers))

    r = monitor("agent fsfreeze", "agent fsfreeze-status")
    tap.check(r.returncode == 0 and re.search(r"froze [1-9]\d* filesystem", r.stdout) and r.stdout.endswith("frozen\n"),
              "agent fsfreeze, then fsfreeze-status says frozen", r)
    r = monitor("agent fsthaw", "agent fsfreeze-status")
    tap.check(r.returncode == 0 and re.search(r"thawed [1-9]\d* filesystem", r.stdout) and r.stdout.endswith("thawed\n"),
              "agent fsthaw, then fsfreeze-status says thawed", r)

    # On a terminal: progress while copying, and Ctrl-C cancels.
    big = os.path.join(tmp, "big.bin")
    with open(big, "wb") as f:
        f.write(os.urandom(16 << 20))
    term = Pty([MONITOR, "--bus", pbus.address, NAME], env=env, timeout=TIMEOUT)
    try:
        tap.check(term.expect(r"\(orrery monagent\) ") is not None, "an interactive monitor", term.tail())
        term.send(f"agent copy-in {big} /tmp/big.bin\r")
        progress = term.expect(r"/tmp/big\.bin: [0-9.]+ of 16\.0 MiB \((\d+)%\)")
        tap.check(progress is not None, "a copy shows its progress on the terminal", term.tail())
        term.expect(r"\([1-9]\d*%\)")  # under way, not just announced
        term.send("\x03")
        tap.check(term.expect(r"orrery-monitor: agent copy-in: cancelled") is not None, "Ctrl-C cancels the copy", term.tail())
        tap.check(term.line("info status", r"VM status: running") is not None,
                  "the monitor is back at its prompt and the VM runs", term.tail())
    finally:
        term.close()

    # A guest that does not answer: a clear reason within the bridge's timeout, never a hang.
    vm_bus = subprocess.run(["busctl", f"--address={pbus.address}", "call", f"org.orrery.VM.{NAME}",
                             f"/org/orrery/VM/{NAME}", "org.orrery.Machine1", "Pause"], capture_output=True)
    t0 = time.monotonic()
    r = monitor("agent ping", timeout=120)
    took = time.monotonic() - t0
    tap.check(r.returncode == 1 and "did not answer in time" in r.stderr,
              f"agent ping to a paused guest fails naming the timeout ({took:.1f} s)", r)
    subprocess.run(["busctl", f"--address={pbus.address}", "call", f"org.orrery.VM.{NAME}",
                    f"/org/orrery/VM/{NAME}", "org.orrery.Machine1", "Resume"], capture_output=True)
    r, attempts = ping_until_answered()
    tap.check(r.returncode == 0, f"after Resume the agent answers again (attempt {attempts})", r)

    r = monitor("agent shutdown")
    code = vm.wait_exit(120)
    tap.check(r.returncode == 0 and "accepted 'powerdown'" in r.stdout and code == 0,
              f"agent shutdown powers the guest off (orrery-vm exit {code})", (r, vm.tail(600)))
finally:
    vm.kill()
    pbus.stop()
    shutil.rmtree(tmp, ignore_errors=True)
tap.finish()

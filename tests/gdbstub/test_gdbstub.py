#!/usr/bin/env python3
"""orrery-gdbstub with Debian's gdb-multiarch against the default guest.

A real debugger nobody here wrote, driven by batch scripts: attach to the
running kernel, load vmlinux, break in do_sys_openat2 when a command typed
on the serial console opens a file, backtrace, registers, stepi, x/4i,
finish, delete, continue, Ctrl-C; a watchpoint; and the ways a debugging
session can end (detach, kill, the debugger or the stub killed), after
each of which the guest must run on with no breakpoint left. Then: a second
debugger is refused, and a VM without --debug refuses Debug1.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading

import dbus

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from orrery_test import BOOT_TIMEOUT, READY, PrivateBus, Tap, Vm, poll as poll_until  # noqa: E402

GDBSTUB = os.environ["ORRERY_GDBSTUB"]
MONITOR = os.environ["ORRERY_MONITOR"]
VMLINUX = os.path.join(os.environ["ORRERY_GUEST_DIR"], "vmlinux")
GDB = shutil.which("gdb-multiarch") or "gdb-multiarch"
NAME = "gdbtest"
SERVICE = f"org.orrery.VM.{NAME}"
PATH = f"/org/orrery/VM/{NAME}"
STEP_TIMEOUT = 180          # generous: catches hangs on a loaded machine, never a condition

tap = Tap()
pbus = PrivateBus()
vm = Vm("--debug", name=NAME, bus=pbus.address)


def poll(condition, timeout=STEP_TIMEOUT):
    return poll_until(condition, timeout, 0.05)


class Proc:
    """A process whose output is collected by a thread, so tests can wait for text in it."""

    def __init__(self, argv, stdin=subprocess.DEVNULL):
        self.text = ""
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for chunk in iter(lambda: self.proc.stdout.read1(4096), b""):
            with self.lock:
                self.text += chunk.decode(errors="replace")

    def output(self):
        with self.lock:
            return self.text

    def wait_text(self, pattern, timeout=STEP_TIMEOUT):
        return poll(lambda: re.search(pattern, self.output(), re.M), timeout)

    def wait(self, timeout=STEP_TIMEOUT):
        """The exit status (None if still running after 'timeout'), with all the output read."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        # The process has exited, but its last output may still be in the pipe: read to EOF.
        self.reader.join(timeout)
        return rc

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)


def start_stub(name=NAME):
    stub = Proc([GDBSTUB, "--vm", name, "--bus", pbus.address, "--listen", "127.0.0.1:0"])
    m = stub.wait_text(r"listening on 127\.0\.0\.1:(\d+)", 30)
    return stub, (int(m.group(1)) if m else None)


def gdb(lines, port, stdin=subprocess.DEVNULL):
    """GDB in batch mode, one -ex per command: an error in one (say, unwinding past the kernel's assembly
    entry code) is printed and the next command still runs, as at a GDB prompt."""
    commands = ["set pagination off", "set confirm off", "set width 0", f"file {VMLINUX}",
                f"target remote 127.0.0.1:{port}"] + lines
    argv = [GDB, "-q", "-nx", "-batch"]
    for c in commands:
        argv += ["-ex", c]
    return Proc(argv, stdin=stdin)


bus = None


def prop(iface, name):
    try:
        return str(bus.get_object(SERVICE, PATH).Get(iface, name, dbus_interface="org.freedesktop.DBus.Properties"))
    except dbus.DBusException as e:
        return f"error: {e.get_dbus_name()}"


def owner():
    return prop("org.orrery.Debug1", "Owner")


def state():
    return prop("org.orrery.Machine1", "State")


def continued():
    """After a debugger attached: its first resume (continue) sets the VM running again."""
    return poll(lambda: owner() not in ("", None) and not owner().startswith("error")) and \
        poll(lambda: state() == "running")


def guest_alive(tag):
    """The guest runs and answers on its serial console (the shell computes 42: not an echo of our typing)."""
    return vm.command(f"echo alive-{tag}-$((6*7))", rf"alive-{tag}-42", STEP_TIMEOUT) is not None


def open_file_completes(tag):
    """A command that opens a file runs to its end: no breakpoint left in do_sys_openat2 stops it."""
    return vm.command(f"cat /proc/version && echo opened-{tag}-$((6*7))", rf"opened-{tag}-42", STEP_TIMEOUT) is not None


def named_frames(text):
    return re.findall(r"^#\d+\s+(?:0x[0-9a-f]+ in )?([A-Za-z_]\w*) \(", text, re.M)


try:
    if not tap.check(os.path.exists(VMLINUX), f"the default guest has vmlinux ({VMLINUX})"):
        tap.finish()
    if not tap.check(vm.wait_for(READY, BOOT_TIMEOUT) is not None, "the guest boots with --debug", vm.tail()):
        tap.finish()
    bus = dbus.bus.BusConnection(pbus.address)
    tap.check(prop("org.orrery.Debug1", "Enabled") == "1", "Debug1.Enabled is true with --debug")

    stub, port = start_stub()
    if not tap.check(port is not None, "orrery-gdbstub listens on a loopback port", stub.output()):
        tap.finish()

    # --- 1. Attach, break on a kernel function hit by a command typed on the console
    g = gdb(["info registers pc",
             "break *do_sys_openat2",         # its first instruction: a0 still holds the dfd argument
             "continue",
             "bt",
             "info registers a0",
             'printf "pc-before %lx\\n", $pc',
             "stepi",
             'printf "pc-after %lx\\n", $pc',
             "x/4i $pc",
             "finish",
             "info symbol $pc",
             "delete",
             'echo === continuing\\n',
             "continue",
             'echo === interrupted\\n',
             "detach"], port)
    ok = continued()
    mark = len(vm.output)
    vm.send("cat /proc/version\n")
    hit = g.wait_text(r"^Breakpoint 1, .*do_sys_openat2")
    tap.check(ok and hit, "the breakpoint on do_sys_openat2 is hit by a command typed on the serial console",
              g.output())
    g.wait_text(r"=== continuing")     # bt, info registers, stepi, x/4i and finish have all answered
    out = g.output()
    tap.check(re.search(r"^pc\s+0xffffffff[0-9a-f]{8}\s", out, re.M), "info registers shows a kernel-space pc", out)
    frames = named_frames(out)
    tap.check(len(frames) >= 3 and frames[0] == "do_sys_openat2",
              f"bt shows at least three named frames ({' <- '.join(frames)})", out)
    tap.check(re.search(r"^a0\s+0xffffffffffffff9c\s+-100", out, re.M),
              "info registers a0: the dfd argument, AT_FDCWD (-100)", out)
    before = re.search(r"pc-before ([0-9a-f]+)", out)
    after = re.search(r"pc-after ([0-9a-f]+)", out)
    tap.check(before and after and before.group(1) != after.group(1) and
              0 < int(after.group(1), 16) - int(before.group(1), 16) <= 4,
              "stepi advances pc by one instruction", out)
    tap.check(len(re.findall(r"^(?:=> )?\s*0x[0-9a-f]+ <do_sys_openat2\+\d+>:\s+\S+", out, re.M)) >= 4,
              "x/4i $pc disassembles four instructions", out)
    tap.check(re.search(r"^do_sys_open \+ \d+ in section", out, re.M), "finish returns to the caller, do_sys_open", out)
    done = vm.wait_for(r"Linux version", STEP_TIMEOUT, since=mark)
    tap.check(done is not None, "after delete and continue, the guest's command completes", vm.tail())
    g.kill(signal.SIGINT)           # Ctrl-C: the stub stops the VM, GDB runs the rest of its script
    tap.check(g.wait_text(r"=== interrupted") and g.wait() == 0, "Ctrl-C stops the VM; detach ends GDB", g.output())
    tap.check(poll(lambda: owner() == "") and state() == "running", "after detach: no debugger, the VM runs",
              f"owner={owner()!r} state={state()!r}")
    tap.check(guest_alive("detach") and open_file_completes("detach"), "the guest runs on with no breakpoint left",
              vm.tail())

    # --- 2. A watchpoint on a kernel variable the guest writes
    g = gdb(["watch *(unsigned long *)&jiffies_64",
             "continue",
             'printf "pc-watch %lx\\n", $pc',
             "delete",
             "detach"], port)
    ok = continued()
    vm.send("\n")                   # an interrupt wakes the idle kernel, which catches up jiffies
    hit = g.wait_text(r"Hardware watchpoint 1: \*\(unsigned long \*\)&jiffies_64\s+Old value = \d+\s+New value = \d+")
    tap.check(ok and hit, "a write watchpoint on jiffies_64 fires when the guest writes it", g.output())
    tap.check(g.wait() == 0 and poll(lambda: owner() == ""), "the watchpoint session detaches", g.output())
    tap.check(guest_alive("watch"), "the guest runs on after the watchpoint", vm.tail())

    # --- 3. kill in GDB: the VM is never killed by a debugger, it runs on
    g = gdb(["break do_sys_openat2", "kill", 'echo === killed\\n'], port)
    tap.check(g.wait_text(r"=== killed") and g.wait() is not None and poll(lambda: owner() == ""),
              "GDB's kill ends the session", g.output())
    tap.check(state() == "running" and guest_alive("kill") and open_file_completes("kill"),
              "after kill the guest runs on, no breakpoint left", vm.tail())

    # --- 4. The debugger dies (SIGKILL) while the VM runs with a breakpoint inserted
    g = gdb(["break do_sys_openat2", "continue"], port)
    ok = continued()
    g.kill()
    g.wait()
    tap.check(ok and poll(lambda: owner() == ""), "a debugger killed mid-continue lets go of the VM", g.output())
    tap.check(state() == "running" and open_file_completes("gdb-killed"),
              "its breakpoint is gone: the guest's open completes", vm.tail())

    # --- 5. The stub is killed (SIGKILL) while the VM is stopped at a breakpoint; a second debugger meanwhile
    g = gdb(["break do_sys_openat2", "continue", 'echo === hit\\n', "shell read line"], port, stdin=subprocess.PIPE)
    ok = continued()
    mark = len(vm.output)
    vm.send("cat /proc/version\n")
    hit = g.wait_text(r"=== hit")
    tap.check(ok and hit and state() == "paused", "stopped at the breakpoint again", g.output())
    second = gdb(["info registers pc"], port)
    second.wait()
    tap.check(re.search(r"another debugger is attached", second.output()),
              "a second debugger is refused with a clear error", second.output())
    stub.kill()
    stub.wait()
    tap.check(poll(lambda: state() == "running") and poll(lambda: owner() == ""),
              "SIGKILL of orrery-gdbstub: the VM leaves the breakpoint and runs", f"state={state()!r}")
    tap.check(vm.wait_for(r"Linux version", STEP_TIMEOUT, since=mark) is not None and open_file_completes("stub-killed"),
              "the stopped command completes and no breakpoint stays behind", vm.tail())
    g.proc.stdin.close()
    if g.wait(60) is None:
        g.kill()
    tap.check(guest_alive("end"), "the guest is still alive at the end", vm.tail())

    # --- 6. The monitor's gdbserver starts a stub that outlives the monitor
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    r = subprocess.run([MONITOR, "--bus", pbus.address, NAME, "-c", f"gdbserver 127.0.0.1:{free}"],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"orrery-gdbstub \(pid (\d+)\) listening on 127\.0\.0\.1:(\d+)", r.stdout)
    tap.check(r.returncode == 0 and m and int(m.group(2)) == free, "monitor: gdbserver ADDR starts orrery-gdbstub there",
              r.stdout + r.stderr)
    if m:
        g = gdb(["info registers pc", "detach"], free)
        g.wait()
        tap.check(re.search(r"^pc\s+0xffffffff[0-9a-f]{8}\s", g.output(), re.M) and poll(lambda: owner() == ""),
                  "GDB debugs the VM through it after the monitor exited", g.output())
        os.kill(int(m.group(1)), signal.SIGTERM)

    # --- 7. A VM without --debug refuses Debug1, and orrery-gdbstub says why
    plain = Vm(name="nodebug", bus=pbus.address)
    try:
        plain_path = "/org/orrery/VM/nodebug"
        obj = poll(lambda: "org.orrery.VM.nodebug" in bus.list_names() and bus.get_object("org.orrery.VM.nodebug", plain_path),
                   60)
        err = None
        try:
            obj.Stop(dbus_interface="org.orrery.Debug1")
        except dbus.DBusException as e:
            err = e
        tap.check(err is not None and err.get_dbus_name() == "org.orrery.Error.NotSupported" and "--debug" in str(err),
                  "Debug1.Stop on a VM without --debug answers NotSupported, naming --debug", str(err))
        refused = Proc([GDBSTUB, "--vm", "nodebug", "--bus", pbus.address, "--listen", "127.0.0.1:0"])
        rc = refused.wait(60)
        tap.check(rc not in (0, None) and "without --debug" in refused.output(),
                  "orrery-gdbstub refuses a VM without --debug with a clear error", refused.output())
        r = subprocess.run([MONITOR, "--bus", pbus.address, "nodebug", "-c", "gdbserver 127.0.0.1:0"],
                           capture_output=True, text=True, timeout=60)
        tap.check(r.returncode == 1 and "without --debug" in r.stderr, "monitor: gdbserver on it fails and says why",
                  r.stdout + r.stderr)
    finally:
        plain.kill()
finally:
    for p in [locals().get(n) for n in ("stub", "g", "second")]:
        if p is not None:
            p.kill()
    vm.kill()
    pbus.stop()
tap.finish()

#!/usr/bin/env python3
"""The Debian guest as a user service: Orrery installed by README.md's block, the image installed where an
installed orrery-vm looks for it (~/.local/share/orrery/guest/debian), and `systemctl --user start
orrery-vm@deb` with a config saying `guest = debian` (the VM's disk and the host-local repository below ~/vm,
README.md's drop-in for the disk and the ssh forward on 127.0.0.1).
  - the serial scrollback reaches `login:`, `systemctl --user status` shows the unit running;
  - the image ships no ssh host key: the VM made its own on its first boot;
  - tty1 is on the screen (Debian's virtio_gpu module drives the VM's virtio-gpu, fbcon draws tty1 on it):
    the libvncclient client's picture has a lit character cell exactly where tty1's text (/dev/vcsa1, read
    over ssh) has a non-blank character, showing the login prompt;
  - through orrery-vnc and that client, `root` + Enter typed on the keyboard logs in on tty1 (the shell there
    then runs a command typed the same way), and the screen follows: the shell's prompt appears on it.
    With ORRERY_SCREENSHOT_DIR set, the two screens are also written there as PNG files;
  - `apt-get install hello` from the host-local repository (repo.img, a read-only drive with a `file:`
    source): nothing reaches beyond the host's loopback;
  - `systemctl --user stop orrery-vm@deb` powers Debian off: the unit ends cleanly and the ext4 root is
    clean (no journal replay at the next boot).

Needs the image: meson compile -C build debian-image."""
import base64
import collections
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
from orrery_test import Tap  # noqa: E402
from serial_client import scrollback  # noqa: E402
from user_session import SOURCE_ROOT, open_session, say, wait_for  # noqa: E402

VM = "deb"
UNIT = f"orrery-vm@{VM}.service"
VNC_UNIT = f"orrery-vnc@{VM}.service"
DEBIAN_DIR = os.environ["ORRERY_DEBIAN_DIR"]
VNC_PROBE = os.environ["ORRERY_VNC_PROBE"]
# Upper bounds that only catch hangs on a loaded 2-core machine.
BOOT_TIMEOUT = float(os.environ.get("ORRERY_DEBIAN_BOOT_TIMEOUT", "900"))
STEP_TIMEOUT = 300

XK_RETURN = 0xff0d
# Character cells fbcon draws nothing in: NUL, space and the font's no-break space.
BLANK_CHARS = {0x00, 0x20, 0xff}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def readme_dropin():
    with open(os.path.join(SOURCE_ROOT, "README.md")) as f:
        m = re.search(r"^<!-- test: vm drop-in\b[^\n]*-->\n```ini\n(.*?)^```", f.read(), re.M | re.S)
    return m.group(1) if m else None


def install_key(disk, pub):
    """The test's key as root's authorized_keys, written into the VM's disk before its first boot."""
    script = disk + ".debugfs"
    with open(script, "w") as f:
        f.write(f"mkdir /root/.ssh\nrm /root/.ssh/authorized_keys\nwrite {pub} /root/.ssh/authorized_keys\n"
                "set_inode_field /root/.ssh mode 040700\nset_inode_field /root/.ssh uid 0\n"
                "set_inode_field /root/.ssh gid 0\nset_inode_field /root/.ssh/authorized_keys mode 0100600\n"
                "set_inode_field /root/.ssh/authorized_keys uid 0\nset_inode_field /root/.ssh/authorized_keys gid 0\n")
    subprocess.run(["debugfs", "-w", "-f", script, disk], capture_output=True, timeout=60)
    os.unlink(script)


class VncClient:
    """vnc-probe (libvncclient) connected to orrery-vnc, answering one command per line."""

    def __init__(self, port):
        self.proc = subprocess.Popen([VNC_PROBE, f"127.0.0.1:{port}"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.greeting = self.proc.stdout.readline().strip()

    def cmd(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def type(self, text):
        """Presses and releases each key: lowercase letters, digits and space are their own keysyms."""
        for keysym in [XK_RETURN if c == "\n" else ord(c) for c in text]:
            self.cmd(f"key {keysym:#x} 1")
            self.cmd(f"key {keysym:#x} 0")

    def close(self):
        self.proc.kill()
        self.proc.wait()


def tty1_cells(run):
    """tty1's visible text as the guest holds it (/dev/vcsa1): rows, cols, the cursor (row, col), the characters."""
    r = run("base64 -w0 /dev/vcsa1")
    data = base64.b64decode(r.stdout.strip()) if r.returncode == 0 else b""
    if len(data) < 4 or len(data) < 4 + 2 * data[0] * data[1]:
        return None
    rows, cols = data[0], data[1]
    return rows, cols, (data[3], data[2]), data[4:4 + 2 * rows * cols:2]


def vnc_screen(vnc, path):
    """The VNC client's picture (width, height, XRGB8888 with the X byte zeroed), after what the server sent."""
    updates = vnc.cmd("info").split()[-1]
    vnc.cmd(f"wait-update {updates} 1000")
    r = vnc.cmd(f"dump {path}").split()
    if len(r) != 3 or r[0] != "ok":
        return None
    with open(path, "rb") as f:
        fb = bytearray(f.read())
    fb[3::4] = bytes(len(fb) // 4)
    return int(r[1]), int(r[2]), bytes(fb)


def lit_cells(screen, rows, cols):
    """The character cells with any pixel other than the background (the most common colour)."""
    width, height, fb = screen
    cw, ch = width // cols, height // rows
    bg = collections.Counter(fb[i:i + 4] for i in range(0, len(fb), 4 * 97)).most_common(1)[0][0]
    blank, lit = bg * cw, set()
    for y in range(rows * ch):
        line = fb[y * width * 4:(y + 1) * width * 4]
        for c in range(cols):
            if line[c * cw * 4:(c + 1) * cw * 4] != blank:
                lit.add((y // ch, c))
    return lit


def tty1_on_screen(run, vnc, path, expect, last):
    """The screen when it shows tty1 cell for cell (the cursor's cell aside) and tty1 shows 'expect', else None."""
    cells, screen = tty1_cells(run), vnc_screen(vnc, path)
    if not cells or not screen:
        return None
    rows, cols, cursor, chars = cells
    text = [chars[r * cols:(r + 1) * cols].decode("latin-1").rstrip() for r in range(rows)]
    want = {(r, c) for r in range(rows) for c in range(cols) if chars[r * cols + c] not in BLANK_CHARS}
    wrong = (want ^ lit_cells(screen, rows, cols)) - {cursor}
    last["detail"] = (f"tty1 {rows}x{cols} on {screen[0]}x{screen[1]}: {len(want)} characters, {len(wrong)} cells "
                      f"wrong {sorted(wrong)[:8]}\n" + "\n".join(line for line in text if line))
    return screen if not wrong and any(expect in line for line in text) else None


def write_png(path, screen):
    width, height, fb = screen
    raw = bytearray()
    for y in range(height):
        line, rgb = fb[y * width * 4:(y + 1) * width * 4], bytearray(width * 3)
        rgb[0::3], rgb[1::3], rgb[2::3] = line[2::4], line[1::4], line[0::4]
        raw += b"\0" + rgb

    def chunk(kind, data):
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", width.to_bytes(4, "big") + height.to_bytes(4, "big") +
                                               bytes([8, 2, 0, 0, 0]))
                + chunk(b"IDAT", zlib.compress(bytes(raw))) + chunk(b"IEND", b""))


tap = Tap()
session = open_session(tap, "debian")
bus = session.env["DBUS_SESSION_BUS_ADDRESS"]
vnc = None
try:
    # The image where an installed orrery-vm finds it; the VM's own disk and the repository below ~/vm.
    guest_dir = os.path.join(session.prefix, "share", "orrery", "guest", "debian")
    os.makedirs(guest_dir, exist_ok=True)
    for f in ("vmlinux", "initrd.img"):
        shutil.copyfile(os.path.join(DEBIAN_DIR, f), os.path.join(guest_dir, f))
    vm_dir = os.path.join(session.home, "vm")
    os.makedirs(vm_dir, exist_ok=True)
    disk = os.path.join(vm_dir, f"{VM}.img")
    repo = os.path.join(vm_dir, "debian-repo.img")
    subprocess.run(["cp", "--sparse=always", os.path.join(DEBIAN_DIR, "debian.img"), disk], check=True, timeout=600)
    shutil.copyfile(os.path.join(DEBIAN_DIR, "repo.img"), repo)

    r = subprocess.run(["debugfs", "-R", "ls /etc/ssh", disk], capture_output=True, text=True, timeout=60)
    tap.check(r.returncode == 0 and "sshd_config" in r.stdout and "ssh_host_" not in r.stdout,
              "the image ships no ssh host key (each VM makes its own)", r.stdout[-1000:] + r.stderr)

    key = os.path.join(session.root, "id_ed25519")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True, timeout=60)
    install_key(disk, key + ".pub")

    port = free_port()
    session.write_config(f".config/orrery/vm/{VM}.conf",
                         "guest = debian\n"
                         f"drive = file={disk}\n"
                         f"drive = file={repo},id=repo,readonly=on\n"
                         f"net = user,hostfwd=tcp:127.0.0.1:{port}-:22,restrict=on\n")
    dropin = readme_dropin()
    tap.check(dropin is not None, "README.md has the drop-in block")
    d = os.path.join(session.home, ".config", "systemd", "user", f"{UNIT}.d")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "disk-net.conf"), "w") as f:
        f.write((dropin or "").replace("orrery-vm@demo", UNIT[:-len(".service")]))
    session.systemctl("daemon-reload")

    start = time.monotonic()
    r = session.systemctl("start", UNIT, check=False, timeout=300)
    tap.check(r.returncode == 0, "systemctl --user start orrery-vm@deb (guest = debian)",
              r.stderr + session.log_text()[-2000:])

    def serial_text():
        try:
            return scrollback(bus, VM).decode(errors="replace")
        except Exception:  # not on the bus yet, or gone: poll again
            return ""
    login = wait_for(lambda: "orrery login:" in serial_text(), BOOT_TIMEOUT, interval=1)
    if not tap.check(login, "the serial scrollback reaches Debian's 'orrery login:'",
                     serial_text()[-2000:] + session.log_text()[-2000:]):
        raise RuntimeError("Debian did not boot")
    say(f"login: after {time.monotonic() - start:.0f} s")
    r = session.systemctl("status", "--no-pager", UNIT, check=False)
    tap.check(r.returncode == 0 and "active (running)" in r.stdout, "systemctl --user status shows it running",
              r.stdout)

    ssh = ["ssh", "-p", str(port), "-i", key, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
           "-o", f"UserKnownHostsFile={session.root}/known_hosts", "-o", "ConnectTimeout=30", "root@127.0.0.1"]

    def run(command, timeout=STEP_TIMEOUT):
        return subprocess.run(ssh + [command], capture_output=True, text=True, timeout=timeout)
    # sshd may come up a little after the getty (and after the VM's first boot made its host keys).
    r = wait_for(lambda: (lambda r: r if r.returncode == 0 else None)(run("uname -r", 120)), STEP_TIMEOUT,
                 interval=2)
    tap.check(r is not None, "ssh through the config's forward on 127.0.0.1 reaches the guest")
    r = run("ls /etc/ssh")
    keys = set(re.findall(r"ssh_host_\w+_key\.pub", r.stdout))
    tap.check({"ssh_host_ed25519_key.pub", "ssh_host_ecdsa_key.pub", "ssh_host_rsa_key.pub"} <= keys,
              "the VM made its own ssh host keys on its first boot", r.stdout + r.stderr)

    # tty1's keyboard through orrery-vnc and a real VNC client: `root` + Enter logs in there without a password.
    vnc_port = free_port()
    session.write_config(f".config/orrery/vnc/{VM}.conf", f"ORRERY_VNC_ARGS=--listen 127.0.0.1:{vnc_port}\n")
    r = session.systemctl("start", VNC_UNIT, check=False)
    tap.check(r.returncode == 0, "systemctl --user start orrery-vnc@deb", r.stderr + session.log_text()[-1500:])
    vnc = wait_for(lambda: (lambda c: c if c.greeting.startswith("connected") else c.close())(VncClient(vnc_port)),
                   60, interval=0.5)
    tap.check(vnc is not None, "a libvncclient client connects to orrery-vnc")
    tty1 = ("for p in /proc/[0-9]*; do [ \"$(readlink $p/fd/0)\" = /dev/tty1 ] && cat $p/comm; done; true")
    getty = wait_for(lambda: re.search(r"^agetty$", run(tty1).stdout, re.M), STEP_TIMEOUT, interval=2)
    tap.check(getty is not None, "a getty waits on tty1")
    dump, last = os.path.join(session.root, "screen.xrgb"), {"detail": "no VNC client"}
    shots = os.environ.get("ORRERY_SCREENSHOT_DIR")
    login_screen = vnc and wait_for(lambda: tty1_on_screen(run, vnc, dump, "orrery login:", last), STEP_TIMEOUT,
                                    interval=2)
    tap.check(login_screen, "tty1's login prompt is on the VNC client's screen, lit exactly where tty1 has text",
              last["detail"])
    if login_screen and shots:
        write_png(os.path.join(shots, "debian-tty1-login.png"), login_screen)
    if vnc:
        vnc.type("root\n")
    shell = wait_for(lambda: re.search(r"^bash$", run(tty1).stdout, re.M), STEP_TIMEOUT, interval=2)
    tap.check(shell is not None, "root + Enter typed through VNC logs in on tty1 (a shell runs there)",
              run(tty1).stdout)
    shell_screen = vnc and wait_for(lambda: tty1_on_screen(run, vnc, dump, "root@orrery:~#", last), STEP_TIMEOUT,
                                    interval=2)
    tap.check(shell_screen and login_screen and shell_screen[2] != login_screen[2],
              "the screen follows the login: the shell's prompt is on it, cell for cell", last["detail"])
    if shell_screen and shots:
        write_png(os.path.join(shots, "debian-tty1-shell.png"), shell_screen)
    if vnc:
        vnc.type("touch typedontty1\n")
    made = wait_for(lambda: "typedontty1" in run("ls /root").stdout.split(), STEP_TIMEOUT,
                    interval=2)
    tap.check(made, "a command typed through VNC runs in that shell", run("ls /root").stdout)
    session.systemctl("stop", VNC_UNIT, check=False)

    # The host-local repository: a read-only drive with a file: source; the mirror is never asked.
    apt = ("apt-get -o Dir::Etc::SourceList=/etc/apt/sources.list.d/orrery-local.list -o Dir::Etc::SourceParts=- "
           "-o Acquire::Languages=none")
    r = run("mkdir -p /mnt/repo && mount -o ro LABEL=debian-repo /mnt/repo && "
            "echo 'deb [trusted=yes] file:/mnt/repo ./' >/etc/apt/sources.list.d/orrery-local.list && "
            f"{apt} update && DEBIAN_FRONTEND=noninteractive {apt} install -y hello && hello")
    tap.check(r.returncode == 0 and "Hello, world!" in r.stdout,
              "apt-get install hello from the host-local repository (read-only drive, file: source)",
              r.stdout[-2000:] + r.stderr[-2000:])
    run("umount /mnt/repo")

    # systemctl --user stop presses the power button: Debian shuts down cleanly.
    r = session.systemctl("stop", UNIT, check=False, timeout=180)
    tap.check(r.returncode == 0 and session.unit_property(UNIT, "ActiveState") == "inactive"
              and session.unit_property(UNIT, "Result") == "success",
              "systemctl --user stop orrery-vm@deb ends the unit cleanly",
              r.stderr + session.unit_property(UNIT, "Result") + session.log_text()[-2000:])
    r = subprocess.run(["dumpe2fs", "-h", disk], capture_output=True, text=True, timeout=60)
    tap.check(re.search(r"Filesystem state:\s+clean\n", r.stdout) is not None and "needs_recovery" not in r.stdout,
              "Debian powered off: the ext4 root is clean (no journal replay at the next boot)", r.stdout[-2000:])
except Exception as e:  # a harness failure is a failed test with its reason, never a skip
    tap.check(False, "the session runs", str(e))
finally:
    if vnc:
        vnc.close()
    session.close()
tap.finish()

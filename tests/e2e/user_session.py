"""A private systemd user manager with its own session bus, and Orrery installed for it.

The end-to-end tests do what a user does: install Orrery under ~/.local by
running README.md's install block as written (through sh, so README and
test cannot drift apart), then use systemctl --user, busctl --user and the
programs themselves. The "user" here is a fresh home directory with its own
XDG_RUNTIME_DIR, a `systemd --user` started by the harness, and the session
bus that Debian's dbus-user-session units give that manager.

Where that home lives: never below /tmp or /var/tmp, which the units'
PrivateTmp=yes hides from them (status=203/EXEC). It is
$ORRERY_E2E_DIR, else ${XDG_CACHE_HOME:-~/.cache}/orrery/e2e-<hash of the
build tree's path> of the user running the tests, kept between runs so the
install is incremental (delete it to reclaim the space); a clone's location
does not matter. Only the README's build directory name is mapped: `build`
in its meson commands means that home's build directory, and `meson setup`
gets -Dtests=false (the installed copy needs no tests) and --reconfigure
when the directory exists.

Two things differ from a login session, and the harness says so on stdout:
  - systemd refuses to run a user instance unless /run/systemd/system exists
    (the mark of a system booted with systemd). When PID 1 is not systemd the
    harness creates that directory and removes it afterwards, only if it
    created it.
  - The fresh home is not the user's home in the password database, which
    dbus-daemon uses to find ~/.local/share/dbus-1/services; the harness
    sets XDG_DATA_HOME to it.
  - Without journald, the manager is told (~/.config/systemd/user.conf) to
    hand its services' stdout and stderr to its own, which the harness keeps
    in a log file; on a real system those lines are in the journal.
"""
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SOURCE_ROOT = os.environ.get("ORRERY_SOURCE_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD_ROOT = os.environ.get("ORRERY_BUILD_ROOT") or os.path.join(SOURCE_ROOT, "build")
SYSTEMD = "/lib/systemd/systemd"
RUN_SYSTEMD_SYSTEM = "/run/systemd/system"


README = os.path.join(SOURCE_ROOT, "README.md")
HIDDEN_FROM_UNITS = ("/tmp", "/var/tmp")  # PrivateTmp=yes


def e2e_base():
    """Where the e2e user's home and install live: visible to the units, or a clear error."""
    base = os.environ.get("ORRERY_E2E_DIR")
    if not base:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        key = hashlib.sha256(os.path.realpath(BUILD_ROOT).encode()).hexdigest()[:12]
        base = os.path.join(cache, "orrery", f"e2e-{key}")
    base = os.path.realpath(base)
    for hidden in HIDDEN_FROM_UNITS:
        if base == hidden or base.startswith(hidden + "/"):
            raise RuntimeError(f"the e2e install would live in {base}, below {hidden}, which the units' "
                               "PrivateTmp=yes hides from them (status=203/EXEC): set ORRERY_E2E_DIR (or "
                               "XDG_CACHE_HOME/HOME) to a directory outside /tmp and /var/tmp")
    return base


def readme_block(tag):
    """The shell block README.md marks with <!-- e2e: TAG ... -->, as written."""
    with open(README) as f:
        text = f.read()
    m = re.search(r"^<!-- e2e: " + re.escape(tag) + r"\b[^\n]*-->\n```sh\n(.*?)^```", text, re.M | re.S)
    if not m:
        raise RuntimeError(f"README.md has no block marked <!-- e2e: {tag} -->")
    return m.group(1)


# Maps the README's build directory to the e2e one (see the module's docstring); the rest runs as written.
README_SHELL_PRELUDE = r"""
set -e
meson() {
        n=$#
        while [ "$n" -gt 0 ]; do
                a=$1
                shift
                n=$((n - 1))
                [ "$a" = build ] && a=$E2E_BUILD
                set -- "$@" "$a"
        done
        if [ "$1" = setup ]; then
                shift
                [ -d "$E2E_BUILD/meson-private" ] && set -- --reconfigure "$@"
                command meson setup "$@" -Dtests=false
        else
                command meson "$@"
        fi
}
"""


def say(text):
    """A TAP comment: shown with the test's output, never mistaken for a result."""
    for line in str(text).splitlines() or [""]:
        print(f"# {line}", flush=True)


def wait_for(predicate, timeout, interval=0.05):
    """Polls predicate until it returns something true or timeout seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


class UserSession:
    def __init__(self, name="e2e"):
        # The installation (~/.local) is shared by the e2e tests, which run one
        # at a time, and rebuilt incrementally; everything else is per session.
        self.base = e2e_base()
        self.home = os.path.join(self.base, "home")
        self.prefix = os.path.join(self.home, ".local")
        self.build = os.path.join(self.base, "build")
        os.makedirs(self.home, exist_ok=True)
        for state in (".config", ".cache", os.path.join(".local", "state")):
            shutil.rmtree(os.path.join(self.home, state), ignore_errors=True)
        self.root = tempfile.mkdtemp(prefix=f"{name}-", dir=self.base)
        self.runtime = os.path.join(self.root, "run")
        self.log_path = os.path.join(self.root, "systemd.log")
        os.makedirs(self.runtime, mode=0o700)
        self.manager = None
        self.created_run_systemd = False
        self.env = {
            "PATH": f"{self.prefix}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": self.home,
            "USER": os.environ.get("USER", "root"),
            "LANG": "C.UTF-8",
            "XDG_RUNTIME_DIR": self.runtime,
            # dbus-daemon looks for ~/.local/share/dbus-1/services with ~ from the password database, not
            # $HOME; this session's home is not the real user's, so name it (the manager passes it on).
            "XDG_DATA_HOME": os.path.join(self.home, ".local", "share"),
            "DBUS_SESSION_BUS_ADDRESS": f"unix:path={self.runtime}/bus",
        }

    # -- installing ---------------------------------------------------------

    def run_readme(self, tag, timeout=1800):
        """Runs README.md's block TAG through sh in the source tree, as this session's user."""
        block = readme_block(tag)
        env = dict(self.env, E2E_BUILD=self.build)
        # The guest kernel comes from the real user's cache (built once per machine).
        real_cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        env.setdefault("ORRERY_GUEST_CACHE_DIR", os.environ.get("ORRERY_GUEST_CACHE_DIR") or
                       os.path.join(real_cache, "orrery", "guest"))
        r = subprocess.run(["sh", "-c", README_SHELL_PRELUDE + block], cwd=SOURCE_ROOT, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"README.md's '{tag}' block failed (exit {r.returncode}):\n{block}\n"
                               f"{r.stdout[-4000:]}")
        return r.stdout

    def install(self):
        """README.md's install block, as written (the manager must be up: it ends in daemon-reload)."""
        self.run_readme("install")
        for path in (os.path.join(self.prefix, "bin", "orrery-vm"),
                     os.path.join(self.prefix, "share", "systemd", "user", "orrery-vm@.service")):
            if not os.path.exists(path):
                raise RuntimeError(f"README.md's install block did not install {path}")

    # -- the manager ----------------------------------------------------------

    def start(self):
        if not os.path.isdir(RUN_SYSTEMD_SYSTEM):
            os.makedirs(RUN_SYSTEMD_SYSTEM)
            self.created_run_systemd = True
            say(f"PID 1 is not systemd: created {RUN_SYSTEMD_SYSTEM} so that systemd accepts a user instance; "
                "it is removed at the end")
        config = os.path.join(self.home, ".config", "systemd")
        os.makedirs(config, exist_ok=True)
        with open(os.path.join(config, "user.conf"), "w") as f:
            f.write("# No journald here: services' output goes to the manager's log file.\n"
                    "[Manager]\nDefaultStandardOutput=inherit\nDefaultStandardError=inherit\n")
        say(f"no journald: services' stdout and stderr are kept in {self.log_path}")

        self.log = open(self.log_path, "ab")
        self.manager = subprocess.Popen([SYSTEMD, "--user", "--log-target=console"], env=self.env, cwd=self.home, stdin=subprocess.DEVNULL,
                                        stdout=self.log, stderr=self.log, start_new_session=True)
        state = wait_for(lambda: self.systemctl("is-system-running", check=False).stdout.strip() in
                         ("running", "degraded") and os.path.exists(f"{self.runtime}/bus"), timeout=60)
        if not state:
            raise RuntimeError(f"systemd --user did not come up:\n{self.log_text()[-4000:]}")

    def close(self):
        if self.manager and self.manager.poll() is None:
            # Stops every unit the way logout does, then the manager exits.
            self.systemctl("exit", check=False)
            try:
                self.manager.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.manager.pid, signal.SIGKILL)
                self.manager.wait()
        if getattr(self, "log", None):
            self.log.close()
        if self.created_run_systemd:
            try:
                os.rmdir(RUN_SYSTEMD_SYSTEM)
            except OSError as e:
                say(f"could not remove {RUN_SYSTEMD_SYSTEM}: {e}")
        if os.environ.get("ORRERY_E2E_KEEP"):
            say(f"kept {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)
            for state in (".config", ".cache", os.path.join(".local", "state")):
                shutil.rmtree(os.path.join(self.home, state), ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- doing what a user does ---------------------------------------------------

    def run(self, args, check=True, timeout=120, **kwargs):
        r = subprocess.run(args, env=kwargs.pop("env", self.env), capture_output=True, text=True, timeout=timeout,
                           **kwargs)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: exit {r.returncode}\n{r.stdout}{r.stderr}")
        return r

    def popen(self, args, **kwargs):
        return subprocess.Popen(args, env=kwargs.pop("env", self.env), **kwargs)

    def systemctl(self, *args, check=True, timeout=120):
        return self.run(["systemctl", "--user", *args], check=check, timeout=timeout)

    def busctl(self, *args, check=True, timeout=60):
        return self.run(["busctl", "--user", *args], check=check, timeout=timeout)

    def unit_property(self, unit, prop):
        return self.systemctl("show", unit, "-p", prop, "--value", check=False).stdout.strip()

    def main_pid(self, unit):
        pid = self.unit_property(unit, "MainPID")
        return int(pid) if pid.isdigit() else 0

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def write_config(self, relative, text):
        path = os.path.join(self.home, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        return path


def open_session(tap, name):
    """Installs and starts a session, or ends the TAP run with the reason."""
    session = UserSession(name)
    try:
        session.start()
        t0 = time.monotonic()
        session.install()
        say(f"README.md's install block installed into {session.prefix} in {time.monotonic() - t0:.1f} s")
    except Exception as e:
        tap.check(False, "a private systemd --user session with Orrery installed comes up", str(e))
        session.close()
        tap.finish()
        sys.exit(1)
    return session


def documented_exposure():
    """Unit name -> the exposure docs/security.md records for it (its table's first two columns)."""
    scores = {}
    with open(os.path.join(SOURCE_ROOT, "docs", "security.md")) as f:
        for line in f:
            cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
            if len(cells) >= 2 and cells[0].endswith(".service"):
                try:
                    scores[cells[0]] = float(cells[1])
                except ValueError:
                    pass
    return scores


def check_security(session, tap, units):
    """systemd-analyze --user security for each unit: printed, and no worse than documented."""
    documented = documented_exposure()
    for unit in units:
        r = session.run(["systemd-analyze", "--user", "security", "--no-pager", unit], check=False)
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\S+)", r.stdout)
        template = re.sub(r"@[^.]*\.service$", "@.service", unit)
        limit = documented.get(template)
        if m:
            say(f"systemd-analyze --user security {unit}: {m.group(1)} {m.group(2)}")
        tap.check(m is not None and limit is not None and float(m.group(1)) <= limit,
                  f"{template}: exposure {m.group(1) if m else '?'} is no worse than docs/security.md's {limit}",
                  r.stdout[-1500:] + r.stderr)

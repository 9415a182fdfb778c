/* SPDX-License-Identifier: MIT */

#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "macro.h"
#include "test-bus.h"

#define MAX_CHILDREN 64

static pid_t children[MAX_CHILDREN];
static char tmpdir[PATH_MAX];
static char config_path[PATH_MAX + 32];
static char socket_path[PATH_MAX + 32];
static char bus_address[PATH_MAX + 64];
static pid_t daemon_pid;
static bool atexit_installed;

uint64_t test_now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

unsigned test_count_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        unsigned n = 0;

        if (!d)
                return 0;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n - 1; /* the directory's own fd */
}

static void track_child(pid_t pid) {
        for (size_t i = 0; i < MAX_CHILDREN; i++)
                if (children[i] == 0) {
                        children[i] = pid;
                        return;
                }
}

static void untrack_child(pid_t pid) {
        for (size_t i = 0; i < MAX_CHILDREN; i++)
                if (children[i] == pid)
                        children[i] = 0;
}

/* Async-signal-safe: used by the watchdog too. */
static void kill_everything(void) {
        for (size_t i = 0; i < MAX_CHILDREN; i++)
                if (children[i] > 0) {
                        kill(children[i], SIGKILL);
                        (void) waitpid(children[i], NULL, 0);
                        children[i] = 0;
                }
        if (tmpdir[0]) {
                unlink(socket_path);
                unlink(config_path);
                rmdir(tmpdir);
                tmpdir[0] = 0;
        }
        daemon_pid = 0;
}

static void on_watchdog(int sig) {
        static const char msg[] = "Bail out! watchdog: the test took too long\n";

        (void) !write(STDOUT_FILENO, msg, sizeof(msg) - 1);
        kill_everything();
        _exit(1);
}

void test_watchdog(unsigned seconds) {
        signal(SIGALRM, on_watchdog);
        alarm(seconds);
}

/* Forks; the child dies with us and gets keep_fd without O_CLOEXEC. */
static pid_t spawn(const char *const argv[], int keep_fd) {
        pid_t parent = getpid(), pid;

        fflush(stdout);
        fflush(stderr);
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                        _exit(127);
                if (keep_fd >= 0 && fcntl(keep_fd, F_SETFD, 0) < 0)
                        _exit(127);
                execvp(argv[0], (char *const *) argv);
                _exit(127);
        }
        track_child(pid);
        return pid;
}

/* Reads until '\n' (exclusive) or EOF, at most timeout_ms in total. */
static ssize_t read_line(int fd, char *buf, size_t size, unsigned timeout_ms) {
        uint64_t end = test_now_usec() + (uint64_t) timeout_ms * 1000;
        size_t n = 0;

        while (n + 1 < size) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                uint64_t now = test_now_usec();
                ssize_t k;

                if (now >= end)
                        return -ETIMEDOUT;
                if (poll(&p, 1, (int) ((end - now) / 1000) + 1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (p.revents == 0)
                        continue;
                k = read(fd, buf + n, 1);
                if (k < 0) {
                        if (errno == EINTR || errno == EAGAIN)
                                continue;
                        return -errno;
                }
                if (k == 0 || buf[n] == '\n')
                        break;
                n++;
        }
        buf[n] = 0;
        return (ssize_t) n;
}

static void cleanup_at_exit(void) {
        kill_everything();
}

const char *test_bus_start(void) {
        _cleanup_close_ int rfd = -1, wfd = -1;
        char fdarg[32], cfgarg[PATH_MAX + 64];
        const char *tmp = getenv("TMPDIR");
        FILE *f;
        int p[2];
        pid_t pid;

        if (!atexit_installed) {
                atexit(cleanup_at_exit);
                atexit_installed = true;
        }

        snprintf(tmpdir, sizeof(tmpdir), "%s/orrery-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(tmpdir)) {
                tmpdir[0] = 0;
                return NULL;
        }
        /* Reachable by the other users test_fake_vm_start_as() runs fakes as. */
        (void) chmod(tmpdir, 0755);
        snprintf(config_path, sizeof(config_path), "%s/bus.conf", tmpdir);
        snprintf(socket_path, sizeof(socket_path), "%s/bus", tmpdir);

        f = fopen(config_path, "we");
        if (!f)
                return NULL;
        fprintf(f,
                "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
                " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
                "<busconfig>\n"
                "  <type>session</type>\n"
                "  <listen>unix:path=%s</listen>\n"
                "  <auth>EXTERNAL</auth>\n"
                "  <policy context=\"default\">\n"
                "    <allow user=\"*\"/>\n"
                "    <allow send_destination=\"*\" eavesdrop=\"true\"/>\n"
                "    <allow eavesdrop=\"true\"/>\n"
                "    <allow own=\"*\"/>\n"
                "  </policy>\n"
                "</busconfig>\n",
                socket_path);
        if (fclose(f) != 0)
                return NULL;

        if (pipe2(p, O_CLOEXEC) < 0)
                return NULL;
        rfd = p[0];
        wfd = p[1];
        snprintf(fdarg, sizeof(fdarg), "--print-address=%d", wfd);
        snprintf(cfgarg, sizeof(cfgarg), "--config-file=%s", config_path);
        pid = spawn((const char *const[]) { "dbus-daemon", cfgarg, "--nofork", fdarg, NULL }, wfd);
        if (pid < 0)
                return NULL;
        daemon_pid = pid;
        wfd = safe_close(wfd);

        if (read_line(rfd, bus_address, sizeof(bus_address), 5000) <= 0) {
                kill_everything();
                return NULL;
        }
        return bus_address;
}

void test_bus_stop(void) {
        kill_everything();
}

static const char *fake_vm_path(void) {
        static char path[PATH_MAX];
        const char *e = getenv("ORRERY_FAKE_VM");
        char self[PATH_MAX];
        ssize_t n;

        if (e && *e)
                return e;
        n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n < 0)
                return "orrery-fake-vm";
        self[n] = 0;
        snprintf(path, sizeof(path), "%s/orrery-fake-vm", dirname(self));
        return path;
}

pid_t test_fake_vm_start(const char *name, const char *const *extra_args) {
        return test_fake_vm_start_as(name, (uid_t) -1, extra_args);
}

pid_t test_fake_vm_start_as(const char *name, uid_t uid, const char *const *extra_args) {
        _cleanup_close_ int rfd = -1, wfd = -1;
        char namearg[128], addrarg[sizeof(bus_address) + 16], fdarg[32], ready[8], uidarg[32], gidarg[32];
        const char *argv[40];
        size_t n = 0;
        int p[2];
        pid_t pid;

        if (!bus_address[0] || pipe2(p, O_CLOEXEC) < 0)
                return -EINVAL;
        rfd = p[0];
        wfd = p[1];
        snprintf(namearg, sizeof(namearg), "--name=%s", name);
        snprintf(addrarg, sizeof(addrarg), "--address=%s", bus_address);
        snprintf(fdarg, sizeof(fdarg), "--ready-fd=%d", wfd);
        if (uid != (uid_t) -1) {
                snprintf(uidarg, sizeof(uidarg), "--reuid=%u", (unsigned) uid);
                snprintf(gidarg, sizeof(gidarg), "--regid=%u", (unsigned) uid);
                argv[n++] = "setpriv";
                argv[n++] = uidarg;
                argv[n++] = gidarg;
                argv[n++] = "--clear-groups";
        }
        argv[n++] = fake_vm_path();
        argv[n++] = namearg;
        argv[n++] = addrarg;
        argv[n++] = fdarg;
        for (size_t i = 0; extra_args && extra_args[i] && n < ELEMENTSOF(argv) - 1; i++)
                argv[n++] = extra_args[i];
        argv[n] = NULL;

        pid = spawn(argv, wfd);
        if (pid < 0)
                return pid;
        wfd = safe_close(wfd);

        /* One byte once it owns the name; EOF if it died first. */
        if (read_line(rfd, ready, sizeof(ready), 5000) < 0 || ready[0] != 'R') {
                test_fake_vm_kill(pid);
                return -EIO;
        }
        return pid;
}

void test_fake_vm_kill(pid_t pid) {
        if (pid <= 0)
                return;
        kill(pid, SIGCONT);
        kill(pid, SIGKILL);
        (void) waitpid(pid, NULL, 0);
        untrack_child(pid);
}

int test_fake_vm_stop(pid_t pid) {
        int status;

        if (pid <= 0)
                return -1;
        kill(pid, SIGTERM);
        if (waitpid(pid, &status, 0) < 0)
                return -1;
        untrack_child(pid);
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool test_fake_vm_wait(pid_t pid, unsigned timeout_ms) {
        uint64_t end = test_now_usec() + (uint64_t) timeout_ms * 1000;

        while (test_now_usec() < end) {
                pid_t r = waitpid(pid, NULL, WNOHANG);

                if (r == pid) {
                        untrack_child(pid);
                        return true;
                }
                usleep(5000);
        }
        return false;
}

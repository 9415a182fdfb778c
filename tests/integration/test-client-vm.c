/* SPDX-License-Identifier: MIT */

/*
 * liborrery-client against a real, booted orrery-vm on a private
 * dbus-daemon: discovery, attach and properties, the read-only framebuffer
 * and the probe's pattern in it, Update callbacks, keyboard and tablet
 * input seen by the guest's evdev devices, serial0 through a registered
 * socket, Pause/Resume, and a streaming client killed with SIGKILL.
 *
 * Everything runs on one sd-event loop: the library's bus connection, the
 * VM's serial console (its stdout, read continuously so the emulator never
 * blocks on it) and the pipes of the helper process. Waits are bounded
 * loops on a condition; the timeouts are generous and only catch hangs.
 *
 * The VM gets a pipe as stdin (commands are typed into it). Every process
 * started here dies with the test: PR_SET_PDEATHSIG, SIGKILL at exit, and a
 * watchdog that bails out before meson's timeout.
 *
 * Run as "test-client-vm --stream-child ADDRESS" it is the helper of the
 * last check: a client that attaches, registers serial0, watches the
 * console and reads until it is killed.
 */

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include "macro.h"
#include "orrery-client.h"
#include "probe/pattern.h"
#include "io-util.h"
#include "tap.h"

#define VM_NAME "clienttest"
#define VM_BUS_NAME ORRERY_VM_BUS_NAME_PREFIX VM_NAME
#define VM_PATH ORRERY_VM_PATH_PREFIX VM_NAME
#define WIDTH 1024u
#define HEIGHT 768u
#define PATTERN_SEED 5u
#define PATTERN_COMMAND "orrery-guest-probe pattern 5\n" /* the same seed */
#define READY_MARKER "orrery-guest: ready"

#define BOOT_TIMEOUT_MS_DEFAULT (180u * 1000u)
#define COMMAND_TIMEOUT_MS (60u * 1000u)
#define EVENT_TIMEOUT_MS (20u * 1000u)
#define BUS_TIMEOUT_MS (10u * 1000u)
#define WATCHDOG_SECONDS 540u     /* meson's timeout is 600 s */
#define STREAM_MAX (64u << 20)    /* console bytes kept; far beyond what the test produces */
#define STREAM_CHILD_REPORT 4096u /* the helper says "streaming" after this many bytes */

/* CHECK formats its message before evaluating the condition; these
 * conditions run the event loop, so evaluate first, then describe. */
#define CHECK_LATE(cond, ...)                           \
        ({                                              \
                bool _ok = (cond);                      \
                CHECK(_ok, __VA_ARGS__);                \
                _ok;                                    \
        })

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

static sd_event *event;

/* Runs the loop until cond holds (evaluated once per round) or ms pass. */
#define RUN_UNTIL(cond, ms)                                                     \
        ({                                                                      \
                uint64_t _end = now_usec() + (uint64_t) (ms) * 1000;            \
                bool _run_ok;                                                   \
                while (!(_run_ok = (cond)) && now_usec() < _end)                \
                        (void) sd_event_run(event, 20 * 1000);                  \
                _run_ok;                                                        \
        })

/* ---------------------------------------------------------------------- */
/* Processes: everything we start dies with us                             */

static pid_t main_pid;
static volatile pid_t bus_pid, vm_pid, child_pid;

/* Async-signal-safe: the watchdog and the signal handlers use it too. */
static void kill_everything(void) {
        pid_t pids[3] = { child_pid, vm_pid, bus_pid };

        if (getpid() != main_pid)
                return;
        child_pid = vm_pid = bus_pid = 0;
        for (size_t i = 0; i < ELEMENTSOF(pids); i++)
                if (pids[i] > 0) {
                        kill(pids[i], SIGKILL);
                        (void) waitpid(pids[i], NULL, 0);
                }
}

static void on_fatal_signal(int sig) {
        static const char msg_alarm[] = "Bail out! watchdog: the test took too long\n";
        static const char msg_term[] = "Bail out! terminated\n";

        if (sig == SIGALRM)
                (void) !write(STDOUT_FILENO, msg_alarm, sizeof(msg_alarm) - 1);
        else
                (void) !write(STDOUT_FILENO, msg_term, sizeof(msg_term) - 1);
        kill_everything();
        _exit(1);
}

/*
 * Forks and execs argv; the child dies with us. stdin_fd/stdout_fd (if >= 0)
 * become its stdin/stdout, keep_fd (if >= 0) survives the exec as is.
 */
static pid_t spawn(const char *const argv[], int stdin_fd, int stdout_fd, int keep_fd) {
        pid_t parent = getpid(), pid;

        fflush(stdout);
        fflush(stderr);
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                        _exit(127);
                /* We ignore SIGPIPE; the child gets the default back (sigaction: async-signal-safe). */
                (void) sigaction(SIGPIPE, &(struct sigaction) { .sa_handler = SIG_DFL }, NULL);
                if (stdin_fd >= 0 && dup2(stdin_fd, STDIN_FILENO) < 0)
                        _exit(127);
                if (stdout_fd >= 0 && dup2(stdout_fd, STDOUT_FILENO) < 0)
                        _exit(127);
                if (keep_fd >= 0 && fcntl(keep_fd, F_SETFD, 0) < 0)
                        _exit(127);
                execv(argv[0], (char *const *) argv);
                _exit(127);
        }
        return pid;
}

/*
 * Waits up to timeout_ms for pid to exit, running the loop meanwhile; true
 * once it is reaped, with its exit status (-1 if a signal ended it).
 */
static bool reap(pid_t pid, unsigned timeout_ms, int *ret_code) {
        uint64_t end = now_usec() + (uint64_t) timeout_ms * 1000;
        int status;

        for (;;) {
                pid_t r = waitpid(pid, &status, WNOHANG);

                if (r == pid) {
                        if (ret_code)
                                *ret_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
                        return true;
                }
                if (r < 0 || now_usec() >= end)
                        return false;
                (void) sd_event_run(event, 10 * 1000);
        }
}

/* ---------------------------------------------------------------------- */
/* Streams: everything read from an fd, kept, searched                      */

typedef struct Stream {
        const char *label;
        int fd;
        sd_event_source *source;
        char *data;
        size_t size, allocated;
        size_t mark; /* end of the last match */
        bool eof;
} Stream;

static int on_stream_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Stream *st = userdata;

        for (;;) {
                ssize_t n;

                if (st->allocated - st->size < 65536) {
                        size_t k = MAX(st->allocated * 2, (size_t) 256 * 1024);
                        char *t;

                        if (k > STREAM_MAX)
                                goto done; /* far beyond anything expected: stop reading */
                        t = realloc(st->data, k);
                        if (!t)
                                goto done;
                        st->data = t;
                        st->allocated = k;
                }
                n = read(fd, st->data + st->size, st->allocated - st->size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        goto done;
                }
                if (n == 0)
                        goto done;
                st->size += (size_t) n;
        }
done:
        st->eof = true;
        (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        return 0;
}

/* Takes fd (closed on failure too). */
static int stream_open(Stream *st, const char *label, int fd) {
        int flags = fcntl(fd, F_GETFL), r;

        *st = (Stream) { .label = label, .fd = -1 };
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
                r = -errno;
                safe_close(fd);
                return r;
        }
        r = sd_event_add_io(event, &st->source, fd, EPOLLIN, on_stream_io, st);
        if (r < 0) {
                safe_close(fd);
                return r;
        }
        st->fd = fd;
        return 0;
}

static void stream_close(Stream *st) {
        st->source = sd_event_source_disable_unref(st->source);
        st->fd = safe_close(st->fd);
        free(st->data);
        st->data = NULL;
        st->size = st->allocated = st->mark = 0;
}

/* Where needle occurs in the stream at or after 'from'; -1 if it does not (yet). */
static ssize_t stream_find(const Stream *st, const char *needle, size_t from) {
        const char *p;

        if (from >= st->size)
                return -1;
        p = memmem(st->data + from, st->size - from, needle, strlen(needle));
        return p ? p - st->data : -1;
}

/*
 * Runs the loop until needle appears after 'since' (the stream's mark if
 * SIZE_MAX); moves the mark past it. Returns the match's offset or -1.
 */
static ssize_t stream_wait(Stream *st, const char *needle, size_t since, unsigned timeout_ms) {
        uint64_t end = now_usec() + (uint64_t) timeout_ms * 1000;
        size_t len = strlen(needle), from = since == SIZE_MAX ? st->mark : since;

        for (;;) {
                ssize_t at = stream_find(st, needle, from);

                if (at >= 0) {
                        st->mark = (size_t) at + len;
                        return at;
                }
                /* Only new bytes need looking at next time. */
                if (st->size >= len && st->size - len + 1 > from)
                        from = st->size - len + 1;
                if (st->eof || now_usec() >= end)
                        return -1;
                (void) sd_event_run(event, 50 * 1000);
        }
}

/* The last n bytes of a stream as TAP diagnostics. */
static void stream_diag(const Stream *st, size_t n) {
        size_t start = st->size > n ? st->size - n : 0;
        bool line_start = true;

        printf("# --- last %zu bytes of %s ---\n", st->size - start, st->label);
        for (size_t i = start; i < st->size; i++) {
                char ch = st->data[i];

                if (line_start)
                        fputs("#   ", stdout);
                line_start = ch == '\n';
                if (ch == '\r')
                        continue;
                if (ch == '\n' || ch == '\t' || (ch >= 0x20 && ch < 0x7f))
                        putchar(ch);
                else
                        putchar('?');
        }
        if (!line_start)
                putchar('\n');
}

/* ---------------------------------------------------------------------- */
/* The bus and the VM                                                       */

static Stream console = { .fd = -1 }; /* the VM's stdout: the serial console */
static int vm_stdin = -1;   /* typed into the guest's console */
static char bus_address[1024];

static int bus_start(void) {
        _cleanup_close_ int rfd = -1, wfd = -1;
        char fdarg[32];
        uint64_t end = now_usec() + (uint64_t) BUS_TIMEOUT_MS * 1000;
        size_t n = 0;
        int p[2];
        pid_t pid;

        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        rfd = p[0];
        wfd = p[1];
        snprintf(fdarg, sizeof(fdarg), "--print-address=%d", wfd);
        pid = spawn((const char *const[]) { "/usr/bin/dbus-daemon", "--session", "--nofork", fdarg, NULL }, -1,
                    -1, wfd);
        if (pid < 0)
                return (int) pid;
        bus_pid = pid;
        wfd = safe_close(wfd);

        /* One line: the address. */
        while (n + 1 < sizeof(bus_address)) {
                struct pollfd pfd = { .fd = rfd, .events = POLLIN };
                uint64_t now = now_usec();
                ssize_t k;

                if (now >= end)
                        return -ETIMEDOUT;
                if (poll(&pfd, 1, (int) ((end - now) / 1000) + 1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                k = read(rfd, bus_address + n, 1);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return -EIO;
                if (bus_address[n] == '\n')
                        break;
                n++;
        }
        bus_address[n] = 0;
        return n > 0 ? 0 : -EIO;
}

static void bus_stop(void) {
        pid_t pid = bus_pid;

        if (pid <= 0)
                return;
        bus_pid = 0;
        kill(pid, SIGTERM);
        (void) waitpid(pid, NULL, 0);
}

static int vm_start(const char *vm_path) {
        _cleanup_close_ int in_r = -1, out_w = -1;
        int in[2], out[2], r;
        pid_t pid;

        if (pipe2(in, O_CLOEXEC) < 0)
                return -errno;
        in_r = in[0];
        vm_stdin = in[1];
        if (pipe2(out, O_CLOEXEC) < 0)
                return -errno;
        out_w = out[1];
        r = stream_open(&console, "the serial console (orrery-vm's stdout)", out[0]);
        if (r < 0)
                return r;

        pid = spawn((const char *const[]) { vm_path, "--name", VM_NAME, "--bus", bus_address, "--display",
                                            "1024x768", NULL },
                    in_r, out_w, -1);
        if (pid < 0)
                return (int) pid;
        vm_pid = pid;
        return 0;
}

/* Types a command on the serial console; waits for needle in what follows. */
static bool console_command(const char *cmd, const char *needle, unsigned timeout_ms) {
        size_t since = console.size;

        if (loop_write(vm_stdin, cmd, strlen(cmd)) < 0 || loop_write(vm_stdin, "\n", 1) < 0)
                return false;
        return stream_wait(&console, needle, since, timeout_ms) >= 0;
}

/* ---------------------------------------------------------------------- */
/* What the library told us                                                */

typedef struct Seen {
        unsigned added, removed;  /* of VM_NAME, by discovery */
        unsigned appeared, vanished;
        unsigned n_state;
        char state[32];
        char states[256];         /* every state_changed, comma-separated */
        unsigned n_updates;
        bool rows[HEIGHT];        /* lines covered by Updates since the last reset */
        unsigned n_rows;
        bool rect_outside;        /* an Update rectangle beyond the framebuffer */
        unsigned n_chardev_changed;
        unsigned n_errors;
        char error[256];

        unsigned n_replies;
        int reply_r;
} Seen;

static Seen seen;

static void on_vm_added(OrreryVmWatch *w, const char *name, void *userdata) {
        if (strcmp(name, VM_NAME) == 0)
                seen.added++;
}

static void on_vm_removed(OrreryVmWatch *w, const char *name, void *userdata) {
        if (strcmp(name, VM_NAME) == 0)
                seen.removed++;
}

static void on_appeared(OrreryVm *vm, void *userdata) {
        seen.appeared++;
}

static void on_vanished(OrreryVm *vm, void *userdata) {
        seen.vanished++;
}

static void on_state_changed(OrreryVm *vm, const char *state, void *userdata) {
        size_t n = strlen(seen.states);

        seen.n_state++;
        snprintf(seen.state, sizeof(seen.state), "%s", state);
        snprintf(seen.states + n, sizeof(seen.states) - n, "%s%s", n ? "," : "", state);
}

static void on_console_update(OrreryVm *vm, uint32_t id, const OrreryRect *rects, size_t n, void *userdata) {
        if (id != 0)
                return;
        seen.n_updates++;
        for (size_t i = 0; i < n; i++) {
                const OrreryRect *r = rects + i;

                if (r->width == 0 || r->height == 0 || r->x >= WIDTH || r->y >= HEIGHT ||
                    r->width > WIDTH - r->x || r->height > HEIGHT - r->y) {
                        seen.rect_outside = true;
                        continue;
                }
                for (uint32_t y = r->y; y < r->y + r->height; y++)
                        if (!seen.rows[y]) {
                                seen.rows[y] = true;
                                seen.n_rows++;
                        }
        }
}

static void on_chardev_changed(OrreryVm *vm, const char *id, void *userdata) {
        seen.n_chardev_changed++;
}

static void on_error(OrreryVm *vm, const char *method, const sd_bus_error *error, void *userdata) {
        seen.n_errors++;
        snprintf(seen.error, sizeof(seen.error), "%s: %s: %s", method, error ? error->name : "?",
                 error ? error->message : "?");
}

static void on_action_reply(OrreryVm *vm, int r, const sd_bus_error *error, void *userdata) {
        seen.n_replies++;
        seen.reply_r = r;
}

static const OrreryVmCallbacks vm_callbacks = {
        .appeared = on_appeared,
        .vanished = on_vanished,
        .state_changed = on_state_changed,
        .console_update = on_console_update,
        .chardev_changed = on_chardev_changed,
        .error = on_error,
};

static void reset_updates(void) {
        seen.n_updates = 0;
        seen.n_rows = 0;
        seen.rect_outside = false;
        memset(seen.rows, 0, sizeof(seen.rows));
}

/* serial0's Owner as the library last heard it; NULL if it does not know the device. */
static const char *serial_owner(OrreryVm *vm) {
        OrreryChardevInfo info;

        if (orrery_vm_get_chardev(vm, "serial0", &info) < 0)
                return NULL;
        return info.owner;
}

static bool serial_owner_is(OrreryVm *vm, const char *owner) {
        const char *o = serial_owner(vm);

        return o && strcmp(o, owner) == 0;
}

/* Console1.Watchers, read over the library's own connection (the library does not follow it). */
static uint32_t console_watchers(OrreryClient *c) {
        uint32_t v = UINT32_MAX;

        (void) sd_bus_get_property_trivial(orrery_client_get_bus(c), VM_BUS_NAME, VM_PATH "/Console/0",
                                           "org.orrery.Console1", "Watchers", NULL, 'u', &v);
        return v;
}

/* ---------------------------------------------------------------------- */
/* The checks                                                              */

static bool check_discovery_and_attach(OrreryClient *c, OrreryVmWatch *watch, const char *vm_path,
                                       unsigned boot_timeout_ms, OrreryVm **ret_vm) {
        _cleanup_(orrery_strv_freep) char **names = NULL;
        OrreryVm *vm = NULL;
        bool listed = false;
        int r;

        CHECK_LATE(RUN_UNTIL(orrery_vm_watch_is_ready(watch), BUS_TIMEOUT_MS) && seen.added == 0,
                   "discovery has its initial list, without " VM_NAME " (added %u)", seen.added);

        r = vm_start(vm_path);
        if (!CHECK_LATE(r >= 0, "orrery-vm starts (%s)", strerror(r < 0 ? -r : 0)))
                return false;

        CHECK_LATE(RUN_UNTIL(seen.added > 0 || console.eof, BUS_TIMEOUT_MS * 3) && seen.added == 1,
                   "discovery sees " VM_NAME " appear (vm_added %u times)", seen.added);

        if (!CHECK_LATE(stream_wait(&console, READY_MARKER, 0, boot_timeout_ms) >= 0,
                        "the guest reaches '" READY_MARKER "'")) {
                stream_diag(&console, 3000);
                return false;
        }

        r = orrery_client_list_vms(c, &names);
        for (size_t i = 0; r >= 0 && names[i]; i++)
                listed = listed || strcmp(names[i], VM_NAME) == 0;
        CHECK(r >= 0 && listed, "orrery_client_list_vms lists " VM_NAME " (r=%d)", r);

        r = orrery_vm_attach(c, VM_NAME, &vm_callbacks, NULL, 0, &vm);
        if (!CHECK_LATE(r >= 0 && orrery_vm_is_ready(vm), "orrery_vm_attach (synchronous) succeeds and the VM is ready (%s)",
                   strerror(r < 0 ? -r : 0)))
                return false;

        CHECK(strcmp(orrery_vm_get_state(vm) ?: "", "running") == 0, "State is \"running\" (%s)",
              orrery_vm_get_state(vm) ?: "(null)");
        CHECK_EQ_U64(orrery_vm_get_memory_bytes(vm), 512ULL << 20, "MemoryBytes is 512 MiB");
        CHECK_EQ_U64(orrery_vm_get_vcpus(vm), 1, "VCPUs is 1");
        CHECK(orrery_vm_get_uuid(vm) && strlen(orrery_vm_get_uuid(vm)) == 36, "UUID is an RFC 4122 string (%s)",
              orrery_vm_get_uuid(vm) ?: "(null)");
        CHECK(orrery_vm_get_mouse_is_absolute(vm), "Mouse1.IsAbsolute is true once the guest drives the tablet");
        CHECK(orrery_vm_get_n_consoles(vm) == 1 && serial_owner_is(vm, "") &&
                      orrery_vm_get_chardev(vm, "guest_agent", &(OrreryChardevInfo) {}) == 0,
              "one console, serial0 (free) and guest_agent (%zu consoles, %zu chardevs)",
              orrery_vm_get_n_consoles(vm), orrery_vm_get_n_chardevs(vm));
        CHECK_EQ_U64(console_watchers(c), 1, "attaching watches the console (Watchers is 1)");

        *ret_vm = vm;
        return true;
}

static void check_framebuffer(OrreryClient *c, OrreryVm *vm) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        OrreryFramebuffer fb = {};
        uintptr_t page = (uintptr_t) sysconf(_SC_PAGESIZE), start, end;
        size_t mismatches = 0, since;
        ssize_t at;
        bool lines;
        int r, r_ro, r_rw, e_rw;

        r = orrery_vm_get_framebuffer(vm, 0, &fb);
        if (!CHECK_LATE(r >= 0 && fb.width == WIDTH && fb.height == HEIGHT && fb.format == ORRERY_FORMAT_XRGB8888 &&
                           fb.bytes_per_pixel == 4 && fb.stride >= WIDTH * 4,
                   "the library maps console 0: %ux%u, stride %u, format 0x%08x (r=%d)", fb.width, fb.height,
                   fb.stride, fb.format, r))
                return;

        /* The library's mapping cannot be made writable: the memfd is sealed (F_SEAL_FUTURE_WRITE). */
        start = (uintptr_t) fb.data & ~(page - 1);
        end = ((uintptr_t) fb.data + (uintptr_t) fb.stride * fb.height + page - 1) & ~(page - 1);
        r_ro = mprotect((void *) start, end - start, PROT_READ);
        r_rw = mprotect((void *) start, end - start, PROT_READ | PROT_WRITE);
        e_rw = errno;
        if (r_rw == 0)
                (void) mprotect((void *) start, end - start, PROT_READ);
        CHECK(r_ro == 0 && r_rw < 0, "mprotect(PROT_WRITE) of the library's framebuffer mapping fails (%s), "
              "mprotect(PROT_READ) works", r_rw < 0 ? strerror(e_rw) : "it succeeded");

        /* The same for the fd itself: no writable shared mapping of it. */
        r = sd_bus_call_method(orrery_client_get_bus(c), VM_BUS_NAME, VM_PATH "/Console/0", "org.orrery.Console1",
                               "GetFramebuffer", &error, &reply, NULL);
        if (r >= 0) {
                uint32_t w, h, stride, format;
                uint64_t offset;
                int fd;
                void *p;

                r = sd_bus_message_read(reply, "htuuuu", &fd, &offset, &w, &h, &stride, &format);
                if (r >= 0) {
                        p = mmap(NULL, (size_t) stride * h, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                        e_rw = errno;
                        CHECK(p == MAP_FAILED, "a writable shared mapping of the framebuffer fd fails (%s)",
                              p == MAP_FAILED ? strerror(e_rw) : "it succeeded");
                        if (p != MAP_FAILED)
                                (void) munmap(p, (size_t) stride * h);
                }
        }
        if (r < 0)
                CHECK(false, "GetFramebuffer over the library's connection (%s)", error.message ?: strerror(-r));

        /* The probe draws; the mapping shows exactly its pattern, and Updates cover the screen. */
        reset_updates();
        since = console.size;
        if (loop_write(vm_stdin, PATTERN_COMMAND, strlen(PATTERN_COMMAND)) < 0)
                return;
        at = stream_wait(&console, "orrery-probe: pattern drawn ", since, COMMAND_TIMEOUT_MS);
        if (!CHECK_LATE(at >= 0 && stream_wait(&console, "1024x768\r\n", (size_t) at, 1000) ==
                                      at + (ssize_t) strlen("orrery-probe: pattern drawn "),
                   "the probe says 'pattern drawn 1024x768'")) {
                stream_diag(&console, 1500);
                return;
        }

        for (uint32_t y = 0; y < HEIGHT; y++)
                for (uint32_t x = 0; x < WIDTH; x++) {
                        uint32_t have, want = orrery_pattern_pixel(x, y, WIDTH, HEIGHT, PATTERN_SEED) & 0xffffff;

                        memcpy(&have, fb.data + (size_t) y * fb.stride + (size_t) x * 4, 4);
                        have &= 0xffffff;
                        if (have != want) {
                                if (mismatches < 5)
                                        printf("#   pixel (%u,%u): have %06x, want %06x\n", x, y, have, want);
                                mismatches++;
                        }
                }
        CHECK(mismatches == 0, "the library's mapping equals the probe's pattern (seed 5) pixel for pixel "
              "(%zu of %u differ)", mismatches, WIDTH * HEIGHT);

        CHECK_LATE(RUN_UNTIL(seen.n_updates > 0, 10 * 1000), "a console_update callback arrives after the probe draws");
        lines = RUN_UNTIL(seen.n_rows == HEIGHT, 10 * 1000);
        CHECK(lines && !seen.rect_outside, "the Updates cover every line of the redrawn screen (%u of %u lines, "
              "%u callbacks)", seen.n_rows, HEIGHT, seen.n_updates);
}

static void check_input(OrreryVm *vm) {
        size_t since = console.size;
        ssize_t at;
        unsigned long n = 0;

        if (loop_write(vm_stdin, "orrery-guest-probe events &\n", strlen("orrery-guest-probe events &\n")) < 0)
                return;
        /* Wait for the whole line: the count may arrive in a later read than "listening ". */
        at = stream_wait(&console, "orrery-probe: listening ", since, COMMAND_TIMEOUT_MS);
        if (at >= 0 && stream_wait(&console, " devices", (size_t) at, COMMAND_TIMEOUT_MS) < 0)
                at = -1;
        if (at >= 0)
                n = strtoul(console.data + at + strlen("orrery-probe: listening "), NULL, 10);
        if (!CHECK_LATE(at >= 0 && n >= 2, "the probe listens on the keyboard and the tablet (%lu devices)", n)) {
                stream_diag(&console, 1500);
                return;
        }

        since = console.size;
        CHECK(orrery_vm_key_press(vm, KEY_B) >= 0 && orrery_vm_key_release(vm, KEY_B) >= 0,
              "orrery_vm_key_press/release(KEY_B) are sent");
        CHECK_LATE(stream_wait(&console, "type=1 code=48 value=1\r\n", since, EVENT_TIMEOUT_MS) >= 0,
                   "the guest sees KEY_B pressed (type=1 code=48 value=1)");
        CHECK_LATE(stream_wait(&console, "type=1 code=48 value=0\r\n", SIZE_MAX, EVENT_TIMEOUT_MS) >= 0,
                   "the guest sees KEY_B released (type=1 code=48 value=0)");

        since = console.size;
        CHECK(orrery_vm_mouse_set_abs_position(vm, 300, 400) >= 0, "orrery_vm_mouse_set_abs_position(300, 400) is sent");
        CHECK_LATE(stream_wait(&console, "type=3 code=0 value=300\r\n", since, EVENT_TIMEOUT_MS) >= 0,
                   "the guest sees ABS_X 300 (type=3 code=0 value=300)");
        CHECK_LATE(stream_wait(&console, "type=3 code=1 value=400\r\n", since, EVENT_TIMEOUT_MS) >= 0,
                   "the guest sees ABS_Y 400 (type=3 code=1 value=400)");
        CHECK(seen.n_errors == 0, "no input call failed (%.150s)", seen.n_errors ? seen.error : "none");

        if (!CHECK_LATE(console_command("kill %1; echo probe-$((2+2))-stopped", "probe-4-stopped\r\n",
                                        COMMAND_TIMEOUT_MS),
                        "the event probe is stopped"))
                stream_diag(&console, 1500);
}

static void check_serial_socket(OrreryClient *c, OrreryVm *vm) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        static const char cmd[] = "echo via-client-$((20+3))\n";
        const char *me = NULL;
        Stream sock = { .fd = -1 };
        int fd = -1, r;

        (void) sd_bus_get_unique_name(orrery_client_get_bus(c), &me);
        r = orrery_vm_chardev_register_sync(vm, "serial0", &fd, &error);
        if (!CHECK_LATE(r >= 0 && fd >= 0, "orrery_vm_chardev_register_sync(serial0) succeeds (%s)",
                   r < 0 ? (error.message ?: strerror(-r)) : "ok"))
                return;
        CHECK_LATE(RUN_UNTIL(serial_owner_is(vm, me ?: "?"), BUS_TIMEOUT_MS),
                   "serial0's Owner follows to our unique name (%s)", serial_owner(vm) ?: "(null)");

        r = stream_open(&sock, "the serial0 socket", fd);
        if (!CHECK_LATE(r >= 0, "watching the socket (%s)", strerror(r < 0 ? -r : 0)))
                return;
        r = loop_write(sock.fd, cmd, strlen(cmd));
        if (!CHECK_LATE(r >= 0 && stream_wait(&sock, "via-client-23\r\n", 0, COMMAND_TIMEOUT_MS) >= 0,
                        "a command written to the serial0 socket runs and 'via-client-23' comes back on it"))
                stream_diag(&sock, 1500);

        sd_bus_error_free(&error);
        r = orrery_vm_chardev_unregister_sync(vm, "serial0", &error);
        CHECK(r >= 0, "orrery_vm_chardev_unregister_sync(serial0) succeeds (%s)",
              r < 0 ? (error.message ?: strerror(-r)) : "ok");
        CHECK_LATE(RUN_UNTIL(serial_owner_is(vm, "") && sock.eof, BUS_TIMEOUT_MS),
                   "after Unregister serial0 is free (Owner \"%s\") and the socket sees EOF (%s)",
                   serial_owner(vm) ?: "(null)", sock.eof ? "yes" : "no");
        stream_close(&sock);
}

static void check_pause_resume(OrreryVm *vm) {
        unsigned replies;
        int r;

        replies = seen.n_replies;
        r = orrery_vm_action(vm, ORRERY_VM_ACTION_PAUSE, on_action_reply, NULL);
        CHECK_LATE(r >= 0 && RUN_UNTIL(seen.n_replies > replies && strcmp(seen.state, "paused") == 0, BUS_TIMEOUT_MS) &&
                           seen.reply_r == 0,
                   "Pause: the reply is success and state_changed says \"paused\" (states: %.120s)", seen.states);
        CHECK(strcmp(orrery_vm_get_state(vm) ?: "", "paused") == 0, "State is \"paused\" (%s)",
              orrery_vm_get_state(vm) ?: "(null)");

        replies = seen.n_replies;
        r = orrery_vm_action(vm, ORRERY_VM_ACTION_RESUME, on_action_reply, NULL);
        CHECK_LATE(r >= 0 && RUN_UNTIL(seen.n_replies > replies && strcmp(seen.state, "running") == 0, BUS_TIMEOUT_MS) &&
                           seen.reply_r == 0,
                   "Resume: the reply is success and state_changed says \"running\" (states: %.120s)", seen.states);
        CHECK(strcmp(orrery_vm_get_state(vm) ?: "", "running") == 0, "State is \"running\" (%s)",
              orrery_vm_get_state(vm) ?: "(null)");
        CHECK_LATE(console_command("echo resumed-$((3*3))", "resumed-9\r\n", COMMAND_TIMEOUT_MS),
                   "the guest answers on the console after Resume");
}

static void check_killed_client(OrreryClient *c, OrreryVm *vm) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_close_ int out_w = -1;
        static const char stream_cmd[] = "yes | head -n 20000; echo stream-$((6*7))-end\n";
        static const char after_cmd[] = "echo after-kill-$((5*5))\n";
        Stream child = { .fd = -1 }, sock = { .fd = -1 };
        const char *me = NULL;
        bool mid_stream, streaming;
        size_t since;
        int out[2], fd = -1, r;
        pid_t pid;

        if (!CHECK_LATE(pipe2(out, O_CLOEXEC) >= 0, "a pipe for the streaming client"))
                return;
        out_w = out[1];
        if (stream_open(&child, "the streaming client's stdout", out[0]) < 0)
                return;
        pid = spawn((const char *const[]) { "/proc/self/exe", "--stream-child", bus_address, NULL }, -1, out_w, -1);
        if (!CHECK_LATE(pid > 0, "the streaming client starts")) {
                stream_close(&child);
                return;
        }
        child_pid = pid;
        out_w = safe_close(out_w);

        if (!CHECK_LATE(stream_wait(&child, "registered\n", 0, BUS_TIMEOUT_MS * 3) >= 0,
                        "a second client process attaches, watches the console and registers serial0")) {
                stream_diag(&child, 1000);
                goto finish;
        }
        CHECK_LATE(RUN_UNTIL(!serial_owner_is(vm, "") && serial_owner(vm), BUS_TIMEOUT_MS),
                   "serial0's Owner is the other client (%s)", serial_owner(vm) ?: "(null)");
        CHECK_EQ_U64(console_watchers(c), 2, "the other client watches the console too (Watchers is 2)");
        r = orrery_vm_chardev_register_sync(vm, "serial0", &fd, &error);
        CHECK(r == -EBUSY, "our Register answers Busy meanwhile (r=%d, %s)", r, error.name ?: "no error");
        if (r >= 0)
                fd = safe_close(fd);
        sd_bus_error_free(&error);

        /* The guest streams ~40 KB (a few seconds at the UART's pace); we keep reading the console. */
        since = console.size;
        if (loop_write(vm_stdin, stream_cmd, strlen(stream_cmd)) < 0)
                goto finish;
        streaming = stream_wait(&child, "streaming\n", 0, COMMAND_TIMEOUT_MS) >= 0;
        mid_stream = stream_find(&console, "stream-42-end", since) < 0;
        kill(pid, SIGKILL);
        if (reap(pid, 10 * 1000, NULL))
                child_pid = 0;
        if (!CHECK_LATE(streaming && mid_stream, "the other client is killed with SIGKILL while serial0 streams to it "
                   "(it got >= %u bytes: %s; the stream still running: %s)",
                   STREAM_CHILD_REPORT, streaming ? "yes" : "no", mid_stream ? "yes" : "no"))
                stream_diag(&child, 1000);

        CHECK_LATE(RUN_UNTIL(serial_owner_is(vm, ""), BUS_TIMEOUT_MS),
                   "serial0 is free again after the kill (Owner \"%s\")", serial_owner(vm) ?: "(null)");
        if (!CHECK_LATE(stream_wait(&console, "stream-42-end\r\n", since, COMMAND_TIMEOUT_MS) >= 0,
                        "the guest's stream runs to its end on the console"))
                stream_diag(&console, 1500);
        CHECK(strcmp(orrery_vm_get_state(vm) ?: "", "running") == 0 && orrery_vm_is_ready(vm) && seen.vanished == 0,
              "the VM is still running (State %s, vanished %u)", orrery_vm_get_state(vm) ?: "(null)", seen.vanished);
        CHECK_LATE(RUN_UNTIL(console_watchers(c) == 1, BUS_TIMEOUT_MS),
                   "the killed client no longer watches (Watchers is %u)", console_watchers(c));

        (void) sd_bus_get_unique_name(orrery_client_get_bus(c), &me);
        r = orrery_vm_chardev_register_sync(vm, "serial0", &fd, &error);
        if (!CHECK_LATE(r >= 0 && fd >= 0, "our Register of serial0 now succeeds (%s)",
                   r < 0 ? (error.name ?: strerror(-r)) : "ok"))
                goto finish;
        CHECK_LATE(RUN_UNTIL(serial_owner_is(vm, me ?: "?"), BUS_TIMEOUT_MS), "serial0's Owner is us (%s)",
                   serial_owner(vm) ?: "(null)");
        if (stream_open(&sock, "the serial0 socket", fd) < 0)
                goto finish;
        r = loop_write(sock.fd, after_cmd, strlen(after_cmd));
        if (!CHECK_LATE(r >= 0 && stream_wait(&sock, "after-kill-25\r\n", 0, COMMAND_TIMEOUT_MS) >= 0,
                        "the guest answers a command through our serial0 socket"))
                stream_diag(&sock, 1500);
        stream_close(&sock);
        if (!CHECK_LATE(console_command("echo console-$((6*7))-alive", "console-42-alive\r\n", COMMAND_TIMEOUT_MS),
                        "the guest answers a command typed on the console"))
                stream_diag(&console, 1500);
        CHECK_LATE(RUN_UNTIL(serial_owner_is(vm, ""), BUS_TIMEOUT_MS),
                   "closing our socket frees serial0 (Owner \"%s\")", serial_owner(vm) ?: "(null)");

finish:
        if (child_pid > 0) {
                kill(child_pid, SIGKILL);
                if (reap(child_pid, 10 * 1000, NULL))
                        child_pid = 0;
        }
        stream_close(&child);
}

static void check_quit(OrreryVm *vm) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        unsigned removed = seen.removed;
        int r, code = -1;

        r = orrery_vm_action_sync(vm, ORRERY_VM_ACTION_QUIT, &error);
        CHECK(r >= 0, "Quit through the library (%s)", r < 0 ? (error.message ?: strerror(-r)) : "ok");
        CHECK_LATE(RUN_UNTIL(console.eof, 30 * 1000), "orrery-vm closes its console");
        if (reap(vm_pid, 30 * 1000, &code))
                vm_pid = 0;
        CHECK(vm_pid == 0 && code == 0, "orrery-vm exits 0 (%s, status %d)", vm_pid == 0 ? "exited" : "still running",
              code);
        CHECK_LATE(RUN_UNTIL(seen.removed > removed && seen.vanished > 0, BUS_TIMEOUT_MS),
                   "discovery sees " VM_NAME " disappear and the attached VM vanishes (removed %u, vanished %u)",
                   seen.removed, seen.vanished);
}

/* ---------------------------------------------------------------------- */
/* The streaming client (a process of its own, killed by the test)          */

static size_t child_bytes;
static bool child_reported;

static int on_child_socket(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        char buf[65536];
        ssize_t n;

        for (;;) {
                n = read(fd, buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return 0;
                if (n <= 0) {
                        (void) !write(STDOUT_FILENO, "eof\n", 4);
                        return sd_event_source_set_enabled(s, SD_EVENT_OFF);
                }
                child_bytes += (size_t) n;
                if (!child_reported && child_bytes >= STREAM_CHILD_REPORT) {
                        child_reported = true;
                        (void) !write(STDOUT_FILENO, "streaming\n", 10);
                }
        }
}

static int stream_child_main(const char *address) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        OrreryClient *c = NULL;
        OrreryVm *vm = NULL;
        int fd = -1, r;

        r = sd_event_new(&event);
        if (r >= 0)
                r = orrery_client_new(address, &c);
        if (r >= 0)
                r = orrery_client_attach_event(c, event, 0);
        if (r >= 0)
                r = orrery_vm_attach(c, VM_NAME, NULL, NULL, 0, &vm);
        if (r >= 0)
                r = orrery_vm_chardev_register_sync(vm, "serial0", &fd, &error);
        if (r >= 0)
                r = sd_event_add_io(event, NULL, fd, EPOLLIN, on_child_socket, NULL);
        if (r < 0) {
                dprintf(STDOUT_FILENO, "error: %s %s\n", strerror(-r), error.name ?: "");
                return 1;
        }
        (void) !write(STDOUT_FILENO, "registered\n", 11);

        /* Reads (and handles Update signals) until killed. */
        return sd_event_loop(event) < 0 ? 1 : 0;
}

/* ---------------------------------------------------------------------- */

int main(int argc, char *argv[]) {
        _cleanup_(orrery_vm_watch_freep) OrreryVmWatch *watch = NULL;
        const char *vm_path = getenv("ORRERY_VM"), *e;
        unsigned boot_timeout_ms = BOOT_TIMEOUT_MS_DEFAULT;
        OrreryClient *c = NULL;
        OrreryVm *vm = NULL;
        uint64_t t0 = now_usec();
        int r;

        if (argc == 3 && strcmp(argv[1], "--stream-child") == 0)
                return stream_child_main(argv[2]);

        setvbuf(stdout, NULL, _IOLBF, 0);
        main_pid = getpid();
        atexit(kill_everything);
        signal(SIGALRM, on_fatal_signal);
        signal(SIGTERM, on_fatal_signal);
        signal(SIGINT, on_fatal_signal);
        signal(SIGHUP, on_fatal_signal);
        signal(SIGPIPE, SIG_IGN);
        alarm(WATCHDOG_SECONDS);

        e = getenv("ORRERY_BOOT_TIMEOUT");
        if (e && atoi(e) > 0)
                boot_timeout_ms = (unsigned) atoi(e) * 1000u;

        if (!vm_path || !*vm_path) {
                printf("Bail out! ORRERY_VM is not set\n");
                return 1;
        }

        r = sd_event_new(&event);
        if (r < 0) {
                printf("Bail out! sd_event_new: %s\n", strerror(-r));
                return 1;
        }

        r = bus_start();
        if (!CHECK_LATE(r >= 0, "a private dbus-daemon starts (%.120s)", r < 0 ? strerror(-r) : bus_address))
                goto finish;

        r = orrery_client_new(bus_address, &c);
        if (r >= 0)
                r = orrery_client_attach_event(c, event, 0);
        if (r >= 0)
                r = orrery_vm_watch_new(c, &(OrreryVmWatchCallbacks) { on_vm_added, on_vm_removed }, NULL, &watch);
        if (!CHECK_LATE(r >= 0, "the client library connects to the private bus and starts discovery (%s)",
                   strerror(r < 0 ? -r : 0)))
                goto finish;

        if (!check_discovery_and_attach(c, watch, vm_path, boot_timeout_ms, &vm))
                goto finish;
        check_framebuffer(c, vm);
        check_input(vm);
        check_serial_socket(c, vm);
        check_pause_resume(vm);
        check_killed_client(c, vm);
        check_quit(vm);

finish:
        printf("# %.1f s\n", (double) (now_usec() - t0) / 1e6);
        vm = orrery_vm_detach(vm);
        watch = orrery_vm_watch_free(watch);
        c = orrery_client_unref(c);
        if (vm_pid > 0) {
                kill(vm_pid, SIGKILL);
                (void) waitpid(vm_pid, NULL, 0);
                vm_pid = 0;
        }
        bus_stop();
        stream_close(&console);
        vm_stdin = safe_close(vm_stdin);
        event = sd_event_unref(event);
        return tap_finish();
}

/* SPDX-License-Identifier: MIT */
/*
 * orrery-guest-agent: the protocol loop. Finds the virtio port named
 * org.qemu.guest_agent.0, reads requests from it and writes one response
 * per request, as QEMU's guest agent (QGA) does:
 *
 *   - requests are JSON objects, one after the other, with or without
 *     newlines between them; each is answered by one JSON object and "\n";
 *   - a 0xFF byte from the host throws away whatever was received of the
 *     current request (the host sends it before guest-sync-delimited to
 *     resynchronise); guest-sync-delimited's response starts with 0xFF;
 *   - input that is not JSON gets one "JSON parse error" response, and
 *     parsing starts again at the next '{' (further errors stay quiet
 *     until a request succeeds or a newline or 0xFF comes);
 *   - a request longer than AGENT_REQUEST_MAX gets an error and everything
 *     up to the next newline or 0xFF is thrown away.
 *
 * Started (and restarted if it ever exits) by init. It prints nothing on
 * the console: with --kmsg its few messages go to the kernel log at info
 * level, below the console's log level.
 *
 *   orrery-guest-agent [--kmsg] [--device PATH | --stdio] [--state-dir DIR]
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "orrery-guest.h"

#define PORT_NAME "org.qemu.guest_agent.0"
#define PORT_LINK_DIR "/dev/virtio-ports"
#define SYSFS_PORTS "/sys/class/virtio-ports"
#define STATE_DIR_DEFAULT "/run/orrery-guest-agent"
#define READ_CHUNK (64U << 10)
#define EXEC_POLL_MAX (3 * AGENT_EXEC_MAX)

static int kmsg_fd = -1;

void log_info(const char *format, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        va_start(ap, format);
        if (vasprintf(&msg, format, ap) < 0)
                msg = NULL;
        va_end(ap);
        if (!msg)
                return;
        if (kmsg_fd >= 0)
                dprintf(kmsg_fd, "<6>orrery-guest-agent: %s\n", msg);
        else
                fprintf(stderr, "orrery-guest-agent: %s\n", msg);
}

static void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}

static void sleep_ms(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* ----------------------------------------------------------- the state */

static char *state_path(Agent *agent, const char *name) {
        char *p = NULL;

        if (asprintf(&p, "%s/%s", agent->state_dir, name) < 0)
                return NULL;
        return p;
}

void agent_state_load(Agent *agent) {
        _cleanup_free_ char *counter = state_path(agent, "handle-counter");
        _cleanup_free_ char *frozen = state_path(agent, "frozen");
        _cleanup_fclose_ FILE *f = NULL;
        long long v;

        agent->next_handle = 1000;
        if (counter && (f = fopen(counter, "re")) && fscanf(f, "%lld", &v) == 1 && v >= 1000 && v < INT64_MAX / 2)
                agent->next_handle = v;
        agent->frozen = frozen && access(frozen, F_OK) == 0;
}

int agent_state_save(Agent *agent) {
        _cleanup_free_ char *counter = state_path(agent, "handle-counter");
        _cleanup_free_ char *tmp = state_path(agent, "handle-counter.tmp");
        _cleanup_free_ char *frozen = state_path(agent, "frozen");
        _cleanup_fclose_ FILE *f = NULL;

        if (!counter || !tmp || !frozen)
                return -ENOMEM;
        if (mkdir(agent->state_dir, 0700) < 0 && errno != EEXIST)
                return -errno;

        if (agent->frozen) {
                int fd = open(frozen, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

                if (fd < 0)
                        return -errno;
                close(fd);
        } else if (unlink(frozen) < 0 && errno != ENOENT)
                return -errno;

        f = fopen(tmp, "we");
        if (!f)
                return -errno;
        fprintf(f, "%lld\n", (long long) agent->next_handle);
        if (fflush(f) != 0 || ferror(f))
                return -EIO;
        if (rename(tmp, counter) < 0)
                return -errno;
        return 0;
}

/* ------------------------------------------------------------ the port */

/* Finds the port by name in sysfs (QEMU's name, as udev would link it) and gives it udev's link too. */
static char *port_find(void) {
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *de;

        if (access(PORT_LINK_DIR "/" PORT_NAME, F_OK) == 0)
                return strdup(PORT_LINK_DIR "/" PORT_NAME);

        d = opendir(SYSFS_PORTS);
        if (!d)
                return NULL;
        while ((de = readdir(d))) {
                _cleanup_free_ char *name_path = NULL, *dev = NULL;
                _cleanup_fclose_ FILE *f = NULL;
                char name[sizeof(PORT_NAME) + 1] = {};

                if (de->d_name[0] == '.')
                        continue;
                if (asprintf(&name_path, SYSFS_PORTS "/%s/name", de->d_name) < 0)
                        return NULL;
                f = fopen(name_path, "re");
                if (!f || !fgets(name, sizeof(name), f))
                        continue;
                name[strcspn(name, "\n")] = 0;
                if (!streq(name, PORT_NAME))
                        continue;
                if (asprintf(&dev, "/dev/%s", de->d_name) < 0)
                        return NULL;
                (void) mkdir(PORT_LINK_DIR, 0755);
                (void) symlink(dev, PORT_LINK_DIR "/" PORT_NAME);
                return TAKE_PTR(dev);
        }
        return NULL;
}

/* Opens the port, waiting (quietly, after one message) until it exists and is free. */
static int port_open(const char *device) {
        bool told = false;

        for (;;) {
                _cleanup_free_ char *path = device ? strdup(device) : port_find();
                int fd;

                if (path) {
                        fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
                        if (fd >= 0) {
                                log_info("listening on %s", path);
                                return fd;
                        }
                        if (!told)
                                log_info("cannot open %s (%s), retrying", path, strerror(errno));
                } else if (!told)
                        log_info("no virtio port named " PORT_NAME " yet, waiting for one");
                told = true;
                sleep_ms(1000);
        }
}

static int write_all(int fd, struct iovec *iov, int n) {
        while (n > 0) {
                ssize_t k = writev(fd, iov, n);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                while (n > 0 && (size_t) k >= iov->iov_len) {
                        k -= (ssize_t) iov->iov_len;
                        iov++;
                        n--;
                }
                if (n > 0) {
                        iov->iov_base = (uint8_t *) iov->iov_base + k;
                        iov->iov_len -= (size_t) k;
                }
        }
        return 0;
}

/* -------------------------------------------------------- the protocol */

typedef enum Skip {
        SKIP_NONE,
        SKIP_TO_OBJECT, /* after a parse error: up to the next '{' (or newline) */
        SKIP_TO_LINE,   /* after an oversize request: up to the next newline */
} Skip;

typedef struct Session {
        Agent *agent;
        int in_fd, out_fd;
        json_tokener *tok;
        size_t request_bytes; /* fed to tok for the current request */
        Skip skip;
        bool quiet;           /* a parse error was reported: do not report the rest of the garbage */
        int write_error;      /* the last failed write to the port, or 0 */
} Session;

static void session_send(Session *s, const Reply *reply, json_object *id) {
        static const uint8_t sentinel = 0xff;
        json_object *rsp = json_object_new_object();
        const char *text;
        size_t len;
        int r;

        if (reply->error_class) {
                json_object *error = json_object_new_object();

                json_object_object_add(error, "class", json_object_new_string(reply->error_class));
                json_object_object_add(error, "desc", json_object_new_string(reply->error_desc ?: "out of memory"));
                json_object_object_add(rsp, "error", error);
        } else
                json_object_object_add(rsp, "return", json_object_get(reply->result));
        if (id)
                json_object_object_add(rsp, "id", json_object_get(id));

        text = json_object_to_json_string_length(rsp, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
        if (!text) {
                text = "{\"error\":{\"class\":\"GenericError\",\"desc\":\"out of memory\"}}";
                len = strlen(text);
        }

        struct iovec iov[] = {
                { (void *) &sentinel, 1 },
                { (void *) text, len },
                { (void *) "\n", 1 },
        };
        r = reply->delimited ? write_all(s->out_fd, iov, 3) : write_all(s->out_fd, iov + 1, 2);
        if (r < 0)
                s->write_error = r;
        json_object_put(rsp);
}

static void session_error(Session *s, const char *format, ...) {
        Reply reply = { .error_class = "GenericError" };
        va_list ap;

        va_start(ap, format);
        if (vasprintf(&reply.error_desc, format, ap) < 0)
                reply.error_desc = NULL;
        va_end(ap);
        session_send(s, &reply, NULL);
        reply_clear(&reply);
}

static void session_reset(Session *s) {
        json_tokener_reset(s->tok);
        s->request_bytes = 0;
}

static void session_handle(Session *s, json_object *request) {
        Reply reply = {};
        json_object *id;

        dispatch_request(s->agent, request, &reply, &id);
        if (!reply.no_response)
                session_send(s, &reply, id);
        reply_clear(&reply);
}

/* Skips input as s->skip says; returns how many bytes of p to drop. */
static size_t session_skip(Session *s, const char *p, size_t n) {
        for (size_t i = 0; i < n; i++) {
                if (p[i] == '\n') {
                        s->skip = SKIP_NONE;
                        s->quiet = false;
                        return i + 1;
                }
                if (p[i] == '{' && s->skip == SKIP_TO_OBJECT) {
                        s->skip = SKIP_NONE;
                        return i;
                }
        }
        return n;
}

/* Feeds bytes that contain no 0xFF to the JSON tokener, handling each complete request. */
static void session_feed(Session *s, const char *p, size_t n) {
        while (n > 0) {
                enum json_tokener_error err;
                json_object *request;
                size_t take, used;

                if (s->skip != SKIP_NONE) {
                        size_t k = session_skip(s, p, n);

                        p += k;
                        n -= k;
                        continue;
                }
                /* Whitespace between requests does not count towards a request's size. */
                if (s->request_bytes == 0) {
                        while (n > 0 && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) {
                                if (*p == '\n')
                                        s->quiet = false;
                                p++, n--;
                        }
                        if (n == 0)
                                return;
                }

                take = MIN(n, AGENT_REQUEST_MAX - s->request_bytes);
                request = json_tokener_parse_ex(s->tok, p, (int) take);
                err = json_tokener_get_error(s->tok);
                if (err == json_tokener_continue) {
                        s->request_bytes += take;
                        p += take;
                        n -= take;
                        if (s->request_bytes >= AGENT_REQUEST_MAX) {
                                session_error(s, "request too large: more than %u bytes", AGENT_REQUEST_MAX);
                                session_reset(s);
                                s->skip = SKIP_TO_LINE;
                        }
                        continue;
                }

                used = MIN(json_tokener_get_parse_end(s->tok), take);
                if (err != json_tokener_success) {
                        if (!s->quiet)
                                session_error(s, "JSON parse error, %s", json_tokener_error_desc(err));
                        s->quiet = true;
                        session_reset(s);
                        s->skip = SKIP_TO_OBJECT;
                        /* Never stay on the same byte: the '{' that failed is skipped. */
                        used = MAX(used, (size_t) 1);
                        p += used;
                        n -= used;
                        continue;
                }

                session_reset(s);
                s->quiet = false;
                used = MAX(used, (size_t) 1);
                p += used;
                n -= used;
                session_handle(s, request);
                json_object_put(request);
        }
}

static void session_input(Session *s, const uint8_t *buf, size_t n) {
        while (n > 0) {
                const uint8_t *ff = memchr(buf, 0xff, n);
                size_t part = ff ? (size_t) (ff - buf) : n;

                session_feed(s, (const char *) buf, part);
                if (!ff)
                        return;
                /* The host's resynchronisation byte: forget the partial request. */
                session_reset(s);
                s->skip = SKIP_NONE;
                s->quiet = false;
                buf += part + 1;
                n -= part + 1;
        }
}

static int session_run(Session *s, bool stdio) {
        _cleanup_free_ uint8_t *buf = malloc(READ_CHUNK);

        if (!buf)
                return -ENOMEM;

        for (;;) {
                struct pollfd fds[1 + EXEC_POLL_MAX];
                size_t n_exec;
                ssize_t k;

                fds[0] = (struct pollfd) { .fd = s->in_fd, .events = POLLIN };
                n_exec = exec_poll_fds(s->agent, fds + 1, EXEC_POLL_MAX);
                if (poll(fds, 1 + n_exec, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                exec_poll_process(s->agent, fds + 1, n_exec);
                if (!fds[0].revents)
                        continue;

                k = read(s->in_fd, buf, READ_CHUNK);
                if (k < 0) {
                        if (errno == EINTR || errno == EAGAIN)
                                continue;
                        return -errno;
                }
                if (k == 0) {
                        if (stdio)
                                return 0;
                        /*
                         * No host on the other end (a virtio port reads as at end of
                         * file then, and polls as hung up). Whoever connects next
                         * starts afresh; until then check ten times a second, as QGA does.
                         */
                        session_reset(s);
                        s->skip = SKIP_NONE;
                        s->quiet = false;
                        sleep_ms(100);
                        continue;
                }
                session_input(s, buf, (size_t) k);
                if (s->write_error < 0)
                        return s->write_error;
        }
}

static void help(void) {
        printf("Usage: orrery-guest-agent [OPTIONS]\n\n"
               "A guest agent speaking QEMU's guest-agent protocol on the virtio port " PORT_NAME ".\n\n"
               "  --device PATH     the port to use (default: found by name in " SYSFS_PORTS ")\n"
               "  --stdio           talk on stdin and stdout instead, exit at end of input; refuses\n"
               "                    guest-shutdown, guest-fsfreeze-freeze/-thaw and guest-exec\n"
               "  --state-dir DIR   where state survives a restart (default: " STATE_DIR_DEFAULT ")\n"
               "  --kmsg            log to the kernel log (info level) instead of stderr\n"
               "  --help\n");
}

int agent_main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "device", required_argument, NULL, 'd' },
                { "stdio", no_argument, NULL, 's' },
                { "state-dir", required_argument, NULL, 't' },
                { "kmsg", no_argument, NULL, 'k' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        Agent agent = { .state_dir = STATE_DIR_DEFAULT };
        const char *device = NULL;
        bool stdio = false;
        int c, r;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
                switch (c) {
                case 'd':
                        device = optarg;
                        break;
                case 's':
                        /* On the build machine: never shut it down or freeze its file systems. */
                        stdio = true;
                        agent.block_system = true;
                        break;
                case 't':
                        agent.state_dir = optarg;
                        break;
                case 'k':
                        kmsg_fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC | O_NOCTTY);
                        break;
                case 'h':
                        help();
                        return 0;
                default:
                        return 2;
                }
        }
        if (optind < argc || (device && stdio)) {
                fprintf(stderr, "orrery-guest-agent: unexpected arguments (see --help)\n");
                return 2;
        }

        /* A host that goes away while we write must not kill the agent. */
        signal(SIGPIPE, SIG_IGN);
        agent_state_load(&agent);
        if (agent.frozen)
                log_info("file systems may still be frozen from before a restart: only thaw is allowed");

        for (;;) {
                Session s = { .agent = &agent };

                s.tok = json_tokener_new();
                if (!s.tok)
                        return 1;
                /* Strict JSON, valid UTF-8; the next request may follow in the same read. */
                json_tokener_set_flags(s.tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS |
                                                      JSON_TOKENER_VALIDATE_UTF8);

                if (stdio) {
                        s.in_fd = STDIN_FILENO;
                        s.out_fd = STDOUT_FILENO;
                } else
                        s.in_fd = s.out_fd = port_open(device);

                r = session_run(&s, stdio);
                json_tokener_free(s.tok);
                if (stdio)
                        break;
                safe_close(s.in_fd);
                log_info("the port failed (%s), opening it again", strerror(-r));
                sleep_ms(1000);
        }

        file_handles_free(&agent);
        exec_children_free(&agent);
        return r < 0 ? 1 : 0;
}

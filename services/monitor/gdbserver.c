/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gdbserver.h"
#include "log.h"
#include "macro.h"

#define GDBSERVER_DEFAULT_LISTEN "127.0.0.1:1234"
#define GDBSERVER_START_TIMEOUT_MS 10000

/* orrery-gdbstub next to this program (a build tree or the same bindir), else from PATH. */
static char *gdbstub_program(void) {
        char self[PATH_MAX], *slash, *path;
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

        if (n > 0) {
                self[n] = 0;
                slash = strrchr(self, '/');
                if (slash) {
                        /* build/services/monitor/orrery-monitor -> build/services/gdbstub/orrery-gdbstub */
                        if (asprintf(&path, "%.*s/../gdbstub/orrery-gdbstub", (int) (slash - self), self) >= 0) {
                                if (access(path, X_OK) == 0)
                                        return path;
                                free(path);
                        }
                        if (asprintf(&path, "%.*s/orrery-gdbstub", (int) (slash - self), self) >= 0) {
                                if (access(path, X_OK) == 0)
                                        return path;
                                free(path);
                        }
                }
        }
        return strdup("orrery-gdbstub");
}

int monitor_gdbserver_run(sd_bus *bus, const char *vm, const char *listen) {
        _cleanup_free_ char *program = gdbstub_program();
        const char *address = NULL;
        char log[4096];
        size_t used = 0;
        int pipefd[2];
        pid_t pid;

        if (!program)
                return log_oom(), 1;
        if (!listen)
                listen = GDBSERVER_DEFAULT_LISTEN;
        (void) sd_bus_get_address(bus, &address);
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return log_error_errno(errno, "cannot start orrery-gdbstub: %m"), 1;

        pid = fork();
        if (pid < 0) {
                close(pipefd[0]);
                close(pipefd[1]);
                return log_error_errno(errno, "cannot start orrery-gdbstub: %m"), 1;
        }
        if (pid == 0) {
                /* Its own session, stdin and stdout on /dev/null, stderr to us until it listens. */
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);
                (void) setsid();
                if (null >= 0) {
                        (void) dup2(null, STDIN_FILENO);
                        (void) dup2(null, STDOUT_FILENO);
                }
                (void) dup2(pipefd[1], STDERR_FILENO);
                /* Its stderr is our pipe, closed when the monitor exits: later messages must not kill it. */
                (void) signal(SIGPIPE, SIG_IGN);
                if (address && *address)
                        execlp(program, program, "--vm", vm, "--listen", listen, "--bus", address, NULL);
                else
                        execlp(program, program, "--vm", vm, "--listen", listen, NULL);
                fprintf(stderr, "cannot run %s: %s\n", program, strerror(errno));
                _exit(127);
        }
        close(pipefd[1]);

        /* Wait for "listening on" or for it to exit with its reason. */
        struct timespec start;
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (;;) {
                struct pollfd p = { .fd = pipefd[0], .events = POLLIN };
                struct timespec now;
                clock_gettime(CLOCK_MONOTONIC, &now);
                long elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
                if (elapsed >= GDBSERVER_START_TIMEOUT_MS || poll(&p, 1, (int) (GDBSERVER_START_TIMEOUT_MS - elapsed)) <= 0)
                        break;
                ssize_t n = read(pipefd[0], log + used, sizeof(log) - 1 - used);
                if (n <= 0)
                        break;
                used += (size_t) n;
                log[used] = 0;
                if (strstr(log, "listening on") || used >= sizeof(log) - 1)
                        break;
        }
        close(pipefd[0]);
        log[used] = 0;

        char *listening = strstr(log, "listening on");
        if (listening) {
                char *eol = strchr(listening, '\n'), *where = listening + strlen("listening on "), *space;
                if (eol)
                        *eol = 0;
                printf("orrery-gdbstub (pid %d) %s\n", (int) pid, listening);
                space = strchr(where, ' ');
                if (space)
                        *space = 0;
                printf("connect with: gdb-multiarch vmlinux -ex 'target remote %s'\n",
                       strncmp(where, "unix:", 5) == 0 ? where + 5 : where);
                return 0;
        }
        /* It failed (or hangs): make sure it is gone, and say why. */
        (void) kill(pid, SIGTERM);
        (void) waitpid(pid, NULL, 0);
        fprintf(stderr, "gdbserver failed: %s", used > 0 ? log : "orrery-gdbstub did not start\n");
        return 1;
}

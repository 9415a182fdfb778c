/* SPDX-License-Identifier: MIT */
/*
 * vnc-probe: a VNC client for orrery-vnc's tests and benchmark, built on
 * libvncclient (a real client that is not our code). It connects, keeps
 * its framebuffer up to date in XRGB8888 (0x00RRGGBB, little-endian), and
 * answers commands read line by line from stdin with one line on stdout:
 *
 *   info                      ok WIDTH HEIGHT UPDATES
 *   wait-update N MS          ok UPDATES once more than N updates arrived, else "timeout"
 *   dump FILE                 ok WIDTH HEIGHT: the framebuffer to FILE (stride WIDTH * 4)
 *   key KEYSYM 1|0            ok: a key event (KEYSYM in hex or decimal)
 *   pointer X Y MASK          ok: a pointer event
 *   flood-pointer N           ok: N pointer events as fast as the socket takes them
 *   watch X Y SECONDS         ok N: for SECONDS, prints "pixel T VALUE" (T in ns,
 *                             CLOCK_MONOTONIC) whenever an update changes pixel (X, Y),
 *                             then the number of updates
 *   quit
 *
 *   vnc-probe [--password-file FILE] [--encodings LIST] HOST:PORT
 *
 * Prints "connected WIDTH HEIGHT" first, or "error ..." and exits 1 when
 * the connection or the authentication fails.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rfb/rfbclient.h>

static uint64_t n_updates;
static char *password;
static int watch_x = -1, watch_y = -1;
static uint32_t watch_last;
static bool verbose;

static uint64_t now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static void quiet_log(const char *format, ...) {
        va_list ap;

        if (!verbose)
                return;
        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
}

static uint32_t pixel_at(rfbClient *client, int x, int y) {
        uint32_t v;

        if (x < 0 || y < 0 || x >= client->width || y >= client->height)
                return 0;
        memcpy(&v, client->frameBuffer + ((size_t) y * client->width + x) * 4, 4);
        return v & 0x00ffffff;
}

static void on_finished(rfbClient *client) {
        n_updates++;
        if (watch_x >= 0) {
                uint32_t v = pixel_at(client, watch_x, watch_y);

                if (v != watch_last) {
                        watch_last = v;
                        printf("pixel %" PRIu64 " %06x\n", now_ns(), v);
                }
        }
}

static char *get_password(rfbClient *client) {
        return strdup(password ? password : "");
}

/* Handles what the server sent within timeout_ms; false when the connection is gone. */
static bool pump(rfbClient *client, int timeout_ms) {
        int r = WaitForMessage(client, (unsigned) timeout_ms * 1000);

        if (r < 0)
                return false;
        if (r > 0 && !HandleRFBServerMessage(client))
                return false;
        return true;
}

static int run_command(rfbClient *client, char *line) {
        char cmd[32], arg[4096];
        long a, b, c;

        if (sscanf(line, "%31s", cmd) != 1)
                return 0;

        if (strcmp(cmd, "info") == 0)
                printf("ok %d %d %" PRIu64 "\n", client->width, client->height, n_updates);
        else if (strcmp(cmd, "wait-update") == 0 && sscanf(line, "%*s %ld %ld", &a, &b) == 2) {
                uint64_t deadline = now_ns() + (uint64_t) b * 1000000ULL;

                while (n_updates <= (uint64_t) a && now_ns() < deadline)
                        if (!pump(client, 50))
                                return -1;
                if (n_updates > (uint64_t) a)
                        printf("ok %" PRIu64 "\n", n_updates);
                else
                        printf("timeout\n");
        } else if (strcmp(cmd, "dump") == 0 && sscanf(line, "%*s %4095s", arg) == 1) {
                FILE *f = fopen(arg, "we");
                size_t size = (size_t) client->width * client->height * 4;

                if (!f || fwrite(client->frameBuffer, 1, size, f) != size) {
                        printf("error dump %s: %s\n", arg, strerror(errno));
                        if (f)
                                fclose(f);
                        return 0;
                }
                fclose(f);
                printf("ok %d %d\n", client->width, client->height);
        } else if (strcmp(cmd, "key") == 0 && sscanf(line, "%*s %li %ld", &a, &b) == 2) {
                printf(SendKeyEvent(client, (uint32_t) a, b ? TRUE : FALSE) ? "ok\n" : "error send\n");
        } else if (strcmp(cmd, "pointer") == 0 && sscanf(line, "%*s %ld %ld %ld", &a, &b, &c) == 3) {
                printf(SendPointerEvent(client, (int) a, (int) b, (int) c) ? "ok\n" : "error send\n");
        } else if (strcmp(cmd, "flood-pointer") == 0 && sscanf(line, "%*s %ld", &a) == 1) {
                for (long i = 0; i < a; i++) {
                        if (!SendPointerEvent(client, (int) (i % (client->width ?: 1)), (int) ((i / 7) % (client->height ?: 1)), 0)) {
                                printf("error send\n");
                                return 0;
                        }
                        /* Keep reading updates so the server never waits on us. */
                        if (i % 64 == 0 && !pump(client, 0))
                                return -1;
                }
                printf("ok\n");
        } else if (strcmp(cmd, "watch") == 0 && sscanf(line, "%*s %ld %ld %ld", &a, &b, &c) == 3) {
                uint64_t start = n_updates, deadline = now_ns() + (uint64_t) c * 1000000000ULL;

                watch_x = (int) a;
                watch_y = (int) b;
                watch_last = pixel_at(client, watch_x, watch_y);
                while (now_ns() < deadline)
                        if (!pump(client, 20))
                                return -1;
                watch_x = watch_y = -1;
                printf("ok %" PRIu64 "\n", n_updates - start);
        } else if (strcmp(cmd, "quit") == 0)
                return 1;
        else
                printf("error unknown command\n");
        return 0;
}

static char *read_password(const char *path) {
        char buf[256];
        FILE *f = fopen(path, "re");

        if (!f || !fgets(buf, sizeof(buf), f)) {
                if (f)
                        fclose(f);
                return NULL;
        }
        fclose(f);
        buf[strcspn(buf, "\r\n")] = 0;
        return strdup(buf);
}

int main(int argc, char *argv[]) {
        const char *encodings = "zrle raw", *target = NULL;
        char line[8192];
        size_t n_line = 0;
        rfbClient *client;
        char *colon;
        int r = 0;

        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--password-file") == 0 && i + 1 < argc) {
                        password = read_password(argv[++i]);
                        if (!password) {
                                printf("error cannot read %s\n", argv[i]);
                                return 2;
                        }
                } else if (strcmp(argv[i], "--encodings") == 0 && i + 1 < argc)
                        encodings = argv[++i];
                else if (strcmp(argv[i], "--verbose") == 0)
                        verbose = true;
                else
                        target = argv[i];
        }
        if (!target || !(colon = strrchr(target, ':'))) {
                fprintf(stderr, "usage: vnc-probe [--password-file FILE] [--encodings LIST] HOST:PORT\n");
                return 2;
        }
        setvbuf(stdout, NULL, _IOLBF, 0);
        rfbClientLog = quiet_log;
        rfbClientErr = quiet_log;

        client = rfbGetClient(8, 3, 4);
        if (!client)
                return 1;
        /* XRGB8888 little-endian, as the VM's framebuffer. */
        client->format.redShift = 16;
        client->format.greenShift = 8;
        client->format.blueShift = 0;
        client->appData.encodingsString = encodings;
        client->appData.enableJPEG = FALSE;
        client->appData.useRemoteCursor = FALSE;
        client->canHandleNewFBSize = TRUE;
        client->FinishedFrameBufferUpdate = on_finished;
        client->GetPassword = get_password;
        client->serverHost = strndup(target, (size_t) (colon - target));
        client->serverPort = atoi(colon + 1);
        if (client->serverHost[0] == '[') {
                /* [::1] -> ::1 */
                size_t n = strlen(client->serverHost);
                memmove(client->serverHost, client->serverHost + 1, n);
                client->serverHost[strcspn(client->serverHost, "]")] = 0;
        }

        if (!rfbInitClient(client, NULL, NULL)) {
                /* rfbInitClient() freed the client. */
                printf("error cannot connect to %s or authentication failed\n", target);
                return 1;
        }
        printf("connected %d %d\n", client->width, client->height);

        for (;;) {
                struct pollfd p[2] = {
                        { .fd = STDIN_FILENO, .events = POLLIN },
                        { .fd = client->sock, .events = POLLIN },
                };

                if (client->buffered > 0) {
                        if (!HandleRFBServerMessage(client))
                                break;
                        continue;
                }
                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (p[1].revents) {
                        if (!HandleRFBServerMessage(client)) {
                                printf("disconnected\n");
                                r = 3;
                                break;
                        }
                }
                if (p[0].revents) {
                        ssize_t k = read(STDIN_FILENO, line + n_line, sizeof(line) - 1 - n_line);
                        char *eol;

                        if (k <= 0)
                                break;
                        n_line += (size_t) k;
                        line[n_line] = 0;
                        while ((eol = strchr(line, '\n'))) {
                                size_t consumed = (size_t) (eol + 1 - line);
                                int q;

                                *eol = 0;
                                q = run_command(client, line);
                                memmove(line, line + consumed, n_line - consumed + 1);
                                n_line -= consumed;
                                if (q < 0) {
                                        printf("disconnected\n");
                                        r = 3;
                                        goto out;
                                }
                                if (q > 0)
                                        goto out;
                        }
                        if (n_line >= sizeof(line) - 1)
                                n_line = 0;
                }
        }
out:
        rfbClientCleanup(client);
        free(password);
        return r;
}

/* SPDX-License-Identifier: MIT */

/*
 * Fuzz target for orrery-agent's guest-agent connection (qga-channel.c)
 * above the framer: the handshake with its random sync id, the request
 * queue with one call in flight, replies matched to calls, guest errors,
 * the guest-sync that confirms guest-shutdown, resynchronisation after
 * garbage or an answer nobody asked for, and the peer closing. The harness
 * plays the guest on the other end of a socketpair. libFuzzer entry point;
 * fuzz-driver.c replays it without libFuzzer.
 *
 * Input: byte 0 picks the calls queued at the start (bit i: calls[i]);
 * then chunks, each a length byte and that many bytes the guest sends once
 * the channel has gone quiet. In a chunk "$ID" is replaced by the id of the
 * last guest-sync the channel wrote, so that the handshake is in reach
 * (the id is random). A chunk of length 0 closes the guest's end.
 *
 * Checked: every queued call's callback runs exactly once (a reply, a
 * guest error, or the failure when the channel is freed), never twice.
 */

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "qga-channel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct Call {
        const char *command;
        QgaCallFlags flags;
} Call;

static const Call calls[] = {
        { "guest-info", 0 },
        { "guest-get-host-name", 0 },
        { "guest-shutdown", QGA_CALL_CONFIRM_WITH_SYNC },
        { "guest-get-osinfo", 0 },
        { "guest-file-read", 0 },
        { "guest-get-time", 0 },
        { "guest-fsfreeze-status", 0 },
        { "guest-ping", 0 },
};

#define N_CALLS (sizeof(calls) / sizeof(calls[0]))

static unsigned answered[N_CALLS];

static void on_reply(QgaChannel *c, json_object *ret, const sd_bus_error *error, void *userdata) {
        unsigned i = (unsigned) (uintptr_t) userdata;

        /* Exactly one of a result and an error; a NULL result is a confirmed guest-shutdown. */
        assert(!error || !ret);
        assert(error || ret || calls[i].flags & QGA_CALL_CONFIRM_WITH_SYNC);
        answered[i]++;
}

/* Runs the loop until nothing is pending. */
static void settle(sd_event *e) {
        for (unsigned i = 0; i < 64 && sd_event_run(e, 0) > 0; i++)
                ;
}

/* Reads what the channel sent; remembers the id of the last guest-sync in it. */
static void drain(int fd, char id[32]) {
        char buf[8192];
        ssize_t n;

        while ((n = read(fd, buf, sizeof(buf) - 1)) > 0) {
                char *p = buf;

                buf[n] = 0;
                /* The channel writes NUL-free JSON: strstr sees all of it. */
                while ((p = strstr(p, "\"id\":"))) {
                        p += 5;
                        snprintf(id, 32, "%lld", strtoll(p, NULL, 10));
                }
        }
}

static void send_chunk(int fd, const uint8_t *p, size_t n, const char *id) {
        uint8_t out[256 * 20];
        size_t k = 0, id_len = strlen(id);

        for (size_t i = 0; i < n; i++) {
                if (i + 3 <= n && memcmp(p + i, "$ID", 3) == 0) {
                        memcpy(out + k, id, id_len);
                        k += id_len;
                        i += 2;
                } else
                        out[k++] = p[i];
        }
        (void) !write(fd, out, k);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static sd_event *e;
        QgaChannel *c = NULL;
        char id[32] = "0";
        int fds[2];
        uint8_t mask;

        if (size < 1)
                return 0;
        if (!e && sd_event_new(&e) < 0)
                abort();
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0)
                abort();
        /* A timeout that never fires within an input: time is not what is fuzzed. */
        if (qga_channel_new(e, "VM 'fuzz'", UINT64_C(3600) * 1000000, NULL, NULL, &c) < 0 ||
            qga_channel_attach(c, fds[0]) < 0)
                abort();

        memset(answered, 0, sizeof(answered));
        mask = data[0];
        for (unsigned i = 0; i < N_CALLS; i++)
                if (mask & 1u << i)
                        assert(qga_channel_call(c, calls[i].command, NULL, calls[i].flags, on_reply,
                                                (void *) (uintptr_t) i, NULL) == 0);
        data++;
        size--;

        while (size > 0 && qga_channel_is_attached(c)) {
                size_t n = data[0];

                data++;
                size--;
                settle(e);
                drain(fds[1], id);
                if (n == 0) {
                        close(fds[1]);
                        fds[1] = -1;
                        settle(e);
                        break;
                }
                if (n > size)
                        n = size;
                send_chunk(fds[1], data, n, id);
                data += n;
                size -= n;
        }
        settle(e);
        for (unsigned i = 0; i < N_CALLS; i++)
                assert(answered[i] <= 1);
        qga_channel_free(c, NULL);
        for (unsigned i = 0; i < N_CALLS; i++)
                assert(answered[i] == (mask >> i & 1u));
        if (fds[1] >= 0)
                close(fds[1]);
        return 0;
}

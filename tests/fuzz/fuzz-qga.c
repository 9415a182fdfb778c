/* SPDX-License-Identifier: MIT */

/*
 * Fuzz target for what orrery-agent does with bytes from a guest: the QGA
 * framer (0xFF resync, streamed JSON, limits), the reply split, base64
 * decoding of guest-file-read data and the UTF-8 truncation of error
 * texts. libFuzzer entry point; fuzz-driver.c replays it without libFuzzer.
 *
 * Input: byte 0 picks how the rest is cut into reads (1..256 bytes, or all
 * at once), byte 1 whether the framer starts synced; the rest is what the
 * guest sends. Sync id 42, so "\xff{\"return\":42}" is in reach.
 */

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "base64.h"
#include "qga-framer.h"
#include "utf8.h"

#define SYNC_ID 42

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct State {
        QgaFramer *framer;
        unsigned synced, messages, garbage;
} State;

static void check_message(json_object *o) {
        json_object *ret = NULL, *b64;
        const char *class = NULL, *desc = NULL;
        char text[64];
        int r;

        r = qga_reply_split(o, &ret, &class, &desc);
        if (r == -EREMOTEIO) {
                utf8_truncate(text, sizeof(text), class ?: "");
                assert(strlen(text) < sizeof(text));
                utf8_truncate(text, sizeof(text), desc ?: "");
                assert(strlen(text) < sizeof(text));
                return;
        }
        if (r < 0)
                return;
        assert(ret || json_object_object_get_ex(o, "return", NULL));
        if (json_object_is_type(ret, json_type_object) && json_object_object_get_ex(ret, "buf-b64", &b64) &&
            json_object_is_type(b64, json_type_string)) {
                uint8_t out[256];
                size_t n = (size_t) json_object_get_string_len(b64);
                long k = base64_decode(json_object_get_string(b64), n, out, sizeof(out), 0);

                assert(k < 0 || (size_t) k <= sizeof(out));
                if (k >= 0) {
                        /* Canonical base64 round-trips exactly. */
                        char again[sizeof(out) / 3 * 4 + 8];

                        assert(base64_encoded_size((size_t) k) == n);
                        base64_encode(out, (size_t) k, again);
                        assert(memcmp(again, json_object_get_string(b64), n) == 0);
                }
        }
}

static void on_event(QgaEvent event, json_object *detail, const char *reason, void *userdata) {
        State *s = userdata;

        switch (event) {
        case QGA_EVENT_SYNCED:
                s->synced++;
                assert(s->framer->state == QGA_FRAMER_STREAM);
                break;
        case QGA_EVENT_MESSAGE:
                s->messages++;
                assert(json_object_is_type(detail, json_type_object));
                check_message(detail);
                break;
        case QGA_EVENT_GARBAGE:
                s->garbage++;
                assert(reason);
                /* What the channel does: resync with a fresh id. */
                qga_framer_expect_sync(s->framer, SYNC_ID);
                break;
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        QgaFramer f;
        State s = { .framer = &f };
        size_t step;

        if (size < 2)
                return 0;
        step = data[0] == 0 ? SIZE_MAX : data[0];
        if (qga_framer_init(&f) < 0)
                return 0;
        qga_framer_expect_sync(&f, SYNC_ID);
        if (data[1] & 1)
                f.state = QGA_FRAMER_STREAM;
        data += 2;
        size -= 2;
        while (size > 0) {
                size_t n = size < step ? size : step;

                qga_framer_feed(&f, data, n, on_event, &s);
                assert(f.object_bytes <= QGA_MESSAGE_MAX + 65536);
                data += n;
                size -= n;
        }
        qga_framer_done(&f);
        return 0;
}

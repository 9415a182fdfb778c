/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <string.h>

#include "qga-framer.h"

#define QGA_FEED_MAX 65536u

int qga_framer_init(QgaFramer *f) {
        *f = (QgaFramer) { .state = QGA_FRAMER_HUNT };
        f->tok = json_tokener_new_ex(QGA_JSON_DEPTH);
        if (!f->tok)
                return -ENOMEM;
        /* Strict JSON, valid UTF-8, and objects may follow one another. */
        json_tokener_set_flags(f->tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS |
                                               JSON_TOKENER_VALIDATE_UTF8);
        return 0;
}

void qga_framer_done(QgaFramer *f) {
        if (f->tok)
                json_tokener_free(f->tok);
        f->tok = NULL;
}

static void framer_reset_object(QgaFramer *f) {
        json_tokener_reset(f->tok);
        f->object_bytes = 0;
        f->in_object = false;
}

void qga_framer_expect_sync(QgaFramer *f, int64_t id) {
        f->sync_id = id;
        f->state = QGA_FRAMER_HUNT;
        framer_reset_object(f);
}

static bool is_sync_reply(json_object *o, int64_t id) {
        json_object *ret;

        if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, "return", &ret))
                return false;
        /* Huge numbers saturate in json-c and so never equal an id below 2^53. */
        return json_object_is_type(ret, json_type_int) && json_object_get_int64(ret) == id;
}

static void framer_garbage(QgaFramer *f, const char *reason, QgaFramerFn fn, void *userdata) {
        bool report = f->state == QGA_FRAMER_STREAM;

        f->state = QGA_FRAMER_HUNT;
        framer_reset_object(f);
        /* Before the sync reply everything but that reply is expected noise. */
        if (report)
                fn(QGA_EVENT_GARBAGE, NULL, reason, userdata);
}

static void framer_object(QgaFramer *f, json_object *o, QgaFramerFn fn, void *userdata) {
        if (f->state == QGA_FRAMER_SYNC_REPLY) {
                if (is_sync_reply(o, f->sync_id)) {
                        f->state = QGA_FRAMER_STREAM;
                        fn(QGA_EVENT_SYNCED, NULL, NULL, userdata);
                } else
                        f->state = QGA_FRAMER_HUNT; /* stale sync reply, echo, noise */
                return;
        }
        if (!json_object_is_type(o, json_type_object)) {
                framer_garbage(f, "a JSON value that is not an object", fn, userdata);
                return;
        }
        fn(QGA_EVENT_MESSAGE, o, NULL, userdata);
}

static bool is_space(uint8_t c) {
        return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

void qga_framer_feed(QgaFramer *f, const uint8_t *data, size_t size, QgaFramerFn fn, void *userdata) {
        while (size > 0) {
                const uint8_t *ff;
                size_t seg, used;
                json_object *o;
                enum json_tokener_error err;

                if (f->state == QGA_FRAMER_HUNT) {
                        ff = memchr(data, 0xFF, size);
                        if (!ff)
                                return;
                        size -= (size_t) (ff + 1 - data);
                        data = ff + 1;
                        f->state = QGA_FRAMER_SYNC_REPLY;
                        framer_reset_object(f);
                        continue;
                }

                if (data[0] == 0xFF) {
                        if (f->state == QGA_FRAMER_STREAM) {
                                /* Not consumed: hunting takes it as a delimiter (of a reply we no longer wait for). */
                                framer_garbage(f, "an unexpected 0xFF byte", fn, userdata);
                                continue;
                        }
                        /* A new delimiter while waiting for the sync reply: start over after it. */
                        framer_reset_object(f);
                        data++;
                        size--;
                        continue;
                }

                if (!f->in_object) {
                        while (size > 0 && is_space(data[0])) {
                                data++;
                                size--;
                        }
                        if (size == 0)
                                return;
                        if (data[0] == 0xFF)
                                continue;
                }

                /* Never hand the tokener a 0xFF: it ends the segment. */
                ff = memchr(data, 0xFF, size);
                seg = ff ? (size_t) (ff - data) : size;
                if (seg > QGA_FEED_MAX)
                        seg = QGA_FEED_MAX; /* json_tokener_parse_ex() takes an int */

                o = json_tokener_parse_ex(f->tok, (const char *) data, (int) seg);
                err = json_tokener_get_error(f->tok);
                if (err == json_tokener_continue) {
                        used = seg;
                        f->in_object = true;
                        f->object_bytes += used;
                        data += used;
                        size -= used;
                        if (f->object_bytes > QGA_MESSAGE_MAX)
                                framer_garbage(f, "a message larger than the limit", fn, userdata);
                        continue;
                }
                if (err != json_tokener_success || !o) {
                        json_object_put(o);
                        data += seg;
                        size -= seg;
                        framer_garbage(f, json_tokener_error_desc(err), fn, userdata);
                        continue;
                }

                used = json_tokener_get_parse_end(f->tok);
                if (used == 0 || used > seg)
                        used = seg; /* cannot happen; never loop without progress */
                f->object_bytes += used;
                data += used;
                size -= used;
                if (f->object_bytes > QGA_MESSAGE_MAX) {
                        json_object_put(o);
                        framer_garbage(f, "a message larger than the limit", fn, userdata);
                        continue;
                }
                framer_reset_object(f);
                framer_object(f, o, fn, userdata);
                json_object_put(o);
        }
}

int qga_reply_split(json_object *reply, json_object **ret_return, const char **ret_class, const char **ret_desc) {
        json_object *ret, *error, *class = NULL, *desc = NULL;

        if (!json_object_is_type(reply, json_type_object))
                return -EBADMSG;
        if (json_object_object_get_ex(reply, "return", &ret)) {
                *ret_return = ret;
                return 0;
        }
        if (!json_object_object_get_ex(reply, "error", &error) || !json_object_is_type(error, json_type_object))
                return -EBADMSG;
        (void) json_object_object_get_ex(error, "class", &class);
        (void) json_object_object_get_ex(error, "desc", &desc);
        *ret_class = json_object_is_type(class, json_type_string) ? json_object_get_string(class) : NULL;
        *ret_desc = json_object_is_type(desc, json_type_string) ? json_object_get_string(desc) : NULL;
        return -EREMOTEIO;
}

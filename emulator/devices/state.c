/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/state.h"

void state_writer_done(StateWriter *w) {
        free(w->data);
        *w = (StateWriter) {};
}

int state_writer_error(const StateWriter *w) {
        return w->error;
}

void state_put_bytes(StateWriter *w, const void *buf, size_t n) {
        if (w->error || n == 0)
                return;
        if (n > SIZE_MAX / 2 - w->size) {
                w->error = -ENOMEM;
                return;
        }
        if (w->size + n > w->allocated) {
                size_t a = w->allocated ? w->allocated : 256;
                while (a < w->size + n)
                        a *= 2;
                uint8_t *p = realloc(w->data, a);
                if (!p) {
                        w->error = -ENOMEM;
                        return;
                }
                w->data = p;
                w->allocated = a;
        }
        memcpy(w->data + w->size, buf, n);
        w->size += n;
}

static void put_le(StateWriter *w, uint64_t v, unsigned n) {
        uint8_t b[8];
        for (unsigned i = 0; i < n; i++)
                b[i] = (uint8_t) (v >> (8 * i));
        state_put_bytes(w, b, n);
}

void state_put_u8(StateWriter *w, uint8_t v) {
        put_le(w, v, 1);
}

void state_put_u16(StateWriter *w, uint16_t v) {
        put_le(w, v, 2);
}

void state_put_u32(StateWriter *w, uint32_t v) {
        put_le(w, v, 4);
}

void state_put_u64(StateWriter *w, uint64_t v) {
        put_le(w, v, 8);
}

void state_put_bool(StateWriter *w, bool v) {
        put_le(w, v ? 1 : 0, 1);
}

int state_reader_error(const StateReader *r) {
        return r->error;
}

int state_reader_finish(const StateReader *r) {
        if (r->error)
                return r->error;
        return r->pos == r->size ? 0 : -EBADMSG;
}

static int fail(StateReader *r, int error) {
        if (!r->error)
                r->error = error;
        return r->error;
}

int state_get_bytes(StateReader *r, void *buf, size_t n) {
        if (r->error)
                return r->error;
        if (n > r->size - r->pos)
                return fail(r, -EBADMSG);
        memcpy(buf, r->data + r->pos, n);
        r->pos += n;
        return 0;
}

static int get_le(StateReader *r, unsigned n, uint64_t max, uint64_t *ret) {
        uint8_t b[8];
        uint64_t v = 0;
        int e;

        e = state_get_bytes(r, b, n);
        if (e < 0)
                return e;
        for (unsigned i = 0; i < n; i++)
                v |= (uint64_t) b[i] << (8 * i);
        if (v > max)
                return fail(r, -ERANGE);
        *ret = v;
        return 0;
}

#define DEFINE_GET(name, type)                                                          \
        int state_get_##name##_max(StateReader *r, type max, type *ret) {               \
                uint64_t v = 0;                                                         \
                int e = get_le(r, sizeof(type), max, &v);                               \
                if (e < 0)                                                              \
                        return e;                                                       \
                *ret = (type) v;                                                        \
                return 0;                                                               \
        }                                                                               \
        int state_get_##name(StateReader *r, type *ret) {                               \
                return state_get_##name##_max(r, (type) -1, ret);                       \
        }

DEFINE_GET(u8, uint8_t)
DEFINE_GET(u16, uint16_t)
DEFINE_GET(u32, uint32_t)
DEFINE_GET(u64, uint64_t)

int state_get_bool(StateReader *r, bool *ret) {
        uint8_t v;
        int e = state_get_u8_max(r, 1, &v);
        if (e < 0)
                return e;
        *ret = v;
        return 0;
}

/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Device state as explicit fields, for save/load (snapshots, migration).
 *
 * A device saves each field it needs with the put_* calls, in a fixed
 * order, and loads them back with the get_* calls in the same order. The
 * encoding is little-endian and carries no padding or pointers, so it does
 * not depend on the host or on the layout of the device's struct.
 *
 * A saved state is hostile input (it may come from another host): every
 * get_* fails with -EBADMSG on a short buffer, the *_max variants with
 * -ERANGE for a value above what the device accepts, and a device's load
 * validates everything before it changes its own state. Errors stick: after
 * the first one every call fails with the same error, so a device may
 * check once, at the end (state_reader_error()), before committing.
 *
 * Not thread-safe: one writer or reader per thread.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct StateWriter {
        uint8_t *data;
        size_t size, allocated;
        int error;              /* first error (-ENOMEM), sticky */
} StateWriter;

typedef struct StateReader {
        const uint8_t *data;
        size_t size, pos;
        int error;              /* first error (-EBADMSG, -ERANGE), sticky */
} StateReader;

/* Writers start zeroed (StateWriter w = {};) and are released with state_writer_done(). */
void state_writer_done(StateWriter *w);
/* 0, or the first error of any put_*. */
int state_writer_error(const StateWriter *w);

void state_put_u8(StateWriter *w, uint8_t v);
void state_put_u16(StateWriter *w, uint16_t v);
void state_put_u32(StateWriter *w, uint32_t v);
void state_put_u64(StateWriter *w, uint64_t v);
void state_put_bool(StateWriter *w, bool v);
void state_put_bytes(StateWriter *w, const void *buf, size_t n);

static inline StateReader state_reader(const void *data, size_t size) {
        return (StateReader) { .data = data, .size = size };
}
/* 0, or the first error of any get_*. */
int state_reader_error(const StateReader *r);
/* 0 when every byte was consumed and no error happened; else the error or -EBADMSG (trailing bytes). */
int state_reader_finish(const StateReader *r);

int state_get_u8(StateReader *r, uint8_t *ret);
int state_get_u16(StateReader *r, uint16_t *ret);
int state_get_u32(StateReader *r, uint32_t *ret);
int state_get_u64(StateReader *r, uint64_t *ret);
int state_get_bool(StateReader *r, bool *ret);
int state_get_bytes(StateReader *r, void *buf, size_t n);
/* As above, and -ERANGE for a value above max. */
int state_get_u8_max(StateReader *r, uint8_t max, uint8_t *ret);
int state_get_u16_max(StateReader *r, uint16_t max, uint16_t *ret);
int state_get_u32_max(StateReader *r, uint32_t max, uint32_t *ret);
int state_get_u64_max(StateReader *r, uint64_t max, uint64_t *ret);

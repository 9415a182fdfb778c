/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The receive side of the QEMU guest-agent protocol, without any I/O: bytes
 * from the guest go in, events come out. Everything the guest sends is
 * hostile, so this is the part the fuzzer drives (tests/fuzz/).
 *
 * Framing: the guest sends JSON objects one after another (qemu-ga ends
 * each with "\n"). After a resync the host discards everything up to a
 * 0xFF byte (which never occurs in UTF-8 JSON), and the object following it
 * must be {"return": <the id of our guest-sync-delimited>}; any other
 * object after a 0xFF (a stale sync reply, an echo of our own request)
 * sends the framer back to hunting for the next 0xFF.
 *
 * Limits: one object may be at most QGA_MESSAGE_MAX bytes and
 * QGA_JSON_DEPTH deep; text must be strict, valid UTF-8 JSON.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#define QGA_MESSAGE_MAX (1024u * 1024u)
#define QGA_JSON_DEPTH 16

typedef enum QgaFramerState {
        QGA_FRAMER_HUNT,       /* discarding up to the next 0xFF */
        QGA_FRAMER_SYNC_REPLY, /* after 0xFF: expecting {"return": sync_id} */
        QGA_FRAMER_STREAM,     /* synced: every object is a message */
} QgaFramerState;

typedef enum QgaEvent {
        QGA_EVENT_SYNCED,  /* the reply to our guest-sync-delimited arrived */
        QGA_EVENT_MESSAGE, /* an object while synced (the callback borrows it) */
        QGA_EVENT_GARBAGE, /* malformed data while synced; the framer hunts again */
} QgaEvent;

/* detail: the object for MESSAGE, NULL otherwise; reason: why, for GARBAGE. */
typedef void (*QgaFramerFn)(QgaEvent event, json_object *detail, const char *reason, void *userdata);

typedef struct QgaFramer {
        QgaFramerState state;
        int64_t sync_id;
        struct json_tokener *tok;
        size_t object_bytes; /* bytes fed into the object being parsed */
        bool in_object;      /* the tokener holds a partial object */
} QgaFramer;

int qga_framer_init(QgaFramer *f);
void qga_framer_done(QgaFramer *f);

/* Start hunting for the reply to a guest-sync-delimited with this id. */
void qga_framer_expect_sync(QgaFramer *f, int64_t id);

/*
 * Feeds bytes from the guest; calls fn for every event, in order. fn must
 * not call qga_framer_feed() itself but may call qga_framer_expect_sync().
 */
void qga_framer_feed(QgaFramer *f, const uint8_t *data, size_t size, QgaFramerFn fn, void *userdata);

/*
 * Splits a reply: {"return": X} gives 0 and *ret_return = X (borrowed);
 * {"error": {"class": C, "desc": D}} gives -EREMOTEIO with class and desc
 * (borrowed, possibly NULL); anything else -EBADMSG.
 */
int qga_reply_split(json_object *reply, json_object **ret_return, const char **ret_class, const char **ret_desc);

/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * One guest-agent connection: a non-blocking stream socket to the guest
 * (a Chardev1 socketpair, or a Unix socket for tests), the framer, a queue
 * of requests with one in flight, and a timeout on every guest call.
 *
 * Before the first request and after anything suspicious (garbage, a
 * timeout, a reply nobody asked for) the channel resynchronises: 0xFF, then
 * guest-sync-delimited with a fresh random id, then everything up to the
 * 0xFF preceding the matching reply is discarded. While nobody is waiting
 * it keeps trying in the background, so "connected" follows the guest.
 *
 * Callbacks run from the event loop; they may queue new calls and cancel
 * requests but must not free the channel.
 */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "qga-framer.h"

#define ORRERY_ERROR_GUEST "org.orrery.Error.GuestError"
/* Calls waiting per VM; more answer -EBUSY (org.orrery.Error.Busy). */
#define QGA_QUEUE_MAX 1024u
#define ORRERY_ERROR_CANCELLED "org.orrery.Error.Cancelled"

typedef struct QgaChannel QgaChannel;
typedef struct QgaRequest QgaRequest;

/* ret: the "return" member (borrowed) on success, NULL with error set on failure. */
typedef void (*QgaReplyFn)(QgaChannel *c, json_object *ret, const sd_bus_error *error, void *userdata);

typedef struct QgaChannelCallbacks {
        /* The handshake completed, or the channel lost it. */
        void (*connected_changed)(QgaChannel *c, bool connected, void *userdata);
        /* The peer closed the socket or it failed; everything queued has failed with Unavailable. */
        void (*closed)(QgaChannel *c, void *userdata);
} QgaChannelCallbacks;

typedef enum QgaCallFlags {
        /* The command answers nothing on success (guest-shutdown): a
         * guest-sync sent right behind it confirms it was accepted. */
        QGA_CALL_CONFIRM_WITH_SYNC = 1 << 0,
} QgaCallFlags;

/* label names the guest in error messages ("VM 'demo'"). */
int qga_channel_new(sd_event *event, const char *label, uint64_t timeout_usec, const QgaChannelCallbacks *callbacks,
                    void *userdata, QgaChannel **ret);
/* Fails everything queued with error (Unavailable if NULL) and frees. Returns NULL. */
QgaChannel *qga_channel_free(QgaChannel *c, const sd_bus_error *error);

/* Takes fd (a connected, non-blocking stream socket) and starts the handshake. */
int qga_channel_attach(QgaChannel *c, int fd);
/* Fails everything queued with error and closes the socket (no closed callback). */
void qga_channel_detach(QgaChannel *c, const sd_bus_error *error);
bool qga_channel_is_attached(QgaChannel *c);
bool qga_channel_is_connected(QgaChannel *c);
/* The guest may just have opened its port: restart the handshake now unless connected. */
void qga_channel_kick(QgaChannel *c);

/*
 * Queues {"execute": command, "arguments": arguments}; arguments (may be
 * NULL) is taken over. -ENOTCONN without a socket, -EBUSY when the queue
 * is full. fn is called exactly once unless the request is
 * cancelled first. ret_request (may be NULL) stays valid until then.
 */
int qga_channel_call(QgaChannel *c, const char *command, json_object *arguments, QgaCallFlags flags, QgaReplyFn fn,
                     void *userdata, QgaRequest **ret_request);
/* Hands the answer of a request to another callback. */
void qga_request_set_callback(QgaRequest *r, QgaReplyFn fn, void *userdata);
/* Drops a request: fn is not called. A request on the wire still occupies the channel until answered or timed out. */
void qga_request_cancel(QgaRequest *r);

/* A random id in [1, 2^53): exact in every JSON implementation. */
int64_t qga_random_id(void);

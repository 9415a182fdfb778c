/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A character device between a guest device (the UART, a virtio-console
 * port) and the host: the terminal orrery-vm runs on and/or one client
 * socket registered over the bus (org.orrery.Chardev1).
 *
 * Guest output is produced on whatever thread runs the device (the CPU
 * thread for the UART) and must never block: it goes into a bounded ring
 * (protected by 'lock') and the event-loop thread is woken through an
 * eventfd to deliver it. A copy is kept in a bounded scrollback so a client
 * that attaches later sees what it missed.
 *
 * What a client cannot take is dropped (the UART: a console must never
 * stall the guest), unless the backend can throttle its device (a
 * virtio-console port): then output waits in the ring, and while the ring
 * is above CHARDEV_THROTTLE_HIGH the device stops taking the guest's
 * output, until the client has read it down to CHARDEV_THROTTLE_LOW. The
 * guest's writes then wait, as on a slow wire; nothing is lost.
 *
 * Host input is delivered on the event-loop thread; when the guest device
 * cannot take more, the chardev stops reading its sources until the device
 * reports room again (chardev_guest_room(), any thread).
 *
 * Everything else belongs to the event-loop thread.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#define CHARDEV_RING_SIZE (128 * 1024)
/* Room above the high mark for what a device hands over at once (Linux's virtio-console writes up to 32 KiB). */
#define CHARDEV_THROTTLE_HIGH (64 * 1024)
#define CHARDEV_THROTTLE_LOW (16 * 1024)
#define CHARDEV_SCROLLBACK_SIZE (64 * 1024)

typedef struct Chardev Chardev;

typedef struct ChardevBackend {
        /* Host → guest; returns how many bytes the device took. Event-loop thread. */
        size_t (*write_to_guest)(void *opaque, const uint8_t *buf, size_t n);
        /* Optional: stop/resume taking guest output (see above). Any thread, never with 'lock' held. */
        void (*throttle)(void *opaque, bool throttle);
        void *opaque;
} ChardevBackend;

typedef struct ChardevHooks {
        /*
         * Filters bytes typed on the terminal before they reach the guest
         * (e.g. the Ctrl-A escape); returns how many of 'buf' remain (in place).
         */
        size_t (*filter_stdin)(void *opaque, uint8_t *buf, size_t n);
        void *opaque;
        /* The registered client went away (closed its socket). */
        void (*client_gone)(void *opaque, Chardev *c);
        /* The guest opened or closed its side. */
        void (*guest_open_changed)(void *opaque, Chardev *c);
        void *client_gone_opaque;       /* for client_gone and guest_open_changed */
} ChardevHooks;

int chardev_new(sd_event *event, const char *id, const char *name, const ChardevBackend *backend, Chardev **ret);
Chardev *chardev_free(Chardev *c);

const char *chardev_id(const Chardev *c);
const char *chardev_name(const Chardev *c);
void chardev_set_hooks(Chardev *c, const ChardevHooks *hooks);
ChardevHooks chardev_get_hooks(const Chardev *c);

/* Guest side, any thread, never blocks. */
void chardev_guest_output(Chardev *c, const uint8_t *buf, size_t n);
void chardev_guest_room(Chardev *c);
/* Whether the guest has its side open (initially true). Any thread. */
void chardev_set_guest_open(Chardev *c, bool open);
bool chardev_guest_open(const Chardev *c);

/* The terminal: guest output is written to out_fd (blocking), in_fd (if >= 0) is read. */
int chardev_attach_stdio(Chardev *c, int in_fd, int out_fd);
/* Appends guest output to a file descriptor (e.g. --serial file:PATH); takes ownership. */
int chardev_attach_file(Chardev *c, int out_fd);

/* A client's connected stream socket; takes ownership. -EBUSY if one is attached. */
int chardev_attach_client(Chardev *c, int fd);
void chardev_detach_client(Chardev *c);
bool chardev_has_client(const Chardev *c);

/* Delivers pending guest output now (before exiting). Event-loop thread. */
void chardev_flush(Chardev *c);

/*
 * Tells the device whether this (flow-controlled) chardev holds it back:
 * after the device's state was loaded from a save or a migration, whose
 * throttle was another chardev's. Only while the device produces no
 * output (before the guest runs).
 */
void chardev_assert_flow(Chardev *c);

/* A copy of the scrollback (malloc'ed). */
int chardev_get_scrollback(Chardev *c, uint8_t **ret_data, size_t *ret_size);

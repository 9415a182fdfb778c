/* SPDX-License-Identifier: MIT */
/*
 * The character device between a guest device and a bus client: a lossy
 * chardev (the UART) never stalls the guest and drops what a slow client
 * cannot take; a flow-controlled one (a virtio-console port) loses nothing,
 * throttling the device while the client is behind, and lets go when the
 * client catches up or leaves.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "machine/chardev.h"
#include "macro.h"
#include "tap.h"

#define TOTAL (1024 * 1024)
#define CHUNK (32 * 1024) /* what Linux's virtio-console hands over at most at once */

typedef struct FakeDevice {
        bool throttled;
        unsigned throttles, unthrottles;
        size_t produced;
} FakeDevice;

static size_t to_guest(void *opaque, const uint8_t *buf, size_t n) {
        return n;
}

static void throttle(void *opaque, bool on) {
        FakeDevice *d = opaque;

        d->throttled = on;
        if (on)
                d->throttles++;
        else
                d->unthrottles++;
}

static uint8_t pattern(size_t i) {
        return (uint8_t) (i * 7 + (i >> 12));
}

/* The device produces its next chunk unless throttled, as the virtio-console transmit path does. */
static void produce(Chardev *c, FakeDevice *d) {
        uint8_t buf[CHUNK];
        size_t n = MIN((size_t) CHUNK, TOTAL - d->produced);

        if (d->throttled || n == 0)
                return;
        for (size_t i = 0; i < n; i++)
                buf[i] = pattern(d->produced + i);
        chardev_guest_output(c, buf, n);
        d->produced += n;
}

static int client_socket(int *ret_ours) {
        int sv[2], small = 4096;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        /* Small buffers: the client falls behind at once. */
        (void) setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
        (void) setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
        (void) fcntl(sv[0], F_SETFL, O_NONBLOCK);
        *ret_ours = sv[0];
        return sv[1];
}

static void test_flow_controlled(void) {
        _cleanup_free_ uint8_t *got = malloc(TOTAL);
        FakeDevice d = {};
        ChardevBackend backend = { .write_to_guest = to_guest, .throttle = throttle, .opaque = &d };
        sd_event *event = NULL;
        Chardev *c = NULL;
        size_t received = 0;
        bool in_order = true;
        int ours = -1, theirs;
        unsigned rounds = 0;

        CHECK(sd_event_new(&event) >= 0 && chardev_new(event, "agent", "agent", &backend, &c) >= 0,
              "a flow-controlled chardev is created");
        theirs = client_socket(&ours);
        CHECK(theirs >= 0 && chardev_attach_client(c, theirs) >= 0, "a client attaches");

        /* The client reads a little each round, far slower than the device writes. */
        while (received < TOTAL && rounds++ < 100000) {
                ssize_t n;

                produce(c, &d);
                (void) sd_event_run(event, 0);
                n = read(ours, got + received, MIN((size_t) 1500, TOTAL - received));
                if (n > 0)
                        received += (size_t) n;
        }
        for (size_t i = 0; i < received && in_order; i++)
                in_order = got[i] == pattern(i);

        CHECK_EQ_U64(received, TOTAL, "every byte of 1 MiB reaches a slow client");
        CHECK(in_order, "in order and intact");
        CHECK(d.throttles > 0, "the device was throttled while the client was behind (%u times)", d.throttles);
        CHECK(!d.throttled && d.unthrottles == d.throttles, "and let go once it caught up");

        /* A client that stops reading, then leaves: the throttle is lifted, output goes on. */
        d = (FakeDevice) {};
        chardev_detach_client(c);
        safe_close(ours);
        theirs = client_socket(&ours);
        CHECK(chardev_attach_client(c, theirs) >= 0, "a second client attaches after the first left");
        for (unsigned i = 0; i < 200 && !d.throttled; i++) {
                produce(c, &d);
                (void) sd_event_run(event, 0);
        }
        CHECK(d.throttled, "a client that reads nothing throttles the device (%zu bytes produced)", d.produced);
        CHECK(d.produced <= CHARDEV_RING_SIZE + CHUNK, "before more than the ring could hold was produced");
        chardev_detach_client(c);
        for (unsigned i = 0; i < 10 && d.throttled; i++)
                (void) sd_event_run(event, 0);
        CHECK(!d.throttled, "when it leaves, the throttle is lifted (its output stays in the scrollback)");

        safe_close(ours);
        chardev_free(c);
        sd_event_unref(event);
}

/*
 * The device's thread decides to throttle under the chardev's lock but tells
 * the device after letting go of it. If it is preempted in between (a slow,
 * sanitized build on a loaded machine) the event loop can drain the ring and
 * lift the throttle first: the device then hears "go on" before "stop", and
 * stays stopped with nothing left to lift it (the guest agent's output, and
 * so the agent, stalled for good). Here the "stop" arrives late on purpose.
 */
typedef struct LateDevice {
        Chardev *chardev;
        bool throttled;
        bool raced;
} LateDevice;

static void late_throttle(void *opaque, bool on) {
        LateDevice *d = opaque;

        if (on && !d->raced) {
                d->raced = true;
                chardev_flush(d->chardev); /* the event loop's drain, and its "go on", come first */
        }
        d->throttled = on;
}

static void test_throttle_told_late(void) {
        LateDevice d = {};
        ChardevBackend backend = { .write_to_guest = to_guest, .throttle = late_throttle, .opaque = &d };
        _cleanup_free_ uint8_t *buf = calloc(1, CHUNK);
        sd_event *event = NULL;
        int sv[2], big = 1 << 20;
        size_t produced = 0;

        CHECK(sd_event_new(&event) >= 0 && chardev_new(event, "agent", "agent", &backend, &d.chardev) >= 0,
              "a flow-controlled chardev is created");
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) >= 0, "a client socket");
        (void) setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
        (void) setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
        CHECK(chardev_attach_client(d.chardev, sv[1]) >= 0, "a client attaches");

        /* Output without the event loop running, until the chardev throttles the device. */
        while (!d.raced && produced < CHARDEV_RING_SIZE) {
                chardev_guest_output(d.chardev, buf, CHUNK);
                produced += CHUNK;
        }
        CHECK(d.raced, "the chardev throttled the device after %zu bytes", produced);
        for (unsigned i = 0; i < 10; i++)
                (void) sd_event_run(event, 0);
        CHECK(!d.throttled, "a throttle lifted before the device heard of it does not leave the device stopped");

        safe_close(sv[0]);
        chardev_free(d.chardev);
        sd_event_unref(event);
}

/* A device whose state was loaded throttled (saved by another process) is told this chardev does not hold it. */
static void test_assert_flow(void) {
        FakeDevice d = { .throttled = true };
        ChardevBackend backend = { .write_to_guest = to_guest, .throttle = throttle, .opaque = &d };
        sd_event *event = NULL;
        Chardev *c = NULL;

        CHECK(sd_event_new(&event) >= 0 && chardev_new(event, "agent", "agent", &backend, &c) >= 0,
              "a flow-controlled chardev is created");
        chardev_assert_flow(c);
        CHECK(!d.throttled, "a device loaded throttled is let go by a chardev that holds nothing");
        chardev_free(c);
        sd_event_unref(event);
}

static void test_lossy(void) {
        FakeDevice d = {};
        ChardevBackend backend = { .write_to_guest = to_guest, .opaque = &d };
        sd_event *event = NULL;
        Chardev *c = NULL;
        int ours = -1, theirs;

        CHECK(sd_event_new(&event) >= 0 && chardev_new(event, "serial0", "serial0", &backend, &c) >= 0,
              "a chardev without flow control is created");
        theirs = client_socket(&ours);
        chardev_attach_client(c, theirs);
        while (d.produced < TOTAL) {
                produce(c, &d);
                (void) sd_event_run(event, 0);
        }
        CHECK_EQ_U64(d.produced, TOTAL, "a client that reads nothing never stalls the device");
        CHECK(d.throttles == 0, "and never throttles it");
        CHECK(chardev_has_client(c), "the slow client stays registered");

        safe_close(ours);
        chardev_free(c);
        sd_event_unref(event);
}

int main(void) {
        test_flow_controlled();
        test_throttle_told_late();
        test_assert_flow();
        test_lossy();
        return tap_finish();
}

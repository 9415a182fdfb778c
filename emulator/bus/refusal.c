/* SPDX-License-Identifier: MIT */
/*
 * Refusing callers of another user without letting them delay the owner.
 *
 * Every reply the VM writes goes through dbus-daemon, which reads a
 * connection a couple of kilobytes at a time: when another user pipelines
 * calls, the refusals pile up in the VM's socket, and the owner's answers
 * queue behind them (measured: 0.3-0.5 s behind some 500 refusals, with
 * the VM itself nearly idle). So a caller the cache already knows as
 * refused is answered from a filter, before object dispatch: its first
 * BUS_REFUSALS_AT_ONCE calls in each window at once, the rest from a
 * queue that is answered at a bounded rate. Its pending calls fill
 * dbus-daemon's per-connection limit, so the daemon stops forwarding its
 * flood. Beyond the queue's bounds its calls are dropped without a reply.
 *
 * The verdict comes from the peer cache (bus.c), taken from the uid the
 * bus daemon vouches for; for a caller not yet known, the bus is asked
 * first (verdict.c).
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus/bus.h"
#include "log.h"
#include "macro.h"

struct BusDeferred {
        BusDeferred *next;
        sd_bus_message *call;
        BusPeer *peer;
};

int bus_refusal_set(BusPeer *p, sd_bus_error *error) {
        if (p->uid == (uid_t) -1)
                return sd_bus_error_set(error, SD_BUS_ERROR_ACCESS_DENIED,
                                        "The bus did not say which user the caller runs as");
        return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                 "Only the VM's owner (uid %u) may call it; the caller is uid %u", (unsigned) geteuid(),
                                 (unsigned) p->uid);
}

static int reply_refusal(BusPeer *p, sd_bus_message *m) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;

        (void) bus_refusal_set(p, &error);
        return sd_bus_reply_method_error(m, &error);
}

bool bus_refusal_count(VmBus *b, BusPeer *p) {
        uint64_t now = 0;

        (void) sd_event_now(b->event, CLOCK_MONOTONIC, &now);
        if (now - p->refusal_window_start >= BUS_REFUSAL_WINDOW_USEC) {
                p->refusal_window_start = now;
                p->refusals_in_window = 0;
        }
        if (p->refusals_in_window >= BUS_REFUSALS_AT_ONCE)
                return false;
        p->refusals_in_window++;
        return true;
}

static void deferred_free(BusDeferred *d) {
        d->peer->n_deferred--;
        d->peer->vm->n_deferred--;
        sd_bus_message_unref(d->call);
        free(d);
}

static int on_deferred_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        VmBus *b = userdata;

        for (unsigned i = 0; i < BUS_DEFERRED_PER_TICK && b->deferred; i++) {
                BusDeferred *d = b->deferred;
                int r;

                b->deferred = d->next;
                if (!b->deferred)
                        b->deferred_tail = NULL;
                r = reply_refusal(d->peer, d->call);
                if (r < 0)
                        log_debug_errno(r, "Failed to refuse a call of %s: %m", d->peer->name);
                deferred_free(d);
        }
        if (!b->deferred)
                return 0;
        /* From now, not from when the tick was due: a late loop must not answer the backlog in a burst. */
        (void) sd_event_now(b->event, CLOCK_MONOTONIC, &usec);
        (void) sd_event_source_set_time(s, usec + BUS_DEFERRED_TICK_USEC);
        return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

static int defer(VmBus *b, BusPeer *p, sd_bus_message *m) {
        BusDeferred *d;
        uint64_t now = 0;
        int r;

        if (p->n_deferred >= BUS_DEFERRED_MAX_PER_PEER || b->n_deferred >= BUS_DEFERRED_MAX) {
                if (p->n_dropped++ == 0)
                        log_debug("Dropping calls of %s (uid %u) without a reply: too many refusals queued", p->name,
                                  (unsigned) p->uid);
                return 1;
        }
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->call = sd_bus_message_ref(m);
        d->peer = p;
        p->n_deferred++;
        b->n_deferred++;
        if (b->deferred_tail)
                b->deferred_tail->next = d;
        else
                b->deferred = d;
        b->deferred_tail = d;

        if (b->deferred_timer && sd_event_source_get_enabled(b->deferred_timer, NULL) > 0)
                return 1;
        (void) sd_event_now(b->event, CLOCK_MONOTONIC, &now);
        if (!b->deferred_timer) {
                /* Accuracy 1 ms: sd-event's default (250 ms) would slow the pace tenfold. */
                r = sd_event_add_time(b->event, &b->deferred_timer, CLOCK_MONOTONIC, now + BUS_DEFERRED_TICK_USEC,
                                      1000, on_deferred_timer, b);
                return r < 0 ? r : 1;
        }
        (void) sd_event_source_set_time(b->deferred_timer, now + BUS_DEFERRED_TICK_USEC);
        r = sd_event_source_set_enabled(b->deferred_timer, SD_EVENT_ONESHOT);
        return r < 0 ? r : 1;
}

/* Whether the VM would refuse method call 'm' of a caller that is not its owner: every org.orrery method is. */
static bool is_owner_only_call(sd_bus_message *m) {
        const char *interface = sd_bus_message_get_interface(m);

        return !interface || strncmp(interface, "org.orrery.", strlen("org.orrery.")) == 0;
}

static int on_incoming(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        const char *sender;
        BusPeer *p;

        if (!sd_bus_message_is_method_call(m, NULL, NULL))
                return 0;
        sender = sd_bus_message_get_sender(m);
        if (!sender)
                return 0;
        p = bus_peer_find(b, sender);
        /* Its calls keep their order: all of them wait for the verdict (verdict.c). */
        if (p && p->asking)
                return bus_verdict_hold(p, m);
        if (!is_owner_only_call(m))
                return 0;
        if (!p)
                return bus_verdict_ask(b, sender, m);
        if (p->allowed)
                return 0;
        /* 1: handled here, no object dispatch. */
        if (bus_refusal_count(b, p)) {
                (void) reply_refusal(p, m);
                return 1;
        }
        if (sd_bus_message_get_expect_reply(m) == 0)
                return 1;
        return defer(b, p, m);
}

int bus_refusal_setup(VmBus *b) {
        return sd_bus_add_filter(b->bus, NULL, on_incoming, b);
}

void bus_refusal_forget(VmBus *b, BusPeer *p) {
        BusDeferred **dd = &b->deferred;

        b->deferred_tail = NULL;
        while (*dd) {
                BusDeferred *d = *dd;

                if (!p || d->peer == p) {
                        *dd = d->next;
                        deferred_free(d);
                        continue;
                }
                b->deferred_tail = d;
                dd = &d->next;
        }
        if (!b->deferred && b->deferred_timer)
                (void) sd_event_source_set_enabled(b->deferred_timer, SD_EVENT_OFF);
}

void bus_refusal_teardown(VmBus *b) {
        bus_refusal_forget(b, NULL);
        b->deferred_timer = sd_event_source_disable_unref(b->deferred_timer);
}

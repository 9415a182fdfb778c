/* SPDX-License-Identifier: MIT */
/*
 * libslirp on sd-event: see user.h.
 *
 * slirp wants poll(): slirp_pollfds_fill() names the descriptors and events
 * it wants and the longest it may sleep, slirp_pollfds_poll() takes the
 * results. Here every descriptor it names gets an sd-event io source (kept
 * across fills while the descriptor lives: unregister_poll_fd drops it) and
 * the sleep bound a time source; whenever one fires, the descriptors are
 * polled without waiting and the results handed to slirp, then the set is
 * filled again.
 */

#include <errno.h>
#include <poll.h>
#include <slirp/libslirp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "macro.h"
#include "net/user.h"
#include "time-util.h"

typedef struct Watch {
        int fd;
        sd_event_source *source;
} Watch;

typedef struct Timer {
        NetUser *nu;
        SlirpTimerId id;
        void *cb_opaque;
        sd_event_source *source;
} Timer;

struct NetUser {
        sd_event *event;
        VirtioNet *nic;
        Slirp *slirp;
        sd_event_source *tx_source;
        sd_event_source *timeout_source;
        sd_event_source *defer_source;  /* slirp's notify(): poll again soon */

        struct pollfd *pfd;             /* as of the last fill */
        size_t n_pfd, cap_pfd;
        Watch *watches;
        size_t n_watches, cap_watches;
        bool in_slirp;

        /* The host forwards slirp listens for, in the order they were added (slirp cannot list them). */
        NetForward forwards[NET_USER_MAX_FORWARDS];
        size_t n_forwards;
};

static int64_t cb_clock_get_ns(_unused_ void *opaque) {
        return (int64_t) now_nsec(CLOCK_MONOTONIC);
}

static ssize_t cb_send_packet(const void *buf, size_t len, void *opaque) {
        NetUser *nu = opaque;

        (void) virtio_net_receive(nu->nic, buf, len);
        return (ssize_t) len;
}

static void cb_guest_error(_unused_ const char *msg, _unused_ void *opaque) {
        /* The guest's own mistake: nothing for the host to do. */
}

static int timer_fired(_unused_ sd_event_source *s, _unused_ uint64_t usec, void *userdata) {
        Timer *t = userdata;

        slirp_handle_timer(t->nu->slirp, t->id, t->cb_opaque);
        return 0;
}

static void *cb_timer_new_opaque(SlirpTimerId id, void *cb_opaque, void *opaque) {
        NetUser *nu = opaque;
        Timer *t = calloc(1, sizeof(Timer));

        if (!t)
                return NULL;
        *t = (Timer) { .nu = nu, .id = id, .cb_opaque = cb_opaque };
        if (sd_event_add_time(nu->event, &t->source, CLOCK_MONOTONIC, UINT64_MAX, 0, timer_fired, t) < 0) {
                free(t);
                return NULL;
        }
        sd_event_source_set_enabled(t->source, SD_EVENT_OFF);
        return t;
}

static void cb_timer_free(void *timer, _unused_ void *opaque) {
        Timer *t = timer;

        if (!t)
                return;
        sd_event_source_disable_unref(t->source);
        free(t);
}

static void cb_timer_mod(void *timer, int64_t expire_ms, _unused_ void *opaque) {
        Timer *t = timer;

        if (!t)
                return;
        sd_event_source_set_time(t->source, (uint64_t) MAX(expire_ms, 0) * 1000ULL);
        sd_event_source_set_enabled(t->source, SD_EVENT_ONESHOT);
}

static void cb_register_poll_fd(_unused_ int fd, _unused_ void *opaque) {
}

static void drop_watch(NetUser *nu, size_t i) {
        sd_event_source_disable_unref(nu->watches[i].source);
        nu->watches[i] = nu->watches[--nu->n_watches];
}

static void cb_unregister_poll_fd(int fd, void *opaque) {
        NetUser *nu = opaque;

        /* Before slirp closes it: the io source must not outlive the descriptor. */
        for (size_t i = 0; i < nu->n_watches; i++)
                if (nu->watches[i].fd == fd) {
                        drop_watch(nu, i);
                        return;
                }
}

static void cb_notify(void *opaque) {
        NetUser *nu = opaque;

        sd_event_source_set_enabled(nu->defer_source, SD_EVENT_ONESHOT);
}

static const SlirpCb callbacks = {
        .send_packet = cb_send_packet,
        .guest_error = cb_guest_error,
        .clock_get_ns = cb_clock_get_ns,
        .timer_free = cb_timer_free,
        .timer_mod = cb_timer_mod,
        .register_poll_fd = cb_register_poll_fd,
        .unregister_poll_fd = cb_unregister_poll_fd,
        .notify = cb_notify,
        .timer_new_opaque = cb_timer_new_opaque,
};

static int add_poll(int fd, int events, void *opaque) {
        NetUser *nu = opaque;
        short ev = 0;

        if (nu->n_pfd == nu->cap_pfd) {
                size_t cap = nu->cap_pfd ? nu->cap_pfd * 2 : 16;
                struct pollfd *a = realloc(nu->pfd, cap * sizeof(struct pollfd));

                if (!a)
                        return -1;
                nu->pfd = a;
                nu->cap_pfd = cap;
        }
        if (events & SLIRP_POLL_IN)
                ev |= POLLIN;
        if (events & SLIRP_POLL_OUT)
                ev |= POLLOUT;
        if (events & SLIRP_POLL_PRI)
                ev |= POLLPRI;
        nu->pfd[nu->n_pfd] = (struct pollfd) { .fd = fd, .events = ev };
        return (int) nu->n_pfd++;
}

static int get_revents(int idx, void *opaque) {
        NetUser *nu = opaque;
        short re;
        int r = 0;

        if (idx < 0 || (size_t) idx >= nu->n_pfd)
                return 0;
        re = nu->pfd[idx].revents;
        if (re & POLLIN)
                r |= SLIRP_POLL_IN;
        if (re & POLLOUT)
                r |= SLIRP_POLL_OUT;
        if (re & POLLPRI)
                r |= SLIRP_POLL_PRI;
        if (re & POLLERR)
                r |= SLIRP_POLL_ERR;
        if (re & POLLHUP)
                r |= SLIRP_POLL_HUP;
        return r;
}

static int io_ready(sd_event_source *s, int fd, uint32_t revents, void *userdata);

static void refill(NetUser *nu) {
        uint32_t timeout = UINT32_MAX;

        nu->n_pfd = 0;
        slirp_pollfds_fill(nu->slirp, &timeout, add_poll, nu);

        /* Watches for descriptors slirp no longer asks about go; the others follow its events. */
        for (size_t i = 0; i < nu->n_watches;) {
                bool wanted = false;

                for (size_t k = 0; k < nu->n_pfd; k++)
                        wanted |= nu->pfd[k].fd == nu->watches[i].fd;
                if (!wanted)
                        drop_watch(nu, i);
                else
                        i++;
        }
        for (size_t k = 0; k < nu->n_pfd; k++) {
                uint32_t ev = (uint32_t) nu->pfd[k].events;
                Watch *w = NULL;

                for (size_t i = 0; i < nu->n_watches; i++)
                        if (nu->watches[i].fd == nu->pfd[k].fd)
                                w = &nu->watches[i];
                if (w) {
                        uint32_t cur = 0;

                        /* Two entries for one fd: watch the union. */
                        if (sd_event_source_get_io_events(w->source, &cur) >= 0 && (cur | ev) != cur)
                                sd_event_source_set_io_events(w->source, cur | ev);
                        continue;
                }
                if (nu->n_watches == nu->cap_watches) {
                        size_t cap = nu->cap_watches ? nu->cap_watches * 2 : 16;
                        Watch *a = realloc(nu->watches, cap * sizeof(Watch));

                        if (!a)
                                continue;
                        nu->watches = a;
                        nu->cap_watches = cap;
                }
                w = &nu->watches[nu->n_watches];
                w->fd = nu->pfd[k].fd;
                if (sd_event_add_io(nu->event, &w->source, w->fd, ev, io_ready, nu) < 0)
                        continue;
                nu->n_watches++;
        }

        if (timeout == UINT32_MAX)
                sd_event_source_set_enabled(nu->timeout_source, SD_EVENT_OFF);
        else {
                sd_event_source_set_time(nu->timeout_source, now_usec(CLOCK_MONOTONIC) + (uint64_t) timeout * USEC_PER_MSEC);
                sd_event_source_set_enabled(nu->timeout_source, SD_EVENT_ONESHOT);
        }
}

/* Polls slirp's descriptors without waiting, lets it act, and fills again. */
static void run_slirp(NetUser *nu) {
        if (nu->n_pfd > 0)
                (void) poll(nu->pfd, nu->n_pfd, 0);
        slirp_pollfds_poll(nu->slirp, 0, get_revents, nu);
        refill(nu);
}

static int io_ready(_unused_ sd_event_source *s, _unused_ int fd, _unused_ uint32_t revents, void *userdata) {
        run_slirp(userdata);
        return 0;
}

static int timeout_fired(_unused_ sd_event_source *s, _unused_ uint64_t usec, void *userdata) {
        run_slirp(userdata);
        return 0;
}

static int defer_fired(_unused_ sd_event_source *s, void *userdata) {
        run_slirp(userdata);
        return 0;
}

static int tx_ready(_unused_ sd_event_source *s, _unused_ int fd, _unused_ uint32_t revents, void *userdata) {
        NetUser *nu = userdata;
        static uint8_t buf[VIRTIO_NET_FRAME_MAX];
        ssize_t n;

        /* Bounded per wakeup so that a chatty guest cannot starve the rest of the loop. */
        for (unsigned i = 0; i < 512; i++) {
                n = virtio_net_tx_pop(nu->nic, buf, sizeof(buf));
                if (n == 0)
                        break;
                if (n > 0)
                        slirp_input(nu->slirp, buf, (int) n);
        }
        refill(nu);
        return 0;
}

static NetForward *find_forward(NetUser *nu, bool udp, struct in_addr host_addr, uint16_t host_port) {
        for (size_t i = 0; i < nu->n_forwards; i++) {
                NetForward *f = &nu->forwards[i];

                if (f->udp == udp && f->host_addr.s_addr == host_addr.s_addr && f->host_port == host_port)
                        return f;
        }
        return NULL;
}

int net_user_add_forward(NetUser *nu, const NetForward *f) {
        if (!nu || !f || f->host_port == 0 || f->guest_port == 0)
                return -EINVAL;
        if (find_forward(nu, f->udp, f->host_addr, f->host_port))
                return -EADDRINUSE;
        if (nu->n_forwards >= NET_USER_MAX_FORWARDS)
                return -ENOSPC;
        if (slirp_add_hostfwd(nu->slirp, f->udp, f->host_addr, f->host_port, f->guest_addr, f->guest_port) < 0)
                return -EADDRINUSE;
        nu->forwards[nu->n_forwards++] = *f;
        refill(nu);
        return 0;
}

int net_user_remove_forward(NetUser *nu, bool udp, struct in_addr host_addr, uint16_t host_port) {
        NetForward *f;

        if (!nu)
                return -EINVAL;
        f = find_forward(nu, udp, host_addr, host_port);
        if (!f)
                return -ENOENT;
        if (slirp_remove_hostfwd(nu->slirp, udp, host_addr, host_port) < 0)
                return -ENOENT;
        memmove(f, f + 1, (size_t) (nu->forwards + nu->n_forwards - (f + 1)) * sizeof(*f));
        nu->n_forwards--;
        refill(nu);
        return 0;
}

void net_user_close_forwards(NetUser *nu) {
        for (size_t i = 0; nu && i < nu->n_forwards; i++) {
                const NetForward *f = &nu->forwards[i];
                (void) slirp_remove_hostfwd(nu->slirp, f->udp, f->host_addr, f->host_port);
        }
        if (nu)
                refill(nu);
}

size_t net_user_reopen_forwards(NetUser *nu) {
        size_t failed = 0;

        for (size_t i = 0; nu && i < nu->n_forwards; i++) {
                const NetForward *f = &nu->forwards[i];
                if (slirp_add_hostfwd(nu->slirp, f->udp, f->host_addr, f->host_port, f->guest_addr, f->guest_port) < 0)
                        failed++;
        }
        if (nu)
                refill(nu);
        return failed;
}

size_t net_user_n_forwards(const NetUser *nu) {
        return nu ? nu->n_forwards : 0;
}

const NetForward *net_user_forward(const NetUser *nu, size_t i) {
        return nu && i < nu->n_forwards ? &nu->forwards[i] : NULL;
}

int net_user_new(sd_event *event, const NetSpec *spec, VirtioNet *nic, NetUser **ret, char *error, size_t error_size) {
        _cleanup_(net_user_freep) NetUser *nu = NULL;
        SlirpConfig cfg = {
                .version = 4,
                .restricted = spec->restricted,
                .in_enabled = true,
                .vnetwork.s_addr = htonl(0x0a000200),   /* 10.0.2.0 */
                .vnetmask.s_addr = htonl(0xffffff00),
                .vhost.s_addr = htonl(0x0a000202),      /* 10.0.2.2 */
                .vdhcp_start.s_addr = htonl(0x0a00020f), /* 10.0.2.15 */
                .vnameserver.s_addr = htonl(0x0a000203), /* 10.0.2.3 */
                .vhostname = "orrery",
                .in6_enabled = false,
        };
        int r;

        nu = calloc(1, sizeof(NetUser));
        if (!nu)
                goto oom;
        nu->event = sd_event_ref(event);
        nu->nic = nic;

        r = sd_event_add_time(event, &nu->timeout_source, CLOCK_MONOTONIC, UINT64_MAX, 0, timeout_fired, nu);
        if (r < 0)
                goto fail;
        sd_event_source_set_enabled(nu->timeout_source, SD_EVENT_OFF);
        r = sd_event_add_defer(event, &nu->defer_source, defer_fired, nu);
        if (r < 0)
                goto fail;
        sd_event_source_set_enabled(nu->defer_source, SD_EVENT_OFF);

        nu->slirp = slirp_new(&cfg, &callbacks, nu);
        if (!nu->slirp)
                goto oom;

        for (size_t i = 0; i < spec->n_forwards; i++) {
                const NetForward *f = &spec->forwards[i];
                char a[INET_ADDRSTRLEN] = "?";

                r = net_user_add_forward(nu, f);
                if (r == -ENOSPC) {
                        snprintf(error, error_size, "net '%s': more than %u host forwards", spec->id,
                                 NET_USER_MAX_FORWARDS);
                        return r;
                }
                if (r < 0) {
                        inet_ntop(AF_INET, &f->host_addr, a, sizeof(a));
                        snprintf(error, error_size, "net '%s': cannot forward %s:%s:%u (the port is in use, or the address is not the host's)",
                                 spec->id, f->udp ? "udp" : "tcp", a, f->host_port);
                        return -EADDRINUSE;
                }
        }

        r = sd_event_add_io(event, &nu->tx_source, virtio_net_tx_fd(nic), EPOLLIN, tx_ready, nu);
        if (r < 0)
                goto fail;

        refill(nu);
        *ret = TAKE_PTR(nu);
        return 0;

oom:
        r = -ENOMEM;
fail:
        snprintf(error, error_size, "net: cannot start user networking: %s", strerror(-r));
        return r;
}

NetUser *net_user_free(NetUser *nu) {
        if (!nu)
                return NULL;
        sd_event_source_disable_unref(nu->tx_source);
        for (size_t i = 0; i < nu->n_watches; i++)
                sd_event_source_disable_unref(nu->watches[i].source);
        nu->n_watches = 0;
        if (nu->slirp)
                slirp_cleanup(nu->slirp);
        sd_event_source_disable_unref(nu->timeout_source);
        sd_event_source_disable_unref(nu->defer_source);
        sd_event_unref(nu->event);
        free(nu->watches);
        free(nu->pfd);
        free(nu);
        return NULL;
}

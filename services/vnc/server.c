/* SPDX-License-Identifier: MIT */
/*
 * libvncserver inside sd-event, single-threaded.
 *
 * Why one thread: libvncserver's threaded mode runs a thread per client
 * that reads the framebuffer and calls the input hooks, while the VM's
 * mapping, its damage and its disappearance arrive on the bus connection.
 * A mapping can be unmapped (the VM went away, the mode changed) while a
 * client thread encodes from it. Running everything on the event loop
 * thread makes that impossible by construction: the framebuffer pointer
 * libvncserver reads is swapped only between two of its calls. The cost is
 * that one client's socket that stops draining delays the others (never
 * the VM) for at most rfbMaxClientWait, set below.
 *
 * We never call rfbProcessEvents() (select() on everything, FD_SETSIZE
 * limits): our own listening sockets hand accepted connections to
 * rfbNewClient(), each client's socket is an sd-event io source that calls
 * rfbProcessClientMessage(), and damage calls rfbUpdateClient(). After every
 * call into libvncserver that may have closed a client, the closed ones are
 * reaped (rfbClientConnectionGone) before anything can reuse their fd.
 *
 * The framebuffer is the VM's PROT_READ mapping: libvncserver must never
 * write into it. It would only do so to draw a server-side cursor, so the
 * screen has no cursor (screen->cursor = NULL); clients that can draw a
 * cursor themselves get ours through getCursorPtr.
 *
 * Clients before the end of the handshake (and of the authentication) are
 * "pending": counted apart from the others (SERVER_MAX_PENDING, and
 * SERVER_MAX_PENDING_PER_SOURCE per source address), dropped when they do
 * not finish within the handshake timeout, and, when a new connection
 * finds their quota full, the oldest pending one of that source (or of
 * all) makes room. So idle connections can neither lock the owner out nor
 * take the places of authenticated clients (SERVER_MAX_CLIENTS of them).
 *
 * A wrong password makes the next answer to that source wait (guard.h):
 * a pending client's authentication response is simply not read until the
 * source's delay is over.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/input-event-codes.h>
#include <rfb/rfb.h>
#include <systemd/sd-daemon.h>

#include "guard.h"
#include "listen.h"
#include "log.h"
#include "macro.h"
#include "placeholder.h"
#include "server.h"

/* libvncserver exports this but does not declare it: decoded WebSocket
 * bytes may wait in its buffer while the socket itself has nothing. */
rfbBool webSocketsHasDataInBuffer(rfbClientPtr cl);

#define KEY_CODES (KEY_MAX + 1)
/* Messages handled per wakeup of one client before the others get a turn
 * (and before coalesced pointer motion is sent). */
#define CLIENT_BATCH 256
/* How long libvncserver waits for a client to take or give a message. */
#define CLIENT_WAIT_MS 5000
#define PLACEHOLDER_WIDTH 640
#define PLACEHOLDER_HEIGHT 480
#define CONSOLE_ID 0
#define SYNC_TIMEOUT_USEC (2ULL * 1000000ULL)
/*
 * Event priorities: the bus first (damage is only marked there, which is
 * cheap), then encoding for the clients, then client input and new
 * connections. When encoding is slower than the VM's 60 Hz damage (many
 * clients, a costly encoding, a busy host), the Updates queued meanwhile
 * are all marked before the next encoding pass: clients get one larger
 * update instead of a growing backlog.
 */
#define PRIORITY_FLUSH 10
#define PRIORITY_CLIENTS 20

/* RFB pointer mask bits. */
#define RFB_BUTTON_LEFT (1u << 0)
#define RFB_BUTTON_MIDDLE (1u << 1)
#define RFB_BUTTON_RIGHT (1u << 2)
#define RFB_WHEEL_UP (1u << 3)
#define RFB_WHEEL_DOWN (1u << 4)
#define RFB_WHEEL_LEFT (1u << 5)
#define RFB_WHEEL_RIGHT (1u << 6)
#define RFB_BUTTON_BACK (1u << 7)
#define RFB_BUTTON_FORWARD (1u << 8)

static const struct {
        uint32_t bit;
        uint32_t code;
} button_map[] = {
        { RFB_BUTTON_LEFT, BTN_LEFT },    { RFB_BUTTON_MIDDLE, BTN_MIDDLE },   { RFB_BUTTON_RIGHT, BTN_RIGHT },
        { RFB_BUTTON_BACK, BTN_SIDE },    { RFB_BUTTON_FORWARD, BTN_EXTRA },
};
#define N_BUTTONS ELEMENTSOF(button_map)

typedef struct VncClient VncClient;

struct Server {
        uint64_t handshake_timeout_usec;
        uint16_t port;
        sd_event *event;
        OrreryClient *client;
        OrreryVm *vm;
        char *vm_name;
        const Keymap *keymap;
        bool view_only;

        rfbScreenInfoPtr screen;
        rfbCursorPtr cursor; /* sent to clients that draw it themselves */
        char *desktop_name;

        /* What screen->frameBuffer points to: the VM's read-only mapping
         * (showing_vm), or placeholder, our own writable memory. */
        bool showing_vm;
        uint32_t *placeholder;
        uint32_t width, height;

        /* Sends what changed to the clients, once the bus has nothing queued. */
        sd_event_source *flush;

        sd_event_source *listeners[SERVER_MAX_LISTEN];
        size_t n_listeners;

        VncClient *clients;
        size_t n_clients; /* past the handshake */
        size_t n_pending; /* before the end of the handshake and authentication */

        Guard guard;

        /* How many clients hold each key/button down: the VM sees a press when
         * the first one presses, a release when the last one releases. */
        uint8_t key_holders[KEY_CODES];
        uint8_t button_holders[N_BUTTONS];
};

struct VncClient {
        Server *server;
        rfbClientPtr cl;
        int fd;
        sd_event_source *io;
        VncClient *next, *prev;
        char name[LISTEN_PEER_MAX];   /* "ADDRESS:PORT", for messages */
        char source[LISTEN_PEER_MAX]; /* the address it counts against */

        bool pending;              /* the handshake (and authentication) is not over */
        uint64_t accepted;         /* CLOCK_MONOTONIC usec */
        sd_event_source *deadline; /* drops a pending client that takes too long */
        sd_event_source *release;  /* a held authentication response is read */

        uint8_t keys[KEY_CODES / 8]; /* evdev codes this client holds */
        uint32_t buttons;            /* RFB mask as last seen */
        bool motion_pending;
        uint32_t x, y;         /* where the client last put the pointer */
        uint32_t sent_x, sent_y;
        bool sent_valid;
        uint64_t n_pointer_events, n_motion_sent;

        /* At debug level only: when the oldest Update not yet sent to this
         * client arrived (CLOCK_MONOTONIC ns, 0: none), and how many
         * FramebufferUpdates it had been sent then (see timing_check). */
        uint64_t update_at_ns;
        int updates_sent_then;
};

static inline uint32_t *mfree_u32(uint32_t *p) {
        free(p);
        return NULL;
}

/* ---------------------------------------------------------------------- */
/* libvncserver's logging goes to our debug log                            */

_printf_(1, 2) static void rfb_log(const char *format, ...) {
        va_list ap;
        char buf[512];
        size_t n;

        if (!log_level_enabled(LOG_DEBUG))
                return;
        va_start(ap, format);
        vsnprintf(buf, sizeof(buf), format, ap);
        va_end(ap);
        n = strlen(buf);
        while (n > 0 && buf[n - 1] == '\n')
                buf[--n] = 0;
        log_debug("libvncserver: %s", buf);
}

/* ---------------------------------------------------------------------- */
/* Clients: lifecycle                                                      */

static bool key_test(const uint8_t *bits, uint32_t code) {
        return bits[code / 8] & (1u << (code % 8));
}

static void key_set(uint8_t *bits, uint32_t code, bool on) {
        if (on)
                bits[code / 8] |= (uint8_t) (1u << (code % 8));
        else
                bits[code / 8] &= (uint8_t) ~(1u << (code % 8));
}

static bool vm_ready(Server *s) {
        return s->vm && orrery_vm_is_ready(s->vm);
}

static void client_key(VncClient *vc, uint32_t code, bool down) {
        Server *s = vc->server;

        if (code >= KEY_CODES || key_test(vc->keys, code) == down)
                return; /* a client's autorepeat, or a release of a key it does not hold */

        key_set(vc->keys, code, down);
        if (down) {
                if (s->key_holders[code]++ == 0)
                        (void) orrery_vm_key_press(s->vm, code);
        } else if (s->key_holders[code] > 0 && --s->key_holders[code] == 0)
                (void) orrery_vm_key_release(s->vm, code);
}

static void client_flush_motion(VncClient *vc) {
        Server *s = vc->server;

        if (!vc->motion_pending)
                return;
        vc->motion_pending = false;
        if (vc->sent_valid && vc->sent_x == vc->x && vc->sent_y == vc->y)
                return;
        if (orrery_vm_mouse_set_abs_position(s->vm, vc->x, vc->y) >= 0) {
                vc->sent_x = vc->x;
                vc->sent_y = vc->y;
                vc->sent_valid = true;
                vc->n_motion_sent++;
        }
}

static void client_set_buttons(VncClient *vc, uint32_t mask) {
        Server *s = vc->server;
        uint32_t changed = mask ^ vc->buttons, pressed = changed & mask;

        vc->buttons = mask;
        for (size_t i = 0; i < N_BUTTONS; i++) {
                if (!(changed & button_map[i].bit))
                        continue;
                if (mask & button_map[i].bit) {
                        if (s->button_holders[i]++ == 0)
                                (void) orrery_vm_mouse_press(s->vm, button_map[i].code);
                } else if (s->button_holders[i] > 0 && --s->button_holders[i] == 0)
                        (void) orrery_vm_mouse_release(s->vm, button_map[i].code);
        }

        /* Wheel "buttons" are pressed and released per notch: count presses. */
        if (pressed & (RFB_WHEEL_UP | RFB_WHEEL_DOWN | RFB_WHEEL_LEFT | RFB_WHEEL_RIGHT)) {
                int32_t v = !!(pressed & RFB_WHEEL_UP) - !!(pressed & RFB_WHEEL_DOWN);
                int32_t h = !!(pressed & RFB_WHEEL_RIGHT) - !!(pressed & RFB_WHEEL_LEFT);

                if (v != 0 || h != 0)
                        (void) orrery_vm_mouse_wheel(s->vm, v, h);
        }
}

/* Everything this client holds is let go: no key stays stuck in the guest. */
static void client_release_all(VncClient *vc) {
        Server *s = vc->server;

        if (vm_ready(s)) {
                client_flush_motion(vc);
                client_set_buttons(vc, 0);
                for (uint32_t code = 0; code < KEY_CODES; code++)
                        if (key_test(vc->keys, code))
                                client_key(vc, code, false);
        }
        memset(vc->keys, 0, sizeof(vc->keys));
        vc->buttons = 0;
}

static void on_client_gone(rfbClientPtr cl) {
        VncClient *vc = cl->clientData;
        Server *s;

        if (!vc)
                return;
        s = vc->server;
        cl->clientData = NULL;

        client_release_all(vc);
        vc->io = sd_event_source_disable_unref(vc->io);
        vc->deadline = sd_event_source_disable_unref(vc->deadline);
        vc->release = sd_event_source_disable_unref(vc->release);
        if (vc->prev)
                vc->prev->next = vc->next;
        else
                s->clients = vc->next;
        if (vc->next)
                vc->next->prev = vc->prev;
        if (vc->pending)
                s->n_pending--;
        else
                s->n_clients--;
        log_info("client %s disconnected (%zu left; %" PRIu64 " pointer events, %" PRIu64 " positions sent)",
                 vc->name, s->n_clients, vc->n_pointer_events, vc->n_motion_sent);
        free(vc);
}

/* After any call into libvncserver: clients it closed are freed now, before
 * their fd number can come back. (Connections it refuses in rfbNewClient()
 * it frees itself; every other client is on our list.) */
/* ---------------------------------------------------------------------- */
/* Timing of Update -> FramebufferUpdate, logged at debug level            */

static uint64_t monotonic_ns(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

/* An Update arrived: clients that had nothing pending start waiting now.
 * Skipped unless debug logging is on, so the normal cost is one compare. */
static void timing_mark(Server *s) {
        uint64_t now;

        if (!log_level_enabled(LOG_DEBUG))
                return;
        now = monotonic_ns();
        for (VncClient *vc = s->clients; vc; vc = vc->next)
                if (!vc->pending && vc->update_at_ns == 0) {
                        vc->update_at_ns = now;
                        vc->updates_sent_then = rfbStatGetMessageCountSent(vc->cl, rfbFramebufferUpdate);
                }
}

/*
 * After libvncserver had a chance to write to the client: when a
 * FramebufferUpdate went out since the oldest pending Update, one line
 * for bench/vnc_vs_qemu.py. "written" is after the write() returned (the
 * update is in the socket), so it covers marking, encoding and the copy
 * into the kernel, and also any wait for the client's next request.
 */
static void timing_check(VncClient *vc) {
        uint64_t now;

        if (vc->update_at_ns == 0 ||
            rfbStatGetMessageCountSent(vc->cl, rfbFramebufferUpdate) <= vc->updates_sent_then)
                return;
        now = monotonic_ns();
        log_debug("vnc-timing client=%s update_ns=%" PRIu64 " written_ns=%" PRIu64 " latency_us=%" PRIu64, vc->name,
                  vc->update_at_ns, now, (now - vc->update_at_ns) / 1000);
        vc->update_at_ns = 0;
}

static void server_reap(Server *s) {
        VncClient *next;

        for (VncClient *vc = s->clients; vc; vc = next) {
                next = vc->next;
                if (vc->cl->sock == RFB_INVALID_SOCKET)
                        rfbClientConnectionGone(vc->cl); /* calls on_client_gone(), which frees vc */
        }
}

/* Sends what each client asked for and what changed. */
static void server_update_clients(Server *s) {
        for (VncClient *vc = s->clients; vc; vc = vc->next)
                if (vc->cl->sock != RFB_INVALID_SOCKET) {
                        (void) rfbUpdateClient(vc->cl);
                        timing_check(vc);
                }
        server_reap(s);
}

static bool client_has_input(VncClient *vc) {
        struct pollfd p = { .fd = vc->fd, .events = POLLIN };

        if (webSocketsHasDataInBuffer(vc->cl))
                return true;
        return poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR));
}

static uint64_t now_usec(Server *s) {
        uint64_t now = 0;

        (void) sd_event_now(s->event, CLOCK_MONOTONIC, &now);
        return now;
}

/* A pending client that got through the handshake counts as a client now. */
static void client_check_done(VncClient *vc) {
        Server *s = vc->server;

        if (!vc->pending || vc->cl->sock == RFB_INVALID_SOCKET || vc->cl->state != RFB_NORMAL)
                return;
        if (s->n_clients >= SERVER_MAX_CLIENTS) {
                log_notice("refusing client %s: %d clients already", vc->name, SERVER_MAX_CLIENTS);
                rfbCloseClient(vc->cl);
                return;
        }
        vc->pending = false;
        vc->deadline = sd_event_source_disable_unref(vc->deadline);
        s->n_pending--;
        s->n_clients++;
        log_info("client %s connected (%zu now)", vc->name, s->n_clients);
}

static void client_process(VncClient *vc);

static int on_client_release(sd_event_source *source, uint64_t usec, void *userdata) {
        VncClient *vc = userdata;

        (void) sd_event_source_set_enabled(vc->io, SD_EVENT_ON);
        client_process(vc);
        return 0;
}

/*
 * The client sent its authentication response while its source is still
 * within a delay after a wrong password: the response is read then, not
 * now. Returns true when the client is held.
 */
static bool client_hold(VncClient *vc) {
        Server *s = vc->server;
        uint64_t at, now = now_usec(s);
        int r;

        if (!vc->pending || vc->cl->state != RFB_AUTHENTICATION)
                return false;
        at = guard_next_allowed(&s->guard, vc->source, now);
        if (at == 0)
                return false;

        if (vc->release)
                r = sd_event_source_set_time(vc->release, at);
        else
                r = sd_event_add_time(s->event, &vc->release, CLOCK_MONOTONIC, at, 0, on_client_release, vc);
        if (r >= 0)
                r = sd_event_source_set_enabled(vc->release, SD_EVENT_ONESHOT);
        if (r < 0) {
                log_warning_errno(r, "client %s: cannot delay its authentication, closing it: %m", vc->name);
                rfbCloseClient(vc->cl);
                return true;
        }
        (void) sd_event_source_set_enabled(vc->io, SD_EVENT_OFF);
        /* The wait is ours, not the client's: its handshake time starts again after it. */
        (void) sd_event_source_set_time(vc->deadline, at + s->handshake_timeout_usec);
        log_debug("client %s: authentication answered in %" PRIu64 " ms (after wrong passwords from %s)", vc->name,
                  (at - now) / 1000, vc->source);
        return true;
}

static void client_process(VncClient *vc) {
        Server *s = vc->server;
        rfbClientPtr cl = vc->cl;

        /* A batch of messages, then the pointer where the batch left it: a
         * client flooding motion costs the VM one SetAbsPosition per batch. */
        for (unsigned n = 0; n < CLIENT_BATCH; n++) {
                if (client_hold(vc))
                        break;
                rfbProcessClientMessage(cl);
                client_check_done(vc);
                if (cl->sock == RFB_INVALID_SOCKET || !client_has_input(vc))
                        break;
        }
        if (cl->sock != RFB_INVALID_SOCKET && !vc->pending) {
                client_flush_motion(vc);
                (void) rfbUpdateClient(cl);
        }
        timing_check(vc);
        server_reap(s); /* may free vc */
}

static int on_client_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        client_process(userdata);
        return 0;
}

static int on_client_deadline(sd_event_source *source, uint64_t usec, void *userdata) {
        VncClient *vc = userdata;
        Server *s = vc->server;

        if (!vc->pending || vc->cl->sock == RFB_INVALID_SOCKET)
                return 0;
        log_notice("client %s: handshake not finished within %" PRIu64 " ms, closing it", vc->name,
                   s->handshake_timeout_usec / 1000);
        rfbCloseClient(vc->cl);
        server_reap(s);
        return 0;
}

/* The oldest pending client, of source (or of all when source is NULL), and how many there are. */
static VncClient *oldest_pending(Server *s, const char *source, size_t *ret_n) {
        VncClient *oldest = NULL;
        size_t n = 0;

        for (VncClient *vc = s->clients; vc; vc = vc->next) {
                if (!vc->pending || vc->cl->sock == RFB_INVALID_SOCKET)
                        continue;
                if (source && !streq(vc->source, source))
                        continue;
                n++;
                if (!oldest || vc->accepted < oldest->accepted)
                        oldest = vc;
        }
        *ret_n = n;
        return oldest;
}

/* Room for one more pending client: the oldest pending one of its source, or of all, goes. */
static void make_room(Server *s, const char *source) {
        VncClient *victim;
        size_t n;

        victim = oldest_pending(s, source, &n);
        if (n >= SERVER_MAX_PENDING_PER_SOURCE) {
                log_notice("client %s: %zu connections from %s before the end of their handshake; closing the oldest",
                           victim->name, n, source);
                rfbCloseClient(victim->cl);
        }
        victim = oldest_pending(s, NULL, &n);
        if (n >= SERVER_MAX_PENDING) {
                log_notice("client %s: %zu connections before the end of their handshake; closing the oldest",
                           victim->name, n);
                rfbCloseClient(victim->cl);
        }
        /* Closed clients are reaped after rfbNewClient() returns (on_listen_io). */
}

static enum rfbNewClientAction on_new_client(rfbClientPtr cl) {
        Server *s = cl->screen->screenData;
        _cleanup_free_ VncClient *vc = NULL;
        int r;

        vc = calloc(1, sizeof(VncClient));
        if (!vc)
                return RFB_CLIENT_REFUSE;
        vc->server = s;
        vc->cl = cl;
        vc->fd = cl->sock;
        vc->pending = true;
        vc->accepted = now_usec(s);
        r = listen_peer(vc->fd, vc->name, vc->source);
        if (r < 0) {
                log_debug_errno(r, "Refusing a connection whose peer is unknown: %m");
                return RFB_CLIENT_REFUSE;
        }
        make_room(s, vc->source);

        r = sd_event_add_io(s->event, &vc->io, vc->fd, EPOLLIN, on_client_io, vc);
        if (r >= 0)
                r = sd_event_source_set_priority(vc->io, PRIORITY_CLIENTS);
        if (r >= 0)
                r = sd_event_add_time_relative(s->event, &vc->deadline, CLOCK_MONOTONIC, s->handshake_timeout_usec, 0,
                                               on_client_deadline, vc);
        if (r < 0) {
                vc->io = sd_event_source_disable_unref(vc->io);
                vc->deadline = sd_event_source_disable_unref(vc->deadline);
                log_error_errno(r, "Cannot watch the socket of client %s: %m", vc->name);
                return RFB_CLIENT_REFUSE;
        }
        cl->clientData = vc;
        cl->clientGoneHook = on_client_gone;
        if (s->view_only)
                cl->viewOnly = TRUE;

        vc->next = s->clients;
        if (s->clients)
                s->clients->prev = vc;
        s->clients = TAKE_PTR(vc);
        s->n_pending++;
        log_debug("client %s: connection accepted (%zu before the end of their handshake)", s->clients->name,
                  s->n_pending);
        return RFB_CLIENT_ACCEPT;
}

static int on_listen_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        Server *s = userdata;
        int cfd;

        cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (cfd < 0) {
                if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                        log_error_errno(errno, "Cannot accept a connection: %m");
                return 0;
        }
        if (cfd >= FD_SETSIZE) {
                /* libvncserver keeps an fd_set of its clients. */
                log_error("Refusing a connection: file descriptor %d is beyond FD_SETSIZE", cfd);
                close(cfd);
                return 0;
        }

        /* Hands the socket over (closed by libvncserver when it refuses it). This
         * waits up to 100 ms for a WebSocket handshake to tell them apart. */
        (void) rfbNewClient(s->screen, cfd);
        server_reap(s);
        return 0;
}

/*
 * Waits (briefly) until the VM has handled every call sent before: the VM
 * checks each caller's credentials with the bus, which fails once the
 * caller is gone, so the releases sent on the way out must be handled
 * before we disconnect. Peer.Ping is answered after them.
 */
static void server_sync_vm(Server *s) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL, *reply = NULL;
        sd_bus *bus = orrery_client_get_bus(s->client);
        const char *owner = s->vm ? orrery_vm_get_owner(s->vm) : NULL;

        if (!owner)
                return;
        if (sd_bus_message_new_method_call(bus, &call, owner, "/", "org.freedesktop.DBus.Peer", "Ping") < 0)
                return;
        (void) sd_bus_call(bus, call, SYNC_TIMEOUT_USEC, NULL, &reply);
}

void server_disconnect_all(Server *s) {
        bool any = false;

        for (VncClient *vc = s->clients; vc; vc = vc->next)
                if (vc->cl->sock != RFB_INVALID_SOCKET) {
                        rfbCloseClient(vc->cl);
                        any = true;
                }
        server_reap(s);
        if (any)
                server_sync_vm(s);
}

int server_add_listener(Server *s, int fd) {
        int r;

        if (s->n_listeners >= SERVER_MAX_LISTEN)
                return -E2BIG;
        r = sd_event_add_io(s->event, &s->listeners[s->n_listeners], fd, EPOLLIN, on_listen_io, s);
        if (r < 0)
                return r;
        (void) sd_event_source_set_priority(s->listeners[s->n_listeners], PRIORITY_CLIENTS);
        (void) sd_event_source_set_io_fd_own(s->listeners[s->n_listeners], true);
        s->n_listeners++;
        return 0;
}

/* ---------------------------------------------------------------------- */
/* Input hooks                                                             */

/* Whether this client holds any of the keys. */
static bool client_holds(VncClient *vc, uint32_t a, uint32_t b) {
        return key_test(vc->keys, a) || key_test(vc->keys, b);
}

static void on_key(rfbBool down, rfbKeySym keysym, rfbClientPtr cl) {
        VncClient *vc = cl->clientData;
        uint32_t needs = 0, shift = 0, level3 = 0;
        Server *s;
        int code;

        if (!vc || cl->viewOnly)
                return;
        s = vc->server;
        code = keymap_lookup_modifiers(s->keymap, (uint32_t) keysym, &needs);
        if (code < 0) {
                log_debug("client %s: keysym 0x%04x has no key in the layout, ignored", vc->name,
                          (unsigned) keysym);
                return;
        }
        log_debug("client %s: keysym 0x%04x %s -> key %d%s%s", vc->name, (unsigned) keysym,
                  down ? "down" : "up", code, needs & KEYMAP_NEED_SHIFT ? " (needs Shift)" : "",
                  needs & KEYMAP_NEED_LEVEL3 ? " (needs AltGr)" : "");
        if (!vm_ready(s))
                return;
        /* Pointer motion queued before this key goes first: order is kept. */
        client_flush_motion(vc);

        /*
         * A keysym the key gives only with Shift (or AltGr), sent by a client
         * that does not hold it (noVNC and others send the character, not the
         * keys): the modifier is held around the press, so '!' is Shift+1 and
         * not 1. A client that holds Shift itself is left alone.
         */
        if (down) {
                if ((needs & KEYMAP_NEED_SHIFT) && !client_holds(vc, KEY_LEFTSHIFT, KEY_RIGHTSHIFT))
                        shift = KEY_LEFTSHIFT;
                if ((needs & KEYMAP_NEED_LEVEL3) && !client_holds(vc, KEY_RIGHTALT, KEY_RIGHTALT))
                        level3 = KEY_RIGHTALT;
        }
        if (shift)
                client_key(vc, shift, true);
        if (level3)
                client_key(vc, level3, true);
        client_key(vc, (uint32_t) code, down);
        if (level3)
                client_key(vc, level3, false);
        if (shift)
                client_key(vc, shift, false);
}

static void on_pointer(int mask, int x, int y, rfbClientPtr cl) {
        VncClient *vc = cl->clientData;
        Server *s;

        if (!vc || cl->viewOnly)
                return;
        s = vc->server;
        vc->n_pointer_events++;
        if (!vm_ready(s) || s->width == 0 || s->height == 0)
                return;

        /* Clamped to the screen (libvncserver already undid any scaling). */
        vc->x = (uint32_t) MIN(MAX(x, 0), (int) s->width - 1);
        vc->y = (uint32_t) MIN(MAX(y, 0), (int) s->height - 1);
        vc->motion_pending = true;

        if (((uint32_t) mask & 0x1ffu) != vc->buttons) {
                /* A click lands where the pointer is now. */
                client_flush_motion(vc);
                client_set_buttons(vc, (uint32_t) mask & 0x1ffu);
        }
}

static rfbCursorPtr on_get_cursor(rfbClientPtr cl) {
        Server *s = cl->screen->screenData;

        return s->cursor;
}

/* ---------------------------------------------------------------------- */
/* What the screen shows                                                   */

static bool format_shifts(uint32_t format, rfbPixelFormat *f) {
        switch (format) {
        case ORRERY_FORMAT_XRGB8888:
        case ORRERY_FORMAT_ARGB8888:
                *f = (rfbPixelFormat) { .bitsPerPixel = 32, .depth = 24, .trueColour = TRUE,
                                        .redMax = 255, .greenMax = 255, .blueMax = 255,
                                        .redShift = 16, .greenShift = 8, .blueShift = 0 };
                return true;
        case ORRERY_FORMAT_XBGR8888:
        case ORRERY_FORMAT_ABGR8888:
                *f = (rfbPixelFormat) { .bitsPerPixel = 32, .depth = 24, .trueColour = TRUE,
                                        .redMax = 255, .greenMax = 255, .blueMax = 255,
                                        .redShift = 0, .greenShift = 8, .blueShift = 16 };
                return true;
        case ORRERY_FORMAT_RGB565:
                *f = (rfbPixelFormat) { .bitsPerPixel = 16, .depth = 16, .trueColour = TRUE,
                                        .redMax = 31, .greenMax = 63, .blueMax = 31,
                                        .redShift = 11, .greenShift = 5, .blueShift = 0 };
                return true;
        }
        return false;
}

/*
 * Points the screen at new pixels. Clients that cannot follow a size change
 * (no DesktopSize), or that asked libvncserver to scale (its scaled copies
 * keep the old geometry), are disconnected: they reconnect to the new size.
 */
static void screen_switch(Server *s, char *pixels, uint32_t width, uint32_t height, uint32_t stride,
                          const rfbPixelFormat *format) {
        /* A new depth counts as a resize: scaled copies would read the new pixels with the old layout. */
        bool resized = width != s->width || height != s->height ||
                       format->bitsPerPixel != s->screen->serverFormat.bitsPerPixel;
        rfbClientIteratorPtr i;
        rfbClientPtr cl;

        if (resized) {
                i = rfbGetClientIterator(s->screen);
                while ((cl = rfbClientIteratorNext(i)))
                        if (cl->state == RFB_NORMAL && (!cl->useNewFBSize || cl->scaledScreen != cl->screen)) {
                                log_info("client %s cannot follow the resize to %" PRIu32 "x%" PRIu32 ": disconnecting it",
                                         cl->clientData ? ((VncClient *) cl->clientData)->name : "?", width, height);
                                rfbCloseClient(cl);
                        }
                rfbReleaseClientIterator(i);
                server_reap(s);
        }

        rfbNewFramebuffer(s->screen, pixels, (int) width, (int) height, 8, 3, format->bitsPerPixel / 8);
        /* libvncserver's default layout for 32 bpp is red in the low byte; ours may differ. */
        s->screen->serverFormat.bitsPerPixel = format->bitsPerPixel;
        s->screen->serverFormat.depth = format->depth;
        s->screen->serverFormat.bigEndian = FALSE;
        s->screen->serverFormat.trueColour = TRUE;
        s->screen->serverFormat.redMax = format->redMax;
        s->screen->serverFormat.greenMax = format->greenMax;
        s->screen->serverFormat.blueMax = format->blueMax;
        s->screen->serverFormat.redShift = format->redShift;
        s->screen->serverFormat.greenShift = format->greenShift;
        s->screen->serverFormat.blueShift = format->blueShift;
        s->screen->depth = format->depth;
        s->screen->paddedWidthInBytes = (int) stride;

        i = rfbGetClientIterator(s->screen);
        while ((cl = rfbClientIteratorNext(i)))
                s->screen->setTranslateFunction(cl);
        rfbReleaseClientIterator(i);

        s->width = width;
        s->height = height;
        server_update_clients(s);
}

static void show_placeholder(Server *s, const char *message) {
        uint32_t width = s->width ?: PLACEHOLDER_WIDTH, height = s->height ?: PLACEHOLDER_HEIGHT;
        rfbPixelFormat format;
        uint32_t *pixels;

        pixels = calloc((size_t) width * height, sizeof(uint32_t));
        if (!pixels) {
                /* Never keep pointing at a mapping that is gone: a tiny screen instead. */
                width = height = 16;
                pixels = calloc((size_t) width * height, sizeof(uint32_t));
                if (!pixels)
                        abort();
        }
        placeholder_draw(pixels, width, height, message);
        (void) format_shifts(ORRERY_FORMAT_XRGB8888, &format);

        s->showing_vm = false;
        screen_switch(s, (char *) pixels, width, height, width * 4, &format);
        free(s->placeholder);
        s->placeholder = pixels;
}

/* What systemd (and systemctl status) shows: serving only while the VM's screen is. */
static void server_set_status(Server *s, const char *state) {
        (void) sd_notifyf(false, "STATUS=%s VM '%s' on port %u", state, s->vm_name, s->port);
}

static void show_vm(Server *s) {
        OrreryFramebuffer fb;
        rfbPixelFormat format;
        int r;

        r = orrery_vm_get_framebuffer(s->vm, CONSOLE_ID, &fb);
        if (r < 0) {
                log_info_errno(r, "VM '%s' has no framebuffer on console %d to show: %m", s->vm_name, CONSOLE_ID);
                show_placeholder(s, "NO DISPLAY");
                server_set_status(s, "No display on");
                return;
        }
        if (!format_shifts(fb.format, &format) || fb.bytes_per_pixel != format.bitsPerPixel / 8 ||
            fb.width > INT16_MAX || fb.height > INT16_MAX) {
                log_info("VM '%s': cannot serve a %" PRIu32 "x%" PRIu32 " framebuffer in format 0x%08" PRIx32,
                         s->vm_name, fb.width, fb.height, fb.format);
                show_placeholder(s, "NO DISPLAY");
                server_set_status(s, "Cannot show the display of");
                return;
        }

        /* The read-only mapping itself: libvncserver encodes from it, nothing is copied. */
        s->showing_vm = true;
        screen_switch(s, (char *) (uintptr_t) fb.data, fb.width, fb.height, fb.stride, &format);
        s->placeholder = mfree_u32(s->placeholder);
        log_info("serving VM '%s': %" PRIu32 "x%" PRIu32, s->vm_name, fb.width, fb.height);
        server_set_status(s, "Serving");
}

/* ---------------------------------------------------------------------- */
/* The VM                                                                  */

static void forget_input(Server *s) {
        /* The VM's input state went with it: nothing is held any more. */
        memset(s->key_holders, 0, sizeof(s->key_holders));
        memset(s->button_holders, 0, sizeof(s->button_holders));
        for (VncClient *vc = s->clients; vc; vc = vc->next) {
                memset(vc->keys, 0, sizeof(vc->keys));
                vc->buttons = 0;
                vc->motion_pending = false;
                vc->sent_valid = false;
        }
}

static void on_vm_appeared(OrreryVm *vm, void *userdata) {
        Server *s = userdata;

        log_info("VM '%s' is on the bus", s->vm_name);
        forget_input(s);
        show_vm(s);
}

static void on_vm_vanished(OrreryVm *vm, void *userdata) {
        Server *s = userdata;

        log_info("VM '%s' is gone; waiting for VM '%s' (clients see that it is not running)", s->vm_name, s->vm_name);
        forget_input(s);
        show_placeholder(s, "VM NOT RUNNING");
        server_set_status(s, "Waiting for");
}

static void on_console_mode_changed(OrreryVm *vm, uint32_t console, const OrreryFramebuffer *fb, void *userdata) {
        Server *s = userdata;

        if (console != CONSOLE_ID)
                return;
        show_vm(s);
}

static void on_console_update(OrreryVm *vm, uint32_t console, const OrreryRect *rects, size_t n, void *userdata) {
        Server *s = userdata;

        if (console != CONSOLE_ID || !s->showing_vm)
                return;
        for (size_t i = 0; i < n; i++) {
                /* Already clipped to the mapping by the client library; clip again to what we serve. */
                uint32_t x2 = MIN(rects[i].x + rects[i].width, s->width);
                uint32_t y2 = MIN(rects[i].y + rects[i].height, s->height);

                if (rects[i].x < x2 && rects[i].y < y2)
                        rfbMarkRectAsModified(s->screen, (int) rects[i].x, (int) rects[i].y, (int) x2, (int) y2);
        }
        timing_mark(s);
        (void) sd_event_source_set_enabled(s->flush, SD_EVENT_ONESHOT);
}

static int on_flush(sd_event_source *source, void *userdata) {
        server_update_clients(userdata);
        return 0;
}

static void on_vm_error(OrreryVm *vm, const char *method, const sd_bus_error *error, void *userdata) {
        /* Input the guest refuses (a key its keyboard lacks, Busy when it does not read). */
        log_debug("VM call %s failed: %s", method, error && error->message ? error->message : "?");
}

static const OrreryVmCallbacks vm_callbacks = {
        .appeared = on_vm_appeared,
        .vanished = on_vm_vanished,
        .console_mode_changed = on_console_mode_changed,
        .console_update = on_console_update,
        .error = on_vm_error,
};

/* ---------------------------------------------------------------------- */

/* A plain arrow, drawn by the clients (never into the framebuffer):
 * black outline ('x', the foreground), white body (in the mask only). */
static rfbCursorPtr make_cursor(void) {
        static char shape[] = "x          "
                              "xx         "
                              "x x        "
                              "x  x       "
                              "x   x      "
                              "x    x     "
                              "x     x    "
                              "x      x   "
                              "x       x  "
                              "x    xxxxx "
                              "x x  x     "
                              "xx x  x    "
                              "x  x  x    "
                              "    x  x   "
                              "    x  x   "
                              "     xx    ";
        static char mask[] = "x          "
                             "xx         "
                             "xxx        "
                             "xxxx       "
                             "xxxxx      "
                             "xxxxxx     "
                             "xxxxxxx    "
                             "xxxxxxxx   "
                             "xxxxxxxxx  "
                             "xxxxxxxxxx "
                             "xxxxxx     "
                             "xx xxxx    "
                             "x  xxxx    "
                             "    xxxx   "
                             "    xxxx   "
                             "     xx    ";
        rfbCursorPtr c = rfbMakeXCursor(11, 16, shape, mask);

        if (!c)
                return NULL;
        c->foreRed = c->foreGreen = c->foreBlue = 0;
        c->backRed = c->backGreen = c->backBlue = 0xffff;
        return c;
}

/* libvncserver's own check, and what we learn from it about the source. */
static rfbBool on_check_password(rfbClientPtr cl, const char *response, int len) {
        Server *s = cl->screen->screenData;
        VncClient *vc = cl->clientData;
        unsigned failures;

        if (!vc)
                return FALSE;
        if (rfbCheckPasswordByList(cl, response, len)) {
                guard_success(&s->guard, vc->source);
                log_info("client %s: password accepted%s", vc->name, cl->viewOnly ? " (view-only)" : "");
                return TRUE;
        }
        failures = guard_failure(&s->guard, vc->source, now_usec(s));
        log_warning("client %s: wrong VNC password (failure %u from %s; its next answer waits %" PRIu64 " ms)",
                    vc->name, failures, vc->source, guard_delay_for(failures) / 1000);
        return FALSE;
}

int server_new(sd_event *event, OrreryClient *client, const ServerConfig *config, Server **ret) {
        _cleanup_(server_freep) Server *s = NULL;
        int argc = 0;
        int r;

        s = calloc(1, sizeof(Server));
        if (!s)
                return -ENOMEM;
        s->event = sd_event_ref(event);
        s->client = orrery_client_ref(client);
        s->keymap = config->keymap;
        s->view_only = config->view_only;
        s->handshake_timeout_usec = config->handshake_timeout_usec ?: SERVER_HANDSHAKE_TIMEOUT_USEC;
        s->port = config->port;
        s->vm_name = strdup(config->vm_name);
        if (!s->vm_name || asprintf(&s->desktop_name, "Orrery VM %s", config->vm_name) < 0)
                return -ENOMEM;

        rfbLog = rfb_log;
        rfbErr = rfb_log;
        rfbMaxClientWait = CLIENT_WAIT_MS;
        /* A client that hangs up while we write must not kill us. */
        signal(SIGPIPE, SIG_IGN);

        s->screen = rfbGetScreen(&argc, NULL, PLACEHOLDER_WIDTH, PLACEHOLDER_HEIGHT, 8, 3, 4);
        if (!s->screen)
                return -ENOMEM;
        s->screen->screenData = s;
        s->screen->desktopName = s->desktop_name;
        s->screen->frameBuffer = NULL;
        /* No cursor drawn into the framebuffer, ever (it is read-only). */
        s->screen->cursor = NULL;
        s->cursor = make_cursor();
        s->screen->getCursorPtr = on_get_cursor;
        s->screen->kbdAddEvent = on_key;
        s->screen->ptrAddEvent = on_pointer;
        s->screen->newClientHook = on_new_client;
        s->screen->alwaysShared = TRUE; /* several clients at once */
        s->screen->deferUpdateTime = 0; /* damage is already paced at 60 Hz by the VM */
        s->screen->deferPtrUpdateTime = 0;
        s->screen->handleEventsEagerly = FALSE;
        s->screen->autoPort = FALSE;
        s->screen->port = 0;
        s->screen->ipv6port = 0;
        s->screen->httpPort = 0;
        s->screen->ignoreSIGPIPE = TRUE;
        if (config->passwords && config->passwords->list[0]) {
                s->screen->authPasswdData = (void *) config->passwords->list;
                s->screen->authPasswdFirstViewOnly = config->passwords->first_view_only;
                s->screen->passwordCheck = on_check_password;
        }

        r = sd_event_add_defer(event, &s->flush, on_flush, s);
        if (r < 0)
                return r;
        (void) sd_event_source_set_priority(s->flush, PRIORITY_FLUSH);
        (void) sd_event_source_set_enabled(s->flush, SD_EVENT_OFF);

        show_placeholder(s, "VM NOT RUNNING");
        log_info("waiting for VM '%s' to appear on the bus", s->vm_name);
        server_set_status(s, "Waiting for");

        r = orrery_vm_attach(client, config->vm_name, &vm_callbacks, s, ORRERY_VM_ATTACH_ASYNC, &s->vm);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(s);
        return 0;
}

Server *server_free(Server *s) {
        if (!s)
                return NULL;

        if (s->screen) {
                server_disconnect_all(s);
                rfbShutdownServer(s->screen, TRUE);
                s->screen->frameBuffer = NULL;
                rfbScreenCleanup(s->screen);
        }
        for (size_t i = 0; i < s->n_listeners; i++)
                sd_event_source_disable_unref(s->listeners[i]);
        sd_event_source_disable_unref(s->flush);
        if (s->cursor)
                rfbFreeCursor(s->cursor);
        orrery_vm_detach(s->vm);
        orrery_client_unref(s->client);
        sd_event_unref(s->event);
        free(s->placeholder);
        free(s->vm_name);
        free(s->desktop_name);
        free(s);
        return NULL;
}

/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-id128.h>
#include <unistd.h>

#include "bus/block1.h"
#include "bus/bus.h"
#include "bus-util.h"
#include "config.h"
#include "log.h"
#include "macro.h"
#include "vm-name.h"

/* ---- peers ---- */

static unsigned peer_hash(const char *name) {
        uint32_t h = 2166136261u;
        for (; *name; name++)
                h = (h ^ (uint8_t) *name) * 16777619u;
        return h % BUS_PEER_BUCKETS;
}

BusPeer *bus_peer_find(VmBus *b, const char *name) {
        for (BusPeer *p = b->peers[peer_hash(name)]; p; p = p->hash_next)
                if (streq(p->name, name))
                        return p;
        return NULL;
}

static void peer_list_unlink(VmBus *b, BusPeer *p) {
        if (p->prev)
                p->prev->next = p->next;
        else
                b->oldest = p->next;
        if (p->next)
                p->next->prev = p->prev;
        else
                b->newest = p->prev;
        p->prev = p->next = NULL;
}

static void peer_list_append(VmBus *b, BusPeer *p) {
        p->prev = b->newest;
        p->next = NULL;
        if (b->newest)
                b->newest->next = p;
        else
                b->oldest = p;
        b->newest = p;
}

static void peer_free(VmBus *b, BusPeer *p) {
        BusPeer **pp;

        for (pp = &b->peers[peer_hash(p->name)]; *pp; pp = &(*pp)->hash_next)
                if (*pp == p) {
                        *pp = p->hash_next;
                        break;
                }
        peer_list_unlink(b, p);
        bus_refusal_forget(b, p);
        bus_verdict_forget(p);
        b->n_peers--;
        sd_bus_slot_unref(p->watch);
        free(p->name);
        free(p->comm);
        free(p);
}

/* Whether forgetting the peer loses nothing but its cached verdict. */
static bool peer_is_idle(VmBus *b, BusPeer *p) {
        if (p->watching || p->debugging || p->n_pending > 0 || p->asking)
                return false;
        for (unsigned i = 0; i < b->n_held; i++)
                if (streq(b->held[i].sender, p->name))
                        return false;
        for (unsigned i = 0; i < b->n_chardevs; i++)
                if (b->chardevs[i].owner && streq(b->chardevs[i].owner, p->name))
                        return false;
        return true;
}

void bus_peer_left(BusPeer *p) {
        VmBus *b = p->vm;

        log_debug("Client %s left the bus", p->name);
        machine1_peer_gone(b, p);
        console1_peer_gone(b, p);
        chardev1_peer_gone(b, p);
        input1_peer_gone(b, p);
        debug1_peer_gone(b, p);
        peer_free(b, p);
}

static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        BusPeer *p = userdata;
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 || !streq(name, p->name))
                return 0;
        /* A unique name has no new owner: it is gone for good. */
        if (!new_owner || !*new_owner)
                bus_peer_left(p);
        return 0;
}

static int on_watch_installed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        BusPeer *p = userdata;

        /* Say, the daemon's limit of matches per connection: the peer stays until it is the oldest idle one. */
        if (sd_bus_message_is_method_error(m, NULL))
                log_debug_errno(sd_bus_message_get_errno(m), "Cannot watch %s leave the bus: %m", p->name);
        return 0;
}

/* Unique names as dbus-daemon makes them (":1.42"): nothing that could change the meaning of a match rule. */
static bool unique_name_is_plain(const char *name) {
        if (name[0] != ':' || strlen(name) > 255)
                return false;
        for (const char *c = name + 1; *c; c++)
                if (!strchr("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-.", *c))
                        return false;
        return true;
}

int bus_peer_add(VmBus *b, const char *name, BusPeer **ret) {
        _cleanup_free_ BusPeer *p = NULL;
        _cleanup_free_ char *match = NULL;
        int r;

        if (b->n_peers >= BUS_MAX_PEERS) {
                BusPeer *victim = b->oldest;
                while (victim && !peer_is_idle(b, victim))
                        victim = victim->next;
                if (!victim)
                        return -EBUSY;
                peer_free(b, victim);
        }

        if (!unique_name_is_plain(name))
                return -EINVAL;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->vm = b;
        p->uid = (uid_t) -1;
        p->name = strdup(name);
        if (!p->name)
                return -ENOMEM;
        if (asprintf(&match,
                     "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                     "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='%s'",
                     name) < 0) {
                free(p->name);
                return -ENOMEM;
        }
        /* Sent, not waited for: the daemon takes the VM's messages in order. */
        r = sd_bus_add_match_async(b->bus, &p->watch, match, on_name_owner_changed, on_watch_installed, p);
        if (r < 0) {
                free(p->name);
                return r;
        }

        p->hash_next = b->peers[peer_hash(name)];
        b->peers[peer_hash(name)] = p;
        peer_list_append(b, p);
        b->n_peers++;
        *ret = TAKE_PTR(p);
        return 0;
}

void bus_peer_forget(VmBus *b, BusPeer *p) {
        peer_free(b, p);
}

/*
 * Asks the bus who the sender is, waiting for the answer (the caller
 * check's path for calls the filter in verdict.c did not hold). The
 * verdict uses only what the bus daemon vouches for (the uid it took from
 * the socket), never what sd-bus could add from /proc; the pid and
 * command are for the log.
 */
static int peer_new(VmBus *b, const char *name, BusPeer **ret) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        uint64_t augmented;
        const char *comm;
        uid_t uid = (uid_t) -1;
        BusPeer *p;
        int r;

        /* Watched first: a name that leaves after the answer is seen leaving. */
        r = bus_peer_add(b, name, &p);
        if (r < 0)
                return r;
        r = sd_bus_get_name_creds(b->bus, name,
                                  SD_BUS_CREDS_EUID | SD_BUS_CREDS_UID | SD_BUS_CREDS_PID | SD_BUS_CREDS_COMM |
                                          SD_BUS_CREDS_AUGMENT,
                                  &creds);
        if (r < 0) {
                peer_free(b, p);
                return r;
        }
        augmented = sd_bus_creds_get_augmented_mask(creds);
        if (!(augmented & SD_BUS_CREDS_EUID) && sd_bus_creds_get_euid(creds, &uid) >= 0)
                p->uid = uid;
        else if (!(augmented & SD_BUS_CREDS_UID) && sd_bus_creds_get_uid(creds, &uid) >= 0)
                p->uid = uid;
        p->allowed = p->uid != (uid_t) -1 && p->uid == geteuid();
        (void) sd_bus_creds_get_pid(creds, &p->pid);
        if (sd_bus_creds_get_comm(creds, &comm) >= 0)
                p->comm = strdup(comm);
        *ret = p;
        return 0;
}

int bus_publish_owned(VmBus *b, const char *kind, const char *id, const char *interface,
                      const sd_bus_vtable *vtable, void *userdata) {
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        _cleanup_free_ void *data = userdata;
        _cleanup_free_ char *path = NULL;
        int r;

        if (!data)
                return -ENOMEM;
        if (asprintf(&path, "%s/%s/%s", b->path, kind, id) < 0)
                return -ENOMEM;
        r = sd_bus_add_object_vtable(b->bus, &slot, path, interface, vtable, data);
        if (r < 0)
                return r;
        /* The bus owns the slot from here on, and the slot the data. */
        sd_bus_slot_set_destroy_callback(slot, free);
        TAKE_PTR(data);
        return sd_bus_slot_set_floating(slot, 1);
}

int bus_check_caller(VmBus *b, sd_bus_message *m, BusPeer **ret_peer, sd_bus_error *error) {
        const char *sender = sd_bus_message_get_sender(m);
        BusPeer *p;
        int r;

        if (!sender)
                return sd_bus_error_set(error, SD_BUS_ERROR_ACCESS_DENIED, "The caller has no unique name on the bus");

        p = bus_peer_find(b, sender);
        if (p && p->asking)
                /* Not reached: the filter holds every call of a peer whose verdict is pending. */
                return sd_bus_error_setf(error, ORRERY_ERROR_BUSY, "The caller's user is not known yet; try again");
        if (p) {
                /* Recently used last: the oldest idle peer is the one forgotten when the table is full. */
                peer_list_unlink(b, p);
                peer_list_append(b, p);
        } else {
                r = peer_new(b, sender, &p);
                if (r == -EBUSY)
                        return sd_bus_error_setf(error, ORRERY_ERROR_BUSY,
                                                 "VM '%s' serves %u clients already; try again later", b->name,
                                                 BUS_MAX_PEERS);
                if (r < 0)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                                 "Cannot determine the caller's user: %s", strerror(-r));
        }
        if (!p->allowed) {
                (void) bus_refusal_count(b, p);
                return bus_refusal_set(p, error);
        }
        if (ret_peer)
                *ret_peer = p;
        return 0;
}

int bus_check_request(VmBus *b, sd_bus_message *m, const char *what, BusPeer **ret_peer, sd_bus_error *error) {
        BusPeer *peer;
        int r;

        r = bus_check_caller(b, m, &peer, error);
        if (r < 0)
                return r;
        bus_log_origin(peer, what);
        if (ret_peer)
                *ret_peer = peer;
        return 0;
}

void bus_log_origin(BusPeer *p, const char *what) {
        if (p->pid > 0)
                log_info("%s of VM '%s' requested by %s (pid %d, %s)", what, p->vm->name, p->name, (int) p->pid,
                         p->comm ? p->comm : "unknown command");
        else
                log_info("%s of VM '%s' requested by %s (pid unknown)", what, p->vm->name, p->name);
}

/* ---- the connection ---- */

#define RECONNECT_MIN_USEC (100ULL * 1000ULL)
#define RECONNECT_MAX_USEC (5ULL * 1000000ULL)

static int on_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *error);

static void notify_status(VmBus *b, const char *status) {
        (void) sd_notifyf(false, "STATUS=VM %s %s", b->name, status);
}

static void peers_free(VmBus *b) {
        while (b->oldest)
                peer_free(b, b->oldest);
}

/*
 * Lets go of the connection and of everything its clients held: they
 * cannot reach us any more, and a new connection has new unique names.
 */
static void drop_bus(VmBus *b) {
        while (b->oldest) {
                BusPeer *p = b->oldest;
                machine1_peer_gone(b, p);
                console1_peer_gone(b, p);
                chardev1_peer_gone(b, p);
                input1_peer_gone(b, p);
                debug1_peer_gone(b, p);
                peer_free(b, p);
        }
        bus_refusal_teardown(b);
        machine1_teardown(b);
        if (b->bus) {
                sd_bus_detach_event(b->bus);
                b->bus = sd_bus_flush_close_unref(b->bus);
        }
}

/*
 * Connects, publishes the objects and takes the name. A failure is logged at
 * 'level' (an error at start-up, debug while reconnecting) and returned.
 */
static int connect_bus(VmBus *b, int level) {
        int r;

        r = bus_open(b->address, "orrery-vm", &b->bus);
        if (r < 0)
                return log_full_errno(level, r,
                                      "Cannot connect to %s: %m (use --bus ADDRESS for another bus, or --no-bus)",
                                      b->address ? b->address : "the session bus");

        /*
         * An ObjectManager lists the objects below its path, so the one on
         * /org/orrery/VM gives the machine object and its children in one
         * GetManagedObjects. (sd-bus stops at a nested manager, so there is
         * no second one on the VM's own path.)
         */
        r = sd_bus_add_object_manager(b->bus, NULL, "/org/orrery/VM");
        if (r >= 0)
                r = sd_bus_add_object_vtable(b->bus, NULL, b->path, "org.orrery.Machine1", machine1_vtable, b);
        if (r >= 0)
                r = sd_bus_add_object_vtable(b->bus, NULL, b->path, "org.orrery.Keyboard1", keyboard1_vtable, b);
        if (r >= 0)
                r = sd_bus_add_object_vtable(b->bus, NULL, b->path, "org.orrery.Mouse1", mouse1_vtable, b);
        if (r >= 0)
                r = sd_bus_add_object_vtable(b->bus, NULL, b->path, "org.orrery.Debug1", debug1_vtable, b);
        if (r >= 0)
                r = console1_publish(b);
        if (r >= 0)
                r = chardev1_publish(b);
        if (r >= 0)
                r = block1_publish(b);
        if (r >= 0)
                r = network1_publish(b);
        if (r >= 0)
                r = bus_refusal_setup(b);
        if (r < 0) {
                log_full_errno(level, r, "Cannot publish %s: %m", b->path);
                goto fail;
        }
        /* sd-bus turns a lost connection into this local signal. */
        r = sd_bus_match_signal(b->bus, NULL, "org.freedesktop.DBus.Local", "/org/freedesktop/DBus/Local",
                                "org.freedesktop.DBus.Local", "Disconnected", on_disconnected, b);
        if (r < 0) {
                log_full_errno(level, r, "Cannot watch the bus connection: %m");
                goto fail;
        }
        r = sd_bus_attach_event(b->bus, b->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0) {
                log_full_errno(level, r, "Cannot attach the bus to the event loop: %m");
                goto fail;
        }

        /*
         * Without queueing: a second VM of the same name fails instead of
         * waiting. Replacement is allowed only for a migration's
         * destination (--incoming), which takes the name over in one step
         * once it has loaded the VM; the source then exits.
         */
        r = sd_bus_request_name(b->bus, b->service,
                                SD_BUS_NAME_ALLOW_REPLACEMENT | (b->take_over ? SD_BUS_NAME_REPLACE_EXISTING : 0));
        if (r == -EEXIST || r == -EALREADY) {
                log_full_errno(level, r, "The bus name %s is already owned: another VM named '%s' is running",
                               b->service, b->name);
                goto fail;
        }
        if (r < 0) {
                log_full_errno(level, r, "Cannot own the bus name %s: %m", b->service);
                goto fail;
        }
        return 0;

fail:
        drop_bus(b);
        return r;
}

static int on_reconnect_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        VmBus *b = userdata;
        int r;

        r = connect_bus(b, LOG_DEBUG);
        if (r < 0) {
                log_debug_errno(r, "Reconnecting VM '%s' to the bus failed, trying again later: %m", b->name);
                b->reconnect_delay = b->reconnect_delay * 2 > RECONNECT_MAX_USEC ? RECONNECT_MAX_USEC
                                                                               : b->reconnect_delay * 2;
                (void) sd_event_source_set_time_relative(s, b->reconnect_delay);
                return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        }
        log_info("VM '%s' is back on the bus as %s", b->name, b->service);
        b->last_state = machine_get_state(b->machine);
        notify_status(b, b->last_state == MACHINE_PAUSED ? "paused" : "running");
        return 0;
}

static int on_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        int r;

        log_warning("VM '%s' lost its bus connection; reconnecting", b->name);
        notify_status(b, "is off the bus (connection lost), reconnecting");
        drop_bus(b);

        b->reconnect_delay = RECONNECT_MIN_USEC;
        if (!b->reconnect_timer) {
                r = sd_event_add_time_relative(b->event, &b->reconnect_timer, CLOCK_MONOTONIC, b->reconnect_delay, 0,
                                               on_reconnect_timer, b);
                if (r < 0)
                        return log_error_errno(r, "Failed to schedule reconnecting to the bus: %m");
                return 0;
        }
        (void) sd_event_source_set_time_relative(b->reconnect_timer, b->reconnect_delay);
        return sd_event_source_set_enabled(b->reconnect_timer, SD_EVENT_ONESHOT);
}

int vm_bus_new(sd_event *event, const VmBusConfig *config, VmBus **ret) {
        VmBus *b;
        sd_id128_t id;
        int r;

        b = calloc(1, sizeof(*b));
        if (!b)
                return log_oom();
        b->event = sd_event_ref(event);
        b->machine = config->machine;
        b->nets = config->nets;
        b->n_nets = config->n_nets;
        b->last_state = machine_get_state(config->machine);
        b->version = ORRERY_VERSION;
        b->vcpus = 1;
        b->memory_bytes = machine_memory_bytes(config->machine);
        b->debug_enabled = config->debug;
        b->take_over = config->take_over;
        b->uuid = calloc(1, SD_ID128_UUID_STRING_MAX);
        b->name = strdup(config->name);
        r = vm_name_to_bus(config->name, &b->service, &b->path);
        if (r < 0) {
                log_error_errno(r, "Invalid VM name '%s': use " VM_NAME_RULE, config->name);
                goto fail;
        }
        if (!b->name || !b->uuid || asprintf(&b->console_path, "%s/Console/0", b->path) < 0 ||
            (config->address && !(b->address = strdup(config->address)))) {
                r = log_oom();
                goto fail;
        }
        if (sd_id128_randomize(&id) >= 0)
                sd_id128_to_uuid_string(id, b->uuid);

        r = console1_setup(b);
        if (r < 0) {
                log_error_errno(r, "Cannot set up the console: %m");
                goto fail;
        }
        for (unsigned i = 0; i < config->n_chardevs && i < BUS_MAX_CHARDEVS; i++) {
                b->chardevs[i].bus = b;
                b->chardevs[i].chardev = config->chardevs[i];
                b->n_chardevs++;
        }
        r = chardev1_setup(b);
        if (r < 0) {
                log_error_errno(r, "Cannot set up the character devices: %m");
                goto fail;
        }
        r = connect_bus(b, LOG_ERR);
        if (r < 0)
                goto fail;

        *ret = b;
        return 0;

fail:
        vm_bus_free(b);
        return r < 0 ? r : -EIO;
}

VmBus *vm_bus_free(VmBus *b) {
        if (!b)
                return NULL;
        machine1_migrate_teardown(b);
        machine1_teardown(b);
        chardev1_teardown(b);
        console1_teardown(b);
        input1_teardown(b);
        debug1_teardown(b);
        peers_free(b);
        bus_refusal_teardown(b);
        b->reconnect_timer = sd_event_source_disable_unref(b->reconnect_timer);
        if (b->bus) {
                sd_bus_flush(b->bus);
                sd_bus_detach_event(b->bus);
                sd_bus_flush_close_unref(b->bus);
        }
        sd_event_unref(b->event);
        free(b->name);
        free(b->path);
        free(b->console_path);
        free(b->uuid);
        free(b->address);
        free(b->service);
        free(b);
        return NULL;
}

void vm_bus_machine_changed(VmBus *b) {
        MachineState s = machine_get_state(b->machine);
        uint32_t leds = machine_keyboard_leds(b->machine);
        bool absolute = machine_pointer_is_absolute(b->machine);

        if (!b->bus) {
                /* Not on the bus: nobody to tell; clients read the properties when it is back. */
                b->last_leds = leds;
                b->last_absolute = absolute;
                b->last_state = s;
                return;
        }

        if (leds != b->last_leds) {
                b->last_leds = leds;
                (void) sd_bus_emit_properties_changed(b->bus, b->path, "org.orrery.Keyboard1", "Leds", NULL);
        }
        if (absolute != b->last_absolute) {
                b->last_absolute = absolute;
                (void) sd_bus_emit_properties_changed(b->bus, b->path, "org.orrery.Mouse1", "IsAbsolute", NULL);
        }
        if (s != b->last_state) {
                b->last_state = s;
                (void) sd_bus_emit_properties_changed(b->bus, b->path, "org.orrery.Machine1", "State", NULL);
        }
        debug1_machine_changed(b);
        /* After the new state went out: a caller sees it as soon as its call returns. */
        machine1_answer_pending(b);
        /* Make sure a final "shutdown" leaves before the process exits. */
        if (s == MACHINE_SHUTDOWN)
                (void) sd_bus_flush(b->bus);
}

/* ---- --bus-introspect ---- */

typedef struct IntrospectCall {
        bool done;
        int error;
        char *xml;
} IntrospectCall;

static int on_introspect_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        IntrospectCall *c = userdata;
        const char *xml;
        int r;

        c->done = true;
        r = sd_bus_message_get_errno(m);
        if (r > 0) {
                c->error = -r;
                return 0;
        }
        r = sd_bus_message_read(m, "s", &xml);
        if (r < 0) {
                c->error = r;
                return 0;
        }
        c->xml = strdup(xml);
        if (!c->xml)
                c->error = -ENOMEM;
        return 0;
}

/* Asks 'server' for the introspection of 'path' through 'client', turning both ends by hand. */
static int introspect_path(sd_bus *server, sd_bus *client, const char *path, char **ret) {
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        IntrospectCall call = {};
        int r;

        r = sd_bus_call_method_async(client, &slot, NULL, path, "org.freedesktop.DBus.Introspectable", "Introspect",
                                     on_introspect_reply, &call, NULL);
        if (r < 0)
                return r;
        for (unsigned spins = 0; !call.done; spins++) {
                struct pollfd p[2] = {
                        { .fd = sd_bus_get_fd(server), .events = (short) sd_bus_get_events(server) },
                        { .fd = sd_bus_get_fd(client), .events = (short) sd_bus_get_events(client) },
                };
                int a, b;

                a = sd_bus_process(server, NULL);
                b = sd_bus_process(client, NULL);
                if (a < 0)
                        return a;
                if (b < 0)
                        return b;
                if (a > 0 || b > 0)
                        continue;
                if (spins > 10000)
                        return -ETIMEDOUT;
                if (poll(p, 2, 1000) < 0)
                        return -errno;
        }
        if (call.error < 0)
                return call.error;
        *ret = call.xml;
        return 0;
}

/* Writes the <interface> elements of org.orrery.* found in xml. */
static void write_orrery_interfaces(FILE *f, const char *xml) {
        const char *p = xml;

        while ((p = strstr(p, "<interface name=\"org.orrery."))) {
                const char *end = strstr(p, "</interface>");
                if (!end)
                        return;
                end += strlen("</interface>");
                fprintf(f, " %.*s\n", (int) (end - p), p);
                p = end;
        }
}

int vm_bus_introspect(FILE *f) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *server = NULL, *client = NULL;
        static const char *const paths[] = { "/org/orrery/VM/x", "/org/orrery/VM/x/Console/0",
                                             "/org/orrery/VM/x/Chardev/x", "/org/orrery/VM/x/Block/x",
                                             "/org/orrery/VM/x/Net/x" };
        struct BusChardev chardev = {};
        VmBus vm = { .name = (char *) "x" };
        sd_id128_t id;
        int fds[2], r;

        /* A peer-to-peer connection to ourselves: the vtables introspected by sd-bus itself. */
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) < 0)
                return -errno;
        r = sd_bus_new(&server);
        if (r >= 0)
                r = sd_bus_set_fd(server, fds[0], fds[0]);
        else
                close(fds[0]);
        if (r >= 0)
                r = sd_id128_randomize(&id);
        if (r >= 0)
                r = sd_bus_set_server(server, true, id);
        if (r >= 0)
                r = sd_bus_set_anonymous(server, true);
        if (r >= 0)
                r = sd_bus_add_object_vtable(server, NULL, paths[0], "org.orrery.Machine1", machine1_vtable, &vm);
        if (r >= 0)
                r = sd_bus_add_object_vtable(server, NULL, paths[0], "org.orrery.Keyboard1", keyboard1_vtable, &vm);
        if (r >= 0)
                r = sd_bus_add_object_vtable(server, NULL, paths[0], "org.orrery.Mouse1", mouse1_vtable, &vm);
        if (r >= 0)
                r = sd_bus_add_object_vtable(server, NULL, paths[0], "org.orrery.Debug1", debug1_vtable, &vm);
        if (r >= 0)
                r = sd_bus_add_object_vtable(server, NULL, paths[1], "org.orrery.Console1", console1_vtable, &vm);
        if (r >= 0)
                r = sd_bus_add_object_vtable(server, NULL, paths[2], "org.orrery.Chardev1", chardev1_vtable, &chardev);
        /* Introspection calls no getter: the disk's and NIC's userdata is never read. */
        if (r >= 0)
                r = sd_bus_add_object_vtable(server, NULL, paths[3], "org.orrery.Block1", block1_vtable, &vm);
        if (r >= 0)
                r = sd_bus_add_object_vtable(server, NULL, paths[4], "org.orrery.Network1", network1_vtable, &vm);
        if (r >= 0)
                r = sd_bus_start(server);
        if (r < 0) {
                close(fds[1]);
                return r;
        }
        r = sd_bus_new(&client);
        if (r >= 0)
                r = sd_bus_set_fd(client, fds[1], fds[1]);
        else
                close(fds[1]);
        if (r >= 0)
                r = sd_bus_set_anonymous(client, true);
        if (r >= 0)
                r = sd_bus_start(client);
        if (r < 0)
                return r;

        fputs("<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n"
              "\"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n<node>\n", f);
        for (size_t i = 0; i < ELEMENTSOF(paths); i++) {
                _cleanup_free_ char *xml = NULL;

                r = introspect_path(server, client, paths[i], &xml);
                if (r < 0)
                        return r;
                write_orrery_interfaces(f, xml);
        }
        fputs("</node>\n", f);
        return fflush(f) == 0 ? 0 : -errno;
}

/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The VM on the bus: owns the sd-bus connection (event-loop thread only),
 * the well-known name org.orrery.VM.<name>, and the objects described by
 * the interface files in dbus/. The machine is driven only through its
 * thread-safe API.
 *
 * Every client that calls the VM becomes a BusPeer, keyed by its unique
 * name: the verdict of the caller check (asked of the bus once: a unique
 * name's credentials cannot change), its pid and command for the log, and
 * what it holds (keys, buttons, a character device, a Watch). One match
 * per peer, on NameOwnerChanged for just its name, tells when it leaves
 * the bus, and everything it held is released then: one mechanism for all
 * client lifetimes. (Not sd_bus_track: adding a name to one asks the bus
 * whether the name exists with a blocking round trip, which held the
 * event loop behind a flooded bus daemon for every new caller.)
 *
 * A filter sees every call before object dispatch: a new caller's calls
 * wait while the bus is asked who it is, without blocking the loop
 * (verdict.c); a refused caller is answered there, at a bounded pace, so
 * that its flood does not queue the owner's replies (refusal.c).
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "machine/chardev.h"
#include "machine/machine.h"
#include "orrery-contract.h"

#define BUS_MAX_CHARDEVS 4

/* At most this many keys and buttons are tracked for release when their client leaves the bus. */
#define BUS_MAX_HELD 64

/* Clients remembered at once; beyond it, the oldest refused one is forgotten, then new callers are told Busy. */
#define BUS_MAX_PEERS 1024

/*
 * A caller of another user: its first BUS_REFUSALS_AT_ONCE calls in each
 * window are refused at once, the rest from a queue answered at
 * BUS_DEFERRED_PER_TICK a tick (refusal.c); beyond the queue's bounds
 * they are dropped without a reply.
 */
#define BUS_REFUSALS_AT_ONCE 8
#define BUS_REFUSAL_WINDOW_USEC (1000ULL * 1000ULL)
#define BUS_DEFERRED_PER_TICK 2
#define BUS_DEFERRED_TICK_USEC (20ULL * 1000ULL)
#define BUS_DEFERRED_MAX_PER_PEER 128
#define BUS_DEFERRED_MAX 1024

/*
 * Calls held while the bus says who a new caller is (verdict.c): a client
 * of the owner may pipeline hundreds before the answer comes, and must get
 * them all answered; the total bounds what callers may make the VM hold.
 */
#define BUS_VERDICT_WAITING_MAX_PER_PEER 4096
#define BUS_VERDICT_WAITING_MAX 16384

/* Pause/Resume/Reset calls one client may have waiting for the CPU thread. */
#define BUS_MAX_PENDING_PER_PEER 128

typedef struct VmBus VmBus;
typedef struct NetUser NetUser;

typedef struct VmBusConfig {
        const char *name;               /* VM name (validated) */
        const char *address;            /* bus address, or NULL for the user's session bus */
        Machine *machine;
        Chardev *chardevs[BUS_MAX_CHARDEVS];
        unsigned n_chardevs;
        NetUser *const *nets;           /* the user networking of NIC i (machine_nic() order), for its forwards */
        size_t n_nets;
        bool debug;                     /* serve org.orrery.Debug1 (--debug) */
        bool take_over;                 /* --incoming: replace the migration's source as the name's owner */
} VmBusConfig;

/* Connects, publishes the objects and takes the name. Failures are logged with their context. */
int vm_bus_new(sd_event *event, const VmBusConfig *config, VmBus **ret);
VmBus *vm_bus_free(VmBus *b);

/* The machine's state may have changed: emit PropertiesChanged, answer requests carried out. */
void vm_bus_machine_changed(VmBus *b);

/* Writes the introspection XML of every interface the VM serves to f. */
int vm_bus_introspect(FILE *f);


/* ---- internal, shared by the interface files ---- */

typedef struct BusPeer BusPeer;
struct BusPeer {
        VmBus *vm;
        BusPeer *hash_next;
        BusPeer *prev, *next;           /* oldest first */
        char *name;                     /* unique name */
        sd_bus_slot *watch;             /* NameOwnerChanged of just this name: when the peer leaves */
        bool allowed;                   /* same user as the VM, as the bus (not /proc) says */
        uid_t uid;
        pid_t pid;                      /* 0 if the bus did not say */
        char *comm;                     /* for the log only; may be NULL */
        bool watching;                  /* Console1.Watch */
        bool debugging;                 /* owns Debug1 */
        unsigned n_pending;             /* requests waiting for the CPU thread */
        uint64_t refusal_window_start;  /* CLOCK_MONOTONIC usec */
        unsigned refusals_in_window;    /* answered at once since refusal_window_start */
        unsigned n_deferred;            /* refusals waiting in VmBus.deferred */
        uint64_t n_dropped;             /* calls dropped without a reply */
        sd_bus_slot *asking;            /* the bus is asked for its credentials: no verdict yet */
        sd_bus_message **waiting;       /* its calls meanwhile, oldest first (verdict.c) */
        unsigned n_waiting, n_allocated;
};

typedef struct BusDeferred BusDeferred;

typedef struct BusPending BusPending;
struct BusPending {
        BusPending *next;
        sd_bus_message *call;
        BusPeer *peer;                  /* NULL once the peer left */
        uint64_t ticket;
        uint64_t deadline;              /* CLOCK_MONOTONIC usec */
};

#define BUS_PEER_BUCKETS 256

struct VmBus {
        sd_bus *bus;                    /* NULL while the connection is lost */
        sd_event *event;
        char *address;                  /* NULL: the session bus */
        char *service;                  /* org.orrery.VM.<name> */
        sd_event_source *reconnect_timer;
        uint64_t reconnect_delay;       /* usec; doubles up to RECONNECT_MAX_USEC */
        Machine *machine;
        NetUser *const *nets;           /* VmBusConfig's; they outlive the bus */
        size_t n_nets;
        char *name;
        char *path;                     /* /org/orrery/VM/<name> */
        char *console_path;
        char *uuid;
        const char *version;
        uint64_t memory_bytes;
        uint32_t vcpus;
        MachineState last_state;
        bool take_over;                 /* VmBusConfig's */
        struct BusMigration *migration; /* Machine1.Migrate* (machine1-migrate.c); NULL until the first */
        uint32_t last_leds;
        bool last_absolute;

        /* Peers (see above) */
        BusPeer *peers[BUS_PEER_BUCKETS];
        BusPeer *oldest, *newest;
        unsigned n_peers;

        /* Machine1: Pause/Resume/Reset waiting for the CPU thread */
        BusPending *pending;
        sd_event_source *pending_timer;

        /* Refusals waiting to be answered (refusal.c), oldest first */
        BusDeferred *deferred, *deferred_tail;
        unsigned n_deferred;
        unsigned n_verdict_waiting;     /* BusPeer.n_waiting, summed */
        sd_event_source *deferred_timer;

        /* Console1 */
        const char *console_label;
        uint32_t fb_width, fb_height, fb_stride, fb_format;
        uint32_t n_watchers;
        sd_event_source *console_timer;

        /* Chardev1 */
        struct BusChardev {
                VmBus *bus;
                Chardev *chardev;
                const char *name;
                char *path;
                char *owner;            /* unique name of the registered client, or NULL */
        } chardevs[BUS_MAX_CHARDEVS];
        unsigned n_chardevs;

        /* Debug1 */
        bool debug_enabled;
        char *debug_owner;              /* unique name of the debugging client, or NULL */
        bool debug_stopped;             /* the VM is paused because the debugger stopped it */

        /* Keyboard1/Mouse1: keys and buttons held, by whom, so they are released if that client vanishes. */
        struct BusHeldInput {
                char *sender;           /* unique name of the client that pressed it */
                uint16_t code;
                bool button;
        } held[BUS_MAX_HELD];
        unsigned n_held;
};

/*
 * Refuses callers that are not the emulator's own user. Returns 0 and the
 * caller's peer, or a negative errno with 'error' set.
 */
int bus_check_caller(VmBus *b, sd_bus_message *m, BusPeer **ret_peer, sd_bus_error *error);

/*
 * The prologue of a method that acts on the VM: bus_check_caller(), then
 * bus_log_origin() of 'what' for an admitted caller. ret_peer may be NULL.
 */
int bus_check_request(VmBus *b, sd_bus_message *m, const char *what, BusPeer **ret_peer, sd_bus_error *error);

/* The cached peer of a unique name, or NULL. */
BusPeer *bus_peer_find(VmBus *b, const char *name);
/*
 * A new peer, refused until its verdict is set; -EBUSY if the table is full.
 * It is watched from the moment the bus daemon reads the next message the
 * VM sends: ask about the name after this, and a name that leaves after the
 * answer cannot be missed; one gone before it is bus_peer_left().
 */
int bus_peer_add(VmBus *b, const char *name, BusPeer **ret);
/* The peer left the bus: each interface lets go of what it held, and the peer is freed. */
void bus_peer_left(BusPeer *p);
void bus_peer_forget(VmBus *b, BusPeer *p);

/* verdict.c: asks the bus who a new caller is without blocking the loop, holding its calls meanwhile. */
int bus_verdict_ask(VmBus *b, const char *sender, sd_bus_message *m);
int bus_verdict_hold(BusPeer *p, sd_bus_message *m);
void bus_verdict_forget(BusPeer *p);

/* refusal.c: answers the calls of callers known to be refused before object dispatch. */
int bus_refusal_setup(VmBus *b);
/* Sets the AccessDenied error that refuses peer p; returns its negative errno. */
int bus_refusal_set(BusPeer *p, sd_bus_error *error);
/* Counts a refusal of p: whether it may be answered at once (true) or must wait its turn. */
bool bus_refusal_count(VmBus *b, BusPeer *p);
/* Drops the waiting refusals of p (all of them if p is NULL), unanswered. */
void bus_refusal_forget(VmBus *b, BusPeer *p);
void bus_refusal_teardown(VmBus *b);

/*
 * Publishes 'vtable' on PREFIX/KIND/ID of the VM's connection with malloc()ed
 * userdata, which the bus frees when the connection goes (so every
 * reconnect publishes afresh). Takes 'userdata' also on failure.
 */
int bus_publish_owned(VmBus *b, const char *kind, const char *id, const char *interface,
                      const sd_bus_vtable *vtable, void *userdata);

/* Logs at info level who asked for 'what' (a stop, reset, pause, ...). */
void bus_log_origin(BusPeer *peer, const char *what);

extern const sd_bus_vtable machine1_vtable[];
extern const sd_bus_vtable console1_vtable[];
extern const sd_bus_vtable chardev1_vtable[];
extern const sd_bus_vtable keyboard1_vtable[];
extern const sd_bus_vtable mouse1_vtable[];
extern const sd_bus_vtable debug1_vtable[];

/* A peer left the bus: each interface lets go of what it held. */
void machine1_peer_gone(VmBus *b, BusPeer *peer);
void console1_peer_gone(VmBus *b, BusPeer *peer);
void chardev1_peer_gone(VmBus *b, BusPeer *peer);
void input1_peer_gone(VmBus *b, BusPeer *peer);
void debug1_peer_gone(VmBus *b, BusPeer *peer);
void debug1_machine_changed(VmBus *b);
void debug1_teardown(VmBus *b);

void machine1_answer_pending(VmBus *b);
void machine1_migrate_teardown(VmBus *b);
/* Machine1's migration members (machine1-migrate.c), in machine1_vtable. */
int machine1_method_migrate(sd_bus_message *m, void *userdata, sd_bus_error *error);
int machine1_method_migrate_fd(sd_bus_message *m, void *userdata, sd_bus_error *error);
int machine1_method_migrate_cancel(sd_bus_message *m, void *userdata, sd_bus_error *error);
int machine1_method_set_migration_downtime_limit(sd_bus_message *m, void *userdata, sd_bus_error *error);
int machine1_property_migration(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error);
/* Machine1.Load (machine1-load.c), in machine1_vtable. */
int machine1_method_load(sd_bus_message *m, void *userdata, sd_bus_error *error);
/* Whether a migration is running (Load refuses to run meanwhile). */
bool machine1_migration_active(VmBus *b);
void machine1_teardown(VmBus *b);
int console1_setup(VmBus *b);
int console1_publish(VmBus *b);
void console1_teardown(VmBus *b);
void input1_teardown(VmBus *b);
/* Releases in the guest every key and button a client holds (the VM moves to another process). */
void input1_release_all(VmBus *b);
int chardev1_setup(VmBus *b);
int chardev1_publish(VmBus *b);
void chardev1_teardown(VmBus *b);

/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * liborrery-client: the one way Orrery's services (orrery-vnc,
 * orrery-viewer, orrery-monitor, orrery-agent) talk to orrery-vm.
 *
 * It is a client of the bus contract in dbus/ (the XML) and nothing more: it
 * finds VMs (org.orrery.VM.<name>), reads and follows their properties,
 * maps their framebuffers read-only, follows damage, sends input, hands
 * out character-device sockets, and reattaches by itself when a VM goes
 * away and comes back (restart, migration). It keeps no state that the
 * VM cannot give back.
 *
 * Rules:
 *   - Not thread-safe: use every object from the thread that runs the
 *     bus's event loop (sd-event via orrery_client_attach_event(), or GLib
 *     via orrery-client-glib.h).
 *   - Functions return a negative errno on failure and leave their ret_*
 *     arguments untouched; the library logs nothing above debug
 *     (lib/log.h: ORRERY_LOG_LEVEL=debug shows its messages on stderr).
 *   - A VM is only ever a process of our own user: the owner of
 *     org.orrery.VM.<name> must run with our effective uid, by the bus
 *     daemon's credentials for its connection. Another user's process
 *     that took the name first is refused: orrery_vm_attach() returns
 *     -EPERM, an asynchronous attach reports it through the error
 *     callback (method "GetConnectionCredentials", AccessDenied) and
 *     waits for the name to pass to a process of ours.
 *   - Everything that comes from a VM is treated as hostile: names,
 *     paths, string and array sizes, rectangles and framebuffer layouts
 *     are validated before use.
 *   - Every method call has a timeout (orrery_client_set_timeout(), 5 s
 *     by default). Callbacks of calls still in flight are never invoked
 *     after the object they belong to was detached or freed.
 *   - Callbacks may detach/free the object that invoked them.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "orrery-contract.h"

#define ORRERY_VM_NAME_MAX 64
#define ORRERY_CHARDEV_ID_MAX 64
#define ORRERY_DEFAULT_TIMEOUT_USEC (5ULL * 1000000ULL)

/*
 * The DRM fourcc codes the client can map (ORRERY_FORMAT_*) and the error
 * names of the contract (ORRERY_ERROR_*) are in orrery-contract.h. The
 * error names are registered with sd_bus_error_add_map() by
 * orrery_client_new*(), so sd_bus_error_get_errno() and the synchronous
 * calls return the errno written next to each.
 * org.freedesktop.DBus.Error.AccessDenied maps to EACCES (sd-bus's own map). */

extern const sd_bus_error_map orrery_error_map[];

/* 1-64 of [A-Za-z0-9_-], starting with a letter or '_' (lib/vm-name.h: the name's bus name and path) */
bool orrery_vm_name_is_valid(const char *name);
/* [A-Za-z0-9_]{1,64}: one object-path element under .../Chardev/ */
bool orrery_chardev_id_is_valid(const char *id);

char **orrery_strv_free(char **l);
static inline void orrery_strv_freep(char ***l) {
        orrery_strv_free(*l);
}

/* ---------------------------------------------------------------------- */
/* The connection                                                          */

typedef struct OrreryClient OrreryClient;

/*
 * address == NULL: a new connection to the user's session bus
 * (sd_bus_open_user(), honours DBUS_SESSION_BUS_ADDRESS); otherwise a new
 * connection to that bus address (tests use a private dbus-daemon).
 */
int orrery_client_new(const char *address, OrreryClient **ret);
/* Uses (and references) a bus connection the caller already has. */
int orrery_client_new_with_bus(sd_bus *bus, OrreryClient **ret);
OrreryClient *orrery_client_ref(OrreryClient *c);
OrreryClient *orrery_client_unref(OrreryClient *c);
static inline void orrery_client_unrefp(OrreryClient **c) {
        orrery_client_unref(*c);
}

sd_bus *orrery_client_get_bus(OrreryClient *c);
/* sd_bus_attach_event(); event == NULL: the thread's default event loop. */
int orrery_client_attach_event(OrreryClient *c, sd_event *event, int64_t priority);
int orrery_client_detach_event(OrreryClient *c);

/* Timeout of every method call made through this client; 0 restores the default. */
int orrery_client_set_timeout(OrreryClient *c, uint64_t usec);
uint64_t orrery_client_get_timeout(OrreryClient *c);

/* Synchronous: the names (without prefix) of the VMs on the bus now, sorted, NULL-terminated. */
int orrery_client_list_vms(OrreryClient *c, char ***ret_names);

/* ---------------------------------------------------------------------- */
/* Discovery: follow VMs appearing and disappearing                         */

typedef struct OrreryVmWatch OrreryVmWatch;

typedef struct OrreryVmWatchCallbacks {
        /* A VM's name got an owner (or had one when the watch started). */
        void (*vm_added)(OrreryVmWatch *w, const char *name, void *userdata);
        /* A VM reported by vm_added lost its owner. A name passed from one
         * owner to another (migration) is neither removed nor added. */
        void (*vm_removed)(OrreryVmWatch *w, const char *name, void *userdata);
} OrreryVmWatchCallbacks;

/* Asynchronous: the VMs already on the bus are reported by vm_added from the event loop. */
int orrery_vm_watch_new(OrreryClient *c, const OrreryVmWatchCallbacks *callbacks, void *userdata, OrreryVmWatch **ret);
OrreryVmWatch *orrery_vm_watch_free(OrreryVmWatch *w);
static inline void orrery_vm_watch_freep(OrreryVmWatch **w) {
        orrery_vm_watch_free(*w);
}
/* Whether the initial list has been received. */
bool orrery_vm_watch_is_ready(OrreryVmWatch *w);

/* ---------------------------------------------------------------------- */
/* One VM                                                                  */

typedef struct OrreryVm OrreryVm;

typedef struct OrreryRect {
        uint32_t x, y, width, height;
} OrreryRect;

/*
 * A mapped framebuffer: PROT_READ, MAP_SHARED of the VM's sealed memfd.
 * The first pixel of line y is at data + y * stride. Valid until the next
 * console_mode_changed or vanished callback for this VM, or its detach.
 */
typedef struct OrreryFramebuffer {
        const uint8_t *data;
        uint32_t width;
        uint32_t height;
        uint32_t stride;
        uint32_t format;          /* DRM fourcc, ORRERY_FORMAT_* */
        uint32_t bytes_per_pixel;
} OrreryFramebuffer;

typedef struct OrreryChardevInfo {
        const char *name;  /* as the guest knows it; "" if the VM did not say */
        const char *owner; /* unique bus name of the registered client, "" when free */
        bool guest_open;
} OrreryChardevInfo;

typedef struct OrreryVmCallbacks {
        /* The VM is (again) on the bus and everything was re-read: properties,
         * consoles (framebuffers mapped and watched), chardevs. Not called for
         * the initial load of a synchronous orrery_vm_attach(). */
        void (*appeared)(OrreryVm *vm, void *userdata);
        /* The VM's name lost its owner (crash, Quit, migration away); the
         * framebuffers are unmapped and the properties cleared. */
        void (*vanished)(OrreryVm *vm, void *userdata);
        void (*state_changed)(OrreryVm *vm, const char *state, void *userdata);
        void (*leds_changed)(OrreryVm *vm, uint32_t leds, void *userdata);
        void (*mouse_mode_changed)(OrreryVm *vm, bool is_absolute, void *userdata);
        /* Damage, already clipped to the mapped framebuffer (never empty). */
        void (*console_update)(OrreryVm *vm, uint32_t console, const OrreryRect *rects, size_t n_rects, void *userdata);
        /* The console's framebuffer was (re)mapped after a mode change: fb is
         * the new mapping, or NULL if it could not be mapped. Redraw all. */
        void (*console_mode_changed)(OrreryVm *vm, uint32_t console, const OrreryFramebuffer *fb, void *userdata);
        /* Owner or GuestOpen of a chardev changed. */
        void (*chardev_changed)(OrreryVm *vm, const char *id, void *userdata);
        /* A call without a reply callback failed (input events, Watch,
         * reloading after reappearance): method is its D-Bus member name. */
        void (*error)(OrreryVm *vm, const char *method, const sd_bus_error *error, void *userdata);
} OrreryVmCallbacks;

typedef enum OrreryVmAttachFlags {
        /* Do not block: succeed even if the VM is not on the bus yet, and
         * report it (and everything read from it) through appeared. */
        ORRERY_VM_ATTACH_ASYNC = 1 << 0,
        /* Neither map nor watch framebuffers (monitor, agent bridge): the
         * VM does no display work on this client's behalf. */
        ORRERY_VM_ATTACH_NO_CONSOLES = 1 << 1,
} OrreryVmAttachFlags;

/*
 * Without ORRERY_VM_ATTACH_ASYNC this blocks (each call within the
 * client's timeout) until everything is read and the framebuffers are
 * mapped; -ENXIO if no such VM is on the bus, -EINVAL for an invalid name,
 * -EPERM if the name's owner runs as another user.
 * In both modes the VM is followed from then on: vanished/appeared.
 */
int orrery_vm_attach(OrreryClient *c, const char *name, const OrreryVmCallbacks *callbacks, void *userdata,
                     OrreryVmAttachFlags flags, OrreryVm **ret);
/*
 * Re-reads everything from the VM now (e.g. after a failed load was
 * reported through the error callback): vanished (if it was ready) is
 * called at once, appeared follows. -ENXIO if the VM is not on the bus.
 */
int orrery_vm_reload(OrreryVm *vm);
/* Cancels everything in flight, unwatches, unmaps. Always returns NULL. */
OrreryVm *orrery_vm_detach(OrreryVm *vm);
static inline void orrery_vm_detachp(OrreryVm **vm) {
        orrery_vm_detach(*vm);
}

OrreryClient *orrery_vm_get_client(OrreryVm *vm);
const char *orrery_vm_get_name(OrreryVm *vm);
const char *orrery_vm_get_bus_name(OrreryVm *vm); /* org.orrery.VM.<name> */
const char *orrery_vm_get_path(OrreryVm *vm);     /* /org/orrery/VM/<name> */
/* Whether the VM is on the bus and fully loaded. */
bool orrery_vm_is_ready(OrreryVm *vm);
/* The unique name of the VM's current owner, NULL when it is not on the bus. */
const char *orrery_vm_get_owner(OrreryVm *vm);

/*
 * Between vanished and appeared: true when the name went straight from one
 * process to another (a live migration), not through a time without owner.
 */
bool orrery_vm_is_moving(OrreryVm *vm);

/* Machine1 properties as last read; NULL/0 while the VM is not ready. */
const char *orrery_vm_get_uuid(OrreryVm *vm);
const char *orrery_vm_get_state(OrreryVm *vm);
/* Machine1.MigrationState: "none", "active", "completed", "failed"; NULL from a VM that has none. */
const char *orrery_vm_get_migration_state(OrreryVm *vm);
const char *orrery_vm_get_version(OrreryVm *vm);
uint64_t orrery_vm_get_memory_bytes(OrreryVm *vm);
uint32_t orrery_vm_get_vcpus(OrreryVm *vm);
/* Keyboard1.Leds: bit 0 Num Lock, bit 1 Caps Lock, bit 2 Scroll Lock. */
uint32_t orrery_vm_get_leds(OrreryVm *vm);
bool orrery_vm_get_mouse_is_absolute(OrreryVm *vm);

/* Consoles, by the <n> of /org/orrery/VM/<name>/Console/<n>. */
size_t orrery_vm_get_n_consoles(OrreryVm *vm);
/* The id of the index-th console (sorted by id); -ENOENT past the end. */
int orrery_vm_get_console_id(OrreryVm *vm, size_t index, uint32_t *ret_id);
const char *orrery_vm_get_console_label(OrreryVm *vm, uint32_t console);
/* -ENOENT: no such console; -ENODATA: not mapped (yet, or mapping failed). */
int orrery_vm_get_framebuffer(OrreryVm *vm, uint32_t console, OrreryFramebuffer *ret);

/* Chardevs, by the <id> of /org/orrery/VM/<name>/Chardev/<id>. */
size_t orrery_vm_get_n_chardevs(OrreryVm *vm);
const char *orrery_vm_get_chardev_id(OrreryVm *vm, size_t index);
int orrery_vm_get_chardev(OrreryVm *vm, const char *id, OrreryChardevInfo *ret);

/* ---------------------------------------------------------------------- */
/* Machine1 methods                                                        */

typedef enum OrreryVmAction {
        ORRERY_VM_ACTION_PAUSE,
        ORRERY_VM_ACTION_RESUME,
        ORRERY_VM_ACTION_RESET,
        ORRERY_VM_ACTION_POWER_DOWN,
        ORRERY_VM_ACTION_QUIT,
        _ORRERY_VM_ACTION_MAX,
} OrreryVmAction;

/* "pause", "resume", "reset", "power-down", "quit" <-> the action; -EINVAL otherwise. */
int orrery_vm_action_from_string(const char *s);
const char *orrery_vm_action_to_string(OrreryVmAction action);
/* The D-Bus member name: "Pause", …, "PowerDown", "Quit". */
const char *orrery_vm_action_to_method(OrreryVmAction action);

/*
 * r is 0 on success or a negative errno; error is NULL on success and
 * otherwise carries the D-Bus error name and message (a timeout is
 * -ETIMEDOUT with org.freedesktop.DBus.Error.Timeout or .NoReply).
 */
typedef void (*OrreryVmReplyFn)(OrreryVm *vm, int r, const sd_bus_error *error, void *userdata);

/* Asynchronous; callback may be NULL (then failures go to the error callback). */
int orrery_vm_action(OrreryVm *vm, OrreryVmAction action, OrreryVmReplyFn callback, void *userdata);
/* Synchronous, within the client's timeout; ret_error may be NULL. */
int orrery_vm_action_sync(OrreryVm *vm, OrreryVmAction action, sd_bus_error *ret_error);

/* ---------------------------------------------------------------------- */
/* Input: fire and forget. Failures go to the error callback (if none is   */
/* set, no reply is even requested). -ENXIO while the VM is not ready.     */

int orrery_vm_key_press(OrreryVm *vm, uint32_t code);   /* Linux evdev code, e.g. 30 = KEY_A */
int orrery_vm_key_release(OrreryVm *vm, uint32_t code);
int orrery_vm_mouse_set_abs_position(OrreryVm *vm, uint32_t x, uint32_t y);
int orrery_vm_mouse_rel_motion(OrreryVm *vm, int32_t dx, int32_t dy);
int orrery_vm_mouse_press(OrreryVm *vm, uint32_t button); /* BTN_LEFT 0x110, … */
int orrery_vm_mouse_release(OrreryVm *vm, uint32_t button);
int orrery_vm_mouse_wheel(OrreryVm *vm, int32_t vertical, int32_t horizontal);

/* ---------------------------------------------------------------------- */
/* Character devices                                                       */

/*
 * fd >= 0: registered; fd is the caller's end of an AF_UNIX SOCK_STREAM
 * socketpair (SOCK_CLOEXEC|SOCK_NONBLOCK), owned by the callback (close
 * it). fd < 0: a negative errno, details in error (Busy: another client
 * owns the device).
 */
typedef void (*OrreryChardevRegisterFn)(OrreryVm *vm, const char *id, int fd, const sd_bus_error *error, void *userdata);
typedef void (*OrreryScrollbackFn)(OrreryVm *vm, const char *id, int r, const void *data, size_t size,
                                   const sd_bus_error *error, void *userdata);

int orrery_vm_chardev_register(OrreryVm *vm, const char *id, OrreryChardevRegisterFn callback, void *userdata);
int orrery_vm_chardev_register_sync(OrreryVm *vm, const char *id, int *ret_fd, sd_bus_error *ret_error);
int orrery_vm_chardev_unregister(OrreryVm *vm, const char *id, OrreryVmReplyFn callback, void *userdata);
int orrery_vm_chardev_unregister_sync(OrreryVm *vm, const char *id, sd_bus_error *ret_error);
int orrery_vm_chardev_get_scrollback(OrreryVm *vm, const char *id, OrreryScrollbackFn callback, void *userdata);
/* *ret_data is malloc()ed (free() it); NULL when the scrollback is empty. */
int orrery_vm_chardev_get_scrollback_sync(OrreryVm *vm, const char *id, void **ret_data, size_t *ret_size,
                                          sd_bus_error *ret_error);

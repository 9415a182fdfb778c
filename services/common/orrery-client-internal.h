/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Internals shared by the files of liborrery-client (and its unit tests).
 * Not for services: they use orrery-client.h only.
 */

#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "orrery-client.h"
#include "vm-name.h"

/* Limits on what a VM may make us hold. */
#define ORRERY_MAX_CONSOLES 16
#define ORRERY_MAX_CHARDEVS 64
#define ORRERY_MAX_RECTS 4096                       /* per Update; beyond: one full-screen rect */
#define ORRERY_MAX_STRING 1024                      /* property strings */
#define ORRERY_MAX_SCROLLBACK (1024 * 1024)         /* the contract says 64 KiB */
#define ORRERY_MAX_FB_DIMENSION 16384
#define ORRERY_MAX_FB_MAP (1024ULL * 1024 * 1024)   /* bytes mapped per framebuffer */

struct OrreryClient {
        unsigned n_ref;
        sd_bus *bus;
        bool owns_bus; /* ours to flush and close; else the caller's */
        uint64_t timeout_usec;
};

/* ---- util.c ---- */

/*
 * Whether the unique name owner runs as our effective user, by the bus
 * daemon's credentials for the connection (never augmented from /proc):
 * 0 if so, -EPERM if not (ret_uid says whose it is), or why it could not
 * be told.
 */
int orrery_owner_check_user(sd_bus *bus, const char *owner, uid_t *ret_uid);

/* Returns the negative errno for a D-Bus error (never 0 for a set error). */
int orrery_error_errno(const sd_bus_error *e);

/* "org.orrery.VM.<name>" -> "<name>" if valid, else NULL. */
const char *orrery_vm_name_from_bus_name(const char *bus_name);

/*
 * Clips n rectangles to a width x height area in place (into out, which
 * may equal in): drops those outside or empty. Returns how many remain.
 */
size_t orrery_rects_clip(const OrreryRect *in, size_t n, uint32_t width, uint32_t height, OrreryRect *out);

uint32_t orrery_format_bytes_per_pixel(uint32_t format);

/* ---- framebuffer.c ---- */

typedef struct OrreryMapping {
        void *base;
        size_t length;
        OrreryFramebuffer fb;
} OrreryMapping;

/*
 * Validates the layout against the fd (a regular file sealed against
 * shrinking, large enough) and maps it PROT_READ, MAP_SHARED. Does not
 * take or close fd.
 */
int orrery_mapping_map(int fd, uint64_t offset, uint32_t width, uint32_t height, uint32_t stride, uint32_t format,
                       OrreryMapping *ret);
void orrery_mapping_unmap(OrreryMapping *m);

static inline bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}

static inline bool isempty(const char *s) {
        return !s || !s[0];
}

/* malloc()ed printf, NULL on failure (unlike asprintf's undefined pointer). */
char *orrery_strdup_printf(const char *format, ...) _printf_(1, 2);

/* Longest object path of a VM object: /org/orrery/VM/<name>/Chardev/<id> */
#define ORRERY_PATH_MAX (sizeof(ORRERY_VM_PATH_PREFIX) + 3 * ORRERY_VM_NAME_MAX + sizeof("/Chardev/") + ORRERY_CHARDEV_ID_MAX)

/* ---- vm.c ---- */

typedef struct Console {
        uint32_t id;
        char *label;
        /* Geometry as the Console1 properties say. */
        uint32_t width, height, stride, format;
        OrreryMapping map; /* map.base == NULL: not mapped */
        bool fb_in_flight; /* a GetFramebuffer call is out */
        bool remap_again;  /* the mode changed again while it was */
} Console;

typedef struct Chardev {
        char *id;
        char *name;
        char *owner;
        bool guest_open;
} Chardev;

typedef enum CallKind {
        CALL_GET_NAME_OWNER,
        CALL_OWNER_CREDENTIALS,
        CALL_GET_MANAGED_OBJECTS,
        CALL_GET_ALL,
        CALL_GET_FRAMEBUFFER,
        CALL_WATCH,
        CALL_ACTION,
        CALL_INPUT,
        CALL_REGISTER,
        CALL_UNREGISTER,
        CALL_SCROLLBACK,
} CallKind;

/*
 * One method call in flight. The VM owns it (and through it the slot), so
 * detaching cancels every reply callback; a reply frees it.
 */
typedef struct Call Call;
struct Call {
        OrreryVm *vm;
        sd_bus_slot *slot;
        Call *prev, *next;
        CallKind kind;
        bool owner_bound; /* part of following the current owner: cancelled when it vanishes */
        bool load;        /* counted in vm->n_loading */
        const char *method; /* static string, for error reports */
        uint32_t console;
        char *path;      /* CALL_GET_ALL */
        char *interface; /* CALL_GET_ALL */
        char *id;        /* chardev id; CALL_OWNER_CREDENTIALS: the unique name being checked */
        int fd;          /* CALL_REGISTER: the caller's end, until handed over */
        union {
                OrreryVmReplyFn reply;
                OrreryChardevRegisterFn reg;
                OrreryScrollbackFn scrollback;
        } callback;
        void *userdata;
};

struct OrreryVm {
        unsigned n_ref; /* 1 for the attach, +1 while calling out */
        bool detached;
        OrreryClient *client;
        OrreryVmCallbacks cb;
        void *userdata;
        OrreryVmAttachFlags flags;

        char *name;
        char *bus_name;
        char *path;

        sd_bus_slot *owner_match;
        sd_bus_slot *signal_match;
        Call *calls;
        size_t n_calls;
        Call *owner_check; /* the new owner's credentials, asked for before anything is sent to it */

        /* Everything below is what the VM can give back: cleared when it vanishes. */
        char *owner; /* unique name; NULL when not on the bus */
        bool ready;
        bool moving;                    /* the name went straight to a new owner: vanished, appeared follows */
        unsigned n_loading;
        bool have_machine;
        bool load_failed;

        char *uuid;
        char *state;
        char *migration_state;          /* Machine1.MigrationState */
        char *version;
        uint64_t memory_bytes;
        uint32_t vcpus;
        uint32_t leds;
        bool mouse_is_absolute;

        Console *consoles; /* sorted by id */
        size_t n_consoles;
        Chardev *chardevs;
        size_t n_chardevs;

        OrreryRect *rects;
        size_t n_rects_allocated;
};

#define VM_CALLBACK(vm, member, ...)                                                    \
        do {                                                                            \
                if (!(vm)->detached && (vm)->cb.member)                                 \
                        (vm)->cb.member((vm), __VA_ARGS__, (vm)->userdata);             \
        } while (0)
#define VM_CALLBACK0(vm, member)                                                        \
        do {                                                                            \
                if (!(vm)->detached && (vm)->cb.member)                                 \
                        (vm)->cb.member((vm), (vm)->userdata);                          \
        } while (0)

OrreryVm *vm_ref(OrreryVm *vm);
void vm_unref(OrreryVm *vm);

/* Calls: create, send (links it into vm->calls), free. */
Call *vm_call_new(OrreryVm *vm, CallKind kind, const char *method);
int vm_call_send(OrreryVm *vm, Call *c, sd_bus_message *m);
void vm_call_free(Call *c);
void vm_report_error(OrreryVm *vm, const char *method, const sd_bus_error *error);

/* A method call to the VM's well-known name (user requests) or to its current owner (loading). */
int vm_new_method_call(OrreryVm *vm, bool to_owner, const char *path, const char *interface, const char *member,
                       sd_bus_message **ret);
/* Result handling of user calls, in vm-methods.c. */
void vm_methods_dispatch_reply(Call *c, sd_bus_message *reply);

/* Calls in flight that still hold a slot (tests check that nothing leaks). */
size_t orrery_vm_get_n_pending_calls(OrreryVm *vm);

/* SPDX-License-Identifier: MIT */

/*
 * OrreryVm: one VM followed by name.
 *
 * Attaching installs two matches (the name's NameOwnerChanged, and every
 * signal under /org/orrery/VM/<name> from its sender) and then asks who
 * owns the name. Whenever the name gets a new owner, everything is loaded
 * again from that owner: GetManagedObjects (Machine1, Keyboard1, Mouse1,
 * consoles, chardevs), then GetFramebuffer + Watch per console; when the
 * last reply is in, the VM is ready and appeared is called. When the owner
 * goes away, every call bound to it is cancelled, framebuffers are unmapped,
 * state is cleared and vanished is called. Signals are accepted only from
 * the current owner.
 */

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "orrery-client-internal.h"

#define MACHINE_IFACE "org.orrery.Machine1"
#define KEYBOARD_IFACE "org.orrery.Keyboard1"
#define MOUSE_IFACE "org.orrery.Mouse1"
#define CONSOLE_IFACE "org.orrery.Console1"
#define CHARDEV_IFACE "org.orrery.Chardev1"
#define PROPERTIES_IFACE "org.freedesktop.DBus.Properties"
#define OBJECT_MANAGER_IFACE "org.freedesktop.DBus.ObjectManager"

enum {
        CHANGED_STATE = 1 << 0,
        CHANGED_LEDS = 1 << 1,
        CHANGED_MOUSE = 1 << 2,
        CHANGED_GEOMETRY = 1 << 3,
        CHANGED_CHARDEV = 1 << 4,
        CHANGED_OTHER = 1 << 5,
};

typedef enum ObjKind {
        OBJ_OTHER,
        OBJ_MACHINE,
        OBJ_CONSOLE,
        OBJ_CHARDEV,
} ObjKind;

typedef struct ObjRef {
        ObjKind kind;
        uint32_t console;
        char chardev[ORRERY_CHARDEV_ID_MAX + 1];
} ObjRef;

static void vm_start_load(OrreryVm *vm);
static void console_request_map(OrreryVm *vm, Console *con, bool load);

static const char *console_path(OrreryVm *vm, uint32_t id, char buf[static ORRERY_PATH_MAX]) {
        snprintf(buf, ORRERY_PATH_MAX, "%s/Console/%" PRIu32, vm->path, id);
        return buf;
}

/* ---------------------------------------------------------------------- */
/* Calls                                                                   */

Call *vm_call_new(OrreryVm *vm, CallKind kind, const char *method) {
        Call *c = calloc(1, sizeof(*c));

        if (!c)
                return NULL;
        c->vm = vm;
        c->kind = kind;
        c->method = method;
        c->fd = -1;
        return c;
}

static void call_unlink(Call *c) {
        OrreryVm *vm = c->vm;

        if (!c->prev && vm->calls != c)
                return; /* not linked */
        if (c->prev)
                c->prev->next = c->next;
        else
                vm->calls = c->next;
        if (c->next)
                c->next->prev = c->prev;
        c->prev = c->next = NULL;
        vm->n_calls--;
}

void vm_call_free(Call *c) {
        if (!c)
                return;
        if (c->vm->owner_check == c)
                c->vm->owner_check = NULL;
        call_unlink(c);
        sd_bus_slot_unref(c->slot);
        safe_close(c->fd);
        free(c->path);
        free(c->interface);
        free(c->id);
        free(c);
}

static int on_call_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error);

int vm_call_send(OrreryVm *vm, Call *c, sd_bus_message *m) {
        int r;

        r = sd_bus_call_async(vm->client->bus, &c->slot, m, on_call_reply, c, vm->client->timeout_usec);
        if (r < 0)
                return r;

        c->next = vm->calls;
        if (vm->calls)
                vm->calls->prev = c;
        vm->calls = c;
        vm->n_calls++;
        if (c->load)
                vm->n_loading++;
        return 0;
}

int vm_new_method_call(OrreryVm *vm, bool to_owner, const char *path, const char *interface, const char *member,
                       sd_bus_message **ret) {
        const char *destination = to_owner ? vm->owner : vm->bus_name;

        if (!destination)
                return -ENXIO;
        return sd_bus_message_new_method_call(vm->client->bus, ret, destination, path, interface, member);
}

static void cancel_calls(OrreryVm *vm, bool owner_bound_only) {
        Call *c = vm->calls, *next;

        for (; c; c = next) {
                next = c->next;
                if (owner_bound_only && !c->owner_bound)
                        continue;
                vm_call_free(c);
        }
}

void vm_report_error(OrreryVm *vm, const char *method, const sd_bus_error *error) {
        log_debug("VM '%s': %s failed: %s: %s", vm->name, method, error ? error->name : "?",
                  error ? error->message : "?");
        VM_CALLBACK(vm, error, method, error);
}

size_t orrery_vm_get_n_pending_calls(OrreryVm *vm) {
        return vm ? vm->n_calls : 0;
}

/* ---------------------------------------------------------------------- */
/* Objects and state                                                       */

static Console *find_console(OrreryVm *vm, uint32_t id) {
        for (size_t i = 0; i < vm->n_consoles; i++)
                if (vm->consoles[i].id == id)
                        return vm->consoles + i;
        return NULL;
}

static Console *add_console(OrreryVm *vm, uint32_t id) {
        Console *con = find_console(vm, id), *t;
        size_t i;

        if (con)
                return con;
        if (vm->n_consoles >= ORRERY_MAX_CONSOLES)
                return NULL;
        t = realloc(vm->consoles, (vm->n_consoles + 1) * sizeof(Console));
        if (!t)
                return NULL;
        vm->consoles = t;
        for (i = vm->n_consoles; i > 0 && vm->consoles[i - 1].id > id; i--)
                vm->consoles[i] = vm->consoles[i - 1];
        vm->consoles[i] = (Console) { .id = id };
        vm->n_consoles++;
        return vm->consoles + i;
}

static void console_done(Console *con) {
        orrery_mapping_unmap(&con->map);
        free(con->label);
}

static void remove_console(OrreryVm *vm, uint32_t id) {
        Console *con = find_console(vm, id);
        size_t i;

        if (!con)
                return;
        i = (size_t) (con - vm->consoles);
        console_done(con);
        memmove(vm->consoles + i, vm->consoles + i + 1, (vm->n_consoles - i - 1) * sizeof(Console));
        vm->n_consoles--;
}

static Chardev *find_chardev(OrreryVm *vm, const char *id) {
        for (size_t i = 0; i < vm->n_chardevs; i++)
                if (streq(vm->chardevs[i].id, id))
                        return vm->chardevs + i;
        return NULL;
}

static Chardev *add_chardev(OrreryVm *vm, const char *id) {
        Chardev *cd = find_chardev(vm, id), *t;
        char *s;

        if (cd)
                return cd;
        if (vm->n_chardevs >= ORRERY_MAX_CHARDEVS)
                return NULL;
        s = strdup(id);
        if (!s)
                return NULL;
        t = realloc(vm->chardevs, (vm->n_chardevs + 1) * sizeof(Chardev));
        if (!t) {
                free(s);
                return NULL;
        }
        vm->chardevs = t;
        vm->chardevs[vm->n_chardevs] = (Chardev) { .id = s };
        return vm->chardevs + vm->n_chardevs++;
}

static void chardev_done(Chardev *cd) {
        free(cd->id);
        free(cd->name);
        free(cd->owner);
}

static void remove_chardev(OrreryVm *vm, const char *id) {
        Chardev *cd = find_chardev(vm, id);
        size_t i;

        if (!cd)
                return;
        i = (size_t) (cd - vm->chardevs);
        chardev_done(cd);
        memmove(vm->chardevs + i, vm->chardevs + i + 1, (vm->n_chardevs - i - 1) * sizeof(Chardev));
        vm->n_chardevs--;
}

/* Forgets everything that came from the VM. */
static void vm_clear_state(OrreryVm *vm) {
        for (size_t i = 0; i < vm->n_consoles; i++)
                console_done(vm->consoles + i);
        vm->consoles = mfree(vm->consoles);
        vm->n_consoles = 0;
        for (size_t i = 0; i < vm->n_chardevs; i++)
                chardev_done(vm->chardevs + i);
        vm->chardevs = mfree(vm->chardevs);
        vm->n_chardevs = 0;

        vm->uuid = mfree(vm->uuid);
        vm->state = mfree(vm->state);
        vm->migration_state = mfree(vm->migration_state);
        vm->version = mfree(vm->version);
        vm->memory_bytes = 0;
        vm->vcpus = 0;
        vm->leds = 0;
        vm->mouse_is_absolute = false;
        vm->ready = false;
        vm->have_machine = false;
        vm->load_failed = false;
        vm->n_loading = 0;
}

/* Maps an object path of this VM to what lives there. */
static ObjKind classify_path(OrreryVm *vm, const char *path, ObjRef *ret) {
        size_t k = strlen(vm->path);
        const char *rest;

        *ret = (ObjRef) { .kind = OBJ_OTHER };
        if (!path || strncmp(path, vm->path, k) != 0)
                return OBJ_OTHER;
        rest = path + k;
        if (rest[0] == 0)
                return (ret->kind = OBJ_MACHINE);

        if (strncmp(rest, "/Console/", 9) == 0) {
                const char *d = rest + 9;
                uint64_t v = 0;
                size_t n;

                for (n = 0; d[n]; n++) {
                        if (d[n] < '0' || d[n] > '9' || n >= 9)
                                return OBJ_OTHER;
                        v = v * 10 + (uint64_t) (d[n] - '0');
                }
                if (n == 0 || (n > 1 && d[0] == '0'))
                        return OBJ_OTHER;
                ret->console = (uint32_t) v;
                return (ret->kind = OBJ_CONSOLE);
        }

        if (strncmp(rest, "/Chardev/", 9) == 0 && orrery_chardev_id_is_valid(rest + 9)) {
                strcpy(ret->chardev, rest + 9);
                return (ret->kind = OBJ_CHARDEV);
        }

        return OBJ_OTHER;
}

/* ---------------------------------------------------------------------- */
/* Properties: the peer is untrusted, so a property of the wrong type is
 * skipped rather than misread, and strings have a size limit. */

static int peek_variant(sd_bus_message *m, const char *signature) {
        const char *contents;
        char type;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r < 0)
                return r;
        if (r == 0 || type != SD_BUS_TYPE_VARIANT)
                return -EBADMSG;
        if (!streq_ptr(contents, signature)) {
                r = sd_bus_message_skip(m, "v");
                return r < 0 ? r : 0;
        }
        return 1;
}

static int prop_string(sd_bus_message *m, char **dst, bool *changed) {
        const char *s;
        char *d;
        int r;

        r = peek_variant(m, "s");
        if (r <= 0)
                return r;
        r = sd_bus_message_read(m, "v", "s", &s);
        if (r < 0)
                return r;
        if (strlen(s) > ORRERY_MAX_STRING || streq_ptr(*dst, s))
                return 0;
        d = strdup(s);
        if (!d)
                return -ENOMEM;
        free(*dst);
        *dst = d;
        *changed = true;
        return 0;
}

static int prop_u32(sd_bus_message *m, uint32_t *dst, bool *changed) {
        uint32_t v;
        int r;

        r = peek_variant(m, "u");
        if (r <= 0)
                return r;
        r = sd_bus_message_read(m, "v", "u", &v);
        if (r < 0)
                return r;
        if (*dst != v) {
                *dst = v;
                *changed = true;
        }
        return 0;
}

static int prop_u64(sd_bus_message *m, uint64_t *dst, bool *changed) {
        uint64_t v;
        int r;

        r = peek_variant(m, "t");
        if (r <= 0)
                return r;
        r = sd_bus_message_read(m, "v", "t", &v);
        if (r < 0)
                return r;
        if (*dst != v) {
                *dst = v;
                *changed = true;
        }
        return 0;
}

static int prop_bool(sd_bus_message *m, bool *dst, bool *changed) {
        int v;
        int r;

        r = peek_variant(m, "b");
        if (r <= 0)
                return r;
        r = sd_bus_message_read(m, "v", "b", &v);
        if (r < 0)
                return r;
        if (*dst != !!v) {
                *dst = !!v;
                *changed = true;
        }
        return 0;
}

/* Reads (or skips) the variant of one property; ORs what changed into *changed. */
static int parse_property(OrreryVm *vm, const ObjRef *o, const char *iface, const char *prop, sd_bus_message *m,
                          unsigned *changed) {
        bool ch = false;
        unsigned bit = CHANGED_OTHER;
        int r = -ENOENT;

        if (o->kind == OBJ_MACHINE && streq(iface, MACHINE_IFACE)) {
                if (streq(prop, "UUID"))
                        r = prop_string(m, &vm->uuid, &ch);
                else if (streq(prop, "State")) {
                        r = prop_string(m, &vm->state, &ch);
                        bit = CHANGED_STATE;
                } else if (streq(prop, "MigrationState"))
                        r = prop_string(m, &vm->migration_state, &ch);
                else if (streq(prop, "Version"))
                        r = prop_string(m, &vm->version, &ch);
                else if (streq(prop, "MemoryBytes"))
                        r = prop_u64(m, &vm->memory_bytes, &ch);
                else if (streq(prop, "VCPUs"))
                        r = prop_u32(m, &vm->vcpus, &ch);
        } else if (o->kind == OBJ_MACHINE && streq(iface, KEYBOARD_IFACE)) {
                if (streq(prop, "Leds")) {
                        r = prop_u32(m, &vm->leds, &ch);
                        bit = CHANGED_LEDS;
                }
        } else if (o->kind == OBJ_MACHINE && streq(iface, MOUSE_IFACE)) {
                if (streq(prop, "IsAbsolute")) {
                        r = prop_bool(m, &vm->mouse_is_absolute, &ch);
                        bit = CHANGED_MOUSE;
                }
        } else if (o->kind == OBJ_CONSOLE && streq(iface, CONSOLE_IFACE)) {
                Console *con = find_console(vm, o->console);

                if (con) {
                        bit = CHANGED_GEOMETRY;
                        if (streq(prop, "Label")) {
                                r = prop_string(m, &con->label, &ch);
                                bit = CHANGED_OTHER;
                        } else if (streq(prop, "Width"))
                                r = prop_u32(m, &con->width, &ch);
                        else if (streq(prop, "Height"))
                                r = prop_u32(m, &con->height, &ch);
                        else if (streq(prop, "Stride"))
                                r = prop_u32(m, &con->stride, &ch);
                        else if (streq(prop, "Format"))
                                r = prop_u32(m, &con->format, &ch);
                }
        } else if (o->kind == OBJ_CHARDEV && streq(iface, CHARDEV_IFACE)) {
                Chardev *cd = find_chardev(vm, o->chardev);

                if (cd) {
                        bit = CHANGED_CHARDEV;
                        if (streq(prop, "Name"))
                                r = prop_string(m, &cd->name, &ch);
                        else if (streq(prop, "Owner"))
                                r = prop_string(m, &cd->owner, &ch);
                        else if (streq(prop, "GuestOpen"))
                                r = prop_bool(m, &cd->guest_open, &ch);
                }
        }

        if (r == -ENOENT) /* not a property we follow */
                return sd_bus_message_skip(m, "v");
        if (r < 0)
                return r;
        if (ch)
                *changed |= bit;
        return 0;
}

/* Reads an a{sv} of one interface of one object. */
static int parse_properties(OrreryVm *vm, const ObjRef *o, const char *iface, sd_bus_message *m, unsigned *changed) {
        int r;

        if (o->kind == OBJ_MACHINE && streq(iface, MACHINE_IFACE))
                vm->have_machine = true;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const char *prop;

                r = sd_bus_message_read(m, "s", &prop);
                if (r < 0)
                        return r;
                r = parse_property(vm, o, iface, prop, m, changed);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

/* Creates the console or chardev an interface announces, so its properties have a home. */
static void ensure_object(OrreryVm *vm, const ObjRef *o, const char *iface) {
        if (o->kind == OBJ_CONSOLE && streq(iface, CONSOLE_IFACE)) {
                if (!(vm->flags & ORRERY_VM_ATTACH_NO_CONSOLES) && !add_console(vm, o->console))
                        log_debug("VM '%s': ignoring console %" PRIu32, vm->name, o->console);
        } else if (o->kind == OBJ_CHARDEV && streq(iface, CHARDEV_IFACE)) {
                if (!add_chardev(vm, o->chardev))
                        log_debug("VM '%s': ignoring chardev '%s'", vm->name, o->chardev);
        }
}

/* Reads the a{sa{sv}} of one object (GetManagedObjects entry, InterfacesAdded). */
static int parse_interfaces(OrreryVm *vm, const ObjRef *o, sd_bus_message *m, unsigned *changed) {
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sa{sv}}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sa{sv}")) > 0) {
                const char *iface;

                r = sd_bus_message_read(m, "s", &iface);
                if (r < 0)
                        return r;
                ensure_object(vm, o, iface);
                r = parse_properties(vm, o, iface, m, changed);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

static int parse_managed_objects(OrreryVm *vm, sd_bus_message *m) {
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{oa{sa{sv}}}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "oa{sa{sv}}")) > 0) {
                unsigned changed = 0;
                const char *path;
                ObjRef o;

                r = sd_bus_message_read(m, "o", &path);
                if (r < 0)
                        return r;
                if (classify_path(vm, path, &o) == OBJ_OTHER)
                        r = sd_bus_message_skip(m, "a{sa{sv}}");
                else
                        r = parse_interfaces(vm, &o, m, &changed);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

static bool geometry_differs(const Console *con) {
        const OrreryFramebuffer *fb = &con->map.fb;

        return !con->map.base || fb->width != con->width || fb->height != con->height ||
               fb->stride != con->stride || fb->format != con->format;
}

/* Tells the user what a PropertiesChanged or GetAll changed. */
static void apply_changes(OrreryVm *vm, const ObjRef *o, unsigned changed) {
        if (!vm->ready)
                return;

        if ((changed & CHANGED_GEOMETRY) && o->kind == OBJ_CONSOLE) {
                Console *con = find_console(vm, o->console);

                /* A new geometry is announced by these properties: map again. */
                if (con && !con->fb_in_flight && geometry_differs(con))
                        console_request_map(vm, con, false);
        }
        if (changed & CHANGED_STATE)
                VM_CALLBACK(vm, state_changed, vm->state ?: "");
        if (changed & CHANGED_LEDS)
                VM_CALLBACK(vm, leds_changed, vm->leds);
        if (changed & CHANGED_MOUSE)
                VM_CALLBACK(vm, mouse_mode_changed, vm->mouse_is_absolute);
        if ((changed & CHANGED_CHARDEV) && o->kind == OBJ_CHARDEV)
                VM_CALLBACK(vm, chardev_changed, o->chardev);
}

static void request_get_all(OrreryVm *vm, const char *path, const char *iface, bool load) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        Call *c;
        int r;

        c = vm_call_new(vm, CALL_GET_ALL, "GetAll");
        if (!c)
                return (void) log_debug("Out of memory");
        c->owner_bound = true;
        c->load = load;
        c->path = strdup(path);
        c->interface = strdup(iface);
        if (!c->path || !c->interface) {
                r = -ENOMEM;
                goto fail;
        }
        r = vm_new_method_call(vm, true, path, PROPERTIES_IFACE, "GetAll", &m);
        if (r < 0)
                goto fail;
        r = sd_bus_message_append(m, "s", iface);
        if (r < 0)
                goto fail;
        r = vm_call_send(vm, c, m);
        if (r < 0)
                goto fail;
        return;
fail:
        log_debug("VM '%s': cannot call GetAll: %s", vm->name, strerror(-r));
        vm_call_free(c);
}

static void on_properties_changed(OrreryVm *vm, sd_bus_message *m) {
        unsigned changed = 0;
        const char *iface, *prop;
        bool invalidated = false;
        ObjRef o;
        int r;

        if (classify_path(vm, sd_bus_message_get_path(m), &o) == OBJ_OTHER)
                return;

        r = sd_bus_message_read(m, "s", &iface);
        if (r < 0)
                goto bad;
        r = parse_properties(vm, &o, iface, m, &changed);
        if (r < 0)
                goto bad;

        /* Invalidated properties we follow: fetch the interface again. */
        r = sd_bus_message_enter_container(m, 'a', "s");
        if (r < 0)
                goto bad;
        while ((r = sd_bus_message_read(m, "s", &prop)) > 0)
                invalidated = true;
        if (r < 0)
                goto bad;
        if (invalidated && vm->owner)
                request_get_all(vm, sd_bus_message_get_path(m), iface, false);

        apply_changes(vm, &o, changed);
        return;
bad:
        log_debug("VM '%s': bad PropertiesChanged signal: %s", vm->name, strerror(-r));
        apply_changes(vm, &o, changed);
}

/* ---------------------------------------------------------------------- */
/* Consoles                                                                */

static void console_request_map(OrreryVm *vm, Console *con, bool load) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        char path[ORRERY_PATH_MAX];
        Call *c;
        int r;

        if (con->fb_in_flight) {
                con->remap_again = true;
                return;
        }

        console_path(vm, con->id, path);
        c = vm_call_new(vm, CALL_GET_FRAMEBUFFER, "GetFramebuffer");
        if (!c)
                return (void) log_debug("Out of memory");
        c->owner_bound = true;
        c->load = load;
        c->console = con->id;

        r = vm_new_method_call(vm, true, path, CONSOLE_IFACE, "GetFramebuffer", &m);
        if (r >= 0)
                r = vm_call_send(vm, c, m);
        if (r < 0) {
                log_debug("VM '%s': cannot call GetFramebuffer: %s", vm->name, strerror(-r));
                vm_call_free(c);
                return;
        }
        con->fb_in_flight = true;
        con->remap_again = false;
}

static void console_watch(OrreryVm *vm, uint32_t id, const char *member) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        char path[ORRERY_PATH_MAX];
        Call *c = NULL;
        int r;

        console_path(vm, id, path);
        r = vm_new_method_call(vm, true, path, CONSOLE_IFACE, member, &m);
        if (r < 0)
                goto fail;

        if (streq(member, "Unwatch")) {
                /* On the way out: nobody is left to hear about failures. */
                r = sd_bus_message_set_expect_reply(m, false);
                if (r >= 0)
                        r = sd_bus_send(vm->client->bus, m, NULL);
                if (r < 0)
                        goto fail;
                return;
        }

        c = vm_call_new(vm, CALL_WATCH, "Watch");
        if (!c) {
                r = -ENOMEM;
                goto fail;
        }
        c->owner_bound = true;
        r = vm_call_send(vm, c, m);
        if (r < 0)
                goto fail;
        return;
fail:
        log_debug("VM '%s': cannot call %s: %s", vm->name, member, strerror(-r));
        vm_call_free(c);
}

/* Maps the reply of GetFramebuffer; the old mapping goes either way. */
static int console_apply_framebuffer(OrreryVm *vm, Console *con, sd_bus_message *reply) {
        uint32_t width, height, stride, format;
        OrreryMapping map;
        uint64_t offset;
        int fd, r;

        orrery_mapping_unmap(&con->map);

        /* The fd belongs to the message and is closed with it. */
        r = sd_bus_message_read(reply, "htuuuu", &fd, &offset, &width, &height, &stride, &format);
        if (r < 0)
                return r;
        r = orrery_mapping_map(fd, offset, width, height, stride, format, &map);
        if (r < 0)
                return r;
        con->map = map;
        return 0;
}

static void on_framebuffer_reply(OrreryVm *vm, Call *c, sd_bus_message *m) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        uint32_t id = c->console;
        Console *con = find_console(vm, id);
        bool again;
        int r;

        if (!con)
                return;
        con->fb_in_flight = false;
        again = con->remap_again;
        con->remap_again = false;

        if (sd_bus_message_is_method_error(m, NULL)) {
                orrery_mapping_unmap(&con->map);
                sd_bus_error_copy(&error, sd_bus_message_get_error(m));
        } else {
                r = console_apply_framebuffer(vm, con, m);
                if (r < 0)
                        sd_bus_error_set_errnof(&error, r, "Cannot map the framebuffer of console %" PRIu32 ": %s",
                                                id, strerror(-r));
        }

        if (again && !vm->detached) {
                console_request_map(vm, con, false);
                return; /* the next reply reports */
        }

        if (sd_bus_error_is_set(&error))
                vm_report_error(vm, "GetFramebuffer", &error);
        if (c->load)
                return; /* appeared reports the mapping */
        con = find_console(vm, id);
        if (con && vm->ready)
                VM_CALLBACK(vm, console_mode_changed, id, con->map.base ? &con->map.fb : NULL);
}

static void on_update(OrreryVm *vm, const ObjRef *o, sd_bus_message *m) {
        Console *con = find_console(vm, o->console);
        uint32_t x, y, w, h;
        bool overflow = false;
        size_t n = 0;
        int r;

        if (!vm->ready || !con || !con->map.base)
                return;

        r = sd_bus_message_enter_container(m, 'a', "(uuuu)");
        if (r < 0)
                goto bad;
        while ((r = sd_bus_message_read(m, "(uuuu)", &x, &y, &w, &h)) > 0) {
                if (n >= ORRERY_MAX_RECTS) {
                        overflow = true;
                        break;
                }
                if (n >= vm->n_rects_allocated) {
                        size_t k = MIN(MAX(vm->n_rects_allocated * 2, (size_t) 64), (size_t) ORRERY_MAX_RECTS);
                        OrreryRect *t = realloc(vm->rects, k * sizeof(OrreryRect));

                        if (!t) {
                                overflow = true;
                                break;
                        }
                        vm->rects = t;
                        vm->n_rects_allocated = k;
                }
                vm->rects[n++] = (OrreryRect) { x, y, w, h };
        }
        if (r < 0)
                goto bad;

        if (overflow) {
                /* Too many to be worth it (or to trust): redraw everything. */
                if (vm->n_rects_allocated == 0)
                        return;
                vm->rects[0] = (OrreryRect) { 0, 0, con->map.fb.width, con->map.fb.height };
                n = 1;
        } else
                n = orrery_rects_clip(vm->rects, n, con->map.fb.width, con->map.fb.height, vm->rects);
        if (n > 0)
                VM_CALLBACK(vm, console_update, o->console, vm->rects, n);
        return;
bad:
        log_debug("VM '%s': bad Update signal: %s", vm->name, strerror(-r));
}

/* ---------------------------------------------------------------------- */
/* InterfacesAdded/Removed: consoles and chardevs coming and going.        */

static void on_interfaces_added(OrreryVm *vm, sd_bus_message *m) {
        unsigned changed = 0;
        const char *path;
        ObjRef o;
        int r;

        r = sd_bus_message_read(m, "o", &path);
        if (r < 0 || classify_path(vm, path, &o) == OBJ_OTHER)
                return;
        r = parse_interfaces(vm, &o, m, &changed);
        if (r < 0)
                log_debug("VM '%s': bad InterfacesAdded signal: %s", vm->name, strerror(-r));

        if (o.kind == OBJ_CONSOLE) {
                Console *con = find_console(vm, o.console);

                /* A new head (also while loading: the objects may have been
                 * read already). Watching twice counts once. */
                if (con && !con->map.base && !con->fb_in_flight) {
                        console_watch(vm, o.console, "Watch");
                        console_request_map(vm, con, false);
                }
                return;
        }
        if (!vm->ready)
                return;
        if (o.kind == OBJ_CHARDEV && find_chardev(vm, o.chardev))
                VM_CALLBACK(vm, chardev_changed, o.chardev);
        else
                apply_changes(vm, &o, changed);
}

static void on_interfaces_removed(OrreryVm *vm, sd_bus_message *m) {
        const char *path, *iface;
        ObjRef o;
        int r;

        r = sd_bus_message_read(m, "o", &path);
        if (r < 0 || classify_path(vm, path, &o) == OBJ_OTHER)
                return;
        r = sd_bus_message_enter_container(m, 'a', "s");
        if (r < 0)
                return;
        while (sd_bus_message_read(m, "s", &iface) > 0) {
                if (o.kind == OBJ_CONSOLE && streq(iface, CONSOLE_IFACE) && find_console(vm, o.console)) {
                        remove_console(vm, o.console);
                        if (vm->ready)
                                VM_CALLBACK(vm, console_mode_changed, o.console, NULL);
                        return;
                }
                if (o.kind == OBJ_CHARDEV && streq(iface, CHARDEV_IFACE) && find_chardev(vm, o.chardev)) {
                        remove_chardev(vm, o.chardev);
                        if (vm->ready)
                                VM_CALLBACK(vm, chardev_changed, o.chardev);
                        return;
                }
        }
}

static int on_vm_signal(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        OrreryVm *vm = userdata;
        ObjRef o;

        /* Only the current owner of the name speaks for the VM. */
        if (vm->detached || !vm->owner || !streq_ptr(sd_bus_message_get_sender(m), vm->owner))
                return 0;

        vm_ref(vm);
        if (sd_bus_message_is_signal(m, PROPERTIES_IFACE, "PropertiesChanged"))
                on_properties_changed(vm, m);
        else if (sd_bus_message_is_signal(m, CONSOLE_IFACE, "Update")) {
                if (classify_path(vm, sd_bus_message_get_path(m), &o) == OBJ_CONSOLE)
                        on_update(vm, &o, m);
        } else if (sd_bus_message_is_signal(m, OBJECT_MANAGER_IFACE, "InterfacesAdded"))
                on_interfaces_added(vm, m);
        else if (sd_bus_message_is_signal(m, OBJECT_MANAGER_IFACE, "InterfacesRemoved"))
                on_interfaces_removed(vm, m);
        vm_unref(vm);
        return 0;
}

/* ---------------------------------------------------------------------- */
/* Owner changes and loading                                               */

static void vm_become_ready_if_loaded(OrreryVm *vm, bool notify) {
        if (vm->ready || vm->n_loading > 0 || vm->load_failed || !vm->owner || vm->detached)
                return;
        vm->ready = true;
        log_debug("VM '%s': ready (owner %s)", vm->name, vm->owner);
        if (notify)
                VM_CALLBACK0(vm, appeared);
        vm->moving = false;
}

static void vm_vanish(OrreryVm *vm) {
        bool was_ready = vm->ready;

        cancel_calls(vm, true);
        vm_clear_state(vm);
        vm->owner = mfree(vm->owner);
        if (was_ready) {
                log_debug("VM '%s': vanished", vm->name);
                VM_CALLBACK0(vm, vanished);
        }
}

/*
 * Another user's process may take org.orrery.VM.<name> first on a bus that
 * others can reach: it would be sent our keystrokes. Returns 0 for a
 * process of our user, else a negative errno, described in ret_error. This
 * is the blocking check of orrery_vm_attach(); an asynchronous attach asks
 * with vm_check_owner_async() below.
 */
static int vm_refuse_owner(OrreryVm *vm, const char *owner, sd_bus_error *ret_error) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        uid_t uid = (uid_t) -1;
        int r;

        r = orrery_owner_check_user(vm->client->bus, owner, &uid);
        if (r == 0)
                return 0;
        if (r == -EPERM)
                sd_bus_error_setf(&error, SD_BUS_ERROR_ACCESS_DENIED,
                                  "%s is owned by %s, a process of uid %u, not of our uid %u: refusing it",
                                  vm->bus_name, owner, (unsigned) uid, (unsigned) geteuid());
        else
                sd_bus_error_set_errnof(&error, r, "Cannot read the credentials of %s, the owner of %s: %s", owner,
                                        vm->bus_name, strerror(-r));
        log_debug("VM '%s': %s", vm->name, error.message);
        sd_bus_error_move(ret_error, &error);
        return r;
}

/*
 * Asks the bus daemon for the uid of `owner` without blocking: the answer
 * (on_owner_credentials_reply) adopts it as the VM's owner or refuses it.
 * A flood of owner changes costs one call each, never a stalled event loop.
 */
static int vm_check_owner_async(OrreryVm *vm, const char *owner) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        Call *c;
        int r;

        c = vm_call_new(vm, CALL_OWNER_CREDENTIALS, "GetConnectionCredentials");
        if (!c)
                return -ENOMEM;
        c->id = strdup(owner);
        if (!c->id) {
                vm_call_free(c);
                return -ENOMEM;
        }
        r = sd_bus_message_new_method_call(vm->client->bus, &m, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                           "org.freedesktop.DBus", "GetConnectionCredentials");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", owner);
        if (r >= 0)
                r = vm_call_send(vm, c, m);
        if (r < 0) {
                vm_call_free(c);
                return r;
        }
        vm->owner_check = c;
        return 0;
}

/* The UnixUserID in a GetConnectionCredentials reply: what the daemon read from the socket. */
static int read_unix_user_id(sd_bus_message *m, uid_t *ret) {
        bool found = false;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const char *key;

                r = sd_bus_message_read(m, "s", &key);
                if (r < 0)
                        return r;
                if (streq(key, "UnixUserID")) {
                        uint32_t uid;

                        r = sd_bus_message_read(m, "v", "u", &uid);
                        if (r < 0)
                                return r;
                        *ret = (uid_t) uid;
                        found = true;
                } else {
                        r = sd_bus_message_skip(m, "v");
                        if (r < 0)
                                return r;
                }
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return found ? 0 : -ENODATA;
}

static void on_owner_credentials_reply(OrreryVm *vm, Call *c, sd_bus_message *m) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        uid_t uid = (uid_t) -1;
        int r;

        if (vm->owner_check != c)
                return; /* the name moved on meanwhile */
        vm->owner_check = NULL;
        if (sd_bus_message_is_method_error(m, NULL)) {
                /* The owner left before the daemon answered: its NameOwnerChanged follows. */
                vm_report_error(vm, "GetConnectionCredentials", sd_bus_message_get_error(m));
                return;
        }
        r = read_unix_user_id(m, &uid);
        if (r < 0) {
                sd_bus_error_set_errnof(&error, r, "Cannot read the credentials of %s, the owner of %s: %s", c->id,
                                        vm->bus_name, strerror(-r));
                vm_report_error(vm, "GetConnectionCredentials", &error);
                return;
        }
        if (uid != geteuid()) {
                sd_bus_error_setf(&error, SD_BUS_ERROR_ACCESS_DENIED,
                                  "%s is owned by %s, a process of uid %u, not of our uid %u: refusing it",
                                  vm->bus_name, c->id, (unsigned) uid, (unsigned) geteuid());
                vm_report_error(vm, "GetConnectionCredentials", &error);
                return;
        }
        vm->owner = strdup(c->id);
        if (!vm->owner)
                return (void) log_debug("Out of memory");
        vm_start_load(vm);
}

/* The name's owner is now `owner` ("" or NULL: none). */
static void vm_set_owner(OrreryVm *vm, const char *owner) {
        int r;

        if (isempty(owner))
                owner = NULL;
        if (streq_ptr(owner, vm->owner))
                return;
        if (vm->owner_check) {
                if (streq_ptr(owner, vm->owner_check->id))
                        return; /* being checked already */
                vm_call_free(TAKE_PTR(vm->owner_check));
        }

        /* A migration hands the name from one process to the next without a gap. */
        vm->moving = vm->owner && owner;
        if (vm->owner)
                vm_vanish(vm);
        if (vm->detached || !owner)
                return;

        r = vm_check_owner_async(vm, owner);
        if (r < 0)
                log_debug("VM '%s': cannot ask for the credentials of %s: %s", vm->name, owner, strerror(-r));
}

static int on_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        OrreryVm *vm = userdata;
        const char *name, *old_owner, *new_owner;
        int r;

        if (vm->detached || !streq_ptr(sd_bus_message_get_sender(m), "org.freedesktop.DBus"))
                return 0;
        r = sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner);
        if (r < 0 || !streq(name, vm->bus_name))
                return 0;

        /* Unique names are never reused, so a change that does not start
         * from the owner we follow is older than what we know (a
         * synchronous attach reads the owner while signals queue up). */
        if (vm->owner && (streq(new_owner, vm->owner) || !streq(old_owner, vm->owner)))
                return 0;

        vm_ref(vm);
        vm_set_owner(vm, new_owner);
        vm_unref(vm);
        return 0;
}

static void vm_start_load(OrreryVm *vm) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        Call *c;
        int r;

        cancel_calls(vm, true);
        vm_clear_state(vm);

        c = vm_call_new(vm, CALL_GET_MANAGED_OBJECTS, "GetManagedObjects");
        if (!c) {
                r = -ENOMEM;
                goto fail;
        }
        c->owner_bound = true;
        c->load = true;
        /* The VM's ObjectManager sits on /org/orrery/VM: one call returns the machine and its children. */
        r = vm_new_method_call(vm, true, "/org/orrery/VM", OBJECT_MANAGER_IFACE, "GetManagedObjects", &m);
        if (r >= 0)
                r = vm_call_send(vm, c, m);
        if (r >= 0)
                return;
        vm_call_free(c);
fail:
        vm->load_failed = true;
        sd_bus_error_set_errnof(&error, r, "Cannot load VM '%s': %s", vm->name, strerror(-r));
        vm_report_error(vm, "GetManagedObjects", &error);
}

/* After the objects are read: the fallback for Machine1 & co., then framebuffers. */
static void vm_load_consoles(OrreryVm *vm) {
        uint32_t ids[ORRERY_MAX_CONSOLES];
        size_t n = vm->n_consoles;

        if (vm->flags & ORRERY_VM_ATTACH_NO_CONSOLES)
                return;
        for (size_t i = 0; i < n; i++)
                ids[i] = vm->consoles[i].id;
        for (size_t i = 0; i < n; i++) {
                Console *con = find_console(vm, ids[i]);

                console_watch(vm, ids[i], "Watch");
                if (con)
                        console_request_map(vm, con, true);
        }
}

static void on_managed_objects_reply(OrreryVm *vm, sd_bus_message *m) {
        int r;

        if (sd_bus_message_is_method_error(m, NULL)) {
                vm->load_failed = true;
                vm_report_error(vm, "GetManagedObjects", sd_bus_message_get_error(m));
                return;
        }
        r = parse_managed_objects(vm, m);
        if (r < 0) {
                vm->load_failed = true;
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;

                sd_bus_error_set_errnof(&error, r, "Bad GetManagedObjects reply from VM '%s': %s", vm->name,
                                        strerror(-r));
                vm_report_error(vm, "GetManagedObjects", &error);
                return;
        }

        /* An object manager need not list its own object: then ask it directly. */
        if (!vm->have_machine) {
                request_get_all(vm, vm->path, MACHINE_IFACE, true);
                request_get_all(vm, vm->path, KEYBOARD_IFACE, true);
                request_get_all(vm, vm->path, MOUSE_IFACE, true);
        }
        vm_load_consoles(vm);
}

static void on_get_all_reply(OrreryVm *vm, Call *c, sd_bus_message *m) {
        unsigned changed = 0;
        ObjRef o;
        int r;

        if (sd_bus_message_is_method_error(m, NULL)) {
                /* A VM without a keyboard or mouse is fine; without Machine1 it is not one. */
                if (streq(c->interface, MACHINE_IFACE) && c->load) {
                        vm->load_failed = true;
                        vm_report_error(vm, "GetAll", sd_bus_message_get_error(m));
                }
                return;
        }
        classify_path(vm, c->path, &o);
        r = parse_properties(vm, &o, c->interface, m, &changed);
        if (r < 0)
                log_debug("VM '%s': bad GetAll reply: %s", vm->name, strerror(-r));
        if (!c->load)
                apply_changes(vm, &o, changed);
}

static void on_name_owner_reply(OrreryVm *vm, sd_bus_message *m) {
        const char *owner = NULL;

        if (!sd_bus_message_is_method_error(m, NULL) && sd_bus_message_read(m, "s", &owner) < 0)
                owner = NULL;
        /* The reply is at least as new as any NameOwnerChanged before it. */
        vm_set_owner(vm, owner);
}

static int on_call_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Call *c = userdata;
        OrreryVm *vm = c->vm;
        bool load = c->load;

        vm_ref(vm);
        call_unlink(c);
        if (load && vm->n_loading > 0)
                vm->n_loading--;

        switch (c->kind) {
        case CALL_GET_NAME_OWNER:
                on_name_owner_reply(vm, m);
                break;
        case CALL_OWNER_CREDENTIALS:
                on_owner_credentials_reply(vm, c, m);
                break;
        case CALL_GET_MANAGED_OBJECTS:
                on_managed_objects_reply(vm, m);
                break;
        case CALL_GET_ALL:
                on_get_all_reply(vm, c, m);
                break;
        case CALL_GET_FRAMEBUFFER:
                on_framebuffer_reply(vm, c, m);
                break;
        case CALL_WATCH:
                if (sd_bus_message_is_method_error(m, NULL))
                        vm_report_error(vm, c->method, sd_bus_message_get_error(m));
                break;
        default:
                vm_methods_dispatch_reply(c, m);
                break;
        }

        if (load)
                vm_become_ready_if_loaded(vm, true);
        vm_call_free(c);
        vm_unref(vm);
        return 0;
}

/* The blocking variant of all of the above, for orrery_vm_attach(). */
static int vm_load_sync(OrreryVm *vm) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus *bus = vm->client->bus;
        uint64_t timeout = vm->client->timeout_usec;
        const char *owner;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                           "org.freedesktop.DBus", "GetNameOwner");
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "s", vm->bus_name);
        if (r < 0)
                return r;
        r = sd_bus_call(bus, m, timeout, &error, &reply);
        if (r < 0)
                return sd_bus_error_has_name(&error, SD_BUS_ERROR_NAME_HAS_NO_OWNER) ? -ENXIO : r;
        r = sd_bus_message_read(reply, "s", &owner);
        if (r < 0)
                return r;
        sd_bus_error_free(&error);
        r = vm_refuse_owner(vm, owner, &error);
        if (r < 0)
                return r;
        vm->owner = strdup(owner);
        if (!vm->owner)
                return -ENOMEM;
        m = sd_bus_message_unref(m);
        reply = sd_bus_message_unref(reply);
        sd_bus_error_free(&error);

        /* The VM's ObjectManager sits on /org/orrery/VM: one call returns the machine and its children. */
        r = vm_new_method_call(vm, true, "/org/orrery/VM", OBJECT_MANAGER_IFACE, "GetManagedObjects", &m);
        if (r < 0)
                return r;
        r = sd_bus_call(bus, m, timeout, &error, &reply);
        if (r < 0)
                return r;
        r = parse_managed_objects(vm, reply);
        if (r < 0)
                return r;

        if (!vm->have_machine) {
                static const char *const ifaces[] = { MACHINE_IFACE, KEYBOARD_IFACE, MOUSE_IFACE };
                ObjRef o = { .kind = OBJ_MACHINE };

                for (size_t i = 0; i < ELEMENTSOF(ifaces); i++) {
                        unsigned changed = 0;

                        m = sd_bus_message_unref(m);
                        reply = sd_bus_message_unref(reply);
                        sd_bus_error_free(&error);
                        r = vm_new_method_call(vm, true, vm->path, PROPERTIES_IFACE, "GetAll", &m);
                        if (r >= 0)
                                r = sd_bus_message_append(m, "s", ifaces[i]);
                        if (r >= 0)
                                r = sd_bus_call(bus, m, timeout, &error, &reply);
                        if (r >= 0)
                                r = parse_properties(vm, &o, ifaces[i], reply, &changed);
                        if (r < 0 && i == 0)
                                return r;
                }
        }

        if (!(vm->flags & ORRERY_VM_ATTACH_NO_CONSOLES))
                for (size_t i = 0; i < vm->n_consoles; i++) {
                        Console *con = vm->consoles + i;
                        char path[ORRERY_PATH_MAX];

                        console_path(vm, con->id, path);
                        m = sd_bus_message_unref(m);
                        reply = sd_bus_message_unref(reply);
                        sd_bus_error_free(&error);
                        r = vm_new_method_call(vm, true, path, CONSOLE_IFACE, "GetFramebuffer", &m);
                        if (r >= 0)
                                r = sd_bus_call(bus, m, timeout, &error, &reply);
                        if (r >= 0)
                                r = console_apply_framebuffer(vm, con, reply);
                        /* The VM is there: a console that cannot be shown is not
                         * fatal (get_framebuffer says -ENODATA). No callbacks from
                         * in here: the caller does not even have the VM yet. */
                        if (r < 0)
                                log_debug("VM '%s': cannot map console %" PRIu32 ": %s", vm->name, con->id,
                                          error.message ?: strerror(-r));
                        console_watch(vm, con->id, "Watch");
                }

        vm->ready = true;
        return 0;
}

/* ---------------------------------------------------------------------- */
/* Lifecycle                                                               */

OrreryVm *vm_ref(OrreryVm *vm) {
        vm->n_ref++;
        return vm;
}

/* Undoes everything attach did; idempotent. */
static void vm_disconnect(OrreryVm *vm) {
        if (vm->owner && vm->ready && !(vm->flags & ORRERY_VM_ATTACH_NO_CONSOLES) && !vm->detached)
                for (size_t i = 0; i < vm->n_consoles; i++)
                        console_watch(vm, vm->consoles[i].id, "Unwatch");

        vm->detached = true;
        vm->cb = (OrreryVmCallbacks) {};
        vm->owner_match = sd_bus_slot_unref(vm->owner_match);
        vm->signal_match = sd_bus_slot_unref(vm->signal_match);
        cancel_calls(vm, false);
        vm_clear_state(vm);
        vm->owner = mfree(vm->owner);
}

void vm_unref(OrreryVm *vm) {
        if (--vm->n_ref > 0)
                return;
        vm_disconnect(vm);
        free(vm->rects);
        free(vm->name);
        free(vm->bus_name);
        free(vm->path);
        orrery_client_unref(vm->client);
        free(vm);
}

static int on_match_installed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        OrreryVm *vm = userdata;

        if (sd_bus_message_is_method_error(m, NULL)) {
                vm_ref(vm);
                vm_report_error(vm, "AddMatch", sd_bus_message_get_error(m));
                vm_unref(vm);
        }
        return 0;
}

int orrery_vm_attach(OrreryClient *c, const char *name, const OrreryVmCallbacks *callbacks, void *userdata,
                     OrreryVmAttachFlags flags, OrreryVm **ret) {
        _cleanup_free_ char *match_owner = NULL, *match_signals = NULL;
        OrreryVm *vm;
        int r;

        if (!c || !ret || !orrery_vm_name_is_valid(name))
                return -EINVAL;

        vm = calloc(1, sizeof(*vm));
        if (!vm)
                return -ENOMEM;
        vm->n_ref = 1;
        vm->client = orrery_client_ref(c);
        if (callbacks)
                vm->cb = *callbacks;
        vm->userdata = userdata;
        vm->flags = flags;

        vm->name = strdup(name);
        vm->bus_name = orrery_strdup_printf(ORRERY_VM_BUS_NAME_PREFIX "%s", name);
        (void) vm_name_to_bus(name, NULL, &vm->path);
        match_owner = orrery_strdup_printf("type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                                           "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='%s'",
                                           vm->bus_name ?: "");
        match_signals = orrery_strdup_printf("type='signal',sender='%s',path_namespace='%s'", vm->bus_name ?: "",
                                             vm->path ?: "");
        if (!vm->name || !vm->bus_name || !vm->path || !match_owner || !match_signals) {
                r = -ENOMEM;
                goto fail;
        }

        /* Matches first: the bus handles our messages in order, so nothing
         * that happens after the owner is read below can be missed. */
        r = sd_bus_add_match_async(c->bus, &vm->owner_match, match_owner, on_owner_changed, on_match_installed, vm);
        if (r < 0)
                goto fail;
        r = sd_bus_add_match_async(c->bus, &vm->signal_match, match_signals, on_vm_signal, on_match_installed, vm);
        if (r < 0)
                goto fail;

        if (flags & ORRERY_VM_ATTACH_ASYNC) {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
                Call *call = vm_call_new(vm, CALL_GET_NAME_OWNER, "GetNameOwner");

                if (!call) {
                        r = -ENOMEM;
                        goto fail;
                }
                r = sd_bus_message_new_method_call(c->bus, &m, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                   "org.freedesktop.DBus", "GetNameOwner");
                if (r >= 0)
                        r = sd_bus_message_append(m, "s", vm->bus_name);
                if (r >= 0)
                        r = vm_call_send(vm, call, m);
                if (r < 0) {
                        vm_call_free(call);
                        goto fail;
                }
        } else {
                r = vm_load_sync(vm);
                if (r < 0)
                        goto fail;
        }

        *ret = vm;
        return 0;

fail:
        orrery_vm_detach(vm);
        return r;
}

OrreryVm *orrery_vm_detach(OrreryVm *vm) {
        if (!vm || vm->detached)
                return NULL;
        vm_disconnect(vm);
        vm_unref(vm);
        return NULL;
}

int orrery_vm_reload(OrreryVm *vm) {
        bool was_ready;

        if (!vm || vm->detached)
                return -EINVAL;
        if (!vm->owner)
                return -ENXIO;

        /* As if the VM went away and came back: the mappings go now. */
        vm_ref(vm);
        was_ready = vm->ready;
        cancel_calls(vm, true);
        vm_clear_state(vm);
        if (was_ready)
                VM_CALLBACK0(vm, vanished);
        if (!vm->detached)
                vm_start_load(vm);
        vm_unref(vm);
        return 0;
}

/* ---------------------------------------------------------------------- */
/* Getters                                                                 */

OrreryClient *orrery_vm_get_client(OrreryVm *vm) {
        return vm ? vm->client : NULL;
}

const char *orrery_vm_get_name(OrreryVm *vm) {
        return vm ? vm->name : NULL;
}

const char *orrery_vm_get_bus_name(OrreryVm *vm) {
        return vm ? vm->bus_name : NULL;
}

const char *orrery_vm_get_path(OrreryVm *vm) {
        return vm ? vm->path : NULL;
}

bool orrery_vm_is_ready(OrreryVm *vm) {
        return vm && vm->ready;
}

const char *orrery_vm_get_owner(OrreryVm *vm) {
        return vm ? vm->owner : NULL;
}

const char *orrery_vm_get_uuid(OrreryVm *vm) {
        return vm && vm->ready ? vm->uuid : NULL;
}

const char *orrery_vm_get_migration_state(OrreryVm *vm) {
        return vm && vm->ready ? vm->migration_state : NULL;
}

bool orrery_vm_is_moving(OrreryVm *vm) {
        return vm && vm->moving;
}

const char *orrery_vm_get_state(OrreryVm *vm) {
        return vm && vm->ready ? vm->state : NULL;
}

const char *orrery_vm_get_version(OrreryVm *vm) {
        return vm && vm->ready ? vm->version : NULL;
}

uint64_t orrery_vm_get_memory_bytes(OrreryVm *vm) {
        return vm && vm->ready ? vm->memory_bytes : 0;
}

uint32_t orrery_vm_get_vcpus(OrreryVm *vm) {
        return vm && vm->ready ? vm->vcpus : 0;
}

uint32_t orrery_vm_get_leds(OrreryVm *vm) {
        return vm && vm->ready ? vm->leds : 0;
}

bool orrery_vm_get_mouse_is_absolute(OrreryVm *vm) {
        return vm && vm->ready && vm->mouse_is_absolute;
}

size_t orrery_vm_get_n_consoles(OrreryVm *vm) {
        return vm && vm->ready ? vm->n_consoles : 0;
}

int orrery_vm_get_console_id(OrreryVm *vm, size_t index, uint32_t *ret_id) {
        if (!vm || !ret_id)
                return -EINVAL;
        if (index >= orrery_vm_get_n_consoles(vm))
                return -ENOENT;
        *ret_id = vm->consoles[index].id;
        return 0;
}

const char *orrery_vm_get_console_label(OrreryVm *vm, uint32_t console) {
        Console *con;

        if (!vm || !vm->ready)
                return NULL;
        con = find_console(vm, console);
        return con ? con->label : NULL;
}

int orrery_vm_get_framebuffer(OrreryVm *vm, uint32_t console, OrreryFramebuffer *ret) {
        Console *con;

        if (!vm || !ret)
                return -EINVAL;
        if (!vm->ready)
                return -ENXIO;
        con = find_console(vm, console);
        if (!con)
                return -ENOENT;
        if (!con->map.base)
                return -ENODATA;
        *ret = con->map.fb;
        return 0;
}

size_t orrery_vm_get_n_chardevs(OrreryVm *vm) {
        return vm && vm->ready ? vm->n_chardevs : 0;
}

const char *orrery_vm_get_chardev_id(OrreryVm *vm, size_t index) {
        if (index >= orrery_vm_get_n_chardevs(vm))
                return NULL;
        return vm->chardevs[index].id;
}

int orrery_vm_get_chardev(OrreryVm *vm, const char *id, OrreryChardevInfo *ret) {
        Chardev *cd;

        if (!vm || !ret || !orrery_chardev_id_is_valid(id))
                return -EINVAL;
        if (!vm->ready)
                return -ENXIO;
        cd = find_chardev(vm, id);
        if (!cd)
                return -ENOENT;
        *ret = (OrreryChardevInfo) {
                .name = cd->name ?: "",
                .owner = cd->owner ?: "",
                .guest_open = cd->guest_open,
        };
        return 0;
}

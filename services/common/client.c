/* SPDX-License-Identifier: MIT */

/* The bus connection of a service, and discovery of VMs (ListNames + NameOwnerChanged). */

#include <string.h>

#include "bus-util.h"
#include "orrery-client-internal.h"

static int client_new_internal(sd_bus *bus, bool owns_bus, OrreryClient **ret) {
        OrreryClient *c;
        int r;

        /* Idempotent; the map has static storage. */
        r = sd_bus_error_add_map(orrery_error_map);
        if (r < 0)
                return r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->n_ref = 1;
        c->bus = sd_bus_ref(bus);
        c->owns_bus = owns_bus;
        c->timeout_usec = ORRERY_DEFAULT_TIMEOUT_USEC;
        *ret = c;
        return 0;
}

int orrery_client_new(const char *address, OrreryClient **ret) {
        /* Not sd_bus_flush_close_unrefp: that would close the connection the client keeps. */
        _cleanup_(sd_bus_unrefp) sd_bus *bus = NULL;
        int r;

        if (!ret)
                return -EINVAL;

        r = bus_open(address, "orrery-client", &bus);
        if (r < 0)
                return r;

        (void) sd_bus_set_method_call_timeout(bus, ORRERY_DEFAULT_TIMEOUT_USEC);

        return client_new_internal(bus, true, ret);
}

int orrery_client_new_with_bus(sd_bus *bus, OrreryClient **ret) {
        if (!bus || !ret)
                return -EINVAL;
        return client_new_internal(bus, false, ret);
}

OrreryClient *orrery_client_ref(OrreryClient *c) {
        if (c)
                c->n_ref++;
        return c;
}

OrreryClient *orrery_client_unref(OrreryClient *c) {
        if (!c || --c->n_ref > 0)
                return NULL;
        if (c->owns_bus)
                /* Sends what is queued (e.g. Unwatch) before letting go. */
                sd_bus_flush_close_unref(c->bus);
        else
                sd_bus_unref(c->bus);
        free(c);
        return NULL;
}

sd_bus *orrery_client_get_bus(OrreryClient *c) {
        return c ? c->bus : NULL;
}

int orrery_client_attach_event(OrreryClient *c, sd_event *event, int64_t priority) {
        if (!c)
                return -EINVAL;
        return sd_bus_attach_event(c->bus, event, (int) priority);
}

int orrery_client_detach_event(OrreryClient *c) {
        if (!c)
                return -EINVAL;
        return sd_bus_detach_event(c->bus);
}

int orrery_client_set_timeout(OrreryClient *c, uint64_t usec) {
        if (!c)
                return -EINVAL;
        c->timeout_usec = usec > 0 ? usec : ORRERY_DEFAULT_TIMEOUT_USEC;
        return 0;
}

uint64_t orrery_client_get_timeout(OrreryClient *c) {
        return c ? c->timeout_usec : ORRERY_DEFAULT_TIMEOUT_USEC;
}

static int strv_cmp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Reads the "as" of a ListNames reply into a sorted strv of valid VM names. */
static int read_vm_names(sd_bus_message *reply, char ***ret) {
        _cleanup_(orrery_strv_freep) char **l = NULL;
        size_t n = 0, allocated = 0;
        const char *s;
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "s");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read(reply, "s", &s)) > 0) {
                const char *name = orrery_vm_name_from_bus_name(s);

                if (!name)
                        continue;
                if (n + 2 > allocated) {
                        size_t k = MAX(allocated * 2, (size_t) 16);
                        char **t = realloc(l, k * sizeof(char *));

                        if (!t)
                                return -ENOMEM;
                        l = t;
                        allocated = k;
                }
                l[n] = strdup(name);
                if (!l[n])
                        return -ENOMEM;
                l[++n] = NULL;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(reply);
        if (r < 0)
                return r;

        if (!l) {
                l = calloc(1, sizeof(char *));
                if (!l)
                        return -ENOMEM;
        }
        qsort(l, n, sizeof(char *), strv_cmp);
        *ret = TAKE_PTR(l);
        return 0;
}

int orrery_client_list_vms(OrreryClient *c, char ***ret_names) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        if (!c || !ret_names)
                return -EINVAL;

        r = sd_bus_message_new_method_call(c->bus, &m, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                           "org.freedesktop.DBus", "ListNames");
        if (r < 0)
                return r;
        r = sd_bus_call(c->bus, m, c->timeout_usec, &error, &reply);
        if (r < 0)
                return r;
        return read_vm_names(reply, ret_names);
}

/* ---------------------------------------------------------------------- */

struct OrreryVmWatch {
        OrreryClient *client;
        OrreryVmWatchCallbacks callbacks;
        void *userdata;
        sd_bus_slot *match_slot;
        sd_bus_slot *list_slot;
        char **names; /* known VMs, unsorted */
        size_t n_names;
        bool ready;
        unsigned n_ref; /* held while calling out */
        bool freed;
};

static ssize_t watch_find(OrreryVmWatch *w, const char *name) {
        for (size_t i = 0; i < w->n_names; i++)
                if (strcmp(w->names[i], name) == 0)
                        return (ssize_t) i;
        return -1;
}

static void watch_unref(OrreryVmWatch *w) {
        if (--w->n_ref > 0)
                return;
        for (size_t i = 0; i < w->n_names; i++)
                free(w->names[i]);
        free(w->names);
        orrery_client_unref(w->client);
        free(w);
}

static void watch_add(OrreryVmWatch *w, const char *name) {
        char **t, *s;

        if (watch_find(w, name) >= 0)
                return;
        s = strdup(name);
        if (!s)
                return (void) log_debug("Out of memory tracking VM '%s'", name);
        t = realloc(w->names, (w->n_names + 1) * sizeof(char *));
        if (!t) {
                free(s);
                return (void) log_debug("Out of memory tracking VM '%s'", name);
        }
        w->names = t;
        w->names[w->n_names++] = s;

        if (w->callbacks.vm_added)
                w->callbacks.vm_added(w, name, w->userdata);
}

static void watch_remove(OrreryVmWatch *w, const char *name) {
        ssize_t i = watch_find(w, name);
        char *s;

        if (i < 0)
                return;
        s = w->names[i];
        w->names[i] = w->names[--w->n_names];

        if (w->callbacks.vm_removed)
                w->callbacks.vm_removed(w, s, w->userdata);
        free(s);
}

static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        OrreryVmWatch *w = userdata;
        const char *bus_name, *old_owner, *new_owner, *name;
        int r;

        /* Only the bus itself may say who owns what. */
        if (!streq_ptr(sd_bus_message_get_sender(m), "org.freedesktop.DBus"))
                return 0;

        r = sd_bus_message_read(m, "sss", &bus_name, &old_owner, &new_owner);
        if (r < 0) {
                log_debug("Bad NameOwnerChanged signal: %s", strerror(-r));
                return 0;
        }
        name = orrery_vm_name_from_bus_name(bus_name);
        if (!name)
                return 0;

        w->n_ref++;
        if (!isempty(new_owner))
                watch_add(w, name);
        else
                watch_remove(w, name);
        watch_unref(w);
        return 0;
}

static int on_list_names(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        OrreryVmWatch *w = userdata;
        _cleanup_(orrery_strv_freep) char **names = NULL;
        int r;

        w->list_slot = sd_bus_slot_unref(w->list_slot);
        w->ready = true;

        if (sd_bus_message_is_method_error(m, NULL)) {
                log_debug("ListNames failed: %s", sd_bus_message_get_error(m)->message);
                return 0;
        }
        r = read_vm_names(m, &names);
        if (r < 0) {
                log_debug("Bad ListNames reply: %s", strerror(-r));
                return 0;
        }

        /* NameOwnerChanged signals that came before this reply were already
         * applied; the reply may repeat them (watch_add ignores duplicates). */
        w->n_ref++;
        for (char **i = names; *i && !w->freed; i++)
                watch_add(w, *i);
        watch_unref(w);
        return 0;
}

static int on_match_installed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        if (sd_bus_message_is_method_error(m, NULL))
                log_debug("Installing a match failed: %s", sd_bus_message_get_error(m)->message);
        return 0;
}

int orrery_vm_watch_new(OrreryClient *c, const OrreryVmWatchCallbacks *callbacks, void *userdata, OrreryVmWatch **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        OrreryVmWatch *w;
        int r;

        if (!c || !ret)
                return -EINVAL;

        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->n_ref = 1;
        w->client = orrery_client_ref(c);
        if (callbacks)
                w->callbacks = *callbacks;
        w->userdata = userdata;

        /* The match goes out first: the bus answers in order, so no change
         * between ListNames and the match can be missed. */
        r = sd_bus_add_match_async(c->bus, &w->match_slot,
                                   "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                                   "interface='org.freedesktop.DBus',member='NameOwnerChanged',"
                                   "arg0namespace='org.orrery.VM'",
                                   on_name_owner_changed, on_match_installed, w);
        if (r < 0)
                goto fail;

        r = sd_bus_message_new_method_call(c->bus, &m, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                           "org.freedesktop.DBus", "ListNames");
        if (r < 0)
                goto fail;
        r = sd_bus_call_async(c->bus, &w->list_slot, m, on_list_names, w, c->timeout_usec);
        if (r < 0)
                goto fail;

        *ret = w;
        return 0;

fail:
        orrery_vm_watch_free(w);
        return r;
}

OrreryVmWatch *orrery_vm_watch_free(OrreryVmWatch *w) {
        if (!w)
                return NULL;
        w->freed = true;
        w->callbacks = (OrreryVmWatchCallbacks) {};
        w->match_slot = sd_bus_slot_unref(w->match_slot);
        w->list_slot = sd_bus_slot_unref(w->list_slot);
        watch_unref(w);
        return NULL;
}

bool orrery_vm_watch_is_ready(OrreryVmWatch *w) {
        return w && w->ready;
}

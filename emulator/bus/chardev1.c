/* SPDX-License-Identifier: MIT */

/*
 * org.orrery.Chardev1 (dbus/org.orrery.Chardev1.xml): hands a guest
 * character device to one client over a socket it passes in.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "bus/bus.h"
#include "macro.h"

typedef struct BusChardev BusChardev;

static void emit_owner_changed(BusChardev *c) {
        if (c->bus->bus)
                (void) sd_bus_emit_properties_changed(c->bus->bus, c->path, "org.orrery.Chardev1", "Owner", NULL);
}

static void release(BusChardev *c) {
        chardev_detach_client(c->chardev);
        c->owner = mfree(c->owner);
        emit_owner_changed(c);
}

static void on_client_gone(void *opaque, Chardev *chardev) {
        BusChardev *c = opaque;
        if (c->owner)
                release(c);
}

/* The owner left the bus: the device is free again. */
void chardev1_peer_gone(VmBus *b, BusPeer *peer) {
        for (unsigned i = 0; i < b->n_chardevs; i++)
                if (b->chardevs[i].owner && streq(b->chardevs[i].owner, peer->name))
                        release(&b->chardevs[i]);
}

static int property_guest_open(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        BusChardev *c = userdata;
        return sd_bus_message_append(reply, "b", chardev_guest_open(c->chardev));
}

static void on_guest_open_changed(void *opaque, Chardev *chardev) {
        BusChardev *c = opaque;
        if (c->bus->bus)
                (void) sd_bus_emit_properties_changed(c->bus->bus, c->path, "org.orrery.Chardev1", "GuestOpen", NULL);
}

/* Only a connected AF_UNIX stream socket will do. */
static int check_socket(int fd, sd_bus_error *error) {
        struct sockaddr_storage addr;
        socklen_t len = sizeof(addr);
        struct stat st;
        int type = 0;
        socklen_t tlen = sizeof(type);

        if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
                return sd_bus_error_setf(error, ORRERY_ERROR_INVALID_ARGUMENT, "The fd passed to Register is not a socket");
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0 || type != SOCK_STREAM)
                return sd_bus_error_setf(error, ORRERY_ERROR_INVALID_ARGUMENT, "The socket passed to Register is not a stream socket");
        if (getsockname(fd, (struct sockaddr *) &addr, &len) < 0 || addr.ss_family != AF_UNIX)
                return sd_bus_error_setf(error, ORRERY_ERROR_INVALID_ARGUMENT, "The socket passed to Register is not an AF_UNIX socket");
        len = sizeof(addr);
        if (getpeername(fd, (struct sockaddr *) &addr, &len) < 0)
                return sd_bus_error_setf(error, ORRERY_ERROR_INVALID_ARGUMENT, "The socket passed to Register is not connected");
        return 0;
}

static int method_register(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        BusChardev *c = userdata;
        _cleanup_close_ int copy = -1;
        BusPeer *peer;
        int fd, r;

        r = bus_check_caller(c->bus, m, &peer, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "h", &fd);
        if (r < 0)
                return r;
        if (c->owner)
                return sd_bus_error_setf(error, ORRERY_ERROR_BUSY, "%s is already registered by %s", chardev_name(c->chardev),
                                         c->owner);
        r = check_socket(fd, error);
        if (r < 0)
                return r;

        copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (copy < 0)
                return sd_bus_error_set_errnof(error, errno, "Cannot take the socket: %m");
        (void) fcntl(copy, F_SETFL, fcntl(copy, F_GETFL) | O_NONBLOCK);

        /* The peer's watch releases the device when the owner leaves the bus. */
        c->owner = strdup(peer->name);
        if (!c->owner)
                return -ENOMEM;
        r = chardev_attach_client(c->chardev, copy);
        if (r < 0) {
                c->owner = mfree(c->owner);
                return sd_bus_error_set_errnof(error, r, "Cannot register: %m");
        }
        TAKE_FD(copy);
        emit_owner_changed(c);
        return sd_bus_reply_method_return(m, NULL);
}

static int method_unregister(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        BusChardev *c = userdata;
        BusPeer *peer;
        int r;

        r = bus_check_caller(c->bus, m, &peer, error);
        if (r < 0)
                return r;
        if (!c->owner || !streq(c->owner, peer->name))
                return sd_bus_error_setf(error, ORRERY_ERROR_NOT_OWNER, "The caller does not own %s", chardev_name(c->chardev));
        release(c);
        return sd_bus_reply_method_return(m, NULL);
}

static int method_get_scrollback(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        BusChardev *c = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        size_t size;
        int r;

        r = bus_check_caller(c->bus, m, NULL, error);
        if (r < 0)
                return r;
        r = chardev_get_scrollback(c->chardev, &data, &size);
        if (r < 0)
                return r;
        r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_append_array(reply, 'y', data, size);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

const sd_bus_vtable chardev1_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Name", "s", NULL, offsetof(BusChardev, name), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Owner", "s", NULL, offsetof(BusChardev, owner), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("GuestOpen", "b", property_guest_open, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("Register", SD_BUS_ARGS("h", fd), SD_BUS_NO_RESULT, method_register,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Unregister", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_unregister,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetScrollback", SD_BUS_NO_ARGS, SD_BUS_RESULT("ay", data), method_get_scrollback,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END
};

int chardev1_setup(VmBus *b) {
        for (unsigned i = 0; i < b->n_chardevs; i++) {
                BusChardev *c = &b->chardevs[i];
                ChardevHooks hooks;

                c->name = chardev_name(c->chardev);
                if (asprintf(&c->path, "%s/Chardev/%s", b->path, chardev_id(c->chardev)) < 0)
                        return -ENOMEM;
                /* Keep the terminal filter main.c installed; add the client-gone notification. */
                hooks = chardev_get_hooks(c->chardev);
                hooks.client_gone = on_client_gone;
                hooks.guest_open_changed = on_guest_open_changed;
                hooks.client_gone_opaque = c;
                chardev_set_hooks(c->chardev, &hooks);
        }
        return 0;
}

int chardev1_publish(VmBus *b) {
        for (unsigned i = 0; i < b->n_chardevs; i++) {
                int r = sd_bus_add_object_vtable(b->bus, NULL, b->chardevs[i].path, "org.orrery.Chardev1",
                                                 chardev1_vtable, &b->chardevs[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

void chardev1_teardown(VmBus *b) {
        for (unsigned i = 0; i < b->n_chardevs; i++) {
                BusChardev *c = &b->chardevs[i];
                c->owner = mfree(c->owner);
                c->path = mfree(c->path);
        }
}

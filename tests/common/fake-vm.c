/* SPDX-License-Identifier: MIT */

/*
 * orrery-fake-vm: a stand-in for orrery-vm's bus objects, for testing the
 * client library and the services without an emulator. It implements the
 * contract in dbus/ (Machine1, Keyboard1, Mouse1, Console1 with a real
 * sealed memfd framebuffer, Chardev1 "serial0" and "guest_agent",
 * ObjectManager) and adds a test-only control interface,
 * org.orrery.FakeVM1 on /org/orrery/FakeVM, to change state, emit
 * signals and see what arrived.
 *
 *   orrery-fake-vm --name=NAME [--address=ADDR] [--width=W] [--height=H]
 *                  [--state=STATE] [--replace] [--ready-fd=FD]
 *
 * Without --address it uses the user's session bus. With --ready-fd it
 * writes one byte there once the name is owned. It exits on SIGTERM,
 * SIGINT, Quit, or when another instance takes the name (--replace).
 */

#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <systemd/sd-id128.h>

#include "macro.h"
#include "orrery-contract.h"

#define SCROLLBACK_MAX (64 * 1024)
#define INPUT_LOG_MAX 4096

typedef struct Fake Fake;

static void *mfree_(void *p) {
        free(p);
        return NULL;
}

typedef struct FakeChardev {
        Fake *fake;
        const char *id;
        const char *name;
        char *path;
        int guest_open; /* int: sd-bus's default getter reads an int for "b" */
        int fd;         /* the registered client's socket, -1 when free */
        char *owner;
        sd_event_source *io;
        sd_bus_track *track;
        uint8_t *received; /* what the client wrote ("guest input") */
        size_t n_received;
        uint8_t scrollback[SCROLLBACK_MAX];
        size_t n_scrollback;
} FakeChardev;

struct Fake {
        sd_event *event;
        sd_bus *bus;
        char *name;
        char *bus_name;
        char *path;
        char *console_path;

        char uuid_buf[SD_ID128_UUID_STRING_MAX];
        char *uuid; /* -> uuid_buf: sd-bus's default getter wants a char * */
        char *state;
        char *version;
        uint64_t memory_bytes;
        uint32_t vcpus;
        uint32_t leds;
        int is_absolute;

        char *label;
        int fb_fd;
        void *fb;
        size_t fb_size;
        uint32_t width, height, stride, format;
        sd_bus_track *watchers;

        char **input_log;
        size_t n_input_log;

        FakeChardev chardevs[2];
};

static void fake_log_input(Fake *f, const char *format, ...) _printf_(2, 3);
static void fake_log_input(Fake *f, const char *format, ...) {
        va_list ap;
        char *s, **t;

        if (f->n_input_log >= INPUT_LOG_MAX)
                return;
        va_start(ap, format);
        if (vasprintf(&s, format, ap) < 0)
                s = NULL;
        va_end(ap);
        if (!s)
                return;
        t = realloc(f->input_log, (f->n_input_log + 1) * sizeof(char *));
        if (!t) {
                free(s);
                return;
        }
        f->input_log = t;
        f->input_log[f->n_input_log++] = s;
}

static int set_string(char **dst, const char *s) {
        char *d = strdup(s);

        if (!d)
                return -ENOMEM;
        free(*dst);
        *dst = d;
        return 0;
}

/* ---------------------------------------------------------------------- */
/* Framebuffer: a sealed memfd, as the emulator hands out                  */

static int fb_alloc(Fake *f, uint32_t width, uint32_t height) {
        _cleanup_close_ int fd = -1;
        uint32_t stride = width * 4;
        size_t size = (size_t) stride * height;
        void *p;

        if (width == 0 || height == 0 || width > 8192 || height > 8192)
                return -EINVAL;

        fd = memfd_create("orrery-fake-fb", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        if (ftruncate(fd, (off_t) size) < 0)
                return -errno;
        /* Our own writable mapping first: the seal forbids new ones. */
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
                return -errno;
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) < 0) {
                int r = -errno;
                munmap(p, size);
                return r;
        }

        if (f->fb)
                munmap(f->fb, f->fb_size);
        safe_close(f->fb_fd);
        f->fb = p;
        f->fb_size = size;
        f->fb_fd = TAKE_FD(fd);
        f->width = width;
        f->height = height;
        f->stride = stride;
        f->format = ORRERY_FORMAT_XRGB8888;
        return 0;
}

/* ---------------------------------------------------------------------- */
/* Machine1                                                                */

static int fake_set_state(Fake *f, const char *state) {
        int r;

        if (f->state && strcmp(f->state, state) == 0)
                return 0;
        r = set_string(&f->state, state);
        if (r < 0)
                return r;
        return sd_bus_emit_properties_changed(f->bus, f->path, "org.orrery.Machine1", "State", NULL);
}

static int method_pause(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Fake *f = userdata;
        int r;

        if (strcmp(f->state, "shutdown") == 0)
                return sd_bus_error_setf(error, "org.orrery.Error.Unavailable", "VM '%s' is shutting down.", f->name);
        r = fake_set_state(f, "paused");
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, NULL);
}

static int method_resume(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Fake *f = userdata;
        int r;

        if (strcmp(f->state, "shutdown") == 0)
                return sd_bus_error_setf(error, "org.orrery.Error.Unavailable", "VM '%s' is shutting down.", f->name);
        r = fake_set_state(f, "running");
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, NULL);
}

static int method_reset(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        fake_log_input(userdata, "reset");
        return sd_bus_reply_method_return(m, NULL);
}

static int method_power_down(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Fake *f = userdata;
        int r;

        fake_log_input(f, "power-down");
        r = fake_set_state(f, "shutdown");
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, NULL);
}

static int method_quit(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Fake *f = userdata;
        int r;

        r = fake_set_state(f, "shutdown");
        if (r < 0)
                return r;
        r = sd_bus_reply_method_return(m, NULL);
        if (r < 0)
                return r;
        return sd_event_exit(f->event, 0);
}

/* The fake has no guest to save: it answers as a VM that cannot save would. */
static int method_save(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return sd_bus_error_setf(error, ORRERY_ERROR_NOT_SUPPORTED, "orrery-fake-vm has no machine state to save");
}

static int method_load(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return sd_bus_error_setf(error, ORRERY_ERROR_NOT_SUPPORTED, "orrery-fake-vm has no machine state to load");
}

/* Nor one to migrate: the migration members answer as a VM that never migrated, and refuse. */
static int method_migrate(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return sd_bus_error_setf(error, ORRERY_ERROR_NOT_SUPPORTED, "orrery-fake-vm cannot migrate");
}

static int property_migration(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        if (strcmp(property, "MigrationState") == 0)
                return sd_bus_message_append(reply, "s", "none");
        if (strcmp(property, "MigrationProgress") == 0)
                return sd_bus_message_append(reply, "(ttt)", UINT64_C(0), UINT64_C(0), UINT64_C(0));
        if (strcmp(property, "MigrationError") == 0)
                return sd_bus_message_append(reply, "s", "");
        return sd_bus_message_append(reply, "t", UINT64_C(300));
}

static const sd_bus_vtable machine_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Name", "s", NULL, offsetof(Fake, name), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("UUID", "s", NULL, offsetof(Fake, uuid), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", NULL, offsetof(Fake, state), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MemoryBytes", "t", NULL, offsetof(Fake, memory_bytes), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("VCPUs", "u", NULL, offsetof(Fake, vcpus), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Version", "s", NULL, offsetof(Fake, version), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_METHOD("Pause", "", "", method_pause, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Resume", "", "", method_resume, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Reset", "", "", method_reset, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("PowerDown", "", "", method_power_down, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Quit", "", "", method_quit, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Save", SD_BUS_ARGS("h", fd), SD_BUS_NO_RESULT, method_save,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SaveAndQuit", SD_BUS_ARGS("h", fd), SD_BUS_NO_RESULT, method_save,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Load", SD_BUS_ARGS("h", fd), SD_BUS_NO_RESULT, method_load,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_PROPERTY("MigrationState", "s", property_migration, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MigrationProgress", "(ttt)", property_migration, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MigrationError", "s", property_migration, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MigrationDowntimeLimit", "t", property_migration, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("Migrate", SD_BUS_ARGS("s", uri), SD_BUS_NO_RESULT, method_migrate,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("MigrateFd", SD_BUS_ARGS("h", fd), SD_BUS_NO_RESULT, method_migrate,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("MigrateCancel", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_migrate,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetMigrationDowntimeLimit", SD_BUS_ARGS("t", msec), SD_BUS_NO_RESULT,
                                method_migrate, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

/* ---------------------------------------------------------------------- */
/* Keyboard1, Mouse1                                                       */

static int method_key(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        bool press = strcmp(sd_bus_message_get_member(m), "Press") == 0;
        uint32_t code;
        int r;

        r = sd_bus_message_read(m, "u", &code);
        if (r < 0)
                return r;
        if (code == 0 || code > 255)
                return sd_bus_error_setf(error, "org.orrery.Error.InvalidArgument", "No key with code %" PRIu32 ".",
                                         code);
        fake_log_input(userdata, "key-%s %" PRIu32, press ? "press" : "release", code);
        return sd_bus_reply_method_return(m, NULL);
}

static const sd_bus_vtable keyboard_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Leds", "u", NULL, offsetof(Fake, leds), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("Press", SD_BUS_ARGS("u", code), SD_BUS_NO_RESULT, method_key,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Release", SD_BUS_ARGS("u", code), SD_BUS_NO_RESULT, method_key,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static int method_abs(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        uint32_t x, y;
        int r;

        r = sd_bus_message_read(m, "uu", &x, &y);
        if (r < 0)
                return r;
        fake_log_input(userdata, "abs %" PRIu32 " %" PRIu32, x, y);
        return sd_bus_reply_method_return(m, NULL);
}

static int method_rel(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        int32_t dx, dy;
        int r;

        r = sd_bus_message_read(m, "ii", &dx, &dy);
        if (r < 0)
                return r;
        fake_log_input(userdata, "rel %" PRIi32 " %" PRIi32, dx, dy);
        return sd_bus_reply_method_return(m, NULL);
}

static int method_button(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        bool press = strcmp(sd_bus_message_get_member(m), "Press") == 0;
        uint32_t button;
        int r;

        r = sd_bus_message_read(m, "u", &button);
        if (r < 0)
                return r;
        if (button < 0x110 || button > 0x114)
                return sd_bus_error_setf(error, "org.orrery.Error.InvalidArgument", "No button 0x%" PRIx32 ".",
                                         button);
        fake_log_input(userdata, "button-%s 0x%" PRIx32, press ? "press" : "release", button);
        return sd_bus_reply_method_return(m, NULL);
}

static int method_wheel(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        int32_t v, h;
        int r;

        r = sd_bus_message_read(m, "ii", &v, &h);
        if (r < 0)
                return r;
        if (v < -120 || v > 120 || h < -120 || h > 120)
                return sd_bus_error_set(error, "org.orrery.Error.InvalidArgument", "At most 120 notches per call.");
        fake_log_input(userdata, "wheel %" PRIi32 " %" PRIi32, v, h);
        return sd_bus_reply_method_return(m, NULL);
}

static const sd_bus_vtable mouse_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("IsAbsolute", "b", NULL, offsetof(Fake, is_absolute), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("SetAbsPosition", SD_BUS_ARGS("u", x, "u", y), SD_BUS_NO_RESULT, method_abs,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RelMotion", SD_BUS_ARGS("i", dx, "i", dy), SD_BUS_NO_RESULT, method_rel,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Press", SD_BUS_ARGS("u", button), SD_BUS_NO_RESULT, method_button,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Release", SD_BUS_ARGS("u", button), SD_BUS_NO_RESULT, method_button,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Wheel", SD_BUS_ARGS("i", vertical, "i", horizontal), SD_BUS_NO_RESULT,
                                method_wheel, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

/* ---------------------------------------------------------------------- */
/* Console1                                                                */

static int property_watchers(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Fake *f = userdata;

        return sd_bus_message_append(reply, "u", sd_bus_track_count(f->watchers));
}

static int method_get_framebuffer(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Fake *f = userdata;

        return sd_bus_reply_method_return(m, "htuuuu", f->fb_fd, (uint64_t) 0, f->width, f->height, f->stride,
                                          f->format);
}

static int method_watch(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Fake *f = userdata;
        int r;

        r = sd_bus_track_add_sender(f->watchers, m);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, NULL);
}

static int method_unwatch(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Fake *f = userdata;
        int r;

        r = sd_bus_track_remove_sender(f->watchers, m);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, NULL);
}

static const sd_bus_vtable console_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Label", "s", NULL, offsetof(Fake, label), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Width", "u", NULL, offsetof(Fake, width), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Height", "u", NULL, offsetof(Fake, height), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Stride", "u", NULL, offsetof(Fake, stride), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Format", "u", NULL, offsetof(Fake, format), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Watchers", "u", property_watchers, 0, 0),
        SD_BUS_METHOD_WITH_ARGS("GetFramebuffer", SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("h", fd, "t", offset, "u", width, "u", height, "u", stride, "u", format),
                                method_get_framebuffer, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Watch", "", "", method_watch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Unwatch", "", "", method_unwatch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("Update", SD_BUS_ARGS("a(uuuu)", rects), 0),
        SD_BUS_VTABLE_END,
};

/* ---------------------------------------------------------------------- */
/* Chardev1                                                                */

static void chardev_release(FakeChardev *c) {
        if (c->fd < 0)
                return;
        c->io = sd_event_source_disable_unref(c->io);
        c->track = sd_bus_track_unref(c->track);
        c->fd = safe_close(c->fd);
        c->owner = mfree_(c->owner);
        (void) sd_bus_emit_properties_changed(c->fake->bus, c->path, "org.orrery.Chardev1", "Owner", NULL);
}

static int on_chardev_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        FakeChardev *c = userdata;
        uint8_t buf[4096];
        ssize_t n;

        n = read(fd, buf, sizeof(buf));
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n <= 0) {
                chardev_release(c); /* the client closed its end */
                return 0;
        }
        if (c->n_received + (size_t) n <= SCROLLBACK_MAX) {
                uint8_t *t = realloc(c->received, c->n_received + (size_t) n);

                if (t) {
                        memcpy(t + c->n_received, buf, (size_t) n);
                        c->received = t;
                        c->n_received += (size_t) n;
                }
        }
        return 0;
}

static int on_chardev_owner_gone(sd_bus_track *t, void *userdata) {
        chardev_release(userdata);
        return 0;
}

static int property_chardev_owner(sd_bus *bus, const char *path, const char *interface, const char *property,
                                  sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        FakeChardev *c = userdata;

        return sd_bus_message_append(reply, "s", c->owner ?: "");
}

static int method_register(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        FakeChardev *c = userdata;
        _cleanup_close_ int copy = -1;
        struct sockaddr_storage sa;
        socklen_t len = sizeof(int);
        int fd, domain = 0, type = 0, r;

        r = sd_bus_message_read(m, "h", &fd);
        if (r < 0)
                return r;
        if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 || domain != AF_UNIX ||
            getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM)
                return sd_bus_error_set(error, "org.orrery.Error.InvalidArgument",
                                        "Register wants a connected AF_UNIX stream socket.");
        len = sizeof(sa);
        if (getpeername(fd, (struct sockaddr *) &sa, &len) < 0)
                return sd_bus_error_set(error, "org.orrery.Error.InvalidArgument", "The socket is not connected.");
        if (c->fd >= 0)
                return sd_bus_error_setf(error, "org.orrery.Error.Busy", "Chardev '%s' is in use by %s.", c->id,
                                         c->owner);

        copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (copy < 0)
                return -errno;
        if (fcntl(copy, F_SETFL, O_NONBLOCK) < 0)
                return -errno;
        r = sd_bus_track_new(c->fake->bus, &c->track, on_chardev_owner_gone, c);
        if (r < 0)
                return r;
        r = sd_bus_track_add_sender(c->track, m);
        if (r < 0)
                goto fail;
        r = sd_event_add_io(c->fake->event, &c->io, copy, EPOLLIN, on_chardev_io, c);
        if (r < 0)
                goto fail;
        c->owner = strdup(sd_bus_message_get_sender(m));
        if (!c->owner) {
                r = -ENOMEM;
                goto fail;
        }
        c->fd = TAKE_FD(copy);
        (void) sd_bus_emit_properties_changed(c->fake->bus, c->path, "org.orrery.Chardev1", "Owner", NULL);
        return sd_bus_reply_method_return(m, NULL);
fail:
        c->io = sd_event_source_disable_unref(c->io);
        c->track = sd_bus_track_unref(c->track);
        return r;
}

static int method_unregister(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        FakeChardev *c = userdata;

        if (c->fd < 0 || !c->owner || strcmp(c->owner, sd_bus_message_get_sender(m)) != 0)
                return sd_bus_error_setf(error, "org.orrery.Error.NotOwner", "You do not own chardev '%s'.", c->id);
        chardev_release(c);
        return sd_bus_reply_method_return(m, NULL);
}

static int method_get_scrollback(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        FakeChardev *c = userdata;
        int r;

        r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_append_array(reply, 'y', c->scrollback, c->n_scrollback);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static const sd_bus_vtable chardev_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Name", "s", NULL, offsetof(FakeChardev, name), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Owner", "s", property_chardev_owner, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("GuestOpen", "b", NULL, offsetof(FakeChardev, guest_open),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("Register", SD_BUS_ARGS("h", fd), SD_BUS_NO_RESULT, method_register,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Unregister", "", "", method_unregister, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetScrollback", SD_BUS_NO_ARGS, SD_BUS_RESULT("ay", data), method_get_scrollback,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static FakeChardev *fake_find_chardev(Fake *f, const char *id) {
        for (size_t i = 0; i < ELEMENTSOF(f->chardevs); i++)
                if (strcmp(f->chardevs[i].id, id) == 0)
                        return f->chardevs + i;
        return NULL;
}

/* ---------------------------------------------------------------------- */
/* org.orrery.FakeVM1: the test's remote control                          */

static int control_set_state(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *s;
        int r;

        r = sd_bus_message_read(m, "s", &s);
        if (r < 0)
                return r;
        r = fake_set_state(userdata, s);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, NULL);
}

static int control_set_leds(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Fake *f = userdata;
        int r;

        r = sd_bus_message_read(m, "u", &f->leds);
        if (r < 0)
                return r;
        r = sd_bus_emit_properties_changed(f->bus, f->path, "org.orrery.Keyboard1", "Leds", NULL);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, NULL);
}

static int control_set_absolute(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Fake *f = userdata;
        int r;

        r = sd_bus_message_read(m, "b", &f->is_absolute);
        if (r < 0)
                return r;
        r = sd_bus_emit_properties_changed(f->bus, f->path, "org.orrery.Mouse1", "IsAbsolute", NULL);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, NULL);
}

static int control_fill(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Fake *f = userdata;
        uint32_t pixel;
        int r;

        r = sd_bus_message_read(m, "u", &pixel);
        if (r < 0)
                return r;
        for (size_t i = 0; i < f->fb_size / 4; i++)
                ((uint32_t *) f->fb)[i] = pixel;
        return sd_bus_reply_method_return(m, NULL);
}

/* Emits Update with the caller's rectangles exactly as given: hostile ones too. */
static int control_emit_update(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *signal = NULL;
        Fake *f = userdata;
        int r;

        r = sd_bus_message_new_signal(f->bus, &signal, f->console_path, "org.orrery.Console1", "Update");
        if (r < 0)
                return r;
        r = sd_bus_message_copy(signal, m, true);
        if (r < 0)
                return r;
        r = sd_bus_send(f->bus, signal, NULL);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, NULL);
}

static int control_set_mode(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Fake *f = userdata;
        uint32_t w, h;
        int r;

        r = sd_bus_message_read(m, "uu", &w, &h);
        if (r < 0)
                return r;
        r = fb_alloc(f, w, h);
        if (r < 0)
                return r;
        r = sd_bus_emit_properties_changed(f->bus, f->console_path, "org.orrery.Console1", "Width", "Height",
                                           "Stride", NULL);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, NULL);
}

static int control_take_input(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Fake *f = userdata;
        int r;

        r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "s");
        if (r < 0)
                return r;
        for (size_t i = 0; i < f->n_input_log; i++) {
                r = sd_bus_message_append(reply, "s", f->input_log[i]);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        for (size_t i = 0; i < f->n_input_log; i++)
                free(f->input_log[i]);
        f->input_log = mfree_(f->input_log);
        f->n_input_log = 0;
        return sd_bus_send(NULL, reply, NULL);
}

static int control_chardev_send(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        FakeChardev *c;
        const char *id;
        const void *data;
        size_t n;
        int r;

        r = sd_bus_message_read(m, "s", &id);
        if (r < 0)
                return r;
        r = sd_bus_message_read_array(m, 'y', &data, &n);
        if (r < 0)
                return r;
        c = fake_find_chardev(userdata, id);
        if (!c)
                return sd_bus_error_setf(error, "org.orrery.Error.InvalidArgument", "No chardev '%s'.", id);

        /* Scrollback keeps the newest SCROLLBACK_MAX bytes. */
        if (n >= SCROLLBACK_MAX) {
                memcpy(c->scrollback, (const uint8_t *) data + n - SCROLLBACK_MAX, SCROLLBACK_MAX);
                c->n_scrollback = SCROLLBACK_MAX;
        } else {
                size_t keep = MIN(c->n_scrollback, (size_t) SCROLLBACK_MAX - n);

                memmove(c->scrollback, c->scrollback + c->n_scrollback - keep, keep);
                memcpy(c->scrollback + keep, data, n);
                c->n_scrollback = keep + n;
        }
        if (c->fd >= 0 && n > 0)
                (void) !write(c->fd, data, n); /* best effort, as the emulator: never block */
        return sd_bus_reply_method_return(m, NULL);
}

static int control_chardev_take_received(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        FakeChardev *c;
        const char *id;
        int r;

        r = sd_bus_message_read(m, "s", &id);
        if (r < 0)
                return r;
        c = fake_find_chardev(userdata, id);
        if (!c)
                return sd_bus_error_setf(error, "org.orrery.Error.InvalidArgument", "No chardev '%s'.", id);
        r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_append_array(reply, 'y', c->received, c->n_received);
        if (r < 0)
                return r;
        c->received = mfree_(c->received);
        c->n_received = 0;
        return sd_bus_send(NULL, reply, NULL);
}

static const sd_bus_vtable control_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("SetState", SD_BUS_ARGS("s", state), SD_BUS_NO_RESULT, control_set_state, 0),
        SD_BUS_METHOD_WITH_ARGS("SetLeds", SD_BUS_ARGS("u", leds), SD_BUS_NO_RESULT, control_set_leds, 0),
        SD_BUS_METHOD_WITH_ARGS("SetAbsolute", SD_BUS_ARGS("b", absolute), SD_BUS_NO_RESULT, control_set_absolute,
                                0),
        SD_BUS_METHOD_WITH_ARGS("Fill", SD_BUS_ARGS("u", pixel), SD_BUS_NO_RESULT, control_fill, 0),
        SD_BUS_METHOD_WITH_ARGS("EmitUpdate", SD_BUS_ARGS("a(uuuu)", rects), SD_BUS_NO_RESULT, control_emit_update,
                                0),
        SD_BUS_METHOD_WITH_ARGS("SetMode", SD_BUS_ARGS("u", width, "u", height), SD_BUS_NO_RESULT, control_set_mode,
                                0),
        SD_BUS_METHOD_WITH_ARGS("TakeInput", SD_BUS_NO_ARGS, SD_BUS_RESULT("as", events), control_take_input, 0),
        SD_BUS_METHOD_WITH_ARGS("ChardevSend", SD_BUS_ARGS("s", id, "ay", data), SD_BUS_NO_RESULT,
                                control_chardev_send, 0),
        SD_BUS_METHOD_WITH_ARGS("ChardevTakeReceived", SD_BUS_ARGS("s", id), SD_BUS_RESULT("ay", data),
                                control_chardev_take_received, 0),
        SD_BUS_VTABLE_END,
};

/* ---------------------------------------------------------------------- */

static int on_name_lost(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Fake *f = userdata;
        const char *name;

        if (sd_bus_message_read(m, "s", &name) >= 0 && strcmp(name, f->bus_name) == 0)
                sd_event_exit(f->event, 0);
        return 0;
}

static void fake_free(Fake *f) {
        for (size_t i = 0; i < ELEMENTSOF(f->chardevs); i++) {
                FakeChardev *c = f->chardevs + i;

                c->io = sd_event_source_disable_unref(c->io);
                c->track = sd_bus_track_unref(c->track);
                safe_close(c->fd);
                free(c->owner);
                free(c->received);
                free(c->path);
        }
        for (size_t i = 0; i < f->n_input_log; i++)
                free(f->input_log[i]);
        free(f->input_log);
        sd_bus_track_unref(f->watchers);
        sd_bus_flush_close_unref(f->bus);
        sd_event_unref(f->event);
        if (f->fb)
                munmap(f->fb, f->fb_size);
        safe_close(f->fb_fd);
        free(f->name);
        free(f->bus_name);
        free(f->path);
        free(f->console_path);
        free(f->state);
        free(f->version);
        free(f->label);
}

static int fake_run(Fake *f, const char *address, bool replace, int ready_fd) {
        sd_id128_t id;
        int r;

        r = sd_event_new(&f->event);
        if (r < 0)
                return r;
        (void) sd_event_add_signal(f->event, NULL, SIGTERM | SD_EVENT_SIGNAL_PROCMASK, NULL, NULL);
        (void) sd_event_add_signal(f->event, NULL, SIGINT | SD_EVENT_SIGNAL_PROCMASK, NULL, NULL);

        if (address) {
                r = sd_bus_new(&f->bus);
                if (r >= 0)
                        r = sd_bus_set_address(f->bus, address);
                if (r >= 0)
                        r = sd_bus_set_bus_client(f->bus, true);
                if (r >= 0)
                        r = sd_bus_start(f->bus);
        } else
                r = sd_bus_open_user(&f->bus);
        if (r < 0)
                return r;
        r = sd_bus_attach_event(f->bus, f->event, 0);
        if (r < 0)
                return r;

        r = sd_id128_randomize(&id);
        if (r < 0)
                return r;
        f->uuid = sd_id128_to_uuid_string(id, f->uuid_buf);

        r = sd_bus_track_new(f->bus, &f->watchers, NULL, NULL);
        if (r < 0)
                return r;

        /* Objects first, name last: whoever sees the name sees everything. */
        r = sd_bus_add_object_manager(f->bus, NULL, "/org/orrery/VM");
        if (r < 0)
                return r;
        r = sd_bus_add_object_vtable(f->bus, NULL, f->path, "org.orrery.Machine1", machine_vtable, f);
        if (r < 0)
                return r;
        r = sd_bus_add_object_vtable(f->bus, NULL, f->path, "org.orrery.Keyboard1", keyboard_vtable, f);
        if (r < 0)
                return r;
        r = sd_bus_add_object_vtable(f->bus, NULL, f->path, "org.orrery.Mouse1", mouse_vtable, f);
        if (r < 0)
                return r;
        r = sd_bus_add_object_vtable(f->bus, NULL, f->console_path, "org.orrery.Console1", console_vtable, f);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(f->chardevs); i++) {
                r = sd_bus_add_object_vtable(f->bus, NULL, f->chardevs[i].path, "org.orrery.Chardev1",
                                             chardev_vtable, f->chardevs + i);
                if (r < 0)
                        return r;
        }
        r = sd_bus_add_object_vtable(f->bus, NULL, "/org/orrery/FakeVM", "org.orrery.FakeVM1", control_vtable, f);
        if (r < 0)
                return r;

        r = sd_bus_match_signal(f->bus, NULL, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                "NameLost", on_name_lost, f);
        if (r < 0)
                return r;
        r = sd_bus_request_name(f->bus, f->bus_name,
                                SD_BUS_NAME_ALLOW_REPLACEMENT | (replace ? SD_BUS_NAME_REPLACE_EXISTING : 0));
        if (r < 0)
                return r;

        if (ready_fd >= 0) {
                (void) !write(ready_fd, "R", 1);
                safe_close(ready_fd);
        }

        return sd_event_loop(f->event);
}

int main(int argc, char *argv[]) {
        enum { ARG_ADDRESS = 0x100, ARG_NAME, ARG_WIDTH, ARG_HEIGHT, ARG_STATE, ARG_REPLACE, ARG_READY_FD };
        static const struct option options[] = {
                { "address", required_argument, NULL, ARG_ADDRESS },
                { "name", required_argument, NULL, ARG_NAME },
                { "width", required_argument, NULL, ARG_WIDTH },
                { "height", required_argument, NULL, ARG_HEIGHT },
                { "state", required_argument, NULL, ARG_STATE },
                { "replace", no_argument, NULL, ARG_REPLACE },
                { "ready-fd", required_argument, NULL, ARG_READY_FD },
                {},
        };
        const char *address = NULL, *name = NULL, *state = "running";
        uint32_t width = 64, height = 48;
        bool replace = false;
        int ready_fd = -1, c, r;
        Fake f = {
                .fb_fd = -1,
                .memory_bytes = 128ULL << 20,
                .vcpus = 1,
                .chardevs = {
                        { .id = "serial0", .name = "serial0", .guest_open = true, .fd = -1 },
                        { .id = "guest_agent", .name = "org.qemu.guest_agent.0", .fd = -1 },
                },
        };

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case ARG_ADDRESS:
                        address = optarg;
                        break;
                case ARG_NAME:
                        name = optarg;
                        break;
                case ARG_WIDTH:
                        width = (uint32_t) strtoul(optarg, NULL, 10);
                        break;
                case ARG_HEIGHT:
                        height = (uint32_t) strtoul(optarg, NULL, 10);
                        break;
                case ARG_STATE:
                        state = optarg;
                        break;
                case ARG_REPLACE:
                        replace = true;
                        break;
                case ARG_READY_FD:
                        ready_fd = atoi(optarg);
                        break;
                default:
                        return 2;
                }
        if (!name) {
                fprintf(stderr, "usage: %s --name=NAME [--address=ADDR] [--width=W] [--height=H] [--state=S] "
                                "[--replace] [--ready-fd=FD]\n", argv[0]);
                return 2;
        }

        f.name = strdup(name);
        f.state = strdup(state);
        f.version = strdup("fake-1.0");
        f.label = strdup("Framebuffer 0");
        if (asprintf(&f.bus_name, "org.orrery.VM.%s", name) < 0)
                f.bus_name = NULL;
        if (asprintf(&f.path, "/org/orrery/VM/%s", name) < 0)
                f.path = NULL;
        if (asprintf(&f.console_path, "/org/orrery/VM/%s/Console/0", name) < 0)
                f.console_path = NULL;
        for (size_t i = 0; i < ELEMENTSOF(f.chardevs); i++) {
                f.chardevs[i].fake = &f;
                if (asprintf(&f.chardevs[i].path, "/org/orrery/VM/%s/Chardev/%s", name, f.chardevs[i].id) < 0)
                        f.chardevs[i].path = NULL;
        }
        if (!f.name || !f.state || !f.version || !f.label || !f.bus_name || !f.path || !f.console_path ||
            !f.chardevs[0].path || !f.chardevs[1].path)
                r = -ENOMEM;
        else {
                r = fb_alloc(&f, width, height);
                if (r >= 0)
                        r = fake_run(&f, address, replace, ready_fd);
        }
        if (r < 0)
                fprintf(stderr, "orrery-fake-vm: %s\n", strerror(-r));
        fake_free(&f);
        return r < 0 ? 1 : 0;
}

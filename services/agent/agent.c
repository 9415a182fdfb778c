/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "agent.h"
#include "log.h"
#include "macro.h"
#include "utf8.h"

#define RETRY_USEC (500ULL * 1000ULL)
#define GUEST_STRING_MAX 4096u
#define GUEST_COMMANDS_MAX 1024u

/* ---------------------------------------------------------------------- */
/* Simple methods: one guest command each                                 */

typedef enum Op {
        OP_PING,
        OP_INFO,
        OP_OSINFO,
        OP_HOSTNAME,
        OP_TIME,
        OP_SHUTDOWN,
        OP_FREEZE,
        OP_THAW,
        OP_STATUS,
} Op;

static const char *const op_command[] = {
        [OP_PING] = "guest-ping",
        [OP_INFO] = "guest-info",
        [OP_OSINFO] = "guest-get-osinfo",
        [OP_HOSTNAME] = "guest-get-host-name",
        [OP_TIME] = "guest-get-time",
        [OP_SHUTDOWN] = "guest-shutdown",
        [OP_FREEZE] = "guest-fsfreeze-freeze",
        [OP_THAW] = "guest-fsfreeze-thaw",
        [OP_STATUS] = "guest-fsfreeze-status",
};

typedef struct Pending {
        sd_bus_message *m;
        Agent *agent;
        Op op;
} Pending;

static int reply_protocol_error(Pending *p, const char *what) {
        return sd_bus_reply_method_errorf(p->m, ORRERY_ERROR_GUEST,
                                          "ProtocolError: the guest agent of %s answered %s with %s", p->agent->label,
                                          op_command[p->op], what);
}

/* A guest string, bounded and checked (json-c already validated its UTF-8). */
static const char *guest_string(json_object *o) {
        const char *s;

        if (!json_object_is_type(o, json_type_string))
                return NULL;
        s = json_object_get_string(o);
        if (!s || (size_t) json_object_get_string_len(o) > GUEST_STRING_MAX || strlen(s) != (size_t) json_object_get_string_len(o))
                return NULL; /* too long, or an embedded NUL */
        return s;
}

static int reply_info(Pending *p, json_object *ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        json_object *version, *commands;
        const char *v;
        size_t n;
        int r;

        if (!json_object_object_get_ex(ret, "version", &version) || !(v = guest_string(version)) ||
            !json_object_object_get_ex(ret, "supported_commands", &commands) ||
            !json_object_is_type(commands, json_type_array))
                return reply_protocol_error(p, "no \"version\" string or \"supported_commands\" array");
        n = json_object_array_length(commands);
        if (n > GUEST_COMMANDS_MAX)
                return reply_protocol_error(p, "too many commands");

        r = sd_bus_message_new_method_return(p->m, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "s", v);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "s");
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                json_object *cmd = json_object_array_get_idx(commands, i), *name, *enabled;
                const char *s;

                if (!json_object_object_get_ex(cmd, "name", &name) || !(s = guest_string(name)))
                        return reply_protocol_error(p, "a command without a name");
                /* "enabled" is optional in spirit: only an explicit false hides a command. */
                if (json_object_object_get_ex(cmd, "enabled", &enabled) &&
                    json_object_is_type(enabled, json_type_boolean) && !json_object_get_boolean(enabled))
                        continue;
                r = sd_bus_message_append(reply, "s", s);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int reply_osinfo(Pending *p, json_object *ret) {
        static const char *const keys[] = { "kernel-release", "kernel-version", "machine", "id", "name",
                                            "pretty-name", "version", "version-id" };
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        if (!json_object_is_type(ret, json_type_object))
                return reply_protocol_error(p, "something that is not an object");
        r = sd_bus_message_new_method_return(p->m, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "{ss}");
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                json_object *v;
                const char *s;

                if (!json_object_object_get_ex(ret, keys[i], &v) || !(s = guest_string(v)))
                        continue;
                r = sd_bus_message_append(reply, "{ss}", keys[i], s);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int reply_count(Pending *p, json_object *ret) {
        int64_t v;

        if (!json_object_is_type(ret, json_type_int))
                return reply_protocol_error(p, "something that is not a number");
        v = json_object_get_int64(ret);
        if (v < 0 || v > INT32_MAX)
                return reply_protocol_error(p, "a count out of range");
        return sd_bus_reply_method_return(p->m, "i", (int32_t) v);
}

static int pending_reply(Pending *p, json_object *ret) {
        json_object *v;
        const char *s;

        switch (p->op) {
        case OP_PING:
        case OP_SHUTDOWN:
                return sd_bus_reply_method_return(p->m, NULL);
        case OP_INFO:
                return reply_info(p, ret);
        case OP_OSINFO:
                return reply_osinfo(p, ret);
        case OP_HOSTNAME:
                if (!json_object_object_get_ex(ret, "host-name", &v) || !(s = guest_string(v)))
                        return reply_protocol_error(p, "no \"host-name\" string");
                return sd_bus_reply_method_return(p->m, "s", s);
        case OP_TIME:
                if (!json_object_is_type(ret, json_type_int))
                        return reply_protocol_error(p, "something that is not a number");
                return sd_bus_reply_method_return(p->m, "x", json_object_get_int64(ret));
        case OP_FREEZE:
        case OP_THAW:
                return reply_count(p, ret);
        case OP_STATUS:
                s = guest_string(ret);
                if (!s || (strcmp(s, "thawed") != 0 && strcmp(s, "frozen") != 0))
                        return reply_protocol_error(p, "neither \"thawed\" nor \"frozen\"");
                return sd_bus_reply_method_return(p->m, "s", s);
        }
        return -EINVAL;
}

static void on_pending_reply(QgaChannel *c, json_object *ret, const sd_bus_error *error, void *userdata) {
        Pending *p = userdata;
        int r;

        if (error && p->op == OP_SHUTDOWN && sd_bus_error_has_name(error, ORRERY_ERROR_UNAVAILABLE))
                error = NULL; /* the guest went away before confirming: it did what we asked */
        if (error)
                r = sd_bus_reply_method_error(p->m, error);
        else
                r = pending_reply(p, ret);
        if (r < 0)
                log_error_errno(r, "%s: cannot reply to %s: %m", p->agent->label, op_command[p->op]);
        sd_bus_message_unref(p->m);
        free(p);
}

int agent_reply_not_available(Agent *a, sd_bus_message *m, int r, sd_bus_error *error) {
        if (r == -ENOTCONN) {
                if (a->busy)
                        return sd_bus_error_setf(error, ORRERY_ERROR_UNAVAILABLE,
                                                 "The guest agent port of %s is owned by another client", a->label);
                return sd_bus_error_setf(error, ORRERY_ERROR_UNAVAILABLE,
                                         "The guest agent port of %s is not connected (yet)", a->label);
        }
        if (r == -EBUSY)
                return sd_bus_error_setf(error, ORRERY_ERROR_BUSY,
                                         "Too many calls are waiting for the guest agent of %s (at most %u)",
                                         a->label, QGA_QUEUE_MAX);
        return sd_bus_error_set_errnof(error, r, "Cannot call the guest agent of %s: %m", a->label);
}

int agent_refuse_while_migrating(Agent *a, sd_bus_error *error) {
        const char *s = a->vm ? orrery_vm_get_migration_state(a->vm) : NULL;

        if (s && strcmp(s, "active") == 0)
                return sd_bus_error_setf(error, ORRERY_ERROR_BUSY,
                                         "%s is migrating to a new process; try again once it runs there", a->label);
        return 0;
}

static int agent_call(sd_bus_message *m, Agent *a, Op op, json_object *args, QgaCallFlags flags,
                      sd_bus_error *error) {
        Pending *p;
        int r;

        r = agent_refuse_while_migrating(a, error);
        if (r < 0) {
                json_object_put(args);
                return r;
        }

        p = calloc(1, sizeof(*p));
        if (!p) {
                json_object_put(args);
                return -ENOMEM;
        }
        p->m = sd_bus_message_ref(m);
        p->agent = a;
        p->op = op;
        r = qga_channel_call(a->channel, op_command[op], args, flags, on_pending_reply, p, NULL);
        if (r < 0) {
                sd_bus_message_unref(p->m);
                free(p);
                return agent_reply_not_available(a, m, r, error);
        }
        return 1;
}

static int method_simple(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *member = sd_bus_message_get_member(m);
        static const struct {
                const char *member;
                Op op;
        } table[] = {
                { "Ping", OP_PING },           { "Info", OP_INFO },        { "GetOSInfo", OP_OSINFO },
                { "GetHostName", OP_HOSTNAME }, { "GetTime", OP_TIME },     { "FsFreeze", OP_FREEZE },
                { "FsThaw", OP_THAW },         { "FsFreezeStatus", OP_STATUS },
        };
        int r;

        r = manager_check_caller(m, error);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (strcmp(member, table[i].member) == 0)
                        return agent_call(m, userdata, table[i].op, NULL, 0, error);
        return -EINVAL;
}

static int method_shutdown(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        json_object *args;
        const char *mode;
        int r;

        r = manager_check_caller(m, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "s", &mode);
        if (r < 0)
                return r;
        if (mode[0] == '\0')
                mode = "powerdown";
        if (strcmp(mode, "powerdown") != 0 && strcmp(mode, "reboot") != 0 && strcmp(mode, "halt") != 0)
                return sd_bus_error_setf(error, ORRERY_ERROR_INVALID_ARGUMENT,
                                         "Unknown shutdown mode '%.64s': use powerdown, reboot or halt", mode);
        args = json_object_new_object();
        if (!args || json_object_object_add(args, "mode", json_object_new_string(mode)) < 0) {
                json_object_put(args);
                return -ENOMEM;
        }
        return agent_call(m, userdata, OP_SHUTDOWN, args, QGA_CALL_CONFIRM_WITH_SYNC, error);
}

static int property_connected(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Agent *a = userdata;

        return sd_bus_message_append(reply, "b", qga_channel_is_connected(a->channel));
}

const sd_bus_vtable agent_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("VM", "s", NULL, offsetof(Agent, name), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Connected", "b", property_connected, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("Ping", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_simple, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Info", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", version, "as", commands), method_simple,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetOSInfo", SD_BUS_NO_ARGS, SD_BUS_RESULT("a{ss}", info), method_simple,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetHostName", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", hostname), method_simple,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetTime", SD_BUS_NO_ARGS, SD_BUS_RESULT("x", nsec), method_simple,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Shutdown", SD_BUS_ARGS("s", mode), SD_BUS_NO_RESULT, method_shutdown,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("FsFreeze", SD_BUS_NO_ARGS, SD_BUS_RESULT("i", count), method_simple,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("FsThaw", SD_BUS_NO_ARGS, SD_BUS_RESULT("i", count), method_simple,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("FsFreezeStatus", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", status), method_simple,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CopyToGuest", SD_BUS_ARGS("h", fd, "s", path), SD_BUS_RESULT("t", bytes),
                                method_copy_to_guest, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CopyFromGuest", SD_BUS_ARGS("s", path, "h", fd), SD_BUS_RESULT("t", bytes),
                                method_copy_from_guest, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CopyFromGuestEx", SD_BUS_ARGS("s", path, "h", fd, "a{sv}", options),
                                SD_BUS_RESULT("t", bytes), method_copy_from_guest_ex, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CancelCopies", SD_BUS_NO_ARGS, SD_BUS_RESULT("u", count), method_cancel_copies,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("CopyProgress", SD_BUS_ARGS("s", path, "t", done, "t", total), 0),
        SD_BUS_VTABLE_END,
};

/* ---------------------------------------------------------------------- */
/* The object and the port                                                */

static void agent_publish(Agent *a) {
        int r;

        if (a->slot)
                return;
        r = sd_bus_add_object_vtable(a->manager->bus, &a->slot, a->path, AGENT_INTERFACE, agent_vtable, a);
        if (r < 0) {
                log_error_errno(r, "%s: cannot export %s: %m", a->label, a->path);
                return;
        }
        (void) sd_bus_emit_object_added(a->manager->bus, a->path);
}

static void agent_unpublish(Agent *a) {
        if (!a->slot)
                return;
        (void) sd_bus_emit_object_removed(a->manager->bus, a->path);
        a->slot = sd_bus_slot_unref(a->slot);
}

static void agent_settle(Agent *a) {
        if (a->settled)
                return;
        a->settled = true;
        manager_agent_settled(a->manager);
}

static void agent_unavailable(Agent *a, const char *why) {
        _cleanup_free_ char *text = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;

        if (asprintf(&text, "%s %s", a->label, why) < 0)
                text = NULL;
        error.name = ORRERY_ERROR_UNAVAILABLE;
        error.message = text ?: "The VM is not available";
        copies_abort_all(a, &error);
        qga_channel_detach(a->channel, &error);
}

static void agent_reach_port(Agent *a);

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        Agent *a = userdata;

        a->retry = sd_event_source_disable_unref(a->retry);
        agent_reach_port(a);
        return 0;
}

static void agent_schedule_retry(Agent *a) {
        int r;

        if (a->retry)
                return;
        r = sd_event_add_time_relative(a->manager->event, &a->retry, CLOCK_MONOTONIC, RETRY_USEC, 0, on_retry, a);
        if (r < 0)
                log_error_errno(r, "%s: cannot schedule a retry: %m", a->label);
}

static void on_registered(OrreryVm *vm, const char *id, int fd, const sd_bus_error *error, void *userdata) {
        Agent *a = userdata;
        int r;

        a->registering = false;
        if (fd < 0) {
                if (error && sd_bus_error_has_name(error, ORRERY_ERROR_BUSY)) {
                        /* Someone else talks to the guest agent (e.g. a console): wait until the port is free. */
                        a->busy = true;
                        log_info("%s: the guest agent port is in use by another client; waiting", a->label);
                } else {
                        log_debug("%s: cannot register on the guest agent port: %s", a->label,
                                  error && error->message ? error->message : strerror(-fd));
                        if (orrery_vm_is_ready(vm))
                                agent_schedule_retry(a);
                }
                agent_settle(a);
                return;
        }
        a->busy = false;
        log_debug("%s: registered on the guest agent port", a->label);
        r = qga_channel_attach(a->channel, fd);
        if (r < 0) {
                log_error_errno(r, "%s: cannot watch the guest agent port: %m", a->label);
                safe_close(fd);
                agent_schedule_retry(a);
        }
        agent_settle(a);
}

static int connect_socket(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -1;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;
        return TAKE_FD(fd);
}

static void agent_reach_port(Agent *a) {
        OrreryChardevInfo info;
        int fd, r;

        if (qga_channel_is_attached(a->channel) || a->registering)
                return;

        if (a->socket_path) {
                fd = connect_socket(a->socket_path);
                if (fd < 0) {
                        log_debug_errno(fd, "%s: cannot connect to %s: %m", a->label, a->socket_path);
                        agent_schedule_retry(a);
                        agent_settle(a);
                        return;
                }
                r = qga_channel_attach(a->channel, fd);
                if (r < 0) {
                        safe_close(fd);
                        agent_schedule_retry(a);
                }
                agent_settle(a);
                return;
        }

        if (!a->vm || !orrery_vm_is_ready(a->vm) || orrery_vm_get_chardev(a->vm, AGENT_CHARDEV_ID, &info) < 0) {
                agent_settle(a);
                return;
        }
        if (info.owner && info.owner[0]) {
                a->busy = true;
                agent_settle(a);
                return;
        }
        r = orrery_vm_chardev_register(a->vm, AGENT_CHARDEV_ID, on_registered, a);
        if (r < 0) {
                log_error_errno(r, "%s: cannot register on the guest agent port: %m", a->label);
                agent_schedule_retry(a);
                agent_settle(a);
                return;
        }
        a->registering = true;
}

static void on_connected_changed(QgaChannel *c, bool connected, void *userdata) {
        Agent *a = userdata;

        if (a->slot)
                (void) sd_bus_emit_properties_changed(a->manager->bus, a->path, AGENT_INTERFACE, "Connected", NULL);
}

static void on_channel_closed(QgaChannel *c, void *userdata) {
        Agent *a = userdata;
        sd_bus_error error = SD_BUS_ERROR_MAKE_CONST(ORRERY_ERROR_UNAVAILABLE, "The guest agent port closed");

        copies_abort_all(a, &error);
        agent_schedule_retry(a);
}

static void on_vm_appeared(OrreryVm *vm, void *userdata) {
        Agent *a = userdata;
        OrreryChardevInfo info;

        if (orrery_vm_get_chardev(vm, AGENT_CHARDEV_ID, &info) < 0) {
                log_debug("%s has no %s chardev", a->label, AGENT_CHARDEV_ID);
                agent_unpublish(a);
                agent_settle(a);
                return;
        }
        log_debug("%s appeared (owner %s)", a->label, orrery_vm_get_owner(vm) ?: "?");
        agent_publish(a);
        agent_reach_port(a);
}

static void on_vm_vanished(OrreryVm *vm, void *userdata) {
        Agent *a = userdata;

        log_debug("%s vanished", a->label);
        a->retry = sd_event_source_disable_unref(a->retry);
        a->registering = false;
        a->busy = false;
        agent_unavailable(a, "went away (stopped, restarted or migrated)");
        agent_unpublish(a);
}

static void on_vm_chardev_changed(OrreryVm *vm, const char *id, void *userdata) {
        Agent *a = userdata;
        OrreryChardevInfo info;

        if (strcmp(id, AGENT_CHARDEV_ID) != 0 || orrery_vm_get_chardev(vm, id, &info) < 0)
                return;
        if (!qga_channel_is_attached(a->channel)) {
                if (!info.owner || !info.owner[0]) {
                        a->busy = false;
                        agent_reach_port(a);
                }
                return;
        }
        if (info.guest_open)
                qga_channel_kick(a->channel); /* bytes sent before the guest opened its port may be lost */
}

static void on_vm_error(OrreryVm *vm, const char *method, const sd_bus_error *error, void *userdata) {
        Agent *a = userdata;

        log_debug("%s: %s failed: %s", a->label, method, error && error->message ? error->message : "?");
}

static const OrreryVmCallbacks vm_callbacks = {
        .appeared = on_vm_appeared,
        .vanished = on_vm_vanished,
        .chardev_changed = on_vm_chardev_changed,
        .error = on_vm_error,
};

static const QgaChannelCallbacks channel_callbacks = {
        .connected_changed = on_connected_changed,
        .closed = on_channel_closed,
};

int agent_new(Manager *m, const char *name, const char *socket_path, Agent **ret) {
        Agent *a;
        int r;

        a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        a->manager = m;
        a->name = strdup(name);
        if (!a->name || sd_bus_path_encode(AGENT_PATH_PREFIX, name, &a->path) < 0 ||
            asprintf(&a->label, "VM '%s'", name) < 0) {
                a->path = a->label = NULL;
                agent_free(a);
                return -ENOMEM;
        }
        if (socket_path && !(a->socket_path = strdup(socket_path))) {
                agent_free(a);
                return -ENOMEM;
        }
        r = qga_channel_new(m->event, a->label, m->timeout_usec, &channel_callbacks, a, &a->channel);
        if (r < 0) {
                agent_free(a);
                return r;
        }
        a->next = m->agents;
        m->agents = a;

        if (a->socket_path) {
                agent_publish(a);
                agent_reach_port(a);
        } else {
                r = orrery_vm_attach(m->client, name, &vm_callbacks, a,
                                     ORRERY_VM_ATTACH_ASYNC | ORRERY_VM_ATTACH_NO_CONSOLES, &a->vm);
                if (r < 0) {
                        agent_free(a);
                        return r;
                }
        }
        if (ret)
                *ret = a;
        return 0;
}

Agent *agent_free(Agent *a) {
        sd_bus_error error = SD_BUS_ERROR_MAKE_CONST(ORRERY_ERROR_UNAVAILABLE, "The VM went away");

        if (!a)
                return NULL;
        for (Agent **p = &a->manager->agents; *p; p = &(*p)->next)
                if (*p == a) {
                        *p = a->next;
                        break;
                }
        if (a->channel) {
                copies_abort_all(a, &error);
                a->channel = qga_channel_free(a->channel, &error);
        }
        agent_unpublish(a);
        a->retry = sd_event_source_disable_unref(a->retry);
        a->vm = orrery_vm_detach(a->vm);
        free(a->socket_path);
        free(a->label);
        free(a->path);
        free(a->name);
        free(a);
        return NULL;
}

Agent *agent_find(Manager *m, const char *name) {
        for (Agent *a = m->agents; a; a = a->next)
                if (strcmp(a->name, name) == 0)
                        return a;
        return NULL;
}

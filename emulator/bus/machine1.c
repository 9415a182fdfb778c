/* SPDX-License-Identifier: MIT */

/*
 * org.orrery.Machine1 (dbus/org.orrery.Machine1.xml).
 *
 * Pause, Resume and Reset are carried out by the CPU thread: the call is
 * kept (with a ticket from the machine) and answered from the event loop
 * when the machine's notify fd says it is done, so a slow guest never
 * stalls the bus. A call not carried out within PENDING_TIMEOUT_USEC is
 * answered with org.orrery.Error.Timeout.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/bus.h"
#include "migration/savevm.h"
#include "log.h"
#include "macro.h"

#define PENDING_TIMEOUT_USEC (2ULL * 1000000ULL)

static const char *state_to_string(MachineState s) {
        switch (s) {
        case MACHINE_RUNNING:
                return "running";
        case MACHINE_PAUSED:
                return "paused";
        default:
                return "shutdown";
        }
}

static int property_state(sd_bus *bus, const char *path, const char *interface, const char *property,
                          sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        return sd_bus_message_append(reply, "s", state_to_string(machine_get_state(b->machine)));
}

static BusPending *pending_free(BusPending *p) {
        if (p->peer)
                p->peer->n_pending--;
        sd_bus_message_unref(p->call);
        free(p);
        return NULL;
}

static void arm_pending_timer(VmBus *b) {
        uint64_t first = UINT64_MAX;

        for (BusPending *p = b->pending; p; p = p->next)
                if (p->deadline < first)
                        first = p->deadline;
        if (!b->pending_timer)
                return;
        if (first == UINT64_MAX) {
                (void) sd_event_source_set_enabled(b->pending_timer, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_time(b->pending_timer, first);
        (void) sd_event_source_set_enabled(b->pending_timer, SD_EVENT_ONESHOT);
}

/* Answers every call that is done, failed, or out of time. */
static void answer_pending(VmBus *b, uint64_t now) {
        bool shutdown = machine_get_state(b->machine) == MACHINE_SHUTDOWN;

        for (BusPending **pp = &b->pending; *pp;) {
                BusPending *p = *pp;
                int r;

                if (shutdown)
                        r = sd_bus_reply_method_errorf(p->call, ORRERY_ERROR_UNAVAILABLE, "VM '%s' is shutting down",
                                                       b->name);
                else if (machine_request_done(b->machine, p->ticket))
                        r = sd_bus_reply_method_return(p->call, NULL);
                else if (now >= p->deadline)
                        r = sd_bus_reply_method_errorf(p->call, ORRERY_ERROR_TIMEOUT,
                                                       "VM '%s' did not carry out the request in time", b->name);
                else {
                        pp = &p->next;
                        continue;
                }
                if (r < 0)
                        log_debug_errno(r, "Failed to answer %s: %m", sd_bus_message_get_member(p->call));
                *pp = p->next;
                pending_free(p);
        }
        arm_pending_timer(b);
}

void machine1_answer_pending(VmBus *b) {
        uint64_t now = 0;

        (void) sd_event_now(b->event, CLOCK_MONOTONIC, &now);
        answer_pending(b, now);
}

static int on_pending_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        answer_pending(userdata, usec);
        return 0;
}

static int request(sd_bus_message *m, VmBus *b, MachineRequest req, const char *what, sd_bus_error *error) {
        _cleanup_free_ BusPending *p = NULL;
        BusPeer *peer;
        uint64_t now;
        int r;

        r = bus_check_request(b, m, what, &peer, error);
        if (r < 0)
                return r;
        if (machine_get_state(b->machine) == MACHINE_SHUTDOWN)
                return sd_bus_error_setf(error, ORRERY_ERROR_UNAVAILABLE, "VM '%s' is shutting down", b->name);
        if (peer->n_pending >= BUS_MAX_PENDING_PER_PEER)
                return sd_bus_error_setf(error, ORRERY_ERROR_BUSY,
                                         "%u requests of this caller are still being carried out; try again",
                                         BUS_MAX_PENDING_PER_PEER);

        if (!b->pending_timer) {
                r = sd_event_add_time(b->event, &b->pending_timer, CLOCK_MONOTONIC, UINT64_MAX, 10 * 1000,
                                      on_pending_timer, b);
                if (r < 0)
                        return r;
        }
        r = sd_event_now(b->event, CLOCK_MONOTONIC, &now);
        if (r < 0)
                return r;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->call = sd_bus_message_ref(m);
        p->peer = peer;
        p->deadline = now + PENDING_TIMEOUT_USEC;
        p->ticket = machine_request_ticket(b->machine, req);
        peer->n_pending++;
        p->next = b->pending;
        b->pending = TAKE_PTR(p);
        arm_pending_timer(b);
        /* Answered from answer_pending(). */
        return 1;
}

static int method_pause(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return request(m, userdata, MACHINE_REQUEST_PAUSE, "Pause", error);
}

static int method_resume(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return request(m, userdata, MACHINE_REQUEST_RESUME, "Resume", error);
}

static int method_reset(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return request(m, userdata, MACHINE_REQUEST_RESET, "Reset", error);
}

static int method_power_down(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        int r;

        r = bus_check_request(b, m, "Power-down", NULL, error);
        if (r < 0)
                return r;
        r = machine_power_button(b->machine);
        if (r == -EOPNOTSUPP)
                return sd_bus_error_setf(error, ORRERY_ERROR_NOT_SUPPORTED,
                                         "VM '%s' has no keyboard driver running yet to press the power key on", b->name);
        if (r == -ENOBUFS)
                return sd_bus_error_setf(error, ORRERY_ERROR_BUSY,
                                         "VM '%s' is not reading its keyboard (paused, or input queue full); try again",
                                         b->name);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot press the power key of VM '%s': %m", b->name);
        return sd_bus_reply_method_return(m, NULL);
}

static int method_quit(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        int r;

        r = bus_check_request(b, m, "Stop (Quit)", NULL, error);
        if (r < 0)
                return r;
        r = sd_bus_reply_method_return(m, NULL);
        machine_request(b->machine, MACHINE_REQUEST_QUIT);
        return r;
}

/*
 * Save and SaveAndQuit write the whole state to the caller's fd from the
 * event loop: the VM is paused meanwhile anyway, and the writing is bounded
 * by the RAM the guest touched.
 */
static int save(sd_bus_message *m, VmBus *b, bool quit, sd_bus_error *error) {
        char message[1024] = "";
        bool was_running;
        uint64_t bytes = 0;
        int fd, r;

        r = bus_check_request(b, m, quit ? "SaveAndQuit" : "Save", NULL, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "h", &fd);
        if (r < 0)
                return r;
        if (machine_get_state(b->machine) == MACHINE_SHUTDOWN)
                return sd_bus_error_setf(error, ORRERY_ERROR_UNAVAILABLE, "VM '%s' is shutting down", b->name);

        was_running = machine_get_state(b->machine) == MACHINE_RUNNING;
        if (was_running && machine_request_wait(b->machine, MACHINE_REQUEST_PAUSE, PENDING_TIMEOUT_USEC) < 0)
                return sd_bus_error_setf(error, ORRERY_ERROR_TIMEOUT, "VM '%s' did not pause in time to be saved",
                                         b->name);
        if (machine_get_state(b->machine) != MACHINE_PAUSED)
                return sd_bus_error_setf(error, ORRERY_ERROR_UNAVAILABLE, "VM '%s' is shutting down", b->name);

        r = savevm_write(b->machine, fd, &bytes, message, sizeof(message));
        if (r < 0) {
                if (was_running)
                        (void) machine_request_wait(b->machine, MACHINE_REQUEST_RESUME, PENDING_TIMEOUT_USEC);
                return sd_bus_error_setf(error, r == -EOPNOTSUPP ? ORRERY_ERROR_NOT_SUPPORTED : SD_BUS_ERROR_IO_ERROR,
                                         "Cannot save VM '%s': %s", b->name, message);
        }
        log_info("Saved VM '%s' (%llu MiB)%s", b->name, (unsigned long long) (bytes >> 20), quit ? "; quitting" : "");
        /* Running again before the answer, so that a caller reading State afterwards sees it. */
        if (!quit && was_running)
                (void) machine_request_wait(b->machine, MACHINE_REQUEST_RESUME, PENDING_TIMEOUT_USEC);
        r = sd_bus_reply_method_return(m, NULL);
        if (quit)
                machine_request(b->machine, MACHINE_REQUEST_QUIT);
        return r;
}

static int method_save(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return save(m, userdata, false, error);
}

static int method_save_and_quit(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return save(m, userdata, true, error);
}

void machine1_peer_gone(VmBus *b, BusPeer *peer) {
        /* The calls stay (the CPU thread carries them out); their answers go nowhere. */
        for (BusPending *p = b->pending; p; p = p->next)
                if (p->peer == peer) {
                        p->peer = NULL;
                        peer->n_pending--;
                }
}

void machine1_teardown(VmBus *b) {
        while (b->pending) {
                BusPending *p = b->pending;
                b->pending = p->next;
                (void) sd_bus_reply_method_errorf(p->call, ORRERY_ERROR_UNAVAILABLE, "VM '%s' is shutting down", b->name);
                pending_free(p);
        }
        b->pending_timer = sd_event_source_disable_unref(b->pending_timer);
}

const sd_bus_vtable machine1_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Name", "s", NULL, offsetof(VmBus, name), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("UUID", "s", NULL, offsetof(VmBus, uuid), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", property_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MemoryBytes", "t", NULL, offsetof(VmBus, memory_bytes), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("VCPUs", "u", NULL, offsetof(VmBus, vcpus), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Version", "s", NULL, offsetof(VmBus, version), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_METHOD_WITH_ARGS("Pause", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_pause, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Resume", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_resume, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Reset", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_reset, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("PowerDown", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_power_down,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Quit", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_quit, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Save", SD_BUS_ARGS("h", fd), SD_BUS_NO_RESULT, method_save, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SaveAndQuit", SD_BUS_ARGS("h", fd), SD_BUS_NO_RESULT, method_save_and_quit,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Load", SD_BUS_ARGS("h", fd), SD_BUS_NO_RESULT, machine1_method_load,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_PROPERTY("MigrationState", "s", machine1_property_migration, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MigrationProgress", "(ttt)", machine1_property_migration, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MigrationError", "s", machine1_property_migration, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MigrationDowntimeLimit", "t", machine1_property_migration, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("Migrate", SD_BUS_ARGS("s", uri), SD_BUS_NO_RESULT, machine1_method_migrate,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("MigrateFd", SD_BUS_ARGS("h", fd), SD_BUS_NO_RESULT, machine1_method_migrate_fd,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("MigrateCancel", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, machine1_method_migrate_cancel,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetMigrationDowntimeLimit", SD_BUS_ARGS("t", msec), SD_BUS_NO_RESULT,
                                machine1_method_set_migration_downtime_limit, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END
};

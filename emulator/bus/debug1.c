/* SPDX-License-Identifier: MIT */

/*
 * org.orrery.Debug1 (dbus/org.orrery.Debug1.xml): stop, step and inspect
 * the hart, breakpoints and watchpoints, for one debugging client at a
 * time (the owner). Served only with --debug / "debug = yes": without it
 * every call answers org.orrery.Error.NotSupported.
 *
 * Registers and memory are reached only while the CPU thread is paused
 * (machine_debug_lock), so the hart keeps its single owner. Breakpoints
 * set while the VM runs pause it for the change and resume it.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "cpu/hart.h"
#include "log.h"
#include "macro.h"

#define DEBUG1_MAX_READ (64U * 1024U)
#define PAUSE_TIMEOUT_USEC (2ULL * 1000000ULL)

static const char *const kind_names[] = {
        [HART_DEBUG_EXEC] = "hw", [HART_DEBUG_WRITE] = "write", [HART_DEBUG_READ] = "read",
        [HART_DEBUG_ACCESS] = "access",
};

static int parse_kind(const char *s, HartDebugKind *ret) {
        if (streq(s, "sw") || streq(s, "hw")) {
                *ret = HART_DEBUG_EXEC;
                return 0;
        }
        for (unsigned k = HART_DEBUG_WRITE; k <= HART_DEBUG_ACCESS; k++)
                if (streq(s, kind_names[k])) {
                        *ret = k;
                        return 0;
                }
        return -EINVAL;
}

static void emit_stopped(VmBus *b, const char *reason, uint64_t pc, const char *watch_kind, uint64_t watch_addr) {
        b->debug_stopped = true;
        if (b->bus)
                (void) sd_bus_emit_signal(b->bus, b->path, "org.orrery.Debug1", "Stopped", "stst", reason, pc,
                                          watch_kind, watch_addr);
}

/* The machine changed state: tell the owner why the hart stopped, if it did for us. */
void debug1_machine_changed(VmBus *b) {
        uint32_t reason, kind;
        uint64_t addr, pc;

        if (!machine_debug_take_stop(b->machine, &reason, &kind, &addr, &pc))
                return;
        switch (reason) {
        case HART_STOP_BREAKPOINT:
                emit_stopped(b, "breakpoint", pc, "", 0);
                break;
        case HART_STOP_WATCHPOINT:
                emit_stopped(b, "watchpoint", pc, kind < ELEMENTSOF(kind_names) ? kind_names[kind] : "", addr);
                break;
        default:
                emit_stopped(b, "step", pc, "", 0);
        }
}

/* Refuses callers other than the VM's user, a VM without --debug, and everyone but the owner. */
static int check_debugger(VmBus *b, sd_bus_message *m, sd_bus_error *error) {
        BusPeer *peer;
        int r;

        r = bus_check_caller(b, m, &peer, error);
        if (r < 0)
                return r;
        if (!b->debug_enabled)
                return sd_bus_error_setf(error, ORRERY_ERROR_NOT_SUPPORTED,
                                         "VM '%s' was started without --debug (or debug = yes): debugging is off",
                                         b->name);
        if (machine_get_state(b->machine) == MACHINE_SHUTDOWN)
                return sd_bus_error_setf(error, ORRERY_ERROR_UNAVAILABLE, "VM '%s' is shutting down", b->name);
        if (b->debug_owner && !streq(b->debug_owner, peer->name))
                return sd_bus_error_setf(error, ORRERY_ERROR_BUSY, "VM '%s' is being debugged by %s already",
                                         b->name, b->debug_owner);
        if (!b->debug_owner) {
                b->debug_owner = strdup(peer->name);
                if (!b->debug_owner)
                        return -ENOMEM;
                bus_log_origin(peer, "Debugging");
                peer->debugging = true;
        }
        return 0;
}

/* The hart of a paused VM, held for the debugger: the CPU thread stays out until it is released. */
typedef struct StoppedHart {
        Machine *machine;               /* NULL when not held */
        Hart *hart;
} StoppedHart;

static void stopped_hart_release(StoppedHart *s) {
        if (s->machine)
                machine_debug_unlock(s->machine);
        *s = (StoppedHart) {};
}

/*
 * The prologue of every method that reads or changes the stopped hart:
 * refuses everyone but the debugging client (check_debugger) and a VM that
 * runs. On success the hart is held until stopped_hart_release(), which
 * the caller's _cleanup_ does on every return.
 */
static int stopped_hart_take(VmBus *b, sd_bus_message *m, StoppedHart *ret, sd_bus_error *error) {
        Hart *h;
        int r;

        r = check_debugger(b, m, error);
        if (r < 0)
                return r;
        h = machine_debug_lock(b->machine);
        if (!h)
                return sd_bus_error_setf(error, ORRERY_ERROR_BUSY, "VM '%s' is running: call Stop first", b->name);
        *ret = (StoppedHart) { .machine = b->machine, .hart = h };
        return 0;
}

/*
 * The hart, pausing the VM first if it runs; *ret_resume says whether to
 * resume it after machine_debug_unlock().
 */
static Hart *lock_pausing(VmBus *b, bool *ret_resume) {
        Hart *h = machine_debug_lock(b->machine);

        *ret_resume = false;
        if (h)
                return h;
        if (machine_request_wait(b->machine, MACHINE_REQUEST_PAUSE, PAUSE_TIMEOUT_USEC) < 0)
                return NULL;
        h = machine_debug_lock(b->machine);
        *ret_resume = h != NULL;
        return h;
}

static void unlock_pausing(VmBus *b, bool resume) {
        machine_debug_unlock(b->machine);
        if (resume)
                machine_request(b->machine, MACHINE_REQUEST_RESUME);
}

/* Takes every point away and lets the VM run if the debugger stopped it. */
static void release(VmBus *b) {
        bool resume;
        Hart *h = lock_pausing(b, &resume);

        if (h) {
                hart_debug_clear(h);
                unlock_pausing(b, resume || b->debug_stopped);
        } else
                log_warning("VM '%s': could not stop the CPU to remove the debugger's breakpoints", b->name);
        b->debug_stopped = false;
        b->debug_owner = mfree(b->debug_owner);
}

void debug1_peer_gone(VmBus *b, BusPeer *peer) {
        if (!peer->debugging)
                return;
        peer->debugging = false;
        if (b->debug_owner && streq(b->debug_owner, peer->name)) {
                log_info("VM '%s': debugger %s left the bus; its breakpoints are removed", b->name, peer->name);
                release(b);
        }
}

static int method_detach(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        int r = check_debugger(b, m, error);

        if (r < 0)
                return r;
        release(b);
        return sd_bus_reply_method_return(m, NULL);
}

static int method_stop(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        uint64_t pc = 0;
        Hart *h;
        int r = check_debugger(b, m, error);

        if (r < 0)
                return r;
        if (machine_request_wait(b->machine, MACHINE_REQUEST_PAUSE, PAUSE_TIMEOUT_USEC) < 0)
                return sd_bus_error_setf(error, ORRERY_ERROR_TIMEOUT, "VM '%s' did not stop in time", b->name);
        h = machine_debug_lock(b->machine);
        if (!h)
                return sd_bus_error_setf(error, ORRERY_ERROR_BUSY, "VM '%s' is running: call Stop first", b->name);
        (void) hart_get_reg(h, HART_REG_PC, &pc);
        machine_debug_unlock(b->machine);
        r = sd_bus_reply_method_return(m, NULL);
        emit_stopped(b, "stop", pc, "", 0);
        return r;
}

static int resume(sd_bus_message *m, VmBus *b, bool step, sd_bus_error *error) {
        _cleanup_(stopped_hart_release) StoppedHart s = {};
        int r;

        r = stopped_hart_take(b, m, &s, error);
        if (r < 0)
                return r;
        hart_debug_resume(s.hart);
        hart_debug_step(s.hart, step);
        stopped_hart_release(&s);
        b->debug_stopped = false;
        machine_request(b->machine, MACHINE_REQUEST_RESUME);
        return sd_bus_reply_method_return(m, NULL);
}

static int method_continue(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return resume(m, userdata, false, error);
}

static int method_step(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return resume(m, userdata, true, error);
}

static int method_get_register(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(stopped_hart_release) StoppedHart s = {};
        uint32_t reg;
        uint64_t v;
        int r;

        r = stopped_hart_take(userdata, m, &s, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "u", &reg);
        if (r < 0)
                return r;
        if (hart_get_reg(s.hart, reg, &v) < 0)
                return sd_bus_error_setf(error, ORRERY_ERROR_INVALID_ARGUMENT, "No register number %u", reg);
        return sd_bus_reply_method_return(m, "t", v);
}

static int method_set_register(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(stopped_hart_release) StoppedHart s = {};
        uint32_t reg;
        uint64_t v;
        int r;

        r = stopped_hart_take(userdata, m, &s, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "ut", &reg, &v);
        if (r < 0)
                return r;
        if (hart_set_reg(s.hart, reg, v) < 0)
                return sd_bus_error_setf(error, ORRERY_ERROR_INVALID_ARGUMENT,
                                         "No register number %u, or %#llx is out of its range", reg,
                                         (unsigned long long) v);
        return sd_bus_reply_method_return(m, NULL);
}

/* x0..x31 and pc, as GDB's 'g' packet orders them. */
#define GENERAL_REGISTERS 33

static int method_get_registers(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(stopped_hart_release) StoppedHart s = {};
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        uint64_t v[GENERAL_REGISTERS];
        int r;

        r = stopped_hart_take(userdata, m, &s, error);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < GENERAL_REGISTERS; i++)
                (void) hart_get_reg(s.hart, i, &v[i]);
        stopped_hart_release(&s);

        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = sd_bus_message_append_array(reply, 't', v, sizeof(v));
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_set_registers(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(stopped_hart_release) StoppedHart s = {};
        const void *data;
        size_t size;
        int r;

        r = stopped_hart_take(userdata, m, &s, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read_array(m, 't', &data, &size);
        if (r < 0)
                return r;
        if (size != GENERAL_REGISTERS * sizeof(uint64_t))
                return sd_bus_error_setf(error, ORRERY_ERROR_INVALID_ARGUMENT,
                                         "SetRegisters takes %u values (x0-x31, pc), not %zu", GENERAL_REGISTERS,
                                         size / sizeof(uint64_t));
        for (unsigned i = 1; i < GENERAL_REGISTERS; i++) {
                uint64_t v;
                memcpy(&v, (const uint8_t *) data + i * sizeof(v), sizeof(v));
                (void) hart_set_reg(s.hart, i, v);
        }
        return sd_bus_reply_method_return(m, NULL);
}

/* ReadMemory (address, length, virtual) and WriteMemory (address, data, virtual). */
static int access_memory(sd_bus_message *m, VmBus *b, bool write, sd_bus_error *error) {
        _cleanup_(stopped_hart_release) StoppedHart s = {};
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        const void *data = NULL;
        uint64_t addr;
        uint32_t length = 0;
        size_t len;
        int virtual;
        int r;

        r = stopped_hart_take(b, m, &s, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "t", &addr);
        if (r >= 0)
                r = write ? sd_bus_message_read_array(m, 'y', &data, &len) : sd_bus_message_read(m, "u", &length);
        if (r >= 0)
                r = sd_bus_message_read(m, "b", &virtual);
        if (r < 0)
                return r;
        if (!write)
                len = length;
        if (len > DEBUG1_MAX_READ)
                return sd_bus_error_setf(error, ORRERY_ERROR_INVALID_ARGUMENT, "%s %s at most %u bytes",
                                         write ? "WriteMemory" : "ReadMemory", write ? "writes" : "reads",
                                         DEBUG1_MAX_READ);
        if (write)
                r = hart_debug_write_memory(s.hart, addr, data, len, virtual);
        else {
                buf = malloc(MAX(len, (size_t) 1));
                if (!buf)
                        return -ENOMEM;
                r = hart_debug_read_memory(s.hart, addr, buf, len, virtual);
        }
        stopped_hart_release(&s);
        if (r < 0)
                return sd_bus_error_setf(error, ORRERY_ERROR_INVALID_ARGUMENT,
                                         "Cannot %s %zu bytes at %s address %#llx: not mapped to RAM",
                                         write ? "write" : "read", len, virtual ? "virtual" : "physical",
                                         (unsigned long long) addr);
        if (write)
                return sd_bus_reply_method_return(m, NULL);
        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = sd_bus_message_append_array(reply, 'y', buf, len);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_read_memory(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return access_memory(m, userdata, false, error);
}

static int method_write_memory(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return access_memory(m, userdata, true, error);
}

static int change_point(sd_bus_message *m, VmBus *b, bool add, sd_bus_error *error) {
        const char *kind_name;
        HartDebugKind kind;
        uint64_t addr;
        uint32_t len;
        bool resume_after;
        Hart *h;
        int r = check_debugger(b, m, error);

        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "stu", &kind_name, &addr, &len);
        if (r < 0)
                return r;
        if (parse_kind(kind_name, &kind) < 0)
                return sd_bus_error_setf(error, ORRERY_ERROR_INVALID_ARGUMENT,
                                         "Unknown breakpoint kind '%s' (sw, hw, write, read or access)", kind_name);
        h = lock_pausing(b, &resume_after);
        if (!h)
                return sd_bus_error_setf(error, ORRERY_ERROR_TIMEOUT, "VM '%s' did not stop in time", b->name);
        r = add ? hart_debug_add(h, kind, addr, len) : hart_debug_remove(h, kind, addr, len);
        unlock_pausing(b, resume_after);
        switch (r) {
        case 0:
                return sd_bus_reply_method_return(m, NULL);
        case -EEXIST:
                return sd_bus_error_setf(error, ORRERY_ERROR_INVALID_ARGUMENT, "A %s point at %#llx is set already",
                                         kind_name, (unsigned long long) addr);
        case -ENOSPC:
                return sd_bus_error_setf(error, ORRERY_ERROR_BUSY, "At most %u breakpoints and watchpoints",
                                         HART_MAX_DEBUG_POINTS);
        case -ENOENT:
                return sd_bus_error_setf(error, ORRERY_ERROR_INVALID_ARGUMENT, "No %s point at %#llx", kind_name,
                                         (unsigned long long) addr);
        default:
                return sd_bus_error_setf(error, ORRERY_ERROR_INVALID_ARGUMENT,
                                         "A watchpoint covers 1 to %u bytes, not %u", HART_MAX_WATCH_LEN, len);
        }
}

static int method_add_breakpoint(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return change_point(m, userdata, true, error);
}

static int method_remove_breakpoint(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return change_point(m, userdata, false, error);
}

static int property_enabled(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        return sd_bus_message_append(reply, "b", (int) b->debug_enabled);
}

static int property_owner(sd_bus *bus, const char *path, const char *interface, const char *property,
                          sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        return sd_bus_message_append(reply, "s", b->debug_owner ? b->debug_owner : "");
}

void debug1_teardown(VmBus *b) {
        b->debug_owner = mfree(b->debug_owner);
}

const sd_bus_vtable debug1_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Enabled", "b", property_enabled, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Owner", "s", property_owner, 0, 0),
        SD_BUS_METHOD_WITH_ARGS("Stop", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_stop, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Continue", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_continue,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Step", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_step, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Detach", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_detach, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetRegisters", SD_BUS_NO_ARGS, SD_BUS_RESULT("at", registers),
                                method_get_registers, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetRegisters", SD_BUS_ARGS("at", registers), SD_BUS_NO_RESULT,
                                method_set_registers, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetRegister", SD_BUS_ARGS("u", number), SD_BUS_RESULT("t", value),
                                method_get_register, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetRegister", SD_BUS_ARGS("u", number, "t", value), SD_BUS_NO_RESULT,
                                method_set_register, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ReadMemory", SD_BUS_ARGS("t", address, "u", length, "b", virtual),
                                SD_BUS_RESULT("ay", data), method_read_memory, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("WriteMemory", SD_BUS_ARGS("t", address, "ay", data, "b", virtual),
                                SD_BUS_NO_RESULT, method_write_memory, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("AddBreakpoint", SD_BUS_ARGS("s", kind, "t", address, "u", length),
                                SD_BUS_NO_RESULT, method_add_breakpoint, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RemoveBreakpoint", SD_BUS_ARGS("s", kind, "t", address, "u", length),
                                SD_BUS_NO_RESULT, method_remove_breakpoint, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("Stopped", SD_BUS_ARGS("s", reason, "t", pc, "s", watch_kind, "t", watch_address), 0),
        SD_BUS_VTABLE_END
};

/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bus-backend.h"
#include "log.h"
#include "orrery-contract.h"
#include "macro.h"
#include "vm-name.h"

#define DEBUG1 "org.orrery.Debug1"

struct BusBackend {
        sd_bus *bus;
        char *service, *path;
        sd_bus_slot *match;
        BusBackendStopped stopped;
        void *userdata;
};

static int on_stopped(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        BusBackend *b = userdata;
        const char *reason, *kind;
        uint64_t pc, addr;

        if (sd_bus_message_read(m, "stst", &reason, &pc, &kind, &addr) < 0)
                return 0;
        log_debug("VM stopped: %s at %#llx", reason, (unsigned long long) pc);
        b->stopped(b->userdata, reason, kind, addr);
        return 0;
}

int bus_backend_new(sd_bus *bus, const char *vm_name, BusBackendStopped stopped, void *userdata, BusBackend **ret) {
        BusBackend *b = calloc(1, sizeof(*b));
        int r;

        if (!b)
                return -ENOMEM;
        b->bus = sd_bus_ref(bus);
        b->stopped = stopped;
        b->userdata = userdata;
        r = vm_name_to_bus(vm_name, &b->service, &b->path);
        if (r >= 0)
                r = sd_bus_match_signal(bus, &b->match, b->service, b->path, DEBUG1, "Stopped", on_stopped, b);
        if (r < 0) {
                bus_backend_free(b);
                return r;
        }
        *ret = b;
        return 0;
}

BusBackend *bus_backend_free(BusBackend *b) {
        if (!b)
                return NULL;
        sd_bus_slot_unref(b->match);
        sd_bus_unref(b->bus);
        free(b->service);
        free(b->path);
        free(b);
        return NULL;
}

/* Calls a Debug1 method; -errno of the bus error, logged at debug level. */
static int call(BusBackend *b, const char *method, sd_bus_message **ret_reply, const char *types, ...) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        va_list ap;
        int r;

        r = sd_bus_message_new_method_call(b->bus, &m, b->service, b->path, DEBUG1, method);
        if (r < 0)
                return r;
        if (types) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
                if (r < 0)
                        return r;
        }
        r = sd_bus_call(b->bus, m, 0, &error, ret_reply);
        if (r < 0)
                log_debug("Debug1.%s: %s", method, error.message ? error.message : strerror(-r));
        sd_bus_error_free(&error);
        return r;
}

int bus_backend_check(BusBackend *b, sd_bus_error *error) {
        int enabled = 0, r;

        r = sd_bus_get_property_trivial(b->bus, b->service, b->path, DEBUG1, "Enabled", error, 'b', &enabled);
        if (r < 0)
                return r;
        if (!enabled) {
                sd_bus_error_set(error, ORRERY_ERROR_NOT_SUPPORTED,
                                 "the VM was started without --debug (or debug = yes): debugging is off");
                return -EOPNOTSUPP;
        }
        return 0;
}

int bus_backend_attach(BusBackend *b, sd_bus_error *error) {
        return sd_bus_call_method(b->bus, b->service, b->path, DEBUG1, "Stop", error, NULL, NULL);
}

static int backend_stop(void *userdata) {
        return call(userdata, "Stop", NULL, NULL);
}

static int backend_resume(void *userdata, bool step) {
        return call(userdata, step ? "Step" : "Continue", NULL, NULL);
}

static int backend_detach(void *userdata) {
        return call(userdata, "Detach", NULL, NULL);
}

static int backend_get_registers(void *userdata, uint64_t regs[33]) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const void *data;
        size_t size;
        int r;

        r = call(userdata, "GetRegisters", &reply, NULL);
        if (r < 0)
                return r;
        r = sd_bus_message_read_array(reply, 't', &data, &size);
        if (r < 0)
                return r;
        if (size != 33 * sizeof(uint64_t))
                return -EBADMSG;
        memcpy(regs, data, size);
        return 0;
}

static int backend_set_registers(void *userdata, const uint64_t regs[33]) {
        BusBackend *b = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_method_call(b->bus, &m, b->service, b->path, DEBUG1, "SetRegisters");
        if (r >= 0)
                r = sd_bus_message_append_array(m, 't', regs, 33 * sizeof(uint64_t));
        if (r >= 0)
                r = sd_bus_call(b->bus, m, 0, NULL, NULL);
        return r;
}

static int backend_get_register(void *userdata, uint32_t number, uint64_t *ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = call(userdata, "GetRegister", &reply, "u", number);
        if (r < 0)
                return r;
        return sd_bus_message_read(reply, "t", ret);
}

static int backend_set_register(void *userdata, uint32_t number, uint64_t value) {
        return call(userdata, "SetRegister", NULL, "ut", number, value);
}

static int backend_read_memory(void *userdata, uint64_t addr, void *buf, size_t len) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const void *data;
        size_t size;
        int r;

        r = call(userdata, "ReadMemory", &reply, "tub", addr, (uint32_t) len, 1);
        if (r < 0)
                return r;
        r = sd_bus_message_read_array(reply, 'y', &data, &size);
        if (r < 0)
                return r;
        if (size != len)
                return -EBADMSG;
        memcpy(buf, data, len);
        return 0;
}

static int backend_write_memory(void *userdata, uint64_t addr, const void *buf, size_t len) {
        BusBackend *b = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_method_call(b->bus, &m, b->service, b->path, DEBUG1, "WriteMemory");
        if (r >= 0)
                r = sd_bus_message_append(m, "t", addr);
        if (r >= 0)
                r = sd_bus_message_append_array(m, 'y', buf, len);
        if (r >= 0)
                r = sd_bus_message_append(m, "b", 1);
        if (r >= 0)
                r = sd_bus_call(b->bus, m, 0, NULL, NULL);
        return r;
}

static int backend_breakpoint(void *userdata, bool add, const char *kind, uint64_t addr, uint32_t len) {
        return call(userdata, add ? "AddBreakpoint" : "RemoveBreakpoint", NULL, "stu", kind, addr, len);
}

const SessionBackend bus_session_backend = {
        .stop = backend_stop,
        .resume = backend_resume,
        .detach = backend_detach,
        .get_registers = backend_get_registers,
        .set_registers = backend_set_registers,
        .get_register = backend_get_register,
        .set_register = backend_set_register,
        .read_memory = backend_read_memory,
        .write_memory = backend_write_memory,
        .breakpoint = backend_breakpoint,
};

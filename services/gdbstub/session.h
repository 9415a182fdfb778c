/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * One debugger's session: answers the packets rsp.h frames, on a backend
 * that reaches the VM (org.orrery.Debug1 in bus-backend.c; a fake in the
 * tests and the fuzz target). Knows nothing of sockets or the bus.
 *
 * Packets handled: qSupported, qXfer:features:read, QStartNoAckMode,
 * qAttached, qC, qfThreadInfo/qsThreadInfo, H, T, ?, g/G, p/P, m/M, X,
 * Z0-Z4/z0-z4, c, s, vCont?, vCont, D, k; anything else gets the empty
 * reply ("not supported"). Bad arguments get "E" replies.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rsp.h"

typedef struct SessionBackend {
        int (*stop)(void *userdata);                    /* asynchronous: a stop event follows */
        int (*resume)(void *userdata, bool step);       /* asynchronous: a stop event follows */
        int (*detach)(void *userdata);
        int (*get_registers)(void *userdata, uint64_t regs[33]);
        int (*set_registers)(void *userdata, const uint64_t regs[33]);
        int (*get_register)(void *userdata, uint32_t number, uint64_t *ret);
        int (*set_register)(void *userdata, uint32_t number, uint64_t value);
        int (*read_memory)(void *userdata, uint64_t addr, void *buf, size_t len);
        int (*write_memory)(void *userdata, uint64_t addr, const void *buf, size_t len);
        int (*breakpoint)(void *userdata, bool add, const char *kind, uint64_t addr, uint32_t len);
} SessionBackend;

/* Writes framed bytes to the debugger. */
typedef void (*SessionSend)(void *userdata, const char *data, size_t len);

typedef enum SessionResult {
        SESSION_CONTINUE,
        SESSION_CLOSE,          /* detach or kill: close the connection */
} SessionResult;

typedef struct Session {
        const SessionBackend *backend;
        void *backend_data;
        SessionSend send;
        void *send_data;
        RspParser parser;
        bool no_ack;
        bool running;           /* resumed; the next stop event gets a stop reply */
        char last_stop[64];     /* the stop reply for '?' */
        char out[2 * RSP_MAX_PAYLOAD + 8];
        char reply[RSP_MAX_PAYLOAD + 1];
} Session;

void session_init(Session *s, const SessionBackend *backend, void *backend_data, SessionSend send, void *send_data);

/* Bytes from the debugger. */
SessionResult session_input(Session *s, const uint8_t *data, size_t size);

/* The VM stopped: reason "breakpoint", "watchpoint", "step" or "stop"; watch_kind for watchpoints. */
void session_stopped(Session *s, const char *reason, const char *watch_kind, uint64_t watch_addr);

/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: what a debugger sends orrery-gdbstub (GDB remote
 * protocol bytes: packets, escapes, acks, interrupts), through the packet
 * parser and the session, on a fake VM. Stop events are interleaved so
 * the running/stopped paths are both reached. Any crash, hang or
 * sanitizer report is a bug.
 */

#include <stddef.h>
#include <stdint.h>

#include "../gdbstub/fake-backend.h"
#include "session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void discard(void *userdata, const char *data, size_t len) {
        (void) userdata;
        (void) data;
        (void) len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static FakeVm vm;
        static Session s;

        session_init(&s, &fake_backend, &vm, discard, NULL);
        /* Feed in pieces cut at every '\n' so that split packets are exercised too. */
        while (size > 0) {
                size_t n = 1;
                while (n < size && data[n - 1] != '\n')
                        n++;
                if (session_input(&s, data, n) == SESSION_CLOSE)
                        session_init(&s, &fake_backend, &vm, discard, NULL);
                if (data[0] & 1)
                        session_stopped(&s, data[0] & 2 ? "watchpoint" : "breakpoint", data[0] & 4 ? "read" : "write",
                                        0x80000000);
                data += n;
                size -= n;
        }
        return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * The machine saves and loads the hart and every device of its table, by
 * walking the table: save -> load into a second machine -> save gives the
 * same bytes; sections out of order, short or corrupt are refused. The
 * machines are only described (no kernel), which needs no guest image.
 */

#include <errno.h>
#include <string.h>

#include "machine/machine.h"
#include "macro.h"
#include "tap.h"

static Machine *described(void) {
        MachineConfig c = { .name = "state", .memory = 16ULL << 20 };
        Machine *m = NULL;

        CHECK_EQ_U64(machine_new(&c, NULL, &m), 0, "a machine without a kernel is created");
        return m;
}

static size_t count(const StateWriter *w, const char *needle) {
        size_t n = 0, len = strlen(needle);

        for (size_t i = 0; i + len <= w->size; i++)
                if (memcmp(w->data + i, needle, len) == 0)
                        n++;
        return n;
}

int main(void) {
        Machine *a = described(), *b = described();
        StateWriter w1 = {}, w2 = {}, w3 = {};
        StateReader r;

        if (!a || !b)
                return tap_finish();
        CHECK_EQ_U64(machine_start(a), (uint64_t) -ENOEXEC, "a described machine does not start");
        CHECK_EQ_U64(machine_pointer_abs(a, 10, 20), 0, "host input reaches a device before the save");

        CHECK_EQ_U64(machine_save_state(a, &w1), 0, "save");
        CHECK(count(&w1, "hart") == 1 && count(&w1, "plic") == 1 && count(&w1, "uart16550") == 1 &&
              count(&w1, "goldfish-rtc") == 1 && count(&w1, "sifive-test") == 1 && count(&w1, "clint") == 1,
              "one section for the hart and each fixed device");
        CHECK_EQ_U64(count(&w1, "virtio-mmio"), 8, "one section per virtio slot");

        r = state_reader(w1.data, w1.size);
        CHECK_EQ_U64(machine_load_state(b, &r), 0, "load into a second machine");
        CHECK_EQ_U64(machine_save_state(b, &w2), 0, "save the second machine");
        CHECK(w1.size == w2.size && memcmp(w1.data, w2.data, w1.size) == 0, "the same state back (%zu bytes)",
              w1.size);

        r = state_reader(w1.data, w1.size - 1);
        CHECK(machine_load_state(b, &r) < 0, "a short state is refused");

        /* Rename the PLIC's section: sections must come in the table's order. */
        state_put_bytes(&w3, w1.data, w1.size);
        for (size_t i = 0; i + 4 <= w3.size; i++)
                if (memcmp(w3.data + i, "plic", 4) == 0) {
                        w3.data[i] = 'q';
                        break;
                }
        r = state_reader(w3.data, w3.size);
        CHECK_EQ_U64(machine_load_state(b, &r), (uint64_t) -EBADMSG, "a section out of place is refused");

        /* A state with trailing bytes is refused. */
        state_writer_done(&w3);
        state_put_bytes(&w3, w1.data, w1.size);
        state_put_u8(&w3, 0);
        r = state_reader(w3.data, w3.size);
        CHECK_EQ_U64(machine_load_state(b, &r), (uint64_t) -EBADMSG, "trailing bytes are refused");

        state_writer_done(&w1);
        state_writer_done(&w2);
        state_writer_done(&w3);
        machine_free(a);
        machine_free(b);
        return tap_finish();
}

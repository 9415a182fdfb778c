/* SPDX-License-Identifier: MIT */

/*
 * Fuzz target for the saved-state loader (migration/savevm.h): a stream
 * from anywhere, loaded into a described 16 MiB machine (no kernel), the
 * configuration the seed corpus was saved from (make-corpus-savevm.c).
 * Each input is loaded twice: as it is, which the checksum mostly stops,
 * and with its trailer made valid, so that the header, the device
 * sections and the RAM runs behind the checksum get fuzzed too.
 * Checked: nothing crashes, ASan sees no access outside what was given,
 * and a refused load leaves the machine's device state as it was.
 * libFuzzer entry point; fuzz-driver.c replays it without libFuzzer.
 */

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "migration/savevm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TRAILER 12      /* end magic and CRC-32 */

/*
 * The loader's CRC-32 (reflected, polynomial 0xEDB88320), one table lookup
 * per byte: the bit loop, under coverage tracing, took a quarter of each
 * input's time.
 */
static uint32_t crc32(const uint8_t *p, size_t n) {
        static uint32_t table[256];
        uint32_t crc = 0xFFFFFFFFu;

        if (!table[1])
                for (uint32_t i = 0; i < 256; i++) {
                        uint32_t c = i;

                        for (unsigned k = 0; k < 8; k++)
                                c = (c >> 1) ^ (c & 1 ? 0xEDB88320u : 0);
                        table[i] = c;
                }
        for (size_t i = 0; i < n; i++)
                crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
        return crc ^ 0xFFFFFFFFu;
}

static Machine *machine(void) {
        /* One machine for the whole run: creating one per input would dominate the time. */
        static Machine *m;
        MachineConfig c = { .name = "fuzz", .memory = 16ULL << 20 };

        if (!m && machine_new(&c, NULL, &m) < 0)
                abort();
        return m;
}

/*
 * The machine's device state as saved before a load. A refused load must
 * leave it so, and then the same snapshot serves the next load: it is taken
 * again only after a load that was accepted.
 */
static StateWriter before;
static bool before_valid;

static void load(Machine *m, const uint8_t *data, size_t size) {
        StateWriter after = {};
        char error[512];
        int r;

        if (!before_valid) {
                state_writer_done(&before);
                (void) machine_save_state(m, &before);
                before_valid = true;
        }
        r = savevm_load(m, data, size, false, error, sizeof(error));
        if (r < 0) {
                (void) machine_save_state(m, &after);
                assert(before.size == after.size && memcmp(before.data, after.data, before.size) == 0);
                assert(memchr(error, 0, sizeof(error)) && error[0]);
        } else
                before_valid = false;
        state_writer_done(&after);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Machine *m = machine();
        uint8_t *copy;
        uint32_t crc;

        load(m, data, size);
        if (size < TRAILER)
                return 0;
        copy = malloc(size);
        if (!copy)
                return 0;
        memcpy(copy, data, size);
        memcpy(copy + size - TRAILER, "ORRERYND", 8);
        crc = crc32(copy, size - TRAILER);
        for (unsigned i = 0; i < 4; i++)
                copy[size - 4 + i] = (uint8_t) (crc >> (8 * i));
        load(m, copy, size);
        free(copy);
        return 0;
}

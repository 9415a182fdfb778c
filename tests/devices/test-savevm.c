/* SPDX-License-Identifier: MIT */
/*
 * The saved-state stream (migration/savevm.h) between two described
 * machines (no kernel, no guest image needed): what one saves, the other
 * loads, RAM, devices and guest time included; a damaged stream, another
 * configuration and a device state a device refuses are turned down with
 * the machine left exactly as it was.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "migration/savevm.h"
#include "migration/savevm-internal.h"
#include "macro.h"
#include "tap.h"

static Machine *described(uint64_t memory) {
        MachineConfig c = { .name = "savevm", .memory = memory };
        Machine *m = NULL;

        CHECK_EQ_U64(machine_new(&c, NULL, &m), 0, "a machine without a kernel is created");
        return m;
}

/*
 * Everything of a machine the stream carries, to compare before and after:
 * devices and guest time as bytes, and a copy of RAM in 'ram_copy' (when
 * not NULL, and then compared rather than taken).
 */
static void snapshot(Machine *m, StateWriter *w) {
        *w = (StateWriter) {};
        (void) machine_save_state(m, w);
        state_put_u64(w, machine_guest_ticks(m));
}

static bool same(const StateWriter *a, const StateWriter *b) {
        return a->size == b->size && memcmp(a->data, b->data, a->size) == 0;
}

/*
 * RAM where the test writes and where the stream carries data (the first
 * RAM_WINDOW bytes and the last page): reading all of it after every load
 * would fault in every page the load just gave back.
 */
#define RAM_WINDOW (512u * 1024u)

static uint8_t *ram_copy(Machine *m) {
        uint64_t size;
        const uint8_t *ram = machine_ram(m, &size);
        uint8_t *c = malloc(RAM_WINDOW + 4096);

        if (c) {
                memcpy(c, ram, RAM_WINDOW);
                memcpy(c + RAM_WINDOW, ram + size - 4096, 4096);
        }
        return c;
}

static bool ram_same(Machine *m, const uint8_t *copy) {
        uint64_t size;
        const uint8_t *ram = machine_ram(m, &size);

        return copy && memcmp(ram, copy, RAM_WINDOW) == 0 && memcmp(ram + size - 4096, copy + RAM_WINDOW, 4096) == 0;
}

/* Saves m into a memfd and reads it back the way --restore fd:N does. */
static int save_to_blob(Machine *m, SavevmBlob *ret) {
        char error[512] = "", source[32];
        int fd = memfd_create("savevm-test", MFD_CLOEXEC);
        uint64_t bytes = 0;

        if (fd < 0)
                return -errno;
        if (savevm_write(m, fd, &bytes, error, sizeof(error)) < 0) {
                printf("# save: %s\n", error);
                close(fd);
                return -EIO;
        }
        snprintf(source, sizeof(source), "fd:%d", fd);
        return savevm_blob_read(source, savevm_size_bound(machine_memory_bytes(m)), ret, error, sizeof(error));
}

/* A private copy of a stream, with its checksum made right again after a change. */
static uint8_t *copy_resealed(const SavevmBlob *b, size_t at, uint8_t value) {
        uint8_t *c = malloc(b->size);
        uint32_t crc = 0xFFFFFFFFu;

        memcpy(c, b->data, b->size);
        c[at] = value;
        for (size_t i = 0; i < b->size - 4 - 8; i++) {
                crc ^= c[i];
                for (unsigned k = 0; k < 8; k++)
                        crc = (crc >> 1) ^ (crc & 1 ? 0xEDB88320u : 0);
        }
        crc ^= 0xFFFFFFFFu;
        for (unsigned i = 0; i < 4; i++)
                c[b->size - 4 + i] = (uint8_t) (crc >> (8 * i));
        return c;
}

static uint64_t le64(const uint8_t *p) {
        uint64_t v = 0;
        for (unsigned i = 0; i < 8; i++)
                v |= (uint64_t) p[i] << (8 * i);
        return v;
}

/* A guest that wrote here and there, with a pointer moved and time gone by, saved and loaded into b. */
static void check_round_trip(Machine *a, Machine *b, SavevmBlob *blob) {
        StateWriter wa = {}, wb = {};
        char error[200];
        uint64_t size;
        uint8_t *ram;

        ram = machine_ram(a, &size);
        memset(ram + 4096 * 3, 0xA5, 4096 * 2);
        ram[size - 1] = 7;
        memcpy(ram + 12345, "counter=41", 10);
        CHECK_EQ_U64(machine_pointer_abs(a, 10, 20), 0, "host input reaches a device before the save");
        CHECK_EQ_U64(machine_set_guest_ticks(a, 987654321), 0, "guest time set");
        /* b's RAM has other contents that the zero runs must clear. */
        memset(machine_ram(b, &size) + 4096 * 100, 0x5A, 4096);

        CHECK_EQ_U64(save_to_blob(a, blob), 0, "save to an fd, read back from fd:N");
        CHECK(blob->size < 64 * 1024, "only the touched pages travel (%zu bytes for 16 MiB)", blob->size);

        CHECK_EQ_U64(savevm_load(b, blob->data, blob->size, false, error, sizeof(error)), 0, "load into a second machine");
        snapshot(a, &wa);
        snapshot(b, &wb);
        CHECK(same(&wa, &wb), "devices and guest time are the same after the load");
        uint8_t *ram_a = ram_copy(a);
        CHECK(ram_same(b, ram_a), "RAM is the same after the load, the other machine's old pages cleared");
        free(ram_a);
        CHECK_EQ_U64(machine_guest_ticks(b), 987654321, "guest time continues from the save");
        state_writer_done(&wa);
        state_writer_done(&wb);
}

/* Another configuration: one line that names the difference, and the machine unchanged. */
static void check_other_configuration(Machine *other, const SavevmBlob *blob) {
        StateWriter before = {}, after = {};
        char error[200];

        snapshot(other, &before);
        uint8_t *ram_before = ram_copy(other);
        CHECK_EQ_U64(savevm_load(other, blob->data, blob->size, false, error, sizeof(error)), (uint64_t) -EMEDIUMTYPE,
                     "another memory size is refused");
        CHECK(strstr(error, "memory size differs") && strstr(error, "16 MiB") && strstr(error, "32 MiB") &&
              !strchr(error, '\n'), "the refusal names it: %s", error);
        snapshot(other, &after);
        CHECK(same(&before, &after) && ram_same(other, ram_before), "the refused machine is unchanged");
        free(ram_before);
        state_writer_done(&before);
        state_writer_done(&after);
}

/* Damage anywhere: truncation and flipped bits are caught by the trailer. */
static void check_damaged_streams(Machine *b, const SavevmBlob *blob) {
        StateWriter before = {}, after = {};
        char error[200];

        snapshot(b, &before);
        uint8_t *ram_before = ram_copy(b);
        unsigned refused = 0, tried = 0;
        for (size_t cut = 0; cut < blob->size; cut += 1 + cut / 4) {
                tried++;
                refused += savevm_load(b, blob->data, cut, false, error, sizeof(error)) == -EBADMSG;
        }
        CHECK_EQ_U64(refused, tried, "every truncated stream is refused as damaged");
        refused = tried = 0;
        for (size_t at = 0; at < blob->size; at += 1 + at / 8) {
                uint8_t *c = malloc(blob->size);
                memcpy(c, blob->data, blob->size);
                c[at] ^= 0x10;
                tried++;
                refused += savevm_load(b, c, blob->size, false, error, sizeof(error)) < 0;
                free(c);
        }
        CHECK_EQ_U64(refused, tried, "every flipped bit is refused");
        snapshot(b, &after);
        CHECK(same(&before, &after) && ram_same(b, ram_before), "after all those refusals the machine is unchanged");
        state_writer_done(&after);
        state_writer_done(&before);
        free(ram_before);
}

/*
 * A hostile stream with a valid checksum: each byte of the device state
 * set to 0xff in turn. Whatever the devices refuse, partway through the
 * table or not, leaves the machine as it was. Then a RAM run that claims
 * more pages than the machine has.
 */
static void check_hostile_streams(Machine *b, const SavevmBlob *blob) {
        StateWriter before = {}, after = {};
        char error[200];

        snapshot(b, &before);
        uint8_t *ram_before = ram_copy(b);
        size_t header_at = 8 + 8, state_at = header_at + 8 + le64(blob->data + header_at) + 8;
        size_t state_size = le64(blob->data + state_at - 8);
        bool unchanged = true;
        unsigned refused = 0;
        for (size_t i = 0; i < state_size; i++) {
                uint8_t *c = copy_resealed(blob, state_at + i, 0xff);
                if (savevm_load(b, c, blob->size, false, error, sizeof(error)) < 0) {
                        refused++;
                        snapshot(b, &after);
                        unchanged = unchanged && same(&before, &after) && ram_same(b, ram_before);
                        state_writer_done(&after);
                } else {
                        /* Accepted (a value 0xff may take): the new baseline. */
                        state_writer_done(&before);
                        snapshot(b, &before);
                        if (!ram_same(b, ram_before)) {
                                free(ram_before);
                                ram_before = ram_copy(b);
                        }
                }
                free(c);
        }
        CHECK(refused > state_size / 4, "hostile device state is refused (%u of %zu bytes)", refused, state_size);
        CHECK(unchanged, "every refused device state left the machine as it was");
        state_writer_done(&before);
        free(ram_before);

        size_t ram_at = state_at + state_size;
        uint8_t *c = copy_resealed(blob, ram_at + 1 + 7, 0x7f);
        CHECK_EQ_U64(savevm_load(b, c, blob->size, false, error, sizeof(error)), (uint64_t) -EBADMSG,
                     "a RAM run past the end is refused: %s", error);
        free(c);
}

/* The stream's checksum, bit by bit: what the table-driven one must equal. */
static uint32_t crc32_bitwise(const uint8_t *p, size_t n) {
        uint32_t v = 0xFFFFFFFFu;

        for (size_t i = 0; i < n; i++) {
                v ^= p[i];
                for (unsigned k = 0; k < 8; k++)
                        v = (v >> 1) ^ (v & 1 ? 0xEDB88320u : 0);
        }
        return v ^ 0xFFFFFFFFu;
}

static void check_crc32(void) {
        static const char check[] = "123456789";
        uint8_t data[4099];
        Crc32 c;
        size_t at = 0;

        crc32_init(&c);
        crc32_update(&c, (const uint8_t *) check, strlen(check));
        CHECK_EQ_U64(crc32_final(&c), 0xCBF43926u, "CRC-32 of \"123456789\" is the standard check value");

        for (size_t i = 0; i < sizeof(data); i++)
                data[i] = (uint8_t) (i * 131u + (i >> 7));
        /* Pieces of every length from 1 up, so that each starts at another offset and leaves another tail. */
        crc32_init(&c);
        for (size_t piece = 1; at < sizeof(data); piece++) {
                size_t k = MIN(piece, sizeof(data) - at);
                crc32_update(&c, data + at, k);
                at += k;
        }
        CHECK_EQ_U64(crc32_final(&c), crc32_bitwise(data, sizeof(data)),
                     "CRC-32 fed in uneven pieces equals the bit-by-bit CRC of the whole");
}

int main(void) {
        Machine *a = described(16ULL << 20), *b = described(16ULL << 20), *other = described(32ULL << 20);
        SavevmBlob blob = {};
        uint64_t size;

        check_crc32();
        if (!a || !b || !other)
                return tap_finish();

        check_round_trip(a, b, &blob);
        check_other_configuration(other, &blob);

        /* From here on b differs from the stream (pointer, time, RAM), so that a load that stopped halfway would show. */
        CHECK_EQ_U64(machine_pointer_abs(b, 100, 200), 0, "the second machine's pointer moves");
        CHECK_EQ_U64(machine_set_guest_ticks(b, 5), 0, "the second machine's time set");
        memset(machine_ram(b, &size) + 4096 * 3, 0x11, 4096);

        check_damaged_streams(b, &blob);
        check_hostile_streams(b, &blob);

        savevm_blob_done(&blob);
        machine_free(a);
        machine_free(b);
        machine_free(other);
        return tap_finish();
}

/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The saved-state stream: a whole machine (configuration, hart, devices,
 * RAM, guest time) as one versioned byte stream, for Machine1.Save and
 * orrery-vm --restore.
 *
 * Layout (little-endian):
 *   "ORRERYVM" u32 version u32 flags(0)
 *   u64 n + header: memory, display, guest time, and each disk (id, path,
 *                   size, mtime) and NIC (id)
 *   u64 n + machine_save_state(): a section per hart and per device
 *   RAM, page by page from the start, as runs that cover it exactly:
 *     u8 1, u64 count                      count zero pages
 *     u8 2, u64 count, count * 4096 bytes   count pages as they are
 *     u8 0                                  end of RAM
 *   "ORRERYND" u32 CRC-32 (IEEE) of every byte before it
 *
 * Loading is all or nothing: the checksum, the header against the running
 * configuration and the whole RAM layout are checked before anything of
 * the machine changes, device state that a device refuses is rolled back,
 * and only then is RAM written. The stream is hostile input.
 *
 * Both run on the event-loop thread with the CPU thread paused or not
 * started.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "machine/machine.h"

#define SAVEVM_VERSION 1
#define SAVEVM_PAGE_SIZE 4096u

/*
 * Writes the machine's state to fd (any fd: file, pipe, socket), after
 * waiting for the disks' requests in flight. Returns 0, or a negative
 * errno with one line for a person in 'error'.
 */
int savevm_write(Machine *m, int fd, uint64_t *ret_bytes, char *error, size_t error_size);

/*
 * Checks a whole stream against the machine and loads it. 'force' accepts
 * disk images whose modification time changed since the save (the size
 * must still match). Returns 0, -EBADMSG for a damaged or malformed stream,
 * -EMEDIUMTYPE for a configuration that differs (memory, display, disks,
 * NICs), -ESTALE for a changed image, or the error a device gave; with a
 * line naming the problem in 'error'. On error the machine is unchanged.
 */
int savevm_load(Machine *m, const uint8_t *data, size_t size, bool force, char *error, size_t error_size);

/*
 * Reads a whole stream: "fd:N" or a file name. A regular file is mapped,
 * anything else read up to 'limit' bytes. Free with savevm_blob_done().
 */
typedef struct SavevmBlob {
        uint8_t *data;
        size_t size;
        bool mapped;
} SavevmBlob;

int savevm_blob_read(const char *source, uint64_t limit, SavevmBlob *ret, char *error, size_t error_size);
void savevm_blob_done(SavevmBlob *b);

/* The largest stream a machine with this much RAM can need (for savevm_blob_read()'s limit). */
uint64_t savevm_size_bound(uint64_t memory);

/*
 * The id of the first drive with snapshot=on, or NULL. Its overlay lives
 * only in this process and is in no stream: such a VM cannot be saved,
 * loaded into or migrated (either way).
 */
const char *savevm_snapshot_drive(Machine *m);

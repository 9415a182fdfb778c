/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * What the saved-state stream (savevm.c) shares with live migration
 * (migrate.c, incoming.c): the framing, the checksum, and the machine
 * description that both write and both check.
 *
 * A live stream is the saved-state stream with flags SAVEVM_FLAG_LIVE and
 * its parts in the order pre-copy needs them (little-endian):
 *   "ORRERYVM" u32 version u32 flags(SAVEVM_FLAG_LIVE)
 *   u64 n + header (savevm_describe())
 *   page records, any number, in any order; a later one wins:
 *     u8 3, u64 first, u64 count, count * 4096 bytes   pages as they are
 *     u8 4, u64 first, u64 count                        zero pages
 *     u8 0                                              end of RAM
 *   u64 n + the framebuffer (n: its whole size, 0 without a display)
 *   u64 guest time (ticks) when the source paused, u8 whether it ran
 *   u64 n + machine_save_state()
 *   "ORRERYND" u32 CRC-32 of every byte before it
 * and after it, the destination answers on the same connection: 'L' once
 * everything is loaded (or it closes without a word), and 'R' once it owns
 * the VM's bus name and runs the guest, after the source's 'G' (the source
 * let go of what the destination must take over).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/state.h"
#include "migration/crc32.h"
#include "machine/machine.h"
#include "macro.h"

#define SAVEVM_MAGIC "ORRERYVM"
#define SAVEVM_END_MAGIC "ORRERYND"
#define SAVEVM_MAGIC_SIZE 8
#define SAVEVM_HEADER_MAX (64u * 1024u)
#define SAVEVM_STATE_MAX (16u * 1024u * 1024u)

#define SAVEVM_FLAG_LIVE 1u
#define SAVEVM_LIVE_END 0
#define SAVEVM_LIVE_PAGES 3
#define SAVEVM_LIVE_ZEROS 4

#define SAVEVM_ACK_LOADED 'L'
#define SAVEVM_ACK_GO 'G'
#define SAVEVM_ACK_RUNNING 'R'


/* Whether a guest page (SAVEVM_PAGE_SIZE bytes, 8-byte aligned) holds only zeroes. */
bool savevm_page_is_zero(const uint8_t *p);

/*
 * The next pages of the RAM memfd 'fd' ('pages' in all) that may hold data,
 * from 'page' on: [*ret_first, *ret_end). Holes (pages the guest never
 * touched) are skipped without reading them, so that walking RAM does not
 * allocate it; *ret_first == pages when no data is left. Without
 * SEEK_DATA every page counts as data.
 */
void savevm_ram_data_range(int fd, uint64_t page, uint64_t pages, uint64_t *ret_first, uint64_t *ret_end);

/*
 * Writes n bytes of guest RAM at 'offset' (within RAM) through the RAM
 * memfd rather than its mapping: the kernel fills the pages from 'src' as
 * it allocates them, where a copy through the mapping first faults in a
 * zeroed page and then writes it again.
 */
void savevm_ram_write(Machine *m, uint64_t offset, const uint8_t *src, size_t n);

/* Zeroes n bytes of guest RAM at 'offset' by giving the pages back to the host (or, failing that, writing zeroes). */
void savevm_ram_zero(Machine *m, uint64_t offset, uint64_t n);

/* Formats one line for a person into 'error'; returns 0. */
_printf_(3, 4) int savevm_fail(char *error, size_t error_size, const char *format, ...);

/* The header: memory, display, guest time, disks (flushed first) and NICs. */
int savevm_describe(Machine *m, StateWriter *w, char *error, size_t error_size);
/*
 * Checks a header against the machine: -EBADMSG (malformed), -EMEDIUMTYPE
 * (another configuration), -ESTALE (an image changed, unless 'force').
 */
int savevm_check_header(Machine *m, StateReader *h, bool force, uint64_t *ret_ticks, char *error, size_t error_size);

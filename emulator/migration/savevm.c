/* SPDX-License-Identifier: MIT */

/* The saved-state stream (savevm.h): writing it, checking it, loading it. */

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/image.h"
#include "migration/savevm.h"
#include "migration/savevm-internal.h"
#include "migration/stream-out.h"
#include "macro.h"

#define RUN_END 0
#define RUN_ZERO 1
#define RUN_DATA 2
#define STRING_MAX 4096
/* A reader that takes nothing for this long is gone. */
#define OUT_STALL_MSEC 10000

_printf_(3, 4) int savevm_fail(char *error, size_t error_size, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        vsnprintf(error, error_size, format, ap);
        va_end(ap);
        return 0;
}

/* ---- writing ---- */

static void out_blob(StreamOut *o, const StateWriter *w) {
        stream_out_le(o, w->size, 8);
        stream_out_bytes(o, w->data, w->size);
}

static void put_string(StateWriter *w, const char *s) {
        size_t n = strlen(s);
        n = MIN(n, (size_t) STRING_MAX);
        state_put_u16(w, (uint16_t) n);
        state_put_bytes(w, s, n);
}

static uint64_t mtime_ns(const struct stat *st) {
        return (uint64_t) st->st_mtim.tv_sec * 1000000000ULL + (uint64_t) st->st_mtim.tv_nsec;
}

int savevm_describe(Machine *m, StateWriter *w, char *error, size_t error_size) {
        uint32_t fb_w, fb_h, stride;

        (void) machine_framebuffer(m, &fb_w, &fb_h, &stride);
        state_put_u64(w, machine_memory_bytes(m));
        state_put_u32(w, fb_w);
        state_put_u32(w, fb_h);
        state_put_u64(w, machine_guest_ticks(m));
        state_put_u32(w, (uint32_t) machine_n_disks(m));
        for (size_t i = 0; i < machine_n_disks(m); i++) {
                BlockImage *img = machine_disk_image(m, i);
                struct stat st;

                if (block_image_snapshot(img)) {
                        savevm_fail(error, error_size, "drive '%s' is snapshot=on: its writes would not survive the save",
                             machine_disk_id(m, i));
                        return -EOPNOTSUPP;
                }
                if (block_image_flush(img) < 0 || stat(block_image_path(img), &st) < 0) {
                        savevm_fail(error, error_size, "drive '%s': cannot flush or stat '%s'", machine_disk_id(m, i),
                             block_image_path(img));
                        return -EIO;
                }
                put_string(w, machine_disk_id(m, i));
                put_string(w, block_image_path(img));
                state_put_u64(w, block_image_size(img));
                state_put_u64(w, mtime_ns(&st));
        }
        state_put_u32(w, (uint32_t) machine_n_nics(m));
        for (size_t i = 0; i < machine_n_nics(m); i++)
                put_string(w, machine_nic_id(m, i));
        return state_writer_error(w);
}

bool savevm_page_is_zero(const uint8_t *p) {
        const uint64_t *q = (const uint64_t *) p;
        for (size_t i = 0; i < SAVEVM_PAGE_SIZE / 8; i++)
                if (q[i])
                        return false;
        return true;
}

/* Emits one run of 'count' pages from 'first'. */
static void out_run(StreamOut *o, const uint8_t *ram, bool zero, uint64_t first, uint64_t count) {
        if (count == 0)
                return;
        stream_out_le(o, zero ? RUN_ZERO : RUN_DATA, 1);
        stream_out_le(o, count, 8);
        if (!zero)
                stream_out_bytes(o, ram + first * SAVEVM_PAGE_SIZE, count * SAVEVM_PAGE_SIZE);
}

void savevm_ram_data_range(int fd, uint64_t page, uint64_t pages, uint64_t *ret_first, uint64_t *ret_end) {
        off_t data = lseek(fd, (off_t) (page * SAVEVM_PAGE_SIZE), SEEK_DATA);
        uint64_t first, end;
        off_t hole;

        if (data < 0)
                first = errno == ENXIO ? pages : page;   /* no more data, or no SEEK_DATA: read it */
        else
                first = MAX(MIN((uint64_t) data / SAVEVM_PAGE_SIZE, pages), page);
        if (first >= pages) {
                *ret_first = *ret_end = pages;
                return;
        }
        hole = lseek(fd, (off_t) (first * SAVEVM_PAGE_SIZE), SEEK_HOLE);
        end = hole < 0 ? pages : MIN(((uint64_t) hole + SAVEVM_PAGE_SIZE - 1) / SAVEVM_PAGE_SIZE, pages);
        *ret_first = first;
        *ret_end = MAX(end, first + 1);
}

void savevm_ram_write(Machine *m, uint64_t offset, const uint8_t *src, size_t n) {
        uint64_t size;
        uint8_t *ram = machine_ram(m, &size);
        int fd = machine_ram_fd(m);

        while (n > 0) {
                ssize_t k = pwrite(fd, src, MIN(n, (size_t) 1 << 30), (off_t) offset);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0) {
                        /* The mapping reaches the same pages. */
                        memcpy(ram + offset, src, n);
                        return;
                }
                src += k;
                offset += (uint64_t) k;
                n -= (size_t) k;
        }
}

void savevm_ram_zero(Machine *m, uint64_t offset, uint64_t n) {
        uint64_t size;
        uint8_t *ram = machine_ram(m, &size);

        if (fallocate(machine_ram_fd(m), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t) offset, (off_t) n) < 0)
                memset(ram + offset, 0, n);
}

/* RAM as runs; the memfd's holes are zero runs, read from nowhere. */
static void write_ram(Machine *m, StreamOut *o) {
        uint64_t size, pages, run_start = 0;
        const uint8_t *ram = machine_ram(m, &size);
        int fd = machine_ram_fd(m);
        bool run_zero = true;

        pages = size / SAVEVM_PAGE_SIZE;
        for (uint64_t p = 0; p < pages && !o->error;) {
                uint64_t first, end;

                savevm_ram_data_range(fd, p, pages, &first, &end);
                if (first > p && !run_zero) {
                        /* A hole: zero pages. */
                        out_run(o, ram, false, run_start, p - run_start);
                        run_start = p;
                        run_zero = true;
                }
                for (p = first; p < end; p++) {
                        bool zero = savevm_page_is_zero(ram + p * SAVEVM_PAGE_SIZE);
                        if (zero != run_zero) {
                                out_run(o, ram, run_zero, run_start, p - run_start);
                                run_start = p;
                                run_zero = zero;
                        }
                }
        }
        out_run(o, ram, run_zero, run_start, pages - run_start);
        stream_out_le(o, RUN_END, 1);
}

int savevm_write(Machine *m, int fd, uint64_t *ret_bytes, char *error, size_t error_size) {
        StateWriter header = {}, state = {};
        StreamOut o = {};
        uint32_t crc;
        int r;

        *error = 0;
        machine_drain_io(m);
        r = savevm_describe(m, &header, error, error_size);
        if (r < 0) {
                if (!*error)
                        savevm_fail(error, error_size, "cannot describe the machine: %s", strerror(-r));
                goto out;
        }
        r = machine_save_state(m, &state);
        if (r < 0) {
                savevm_fail(error, error_size, "cannot save the devices' state: %s", strerror(-r));
                goto out;
        }
        r = stream_out_init(&o, fd, -1, OUT_STALL_MSEC);
        if (r < 0) {
                savevm_fail(error, error_size, "out of memory");
                goto out;
        }
        stream_out_bytes(&o, SAVEVM_MAGIC, SAVEVM_MAGIC_SIZE);
        stream_out_le(&o, SAVEVM_VERSION, 4);
        stream_out_le(&o, 0, 4);
        out_blob(&o, &header);
        out_blob(&o, &state);
        write_ram(m, &o);
        crc = crc32_final(&o.crc);
        stream_out_bytes(&o, SAVEVM_END_MAGIC, SAVEVM_MAGIC_SIZE);
        stream_out_le(&o, crc, 4);
        stream_out_flush(&o);
        r = o.error;
        if (r < 0)
                savevm_fail(error, error_size, "cannot write the saved state: %s", strerror(-r));
        else if (ret_bytes)
                *ret_bytes = o.total;
out:
        stream_out_done(&o);
        state_writer_done(&header);
        state_writer_done(&state);
        return r;
}

/* ---- checking and loading ---- */

static int get_string(StateReader *r, char *buf, size_t size) {
        uint16_t n;

        state_get_u16_max(r, (uint16_t) MIN(size - 1, (size_t) STRING_MAX), &n);
        state_get_bytes(r, buf, state_reader_error(r) < 0 ? 0 : n);
        if (state_reader_error(r) < 0)
                return state_reader_error(r);
        buf[n] = 0;
        if (memchr(buf, 0, n))
                return -EBADMSG;
        return 0;
}

/* The next length-prefixed part of the stream. */
static int get_blob(StateReader *r, uint64_t max, StateReader *ret) {
        uint64_t n;

        state_get_u64_max(r, max, &n);
        if (state_reader_error(r) < 0)
                return state_reader_error(r);
        if (n > r->size - r->pos)
                return -EBADMSG;
        *ret = state_reader(r->data + r->pos, n);
        r->pos += n;
        return 0;
}

int savevm_check_header(Machine *m, StateReader *h, bool force, uint64_t *ret_ticks, char *error, size_t error_size) {
        uint32_t fb_w, fb_h, w, hh, stride, n;
        uint64_t memory, ticks;

        state_get_u64(h, &memory);
        state_get_u32(h, &fb_w);
        state_get_u32(h, &fb_h);
        state_get_u64(h, &ticks);
        if (state_reader_error(h) < 0)
                return -EBADMSG;
        (void) machine_framebuffer(m, &w, &hh, &stride);
        if (memory != machine_memory_bytes(m)) {
                savevm_fail(error, error_size, "memory size differs: the saved VM has %llu MiB, this one %llu MiB",
                     (unsigned long long) (memory >> 20), (unsigned long long) (machine_memory_bytes(m) >> 20));
                return -EMEDIUMTYPE;
        }
        if (fb_w != w || fb_h != hh) {
                savevm_fail(error, error_size, "display differs: the saved VM has %ux%u, this one %ux%u", fb_w, fb_h, w, hh);
                return -EMEDIUMTYPE;
        }

        state_get_u32(h, &n);
        if (state_reader_error(h) < 0)
                return -EBADMSG;
        if (n != machine_n_disks(m)) {
                savevm_fail(error, error_size, "drives differ: the saved VM has %u, this one %zu", n, machine_n_disks(m));
                return -EMEDIUMTYPE;
        }
        for (size_t i = 0; i < n; i++) {
                char id[DRIVE_ID_MAX + 1], path[STRING_MAX + 1];
                uint64_t size, mtime;
                BlockImage *img = machine_disk_image(m, i);
                struct stat st;

                if (get_string(h, id, sizeof(id)) < 0 || get_string(h, path, sizeof(path)) < 0)
                        return -EBADMSG;
                state_get_u64(h, &size);
                state_get_u64(h, &mtime);
                if (state_reader_error(h) < 0)
                        return -EBADMSG;
                if (!streq(id, machine_disk_id(m, i))) {
                        savevm_fail(error, error_size, "drive %zu differs: the saved VM has '%s', this one '%s'", i + 1, id,
                             machine_disk_id(m, i));
                        return -EMEDIUMTYPE;
                }
                if (size != block_image_size(img)) {
                        savevm_fail(error, error_size,
                             "drive '%s': image size differs: the saved VM had %llu bytes ('%s'), this one %llu ('%s')",
                             id, (unsigned long long) size, path, (unsigned long long) block_image_size(img),
                             block_image_path(img));
                        return -EMEDIUMTYPE;
                }
                if (!force && (stat(block_image_path(img), &st) < 0 || mtime_ns(&st) != mtime)) {
                        savevm_fail(error, error_size,
                             "drive '%s': image '%s' changed since the save (modification time); --restore-force to use it",
                             id, block_image_path(img));
                        return -ESTALE;
                }
        }

        state_get_u32(h, &n);
        if (state_reader_error(h) < 0)
                return -EBADMSG;
        if (n != machine_n_nics(m)) {
                savevm_fail(error, error_size, "NICs differ: the saved VM has %u, this one %zu", n, machine_n_nics(m));
                return -EMEDIUMTYPE;
        }
        for (size_t i = 0; i < n; i++) {
                char id[STRING_MAX + 1];

                if (get_string(h, id, sizeof(id)) < 0)
                        return -EBADMSG;
                if (!streq(id, machine_nic_id(m, i))) {
                        savevm_fail(error, error_size, "NIC %zu differs: the saved VM has '%s', this one '%s'", i + 1, id,
                             machine_nic_id(m, i));
                        return -EMEDIUMTYPE;
                }
        }
        if (state_reader_finish(h) < 0)
                return -EBADMSG;
        *ret_ticks = ticks;
        return 0;
}

/* Walks the RAM runs; writes them into RAM only when 'apply' (after they all were checked). */
static int walk_ram(Machine *m, StateReader *r, bool apply) {
        uint64_t pages = machine_memory_bytes(m) / SAVEVM_PAGE_SIZE, p = 0;

        for (;;) {
                uint8_t kind;
                uint64_t count;

                state_get_u8_max(r, RUN_DATA, &kind);
                if (state_reader_error(r) < 0)
                        return -EBADMSG;
                if (kind == RUN_END)
                        break;
                state_get_u64_max(r, pages - p, &count);
                if (state_reader_error(r) < 0 || count == 0)
                        return -EBADMSG;
                if (kind == RUN_DATA) {
                        uint64_t bytes = count * SAVEVM_PAGE_SIZE;
                        if (bytes > r->size - r->pos)
                                return -EBADMSG;
                        if (apply)
                                savevm_ram_write(m, p * SAVEVM_PAGE_SIZE, r->data + r->pos, bytes);
                        r->pos += bytes;
                } else if (apply)
                        savevm_ram_zero(m, p * SAVEVM_PAGE_SIZE, count * SAVEVM_PAGE_SIZE);
                p += count;
        }
        return p == pages ? 0 : -EBADMSG;
}

int savevm_load(Machine *m, const uint8_t *data, size_t size, bool force, char *error, size_t error_size) {
        StateReader r = state_reader(data, size), header, state, ram, back;
        StateWriter before = {};
        uint32_t version, flags, crc, want;
        uint64_t ticks = 0;
        Crc32 c;
        int e;

        *error = 0;
        if (size < SAVEVM_MAGIC_SIZE + 8 + SAVEVM_MAGIC_SIZE + 4 || memcmp(data, SAVEVM_MAGIC, SAVEVM_MAGIC_SIZE) != 0) {
                savevm_fail(error, error_size, "not a saved Orrery VM (no " SAVEVM_MAGIC " magic)");
                return -EBADMSG;
        }
        r.pos = SAVEVM_MAGIC_SIZE;
        state_get_u32(&r, &version);
        state_get_u32(&r, &flags);
        if (version != SAVEVM_VERSION || flags != 0) {
                savevm_fail(error, error_size, "saved-state format version %u is not supported (this build reads %u)", version,
                     SAVEVM_VERSION);
                return -EBADMSG;
        }

        /* The trailer first: a damaged stream is refused before anything is parsed further. */
        if (memcmp(data + size - 4 - SAVEVM_MAGIC_SIZE, SAVEVM_END_MAGIC, SAVEVM_MAGIC_SIZE) != 0) {
                savevm_fail(error, error_size, "the saved state is truncated (no end marker)");
                return -EBADMSG;
        }
        crc32_init(&c);
        crc32_update(&c, data, size - 4 - SAVEVM_MAGIC_SIZE);
        want = (uint32_t) data[size - 4] | (uint32_t) data[size - 3] << 8 | (uint32_t) data[size - 2] << 16 |
               (uint32_t) data[size - 1] << 24;
        crc = crc32_final(&c);
        if (crc != want) {
                savevm_fail(error, error_size, "the saved state is corrupted (checksum %08x, expected %08x)", crc, want);
                return -EBADMSG;
        }
        r.size = size - 4 - SAVEVM_MAGIC_SIZE;

        if (get_blob(&r, SAVEVM_HEADER_MAX, &header) < 0 || get_blob(&r, SAVEVM_STATE_MAX, &state) < 0) {
                savevm_fail(error, error_size, "the saved state is malformed (header or device state)");
                return -EBADMSG;
        }
        e = savevm_check_header(m, &header, force, &ticks, error, error_size);
        if (e == -EBADMSG)
                savevm_fail(error, error_size, "the saved state is malformed (machine configuration)");
        if (e < 0)
                return e;
        ram = state_reader(r.data + r.pos, r.size - r.pos);
        StateReader ram_check = ram;
        if (walk_ram(m, &ram_check, false) < 0 || state_reader_finish(&ram_check) < 0) {
                savevm_fail(error, error_size, "the saved state is malformed (RAM)");
                return -EBADMSG;
        }
        if (ticks > UINT64_MAX / 100) {
                savevm_fail(error, error_size, "the saved state is malformed (guest time)");
                return -EBADMSG;
        }

        /* Everything but the devices' own checks has passed: keep what they are, in case one refuses. */
        e = machine_save_state(m, &before);
        if (e < 0) {
                state_writer_done(&before);
                savevm_fail(error, error_size, "cannot keep the current state: %s", strerror(-e));
                return e;
        }
        e = machine_load_state(m, &state);
        if (e < 0) {
                back = state_reader(before.data, before.size);
                (void) machine_load_state(m, &back);
                state_writer_done(&before);
                savevm_fail(error, error_size, "the saved device state is refused: %s", strerror(-e));
                return e == -ENOMEM ? e : -EBADMSG;
        }
        state_writer_done(&before);
        (void) walk_ram(m, &ram, true);
        (void) machine_set_guest_ticks(m, ticks);
        return 0;
}

/* ---- reading a whole stream ---- */

uint64_t savevm_size_bound(uint64_t memory) {
        uint64_t pages = memory / SAVEVM_PAGE_SIZE;
        /* Every page as data, in runs that alternate at worst, plus the fixed parts. */
        return memory + pages * 9 + SAVEVM_HEADER_MAX + SAVEVM_STATE_MAX + 1024;
}

int savevm_blob_read(const char *source, uint64_t limit, SavevmBlob *ret, char *error, size_t error_size) {
        _cleanup_close_ int owned = -1;
        uint8_t *buf = NULL;
        size_t n = 0, allocated = 0;
        struct stat st;
        int fd;

        if (strncmp(source, "fd:", 3) == 0) {
                char *end;
                long v = strtol(source + 3, &end, 10);
                if (!source[3] || *end || v < 0 || v > INT32_MAX) {
                        savevm_fail(error, error_size, "invalid restore source '%s': expected FILE or fd:N", source);
                        return -EINVAL;
                }
                /* Ours from now on: closed once read. */
                fd = owned = (int) v;
        } else {
                owned = open(source, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (owned < 0) {
                        int e = -errno;
                        savevm_fail(error, error_size, "cannot open saved state '%s': %s", source, strerror(-e));
                        return e;
                }
                fd = owned;
        }
        if (fstat(fd, &st) < 0) {
                int e = -errno;
                savevm_fail(error, error_size, "cannot read saved state '%s': %s", source, strerror(-e));
                return e;
        }
        if (S_ISREG(st.st_mode) && st.st_size > 0) {
                void *p;

                if ((uint64_t) st.st_size > limit) {
                        savevm_fail(error, error_size, "saved state '%s' is larger than this VM can need", source);
                        return -EFBIG;
                }
                /* Populated at once: the stream is read whole, twice (checked, then loaded). */
                p = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
                if (p == MAP_FAILED) {
                        int e = -errno;
                        savevm_fail(error, error_size, "cannot map saved state '%s': %s", source, strerror(-e));
                        return e;
                }
                *ret = (SavevmBlob) { .data = p, .size = (size_t) st.st_size, .mapped = true };
                return 0;
        }
        for (;;) {
                ssize_t k;

                if (n == allocated) {
                        size_t a = allocated ? allocated * 2 : 1u << 20;
                        uint8_t *q;

                        if (allocated >= limit) {
                                free(buf);
                                savevm_fail(error, error_size, "saved state '%s' is larger than this VM can need", source);
                                return -EFBIG;
                        }
                        q = realloc(buf, a);
                        if (!q) {
                                free(buf);
                                savevm_fail(error, error_size, "out of memory reading saved state '%s'", source);
                                return -ENOMEM;
                        }
                        buf = q;
                        allocated = a;
                }
                k = read(fd, buf + n, allocated - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        int e = -errno;
                        free(buf);
                        savevm_fail(error, error_size, "cannot read saved state '%s': %s", source, strerror(-e));
                        return e;
                }
                if (k == 0)
                        break;
                n += (size_t) k;
        }
        *ret = (SavevmBlob) { .data = buf, .size = n };
        return 0;
}

void savevm_blob_done(SavevmBlob *b) {
        if (b->mapped)
                munmap(b->data, b->size);
        else
                free(b->data);
        *b = (SavevmBlob) {};
}

const char *savevm_snapshot_drive(Machine *m) {
        for (size_t i = 0; i < machine_n_disks(m); i++)
                if (block_image_snapshot(machine_disk_image(m, i)))
                        return machine_disk_id(m, i);
        return NULL;
}

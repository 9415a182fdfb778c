/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A raw disk image for virtio-blk: a regular file (or a block device) whose
 * size is a non-zero multiple of 512 bytes, opened O_CLOEXEC.
 *
 * Locking: an open file description lock (F_OFD_SETLK) on the whole file,
 * exclusive (F_WRLCK) for a writer, shared (F_RDLCK) for a reader
 * (readonly=on or snapshot=on), so that two VMs never write the same image
 * and no VM reads an image another one writes. The lock dies with the
 * descriptor. A refused lock is -EBUSY; block_image_lock_holder() names the
 * process holding it when /proc/locks shows it.
 *
 * Options:
 *   readonly   the file is opened O_RDONLY; writes are refused (-EROFS).
 *   snapshot   the file is opened O_RDONLY and never written: writes go to
 *              a private overlay (an unlinked temporary file in $TMPDIR or
 *              /var/tmp, 4 KiB clusters copied up on first write),
 *              discarded when the image is closed or the process dies.
 *   cache      WRITEBACK: the host page cache. NONE: O_DIRECT, through an
 *              aligned bounce buffer; when the file system refuses O_DIRECT
 *              (tmpfs, for one) the image falls back to the page cache and
 *              block_image_direct() says so.
 *   discard    block_image_discard() and _write_zeroes() punch holes
 *              (fallocate PUNCH_HOLE | KEEP_SIZE), so that a sparse image
 *              stays sparse; without it they return -EOPNOTSUPP.
 *
 * Threading: after block_image_open(), every I/O function may be called from
 * any number of threads at once (pread/pwrite on one descriptor; the
 * snapshot overlay has its own mutex).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define BLOCK_SECTOR_SIZE 512U

typedef enum BlockCache {
        BLOCK_CACHE_WRITEBACK,
        BLOCK_CACHE_NONE,
} BlockCache;

typedef struct BlockOptions {
        const char *path;
        bool readonly;
        bool snapshot;
        bool discard;
        BlockCache cache;
        bool defer_lock;        /* open without the lock: block_image_lock() takes it (a migration's destination) */
} BlockOptions;

typedef struct BlockImage BlockImage;

/*
 * Opens and locks the image. Returns 0 or a negative errno: -ENOENT, -EACCES,
 * -EISDIR (a directory), -EINVAL (not a regular file or block device),
 * -ENODATA (empty), -EBADFD (size not a multiple of 512), -EBUSY (locked by
 * another user), ...
 */
int block_image_open(const BlockOptions *options, BlockImage **ret);

/*
 * Live migration hands the lock over: the source lets go once the
 * destination has loaded the VM, the destination takes it before it runs
 * the guest. -EBUSY when another process holds it.
 */
int block_image_lock(BlockImage *img);
void block_image_unlock(BlockImage *img);
BlockImage *block_image_close(BlockImage *img);
static inline void block_image_closep(BlockImage **img) {
        if (*img)
                block_image_close(*img);
}

uint64_t block_image_size(const BlockImage *img);
const char *block_image_path(const BlockImage *img);
bool block_image_readonly(const BlockImage *img);       /* writes refused (readonly=on) */
bool block_image_snapshot(const BlockImage *img);
bool block_image_discard_enabled(const BlockImage *img);
/* cache=none and the file system took O_DIRECT. */
bool block_image_direct(const BlockImage *img);

/*
 * Whole-buffer I/O at a byte offset; [offset, offset + total) must lie in the
 * image (-EINVAL otherwise, as for offsets or lengths that are not multiples
 * of 512). Returns 0 or a negative errno (-EIO for a short transfer).
 */
int block_image_readv(BlockImage *img, uint64_t offset, const struct iovec *iov, unsigned n);
int block_image_writev(BlockImage *img, uint64_t offset, const struct iovec *iov, unsigned n);
/* fdatasync(); a no-op for readonly and snapshot images. */
int block_image_flush(BlockImage *img);
/* Deallocates; reads of the range may return anything (zeros here). */
int block_image_discard(BlockImage *img, uint64_t offset, uint64_t len);
/* Reads of the range return zeros afterwards. */
int block_image_write_zeroes(BlockImage *img, uint64_t offset, uint64_t len);

/*
 * Grows a regular image file to 'size' bytes (the tail reads as zeros and
 * stays a hole). Returns 0 (also when the size is unchanged), -EROFS
 * (readonly), -EOPNOTSUPP (snapshot, or not a regular file), -EINVAL (not a
 * multiple of 512), -ERANGE (smaller than today), -EFBIG (beyond off_t), or
 * ftruncate()'s error.
 * Any thread; requests in flight see either size, and both are valid for
 * them, since the image only grows.
 */
int block_image_resize(BlockImage *img, uint64_t size);

/*
 * "comm (pid N)" of a process holding a lock on the file at 'path', from
 * /proc/locks and /proc/PID/comm; NULL when none can be found. Free it.
 */
char *block_image_lock_holder(const char *path);

/* SPDX-License-Identifier: MIT */
/*
 * Raw disk images: see image.h for locking, the options and threading.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "macro.h"
#include "block/image.h"

static inline void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}

#define CLUSTER_SIZE 4096U              /* snapshot overlay granularity */
#define DIRECT_ALIGN 4096U              /* bounce buffer alignment for O_DIRECT */
#define CHUNK_SIZE (1U << 20)           /* bounce buffer size */

struct BlockImage {
        char *path;
        int fd;                         /* O_DIRECT when 'direct'; holds the OFD lock */
        int fd_buf;                     /* the same file through the page cache (== fd unless direct) */
        uint64_t size;
        bool readonly, snapshot, discard, direct;

        /* snapshot=on: clusters written by the guest live in 'overlay_fd'. */
        pthread_mutex_t overlay_lock;
        int overlay_fd;
        uint8_t *present;               /* one bit per cluster */
};

/* Atomic: block_image_resize() grows it on the event-loop thread while workers check ranges against it. */
uint64_t block_image_size(const BlockImage *img) {
        return __atomic_load_n(&img->size, __ATOMIC_ACQUIRE);
}

const char *block_image_path(const BlockImage *img) {
        return img->path;
}

bool block_image_readonly(const BlockImage *img) {
        return img->readonly;
}

bool block_image_snapshot(const BlockImage *img) {
        return img->snapshot;
}

bool block_image_discard_enabled(const BlockImage *img) {
        return img->discard;
}

bool block_image_direct(const BlockImage *img) {
        return img->direct;
}

static int open_overlay(uint64_t size) {
        const char *dirs[] = { getenv("TMPDIR"), "/var/tmp", "/tmp" };
        int r = -ENOENT;

        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                _cleanup_close_ int fd = -EBADF;

                if (!dirs[i] || dirs[i][0] != '/')
                        continue;
                fd = open(dirs[i], O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
                if (fd < 0) {
                        r = -errno;
                        continue;
                }
                if (ftruncate(fd, (off_t) size) < 0) {
                        r = -errno;
                        continue;
                }
                return TAKE_FD(fd);
        }
        return r;
}

int block_image_open(const BlockOptions *o, BlockImage **ret) {
        _cleanup_(block_image_closep) BlockImage *img = NULL;
        struct stat st;
        int flags, r;

        if (!o || !o->path || !ret)
                return -EINVAL;

        img = calloc(1, sizeof(BlockImage));
        if (!img)
                return -ENOMEM;
        img->fd = img->fd_buf = img->overlay_fd = -EBADF;
        img->readonly = o->readonly;
        img->snapshot = o->snapshot;
        img->discard = o->discard;
        r = pthread_mutex_init(&img->overlay_lock, NULL);
        if (r != 0) {
                free(TAKE_PTR(img));
                return -r;
        }
        img->path = strdup(o->path);
        if (!img->path)
                return -ENOMEM;

        flags = O_CLOEXEC | O_NOCTTY | ((o->readonly || o->snapshot) ? O_RDONLY : O_RDWR);
        img->fd_buf = open(o->path, flags);
        if (img->fd_buf < 0)
                return -errno;

        if (fstat(img->fd_buf, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (S_ISREG(st.st_mode))
                img->size = (uint64_t) st.st_size;
        else if (S_ISBLK(st.st_mode)) {
                if (ioctl(img->fd_buf, BLKGETSIZE64, &img->size) < 0)
                        return -errno;
        } else
                return -EINVAL;
        if (img->size == 0)
                return -ENODATA;
        if (img->size % BLOCK_SECTOR_SIZE != 0)
                return -ERANGE;

        if (!o->defer_lock) {
                r = block_image_lock(img);
                if (r < 0)
                        return r;
        }

        img->fd = img->fd_buf;
        if (o->cache == BLOCK_CACHE_NONE && !o->snapshot) {
                img->fd = open(o->path, flags | O_DIRECT);
                if (img->fd < 0) {
                        if (errno != EINVAL)
                                return -errno;
                        /* The file system does not do O_DIRECT (tmpfs): the page cache it is. */
                        img->fd = img->fd_buf;
                } else
                        img->direct = true;
        }

        if (o->snapshot) {
                size_t clusters = (size_t) ((img->size + CLUSTER_SIZE - 1) / CLUSTER_SIZE);

                img->present = calloc((clusters + 7) / 8, 1);
                if (!img->present)
                        return -ENOMEM;
                img->overlay_fd = open_overlay(img->size);
                if (img->overlay_fd < 0)
                        return img->overlay_fd;
        }

        *ret = TAKE_PTR(img);
        return 0;
}

int block_image_lock(BlockImage *img) {
        /* Writers exclusive, readers shared: held by this open file description until it closes. */
        struct flock fl = {
                .l_type = (img->readonly || img->snapshot) ? F_RDLCK : F_WRLCK,
                .l_whence = SEEK_SET,
        };
        if (fcntl(img->fd_buf, F_OFD_SETLK, &fl) < 0)
                return (errno == EAGAIN || errno == EACCES) ? -EBUSY : -errno;
        return 0;
}

void block_image_unlock(BlockImage *img) {
        struct flock fl = { .l_type = F_UNLCK, .l_whence = SEEK_SET };
        (void) fcntl(img->fd_buf, F_OFD_SETLK, &fl);
}

BlockImage *block_image_close(BlockImage *img) {
        if (!img)
                return NULL;
        if (img->fd != img->fd_buf)
                safe_close(img->fd);
        safe_close(img->fd_buf);
        safe_close(img->overlay_fd);
        pthread_mutex_destroy(&img->overlay_lock);
        free(img->present);
        free(img->path);
        free(img);
        return NULL;
}

/* ---- iovec cursor ---- */

typedef struct IovCursor {
        const struct iovec *iov;
        unsigned n;
        unsigned i;
        size_t off;                     /* inside iov[i] */
} IovCursor;

/* Copies len bytes between buf and the cursor's position (to_iov: buf → iov), advancing it. */
static void cursor_copy(IovCursor *c, void *buf, size_t len, bool to_iov) {
        uint8_t *p = buf;

        while (len > 0 && c->i < c->n) {
                size_t n = MIN(len, c->iov[c->i].iov_len - c->off);
                uint8_t *base = (uint8_t *) c->iov[c->i].iov_base + c->off;

                if (to_iov)
                        memcpy(base, p, n);
                else
                        memcpy(p, base, n);
                p += n;
                len -= n;
                c->off += n;
                if (c->off == c->iov[c->i].iov_len) {
                        c->i++;
                        c->off = 0;
                }
        }
}

static uint64_t iov_total(const struct iovec *iov, unsigned n) {
        uint64_t total = 0;

        for (unsigned i = 0; i < n; i++)
                total += iov[i].iov_len;
        return total;
}

static int check_range(const BlockImage *img, uint64_t offset, uint64_t len) {
        uint64_t size = block_image_size(img);

        if (offset % BLOCK_SECTOR_SIZE != 0 || len % BLOCK_SECTOR_SIZE != 0)
                return -EINVAL;
        if (offset > size || len > size - offset)
                return -EINVAL;
        return 0;
}

/* Whole-buffer pread/pwrite; a short transfer that makes no progress is -EIO. */
static int full_io(int fd, void *buf, size_t len, uint64_t offset, bool write) {
        uint8_t *p = buf;

        while (len > 0) {
                ssize_t n = write ? pwrite(fd, p, len, (off_t) offset) : pread(fd, p, len, (off_t) offset);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EIO;
                p += n;
                len -= (size_t) n;
                offset += (uint64_t) n;
        }
        return 0;
}

/* preadv/pwritev straight into the caller's buffers (guest RAM), retried on short transfers. */
static int vector_io(int fd, uint64_t offset, const struct iovec *iov, unsigned n, bool write) {
        _cleanup_free_ struct iovec *v = NULL;
        unsigned first = 0;

        v = malloc(sizeof(struct iovec) * (n ? n : 1));
        if (!v)
                return -ENOMEM;
        memcpy(v, iov, sizeof(struct iovec) * n);

        while (first < n) {
                unsigned cnt = MIN(n - first, (unsigned) IOV_MAX);
                ssize_t k = write ? pwritev(fd, v + first, (int) cnt, (off_t) offset)
                                  : preadv(fd, v + first, (int) cnt, (off_t) offset);
                size_t left;

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0 && iov_total(v + first, cnt) > 0)
                        return -EIO;
                offset += (uint64_t) k;
                left = (size_t) k;
                while (first < n && left >= v[first].iov_len) {
                        left -= v[first].iov_len;
                        first++;
                }
                if (first < n) {
                        v[first].iov_base = (uint8_t *) v[first].iov_base + left;
                        v[first].iov_len -= left;
                }
        }
        return 0;
}

/* O_DIRECT through an aligned bounce buffer; EINVAL (a 4 KiB logical block size) retries through the page cache. */
static int direct_io(BlockImage *img, uint64_t offset, const struct iovec *iov, unsigned n, bool write) {
        uint64_t total = iov_total(iov, n);
        IovCursor c = { .iov = iov, .n = n };
        void *bounce = NULL;
        int r = 0;

        if (posix_memalign(&bounce, DIRECT_ALIGN, MIN(total, (uint64_t) CHUNK_SIZE) ?: DIRECT_ALIGN) != 0)
                return -ENOMEM;

        while (total > 0) {
                size_t len = (size_t) MIN(total, (uint64_t) CHUNK_SIZE);

                if (write)
                        cursor_copy(&c, bounce, len, false);
                r = full_io(img->fd, bounce, len, offset, write);
                if (r == -EINVAL)
                        r = full_io(img->fd_buf, bounce, len, offset, write);
                if (r < 0)
                        break;
                if (!write)
                        cursor_copy(&c, bounce, len, true);
                offset += len;
                total -= len;
        }
        free(bounce);
        return r;
}

static bool cluster_present(const BlockImage *img, uint64_t cluster) {
        return img->present[cluster / 8] & (1U << (cluster % 8));
}

/*
 * Snapshot I/O, cluster by cluster: reads come from the overlay for
 * clusters written before and from the image otherwise; a write copies a
 * cluster up first unless it covers it whole. Overlay lock held.
 */
static int snapshot_io_locked(BlockImage *img, uint64_t offset, uint64_t total, IovCursor *c,
                              const void *zeroes, bool write) {
        uint8_t buf[CLUSTER_SIZE];
        int r;

        while (total > 0) {
                uint64_t cluster = offset / CLUSTER_SIZE;
                uint64_t cstart = cluster * CLUSTER_SIZE;
                uint64_t clen = MIN((uint64_t) CLUSTER_SIZE, img->size - cstart);
                size_t in = (size_t) (offset - cstart);
                size_t len = (size_t) MIN(total, clen - in);

                if (!write) {
                        int fd = cluster_present(img, cluster) ? img->overlay_fd : img->fd_buf;

                        r = full_io(fd, buf, len, offset, false);
                        if (r < 0)
                                return r;
                        cursor_copy(c, buf, len, true);
                } else {
                        if (!cluster_present(img, cluster) && len < clen) {
                                r = full_io(img->fd_buf, buf, (size_t) clen, cstart, false);
                                if (r < 0)
                                        return r;
                                r = full_io(img->overlay_fd, buf, (size_t) clen, cstart, true);
                                if (r < 0)
                                        return r;
                        }
                        if (zeroes)
                                memset(buf, 0, len);
                        else
                                cursor_copy(c, buf, len, false);
                        r = full_io(img->overlay_fd, buf, len, offset, true);
                        if (r < 0)
                                return r;
                        img->present[cluster / 8] |= (uint8_t) (1U << (cluster % 8));
                }
                offset += len;
                total -= len;
        }
        return 0;
}

static int snapshot_io(BlockImage *img, uint64_t offset, uint64_t total, const struct iovec *iov, unsigned n,
                       bool zeroes, bool write) {
        IovCursor c = { .iov = iov, .n = n };
        int r;

        pthread_mutex_lock(&img->overlay_lock);
        r = snapshot_io_locked(img, offset, total, &c, zeroes ? "" : NULL, write);
        pthread_mutex_unlock(&img->overlay_lock);
        return r;
}

static int image_io(BlockImage *img, uint64_t offset, const struct iovec *iov, unsigned n, bool write) {
        uint64_t total;
        int r;

        if (!img || (n > 0 && !iov))
                return -EINVAL;
        total = iov_total(iov, n);
        r = check_range(img, offset, total);
        if (r < 0)
                return r;
        if (write && img->readonly)
                return -EROFS;
        if (total == 0)
                return 0;

        if (img->snapshot)
                return snapshot_io(img, offset, total, iov, n, false, write);
        if (img->direct)
                return direct_io(img, offset, iov, n, write);
        return vector_io(img->fd, offset, iov, n, write);
}

int block_image_readv(BlockImage *img, uint64_t offset, const struct iovec *iov, unsigned n) {
        return image_io(img, offset, iov, n, false);
}

int block_image_writev(BlockImage *img, uint64_t offset, const struct iovec *iov, unsigned n) {
        return image_io(img, offset, iov, n, true);
}

int block_image_flush(BlockImage *img) {
        if (!img)
                return -EINVAL;
        if (img->readonly || img->snapshot)
                return 0;
        if (fdatasync(img->fd_buf) < 0)
                return -errno;
        return 0;
}

static int punch(BlockImage *img, uint64_t offset, uint64_t len) {
        if (fallocate(img->fd_buf, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t) offset, (off_t) len) < 0)
                return -errno;
        return 0;
}

/* What discard and write-zeroes both require: a range inside the image, discard=on, a writable image. */
static int check_unmap(const BlockImage *img, uint64_t offset, uint64_t len) {
        int r;

        if (!img)
                return -EINVAL;
        r = check_range(img, offset, len);
        if (r < 0)
                return r;
        if (!img->discard)
                return -EOPNOTSUPP;
        if (img->readonly)
                return -EROFS;
        return 0;
}

int block_image_discard(BlockImage *img, uint64_t offset, uint64_t len) {
        int r;

        r = check_unmap(img, offset, len);
        if (r < 0)
                return r;
        /* Discard is a hint: the snapshot's image is never touched, and a file system without holes keeps its data. */
        if (img->snapshot || len == 0)
                return 0;
        r = punch(img, offset, len);
        return r == -EOPNOTSUPP ? 0 : r;
}

int block_image_write_zeroes(BlockImage *img, uint64_t offset, uint64_t len) {
        static const uint8_t zero[CHUNK_SIZE];
        int r;

        r = check_unmap(img, offset, len);
        if (r < 0)
                return r;
        if (len == 0)
                return 0;
        if (img->snapshot)
                return snapshot_io(img, offset, len, NULL, 0, true, true);

        r = punch(img, offset, len);
        if (r != -EOPNOTSUPP)
                return r;
        if (fallocate(img->fd_buf, FALLOC_FL_ZERO_RANGE, (off_t) offset, (off_t) len) == 0)
                return 0;
        while (len > 0) {
                size_t n = (size_t) MIN(len, (uint64_t) sizeof(zero));

                r = full_io(img->fd_buf, (void *) zero, n, offset, true);
                if (r < 0)
                        return r;
                offset += n;
                len -= n;
        }
        return 0;
}

int block_image_resize(BlockImage *img, uint64_t size) {
        struct stat st;

        if (!img)
                return -EINVAL;
        if (img->readonly)
                return -EROFS;
        /* The overlay's cluster map is sized for the image, and growing a file that is never written makes no sense. */
        if (img->snapshot)
                return -EOPNOTSUPP;
        if (size % BLOCK_SECTOR_SIZE != 0)
                return -EINVAL;
        if (size > (uint64_t) INT64_MAX)
                return -EFBIG;          /* beyond what off_t can say */
        if (size < block_image_size(img))
                return -ERANGE;
        if (fstat(img->fd_buf, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EOPNOTSUPP;
        if (size == block_image_size(img))
                return 0;
        /* ftruncate() leaves the new tail a hole: a grown sparse image stays sparse. */
        if (ftruncate(img->fd_buf, (off_t) size) < 0)
                return -errno;
        __atomic_store_n(&img->size, size, __ATOMIC_RELEASE);
        return 0;
}

/* Whether /proc/PID/fdinfo/FD shows a lock on the file 'key' ("fe:00:1234"). */
static bool fdinfo_has_lock(int dirfd, const char *name, const char *key) {
        _cleanup_fclose_ FILE *f = NULL;
        char line[512];
        int fd;

        fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        f = fdopen(fd, "re");
        if (!f) {
                close(fd);
                return false;
        }
        /* "lock:\t1: OFDLCK ADVISORY  WRITE -1 fe:00:10953931 0 EOF" */
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, "lock:", 5) == 0 && strstr(line, key))
                        return true;
        return false;
}

char *block_image_lock_holder(const char *path) {
        _cleanup_(closedirp) DIR *proc = NULL;
        struct dirent *de;
        struct stat st;
        char key[64];

        if (!path || stat(path, &st) < 0)
                return NULL;
        /* /proc/locks names no pid for OFD locks (-1); each descriptor's fdinfo lists the locks it holds. */
        snprintf(key, sizeof(key), " %02x:%02x:%lu ", major(st.st_dev), minor(st.st_dev), (unsigned long) st.st_ino);

        proc = opendir("/proc");
        if (!proc)
                return NULL;
        while ((de = readdir(proc))) {
                _cleanup_(closedirp) DIR *fdinfo = NULL;
                struct dirent *fe;
                char p[64], comm[64] = "";
                char *end;
                long pid = strtol(de->d_name, &end, 10);

                if (*end || pid <= 0 || pid == getpid())
                        continue;
                snprintf(p, sizeof(p), "/proc/%ld/fdinfo", pid);
                fdinfo = opendir(p);
                if (!fdinfo)
                        continue;
                while ((fe = readdir(fdinfo))) {
                        if (fe->d_name[0] == '.' || !fdinfo_has_lock(dirfd(fdinfo), fe->d_name, key))
                                continue;

                        snprintf(p, sizeof(p), "/proc/%ld/comm", pid);
                        _cleanup_fclose_ FILE *c = fopen(p, "re");
                        if (c && fgets(comm, sizeof(comm), c))
                                comm[strcspn(comm, "\n")] = 0;

                        char *s = NULL;
                        if (asprintf(&s, "%s (pid %ld)", comm[0] ? comm : "?", pid) < 0)
                                return NULL;
                        return s;
                }
        }
        return NULL;
}

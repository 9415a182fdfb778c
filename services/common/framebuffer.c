/* SPDX-License-Identifier: MIT */

/*
 * Maps a framebuffer memfd handed out by Console1.GetFramebuffer. The peer
 * is not trusted: the layout must fit inside the file, and the file must be
 * sealed against shrinking, or the peer could truncate it and make us fault
 * (SIGBUS) while reading pixels. The mapping is never writable.
 */

#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "orrery-client-internal.h"

int orrery_mapping_map(int fd, uint64_t offset, uint32_t width, uint32_t height, uint32_t stride, uint32_t format,
                       OrreryMapping *ret) {
        uint64_t line, last, end, start, page;
        uint32_t bpp;
        struct stat st;
        void *p;
        int seals;

        if (fd < 0 || !ret)
                return -EINVAL;

        bpp = orrery_format_bytes_per_pixel(format);
        if (bpp == 0)
                return -EPROTONOSUPPORT;
        if (width == 0 || height == 0 || width > ORRERY_MAX_FB_DIMENSION || height > ORRERY_MAX_FB_DIMENSION)
                return -EBADMSG;
        line = (uint64_t) width * bpp;
        if (stride < line || stride > (uint64_t) ORRERY_MAX_FB_DIMENSION * 8)
                return -EBADMSG;

        /* end = offset + (height - 1) * stride + width * bpp, without overflow */
        last = (uint64_t) (height - 1) * stride + line;
        if (__builtin_add_overflow(offset, last, &end))
                return -EBADMSG;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADMSG;
        if (st.st_size < 0 || end > (uint64_t) st.st_size)
                return -EBADMSG;

        seals = fcntl(fd, F_GET_SEALS);
        if (seals < 0)
                return errno == EINVAL ? -EPERM : -errno;
        if (!(seals & F_SEAL_SHRINK))
                return -EPERM;

        page = (uint64_t) sysconf(_SC_PAGESIZE);
        start = offset & ~(page - 1);
        if (end - start > ORRERY_MAX_FB_MAP)
                return -EFBIG;

        p = mmap(NULL, end - start, PROT_READ, MAP_SHARED, fd, (off_t) start);
        if (p == MAP_FAILED)
                return -errno;

        *ret = (OrreryMapping) {
                .base = p,
                .length = end - start,
                .fb = {
                        .data = (const uint8_t *) p + (offset - start),
                        .width = width,
                        .height = height,
                        .stride = stride,
                        .format = format,
                        .bytes_per_pixel = bpp,
                },
        };
        return 0;
}

void orrery_mapping_unmap(OrreryMapping *m) {
        if (!m)
                return;
        if (m->base)
                (void) munmap(m->base, m->length);
        *m = (OrreryMapping) {};
}

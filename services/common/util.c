/* SPDX-License-Identifier: MIT */

/* Small helpers of liborrery-client: names, errors, rectangles, formats, the owner check. */

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "orrery-client-internal.h"

const sd_bus_error_map orrery_error_map[] = {
        SD_BUS_ERROR_MAP(ORRERY_ERROR_INVALID_ARGUMENT, EINVAL),
        SD_BUS_ERROR_MAP(ORRERY_ERROR_BUSY, EBUSY),
        SD_BUS_ERROR_MAP(ORRERY_ERROR_NOT_SUPPORTED, EOPNOTSUPP),
        SD_BUS_ERROR_MAP(ORRERY_ERROR_UNAVAILABLE, ESHUTDOWN),
        SD_BUS_ERROR_MAP(ORRERY_ERROR_TIMEOUT, ETIMEDOUT),
        SD_BUS_ERROR_MAP(ORRERY_ERROR_NOT_OWNER, EPERM),
        SD_BUS_ERROR_MAP(ORRERY_ERROR_LIMIT_EXCEEDED, EFBIG),
        SD_BUS_ERROR_MAP_END,
};

int orrery_owner_check_user(sd_bus *bus, const char *owner, uid_t *ret_uid) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        uid_t uid;
        int r;

        /* The bus daemon's word for the connection (what it read from the
         * socket), never the augmented /proc data of whatever pid it had. */
        r = sd_bus_get_name_creds(bus, owner, SD_BUS_CREDS_EUID, &creds);
        if (r < 0)
                return r;
        r = sd_bus_creds_get_euid(creds, &uid);
        if (r < 0)
                return r;
        if (ret_uid)
                *ret_uid = uid;
        return uid == geteuid() ? 0 : -EPERM;
}

char *orrery_strdup_printf(const char *format, ...) {
        va_list ap;
        char *s;
        int r;

        va_start(ap, format);
        r = vasprintf(&s, format, ap);
        va_end(ap);
        return r < 0 ? NULL : s;
}

int orrery_error_errno(const sd_bus_error *e) {
        int r;

        if (!sd_bus_error_is_set(e))
                return 0;
        r = sd_bus_error_get_errno(e);
        return r > 0 ? -r : -EIO;
}

static bool is_alpha_(char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

bool orrery_vm_name_is_valid(const char *name) {
        return vm_name_check(name);
}

bool orrery_chardev_id_is_valid(const char *id) {
        size_t n;

        if (!id || !id[0])
                return false;
        for (n = 0; id[n]; n++)
                if (n >= ORRERY_CHARDEV_ID_MAX || !(is_alpha_(id[n]) || is_digit(id[n])))
                        return false;
        return true;
}

const char *orrery_vm_name_from_bus_name(const char *bus_name) {
        const size_t k = strlen(ORRERY_VM_BUS_NAME_PREFIX);

        if (!bus_name || strncmp(bus_name, ORRERY_VM_BUS_NAME_PREFIX, k) != 0)
                return NULL;
        return orrery_vm_name_is_valid(bus_name + k) ? bus_name + k : NULL;
}

char **orrery_strv_free(char **l) {
        if (!l)
                return NULL;
        for (char **i = l; *i; i++)
                free(*i);
        free(l);
        return NULL;
}

size_t orrery_rects_clip(const OrreryRect *in, size_t n, uint32_t width, uint32_t height, OrreryRect *out) {
        size_t k = 0;

        for (size_t i = 0; i < n; i++) {
                OrreryRect r = in[i];

                if (r.x >= width || r.y >= height || r.width == 0 || r.height == 0)
                        continue;
                /* Subtract rather than add: x + width may overflow. */
                r.width = MIN(r.width, width - r.x);
                r.height = MIN(r.height, height - r.y);
                out[k++] = r;
        }
        return k;
}

uint32_t orrery_format_bytes_per_pixel(uint32_t format) {
        switch (format) {
        case ORRERY_FORMAT_XRGB8888:
        case ORRERY_FORMAT_ARGB8888:
        case ORRERY_FORMAT_XBGR8888:
        case ORRERY_FORMAT_ABGR8888:
                return 4;
        case ORRERY_FORMAT_RGB565:
                return 2;
        default:
                return 0;
        }
}

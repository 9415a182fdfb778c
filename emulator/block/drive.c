/* SPDX-License-Identifier: MIT */
/*
 * --drive parsing and opening: see drive.h.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "macro.h"
#include "block/drive.h"

bool device_id_is_valid(const char *id) {
        size_t n;

        if (!id)
                return false;
        n = strlen(id);
        if (n == 0 || n > DRIVE_ID_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = id[i];

                if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
                        return false;
        }
        return true;
}

static int parse_onoff(const char *v, bool *ret) {
        if (streq(v, "on") || streq(v, "yes") || streq(v, "true") || streq(v, "1"))
                *ret = true;
        else if (streq(v, "off") || streq(v, "no") || streq(v, "false") || streq(v, "0"))
                *ret = false;
        else
                return -EINVAL;
        return 0;
}

/* Next "key=value" item of s (",," is a literal comma); returns a malloc'ed copy and advances *s. */
static char *next_item(const char **s) {
        const char *p = *s;
        char *out = malloc(strlen(p) + 1), *o = out;

        if (!out)
                return NULL;
        while (*p) {
                if (*p == ',') {
                        if (p[1] == ',') {
                                *o++ = ',';
                                p += 2;
                                continue;
                        }
                        p++;
                        break;
                }
                *o++ = *p++;
        }
        *o = 0;
        *s = p;
        return out;
}

void drive_spec_done(DriveSpec *d) {
        free(d->path);
        free(d->id);
        *d = (DriveSpec) {};
}

int drive_spec_parse(const char *s, const char *where, DriveSpec *ret) {
        _cleanup_(drive_spec_done) DriveSpec d = {};
        const char *p = s;

        where = where ?: "";
        while (*p) {
                _cleanup_free_ char *item = next_item(&p);
                char *eq, *value;
                bool b;

                if (!item)
                        return log_oom();
                eq = strchr(item, '=');
                if (!eq || eq == item)
                        return log_error_errno(EINVAL, "%sinvalid drive '%s': expected key=value, got '%s'", where, s,
                                               item);
                *eq = 0;
                value = eq + 1;

                if (streq(item, "file")) {
                        if (!*value)
                                return log_error_errno(EINVAL, "%sinvalid drive '%s': file= needs a path", where, s);
                        free(d.path);
                        d.path = strdup(value);
                        if (!d.path)
                                return log_oom();
                } else if (streq(item, "id")) {
                        if (!device_id_is_valid(value))
                                return log_error_errno(EINVAL,
                                                       "%sinvalid drive id '%s': use 1-%d characters of [A-Za-z0-9_]",
                                                       where, value, DRIVE_ID_MAX);
                        free(d.id);
                        d.id = strdup(value);
                        if (!d.id)
                                return log_oom();
                } else if (streq(item, "readonly") || streq(item, "snapshot") || streq(item, "discard")) {
                        if (parse_onoff(value, &b) < 0)
                                return log_error_errno(EINVAL, "%sinvalid drive '%s': %s=%s, expected on or off", where,
                                                       s, item, value);
                        if (streq(item, "readonly"))
                                d.readonly = b;
                        else if (streq(item, "snapshot"))
                                d.snapshot = b;
                        else
                                d.discard = b;
                } else if (streq(item, "cache")) {
                        if (streq(value, "writeback"))
                                d.cache = BLOCK_CACHE_WRITEBACK;
                        else if (streq(value, "none"))
                                d.cache = BLOCK_CACHE_NONE;
                        else
                                return log_error_errno(EINVAL,
                                                       "%sinvalid drive '%s': cache=%s, expected writeback or none",
                                                       where, s, value);
                } else
                        return log_error_errno(EINVAL,
                                               "%sinvalid drive '%s': unknown key '%s' (known: file, id, readonly, "
                                               "snapshot, cache, discard)", where, s, item);
        }
        if (!d.path)
                return log_error_errno(EINVAL, "%sinvalid drive '%s': file=PATH is required", where, s);
        *ret = d;
        d = (DriveSpec) {};
        return 0;
}

int drive_specs_finish(DriveSpec *d, size_t n) {
        for (size_t i = 0; i < n; i++) {
                if (d[i].id)
                        continue;
                for (unsigned k = 0;; k++) {
                        char id[16];
                        bool taken = false;

                        snprintf(id, sizeof(id), "drive%u", k);
                        for (size_t j = 0; j < n; j++)
                                taken |= d[j].id && streq(d[j].id, id);
                        if (taken)
                                continue;
                        d[i].id = strdup(id);
                        if (!d[i].id)
                                return log_oom();
                        break;
                }
        }
        for (size_t i = 0; i < n; i++)
                for (size_t j = i + 1; j < n; j++)
                        if (streq(d[i].id, d[j].id))
                                return log_error_errno(EEXIST, "two drives have the id '%s'", d[i].id);
        return 0;
}

static int open_image(const DriveSpec *d, bool defer_lock, BlockImage **ret, char *error, size_t error_size);

int drive_open(const DriveSpec *d, BlockImage **ret, char *error, size_t error_size) {
        return open_image(d, false, ret, error, error_size);
}

int drive_open_unlocked(const DriveSpec *d, BlockImage **ret, char *error, size_t error_size) {
        return open_image(d, true, ret, error, error_size);
}

static int open_image(const DriveSpec *d, bool defer_lock, BlockImage **ret, char *error, size_t error_size) {
        BlockOptions o = {
                .path = d->path,
                .readonly = d->readonly,
                .snapshot = d->snapshot,
                .discard = d->discard,
                .cache = d->cache,
                .defer_lock = defer_lock,
        };
        struct stat st;
        int r;

        r = block_image_open(&o, ret);
        switch (r) {
        case 0:
                return 0;
        case -EBUSY: {
                _cleanup_free_ char *holder = block_image_lock_holder(d->path);

                snprintf(error, error_size, "drive '%s': '%s' is in use by %s", d->id, d->path,
                         holder ?: "another process (it holds a lock on the image)");
                break;
        }
        case -EISDIR:
                snprintf(error, error_size, "drive '%s': '%s' is a directory, not a disk image", d->id, d->path);
                break;
        case -EINVAL:
                snprintf(error, error_size, "drive '%s': '%s' is neither a regular file nor a block device", d->id, d->path);
                break;
        case -ENODATA:
                snprintf(error, error_size, "drive '%s': '%s' is empty", d->id, d->path);
                break;
        case -ERANGE:
                if (stat(d->path, &st) < 0)
                        st.st_size = 0;
                snprintf(error, error_size, "drive '%s': '%s' has %lld bytes, not a multiple of 512", d->id, d->path,
                         (long long) st.st_size);
                break;
        default:
                snprintf(error, error_size, "drive '%s': cannot open '%s': %s", d->id, d->path, strerror(-r));
        }
        return r;
}

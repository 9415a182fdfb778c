/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * --drive file=PATH[,id=ID][,readonly=on|off][,snapshot=on|off]
 *         [,cache=writeback|none][,discard=on|off]
 *
 * (config key "drive", same syntax, one drive per line). A comma inside the
 * path is written twice (",,"), as QEMU does. ID: [A-Za-z0-9_]{1,32}; the
 * default is "driveN" for the N-th drive. Parsing only checks the syntax;
 * drive_open() opens and locks the image and words the errors a person
 * reads.
 */

#include <stdbool.h>
#include <stddef.h>

#include "block/image.h"

#define DRIVE_ID_MAX 32

typedef struct DriveSpec {
        char *path;
        char *id;                       /* NULL until drive_specs_finish() */
        bool readonly, snapshot, discard;
        BlockCache cache;
} DriveSpec;

/*
 * Parses one --drive value. Returns 0, or logs one line (prefixed with
 * 'where', e.g. the config file's "FILE:LINE: ", or NULL) and returns
 * -EINVAL / -ENOMEM.
 */
int drive_spec_parse(const char *s, const char *where, DriveSpec *ret);
void drive_spec_done(DriveSpec *d);

/* Whether id is [A-Za-z0-9_]{1,DRIVE_ID_MAX}. */
bool device_id_is_valid(const char *id);

/* Gives every drive without an id "driveN"; refuses duplicate ids (-EEXIST), logging why. */
int drive_specs_finish(DriveSpec *d, size_t n);

/*
 * Opens and locks the image. Errors: a negative errno and a message such as
 * "drive 'disk0': '/x.img' is in use by orrery-vm (pid 42)".
 */
int drive_open(const DriveSpec *d, BlockImage **ret, char *error, size_t error_size);
/* The same without taking the image's lock (block_image_lock() later): for a migration's destination. */
int drive_open_unlocked(const DriveSpec *d, BlockImage **ret, char *error, size_t error_size);

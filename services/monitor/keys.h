/* SPDX-License-Identifier: MIT */
#pragma once

/* QEMU's key names (QKeyCode, as HMP's sendkey takes them) and their Linux evdev codes. */

#include <stddef.h>
#include <stdint.h>

typedef struct MonitorKey {
        const char *name;
        uint32_t code;
} MonitorKey;

extern const MonitorKey monitor_keys[];
extern const size_t monitor_n_keys;

/* The evdev code of a QEMU key name; -ENOENT if there is none. */
int monitor_key_from_name(const char *name, uint32_t *ret_code);

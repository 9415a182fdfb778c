/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * VNC keysyms -> Linux evdev key codes, derived from an xkbcommon keymap
 * of the configured layout (no hand-written table): a keysym maps to the
 * key that produces it at the lowest shift level of the layout's first
 * group. The client presses the modifiers itself (Shift_L, then 'A'), so
 * 'A' and 'a' both map to KEY_A.
 */

#include <stdint.h>

typedef struct Keymap Keymap;

/* layout: an XKB layout name ("us", "de", "fr"...); variant may be NULL. */
int keymap_new(const char *layout, const char *variant, Keymap **ret);
Keymap *keymap_free(Keymap *k);
static inline void keymap_freep(Keymap **k) {
        keymap_free(*k);
}

/* The evdev code for keysym, or -ENOENT when no key of the layout produces it. */
int keymap_lookup(const Keymap *k, uint32_t keysym);
/* How many keysyms the table holds (for the debug log). */
size_t keymap_size(const Keymap *k);

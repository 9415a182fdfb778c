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

/*
 * The same, and which modifiers the guest needs held to get that keysym from
 * the key: KEYMAP_NEED_SHIFT (level 2 of the key), KEYMAP_NEED_LEVEL3 (AltGr,
 * levels 3 and 4). Letters need nothing: their case follows Shift and Caps
 * Lock as the client sends them.
 */
#define KEYMAP_NEED_SHIFT (1u << 0)
#define KEYMAP_NEED_LEVEL3 (1u << 1)
int keymap_lookup_modifiers(const Keymap *k, uint32_t keysym, uint32_t *ret_needs);
/* How many keysyms the table holds (for the debug log). */
size_t keymap_size(const Keymap *k);

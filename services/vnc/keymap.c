/* SPDX-License-Identifier: MIT */
/*
 * The keysym -> evdev table: built once at start from xkbcommon's keymap for
 * the layout (rules "evdev", model "pc105"), then a binary search per key.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <xkbcommon/xkbcommon.h>

#include "keymap.h"
#include "macro.h"

/* XKB keycodes are evdev codes + 8 (the X11 offset). */
#define EVDEV_OFFSET 8
/* KEY_ESC .. KEY_COMPOSE: the keys of a PC keyboard. */
#define EVDEV_PC_KEYS 128
/* The guest's keyboard declares codes below KEY_MAX (0x2ff). */
#define EVDEV_CODE_MAX 0x2ffu

typedef struct Entry {
        uint32_t keysym;
        uint32_t code;
        uint32_t level;
} Entry;

struct Keymap {
        Entry *entries; /* sorted by keysym, one per keysym */
        size_t n_entries;
};

static void xkb_context_unrefp(struct xkb_context **c) {
        xkb_context_unref(*c);
}

static void xkb_keymap_unrefp(struct xkb_keymap **k) {
        xkb_keymap_unref(*k);
}

static int entry_cmp(const void *a, const void *b) {
        const Entry *x = a, *y = b;

        if (x->keysym != y->keysym)
                return x->keysym < y->keysym ? -1 : 1;
        /* Among keys producing the same keysym: one of a PC keyboard's first
         * (codes below 128: every keyboard has them, the guest's too) before
         * the special keys that evdev also names ('(' is Shift+9, not
         * KEY_KPLEFTPAREN; '$' Shift+4, not KEY_DOLLAR), then the lowest
         * level, then the lowest code. */
        if ((x->code < EVDEV_PC_KEYS) != (y->code < EVDEV_PC_KEYS))
                return x->code < EVDEV_PC_KEYS ? -1 : 1;
        if (x->level != y->level)
                return x->level < y->level ? -1 : 1;
        if (x->code != y->code)
                return x->code < y->code ? -1 : 1;
        return 0;
}

int keymap_new(const char *layout, const char *variant, Keymap **ret) {
        _cleanup_(xkb_context_unrefp) struct xkb_context *ctx = NULL;
        _cleanup_(xkb_keymap_unrefp) struct xkb_keymap *xkb = NULL;
        _cleanup_free_ Entry *entries = NULL;
        size_t n = 0, allocated = 0;
        xkb_keycode_t min, max;
        Keymap *k;
        struct xkb_rule_names names = {
                .rules = "evdev",
                .model = "pc105",
                .layout = layout,
                .variant = variant,
        };

        if (!layout || !layout[0])
                return -EINVAL;

        ctx = xkb_context_new(XKB_CONTEXT_NO_ENVIRONMENT_NAMES);
        if (!ctx)
                return -ENOMEM;
        /* xkbcommon logs compile problems on stderr itself; an unknown layout is our error to name. */
        xkb_context_set_log_level(ctx, XKB_LOG_LEVEL_CRITICAL);
        xkb = xkb_keymap_new_from_names(ctx, &names, XKB_KEYMAP_COMPILE_NO_FLAGS);
        if (!xkb)
                return -ENOENT;

        min = xkb_keymap_min_keycode(xkb);
        max = xkb_keymap_max_keycode(xkb);
        for (xkb_keycode_t kc = min; kc <= max && kc >= min; kc++) {
                xkb_level_index_t n_levels;

                if (kc < EVDEV_OFFSET || kc - EVDEV_OFFSET > EVDEV_CODE_MAX)
                        continue;
                /* The first group is the configured layout. */
                n_levels = xkb_keymap_num_levels_for_key(xkb, kc, 0);
                for (xkb_level_index_t level = 0; level < n_levels; level++) {
                        const xkb_keysym_t *syms;
                        int n_syms = xkb_keymap_key_get_syms_by_level(xkb, kc, 0, level, &syms);

                        for (int i = 0; i < n_syms; i++) {
                                if (syms[i] == XKB_KEY_NoSymbol)
                                        continue;
                                if (n >= allocated) {
                                        size_t a = MAX(allocated * 2, (size_t) 256);
                                        Entry *t = realloc(entries, a * sizeof(Entry));

                                        if (!t)
                                                return -ENOMEM;
                                        entries = t;
                                        allocated = a;
                                }
                                entries[n++] = (Entry) { syms[i], kc - EVDEV_OFFSET, level };
                        }
                }
        }
        if (n == 0)
                return -ENOENT;

        qsort(entries, n, sizeof(Entry), entry_cmp);
        /* Keep the first (best) entry of each keysym. */
        size_t w = 0;
        for (size_t i = 0; i < n; i++)
                if (w == 0 || entries[w - 1].keysym != entries[i].keysym)
                        entries[w++] = entries[i];

        k = calloc(1, sizeof(Keymap));
        if (!k)
                return -ENOMEM;
        k->entries = TAKE_PTR(entries);
        k->n_entries = w;
        *ret = k;
        return 0;
}

Keymap *keymap_free(Keymap *k) {
        if (k) {
                free(k->entries);
                free(k);
        }
        return NULL;
}

static const Entry *keymap_find(const Keymap *k, uint32_t keysym) {
        size_t lo = 0, hi = k->n_entries;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (k->entries[mid].keysym == keysym)
                        return &k->entries[mid];
                if (k->entries[mid].keysym < keysym)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

int keymap_lookup(const Keymap *k, uint32_t keysym) {
        const Entry *e = keymap_find(k, keysym);

        return e ? (int) e->code : -ENOENT;
}

int keymap_lookup_modifiers(const Keymap *k, uint32_t keysym, uint32_t *ret_needs) {
        const Entry *e = keymap_find(k, keysym);
        uint32_t needs = 0;

        if (!e)
                return -ENOENT;
        /* An upper-case letter: the client's Shift or Caps Lock already says so. */
        if (xkb_keysym_to_lower(keysym) == keysym) {
                if (e->level & 1)
                        needs |= KEYMAP_NEED_SHIFT;
                if (e->level & 2)
                        needs |= KEYMAP_NEED_LEVEL3;
        }
        *ret_needs = needs;
        return (int) e->code;
}

size_t keymap_size(const Keymap *k) {
        return k->n_entries;
}

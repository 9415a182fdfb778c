/* SPDX-License-Identifier: MIT */
#include <stdbool.h>
#include <string.h>

#include "guard.h"
#include "macro.h"

uint64_t guard_delay_for(unsigned failures) {
        if (failures == 0)
                return 0;
        if (failures > 16)
                return GUARD_MAX_USEC;
        return MIN(GUARD_BASE_USEC << (failures - 1), GUARD_MAX_USEC);
}

static bool entry_live(const GuardEntry *e, uint64_t now) {
        return e->failures > 0 && now - e->last_failure < GUARD_FORGET_USEC;
}

static GuardEntry *guard_find(Guard *g, const char *source, uint64_t now) {
        for (size_t i = 0; i < GUARD_SOURCES; i++) {
                GuardEntry *e = g->entries + i;

                if (e->failures > 0 && strncmp(e->source, source, sizeof(e->source)) == 0) {
                        if (entry_live(e, now))
                                return e;
                        *e = (GuardEntry) {};
                        return NULL;
                }
        }
        return NULL;
}

uint64_t guard_next_allowed(Guard *g, const char *source, uint64_t now) {
        GuardEntry *e = guard_find(g, source, now);
        uint64_t t;

        if (!e)
                return 0;
        t = e->last_failure + guard_delay_for(e->failures);
        return t > now ? t : 0;
}

unsigned guard_failure(Guard *g, const char *source, uint64_t now) {
        GuardEntry *e = guard_find(g, source, now), *victim = NULL;

        if (!e) {
                /* A free (or forgotten) entry, else the one whose last failure is oldest. */
                for (size_t i = 0; i < GUARD_SOURCES; i++) {
                        GuardEntry *c = g->entries + i;

                        if (!entry_live(c, now)) {
                                victim = c;
                                break;
                        }
                        if (!victim || c->last_failure < victim->last_failure)
                                victim = c;
                }
                e = victim;
                *e = (GuardEntry) {};
                strncpy(e->source, source, sizeof(e->source) - 1);
        }
        if (e->failures < UINT32_MAX)
                e->failures++;
        e->last_failure = now;
        return e->failures;
}

void guard_success(Guard *g, const char *source) {
        for (size_t i = 0; i < GUARD_SOURCES; i++)
                if (g->entries[i].failures > 0 && strncmp(g->entries[i].source, source, GUARD_SOURCE_MAX) == 0)
                        g->entries[i] = (GuardEntry) {};
}

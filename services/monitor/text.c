/* SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "text.h"

const char *printable(const char *s) {
        static char *ring[8];
        static size_t next;
        char *c;

        if (!s)
                return "";
        c = strdup(s);
        if (!c)
                return "?";
        for (char *p = c; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        *p = '?';
        free(ring[next]);
        ring[next] = c;
        next = (next + 1) % ELEMENTSOF(ring);
        return c;
}

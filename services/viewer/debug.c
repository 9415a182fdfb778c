/* SPDX-License-Identifier: MIT */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "debug.h"

bool viewer_debug_enabled;

void viewer_debug_init(void) {
        const char *e = getenv("ORRERY_VIEWER_DEBUG");

        viewer_debug_enabled = e && *e && *e != '0';
}

void viewer_debug(const char *fmt, ...) {
        va_list ap;

        if (!viewer_debug_enabled)
                return;
        /* One line in one write, so lines of concurrent events never interleave. */
        flockfile(stderr);
        fputs("orrery-viewer: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        funlockfile(stderr);
        fflush(stderr);
}

/* SPDX-License-Identifier: MIT */

#include <stdarg.h>
#include <stdio.h>

#include "log.h"

bool log_verbose = false;

void log_full(bool debug, const char *fmt, ...) {
        va_list ap;

        if (debug && !log_verbose)
                return;
        va_start(ap, fmt);
        fputs("orrery-agent: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
}

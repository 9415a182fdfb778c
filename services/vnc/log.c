/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>

#include "log.h"

static bool debug;

void log_set_debug(bool on) {
        debug = on;
}

bool log_debug_enabled(void) {
        return debug;
}

static void log_v(const char *prefix, const char *format, va_list ap) {
        fprintf(stderr, "orrery-vnc: %s", prefix);
        vfprintf(stderr, format, ap);
        fputc('\n', stderr);
        fflush(stderr);
}

void log_info(const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        log_v("", format, ap);
        va_end(ap);
}

void log_error(const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        log_v("", format, ap);
        va_end(ap);
}

void log_debug(const char *format, ...) {
        va_list ap;

        if (!debug)
                return;
        va_start(ap, format);
        log_v("debug: ", format, ap);
        va_end(ap);
}

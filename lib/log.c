/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "log.h"

/*
 * Written once by log_setup() or the program's option parsing, before any
 * thread starts; read by every thread after that.
 */
static int max_level = LOG_INFO;
static const char *program = NULL;
static bool to_journal = false;

static const char *const level_names[] = {
        [LOG_EMERG] = "emerg",     [LOG_ALERT] = "alert",   [LOG_CRIT] = "crit", [LOG_ERR] = "err",
        [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice", [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

int log_level_from_string(const char *s) {
        if (!s || !*s)
                return -EINVAL;
        if (s[0] >= '0' && s[0] <= '7' && s[1] == '\0')
                return s[0] - '0';
        for (int i = 0; i < (int) ELEMENTSOF(level_names); i++)
                if (strcasecmp(s, level_names[i]) == 0)
                        return i;
        if (strcasecmp(s, "error") == 0)
                return LOG_ERR;
        if (strcasecmp(s, "warn") == 0)
                return LOG_WARNING;
        return -EINVAL;
}

void log_set_max_level(int level) {
        max_level = level < LOG_EMERG ? LOG_EMERG : level > LOG_DEBUG ? LOG_DEBUG : level;
}

int log_get_max_level(void) {
        return max_level;
}

int log_set_max_level_from_string(const char *s) {
        int level = log_level_from_string(s);

        if (level < 0)
                return level;
        log_set_max_level(level);
        return 0;
}

/* $JOURNAL_STREAM is "DEVICE:INODE" of the stream systemd connected stderr to. */
static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

void log_setup(const char *program_name) {
        const char *e;

        program = program_name;
        to_journal = stderr_is_journal();

        e = getenv("ORRERY_DEBUG");
        if (e && strcmp(e, "0") != 0 && *e)
                log_set_max_level(LOG_DEBUG);
        e = getenv("ORRERY_LOG_LEVEL");
        if (e)
                (void) log_set_max_level_from_string(e);
}

int log_internal(int level, int error, const char *file, int line, const char *format, ...) {
        char buf[2048];
        size_t n = 0;
        va_list ap;

        if (to_journal)
                n = (size_t) snprintf(buf, sizeof buf, "<%d>", level);
        else if (program)
                n = (size_t) snprintf(buf, sizeof buf, "%s: ", program);
        if (level == LOG_DEBUG && n < sizeof buf)
                n += (size_t) snprintf(buf + n, sizeof buf - n, "debug: ");
        if (n >= sizeof buf)
                n = sizeof buf - 1;

        /* %m prints the error we were given, whatever errno says now. */
        errno = error;
        va_start(ap, format);
        int k = vsnprintf(buf + n, sizeof buf - n, format, ap);
        va_end(ap);
        if (k > 0)
                n += (size_t) k;
        if (n > sizeof buf - 2)
                n = sizeof buf - 2;
        buf[n++] = '\n';

        /* One write(2): lines from several threads never interleave. */
        (void) !write(STDERR_FILENO, buf, n);
        (void) file;
        (void) line;
        return -error;
}

/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * One way to log for the whole tree (emulator, services, guest-side host
 * tools), after systemd's rule:
 *
 *   - library code returns -errno and logs at most at debug level;
 *   - the program's top level logs once, with context:
 *         return log_error_errno(r, "Failed to open kernel '%s': %m", path);
 *
 * %m in a log_*_errno() format prints strerror of the error passed, not of
 * whatever errno happens to hold. Every log_*_errno() returns -abs(error), so
 * it can end a function.
 *
 * Output goes to stderr, one line per call, written whole (threads do not
 * interleave). When stderr is connected to the journal ($JOURNAL_STREAM
 * names it), lines carry the kernel-style "<N>" priority prefix so the
 * journal files them at the right level; on a terminal or a file they read
 * "program: message".
 *
 * The level: log_setup() reads $ORRERY_LOG_LEVEL (a name: err, warning,
 * notice, info, debug; or 0-7); $ORRERY_DEBUG=1 is kept as a synonym for
 * debug. Programs with --log-level call log_set_max_level_from_string().
 * Default: info.
 */

#include <stdbool.h>
#include <syslog.h>

#include "macro.h"

/* Names the program in messages and reads the level from the environment. */
void log_setup(const char *program_name);

void log_set_max_level(int level);
int log_get_max_level(void);
/* Returns 0, or -EINVAL for a string that names no level. */
int log_set_max_level_from_string(const char *s);
/* Returns the level (0-7) or -EINVAL. */
int log_level_from_string(const char *s);

_printf_(5, 6) int log_internal(int level, int error, const char *file, int line, const char *format, ...);

static inline bool log_level_enabled(int level) {
        return level <= log_get_max_level();
}

#define log_full_errno(level, error, ...)                                                                    \
        ({                                                                                                   \
                int _level = (level), _e = (error);                                                          \
                _e = _e < 0 ? -_e : _e;                                                                      \
                log_level_enabled(_level) ? log_internal(_level, _e, __FILE__, __LINE__, __VA_ARGS__) : -_e; \
        })
#define log_full(level, ...) ((void) log_full_errno((level), 0, __VA_ARGS__))

#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(error, ...) log_full_errno(LOG_DEBUG, (error), __VA_ARGS__)
#define log_info_errno(error, ...) log_full_errno(LOG_INFO, (error), __VA_ARGS__)
#define log_notice_errno(error, ...) log_full_errno(LOG_NOTICE, (error), __VA_ARGS__)
#define log_warning_errno(error, ...) log_full_errno(LOG_WARNING, (error), __VA_ARGS__)
#define log_error_errno(error, ...) log_full_errno(LOG_ERR, (error), __VA_ARGS__)

/* For "out of memory" at a top level: logs and returns -ENOMEM. */
#define log_oom() log_error_errno(ENOMEM, "Out of memory.")

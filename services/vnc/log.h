/* SPDX-License-Identifier: MIT */
#pragma once

/* orrery-vnc's log: "orrery-vnc: MESSAGE" lines on stderr (the journal under systemd). */

#include <stdbool.h>

#include "macro.h"

void log_set_debug(bool on);
bool log_debug_enabled(void);
_printf_(1, 2) void log_info(const char *format, ...);
_printf_(1, 2) void log_error(const char *format, ...);
_printf_(1, 2) void log_debug(const char *format, ...);

/* SPDX-License-Identifier: MIT */
#pragma once

/* orrery-agent's logging: stderr (the journal under systemd); debug only with --verbose or ORRERY_DEBUG=1. */

#include <stdbool.h>

#include "macro.h"

extern bool log_verbose;

void log_full(bool debug, const char *fmt, ...) _printf_(2, 3);
#define log_debug(...) log_full(true, __VA_ARGS__)
#define log_info(...) log_full(false, __VA_ARGS__)
#define log_error(...) log_full(false, __VA_ARGS__)

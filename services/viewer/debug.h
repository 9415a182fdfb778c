/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * ORRERY_VIEWER_DEBUG=1: one line per event on stderr, for tests and
 * benchmarks (see README.md, "Debugging"): where widgets are, when frames
 * are drawn. Off, it costs one branch.
 */

#include <stdbool.h>

#include "macro.h"

extern bool viewer_debug_enabled;

void viewer_debug_init(void);
_printf_(1, 2) void viewer_debug(const char *fmt, ...);

/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The viewer logs through lib/log.h. ORRERY_VIEWER_DEBUG=1 (or
 * ORRERY_LOG_LEVEL=debug) adds one line per event on stderr, for tests and
 * benchmarks (see README.md, "Debugging"): where widgets are, when frames
 * are drawn. Off, it costs one branch.
 */

#include <stdbool.h>

#include "log.h"
#include "macro.h"

extern bool viewer_debug_enabled;

/* log_setup() plus ORRERY_VIEWER_DEBUG. */
void viewer_log_setup(void);

#define viewer_debug(...) log_debug(__VA_ARGS__)

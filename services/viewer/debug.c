/* SPDX-License-Identifier: MIT */

#include <stdlib.h>

#include "debug.h"

bool viewer_debug_enabled;

void viewer_log_setup(void) {
        const char *e = getenv("ORRERY_VIEWER_DEBUG");

        log_setup("orrery-viewer");
        if (e && *e && *e != '0')
                log_set_max_level(LOG_DEBUG);
        viewer_debug_enabled = log_level_enabled(LOG_DEBUG);
}

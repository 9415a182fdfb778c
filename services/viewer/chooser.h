/* SPDX-License-Identifier: MIT */
#pragma once

/* The window that lists the VMs on the bus, live, and opens the one picked. */

#include "viewer.h"

Chooser *chooser_new(Viewer *v);
void chooser_present(Chooser *c);
/* The bus connection is gone: say so instead of the list. */
void chooser_set_error(Chooser *c, const char *text);

/* SPDX-License-Identifier: MIT */
#pragma once

#include "orrery-client.h"

/* Writes fb as an 8-bit RGB PNG to path (created or truncated). Negative errno on failure. */
int monitor_write_png(const OrreryFramebuffer *fb, const char *path);

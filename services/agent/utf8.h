/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

/*
 * Copies src (valid UTF-8) into dst (size > 0 bytes), cut at a character
 * boundary so the result stays valid UTF-8; adds "…" when cut.
 */
void utf8_truncate(char *dst, size_t size, const char *src);

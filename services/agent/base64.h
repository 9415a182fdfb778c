/* SPDX-License-Identifier: MIT */
#pragma once

/* Standard base64 (RFC 4648, with padding), as QGA's guest-file-read/write use it. */

#include <stddef.h>
#include <stdint.h>

/* The encoded length of n bytes, without the terminating NUL. */
size_t base64_encoded_size(size_t n);
/* Writes base64_encoded_size(n) characters and a NUL to out. */
void base64_encode(const uint8_t *in, size_t n, char *out);
/*
 * Decodes exactly the n characters of in (no whitespace, padding only at
 * the end) into out, which holds at most out_size bytes. Returns the
 * decoded length, -EBADMSG for anything that is not canonical base64,
 * -ENOBUFS if it does not fit.
 */
long base64_decode(const char *in, size_t n, uint8_t *out, size_t out_size);

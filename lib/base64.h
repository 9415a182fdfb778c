/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Standard base64 (RFC 4648, standard alphabet, '=' padding), as QGA's
 * guest-file-read/-write and guest-exec carry file contents. One
 * implementation for the host's orrery-agent and the guest's
 * orrery-guest-agent, so the two ends cannot disagree.
 */

#include <stddef.h>
#include <stdint.h>

typedef enum Base64Flags {
        /*
         * Accept what QGA accepts from its clients: the padding may be left
         * out, and the bits a short final group drops need not be zero.
         * Without it, only canonical base64 decodes (what a well-behaved
         * peer sends, and what a hostile one must not get around).
         */
        BASE64_LENIENT = 1 << 0,
} Base64Flags;

/* The encoded length of n bytes, without the terminating NUL. */
size_t base64_encoded_size(size_t n);
/* Writes base64_encoded_size(n) characters and a NUL to out. */
void base64_encode(const uint8_t *in, size_t n, char *out);
/* The most bytes n characters can decode to: the out_size that always fits. */
size_t base64_decoded_max(size_t n);
/*
 * Decodes exactly the n characters of in (no whitespace, padding only at
 * the end) into out, which holds out_size bytes. Returns the decoded
 * length, -EBADMSG for input that is not base64 (by flags' rules),
 * -ENOBUFS if the result does not fit.
 */
long base64_decode(const char *in, size_t n, uint8_t *out, size_t out_size, Base64Flags flags);

/* base64_encode() into a new string; its length in *ret_len. NULL when out of memory. */
char *base64_encode_new(const uint8_t *in, size_t n, size_t *ret_len);
/* base64_decode() into a new buffer (never NULL on success, even when empty). */
long base64_decode_new(const char *in, size_t n, uint8_t **ret, Base64Flags flags);

/* SPDX-License-Identifier: MIT */

/*
 * lib/base64: RFC 4648's test vectors both ways, the strict rules the
 * host applies to the guest's replies, and the lenient ones the guest
 * agent applies to its client's requests (as QGA does).
 */

#include <errno.h>
#include <stdlib.h>

#include "base64.h"
#include "tap.h"

/* RFC 4648, section 10. */
static const struct {
        const char *plain, *encoded;
} vectors[] = {
        { "", "" },         { "f", "Zg==" },        { "fo", "Zm8=" },         { "foo", "Zm9v" },
        { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
};

static long decode(const char *s, uint8_t *out, size_t out_size, Base64Flags flags) {
        return base64_decode(s, strlen(s), out, out_size, flags);
}

static void test_vectors(void) {
        for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
                const char *plain = vectors[i].plain, *enc = vectors[i].encoded;
                char text[16];
                uint8_t bytes[16];
                long k;

                base64_encode((const uint8_t *) plain, strlen(plain), text);
                CHECK(strcmp(text, enc) == 0 && base64_encoded_size(strlen(plain)) == strlen(enc),
                      "encode \"%s\" -> \"%s\" (got \"%s\")", plain, enc, text);
                k = decode(enc, bytes, sizeof(bytes), 0);
                CHECK(k == (long) strlen(plain) && memcmp(bytes, plain, (size_t) k) == 0, "decode \"%s\" -> \"%s\"",
                      enc, plain);
        }
}

static void test_all_bytes(void) {
        uint8_t in[256], out[256];
        char text[345];
        long k;

        for (size_t i = 0; i < sizeof(in); i++)
                in[i] = (uint8_t) (255 - i);
        for (size_t n = 0; n <= sizeof(in); n += 37) {
                base64_encode(in, n, text);
                k = decode(text, out, base64_decoded_max(strlen(text)), 0);
                CHECK(k == (long) n && memcmp(in, out, n) == 0, "every byte value round-trips (%zu bytes)", n);
        }
}

static void test_strict(void) {
        uint8_t out[16];

        CHECK(decode("Zg", out, sizeof(out), 0) == -EBADMSG, "strict: missing padding refused");
        CHECK(decode("Zh==", out, sizeof(out), 0) == -EBADMSG, "strict: non-zero dropped bits refused");
        CHECK(decode("Zm8=Zm8=", out, sizeof(out), 0) == -EBADMSG, "padding in the middle refused");
        CHECK(decode("Zm9v\n", out, sizeof(out), 0) == -EBADMSG, "whitespace refused");
        CHECK(decode("Zm9*", out, sizeof(out), 0) == -EBADMSG, "a character outside the alphabet refused");
        CHECK(decode("Z===", out, sizeof(out), 0) == -EBADMSG, "three '=' refused");
        CHECK(decode("====", out, sizeof(out), 0) == -EBADMSG, "only padding refused");
        CHECK(decode("Zm9vYmFy", out, 5, 0) == -ENOBUFS, "output larger than the buffer: -ENOBUFS");
        CHECK(decode("Zm9vYg==", out, 3, 0) == -ENOBUFS, "a final short group that does not fit: -ENOBUFS");
        CHECK(decode("Zm9vYg==", out, 4, 0) == 4, "exactly fitting output decodes");
}

static void test_lenient(void) {
        uint8_t out[16];

        CHECK(decode("Zg", out, sizeof(out), BASE64_LENIENT) == 1 && out[0] == 'f', "lenient: padding may be left out");
        CHECK(decode("Zm8", out, sizeof(out), BASE64_LENIENT) == 2 && memcmp(out, "fo", 2) == 0,
              "lenient: three characters make two bytes");
        CHECK(decode("Zh==", out, sizeof(out), BASE64_LENIENT) == 1 && out[0] == 'f',
              "lenient: dropped bits are ignored");
        CHECK(decode("Z", out, sizeof(out), BASE64_LENIENT) == -EBADMSG, "lenient: one lone character refused");
        CHECK(decode("Zm8=x", out, sizeof(out), BASE64_LENIENT) == -EBADMSG, "lenient: data after padding refused");
        CHECK(decode("Zm=", out, sizeof(out), BASE64_LENIENT) == -EBADMSG, "lenient: padding that completes no group refused");
}

static void test_new(void) {
        uint8_t *data = NULL;
        size_t len = 0;
        char *text = base64_encode_new((const uint8_t *) "foobar", 6, &len);
        long k;

        CHECK(text && len == 8 && strcmp(text, "Zm9vYmFy") == 0, "base64_encode_new");
        k = base64_decode_new(text, len, &data, 0);
        CHECK(k == 6 && data && memcmp(data, "foobar", 6) == 0, "base64_decode_new");
        free(data);
        data = NULL;
        CHECK(base64_decode_new("", 0, &data, 0) == 0 && data, "base64_decode_new of nothing gives an empty buffer");
        free(data);
        free(text);
}

int main(void) {
        test_vectors();
        test_all_bytes();
        test_strict();
        test_lenient();
        test_new();
        return tap_finish();
}

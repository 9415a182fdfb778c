/* SPDX-License-Identifier: MIT */
/*
 * SiFive test finisher: the three actions, the exit code, the access sizes
 * OpenSBI and Linux use, and hostile MMIO.
 */

#include <errno.h>

#include "macro.h"
#include "tap.h"
#include "devices/sifive_test.h"

typedef struct Seen {
        unsigned calls;
        SifiveTestAction action;
        int code;
} Seen;

static void seen_action(void *opaque, SifiveTestAction action, int code) {
        Seen *s = opaque;

        s->calls++;
        s->action = action;
        s->code = code;
}

static uint64_t xorshift(uint64_t *s) {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        return *s;
}

static void test_actions(void) {
        _cleanup_(sifive_test_freep) SifiveTest *t = NULL;
        Seen s = { 0 };

        CHECK_EQ_U64(sifive_test_new(seen_action, &s, NULL), (uint64_t) -EINVAL, "ret=NULL rejected");
        CHECK_EQ_U64(sifive_test_new(seen_action, &s, &t), 0, "sifive_test_new");

        sifive_test_mmio_ops.write(t, 0, 0x5555, 4);
        CHECK(s.calls == 1 && s.action == SIFIVE_TEST_PASS && s.code == 0, "0x5555: pass, code 0");

        sifive_test_mmio_ops.write(t, 0, 0x3333, 4);
        CHECK(s.calls == 2 && s.action == SIFIVE_TEST_FAIL && s.code == 0, "0x3333: fail, code 0");

        sifive_test_mmio_ops.write(t, 0, 0x00423333, 4);
        CHECK(s.calls == 3 && s.action == SIFIVE_TEST_FAIL && s.code == 0x42, "0x00423333: fail, code 0x42");

        sifive_test_mmio_ops.write(t, 0, 0xffff3333, 4);
        CHECK(s.calls == 4 && s.action == SIFIVE_TEST_FAIL && s.code == 0xffff, "0xffff3333: fail, code 65535");

        sifive_test_mmio_ops.write(t, 0, 0x7777, 4);
        CHECK(s.calls == 5 && s.action == SIFIVE_TEST_RESET && s.code == 0, "0x7777: reset");

        sifive_test_mmio_ops.write(t, 0, 0x00015555, 4);
        CHECK(s.calls == 6 && s.action == SIFIVE_TEST_PASS && s.code == 0, "pass ignores the upper half");

        /* OpenSBI's driver writes 16 bits. */
        sifive_test_mmio_ops.write(t, 0, 0x5555, 2);
        CHECK(s.calls == 7 && s.action == SIFIVE_TEST_PASS, "16-bit 0x5555: pass");
        sifive_test_mmio_ops.write(t, 0, 0x7777, 2);
        CHECK(s.calls == 8 && s.action == SIFIVE_TEST_RESET, "16-bit 0x7777: reset");
        sifive_test_mmio_ops.write(t, 0, 0x00053333, 2);
        CHECK(s.calls == 9 && s.action == SIFIVE_TEST_FAIL && s.code == 0, "16-bit write truncates: fail, code 0");

        s.calls = 0;
        sifive_test_mmio_ops.write(t, 0, 0x1234, 4);
        sifive_test_mmio_ops.write(t, 0, 0, 4);
        sifive_test_mmio_ops.write(t, 0, 0x5556, 4);
        sifive_test_mmio_ops.write(t, 0, 0x55, 1);
        sifive_test_mmio_ops.write(t, 0, 0x5555, 1);
        sifive_test_mmio_ops.write(t, 0, 0x5555, 8);
        sifive_test_mmio_ops.write(t, 4, 0x5555, 4);
        sifive_test_mmio_ops.write(t, 2, 0x5555, 2);
        sifive_test_mmio_ops.write(t, 0xffc, 0x5555, 4);
        CHECK_EQ_U64(s.calls, 0, "other values, sizes and offsets ignored");

        CHECK_EQ_U64(sifive_test_mmio_ops.read(t, 0, 4), 0, "reads return 0");
        sifive_test_reset(t);
        CHECK_EQ_U64(s.calls, 0, "reset itself reports no action");
        sifive_test_mmio_ops.write(t, 0, 0x00073333, 4);
        CHECK(s.calls == 1 && s.action == SIFIVE_TEST_FAIL && s.code == 7,
              "after reset the finisher still reports (0x00073333: fail, code 7)");
}

static void test_hostile(void) {
        static const unsigned sizes[] = { 1, 2, 4, 8 };
        _cleanup_(sifive_test_freep) SifiveTest *t = NULL;
        _cleanup_(sifive_test_freep) SifiveTest *quiet = NULL;
        Seen s = { 0 };
        uint64_t seed = 0xa4093822299f31d0ULL, nonzero = 0;
        unsigned expected = 0;

        CHECK_EQ_U64(sifive_test_new(seen_action, &s, &t), 0, "sifive_test_new");
        CHECK_EQ_U64(sifive_test_new(NULL, NULL, &quiet), 0, "sifive_test_new without a callback");

        for (unsigned round = 0; round < 20; round++)
                for (uint64_t offset = 0; offset < 0x1000; offset++)
                        for (unsigned i = 0; i < ELEMENTSOF(sizes); i++) {
                                uint64_t v = xorshift(&seed);
                                uint16_t low = (uint16_t) v;

                                if (offset + sizes[i] > 0x1000)
                                        continue;
                                if (offset == 0 && (sizes[i] == 2 || sizes[i] == 4) &&
                                    (low == 0x5555 || low == 0x3333 || low == 0x7777))
                                        expected++;
                                sifive_test_mmio_ops.write(t, offset, v, sizes[i]);
                                sifive_test_mmio_ops.write(quiet, offset, v, sizes[i]);
                                nonzero |= sifive_test_mmio_ops.read(t, offset, sizes[i]);
                        }

        /* Make sure each action kind is exercised at least once at offset 0. */
        sifive_test_mmio_ops.write(quiet, 0, 0x5555, 4);
        sifive_test_mmio_ops.write(quiet, 0, 0x3333, 4);
        sifive_test_mmio_ops.write(quiet, 0, 0x7777, 4);

        CHECK(true, "hostile MMIO: survived");
        CHECK_EQ_U64(s.calls, expected, "actions only for the three values");
        CHECK_EQ_U64(nonzero, 0, "every read returned 0");
        s.calls = 0;
        sifive_test_mmio_ops.write(NULL, 0, 0x5555, 4);
        CHECK_EQ_U64(nonzero | sifive_test_mmio_ops.read(NULL, 0, 4), 0, "read with a NULL opaque returns 0");
        CHECK_EQ_U64(s.calls, 0, "write with a NULL opaque: survived, no action reported");
}

int main(void) {
        test_actions();
        test_hostile();
        return tap_finish();
}

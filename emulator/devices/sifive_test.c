/* SPDX-License-Identifier: MIT */
/*
 * SiFive test finisher: see sifive_test.h.
 */

#include <errno.h>
#include <stdlib.h>

#include "macro.h"
#include "devices/sifive_test.h"

/* Constant after sifive_test_new(): nothing to lock. */
struct SifiveTest {
        SifiveTestActionFn action;
        void *opaque;
};

int sifive_test_new(SifiveTestActionFn action, void *opaque, SifiveTest **ret) {
        SifiveTest *test;

        if (!ret)
                return -EINVAL;

        test = calloc(1, sizeof(SifiveTest));
        if (!test)
                return -ENOMEM;

        test->action = action;
        test->opaque = opaque;

        *ret = test;
        return 0;
}

SifiveTest *sifive_test_free(SifiveTest *test) {
        free(test);
        return NULL;
}

void sifive_test_reset(_unused_ SifiveTest *test) {
}

uint64_t sifive_test_mmio_read(_unused_ void *opaque, _unused_ uint64_t offset, _unused_ unsigned size) {
        return 0;
}

void sifive_test_mmio_write(void *opaque, uint64_t offset, uint64_t value, unsigned size) {
        SifiveTest *test = opaque;
        uint32_t v;

        if (!test || !test->action || offset != 0)
                return;

        if (size == 2)
                v = (uint16_t) value;
        else if (size == 4)
                v = (uint32_t) value;
        else
                return;

        switch (v & 0xffff) {
        case SIFIVE_TEST_FINISHER_PASS:
                test->action(test->opaque, SIFIVE_TEST_PASS, 0);
                break;
        case SIFIVE_TEST_FINISHER_FAIL:
                test->action(test->opaque, SIFIVE_TEST_FAIL, (int) (v >> 16));
                break;
        case SIFIVE_TEST_FINISHER_RESET:
                test->action(test->opaque, SIFIVE_TEST_RESET, 0);
                break;
        default:
                break;
        }
}

const MmioOps sifive_test_mmio_ops = {
        .read = sifive_test_mmio_read,
        .write = sifive_test_mmio_write,
};

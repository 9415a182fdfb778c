/* SPDX-License-Identifier: MIT */
/*
 * SiFive test finisher: see sifive_test.h.
 */

#include <errno.h>
#include <libfdt.h>
#include <stdlib.h>

#include "macro.h"
#include "devices/sifive_test.h"
#include "machine/fdt.h"
#include "machine/memmap.h"

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

/* ---- device descriptor ---- */

static void forward_power(void *opaque, SifiveTestAction action, int code) {
        const DeviceHost *host = opaque;

        if (host->power)
                host->power(host->opaque, (unsigned) action, code);
}

static int test_create(const DeviceContext *ctx, void **ret) {
        /* The DeviceHost outlives its devices. */
        return sifive_test_new(forward_power, (void *) ctx->host, (SifiveTest **) ret);
}

static void test_free(void *dev) {
        sifive_test_free(dev);
}

static void test_reset(void *dev) {
        sifive_test_reset(dev);
}

static int test_fdt_node(void *dev, const DeviceContext *ctx, void *fdt) {
        static const char compat[] = "sifive,test1\0sifive,test0\0syscon";

        DT_TRY(dt_begin_device(fdt, "test", ctx, compat, sizeof(compat)));
        DT_TRY(fdt_property_u32(fdt, "phandle", DT_PHANDLE_TEST));
        return dt_err(fdt_end_node(fdt));
}

/* No state: a version field only, so that a later one can be told apart. */
static int test_save(void *dev, StateWriter *w) {
        state_put_u32(w, 0);
        return state_writer_error(w);
}

static int test_load(void *dev, StateReader *r) {
        uint32_t version;

        return state_get_u32_max(r, 0, &version);
}

const DeviceDescriptor sifive_test_device = {
        .name = "sifive-test",
        .base = MEMMAP_TEST_BASE,
        .size = MEMMAP_TEST_SIZE,
        .access_sizes = DEVICE_ACCESS_2 | DEVICE_ACCESS_4,
        .mmio = &sifive_test_mmio_ops,
        .create = test_create,
        .free = test_free,
        .reset = test_reset,
        .fdt_node = test_fdt_node,
        .save = test_save,
        .load = test_load,
};

/* SPDX-License-Identifier: MIT */
/*
 * PLIC: register decode, gateway (level, claim, complete, re-pend),
 * priority/threshold arbitration, per-context enables, the output callback,
 * and hostile MMIO.
 */

#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <stdatomic.h>

#include "macro.h"
#include "tap.h"
#include "devices/plic.h"

#define PRIORITY(s)       (0x000000ULL + 4ULL * (s))
#define PENDING(w)        (0x001000ULL + 4ULL * (w))
#define ENABLE(c, w)      (0x002000ULL + 0x80ULL * (c) + 4ULL * (w))
#define THRESHOLD(c)      (0x200000ULL + 0x1000ULL * (c))
#define CLAIM(c)          (0x200004ULL + 0x1000ULL * (c))

#define MAX_CONTEXTS 8

typedef struct Recorder {
        unsigned calls;
        unsigned last_hart;
        bool last_machine_mode;
        bool last_level;
        bool level[MAX_CONTEXTS];
        bool redundant;         /* a call that did not change the level */
        bool bad_hart;
} Recorder;

static void record(void *opaque, unsigned hart, bool machine_mode, bool level) {
        Recorder *r = opaque;
        unsigned c = hart * 2 + (machine_mode ? 0 : 1);

        r->calls++;
        r->last_hart = hart;
        r->last_machine_mode = machine_mode;
        r->last_level = level;
        if (c >= MAX_CONTEXTS) {
                r->bad_hart = true;
                return;
        }
        if (r->level[c] == level)
                r->redundant = true;
        r->level[c] = level;
}

static uint32_t rd(Plic *p, uint64_t offset) {
        return (uint32_t) plic_mmio_ops.read(p, offset, 4);
}

static void wr(Plic *p, uint64_t offset, uint32_t value) {
        plic_mmio_ops.write(p, offset, value, 4);
}

static uint64_t xorshift(uint64_t *s) {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        return *s;
}

static void test_create(void) {
        Plic *p = NULL;
        Recorder r = { 0 };

        CHECK_EQ_U64(plic_new(0, record, &r, &p), (uint64_t) -EINVAL, "0 harts rejected");
        CHECK(!p, "ret untouched on failure");
        CHECK_EQ_U64(plic_new(PLIC_MAX_HARTS + 1, record, &r, &p), (uint64_t) -EINVAL, "too many harts rejected");
        CHECK_EQ_U64(plic_new(1, record, &r, NULL), (uint64_t) -EINVAL, "NULL ret rejected");
        CHECK_EQ_U64(plic_new(PLIC_MAX_HARTS, NULL, NULL, &p), 0, "max harts accepted");
        wr(p, THRESHOLD(2 * PLIC_MAX_HARTS - 1), 5);
        CHECK_EQ_U64(rd(p, THRESHOLD(2 * PLIC_MAX_HARTS - 1)), 5, "last context of the window decodes");
        p = plic_free(p);
        CHECK(!p, "plic_free returns NULL");
        CHECK(!plic_free(NULL), "plic_free(NULL) is a no-op");
}

static void test_registers(void) {
        _cleanup_(plic_freep) Plic *p = NULL;
        Recorder r = { 0 };
        unsigned calls;

        CHECK_EQ_U64(plic_new(1, record, &r, &p), 0, "plic_new(1)");

        wr(p, PRIORITY(10), 3);
        CHECK_EQ_U64(rd(p, PRIORITY(10)), 3, "priority read back");
        wr(p, PRIORITY(10), 0xffffffff);
        CHECK_EQ_U64(rd(p, PRIORITY(10)), 7, "priority is 3 bits (WARL)");
        wr(p, PRIORITY(0), 5);
        CHECK_EQ_U64(rd(p, PRIORITY(0)), 0, "source 0 priority hardwired to 0");
        wr(p, PRIORITY(PLIC_NUM_SOURCES), 5);
        CHECK_EQ_U64(rd(p, PRIORITY(PLIC_NUM_SOURCES)), 0, "priority past the last source reads 0");
        wr(p, PRIORITY(PLIC_NUM_SOURCES - 1), 2);
        CHECK_EQ_U64(rd(p, PRIORITY(PLIC_NUM_SOURCES - 1)), 2, "last source's priority");

        wr(p, ENABLE(1, 0), 0xffffffff);
        CHECK_EQ_U64(rd(p, ENABLE(1, 0)), 0xfffffffe, "enable bit of source 0 hardwired to 0");
        CHECK_EQ_U64(rd(p, ENABLE(0, 0)), 0, "enables are per context");
        wr(p, ENABLE(1, 2), 0xffffffff);
        CHECK_EQ_U64(rd(p, ENABLE(1, 2)), 0xffffffff >> (96 - PLIC_NUM_SOURCES), "enable word 2 limited to existing sources");
        wr(p, ENABLE(1, 3), 0xffffffff);
        CHECK_EQ_U64(rd(p, ENABLE(1, 3)), 0, "enable word past the sources reads 0");
        wr(p, ENABLE(2, 0), 0xffffffff);
        CHECK_EQ_U64(rd(p, ENABLE(2, 0)), 0, "enable of a context that does not exist reads 0");

        wr(p, THRESHOLD(0), 0xff);
        CHECK_EQ_U64(rd(p, THRESHOLD(0)), 7, "threshold is 3 bits (WARL)");
        wr(p, THRESHOLD(2), 3);
        CHECK_EQ_U64(rd(p, THRESHOLD(2)), 0, "threshold of a missing context reads 0");
        CHECK_EQ_U64(rd(p, THRESHOLD(0) + 8), 0, "reserved context register reads 0");

        plic_set_irq(p, 10, true);
        CHECK_EQ_U64(rd(p, PENDING(0)), 1U << 10, "pending bit follows the line");
        wr(p, PENDING(0), 0);
        CHECK_EQ_U64(rd(p, PENDING(0)), 1U << 10, "pending is read-only");
        plic_set_irq(p, 10, false);
        CHECK_EQ_U64(rd(p, PENDING(0)), 0, "pending clears when the line drops before a claim");

        /* Sizes and alignments other than aligned 4 bytes are not decoded. */
        plic_mmio_ops.write(p, PRIORITY(5), 3, 1);
        plic_mmio_ops.write(p, PRIORITY(6), 3, 2);
        plic_mmio_ops.write(p, PRIORITY(7), 3, 8);
        plic_mmio_ops.write(p, PRIORITY(8) + 1, 3, 4);
        CHECK(rd(p, PRIORITY(5)) == 0 && rd(p, PRIORITY(6)) == 0 && rd(p, PRIORITY(7)) == 0 && rd(p, PRIORITY(8)) == 0,
              "byte/half/double/unaligned writes ignored");
        wr(p, PRIORITY(5), 4);
        CHECK_EQ_U64(plic_mmio_ops.read(p, PRIORITY(5), 8), 0, "8-byte read returns 0");
        CHECK_EQ_U64(plic_mmio_ops.read(p, PRIORITY(5), 1), 0, "1-byte read returns 0");

        /* Out-of-range sources are ignored. */
        plic_set_irq(p, 0, true);
        plic_set_irq(p, PLIC_NUM_SOURCES, true);
        plic_set_irq(p, 100000, true);
        plic_set_irq(p, UINT32_MAX, true);
        CHECK(rd(p, PENDING(0)) == 0 && rd(p, PENDING(1)) == 0 && rd(p, PENDING(2)) == 0 && rd(p, PENDING(3)) == 0,
              "set_irq of source 0 / out-of-range sources ignored");
        calls = r.calls;
        plic_set_irq(NULL, 1, true);
        CHECK(r.calls == calls && rd(p, PENDING(0)) == 0, "set_irq(NULL): survived, no output change, nothing pending");
        /* Context 1 has source 10 enabled at priority 7 above: its output went up and down once. */
        CHECK(r.calls == 2 && !r.level[1] && !r.level[0], "output followed the line of an enabled source");
}

static void test_claim_complete(void) {
        _cleanup_(plic_freep) Plic *p = NULL;
        Recorder r = { 0 };

        CHECK_EQ_U64(plic_new(1, record, &r, &p), 0, "plic_new(1)");

        /* S-mode context of hart 0 (context 1) takes source 10. */
        wr(p, PRIORITY(10), 1);
        wr(p, ENABLE(1, 0), 1U << 10);
        CHECK_EQ_U64(r.calls, 0, "enabling with nothing pending changes nothing");

        plic_set_irq(p, 10, true);
        CHECK_EQ_U64(r.calls, 1, "line high: one callback");
        CHECK(r.last_hart == 0 && !r.last_machine_mode && r.last_level, "callback: hart 0, S-mode, high");
        CHECK(plic_get_external(p, 0, false), "plic_get_external(S) high");
        CHECK(!plic_get_external(p, 0, true), "plic_get_external(M) low");
        CHECK(!plic_get_external(p, 1, false), "plic_get_external of missing hart is false");

        plic_set_irq(p, 10, true);
        CHECK_EQ_U64(r.calls, 1, "same level again: no callback");

        CHECK_EQ_U64(rd(p, CLAIM(0)), 0, "M context claims nothing (not enabled)");
        CHECK_EQ_U64(rd(p, CLAIM(1)), 10, "S context claims 10");
        CHECK_EQ_U64(rd(p, PENDING(0)), 0, "claim clears pending");
        CHECK(r.calls == 2 && !r.last_level, "claim lowers the output");
        CHECK_EQ_U64(rd(p, CLAIM(1)), 0, "second claim returns 0");

        /* While claimed the line is ignored. */
        plic_set_irq(p, 10, false);
        plic_set_irq(p, 10, true);
        CHECK_EQ_U64(rd(p, PENDING(0)), 0, "line toggles while claimed do not pend");
        CHECK_EQ_U64(r.calls, 2, "no callback while claimed");

        /* Complete with the line still high: re-pends at once. */
        wr(p, CLAIM(1), 10);
        CHECK_EQ_U64(rd(p, PENDING(0)), 1U << 10, "complete with line high re-pends");
        CHECK(r.calls == 3 && r.last_level, "complete with line high raises the output again");

        CHECK_EQ_U64(rd(p, CLAIM(1)), 10, "claim again");
        plic_set_irq(p, 10, false);
        wr(p, CLAIM(1), 10);
        CHECK_EQ_U64(rd(p, PENDING(0)), 0, "complete with line low does not re-pend");
        CHECK(r.calls == 4 && !r.last_level, "output stays low");

        /* Completion of a source not enabled for the context is ignored. */
        plic_set_irq(p, 10, true);
        CHECK_EQ_U64(rd(p, CLAIM(1)), 10, "claim 10");
        wr(p, CLAIM(0), 10);
        CHECK_EQ_U64(rd(p, PENDING(0)), 0, "complete from a context without the enable is ignored");
        wr(p, ENABLE(1, 0), 0);
        wr(p, CLAIM(1), 10);
        CHECK_EQ_U64(rd(p, PENDING(0)), 0, "complete after disabling is ignored");
        wr(p, CLAIM(1), 0);
        wr(p, CLAIM(1), PLIC_NUM_SOURCES);
        wr(p, CLAIM(1), 0xffffffff);
        CHECK_EQ_U64(rd(p, PENDING(0)), 0, "complete of source 0 / out-of-range ignored");
        wr(p, ENABLE(1, 0), 1U << 10);
        wr(p, CLAIM(1), 10);
        CHECK_EQ_U64(rd(p, PENDING(0)), 1U << 10, "complete once enabled again re-pends");
        CHECK(r.level[1], "output high again");

        /* Complete of a source that was never claimed is harmless. */
        wr(p, CLAIM(1), 10);
        CHECK_EQ_U64(rd(p, PENDING(0)), 1U << 10, "spurious complete keeps pending = line");

        /* A source enabled in two contexts is claimed once. */
        wr(p, ENABLE(0, 0), 1U << 10);
        CHECK(r.level[0] && r.level[1], "both contexts see it");
        CHECK_EQ_U64(rd(p, CLAIM(0)), 10, "M context claims it");
        CHECK(!r.level[0] && !r.level[1], "both outputs drop after the claim");
        CHECK_EQ_U64(rd(p, CLAIM(1)), 0, "S context gets nothing");
        plic_set_irq(p, 10, false);
        wr(p, CLAIM(0), 10);

        CHECK(!r.redundant && !r.bad_hart, "callback only on transitions, valid harts");
}

static void test_arbitration(void) {
        _cleanup_(plic_freep) Plic *p = NULL;
        Recorder r = { 0 };

        CHECK_EQ_U64(plic_new(1, record, &r, &p), 0, "plic_new(1)");

        wr(p, ENABLE(1, 0), 0xffffffff);
        wr(p, ENABLE(1, 1), 0xffffffff);
        wr(p, ENABLE(1, 2), 0xffffffff);

        /* Priority 0 never interrupts. */
        plic_set_irq(p, 5, true);
        CHECK(!r.level[1], "priority 0 source does not raise the output");
        CHECK_EQ_U64(rd(p, CLAIM(1)), 0, "priority 0 source is not claimable");
        CHECK_EQ_U64(rd(p, PENDING(0)), 1U << 5, "but it is pending");

        wr(p, PRIORITY(5), 2);
        CHECK(r.level[1], "raising the priority raises the output");

        /* Threshold: strictly greater priorities only. */
        wr(p, THRESHOLD(1), 2);
        CHECK(!r.level[1], "priority == threshold masked");
        CHECK_EQ_U64(rd(p, CLAIM(1)), 0, "claim returns 0 when masked");
        CHECK_EQ_U64(rd(p, PENDING(0)), 1U << 5, "masked claim leaves pending alone");
        wr(p, THRESHOLD(1), 1);
        CHECK(r.level[1], "priority > threshold unmasked");

        /* Highest priority wins; ties go to the lowest id. */
        wr(p, PRIORITY(40), 2);
        wr(p, PRIORITY(70), 6);
        wr(p, PRIORITY(90), 6);
        plic_set_irq(p, 40, true);
        plic_set_irq(p, 90, true);
        plic_set_irq(p, 70, true);
        CHECK_EQ_U64(rd(p, PENDING(1)), 1U << (40 - 32), "pending word 1");
        CHECK_EQ_U64(rd(p, PENDING(2)), (1U << (70 - 64)) | (1U << (90 - 64)), "pending word 2");
        CHECK_EQ_U64(rd(p, CLAIM(1)), 70, "priority 6, lower id first");
        CHECK_EQ_U64(rd(p, CLAIM(1)), 90, "then the other priority 6");
        CHECK_EQ_U64(rd(p, CLAIM(1)), 5, "then priority 2, lowest id");
        CHECK_EQ_U64(rd(p, CLAIM(1)), 40, "then 40");
        CHECK_EQ_U64(rd(p, CLAIM(1)), 0, "then nothing");
        CHECK(!r.level[1], "output low with everything claimed");

        /* Complete in any order. */
        plic_set_irq(p, 90, false);
        wr(p, CLAIM(1), 90);
        wr(p, CLAIM(1), 40);
        CHECK(r.level[1], "40 re-pends (line high)");
        CHECK_EQ_U64(rd(p, CLAIM(1)), 40, "claim 40 again");
        plic_set_irq(p, 40, false);
        plic_set_irq(p, 5, false);
        plic_set_irq(p, 70, false);
        wr(p, CLAIM(1), 5);
        wr(p, CLAIM(1), 40);
        wr(p, CLAIM(1), 70);
        CHECK(!r.level[1], "all quiet");
        CHECK_EQ_U64(rd(p, PENDING(0)) | rd(p, PENDING(1)) | rd(p, PENDING(2)), 0, "nothing pending");

        /* Lowering the enable or raising the threshold drops the output without a claim. */
        wr(p, PRIORITY(3), 1);
        wr(p, THRESHOLD(1), 0);
        plic_set_irq(p, 3, true);
        CHECK(r.level[1], "source 3 raises");
        wr(p, ENABLE(1, 0), 0);
        CHECK(!r.level[1], "disabling drops the output");
        wr(p, ENABLE(1, 0), 1U << 3);
        CHECK(r.level[1], "enabling raises it");
        wr(p, PRIORITY(3), 0);
        CHECK(!r.level[1], "priority 0 drops the output");

        CHECK(!r.redundant && !r.bad_hart, "callback only on transitions");
}

static void test_multi_hart_and_reset(void) {
        _cleanup_(plic_freep) Plic *p = NULL;
        Recorder r = { 0 };
        IrqLine line;

        CHECK_EQ_U64(plic_new(2, record, &r, &p), 0, "plic_new(2)");

        line = plic_irq_line(p, IRQ_UART0);
        CHECK(line.set == plic_irq_line_set && line.opaque == p && line.number == IRQ_UART0, "plic_irq_line");

        wr(p, PRIORITY(IRQ_UART0), 1);
        wr(p, ENABLE(2, 0), 1U << IRQ_UART0);   /* hart 1, M-mode */
        irq_line_set(&line, true);
        CHECK(r.calls == 1 && r.last_hart == 1 && r.last_machine_mode && r.last_level,
              "IrqLine raises hart 1 M-mode");
        CHECK(plic_get_external(p, 1, true), "plic_get_external(1, M)");
        CHECK_EQ_U64(rd(p, CLAIM(3)), 0, "hart 1 S-mode has nothing");
        CHECK_EQ_U64(rd(p, CLAIM(2)), IRQ_UART0, "hart 1 M-mode claims the UART");

        wr(p, PRIORITY(IRQ_RTC), 4);
        wr(p, ENABLE(3, 0), 1U << IRQ_RTC);
        wr(p, THRESHOLD(3), 3);
        plic_set_irq(p, IRQ_RTC, true);
        CHECK(r.level[3] && r.last_hart == 1 && !r.last_machine_mode, "hart 1 S-mode gets the RTC");

        /* Reset: config cleared, claims dropped, lines that are high pend again. */
        plic_reset(p);
        CHECK(!r.level[2] && !r.level[3], "reset drops all outputs");
        CHECK_EQ_U64(rd(p, PRIORITY(IRQ_RTC)), 0, "reset clears priorities");
        CHECK_EQ_U64(rd(p, ENABLE(3, 0)), 0, "reset clears enables");
        CHECK_EQ_U64(rd(p, THRESHOLD(3)), 0, "reset clears thresholds");
        CHECK_EQ_U64(rd(p, PENDING(0)), (1U << IRQ_UART0) | (1U << IRQ_RTC), "high lines pending after reset");
        wr(p, PRIORITY(IRQ_UART0), 1);
        wr(p, ENABLE(1, 0), 1U << IRQ_UART0);
        CHECK_EQ_U64(rd(p, CLAIM(1)), IRQ_UART0, "previously claimed source is claimable after reset");

        CHECK(!r.redundant && !r.bad_hart, "callback only on transitions");
}

/* Another thread toggles a line while this one claims and completes. */
typedef struct Toggler {
        Plic *plic;
        atomic_bool stop;
        unsigned toggles;
} Toggler;

static void *toggle_thread(void *arg) {
        Toggler *t = arg;

        while (!atomic_load(&t->stop)) {
                plic_set_irq(t->plic, 7, true);
                plic_set_irq(t->plic, 7, false);
                t->toggles++;
        }
        plic_set_irq(t->plic, 7, false);
        return NULL;
}

static void test_threads(void) {
        _cleanup_(plic_freep) Plic *p = NULL;
        Recorder r = { 0 };
        Toggler t = { 0 };
        pthread_t thread;
        unsigned claims = 0;

        CHECK_EQ_U64(plic_new(1, record, &r, &p), 0, "plic_new(1)");
        wr(p, PRIORITY(7), 1);
        wr(p, ENABLE(0, 0), 1U << 7);

        t.plic = p;
        CHECK_EQ_U64(pthread_create(&thread, NULL, toggle_thread, &t), 0, "start toggler");
        /*
         * Claim until a thousand claims succeeded; the bound is time, generous,
         * so a busy machine that schedules the toggler late still gets there.
         */
        struct timespec start, now;
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (unsigned i = 0; claims < 1000; i++) {
                if ((i & 1023) == 0) {
                        clock_gettime(CLOCK_MONOTONIC, &now);
                        if (now.tv_sec - start.tv_sec > 20)
                                break;
                }
                uint32_t s = rd(p, CLAIM(0));

                if (s == 0)
                        continue;
                if (s != 7)
                        break;
                claims++;
                wr(p, CLAIM(0), s);
        }
        atomic_store(&t.stop, true);
        pthread_join(thread, NULL);

        CHECK(claims > 0, "claimed the toggled line %u times over %u toggles", claims, t.toggles);
        CHECK_EQ_U64(rd(p, CLAIM(0)), 0, "nothing left once the line is low");
        CHECK(!r.level[0] && !plic_get_external(p, 0, true), "output low at the end");
        CHECK(!r.redundant, "callback only on transitions under contention");
}

static void test_hostile(void) {
        static const unsigned sizes[] = { 1, 2, 4, 8 };
        _cleanup_(plic_freep) Plic *p = NULL;
        Recorder r = { 0 };
        uint64_t seed = 0x9e3779b97f4a7c15ULL;
        bool consistent = true;

        CHECK_EQ_U64(plic_new(2, record, &r, &p), 0, "plic_new(2)");

        /* Every offset of the window, every size, random values; lines toggling meanwhile. */
        for (uint64_t offset = 0; offset < MEMMAP_PLIC_SIZE; offset++) {
                for (unsigned i = 0; i < ELEMENTSOF(sizes); i++) {
                        unsigned size = sizes[i];

                        if (offset + size > MEMMAP_PLIC_SIZE)
                                continue;
                        plic_mmio_ops.write(p, offset, xorshift(&seed), size);
                        (void) plic_mmio_ops.read(p, offset, size);
                }
                if ((offset & 0xfff) == 0)
                        plic_set_irq(p, (unsigned) (xorshift(&seed) % 128), xorshift(&seed) & 1);
        }

        /* Concentrated fire on the decoded registers. */
        for (unsigned i = 0; i < 2000000; i++) {
                uint64_t x = xorshift(&seed);
                uint64_t offset;

                switch (x % 5) {
                case 0:
                        offset = PRIORITY((x >> 8) % 128);
                        break;
                case 1:
                        offset = ENABLE((x >> 8) % 6, (x >> 16) % 5);
                        break;
                case 2:
                        offset = THRESHOLD((x >> 8) % 6);
                        break;
                case 3:
                        offset = CLAIM((x >> 8) % 6);
                        break;
                default:
                        plic_set_irq(p, (unsigned) ((x >> 8) % 100), (x >> 20) & 1);
                        continue;
                }
                if (x & (1ULL << 40))
                        plic_mmio_ops.write(p, offset, (x & (1ULL << 41)) ? (x >> 8) % 100 : xorshift(&seed), 4);
                else
                        (void) plic_mmio_ops.read(p, offset, 4);
        }

        for (unsigned c = 0; c < 4; c++)
                if (r.level[c] != plic_get_external(p, c / 2, c % 2 == 0))
                        consistent = false;

        CHECK(true, "hostile MMIO: survived");
        CHECK(consistent, "callback state matches plic_get_external()");
        CHECK(!r.redundant && !r.bad_hart, "callback only on transitions, valid harts (%u calls)", r.calls);

        /* Accesses with a NULL device are ignored. */
        plic_mmio_ops.write(NULL, 0, 0, 4);
        CHECK_EQ_U64(plic_mmio_ops.read(NULL, 4, 4), 0, "NULL opaque reads 0");
        /* Offsets far outside the window (the machine should never pass them). */
        plic_mmio_ops.write(p, UINT64_MAX - 3, 1, 4);
        CHECK_EQ_U64(plic_mmio_ops.read(p, UINT64_MAX - 3, 4), 0, "offset near 2^64 reads 0");
        CHECK_EQ_U64(plic_mmio_ops.read(p, 0x100000000ULL, 4), 0, "offset 4 GiB reads 0");
}

int main(void) {
        test_create();
        test_registers();
        test_claim_complete();
        test_arbitration();
        test_multi_hart_and_reset();
        test_threads();
        test_hostile();
        return tap_finish();
}

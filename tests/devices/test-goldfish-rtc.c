/* SPDX-License-Identifier: MIT */
/*
 * Goldfish RTC with an injected clock: time read latch, setting the time,
 * alarm arming/firing/acknowledging, the interrupt line, the deadline
 * helper, and hostile MMIO.
 */

#include <errno.h>
#include <time.h>

#include "macro.h"
#include "tap.h"
#include "devices/goldfish_rtc.h"

#define TIME_LOW        0x00
#define TIME_HIGH       0x04
#define ALARM_LOW       0x08
#define ALARM_HIGH      0x0c
#define IRQ_ENABLED     0x10
#define CLEAR_ALARM     0x14
#define ALARM_STATUS    0x18
#define CLEAR_INTERRUPT 0x1c

#define NSEC_PER_SEC 1000000000ULL

typedef struct Fake {
        uint64_t now;
        unsigned irq_calls;
        bool irq_level;
        bool irq_redundant;
} Fake;

static uint64_t fake_clock(void *userdata) {
        Fake *f = userdata;

        return f->now;
}

static void fake_irq(void *opaque, _unused_ unsigned number, bool level) {
        Fake *f = opaque;

        f->irq_calls++;
        if (level == f->irq_level)
                f->irq_redundant = true;
        f->irq_level = level;
}

static GoldfishRtc *make(Fake *f) {
        const IrqLine irq = { .set = fake_irq, .opaque = f, .number = 11 };
        GoldfishRtc *rtc = NULL;

        if (goldfish_rtc_new(&irq, fake_clock, f, &rtc) < 0)
                return NULL;
        return rtc;
}

static uint32_t rd(GoldfishRtc *rtc, uint64_t offset) {
        return (uint32_t) goldfish_rtc_mmio_ops.read(rtc, offset, 4);
}

static void wr(GoldfishRtc *rtc, uint64_t offset, uint32_t value) {
        goldfish_rtc_mmio_ops.write(rtc, offset, value, 4);
}

/* As Linux reads it: LOW (latches HIGH), then HIGH. */
static uint64_t read_time(GoldfishRtc *rtc) {
        uint64_t low = rd(rtc, TIME_LOW);

        return ((uint64_t) rd(rtc, TIME_HIGH) << 32) | low;
}

/* As Linux sets it: HIGH, then LOW. */
static void set_time(GoldfishRtc *rtc, uint64_t t) {
        wr(rtc, TIME_HIGH, (uint32_t) (t >> 32));
        wr(rtc, TIME_LOW, (uint32_t) t);
}

static void set_alarm(GoldfishRtc *rtc, uint64_t t) {
        wr(rtc, ALARM_HIGH, (uint32_t) (t >> 32));
        wr(rtc, ALARM_LOW, (uint32_t) t);
}

static uint64_t xorshift(uint64_t *s) {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        return *s;
}

static void test_time(void) {
        Fake f = { .now = 1700000000ULL * NSEC_PER_SEC + 123456789 };
        _cleanup_(goldfish_rtc_freep) GoldfishRtc *rtc = make(&f);
        uint64_t t;

        CHECK(rtc, "goldfish_rtc_new");
        CHECK_EQ_U64(goldfish_rtc_new(NULL, NULL, NULL, NULL), (uint64_t) -EINVAL, "ret=NULL rejected");

        CHECK_EQ_U64(read_time(rtc), f.now, "time is the host clock");

        /* The latch: HIGH comes from the last LOW read, even if time moved on. */
        f.now = 0x00000005fffffff0ULL;
        CHECK_EQ_U64(rd(rtc, TIME_LOW), 0xfffffff0, "TIME_LOW");
        f.now = 0x0000000600000010ULL;
        CHECK_EQ_U64(rd(rtc, TIME_HIGH), 5, "TIME_HIGH latched by the TIME_LOW read");
        CHECK_EQ_U64(rd(rtc, TIME_HIGH), 5, "still latched");
        CHECK_EQ_U64(read_time(rtc), 0x0000000600000010ULL, "next LOW read latches anew");

        /* Setting the time: an offset from the host clock. */
        f.now = 1700000000ULL * NSEC_PER_SEC;
        set_time(rtc, 946684800ULL * NSEC_PER_SEC);     /* 2000-01-01 */
        CHECK_EQ_U64(read_time(rtc), 946684800ULL * NSEC_PER_SEC, "time set");
        f.now += 5 * NSEC_PER_SEC;
        CHECK_EQ_U64(read_time(rtc), 946684805ULL * NSEC_PER_SEC, "and it runs with the host clock");

        /* Time earlier than the host's, later than the host's, and the extremes. */
        set_time(rtc, 0);
        CHECK_EQ_U64(read_time(rtc), 0, "time set to the epoch");
        set_time(rtc, UINT64_MAX);
        CHECK_EQ_U64(read_time(rtc), UINT64_MAX, "time set to 2^64-1");
        f.now += 1;
        CHECK_EQ_U64(read_time(rtc), 0, "wraps without trapping");

        /* A lone TIME_LOW write uses the last TIME_HIGH written. */
        wr(rtc, TIME_HIGH, 0x12);
        wr(rtc, TIME_LOW, 0x34);
        wr(rtc, TIME_LOW, 0x56);
        CHECK_EQ_U64(read_time(rtc), 0x1200000056ULL, "TIME_LOW write uses the staged high half");

        /* Reset keeps the time (battery-backed). */
        t = read_time(rtc);
        goldfish_rtc_reset(rtc);
        CHECK_EQ_U64(read_time(rtc), t, "reset keeps the time offset");
        CHECK_EQ_U64(f.irq_calls, 0, "no interrupt activity");
}

static void test_alarm(void) {
        Fake f = { .now = 1000 * NSEC_PER_SEC };
        _cleanup_(goldfish_rtc_freep) GoldfishRtc *rtc = make(&f);
        uint64_t deadline = 0;

        CHECK_EQ_U64(rd(rtc, ALARM_STATUS), 0, "no alarm at start");
        CHECK_EQ_U64(goldfish_rtc_alarm_deadline(rtc, &deadline), (uint64_t) -ENOENT, "no deadline without alarm");
        CHECK_EQ_U64(goldfish_rtc_alarm_deadline(rtc, NULL), (uint64_t) -EINVAL, "deadline(NULL)");

        set_alarm(rtc, 0x0000012345678abcULL);
        CHECK_EQ_U64(rd(rtc, ALARM_LOW), 0x45678abc, "ALARM_LOW reads back");
        CHECK_EQ_U64(rd(rtc, ALARM_HIGH), 0x123, "ALARM_HIGH reads back");
        wr(rtc, CLEAR_ALARM, 1);
        CHECK_EQ_U64(rd(rtc, ALARM_STATUS), 0, "CLEAR_ALARM disarms");

        /* Arm 10 s ahead with the interrupt enabled. */
        set_alarm(rtc, 1010 * NSEC_PER_SEC);
        wr(rtc, IRQ_ENABLED, 1);
        CHECK_EQ_U64(rd(rtc, IRQ_ENABLED), 1, "IRQ_ENABLED reads back");
        CHECK_EQ_U64(rd(rtc, ALARM_STATUS), 1, "ALARM_LOW write arms");
        CHECK_EQ_U64(goldfish_rtc_alarm_deadline(rtc, &deadline), 0, "deadline while armed");
        CHECK_EQ_U64(deadline, 1010 * NSEC_PER_SEC, "deadline in host time");

        f.now = 1010 * NSEC_PER_SEC - 1;
        goldfish_rtc_poll(rtc);
        CHECK(!f.irq_level, "not yet");
        CHECK_EQ_U64(rd(rtc, ALARM_STATUS), 1, "still armed");

        f.now = 1010 * NSEC_PER_SEC;
        goldfish_rtc_poll(rtc);
        CHECK(f.irq_level, "alarm fired at its time: line high");
        CHECK_EQ_U64(rd(rtc, ALARM_STATUS), 0, "a fired alarm is disarmed");
        CHECK_EQ_U64(goldfish_rtc_alarm_deadline(rtc, &deadline), (uint64_t) -ENOENT, "no deadline after firing");
        goldfish_rtc_poll(rtc);
        CHECK(f.irq_level, "line stays high until acknowledged");
        wr(rtc, CLEAR_INTERRUPT, 1);
        CHECK(!f.irq_level, "CLEAR_INTERRUPT lowers the line");

        /* An alarm already in the past fires on the arming write itself. */
        set_alarm(rtc, 5 * NSEC_PER_SEC);
        CHECK(f.irq_level, "past alarm fires at once");
        CHECK_EQ_U64(rd(rtc, ALARM_STATUS), 0, "and is no longer armed");
        wr(rtc, CLEAR_INTERRUPT, 1);

        /* Fired while IRQ_ENABLED=0: the interrupt waits for the enable. */
        wr(rtc, IRQ_ENABLED, 0);
        set_alarm(rtc, 1020 * NSEC_PER_SEC);
        f.now = 1030 * NSEC_PER_SEC;
        CHECK_EQ_U64(rd(rtc, ALARM_STATUS), 0, "checked on register reads too: fired");
        CHECK(!f.irq_level, "masked by IRQ_ENABLED=0");
        wr(rtc, IRQ_ENABLED, 1);
        CHECK(f.irq_level, "enabling shows the pending interrupt");
        wr(rtc, IRQ_ENABLED, 0);
        CHECK(!f.irq_level, "disabling hides it");
        wr(rtc, CLEAR_INTERRUPT, 1);
        wr(rtc, IRQ_ENABLED, 1);
        CHECK(!f.irq_level, "acknowledged while masked");

        /* A disarmed alarm never fires. */
        set_alarm(rtc, 1040 * NSEC_PER_SEC);
        wr(rtc, CLEAR_ALARM, 1);
        f.now = 1050 * NSEC_PER_SEC;
        goldfish_rtc_poll(rtc);
        CHECK(!f.irq_level, "cleared alarm does not fire");

        /* The alarm is in guest time: it follows a guest-set clock. */
        set_time(rtc, 100 * NSEC_PER_SEC);      /* guest is 950 s behind the host */
        set_alarm(rtc, 160 * NSEC_PER_SEC);
        CHECK_EQ_U64(goldfish_rtc_alarm_deadline(rtc, &deadline), 0, "deadline with offset");
        CHECK_EQ_U64(deadline, 1110 * NSEC_PER_SEC, "host deadline = host now + 60 s");
        f.now = 1109 * NSEC_PER_SEC;
        goldfish_rtc_poll(rtc);
        CHECK(!f.irq_level, "guest 159 s: not yet");
        f.now = 1110 * NSEC_PER_SEC;
        goldfish_rtc_poll(rtc);
        CHECK(f.irq_level, "guest 160 s: fired");

        /* Reset: alarm, enable and interrupt gone, line low. */
        set_alarm(rtc, 2000 * NSEC_PER_SEC);
        goldfish_rtc_reset(rtc);
        CHECK(!f.irq_level, "reset lowers the line");
        CHECK_EQ_U64(rd(rtc, ALARM_STATUS), 0, "reset disarms");
        CHECK_EQ_U64(rd(rtc, IRQ_ENABLED), 0, "reset clears IRQ_ENABLED");
        CHECK(!f.irq_redundant, "line driven only on changes (%u calls)", f.irq_calls);
}

static void test_realtime(void) {
        _cleanup_(goldfish_rtc_freep) GoldfishRtc *rtc = NULL;
        struct timespec ts;
        uint64_t host, guest;

        CHECK_EQ_U64(goldfish_rtc_new(NULL, NULL, NULL, &rtc), 0, "default clock, no irq line");
        clock_gettime(CLOCK_REALTIME, &ts);
        host = (uint64_t) ts.tv_sec * NSEC_PER_SEC + (uint64_t) ts.tv_nsec;
        guest = read_time(rtc);
        CHECK(guest >= host && guest - host < 10 * NSEC_PER_SEC, "default clock is CLOCK_REALTIME");

        /* Without an irq line, firing is harmless. */
        set_alarm(rtc, 1);
        wr(rtc, IRQ_ENABLED, 1);
        CHECK_EQ_U64(rd(rtc, ALARM_STATUS), 0, "alarm fired without a line");
}

static void test_hostile(void) {
        static const unsigned sizes[] = { 1, 2, 4, 8 };
        Fake f = { .now = 42 };
        _cleanup_(goldfish_rtc_freep) GoldfishRtc *rtc = make(&f);
        uint64_t seed = 0x13198a2e03707344ULL, deadline;

        /* Non-4-byte and unaligned accesses are not decoded. */
        goldfish_rtc_mmio_ops.write(rtc, IRQ_ENABLED, 1, 1);
        goldfish_rtc_mmio_ops.write(rtc, IRQ_ENABLED, 1, 8);
        goldfish_rtc_mmio_ops.write(rtc, IRQ_ENABLED + 1, 1, 4);
        CHECK_EQ_U64(rd(rtc, IRQ_ENABLED), 0, "odd-sized/unaligned writes ignored");
        wr(rtc, IRQ_ENABLED, 1);
        CHECK_EQ_U64(goldfish_rtc_mmio_ops.read(rtc, IRQ_ENABLED, 2), 0, "2-byte read returns 0");
        CHECK_EQ_U64(goldfish_rtc_mmio_ops.read(rtc, IRQ_ENABLED, 8), 0, "8-byte read returns 0");
        CHECK_EQ_U64(rd(rtc, 0x20), 0, "past the registers reads 0");
        CHECK_EQ_U64(rd(rtc, CLEAR_ALARM), 0, "write-only registers read 0");
        wr(rtc, ALARM_STATUS, 1);
        CHECK_EQ_U64(rd(rtc, ALARM_STATUS), 0, "ALARM_STATUS is read-only");

        for (unsigned round = 0; round < 20; round++)
                for (uint64_t offset = 0; offset < 0x1000; offset++) {
                        for (unsigned i = 0; i < ELEMENTSOF(sizes); i++) {
                                if (offset + sizes[i] > 0x1000)
                                        continue;
                                goldfish_rtc_mmio_ops.write(rtc, offset, xorshift(&seed), sizes[i]);
                                (void) goldfish_rtc_mmio_ops.read(rtc, offset, sizes[i]);
                        }
                        f.now = xorshift(&seed);
                        goldfish_rtc_poll(rtc);
                        (void) goldfish_rtc_alarm_deadline(rtc, &deadline);
                }

        CHECK(true, "hostile MMIO: no crash");
        CHECK(!f.irq_redundant, "line driven only on changes (%u calls)", f.irq_calls);
        goldfish_rtc_mmio_ops.write(NULL, 0, 0, 4);
        CHECK_EQ_U64(goldfish_rtc_mmio_ops.read(NULL, 0, 4), 0, "NULL opaque reads 0");
        CHECK_EQ_U64(goldfish_rtc_mmio_ops.read(rtc, UINT64_MAX - 3, 4), 0, "offset near 2^64 reads 0");
}

int main(void) {
        test_time();
        test_alarm();
        test_realtime();
        test_hostile();
        return tap_finish();
}

/* SPDX-License-Identifier: MIT */
/*
 * Goldfish RTC: see goldfish_rtc.h for the registers and threading rules.
 */

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "macro.h"
#include "devices/goldfish_rtc.h"

#define RTC_TIME_LOW        0x00
#define RTC_TIME_HIGH       0x04
#define RTC_ALARM_LOW       0x08
#define RTC_ALARM_HIGH      0x0c
#define RTC_IRQ_ENABLED     0x10
#define RTC_CLEAR_ALARM     0x14
#define RTC_ALARM_STATUS    0x18
#define RTC_CLEAR_INTERRUPT 0x1c

/*
 * Everything below 'lock' is protected by it; irq, clock and clock_userdata
 * are constant after goldfish_rtc_new().
 */
struct GoldfishRtc {
        pthread_mutex_t lock;

        IrqLine irq;
        GoldfishRtcClock clock;
        void *clock_userdata;

        uint64_t offset;        /* guest time = clock() + offset, modulo 2^64 */
        uint32_t time_high_read;        /* latched by a TIME_LOW read */
        uint32_t time_high_write;       /* staged for a TIME_LOW write */

        uint64_t alarm;
        bool alarm_armed;
        bool irq_enabled;
        bool interrupt;         /* the alarm fired and was not acknowledged */
        bool irq_level;         /* level last driven on 'irq' */
};

static uint64_t realtime_clock(_unused_ void *userdata) {
        struct timespec ts;

        if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
                return 0;
        if (ts.tv_sec < 0)
                return 0;
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static uint64_t host_now_locked(GoldfishRtc *rtc) {
        return rtc->clock(rtc->clock_userdata);
}

static void rtc_update_irq_locked(GoldfishRtc *rtc) {
        bool level = rtc->interrupt && rtc->irq_enabled;

        if (level == rtc->irq_level)
                return;

        rtc->irq_level = level;
        irq_line_set(&rtc->irq, level);
}

/* Fire the alarm if due, then drive the line. Lock held (RTC → PLIC order). */
static void rtc_check_locked(GoldfishRtc *rtc) {
        if (rtc->alarm_armed && host_now_locked(rtc) + rtc->offset >= rtc->alarm) {
                rtc->alarm_armed = false;
                rtc->interrupt = true;
        }

        rtc_update_irq_locked(rtc);
}

int goldfish_rtc_new(const IrqLine *irq, GoldfishRtcClock clock, void *clock_userdata, GoldfishRtc **ret) {
        _cleanup_free_ GoldfishRtc *rtc = NULL;
        int r;

        if (!ret)
                return -EINVAL;

        rtc = calloc(1, sizeof(GoldfishRtc));
        if (!rtc)
                return -ENOMEM;

        r = pthread_mutex_init(&rtc->lock, NULL);
        if (r != 0)
                return -r;

        if (irq)
                rtc->irq = *irq;
        rtc->clock = clock ? clock : realtime_clock;
        rtc->clock_userdata = clock_userdata;

        *ret = TAKE_PTR(rtc);
        return 0;
}

GoldfishRtc *goldfish_rtc_free(GoldfishRtc *rtc) {
        if (!rtc)
                return NULL;

        pthread_mutex_destroy(&rtc->lock);
        free(rtc);
        return NULL;
}

void goldfish_rtc_reset(GoldfishRtc *rtc) {
        pthread_mutex_lock(&rtc->lock);

        rtc->time_high_read = 0;
        rtc->time_high_write = 0;
        rtc->alarm = 0;
        rtc->alarm_armed = false;
        rtc->irq_enabled = false;
        rtc->interrupt = false;
        rtc_update_irq_locked(rtc);

        pthread_mutex_unlock(&rtc->lock);
}

void goldfish_rtc_poll(GoldfishRtc *rtc) {
        pthread_mutex_lock(&rtc->lock);
        rtc_check_locked(rtc);
        pthread_mutex_unlock(&rtc->lock);
}

int goldfish_rtc_alarm_deadline(GoldfishRtc *rtc, uint64_t *ret_ns) {
        uint64_t host, guest, deadline;

        if (!ret_ns)
                return -EINVAL;

        pthread_mutex_lock(&rtc->lock);

        if (!rtc->alarm_armed) {
                pthread_mutex_unlock(&rtc->lock);
                return -ENOENT;
        }

        host = host_now_locked(rtc);
        guest = host + rtc->offset;
        if (guest >= rtc->alarm)
                deadline = 0;
        else if (__builtin_add_overflow(host, rtc->alarm - guest, &deadline))
                deadline = UINT64_MAX;

        pthread_mutex_unlock(&rtc->lock);

        *ret_ns = deadline;
        return 0;
}

uint64_t goldfish_rtc_mmio_read(void *opaque, uint64_t offset, unsigned size) {
        GoldfishRtc *rtc = opaque;
        uint32_t value = 0;

        if (!rtc || size != 4 || (offset & 3) != 0 || offset > RTC_CLEAR_INTERRUPT)
                return 0;

        pthread_mutex_lock(&rtc->lock);

        switch (offset) {
        case RTC_TIME_LOW: {
                uint64_t now = host_now_locked(rtc) + rtc->offset;

                rtc->time_high_read = (uint32_t) (now >> 32);
                value = (uint32_t) now;
                break;
        }

        case RTC_TIME_HIGH:
                value = rtc->time_high_read;
                break;

        case RTC_ALARM_LOW:
                value = (uint32_t) rtc->alarm;
                break;

        case RTC_ALARM_HIGH:
                value = (uint32_t) (rtc->alarm >> 32);
                break;

        case RTC_IRQ_ENABLED:
                value = rtc->irq_enabled;
                break;

        case RTC_ALARM_STATUS:
                /* Fire first, so a passed alarm does not read as still armed. */
                rtc_check_locked(rtc);
                value = rtc->alarm_armed;
                break;

        default:
                /* CLEAR_ALARM and CLEAR_INTERRUPT are write-only. */
                break;
        }

        rtc_check_locked(rtc);
        pthread_mutex_unlock(&rtc->lock);
        return value;
}

void goldfish_rtc_mmio_write(void *opaque, uint64_t offset, uint64_t value, unsigned size) {
        GoldfishRtc *rtc = opaque;
        uint32_t v = (uint32_t) value;

        if (!rtc || size != 4 || (offset & 3) != 0 || offset > RTC_CLEAR_INTERRUPT)
                return;

        pthread_mutex_lock(&rtc->lock);

        switch (offset) {
        case RTC_TIME_LOW: {
                uint64_t guest = ((uint64_t) rtc->time_high_write << 32) | v;

                rtc->offset = guest - host_now_locked(rtc);
                break;
        }

        case RTC_TIME_HIGH:
                rtc->time_high_write = v;
                break;

        case RTC_ALARM_LOW:
                rtc->alarm = (rtc->alarm & 0xffffffff00000000ULL) | v;
                rtc->alarm_armed = true;
                break;

        case RTC_ALARM_HIGH:
                rtc->alarm = ((uint64_t) v << 32) | (rtc->alarm & 0xffffffffULL);
                break;

        case RTC_IRQ_ENABLED:
                rtc->irq_enabled = v & 1;
                break;

        case RTC_CLEAR_ALARM:
                rtc->alarm_armed = false;
                break;

        case RTC_CLEAR_INTERRUPT:
                rtc->interrupt = false;
                break;

        default:
                /* ALARM_STATUS is read-only. */
                break;
        }

        rtc_check_locked(rtc);
        pthread_mutex_unlock(&rtc->lock);
}

const MmioOps goldfish_rtc_mmio_ops = {
        .read = goldfish_rtc_mmio_read,
        .write = goldfish_rtc_mmio_write,
};

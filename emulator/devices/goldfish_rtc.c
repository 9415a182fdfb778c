/* SPDX-License-Identifier: MIT */
/*
 * Goldfish RTC: see goldfish_rtc.h for the registers and threading rules.
 */

#include <errno.h>
#include <pthread.h>
#include <libfdt.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "macro.h"
#include "devices/goldfish_rtc.h"
#include "machine/fdt.h"
#include "machine/memmap.h"

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

/* Drive the line at the level the registers ask for: if it changed, or 'always' (after a load). */
static void rtc_drive_irq_locked(GoldfishRtc *rtc, bool always) {
        bool level = rtc->interrupt && rtc->irq_enabled;

        if (level == rtc->irq_level && !always)
                return;

        rtc->irq_level = level;
        irq_line_set(&rtc->irq, level);
}

static void rtc_update_irq_locked(GoldfishRtc *rtc) {
        rtc_drive_irq_locked(rtc, false);
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

/* ---- device descriptor ---- */

static int rtc_create(const DeviceContext *ctx, void **ret) {
        return goldfish_rtc_new(&ctx->irq, ctx->host->realtime_ns, ctx->host->opaque, (GoldfishRtc **) ret);
}

static void rtc_free(void *dev) {
        goldfish_rtc_free(dev);
}

static void rtc_reset(void *dev) {
        goldfish_rtc_reset(dev);
}

static int rtc_fdt_node(void *dev, const DeviceContext *ctx, void *fdt) {
        static const char compat[] = "google,goldfish-rtc";

        DT_TRY(dt_begin_device(fdt, "rtc", ctx, compat, sizeof(compat)));
        return dt_err(fdt_end_node(fdt));
}

/* The guest's time is saved as its offset from the host's wall clock: it keeps running across a save. */
static int rtc_save(void *dev, StateWriter *w) {
        GoldfishRtc *rtc = dev;

        pthread_mutex_lock(&rtc->lock);
        state_put_u64(w, rtc->offset);
        state_put_u32(w, rtc->time_high_read);
        state_put_u32(w, rtc->time_high_write);
        state_put_u64(w, rtc->alarm);
        state_put_bool(w, rtc->alarm_armed);
        state_put_bool(w, rtc->irq_enabled);
        state_put_bool(w, rtc->interrupt);
        pthread_mutex_unlock(&rtc->lock);
        return state_writer_error(w);
}

static int rtc_load(void *dev, StateReader *r) {
        GoldfishRtc *rtc = dev;
        uint64_t offset, alarm;
        uint32_t high_read, high_write;
        bool armed, enabled, interrupt;

        state_get_u64(r, &offset);
        state_get_u32(r, &high_read);
        state_get_u32(r, &high_write);
        state_get_u64(r, &alarm);
        state_get_bool(r, &armed);
        state_get_bool(r, &enabled);
        state_get_bool(r, &interrupt);
        if (state_reader_error(r) < 0)
                return state_reader_error(r);

        pthread_mutex_lock(&rtc->lock);
        rtc->offset = offset;
        rtc->time_high_read = high_read;
        rtc->time_high_write = high_write;
        rtc->alarm = alarm;
        rtc->alarm_armed = armed;
        rtc->irq_enabled = enabled;
        rtc->interrupt = interrupt;
        /* Drive the line even at the level it had: the loaded PLIC must see the loaded level. */
        rtc_drive_irq_locked(rtc, true);
        pthread_mutex_unlock(&rtc->lock);
        return 0;
}

const DeviceDescriptor goldfish_rtc_device = {
        .name = "goldfish-rtc",
        .base = MEMMAP_RTC_BASE,
        .size = MEMMAP_RTC_SIZE,
        .access_sizes = DEVICE_ACCESS_4,
        .irq = IRQ_RTC,
        .mmio = &goldfish_rtc_mmio_ops,
        .create = rtc_create,
        .free = rtc_free,
        .reset = rtc_reset,
        .fdt_node = rtc_fdt_node,
        .save = rtc_save,
        .load = rtc_load,
};

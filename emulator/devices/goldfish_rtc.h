/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The goldfish RTC ("google,goldfish-rtc") with the register layout Linux's
 * drivers/rtc/rtc-goldfish.c uses. All registers are 32 bits; times are
 * nanoseconds since the Unix epoch.
 *
 *   0x00 TIME_LOW         read: latch the current time, return bits 31..0;
 *                         write: set the time to (TIME_HIGH written) << 32 | value
 *   0x04 TIME_HIGH        read: bits 63..32 latched by the last TIME_LOW read;
 *                         write: high half for the next TIME_LOW write
 *   0x08 ALARM_LOW        write: alarm = ALARM_HIGH << 32 | value, and arm it
 *   0x0c ALARM_HIGH       write: high half of the alarm (does not arm)
 *   0x10 IRQ_ENABLED      bit 0: the interrupt line follows the alarm's interrupt
 *   0x14 CLEAR_ALARM      write: disarm the alarm
 *   0x18 ALARM_STATUS     read: 1 while the alarm is armed and has not fired
 *   0x1c CLEAR_INTERRUPT  write: acknowledge a fired alarm
 *
 * ALARM_LOW/ALARM_HIGH read back the alarm as written. The guest's time is
 * the host clock plus an offset set by writing TIME; the offset survives
 * goldfish_rtc_reset() (the clock is battery-backed), the alarm does not.
 *
 * An armed alarm fires when the guest time reaches it: it then disarms and
 * sets the interrupt, and the line is high while the interrupt is set and
 * IRQ_ENABLED. Firing is checked on every register access and whenever the
 * machine calls goldfish_rtc_poll(); goldfish_rtc_alarm_deadline() tells the
 * machine when that next needs to happen.
 *
 * Only naturally aligned 4-byte accesses are decoded (accesses of other
 * sizes read 0 and are ignored), as for the real 32-bit registers.
 *
 * Threading: MMIO handlers run on the CPU thread, goldfish_rtc_poll() and
 * goldfish_rtc_alarm_deadline() typically on the event-loop thread. All
 * state is behind one mutex, the "RTC lock". The interrupt line is driven
 * with the RTC lock held, only when its level changes. The clock function is
 * called with the RTC lock held and must not call into the RTC.
 *
 * Lock order: RTC lock → PLIC lock.
 */

#include <stdint.h>

#include "devices/device.h"

typedef struct GoldfishRtc GoldfishRtc;

/* Nanoseconds since the Unix epoch. NULL means CLOCK_REALTIME. */
typedef uint64_t (*GoldfishRtcClock)(void *userdata);

/* irq is copied and may be NULL. Returns 0 or -EINVAL/-ENOMEM. */
int goldfish_rtc_new(const IrqLine *irq, GoldfishRtcClock clock, void *clock_userdata, GoldfishRtc **ret);
/* Only once no thread can call into the device any more. Returns NULL. */
GoldfishRtc *goldfish_rtc_free(GoldfishRtc *rtc);
static inline void goldfish_rtc_freep(GoldfishRtc **rtc) {
        if (*rtc)
                goldfish_rtc_free(*rtc);
}

/* Disarm the alarm, clear the interrupt and IRQ_ENABLED; keep the time offset. Any thread. */
void goldfish_rtc_reset(GoldfishRtc *rtc);

/* Fire the alarm if its time has come. Any thread. */
void goldfish_rtc_poll(GoldfishRtc *rtc);

/*
 * When the armed alarm fires, in the clock function's time base (host
 * nanoseconds since the epoch; 0 if it is already due): returns 0 and sets
 * *ret_ns, or -ENOENT if no alarm is armed. Any thread.
 */
int goldfish_rtc_alarm_deadline(GoldfishRtc *rtc, uint64_t *ret_ns);

/* MMIO handlers (opaque is the GoldfishRtc*), for the MEMMAP_RTC_BASE window. */
uint64_t goldfish_rtc_mmio_read(void *opaque, uint64_t offset, unsigned size);
void goldfish_rtc_mmio_write(void *opaque, uint64_t offset, uint64_t value, unsigned size);
extern const MmioOps goldfish_rtc_mmio_ops;

/* The device: the host's wall clock from the DeviceHost's realtime_ns. */
extern const DeviceDescriptor goldfish_rtc_device;

/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The SiFive test finisher ("sifive,test0" / "syscon" on QEMU's "virt"):
 * power-off and reboot. One 32-bit register at offset 0; a write whose low
 * 16 bits are
 *
 *   0x5555 FINISHER_PASS   power off, exit code 0
 *   0x3333 FINISHER_FAIL   power off, exit code = value >> 16 (0..65535)
 *   0x7777 FINISHER_RESET  reboot
 *
 * reports that action; any other value is ignored. Writes of 2 or 4 bytes
 * at offset 0 are decoded (OpenSBI's driver writes 16 bits, Linux's
 * syscon-poweroff/syscon-reboot 32 bits); everything else is ignored, and
 * every read returns 0.
 *
 * Threading: CPU thread only; no lock. The action callback runs on the CPU
 * thread from inside the MMIO write: it should request the power-off or
 * reboot (e.g. stop the hart loop and wake the event loop) and return; it
 * may be called again if the guest keeps writing.
 */

#include "devices/device.h"

typedef enum SifiveTestAction {
        SIFIVE_TEST_PASS,       /* power off, code 0 */
        SIFIVE_TEST_FAIL,       /* power off, code = value >> 16 */
        SIFIVE_TEST_RESET,      /* reboot, code 0 */
} SifiveTestAction;

#define SIFIVE_TEST_FINISHER_FAIL  0x3333U
#define SIFIVE_TEST_FINISHER_PASS  0x5555U
#define SIFIVE_TEST_FINISHER_RESET 0x7777U

typedef struct SifiveTest SifiveTest;

typedef void (*SifiveTestActionFn)(void *opaque, SifiveTestAction action, int code);

/* action may be NULL (the device then does nothing). Returns 0 or -EINVAL/-ENOMEM. */
int sifive_test_new(SifiveTestActionFn action, void *opaque, SifiveTest **ret);
/* Only once no thread can call into the device any more. Returns NULL. */
SifiveTest *sifive_test_free(SifiveTest *test);
static inline void sifive_test_freep(SifiveTest **test) {
        if (*test)
                sifive_test_free(*test);
}

/* The device has no state to reset; provided for symmetry with the others. */
void sifive_test_reset(SifiveTest *test);

/* MMIO handlers (opaque is the SifiveTest*), for the MEMMAP_TEST_BASE window. CPU thread. */
uint64_t sifive_test_mmio_read(void *opaque, uint64_t offset, unsigned size);
void sifive_test_mmio_write(void *opaque, uint64_t offset, uint64_t value, unsigned size);
extern const MmioOps sifive_test_mmio_ops;

/* The device: the guest's requests go to the DeviceHost's power hook (action = SifiveTestAction). */
extern const DeviceDescriptor sifive_test_device;

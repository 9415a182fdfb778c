/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The physical memory map. It follows QEMU's riscv "virt" board so that the
 * very same OpenSBI, kernel and initramfs boot on both; the framebuffer,
 * which "virt" does not have, sits in the window "virt" leaves to PCIe MMIO
 * (this machine has no PCI).
 */

#define MEMMAP_TEST_BASE        0x00100000ULL  /* sifive,test: power-off and reboot */
#define MEMMAP_TEST_SIZE        0x1000ULL
#define MEMMAP_RTC_BASE         0x00101000ULL  /* google,goldfish-rtc */
#define MEMMAP_RTC_SIZE         0x1000ULL
#define MEMMAP_CLINT_BASE       0x02000000ULL
#define MEMMAP_CLINT_SIZE       0x10000ULL
#define MEMMAP_PLIC_BASE        0x0c000000ULL
#define MEMMAP_PLIC_SIZE        0x600000ULL    /* enough for 2 contexts per hart, 8 harts */
#define MEMMAP_UART0_BASE       0x10000000ULL
#define MEMMAP_UART0_SIZE       0x100ULL
#define MEMMAP_VIRTIO_BASE      0x10001000ULL
#define MEMMAP_VIRTIO_SIZE      0x1000ULL      /* per slot */
#define MEMMAP_VIRTIO_COUNT     8
#define MEMMAP_FB_BASE          0x40000000ULL
#define MEMMAP_FB_MAX_SIZE      0x40000000ULL
#define MEMMAP_RAM_BASE         0x80000000ULL

/* Interrupt numbers on the PLIC, as on "virt". */
#define IRQ_VIRTIO_FIRST        1              /* 1..8 */
#define IRQ_UART0               10
#define IRQ_RTC                 11

#define PLIC_NUM_SOURCES        96             /* sources 1..95 */

/* mtime ticks per second, as on "virt". */
#define TIMEBASE_FREQUENCY      10000000ULL

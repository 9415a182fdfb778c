/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A 16550A UART as QEMU's "virt" board has it ("ns16550a", reg-shift 0,
 * reg-io-width 1): the registers sit at offsets 0..7 of the window, one byte
 * each. An access of any size to offset 0..7 acts on that register with the
 * low byte of the value; every other offset reads 0 and ignores writes.
 *
 *   0 RBR (read) / THR (write)        DLL when LCR.DLAB
 *   1 IER                             DLM when LCR.DLAB
 *   2 IIR (read) / FCR (write)
 *   3 LCR   4 MCR   5 LSR   6 MSR   7 SCR
 *
 * Transmit is instantaneous: every THR write hands the byte to the tx
 * callback, so LSR.THRE and LSR.TEMT always read 1 and the THR-empty
 * interrupt re-arms after each write. Receive goes through a ring of
 * UART_RX_FIFO_SIZE bytes (deeper than the 16550A's 16: Linux and OpenSBI
 * drain while LSR.DR is set, so depth is invisible to them); the host is
 * told how many bytes were accepted and never loses input: instead of
 * overrunning, it is asked to hold the rest (backpressure). The ring is
 * used whether or not FCR enables the FIFOs; FCR only selects the trigger
 * level and the IIR FIFO bits. Interrupt
 * priorities follow the datasheet: line status (overrun, only in loopback),
 * rx data available / character timeout (reported at once when the FIFO
 * holds fewer bytes than the trigger level), THR empty, modem status.
 * Loopback (MCR bit 4) is implemented: THR writes go to the receiver and the
 * modem inputs mirror MCR; host input is not accepted while it is on.
 * Outside loopback the modem inputs read CTS, DSR and DCD asserted.
 *
 * Threading: the MMIO handlers run on the CPU thread; uart_receive() and
 * uart_rx_room() are called from the event-loop thread; uart_reset() from
 * either. All state is behind one mutex, the "UART lock".
 *
 * Lock order: UART lock → PLIC lock. The interrupt line is driven (via the
 * IrqLine) with the UART lock held, when its level changes and after a
 * load of the UART's state.
 *
 * Callbacks run WITHOUT the UART lock held, so they may call uart_receive()
 * or uart_rx_room():
 *   tx(opaque, buf, n)   CPU thread, once per THR write (n == 1) outside
 *                        loopback. It may block (that stalls the guest, as a
 *                        slow wire would) but should not.
 *   rx_space(opaque)     CPU thread (or the caller of uart_reset()), once
 *                        after a uart_receive() that could not take all its
 *                        bytes, as soon as at least UART_RX_SPACE_THRESHOLD
 *                        bytes are free again. It should only wake the event
 *                        loop (e.g. write an eventfd), which then calls
 *                        uart_receive() with the held-back input.
 * Either callback may be NULL. The host may also poll uart_rx_room().
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/device.h"

#define UART_RX_FIFO_SIZE 256U
#define UART_RX_SPACE_THRESHOLD (UART_RX_FIFO_SIZE / 2)

typedef struct Uart16550 Uart16550;

typedef struct Uart16550Callbacks {
        void (*tx)(void *opaque, const uint8_t *buf, size_t n);
        void (*rx_space)(void *opaque);
} Uart16550Callbacks;

/* irq and callbacks are copied; either may be NULL. Returns 0 or -EINVAL/-ENOMEM. */
int uart_new(const IrqLine *irq, const Uart16550Callbacks *callbacks, void *opaque, Uart16550 **ret);
/* Only once no thread can call into the device any more. Returns NULL. */
Uart16550 *uart_free(Uart16550 *uart);
static inline void uart_freep(Uart16550 **uart) {
        if (*uart)
                uart_free(*uart);
}

/* Power-on state: registers cleared, rx FIFO emptied, interrupt lowered. Any thread. */
void uart_reset(Uart16550 *uart);

/*
 * Host input (event-loop thread). Takes as many bytes as fit in the rx FIFO
 * and returns that count (0 when full or in loopback). When it returns less
 * than n, rx_space will be called once room is back.
 */
size_t uart_receive(Uart16550 *uart, const uint8_t *buf, size_t n);

/* Bytes uart_receive() would accept right now. Any thread. */
size_t uart_rx_room(Uart16550 *uart);

/* MMIO handlers (opaque is the Uart16550*), for the MEMMAP_UART0_BASE window. CPU thread. */
uint64_t uart_mmio_read(void *opaque, uint64_t offset, unsigned size);
void uart_mmio_write(void *opaque, uint64_t offset, uint64_t value, unsigned size);
extern const MmioOps uart_mmio_ops;

/* The device: output to the DeviceHost's serial_output, serial_room when input fits again. */
extern const DeviceDescriptor uart16550_device;

/* SPDX-License-Identifier: MIT */
/*
 * 16550A UART: see uart16550.h for what is modelled and the threading rules.
 */

#include <errno.h>
#include <pthread.h>
#include <libfdt.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "devices/uart16550.h"
#include "machine/fdt.h"
#include "machine/memmap.h"

/* Register offsets (reg-shift 0). */
#define UART_RBR 0      /* read, DLAB=0 */
#define UART_THR 0      /* write, DLAB=0 */
#define UART_DLL 0      /* DLAB=1 */
#define UART_IER 1      /* DLAB=0 */
#define UART_DLM 1      /* DLAB=1 */
#define UART_IIR 2      /* read */
#define UART_FCR 2      /* write */
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7

#define IER_ERBFI 0x01  /* rx data available */
#define IER_ETBEI 0x02  /* THR empty */
#define IER_ELSI  0x04  /* line status */
#define IER_EDSSI 0x08  /* modem status */
#define IER_MASK  0x0f

#define IIR_NO_INT    0x01
#define IIR_MSI       0x00
#define IIR_THRI      0x02
#define IIR_RDI       0x04
#define IIR_RLSI      0x06
#define IIR_TIMEOUT   0x0c
#define IIR_FIFO_BITS 0xc0

#define FCR_ENABLE    0x01
#define FCR_CLEAR_RX  0x02
#define FCR_CLEAR_TX  0x04
#define FCR_KEPT      0xc9      /* FIFO enable, DMA mode, trigger level */

#define LCR_DLAB 0x80

#define MCR_DTR  0x01
#define MCR_RTS  0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MCR_MASK 0x1f

#define LSR_DR   0x01
#define LSR_OE   0x02
#define LSR_PE   0x04
#define LSR_FE   0x08
#define LSR_BI   0x10
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define LSR_ERRORS (LSR_OE | LSR_PE | LSR_FE | LSR_BI)

#define MSR_DCTS 0x01
#define MSR_DDSR 0x02
#define MSR_TERI 0x04
#define MSR_DDCD 0x08
#define MSR_CTS  0x10
#define MSR_DSR  0x20
#define MSR_RI   0x40
#define MSR_DCD  0x80
#define MSR_DELTAS 0x0f

/* Modem inputs when not in loopback: a terminal is attached and ready. */
#define MSR_CONNECTED (MSR_CTS | MSR_DSR | MSR_DCD)

/*
 * Everything below 'lock' is protected by it; irq, callbacks and opaque are
 * constant after uart_new().
 */
struct Uart16550 {
        pthread_mutex_t lock;

        IrqLine irq;
        Uart16550Callbacks callbacks;
        void *opaque;

        uint8_t rx[UART_RX_FIFO_SIZE];
        unsigned rx_head;       /* index of the oldest byte */
        unsigned rx_count;

        uint8_t ier, lcr, mcr, scr, dll, dlm;
        uint8_t fcr;            /* FCR_KEPT bits of the last FCR write */
        uint8_t lsr_errors;     /* LSR_ERRORS bits, cleared by reading LSR */
        uint8_t msr_deltas;     /* MSR_DELTAS bits, cleared by reading MSR */
        bool thr_interrupt;     /* THR-empty interrupt armed (cleared by IIR read or THR write) */
        bool rx_blocked;        /* a uart_receive() was turned away: call rx_space when room is back */
        bool irq_level;         /* level last driven on 'irq' */
};

static size_t uart_rx_room_locked(const Uart16550 *uart) {
        if (uart->mcr & MCR_LOOP)
                return 0;
        return UART_RX_FIFO_SIZE - uart->rx_count;
}

static unsigned rx_trigger_level(const Uart16550 *uart) {
        static const unsigned levels[4] = { 1, 4, 8, 14 };

        return levels[(uart->fcr >> 6) & 3];
}

/* The modem inputs (MSR bits 7..4) as the current MCR makes them. */
static uint8_t modem_inputs(uint8_t mcr) {
        uint8_t msr = 0;

        if (!(mcr & MCR_LOOP))
                return MSR_CONNECTED;

        if (mcr & MCR_RTS)
                msr |= MSR_CTS;
        if (mcr & MCR_DTR)
                msr |= MSR_DSR;
        if (mcr & MCR_OUT1)
                msr |= MSR_RI;
        if (mcr & MCR_OUT2)
                msr |= MSR_DCD;
        return msr;
}

/* The highest-priority pending interrupt, as IIR bits 3..0. Lock held. */
static uint8_t uart_iir_locked(const Uart16550 *uart) {
        if ((uart->ier & IER_ELSI) && (uart->lsr_errors & LSR_ERRORS))
                return IIR_RLSI;
        if ((uart->ier & IER_ERBFI) && uart->rx_count > 0) {
                if ((uart->fcr & FCR_ENABLE) && uart->rx_count < rx_trigger_level(uart))
                        return IIR_TIMEOUT;
                return IIR_RDI;
        }
        if ((uart->ier & IER_ETBEI) && uart->thr_interrupt)
                return IIR_THRI;
        if ((uart->ier & IER_EDSSI) && (uart->msr_deltas & MSR_DELTAS))
                return IIR_MSI;
        return IIR_NO_INT;
}

/*
 * Drive the line at the level IIR asks for: if it changed, or 'always'
 * (after a load). Lock held (UART → PLIC order).
 */
static void uart_drive_irq_locked(Uart16550 *uart, bool always) {
        bool level = !(uart_iir_locked(uart) & IIR_NO_INT);

        if (level == uart->irq_level && !always)
                return;

        uart->irq_level = level;
        irq_line_set(&uart->irq, level);
}

static void uart_update_irq_locked(Uart16550 *uart) {
        uart_drive_irq_locked(uart, false);
}

/* Whether the host must now be told there is room. Lock held; clears the request. */
static bool uart_take_rx_space_locked(Uart16550 *uart) {
        if (!uart->rx_blocked || uart_rx_room_locked(uart) < UART_RX_SPACE_THRESHOLD)
                return false;

        uart->rx_blocked = false;
        return true;
}

static void uart_rx_clear_locked(Uart16550 *uart) {
        uart->rx_head = 0;
        uart->rx_count = 0;
}

/* Appends one byte; false if the FIFO is full. Lock held. */
static bool uart_rx_push_locked(Uart16550 *uart, uint8_t byte) {
        if (uart->rx_count >= UART_RX_FIFO_SIZE)
                return false;

        uart->rx[(uart->rx_head + uart->rx_count) % UART_RX_FIFO_SIZE] = byte;
        uart->rx_count++;
        return true;
}

static void uart_reset_locked(Uart16550 *uart) {
        uart_rx_clear_locked(uart);
        uart->ier = 0;
        uart->lcr = 0;
        uart->mcr = 0;
        uart->scr = 0;
        uart->dll = 0;
        uart->dlm = 0;
        uart->fcr = 0;
        uart->lsr_errors = 0;
        uart->msr_deltas = 0;
        uart->thr_interrupt = false;
        uart_update_irq_locked(uart);
}

int uart_new(const IrqLine *irq, const Uart16550Callbacks *callbacks, void *opaque, Uart16550 **ret) {
        _cleanup_free_ Uart16550 *uart = NULL;
        int r;

        if (!ret)
                return -EINVAL;

        uart = calloc(1, sizeof(Uart16550));
        if (!uart)
                return -ENOMEM;

        r = pthread_mutex_init(&uart->lock, NULL);
        if (r != 0)
                return -r;

        if (irq)
                uart->irq = *irq;
        if (callbacks)
                uart->callbacks = *callbacks;
        uart->opaque = opaque;

        *ret = TAKE_PTR(uart);
        return 0;
}

Uart16550 *uart_free(Uart16550 *uart) {
        if (!uart)
                return NULL;

        pthread_mutex_destroy(&uart->lock);
        free(uart);
        return NULL;
}

void uart_reset(Uart16550 *uart) {
        bool notify;

        pthread_mutex_lock(&uart->lock);
        uart_reset_locked(uart);
        notify = uart_take_rx_space_locked(uart);
        pthread_mutex_unlock(&uart->lock);

        if (notify && uart->callbacks.rx_space)
                uart->callbacks.rx_space(uart->opaque);
}

size_t uart_receive(Uart16550 *uart, const uint8_t *buf, size_t n) {
        size_t accepted;

        if (!uart || (!buf && n > 0))
                return 0;

        pthread_mutex_lock(&uart->lock);

        accepted = MIN(n, uart_rx_room_locked(uart));
        for (size_t i = 0; i < accepted; i++)
                (void) uart_rx_push_locked(uart, buf[i]);
        if (accepted < n)
                uart->rx_blocked = true;

        uart_update_irq_locked(uart);
        pthread_mutex_unlock(&uart->lock);

        return accepted;
}

size_t uart_rx_room(Uart16550 *uart) {
        size_t room;

        if (!uart)
                return 0;

        pthread_mutex_lock(&uart->lock);
        room = uart_rx_room_locked(uart);
        pthread_mutex_unlock(&uart->lock);

        return room;
}

uint64_t uart_mmio_read(void *opaque, uint64_t offset, _unused_ unsigned size) {
        Uart16550 *uart = opaque;
        uint8_t value = 0;
        bool notify = false;

        if (!uart || offset > UART_SCR)
                return 0;

        pthread_mutex_lock(&uart->lock);

        switch (offset) {
        case UART_RBR:
                if (uart->lcr & LCR_DLAB) {
                        value = uart->dll;
                        break;
                }
                if (uart->rx_count > 0) {
                        value = uart->rx[uart->rx_head];
                        uart->rx_head = (uart->rx_head + 1) % UART_RX_FIFO_SIZE;
                        uart->rx_count--;
                        notify = uart_take_rx_space_locked(uart);
                }
                break;

        case UART_IER:
                value = (uart->lcr & LCR_DLAB) ? uart->dlm : uart->ier;
                break;

        case UART_IIR: {
                uint8_t iir = uart_iir_locked(uart);

                /* Reading IIR acknowledges a THR-empty interrupt, but only when it is the one reported. */
                if (iir == IIR_THRI)
                        uart->thr_interrupt = false;
                value = iir | ((uart->fcr & FCR_ENABLE) ? IIR_FIFO_BITS : 0);
                break;
        }

        case UART_LCR:
                value = uart->lcr;
                break;

        case UART_MCR:
                value = uart->mcr;
                break;

        case UART_LSR:
                value = LSR_THRE | LSR_TEMT | uart->lsr_errors;
                if (uart->rx_count > 0)
                        value |= LSR_DR;
                uart->lsr_errors = 0;
                break;

        case UART_MSR:
                value = modem_inputs(uart->mcr) | uart->msr_deltas;
                uart->msr_deltas = 0;
                break;

        case UART_SCR:
                value = uart->scr;
                break;
        }

        uart_update_irq_locked(uart);
        pthread_mutex_unlock(&uart->lock);

        if (notify && uart->callbacks.rx_space)
                uart->callbacks.rx_space(uart->opaque);

        return value;
}

static void uart_write_mcr_locked(Uart16550 *uart, uint8_t mcr) {
        uint8_t before = modem_inputs(uart->mcr), after;

        uart->mcr = mcr & MCR_MASK;
        after = modem_inputs(uart->mcr);

        if ((before ^ after) & MSR_CTS)
                uart->msr_deltas |= MSR_DCTS;
        if ((before ^ after) & MSR_DSR)
                uart->msr_deltas |= MSR_DDSR;
        if ((before & MSR_RI) && !(after & MSR_RI))
                uart->msr_deltas |= MSR_TERI;   /* trailing edge only */
        if ((before ^ after) & MSR_DCD)
                uart->msr_deltas |= MSR_DDCD;
}

static void uart_write_fcr_locked(Uart16550 *uart, uint8_t fcr) {
        /* Switching the FIFOs on or off empties them, as does the clear bit. */
        if (((uart->fcr ^ fcr) & FCR_ENABLE) || (fcr & FCR_CLEAR_RX))
                uart_rx_clear_locked(uart);
        /* FCR_CLEAR_TX: the transmitter is always empty. */

        uart->fcr = (fcr & FCR_ENABLE) ? (fcr & FCR_KEPT) : 0;
}

void uart_mmio_write(void *opaque, uint64_t offset, uint64_t value, _unused_ unsigned size) {
        Uart16550 *uart = opaque;
        uint8_t byte = (uint8_t) value;
        bool transmit = false, notify = false;

        if (!uart || offset > UART_SCR)
                return;

        pthread_mutex_lock(&uart->lock);

        switch (offset) {
        case UART_THR:
                if (uart->lcr & LCR_DLAB) {
                        uart->dll = byte;
                        break;
                }
                if (uart->mcr & MCR_LOOP) {
                        if (!uart_rx_push_locked(uart, byte))
                                uart->lsr_errors |= LSR_OE;
                } else
                        transmit = true;
                /* The byte leaves at once: THR is empty again and the interrupt re-arms. */
                uart->thr_interrupt = true;
                break;

        case UART_IER:
                if (uart->lcr & LCR_DLAB) {
                        uart->dlm = byte;
                        break;
                }
                /* Enabling ETBEI while THR is empty (it always is) raises THRI: Linux's startup test relies on it. */
                if ((byte & IER_ETBEI) && !(uart->ier & IER_ETBEI))
                        uart->thr_interrupt = true;
                uart->ier = byte & IER_MASK;
                break;

        case UART_FCR:
                uart_write_fcr_locked(uart, byte);
                notify = uart_take_rx_space_locked(uart);
                break;

        case UART_LCR:
                uart->lcr = byte;
                break;

        case UART_MCR:
                uart_write_mcr_locked(uart, byte);
                notify = uart_take_rx_space_locked(uart);
                break;

        case UART_LSR:
        case UART_MSR:
                /* Read-only (factory test registers on real parts). */
                break;

        case UART_SCR:
                uart->scr = byte;
                break;
        }

        uart_update_irq_locked(uart);
        pthread_mutex_unlock(&uart->lock);

        if (transmit && uart->callbacks.tx)
                uart->callbacks.tx(uart->opaque, &byte, 1);
        if (notify && uart->callbacks.rx_space)
                uart->callbacks.rx_space(uart->opaque);
}

const MmioOps uart_mmio_ops = {
        .read = uart_mmio_read,
        .write = uart_mmio_write,
};

/* ---- device descriptor ---- */

static int uart_create(const DeviceContext *ctx, void **ret) {
        Uart16550Callbacks cb = { .tx = ctx->host->serial_output, .rx_space = ctx->host->serial_room };
        return uart_new(&ctx->irq, &cb, ctx->host->opaque, (Uart16550 **) ret);
}

static void uart_device_free(void *dev) {
        uart_free(dev);
}

static void uart_device_reset(void *dev) {
        uart_reset(dev);
}

static int uart_fdt_node(void *dev, const DeviceContext *ctx, void *fdt) {
        static const char compat[] = "ns16550a";

        DT_TRY(dt_begin_device(fdt, "serial", ctx, compat, sizeof(compat)));
        DT_TRY(fdt_property_u32(fdt, "clock-frequency", 3686400));
        return dt_err(fdt_end_node(fdt));
}

static int uart_save(void *dev, StateWriter *w) {
        Uart16550 *uart = dev;
        uint8_t rx[UART_RX_FIFO_SIZE];

        pthread_mutex_lock(&uart->lock);
        for (unsigned i = 0; i < uart->rx_count; i++)
                rx[i] = uart->rx[(uart->rx_head + i) % UART_RX_FIFO_SIZE];
        state_put_u32(w, uart->rx_count);
        state_put_bytes(w, rx, uart->rx_count);
        state_put_u8(w, uart->ier);
        state_put_u8(w, uart->lcr);
        state_put_u8(w, uart->mcr);
        state_put_u8(w, uart->scr);
        state_put_u8(w, uart->dll);
        state_put_u8(w, uart->dlm);
        state_put_u8(w, uart->fcr);
        state_put_u8(w, uart->lsr_errors);
        state_put_u8(w, uart->msr_deltas);
        state_put_bool(w, uart->thr_interrupt);
        state_put_bool(w, uart->rx_blocked);
        pthread_mutex_unlock(&uart->lock);
        return state_writer_error(w);
}

static int uart_load(void *dev, StateReader *r) {
        Uart16550 *uart = dev;
        Uart16550 n = {};

        state_get_u32_max(r, UART_RX_FIFO_SIZE, &n.rx_count);
        state_get_bytes(r, n.rx, state_reader_error(r) < 0 ? 0 : n.rx_count);
        state_get_u8_max(r, IER_MASK, &n.ier);
        state_get_u8(r, &n.lcr);
        state_get_u8_max(r, 0x1f, &n.mcr);
        state_get_u8(r, &n.scr);
        state_get_u8(r, &n.dll);
        state_get_u8(r, &n.dlm);
        state_get_u8(r, &n.fcr);
        state_get_u8(r, &n.lsr_errors);
        state_get_u8_max(r, MSR_DELTAS, &n.msr_deltas);
        state_get_bool(r, &n.thr_interrupt);
        state_get_bool(r, &n.rx_blocked);
        if (state_reader_error(r) < 0)
                return state_reader_error(r);
        if ((n.fcr & ~FCR_KEPT) || (n.lsr_errors & ~LSR_ERRORS))
                return -ERANGE;

        pthread_mutex_lock(&uart->lock);
        memcpy(uart->rx, n.rx, sizeof(n.rx));
        uart->rx_head = 0;
        uart->rx_count = n.rx_count;
        uart->ier = n.ier;
        uart->lcr = n.lcr;
        uart->mcr = n.mcr;
        uart->scr = n.scr;
        uart->dll = n.dll;
        uart->dlm = n.dlm;
        uart->fcr = n.fcr;
        uart->lsr_errors = n.lsr_errors;
        uart->msr_deltas = n.msr_deltas;
        uart->thr_interrupt = n.thr_interrupt;
        uart->rx_blocked = n.rx_blocked;
        /* Drive the line even at the level it had: the loaded PLIC must see the loaded level. */
        uart_drive_irq_locked(uart, true);
        pthread_mutex_unlock(&uart->lock);
        return 0;
}

const DeviceDescriptor uart16550_device = {
        .name = "uart16550",
        .base = MEMMAP_UART0_BASE,
        .size = MEMMAP_UART0_SIZE,
        .access_sizes = DEVICE_ACCESS_ANY,
        .irq = IRQ_UART0,
        .mmio = &uart_mmio_ops,
        .create = uart_create,
        .free = uart_device_free,
        .reset = uart_device_reset,
        .fdt_node = uart_fdt_node,
        .save = uart_save,
        .load = uart_load,
};

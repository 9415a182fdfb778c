/* SPDX-License-Identifier: MIT */

/*
 * The machine: wires RAM, framebuffer and devices into the physical
 * address map, loads the boot images, and runs the hart on the CPU thread.
 *
 * Ownership and locking:
 *   - 'lock' protects 'requests', 'state' and 'exit_code' (written by the
 *     CPU thread, read by any thread); 'cond' signals request arrival to a
 *     paused CPU thread.
 *   - The hart, the CLINT and the boot images belong to the CPU thread.
 *   - PLIC, UART and RTC have their own locks (see their headers).
 */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "cpu/cpu.h"
#include "devices/clint.h"
#include "devices/goldfish_rtc.h"
#include "devices/plic.h"
#include "devices/sifive_test.h"
#include "devices/uart16550.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_console.h"
#include "devices/virtio_net.h"
#include "devices/virtio_input.h"
#include "devices/virtio_mmio.h"
#include "machine/boot.h"
#include "machine/fdt.h"
#include "machine/machine.h"
#include "machine/memmap.h"
#include "machine/physmem.h"
#include "macro.h"

#define RUN_CHUNK_INSTRUCTIONS 65536
#define RISCV_ISA "rv64imafdc_zicsr_zifencei_zihintpause_sstc"

struct Machine {
        MachineConfig config;
        char *name, *append;
        MachineCallbacks callbacks;

        PhysMem mem;
        int ram_fd;
        int fb_fd;
        uint32_t fb_width, fb_height, fb_stride;

        Hart hart;
        Hart *harts[1];
        Clint clint;
        Plic *plic;
        Uart16550 *uart;
        GoldfishRtc *rtc;
        SifiveTest *test;
        VirtioInput *keyboard;
        VirtioInput *tablet;
        VirtioConsole *console;
        VirtioMmio *empty_slots[MEMMAP_VIRTIO_COUNT];   /* transports without a device (DeviceID 0) */
        BlockImage *images[MACHINE_FREE_VIRTIO_SLOTS];  /* --drive, in order */
        VirtioBlk *disks[MACHINE_FREE_VIRTIO_SLOTS];
        size_t n_disks;
        VirtioNet *nics[MACHINE_FREE_VIRTIO_SLOTS];     /* --net, in order */
        size_t n_nics;

        /* Pointer position for relative motion; protected by 'lock'. */
        int64_t pointer_x, pointer_y;

        BootBlob bios, kernel, initrd;
        void *fdt;
        size_t fdt_size;
        BootLayout layout;

        /* Guest time: mtime = (monotonic ns - time_base_ns) / 100, frozen while paused. */
        uint64_t time_base_ns;
        uint64_t paused_at_ns;

        pthread_t cpu_thread;
        bool cpu_thread_started;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        pthread_cond_t done_cond;       /* signalled when requests have been carried out */
        unsigned requests;              /* bit set of MachineRequest */
        uint64_t request_seq;           /* requests issued */
        uint64_t done_seq;              /* requests carried out (all up to this number) */
        MachineState state;
        int exit_code;

        /* Set by the sifive_test callback on the CPU thread. */
        int power_action;               /* -1 none, else SifiveTestAction */
        int power_code;

        int notify_fd;
};

static uint64_t monotonic_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static uint64_t realtime_ns(void *userdata) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static uint64_t machine_read_time(void *opaque) {
        Machine *m = opaque;
        /* 10 MHz timebase: 100 ns per tick. Reads only CPU-thread state. */
        return (monotonic_ns() - m->time_base_ns) / (1000000000ULL / TIMEBASE_FREQUENCY);
}

static void notify(Machine *m) {
        uint64_t one = 1;
        (void) !write(m->notify_fd, &one, sizeof(one));
}

/* ---- device callbacks ---- */

static void plic_set_external(void *opaque, unsigned hart, bool machine_mode, bool level) {
        Machine *m = opaque;
        if (hart < ELEMENTSOF(m->harts))
                hart_set_external_irq(m->harts[hart], machine_mode ? MIP_MEIP : MIP_SEIP, level);
}

static void uart_tx(void *opaque, const uint8_t *buf, size_t n) {
        Machine *m = opaque;
        if (m->callbacks.serial_output)
                m->callbacks.serial_output(m->callbacks.opaque, buf, n);
}

static void uart_rx_space(void *opaque) {
        Machine *m = opaque;
        if (m->callbacks.serial_room)
                m->callbacks.serial_room(m->callbacks.opaque);
}

static void test_action(void *opaque, SifiveTestAction action, int code) {
        Machine *m = opaque;
        m->power_action = (int) action;
        m->power_code = code;
        /* Stop the hart at once: nothing after the write should run. */
        hart_end_slice(&m->hart);
        atomic_store(&m->hart.kick, true);
}

/* virtio slots: 0 keyboard, 1 tablet, 2 console (agent port 1); the rest empty. */
enum {
        SLOT_KEYBOARD,
        SLOT_TABLET,
        SLOT_CONSOLE,
};
#define AGENT_PORT 1u

static void keyboard_leds(void *opaque, uint32_t leds) {
        /* The bus layer re-reads the LEDs when woken. */
        notify(opaque);
}

static void tablet_ready(void *opaque, bool ready) {
        /* The bus layer re-reads IsAbsolute when woken. */
        notify(opaque);
}

static void console_data(void *opaque, unsigned port, const uint8_t *buf, size_t len) {
        Machine *m = opaque;
        if (port == AGENT_PORT && m->callbacks.agent_output)
                m->callbacks.agent_output(m->callbacks.opaque, buf, len);
}

static void console_open(void *opaque, unsigned port, bool open) {
        Machine *m = opaque;
        if (port == AGENT_PORT && m->callbacks.agent_open)
                m->callbacks.agent_open(m->callbacks.opaque, open);
}

static void console_room(void *opaque, unsigned port) {
        Machine *m = opaque;
        if (port == AGENT_PORT && m->callbacks.agent_room)
                m->callbacks.agent_room(m->callbacks.opaque);
}

static int setup_virtio(Machine *m) {
        IrqLine irq;
        int r;

        irq = plic_irq_line(m->plic, IRQ_VIRTIO_FIRST + SLOT_KEYBOARD);
        VirtioInputConfig kbd = {
                .kind = VIRTIO_INPUT_KEYBOARD,
                .leds = keyboard_leds,
                .opaque = m,
        };
        r = virtio_input_new(&m->mem, &irq, &kbd, &m->keyboard);
        if (r < 0)
                return r;

        irq = plic_irq_line(m->plic, IRQ_VIRTIO_FIRST + SLOT_TABLET);
        VirtioInputConfig tab = {
                .kind = VIRTIO_INPUT_TABLET,
                /* Without a framebuffer the tablet still exists, scaled to a nominal screen. */
                .abs_max_x = (m->fb_width ? m->fb_width : 1024) - 1,
                .abs_max_y = (m->fb_height ? m->fb_height : 768) - 1,
                .ready = tablet_ready,
                .opaque = m,
        };
        r = virtio_input_new(&m->mem, &irq, &tab, &m->tablet);
        if (r < 0)
                return r;

        irq = plic_irq_line(m->plic, IRQ_VIRTIO_FIRST + SLOT_CONSOLE);
        VirtioConsolePortConfig ports[2] = {
                {},
                { .name = VIRTIO_CONSOLE_AGENT_PORT_NAME, .host_connected = true },
        };
        VirtioConsoleConfig con = {
                .n_ports = ELEMENTSOF(ports),
                .ports = ports,
                .callbacks = { .on_data = console_data, .on_open = console_open, .on_room = console_room },
                .opaque = m,
        };
        r = virtio_console_new(&m->mem, &irq, &con, &m->console);
        if (r < 0)
                return r;

        VirtioMmio *transports[MEMMAP_VIRTIO_COUNT] = {
                [SLOT_KEYBOARD] = virtio_input_transport(m->keyboard),
                [SLOT_TABLET] = virtio_input_transport(m->tablet),
                [SLOT_CONSOLE] = virtio_console_transport(m->console),
        };
        for (size_t i = 0; i < m->n_disks; i++) {
                unsigned slot = SLOT_CONSOLE + 1 + (unsigned) i;

                irq = plic_irq_line(m->plic, IRQ_VIRTIO_FIRST + slot);
                r = virtio_blk_new(&m->mem, &irq, m->images[i], m->config.drives[i].id, &m->disks[i]);
                if (r < 0)
                        return r;
                transports[slot] = virtio_blk_transport(m->disks[i]);
        }
        for (size_t i = 0; i < m->config.n_nets; i++) {
                unsigned slot = SLOT_CONSOLE + 1 + (unsigned) (m->n_disks + i);

                irq = plic_irq_line(m->plic, IRQ_VIRTIO_FIRST + slot);
                r = virtio_net_new(&m->mem, &irq, m->config.nets[i].mac, &m->nics[i]);
                if (r < 0)
                        return r;
                m->n_nics++;
                transports[slot] = virtio_net_transport(m->nics[i]);
        }
        for (unsigned i = 0; i < MEMMAP_VIRTIO_COUNT; i++) {
                uint64_t base = MEMMAP_VIRTIO_BASE + i * MEMMAP_VIRTIO_SIZE;
                if (!transports[i]) {
                        /* The guest's driver finds DeviceID 0 and leaves the slot alone. */
                        irq = plic_irq_line(m->plic, IRQ_VIRTIO_FIRST + i);
                        r = virtio_mmio_new(&m->mem, &irq, NULL, NULL, &m->empty_slots[i]);
                        if (r < 0)
                                return r;
                        transports[i] = m->empty_slots[i];
                }
                r = physmem_add_mmio(&m->mem, base, MEMMAP_VIRTIO_SIZE, &virtio_mmio_ops, transports[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

VirtioNet *machine_nic(Machine *m, size_t i) {
        return i < m->n_nics ? m->nics[i] : NULL;
}

/* Opens and locks every --drive image, before any device exists. */
static int open_drives(Machine *m, char *error, size_t error_size) {
        int r;

        if (m->config.n_drives + m->config.n_nets > MACHINE_FREE_VIRTIO_SLOTS) {
                snprintf(error, error_size, "too many drives and NICs: %zu (at most %d together)",
                         m->config.n_drives + m->config.n_nets, MACHINE_FREE_VIRTIO_SLOTS);
                return -E2BIG;
        }
        for (size_t i = 0; i < m->config.n_drives; i++) {
                r = drive_open(&m->config.drives[i], &m->images[i], error, error_size);
                if (r < 0)
                        return r;
                m->n_disks++;
                if (m->config.drives[i].cache == BLOCK_CACHE_NONE && !m->config.drives[i].snapshot &&
                    !block_image_direct(m->images[i]))
                        fprintf(stderr, "orrery-vm: drive '%s': the file system of '%s' refuses O_DIRECT; "
                                "cache=none uses the page cache\n",
                                m->config.drives[i].id, m->config.drives[i].path);
        }
        return 0;
}

static const MmioOps rtc_ops = {
        .read = goldfish_rtc_mmio_read,
        .write = goldfish_rtc_mmio_write,
};

static const MmioOps test_ops = {
        .read = sifive_test_mmio_read,
        .write = sifive_test_mmio_write,
};

/* ---- memory ---- */

static int map_memfd(const char *name, uint64_t size, int *ret_fd, uint8_t **ret_ptr) {
        _cleanup_close_ int fd = -1;
        void *p;

        fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        if (ftruncate(fd, (off_t) size) < 0)
                return -errno;
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
        if (p == MAP_FAILED)
                return -errno;
        *ret_fd = TAKE_FD(fd);
        *ret_ptr = p;
        return 0;
}

static int setup_memory(Machine *m, char *error, size_t error_size) {
        int r;

        r = map_memfd("orrery-ram", m->config.memory, &m->ram_fd, &m->mem.ram);
        if (r < 0) {
                snprintf(error, error_size, "cannot allocate %llu MiB of guest RAM: %s",
                         (unsigned long long) (m->config.memory >> 20), strerror(-r));
                return r;
        }
        m->mem.ram_base = MEMMAP_RAM_BASE;
        m->mem.ram_size = m->config.memory;

        if (m->config.fb_width == 0)
                return 0;

        m->fb_width = m->config.fb_width;
        m->fb_height = m->config.fb_height;
        m->fb_stride = m->fb_width * 4;
        uint64_t size = ((uint64_t) m->fb_stride * m->fb_height + 4095) & ~4095ULL;
        r = map_memfd("orrery-framebuffer", size, &m->fb_fd, &m->mem.fb);
        if (r < 0) {
                snprintf(error, error_size, "cannot allocate the framebuffer: %s", strerror(-r));
                return r;
        }
        /*
         * The mapping above stays writable for the guest; the seals stop anyone
         * who receives the fd from resizing it or mapping it writable.
         */
        if (fcntl(m->fb_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) < 0) {
                snprintf(error, error_size, "cannot seal the framebuffer memfd: %s", strerror(errno));
                return -errno;
        }
        m->mem.fb_base = MEMMAP_FB_BASE;
        m->mem.fb_size = size;
        m->mem.fb_dirty_words = (size / 4096 + 63) / 64;
        m->mem.fb_dirty = calloc(m->mem.fb_dirty_words, sizeof(uint64_t));
        if (!m->mem.fb_dirty)
                return -ENOMEM;
        return 0;
}

static int setup_devices(Machine *m, char *error, size_t error_size) {
        int r;

        m->harts[0] = &m->hart;
        hart_init(&m->hart, &m->mem, 0);
        m->hart.read_time = machine_read_time;
        m->hart.time_opaque = m;
        clint_init(&m->clint, m->harts, ELEMENTSOF(m->harts), machine_read_time, m);

        r = plic_new(ELEMENTSOF(m->harts), plic_set_external, m, &m->plic);
        if (r < 0)
                goto fail;

        IrqLine uart_irq = plic_irq_line(m->plic, IRQ_UART0);
        Uart16550Callbacks uart_cb = { .tx = uart_tx, .rx_space = uart_rx_space };
        r = uart_new(&uart_irq, &uart_cb, m, &m->uart);
        if (r < 0)
                goto fail;

        IrqLine rtc_irq = plic_irq_line(m->plic, IRQ_RTC);
        r = goldfish_rtc_new(&rtc_irq, realtime_ns, NULL, &m->rtc);
        if (r < 0)
                goto fail;

        r = sifive_test_new(test_action, m, &m->test);
        if (r < 0)
                goto fail;

        struct {
                uint64_t base, size;
                const MmioOps *ops;
                void *opaque;
        } map[] = {
                { MEMMAP_TEST_BASE, MEMMAP_TEST_SIZE, &test_ops, m->test },
                { MEMMAP_RTC_BASE, MEMMAP_RTC_SIZE, &rtc_ops, m->rtc },
                { MEMMAP_CLINT_BASE, MEMMAP_CLINT_SIZE, &clint_mmio_ops, &m->clint },
                { MEMMAP_PLIC_BASE, MEMMAP_PLIC_SIZE, &plic_mmio_ops, m->plic },
                { MEMMAP_UART0_BASE, MEMMAP_UART0_SIZE, &uart_mmio_ops, m->uart },
        };
        for (size_t i = 0; i < ELEMENTSOF(map); i++) {
                r = physmem_add_mmio(&m->mem, map[i].base, map[i].size, map[i].ops, map[i].opaque);
                if (r < 0)
                        goto fail;
        }
        r = setup_virtio(m);
        if (r < 0)
                goto fail;
        return 0;

fail:
        snprintf(error, error_size, "cannot set up devices: %s", strerror(-r));
        return r;
}

static int build_fdt(Machine *m, uint64_t initrd_start, uint64_t initrd_end) {
        FdtConfig c = {
                .num_harts = ELEMENTSOF(m->harts),
                .isa = RISCV_ISA,
                .mmu_type = "riscv,sv39",
                .ram_base = MEMMAP_RAM_BASE,
                .ram_size = m->config.memory,
                .bootargs = m->append,
                .initrd_start = initrd_start,
                .initrd_end = initrd_end,
                .fb_size = m->mem.fb_size,
                .fb_width = m->fb_width,
                .fb_height = m->fb_height,
                .fb_stride = m->fb_stride,
        };

        free(m->fdt);
        m->fdt = NULL;
        return fdt_build(&c, &m->fdt, &m->fdt_size);
}

static int load_images(Machine *m, char *error, size_t error_size) {
        uint64_t kernel_size;
        int r;

        r = boot_read_file(m->config.bios, m->config.memory, &m->bios, error, error_size);
        if (r < 0)
                return r;
        r = boot_read_file(m->config.kernel, m->config.memory, &m->kernel, error, error_size);
        if (r < 0)
                return r;
        r = boot_check_kernel(&m->kernel, m->config.kernel, &kernel_size, error, error_size);
        if (r < 0)
                return r;
        if (m->config.initrd) {
                r = boot_read_file(m->config.initrd, m->config.memory, &m->initrd, error, error_size);
                if (r < 0)
                        return r;
        }

        /* The tree's size does not depend on the initrd addresses: plan with a first build, then fill them in. */
        r = build_fdt(m, m->initrd.size ? 1 : 0, m->initrd.size ? 2 : 0);
        if (r < 0) {
                snprintf(error, error_size, "cannot build the device tree: %s", strerror(-r));
                return r;
        }
        r = boot_plan(&m->layout, m->config.memory, m->bios.size, kernel_size, m->initrd.size, m->fdt_size,
                      error, error_size);
        if (r < 0)
                return r;
        r = build_fdt(m, m->layout.initrd_addr, m->layout.initrd_end);
        if (r < 0) {
                snprintf(error, error_size, "cannot build the device tree: %s", strerror(-r));
                return r;
        }
        return 0;
}

static void copy_to_ram(Machine *m, uint64_t paddr, const void *src, size_t size) {
        memcpy(m->mem.ram + (paddr - MEMMAP_RAM_BASE), src, size);
}

/* Puts the machine in its power-on state. CPU thread (or before it starts). */
static void machine_reset_cpu_side(Machine *m) {
        BootLayout *l = &m->layout;

        copy_to_ram(m, l->bios_addr, m->bios.data, m->bios.size);
        copy_to_ram(m, l->kernel_addr, m->kernel.data, m->kernel.size);
        if (m->initrd.size)
                copy_to_ram(m, l->initrd_addr, m->initrd.data, m->initrd.size);
        copy_to_ram(m, l->fdt_addr, m->fdt, m->fdt_size);
        boot_write_dyninfo(m->mem.ram + (l->dyninfo_addr - MEMMAP_RAM_BASE), l->kernel_addr);

        hart_reset(&m->hart, l->bios_addr);
        m->hart.x[10] = 0;                 /* a0: hart id */
        m->hart.x[11] = l->fdt_addr;       /* a1: device tree */
        m->hart.x[12] = l->dyninfo_addr;   /* a2: fw_dynamic_info */

        clint_reset(&m->clint);
        plic_reset(m->plic);
        uart_reset(m->uart);
        goldfish_rtc_reset(m->rtc);
        sifive_test_reset(m->test);
        virtio_input_reset(m->keyboard);
        virtio_input_reset(m->tablet);
        virtio_console_reset(m->console);
        for (size_t i = 0; i < m->n_disks; i++)
                virtio_blk_reset(m->disks[i]);
        for (size_t i = 0; i < m->n_nics; i++)
                virtio_net_reset(m->nics[i]);
        m->power_action = -1;
}

int machine_new(const MachineConfig *config, const MachineCallbacks *callbacks, Machine **ret,
                char *error, size_t error_size) {
        Machine *m;
        int r;

        if (config->memory < MACHINE_MEMORY_MIN || config->memory > MACHINE_MEMORY_MAX) {
                snprintf(error, error_size, "memory size %llu MiB out of range (%llu MiB .. %llu GiB)",
                         (unsigned long long) (config->memory >> 20), (unsigned long long) (MACHINE_MEMORY_MIN >> 20),
                         (unsigned long long) (MACHINE_MEMORY_MAX >> 30));
                return -EINVAL;
        }
        if (config->fb_width > MACHINE_FB_MAX_DIM || config->fb_height > MACHINE_FB_MAX_DIM ||
            (config->fb_width == 0) != (config->fb_height == 0)) {
                snprintf(error, error_size, "display size %ux%u out of range (at most %ux%u)", config->fb_width,
                         config->fb_height, MACHINE_FB_MAX_DIM, MACHINE_FB_MAX_DIM);
                return -EINVAL;
        }

        m = calloc(1, sizeof(*m));
        if (!m) {
                snprintf(error, error_size, "out of memory");
                return -ENOMEM;
        }
        m->config = *config;
        m->ram_fd = m->fb_fd = m->notify_fd = -1;
        m->power_action = -1;
        pthread_mutex_init(&m->lock, NULL);
        pthread_cond_init(&m->cond, NULL);
        pthread_condattr_t attr;
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&m->done_cond, &attr);
        pthread_condattr_destroy(&attr);
        if (callbacks)
                m->callbacks = *callbacks;
        m->name = strdup(config->name ? config->name : "orrery");
        m->append = config->append ? strdup(config->append) : NULL;
        if (!m->name || (config->append && !m->append)) {
                r = -ENOMEM;
                snprintf(error, error_size, "out of memory");
                goto fail;
        }
        m->config.name = m->name;
        m->config.append = m->append;

        m->notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (m->notify_fd < 0) {
                r = -errno;
                snprintf(error, error_size, "eventfd: %s", strerror(errno));
                goto fail;
        }

        r = setup_memory(m, error, error_size);
        if (r < 0)
                goto fail;
        r = open_drives(m, error, error_size);
        if (r < 0)
                goto fail;
        r = setup_devices(m, error, error_size);
        if (r < 0)
                goto fail;
        r = load_images(m, error, error_size);
        if (r < 0)
                goto fail;

        /* Images are kept so that a reset can restore them: the guest may have overwritten RAM. */
        m->time_base_ns = monotonic_ns();
        machine_reset_cpu_side(m);
        m->state = MACHINE_PAUSED;
        *ret = m;
        return 0;

fail:
        machine_free(m);
        return r;
}

static void set_state(Machine *m, MachineState state) {
        pthread_mutex_lock(&m->lock);
        m->state = state;
        pthread_mutex_unlock(&m->lock);
        notify(m);
}

/* Sleeps until the next timer deadline, an interrupt or a request. CPU thread. */
static void wait_for_interrupt(Machine *m) {
        uint64_t deadline = clint_next_deadline(&m->clint);
        uint64_t rtc_ns;
        struct timespec ts;

        if ((m->hart.menvcfg & (1ULL << 63)) && m->hart.stimecmp < deadline)
                deadline = m->hart.stimecmp;

        uint64_t now_ticks = machine_read_time(m);
        uint64_t wait_ns = 100 * 1000000ULL; /* re-check at least every 100 ms (RTC alarm, robustness) */
        if (deadline != UINT64_MAX) {
                if (deadline <= now_ticks)
                        return;
                uint64_t ticks = deadline - now_ticks;
                if (ticks < wait_ns / 100)
                        wait_ns = ticks * 100;
        }
        if (goldfish_rtc_alarm_deadline(m->rtc, &rtc_ns) == 0) {
                uint64_t now = realtime_ns(NULL);
                if (rtc_ns <= now)
                        return;
                if (rtc_ns - now < wait_ns)
                        wait_ns = rtc_ns - now;
        }

        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t abs_ns = (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec + wait_ns;
        ts.tv_sec = (time_t) (abs_ns / 1000000000ULL);
        ts.tv_nsec = (long) (abs_ns % 1000000000ULL);

        pthread_mutex_lock(&m->hart.wfi_lock);
        if (!atomic_load(&m->hart.kick))
                pthread_cond_timedwait(&m->hart.wfi_cond, &m->hart.wfi_lock, &ts);
        pthread_mutex_unlock(&m->hart.wfi_lock);
}

/* Handles queued requests; returns false when the CPU thread should end. */
static bool handle_requests(Machine *m) {
        pthread_mutex_lock(&m->lock);
        for (;;) {
                unsigned req = m->requests;
                uint64_t seq = m->request_seq;
                m->requests = 0;

                if (req & (1u << MACHINE_REQUEST_QUIT)) {
                        m->state = MACHINE_SHUTDOWN;
                        m->done_seq = seq;
                        pthread_cond_broadcast(&m->done_cond);
                        pthread_mutex_unlock(&m->lock);
                        notify(m);
                        return false;
                }
                if (req & (1u << MACHINE_REQUEST_RESET)) {
                        pthread_mutex_unlock(&m->lock);
                        machine_reset_cpu_side(m);
                        pthread_mutex_lock(&m->lock);
                }
                if ((req & (1u << MACHINE_REQUEST_PAUSE)) && m->state == MACHINE_RUNNING) {
                        m->state = MACHINE_PAUSED;
                        m->paused_at_ns = monotonic_ns();
                        notify(m);
                }
                if ((req & (1u << MACHINE_REQUEST_RESUME)) && m->state == MACHINE_PAUSED) {
                        /* Guest time stands still while paused. */
                        m->time_base_ns += monotonic_ns() - m->paused_at_ns;
                        m->state = MACHINE_RUNNING;
                        notify(m);
                }
                m->done_seq = seq;
                pthread_cond_broadcast(&m->done_cond);
                if (m->state != MACHINE_PAUSED)
                        break;
                while (m->requests == 0)
                        pthread_cond_wait(&m->cond, &m->lock);
        }
        pthread_mutex_unlock(&m->lock);
        return true;
}

/* Carries out a power-off or reboot the guest asked for; returns false when the CPU thread should end. */
static bool handle_power_action(Machine *m) {
        int action = m->power_action;

        if (getenv("ORRERY_DEBUG"))
                fprintf(stderr, "orrery-vm: power action %d code %d at pc %#llx after %llu instructions\n", action,
                        m->power_code, (unsigned long long) m->hart.pc, (unsigned long long) m->hart.instret);

        m->power_action = -1;
        if (action == SIFIVE_TEST_RESET && !m->config.no_reboot) {
                machine_reset_cpu_side(m);
                return true;
        }
        pthread_mutex_lock(&m->lock);
        m->exit_code = action == SIFIVE_TEST_FAIL ? (m->power_code ? m->power_code : 1) : 0;
        pthread_mutex_unlock(&m->lock);
        set_state(m, MACHINE_SHUTDOWN);
        return false;
}

static void *cpu_thread_main(void *userdata) {
        Machine *m = userdata;

        for (;;) {
                HartExit e;

                if (!handle_requests(m))
                        break;

                clint_update_timers(&m->clint);
                e = hart_run(&m->hart, RUN_CHUNK_INSTRUCTIONS);
                if (m->power_action >= 0 && !handle_power_action(m))
                        break;
                if (e == HART_EXIT_WFI) {
                        goldfish_rtc_poll(m->rtc);
                        wait_for_interrupt(m);
                }
        }
        return NULL;
}

int machine_start(Machine *m) {
        int r;

        pthread_mutex_lock(&m->lock);
        m->state = MACHINE_RUNNING;
        m->time_base_ns = monotonic_ns();
        pthread_mutex_unlock(&m->lock);

        r = -pthread_create(&m->cpu_thread, NULL, cpu_thread_main, m);
        if (r < 0)
                return r;
        m->cpu_thread_started = true;
        notify(m);
        return 0;
}

void machine_request(Machine *m, MachineRequest request) {
        pthread_mutex_lock(&m->lock);
        m->requests |= 1u << request;
        m->request_seq++;
        pthread_cond_broadcast(&m->cond);
        pthread_mutex_unlock(&m->lock);
        hart_kick(&m->hart);
}

int machine_request_wait(Machine *m, MachineRequest request, uint64_t timeout_usec) {
        struct timespec deadline;
        uint64_t seq;
        int r = 0;

        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += (time_t) (timeout_usec / 1000000);
        deadline.tv_nsec += (long) (timeout_usec % 1000000) * 1000;
        if (deadline.tv_nsec >= 1000000000L) {
                deadline.tv_sec++;
                deadline.tv_nsec -= 1000000000L;
        }

        pthread_mutex_lock(&m->lock);
        m->requests |= 1u << request;
        seq = ++m->request_seq;
        pthread_cond_broadcast(&m->cond);
        pthread_mutex_unlock(&m->lock);
        hart_kick(&m->hart);

        pthread_mutex_lock(&m->lock);
        while (m->done_seq < seq && m->state != MACHINE_SHUTDOWN && m->cpu_thread_started) {
                if (pthread_cond_timedwait(&m->done_cond, &m->lock, &deadline) == ETIMEDOUT) {
                        r = -ETIMEDOUT;
                        break;
                }
        }
        pthread_mutex_unlock(&m->lock);
        return r;
}

int machine_power_button(Machine *m) {
        int r;

        if (!m->keyboard || !virtio_input_driver_ready(m->keyboard))
                return -EOPNOTSUPP;
        /*
         * Press and release in one packet: it is queued whole or refused whole,
         * so a full queue can never leave the power key held down.
         */
        r = virtio_input_send(m->keyboard, 1 /* EV_KEY */, 116 /* KEY_POWER */, 1);
        if (r >= 0)
                r = virtio_input_send(m->keyboard, 1, 116, 0);
        if (r >= 0)
                r = virtio_input_sync(m->keyboard);
        return r;
}

int machine_key(Machine *m, uint16_t code, bool pressed) {
        return virtio_input_key(m->keyboard, code, pressed);
}

static int64_t clamp(int64_t v, int64_t max) {
        return v < 0 ? 0 : v > max ? max : v;
}

int machine_pointer_abs(Machine *m, int64_t x, int64_t y) {
        int64_t max_x = (m->fb_width ? m->fb_width : 1024) - 1, max_y = (m->fb_height ? m->fb_height : 768) - 1;

        pthread_mutex_lock(&m->lock);
        m->pointer_x = clamp(x, max_x);
        m->pointer_y = clamp(y, max_y);
        x = m->pointer_x;
        y = m->pointer_y;
        pthread_mutex_unlock(&m->lock);
        return virtio_input_abs(m->tablet, x, y);
}

int machine_pointer_rel(Machine *m, int64_t dx, int64_t dy) {
        int64_t x, y;

        pthread_mutex_lock(&m->lock);
        x = m->pointer_x + dx;
        y = m->pointer_y + dy;
        pthread_mutex_unlock(&m->lock);
        return machine_pointer_abs(m, x, y);
}

int machine_pointer_button(Machine *m, uint16_t button, bool pressed) {
        return virtio_input_button(m->tablet, button, pressed);
}

int machine_pointer_wheel(Machine *m, int32_t vertical, int32_t horizontal) {
        return virtio_input_wheel(m->tablet, vertical, horizontal);
}

uint32_t machine_keyboard_leds(Machine *m) {
        /* The device reports 1 << LED_* with LED_NUML 0, LED_CAPSL 1, LED_SCROLLL 2. */
        return virtio_input_leds(m->keyboard) & 7;
}

bool machine_pointer_is_absolute(Machine *m) {
        return virtio_input_driver_ready(m->tablet);
}

size_t machine_agent_input(Machine *m, const uint8_t *buf, size_t n) {
        ssize_t r = virtio_console_write(m->console, AGENT_PORT, buf, n);
        return r > 0 ? (size_t) r : 0;
}

void machine_agent_throttle(Machine *m, bool throttle) {
        (void) virtio_console_throttle(m->console, AGENT_PORT, throttle);
}

uint64_t machine_memory_bytes(Machine *m) {
        return m->config.memory;
}

MachineState machine_get_state(Machine *m) {
        MachineState s;

        pthread_mutex_lock(&m->lock);
        s = m->state;
        pthread_mutex_unlock(&m->lock);
        return s;
}

int machine_exit_code(Machine *m) {
        int c;

        pthread_mutex_lock(&m->lock);
        c = m->exit_code;
        pthread_mutex_unlock(&m->lock);
        return c;
}

int machine_notify_fd(Machine *m) {
        return m->notify_fd;
}

void machine_notify_drain(Machine *m) {
        uint64_t v;
        (void) !read(m->notify_fd, &v, sizeof(v));
}

size_t machine_serial_input(Machine *m, const uint8_t *buf, size_t n) {
        return uart_receive(m->uart, buf, n);
}

const uint8_t *machine_framebuffer(Machine *m, uint32_t *ret_width, uint32_t *ret_height, uint32_t *ret_stride) {
        *ret_width = m->fb_width;
        *ret_height = m->fb_height;
        *ret_stride = m->fb_stride;
        return m->mem.fb;
}

int machine_framebuffer_fd(Machine *m) {
        return m->fb_fd;
}

const void *machine_device_tree(Machine *m, size_t *ret_size) {
        *ret_size = m->fdt_size;
        return m->fdt;
}

size_t machine_framebuffer_dirty_words(Machine *m) {
        return m->mem.fb_dirty ? m->mem.fb_dirty_words : 0;
}

uint64_t machine_framebuffer_take_dirty(Machine *m, size_t word) {
        if (!m->mem.fb_dirty || word >= m->mem.fb_dirty_words)
                return 0;
        return physmem_fb_take_dirty(&m->mem, word);
}

uint64_t machine_instructions(Machine *m) {
        return __atomic_load_n(&m->hart.instret, __ATOMIC_RELAXED);
}

void machine_free(Machine *m) {
        if (!m)
                return;
        if (m->cpu_thread_started) {
                machine_request(m, MACHINE_REQUEST_QUIT);
                pthread_join(m->cpu_thread, NULL);
        }
        if (m->harts[0])
                hart_destroy(&m->hart);
        if (m->plic)
                plic_free(m->plic);
        uart_freep(&m->uart);
        goldfish_rtc_freep(&m->rtc);
        sifive_test_freep(&m->test);
        virtio_input_freep(&m->keyboard);
        virtio_input_freep(&m->tablet);
        virtio_console_freep(&m->console);
        for (size_t i = 0; i < m->n_nics; i++)
                virtio_net_freep(&m->nics[i]);
        for (size_t i = 0; i < m->n_disks; i++) {
                virtio_blk_freep(&m->disks[i]);
                block_image_closep(&m->images[i]);
        }
        for (unsigned i = 0; i < MEMMAP_VIRTIO_COUNT; i++)
                virtio_mmio_freep(&m->empty_slots[i]);
        if (m->mem.ram)
                munmap(m->mem.ram, m->mem.ram_size);
        if (m->mem.fb)
                munmap(m->mem.fb, m->mem.fb_size);
        free(m->mem.fb_dirty);
        safe_close(m->ram_fd);
        safe_close(m->fb_fd);
        safe_close(m->notify_fd);
        boot_blob_clear(&m->bios);
        boot_blob_clear(&m->kernel);
        boot_blob_clear(&m->initrd);
        free(m->fdt);
        free(m->name);
        free(m->append);
        pthread_mutex_destroy(&m->lock);
        pthread_cond_destroy(&m->cond);
        pthread_cond_destroy(&m->done_cond);
        free(m);
}

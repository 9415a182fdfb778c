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

#include "cpu/hart.h"
#include "devices/clint.h"
#include "devices/goldfish_rtc.h"
#include "devices/plic.h"
#include "devices/sifive_test.h"
#include "devices/uart16550.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_console.h"
#include "devices/virtio_gpu.h"
#include "devices/virtio_net.h"
#include "devices/virtio_input.h"
#include "devices/virtio_mmio.h"
#include "devices/virtio_rng.h"
#include "machine/boot.h"
#include "machine/fdt.h"
#include "machine/machine.h"
#include "machine/memmap.h"
#include "machine/physmem.h"
#include "log.h"
#include "macro.h"
#include "time-util.h"

#define RUN_CHUNK_INSTRUCTIONS 65536
/* What the hart implements, for the device tree: the deprecated single string and the per-extension list. */
#define RISCV_ISA "rv64imafdc_zicsr_zifencei_zihintpause_sstc"
#define RISCV_ISA_BASE "rv64i"
static const char *const riscv_isa_extensions[] = {
        "i", "m", "a", "f", "d", "c", "zicsr", "zifencei", "zihintpause", "sstc", NULL,
};

#define MACHINE_MAX_DEVICES 24

typedef struct MachineDevice {
        const DeviceDescriptor *desc;
        DeviceContext ctx;
        void *dev;
} MachineDevice;

struct Machine {
        MachineConfig config;
        char *name, *append;
        MachineCallbacks callbacks;

        PhysMem mem;
        int ram_fd;
        int fb_fd;
        uint32_t fb_width, fb_height, fb_stride;

        Hart *hart;
        Hart *harts[1];
        DeviceHost host;                /* what the devices get from the machine; outlives them */
        MachineDevice devices[MACHINE_MAX_DEVICES];     /* machine_devices[], created */
        unsigned n_devices;

        /* The devices the machine itself talks to (all in 'devices'). */
        Clint *clint;
        Plic *plic;
        Uart16550 *uart;
        GoldfishRtc *rtc;
        VirtioInput *keyboard;
        VirtioInput *tablet;
        VirtioConsole *console;
        BlockImage *images[MACHINE_FREE_VIRTIO_SLOTS];  /* --drive, in order */
        size_t n_images;
        VirtioBlkVariant disk_types[MACHINE_FREE_VIRTIO_SLOTS];
        VirtioNetVariant nic_types[MACHINE_FREE_VIRTIO_SLOTS];
        VirtioBlk *disks[MACHINE_FREE_VIRTIO_SLOTS];    /* --drive, in order */
        VirtioNet *nics[MACHINE_FREE_VIRTIO_SLOTS];     /* --net, in order */
        size_t n_nics;
        DeviceSlot table[MACHINE_MAX_DEVICES];          /* machine_devices[] with the disks and NICs filled in */
        size_t n_table;

        /* Pointer position for relative motion; protected by 'lock'. */
        int64_t pointer_x, pointer_y;

        BootBlob bios, kernel, initrd;
        void *fdt;
        size_t fdt_size;
        BootLayout layout;

        /* Guest time: mtime = (monotonic ns - time_base_ns) / 100, frozen while paused. */
        uint64_t time_base_ns;
        uint64_t paused_at_ns;
        /* Where guest time starts and whether the CPU thread starts paused (a restored machine). */
        uint64_t start_ticks;
        bool start_paused;

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
        bool cpu_side_busy;             /* the CPU thread works on the hart with 'lock' released, though paused */
        HartDebugStop debug_stop;       /* why the hart last stopped for the debugger; under 'lock' */
        uint64_t debug_stop_pc;

        /* Set by the sifive_test callback on the CPU thread. */
        int power_action;               /* -1 none, else SifiveTestAction */
        int power_code;

        int notify_fd;
};

static uint64_t monotonic_ns(void) {
        return now_nsec(CLOCK_MONOTONIC);
}

static uint64_t realtime_ns(void *userdata) {
        return now_nsec(CLOCK_REALTIME);
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
                hart_set_irq(m->harts[hart], machine_mode ? MIP_MEIP : MIP_SEIP, level);
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

static void test_action(void *opaque, unsigned action, int code) {
        Machine *m = opaque;
        m->power_action = (int) action;
        m->power_code = code;
        /* Stop the hart at once: nothing after the write should run. */
        hart_request_stop(m->hart);
}

static void host_changed(void *opaque) {
        /* The bus layer re-reads the keyboard LEDs and IsAbsolute when woken. */
        notify(opaque);
}

static void console_data(void *opaque, unsigned port, const uint8_t *buf, size_t len) {
        Machine *m = opaque;
        if (port == VIRTIO_CONSOLE_AGENT_PORT && m->callbacks.agent_output)
                m->callbacks.agent_output(m->callbacks.opaque, buf, len);
}

static void console_open(void *opaque, unsigned port, bool open) {
        Machine *m = opaque;
        if (port == VIRTIO_CONSOLE_AGENT_PORT && m->callbacks.agent_open)
                m->callbacks.agent_open(m->callbacks.opaque, open);
}

static void console_room(void *opaque, unsigned port) {
        Machine *m = opaque;
        if (port == VIRTIO_CONSOLE_AGENT_PORT && m->callbacks.agent_room)
                m->callbacks.agent_room(m->callbacks.opaque);
}

/* ---- the device table ---- */

#define VIRTIO_SLOT(n, type)                                                                    \
        { .desc = &virtio_mmio_device, .base = MEMMAP_VIRTIO_BASE + (n) * MEMMAP_VIRTIO_SIZE, \
          .irq = IRQ_VIRTIO_FIRST + (n), .variant = (type) }

/*
 * Every device of the machine, in the order they are created, reset and
 * described in the device tree (and freed in reverse). Adding a device is
 * one line here; the descriptor says everything else.
 */
static const DeviceSlot machine_devices[] = {
        { .desc = &clint_device },
        { .desc = &plic_device },       /* before every device with an interrupt */
        { .desc = &uart16550_device },
        { .desc = &goldfish_rtc_device },
        { .desc = &sifive_test_device },
        /* Listed from the highest address down, as "virt" does: Linux probes them in reverse. */
        VIRTIO_SLOT(7, NULL),
        VIRTIO_SLOT(6, NULL),
        VIRTIO_SLOT(5, NULL),
        VIRTIO_SLOT(4, NULL),
        VIRTIO_SLOT(3, &virtio_rng_type),
        VIRTIO_SLOT(2, &virtio_console_type),
        VIRTIO_SLOT(1, &virtio_tablet_type),
        VIRTIO_SLOT(0, &virtio_keyboard_type),
};

_Static_assert(ELEMENTSOF(machine_devices) <= MACHINE_MAX_DEVICES, "device table too long");

/* The first instance of 'desc' (with a virtio 'type' for virtio slots: its backend), or NULL. */
static void *find_device(Machine *m, const DeviceDescriptor *desc, const VirtioDeviceType *type) {
        for (unsigned i = 0; i < m->n_devices; i++) {
                if (m->devices[i].desc != desc)
                        continue;
                if (!type)
                        return m->devices[i].dev;
                void *backend = virtio_mmio_slot_backend(m->devices[i].dev, type);
                if (backend)
                        return backend;
        }
        return NULL;
}

static int create_device(Machine *m, const DeviceSlot *slot) {
        const DeviceDescriptor *desc = slot->desc;
        MachineDevice *md = &m->devices[m->n_devices];
        int r;

        md->desc = desc;
        md->ctx = (DeviceContext) {
                .host = &m->host,
                .mem = &m->mem,
                .base = slot->base ? slot->base : desc->base,
                .size = desc->size,
                .irq_number = slot->irq ? slot->irq : desc->irq,
                .variant = slot->variant,
        };
        if (md->ctx.irq_number > 0) {
                if (!m->plic || md->ctx.irq_number >= PLIC_NUM_SOURCES)
                        return -EINVAL;
                md->ctx.irq = plic_irq_line(m->plic, md->ctx.irq_number);
        }
        r = desc->create(&md->ctx, &md->dev);
        if (r < 0)
                return r;
        m->n_devices++;
        if (desc == &plic_device)
                m->plic = md->dev;
        return physmem_add_mmio_sized(&m->mem, md->ctx.base, md->ctx.size, desc->access_sizes, desc->mmio, md->dev);
}

#define MACHINE_STATE_VERSION 1

static void put_section(StateWriter *w, const char *name, const StateWriter *section) {
        size_t n = strlen(name);

        state_put_u16(w, (uint16_t) n);
        state_put_bytes(w, name, n);
        state_put_u32(w, (uint32_t) section->size);
        state_put_bytes(w, section->data, section->size);
}

/* The next section, which must be 'name': its payload as a reader of its own. */
static int get_section(StateReader *r, const char *name, StateReader *ret) {
        char got[64];
        uint16_t n;
        uint32_t size;
        int e;

        state_get_u16_max(r, sizeof(got) - 1, &n);
        state_get_bytes(r, got, n);
        state_get_u32(r, &size);
        e = state_reader_error(r);
        if (e < 0)
                return e;
        got[n] = 0;
        if (!streq(got, name) || size > r->size - r->pos)
                return -EBADMSG;
        *ret = state_reader(r->data + r->pos, size);
        r->pos += size;
        return 0;
}

int machine_save_state(Machine *m, StateWriter *w) {
        StateWriter section = {};
        int r;

        state_put_u32(w, MACHINE_STATE_VERSION);
        state_put_u32(w, m->n_devices);
        r = hart_save(m->hart, &section);
        if (r >= 0)
                put_section(w, "hart", &section);
        for (unsigned i = 0; r >= 0 && i < m->n_devices; i++) {
                MachineDevice *md = &m->devices[i];

                state_writer_done(&section);
                r = md->desc->save(md->dev, &section);
                if (r >= 0)
                        put_section(w, md->desc->name, &section);
        }
        state_writer_done(&section);
        return r < 0 ? r : state_writer_error(w);
}

static int load_section(StateReader *r, const char *name, void *obj, int (*load)(void *obj, StateReader *r)) {
        StateReader section;
        int e;

        e = get_section(r, name, &section);
        if (e < 0)
                return e;
        e = load(obj, &section);
        if (e < 0)
                return log_debug_errno(e, "Refusing the state of %s: %m", name);
        return state_reader_finish(&section);
}

static int hart_load_section(void *hart, StateReader *r) {
        return hart_load(hart, r);
}

int machine_load_state(Machine *m, StateReader *r) {
        uint32_t version, n;
        int e;

        state_get_u32_max(r, MACHINE_STATE_VERSION, &version);
        state_get_u32(r, &n);
        e = state_reader_error(r);
        if (e < 0)
                return e;
        if (version != MACHINE_STATE_VERSION || n != m->n_devices)
                return -ERANGE;
        e = load_section(r, "hart", m->hart, hart_load_section);
        for (unsigned i = 0; e >= 0 && i < m->n_devices; i++)
                e = load_section(r, m->devices[i].desc->name, m->devices[i].dev, m->devices[i].desc->load);
        if (e < 0)
                return e;
        return state_reader_finish(r);
}

static int soc_nodes(void *userdata, void *fdt) {
        Machine *m = userdata;
        int r;

        for (unsigned i = 0; i < m->n_devices; i++) {
                MachineDevice *md = &m->devices[i];
                if (!md->desc->fdt_node)
                        continue;
                r = md->desc->fdt_node(md->dev, &md->ctx, fdt);
                if (r < 0)
                        return r;
        }
        return 0;
}

VirtioNet *machine_nic(Machine *m, size_t i) {
        return i < m->n_nics ? m->nics[i] : NULL;
}

size_t machine_n_nics(Machine *m) {
        return m->n_nics;
}

VirtioBlk *machine_disk(Machine *m, size_t i) {
        return i < m->n_images ? m->disks[i] : NULL;
}

BlockImage *machine_disk_image(Machine *m, size_t i) {
        return i < m->n_images ? m->images[i] : NULL;
}

const char *machine_disk_id(Machine *m, size_t i) {
        return i < m->n_images ? m->config.drives[i].id : NULL;
}

const char *machine_nic_id(Machine *m, size_t i) {
        return i < m->n_nics ? m->config.nets[i].id : NULL;
}

size_t machine_n_disks(Machine *m) {
        return m->n_images;
}

/*
 * Puts the disks (their images opened and locked by the caller), then the NICs,
 * in the empty virtio slots from the lowest
 * address up (Linux names the first disk it finds vda); a virtio-gpu takes
 * the highest empty slot.
 */
static int build_table(Machine *m) {
        size_t free_slots[MACHINE_FREE_VIRTIO_SLOTS], n_free = 0;
        size_t want = m->config.n_drives + m->config.n_nets + (m->config.gpu_virtio ? 1 : 0);

        m->n_table = ELEMENTSOF(machine_devices);
        memcpy(m->table, machine_devices, sizeof(machine_devices));
        for (size_t i = 0; i < m->n_table; i++)
                if (m->table[i].desc == &virtio_mmio_device && !m->table[i].variant && n_free < ELEMENTSOF(free_slots))
                        free_slots[n_free++] = i;
        /* Ascending addresses. */
        for (size_t i = 1; i < n_free; i++)
                for (size_t j = i; j > 0 && m->table[free_slots[j]].base < m->table[free_slots[j - 1]].base; j--) {
                        size_t t = free_slots[j];
                        free_slots[j] = free_slots[j - 1];
                        free_slots[j - 1] = t;
                }
        if (want > n_free)
                return -E2BIG;          /* main.c checks MACHINE_FREE_VIRTIO_SLOTS first, with a message */

        for (size_t i = 0; i < m->config.n_drives; i++) {
                if (!m->config.images || !m->config.images[i])
                        return -EINVAL;
                m->images[i] = m->config.images[i];
                m->n_images++;
                virtio_blk_variant_init(&m->disk_types[i], m->images[i], m->config.drives[i].id);
                m->table[free_slots[i]].variant = &m->disk_types[i].type;
        }
        for (size_t i = 0; i < m->config.n_nets; i++) {
                virtio_net_variant_init(&m->nic_types[i], m->config.nets[i].mac);
                m->table[free_slots[m->config.n_drives + i]].variant = &m->nic_types[i].type;
        }
        if (m->config.gpu_virtio)
                m->table[free_slots[n_free - 1]].variant = &virtio_gpu_type;
        return 0;
}

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

static int setup_memory(Machine *m) {
        int r;

        r = map_memfd("orrery-ram", m->config.memory, &m->ram_fd, &m->mem.ram);
        if (r < 0)
                return log_debug_errno(r, "Failed to allocate %llu MiB of guest RAM: %m",
                                       (unsigned long long) (m->config.memory >> 20));
        m->mem.ram_base = MEMMAP_RAM_BASE;
        m->mem.ram_size = m->config.memory;

        if (m->config.fb_width == 0)
                return 0;

        m->fb_width = m->config.fb_width;
        m->fb_height = m->config.fb_height;
        m->fb_stride = m->fb_width * 4;
        uint64_t size = ((uint64_t) m->fb_stride * m->fb_height + 4095) & ~4095ULL;
        r = map_memfd("orrery-framebuffer", size, &m->fb_fd, &m->mem.fb);
        if (r < 0)
                return log_debug_errno(r, "Failed to allocate the framebuffer: %m");
        /*
         * The mapping above stays writable for the guest; the seals stop anyone
         * who receives the fd from resizing it or mapping it writable.
         */
        if (fcntl(m->fb_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) < 0)
                return log_debug_errno(errno, "Failed to seal the framebuffer memfd: %m");
        m->mem.fb_base = MEMMAP_FB_BASE;
        m->mem.fb_size = size;
        m->mem.fb_dirty_words = (size / 4096 + 63) / 64;
        m->mem.fb_dirty = calloc(m->mem.fb_dirty_words, sizeof(uint64_t));
        if (!m->mem.fb_dirty)
                return -ENOMEM;
        return 0;
}

static int setup_devices(Machine *m) {
        int r;

        m->hart = hart_new(&m->mem, 0, machine_read_time, m);
        if (!m->hart)
                return -ENOMEM;
        m->harts[0] = m->hart;
        if (m->config.cpu_engine_jit) {
                r = hart_set_engine(m->hart, HART_ENGINE_JIT);
                if (r == -EOPNOTSUPP && m->config.cpu_engine_fallback)
                        ; /* no translator for this host: the interpreter is the default here */
                else if (r < 0 && m->config.cpu_engine_fallback)
                        log_notice_errno(r, "Translating CPU engine unavailable, using the interpreter: %m");
                else if (r < 0)
                        return log_error_errno(r, "Failed to start the translating CPU engine: %m");
        }

        m->host = (DeviceHost) {
                .opaque = m,
                .harts = m->harts,
                .num_harts = ELEMENTSOF(m->harts),
                .fb_width = m->fb_width,
                .fb_height = m->fb_height,
                .mtime = machine_read_time,
                .realtime_ns = realtime_ns,
                .set_external = plic_set_external,
                .power = test_action,
                .serial_output = uart_tx,
                .serial_room = uart_rx_space,
                .changed = host_changed,
                .port_data = console_data,
                .port_open = console_open,
                .port_room = console_room,
        };
        for (size_t i = 0; i < m->n_table; i++) {
                r = create_device(m, &m->table[i]);
                if (r < 0)
                        return log_debug_errno(r, "Failed to set up device %s: %m", m->table[i].desc->name);
        }
        for (size_t i = 0; i < m->n_images; i++)
                m->disks[i] = find_device(m, &virtio_mmio_device, &m->disk_types[i].type);
        for (size_t i = 0; i < m->config.n_nets; i++) {
                m->nics[i] = find_device(m, &virtio_mmio_device, &m->nic_types[i].type);
                if (m->nics[i])
                        m->n_nics++;
        }
        m->clint = find_device(m, &clint_device, NULL);
        m->uart = find_device(m, &uart16550_device, NULL);
        m->rtc = find_device(m, &goldfish_rtc_device, NULL);
        m->keyboard = find_device(m, &virtio_mmio_device, &virtio_keyboard_type);
        m->tablet = find_device(m, &virtio_mmio_device, &virtio_tablet_type);
        m->console = find_device(m, &virtio_mmio_device, &virtio_console_type);
        if (!m->clint || !m->plic || !m->uart || !m->rtc)
                return log_debug_errno(-EINVAL, "The device table lacks a CLINT, PLIC, UART or RTC.");
        return 0;
}

static int build_fdt(Machine *m, uint64_t initrd_start, uint64_t initrd_end) {
        FdtConfig c = {
                .num_harts = ELEMENTSOF(m->harts),
                .isa = RISCV_ISA,
                .isa_base = RISCV_ISA_BASE,
                .isa_extensions = riscv_isa_extensions,
                /* The largest mode satp takes (Sv39 and Sv48 both work). */
                .mmu_type = "riscv,sv48",
                .soc_nodes = soc_nodes,
                .userdata = m,
                .ram_base = MEMMAP_RAM_BASE,
                .ram_size = m->config.memory,
                .bootargs = m->append,
                .initrd_start = initrd_start,
                .initrd_end = initrd_end,
                /* The virtio-gpu owns the screen: no second, unused display in the tree. */
                .fb_size = m->config.gpu_virtio ? 0 : m->mem.fb_size,
                .fb_width = m->fb_width,
                .fb_height = m->fb_height,
                .fb_stride = m->fb_stride,
        };

        free(m->fdt);
        m->fdt = NULL;
        return fdt_build(&c, &m->fdt, &m->fdt_size);
}

/* Reads the boot images, plans where they go, and builds the device tree that says so. */
static int load_images(Machine *m) {
        uint64_t kernel_size;
        int r;

        if (!m->config.kernel)
                /* Only described (--dump-dtb): a tree without an initrd. */
                return build_fdt(m, 0, 0);

        r = boot_read_file(m->config.bios, m->config.memory, &m->bios);
        if (r < 0)
                return log_debug_errno(r, "Failed to read firmware '%s': %m", m->config.bios);
        r = boot_read_file(m->config.kernel, m->config.memory, &m->kernel);
        if (r < 0)
                return log_debug_errno(r, "Failed to read kernel '%s': %m", m->config.kernel);
        r = boot_check_kernel(&m->kernel, &kernel_size);
        if (r < 0)
                return log_debug_errno(r, "'%s' is not a RISC-V Linux Image: %m", m->config.kernel);
        if (m->config.initrd) {
                r = boot_read_file(m->config.initrd, m->config.memory, &m->initrd);
                if (r < 0)
                        return log_debug_errno(r, "Failed to read initrd '%s': %m", m->config.initrd);
        }

        /* The tree's size does not depend on the initrd addresses: plan with a first build, then fill them in. */
        r = build_fdt(m, m->initrd.size ? 1 : 0, m->initrd.size ? 2 : 0);
        if (r < 0)
                return log_debug_errno(r, "Failed to build the device tree: %m");
        r = boot_plan(&m->layout, m->config.memory, m->bios.size, kernel_size, m->initrd.size, m->fdt_size);
        if (r < 0)
                return log_debug_errno(r, "Failed to place the boot images in RAM: %m");
        return build_fdt(m, m->layout.initrd_addr, m->layout.initrd_end);
}

static void copy_to_ram(Machine *m, uint64_t paddr, const void *src, size_t size) {
        memcpy(m->mem.ram + (paddr - MEMMAP_RAM_BASE), src, size);
}

static int copy_image_to_ram(Machine *m, uint64_t paddr, const BootBlob *b, const char *path) {
        int r = boot_blob_copy(b, m->mem.ram + (paddr - MEMMAP_RAM_BASE));

        if (r == -ESTALE)
                return log_error_errno(r, "Cannot reset the machine: '%s' changed since the VM started "
                                       "(start the VM again to boot it)", path);
        if (r < 0)
                return log_error_errno(r, "Cannot reset the machine: reading '%s' failed: %m", path);
        return 0;
}

/*
 * Puts the machine in its power-on state. CPU thread (or before it starts).
 * Fails only if a boot image can no longer be read as it was (the machine
 * cannot be reset then).
 */
static int machine_reset_cpu_side(Machine *m) {
        BootLayout *l = &m->layout;
        int r;

        if (m->kernel.size) {
                r = copy_image_to_ram(m, l->bios_addr, &m->bios, m->config.bios);
                if (r >= 0)
                        r = copy_image_to_ram(m, l->kernel_addr, &m->kernel, m->config.kernel);
                if (r >= 0 && m->initrd.size)
                        r = copy_image_to_ram(m, l->initrd_addr, &m->initrd, m->config.initrd);
                if (r < 0)
                        return r;
                copy_to_ram(m, l->fdt_addr, m->fdt, m->fdt_size);
                boot_write_dyninfo(m->mem.ram + (l->dyninfo_addr - MEMMAP_RAM_BASE), l->kernel_addr);
        }

        /* The hart first: the devices' resets then drive its interrupt lines afresh. */
        hart_reset(m->hart, l->bios_addr);
        (void) hart_set_reg(m->hart, HART_REG_X0 + 10, 0);                 /* a0: hart id */
        (void) hart_set_reg(m->hart, HART_REG_X0 + 11, l->fdt_addr);       /* a1: device tree */
        (void) hart_set_reg(m->hart, HART_REG_X0 + 12, l->dyninfo_addr);   /* a2: fw_dynamic_info */

        for (unsigned i = 0; i < m->n_devices; i++)
                m->devices[i].desc->reset(m->devices[i].dev);
        m->power_action = -1;
        return 0;
}

int machine_new(const MachineConfig *config, const MachineCallbacks *callbacks, Machine **ret) {
        Machine *m;
        int r;

        if (config->memory < MACHINE_MEMORY_MIN || config->memory > MACHINE_MEMORY_MAX)
                return -ERANGE;
        if (config->fb_width > MACHINE_FB_MAX_DIM || config->fb_height > MACHINE_FB_MAX_DIM ||
            (config->fb_width == 0) != (config->fb_height == 0))
                return -ERANGE;
        if (config->gpu_virtio && config->fb_width == 0)
                return -EINVAL;

        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
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
                goto fail;
        }
        m->config.name = m->name;
        m->config.append = m->append;

        m->notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (m->notify_fd < 0) {
                r = -errno;
                goto fail;
        }

        r = setup_memory(m);
        if (r >= 0)
                r = build_table(m);
        if (r >= 0)
                r = setup_devices(m);
        if (r >= 0)
                r = load_images(m);
        if (r < 0)
                goto fail;

        m->time_base_ns = monotonic_ns();
        r = machine_reset_cpu_side(m);
        if (r < 0)
                goto fail;
        /* A reset restores the images (the guest may overwrite RAM) from their files, not from memory. */
        boot_blob_release(&m->bios);
        boot_blob_release(&m->kernel);
        boot_blob_release(&m->initrd);
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
        uint64_t deadline = clint_next_deadline(m->clint);
        uint64_t rtc_ns;

        deadline = MIN(deadline, hart_timer_deadline(m->hart));

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

        hart_sleep_until(m->hart, realtime_ns(NULL) + wait_ns);
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
                        m->cpu_side_busy = true;
                        pthread_mutex_unlock(&m->lock);
                        int r = machine_reset_cpu_side(m);
                        pthread_mutex_lock(&m->lock);
                        m->cpu_side_busy = false;
                        if (r < 0) {
                                /* Not resettable: the machine stops, as after a failed power-off. */
                                m->exit_code = 1;
                                m->state = MACHINE_SHUTDOWN;
                                m->done_seq = seq;
                                pthread_cond_broadcast(&m->done_cond);
                                pthread_mutex_unlock(&m->lock);
                                notify(m);
                                return false;
                        }
                }
                if (req & (1u << MACHINE_REQUEST_DROP_WRITE_TLB))
                        hart_drop_write_tlb(m->hart);
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
                if (m->done_seq != seq) {
                        m->done_seq = seq;
                        notify(m); /* for machine_request_done() */
                }
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

        uint64_t pc = 0;
        (void) hart_get_reg(m->hart, HART_REG_PC, &pc);
        log_debug("Power action %d code %d at pc %#llx after %llu instructions", action, m->power_code,
                  (unsigned long long) pc, (unsigned long long) hart_instret(m->hart));

        m->power_action = -1;
        bool failed = false;
        if (action == SIFIVE_TEST_RESET && !m->config.no_reboot) {
                if (machine_reset_cpu_side(m) >= 0)
                        return true;
                failed = true;
        }
        pthread_mutex_lock(&m->lock);
        m->exit_code = failed ? 1 : action == SIFIVE_TEST_FAIL ? (m->power_code ? m->power_code : 1) : 0;
        pthread_mutex_unlock(&m->lock);
        set_state(m, MACHINE_SHUTDOWN);
        return false;
}

/* A breakpoint, watchpoint or step stopped the hart: pause, and keep why for the bus. CPU thread. */
static void debug_stopped(Machine *m) {
        uint64_t pc = 0;

        (void) hart_get_reg(m->hart, HART_REG_PC, &pc);
        pthread_mutex_lock(&m->lock);
        m->debug_stop = hart_debug_take_stop(m->hart);
        m->debug_stop_pc = pc;
        if (m->state == MACHINE_RUNNING) {
                m->state = MACHINE_PAUSED;
                m->paused_at_ns = monotonic_ns();
        }
        pthread_mutex_unlock(&m->lock);
        notify(m);
}

Hart *machine_debug_lock(Machine *m) {
        pthread_mutex_lock(&m->lock);
        if (m->state == MACHINE_PAUSED && !m->cpu_side_busy)
                return m->hart;
        pthread_mutex_unlock(&m->lock);
        return NULL;
}

void machine_debug_unlock(Machine *m) {
        pthread_mutex_unlock(&m->lock);
}

bool machine_debug_take_stop(Machine *m, uint32_t *ret_reason, uint32_t *ret_kind, uint64_t *ret_addr,
                             uint64_t *ret_pc) {
        bool stopped;

        pthread_mutex_lock(&m->lock);
        stopped = m->debug_stop.reason != HART_STOP_NONE;
        if (stopped) {
                *ret_reason = m->debug_stop.reason;
                *ret_kind = m->debug_stop.kind;
                *ret_addr = m->debug_stop.addr;
                *ret_pc = m->debug_stop_pc;
                m->debug_stop.reason = HART_STOP_NONE;
        }
        pthread_mutex_unlock(&m->lock);
        return stopped;
}

static void *cpu_thread_main(void *userdata) {
        Machine *m = userdata;

        for (;;) {
                HartExit e;

                if (!handle_requests(m))
                        break;

                clint_update_timers(m->clint);
                e = hart_run(m->hart, RUN_CHUNK_INSTRUCTIONS);
                if (m->power_action >= 0 && !handle_power_action(m))
                        break;
                if (e == HART_EXIT_DEBUG)
                        debug_stopped(m);
                if (e == HART_EXIT_WFI) {
                        goldfish_rtc_poll(m->rtc);
                        wait_for_interrupt(m);
                }
        }
        return NULL;
}

int machine_start(Machine *m) {
        int r;

        if (!m->kernel.size)
                return -ENOEXEC;        /* described only */
        pthread_mutex_lock(&m->lock);
        m->state = m->start_paused ? MACHINE_PAUSED : MACHINE_RUNNING;
        m->time_base_ns = monotonic_ns() - m->start_ticks * (1000000000ULL / TIMEBASE_FREQUENCY);
        m->paused_at_ns = monotonic_ns();
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
        hart_kick(m->hart);
}

uint64_t machine_request_ticket(Machine *m, MachineRequest request) {
        uint64_t seq;

        pthread_mutex_lock(&m->lock);
        m->requests |= 1u << request;
        seq = ++m->request_seq;
        pthread_cond_broadcast(&m->cond);
        pthread_mutex_unlock(&m->lock);
        hart_kick(m->hart);
        return seq;
}

bool machine_request_done(Machine *m, uint64_t ticket) {
        bool done;

        pthread_mutex_lock(&m->lock);
        done = m->done_seq >= ticket || m->state == MACHINE_SHUTDOWN || !m->cpu_thread_started;
        pthread_mutex_unlock(&m->lock);
        return done;
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
        hart_kick(m->hart);

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
        int64_t max_x = (m->fb_width ? m->fb_width : VIRTIO_INPUT_NOMINAL_WIDTH) - 1;
        int64_t max_y = (m->fb_height ? m->fb_height : VIRTIO_INPUT_NOMINAL_HEIGHT) - 1;

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
        ssize_t r = virtio_console_write(m->console, VIRTIO_CONSOLE_AGENT_PORT, buf, n);
        return r > 0 ? (size_t) r : 0;
}

void machine_agent_throttle(Machine *m, bool throttle) {
        (void) virtio_console_throttle(m->console, VIRTIO_CONSOLE_AGENT_PORT, throttle);
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

int machine_framebuffer_write(Machine *m, uint64_t offset, const void *data, size_t n) {
        if (!m->mem.fb || offset > m->mem.fb_size || n > m->mem.fb_size - offset)
                return -ERANGE;
        memcpy(m->mem.fb + offset, data, n);
        physmem_fb_mark_range(&m->mem, offset, n);
        return 0;
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

uint8_t *machine_ram(Machine *m, uint64_t *ret_size) {
        *ret_size = m->mem.ram_size;
        return m->mem.ram;
}

int machine_ram_fd(Machine *m) {
        return m->ram_fd;
}

uint64_t machine_guest_ticks(Machine *m) {
        uint64_t t;

        pthread_mutex_lock(&m->lock);
        if (!m->cpu_thread_started)
                t = m->start_ticks;
        else
                t = (m->paused_at_ns - m->time_base_ns) / (1000000000ULL / TIMEBASE_FREQUENCY);
        pthread_mutex_unlock(&m->lock);
        return t;
}

int machine_set_guest_ticks(Machine *m, uint64_t ticks) {
        if (ticks > UINT64_MAX / (1000000000ULL / TIMEBASE_FREQUENCY))
                return -ERANGE;
        pthread_mutex_lock(&m->lock);
        if (!m->cpu_thread_started)
                m->start_ticks = ticks;
        else
                /* Wraps for a stream from a long-running guest; machine_read_time() wraps back. */
                m->time_base_ns = m->paused_at_ns - ticks * (1000000000ULL / TIMEBASE_FREQUENCY);
        pthread_mutex_unlock(&m->lock);
        return 0;
}

void machine_set_start_paused(Machine *m, bool paused) {
        m->start_paused = paused;
}

void machine_drain_io(Machine *m) {
        for (size_t i = 0; i < m->n_images; i++)
                if (m->disks[i])
                        virtio_blk_drain(m->disks[i]);
}

uint64_t machine_instructions(Machine *m) {
        return hart_instret(m->hart);
}

void machine_free(Machine *m) {
        if (!m)
                return;
        if (m->cpu_thread_started) {
                machine_request(m, MACHINE_REQUEST_QUIT);
                pthread_join(m->cpu_thread, NULL);
        }
        m->hart = hart_free(m->hart);
        for (unsigned i = m->n_devices; i > 0; i--)
                m->devices[i - 1].desc->free(m->devices[i - 1].dev);
        if (m->mem.ram)
                munmap(m->mem.ram, m->mem.ram_size);
        if (m->mem.fb)
                munmap(m->mem.fb, m->mem.fb_size);
        free(m->mem.fb_dirty);
        physmem_ram_dirty_free(&m->mem);
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

int machine_dirty_start(Machine *m, uint64_t timeout_usec) {
        int r = physmem_ram_dirty_start(&m->mem);
        if (r < 0)
                return r;
        return machine_dirty_sync(m, timeout_usec);
}

int machine_dirty_sync(Machine *m, uint64_t timeout_usec) {
        if (!m->cpu_thread_started) {
                hart_drop_write_tlb(m->hart);
                return 0;
        }
        return machine_request_wait(m, MACHINE_REQUEST_DROP_WRITE_TLB, timeout_usec);
}

void machine_dirty_stop(Machine *m) {
        physmem_ram_dirty_stop(&m->mem);
}

size_t machine_dirty_words(Machine *m) {
        return m->mem.ram_dirty_words;
}

uint64_t machine_dirty_take(Machine *m, size_t word) {
        return word < m->mem.ram_dirty_words ? physmem_ram_take_dirty(&m->mem, word) : 0;
}

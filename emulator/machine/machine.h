/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A machine: RAM, framebuffer, devices, one hart and the CPU thread that
 * runs it. The event-loop thread (main.c, and the bus layer) drives it only
 * through the functions below, which are thread-safe; the CPU thread owns
 * the hart and the devices' CPU-side state.
 *
 * Lifecycle: machine_new() validates and loads everything (no thread yet),
 * machine_start() starts the CPU thread, machine_request() asks it to
 * pause, resume, reset or stop, and the notify fd becomes readable whenever
 * the state changed or serial input may be delivered again.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "block/drive.h"
#include "net/netspec.h"

typedef struct VirtioNet VirtioNet;

#include "devices/state.h"

typedef struct Machine Machine;

typedef struct MachineConfig {
        const char *name;
        const char *bios;               /* M-mode firmware (OpenSBI fw_dynamic) */
        const char *kernel;             /* RISC-V Linux "Image"; NULL: describe the machine only (no start) */
        const char *initrd;             /* may be NULL */
        const char *append;             /* kernel command line; may be NULL */
        uint64_t memory;                /* bytes of RAM */
        uint32_t fb_width, fb_height;   /* 0x0: no framebuffer */
        bool gpu_virtio;                /* the framebuffer is a virtio-gpu's scanout, not a simple-framebuffer */
        bool no_reboot;                 /* a guest reboot powers off instead */
        bool cpu_engine_jit;            /* run the hart on the translating engine */
        bool cpu_engine_fallback;       /* ... or on the interpreter if the JIT cannot start */
        const DriveSpec *drives;        /* virtio-blk disks, in the free virtio slots in order */
        BlockImage *const *images;      /* drives' images, opened and locked by the caller; outlive the machine */
        size_t n_drives;
        const NetSpec *nets;            /* virtio-net NICs, in the slots after the disks */
        size_t n_nets;                  /* drives + NICs (+ 1 for gpu_virtio): at most MACHINE_FREE_VIRTIO_SLOTS */
} MachineConfig;

/* virtio slots left for disks and NICs (slots 0..3 are keyboard, tablet, console, rng). */
#define MACHINE_FREE_VIRTIO_SLOTS 4

typedef enum MachineState {
        MACHINE_RUNNING,
        MACHINE_PAUSED,
        MACHINE_SHUTDOWN,
} MachineState;

typedef enum MachineRequest {
        MACHINE_REQUEST_PAUSE,
        MACHINE_REQUEST_RESUME,
        MACHINE_REQUEST_RESET,
        MACHINE_REQUEST_QUIT,           /* hard stop, exit code 0 */
        MACHINE_REQUEST_DROP_WRITE_TLB, /* the hart drops its write TLB entries (RAM dirty tracking) */
} MachineRequest;

typedef struct MachineCallbacks {
        /* Guest serial output. CPU thread; must not block. */
        void (*serial_output)(void *opaque, const uint8_t *buf, size_t n);
        /* The UART can take serial input again after machine_serial_input() took less than offered. CPU thread. */
        void (*serial_room)(void *opaque);
        /* The guest-agent port (virtio-console "org.qemu.guest_agent.0"): guest output, open state, room. Any thread. */
        void (*agent_output)(void *opaque, const uint8_t *buf, size_t n);
        void (*agent_open)(void *opaque, bool open);
        void (*agent_room)(void *opaque);
        void *opaque;
} MachineCallbacks;

#define MACHINE_MEMORY_MIN (16ULL << 20)
#define MACHINE_MEMORY_MAX (64ULL << 30)
#define MACHINE_FB_MAX_DIM 8192

/*
 * Loads firmware, kernel and initrd and builds the device tree. Returns 0
 * or a negative errno (logged at debug level only): memory or display out
 * of range (-ERANGE), boot_read_file()'s errors for the images, -ENOEXEC
 * for a kernel that is not a RISC-V Image, boot_plan()'s when they do not
 * fit. The caller checks its input first to tell a person which file and
 * why (boot.h has the checks).
 */
int machine_new(const MachineConfig *config, const MachineCallbacks *callbacks, Machine **ret);
void machine_free(Machine *m);

/* Starts the CPU thread; -ENOEXEC for a machine created without a kernel. */
int machine_start(Machine *m);

/* Any thread. Requests are queued and carried out by the CPU thread. */
void machine_request(Machine *m, MachineRequest request);

/*
 * Like machine_request(), without waiting: returns a ticket for
 * machine_request_done(), which turns true once the CPU thread has carried
 * the request out (the notify fd becomes readable then). Any thread.
 */
uint64_t machine_request_ticket(Machine *m, MachineRequest request);
bool machine_request_done(Machine *m, uint64_t ticket);

/*
 * Like machine_request(), then waits (up to timeout_usec) until the CPU
 * thread has carried it out. Returns 0, or -ETIMEDOUT.
 */
int machine_request_wait(Machine *m, MachineRequest request, uint64_t timeout_usec);

/* Presses and releases KEY_POWER on the guest's keyboard. -EOPNOTSUPP without one. Any thread. */
int machine_power_button(Machine *m);

MachineState machine_get_state(Machine *m);
uint64_t machine_memory_bytes(Machine *m);
/* Exit status the guest asked for when it powered off (0 unless it reported failure). */
int machine_exit_code(Machine *m);

/* Readable (eventfd) when the state changed. */
int machine_notify_fd(Machine *m);
void machine_notify_drain(Machine *m);

/* Serial input from the host; returns bytes accepted (the rest: retry after serial_room). Any thread. */
size_t machine_serial_input(Machine *m, const uint8_t *buf, size_t n);
/* Input for the guest agent's port; returns bytes accepted (the rest: retry after agent_room). Any thread. */
size_t machine_agent_input(Machine *m, const uint8_t *buf, size_t n);
/* Stops (or resumes) taking the guest agent's output: its writes wait, as on a slow wire. Any thread. */
void machine_agent_throttle(Machine *m, bool throttle);

/*
 * Keyboard and pointer (virtio-input). Key and button codes are Linux evdev
 * codes; -EINVAL for a code the device does not have. Positions are
 * framebuffer pixels, clamped to the screen. Any thread.
 */
int machine_key(Machine *m, uint16_t code, bool pressed);
int machine_pointer_abs(Machine *m, int64_t x, int64_t y);
int machine_pointer_rel(Machine *m, int64_t dx, int64_t dy);
int machine_pointer_button(Machine *m, uint16_t button, bool pressed);
int machine_pointer_wheel(Machine *m, int32_t vertical, int32_t horizontal);
/* Keyboard LEDs as the guest set them: bit 0 Num, 1 Caps, 2 Scroll. Changes make the notify fd readable. */
uint32_t machine_keyboard_leds(Machine *m);
/* Whether the guest drives the tablet (its driver is up). */
bool machine_pointer_is_absolute(Machine *m);

/* The i-th NIC (MachineConfig.nets order), for its network backend; NULL past the end. */
VirtioNet *machine_nic(Machine *m, size_t i);
size_t machine_n_nics(Machine *m);

/* The i-th disk (MachineConfig.drives order) and its image; NULL past the end. */
typedef struct VirtioBlk VirtioBlk;
VirtioBlk *machine_disk(Machine *m, size_t i);
BlockImage *machine_disk_image(Machine *m, size_t i);
const char *machine_disk_id(Machine *m, size_t i);
const char *machine_nic_id(Machine *m, size_t i);
size_t machine_n_disks(Machine *m);

/*
 * The hart's and every device's state (not RAM), as sections named after
 * them in the order of the device table. Only while the CPU thread is
 * paused or not started. A load checks each section before it changes
 * that part; when a later one is refused the machine is a mix: reset it.
 */
int machine_save_state(Machine *m, StateWriter *w);
int machine_load_state(Machine *m, StateReader *r);

/*
 * For saving and restoring (migration/): guest RAM and its memfd; guest
 * time in timebase ticks, which stands still while paused (set it only
 * while paused or before machine_start(); -ERANGE past what nanoseconds
 * hold); whether machine_start() leaves the CPU thread paused; and
 * waiting until no disk request is in flight (with the CPU paused).
 */
uint8_t *machine_ram(Machine *m, uint64_t *ret_size);
int machine_ram_fd(Machine *m);
uint64_t machine_guest_ticks(Machine *m);
int machine_set_guest_ticks(Machine *m, uint64_t ticks);
void machine_set_start_paused(Machine *m, bool paused);
void machine_drain_io(Machine *m);

/*
 * RAM dirty tracking for live migration (one bit per 4 KiB page, 64 per
 * word). machine_dirty_start() clears the bitmap, turns tracking on and
 * waits (up to timeout_usec) until the CPU thread dropped its write TLB
 * entries: from then on every write to RAM, by the guest or a device,
 * sets its page's bit. A round of pre-copy takes the bitmap
 * (machine_dirty_take(), atomic), then calls machine_dirty_sync() before
 * reading the pages it took: a store through an entry made before the
 * take has landed by then, and later ones mark again. -ETIMEDOUT,
 * -ENOMEM. Any thread but the CPU thread.
 */
int machine_dirty_start(Machine *m, uint64_t timeout_usec);
int machine_dirty_sync(Machine *m, uint64_t timeout_usec);
void machine_dirty_stop(Machine *m);
size_t machine_dirty_words(Machine *m);
uint64_t machine_dirty_take(Machine *m, size_t word);

/*
 * Debugging (org.orrery.Debug1). machine_debug_lock() gives the hart to
 * the calling thread while the CPU thread is paused and holds it there
 * (no request is carried out until machine_debug_unlock()); NULL while
 * it runs. A breakpoint, watchpoint or step pauses the machine and
 * leaves its reason for machine_debug_take_stop(), which returns it once.
 */
typedef struct Hart Hart;
Hart *machine_debug_lock(Machine *m);
void machine_debug_unlock(Machine *m);
bool machine_debug_take_stop(Machine *m, uint32_t *ret_reason, uint32_t *ret_kind, uint64_t *ret_addr,
                             uint64_t *ret_pc);

/* The flattened device tree the guest boots with. */
const void *machine_device_tree(Machine *m, size_t *ret_size);

/* Test/debug hooks: the framebuffer as the guest wrote it. */
const uint8_t *machine_framebuffer(Machine *m, uint32_t *ret_width, uint32_t *ret_height, uint32_t *ret_stride);
int machine_framebuffer_fd(Machine *m);
/* Writes framebuffer bytes at 'offset' (its memfd is sealed; a migration brings the screen). CPU paused or not started. */
int machine_framebuffer_write(Machine *m, uint64_t offset, const void *data, size_t n);
/*
 * The framebuffer's dirty bitmap, one bit per 4 KiB page, 64 pages per word.
 * machine_framebuffer_take_dirty() returns a word's bits and clears them
 * (atomically: the CPU thread sets them as the guest stores). Any thread.
 */
size_t machine_framebuffer_dirty_words(Machine *m);
uint64_t machine_framebuffer_take_dirty(Machine *m, size_t word);
/* Number of guest instructions retired so far (approximate while running). */
uint64_t machine_instructions(Machine *m);

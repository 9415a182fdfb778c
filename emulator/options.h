/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "block/drive.h"
#include "guest-preset.h"
#include "net/netspec.h"

typedef struct Options {
        char *name;
        char *bios, *kernel, *initrd, *append;
        uint64_t memory;
        bool memory_set;                /* --memory or memory = given */
        GuestPreset guest;              /* --guest: defaults for kernel, initrd, append, memory, disk, NIC */
        uint32_t fb_width, fb_height;
        bool gpu_virtio;                /* --gpu virtio: the display is a virtio-gpu, not a simple-framebuffer */
        bool gpu_set;                   /* --gpu or gpu = given */
        char *serial;                   /* "stdio", "none" or "file:PATH" */
        bool no_reboot;
        char *bus_address;              /* NULL: the user's session bus */
        bool no_bus;
        char *dump_dtb;                 /* write the device tree here and exit */
        char *config;                   /* --config FILE; NULL: the default file, if any */
        bool no_config;
        bool cpu_engine_jit;            /* translate guest code (x86-64 hosts); the default */
        bool cpu_engine_fallback;       /* not chosen explicitly: the interpreter if the JIT cannot start */
        bool debug;                     /* --debug: serve org.orrery.Debug1 */
        DriveSpec *drives;              /* --drive, in order */
        size_t n_drives;
        NetSpec *nets;                  /* --net, in order */
        size_t n_nets;
        char *restore;                  /* --restore FILE|fd:N: start from a saved state */
        bool restore_paused;            /* --restore-paused: and stay paused */
        char *incoming;                 /* --incoming URI: wait for a live migration */
        bool restore_force;             /* --restore-force: accept disk images changed since the save */
        bool on_stop_save;              /* --on-stop save: SIGTERM saves the VM (managed save) */
        uint64_t stop_timeout_usec;     /* --stop-timeout: after SIGTERM's power button, stop hard; 0: the default */
} Options;

#define OPTIONS_DEFAULT_MEMORY (512ULL << 20)
#define OPTIONS_DEFAULT_APPEND "console=tty1 console=ttyS0"
/* --stop-timeout's bound: an hour is more than any guest should need to power off. */
#define OPTIONS_STOP_TIMEOUT_MAX_SEC 3600u

/*
 * Parses the command line and the VM's configuration file and fills in
 * defaults (the default guest and Debian's OpenSBI); --log-level takes
 * effect at once. Returns 1 to run, 0 when done (--help, --version), or a
 * negative errno after logging one line that names the problem. Without
 * a built default guest, --dump-dtb leaves kernel and initrd NULL.
 */
int options_parse(Options *o, int argc, char *argv[]);
void options_free(Options *o);

/* [A-Za-z_][A-Za-z0-9_]{0,63} */
bool vm_name_is_valid(const char *name);

/* "512M", "2G", "65536K", "1073741824B"; a bare number means MiB. */
int parse_memory_size(const char *s, uint64_t *ret);

/* "1024x768" */
int parse_display(const char *s, uint32_t *ret_width, uint32_t *ret_height);

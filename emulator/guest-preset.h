/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/*
 * --guest NAME: what a named guest brings when the user did not say
 * otherwise. "default" is the busybox guest (nothing to add); "debian" is
 * the Debian image of guest/debian/: its kernel and initrd, root on the
 * first disk, 1 GiB of RAM, the VM's own copy of the image as a writable
 * disk and a NIC (restrict=on) forwarding a free port of 127.0.0.1 to the
 * guest's ssh.
 */
typedef enum GuestPreset {
        GUEST_PRESET_DEFAULT,
        GUEST_PRESET_DEBIAN,
} GuestPreset;

/*
 * systemd gives a device 90 s to appear before it fails what needs it. On a
 * loaded host the emulated guest's udev can take longer to announce
 * /dev/ttyS0, and the serial getty then never starts: 10 minutes instead.
 */
#define GUEST_DEBIAN_APPEND \
        "root=LABEL=debian-root ro console=tty1 console=ttyS0 systemd.default_device_timeout_sec=600"
#define GUEST_DEBIAN_MEMORY (1024ULL << 20)
/* systemd stops every unit before it powers off: slower than busybox's
 * poweroff, but within orrery-vm@.service's TimeoutStopSec=30. */
#define GUEST_DEBIAN_STOP_TIMEOUT_USEC (25ULL * 1000000ULL)

/* "default" or "debian"; -EINVAL for anything else. */
int guest_preset_from_string(const char *s, GuestPreset *ret);

/*
 * The Debian guest's directory: $ORRERY_DEBIAN_DIR, else the build tree
 * next to this binary (build/emulator/../guest/debian), else the installed
 * datadir. Returns a new string, NULL on OOM.
 */
char *guest_debian_dir(void);

/*
 * The VM's own disk, $XDG_DATA_HOME/orrery/vm/NAME/debian.img (or under
 * ~/.local/share), made on first use as a sparse copy of the built image
 * 'pristine' so that the build output is never written to. Returns 0 and
 * the path, or a negative errno after logging one line.
 */
int guest_debian_disk(const char *name, const char *pristine, char **ret_path);

/* A TCP port of 127.0.0.1 free at the time of the call, for the ssh forward. */
int guest_free_local_port(unsigned *ret_port);

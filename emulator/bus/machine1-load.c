/* SPDX-License-Identifier: MIT */

/*
 * org.orrery.Machine1.Load (dbus/org.orrery.Machine1.xml): the inverse of
 * Save, into this running process. The VM is paused, the whole stream is
 * checked against this VM's configuration (savevm_load() changes nothing
 * before all of it passed), then the hart, the devices, RAM and guest time
 * are replaced and the VM runs on if it ran. Any refusal leaves the VM as
 * it was, running again if it ran.
 *
 * Only a regular file (a memfd counts) is taken, read whole before the VM
 * pauses: a caller cannot stall the event loop by writing slowly into a
 * pipe. A stream that comes from a pipe is for orrery-vm --restore fd:N.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bus/bus.h"
#include "migration/savevm.h"
#include "log.h"
#include "macro.h"

#define LOAD_PAUSE_TIMEOUT_USEC (2ULL * 1000000ULL)

static const char *load_error_name(int r) {
        switch (r) {
        case -EBADMSG:
        case -EMEDIUMTYPE:
        case -ESTALE:
        case -EFBIG:
                return ORRERY_ERROR_INVALID_ARGUMENT;
        default:
                return SD_BUS_ERROR_IO_ERROR;
        }
}

/*
 * Reads the caller's file into memory; -EBADFD for anything but a non-empty
 * regular file. Read, not mapped: the caller could truncate a mapped file
 * under the load, and a page that is gone would kill this process (SIGBUS).
 */
static int load_blob(VmBus *b, int fd, SavevmBlob *ret, char *error, size_t error_size) {
        _cleanup_free_ uint8_t *data = NULL;
        struct stat st;
        size_t n = 0;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode) || st.st_size <= 0) {
                snprintf(error, error_size, "the fd is not a saved state in a regular file (a pipe or socket: use "
                         "orrery-vm --restore fd:N)");
                return -EBADFD;
        }
        if ((uint64_t) st.st_size > savevm_size_bound(machine_memory_bytes(b->machine))) {
                snprintf(error, error_size, "the file is larger than a saved state of this VM can be");
                return -EFBIG;
        }
        data = malloc((size_t) st.st_size);
        if (!data)
                return -ENOMEM;
        /* The size as of fstat(): a file that shrinks meanwhile ends early and fails the checks. */
        while (n < (size_t) st.st_size) {
                ssize_t k = pread(fd, data + n, (size_t) st.st_size - n, (off_t) n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                n += (size_t) k;
        }
        *ret = (SavevmBlob) { .data = TAKE_PTR(data), .size = n };
        return 0;
}

int machine1_method_load(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(savevm_blob_done) SavevmBlob blob = {};
        char message[1024] = "";
        VmBus *b = userdata;
        const char *drive;
        bool was_running;
        int fd, r;

        r = bus_check_request(b, m, "Load", NULL, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "h", &fd);
        if (r < 0)
                return r;
        if (machine_get_state(b->machine) == MACHINE_SHUTDOWN)
                return sd_bus_error_setf(error, ORRERY_ERROR_UNAVAILABLE, "VM '%s' is shutting down", b->name);
        if (machine1_migration_active(b))
                return sd_bus_error_setf(error, ORRERY_ERROR_BUSY, "VM '%s' is being migrated", b->name);
        drive = savevm_snapshot_drive(b->machine);
        if (drive)
                /* The overlay holds the guest's writes since it started, which the loaded RAM knows nothing of. */
                return sd_bus_error_setf(error, ORRERY_ERROR_NOT_SUPPORTED,
                                         "Cannot load into VM '%s': drive '%s' is snapshot=on, and its overlay would "
                                         "not match the loaded state", b->name, drive);

        /* Read before the VM pauses: a bad fd costs the guest nothing. */
        r = load_blob(b, fd, &blob, message, sizeof(message));
        if (r == -EBADFD)
                return sd_bus_error_setf(error, ORRERY_ERROR_INVALID_ARGUMENT, "Cannot load into VM '%s': %s", b->name,
                                         message);
        if (r < 0)
                return sd_bus_error_setf(error, load_error_name(r), "Cannot load into VM '%s': %s", b->name,
                                         *message ? message : strerror(-r));

        was_running = machine_get_state(b->machine) == MACHINE_RUNNING;
        if (was_running && machine_request_wait(b->machine, MACHINE_REQUEST_PAUSE, LOAD_PAUSE_TIMEOUT_USEC) < 0)
                return sd_bus_error_setf(error, ORRERY_ERROR_TIMEOUT, "VM '%s' did not pause in time to be loaded",
                                         b->name);
        if (machine_get_state(b->machine) != MACHINE_PAUSED)
                return sd_bus_error_setf(error, ORRERY_ERROR_UNAVAILABLE, "VM '%s' is shutting down", b->name);

        /* Disk requests in flight finish into the RAM that is about to be replaced, not after it. */
        machine_drain_io(b->machine);
        r = savevm_load(b->machine, blob.data, blob.size, false, message, sizeof(message));
        /*
         * A flow-controlled port (the guest agent's) now carries the throttle
         * of the VM that was saved; tell it what this process's chardev holds.
         */
        if (r >= 0)
                for (unsigned i = 0; i < b->n_chardevs; i++)
                        chardev_assert_flow(b->chardevs[i].chardev);
        if (was_running)
                (void) machine_request_wait(b->machine, MACHINE_REQUEST_RESUME, LOAD_PAUSE_TIMEOUT_USEC);
        if (r < 0) {
                /* That hint is for orrery-vm --restore: Load never forces (old RAM over a newer disk). */
                char *hint = r == -ESTALE ? strstr(message, "; --restore-force") : NULL;
                if (hint)
                        *hint = 0;
                log_warning("Refused to load a saved state into VM '%s': %s", b->name, message);
                return sd_bus_error_setf(error, load_error_name(r), "Cannot load into VM '%s': %s", b->name, message);
        }
        log_info("Loaded a saved state into VM '%s' (%llu MiB)", b->name, (unsigned long long) (blob.size >> 20));
        return sd_bus_reply_method_return(m, NULL);
}

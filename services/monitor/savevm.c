/* SPDX-License-Identifier: MIT */
/*
 * savevm-file: Machine1.Save / SaveAndQuit into a file the monitor opens.
 * The state goes to FILE.tmp first and is renamed over FILE only once the
 * emulator says it is complete, so a failed save never replaces a good one.
 * loadvm-file: Machine1.Load from a file the monitor opens.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "orrery-client.h"
#include "savevm.h"

/* Writing the RAM of a large guest to a slow disk takes a while. */
#define SAVE_TIMEOUT_USEC (300ULL * 1000000ULL)

int monitor_savevm_run(sd_bus *bus, const char *vm, char **argv, size_t argc) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL, *reply = NULL;
        _cleanup_free_ char *service = NULL, *path = NULL, *tmp = NULL;
        _cleanup_close_ int fd = -1;
        const char *file;
        bool quit = false;
        struct stat st;
        int r;

        if (argc == 3 && streq(argv[1], "--quit"))
                quit = true;
        else if (argc != 2 || argv[1][0] == '-')
                return 2;
        file = argv[argc - 1];
        if (asprintf(&service, "org.orrery.VM.%s", vm) < 0 || asprintf(&tmp, "%s.tmp", file) < 0)
                return log_oom(), 1;
        r = sd_bus_path_encode("/org/orrery/VM", vm, &path);
        if (r < 0)
                return log_oom(), 1;

        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd < 0) {
                log_error_errno(errno, "%s: cannot create '%s': %m", argv[0], tmp);
                return 1;
        }
        r = sd_bus_message_new_method_call(bus, &call, service, path, "org.orrery.Machine1",
                                           quit ? "SaveAndQuit" : "Save");
        if (r >= 0)
                r = sd_bus_message_append(call, "h", fd);
        if (r >= 0)
                r = sd_bus_call(bus, call, SAVE_TIMEOUT_USEC, &error, &reply);
        if (r >= 0 && (fsync(fd) < 0 || fstat(fd, &st) < 0))
                r = -errno;
        if (r >= 0 && rename(tmp, file) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlink(tmp);
                if (sd_bus_error_is_set(&error))
                        log_error("%s: %s", argv[0], error.message);
                else
                        log_error_errno(r, "%s: cannot save VM '%s' to '%s': %m", argv[0], vm, file);
                return 1;
        }
        printf("saved VM '%s' to %s (%llu MiB)%s\n", vm, file, (unsigned long long) (st.st_size >> 20),
               quit ? "; the emulator has exited" : "");
        return 0;
}

int monitor_loadvm_run(sd_bus *bus, const char *vm, char **argv, size_t argc) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL, *reply = NULL;
        _cleanup_free_ char *service = NULL, *path = NULL;
        _cleanup_close_ int fd = -1;
        int r;

        if (argc != 2 || argv[1][0] == '-')
                return 2;
        if (asprintf(&service, "org.orrery.VM.%s", vm) < 0)
                return log_oom(), 1;
        r = sd_bus_path_encode("/org/orrery/VM", vm, &path);
        if (r < 0)
                return log_oom(), 1;
        fd = open(argv[1], O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                log_error_errno(errno, "%s: cannot open '%s': %m", argv[0], argv[1]);
                return 1;
        }
        r = sd_bus_message_new_method_call(bus, &call, service, path, "org.orrery.Machine1", "Load");
        if (r >= 0)
                r = sd_bus_message_append(call, "h", fd);
        if (r >= 0)
                r = sd_bus_call(bus, call, SAVE_TIMEOUT_USEC, &error, &reply);
        if (r < 0) {
                if (sd_bus_error_is_set(&error))
                        log_error("%s: %s", argv[0], error.message);
                else
                        log_error_errno(r, "%s: cannot load '%s' into VM '%s': %m", argv[0], argv[1], vm);
                return 1;
        }
        printf("loaded %s into VM '%s'\n", argv[1], vm);
        return 0;
}

/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "guest-preset.h"
#include "log.h"
#include "macro.h"

int guest_preset_from_string(const char *s, GuestPreset *ret) {
        if (streq(s, "default"))
                *ret = GUEST_PRESET_DEFAULT;
        else if (streq(s, "debian"))
                *ret = GUEST_PRESET_DEBIAN;
        else
                return -EINVAL;
        return 0;
}

char *guest_debian_dir(void) {
        const char *env = getenv("ORRERY_DEBIAN_DIR");
        char self[PATH_MAX], *slash, *path = NULL;
        ssize_t n;

        if (env && *env)
                return strdup(env);
        n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n > 0) {
                self[n] = 0;
                slash = strrchr(self, '/');
                if (slash) {
                        *slash = 0;
                        if (asprintf(&path, "%s/../guest/debian", self) < 0)
                                return NULL;
                        if (access(path, R_OK) == 0)
                                return path;
                        free(path);
                }
        }
        if (asprintf(&path, "%s/debian", ORRERY_GUEST_DATADIR) < 0)
                return NULL;
        return path;
}

/* mkdir -p for the few levels under the user's data directory. */
static int mkdir_parents(char *path) {
        for (char *p = path + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = 0;
                if (mkdir(path, 0755) < 0 && errno != EEXIST) {
                        int e = -errno;
                        *p = '/';
                        return e;
                }
                *p = '/';
        }
        return 0;
}

/* Copies only the data extents of 'from': the 4 GiB image holds about 1 GiB. */
static int copy_sparse(int from, int to) {
        struct stat st;
        off_t data = 0, hole;

        if (fstat(from, &st) < 0)
                return -errno;
        if (ftruncate(to, st.st_size) < 0)
                return -errno;
        for (;;) {
                data = lseek(from, data, SEEK_DATA);
                if (data < 0)
                        return errno == ENXIO ? 0 : -errno;
                hole = lseek(from, data, SEEK_HOLE);
                if (hole < 0)
                        return -errno;
                for (off_t in = data, out = data; in < hole;) {
                        ssize_t n = copy_file_range(from, &in, to, &out, (size_t) (hole - in), 0);
                        if (n < 0)
                                return -errno;
                        if (n == 0)
                                return -EIO;
                }
                data = hole;
        }
}

int guest_debian_disk(const char *name, const char *pristine, char **ret_path) {
        _cleanup_free_ char *path = NULL, *tmp = NULL;
        _cleanup_close_ int from = -EBADF, to = -EBADF;
        const char *base = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
        int r;

        if (base && base[0] == '/')
                r = asprintf(&path, "%s/orrery/vm/%s/debian.img", base, name);
        else if (home && home[0] == '/')
                r = asprintf(&path, "%s/.local/share/orrery/vm/%s/debian.img", home, name);
        else
                return log_error_errno(-ENOENT, "--guest debian needs $HOME or $XDG_DATA_HOME for the VM's disk");
        if (r < 0)
                return log_oom();
        if (access(path, F_OK) == 0) {
                *ret_path = TAKE_PTR(path);
                return 0;
        }

        from = open(pristine, O_RDONLY | O_CLOEXEC);
        if (from < 0)
                return log_error_errno(-errno,
                                       "the Debian guest is not built ('%s': %m): run 'meson compile -C build debian-image'",
                                       pristine);
        if (asprintf(&tmp, "%s.tmp", path) < 0)
                return log_oom();
        r = mkdir_parents(tmp);
        if (r < 0)
                return log_error_errno(r, "cannot create the directory of '%s': %m", path);
        to = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (to < 0)
                return log_error_errno(-errno, "cannot create '%s': %m", tmp);
        r = copy_sparse(from, to);
        if (r >= 0 && fsync(to) < 0)
                r = -errno;
        if (r >= 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlink(tmp);
                return log_error_errno(r, "cannot copy '%s' to '%s': %m", pristine, path);
        }
        log_info("Made this VM's Debian disk %s from %s.", path, pristine);
        *ret_path = TAKE_PTR(path);
        return 0;
}

int guest_free_local_port(unsigned *ret_port) {
        _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(sa);

        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || getsockname(fd, (struct sockaddr *) &sa, &len) < 0)
                return -errno;
        *ret_port = ntohs(sa.sin_port);
        return 0;
}

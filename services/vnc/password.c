/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "password.h"

static void explicit_clear(char *s, size_t n) {
        explicit_bzero(s, n);
}

int passwords_read(const char *path, Passwords *ret) {
        _cleanup_close_ int fd = -1;
        char buf[PASSWORD_FILE_MAX + 1];
        char *lines[2] = {};
        size_t n = 0, n_lines = 0;
        struct stat st;
        char *p;
        int r = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EUCLEAN;
        if (st.st_uid != geteuid() && st.st_uid != 0)
                return -EUCLEAN;
        if (st.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH))
                return -EPERM;

        while (n < sizeof(buf)) {
                ssize_t k = read(fd, buf + n, sizeof(buf) - n);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        goto finish;
                }
                if (k == 0)
                        break;
                n += (size_t) k;
        }
        if (n > PASSWORD_FILE_MAX) {
                r = -EBADMSG;
                goto finish;
        }
        buf[n] = 0;
        if (memchr(buf, 0, n)) {
                r = -EBADMSG;
                goto finish;
        }

        p = buf;
        while (*p && n_lines < 2) {
                char *eol = strchr(p, '\n');

                if (eol)
                        *eol = 0;
                if (eol > p && eol[-1] == '\r')
                        eol[-1] = 0;
                lines[n_lines++] = p;
                if (!eol)
                        break;
                p = eol + 1;
        }
        if (n_lines == 0 || !lines[0][0]) {
                r = -EBADMSG;
                goto finish;
        }

        *ret = (Passwords) { .first_view_only = 1 };
        ret->list[0] = strdup(lines[0]);
        if (n_lines > 1 && lines[1][0])
                ret->list[1] = strdup(lines[1]);
        if (!ret->list[0] || (n_lines > 1 && lines[1][0] && !ret->list[1])) {
                passwords_done(ret);
                r = -ENOMEM;
        }

finish:
        explicit_clear(buf, sizeof(buf));
        return r;
}

void passwords_done(Passwords *p) {
        for (size_t i = 0; i < ELEMENTSOF(p->list); i++)
                if (p->list[i]) {
                        explicit_clear(p->list[i], strlen(p->list[i]));
                        free(p->list[i]);
                        p->list[i] = NULL;
                }
}

const char *passwords_credential_path(void) {
        static char path[PATH_MAX];
        const char *dir = getenv("CREDENTIALS_DIRECTORY");

        if (!dir || dir[0] != '/')
                return NULL;
        if ((size_t) snprintf(path, sizeof(path), "%s/%s", dir, PASSWORD_CREDENTIAL) >= sizeof(path))
                return NULL;
        if (access(path, F_OK) < 0)
                return NULL;
        return path;
}

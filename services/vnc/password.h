/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * VNC passwords, read from a file that only its owner can read: line 1 the
 * full-control password, an optional line 2 a view-only one. Never from the
 * command line (other users see it in ps). Under systemd the credential
 * "vnc-password" ($CREDENTIALS_DIRECTORY/vnc-password) is read the same way.
 */

#include <stdbool.h>

#define PASSWORD_CREDENTIAL "vnc-password"
/* VNC authentication (DES) uses the first 8 bytes only. */
#define PASSWORD_SIGNIFICANT 8
#define PASSWORD_FILE_MAX 4096

typedef struct Passwords {
        /* NULL-terminated, as libvncserver's rfbCheckPasswordByList wants:
         * [0] full control, [1] view-only (or NULL). */
        char *list[3];
        int first_view_only; /* index of the first view-only entry */
} Passwords;

/*
 * -EPERM: group or others may read or write the file (message names the mode);
 * -EBADMSG: no password in it (empty first line) or a line too long;
 * -EUCLEAN: not a regular file, or owned by another user (not root either);
 * -errno of open()/read().
 */
int passwords_read(const char *path, Passwords *ret);
void passwords_done(Passwords *p);
/* The credential's path when $CREDENTIALS_DIRECTORY has one, else NULL; a static buffer. */
const char *passwords_credential_path(void);

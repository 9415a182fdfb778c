/* SPDX-License-Identifier: MIT */
/*
 * guest-fsfreeze-freeze, -thaw and -status: FIFREEZE/FITHAW on every
 * mounted file system that lives on a block device (in the default guest:
 * the ext2 RAM disk at /mnt/ram; the root file system is the initramfs,
 * which cannot be frozen). As in QGA, file systems that do not support
 * freezing are skipped, a failure thaws what was frozen, and while frozen
 * the agent refuses every command but the few that cannot write to a
 * file system (see allowed_frozen in the command tables).
 */

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "agent.h"

/* A file system to freeze: one per device, the first mount point seen. */
typedef struct Mount {
        unsigned major, minor;
        char *dir;
} Mount;

typedef struct MountList {
        Mount *mounts;
        size_t n;
} MountList;

static void mount_list_free(MountList *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->mounts[i].dir);
        free(l->mounts);
        *l = (MountList) {};
}

/* Undoes the octal escapes (\040 for a space...) of /proc/self/mountinfo, in place. */
static void unescape_octal(char *s) {
        char *o = s;

        for (; *s; s++) {
                if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' &&
                    s[3] <= '7') {
                        *o++ = (char) ((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
                        s += 3;
                } else
                        *o++ = *s;
        }
        *o = 0;
}

/* Mounts whose device has a real major number: block devices, not proc, tmpfs or the like. */
static int mount_list_read(MountList *ret) {
        _cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
        _cleanup_free_ char *line = NULL;
        MountList l = {};
        size_t size = 0;

        if (!f)
                return -errno;

        while (getline(&line, &size, f) > 0) {
                unsigned major, minor;
                int dir_start = 0, dir_end = 0;
                bool seen = false;
                Mount *m;

                if (sscanf(line, "%*u %*u %u:%u %*s %n%*s%n", &major, &minor, &dir_start, &dir_end) != 2 ||
                    dir_end <= dir_start || major == 0)
                        continue;
                for (size_t i = 0; i < l.n && !seen; i++)
                        seen = l.mounts[i].major == major && l.mounts[i].minor == minor;
                if (seen)
                        continue;

                m = realloc(l.mounts, (l.n + 1) * sizeof(*m));
                if (!m) {
                        mount_list_free(&l);
                        return -ENOMEM;
                }
                l.mounts = m;
                m = &l.mounts[l.n];
                m->major = major;
                m->minor = minor;
                m->dir = strndup(line + dir_start, (size_t) (dir_end - dir_start));
                if (!m->dir) {
                        mount_list_free(&l);
                        return -ENOMEM;
                }
                unescape_octal(m->dir);
                l.n++;
        }

        *ret = l;
        return 0;
}

static int mount_open(const Mount *m) {
        int fd = open(m->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOCTTY);

        return fd < 0 ? -errno : fd;
}

/* Thaws every listed file system; returns how many were frozen. */
static int thaw_all(const MountList *l) {
        int count = 0;

        for (size_t i = l->n; i > 0; i--) {
                _cleanup_close_ int fd = mount_open(&l->mounts[i - 1]);
                bool thawed = false;

                if (fd < 0)
                        continue;
                /* Thaw as often as it was frozen (by anyone), as QGA does. */
                while (ioctl(fd, FITHAW) == 0)
                        thawed = true;
                if (thawed)
                        count++;
        }
        return count;
}

static int set_frozen(Agent *agent, bool frozen) {
        agent->frozen = frozen;
        return agent_state_save(agent);
}

static int cmd_freeze(Agent *agent, json_object *args, Reply *reply) {
        _cleanup_(mount_list_free) MountList l = {};
        int count = 0, r;

        r = mount_list_read(&l);
        if (r < 0)
                return reply_error_errno(reply, r, "failed to read /proc/self/mountinfo");

        /* Set before freezing: a crash half-way must come back knowing something may be frozen. */
        r = set_frozen(agent, true);
        if (r < 0) {
                agent->frozen = false;
                return reply_error_errno(reply, r, "failed to record the frozen state");
        }

        /* The last mounted first, so nothing is frozen under a mount that still needs writing. */
        for (size_t i = l.n; i > 0; i--) {
                const Mount *m = &l.mounts[i - 1];
                _cleanup_close_ int fd = mount_open(m);

                if (fd < 0) {
                        r = fd;
                        reply_error_errno(reply, r, "failed to open %s", m->dir);
                        break;
                }
                if (ioctl(fd, FIFREEZE) < 0) {
                        if (errno == EOPNOTSUPP)
                                continue;
                        r = -errno;
                        reply_error_errno(reply, r, "failed to freeze %s", m->dir);
                        break;
                }
                count++;
        }
        if (r < 0) {
                (void) thaw_all(&l);
                (void) set_frozen(agent, false);
                return -1;
        }

        log_info("froze %d file system(s)", count);
        reply_return(reply, json_object_new_int(count));
        return 0;
}

static int cmd_thaw(Agent *agent, json_object *args, Reply *reply) {
        _cleanup_(mount_list_free) MountList l = {};
        int count, r;

        r = mount_list_read(&l);
        if (r < 0)
                return reply_error_errno(reply, r, "failed to read /proc/self/mountinfo");

        count = thaw_all(&l);
        r = set_frozen(agent, false);
        if (r < 0)
                return reply_error_errno(reply, r, "failed to record the thawed state");

        log_info("thawed %d file system(s)", count);
        reply_return(reply, json_object_new_int(count));
        return 0;
}

static int cmd_status(Agent *agent, json_object *args, Reply *reply) {
        reply_return(reply, json_object_new_string(agent->frozen ? "frozen" : "thawed"));
        return 0;
}

static const Command commands[] = {
        { "guest-fsfreeze-freeze", cmd_freeze, NULL, COMMAND_SYSTEM },
        { "guest-fsfreeze-thaw", cmd_thaw, NULL, COMMAND_ALLOWED_FROZEN | COMMAND_SYSTEM },
        { "guest-fsfreeze-status", cmd_status, NULL, COMMAND_ALLOWED_FROZEN },
};

const Command *fsfreeze_commands(size_t *ret_n) {
        *ret_n = ELEMENTSOF(commands);
        return commands;
}

/* SPDX-License-Identifier: MIT */
/*
 * Who a new caller is, without blocking the event loop.
 *
 * The first call of a unique name the VM has not seen makes it watch the
 * name and ask the bus daemon (GetConnectionCredentials), both sent at
 * once, and wait for the answer in the loop, not in a blocking call: while another user's flood keeps dbus-daemon
 * busy, such a round trip took tens of milliseconds, during which the
 * owner's calls waited. The caller's calls are held meanwhile (up to
 * BUS_VERDICT_WAITING_MAX_PER_PEER, BUS_VERDICT_WAITING_MAX in all; beyond, Busy) and read again, in order, once
 * the verdict is in: the filter (refusal.c) then lets them through or
 * refuses them.
 *
 * The verdict uses only the uid the bus daemon took from the socket; the
 * pid it reports and the command in /proc are for the log.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus/bus.h"
#include "log.h"
#include "macro.h"

static int read_credentials(sd_bus_message *m, uid_t *ret_uid, pid_t *ret_pid) {
        uint32_t uid = UINT32_MAX, pid = 0;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const char *key;

                r = sd_bus_message_read(m, "s", &key);
                if (r < 0)
                        return r;
                if (streq(key, "UnixUserID"))
                        r = sd_bus_message_read(m, "v", "u", &uid);
                else if (streq(key, "ProcessID"))
                        r = sd_bus_message_read(m, "v", "u", &pid);
                else
                        r = sd_bus_message_skip(m, "v");
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        if (uid == UINT32_MAX)
                return -ENODATA;
        *ret_uid = (uid_t) uid;
        *ret_pid = (pid_t) pid;
        return 0;
}

/* The command of pid, for the log only (it may be gone or reused by now). */
static char *comm_of(pid_t pid) {
        char path[64], comm[64];
        FILE *f;

        if (pid <= 0)
                return NULL;
        snprintf(path, sizeof(path), "/proc/%d/comm", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return NULL;
        if (!fgets(comm, sizeof(comm), f)) {
                fclose(f);
                return NULL;
        }
        fclose(f);
        comm[strcspn(comm, "\n")] = 0;
        return strdup(comm);
}

static void drop_waiting(BusPeer *p) {
        for (unsigned i = 0; i < p->n_waiting; i++)
                sd_bus_message_unref(p->waiting[i]);
        p->waiting = mfree(p->waiting);
        p->vm->n_verdict_waiting -= p->n_waiting;
        p->n_waiting = 0;
        p->n_allocated = 0;
}

static int on_credentials(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        BusPeer *p = userdata;
        uid_t uid = (uid_t) -1;
        pid_t pid = 0;
        int r;

        p->asking = sd_bus_slot_unref(p->asking);
        if (sd_bus_message_is_method_error(reply, SD_BUS_ERROR_NAME_HAS_NO_OWNER)) {
                /* Gone before the VM watched it: no answer could reach it. */
                bus_peer_left(p);
                return 0;
        }
        r = sd_bus_message_get_errno(reply);
        if (r == 0)
                r = read_credentials(reply, &uid, &pid);
        if (r != 0)
                log_debug_errno(r, "The bus did not say who %s is: %m", p->name);
        else {
                p->uid = uid;
                p->pid = pid;
                p->comm = comm_of(pid);
        }
        p->allowed = p->uid != (uid_t) -1 && p->uid == geteuid();

        /* Read again, after what is queued already: the filter now knows the verdict. */
        for (unsigned i = 0; i < p->n_waiting; i++) {
                r = sd_bus_enqueue_for_read(p->vm->bus, p->waiting[i]);
                if (r < 0)
                        log_debug_errno(r, "Failed to take up a call of %s again: %m", p->name);
        }
        drop_waiting(p);
        return 0;
}

int bus_verdict_hold(BusPeer *p, sd_bus_message *m) {
        if (p->n_waiting >= BUS_VERDICT_WAITING_MAX_PER_PEER || p->vm->n_verdict_waiting >= BUS_VERDICT_WAITING_MAX) {
                (void) sd_bus_reply_method_errorf(m, ORRERY_ERROR_BUSY,
                                                  "%u calls wait for the bus to say who their callers are; try again",
                                                  p->vm->n_verdict_waiting);
                return 1;
        }
        if (p->n_waiting == p->n_allocated) {
                unsigned n = p->n_allocated ? p->n_allocated * 2 : 64;
                sd_bus_message **w = reallocarray(p->waiting, n, sizeof(*w));
                if (!w)
                        return -ENOMEM;
                p->waiting = w;
                p->n_allocated = n;
        }
        p->waiting[p->n_waiting++] = sd_bus_message_ref(m);
        p->vm->n_verdict_waiting++;
        return 1;
}

int bus_verdict_ask(VmBus *b, const char *sender, sd_bus_message *m) {
        BusPeer *p;
        int r;

        r = bus_peer_add(b, sender, &p);
        if (r == -EBUSY) {
                (void) sd_bus_reply_method_errorf(m, ORRERY_ERROR_BUSY,
                                                  "VM '%s' serves %u clients already; try again later", b->name,
                                                  BUS_MAX_PEERS);
                return 1;
        }
        if (r < 0)
                return r;
        r = sd_bus_call_method_async(b->bus, &p->asking, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                     "org.freedesktop.DBus", "GetConnectionCredentials", on_credentials, p, "s",
                                     sender);
        if (r < 0) {
                /* The method's own check asks again, waiting. */
                bus_peer_forget(b, p);
                return 0;
        }
        return bus_verdict_hold(p, m);
}

void bus_verdict_forget(BusPeer *p) {
        p->asking = sd_bus_slot_unref(p->asking);
        drop_waiting(p);
}

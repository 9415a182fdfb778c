/* SPDX-License-Identifier: MIT */
/*
 * --net parsing: see netspec.h.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "block/drive.h"
#include "net/netspec.h"

void net_spec_done(NetSpec *n) {
        free(n->id);
        free(n->forwards);
        *n = (NetSpec) {};
}

static int parse_port(const char *s, size_t len, uint16_t *ret) {
        unsigned long v = 0;

        if (len == 0 || len > 5)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned long) (s[i] - '0');
        }
        if (v == 0 || v > 65535)
                return -ERANGE;
        *ret = (uint16_t) v;
        return 0;
}

static int parse_addr(const char *s, size_t len, const char *dflt, struct in_addr *ret) {
        char buf[INET_ADDRSTRLEN];

        if (len == 0)
                s = dflt, len = strlen(dflt);
        if (len >= sizeof(buf))
                return -EINVAL;
        memcpy(buf, s, len);
        buf[len] = 0;
        return inet_pton(AF_INET, buf, ret) == 1 ? 0 : -EINVAL;
}

int net_forward_parse(const char *s, NetForward *ret) {
        NetForward f = {};
        const char *p, *colon, *dash, *gcolon;
        int r;

        if (strncmp(s, "tcp:", 4) == 0)
                p = s + 4;
        else if (strncmp(s, "udp:", 4) == 0) {
                f.udp = true;
                p = s + 4;
        } else
                return -EINVAL;

        colon = strchr(p, ':');
        dash = colon ? strchr(colon, '-') : NULL;
        gcolon = dash ? strrchr(dash, ':') : NULL;
        if (!colon || !dash || !gcolon)
                return -EINVAL;

        r = parse_addr(p, (size_t) (colon - p), "127.0.0.1", &f.host_addr);
        if (r < 0)
                return r;
        r = parse_port(colon + 1, (size_t) (dash - colon - 1), &f.host_port);
        if (r < 0)
                return r;
        r = parse_addr(dash + 1, (size_t) (gcolon - dash - 1), "10.0.2.15", &f.guest_addr);
        if (r < 0)
                return r;
        r = parse_port(gcolon + 1, strlen(gcolon + 1), &f.guest_port);
        if (r < 0)
                return r;
        *ret = f;
        return 0;
}

static int parse_mac(const char *s, uint8_t mac[6]) {
        unsigned v[6];
        char end;

        if (strlen(s) != 17 ||
            sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &end) != 6)
                return -EINVAL;
        for (int i = 0; i < 6; i++) {
                if (s[3 * i] == ' ' || s[3 * i] == '+' || s[3 * i] == '-' || (i < 5 && s[3 * i + 2] != ':'))
                        return -EINVAL;
                mac[i] = (uint8_t) v[i];
        }
        /* A multicast (or broadcast) address cannot be a NIC's. */
        if (mac[0] & 1)
                return -EINVAL;
        return 0;
}

/* Sets a key=value item of a --net value (key and value split at the '='); logs what is wrong. */
static int net_spec_set(NetSpec *n, const char *s, const char *where, const char *key, const char *value) {
        if (streq(key, "id")) {
                if (!device_id_is_valid(value))
                        return log_error_errno(EINVAL, "%sinvalid net id '%s': use 1-32 characters of [A-Za-z0-9_]",
                                               where, value);
                free(n->id);
                n->id = strdup(value);
                return n->id ? 0 : log_oom();
        }
        if (streq(key, "mac")) {
                if (parse_mac(value, n->mac) < 0)
                        return log_error_errno(EINVAL,
                                               "%sinvalid MAC '%s': expected a unicast address such as 52:54:00:12:34:56",
                                               where, value);
                n->has_mac = true;
                return 0;
        }
        if (streq(key, "restrict")) {
                if (streq(value, "on") || streq(value, "yes"))
                        n->restricted = true;
                else if (streq(value, "off") || streq(value, "no"))
                        n->restricted = false;
                else
                        return log_error_errno(EINVAL, "%sinvalid net '%s': restrict=%s, expected on or off", where, s,
                                               value);
                return 0;
        }
        if (streq(key, "hostfwd")) {
                NetForward f, *a;
                int r;

                r = net_forward_parse(value, &f);
                if (r == -ERANGE)
                        return log_error_errno(EINVAL, "%sinvalid hostfwd '%s': port out of range (1-65535)", where,
                                               value);
                if (r < 0)
                        return log_error_errno(
                                EINVAL, "%sinvalid hostfwd '%s': expected tcp|udp:[ADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT",
                                where, value);
                a = realloc(n->forwards, sizeof(NetForward) * (n->n_forwards + 1));
                if (!a)
                        return log_oom();
                n->forwards = a;
                n->forwards[n->n_forwards++] = f;
                return 0;
        }
        return log_error_errno(EINVAL, "%sinvalid net '%s': unknown key '%s' (known: id, mac, hostfwd, restrict)",
                               where, s, key);
}

int net_spec_parse(const char *s, const char *where, NetSpec *ret) {
        _cleanup_(net_spec_done) NetSpec n = {};
        _cleanup_free_ char *copy = NULL;
        char *item, *save = NULL;
        bool first = true;
        int r;

        where = where ?: "";
        copy = strdup(s);
        if (!copy)
                return log_oom();
        for (item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save), first = false) {
                char *eq = strchr(item, '=');

                if (first) {
                        if (!streq(item, "user"))
                                return log_error_errno(EINVAL,
                                                       "%sinvalid net '%s': only 'user' networking exists (--net user,...)",
                                                       where, s);
                        continue;
                }
                if (!eq)
                        return log_error_errno(EINVAL, "%sinvalid net '%s': expected key=value, got '%s'", where, s,
                                               item);
                *eq = 0;
                r = net_spec_set(&n, s, where, item, eq + 1);
                if (r < 0)
                        return r;
        }
        if (first)
                return log_error_errno(EINVAL, "%sinvalid net '%s': expected user[,...]", where, s);
        *ret = n;
        n = (NetSpec) {};
        return 0;
}

/* FNV-1a */
static uint64_t hash(const char *a, const char *b) {
        uint64_t h = 0xcbf29ce484222325ULL;

        for (const char *p = a; *p; p++)
                h = (h ^ (uint8_t) *p) * 0x100000001b3ULL;
        h = (h ^ '/') * 0x100000001b3ULL;
        for (const char *p = b; *p; p++)
                h = (h ^ (uint8_t) *p) * 0x100000001b3ULL;
        return h;
}

int net_specs_finish(NetSpec *n, size_t count, const char *vm_name) {
        for (size_t i = 0; i < count; i++) {
                if (!n[i].id)
                        for (unsigned k = 0;; k++) {
                                char id[16];
                                bool taken = false;

                                snprintf(id, sizeof(id), "net%u", k);
                                for (size_t j = 0; j < count; j++)
                                        taken |= n[j].id && streq(n[j].id, id);
                                if (taken)
                                        continue;
                                n[i].id = strdup(id);
                                if (!n[i].id)
                                        return log_oom();
                                break;
                        }
        }
        for (size_t i = 0; i < count; i++) {
                for (size_t j = i + 1; j < count; j++)
                        if (streq(n[i].id, n[j].id))
                                return log_error_errno(EEXIST, "two NICs have the id '%s'", n[i].id);
                if (!n[i].has_mac) {
                        uint64_t h = hash(vm_name ?: "", n[i].id);

                        /* QEMU's locally administered prefix, then 24 bits of the hash. */
                        n[i].mac[0] = 0x52;
                        n[i].mac[1] = 0x54;
                        n[i].mac[2] = 0x00;
                        n[i].mac[3] = (uint8_t) (h >> 16);
                        n[i].mac[4] = (uint8_t) (h >> 8);
                        n[i].mac[5] = (uint8_t) h;
                        n[i].has_mac = true;
                }
        }
        return 0;
}

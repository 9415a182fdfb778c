/* SPDX-License-Identifier: MIT */
/*
 * --net parsing: see netspec.h.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int net_spec_parse(const char *s, NetSpec *ret, char *error, size_t error_size) {
        _cleanup_free_ char *copy = NULL;
        NetSpec n = {};
        char *item, *save = NULL;
        bool first = true;
        int r = -EINVAL;

        copy = strdup(s);
        if (!copy) {
                snprintf(error, error_size, "out of memory");
                return -ENOMEM;
        }
        for (item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save), first = false) {
                char *eq = strchr(item, '='), *value;

                if (first) {
                        if (!streq(item, "user")) {
                                snprintf(error, error_size, "invalid net '%s': only 'user' networking exists (--net user,...)", s);
                                goto fail;
                        }
                        continue;
                }
                if (!eq) {
                        snprintf(error, error_size, "invalid net '%s': expected key=value, got '%s'", s, item);
                        goto fail;
                }
                *eq = 0;
                value = eq + 1;

                if (streq(item, "id")) {
                        if (!device_id_is_valid(value)) {
                                snprintf(error, error_size, "invalid net id '%s': use 1-32 characters of [A-Za-z0-9_]", value);
                                goto fail;
                        }
                        free(n.id);
                        n.id = strdup(value);
                        if (!n.id)
                                goto oom;
                } else if (streq(item, "mac")) {
                        if (parse_mac(value, n.mac) < 0) {
                                snprintf(error, error_size, "invalid MAC '%s': expected a unicast address such as 52:54:00:12:34:56",
                                         value);
                                goto fail;
                        }
                        n.has_mac = true;
                } else if (streq(item, "restrict")) {
                        if (streq(value, "on") || streq(value, "yes"))
                                n.restricted = true;
                        else if (streq(value, "off") || streq(value, "no"))
                                n.restricted = false;
                        else {
                                snprintf(error, error_size, "invalid net '%s': restrict=%s, expected on or off", s, value);
                                goto fail;
                        }
                } else if (streq(item, "hostfwd")) {
                        NetForward f, *a;

                        r = net_forward_parse(value, &f);
                        if (r < 0) {
                                snprintf(error, error_size,
                                         r == -ERANGE ? "invalid hostfwd '%s': port out of range (1-65535)"
                                                      : "invalid hostfwd '%s': expected tcp|udp:[ADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT",
                                         value);
                                r = -EINVAL;
                                goto fail;
                        }
                        a = realloc(n.forwards, sizeof(NetForward) * (n.n_forwards + 1));
                        if (!a)
                                goto oom;
                        n.forwards = a;
                        n.forwards[n.n_forwards++] = f;
                } else {
                        snprintf(error, error_size, "invalid net '%s': unknown key '%s' (known: id, mac, hostfwd, restrict)",
                                 s, item);
                        goto fail;
                }
        }
        if (first) {
                snprintf(error, error_size, "invalid net '%s': expected user[,...]", s);
                goto fail;
        }
        *ret = n;
        return 0;

oom:
        snprintf(error, error_size, "out of memory");
        r = -ENOMEM;
fail:
        net_spec_done(&n);
        return r < 0 ? r : -EINVAL;
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

int net_specs_finish(NetSpec *n, size_t count, const char *vm_name, char *error, size_t error_size) {
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
                                if (!n[i].id) {
                                        snprintf(error, error_size, "out of memory");
                                        return -ENOMEM;
                                }
                                break;
                        }
        }
        for (size_t i = 0; i < count; i++) {
                for (size_t j = i + 1; j < count; j++)
                        if (streq(n[i].id, n[j].id)) {
                                snprintf(error, error_size, "two NICs have the id '%s'", n[i].id);
                                return -EEXIST;
                        }
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

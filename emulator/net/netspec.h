/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * --net user[,id=ID][,mac=MAC][,hostfwd=PROTO:[ADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT]...[,restrict=on]
 *
 * (config key "net", same syntax, one NIC per line). PROTO is tcp or udp;
 * an empty ADDR means 127.0.0.1 (the host forward listens on loopback only
 * unless another address is written), an empty GUESTADDR 10.0.2.15. ID:
 * [A-Za-z0-9_]{1,32}, default "netN". MAC: six hex pairs separated by ':',
 * unicast; default: derived from the VM's name and the NIC's id, so that a
 * VM keeps its address from one run to the next (Machine1.UUID is chosen at
 * random at every start, so a MAC derived from it would change each time;
 * the name is what identifies a VM's configuration).
 */

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct NetForward {
        bool udp;
        struct in_addr host_addr;
        uint16_t host_port;             /* 1..65535 */
        struct in_addr guest_addr;
        uint16_t guest_port;            /* 1..65535 */
} NetForward;

typedef struct NetSpec {
        char *id;
        bool has_mac;
        uint8_t mac[6];
        bool restricted;
        NetForward *forwards;
        size_t n_forwards;
} NetSpec;

/*
 * Returns 0, or -EINVAL / -ENOMEM after logging a one-line error, prefixed
 * with 'where' ("" or "FILE:LINE: "; NULL is "").
 */
int net_spec_parse(const char *s, const char *where, NetSpec *ret);
void net_spec_done(NetSpec *n);

/* "PROTO:[ADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT" */
int net_forward_parse(const char *s, NetForward *ret);

/* Default ids ("netN") and MACs (from vm_name and the id); refuses duplicate ids (-EEXIST), logging why. */
int net_specs_finish(NetSpec *n, size_t count, const char *vm_name);

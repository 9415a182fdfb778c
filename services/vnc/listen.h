/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Listening sockets: "HOST:PORT" parsing ("127.0.0.1:5900", "[::1]:5900",
 * "localhost:5901", ":5900" for every address) and whether every address
 * a host name resolves to is a loopback one.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

#define LISTEN_MAX_SOCKETS 8

typedef struct ListenSpec {
        char *host;    /* NULL: every address (the wildcard) */
        uint16_t port; /* 0: the kernel picks one */
} ListenSpec;

/* -EINVAL for a malformed address or port (1..65535, or 0). */
int listen_spec_parse(const char *s, ListenSpec *ret);
void listen_spec_done(ListenSpec *spec);

/*
 * Opens a listening TCP socket (CLOEXEC, NONBLOCK, SO_REUSEADDR) on every
 * address host resolves to, all on the same port (the one the kernel picked
 * first when port is 0). ret_fds gets up to LISTEN_MAX_SOCKETS fds;
 * ret_loopback whether they are all loopback addresses; ret_port the port.
 * -EPERM if require_loopback and the name resolves to any other address
 * (checked before binding anything); -EADDRNOTAVAIL if the name does not
 * resolve; -errno of bind()/listen().
 */
int listen_open(const char *host, uint16_t port, bool require_loopback, int *ret_fds, size_t *ret_n, bool *ret_loopback, uint16_t *ret_port);

/* "127.0.0.1:5900" / "[::1]:5900" for a bound socket; a static buffer. */
const char *listen_describe(int fd);

#define LISTEN_PEER_MAX (INET6_ADDRSTRLEN + 16)

/*
 * A connected socket's peer: ret_name "127.0.0.1:40000" / "[::1]:40000"
 * (for messages), ret_source the address it counts against for limits:
 * the IPv4 address (also for v4-mapped IPv6), or an IPv6 address's /64
 * ("2001:db8:1:2::/64", one host's usual share). -errno of getpeername(),
 * -EAFNOSUPPORT for other families.
 */
int listen_peer(int fd, char ret_name[static LISTEN_PEER_MAX], char ret_source[static LISTEN_PEER_MAX]);

/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listen.h"
#include "macro.h"

static void freeaddrinfop(struct addrinfo **ai) {
        if (*ai)
                freeaddrinfo(*ai);
}

int listen_spec_parse(const char *s, ListenSpec *ret) {
        _cleanup_free_ char *host = NULL;
        const char *colon, *port_str;
        char *end;
        unsigned long port;

        if (!s)
                return -EINVAL;
        if (s[0] == '[') {
                const char *close = strchr(s, ']');

                if (!close || close[1] != ':' || close == s + 1)
                        return -EINVAL;
                host = strndup(s + 1, (size_t) (close - s - 1));
                if (!host)
                        return -ENOMEM;
                port_str = close + 2;
        } else {
                colon = strrchr(s, ':');
                if (!colon || memchr(s, ':', (size_t) (colon - s)))
                        return -EINVAL; /* IPv6 addresses need brackets */
                if (colon > s) {
                        host = strndup(s, (size_t) (colon - s));
                        if (!host)
                                return -ENOMEM;
                }
                port_str = colon + 1;
        }
        if (host && strlen(host) > 253)
                return -EINVAL;

        if (port_str[0] < '0' || port_str[0] > '9')
                return -EINVAL;
        errno = 0;
        port = strtoul(port_str, &end, 10);
        if (errno != 0 || *end || port > 65535)
                return -EINVAL;

        ret->host = TAKE_PTR(host);
        ret->port = (uint16_t) port;
        return 0;
}

void listen_spec_done(ListenSpec *spec) {
        free(spec->host);
        spec->host = NULL;
}

static bool sockaddr_is_loopback(const struct sockaddr *sa) {
        if (sa->sa_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) sa;
                return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
        }
        if (sa->sa_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) sa;
                static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

                if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
                        return true;
                return memcmp(in6->sin6_addr.s6_addr, v4mapped, 12) == 0 && in6->sin6_addr.s6_addr[12] == 127;
        }
        return false;
}

static int sockaddr_port(const struct sockaddr *sa) {
        if (sa->sa_family == AF_INET)
                return ntohs(((const struct sockaddr_in *) sa)->sin_port);
        if (sa->sa_family == AF_INET6)
                return ntohs(((const struct sockaddr_in6 *) sa)->sin6_port);
        return -EAFNOSUPPORT;
}

static void sockaddr_set_port(struct sockaddr *sa, uint16_t port) {
        if (sa->sa_family == AF_INET)
                ((struct sockaddr_in *) sa)->sin_port = htons(port);
        else if (sa->sa_family == AF_INET6)
                ((struct sockaddr_in6 *) sa)->sin6_port = htons(port);
}

int listen_open(const char *host, uint16_t port, bool require_loopback, int *ret_fds, size_t *ret_n, bool *ret_loopback, uint16_t *ret_port) {
        _cleanup_(freeaddrinfop) struct addrinfo *ai = NULL;
        struct addrinfo hints = {
                .ai_family = AF_UNSPEC,
                .ai_socktype = SOCK_STREAM,
                .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
        };
        int fds[LISTEN_MAX_SOCKETS];
        size_t n = 0;
        bool loopback = true;
        char port_str[8];
        int r;

        snprintf(port_str, sizeof(port_str), "%u", port);
        r = getaddrinfo(host, port_str, &hints, &ai);
        if (r == EAI_SYSTEM)
                return -errno;
        if (r != 0)
                return -EADDRNOTAVAIL;

        /* Checked before anything is bound: a refused address never listens, not even briefly. */
        for (struct addrinfo *p = ai; p; p = p->ai_next)
                if ((p->ai_family == AF_INET || p->ai_family == AF_INET6) && !sockaddr_is_loopback(p->ai_addr)) {
                        loopback = false;
                        if (require_loopback)
                                return -EPERM;
                }

        for (struct addrinfo *p = ai; p && n < LISTEN_MAX_SOCKETS; p = p->ai_next) {
                int fd, one = 1;

                if (p->ai_family != AF_INET && p->ai_family != AF_INET6)
                        continue;
                /* Every socket on the port the first one got. */
                if (port != 0)
                        sockaddr_set_port(p->ai_addr, port);

                fd = socket(p->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                if (fd < 0) {
                        r = -errno;
                        if (r == -EAFNOSUPPORT)
                                continue; /* no IPv6 on this host */
                        goto fail;
                }
                (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
                if (p->ai_family == AF_INET6)
                        /* The IPv4 wildcard gets its own socket. */
                        (void) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
                if (bind(fd, p->ai_addr, p->ai_addrlen) < 0 || listen(fd, 16) < 0) {
                        r = -errno;
                        close(fd);
                        if (r == -EADDRNOTAVAIL && p->ai_family == AF_INET6)
                                continue; /* ::1 without IPv6 configured */
                        goto fail;
                }
                if (port == 0) {
                        struct sockaddr_storage ss;
                        socklen_t len = sizeof(ss);

                        if (getsockname(fd, (struct sockaddr *) &ss, &len) < 0) {
                                r = -errno;
                                close(fd);
                                goto fail;
                        }
                        port = (uint16_t) sockaddr_port((struct sockaddr *) &ss);
                }
                fds[n++] = fd;
        }
        if (n == 0)
                return -EADDRNOTAVAIL;

        memcpy(ret_fds, fds, n * sizeof(int));
        *ret_n = n;
        *ret_loopback = loopback;
        *ret_port = port;
        return 0;

fail:
        for (size_t i = 0; i < n; i++)
                close(fds[i]);
        return r;
}

const char *listen_describe(int fd) {
        static char buf[INET6_ADDRSTRLEN + 16];
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        char addr[INET6_ADDRSTRLEN];

        if (getsockname(fd, (struct sockaddr *) &ss, &len) < 0)
                return "?";
        if (ss.ss_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) &ss;
                inet_ntop(AF_INET, &in->sin_addr, addr, sizeof(addr));
                snprintf(buf, sizeof(buf), "%s:%u", addr, ntohs(in->sin_port));
        } else if (ss.ss_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) &ss;
                inet_ntop(AF_INET6, &in6->sin6_addr, addr, sizeof(addr));
                snprintf(buf, sizeof(buf), "[%s]:%u", addr, ntohs(in6->sin6_port));
        } else
                return "?";
        return buf;
}

int listen_peer(int fd, char ret_name[static LISTEN_PEER_MAX], char ret_source[static LISTEN_PEER_MAX]) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        char addr[INET6_ADDRSTRLEN];

        if (getpeername(fd, (struct sockaddr *) &ss, &len) < 0)
                return -errno;
        if (ss.ss_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) &ss;

                inet_ntop(AF_INET, &in->sin_addr, addr, sizeof(addr));
                snprintf(ret_name, LISTEN_PEER_MAX, "%s:%u", addr, ntohs(in->sin_port));
                snprintf(ret_source, LISTEN_PEER_MAX, "%s", addr);
                return 0;
        }
        if (ss.ss_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) &ss;
                struct in6_addr prefix = in6->sin6_addr;

                if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
                        inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], addr, sizeof(addr));
                        snprintf(ret_name, LISTEN_PEER_MAX, "%s:%u", addr, ntohs(in6->sin6_port));
                        snprintf(ret_source, LISTEN_PEER_MAX, "%s", addr);
                        return 0;
                }
                inet_ntop(AF_INET6, &in6->sin6_addr, addr, sizeof(addr));
                snprintf(ret_name, LISTEN_PEER_MAX, "[%s]:%u", addr, ntohs(in6->sin6_port));
                memset(prefix.s6_addr + 8, 0, 8);
                inet_ntop(AF_INET6, &prefix, addr, sizeof(addr));
                snprintf(ret_source, LISTEN_PEER_MAX, "%s/64", addr);
                return 0;
        }
        return -EAFNOSUPPORT;
}

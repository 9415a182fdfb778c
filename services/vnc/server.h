/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The VNC side of orrery-vnc: one libvncserver screen that shows console 0
 * of one VM straight from its read-only mapping, its clients, and their
 * input turned into Keyboard1/Mouse1 calls.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "keymap.h"
#include "orrery-client.h"
#include "password.h"

/* Clients past the handshake and authentication. */
#define SERVER_MAX_CLIENTS 32
/* Clients before that (with the oldest dropped to make room), in all and per source address. */
#define SERVER_MAX_PENDING 16
#define SERVER_MAX_PENDING_PER_SOURCE 4
#define SERVER_HANDSHAKE_TIMEOUT_USEC (5ULL * 1000000ULL)
#define SERVER_MAX_LISTEN 16

typedef struct Server Server;

typedef struct ServerConfig {
        const char *vm_name;
        const Keymap *keymap;
        const Passwords *passwords; /* NULL: no authentication */
        bool view_only;             /* every client is view-only */
        uint64_t handshake_timeout_usec; /* 0: SERVER_HANDSHAKE_TIMEOUT_USEC */
        uint16_t port;              /* for the status shown by systemd */
} ServerConfig;

int server_new(sd_event *event, OrreryClient *client, const ServerConfig *config, Server **ret);
Server *server_free(Server *s);
static inline void server_freep(Server **s) {
        server_free(*s);
}

/* Closes every client, releasing what each holds (the VM is told). */
void server_disconnect_all(Server *s);

/* Takes over a listening socket: its connections become VNC clients (plain or WebSocket). */
int server_add_listener(Server *s, int fd);

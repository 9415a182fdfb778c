/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * GDB remote serial protocol framing: turns the bytes a debugger sends
 * into packets ("$payload#cs"), acknowledgements and interrupts, and
 * payloads into framed replies. No I/O and no allocation on the input
 * path: the parser keeps at most RSP_MAX_PAYLOAD bytes, so a peer cannot
 * make it grow; longer packets are reported as RSP_EVENT_OVERSIZED.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What qSupported advertises as PacketSize (hex 4000): the largest packet we accept or send. */
#define RSP_MAX_PAYLOAD 16384

typedef enum RspEvent {
        RSP_EVENT_NONE,         /* need more bytes */
        RSP_EVENT_PACKET,       /* a packet with a good checksum: rsp_payload() */
        RSP_EVENT_BAD_CHECKSUM, /* a packet with a bad one: answer '-' */
        RSP_EVENT_OVERSIZED,    /* a packet longer than RSP_MAX_PAYLOAD (dropped) */
        RSP_EVENT_INTERRUPT,    /* Ctrl-C (0x03) between packets */
        RSP_EVENT_ACK,          /* '+' */
        RSP_EVENT_NAK,          /* '-' */
} RspEvent;

typedef struct RspParser {
        enum { RSP_IDLE, RSP_DATA, RSP_ESCAPE, RSP_CHECKSUM1, RSP_CHECKSUM2 } state;
        uint8_t sum;            /* over the raw bytes between '$' and '#' */
        uint8_t given;          /* the checksum the packet carries */
        bool oversized;
        size_t len;
        char payload[RSP_MAX_PAYLOAD + 1];      /* unescaped, NUL-terminated */
} RspParser;

void rsp_parser_init(RspParser *p);
/*
 * Consumes bytes from data[0..size) until an event (or the end); *ret_used
 * says how many were consumed. The payload of RSP_EVENT_PACKET stays valid
 * until the next call.
 */
RspEvent rsp_parser_feed(RspParser *p, const uint8_t *data, size_t size, size_t *ret_used);
static inline const char *rsp_payload(const RspParser *p, size_t *ret_len) {
        *ret_len = p->len;
        return p->payload;
}

/* Frames payload[0..len) as $...#cs with '$', '#', '}' and '*' escaped. Needs 2 * len + 4 bytes. */
size_t rsp_frame(const void *payload, size_t len, char *out, size_t out_size);

/* Hex helpers. rsp_hex_to_u64 parses up to 16 hex digits ('len' chars); -EINVAL otherwise. */
int rsp_hex_to_u64(const char *s, size_t len, uint64_t *ret);
int rsp_hex_to_bytes(const char *s, size_t len, uint8_t *out, size_t out_size, size_t *ret_n);
void rsp_bytes_to_hex(const void *data, size_t n, char *out);

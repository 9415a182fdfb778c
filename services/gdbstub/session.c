/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "session.h"
#include "target.h"

/* The most memory one m/M/X packet moves: the hex reply must fit RSP_MAX_PAYLOAD. */
#define SESSION_MAX_MEMORY 4096

#define STOP_REPLY_DEFAULT "T05thread:01;"

void session_init(Session *s, const SessionBackend *backend, void *backend_data, SessionSend send, void *send_data) {
        memset(s, 0, sizeof(*s));
        s->backend = backend;
        s->backend_data = backend_data;
        s->send = send;
        s->send_data = send_data;
        rsp_parser_init(&s->parser);
        snprintf(s->last_stop, sizeof(s->last_stop), STOP_REPLY_DEFAULT);
}

static void send_packet(Session *s, const char *payload, size_t len) {
        size_t n = rsp_frame(payload, len, s->out, sizeof(s->out));
        if (n > 0)
                s->send(s->send_data, s->out, n);
}

static void reply(Session *s, const char *payload) {
        send_packet(s, payload, strlen(payload));
}

static void reply_error(Session *s, int errno_value) {
        char e[8];

        snprintf(e, sizeof(e), "E%02x", (unsigned) (errno_value > 0 && errno_value < 256 ? errno_value : 1));
        reply(s, e);
}

/* Little-endian hex of the low 'bytes' bytes of v. */
static void u64_to_target_hex(uint64_t v, unsigned bytes, char *out) {
        uint8_t b[8];

        for (unsigned i = 0; i < 8; i++)
                b[i] = (uint8_t) (v >> (8 * i));
        rsp_bytes_to_hex(b, bytes, out);
}

static int target_hex_to_u64(const char *s, size_t len, uint64_t *ret) {
        uint8_t b[8] = {};
        size_t n;
        uint64_t v = 0;

        if (len == 0 || rsp_hex_to_bytes(s, len, b, sizeof(b), &n) < 0)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                v |= (uint64_t) b[i] << (8 * i);
        *ret = v;
        return 0;
}

/* "ADDR,LEN" (hex) up to 'end' or a ':'; *ret_rest points after it. */
static int parse_addr_len(const char *p, uint64_t *ret_addr, uint64_t *ret_len, const char **ret_rest) {
        const char *comma = strchr(p, ',');
        const char *end;

        if (!comma || rsp_hex_to_u64(p, (size_t) (comma - p), ret_addr) < 0)
                return -EINVAL;
        end = comma + 1 + strcspn(comma + 1, ":;");
        if (rsp_hex_to_u64(comma + 1, (size_t) (end - comma - 1), ret_len) < 0)
                return -EINVAL;
        *ret_rest = end;
        return 0;
}

/* GDB register number -> value and its size in bytes. */
static int read_register(Session *s, uint64_t gdb_reg, uint64_t *ret, unsigned *ret_bytes) {
        uint64_t v;
        int r;

        *ret_bytes = 8;
        if (gdb_reg <= TARGET_REG_PC + 32)      /* x, pc, f: the same numbers */
                return s->backend->get_register(s->backend_data, (uint32_t) gdb_reg, ret);
        if (gdb_reg == TARGET_GDB_REG_FFLAGS || gdb_reg == TARGET_GDB_REG_FRM || gdb_reg == TARGET_GDB_REG_FCSR) {
                r = s->backend->get_register(s->backend_data, TARGET_REG_FCSR, &v);
                if (r < 0)
                        return r;
                *ret_bytes = 4;
                *ret = gdb_reg == TARGET_GDB_REG_FFLAGS ? (v & 0x1f) : gdb_reg == TARGET_GDB_REG_FRM ? (v >> 5) & 7 : v;
                return 0;
        }
        if (gdb_reg == TARGET_GDB_REG_PRIV)
                return s->backend->get_register(s->backend_data, TARGET_REG_PRIV, ret);
        if (gdb_reg >= TARGET_GDB_REG_CSR0 && gdb_reg < TARGET_GDB_REG_PRIV)
                return s->backend->get_register(s->backend_data,
                                                (uint32_t) (TARGET_REG_CSR0 + gdb_reg - TARGET_GDB_REG_CSR0), ret);
        return -EINVAL;
}

static int write_register(Session *s, uint64_t gdb_reg, uint64_t value) {
        uint64_t v;
        int r;

        if (gdb_reg <= TARGET_REG_PC + 32)
                return s->backend->set_register(s->backend_data, (uint32_t) gdb_reg, value);
        if (gdb_reg == TARGET_GDB_REG_FFLAGS || gdb_reg == TARGET_GDB_REG_FRM) {
                r = s->backend->get_register(s->backend_data, TARGET_REG_FCSR, &v);
                if (r < 0)
                        return r;
                if (gdb_reg == TARGET_GDB_REG_FFLAGS)
                        v = (v & ~0x1fULL) | (value & 0x1f);
                else
                        v = (v & 0x1f) | (value & 7) << 5;
                return s->backend->set_register(s->backend_data, TARGET_REG_FCSR, v);
        }
        if (gdb_reg == TARGET_GDB_REG_FCSR)
                return s->backend->set_register(s->backend_data, TARGET_REG_FCSR, value & 0xff);
        if (gdb_reg == TARGET_GDB_REG_PRIV)
                return s->backend->set_register(s->backend_data, TARGET_REG_PRIV, value);
        if (gdb_reg >= TARGET_GDB_REG_CSR0 && gdb_reg < TARGET_GDB_REG_PRIV)
                return s->backend->set_register(s->backend_data,
                                                (uint32_t) (TARGET_REG_CSR0 + gdb_reg - TARGET_GDB_REG_CSR0), value);
        return -EINVAL;
}

static void handle_g(Session *s) {
        uint64_t regs[33];
        int r = s->backend->get_registers(s->backend_data, regs);

        if (r < 0)
                return reply_error(s, -r);
        for (unsigned i = 0; i < 33; i++)
                u64_to_target_hex(regs[i], 8, s->reply + 16 * i);
        reply(s, s->reply);
}

static void handle_G(Session *s, const char *p, size_t len) {
        uint64_t regs[33];

        if (len != 33 * 16)
                return reply_error(s, EINVAL);
        for (unsigned i = 0; i < 33; i++)
                if (target_hex_to_u64(p + 16 * i, 16, &regs[i]) < 0)
                        return reply_error(s, EINVAL);
        int r = s->backend->set_registers(s->backend_data, regs);
        if (r < 0)
                return reply_error(s, -r);
        reply(s, "OK");
}

static void handle_p(Session *s, const char *p) {
        uint64_t reg, v;
        unsigned bytes;

        if (rsp_hex_to_u64(p, strlen(p), &reg) < 0)
                return reply_error(s, EINVAL);
        if (read_register(s, reg, &v, &bytes) < 0)
                return reply_error(s, EINVAL);
        u64_to_target_hex(v, bytes, s->reply);
        reply(s, s->reply);
}

static void handle_P(Session *s, const char *p) {
        const char *eq = strchr(p, '=');
        uint64_t reg, v;

        if (!eq || rsp_hex_to_u64(p, (size_t) (eq - p), &reg) < 0 || target_hex_to_u64(eq + 1, strlen(eq + 1), &v) < 0)
                return reply_error(s, EINVAL);
        if (write_register(s, reg, v) < 0)
                return reply_error(s, EINVAL);
        reply(s, "OK");
}

static void handle_m(Session *s, const char *p) {
        uint8_t buf[SESSION_MAX_MEMORY];
        uint64_t addr, len;
        const char *rest;

        if (parse_addr_len(p, &addr, &len, &rest) < 0 || *rest)
                return reply_error(s, EINVAL);
        if (len > SESSION_MAX_MEMORY)
                len = SESSION_MAX_MEMORY;       /* GDB asks again for the rest */
        if (s->backend->read_memory(s->backend_data, addr, buf, len) < 0)
                return reply_error(s, EFAULT);
        rsp_bytes_to_hex(buf, len, s->reply);
        reply(s, s->reply);
}

/* M (hex data) and X (binary data, already unescaped by the parser). */
static void handle_write(Session *s, const char *p, size_t len, bool binary) {
        uint8_t buf[SESSION_MAX_MEMORY];
        uint64_t addr, n;
        const char *rest;
        size_t got;

        if (parse_addr_len(p, &addr, &n, &rest) < 0 || *rest != ':' || n > SESSION_MAX_MEMORY)
                return reply_error(s, EINVAL);
        rest++;
        size_t data_len = len - (size_t) (rest - p);
        if (binary) {
                if (data_len != n)
                        return reply_error(s, EINVAL);
                memcpy(buf, rest, data_len);
        } else if (rsp_hex_to_bytes(rest, data_len, buf, sizeof(buf), &got) < 0 || got != n)
                return reply_error(s, EINVAL);
        if (n > 0 && s->backend->write_memory(s->backend_data, addr, buf, n) < 0)
                return reply_error(s, EFAULT);
        reply(s, "OK");
}

static void handle_z(Session *s, const char *p, bool add) {
        static const char *const kinds[] = { "sw", "hw", "write", "read", "access" };
        uint64_t addr, len;
        const char *rest;

        if (p[0] < '0' || p[0] > '4' || p[1] != ',')
                return reply(s, "");    /* unknown type: not supported */
        if (parse_addr_len(p + 2, &addr, &len, &rest) < 0 || len > UINT32_MAX)
                return reply_error(s, EINVAL);
        /* Conditions and commands (";X...") are not supported: ignored, GDB evaluates them. */
        if (s->backend->breakpoint(s->backend_data, add, kinds[p[0] - '0'], addr, (uint32_t) len) < 0)
                return reply_error(s, EINVAL);
        reply(s, "OK");
}

static void resume(Session *s, bool step) {
        int r = s->backend->resume(s->backend_data, step);

        if (r < 0)
                return reply_error(s, -r);
        s->running = true;      /* the reply is the stop reply, from session_stopped() */
}

static void handle_vcont(Session *s, const char *p) {
        /* "vCont;ACTION[:THREAD]...": one thread, so the first action decides. */
        if (p[0] != ';')
                return reply_error(s, EINVAL);
        switch (p[1]) {
        case 'c':
        case 'C':
                return resume(s, false);
        case 's':
        case 'S':
                return resume(s, true);
        case 't':
                if (s->backend->stop(s->backend_data) < 0)
                        return reply_error(s, EIO);
                s->running = true;
                return;
        default:
                return reply_error(s, EINVAL);
        }
}

static void handle_qxfer(Session *s, const char *p) {
        static const char prefix[] = "features:read:target.xml:";
        uint64_t offset, len;
        const char *rest;

        if (strncmp(p, prefix, sizeof(prefix) - 1) != 0)
                return reply(s, strncmp(p, "features:read:", 14) == 0 ? "E00" : "");
        if (parse_addr_len(p + sizeof(prefix) - 1, &offset, &len, &rest) < 0 || *rest)
                return reply_error(s, EINVAL);
        if (offset >= target_xml_len)
                return reply(s, "l");
        len = len > RSP_MAX_PAYLOAD / 2 ? RSP_MAX_PAYLOAD / 2 : len;
        size_t n = target_xml_len - offset < len ? target_xml_len - offset : len;
        s->reply[0] = offset + n >= target_xml_len ? 'l' : 'm';
        memcpy(s->reply + 1, target_xml + offset, n);
        send_packet(s, s->reply, n + 1);
}

static SessionResult handle_packet(Session *s, const char *p, size_t len) {
        switch (p[0]) {
        case '?':
                reply(s, s->last_stop);
                break;
        case 'g':
                handle_g(s);
                break;
        case 'G':
                handle_G(s, p + 1, len - 1);
                break;
        case 'p':
                handle_p(s, p + 1);
                break;
        case 'P':
                handle_P(s, p + 1);
                break;
        case 'm':
                handle_m(s, p + 1);
                break;
        case 'M':
                handle_write(s, p + 1, len - 1, false);
                break;
        case 'X':
                handle_write(s, p + 1, len - 1, true);
                break;
        case 'Z':
                handle_z(s, p + 1, true);
                break;
        case 'z':
                handle_z(s, p + 1, false);
                break;
        case 'c':
                resume(s, false);
                break;
        case 's':
                resume(s, true);
                break;
        case 'H':
        case 'T':
                reply(s, "OK");
                break;
        case 'D':
                (void) s->backend->detach(s->backend_data);
                reply(s, "OK");
                return SESSION_CLOSE;
        case 'k':
                (void) s->backend->detach(s->backend_data);
                return SESSION_CLOSE;
        case 'v':
                if (strcmp(p, "vCont?") == 0)
                        reply(s, "vCont;c;C;s;S;t");
                else if (strncmp(p, "vCont", 5) == 0)
                        handle_vcont(s, p + 5);
                else if (strncmp(p, "vKill", 5) == 0) {
                        (void) s->backend->detach(s->backend_data);
                        reply(s, "OK");
                        return SESSION_CLOSE;
                } else
                        reply(s, "");
                break;
        case 'q':
                if (strncmp(p, "qSupported", 10) == 0)
                        reply(s, "PacketSize=4000;qXfer:features:read+;QStartNoAckMode+;vContSupported+");
                else if (strncmp(p, "qXfer:", 6) == 0)
                        handle_qxfer(s, p + 6);
                else if (strcmp(p, "qAttached") == 0 || strncmp(p, "qAttached:", 10) == 0)
                        reply(s, "1");
                else if (strcmp(p, "qC") == 0)
                        reply(s, "QC01");
                else if (strcmp(p, "qfThreadInfo") == 0)
                        reply(s, "m01");
                else if (strcmp(p, "qsThreadInfo") == 0)
                        reply(s, "l");
                else
                        reply(s, "");
                break;
        case 'Q':
                if (strcmp(p, "QStartNoAckMode") == 0) {
                        reply(s, "OK");
                        s->no_ack = true;
                } else
                        reply(s, "");
                break;
        default:
                reply(s, "");
        }
        return SESSION_CONTINUE;
}

SessionResult session_input(Session *s, const uint8_t *data, size_t size) {
        while (size > 0) {
                size_t used, len;
                const char *payload;
                RspEvent e = rsp_parser_feed(&s->parser, data, size, &used);

                data += used;
                size -= used;
                switch (e) {
                case RSP_EVENT_PACKET:
                        if (!s->no_ack)
                                s->send(s->send_data, "+", 1);
                        payload = rsp_payload(&s->parser, &len);
                        if (len == 0) {
                                reply(s, "");
                                break;
                        }
                        /* While the VM runs only an interrupt makes sense; other packets wait for no one. */
                        if (handle_packet(s, payload, len) == SESSION_CLOSE)
                                return SESSION_CLOSE;
                        break;
                case RSP_EVENT_BAD_CHECKSUM:
                        if (!s->no_ack)
                                s->send(s->send_data, "-", 1);
                        break;
                case RSP_EVENT_OVERSIZED:
                        if (!s->no_ack)
                                s->send(s->send_data, "+", 1);
                        reply_error(s, E2BIG);
                        break;
                case RSP_EVENT_INTERRUPT:
                        if (s->running)
                                (void) s->backend->stop(s->backend_data);
                        break;
                default:
                        break;
                }
        }
        return SESSION_CONTINUE;
}

void session_stopped(Session *s, const char *reason, const char *watch_kind, uint64_t watch_addr) {
        if (strcmp(reason, "watchpoint") == 0) {
                const char *field = strcmp(watch_kind, "read") == 0 ? "rwatch" :
                                    strcmp(watch_kind, "access") == 0 ? "awatch" : "watch";
                snprintf(s->last_stop, sizeof(s->last_stop), "T05%s:%" PRIx64 ";thread:01;", field, watch_addr);
        } else if (strcmp(reason, "stop") == 0)
                snprintf(s->last_stop, sizeof(s->last_stop), "T02thread:01;");
        else
                snprintf(s->last_stop, sizeof(s->last_stop), STOP_REPLY_DEFAULT);
        if (!s->running)
                return;
        s->running = false;
        reply(s, s->last_stop);
}

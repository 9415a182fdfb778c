/* SPDX-License-Identifier: MIT */
/*
 * orrery-gdbstub's protocol on a fake VM: framing and acknowledgements,
 * the packets GDB sends while debugging a RISC-V kernel, the target
 * description, stop replies, and E replies (never a crash) for malformed
 * packets, huge lengths and addresses outside memory.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake-backend.h"
#include "rsp.h"
#include "session.h"
#include "tap.h"
#include "target.h"

static char out[1 << 17];
static size_t out_len;

static void capture(void *userdata, const char *data, size_t len) {
        if (out_len + len < sizeof(out)) {
                memcpy(out + out_len, data, len);
                out_len += len;
                out[out_len] = 0;
        }
}

/* Sends one framed packet; returns the session's answer (acks included). */
static const char *send_packet(Session *s, const char *payload, size_t len, SessionResult *ret) {
        static char framed[4 * RSP_MAX_PAYLOAD];
        size_t n = rsp_frame(payload, len, framed, sizeof(framed));
        SessionResult r;

        out_len = 0;
        out[0] = 0;
        r = session_input(s, (const uint8_t *) framed, n);
        if (ret)
                *ret = r;
        return out;
}

static const char *cmd(Session *s, const char *payload) {
        return send_packet(s, payload, strlen(payload), NULL);
}

/* The payload of the reply "+$payload#cs" (without the ack), in a static buffer. */
static const char *reply_of(const char *answer) {
        static char payload[RSP_MAX_PAYLOAD + 1];
        const char *start = strchr(answer, '$'), *end = start ? strrchr(start, '#') : NULL;

        if (!start || !end)
                return "<no reply>";
        snprintf(payload, sizeof(payload), "%.*s", (int) (end - start - 1), start + 1);
        return payload;
}

/* Framing */
static void check_framing(Session *s, FakeVm *vm) {
        const char *a = cmd(s, "qSupported:multiprocess+;swbreak+;hwbreak+;xmlRegisters=i386");
        CHECK(a[0] == '+' && strstr(a, "PacketSize=4000") && strstr(a, "qXfer:features:read+") &&
                      strstr(a, "QStartNoAckMode+"),
              "qSupported is acked and lists PacketSize and qXfer:features:read (%.60s)", a);
        out_len = 0;
        session_input(s, (const uint8_t *) "$g#00", 5);
        CHECK(strcmp(out, "-") == 0, "a bad checksum gets '-' (%.60s)", out);
        out_len = 0;
        session_input(s, (const uint8_t *) "junk+-", 6);
        CHECK(out_len == 0, "noise, acks and naks between packets get no answer");
}

/* Target description, read in chunks as GDB does */
static void check_target_description(Session *s, FakeVm *vm) {
        char xml[65536] = "";
        size_t got = 0;
        for (int i = 0; i < 1000; i++) {
                char q[96];
                snprintf(q, sizeof(q), "qXfer:features:read:target.xml:%zx,%x", got, 0x3fb);
                const char *r = reply_of(cmd(s, q));
                size_t n = strlen(r + 1);
                if ((r[0] != 'm' && r[0] != 'l') || got + n >= sizeof(xml))
                        break;
                memcpy(xml + got, r + 1, n);
                got += n;
                if (r[0] == 'l')
                        break;
        }
        xml[got] = 0;
        CHECK(got == target_xml_len && strcmp(xml, target_xml) == 0, "qXfer reads the whole target.xml in chunks (%zu of %zu)",
              got, target_xml_len);
        CHECK(strstr(xml, "org.gnu.gdb.riscv.cpu") && strstr(xml, "org.gnu.gdb.riscv.fpu") &&
                      strstr(xml, "org.gnu.gdb.riscv.csr") && strstr(xml, "org.gnu.gdb.riscv.virtual") &&
                      strstr(xml, "riscv:rv64"),
              "the description has the cpu, fpu, csr and virtual features of rv64");
        CHECK(strcmp(reply_of(cmd(s, "qXfer:features:read:other.xml:0,100")), "E00") == 0,
              "an unknown annex is an error");
}

/* Registers */
static void check_registers(Session *s, FakeVm *vm) {
        const char *g = reply_of(cmd(s, "g"));
        CHECK(strlen(g) == 33 * 16 && strncmp(g + 16, "0807060504030201", 16) == 0 && strncmp(g + 32 * 16, "34120080ffffffff", 16) == 0,
              "g gives x0-x31 and pc, little-endian (pc %.16s)", g + 32 * 16);
        CHECK(strcmp(reply_of(cmd(s, "p20")), "34120080ffffffff") == 0, "p20 reads pc");
        CHECK(strcmp(reply_of(cmd(s, "p1041")), "0100000000000000") == 0, "p1041 reads the virtual priv register");
        CHECK(strcmp(reply_of(cmd(s, "p42")), "05000000") == 0 && strcmp(reply_of(cmd(s, "p43")), "07000000") == 0 &&
                      strcmp(reply_of(cmd(s, "p44")), "e5000000") == 0,
              "fflags, frm and fcsr come from fcsr, 32 bits each");
        CHECK(strcmp(reply_of(cmd(s, "p1c1")), "4523010000000080") == 0, "p1c1 reads satp (CSR 0x180)");
        CHECK(reply_of(cmd(s, "p2000"))[0] == 'E' && reply_of(cmd(s, "p"))[0] == 'E' &&
                      reply_of(cmd(s, "pzz"))[0] == 'E' && reply_of(cmd(s, "p11112222333344445"))[0] == 'E',
              "unknown, missing, malformed and overlong register numbers get E");
        CHECK(strcmp(reply_of(cmd(s, "Pa=efbeadde00000000")), "OK") == 0 && vm->x[10] == 0xdeadbeef, "P writes a0");
        CHECK(strcmp(reply_of(cmd(s, "P42=1f000000")), "OK") == 0 && vm->fcsr == 0xff, "P writes fflags into fcsr");
        CHECK(reply_of(cmd(s, "Pa")) [0] == 'E' && reply_of(cmd(s, "Pa=xyz"))[0] == 'E', "malformed P gets E");
        char G[33 * 16 + 2] = "G";
        for (unsigned i = 0; i < 33; i++)
                strcat(G, i == 5 ? "0500000000000000" : "0000000000000000");
        CHECK(strcmp(reply_of(cmd(s, G)), "OK") == 0 && vm->x[5] == 5 && vm->x[32] == 0, "G writes all of them");
        CHECK(reply_of(cmd(s, "G0011"))[0] == 'E', "a short G gets E");
        vm->x[32] = 0xffffffff80001234ULL;
}

/* Memory */
static void check_memory(Session *s, FakeVm *vm) {
        memcpy(vm->mem, "\x13\x05\x10\x00", 4);
        CHECK(strcmp(reply_of(cmd(s, "m80000000,4")), "13051000") == 0, "m reads memory");
        CHECK(strlen(reply_of(cmd(s, "m80000000,ffffffff"))) == 2 * 4096, "a huge m length is cut to 4096 bytes");
        CHECK(strcmp(reply_of(cmd(s, "m0,4")), "E0e") == 0 && strcmp(reply_of(cmd(s, "m8000fffe,4")), "E0e") == 0,
              "addresses outside memory get E0e");
        CHECK(reply_of(cmd(s, "m80000000"))[0] == 'E' && reply_of(cmd(s, "m,4"))[0] == 'E' &&
                      reply_of(cmd(s, "m80000000,4:"))[0] == 'E' && reply_of(cmd(s, "m11112222333344445,1"))[0] == 'E',
              "malformed m gets E");
        CHECK(strcmp(reply_of(cmd(s, "M80000010,2:abcd")), "OK") == 0 && vm->mem[0x10] == 0xab && vm->mem[0x11] == 0xcd,
              "M writes hex data");
        CHECK(reply_of(cmd(s, "M80000010,3:abcd"))[0] == 'E' && reply_of(cmd(s, "M80000010,2:abzz"))[0] == 'E' &&
                      reply_of(cmd(s, "M80000010,2000:"))[0] == 'E',
              "M with a wrong length, bad hex or a huge length gets E");
        static const char X[] = "X80000020,4:\x00#}$";
        CHECK(strcmp(reply_of(send_packet(s, X, sizeof(X) - 1, NULL)), "OK") == 0 &&
                      memcmp(vm->mem + 0x20, "\x00#}$", 4) == 0,
              "X writes binary data, escapes and NULs included");
        CHECK(reply_of(send_packet(s, "X80000020,5:ab", 14, NULL))[0] == 'E', "X with a short body gets E");
}

/* Breakpoints and watchpoints */
static void check_breakpoints(Session *s, FakeVm *vm) {
        CHECK(strcmp(reply_of(cmd(s, "Z0,ffffffff80001000,2")), "OK") == 0 && vm->last_add &&
                      strcmp(vm->last_kind, "sw") == 0 && vm->last_addr == 0xffffffff80001000ULL,
              "Z0 adds a sw breakpoint");
        CHECK(strcmp(reply_of(cmd(s, "Z1,ffffffff80001000,2")), "OK") == 0 && strcmp(vm->last_kind, "hw") == 0, "Z1: hw");
        CHECK(strcmp(reply_of(cmd(s, "Z2,80000100,8")), "OK") == 0 && strcmp(vm->last_kind, "write") == 0 &&
                      vm->last_len == 8,
              "Z2: a write watchpoint with its length");
        CHECK(strcmp(reply_of(cmd(s, "Z3,80000100,4")), "OK") == 0 && strcmp(vm->last_kind, "read") == 0 &&
                      strcmp(reply_of(cmd(s, "Z4,80000100,4")), "OK") == 0 && strcmp(vm->last_kind, "access") == 0,
              "Z3 and Z4: read and access watchpoints");
        CHECK(strcmp(reply_of(cmd(s, "z0,ffffffff80001000,2")), "OK") == 0 && !vm->last_add, "z0 removes");
        CHECK(strcmp(reply_of(cmd(s, "Z9,0,1")), "") == 0 && reply_of(cmd(s, "Z0,zz,1"))[0] == 'E' &&
                      reply_of(cmd(s, "Z2,0,100000000"))[0] == 'E',
              "an unknown Z type is unsupported, malformed or huge ones get E");
}

/* Running and stopping */
static void check_running_and_stopping(Session *s, FakeVm *vm) {
        const char *a;
        a = cmd(s, "c");
        CHECK(strcmp(a, "+") == 0 && vm->resumes == 1, "c resumes, with no reply until the VM stops");
        out_len = 0;
        session_input(s, (const uint8_t *) "\x03", 1);
        CHECK(vm->stops == 1, "Ctrl-C while running asks the VM to stop");
        out_len = 0;
        session_stopped(s, "stop", "", 0);
        CHECK(strcmp(reply_of(out), "T02thread:01;") == 0, "the stop after Ctrl-C is reported as SIGINT (%.60s)", out);
        cmd(s, "vCont;s:1");
        out_len = 0;
        session_stopped(s, "step", "", 0);
        CHECK(vm->steps == 1 && strcmp(reply_of(out), "T05thread:01;") == 0, "vCont;s steps, then T05");
        cmd(s, "vCont;c");
        out_len = 0;
        session_stopped(s, "watchpoint", "write", 0x80000104);
        CHECK(strcmp(reply_of(out), "T05watch:80000104;thread:01;") == 0, "a write watchpoint reports watch:ADDR (%.60s)",
              reply_of(out));
        out_len = 0;
        session_stopped(s, "breakpoint", "", 0);
        CHECK(out_len == 0, "a stop nobody waits for sends nothing");
        CHECK(strcmp(reply_of(cmd(s, "?")), "T05thread:01;") == 0, "? repeats the last stop");
        CHECK(strcmp(reply_of(cmd(s, "vCont?")), "vCont;c;C;s;S;t") == 0 && strcmp(reply_of(cmd(s, "qAttached")), "1") == 0 &&
                      strcmp(reply_of(cmd(s, "qfThreadInfo")), "m01") == 0 && strcmp(reply_of(cmd(s, "qC")), "QC01") == 0,
              "vCont?, qAttached, thread queries");
        CHECK(strcmp(reply_of(cmd(s, "qRcmd,6869")), "") == 0 && strcmp(reply_of(cmd(s, "vMustReplyEmpty")), "") == 0,
              "unknown packets get the empty reply");
}

/* Oversized and no-ack */
static void check_oversized_and_no_ack(Session *s, FakeVm *vm) {
        const char *a;
        static char big[RSP_MAX_PAYLOAD + 100];
        memset(big, 'm', sizeof(big));
        CHECK(strcmp(reply_of(send_packet(s, big, sizeof(big), NULL)), "E07") == 0, "an oversized packet gets E07");
        a = cmd(s, "QStartNoAckMode");
        CHECK(strcmp(reply_of(a), "OK") == 0 && a[0] == '+', "QStartNoAckMode is acked one last time");
        a = cmd(s, "qC");
        CHECK(a[0] == '$', "then replies come without acks (%.60s)", a);
}

/* Detach */
static void check_detach(Session *s, FakeVm *vm) {
        SessionResult result;
        reply_of(send_packet(s, "D", 1, &result));
        CHECK(result == SESSION_CLOSE && vm->detaches == 1 && strcmp(reply_of(out), "OK") == 0,
              "D detaches (the VM drops the breakpoints and runs) and closes");
        session_init(s, &fake_backend, vm, capture, NULL);
        send_packet(s, "k", 1, &result);
        CHECK(result == SESSION_CLOSE && vm->detaches == 2, "k detaches too: the VM is never killed by a debugger");
}

int main(void) {
        static FakeVm vm;
        static Session s;

        for (unsigned i = 0; i < 33; i++)
                vm.x[i] = 0x1111111111111111ULL * (i % 16) + i;
        vm.x[0] = 0;
        vm.x[1] = 0x0102030405060708ULL;
        vm.x[32] = 0xffffffff80001234ULL;
        vm.priv = 1;
        vm.fcsr = 0xe5;         /* frm 7, fflags 5 */
        vm.csr[0x180] = 0x8000000000012345ULL;
        session_init(&s, &fake_backend, &vm, capture, NULL);

        check_framing(&s, &vm);
        check_target_description(&s, &vm);
        check_registers(&s, &vm);
        check_memory(&s, &vm);
        check_breakpoints(&s, &vm);
        check_running_and_stopping(&s, &vm);
        check_oversized_and_no_ack(&s, &vm);
        check_detach(&s, &vm);
        return tap_finish();
}

/* SPDX-License-Identifier: MIT */

/*
 * Runs a command under the seccomp filter systemd installs for
 * MemoryDenyWriteExecute=yes: mmap() with PROT_WRITE|PROT_EXEC, and
 * mprotect()/pkey_mprotect() adding PROT_EXEC, fail with EPERM. Checks
 * that the filter took effect (a W+X mapping is refused), then execs.
 * Lets the JIT's tests prove that its code cache never needs W+X memory
 * without a systemd user manager.
 */

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The low 32 bits of a 64-bit argument (x86-64 is little-endian). */
#define ARG_LOW(n) ((uint32_t) offsetof(struct seccomp_data, args[n]))

int main(int argc, char *argv[]) {
        struct sock_filter filter[] = {
                BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mmap, 0, 3),
                /* mmap: refuse when both PROT_WRITE and PROT_EXEC are asked for */
                BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LOW(2)),
                BPF_STMT(BPF_ALU | BPF_AND | BPF_K, PROT_WRITE | PROT_EXEC),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PROT_WRITE | PROT_EXEC, 4, 5),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mprotect, 1, 0),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_pkey_mprotect, 0, 3),
                /* mprotect, pkey_mprotect: refuse PROT_EXEC */
                BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LOW(2)),
                BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, PROT_EXEC, 0, 1),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = {
                .len = sizeof(filter) / sizeof(filter[0]),
                .filter = filter,
        };
        void *p;

        if (argc < 2) {
                fprintf(stderr, "usage: mdwe-exec COMMAND [ARG...]\n");
                return 2;
        }
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) {
                perror("mdwe-exec: seccomp");
                return 1;
        }
        p = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p != MAP_FAILED) {
                fprintf(stderr, "mdwe-exec: the filter did not refuse a W+X mapping\n");
                return 1;
        }
        p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED || mprotect(p, 4096, PROT_READ | PROT_EXEC) == 0) {
                fprintf(stderr, "mdwe-exec: the filter did not refuse mprotect(PROT_EXEC)\n");
                return 1;
        }
        execv(argv[1], argv + 1);
        perror("mdwe-exec: execv");
        return 1;
}

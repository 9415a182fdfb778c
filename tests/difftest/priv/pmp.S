/* SPDX-License-Identifier: MIT */
/* PMP: NAPOT, NA4 and TOR regions, priority by index, S/U versus M, and the lock bit. */
#include "common.h"

#define NAPOT(base, size) (((base) >> 2) | (((size) >> 3) - 1))
#define LOAD(reg, addr) li t2, addr; li reg, 0xdead; ld reg, 0(t2); RECORD(reg)
#define STORE(addr) li t2, addr; li a1, 0x5a5a; sd a1, 0(t2)

#define REGION 0x80100000

test:
        li t0, REGION
        li t1, 0x1234
        li t2, 4
0:      sd t1, 0(t0)
        sd t1, 8(t0)
        li t3, 0x1000
        add t0, t0, t3
        addi t2, t2, -1
        bnez t2, 0b

        li t0, NAPOT(REGION, 0x1000)    /* 0: R only, 4 KiB NAPOT */
        csrw pmpaddr0, t0
        li t0, (REGION + 0x1000) >> 2   /* 1: nothing, NA4 */
        csrw pmpaddr1, t0
        li t0, (REGION + 0x2000) >> 2   /* 2..3: TOR [REGION + 0x2000, REGION + 0x3000), R W */
        csrw pmpaddr2, t0
        li t0, (REGION + 0x3000) >> 2
        csrw pmpaddr3, t0
        li t0, NAPOT(REGION, 0x4000)    /* 4: a larger NAPOT under them, R W: lower index wins */
        csrw pmpaddr4, t0
        li t0, (0x1b << 32) | (0x0b << 24) | (0x00 << 16) | (0x10 << 8) | 0x19
        csrw pmpcfg0, t0
        csrr a0, pmpcfg0
        RECORD(a0)

        TO_S(1f)
1:      LOAD(a0, REGION)
        STORE(REGION)                   /* R only: store access fault */
        LOAD(a0, REGION + 0x1000)       /* NA4 with no permission: load access fault */
        LOAD(a0, REGION + 0x1008)       /* past the NA4 word: entry 4 allows it */
        STORE(REGION + 0x2000)
        LOAD(a0, REGION + 0x2000)
        LOAD(a0, REGION + 0x3000)       /* entry 4 */
        RESUME(2f)
        li t2, REGION + 0x2000          /* TOR region has no X: fetch access fault */
        jalr t2
2:      ecall

        /* U sees the same. */
        TO_U(3f)
3:      LOAD(a0, REGION)
        LOAD(a0, REGION + 0x1000)
        ecall

        /*
         * M ignores unlocked entries, except that an entry matching only part of
         * an access fails it: the 8-byte load over the 4-byte NA4 region faults.
         */
        STORE(REGION)
        LOAD(a0, REGION + 0x1000)
        /* ...but not locked ones; and a locked entry ignores writes. */
        li t0, 0x80
        csrs pmpcfg0, t0
        STORE(REGION)
        LOAD(a0, REGION)
        csrw pmpaddr0, zero
        csrr a0, pmpaddr0
        li t0, NAPOT(REGION, 0x1000)
        sub a0, a0, t0
        RECORD(a0)
        csrw pmpcfg0, zero
        csrr a0, pmpcfg0
        andi a0, a0, 0xff
        RECORD(a0)
        j finish

/* SPDX-License-Identifier: MIT */
/* Delegation: which exceptions and interrupts land in S, with what scause/sepc/stval/sstatus. */
#include "common.h"

test:
        li t0, (1 << 2) | (1 << 3) | (1 << 8)   /* illegal instruction, breakpoint, ECALL from U */
        csrw medeleg, t0
        li t0, 0x2                      /* SSIP */
        csrw mideleg, t0

        TO_S(1f)
1:      ebreak                          /* delegated, but taken in S: to S */
        .word 0                         /* illegal: to S */
        ecall                           /* ECALL from S is not delegated: to M, back in M */

        /* From U: a delegated ECALL goes to S, which continues in S after it. */
        TO_S(2f)
2:      S_TO_U(3f)
3:      ebreak                          /* to S, resumes in U */
        ecall                           /* to S, back in S */
        csrr a0, sstatus
        li t0, SSTATUS_PRIV_FIELDS
        and a0, a0, t0
        RECORD(a0)
        ecall                           /* from S: to M */

        /* Not delegated from U: load access fault (PMP denies U at 0) goes to M. */
        TO_U(4f)
4:      ld a0, 0(zero)
        ecall

        /* Delegated supervisor software interrupt, taken in S once SIE and sie.SSIE allow it. */
        csrsi mip, 2
        TO_S(5f)
5:      csrsi sie, 2
        csrsi sstatus, 2
        nop
        nop
        csrci sstatus, 2
        ecall
        csrci mip, 2

        /* An undelegated one (MSIP through the CLINT) in M with MIE. */
        li t0, 0x2000000
        li t1, 1
        sw t1, 0(t0)
        csrsi mie, 8
        csrsi mstatus, 8
        nop
        nop
        csrci mstatus, 8
        li t0, 0x2000000
        sw zero, 0(t0)
        j finish

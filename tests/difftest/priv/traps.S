/* SPDX-License-Identifier: MIT */
/* Synchronous traps in M, S and U: causes, epc, tval and the status fields they leave. */
#include "common.h"

test:
        /* M-mode */
        csrw cycle, zero                /* read-only CSR: illegal */
        ebreak
        ecall
        .word 0x00000000                /* all-zero: illegal */
        csrr a0, 0x7c0                  /* no such CSR */
        li t0, 0x200000                 /* TW */
        csrs mstatus, t0

        /* S-mode */
        TO_S(1f)
1:      csrr a0, mstatus                /* M CSR from S: illegal */
        mret                            /* illegal in S */
        wfi                             /* TW=1: illegal */
        csrr a0, sstatus
        RECORD(a0)
        csrr a0, cycle                  /* mcounteren = 0: illegal */
        ecall
        li t0, 0x200000
        csrc mstatus, t0
        li t0, 0x500000                 /* TSR, TVM */
        csrs mstatus, t0
        li t0, -1
        csrw mcounteren, t0

        TO_S(2f)
2:      sret                            /* TSR=1: illegal */
        sfence.vma                      /* TVM=1: illegal */
        csrr a0, satp                   /* TVM=1: illegal */
        csrr a0, cycle                  /* mcounteren = ~0: fine */
        csrw scounteren, zero
        ecall
        li t0, 0x500000
        csrc mstatus, t0

        /* U-mode */
        TO_U(3f)
3:      csrr a0, sstatus                /* illegal */
        sret                            /* illegal */
        mret                            /* illegal */
        csrr a0, cycle                  /* scounteren = 0: illegal */
        sfence.vma                      /* illegal */
        ebreak
        ecall

        RECORD_CSR(mstatus)
        j finish

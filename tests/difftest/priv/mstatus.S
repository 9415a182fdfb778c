/* SPDX-License-Identifier: MIT */
/* mstatus/sstatus through traps and xRETs, and what the WARL status, delegation and interrupt CSRs keep. */
#include "common.h"

#define LOG_MSTATUS csrr t0, mstatus; li t1, MSTATUS_PRIV_FIELDS; and t0, t0, t1; RECORD(t0)

test:
        /* MRET to S with MPIE=1: MIE <- MPIE, MPIE <- 1, MPP <- U; the ECALL back logs it all. */
        li t0, 0x88                     /* MIE, MPIE */
        csrc mstatus, t0
        li t0, 0x80
        csrs mstatus, t0
        LOG_MSTATUS
        TO_S(1f)
1:      csrr a0, sstatus
        RECORD(a0)
        ecall
        LOG_MSTATUS

        /* SRET with SPP=U, SPIE=1: SIE <- 1, SPIE <- 1, SPP <- U. */
        li t0, 0x122
        csrc mstatus, t0
        li t0, 0x20                     /* SPIE */
        csrs mstatus, t0
        TO_S(2f)
2:      lla t0, 3f
        csrw sepc, t0
        sret
3:      ecall                           /* from U: back to M */
        LOG_MSTATUS

        /*
         * Not compared: an MRET to U with MPRV=1. Privileged spec 1.12 says the
         * MRET clears MPRV (orrery does); QEMU 7.2 keeps it.
         */

        /* A trap from S with SIE=1 into M: MPIE <- MIE (0), MPP <- S, SPP/SIE untouched. */
        li t0, 0x2
        csrs mstatus, t0
        TO_S(5f)
5:      ebreak
        ecall
        LOG_MSTATUS

        /* WARL: write all ones and zeros, read back the fields both must keep. */
        li a1, MSTATUS_PRIV_FIELDS
        li t0, -1
        csrw mstatus, t0
        csrr a0, mstatus
        and a0, a0, a1
        RECORD(a0)
        csrw mstatus, zero
        csrr a0, mstatus
        and a0, a0, a1
        RECORD(a0)
        li t0, -1
        csrw sstatus, t0
        csrr a0, sstatus
        li a1, SSTATUS_PRIV_FIELDS
        and a0, a0, a1
        RECORD(a0)
        csrw sstatus, zero
        li t0, 0x6000
        csrs mstatus, t0

        li t0, 0xb3ff                   /* the exceptions defined by the base privileged spec */
        csrw medeleg, t0
        csrr a0, medeleg
        RECORD(a0)
        li t0, 0x222                    /* SSIP STIP SEIP */
        csrw mideleg, t0
        csrr a0, mideleg
        RECORD(a0)
        li t0, 0xaaa
        csrw mie, t0
        csrr a0, mie
        RECORD(a0)
        csrr a0, sie
        RECORD(a0)
        csrw mie, zero
        csrw medeleg, zero
        csrw mideleg, zero

        li t0, 0x2004000                /* mtimecmp = ~0: no timer interrupt pending */
        li t1, -1
        sd t1, 0(t0)
        li t0, 0x82                     /* mip: SSIP is writable, MTIP is not */
        csrs mip, t0
        csrr a0, mip
        andi a0, a0, 0x8a
        RECORD(a0)
        csrc mip, t0
        csrr a0, mip
        andi a0, a0, 0x8a
        RECORD(a0)
        j finish

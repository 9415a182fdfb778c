/* SPDX-License-Identifier: MIT */
/*
 * Frame for the privileged difftest programs (bare-metal, M-mode at
 * 0x80000000, built like prog.S with -DBAREMETAL and link.ld).
 *
 * The program's code starts at 'test' and ends with 'j finish'. Everything it
 * observes goes into a log of 64-bit words, dumped through the UART at the
 * end; the dump is compared between QEMU and orrery-vm.
 *
 * Traps: both handlers append cause, epc, tval and the status register
 * masked to its privilege fields, then
 *   - an ECALL from a lower mode returns to the trapping mode's caller:
 *     to M (from the M handler) or S (from the S handler) after the ECALL;
 *   - otherwise, if RESUME(label) was set, continue there (once);
 *   - otherwise skip the 4-byte instruction (everything is assembled without
 *     compressed instructions).
 *   A breakpoint's tval is logged as 0 when it is the pc (both are allowed).
 *   Interrupts are logged the same way; the M handler then clears mie, the S
 *   handler sie, so that the same interrupt is not taken again.
 *
 * Reserved registers: s11 (log pointer), t5 and t6 (handlers).
 */

#define MSTATUS_PRIV_FIELDS 0x7e19aa    /* SIE MIE SPIE MPIE SPP MPP MPRV SUM MXR TVM TW TSR */
#define SSTATUS_PRIV_FIELDS 0x0c0122    /* SIE SPIE SPP SUM MXR */

#define RECORD(reg) sd reg, 0(s11); addi s11, s11, 8
#define RECORD_CSR(csr) csrr t0, csr; RECORD(t0)
#define RESUME(label) lla t0, label; lla t1, resume; sd t0, 0(t1)
#define SRESUME(label) lla t0, label; lla t1, sresume; sd t0, 0(t1)

/* From M: continue at 'label' in S (or U) mode. */
#define TO_S(label) li t0, 0x1800; csrc mstatus, t0; li t0, 0x800; csrs mstatus, t0; \
        lla t0, label; csrw mepc, t0; mret
#define TO_U(label) li t0, 0x1800; csrc mstatus, t0; lla t0, label; csrw mepc, t0; mret
/* From S: continue at 'label' in U mode. */
#define S_TO_U(label) li t0, 0x100; csrc sstatus, t0; lla t0, label; csrw sepc, t0; sret

        .option norelax
        .option norvc
        .section .text.start, "ax"
        .globl _start
_start:
        lla t0, mtrap
        csrw mtvec, t0
        lla t0, strap
        csrw stvec, t0
        lla s11, log
        /* PMP entry 15: everything RWX, so that S and U can reach memory; entries 0..14 are the tests'. */
        li t0, -1
        csrw pmpaddr15, t0
        li t0, 0x1f << 56
        csrw pmpcfg2, t0
        csrw satp, zero
        csrw medeleg, zero
        csrw mideleg, zero
        csrw mie, zero
        li t0, 0x6000                   /* FS = Dirty */
        csrs mstatus, t0
        j test

        .balign 4
mtrap:
        csrr t6, mcause
        sd t6, 0(s11)
        csrr t6, mepc
        sd t6, 8(s11)
        csrr t6, mtval
        csrr t5, mcause               /* EBREAK: tval is 0 or the pc, both allowed; log 0 for either */
        addi t5, t5, -3
        bnez t5, 0f
        csrr t5, mepc
        bne t5, t6, 0f
        li t6, 0
0:      sd t6, 16(s11)
        csrr t6, mstatus
        li t5, MSTATUS_PRIV_FIELDS
        and t6, t6, t5
        sd t6, 24(s11)
        addi s11, s11, 32
        csrr t6, mcause
        bgez t6, 1f
        csrw mie, zero
        mret
1:      li t5, 8
        beq t6, t5, 2f
        li t5, 9
        beq t6, t5, 2f
        lla t5, resume
        ld t6, 0(t5)
        beqz t6, 3f
        sd zero, 0(t5)
        csrw mepc, t6
        mret
2:      li t5, 0x1800                   /* ECALL from S or U: back to M */
        csrs mstatus, t5
3:      csrr t6, mepc
        addi t6, t6, 4
        csrw mepc, t6
        mret

        .balign 4
strap:
        csrr t6, scause
        sd t6, 0(s11)
        csrr t6, sepc
        sd t6, 8(s11)
        csrr t6, stval
        csrr t5, scause               /* EBREAK: tval is 0 or the pc, both allowed; log 0 for either */
        addi t5, t5, -3
        bnez t5, 0f
        csrr t5, sepc
        bne t5, t6, 0f
        li t6, 0
0:      sd t6, 16(s11)
        csrr t6, sstatus
        li t5, SSTATUS_PRIV_FIELDS
        and t6, t6, t5
        sd t6, 24(s11)
        addi s11, s11, 32
        csrr t6, scause
        bgez t6, 1f
        csrw sie, zero
        sret
1:      li t5, 8
        beq t6, t5, 2f
        lla t5, sresume
        ld t6, 0(t5)
        beqz t6, 3f
        sd zero, 0(t5)
        csrw sepc, t6
        sret
2:      li t5, 0x100                    /* ECALL from U: back to S */
        csrs sstatus, t5
3:      csrr t6, sepc
        addi t6, t6, 4
        csrw sepc, t6
        sret

finish:
        lla a0, log
        lla s0, text
        lla t0, begin_marker
4:      lbu t1, 0(t0)
        beqz t1, 5f
        sb t1, 0(s0)
        addi t0, t0, 1
        addi s0, s0, 1
        j 4b
5:      beq a0, s11, 8f
        ld t0, 0(a0)
        li t1, 60
6:      srl t2, t0, t1
        andi t2, t2, 15
        li t3, 10
        blt t2, t3, 7f
        addi t2, t2, 'a' - '0' - 10
7:      addi t2, t2, '0'
        sb t2, 0(s0)
        addi s0, s0, 1
        addi t1, t1, -4
        bgez t1, 6b
        li t2, '\n'
        sb t2, 0(s0)
        addi s0, s0, 1
        addi a0, a0, 8
        j 5b
8:      lla t0, end_marker
9:      lbu t1, 0(t0)
        beqz t1, 10f
        sb t1, 0(s0)
        addi t0, t0, 1
        addi s0, s0, 1
        j 9b
10:     lla a0, text
        li t0, 0x10000000
11:     beq a0, s0, 13f
12:     lbu t1, 5(t0)
        andi t1, t1, 0x20
        beqz t1, 12b
        lbu t1, 0(a0)
        sb t1, 0(t0)
        addi a0, a0, 1
        j 11b
13:     li t0, 0x100000
        li t1, 0x5555
        sw t1, 0(t0)
14:     wfi
        j 14b

        .section .rodata
begin_marker:
        .asciz "=== difftest log\n"
end_marker:
        .asciz "=== end\n"

        .section .data
        .balign 8
resume:
        .dword 0
sresume:
        .dword 0

        .section .bss
        .balign 4096
log:
        .skip 8192
text:
        .skip 8192 * 3

        .text

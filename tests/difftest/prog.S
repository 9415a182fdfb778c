/* SPDX-License-Identifier: MIT */
/*
 * The frame around a generated body (gen.py): load the initial state, run the
 * body, dump the architectural state as text.
 *
 * Built twice from the same body:
 *   - as a static Linux user program (default): the dump goes out with
 *     write(2) and the program exits with exit(2); run by qemu-riscv64;
 *   - with -DBAREMETAL as an M-mode payload loaded at 0x80000000: FS is
 *     switched on, the dump goes out through the 16550 UART at 0x10000000
 *     and the SiFive test finisher at 0x100000 ends the run; run by
 *     orrery-vm --bios and by qemu-system-riscv64 -M virt -bios.
 *
 * The dump, one 16-digit hex word per line between two marker lines:
 * x1..x31 (x31 relative to the scratch region), f0..f31, fcsr, then the
 * 256-byte scratch region as 32 doublewords.
 */

#define UART 0x10000000
#define FINISHER 0x100000

        .option norelax
        .section .text.start, "ax"
        .globl _start
_start:
#ifdef BAREMETAL
        li t0, 0x6000                   /* mstatus.FS = Dirty: the F/D registers are usable */
        csrs mstatus, t0
        lla t0, trap
        csrw mtvec, t0
#endif
        fscsr x0
        lla x31, init_f
        fld f0, 0(x31)
        fld f1, 8(x31)
        fld f2, 16(x31)
        fld f3, 24(x31)
        fld f4, 32(x31)
        fld f5, 40(x31)
        fld f6, 48(x31)
        fld f7, 56(x31)
        fld f8, 64(x31)
        fld f9, 72(x31)
        fld f10, 80(x31)
        fld f11, 88(x31)
        fld f12, 96(x31)
        fld f13, 104(x31)
        fld f14, 112(x31)
        fld f15, 120(x31)
        fld f16, 128(x31)
        fld f17, 136(x31)
        fld f18, 144(x31)
        fld f19, 152(x31)
        fld f20, 160(x31)
        fld f21, 168(x31)
        fld f22, 176(x31)
        fld f23, 184(x31)
        fld f24, 192(x31)
        fld f25, 200(x31)
        fld f26, 208(x31)
        fld f27, 216(x31)
        fld f28, 224(x31)
        fld f29, 232(x31)
        fld f30, 240(x31)
        fld f31, 248(x31)
        lla x31, init_x
        ld x1, 8(x31)
        ld x2, 16(x31)
        ld x3, 24(x31)
        ld x4, 32(x31)
        ld x5, 40(x31)
        ld x6, 48(x31)
        ld x7, 56(x31)
        ld x8, 64(x31)
        ld x9, 72(x31)
        ld x10, 80(x31)
        ld x11, 88(x31)
        ld x12, 96(x31)
        ld x13, 104(x31)
        ld x14, 112(x31)
        ld x15, 120(x31)
        ld x16, 128(x31)
        ld x17, 136(x31)
        ld x18, 144(x31)
        ld x19, 152(x31)
        ld x20, 160(x31)
        ld x21, 168(x31)
        ld x22, 176(x31)
        ld x23, 184(x31)
        ld x24, 192(x31)
        ld x25, 200(x31)
        ld x26, 208(x31)
        ld x27, 216(x31)
        ld x28, 224(x31)
        ld x29, 232(x31)
        ld x30, 240(x31)
        lla x31, scratch
        j body

#include "body.S"

body_end:
        /* Save the state behind the scratch region (state: 65 words). */
        sd x1, 256+8(x31)
        sd x2, 256+16(x31)
        sd x3, 256+24(x31)
        sd x4, 256+32(x31)
        sd x5, 256+40(x31)
        sd x6, 256+48(x31)
        sd x7, 256+56(x31)
        sd x8, 256+64(x31)
        sd x9, 256+72(x31)
        sd x10, 256+80(x31)
        sd x11, 256+88(x31)
        sd x12, 256+96(x31)
        sd x13, 256+104(x31)
        sd x14, 256+112(x31)
        sd x15, 256+120(x31)
        sd x16, 256+128(x31)
        sd x17, 256+136(x31)
        sd x18, 256+144(x31)
        sd x19, 256+152(x31)
        sd x20, 256+160(x31)
        sd x21, 256+168(x31)
        sd x22, 256+176(x31)
        sd x23, 256+184(x31)
        sd x24, 256+192(x31)
        sd x25, 256+200(x31)
        sd x26, 256+208(x31)
        sd x27, 256+216(x31)
        sd x28, 256+224(x31)
        sd x29, 256+232(x31)
        sd x30, 256+240(x31)
        lla t0, scratch
        sub t0, x31, t0
        sd t0, 256+248(x31)
        fsd f0, 512+0(x31)
        fsd f1, 512+8(x31)
        fsd f2, 512+16(x31)
        fsd f3, 512+24(x31)
        fsd f4, 512+32(x31)
        fsd f5, 512+40(x31)
        fsd f6, 512+48(x31)
        fsd f7, 512+56(x31)
        fsd f8, 512+64(x31)
        fsd f9, 512+72(x31)
        fsd f10, 512+80(x31)
        fsd f11, 512+88(x31)
        fsd f12, 512+96(x31)
        fsd f13, 512+104(x31)
        fsd f14, 512+112(x31)
        fsd f15, 512+120(x31)
        fsd f16, 512+128(x31)
        fsd f17, 512+136(x31)
        fsd f18, 512+144(x31)
        fsd f19, 512+152(x31)
        fsd f20, 512+160(x31)
        fsd f21, 512+168(x31)
        fsd f22, 512+176(x31)
        fsd f23, 512+184(x31)
        fsd f24, 512+192(x31)
        fsd f25, 512+200(x31)
        fsd f26, 512+208(x31)
        fsd f27, 512+216(x31)
        fsd f28, 512+224(x31)
        fsd f29, 512+232(x31)
        fsd f30, 512+240(x31)
        fsd f31, 512+248(x31)
        frcsr t0
        sd t0, 768(x31)

        /* Text: begin marker, state x1..fcsr (words 1..64 of 'state'), scratch (32 words), end marker. */
        lla s0, text
        lla a0, begin_marker
        call copy_string
        lla s1, state + 8
        li s2, 64
        call hex_words
        lla s1, scratch
        li s2, 32
        call hex_words
        lla a0, end_marker
        call copy_string
        lla a0, text
        sub a1, s0, a0
#ifdef BAREMETAL
uart_out:
        li t0, UART
1:      beqz a1, 3f
2:      lbu t1, 5(t0)                   /* LSR: wait for THRE */
        andi t1, t1, 0x20
        beqz t1, 2b
        lbu t1, 0(a0)
        sb t1, 0(t0)
        addi a0, a0, 1
        addi a1, a1, -1
        j 1b
3:      li t0, FINISHER
        li t1, 0x5555
        sw t1, 0(t0)
4:      wfi
        j 4b
#else
        mv a2, a1
        mv a1, a0
        li a0, 1
        li a7, 64                       /* write */
        ecall
        li a0, 0
        li a7, 93                       /* exit */
        ecall
#endif

#ifdef BAREMETAL
/* An unexpected trap: report mcause, mepc and mtval instead of the state. */
        .balign 4
trap:
        lla s0, text
        lla a0, trap_marker
        call copy_string
        lla s1, state
        csrr t0, mcause
        sd t0, 0(s1)
        csrr t0, mepc
        sd t0, 8(s1)
        csrr t0, mtval
        sd t0, 16(s1)
        li s2, 3
        call hex_words
        lla a0, end_marker
        call copy_string
        lla a0, text
        sub a1, s0, a0
        j uart_out
#endif

/* Appends the NUL-terminated string at a0 to s0. */
copy_string:
        lbu t0, 0(a0)
        beqz t0, 1f
        sb t0, 0(s0)
        addi a0, a0, 1
        addi s0, s0, 1
        j copy_string
1:      ret

/* Appends s2 words from s1 to s0 as 16 hex digits and a newline each. */
hex_words:
        beqz s2, 3f
        ld t0, 0(s1)
        li t1, 60
1:      srl t2, t0, t1
        andi t2, t2, 15
        li t3, 10
        blt t2, t3, 2f
        addi t2, t2, 'a' - '0' - 10
2:      addi t2, t2, '0'
        sb t2, 0(s0)
        addi s0, s0, 1
        addi t1, t1, -4
        bgez t1, 1b
        li t2, '\n'
        sb t2, 0(s0)
        addi s0, s0, 1
        addi s1, s1, 8
        addi s2, s2, -1
        j hex_words
3:      ret

        .section .rodata
begin_marker:
        .asciz "=== difftest state\n"
end_marker:
        .asciz "=== end\n"
trap_marker:
        .asciz "=== trap: mcause, mepc, mtval\n"

        .section .bss
        .balign 64
text:
        .skip 4096

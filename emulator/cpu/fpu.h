/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The F and D extensions' arithmetic: everything in the OP-FP (0x53) and
 * fused multiply-add (0x43, 0x47, 0x4b, 0x4f) major opcodes. Loads and
 * stores (FLW/FLD/FSW/FSD and their compressed forms) touch memory and live
 * in the interpreter; so does the mstatus.FS check (the interpreter calls
 * fpu_execute() only when FS is not Off and marks FS Dirty afterwards).
 *
 * Registers hold 64 bits; single-precision values are NaN-boxed (upper 32
 * bits all ones), and a single-precision operand that is not properly boxed
 * reads as the canonical NaN, as the spec requires.
 */

#include <stdint.h>

typedef struct FpuState {
        uint64_t f[32];
        uint32_t fflags;        /* accrued exceptions: NV DZ OF UF NX (bits 4..0) */
        uint32_t frm;           /* dynamic rounding mode, 0..7 (5..7 reserved) */
} FpuState;

#define FFLAG_NX 0x01u
#define FFLAG_UF 0x02u
#define FFLAG_OF 0x04u
#define FFLAG_DZ 0x08u
#define FFLAG_NV 0x10u

/*
 * Executes one F/D arithmetic instruction. 'x' is the integer register file
 * (for FMV.X.*, FCVT.*, FCLASS, FEQ/FLT/FLE and their sources); x[0] may be
 * written and the caller restores it to zero.
 *
 * Returns 0, or -1 for an illegal instruction (unknown encoding, reserved
 * rounding mode, or DYN with frm holding a reserved value); on -1 nothing
 * has been modified.
 */
int fpu_execute(FpuState *fpu, uint64_t x[32], uint32_t insn);

/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The RISC-V 64 target as GDB sees it: the target description served by
 * qXfer:features:read (features org.gnu.gdb.riscv.cpu, .fpu, .csr and
 * .virtual), and the mapping from GDB's register numbers to
 * org.orrery.Debug1's (hart.h numbering).
 */

#include <stddef.h>
#include <stdint.h>

/* GDB's numbers: x0-x31 0-31, pc 32, f0-f31 33-64, CSR n 65 + n, priv 65 + 4096. */
#define TARGET_GDB_REG_CSR0 65
#define TARGET_GDB_REG_PRIV (TARGET_GDB_REG_CSR0 + 4096)
#define TARGET_GDB_REG_FFLAGS (TARGET_GDB_REG_CSR0 + 1)
#define TARGET_GDB_REG_FRM (TARGET_GDB_REG_CSR0 + 2)
#define TARGET_GDB_REG_FCSR (TARGET_GDB_REG_CSR0 + 3)

/* Debug1 register numbers (as emulator/cpu/hart.h). */
#define TARGET_REG_PC 32
#define TARGET_REG_FCSR 65
#define TARGET_REG_PRIV 66
#define TARGET_REG_CSR0 0x1000

/* The document "target.xml" (NUL-terminated). */
extern const char target_xml[];
extern const size_t target_xml_len;

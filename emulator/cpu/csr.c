/* SPDX-License-Identifier: MIT */

/*
 * Control and status registers: access rules (privilege in csr[9:8],
 * read-only in csr[11:10]) and every register's WARL behaviour. An unknown
 * CSR is an illegal instruction, which is how OpenSBI and Linux probe for
 * optional features.
 */

#include "hart-internal.h"
#include "macro.h"

enum {
        CSR_FFLAGS = 0x001,
        CSR_FRM = 0x002,
        CSR_FCSR = 0x003,
        CSR_CYCLE = 0xc00,
        CSR_TIME = 0xc01,
        CSR_INSTRET = 0xc02,
        CSR_HPMCOUNTER3 = 0xc03,
        CSR_HPMCOUNTER31 = 0xc1f,

        CSR_SSTATUS = 0x100,
        CSR_SIE = 0x104,
        CSR_STVEC = 0x105,
        CSR_SCOUNTEREN = 0x106,
        CSR_SENVCFG = 0x10a,
        CSR_SSCRATCH = 0x140,
        CSR_SEPC = 0x141,
        CSR_SCAUSE = 0x142,
        CSR_STVAL = 0x143,
        CSR_SIP = 0x144,
        CSR_STIMECMP = 0x14d,
        CSR_SATP = 0x180,

        CSR_MVENDORID = 0xf11,
        CSR_MARCHID = 0xf12,
        CSR_MIMPID = 0xf13,
        CSR_MHARTID = 0xf14,
        CSR_MCONFIGPTR = 0xf15,
        CSR_MSTATUS = 0x300,
        CSR_MISA = 0x301,
        CSR_MEDELEG = 0x302,
        CSR_MIDELEG = 0x303,
        CSR_MIE = 0x304,
        CSR_MTVEC = 0x305,
        CSR_MCOUNTEREN = 0x306,
        CSR_MENVCFG = 0x30a,
        CSR_MCOUNTINHIBIT = 0x320,
        CSR_MHPMEVENT3 = 0x323,
        CSR_MHPMEVENT31 = 0x33f,
        CSR_MSCRATCH = 0x340,
        CSR_MEPC = 0x341,
        CSR_MCAUSE = 0x342,
        CSR_MTVAL = 0x343,
        CSR_MIP = 0x344,
        CSR_PMPCFG0 = 0x3a0,
        CSR_PMPCFG15 = 0x3af,
        CSR_PMPADDR0 = 0x3b0,
        CSR_PMPADDR63 = 0x3ef,
        CSR_TSELECT = 0x7a0,            /* Sdtrig: no triggers (tselect and tdata1-3 read 0) */
        CSR_TDATA1 = 0x7a1,
        CSR_TDATA3 = 0x7a3,
        CSR_MCYCLE = 0xb00,
        CSR_MINSTRET = 0xb02,
        CSR_MHPMCOUNTER3 = 0xb03,
        CSR_MHPMCOUNTER31 = 0xb1f,
};

/* mstatus bits software can write; UXL/SXL read as 2 (64-bit) and are fixed. */
#define MSTATUS_WRITABLE (MSTATUS_SIE | MSTATUS_MIE | MSTATUS_SPIE | MSTATUS_MPIE | MSTATUS_SPP | MSTATUS_MPP | \
                          MSTATUS_FS | MSTATUS_MPRV | MSTATUS_SUM | MSTATUS_MXR | MSTATUS_TVM | MSTATUS_TW | MSTATUS_TSR)
#define SSTATUS_MASK (MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP | MSTATUS_FS | MSTATUS_SUM | MSTATUS_MXR | \
                      MSTATUS_UXL | MSTATUS_SD)
#define SSTATUS_WRITABLE (MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP | MSTATUS_FS | MSTATUS_SUM | MSTATUS_MXR)

#define ALL_INTERRUPTS (MIP_SSIP | MIP_MSIP | MIP_STIP | MIP_MTIP | MIP_SEIP | MIP_MEIP)
#define S_INTERRUPTS (MIP_SSIP | MIP_STIP | MIP_SEIP)
/* Exceptions that may be delegated: everything but M-mode ecall (which cannot come from S/U). */
#define DELEGABLE_EXCEPTIONS 0xb3ffULL

#define MENVCFG_FIOM 1ULL

static uint64_t mstatus_with_sd(uint64_t s) {
        if ((s & MSTATUS_FS) == MSTATUS_FS)
                s |= MSTATUS_SD;
        else
                s &= ~MSTATUS_SD;
        return s;
}

static uint64_t read_mip(Hart *h) {
        uint64_t mip = h->mip_sw | atomic_load_explicit(&h->mip_ext, memory_order_relaxed);

        if (h->menvcfg & MENVCFG_STCE) {
                /* Sstc: STIP follows stimecmp and is not writable. */
                mip &= ~MIP_STIP;
                if (h->read_time(h->time_opaque) >= h->stimecmp)
                        mip |= MIP_STIP;
        }
        return mip;
}

static bool counter_allowed(Hart *h, unsigned index) {
        /* index: 0 cycle, 1 time, 2 instret, 3.. hpm */
        if (h->priv < PRIV_M && !((h->mcounteren >> index) & 1))
                return false;
        if (h->priv < PRIV_S && !((h->scounteren >> index) & 1))
                return false;
        return true;
}

/* Unprivileged CSRs (level 0): floating point and counters. */
static int read_user(Hart *h, unsigned csr, uint64_t *ret_value) {
        uint64_t v;

        switch (csr) {
        case CSR_FFLAGS:
        case CSR_FRM:
        case CSR_FCSR:
                if (!(h->mstatus & MSTATUS_FS))
                        return -1;
                v = csr == CSR_FFLAGS ? h->fpu.fflags : csr == CSR_FRM ? h->fpu.frm : (h->fpu.frm << 5 | h->fpu.fflags);
                break;

        case CSR_CYCLE:
        case CSR_INSTRET:
                if (!counter_allowed(h, csr - CSR_CYCLE))
                        return -1;
                v = h->instret;
                break;
        case CSR_TIME:
                if (!counter_allowed(h, 1))
                        return -1;
                v = h->read_time(h->time_opaque);
                break;
        case CSR_HPMCOUNTER3 ... CSR_HPMCOUNTER31:
                if (!counter_allowed(h, csr - CSR_CYCLE))
                        return -1;
                v = 0;
                break;

        default:
                return -1;
        }

        *ret_value = v;
        return 0;
}

/* Supervisor CSRs (level 1). */
static int read_supervisor(Hart *h, unsigned csr, uint64_t *ret_value) {
        uint64_t v;

        switch (csr) {
        case CSR_SSTATUS:
                v = mstatus_with_sd(h->mstatus) & SSTATUS_MASK;
                break;
        case CSR_SIE:
                v = h->mie & h->mideleg;
                break;
        case CSR_STVEC:
                v = h->stvec;
                break;
        case CSR_SCOUNTEREN:
                v = h->scounteren;
                break;
        case CSR_SENVCFG:
                v = h->senvcfg;
                break;
        case CSR_SSCRATCH:
                v = h->sscratch;
                break;
        case CSR_SEPC:
                v = h->sepc;
                break;
        case CSR_SCAUSE:
                v = h->scause;
                break;
        case CSR_STVAL:
                v = h->stval;
                break;
        case CSR_SIP:
                v = read_mip(h) & h->mideleg;
                break;
        case CSR_STIMECMP:
                if (h->priv < PRIV_M && !(h->menvcfg & MENVCFG_STCE))
                        return -1;
                v = h->stimecmp;
                break;
        case CSR_SATP:
                if (h->priv == PRIV_S && (h->mstatus & MSTATUS_TVM))
                        return -1;
                v = h->satp;
                break;

        default:
                return -1;
        }

        *ret_value = v;
        return 0;
}

/* Machine CSRs (level 3), debug triggers included. */
static int read_machine(Hart *h, unsigned csr, uint64_t *ret_value) {
        uint64_t v;

        switch (csr) {
        case CSR_MVENDORID:
        case CSR_MARCHID:
        case CSR_MIMPID:
        case CSR_MCONFIGPTR:
                v = 0;
                break;
        case CSR_MHARTID:
                v = h->mhartid;
                break;
        case CSR_MSTATUS:
                v = mstatus_with_sd(h->mstatus);
                break;
        case CSR_MISA:
                v = h->misa;
                break;
        case CSR_MEDELEG:
                v = h->medeleg;
                break;
        case CSR_MIDELEG:
                v = h->mideleg;
                break;
        case CSR_MIE:
                v = h->mie;
                break;
        case CSR_MTVEC:
                v = h->mtvec;
                break;
        case CSR_MCOUNTEREN:
                v = h->mcounteren;
                break;
        case CSR_MENVCFG:
                v = h->menvcfg;
                break;
        case CSR_MCOUNTINHIBIT:
                v = h->mcountinhibit;
                break;
        case CSR_MHPMEVENT3 ... CSR_MHPMEVENT31:
                v = 0;
                break;
        case CSR_MSCRATCH:
                v = h->mscratch;
                break;
        case CSR_MEPC:
                v = h->mepc;
                break;
        case CSR_MCAUSE:
                v = h->mcause;
                break;
        case CSR_MTVAL:
                v = h->mtval;
                break;
        case CSR_MIP:
                v = read_mip(h);
                break;
        case CSR_PMPCFG0 ... CSR_PMPCFG15:
                /* RV64: only even pmpcfg registers exist; each holds 8 entries. */
                if (csr & 1)
                        return -1;
                v = 0;
                for (unsigned i = 0; i < 8; i++) {
                        unsigned e = (csr - CSR_PMPCFG0) * 4 + i;
                        if (e < ELEMENTSOF(h->pmp.cfg))
                                v |= (uint64_t) h->pmp.cfg[e] << (8 * i);
                }
                break;
        case CSR_PMPADDR0 ... CSR_PMPADDR63: {
                unsigned e = csr - CSR_PMPADDR0;
                v = e < ELEMENTSOF(h->pmp.cfg) ? h->pmp.addr[e] : 0;
                break;
        }
        case CSR_MCYCLE:
        case CSR_MINSTRET:
                v = h->instret;
                break;
        case CSR_MHPMCOUNTER3 ... CSR_MHPMCOUNTER31:
                v = 0;
                break;
        case CSR_TSELECT ... CSR_TDATA3:
                /* No triggers: tselect reads 0, tdata1 reads type 0 ("none"), as the debug spec allows. */
                v = 0;
                break;
        default:
                return -1;
        }

        *ret_value = v;
        return 0;
}

int csr_read(Hart *h, unsigned csr, uint64_t *ret_value) {
        if (h->priv < ((csr >> 8) & 3))
                return -1;

        switch ((csr >> 8) & 3) {
        case PRIV_U:
                return read_user(h, csr, ret_value);
        case PRIV_S:
                return read_supervisor(h, csr, ret_value);
        case PRIV_M:
                return read_machine(h, csr, ret_value);
        default:
                return -1;      /* hypervisor CSRs: no H extension */
        }
}

static bool pmp_entry_locked(const Hart *h, unsigned e) {
        if (h->pmp.cfg[e] & 0x80)
                return true;
        /* A locked TOR entry also locks the address below it. */
        return e + 1 < ELEMENTSOF(h->pmp.cfg) && (h->pmp.cfg[e + 1] & 0x80) && (h->pmp.cfg[e + 1] & 0x18) == 0x08;
}

/* Unprivileged CSRs (level 0): floating point (the counters are read-only). */
static int write_user(Hart *h, unsigned csr, uint64_t value) {
        switch (csr) {
        case CSR_FFLAGS:
        case CSR_FRM:
        case CSR_FCSR:
                if (!(h->mstatus & MSTATUS_FS))
                        return -1;
                if (csr == CSR_FFLAGS)
                        h->fpu.fflags = value & 0x1f;
                else if (csr == CSR_FRM)
                        h->fpu.frm = value & 7;
                else {
                        h->fpu.fflags = value & 0x1f;
                        h->fpu.frm = (value >> 5) & 7;
                }
                h->mstatus |= MSTATUS_FS;
                break;

        default:
                return -1;
        }

        return 0;
}

/* Supervisor CSRs (level 1). */
static int write_supervisor(Hart *h, unsigned csr, uint64_t value) {
        switch (csr) {
        case CSR_SSTATUS: {
                uint64_t old = h->mstatus;
                h->mstatus = (h->mstatus & ~SSTATUS_WRITABLE) | (value & SSTATUS_WRITABLE);
                if ((old ^ h->mstatus) & MSTATUS_MXR)
                        hart_tlb_flush_all(h);
                hart_update_regime(h);
                break;
        }
        case CSR_SIE:
                h->mie = (h->mie & ~h->mideleg) | (value & h->mideleg & S_INTERRUPTS);
                break;
        case CSR_STVEC:
                h->stvec = value & ~2ULL; /* modes 0 (direct) and 1 (vectored) */
                break;
        case CSR_SCOUNTEREN:
                h->scounteren = value & 0xffffffff;
                break;
        case CSR_SENVCFG:
                h->senvcfg = value & MENVCFG_FIOM;
                break;
        case CSR_SSCRATCH:
                h->sscratch = value;
                break;
        case CSR_SEPC:
                h->sepc = value & ~1ULL;
                break;
        case CSR_SCAUSE:
                h->scause = value;
                break;
        case CSR_STVAL:
                h->stval = value;
                break;
        case CSR_SIP:
                /* Only SSIP is writable from S-mode, and only when delegated. */
                h->mip_sw = (h->mip_sw & ~(MIP_SSIP & h->mideleg)) | (value & MIP_SSIP & h->mideleg);
                break;
        case CSR_STIMECMP:
                if (h->priv < PRIV_M && !(h->menvcfg & MENVCFG_STCE))
                        return -1;
                h->stimecmp = value;
                break;
        case CSR_SATP: {
                unsigned mode = value >> 60;
                if (h->priv == PRIV_S && (h->mstatus & MSTATUS_TVM))
                        return -1;
                /* Unsupported modes leave satp unchanged (WARL); all 16 ASID bits are kept. */
                if (mode != 0 && mode != 8 && mode != 9)
                        break;
                h->satp = value & ((0xfULL << 60) | SATP_ASID_MASK | ((1ULL << 44) - 1));
                hart_tlb_switch(h);
                break;
        }

        default:
                return -1;
        }

        return 0;
}

/* Machine CSRs (level 3), debug triggers included. */
static int write_machine(Hart *h, unsigned csr, uint64_t value) {
        switch (csr) {
        case CSR_MSTATUS: {
                uint64_t old = h->mstatus;
                uint64_t v = value & MSTATUS_WRITABLE;
                /* MPP is WARL: the reserved value 2 reads back as U. */
                if (((v & MSTATUS_MPP) >> MSTATUS_MPP_SHIFT) == 2)
                        v &= ~MSTATUS_MPP;
                h->mstatus = (h->mstatus & ~MSTATUS_WRITABLE) | v;
                if ((old ^ h->mstatus) & MSTATUS_MXR)
                        hart_tlb_flush_all(h);
                hart_update_regime(h);
                break;
        }
        case CSR_MISA:
                break; /* fixed */
        case CSR_MEDELEG:
                h->medeleg = value & DELEGABLE_EXCEPTIONS;
                break;
        case CSR_MIDELEG:
                h->mideleg = value & S_INTERRUPTS;
                break;
        case CSR_MIE:
                h->mie = value & ALL_INTERRUPTS;
                break;
        case CSR_MTVEC:
                h->mtvec = value & ~2ULL;
                break;
        case CSR_MCOUNTEREN:
                h->mcounteren = value & 0xffffffff;
                break;
        case CSR_MENVCFG:
                h->menvcfg = value & (MENVCFG_STCE | MENVCFG_FIOM);
                /* With STCE, STIP follows stimecmp alone: drop what software wrote to it before. */
                if (h->menvcfg & MENVCFG_STCE)
                        h->mip_sw &= ~MIP_STIP;
                break;
        case CSR_MCOUNTINHIBIT:
                h->mcountinhibit = value & 0xfffffffd;
                break;
        case CSR_MHPMEVENT3 ... CSR_MHPMEVENT31:
                break;
        case CSR_MSCRATCH:
                h->mscratch = value;
                break;
        case CSR_MEPC:
                h->mepc = value & ~1ULL;
                break;
        case CSR_MCAUSE:
                h->mcause = value;
                break;
        case CSR_MTVAL:
                h->mtval = value;
                break;
        case CSR_MIP: {
                uint64_t writable = MIP_SSIP | MIP_SEIP | ((h->menvcfg & MENVCFG_STCE) ? 0 : MIP_STIP);
                h->mip_sw = (h->mip_sw & ~writable) | (value & writable);
                break;
        }
        case CSR_PMPCFG0 ... CSR_PMPCFG15:
                if (csr & 1)
                        return -1;
                for (unsigned i = 0; i < 8; i++) {
                        unsigned e = (csr - CSR_PMPCFG0) * 4 + i;
                        uint8_t cfg = value >> (8 * i);
                        if (e >= ELEMENTSOF(h->pmp.cfg) || (h->pmp.cfg[e] & 0x80))
                                continue;
                        /* W without R is reserved: keep the entry's permissions consistent. */
                        if ((cfg & 3) == 2)
                                cfg &= ~2;
                        h->pmp.cfg[e] = cfg & 0x9f;
                }
                hart_tlb_flush_all(h);
                break;
        case CSR_PMPADDR0 ... CSR_PMPADDR63: {
                unsigned e = csr - CSR_PMPADDR0;
                if (e < ELEMENTSOF(h->pmp.cfg) && !pmp_entry_locked(h, e)) {
                        h->pmp.addr[e] = value & ((1ULL << 54) - 1);
                        hart_tlb_flush_all(h);
                }
                break;
        }
        case CSR_MCYCLE:
        case CSR_MINSTRET:
                /*
                 * hart_run() counts the writing instruction as retired right after it; the write
                 * replaces that increment, so the next instruction reads 'value' (Zicsr).
                 */
                h->instret = value - 1;
                break;
        case CSR_MHPMCOUNTER3 ... CSR_MHPMCOUNTER31:
        case CSR_TSELECT ... CSR_TDATA3:
                break;
        default:
                return -1;
        }

        return 0;
}

int csr_write(Hart *h, unsigned csr, uint64_t value) {
        if (h->priv < ((csr >> 8) & 3) || (csr >> 10) == 3)
                return -1;

        switch ((csr >> 8) & 3) {
        case PRIV_U:
                return write_user(h, csr, value);
        case PRIV_S:
                return write_supervisor(h, csr, value);
        case PRIV_M:
                return write_machine(h, csr, value);
        default:
                return -1;      /* hypervisor CSRs: no H extension */
        }
}

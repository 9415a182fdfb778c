/* SPDX-License-Identifier: MIT */
/*
 * The hart's API for the rest of the machine (hart.h): registers by
 * number, stopping and sleeping, and state save/load. Engine-independent:
 * everything here works on the architectural state in hart-internal.h.
 */

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "hart-internal.h"
#include "jit/jit.h"
#include "macro.h"

void hart_request_stop(Hart *h) {
        hart_end_slice(h);
        atomic_store_explicit(&h->kick, true, memory_order_release);
}

void hart_sleep_until(Hart *h, uint64_t deadline_ns) {
        struct timespec ts = {
                .tv_sec = (time_t) (deadline_ns / 1000000000ULL),
                .tv_nsec = (long) (deadline_ns % 1000000000ULL),
        };

        pthread_mutex_lock(&h->wfi_lock);
        if (!atomic_load(&h->kick))
                pthread_cond_timedwait(&h->wfi_cond, &h->wfi_lock, &ts);
        pthread_mutex_unlock(&h->wfi_lock);
}

uint64_t hart_timer_deadline(Hart *h) {
        return (h->menvcfg & MENVCFG_STCE) ? h->stimecmp : UINT64_MAX;
}

uint64_t hart_instret(Hart *h) {
        return __atomic_load_n(&h->instret, __ATOMIC_RELAXED);
}

void hart_flush_caches(Hart *h) {
        hart_tlb_flush_all(h);
        /* Decoded instructions are tagged by their bits: stale ones never match. Translations are not. */
        jit_request_flush(h->jit);
}

/* CSR access with M-mode rights (a debugger's view), keeping the hart's privilege. */
static int csr_access(Hart *h, unsigned csr, bool write, uint64_t *value) {
        unsigned priv = h->priv;
        int r;

        h->priv = PRIV_M;
        r = write ? csr_write(h, csr, *value) : csr_read(h, csr, value);
        h->priv = priv;
        if (write)
                hart_update_regime(h);
        return r < 0 ? -EINVAL : 0;
}

int hart_get_reg(Hart *h, unsigned reg, uint64_t *ret) {
        uint64_t v;

        if (reg < 32)
                v = h->x[reg];
        else if (reg == HART_REG_PC)
                v = h->pc;
        else if (reg >= HART_REG_F0 && reg < HART_REG_F0 + 32)
                v = h->fpu.f[reg - HART_REG_F0];
        else if (reg == HART_REG_FCSR)
                v = (uint64_t) h->fpu.frm << 5 | h->fpu.fflags;
        else if (reg == HART_REG_PRIV)
                v = h->priv;
        else if (reg >= HART_REG_CSR0 && reg < _HART_REG_END) {
                int r = csr_access(h, reg - HART_REG_CSR0, false, &v);
                if (r < 0)
                        return r;
        } else
                return -EINVAL;
        *ret = v;
        return 0;
}

int hart_set_reg(Hart *h, unsigned reg, uint64_t value) {
        if (reg < 32) {
                if (reg != 0)
                        h->x[reg] = value;
        } else if (reg == HART_REG_PC)
                h->pc = value & ~1ULL;
        else if (reg >= HART_REG_F0 && reg < HART_REG_F0 + 32)
                h->fpu.f[reg - HART_REG_F0] = value;
        else if (reg == HART_REG_FCSR) {
                if (value > 0xff)
                        return -EINVAL;
                h->fpu.fflags = value & 0x1f;
                h->fpu.frm = (value >> 5) & 7;
        } else if (reg == HART_REG_PRIV) {
                if (value != PRIV_U && value != PRIV_S && value != PRIV_M)
                        return -EINVAL;
                h->priv = (unsigned) value;
                hart_update_regime(h);
        } else if (reg >= HART_REG_CSR0 && reg < _HART_REG_END)
                return csr_access(h, reg - HART_REG_CSR0, true, &value);
        else
                return -EINVAL;
        return 0;
}

/* ---- state ---- */

#define STATE_VERSION 1

/* The CSRs kept as plain fields, saved and loaded in this order. */
#define FOR_EACH_CSR_FIELD(X)                                                                   \
        X(mstatus) X(misa) X(medeleg) X(mideleg) X(mie) X(mip_sw) X(mtvec) X(stvec) X(mscratch) \
        X(sscratch) X(mepc) X(sepc) X(mcause) X(scause) X(mtval) X(stval) X(mcounteren)         \
        X(scounteren) X(mcountinhibit) X(menvcfg) X(senvcfg) X(satp) X(stimecmp)

typedef struct HartState {
        uint64_t x[32], pc, f[32], instret, reservation;
        uint32_t fflags, frm, priv;
        bool in_wfi;
        Pmp pmp;
#define FIELD(name) uint64_t name;
        FOR_EACH_CSR_FIELD(FIELD)
#undef FIELD
} HartState;

int hart_save(Hart *h, StateWriter *w) {
        state_put_u32(w, STATE_VERSION);
        for (unsigned i = 0; i < 32; i++)
                state_put_u64(w, h->x[i]);
        state_put_u64(w, h->pc);
        state_put_u32(w, h->priv);
        for (unsigned i = 0; i < 32; i++)
                state_put_u64(w, h->fpu.f[i]);
        state_put_u32(w, h->fpu.fflags);
        state_put_u32(w, h->fpu.frm);
#define PUT(name) state_put_u64(w, h->name);
        FOR_EACH_CSR_FIELD(PUT)
#undef PUT
        state_put_bytes(w, h->pmp.cfg, sizeof(h->pmp.cfg));
        for (unsigned i = 0; i < ELEMENTSOF(h->pmp.addr); i++)
                state_put_u64(w, h->pmp.addr[i]);
        state_put_u64(w, h->reservation);
        state_put_u64(w, h->instret);
        state_put_bool(w, h->in_wfi);
        return state_writer_error(w);
}

int hart_load(Hart *h, StateReader *r) {
        HartState s = {};
        uint32_t version;

        state_get_u32_max(r, STATE_VERSION, &version);
        for (unsigned i = 0; i < 32; i++)
                state_get_u64(r, &s.x[i]);
        state_get_u64(r, &s.pc);
        state_get_u32_max(r, PRIV_M, &s.priv);
        for (unsigned i = 0; i < 32; i++)
                state_get_u64(r, &s.f[i]);
        state_get_u32_max(r, 0x1f, &s.fflags);
        state_get_u32_max(r, 7, &s.frm);
#define GET(name) state_get_u64(r, &s.name);
        FOR_EACH_CSR_FIELD(GET)
#undef GET
        state_get_bytes(r, s.pmp.cfg, sizeof(s.pmp.cfg));
        for (unsigned i = 0; i < ELEMENTSOF(s.pmp.addr); i++)
                state_get_u64(r, &s.pmp.addr[i]);
        state_get_u64(r, &s.reservation);
        state_get_u64(r, &s.instret);
        state_get_bool(r, &s.in_wfi);
        if (state_reader_error(r) < 0)
                return state_reader_error(r);
        if (version != STATE_VERSION || s.priv == 2 || s.x[0] != 0 || (s.pc & 1) || s.misa != h->misa)
                return -ERANGE;

        memcpy(h->x, s.x, sizeof(s.x));
        h->pc = s.pc;
        h->priv = s.priv;
        memcpy(h->fpu.f, s.f, sizeof(s.f));
        h->fpu.fflags = s.fflags;
        h->fpu.frm = s.frm;
#define SET(name) h->name = s.name;
        FOR_EACH_CSR_FIELD(SET)
#undef SET
        h->pmp = s.pmp;
        h->reservation = s.reservation;
        h->instret = s.instret;
        h->in_wfi = s.in_wfi;
        /* A loaded state comes with its own RAM (Machine1.Load into a VM that ran): nothing cached stays. */
        hart_flush_caches(h);
        hart_update_regime(h);
        return 0;
}

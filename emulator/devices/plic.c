/* SPDX-License-Identifier: MIT */
/*
 * PLIC: see plic.h for the register map, the gateway semantics and the
 * threading rules.
 */

#include <errno.h>
#include <pthread.h>
#include <libfdt.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "devices/plic.h"
#include "machine/fdt.h"

#define PLIC_WORDS ((PLIC_NUM_SOURCES + 31) / 32)

#define PLIC_PRIORITY_BASE   0x000000ULL
#define PLIC_PENDING_BASE    0x001000ULL
#define PLIC_ENABLE_BASE     0x002000ULL
#define PLIC_ENABLE_STRIDE   0x80ULL
#define PLIC_CONTEXT_BASE    0x200000ULL
#define PLIC_CONTEXT_STRIDE  0x1000ULL
#define PLIC_CONTEXT_THRESHOLD 0x0ULL
#define PLIC_CONTEXT_CLAIM     0x4ULL

_Static_assert(PLIC_NUM_SOURCES >= 2 && PLIC_NUM_SOURCES <= 1024, "PLIC source count out of the spec's range");
_Static_assert(PLIC_WORDS * 4 <= PLIC_ENABLE_STRIDE, "enable words overflow their stride");
_Static_assert(PLIC_CONTEXT_BASE + PLIC_CONTEXT_STRIDE * 2 * PLIC_MAX_HARTS <= MEMMAP_PLIC_SIZE,
               "PLIC contexts do not fit the window");
_Static_assert(PLIC_ENABLE_BASE + PLIC_ENABLE_STRIDE * 2 * PLIC_MAX_HARTS <= PLIC_CONTEXT_BASE,
               "PLIC enable blocks overlap the context blocks");

typedef struct PlicContext {
        uint32_t enable[PLIC_WORDS];
        uint32_t threshold;
        bool output;            /* last level reported to set_external */
} PlicContext;

/*
 * All fields are protected by 'lock' (except the constants set in
 * plic_new(): num_contexts, set_external, opaque).
 */
struct Plic {
        pthread_mutex_t lock;

        PlicSetExternal set_external;
        void *opaque;

        uint32_t priority[PLIC_NUM_SOURCES];
        uint32_t level[PLIC_WORDS];     /* wire levels, as driven by plic_set_irq() */
        uint32_t pending[PLIC_WORDS];
        uint32_t claimed[PLIC_WORDS];   /* claimed and not yet completed */

        unsigned num_contexts;
        PlicContext contexts[];
};

/* Bits of source ids that exist: source 0 and ids >= PLIC_NUM_SOURCES read 0. */
static uint32_t valid_mask(unsigned word) {
        uint32_t mask = UINT32_MAX;
        unsigned first = word * 32;

        if (first + 32 > PLIC_NUM_SOURCES)
                mask = (1U << (PLIC_NUM_SOURCES - first)) - 1;
        if (word == 0)
                mask &= ~1U;
        return mask;
}

static bool bit_get(const uint32_t *words, unsigned source) {
        return words[source / 32] & (1U << (source % 32));
}

static void bit_set(uint32_t *words, unsigned source, bool value) {
        if (value)
                words[source / 32] |= 1U << (source % 32);
        else
                words[source / 32] &= ~(1U << (source % 32));
}

/* The source a claim by context 'c' would return: 0 if none. Lock held. */
static unsigned plic_best_locked(const Plic *plic, unsigned c) {
        const PlicContext *ctx = &plic->contexts[c];
        unsigned best = 0;
        uint32_t best_priority = ctx->threshold;

        for (unsigned w = 0; w < PLIC_WORDS; w++) {
                uint32_t bits = plic->pending[w] & ctx->enable[w] & valid_mask(w);

                while (bits) {
                        unsigned source = w * 32 + (unsigned) __builtin_ctz(bits);

                        bits &= bits - 1;
                        /* Strictly greater: ties keep the lowest id, found first. */
                        if (plic->priority[source] > best_priority) {
                                best = source;
                                best_priority = plic->priority[source];
                        }
                }
        }

        return best;
}

/* Recompute every context's output and report the ones that changed. Lock held. */
static void plic_update_locked(Plic *plic) {
        for (unsigned c = 0; c < plic->num_contexts; c++) {
                PlicContext *ctx = &plic->contexts[c];
                bool output = plic_best_locked(plic, c) != 0;

                if (output == ctx->output)
                        continue;

                ctx->output = output;
                if (plic->set_external)
                        plic->set_external(plic->opaque, c / 2, (c % 2) == 0, output);
        }
}

int plic_new(unsigned num_harts, PlicSetExternal set_external, void *opaque, Plic **ret) {
        _cleanup_free_ Plic *plic = NULL;
        unsigned num_contexts;
        int r;

        if (!ret)
                return -EINVAL;
        if (num_harts < 1 || num_harts > PLIC_MAX_HARTS)
                return -EINVAL;

        num_contexts = num_harts * 2;
        plic = calloc(1, sizeof(Plic) + num_contexts * sizeof(PlicContext));
        if (!plic)
                return -ENOMEM;

        r = pthread_mutex_init(&plic->lock, NULL);
        if (r != 0)
                return -r;

        plic->set_external = set_external;
        plic->opaque = opaque;
        plic->num_contexts = num_contexts;

        *ret = TAKE_PTR(plic);
        return 0;
}

Plic *plic_free(Plic *plic) {
        if (!plic)
                return NULL;

        pthread_mutex_destroy(&plic->lock);
        free(plic);
        return NULL;
}

void plic_reset(Plic *plic) {
        pthread_mutex_lock(&plic->lock);

        for (unsigned s = 0; s < PLIC_NUM_SOURCES; s++)
                plic->priority[s] = 0;
        for (unsigned w = 0; w < PLIC_WORDS; w++) {
                plic->claimed[w] = 0;
                plic->pending[w] = plic->level[w] & valid_mask(w);
        }
        for (unsigned c = 0; c < plic->num_contexts; c++) {
                for (unsigned w = 0; w < PLIC_WORDS; w++)
                        plic->contexts[c].enable[w] = 0;
                plic->contexts[c].threshold = 0;
        }

        plic_update_locked(plic);
        pthread_mutex_unlock(&plic->lock);
}

void plic_set_irq(Plic *plic, unsigned source, bool level) {
        if (!plic || source == 0 || source >= PLIC_NUM_SOURCES)
                return;

        pthread_mutex_lock(&plic->lock);

        bit_set(plic->level, source, level);
        /* The gateway holds a claimed source until completion; otherwise pending follows the wire. */
        if (!bit_get(plic->claimed, source))
                bit_set(plic->pending, source, level);

        plic_update_locked(plic);
        pthread_mutex_unlock(&plic->lock);
}

void plic_irq_line_set(void *opaque, unsigned number, bool level) {
        plic_set_irq(opaque, number, level);
}

bool plic_get_external(Plic *plic, unsigned hart, bool machine_mode) {
        unsigned c;
        bool output;

        if (!plic || hart >= plic->num_contexts / 2)
                return false;

        c = hart * 2 + (machine_mode ? 0 : 1);

        pthread_mutex_lock(&plic->lock);
        output = plic->contexts[c].output;
        pthread_mutex_unlock(&plic->lock);

        return output;
}

static uint32_t plic_claim_locked(Plic *plic, unsigned c) {
        unsigned source = plic_best_locked(plic, c);

        if (source == 0)
                return 0;

        bit_set(plic->pending, source, false);
        bit_set(plic->claimed, source, true);
        plic_update_locked(plic);
        return source;
}

static void plic_complete_locked(Plic *plic, unsigned c, uint32_t source) {
        /* Completions of sources that do not exist or are not enabled for this context are ignored (spec). */
        if (source == 0 || source >= PLIC_NUM_SOURCES)
                return;
        if (!bit_get(plic->contexts[c].enable, source))
                return;

        bit_set(plic->claimed, source, false);
        bit_set(plic->pending, source, bit_get(plic->level, source));
        plic_update_locked(plic);
}

/* Decodes a context-block offset; returns false if it is not a context register. */
static bool decode_context(const Plic *plic, uint64_t offset, unsigned *ret_context, uint64_t *ret_reg) {
        uint64_t c;

        if (offset < PLIC_CONTEXT_BASE)
                return false;

        c = (offset - PLIC_CONTEXT_BASE) / PLIC_CONTEXT_STRIDE;
        if (c >= plic->num_contexts)
                return false;

        *ret_context = (unsigned) c;
        *ret_reg = (offset - PLIC_CONTEXT_BASE) % PLIC_CONTEXT_STRIDE;
        return true;
}

/* Decodes an enable-block offset; returns false if it is not an enable word of an existing context. */
static bool decode_enable(const Plic *plic, uint64_t offset, unsigned *ret_context, unsigned *ret_word) {
        uint64_t c, w;

        if (offset < PLIC_ENABLE_BASE || offset >= PLIC_CONTEXT_BASE)
                return false;

        c = (offset - PLIC_ENABLE_BASE) / PLIC_ENABLE_STRIDE;
        w = ((offset - PLIC_ENABLE_BASE) % PLIC_ENABLE_STRIDE) / 4;
        if (c >= plic->num_contexts || w >= PLIC_WORDS)
                return false;

        *ret_context = (unsigned) c;
        *ret_word = (unsigned) w;
        return true;
}

uint64_t plic_mmio_read(void *opaque, uint64_t offset, unsigned size) {
        Plic *plic = opaque;
        uint32_t value = 0;
        unsigned c, w;
        uint64_t reg;

        if (!plic || size != 4 || (offset & 3) != 0)
                return 0;

        pthread_mutex_lock(&plic->lock);

        if (offset < PLIC_PENDING_BASE) {
                uint64_t source = (offset - PLIC_PRIORITY_BASE) / 4;

                if (source >= 1 && source < PLIC_NUM_SOURCES)
                        value = plic->priority[source];

        } else if (offset < PLIC_ENABLE_BASE) {
                uint64_t word = (offset - PLIC_PENDING_BASE) / 4;

                if (word < PLIC_WORDS)
                        value = plic->pending[word] & valid_mask((unsigned) word);

        } else if (decode_enable(plic, offset, &c, &w)) {
                value = plic->contexts[c].enable[w];

        } else if (decode_context(plic, offset, &c, &reg)) {
                if (reg == PLIC_CONTEXT_THRESHOLD)
                        value = plic->contexts[c].threshold;
                else if (reg == PLIC_CONTEXT_CLAIM)
                        value = plic_claim_locked(plic, c);
        }

        pthread_mutex_unlock(&plic->lock);
        return value;
}

void plic_mmio_write(void *opaque, uint64_t offset, uint64_t value, unsigned size) {
        Plic *plic = opaque;
        uint32_t v = (uint32_t) value;
        unsigned c, w;
        uint64_t reg;

        if (!plic || size != 4 || (offset & 3) != 0)
                return;

        pthread_mutex_lock(&plic->lock);

        if (offset < PLIC_PENDING_BASE) {
                uint64_t source = (offset - PLIC_PRIORITY_BASE) / 4;

                if (source >= 1 && source < PLIC_NUM_SOURCES) {
                        plic->priority[source] = v & PLIC_PRIORITY_MAX;
                        plic_update_locked(plic);
                }

        } else if (offset < PLIC_ENABLE_BASE) {
                /* Pending bits are read-only: they follow the gateways. */

        } else if (decode_enable(plic, offset, &c, &w)) {
                plic->contexts[c].enable[w] = v & valid_mask(w);
                plic_update_locked(plic);

        } else if (decode_context(plic, offset, &c, &reg)) {
                if (reg == PLIC_CONTEXT_THRESHOLD) {
                        plic->contexts[c].threshold = v & PLIC_PRIORITY_MAX;
                        plic_update_locked(plic);
                } else if (reg == PLIC_CONTEXT_CLAIM)
                        plic_complete_locked(plic, c, v);
        }

        pthread_mutex_unlock(&plic->lock);
}

const MmioOps plic_mmio_ops = {
        .read = plic_mmio_read,
        .write = plic_mmio_write,
};

/* ---- device descriptor ---- */

static int plic_create(const DeviceContext *ctx, void **ret) {
        return plic_new(ctx->host->num_harts, ctx->host->set_external, ctx->host->opaque, (Plic **) ret);
}

static void plic_device_free(void *dev) {
        plic_free(dev);
}

static void plic_device_reset(void *dev) {
        plic_reset(dev);
}

static int plic_fdt_node(void *dev, const DeviceContext *ctx, void *fdt) {
        static const char compat[] = "sifive,plic-1.0.0\0riscv,plic0";
        int r;

        DT_TRY(dt_begin_device(fdt, "plic", ctx, compat, sizeof(compat)));
        DT_TRY(fdt_property_u32(fdt, "#address-cells", 0));
        DT_TRY(fdt_property_u32(fdt, "#interrupt-cells", 1));
        DT_TRY(fdt_property(fdt, "interrupt-controller", NULL, 0));
        r = dt_prop_hart_interrupts(fdt, ctx->host->num_harts, 11, 9);  /* M-mode, S-mode external */
        if (r < 0)
                return r;
        DT_TRY(fdt_property_u32(fdt, "riscv,ndev", PLIC_NUM_SOURCES - 1));
        DT_TRY(fdt_property_u32(fdt, "phandle", DT_PHANDLE_PLIC));
        return dt_err(fdt_end_node(fdt));
}

/*
 * The wire levels are not saved: they belong to the devices, which drive
 * them again after their own load. Pending and claimed bits are.
 */
static int plic_save(void *dev, StateWriter *w) {
        Plic *plic = dev;

        pthread_mutex_lock(&plic->lock);
        state_put_u32(w, plic->num_contexts);
        for (unsigned s = 0; s < PLIC_NUM_SOURCES; s++)
                state_put_u32(w, plic->priority[s]);
        for (unsigned i = 0; i < PLIC_WORDS; i++) {
                state_put_u32(w, plic->pending[i]);
                state_put_u32(w, plic->claimed[i]);
        }
        for (unsigned c = 0; c < plic->num_contexts; c++) {
                for (unsigned i = 0; i < PLIC_WORDS; i++)
                        state_put_u32(w, plic->contexts[c].enable[i]);
                state_put_u32(w, plic->contexts[c].threshold);
        }
        pthread_mutex_unlock(&plic->lock);
        return state_writer_error(w);
}

static int plic_load(void *dev, StateReader *r) {
        Plic *plic = dev;
        uint32_t n, priority[PLIC_NUM_SOURCES], pending[PLIC_WORDS], claimed[PLIC_WORDS];
        _cleanup_free_ PlicContext *contexts = calloc(plic->num_contexts, sizeof(PlicContext));

        if (!contexts)
                return -ENOMEM;
        state_get_u32(r, &n);
        if (state_reader_error(r) == 0 && n != plic->num_contexts)
                return -ERANGE;
        for (unsigned s = 0; s < PLIC_NUM_SOURCES; s++)
                state_get_u32_max(r, PLIC_PRIORITY_MAX, &priority[s]);
        for (unsigned i = 0; i < PLIC_WORDS; i++) {
                state_get_u32(r, &pending[i]);
                state_get_u32(r, &claimed[i]);
                pending[i] &= valid_mask(i);
                claimed[i] &= valid_mask(i);
        }
        for (unsigned c = 0; c < plic->num_contexts; c++) {
                for (unsigned i = 0; i < PLIC_WORDS; i++) {
                        state_get_u32(r, &contexts[c].enable[i]);
                        contexts[c].enable[i] &= valid_mask(i);
                }
                state_get_u32_max(r, PLIC_PRIORITY_MAX, &contexts[c].threshold);
        }
        if (state_reader_error(r) < 0)
                return state_reader_error(r);
        priority[0] = 0;

        pthread_mutex_lock(&plic->lock);
        memcpy(plic->priority, priority, sizeof(priority));
        memcpy(plic->pending, pending, sizeof(pending));
        memcpy(plic->claimed, claimed, sizeof(claimed));
        for (unsigned c = 0; c < plic->num_contexts; c++) {
                memcpy(plic->contexts[c].enable, contexts[c].enable, sizeof(contexts[c].enable));
                plic->contexts[c].threshold = contexts[c].threshold;
        }
        plic_update_locked(plic);
        pthread_mutex_unlock(&plic->lock);
        return 0;
}

const DeviceDescriptor plic_device = {
        .name = "plic",
        .base = MEMMAP_PLIC_BASE,
        .size = MEMMAP_PLIC_SIZE,
        .access_sizes = DEVICE_ACCESS_4,
        .mmio = &plic_mmio_ops,
        .create = plic_create,
        .free = plic_device_free,
        .reset = plic_device_reset,
        .fdt_node = plic_fdt_node,
        .save = plic_save,
        .load = plic_load,
};

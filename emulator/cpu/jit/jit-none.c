/* SPDX-License-Identifier: MIT */

/* Hosts without a translator: the interpreter is the only engine. */

#include <errno.h>

#include "cpu/hart-internal.h"
#include "jit.h"

bool jit_supported(void) {
        return false;
}

int jit_new(Hart *h, Jit **ret) {
        return -EOPNOTSUPP;
}

Jit *jit_free(Jit *j) {
        return NULL;
}

uint64_t jit_run_slice(Hart *h, uint64_t max) {
        return 0;
}

void jit_invalidate_all(Jit *j) {
}

void jit_fence_i(Jit *j) {
}

void jit_tlb_context_selected(Jit *j, unsigned context) {
}

void jit_tlb_page_flushed(Jit *j, uint64_t va) {
}

void jit_tlb_flushed(Jit *j) {
}

void jit_invalidate_page(Jit *j, uint64_t pa) {
}

bool jit_page_has_code(const Jit *j, uint64_t pa) {
        return false;
}

void jit_get_stats(const Jit *j, JitStats *ret) {
        *ret = (JitStats) {};
}

void jit_set_single_block(Jit *j, bool b) {
}

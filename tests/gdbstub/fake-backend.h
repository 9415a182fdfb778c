/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A VM for the gdbstub session without a bus: registers, 64 KiB of memory
 * at FAKE_MEM_BASE (everything else faults), and a record of the calls,
 * for the protocol unit test and the fuzz target.
 */

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "session.h"

#define FAKE_MEM_BASE 0x80000000ULL
#define FAKE_MEM_SIZE 65536

typedef struct FakeVm {
        uint64_t x[33];                 /* x0-x31, pc */
        uint64_t f[32];
        uint64_t fcsr, priv, csr[4096];
        uint8_t mem[FAKE_MEM_SIZE];
        unsigned stops, resumes, steps, detaches;
        char last_kind[16];
        uint64_t last_addr;
        uint32_t last_len;
        bool last_add;
        unsigned n_points;
} FakeVm;

static int fake_stop(void *u) {
        ((FakeVm *) u)->stops++;
        return 0;
}

static int fake_resume(void *u, bool step) {
        FakeVm *vm = u;
        if (step)
                vm->steps++;
        else
                vm->resumes++;
        return 0;
}

static int fake_detach(void *u) {
        FakeVm *vm = u;
        vm->detaches++;
        vm->n_points = 0;
        return 0;
}

static int fake_get_registers(void *u, uint64_t regs[33]) {
        memcpy(regs, ((FakeVm *) u)->x, sizeof(((FakeVm *) u)->x));
        return 0;
}

static int fake_set_registers(void *u, const uint64_t regs[33]) {
        FakeVm *vm = u;
        memcpy(vm->x + 1, regs + 1, 32 * sizeof(uint64_t));
        return 0;
}

static uint64_t *fake_reg(FakeVm *vm, uint32_t n) {
        if (n < 33)
                return &vm->x[n];
        if (n < 65)
                return &vm->f[n - 33];
        if (n == 65)
                return &vm->fcsr;
        if (n == 66)
                return &vm->priv;
        if (n >= 0x1000 && n < 0x2000)
                return &vm->csr[n - 0x1000];
        return NULL;
}

static int fake_get_register(void *u, uint32_t n, uint64_t *ret) {
        uint64_t *r = fake_reg(u, n);
        if (!r)
                return -22;
        *ret = *r;
        return 0;
}

static int fake_set_register(void *u, uint32_t n, uint64_t v) {
        uint64_t *r = fake_reg(u, n);
        if (!r || n == 0)
                return -22;
        *r = v;
        return 0;
}

static bool fake_range(uint64_t addr, size_t len) {
        return addr >= FAKE_MEM_BASE && addr - FAKE_MEM_BASE <= FAKE_MEM_SIZE && len <= FAKE_MEM_SIZE - (addr - FAKE_MEM_BASE);
}

static int fake_read_memory(void *u, uint64_t addr, void *buf, size_t len) {
        if (!fake_range(addr, len))
                return -14;
        memcpy(buf, ((FakeVm *) u)->mem + (addr - FAKE_MEM_BASE), len);
        return 0;
}

static int fake_write_memory(void *u, uint64_t addr, const void *buf, size_t len) {
        if (!fake_range(addr, len))
                return -14;
        memcpy(((FakeVm *) u)->mem + (addr - FAKE_MEM_BASE), buf, len);
        return 0;
}

static int fake_breakpoint(void *u, bool add, const char *kind, uint64_t addr, uint32_t len) {
        FakeVm *vm = u;
        if (strlen(kind) >= sizeof(vm->last_kind))
                return -22;
        strcpy(vm->last_kind, kind);
        vm->last_addr = addr;
        vm->last_len = len;
        vm->last_add = add;
        if (add)
                vm->n_points++;
        else if (vm->n_points > 0)
                vm->n_points--;
        return 0;
}

static const SessionBackend fake_backend = {
        .stop = fake_stop,
        .resume = fake_resume,
        .detach = fake_detach,
        .get_registers = fake_get_registers,
        .set_registers = fake_set_registers,
        .get_register = fake_get_register,
        .set_register = fake_set_register,
        .read_memory = fake_read_memory,
        .write_memory = fake_write_memory,
        .breakpoint = fake_breakpoint,
};

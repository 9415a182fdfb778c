/* SPDX-License-Identifier: MIT */
/*
 * Device state: the StateWriter/StateReader encoding, and for every device
 * of the machine's table a save → load into a fresh instance → save round
 * trip that must give the same bytes, plus loads that must be refused
 * (short, out of range) without changing the device.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/hart.h"
#include "devices/clint.h"
#include "devices/goldfish_rtc.h"
#include "devices/plic.h"
#include "devices/sifive_test.h"
#include "devices/state.h"
#include "devices/uart16550.h"
#include "machine/memmap.h"
#include "machine/physmem.h"
#include "macro.h"
#include "tap.h"

static uint64_t fake_time(void *opaque) {
        return 12345;
}

static uint64_t fake_realtime(void *opaque) {
        return 1700000000ULL * 1000000000ULL;
}

typedef struct Fixture {
        PhysMem mem;
        Hart *hart;
        DeviceHost host;
        Plic *plic;
} Fixture;

static void fixture_init(Fixture *f) {
        *f = (Fixture) {};
        f->hart = hart_new(&f->mem, 0, fake_time, NULL);
        f->host = (DeviceHost) {
                .opaque = f,
                .harts = &f->hart,
                .num_harts = 1,
                .mtime = fake_time,
                .realtime_ns = fake_realtime,
        };
        (void) plic_new(1, NULL, NULL, &f->plic);
}

static void fixture_done(Fixture *f) {
        plic_free(f->plic);
        hart_free(f->hart);
}

static DeviceContext context(Fixture *f, const DeviceDescriptor *d) {
        DeviceContext ctx = {
                .host = &f->host,
                .mem = &f->mem,
                .base = d->base,
                .size = d->size,
                .irq_number = d->irq,
        };
        if (d->irq)
                ctx.irq = plic_irq_line(f->plic, d->irq);
        return ctx;
}

static void test_encoding(void) {
        StateWriter w = {};
        uint8_t u8, bytes[3];
        uint16_t u16;
        uint32_t u32;
        uint64_t u64;
        bool b;

        state_put_u8(&w, 0xab);
        state_put_u16(&w, 0x1234);
        state_put_u32(&w, 0xdeadbeef);
        state_put_u64(&w, 0x0102030405060708ULL);
        state_put_bool(&w, true);
        state_put_bytes(&w, "xyz", 3);
        CHECK_EQ_U64(state_writer_error(&w), 0, "writer: no error");
        CHECK_EQ_U64(w.size, 1 + 2 + 4 + 8 + 1 + 3, "writer: fields packed without padding");
        CHECK(w.data[1] == 0x34 && w.data[2] == 0x12, "writer: little-endian");

        StateReader r = state_reader(w.data, w.size);
        state_get_u8(&r, &u8);
        state_get_u16(&r, &u16);
        state_get_u32(&r, &u32);
        state_get_u64(&r, &u64);
        state_get_bool(&r, &b);
        state_get_bytes(&r, bytes, 3);
        CHECK_EQ_U64(state_reader_finish(&r), 0, "reader: consumed all, no error");
        CHECK(u8 == 0xab && u16 == 0x1234 && u32 == 0xdeadbeef && u64 == 0x0102030405060708ULL && b &&
              memcmp(bytes, "xyz", 3) == 0, "reader: values back");

        r = state_reader(w.data, w.size);
        CHECK_EQ_U64(state_get_u8_max(&r, 0xaa, &u8), (uint64_t) -ERANGE, "reader: value above max refused");
        CHECK_EQ_U64(state_get_u16(&r, &u16), (uint64_t) -ERANGE, "reader: errors stick");

        r = state_reader(w.data, 5);
        state_get_u8(&r, &u8);
        state_get_u16(&r, &u16);
        CHECK_EQ_U64(state_get_u32(&r, &u32), (uint64_t) -EBADMSG, "reader: short buffer refused");

        r = state_reader(w.data, w.size);
        state_get_u8(&r, &u8);
        CHECK_EQ_U64(state_reader_finish(&r), (uint64_t) -EBADMSG, "reader: trailing bytes refused by finish");

        uint8_t one = 2;
        r = state_reader(&one, 1);
        CHECK_EQ_U64(state_get_bool(&r, &b), (uint64_t) -ERANGE, "reader: a bool is 0 or 1");
        state_writer_done(&w);
}

typedef void (*Poke)(const DeviceDescriptor *d, void *dev);

/* save → load into a fresh instance → save: the same bytes; short and corrupt input refused. */
static void round_trip(Fixture *f, const DeviceDescriptor *d, Poke poke, size_t corrupt_offset, uint8_t corrupt_value) {
        DeviceContext ctx = context(f, d);
        void *a = NULL, *b = NULL;
        StateWriter w1 = {}, w2 = {}, w3 = {};
        int r;

        CHECK_EQ_U64(d->create(&ctx, &a), 0, "%s: create", d->name);
        CHECK_EQ_U64(d->create(&ctx, &b), 0, "%s: create a second", d->name);
        if (!a || !b)
                return;
        d->reset(a);
        d->reset(b);
        if (poke)
                poke(d, a);

        CHECK_EQ_U64(d->save(a, &w1), 0, "%s: save", d->name);
        StateReader rd = state_reader(w1.data, w1.size);
        r = d->load(b, &rd);
        CHECK_EQ_U64(r, 0, "%s: load", d->name);
        CHECK_EQ_U64(state_reader_finish(&rd), 0, "%s: load consumed the whole state", d->name);
        CHECK_EQ_U64(d->save(b, &w2), 0, "%s: save the loaded one", d->name);
        CHECK(w1.size == w2.size && memcmp(w1.data, w2.data, w1.size) == 0, "%s: the same state back (%zu bytes)",
              d->name, w1.size);

        /* A fresh instance saved differs from the poked one (the test can fail). */
        if (poke) {
                StateWriter w0 = {};
                void *c = NULL;
                d->create(&ctx, &c);
                d->reset(c);
                d->save(c, &w0);
                CHECK(w0.size != w1.size || memcmp(w0.data, w1.data, w1.size) != 0, "%s: poked state is saved",
                      d->name);
                d->free(c);
                state_writer_done(&w0);
        }

        if (w1.size > 0) {
                rd = state_reader(w1.data, w1.size - 1);
                r = d->load(b, &rd);
                CHECK(r < 0, "%s: a short state is refused (%d)", d->name, r);
        }
        if (corrupt_offset != SIZE_MAX && corrupt_offset < w1.size) {
                w1.data[corrupt_offset] = corrupt_value;
                rd = state_reader(w1.data, w1.size);
                r = d->load(b, &rd);
                CHECK_EQ_U64(r, (uint64_t) -ERANGE, "%s: an out-of-range field is refused", d->name);
                /* ... and b is unchanged. */
                d->save(b, &w3);
                CHECK(w3.size == w2.size && memcmp(w3.data, w2.data, w2.size) == 0, "%s: refused load changed nothing",
                      d->name);
        }
        d->free(a);
        d->free(b);
        state_writer_done(&w1);
        state_writer_done(&w2);
        state_writer_done(&w3);
}

static void poke_clint(const DeviceDescriptor *d, void *dev) {
        d->mmio->write(dev, 0x4000, 0x1122334455ULL, 8);
        d->mmio->write(dev, 0x0, 1, 4);
}

static void poke_plic(const DeviceDescriptor *d, void *dev) {
        d->mmio->write(dev, 4 * 10, 5, 4);              /* priority of source 10 */
        d->mmio->write(dev, 0x2000, 1u << 10, 4);       /* context 0 enables source 10 */
        d->mmio->write(dev, 0x200000, 3, 4);            /* context 0 threshold */
        plic_set_irq(dev, 10, true);
}

static void poke_uart(const DeviceDescriptor *d, void *dev) {
        d->mmio->write(dev, 1, 0x05, 1);        /* IER */
        d->mmio->write(dev, 7, 0x42, 1);        /* SCR */
        uart_receive(dev, (const uint8_t *) "hello", 5);
        (void) d->mmio->read(dev, 0, 1);        /* takes the 'h': the FIFO wraps from an offset */
}

static void poke_rtc(const DeviceDescriptor *d, void *dev) {
        d->mmio->write(dev, 0x10, 1, 4);        /* IRQ_ENABLED */
        d->mmio->write(dev, 0x0c, 0, 4);        /* ALARM_HIGH */
        d->mmio->write(dev, 0x08, 0x1000, 4);   /* ALARM_LOW: arms */
}

/* The hart through its API: registers by number, then save -> load -> save. */
static void test_hart(Fixture *f) {
        _cleanup_(hart_freep) Hart *a = hart_new(&f->mem, 0, fake_time, NULL);
        _cleanup_(hart_freep) Hart *b = hart_new(&f->mem, 0, fake_time, NULL);
        StateWriter w1 = {}, w2 = {}, w0 = {};
        uint64_t v = 0;

        if (!a || !b)
                return;
        hart_reset(a, 0x80000000);
        hart_reset(b, 0);
        CHECK(hart_get_reg(a, HART_REG_PC, &v) == 0 && v == 0x80000000, "pc after reset");
        CHECK(hart_get_reg(a, HART_REG_PRIV, &v) == 0 && v == PRIV_M, "M mode after reset");
        CHECK(hart_set_reg(a, 0, 5) == 0 && hart_get_reg(a, 0, &v) == 0 && v == 0, "x0 stays 0");
        CHECK(hart_set_reg(a, 10, 0xabcd) == 0 && hart_get_reg(a, 10, &v) == 0 && v == 0xabcd, "a0 written");
        CHECK(hart_set_reg(a, HART_REG_F0 + 3, 0x400921fb54442d18ULL) == 0, "f3 written");
        CHECK(hart_set_reg(a, HART_REG_FCSR, 0x41) == 0 && hart_get_reg(a, HART_REG_FCSR, &v) == 0 && v == 0x41,
              "fcsr written (frm 2, NX)");
        CHECK(hart_set_reg(a, HART_REG_CSR0 + 0x341, 0x80001234) == 0 &&
              hart_get_reg(a, HART_REG_CSR0 + 0x341, &v) == 0 && v == 0x80001234, "mepc through the CSR numbers");
        CHECK(hart_set_reg(a, HART_REG_CSR0 + 0x30a, 1ULL << 63) == 0, "menvcfg.STCE set");
        CHECK(hart_set_reg(a, HART_REG_CSR0 + 0x14d, 777) == 0, "stimecmp written");
        CHECK_EQ_U64(hart_timer_deadline(a), 777, "Sstc deadline follows stimecmp");
        CHECK_EQ_U64(hart_timer_deadline(b), UINT64_MAX, "no Sstc deadline without STCE");
        CHECK(hart_get_reg(a, HART_REG_CSR0 + 0x7a0, &v) == 0 && v == 0, "tselect reads 0");
        CHECK_EQ_U64(hart_get_reg(a, HART_REG_CSR0 + 0x0ff, &v), (uint64_t) -EINVAL, "unknown CSR: -EINVAL");
        CHECK_EQ_U64(hart_get_reg(a, 67, &v), (uint64_t) -EINVAL, "unknown register number: -EINVAL");
        CHECK_EQ_U64(hart_set_reg(a, HART_REG_PRIV, 2), (uint64_t) -EINVAL, "privilege 2 refused");
        CHECK(hart_set_reg(a, HART_REG_PRIV, PRIV_S) == 0, "switch to S");

        CHECK_EQ_U64(hart_save(a, &w1), 0, "hart: save");
        StateReader r = state_reader(w1.data, w1.size);
        CHECK_EQ_U64(hart_load(b, &r), 0, "hart: load");
        CHECK_EQ_U64(state_reader_finish(&r), 0, "hart: whole state consumed");
        CHECK_EQ_U64(hart_save(b, &w2), 0, "hart: save the loaded one");
        CHECK(w1.size == w2.size && memcmp(w1.data, w2.data, w1.size) == 0, "hart: the same state back (%zu bytes)",
              w1.size);
        CHECK(hart_get_reg(b, 10, &v) == 0 && v == 0xabcd && hart_get_reg(b, HART_REG_PRIV, &v) == 0 && v == PRIV_S,
              "hart: registers and privilege loaded");

        /* Privilege (after the version, x0..x31 and pc) must be U, S or M. */
        size_t priv_at = 4 + 32 * 8 + 8;
        w1.data[priv_at] = 2;
        r = state_reader(w1.data, w1.size);
        CHECK_EQ_U64(hart_load(b, &r), (uint64_t) -ERANGE, "hart: privilege 2 refused");
        w1.data[priv_at] = PRIV_S;
        w1.data[4 + 8] = 1;     /* x1 fine, but ... */
        w1.data[4] = 1;         /* ... x0 != 0 is not */
        r = state_reader(w1.data, w1.size);
        CHECK_EQ_U64(hart_load(b, &r), (uint64_t) -ERANGE, "hart: x0 != 0 refused");
        r = state_reader(w1.data, 100);
        CHECK(hart_load(b, &r) < 0, "hart: short state refused");
        CHECK_EQ_U64(hart_save(b, &w0), 0, "hart: save after the refusals");
        CHECK(w0.size == w2.size && memcmp(w0.data, w2.data, w2.size) == 0, "hart: refused loads changed nothing");
        state_writer_done(&w0);
        state_writer_done(&w1);
        state_writer_done(&w2);
}

/* Whether the PLIC has 'source' pending (its pending registers from 0x1000 on). */
static bool plic_pending(Fixture *f, unsigned source) {
        return (plic_device.mmio->read(f->plic, 0x1000 + 4 * (source / 32), 4) >> (source % 32)) & 1;
}

/*
 * A loaded device drives its interrupt line even at the level it already
 * drove: the PLIC's state is loaded too, and its pending bit for the
 * source must follow the device's loaded level, not what the stream's PLIC
 * section said. (Otherwise what a refused load rolls back to depends on
 * the levels driven before it.)
 */
static void test_load_drives_irq(Fixture *f, const DeviceDescriptor *d, Poke raise) {
        DeviceContext dctx = context(f, d), pctx = context(f, &plic_device);
        void *dev = NULL, *quiet_plic = NULL;
        StateWriter dw = {}, pw = {};
        StateReader r;

        CHECK_EQ_U64(d->create(&dctx, &dev), 0, "%s irq: create on the fixture's PLIC", d->name);
        CHECK_EQ_U64(plic_device.create(&pctx, &quiet_plic), 0, "%s irq: create a PLIC with nothing pending", d->name);
        if (!dev || !quiet_plic)
                goto out;
        d->reset(dev);
        raise(d, dev);
        CHECK(plic_pending(f, d->irq), "%s irq: the device's interrupt is pending at the PLIC", d->name);
        CHECK_EQ_U64(d->save(dev, &dw), 0, "%s irq: save the device", d->name);
        CHECK_EQ_U64(plic_device.save(quiet_plic, &pw), 0, "%s irq: save a PLIC with nothing pending", d->name);

        r = state_reader(pw.data, pw.size);
        CHECK_EQ_U64(plic_device.load(f->plic, &r), 0, "%s irq: load that PLIC state", d->name);
        CHECK(!plic_pending(f, d->irq), "%s irq: now nothing is pending", d->name);
        r = state_reader(dw.data, dw.size);
        CHECK_EQ_U64(d->load(dev, &r), 0, "%s irq: load the device's own state again", d->name);
        CHECK(plic_pending(f, d->irq), "%s irq: the loaded level is pending at the PLIC again", d->name);
out:
        if (dev)
                d->free(dev);
        if (quiet_plic)
                plic_device.free(quiet_plic);
        state_writer_done(&dw);
        state_writer_done(&pw);
}

int main(void) {
        Fixture f;

        test_encoding();
        fixture_init(&f);
        /* clint: msip[0] (after the count u32 and mtimecmp u64) must be 0 or 1. */
        round_trip(&f, &clint_device, poke_clint, 4 + 8, 2);
        /* plic: the priority of source 1, after the context count, must be <= 7. */
        round_trip(&f, &plic_device, poke_plic, 4 + 4, 8);
        /* uart: rx_count must be <= the FIFO size. */
        round_trip(&f, &uart16550_device, poke_uart, 1, 0xff);
        /* rtc: alarm_armed (a bool after offset, two u32 and alarm) must be 0 or 1. */
        round_trip(&f, &goldfish_rtc_device, poke_rtc, 8 + 4 + 4 + 8, 2);
        /* sifive-test: only a version, which must be 0. */
        round_trip(&f, &sifive_test_device, NULL, 0, 1);
        test_hart(&f);
        /* Received bytes with their interrupt enabled; an alarm in the past with IRQ_ENABLED. */
        test_load_drives_irq(&f, &uart16550_device, poke_uart);
        test_load_drives_irq(&f, &goldfish_rtc_device, poke_rtc);
        fixture_done(&f);
        return tap_finish();
}

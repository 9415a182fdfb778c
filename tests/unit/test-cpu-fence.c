/* SPDX-License-Identifier: MIT */
/*
 * FENCE against a device on another thread, on whichever engine
 * $ORRERY_CPU_ENGINE selects: the "store buffering" litmus test.
 *
 * A virtio driver and its device meet exactly like this. The driver
 * re-enables interrupts (a store), runs FENCE RW,RW and looks for more
 * used buffers (a load); the device publishes a used buffer (a store),
 * fences and looks whether interrupts are wanted (a load). If neither sees
 * the other's store, the driver sleeps and no interrupt comes: a lost
 * completion, a guest stalled until some other request finishes. The
 * device threads run on other host CPUs, whose stores may pass a later
 * load (x86's store buffer), so the guest's FENCE must order its stores
 * before its loads on the host too.
 *
 * Per trial i: a host thread (the device) writes GO = i, waits a varying
 * few nanoseconds, stores Y = i, fences and loads X; the guest, spinning on
 * GO, stores X = i, runs FENCE RW,RW and loads Y. Both loading the old
 * value is forbidden by RVWMO with the fence. Without it, the same program
 * shows the outcome on an x86 host (checked below too, so that the test is
 * known to be able to see it here; how often depends on the host).
 */

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#include "harness.h"
#include "macro.h"
#include "tap.h"

#define TRIALS 100000
#define MIN_TRIALS 10000        /* on a loaded host the deadline may come first: at least this many */
#define DEADLINE_SEC 60         /* against hangs; the trials are not timed */
#define GO (DATA_BASE + 0x000)
#define X (DATA_BASE + 0x100)
#define Y (DATA_BASE + 0x200)
#define R (DATA_BASE + 0x300)   /* what the guest loaded from Y */
#define ACK (DATA_BASE + 0x400) /* the trial the guest has finished */

static TestHart *t;

typedef struct Device {
        pthread_t thread;
        _Atomic uint32_t *go, *x, *y, *r, *ack;
        unsigned trials;        /* run so far */
        unsigned both_old;      /* trials where neither side saw the other's store */
        atomic_bool done;
} Device;

static double now_sec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint32_t wait_ack(Device *d, uint32_t want) {
        for (unsigned spins = 0;; spins++) {
                uint32_t a = atomic_load_explicit(d->ack, memory_order_acquire);
                if (a == want)
                        return a;
                if (spins > 1000)
                        sched_yield(); /* on a loaded host the hart's thread may need this CPU */
        }
}

static void *device_main(void *userdata) {
        Device *d = userdata;
        double deadline = now_sec() + DEADLINE_SEC;

        for (uint32_t i = 1; i <= TRIALS && now_sec() < deadline; i++) {
                wait_ack(d, i - 1);
                atomic_store_explicit(d->go, i, memory_order_relaxed);
                /* Sweep the store across the guest's window: 0-127 iterations after GO. */
                for (volatile unsigned n = (i * 37) & 127; n > 0; n--)
                        ;
                atomic_store_explicit(d->y, i, memory_order_relaxed);
                atomic_thread_fence(memory_order_seq_cst);
                uint32_t x = atomic_load_explicit(d->x, memory_order_relaxed);
                wait_ack(d, i);
                uint32_t r = atomic_load_explicit(d->r, memory_order_relaxed);
                if (x != i && r != i)
                        d->both_old++;
                d->trials = i;
        }
        atomic_store(&d->done, true);
        return NULL;
}

/* x10 = DATA_BASE, x5 = trial, x6 = TRIALS + 1. */
static void emit_program(bool fence) {
        th_org(t, CODE_BASE);
        uint64_t wait = th_emit(t, LW(7, 10, GO - DATA_BASE));
        uint64_t branch = th_emit(t, 0);
        th_store(t, branch, 4, BNE(7, 5, (int32_t) (wait - branch)));
        th_emit(t, SW(5, 10, X - DATA_BASE));
        th_emit(t, fence ? FENCE() : ADDI(0, 0, 0));
        th_emit(t, LW(8, 10, Y - DATA_BASE));
        th_emit(t, SW(8, 10, R - DATA_BASE));
        th_emit(t, SW(5, 10, ACK - DATA_BASE));
        th_emit(t, ADDI(5, 5, 1));
        branch = th_emit(t, 0);
        th_store(t, branch, 4, BNE(5, 6, (int32_t) (wait - branch)));
        th_emit(t, JAL(0, 0));
}

/* Returns the trials where both loads saw the old values; *ret_trials is how many ran. */
static unsigned litmus(bool fence, unsigned *ret_trials) {
        Device d = {
                .go = (_Atomic uint32_t *) th_ptr(t, GO, 4),
                .x = (_Atomic uint32_t *) th_ptr(t, X, 4),
                .y = (_Atomic uint32_t *) th_ptr(t, Y, 4),
                .r = (_Atomic uint32_t *) th_ptr(t, R, 4),
                .ack = (_Atomic uint32_t *) th_ptr(t, ACK, 4),
        };
        for (uint64_t a = GO; a <= ACK; a += 0x100)
                th_store(t, a, 4, 0);
        emit_program(fence);
        t->hart.x[10] = DATA_BASE;
        t->hart.x[5] = 1;
        t->hart.x[6] = TRIALS + 1;
        th_jump(t, CODE_BASE, PRIV_M);

        if (pthread_create(&d.thread, NULL, device_main, &d) != 0)
                abort();
        while (!atomic_load(&d.done)) {
                uint64_t before = t->hart.x[5];
                th_run(t, 1 << 12);
                /* Spinning on GO: if the device's thread shares this CPU, let it run. */
                if (t->hart.x[5] == before)
                        sched_yield();
        }
        pthread_join(d.thread, NULL);
        *ret_trials = d.trials;
        return d.both_old;
}

int main(void) {
        _cleanup_th_ TestHart *owned = th_new();
        t = owned;

        unsigned trials;
        unsigned unfenced = litmus(false, &trials);
        printf("# without FENCE: %u of %u trials saw neither store\n", unfenced, trials);
        unsigned fenced = litmus(true, &trials);
        CHECK(trials >= MIN_TRIALS, "at least %d trials ran with FENCE (%u)", MIN_TRIALS, trials);
        CHECK(fenced == 0, "with FENCE RW,RW, a store is never passed by a later load: "
              "%u of %u trials saw neither the guest's nor the device's store", fenced, trials);
        return tap_finish();
}

/* SPDX-License-Identifier: MIT */
/*
 * I/O thread pool: see workers.h.
 */

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include "macro.h"
#include "block/workers.h"

#define WORKERS_MAX 64U

struct BlockWorkers {
        pthread_mutex_t lock;
        pthread_cond_t work;            /* a job was queued, or quit */
        pthread_cond_t idle;            /* busy dropped to 0 with nothing queued */
        BlockJob *head, *tail;
        unsigned busy;
        bool quit;
        unsigned n_threads;
        pthread_t threads[WORKERS_MAX];
};

static void *worker_main(void *arg) {
        BlockWorkers *w = arg;

        pthread_mutex_lock(&w->lock);
        for (;;) {
                BlockJob *job;

                while (!w->head && !w->quit)
                        pthread_cond_wait(&w->work, &w->lock);
                if (!w->head)
                        break;

                job = w->head;
                w->head = job->next;
                if (!w->head)
                        w->tail = NULL;
                w->busy++;
                pthread_mutex_unlock(&w->lock);

                job->run(job);

                pthread_mutex_lock(&w->lock);
                w->busy--;
                if (w->busy == 0 && !w->head)
                        pthread_cond_broadcast(&w->idle);
        }
        pthread_mutex_unlock(&w->lock);
        return NULL;
}

int block_workers_new(unsigned n, BlockWorkers **ret) {
        BlockWorkers *w;
        sigset_t all, old;
        int r = 0;

        if (n == 0 || n > WORKERS_MAX || !ret)
                return -EINVAL;

        w = calloc(1, sizeof(BlockWorkers));
        if (!w)
                return -ENOMEM;
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->work, NULL);
        pthread_cond_init(&w->idle, NULL);

        /* Signals belong to the event loop, never to an I/O thread. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        for (unsigned i = 0; i < n; i++) {
                r = -pthread_create(&w->threads[i], NULL, worker_main, w);
                if (r < 0)
                        break;
                w->n_threads++;
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);

        if (r < 0) {
                block_workers_free(w);
                return r;
        }
        *ret = w;
        return 0;
}

BlockWorkers *block_workers_free(BlockWorkers *w) {
        if (!w)
                return NULL;

        pthread_mutex_lock(&w->lock);
        w->quit = true;
        pthread_cond_broadcast(&w->work);
        pthread_mutex_unlock(&w->lock);
        for (unsigned i = 0; i < w->n_threads; i++)
                pthread_join(w->threads[i], NULL);

        pthread_cond_destroy(&w->idle);
        pthread_cond_destroy(&w->work);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return NULL;
}

void block_workers_submit(BlockWorkers *w, BlockJob *job) {
        job->next = NULL;
        pthread_mutex_lock(&w->lock);
        if (w->tail)
                w->tail->next = job;
        else
                w->head = job;
        w->tail = job;
        pthread_cond_signal(&w->work);
        pthread_mutex_unlock(&w->lock);
}

void block_workers_drain(BlockWorkers *w) {
        pthread_mutex_lock(&w->lock);
        while (w->head || w->busy > 0)
                pthread_cond_wait(&w->idle, &w->lock);
        pthread_mutex_unlock(&w->lock);
}

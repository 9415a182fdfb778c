/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A small pool of I/O threads: jobs are run in submission order by
 * whichever thread is free, so they complete out of order. The CPU thread
 * submits (a mutex and a condition variable, never a wait for I/O); a job
 * runs without any lock of the pool held.
 */

#include <stdbool.h>

typedef struct BlockJob BlockJob;
struct BlockJob {
        void (*run)(BlockJob *job);     /* on a worker thread; may free the job */
        BlockJob *next;
};

typedef struct BlockWorkers BlockWorkers;

#define BLOCK_WORKERS_DEFAULT 4U

/* Starts n (1..64) threads. Returns 0 or a negative errno. */
int block_workers_new(unsigned n, BlockWorkers **ret);
/* Runs every job already submitted, then joins the threads. Returns NULL. */
BlockWorkers *block_workers_free(BlockWorkers *w);
/* Queues a job. Any thread. */
void block_workers_submit(BlockWorkers *w, BlockJob *job);
/* Waits until no job is queued or running. Not from a job. */
void block_workers_drain(BlockWorkers *w);

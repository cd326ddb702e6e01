/* A small fork-join thread pool owned by a context (never global). The
 * calling thread takes part as thread 0. Tasks are claimed dynamically, so
 * results that must be deterministic are written per TASK (not per thread). */
#ifndef AIBOX_POOL_H
#define AIBOX_POOL_H

#include <stdatomic.h>

#include "core/core.h"

typedef struct aibox_pool aibox_pool;
typedef void (*aibox_task_fn)(void *arg, int task, int thread);

/* threads >= 1; threads - 1 workers are started. */
AIBOX_INTERNAL aibox_status aibox_pool_create(aibox_pool **p, int threads, aibox_error *err);
AIBOX_INTERNAL void aibox_pool_free(aibox_pool **p);
/* 1 for a NULL pool. */
AIBOX_INTERNAL int aibox_pool_threads(const aibox_pool *p);
/* Runs fn(arg, task, thread) for task in [0, n_tasks) and returns when all
 * are done. A NULL pool runs them in order on the caller. Not reentrant. */
AIBOX_INTERNAL void aibox_pool_run(aibox_pool *p, int n_tasks, aibox_task_fn fn, void *arg);
/* A spinning barrier for the tasks of one aibox_pool_run with n_tasks at
 * most the pool's threads, so that each task has a thread of its own (a task
 * waits only for tasks that are running). For steps a few microseconds
 * long, where waking a sleeping thread would cost more than the step:
 * waiters spin (yielding the CPU after a while), never sleep. */
typedef struct aibox_barrier {
    atomic_int arrived;
    atomic_uint phase;
    int parties;
} aibox_barrier;
AIBOX_INTERNAL void aibox_barrier_init(aibox_barrier *b, int parties);
AIBOX_INTERNAL void aibox_barrier_wait(aibox_barrier *b);
/* Default thread count: $AIBOX_THREADS if set, else the online CPUs. */
AIBOX_INTERNAL int aibox_default_threads(void);

#endif

/* Fork-join pool: workers spin for a while after a job (layers follow each
 * other within microseconds), then sleep on a condition variable. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "core/pool.h"

/* How long a worker waiting for the next job, or the caller waiting for a
 * job's end, spins before it sleeps: a forward pass hands layers to the pool
 * within microseconds of each other, and waking a sleeping thread cost tens
 * of microseconds on this project's VMs (a two-thread float MobileNet spent a
 * fifth of its time in futex wake-ups). Spinning yields the CPU now and then. */
#define SPIN_NS 100000

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Spins while *v == old, for at most SPIN_NS; 1 when it changed. */
static int spin_while(atomic_uint *v, unsigned old)
{
    long long t0 = 0;
    for (unsigned spins = 1; atomic_load_explicit(v, memory_order_acquire) == old; spins++) {
        cpu_relax();
        if (spins % 256 == 0) {
            long long t = now_ns();
            if (!t0) t0 = t;
            else if (t - t0 > SPIN_NS) return 0;
            if (spins % 4096 == 0) sched_yield(); /* a runnable thread on this CPU (a data loader) gets its turn */
        }
    }
    return 1;
}

struct aibox_pool {
    int threads;
    pthread_t *tid;
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    atomic_uint generation; /* bumped per job */
    atomic_int next;        /* next task to claim */
    atomic_uint active;     /* workers still busy with the current job */
    int n_tasks;
    aibox_task_fn fn;
    void *arg;
    int stop;
};

typedef struct {
    aibox_pool *p;
    int index;
} worker_arg;

static void claim_tasks(aibox_pool *p, int thread)
{
    int t;
    while ((t = atomic_fetch_add(&p->next, 1)) < p->n_tasks) p->fn(p->arg, t, thread);
}

static void *worker(void *v)
{
    worker_arg wa = *(worker_arg *)v;
    free(v);
    aibox_pool *p = wa.p;
    unsigned seen = 0; /* the generation at creation: a job posted before this thread ran still counts */
    for (;;) {
        spin_while(&p->generation, seen);
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->generation) == seen && !p->stop) pthread_cond_wait(&p->wake, &p->mu);
        int stop = p->stop;
        pthread_mutex_unlock(&p->mu);
        if (stop) return NULL;
        seen = atomic_load(&p->generation);
        claim_tasks(p, wa.index);
        if (atomic_fetch_sub(&p->active, 1) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

aibox_status aibox_pool_create(aibox_pool **out, int threads, aibox_error *err)
{
    *out = NULL;
    if (threads < 1 || threads > 1024) return aibox_fail(err, AIBOX_E_INVALID, "threads: %d (1 to 1024)", threads);
    aibox_pool *p = calloc(1, sizeof *p);
    if (!p) return aibox_fail(err, AIBOX_E_NOMEM, "threads: out of memory");
    p->threads = threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    if (threads > 1) {
        p->tid = calloc((size_t)threads, sizeof *p->tid);
        if (!p->tid) {
            aibox_pool_free(&p);
            return aibox_fail(err, AIBOX_E_NOMEM, "threads: out of memory");
        }
        for (int i = 1; i < threads; i++) {
            worker_arg *wa = malloc(sizeof *wa);
            if (!wa || pthread_create(&p->tid[i], NULL, worker, (wa->p = p, wa->index = i, wa))) {
                free(wa);
                p->threads = i; /* join only the started ones */
                aibox_pool_free(&p);
                return aibox_fail(err, AIBOX_E_NOMEM, "threads: cannot start thread %d", i);
            }
        }
    }
    *out = p;
    return AIBOX_OK;
}

void aibox_pool_free(aibox_pool **pp)
{
    if (!pp || !*pp) return;
    aibox_pool *p = *pp;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->threads; i++)
        if (p->tid) pthread_join(p->tid[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p->tid);
    free(p);
    *pp = NULL;
}

int aibox_pool_threads(const aibox_pool *p) { return p ? p->threads : 1; }

void aibox_pool_run(aibox_pool *p, int n_tasks, aibox_task_fn fn, void *arg)
{
    if (n_tasks <= 0) return;
    if (!p || p->threads == 1 || n_tasks == 1) {
        for (int t = 0; t < n_tasks; t++) fn(arg, t, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn, p->arg = arg, p->n_tasks = n_tasks;
    atomic_store(&p->next, 0);
    atomic_store(&p->active, p->threads - 1);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    claim_tasks(p, 0);
    /* wait for the workers: spin first, then sleep */
    for (unsigned left; (left = atomic_load(&p->active)) > 0 && spin_while(&p->active, left);) {
    }
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->active) > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

void aibox_barrier_init(aibox_barrier *b, int parties)
{
    atomic_init(&b->arrived, 0);
    atomic_init(&b->phase, 0);
    b->parties = parties;
}

void aibox_barrier_wait(aibox_barrier *b)
{
    /* the phase is read before arriving: the last arrival resets the count
     * and only then opens the phase, so the next round starts from zero */
    unsigned phase = atomic_load_explicit(&b->phase, memory_order_acquire);
    if (atomic_fetch_add_explicit(&b->arrived, 1, memory_order_acq_rel) == b->parties - 1) {
        atomic_store_explicit(&b->arrived, 0, memory_order_relaxed);
        atomic_store_explicit(&b->phase, phase + 1, memory_order_release);
        return;
    }
    while (!spin_while(&b->phase, phase)) { /* never sleeps: spin_while yields now and then */
    }
}

int aibox_default_threads(void)
{
    const char *e = getenv("AIBOX_THREADS");
    if (e && *e) {
        int n = atoi(e);
        if (n >= 1 && n <= 1024) return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n >= 1 ? (int)(n > 64 ? 64 : n) : 1;
}

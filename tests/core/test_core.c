/* Core: version, status strings, seeded generators, tensors and views,
 * aligned allocation, the thread pool. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "aibox.h"
#include "core/pool.h"

static void test_version(void **state)
{
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", AIBOX_VERSION_MAJOR, AIBOX_VERSION_MINOR, AIBOX_VERSION_PATCH);
    assert_string_equal(aibox_version(), want);
    assert_string_equal(AIBOX_VERSION, want);
    assert_int_equal(AIBOX_VERSION_NUMBER, AIBOX_VERSION_MAJOR * 10000 + AIBOX_VERSION_MINOR * 100 + AIBOX_VERSION_PATCH);
}

static void test_strerror(void **state)
{
    /* every code has its own non-empty text */
    for (int a = AIBOX_OK; a <= AIBOX_E_NONFINITE; a++) {
        assert_true(strlen(aibox_strerror((aibox_status)a)) > 3);
        for (int b = AIBOX_OK; b < a; b++) assert_string_not_equal(aibox_strerror(a), aibox_strerror(b));
    }
    assert_string_equal(aibox_strerror((aibox_status)999), "unknown status");
}

static void test_rng(void **state)
{
    aibox_rng a, b, c;
    aibox_rng_seed(&a, 42);
    aibox_rng_seed(&b, 42);
    aibox_rng_seed(&c, 43);
    int differs = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = aibox_rng_u64(&a), y = aibox_rng_u64(&b), z = aibox_rng_u64(&c);
        assert_true(x == y);
        differs += x != z;
    }
    assert_true(differs > 95);
    /* moments of uniform, normal and below() over many draws */
    double su = 0, su2 = 0, sn = 0, sn2 = 0;
    int hist[7] = {0};
    const int N = 200000;
    for (int i = 0; i < N; i++) {
        float u = aibox_rng_uniform(&a), n = aibox_rng_normal(&a);
        assert_true(u >= 0.0f && u < 1.0f);
        assert_true(isfinite(n));
        su += u, su2 += u * u, sn += n, sn2 += (double)n * n;
        hist[aibox_rng_below(&a, 7)]++;
    }
    assert_true(fabs(su / N - 0.5) < 0.005);
    assert_true(fabs(su2 / N - 1.0 / 3) < 0.005);
    assert_true(fabs(sn / N) < 0.01);
    assert_true(fabs(sn2 / N - 1.0) < 0.02);
    for (int k = 0; k < 7; k++) assert_true(abs(hist[k] - N / 7) < N / 7 / 20);
    assert_int_equal(aibox_rng_below(&a, 0), 0);
}

static void test_tensor(void **state)
{
    aibox_tensor t, v, r;
    aibox_error e = {0};
    assert_int_equal(aibox_tensor_create(&t, 4, (int[]){3, 2, 5, 7}, &e), AIBOX_OK);
    assert_int_equal(aibox_tensor_count(&t), 3 * 2 * 5 * 7);
    assert_int_equal((uintptr_t)t.data % 64, 0);
    for (size_t i = 0; i < aibox_tensor_count(&t); i++) {
        assert_true(t.data[i] == 0.0f);
        t.data[i] = (float)i;
    }
    assert_int_equal(aibox_tensor_view(&v, &t, 1, 2, &e), AIBOX_OK);
    assert_int_equal(v.owns, 0);
    assert_int_equal(v.shape[0], 2);
    assert_true(v.data[0] == 70.0f);
    assert_int_equal(aibox_tensor_view(&v, &t, 2, 2, &e), AIBOX_E_SHAPE);
    assert_true(strlen(e.msg) > 0);
    assert_int_equal(aibox_tensor_reshape(&r, &t, 2, (int[]){6, 35}, &e), AIBOX_OK);
    assert_true(r.data[35] == 35.0f);
    assert_int_equal(aibox_tensor_reshape(&r, &t, 2, (int[]){6, 36}, &e), AIBOX_E_SHAPE);
    aibox_tensor_free(&v); /* a view: frees nothing */
    assert_true(t.data[0] == 0.0f);
    aibox_tensor_free(&t);
    assert_null(t.data);
    aibox_tensor_free(&t); /* twice is harmless */
    assert_int_equal(aibox_tensor_create(&t, 5, (int[]){1, 1, 1, 1, 1}, &e), AIBOX_E_INVALID);
    assert_int_equal(aibox_tensor_create(&t, 2, (int[]){-1, 3}, &e), AIBOX_E_INVALID);
    assert_int_equal(aibox_tensor_create(&t, 4, (int[]){1 << 30, 1 << 30, 1 << 30, 1 << 30}, &e), AIBOX_E_INVALID);
    assert_non_null(strstr(e.msg, "overflow"));
    void *p = aibox_alloc(1);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % 64, 0);
    aibox_free(p);
    assert_null(aibox_alloc(SIZE_MAX - 10));
}

typedef struct {
    int hits[64];
    int threads_seen[8];
} pool_job;

static void pool_task(void *arg, int task, int thread)
{
    pool_job *j = arg;
    __atomic_add_fetch(&j->hits[task], 1, __ATOMIC_RELAXED);
    __atomic_store_n(&j->threads_seen[thread], 1, __ATOMIC_RELAXED);
}

static void test_pool(void **state)
{
    aibox_error e = {0};
    aibox_pool *p = NULL;
    assert_int_equal(aibox_pool_create(&p, 3, &e), AIBOX_OK);
    assert_int_equal(aibox_pool_threads(p), 3);
    for (int rep = 0; rep < 2000; rep++) { /* many short jobs: no lost wake-ups */
        pool_job j = {{0}, {0}};
        int n = 1 + rep % 40;
        aibox_pool_run(p, n, pool_task, &j);
        for (int t = 0; t < 64; t++) assert_int_equal(j.hits[t], t < n ? 1 : 0);
        for (int t = 3; t < 8; t++) assert_int_equal(j.threads_seen[t], 0);
    }
    aibox_pool_free(&p);
    assert_null(p);
    pool_job j = {{0}, {0}};
    aibox_pool_run(NULL, 5, pool_task, &j); /* no pool: inline */
    assert_int_equal(j.hits[4], 1);
    assert_int_equal(aibox_pool_create(&p, 0, &e), AIBOX_E_INVALID);
    assert_true(aibox_default_num_threads() >= 1);
}

/* A team of tasks in rounds: after each barrier every task sees every
 * other task's write of that round (none from the next). */
typedef struct {
    aibox_barrier bar;
    int parties, rounds, bad;
    atomic_int slot[4];
} barrier_job;

static void barrier_task(void *arg, int task, int thread)
{
    (void)thread;
    barrier_job *j = arg;
    for (int r = 1; r <= j->rounds; r++) {
        atomic_store(&j->slot[task], r);
        aibox_barrier_wait(&j->bar);
        for (int t = 0; t < j->parties; t++)
            if (atomic_load(&j->slot[t]) != r) __atomic_add_fetch(&j->bad, 1, __ATOMIC_RELAXED);
        aibox_barrier_wait(&j->bar); /* nobody writes round r + 1 before all have read round r */
    }
}

static void test_barrier(void **state)
{
    (void)state;
    aibox_error e = {0};
    for (int threads = 2; threads <= 4; threads++) {
        aibox_pool *p = NULL;
        assert_int_equal(aibox_pool_create(&p, threads, &e), AIBOX_OK);
        for (int parties = 2; parties <= threads; parties++) {
            barrier_job j = {.parties = parties, .rounds = 1000};
            aibox_barrier_init(&j.bar, parties);
            for (int t = 0; t < 4; t++) atomic_init(&j.slot[t], 0);
            aibox_pool_run(p, parties, barrier_task, &j);
            assert_int_equal(j.bad, 0);
        }
        aibox_pool_free(&p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version), cmocka_unit_test(test_strerror), cmocka_unit_test(test_rng),
        cmocka_unit_test(test_tensor),  cmocka_unit_test(test_pool),    cmocka_unit_test(test_barrier),
    };
    return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}

/* The training loop on a synthetic batch source: learning, determinism,
 * interruption + resume reproducing the uninterrupted run bit for bit, early
 * stopping with best-weight restore, and the files it writes. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "aibox.h"

enum { N = 48, B = 8, S = 8 };

/* 3 classes of 8x8 images: horizontal bar, vertical bar, diagonal; the
 * epoch's order is a seeded shuffle of (seed, epoch), like the loader. */
typedef struct {
    float x[N * S * S];
    int y[N];
    int order[N];
    float batch[B * S * S];
    int labels[B];
    int pos;
    uint64_t seed;
    int poison_epoch, epoch; /* from that epoch on, one pixel of every batch is +Inf (-1: never) */
} toy;

static void toy_make(toy *t, uint64_t seed)
{
    aibox_rng r;
    aibox_rng_seed(&r, seed);
    for (int i = 0; i < N; i++) {
        float *im = t->x + i * S * S;
        int cls = i % 3, p = 1 + (int)aibox_rng_below(&r, 6);
        for (int j = 0; j < S * S; j++) im[j] = 0.3f * aibox_rng_uniform(&r);
        for (int k = 0; k < S; k++) im[cls == 0 ? p * S + k : cls == 1 ? k * S + p : k * S + k] += 1.0f;
        t->y[i] = cls;
    }
    t->seed = seed;
    t->poison_epoch = -1;
}

static aibox_status toy_begin(void *user, int epoch, aibox_error *err)
{
    toy *t = user;
    aibox_rng r;
    aibox_rng_seed(&r, t->seed * 1000 + (uint64_t)epoch);
    for (int i = 0; i < N; i++) t->order[i] = i;
    for (int i = N - 1; i > 0; i--) {
        int j = (int)aibox_rng_below(&r, (uint32_t)i + 1), k = t->order[i];
        t->order[i] = t->order[j], t->order[j] = k;
    }
    t->pos = 0;
    t->epoch = epoch;
    return AIBOX_OK;
}

static aibox_status toy_next(void *user, const float **x, const int **labels, int *n, aibox_error *err)
{
    toy *t = user;
    int k = 0;
    for (; k < B && t->pos < N; k++, t->pos++) {
        memcpy(t->batch + k * S * S, t->x + t->order[t->pos] * S * S, sizeof(float) * S * S);
        t->labels[k] = t->y[t->order[t->pos]];
    }
    if (t->poison_epoch >= 0 && t->epoch >= t->poison_epoch) t->batch[5] = INFINITY;
    *x = t->batch, *labels = t->labels, *n = k;
    return AIBOX_OK;
}

static aibox_model *toy_model(void)
{
    aibox_model *m = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_model_create(&m, 1, S, S, &e), AIBOX_OK);
    int h = aibox_relu(m, aibox_conv2d_simple(m, 0, 6, 3, 1, 1));
    h = aibox_maxpool(m, h, &(aibox_pool_opts){.kernel_h = 2, .kernel_w = 2});
    h = aibox_batchnorm(m, h, 1e-3f, 0.1f);
    h = aibox_dropout(m, aibox_flatten(m, h), 0.2f);
    aibox_dense(m, h, 3, 1);
    assert_int_equal(aibox_model_finish(m, 11, &e), AIBOX_OK);
    const char *names[] = {"horizontal", "vertical", "diag\"onal"};
    assert_int_equal(aibox_model_set_meta_strs(m, "aibox.class_names", 3, names, &e), AIBOX_OK);
    return m;
}

static char dir[64];

typedef struct {
    int stop_after_batches, batches;
    volatile int *flag;
} stopper;

static void on_progress(void *user, const aibox_train_progress *p)
{
    stopper *s = user;
    if (!p->end_of_epoch && ++s->batches == s->stop_after_batches) *s->flag = 1;
}

static aibox_status run(aibox_model *m, const char *out, const char *resume, int epochs, int patience, int stop_after,
                        aibox_train_result *res, aibox_error *e)
{
    static toy tr, va;
    toy_make(&tr, 1);
    toy_make(&va, 2);
    aibox_batch_source train = {&tr, N, toy_begin, toy_next, NULL}, val = {&va, N, toy_begin, toy_next, NULL};
    volatile int flag = 0;
    stopper st = {stop_after, 0, &flag};
    aibox_train_opts o = {.epochs = epochs,
                          .optim = {.kind = AIBOX_ADAM, .lr = 1e-2f},
                          .patience = patience,
                          .seed = 5,
                          .out_dir = out,
                          .resume = resume,
                          .stop = &flag,
                          .on_progress = on_progress,
                          .user = &st};
    return aibox_train(m, &train, B, &val, &o, 2, res, e);
}

static int same_params(aibox_model *a, aibox_model *b)
{
    size_t n = 0;
    for (int i = 1; i < aibox_model_node_count(a); i++)
        for (int k = 0; k < 2; k++) {
            size_t ca, cb;
            float *pa = aibox_model_node_param(a, i, k, &ca), *pb = aibox_model_node_param(b, i, k, &cb);
            if (ca != cb || (ca && memcmp(pa, pb, ca * sizeof(float)))) return 0;
            pa = aibox_model_node_state(a, i, k, &ca), pb = aibox_model_node_state(b, i, k, &cb);
            if (ca != cb || (ca && memcmp(pa, pb, ca * sizeof(float)))) return 0;
            n += ca;
        }
    return n > 0;
}

static void test_learns_and_is_deterministic(void **state)
{
    aibox_model *a = toy_model(), *b = toy_model();
    aibox_error e = {0};
    aibox_train_result ra, rb;
    char out[128];
    snprintf(out, sizeof out, "%s/a", dir);
    assert_int_equal(run(a, out, NULL, 12, 0, -1, &ra, &e), AIBOX_OK);
    assert_int_equal(run(b, NULL, NULL, 12, 0, -1, &rb, &e), AIBOX_OK);
    printf("# best val acc %.3f (epoch %d), first 100 %% at epoch %d\n", ra.best_val_acc, ra.best_epoch + 1,
           ra.first_perfect_epoch + 1);
    assert_true(ra.best_val_acc >= 0.95f);
    assert_int_equal(ra.epochs_run, 12);
    assert_true(same_params(a, b)); /* same data, seed and threads: the same model */
    /* files: csv with a header and 12 rows, metrics with a 3x3 confusion */
    char path[256], line[256];
    snprintf(path, sizeof path, "%s/train.csv", out);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int lines = 0;
    while (fgets(line, sizeof line, f)) lines++;
    fclose(f);
    assert_int_equal(lines, 13);
    snprintf(path, sizeof path, "%s/metrics.json", out);
    f = fopen(path, "r");
    assert_non_null(f);
    char json[4096] = {0};
    assert_true(fread(json, 1, sizeof json - 1, f) > 0);
    fclose(f);
    assert_non_null(strstr(json, "\"confusion\""));
    assert_non_null(strstr(json, "\"diag\\\"onal\"")); /* escaped class name */
    /* the pictures: curves of the 12 epochs and the confusion matrix, as PNG */
    const char *pics[2] = {"results.png", "confusion.png"};
    for (int i = 0; i < 2; i++) {
        aibox_image img = {0};
        snprintf(path, sizeof path, "%s/%s", out, pics[i]);
        assert_int_equal(aibox_image_load(&img, path, 0, &e), AIBOX_OK);
        assert_int_equal(img.channels, 3);
        assert_true(i ? img.width > 300 && img.height > 300 : img.width == 1120 && img.height == 400);
        aibox_image_free(&img);
    }
    snprintf(path, sizeof path, "%s/best.aibox", out);
    aibox_model *best = NULL;
    assert_int_equal(aibox_model_load(&best, path, &e), AIBOX_OK);
    assert_true(same_params(best, a)); /* the returned model is the best epoch's */
    aibox_model_free(&best);
    aibox_model_free(&a);
    aibox_model_free(&b);
}

static void test_interrupt_and_resume(void **state)
{
    aibox_model *a = toy_model(), *b = toy_model(), *c = NULL;
    aibox_error e = {0};
    aibox_train_result ra, rb;
    char out_a[128], out_b[128], last[160];
    snprintf(out_a, sizeof out_a, "%s/full", dir);
    snprintf(out_b, sizeof out_b, "%s/cut", dir);
    assert_int_equal(run(a, out_a, NULL, 6, 0, -1, &ra, &e), AIBOX_OK);
    /* stop in the middle of epoch 4 (6 batches per epoch) */
    assert_int_equal(run(b, out_b, NULL, 6, 0, 6 * 3 + 2, &rb, &e), AIBOX_E_INTERRUPTED);
    assert_non_null(strstr(e.msg, "last.aibox"));
    aibox_model_free(&b);
    aibox_image pic = {0}; /* results.png is redrawn after every epoch, not only at the end */
    snprintf(last, sizeof last, "%s/results.png", out_b);
    assert_int_equal(aibox_image_load(&pic, last, 0, &e), AIBOX_OK);
    aibox_image_free(&pic);
    /* resume into a fresh model from the checkpoint */
    c = toy_model();
    snprintf(last, sizeof last, "%s/last.aibox", out_b);
    assert_int_equal(run(c, out_b, last, 6, 0, -1, &rb, &e), AIBOX_OK);
    assert_int_equal(rb.epochs_run, 6);
    assert_true(same_params(a, c));
    assert_int_equal(ra.best_epoch, rb.best_epoch);
    aibox_model_free(&a);
    aibox_model_free(&c);
    /* a checkpoint of another network is refused */
    aibox_model *other = NULL;
    assert_int_equal(aibox_model_create(&other, 1, S, S, &e), AIBOX_OK);
    aibox_dense(other, aibox_flatten(other, 0), 3, 1);
    assert_int_equal(aibox_model_finish(other, 1, &e), AIBOX_OK);
    assert_int_not_equal(run(other, NULL, last, 2, 0, -1, &rb, &e), AIBOX_OK);
    assert_true(strlen(e.msg) > 0);
    aibox_model_free(&other);
}

static void test_early_stopping(void **state)
{
    aibox_model *m = toy_model();
    aibox_error e = {0};
    aibox_train_result r;
    assert_int_equal(run(m, NULL, NULL, 200, 2, -1, &r, &e), AIBOX_OK);
    assert_true(r.stopped_early);
    assert_int_equal(r.epochs_run, r.best_epoch + 1 + 2);
    aibox_model_free(&m);
}

/* Training that diverges stops with a message and never saves that state:
 * an Inf injected into the input from epoch 3 on, and a learning rate of
 * 1e30. The checkpoints keep the last good epoch and load (finite). */
static void test_divergence_stops_and_saves_nothing(void **state)
{
    for (int c = 0; c < 2; c++) {
        static toy tr, va;
        toy_make(&tr, 1);
        toy_make(&va, 2);
        if (c == 0) tr.poison_epoch = 2;
        aibox_batch_source train = {&tr, N, toy_begin, toy_next, NULL}, val = {&va, N, toy_begin, toy_next, NULL};
        char out[128], path[200];
        snprintf(out, sizeof out, "%s/diverge%d", dir, c);
        aibox_train_opts o = {.epochs = 6, .seed = 5, .out_dir = out,
                              .optim = c == 0 ? (aibox_optim_opts){.kind = AIBOX_ADAM, .lr = 1e-2f}
                                              : (aibox_optim_opts){.kind = AIBOX_SGD, .lr = 1e30f}};
        aibox_model *m = toy_model();
        aibox_error e = {0};
        aibox_train_result r;
        assert_int_equal(aibox_train(m, &train, B, &val, &o, 2, &r, &e), AIBOX_E_NONFINITE);
        printf("# %s: %s\n", c == 0 ? "Inf input from epoch 3" : "lr 1e30", e.msg);
        assert_non_null(strstr(e.msg, "diverged"));
        assert_non_null(strstr(e.msg, "last.aibox"));
        snprintf(path, sizeof path, "%s/last.aibox", out);
        aibox_model *last = NULL;
        assert_int_equal(aibox_model_load(&last, path, &e), AIBOX_OK); /* finite, or the load would refuse it */
        int64_t done = -1;
        assert_int_equal(aibox_model_get_meta_int(last, "aibox.train.epochs_done", &done), AIBOX_OK);
        if (c == 0) assert_int_equal(done, 2); /* the two clean epochs */
        aibox_model_free(&last);
        aibox_model_free(&m);
    }
}

static int mkdir_tmp(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/aibox-train-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int rm_tmp(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_learns_and_is_deterministic),
        cmocka_unit_test(test_interrupt_and_resume),
        cmocka_unit_test(test_early_stopping),
        cmocka_unit_test(test_divergence_stops_and_saves_nothing),
    };
    return cmocka_run_group_tests_name("train", tests, mkdir_tmp, rm_tmp);
}

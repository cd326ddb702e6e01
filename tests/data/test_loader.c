/* The background loader: batches bit-identical across thread counts and
 * runs, every training sample once per epoch with its own label, validation
 * equal to plain preprocessing (never augmented), epochs restartable,
 * errors reported, shards for data-parallel ranks; and the augmentation
 * preview. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf, nftw */
#endif
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "aibox/data.h"

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* A flat dataset: 3 classes, 13 + 11 + 9 images of mixed sizes and channel
 * counts, every one different. */
static char *make_folder(void)
{
    const char *t = getenv("TMPDIR");
    char *root;
    assert_true(asprintf(&root, "%s/aibox_loader_XXXXXX", t && *t ? t : "/tmp") > 0);
    assert_non_null(mkdtemp(root));
    const char *cls[] = {"bolt", "nut", "washer"};
    const int count[] = {13, 11, 9};
    int seed = 1;
    for (int c = 0; c < 3; c++) {
        char *d;
        assert_true(asprintf(&d, "%s/%s", root, cls[c]) > 0);
        mkdir(d, 0777);
        for (int i = 0; i < count[c]; i++, seed++) {
            const int w = 14 + seed % 7, h = 12 + seed % 5, ch = seed % 4 == 0 ? 1 : 3;
            aibox_image img = {w, h, ch, malloc((size_t)w * h * ch)};
            aibox_rng r;
            aibox_rng_seed(&r, (uint64_t)seed);
            for (size_t k = 0; k < (size_t)w * h * ch; k++) img.data[k] = (uint8_t)aibox_rng_below(&r, 256);
            char *p;
            assert_true(asprintf(&p, "%s/%02d.png", d, i) > 0);
            assert_int_equal(aibox_image_write_png(&img, p, NULL), AIBOX_OK);
            free(p);
            free(img.data);
        }
        free(d);
    }
    return root;
}

static void remove_folder(char *root)
{
    nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(root);
}

typedef struct fixture {
    char *root;
    aibox_dataset *ds;
    aibox_preproc pp;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->root = make_folder();
    aibox_dataset_opts o = {.val_split = 0.25f, .seed = 3, .min_samples = 10};
    aibox_error e = {0};
    if (aibox_dataset_open(&f->ds, f->root, &o, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return -1;
    }
    f->pp = (aibox_preproc){.channels = 3, .width = 16, .height = 12, .resize = AIBOX_RESIZE_AREA,
                            .mean = {0.5f, 0.4f, 0.3f}, .std = {0.25f, 0.2f, 0.3f}};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    aibox_dataset_free(&f->ds);
    remove_folder(f->root);
    free(f);
    return 0;
}

static size_t sample_floats(const fixture *f) { return (size_t)f->pp.channels * f->pp.width * f->pp.height; }

/* Every batch of `epochs` epochs, concatenated: x then labels per batch. */
typedef struct run {
    float *x;
    int *labels;
    int n;
} run;

static run collect(const fixture *f, aibox_split split, int batch, int shuffle, unsigned mask, int threads,
                   int first_epoch, int epochs)
{
    aibox_loader *ld;
    aibox_error e = {0};
    aibox_status s = aibox_loader_create(&ld, f->ds, &f->pp, &(aibox_loader_opts){.split = split, .batch = batch, .shuffle = shuffle, .augment = mask, .aug_p = 0.6f, .seed = 42, .threads = threads}, &e);
    if (s) fprintf(stderr, "%s\n", e.msg);
    assert_int_equal(s, AIBOX_OK);
    assert_int_equal(aibox_loader_threads(ld), threads);
    const int per = aibox_loader_samples(ld), sf = (int)sample_floats(f);
    assert_int_equal(per, aibox_dataset_count(f->ds, split));
    assert_int_equal(aibox_loader_batches(ld), (per + batch - 1) / batch);
    run r = {malloc((size_t)per * epochs * sf * sizeof(float)), malloc((size_t)per * epochs * sizeof(int)), 0};
    for (int ep = first_epoch; ep < first_epoch + epochs; ep++) {
        if (ep != 0 || first_epoch != 0) assert_int_equal(aibox_loader_epoch(ld, ep, &e), AIBOX_OK);
        const float *x;
        const int *l;
        int n, batches = 0;
        for (;;) {
            assert_int_equal(aibox_loader_next(ld, &x, &l, &n, &e), AIBOX_OK);
            if (!n) break;
            /* full batches except perhaps the last */
            assert_true(n == batch || (n < batch && r.n % per + n == per));
            memcpy(r.x + (size_t)r.n * sf, x, (size_t)n * sf * sizeof(float));
            memcpy(r.labels + r.n, l, (size_t)n * sizeof(int));
            r.n += n;
            batches++;
        }
        assert_int_equal(batches, aibox_loader_batches(ld));
        assert_int_equal(aibox_loader_next(ld, &x, &l, &n, &e), AIBOX_OK); /* stays at the end */
        assert_int_equal(n, 0);
        assert_null(x);
    }
    assert_int_equal(r.n, per * epochs);
    aibox_loader_free(&ld);
    assert_null(ld);
    return r;
}

static void run_free(run *r)
{
    free(r->x);
    free(r->labels);
}

/* Plain preprocessing of every sample of a split. */
static float *plain(const fixture *f, aibox_split split)
{
    const int n = aibox_dataset_count(f->ds, split);
    const size_t sf = sample_floats(f);
    float *out = malloc((size_t)n * sf * sizeof(float));
    aibox_error e = {0};
    for (int i = 0; i < n; i++) {
        aibox_image img;
        assert_int_equal(aibox_dataset_image(f->ds, split, i, &img, &e), AIBOX_OK);
        assert_int_equal(aibox_preprocess(&f->pp, &img, out + i * sf, &e), AIBOX_OK);
        aibox_image_free(&img);
    }
    return out;
}

/* Which sample a preprocessed row is (-1: none). */
static int identify(const float *row, const float *ref, int n, size_t sf)
{
    for (int i = 0; i < n; i++)
        if (!memcmp(row, ref + i * sf, sf * sizeof(float))) return i;
    return -1;
}

static void test_threads_identical(void **state)
{
    fixture *f = *state;
    const size_t sf = sample_floats(f);
    /* augmented and shuffled, two epochs: 1, 2 and 3 threads, and a rerun */
    run a = collect(f, AIBOX_SPLIT_TRAIN, 4, 1, AIBOX_AUG_ALL, 1, 0, 2);
    run b = collect(f, AIBOX_SPLIT_TRAIN, 4, 1, AIBOX_AUG_ALL, 2, 0, 2);
    run c = collect(f, AIBOX_SPLIT_TRAIN, 4, 1, AIBOX_AUG_ALL, 3, 0, 2);
    run d = collect(f, AIBOX_SPLIT_TRAIN, 4, 1, AIBOX_AUG_ALL, 2, 0, 2);
    const size_t bytes = (size_t)a.n * sf * sizeof(float);
    assert_memory_equal(a.x, b.x, bytes);
    assert_memory_equal(a.x, c.x, bytes);
    assert_memory_equal(a.x, d.x, bytes);
    assert_memory_equal(a.labels, c.labels, (size_t)a.n * sizeof(int));
    /* epoch 1 is another order and other augmentations than epoch 0 */
    const int per = a.n / 2;
    assert_memory_not_equal(a.x, a.x + per * sf, (size_t)per * sf * sizeof(float));
    /* epoch e alone (a fresh loader started at e) equals epoch e of a run */
    run e1 = collect(f, AIBOX_SPLIT_TRAIN, 4, 1, AIBOX_AUG_ALL, 2, 1, 1);
    assert_memory_equal(e1.x, a.x + per * sf, (size_t)per * sf * sizeof(float));
    /* augmentation really happened: most rows match no plain sample */
    float *ref = plain(f, AIBOX_SPLIT_TRAIN);
    int unchanged = 0;
    for (int i = 0; i < per; i++) unchanged += identify(a.x + i * sf, ref, per, sf) >= 0;
    assert_true(unchanged < per / 4);
    free(ref);
    run_free(&a), run_free(&b), run_free(&c), run_free(&d), run_free(&e1);
}

static void test_epoch_coverage(void **state)
{
    fixture *f = *state;
    const size_t sf = sample_floats(f);
    const int n = aibox_dataset_count(f->ds, AIBOX_SPLIT_TRAIN);
    float *ref = plain(f, AIBOX_SPLIT_TRAIN);
    /* without augmentation every row is one sample: each exactly once per
     * epoch, with the label of its folder, in a shuffled order */
    run r = collect(f, AIBOX_SPLIT_TRAIN, 5, 1, 0, 2, 0, 3);
    int *seen = calloc((size_t)n, sizeof(int)), in_order[3] = {0};
    for (int ep = 0; ep < 3; ep++) {
        memset(seen, 0, (size_t)n * sizeof(int));
        for (int i = 0; i < n; i++) {
            const int row = ep * n + i, k = identify(r.x + (size_t)row * sf, ref, n, sf);
            assert_true(k >= 0);
            seen[k]++;
            assert_int_equal(r.labels[row], aibox_dataset_label(f->ds, AIBOX_SPLIT_TRAIN, k));
            const char *cls = aibox_dataset_class_name(f->ds, r.labels[row]);
            assert_non_null(strstr(aibox_dataset_path(f->ds, AIBOX_SPLIT_TRAIN, k), cls));
            in_order[ep] += k == i;
        }
        for (int k = 0; k < n; k++) assert_int_equal(seen[k], 1);
        assert_true(in_order[ep] < n / 2);
    }
    /* the orders of the epochs differ */
    assert_memory_not_equal(r.labels, r.labels + n, (size_t)n * sizeof(int));
    run_free(&r);
    /* no shuffle: the split's own order */
    r = collect(f, AIBOX_SPLIT_TRAIN, 7, 0, 0, 2, 0, 1);
    assert_memory_equal(r.x, ref, (size_t)n * sf * sizeof(float));
    run_free(&r);
    free(seen);
    free(ref);
}

/* aibox_loader_shard: rank r of N with local batch B takes, from every
 * global batch of N x B, the slice at r x B (augmented as one process
 * augments it), so the ranks' batches put side by side are one process's
 * batches of N x B, every sample once an epoch; shard 1 undoes it. */
static void test_shards(void **state)
{
    fixture *f = *state;
    const size_t sf = sample_floats(f);
    aibox_error e = {0};
    for (int ranks = 2; ranks <= 4; ranks++) {
        const int b = 3, g = b * ranks;
        run whole = collect(f, AIBOX_SPLIT_TRAIN, g, 1, AIBOX_AUG_ALL, 2, 1, 1); /* epoch 1 */
        const int n = whole.n;
        int total = 0;
        for (int r = 0; r < ranks; r++) {
            aibox_loader *ld;
            assert_int_equal(aibox_loader_create(&ld, f->ds, &f->pp,
                                                 &(aibox_loader_opts){.split = AIBOX_SPLIT_TRAIN, .batch = b,
                                                                      .shuffle = 1, .augment = AIBOX_AUG_ALL,
                                                                      .aug_p = 0.6f, .seed = 42, .threads = 2},
                                                 &e),
                             AIBOX_OK);
            assert_int_equal(aibox_loader_shard(ld, r, ranks, &e), AIBOX_OK);
            assert_int_equal(aibox_loader_epoch(ld, 1, &e), AIBOX_OK);
            const int mine = aibox_loader_samples(ld);
            const float *x;
            const int *l;
            int k, got = 0;
            for (int batch = 0;; batch++) {
                assert_int_equal(aibox_loader_next(ld, &x, &l, &k, &e), AIBOX_OK);
                if (!k) break;
                /* batch `batch` of this rank is rows [batch*g + r*b, +k) of one process's epoch */
                const int at = batch * g + r * b;
                assert_true(at + k <= n);
                assert_memory_equal(x, whole.x + (size_t)at * sf, (size_t)k * sf * sizeof(float));
                assert_memory_equal(l, whole.labels + at, (size_t)k * sizeof(int));
                got += k;
            }
            assert_int_equal(got, mine);
            total += got;
            /* size 1: the whole epoch again */
            assert_int_equal(aibox_loader_shard(ld, 0, 1, &e), AIBOX_OK);
            assert_int_equal(aibox_loader_samples(ld), n);
            assert_int_equal(aibox_loader_shard(ld, ranks, ranks, &e), AIBOX_E_INVALID);
            aibox_loader_free(&ld);
        }
        assert_int_equal(total, n);
        run_free(&whole);
    }
}

static void test_validation_plain(void **state)
{
    fixture *f = *state;
    const size_t sf = sample_floats(f);
    const int n = aibox_dataset_count(f->ds, AIBOX_SPLIT_VAL);
    assert_true(n >= 6);
    float *ref = plain(f, AIBOX_SPLIT_VAL);
    /* the augmentation mask is ignored outside the training split */
    run r = collect(f, AIBOX_SPLIT_VAL, 3, 0, AIBOX_AUG_ALL, 2, 0, 2);
    assert_memory_equal(r.x, ref, (size_t)n * sf * sizeof(float));
    assert_memory_equal(r.x + n * sf, ref, (size_t)n * sf * sizeof(float));
    for (int i = 0; i < n; i++) assert_int_equal(r.labels[i], aibox_dataset_label(f->ds, AIBOX_SPLIT_VAL, i));
    run_free(&r);
    r = collect(f, AIBOX_SPLIT_VAL, 4, 1, AIBOX_AUG_ALL, 3, 0, 1);
    for (int i = 0; i < n; i++) assert_true(identify(r.x + i * sf, ref, n, sf) >= 0);
    run_free(&r);
    free(ref);
}

static void test_restart_midway(void **state)
{
    fixture *f = *state;
    aibox_error e = {0};
    aibox_loader *ld;
    run whole = collect(f, AIBOX_SPLIT_TRAIN, 3, 1, AIBOX_AUG_ALL, 1, 0, 1);
    const size_t sf = sample_floats(f);
    assert_int_equal(aibox_loader_create(&ld, f->ds, &f->pp, &(aibox_loader_opts){.split = AIBOX_SPLIT_TRAIN, .batch = 3, .shuffle = 1, .augment = AIBOX_AUG_ALL, .aug_p = 0.6f, .seed = 42, .threads = 2}, &e),
                     AIBOX_OK);
    const float *x;
    const int *l;
    int n;
    /* take two batches, then restart epoch 0 while the threads are busy */
    assert_int_equal(aibox_loader_next(ld, &x, &l, &n, &e), AIBOX_OK);
    assert_int_equal(aibox_loader_next(ld, &x, &l, &n, &e), AIBOX_OK);
    assert_int_equal(aibox_loader_epoch(ld, 0, &e), AIBOX_OK);
    int got = 0;
    while (aibox_loader_next(ld, &x, &l, &n, &e) == AIBOX_OK && n) {
        assert_memory_equal(x, whole.x + (size_t)got * sf, (size_t)n * sf * sizeof(float));
        got += n;
    }
    assert_int_equal(got, whole.n);
    assert_int_equal(aibox_loader_epoch(ld, -1, &e), AIBOX_E_INVALID);
    aibox_loader_free(&ld);
    /* freeing with batches in flight */
    assert_int_equal(aibox_loader_create(&ld, f->ds, &f->pp, &(aibox_loader_opts){.split = AIBOX_SPLIT_TRAIN, .batch = 2, .shuffle = 1, .augment = AIBOX_AUG_ALL, .aug_p = 0.6f, .seed = 1, .threads = 3}, &e),
                     AIBOX_OK);
    assert_int_equal(aibox_loader_next(ld, &x, &l, &n, &e), AIBOX_OK);
    aibox_loader_free(&ld);
    aibox_loader_free(&ld);
    run_free(&whole);
}

static void test_errors(void **state)
{
    fixture *f = *state;
    aibox_error e = {0};
    aibox_loader *ld = (aibox_loader *)f; /* must be cleared on failure */
    assert_int_equal(aibox_loader_create(&ld, f->ds, &f->pp, &(aibox_loader_opts){.split = AIBOX_SPLIT_TRAIN, .batch = -1, .shuffle = 1, .seed = 1, .threads = 1}, &e),
                     AIBOX_E_INVALID);
    assert_null(ld);
    assert_int_equal(aibox_loader_create(&ld, f->ds, &f->pp, &(aibox_loader_opts){.split = AIBOX_SPLIT_TEST, .batch = 4, .shuffle = 1, .seed = 1, .threads = 1}, &e),
                     AIBOX_E_INVALID);
    assert_non_null(strstr(e.msg, "test split has no images"));
    assert_int_equal(aibox_loader_create(&ld, f->ds, &f->pp, &(aibox_loader_opts){.split = AIBOX_SPLIT_TRAIN, .batch = 4, .shuffle = 1, .aug_p = 1.5f, .seed = 1, .threads = 1}, &e),
                     AIBOX_E_INVALID);
    assert_int_equal(aibox_loader_create(&ld, f->ds, &f->pp, &(aibox_loader_opts){.split = AIBOX_SPLIT_TRAIN, .batch = 4, .shuffle = 1, .augment = 1u << 30, .aug_p = 0.6f, .seed = 1, .threads = 1}, &e),
                     AIBOX_E_INVALID);
    assert_int_equal(aibox_loader_create(&ld, f->ds, &f->pp, &(aibox_loader_opts){.split = AIBOX_SPLIT_TRAIN, .batch = 4, .shuffle = 1, .seed = 1, .threads = -1}, &e),
                     AIBOX_E_INVALID);
    aibox_preproc bad = f->pp;
    bad.std[1] = 0;
    assert_int_equal(aibox_loader_create(&ld, f->ds, &bad, &(aibox_loader_opts){.split = AIBOX_SPLIT_TRAIN, .batch = 4, .shuffle = 1, .seed = 1, .threads = 1}, &e),
                     AIBOX_E_INVALID);
    assert_int_equal(aibox_loader_create(&ld, NULL, &f->pp, &(aibox_loader_opts){.split = AIBOX_SPLIT_TRAIN, .batch = 4, .shuffle = 1, .seed = 1, .threads = 1}, &e),
                     AIBOX_E_INVALID);

    /* a file that vanishes after the open (no cache): next() names it, the
     * loader keeps working for the caller to free */
    aibox_dataset *ds;
    aibox_dataset_opts o = {.val_split = 0.25f, .seed = 3, .min_samples = 10, .cache_mb = -1};
    assert_int_equal(aibox_dataset_open(&ds, f->root, &o, &e), AIBOX_OK);
    char *gone = strdup(aibox_dataset_path(ds, AIBOX_SPLIT_VAL, 1));
    char *moved;
    assert_true(asprintf(&moved, "%s.away", gone) > 0);
    assert_int_equal(rename(gone, moved), 0);
    assert_int_equal(aibox_loader_create(&ld, ds, &f->pp, &(aibox_loader_opts){.split = AIBOX_SPLIT_VAL, .batch = 2, .seed = 1, .threads = 2}, &e), AIBOX_OK);
    const float *x;
    const int *l;
    int n, batches = 0;
    aibox_status s;
    while ((s = aibox_loader_next(ld, &x, &l, &n, &e)) == AIBOX_OK && n) batches++;
    assert_int_not_equal(s, AIBOX_OK);
    assert_int_equal(batches, 0); /* sample 1 is in the first batch */
    assert_non_null(strstr(e.msg, gone));
    assert_int_equal(aibox_loader_next(ld, &x, &l, &n, &e), s); /* sticky within the epoch */
    assert_int_equal(rename(moved, gone), 0);
    assert_int_equal(aibox_loader_epoch(ld, 1, &e), AIBOX_OK); /* cleared by a new epoch */
    while ((s = aibox_loader_next(ld, &x, &l, &n, &e)) == AIBOX_OK && n) batches += n;
    assert_int_equal(s, AIBOX_OK);
    assert_int_equal(batches, aibox_dataset_count(ds, AIBOX_SPLIT_VAL));
    aibox_loader_free(&ld);
    aibox_dataset_free(&ds);
    free(gone);
    free(moved);
}

static void test_preview(void **state)
{
    fixture *f = *state;
    aibox_error e = {0};
    char *dir;
    assert_true(asprintf(&dir, "%s/preview/deeper", f->root) > 0);
    assert_int_equal(aibox_dataset_preview_augment(f->ds, 5, dir, AIBOX_AUG_ALL, 0.6f, 9, &e), AIBOX_OK);
    const int total = aibox_dataset_count(f->ds, AIBOX_SPLIT_TRAIN);
    for (int k = 0; k < 5; k++) {
        const int idx = k * total / 5;
        char *p;
        assert_true(asprintf(&p, "%s/%s_%d_%d.png", dir,
                             aibox_dataset_class_name(f->ds, aibox_dataset_label(f->ds, AIBOX_SPLIT_TRAIN, idx)),
                             idx, k) > 0);
        aibox_image a, b;
        assert_int_equal(aibox_image_load(&a, p, 0, &e), AIBOX_OK);
        assert_int_equal(aibox_dataset_image(f->ds, AIBOX_SPLIT_TRAIN, idx, &b, &e), AIBOX_OK);
        assert_int_equal(a.width, b.width);
        assert_int_equal(a.height, b.height);
        assert_int_equal(a.channels, b.channels);
        aibox_image_free(&a);
        aibox_image_free(&b);
        free(p);
    }
    assert_int_equal(aibox_dataset_preview_augment(f->ds, -1, dir, AIBOX_AUG_ALL, 0.6f, 9, &e), AIBOX_E_INVALID);
    free(dir);
}

/* A grey image for an RGB model is resized once and read for all three
 * channels: bit-identical to converting to RGB first, in every resize mode;
 * and at the model's size, (v/255 - mean)/std exactly as written. */
static void test_preprocess_grey_for_rgb(void **state)
{
    (void)state;
    aibox_error e;
    aibox_image g = {37, 29, 1, malloc(37 * 29)}, rgb = {0};
    aibox_rng r;
    aibox_rng_seed(&r, 4);
    for (int i = 0; i < 37 * 29; i++) g.data[i] = (uint8_t)aibox_rng_below(&r, 256);
    assert_int_equal(aibox_image_convert(&rgb, &g, 3, &e), AIBOX_OK);
    static const aibox_resize_mode modes[4] = {AIBOX_RESIZE_AREA, AIBOX_RESIZE_BILINEAR, AIBOX_RESIZE_NEAREST,
                                               AIBOX_RESIZE_BILINEAR_CENTER};
    float *a = malloc(sizeof(float) * 3 * 24 * 20), *b = malloc(sizeof(float) * 3 * 24 * 20);
    for (int m = 0; m < 4; m++) {
        aibox_preproc p = {3, 24, 20, modes[m], {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}};
        assert_int_equal(aibox_preprocess(&p, &g, a, &e), AIBOX_OK);
        assert_int_equal(aibox_preprocess(&p, &rgb, b, &e), AIBOX_OK);
        assert_memory_equal(a, b, sizeof(float) * 3 * 24 * 20);
    }
    aibox_preproc same = {3, 37, 29, AIBOX_RESIZE_AREA, {0.5f, 0.25f, 0}, {0.5f, 2, 1}};
    float *c = malloc(sizeof(float) * 3 * 37 * 29);
    assert_int_equal(aibox_preprocess(&same, &g, c, &e), AIBOX_OK);
    for (int ch = 0; ch < 3; ch++)
        for (int i = 0; i < 37 * 29; i++)
            assert_float_equal(c[ch * 37 * 29 + i], (g.data[i] / 255.0 - same.mean[ch]) / same.std[ch], 1e-5);
    free(a), free(b), free(c);
    aibox_image_free(&g), aibox_image_free(&rgb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_identical), cmocka_unit_test(test_epoch_coverage),
        cmocka_unit_test(test_validation_plain),  cmocka_unit_test(test_restart_midway),
        cmocka_unit_test(test_errors),            cmocka_unit_test(test_preview),
        cmocka_unit_test(test_preprocess_grey_for_rgb), cmocka_unit_test(test_shards),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

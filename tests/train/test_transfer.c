/* Transfer learning through the API (aibox/transfer.h): the cut rules on a
 * small CNN with taps, the built model's structure, frozen flags and
 * metadata, weights drawn afresh, the head trained on cached features
 * matching end-to-end training of the frozen model, and the errors; with
 * $AIBOX_DATA (../shared), the pretrained MobileNet on a few NEU images. */
#include <ftw.h>
#include <math.h>
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

#include "aibox.h"
#include "core/core.h" /* aibox_seed_mix: the cached features' shuffle, mirrored */
#include "common/check.h"

enum { SIDE = 16, PER_CLASS = 14 };
static const char *const bb_names[5] = {"tench", "goldfish", "shark", "ray", "hen"};
static const char *const classes[3] = {"checker", "horizontal", "vertical"};
static char dir[64];

/* A pretrained-looking backbone: 3x16x16 -> conv 3x3 (4) -> relu -> conv 3x3
 * stride 2 (8) -> relu [tap block1, 8x8] -> conv 3x3 stride 2 (8) -> relu [tap
 * block2, 4x4] -> global average pool (node 7) -> dense(5) with ImageNet-style
 * class names, an architecture name and its preprocessing; no batch norm. */
static aibox_model *backbone(void)
{
    aibox_model *m = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_model_create(&m, 3, SIDE, SIDE, &e), AIBOX_OK);
    int a = aibox_relu(m, aibox_conv2d_simple(m, 0, 4, 3, 1, 1));
    int b = aibox_relu(m, aibox_conv2d_simple(m, a, 8, 3, 2, 1));
    int c = aibox_relu(m, aibox_conv2d_simple(m, b, 8, 3, 2, 1));
    aibox_dense(m, aibox_global_avgpool(m, c), 5, 1);
    assert_int_equal(aibox_model_finish(m, 77, &e), AIBOX_OK);
    assert_int_equal(aibox_model_set_meta_str(m, AIBOX_META_ARCH, "tiny", &e), AIBOX_OK);
    assert_int_equal(aibox_model_set_meta_int(m, AIBOX_META_TAP_PREFIX "block1", b, &e), AIBOX_OK);
    assert_int_equal(aibox_model_set_meta_int(m, AIBOX_META_TAP_PREFIX "block2", c, &e), AIBOX_OK);
    assert_int_equal(aibox_model_set_meta_strs(m, AIBOX_META_CLASS_NAMES, 5, bb_names, &e), AIBOX_OK);
    aibox_preproc pp;
    aibox_preproc_default(&pp, m);
    pp.resize = AIBOX_RESIZE_BILINEAR;
    for (int i = 0; i < 3; i++) pp.mean[i] = 0.5f, pp.std[i] = 0.25f;
    assert_int_equal(aibox_preproc_to_model(&pp, m, &e), AIBOX_OK);
    return m;
}

/* 3 classes x 14 RGB images, 16x16: checker, horizontal and vertical stripes
 * with a random phase and noise, each class tinted its own colour (so that
 * globally pooled features of random filters tell them apart). */
static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/aibox-transfer-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    aibox_rng r;
    aibox_rng_seed(&r, 4);
    for (int c = 0; c < 3; c++) {
        char p[256];
        snprintf(p, sizeof p, "%s/%s", dir, classes[c]);
        mkdir(p, 0777);
        for (int i = 0; i < PER_CLASS; i++) {
            aibox_image img = {SIDE, SIDE, 3, malloc(SIDE * SIDE * 3)};
            int phase = (int)aibox_rng_below(&r, 4), tint = c;
            for (int y = 0; y < SIDE; y++)
                for (int x = 0; x < SIDE; x++) {
                    int on = c == 0 ? ((x + phase) / 4 + y / 4) % 2 : ((c == 1 ? y : x) + phase) / 4 % 2;
                    for (int k = 0; k < 3; k++)
                        img.data[(y * SIDE + x) * 3 + k] =
                            (uint8_t)((on ? 150 : 50) + (k == tint ? 80 : 0) + (int)aibox_rng_below(&r, 20));
                }
            char f[300];
            snprintf(f, sizeof f, "%s/%02d.png", p, i);
            if (aibox_image_write_png(&img, f, NULL)) return -1;
            aibox_image_free(&img);
        }
    }
    return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    return nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static aibox_dataset *open_data(void)
{
    aibox_dataset *ds = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_dataset_open(&ds, dir, &(aibox_dataset_opts){.val_split = 0.2f, .seed = 1}, &e), AIBOX_OK);
    assert_int_equal(aibox_dataset_count(ds, AIBOX_SPLIT_TRAIN), 33);
    assert_int_equal(aibox_dataset_count(ds, AIBOX_SPLIT_VAL), 9);
    return ds;
}

/* The cut a rule chooses; on an error, *code and the message. */
static int cut(const aibox_model *bb, aibox_transfer_opts o, char *msg)
{
    aibox_error e = {0};
    int node = aibox_transfer_cut(bb, &o, &e);
    if (msg) snprintf(msg, AIBOX_ERROR_MSG_LEN, "%s", e.msg);
    if (node < 0) assert_int_equal(e.code, (aibox_status)-node);
    return node;
}

static void test_cut_rules(void **state)
{
    aibox_model *bb = backbone();
    char msg[AIBOX_ERROR_MSG_LEN];
    /* the default: the embedding, the global pool */
    assert_int_equal(cut(bb, (aibox_transfer_opts){0}, NULL), 7);
    assert_int_equal(aibox_transfer_cut(bb, NULL, NULL), 7);
    assert_int_equal(aibox_model_embedding_node(bb), 7);
    /* by index, tap name, index as text, stride */
    assert_int_equal(cut(bb, (aibox_transfer_opts){.node = 3}, NULL), 3);
    assert_int_equal(cut(bb, (aibox_transfer_opts){.tap = "block1"}, NULL), 4);
    assert_int_equal(cut(bb, (aibox_transfer_opts){.tap = "block2"}, NULL), 6);
    assert_int_equal(cut(bb, (aibox_transfer_opts){.tap = "5"}, NULL), 5);
    assert_int_equal(cut(bb, (aibox_transfer_opts){.stride = 2}, NULL), 4); /* the last 8x8 node */
    assert_int_equal(cut(bb, (aibox_transfer_opts){.stride = 4}, NULL), 6);
    assert_int_equal(cut(bb, (aibox_transfer_opts){.stride = 1}, NULL), 2);
    /* errors name what was asked and the backbone */
    assert_int_equal(cut(bb, (aibox_transfer_opts){.tap = "layer9", .name = "tiny.aibox"}, msg), -AIBOX_E_NOTFOUND);
    printf("# %s\n", msg);
    assert_non_null(strstr(msg, "'layer9'"));
    assert_non_null(strstr(msg, "tiny.aibox"));
    assert_non_null(strstr(msg, "1..8"));
    assert_int_equal(cut(bb, (aibox_transfer_opts){.tap = "0"}, msg), -AIBOX_E_NOTFOUND);
    assert_int_equal(cut(bb, (aibox_transfer_opts){.tap = "9"}, msg), -AIBOX_E_NOTFOUND);
    assert_int_equal(cut(bb, (aibox_transfer_opts){.tap = ""}, msg), -AIBOX_E_NOTFOUND);
    assert_int_equal(cut(bb, (aibox_transfer_opts){.stride = 3, .name = "tiny.aibox"}, msg), -AIBOX_E_NOTFOUND);
    printf("# %s\n", msg);
    assert_string_equal(msg, "tiny.aibox: no stage ends at stride 3");
    assert_int_equal(cut(bb, (aibox_transfer_opts){.node = 9}, msg), -AIBOX_E_INVALID);
    assert_int_equal(cut(bb, (aibox_transfer_opts){.node = 3, .stride = 2}, msg), -AIBOX_E_INVALID);
    assert_int_equal(cut(bb, (aibox_transfer_opts){.tap = "block1", .stride = 2}, msg), -AIBOX_E_INVALID);
    assert_int_equal(aibox_transfer_cut(NULL, NULL, NULL), -AIBOX_E_INVALID);
    /* nothing spatial: no embedding to cut at */
    aibox_model *flat = NULL;
    assert_int_equal(aibox_model_create(&flat, 8, 1, 1, NULL), AIBOX_OK);
    aibox_dense(flat, 0, 4, 1);
    assert_int_equal(aibox_model_finish(flat, 1, NULL), AIBOX_OK);
    assert_int_equal(cut(flat, (aibox_transfer_opts){0}, msg), -AIBOX_E_NOTFOUND);
    printf("# %s\n", msg);
    assert_string_equal(msg, "the backbone: no feature layer (no spatial node) to cut at");
    aibox_model_free(&flat);
    aibox_model_free(&bb);
}

/* The "(frozen)" mark of each node in the model's summary. */
typedef struct {
    int n, frozen[64];
} frozen_marks;

static void mark(void *user, const char *line)
{
    frozen_marks *f = user;
    int node;
    if (sscanf(line, "%d", &node) == 1 && node >= 0 && node < 64) f->frozen[node] = strstr(line, "(frozen)") != NULL, f->n++;
}

static void check_frozen(const aibox_model *m, int trunk_end, int frozen)
{
    frozen_marks f = {0};
    aibox_model_summary(m, mark, &f);
    assert_int_equal(f.n, aibox_model_node_count(m));
    for (int i = 1; i < f.n; i++) assert_int_equal(f.frozen[i], i <= trunk_end ? frozen : 0);
}

static int params_equal(aibox_model *a, int na, aibox_model *b, int nb)
{
    for (int k = 0; k < 2; k++) {
        size_t ca = 0, cb = 0;
        float *pa = aibox_model_node_param(a, na, k, &ca), *pb = aibox_model_node_param(b, nb, k, &cb);
        if (ca != cb || (ca && memcmp(pa, pb, ca * sizeof(float)))) return 0;
    }
    return 1;
}

static const char *meta_str(const aibox_model *m, const char *key)
{
    const char *v = NULL;
    return aibox_model_get_meta_str(m, key, &v) == AIBOX_OK ? v : "(absent)";
}

static int64_t meta_int(const aibox_model *m, const char *key)
{
    int64_t v = -99;
    aibox_model_get_meta_int(m, key, &v);
    return v;
}

/* The backbone's preprocessing, class names as given, where it came from. */
static void check_described(const aibox_model *m, const aibox_model *bb, int n_names)
{
    aibox_preproc a, b;
    assert_int_equal(aibox_preproc_from_model(&a, m, NULL), AIBOX_OK);
    assert_int_equal(aibox_preproc_from_model(&b, bb, NULL), AIBOX_OK);
    assert_memory_equal(&a, &b, sizeof a);
    assert_string_equal(meta_str(m, AIBOX_META_INPUT_RESIZE), "bilinear");
    int n = -1;
    const char *const *names = NULL;
    assert_int_equal(aibox_model_get_meta_strs(m, AIBOX_META_CLASS_NAMES, &n, &names), AIBOX_OK);
    assert_int_equal(n, n_names);
    for (int i = 0; i < n; i++) assert_string_equal(names[i], classes[i]);
    assert_string_equal(meta_str(m, AIBOX_META_TASK), "classify");
    assert_string_equal(meta_str(m, AIBOX_META_ARCH), "tiny");
}

static void test_build(void **state)
{
    aibox_model *bb = backbone(), *m = NULL;
    size_t n_bb;
    float *before = aibox_test_floats(n_bb = aibox_model_param_count(bb));
    memcpy(before, aibox_model_params(bb), n_bb * sizeof(float));
    aibox_error e = {0};
    aibox_transfer_info ti = {0};
    /* default cut (1x1 already: no pool added), dropout, frozen */
    aibox_transfer_opts o = {.dropout = 0.25f, .freeze = 1, .seed = 3, .name = "tiny.aibox"};
    assert_int_equal(aibox_transfer_build(&m, bb, 3, classes, &o, &ti, &e), AIBOX_OK);
    assert_int_equal(ti.cut, 7);
    assert_int_equal(ti.feature_node, 7);
    assert_int_equal(ti.head_node, 9);
    assert_int_equal(aibox_model_node_count(m), 10);
    assert_int_equal(aibox_model_output(m), 9);
    assert_int_equal(aibox_model_node_kind(m, 7), AIBOX_LAYER_GLOBAL_AVGPOOL);
    assert_int_equal(aibox_model_node_kind(m, 8), AIBOX_LAYER_DROPOUT);
    assert_int_equal(aibox_model_node_kind(m, 9), AIBOX_LAYER_DENSE);
    int in = -1, c, h, w;
    assert_int_equal(aibox_model_node_inputs(m, 9, &in, 1), 1);
    assert_int_equal(in, 8);
    aibox_model_node_shape(m, 9, &c, &h, &w);
    assert_int_equal(c * h * w, 3);
    check_frozen(m, 7, 1);
    for (int i = 1; i <= 6; i++) assert_true(params_equal(m, i, bb, i)); /* pretrained */
    check_described(m, bb, 3);
    assert_string_equal(meta_str(m, "aibox.backbone"), "tiny.aibox");
    assert_int_equal(meta_int(m, "aibox.backbone.cut"), 7);
    assert_int_equal(meta_int(m, "aibox.backbone.frozen"), 1);
    assert_string_equal(meta_str(m, "aibox.backbone.init"), "pretrained");
    assert_int_equal(meta_int(m, AIBOX_META_TAP_PREFIX "block1"), 4);
    aibox_model_free(&m);

    /* a spatial tap: a global average pool is added; no dropout; trained; unnamed classes */
    o = (aibox_transfer_opts){.tap = "block1", .seed = 3};
    assert_int_equal(aibox_transfer_build(&m, bb, 4, NULL, &o, &ti, &e), AIBOX_OK);
    assert_int_equal(ti.cut, 4);
    assert_int_equal(aibox_model_node_count(m), 7); /* input, conv, relu, conv, relu, pool, dense */
    assert_int_equal(ti.feature_node, 5);
    assert_int_equal(aibox_model_node_kind(m, 5), AIBOX_LAYER_GLOBAL_AVGPOOL);
    assert_int_equal(ti.head_node, 6);
    assert_int_equal(aibox_model_node_inputs(m, 6, &in, 1), 1);
    assert_int_equal(in, 5);
    check_frozen(m, 4, 0);
    check_described(m, bb, 0); /* the backbone's five names never carry over */
    assert_string_equal(meta_str(m, "aibox.backbone"), "(absent)");
    assert_int_equal(meta_int(m, "aibox.backbone.frozen"), 0);
    assert_int_equal(meta_int(m, AIBOX_META_TAP_PREFIX "block2"), -1); /* cut away */
    aibox_model_free(&m);

    /* the backbone's own frozen flags are cleared when the trunk trains */
    aibox_model_set_frozen(bb, 1, 1);
    assert_int_equal(aibox_transfer_build(&m, bb, 2, classes, &(aibox_transfer_opts){.node = 2}, &ti, &e), AIBOX_OK);
    check_frozen(m, 2, 0);
    aibox_model_free(&m);
    aibox_model_set_frozen(bb, 1, 0);

    /* errors leave *m NULL */
    m = (aibox_model *)1;
    assert_int_equal(aibox_transfer_build(&m, bb, 1, NULL, NULL, NULL, &e), AIBOX_E_INVALID);
    assert_null(m);
    assert_int_equal(aibox_transfer_build(&m, bb, 3, NULL, &(aibox_transfer_opts){.dropout = 1.0f}, NULL, &e),
                     AIBOX_E_INVALID);
    assert_int_equal(aibox_transfer_build(&m, bb, 3, NULL, &(aibox_transfer_opts){.tap = "x"}, NULL, &e),
                     AIBOX_E_NOTFOUND);
    assert_null(m);
    /* the backbone did not change */
    assert_memory_equal(aibox_model_params(bb), before, n_bb * sizeof(float));
    free(before);
    aibox_model_free(&bb);
}

/* From scratch: the same architecture, the trunk drawn from the seed. */
static void test_from_scratch(void **state)
{
    aibox_model *bb = backbone(), *p = NULL, *s1 = NULL, *s2 = NULL, *s3 = NULL;
    aibox_error e = {0};
    aibox_transfer_opts o = {.tap = "block2", .dropout = 0.5f, .seed = 8};
    assert_int_equal(aibox_transfer_build(&p, bb, 3, classes, &o, NULL, &e), AIBOX_OK);
    o.from_scratch = 1;
    assert_int_equal(aibox_transfer_build(&s1, bb, 3, classes, &o, NULL, &e), AIBOX_OK);
    assert_int_equal(aibox_transfer_build(&s2, bb, 3, classes, &o, NULL, &e), AIBOX_OK);
    o.seed = 9;
    assert_int_equal(aibox_transfer_build(&s3, bb, 3, classes, &o, NULL, &e), AIBOX_OK);
    assert_int_equal(aibox_model_node_count(s1), aibox_model_node_count(p));
    assert_int_equal(aibox_model_param_count(s1), aibox_model_param_count(p));
    for (int i = 0; i < aibox_model_node_count(p); i++) {
        assert_int_equal(aibox_model_node_kind(s1, i), aibox_model_node_kind(p, i));
        int c1, h1, w1, c2, h2, w2;
        aibox_model_node_shape(s1, i, &c1, &h1, &w1);
        aibox_model_node_shape(p, i, &c2, &h2, &w2);
        assert_true(c1 == c2 && h1 == h2 && w1 == w2);
    }
    for (int i = 1; i <= 5; i += 2) { /* the convolutions */
        assert_true(params_equal(p, i, bb, i));
        assert_false(params_equal(s1, i, bb, i));
        assert_true(params_equal(s1, i, s2, i)); /* the seed decides */
        assert_false(params_equal(s1, i, s3, i));
    }
    assert_string_equal(meta_str(s1, "aibox.backbone.init"), "random");
    assert_string_equal(meta_str(p, "aibox.backbone.init"), "pretrained");
    aibox_model_free(&p);
    aibox_model_free(&s1);
    aibox_model_free(&s2);
    aibox_model_free(&s3);
    aibox_model_free(&bb);
}

/* The training images, preprocessed, served in the order the cached
 * features are (a shuffle per epoch from aibox_seed_mix(seed, epoch, "shuffle")), so that
 * training the whole frozen model sees the same batches. */
typedef struct {
    float *x;
    int *y, *order, n, dim, batch, pos;
    uint64_t seed;
    float *bx;
    int by[64];
} images;

static aibox_status images_begin(void *user, int epoch, aibox_error *err)
{
    images *im = user;
    aibox_rng r;
    aibox_rng_seed(&r, aibox_seed_mix(im->seed, (uint32_t)epoch, 0x73687566666c65ULL /* "shuffle" */));
    for (int i = 0; i < im->n; i++) im->order[i] = i;
    for (int i = im->n - 1; i > 0; i--) {
        int j = (int)aibox_rng_below(&r, (uint32_t)i + 1), t = im->order[i];
        im->order[i] = im->order[j], im->order[j] = t;
    }
    im->pos = 0;
    return AIBOX_OK;
}

static aibox_status images_next(void *user, const float **x, const int **labels, int *n, aibox_error *err)
{
    images *im = user;
    int k = im->n - im->pos < im->batch ? im->n - im->pos : im->batch;
    for (int i = 0; i < k; i++) {
        int s = im->order[im->pos + i];
        memcpy(im->bx + (size_t)i * im->dim, im->x + (size_t)s * im->dim, sizeof(float) * im->dim);
        im->by[i] = im->y[s];
    }
    im->pos += k;
    *x = im->bx, *labels = im->by, *n = k;
    return AIBOX_OK;
}

/* All of a split's images through pp, in split order. */
static void images_load(images *im, const aibox_dataset *ds, const aibox_preproc *pp, int batch, uint64_t seed)
{
    aibox_loader *ld = NULL;
    int n = aibox_dataset_count(ds, AIBOX_SPLIT_TRAIN);
    *im = (images){.n = n, .dim = pp->channels * pp->height * pp->width, .batch = batch, .seed = seed};
    im->x = aibox_test_floats((size_t)n * im->dim);
    im->bx = aibox_test_floats((size_t)batch * im->dim);
    im->y = aibox_test_malloc(sizeof(int) * n);
    im->order = aibox_test_malloc(sizeof(int) * n);
    assert_int_equal(aibox_loader_create(&ld, ds, pp, &(aibox_loader_opts){.batch = n, .threads = 2}, NULL), AIBOX_OK);
    const float *x;
    const int *y;
    int k;
    assert_int_equal(aibox_loader_next(ld, &x, &y, &k, NULL), AIBOX_OK);
    assert_int_equal(k, n);
    memcpy(im->x, x, sizeof(float) * (size_t)n * im->dim);
    memcpy(im->y, y, sizeof(int) * n);
    aibox_loader_free(&ld);
}

static void images_free(images *im)
{
    free(im->x), free(im->y), free(im->order), free(im->bx);
}

static float *head_weights(aibox_model *m, int head, size_t *n)
{
    size_t nw, nb;
    const float *w = aibox_model_node_param(m, head, 0, &nw), *b = aibox_model_node_param(m, head, 1, &nb);
    float *v = aibox_test_floats(nw + nb);
    memcpy(v, w, nw * sizeof(float));
    memcpy(v + nw, b, nb * sizeof(float));
    *n = nw + nb;
    return v;
}

/* Trains whole (built as cached was) end to end on the batches cached's
 * features were served in (8 a batch, shuffled from seed), validating on the
 * validation split, and requires the same training as cached's head on the
 * features (rc): the same best epoch, the head's weights within 1e-5 + 1e-4
 * relative. */
static void same_as_end_to_end(aibox_model *cached, aibox_model *whole, int head, const aibox_dataset *ds,
                               const aibox_train_opts *to, uint64_t seed, const aibox_train_result *rc, const char *what)
{
    aibox_error e = {0};
    aibox_preproc pp;
    assert_int_equal(aibox_preproc_from_model(&pp, whole, NULL), AIBOX_OK);
    images im;
    images_load(&im, ds, &pp, 8, seed);
    aibox_loader *vl = NULL;
    assert_int_equal(aibox_loader_create(&vl, ds, &pp, &(aibox_loader_opts){.split = AIBOX_SPLIT_VAL, .batch = 8, .threads = 2}, &e), AIBOX_OK);
    aibox_batch_source ts = {&im, im.n, images_begin, images_next, NULL}, vs = aibox_loader_source(vl);
    aibox_train_result rw;
    assert_int_equal(aibox_train(whole, &ts, 8, &vs, to, 2, &rw, &e), AIBOX_OK);
    size_t n, n2;
    float *wc = head_weights(cached, head, &n), *ww = head_weights(whole, head, &n2);
    assert_int_equal(n, n2);
    double worst = 0;
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)wc[i] - ww[i]));
    printf("# %s, cached vs end to end: best epoch %d / %d, val acc %.4f / %.4f, val loss %.6f / %.6f, head weights "
           "differ by <= %.3g\n",
           what, rc->best_epoch + 1, rw.best_epoch + 1, rc->best_val_acc, rw.best_val_acc, rc->best_val_loss,
           rw.best_val_loss, worst);
    assert_int_equal(rc->best_epoch, rw.best_epoch);
    assert_int_equal(rc->epochs_run, rw.epochs_run);
    AIBOX_TEST_CLOSE1("val loss", rc->best_val_loss, rw.best_val_loss, 1e-5, 1e-4);
    AIBOX_TEST_CLOSE_FF("head weights", wc, ww, n, 1e-5, 1e-4);
    free(wc), free(ww);
    images_free(&im);
    aibox_loader_free(&vl);
}

/* The head trained on cached features against the whole frozen model trained
 * end to end on the same batches (same seed, dropout 0.25): the same weights
 * to float rounding (the features' inference context runs the first 3x3
 * convolution as Winograd), and an untouched trunk in both. */
static void test_cached_equals_end_to_end(void **state)
{
    aibox_model *bb = backbone(), *cached = NULL, *whole = NULL;
    aibox_dataset *ds = open_data();
    aibox_error e = {0};
    aibox_transfer_info ti;
    aibox_transfer_opts o = {.dropout = 0.25f, .freeze = 1, .seed = 5};
    const char *const *names = aibox_dataset_class_names(ds);
    assert_int_equal(aibox_transfer_build(&cached, bb, 3, names, &o, &ti, &e), AIBOX_OK);
    assert_int_equal(aibox_transfer_build(&whole, bb, 3, names, &o, NULL, &e), AIBOX_OK);
    aibox_train_opts to = {.epochs = 40, .optim = {.kind = AIBOX_ADAM, .lr = 0.05f}, .seed = 5};

    aibox_transfer_features *f = NULL;
    aibox_transfer_features_stats st = {0};
    aibox_transfer_features_opts fo = {.batch = 8, .seed = 5, .threads = 2};
    assert_int_equal(aibox_transfer_features_create(&f, cached, ds, NULL, &fo, &st, &e), AIBOX_OK);
    assert_int_equal(st.dim, 8);
    assert_int_equal(st.train, 33);
    assert_int_equal(st.val, 9);
    assert_true(st.seconds >= 0);
    aibox_train_result rc;
    aibox_status s = aibox_transfer_train_head(cached, f, &to, 2, &rc, &e);
    if (s) printf("%s\n", e.msg);
    assert_int_equal(s, AIBOX_OK);
    assert_true(rc.best_val_acc > 0.8f); /* it learned */
    same_as_end_to_end(cached, whole, ti.head_node, ds, &to, 5, &rc, "tiny CNN");
    for (int i = 1; i <= 6; i++) {
        assert_true(params_equal(cached, i, bb, i));
        assert_true(params_equal(whole, i, bb, i));
    }
    /* the trained model describes itself, also through a file */
    check_described(cached, bb, 3);
    char p[128];
    snprintf(p, sizeof p, "%s/cached.aibox", dir);
    assert_int_equal(aibox_model_save(cached, p, &e), AIBOX_OK);
    aibox_model *back = NULL;
    assert_int_equal(aibox_model_load(&back, p, &e), AIBOX_OK);
    check_described(back, bb, 3);
    assert_int_equal(meta_int(back, "aibox.backbone.cut"), 7);
    aibox_classifier *cl = NULL;
    aibox_classification out;
    assert_int_equal(aibox_classifier_create(&cl, back, 1, &e), AIBOX_OK);
    assert_int_equal(aibox_classifier_file(cl, aibox_dataset_path(ds, AIBOX_SPLIT_VAL, 0), 0, &out, NULL, &e), AIBOX_OK);
    assert_int_equal(aibox_classifier_class_index(cl, out.name), out.label);
    printf("# %s -> %s %.3f\n", aibox_dataset_path(ds, AIBOX_SPLIT_VAL, 0), out.name, out.confidence);
    aibox_classifier_free(&cl);
    aibox_model_free(&back);

    aibox_transfer_features_free(&f);
    aibox_transfer_features_free(&f); /* safe twice */
    aibox_dataset_free(&ds);
    aibox_model_free(&cached);
    aibox_model_free(&whole);
    aibox_model_free(&bb);
}

/* Which validation features, several heads on one cache, and refusals. */
static void test_features_and_refusals(void **state)
{
    aibox_model *bb = backbone(), *m = NULL, *m2 = NULL, *open = NULL;
    aibox_dataset *ds = open_data();
    aibox_error e = {0};
    aibox_transfer_opts o = {.tap = "block2", .freeze = 1, .seed = 2};
    assert_int_equal(aibox_transfer_build(&m, bb, 3, NULL, &o, NULL, &e), AIBOX_OK);
    assert_int_equal(aibox_transfer_build(&m2, bb, 3, NULL, &o, NULL, &e), AIBOX_OK);
    aibox_transfer_features *on_train = NULL, *none = NULL;
    aibox_transfer_features_stats st;
    assert_int_equal(aibox_transfer_features_create(&on_train, m, ds, NULL, &(aibox_transfer_features_opts){.validation = 1}, &st, &e), AIBOX_OK);
    assert_int_equal(st.dim, 8); /* the pool after block2's 8 channels */
    assert_int_equal(st.val, st.train);
    assert_int_equal(aibox_transfer_features_create(&none, m, ds, NULL, &(aibox_transfer_features_opts){.validation = -1}, &st, &e), AIBOX_OK);
    assert_int_equal(st.val, 0);
    /* without validation: no best epoch; two heads from one cache agree */
    aibox_train_opts to = {.epochs = 2, .seed = 1};
    aibox_train_result r1, r2;
    assert_int_equal(aibox_transfer_train_head(m, none, &to, 1, &r1, &e), AIBOX_OK);
    assert_int_equal(r1.best_epoch, -1);
    assert_int_equal(aibox_transfer_train_head(m2, none, &to, 1, &r2, &e), AIBOX_OK);
    assert_true(params_equal(m, aibox_model_output(m), m2, aibox_model_output(m2)));
    assert_int_equal(aibox_transfer_train_head(m, on_train, &to, 1, &r1, &e), AIBOX_OK);
    assert_true(r1.best_epoch >= 0);

    /* an unfrozen trunk would not train: refused */
    assert_int_equal(aibox_transfer_build(&open, bb, 3, NULL, &(aibox_transfer_opts){.tap = "block2"}, NULL, &e), AIBOX_OK);
    assert_int_equal(aibox_transfer_train_head(open, none, &to, 1, NULL, &e), AIBOX_E_STATE);
    printf("# %s\n", e.msg);
    assert_non_null(strstr(e.msg, "aibox_train"));
    aibox_model_free(&open);
    /* features of another width */
    assert_int_equal(aibox_transfer_build(&open, bb, 3, NULL, &(aibox_transfer_opts){.tap = "1", .freeze = 1}, NULL, &e), AIBOX_OK);
    assert_int_equal(aibox_transfer_train_head(open, none, &to, 1, NULL, &e), AIBOX_E_SHAPE);
    aibox_model_free(&open);
    /* a model that does not end in a dense head; bad options */
    aibox_transfer_features *f = (aibox_transfer_features *)1;
    aibox_model *nohead = NULL;
    assert_int_equal(aibox_model_create(&nohead, 3, SIDE, SIDE, NULL), AIBOX_OK);
    aibox_global_avgpool(nohead, aibox_conv2d_simple(nohead, 0, 4, 3, 1, 1));
    assert_int_equal(aibox_model_finish(nohead, 1, NULL), AIBOX_OK);
    assert_int_equal(aibox_transfer_features_create(&f, nohead, ds, NULL, NULL, NULL, &e), AIBOX_E_INVALID);
    assert_null(f);
    assert_int_equal(aibox_transfer_train_head(nohead, none, &to, 1, NULL, &e), AIBOX_E_INVALID);
    assert_int_equal(aibox_transfer_features_create(&f, m, ds, NULL, &(aibox_transfer_features_opts){.validation = 2}, NULL, &e), AIBOX_E_INVALID);
    aibox_preproc small;
    assert_int_equal(aibox_preproc_from_model(&small, m, NULL), AIBOX_OK);
    small.height = small.width = 8;
    assert_int_equal(aibox_transfer_features_create(&f, m, ds, &small, NULL, NULL, &e), AIBOX_E_SHAPE);
    /* a model read without its weights */
    char p[128];
    snprintf(p, sizeof p, "%s/head.aibox", dir);
    assert_int_equal(aibox_model_save(m, p, &e), AIBOX_OK);
    aibox_model *info = NULL;
    assert_int_equal(aibox_model_load_info(&info, p, &e), AIBOX_OK);
    assert_int_equal(aibox_transfer_features_create(&f, info, ds, NULL, NULL, NULL, &e), AIBOX_E_STATE);
    assert_int_equal(aibox_transfer_train_head(info, none, &to, 1, NULL, &e), AIBOX_E_STATE);
    aibox_model_free(&info);
    assert_null(f);
    aibox_model_free(&nohead);
    aibox_transfer_features_free(&on_train);
    aibox_transfer_features_free(&none);
    aibox_dataset_free(&ds);
    aibox_model_free(&m);
    aibox_model_free(&m2);
    aibox_model_free(&bb);
}

/* A shared folder: $VAR/sub when VAR is set, else ../shared/<fallback>; NULL when absent. */
static const char *shared(char *buf, size_t len, const char *var, const char *sub, const char *fallback)
{
    const char *v = getenv(var);
    if (v && *v) snprintf(buf, len, "%s/%s", v, sub);
    else snprintf(buf, len, "../shared/%s", fallback);
    struct stat st;
    return stat(buf, &st) == 0 && S_ISDIR(st.st_mode) ? buf : NULL;
}

static void copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    assert_non_null(a);
    assert_non_null(b);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0) assert_int_equal(fwrite(buf, 1, n, b), n);
    fclose(a);
    fclose(b);
}

/* The pretrained MobileNet v1 0.25 (float TFLite) on 3 NEU classes x 10
 * images: the cut rules, the stored preprocessing, and the head on cached
 * features against the whole frozen network trained end to end (its batch
 * norms are folded into the convolutions, so the two agree to rounding). */
static void test_mobilenet_neu(void **state)
{
    char models[4096], data[4096], p[4400];
    if (!shared(models, sizeof models, "AIBOX_MODELS", ".", "models/tflite") &&
        !shared(models, sizeof models, "AIBOX_DATA", "../models/tflite", "models/tflite")) {
        print_message("models not found ($AIBOX_MODELS, $AIBOX_DATA/../models/tflite or ../shared/models/tflite)\n");
        skip();
    }
    if (!shared(data, sizeof data, "AIBOX_DATA", "neu-cls", "data/neu-cls")) {
        print_message("NEU not found ($AIBOX_DATA/neu-cls or ../shared/data/neu-cls)\n");
        skip();
    }
    aibox_model *bb = NULL, *cached = NULL, *whole = NULL;
    aibox_error e = {0};
    snprintf(p, sizeof p, "%s/mobilenet_v1_0.25_224_1_default_1.tflite", models);
    assert_int_equal(aibox_import(&bb, p, NULL, &e), AIBOX_OK);
    assert_int_equal(aibox_transfer_cut(bb, NULL, &e), 55); /* the 7x7 average pool */
    assert_int_equal(aibox_model_node_kind(bb, 55), AIBOX_LAYER_AVGPOOL);
    assert_int_equal(cut(bb, (aibox_transfer_opts){.tap = "55"}, NULL), 55);
    int s16 = cut(bb, (aibox_transfer_opts){.stride = 16}, NULL), c, h, w;
    aibox_model_node_shape(bb, s16, &c, &h, &w);
    printf("# stride 16: node %d (%s, %dx%dx%d)\n", s16, aibox_layer_kind_name(aibox_model_node_kind(bb, s16)), c, h, w);
    assert_true(h == 14 && w == 14);

    /* 3 classes x 10 images: 24 train, 6 validation */
    const char *cls[3] = {"crazing", "patches", "scratches"};
    snprintf(p, sizeof p, "%s/neu", dir);
    mkdir(p, 0777);
    for (int k = 0; k < 3; k++) {
        char from[8300], to[8300];
        snprintf(p, sizeof p, "%s/neu/%s", dir, cls[k]);
        mkdir(p, 0777);
        for (int i = 1; i <= 10; i++) {
            snprintf(from, sizeof from, "%s/%s/%s_%d.jpg", data, cls[k], cls[k], i);
            snprintf(to, sizeof to, "%s/%s_%d.jpg", p, cls[k], i);
            copy_file(from, to);
        }
    }
    aibox_dataset *ds = NULL;
    snprintf(p, sizeof p, "%s/neu", dir);
    assert_int_equal(aibox_dataset_open(&ds, p, &(aibox_dataset_opts){.val_split = 0.2f, .seed = 1, .min_samples = 20}, &e), AIBOX_OK);
    aibox_transfer_info ti;
    aibox_transfer_opts o = {.dropout = 0.25f, .freeze = 1, .seed = 1, .name = "mobilenet"};
    assert_int_equal(aibox_transfer_build(&cached, bb, 3, aibox_dataset_class_names(ds), &o, &ti, &e), AIBOX_OK);
    assert_int_equal(aibox_transfer_build(&whole, bb, 3, aibox_dataset_class_names(ds), &o, NULL, &e), AIBOX_OK);
    aibox_preproc pp;
    assert_int_equal(aibox_preproc_from_model(&pp, cached, &e), AIBOX_OK);
    assert_true(pp.channels == 3 && pp.height == 224 && pp.width == 224 && pp.resize == AIBOX_RESIZE_BILINEAR);
    assert_true(fabsf(pp.mean[0] - 0.5f) < 0.01f && fabsf(pp.std[0] - 0.5f) < 0.01f);

    aibox_train_opts to = {.epochs = 4, .seed = 1};
    aibox_transfer_features *f = NULL;
    aibox_transfer_features_stats st;
    assert_int_equal(aibox_transfer_features_create(&f, cached, ds, NULL, &(aibox_transfer_features_opts){.batch = 8, .seed = 1, .threads = 2}, &st, &e), AIBOX_OK);
    assert_true(st.dim == 256 && st.train == 24 && st.val == 6);
    aibox_train_result rc;
    assert_int_equal(aibox_transfer_train_head(cached, f, &to, 2, &rc, &e), AIBOX_OK);
    printf("# NEU x 30, MobileNet 0.25: features in %.2fs\n", st.seconds);
    same_as_end_to_end(cached, whole, ti.head_node, ds, &to, 1, &rc, "MobileNet 0.25 on NEU");
    aibox_transfer_features_free(&f);
    aibox_dataset_free(&ds);
    aibox_model_free(&cached);
    aibox_model_free(&whole);
    aibox_model_free(&bb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cut_rules),
        cmocka_unit_test(test_build),
        cmocka_unit_test(test_from_scratch),
        cmocka_unit_test(test_cached_equals_end_to_end),
        cmocka_unit_test(test_features_and_refusals),
        cmocka_unit_test(test_mobilenet_neu),
    };
    return cmocka_run_group_tests_name("transfer", tests, setup, teardown);
}

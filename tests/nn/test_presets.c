/* The preset networks: exact parameter counts against the published models,
 * classes x 1 x 1 outputs at several input sizes, clean failures (too small
 * an input, unknown names, bad arguments), the recorded feature taps, and one
 * forward pass per preset so the graphs also run, not only build. */
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
#include "common/check.h"

typedef aibox_status (*preset_fn)(aibox_model **m, int classes, int channels, int size, aibox_error *err);

static aibox_status alexnet_p25(aibox_model **m, int classes, int channels, int size, aibox_error *err)
{
    return aibox_preset_alexnet(m, classes, channels, size, 0.25f, err);
}

static const struct {
    const char *name;
    preset_fn fn;
    int min_size;
} presets[] = {
    {"alexnet", alexnet_p25, 8},
    {"squeezenet", aibox_preset_squeezenet, 29},
    {"resnext", aibox_preset_resnext, 32},
    {"resnet18", aibox_preset_resnet18, 32},
    {"resnet50", aibox_preset_resnet50, 32},
    {"wide_resnet50_2", aibox_preset_wide_resnet50_2, 32},
    {"small", aibox_preset_small, 8},
};
#define N_PRESETS (int)(sizeof presets / sizeof presets[0])

static aibox_model *build(preset_fn fn, int classes, int channels, int size)
{
    aibox_model *m = NULL;
    aibox_error e = {0};
    aibox_status s = fn(&m, classes, channels, size, &e);
    if (s != AIBOX_OK) fail_msg("building at %dx%dx%d: %s", channels, size, size, e.msg);
    assert_non_null(m);
    return m;
}

static void assert_output(const aibox_model *m, int classes)
{
    int c, h, w;
    aibox_model_node_shape(m, aibox_model_output(m), &c, &h, &w);
    assert_int_equal(c, classes);
    assert_int_equal(h, 1);
    assert_int_equal(w, 1);
}

static size_t count_of(preset_fn fn, int classes, int channels, int size)
{
    aibox_model *m = build(fn, classes, channels, size);
    assert_output(m, classes);
    size_t n = aibox_model_param_count(m);
    aibox_model_free(&m);
    return n;
}

/* AI-Box paper Table 1: 16,888,226 at 256x256x3 for 2 classes; dropout adds
 * nodes but no parameters. */
static void test_alexnet_count(void **state)
{
    (void)state;
    aibox_model *m = NULL;
    aibox_error e = {0};
    assert_int_equal(count_of(alexnet_p25, 2, 3, 256), 16888226);
    assert_int_equal(aibox_preset_alexnet(&m, 2, 3, 256, 0.0f, &e), AIBOX_OK);
    assert_int_equal(aibox_model_param_count(m), 16888226);
    for (int i = 0; i < aibox_model_node_count(m); i++)
        assert_int_not_equal(aibox_model_node_kind(m, i), AIBOX_LAYER_DROPOUT);
    aibox_model_free(&m);
    assert_int_equal(aibox_preset_alexnet(&m, 2, 3, 256, 1.0f, &e), AIBOX_E_INVALID);
    assert_null(m);
    assert_true(e.msg[0] != 0);
}

/* torchvision squeezenet1_0 features (735,424) + Conv(512 -> 2, 1x1). Fully
 * convolutional: the same at 224 and 256. */
static void test_squeezenet_count(void **state)
{
    (void)state;
    assert_int_equal(count_of(aibox_preset_squeezenet, 2, 3, 224), 736450);
    assert_int_equal(count_of(aibox_preset_squeezenet, 2, 3, 256), 736450);
    assert_int_equal(count_of(aibox_preset_squeezenet, 1000, 3, 224), 1248424); /* torchvision's own */
}

/* torchvision resnet18: 11,689,512 for 1000 classes. */
static void test_resnet18_count(void **state)
{
    (void)state;
    assert_int_equal(count_of(aibox_preset_resnet18, 1000, 3, 224), 11689512);
    assert_int_equal(count_of(aibox_preset_resnet18, 2, 3, 256), 11689512 - 998 * 513);
}

/* torchvision resnet50 and wide_resnet50_2 (1000 classes): 25,557,032 and
 * 68,883,240 (sum(p.numel() for p in model.parameters())); fc is 2048 wide. */
static void test_bottleneck_counts(void **state)
{
    (void)state;
    assert_int_equal(count_of(aibox_preset_resnet50, 1000, 3, 224), 25557032);
    assert_int_equal(count_of(aibox_preset_resnet50, 2, 3, 64), 25557032 - 998 * 2049);
    assert_int_equal(count_of(aibox_preset_wide_resnet50_2, 1000, 3, 224), 68883240);
}

/* AI-Box Table 1 ResNeXt with keras_applications' block3 (see presets.c):
 * 3,731,906 trainable parameters for 2 classes. Keras' count_params() adds
 * the BN moving mean and variance (2 x 11,456 channels), 3,754,818; the
 * paper's 22,576,706 does not follow from Table 1 (presets.c explains). */
static void test_resnext_count(void **state)
{
    (void)state;
    assert_int_equal(count_of(aibox_preset_resnext, 2, 3, 256), 3731906);
    assert_int_equal(count_of(aibox_preset_resnext, 2, 3, 224), 3731906);
    /* the grouped 3x3 conv of the first block: 64 filters in 32 groups of 2,
     * 9 * 2 * 64 weights, as Keras' DepthwiseConv2D(depth_multiplier=2) */
    aibox_model *m = build(aibox_preset_resnext, 2, 3, 256);
    int seen = 0;
    for (int i = 1; i < aibox_model_node_count(m) && !seen; i++) {
        if (aibox_model_node_kind(m, i) != AIBOX_LAYER_CONV2D) continue;
        int c, h, w;
        aibox_model_node_shape(m, i, &c, &h, &w);
        size_t n = 0;
        aibox_model_node_param(m, i, 0, &n);
        if (c == 64 && h == 64 && n == 9 * 2 * 64) seen = 1;
    }
    assert_true(seen);
    aibox_model_free(&m);
}

static void test_small_count(void **state)
{
    (void)state;
    /* 896 + 18,496 + 73,856 conv, 8*8*128*128 + 128 and 128*2 + 2 dense */
    assert_int_equal(count_of(aibox_preset_small, 2, 3, 64), 1142210);
    /* Fashion-MNIST: 28 -> 14 -> 7 -> 3, 3*3*128 features */
    assert_int_equal(count_of(aibox_preset_small, 10, 1, 28), 241546);
}

/* classes x 1 x 1 at several sizes, including odd ones and each minimum. */
static void test_output_shapes(void **state)
{
    (void)state;
    static const int sizes[] = {64, 97, 224, 256};
    for (int p = 0; p < N_PRESETS; p++) {
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            aibox_model *m = build(presets[p].fn, 3, 3, sizes[k]);
            assert_output(m, 3);
            aibox_model_free(&m);
        }
        aibox_model *m = build(presets[p].fn, 5, 1, presets[p].min_size);
        assert_output(m, 5);
        aibox_model_free(&m);
    }
}

static void test_too_small(void **state)
{
    (void)state;
    for (int p = 0; p < N_PRESETS; p++) {
        int sizes[] = {presets[p].min_size - 1, 1};
        for (int k = 0; k < 2; k++) {
            aibox_model *m = (aibox_model *)&m; /* must come back NULL */
            aibox_error e = {0};
            assert_int_equal(presets[p].fn(&m, 2, 3, sizes[k], &e), AIBOX_E_SHAPE);
            assert_null(m);
            assert_int_equal(e.code, AIBOX_E_SHAPE);
            assert_true(e.msg[0] != 0);
            assert_non_null(strstr(e.msg, presets[p].name));
        }
    }
}

static void test_bad_arguments(void **state)
{
    (void)state;
    aibox_model *m = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_preset(&m, "resnet101", 2, 3, 224, &e), AIBOX_E_INVALID);
    assert_null(m);
    assert_non_null(strstr(e.msg, "resnet101"));
    e.msg[0] = 0;
    assert_int_equal(aibox_preset(&m, "", 2, 3, 224, &e), AIBOX_E_INVALID);
    assert_true(e.msg[0] != 0);
    assert_int_equal(aibox_preset(&m, "AlexNet", 2, 3, 224, &e), AIBOX_E_INVALID);
    assert_int_equal(aibox_preset(&m, NULL, 2, 3, 224, &e), AIBOX_E_INVALID);
    assert_int_equal(aibox_preset(NULL, "small", 2, 3, 64, &e), AIBOX_E_INVALID);
    assert_int_equal(aibox_preset(&m, "small", 2, 3, 64, NULL), AIBOX_OK); /* err may be NULL */
    aibox_model_free(&m);
    /* too large: the first convolution's output (96 x 6500 x 6500) exceeds
     * 2^31 - 1 values per sample; the builder's error comes back named after
     * the preset (and the 30000-pixel input itself, 2.7e9 values, is refused) */
    assert_int_equal(aibox_preset_alexnet(&m, 2, 3, 26000, 0.0f, &e), AIBOX_E_SHAPE);
    assert_null(m);
    assert_int_equal(strncmp(e.msg, "alexnet: ", 9), 0);
    assert_non_null(strstr(e.msg, "conv2d: output"));
    assert_int_equal(aibox_preset_alexnet(&m, 2, 3, 30000, 0.0f, &e), AIBOX_E_INVALID);
    assert_null(m);
    for (int p = 0; p < N_PRESETS; p++) {
        assert_int_equal(presets[p].fn(&m, 0, 3, 64, &e), AIBOX_E_INVALID);
        assert_null(m);
        assert_int_equal(presets[p].fn(&m, 2, 0, 64, &e), AIBOX_E_INVALID);
        assert_null(m);
        assert_int_equal(presets[p].fn(NULL, 2, 3, 64, &e), AIBOX_E_INVALID);
    }
}

/* By name: the same networks (and "aibox.arch" names them). */
static void test_by_name(void **state)
{
    (void)state;
    for (int p = 0; p < N_PRESETS; p++) {
        aibox_model *a = NULL, *b = NULL;
        aibox_error e = {0};
        assert_int_equal(aibox_preset(&a, presets[p].name, 4, 3, 64, &e), AIBOX_OK);
        b = build(presets[p].fn, 4, 3, 64);
        assert_int_equal(aibox_model_param_count(a), aibox_model_param_count(b));
        assert_int_equal(aibox_model_node_count(a), aibox_model_node_count(b));
        const char *arch = NULL;
        assert_int_equal(aibox_model_get_meta_str(a, "aibox.arch", &arch), AIBOX_OK);
        assert_string_equal(arch, presets[p].name);
        aibox_model_free(&a);
        aibox_model_free(&b);
    }
}

/* Taps at strides 4, 8, 16, 32, found through metadata. */
static void check_taps(preset_fn fn, int size, const int *channels)
{
    aibox_model *m = build(fn, 2, 3, size);
    for (int i = 0; i < 4; i++) {
        char key[32];
        snprintf(key, sizeof key, "aibox.tap.layer%d", i + 1);
        int64_t id = -1;
        assert_int_equal(aibox_model_get_meta_int(m, key, &id), AIBOX_OK);
        assert_true(id > 0 && id < aibox_model_node_count(m));
        int c, h, w;
        aibox_model_node_shape(m, (int)id, &c, &h, &w);
        assert_int_equal(c, channels[i]);
        assert_int_equal(h, size >> (i + 2));
        assert_int_equal(w, size >> (i + 2));
        assert_int_equal(aibox_model_node_kind(m, (int)id), AIBOX_LAYER_RELU); /* a block's output */
    }
    aibox_model_free(&m);
}

static void test_taps(void **state)
{
    (void)state;
    check_taps(aibox_preset_resnet18, 224, (const int[]){64, 128, 256, 512});
    check_taps(aibox_preset_resnet18, 256, (const int[]){64, 128, 256, 512});
    check_taps(aibox_preset_resnext, 256, (const int[]){128, 256, 512, 1024});
    check_taps(aibox_preset_resnet50, 224, (const int[]){256, 512, 1024, 2048});
    check_taps(aibox_preset_wide_resnet50_2, 64, (const int[]){256, 512, 1024, 2048});
}

/* One inference pass per preset at a small size: finite outputs of the right
 * shape (the graphs run, not only build). */
static void test_forward(void **state)
{
    (void)state;
    aibox_rng rng;
    aibox_rng_seed(&rng, 7);
    for (int p = 0; p < N_PRESETS; p++) {
        const int size = presets[p].min_size > 32 ? presets[p].min_size : 64, n = 2, classes = 3;
        aibox_model *m = build(presets[p].fn, classes, 3, size);
        aibox_ctx *ctx = NULL;
        aibox_error e = {0};
        assert_int_equal(aibox_ctx_create(&ctx, m, &(aibox_ctx_opts){.max_batch = n, .height = size, .width = size, .seed = 1}, &e), AIBOX_OK);
        size_t count = (size_t)n * 3 * size * size;
        float *x = aibox_test_floats(count);
        aibox_test_fill_uniform(&rng, x, count, -1.0f, 1.0f);
        if (aibox_ctx_infer(ctx, m, x, n, &e) != AIBOX_OK) fail_msg("%s: %s", presets[p].name, e.msg);
        int c, h, w;
        const float *y = aibox_ctx_output(ctx, &c, &h, &w);
        assert_non_null(y);
        assert_int_equal(c, classes);
        assert_int_equal(h * w, 1);
        for (int i = 0; i < n * classes; i++) assert_true(isfinite(y[i]));
        free(x);
        aibox_ctx_free(&ctx);
        aibox_model_free(&m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alexnet_count), cmocka_unit_test(test_squeezenet_count),
        cmocka_unit_test(test_resnet18_count), cmocka_unit_test(test_bottleneck_counts),
        cmocka_unit_test(test_resnext_count),
        cmocka_unit_test(test_small_count),   cmocka_unit_test(test_output_shapes),
        cmocka_unit_test(test_too_small),     cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_by_name),       cmocka_unit_test(test_taps),
        cmocka_unit_test(test_forward),
    };
    return cmocka_run_group_tests_name("nn/presets", tests, NULL, NULL);
}

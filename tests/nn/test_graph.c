/* The model graph end to end: whole-graph gradients against finite
 * differences, a toy problem learnt to 100 %, builder errors, shape checks,
 * optimizer updates against hand-written formulas, two threads inferring on
 * one model, and .aibox save/load (bit-exact; damaged files refused). */
#include <math.h>
#include <pthread.h>
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
#include "common/check.h"

/* input 2x8x8 -> conv3x3(4)+BN+ReLU -> [conv1x1(4) add] -> concat with a
 * depthwise conv -> maxpool 2 -> avgpool 2 (stride 1, pad) -> bilinear up ->
 * leaky -> conv stride 2 -> sigmoid/clamp mix -> flatten -> dense(3).
 * Covers every trainable kind and the branching node kinds. */
static aibox_model *graph_model(int with_dropout)
{
    aibox_model *m = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_model_create(&m, 2, 8, 8, &e), AIBOX_OK);
    int x = 0;
    int a = aibox_conv2d_simple(m, x, 4, 3, 1, 1);
    a = aibox_batchnorm(m, a, 1e-3f, 0.1f);
    a = aibox_relu(m, a);
    int b = aibox_conv2d(m, a, &(aibox_conv_opts){.out_channels = 4, .kernel_h = 1, .kernel_w = 1, .bias = 1});
    int r = aibox_add(m, a, b);
    int d = aibox_conv2d(m, r, &(aibox_conv_opts){.out_channels = 4, .kernel_h = 3, .kernel_w = 3, .pad_top = 1,
                                                  .pad_left = 1, .pad_bottom = 1, .pad_right = 1, .groups = 4});
    int f = aibox_relu(m, aibox_conv2d_simple(m, d, 4, 3, 1, 1)); /* fused conv+ReLU */
    int cat = aibox_concat(m, 2, (int[]){r, f});
    int p = aibox_maxpool(m, cat, &(aibox_pool_opts){.kernel_h = 2, .kernel_w = 2});
    p = aibox_avgpool(m, p, &(aibox_pool_opts){.kernel_h = 2, .kernel_w = 2, .stride_h = 1, .stride_w = 1,
                                               .pad_bottom = 1, .pad_right = 1});
    p = aibox_upsample_bilinear(m, p, 6, 6);
    p = aibox_leaky_relu(m, p, 0.1f);
    p = aibox_zeropad(m, p, 1, 0, 0, 1);
    p = aibox_conv2d(m, p, &(aibox_conv_opts){.out_channels = 3, .kernel_h = 3, .kernel_w = 3, .stride_h = 2,
                                              .stride_w = 2, .bias = 1});
    int s1 = aibox_sigmoid(m, p);
    int s2 = aibox_upsample_nearest(m, p, 3, 3);
    p = aibox_add(m, s1, s2);
    if (with_dropout) p = aibox_dropout(m, p, 0.3f);
    p = aibox_flatten(m, p);
    p = aibox_dense(m, p, 3, 1);
    assert_true(p > 0);
    assert_int_equal(aibox_model_finish(m, 42, &e), AIBOX_OK);
    return m;
}

/* Step of the whole-graph finite differences: small enough not to cross
 * max-pool/ReLU kinks (1e-2 and 2e-3 do, for a few entries), large enough
 * for float noise (2.5e-4 is not). */
#define H_STEP 1e-3
static float loss_at(aibox_ctx *c, aibox_model *m, const float *x, int n, const int *labels, const float *w)
{
    aibox_error e = {0};
    float l = 0;
    assert_int_equal(aibox_ctx_forward(c, m, x, n, &e), AIBOX_OK);
    assert_int_equal(aibox_ctx_loss_softmax_ce(c, labels, w, &l, &e), AIBOX_OK);
    return l;
}

/* Every parameter's gradient (and the input's) against central differences
 * of the float loss: step H_STEP and tolerance 3e-3 abs + 3e-2 rel, loose
 * because the loss is float (per-layer checks in tests/ops are the precise ones). */
static void test_graph_gradients(void **state)
{
    aibox_model *m = graph_model(0);
    aibox_error e = {0};
    aibox_ctx *c = NULL;
    int n = 3;
    assert_int_equal(aibox_ctx_create(&c, m, &(aibox_ctx_opts){.mode = AIBOX_TRAIN, .max_batch = n, .height = 8, .width = 8, .seed = 1}, &e), AIBOX_OK);
    aibox_ctx_set_input_grad(c, 1);
    aibox_rng rng;
    aibox_rng_seed(&rng, 5);
    float x[3 * 2 * 8 * 8];
    aibox_test_fill_uniform(&rng, x, sizeof x / sizeof *x, -1, 1);
    int labels[3] = {0, 2, 1};
    float cw[3] = {1.0f, 2.0f, 0.5f};
    aibox_model_zero_grad(m);
    loss_at(c, m, x, n, labels, cw);
    assert_int_equal(aibox_ctx_backward(c, m, &e), AIBOX_OK);
    const float *gx = aibox_ctx_input_grad(c);
    assert_non_null(gx);
    float gxs[3 * 2 * 8 * 8];
    memcpy(gxs, gx, sizeof gxs); /* the next loss call resets the context's gradients */
    size_t np = 0;
    float *params = aibox_model_params(m), *grads = aibox_model_grads(m);
    /* the parameter block is padded per tensor; walk nodes to visit real params */
    int checked = 0, bad = 0;
    double h = H_STEP;
    for (int node = 1; node < aibox_model_node_count(m); node++)
        for (int k = 0; k < 2; k++) {
            size_t cnt;
            float *p = aibox_model_node_param(m, node, k, &cnt);
            if (!p) continue;
            np += cnt;
            for (size_t i = 0; i < cnt; i += (cnt > 40 ? 7 : 1)) {
                float keep = p[i];
                p[i] = keep + (float)h;
                double lp = loss_at(c, m, x, n, labels, cw);
                p[i] = keep - (float)h;
                double lm = loss_at(c, m, x, n, labels, cw);
                p[i] = keep;
                double num = (lp - lm) / (2 * h), ana = grads[p - params + i];
                checked++;
                if (fabs(num - ana) > 3e-3 + 3e-2 * fabs(num)) {
                    bad++;
                    printf("node %d param %d[%zu]: numeric %.6f analytic %.6f\n", node, k, i, num, ana);
                }
            }
        }
    /* input gradient */
    for (size_t i = 0; i < sizeof x / sizeof *x; i += 5) {
        float keep = x[i];
        x[i] = keep + (float)h;
        double lp = loss_at(c, m, x, n, labels, cw);
        x[i] = keep - (float)h;
        double lm = loss_at(c, m, x, n, labels, cw);
        x[i] = keep;
        double num = (lp - lm) / (2 * h);
        checked++;
        if (fabs(num - gxs[i]) > 3e-3 + 3e-2 * fabs(num)) {
            bad++;
            printf("input[%zu]: numeric %.6f analytic %.6f\n", i, num, gxs[i]);
        }
    }
    printf("# %d gradients checked over %zu parameters, %d off\n", checked, np, bad);
    assert_true(checked > 200);
    assert_int_equal(bad, 0);
    aibox_ctx_free(&c);
    aibox_model_free(&m);
}

/* 3 classes of 8x8 images (horizontal bar, vertical bar, diagonal) with
 * noise and random positions: a small CNN must reach 100 % training accuracy. */
static void make_toy(aibox_rng *rng, int n, float *x, int *y)
{
    for (int i = 0; i < n; i++) {
        float *im = x + (size_t)i * 64;
        int cls = i % 3, pos = 1 + (int)aibox_rng_below(rng, 6);
        for (int j = 0; j < 64; j++) im[j] = 0.3f * aibox_rng_uniform(rng);
        for (int t = 0; t < 8; t++) {
            if (cls == 0) im[pos * 8 + t] += 1.0f;
            else if (cls == 1) im[t * 8 + pos] += 1.0f;
            else im[t * 8 + t] += 1.0f;
        }
        y[i] = cls;
    }
}

static void test_toy_learning(void **state)
{
    aibox_model *m = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_model_create(&m, 1, 8, 8, &e), AIBOX_OK);
    int h = aibox_relu(m, aibox_conv2d_simple(m, 0, 8, 3, 1, 1));
    h = aibox_maxpool(m, h, &(aibox_pool_opts){.kernel_h = 2, .kernel_w = 2});
    h = aibox_relu(m, aibox_conv2d_simple(m, h, 8, 3, 1, 1));
    h = aibox_flatten(m, h);
    h = aibox_dropout(m, h, 0.1f);
    h = aibox_dense(m, h, 3, 1);
    assert_int_equal(aibox_model_finish(m, 7, &e), AIBOX_OK);
    enum { N = 60, B = 12 };
    float x[N * 64];
    int y[N];
    aibox_rng rng;
    aibox_rng_seed(&rng, 3);
    make_toy(&rng, N, x, y);
    aibox_ctx *c = NULL, *ci = NULL;
    assert_int_equal(aibox_ctx_create(&c, m, &(aibox_ctx_opts){.mode = AIBOX_TRAIN, .max_batch = B, .height = 8, .width = 8, .seed = 9}, &e), AIBOX_OK);
    assert_int_equal(aibox_ctx_create(&ci, m, &(aibox_ctx_opts){.max_batch = N, .height = 8, .width = 8, .seed = 9}, &e), AIBOX_OK);
    aibox_optim *o = NULL;
    assert_int_equal(aibox_optim_create(&o, m, &(aibox_optim_opts){.kind = AIBOX_ADAM, .lr = 1e-2f}, &e), AIBOX_OK);
    int correct = 0, epoch;
    for (epoch = 0; epoch < 60 && correct < N; epoch++) {
        for (int b = 0; b < N; b += B) {
            float l;
            aibox_model_zero_grad(m);
            assert_int_equal(aibox_ctx_forward(c, m, x + b * 64, B, &e), AIBOX_OK);
            assert_int_equal(aibox_ctx_loss_softmax_ce(c, y + b, NULL, &l, &e), AIBOX_OK);
            assert_int_equal(aibox_ctx_backward(c, m, &e), AIBOX_OK);
            assert_int_equal(aibox_optim_step(o, m, &e), AIBOX_OK);
        }
        assert_int_equal(aibox_ctx_infer(ci, m, x, N, &e), AIBOX_OK);
        const float *out = aibox_ctx_output(ci, NULL, NULL, NULL);
        correct = 0;
        for (int i = 0; i < N; i++) {
            int best = 0;
            for (int k = 1; k < 3; k++)
                if (out[i * 3 + k] > out[i * 3 + best]) best = k;
            correct += best == y[i];
        }
    }
    printf("# toy problem: %d/%d correct after %d epochs\n", correct, N, epoch);
    assert_int_equal(correct, N);
    aibox_optim_free(&o);
    aibox_ctx_free(&c);
    aibox_ctx_free(&ci);
    aibox_model_free(&m);
}

static void test_builder_errors(void **state)
{
    aibox_model *m = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_model_create(&m, 3, 4, 4, &e), AIBOX_OK);
    int h = aibox_conv2d_simple(m, 0, 8, 7, 1, 0); /* 7x7 on 4x4 without padding */
    assert_int_equal(h, -(int)AIBOX_E_SHAPE);
    assert_int_equal(aibox_relu(m, h), -(int)AIBOX_E_SHAPE); /* sticky */
    assert_int_not_equal(aibox_model_finish(m, 1, &e), AIBOX_OK);
    assert_int_equal(e.code, AIBOX_E_SHAPE);
    assert_non_null(strstr(e.msg, "conv2d"));
    aibox_model_free(&m);
    assert_null(m);
    /* groups that do not divide, unknown inputs, bad options */
    assert_int_equal(aibox_model_create(&m, 3, 4, 4, &e), AIBOX_OK);
    assert_true(aibox_conv2d(m, 0, &(aibox_conv_opts){.out_channels = 4, .kernel_h = 1, .kernel_w = 1, .groups = 2}) < 0);
    aibox_model_free(&m);
    assert_int_equal(aibox_model_create(&m, 3, 4, 4, &e), AIBOX_OK);
    assert_true(aibox_relu(m, 5) < 0);
    aibox_model_free(&m);
    assert_int_equal(aibox_model_create(&m, 3, 4, 4, &e), AIBOX_OK);
    assert_true(aibox_dropout(m, 0, 1.0f) < 0);
    aibox_model_free(&m);
    assert_int_equal(aibox_model_create(&m, 0, 4, 4, &e), AIBOX_E_INVALID);
    assert_null(m);
    /* training calls in the wrong order are refused, not crashed */
    aibox_model *g = graph_model(0);
    aibox_ctx *c = NULL;
    assert_int_equal(aibox_ctx_create(&c, g, &(aibox_ctx_opts){.mode = AIBOX_TRAIN, .max_batch = 2, .height = 8, .width = 8, .seed = 1}, &e), AIBOX_OK);
    assert_int_equal(aibox_ctx_backward(c, g, &e), AIBOX_E_STATE);
    assert_int_equal(aibox_ctx_loss_mse(c, (float[6]){0}, NULL, &e), AIBOX_E_STATE);
    float x[2 * 2 * 8 * 8] = {0};
    assert_int_equal(aibox_ctx_forward(c, g, x, 3, &e), AIBOX_E_INVALID); /* above max batch */
    assert_int_equal(aibox_ctx_forward(c, g, x, 2, &e), AIBOX_OK);
    assert_int_equal(aibox_ctx_loss_softmax_ce(c, (int[]){0, 7}, NULL, NULL, &e), AIBOX_E_INVALID);
    aibox_ctx_free(&c);
    /* a zeroed options struct: inference, batch 1, the model's own size;
     * the channel count always comes from the model */
    assert_int_equal(aibox_ctx_create(&c, g, NULL, &e), AIBOX_OK);
    assert_int_equal(aibox_ctx_forward(c, g, x, 1, &e), AIBOX_OK);
    assert_int_equal(aibox_ctx_forward(c, g, x, 2, &e), AIBOX_E_INVALID);
    assert_int_equal(aibox_ctx_backward(c, g, &e), AIBOX_E_STATE); /* says why, not "compute a loss first" */
    assert_non_null(strstr(e.msg, "created for inference"));
    aibox_ctx_free(&c);
    assert_int_equal(aibox_ctx_create(&c, g, &(aibox_ctx_opts){.mode = (aibox_mode)7}, &e), AIBOX_E_INVALID);
    /* a dense layer fixes the input size */
    aibox_model_free(&g);
    assert_int_equal(aibox_model_create(&m, 1, 8, 8, &e), AIBOX_OK);
    aibox_dense(m, aibox_flatten(m, aibox_conv2d_simple(m, 0, 2, 3, 1, 1)), 2, 1);
    assert_int_equal(aibox_model_finish(m, 1, &e), AIBOX_OK);
    assert_int_equal(aibox_ctx_create(&c, m, &(aibox_ctx_opts){.height = 16, .width = 16, .seed = 1}, &e), AIBOX_E_SHAPE);
    assert_non_null(strstr(e.msg, "dense"));
    assert_null(c);
    aibox_model_free(&m);
}

/* A fully convolutional model runs on other input sizes than it was built for. */
static void test_other_input_size(void **state)
{
    aibox_model *m = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_model_create(&m, 3, 32, 32, &e), AIBOX_OK);
    int h = aibox_conv2d_simple(m, 0, 4, 3, 2, 1);
    h = aibox_global_avgpool(m, h);
    assert_int_equal(aibox_model_finish(m, 1, &e), AIBOX_OK);
    aibox_ctx *c = NULL;
    assert_int_equal(aibox_ctx_create(&c, m, &(aibox_ctx_opts){.height = 50, .width = 70, .seed = 1}, &e), AIBOX_OK);
    int oc, oh, ow;
    float *x = aibox_test_floats(3 * 50 * 70);
    assert_int_equal(aibox_ctx_infer(c, m, x, 1, &e), AIBOX_OK);
    assert_non_null(aibox_ctx_output(c, &oc, &oh, &ow));
    assert_int_equal(oc, 4);
    assert_int_equal(oh, 1);
    free(x);
    aibox_ctx_free(&c);
    aibox_model_free(&m);
}

/* One tiny model with one dense layer: optimizer steps compared with the
 * update rules written out in double. */
static void optim_case(aibox_optim_opts opts, int steps)
{
    aibox_model *m = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_model_create(&m, 3, 1, 1, &e), AIBOX_OK);
    aibox_dense(m, 0, 2, 1);
    assert_int_equal(aibox_model_finish(m, 3, &e), AIBOX_OK);
    aibox_optim *o = NULL;
    assert_int_equal(aibox_optim_create(&o, m, &opts, &e), AIBOX_OK);
    size_t nw, nb;
    float *w = aibox_model_node_param(m, 1, 0, &nw), *b = aibox_model_node_param(m, 1, 1, &nb);
    float *gw = aibox_model_grads(m) + (w - aibox_model_params(m)), *gb = aibox_model_grads(m) + (b - aibox_model_params(m));
    double p[8], mm[8] = {0}, vv[8] = {0};
    for (size_t i = 0; i < 6; i++) p[i] = w[i];
    for (size_t i = 0; i < 2; i++) p[6 + i] = b[i];
    double lr = opts.lr, b1 = 0.9, b2 = 0.999, eps = 1e-7, wd = opts.weight_decay;
    for (int t = 1; t <= steps; t++) {
        double g[8];
        for (int i = 0; i < 8; i++) g[i] = sin(1.3 * i + 0.7 * t); /* any gradient */
        for (int i = 0; i < 6; i++) gw[i] = (float)g[i];
        for (int i = 0; i < 2; i++) gb[i] = (float)g[6 + i];
        assert_int_equal(aibox_optim_step(o, m, &e), AIBOX_OK);
        for (int i = 0; i < 8; i++) {
            if (opts.kind == AIBOX_SGD) {
                double gi = g[i] + wd * p[i];
                mm[i] = opts.momentum * mm[i] + gi;
                p[i] -= lr * (opts.nesterov ? gi + opts.momentum * mm[i] : mm[i]);
            } else {
                double gi = g[i] + (opts.kind == AIBOX_ADAM ? wd * p[i] : 0);
                mm[i] = b1 * mm[i] + (1 - b1) * gi;
                vv[i] = b2 * vv[i] + (1 - b2) * gi * gi;
                double lrt = lr * sqrt(1 - pow(b2, t)) / (1 - pow(b1, t));
                p[i] -= (opts.kind == AIBOX_ADAMW ? lr * wd * p[i] : 0) + lrt * mm[i] / (sqrt(vv[i]) + eps);
            }
        }
    }
    float got[8];
    memcpy(got, w, 6 * sizeof(float));
    memcpy(got + 6, b, 2 * sizeof(float));
    AIBOX_TEST_CLOSE("optimizer parameters", got, p, 8, 1e-6, 1e-5);
    aibox_optim_free(&o);
    aibox_model_free(&m);
}

/* Steps split over a context's threads (aibox_optim_set_ctx) change no bit:
 * a model past the size that is split (two dense layers, one frozen, so a
 * task's range crosses trainable and frozen blocks), any gradient, each
 * kind, 1 and 3 threads against the caller's thread alone. */
static void test_optim_threads(void **state)
{
    const aibox_optim_opts kinds[] = {{.kind = AIBOX_ADAM, .lr = 1e-2f, .weight_decay = 1e-3f},
                                      {.kind = AIBOX_ADAMW, .lr = 1e-2f, .weight_decay = 1e-2f},
                                      {.kind = AIBOX_SGD, .lr = 0.05f, .momentum = 0.9f, .nesterov = 1}};
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
        float *ref = NULL;
        size_t count = 0;
        for (int th = 0; th <= 3; th += th ? 2 : 1) { /* 0: no context; then 1 and 3 threads */
            aibox_model *m = NULL;
            aibox_error e = {0};
            assert_int_equal(aibox_model_create(&m, 301, 1, 1, &e), AIBOX_OK);
            int h = aibox_dense(m, 0, 250, 1);
            aibox_dense(m, h, 7, 1);
            assert_int_equal(aibox_model_finish(m, 11, &e), AIBOX_OK);
            assert_int_equal(aibox_model_set_frozen(m, 2, 1), AIBOX_OK);
            aibox_ctx *c = NULL;
            aibox_ctx_opts co = {.mode = AIBOX_TRAIN, .threads = th ? th : 1};
            assert_int_equal(aibox_ctx_create(&c, m, &co, &e), AIBOX_OK);
            aibox_optim *o = NULL;
            assert_int_equal(aibox_optim_create(&o, m, &kinds[k], &e), AIBOX_OK);
            if (th) aibox_optim_set_ctx(o, c);
            count = aibox_model_param_count(m);
            assert_true(count > 65536);
            float *g = aibox_model_grads(m);
            for (int t = 1; t <= 4; t++) {
                for (size_t i = 0; i < count; i++) g[i] = (float)sin(0.37 * (double)i + 1.1 * t);
                assert_int_equal(aibox_optim_step(o, m, &e), AIBOX_OK);
            }
            if (!ref) {
                ref = malloc(count * sizeof(float));
                assert_non_null(ref);
                memcpy(ref, aibox_model_params(m), count * sizeof(float));
            } else if (memcmp(ref, aibox_model_params(m), count * sizeof(float))) {
                fail_msg("optimizer kind %d: %d threads changed the parameters", (int)kinds[k].kind, th);
            }
            aibox_optim_set_ctx(o, NULL);
            aibox_optim_free(&o);
            aibox_ctx_free(&c);
            aibox_model_free(&m);
        }
        free(ref);
    }
}

static float halve_every_2(void *user, long step, int epoch, float base)
{
    (void)user, (void)epoch;
    return base * powf(0.5f, (float)(step / 2));
}

static void test_optimizers(void **state)
{
    optim_case((aibox_optim_opts){.kind = AIBOX_SGD, .lr = 0.1f}, 5);
    optim_case((aibox_optim_opts){.kind = AIBOX_SGD, .lr = 0.05f, .momentum = 0.9f, .weight_decay = 1e-2f}, 5);
    optim_case((aibox_optim_opts){.kind = AIBOX_SGD, .lr = 0.05f, .momentum = 0.9f, .nesterov = 1}, 5);
    optim_case((aibox_optim_opts){.kind = AIBOX_ADAM, .lr = 1e-3f}, 7);
    optim_case((aibox_optim_opts){.kind = AIBOX_ADAM, .lr = 1e-2f, .weight_decay = 1e-3f}, 4);
    optim_case((aibox_optim_opts){.kind = AIBOX_ADAMW, .lr = 1e-2f, .weight_decay = 0.1f}, 6);
    /* schedule hook: the rate reported is the one used */
    aibox_model *m = graph_model(0);
    aibox_optim *o = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_optim_create(&o, m, &(aibox_optim_opts){.kind = AIBOX_SGD, .lr = 0.4f}, &e), AIBOX_OK);
    aibox_optim_set_schedule(o, halve_every_2, NULL);
    float want[5] = {0.4f, 0.4f, 0.2f, 0.2f, 0.1f};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(aibox_optim_step(o, m, &e), AIBOX_OK);
        assert_float_equal(aibox_optim_lr(o), want[i], 1e-7);
    }
    aibox_optim_free(&o);
    aibox_model_free(&m);
    /* defaults are Keras' Adam */
    m = graph_model(0);
    assert_int_equal(aibox_optim_create(&o, m, NULL, &e), AIBOX_OK);
    assert_float_equal(aibox_optim_lr(o), 1e-3f, 1e-9);
    aibox_optim_free(&o);
    aibox_model_free(&m);
}

/* ---- two threads, one model ---- */
typedef struct {
    const aibox_model *m;
    const float *x;
    float out[4 * 3];
    int ok;
} thread_job;

static void *infer_thread(void *arg)
{
    thread_job *j = arg;
    aibox_ctx *c = NULL;
    aibox_error e = {0};
    j->ok = 0;
    if (aibox_ctx_create(&c, j->m, &(aibox_ctx_opts){.max_batch = 4, .height = 8, .width = 8, .seed = 1}, &e)) return NULL;
    for (int rep = 0; rep < 200; rep++) {
        if (aibox_ctx_infer(c, j->m, j->x, 4, &e)) return NULL;
        const float *o = aibox_ctx_output(c, NULL, NULL, NULL);
        if (rep == 0) memcpy(j->out, o, sizeof j->out);
        else if (memcmp(j->out, o, sizeof j->out)) return NULL;
    }
    aibox_ctx_free(&c);
    j->ok = 1;
    return NULL;
}

static void test_threads(void **state)
{
    aibox_model *m = graph_model(1);
    float x[4 * 2 * 8 * 8];
    aibox_rng rng;
    aibox_rng_seed(&rng, 77);
    aibox_test_fill_uniform(&rng, x, sizeof x / sizeof *x, -1, 1);
    thread_job a = {m, x, {0}, 0}, b = {m, x, {0}, 0}, solo = {m, x, {0}, 0};
    infer_thread(&solo);
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, infer_thread, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, infer_thread, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_true(a.ok && b.ok && solo.ok);
    assert_memory_equal(a.out, solo.out, sizeof a.out);
    assert_memory_equal(b.out, solo.out, sizeof b.out);
    aibox_model_free(&m);
}

/* ---- files ---- */
static char tmpdir[64];

static void tmp_path(char *buf, size_t len, const char *name) { snprintf(buf, len, "%s/%s", tmpdir, name); }

/* Splitting work over 1, 2 or 3 threads gives the same results, within
 * float summation-order noise (dense layers split their GEMM). */
static void test_thread_counts(void **state)
{
    aibox_model *m = graph_model(0);
    aibox_error e = {0};
    float x[5 * 2 * 8 * 8];
    aibox_rng rng;
    aibox_rng_seed(&rng, 78);
    aibox_test_fill_uniform(&rng, x, sizeof x / sizeof *x, -1, 1);
    float ref[5 * 3], grads1[2048];
    size_t ng = 0;
    for (int threads = 1; threads <= 3; threads++)
        for (int n = 1; n <= 5; n += 4) {
            aibox_ctx *c = NULL;
            assert_int_equal(aibox_ctx_create(&c, m, &(aibox_ctx_opts){.mode = AIBOX_TRAIN, .max_batch = n, .height = 8, .width = 8, .threads = threads, .seed = 1}, &e), AIBOX_OK);
            assert_int_equal(aibox_ctx_threads(c), threads);
            aibox_model_zero_grad(m);
            assert_int_equal(aibox_ctx_forward(c, m, x, n, &e), AIBOX_OK);
            float out[5 * 3];
            memcpy(out, aibox_ctx_output(c, NULL, NULL, NULL), (size_t)n * 3 * sizeof(float));
            assert_int_equal(aibox_ctx_loss_softmax_ce(c, (int[]){0, 1, 2, 1, 0}, NULL, NULL, &e), AIBOX_OK);
            assert_int_equal(aibox_ctx_backward(c, m, &e), AIBOX_OK);
            if (n == 5) {
                size_t np = 0;
                for (int node = 1; node < aibox_model_node_count(m); node++)
                    for (int k = 0; k < 2; k++) {
                        size_t cnt;
                        float *p = aibox_model_node_param(m, node, k, &cnt);
                        if (!p) continue;
                        const float *g = aibox_model_grads(m) + (p - aibox_model_params(m));
                        assert_true(np + cnt <= sizeof grads1 / sizeof *grads1);
                        if (threads == 1) memcpy(grads1 + np, g, cnt * sizeof(float));
                        else AIBOX_TEST_CLOSE_FF("gradients vs 1 thread", g, grads1 + np, cnt, 1e-5, 1e-4);
                        np += cnt;
                    }
                ng = np;
                if (threads == 1) memcpy(ref, out, sizeof ref);
                else AIBOX_TEST_CLOSE_FF("outputs vs 1 thread", out, ref, 15, 1e-6, 1e-5);
            }
            aibox_ctx_free(&c);
        }
    assert_true(ng > 100);
    aibox_model_free(&m);
}

static void test_save_load(void **state)
{
    aibox_model *m = graph_model(1), *l = NULL;
    aibox_error e = {0};
    /* train one step so BN statistics and parameters are not the initial ones */
    aibox_ctx *c = NULL;
    float x[2 * 2 * 8 * 8];
    aibox_rng rng;
    aibox_rng_seed(&rng, 8);
    aibox_test_fill_uniform(&rng, x, sizeof x / sizeof *x, -1, 1);
    assert_int_equal(aibox_ctx_create(&c, m, &(aibox_ctx_opts){.mode = AIBOX_TRAIN, .max_batch = 2, .height = 8, .width = 8, .seed = 1}, &e), AIBOX_OK);
    assert_int_equal(aibox_ctx_forward(c, m, x, 2, &e), AIBOX_OK);
    aibox_ctx_free(&c);
    const char *names[] = {"good", "scratch", "dent"};
    assert_int_equal(aibox_model_set_meta_strs(m, "aibox.class_names", 3, names, &e), AIBOX_OK);
    assert_int_equal(aibox_model_set_meta_int(m, "aibox.seed", 1234, &e), AIBOX_OK);
    assert_int_equal(aibox_model_set_meta_float(m, "aibox.norm.scale", 1.0 / 255, &e), AIBOX_OK);
    char path[128];
    tmp_path(path, sizeof path, "m.aibox");
    assert_int_equal(aibox_model_save(m, path, &e), AIBOX_OK);
    assert_int_equal(aibox_model_load(&l, path, &e), AIBOX_OK);
    assert_int_equal(aibox_model_node_count(l), aibox_model_node_count(m));
    assert_int_equal(aibox_model_param_count(l), aibox_model_param_count(m));
    for (int i = 1; i < aibox_model_node_count(m); i++)
        for (int k = 0; k < 2; k++) {
            size_t a, b;
            float *pa = aibox_model_node_param(m, i, k, &a), *pb = aibox_model_node_param(l, i, k, &b);
            assert_int_equal(a, b);
            if (a) assert_memory_equal(pa, pb, a * sizeof(float));
            pa = aibox_model_node_state(m, i, k, &a), pb = aibox_model_node_state(l, i, k, &b);
            assert_int_equal(a, b);
            if (a) assert_memory_equal(pa, pb, a * sizeof(float));
        }
    int n;
    const char *const *got;
    assert_int_equal(aibox_model_get_meta_strs(l, "aibox.class_names", &n, &got), AIBOX_OK);
    assert_int_equal(n, 3);
    assert_string_equal(got[1], "scratch");
    int64_t seed;
    assert_int_equal(aibox_model_get_meta_int(l, "aibox.seed", &seed), AIBOX_OK);
    assert_int_equal(seed, 1234);
    const char *ver;
    assert_int_equal(aibox_model_get_meta_str(l, "aibox.library_version", &ver), AIBOX_OK);
    assert_string_equal(ver, AIBOX_VERSION);
    /* same outputs, bit for bit */
    aibox_ctx *ca = NULL, *cb = NULL;
    assert_int_equal(aibox_ctx_create(&ca, m, &(aibox_ctx_opts){.max_batch = 2, .height = 8, .width = 8, .seed = 1}, &e), AIBOX_OK);
    assert_int_equal(aibox_ctx_create(&cb, l, &(aibox_ctx_opts){.max_batch = 2, .height = 8, .width = 8, .seed = 1}, &e), AIBOX_OK);
    assert_int_equal(aibox_ctx_infer(ca, m, x, 2, &e), AIBOX_OK);
    assert_int_equal(aibox_ctx_infer(cb, l, x, 2, &e), AIBOX_OK);
    assert_memory_equal(aibox_ctx_output(ca, NULL, NULL, NULL), aibox_ctx_output(cb, NULL, NULL, NULL), 6 * sizeof(float));
    /* saving the loaded model gives the same bytes */
    char path2[128];
    tmp_path(path2, sizeof path2, "m2.aibox");
    assert_int_equal(aibox_model_save(l, path2, &e), AIBOX_OK);
    FILE *fa = fopen(path, "rb"), *fb = fopen(path2, "rb");
    assert_non_null(fa);
    assert_non_null(fb);
    int same = 1, ca_, cb_;
    do {
        ca_ = fgetc(fa), cb_ = fgetc(fb);
        same &= ca_ == cb_;
    } while (ca_ != EOF && cb_ != EOF);
    fclose(fa), fclose(fb);
    assert_true(same);
    aibox_ctx_free(&ca), aibox_ctx_free(&cb);
    aibox_model_free(&l);
    aibox_model_free(&m);
    unlink(path2);
}

static unsigned char *slurp(const char *path, long *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)*len);
    assert_int_equal(fread(b, 1, (size_t)*len, f), (size_t)*len);
    fclose(f);
    return b;
}

static void spit(const char *path, const unsigned char *b, long len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
}

/* Damaged model files are refused with a message naming the file; the
 * container's own suite flips every bit of a small file, this one samples a
 * real model. */
static void test_load_refuses_damage(void **state)
{
    char path[128], bad[128];
    tmp_path(path, sizeof path, "m.aibox");
    tmp_path(bad, sizeof bad, "bad.aibox");
    long len;
    unsigned char *b = slurp(path, &len);
    aibox_error e = {0};
    aibox_model *m = NULL;
    long cuts[] = {0, 1, 7, 63, len / 2, len - 5, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        spit(bad, b, cuts[i]);
        memset(&e, 0, sizeof e);
        assert_int_not_equal(aibox_model_load(&m, bad, &e), AIBOX_OK);
        assert_null(m);
        assert_non_null(strstr(e.msg, bad));
    }
    for (long pos = 3; pos < len; pos += len / 61) {
        for (int bit = 0; bit < 8; bit += 3) {
            b[pos] ^= (unsigned char)(1u << bit);
            spit(bad, b, len);
            b[pos] ^= (unsigned char)(1u << bit);
            memset(&e, 0, sizeof e);
            assert_int_not_equal(aibox_model_load(&m, bad, &e), AIBOX_OK);
            assert_null(m);
            assert_non_null(strstr(e.msg, bad));
        }
    }
    /* a foreign file and a missing one */
    spit(bad, (const unsigned char *)"\x1c\0\0\0TFL3 not really a model", 28);
    assert_int_not_equal(aibox_model_load(&m, bad, &e), AIBOX_OK);
    assert_non_null(strstr(e.msg, bad));
    tmp_path(bad, sizeof bad, "missing.aibox");
    assert_int_not_equal(aibox_model_load(&m, bad, &e), AIBOX_OK);
    assert_non_null(strstr(e.msg, "missing.aibox"));
    free(b);
}

static int setup_dir(void **state)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/aibox-graph-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Extraction keeps a trunk bit-exact; a head appended to it reopens the model
 * and the next finish initialises only the head. */
static void test_extract_and_reopen(void **state)
{
    (void)state;
    aibox_error err;
    aibox_model *full = NULL, *trunk = NULL;
    assert_int_equal(aibox_preset_resnet18(&full, 10, 3, 64, &err), AIBOX_OK);
    int64_t tap2 = -1, tap1 = -1, tap4 = -1;
    assert_int_equal(aibox_model_get_meta_int(full, "aibox.tap.layer2", &tap2), AIBOX_OK);
    assert_int_equal(aibox_model_get_meta_int(full, "aibox.tap.layer1", &tap1), AIBOX_OK);
    int n_full = aibox_model_node_count(full);
    assert_int_equal(aibox_model_node_kind(full, aibox_model_embedding_node(full)), AIBOX_LAYER_GLOBAL_AVGPOOL);
    int *map = malloc(sizeof(int) * (size_t)n_full);
    assert_non_null(map);
    assert_int_equal(aibox_model_extract(&trunk, full, (int)tap2, map, &err), AIBOX_OK);
    assert_true(aibox_model_node_count(trunk) < n_full);
    assert_int_equal(aibox_model_output(trunk), map[tap2]);
    int64_t t1 = -1;
    assert_int_equal(aibox_model_get_meta_int(trunk, "aibox.tap.layer1", &t1), AIBOX_OK);
    assert_int_equal(t1, map[tap1]);
    assert_int_equal(aibox_model_get_meta_int(trunk, "aibox.tap.layer4", &tap4), AIBOX_OK);
    assert_int_equal(tap4, -1);
    aibox_model *bad = NULL;
    assert_int_equal(aibox_model_extract(&bad, full, n_full, NULL, &err), AIBOX_E_INVALID);
    assert_null(bad);

    /* Same activations at the tap: the trunk is the full model's prefix. */
    float x[3 * 64 * 64];
    aibox_rng rng;
    aibox_rng_seed(&rng, 5);
    for (size_t i = 0; i < sizeof x / sizeof *x; i++) x[i] = aibox_rng_normal(&rng);
    aibox_ctx *cf = NULL, *ct = NULL;
    assert_int_equal(aibox_ctx_create(&cf, full, &(aibox_ctx_opts){.height = 64, .width = 64}, &err), AIBOX_OK);
    assert_int_equal(aibox_ctx_create(&ct, trunk, &(aibox_ctx_opts){.height = 64, .width = 64}, &err), AIBOX_OK);
    assert_int_equal(aibox_ctx_infer(cf, full, x, 1, &err), AIBOX_OK);
    assert_int_equal(aibox_ctx_infer(ct, trunk, x, 1, &err), AIBOX_OK);
    int c1, h1, w1, c2, h2, w2;
    const float *a = aibox_ctx_node_output(cf, (int)tap2, &c1, &h1, &w1);
    const float *b = aibox_ctx_output(ct, &c2, &h2, &w2);
    assert_int_equal(c1, c2), assert_int_equal(h1, h2), assert_int_equal(w1, w2);
    assert_memory_equal(a, b, sizeof(float) * (size_t)c1 * h1 * w1);
    aibox_ctx_free(&ct);

    /* A head: the trunk's parameters survive, the head is drawn from the seed. */
    size_t n_trunk = aibox_model_param_count(trunk), cnt = 0;
    float *w_before = aibox_model_node_param(trunk, 1, 0, &cnt);
    float first = w_before[0], last = w_before[cnt - 1];
    int g = aibox_global_avgpool(trunk, aibox_model_output(trunk));
    int d = aibox_dense(trunk, g, 4, 1);
    assert_true(d > 0);
    assert_int_equal(aibox_model_finish(trunk, 9, &err), AIBOX_OK);
    assert_int_equal(aibox_model_output(trunk), d);
    assert_int_equal(aibox_model_param_count(trunk), n_trunk + 128 * 4 + 4);
    float *w_after = aibox_model_node_param(trunk, 1, 0, &cnt);
    assert_true(w_after[0] == first && w_after[cnt - 1] == last);
    size_t hc = 0;
    float *hw = aibox_model_node_param(trunk, d, 0, &hc);
    double ss = 0;
    for (size_t i = 0; i < hc; i++) ss += hw[i] * hw[i];
    assert_true(ss > 0);
    assert_int_equal(aibox_ctx_create(&ct, trunk, &(aibox_ctx_opts){.height = 64, .width = 64}, &err), AIBOX_OK);
    assert_int_equal(aibox_ctx_infer(ct, trunk, x, 1, &err), AIBOX_OK);
    const float *tapv = aibox_ctx_node_output(ct, map[tap2], NULL, NULL, NULL);
    assert_memory_equal(a, tapv, sizeof(float) * (size_t)c1 * h1 * w1);
    aibox_ctx_free(&ct);
    aibox_ctx_free(&cf);
    aibox_model_free(&trunk);
    aibox_model_free(&full);
    free(map);
}

/* A frozen trunk: backward stops at the head (nothing below trains), the
 * head's gradients are those of the unfrozen model, and the trunk's stay 0. */
static void test_frozen_trunk_backward(void **state)
{
    (void)state;
    aibox_error err;
    aibox_model *m = NULL;
    assert_int_equal(aibox_model_create(&m, 2, 12, 12, &err), AIBOX_OK);
    int a = aibox_relu(m, aibox_conv2d_simple(m, 0, 4, 3, 1, 1));
    int b = aibox_relu6(m, aibox_conv2d_simple(m, a, 6, 3, 2, 1));
    int gap = aibox_global_avgpool(m, b);
    int d = aibox_dense(m, aibox_dropout(m, gap, 0.0f), 3, 1);
    assert_true(d > 0);
    assert_int_equal(aibox_model_finish(m, 4, &err), AIBOX_OK);
    assert_int_equal(aibox_model_embedding_node(m), gap); /* the cut a new head goes on */
    int ins[2] = {-1, -1};
    assert_int_equal(aibox_model_node_inputs(m, d, ins, 2), 1);
    assert_int_equal(aibox_model_node_kind(m, ins[0]), AIBOX_LAYER_DROPOUT);
    assert_int_equal(aibox_model_node_inputs(m, 0, ins, 2), 0);
    assert_int_equal(aibox_model_node_inputs(m, d + 1, ins, 2), -1);
    float x[2 * 2 * 12 * 12];
    aibox_rng rng;
    aibox_rng_seed(&rng, 6);
    for (size_t i = 0; i < sizeof x / sizeof *x; i++) x[i] = aibox_rng_normal(&rng);
    int y[2] = {0, 2};
    size_t np = 0, nh = 0;
    float *g = aibox_model_grads(m);
    aibox_model_node_param(m, d, 0, &nh);
    float *ref = malloc(sizeof(float) * (nh + 3)); /* the head's weight and bias gradients */
    assert_non_null(ref);
    aibox_ctx *c = NULL;
    assert_int_equal(aibox_ctx_create(&c, m, &(aibox_ctx_opts){.mode = AIBOX_TRAIN, .max_batch = 2, .height = 12, .width = 12}, &err), AIBOX_OK);
    for (int frozen = 0; frozen < 2; frozen++) {
        for (int i = 1; i < d; i++) aibox_model_set_frozen(m, i, frozen);
        aibox_model_zero_grad(m);
        float loss;
        assert_int_equal(aibox_ctx_forward(c, m, x, 2, &err), AIBOX_OK);
        assert_int_equal(aibox_ctx_loss_softmax_ce(c, y, NULL, &loss, &err), AIBOX_OK);
        assert_int_equal(aibox_ctx_backward(c, m, &err), AIBOX_OK);
        float *hw = aibox_model_node_param(m, d, 0, &nh), *hb = aibox_model_node_param(m, d, 1, NULL);
        size_t off = (size_t)(hw - aibox_model_params(m)), boff = (size_t)(hb - aibox_model_params(m));
        if (!frozen) {
            memcpy(ref, g + off, sizeof(float) * nh);
            memcpy(ref + nh, g + boff, sizeof(float) * 3);
            double ss = 0;
            aibox_model_node_param(m, 1, 0, &np);
            for (size_t i = 0; i < np; i++) ss += g[i] * g[i];
            assert_true(ss > 0);
        } else {
            assert_memory_equal(ref, g + off, sizeof(float) * nh);
            assert_memory_equal(ref + nh, g + boff, sizeof(float) * 3);
            for (size_t i = 0; i < off; i++) assert_true(g[i] == 0.0f);
        }
    }
    aibox_ctx_free(&c);
    aibox_model_free(&m);
    free(ref);
}

/* Inference contexts fold a convolution's batch norm (and ReLU) into it:
 * the same outputs as the unfused path (a training context's inference),
 * also after the parameters change behind the context's back. */
static void test_bn_folding(void **state)
{
    (void)state;
    aibox_error err;
    aibox_model *m = NULL;
    assert_int_equal(aibox_model_create(&m, 3, 12, 12, &err), AIBOX_OK);
    aibox_conv_opts o = {6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1};
    int x = aibox_relu(m, aibox_batchnorm(m, aibox_conv2d(m, 0, &o), 1e-3f, 0.1f));
    aibox_conv_opts dw = {6, 3, 3, 2, 2, 1, 1, 1, 1, 6, 0}; /* depthwise, no bias: the direct path */
    x = aibox_batchnorm(m, aibox_conv2d(m, x, &dw), 1e-5f, 0.1f);
    int y = aibox_add(m, x, aibox_batchnorm(m, aibox_conv2d(m, aibox_maxpool(m, 0, &(aibox_pool_opts){2, 2, 2, 2, 0, 0, 0, 0, 0, 0}), &(aibox_conv_opts){6, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0}), 1e-5f, 0.1f));
    assert_true(y > 0);
    assert_int_equal(aibox_model_finish(m, 4, &err), AIBOX_OK);
    aibox_rng r;
    aibox_rng_seed(&r, 8);
    for (int i = 1; i < aibox_model_node_count(m); i++) { /* non-trivial statistics */
        size_t n = 0;
        float *g = aibox_model_node_param(m, i, 0, &n), *mu, *var;
        if (aibox_model_node_kind(m, i) != AIBOX_LAYER_BATCHNORM) continue;
        float *b = aibox_model_node_param(m, i, 1, NULL);
        mu = aibox_model_node_state(m, i, 0, NULL), var = aibox_model_node_state(m, i, 1, NULL);
        for (size_t k = 0; k < n; k++)
            g[k] = 0.5f + aibox_rng_uniform(&r), b[k] = aibox_rng_normal(&r) * 0.3f, mu[k] = aibox_rng_normal(&r),
            var[k] = 0.2f + aibox_rng_uniform(&r);
    }
    float in[2 * 3 * 12 * 12];
    for (size_t i = 0; i < sizeof in / sizeof *in; i++) in[i] = aibox_rng_normal(&r);
    aibox_ctx *ci = NULL, *ct = NULL;
    assert_int_equal(aibox_ctx_create(&ci, m, &(aibox_ctx_opts){.max_batch = 2, .height = 12, .width = 12}, &err), AIBOX_OK);
    assert_int_equal(aibox_ctx_create(&ct, m, &(aibox_ctx_opts){.mode = AIBOX_TRAIN, .max_batch = 2, .height = 12, .width = 12}, &err), AIBOX_OK);
    for (int round = 0; round < 2; round++) {
        assert_int_equal(aibox_ctx_infer(ci, m, in, 2, &err), AIBOX_OK);
        assert_int_equal(aibox_ctx_infer(ct, m, in, 2, &err), AIBOX_OK);
        int c, h, w;
        const float *a = aibox_ctx_output(ci, &c, &h, &w), *b = aibox_ctx_output(ct, NULL, NULL, NULL);
        for (int i = 0; i < 2 * c * h * w; i++) assert_float_equal(a[i], b[i], 1e-5f * (1 + fabsf(b[i])));
        float *mu = aibox_model_node_state(m, 2, 0, NULL); /* the first batch norm */
        for (int k = 0; k < 6; k++) mu[k] += 0.7f;
    }
    aibox_ctx_free(&ci);
    aibox_ctx_free(&ct);
    aibox_model_free(&m);
}

/* Largest |a - b| over n values, relative to the largest |b|. */
static double rel_diff(const float *a, const float *b, size_t n)
{
    double mx = 0, d = 0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(b[i])), d = fmax(d, fabs((double)a[i] - b[i]));
    return d / mx;
}

/* The contract of aibox_ctx_freeze_weights: a frozen context (Winograd for
 * both 3x3 convolutions, the second's blocks of tile rows spanning samples
 * of the batch of 3, 1 and 2 threads) gives
 * the unfrozen output within 1e-5 of its largest magnitude (measured about
 * 1e-7); it keeps the weights it froze until frozen again, while batch-norm
 * folding follows the model; training contexts and other models are refused. */
static void test_freeze_weights(void **state)
{
    (void)state;
    const double tol = 1e-5;
    aibox_error err;
    aibox_model *m = NULL, *other = NULL;
    assert_int_equal(aibox_model_create(&m, 8, 20, 20, &err), AIBOX_OK);
    int c1 = aibox_conv2d_simple(m, 0, 16, 3, 1, 1), bn = aibox_batchnorm(m, c1, 1e-5f, 0.1f);
    int p = aibox_maxpool(m, aibox_relu(m, bn), &(aibox_pool_opts){.kernel_h = 2, .kernel_w = 2});
    int c2 = aibox_conv2d_simple(m, p, 16, 3, 1, 1);
    assert_true(c2 > 0);
    assert_int_equal(aibox_model_finish(m, 3, &err), AIBOX_OK);
    aibox_rng r;
    aibox_rng_seed(&r, 12);
    float *g = aibox_model_node_param(m, bn, 0, NULL), *mu = aibox_model_node_state(m, bn, 0, NULL);
    float *var = aibox_model_node_state(m, bn, 1, NULL);
    for (int k = 0; k < 16; k++)
        g[k] = 0.5f + aibox_rng_uniform(&r), mu[k] = 0.3f * aibox_rng_normal(&r), var[k] = 0.2f + aibox_rng_uniform(&r);
    enum { N = 3, IN = 8 * 20 * 20, OUT = 16 * 10 * 10 };
    float in[N * IN], ref[N * OUT], ref2[N * OUT], got[N * OUT];
    for (int i = 0; i < N * IN; i++) in[i] = aibox_rng_normal(&r);
    aibox_ctx *plain = NULL, *fz[2] = {NULL, NULL}, *train = NULL;
    assert_int_equal(aibox_ctx_create(&plain, m, &(aibox_ctx_opts){.max_batch = N, .height = 20, .width = 20, .threads = 1}, &err), AIBOX_OK);
    assert_int_equal(aibox_ctx_infer(plain, m, in, N, &err), AIBOX_OK);
    memcpy(ref, aibox_ctx_output(plain, NULL, NULL, NULL), sizeof ref);
    for (int t = 0; t < 2; t++) {
        assert_int_equal(aibox_ctx_create(&fz[t], m, &(aibox_ctx_opts){.max_batch = N, .height = 20, .width = 20, .threads = t + 1}, &err), AIBOX_OK);
        size_t before = aibox_ctx_bytes(fz[t]);
        assert_int_equal(aibox_ctx_freeze_weights(fz[t], m, &err), AIBOX_OK);
        assert_true(aibox_ctx_bytes(fz[t]) > before); /* the transformed weights */
        assert_int_equal(aibox_ctx_infer(fz[t], m, in, N, &err), AIBOX_OK);
        double d = rel_diff(aibox_ctx_output(fz[t], NULL, NULL, NULL), ref, N * OUT);
        printf("# frozen vs unfrozen, %d thread(s): %.2e of the largest output\n", t + 1, d);
        assert_true(d <= tol && d > 0); /* > 0: it really ran another algorithm */
    }

    /* A changed convolution weight: the frozen context keeps the old one until frozen again. */
    float *w2 = aibox_model_node_param(m, c2, 0, NULL);
    w2[4] += 1.0f;
    assert_int_equal(aibox_ctx_infer(plain, m, in, N, &err), AIBOX_OK);
    memcpy(ref2, aibox_ctx_output(plain, NULL, NULL, NULL), sizeof ref2);
    assert_true(rel_diff(ref2, ref, N * OUT) > 1e-2);
    assert_int_equal(aibox_ctx_infer(fz[0], m, in, N, &err), AIBOX_OK);
    assert_true(rel_diff(aibox_ctx_output(fz[0], NULL, NULL, NULL), ref, N * OUT) <= tol);
    assert_int_equal(aibox_ctx_freeze_weights(fz[0], m, &err), AIBOX_OK);
    assert_int_equal(aibox_ctx_infer(fz[0], m, in, N, &err), AIBOX_OK);
    assert_true(rel_diff(aibox_ctx_output(fz[0], NULL, NULL, NULL), ref2, N * OUT) <= tol);
    /* batch-norm statistics are folded at every forward, frozen or not */
    for (int k = 0; k < 16; k++) mu[k] += 0.5f;
    assert_int_equal(aibox_ctx_infer(plain, m, in, N, &err), AIBOX_OK);
    assert_int_equal(aibox_ctx_infer(fz[0], m, in, N, &err), AIBOX_OK);
    memcpy(got, aibox_ctx_output(fz[0], NULL, NULL, NULL), sizeof got);
    assert_true(rel_diff(aibox_ctx_output(plain, NULL, NULL, NULL), ref2, N * OUT) > 1e-2);
    assert_true(rel_diff(got, aibox_ctx_output(plain, NULL, NULL, NULL), N * OUT) <= tol);

    err.msg[0] = 0;
    assert_int_equal(aibox_ctx_create(&train, m, &(aibox_ctx_opts){.mode = AIBOX_TRAIN, .max_batch = N, .height = 20, .width = 20}, &err), AIBOX_OK);
    assert_int_equal(aibox_ctx_freeze_weights(train, m, &err), AIBOX_E_INVALID);
    assert_non_null(strstr(err.msg, "inference"));
    assert_int_equal(aibox_model_create(&other, 8, 20, 20, &err), AIBOX_OK);
    assert_true(aibox_conv2d_simple(other, 0, 16, 3, 1, 1) > 0);
    assert_int_equal(aibox_model_finish(other, 3, &err), AIBOX_OK);
    assert_int_equal(aibox_ctx_freeze_weights(fz[1], other, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_ctx_freeze_weights(NULL, m, &err), AIBOX_E_INVALID);
    aibox_ctx_free(&train);
    aibox_ctx_free(&fz[0]);
    aibox_ctx_free(&fz[1]);
    aibox_ctx_free(&plain);
    aibox_model_free(&other);
    aibox_model_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_graph_gradients), cmocka_unit_test(test_toy_learning),
        cmocka_unit_test(test_builder_errors),  cmocka_unit_test(test_other_input_size),
        cmocka_unit_test(test_optimizers), cmocka_unit_test(test_optim_threads),      cmocka_unit_test(test_threads),
        cmocka_unit_test(test_thread_counts),
        cmocka_unit_test(test_save_load),       cmocka_unit_test(test_load_refuses_damage),
        cmocka_unit_test(test_extract_and_reopen), cmocka_unit_test(test_bn_folding), cmocka_unit_test(test_frozen_trunk_backward),
        cmocka_unit_test(test_freeze_weights),
    };
    return cmocka_run_group_tests_name("nn/graph", tests, setup_dir, remove_dir);
}

/* Post-training quantisation (lib/quant/quantize.c): batch norms folded
 * exactly (the folded float model equals the original to float rounding),
 * the 8-bit model close to the float one (its integers against double
 * precision on every node: within a few output steps), its weights the
 * per-channel symmetric int8 of the folded ones, the plan built at once;
 * refusals name the node; the tool: usage errors, unreadable calibration
 * images skipped with their names, no usable image an error. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aibox.h"
#include "common/check.h"
#include "nn/nn.h"

static char g_dir[256], g_bin[4096]; /* the tools: <build>/bin, this test being <build>/tests/quant/ */

/* conv-BN-ReLU, max pool, grouped conv-BN-ReLU6, 1x1 conv, GAP, dense,
 * softmax: the kinds the presets use, with trained-looking BN statistics. */
static aibox_model *small_net(int bn_after_relu, int softmax)
{
    aibox_model *m = NULL;
    aibox_error err = {0};
    assert_int_equal(aibox_model_create(&m, 3, 20, 20, &err), AIBOX_OK);
    aibox_conv_opts c1 = {.out_channels = 8, .kernel_h = 3, .kernel_w = 3, .pad_top = 1, .pad_left = 1, .pad_bottom = 1, .pad_right = 1};
    int x = aibox_conv2d(m, 0, &c1);
    if (bn_after_relu) x = aibox_batchnorm(m, aibox_relu(m, x), 1e-5f, 0.1f);
    else x = aibox_relu(m, aibox_batchnorm(m, x, 1e-5f, 0.1f));
    aibox_pool_opts po = {.kernel_h = 2, .kernel_w = 2, .stride_h = 2, .stride_w = 2};
    x = aibox_maxpool(m, x, &po);
    aibox_conv_opts c2 = {.out_channels = 16, .kernel_h = 3, .kernel_w = 3, .stride_h = 2, .stride_w = 2, .pad_top = 1, .pad_left = 1, .groups = 2};
    x = aibox_relu6(m, aibox_batchnorm(m, aibox_conv2d(m, x, &c2), 1e-3f, 0.1f));
    aibox_conv_opts c3 = {.out_channels = 12, .kernel_h = 1, .kernel_w = 1, .bias = 1};
    x = aibox_relu(m, aibox_conv2d(m, x, &c3));
    x = aibox_dense(m, aibox_global_avgpool(m, x), 5, 1);
    if (softmax) x = aibox_softmax(m, x);
    assert_true(x > 0);
    assert_int_equal(aibox_model_set_output(m, x), AIBOX_OK);
    assert_int_equal(aibox_model_finish(m, 7, &err), AIBOX_OK);
    aibox_rng rng;
    aibox_rng_seed(&rng, 3);
    for (int i = 1; i < aibox_model_node_count(m); i++) {
        if (aibox_model_node_kind(m, i) != AIBOX_LAYER_BATCHNORM) continue;
        size_t n;
        float *g = aibox_model_node_param(m, i, 0, &n), *b = aibox_model_node_param(m, i, 1, &n);
        float *mean = aibox_model_node_state(m, i, 0, &n), *var = aibox_model_node_state(m, i, 1, &n);
        aibox_test_fill_uniform(&rng, g, n, 0.5f, 1.5f);
        aibox_test_fill_uniform(&rng, b, n, -0.3f, 0.3f);
        aibox_test_fill_uniform(&rng, mean, n, -0.2f, 0.2f);
        aibox_test_fill_uniform(&rng, var, n, 0.2f, 2.0f);
    }
    return m;
}

static float *inputs(int n)
{
    aibox_rng rng;
    aibox_rng_seed(&rng, 11);
    float *x = malloc(sizeof(float) * 3 * 20 * 20 * (size_t)n);
    aibox_test_fill_uniform(&rng, x, (size_t)3 * 20 * 20 * n, -1.0f, 1.0f);
    return x;
}

static const float *run(aibox_ctx **c, aibox_model *m, const float *x, int *k)
{
    aibox_error err = {0};
    int h, w;
    if (!*c) assert_int_equal(aibox_ctx_create(c, m, NULL, &err), AIBOX_OK);
    assert_int_equal(aibox_ctx_infer(*c, m, x, 1, &err), AIBOX_OK);
    return aibox_ctx_output(*c, k, &h, &w);
}

static void test_quantize_small_net(void **state)
{
    (void)state;
    aibox_model *m = small_net(0, 1), *q = NULL;
    aibox_error err = {0};
    const int ncal = 40;
    float *x = inputs(ncal + 10);
    for (int method = 0; method < 2; method++) {
        aibox_quantize_opts o = {.method = (aibox_calib_method)method, .percentile = 99.9};
        assert_int_equal(aibox_model_quantize(&q, m, x, ncal, &o, &err), AIBOX_OK);
        assert_int_equal(aibox_model_quantized(q), 1);
        assert_int_equal(aibox_model_quantized(m), 0);
        /* the two batch norms folded away */
        assert_int_equal(aibox_model_node_count(q), aibox_model_node_count(m) - 2);
        /* weights: per-channel symmetric int8 of the folded floats, scale max|w| / 127 */
        for (int i = 1; i < aibox_model_node_count(q); i++) {
            const aibox_qweights *qw = &q->quant->qw[i];
            if (!qw->w) continue;
            assert_int_equal(qw->wofs, 0);
            size_t per = q->nodes[i].n_param[0] / (size_t)qw->out;
            for (int o2 = 0; o2 < qw->out; o2++) {
                int mx = 0;
                for (size_t k = 0; k < per; k++) mx = abs(qw->w[o2 * per + k]) > mx ? abs(qw->w[o2 * per + k]) : mx;
                assert_int_equal(mx, 127);
            }
        }
        /* held-out inputs: 8-bit probabilities within 0.03 of the float model's */
        aibox_ctx *cf = NULL, *cq = NULL;
        double worst = 0;
        int agree = 0;
        for (int s = ncal; s < ncal + 10; s++) {
            int k, kq;
            const float *pf = run(&cf, m, x + (size_t)s * 1200, &k), *pq = run(&cq, q, x + (size_t)s * 1200, &kq);
            assert_int_equal(k, kq);
            int bf = 0, bq = 0;
            for (int j = 0; j < k; j++) {
                worst = fmax(worst, fabs(pf[j] - pq[j]));
                bf = pf[j] > pf[bf] ? j : bf, bq = pq[j] > pq[bq] ? j : bq;
            }
            agree += bf == bq;
        }
        print_message("%s: largest probability difference %.4f, top-1 agrees on %d of 10\n",
                      method ? "percentile 99.9" : "minmax", worst, agree);
        assert_true(worst < 0.03);
        aibox_ctx_free(&cf), aibox_ctx_free(&cq);
        aibox_model_free(&q);
    }
    free(x);
    aibox_model_free(&m);
}

/* A memory batch source: n samples, batches of 16. */
typedef struct mem_src {
    const float *x;
    const int *y;
    int n, at;
} mem_src;
static aibox_status mem_begin(void *user, int epoch, aibox_error *err)
{
    (void)epoch, (void)err;
    ((mem_src *)user)->at = 0;
    return AIBOX_OK;
}
static aibox_status mem_next(void *user, const float **x, const int **y, int *n, aibox_error *err)
{
    (void)err;
    mem_src *s = user;
    *n = s->n - s->at < 16 ? s->n - s->at : 16;
    *x = s->x + (size_t)s->at * 1200, *y = s->y + s->at;
    s->at += *n;
    return AIBOX_OK;
}

/* Quantisation-aware fine-tuning: a small net trained in float on a
 * five-class task of noisy patterns, then fine-tuned with 8-bit rounding;
 * the 8-bit model it exports computes what the simulation trained (its
 * held-out accuracy at least the post-training quantisation's less a step
 * of noise), carries int8 weights, and never changes the float model. */
static void test_quantize_aware(void **state)
{
    (void)state;
    const int n = 320, nv = 80;
    aibox_model *q = NULL, *p = NULL;
    aibox_error err = {0};
    float *x = inputs(n + nv);
    int *y = malloc(sizeof(int) * (size_t)(n + nv));
    for (int i = 0; i < n + nv; i++) { /* class k: a bright square in one of five places */
        y[i] = i % 5;
        float *xi = x + (size_t)i * 1200;
        for (int c = 0; c < 3; c++)
            for (int r = 0; r < 6; r++)
                for (int q2 = 0; q2 < 6; q2++) xi[c * 400 + (2 + 3 * y[i] + r) * 20 + 2 + 2 * y[i] + q2] += 2.0f;
    }
    mem_src ts = {x, y, n, 0}, vs = {x + (size_t)n * 1200, y + n, nv, 0};
    aibox_batch_source tsrc = {&ts, n, mem_begin, mem_next, NULL}, vsrc = {&vs, nv, mem_begin, mem_next, NULL};
    aibox_train_opts to = {.epochs = 6, .seed = 1};
    to.optim.kind = AIBOX_ADAM, to.optim.lr = 3e-3f;
    aibox_model *logits = small_net(0, 0); /* the trainer takes logits */
    assert_int_equal(aibox_train(logits, &tsrc, 16, &vsrc, &to, 2, NULL, &err), AIBOX_OK);
    float snap;
    memcpy(&snap, aibox_model_node_param(logits, 1, 0, &(size_t){0}), sizeof snap);
    assert_int_equal(aibox_model_quantize(&p, logits, x, 64, NULL, &err), AIBOX_OK);
    aibox_train_opts qo = {.epochs = 3, .seed = 2};
    qo.optim.kind = AIBOX_ADAM, qo.optim.lr = 1e-4f;
    aibox_train_result res;
    assert_int_equal(aibox_model_quantize_aware(&q, logits, x, 64, NULL, &tsrc, 16, &vsrc, &qo, 2, &res, &err), AIBOX_OK);
    assert_int_equal(aibox_model_quantized(q), 1);
    assert_memory_equal(&snap, aibox_model_node_param(logits, 1, 0, &(size_t){0}), sizeof snap); /* m untouched */
    /* held-out accuracy of the exported 8-bit models */
    int right_p = 0, right_q = 0, right_f = 0;
    aibox_ctx *cp = NULL, *cq = NULL, *cf = NULL;
    for (int i = n; i < n + nv; i++) {
        int k, b;
        const float *o = run(&cf, logits, x + (size_t)i * 1200, &k);
        b = 0;
        for (int j = 1; j < k; j++) b = o[j] > o[b] ? j : b;
        right_f += b == y[i];
        o = run(&cp, p, x + (size_t)i * 1200, &k);
        b = 0;
        for (int j = 1; j < k; j++) b = o[j] > o[b] ? j : b;
        right_p += b == y[i];
        o = run(&cq, q, x + (size_t)i * 1200, &k);
        b = 0;
        for (int j = 1; j < k; j++) b = o[j] > o[b] ? j : b;
        right_q += b == y[i];
    }
    print_message("held out: float %d, post-training 8-bit %d, quantisation-aware 8-bit %d of %d (simulated %.4f)\n",
                  right_f, right_p, right_q, nv, res.best_val_acc);
    assert_true(right_f >= nv * 8 / 10); /* the task is learnt */
    assert_true(right_q >= right_p - 2);
    /* the simulation predicted the exported model: within two images of 80 */
    assert_true(fabs(res.best_val_acc * nv - right_q) <= 2.0);
    aibox_ctx_free(&cp), aibox_ctx_free(&cq), aibox_ctx_free(&cf);
    aibox_model_free(&p), aibox_model_free(&q), aibox_model_free(&logits);
    free(x), free(y);
}

static void test_refusals(void **state)
{
    (void)state;
    aibox_error err = {0};
    aibox_model *m = small_net(1, 1), *q = NULL;
    float *x = inputs(4);
    assert_int_equal(aibox_model_quantize(&q, m, x, 4, NULL, &err), AIBOX_E_UNSUPPORTED);
    print_message("%s\n", err.msg);
    assert_non_null(strstr(err.msg, "batchnorm"));
    assert_null(q);
    aibox_model_free(&m);
    m = small_net(0, 1);
    assert_int_equal(aibox_model_quantize(&q, m, x, 0, NULL, &err), AIBOX_E_INVALID);
    aibox_quantize_opts bad = {.method = AIBOX_CALIB_PERCENTILE, .percentile = 20};
    assert_int_equal(aibox_model_quantize(&q, m, x, 4, &bad, &err), AIBOX_E_INVALID);
    x[5] = NAN;
    assert_int_equal(aibox_model_quantize(&q, m, x, 4, NULL, &err), AIBOX_E_INVALID);
    print_message("%s\n", err.msg);
    x[5] = 0;
    assert_int_equal(aibox_model_quantize(&q, m, x, 4, NULL, &err), AIBOX_OK);
    aibox_model *q2 = NULL;
    assert_int_equal(aibox_model_quantize(&q2, q, x, 4, NULL, &err), AIBOX_E_INVALID); /* 8-bit already */
    /* and an 8-bit model takes no new nodes (its integers would not cover them) */
    assert_true(aibox_relu(q, aibox_model_output(q)) < 0);
    aibox_model_free(&q);
    aibox_model_free(&m);
    free(x);
}

static void test_tool(void **state)
{
    (void)state;
    char out[4096], model[300], cal[300], q8[300];
    aibox_error err = {0};
    snprintf(model, sizeof model, "%s/f.aibox", g_dir);
    snprintf(cal, sizeof cal, "%s/cal", g_dir);
    snprintf(q8, sizeof q8, "%s/q.aibox", g_dir);
    aibox_model *m = small_net(0, 1);
    assert_int_equal(aibox_model_save(m, model, &err), AIBOX_OK);
    aibox_model_free(&m);
    char bin[4200];
    snprintf(bin, sizeof bin, "%s/aibox-quantize", g_bin);
    if (access(bin, X_OK) != 0) fail_msg("%s not built", bin);
    assert_int_equal(aibox_test_run(NULL, 0, "%s %s -o %s 2>/dev/null", bin, model, q8), 2);     /* no --calib */
    assert_int_equal(aibox_test_run(NULL, 0, "%s %s --calib %s -o %s --bogus 2>/dev/null", bin, model, cal, q8), 2);
    assert_int_equal(aibox_test_run(NULL, 0, "%s %s --calib %s -o %s --method x 2>/dev/null", bin, model, cal, q8), 2);
    assert_int_equal(aibox_test_run(out, sizeof out, "%s %s --calib %s -o %s 2>&1", bin, model, cal, q8), 3); /* no folder */
    assert_non_null(strstr(out, cal));
    /* images: 6 good PNGs, one truncated JPEG */
    assert_int_equal(mkdir(cal, 0755), 0);
    for (int k = 0; k < 6; k++) {
        unsigned char px[20 * 20 * 3];
        for (int i = 0; i < 1200; i++) px[i] = (unsigned char)(i * 31 + k * 17);
        char p[400];
        snprintf(p, sizeof p, "%s/%d.png", cal, k);
        aibox_image img = {20, 20, 3, px};
        assert_int_equal(aibox_image_write_png(&img, p, &err), AIBOX_OK);
    }
    char bad[400];
    snprintf(bad, sizeof bad, "%s/broken.jpg", cal);
    FILE *f = fopen(bad, "wb");
    fputs("\xff\xd8\xff\xe0 truncated", f);
    fclose(f);
    assert_int_equal(aibox_test_run(out, sizeof out, "%s %s --calib %s -o %s --method percentile 2>&1", bin, model, cal, q8), 0);
    print_message("%s", out);
    assert_non_null(strstr(out, "broken.jpg"));
    assert_non_null(strstr(out, "\"calibration_images\":6"));
    assert_non_null(strstr(out, "\"skipped\":1"));
    aibox_model *q = NULL;
    assert_int_equal(aibox_model_load(&q, q8, &err), AIBOX_OK);
    assert_int_equal(aibox_model_quantized(q), 1);
    aibox_model_free(&q);
    /* a folder of nothing readable: an error, the previous model kept */
    assert_int_equal(aibox_test_run(NULL, 0, "rm -f %s/*.png", cal), 0);
    struct stat before, after;
    assert_int_equal(stat(q8, &before), 0);
    assert_int_equal(aibox_test_run(out, sizeof out, "%s %s --calib %s -o %s 2>&1", bin, model, cal, q8), 3);
    assert_non_null(strstr(out, "none of the calibration images"));
    assert_int_equal(stat(q8, &after), 0);
    assert_int_equal(before.st_mtime, after.st_mtime);
}

static int setup(void **state)
{
    (void)state;
    return aibox_test_mkdtemp(g_dir, sizeof g_dir, "quant");
}

static int teardown(void **state)
{
    (void)state;
    return aibox_test_rm_rf(g_dir);
}

int main(int argc, char **argv)
{
    (void)argc;
    aibox_test_tools_dir(argv[0], g_bin, sizeof g_bin);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantize_small_net),
        cmocka_unit_test(test_quantize_aware),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_tool),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

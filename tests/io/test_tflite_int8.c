/* 8-bit TFLite models run in integers: every output byte equal to TensorFlow
 * Lite 2.9's built-in kernels (no delegate; tests/io/tflite_ref/run_tflite.py
 * on npm's tfjs-tflite-node library, which `make check` fetches into
 * $AIBOX_TFLITE_C) on the same input bytes, for the shared MobileNets and
 * test images; the 8-bit .aibox round trip (int8 / int32 tensors, a third of
 * the float file) runs the same bytes; a plan's node outputs, asked for,
 * are the dequantised bytes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aibox.h"
#include "common/check.h"
#include "core/core.h"
#include "nn/nn.h"
#include "nn/qplan.h"
#include "core/pool.h"

static char g_models[1024], g_tmp[256];

static int find_models(void)
{
    const char *cands[2] = {getenv("AIBOX_MODELS"), "../shared/models/tflite"};
    struct stat st;
    for (int i = 0; i < 2; i++) {
        char probe[1100];
        if (!cands[i]) continue;
        snprintf(probe, sizeof probe, "%s/mobilenet_v1_0.25_128_quant.tflite", cands[i]);
        if (stat(probe, &st) == 0) return snprintf(g_models, sizeof g_models, "%s", cands[i]), 1;
    }
    return 0;
}

#define NEED_MODELS()                                                                        \
    do {                                                                                     \
        if (!g_models[0]) {                                                                  \
            print_message("models not found ($AIBOX_MODELS or ../shared/models/tflite)\n"); \
            skip();                                                                          \
        }                                                                                    \
    } while (0)

static const char *MODELS[3] = {"mobilenet_v1_0.25_224_quant", "mobilenet_v1_0.25_128_quant",
                                "mobilenet_v1_1.0_224_quant_embedding_extractor"};
static const char *IMAGES[4] = {"burger.jpg", "sparrow.png", "cats_and_dogs.jpg", "cat.bmp"};

static aibox_model *import(const char *model, int float_only)
{
    char p[1200];
    aibox_import_opts o = {0, NULL, NULL, float_only};
    aibox_error err = {0};
    aibox_model *m = NULL;
    snprintf(p, sizeof p, "%s/%s.tflite", g_models, model);
    if (aibox_import_tflite(&m, p, &o, &err)) fail_msg("%s", err.msg);
    return m;
}

/* The model's integer plan for its own input size, one sample, with
 * workspaces for threads. */
static aibox_qplan *plan_threads(const aibox_model *m, int threads)
{
    aibox_ctx *c = NULL;
    aibox_error err = {0};
    int N = aibox_model_node_count(m);
    int(*shape)[3] = calloc((size_t)N, sizeof *shape);
    assert_int_equal(aibox_ctx_create(&c, m, NULL, &err), AIBOX_OK);
    for (int i = 0; i < N; i++) aibox_ctx_node_output(c, i, &shape[i][0], &shape[i][1], &shape[i][2]);
    aibox_ctx_free(&c);
    aibox_qplan *p = NULL;
    if (aibox_qplan_create(&p, m, (const int(*)[3])shape, 1, threads, aibox_cpu_features(), &err)) fail_msg("%s", err.msg);
    free(shape);
    return p;
}

static aibox_qplan *plan_of(const aibox_model *m) { return plan_threads(m, 1); }

/* The image as the model's preprocessing makes it, as the plan quantises it. */
static void input_bytes(const aibox_model *m, const aibox_qplan *p, const char *image, uint8_t *q)
{
    char path[1200];
    aibox_preproc pp;
    aibox_image img = {0};
    aibox_error err = {0};
    snprintf(path, sizeof path, "%s/%s", g_models, image);
    assert_int_equal(aibox_preproc_from_model(&pp, m, &err), AIBOX_OK);
    assert_int_equal(aibox_image_load(&img, path, 0, &err), AIBOX_OK);
    float *x = malloc((size_t)pp.channels * pp.width * pp.height * sizeof *x);
    assert_int_equal(aibox_preprocess(&pp, &img, x, &err), AIBOX_OK);
    aibox_qplan_quantize_input(p, x, 1, q);
    aibox_image_free(&img);
    free(x);
}

static int write_file(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(b, 1, n, f) == n;
    if (f) ok &= fclose(f) == 0;
    return ok;
}

static void test_bytes_equal_tflite(void **state)
{
    (void)state;
    NEED_MODELS();
    const char *lib = getenv("AIBOX_TFLITE_C");
    if (!lib || access(lib, R_OK) != 0) {
        print_message("TFLite's C library not fetched ($AIBOX_TFLITE_C; `make check` fetches it from npm with "
                      "tests/io/tflite_ref/fetch.sh): cannot compare with TFLite here\n");
        skip();
    }
    for (int mi = 0; mi < 3; mi++) {
        aibox_model *m = import(MODELS[mi], 0);
        assert_int_equal(aibox_model_quantized(m), 1);
        aibox_qplan *p = plan_of(m);
        int C, H, W, oc, oh, ow;
        aibox_model_input_shape(m, &C, &H, &W);
        aibox_model_node_shape(m, aibox_model_output(m), &oc, &oh, &ow);
        size_t nin = (size_t)C * H * W, nout = (size_t)oc * oh * ow;
        uint8_t *in = malloc(nin), *ours[4], *theirs = malloc(nout + 1);
        char batch[300], cmd[3000];
        snprintf(batch, sizeof batch, "%s/batch", g_tmp);
        FILE *bf = fopen(batch, "w");
        assert_non_null(bf);
        for (int k = 0; k < 4; k++) {
            char ip[300];
            input_bytes(m, p, IMAGES[k], in);
            snprintf(ip, sizeof ip, "%s/%d.in", g_tmp, k);
            assert_true(write_file(ip, in, nin));
            fprintf(bf, "%s %s/%d.out\n", ip, g_tmp, k);
            ours[k] = malloc(nout);
            memcpy(ours[k], aibox_qplan_run_u8(p, in, 1, NULL), nout);
            /* the same bytes when two or three threads share the layers */
            for (int t = 2; t <= 3; t++) {
                aibox_pool *pool = NULL;
                aibox_error err = {0};
                aibox_qplan *pt = plan_threads(m, t);
                assert_int_equal(aibox_pool_create(&pool, t, &err), AIBOX_OK);
                for (int rep = 0; rep < 3; rep++)
                    assert_memory_equal(aibox_qplan_run_u8(pt, in, 1, pool), ours[k], nout);
                aibox_pool_free(&pool);
                aibox_qplan_free(&pt);
            }
        }
        fclose(bf);
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/io/tflite_ref/run_tflite.py --lib '%s' --batch '%s' '%s/%s.tflite'",
                 lib, batch, g_models, MODELS[mi]);
        assert_int_equal(aibox_test_run(NULL, 0, "%s", cmd), 0);
        /* LiteRT (XNNPACK), for the record: runtimes disagree among themselves */
        const char *lrt = getenv("AIBOX_LITERT");
        int with_lrt = lrt && *lrt && access(lrt, R_OK) == 0;
        if (with_lrt) {
            char lb[300];
            snprintf(lb, sizeof lb, "%s/batch.lrt", g_tmp);
            FILE *lf = fopen(lb, "w");
            assert_non_null(lf);
            for (int k = 0; k < 4; k++) fprintf(lf, "%s/%d.in %s/%d.lrt\n", g_tmp, k, g_tmp, k);
            fclose(lf);
            snprintf(cmd, sizeof cmd, "node tests/io/tflite_ref/run_litert.mjs --pkg '%s' --batch '%s' '%s/%s.tflite'", lrt,
                     lb, g_models, MODELS[mi]);
            with_lrt = aibox_test_run(NULL, 0, "%s 2>/dev/null", cmd) == 0;
            if (!with_lrt) print_message("LiteRT did not run (%s)\n", cmd);
        }
        for (int k = 0; k < 4; k++) {
            char op[300];
            snprintf(op, sizeof op, "%s/%d.out", g_tmp, k);
            FILE *f = fopen(op, "rb");
            assert_non_null(f);
            size_t got = fread(theirs, 1, nout + 1, f);
            fclose(f);
            assert_int_equal(got, nout);
            int differ = 0, top = 0;
            for (size_t i = 0; i < nout; i++) {
                differ += ours[k][i] != theirs[i];
                if (ours[k][i] > ours[k][top]) top = (int)i;
            }
            print_message("%s %s: %zu output bytes, %d differ from TFLite 2.9 (top-1 %d, %d/256)\n", MODELS[mi],
                          IMAGES[k], nout, differ, top, ours[k][top]);
            if (with_lrt) {
                snprintf(op, sizeof op, "%s/%d.lrt", g_tmp, k);
                uint8_t *l = (uint8_t *)aibox_test_slurp(op, &got);
                int ld = 0, lmax = 0;
                for (size_t i = 0; l && i < nout && i < got; i++) {
                    int dd = abs((int)l[i] - (int)ours[k][i]);
                    ld += dd != 0, lmax = dd > lmax ? dd : lmax;
                }
                print_message("    against LiteRT 2.5 (XNNPACK): %d of %zu bytes differ, by up to %d/256\n", ld, nout, lmax);
                free(l);
            }
            assert_int_equal(differ, 0);
            free(ours[k]);
        }
        free(in), free(theirs);
        aibox_qplan_free(&p);
        aibox_model_free(&m);
    }
}

/* Saved and loaded, an 8-bit model computes the same bytes from a file about
 * a quarter of its float twin's; its float twin is the dequantised integers. */
static void test_round_trip(void **state)
{
    (void)state;
    NEED_MODELS();
    char p8[300], pf[300];
    aibox_error err = {0};
    snprintf(p8, sizeof p8, "%s/m8.aibox", g_tmp);
    snprintf(pf, sizeof pf, "%s/mf.aibox", g_tmp);
    aibox_model *m = import(MODELS[0], 0), *f = import(MODELS[0], 1), *back = NULL;
    assert_int_equal(aibox_model_quantized(f), 0);
    assert_int_equal(aibox_model_save(m, p8, &err), AIBOX_OK);
    assert_int_equal(aibox_model_save(f, pf, &err), AIBOX_OK);
    struct stat s8, sf;
    assert_int_equal(stat(p8, &s8), 0);
    assert_int_equal(stat(pf, &sf), 0);
    print_message("mobilenet_v1_0.25_224: 8-bit .aibox %lld bytes, float %lld (ratio %.3f)\n", (long long)s8.st_size,
                  (long long)sf.st_size, (double)s8.st_size / (double)sf.st_size);
    assert_true((double)s8.st_size / (double)sf.st_size < 0.32);
    assert_int_equal(aibox_model_load(&back, p8, &err), AIBOX_OK);
    assert_int_equal(aibox_model_quantized(back), 1);
    /* the loaded float twin: the same floats as the import's */
    size_t n1, n2;
    for (int i = 1; i < aibox_model_node_count(m); i++)
        for (int k = 0; k < 2; k++) {
            const float *a = aibox_model_node_param(m, i, k, &n1), *b = aibox_model_node_param(back, i, k, &n2);
            assert_int_equal(n1, n2);
            for (size_t j = 0; j < n1; j++)
                if (a[j] != b[j]) fail_msg("node %d tensor %d value %zu: %g after the round trip, %g before", i, k, j, b[j], a[j]);
        }
    aibox_qplan *pa = plan_of(m), *pb = plan_of(back);
    int C, H, W, oc, oh, ow;
    aibox_model_input_shape(m, &C, &H, &W);
    aibox_model_node_shape(m, aibox_model_output(m), &oc, &oh, &ow);
    uint8_t *in = malloc((size_t)C * H * W);
    input_bytes(m, pa, IMAGES[0], in);
    const uint8_t *ya = aibox_qplan_run_u8(pa, in, 1, NULL), *yb = aibox_qplan_run_u8(pb, in, 1, NULL);
    assert_memory_equal(ya, yb, (size_t)oc * oh * ow);
    /* a context's node outputs are the plan's bytes, dequantised on request */
    aibox_ctx *ctx = NULL;
    float *x = malloc(sizeof(float) * (size_t)C * H * W);
    aibox_preproc pp;
    aibox_image img = {0};
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", g_models, IMAGES[0]);
    assert_int_equal(aibox_preproc_from_model(&pp, back, &err), AIBOX_OK);
    assert_int_equal(aibox_image_load(&img, path, 0, &err), AIBOX_OK);
    assert_int_equal(aibox_preprocess(&pp, &img, x, &err), AIBOX_OK);
    assert_int_equal(aibox_ctx_create(&ctx, back, NULL, &err), AIBOX_OK);
    assert_int_equal(aibox_ctx_infer(ctx, back, x, 1, &err), AIBOX_OK);
    int node = 5, c, h, w;
    /* node 0: the input as the plan quantised it */
    const float *a = aibox_ctx_node_output(ctx, 0, &c, &h, &w);
    assert_non_null(a);
    assert_int_equal(c * h * w, C * H * W);
    for (int ch = 0; ch < C; ch++)
        for (int k = 0; k < H * W; k++)
            assert_float_equal(a[ch * H * W + k], back->quant->scale[0] * (float)(in[(size_t)k * C + ch] - back->quant->zp[0]), 0);
    a = aibox_ctx_node_output(ctx, node, &c, &h, &w);
    const uint8_t *qb = aibox_qplan_node_u8(pb, node);
    const float sc = back->quant->scale[node];
    const int zp = back->quant->zp[node];
    for (int ch = 0; ch < c; ch++)
        for (int k = 0; k < h * w; k++)
            assert_float_equal(a[ch * h * w + k], sc * (float)(qb[(size_t)k * c + ch] - zp), 0);
    const float *y = aibox_ctx_output(ctx, &c, &h, &w);
    for (int i = 0; i < c; i++) assert_float_equal(y[i], back->quant->scale[aibox_model_output(back)] * (float)ya[i], 0);
    aibox_ctx_free(&ctx);
    aibox_image_free(&img);
    free(x), free(in);
    aibox_qplan_free(&pa), aibox_qplan_free(&pb);
    aibox_model_free(&m), aibox_model_free(&f), aibox_model_free(&back);
}

/* Damaged 8-bit files are refused with a reason, never run. */
static void test_bad_tables(void **state)
{
    (void)state;
    NEED_MODELS();
    char p8[300];
    aibox_error err = {0};
    snprintf(p8, sizeof p8, "%s/bad.aibox", g_tmp);
    aibox_model *m = import(MODELS[1], 0), *back = NULL;
    m->quant->zp[3] = 0, m->quant->scale[3] = 0; /* a node without a domain */
    assert_int_equal(aibox_model_save(m, p8, &err), AIBOX_OK);
    assert_int_equal(aibox_model_load(&back, p8, &err), AIBOX_OK);
    aibox_ctx *ctx = NULL;
    assert_int_equal(aibox_ctx_create(&ctx, back, NULL, &err), AIBOX_E_FORMAT);
    print_message("%s\n", err.msg);
    assert_non_null(strstr(err.msg, "node 3"));
    aibox_model_free(&back);
    m->quant->scale[3] = 0.5f;
    m->quant->qw[1].bias[0] = 1 << 25; /* beyond what a float holds exactly */
    assert_int_equal(aibox_model_save(m, p8, &err), AIBOX_E_INVALID);
    print_message("%s\n", err.msg);
    aibox_model_free(&m);
}

static int setup(void **state)
{
    (void)state;
    find_models();
    return aibox_test_mkdtemp(g_tmp, sizeof g_tmp, "int8");
}

static int teardown(void **state)
{
    (void)state;
    return aibox_test_rm_rf(g_tmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytes_equal_tflite),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_bad_tables),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

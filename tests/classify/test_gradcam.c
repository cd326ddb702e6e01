/* Grad-CAM (include/aibox/explain.h): the map against PyTorch's Grad-CAM
 * of the same weights (hooks on the layer, float64) at four layers, against
 * the closed form of a global-pooling head (Grad-CAM = CAM there), the
 * default node's rule, inference behaviour (batch norm's running
 * statistics, dropout off) with the model left untouched, the image map and
 * overlay (a NEU scratch image when $AIBOX_DATA has it), refusals, and
 * `aibox-infer --explain`. */
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
#include "common/check.h"

static char bin[4096];

enum { CONV1 = 1, BN = 2, RELU1 = 3, POOL = 4, CONV2 = 5, RELU2 = 6, GAP = 7, FLAT = 8, DROP = 9, FC = 10 };
#define SIDE 20

static void fill(aibox_model *m, int node, int idx, int state, aibox_rng *r, float lo, float hi)
{
    size_t n = 0;
    float *p = state ? aibox_model_node_state(m, node, idx, &n) : aibox_model_node_param(m, node, idx, &n);
    assert_non_null(p);
    aibox_test_fill_uniform(r, p, n, lo, hi);
}

/* 3x20x20: conv(6) BN ReLU maxpool(2) conv(8) ReLU GAP flatten dropout(0.5)
 * dense(4) [softmax], every parameter and BN statistic random. */
static aibox_model *make(int softmax)
{
    aibox_model *m = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_model_create(&m, 3, SIDE, SIDE, &e), AIBOX_OK);
    int x = aibox_conv2d_simple(m, 0, 6, 3, 1, 1);
    x = aibox_relu(m, aibox_batchnorm(m, x, 1e-3f, 0.1f));
    x = aibox_maxpool(m, x, &(aibox_pool_opts){.kernel_h = 2, .kernel_w = 2});
    x = aibox_relu(m, aibox_conv2d_simple(m, x, 8, 3, 1, 1));
    x = aibox_dropout(m, aibox_flatten(m, aibox_global_avgpool(m, x)), 0.5f);
    x = aibox_dense(m, x, 4, 1);
    if (softmax) x = aibox_softmax(m, x);
    assert_int_equal(aibox_model_finish(m, 3, &e), AIBOX_OK);
    assert_int_equal(x, softmax ? FC + 1 : FC);
    aibox_rng r;
    aibox_rng_seed(&r, 11);
    fill(m, CONV1, 1, 0, &r, -0.3f, 0.3f);
    fill(m, BN, 0, 0, &r, 0.5f, 1.5f);
    fill(m, BN, 1, 0, &r, -0.2f, 0.4f);
    fill(m, BN, 0, 1, &r, -0.3f, 0.3f);
    fill(m, BN, 1, 1, &r, 0.5f, 2.0f);
    fill(m, CONV2, 1, 0, &r, -0.2f, 0.3f);
    fill(m, FC, 1, 0, &r, -0.5f, 0.5f);
    return m;
}

static float *input(uint64_t seed)
{
    aibox_rng r;
    aibox_rng_seed(&r, seed);
    float *x = aibox_test_floats(3 * SIDE * SIDE);
    aibox_test_fill_uniform(&r, x, 3 * SIDE * SIDE, -1.0f, 1.0f);
    return x;
}

static void write_f32(const char *dir, const char *name, const float *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, sizeof(float), n, f), n);
    fclose(f);
}

static void write_param(aibox_model *m, const char *dir, const char *name, int node, int idx, int state)
{
    size_t n = 0;
    float *p = state ? aibox_model_node_state(m, node, idx, &n) : aibox_model_node_param(m, node, idx, &n);
    write_f32(dir, name, p, n);
}

/* max |got - want| / max |want|: the figure the parity is judged by */
static double rel_err(const float *got, const float *want, size_t n)
{
    double d = 0, w = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)got[i] - want[i]));
        w = fmax(w, fabs((double)want[i]));
    }
    return w > 0 ? d / w : d;
}

static void test_default_node(void **state)
{
    (void)state;
    aibox_model *m = make(0), *s = make(1), *a = NULL;
    assert_int_equal(aibox_gradcam_default_node(m), RELU2);
    assert_int_equal(aibox_gradcam_default_node(s), RELU2);
    /* a flatten classifier: the last max pool's 4x4 map */
    assert_int_equal(aibox_model_create(&a, 1, 16, 16, NULL), AIBOX_OK);
    int x = aibox_relu(a, aibox_conv2d_simple(a, 0, 4, 3, 1, 1));
    int pool = aibox_maxpool(a, x, &(aibox_pool_opts){.kernel_h = 4, .kernel_w = 4});
    aibox_dense(a, aibox_flatten(a, pool), 3, 1);
    assert_int_equal(aibox_model_finish(a, 1, NULL), AIBOX_OK);
    assert_int_equal(aibox_gradcam_default_node(a), pool);
    aibox_model_free(&a);
    /* a fully convolutional output is no classifier */
    assert_int_equal(aibox_model_create(&a, 1, 16, 16, NULL), AIBOX_OK);
    aibox_conv2d_simple(a, aibox_relu(a, aibox_conv2d_simple(a, 0, 4, 3, 1, 1)), 2, 1, 1, 0);
    assert_int_equal(aibox_model_finish(a, 1, NULL), AIBOX_OK);
    assert_int_equal(aibox_gradcam_default_node(a), -1);
    aibox_gradcam *g = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_gradcam_create(&g, a, -1, 1, &e), AIBOX_E_UNSUPPORTED);
    print_message("# refused: %s\n", e.msg);
    assert_null(g);
    aibox_model_free(&a);
    aibox_model_free(&m);
    aibox_model_free(&s);
}

static void test_torch_parity(void **state)
{
    (void)state;
    char dir[64];
    assert_int_equal(aibox_test_mkdtemp(dir, sizeof dir, "gradcam"), 0);
    aibox_model *m = make(0);
    float *x = input(5);
    write_param(m, dir, "conv1.w", CONV1, 0, 0);
    write_param(m, dir, "conv1.b", CONV1, 1, 0);
    write_param(m, dir, "bn.g", BN, 0, 0);
    write_param(m, dir, "bn.b", BN, 1, 0);
    write_param(m, dir, "bn.m", BN, 0, 1);
    write_param(m, dir, "bn.v", BN, 1, 1);
    write_param(m, dir, "conv2.w", CONV2, 0, 0);
    write_param(m, dir, "conv2.b", CONV2, 1, 0);
    write_param(m, dir, "fc.w", FC, 0, 0);
    write_param(m, dir, "fc.b", FC, 1, 0);
    write_f32(dir, "x", x, 3 * SIDE * SIDE);
    char args[128];
    snprintf(args, sizeof args, "%s", dir);
    int rc = aibox_test_torch_script("tests/classify/gradcam_parity.py", args, NULL);
    if (rc) aibox_test_rm_rf(dir);
    assert_int_equal(rc, 0);
    char path[512];
    snprintf(path, sizeof path, "%s/labels.f32", dir);
    float *labels = aibox_test_read_f32(path, 4);
    snprintf(path, sizeof path, "%s/logits.f32", dir);
    float *logits = aibox_test_read_f32(path, 4);
    static const struct { const char *name; int node, cls, side; } cases[] = {
        {"relu2", RELU2, -1, SIDE / 2}, {"relu1", RELU1, 2, SIDE}, {"conv2", CONV2, 1, SIDE / 2}, {"bn", BN, 3, SIDE}};
    double worst = 0;
    for (int c = 0; c < 4; c++) {
        aibox_gradcam *g = NULL;
        aibox_error e = {0};
        assert_int_equal(aibox_gradcam_create(&g, m, c == 0 ? -1 : cases[c].node, 2, &e), AIBOX_OK);
        int ch, h, w;
        assert_int_equal(aibox_gradcam_node(g, &ch, &h, &w), cases[c].node);
        assert_int_equal(h, cases[c].side);
        assert_int_equal(w, cases[c].side);
        aibox_gradcam_result res;
        assert_int_equal(aibox_gradcam_run_input(g, x, cases[c].cls, &res, &e), AIBOX_OK);
        assert_int_equal(res.label, (int)labels[c]);
        assert_int_equal(res.map_w * res.map_h, cases[c].side * cases[c].side);
        if (c == 0) AIBOX_TEST_CLOSE1("score (logit)", res.score, logits[res.label], 1e-5, 1e-5);
        snprintf(path, sizeof path, "%s/cam_%s.f32", dir, cases[c].name);
        size_t n = (size_t)res.map_w * res.map_h;
        float *want = aibox_test_read_f32(path, n);
        double rel = rel_err(res.cam, want, n), mx = 0;
        for (size_t i = 0; i < n; i++) mx = fmax(mx, want[i]);
        print_message("# grad-cam parity %-5s (node %2d, %dx%dx%d, class %d): max |diff| / max cam = %.2e "
                      "(max cam %.4g)\n",
                      cases[c].name, cases[c].node, ch, h, w, res.label, rel, mx);
        assert_true(mx > 0); /* a map with something in it */
        assert_true(rel <= 1e-4);
        AIBOX_TEST_CLOSE1("cam max", res.cam_max, mx, 1e-4 * mx, 1e-4);
        worst = fmax(worst, rel);
        free(want);
        aibox_gradcam_free(&g);
    }
    print_message("# grad-cam parity with PyTorch: worst relative error %.2e (limit 1e-4)\n", worst);
    free(labels), free(logits), free(x);
    aibox_model_free(&m);
    aibox_test_rm_rf(dir);
}

/* A global-pooling head: d logit_c / dA_k(i) = W[c][k] / hw, so Grad-CAM at
 * the last ReLU is ReLU(sum_k W[c][k] A_k) / hw (CAM), A from an ordinary
 * inference context. Softmax at the end changes nothing (the logit is the
 * score). BN and dropout ran as in inference, the model was not written. */
static void test_closed_form(void **state)
{
    (void)state;
    aibox_model *m = make(0), *s = make(1);
    float *x = input(7);
    size_t np, ns, nw;
    aibox_model_node_state(m, BN, 0, &ns);
    float *before = aibox_test_floats(aibox_model_param_count(m) + 2 * ns);
    memcpy(before, aibox_model_params(m), sizeof(float) * aibox_model_param_count(m));
    memcpy(before + aibox_model_param_count(m), aibox_model_node_state(m, BN, 0, &ns), sizeof(float) * ns);
    memcpy(before + aibox_model_param_count(m) + ns, aibox_model_node_state(m, BN, 1, &ns), sizeof(float) * ns);
    np = aibox_model_param_count(m);

    aibox_ctx *ctx = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_ctx_create(&ctx, m, NULL, &e), AIBOX_OK);
    assert_int_equal(aibox_ctx_infer(ctx, m, x, 1, &e), AIBOX_OK);
    int C, H, W;
    const float *A = aibox_ctx_node_output(ctx, RELU2, &C, &H, &W);
    const float *logit = aibox_ctx_output(ctx, NULL, NULL, NULL);
    const float *fw = aibox_model_node_param(m, FC, 0, &nw);
    aibox_gradcam *g = NULL, *gs = NULL;
    assert_int_equal(aibox_gradcam_create(&g, m, -1, 1, &e), AIBOX_OK);
    assert_int_equal(aibox_gradcam_create(&gs, s, -1, 1, &e), AIBOX_OK);
    for (int cls = -1; cls < 4; cls++) {
        aibox_gradcam_result r, rs;
        assert_int_equal(aibox_gradcam_run_input(g, x, cls, &r, &e), AIBOX_OK);
        int c = cls;
        if (c < 0) {
            c = 0;
            for (int k = 1; k < 4; k++)
                if (logit[k] > logit[c]) c = k;
        }
        assert_int_equal(r.label, c);
        AIBOX_TEST_CLOSE1("score", r.score, logit[c], 1e-6, 1e-6);
        double *want = aibox_test_doubles((size_t)H * W);
        for (int i = 0; i < H * W; i++) {
            double v = 0;
            for (int k = 0; k < C; k++) v += (double)fw[c * C + k] * A[k * H * W + i];
            want[i] = v > 0 ? v / (H * W) : 0;
        }
        AIBOX_TEST_CLOSE("cam = CAM of the pooling head", r.cam, want, (size_t)H * W, 1e-7, 1e-5);
        assert_int_equal(aibox_gradcam_run_input(gs, x, cls, &rs, &e), AIBOX_OK);
        assert_int_equal(rs.label, c);
        AIBOX_TEST_CLOSE_FF("softmax model: the same map", rs.cam, r.cam, (size_t)H * W, 1e-7, 1e-6);
        free(want);
    }
    /* nothing of the model moved: parameters, running statistics */
    assert_memory_equal(before, aibox_model_params(m), sizeof(float) * np);
    assert_memory_equal(before + np, aibox_model_node_state(m, BN, 0, &ns), sizeof(float) * ns);
    assert_memory_equal(before + np + ns, aibox_model_node_state(m, BN, 1, &ns), sizeof(float) * ns);
    aibox_gradcam_free(&g);
    aibox_gradcam_free(&gs);
    aibox_gradcam_free(&g); /* twice: harmless */
    aibox_ctx_free(&ctx);
    free(before), free(x);
    aibox_model_free(&m);
    aibox_model_free(&s);
}

static void test_refusals(void **state)
{
    (void)state;
    aibox_model *m = make(0);
    aibox_gradcam *g = NULL;
    aibox_error e = {0};
    float *x = input(1);
    aibox_gradcam_result r;
    assert_int_equal(aibox_gradcam_create(NULL, m, -1, 1, &e), AIBOX_E_INVALID);
    assert_int_equal(aibox_gradcam_create(&g, NULL, -1, 1, &e), AIBOX_E_INVALID);
    assert_int_equal(aibox_gradcam_create(&g, m, 0, 1, &e), AIBOX_E_INVALID);  /* the input */
    assert_int_equal(aibox_gradcam_create(&g, m, FC, 1, &e), AIBOX_E_INVALID); /* the scores themselves */
    assert_int_equal(aibox_gradcam_create(&g, m, 99, 1, &e), AIBOX_E_INVALID);
    assert_null(g);
    assert_int_equal(aibox_gradcam_create(&g, m, -1, 1, &e), AIBOX_OK);
    assert_int_equal(aibox_gradcam_run_input(g, x, 4, &r, &e), AIBOX_E_INVALID);
    assert_int_equal(aibox_gradcam_run_input(g, x, -2, &r, &e), AIBOX_E_INVALID);
    assert_int_equal(aibox_gradcam_run_input(g, NULL, 0, &r, &e), AIBOX_E_INVALID);
    size_t nb;
    float *bias = aibox_model_node_param(m, FC, 1, &nb), keep = bias[1];
    bias[1] = NAN; /* a non-finite score is never explained */
    assert_int_equal(aibox_gradcam_run_input(g, x, -1, &r, &e), AIBOX_E_NONFINITE);
    print_message("# refused: %s\n", e.msg);
    bias[1] = keep;
    aibox_gradcam_free(&g);
    /* a classifier may say so (transfer learning's, imported ones); an anomaly model's graph is refused */
    assert_int_equal(aibox_model_set_meta_str(m, AIBOX_META_TASK, "classify", &e), AIBOX_OK);
    assert_int_equal(aibox_gradcam_create(&g, m, -1, 1, &e), AIBOX_OK);
    aibox_gradcam_free(&g);
    assert_int_equal(aibox_model_set_meta_str(m, AIBOX_META_TASK, "padim", &e), AIBOX_OK);
    assert_int_equal(aibox_gradcam_create(&g, m, -1, 1, &e), AIBOX_E_UNSUPPORTED);
    print_message("# refused: %s\n", e.msg);
    free(x);
    aibox_model_free(&m);
}

/* The map on an image: its size, 0..1 with 1 at the peak; the overlay an RGB
 * picture of the image's size. */
static void check_image(aibox_gradcam *g, const aibox_image *img)
{
    aibox_error e = {0};
    aibox_gradcam_result r;
    float *map = aibox_test_floats((size_t)img->width * img->height);
    assert_int_equal(aibox_gradcam_run(g, img, -1, map, &r, &e), AIBOX_OK);
    float lo = 1, hi = 0;
    for (int i = 0; i < img->width * img->height; i++) lo = fminf(lo, map[i]), hi = fmaxf(hi, map[i]);
    assert_true(lo >= 0.0f);
    if (r.cam_max > 0) assert_true(hi == 1.0f);
    else assert_true(hi == 0.0f);
    aibox_image ov = {0};
    aibox_gradcam_result r2;
    assert_int_equal(aibox_gradcam_overlay(g, img, r.label, 0.5f, &ov, &r2, &e), AIBOX_OK);
    assert_int_equal(r2.label, r.label);
    assert_int_equal(ov.width, img->width);
    assert_int_equal(ov.height, img->height);
    assert_int_equal(ov.channels, 3);
    aibox_image_free(&ov);
    free(map);
}

static void test_image(void **state)
{
    (void)state;
    aibox_model *m = make(0);
    aibox_gradcam *g = NULL;
    assert_int_equal(aibox_gradcam_create(&g, m, -1, 1, NULL), AIBOX_OK);
    aibox_image img = {37, 23, 3, malloc(37 * 23 * 3)};
    aibox_rng r;
    aibox_rng_seed(&r, 2);
    for (int i = 0; i < 37 * 23 * 3; i++) img.data[i] = (uint8_t)aibox_rng_below(&r, 256);
    check_image(g, &img);
    aibox_image_free(&img);
    aibox_gradcam_free(&g);
    aibox_model_free(&m);
}

/* A NEU scratch image through a grey 64x64 classifier (random weights: the
 * shapes and the picture, not the meaning, which the acceptance run judges
 * with a trained model). */
static void test_neu_scratch(void **state)
{
    (void)state;
    const char *data = getenv("AIBOX_DATA");
    char path[4096];
    snprintf(path, sizeof path, "%s/neu-cls/scratches/scratches_1.jpg", data && *data ? data : "../shared/data");
    if (access(path, R_OK) != 0) {
        print_message("skipping: %s not found (set AIBOX_DATA to the shared data folder)\n", path);
        skip();
    }
    aibox_image img = {0};
    aibox_error e = {0};
    assert_int_equal(aibox_image_load(&img, path, 0, &e), AIBOX_OK);
    aibox_model *m = NULL;
    assert_int_equal(aibox_preset_small(&m, 6, 1, 64, &e), AIBOX_OK);
    aibox_gradcam *g = NULL;
    assert_int_equal(aibox_gradcam_create(&g, m, -1, 1, &e), AIBOX_OK);
    int c, h, w, node = aibox_gradcam_node(g, &c, &h, &w);
    print_message("# NEU %dx%d image, preset small at 64: node %d (%s) %dx%dx%d\n", img.width, img.height, node,
                  aibox_layer_kind_name(aibox_model_node_kind(m, node)), c, h, w);
    check_image(g, &img);
    aibox_gradcam_free(&g);
    aibox_image_free(&img);
    aibox_model_free(&m);
}

static int exists_png(const char *path, int w, int h)
{
    aibox_image img = {0};
    if (aibox_image_load(&img, path, 0, NULL)) return 0;
    int ok = img.width == w && img.height == h && img.channels == 3;
    aibox_image_free(&img);
    return ok;
}

static void test_tool(void **state)
{
    (void)state;
    char dir[64], p[512], out[8192];
    assert_int_equal(aibox_test_mkdtemp(dir, sizeof dir, "gradcam_cli"), 0);
    aibox_model *m = make(0);
    aibox_error e = {0};
    static const char *const names[] = {"good", "scratch", "spot", "dent"};
    assert_int_equal(aibox_model_set_meta_strs(m, AIBOX_META_CLASS_NAMES, 4, names, &e), AIBOX_OK);
    snprintf(p, sizeof p, "%s/cls.aibox", dir);
    assert_int_equal(aibox_model_save(m, p, &e), AIBOX_OK);
    aibox_rng r;
    aibox_rng_seed(&r, 4);
    snprintf(p, sizeof p, "mkdir -p %s/img %s/good", dir, dir);
    assert_int_equal(system(p), 0);
    snprintf(p, sizeof p, "%s/img/a", dir);
    aibox_test_write_part(&r, p, 48, 40, 3, 1);
    snprintf(p, sizeof p, "%s/img/b", dir);
    aibox_test_write_part(&r, p, 30, 50, 1, 0);
    snprintf(p, sizeof p, "rm %s/img/*.png", dir); /* the parts' masks */
    assert_int_equal(system(p), 0);
    int rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s/cls.aibox --explain %s/why %s/img 2>/dev/null", bin,
                            dir, dir, dir);
    assert_int_equal(rc, 2); /* the output folder does not exist: every image fails, saying so */
    assert_true(aibox_test_json_lines(out));
    assert_non_null(strstr(out, "\"error\""));
    snprintf(p, sizeof p, "mkdir %s/why", dir);
    assert_int_equal(system(p), 0);
    rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s/cls.aibox --explain %s/why %s/img", bin, dir, dir, dir);
    print_message("# %s", out);
    assert_int_equal(rc, 0);
    assert_true(aibox_test_json_lines(out));
    assert_non_null(strstr(out, "a.jpg\""));
    assert_non_null(strstr(out, "b.jpg\""));
    snprintf(p, sizeof p, "%s/why/a.png", dir);
    assert_true(exists_png(p, 48, 40));
    snprintf(p, sizeof p, "%s/why/b.png", dir);
    assert_true(exists_png(p, 30, 50));
    /* an anomaly model is refused, pointing at --heatmap */
    aibox_model *bb = NULL;
    assert_int_equal(aibox_model_create(&bb, 3, 32, 32, &e), AIBOX_OK);
    int x = 0;
    for (int i = 0; i < 2; i++) x = aibox_relu(bb, aibox_conv2d_simple(bb, x, 8, 3, 2, 1));
    assert_int_equal(aibox_model_finish(bb, 1, &e), AIBOX_OK);
    snprintf(p, sizeof p, "%s/bb.aibox", dir);
    assert_int_equal(aibox_model_save(bb, p, &e), AIBOX_OK);
    aibox_model_free(&bb);
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/good/g%d", dir, i);
        aibox_test_write_part(&r, p, 32, 32, 3, 0);
    }
    rc = aibox_test_run(out, sizeof out, "%s/aibox-train padim %s/good -o %s/p.aibox --backbone %s/bb.aibox --layers 2,4 "
                                         "2>&1",
                        bin, dir, dir, dir);
    if (rc) print_message("# aibox-train padim: %s", out);
    assert_int_equal(rc, 0);
    rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s/p.aibox --explain %s/why %s/img/a.jpg 2>&1", bin, dir,
                        dir, dir);
    print_message("# %s", out);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "--heatmap"));
    aibox_model_free(&m);
    aibox_test_rm_rf(dir);
}

int main(int argc, char **argv)
{
    (void)argc;
    aibox_test_tools_dir(argv[0], bin, sizeof bin);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_node), cmocka_unit_test(test_torch_parity), cmocka_unit_test(test_closed_form),
        cmocka_unit_test(test_refusals),     cmocka_unit_test(test_image),        cmocka_unit_test(test_neu_scratch),
        cmocka_unit_test(test_tool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

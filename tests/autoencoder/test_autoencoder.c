/* The convolutional auto-encoder: the SSIM residual map against a naive
 * double-precision reference (the 11 x 11 Gaussian window summed directly,
 * renormalised inside the image), the L2 map and image score against
 * double sums over the network's own reconstruction, training that learns
 * (the loss falls; a defect scores above every good image it never saw), seeded
 * determinism, files and refusals. The layers it is made of (convolution,
 * LeakyReLU, nearest upsampling) are gradient-checked in tests/nn. */
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
#include "common/check.h"

#define S 32
static char g_tmp[256];

static int setup(void **state)
{
    (void)state;
    return aibox_test_mkdtemp(g_tmp, sizeof g_tmp, "ae");
}

static int teardown(void **state)
{
    (void)state;
    return aibox_test_rm_rf(g_tmp);
}

/* Direct 2-D SSIM in double: for each pixel the window's in-image part,
 * weights g(dx) g(dy) renormalised to sum 1. */
static void ssim_reference(const float *a, const float *b, int c, int w, int h, double *out)
{
    double g[11];
    for (int k = 0; k < 11; k++) g[k] = exp(-(k - 5.0) * (k - 5.0) / (2 * 1.5 * 1.5));
    const double C1 = 1e-4, C2 = 9e-4;
    for (int i = 0; i < w * h; i++) out[i] = 0;
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double ws = 0, mx = 0, my = 0, xx = 0, yy = 0, xy = 0;
                for (int dy = -5; dy <= 5; dy++)
                    for (int dx = -5; dx <= 5; dx++) {
                        int u = x + dx, v = y + dy;
                        if (u < 0 || u >= w || v < 0 || v >= h) continue;
                        double wt = g[dx + 5] * g[dy + 5];
                        double p = a[(size_t)ch * w * h + v * w + u], q = b[(size_t)ch * w * h + v * w + u];
                        ws += wt, mx += wt * p, my += wt * q, xx += wt * p * p, yy += wt * q * q, xy += wt * p * q;
                    }
                mx /= ws, my /= ws, xx /= ws, yy /= ws, xy /= ws;
                double vx = xx - mx * mx, vy = yy - my * my, cxy = xy - mx * my;
                double ssim = (2 * mx * my + C1) * (2 * cxy + C2) / ((mx * mx + my * my + C1) * (vx + vy + C2));
                out[y * w + x] += (1 - ssim) / c;
            }
}

static void test_ssim_matches_reference(void **state)
{
    (void)state;
    aibox_rng r;
    aibox_rng_seed(&r, 7);
    static const int shapes[][3] = {{1, 23, 17}, {3, 16, 16}, {1, 5, 40}, {3, 64, 9}};
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
        int c = shapes[t][0], w = shapes[t][1], h = shapes[t][2];
        size_t n = (size_t)c * w * h;
        float *a = aibox_test_floats(n), *b = aibox_test_floats(n), *got = aibox_test_floats((size_t)w * h);
        double *want = aibox_test_doubles((size_t)w * h);
        aibox_test_fill_uniform(&r, a, n, 0, 1);
        for (size_t i = 0; i < n; i++) b[i] = fminf(1, fmaxf(0, a[i] + 0.2f * (aibox_rng_uniform(&r) - 0.5f)));
        aibox_error err;
        assert_int_equal(aibox_ssim_map(a, b, c, w, h, got, NULL, &err), AIBOX_OK);
        ssim_reference(a, b, c, w, h, want);
        /* float sums of 11-tap windows; the variances' cancellation is what limits it */
        assert_true(aibox_test_close("ssim map", got, want, (size_t)w * h, 2e-4, 1e-3));
        /* identical images: SSIM 1 everywhere, residual 0 */
        assert_int_equal(aibox_ssim_map(a, a, c, w, h, got, NULL, &err), AIBOX_OK);
        for (int i = 0; i < w * h; i++) assert_true(fabsf(got[i]) < 1e-4f);
        free(a), free(b), free(got), free(want);
    }
    float x = 0;
    aibox_error err;
    assert_int_equal(aibox_ssim_map(&x, &x, 1, 0, 1, &x, NULL, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_ssim_map(NULL, &x, 1, 1, 1, &x, NULL, &err), AIBOX_E_INVALID);
}

/* n structured "good" images c x S x S in [0, 1]: stripes at a random phase
 * and a soft gradient; with defect, a 6 x 6 checkerboard near the centre. */
static float *parts(int n, int c, uint64_t seed, int defect)
{
    aibox_rng r;
    aibox_rng_seed(&r, seed);
    float *x = aibox_test_floats((size_t)n * c * S * S);
    for (int i = 0; i < n; i++) {
        float ph = 6.2832f * aibox_rng_uniform(&r);
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < S; y++)
                for (int xx = 0; xx < S; xx++) {
                    float v = 0.35f + 0.15f * sinf(0.3f * xx + ph) + 0.1f * y / S;
                    if (defect && xx >= 14 && xx < 20 && y >= 12 && y < 18) v = (xx + y) & 1 ? 0.95f : 0.05f;
                    /* whole 8-bit levels, as the preprocessing gives them */
                    x[(((size_t)i * c + ch) * S + y) * S + xx] = roundf(v * 255) / 255;
                }
    }
    return x;
}

typedef struct losses {
    double first, last;
    int n;
} losses;

static void on_epoch(void *user, int epoch, int epochs, double loss)
{
    losses *l = user;
    (void)epochs;
    if (epoch == 1) l->first = loss;
    l->last = loss, l->n++;
}

static aibox_autoencoder *fit(int c, aibox_ae_residual res, float sigma, int epochs, int threads, uint64_t seed,
                              losses *l)
{
    aibox_autoencoder_opts o = {.size = S, .channels = c, .width = 8, .latent = 4, .epochs = epochs, .batch = 8,
                                .lr = 3e-3f, .residual = res, .blur_sigma = sigma, .seed = seed,
                                .augment_mask = AIBOX_AUG_BIT(AIBOX_AUG_FLIP), .on_epoch = on_epoch, .user = l};
    aibox_autoencoder_fit *f = NULL;
    aibox_error err;
    assert_int_equal(aibox_autoencoder_fit_begin(&f, &o, threads, &err), AIBOX_OK);
    aibox_preproc pp;
    assert_int_equal(aibox_autoencoder_fit_preproc(f, &pp, &err), AIBOX_OK);
    assert_int_equal(pp.width, S), assert_int_equal(pp.channels, c);
    float *x = parts(24, c, 11, 0);
    assert_int_equal(aibox_autoencoder_fit_add(f, x, 10, &err), AIBOX_OK);
    assert_int_equal(aibox_autoencoder_fit_add(f, x + (size_t)10 * c * S * S, 14, &err), AIBOX_OK);
    assert_int_equal(aibox_autoencoder_fit_count(f), 24);
    assert_true(aibox_autoencoder_fit_bytes(f) >= (size_t)24 * c * S * S);
    aibox_autoencoder *a = NULL;
    assert_int_equal(aibox_autoencoder_fit_end(f, &a, &err), AIBOX_OK);
    aibox_autoencoder *again = NULL;
    assert_int_equal(aibox_autoencoder_fit_end(f, &again, &err), AIBOX_E_STATE); /* spent */
    assert_null(again);
    assert_int_equal(aibox_autoencoder_fit_add(f, x, 1, &err), AIBOX_E_STATE);
    aibox_autoencoder_fit_free(&f);
    free(x);
    return a;
}

/* The maps and scores against double sums over the reconstruction. */
static void test_maps_match_reference(void **state)
{
    (void)state;
    losses l = {0};
    for (int c = 1; c <= 3; c += 2) {
        aibox_autoencoder *a = fit(c, AIBOX_AE_L2, -1, 2, 1, 3, &l);
        aibox_autoencoder_ctx *ctx = NULL;
        aibox_error err;
        assert_int_equal(aibox_autoencoder_ctx_create(&ctx, a, 2, 1, &err), AIBOX_OK);
        float *x = parts(2, c, 99, 1), *recon = aibox_test_floats((size_t)2 * c * S * S);
        float *maps = aibox_test_floats(2 * S * S), scores[2];
        assert_int_equal(aibox_autoencoder_score(ctx, x, 2, recon, maps, scores, &err), AIBOX_OK);
        double *want = aibox_test_doubles(S * S);
        for (int b = 0; b < 2; b++) {
            double mx = 0;
            for (int i = 0; i < S * S; i++) {
                double d = 0;
                for (int ch = 0; ch < c; ch++) {
                    double t = (double)x[((size_t)b * c + ch) * S * S + i] - recon[((size_t)b * c + ch) * S * S + i];
                    d += t * t;
                }
                want[i] = d, mx = fmax(mx, d);
            }
            assert_true(aibox_test_close("l2 map", maps + (size_t)b * S * S, want, S * S, 1e-6, 1e-5));
            assert_true(aibox_test_close1("l2 score", scores[b], mx, 1e-6, 1e-5));
        }
        /* the same network scored with SSIM (the model's residual switched by a reload would do the same) */
        float *m1 = aibox_test_floats(S * S);
        assert_int_equal(aibox_autoencoder_score(ctx, x, 1, NULL, m1, NULL, &err), AIBOX_OK);
        assert_true(aibox_test_close_ff("maps without recon", m1, maps, S * S, 0, 0));
        aibox_autoencoder_ctx_free(&ctx);
        aibox_autoencoder_free(&a);
        free(x), free(recon), free(maps), free(want), free(m1);
    }
    /* SSIM residual: the map is aibox_ssim_map of the image and its reconstruction (tested above) */
    aibox_autoencoder *a = fit(1, AIBOX_AE_SSIM, -1, 2, 1, 3, &l);
    aibox_autoencoder_ctx *ctx = NULL;
    aibox_error err;
    assert_int_equal(aibox_autoencoder_ctx_create(&ctx, a, 1, 1, &err), AIBOX_OK);
    float *x = parts(1, 1, 5, 1), *recon = aibox_test_floats(S * S), *map = aibox_test_floats(S * S), score;
    double *want = aibox_test_doubles(S * S);
    assert_int_equal(aibox_autoencoder_score(ctx, x, 1, recon, map, &score, &err), AIBOX_OK);
    ssim_reference(x, recon, 1, S, S, want);
    assert_true(aibox_test_close("ssim residual", map, want, S * S, 2e-4, 1e-3));
    aibox_autoencoder_ctx_free(&ctx);
    aibox_autoencoder_free(&a);
    free(x), free(recon), free(map), free(want);
}

/* Training learns the good parts: the loss falls, and a part with a
 * checkerboard patch scores above every good part it never saw. */
static void test_training_learns(void **state)
{
    (void)state;
    for (int r = 0; r < 2; r++) {
        losses l = {0};
        aibox_ae_residual res = r ? AIBOX_AE_SSIM : AIBOX_AE_L2;
        aibox_autoencoder *a = fit(1, res, 0, 60, 2, 1, &l);
        print_message("# %s: loss %.5f after the first epoch, %.5f after %d\n", r ? "ssim" : "l2", l.first, l.last, l.n);
        assert_int_equal(l.n, 60);
        assert_true(l.last < l.first / 3);
        aibox_autoencoder_ctx *ctx = NULL;
        aibox_error err;
        assert_int_equal(aibox_autoencoder_ctx_create(&ctx, a, 8, 2, &err), AIBOX_OK);
        float *good = parts(8, 1, 1234, 0), *bad = parts(8, 1, 1234, 1), sg[8], sb[8];
        assert_int_equal(aibox_autoencoder_score(ctx, good, 8, NULL, NULL, sg, &err), AIBOX_OK);
        assert_int_equal(aibox_autoencoder_score(ctx, bad, 8, NULL, NULL, sb, &err), AIBOX_OK);
        float gmax = 0, bmin = INFINITY;
        for (int i = 0; i < 8; i++) gmax = fmaxf(gmax, sg[i]), bmin = fminf(bmin, sb[i]);
        print_message("# %s: good parts up to %g, defects from %g\n", r ? "ssim" : "l2", gmax, bmin);
        assert_true(bmin > gmax);
        aibox_autoencoder_ctx_free(&ctx);
        aibox_autoencoder_free(&a);
        free(good), free(bad);
    }
}

/* The same seed and threads give the same network, bit for bit. */
static void test_deterministic(void **state)
{
    (void)state;
    losses l = {0};
    aibox_autoencoder *a = fit(3, AIBOX_AE_SSIM, 0, 3, 2, 9, &l), *b = fit(3, AIBOX_AE_SSIM, 0, 3, 2, 9, &l);
    aibox_autoencoder *c = fit(3, AIBOX_AE_SSIM, 0, 3, 2, 10, &l);
    aibox_model *ma = aibox_autoencoder_model(a), *mb = aibox_autoencoder_model(b), *mc = aibox_autoencoder_model(c);
    size_t n = aibox_model_param_count(ma);
    assert_true(n > 1000);
    assert_memory_equal(aibox_model_params(ma), aibox_model_params(mb), n * sizeof(float));
    assert_true(memcmp(aibox_model_params(ma), aibox_model_params(mc), n * sizeof(float)) != 0);
    aibox_autoencoder_free(&a), aibox_autoencoder_free(&b), aibox_autoencoder_free(&c);
}

static void test_files(void **state)
{
    (void)state;
    losses l = {0};
    aibox_autoencoder *a = fit(3, AIBOX_AE_SSIM, 2, 2, 1, 4, &l), *b = NULL;
    char path[512], cut[512], other[512];
    snprintf(path, sizeof path, "%s/ae.aibox", g_tmp);
    aibox_error err;
    assert_int_equal(aibox_autoencoder_save(a, path, &err), AIBOX_OK);
    assert_int_equal(aibox_autoencoder_load(&b, path, &err), AIBOX_OK);
    aibox_ae_residual ra, rb;
    long ia, ib;
    int ea, eb;
    double la, lb;
    aibox_autoencoder_info(a, &ra, &ia, &ea, &la);
    aibox_autoencoder_info(b, &rb, &ib, &eb, &lb);
    assert_int_equal(ra, rb), assert_int_equal(ia, 24), assert_int_equal(ib, 24), assert_int_equal(ea, eb);
    assert_true(la == lb);
    aibox_autoencoder_ctx *ca = NULL, *cb = NULL;
    assert_int_equal(aibox_autoencoder_ctx_create(&ca, a, 1, 1, &err), AIBOX_OK);
    assert_int_equal(aibox_autoencoder_ctx_create(&cb, b, 1, 1, &err), AIBOX_OK);
    float *x = parts(1, 3, 8, 1), ma[S * S], mb[S * S], sa, sb;
    assert_int_equal(aibox_autoencoder_score(ca, x, 1, NULL, ma, &sa, &err), AIBOX_OK);
    assert_int_equal(aibox_autoencoder_score(cb, x, 1, NULL, mb, &sb, &err), AIBOX_OK);
    assert_memory_equal(ma, mb, sizeof ma);
    assert_true(sa == sb);
    /* a detector around it judges through the common interface */
    aibox_detector *d = NULL;
    assert_int_equal(aibox_detector_from_autoencoder(&d, b, 1, &err), AIBOX_OK);
    b = NULL; /* the detector owns it */
    assert_string_equal(aibox_detector_method(d), "autoencoder");
    assert_non_null(aibox_detector_autoencoder(d));
    assert_null(aibox_detector_patchcore(d));
    aibox_detector_free(&d);
    /* a truncated file */
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)len);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    snprintf(cut, sizeof cut, "%s/cut.aibox", g_tmp);
    f = fopen(cut, "wb");
    fwrite(buf, 1, (size_t)len / 2, f);
    fclose(f);
    free(buf);
    assert_int_not_equal(aibox_autoencoder_load(&b, cut, &err), AIBOX_OK);
    assert_null(b);
    assert_non_null(strstr(err.msg, "cut.aibox"));
    /* another kind of model; and one claiming to be an auto-encoder whose output is not an image */
    aibox_model *m = NULL;
    assert_int_equal(aibox_model_create(&m, 3, S, S, &err), AIBOX_OK);
    aibox_conv_opts co = {.out_channels = 2, .kernel_h = 3, .kernel_w = 3, .pad_top = 1, .pad_left = 1,
                          .pad_bottom = 1, .pad_right = 1, .bias = 1};
    aibox_conv2d(m, 0, &co);
    assert_int_equal(aibox_model_finish(m, 1, &err), AIBOX_OK);
    snprintf(other, sizeof other, "%s/other.aibox", g_tmp);
    assert_int_equal(aibox_model_save(m, other, &err), AIBOX_OK);
    assert_int_equal(aibox_autoencoder_load(&b, other, &err), AIBOX_E_NOTFOUND);
    assert_int_equal(aibox_model_set_meta_str(m, "aibox.task", "autoencoder", &err), AIBOX_OK);
    assert_int_equal(aibox_model_set_meta_str(m, "aibox.autoencoder.residual", "ssim", &err), AIBOX_OK);
    assert_int_equal(aibox_model_save(m, other, &err), AIBOX_OK);
    assert_int_equal(aibox_autoencoder_load(&b, other, &err), AIBOX_E_FORMAT);
    print_message("# %s\n", err.msg);
    aibox_model_free(&m);
    aibox_autoencoder_ctx_free(&ca), aibox_autoencoder_ctx_free(&cb);
    aibox_autoencoder_free(&a);
    free(x);
}

static void test_bad_options(void **state)
{
    (void)state;
    aibox_autoencoder_fit *f = NULL;
    aibox_error err;
    static const aibox_autoencoder_opts bad[] = {
        {.size = 40}, {.size = 16}, {.size = 2048}, {.channels = 2}, {.width = -1}, {.latent = 5000},
        {.epochs = -3}, {.batch = -1}, {.lr = -1}, {.lr = NAN}, {.residual = (aibox_ae_residual)7},
        {.augment_p = 2}, {.augment_mask = 1u << 20}, {.blur_sigma = 1e9f},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(aibox_autoencoder_fit_begin(&f, &bad[i], 1, &err), AIBOX_E_INVALID);
        assert_null(f);
    }
    aibox_model *m = NULL;
    assert_int_equal(aibox_autoencoder_network(&m, &bad[0], &err), AIBOX_E_INVALID);
    /* the defaults: Bergmann's shapes at 128 x 128 x 3, output = input shape */
    assert_int_equal(aibox_autoencoder_network(&m, NULL, &err), AIBOX_OK);
    int c, h, w;
    aibox_model_node_shape(m, aibox_model_output(m), &c, &h, &w);
    assert_int_equal(c, 3), assert_int_equal(h, 128), assert_int_equal(w, 128);
    aibox_model_free(&m);
    /* values that are not pixels / 255; a fit without images */
    assert_int_equal(aibox_autoencoder_fit_begin(&f, &(aibox_autoencoder_opts){.size = S, .channels = 1}, 1, &err),
                     AIBOX_OK);
    float *x = aibox_test_floats(S * S);
    x[5] = NAN;
    assert_int_equal(aibox_autoencoder_fit_add(f, x, 1, &err), AIBOX_E_NONFINITE);
    x[5] = 2.0f;
    assert_int_equal(aibox_autoencoder_fit_add(f, x, 1, &err), AIBOX_E_NONFINITE);
    assert_int_equal(aibox_autoencoder_fit_add(f, x, -1, &err), AIBOX_E_INVALID);
    aibox_autoencoder *a = NULL;
    assert_int_equal(aibox_autoencoder_fit_end(f, &a, &err), AIBOX_E_INVALID);
    assert_null(a);
    aibox_autoencoder_fit_free(&f);
    free(x);
    /* a rate that diverges is reported, not stored */
    assert_int_equal(aibox_autoencoder_fit_begin(
                         &f, &(aibox_autoencoder_opts){.size = S, .channels = 1, .lr = 9.9f, .epochs = 20}, 1, &err),
                     AIBOX_OK);
    x = parts(16, 1, 3, 0);
    assert_int_equal(aibox_autoencoder_fit_add(f, x, 16, &err), AIBOX_OK);
    aibox_status s = aibox_autoencoder_fit_end(f, &a, &err);
    print_message("# lr 9.9: %s\n", s ? err.msg : "trained");
    if (s) assert_int_equal(s, AIBOX_E_NONFINITE), assert_null(a);
    aibox_autoencoder_free(&a);
    aibox_autoencoder_fit_free(&f);
    free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ssim_matches_reference),
        cmocka_unit_test(test_maps_match_reference),
        cmocka_unit_test(test_training_learns),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests_name("autoencoder", tests, setup, teardown);
}

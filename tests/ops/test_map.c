/* Float-map resize and blur against naive double-precision references, and
 * (when /usr/bin/python3 imports torch) against PyTorch itself.
 *
 * Tolerances (|got - want| <= atol + rtol*|want|):
 *  - resize vs the double formula: atol 3e-6. The library computes the source
 *    coordinate (d + 0.5) * in/out - 0.5 in float, as PyTorch does for float
 *    maps; where in/out is inexact here the sources are under 16 pixels, so
 *    its rounding stays below ~2 ulp(16) = 1.9e-6, times a slope of at most
 *    1 (values in [0, 1)), plus the rounding of the result. Power-of-two
 *    ratios and equal sizes: exact coordinates.
 *  - blur vs a double 2-D convolution (kernel g(i) g(j), reflect borders found
 *    by folding the index until it lands inside): atol 1e-6, rtol 1e-5 (float
 *    weights and float sums of 2 x 33 terms of values in [0, 1)).
 *  - PyTorch parity: atol 1e-5 for resize and blur (both sides float).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "aibox.h"
#include "common/check.h"

/* ------------------------------------------------------------------ references */

/* PyTorch's upsample_bilinear2d, align_corners=False, in double. */
static void resize_ref(const float *src, int sw, int sh, double *dst, int dw, int dh)
{
    for (int oy = 0; oy < dh; oy++) {
        double sy = ((double)oy + 0.5) * (double)sh / (double)dh - 0.5;
        if (sy < 0) sy = 0;
        int y0 = (int)floor(sy);
        if (y0 > sh - 1) y0 = sh - 1;
        int y1 = y0 + 1 < sh ? y0 + 1 : sh - 1;
        double ly = sy - y0;
        for (int ox = 0; ox < dw; ox++) {
            double sx = ((double)ox + 0.5) * (double)sw / (double)dw - 0.5;
            if (sx < 0) sx = 0;
            int x0 = (int)floor(sx);
            if (x0 > sw - 1) x0 = sw - 1;
            int x1 = x0 + 1 < sw ? x0 + 1 : sw - 1;
            double lx = sx - x0;
            double top = (1 - lx) * src[y0 * sw + x0] + lx * src[y0 * sw + x1];
            double bot = (1 - lx) * src[y1 * sw + x0] + lx * src[y1 * sw + x1];
            dst[oy * dw + ox] = (1 - ly) * top + ly * bot;
        }
    }
}

/* Mirror without repeating the edge, folding as often as needed. */
static int fold(int i, int n)
{
    if (n == 1) return 0;
    while (i < 0 || i >= n) {
        if (i < 0) i = -i;
        if (i >= n) i = 2 * (n - 1) - i;
    }
    return i;
}

static void blur_ref(const float *src, int w, int h, double sigma, double *dst)
{
    int r = (int)(4.0 * sigma + 0.5), ks = 2 * r + 1;
    double *k2 = aibox_test_doubles((size_t)ks * ks), sum = 0;
    for (int i = 0; i < ks; i++)
        for (int j = 0; j < ks; j++) {
            double a = i - r, b = j - r;
            k2[i * ks + j] = exp(-(a * a + b * b) / (2 * sigma * sigma));
            sum += k2[i * ks + j];
        }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double acc = 0;
            for (int i = 0; i < ks; i++)
                for (int j = 0; j < ks; j++) acc += k2[i * ks + j] * src[fold(y + i - r, h) * w + fold(x + j - r, w)];
            dst[y * w + x] = acc / sum;
        }
    free(k2);
}

/* ------------------------------------------------------------------ resize */

static void check_resize(aibox_rng *rng, int sw, int sh, int dw, int dh, double atol)
{
    float *src = aibox_test_floats((size_t)sw * sh), *dst = aibox_test_floats((size_t)dw * dh);
    double *want = aibox_test_doubles((size_t)dw * dh);
    aibox_test_fill_uniform(rng, src, (size_t)sw * sh, 0, 1);
    aibox_error err = {0};
    assert_int_equal(aibox_map_resize(src, sw, sh, dst, dw, dh, &err), AIBOX_OK);
    resize_ref(src, sw, sh, want, dw, dh);
    char what[64];
    snprintf(what, sizeof what, "resize %dx%d -> %dx%d", sw, sh, dw, dh);
    AIBOX_TEST_CLOSE(what, dst, want, (size_t)dw * dh, atol, 0);
    free(src), free(dst), free(want);
}

static void test_resize(void **state)
{
    (void)state;
    aibox_rng rng;
    aibox_rng_seed(&rng, 1);
    check_resize(&rng, 56, 56, 224, 224, 3e-6);  /* PaDiM: ResNet layer1 grid to the input */
    check_resize(&rng, 28, 28, 224, 224, 3e-6);
    check_resize(&rng, 224, 224, 56, 56, 3e-6);  /* shrinking, no antialias */
    check_resize(&rng, 7, 5, 13, 11, 3e-6);      /* non-integer ratios, non-square */
    check_resize(&rng, 13, 11, 7, 5, 3e-6);
    check_resize(&rng, 10, 3, 3, 10, 3e-6);
    check_resize(&rng, 1, 1, 5, 4, 0);           /* one pixel: constant */
    check_resize(&rng, 6, 1, 17, 3, 3e-6);
    check_resize(&rng, 9, 8, 9, 8, 0);           /* same size: a copy */
    /* upscaling by 4: output pixel 1 sits at source 1.5/4 - .5 < 0 -> clamped to
     * pixel 0; output pixel 2 at 0.125: 7/8 of pixel 0 + 1/8 of pixel 1 */
    const float s[2] = {0.0f, 8.0f};
    float d[8];
    assert_int_equal(aibox_map_resize(s, 2, 1, d, 8, 1, NULL), AIBOX_OK);
    assert_true(d[0] == 0.0f && d[1] == 0.0f && d[2] == 1.0f && d[5] == 7.0f && d[7] == 8.0f);
}

static void test_resize_bad_args(void **state)
{
    (void)state;
    float a[4] = {0}, b[16];
    aibox_error err = {0};
    assert_int_equal(aibox_map_resize(NULL, 2, 2, b, 4, 4, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_map_resize(a, 2, 2, NULL, 4, 4, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_map_resize(a, 0, 2, b, 4, 4, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_map_resize(a, 2, 2, b, 4, -3, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_map_resize(a, 2, 2, a, 2, 2, NULL), AIBOX_E_INVALID);
    printf("  refused as expected: %s\n", err.msg);
}

/* ------------------------------------------------------------------ blur */

static void check_blur(aibox_rng *rng, int w, int h, float sigma)
{
    const size_t n = (size_t)w * h;
    float *m = aibox_test_floats(n), *orig = aibox_test_floats(n);
    double *want = aibox_test_doubles(n);
    aibox_test_fill_uniform(rng, m, n, 0, 1);
    memcpy(orig, m, n * sizeof *m);
    aibox_error err = {0};
    assert_int_equal(aibox_map_blur(m, w, h, sigma, &err), AIBOX_OK);
    blur_ref(orig, w, h, sigma, want);
    char what[64];
    snprintf(what, sizeof what, "blur %dx%d sigma %g", w, h, (double)sigma);
    AIBOX_TEST_CLOSE(what, m, want, n, 1e-6, 1e-5);
    free(m), free(orig), free(want);
}

static void test_blur(void **state)
{
    (void)state;
    aibox_rng rng;
    aibox_rng_seed(&rng, 2);
    assert_int_equal(aibox_map_blur_kernel_size(4.0f), 33); /* Anomalib's PaDiM sigma */
    assert_int_equal(aibox_map_blur_kernel_size(0.5f), 5);
    assert_int_equal(aibox_map_blur_kernel_size(0.1f), 1);
    assert_int_equal(aibox_map_blur_kernel_size(0.0f), 0);
    assert_int_equal(aibox_map_blur_kernel_size(-1.0f), 0);
    assert_int_equal(aibox_map_blur_kernel_size(NAN), 0);
    assert_int_equal(aibox_map_blur_kernel_size(2e5f), 0);
    check_blur(&rng, 224, 224, 4.0f);
    check_blur(&rng, 31, 17, 1.3f);
    check_blur(&rng, 9, 7, 0.7f);
    check_blur(&rng, 5, 4, 2.0f);   /* radius 8 beyond both sides: the mirror repeats */
    check_blur(&rng, 1, 12, 1.0f);  /* a column: rows are constant */
    check_blur(&rng, 12, 1, 1.0f);
    check_blur(&rng, 1, 1, 3.0f);
    /* a 1-tap kernel is the identity; a constant map stays constant */
    float m[12], c[12];
    aibox_test_fill_uniform(&rng, m, 12, -1, 1);
    memcpy(c, m, sizeof m);
    assert_int_equal(aibox_map_blur(m, 4, 3, 0.1f, NULL), AIBOX_OK);
    assert_memory_equal(m, c, sizeof m);
    for (int i = 0; i < 12; i++) m[i] = 0.25f;
    assert_int_equal(aibox_map_blur(m, 4, 3, 6.0f, NULL), AIBOX_OK);
    for (int i = 0; i < 12; i++) assert_true(fabsf(m[i] - 0.25f) <= 1e-6f);
}

static void test_blur_bad_args(void **state)
{
    (void)state;
    float m[4] = {1, 2, 3, 4};
    aibox_error err = {0};
    assert_int_equal(aibox_map_blur(NULL, 2, 2, 1.0f, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_map_blur(m, 0, 2, 1.0f, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_map_blur(m, 2, -2, 1.0f, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_map_blur(m, 2, 2, 0.0f, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_map_blur(m, 2, 2, -1.0f, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_map_blur(m, 2, 2, NAN, NULL), AIBOX_E_INVALID);
    assert_int_equal(aibox_map_blur(m, 2, 2, INFINITY, &err), AIBOX_E_INVALID);
    printf("  refused as expected: %s\n", err.msg);
    assert_true(m[0] == 1 && m[1] == 2 && m[2] == 3 && m[3] == 4); /* untouched */
}

/* ------------------------------------------------------------------ PyTorch parity */

static float *slurp_floats(const char *dir, const char *name, size_t count)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    float *x = aibox_test_floats(count);
    size_t got = fread(x, sizeof *x, count, f);
    int extra = fgetc(f);
    fclose(f);
    if (got != count || extra != EOF) fail_msg("%s: not %zu floats", path, count);
    unlink(path);
    return x;
}

static void parity(const char *dir, const char *what, const float *got, const char *ref, size_t count)
{
    float *want = slurp_floats(dir, ref, count);
    double worst = 0;
    for (size_t i = 0; i < count; i++) worst = fmax(worst, fabs((double)got[i] - want[i]));
    printf("  PyTorch parity, %s: max |diff| %.3g (limit 1e-5)\n", what, worst);
    AIBOX_TEST_CLOSE_FF(what, got, want, count, 1e-5, 0);
    free(want);
}

static void test_torch_parity(void **state)
{
    (void)state;
    char dir[] = "/tmp/aibox-map-XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(aibox_test_torch_script("tests/ops/map_parity.py", dir, dir), 0);
    float *in56 = slurp_floats(dir, "in56.f32", 56 * 56), *in224 = slurp_floats(dir, "in224.f32", 224 * 224);
    float *in7x5 = slurp_floats(dir, "in7x5.f32", 7 * 5);
    float *out = aibox_test_floats(224 * 224);
    assert_int_equal(aibox_map_resize(in56, 56, 56, out, 224, 224, NULL), AIBOX_OK);
    parity(dir, "resize 56 -> 224", out, "rs224.f32", 224 * 224);
    assert_int_equal(aibox_map_resize(in224, 224, 224, out, 56, 56, NULL), AIBOX_OK);
    parity(dir, "resize 224 -> 56", out, "rs56.f32", 56 * 56);
    assert_int_equal(aibox_map_resize(in7x5, 7, 5, out, 13, 11, NULL), AIBOX_OK);
    parity(dir, "resize 7x5 -> 13x11", out, "rs13x11.f32", 13 * 11);
    assert_int_equal(aibox_map_blur(in224, 224, 224, 4.0f, NULL), AIBOX_OK);
    parity(dir, "blur sigma 4, 224x224", in224, "blur4.f32", 224 * 224);
    rmdir(dir);
    free(in56), free(in224), free(in7x5), free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resize),
        cmocka_unit_test(test_resize_bad_args),
        cmocka_unit_test(test_blur),
        cmocka_unit_test(test_blur_bad_args),
        cmocka_unit_test(test_torch_parity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

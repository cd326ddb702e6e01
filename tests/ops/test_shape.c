/* Shape kernels (zero padding, concat, add, nearest and bilinear upsampling)
 * against naive double-precision references and central finite differences.
 *
 * Tolerances (|got - want| <= atol + rtol*|want|):
 *  - zeropad, concat, nearest forward: exact (pure copies).
 *  - add forward: atol 0, rtol 1e-7 (one float addition).
 *  - bilinear forward: atol 1e-6, rtol 1e-5 (the kernel computes its weights
 *    in float as PyTorch does; the reference in double).
 *  - backward (all): atol 1e-6, rtol 1e-5 against central differences of the
 *    double reference, step 1e-3; every layer here is linear, so the
 *    differences are exact up to double rounding.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/check.h"
#include "ops/ops.h"

/* ------------------------------------------------------------ helpers */
typedef struct shape_user {
    int n, c, h, w, oh, ow;
    int pt, pl, pb, pr;
    /* concat */
    int k;
    const int *cs;
    const float *dy;
} shape_user;

/* Runs forward ref + kernel, compares, then checks the accumulating backward
 * against differences of the reference. */
static void check_layer(const char *what, shape_user *u, size_t nx, size_t ny, aibox_test_fwd_d ref,
                        void (*fwd)(shape_user *, const float *, float *), aibox_test_bwd bwd, double fwd_atol,
                        double fwd_rtol, uint64_t seed)
{
    aibox_rng rng;
    aibox_rng_seed(&rng, seed);
    float *x = aibox_test_floats(nx), *y = aibox_test_floats(ny), *dy = aibox_test_floats(ny);
    double *xd = aibox_test_doubles(nx), *yd = aibox_test_doubles(ny), *r = aibox_test_doubles(ny);
    double *g = aibox_test_doubles(nx);
    aibox_test_fill_uniform(&rng, x, nx, -2, 2);
    aibox_test_f2d(x, xd, nx);
    ref(u, xd, yd);
    /* the kernel must write every output: start from NaN */
    for (size_t i = 0; i < ny; i++) y[i] = NAN;
    fwd(u, x, y);
    char label[160];
    snprintf(label, sizeof label, "%s fwd", what);
    AIBOX_TEST_CLOSE(label, y, yd, ny, fwd_atol, fwd_rtol);

    aibox_test_fill_uniform(&rng, dy, ny, -1, 1);
    aibox_test_f2d(dy, r, ny);
    u->dy = dy;
    aibox_test_numgrad_d(ref, u, xd, nx, r, ny, 1e-3, g);
    snprintf(label, sizeof label, "%s bwd", what);
    assert_true(aibox_test_bwd_accumulates(label, bwd, u, nx, g, 1e-6, 1e-5, seed + 1));
    free(x), free(y), free(dy), free(xd), free(yd), free(r), free(g);
}

/* ------------------------------------------------------------ zero padding */
static void ref_pad(void *user, const double *x, double *y)
{
    shape_user *u = user;
    const int oh = u->h + u->pt + u->pb, ow = u->w + u->pl + u->pr;
    for (int p = 0; p < u->n * u->c; p++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                const int iy = oy - u->pt, ix = ox - u->pl;
                const int in = iy >= 0 && iy < u->h && ix >= 0 && ix < u->w;
                y[((size_t)p * oh + oy) * ow + ox] = in ? x[((size_t)p * u->h + iy) * u->w + ix] : 0.0;
            }
}
static void fwd_pad(shape_user *u, const float *x, float *y)
{
    aibox_zeropad_fwd(u->n, u->c, u->h, u->w, u->pt, u->pl, u->pb, u->pr, x, y);
}
static void bwd_pad(void *user, float *dx)
{
    shape_user *u = user;
    aibox_zeropad_bwd(u->n, u->c, u->h, u->w, u->pt, u->pl, u->pb, u->pr, u->dy, dx);
}

static void test_zeropad(void **state)
{
    (void)state;
    static const int cfg[][8] = {
        /* n c h w pt pl pb pr */
        {2, 3, 5, 7, 1, 2, 0, 3},   /* asymmetric, odd */
        {1, 2, 4, 4, 1, 1, 1, 1},   /* symmetric */
        {3, 1, 3, 5, 0, 0, 2, 1},   /* bottom/right only (TF 'same' style) */
        {2, 2, 6, 5, -1, 0, 2, -2}, /* negative pads crop (documented) */
        {1, 1, 1, 1, 2, 0, 0, 2},
    };
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        const int *k = cfg[i];
        shape_user u = {.n = k[0], .c = k[1], .h = k[2], .w = k[3], .pt = k[4], .pl = k[5], .pb = k[6], .pr = k[7]};
        const size_t nx = (size_t)u.n * u.c * u.h * u.w;
        const size_t ny = (size_t)u.n * u.c * (u.h + u.pt + u.pb) * (u.w + u.pl + u.pr);
        char what[96];
        snprintf(what, sizeof what, "zeropad %dx%d pads %d %d %d %d", u.h, u.w, u.pt, u.pl, u.pb, u.pr);
        check_layer(what, &u, nx, ny, ref_pad, fwd_pad, bwd_pad, 0, 0, 50 + i);
    }
}

/* ------------------------------------------------------------ concat */
/* x packs the k inputs one after the other (each n x cs[i] x hw). */
static void ref_concat(void *user, const double *x, double *y)
{
    shape_user *u = user;
    const int hw = u->h * u->w;
    int ctot = 0;
    for (int i = 0; i < u->k; i++) ctot += u->cs[i];
    size_t in_off = 0;
    int c0 = 0;
    for (int i = 0; i < u->k; i++) {
        for (int s = 0; s < u->n; s++)
            for (int ch = 0; ch < u->cs[i]; ch++)
                for (int p = 0; p < hw; p++)
                    y[((size_t)s * ctot + c0 + ch) * hw + p] = x[in_off + ((size_t)s * u->cs[i] + ch) * hw + p];
        in_off += (size_t)u->n * u->cs[i] * hw;
        c0 += u->cs[i];
    }
}

static void split_ptrs(const shape_user *u, float *base, float **ptrs)
{
    size_t off = 0;
    for (int i = 0; i < u->k; i++) {
        ptrs[i] = base + off;
        off += (size_t)u->n * u->cs[i] * u->h * u->w;
    }
}
static void fwd_concat(shape_user *u, const float *x, float *y)
{
    float *ptrs[8];
    split_ptrs(u, (float *)x, ptrs);
    aibox_concat_fwd(u->n, u->k, u->cs, u->h * u->w, (const float *const *)ptrs, y);
}
static void bwd_concat(void *user, float *dx)
{
    shape_user *u = user;
    float *ptrs[8];
    split_ptrs(u, dx, ptrs);
    aibox_concat_bwd(u->n, u->k, u->cs, u->h * u->w, u->dy, ptrs);
}

static void test_concat(void **state)
{
    (void)state;
    const int cs[3] = {2, 1, 3};
    shape_user u = {.n = 2, .h = 5, .w = 3, .k = 3, .cs = cs};
    const size_t count = (size_t)u.n * 6 * 15;
    check_layer("concat 2+1+3 channels", &u, count, count, ref_concat, fwd_concat, bwd_concat, 0, 0, 60);
    const int cs1[1] = {4};
    shape_user u1 = {.n = 3, .h = 1, .w = 7, .k = 1, .cs = cs1};
    check_layer("concat of one input", &u1, 84, 84, ref_concat, fwd_concat, bwd_concat, 0, 0, 61);
}

static void test_concat_null_grad(void **state)
{
    (void)state;
    /* a NULL gradient pointer skips that input; the others still accumulate */
    const int cs[2] = {1, 2}, n = 2, hw = 3;
    float dy[18], db[12];
    for (int i = 0; i < 18; i++) dy[i] = (float)(i + 1);
    for (int i = 0; i < 12; i++) db[i] = 0.5f;
    float *dxs[2] = {NULL, db};
    aibox_concat_bwd(n, 2, cs, hw, dy, dxs);
    /* sample s of input 1 is dy channels 1..2 of sample s: dy[s*9 + 3 .. s*9 + 8] */
    for (int s = 0; s < n; s++)
        for (int j = 0; j < 6; j++) assert_true(db[s * 6 + j] == 0.5f + dy[s * 9 + 3 + j]);
}

/* ------------------------------------------------------------ add */
static void test_add(void **state)
{
    (void)state;
    const size_t n = 1003;
    aibox_rng rng;
    aibox_rng_seed(&rng, 70);
    float *a = aibox_test_floats(n), *b = aibox_test_floats(n), *y = aibox_test_floats(n);
    double *yd = aibox_test_doubles(n);
    aibox_test_fill_uniform(&rng, a, n, -3, 3);
    aibox_test_fill_uniform(&rng, b, n, -3, 3);
    for (size_t i = 0; i < n; i++) yd[i] = (double)a[i] + b[i];
    aibox_add_fwd(n, a, b, y);
    AIBOX_TEST_CLOSE("add fwd", y, yd, n, 0, 1e-7);
    /* in place into a */
    aibox_add_fwd(n, a, b, a);
    AIBOX_TEST_CLOSE("add fwd in place", a, yd, n, 0, 1e-7);
    free(a), free(b), free(y), free(yd);
}

/* ------------------------------------------------------------ upsampling */
/* Nearest: src = floor(dst * in / out), exact integer arithmetic. (PyTorch
 * computes it with a float scale; the sizes used here are ones where the two
 * agree, see shape.c.) */
static void ref_nearest(void *user, const double *x, double *y)
{
    shape_user *u = user;
    for (int p = 0; p < u->n * u->c; p++)
        for (int oy = 0; oy < u->oh; oy++)
            for (int ox = 0; ox < u->ow; ox++) {
                const int iy = (int)((long)oy * u->h / u->oh), ix = (int)((long)ox * u->w / u->ow);
                y[((size_t)p * u->oh + oy) * u->ow + ox] = x[((size_t)p * u->h + iy) * u->w + ix];
            }
}
static void fwd_nearest(shape_user *u, const float *x, float *y)
{
    aibox_upsample_nearest_fwd(u->n, u->c, u->h, u->w, u->oh, u->ow, x, y);
}
static void bwd_nearest(void *user, float *dx)
{
    shape_user *u = user;
    aibox_upsample_nearest_bwd(u->n, u->c, u->h, u->w, u->oh, u->ow, u->dy, dx);
}

/* Bilinear, align_corners = false, in double:
 * src = max((dst + 0.5) * in/out - 0.5, 0); neighbours floor(src) and the
 * next one clamped to the border. */
static void axis(int dst, int in, int out, int *i0, int *i1, double *l1)
{
    double src = (dst + 0.5) * in / out - 0.5;
    if (src < 0) src = 0;
    *i0 = (int)floor(src);
    if (*i0 > in - 1) *i0 = in - 1;
    *i1 = *i0 + 1 < in ? *i0 + 1 : in - 1;
    *l1 = src - *i0;
}
static void ref_bilinear(void *user, const double *x, double *y)
{
    shape_user *u = user;
    for (int p = 0; p < u->n * u->c; p++)
        for (int oy = 0; oy < u->oh; oy++)
            for (int ox = 0; ox < u->ow; ox++) {
                int y0, y1, x0, x1;
                double ly, lx;
                axis(oy, u->h, u->oh, &y0, &y1, &ly);
                axis(ox, u->w, u->ow, &x0, &x1, &lx);
                const double *xp = x + (size_t)p * u->h * u->w;
                double top = (1 - lx) * xp[y0 * u->w + x0] + lx * xp[y0 * u->w + x1];
                double bot = (1 - lx) * xp[y1 * u->w + x0] + lx * xp[y1 * u->w + x1];
                y[((size_t)p * u->oh + oy) * u->ow + ox] = (1 - ly) * top + ly * bot;
            }
}
static void fwd_bilinear(shape_user *u, const float *x, float *y)
{
    aibox_upsample_bilinear_fwd(u->n, u->c, u->h, u->w, u->oh, u->ow, x, y);
}
static void bwd_bilinear(void *user, float *dx)
{
    shape_user *u = user;
    aibox_upsample_bilinear_bwd(u->n, u->c, u->h, u->w, u->oh, u->ow, u->dy, dx);
}

static const int up_cfg[][6] = {
    /* n c h w oh ow */
    {2, 3, 4, 5, 8, 10}, /* exact 2x */
    {1, 2, 3, 5, 7, 8},  /* non-integer factors */
    {2, 1, 9, 7, 4, 3},  /* downsampling */
    {1, 2, 6, 5, 6, 5},  /* same size */
    {3, 1, 1, 1, 3, 4},  /* from a single pixel */
    {1, 1, 2, 3, 9, 2},  /* up in one axis, down in the other */
};

static void test_upsample_nearest(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof up_cfg / sizeof up_cfg[0]; i++) {
        const int *k = up_cfg[i];
        shape_user u = {.n = k[0], .c = k[1], .h = k[2], .w = k[3], .oh = k[4], .ow = k[5]};
        char what[96];
        snprintf(what, sizeof what, "nearest %dx%d -> %dx%d", u.h, u.w, u.oh, u.ow);
        check_layer(what, &u, (size_t)u.n * u.c * u.h * u.w, (size_t)u.n * u.c * u.oh * u.ow, ref_nearest,
                    fwd_nearest, bwd_nearest, 0, 0, 80 + i);
    }
}

static void test_upsample_bilinear(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof up_cfg / sizeof up_cfg[0]; i++) {
        const int *k = up_cfg[i];
        shape_user u = {.n = k[0], .c = k[1], .h = k[2], .w = k[3], .oh = k[4], .ow = k[5]};
        char what[96];
        snprintf(what, sizeof what, "bilinear %dx%d -> %dx%d", u.h, u.w, u.oh, u.ow);
        check_layer(what, &u, (size_t)u.n * u.c * u.h * u.w, (size_t)u.n * u.c * u.oh * u.ow, ref_bilinear,
                    fwd_bilinear, bwd_bilinear, 1e-6, 1e-5, 90 + i);
    }
}

static void test_upsample_known_values(void **state)
{
    (void)state;
    /* torch.nn.functional.interpolate(torch.tensor([[[[1., 2.], [3., 4.]]]]),
     * size=(4, 4), mode='bilinear', align_corners=False) */
    const float x[4] = {1, 2, 3, 4};
    float y[16];
    const double want[16] = {1.0, 1.25, 1.75, 2.0, 1.5, 1.75, 2.25, 2.5,
                             2.5, 2.75, 3.25, 3.5, 3.0, 3.25, 3.75, 4.0};
    aibox_upsample_bilinear_fwd(1, 1, 2, 2, 4, 4, x, y);
    AIBOX_TEST_CLOSE("bilinear 2x2 -> 4x4 (PyTorch values)", y, want, 16, 1e-7, 0);
    /* ... mode='nearest', size=(1, 5) from [[1, 2, 3]]: indices 0 0 1 1 2 */
    const float xn[3] = {1, 2, 3};
    float yn[5];
    const double wn[5] = {1, 1, 2, 2, 3};
    aibox_upsample_nearest_fwd(1, 1, 1, 3, 1, 5, xn, yn);
    AIBOX_TEST_CLOSE("nearest 3 -> 5 (PyTorch values)", yn, wn, 5, 0, 0);
    /* PyTorch evaluates floor(dst * (float)(in/out)) in float: for 2 -> 82,
     * output 41 maps to input 0 (41 * 0.024390243f = 0.99999994), not to
     * the exact floor(41*2/82) = 1; the kernel keeps PyTorch's mapping. */
    const float x2[2] = {10, 20};
    float y82[82];
    aibox_upsample_nearest_fwd(1, 1, 1, 2, 1, 82, x2, y82);
    assert_true(y82[40] == 10.0f && y82[41] == 10.0f && y82[42] == 20.0f && y82[81] == 20.0f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zeropad),
        cmocka_unit_test(test_concat),
        cmocka_unit_test(test_concat_null_grad),
        cmocka_unit_test(test_add),
        cmocka_unit_test(test_upsample_nearest),
        cmocka_unit_test(test_upsample_bilinear),
        cmocka_unit_test(test_upsample_known_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

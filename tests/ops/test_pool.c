/* Pooling kernels against naive double-precision references and central
 * finite differences.
 *
 * Tolerances (|got - want| <= atol + rtol*|want|):
 *  - max pool forward: exact (a max of floats is one of the floats); argmax exact.
 *  - average pool forward: atol 1e-6, rtol 1e-5 (float sum of <= 12 values in [-1, 1)).
 *  - global average forward: atol 1e-6, rtol 1e-6 (the kernel sums in double).
 *  - backward (all three): atol 1e-6, rtol 1e-5 against central differences of
 *    the double reference, step 1e-3; these layers are piecewise linear, so
 *    the differences are exact up to double rounding as long as no argmax
 *    switches (inputs are distinct and at least 0.01 apart).
 *  - float-forward gradient check of average pooling: step 1e-2 (linear
 *    layer), atol 1e-4: y carries float rounding (~6e-8 * 9 terms / 2e-2).
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

/* A pooling case as a user states it (PyTorch-style), from which the test
 * derives the descriptor independently of the library. */
typedef struct pcase {
    const char *name;
    int n, c, h, w;
    int kh, kw, sh, sw;
    int pt, pl, pb, pr;
    int ceil_mode;
} pcase;

/* PyTorch's pooling output size: floor or ceil of (in + pads - k)/s + 1, and
 * in ceil mode the last window must start inside the input or left padding. */
static int out_size(int in, int k, int s, int p0, int p1, int ceil_mode)
{
    int span = in + p0 + p1 - k;
    int o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (ceil_mode && (o - 1) * s >= in + p0) o--;
    return o;
}

static aibox_pool_desc make_desc(const pcase *pc, int cip)
{
    aibox_pool_desc d = {.c = pc->c, .in_h = pc->h, .in_w = pc->w,
                         .out_h = out_size(pc->h, pc->kh, pc->sh, pc->pt, pc->pb, pc->ceil_mode),
                         .out_w = out_size(pc->w, pc->kw, pc->sw, pc->pl, pc->pr, pc->ceil_mode),
                         .kh = pc->kh, .kw = pc->kw, .sh = pc->sh, .sw = pc->sw, .pt = pc->pt, .pl = pc->pl,
                         .count_include_pad = cip};
    return d;
}

static const pcase cases[] = {
    {"2x2/2 even", 2, 3, 6, 8, 2, 2, 2, 2, 0, 0, 0, 0, 0},
    {"3x3/2 pad 1 odd", 2, 2, 7, 9, 3, 3, 2, 2, 1, 1, 1, 1, 0},
    {"3x3/2 ceil", 3, 2, 8, 10, 3, 3, 2, 2, 0, 0, 0, 0, 1},
    {"2x3 stride 1x2 asym pad", 1, 2, 5, 7, 2, 3, 1, 2, 1, 0, 0, 1, 0},
    {"3x3/3 pad 1 ceil", 2, 1, 5, 7, 3, 3, 3, 3, 1, 1, 1, 1, 1},
    {"3x2 stride 2x1 ceil", 2, 2, 6, 5, 3, 2, 2, 1, 0, 1, 0, 0, 1},
    /* the 2x2/2 fast path with leftovers handled by the general loop */
    {"2x2/2 odd floor", 2, 2, 7, 9, 2, 2, 2, 2, 0, 0, 0, 0, 0},
    {"2x2/2 odd ceil", 1, 3, 7, 9, 2, 2, 2, 2, 0, 0, 0, 0, 1},
    {"2x2/2 pad bottom-right", 2, 1, 5, 6, 2, 2, 2, 2, 0, 0, 1, 1, 0},
};
#define NCASES (sizeof cases / sizeof cases[0])

/* ------------------------------------------------------------ references */
/* Walks every kernel offset and tests the cell for bounds; first maximum
 * wins; an empty window yields 0 and index -1 (the library's documented rule). */
static void ref_maxpool(const aibox_pool_desc *d, int n, const double *x, double *y, int32_t *arg)
{
    for (int s = 0; s < n; s++)
        for (int ch = 0; ch < d->c; ch++)
            for (int oy = 0; oy < d->out_h; oy++)
                for (int ox = 0; ox < d->out_w; ox++) {
                    double best = 0;
                    int bi = -1;
                    for (int ky = 0; ky < d->kh; ky++)
                        for (int kx = 0; kx < d->kw; kx++) {
                            int iy = oy * d->sh - d->pt + ky, ix = ox * d->sw - d->pl + kx;
                            if (iy < 0 || iy >= d->in_h || ix < 0 || ix >= d->in_w) continue;
                            double v = x[((s * d->c + ch) * d->in_h + iy) * d->in_w + ix];
                            if (bi < 0 || v > best) {
                                best = v;
                                bi = iy * d->in_w + ix;
                            }
                        }
                    size_t o = ((size_t)(s * d->c + ch) * d->out_h + oy) * d->out_w + ox;
                    y[o] = best;
                    if (arg) arg[o] = bi;
                }
}

static void ref_avgpool(const aibox_pool_desc *d, int n, const double *x, double *y)
{
    for (int s = 0; s < n; s++)
        for (int ch = 0; ch < d->c; ch++)
            for (int oy = 0; oy < d->out_h; oy++)
                for (int ox = 0; ox < d->out_w; ox++) {
                    double sum = 0;
                    int cnt = 0;
                    for (int ky = 0; ky < d->kh; ky++)
                        for (int kx = 0; kx < d->kw; kx++) {
                            int iy = oy * d->sh - d->pt + ky, ix = ox * d->sw - d->pl + kx;
                            if (iy < 0 || iy >= d->in_h || ix < 0 || ix >= d->in_w) continue;
                            sum += x[((s * d->c + ch) * d->in_h + iy) * d->in_w + ix];
                            cnt++;
                        }
                    int div = d->count_include_pad ? d->kh * d->kw : cnt;
                    y[((size_t)(s * d->c + ch) * d->out_h + oy) * d->out_w + ox] = div ? sum / div : 0.0;
                }
}

/* ------------------------------------------------------------ callbacks */
typedef struct pool_user {
    aibox_pool_desc d;
    int n;
    const float *dy;
    const int32_t *argmax;
} pool_user;

static void fwd_max_d(void *u, const double *x, double *y)
{
    pool_user *p = u;
    ref_maxpool(&p->d, p->n, x, y, NULL);
}
static void fwd_avg_d(void *u, const double *x, double *y)
{
    pool_user *p = u;
    ref_avgpool(&p->d, p->n, x, y);
}
static void fwd_avg_f(void *u, const float *x, float *y)
{
    pool_user *p = u;
    aibox_avgpool_fwd(&p->d, p->n, x, y);
}
static void bwd_max(void *u, float *dx)
{
    pool_user *p = u;
    aibox_maxpool_bwd(&p->d, p->n, p->dy, p->argmax, dx);
}
static void bwd_avg(void *u, float *dx)
{
    pool_user *p = u;
    aibox_avgpool_bwd(&p->d, p->n, p->dy, dx);
}

typedef struct gap_user {
    int n, c, hw;
    const float *dy;
} gap_user;

static void bwd_gap(void *u, float *dx)
{
    gap_user *p = u;
    aibox_gap_bwd(p->n, p->c, p->hw, p->dy, dx);
}

/* ------------------------------------------------------------ tests */
static void test_out_size_cases(void **state)
{
    (void)state;
    /* the ceil cases really have windows hanging beyond the input */
    aibox_pool_desc d = make_desc(&cases[2], 0);
    assert_int_equal(d.out_h, 4); /* floor would give 3 */
    assert_int_equal(d.out_w, 5); /* floor would give 4 */
    d = make_desc(&cases[4], 0);
    assert_int_equal(d.out_h, 2);
    assert_int_equal(d.out_w, 3);
}

static void test_maxpool(void **state)
{
    (void)state;
    for (size_t ci = 0; ci < NCASES; ci++) {
        const pcase *pc = &cases[ci];
        aibox_pool_desc d = make_desc(pc, 0);
        const size_t nx = (size_t)pc->n * pc->c * pc->h * pc->w;
        const size_t ny = (size_t)pc->n * pc->c * d.out_h * d.out_w;
        aibox_rng rng;
        aibox_rng_seed(&rng, 100 + ci);
        /* distinct values 0.01 apart, centred on 0 so that padding (if it
         * took part as zeros) would win in windows of negative values */
        float *x = aibox_test_floats(nx), *y = aibox_test_floats(ny), *dyf = aibox_test_floats(ny);
        aibox_test_fill_distinct(&rng, x, nx, -0.005f * (float)nx, 0.01f);
        int32_t *arg = aibox_test_malloc(ny * sizeof *arg), *rarg = aibox_test_malloc(ny * sizeof *rarg);
        double *xd = aibox_test_doubles(nx), *yd = aibox_test_doubles(ny), *r = aibox_test_doubles(ny);
        double *g = aibox_test_doubles(nx);
        aibox_test_f2d(x, xd, nx);
        ref_maxpool(&d, pc->n, xd, yd, rarg);

        aibox_maxpool_fwd(&d, pc->n, x, y, arg);
        char what[128];
        snprintf(what, sizeof what, "maxpool fwd [%s]", pc->name);
        AIBOX_TEST_CLOSE(what, y, yd, ny, 0, 0);
        for (size_t i = 0; i < ny; i++) assert_int_equal(arg[i], rarg[i]);
        /* inference path: argmax NULL gives the same output */
        memset(y, 0, ny * sizeof *y);
        aibox_maxpool_fwd(&d, pc->n, x, y, NULL);
        AIBOX_TEST_CLOSE(what, y, yd, ny, 0, 0);

        aibox_test_fill_uniform(&rng, dyf, ny, -1, 1);
        aibox_test_f2d(dyf, r, ny);
        pool_user u = {d, pc->n, dyf, arg};
        aibox_test_numgrad_d(fwd_max_d, &u, xd, nx, r, ny, 1e-3, g);
        snprintf(what, sizeof what, "maxpool bwd [%s]", pc->name);
        assert_true(aibox_test_bwd_accumulates(what, bwd_max, &u, nx, g, 1e-6, 1e-5, 7 + ci));
        free(x), free(y), free(dyf), free(arg), free(rarg), free(xd), free(yd), free(r), free(g);
    }
}

static void test_maxpool_ties_and_padding(void **state)
{
    (void)state;
    /* all equal negative values, 3x3/2 pad 1 over 4x4: padding (0) must not
     * win, and the first in-bounds cell (row-major) is the argmax */
    aibox_pool_desc d = {.c = 1, .in_h = 4, .in_w = 4, .out_h = 2, .out_w = 2, .kh = 3, .kw = 3, .sh = 2, .sw = 2,
                         .pt = 1, .pl = 1};
    float x[16], y[4];
    int32_t arg[4];
    for (int i = 0; i < 16; i++) x[i] = -2.5f;
    aibox_maxpool_fwd(&d, 1, x, y, arg);
    const int32_t want_arg[4] = {0, 1, 4, 5}; /* window starts clipped to (0,0), (0,1), (1,0), (1,1) */
    for (int i = 0; i < 4; i++) {
        assert_true(y[i] == -2.5f);
        assert_int_equal(arg[i], want_arg[i]);
    }
}

static void test_maxpool_empty_window(void **state)
{
    (void)state;
    /* padding 2 with a 2x2 stride-1 kernel: the first row/column of windows
     * lies entirely in the padding; documented result 0 and argmax -1, and
     * backward must skip them */
    aibox_pool_desc d = {.c = 1, .in_h = 2, .in_w = 2, .out_h = 3, .out_w = 3, .kh = 2, .kw = 2, .sh = 1, .sw = 1,
                         .pt = 2, .pl = 2};
    const float x[4] = {-1, -2, -3, -4};
    float y[9], dy[9], dx[4] = {0};
    int32_t arg[9];
    double xd[4] = {-1, -2, -3, -4}, yd[9];
    int32_t rarg[9];
    aibox_maxpool_fwd(&d, 1, x, y, arg);
    ref_maxpool(&d, 1, xd, yd, rarg);
    AIBOX_TEST_CLOSE("maxpool empty windows", y, yd, 9, 0, 0);
    for (int i = 0; i < 9; i++) assert_int_equal(arg[i], rarg[i]);
    assert_int_equal(arg[0], -1);
    for (int i = 0; i < 9; i++) dy[i] = 1.0f;
    aibox_maxpool_bwd(&d, 1, dy, arg, dx);
    /* the four non-empty windows (1,1), (1,2), (2,1), (2,2) all contain
     * x[0] = -1, their maximum */
    assert_true(dx[0] == 4.0f && dx[1] == 0.0f && dx[2] == 0.0f && dx[3] == 0.0f);
}

static void test_avgpool(void **state)
{
    (void)state;
    for (int cip = 0; cip <= 1; cip++) {
        for (size_t ci = 0; ci < NCASES; ci++) {
            const pcase *pc = &cases[ci];
            aibox_pool_desc d = make_desc(pc, cip);
            const size_t nx = (size_t)pc->n * pc->c * pc->h * pc->w;
            const size_t ny = (size_t)pc->n * pc->c * d.out_h * d.out_w;
            aibox_rng rng;
            aibox_rng_seed(&rng, 200 + ci + 50 * cip);
            float *x = aibox_test_floats(nx), *y = aibox_test_floats(ny), *dyf = aibox_test_floats(ny);
            aibox_test_fill_uniform(&rng, x, nx, -1, 1);
            double *xd = aibox_test_doubles(nx), *yd = aibox_test_doubles(ny), *r = aibox_test_doubles(ny);
            double *g = aibox_test_doubles(nx);
            aibox_test_f2d(x, xd, nx);
            ref_avgpool(&d, pc->n, xd, yd);
            aibox_avgpool_fwd(&d, pc->n, x, y);
            char what[128];
            snprintf(what, sizeof what, "avgpool fwd [%s, count_include_pad %d]", pc->name, cip);
            AIBOX_TEST_CLOSE(what, y, yd, ny, 1e-6, 1e-5);

            aibox_test_fill_uniform(&rng, dyf, ny, -1, 1);
            aibox_test_f2d(dyf, r, ny);
            pool_user u = {d, pc->n, dyf, NULL};
            aibox_test_numgrad_d(fwd_avg_d, &u, xd, nx, r, ny, 1e-3, g);
            snprintf(what, sizeof what, "avgpool bwd [%s, count_include_pad %d]", pc->name, cip);
            assert_true(aibox_test_bwd_accumulates(what, bwd_avg, &u, nx, g, 1e-6, 1e-5, 9 + ci));

            /* the same gradient through the float forward (helper's float path) */
            float *dx = aibox_test_floats(nx);
            aibox_avgpool_bwd(&d, pc->n, dyf, dx);
            snprintf(what, sizeof what, "avgpool bwd vs float-forward differences [%s, cip %d]", pc->name, cip);
            assert_true(aibox_test_gradcheck(what, NULL, fwd_avg_f, &u, xd, nx, r, ny, 1e-2, dx, 1e-4, 1e-4));
            free(dx);
            free(x), free(y), free(dyf), free(xd), free(yd), free(r), free(g);
        }
    }
}

static void test_avgpool_divisors(void **state)
{
    (void)state;
    /* 3x3, all ones, 2x2 stride 2 with ceil mode (out 2x2, windows at the
     * bottom/right cover 2 and 1 cells): count_include_pad=0 averages the
     * valid cells (1.0 everywhere); =1 divides by kh*kw = 4 */
    aibox_pool_desc d = {.c = 1, .in_h = 3, .in_w = 3, .out_h = 2, .out_w = 2, .kh = 2, .kw = 2, .sh = 2, .sw = 2};
    float x[9], y[4];
    for (int i = 0; i < 9; i++) x[i] = 1.0f;
    aibox_avgpool_fwd(&d, 1, x, y);
    for (int i = 0; i < 4; i++) assert_true(y[i] == 1.0f);
    d.count_include_pad = 1;
    aibox_avgpool_fwd(&d, 1, x, y);
    const float want[4] = {1.0f, 0.5f, 0.5f, 0.25f};
    for (int i = 0; i < 4; i++) assert_true(y[i] == want[i]);
}

static void test_gap(void **state)
{
    (void)state;
    const int n = 3, c = 4, hw = 7 * 5;
    const size_t nx = (size_t)n * c * hw, ny = (size_t)n * c;
    aibox_rng rng;
    aibox_rng_seed(&rng, 300);
    float *x = aibox_test_floats(nx), *y = aibox_test_floats(ny), *dyf = aibox_test_floats(ny);
    double *xd = aibox_test_doubles(nx), *yd = aibox_test_doubles(ny), *r = aibox_test_doubles(ny);
    double *g = aibox_test_doubles(nx);
    aibox_test_fill_uniform(&rng, x, nx, -2, 3);
    aibox_test_f2d(x, xd, nx);
    for (size_t p = 0; p < ny; p++) {
        double s = 0;
        for (int i = 0; i < hw; i++) s += xd[p * hw + i];
        yd[p] = s / hw;
    }
    aibox_gap_fwd(n, c, hw, x, y);
    AIBOX_TEST_CLOSE("gap fwd", y, yd, ny, 1e-6, 1e-6);

    /* the gradient of a mean is 1/hw per cell: computed directly */
    aibox_test_fill_uniform(&rng, dyf, ny, -1, 1);
    aibox_test_f2d(dyf, r, ny);
    for (size_t p = 0; p < ny; p++)
        for (int i = 0; i < hw; i++) g[p * hw + i] = r[p] / hw;
    gap_user u = {n, c, hw, dyf};
    assert_true(aibox_test_bwd_accumulates("gap bwd", bwd_gap, &u, nx, g, 1e-6, 1e-5, 301));
    free(x), free(y), free(dyf), free(xd), free(yd), free(r), free(g);
}

static void test_gap_large_plane(void **state)
{
    (void)state;
    /* 2^20 cells of 0.1f: a plain float running sum drifts by ~1% here, a
     * double one stays within float rounding of the exact mean */
    const int hw = 1 << 20;
    float *x = aibox_test_floats((size_t)hw), y;
    for (int i = 0; i < hw; i++) x[i] = 0.1f;
    aibox_gap_fwd(1, 1, hw, x, &y);
    AIBOX_TEST_CLOSE1("gap over 2^20 cells", y, (double)0.1f, 0, 1e-6);
    free(x);
}

/* NaN in a 2x2/2 window (the vectorised path) wins, as in the general loop:
 * once a NaN is the maximum no number replaces it; a later NaN takes the index. */
/* Backward storing the whole input gradient (a buffer the context does not
 * zero) gives the bits of the accumulating backward into zeros: 2x2 / 2 on
 * even and odd sides, ceil mode (windows hanging over the edge), and
 * overlapping 3x3 / 2 windows with padding. The stored buffer starts as
 * garbage (NaN). */
static void test_maxpool_bwd_assign(void **state)
{
    static const int cfg[][8] = {/* h, w, k, s, pad, ceil */
                                 {8, 8, 2, 2, 0, 0}, {7, 9, 2, 2, 0, 0}, {7, 9, 2, 2, 0, 1}, {9, 6, 3, 2, 1, 0},
                                 {5, 5, 3, 2, 0, 1}, {1, 3, 2, 2, 0, 1}, {2, 2, 2, 2, 0, 0}};
    aibox_rng rng;
    aibox_rng_seed(&rng, 5);
    for (size_t ci = 0; ci < sizeof cfg / sizeof *cfg; ci++) {
        const int *c = cfg[ci];
        aibox_pool_desc d = {.c = 3, .in_h = c[0], .in_w = c[1], .kh = c[2], .kw = c[2], .sh = c[3], .sw = c[3],
                             .pt = c[4], .pl = c[4]};
        long span_h = c[0] + 2L * c[4] - c[2], span_w = c[1] + 2L * c[4] - c[2];
        d.out_h = (int)((c[5] ? (span_h + c[3] - 1) / c[3] : span_h / c[3]) + 1);
        d.out_w = (int)((c[5] ? (span_w + c[3] - 1) / c[3] : span_w / c[3]) + 1);
        if (c[5] && (long)(d.out_h - 1) * c[3] >= c[0] + c[4]) d.out_h--;
        if (c[5] && (long)(d.out_w - 1) * c[3] >= c[1] + c[4]) d.out_w--;
        int n = 2;
        size_t nx = (size_t)n * d.c * d.in_h * d.in_w, ny = (size_t)n * d.c * d.out_h * d.out_w;
        float *x = aibox_test_floats(nx), *y = aibox_test_floats(ny), *dy = aibox_test_floats(ny);
        float *acc = aibox_test_floats(nx), *set = aibox_test_floats(nx);
        int32_t *am = aibox_test_malloc(ny * sizeof(int32_t));
        aibox_test_fill_uniform(&rng, x, nx, -1, 1);
        for (size_t i = 0; i < nx; i += 5) x[i] = 0.5f; /* ties */
        aibox_test_fill_uniform(&rng, dy, ny, -1, 1);
        aibox_maxpool_fwd(&d, n, x, y, am);
        for (size_t i = 0; i < nx; i++) set[i] = NAN;
        aibox_maxpool_bwd(&d, n, dy, am, acc);
        aibox_maxpool_bwd_ex(&d, n, dy, am, set, 1);
        if (memcmp(acc, set, nx * sizeof(float))) fail_msg("maxpool config %zu: stored backward differs", ci);
        free(x), free(y), free(dy), free(acc), free(set), free(am);
    }
}

static void test_maxpool_nan_2x2(void **state)
{
    const float nan = __builtin_nanf("");
    /* 2x4 plane: windows {1, nan, 3, 2} and {nan, 5, nan, 1} in row-major cells */
    float x[8] = {1, nan, nan, 5, 3, 2, nan, 1};
    aibox_pool_desc d = {.c = 1, .in_h = 2, .in_w = 4, .out_h = 1, .out_w = 2, .kh = 2, .kw = 2, .sh = 2, .sw = 2};
    float y[2];
    int32_t a[2];
    aibox_maxpool_fwd(&d, 1, x, y, a);
    assert_true(y[0] != y[0] && y[1] != y[1]);
    assert_int_equal(a[0], 1); /* the only NaN of window 0 */
    assert_int_equal(a[1], 6); /* the later of window 1's NaNs (cells 2 and 6) */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_maxpool_nan_2x2),
        cmocka_unit_test(test_maxpool_bwd_assign),
        cmocka_unit_test(test_out_size_cases),
        cmocka_unit_test(test_maxpool),
        cmocka_unit_test(test_maxpool_ties_and_padding),
        cmocka_unit_test(test_maxpool_empty_window),
        cmocka_unit_test(test_avgpool),
        cmocka_unit_test(test_avgpool_divisors),
        cmocka_unit_test(test_gap),
        cmocka_unit_test(test_gap_large_plane),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

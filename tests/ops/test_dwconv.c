/* Depthwise 3x3 forward kernels (lib/ops/dwconv.c): every kernel this CPU
 * runs (plain C, AVX2, AVX-512) and the dispatch through
 * aibox_conv_fwd_part, over row strides 1, 2, 3 and column strides 1, 2,
 * odd and even sizes, widths below and above the vector widths (8, 16),
 * every top / left / bottom / right padding 0..2, batch 2, channel
 * multipliers 1 and 2, scale / bias / ReLU on and off, and 1 or 4 parts.
 * Each result must be
 *  - bit for bit what conv.c's general direct loops gave before these
 *    kernels (a copy of them below: the same sums in the same order), and
 *  - within 2e-5 abs + 1e-5 rel of the double-precision naive convolution
 *    (conv_ref.h) with the epilogue in double (sums of <= 9 products of
 *    values in [-1, 1], plus a bias, scaled by <= 2).
 * x is allocated to its exact size, so an over-read past the last row shows
 * under ASan; y starts as NaN, so an output left unwritten fails. */
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
#include "conv_ref.h"
#include "ops/ops.h"

/* conv.c's direct_fwd and epilogue as they were (any kernel, stride, padding). */
static void general_fwd(const aibox_conv_desc *d, int n, const float *x, const float *w, const float *scale,
                        const float *b, float *y, int relu)
{
    const int H = d->in_h, W = d->in_w, OH = d->out_h, OW = d->out_w, mult = d->out_c / d->groups;
    const size_t P = (size_t)OH * OW;
    for (int s = 0; s < n; s++)
        for (int oc = 0; oc < d->out_c; oc++) {
            const float *xc = x + ((size_t)s * d->in_c + oc / mult) * H * W;
            const float *wk = w + (size_t)oc * d->kh * d->kw;
            float *yc = y + ((size_t)s * d->out_c + oc) * P;
            float bias = !scale && b ? b[oc] : 0.0f;
            for (size_t i = 0; i < P; i++) yc[i] = bias;
            for (int ky = 0; ky < d->kh; ky++)
                for (int kx = 0; kx < d->kw; kx++) {
                    float wv = wk[ky * d->kw + kx];
                    for (int oy = 0; oy < OH; oy++) {
                        int iy = oy * d->sh - d->pt + ky;
                        if (iy < 0 || iy >= H) continue;
                        for (int ox = 0; ox < OW; ox++) {
                            int ix = ox * d->sw - d->pl + kx;
                            if (ix >= 0 && ix < W) yc[(size_t)oy * OW + ox] += wv * xc[(size_t)iy * W + ix];
                        }
                    }
                }
            float sv = scale ? scale[oc] : 1.0f, bv = scale && b ? b[oc] : 0.0f;
            for (size_t i = 0; i < P; i++) {
                if (scale) yc[i] = yc[i] * sv + bv;
                if (relu) yc[i] = yc[i] > 0.0f ? yc[i] : 0.0f;
            }
        }
}

typedef struct {
    aibox_conv_desc d;
    int n;
    size_t nx, ny;
    float *x, *w, *scale, *b; /* scale, b may be NULL */
    int relu;
} dw_case;

static void fill_nan(float *y, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = NAN;
}

/* The double reference with the epilogue. */
static void reference(const dw_case *c, double *want)
{
    double *xd = aibox_test_doubles(c->nx), *wd = aibox_test_doubles((size_t)c->d.out_c * 9);
    double *bd = aibox_test_doubles((size_t)c->d.out_c);
    aibox_test_f2d(c->x, xd, c->nx);
    aibox_test_f2d(c->w, wd, (size_t)c->d.out_c * 9);
    if (c->b) aibox_test_f2d(c->b, bd, (size_t)c->d.out_c);
    conv_ref(&c->d, c->n, xd, wd, c->b && !c->scale ? bd : NULL, want);
    size_t P = (size_t)c->d.out_h * c->d.out_w;
    for (size_t i = 0; i < c->ny; i++) {
        int oc = (int)(i / P % (size_t)c->d.out_c);
        if (c->scale) want[i] = want[i] * c->scale[oc] + (c->b ? bd[oc] : 0.0);
        if (c->relu && !(want[i] > 0)) want[i] = 0;
    }
    free(xd), free(wd), free(bd);
}

/* Every kernel (k NULL: through aibox_conv_fwd_part) in `parts` pieces,
 * against the general loops' bits and the reference. */
static int check_case(const dw_case *c, const float *general, const double *want, const aibox_dwconv_kernel *k,
                      float *y, const char *what)
{
    for (int parts = 1; parts <= 4; parts += 3) { /* 4: more parts than channels at times */
        fill_nan(y, c->ny);
        for (int part = 0; part < parts; part++) {
            if (k) aibox_dwconv_fwd_part(k, &c->d, c->n, c->x, c->w, c->scale, c->b, y, c->relu, part, parts);
            else aibox_conv_fwd_part(&c->d, c->n, c->x, c->w, c->scale, c->b, y, NULL, c->relu, part, parts);
        }
        if (memcmp(y, general, c->ny * sizeof *y)) {
            size_t i = 0;
            while (i < c->ny && !memcmp(y + i, general + i, sizeof *y)) i++;
            print_error("%s, %d parts: output %zu is %.9g, the general loops gave %.9g\n", what, parts, i,
                        (double)y[i], (double)general[i]);
            return 0;
        }
        if (!aibox_test_close(what, y, want, c->ny, 2e-5, 1e-5)) return 0;
    }
    return 1;
}

static void test_dwconv_grid(void **state)
{
    aibox_dwconv_kernel ks[8];
    int nk = aibox_dwconv_kernels(aibox_cpu_features(), ks, 8);
    for (int i = 0; i < nk; i++) print_message("kernel compared: %s\n", ks[i].name);
    assert_string_equal(ks[0].name, "c");
    static const int widths[] = {1, 2, 3, 5, 7, 8, 9, 14, 15, 16, 17, 31, 32, 33, 40, 70};
    static const int heights[] = {1, 4, 7, 13, 16}; /* 13, 16: groups of 6, 4, 2 and 1 rows */
    aibox_rng rng;
    aibox_rng_seed(&rng, 42);
    long cases = 0;
    for (int st = 0; st < 6; st++) /* row stride 1, 2, 3 (one row at a time); column stride 1, 2 */
        for (int pads = 0; pads < 81; pads++)
            for (size_t wi = 0; wi < sizeof widths / sizeof *widths; wi++)
                for (size_t hi = 0; hi < sizeof heights / sizeof *heights; hi++, cases++) {
                    int sh = 1 + st % 3, sw = 1 + st / 3, pt = pads % 3, pl = pads / 3 % 3, pb = pads / 9 % 3,
                        pr = pads / 27;
                    int H = heights[hi], W = widths[wi], C = 3, mult = 1 + (int)(cases % 2), flags = (int)(cases % 8);
                    dw_case c = {.n = 2, .relu = flags & 4};
                    c.d = (aibox_conv_desc){.in_c = C, .in_h = H, .in_w = W, .out_c = C * mult, .kh = 3, .kw = 3,
                                            .sh = sh, .sw = sw, .pt = pt, .pl = pl, .groups = C};
                    c.d.out_h = aibox_conv_out_size(H, 3, sh, pt, pb);
                    c.d.out_w = aibox_conv_out_size(W, 3, sw, pl, pr);
                    if (c.d.out_h < 1 || c.d.out_w < 1) continue;
                    assert_true(aibox_dwconv_eligible(&c.d));
                    c.nx = (size_t)c.n * C * H * W;
                    c.ny = (size_t)c.n * c.d.out_c * c.d.out_h * c.d.out_w;
                    c.x = aibox_test_malloc(c.nx * sizeof(float)); /* exact: over-reads show under ASan */
                    c.w = aibox_test_floats((size_t)c.d.out_c * 9);
                    float *sc = aibox_test_floats((size_t)c.d.out_c), *bb = aibox_test_floats((size_t)c.d.out_c);
                    aibox_test_fill_uniform(&rng, c.x, c.nx, -1, 1);
                    aibox_test_fill_uniform(&rng, c.w, (size_t)c.d.out_c * 9, -1, 1);
                    aibox_test_fill_uniform(&rng, sc, (size_t)c.d.out_c, 0.5f, 2);
                    aibox_test_fill_uniform(&rng, bb, (size_t)c.d.out_c, -1, 1);
                    c.scale = flags & 1 ? sc : NULL;
                    c.b = flags & 2 ? bb : NULL;
                    float *general = aibox_test_floats(c.ny), *y = aibox_test_floats(c.ny);
                    double *want = aibox_test_doubles(c.ny);
                    general_fwd(&c.d, c.n, c.x, c.w, c.scale, c.b, general, c.relu);
                    reference(&c, want);
                    char what[160];
                    for (int k = -1; k < nk; k++) {
                        snprintf(what, sizeof what,
                                 "%s: %dx%d, stride %dx%d, pads t%d l%d b%d r%d, x%d, scale %d bias %d relu %d",
                                 k < 0 ? "aibox_conv_fwd_part" : ks[k].name, H, W, sh, sw, pt, pl, pb, pr, mult,
                                 c.scale != NULL, c.b != NULL, c.relu != 0);
                        assert_true(check_case(&c, general, want, k < 0 ? NULL : &ks[k], y, what));
                    }
                    free(c.x), free(c.w), free(sc), free(bb), free(general), free(y), free(want);
                }
    printf("# %ld shapes\n", cases);
}

/* MobileNet-sized planes (wide rows: several whole vectors, masked and
 * overlapping tails) and non-finite inputs: NaN and infinities must come out
 * as the general loops give them (ReLU maps NaN to 0 there). */
static void test_dwconv_large_and_nonfinite(void **state)
{
    aibox_dwconv_kernel ks[8];
    int nk = aibox_dwconv_kernels(aibox_cpu_features(), ks, 8);
    static const int shapes[][4] = {{112, 1, 1, 1}, {112, 2, 0, 1}, {56, 2, 1, 1}, {28, 1, 1, 1}, {14, 2, 0, 1},
                                    {7, 1, 1, 1},   {57, 2, 1, 1},  {61, 1, 2, 0}};
    aibox_rng rng;
    aibox_rng_seed(&rng, 7);
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
        for (int nonfinite = 0; nonfinite < 2; nonfinite++)
            for (int flags = 0; flags < 8; flags++) {
                int S = shapes[si][0], s = shapes[si][1], p0 = shapes[si][2], p1 = shapes[si][3], C = 4;
                dw_case c = {.n = 1, .relu = flags & 4};
                c.d = (aibox_conv_desc){.in_c = C, .in_h = S, .in_w = S, .out_c = C, .kh = 3, .kw = 3, .sh = s,
                                        .sw = s, .pt = p0, .pl = p0, .groups = C};
                c.d.out_h = c.d.out_w = aibox_conv_out_size(S, 3, s, p0, p1);
                c.nx = (size_t)C * S * S;
                c.ny = (size_t)C * c.d.out_h * c.d.out_w;
                c.x = aibox_test_malloc(c.nx * sizeof(float));
                c.w = aibox_test_floats((size_t)C * 9);
                float *sc = aibox_test_floats((size_t)C), *bb = aibox_test_floats((size_t)C);
                aibox_test_fill_uniform(&rng, c.x, c.nx, -1, 1);
                aibox_test_fill_uniform(&rng, c.w, (size_t)C * 9, -1, 1);
                aibox_test_fill_uniform(&rng, sc, (size_t)C, 0.5f, 2);
                aibox_test_fill_uniform(&rng, bb, (size_t)C, -1, 1);
                if (nonfinite) /* a few NaN and infinities, at the borders and inside */
                    for (size_t i = 0; i < c.nx; i += 97) c.x[i] = i % 3 == 0 ? NAN : i % 3 == 1 ? INFINITY : -INFINITY;
                c.scale = flags & 1 ? sc : NULL;
                c.b = flags & 2 ? bb : NULL;
                float *general = aibox_test_floats(c.ny), *y = aibox_test_floats(c.ny);
                double *want = aibox_test_doubles(c.ny);
                general_fwd(&c.d, c.n, c.x, c.w, c.scale, c.b, general, c.relu);
                reference(&c, want);
                for (int k = -1; k < nk; k++) {
                    char what[128];
                    snprintf(what, sizeof what, "%s: %dx%d stride %d pads %d/%d, flags %d%s",
                             k < 0 ? "aibox_conv_fwd_part" : ks[k].name, S, S, s, p0, p1, flags,
                             nonfinite ? ", non-finite inputs" : "");
                    if (!nonfinite) {
                        assert_true(check_case(&c, general, want, k < 0 ? NULL : &ks[k], y, what));
                        continue;
                    }
                    /* NaN payloads aside: the same class and, when finite, the same bits */
                    fill_nan(y, c.ny);
                    if (k < 0) aibox_conv_fwd_part(&c.d, 1, c.x, c.w, c.scale, c.b, y, NULL, c.relu, 0, 1);
                    else aibox_dwconv_fwd_part(&ks[k], &c.d, 1, c.x, c.w, c.scale, c.b, y, c.relu, 0, 1);
                    for (size_t i = 0; i < c.ny; i++) {
                        int same = isnan(general[i]) ? isnan(y[i]) != 0 : !memcmp(&y[i], &general[i], sizeof *y);
                        if (!same) print_error("%s: output %zu is %g, want %g\n", what, i, (double)y[i],
                                               (double)general[i]);
                        assert_true(same);
                    }
                }
                free(c.x), free(c.w), free(sc), free(bb), free(general), free(y), free(want);
            }
}

/* What aibox_conv_fwd_part sends elsewhere stays there: not 3x3, or in_c
 * per group > 1, or column stride 3; and the pick is the widest kernel. */
static void test_dwconv_eligibility(void **state)
{
    aibox_conv_desc d = {.in_c = 4, .in_h = 8, .in_w = 8, .out_c = 4, .out_h = 8, .out_w = 8, .kh = 3, .kw = 3,
                         .sh = 1, .sw = 1, .pt = 1, .pl = 1, .groups = 4};
    assert_true(aibox_dwconv_eligible(&d));
    aibox_conv_desc e = d;
    e.kh = e.kw = 5;
    assert_false(aibox_dwconv_eligible(&e));
    e = d, e.groups = 2;
    assert_false(aibox_dwconv_eligible(&e));
    e = d, e.groups = 1;
    assert_false(aibox_dwconv_eligible(&e));
    e = d, e.sw = 3;
    assert_false(aibox_dwconv_eligible(&e));
    e = d, e.sh = 3; /* row stride: any */
    assert_true(aibox_dwconv_eligible(&e));
    aibox_dwconv_kernel ks[8];
    int nk = aibox_dwconv_kernels(aibox_cpu_features(), ks, 8);
    assert_string_equal(aibox_dwconv_pick(aibox_cpu_features()).name, ks[nk - 1].name);
    assert_string_equal(aibox_dwconv_pick(0).name, "c");
    assert_int_equal(aibox_dwconv_kernels(0, ks, 8), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dwconv_grid),
        cmocka_unit_test(test_dwconv_large_and_nonfinite),
        cmocka_unit_test(test_dwconv_eligibility),
    };
    return cmocka_run_group_tests_name("ops/dwconv", tests, NULL, NULL);
}

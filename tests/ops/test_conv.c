/* Convolution and dense kernels: forward against naive double-precision
 * loops written here, backward against central finite differences of that
 * double forward, and the OpenBLAS path against the plain-C reference path.
 * Tolerances: forward 1e-4 abs + 1e-4 rel (float sums of <= 1152 products of
 * values in [-1, 1]); backward 2e-4 abs + 2e-4 rel against the (exact up to
 * 1e-10) double finite differences with step 1e-6. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <strings.h>
#include <cmocka.h>

#include "common/check.h"
#include "conv_ref.h"
#include "ops/ops.h"

typedef struct {
    int n, in_c, in_h, in_w, out_c, kh, kw, sh, sw, pt, pl, pb, pr, groups, bias;
} conv_case;

static const conv_case cases[] = {
    {2, 3, 9, 8, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},     /* 3x3 'same' */
    {2, 4, 9, 10, 6, 3, 3, 2, 2, 0, 0, 1, 1, 1, 1},    /* stride 2, TF-style asymmetric SAME padding */
    {1, 6, 7, 7, 4, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0},     /* pointwise, no bias (direct sgemm path) */
    {2, 4, 8, 8, 6, 3, 3, 1, 1, 1, 1, 1, 1, 2, 1},     /* groups 2 */
    {2, 5, 8, 7, 5, 3, 3, 2, 1, 1, 0, 1, 2, 5, 1},     /* depthwise, mixed strides and pads */
    {1, 3, 6, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1, 3, 0},     /* depthwise multiplier 2 */
    {1, 2, 13, 11, 3, 7, 5, 2, 3, 3, 2, 3, 2, 1, 1},   /* 7x5 kernel, stride 2x3, pad like ResNet's stem */
    {1, 3, 5, 5, 2, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1},     /* strided 1x1 (ResNet downsample) */
};

static void make_desc(const conv_case *c, aibox_conv_desc *d)
{
    d->in_c = c->in_c, d->in_h = c->in_h, d->in_w = c->in_w, d->out_c = c->out_c;
    d->kh = c->kh, d->kw = c->kw, d->sh = c->sh, d->sw = c->sw, d->pt = c->pt, d->pl = c->pl;
    d->groups = c->groups;
    d->out_h = aibox_conv_out_size(c->in_h, c->kh, c->sh, c->pt, c->pb);
    d->out_w = aibox_conv_out_size(c->in_w, c->kw, c->sw, c->pl, c->pr);
}

typedef struct {
    aibox_conv_desc d;
    int n, bias;
    size_t nx, nw, nb, ny;
} conv_prob;

/* The naive double convolution (conv_ref.h) on packed = [x, w, b]. */
static void conv_naive(void *user, const double *packed, double *y)
{
    const conv_prob *p = user;
    conv_ref(&p->d, p->n, packed, packed + p->nx, p->bias ? packed + p->nx + p->nw : NULL, y);
}

static void setup_prob(const conv_case *c, conv_prob *p)
{
    make_desc(c, &p->d);
    p->n = c->n, p->bias = c->bias;
    p->nx = (size_t)c->n * c->in_c * c->in_h * c->in_w;
    p->nw = (size_t)c->out_c * (c->in_c / c->groups) * c->kh * c->kw;
    p->nb = c->bias ? (size_t)c->out_c : 0;
    p->ny = (size_t)c->n * c->out_c * p->d.out_h * p->d.out_w;
}

static void test_conv_forward(void **state)
{
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        conv_prob p;
        setup_prob(&cases[ci], &p);
        size_t np = p.nx + p.nw + p.nb;
        aibox_rng rng;
        aibox_rng_seed(&rng, 100 + ci);
        float *pf = aibox_test_floats(np);
        double *pd = aibox_test_doubles(np);
        aibox_test_fill_uniform(&rng, pf, np, -1, 1);
        aibox_test_f2d(pf, pd, np);
        double *want = aibox_test_doubles(p.ny);
        conv_naive(&p, pd, want);
        float *y = aibox_test_floats(p.ny), *yr = aibox_test_floats(p.ny);
        float *ws = aibox_test_floats(aibox_conv_ws_floats(&p.d) + 1);
        aibox_conv_fwd(&p.d, p.n, pf, pf + p.nx, p.bias ? pf + p.nx + p.nw : NULL, y, ws);
        aibox_conv_fwd_ref(&p.d, p.n, pf, pf + p.nx, p.bias ? pf + p.nx + p.nw : NULL, yr);
        char what[64];
        snprintf(what, sizeof what, "conv case %zu forward (BLAS)", ci);
        AIBOX_TEST_CLOSE(what, y, want, p.ny, 1e-4, 1e-4);
        snprintf(what, sizeof what, "conv case %zu forward (reference)", ci);
        AIBOX_TEST_CLOSE(what, yr, want, p.ny, 1e-5, 1e-5);
        free(pf), free(pd), free(want), free(y), free(yr), free(ws);
    }
}

static void test_conv_backward(void **state)
{
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        conv_prob p;
        setup_prob(&cases[ci], &p);
        size_t np = p.nx + p.nw + p.nb;
        aibox_rng rng;
        aibox_rng_seed(&rng, 200 + ci);
        float *pf = aibox_test_floats(np);
        double *pd = aibox_test_doubles(np);
        aibox_test_fill_uniform(&rng, pf, np, -1, 1);
        aibox_test_f2d(pf, pd, np);
        float *dyf = aibox_test_floats(p.ny);
        double *r = aibox_test_doubles(p.ny);
        aibox_test_fill_uniform(&rng, dyf, p.ny, -1, 1);
        aibox_test_f2d(dyf, r, p.ny);
        /* analytic: [dx, dw, db] from the BLAS path and from the reference path */
        float *g = aibox_test_floats(np), *gr = aibox_test_floats(np);
        float *ws = aibox_test_floats(aibox_conv_ws_floats(&p.d) + 1);
        const float *b = p.bias ? pf + p.nx + p.nw : NULL;
        aibox_conv_bwd(&p.d, p.n, pf, pf + p.nx, dyf, g, g + p.nx, p.bias ? g + p.nx + p.nw : NULL, ws);
        aibox_conv_bwd_ref(&p.d, p.n, pf, pf + p.nx, dyf, gr, gr + p.nx, p.bias ? gr + p.nx + p.nw : NULL);
        (void)b;
        char what[64];
        snprintf(what, sizeof what, "conv case %zu backward (BLAS)", ci);
        assert_true(aibox_test_gradcheck(what, conv_naive, NULL, &p, pd, np, r, p.ny, 1e-6, g, 2e-4, 2e-4));
        snprintf(what, sizeof what, "conv case %zu backward (reference)", ci);
        assert_true(aibox_test_gradcheck(what, conv_naive, NULL, &p, pd, np, r, p.ny, 1e-6, gr, 2e-4, 2e-4));
        /* dx may be NULL: weight gradients must be unchanged by skipping it */
        float *g2 = aibox_test_floats(np);
        aibox_conv_bwd(&p.d, p.n, pf, pf + p.nx, dyf, NULL, g2 + p.nx, p.bias ? g2 + p.nx + p.nw : NULL, ws);
        AIBOX_TEST_CLOSE_FF("conv weight grad without dx", g2 + p.nx, g + p.nx, p.nw + p.nb, 1e-6, 1e-6);
        /* accumulation: a second call doubles the gradients */
        aibox_conv_bwd(&p.d, p.n, pf, pf + p.nx, dyf, g, g + p.nx, p.bias ? g + p.nx + p.nw : NULL, ws);
        for (size_t i = 0; i < np; i++) gr[i] *= 2;
        snprintf(what, sizeof what, "conv case %zu accumulates", ci);
        AIBOX_TEST_CLOSE_FF(what, g, gr, np, 1e-4, 1e-4);
        free(pf), free(pd), free(dyf), free(r), free(g), free(gr), free(g2), free(ws);
    }
}

/* Large enough that im2col runs in several chunks (K = 1152 -> 455 columns
 * per chunk, 900 output pixels), compared with the reference path. */
static void test_conv_chunks(void **state)
{
    conv_case c = {2, 128, 30, 30, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1};
    conv_prob p;
    setup_prob(&c, &p);
    assert_true(aibox_conv_ws_floats(&p.d) < 2 * (size_t)1152 * 900); /* really chunked */
    size_t np = p.nx + p.nw + p.nb;
    aibox_rng rng;
    aibox_rng_seed(&rng, 7);
    float *pf = aibox_test_floats(np), *dy = aibox_test_floats(p.ny);
    aibox_test_fill_uniform(&rng, pf, np, -1, 1);
    aibox_test_fill_uniform(&rng, dy, p.ny, -1, 1);
    float *y = aibox_test_floats(p.ny), *yr = aibox_test_floats(p.ny);
    float *g = aibox_test_floats(np), *gr = aibox_test_floats(np);
    float *ws = aibox_test_floats(aibox_conv_ws_floats(&p.d));
    aibox_conv_fwd(&p.d, p.n, pf, pf + p.nx, pf + p.nx + p.nw, y, ws);
    aibox_conv_fwd_ref(&p.d, p.n, pf, pf + p.nx, pf + p.nx + p.nw, yr);
    AIBOX_TEST_CLOSE_FF("chunked conv forward", y, yr, p.ny, 1e-4, 1e-4);
    aibox_conv_bwd(&p.d, p.n, pf, pf + p.nx, dy, g, g + p.nx, g + p.nx + p.nw, ws);
    aibox_conv_bwd_ref(&p.d, p.n, pf, pf + p.nx, dy, gr, gr + p.nx, gr + p.nx + p.nw);
    /* weight gradients sum 2*900 products: 1e-3 relative */
    AIBOX_TEST_CLOSE_FF("chunked conv backward", g, gr, np, 1e-3, 1e-3);
    free(pf), free(dy), free(y), free(yr), free(g), free(gr), free(ws);
}

typedef struct {
    int n, in, out;
} dense_prob;

static void dense_naive(void *user, const double *packed, double *y)
{
    const dense_prob *p = user;
    const double *x = packed, *w = x + (size_t)p->n * p->in, *b = w + (size_t)p->out * p->in;
    for (int s = 0; s < p->n; s++)
        for (int o = 0; o < p->out; o++) {
            double acc = b[o];
            for (int i = 0; i < p->in; i++) acc += x[s * p->in + i] * w[o * p->in + i];
            y[s * p->out + o] = acc;
        }
}

/* The direct kernels for few input channels (conv_small.c, conv1 of RGB
 * networks): each kernel against the double loops (forward tolerance
 * above), with bias or folded scale and shift and a ReLU as
 * aibox_conv_fwd_part applies them, split into 1 or 3 parts by rows, and
 * every kernel the same bits as the plain-C twin. Widths around the 16-,
 * 24- and 48-pixel blocks; a wide shape (32 channels, K = 288, as
 * AlexNet-256's conv2) on the rows of 64 pixels and more it is used for. */
static void test_convsmall(void **state)
{
    aibox_convsmall_kernel ks[4];
    int nk = aibox_convsmall_kernels(aibox_cpu_features(), ks, 4);
    for (int i = 0; i < nk; i++) print_message("convsmall kernel compared: %s\n", ks[i].name);
    assert_string_equal(ks[0].name, "c");
    static const int widths[] = {1, 5, 8, 16, 17, 24, 25, 47, 48, 49, 64, 70, 80, 97};
    aibox_rng rng;
    aibox_rng_seed(&rng, 77);
    long cases_run = 0;
    for (int shape = 0; shape < 5; shape++)
        for (size_t wi = 0; wi < sizeof widths / sizeof *widths; wi++)
            for (int flags = 0; flags < 8; flags++, cases_run++) {
                /* 3x3 on 3 channels (K = 27), 5x5 on 1 (25), 2x2 on 4, 3x3 on 2 without padding,
                 * 3x3 on 32 (288, rows of 64 or more only) */
                static const int sh_[5][4] = {{3, 3, 1, 32}, {1, 5, 2, 8}, {4, 2, 0, 16}, {2, 3, 0, 8}, {32, 3, 1, 16}};
                if (shape == 4 && widths[wi] < 64) continue;
                int C = sh_[shape][0], k = sh_[shape][1], pad = sh_[shape][2], OC = sh_[shape][3];
                int W = widths[wi] + k - 1 - 2 * pad, H = 3 + (int)(cases_run % 4);
                if (W < k - 2 * pad || W < 1) W = k;
                aibox_conv_desc d = {.in_c = C, .in_h = H, .in_w = W, .out_c = OC, .kh = k, .kw = k, .sh = 1, .sw = 1,
                                     .pt = pad, .pl = pad, .groups = 1};
                d.out_h = aibox_conv_out_size(H, k, 1, pad, pad);
                d.out_w = aibox_conv_out_size(W, k, 1, pad, pad);
                if (d.out_h < 1 || d.out_w < 1) continue;
                assert_true(aibox_convsmall_eligible(&d));
                int n = 2, relu = flags & 4;
                size_t nx = (size_t)n * C * H * W, nw = (size_t)OC * C * k * k, ny = (size_t)n * OC * d.out_h * d.out_w;
                float *x = aibox_test_malloc(nx * sizeof(float)), *w = aibox_test_floats(nw);
                float *sc = aibox_test_floats((size_t)OC), *bb = aibox_test_floats((size_t)OC);
                aibox_test_fill_uniform(&rng, x, nx, -1, 1);
                aibox_test_fill_uniform(&rng, w, nw, -1, 1);
                aibox_test_fill_uniform(&rng, sc, (size_t)OC, 0.5f, 2);
                aibox_test_fill_uniform(&rng, bb, (size_t)OC, -1, 1);
                const float *scale = flags & 1 ? sc : NULL, *b = flags & 2 ? bb : NULL;
                double *xd = aibox_test_doubles(nx), *wd = aibox_test_doubles(nw), *want = aibox_test_doubles(ny);
                aibox_test_f2d(x, xd, nx);
                aibox_test_f2d(w, wd, nw);
                conv_ref(&d, n, xd, wd, NULL, want);
                size_t P = (size_t)d.out_h * d.out_w;
                for (size_t i = 0; i < ny; i++) {
                    int oc = (int)(i / P % (size_t)OC);
                    double v = want[i] * (scale ? scale[oc] : 1.0) + (b ? b[oc] : 0.0);
                    want[i] = relu && !(v > 0) ? 0.0 : v;
                }
                float *ws = aibox_test_malloc(aibox_convsmall_ws_floats(&d) * sizeof(float));
                float *y0 = aibox_test_floats(ny), *y = aibox_test_floats(ny);
                for (int ki = 0; ki < nk; ki++)
                    for (int parts = 1; parts <= 3; parts += 2) {
                        float *out = ki == 0 && parts == 1 ? y0 : y;
                        for (int part = 0; part < parts; part++)
                            aibox_convsmall_fwd_part(&ks[ki], &d, n, x, w, scale, b, out, ws, relu, part, parts);
                        char what[96];
                        snprintf(what, sizeof what, "convsmall %s shape %d width %d flags %d parts %d", ks[ki].name,
                                 shape, d.out_w, flags, parts);
                        AIBOX_TEST_CLOSE(what, out, want, ny, 1e-4, 1e-4);
                        if (out != y0 && memcmp(out, y0, ny * sizeof(float))) fail_msg("%s: bits differ from c", what);
                    }
                free(x), free(w), free(sc), free(bb), free(xd), free(wd), free(want), free(ws), free(y0), free(y);
            }
}

/* A stride-1 convolution's input gradient as the direct kernels' convolution
 * of dy with the transposed, flipped weights (aibox_convsmall_dx_desc, as the
 * training layer runs it) against the double loops: 3x3 with and without
 * padding, 5x5 with 2 and with 1, rows around the 48-pixel blocks. */
static void test_convsmall_dx(void **state)
{
    aibox_convsmall_kernel ks[4];
    int nk = aibox_convsmall_kernels(aibox_cpu_features(), ks, 4);
    static const int sh_[4][4] = {{16, 3, 1, 32}, {8, 3, 0, 24}, {8, 5, 2, 16}, {16, 5, 1, 8}}; /* C, k, pad, OC */
    static const int widths[] = {64, 65, 97, 130};
    aibox_rng rng;
    aibox_rng_seed(&rng, 78);
    for (int shape = 0; shape < 4; shape++)
        for (size_t wi = 0; wi < sizeof widths / sizeof *widths; wi++) {
            int C = sh_[shape][0], k = sh_[shape][1], pad = sh_[shape][2], OC = sh_[shape][3], H = 4 + (int)wi;
            aibox_conv_desc d = {.in_c = C, .in_h = H, .in_w = widths[wi], .out_c = OC, .kh = k, .kw = k, .sh = 1,
                                 .sw = 1, .pt = pad, .pl = pad, .groups = 1}, t;
            d.out_h = aibox_conv_out_size(H, k, 1, pad, pad);
            d.out_w = aibox_conv_out_size(d.in_w, k, 1, pad, pad);
            assert_true(aibox_convsmall_dx_desc(&d, &t));
            assert_int_equal(t.out_h, H);
            assert_int_equal(t.out_w, d.in_w);
            int n = 2;
            size_t nx = (size_t)n * C * H * d.in_w, nw = (size_t)OC * C * k * k, ny = (size_t)n * OC * d.out_h * d.out_w;
            float *x = aibox_test_floats(nx), *w = aibox_test_floats(nw), *dy = aibox_test_floats(ny);
            float *wt = aibox_test_floats(nw), *dw = aibox_test_floats(nw), *want = aibox_test_floats(nx);
            float *dx = aibox_test_floats(nx), *dx0 = aibox_test_floats(nx);
            float *ws = aibox_test_malloc(aibox_convsmall_ws_floats(&t) * sizeof(float));
            aibox_test_fill_uniform(&rng, x, nx, -1, 1);
            aibox_test_fill_uniform(&rng, w, nw, -1, 1);
            aibox_test_fill_uniform(&rng, dy, ny, -1, 1);
            aibox_conv_bwd_ref(&d, n, x, w, dy, want, dw, NULL); /* want, dw zeroed by aibox_test_floats */
            aibox_convsmall_dx_weights(&d, w, wt);
            for (int ki = 0; ki < nk; ki++) {
                float *out = ki ? dx : dx0;
                aibox_convsmall_fwd_part(&ks[ki], &t, n, dy, wt, NULL, NULL, out, ws, 0, 0, 1);
                char what[96];
                snprintf(what, sizeof what, "convsmall dx %s shape %d width %d", ks[ki].name, shape, d.in_w);
                AIBOX_TEST_CLOSE_FF(what, out, want, nx, 1e-4, 1e-4);
                if (out != dx0 && memcmp(out, dx0, nx * sizeof(float))) fail_msg("%s: bits differ from c", what);
            }
            free(x), free(w), free(dy), free(wt), free(dw), free(want), free(dx), free(dx0), free(ws);
        }
}

/* The fused ReLU backward and the stored input gradient
 * (aibox_conv_bwd_ex) give the bits of a separate mask pass, then
 * aibox_conv_bwd into a zeroed dx: every case (im2col chunks, pointwise,
 * depthwise) with bias, and a chunked case with an unaligned plane. */
static void test_conv_bwd_fused(void **state)
{
    /* the cases, then chunked ones: K = 1152 -> 455 columns a chunk over a
     * 900-pixel plane (not a multiple of 16), K = 27 over 61 x 37 */
    static const conv_case chunked[] = {{2, 128, 30, 30, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
                                        {2, 3, 61, 37, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}};
    const size_t nc = sizeof cases / sizeof *cases;
    for (size_t ci = 0; ci < nc + 2; ci++) {
        conv_prob p;
        setup_prob(ci < nc ? &cases[ci] : &chunked[ci - nc], &p);
        aibox_rng rng;
        aibox_rng_seed(&rng, 300 + ci);
        size_t np = p.nx + p.nw + p.nb;
        float *pf = aibox_test_floats(np), *yv = aibox_test_floats(p.ny), *dy = aibox_test_floats(p.ny);
        aibox_test_fill_uniform(&rng, pf, np, -1, 1);
        aibox_test_fill_uniform(&rng, yv, p.ny, -1, 1); /* the ReLU's output: about half masked */
        for (size_t i = 0; i < p.ny; i += 7) yv[i] = 0.0f;
        aibox_test_fill_uniform(&rng, dy, p.ny, -1, 1);
        float *dy1 = aibox_test_floats(p.ny), *dy2 = aibox_test_floats(p.ny);
        float *g1 = aibox_test_floats(np), *g2 = aibox_test_floats(np);
        for (size_t i = 0; i < p.ny; i++) dy1[i] = yv[i] > 0.0f ? dy[i] : 0.0f;
        memcpy(dy2, dy, p.ny * sizeof(float));
        for (size_t i = 0; i < p.nx; i++) g2[i] = NAN; /* stored, never read */
        float *ws = aibox_test_floats(aibox_conv_ws_floats(&p.d) + 1);
        float *b1 = p.bias ? g1 + p.nx + p.nw : NULL, *b2 = p.bias ? g2 + p.nx + p.nw : NULL;
        aibox_conv_bwd(&p.d, p.n, pf, pf + p.nx, dy1, g1, g1 + p.nx, b1, ws);
        aibox_conv_bwd_ex(&p.d, p.n, pf, pf + p.nx, yv, dy2, g2, 1, g2 + p.nx, b2, ws);
        if (memcmp(dy1, dy2, p.ny * sizeof(float))) fail_msg("conv case %zu: masked dy differs", ci);
        if (memcmp(g1, g2, np * sizeof(float))) fail_msg("conv case %zu: fused backward differs", ci);
        free(pf), free(yv), free(dy), free(dy1), free(dy2), free(g1), free(g2), free(ws);
    }
}

static void test_dense(void **state)
{
    dense_prob p = {3, 17, 5};
    size_t nx = (size_t)p.n * p.in, nw = (size_t)p.out * p.in, np = nx + nw + p.out, ny = (size_t)p.n * p.out;
    aibox_rng rng;
    aibox_rng_seed(&rng, 11);
    float *pf = aibox_test_floats(np), *dy = aibox_test_floats(ny);
    double *pd = aibox_test_doubles(np), *r = aibox_test_doubles(ny), *want = aibox_test_doubles(ny);
    aibox_test_fill_uniform(&rng, pf, np, -1, 1);
    aibox_test_fill_uniform(&rng, dy, ny, -1, 1);
    aibox_test_f2d(pf, pd, np);
    aibox_test_f2d(dy, r, ny);
    dense_naive(&p, pd, want);
    float *y = aibox_test_floats(ny), *yr = aibox_test_floats(ny);
    aibox_dense_fwd(p.n, p.in, p.out, pf, pf + nx, pf + nx + nw, y);
    aibox_dense_fwd_ref(p.n, p.in, p.out, pf, pf + nx, pf + nx + nw, yr);
    AIBOX_TEST_CLOSE("dense forward (BLAS)", y, want, ny, 1e-5, 1e-5);
    AIBOX_TEST_CLOSE("dense forward (reference)", yr, want, ny, 1e-5, 1e-5);
    float *g = aibox_test_floats(np), *gr = aibox_test_floats(np);
    aibox_dense_bwd(p.n, p.in, p.out, pf, pf + nx, dy, g, g + nx, g + nx + nw);
    aibox_dense_bwd_ref(p.n, p.in, p.out, pf, pf + nx, dy, gr, gr + nx, gr + nx + nw);
    assert_true(aibox_test_gradcheck("dense backward (BLAS)", dense_naive, NULL, &p, pd, np, r, ny, 1e-6, g, 1e-4, 1e-4));
    assert_true(aibox_test_gradcheck("dense backward (reference)", dense_naive, NULL, &p, pd, np, r, ny, 1e-6, gr, 1e-4,
                                     1e-4));
    free(pf), free(dy), free(pd), free(r), free(want), free(y), free(yr), free(g), free(gr);
}

/* Fast path by default: on a CPU with AVX-512 the active OpenBLAS kernels
 * must be an AVX-512 set, whatever OpenBLAS picked (unless the user forced
 * a choice with AIBOX_BLAS_CORE). The tests above then ran on those kernels. */
static void test_blas_fast_kernels(void **state)
{
    const char *core = aibox_blas_core();
    printf("# %s\n", aibox_blas_info());
    if (getenv("AIBOX_BLAS_CORE")) skip();
    /* the library's own probe (0 off x86, where OpenBLAS keeps its choice) */
    unsigned f = aibox_cpu_features();
    unsigned skx = AIBOX_CPU_AVX512F | AIBOX_CPU_AVX512BW | AIBOX_CPU_AVX512DQ | AIBOX_CPU_AVX512VL;
    if ((f & skx) == skx)
        assert_true(!strcasecmp(core, "SkylakeX") || !strcasecmp(core, "Cooperlake") ||
                    !strcasecmp(core, "SapphireRapids"));
    else if ((f & (AIBOX_CPU_AVX2 | AIBOX_CPU_FMA)) == (AIBOX_CPU_AVX2 | AIBOX_CPU_FMA))
        assert_true(strcasecmp(core, "Prescott") != 0);
}

int main(void)
{
    aibox_blas_setup(); /* run every kernel test on the kernels users get */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blas_fast_kernels), cmocka_unit_test(test_conv_forward),
        cmocka_unit_test(test_conv_backward),     cmocka_unit_test(test_conv_chunks),
        cmocka_unit_test(test_dense),             cmocka_unit_test(test_convsmall),
        cmocka_unit_test(test_conv_bwd_fused),    cmocka_unit_test(test_convsmall_dx),
    };
    return cmocka_run_group_tests_name("ops/conv+dense", tests, NULL, NULL);
}

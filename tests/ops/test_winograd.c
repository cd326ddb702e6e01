/* Winograd F(2x2, 3x3) forward against a naive double-precision convolution
 * with the same epilogue, on random data in [-1, 1): odd and even sizes
 * (down to a 1x1 input), paddings 0, 1, 2 and asymmetric ones, channel counts
 * that are not multiples of 16, batches of 1 and 3, a folded batch norm with
 * ReLU and a plain bias; the batch in one block of tile rows or in blocks of
 * 1 and 3 rows (across samples), each phase whole or split into parts.
 * Tolerance: |got - want| <= 1e-5 * max |want| over the output (float sums
 * of up to 576 products; the F(2,3) transforms add and subtract at most 4
 * terms, so the error stays of the im2col path's order). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "common/check.h"
#include "conv_ref.h"
#include "ops/ops.h"

#define REL_TOL 1e-5

typedef struct {
    int n, c, h, w, k, pt, pl, pb, pr;
} wcase;

static const wcase cases[] = {
    {1, 3, 7, 7, 5, 1, 1, 1, 1},      /* 'same', odd output */
    {3, 17, 14, 14, 16, 1, 1, 1, 1},  /* even, a batch */
    {1, 17, 15, 9, 3, 1, 1, 1, 1},    /* odd height and width */
    {1, 3, 1, 1, 4, 1, 1, 1, 1},      /* 1x1 input: one tile, one pixel */
    {2, 4, 2, 3, 3, 2, 2, 2, 2},      /* padding 2: output larger than the input */
    {1, 64, 15, 9, 17, 0, 0, 0, 0},   /* no padding */
    {3, 64, 9, 8, 64, 2, 1, 0, 1},    /* asymmetric padding */
    {1, 5, 6, 6, 7, 0, 2, 1, 0},      /* asymmetric, other sides */
    {1, 64, 28, 28, 64, 1, 1, 1, 1},  /* a ResNet layer shape (scaled down) */
};

static void make_desc(const wcase *c, aibox_conv_desc *d)
{
    d->in_c = c->c, d->in_h = c->h, d->in_w = c->w, d->out_c = c->k;
    d->kh = d->kw = 3, d->sh = d->sw = 1, d->pt = c->pt, d->pl = c->pl, d->groups = 1;
    d->out_h = aibox_conv_out_size(c->h, 3, 1, c->pt, c->pb);
    d->out_w = aibox_conv_out_size(c->w, 3, 1, c->pl, c->pr);
}

/* The naive double convolution (conv_ref.h), then * scale + shift (scale
 * NULL: + shift) and ReLU. */
static void naive(const aibox_conv_desc *d, int n, const float *x, const float *w, const float *scale,
                  const float *shift, int relu, double *y)
{
    size_t nx = (size_t)n * d->in_c * d->in_h * d->in_w, nw = (size_t)d->out_c * d->in_c * 9;
    size_t plane = (size_t)d->out_h * d->out_w;
    double *xd = aibox_test_doubles(nx), *wd = aibox_test_doubles(nw);
    aibox_test_f2d(x, xd, nx);
    aibox_test_f2d(w, wd, nw);
    conv_ref(d, n, xd, wd, NULL, y);
    for (size_t i = 0; i < (size_t)n * d->out_c * plane; i++) {
        int o = (int)(i / plane % (size_t)d->out_c);
        if (scale) y[i] *= scale[o];
        if (shift) y[i] += shift[o];
        if (relu && y[i] < 0) y[i] = 0;
    }
    free(xd), free(wd);
}

static void test_winograd_forward(void **state)
{
    (void)state;
    double worst = 0;
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        const wcase *c = &cases[ci];
        aibox_conv_desc d;
        make_desc(c, &d);
        size_t nx = (size_t)c->n * c->c * c->h * c->w, nw = (size_t)c->k * c->c * 9;
        size_t ny = (size_t)c->n * c->k * d.out_h * d.out_w;
        aibox_rng rng;
        aibox_rng_seed(&rng, 300 + ci);
        float *x = aibox_test_floats(nx), *w = aibox_test_floats(nw), *scale = aibox_test_floats(c->k),
              *shift = aibox_test_floats(c->k);
        aibox_test_fill_uniform(&rng, x, nx, -1, 1);
        aibox_test_fill_uniform(&rng, w, nw, -1, 1);
        aibox_test_fill_uniform(&rng, scale, c->k, 0.5f, 1.5f);
        aibox_test_fill_uniform(&rng, shift, c->k, -1, 1);
        float *u = aibox_test_floats(aibox_wino_u_floats(&d));
        int rows = c->n * aibox_wino_tile_rows(&d);
        float *vm = aibox_test_floats(aibox_wino_vm_floats(&d, rows));
        float *ws = aibox_test_floats(aibox_wino_ws_floats(&d));
        float *y = aibox_test_floats(ny);
        double *want = aibox_test_doubles(ny);
        aibox_wino_weights(&d, w, u);
        /* the whole batch in one block, whole and in 3 parts; blocks of 1 and 3
         * tile rows (across samples) in 2 parts */
        static const int block[3] = {0, 1, 3}, nparts[3] = {1, 3, 2};
        for (int bn = 0; bn < 2; bn++) /* folded batch norm + ReLU, then a bias alone */
            for (int k = 0; k < 3; k++) {
                const float *sc = bn ? scale : NULL;
                int br = block[k] ? block[k] : rows, parts = nparts[k];
                naive(&d, c->n, x, w, sc, shift, bn, want);
                for (size_t i = 0; i < ny; i++) y[i] = NAN; /* every output must be written */
                for (int g0 = 0; g0 < rows; g0 += br) {
                    int g1 = g0 + br < rows ? g0 + br : rows;
                    for (int p = 0; p < parts; p++) aibox_wino_input(&d, g0, g1, x, vm, ws, p, parts);
                    for (int p = 0; p < parts; p++) aibox_wino_gemm(&d, g1 - g0, u, vm, p, parts);
                    for (int p = 0; p < parts; p++) aibox_wino_output(&d, g0, g1, vm, sc, shift, y, bn, p, parts);
                }
                double mx = 0, err = 0;
                for (size_t i = 0; i < ny; i++) mx = fmax(mx, fabs(want[i]));
                for (size_t i = 0; i < ny; i++) err = fmax(err, fabs(y[i] - want[i]));
                char what[96];
                snprintf(what, sizeof what, "winograd case %zu (%s, blocks of %d rows, %d parts)", ci,
                         bn ? "bn+relu" : "bias", br, parts);
                AIBOX_TEST_CLOSE(what, y, want, ny, REL_TOL * mx, 0);
                worst = fmax(worst, err / mx);
            }
        free(x), free(w), free(scale), free(shift), free(u), free(vm), free(ws), free(y), free(want);
    }
    printf("# largest error relative to max |output|: %.2e (limit %.0e)\n", worst, REL_TOL);
}

/* Only 3x3, stride 1, ungrouped, top/left padding <= 2, and where it was
 * measured faster: at least 8 input channels (3 from 56x56 outputs), and at
 * least 36 tiles for more than 256 x 256 channels. */
static void test_winograd_eligible(void **state)
{
    (void)state;
    aibox_conv_desc d;
    make_desc(&cases[1], &d); /* 17 channels at 14x14 */
    assert_true(aibox_wino_eligible(&d));
    aibox_conv_desc e = d;
    e.in_c = 4;
    assert_false(aibox_wino_eligible(&e));
    e.in_h = e.in_w = e.out_h = e.out_w = 56;
    assert_true(aibox_wino_eligible(&e));
    e.in_c = 2;
    assert_false(aibox_wino_eligible(&e));
    e = d, e.in_c = e.out_c = 256, e.in_h = e.in_w = e.out_h = e.out_w = 4;
    assert_true(aibox_wino_eligible(&e));
    e.in_c = 512; /* 512 x 256 channels need 36 tiles */
    assert_false(aibox_wino_eligible(&e));
    e.in_h = e.in_w = e.out_h = e.out_w = 11;
    assert_true(aibox_wino_eligible(&e));
    e = d;
    e.kw = 5;
    assert_false(aibox_wino_eligible(&e));
    e = d, e.sh = 2;
    assert_false(aibox_wino_eligible(&e));
    e = d, e.groups = 3, e.out_c = 3;
    assert_false(aibox_wino_eligible(&e));
    e = d, e.pl = 3;
    assert_false(aibox_wino_eligible(&e));
    /* blocks: cache-sized for a large image, at least one tile row, a whole
     * batch when small */
    e = d, e.in_c = e.out_c = 64, e.in_h = e.in_w = e.out_h = e.out_w = 224;
    size_t vm = aibox_wino_scratch_floats(&e);
    int rows = aibox_wino_block_rows(&e, 1, vm);
    assert_true(rows > 1 && rows < aibox_wino_tile_rows(&e) && aibox_wino_vm_floats(&e, rows) == vm);
    assert_int_equal(aibox_wino_block_rows(&e, 1, 1), 1);
    assert_int_equal(aibox_wino_block_rows(&d, 3, aibox_wino_vm_floats(&d, 1000)), 3 * aibox_wino_tile_rows(&d));
}

int main(void)
{
    aibox_blas_setup(); /* the kernels users get */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_winograd_forward),
        cmocka_unit_test(test_winograd_eligible),
    };
    return cmocka_run_group_tests_name("ops/winograd", tests, NULL, NULL);
}

/* Activation kernels against naive double-precision references and central
 * finite differences.
 *
 * Tolerances (|got - want| <= atol + rtol*|want|):
 *  - relu, leaky, clamp forward: atol 0, rtol 1e-7 (one float multiply at most).
 *  - sigmoid forward: atol 1e-7, rtol 1e-6 (expf is within a few ulp; atol
 *    covers the subnormal tail for x near -100).
 *  - softmax forward: atol 1e-7, rtol 1e-5 (expf plus a float sum over c).
 *  - piecewise-linear backward (relu, leaky, clamp, dropout): atol 1e-6,
 *    rtol 1e-6 against central differences of the double reference, step
 *    1e-3, inputs kept 1e-2 away from every kink.
 *  - sigmoid and softmax backward: atol 1e-6, rtol 1e-5, step 1e-4 on the
 *    double reference (truncation ~h^2 = 1e-8; the float analytic dominates).
 *  - sigmoid via the float forward: step 1e-3, atol 2e-4 (float rounding of y
 *    divided by 2e-3).
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

/* ------------------------------------------------------------ references */
typedef enum { A_RELU, A_LEAKY, A_CLAMP, A_SIGMOID } act_kind;

typedef struct act_user {
    act_kind kind;
    double alpha, lo, hi;
    size_t count;
    const float *x, *y, *dy; /* backward operands */
} act_user;

static double ref_act(const act_user *u, double v)
{
    switch (u->kind) {
    case A_RELU: return v > 0 ? v : 0;
    case A_LEAKY: return v > 0 ? v : u->alpha * v;
    case A_CLAMP: return fmin(fmax(v, u->lo), u->hi);
    case A_SIGMOID: return 1.0 / (1.0 + exp(-v));
    }
    return 0;
}

static void fwd_act_d(void *user, const double *x, double *y)
{
    act_user *u = user;
    for (size_t i = 0; i < u->count; i++) y[i] = ref_act(u, x[i]);
}

static void fwd_sigmoid_f(void *user, const float *x, float *y)
{
    act_user *u = user;
    aibox_sigmoid_fwd(u->count, x, y);
}

static void bwd_act(void *user, float *dx)
{
    act_user *u = user;
    switch (u->kind) {
    case A_RELU: aibox_relu_bwd(u->count, u->x, u->dy, dx); break;
    case A_LEAKY: aibox_leaky_bwd(u->count, (float)u->alpha, u->x, u->dy, dx); break;
    case A_CLAMP: aibox_clamp_bwd(u->count, (float)u->lo, (float)u->hi, u->x, u->dy, dx); break;
    case A_SIGMOID: aibox_sigmoid_bwd(u->count, u->y, u->dy, dx); break;
    }
}

static void run_fwd(const act_user *u, const float *x, float *y)
{
    switch (u->kind) {
    case A_RELU: aibox_relu_fwd(u->count, x, y); break;
    case A_LEAKY: aibox_leaky_fwd(u->count, (float)u->alpha, x, y); break;
    case A_CLAMP: aibox_clamp_fwd(u->count, (float)u->lo, (float)u->hi, x, y); break;
    case A_SIGMOID: aibox_sigmoid_fwd(u->count, x, y); break;
    }
}

/* One element-wise activation: forward vs reference, backward vs central
 * differences (with accumulation), on count values in [lo, hi) kept away
 * from the kinks. */
static void check_elementwise(const char *name, act_user u, float lo, float hi, const float *kinks, int nk,
                              double fwd_atol, double fwd_rtol, double step, double bwd_atol, double bwd_rtol,
                              uint64_t seed)
{
    const size_t n = u.count;
    aibox_rng rng;
    aibox_rng_seed(&rng, seed);
    float *x = aibox_test_floats(n), *y = aibox_test_floats(n), *dy = aibox_test_floats(n);
    double *xd = aibox_test_doubles(n), *yd = aibox_test_doubles(n), *r = aibox_test_doubles(n);
    double *g = aibox_test_doubles(n);
    aibox_test_fill_away(&rng, x, n, lo, hi, kinks, nk, 1e-2f);
    aibox_test_f2d(x, xd, n);
    fwd_act_d(&u, xd, yd);
    run_fwd(&u, x, y);
    char what[128];
    snprintf(what, sizeof what, "%s fwd", name);
    AIBOX_TEST_CLOSE(what, y, yd, n, fwd_atol, fwd_rtol);

    aibox_test_fill_uniform(&rng, dy, n, -1, 1);
    aibox_test_f2d(dy, r, n);
    u.x = x;
    u.y = y;
    u.dy = dy;
    aibox_test_numgrad_d(fwd_act_d, &u, xd, n, r, n, step, g);
    snprintf(what, sizeof what, "%s bwd", name);
    assert_true(aibox_test_bwd_accumulates(what, bwd_act, &u, n, g, bwd_atol, bwd_rtol, seed + 1));
    free(x), free(y), free(dy), free(xd), free(yd), free(r), free(g);
}

/* ------------------------------------------------------------ tests */
static void test_relu(void **state)
{
    (void)state;
    const float k[1] = {0};
    act_user u = {.kind = A_RELU, .count = 1001};
    check_elementwise("relu", u, -3, 3, k, 1, 0, 1e-7, 1e-3, 1e-6, 1e-6, 11);
    /* at the kink: relu(0) = 0 and relu'(0) = 0 (PyTorch's choice) */
    float x0 = 0.0f, y0 = 1.0f, dy0 = 1.0f, dx0 = 0.0f;
    aibox_relu_fwd(1, &x0, &y0);
    aibox_relu_bwd(1, &x0, &dy0, &dx0);
    assert_true(y0 == 0.0f && dx0 == 0.0f);
}

static void test_leaky(void **state)
{
    (void)state;
    const float k[1] = {0};
    act_user u = {.kind = A_LEAKY, .alpha = 0.1f, .count = 777};
    check_elementwise("leaky relu 0.1", u, -4, 4, k, 1, 0, 1e-7, 1e-3, 1e-6, 1e-6, 12);
    act_user u2 = {.kind = A_LEAKY, .alpha = 0.3f, .count = 33};
    check_elementwise("leaky relu 0.3", u2, -4, 4, k, 1, 0, 1e-7, 1e-3, 1e-6, 1e-6, 13);
}

static void test_clamp(void **state)
{
    (void)state;
    const float k6[2] = {0, 6};
    act_user u = {.kind = A_CLAMP, .lo = 0, .hi = 6, .count = 999};
    check_elementwise("relu6", u, -3, 9, k6, 2, 0, 1e-7, 1e-3, 1e-6, 1e-6, 14);
    const float k2[2] = {-1, 0.5f};
    act_user u2 = {.kind = A_CLAMP, .lo = -1, .hi = 0.5, .count = 65};
    check_elementwise("clamp(-1, 0.5)", u2, -2, 2, k2, 2, 0, 1e-7, 1e-3, 1e-6, 1e-6, 15);
    /* exactly at the bounds the gradient is 0 (documented: agrees with relu) */
    const float xb[2] = {0.0f, 6.0f}, dyb[2] = {1.0f, 1.0f};
    float dxb[2] = {0, 0}, yb[2];
    aibox_clamp_fwd(2, 0, 6, xb, yb);
    aibox_clamp_bwd(2, 0, 6, xb, dyb, dxb);
    assert_true(yb[0] == 0.0f && yb[1] == 6.0f && dxb[0] == 0.0f && dxb[1] == 0.0f);
}

static void test_sigmoid(void **state)
{
    (void)state;
    act_user u = {.kind = A_SIGMOID, .count = 513};
    check_elementwise("sigmoid", u, -12, 12, NULL, 0, 1e-7, 1e-6, 1e-4, 1e-6, 1e-5, 16);

    /* the float-forward path of the gradient checker */
    const size_t n = 64;
    aibox_rng rng;
    aibox_rng_seed(&rng, 17);
    float *x = aibox_test_floats(n), *y = aibox_test_floats(n), *dy = aibox_test_floats(n);
    float *dx = aibox_test_floats(n);
    double *xd = aibox_test_doubles(n), *r = aibox_test_doubles(n);
    aibox_test_fill_uniform(&rng, x, n, -6, 6);
    aibox_test_fill_uniform(&rng, dy, n, -1, 1);
    aibox_test_f2d(x, xd, n);
    aibox_test_f2d(dy, r, n);
    aibox_sigmoid_fwd(n, x, y);
    aibox_sigmoid_bwd(n, y, dy, dx);
    u.count = n;
    assert_true(aibox_test_gradcheck("sigmoid bwd vs float forward", NULL, fwd_sigmoid_f, &u, xd, n, r, n, 1e-3, dx,
                                     2e-4, 1e-3));
    free(x), free(y), free(dy), free(dx), free(xd), free(r);
}

static void test_sigmoid_extremes(void **state)
{
    (void)state;
    /* no overflow, no NaN, exact limits; the reference in double is fine here */
    const float x[8] = {-INFINITY, -1e4f, -100.0f, -88.0f, 88.0f, 100.0f, 1e4f, INFINITY};
    float y[8];
    double yd[8];
    aibox_sigmoid_fwd(8, x, y);
    for (int i = 0; i < 8; i++) yd[i] = 1.0 / (1.0 + exp(-(double)x[i]));
    AIBOX_TEST_CLOSE("sigmoid extremes", y, yd, 8, 1e-30, 1e-6);
    assert_true(y[0] == 0.0f && y[7] == 1.0f && y[6] == 1.0f);
    assert_true(y[2] > 0.0f); /* exp(-100) = 3.7e-44 survives as a subnormal, not 0/0 */
}

/* ------------------------------------------------------------ dropout */
typedef struct drop_user {
    size_t count;
    const float *mask, *dy;
} drop_user;

static void fwd_drop_d(void *user, const double *x, double *y)
{
    drop_user *u = user;
    for (size_t i = 0; i < u->count; i++) y[i] = x[i] * u->mask[i];
}

static void bwd_drop(void *user, float *dx)
{
    drop_user *u = user;
    aibox_dropout_bwd(u->count, u->mask, u->dy, dx);
}

static void test_dropout_rate0(void **state)
{
    (void)state;
    const size_t n = 257;
    aibox_rng rng, before;
    aibox_rng_seed(&rng, 21);
    float *x = aibox_test_floats(n), *y = aibox_test_floats(n), *mask = aibox_test_floats(n);
    aibox_test_fill_uniform(&rng, x, n, -5, 5);
    before = rng;
    aibox_dropout_fwd(n, 0.0f, &rng, x, y, mask);
    assert_memory_equal(x, y, n * sizeof *x);
    for (size_t i = 0; i < n; i++) assert_true(mask[i] == 1.0f);
    /* documented: rate 0 draws nothing */
    assert_memory_equal(&before, &rng, sizeof rng);
    free(x), free(y), free(mask);
}

static void test_dropout_mask(void **state)
{
    (void)state;
    const size_t n = 1000000;
    const float rate = 0.3f;
    const double scale = 1.0 / (1.0 - (double)rate);
    aibox_rng rng;
    aibox_rng_seed(&rng, 22);
    float *x = aibox_test_floats(n), *y = aibox_test_floats(n), *mask = aibox_test_floats(n);
    float *mask2 = aibox_test_floats(n);
    aibox_test_fill_uniform(&rng, x, n, -2, 2);

    aibox_rng_seed(&rng, 1234);
    aibox_dropout_fwd(n, rate, &rng, x, y, mask);
    size_t zeros = 0;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        /* each mask value is 0 or 1/(1-rate) and y = x*mask */
        if (mask[i] == 0.0f) {
            zeros++;
            assert_true(y[i] == 0.0f);
        } else {
            assert_true(fabs(mask[i] - scale) <= 1e-6 * scale);
            assert_true(fabs(y[i] - x[i] * scale) <= 1e-6 * fabs(x[i] * scale));
        }
        sum += mask[i];
    }
    /* over 1e6 draws: mean of the mask ~ 1 (sd sqrt(rate/((1-rate) n)) =
     * 6.5e-4) and the dropped fraction ~ rate (sd sqrt(rate(1-rate)/n) =
     * 4.6e-4); five sd each */
    AIBOX_TEST_CLOSE1("dropout mask mean", sum / n, 1.0, 3.3e-3, 0);
    AIBOX_TEST_CLOSE1("dropout dropped fraction", (double)zeros / n, rate, 2.3e-3, 0);

    /* the same seed reproduces the mask exactly; another seed does not */
    aibox_rng_seed(&rng, 1234);
    aibox_dropout_fwd(n, rate, &rng, x, y, mask2);
    assert_memory_equal(mask, mask2, n * sizeof *mask);
    aibox_rng_seed(&rng, 1235);
    aibox_dropout_fwd(n, rate, &rng, x, y, mask2);
    assert_memory_not_equal(mask, mask2, n * sizeof *mask);

    /* the generator advances: two consecutive calls give different masks */
    aibox_rng_seed(&rng, 1234);
    aibox_dropout_fwd(n, rate, &rng, x, y, mask2);
    aibox_dropout_fwd(n, rate, &rng, x, y, mask2);
    assert_memory_not_equal(mask, mask2, n * sizeof *mask);
    free(x), free(y), free(mask), free(mask2);
}

static void test_dropout_rate1(void **state)
{
    (void)state;
    float x[5] = {1, -2, 3, 4, 5}, y[5], mask[5];
    aibox_rng rng;
    aibox_rng_seed(&rng, 23);
    aibox_dropout_fwd(5, 1.0f, &rng, x, y, mask);
    for (int i = 0; i < 5; i++) assert_true(y[i] == 0.0f && mask[i] == 0.0f && isfinite(mask[i]));
}

static void test_dropout_bwd(void **state)
{
    (void)state;
    const size_t n = 301;
    aibox_rng rng;
    aibox_rng_seed(&rng, 24);
    float *x = aibox_test_floats(n), *y = aibox_test_floats(n), *mask = aibox_test_floats(n);
    float *dy = aibox_test_floats(n);
    double *xd = aibox_test_doubles(n), *r = aibox_test_doubles(n), *g = aibox_test_doubles(n);
    aibox_test_fill_uniform(&rng, x, n, -2, 2);
    aibox_test_fill_uniform(&rng, dy, n, -1, 1);
    aibox_dropout_fwd(n, 0.5f, &rng, x, y, mask);
    aibox_test_f2d(x, xd, n);
    aibox_test_f2d(dy, r, n);
    drop_user u = {n, mask, dy};
    aibox_test_numgrad_d(fwd_drop_d, &u, xd, n, r, n, 1e-3, g);
    assert_true(aibox_test_bwd_accumulates("dropout bwd", bwd_drop, &u, n, g, 1e-6, 1e-6, 25));
    free(x), free(y), free(mask), free(dy), free(xd), free(r), free(g);
}

/* ------------------------------------------------------------ softmax */
typedef struct sm_user {
    int n, c, hw;
    const float *y, *dy;
} sm_user;

/* Position-outer reference: exp(x - logsumexp) with the logsumexp taken
 * around the maximum, all in double. */
static void fwd_softmax_d(void *user, const double *x, double *y)
{
    sm_user *u = user;
    for (int s = 0; s < u->n; s++)
        for (int p = 0; p < u->hw; p++) {
            const double *xs = x + (size_t)s * u->c * u->hw + p;
            double *ys = y + (size_t)s * u->c * u->hw + p;
            double m = -INFINITY, sum = 0;
            for (int j = 0; j < u->c; j++) m = fmax(m, xs[(size_t)j * u->hw]);
            for (int j = 0; j < u->c; j++) sum += exp(xs[(size_t)j * u->hw] - m);
            const double lse = m + log(sum);
            for (int j = 0; j < u->c; j++) ys[(size_t)j * u->hw] = exp(xs[(size_t)j * u->hw] - lse);
        }
}

static void bwd_softmax(void *user, float *dx)
{
    sm_user *u = user;
    aibox_softmax_bwd(u->n, u->c, u->hw, u->y, u->dy, dx);
}

static void check_softmax(int n, int c, int hw, float lo, float hi, uint64_t seed, int with_grad)
{
    const size_t count = (size_t)n * c * hw;
    aibox_rng rng;
    aibox_rng_seed(&rng, seed);
    float *x = aibox_test_floats(count), *y = aibox_test_floats(count), *dy = aibox_test_floats(count);
    double *xd = aibox_test_doubles(count), *yd = aibox_test_doubles(count), *r = aibox_test_doubles(count);
    aibox_test_fill_uniform(&rng, x, count, lo, hi);
    aibox_test_f2d(x, xd, count);
    sm_user u = {n, c, hw, y, dy};
    fwd_softmax_d(&u, xd, yd);
    aibox_softmax_fwd(n, c, hw, x, y);
    char what[128];
    snprintf(what, sizeof what, "softmax fwd n%d c%d hw%d [%g, %g)", n, c, hw, lo, hi);
    AIBOX_TEST_CLOSE(what, y, yd, count, 1e-7, 1e-5);
    if (with_grad) {
        double *g = aibox_test_doubles(count);
        aibox_test_fill_uniform(&rng, dy, count, -1, 1);
        aibox_test_f2d(dy, r, count);
        aibox_test_numgrad_d(fwd_softmax_d, &u, xd, count, r, count, 1e-4, g);
        snprintf(what, sizeof what, "softmax bwd n%d c%d hw%d", n, c, hw);
        assert_true(aibox_test_bwd_accumulates(what, bwd_softmax, &u, count, g, 1e-6, 1e-5, seed + 1));
        free(g);
    }
    free(x), free(y), free(dy), free(xd), free(yd), free(r);
}

static void test_softmax(void **state)
{
    (void)state;
    check_softmax(3, 5, 1, -4, 4, 31, 1);     /* classifier head: hw 1 */
    check_softmax(2, 3, 7 * 5, -4, 4, 32, 1); /* odd plane */
    check_softmax(2, 4, 300, -4, 4, 33, 1);   /* crosses the kernel's 256-position block */
    check_softmax(1, 1, 9, -4, 4, 34, 1);     /* one channel: all ones, zero gradient */
    /* large logits: without the max subtraction expf overflows to inf/inf */
    check_softmax(2, 6, 513, 500, 2000, 35, 0);
    check_softmax(2, 6, 17, -2000, -500, 36, 0);
}

static void test_softmax_in_place(void **state)
{
    (void)state;
    /* the kernel reads each x before writing its y: in-place use is safe */
    const int n = 2, c = 4, hw = 260;
    const size_t count = (size_t)n * c * hw;
    aibox_rng rng;
    aibox_rng_seed(&rng, 37);
    float *x = aibox_test_floats(count);
    double *xd = aibox_test_doubles(count), *yd = aibox_test_doubles(count);
    aibox_test_fill_uniform(&rng, x, count, -3, 3);
    aibox_test_f2d(x, xd, count);
    sm_user u = {n, c, hw, NULL, NULL};
    fwd_softmax_d(&u, xd, yd);
    aibox_softmax_fwd(n, c, hw, x, x);
    AIBOX_TEST_CLOSE("softmax in place", x, yd, count, 1e-7, 1e-5);
    free(x), free(xd), free(yd);
}

/* Adam's update kernels (optim_ops.c): each the same bits as the plain-C
 * twin on every length around the vector widths (odd tails), with and
 * without L2 and decoupled decay, and the twin within 1e-6 of the update in
 * double. */
static void test_adam_kernels(void **state)
{
    aibox_adam_fn ks[4];
    const char *names[4];
    int nk = aibox_adam_kernels(aibox_cpu_features(), ks, names, 4);
    for (int i = 0; i < nk; i++) print_message("adam kernel compared: %s\n", names[i]);
    assert_string_equal(names[0], "c");
    aibox_rng rng;
    aibox_rng_seed(&rng, 11);
    static const size_t lens[] = {1, 7, 8, 15, 16, 17, 33, 100, 1031};
    for (int mode = 0; mode < 3; mode++)
        for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
            size_t n = lens[li];
            aibox_adam_coef c = {.b1 = 0.9f, .b2 = 0.999f, .one_minus_b1 = 1.0f - 0.9f, .one_minus_b2 = 1.0f - 0.999f,
                                 .l2 = mode == 1 ? 1e-2f : 0.0f, .decay = mode == 2 ? 1e-4f : 0.0f, .lr_t = 3e-3f,
                                 .eps = 1e-7f};
            float *p0 = aibox_test_floats(n), *g = aibox_test_floats(n), *m0 = aibox_test_floats(n),
                  *v0 = aibox_test_floats(n);
            aibox_test_fill_uniform(&rng, p0, n, -1, 1);
            aibox_test_fill_uniform(&rng, g, n, -1, 1);
            aibox_test_fill_uniform(&rng, m0, n, -0.1f, 0.1f);
            aibox_test_fill_uniform(&rng, v0, n, 0, 0.01f);
            if (n > 3) v0[3] = 0.0f, g[3] = 0.0f, m0[3] = 0.0f; /* sqrt(0) + eps */
            double *want = aibox_test_doubles(n);
            for (size_t i = 0; i < n; i++) {
                double gi = (double)g[i] + (double)c.l2 * p0[i];
                double mm = 0.9 * m0[i] + 0.1 * gi, vv = 0.999 * v0[i] + 0.001 * gi * gi;
                want[i] = p0[i] - ((double)c.decay * p0[i] + (double)c.lr_t * mm / (sqrt(vv) + 1e-7));
            }
            float *ref[3] = {NULL, NULL, NULL};
            for (int k = 0; k < nk; k++) {
                float *p = aibox_test_floats(n), *m = aibox_test_floats(n), *v = aibox_test_floats(n);
                memcpy(p, p0, n * sizeof(float)), memcpy(m, m0, n * sizeof(float)), memcpy(v, v0, n * sizeof(float));
                ks[k](&c, n, p, g, m, v);
                char what[64];
                snprintf(what, sizeof what, "adam %s mode %d n %zu", names[k], mode, n);
                AIBOX_TEST_CLOSE(what, p, want, n, 1e-6, 1e-5);
                if (k == 0) {
                    ref[0] = p, ref[1] = m, ref[2] = v;
                    continue;
                }
                if (memcmp(p, ref[0], n * sizeof(float)) || memcmp(m, ref[1], n * sizeof(float)) ||
                    memcmp(v, ref[2], n * sizeof(float)))
                    fail_msg("%s: bits differ from c", what);
                free(p), free(m), free(v);
            }
            free(ref[0]), free(ref[1]), free(ref[2]);
            free(p0), free(g), free(m0), free(v0), free(want);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adam_kernels),
        cmocka_unit_test(test_relu),
        cmocka_unit_test(test_leaky),
        cmocka_unit_test(test_clamp),
        cmocka_unit_test(test_sigmoid),
        cmocka_unit_test(test_sigmoid_extremes),
        cmocka_unit_test(test_dropout_rate0),
        cmocka_unit_test(test_dropout_mask),
        cmocka_unit_test(test_dropout_rate1),
        cmocka_unit_test(test_dropout_bwd),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_softmax_in_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Batch normalisation against a naive double-precision reference and central
 * finite differences.
 *
 * Tolerances (|got - want| <= atol + rtol*|want|):
 *  - forward y (train and inference): atol 2e-6, rtol 1e-5 (normalised
 *    values are O(1); float rounding of x - mean and of the scale).
 *  - saved mean, 1/std and the running statistics: atol 1e-7, rtol 1e-6
 *    (computed in double, rounded once to float).
 *  - backward dx, dgamma, dbeta: atol 2e-6, rtol 1e-5 against central
 *    differences (step 1e-4) of the double reference with batch statistics;
 *    dx is a difference of O(1) terms, so float cancellation sets the atol.
 *  - large-count channel (2^18 values around 1000): mean within atol 1e-4
 *    (one float ulp at 1000 is 6e-5), 1/std within rtol 1e-5.
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

/* ------------------------------------------------------------ reference */
/* Element (s, ch, i) of an NCHW array. */
#define AT(a, s, ch, i) (a)[((size_t)(s) * c + (ch)) * hw + (i)]

/* Batch statistics per channel in double: mean, biased and unbiased variance. */
static void ref_stats(int n, int c, int hw, const double *x, double *mean, double *var, double *uvar)
{
    for (int ch = 0; ch < c; ch++) {
        double s = 0, ss = 0;
        for (int k = 0; k < n; k++)
            for (int i = 0; i < hw; i++) s += AT(x, k, ch, i);
        const double m = s / ((double)n * hw);
        for (int k = 0; k < n; k++)
            for (int i = 0; i < hw; i++) ss += (AT(x, k, ch, i) - m) * (AT(x, k, ch, i) - m);
        mean[ch] = m;
        var[ch] = ss / ((double)n * hw);
        if (uvar) uvar[ch] = ss / ((double)n * hw - 1);
    }
}

typedef struct bn_user {
    int n, c, hw;
    double eps;
    /* backward operands */
    const float *x, *gamma, *mean, *invstd, *dy;
} bn_user;

/* Training-mode forward on packed p = [x (n*c*hw), gamma (c), beta (c)]. */
static void fwd_bn_d(void *user, const double *p, double *y)
{
    bn_user *u = user;
    const int n = u->n, c = u->c, hw = u->hw;
    const double *x = p, *gamma = p + (size_t)n * c * hw, *beta = gamma + c;
    double mean[16], var[16];
    ref_stats(n, c, hw, x, mean, var, NULL);
    for (int k = 0; k < n; k++)
        for (int ch = 0; ch < c; ch++)
            for (int i = 0; i < hw; i++)
                AT(y, k, ch, i) = gamma[ch] * (AT(x, k, ch, i) - mean[ch]) / sqrt(var[ch] + u->eps) + beta[ch];
}

/* Packed gradient [dx, dgamma, dbeta]. */
static void bwd_bn(void *user, float *g)
{
    bn_user *u = user;
    const size_t nx = (size_t)u->n * u->c * u->hw;
    aibox_bn_bwd(u->n, u->c, u->hw, u->x, u->gamma, u->mean, u->invstd, u->dy, g, g + nx, g + nx + u->c);
}

/* Same, with dx NULL: only the parameter gradients (packed after a dummy
 * dx region that must stay untouched, checked by the caller). */
static void bwd_bn_params(void *user, float *g)
{
    bn_user *u = user;
    aibox_bn_bwd(u->n, u->c, u->hw, u->x, u->gamma, u->mean, u->invstd, u->dy, NULL, g, g + u->c);
}

/* ------------------------------------------------------------ tests */
static void check_train(int n, int c, int hw, float eps, float momentum, uint64_t seed)
{
    assert_true(c <= 16);
    const size_t nx = (size_t)n * c * hw, np = nx + 2 * (size_t)c;
    aibox_rng rng;
    aibox_rng_seed(&rng, seed);
    float *p = aibox_test_floats(np), *y = aibox_test_floats(nx), *dy = aibox_test_floats(nx);
    float *x = p, *gamma = p + nx, *beta = gamma + c;
    /* per-channel offsets and scales, so means and variances differ */
    for (int k = 0; k < n; k++)
        for (int ch = 0; ch < c; ch++)
            for (int i = 0; i < hw; i++)
                AT(x, k, ch, i) = (float)(ch - 1.5) * 2.0f + (0.5f + (float)ch) * (2 * aibox_rng_uniform(&rng) - 1);
    aibox_test_fill_uniform(&rng, gamma, (size_t)c, 0.5f, 2.0f);
    aibox_test_fill_uniform(&rng, beta, (size_t)c, -1.0f, 1.0f);
    float save_mean[16], save_invstd[16], run_mean[16], run_var[16];
    double rm0[16], rv0[16];
    for (int ch = 0; ch < c; ch++) {
        run_mean[ch] = (float)(aibox_rng_uniform(&rng) - 0.5);
        run_var[ch] = 0.5f + aibox_rng_uniform(&rng);
        rm0[ch] = run_mean[ch];
        rv0[ch] = run_var[ch];
    }
    aibox_bn_fwd_train(n, c, hw, eps, momentum, x, gamma, beta, y, save_mean, save_invstd, run_mean, run_var);

    double *pd = aibox_test_doubles(np), *yd = aibox_test_doubles(nx), *r = aibox_test_doubles(nx);
    double *g = aibox_test_doubles(np);
    aibox_test_f2d(p, pd, np);
    bn_user u = {n, c, hw, eps, x, gamma, save_mean, save_invstd, dy};
    fwd_bn_d(&u, pd, yd);
    char what[128];
    snprintf(what, sizeof what, "bn train fwd n%d c%d hw%d", n, c, hw);
    AIBOX_TEST_CLOSE(what, y, yd, nx, 2e-6, 1e-5);

    double mean[16], var[16], uvar[16], invstd[16], rm[16], rv[16];
    ref_stats(n, c, hw, pd, mean, var, uvar);
    for (int ch = 0; ch < c; ch++) {
        invstd[ch] = 1.0 / sqrt(var[ch] + (double)eps);
        rm[ch] = (1.0 - momentum) * rm0[ch] + (double)momentum * mean[ch];
        rv[ch] = (1.0 - momentum) * rv0[ch] + (double)momentum * uvar[ch];
    }
    AIBOX_TEST_CLOSE("bn saved mean", save_mean, mean, (size_t)c, 1e-7, 1e-6);
    AIBOX_TEST_CLOSE("bn saved 1/std", save_invstd, invstd, (size_t)c, 1e-7, 1e-6);
    AIBOX_TEST_CLOSE("bn running mean", run_mean, rm, (size_t)c, 1e-7, 1e-6);
    AIBOX_TEST_CLOSE("bn running variance (unbiased batch variance)", run_var, rv, (size_t)c, 1e-7, 1e-6);

    /* backward: [dx, dgamma, dbeta] against differences of the double forward */
    aibox_test_fill_uniform(&rng, dy, nx, -1, 1);
    aibox_test_f2d(dy, r, nx);
    aibox_test_numgrad_d(fwd_bn_d, &u, pd, np, r, nx, 1e-4, g);
    snprintf(what, sizeof what, "bn bwd [dx, dgamma, dbeta] n%d c%d hw%d", n, c, hw);
    assert_true(aibox_test_bwd_accumulates(what, bwd_bn, &u, np, g, 2e-6, 1e-5, seed + 1));
    /* dx NULL: parameter gradients alone */
    snprintf(what, sizeof what, "bn bwd [dgamma, dbeta], dx NULL, n%d c%d hw%d", n, c, hw);
    assert_true(aibox_test_bwd_accumulates(what, bwd_bn_params, &u, 2 * (size_t)c, g + nx, 2e-6, 1e-5, seed + 2));

    free(p), free(y), free(dy), free(pd), free(yd), free(r), free(g);
}

static void test_bn_train(void **state)
{
    (void)state;
    check_train(3, 4, 5 * 7, 1e-5f, 0.1f, 41); /* odd plane, batch 3 */
    check_train(2, 3, 1, 1e-3f, 0.01f, 42);    /* after a dense layer: statistics over the batch only */
    check_train(1, 2, 3 * 3, 1e-5f, 0.5f, 43); /* batch 1, statistics over the plane */
    check_train(5, 1, 2, 0.1f, 1.0f, 44);      /* momentum 1: running stats become the batch's */
}

static void test_bn_known_values(void **state)
{
    (void)state;
    /* n 2, c 1, hw 2, x = 1 2 | 3 4: mean 2.5, biased variance 1.25,
     * unbiased 5/3. Running mean 0 -> 0.1*2.5 = 0.25; running variance
     * 1 -> 0.9 + 0.1*5/3 = 1.0666667. eps 0: y = (x - 2.5)/sqrt(1.25). */
    const float x[4] = {1, 2, 3, 4}, gamma = 1, beta = 0;
    float y[4], m, is, rm = 0, rv = 1;
    aibox_bn_fwd_train(2, 1, 2, 0.0f, 0.1f, x, &gamma, &beta, y, &m, &is, &rm, &rv);
    AIBOX_TEST_CLOSE1("known mean", m, 2.5, 0, 1e-7);
    AIBOX_TEST_CLOSE1("known 1/std", is, 0.894427191, 0, 1e-6);
    AIBOX_TEST_CLOSE1("known running mean", rm, 0.25, 0, 1e-7);
    AIBOX_TEST_CLOSE1("known running var", rv, 1.0666666667, 0, 1e-6);
    const double want[4] = {-1.341640786, -0.447213595, 0.447213595, 1.341640786};
    AIBOX_TEST_CLOSE("known y", y, want, 4, 0, 1e-6);
}

static void test_bn_no_affine_no_running(void **state)
{
    (void)state;
    /* gamma/beta NULL mean 1/0; save and running pointers may be NULL */
    const int n = 2, c = 2, hw = 3;
    const float x[12] = {0.5f, -1, 2, 3, 1, -4, 0, 0.25f, 7, -2, 2.5f, 1};
    float y[12];
    double xd[12], p[16], yd[12];
    aibox_test_f2d(x, xd, 12);
    memcpy(p, xd, sizeof xd);
    p[12] = p[13] = 1;
    p[14] = p[15] = 0;
    bn_user u = {n, c, hw, 1e-5, NULL, NULL, NULL, NULL, NULL};
    fwd_bn_d(&u, p, yd);
    aibox_bn_fwd_train(n, c, hw, 1e-5f, 0.1f, x, NULL, NULL, y, NULL, NULL, NULL, NULL);
    AIBOX_TEST_CLOSE("bn without affine", y, yd, 12, 2e-6, 1e-5);
}

static void test_bn_large_count(void **state)
{
    (void)state;
    /* 4 x 2 x 65536 values of 1000 + U(-1, 1): a float running sum over a
     * channel (2^18 values) would be off by far more than the spread */
    const int n = 4, c = 2, hw = 65536;
    const size_t nx = (size_t)n * c * hw;
    aibox_rng rng;
    aibox_rng_seed(&rng, 45);
    float *x = aibox_test_floats(nx), *y = aibox_test_floats(nx);
    double *xd = aibox_test_doubles(nx);
    aibox_test_fill_uniform(&rng, x, nx, 999.0f, 1001.0f);
    aibox_test_f2d(x, xd, nx);
    double mean[2], var[2], uvar[2], invstd[2];
    ref_stats(n, c, hw, xd, mean, var, uvar);
    for (int ch = 0; ch < c; ch++) invstd[ch] = 1.0 / sqrt(var[ch] + 1e-5);
    float m[2], is[2], rm[2] = {0, 0}, rv[2] = {1, 1};
    aibox_bn_fwd_train(n, c, hw, 1e-5f, 0.1f, x, NULL, NULL, y, m, is, rm, rv);
    AIBOX_TEST_CLOSE("large-count mean", m, mean, 2, 1e-4, 0);
    AIBOX_TEST_CLOSE("large-count 1/std", is, invstd, 2, 0, 1e-5);
    /* and the outputs are still standardised: mean ~0, variance ~1 */
    for (int ch = 0; ch < c; ch++) {
        double s = 0, ss = 0;
        for (int k = 0; k < n; k++)
            for (int i = 0; i < hw; i++) s += AT(y, k, ch, i);
        s /= (double)n * hw;
        for (int k = 0; k < n; k++)
            for (int i = 0; i < hw; i++) ss += (AT(y, k, ch, i) - s) * (AT(y, k, ch, i) - s);
        ss /= (double)n * hw;
        AIBOX_TEST_CLOSE1("large-count output mean", s, 0, 1e-3, 0);
        AIBOX_TEST_CLOSE1("large-count output variance", ss, var[ch] / (var[ch] + 1e-5), 0, 1e-5);
    }
    free(x), free(y), free(xd);
}

static void test_bn_infer(void **state)
{
    (void)state;
    const int n = 3, c = 5, hw = 11;
    const size_t nx = (size_t)n * c * hw;
    const float eps = 1e-3f;
    aibox_rng rng;
    aibox_rng_seed(&rng, 46);
    float *x = aibox_test_floats(nx), *y = aibox_test_floats(nx);
    double *yd = aibox_test_doubles(nx);
    float gamma[5], beta[5], rm[5], rv[5];
    aibox_test_fill_uniform(&rng, x, nx, -3, 3);
    aibox_test_fill_uniform(&rng, gamma, 5, 0.5f, 2);
    aibox_test_fill_uniform(&rng, beta, 5, -1, 1);
    aibox_test_fill_uniform(&rng, rm, 5, -1, 1);
    aibox_test_fill_uniform(&rng, rv, 5, 0.1f, 3);
    for (int k = 0; k < n; k++)
        for (int ch = 0; ch < c; ch++)
            for (int i = 0; i < hw; i++)
                AT(yd, k, ch, i) =
                    (AT(x, k, ch, i) - (double)rm[ch]) / sqrt((double)rv[ch] + eps) * gamma[ch] + beta[ch];
    aibox_bn_fwd_infer(n, c, hw, eps, x, gamma, beta, rm, rv, y);
    AIBOX_TEST_CLOSE("bn infer fwd", y, yd, nx, 2e-6, 1e-5);
    free(x), free(y), free(yd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bn_train),
        cmocka_unit_test(test_bn_known_values),
        cmocka_unit_test(test_bn_no_affine_no_running),
        cmocka_unit_test(test_bn_large_count),
        cmocka_unit_test(test_bn_infer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

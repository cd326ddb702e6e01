/* Loss kernels against naive double-precision references and central finite
 * differences of those references (L is the loss itself: one output, r = 1).
 *
 * Tolerances (|got - want| <= atol + rtol*|want|):
 *  - loss values: atol 1e-7, rtol 1e-6 (sums in double, one final rounding
 *    to float).
 *  - gradients: atol 1e-7, rtol 1e-5 against central differences, step 1e-4
 *    (truncation ~h^2 * |f'''| < 1e-8; the values are O(1/count)).
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

typedef struct loss_user {
    int n, k;
    size_t count;
    const int *labels;
    const double *weights; /* NULL: 1 */
    const double *targets;
} loss_user;

/* ------------------------------------------------------------ references */
/* -log softmax(x)[y] = log(sum_j exp(x_j - x_y)), summed in double with the
 * largest difference factored out (|x| up to 1e3 in the tests). */
static void ref_ce(void *user, const double *x, double *loss)
{
    loss_user *u = user;
    double total = 0;
    for (int i = 0; i < u->n; i++) {
        const double *xi = x + (size_t)i * u->k;
        const int y = u->labels[i];
        double m = -INFINITY;
        for (int j = 0; j < u->k; j++) m = fmax(m, xi[j] - xi[y]);
        double s = 0;
        for (int j = 0; j < u->k; j++) s += exp(xi[j] - xi[y] - m);
        const double nll = m + log(s);
        total += (u->weights ? u->weights[y] : 1.0) * nll;
    }
    *loss = total / u->n;
}

/* -(t log sigma(x) + (1-t) log(1 - sigma(x))) with log sigma(x) =
 * -log1p(exp(-x)) and log(1 - sigma(x)) = -log1p(exp(x)), valid in double
 * for |x| < 700. */
static void ref_bce(void *user, const double *x, double *loss)
{
    loss_user *u = user;
    double total = 0;
    for (size_t i = 0; i < u->count; i++) {
        const double t = u->targets[i];
        total += t * log1p(exp(-x[i])) + (1 - t) * log1p(exp(x[i]));
    }
    *loss = total / (double)u->count;
}

static void ref_mse(void *user, const double *x, double *loss)
{
    loss_user *u = user;
    double total = 0;
    for (size_t i = 0; i < u->count; i++) total += (x[i] - u->targets[i]) * (x[i] - u->targets[i]);
    *loss = total / (double)u->count;
}

/* ------------------------------------------------------------ softmax CE */
static void check_ce(int n, int k, const float *wf, float lo, float hi, uint64_t seed)
{
    const size_t count = (size_t)n * k;
    aibox_rng rng;
    aibox_rng_seed(&rng, seed);
    float *x = aibox_test_floats(count), *dx = aibox_test_floats(count);
    double *xd = aibox_test_doubles(count), *g = aibox_test_doubles(count), wd[16];
    int *labels = aibox_test_malloc((size_t)n * sizeof *labels);
    assert_true(k <= 16);
    aibox_test_fill_uniform(&rng, x, count, lo, hi);
    for (int i = 0; i < n; i++) labels[i] = (int)aibox_rng_below(&rng, (uint32_t)k);
    if (wf)
        for (int j = 0; j < k; j++) wd[j] = wf[j];
    aibox_test_f2d(x, xd, count);
    loss_user u = {.n = n, .k = k, .labels = labels, .weights = wf ? wd : NULL};
    double want;
    ref_ce(&u, xd, &want);
    /* dx is written, not accumulated: start from garbage */
    for (size_t i = 0; i < count; i++) dx[i] = 123.0f;
    const float got = aibox_softmax_ce(n, k, x, labels, wf, dx);
    char what[128];
    snprintf(what, sizeof what, "softmax CE loss n%d k%d weights %s [%g, %g)", n, k, wf ? "yes" : "no", lo, hi);
    AIBOX_TEST_CLOSE1(what, got, want, 1e-7, 1e-6);
    const double one = 1.0;
    aibox_test_numgrad_d(ref_ce, &u, xd, count, &one, 1, 1e-4, g);
    snprintf(what, sizeof what, "softmax CE grad n%d k%d weights %s", n, k, wf ? "yes" : "no");
    AIBOX_TEST_CLOSE(what, dx, g, count, 1e-7, 1e-5);
    /* dx NULL: the same loss */
    AIBOX_TEST_CLOSE1("softmax CE loss without gradient", aibox_softmax_ce(n, k, x, labels, wf, NULL), want, 1e-7,
                      1e-6);
    free(x), free(dx), free(xd), free(g), free(labels);
}

static void test_softmax_ce(void **state)
{
    (void)state;
    const float w4[4] = {0.5f, 2.0f, 1.0f, 3.0f};
    check_ce(5, 4, NULL, -3, 3, 101);
    check_ce(5, 4, w4, -3, 3, 102);
    check_ce(7, 2, NULL, -5, 5, 103);  /* binary as 2-class softmax */
    check_ce(1, 10, NULL, -2, 2, 104); /* batch 1 */
    check_ce(3, 4, w4, -1000, 1000, 105); /* no overflow: log-sum-exp */
}

static void test_softmax_ce_known_values(void **state)
{
    (void)state;
    /* two equal logits: -log(1/2) = ln 2 per sample. Keras class_weight
     * semantics: loss = sum_i w[y_i] * nll_i / n, so labels {0, 1} with
     * weights {2, 0.5} give (2 ln2 + 0.5 ln2)/2 = 1.25 ln2 (PyTorch's
     * weighted mean would divide by 2.5 instead: ln2). */
    const float x[4] = {0, 0, 0, 0}, w[2] = {2.0f, 0.5f};
    const int labels[2] = {0, 1};
    float dx[4];
    const float loss = aibox_softmax_ce(2, 2, x, labels, w, dx);
    AIBOX_TEST_CLOSE1("CE known loss", loss, 1.25 * log(2.0), 0, 1e-6);
    /* dx_i = w[y_i] * (softmax - onehot) / n: sample 0: 2*(0.5-1)/2 = -0.5,
     * 2*0.5/2 = 0.5; sample 1: 0.5*0.5/2 = 0.125, 0.5*(0.5-1)/2 = -0.125 */
    const double want[4] = {-0.5, 0.5, 0.125, -0.125};
    AIBOX_TEST_CLOSE("CE known gradient", dx, want, 4, 0, 1e-6);
}

static void test_softmax_ce_bad_label(void **state)
{
    (void)state;
    /* documented: a label outside [0, k) contributes neither loss nor
     * gradient, but still counts in n */
    const float x[6] = {1, 2, 3, 0.5f, -1, 2};
    const int labels[2] = {7, 2};
    float dx[6];
    for (int i = 0; i < 6; i++) dx[i] = 9.0f;
    const float loss = aibox_softmax_ce(2, 3, x, labels, NULL, dx);
    double s = exp(0.5) + exp(-1.0) + exp(2.0);
    AIBOX_TEST_CLOSE1("CE loss with an invalid label", loss, (log(s) - 2.0) / 2, 1e-7, 1e-6);
    assert_true(dx[0] == 0.0f && dx[1] == 0.0f && dx[2] == 0.0f);
    const double want[3] = {exp(0.5) / s / 2, exp(-1.0) / s / 2, (exp(2.0) / s - 1) / 2};
    AIBOX_TEST_CLOSE("CE gradient beside an invalid label", dx + 3, want, 3, 1e-7, 1e-6);
}

/* ------------------------------------------------------------ BCE, MSE */
static void check_elementwise_loss(const char *name, float (*kernel)(size_t, const float *, const float *, float *),
                                   void (*ref)(void *, const double *, double *), size_t count, float lo, float hi,
                                   float tlo, float thi, uint64_t seed)
{
    aibox_rng rng;
    aibox_rng_seed(&rng, seed);
    float *x = aibox_test_floats(count), *t = aibox_test_floats(count), *dx = aibox_test_floats(count);
    double *xd = aibox_test_doubles(count), *td = aibox_test_doubles(count), *g = aibox_test_doubles(count);
    aibox_test_fill_uniform(&rng, x, count, lo, hi);
    aibox_test_fill_uniform(&rng, t, count, tlo, thi);
    aibox_test_f2d(x, xd, count);
    aibox_test_f2d(t, td, count);
    loss_user u = {.count = count, .targets = td};
    double want;
    ref(&u, xd, &want);
    for (size_t i = 0; i < count; i++) dx[i] = -77.0f; /* written, not accumulated */
    const float got = kernel(count, x, t, dx);
    char what[128];
    snprintf(what, sizeof what, "%s loss, %zu elements in [%g, %g)", name, count, lo, hi);
    AIBOX_TEST_CLOSE1(what, got, want, 1e-7, 1e-6);
    const double one = 1.0;
    aibox_test_numgrad_d(ref, &u, xd, count, &one, 1, 1e-4, g);
    snprintf(what, sizeof what, "%s grad, %zu elements", name, count);
    AIBOX_TEST_CLOSE(what, dx, g, count, 1e-7, 1e-5);
    AIBOX_TEST_CLOSE1("loss without gradient", kernel(count, x, t, NULL), want, 1e-7, 1e-6);
    free(x), free(t), free(dx), free(xd), free(td), free(g);
}

static void test_sigmoid_bce(void **state)
{
    (void)state;
    check_elementwise_loss("BCE", aibox_sigmoid_bce, ref_bce, 37, -8, 8, 0, 1, 111);   /* soft targets */
    check_elementwise_loss("BCE", aibox_sigmoid_bce, ref_bce, 64, -3, 3, 1, 1, 112);   /* all positive */
    check_elementwise_loss("BCE", aibox_sigmoid_bce, ref_bce, 5, -300, 300, 0, 1, 113); /* no overflow */
}

static void test_sigmoid_bce_extremes(void **state)
{
    (void)state;
    /* confident and wrong: x = +-1000 against the opposite target costs
     * 1000 each; confident and right costs ~exp(-1000). exp(1000) overflows
     * even in double, so only an overflow-free form gets this right. */
    const float x[4] = {1000, -1000, 1000, -1000}, t[4] = {0, 1, 1, 0};
    float dx[4];
    const float loss = aibox_sigmoid_bce(4, x, t, dx);
    AIBOX_TEST_CLOSE1("BCE extremes", loss, 2000.0 / 4, 0, 1e-6);
    const double want[4] = {0.25, -0.25, 0, 0};
    AIBOX_TEST_CLOSE("BCE extreme gradients", dx, want, 4, 1e-30, 1e-6);
}

static void test_mse(void **state)
{
    (void)state;
    check_elementwise_loss("MSE", aibox_mse, ref_mse, 29, -2, 2, -1, 1, 121);
    check_elementwise_loss("MSE", aibox_mse, ref_mse, 1, -2, 2, -1, 1, 122);
    /* known: y = {1, 2, 3}, t = {0, 2, 5}: (1 + 0 + 4)/3; dx = 2(y-t)/3 */
    const float y[3] = {1, 2, 3}, t[3] = {0, 2, 5};
    float dx[3];
    AIBOX_TEST_CLOSE1("MSE known", aibox_mse(3, y, t, dx), 5.0 / 3, 0, 1e-6);
    const double want[3] = {2.0 / 3, 0, -4.0 / 3};
    AIBOX_TEST_CLOSE("MSE known gradient", dx, want, 3, 0, 1e-6);
}

static void test_empty(void **state)
{
    (void)state;
    /* documented: an empty batch has loss 0 (no division by zero) */
    float dummy = 0;
    int label = 0;
    assert_true(aibox_softmax_ce(0, 3, &dummy, &label, NULL, &dummy) == 0.0f);
    assert_true(aibox_sigmoid_bce(0, &dummy, &dummy, &dummy) == 0.0f);
    assert_true(aibox_mse(0, &dummy, &dummy, &dummy) == 0.0f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_softmax_ce),
        cmocka_unit_test(test_softmax_ce_known_values),
        cmocka_unit_test(test_softmax_ce_bad_label),
        cmocka_unit_test(test_sigmoid_bce),
        cmocka_unit_test(test_sigmoid_bce_extremes),
        cmocka_unit_test(test_mse),
        cmocka_unit_test(test_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

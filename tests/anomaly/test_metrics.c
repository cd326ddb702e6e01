/* Evaluation metrics and regions against brute-force references written
 * independently of the library (no sorting, no flood fill):
 *  - AUROC: every positive-negative pair in double (O(n^2)); ties count 1/2.
 *    Tolerance 1e-12 absolute (the library counts in integers, the
 *    reference sums halves in double: both exact here). A 4-million-sample
 *    case with 1000 score levels checks against per-level counts (exact).
 *  - F1 at a threshold: counts turned into precision and recall, F1 = 2PR/(P+R),
 *    tolerance 1e-12. Best F1: every distinct score tried as a threshold,
 *    F1 as exact fractions; the threshold must be identical, F1 within 1e-12.
 *  - AUPRO: regions by union-find (8-neighbours, per image), then for every
 *    distinct threshold FPR and mean per-region overlap counted from scratch,
 *    the curve (0,0) .. (1,1) integrated MVTec-style (bisect, interpolate at
 *    the limit); tolerance 1e-9 absolute. Hand-computed cases are exact to 1e-12.
 *  - Regions: exact (counts, areas, boxes, peaks), and against union-find.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "aibox.h"
#include "common/check.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ------------------------------------------------------------------ references */

static double auroc_pairs(const float *s, const uint8_t *l, size_t n)
{
    double u = 0, np = 0, nn = 0;
    for (size_t i = 0; i < n; i++) {
        if (l[i]) np += 1;
        else nn += 1;
    }
    if (np == 0 || nn == 0) return NAN;
    for (size_t i = 0; i < n; i++) {
        if (!l[i]) continue;
        for (size_t j = 0; j < n; j++) {
            if (l[j]) continue;
            if ((double)s[i] > (double)s[j]) u += 1;
            else if ((double)s[i] == (double)s[j]) u += 0.5;
        }
    }
    return u / (np * nn);
}

static void counts_at(const float *s, const uint8_t *l, size_t n, float t, long *tp, long *fp, long *fn)
{
    *tp = *fp = *fn = 0;
    for (size_t i = 0; i < n; i++) {
        int pred = s[i] >= t;
        if (l[i] && pred) ++*tp;
        else if (l[i]) ++*fn;
        else if (pred) ++*fp;
    }
}

static double f1_ref(const float *s, const uint8_t *l, size_t n, float t)
{
    long tp, fp, fn;
    counts_at(s, l, n, t, &tp, &fp, &fn);
    if (tp == 0) return 0.0; /* precision or recall 0 (or undefined): F1 0 */
    double p = (double)tp / (double)(tp + fp), r = (double)tp / (double)(tp + fn);
    return 2 * p * r / (p + r);
}

/* Best threshold by trying every score; ties (exact fractions) to the lower threshold. */
static void f1_best_ref(const float *s, const uint8_t *l, size_t n, float *thr, double *f1)
{
    long bnum = -1, bden = 1;
    float bt = 0;
    for (size_t i = 0; i < n; i++) {
        long tp, fp, fn;
        counts_at(s, l, n, s[i], &tp, &fp, &fn);
        long num = 2 * tp, den = 2 * tp + fp + fn;
        /* better, or equal with a lower threshold */
        long lhs = num * bden, rhs = bnum * den;
        if (lhs > rhs || (lhs == rhs && s[i] < bt)) bnum = num, bden = den, bt = s[i];
    }
    *thr = bt;
    *f1 = (double)bnum / (double)bden;
}

/* Union-find labelling of mask != 0 with 8-neighbours; labels 1..R (0 background). */
static int uf_find(int *p, int i)
{
    while (p[i] != i) i = p[i] = p[p[i]];
    return i;
}

static int label_uf(const uint8_t *fg, int w, int h, int *lab)
{
    int n = w * h, *par = malloc(sizeof(int) * (size_t)n), *id = malloc(sizeof(int) * (size_t)n);
    assert_non_null(par);
    assert_non_null(id);
    for (int i = 0; i < n; i++) par[i] = i;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            if (!fg[y * w + x]) continue;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int ny = y + dy, nx = x + dx;
                    if (ny < 0 || ny >= h || nx < 0 || nx >= w || !fg[ny * w + nx]) continue;
                    int a = uf_find(par, y * w + x), b = uf_find(par, ny * w + nx);
                    if (a != b) par[a] = b;
                }
        }
    int r = 0;
    for (int i = 0; i < n; i++) id[i] = 0;
    for (int i = 0; i < n; i++) {
        if (!fg[i]) {
            lab[i] = 0;
            continue;
        }
        int root = uf_find(par, i);
        if (!id[root]) id[root] = ++r;
        lab[i] = id[root];
    }
    free(par), free(id);
    return r;
}

/* MVTec's trapezoid(x, y, x_max): bisect, interpolate at x_max, sum. */
static double trapezoid_limit(const double *x, const double *y, int n, double xmax)
{
    double area = 0, corr = 0;
    int present = 0;
    for (int i = 0; i < n; i++) present |= x[i] == xmax;
    if (!present) {
        int ins = 0;
        while (ins < n && x[ins] <= xmax) ins++; /* bisect_right */
        assert_true(ins > 0 && ins < n);
        double yi = y[ins - 1] + (y[ins] - y[ins - 1]) * (xmax - x[ins - 1]) / (x[ins] - x[ins - 1]);
        corr = 0.5 * (yi + y[ins - 1]) * (xmax - x[ins - 1]);
    }
    for (int i = 1; i < n && x[i] <= xmax; i++) area += 0.5 * (y[i] + y[i - 1]) * (x[i] - x[i - 1]);
    return area + corr;
}

static double aupro_ref(const float *maps, const uint8_t *masks, int n, int w, int h, double limit)
{
    const int plane = w * h, total = n * plane;
    int *lab = malloc(sizeof(int) * (size_t)total), nreg = 0;
    assert_non_null(lab);
    for (int i = 0; i < n; i++) {
        int r = label_uf(masks + (size_t)i * plane, w, h, lab + (size_t)i * plane);
        for (int k = 0; k < plane; k++)
            if (lab[i * plane + k]) lab[i * plane + k] += nreg; /* global region ids */
        nreg += r;
    }
    long *size = calloc((size_t)nreg + 1, sizeof(long)), *hit = calloc((size_t)nreg + 1, sizeof(long));
    long n0 = 0;
    for (int i = 0; i < total; i++) {
        if (lab[i]) size[lab[i]]++;
        else n0++;
    }
    /* distinct thresholds, descending */
    float *t = malloc(sizeof(float) * (size_t)total);
    int nt = 0;
    for (int i = 0; i < total; i++) {
        int seen = 0;
        for (int j = 0; j < nt && !seen; j++) seen = t[j] == maps[i];
        if (!seen) t[nt++] = maps[i];
    }
    for (int i = 0; i < nt; i++) /* selection sort, descending */
        for (int j = i + 1; j < nt; j++)
            if (t[j] > t[i]) {
                float s = t[i];
                t[i] = t[j], t[j] = s;
            }
    double *x = malloc(sizeof(double) * (size_t)(nt + 2)), *y = malloc(sizeof(double) * (size_t)(nt + 2));
    x[0] = 0, y[0] = 0;
    for (int k = 0; k < nt; k++) {
        long fp = 0;
        memset(hit, 0, sizeof(long) * ((size_t)nreg + 1));
        for (int i = 0; i < total; i++) {
            if (maps[i] < t[k]) continue;
            if (lab[i]) hit[lab[i]]++;
            else fp++;
        }
        double pro = 0;
        for (int r = 1; r <= nreg; r++) pro += (double)hit[r] / (double)size[r];
        x[k + 1] = (double)fp / (double)n0;
        y[k + 1] = pro / nreg;
    }
    x[nt + 1] = 1, y[nt + 1] = 1;
    double a = trapezoid_limit(x, y, nt + 2, limit) / limit;
    free(lab), free(size), free(hit), free(t), free(x), free(y);
    return a;
}

/* ------------------------------------------------------------------ AUROC */

static void test_auroc_random_and_ties(void **state)
{
    (void)state;
    aibox_rng rng;
    aibox_rng_seed(&rng, 11);
    const size_t n = 1500;
    float *s = aibox_test_floats(n);
    uint8_t *l = aibox_test_malloc(n);
    for (int round = 0; round < 6; round++) {
        int levels = round < 2 ? 0 : (round < 4 ? 4 : 37); /* 0: continuous */
        for (size_t i = 0; i < n; i++) {
            l[i] = aibox_rng_uniform(&rng) < (round & 1 ? 0.1f : 0.5f);
            float v = aibox_rng_uniform(&rng) + (l[i] ? 0.3f : 0.0f);
            s[i] = levels ? (float)(int)(v * (float)levels) : v;
        }
        /* labels given as 255 must act like 1 */
        if (round == 5)
            for (size_t i = 0; i < n; i++) l[i] *= 255;
        double want = auroc_pairs(s, l, n), got = aibox_metric_auroc(s, l, n);
        printf("  auroc round %d (%d levels): %.12f vs pairs %.12f\n", round, levels, got, want);
        AIBOX_TEST_CLOSE1("auroc", got, want, 1e-12, 0);
    }
    free(s), free(l);
}

static void test_auroc_hand(void **state)
{
    (void)state;
    const float s[] = {0.1f, 0.4f, 0.35f, 0.8f};
    const uint8_t l[] = {0, 0, 1, 1}; /* scikit-learn's example: 0.75 */
    AIBOX_TEST_CLOSE1("sklearn example", aibox_metric_auroc(s, l, 4), 0.75, 1e-15, 0);
    const float sep[] = {1, 2, 3, 4};
    const uint8_t up[] = {0, 0, 1, 1}, down[] = {1, 1, 0, 0};
    AIBOX_TEST_CLOSE1("perfect", aibox_metric_auroc(sep, up, 4), 1.0, 0, 0);
    AIBOX_TEST_CLOSE1("reversed", aibox_metric_auroc(sep, down, 4), 0.0, 0, 0);
    const float tie[] = {2, 2, 2, 2, 2};
    const uint8_t tl[] = {1, 0, 0, 1, 0};
    AIBOX_TEST_CLOSE1("all tied", aibox_metric_auroc(tie, tl, 5), 0.5, 0, 0);
    /* -0 and +0 tie; negative scores and infinities order as floats */
    const float z[] = {-0.0f, 0.0f, -1.0f, -INFINITY, INFINITY};
    const uint8_t zl[] = {1, 0, 0, 0, 1};
    /* pos -0: beats -1, -inf, ties +0 -> 2.5; pos +inf beats 3 -> 3; U = 5.5 / 6 */
    AIBOX_TEST_CLOSE1("signed zeros", aibox_metric_auroc(z, zl, 5), 5.5 / 6.0, 1e-15, 0);
}

static void test_auroc_nan_cases(void **state)
{
    (void)state;
    const float s[] = {0.1f, 0.2f, 0.3f};
    const uint8_t zeros[] = {0, 0, 0}, ones[] = {1, 1, 1}, mixed[] = {0, 1, 0};
    assert_true(isnan(aibox_metric_auroc(s, zeros, 3)));
    assert_true(isnan(aibox_metric_auroc(s, ones, 3)));
    assert_true(isnan(aibox_metric_auroc(s, mixed, 0)));
    assert_true(isnan(aibox_metric_auroc(NULL, mixed, 3)));
    assert_true(isnan(aibox_metric_auroc(s, NULL, 3)));
    const float withnan[] = {0.1f, NAN, 0.3f};
    assert_true(isnan(aibox_metric_auroc(withnan, mixed, 3)));
    assert_false(isnan(aibox_metric_auroc(s, mixed, 3)));
}

/* Millions of pixels: quantised scores (1000 levels) so that per-level counts
 * give the exact U without sorting; also times the call. */
static void test_auroc_large(void **state)
{
    (void)state;
    const size_t n = 4u << 20;
    const int levels = 1000;
    float *s = aibox_test_malloc(n * sizeof *s);
    uint8_t *l = aibox_test_malloc(n);
    double *c0 = aibox_test_doubles((size_t)levels), *c1 = aibox_test_doubles((size_t)levels);
    aibox_rng rng;
    aibox_rng_seed(&rng, 5);
    for (size_t i = 0; i < n; i++) {
        l[i] = aibox_rng_below(&rng, 100) < 3; /* ~3 % anomalous, as pixel masks */
        int q = (int)aibox_rng_below(&rng, (uint32_t)levels);
        if (l[i]) q = q + 150 < levels ? q + 150 : levels - 1;
        s[i] = (float)q * 0.001f - 0.25f;
        (l[i] ? c1 : c0)[q] += 1;
    }
    double u = 0, below = 0, np = 0, nn = 0;
    for (int q = 0; q < levels; q++) {
        u += c1[q] * (below + 0.5 * c0[q]);
        below += c0[q];
        np += c1[q], nn += c0[q];
    }
    double want = u / (np * nn), t = now_s();
    double got = aibox_metric_auroc(s, l, n);
    t = now_s() - t;
    printf("  auroc on %zu samples: %.12f (reference %.12f) in %.3f s\n", n, got, want, t);
    AIBOX_TEST_CLOSE1("auroc large", got, want, 1e-12, 0);
    free(s), free(l), free(c0), free(c1);
}

/* ------------------------------------------------------------------ F1 */

static void test_f1_at(void **state)
{
    (void)state;
    aibox_rng rng;
    aibox_rng_seed(&rng, 3);
    const size_t n = 400;
    float *s = aibox_test_floats(n);
    uint8_t *l = aibox_test_malloc(n);
    for (size_t i = 0; i < n; i++) {
        l[i] = aibox_rng_uniform(&rng) < 0.3f;
        s[i] = (float)(int)(10 * (aibox_rng_uniform(&rng) + 0.4f * l[i])) / 10;
    }
    const float ts[] = {-1.0f, 0.0f, 0.3f, 0.5f, 0.7f, 1.0f, 1.3f, 9.0f};
    for (size_t k = 0; k < sizeof ts / sizeof ts[0]; k++)
        AIBOX_TEST_CLOSE1("f1_at", aibox_metric_f1_at(s, l, n, ts[k]), f1_ref(s, l, n, ts[k]), 1e-12, 0);
    /* hand: TP 1 (0.9), FP 1 (0.8), FN 1 (0.2): F1 = 2 / 4 */
    const float hs[] = {0.9f, 0.8f, 0.2f, 0.1f};
    const uint8_t hl[] = {1, 0, 1, 0};
    AIBOX_TEST_CLOSE1("f1 hand", aibox_metric_f1_at(hs, hl, 4, 0.5f), 0.5, 1e-15, 0);
    AIBOX_TEST_CLOSE1("f1 inclusive", aibox_metric_f1_at(hs, hl, 4, 0.9f), 2.0 / 3.0, 1e-15, 0); /* >= */
    const uint8_t none[] = {0, 0, 0, 0};
    AIBOX_TEST_CLOSE1("nothing to find, nothing found", aibox_metric_f1_at(hs, none, 4, 5.0f), 0.0, 0, 0);
    assert_true(isnan(aibox_metric_f1_at(hs, hl, 4, NAN)));
    assert_true(isnan(aibox_metric_f1_at(NULL, hl, 4, 0.5f)));
    free(s), free(l);
}

static void test_f1_best(void **state)
{
    (void)state;
    aibox_error err = {0};
    float t;
    double f;
    /* equal F1 2/3 at 0.9 (TP 1, FN 1) and at 0.3 (TP 2, FP 2): the lower wins */
    const float hs[] = {0.9f, 0.5f, 0.4f, 0.3f};
    const uint8_t hl[] = {1, 0, 0, 1};
    assert_int_equal(aibox_metric_f1_best(hs, hl, 4, &t, &f, &err), AIBOX_OK);
    assert_true(t == 0.3f);
    AIBOX_TEST_CLOSE1("tie f1", f, 2.0 / 3.0, 1e-15, 0);

    aibox_rng rng;
    aibox_rng_seed(&rng, 8);
    const size_t n = 600;
    float *s = aibox_test_floats(n);
    uint8_t *l = aibox_test_malloc(n);
    for (int round = 0; round < 8; round++) {
        for (size_t i = 0; i < n; i++) {
            l[i] = aibox_rng_uniform(&rng) < (round < 4 ? 0.2f : 0.6f);
            float v = aibox_rng_normal(&rng) + (l[i] ? 1.0f : 0.0f);
            s[i] = round & 1 ? v : (float)(int)(v * 4) / 4; /* odd: continuous, even: ties */
        }
        float tr;
        double fr;
        f1_best_ref(s, l, n, &tr, &fr);
        assert_int_equal(aibox_metric_f1_best(s, l, n, &t, &f, &err), AIBOX_OK);
        if (t != tr) fail_msg("round %d: threshold %.9g, reference %.9g (F1 %.12f vs %.12f)", round, t, tr, f, fr);
        AIBOX_TEST_CLOSE1("best f1", f, fr, 1e-12, 0);
        AIBOX_TEST_CLOSE1("best f1 = f1 at it", f, aibox_metric_f1_at(s, l, n, t), 1e-15, 0);
    }
    /* refusals */
    const uint8_t none[] = {0, 0, 0, 0};
    assert_int_equal(aibox_metric_f1_best(hs, none, 4, &t, &f, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_metric_f1_best(hs, hl, 0, &t, &f, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_metric_f1_best(NULL, hl, 4, &t, &f, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_metric_f1_best(hs, hl, 4, NULL, &f, NULL), AIBOX_E_INVALID);
    const float withnan[] = {0.9f, NAN, 0.4f, 0.3f};
    assert_int_equal(aibox_metric_f1_best(withnan, hl, 4, &t, &f, &err), AIBOX_E_INVALID);
    printf("  refused as expected: %s\n", err.msg);
    free(s), free(l);
}

/* ------------------------------------------------------------------ AUPRO */

static void test_aupro_hand(void **state)
{
    (void)state;
    /* one 5x1 image: regions A = {0} (size 1), B = {2, 3} (size 2); normal 1, 4.
     * Points: .9 -> (0, .25), .8 -> (0, .75), .7 -> (.5, .75), .3 -> (.5, 1), .2 -> (1, 1). */
    const uint8_t m[] = {1, 0, 1, 1, 0};
    const float s[] = {0.8f, 0.7f, 0.9f, 0.3f, 0.2f};
    AIBOX_TEST_CLOSE1("hand L=.3", aibox_metric_aupro(s, m, 1, 5, 1, 0.3), 0.75, 1e-12, 0);
    AIBOX_TEST_CLOSE1("hand L=1", aibox_metric_aupro(s, m, 1, 5, 1, 1.0), 0.875, 1e-12, 0);
    AIBOX_TEST_CLOSE1("hand L=.75", aibox_metric_aupro(s, m, 1, 5, 1, 0.75), 0.625 / 0.75, 1e-12, 0);
    /* the defect pixel 3 tied with normal pixel 1 at .7: one point (.5, 1), so the
     * segment from (0, .75) is interpolated at .3: y = .9, area .2475 */
    const float st[] = {0.8f, 0.7f, 0.9f, 0.7f, 0.2f};
    AIBOX_TEST_CLOSE1("tied", aibox_metric_aupro(st, m, 1, 5, 1, 0.3), 0.2475 / 0.3, 1e-12, 0);
    /* images are labelled separately: img0 {1,2} and img1 {0} would join
     * diagonally in one 3x2 picture; PRO .25, .75 (not 1/3, 2/3) */
    const uint8_t m2[] = {0, 1, 1, 1, 0, 0};
    const float s2[] = {0.0f, 0.9f, 0.1f, 0.8f, 0.2f, 0.3f};
    AIBOX_TEST_CLOSE1("per image", aibox_metric_aupro(s2, m2, 2, 3, 1, 0.3), 0.75, 1e-12, 0);
}

static void blobs(aibox_rng *rng, uint8_t *mask, int w, int h, int count)
{
    memset(mask, 0, (size_t)w * h);
    for (int b = 0; b < count; b++) {
        int cx = (int)aibox_rng_below(rng, (uint32_t)w), cy = (int)aibox_rng_below(rng, (uint32_t)h);
        int rx = 1 + (int)aibox_rng_below(rng, 3), ry = 1 + (int)aibox_rng_below(rng, 3);
        for (int y = cy - ry; y <= cy + ry; y++)
            for (int x = cx - rx; x <= cx + rx; x++)
                if (x >= 0 && y >= 0 && x < w && y < h && (x - cx) * (x - cx) * ry * ry + (y - cy) * (y - cy) * rx * rx <= rx * rx * ry * ry)
                    mask[y * w + x] = 1;
    }
}

static void test_aupro_random(void **state)
{
    (void)state;
    aibox_rng rng;
    aibox_rng_seed(&rng, 21);
    const int n = 3, w = 17, h = 13, total = n * w * h;
    float *s = aibox_test_floats((size_t)total);
    uint8_t *m = aibox_test_malloc((size_t)total);
    const double limits[] = {0.3, 1.0, 0.05, 0.5};
    for (int round = 0; round < 8; round++) {
        for (int i = 0; i < n; i++) blobs(&rng, m + i * w * h, w, h, 2 + round % 3);
        for (int i = 0; i < total; i++) {
            float v = aibox_rng_uniform(&rng) + (m[i] ? 0.4f : 0.0f);
            s[i] = round & 1 ? v : (float)(int)(v * 20) / 20; /* even rounds: many ties */
        }
        double lim = limits[round % 4], want = aupro_ref(s, m, n, w, h, lim), got = aibox_metric_aupro(s, m, n, w, h, lim);
        printf("  aupro round %d (limit %.2f): %.12f vs brute force %.12f\n", round, lim, got, want);
        AIBOX_TEST_CLOSE1("aupro", got, want, 1e-9, 0);
    }
    free(s), free(m);
}

/* A perfect detector (every defect pixel above every normal one) gives 1, an
 * inverted one 0; at a size that exercises every radix pass. */
static void test_aupro_perfect(void **state)
{
    (void)state;
    aibox_rng rng;
    aibox_rng_seed(&rng, 4);
    const int n = 12, w = 256, h = 256;
    const size_t total = (size_t)n * w * h;
    float *s = aibox_test_malloc(total * sizeof *s);
    uint8_t *m = aibox_test_malloc(total);
    for (int i = 0; i < n; i++) blobs(&rng, m + (size_t)i * w * h, w, h, 40);
    for (size_t i = 0; i < total; i++) s[i] = aibox_rng_uniform(&rng) * 1000.0f + (m[i] ? 2000.0f : -1000.0f);
    double t = now_s(), a = aibox_metric_aupro(s, m, n, w, h, 0.3);
    t = now_s() - t;
    printf("  perfect detector on %d x %dx%d: %.15f in %.3f s\n", n, w, h, a, t);
    AIBOX_TEST_CLOSE1("perfect", a, 1.0, 1e-12, 0);
    for (size_t i = 0; i < total; i++) s[i] = -s[i];
    AIBOX_TEST_CLOSE1("inverted", aibox_metric_aupro(s, m, n, w, h, 0.3), 0.0, 1e-12, 0);
    free(s), free(m);
}

static void test_aupro_nan_cases(void **state)
{
    (void)state;
    const float s[] = {0.1f, 0.2f, 0.3f, 0.4f};
    const uint8_t none[] = {0, 0, 0, 0}, all[] = {1, 2, 3, 255}, some[] = {0, 1, 0, 0};
    assert_true(isnan(aibox_metric_aupro(s, none, 1, 2, 2, 0.3)));
    assert_true(isnan(aibox_metric_aupro(s, all, 1, 2, 2, 0.3)));
    assert_true(isnan(aibox_metric_aupro(s, some, 1, 2, 2, 0.0)));
    assert_true(isnan(aibox_metric_aupro(s, some, 1, 2, 2, 1.5)));
    assert_true(isnan(aibox_metric_aupro(s, some, 1, 2, 2, NAN)));
    assert_true(isnan(aibox_metric_aupro(s, some, 0, 2, 2, 0.3)));
    assert_true(isnan(aibox_metric_aupro(s, some, 1, 0, 2, 0.3)));
    assert_true(isnan(aibox_metric_aupro(NULL, some, 1, 2, 2, 0.3)));
    assert_true(isnan(aibox_metric_aupro(s, NULL, 1, 2, 2, 0.3)));
    const float withnan[] = {0.1f, NAN, 0.3f, 0.4f};
    assert_true(isnan(aibox_metric_aupro(withnan, some, 1, 2, 2, 0.3)));
    assert_false(isnan(aibox_metric_aupro(s, some, 1, 2, 2, 0.3)));
}

/* ------------------------------------------------------------------ regions */

static float *pattern(const char *const *rows, int w, int h)
{
    float *m = aibox_test_floats((size_t)w * h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) m[y * w + x] = rows[y][x] == '.' ? 0.0f : (float)(rows[y][x] - '0') / 10.0f;
    return m;
}

static void test_regions_patterns(void **state)
{
    (void)state;
    aibox_error err = {0};
    aibox_region r[8];
    int count = -1;
    /* two blobs; the diagonal-only pair at the right joins; border pixels count */
    const char *rows[] = {
        "55.......9",
        "55......9.",
        "........7.",
        "..3333....",
        "..3339....",
        "5........5",
    };
    float *m = pattern(rows, 10, 6);
    assert_int_equal(aibox_map_regions(m, 10, 6, 0.3f, r, 8, &count, &err), AIBOX_OK);
    assert_int_equal(count, 5);
    /* by area: the 8-pixel blob, the 2x2 corner, the 3-pixel diagonal, then the two single corners */
    assert_int_equal(r[0].area, 8);
    assert_int_equal(r[0].x, 2), assert_int_equal(r[0].y, 3), assert_int_equal(r[0].w, 4), assert_int_equal(r[0].h, 2);
    assert_true(r[0].peak == 0.9f);
    assert_int_equal(r[1].area, 4);
    assert_int_equal(r[1].x, 0), assert_int_equal(r[1].y, 0), assert_int_equal(r[1].w, 2), assert_int_equal(r[1].h, 2);
    assert_true(r[1].peak == 0.5f);
    assert_int_equal(r[2].area, 3);
    assert_int_equal(r[2].x, 8), assert_int_equal(r[2].y, 0), assert_int_equal(r[2].w, 2), assert_int_equal(r[2].h, 3);
    assert_true(r[2].peak == 0.9f);
    /* equal areas: raster order of their first pixel */
    assert_int_equal(r[3].area, 1), assert_int_equal(r[3].x, 0), assert_int_equal(r[3].y, 5);
    assert_int_equal(r[4].area, 1), assert_int_equal(r[4].x, 9), assert_int_equal(r[4].y, 5);
    /* the threshold is inclusive; above 0.3 the blob shrinks to its 9 */
    assert_int_equal(aibox_map_regions(m, 10, 6, 0.31f, r, 8, &count, &err), AIBOX_OK);
    assert_int_equal(count, 5); /* the 3s drop out: 2x2, diagonal, the blob's lone 9, two corners */
    assert_int_equal(r[0].area, 4), assert_int_equal(r[1].area, 3), assert_int_equal(r[2].area, 1);
    assert_int_equal(r[2].x, 5), assert_int_equal(r[2].y, 4); /* raster order: (5,4) before (0,5), (9,5) */
    /* more regions than room: the largest ones, the full count */
    aibox_region few[3];
    memset(few, 0x5a, sizeof few);
    assert_int_equal(aibox_map_regions(m, 10, 6, 0.3f, few, 2, &count, &err), AIBOX_OK);
    assert_int_equal(count, 5);
    assert_int_equal(few[0].area, 8), assert_int_equal(few[1].area, 4);
    const unsigned char *tail = (const unsigned char *)&few[2];
    for (size_t i = 0; i < sizeof few[2]; i++) assert_int_equal(tail[i], 0x5a); /* untouched */
    /* count only */
    assert_int_equal(aibox_map_regions(m, 10, 6, 0.3f, NULL, 0, &count, &err), AIBOX_OK);
    assert_int_equal(count, 5);
    /* nothing above: zero regions */
    assert_int_equal(aibox_map_regions(m, 10, 6, 2.0f, r, 8, &count, &err), AIBOX_OK);
    assert_int_equal(count, 0);
    /* a NaN pixel fails the threshold: foreground (was background, which hid it) */
    float was = m[3 * 10 + 4];
    m[3 * 10 + 4] = NAN;
    assert_int_equal(aibox_map_regions(m, 10, 6, 0.3f, r, 8, &count, &err), AIBOX_OK);
    assert_int_equal(count, was >= 0.3f ? 5 : 6);
    long total = 0, total_was = 0;
    for (int i = 0; i < count && i < 8; i++) total += r[i].area;
    m[3 * 10 + 4] = was;
    assert_int_equal(aibox_map_regions(m, 10, 6, 0.3f, r, 8, &count, &err), AIBOX_OK);
    for (int i = 0; i < count && i < 8; i++) total_was += r[i].area;
    assert_int_equal(total, total_was + (was >= 0.3f ? 0 : 1));
    free(m);
}

static void test_regions_vs_union_find(void **state)
{
    (void)state;
    aibox_rng rng;
    aibox_rng_seed(&rng, 77);
    const int w = 41, h = 29, np = w * h;
    float *m = aibox_test_floats((size_t)np);
    uint8_t *fg = aibox_test_malloc((size_t)np);
    int *lab = aibox_test_malloc(sizeof(int) * (size_t)np);
    aibox_region *r = aibox_test_malloc(sizeof(aibox_region) * (size_t)np);
    for (int round = 0; round < 5; round++) {
        float thr = 0.45f + 0.1f * (float)round;
        aibox_test_fill_uniform(&rng, m, (size_t)np, 0, 1);
        for (int i = 0; i < np; i++) fg[i] = m[i] >= thr;
        int want = label_uf(fg, w, h, lab), got = -1;
        long *area = calloc((size_t)want + 1, sizeof(long));
        float *peak = calloc((size_t)want + 1, sizeof(float));
        for (int i = 0; i < np; i++)
            if (lab[i]) area[lab[i]]++, peak[lab[i]] = fmaxf(peak[lab[i]], m[i]);
        aibox_error err = {0};
        assert_int_equal(aibox_map_regions(m, w, h, thr, r, np, &got, &err), AIBOX_OK);
        assert_int_equal(got, want);
        long sum = 0;
        for (int k = 0; k < got; k++) {
            sum += r[k].area;
            if (k) assert_true(r[k].area <= r[k - 1].area);
            /* its peak pixel lies in its box and names a region with that area and peak */
            int found = 0;
            for (int y = r[k].y; y < r[k].y + r[k].h && !found; y++)
                for (int x = r[k].x; x < r[k].x + r[k].w && !found; x++) {
                    int l = lab[y * w + x];
                    found = l && m[y * w + x] == r[k].peak && area[l] == r[k].area && peak[l] == r[k].peak;
                }
            assert_true(found);
        }
        long fgsum = 0;
        for (int i = 0; i < np; i++) fgsum += fg[i];
        assert_int_equal(sum, fgsum);
        printf("  threshold %.2f: %d regions (union-find %d), largest %ld\n", thr, got, want, got ? r[0].area : 0L);
        free(area), free(peak);
    }
    free(m), free(fg), free(lab), free(r);
}

/* One region covering 2000 x 2000 pixels, and a one-pixel-wide serpentine of
 * ~2 million pixels: a recursive fill would overflow the stack on either. */
static void test_regions_big(void **state)
{
    (void)state;
    const int w = 2000, h = 2000;
    float *m = aibox_test_malloc(sizeof(float) * (size_t)w * h);
    for (size_t i = 0; i < (size_t)w * h; i++) m[i] = 1.0f;
    m[(size_t)1234 * w + 567] = 3.0f;
    aibox_region r;
    int count = 0;
    aibox_error err = {0};
    double t = now_s();
    assert_int_equal(aibox_map_regions(m, w, h, 0.5f, &r, 1, &count, &err), AIBOX_OK);
    printf("  2000x2000 single region in %.3f s\n", now_s() - t);
    assert_int_equal(count, 1);
    assert_int_equal(r.area, (long)w * h);
    assert_int_equal(r.x, 0), assert_int_equal(r.y, 0), assert_int_equal(r.w, w), assert_int_equal(r.h, h);
    assert_true(r.peak == 3.0f);
    /* serpentine: even rows full, odd rows one pixel at alternating ends */
    long want = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int on = y % 2 == 0 || x == ((y / 2) % 2 ? 0 : w - 1);
            m[(size_t)y * w + x] = on ? 1.0f : 0.0f;
            want += on;
        }
    assert_int_equal(aibox_map_regions(m, w, h, 0.5f, &r, 1, &count, &err), AIBOX_OK);
    assert_int_equal(count, 1);
    assert_int_equal(r.area, want);
    free(m);
}

static void test_regions_bad_args(void **state)
{
    (void)state;
    float m[4] = {1, 0, 0, 1};
    aibox_region r[2];
    int count = 7;
    aibox_error err = {0};
    assert_int_equal(aibox_map_regions(NULL, 2, 2, 0.5f, r, 2, &count, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_map_regions(m, 2, 2, 0.5f, r, 2, NULL, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_map_regions(m, 0, 2, 0.5f, r, 2, &count, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_map_regions(m, 2, -1, 0.5f, r, 2, &count, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_map_regions(m, 2, 2, 0.5f, NULL, 2, &count, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_map_regions(m, 2, 2, 0.5f, r, -1, &count, NULL), AIBOX_E_INVALID);
    assert_int_equal(aibox_map_regions(m, 2, 2, NAN, r, 2, &count, &err), AIBOX_E_INVALID);
    printf("  refused as expected: %s\n", err.msg);
    assert_int_equal(aibox_map_regions(m, 2, 2, 0.5f, r, 2, &count, &err), AIBOX_OK);
    assert_int_equal(count, 1); /* diagonal pair */
    assert_int_equal(r[0].area, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auroc_hand),
        cmocka_unit_test(test_auroc_random_and_ties),
        cmocka_unit_test(test_auroc_nan_cases),
        cmocka_unit_test(test_auroc_large),
        cmocka_unit_test(test_f1_at),
        cmocka_unit_test(test_f1_best),
        cmocka_unit_test(test_aupro_hand),
        cmocka_unit_test(test_aupro_random),
        cmocka_unit_test(test_aupro_perfect),
        cmocka_unit_test(test_aupro_nan_cases),
        cmocka_unit_test(test_regions_patterns),
        cmocka_unit_test(test_regions_vs_union_find),
        cmocka_unit_test(test_regions_big),
        cmocka_unit_test(test_regions_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* PatchCore: the locally aware patch features and the memory bank against a
 * naive double reference (3x3 average with zero padding, bilinear upsampling
 * with align_corners = false, concatenation, channel averaging), nearest
 * neighbours, the re-weighted image score and the maps against brute force
 * in double, the greedy k-centre coreset against a plain double greedy (same
 * indices, with and without the projection), files and refusals. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <zlib.h>

#include "aibox.h"
#include "common/check.h"

#define S 64 /* input size: taps at stride 8 (8x8, 12 channels) and 16 (4x4, 16 channels) */
#define G 8
#define F 28

static char g_tmp[256];

/* A small random backbone with stages at strides 2, 4, 8, 16. */
static aibox_model *backbone(void) { return aibox_test_strided_backbone(S, (const int[4]){6, 8, 12, 16}, 3); }

static float *images(int n, uint64_t seed) { return aibox_test_normal_images(n, S, seed); }

/* PyTorch's bilinear source index (align_corners = false) for output i. */
static void src_index(int i, int in, int out, int *i0, int *i1, double *f)
{
    double s = (i + 0.5) * in / out - 0.5;
    if (s < 0) s = 0;
    *i0 = (int)s;
    *i1 = *i0 + 1 < in ? *i0 + 1 : in - 1;
    *f = s - *i0;
}

/* One image's patch features, G*G x F (or x dims after channel averaging), in double. */
static void features(const aibox_model *m, const float *x, int dims, double *out)
{
    aibox_ctx *c = NULL;
    aibox_error err;
    assert_int_equal(aibox_ctx_create(&c, m, &(aibox_ctx_opts){.height = S, .width = S}, &err), AIBOX_OK);
    assert_int_equal(aibox_ctx_infer(c, m, x, 1, &err), AIBOX_OK);
    double full[G * G * F];
    int base = 0;
    for (int s = 8; s <= 16; s *= 2) {
        int node = aibox_model_stride_node(m, s), cc, h, w;
        const float *a = aibox_ctx_node_output(c, node, &cc, &h, &w);
        double *pool = malloc(sizeof(double) * (size_t)cc * h * w);
        for (int ci = 0; ci < cc; ci++)
            for (int y = 0; y < h; y++)
                for (int xx = 0; xx < w; xx++) {
                    double sum = 0;
                    for (int dy = -1; dy <= 1; dy++)
                        for (int dx = -1; dx <= 1; dx++) {
                            int yy = y + dy, xq = xx + dx;
                            if (yy >= 0 && yy < h && xq >= 0 && xq < w) sum += a[(ci * h + yy) * w + xq];
                        }
                    pool[(ci * h + y) * w + xx] = sum / 9;
                }
        for (int ci = 0; ci < cc; ci++)
            for (int y = 0; y < G; y++)
                for (int xx = 0; xx < G; xx++) {
                    int y0, y1, x0, x1;
                    double fy, fx;
                    src_index(y, h, G, &y0, &y1, &fy);
                    src_index(xx, w, G, &x0, &x1, &fx);
                    const double *q = pool + (size_t)ci * h * w;
                    double v = (1 - fy) * ((1 - fx) * q[y0 * w + x0] + fx * q[y0 * w + x1]) +
                               fy * ((1 - fx) * q[y1 * w + x0] + fx * q[y1 * w + x1]);
                    full[(y * G + xx) * F + base + ci] = v;
                }
        base += cc;
        free(pool);
    }
    aibox_ctx_free(&c);
    if (!dims) {
        memcpy(out, full, sizeof full);
        return;
    }
    for (int p = 0; p < G * G; p++) /* adaptive average pooling over the channels, as torch */
        for (int i = 0; i < dims; i++) {
            int a = i * F / dims, b = ((i + 1) * F + dims - 1) / dims;
            double s = 0;
            for (int k = a; k < b; k++) s += full[p * F + k];
            out[p * dims + i] = s / (b - a);
        }
}

static aibox_patchcore *fit(const aibox_model *m, const aibox_patchcore_opts *o, const float *x, int n)
{
    aibox_patchcore_fit *f = NULL;
    aibox_patchcore *p = NULL;
    aibox_error err;
    aibox_status s = aibox_patchcore_fit_begin(&f, m, o, 3, 2, &err);
    if (s) print_message("%s\n", err.msg);
    assert_int_equal(s, AIBOX_OK);
    for (int done = 0, step = 1; done < n; done += step, step = step % 3 + 1) { /* uneven chunks */
        if (step > n - done) step = n - done;
        assert_int_equal(aibox_patchcore_fit_add(f, x + (size_t)done * 3 * S * S, step, &err), AIBOX_OK);
    }
    assert_int_equal(aibox_patchcore_fit_count(f), n);
    s = aibox_patchcore_fit_end(f, &p, &err);
    if (s) print_message("%s\n", err.msg);
    assert_int_equal(s, AIBOX_OK);
    aibox_patchcore *again = NULL;
    assert_int_equal(aibox_patchcore_fit_end(f, &again, &err), AIBOX_E_STATE); /* spent */
    aibox_patchcore_fit_free(&f);
    return p;
}

/* Brute-force scoring in double of one image's features against a bank:
 * per patch the nearest entry and its distance; the image score re-weighted
 * over b neighbours as Anomalib's PatchCore does. */
static double brute(const double *e, int D, const float *bank, long K, int b, double *dist, long *nn)
{
    int top = 0;
    for (int p = 0; p < G * G; p++) {
        double best = INFINITY;
        for (long k = 0; k < K; k++) {
            double d = 0;
            for (int c = 0; c < D; c++) d += (e[p * D + c] - bank[k * D + c]) * (e[p * D + c] - bank[k * D + c]);
            if (d < best) best = d, nn[p] = k;
        }
        dist[p] = sqrt(best);
        if (dist[p] > dist[top]) top = p;
    }
    if (b <= 1) return dist[top];
    /* the b nearest entries of the nearest entry, then a softmax of the patch's distances to them */
    double *dm = malloc(sizeof(double) * (size_t)K);
    long *order = malloc(sizeof(long) * (size_t)K);
    for (long k = 0; k < K; k++) {
        double d = 0;
        for (int c = 0; c < D; c++) {
            double t = (double)bank[k * D + c] - bank[nn[top] * D + c];
            d += t * t;
        }
        dm[k] = d, order[k] = k;
    }
    for (int i = 0; i < b; i++) /* selection sort of the b smallest, stable */
        for (long k = i + 1; k < K; k++)
            if (dm[order[k]] < dm[order[i]] || (dm[order[k]] == dm[order[i]] && order[k] < order[i])) {
                long t = order[i];
                order[i] = order[k], order[k] = t;
            }
    double den = 0, first = 0;
    for (int i = 0; i < b; i++) {
        double d = 0;
        for (int c = 0; c < D; c++) {
            double t = e[top * D + c] - bank[order[i] * D + c];
            d += t * t;
        }
        den += exp(sqrt(d));
        if (!i) first = exp(sqrt(d));
    }
    free(dm), free(order);
    return (1 - first / den) * dist[top];
}

static void check_scores(const aibox_model *m, const aibox_patchcore *p, const float *test, int nt, int dims, int b)
{
    int gw, gh, D;
    long K;
    aibox_patchcore_info(p, &gw, &gh, &D, &K, NULL, NULL);
    assert_true(gw == G && gh == G);
    aibox_patchcore_ctx *c = NULL;
    aibox_error err;
    assert_int_equal(aibox_patchcore_ctx_create(&c, p, nt, 2, &err), AIBOX_OK);
    float *grid = malloc(sizeof(float) * nt * G * G), *maps = malloc(sizeof(float) * nt * S * S);
    float *scores = malloc(sizeof(float) * nt);
    long *nn = malloc(sizeof(long) * nt * G * G);
    assert_int_equal(aibox_patchcore_score(c, test, nt, grid, maps, scores, nn, &err), AIBOX_OK);
    const float *bank = aibox_patchcore_bank(p);
    for (int t = 0; t < nt; t++) {
        double e[G * G * F], dist[G * G];
        long rn[G * G];
        features(m, test + (size_t)t * 3 * S * S, dims, e);
        double want = brute(e, D, bank, K, b, dist, rn);
        /* d^2 = |e|^2 + |m|^2 - 2 e.m in float: the error is relative to |e|^2, not to d^2 */
        AIBOX_TEST_CLOSE("patch distances", grid + t * G * G, dist, G * G, 5e-5, 5e-5);
        for (int q = 0; q < G * G; q++) { /* the same neighbour, or one as near within rounding */
            if (nn[t * G * G + q] == rn[q]) continue;
            double d = 0;
            for (int c2 = 0; c2 < D; c2++) {
                double u = e[q * D + c2] - bank[nn[t * G * G + q] * D + c2];
                d += u * u;
            }
            AIBOX_TEST_CLOSE1("distance to the other neighbour", sqrt(d), dist[q], 5e-5, 5e-5);
        }
        AIBOX_TEST_CLOSE1("image score", scores[t], want, 5e-5, 5e-5);
        /* the map: that grid resized and blurred (both tested against PyTorch in tests/anomaly) */
        float gf[G * G], mp[S * S];
        for (int q = 0; q < G * G; q++) gf[q] = (float)dist[q];
        assert_int_equal(aibox_map_resize(gf, G, G, mp, S, S, &err), AIBOX_OK);
        assert_int_equal(aibox_map_blur(mp, S, S, 4, &err), AIBOX_OK);
        AIBOX_TEST_CLOSE_FF("map", maps + t * S * S, mp, S * S, 5e-5, 5e-5);
    }
    free(grid), free(maps), free(scores), free(nn);
    aibox_patchcore_ctx_free(&c);
}

static void test_bank_and_scores_match_reference(void **state)
{
    (void)state;
    aibox_model *m = backbone();
    float *x = images(5, 11), *test = images(3, 12);
    for (int dims = 0; dims <= 10; dims += 10) {
        aibox_patchcore *p = fit(m, &(aibox_patchcore_opts){.coreset = 1, .dims = dims}, x, 5);
        int D;
        long K, images_n, patches;
        aibox_patchcore_info(p, NULL, NULL, &D, &K, &images_n, &patches);
        assert_int_equal(D, dims ? dims : F);
        assert_true(K == 5 * G * G && images_n == 5 && patches == K);
        /* coreset 1 keeps every patch in order: the bank is the features */
        double *want = malloc(sizeof(double) * 5 * G * G * F);
        for (int i = 0; i < 5; i++) features(m, x + (size_t)i * 3 * S * S, dims, want + (size_t)i * G * G * D);
        AIBOX_TEST_CLOSE("bank", aibox_patchcore_bank(p), want, (size_t)K * D, 1e-5, 1e-5);
        free(want);
        check_scores(m, p, test, 3, dims, 9);
        /* a fitted image scores 0 at every patch */
        aibox_patchcore_ctx *c = NULL;
        aibox_error err;
        float g[G * G], sc;
        assert_int_equal(aibox_patchcore_ctx_create(&c, p, 1, 1, &err), AIBOX_OK);
        assert_int_equal(aibox_patchcore_score(c, x + 3 * S * S * 2, 1, g, NULL, &sc, NULL, &err), AIBOX_OK);
        for (int q = 0; q < G * G; q++) assert_true(g[q] < 2e-2f);
        aibox_patchcore_ctx_free(&c);
        aibox_patchcore_free(&p);
    }
    /* a coreset: the scores are the brute force over whatever bank was chosen; b = 1 is the plain maximum */
    aibox_patchcore *p = fit(m, &(aibox_patchcore_opts){.coreset = 0.25, .neighbours = 3, .seed = 5}, x, 5);
    long K;
    aibox_patchcore_info(p, NULL, NULL, NULL, &K, NULL, NULL);
    assert_int_equal(K, 80); /* round(0.25 * 320) */
    check_scores(m, p, test, 3, 0, 3);
    aibox_patchcore_free(&p);
    p = fit(m, &(aibox_patchcore_opts){.coreset = 0.1, .neighbours = 1}, x, 5);
    check_scores(m, p, test, 2, 0, 1);
    aibox_patchcore_free(&p);
    free(x), free(test);
    aibox_model_free(&m);
}

/* Plain greedy k-centre in double: the first centre from the seed as the
 * library draws it, then the farthest point (lowest index on ties). */
static void greedy(const double *y, long n, int k, long kc, uint64_t seed, long *idx)
{
    double *mind = malloc(sizeof(double) * (size_t)n);
    for (long i = 0; i < n; i++) mind[i] = INFINITY;
    aibox_rng g;
    aibox_rng_seed(&g, seed);
    long c = (long)aibox_rng_below(&g, (uint32_t)n);
    for (long t = 0; t < kc; t++) {
        idx[t] = c;
        mind[c] = -1;
        long best = -1;
        for (long i = 0; i < n; i++) {
            if (mind[i] >= 0) {
                double d = 0;
                for (int j = 0; j < k; j++) d += (y[i * k + j] - y[c * k + j]) * (y[i * k + j] - y[c * k + j]);
                if (d < mind[i]) mind[i] = d;
            }
            if (best < 0 || mind[i] > mind[best]) best = i;
        }
        c = best;
    }
    free(mind);
}

static void test_coreset_matches_greedy(void **state)
{
    (void)state;
    enum { N = 600, DIM = 24, KD = 8, KC = 60 };
    float *x = malloc(sizeof(float) * N * DIM), *r = malloc(sizeof(float) * DIM * KD);
    double *y = malloc(sizeof(double) * N * DIM);
    long got[KC], want[KC], again[KC];
    aibox_rng g;
    aibox_rng_seed(&g, 9);
    aibox_test_fill_uniform(&g, x, N * DIM, -1, 1);
    aibox_error err;
    /* without a projection: the points themselves */
    for (long i = 0; i < N * DIM; i++) y[i] = x[i];
    assert_int_equal(aibox_patchcore_coreset(x, N, DIM, KC, -1, 4, 2, got, &err), AIBOX_OK);
    greedy(y, N, DIM, KC, 4, want);
    for (int i = 0; i < KC; i++) assert_int_equal(got[i], want[i]);
    /* with one: the same projection matrix, the product in double */
    assert_int_equal(aibox_patchcore_projection(DIM, KD, 4, r, &err), AIBOX_OK);
    for (long i = 0; i < N; i++)
        for (int j = 0; j < KD; j++) {
            double s = 0;
            for (int c = 0; c < DIM; c++) s += (double)x[i * DIM + c] * r[c * KD + j];
            y[i * KD + j] = s;
        }
    assert_int_equal(aibox_patchcore_coreset(x, N, DIM, KC, KD, 4, 2, got, &err), AIBOX_OK);
    greedy(y, N, KD, KC, 4, want);
    for (int i = 0; i < KC; i++) assert_int_equal(got[i], want[i]);
    /* blobs in 3-D, where most clusters are skipped by the triangle test: still plain greedy's choice */
    {
        enum { NB = 4000, KB = 400 };
        float *pb = malloc(sizeof(float) * NB * 3);
        double *yb = malloc(sizeof(double) * NB * 3);
        long *gb = malloc(sizeof(long) * KB), *wb = malloc(sizeof(long) * KB);
        for (int i = 0; i < NB; i++)
            for (int j = 0; j < 3; j++) pb[i * 3 + j] = (float)((i % 7) * 5 + aibox_rng_normal(&g) * 0.3), yb[i * 3 + j] = pb[i * 3 + j];
        assert_int_equal(aibox_patchcore_coreset(pb, NB, 3, KB, -1, 2, 2, gb, &err), AIBOX_OK);
        greedy(yb, NB, 3, KB, 2, wb);
        for (int i = 0; i < KB; i++) assert_int_equal(gb[i], wb[i]);
        free(pb), free(yb), free(gb), free(wb);
    }
    /* threads do not change the choice; every index once */
    assert_int_equal(aibox_patchcore_coreset(x, N, DIM, KC, KD, 4, 1, again, &err), AIBOX_OK);
    assert_memory_equal(got, again, sizeof got);
    /* duplicated points: never the same index twice, all of them once k = n */
    for (long i = N / 2; i < N; i++) memcpy(x + i * DIM, x + (i - N / 2) * DIM, sizeof(float) * DIM);
    long *all = malloc(sizeof(long) * N);
    assert_int_equal(aibox_patchcore_coreset(x, N, DIM, N, -1, 1, 2, all, &err), AIBOX_OK);
    char *seen = calloc(N, 1);
    for (long i = 0; i < N; i++) {
        assert_true(all[i] >= 0 && all[i] < N && !seen[all[i]]);
        seen[all[i]] = 1;
    }
    /* the projection's rows have the stated scale: mean square 1 / KD */
    double ms = 0;
    for (int i = 0; i < DIM * KD; i++) ms += (double)r[i] * r[i];
    ms /= DIM * KD;
    assert_true(ms > 0.5 / KD && ms < 1.5 / KD);
    /* refusals */
    assert_int_equal(aibox_patchcore_coreset(x, N, DIM, N + 1, -1, 1, 1, all, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_patchcore_coreset(x, N, DIM, 0, -1, 1, 1, all, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_patchcore_coreset(NULL, N, DIM, 1, -1, 1, 1, all, &err), AIBOX_E_INVALID);
    x[7] = NAN;
    assert_int_equal(aibox_patchcore_coreset(x, N, DIM, N, -1, 1, 1, all, &err) == AIBOX_OK, 0);
    free(seen), free(all), free(x), free(r), free(y);
}

static void test_files(void **state)
{
    (void)state;
    aibox_model *m = backbone();
    float *x = images(4, 21), *test = images(2, 22);
    aibox_patchcore *p = fit(m, &(aibox_patchcore_opts){.coreset = 0.5, .dims = 20}, x, 4);
    char path[300];
    snprintf(path, sizeof path, "%s/pc.aibox", g_tmp);
    aibox_error err;
    assert_int_equal(aibox_patchcore_save(p, path, &err), AIBOX_OK);
    aibox_patchcore *l = NULL;
    assert_int_equal(aibox_patchcore_load(&l, path, &err), AIBOX_OK);
    float a[2 * S * S], b[2 * S * S], sa[2], sb[2];
    aibox_patchcore_ctx *c = NULL;
    assert_int_equal(aibox_patchcore_ctx_create(&c, p, 2, 2, &err), AIBOX_OK);
    assert_int_equal(aibox_patchcore_score(c, test, 2, NULL, a, sa, NULL, &err), AIBOX_OK);
    aibox_patchcore_ctx_free(&c);
    assert_int_equal(aibox_patchcore_ctx_create(&c, l, 1, 1, &err), AIBOX_OK);
    for (int i = 0; i < 2; i++)
        assert_int_equal(aibox_patchcore_score(c, test + i * 3 * S * S, 1, NULL, b + i * S * S, sb + i, NULL, &err),
                         AIBOX_OK);
    aibox_patchcore_ctx_free(&c);
    assert_memory_equal(a, b, sizeof a); /* the same bank and network; batch and threads change nothing */
    assert_memory_equal(sa, sb, sizeof sa);
    long k1, k2;
    aibox_patchcore_info(p, NULL, NULL, NULL, &k1, NULL, NULL);
    aibox_patchcore_info(l, NULL, NULL, NULL, &k2, NULL, NULL);
    assert_int_equal(k1, k2);
    assert_memory_equal(aibox_patchcore_bank(p), aibox_patchcore_bank(l), sizeof(float) * (size_t)k1 * 20);
    /* a detector loads it and says which method it is; it has no thresholds yet */
    aibox_detector *d = NULL;
    assert_int_equal(aibox_detector_load(&d, path, 1, &err), AIBOX_E_FORMAT);
    assert_null(d);
    aibox_thresholds t = {.image = 1, .pixel = 1, .score_min = 0, .score_max = 2, .image_f1 = NAN};
    assert_int_equal(aibox_thresholds_to_model(&t, aibox_patchcore_model(l), &err), AIBOX_OK);
    assert_int_equal(aibox_patchcore_save(l, path, &err), AIBOX_OK);
    assert_int_equal(aibox_detector_load(&d, path, 1, &err), AIBOX_OK);
    assert_string_equal(aibox_detector_method(d), "patchcore");
    assert_non_null(aibox_detector_patchcore(d));
    assert_null(aibox_detector_padim(d));
    aibox_detector_free(&d);
    /* a classifier is not a PatchCore model; a PatchCore model is not a PaDiM one */
    char other[300];
    snprintf(other, sizeof other, "%s/bb.aibox", g_tmp);
    assert_int_equal(aibox_model_save(m, other, &err), AIBOX_OK);
    aibox_patchcore *q = NULL;
    assert_int_equal(aibox_patchcore_load(&q, other, &err), AIBOX_E_NOTFOUND);
    assert_null(q);
    aibox_padim *pd = NULL;
    assert_int_equal(aibox_padim_load(&pd, path, &err), AIBOX_E_NOTFOUND);
    assert_int_equal(aibox_detector_load(&d, other, 1, &err), AIBOX_E_NOTFOUND);
    aibox_patchcore_free(&l);
    aibox_patchcore_free(&p);
    free(x), free(test);
    aibox_model_free(&m);
}

static long file_size(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

static unsigned char *slurp(const char *path, long *n)
{
    *n = file_size(path);
    unsigned char *b = malloc((size_t)*n);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(b, 1, (size_t)*n, f), (size_t)*n);
    fclose(f);
    return b;
}

static void spit(const char *path, const unsigned char *b, long n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, (size_t)n, f), (size_t)n);
    assert_int_equal(fclose(f), 0);
}

/* A float16 value: at most 11 significant bits (subnormals: a multiple of
 * 2^-24) and at most 65504 in magnitude. */
static int is_half(float v)
{
    double a = fabs((double)v);
    if (a > 65504) return 0;
    if (a < 0x1p-14) return a * 0x1p24 == floor(a * 0x1p24);
    int e;
    double m = frexp(a, &e); /* [0.5, 1) */
    return ldexp(m, 11) == floor(ldexp(m, 11));
}

/* The float16 bank (half_bank): the fitted bank is the float32 fit's
 * coreset rounded to float16, saved in about half the bytes, loaded and
 * re-saved unchanged, scored exactly as brute force on those values and
 * within 1e-2 of the float32 model; damaged files are refused. */
static void test_half_bank(void **state)
{
    (void)state;
    aibox_model *m = backbone();
    float *x = images(4, 21), *test = images(2, 22);
    aibox_patchcore *pf = fit(m, &(aibox_patchcore_opts){.coreset = 0.5, .dims = 20}, x, 4);
    aibox_patchcore *ph = fit(m, &(aibox_patchcore_opts){.coreset = 0.5, .dims = 20, .half_bank = 1}, x, 4);
    long K, Kh;
    int D;
    aibox_patchcore_info(pf, NULL, NULL, &D, &K, NULL, NULL);
    aibox_patchcore_info(ph, NULL, NULL, NULL, &Kh, NULL, NULL);
    assert_int_equal(K, Kh); /* the same coreset: the selection runs on float32 features, rounding comes after */
    const float *bf = aibox_patchcore_bank(pf), *bh = aibox_patchcore_bank(ph);
    for (long i = 0; i < K * D; i++) {
        assert_true(is_half(bh[i]));
        assert_true(fabsf(bh[i] - bf[i]) <= fmaxf(fabsf(bf[i]) * 0x1p-11f, 0x1p-25f)); /* half a unit at 11 bits */
    }
    char p32[300], p16[300], again[300], bad[300];
    snprintf(p32, sizeof p32, "%s/pc32.aibox", g_tmp), snprintf(p16, sizeof p16, "%s/pc16.aibox", g_tmp);
    snprintf(again, sizeof again, "%s/pc16b.aibox", g_tmp), snprintf(bad, sizeof bad, "%s/pcbad.aibox", g_tmp);
    aibox_error err;
    assert_int_equal(aibox_patchcore_save(pf, p32, &err), AIBOX_OK);
    assert_int_equal(aibox_patchcore_save(ph, p16, &err), AIBOX_OK);
    long s32 = file_size(p32), s16 = file_size(p16), bank32 = 4 * K * D;
    print_message("PatchCore %ld x %d bank: file %ld bytes (float32 bank), %ld bytes (float16 bank); bank %ld -> %ld "
                  "bytes\n",
                  K, D, s32, s16, bank32, bank32 / 2);
    /* half the bank's bytes saved, give or take alignment (64) and the metadata entry that marks it */
    assert_true(labs(s32 - s16 - bank32 / 2) <= 64 + 64);
    int64_t half = -1;
    assert_int_equal(aibox_model_get_meta_int(aibox_patchcore_model(pf), "aibox.patchcore.half", &half),
                     AIBOX_E_NOTFOUND); /* float32 files stay as before */
    /* loaded: the same float16 values, the choice kept, and saved again byte for byte */
    aibox_patchcore *l = NULL;
    assert_int_equal(aibox_patchcore_load(&l, p16, &err), AIBOX_OK);
    assert_int_equal(aibox_model_get_meta_int(aibox_patchcore_model(l), "aibox.patchcore.half", &half), AIBOX_OK);
    assert_int_equal(half, 1);
    assert_memory_equal(aibox_patchcore_bank(l), bh, sizeof(float) * (size_t)K * D);
    assert_int_equal(aibox_patchcore_save(l, again, &err), AIBOX_OK);
    long na, nb;
    unsigned char *a = slurp(p16, &na), *b = slurp(again, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, (size_t)na);
    free(b);
    /* scoring: exactly brute force on the float16 values; near the float32 model */
    check_scores(m, l, test, 2, 20, 9);
    float mf[2 * S * S], mh[2 * S * S], mh2[2 * S * S], sf[2], sh[2], sh2[2];
    aibox_patchcore_ctx *c = NULL;
    assert_int_equal(aibox_patchcore_ctx_create(&c, pf, 2, 2, &err), AIBOX_OK);
    assert_int_equal(aibox_patchcore_score(c, test, 2, NULL, mf, sf, NULL, &err), AIBOX_OK);
    aibox_patchcore_ctx_free(&c);
    assert_int_equal(aibox_patchcore_ctx_create(&c, l, 2, 2, &err), AIBOX_OK);
    assert_int_equal(aibox_patchcore_score(c, test, 2, NULL, mh, sh, NULL, &err), AIBOX_OK);
    aibox_patchcore_ctx_free(&c);
    assert_int_equal(aibox_patchcore_ctx_create(&c, ph, 2, 2, &err), AIBOX_OK);
    assert_int_equal(aibox_patchcore_score(c, test, 2, NULL, mh2, sh2, NULL, &err), AIBOX_OK);
    aibox_patchcore_ctx_free(&c);
    assert_memory_equal(mh, mh2, sizeof mh); /* the fitted model scores as its file will */
    assert_memory_equal(sh, sh2, sizeof sh);
    double worst = 0, scale = 0;
    for (int i = 0; i < 2 * S * S; i++) worst = fmax(worst, fabs(mh[i] - mf[i])), scale = fmax(scale, fabs(mf[i]));
    print_message("float16 bank vs float32: maps max |diff| %.3g of max %.3g (relative %.2e); scores %.6g / %.6g, "
                  "%.6g / %.6g\n",
                  worst, scale, worst / scale, sh[0], sf[0], sh[1], sf[1]);
    assert_true(scale > 0 && worst / scale < 1e-2);
    for (int i = 0; i < 2; i++) assert_true(fabs(sh[i] - sf[i]) < 1e-2 * fabs(sf[i]));
    aibox_patchcore_free(&l);
    /* damaged: every truncation of the end, a flipped bank byte (checksum), and with a repaired
     * checksum an infinite or NaN float16 in the bank (the last 2 bytes before the CRC) */
    for (long cut = na - 300; cut < na; cut += 7) {
        spit(bad, a, cut);
        assert_int_equal(aibox_patchcore_load(&l, bad, &err), AIBOX_E_CORRUPT);
        assert_null(l);
        assert_non_null(strstr(err.msg, "truncated"));
    }
    a[na - 6] ^= 0x10;
    spit(bad, a, na);
    assert_int_equal(aibox_patchcore_load(&l, bad, &err), AIBOX_E_CORRUPT);
    assert_non_null(strstr(err.msg, "checksum"));
    static const uint16_t poison[2] = {0x7c00, 0xfe01};
    for (int k = 0; k < 2; k++) {
        a[na - 6] = (unsigned char)poison[k], a[na - 5] = (unsigned char)(poison[k] >> 8);
        uint32_t crc = (uint32_t)crc32(0, a, (uInt)(na - 4));
        for (int j = 0; j < 4; j++) a[na - 4 + j] = (unsigned char)(crc >> 8 * j);
        spit(bad, a, na);
        assert_int_equal(aibox_patchcore_load(&l, bad, &err), AIBOX_E_FORMAT);
        assert_null(l);
        assert_non_null(strstr(err.msg, "non-finite"));
    }
    free(a);
    /* features float16 cannot hold: the float16 fit refuses them, the float32 one keeps them */
    for (int i = 0; i < 4 * 3 * S * S; i++) x[i] *= 1e6f;
    aibox_patchcore_fit *f = NULL;
    aibox_patchcore *big = NULL;
    for (int h = 0; h < 2; h++) {
        assert_int_equal(aibox_patchcore_fit_begin(&f, m, &(aibox_patchcore_opts){.coreset = 1, .half_bank = h}, 4, 1,
                                                   &err),
                         AIBOX_OK);
        assert_int_equal(aibox_patchcore_fit_add(f, x, 4, &err), AIBOX_OK);
        aibox_status st = aibox_patchcore_fit_end(f, &big, &err);
        if (h) {
            assert_int_equal(st, AIBOX_E_INVALID);
            assert_non_null(strstr(err.msg, "beyond float16"));
            assert_null(big);
        } else {
            assert_int_equal(st, AIBOX_OK);
        }
        aibox_patchcore_free(&big);
        aibox_patchcore_fit_free(&f);
    }
    aibox_patchcore_free(&pf), aibox_patchcore_free(&ph);
    free(x), free(test);
    aibox_model_free(&m);
}

static void test_bad_options(void **state)
{
    (void)state;
    aibox_model *m = backbone();
    aibox_patchcore_fit *f = NULL;
    aibox_error err;
    const aibox_patchcore_opts bad[] = {
        {.coreset = -0.1}, {.coreset = 1.5},           {.coreset = NAN},         {.dims = 29},
        {.neighbours = -1}, {.n_taps = 5},             {.n_taps = 1, .strides = {32}},
        {.n_taps = 2, .strides = {16, 8}},             {.proj_dims = 5000},      {.dims = -3},
        {.half_bank = 2},  {.half_bank = -1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        aibox_status s = aibox_patchcore_fit_begin(&f, m, &bad[i], 2, 1, &err);
        if (s != AIBOX_E_INVALID) print_message("case %zu: %d %s\n", i, s, err.msg);
        assert_int_equal(s, AIBOX_E_INVALID);
        assert_null(f);
    }
    assert_int_equal(aibox_patchcore_fit_begin(&f, m, NULL, 2, 1, &err), AIBOX_OK);
    aibox_patchcore *p = NULL;
    assert_int_equal(aibox_patchcore_fit_end(f, &p, &err), AIBOX_E_STATE); /* nothing added */
    float *x = images(3, 1);
    assert_int_equal(aibox_patchcore_fit_add(f, x, 3, &err), AIBOX_E_INVALID); /* above the batch */
    /* a non-finite input: refused as such, or whatever reaches the bank is finite */
    for (int i = 0; i < 3 * S * S; i += 7) x[i] = i % 2 ? INFINITY : NAN;
    aibox_status s = aibox_patchcore_fit_add(f, x, 1, &err);
    if (s) assert_int_equal(s, AIBOX_E_NONFINITE);
    assert_int_equal(aibox_patchcore_fit_add(f, x + 3 * S * S, 1, &err), AIBOX_OK);
    assert_int_equal(aibox_patchcore_fit_end(f, &p, &err), AIBOX_OK);
    long K;
    int D;
    aibox_patchcore_info(p, NULL, NULL, &D, &K, NULL, NULL);
    for (long i = 0; i < K * D; i++) assert_true(isfinite(aibox_patchcore_bank(p)[i]));
    aibox_patchcore_free(&p);
    aibox_patchcore_fit_free(&f);
    free(x);
    aibox_model_free(&m);
}

static void write_f32(const char *path, const float *x, size_t count)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(x, sizeof(float), count, f), count);
    assert_int_equal(fclose(f), 0);
}

/* Against Anomalib's PatchCore written in PyTorch (float64) on a seeded
 * random ResNet-18: the bank the C fit chose given to it, maps and image
 * scores within 1e-3 of their range; and the coreset's greedy k-centre
 * against a NumPy greedy on the same projection (the same indices). */
static void test_torch_parity(void **state)
{
    (void)state;
    char dir[300], cmd[1200], path[600];
    snprintf(dir, sizeof dir, "%s.parity", g_tmp);
    const char *script = "tests/patchcore/patchcore_parity.py";
    aibox_error err;
    aibox_model *bb = NULL;
    float *x, *t;
    aibox_test_parity_inputs(script, dir, &bb, &x, 24, &t, 2);
    const size_t img = 3 * 224 * 224;
    /* every patch (coreset 1), then the default 10 % coreset: its bank is those rows at the selection's indices */
    aibox_patchcore_fit *f = NULL;
    aibox_patchcore *all = NULL, *p = NULL;
    for (int pass = 0; pass < 2; pass++) {
        aibox_patchcore_opts o = {.coreset = pass ? 0 : 1, .seed = 3};
        assert_int_equal(aibox_patchcore_fit_begin(&f, bb, &o, 8, 2, &err), AIBOX_OK);
        for (int i = 0; i < 24; i += 8) assert_int_equal(aibox_patchcore_fit_add(f, x + i * img, 8, &err), AIBOX_OK);
        assert_int_equal(aibox_patchcore_fit_end(f, pass ? &p : &all, &err), AIBOX_OK);
        aibox_patchcore_fit_free(&f);
    }
    int D;
    long N, K;
    aibox_patchcore_info(all, NULL, NULL, &D, &N, NULL, NULL);
    aibox_patchcore_info(p, NULL, NULL, NULL, &K, NULL, NULL);
    assert_true(D == 384 && N == 24 * 28 * 28 && K == (long)floor(0.1 * N + 0.5));
    long *idx = malloc(sizeof(long) * (size_t)K);
    assert_int_equal(aibox_patchcore_coreset(aibox_patchcore_bank(all), N, D, K, 128, 3, 2, idx, &err), AIBOX_OK);
    for (long i = 0; i < K; i++)
        assert_memory_equal(aibox_patchcore_bank(p) + i * D, aibox_patchcore_bank(all) + idx[i] * D, sizeof(float) * D);
    snprintf(path, sizeof path, "%s/coreset.txt", dir);
    FILE *cf = fopen(path, "w");
    for (long i = 0; i < K; i++) fprintf(cf, "%ld\n", idx[i]);
    fclose(cf);
    aibox_patchcore_ctx *c = NULL;
    float *maps = malloc(sizeof(float) * 2 * 224 * 224), scores[2];
    assert_int_equal(aibox_patchcore_ctx_create(&c, p, 2, 2, &err), AIBOX_OK);
    assert_int_equal(aibox_patchcore_score(c, t, 2, NULL, maps, scores, NULL, &err), AIBOX_OK);
    aibox_patchcore_ctx_free(&c);
    snprintf(cmd, sizeof cmd, "ref %s", dir);
    assert_int_equal(aibox_test_torch_script(script, cmd, NULL), 0);
    snprintf(path, sizeof path, "%s/ref.f32", dir);
    float *ref = aibox_test_read_f32(path, 2 * 224 * 224 + 2);
    double worst = 0, scale = 0;
    for (size_t i = 0; i < 2 * 224 * 224; i++) {
        worst = fmax(worst, fabs(maps[i] - ref[i]));
        scale = fmax(scale, fabs(ref[i]));
    }
    print_message("PatchCore maps vs PyTorch reference: max |diff| %.3g, max |ref| %.3g (relative %.2e)\n", worst,
                  scale, worst / scale);
    assert_true(scale > 0.1);
    assert_true(worst <= 1e-3 * scale);
    for (int k = 0; k < 2; k++) {
        print_message("PatchCore image score %d: %.6g, PyTorch %.6g (relative %.2e)\n", k, scores[k],
                      ref[2 * 224 * 224 + k], fabs(scores[k] - ref[2 * 224 * 224 + k]) / ref[2 * 224 * 224 + k]);
        AIBOX_TEST_CLOSE1("image score vs PyTorch", scores[k], ref[2 * 224 * 224 + k], 0, 1e-3);
    }
    /* the greedy k-centre: 3000 of these patch features, 300 centres, on the library's projection */
    enum { NP = 3000, KC = 300, KD = 128 };
    float *r = malloc(sizeof(float) * (size_t)D * KD);
    long got[KC];
    assert_int_equal(aibox_patchcore_projection(D, KD, 7, r, &err), AIBOX_OK);
    assert_int_equal(aibox_patchcore_coreset(aibox_patchcore_bank(all), NP, D, KC, KD, 7, 2, got, &err), AIBOX_OK);
    snprintf(path, sizeof path, "%s/points.f32", dir);
    write_f32(path, aibox_patchcore_bank(all), (size_t)NP * D);
    snprintf(path, sizeof path, "%s/proj.f32", dir);
    write_f32(path, r, (size_t)D * KD);
    snprintf(path, sizeof path, "%s/greedy.txt", dir);
    cf = fopen(path, "w");
    fprintf(cf, "%d %d %d %d %ld\n", NP, D, KD, KC, got[0]);
    fclose(cf);
    snprintf(cmd, sizeof cmd, "greedy %s", dir);
    assert_int_equal(aibox_test_torch_script(script, cmd, NULL), 0);
    snprintf(path, sizeof path, "%s/greedy_ref.txt", dir);
    cf = fopen(path, "r");
    int same = 0;
    for (int i = 0; i < KC; i++) {
        long v = -1;
        assert_int_equal(fscanf(cf, "%ld", &v), 1);
        same += v == got[i];
    }
    fclose(cf);
    print_message("greedy k-centre: %d of %d indices equal to the NumPy reference\n", same, KC);
    assert_int_equal(same, KC);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    aibox_patchcore_free(&all), aibox_patchcore_free(&p);
    aibox_model_free(&bb);
    free(x), free(t), free(maps), free(ref), free(idx), free(r);
}

static int setup(void **state)
{
    (void)state;
    return aibox_test_mkdtemp(g_tmp, sizeof g_tmp, "patchcore");
}

static int teardown(void **state)
{
    (void)state;
    return aibox_test_rm_rf(g_tmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bank_and_scores_match_reference),
        cmocka_unit_test(test_coreset_matches_greedy),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_half_bank),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_torch_parity),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

/* Anomaly fits across ranks (aibox/dist.h) against one process, on real
 * magnetic-tile images ($AIBOX_DATA/magnetic-tile; skipped without them):
 * PaDiM on 4 ranks (aibox_padim_fit_reduce): means and covariances within
 * 1e-6 relative of one process (the figures are printed); PatchCore on 2
 * ranks (aibox_patchcore_fit_gather), float32 and float16 banks: the bank and
 * the seeded coreset one process's, bit for bit; aibox_detector_fit_folder_dist
 * on 2 ranks against aibox_detector_fit_folder (thresholds, report, scores);
 * ranks that disagree fail together; the auto-encoder is refused.
 *
 * Run without arguments it is a cmocka suite; each test starts
 * `mpirun -np N <this binary> --worker NAME DIR`, whose ranks (MPI_Init,
 * aibox_mpi_comm) fit and write their results into DIR, and compares them
 * with the same fit done here in one process. */
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
#include <mpi.h>

#include "aibox.h"
#include "aibox/mpi.h"
#include "common/check.h"
#include "padim/padim.h"

#define SIZE 64    /* backbone input: PaDiM grid 16x16, PatchCore grid 8x8 */
#define N_GOOD 32  /* good images fitted: 8 a rank on 4 ranks, two whole batches */
#define N_TEST 4   /* other good images, scored */
#define N_BAD 4    /* defect images (with masks) for the folder fit */
/* Images per backbone pass. The backbone's float32 features of an image
 * change in the last bits with the batch it goes in (the GEMM blocking), so
 * the shards are whole batches and the folder fits (whose shards are not)
 * pass one image at a time: the ranks see one process's features. */
#define BATCH 4

static char g_dir[512];   /* the suite's folder: bb.aibox, good/, test/, bad/, the workers' results */
static char g_self[4096]; /* this binary */
static const char *g_skip; /* why the suite cannot run, or NULL */

/* ------------------------------------------------------------------ shared by suite and workers */
static const aibox_padim_opts PADIM_OPTS = {.seed = 3};
static aibox_patchcore_opts patchcore_opts(int half)
{
    return (aibox_patchcore_opts){.coreset = 0.1, .seed = 5, .half_bank = half};
}

/* The image files of dir, sorted (the library's listing). */
static aibox_file_list list(const char *sub)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", g_dir, sub);
    aibox_file_list l = {0};
    aibox_error e = {0};
    aibox_list_opts lo = {.images_only = 1, .skip_masks = 1};
    if (aibox_list_files(&l, p, &lo, &e)) {
        fprintf(stderr, "%s: %s\n", p, e.msg);
        exit(3);
    }
    return l;
}

/* Images [a, b) of l, preprocessed for pp, into a fresh array. */
static float *load_images(const aibox_file_list *l, int a, int b, const aibox_preproc *pp)
{
    size_t in = (size_t)pp->channels * pp->width * pp->height;
    float *x = malloc(sizeof(float) * in * (size_t)(b - a + 1));
    for (int i = a; x && i < b; i++) {
        aibox_image img = {0};
        aibox_error e = {0};
        if (aibox_image_load(&img, l->path[i], 0, &e) || aibox_preprocess(pp, &img, x + in * (i - a), &e)) {
            fprintf(stderr, "%s: %s\n", l->path[i], e.msg);
            exit(3);
        }
        aibox_image_free(&img);
    }
    return x;
}

static aibox_model *load_backbone(void)
{
    char p[600];
    aibox_model *bb = NULL;
    aibox_error e = {0};
    snprintf(p, sizeof p, "%s/bb.aibox", g_dir);
    if (aibox_model_load(&bb, p, &e)) {
        fprintf(stderr, "%s: %s\n", p, e.msg);
        exit(3);
    }
    return bb;
}

/* A PaDiM fit of good images [a, b) in batches (threads 1 in the workers). */
static aibox_padim_fit *padim_fit(const aibox_model *bb, const aibox_padim_opts *po, int a, int b, int threads)
{
    aibox_padim_fit *f = NULL;
    aibox_preproc pp;
    aibox_error e = {0};
    aibox_file_list l = list("good");
    if (aibox_padim_fit_begin(&f, bb, po, BATCH, threads, &e) || aibox_padim_fit_preproc(f, &pp, &e)) {
        fprintf(stderr, "padim: %s\n", e.msg);
        exit(3);
    }
    float *x = load_images(&l, a, b, &pp);
    size_t in = (size_t)pp.channels * pp.width * pp.height;
    for (int i = 0; i < b - a; i += BATCH)
        if (aibox_padim_fit_add(f, x + in * i, AIBOX_MIN(BATCH, b - a - i), &e)) {
            fprintf(stderr, "padim: %s\n", e.msg);
            exit(3);
        }
    free(x);
    aibox_file_list_free(&l);
    return f;
}

static aibox_patchcore_fit *patchcore_fit(const aibox_model *bb, int half, int a, int b, int threads)
{
    aibox_patchcore_fit *f = NULL;
    aibox_preproc pp;
    aibox_error e = {0};
    aibox_file_list l = list("good");
    aibox_patchcore_opts po = patchcore_opts(half);
    if (aibox_patchcore_fit_begin(&f, bb, &po, BATCH, threads, &e) || aibox_patchcore_fit_preproc(f, &pp, &e)) {
        fprintf(stderr, "patchcore: %s\n", e.msg);
        exit(3);
    }
    float *x = load_images(&l, a, b, &pp);
    size_t in = (size_t)pp.channels * pp.width * pp.height;
    for (int i = 0; i < b - a; i += BATCH)
        if (aibox_patchcore_fit_add(f, x + in * i, AIBOX_MIN(BATCH, b - a - i), &e)) {
            fprintf(stderr, "patchcore: %s\n", e.msg);
            exit(3);
        }
    free(x);
    aibox_file_list_free(&l);
    return f;
}

static void write_doubles(const char *name, const double *v, size_t n)
{
    char p[700];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(v, sizeof *v, n, f) != n || fclose(f)) {
        fprintf(stderr, "%s: cannot write\n", p);
        exit(3);
    }
}

static aibox_fit_opts folder_opts(aibox_anomaly_method method, const aibox_padim_opts *po,
                                  const aibox_patchcore_opts *pc, char *bad, size_t bad_len)
{
    snprintf(bad, bad_len, "%s/bad", g_dir);
    return (aibox_fit_opts){.padim = po, .patchcore = pc, .method = method, .holdout = 0.25, .seed = 7,
                            .abnormal_dir = bad, .batch = 1, .threads = 1, .backbone_name = "resnet18-random"};
}

/* ------------------------------------------------------------------ workers (one MPI rank each) */
static int fail_rank(const aibox_comm *c, const char *what, const aibox_error *e)
{
    fprintf(stderr, "rank %d: %s: %s\n", c->rank, what, e->msg);
    MPI_Abort(MPI_COMM_WORLD, 4);
    return 4;
}

static int worker(const char *name)
{
    MPI_Init(NULL, NULL);
    aibox_comm c;
    aibox_error e = {0};
    if (aibox_mpi_comm(&c, &e)) return fail_rank(&c, "comm", &e);
    aibox_model *bb = load_backbone();
    int a = N_GOOD * c.rank / c.size, b = N_GOOD * (c.rank + 1) / c.size; /* contiguous, in rank order */
    char p[700];
    if (!strcmp(name, "padim")) {
        aibox_padim_fit *f = padim_fit(bb, &PADIM_OPTS, a, b, 1);
        if (aibox_padim_fit_reduce(f, &c, &e)) return fail_rank(&c, "reduce", &e);
        if (aibox_padim_fit_reduce(f, &c, &e) != AIBOX_E_STATE) return fail_rank(&c, "second reduce", &e);
        if (aibox_padim_fit_count(f) != N_GOOD) return fail_rank(&c, "count", &e);
        aibox_padim *pm = NULL;
        if (c.rank == 0) { /* the merged statistics, in double (the sizes from a local one-image fit) */
            int gw, gh, d;
            aibox_padim_fit *g = padim_fit(bb, &PADIM_OPTS, 0, 1, 1);
            if (aibox_padim_fit_end(g, &pm, &e)) return fail_rank(&c, "sizes", &e);
            aibox_padim_info(pm, &gw, &gh, &d, NULL);
            aibox_padim_free(&pm), aibox_padim_fit_free(&g);
            size_t P = (size_t)gw * gh;
            double *mean = malloc(sizeof(double) * P * d), *cov = malloc(sizeof(double) * P * d * d);
            if (aibox_padim_fit_moments(f, mean, cov, &e)) return fail_rank(&c, "moments", &e);
            write_doubles("padim4.mean", mean, P * d);
            write_doubles("padim4.cov", cov, P * d * d);
            free(mean), free(cov);
        }
        if (aibox_padim_fit_end(f, &pm, &e)) return fail_rank(&c, "end", &e);
        snprintf(p, sizeof p, "%s/padim4_r%d.aibox", g_dir, c.rank); /* every rank's model */
        if (aibox_padim_set_half(pm, 0, &e) || aibox_padim_save(pm, p, &e)) return fail_rank(&c, "save", &e);
        aibox_padim_free(&pm);
        aibox_padim_fit_free(&f);
    } else if (!strcmp(name, "patchcore")) {
        for (int half = 0; half < 2; half++) {
            aibox_patchcore_fit *f = patchcore_fit(bb, half, a, b, 1);
            aibox_patchcore *pc = NULL;
            if (aibox_patchcore_fit_gather(f, &c, &e)) return fail_rank(&c, "gather", &e);
            if (aibox_patchcore_fit_count(f) != N_GOOD) return fail_rank(&c, "count", &e);
            if (aibox_patchcore_fit_end(f, &pc, &e)) return fail_rank(&c, "end", &e);
            snprintf(p, sizeof p, "%s/patchcore2_h%d_r%d.aibox", g_dir, half, c.rank);
            if (aibox_patchcore_save(pc, p, &e)) return fail_rank(&c, "save", &e);
            aibox_patchcore_free(&pc);
            aibox_patchcore_fit_free(&f);
        }
    } else if (!strcmp(name, "folder")) {
        for (int m = 0; m < 2; m++) {
            char bad[600];
            aibox_patchcore_opts pc = patchcore_opts(0);
            aibox_fit_opts fo = folder_opts(m ? AIBOX_ANOMALY_PATCHCORE : AIBOX_ANOMALY_PADIM, &PADIM_OPTS, &pc, bad,
                                            sizeof bad);
            aibox_detector *d = NULL;
            aibox_fit_report rep;
            snprintf(p, sizeof p, "%s/good", g_dir);
            if (aibox_detector_fit_folder_dist(&d, bb, p, &fo, &c, &rep, &e)) return fail_rank(&c, "fit folder", &e);
            snprintf(p, sizeof p, "%s/folder2_m%d_r%d.aibox", g_dir, m, c.rank);
            if (aibox_detector_save(d, p, &e)) return fail_rank(&c, "save", &e);
            double r[5] = {rep.fit, rep.holdout, rep.abnormal, rep.skipped, rep.stats.image_auroc};
            snprintf(p, sizeof p, "folder2_m%d_r%d.rep", m, c.rank);
            write_doubles(p, r, 5);
            aibox_detector_free(&d);
        }
    } else if (!strcmp(name, "mismatch")) { /* rank 1 asks other dimensions: every rank refuses */
        aibox_padim_opts po = PADIM_OPTS;
        po.dims = c.rank == 1 ? 40 : 50;
        aibox_padim_fit *f = padim_fit(bb, &po, a, b, 1);
        aibox_status s = aibox_padim_fit_reduce(f, &c, &e);
        printf("rank %d: %s (%s)\n", c.rank, aibox_strerror(s), e.msg);
        if (s != AIBOX_E_INVALID) return fail_rank(&c, "mismatch not refused", &e);
        aibox_padim_fit_free(&f);
    } else {
        fprintf(stderr, "unknown worker %s\n", name);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    aibox_model_free(&bb);
    MPI_Finalize();
    return 0;
}

/* ------------------------------------------------------------------ suite */
static void run_ranks(int n, const char *name)
{
    char cmd[5000];
    snprintf(cmd, sizeof cmd, "mpirun --allow-run-as-root --oversubscribe -np %d '%s' --worker %s '%s' 2>&1", n,
             g_self, name, g_dir);
    char out[8192];
    int rc = aibox_test_run(out, sizeof out, "%s", cmd);
    if (rc) print_message("# %s\n%s", cmd, out);
    assert_int_equal(rc, 0);
}

static void skip_without_data(void)
{
    if (g_skip) {
        print_message("# skipped: %s\n", g_skip);
        skip();
    }
}

/* The largest |got - want| / |want| over the elements where want is not 0
 * (where it is, got must be within abs0 of 0, counted in *zeros_off). */
static double max_rel(const double *got, const double *want, size_t n, double abs0, size_t *worst, int *zeros_off)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        if (want[i] == 0) {
            if (fabs(got[i]) > abs0) ++*zeros_off;
            continue;
        }
        double r = fabs(got[i] - want[i]) / fabs(want[i]);
        if (!(r <= m)) m = r, *worst = i;
    }
    return m;
}

static double *read_doubles(const char *name, size_t n)
{
    char p[700];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    size_t len = 0;
    unsigned char *b = aibox_test_slurp(p, &len);
    assert_non_null(b);
    assert_int_equal(len, sizeof(double) * n);
    double *v = aibox_test_doubles(n);
    memcpy(v, b, sizeof(double) * n);
    free(b);
    return v;
}

static int same_file(const char *a, const char *b)
{
    size_t la = 0, lb = 0;
    unsigned char *x = aibox_test_slurp(a, &la), *y = aibox_test_slurp(b, &lb);
    int same = x && y && la == lb && !memcmp(x, y, la);
    free(x), free(y);
    return same;
}

/* Scores of the test images under a PaDiM or PatchCore model (whichever p/pc is given). */
static void test_scores(const aibox_padim *pm, const aibox_patchcore *pc, float *scores)
{
    aibox_file_list l = list("test");
    aibox_preproc pp;
    aibox_error e = {0};
    assert_int_equal(aibox_preproc_from_model(&pp, pm ? aibox_padim_model_const(pm) : aibox_patchcore_model_const(pc),
                                              &e),
                     AIBOX_OK);
    float *x = load_images(&l, 0, l.n, &pp);
    if (pm) {
        aibox_padim_ctx *c = NULL;
        assert_int_equal(aibox_padim_ctx_create(&c, pm, l.n, 0, &e), AIBOX_OK);
        assert_int_equal(aibox_padim_score(c, x, l.n, NULL, NULL, scores, &e), AIBOX_OK);
        aibox_padim_ctx_free(&c);
    } else {
        aibox_patchcore_ctx *c = NULL;
        assert_int_equal(aibox_patchcore_ctx_create(&c, pc, l.n, 0, &e), AIBOX_OK);
        assert_int_equal(aibox_patchcore_score(c, x, l.n, NULL, NULL, scores, NULL, &e), AIBOX_OK);
        aibox_patchcore_ctx_free(&c);
    }
    free(x);
    aibox_file_list_free(&l);
}

static void test_padim_4_ranks(void **state)
{
    (void)state;
    skip_without_data();
    run_ranks(4, "padim");
    aibox_model *bb = load_backbone();
    aibox_padim_fit *f = padim_fit(bb, &PADIM_OPTS, 0, N_GOOD, 0);
    aibox_padim *one = NULL, *four = NULL;
    aibox_error e = {0};
    int gw, gh, d;
    assert_int_equal(aibox_padim_fit_reduce(f, NULL, &e), AIBOX_OK); /* one process: nothing to do */
    { /* the sizes */
        aibox_padim_fit *g = padim_fit(bb, &PADIM_OPTS, 0, 1, 0);
        aibox_padim *t = NULL;
        assert_int_equal(aibox_padim_fit_end(g, &t, &e), AIBOX_OK);
        aibox_padim_info(t, &gw, &gh, &d, NULL);
        aibox_padim_free(&t), aibox_padim_fit_free(&g);
    }
    size_t P = (size_t)gw * gh, worst = 0;
    double *mean = aibox_test_doubles(P * d), *cov = aibox_test_doubles(P * d * d);
    assert_int_equal(aibox_padim_fit_moments(f, mean, cov, &e), AIBOX_OK);
    double *mean4 = read_doubles("padim4.mean", P * d), *cov4 = read_doubles("padim4.cov", P * d * d);
    int zoff = 0;
    double rm = max_rel(mean4, mean, P * d, 1e-12, &worst, &zoff);
    printf("# PaDiM 4 ranks vs 1 process (%d good images, %zu patches x %d dims): means max relative difference %.3g "
           "(element %zu: %.9g vs %.9g)\n",
           N_GOOD, P, d, rm, worst, mean4[worst], mean[worst]);
    double rc = max_rel(cov4, cov, P * d * d, 1e-12, &worst, &zoff);
    printf("# PaDiM 4 ranks vs 1 process: covariances max relative difference %.3g (element %zu: %.9g vs %.9g)\n", rc,
           worst, cov4[worst], cov[worst]);
    /* normwise, per patch: |C4 - C1|_F / |C1|_F */
    double rn = 0;
    for (size_t pix = 0; pix < P; pix++) {
        double num = 0, den = 0;
        for (size_t i = 0; i < (size_t)d * d; i++) {
            double a = cov4[pix * d * d + i], b = cov[pix * d * d + i];
            num += (a - b) * (a - b), den += b * b;
        }
        if (den > 0) rn = fmax(rn, sqrt(num / den));
    }
    printf("# PaDiM 4 ranks vs 1 process: covariances max per-patch Frobenius relative difference %.3g\n", rn);
    assert_int_equal(zoff, 0);
    assert_true(rm <= 1e-6 && rc <= 1e-6);
    /* every rank holds the same model; the model is one process's to float32 rounding */
    char p0[700], pr[700];
    snprintf(p0, sizeof p0, "%s/padim4_r0.aibox", g_dir);
    for (int r = 1; r < 4; r++) {
        snprintf(pr, sizeof pr, "%s/padim4_r%d.aibox", g_dir, r);
        assert_true(same_file(p0, pr));
    }
    assert_int_equal(aibox_padim_fit_end(f, &one, &e), AIBOX_OK);
    assert_int_equal(aibox_padim_set_half(one, 0, &e), AIBOX_OK);
    assert_int_equal(aibox_padim_load(&four, p0, &e), AIBOX_OK);
    long images = 0;
    aibox_padim_info(four, NULL, NULL, NULL, &images);
    assert_int_equal(images, N_GOOD);
    const float *m1, *l1, *m4, *l4;
    aibox_padim_tensors(one, &m1, &l1);
    aibox_padim_tensors(four, &m4, &l4);
    size_t T = (size_t)d * (d + 1) / 2;
    double *w = aibox_test_doubles(P * T);
    aibox_test_f2d(m1, w, P * d);
    AIBOX_TEST_CLOSE("float32 means", m4, w, P * d, 1e-6, 1e-6);
    aibox_test_f2d(l1, w, P * T);
    double lmax = 0;
    for (size_t i = 0; i < P * T; i++) lmax = fmax(lmax, fabs(w[i]));
    AIBOX_TEST_CLOSE("float32 inverse factors", l4, w, P * T, 1e-5 * lmax, 1e-4);
    float s1[N_TEST], s4[N_TEST];
    double sd[N_TEST];
    test_scores(one, NULL, s1);
    test_scores(four, NULL, s4);
    aibox_test_f2d(s1, sd, N_TEST);
    double rs = 0;
    for (int i = 0; i < N_TEST; i++) rs = fmax(rs, fabs(s4[i] - sd[i]) / fabs(sd[i]));
    printf("# PaDiM 4 ranks vs 1 process: test image scores max relative difference %.3g\n", rs);
    AIBOX_TEST_CLOSE("scores", s4, sd, N_TEST, 0, 1e-5);
    free(w), free(mean), free(cov), free(mean4), free(cov4);
    aibox_padim_free(&one), aibox_padim_free(&four);
    aibox_padim_fit_free(&f);
    aibox_model_free(&bb);
}

static void test_patchcore_2_ranks(void **state)
{
    (void)state;
    skip_without_data();
    run_ranks(2, "patchcore");
    aibox_model *bb = load_backbone();
    aibox_error e = {0};
    for (int half = 0; half < 2; half++) {
        aibox_patchcore_fit *f = patchcore_fit(bb, half, 0, N_GOOD, 0);
        aibox_patchcore *one = NULL, *two = NULL;
        assert_int_equal(aibox_patchcore_fit_gather(f, NULL, &e), AIBOX_OK);
        assert_int_equal(aibox_patchcore_fit_end(f, &one, &e), AIBOX_OK);
        char p0[700], p1[700];
        snprintf(p0, sizeof p0, "%s/patchcore2_h%d_r0.aibox", g_dir, half);
        snprintf(p1, sizeof p1, "%s/patchcore2_h%d_r1.aibox", g_dir, half);
        assert_true(same_file(p0, p1));
        assert_int_equal(aibox_patchcore_load(&two, p0, &e), AIBOX_OK);
        int D1, D2;
        long K1, K2, n1, n2, pa1, pa2;
        aibox_patchcore_info(one, NULL, NULL, &D1, &K1, &n1, &pa1);
        aibox_patchcore_info(two, NULL, NULL, &D2, &K2, &n2, &pa2);
        assert_true(D1 == D2 && K1 == K2 && n1 == n2 && pa1 == pa2 && n1 == N_GOOD);
        const float *b1 = aibox_patchcore_bank(one), *b2 = aibox_patchcore_bank(two);
        size_t diff = 0;
        for (size_t i = 0; i < (size_t)K1 * D1; i++) diff += b1[i] != b2[i];
        float s1[N_TEST], s2[N_TEST];
        test_scores(NULL, one, s1);
        test_scores(NULL, two, s2);
        double rs = 0;
        for (int i = 0; i < N_TEST; i++) rs = fmax(rs, fabs((double)s2[i] - s1[i]) / fabs((double)s1[i]));
        printf("# PatchCore (%s bank) 2 ranks vs 1 process: coreset %ld of %ld patches x %d, %zu bank values differ, "
               "test scores max relative difference %.3g\n",
               half ? "float16" : "float32", K1, pa1, D1, diff, rs);
        assert_int_equal(diff, 0);
        assert_true(rs == 0);
        aibox_patchcore_free(&one), aibox_patchcore_free(&two);
        aibox_patchcore_fit_free(&f);
    }
    aibox_model_free(&bb);
}

static void test_fit_folder_2_ranks(void **state)
{
    (void)state;
    skip_without_data();
    run_ranks(2, "folder");
    aibox_model *bb = load_backbone();
    aibox_error e = {0};
    for (int m = 0; m < 2; m++) {
        char bad[600], good[600], p0[700], p1[700];
        aibox_patchcore_opts pc = patchcore_opts(0);
        aibox_fit_opts fo =
            folder_opts(m ? AIBOX_ANOMALY_PATCHCORE : AIBOX_ANOMALY_PADIM, &PADIM_OPTS, &pc, bad, sizeof bad);
        fo.threads = 0;
        aibox_detector *one = NULL, *two = NULL;
        aibox_fit_report rep;
        snprintf(good, sizeof good, "%s/good", g_dir);
        assert_int_equal(aibox_detector_fit_folder(&one, bb, good, &fo, &rep, &e), AIBOX_OK);
        snprintf(p0, sizeof p0, "%s/folder2_m%d_r0.aibox", g_dir, m);
        snprintf(p1, sizeof p1, "%s/folder2_m%d_r1.aibox", g_dir, m);
        assert_true(same_file(p0, p1)); /* every rank: the same detector */
        assert_int_equal(aibox_detector_load(&two, p0, 0, &e), AIBOX_OK);
        char name[64];
        for (int r = 0; r < 2; r++) { /* the same report on every rank, one process's */
            snprintf(name, sizeof name, "folder2_m%d_r%d.rep", m, r);
            double *r2 = read_doubles(name, 5);
            assert_true(r2[0] == rep.fit && r2[1] == rep.holdout && r2[2] == rep.abnormal && r2[3] == rep.skipped);
            assert_true(fabs(r2[4] - rep.stats.image_auroc) <= 1e-12);
            free(r2);
        }
        assert_int_equal(rep.skipped, 1); /* the broken file, counted once */
        assert_int_equal(rep.abnormal, N_BAD);
        const aibox_thresholds *t1 = aibox_detector_thresholds(one), *t2 = aibox_detector_thresholds(two);
        double th1[5] = {t1->image, t1->pixel, t1->score_min, t1->score_max, t1->image_f1};
        double th2[5] = {t2->image, t2->pixel, t2->score_min, t2->score_max, t2->image_f1};
        double rt = 0;
        for (int i = 0; i < 5; i++) rt = fmax(rt, fabs(th2[i] - th1[i]) / fabs(th1[i]));
        /* the fitted-file records */
        int n1 = 0, n2 = 0;
        const int64_t *f1 = NULL, *f2 = NULL;
        assert_int_equal(aibox_model_get_meta_ints(aibox_detector_model(one), AIBOX_META_ANOMALY_FIT_FINGERPRINTS, &n1,
                                                   &f1),
                         AIBOX_OK);
        assert_int_equal(aibox_model_get_meta_ints(aibox_detector_model(two), AIBOX_META_ANOMALY_FIT_FINGERPRINTS, &n2,
                                                   &f2),
                         AIBOX_OK);
        assert_true(n1 == n2 && n1 == rep.fit && !memcmp(f1, f2, sizeof *f1 * (size_t)n1));
        /* scores of the test images */
        aibox_file_list l = list("test");
        double rs = 0;
        for (int i = 0; i < l.n; i++) {
            aibox_image img = {0};
            float a = 0, b = 0;
            assert_int_equal(aibox_image_load(&img, l.path[i], 0, &e), AIBOX_OK);
            assert_int_equal(aibox_detector_score(one, &img, &a, &e), AIBOX_OK);
            assert_int_equal(aibox_detector_score(two, &img, &b, &e), AIBOX_OK);
            rs = fmax(rs, fabs((double)b - a) / fabs((double)a));
            aibox_image_free(&img);
        }
        aibox_file_list_free(&l);
        printf("# fit_folder_dist %s, 2 ranks vs 1 process (fit %d, held out %d, defects %d, skipped %d): thresholds "
               "max relative difference %.3g (image %.6g, pixel %.6g), test scores %.3g\n",
               m ? "PatchCore" : "PaDiM", rep.fit, rep.holdout, rep.abnormal, rep.skipped, rt, t1->image, t1->pixel,
               rs);
        if (m) assert_true(rt == 0 && rs == 0); /* PatchCore: bit for bit */
        else assert_true(rt <= 1e-5 && rs <= 1e-5); /* PaDiM: float32 rounding of the merged statistics */
        aibox_detector_free(&one), aibox_detector_free(&two);
    }
    aibox_model_free(&bb);
}

static void test_mismatch_and_unsupported(void **state)
{
    (void)state;
    skip_without_data();
    run_ranks(2, "mismatch"); /* the worker checks every rank got AIBOX_E_INVALID */
    /* the auto-encoder across ranks: refused before any collective */
    aibox_comm two = aibox_comm_single();
    two.size = 2;
    aibox_fit_opts fo = {.method = AIBOX_ANOMALY_AUTOENCODER};
    aibox_detector *d = NULL;
    aibox_error e = {0};
    char good[600];
    snprintf(good, sizeof good, "%s/good", g_dir);
    assert_int_equal(aibox_detector_fit_folder_dist(&d, NULL, good, &fo, &two, NULL, &e), AIBOX_E_UNSUPPORTED);
    print_message("# auto-encoder across ranks: %s\n", e.msg);
    assert_null(d);
}

/* The suite's folder: the backbone, the first N_GOOD (sorted) defect-free
 * tiles in good/ with a broken file, the next N_TEST in test/, N_BAD blowhole
 * images with their masks in bad/ (links into $AIBOX_DATA). */
static int setup(void **state)
{
    (void)state;
    const char *data = getenv("AIBOX_DATA");
    char free_dir[600], hole_dir[600], p[2400];
    if (!data || !*data) return g_skip = "AIBOX_DATA is not set (the magnetic-tile images)", 0;
    snprintf(free_dir, sizeof free_dir, "%s/magnetic-tile/MT_Free/Imgs", data);
    snprintf(hole_dir, sizeof hole_dir, "%s/magnetic-tile/MT_Blowhole/Imgs", data);
    if (access(free_dir, R_OK) || access(hole_dir, R_OK)) return g_skip = "no $AIBOX_DATA/magnetic-tile", 0;
    if (aibox_test_run(NULL, 0, "command -v mpirun >/dev/null") != 0) return g_skip = "mpirun not found", 0;
    if (aibox_test_mkdtemp(g_dir, sizeof g_dir, "distfit")) return -1;
    aibox_file_list fl = {0}, bl = {0};
    aibox_error e = {0};
    aibox_list_opts lo = {.images_only = 1, .skip_masks = 1};
    if (aibox_list_files(&fl, free_dir, &lo, &e) || aibox_list_files(&bl, hole_dir, &lo, &e) ||
        fl.n < N_GOOD + N_TEST || bl.n < N_BAD)
        return g_skip = "too few magnetic-tile images", 0;
    snprintf(p, sizeof p, "mkdir -p '%s/good' '%s/test' '%s/bad'", g_dir, g_dir, g_dir);
    if (system(p)) return -1;
    for (int i = 0; i < N_GOOD + N_TEST; i++) {
        const char *leaf = strrchr(fl.path[i], '/') + 1;
        snprintf(p, sizeof p, "%s/%s/%s", g_dir, i < N_GOOD ? "good" : "test", leaf);
        if (symlink(fl.path[i], p)) return -1;
    }
    for (int i = 0; i < N_BAD; i++) {
        const char *leaf = strrchr(bl.path[i], '/') + 1;
        snprintf(p, sizeof p, "%s/bad/%s", g_dir, leaf);
        if (symlink(bl.path[i], p)) return -1;
        char mask[2400], dst[2400]; /* STEM.png beside it */
        snprintf(mask, sizeof mask, "%.*s.png", (int)(strrchr(bl.path[i], '.') - bl.path[i]), bl.path[i]);
        snprintf(dst, sizeof dst, "%.*s.png", (int)(strrchr(p, '.') - p), p);
        if (symlink(mask, dst)) return -1;
    }
    aibox_file_list_free(&fl), aibox_file_list_free(&bl);
    snprintf(p, sizeof p, "%s/good/zz_broken.jpg", g_dir); /* skipped by the folder fits, counted once */
    FILE *f = fopen(p, "wb");
    if (!f) return -1;
    fputs("not an image", f);
    fclose(f);
    /* a ResNet-18 with its preset's seeded random weights, grey input */
    aibox_model *bb = NULL;
    if (aibox_preset_resnet18(&bb, 2, 3, SIZE, &e)) return print_message("%s\n", e.msg), -1;
    snprintf(p, sizeof p, "%s/bb.aibox", g_dir);
    if (aibox_model_save(bb, p, &e)) return print_message("%s\n", e.msg), -1;
    aibox_model_free(&bb);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (g_dir[0] && !getenv("AIBOX_TEST_KEEP")) aibox_test_rm_rf(g_dir);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "--worker")) {
        snprintf(g_dir, sizeof g_dir, "%s", argv[3]);
        return worker(argv[2]);
    }
    ssize_t n = readlink("/proc/self/exe", g_self, sizeof g_self - 1);
    if (n <= 0) return 1;
    g_self[n] = 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_padim_4_ranks),
        cmocka_unit_test(test_patchcore_2_ranks),
        cmocka_unit_test(test_fit_folder_2_ranks),
        cmocka_unit_test(test_mismatch_and_unsupported),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

/* PaDiM: feature taps, streaming per-patch Gaussian fit, Mahalanobis maps.
 *
 * Fit: every patch keeps double sums of (f - K) and (f - K)(f - K)^T, where
 * K is the first image's feature at that patch: shifting by a sample keeps
 * the one-pass covariance free of cancellation, and the memory is fixed by
 * the grid and d, not by the number of images. The outer products go
 * through BLAS (dsyrk over a batch); patches are split over threads.
 * Scoring: z = L^-1 (f - mean) with the packed inverse Cholesky factor,
 * distance = |z|. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "core/core.h"
#include "core/pool.h"
#include "io/model_io.h"
#include "nn/nn.h"
#include "anomaly/gridmap.h"
#include "anomaly/dist.h"
#include "padim/padim.h"

/* LAPACK as shipped inside OpenBLAS (Fortran calling convention). */
extern void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t uplo_len);
extern void dtrtri_(const char *uplo, const char *diag, const int *n, double *a, const int *lda, int *info,
                    size_t uplo_len, size_t diag_len);
extern void dgeqrf_(const int *m, const int *n, double *a, const int *lda, double *tau, double *work,
                    const int *lwork, int *info);
extern void dorgqr_(const int *m, const int *n, const int *k, double *a, const int *lda, const double *tau,
                    double *work, const int *lwork, int *info);

struct aibox_padim {
    aibox_model *trunk; /* backbone cut after the deepest tap; holds the metadata */
    int n_taps, tap[AIBOX_PADIM_MAX_TAPS];
    int tap_c[AIBOX_PADIM_MAX_TAPS], tap_k[AIBOX_PADIM_MAX_TAPS]; /* channels, grid / tap size */
    int F, d, gh, gw, P;
    size_t T;      /* d (d + 1) / 2 */
    int *idx;      /* AIBOX_PADIM_RANDOM: d channel indices into the F concatenated ones */
    float *proj;   /* AIBOX_PADIM_ORTHOGONAL: F x d */
    float *mean;   /* P x d */
    float *linv;   /* P x T */
    uint16_t *linv_h; /* the same in IEEE half precision (aibox.padim.half = 1), or NULL */
    float sigma;   /* map blur; <= 0: none */
    double reg;    /* covariance regularisation */
    long images;
};

struct aibox_padim_fit {
    aibox_padim *p; /* taps, channel choice; mean/linv filled at the end */
    aibox_ctx *ctx;
    aibox_pool *pool; /* the backbone context's (borrowed) */
    int batch, threads;
    float *emb;   /* batch x P x d */
    float *full;  /* P x F (orthogonal projection only) */
    double *K, *S1, *S2; /* P x d, P x d, P x d x d */
    double *V;    /* threads x batch x d scratch */
    long n;
    int reduced;  /* 1: the sums are all ranks' (aibox_padim_fit_reduce) */
};

struct aibox_padim_ctx {
    const aibox_padim *p;
    aibox_ctx *ctx;
    aibox_pool *pool; /* the backbone context's (borrowed) */
    int max_batch;
    float *emb;  /* max_batch x P x d */
    float *full; /* P x F */
    float *grid; /* max_batch x P */
    float *diff; /* threads x max_batch x d */
    aibox_maha_fn maha;   /* chosen at creation with the factor it reads: */
    const char *factor;   /* the model's float32 or half factors */
    size_t factor_bytes;  /* per patch */
    float *map1;        /* one map when the caller wants scores only: h x w */
    aibox_gridmap gmap; /* grid -> map */
};

/* Scoring is |L^-1 (f - mean)| per patch: the kernels are lib/ops/maha.c's
 * (plain C, and vector ones where this build and the CPU have them). The
 * factor (P * d(d+1)/2 floats, 63 MB at d = 100) is the one big operand, so
 * scoring is bound by memory bandwidth; a half-precision copy halves it where
 * a vector kernel reads half (F16C, NEON). The choice is made once per context from
 * aibox_cpu_features(); AIBOX_PADIM_KERNEL=generic forces the plain-C float32
 * kernel (a test hook: tests compare the paths). */
static aibox_maha_kernel maha_choose(const aibox_padim *p, const char **factor, size_t *bytes)
{
    const char *force = getenv("AIBOX_PADIM_KERNEL");
    unsigned features = force && !strcmp(force, "generic") ? 0 : aibox_cpu_features();
    aibox_maha_kernel k = aibox_maha_pick(features, p->linv_h != NULL);
    *factor = k.half ? (const char *)p->linv_h : (const char *)p->linv;
    *bytes = p->T * (k.half ? sizeof(uint16_t) : sizeof(float));
    return k;
}

void aibox_padim_free(aibox_padim **pp)
{
    if (!pp || !*pp) return;
    aibox_padim *p = *pp;
    aibox_model_free(&p->trunk);
    free(p->idx);
    aibox_free(p->proj);
    aibox_free(p->mean);
    aibox_free(p->linv);
    aibox_free(p->linv_h);
    free(p);
    *pp = NULL;
}

aibox_model *aibox_padim_model(aibox_padim *p) { return p ? p->trunk : NULL; }
const aibox_model *aibox_padim_model_const(const aibox_padim *p) { return p ? p->trunk : NULL; }

void aibox_padim_info(const aibox_padim *p, int *gw, int *gh, int *dims, long *images)
{
    if (gw) *gw = p ? p->gw : 0;
    if (gh) *gh = p ? p->gh : 0;
    if (dims) *dims = p ? p->d : 0;
    if (images) *images = p ? p->images : 0;
}

/* Tap geometry from the trunk: every tap's size must divide the first's. */
static aibox_status tap_geometry(aibox_padim *p, const char *name, aibox_error *err)
{
    const aibox_model *m = p->trunk;
    int c0, h0, w0;
    aibox_model_node_shape(m, p->tap[0], &c0, &h0, &w0);
    if ((int64_t)h0 * w0 > INT32_MAX) /* the node limits keep it below 2^31; checked, not assumed */
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: PaDiM tap grid %dx%d is too large", name, w0, h0);
    p->gh = h0, p->gw = w0, p->P = h0 * w0, p->F = 0;
    for (int t = 0; t < p->n_taps; t++) {
        int c, h, w;
        if (p->tap[t] < 1 || p->tap[t] >= aibox_model_node_count(m))
            return aibox_fail(err, AIBOX_E_FORMAT, "%s: PaDiM tap %d names node %d, which does not exist", name, t,
                              p->tap[t]);
        aibox_model_node_shape(m, p->tap[t], &c, &h, &w);
        if (h < 1 || w < 1 || h0 % h || w0 % w || h0 / h != w0 / w)
            return aibox_fail(err, AIBOX_E_FORMAT, "%s: PaDiM tap %d (%dx%d) does not divide the first tap's %dx%d grid",
                              name, t, w, h, w0, h0);
        p->tap_c[t] = c, p->tap_k[t] = h0 / h;
        p->F += c;
    }
    return AIBOX_OK;
}

/* One image's d-vector per patch: emb[pix * d + j]. */
/* Grid rows [y0, y1) of one image's d-vectors, emb[pix * d + j] (disjoint
 * rows can be filled by different threads). */
static void embed_rows(const aibox_padim *p, aibox_ctx *ctx, int b, float *emb, float *full, int y0, int y1)
{
    int d = p->d, gw = p->gw;
    if (p->idx) {
        int j = 0, base = 0;
        for (int t = 0; t < p->n_taps; t++) {
            int c, h, w;
            const float *a = aibox_ctx_node_output(ctx, p->tap[t], &c, &h, &w);
            a += (size_t)b * c * h * w;
            int k = p->tap_k[t];
            for (; j < d && p->idx[j] < base + c; j++) {
                const float *ch = a + (size_t)(p->idx[j] - base) * h * w;
                for (int y = y0; y < y1; y++)
                    for (int x = 0; x < gw; x++) emb[(size_t)(y * gw + x) * d + j] = ch[(y / k) * w + x / k];
            }
            base += c;
        }
        return;
    }
    int base = 0;
    for (int t = 0; t < p->n_taps; t++) {
        int c, h, w;
        const float *a = aibox_ctx_node_output(ctx, p->tap[t], &c, &h, &w);
        a += (size_t)b * c * h * w;
        int k = p->tap_k[t];
        for (int ci = 0; ci < c; ci++)
            for (int y = y0; y < y1; y++)
                for (int x = 0; x < gw; x++)
                    full[(size_t)(y * gw + x) * p->F + base + ci] = a[(size_t)ci * h * w + (y / k) * w + x / k];
        base += c;
    }
    size_t r0 = (size_t)y0 * gw;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (y1 - y0) * gw, d, p->F, 1.0f, full + r0 * p->F, p->F,
                p->proj, d, 0.0f, emb + r0 * d, d);
}

typedef struct embed_job {
    const aibox_padim *p;
    aibox_ctx *ctx;
    float *emb, *full; /* emb: images x P x d, from image 0 */
    int b0, per;       /* first image of this run; tasks per image (grid row ranges) */
} embed_job;

static void embed_task(void *arg, int task, int thread)
{
    (void)thread;
    embed_job *j = arg;
    int b = j->b0 + task / j->per, y0, y1;
    aibox_share(j->p->gh, 1, task % j->per, j->per, &y0, &y1);
    embed_rows(j->p, j->ctx, b, j->emb + (size_t)b * j->p->P * j->p->d, j->full, y0, y1);
}

/* All n images' embeddings over the pool, by image and grid rows. The
 * projection's gather buffer holds one image, so those go one at a time. */
static void embed_all(const aibox_padim *p, aibox_ctx *ctx, aibox_pool *pool, int threads, int n, float *emb,
                      float *full)
{
    embed_job j = {p, ctx, emb, full, 0, threads};
    if (p->proj) {
        for (j.b0 = 0; j.b0 < n; j.b0++) aibox_pool_run(pool, j.per, embed_task, &j);
        return;
    }
    aibox_pool_run(pool, n * j.per, embed_task, &j);
}

/* ------------------------------------------------------------------ fit */
void aibox_padim_fit_free(aibox_padim_fit **pf)
{
    if (!pf || !*pf) return;
    aibox_padim_fit *f = *pf;
    aibox_padim_free(&f->p);
    aibox_ctx_free(&f->ctx);
    aibox_free(f->emb), aibox_free(f->full);
    aibox_free(f->K), aibox_free(f->S1), aibox_free(f->S2), aibox_free(f->V);
    free(f);
    *pf = NULL;
}

/* A seeded semi-orthogonal F x d matrix: Q of the QR of a Gaussian matrix. */
static aibox_status make_projection(aibox_padim *p, uint64_t seed, aibox_error *err)
{
    int F = p->F, d = p->d, info = 0, lwork = -1;
    double *a = malloc(sizeof(double) * (size_t)F * d), *tau = malloc(sizeof(double) * (size_t)d), q = 0;
    p->proj = aibox_alloc(sizeof(float) * (size_t)F * d);
    if (!a || !tau || !p->proj) {
        free(a), free(tau);
        return aibox_fail(err, AIBOX_E_NOMEM, "padim: out of memory for a %dx%d projection", F, d);
    }
    aibox_rng r;
    aibox_rng_seed(&r, seed);
    for (size_t i = 0; i < (size_t)F * d; i++) a[i] = aibox_rng_normal(&r); /* column-major F x d */
    dgeqrf_(&F, &d, a, &F, tau, &q, &lwork, &info);
    lwork = (int)q > d ? (int)q : d;
    double *work = malloc(sizeof(double) * (size_t)lwork);
    if (work) dgeqrf_(&F, &d, a, &F, tau, work, &lwork, &info);
    if (work && !info) dorgqr_(&F, &d, &d, a, &F, tau, work, &lwork, &info);
    free(work), free(tau);
    if (!work || info) {
        free(a);
        return aibox_fail(err, work ? AIBOX_E_INVALID : AIBOX_E_NOMEM, "padim: QR of the projection failed (%d)", info);
    }
    for (int i = 0; i < F; i++)
        for (int j = 0; j < d; j++) p->proj[(size_t)i * d + j] = (float)a[i + (size_t)j * F];
    free(a);
    return AIBOX_OK;
}

aibox_status aibox_padim_fit_begin(aibox_padim_fit **out, const aibox_model *bb, const aibox_padim_opts *o, int batch,
                                   int threads, aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "padim: NULL fit pointer");
    *out = NULL;
    if (!bb || !bb->finished) return aibox_fail(err, AIBOX_E_STATE, "padim: the backbone is not a finished model");
    if (batch < 1 || batch > 4096) return aibox_fail(err, AIBOX_E_INVALID, "padim: batch %d out of range 1..4096", batch);
    aibox_padim_opts def = {0};
    if (!o) o = &def;
    int n_taps = o->n_taps ? o->n_taps : 3, strides[AIBOX_PADIM_MAX_TAPS] = {4, 8, 16, 32};
    if (n_taps < 1 || n_taps > AIBOX_PADIM_MAX_TAPS)
        return aibox_fail(err, AIBOX_E_INVALID, "padim: %d taps (1 to %d)", n_taps, AIBOX_PADIM_MAX_TAPS);
    if (o->n_taps) memcpy(strides, o->strides, sizeof strides);
    if (o->reg < 0 || !isfinite(o->reg)) return aibox_fail(err, AIBOX_E_INVALID, "padim: regularisation %g < 0", o->reg);

    aibox_padim_fit *f = calloc(1, sizeof *f);
    aibox_padim *p = f ? calloc(1, sizeof *p) : NULL;
    if (!p) {
        free(f);
        return aibox_fail(err, AIBOX_E_NOMEM, "padim: out of memory");
    }
    f->p = p;
    aibox_status s = AIBOX_OK;
    int deepest = 0;
    for (int t = 0; t < n_taps && !s; t++) {
        int node = aibox_model_stride_node(bb, strides[t]);
        int c, h, w;
        aibox_model_input_shape(bb, &c, &h, &w);
        if (node < 1)
            s = aibox_fail(err, AIBOX_E_INVALID, "padim: the backbone has no stage at stride %d (input %dx%d)",
                           strides[t], w, h);
        else if (t && strides[t] <= strides[t - 1])
            s = aibox_fail(err, AIBOX_E_INVALID, "padim: tap strides must ascend (%d after %d)", strides[t],
                           strides[t - 1]);
        p->tap[t] = node;
        deepest = AIBOX_MAX(deepest, node);
    }
    int *map = s ? NULL : malloc(sizeof(int) * (size_t)bb->n_nodes);
    if (!s && !map) s = aibox_fail(err, AIBOX_E_NOMEM, "padim: out of memory");
    if (!s) s = aibox_model_extract(&p->trunk, bb, deepest, map, err);
    p->n_taps = n_taps;
    for (int t = 0; t < n_taps && !s; t++) p->tap[t] = map[p->tap[t]];
    free(map);
    if (!s) s = tap_geometry(p, "backbone", err);
    if (!s) {
        p->d = o->dims ? o->dims : AIBOX_MIN(100, p->F);
        if (p->d < 1 || p->d > p->F)
            s = aibox_fail(err, AIBOX_E_INVALID, "padim: %d dimensions asked, the taps give %d channels (1..%d)", p->d,
                           p->F, p->F);
        p->T = (size_t)p->d * (p->d + 1) / 2;
        p->sigma = o->blur_sigma == 0 ? 4.0f : o->blur_sigma;
        p->reg = o->reg > 0 ? o->reg : 0.01;
    }
    if (!s && o->projection == AIBOX_PADIM_ORTHOGONAL) {
        s = make_projection(p, o->seed, err);
    } else if (!s && o->projection == AIBOX_PADIM_RANDOM) {
        /* a seeded subset, sorted (the order does not change a Mahalanobis distance) */
        int *perm = malloc(sizeof(int) * (size_t)p->F);
        p->idx = malloc(sizeof(int) * (size_t)p->d);
        if (!perm || !p->idx) s = aibox_fail(err, AIBOX_E_NOMEM, "padim: out of memory");
        else {
            aibox_rng r;
            aibox_rng_seed(&r, o->seed);
            for (int i = 0; i < p->F; i++) perm[i] = i;
            for (int i = 0; i < p->d; i++) {
                int j = i + (int)aibox_rng_below(&r, (uint32_t)(p->F - i)), t = perm[i];
                perm[i] = perm[j], perm[j] = t;
            }
            memset(p->idx, 0, sizeof(int) * (size_t)p->d);
            unsigned char *pick = calloc((size_t)p->F, 1);
            if (!pick) s = aibox_fail(err, AIBOX_E_NOMEM, "padim: out of memory");
            for (int i = 0; pick && i < p->d; i++) pick[perm[i]] = 1;
            for (int i = 0, j = 0; pick && i < p->F; i++)
                if (pick[i]) p->idx[j++] = i;
            free(pick);
        }
        free(perm);
    } else if (!s) {
        s = aibox_fail(err, AIBOX_E_INVALID, "padim: unknown projection %d", (int)o->projection);
    }
    int c, h, w;
    aibox_model_input_shape(bb, &c, &h, &w);
    if (!s) s = aibox_ctx_create(&f->ctx, p->trunk, &(aibox_ctx_opts){.max_batch = batch, .height = h, .width = w, .threads = threads}, err);
    if (!s) s = aibox_ctx_freeze_weights(f->ctx, p->trunk, err); /* the trunk's weights never change */
    if (!s) {
        f->threads = aibox_ctx_threads(f->ctx);
        f->batch = batch;
        f->pool = aibox_ctx_pool(f->ctx);
    }
    if (!s) {
        size_t Pd = (size_t)p->P * p->d;
        f->emb = aibox_alloc(sizeof(float) * Pd * batch);
        f->full = p->proj ? aibox_alloc(sizeof(float) * (size_t)p->P * p->F) : NULL;
        f->K = aibox_alloc(sizeof(double) * Pd);
        f->S1 = aibox_alloc(sizeof(double) * Pd);
        f->S2 = aibox_alloc(sizeof(double) * Pd * p->d);
        f->V = aibox_alloc(sizeof(double) * (size_t)f->threads * batch * p->d);
        if (!f->emb || (p->proj && !f->full) || !f->K || !f->S1 || !f->S2 || !f->V)
            s = aibox_fail(err, AIBOX_E_NOMEM, "padim: cannot allocate %zu MB of statistics for %d patches x %d dims",
                           (sizeof(double) * Pd * (p->d + 2)) >> 20, p->P, p->d);
        else {
            memset(f->S1, 0, sizeof(double) * Pd);
            memset(f->S2, 0, sizeof(double) * Pd * p->d);
        }
    }
    if (s) {
        aibox_padim_fit_free(&f);
        return s;
    }
    *out = f;
    return AIBOX_OK;
}

aibox_status aibox_padim_fit_preproc(const aibox_padim_fit *f, aibox_preproc *pp, aibox_error *err)
{
    if (!f || !pp) return aibox_fail(err, AIBOX_E_INVALID, "padim: NULL argument");
    if (!f->p) return aibox_fail(err, AIBOX_E_STATE, "padim: the fit was already ended");
    return aibox_preproc_from_model(pp, f->p->trunk, err);
}

long aibox_padim_fit_count(const aibox_padim_fit *f) { return f ? f->n : 0; }

size_t aibox_padim_fit_bytes(const aibox_padim_fit *f)
{
    if (!f || !f->p) return 0;
    size_t Pd = (size_t)f->p->P * f->p->d;
    return aibox_ctx_bytes(f->ctx) + sizeof(float) * Pd * f->batch + sizeof(double) * Pd * (f->p->d + 2) +
           sizeof(double) * (size_t)f->threads * f->batch * f->p->d +
           (f->full ? sizeof(float) * (size_t)f->p->P * f->p->F : 0);
}


typedef struct accum_job {
    aibox_padim_fit *f;
    int nb, tasks;
} accum_job;

static void accum_task(void *arg, int task, int thread)
{
    accum_job *j = arg;
    aibox_padim_fit *f = j->f;
    int P = f->p->P, d = f->p->d, nb = j->nb;
    int p0, p1;
    aibox_share(P, 1, task, j->tasks, &p0, &p1);
    double *V = f->V + (size_t)thread * f->batch * d;
    for (int pix = p0; pix < p1; pix++) {
        const double *K = f->K + (size_t)pix * d;
        double *S1 = f->S1 + (size_t)pix * d;
        for (int b = 0; b < nb; b++) {
            const float *e = f->emb + ((size_t)b * P + pix) * d;
            double *v = V + (size_t)b * d;
            for (int i = 0; i < d; i++) v[i] = (double)e[i] - K[i], S1[i] += v[i];
        }
        /* column-major d x nb (each image's vector contiguous): S2 += V V^T, lower */
        cblas_dsyrk(CblasColMajor, CblasLower, CblasNoTrans, d, nb, 1.0, V, d, 1.0, f->S2 + (size_t)pix * d * d, d);
    }
}

aibox_status aibox_padim_fit_add(aibox_padim_fit *f, const float *x, int n, aibox_error *err)
{
    if (!f || (!x && n)) return aibox_fail(err, AIBOX_E_INVALID, "padim: NULL argument");
    if (!f->p) return aibox_fail(err, AIBOX_E_STATE, "padim: the fit was already ended");
    if (n < 0) return aibox_fail(err, AIBOX_E_INVALID, "padim: %d images", n);
    if (f->reduced && n)
        return aibox_fail(err, AIBOX_E_STATE, "padim: the fit was reduced across ranks: add every image before");
    aibox_padim *p = f->p;
    int c, h, w;
    aibox_model_input_shape(p->trunk, &c, &h, &w);
    size_t in = (size_t)c * h * w, Pd = (size_t)p->P * p->d;
    for (int done = 0; done < n;) {
        int nb = AIBOX_MIN(f->batch, n - done);
        aibox_status s = aibox_ctx_infer(f->ctx, p->trunk, x + in * done, nb, err);
        if (s) return s;
        embed_all(p, f->ctx, f->pool, f->threads, nb, f->emb, f->full);
        for (size_t i = 0; i < Pd * nb; i++)
            if (!isfinite(f->emb[i]))
                return aibox_fail(err, AIBOX_E_INVALID, "padim: the backbone gave a non-finite feature (image %ld)",
                                  f->n + done + (long)(i / Pd));
        if (f->n == 0)
            for (size_t i = 0; i < Pd; i++) f->K[i] = f->emb[i];
        accum_job j = {f, nb, f->threads * 4};
        aibox_pool_run(f->pool, j.tasks, accum_task, &j);
        f->n += nb;
        done += nb;
    }
    return AIBOX_OK;
}

/* ------------------------------------------------------------------ across ranks */
/* Each rank's sums are shifted by its own K (its first image): they move to
 * a common one, the first rank's with images (with contiguous shards in rank
 * order, one process's K), then add up. For a shift delta = K_r - K_c:
 * S1' = S1 + n delta, S2' = S2 + delta S1^T + S1 delta^T + n delta delta^T
 * = S2 + u delta^T + delta u^T with u = S1 + n/2 delta (dsyr2, lower). The
 * sums travel packed (S1 and the lower triangle of S2), a slice of patches
 * at a time. */
aibox_status aibox_padim_fit_reduce(aibox_padim_fit *f, const aibox_comm *comm, aibox_error *err)
{
    if (!f) return aibox_fail(err, AIBOX_E_INVALID, "padim: NULL fit");
    if (!f->p) return aibox_fail(err, AIBOX_E_STATE, "padim: the fit was already ended");
    aibox_status s = aibox_comm_check(comm, err);
    if (s) return s;
    int N = aibox_comm_ranks(comm), me = aibox_comm_rank(comm);
    if (N == 1) return AIBOX_OK;
    if (f->reduced) return aibox_fail(err, AIBOX_E_STATE, "padim: the fit was already reduced across ranks");
    aibox_padim *p = f->p;
    int d = p->d;
    size_t Pd = (size_t)p->P * d, per = (size_t)d + p->T;
    int slice = (int)AIBOX_MAX((size_t)1, AIBOX_MIN((size_t)p->P, ((size_t)16 << 20) / (sizeof(double) * per)));
    double *counts = calloc((size_t)N, sizeof(double)), *Kc = aibox_alloc(sizeof(double) * Pd);
    double *buf = aibox_alloc(sizeof(double) * per * (size_t)slice), *u = malloc(sizeof(double) * (size_t)d);
    if (!counts || !Kc || !buf || !u) s = aibox_fail(err, AIBOX_E_NOMEM, "padim: out of memory for the reduction");
    /* the same fit everywhere: grid, dimensions, channel choice or projection */
    uint32_t v[4] = {(uint32_t)p->P, (uint32_t)d, 2166136261u, (uint32_t)p->n_taps};
    if (p->idx) v[2] = aibox_dist_hash(v[2], p->idx, sizeof(int) * (size_t)d);
    if (p->proj) v[2] = aibox_dist_hash(v[2], p->proj, sizeof(float) * (size_t)p->F * d);
    s = aibox_dist_agree(comm, s, "the PaDiM fit (grid, dimensions, taps, channels or projection)", v, 4, err);
    if (!s) {
        counts[me] = (double)f->n;
        s = aibox_comm_sum_f64(comm, counts, (size_t)N, err);
    }
    int root = 0;
    double total = 0;
    for (int r = 0; !s && r < N; r++) {
        if (counts[r] > 0 && total == 0) root = r;
        total += counts[r];
    }
    if (!s && total > 0) { /* the common shift */
        if (me == root) memcpy(Kc, f->K, sizeof(double) * Pd);
        s = aibox_comm_bcast(comm, Kc, sizeof(double) * Pd, root, err);
    }
    if (!s && total > 0 && f->n > 0 && me != root) {
        double n = (double)f->n;
        for (int pix = 0; pix < p->P; pix++) {
            double *S1 = f->S1 + (size_t)pix * d, *S2 = f->S2 + (size_t)pix * d * d;
            const double *K = f->K + (size_t)pix * d, *C = Kc + (size_t)pix * d;
            double *delta = f->V; /* scratch: threads x batch x d >= d */
            for (int i = 0; i < d; i++) delta[i] = K[i] - C[i], u[i] = S1[i] + 0.5 * n * delta[i];
            cblas_dsyr2(CblasColMajor, CblasLower, d, 1.0, u, 1, delta, 1, S2, d);
            for (int i = 0; i < d; i++) S1[i] += n * delta[i];
        }
    }
    if (!s && total > 0) memcpy(f->K, Kc, sizeof(double) * Pd);
    for (int p0 = 0; !s && total > 0 && p0 < p->P; p0 += slice) {
        int np = AIBOX_MIN(slice, p->P - p0);
        for (int k = 0; k < np; k++) { /* pack: S1, then S2's lower triangle by columns */
            double *b = buf + (size_t)k * per;
            const double *S2 = f->S2 + (size_t)(p0 + k) * d * d;
            memcpy(b, f->S1 + (size_t)(p0 + k) * d, sizeof(double) * d);
            b += d;
            for (int jc = 0; jc < d; jc++)
                for (int i = jc; i < d; i++) *b++ = S2[i + (size_t)jc * d];
        }
        s = aibox_comm_sum_f64(comm, buf, per * (size_t)np, err);
        for (int k = 0; !s && k < np; k++) {
            const double *b = buf + (size_t)k * per;
            double *S2 = f->S2 + (size_t)(p0 + k) * d * d;
            memcpy(f->S1 + (size_t)(p0 + k) * d, b, sizeof(double) * d);
            b += d;
            for (int jc = 0; jc < d; jc++)
                for (int i = jc; i < d; i++) S2[i + (size_t)jc * d] = *b++;
        }
    }
    if (!s) f->n = (long)total, f->reduced = 1;
    free(counts), free(u);
    aibox_free(Kc), aibox_free(buf);
    return s;
}

aibox_status aibox_padim_fit_moments(const aibox_padim_fit *f, double *mean, double *cov, aibox_error *err)
{
    if (!f || !f->p) return aibox_fail(err, AIBOX_E_STATE, "padim: no fit");
    if (f->n < 1) return aibox_fail(err, AIBOX_E_STATE, "padim: no images were added");
    const aibox_padim *p = f->p;
    int d = p->d;
    double n = (double)f->n, den = f->n > 1 ? n - 1 : 1;
    for (int pix = 0; pix < p->P; pix++) {
        const double *S1 = f->S1 + (size_t)pix * d, *S2 = f->S2 + (size_t)pix * d * d, *K = f->K + (size_t)pix * d;
        for (int i = 0; mean && i < d; i++) mean[(size_t)pix * d + i] = K[i] + S1[i] / n;
        for (int jc = 0; cov && jc < d; jc++)
            for (int i = jc; i < d; i++) {
                double c = (S2[i + (size_t)jc * d] - S1[i] * S1[jc] / n) / den;
                cov[((size_t)pix * d + i) * d + jc] = cov[((size_t)pix * d + jc) * d + i] = c;
            }
    }
    return AIBOX_OK;
}

void aibox_padim_tensors(const aibox_padim *p, const float **mean, const float **linv)
{
    if (mean) *mean = p ? p->mean : NULL;
    if (linv) *linv = p ? p->linv : NULL;
}

typedef struct solve_job {
    aibox_padim_fit *f;
    double reg;
    double *work; /* threads x d x d */
    int tasks;
    int bad_patch, bad_info; /* first failure (written under no lock: any one is fine to report) */
} solve_job;

static void solve_task(void *arg, int task, int thread)
{
    solve_job *j = arg;
    aibox_padim_fit *f = j->f;
    aibox_padim *p = f->p;
    int P = p->P, d = p->d;
    double n = (double)f->n, den = f->n > 1 ? n - 1 : 1;
    int p0, p1;
    aibox_share(P, 1, task, j->tasks, &p0, &p1);
    double *a = j->work + (size_t)thread * d * d;
    for (int pix = p0; pix < p1; pix++) {
        const double *S1 = f->S1 + (size_t)pix * d, *S2 = f->S2 + (size_t)pix * d * d, *K = f->K + (size_t)pix * d;
        float *mean = p->mean + (size_t)pix * d;
        for (int i = 0; i < d; i++) mean[i] = (float)(K[i] + S1[i] / n);
        for (int jc = 0; jc < d; jc++)
            for (int i = jc; i < d; i++) /* column-major lower */
                a[i + (size_t)jc * d] = (S2[i + (size_t)jc * d] - S1[i] * S1[jc] / n) / den + (i == jc ? j->reg : 0);
        int info = 0;
        dpotrf_("L", &d, a, &d, &info, 1);
        if (!info) dtrtri_("L", "N", &d, a, &d, &info, 1, 1);
        if (info) {
            j->bad_patch = pix, j->bad_info = info;
            continue;
        }
        float *L = p->linv + (size_t)pix * p->T;
        for (int i = 0; i < d; i++)
            for (int jc = 0; jc <= i; jc++) *L++ = (float)a[i + (size_t)jc * d];
    }
}

aibox_status aibox_padim_fit_end(aibox_padim_fit *f, aibox_padim **out, aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "padim: NULL model pointer");
    *out = NULL;
    if (!f) return aibox_fail(err, AIBOX_E_INVALID, "padim: NULL fit");
    if (!f->p) return aibox_fail(err, AIBOX_E_STATE, "padim: the fit was already ended");
    if (f->n < 1) return aibox_fail(err, AIBOX_E_STATE, "padim: no images were added");
    aibox_padim *p = f->p;
    aibox_free(p->mean), aibox_free(p->linv); /* an earlier failed end */
    p->mean = aibox_alloc(sizeof(float) * (size_t)p->P * p->d);
    p->linv = aibox_alloc(sizeof(float) * (size_t)p->P * p->T);
    solve_job j = {f, p->reg, aibox_alloc(sizeof(double) * (size_t)f->threads * p->d * p->d), f->threads * 4, -1, 0};
    aibox_status s = AIBOX_OK;
    if (!p->mean || !p->linv || !j.work) s = aibox_fail(err, AIBOX_E_NOMEM, "padim: out of memory");
    if (!s) aibox_pool_run(f->pool, j.tasks, solve_task, &j);
    aibox_free(j.work);
    if (!s && j.bad_patch >= 0)
        s = aibox_fail(err, AIBOX_E_INVALID, "padim: the covariance of patch %d is not positive definite (LAPACK %d)",
                       j.bad_patch, j.bad_info);
    p->images = f->n;
    if (!s) { /* what a loaded model needs besides the tensors */
        aibox_model *m = p->trunk;
        int64_t taps[AIBOX_PADIM_MAX_TAPS], grid[2] = {p->gh, p->gw};
        for (int t = 0; t < p->n_taps; t++) taps[t] = p->tap[t];
        s = aibox_model_set_meta_str(m, AIBOX_META_TASK, "padim", err);
        if (!s) s = aibox_meta_set_ints(&m->meta, "aibox.padim.taps", p->n_taps, taps, err);
        if (!s) s = aibox_meta_set_ints(&m->meta, "aibox.padim.grid", 2, grid, err);
        if (!s) s = aibox_model_set_meta_int(m, "aibox.padim.dims", p->d, err);
        if (!s) s = aibox_model_set_meta_str(m, "aibox.padim.projection", p->idx ? "random" : "orthogonal", err);
        if (!s) s = aibox_model_set_meta_int(m, "aibox.padim.images", p->images, err);
        if (!s) s = aibox_model_set_meta_float(m, "aibox.padim.reg", j.reg, err);
        if (!s) s = aibox_model_set_meta_float(m, "aibox.padim.blur_sigma", p->sigma, err);
        if (!s && p->idx) {
            int64_t *ch = malloc(sizeof(int64_t) * (size_t)p->d);
            if (!ch) s = aibox_fail(err, AIBOX_E_NOMEM, "padim: out of memory");
            for (int i = 0; ch && i < p->d; i++) ch[i] = p->idx[i];
            if (!s) s = aibox_meta_set_ints(&m->meta, "aibox.padim.channels", p->d, ch, err);
            free(ch);
        }
    }
    /* one default for every caller: the half-precision scoring copy (where the
     * CPU has F16C or NEON; aibox_padim_set_half(p, 0) turns it off) */
    if (!s) s = aibox_padim_set_half(p, 1, err);
    if (s) return s;
    *out = p; /* handed over: the fit is spent */
    f->p = NULL;
    return AIBOX_OK;
}

aibox_status aibox_padim_set_half(aibox_padim *p, int on, aibox_error *err)
{
    if (!p || !p->linv) return aibox_fail(err, AIBOX_E_STATE, "padim: the model is not fitted");
    aibox_free(p->linv_h);
    p->linv_h = NULL;
    aibox_status s = aibox_model_set_meta_int(p->trunk, "aibox.padim.half", on ? 1 : 0, err);
    unsigned features = aibox_cpu_features();
    /* where no vector kernel reads half (no F16C or NEON, AIBOX_NO_SIMD), the float factor serves */
    if (s || !on || !aibox_maha_pick(features, 1).half) return s;
    size_t n = (size_t)p->P * p->T;
    if (!(p->linv_h = aibox_alloc(sizeof(uint16_t) * n))) return aibox_fail(err, AIBOX_E_NOMEM, "padim: out of memory");
    aibox_f32_to_f16(p->linv, p->linv_h, n, features);
    return AIBOX_OK;
}

/* ------------------------------------------------------------------ files */
aibox_status aibox_padim_save(const aibox_padim *p, const char *path, aibox_error *err)
{
    if (!p || !path) return aibox_fail(err, AIBOX_E_INVALID, "padim: NULL argument");
    aibox_file_tensor t[3] = {
        {"padim.mean", 2, {p->P, p->d, 0, 0}, p->mean, AIBOX_FILE_F32},
        {"padim.linv", 2, {p->P, (int64_t)p->T, 0, 0}, p->linv, AIBOX_FILE_F32},
        {"padim.projection", 2, {p->F, p->d, 0, 0}, p->proj, AIBOX_FILE_F32},
    };
    return aibox_model_save_ex(p->trunk, path, p->proj ? 3 : 2, t, err);
}

static const aibox_file_entry *entry(const aibox_file *f, const char *name, int64_t d0, int64_t d1)
{
    for (int i = 0; i < f->n_tensors; i++)
        if (!strcmp(f->tensors[i].name, name))
            return f->tensors[i].ndim == 2 && f->tensors[i].dims[0] == d0 && f->tensors[i].dims[1] == d1 ? &f->tensors[i]
                                                                                                          : NULL;
    return NULL;
}

aibox_status aibox_padim_load(aibox_padim **out, const char *path, aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "padim: NULL model pointer");
    *out = NULL;
    aibox_model *m = NULL;
    aibox_file *file = NULL;
    aibox_status s = aibox_model_load_ex(&m, path, &file, err);
    if (s) return s;
    const char *task = NULL;
    if (aibox_model_get_meta_str(m, AIBOX_META_TASK, &task) || strcmp(task, "padim")) {
        aibox_model_free(&m);
        aibox_file_free(&file);
        return aibox_fail(err, AIBOX_E_NOTFOUND, "%s: not a PaDiM model", path);
    }
    aibox_padim *p = calloc(1, sizeof *p);
    if (!p) s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", path);
    const int64_t *taps = NULL, *grid = NULL, *ch = NULL;
    int nt = 0, ng = 0, nc = 0;
    int64_t dims = 0, images = 0;
    double sigma = 4;
    const char *proj = NULL;
    if (!s) {
        p->trunk = m, m = NULL;
        if (aibox_model_get_meta_ints(p->trunk, "aibox.padim.taps", &nt, &taps) || nt < 1 || nt > AIBOX_PADIM_MAX_TAPS ||
            aibox_model_get_meta_ints(p->trunk, "aibox.padim.grid", &ng, &grid) || ng != 2 ||
            aibox_model_get_meta_int(p->trunk, "aibox.padim.dims", &dims) || dims < 1 || dims > 65536 ||
            aibox_model_get_meta_str(p->trunk, "aibox.padim.projection", &proj))
            s = aibox_fail(err, AIBOX_E_FORMAT, "%s: PaDiM metadata missing or out of range (taps, grid, dims)", path);
    }
    if (!s) {
        p->n_taps = nt;
        for (int t = 0; t < nt; t++) p->tap[t] = taps[t] < 1 || taps[t] > 1 << 30 ? 0 : (int)taps[t];
        p->d = (int)dims;
        p->T = (size_t)p->d * (p->d + 1) / 2;
        aibox_model_get_meta_int(p->trunk, "aibox.padim.images", &images);
        p->images = (long)images;
        if (!aibox_model_get_meta_float(p->trunk, "aibox.padim.blur_sigma", &sigma)) p->sigma = (float)sigma;
        else p->sigma = 4;
        s = tap_geometry(p, path, err);
    }
    if (!s && (p->gh != grid[0] || p->gw != grid[1] || p->d > p->F))
        s = aibox_fail(err, AIBOX_E_FORMAT, "%s: PaDiM grid %lldx%lld or %d dims do not fit the backbone (%dx%d, %d channels)",
                       path, (long long)grid[1], (long long)grid[0], p->d, p->gw, p->gh, p->F);
    if (!s && !strcmp(proj, "random")) {
        if (aibox_model_get_meta_ints(p->trunk, "aibox.padim.channels", &nc, &ch) || nc != p->d)
            s = aibox_fail(err, AIBOX_E_FORMAT, "%s: PaDiM channel list missing or not %d long", path, p->d);
        else if (!(p->idx = malloc(sizeof(int) * (size_t)p->d)))
            s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", path);
        for (int i = 0; !s && i < p->d; i++) {
            if (ch[i] < 0 || ch[i] >= p->F || (i && ch[i] <= ch[i - 1]))
                s = aibox_fail(err, AIBOX_E_FORMAT, "%s: PaDiM channel %d (%lld) out of range or not ascending", path, i,
                               (long long)ch[i]);
            else p->idx[i] = (int)ch[i];
        }
    } else if (!s && !strcmp(proj, "orthogonal")) {
        const aibox_file_entry *e = entry(file, "padim.projection", p->F, p->d);
        if (!e) s = aibox_fail(err, AIBOX_E_FORMAT, "%s: tensor padim.projection missing or not %dx%d", path, p->F, p->d);
        else if (!(p->proj = aibox_alloc(sizeof(float) * e->count)))
            s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", path);
        else memcpy(p->proj, e->data, sizeof(float) * e->count);
    } else if (!s) {
        s = aibox_fail(err, AIBOX_E_FORMAT, "%s: unknown PaDiM projection '%.40s'", path, proj);
    }
    const aibox_file_entry *em = s ? NULL : entry(file, "padim.mean", p->P, p->d);
    const aibox_file_entry *el = s ? NULL : entry(file, "padim.linv", p->P, (int64_t)p->T);
    if (!s && (!em || !el))
        s = aibox_fail(err, AIBOX_E_FORMAT, "%s: tensor %s missing or of the wrong shape", path,
                       em ? "padim.linv" : "padim.mean");
    if (!s) {
        p->mean = aibox_alloc(sizeof(float) * em->count);
        p->linv = aibox_alloc(sizeof(float) * el->count);
        if (!p->mean || !p->linv) s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", path);
        else {
            memcpy(p->mean, em->data, sizeof(float) * em->count);
            memcpy(p->linv, el->data, sizeof(float) * el->count);
            for (size_t i = 0; i < em->count && !s; i++)
                if (!isfinite(p->mean[i])) s = aibox_fail(err, AIBOX_E_FORMAT, "%s: non-finite PaDiM mean", path);
            for (size_t i = 0; i < el->count && !s; i++)
                if (!isfinite(p->linv[i])) s = aibox_fail(err, AIBOX_E_FORMAT, "%s: non-finite PaDiM factor", path);
        }
    }
    aibox_file_free(&file);
    aibox_model_free(&m);
    int64_t half = 0;
    if (!s && !aibox_model_get_meta_int(p->trunk, "aibox.padim.half", &half) && half) s = aibox_padim_set_half(p, 1, err);
    if (s) {
        if (p) aibox_padim_free(&p);
        return s;
    }
    *out = p;
    return AIBOX_OK;
}

/* ------------------------------------------------------------------ scoring */
void aibox_padim_ctx_free(aibox_padim_ctx **pc)
{
    if (!pc || !*pc) return;
    aibox_padim_ctx *c = *pc;
    aibox_ctx_free(&c->ctx);
    aibox_free(c->emb), aibox_free(c->full), aibox_free(c->grid), aibox_free(c->diff);
    aibox_free(c->map1);
    aibox_gridmap_free(&c->gmap);
    free(c);
    *pc = NULL;
}

aibox_status aibox_padim_ctx_create(aibox_padim_ctx **out, const aibox_padim *p, int max_batch, int threads,
                                    aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "padim: NULL context pointer");
    *out = NULL;
    if (!p || !p->linv) return aibox_fail(err, AIBOX_E_STATE, "padim: the model is not fitted");
    if (max_batch < 1 || max_batch > 4096)
        return aibox_fail(err, AIBOX_E_INVALID, "padim: batch %d out of range 1..4096", max_batch);
    aibox_padim_ctx *c = calloc(1, sizeof *c);
    if (!c) return aibox_fail(err, AIBOX_E_NOMEM, "padim: out of memory");
    c->p = p, c->max_batch = max_batch;
    c->maha = maha_choose(p, &c->factor, &c->factor_bytes).fn;
    int ch, h, w;
    aibox_model_input_shape(p->trunk, &ch, &h, &w);
    aibox_status s = aibox_ctx_create(&c->ctx, p->trunk, &(aibox_ctx_opts){.max_batch = max_batch, .height = h, .width = w, .threads = threads}, err);
    if (!s) s = aibox_ctx_freeze_weights(c->ctx, p->trunk, err); /* the trunk's weights never change */
    int nt = s ? 1 : aibox_ctx_threads(c->ctx);
    if (!s) c->pool = aibox_ctx_pool(c->ctx);
    if (!s) {
        c->emb = aibox_alloc(sizeof(float) * (size_t)max_batch * p->P * p->d);
        c->full = p->proj ? aibox_alloc(sizeof(float) * (size_t)p->P * p->F) : NULL;
        c->grid = aibox_alloc(sizeof(float) * (size_t)max_batch * p->P);
        c->diff = aibox_alloc(sizeof(float) * (size_t)nt * max_batch * p->d);
        c->map1 = aibox_alloc(sizeof(float) * (size_t)h * w);
        if (!c->emb || (p->proj && !c->full) || !c->grid || !c->diff || !c->map1)
            s = aibox_fail(err, AIBOX_E_NOMEM, "padim: out of memory for batch %d", max_batch);
    }
    if (!s) s = aibox_gridmap_init(&c->gmap, p->sigma, w, h, nt, "padim", err);
    if (s) {
        aibox_padim_ctx_free(&c);
        return s;
    }
    *out = c;
    return AIBOX_OK;
}

typedef struct maha_job {
    aibox_padim_ctx *c;
    int nb, tasks;
} maha_job;

/* Patches outer, images inner: the factor (the big operand) is read once per batch. */
static void maha_task(void *arg, int task, int thread)
{
    maha_job *j = arg;
    aibox_padim_ctx *c = j->c;
    const aibox_padim *p = c->p;
    int P = p->P, d = p->d, nb = j->nb;
    int p0, p1;
    aibox_share(P, 1, task, j->tasks, &p0, &p1);
    float *diff = c->diff + (size_t)thread * c->max_batch * d;
    for (int pix = p0; pix < p1; pix++) {
        const float *mu = p->mean + (size_t)pix * d;
        for (int b = 0; b < nb; b++) {
            const float *e = c->emb + ((size_t)b * P + pix) * d;
            for (int i = 0; i < d; i++) diff[(size_t)b * d + i] = e[i] - mu[i];
        }
        double acc[64];
        for (int b0 = 0; b0 < nb; b0 += 64) {
            int bn = AIBOX_MIN(64, nb - b0);
            c->maha(c->factor + (size_t)pix * c->factor_bytes, diff + (size_t)b0 * d, d, bn, acc);
            for (int b = 0; b < bn; b++) c->grid[(size_t)(b0 + b) * P + pix] = (float)sqrt(acc[b]);
        }
    }
}

aibox_status aibox_padim_score(aibox_padim_ctx *c, const float *x, int n, float *grid, float *maps, float *scores,
                               aibox_error *err)
{
    if (!c || (!x && n)) return aibox_fail(err, AIBOX_E_INVALID, "padim: NULL argument");
    if (n < 0 || n > c->max_batch)
        return aibox_fail(err, AIBOX_E_INVALID, "padim: %d images (the context holds %d)", n, c->max_batch);
    const aibox_padim *p = c->p;
    if (!n) return AIBOX_OK;
    aibox_status s = aibox_ctx_infer(c->ctx, p->trunk, x, n, err);
    if (s) return s;
    embed_all(p, c->ctx, c->pool, aibox_ctx_threads(c->ctx), n, c->emb, c->full);
    maha_job j = {c, n, aibox_ctx_threads(c->ctx) * 4};
    aibox_pool_run(c->pool, j.tasks, maha_task, &j);
    for (size_t i = 0; i < (size_t)n * p->P; i++) /* an infinite feature must not become NaN downstream */
        if (!(c->grid[i] <= 3.0e38f)) c->grid[i] = 3.0e38f;
    if (grid) memcpy(grid, c->grid, sizeof(float) * (size_t)n * p->P);
    if (!maps && !scores) return AIBOX_OK;
    int ch, h, w;
    aibox_model_input_shape(p->trunk, &ch, &h, &w);
    for (int b = 0; b < n && !s; b++) {
        float *m = maps ? maps + (size_t)b * h * w : c->map1;
        s = aibox_gridmap_run(&c->gmap, c->pool, c->grid + (size_t)b * p->P, p->gw, p->gh, m, err);
        if (!s && scores) {
            float mx = m[0];
            for (size_t i = 1; i < (size_t)h * w; i++) mx = m[i] > mx ? m[i] : mx;
            scores[b] = mx;
        }
    }
    return s;
}

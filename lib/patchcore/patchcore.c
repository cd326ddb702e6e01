/* PatchCore: patch-feature graph, memory bank, greedy k-centre coreset,
 * nearest-neighbour scoring (see aibox/patchcore.h).
 *
 * The locally aware features are graph nodes appended to the backbone's
 * trunk (3x3 average pools, bilinear upsampling, a concatenation and the
 * optional channel-averaging 1x1 convolution), so fitting, scoring and the
 * saved file all run the same network; the output node is D x gh x gw.
 * Nearest neighbours: per block of the bank one sgemm of the patch features
 * against the block, d^2 = |e|^2 + |m|^2 - 2 e.m, running minimum per patch;
 * patches are split over the context's threads, so the bank block a thread
 * reads stays in its cache while its rows go by. */
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
#include "ops/ops.h"

#define CHUNK 32        /* patches searched together: their lower bounds to the whole bank, CHUNK x K floats */
#define INDEX_DIMS 32   /* r, the main directions of the search index (at most D / 2) */

/* LAPACK as shipped inside OpenBLAS (Fortran calling convention). */
extern void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
                    double *work, const int *lwork, int *iwork, const int *liwork, int *info, size_t jl, size_t ul);

struct aibox_patchcore {
    aibox_model *net; /* trunk + feature head; holds the metadata */
    int D, gh, gw, P;
    long K;          /* bank entries */
    float *bank;     /* K x D */
    int neighbours;  /* b of the re-weighting */
    float sigma;     /* map blur; <= 0: none */
    int half;        /* 1: the bank holds float16 values and the file stores it so */
    long images, patches;
    /* the exact nearest-neighbour search's index (see nn_task): the bank
     * centred on its mean mu, projected on its r main directions vh (D x r,
     * orthonormal columns): bh (K x r), |bh|^2, and the norm of the rest */
    int r;
    float *mu, *vh, *bh, *bh_sq, *bt;
    float bmax2; /* the largest |m - mu|^2 */
};

typedef struct block {
    float *x; /* rows x D */
    long rows;
} block;

struct aibox_patchcore_fit {
    aibox_patchcore *p;
    aibox_ctx *ctx;
    aibox_pool *pool;
    int batch, threads, proj_dims;
    double coreset;
    uint64_t seed;
    block *blocks;
    int n_blocks, cap_blocks;
    long n; /* images */
    int gathered; /* 1: the blocks are all ranks' (aibox_patchcore_fit_gather) */
};

struct aibox_patchcore_ctx {
    const aibox_patchcore *p;
    aibox_ctx *ctx;
    aibox_pool *pool;
    int max_batch, threads, tasks;
    float *prod; /* per task: CHUNK x K lower bounds */
    float *rowsbuf; /* per task: CHUNK x D features, CHUNK x r projections, CHUNK x 3 norms */
    int *cand;   /* per task: K candidate indices */
    float *cd;   /* per task: K candidate distances; after the search, task 0's hold the re-weighting's bounds */
    float *grid; /* max_batch x P */
    long *nn;    /* max_batch x P */
    aibox_gridmap gmap; /* grid -> map */
};

void aibox_patchcore_free(aibox_patchcore **pp)
{
    if (!pp || !*pp) return;
    aibox_patchcore *p = *pp;
    aibox_model_free(&p->net);
    aibox_free(p->bank);
    aibox_free(p->mu), aibox_free(p->vh), aibox_free(p->bh), aibox_free(p->bh_sq), aibox_free(p->bt);
    free(p);
    *pp = NULL;
}

aibox_model *aibox_patchcore_model(aibox_patchcore *p) { return p ? p->net : NULL; }
const aibox_model *aibox_patchcore_model_const(const aibox_patchcore *p) { return p ? p->net : NULL; }
const float *aibox_patchcore_bank(const aibox_patchcore *p) { return p ? p->bank : NULL; }

void aibox_patchcore_info(const aibox_patchcore *p, int *gw, int *gh, int *dims, long *bank, long *images,
                          long *patches)
{
    if (gw) *gw = p ? p->gw : 0;
    if (gh) *gh = p ? p->gh : 0;
    if (dims) *dims = p ? p->D : 0;
    if (bank) *bank = p ? p->K : 0;
    if (images) *images = p ? p->images : 0;
    if (patches) *patches = p ? p->patches : 0;
}

/* The geometry of a feature network: its output is D x gh x gw. */
static aibox_status geometry(aibox_patchcore *p, const char *name, aibox_error *err)
{
    int c, h, w;
    aibox_model_node_shape(p->net, aibox_model_output(p->net), &c, &h, &w);
    if (c < 1 || h < 1 || w < 1 || (int64_t)h * w > INT32_MAX / 2)
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: PatchCore feature grid %dx%dx%d out of range", name, c, w, h);
    p->D = c, p->gh = h, p->gw = w, p->P = h * w;
    return AIBOX_OK;
}

/* Appends the patch-feature head to the trunk: a 3x3 average per tap, the
 * deeper ones upsampled to the first tap's grid, concatenated, optionally
 * averaged down to dims channels. */
static aibox_status build_head(aibox_patchcore *p, const int *tap, int n_taps, int dims, aibox_error *err)
{
    aibox_model *m = p->net;
    int in[AIBOX_PATCHCORE_MAX_TAPS], c0, h0, w0, F = 0;
    aibox_model_node_shape(m, tap[0], &c0, &h0, &w0);
    aibox_pool_opts po = {.kernel_h = 3, .kernel_w = 3, .stride_h = 1, .stride_w = 1, .pad_top = 1, .pad_left = 1,
                          .pad_bottom = 1, .pad_right = 1, .count_include_pad = 1};
    for (int t = 0; t < n_taps; t++) {
        int c, h, w;
        aibox_model_node_shape(m, tap[t], &c, &h, &w);
        in[t] = aibox_avgpool(m, tap[t], &po);
        if (in[t] >= 0 && (h != h0 || w != w0)) in[t] = aibox_upsample_bilinear(m, in[t], h0, w0);
        F += c;
    }
    int out = n_taps > 1 ? aibox_concat(m, n_taps, in) : in[0];
    if (dims && (dims < 1 || dims > F))
        return aibox_fail(err, AIBOX_E_INVALID, "patchcore: %d dimensions asked, the taps give %d channels (1..%d)", dims,
                          F, F);
    int reduce = dims && dims < F;
    if (reduce && out >= 0)
        out = aibox_conv2d(m, out, &(aibox_conv_opts){.out_channels = dims, .kernel_h = 1, .kernel_w = 1});
    if (out < 0) return aibox_fail(err, (aibox_status)-out, "patchcore: %s", aibox_model_last_error(m));
    aibox_status s = aibox_model_set_output(m, out);
    if (!s) s = aibox_model_finish(m, 0, err);
    if (!s && reduce) { /* adaptive average pooling over channels: output i averages [floor(iF/D), ceil((i+1)F/D)) */
        size_t count = 0;
        float *wt = aibox_model_node_param(m, out, 0, &count);
        if (!wt || count != (size_t)dims * F) return aibox_fail(err, AIBOX_E_STATE, "patchcore: reduction weights");
        memset(wt, 0, sizeof(float) * count);
        for (int i = 0; i < dims; i++) {
            long a = (long)i * F / dims, b = ((long)(i + 1) * F + dims - 1) / dims;
            for (long c = a; c < b; c++) wt[(size_t)i * F + c] = 1.0f / (float)(b - a);
        }
    }
    return s;
}

/* ------------------------------------------------------------------ coreset */
aibox_status aibox_patchcore_projection(int dim, int proj_dims, uint64_t seed, float *r, aibox_error *err)
{
    if (dim < 1 || proj_dims < 1 || !r)
        return aibox_fail(err, AIBOX_E_INVALID, "patchcore: projection %d x %d", dim, proj_dims);
    aibox_rng g;
    aibox_rng_seed(&g, seed ^ 0x70726f6a656374ULL); /* its own stream: the first centre draws from the seed itself */
    float scale = 1.0f / sqrtf((float)proj_dims);
    for (size_t i = 0; i < (size_t)dim * proj_dims; i++) r[i] = aibox_rng_normal(&g) * scale;
    return AIBOX_OK;
}

/* Greedy k-centre, exact but pruned: each point keeps its squared distance
 * to the nearest centre so far (mind) and which centre that is (own). A new
 * centre z can only come nearer to point i when d(z, own(i)) < 2 d(i, own(i))
 * (triangle inequality: else d(i, z) >= d(z, own) - d(i, own) >= d(i, own)),
 * so per new centre the distances from z to the earlier centres are taken
 * (t of them, in cache) and only the points that test leaves open are read
 * (rows in index order, streamed). A relative margin of 1e-3 on the test
 * covers float rounding: every distance plain greedy would lower is lowered
 * here too, so the centres and their order are plain greedy's. */
#define KC_CHUNK 256
typedef struct kcenter {
    const float *y; /* n x k */
    long n;
    int k;
    float *mind;  /* n: squared distance to the nearest centre; -1 for a centre */
    int *own;     /* n: that centre (by order chosen) */
    int *centre;  /* per centre: its point */
    float *dzc;   /* per centre: squared distance to the newest one */
    int z, t, tasks; /* the newest centre: its point, its order */
    float best[256];
    long arg[256];
} kcenter;

static void centre_task(void *arg, int task, int thread)
{
    (void)thread;
    kcenter *g = arg;
    int c0, c1;
    aibox_share(g->t + 1, 1, task, g->tasks, &c0, &c1); /* centres 0..t: z's own distance (0) included */
    for (int c = c0; c < c1; c += KC_CHUNK)
        aibox_sqdist_rows(g->y, g->k, g->centre + c, AIBOX_MIN(KC_CHUNK, c1 - c), g->y + (size_t)g->z * g->k,
                          g->dzc + c);
}

static void point_task(void *arg, int task, int thread)
{
    (void)thread;
    kcenter *g = arg;
    long a = g->n * task / g->tasks, b = g->n * (task + 1) / g->tasks, best_arg = -1;
    float best = -1, dd[KC_CHUNK];
    int ids[KC_CHUNK];
    const float *yz = g->y + (size_t)g->z * g->k;
    for (long i = a; i < b;) {
        int m = 0;
        for (; i < b && m < KC_CHUNK; i++) { /* the points the new centre may come nearer to */
            float mv = g->mind[i];
            if (mv >= 0 && !(g->dzc[g->own[i]] >= 4.0f * mv * 1.001f)) ids[m++] = (int)i;
        }
        aibox_sqdist_rows(g->y, g->k, ids, m, yz, dd);
        for (int q = 0; q < m; q++)
            if (dd[q] < g->mind[ids[q]]) g->mind[ids[q]] = dd[q], g->own[ids[q]] = g->t;
    }
    for (long i = a; i < b; i++) /* the farthest point of this share, the lowest index on ties */
        if (g->mind[i] > best) best = g->mind[i], best_arg = i;
    g->best[task] = best, g->arg[task] = best_arg;
}

aibox_status aibox_patchcore_coreset(const float *x, long n, int dim, long k, int proj_dims, uint64_t seed,
                                     int threads, long *idx, aibox_error *err)
{
    if (!x || !idx || n < 1 || dim < 1 || k < 1 || k > n || n > INT32_MAX)
        return aibox_fail(err, AIBOX_E_INVALID, "coreset: %ld of %ld points of %d dimensions", k, n, dim);
    if (threads < 0) return aibox_fail(err, AIBOX_E_INVALID, "coreset: %d threads", threads);
    for (size_t i = 0; i < (size_t)n * dim; i++) /* a NaN would never be the farthest, nor ever near */
        if (!isfinite(x[i]))
            return aibox_fail(err, AIBOX_E_NONFINITE, "coreset: point %zu holds a non-finite value", i / dim);
    aibox_pool *pool = NULL;
    aibox_status s = aibox_pool_create(&pool, threads ? threads : aibox_default_threads(), err);
    if (s) return s;
    int kd = proj_dims > 0 ? proj_dims : dim;
    float *y = proj_dims > 0 ? aibox_alloc(sizeof(float) * (size_t)n * kd) : NULL;
    float *r = proj_dims > 0 ? malloc(sizeof(float) * (size_t)dim * kd) : NULL;
    kcenter g = {.n = n, .k = kd};
    g.mind = aibox_alloc(sizeof(float) * (size_t)n);
    g.own = malloc(sizeof(int) * (size_t)n);
    g.centre = malloc(sizeof(int) * (size_t)k), g.dzc = malloc(sizeof(float) * (size_t)k);
    if (!g.mind || !g.own || !g.centre || !g.dzc || (proj_dims > 0 && (!y || !r)))
        s = aibox_fail(err, AIBOX_E_NOMEM, "coreset: out of memory for %ld points x %d", n, kd);
    if (!s && proj_dims > 0) s = aibox_patchcore_projection(dim, kd, seed, r, err);
    if (!s && proj_dims > 0)
        for (long r0 = 0; r0 < n; r0 += 65536) { /* sgemm's m is an int */
            int rows = (int)AIBOX_MIN(65536, n - r0);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, kd, dim, 1.0f, x + (size_t)r0 * dim, dim, r,
                        kd, 0.0f, y + (size_t)r0 * kd, kd);
        }
    if (!s) {
        g.y = y ? y : x;
        int threads_n = aibox_pool_threads(pool);
        for (long i = 0; i < n; i++) g.mind[i] = INFINITY, g.own[i] = 0; /* infinitely far: no test skips them */
        aibox_rng rng;
        aibox_rng_seed(&rng, seed);
        g.z = (int)aibox_rng_below(&rng, (uint32_t)n);
        for (long t = 0; t < k; t++) {
            idx[t] = g.z;
            g.mind[g.z] = -1;
            if (t == k - 1) break;
            g.t = (int)t, g.centre[t] = g.z;
            g.tasks = (int)AIBOX_MIN(AIBOX_MIN(256, 4 * threads_n), t + 1);
            aibox_pool_run(pool, g.tasks, centre_task, &g);
            g.tasks = (int)AIBOX_MIN(AIBOX_MIN(256, 4 * threads_n), n);
            aibox_pool_run(pool, g.tasks, point_task, &g);
            long arg = -1;
            float best = -1;
            for (int j = 0; j < g.tasks; j++) /* shares in index order: strict > keeps the lowest index */
                if (g.best[j] > best) best = g.best[j], arg = g.arg[j];
            if (arg < 0) {
                s = aibox_fail(err, AIBOX_E_STATE, "coreset: no point left after %ld centres", t + 1);
                break;
            }
            g.z = (int)arg;
        }
    }
    aibox_free(y), free(r), aibox_free(g.mind);
    free(g.own), free(g.centre), free(g.dzc);
    aibox_pool_free(&pool);
    return s;
}

/* ------------------------------------------------------------------ fit */
void aibox_patchcore_fit_free(aibox_patchcore_fit **pf)
{
    if (!pf || !*pf) return;
    aibox_patchcore_fit *f = *pf;
    aibox_patchcore_free(&f->p);
    aibox_ctx_free(&f->ctx);
    for (int i = 0; i < f->n_blocks; i++) aibox_free(f->blocks[i].x);
    free(f->blocks);
    free(f);
    *pf = NULL;
}

aibox_status aibox_patchcore_fit_begin(aibox_patchcore_fit **out, const aibox_model *bb, const aibox_patchcore_opts *o,
                                       int batch, int threads, aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "patchcore: NULL fit pointer");
    *out = NULL;
    if (!bb || !bb->finished) return aibox_fail(err, AIBOX_E_STATE, "patchcore: the backbone is not a finished model");
    if (batch < 1 || batch > 4096)
        return aibox_fail(err, AIBOX_E_INVALID, "patchcore: batch %d out of range 1..4096", batch);
    aibox_patchcore_opts def = {0};
    if (!o) o = &def;
    int n_taps = o->n_taps ? o->n_taps : 2, strides[AIBOX_PATCHCORE_MAX_TAPS] = {8, 16, 0, 0};
    if (n_taps < 1 || n_taps > AIBOX_PATCHCORE_MAX_TAPS)
        return aibox_fail(err, AIBOX_E_INVALID, "patchcore: %d taps (1 to %d)", n_taps, AIBOX_PATCHCORE_MAX_TAPS);
    if (o->n_taps) memcpy(strides, o->strides, sizeof strides);
    double coreset = o->coreset == 0 ? 0.1 : o->coreset;
    if (!(coreset > 0 && coreset <= 1))
        return aibox_fail(err, AIBOX_E_INVALID, "patchcore: coreset share %g (above 0, at most 1)", coreset);
    if (o->neighbours < 0 || o->neighbours > 1024)
        return aibox_fail(err, AIBOX_E_INVALID, "patchcore: %d neighbours (1 to 1024)", o->neighbours);
    if (o->proj_dims > 4096 || o->dims < 0)
        return aibox_fail(err, AIBOX_E_INVALID, "patchcore: projection to %d or %d dimensions", o->proj_dims, o->dims);
    if (o->half_bank != 0 && o->half_bank != 1)
        return aibox_fail(err, AIBOX_E_INVALID, "patchcore: half_bank %d (0: float32, 1: float16)", o->half_bank);

    aibox_patchcore_fit *f = calloc(1, sizeof *f);
    aibox_patchcore *p = f ? calloc(1, sizeof *p) : NULL;
    if (!p) {
        free(f);
        return aibox_fail(err, AIBOX_E_NOMEM, "patchcore: out of memory");
    }
    f->p = p, f->coreset = coreset, f->seed = o->seed;
    f->proj_dims = o->proj_dims == 0 ? 128 : o->proj_dims;
    p->neighbours = o->neighbours ? o->neighbours : 9;
    p->sigma = o->blur_sigma == 0 ? 4.0f : o->blur_sigma;
    p->half = o->half_bank;
    aibox_status s = AIBOX_OK;
    int tap[AIBOX_PATCHCORE_MAX_TAPS], deepest = 0, c, h, w;
    aibox_model_input_shape(bb, &c, &h, &w);
    for (int t = 0; t < n_taps && !s; t++) {
        tap[t] = aibox_model_stride_node(bb, strides[t]);
        if (tap[t] < 1)
            s = aibox_fail(err, AIBOX_E_INVALID, "patchcore: the backbone has no stage at stride %d (input %dx%d)",
                           strides[t], w, h);
        else if (t && strides[t] <= strides[t - 1])
            s = aibox_fail(err, AIBOX_E_INVALID, "patchcore: tap strides must ascend (%d after %d)", strides[t],
                           strides[t - 1]);
        deepest = AIBOX_MAX(deepest, tap[t]);
    }
    int *map = s ? NULL : malloc(sizeof(int) * (size_t)bb->n_nodes);
    if (!s && !map) s = aibox_fail(err, AIBOX_E_NOMEM, "patchcore: out of memory");
    if (!s) s = aibox_model_extract(&p->net, bb, deepest, map, err);
    for (int t = 0; t < n_taps && !s; t++) tap[t] = map[tap[t]];
    free(map);
    if (!s) s = build_head(p, tap, n_taps, o->dims, err);
    if (!s) s = geometry(p, "backbone", err);
    if (!s) s = aibox_model_set_meta_str(p->net, AIBOX_META_TASK, "patchcore", err);
    if (!s)
        s = aibox_ctx_create(&f->ctx, p->net,
                             &(aibox_ctx_opts){.max_batch = batch, .height = h, .width = w, .threads = threads}, err);
    if (!s) s = aibox_ctx_freeze_weights(f->ctx, p->net, err);
    if (!s) f->batch = batch, f->pool = aibox_ctx_pool(f->ctx), f->threads = aibox_ctx_threads(f->ctx);
    if (s) {
        aibox_patchcore_fit_free(&f);
        return s;
    }
    *out = f;
    return AIBOX_OK;
}

aibox_status aibox_patchcore_fit_preproc(const aibox_patchcore_fit *f, aibox_preproc *pp, aibox_error *err)
{
    if (!f || !pp) return aibox_fail(err, AIBOX_E_INVALID, "patchcore: NULL argument");
    if (!f->p) return aibox_fail(err, AIBOX_E_STATE, "patchcore: the fit was already ended");
    return aibox_preproc_from_model(pp, f->p->net, err);
}

long aibox_patchcore_fit_count(const aibox_patchcore_fit *f) { return f ? f->n : 0; }

size_t aibox_patchcore_fit_bytes(const aibox_patchcore_fit *f)
{
    if (!f || !f->p) return 0;
    size_t b = aibox_ctx_bytes(f->ctx) + sizeof(block) * (size_t)f->cap_blocks;
    for (int i = 0; i < f->n_blocks; i++) b += sizeof(float) * (size_t)f->blocks[i].rows * f->p->D;
    return b;
}

/* The network's output (n images of D x P) as n * P rows of D. */
static void transpose_out(const float *o, int n, int D, int P, float *rows)
{
    for (int b = 0; b < n; b++)
        for (int c = 0; c < D; c++)
            for (int i = 0; i < P; i++) rows[((size_t)b * P + i) * D + c] = o[((size_t)b * D + c) * P + i];
}

aibox_status aibox_patchcore_fit_add(aibox_patchcore_fit *f, const float *x, int n, aibox_error *err)
{
    if (!f || (!x && n)) return aibox_fail(err, AIBOX_E_INVALID, "patchcore: NULL argument");
    if (!f->p) return aibox_fail(err, AIBOX_E_STATE, "patchcore: the fit was already ended");
    if (n < 0 || n > f->batch) return aibox_fail(err, AIBOX_E_INVALID, "patchcore: %d images (batch %d)", n, f->batch);
    if (!n) return AIBOX_OK;
    if (f->gathered)
        return aibox_fail(err, AIBOX_E_STATE, "patchcore: the bank was gathered across ranks: add every image before");
    aibox_patchcore *p = f->p;
    if ((double)(f->n + n) * p->P > INT32_MAX)
        return aibox_fail(err, AIBOX_E_INVALID, "patchcore: more than 2^31 patches in the bank");
    if (f->n_blocks == f->cap_blocks) {
        int cap = f->cap_blocks ? 2 * f->cap_blocks : 64;
        block *nb = realloc(f->blocks, sizeof *nb * (size_t)cap);
        if (!nb) return aibox_fail(err, AIBOX_E_NOMEM, "patchcore: out of memory");
        f->blocks = nb, f->cap_blocks = cap;
    }
    block *bl = &f->blocks[f->n_blocks];
    bl->rows = (long)n * p->P;
    bl->x = aibox_alloc(sizeof(float) * (size_t)bl->rows * p->D);
    if (!bl->x)
        return aibox_fail(err, AIBOX_E_NOMEM, "patchcore: out of memory for the bank (%ld images, %zu MB so far)",
                          f->n, aibox_patchcore_fit_bytes(f) >> 20);
    aibox_status s = aibox_ctx_infer(f->ctx, p->net, x, n, err);
    if (s) {
        aibox_free(bl->x);
        return s;
    }
    transpose_out(aibox_ctx_output(f->ctx, NULL, NULL, NULL), n, p->D, p->P, bl->x);
    for (size_t i = 0; i < (size_t)bl->rows * p->D; i++)
        if (!isfinite(bl->x[i])) {
            double v = bl->x[i];
            aibox_free(bl->x);
            return aibox_fail(err, AIBOX_E_NONFINITE, "patchcore: a feature of image %ld is not finite (%g)",
                              f->n + (long)(i / ((size_t)p->P * p->D)) + 1, v);
        }
    f->n_blocks++, f->n += n;
    return AIBOX_OK;
}

/* ------------------------------------------------------------------ across ranks */
/* Every rank ends with every rank's blocks, in rank order and each rank's
 * own order: the block sizes go round in a sum, every rank allocates all the
 * others' blocks, then each block is broadcast by its owner. The blocks are
 * the float32 features (a float16 bank is rounded at the end of the fit,
 * after the selection, as in one process). */
aibox_status aibox_patchcore_fit_gather(aibox_patchcore_fit *f, const aibox_comm *comm, aibox_error *err)
{
    if (!f) return aibox_fail(err, AIBOX_E_INVALID, "patchcore: NULL fit");
    if (!f->p) return aibox_fail(err, AIBOX_E_STATE, "patchcore: the fit was already ended");
    aibox_status s = aibox_comm_check(comm, err);
    if (s) return s;
    int N = aibox_comm_ranks(comm), me = aibox_comm_rank(comm);
    if (N == 1) return AIBOX_OK;
    if (f->gathered) return aibox_fail(err, AIBOX_E_STATE, "patchcore: the bank was already gathered across ranks");
    aibox_patchcore *p = f->p;
    double *counts = calloc((size_t)N * 2, sizeof(double)); /* per rank: blocks, images */
    if (!counts) s = aibox_fail(err, AIBOX_E_NOMEM, "patchcore: out of memory");
    uint32_t v[8] = {(uint32_t)p->D, (uint32_t)p->P, (uint32_t)f->proj_dims, (uint32_t)p->half,
                     (uint32_t)f->seed, (uint32_t)(f->seed >> 32), 2166136261u, (uint32_t)p->neighbours};
    v[6] = aibox_dist_hash(v[6], &f->coreset, sizeof f->coreset);
    s = aibox_dist_agree(comm, s, "the PatchCore fit (dimensions, grid, coreset, projection, seed or bank type)", v, 8,
                         err);
    if (!s) {
        counts[2 * me] = f->n_blocks, counts[2 * me + 1] = (double)f->n;
        s = aibox_comm_sum_f64(comm, counts, (size_t)N * 2, err);
    }
    double blocks = 0, images = 0;
    for (int r = 0; !s && r < N; r++) blocks += counts[2 * r], images += counts[2 * r + 1];
    if (!s && (images * p->P > INT32_MAX || blocks > INT32_MAX))
        s = aibox_fail(err, AIBOX_E_INVALID, "patchcore: more than 2^31 patches in the gathered bank");
    int nb = s ? 0 : (int)blocks, at = 0, mine = 0;
    for (int r = 0; !s && r < me; r++) mine += (int)counts[2 * r]; /* this rank's first block */
    double *rows = s ? NULL : calloc((size_t)nb + 1, sizeof(double));
    block *all = s ? NULL : calloc((size_t)nb + 1, sizeof(block));
    if (!s && (!rows || !all)) s = aibox_fail(err, AIBOX_E_NOMEM, "patchcore: out of memory");
    /* the block sizes (rows < 2^31: exact in double); a failure above is every rank's */
    for (int i = 0; rows && i < f->n_blocks; i++) rows[mine + i] = (double)f->blocks[i].rows;
    s = aibox_dist_agree(comm, s, "", NULL, 0, err);
    if (!s) s = aibox_comm_sum_f64(comm, rows, (size_t)nb, err);
    size_t row = sizeof(float) * (size_t)p->D;
    for (int r = 0; !s && r < N; r++)
        for (int i = 0; i < (int)counts[2 * r]; i++, at++) {
            all[at].rows = (long)rows[at];
            if (r == me) all[at].x = f->blocks[i].x; /* moved, not copied */
            else if (!(all[at].x = aibox_alloc(row * (size_t)all[at].rows))) {
                s = aibox_fail(err, AIBOX_E_NOMEM, "patchcore: out of memory for the gathered bank (%.0f images)",
                               images);
                break;
            }
        }
    s = aibox_dist_agree(comm, s, "", NULL, 0, err);
    at = 0;
    for (int r = 0; !s && r < N; r++)
        for (int i = 0; !s && i < (int)counts[2 * r]; i++, at++)
            s = aibox_comm_bcast(comm, all[at].x, row * (size_t)all[at].rows, r, err);
    if (!s) {
        free(f->blocks);
        f->blocks = all, f->n_blocks = f->cap_blocks = nb, f->n = (long)images, f->gathered = 1;
        all = NULL;
    }
    for (int i = 0; all && i < nb; i++)
        if (i < mine || i >= mine + f->n_blocks) aibox_free(all[i].x); /* only the others' blocks */
    free(all), free(rows), free(counts);
    return s;
}

/* The search index of nn_task: the bank's mean, its r main directions
 * (eigenvectors of its covariance, LAPACK in double), the bank projected on
 * them and the norms of what the projection leaves out. Any orthonormal
 * directions would keep the search exact; the main ones make its bounds
 * tight. */
static aibox_status build_index(aibox_patchcore *p, aibox_error *err)
{
    int D = p->D, r = D / 2 < INDEX_DIMS ? D / 2 : INDEX_DIMS;
    long K = p->K;
    if (r < 1) r = 1;
    p->r = r;
    p->mu = aibox_alloc(sizeof(float) * D), p->vh = aibox_alloc(sizeof(float) * (size_t)D * r);
    p->bh = aibox_alloc(sizeof(float) * (size_t)K * r), p->bh_sq = aibox_alloc(sizeof(float) * K);
    p->bt = aibox_alloc(sizeof(float) * K);
    float *xc = aibox_alloc(sizeof(float) * (size_t)K * D), *cov = aibox_alloc(sizeof(float) * (size_t)D * D);
    double *a = malloc(sizeof(double) * (size_t)D * D), *w = malloc(sizeof(double) * D), *sum = calloc(D, sizeof(double));
    aibox_status s = AIBOX_OK;
    if (!p->mu || !p->vh || !p->bh || !p->bh_sq || !p->bt || !xc || !cov || !a || !w || !sum)
        s = aibox_fail(err, AIBOX_E_NOMEM, "patchcore: out of memory for the search index of %ld x %d", K, D);
    if (!s) {
        for (long k = 0; k < K; k++)
            for (int c = 0; c < D; c++) sum[c] += p->bank[(size_t)k * D + c];
        for (int c = 0; c < D; c++) p->mu[c] = (float)(sum[c] / K);
        for (long k = 0; k < K; k++)
            for (int c = 0; c < D; c++) xc[(size_t)k * D + c] = p->bank[(size_t)k * D + c] - p->mu[c];
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, D, (int)K, 1.0f, xc, D, 0.0f, cov, D);
        for (int i = 0; i < D; i++)
            for (int j = 0; j < D; j++) a[(size_t)i * D + j] = cov[(size_t)(i <= j ? i : j) * D + (i <= j ? j : i)];
        /* workspace query, then the eigenvectors (rows of a, eigenvalues ascending) */
        int lwork = -1, liwork = -1, info = 0, iw = 0;
        double wq = 0;
        dsyevd_("V", "U", &D, a, &D, w, &wq, &lwork, &iw, &liwork, &info, 1, 1);
        lwork = (int)wq, liwork = iw;
        double *work = info ? NULL : malloc(sizeof(double) * (size_t)lwork);
        int *iwork = info ? NULL : malloc(sizeof(int) * (size_t)liwork);
        if (!work || !iwork) s = aibox_fail(err, info ? AIBOX_E_INVALID : AIBOX_E_NOMEM, "patchcore: eigen workspace");
        if (!s) dsyevd_("V", "U", &D, a, &D, w, work, &lwork, iwork, &liwork, &info, 1, 1);
        if (!s && info) s = aibox_fail(err, AIBOX_E_INVALID, "patchcore: the bank's covariance has no eigenvectors (LAPACK %d)", info);
        free(work), free(iwork);
    }
    if (!s) {
        for (int j = 0; j < r; j++) /* the largest first */
            for (int c = 0; c < D; c++) p->vh[(size_t)c * r + j] = (float)a[(size_t)(D - 1 - j) * D + c];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)K, r, D, 1.0f, xc, D, p->vh, r, 0.0f, p->bh, r);
        p->bmax2 = 0;
        for (long k = 0; k < K; k++) {
            double h = 0, t = 0;
            for (int j = 0; j < r; j++) h += (double)p->bh[(size_t)k * r + j] * p->bh[(size_t)k * r + j];
            for (int c = 0; c < D; c++) t += (double)xc[(size_t)k * D + c] * xc[(size_t)k * D + c];
            p->bh_sq[k] = (float)h, p->bt[k] = (float)sqrt(fmax(t - h, 0));
            p->bmax2 = fmaxf(p->bmax2, (float)t);
        }
    }
    aibox_free(xc), aibox_free(cov);
    free(a), free(w), free(sum);
    return s;
}


/* The bank rounded to float16 values in place (exactly what the file will
 * hold, so scores do not change between saving and loading). A value
 * float16 cannot hold (|x| >= 65520 rounds to infinity) is refused with
 * code: the bank is finite here, so an all-ones exponent is infinity. */
static aibox_status round_bank_half(aibox_patchcore *p, aibox_status code, const char *name, aibox_error *err)
{
    size_t n = (size_t)p->K * p->D;
    uint16_t h[1024];
    unsigned features = aibox_cpu_features(); /* once: cpuid is slow in a VM */
    for (size_t i = 0; i < n; i += 1024) {
        size_t k = AIBOX_MIN((size_t)1024, n - i);
        aibox_f32_to_f16(p->bank + i, h, k, features);
        for (size_t j = 0; j < k; j++)
            if ((h[j] & 0x7c00) == 0x7c00)
                return aibox_fail(err, code,
                                  "%s: PatchCore bank entry %zu holds %g, beyond float16's range (+-%g): "
                                  "store the bank as float32",
                                  name, (i + j) / (size_t)p->D, (double)p->bank[i + j], (double)AIBOX_HALF_MAX);
        aibox_f16_to_f32(h, p->bank + i, k, features);
    }
    return AIBOX_OK;
}

static aibox_status store_meta(aibox_patchcore *p, double coreset, aibox_error *err)
{
    aibox_model *m = p->net;
    int64_t was = 0;
    aibox_status s = aibox_model_set_meta_int(m, "aibox.patchcore.neighbours", p->neighbours, err);
    if (!s) s = aibox_model_set_meta_float(m, "aibox.patchcore.blur_sigma", p->sigma, err);
    if (!s) s = aibox_model_set_meta_int(m, "aibox.patchcore.images", p->images, err);
    if (!s) s = aibox_model_set_meta_int(m, "aibox.patchcore.patches", p->patches, err);
    if (!s) s = aibox_model_set_meta_float(m, "aibox.patchcore.coreset", coreset, err);
    /* only a float16 bank is marked, so float32 files stay as they were */
    if (!s && (p->half || !aibox_model_get_meta_int(m, "aibox.patchcore.half", &was)))
        s = aibox_model_set_meta_int(m, "aibox.patchcore.half", p->half, err);
    return s;
}

aibox_status aibox_patchcore_fit_end(aibox_patchcore_fit *f, aibox_patchcore **out, aibox_error *err)
{
    if (!f || !out) return aibox_fail(err, AIBOX_E_INVALID, "patchcore: NULL argument");
    *out = NULL;
    if (!f->p) return aibox_fail(err, AIBOX_E_STATE, "patchcore: the fit was already ended");
    if (f->n < 1) return aibox_fail(err, AIBOX_E_STATE, "patchcore: no image was added");
    aibox_patchcore *p = f->p;
    long N = f->n * p->P, K = (long)floor(f->coreset * (double)N + 0.5);
    K = AIBOX_MAX(1, AIBOX_MIN(K, N));
    aibox_status s = AIBOX_OK;
    size_t row = sizeof(float) * (size_t)p->D;
    p->bank = aibox_alloc(row * (size_t)K);
    if (!p->bank) return aibox_fail(err, AIBOX_E_NOMEM, "patchcore: out of memory for a bank of %ld x %d", K, p->D);
    if (K == N) { /* everything kept, in order */
        size_t at = 0;
        for (int i = 0; i < f->n_blocks; i++) {
            memcpy(p->bank + at, f->blocks[i].x, row * (size_t)f->blocks[i].rows);
            at += (size_t)f->blocks[i].rows * p->D;
        }
    } else {
        /* the blocks are gathered into one array for the selection: one
         * block at a time moves over, so the peak holds the bank once */
        float *all = aibox_alloc(row * (size_t)N);
        long *idx = malloc(sizeof(long) * (size_t)K);
        if (!all || !idx) s = aibox_fail(err, AIBOX_E_NOMEM, "patchcore: out of memory for %ld patches", N);
        size_t at = 0;
        for (int i = 0; !s && i < f->n_blocks; i++) {
            memcpy(all + at, f->blocks[i].x, row * (size_t)f->blocks[i].rows);
            at += (size_t)f->blocks[i].rows * p->D;
            aibox_free(f->blocks[i].x), f->blocks[i].x = NULL;
        }
        if (!s) s = aibox_patchcore_coreset(all, N, p->D, K, f->proj_dims, f->seed, f->threads, idx, err);
        for (long i = 0; !s && i < K; i++) memcpy(p->bank + (size_t)i * p->D, all + (size_t)idx[i] * p->D, row);
        aibox_free(all), free(idx);
    }
    p->K = K, p->images = f->n, p->patches = N;
    if (!s && p->half) s = round_bank_half(p, AIBOX_E_INVALID, "patchcore", err);
    if (!s) s = build_index(p, err);
    if (!s) s = store_meta(p, f->coreset, err);
    if (s) return s; /* the fit keeps p and frees it */
    *out = p;
    f->p = NULL;
    return AIBOX_OK;
}

/* ------------------------------------------------------------------ files */
aibox_status aibox_patchcore_save(const aibox_patchcore *p, const char *path, aibox_error *err)
{
    if (!p || !path) return aibox_fail(err, AIBOX_E_INVALID, "patchcore: NULL argument");
    aibox_file_tensor t = {"patchcore.bank", 2, {p->K, p->D, 0, 0}, p->bank,
                           p->half ? AIBOX_FILE_F16 : AIBOX_FILE_F32};
    return aibox_model_save_ex(p->net, path, 1, &t, err);
}

aibox_status aibox_patchcore_load(aibox_patchcore **out, const char *path, aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "patchcore: NULL model pointer");
    *out = NULL;
    aibox_model *m = NULL;
    aibox_file *file = NULL;
    aibox_status s = aibox_model_load_ex(&m, path, &file, err);
    if (s) return s;
    const char *task = NULL;
    if (aibox_model_get_meta_str(m, AIBOX_META_TASK, &task) || strcmp(task, "patchcore")) {
        aibox_model_free(&m);
        aibox_file_free(&file);
        return aibox_fail(err, AIBOX_E_NOTFOUND, "%s: not a PatchCore model", path);
    }
    aibox_patchcore *p = calloc(1, sizeof *p);
    if (!p) s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", path);
    int64_t nb = 0, images = 0, patches = 0, half = 0;
    double sigma = 4;
    if (!s) {
        p->net = m, m = NULL;
        if (aibox_model_get_meta_int(p->net, "aibox.patchcore.neighbours", &nb) || nb < 1 || nb > 1024)
            s = aibox_fail(err, AIBOX_E_FORMAT, "%s: PatchCore metadata missing or out of range (neighbours)", path);
    }
    if (!s) s = geometry(p, path, err);
    if (!s) {
        p->neighbours = (int)nb;
        aibox_model_get_meta_int(p->net, "aibox.patchcore.images", &images);
        aibox_model_get_meta_int(p->net, "aibox.patchcore.patches", &patches);
        p->images = (long)images, p->patches = (long)patches;
        p->sigma = aibox_model_get_meta_float(p->net, "aibox.patchcore.blur_sigma", &sigma) ? 4.0f : (float)sigma;
        if (p->sigma > 0 && !aibox_map_blur_kernel_size(p->sigma))
            s = aibox_fail(err, AIBOX_E_FORMAT, "%s: PatchCore blur sigma %g out of range", path, sigma);
        /* absent (files before the float16 bank): float32 */
        if (!s && !aibox_model_get_meta_int(p->net, "aibox.patchcore.half", &half) && half != 0 && half != 1)
            s = aibox_fail(err, AIBOX_E_FORMAT, "%s: PatchCore metadata aibox.patchcore.half is %lld (0 or 1)", path,
                           (long long)half);
        p->half = half == 1;
    }
    const aibox_file_entry *e = NULL;
    for (int i = 0; !s && i < file->n_tensors; i++)
        if (!strcmp(file->tensors[i].name, "patchcore.bank")) e = &file->tensors[i];
    if (!s && (!e || e->ndim != 2 || e->dims[1] != p->D || e->dims[0] < 1 || e->dims[0] > INT32_MAX))
        s = aibox_fail(err, AIBOX_E_FORMAT, "%s: tensor patchcore.bank missing or not K x %d", path, p->D);
    if (!s) {
        p->K = (long)e->dims[0];
        if (e->dtype == AIBOX_FILE_F16 && (void *)e->data == file->wide) {
            /* the reader's float32 copy starts the buffer it owns: taken, not copied again */
            p->bank = file->wide, file->wide = NULL;
        } else if (!(p->bank = aibox_alloc(sizeof(float) * e->count))) {
            s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory for a bank of %ld x %d", path, p->K, p->D);
        } else {
            memcpy(p->bank, e->data, sizeof(float) * e->count);
        }
        for (size_t i = 0; !s && i < e->count; i++)
            if (!isfinite(p->bank[i])) s = aibox_fail(err, AIBOX_E_FORMAT, "%s: non-finite PatchCore bank entry", path);
        /* marked float16 but stored float32 (not written by libaibox): the
         * bank is what saving it would keep */
        if (!s && p->half && e->dtype != AIBOX_FILE_F16) s = round_bank_half(p, AIBOX_E_FORMAT, path, err);
    }
    if (!s) s = build_index(p, err);
    aibox_file_free(&file);
    aibox_model_free(&m);
    if (s) {
        aibox_patchcore_free(&p);
        return s;
    }
    *out = p;
    return AIBOX_OK;
}

/* ------------------------------------------------------------------ scoring */
void aibox_patchcore_ctx_free(aibox_patchcore_ctx **pc)
{
    if (!pc || !*pc) return;
    aibox_patchcore_ctx *c = *pc;
    aibox_ctx_free(&c->ctx);
    aibox_free(c->prod), aibox_free(c->grid), free(c->nn);
    aibox_free(c->rowsbuf), free(c->cand), aibox_free(c->cd);
    aibox_gridmap_free(&c->gmap);
    free(c);
    *pc = NULL;
}

aibox_status aibox_patchcore_ctx_create(aibox_patchcore_ctx **out, const aibox_patchcore *p, int max_batch,
                                        int threads, aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "patchcore: NULL context pointer");
    *out = NULL;
    if (!p || !p->bank) return aibox_fail(err, AIBOX_E_STATE, "patchcore: the model is not fitted");
    if (max_batch < 1 || max_batch > 4096)
        return aibox_fail(err, AIBOX_E_INVALID, "patchcore: batch %d out of range 1..4096", max_batch);
    aibox_patchcore_ctx *c = calloc(1, sizeof *c);
    if (!c) return aibox_fail(err, AIBOX_E_NOMEM, "patchcore: out of memory");
    c->p = p, c->max_batch = max_batch;
    int ch, h, w;
    aibox_model_input_shape(p->net, &ch, &h, &w);
    aibox_status s = aibox_ctx_create(
        &c->ctx, p->net, &(aibox_ctx_opts){.max_batch = max_batch, .height = h, .width = w, .threads = threads}, err);
    if (!s) s = aibox_ctx_freeze_weights(c->ctx, p->net, err);
    if (!s) {
        c->pool = aibox_ctx_pool(c->ctx), c->threads = aibox_ctx_threads(c->ctx);
        c->tasks = AIBOX_MIN(c->threads, p->P);
        c->prod = aibox_alloc(sizeof(float) * (size_t)c->tasks * CHUNK * p->K);
        c->rowsbuf = aibox_alloc(sizeof(float) * (size_t)c->tasks * CHUNK * (p->D + p->r + 3));
        c->cand = malloc(sizeof(int) * (size_t)c->tasks * p->K);
        c->cd = aibox_alloc(sizeof(float) * (size_t)c->tasks * p->K);
        c->grid = aibox_alloc(sizeof(float) * (size_t)max_batch * p->P);
        c->nn = malloc(sizeof(long) * (size_t)max_batch * p->P);
        if (!c->prod || !c->rowsbuf || !c->cand || !c->cd || !c->grid || !c->nn)
            s = aibox_fail(err, AIBOX_E_NOMEM, "patchcore: out of memory for batch %d", max_batch);
    }
    if (!s) s = aibox_gridmap_init(&c->gmap, p->sigma, w, h, c->threads, "patchcore", err);
    if (s) {
        aibox_patchcore_ctx_free(&c);
        return s;
    }
    *out = c;
    return AIBOX_OK;
}

typedef struct nn_job {
    aibox_patchcore_ctx *c;
    const float *e; /* one image's features: D x P */
    float *dist;    /* P */
    long *nn;       /* P */
} nn_job;

/* Nearest bank entry of the patches [p0, p1), exactly, without the full
 * P x K x D product. With q = e - mu and every m - mu split along the
 * index's orthonormal directions into a head (r values) and the rest,
 *   |e - m|^2 = |q_h - m_h|^2 + |q_t - m_t|^2 >= |q_h - m_h|^2 + (|q_t| - |m_t|)^2,
 * a lower bound from one CHUNK x r by r x K sgemm. Per patch: the exact
 * distance to the entry of the smallest bound, then the exact distances of
 * every entry whose bound is not above it (plus float slack), the nearest of
 * them taken. No entry nearer than that first distance can be skipped, so
 * the result is brute force's. */
static void nn_task(void *arg, int task, int thread)
{
    (void)thread;
    nn_job *j = arg;
    aibox_patchcore_ctx *c = j->c;
    const aibox_patchcore *p = c->p;
    int p0, p1, P = p->P, D = p->D, r = p->r;
    long K = p->K;
    aibox_share(P, 1, task, c->tasks, &p0, &p1);
    float *lb = c->prod + (size_t)task * CHUNK * K;
    float *er = c->rowsbuf + (size_t)task * CHUNK * (D + r + 3), *qh = er + (size_t)CHUNK * D, *qn = qh + CHUNK * r;
    int *cand = c->cand + (size_t)task * K;
    float *cd = c->cd + (size_t)task * K;
    for (int c0 = p0; c0 < p1; c0 += CHUNK) {
        int rows = p1 - c0 < CHUNK ? p1 - c0 : CHUNK;
        /* the chunk's features as rows (e is channel-major, D x P), centred */
        for (int i = 0; i < rows; i++)
            for (int k = 0; k < D; k++) er[(size_t)i * D + k] = j->e[(size_t)k * P + c0 + i] - p->mu[k];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, r, D, 1.0f, er, D, p->vh, r, 0.0f, qh, r);
        for (int i = 0; i < rows; i++) {
            double q2 = 0, h2 = 0;
            for (int k = 0; k < D; k++) q2 += (double)er[(size_t)i * D + k] * er[(size_t)i * D + k];
            for (int k = 0; k < r; k++) h2 += (double)qh[i * r + k] * qh[i * r + k];
            qn[3 * i] = (float)h2, qn[3 * i + 1] = (float)sqrt(fmax(q2 - h2, 0)), qn[3 * i + 2] = (float)q2;
            for (int k = 0; k < D; k++) er[(size_t)i * D + k] += p->mu[k]; /* back to e for the exact distances */
        }
        /* lb = |q_h|^2 + |m_h|^2 - 2 q_h.m_h + (|q_t| - |m_t|)^2 */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, (int)K, r, -2.0f, qh, r, p->bh, r, 0.0f, lb, (int)K);
        for (int i = 0; i < rows; i++) {
            float *l = lb + (size_t)i * K, h2 = qn[3 * i], qt = qn[3 * i + 1];
            long near = 0;
            float low = INFINITY;
            for (long k = 0; k < K; k++) {
                float t = qt - p->bt[k], v = (l[k] + h2 + p->bh_sq[k]) + t * t;
                l[k] = v;
                if (v < low) low = v, near = k;
            }
            const float *ei = er + (size_t)i * D;
            int first = (int)near;
            float best;
            aibox_sqdist_rows(p->bank, D, &first, 1, ei, &best);
            /* the bounds' float error grows with the norms, not with the distances */
            float thr = best + 1e-5f * (qn[3 * i + 2] + p->bmax2) + 1e-30f;
            int n = 0;
            for (long k = 0; k < K; k++)
                if (l[k] <= thr) cand[n++] = (int)k;
            aibox_sqdist_rows(p->bank, D, cand, n, ei, cd);
            for (int q = 0; q < n; q++)
                if (cd[q] < best || (cd[q] == best && cand[q] < near)) best = cd[q], near = cand[q];
            j->dist[c0 + i] = best, j->nn[c0 + i] = near;
        }
    }
}

/* The paper's image score: the largest patch distance, re-weighted by how
 * isolated its nearest bank entry is among its own neighbours. */
/* Squared distance of two bank entries, in double. */
static double dist2(const float *a, const float *m, int D)
{
    double d = 0;
    for (int c = 0; c < D; c++) d += ((double)a[c] - m[c]) * ((double)a[c] - m[c]);
    return d;
}

/* Inserts (d, k) into the ascending list sd/sup of at most b entries (*have
 * so far) if it is nearer than the last; equal ones keep their order. */
static void keep_nearest(double *sd, long *sup, int *have, int b, double d, long k)
{
    if (*have == b && !(d < sd[b - 1])) return;
    int at = *have < b ? (*have)++ : b - 1;
    while (at > 0 && sd[at - 1] > d) sd[at] = sd[at - 1], sup[at] = sup[at - 1], at--;
    sd[at] = d, sup[at] = k;
}

static float reweight(const aibox_patchcore *p, float *lb, const float *e, const float *dist, const long *nn)
{
    int P = p->P, D = p->D, r = p->r, top = 0;
    for (int i = 1; i < P; i++)
        if (dist[i] > dist[top]) top = i;
    float s = dist[top];
    int b = (int)AIBOX_MIN((long)p->neighbours, p->K);
    if (b <= 1) return s;
    /* the b nearest bank entries of m* (m* itself first), by exact squared
     * distance in double, in index order as a full scan would insert them;
     * measured in full only where the index's lower bound (nn_task) does not
     * rule an entry out against the b-th distance of the b smallest bounds */
    long ns = nn[top];
    const float *ms = p->bank + (size_t)ns * D, *hs = p->bh + (size_t)ns * r;
    for (long k = 0; k < p->K; k++) {
        const float *h = p->bh + (size_t)k * r;
        float v = 0, t = p->bt[k] - p->bt[ns];
        for (int j = 0; j < r; j++) v += (h[j] - hs[j]) * (h[j] - hs[j]);
        lb[k] = v + t * t;
    }
    long sup[1024];
    double sd[1024];
    int have = 0;
    for (long k = 0; k < p->K; k++) keep_nearest(sd, sup, &have, b, lb[k], k); /* the b smallest bounds */
    double thr = 0;
    for (int i = 0; i < b; i++) {
        thr = fmax(thr, dist2(p->bank + (size_t)sup[i] * D, ms, D));
    }
    thr += 1e-5 * (2.0 * p->bmax2) + 1e-30; /* the bounds' float error */
    have = 0;
    for (long k = 0; k < p->K; k++) {
        if (lb[k] <= thr) keep_nearest(sd, sup, &have, b, dist2(p->bank + (size_t)k * D, ms, D), k);
    }
    /* softmax over the test patch's distances to them; weight 1 - its first entry */
    double dd[1024], mx = 0;
    for (int i = 0; i < b; i++) {
        const float *m = p->bank + (size_t)sup[i] * D;
        double d = 0;
        for (int c = 0; c < D; c++) {
            double t = (double)e[(size_t)c * P + top] - m[c];
            d += t * t;
        }
        dd[i] = sqrt(d);
        mx = i ? fmax(mx, dd[i]) : dd[i];
    }
    double den = 0;
    for (int i = 0; i < b; i++) den += exp(dd[i] - mx);
    return (float)((1.0 - exp(dd[0] - mx) / den) * s);
}

aibox_status aibox_patchcore_score(aibox_patchcore_ctx *c, const float *x, int n, float *grid, float *maps,
                                   float *scores, long *nn, aibox_error *err)
{
    if (!c || (!x && n)) return aibox_fail(err, AIBOX_E_INVALID, "patchcore: NULL argument");
    if (n < 0 || n > c->max_batch)
        return aibox_fail(err, AIBOX_E_INVALID, "patchcore: %d images (the context holds %d)", n, c->max_batch);
    if (!n) return AIBOX_OK;
    const aibox_patchcore *p = c->p;
    aibox_status s = aibox_ctx_infer(c->ctx, p->net, x, n, err);
    if (s) return s;
    const float *out = aibox_ctx_output(c->ctx, NULL, NULL, NULL);
    int ch, h, w, P = p->P, D = p->D;
    aibox_model_input_shape(p->net, &ch, &h, &w);
    for (int b = 0; b < n && !s; b++) {
        const float *e = out + (size_t)b * D * P;
        float *dist = c->grid + (size_t)b * P;
        long *near = c->nn + (size_t)b * P;
        nn_job j = {c, e, dist, near};
        aibox_pool_run(c->pool, c->tasks, nn_task, &j);
        for (int i = 0; i < P; i++) { /* rounding can take d^2 just below 0; an infinite feature must not become NaN */
            float d = sqrtf(fmaxf(dist[i], 0.0f));
            dist[i] = d <= 3.0e38f ? d : 3.0e38f;
        }
        if (scores) scores[b] = reweight(p, c->cd, e, dist, near);
        if (!maps) continue;
        float *m = maps + (size_t)b * h * w;
        s = aibox_gridmap_run(&c->gmap, c->pool, dist, p->gw, p->gh, m, err);
    }
    if (grid) memcpy(grid, c->grid, sizeof(float) * (size_t)n * P);
    if (nn) memcpy(nn, c->nn, sizeof(long) * (size_t)n * P);
    return s;
}

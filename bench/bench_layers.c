/* bench_layers: speed of libaibox's conv and dense kernels and of a whole
 * AlexNet-256 training step, against plain OpenBLAS sgemm.
 *
 *   bench_layers [--threads N] [--batch N] [--reps N] [--size N] [--json]
 *
 * Times are medians of --reps runs after a warm-up run (three, and at least
 * 20 runs, for batch-1 inference). The layers run split over --threads
 * threads as a context splits them; the training step and inference use
 * contexts (aibox_ctx_create_ex) with that many threads. FLOPs are counted
 * analytically: 2 per multiply-add of the conv and dense layers; a backward
 * pass counts the weight gradient plus, when computed, the input gradient
 * (each as much as the forward). Human lines go to stdout, or to stderr with
 * --json, which prints one JSON line of the results on stdout.
 *
 * Not a test: it checks nothing but that every call succeeds. */
#include <cblas.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aibox.h"
#define BENCH_NAME "bench_layers"
#include "bench.h"
#include "core/pool.h"
#include "ops/ops.h"

#define MAX_LAYERS 8

typedef struct {
    int threads, batch, reps, size, json, winograd, depthwise;
} options;

/* One measured conv or dense layer. */
typedef struct {
    char name[16];
    char shape[64];
    double fwd_ms, bwd_ms, fwd_gflops, bwd_gflops;
    double sgemm_fwd_gflops, sgemm_bwd_gflops; /* conv only */
    int is_conv;
} layer_result;

/* Runs fn warmup times to warm caches and fault pages in, then reps times;
 * returns the median milliseconds. */
static double median_ms(void (*fn)(void *), void *arg, int warmup, int reps)
{
    double t[256];
    if (reps > 256) reps = 256;
    for (int i = 0; i < warmup; i++) fn(arg);
    for (int i = 0; i < reps; i++) {
        double t0 = now_ms();
        fn(arg);
        t[i] = now_ms() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    return reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
}

static float *alloc_floats(size_t count, aibox_rng *rng, float scale)
{
    float *p = aibox_alloc(count * sizeof *p);
    if (!p) die("out of memory (%zu floats)", count);
    /* Random values keep the arithmetic honest (no zero or denormal shortcuts). */
    for (size_t i = 0; i < count; i++) p[i] = rng ? scale * (2.0f * aibox_rng_uniform(rng) - 1.0f) : 0.0f;
    return p;
}

/* ------------------------------------------------------------ threads */
/* libaibox runs OpenBLAS single-threaded and splits each layer over a
 * context's own thread pool; the kernels here are split the same way (as
 * lib/nn/layers.c does), so one layer's time matches what a context sees. */
typedef struct {
    aibox_pool *pool;
    int threads;
} team;

typedef void (*part_fn)(void *arg, int part, int parts, int thread);
typedef struct {
    part_fn fn;
    void *arg;
    int parts;
} job;

static void job_task(void *arg, int task, int thread)
{
    job *j = arg;
    j->fn(j->arg, task, j->parts, thread);
}

static void run_parts(const team *t, part_fn fn, void *arg, int parts)
{
    job j = {fn, arg, parts};
    aibox_pool_run(t->pool, parts, job_task, &j);
}

static void split(int total, int part, int parts, int *a, int *b)
{
    *a = (int)((long)total * part / parts);
    *b = (int)((long)total * (part + 1) / parts);
}

/* ------------------------------------------------------------ conv */
typedef struct {
    const team *t;
    aibox_conv_desc d;
    int n, need_dx;
    size_t ws_stride, in_sz, out_sz, nw;
    float *x, *w, *b, *y, *dy, *dx, *dw, *db, *ws, *partial; /* partial: (threads-1) x (nw + out_c) */
} conv_case;

static void conv_fwd_part(void *p, int part, int parts, int thread)
{
    conv_case *c = p;
    float *ws = c->ws + (size_t)thread * c->ws_stride;
    if (c->n >= parts) { /* whole samples per thread */
        int a, b;
        split(c->n, part, parts, &a, &b);
        if (b > a)
            aibox_conv_fwd_part(&c->d, b - a, c->x + a * c->in_sz, c->w, NULL, c->b, c->y + a * c->out_sz, ws, 0, 0, 1);
    } else { /* pieces of each sample */
        aibox_conv_fwd_part(&c->d, c->n, c->x, c->w, NULL, c->b, c->y, ws, 0, part, parts);
    }
}

static void conv_fwd(void *p)
{
    conv_case *c = p;
    run_parts(c->t, conv_fwd_part, c, c->t->threads);
}

static void conv_bwd_part(void *p, int part, int parts, int thread)
{
    conv_case *c = p;
    int a, b;
    split(c->n, part, parts, &a, &b);
    if (b <= a) return;
    /* Part 0 accumulates into the gradients, the others into their own
     * blocks, summed afterwards. */
    float *dw = c->dw, *db = c->db;
    if (part > 0) {
        dw = c->partial + (size_t)(part - 1) * (c->nw + c->d.out_c);
        db = dw + c->nw;
    }
    aibox_conv_bwd(&c->d, b - a, c->x + a * c->in_sz, c->w, c->dy + a * c->out_sz,
                   c->need_dx ? c->dx + a * c->in_sz : NULL, dw, db, c->ws + (size_t)thread * c->ws_stride);
}

static void conv_bwd(void *p)
{
    conv_case *c = p;
    int parts = c->n < c->t->threads ? 1 : c->t->threads;
    size_t stride = c->nw + c->d.out_c;
    memset(c->partial, 0, sizeof(float) * stride * (size_t)(parts - 1));
    run_parts(c->t, conv_bwd_part, c, parts);
    for (int k = 1; k < parts; k++) {
        const float *pw = c->partial + (size_t)(k - 1) * stride;
        for (size_t i = 0; i < c->nw; i++) c->dw[i] += pw[i];
        for (int i = 0; i < c->d.out_c; i++) c->db[i] += pw[c->nw + i];
    }
}

/* The GEMMs an im2col convolution runs per image: forward Y = W . col
 * (M=out_c, N=out_h*out_w, K=in_c*kh*kw); backward dW += dY . col^T and
 * dcol = W^T . dY. Images are split over the threads like the convolution;
 * each thread has its own outputs. */
typedef struct {
    const team *t;
    int m, n, k, images, need_dx;
    float *a, *b, *dy;  /* shared inputs: W (m x k), col (k x n), dY (m x n) */
    float *c, *dw, *dc; /* per thread: Y (m x n), dW (m x k), dcol (k x n) */
} gemm_case;

static void gemm_fwd_part(void *p, int part, int parts, int thread)
{
    gemm_case *g = p;
    int a, b;
    split(g->images, part, parts, &a, &b);
    float *c = g->c + (size_t)thread * g->m * g->n;
    for (int i = a; i < b; i++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->m, g->n, g->k, 1.0f, g->a, g->k, g->b, g->n, 0.0f,
                    c, g->n);
}

static void gemm_bwd_part(void *p, int part, int parts, int thread)
{
    gemm_case *g = p;
    int a, b;
    split(g->images, part, parts, &a, &b);
    float *dw = g->dw + (size_t)thread * g->m * g->k, *dc = g->dc + (size_t)thread * g->k * g->n;
    for (int i = a; i < b; i++) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->m, g->k, g->n, 1.0f, g->dy, g->n, g->b, g->n, 1.0f,
                    dw, g->k);
        if (g->need_dx)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g->k, g->n, g->m, 1.0f, g->a, g->k, g->dy, g->n,
                        0.0f, dc, g->n);
    }
}

static void gemm_fwd(void *p)
{
    gemm_case *g = p;
    run_parts(g->t, gemm_fwd_part, g, g->t->threads);
}

static void gemm_bwd(void *p)
{
    gemm_case *g = p;
    run_parts(g->t, gemm_bwd_part, g, g->t->threads);
}

static void bench_conv(const team *t, const char *name, int n, int in_c, int hw, int out_c, int need_dx, int reps,
                       aibox_rng *rng, layer_result *r)
{
    conv_case c = {.t = t, .n = n, .need_dx = need_dx};
    c.d = (aibox_conv_desc){.in_c = in_c, .in_h = hw, .in_w = hw, .out_c = out_c, .kh = 3, .kw = 3, .sh = 1,
                            .sw = 1, .pt = 1, .pl = 1, .groups = 1};
    c.d.out_h = aibox_conv_out_size(hw, 3, 1, 1, 1);
    c.d.out_w = aibox_conv_out_size(hw, 3, 1, 1, 1);
    c.in_sz = (size_t)in_c * hw * hw;
    c.out_sz = (size_t)out_c * c.d.out_h * c.d.out_w;
    c.nw = (size_t)out_c * in_c * 9;
    c.ws_stride = aibox_conv_ws_floats(&c.d);
    c.x = alloc_floats(n * c.in_sz, rng, 1.0f);
    c.w = alloc_floats(c.nw, rng, 0.1f);
    c.b = alloc_floats((size_t)out_c, rng, 0.1f);
    c.y = alloc_floats(n * c.out_sz, NULL, 0);
    c.dy = alloc_floats(n * c.out_sz, rng, 1.0f);
    c.dx = alloc_floats(n * c.in_sz, NULL, 0);
    c.dw = alloc_floats(c.nw, NULL, 0);
    c.db = alloc_floats((size_t)out_c, NULL, 0);
    c.ws = alloc_floats(c.ws_stride * t->threads + 1, NULL, 0);
    c.partial = alloc_floats((c.nw + out_c) * t->threads, NULL, 0);

    double macs = (double)n * out_c * c.d.out_h * c.d.out_w * in_c * 9;
    r->is_conv = 1;
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->shape, sizeof r->shape, "%dx%dx%d -> %dx%dx%d", in_c, hw, hw, out_c, c.d.out_h, c.d.out_w);
    r->fwd_ms = median_ms(conv_fwd, &c, 1, reps);
    r->bwd_ms = median_ms(conv_bwd, &c, 1, reps);
    r->fwd_gflops = 2 * macs / (r->fwd_ms * 1e6);
    r->bwd_gflops = (need_dx ? 4 : 2) * macs / (r->bwd_ms * 1e6);

    /* Plain sgemm on the same shapes, per image, as the reference speed. */
    gemm_case g = {.t = t, .m = out_c, .n = c.d.out_h * c.d.out_w, .k = in_c * 9, .images = n, .need_dx = need_dx};
    size_t mn = (size_t)g.m * g.n, mk = (size_t)g.m * g.k, kn = (size_t)g.k * g.n;
    g.a = alloc_floats(mk, rng, 0.1f);
    g.b = alloc_floats(kn, rng, 1.0f);
    g.dy = alloc_floats(mn, rng, 1.0f);
    g.c = alloc_floats(mn * t->threads, NULL, 0);
    g.dw = alloc_floats(mk * t->threads, NULL, 0);
    g.dc = alloc_floats(need_dx ? kn * t->threads : 1, NULL, 0);
    double gf = median_ms(gemm_fwd, &g, 1, reps), gb = median_ms(gemm_bwd, &g, 1, reps);
    r->sgemm_fwd_gflops = 2 * macs / (gf * 1e6);
    r->sgemm_bwd_gflops = (need_dx ? 4 : 2) * macs / (gb * 1e6);
    float *bufs[] = {c.x, c.w, c.b, c.y, c.dy, c.dx, c.dw, c.db, c.ws, c.partial, g.a, g.b, g.dy, g.c, g.dw, g.dc};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) aibox_free(bufs[i]);
}

/* ------------------------------------------------------------ dense */
typedef struct {
    const team *t;
    int n, in, out;
    float *x, *w, *b, *y, *dy, *dx, *dw, *db;
} dense_case;

/* The dense kernels split output units (forward) or dw rows and dx columns
 * (backward) into disjoint pieces themselves. */
static void dense_fwd_part(void *p, int part, int parts, int thread)
{
    dense_case *d = p;
    aibox_dense_fwd_part(d->n, d->in, d->out, d->x, d->w, d->b, d->y, part, parts);
}

static void dense_bwd_part(void *p, int part, int parts, int thread)
{
    dense_case *d = p;
    aibox_dense_bwd_part(d->n, d->in, d->out, d->x, d->w, d->dy, d->dx, d->dw, d->db, part, parts);
}

static void dense_fwd(void *p)
{
    dense_case *d = p;
    run_parts(d->t, dense_fwd_part, d, d->t->threads);
}

static void dense_bwd(void *p)
{
    dense_case *d = p;
    run_parts(d->t, dense_bwd_part, d, d->t->threads);
}

static void bench_dense(const team *t, const char *name, int n, int in, int out, int reps, aibox_rng *rng,
                        layer_result *r)
{
    dense_case d = {.t = t, .n = n, .in = in, .out = out};
    d.x = alloc_floats((size_t)n * in, rng, 1.0f);
    d.w = alloc_floats((size_t)in * out, rng, 0.01f);
    d.b = alloc_floats((size_t)out, rng, 0.1f);
    d.y = alloc_floats((size_t)n * out, NULL, 0);
    d.dy = alloc_floats((size_t)n * out, rng, 1.0f);
    d.dx = alloc_floats((size_t)n * in, NULL, 0);
    d.dw = alloc_floats((size_t)in * out, NULL, 0);
    d.db = alloc_floats((size_t)out, NULL, 0);
    double macs = (double)n * in * out;
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->shape, sizeof r->shape, "%d -> %d", in, out);
    r->fwd_ms = median_ms(dense_fwd, &d, 1, reps);
    r->bwd_ms = median_ms(dense_bwd, &d, 1, reps);
    r->fwd_gflops = 2 * macs / (r->fwd_ms * 1e6);
    r->bwd_gflops = 4 * macs / (r->bwd_ms * 1e6);
    float *bufs[] = {d.x, d.w, d.b, d.y, d.dy, d.dx, d.dw, d.db};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) aibox_free(bufs[i]);
}

/* ------------------------------------------------------------ Winograd */
/* --winograd: 3x3 'same' convolutions, batch 1, one thread, folded batch
 * norm + ReLU: im2col (aibox_conv_fwd_part) against Winograd F(2x2, 3x3) in
 * the blocks a frozen context uses, repetitions interleaved (a neighbour's
 * burst hits both), medians; whether aibox_wino_eligible picks it. The shapes:
 * ResNet-18's at 224 (layer1-4), the AI-Box AlexNet's at 256, and the edges
 * of the eligibility rule (few input channels; many channels, few tiles). */
typedef struct {
    aibox_conv_desc d;
    float *x, *w, *u, *scale, *shift, *y, *ws, *vm, *wino_ws;
    int rows, total;
} wino_case;

static void wino_run(wino_case *c)
{
    for (int g0 = 0; g0 < c->total; g0 += c->rows) {
        int g1 = g0 + c->rows < c->total ? g0 + c->rows : c->total;
        aibox_wino_input(&c->d, g0, g1, c->x, c->vm, c->wino_ws, 0, 1);
        aibox_wino_gemm(&c->d, g1 - g0, c->u, c->vm, 0, 1);
        aibox_wino_output(&c->d, g0, g1, c->vm, c->scale, c->shift, c->y, 1, 0, 1);
    }
}

static void bench_winograd(int reps, aibox_rng *rng)
{
    static const int shapes[][3] = {/* in_c, out_c, side */
                                    {64, 64, 56},    {128, 128, 28},  {256, 256, 14}, {512, 512, 7},
                                    {3, 32, 256},    {32, 32, 256},   {32, 64, 128},  {64, 128, 64},
                                    {4, 64, 56},     {8, 64, 56},     {512, 512, 5},  {512, 512, 12},
                                    {1024, 1024, 7}, {1024, 1024, 14}};
    double *ta = malloc(sizeof(double) * (size_t)reps), *tb = malloc(sizeof(double) * (size_t)reps);
    if (!ta || !tb) die("out of memory");
    say("3x3 convolutions, stride 1, pad 1, batch 1, 1 thread, + BN + ReLU: im2col vs Winograd F(2x2,3x3)\n");
    say("%-22s %7s %10s %10s %7s  %s\n", "in -> out @ side", "tiles", "im2col ms", "wino ms", "ratio", "eligible");
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        int C = shapes[i][0], K = shapes[i][1], S = shapes[i][2];
        wino_case c = {.d = {C, S, S, K, S, S, 3, 3, 1, 1, 1, 1, 1}};
        size_t vm = aibox_wino_scratch_floats(&c.d);
        c.x = alloc_floats((size_t)C * S * S, rng, 1.0f);
        c.w = alloc_floats((size_t)K * C * 9, rng, 0.1f);
        c.scale = alloc_floats((size_t)K, rng, 1.0f);
        c.shift = alloc_floats((size_t)K, rng, 1.0f);
        c.y = alloc_floats((size_t)K * S * S, NULL, 0);
        c.ws = alloc_floats(aibox_conv_ws_floats(&c.d) + 1, NULL, 0);
        c.u = alloc_floats(aibox_wino_u_floats(&c.d), NULL, 0);
        c.vm = alloc_floats(vm, NULL, 0);
        c.wino_ws = alloc_floats(aibox_wino_ws_floats(&c.d), NULL, 0);
        c.rows = aibox_wino_block_rows(&c.d, 1, vm);
        c.total = aibox_wino_tile_rows(&c.d);
        aibox_wino_weights(&c.d, c.w, c.u);
        for (int r = -2; r < reps; r++) {
            double t0 = now_ms();
            aibox_conv_fwd_part(&c.d, 1, c.x, c.w, c.scale, c.shift, c.y, c.ws, 1, 0, 1);
            double t1 = now_ms();
            wino_run(&c);
            if (r >= 0) ta[r] = t1 - t0, tb[r] = now_ms() - t1;
        }
        qsort(ta, (size_t)reps, sizeof *ta, cmp_double);
        qsort(tb, (size_t)reps, sizeof *tb, cmp_double);
        char name[32];
        snprintf(name, sizeof name, "%d -> %d @ %d", C, K, S);
        say("%-22s %7d %10.3f %10.3f %6.2fx  %s\n", name, c.total * ((S + 1) / 2), ta[reps / 2], tb[reps / 2],
            ta[reps / 2] / tb[reps / 2], aibox_wino_eligible(&c.d) ? "yes" : "no");
        aibox_free(c.x), aibox_free(c.w), aibox_free(c.scale), aibox_free(c.shift), aibox_free(c.y);
        aibox_free(c.ws), aibox_free(c.u), aibox_free(c.vm), aibox_free(c.wino_ws);
    }
    free(ta), free(tb);
}

/* ------------------------------------------------------------ depthwise */
/* --depthwise: MobileNet v1 1.0/224's depthwise 3x3 layers (TF 'SAME'
 * padding: 1/1 at stride 1, 0/1 at stride 2 on even sides), batch 1, one
 * thread, bias as the TFLite import runs them: through aibox_conv_fwd_part
 * (what a context runs) and through each kernel this CPU has
 * (aibox_dwconv_fwd_part); GB/s = (input + output bytes) / time. "copy":
 * one memcpy moving as many bytes (reading half, writing half; the layer
 * reads its input and writes its output): what the memory system allows
 * one core for the same traffic.
 * For the fusion question, the clamp pass the import puts after each
 * convolution and the following pointwise 1x1 convolution (bias, through
 * aibox_conv_fwd_part). Repetitions interleaved (a neighbour's burst hits
 * all columns), medians. */
typedef struct {
    int c, side, stride, pw_out;
} dw_shape;

static double med_of(double *t, int reps)
{
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    return reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
}

static void bench_depthwise(int reps, aibox_rng *rng)
{
    static const dw_shape shapes[] = {{32, 112, 1, 64},  {64, 112, 2, 128}, {128, 56, 1, 128},
                                      {128, 56, 2, 256}, {256, 28, 1, 256}, {256, 28, 2, 512},
                                      {512, 14, 1, 512}, {512, 14, 2, 1024}, {1024, 7, 1, 1024}};
    enum { MAXK = 4, NCOL = 4 + MAXK }; /* library, copy, clamp, pw, kernels */
    aibox_dwconv_kernel ks[MAXK];
    int nk = aibox_dwconv_kernels(aibox_cpu_features(), ks, MAXK);
    double *t[NCOL];
    for (int k = 0; k < NCOL; k++)
        if (!(t[k] = malloc(sizeof(double) * (size_t)reps))) die("out of memory");
    say("MobileNet v1 1.0/224 depthwise 3x3 layers, batch 1, 1 thread, bias; median of %d interleaved runs; ms\n",
        reps);
    say("%-14s %8s %6s %8s %6s", "C x side, s", "loops", "GB/s", "copy", "GB/s");
    for (int k = 0; k < nk; k++) say(" %8s", ks[k].name);
    say(" | %8s %8s %6s\n", "clamp", "pw", "pw out");
    double sum[NCOL] = {0};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        const dw_shape *sh = &shapes[i];
        int C = sh->c, S = sh->side, s = sh->stride, pad0 = s == 1 ? 1 : 0, pad1 = 1;
        aibox_conv_desc d = {.in_c = C, .in_h = S, .in_w = S, .out_c = C, .kh = 3, .kw = 3, .sh = s, .sw = s,
                             .pt = pad0, .pl = pad0, .groups = C};
        d.out_h = aibox_conv_out_size(S, 3, s, pad0, pad1);
        d.out_w = aibox_conv_out_size(S, 3, s, pad0, pad1);
        size_t nin = (size_t)C * S * S, nout = (size_t)C * d.out_h * d.out_w;
        aibox_conv_desc pw = {.in_c = C, .in_h = d.out_h, .in_w = d.out_w, .out_c = sh->pw_out, .out_h = d.out_h,
                              .out_w = d.out_w, .kh = 1, .kw = 1, .sh = 1, .sw = 1, .groups = 1};
        size_t npw = (size_t)sh->pw_out * d.out_h * d.out_w;
        float *x = alloc_floats(nin, rng, 1.0f), *w = alloc_floats((size_t)C * 9, rng, 0.3f);
        float *b = alloc_floats((size_t)(C > sh->pw_out ? C : sh->pw_out), rng, 0.1f);
        float *y = alloc_floats(nin, NULL, 0), *z = alloc_floats(nin, NULL, 0);
        float *pww = alloc_floats((size_t)C * sh->pw_out, rng, 0.1f), *pwy = alloc_floats(npw, NULL, 0);
        float *ws = alloc_floats(aibox_conv_ws_floats(&d) + aibox_conv_ws_floats(&pw) + 1, NULL, 0);
        for (int r = -2; r < reps; r++) {
            double t0 = now_ms();
            aibox_conv_fwd_part(&d, 1, x, w, NULL, b, y, ws, 0, 0, 1);
            double t1 = now_ms();
            memcpy(y, x, (nin + nout) / 2 * sizeof *x); /* the layer's bytes moved */
            double t2 = now_ms();
            aibox_clamp_fwd(nout, 0.0f, 6.0f, y, z);
            double t3 = now_ms();
            aibox_conv_fwd_part(&pw, 1, z, pww, NULL, b, pwy, ws, 0, 0, 1);
            double t4 = now_ms();
            if (r >= 0) t[0][r] = t1 - t0, t[1][r] = t2 - t1, t[2][r] = t3 - t2, t[3][r] = t4 - t3;
            for (int k = 0; k < nk; k++) {
                double t5 = now_ms();
                aibox_dwconv_fwd_part(&ks[k], &d, 1, x, w, NULL, b, y, 0, 0, 1);
                if (r >= 0) t[4 + k][r] = now_ms() - t5;
            }
        }
        double m[NCOL];
        for (int k = 0; k < 4 + nk; k++) sum[k] += m[k] = med_of(t[k], reps);
        char name[32];
        snprintf(name, sizeof name, "%dx%d s%d", C, S, s);
        double bytes = 4.0 * (double)(nin + nout);
        say("%-14s %8.3f %6.1f %8.3f %6.1f", name, m[0], bytes / (m[0] * 1e6), m[1], bytes / (m[1] * 1e6));
        for (int k = 0; k < nk; k++) say(" %8.3f", m[4 + k]);
        say(" | %8.3f %8.3f %6d\n", m[2], m[3], sh->pw_out);
        float *bufs[] = {x, w, b, y, z, pww, pwy, ws};
        for (size_t k = 0; k < sizeof bufs / sizeof *bufs; k++) aibox_free(bufs[k]);
    }
    say("%-14s %8.3f %6s %8.3f %6s", "sum", sum[0], "", sum[1], "");
    for (int k = 0; k < nk; k++) say(" %8.3f", sum[4 + k]);
    say(" | %8.3f %8.3f\n", sum[2], sum[3]);
    for (int k = 0; k < NCOL; k++) free(t[k]);
}

/* ------------------------------------------------------------ whole model */
/* Forward FLOPs per sample: 2 x the multiply-adds of every conv and dense
 * node, from its weight count times its output positions. */
static double model_fwd_flops(aibox_model *m)
{
    double f = 0;
    for (int i = 0; i < aibox_model_node_count(m); i++) {
        aibox_layer_kind k = aibox_model_node_kind(m, i);
        if (k != AIBOX_LAYER_CONV2D && k != AIBOX_LAYER_DENSE) continue;
        size_t wcount = 0;
        int c, h, w;
        if (!aibox_model_node_param(m, i, 0, &wcount)) continue;
        aibox_model_node_shape(m, i, &c, &h, &w);
        f += 2.0 * (double)wcount * (k == AIBOX_LAYER_CONV2D ? (double)h * w : 1.0);
    }
    return f;
}

typedef struct {
    aibox_model *m;
    aibox_ctx *ctx;
    aibox_optim *opt;
    const float *x;
    const int *labels;
    int n;
} step_case;

static void train_step(void *p)
{
    step_case *s = p;
    aibox_error err = {0};
    float loss;
    aibox_model_zero_grad(s->m);
    check(aibox_ctx_forward(s->ctx, s->m, s->x, s->n, &err), &err, "forward");
    check(aibox_ctx_loss_softmax_ce(s->ctx, s->labels, NULL, &loss, &err), &err, "loss");
    check(aibox_ctx_backward(s->ctx, s->m, &err), &err, "backward");
    check(aibox_optim_step(s->opt, s->m, &err), &err, "optimizer step");
}

static void infer_one(void *p)
{
    step_case *s = p;
    aibox_error err = {0};
    check(aibox_ctx_infer(s->ctx, s->m, s->x, 1, &err), &err, "inference");
}

/* ------------------------------------------------------------ main */
static void usage(FILE *f)
{
    fprintf(f, "usage: bench_layers [--threads N] [--batch N] [--reps N] [--size N] [--json] [--winograd]\n"
               "                    [--depthwise]\n"
               "  --threads N  threads of libaibox's pool (default: $AIBOX_THREADS or the CPUs)\n"
               "  --batch N    training batch (default 16)\n"
               "  --reps N     timed repetitions after a warm-up (default 5, at most 256)\n"
               "  --size N     input side, a multiple of 8 (default 256)\n"
               "  --json       one JSON line of results on stdout; human lines on stderr\n"
               "  --winograd   only compare im2col and Winograd on 3x3 layers (one thread, --reps\n"
               "               interleaved repetitions, default 5: use ~50)\n"
               "  --depthwise  only MobileNet v1's depthwise 3x3 layers (batch 1, one thread, --reps\n"
               "               interleaved repetitions: use ~50), with the clamp and pointwise after them\n");
}

int main(int argc, char **argv)
{
    options o = {.threads = 0, .batch = 16, .reps = 5, .size = 256, .json = 0, .winograd = 0, .depthwise = 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--threads")) o.threads = parse_pos(a, i + 1 < argc ? argv[++i] : NULL, 100000);
        else if (!strcmp(a, "--batch")) o.batch = parse_pos(a, i + 1 < argc ? argv[++i] : NULL, 100000);
        else if (!strcmp(a, "--reps")) o.reps = parse_pos(a, i + 1 < argc ? argv[++i] : NULL, 100000);
        else if (!strcmp(a, "--size")) o.size = parse_pos(a, i + 1 < argc ? argv[++i] : NULL, 100000);
        else if (!strcmp(a, "--json")) o.json = 1;
        else if (!strcmp(a, "--winograd")) o.winograd = 1;
        else if (!strcmp(a, "--depthwise")) o.depthwise = 1;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        else { usage(stderr); die("unknown option '%s'", a); }
    }
    if (o.size % 8) die("--size must be a multiple of 8 (three 2x2 pools)");
    if (o.reps > 256) o.reps = 256;
    bench_human = o.json ? stderr : stdout;

    /* Before any sgemm: picks OpenBLAS's kernels and makes it single-threaded. */
    aibox_blas_setup();
    if (o.winograd) {
        aibox_rng wr;
        aibox_rng_seed(&wr, 1);
        bench_winograd(o.reps, &wr);
        return 0;
    }
    if (o.depthwise) {
        aibox_rng dr;
        aibox_rng_seed(&dr, 1);
        bench_depthwise(o.reps, &dr);
        return 0;
    }
    if (!o.threads) o.threads = aibox_default_num_threads();
    team t = {NULL, o.threads};
    aibox_error err = {0};
    check(aibox_pool_create(&t.pool, o.threads, &err), &err, "thread pool");
    say("libaibox %s; %s\n", aibox_version(), aibox_blas_info());
    say("threads %d, batch %d, input %dx%dx3, median of %d after a warm-up\n\n", o.threads, o.batch, o.size, o.size,
        o.reps);

    aibox_rng rng;
    aibox_rng_seed(&rng, 1);
    int s = o.size, n = o.batch;
    layer_result lr[MAX_LAYERS];
    int nl = 0;
    say("%-7s %-26s %9s %8s %9s %8s %8s %6s %8s %6s\n", "layer", "shape", "fwd ms", "GFLOPS", "bwd ms", "GFLOPS",
        "sgemm", "fwd%", "sgemm", "bwd%");
    /* The AI-Box AlexNet's convolutions; the first needs no input gradient. */
    struct { const char *name; int in_c, hw, out_c, dx; } convs[] = {
        {"conv1", 3, s, 32, 0}, {"conv2", 32, s, 32, 1}, {"conv3", 32, s / 2, 64, 1}, {"conv4", 64, s / 4, 128, 1}};
    struct { const char *name; int in, out; } denses[] = {
        {"dense1", 128 * (s / 8) * (s / 8), 128}, {"dense2", 128, 64}, {"dense3", 64, 2}};
    for (size_t i = 0; i < sizeof convs / sizeof *convs; i++, nl++) {
        layer_result *r = &lr[nl];
        bench_conv(&t, convs[i].name, n, convs[i].in_c, convs[i].hw, convs[i].out_c, convs[i].dx, o.reps, &rng, r);
        say("%-7s %-26s %9.3f %8.1f %9.3f %8.1f %8.1f %5.0f%% %8.1f %5.0f%%\n", r->name, r->shape, r->fwd_ms,
            r->fwd_gflops, r->bwd_ms, r->bwd_gflops, r->sgemm_fwd_gflops, 100 * r->fwd_gflops / r->sgemm_fwd_gflops,
            r->sgemm_bwd_gflops, 100 * r->bwd_gflops / r->sgemm_bwd_gflops);
    }
    for (size_t i = 0; i < sizeof denses / sizeof *denses; i++, nl++) {
        layer_result *r = &lr[nl];
        bench_dense(&t, denses[i].name, n, denses[i].in, denses[i].out, o.reps, &rng, r);
        say("%-7s %-26s %9.3f %8.1f %9.3f %8.1f\n", r->name, r->shape, r->fwd_ms, r->fwd_gflops, r->bwd_ms,
            r->bwd_gflops);
    }

    aibox_pool_free(&t.pool); /* the contexts below run their own */

    /* The whole training step: forward, softmax CE, backward, Adam. */
    aibox_model *m = NULL;
    check(aibox_preset_alexnet(&m, 2, 3, s, 0.25f, &err), &err, "aibox_preset_alexnet");
    aibox_ctx *ctx = NULL, *ictx = NULL;
    aibox_optim *opt = NULL;
    aibox_optim_opts oo = {.kind = AIBOX_ADAM, .lr = 1e-4f};
    check(aibox_ctx_create(&ctx, m, &(aibox_ctx_opts){.mode = AIBOX_TRAIN, .max_batch = n, .height = s, .width = s, .threads = o.threads, .seed = 1}, &err), &err, "training context");
    check(aibox_optim_create(&opt, m, &oo, &err), &err, "optimizer");
    aibox_optim_set_ctx(opt, ctx); /* the update over the context's threads */
    float *x = alloc_floats((size_t)n * 3 * s * s, &rng, 1.0f);
    int *labels = malloc(sizeof *labels * (size_t)n);
    if (!labels) die("out of memory");
    for (int i = 0; i < n; i++) labels[i] = i % 2;
    double flops = model_fwd_flops(m);
    step_case sc = {.m = m, .ctx = ctx, .opt = opt, .x = x, .labels = labels, .n = n};
    double step_ms = median_ms(train_step, &sc, 1, o.reps);
    double img_s = n / (step_ms / 1e3);
    double train_gflops = 3 * flops * n / (step_ms * 1e6);
    say("\nAlexNet-%d (%zu parameters, %.2f GFLOP per image forward), %s context\n", s, aibox_model_param_count(m),
        flops / 1e9, "training");
    say("  training step, batch %d: %.1f ms, %.2f images/s, %.1f GFLOPS\n", n, step_ms, img_s, train_gflops);
    aibox_optim_set_ctx(opt, NULL);
    aibox_ctx_free(&ctx);

    /* Batch-1 inference latency at the chosen thread count, then at one. */
    int infer_reps = o.reps < 20 ? 20 : o.reps;
    double infer_ms = 0, infer1_ms = 0;
    for (int pass = 0; pass < (o.threads > 1 ? 2 : 1); pass++) {
        int th = pass ? 1 : o.threads;
        check(aibox_ctx_create(&ictx, m, &(aibox_ctx_opts){.height = s, .width = s, .threads = th, .seed = 1}, &err), &err, "inference context");
        check(aibox_ctx_freeze_weights(ictx, m, &err), &err, "aibox_ctx_freeze_weights"); /* as aibox-infer */
        sc.ctx = ictx;
        double ms = median_ms(infer_one, &sc, 3, infer_reps);
        aibox_ctx_free(&ictx);
        say("  inference, batch 1, %d thread%s: %.2f ms\n", th, th > 1 ? "s" : "", ms);
        if (th == 1) infer1_ms = ms;
        if (!pass) infer_ms = ms;
    }

    if (o.json) {
        printf("{\"bench\":\"bench_layers\",\"version\":\"%s\",\"blas\":\"%s\",\"blas_core\":\"%s\","
               "\"threads\":%d,\"batch\":%d,\"size\":%d,\"reps\":%d,\"layers\":[",
               aibox_version(), aibox_blas_info(), aibox_blas_core(), o.threads, n, s, o.reps);
        for (int i = 0; i < nl; i++) {
            const layer_result *r = &lr[i];
            printf("%s{\"name\":\"%s\",\"shape\":\"%s\",\"fwd_ms\":%.3f,\"fwd_gflops\":%.2f,\"bwd_ms\":%.3f,"
                   "\"bwd_gflops\":%.2f",
                   i ? "," : "", r->name, r->shape, r->fwd_ms, r->fwd_gflops, r->bwd_ms, r->bwd_gflops);
            if (r->is_conv)
                printf(",\"sgemm_fwd_gflops\":%.2f,\"sgemm_bwd_gflops\":%.2f,\"fwd_vs_sgemm\":%.3f,"
                       "\"bwd_vs_sgemm\":%.3f",
                       r->sgemm_fwd_gflops, r->sgemm_bwd_gflops, r->fwd_gflops / r->sgemm_fwd_gflops,
                       r->bwd_gflops / r->sgemm_bwd_gflops);
            printf("}");
        }
        printf("],\"params\":%zu,\"fwd_gflop_per_image\":%.4f,\"train_step_ms\":%.2f,\"train_img_s\":%.3f,"
               "\"train_gflops\":%.2f,\"infer_b1_ms\":%.3f,\"infer_b1_ms_1thread\":%.3f}\n",
               aibox_model_param_count(m), flops / 1e9, step_ms, img_s, train_gflops, infer_ms, infer1_ms);
    }
    aibox_optim_free(&opt);
    aibox_model_free(&m);
    aibox_free(x);
    free(labels);
    return 0;
}

/* The layer table: one record per layer kind (shape inference, parameter
 * initialisation, scratch sizes, forward, backward), keyed by
 * aibox_layer_kind. Adding a layer is one kernel file plus one entry here
 * (with its named settings' field list, when it has settings, and an
 * example in tests/nn/test_registry.c, which fails until the kind is
 * complete). */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "nn/nn.h"

#define WHY(...) (snprintf(why, why_len, __VA_ARGS__), 0)

/* a * b * c * d (each >= 0) in 64 bits, or -1 when it exceeds AIBOX_MAX_ELEMS */
static int64_t product(int64_t a, int64_t b, int64_t c, int64_t d)
{
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r) || __builtin_mul_overflow(r, c, &r) || __builtin_mul_overflow(r, d, &r) ||
        r > AIBOX_MAX_ELEMS)
        return -1;
    return r;
}
static int in_range(int v, int lo, int hi) { return v >= lo && v <= hi; }

static size_t cnt(int n, int c, int h, int w) { return (size_t)n * c * h * w; }
static size_t out_count(const aibox_run *r) { return cnt(r->n, r->c, r->h, r->w); }

static void fill_uniform(float *p, size_t n, float limit, aibox_rng *rng)
{
    for (size_t i = 0; i < n; i++) p[i] = (2.0f * aibox_rng_uniform(rng) - 1.0f) * limit;
}

/* ------------------------------------------------------------ parallel helpers */
typedef void (*part_fn)(aibox_run *r, int part, int parts, int thread);
typedef struct {
    aibox_run *r;
    part_fn fn;
    int parts;
} par_job;

static void par_task(void *arg, int task, int thread)
{
    par_job *j = arg;
    j->fn(j->r, task, j->parts, thread);
}

/* Pieces a layer's work is split into: one per pool thread. */
static int run_parts(const aibox_run *r) { return r->threads > 0 ? r->threads : 1; }

/* Runs fn for parts 0..threads-1 on the context's pool. */
static void parallel(aibox_run *r, part_fn fn)
{
    par_job j = {r, fn, run_parts(r)};
    aibox_pool_run(r->pool, j.parts, par_task, &j);
}

/* [a, b) of part out of total elements, boundaries on 16 floats (cache lines). */
static void range16(size_t total, int part, int parts, size_t *a, size_t *b)
{
    size_t units = (total + 15) / 16;
    *a = AIBOX_MIN(units * part / parts * 16, total);
    *b = AIBOX_MIN(units * (part + 1) / parts * 16, total);
}

/* Per-plane kernels see (sample range, channel range): whole samples when
 * the batch covers the threads, else channel slices of each sample. */
typedef void (*plane_fn)(aibox_run *r, int s0, int ns, int c0, int nc);
static void plane_part(aibox_run *r, int part, int parts, int channels, plane_fn k)
{
    if (r->n >= parts) {
        int a, b;
        aibox_share(r->n, 1, part, parts, &a, &b);
        if (b > a) k(r, a, b - a, 0, channels);
    } else {
        int a, b;
        aibox_share(channels, 1, part, parts, &a, &b);
        if (b > a)
            for (int s = 0; s < r->n; s++) k(r, s, 1, a, b - a);
    }
}

/* ------------------------------------------------------------ conv2d */
void aibox_conv_node_desc(const aibox_node *nd, int ic, int ih, int iw, aibox_conv_desc *d)
{
    const aibox_conv_settings *s = &nd->settings.conv;
    d->in_c = ic, d->in_h = ih, d->in_w = iw;
    d->out_c = s->out_channels, d->kh = s->kernel_h, d->kw = s->kernel_w, d->sh = s->stride_h, d->sw = s->stride_w;
    d->pt = s->pad_top, d->pl = s->pad_left, d->groups = s->groups;
    d->out_h = aibox_conv_out_size(ih, s->kernel_h, s->stride_h, s->pad_top, s->pad_bottom);
    d->out_w = aibox_conv_out_size(iw, s->kernel_w, s->stride_w, s->pad_left, s->pad_right);
}

static int conv_shape(const aibox_node *nd, const int *ic, const int *ih, const int *iw, int out[3], size_t np[2],
                      size_t ns[2], char *why, size_t why_len)
{
    const aibox_conv_settings *s = &nd->settings.conv;
    if (!in_range(s->out_channels, 1, AIBOX_MAX_CHANNELS) || !in_range(s->groups, 1, AIBOX_MAX_CHANNELS))
        return WHY("conv2d: out_channels and groups must be 1 to %d", AIBOX_MAX_CHANNELS);
    if (!in_range(s->kernel_h, 1, AIBOX_MAX_SIDE) || !in_range(s->kernel_w, 1, AIBOX_MAX_SIDE) ||
        !in_range(s->stride_h, 1, AIBOX_MAX_SIDE) || !in_range(s->stride_w, 1, AIBOX_MAX_SIDE))
        return WHY("conv2d: kernel and stride must be 1 to %d", AIBOX_MAX_SIDE);
    if (!in_range(s->pad_top, 0, AIBOX_MAX_SIDE) || !in_range(s->pad_left, 0, AIBOX_MAX_SIDE) ||
        !in_range(s->pad_bottom, 0, AIBOX_MAX_SIDE) || !in_range(s->pad_right, 0, AIBOX_MAX_SIDE))
        return WHY("conv2d: padding must be 0 to %d", AIBOX_MAX_SIDE);
    if (!in_range(s->bias, 0, 1)) return WHY("conv2d: bias must be 0 or 1, not %d", s->bias);
    if (ic[0] % s->groups || s->out_channels % s->groups)
        return WHY("conv2d: groups %d must divide in channels %d and out channels %d", s->groups, ic[0],
                   s->out_channels);
    aibox_conv_desc d;
    aibox_conv_node_desc(nd, ic[0], ih[0], iw[0], &d);
    if (d.out_h < 1 || d.out_w < 1)
        return WHY("conv2d: %dx%d kernel does not fit a %dx%d input (padded)", s->kernel_h, s->kernel_w, ih[0], iw[0]);
    int64_t weights = product(s->out_channels, ic[0] / s->groups, s->kernel_h, s->kernel_w);
    if (weights < 0)
        return WHY("conv2d: %d x %d x %d x %d weights exceed %lld", s->out_channels, ic[0] / s->groups, s->kernel_h,
                   s->kernel_w, AIBOX_MAX_ELEMS);
    out[0] = s->out_channels, out[1] = d.out_h, out[2] = d.out_w;
    np[0] = (size_t)weights;
    np[1] = s->bias ? (size_t)s->out_channels : 0;
    ns[0] = ns[1] = 0;
    return 1;
}

/* He-uniform (fan-in) initialisation: suits the ReLU networks built here. */
static void conv_init(const aibox_node *nd, const int *ic, const int *ih, const int *iw, float *p0, float *p1,
                      float *s0, float *s1, aibox_rng *rng)
{
    const aibox_conv_settings *s = &nd->settings.conv;
    int fan_in = ic[0] / s->groups * s->kernel_h * s->kernel_w;
    fill_uniform(p0, (size_t)s->out_channels * fan_in, sqrtf(6.0f / (float)fan_in), rng);
    if (p1) memset(p1, 0, sizeof(float) * s->out_channels);
}

static size_t conv_ws(const aibox_run *r)
{
    aibox_conv_desc d;
    aibox_conv_node_desc(r->nd, r->in_c[0], r->in_h[0], r->in_w[0], &d);
    size_t n = aibox_conv_ws_floats(&d);
    if (aibox_convsmall_eligible(&d)) n = AIBOX_MAX(n, aibox_convsmall_ws_floats(&d));
    /* an inference context may run it as Winograd (once frozen) */
    if (!r->training && aibox_wino_eligible(&d)) n = AIBOX_MAX(n, aibox_wino_ws_floats(&d));
    aibox_conv_desc t; /* training: the input gradient as a direct convolution (after the rest) */
    if (r->training && aibox_convsmall_dx_desc(&d, &t))
        n = AIBOX_MAX(n, (size_t)d.in_c * d.out_c * d.kh * d.kw + aibox_convsmall_ws_floats(&t));
    return n;
}

/* Weight and bias gradients of one task when the batch is split. */
static size_t conv_partial(const aibox_run *r) { return r->nd->n_param[0] + r->nd->n_param[1]; }

static void conv_fwd_part(aibox_run *r, int part, int parts, int thread)
{
    aibox_conv_desc d;
    aibox_conv_node_desc(r->nd, r->in_c[0], r->in_h[0], r->in_w[0], &d);
    float *ws = r->ws + (size_t)thread * r->ws_stride;
    size_t in_sz = (size_t)d.in_c * d.in_h * d.in_w, out_sz = (size_t)d.out_c * d.out_h * d.out_w;
    const float *b = r->fuse_scale ? r->fuse_shift : r->p[1];
    aibox_convsmall_kernel ck;
    if (aibox_dwconv_eligible(&d)) { /* 3x3 depthwise: the vector kernels of the context's CPU, by channels */
        aibox_dwconv_kernel k = aibox_dwconv_pick(r->features);
        aibox_dwconv_fwd_part(&k, &d, r->n, r->x[0], r->p[0], r->fuse_scale, b, r->y, r->fuse_relu, part, parts);
    } else if (aibox_convsmall_eligible(&d) && aibox_convsmall_pick(r->features, &ck)) {
        /* few input channels (conv1): direct, whole samples per task or rows of each */
        int a = 0, e = r->n, sp = part, sps = parts;
        if (r->n >= parts) aibox_share(r->n, 1, part, parts, &a, &e), sp = 0, sps = 1;
        if (e > a)
            aibox_convsmall_fwd_part(&ck, &d, e - a, r->x[0] + a * in_sz, r->p[0], r->fuse_scale, b,
                                     r->y + a * out_sz, ws, r->fuse_relu, sp, sps);
    } else if (r->n >= parts) { /* whole samples per task */
        int a, e;
        aibox_share(r->n, 1, part, parts, &a, &e);
        if (e > a)
            aibox_conv_fwd_part(&d, e - a, r->x[0] + a * in_sz, r->p[0], r->fuse_scale, b, r->y + a * out_sz, ws,
                                r->fuse_relu, 0, 1);
    } else { /* pieces of each sample */
        aibox_conv_fwd_part(&d, r->n, r->x[0], r->p[0], r->fuse_scale, b, r->y, ws, r->fuse_relu, part, parts);
    }
}

/* Winograd, in frozen inference contexts: blocks of tile rows as large as
 * the context's shared scratch holds, each through the three phases over the
 * pool (one barrier each). */
typedef struct {
    aibox_run *r;
    aibox_conv_desc d;
    int parts, g0, g1, phase;
} wino_job;

static void wino_task(void *arg, int part, int thread)
{
    wino_job *j = arg;
    aibox_run *r = j->r;
    if (j->phase == 0)
        aibox_wino_input(&j->d, j->g0, j->g1, r->x[0], r->prep_ws, r->ws + (size_t)thread * r->ws_stride, part,
                         j->parts);
    else if (j->phase == 1)
        aibox_wino_gemm(&j->d, j->g1 - j->g0, r->prepared, r->prep_ws, part, j->parts);
    else
        aibox_wino_output(&j->d, j->g0, j->g1, r->prep_ws, r->fuse_scale, r->fuse_scale ? r->fuse_shift : r->p[1],
                          r->y, r->fuse_relu, part, j->parts);
}

static void conv_fwd_wino(aibox_run *r)
{
    wino_job j = {.r = r, .parts = run_parts(r)};
    aibox_conv_node_desc(r->nd, r->in_c[0], r->in_h[0], r->in_w[0], &j.d);
    int rows = aibox_wino_block_rows(&j.d, r->n, r->prep_ws_floats), total = r->n * aibox_wino_tile_rows(&j.d);
    for (j.g0 = 0; j.g0 < total; j.g0 = j.g1) {
        j.g1 = AIBOX_MIN(j.g0 + rows, total);
        for (j.phase = 0; j.phase < 3; j.phase++) aibox_pool_run(r->pool, j.parts, wino_task, &j);
    }
}

static void conv_fwd(aibox_run *r)
{
    if (r->prepared) conv_fwd_wino(r);
    else parallel(r, conv_fwd_part);
}

/* A frozen inference context runs an eligible convolution as Winograd: its
 * transformed weights once, the tile scratch shared by the threads. */
static size_t conv_prepared_floats(const aibox_run *r, size_t *ws_floats)
{
    aibox_conv_desc d;
    aibox_conv_node_desc(r->nd, r->in_c[0], r->in_h[0], r->in_w[0], &d);
    *ws_floats = 0;
    if (r->training || !aibox_wino_eligible(&d)) return 0;
    *ws_floats = aibox_wino_scratch_floats(&d);
    return aibox_wino_u_floats(&d);
}
static void conv_prepare(const aibox_run *r, float *prepared)
{
    aibox_conv_desc d;
    aibox_conv_node_desc(r->nd, r->in_c[0], r->in_h[0], r->in_w[0], &d);
    aibox_wino_weights(&d, r->p[0], prepared);
}

static void conv_bwd_part(aibox_run *r, int part, int parts, int thread)
{
    aibox_conv_desc d;
    aibox_conv_node_desc(r->nd, r->in_c[0], r->in_h[0], r->in_w[0], &d);
    float *ws = r->ws + (size_t)thread * r->ws_stride;
    size_t in_sz = (size_t)d.in_c * d.in_h * d.in_w, out_sz = (size_t)d.out_c * d.out_h * d.out_w;
    int a, b;
    aibox_share(r->n, 1, part, parts, &a, &b);
    if (b <= a) return;
    /* part 0 accumulates into the real gradients, the others into their own
     * partial block, summed afterwards in part order (deterministic) */
    float *dw = r->dp[0], *db = r->dp[1];
    if (part > 0 && dw) {
        dw = r->partial + (size_t)part * r->partial_stride;
        db = r->dp[1] ? dw + r->nd->n_param[0] : NULL;
    }
    /* a stored input gradient of a stride-1 convolution: the direct kernel
     * on the (masked) dy afterwards, rather than a K = out_c GEMM into
     * columns scattered back by col2im (AlexNet-256's conv2 backward, 16
     * images on 2 threads, loaded machine: 336 -> 195 ms) */
    float *dx = r->dx[0] ? r->dx[0] + a * in_sz : NULL, *dy = (float *)(uintptr_t)(r->dy + a * out_sz);
    aibox_conv_desc t;
    aibox_convsmall_kernel ck;
    int direct = dx && r->dx_assign[0] && aibox_convsmall_dx_desc(&d, &t) && aibox_convsmall_pick(r->features, &ck);
    /* a fused ReLU's backward (dy *= y > 0) runs inside, chunk by chunk: dy
     * is this node's own gradient buffer, shared with the ReLU it absorbed */
    aibox_conv_bwd_ex(&d, b - a, r->x[0] + a * in_sz, r->p[0], r->fuse_relu ? r->y + a * out_sz : NULL, dy,
                      direct ? NULL : dx, r->dx_assign[0], dw, db, ws);
    if (direct) {
        float *wt = ws;
        aibox_convsmall_dx_weights(&d, r->p[0], wt);
        aibox_convsmall_fwd_part(&ck, &t, b - a, dy, wt, NULL, NULL, dx, wt + (size_t)d.in_c * d.out_c * d.kh * d.kw,
                                 0, 0, 1);
    }
}

static void conv_bwd(aibox_run *r)
{
    int parts = r->threads;
    if (r->n < parts) parts = 1; /* one sample: too little to split by batch */
    size_t np = conv_partial(r);
    for (int t = 1; t < parts; t++) memset(r->partial + (size_t)t * r->partial_stride, 0, np * sizeof(float));
    par_job j = {r, conv_bwd_part, parts};
    aibox_pool_run(r->pool, parts, par_task, &j);
    for (int t = 1; t < parts && r->dp[0]; t++) {
        const float *pw = r->partial + (size_t)t * r->partial_stride;
        for (size_t i = 0; i < r->nd->n_param[0]; i++) r->dp[0][i] += pw[i];
        if (r->dp[1])
            for (size_t i = 0; i < r->nd->n_param[1]; i++) r->dp[1][i] += pw[r->nd->n_param[0] + i];
    }
}

/* ------------------------------------------------------------ dense */
static int dense_shape(const aibox_node *nd, const int *ic, const int *ih, const int *iw, int out[3], size_t np[2],
                       size_t ns[2], char *why, size_t why_len)
{
    const aibox_dense_settings *s = &nd->settings.dense;
    if (!in_range(s->units, 1, AIBOX_MAX_CHANNELS)) return WHY("dense: units must be 1 to %d", AIBOX_MAX_CHANNELS);
    if (!in_range(s->bias, 0, 1)) return WHY("dense: bias must be 0 or 1, not %d", s->bias);
    int64_t in = product(ic[0], ih[0], iw[0], 1);
    if (in < 0 || in > (1 << 30)) return WHY("dense: %dx%dx%d input features is too many", ic[0], ih[0], iw[0]);
    int64_t weights = product(s->units, in, 1, 1);
    if (weights < 0)
        return WHY("dense: %d x %lld weights exceed %lld", s->units, (long long)in, AIBOX_MAX_ELEMS);
    out[0] = s->units, out[1] = out[2] = 1;
    np[0] = (size_t)weights;
    np[1] = s->bias ? (size_t)s->units : 0;
    ns[0] = ns[1] = 0;
    return 1;
}

static void dense_init(const aibox_node *nd, const int *ic, const int *ih, const int *iw, float *p0, float *p1,
                       float *s0, float *s1, aibox_rng *rng)
{
    int in = ic[0] * ih[0] * iw[0], units = nd->settings.dense.units;
    fill_uniform(p0, (size_t)units * in, sqrtf(6.0f / (float)in), rng);
    if (p1) memset(p1, 0, sizeof(float) * units);
}

static void dense_fwd_part(aibox_run *r, int part, int parts, int thread)
{
    int in = r->in_c[0] * r->in_h[0] * r->in_w[0];
    aibox_dense_fwd_part(r->n, in, r->c, r->x[0], r->p[0], r->p[1], r->y, part, parts);
}
static void dense_bwd_part(aibox_run *r, int part, int parts, int thread)
{
    int in = r->in_c[0] * r->in_h[0] * r->in_w[0];
    aibox_dense_bwd_part(r->n, in, r->c, r->x[0], r->p[0], r->dy, r->dx[0], r->dp[0], r->dp[1], part, parts);
}
static void dense_fwd(aibox_run *r) { parallel(r, dense_fwd_part); }
static void dense_bwd(aibox_run *r) { parallel(r, dense_bwd_part); }

/* ------------------------------------------------------------ pooling */
static int pool_out(int in, int k, int s, int p0, int p1, int ceil_mode)
{
    long span = (long)in + p0 + p1 - k;
    if (span < 0) return 0;
    long o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    /* PyTorch: the last window must start inside the input or left padding. */
    if (ceil_mode && (o - 1) * s >= (long)in + p0) o--;
    return (int)o;
}

static void pool_desc(const aibox_node *nd, int ic, int ih, int iw, aibox_pool_desc *d)
{
    const aibox_pool_settings *s = &nd->settings.pool;
    d->c = ic, d->in_h = ih, d->in_w = iw;
    d->kh = s->kernel_h, d->kw = s->kernel_w, d->sh = s->stride_h, d->sw = s->stride_w;
    d->pt = s->pad_top, d->pl = s->pad_left;
    d->out_h = pool_out(ih, s->kernel_h, s->stride_h, s->pad_top, s->pad_bottom, s->ceil_mode);
    d->out_w = pool_out(iw, s->kernel_w, s->stride_w, s->pad_left, s->pad_right, s->ceil_mode);
    d->count_include_pad = s->count_include_pad;
}
void aibox_pool_node_desc(const aibox_node *nd, int ic, int ih, int iw, aibox_pool_desc *d)
{
    pool_desc(nd, ic, ih, iw, d);
}

static int pool_shape(const aibox_node *nd, const int *ic, const int *ih, const int *iw, int out[3], size_t np[2],
                      size_t ns[2], char *why, size_t why_len)
{
    const aibox_pool_settings *s = &nd->settings.pool;
    if (!in_range(s->kernel_h, 1, AIBOX_MAX_SIDE) || !in_range(s->kernel_w, 1, AIBOX_MAX_SIDE) ||
        !in_range(s->stride_h, 1, AIBOX_MAX_SIDE) || !in_range(s->stride_w, 1, AIBOX_MAX_SIDE))
        return WHY("pool: kernel and stride must be 1 to %d", AIBOX_MAX_SIDE);
    if (s->pad_top < 0 || s->pad_left < 0 || s->pad_bottom < 0 || s->pad_right < 0) return WHY("pool: negative padding");
    if (s->pad_top >= s->kernel_h || s->pad_left >= s->kernel_w || s->pad_bottom >= s->kernel_h ||
        s->pad_right >= s->kernel_w)
        return WHY("pool: padding must be smaller than the kernel");
    if (!in_range(s->ceil_mode, 0, 1) || !in_range(s->count_include_pad, 0, 1))
        return WHY("pool: ceil_mode and count_include_pad must be 0 or 1");
    aibox_pool_desc d;
    pool_desc(nd, ic[0], ih[0], iw[0], &d);
    if (d.out_h < 1 || d.out_w < 1)
        return WHY("pool: %dx%d window does not fit a %dx%d input", s->kernel_h, s->kernel_w, ih[0], iw[0]);
    out[0] = ic[0], out[1] = d.out_h, out[2] = d.out_w;
    np[0] = np[1] = ns[0] = ns[1] = 0;
    return 1;
}

static size_t maxpool_saved(const aibox_run *r) { return out_count(r) * sizeof(int32_t); }

/* Offsets of plane (s0, c0) in the input and the output. */
static size_t in_plane(const aibox_run *r, int s0, int c0)
{
    return ((size_t)s0 * r->in_c[0] + c0) * r->in_h[0] * r->in_w[0];
}
static size_t out_plane(const aibox_run *r, int s0, int c0) { return ((size_t)s0 * r->c + c0) * r->h * r->w; }

static void maxpool_fwd_k(aibox_run *r, int s0, int ns, int c0, int nc)
{
    aibox_pool_desc d;
    pool_desc(r->nd, nc, r->in_h[0], r->in_w[0], &d);
    size_t o = out_plane(r, s0, c0);
    aibox_maxpool_fwd(&d, ns, r->x[0] + in_plane(r, s0, c0), r->y + o, r->training ? (int32_t *)r->saved + o : NULL);
}
static void maxpool_bwd_k(aibox_run *r, int s0, int ns, int c0, int nc)
{
    aibox_pool_desc d;
    pool_desc(r->nd, nc, r->in_h[0], r->in_w[0], &d);
    size_t o = out_plane(r, s0, c0);
    aibox_maxpool_bwd_ex(&d, ns, r->dy + o, (const int32_t *)r->saved + o, r->dx[0] + in_plane(r, s0, c0),
                         r->dx_assign[0]);
}
static void avgpool_fwd_k(aibox_run *r, int s0, int ns, int c0, int nc)
{
    aibox_pool_desc d;
    pool_desc(r->nd, nc, r->in_h[0], r->in_w[0], &d);
    aibox_avgpool_fwd(&d, ns, r->x[0] + in_plane(r, s0, c0), r->y + out_plane(r, s0, c0));
}
static void avgpool_bwd_k(aibox_run *r, int s0, int ns, int c0, int nc)
{
    aibox_pool_desc d;
    pool_desc(r->nd, nc, r->in_h[0], r->in_w[0], &d);
    aibox_avgpool_bwd(&d, ns, r->dy + out_plane(r, s0, c0), r->dx[0] + in_plane(r, s0, c0));
}
#define PLANE_LAYER(name)                                                                    \
    static void name##_part(aibox_run *r, int part, int parts, int thread)                   \
    {                                                                                        \
        plane_part(r, part, parts, r->c, name##_k);                                          \
    }                                                                                        \
    static void name(aibox_run *r) { parallel(r, name##_part); }
PLANE_LAYER(maxpool_fwd)
PLANE_LAYER(maxpool_bwd)
PLANE_LAYER(avgpool_fwd)
PLANE_LAYER(avgpool_bwd)

static int gap_shape(const aibox_node *nd, const int *ic, const int *ih, const int *iw, int out[3], size_t np[2],
                     size_t ns[2], char *why, size_t why_len)
{
    out[0] = ic[0], out[1] = out[2] = 1;
    np[0] = np[1] = ns[0] = ns[1] = 0;
    return 1;
}
static void gap_fwd(aibox_run *r) { aibox_gap_fwd(r->n, r->in_c[0], r->in_h[0] * r->in_w[0], r->x[0], r->y); }
static void gap_bwd(aibox_run *r) { aibox_gap_bwd(r->n, r->in_c[0], r->in_h[0] * r->in_w[0], r->dy, r->dx[0]); }

/* ------------------------------------------------------------ element-wise */
static int same_shape(const aibox_node *nd, const int *ic, const int *ih, const int *iw, int out[3], size_t np[2],
                      size_t ns[2], char *why, size_t why_len)
{
    out[0] = ic[0], out[1] = ih[0], out[2] = iw[0];
    np[0] = np[1] = ns[0] = ns[1] = 0;
    return 1;
}

/* The float settings' shape rules: the builders' checks, applied to files too. */
static int leaky_shape(const aibox_node *nd, const int *ic, const int *ih, const int *iw, int out[3], size_t np[2],
                       size_t ns[2], char *why, size_t why_len)
{
    if (!isfinite(nd->settings.leaky_relu.alpha)) return WHY("leaky_relu: alpha must be finite");
    return same_shape(nd, ic, ih, iw, out, np, ns, why, why_len);
}
static int clamp_shape(const aibox_node *nd, const int *ic, const int *ih, const int *iw, int out[3], size_t np[2],
                       size_t ns[2], char *why, size_t why_len)
{
    const aibox_clamp_settings *s = &nd->settings.clamp;
    if (!(s->lo <= s->hi)) return WHY("clamp: lo %g > hi %g", s->lo, s->hi);
    return same_shape(nd, ic, ih, iw, out, np, ns, why, why_len);
}
static int dropout_shape(const aibox_node *nd, const int *ic, const int *ih, const int *iw, int out[3], size_t np[2],
                         size_t ns[2], char *why, size_t why_len)
{
    float rate = nd->settings.dropout.rate;
    if (!(rate >= 0.0f && rate < 1.0f)) return WHY("dropout: rate %g not in [0, 1)", rate);
    return same_shape(nd, ic, ih, iw, out, np, ns, why, why_len);
}
static int quant_shape(const aibox_node *nd, const int *ic, const int *ih, const int *iw, int out[3], size_t np[2],
                       size_t ns[2], char *why, size_t why_len)
{
    const aibox_quantize_settings *s = &nd->settings.quantize;
    if (!(s->scale > 0.0f && isfinite(s->scale) && isfinite(s->zero_point) && s->qmin <= s->qmax))
        return WHY("quantize: scale %g, zero point %g, range [%g, %g]", s->scale, s->zero_point, s->qmin, s->qmax);
    return same_shape(nd, ic, ih, iw, out, np, ns, why, why_len);
}

/* Element-wise layers split the element range over the threads. */
#define ELEMWISE(name, body)                                                       \
    static void name##_part(aibox_run *r, int part, int parts, int thread)         \
    {                                                                              \
        size_t a, b;                                                               \
        range16(out_count(r), part, parts, &a, &b);                                \
        if (b > a) body;                                                           \
    }                                                                              \
    static void name(aibox_run *r) { parallel(r, name##_part); }
ELEMWISE(relu_fwd, aibox_relu_fwd(b - a, r->x[0] + a, r->y + a))
ELEMWISE(relu_bwd, (r->dx_assign[0] ? aibox_relu_bwd_set : aibox_relu_bwd)(b - a, r->x[0] + a, r->dy + a, r->dx[0] + a))
ELEMWISE(relu6_fwd, aibox_clamp_fwd(b - a, 0.0f, 6.0f, r->x[0] + a, r->y + a))
ELEMWISE(relu6_bwd, aibox_clamp_bwd(b - a, 0.0f, 6.0f, r->x[0] + a, r->dy + a, r->dx[0] + a))
#define CLAMP_LO_HI r->nd->settings.clamp.lo, r->nd->settings.clamp.hi
ELEMWISE(clamp_fwd, aibox_clamp_fwd(b - a, CLAMP_LO_HI, r->x[0] + a, r->y + a))
ELEMWISE(clamp_bwd, aibox_clamp_bwd(b - a, CLAMP_LO_HI, r->x[0] + a, r->dy + a, r->dx[0] + a))
static void quant_fwd_range(const aibox_node *nd, size_t n, const float *x, float *y)
{
    const aibox_quantize_settings *s = &nd->settings.quantize;
    float sc = s->scale, zp = s->zero_point, lo = s->qmin, hi = s->qmax;
    for (size_t i = 0; i < n; i++) {
        float q = nearbyintf(x[i] / sc) + zp;
        q = q < lo ? lo : (q > hi ? hi : q);
        y[i] = sc * (q - zp);
    }
}
static void quant_bwd_range(const aibox_node *nd, size_t n, const float *x, const float *dy, float *dx)
{
    const aibox_quantize_settings *s = &nd->settings.quantize;
    float lo = s->scale * (s->qmin - s->zero_point), hi = s->scale * (s->qmax - s->zero_point);
    for (size_t i = 0; i < n; i++) dx[i] += (x[i] >= lo && x[i] <= hi) ? dy[i] : 0.0f;
}
ELEMWISE(quant_fwd, quant_fwd_range(r->nd, b - a, r->x[0] + a, r->y + a))
ELEMWISE(quant_bwd, quant_bwd_range(r->nd, b - a, r->x[0] + a, r->dy + a, r->dx[0] + a))
ELEMWISE(leaky_fwd, aibox_leaky_fwd(b - a, r->nd->settings.leaky_relu.alpha, r->x[0] + a, r->y + a))
ELEMWISE(leaky_bwd, aibox_leaky_bwd(b - a, r->nd->settings.leaky_relu.alpha, r->x[0] + a, r->dy + a, r->dx[0] + a))
ELEMWISE(sigmoid_fwd, aibox_sigmoid_fwd(b - a, r->x[0] + a, r->y + a))
ELEMWISE(sigmoid_bwd, aibox_sigmoid_bwd(b - a, r->y + a, r->dy + a, r->dx[0] + a))
ELEMWISE(copy_fwd, memcpy(r->y + a, r->x[0] + a, (b - a) * sizeof(float)))
static void copy_bwd_range(aibox_run *r, size_t a, size_t b)
{
    if (r->dx_assign[0]) memcpy(r->dx[0] + a, r->dy + a, (b - a) * sizeof(float));
    else
        for (size_t i = a; i < b; i++) r->dx[0][i] += r->dy[i];
}
ELEMWISE(copy_bwd, copy_bwd_range(r, a, b))
ELEMWISE(add_fwd, aibox_add_fwd(b - a, r->x[0] + a, r->x[1] + a, r->y + a))
ELEMWISE(add_bwd, for (int k = 0; k < 2; k++) if (r->dx[k]) for (size_t i = a; i < b; i++) r->dx[k][i] += r->dy[i])

static size_t dropout_saved(const aibox_run *r) { return out_count(r) * sizeof(float); }
/* Dropout masks are drawn in fixed blocks, each from its own generator seeded
 * by (one draw of the context's generator, block index): parallel, yet the
 * same masks for any thread count. */
#define DROPOUT_BLOCK 16384
static void dropout_fwd_part(aibox_run *r, int part, int parts, int thread)
{
    size_t count = out_count(r), blocks = (count + DROPOUT_BLOCK - 1) / DROPOUT_BLOCK, b0, b1;
    b0 = blocks * part / parts, b1 = blocks * (part + 1) / parts;
    for (size_t b = b0; b < b1; b++) {
        size_t off = b * DROPOUT_BLOCK, len = AIBOX_MIN((size_t)DROPOUT_BLOCK, count - off);
        aibox_rng rng;
        aibox_rng_seed(&rng, aibox_seed_mix(r->draw, b, 0x626c6f636bULL /* "block" */));
        aibox_dropout_fwd(len, r->nd->settings.dropout.rate, &rng, r->x[0] + off, r->y + off, (float *)r->saved + off);
    }
}
static void dropout_fwd(aibox_run *r)
{
    if (r->training && !r->eval && r->nd->settings.dropout.rate > 0.0f) {
        r->draw = aibox_rng_u64(r->rng);
        parallel(r, dropout_fwd_part);
    } else {
        memcpy(r->y, r->x[0], out_count(r) * sizeof(float));
    }
}
static void dropout_bwd_part(aibox_run *r, int part, int parts, int thread)
{
    size_t a, b;
    range16(out_count(r), part, parts, &a, &b);
    if (b <= a) return;
    if (!r->eval && r->nd->settings.dropout.rate > 0.0f)
        (r->dx_assign[0] ? aibox_dropout_bwd_set : aibox_dropout_bwd)(b - a, (const float *)r->saved + a, r->dy + a,
                                                                     r->dx[0] + a);
    else if (r->dx_assign[0])
        memcpy(r->dx[0] + a, r->dy + a, (b - a) * sizeof(float));
    else
        for (size_t i = a; i < b; i++) r->dx[0][i] += r->dy[i];
}
static void dropout_bwd(aibox_run *r) { parallel(r, dropout_bwd_part); }

static void softmax_fwd(aibox_run *r) { aibox_softmax_fwd(r->n, r->c, r->h * r->w, r->x[0], r->y); }
static void softmax_bwd(aibox_run *r) { aibox_softmax_bwd(r->n, r->c, r->h * r->w, r->y, r->dy, r->dx[0]); }

/* ------------------------------------------------------------ batch norm */
static int bn_shape(const aibox_node *nd, const int *ic, const int *ih, const int *iw, int out[3], size_t np[2],
                    size_t ns[2], char *why, size_t why_len)
{
    const aibox_batchnorm_settings *s = &nd->settings.batchnorm;
    if (!(s->eps > 0.0f && isfinite(s->eps))) return WHY("batchnorm: epsilon must be finite and > 0");
    if (!(s->momentum >= 0.0f && s->momentum <= 1.0f)) return WHY("batchnorm: momentum must be in [0, 1]");
    out[0] = ic[0], out[1] = ih[0], out[2] = iw[0];
    np[0] = np[1] = ns[0] = ns[1] = (size_t)ic[0];
    return 1;
}
static void bn_init(const aibox_node *nd, const int *ic, const int *ih, const int *iw, float *p0, float *p1, float *s0,
                    float *s1, aibox_rng *rng)
{
    for (int i = 0; i < ic[0]; i++) p0[i] = 1.0f, p1[i] = 0.0f, s0[i] = 0.0f, s1[i] = 1.0f;
}
static size_t bn_saved(const aibox_run *r) { return 2 * (size_t)r->c * sizeof(float); }
static void bn_fwd(aibox_run *r)
{
    int hw = r->h * r->w;
    if (r->training && !r->eval) {
        float *mean = (float *)r->saved, *invstd = mean + r->c;
        aibox_bn_fwd_train(r->n, r->c, hw, r->nd->settings.batchnorm.eps, r->nd->settings.batchnorm.momentum, r->x[0], r->p[0], r->p[1], r->y, mean,
                           invstd, r->st[0], r->st[1]);
    } else {
        aibox_bn_fwd_infer(r->n, r->c, hw, r->nd->settings.batchnorm.eps, r->x[0], r->p[0], r->p[1], r->st[0], r->st[1], r->y);
    }
}
/* Inference: the running statistics make batch norm a per-channel affine
 * map, folded into the convolution before it (AIBOX_FUSE_AFFINE). */
static void bn_fold(const aibox_node *nd, const float *const p[2], const float *const st[2], const float *bias,
                    int channels, float *scale, float *shift)
{
    float eps = nd->settings.batchnorm.eps;
    for (int k = 0; k < channels; k++) {
        scale[k] = p[0][k] / sqrtf(st[1][k] + eps);
        shift[k] = p[1][k] - st[0][k] * scale[k] + (bias ? bias[k] * scale[k] : 0.0f);
    }
}
/* A probe's backward: with the running statistics batch norm is the affine
 * map y = gamma (x - mean) / sqrt(var + eps) + beta, per channel. */
static void bn_bwd_eval(aibox_run *r)
{
    size_t hw = (size_t)r->h * r->w;
    float eps = r->nd->settings.batchnorm.eps;
    for (int ch = 0; ch < r->c; ch++) {
        float invstd = 1.0f / sqrtf(r->st[1][ch] + eps), a = r->p[0][ch] * invstd, mean = r->st[0][ch];
        double sg = 0, sgxhat = 0;
        for (int k = 0; k < r->n; k++) {
            size_t off = ((size_t)k * r->c + ch) * hw;
            const float *g = r->dy + off, *x = r->x[0] + off;
            if (r->dx[0])
                for (size_t i = 0; i < hw; i++) r->dx[0][off + i] += a * g[i];
            if (r->dp[0])
                for (size_t i = 0; i < hw; i++) sg += g[i], sgxhat += (double)g[i] * (x[i] - mean) * invstd;
        }
        if (r->dp[0]) r->dp[0][ch] += (float)sgxhat;
        if (r->dp[1]) r->dp[1][ch] += (float)sg;
    }
}
static void bn_bwd(aibox_run *r)
{
    if (r->eval) {
        bn_bwd_eval(r);
        return;
    }
    const float *mean = (const float *)r->saved, *invstd = mean + r->c;
    aibox_bn_bwd(r->n, r->c, r->h * r->w, r->x[0], r->p[0], mean, invstd, r->dy, r->dx[0], r->dp[0], r->dp[1]);
}

/* ------------------------------------------------------------ shape ops */
static int zeropad_shape(const aibox_node *nd, const int *ic, const int *ih, const int *iw, int out[3],
                         size_t np[2], size_t ns[2], char *why, size_t why_len)
{
    const aibox_zeropad_settings *s = &nd->settings.zeropad;
    if (!in_range(s->top, 0, AIBOX_MAX_SIDE) || !in_range(s->left, 0, AIBOX_MAX_SIDE) ||
        !in_range(s->bottom, 0, AIBOX_MAX_SIDE) || !in_range(s->right, 0, AIBOX_MAX_SIDE))
        return WHY("zeropad: padding must be 0 to %d", AIBOX_MAX_SIDE);
    out[0] = ic[0], out[1] = ih[0] + s->top + s->bottom, out[2] = iw[0] + s->left + s->right;
    np[0] = np[1] = ns[0] = ns[1] = 0;
    return 1;
}
static void zeropad_fwd(aibox_run *r)
{
    const aibox_zeropad_settings *s = &r->nd->settings.zeropad;
    aibox_zeropad_fwd(r->n, r->in_c[0], r->in_h[0], r->in_w[0], s->top, s->left, s->bottom, s->right, r->x[0], r->y);
}
static void zeropad_bwd(aibox_run *r)
{
    const aibox_zeropad_settings *s = &r->nd->settings.zeropad;
    aibox_zeropad_bwd(r->n, r->in_c[0], r->in_h[0], r->in_w[0], s->top, s->left, s->bottom, s->right, r->dy, r->dx[0]);
}

static int flatten_shape(const aibox_node *nd, const int *ic, const int *ih, const int *iw, int out[3], size_t np[2],
                         size_t ns[2], char *why, size_t why_len)
{
    int64_t n = product(ic[0], ih[0], iw[0], 1);
    if (n < 0) return WHY("flatten: %dx%dx%d values exceed %lld", ic[0], ih[0], iw[0], AIBOX_MAX_ELEMS);
    out[0] = (int)n, out[1] = out[2] = 1;
    np[0] = np[1] = ns[0] = ns[1] = 0;
    return 1;
}
static int concat_shape(const aibox_node *nd, const int *ic, const int *ih, const int *iw, int out[3], size_t np[2],
                        size_t ns[2], char *why, size_t why_len)
{
    long c = 0;
    for (int i = 0; i < nd->n_in; i++) {
        if (ih[i] != ih[0] || iw[i] != iw[0])
            return WHY("concat: input %d is %dx%d, input 0 is %dx%d", i, ih[i], iw[i], ih[0], iw[0]);
        c += ic[i];
    }
    if (c > (1 << 24)) return WHY("concat: too many channels");
    out[0] = (int)c, out[1] = ih[0], out[2] = iw[0];
    np[0] = np[1] = ns[0] = ns[1] = 0;
    return 1;
}
static void concat_fwd(aibox_run *r)
{
    aibox_concat_fwd(r->n, r->nd->n_in, r->in_c, r->h * r->w, r->x, r->y);
}
static void concat_bwd(aibox_run *r)
{
    aibox_concat_bwd(r->n, r->nd->n_in, r->in_c, r->h * r->w, r->dy, r->dx);
}

static int add_shape(const aibox_node *nd, const int *ic, const int *ih, const int *iw, int out[3], size_t np[2],
                     size_t ns[2], char *why, size_t why_len)
{
    if (ic[0] != ic[1] || ih[0] != ih[1] || iw[0] != iw[1])
        return WHY("add: shapes %dx%dx%d and %dx%dx%d differ", ic[0], ih[0], iw[0], ic[1], ih[1], iw[1]);
    return same_shape(nd, ic, ih, iw, out, np, ns, why, why_len);
}
static int upsample_shape(const aibox_node *nd, const int *ic, const int *ih, const int *iw, int out[3],
                          size_t np[2], size_t ns[2], char *why, size_t why_len)
{
    const aibox_upsample_settings *s = &nd->settings.upsample;
    if (!in_range(s->out_h, 1, 65536) || !in_range(s->out_w, 1, 65536))
        return WHY("upsample: output size %dx%d out of range", s->out_h, s->out_w);
    out[0] = ic[0], out[1] = s->out_h, out[2] = s->out_w;
    np[0] = np[1] = ns[0] = ns[1] = 0;
    return 1;
}
static void up_nearest_fwd(aibox_run *r)
{
    aibox_upsample_nearest_fwd(r->n, r->c, r->in_h[0], r->in_w[0], r->h, r->w, r->x[0], r->y);
}
static void up_nearest_bwd(aibox_run *r)
{
    aibox_upsample_nearest_bwd(r->n, r->c, r->in_h[0], r->in_w[0], r->h, r->w, r->dy, r->dx[0]);
}
static void up_bilinear_fwd(aibox_run *r)
{
    aibox_upsample_bilinear_fwd(r->n, r->c, r->in_h[0], r->in_w[0], r->h, r->w, r->x[0], r->y);
}
static void up_bilinear_bwd(aibox_run *r)
{
    aibox_upsample_bilinear_bwd(r->n, r->c, r->in_h[0], r->in_w[0], r->h, r->w, r->dy, r->dx[0]);
}

/* ------------------------------------------------------------ the table */
/* Named settings per kind. The order is free; v1_slot is where graph
 * version 1 kept a field (fixed forever: old files are read through it). */
#define F(kind, field, type, slot) \
    {#field, AIBOX_SETTING_##type, offsetof(aibox_node_settings, kind.field), slot}
static const aibox_setting_field conv_fields[] = {
    F(conv, out_channels, INT, 0), F(conv, kernel_h, INT, 1),  F(conv, kernel_w, INT, 2),   F(conv, stride_h, INT, 3),
    F(conv, stride_w, INT, 4),     F(conv, pad_top, INT, 5),   F(conv, pad_left, INT, 6),   F(conv, pad_bottom, INT, 7),
    F(conv, pad_right, INT, 8),    F(conv, groups, INT, 9),    F(conv, bias, INT, 10),
};
static const aibox_setting_field dense_fields[] = {F(dense, units, INT, 0), F(dense, bias, INT, 1)};
static const aibox_setting_field pool_fields[] = {
    F(pool, kernel_h, INT, 0), F(pool, kernel_w, INT, 1),   F(pool, stride_h, INT, 2),  F(pool, stride_w, INT, 3),
    F(pool, pad_top, INT, 4),  F(pool, pad_left, INT, 5),   F(pool, pad_bottom, INT, 6), F(pool, pad_right, INT, 7),
    F(pool, ceil_mode, INT, 8), F(pool, count_include_pad, INT, 9),
};
static const aibox_setting_field leaky_fields[] = {F(leaky_relu, alpha, FLOAT, 0)};
static const aibox_setting_field clamp_fields[] = {F(clamp, lo, FLOAT, 0), F(clamp, hi, FLOAT, 1)};
static const aibox_setting_field dropout_fields[] = {F(dropout, rate, FLOAT, 0)};
static const aibox_setting_field bn_fields[] = {F(batchnorm, eps, FLOAT, 0), F(batchnorm, momentum, FLOAT, 1)};
static const aibox_setting_field zeropad_fields[] = {F(zeropad, top, INT, 0), F(zeropad, left, INT, 1),
                                                     F(zeropad, bottom, INT, 2), F(zeropad, right, INT, 3)};
static const aibox_setting_field upsample_fields[] = {F(upsample, out_h, INT, 0), F(upsample, out_w, INT, 1)};
static const aibox_setting_field quant_fields[] = {F(quantize, scale, FLOAT, 0), F(quantize, zero_point, FLOAT, 1),
                                                   F(quantize, qmin, FLOAT, 2), F(quantize, qmax, FLOAT, 3)};
#undef F
#define FIELDS(list) .fields = list, .n_fields = (int)(sizeof list / sizeof *list)
#define ONE_IN .min_in = 1, .max_in = 1

static const aibox_layer_ops table[AIBOX_LAYER_KIND_COUNT] = {
    [AIBOX_LAYER_INPUT] = {.name = "input", .min_in = 0, .max_in = 0},
    [AIBOX_LAYER_CONV2D] = {.name = "conv2d", ONE_IN, FIELDS(conv_fields), .shape = conv_shape, .init = conv_init,
                            .ws_floats = conv_ws, .partial_floats = conv_partial, .forward = conv_fwd,
                            .backward = conv_bwd, .dx_optional = 1, .dx_assigns = 1,
                            .fuse_accepts = AIBOX_FUSE_RELU | AIBOX_FUSE_AFFINE,
                            .prepared_floats = conv_prepared_floats, .prepare = conv_prepare},
    [AIBOX_LAYER_DENSE] = {.name = "dense", ONE_IN, FIELDS(dense_fields), .shape = dense_shape, .init = dense_init,
                           .forward = dense_fwd, .backward = dense_bwd, .dx_optional = 1},
    [AIBOX_LAYER_MAXPOOL] = {.name = "maxpool", ONE_IN, FIELDS(pool_fields), .shape = pool_shape,
                             .saved_bytes = maxpool_saved, .forward = maxpool_fwd, .backward = maxpool_bwd,
                             .dx_assigns = 1},
    [AIBOX_LAYER_AVGPOOL] = {.name = "avgpool", ONE_IN, FIELDS(pool_fields), .shape = pool_shape,
                             .forward = avgpool_fwd, .backward = avgpool_bwd},
    [AIBOX_LAYER_GLOBAL_AVGPOOL] = {.name = "global_avgpool", ONE_IN, .shape = gap_shape, .forward = gap_fwd,
                                    .backward = gap_bwd},
    [AIBOX_LAYER_RELU] = {.name = "relu", ONE_IN, .shape = same_shape, .forward = relu_fwd, .backward = relu_bwd,
                          .fuses_as = AIBOX_FUSE_RELU, .dx_assigns = 1},
    [AIBOX_LAYER_RELU6] = {.name = "relu6", ONE_IN, .shape = same_shape, .forward = relu6_fwd, .backward = relu6_bwd},
    [AIBOX_LAYER_LEAKY_RELU] = {.name = "leaky_relu", ONE_IN, FIELDS(leaky_fields), .shape = leaky_shape,
                                .forward = leaky_fwd, .backward = leaky_bwd},
    [AIBOX_LAYER_SIGMOID] = {.name = "sigmoid", ONE_IN, .shape = same_shape, .forward = sigmoid_fwd,
                             .backward = sigmoid_bwd},
    [AIBOX_LAYER_CLAMP] = {.name = "clamp", ONE_IN, FIELDS(clamp_fields), .shape = clamp_shape, .forward = clamp_fwd,
                           .backward = clamp_bwd},
    [AIBOX_LAYER_DROPOUT] = {.name = "dropout", ONE_IN, FIELDS(dropout_fields), .shape = dropout_shape,
                             .saved_bytes = dropout_saved, .forward = dropout_fwd, .backward = dropout_bwd,
                             .dx_assigns = 1},
    [AIBOX_LAYER_BATCHNORM] = {.name = "batchnorm", ONE_IN, FIELDS(bn_fields), .shape = bn_shape, .init = bn_init,
                               .saved_bytes = bn_saved, .forward = bn_fwd, .backward = bn_bwd,
                               .fuses_as = AIBOX_FUSE_AFFINE, .fold = bn_fold},
    [AIBOX_LAYER_ZEROPAD] = {.name = "zeropad", ONE_IN, FIELDS(zeropad_fields), .shape = zeropad_shape,
                             .forward = zeropad_fwd, .backward = zeropad_bwd},
    [AIBOX_LAYER_FLATTEN] = {.name = "flatten", ONE_IN, .shape = flatten_shape, .forward = copy_fwd,
                             .backward = copy_bwd, .dx_assigns = 1},
    [AIBOX_LAYER_CONCAT] = {.name = "concat", .min_in = 1, .max_in = AIBOX_NODE_MAX_IN, .shape = concat_shape,
                            .forward = concat_fwd, .backward = concat_bwd},
    [AIBOX_LAYER_ADD] = {.name = "add", .min_in = 2, .max_in = 2, .shape = add_shape, .forward = add_fwd,
                         .backward = add_bwd},
    [AIBOX_LAYER_UPSAMPLE_NEAREST] = {.name = "upsample_nearest", ONE_IN, FIELDS(upsample_fields),
                                      .shape = upsample_shape, .forward = up_nearest_fwd, .backward = up_nearest_bwd},
    [AIBOX_LAYER_UPSAMPLE_BILINEAR] = {.name = "upsample_bilinear", ONE_IN, FIELDS(upsample_fields),
                                       .shape = upsample_shape, .forward = up_bilinear_fwd,
                                       .backward = up_bilinear_bwd},
    [AIBOX_LAYER_SOFTMAX] = {.name = "softmax", ONE_IN, .shape = same_shape, .forward = softmax_fwd,
                             .backward = softmax_bwd},
    /* backward: the straight-through estimator inside the representable range */
    [AIBOX_LAYER_QUANTIZE] = {.name = "quantize", ONE_IN, FIELDS(quant_fields), .shape = quant_shape,
                              .forward = quant_fwd, .backward = quant_bwd},
};

const aibox_layer_ops *aibox_layer_get(aibox_layer_kind k)
{
    if ((int)k < 0 || k >= AIBOX_LAYER_KIND_COUNT) return NULL;
    return &table[k];
}

int aibox_node_shape(const aibox_node *nd, const int *ic, const int *ih, const int *iw, int out[3], size_t np[2],
                     size_t ns[2], char *why, size_t why_len)
{
    const aibox_layer_ops *ops = aibox_layer_get(nd->kind);
    if (!ops || !ops->shape) return WHY("unknown layer kind %d", (int)nd->kind);
    if (!ops->shape(nd, ic, ih, iw, out, np, ns, why, why_len)) return 0;
    if (out[0] < 1 || out[1] < 1 || out[2] < 1 || out[1] > AIBOX_MAX_SIDE || out[2] > AIBOX_MAX_SIDE ||
        product(out[0], out[1], out[2], 1) < 0)
        return WHY("%s: output %dx%dx%d is beyond the limits (sides 1 to %d, at most %lld values per sample)", ops->name,
                   out[0], out[1], out[2], AIBOX_MAX_SIDE, AIBOX_MAX_ELEMS);
    for (int k = 0; k < 2; k++)
        if (np[k] > (size_t)AIBOX_MAX_ELEMS || ns[k] > (size_t)AIBOX_MAX_ELEMS)
            return WHY("%s: a parameter tensor of %zu values exceeds %lld", ops->name, AIBOX_MAX(np[k], ns[k]),
                       AIBOX_MAX_ELEMS);
    return 1;
}

const aibox_layer_ops *aibox_layer_by_name(const char *name, aibox_layer_kind *kind)
{
    for (int k = 0; name && k < AIBOX_LAYER_KIND_COUNT; k++)
        if (!strcmp(table[k].name, name)) {
            if (kind) *kind = (aibox_layer_kind)k;
            return &table[k];
        }
    return NULL;
}

const char *aibox_layer_kind_name(aibox_layer_kind k)
{
    const aibox_layer_ops *o = aibox_layer_get(k);
    return o ? o->name : "unknown";
}

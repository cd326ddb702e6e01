/* The layer table: one record per layer kind (shape inference, parameter
 * initialisation, scratch sizes, forward, backward), keyed by
 * aibox_layer_kind. Adding a layer is one kernel file plus one entry here.
 *
 * Node configuration slots (ip = integers, fp = floats) per kind:
 *   CONV2D   ip: out_c kh kw sh sw pt pl pb pr groups bias
 *   DENSE    ip: units bias
 *   MAXPOOL, AVGPOOL ip: kh kw sh sw pt pl pb pr ceil_mode count_include_pad
 *   LEAKY_RELU fp: alpha;  CLAMP fp: lo hi;  DROPOUT fp: rate
 *   BATCHNORM fp: eps momentum
 *   ZEROPAD  ip: top left bottom right
 *   UPSAMPLE_* ip: out_h out_w
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nn/nn.h"

#define WHY(...) (snprintf(why, why_len, __VA_ARGS__), 0)

static size_t cnt(int n, int c, int h, int w) { return (size_t)n * c * h * w; }
static size_t out_count(const aibox_run *r) { return cnt(r->n, r->c, r->h, r->w); }

static void fill_uniform(float *p, size_t n, float limit, aibox_rng *rng)
{
    for (size_t i = 0; i < n; i++) p[i] = (2.0f * aibox_rng_uniform(rng) - 1.0f) * limit;
}

/* ------------------------------------------------------------ conv2d */
static void conv_desc(const aibox_node *nd, int ic, int ih, int iw, aibox_conv_desc *d)
{
    const int *p = nd->ip;
    d->in_c = ic, d->in_h = ih, d->in_w = iw;
    d->out_c = p[0], d->kh = p[1], d->kw = p[2], d->sh = p[3], d->sw = p[4];
    d->pt = p[5], d->pl = p[6], d->groups = p[9];
    d->out_h = aibox_conv_out_size(ih, p[1], p[3], p[5], p[7]);
    d->out_w = aibox_conv_out_size(iw, p[2], p[4], p[6], p[8]);
}

static int conv_shape(const aibox_node *nd, const int *ic, const int *ih, const int *iw, int out[3], size_t np[2],
                      size_t ns[2], char *why, size_t why_len)
{
    const int *p = nd->ip;
    if (p[0] < 1 || p[1] < 1 || p[2] < 1 || p[3] < 1 || p[4] < 1 || p[9] < 1)
        return WHY("conv2d: out_channels, kernel, stride and groups must be >= 1");
    if (p[5] < 0 || p[6] < 0 || p[7] < 0 || p[8] < 0) return WHY("conv2d: negative padding");
    if (ic[0] % p[9] || p[0] % p[9])
        return WHY("conv2d: groups %d must divide in channels %d and out channels %d", p[9], ic[0], p[0]);
    aibox_conv_desc d;
    conv_desc(nd, ic[0], ih[0], iw[0], &d);
    if (d.out_h < 1 || d.out_w < 1)
        return WHY("conv2d: %dx%d kernel does not fit a %dx%d input (padded)", p[1], p[2], ih[0], iw[0]);
    out[0] = p[0], out[1] = d.out_h, out[2] = d.out_w;
    np[0] = (size_t)p[0] * (ic[0] / p[9]) * p[1] * p[2];
    np[1] = p[10] ? (size_t)p[0] : 0;
    ns[0] = ns[1] = 0;
    return 1;
}

/* He-uniform (fan-in) initialisation: suits the ReLU networks built here. */
static void conv_init(const aibox_node *nd, const int *ic, const int *ih, const int *iw, float *p0, float *p1,
                      float *s0, float *s1, aibox_rng *rng)
{
    int fan_in = ic[0] / nd->ip[9] * nd->ip[1] * nd->ip[2];
    fill_uniform(p0, (size_t)nd->ip[0] * fan_in, sqrtf(6.0f / (float)fan_in), rng);
    if (p1) memset(p1, 0, sizeof(float) * nd->ip[0]);
}

static size_t conv_ws(const aibox_run *r)
{
    aibox_conv_desc d;
    conv_desc(r->nd, r->in_c[0], r->in_h[0], r->in_w[0], &d);
    return aibox_conv_ws_floats(&d);
}

static void conv_fwd(aibox_run *r)
{
    aibox_conv_desc d;
    conv_desc(r->nd, r->in_c[0], r->in_h[0], r->in_w[0], &d);
    aibox_conv_fwd(&d, r->n, r->x[0], r->p[0], r->p[1], r->y, r->ws);
}

/* Parameter gradients always have a destination: a frozen node's go to the
 * context's discard buffer (see ctx.c), so kernels need no special case. */
static void conv_bwd(aibox_run *r)
{
    aibox_conv_desc d;
    conv_desc(r->nd, r->in_c[0], r->in_h[0], r->in_w[0], &d);
    aibox_conv_bwd(&d, r->n, r->x[0], r->p[0], r->dy, r->dx[0], r->dp[0], r->dp[1], r->ws);
}

/* ------------------------------------------------------------ dense */
static int dense_shape(const aibox_node *nd, const int *ic, const int *ih, const int *iw, int out[3], size_t np[2],
                       size_t ns[2], char *why, size_t why_len)
{
    if (nd->ip[0] < 1) return WHY("dense: units must be >= 1");
    size_t in = (size_t)ic[0] * ih[0] * iw[0];
    if (in > (1u << 30)) return WHY("dense: %zu input features is too many", in);
    out[0] = nd->ip[0], out[1] = out[2] = 1;
    np[0] = (size_t)nd->ip[0] * in;
    np[1] = nd->ip[1] ? (size_t)nd->ip[0] : 0;
    ns[0] = ns[1] = 0;
    return 1;
}

static void dense_init(const aibox_node *nd, const int *ic, const int *ih, const int *iw, float *p0, float *p1,
                       float *s0, float *s1, aibox_rng *rng)
{
    int in = ic[0] * ih[0] * iw[0];
    fill_uniform(p0, (size_t)nd->ip[0] * in, sqrtf(6.0f / (float)in), rng);
    if (p1) memset(p1, 0, sizeof(float) * nd->ip[0]);
}

static void dense_fwd(aibox_run *r)
{
    int in = r->in_c[0] * r->in_h[0] * r->in_w[0];
    aibox_dense_fwd(r->n, in, r->c, r->x[0], r->p[0], r->p[1], r->y);
}

static void dense_bwd(aibox_run *r)
{
    int in = r->in_c[0] * r->in_h[0] * r->in_w[0];
    aibox_dense_bwd(r->n, in, r->c, r->x[0], r->p[0], r->dy, r->dx[0], r->dp[0], r->dp[1]);
}

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
    const int *p = nd->ip;
    d->c = ic, d->in_h = ih, d->in_w = iw;
    d->kh = p[0], d->kw = p[1], d->sh = p[2], d->sw = p[3], d->pt = p[4], d->pl = p[5];
    d->out_h = pool_out(ih, p[0], p[2], p[4], p[6], p[8]);
    d->out_w = pool_out(iw, p[1], p[3], p[5], p[7], p[8]);
    d->count_include_pad = p[9];
}

static int pool_shape(const aibox_node *nd, const int *ic, const int *ih, const int *iw, int out[3], size_t np[2],
                      size_t ns[2], char *why, size_t why_len)
{
    const int *p = nd->ip;
    if (p[0] < 1 || p[1] < 1 || p[2] < 1 || p[3] < 1) return WHY("pool: kernel and stride must be >= 1");
    if (p[4] < 0 || p[5] < 0 || p[6] < 0 || p[7] < 0) return WHY("pool: negative padding");
    if (p[4] >= p[0] || p[5] >= p[1] || p[6] >= p[0] || p[7] >= p[1])
        return WHY("pool: padding must be smaller than the kernel");
    aibox_pool_desc d;
    pool_desc(nd, ic[0], ih[0], iw[0], &d);
    if (d.out_h < 1 || d.out_w < 1) return WHY("pool: %dx%d window does not fit a %dx%d input", p[0], p[1], ih[0], iw[0]);
    out[0] = ic[0], out[1] = d.out_h, out[2] = d.out_w;
    np[0] = np[1] = ns[0] = ns[1] = 0;
    return 1;
}

static size_t maxpool_saved(const aibox_run *r) { return out_count(r) * sizeof(int32_t); }

static void maxpool_fwd(aibox_run *r)
{
    aibox_pool_desc d;
    pool_desc(r->nd, r->in_c[0], r->in_h[0], r->in_w[0], &d);
    aibox_maxpool_fwd(&d, r->n, r->x[0], r->y, r->training ? (int32_t *)r->saved : NULL);
}

static void maxpool_bwd(aibox_run *r)
{
    aibox_pool_desc d;
    pool_desc(r->nd, r->in_c[0], r->in_h[0], r->in_w[0], &d);
    aibox_maxpool_bwd(&d, r->n, r->dy, (const int32_t *)r->saved, r->dx[0]);
}

static void avgpool_fwd(aibox_run *r)
{
    aibox_pool_desc d;
    pool_desc(r->nd, r->in_c[0], r->in_h[0], r->in_w[0], &d);
    aibox_avgpool_fwd(&d, r->n, r->x[0], r->y);
}

static void avgpool_bwd(aibox_run *r)
{
    aibox_pool_desc d;
    pool_desc(r->nd, r->in_c[0], r->in_h[0], r->in_w[0], &d);
    aibox_avgpool_bwd(&d, r->n, r->dy, r->dx[0]);
}

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

static void relu_fwd(aibox_run *r) { aibox_relu_fwd(out_count(r), r->x[0], r->y); }
static void relu_bwd(aibox_run *r) { aibox_relu_bwd(out_count(r), r->x[0], r->dy, r->dx[0]); }
static void relu6_fwd(aibox_run *r) { aibox_clamp_fwd(out_count(r), 0.0f, 6.0f, r->x[0], r->y); }
static void relu6_bwd(aibox_run *r) { aibox_clamp_bwd(out_count(r), 0.0f, 6.0f, r->x[0], r->dy, r->dx[0]); }
static void clamp_fwd(aibox_run *r) { aibox_clamp_fwd(out_count(r), r->nd->fp[0], r->nd->fp[1], r->x[0], r->y); }
static void clamp_bwd(aibox_run *r)
{
    aibox_clamp_bwd(out_count(r), r->nd->fp[0], r->nd->fp[1], r->x[0], r->dy, r->dx[0]);
}
static void leaky_fwd(aibox_run *r) { aibox_leaky_fwd(out_count(r), r->nd->fp[0], r->x[0], r->y); }
static void leaky_bwd(aibox_run *r) { aibox_leaky_bwd(out_count(r), r->nd->fp[0], r->x[0], r->dy, r->dx[0]); }
static void sigmoid_fwd(aibox_run *r) { aibox_sigmoid_fwd(out_count(r), r->x[0], r->y); }
static void sigmoid_bwd(aibox_run *r) { aibox_sigmoid_bwd(out_count(r), r->y, r->dy, r->dx[0]); }

static size_t dropout_saved(const aibox_run *r) { return out_count(r) * sizeof(float); }
static void dropout_fwd(aibox_run *r)
{
    if (r->training && r->nd->fp[0] > 0.0f)
        aibox_dropout_fwd(out_count(r), r->nd->fp[0], r->rng, r->x[0], r->y, (float *)r->saved);
    else
        memcpy(r->y, r->x[0], out_count(r) * sizeof(float));
}
static void dropout_bwd(aibox_run *r)
{
    if (r->nd->fp[0] > 0.0f) {
        aibox_dropout_bwd(out_count(r), (const float *)r->saved, r->dy, r->dx[0]);
    } else {
        size_t n = out_count(r);
        for (size_t i = 0; i < n; i++) r->dx[0][i] += r->dy[i];
    }
}

static int softmax_shape(const aibox_node *nd, const int *ic, const int *ih, const int *iw, int out[3],
                         size_t np[2], size_t ns[2], char *why, size_t why_len)
{
    return same_shape(nd, ic, ih, iw, out, np, ns, why, why_len);
}
static void softmax_fwd(aibox_run *r) { aibox_softmax_fwd(r->n, r->c, r->h * r->w, r->x[0], r->y); }
static void softmax_bwd(aibox_run *r) { aibox_softmax_bwd(r->n, r->c, r->h * r->w, r->y, r->dy, r->dx[0]); }

/* ------------------------------------------------------------ batch norm */
static int bn_shape(const aibox_node *nd, const int *ic, const int *ih, const int *iw, int out[3], size_t np[2],
                    size_t ns[2], char *why, size_t why_len)
{
    if (!(nd->fp[0] > 0.0f)) return WHY("batchnorm: epsilon must be > 0");
    if (!(nd->fp[1] >= 0.0f && nd->fp[1] <= 1.0f)) return WHY("batchnorm: momentum must be in [0, 1]");
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
    if (r->training) {
        float *mean = (float *)r->saved, *invstd = mean + r->c;
        aibox_bn_fwd_train(r->n, r->c, hw, r->nd->fp[0], r->nd->fp[1], r->x[0], r->p[0], r->p[1], r->y, mean,
                           invstd, r->st[0], r->st[1]);
    } else {
        aibox_bn_fwd_infer(r->n, r->c, hw, r->nd->fp[0], r->x[0], r->p[0], r->p[1], r->st[0], r->st[1], r->y);
    }
}
static void bn_bwd(aibox_run *r)
{
    const float *mean = (const float *)r->saved, *invstd = mean + r->c;
    aibox_bn_bwd(r->n, r->c, r->h * r->w, r->x[0], r->p[0], mean, invstd, r->dy, r->dx[0], r->dp[0], r->dp[1]);
}

/* ------------------------------------------------------------ shape ops */
static int zeropad_shape(const aibox_node *nd, const int *ic, const int *ih, const int *iw, int out[3],
                         size_t np[2], size_t ns[2], char *why, size_t why_len)
{
    const int *p = nd->ip;
    if (p[0] < 0 || p[1] < 0 || p[2] < 0 || p[3] < 0) return WHY("zeropad: negative padding");
    out[0] = ic[0], out[1] = ih[0] + p[0] + p[2], out[2] = iw[0] + p[1] + p[3];
    np[0] = np[1] = ns[0] = ns[1] = 0;
    return 1;
}
static void zeropad_fwd(aibox_run *r)
{
    const int *p = r->nd->ip;
    aibox_zeropad_fwd(r->n, r->in_c[0], r->in_h[0], r->in_w[0], p[0], p[1], p[2], p[3], r->x[0], r->y);
}
static void zeropad_bwd(aibox_run *r)
{
    const int *p = r->nd->ip;
    aibox_zeropad_bwd(r->n, r->in_c[0], r->in_h[0], r->in_w[0], p[0], p[1], p[2], p[3], r->dy, r->dx[0]);
}

static int flatten_shape(const aibox_node *nd, const int *ic, const int *ih, const int *iw, int out[3], size_t np[2],
                         size_t ns[2], char *why, size_t why_len)
{
    out[0] = ic[0] * ih[0] * iw[0], out[1] = out[2] = 1;
    np[0] = np[1] = ns[0] = ns[1] = 0;
    return 1;
}
static void copy_fwd(aibox_run *r) { memcpy(r->y, r->x[0], out_count(r) * sizeof(float)); }
static void copy_bwd(aibox_run *r)
{
    size_t n = out_count(r);
    for (size_t i = 0; i < n; i++) r->dx[0][i] += r->dy[i];
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
static void add_fwd(aibox_run *r) { aibox_add_fwd(out_count(r), r->x[0], r->x[1], r->y); }
static void add_bwd(aibox_run *r)
{
    size_t n = out_count(r);
    for (int k = 0; k < 2; k++)
        if (r->dx[k])
            for (size_t i = 0; i < n; i++) r->dx[k][i] += r->dy[i];
}

static int upsample_shape(const aibox_node *nd, const int *ic, const int *ih, const int *iw, int out[3],
                          size_t np[2], size_t ns[2], char *why, size_t why_len)
{
    if (nd->ip[0] < 1 || nd->ip[1] < 1 || nd->ip[0] > 65536 || nd->ip[1] > 65536)
        return WHY("upsample: output size %dx%d out of range", nd->ip[0], nd->ip[1]);
    out[0] = ic[0], out[1] = nd->ip[0], out[2] = nd->ip[1];
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

static const aibox_layer_ops table[AIBOX_LAYER_KIND_COUNT] = {
    [AIBOX_LAYER_INPUT] = {"input", 0, 0, NULL, NULL, NULL, NULL, NULL, NULL},
    [AIBOX_LAYER_CONV2D] = {"conv2d", 1, 1, conv_shape, conv_init, conv_ws, NULL, conv_fwd, conv_bwd},
    [AIBOX_LAYER_DENSE] = {"dense", 1, 1, dense_shape, dense_init, NULL, NULL, dense_fwd, dense_bwd},
    [AIBOX_LAYER_MAXPOOL] = {"maxpool", 1, 1, pool_shape, NULL, NULL, maxpool_saved, maxpool_fwd, maxpool_bwd},
    [AIBOX_LAYER_AVGPOOL] = {"avgpool", 1, 1, pool_shape, NULL, NULL, NULL, avgpool_fwd, avgpool_bwd},
    [AIBOX_LAYER_GLOBAL_AVGPOOL] = {"global_avgpool", 1, 1, gap_shape, NULL, NULL, NULL, gap_fwd, gap_bwd},
    [AIBOX_LAYER_RELU] = {"relu", 1, 1, same_shape, NULL, NULL, NULL, relu_fwd, relu_bwd},
    [AIBOX_LAYER_RELU6] = {"relu6", 1, 1, same_shape, NULL, NULL, NULL, relu6_fwd, relu6_bwd},
    [AIBOX_LAYER_LEAKY_RELU] = {"leaky_relu", 1, 1, same_shape, NULL, NULL, NULL, leaky_fwd, leaky_bwd},
    [AIBOX_LAYER_SIGMOID] = {"sigmoid", 1, 1, same_shape, NULL, NULL, NULL, sigmoid_fwd, sigmoid_bwd},
    [AIBOX_LAYER_CLAMP] = {"clamp", 1, 1, same_shape, NULL, NULL, NULL, clamp_fwd, clamp_bwd},
    [AIBOX_LAYER_DROPOUT] = {"dropout", 1, 1, same_shape, NULL, NULL, dropout_saved, dropout_fwd, dropout_bwd},
    [AIBOX_LAYER_BATCHNORM] = {"batchnorm", 1, 1, bn_shape, bn_init, NULL, bn_saved, bn_fwd, bn_bwd},
    [AIBOX_LAYER_ZEROPAD] = {"zeropad", 1, 1, zeropad_shape, NULL, NULL, NULL, zeropad_fwd, zeropad_bwd},
    [AIBOX_LAYER_FLATTEN] = {"flatten", 1, 1, flatten_shape, NULL, NULL, NULL, copy_fwd, copy_bwd},
    [AIBOX_LAYER_CONCAT] = {"concat", 1, AIBOX_NODE_MAX_IN, concat_shape, NULL, NULL, NULL, concat_fwd, concat_bwd},
    [AIBOX_LAYER_ADD] = {"add", 2, 2, add_shape, NULL, NULL, NULL, add_fwd, add_bwd},
    [AIBOX_LAYER_UPSAMPLE_NEAREST] = {"upsample_nearest", 1, 1, upsample_shape, NULL, NULL, NULL, up_nearest_fwd,
                                      up_nearest_bwd},
    [AIBOX_LAYER_UPSAMPLE_BILINEAR] = {"upsample_bilinear", 1, 1, upsample_shape, NULL, NULL, NULL, up_bilinear_fwd,
                                       up_bilinear_bwd},
    [AIBOX_LAYER_SOFTMAX] = {"softmax", 1, 1, softmax_shape, NULL, NULL, NULL, softmax_fwd, softmax_bwd},
};

const aibox_layer_ops *aibox_layer_get(aibox_layer_kind k)
{
    if ((int)k < 0 || k >= AIBOX_LAYER_KIND_COUNT) return NULL;
    return &table[k];
}

const char *aibox_layer_kind_name(aibox_layer_kind k)
{
    const aibox_layer_ops *o = aibox_layer_get(k);
    return o ? o->name : "unknown";
}

/* The integer plan of an 8-bit model: one step per node, uint8 NHWC
 * buffers, the kernels of lib/ops/qops.c. Built once per context (weights
 * reordered and packed, multipliers computed as TFLite computes them), run
 * without allocating. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/qplan.h"

enum { Q_ALIAS, Q_CONV, Q_POOL, Q_MEAN, Q_LUT, Q_ADD, Q_CONCAT, Q_SOFTMAX, Q_FLATTEN, Q_UPSAMPLE, Q_ZEROPAD };

typedef struct qstep {
    int op, node;
    int c, h, w;          /* output shape */
    int ic, ih, iw;       /* first input's shape */
    aibox_qconv conv;     /* Q_CONV */
    void *packed;
    int8_t *wr;
    int32_t *mult;
    int8_t *shift;
    size_t ws_bytes;
    double ns;            /* Q_CONV: its estimated time at batch 1 (conv_ns) */
    aibox_pool_desc pool; /* Q_POOL */
    int is_max;
    int32_t mean_mult;    /* Q_MEAN */
    int mean_shift;
    aibox_qadd add;       /* Q_ADD */
    float table[256];     /* Q_SOFTMAX */
    uint8_t *luts;        /* Q_LUT: one; Q_CONCAT: one per input; a domain-keeping op: NULL or its requantisation */
    int post_lut;         /* 1: luts[0..255] requantises this step's output in place */
    int pad[4];           /* Q_ZEROPAD: top, left, bottom, right */
} qstep;

struct aibox_qplan {
    const aibox_model *m;
    int n_nodes, max_batch, threads;
    unsigned features;
    qstep *steps;         /* per node (steps[0] unused) */
    uint8_t **buf;        /* per node: max_batch samples, NHWC */
    unsigned char *owns;  /* per node: buf[i] allocated here (not an alias) */
    uint8_t *ws;          /* threads x ws_stride */
    size_t ws_stride, bytes;
    float in_scale;
    int in_zp, in_c, in_h, in_w;
};

static uint8_t clamp_q(long v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }

/* Byte q of domain (s_in, z_in) through f into domain (s_out, z_out): the
 * float steps TFLite takes for activation ranges and requantisation. */
static uint8_t lut_value(float v, float s_out, int z_out) { return clamp_q(z_out + (long)roundf(v / s_out)); }

/* The element-wise node i as a table of its 256 inputs. */
static int make_lut(const aibox_node *nd, float si, int zi, float so, int zo, uint8_t lut[256])
{
    for (int q = 0; q < 256; q++) {
        float v = si * (float)(q - zi), y;
        switch (nd->kind) {
        case AIBOX_LAYER_RELU: y = v > 0 ? v : 0; break;
        case AIBOX_LAYER_RELU6: y = v < 0 ? 0 : v > 6 ? 6 : v; break;
        case AIBOX_LAYER_CLAMP: {
            float lo = nd->settings.clamp.lo, hi = nd->settings.clamp.hi;
            y = v < lo ? lo : v > hi ? hi : v;
            break;
        }
        case AIBOX_LAYER_LEAKY_RELU: y = v > 0 ? v : v * nd->settings.leaky_relu.alpha; break;
        case AIBOX_LAYER_SIGMOID: y = 1.0f / (1.0f + expf(-v)); break;
        case AIBOX_LAYER_QUANTIZE: /* already on a grid: only the domain may change */
        case AIBOX_LAYER_DROPOUT:
        case AIBOX_LAYER_INPUT: y = v; break;
        default: return 0;
        }
        lut[q] = lut_value(y, so, zo);
    }
    return 1;
}

/* lut[q] == clamp(q, lo, hi) for all q: foldable into a producer's output clamp. */
static int lut_is_clamp(const uint8_t lut[256], int *lo, int *hi)
{
    *lo = lut[0], *hi = lut[255];
    for (int q = 0; q < 256; q++)
        if (lut[q] != (q < *lo ? *lo : q > *hi ? *hi : q)) return 0;
    return *lo <= *hi;
}

void aibox_qplan_free(aibox_qplan **pp)
{
    if (!pp || !*pp) return;
    aibox_qplan *p = *pp;
    for (int i = 0; p->steps && i < p->n_nodes; i++) {
        qstep *s = &p->steps[i];
        aibox_free(s->packed);
        free(s->wr), free(s->mult), free(s->shift), free(s->luts);
    }
    for (int i = 0; p->buf && i < p->n_nodes; i++)
        if (p->owns[i]) aibox_free(p->buf[i]);
    free(p->steps), free(p->buf), free(p->owns);
    aibox_free(p->ws);
    free(p);
    *pp = NULL;
}

size_t aibox_qplan_bytes(const aibox_qplan *p) { return p ? p->bytes : 0; }

#define FAIL(code, ...) (aibox_fail(err, code, __VA_ARGS__), aibox_qplan_free(&p), (code))

/* A convolution's single-thread time at batch 1 in ns, as measured on an
 * AVX-512 VNNI core (MobileNet v1 1.0 and 0.25, every layer within about
 * 30 %): the 1x1 layers' multiply-adds at about 250 a ns, a requantised
 * output byte about 0.25 ns (0.45 for a depthwise layer, whose products are
 * int32), a first layer's patch byte about 0.2 ns. */
static double conv_ns(const aibox_conv_desc *d)
{
    const double out = (double)d->out_h * d->out_w * d->out_c, cg = d->in_c / d->groups;
    const double macs = out * d->kh * d->kw * cg;
    if (cg == 1 && d->out_c == d->groups) return out * 0.45;
    int direct = d->kh == 1 && d->kw == 1 && d->sh == 1 && d->sw == 1;
    return macs / 250 + out * 0.25 + (direct ? 0 : (double)d->out_h * d->out_w * d->kh * d->kw * cg * 0.2);
}

/* The convolution or dense step of node i (input domain si, zi). */
static aibox_status plan_conv(aibox_qplan *p, int i, qstep *st, const int (*shape)[3], aibox_error *err)
{
    const aibox_model *m = p->m;
    const aibox_node *nd = &m->nodes[i];
    const aibox_quant *q = m->quant;
    const aibox_qweights *qw = &q->qw[i];
    int in = nd->in[0];
    aibox_qconv *c = &st->conv;
    if (nd->kind == AIBOX_LAYER_CONV2D) {
        aibox_conv_node_desc(nd, shape[in][0], shape[in][1], shape[in][2], &c->d);
    } else { /* dense: a 1x1 convolution of a 1x1 input */
        memset(&c->d, 0, sizeof c->d);
        c->d.in_c = shape[in][0] * shape[in][1] * shape[in][2], c->d.in_h = c->d.in_w = 1;
        c->d.out_c = nd->settings.dense.units, c->d.out_h = c->d.out_w = 1;
        c->d.kh = c->d.kw = c->d.sh = c->d.sw = 1, c->d.groups = 1;
    }
    const aibox_conv_desc *d = &c->d;
    if (!qw->w || qw->out != d->out_c)
        return aibox_fail(err, AIBOX_E_FORMAT, "8-bit plan: node %d (%s) has no integer weights", i,
                          aibox_layer_kind_name(nd->kind));
    int cg = d->in_c / d->groups, taps = d->kh * d->kw;
    size_t K = (size_t)taps * cg;
    st->wr = malloc((size_t)d->out_c * K);
    st->mult = malloc((size_t)d->out_c * sizeof *st->mult);
    st->shift = malloc((size_t)d->out_c);
    if (!st->wr || !st->mult || !st->shift) return aibox_fail(err, AIBOX_E_NOMEM, "8-bit plan: out of memory");
    /* OIHW (the float layout) to O,(ky,kx,c): an NHWC patch's order */
    for (int o = 0; o < d->out_c; o++)
        for (int ci = 0; ci < cg; ci++)
            for (int k = 0; k < taps; k++) st->wr[(size_t)o * K + (size_t)k * cg + ci] = qw->w[((size_t)o * cg + ci) * taps + k];
    for (int o = 0; o < d->out_c; o++) {
        int sh;
        /* TFLite's two rules: uint8 weights (kernel_util.cc's GetQuantizedConvolutionMultipler)
         * take the product of the float scales in float, int8 ones
         * (PopulateConvolutionQuantizationParams) in double */
        double prod = qw->float_product ? (double)(q->scale[in] * qw->wscale[o])
                                        : (double)q->scale[in] * (double)qw->wscale[o];
        aibox_q_multiplier(prod / (double)q->scale[i], &st->mult[o], &sh); /* sh in -31..30 */
        st->shift[o] = (int8_t)sh;
    }
    /* every int32 the kernels form (the dot product, the weight offset's share
     * of the patch sum, the constant part) bounded by what the weights allow:
     * a layer that could leave 32 bits is refused, never wrapped */
    for (int o = 0; o < d->out_c; o++) {
        double sw = 0;
        for (size_t k = 0; k < K; k++) sw += fabs((double)st->wr[(size_t)o * K + k]);
        double bound = 2.0 * 255.0 * sw + 2.0 * 255.0 * (double)K * fabs((double)qw->wofs) + fabs((double)qw->bias[o]) +
                       255.0 * (double)K * 255.0;
        if (bound > 2147483647.0)
            return aibox_fail(err, AIBOX_E_UNSUPPORTED, "8-bit plan: node %d (%s): %zu inputs per output could overflow "
                              "its 32-bit accumulator", i, aibox_layer_kind_name(nd->kind), K);
    }
    c->in_zp = q->zp[in], c->out_zp = q->zp[i], c->act_min = 0, c->act_max = 255;
    c->wofs = qw->wofs, c->w = st->wr, c->bias = qw->bias, c->mult = st->mult, c->shift = st->shift;
    size_t pb = aibox_qconv_packed_bytes(c);
    if (!(st->packed = aibox_alloc(pb ? pb : 64))) return aibox_fail(err, AIBOX_E_NOMEM, "8-bit plan: out of memory");
    aibox_qconv_pack(c, st->packed);
    st->ws_bytes = aibox_qconv_ws_bytes(c);
    st->ns = conv_ns(d);
    st->op = Q_CONV;
    return AIBOX_OK;
}

static int same_domain(const aibox_quant *q, int a, int b) { return q->scale[a] == q->scale[b] && q->zp[a] == q->zp[b]; }

/* A requantisation table from node a's domain to node b's, when they differ. */
static aibox_status post_requant(const aibox_quant *q, int a, int b, qstep *st, aibox_error *err)
{
    if (same_domain(q, a, b)) return AIBOX_OK;
    if (!(st->luts = malloc(256))) return aibox_fail(err, AIBOX_E_NOMEM, "8-bit plan: out of memory");
    for (int v = 0; v < 256; v++) st->luts[v] = lut_value(q->scale[a] * (float)(v - q->zp[a]), q->scale[b], q->zp[b]);
    st->post_lut = 1;
    return AIBOX_OK;
}

aibox_status aibox_qplan_create(aibox_qplan **out, const aibox_model *m, const int (*shape)[3], int max_batch,
                                int threads, unsigned features, aibox_error *err)
{
    *out = NULL;
    const aibox_quant *q = m->quant;
    if (!q || q->n_nodes != m->n_nodes)
        return aibox_fail(err, AIBOX_E_INVALID, "8-bit plan: the model carries no quantisation for its %d nodes",
                          m->n_nodes);
    aibox_qplan *p = calloc(1, sizeof *p);
    if (!p) return aibox_fail(err, AIBOX_E_NOMEM, "8-bit plan: out of memory");
    p->m = m, p->n_nodes = m->n_nodes, p->max_batch = max_batch, p->threads = threads > 0 ? threads : 1;
    p->features = features;
    p->steps = calloc((size_t)m->n_nodes, sizeof *p->steps);
    p->buf = calloc((size_t)m->n_nodes, sizeof *p->buf);
    p->owns = calloc((size_t)m->n_nodes, 1);
    if (!p->steps || !p->buf || !p->owns) return FAIL(AIBOX_E_NOMEM, "8-bit plan: out of memory");
    int last = aibox_model_output(m);
    p->in_scale = q->scale[0], p->in_zp = q->zp[0];
    p->in_c = shape[0][0], p->in_h = shape[0][1], p->in_w = shape[0][2];
    if (!(q->scale[0] > 0)) return FAIL(AIBOX_E_FORMAT, "8-bit plan: the input has no quantisation");
    size_t ws = 0;
    aibox_status s;
    for (int i = 1; i <= last; i++) {
        const aibox_node *nd = &m->nodes[i];
        qstep *st = &p->steps[i];
        st->node = i;
        st->c = shape[i][0], st->h = shape[i][1], st->w = shape[i][2];
        int in = nd->in[0];
        st->ic = shape[in][0], st->ih = shape[in][1], st->iw = shape[in][2];
        const char *kind = aibox_layer_kind_name(nd->kind);
        if (!(q->scale[i] > 0) || q->zp[i] < 0 || q->zp[i] > 255)
            return FAIL(AIBOX_E_FORMAT, "8-bit plan: node %d (%s) has no usable output quantisation (scale %g, zero "
                        "point %d)", i, kind, (double)q->scale[i], q->zp[i]);
        for (int j = 0; j < nd->n_in; j++)
            if (nd->in[j] > last) return FAIL(AIBOX_E_FORMAT, "8-bit plan: node %d reads a later node", i);
        switch (nd->kind) {
        case AIBOX_LAYER_CONV2D:
        case AIBOX_LAYER_DENSE:
            if ((s = plan_conv(p, i, st, shape, err))) return aibox_qplan_free(&p), s;
            break;
        case AIBOX_LAYER_MAXPOOL:
        case AIBOX_LAYER_AVGPOOL:
            st->op = Q_POOL, st->is_max = nd->kind == AIBOX_LAYER_MAXPOOL;
            aibox_pool_node_desc(nd, st->ic, st->ih, st->iw, &st->pool);
            if ((double)st->pool.kh * st->pool.kw * 255.0 * 2 > 2147483647.0) /* the window's int32 sum */
                return FAIL(AIBOX_E_UNSUPPORTED, "8-bit plan: node %d (%s): a %dx%d window could overflow 32 bits", i,
                            kind, st->pool.kh, st->pool.kw);
            if ((s = post_requant(q, in, i, st, err))) return aibox_qplan_free(&p), s;
            break;
        case AIBOX_LAYER_GLOBAL_AVGPOOL: {
            /* reduce.cc's Mean (uint8, over height and width) */
            int cnt = st->ih * st->iw;
            if ((double)cnt * 255.0 > 2147483647.0)
                return FAIL(AIBOX_E_UNSUPPORTED, "8-bit plan: node %d (%s): %d cells could overflow 32 bits", i, kind, cnt);
            st->op = Q_MEAN;
            aibox_q_multiplier((double)q->scale[in] / ((double)cnt * (double)q->scale[i]), &st->mean_mult,
                               &st->mean_shift);
            break;
        }
        case AIBOX_LAYER_RELU:
        case AIBOX_LAYER_RELU6:
        case AIBOX_LAYER_CLAMP:
        case AIBOX_LAYER_LEAKY_RELU:
        case AIBOX_LAYER_SIGMOID:
        case AIBOX_LAYER_QUANTIZE:
        case AIBOX_LAYER_DROPOUT:
            if (!(st->luts = malloc(256))) return FAIL(AIBOX_E_NOMEM, "8-bit plan: out of memory");
            make_lut(nd, q->scale[in], q->zp[in], q->scale[i], q->zp[i], st->luts);
            st->op = Q_LUT;
            break;
        case AIBOX_LAYER_ADD:
            st->op = Q_ADD;
            aibox_qadd_setup(&st->add, q->scale[in], q->zp[in], q->scale[nd->in[1]], q->zp[nd->in[1]], q->scale[i],
                             q->zp[i], 0, 255);
            break;
        case AIBOX_LAYER_CONCAT:
            st->op = Q_CONCAT;
            if (!(st->luts = malloc(256 * (size_t)nd->n_in))) return FAIL(AIBOX_E_NOMEM, "8-bit plan: out of memory");
            for (int j = 0; j < nd->n_in; j++) {
                /* concatenation.cc's ConcatenationWithScaling, in float */
                int a = nd->in[j];
                const float scale = q->scale[a] * (1.0f / q->scale[i]), bias = -(float)q->zp[a] * scale;
                for (int v = 0; v < 256; v++)
                    st->luts[256 * j + v] = same_domain(q, a, i) ? (uint8_t)v
                                                                 : clamp_q((long)roundf((float)v * scale + bias) + q->zp[i]);
            }
            break;
        case AIBOX_LAYER_SOFTMAX:
            st->op = Q_SOFTMAX;
            aibox_qsoftmax_table(q->scale[in], 1.0f, st->table);
            break;
        case AIBOX_LAYER_FLATTEN:
            st->op = (st->ih == 1 && st->iw == 1) ? Q_ALIAS : Q_FLATTEN;
            if ((s = post_requant(q, in, i, st, err))) return aibox_qplan_free(&p), s;
            if (st->post_lut) st->op = Q_FLATTEN; /* an alias cannot requantise in place */
            break;
        case AIBOX_LAYER_UPSAMPLE_NEAREST:
            st->op = Q_UPSAMPLE;
            if ((s = post_requant(q, in, i, st, err))) return aibox_qplan_free(&p), s;
            break;
        case AIBOX_LAYER_ZEROPAD:
            st->op = Q_ZEROPAD;
            st->pad[0] = nd->settings.zeropad.top, st->pad[1] = nd->settings.zeropad.left;
            st->pad[2] = nd->settings.zeropad.bottom, st->pad[3] = nd->settings.zeropad.right;
            if ((s = post_requant(q, in, i, st, err))) return aibox_qplan_free(&p), s;
            break;
        default:
            return FAIL(AIBOX_E_UNSUPPORTED, "8-bit plan: node %d is a %s, which has no integer kernel (fold batch "
                        "norms into their convolutions before quantising)", i, kind);
        }
        if (st->ws_bytes > ws) ws = st->ws_bytes;
    }
    /* A clamp (ReLU, ReLU6, a fused activation) right after a convolution
     * that nothing else reads becomes that convolution's output clamp. */
    for (int i = 1; i <= last; i++) {
        qstep *st = &p->steps[i];
        const aibox_node *nd = &m->nodes[i];
        int lo, hi, prod = nd->in[0], users = 0;
        if (st->op != Q_LUT || p->steps[prod].op != Q_CONV || prod == 0 || !lut_is_clamp(st->luts, &lo, &hi)) continue;
        for (int j = prod + 1; j <= last; j++)
            for (int k = 0; k < m->nodes[j].n_in; k++) users += m->nodes[j].in[k] == prod;
        if (users != 1 || prod == last) continue;
        aibox_qconv *c = &p->steps[prod].conv;
        c->act_min = lo > c->act_min ? lo : c->act_min, c->act_max = hi < c->act_max ? hi : c->act_max;
        st->op = Q_ALIAS;
    }
    /* buffers: aliases share their input's */
    for (int i = 0; i <= last; i++) {
        if (i > 0 && p->steps[i].op == Q_ALIAS) {
            p->buf[i] = p->buf[m->nodes[i].in[0]];
            continue;
        }
        size_t bytes = (size_t)max_batch * shape[i][0] * shape[i][1] * shape[i][2];
        if (!(p->buf[i] = aibox_alloc(bytes ? bytes : 64))) return FAIL(AIBOX_E_NOMEM, "8-bit plan: out of memory");
        p->owns[i] = 1;
        p->bytes += bytes;
    }
    p->ws_stride = (ws + 127) & ~(size_t)63;
    if (!(p->ws = aibox_alloc(p->ws_stride * (size_t)p->threads + 64)))
        return FAIL(AIBOX_E_NOMEM, "8-bit plan: out of memory");
    p->bytes += p->ws_stride * (size_t)p->threads;
    *out = p;
    return AIBOX_OK;
}

/* A step a team shares out by output pixels: a convolution of 8 us or more
 * (a barrier between spinning threads costs well under a microsecond, but a
 * layer of a few microseconds gains nothing from halving), or a pool of 32 kB
 * or more of output that keeps its input's domain. */
static int shared_step(const qstep *st, int n)
{
    if (st->op == Q_CONV) return st->ns * n >= 8e3 && (size_t)n * st->h * st->w >= 16;
    return st->op == Q_POOL && !st->post_lut && (size_t)n * st->h * st->w * st->c >= 32768;
}

/* Step st, or for a shared step (convolution, pool) its part of parts. */
static void run_step(aibox_qplan *p, const qstep *st, int n, uint8_t *ws, int part, int parts)
{
    const aibox_node *nd = &p->m->nodes[st->node];
    const uint8_t *x = p->buf[nd->in[0]];
    uint8_t *y = p->buf[st->node];
    size_t out = (size_t)n * st->c * st->h * st->w;
    switch (st->op) {
    case Q_ALIAS: return;
    case Q_CONV: aibox_qconv_run(&st->conv, st->packed, n, x, y, ws, part, parts, p->features); return;
    case Q_POOL: aibox_qpool(&st->pool, n, st->is_max, p->m->quant->zp[nd->in[0]], 0, 255, x, y, part, parts); break;
    case Q_MEAN:
        aibox_qmean(n, st->ih * st->iw, st->ic, p->m->quant->zp[nd->in[0]], st->mean_mult, st->mean_shift,
                    p->m->quant->zp[st->node], x, y);
        break;
    case Q_LUT: aibox_qlut(out, st->luts, x, y); return;
    case Q_ADD: aibox_qadd_run(&st->add, out, x, p->buf[nd->in[1]], y); return;
    case Q_CONCAT: {
        size_t pix = (size_t)n * st->h * st->w;
        int at = 0;
        for (int j = 0; j < nd->n_in; j++) {
            int cj = p->m->nodes[nd->in[j]].c;
            const uint8_t *xj = p->buf[nd->in[j]], *lut = st->luts + 256 * j;
            for (size_t px = 0; px < pix; px++)
                for (int c = 0; c < cj; c++) y[px * st->c + at + c] = lut[xj[px * cj + c]];
            at += cj;
        }
        return;
    }
    case Q_SOFTMAX: aibox_qsoftmax(st->table, p->m->quant->scale[st->node], p->m->quant->zp[st->node],
                                   n * st->h * st->w, st->c, x, y);
        return;
    case Q_FLATTEN: { /* NHWC to the float model's C, H, W order */
        const size_t HW = (size_t)st->ih * st->iw, C = (size_t)st->ic;
        for (int s = 0; s < n; s++) {
            const uint8_t *xs = x + (size_t)s * HW * C;
            uint8_t *ys = y + (size_t)s * HW * C;
            for (size_t k = 0; k < HW; k++)
                for (size_t c = 0; c < C; c++) ys[c * HW + k] = xs[k * C + c];
        }
        break;
    }
    case Q_UPSAMPLE:
        for (int s = 0; s < n; s++)
            for (int oy = 0; oy < st->h; oy++)
                for (int ox = 0; ox < st->w; ox++) {
                    int iy = (int)((long)oy * st->ih / st->h), ix = (int)((long)ox * st->iw / st->w);
                    memcpy(y + (((size_t)s * st->h + oy) * st->w + ox) * st->c,
                           x + (((size_t)s * st->ih + iy) * st->iw + ix) * st->ic, (size_t)st->c);
                }
        break;
    case Q_ZEROPAD: {
        int zp = p->m->quant->zp[nd->in[0]];
        memset(y, zp, out);
        for (int s = 0; s < n; s++)
            for (int iy = 0; iy < st->ih; iy++)
                memcpy(y + (((size_t)s * st->h + iy + st->pad[0]) * st->w + st->pad[1]) * st->c,
                       x + ((size_t)s * st->ih + iy) * st->iw * st->ic, (size_t)st->iw * st->ic);
        break;
    }
    }
    if (st->post_lut) aibox_qlut(out, st->luts, y, y);
}

void aibox_qplan_quantize_input(const aibox_qplan *p, const float *input, int n, uint8_t *qx)
{
    const int C = p->in_c, HW = p->in_h * p->in_w;
    const float inv = 1.0f / p->in_scale, zp = (float)p->in_zp;
    for (int s = 0; s < n; s++) {
        uint8_t *qs = qx + (size_t)s * HW * C;
        if (C == 1) {
            aibox_q_quantize(input + (size_t)s * HW, HW, inv, zp, qs);
            continue;
        }
        if (C == 3) { /* a colour image: interleaved as it is quantised */
            aibox_q_quantize3(input + (size_t)s * 3 * HW, (size_t)HW, HW, inv, zp, qs, p->features);
            continue;
        }
        /* planes in blocks through a small buffer, then interleaved (NCHW to NHWC) */
        enum { BLK = 1024 };
        uint8_t tmp[4][BLK];
        for (int k0 = 0; k0 < HW; k0 += BLK) {
            int nb = HW - k0 < BLK ? HW - k0 : BLK;
            for (int c0 = 0; c0 < C; c0 += 4) {
                int cn = C - c0 < 4 ? C - c0 : 4;
                for (int c = 0; c < cn; c++)
                    aibox_q_quantize(input + ((size_t)s * C + c0 + c) * HW + k0, nb, inv, zp, tmp[c]);
                for (int k = 0; k < nb; k++)
                    for (int c = 0; c < cn; c++) qs[((size_t)k0 + k) * C + c0 + c] = tmp[c][k];
            }
        }
    }
}

/* Two or more threads run the whole plan as one team (one pool job, so a
 * sleeping worker is woken once per forward pass, not per layer): a large
 * enough convolution or pool is shared out by output pixels, everything else
 * runs on task 0, and a spinning barrier separates a shared layer from what comes
 * before and after it. Every task takes the same barriers, in order. */
typedef struct team_job {
    aibox_qplan *p;
    int n, parts, last;
    aibox_barrier bar;
} team_job;

static void team_task(void *arg, int task, int thread)
{
    team_job *j = arg;
    aibox_qplan *p = j->p;
    uint8_t *ws = p->ws + (size_t)task * p->ws_stride; /* per task: task < parts <= the workspaces made */
    int dirty = 0; /* a step ran since the last barrier */
    for (int i = 1; i <= j->last; i++) {
        const qstep *st = &p->steps[i];
        if (st->op == Q_ALIAS) continue;
        const int shared = shared_step(st, j->n);
        if (shared) {
            if (dirty) aibox_barrier_wait(&j->bar);
            run_step(p, st, j->n, ws, task, j->parts);
        } else if (task == 0) {
            run_step(p, st, j->n, ws, 0, 1);
        }
        dirty = 1;
        /* a step after a shared one reads all of its output */
        if (shared) aibox_barrier_wait(&j->bar), dirty = 0;
    }
}

const uint8_t *aibox_qplan_run_u8(aibox_qplan *p, const uint8_t *input, int n, aibox_pool *pool)
{
    int last = aibox_model_output(p->m);
    if (input != p->buf[0]) memcpy(p->buf[0], input, (size_t)n * p->in_c * p->in_h * p->in_w);
    int parts = aibox_pool_threads(pool);
    if (parts > p->threads) parts = p->threads; /* the workspaces made */
    int shared = 0;
    for (int i = 1; i <= last && !shared; i++) shared = shared_step(&p->steps[i], n);
    if (parts > 1 && shared) {
        team_job j = {.p = p, .n = n, .parts = parts, .last = last};
        aibox_barrier_init(&j.bar, parts);
        aibox_pool_run(pool, parts, team_task, &j);
    } else {
        for (int i = 1; i <= last; i++) run_step(p, &p->steps[i], n, p->ws, 0, 1);
    }
    return p->buf[last];
}

void aibox_qplan_dequantize(const aibox_qplan *p, int node, int n, float *out)
{
    const qstep *st = &p->steps[node];
    const uint8_t *y = p->buf[node];
    /* an alias (a clamp folded into its convolution) holds its producer's domain */
    int dom = node;
    while (dom > 0 && p->steps[dom].op == Q_ALIAS) dom = p->m->nodes[dom].in[0];
    const float sc = node ? p->m->quant->scale[dom] : p->in_scale;
    const int zp = node ? p->m->quant->zp[dom] : p->in_zp, C = node ? st->c : p->in_c,
              HW = node ? st->h * st->w : p->in_h * p->in_w;
    float lut[256];
    for (int v = 0; v < 256; v++) lut[v] = sc * (float)(v - zp);
    /* NHWC bytes to NCHW floats in blocks of 64 pixels: the block's bytes stay
     * in cache while each channel's run of 64 floats is written */
    for (int s = 0; s < n; s++)
        for (int k0 = 0; k0 < HW; k0 += 64) {
            int k1 = HW - k0 < 64 ? HW : k0 + 64;
            const uint8_t *yb = y + ((size_t)s * HW + k0) * C;
            for (int c = 0; c < C; c++) {
                float *o = out + ((size_t)s * C + c) * HW;
                for (int k = k0; k < k1; k++) o[k] = lut[yb[(size_t)(k - k0) * C + c]];
            }
        }
}

void aibox_qplan_run(aibox_qplan *p, const float *input, int n, float *out, aibox_pool *pool)
{
    aibox_qplan_quantize_input(p, input, n, p->buf[0]);
    aibox_qplan_run_u8(p, p->buf[0], n, pool);
    aibox_qplan_dequantize(p, aibox_model_output(p->m), n, out);
}

const uint8_t *aibox_qplan_node_u8(const aibox_qplan *p, int node)
{
    return p && node >= 0 && node < p->n_nodes ? p->buf[node] : NULL;
}

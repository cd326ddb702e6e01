/* Model graph: builders, parameter block, metadata accessors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

aibox_status aibox_model_create(aibox_model **out, int channels, int height, int width, aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "model: NULL output pointer");
    *out = NULL;
    if (channels < 1 || height < 1 || width < 1 || channels > 65536 || height > 65536 || width > 65536 ||
        (int64_t)channels * height * width > AIBOX_MAX_ELEMS)
        return aibox_fail(err, AIBOX_E_INVALID, "model: input %dx%dx%d out of range (sides 1 to 65536, at most %lld values)",
                          channels, height, width, AIBOX_MAX_ELEMS);
    aibox_model *m = calloc(1, sizeof *m);
    if (!m) return aibox_fail(err, AIBOX_E_NOMEM, "model: out of memory");
    m->in_c = channels, m->in_h = height, m->in_w = width;
    m->cap = 32;
    m->nodes = calloc((size_t)m->cap, sizeof *m->nodes);
    if (!m->nodes) {
        free(m);
        return aibox_fail(err, AIBOX_E_NOMEM, "model: out of memory");
    }
    aibox_node *in = &m->nodes[0];
    in->kind = AIBOX_LAYER_INPUT;
    in->c = channels, in->h = height, in->w = width;
    m->n_nodes = 1;
    *out = m;
    return AIBOX_OK;
}

void aibox_model_free(aibox_model **pm)
{
    if (!pm || !*pm) return;
    aibox_model *m = *pm;
    free(m->nodes);
    aibox_free(m->params);
    aibox_free(m->grads);
    aibox_free(m->state);
    aibox_free(m->kept_params);
    aibox_free(m->kept_state);
    aibox_meta_list_free(&m->meta);
    aibox_quant_free(&m->quant);
    free(m);
    *pm = NULL;
}

/* Records the first builder error; returns its negative code. */
static int build_fail(aibox_model *m, aibox_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int build_fail(aibox_model *m, aibox_status code, const char *fmt, ...)
{
    if (m->build_status == AIBOX_OK) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(m->build_msg, sizeof m->build_msg, fmt, ap);
        va_end(ap);
        m->build_status = code;
    }
    return -(int)code;
}

int aibox_model_add_node(aibox_model *m, aibox_layer_kind kind, int n_in, const int *in,
                         const aibox_node_settings *settings)
{
    if (!m) return -(int)AIBOX_E_INVALID;
    if (m->build_status) return -(int)m->build_status;
    if (m->weightless)
        return build_fail(m, AIBOX_E_STATE, "model: loaded without its weights (aibox_model_load_info): cannot extend it");
    const aibox_layer_ops *ops = aibox_layer_get(kind);
    if (!ops || kind == AIBOX_LAYER_INPUT) return build_fail(m, AIBOX_E_INVALID, "model: unknown layer kind %d", kind);
    if (m->quant)
        return build_fail(m, AIBOX_E_STATE, "model: an 8-bit model cannot take new nodes (fine-tune its float original)");
    if (n_in < ops->min_in || n_in > ops->max_in)
        return build_fail(m, AIBOX_E_INVALID, "node %d: %s: %d inputs (needs %d to %d)", m->n_nodes, ops->name, n_in,
                          ops->min_in, ops->max_in);
    for (int i = 0; i < n_in; i++) {
        if (in[i] < 0) return in[i]; /* propagate an earlier builder error */
        if (in[i] >= m->n_nodes)
            return build_fail(m, AIBOX_E_INVALID, "%s: input %d names node %d, which does not exist yet", ops->name, i,
                              in[i]);
    }
    if (m->n_nodes == m->cap) {
        aibox_node *nn = realloc(m->nodes, (size_t)m->cap * 2 * sizeof *nn);
        if (!nn) return build_fail(m, AIBOX_E_NOMEM, "model: out of memory");
        m->nodes = nn;
        m->cap *= 2;
    }
    aibox_node *nd = &m->nodes[m->n_nodes];
    memset(nd, 0, sizeof *nd);
    nd->kind = kind;
    nd->n_in = n_in;
    int ic[AIBOX_NODE_MAX_IN], ih[AIBOX_NODE_MAX_IN], iw[AIBOX_NODE_MAX_IN];
    for (int i = 0; i < n_in; i++) {
        nd->in[i] = in[i];
        ic[i] = m->nodes[in[i]].c, ih[i] = m->nodes[in[i]].h, iw[i] = m->nodes[in[i]].w;
    }
    if (settings) nd->settings = *settings;
    int out[3];
    char why[256] = "";
    if (!aibox_node_shape(nd, ic, ih, iw, out, nd->n_param, nd->n_state, why, sizeof why))
        return build_fail(m, AIBOX_E_SHAPE, "node %d: %s", m->n_nodes, why);
    nd->c = out[0], nd->h = out[1], nd->w = out[2];
    if (m->finished) { /* reopen: keep the trunk's values for the next finish */
        m->kept_params = m->params, m->kept_state = m->state;
        m->kept_np = m->n_params, m->kept_ns = m->n_state;
        aibox_free(m->grads);
        m->params = m->grads = m->state = NULL;
        m->n_params = m->n_state = 0;
        m->finished = 0;
        m->output = 0;
    }
    return m->n_nodes++;
}

static int add1(aibox_model *m, aibox_layer_kind k, int in, const aibox_node_settings *s)
{
    return aibox_model_add_node(m, k, 1, &in, s);
}

int aibox_conv2d(aibox_model *m, int in, const aibox_conv_opts *o)
{
    if (!o) return m ? build_fail(m, AIBOX_E_INVALID, "conv2d: NULL options") : -(int)AIBOX_E_INVALID;
    aibox_node_settings s = {.conv = {.out_channels = o->out_channels,
                                      .kernel_h = o->kernel_h,
                                      .kernel_w = o->kernel_w,
                                      .stride_h = o->stride_h ? o->stride_h : 1,
                                      .stride_w = o->stride_w ? o->stride_w : 1,
                                      .pad_top = o->pad_top,
                                      .pad_left = o->pad_left,
                                      .pad_bottom = o->pad_bottom,
                                      .pad_right = o->pad_right,
                                      .groups = o->groups ? o->groups : 1,
                                      .bias = o->bias ? 1 : 0}};
    return add1(m, AIBOX_LAYER_CONV2D, in, &s);
}

int aibox_conv2d_simple(aibox_model *m, int in, int out_channels, int kernel, int stride, int pad)
{
    aibox_conv_opts o = {out_channels, kernel, kernel, stride, stride, pad, pad, pad, pad, 1, 1};
    return aibox_conv2d(m, in, &o);
}

int aibox_dense(aibox_model *m, int in, int units, int bias)
{
    aibox_node_settings s = {.dense = {.units = units, .bias = bias ? 1 : 0}};
    return add1(m, AIBOX_LAYER_DENSE, in, &s);
}

static int pool(aibox_model *m, aibox_layer_kind k, int in, const aibox_pool_opts *o)
{
    if (!o) return m ? build_fail(m, AIBOX_E_INVALID, "pool: NULL options") : -(int)AIBOX_E_INVALID;
    aibox_node_settings s = {.pool = {.kernel_h = o->kernel_h,
                                      .kernel_w = o->kernel_w,
                                      .stride_h = o->stride_h ? o->stride_h : o->kernel_h,
                                      .stride_w = o->stride_w ? o->stride_w : o->kernel_w,
                                      .pad_top = o->pad_top,
                                      .pad_left = o->pad_left,
                                      .pad_bottom = o->pad_bottom,
                                      .pad_right = o->pad_right,
                                      .ceil_mode = o->ceil_mode ? 1 : 0,
                                      .count_include_pad = o->count_include_pad ? 1 : 0}};
    return add1(m, k, in, &s);
}
int aibox_maxpool(aibox_model *m, int in, const aibox_pool_opts *o) { return pool(m, AIBOX_LAYER_MAXPOOL, in, o); }
int aibox_avgpool(aibox_model *m, int in, const aibox_pool_opts *o) { return pool(m, AIBOX_LAYER_AVGPOOL, in, o); }
int aibox_global_avgpool(aibox_model *m, int in) { return add1(m, AIBOX_LAYER_GLOBAL_AVGPOOL, in, NULL); }
int aibox_relu(aibox_model *m, int in) { return add1(m, AIBOX_LAYER_RELU, in, NULL); }
int aibox_relu6(aibox_model *m, int in) { return add1(m, AIBOX_LAYER_RELU6, in, NULL); }
int aibox_sigmoid(aibox_model *m, int in) { return add1(m, AIBOX_LAYER_SIGMOID, in, NULL); }
int aibox_flatten(aibox_model *m, int in) { return add1(m, AIBOX_LAYER_FLATTEN, in, NULL); }
int aibox_softmax(aibox_model *m, int in) { return add1(m, AIBOX_LAYER_SOFTMAX, in, NULL); }

int aibox_leaky_relu(aibox_model *m, int in, float alpha)
{
    aibox_node_settings s = {.leaky_relu = {.alpha = alpha}};
    return add1(m, AIBOX_LAYER_LEAKY_RELU, in, &s);
}

/* The option checks below give bad options AIBOX_E_INVALID; the kinds'
 * shape rules check the same for nodes read from files. */
int aibox_clamp(aibox_model *m, int in, float lo, float hi)
{
    if (m && !(lo <= hi)) return build_fail(m, AIBOX_E_INVALID, "clamp: lo %g > hi %g", lo, hi);
    aibox_node_settings s = {.clamp = {.lo = lo, .hi = hi}};
    return add1(m, AIBOX_LAYER_CLAMP, in, &s);
}

int aibox_quantize(aibox_model *m, int in, float scale, float zero_point, float qmin, float qmax)
{
    if (m && !(scale > 0.0f && isfinite(scale) && qmin <= qmax && isfinite(zero_point)))
        return build_fail(m, AIBOX_E_INVALID, "quantize: scale %g, range [%g, %g]", scale, qmin, qmax);
    aibox_node_settings s = {.quantize = {.scale = scale, .zero_point = zero_point, .qmin = qmin, .qmax = qmax}};
    return add1(m, AIBOX_LAYER_QUANTIZE, in, &s);
}

int aibox_dropout(aibox_model *m, int in, float rate)
{
    if (m && !(rate >= 0.0f && rate < 1.0f)) return build_fail(m, AIBOX_E_INVALID, "dropout: rate %g not in [0, 1)", rate);
    aibox_node_settings s = {.dropout = {.rate = rate}};
    return add1(m, AIBOX_LAYER_DROPOUT, in, &s);
}

int aibox_batchnorm(aibox_model *m, int in, float eps, float momentum)
{
    aibox_node_settings s = {.batchnorm = {.eps = eps, .momentum = momentum}};
    return add1(m, AIBOX_LAYER_BATCHNORM, in, &s);
}

int aibox_zeropad(aibox_model *m, int in, int top, int left, int bottom, int right)
{
    aibox_node_settings s = {.zeropad = {.top = top, .left = left, .bottom = bottom, .right = right}};
    return add1(m, AIBOX_LAYER_ZEROPAD, in, &s);
}

int aibox_concat(aibox_model *m, int n_inputs, const int *inputs)
{
    if (!inputs) return m ? build_fail(m, AIBOX_E_INVALID, "concat: NULL inputs") : -(int)AIBOX_E_INVALID;
    return aibox_model_add_node(m, AIBOX_LAYER_CONCAT, n_inputs, inputs, NULL);
}

int aibox_add(aibox_model *m, int a, int b)
{
    int in[2] = {a, b};
    return aibox_model_add_node(m, AIBOX_LAYER_ADD, 2, in, NULL);
}

int aibox_upsample_nearest(aibox_model *m, int in, int out_h, int out_w)
{
    aibox_node_settings s = {.upsample = {.out_h = out_h, .out_w = out_w}};
    return add1(m, AIBOX_LAYER_UPSAMPLE_NEAREST, in, &s);
}

int aibox_upsample_bilinear(aibox_model *m, int in, int out_h, int out_w)
{
    aibox_node_settings s = {.upsample = {.out_h = out_h, .out_w = out_w}};
    return add1(m, AIBOX_LAYER_UPSAMPLE_BILINEAR, in, &s);
}

aibox_status aibox_model_alloc_params(aibox_model *m, int init, uint64_t seed, aibox_error *err)
{
    size_t np = 0, ns = 0;
    for (int i = 0; i < m->n_nodes; i++) {
        aibox_node *nd = &m->nodes[i];
        for (int k = 0; k < 2; k++) {
            /* 16-float (64-byte) alignment for every tensor inside the block */
            nd->param_off[k] = np;
            np += (nd->n_param[k] + 15) & ~(size_t)15;
            nd->state_off[k] = ns;
            ns += (nd->n_state[k] + 15) & ~(size_t)15;
        }
    }
    aibox_free(m->params), aibox_free(m->grads), aibox_free(m->state);
    m->grads = NULL; /* allocated when training first needs them (aibox_model_grads_ready) */
    m->params = aibox_alloc(np * sizeof(float));
    m->state = aibox_alloc(ns * sizeof(float));
    if (!m->params || !m->state)
        return aibox_fail(err, AIBOX_E_NOMEM, "model: cannot allocate %zu parameters", np);
    memset(m->params, 0, np * sizeof(float));
    memset(m->state, 0, ns * sizeof(float));
    m->n_params = np;
    m->n_state = ns;
    if (init) {
        aibox_rng rng;
        aibox_rng_seed(&rng, seed);
        for (int i = 1; i < m->n_nodes; i++) {
            aibox_node *nd = &m->nodes[i];
            const aibox_layer_ops *ops = aibox_layer_get(nd->kind);
            if (!ops->init) continue;
            int ic[AIBOX_NODE_MAX_IN], ih[AIBOX_NODE_MAX_IN], iw[AIBOX_NODE_MAX_IN];
            for (int j = 0; j < nd->n_in; j++)
                ic[j] = m->nodes[nd->in[j]].c, ih[j] = m->nodes[nd->in[j]].h, iw[j] = m->nodes[nd->in[j]].w;
            ops->init(nd, ic, ih, iw, nd->n_param[0] ? m->params + nd->param_off[0] : NULL,
                      nd->n_param[1] ? m->params + nd->param_off[1] : NULL,
                      nd->n_state[0] ? m->state + nd->state_off[0] : NULL,
                      nd->n_state[1] ? m->state + nd->state_off[1] : NULL, &rng);
        }
    }
    if (m->kept_params) { /* a reopened model: the old nodes keep their values */
        memcpy(m->params, m->kept_params, m->kept_np * sizeof(float));
        memcpy(m->state, m->kept_state, m->kept_ns * sizeof(float));
        aibox_free(m->kept_params), aibox_free(m->kept_state);
        m->kept_params = m->kept_state = NULL;
    }
    m->finished = 1;
    return AIBOX_OK;
}

aibox_status aibox_model_finish(aibox_model *m, uint64_t seed, aibox_error *err)
{
    if (!m) return aibox_fail(err, AIBOX_E_INVALID, "model: NULL model");
    if (m->build_status) return aibox_fail(err, m->build_status, "%s", m->build_msg);
    if (m->finished) return aibox_fail(err, AIBOX_E_STATE, "model: already finished");
    if (m->n_nodes < 2) return aibox_fail(err, AIBOX_E_STATE, "model: no layers");
    if (m->output <= 0) m->output = m->n_nodes - 1;
    return aibox_model_alloc_params(m, 1, seed, err);
}

/* What a weightless model (aibox_model_load_info) cannot do. */
static aibox_status need_weights(const aibox_model *m, const char *what, aibox_error *err)
{
    if (!m || !m->finished) return aibox_fail(err, AIBOX_E_STATE, "%s: the model is not finished", what);
    if (m->weightless)
        return aibox_fail(err, AIBOX_E_STATE, "%s: the model was loaded without its weights (aibox_model_load_info)",
                          what);
    return AIBOX_OK;
}

aibox_status aibox_model_init_params(aibox_model *m, uint64_t seed, aibox_error *err)
{
    aibox_status s = need_weights(m, "model", err);
    if (s) return s;
    return aibox_model_alloc_params(m, 1, seed, err);
}

/* An 8-bit source's integers for the kept nodes (keep[i]: the copy's index, < 0 dropped):
 * a sub-graph of an 8-bit model is an 8-bit model, every domain unchanged. */
static aibox_status extract_quant(aibox_model *m, const aibox_model *src, const int *keep, aibox_error *err)
{
    aibox_quant *q = aibox_quant_create(m->n_nodes);
    if (!q) return aibox_fail(err, AIBOX_E_NOMEM, "extract: out of memory");
    q->scale[0] = src->quant->scale[0], q->zp[0] = src->quant->zp[0];
    for (int i = 1; i < src->n_nodes; i++) {
        int d = keep[i];
        if (d < 0) continue;
        const aibox_qweights *a = &src->quant->qw[i];
        q->scale[d] = src->quant->scale[i], q->zp[d] = src->quant->zp[i];
        if (!a->w) continue;
        aibox_status s = aibox_quant_alloc_weights(q, d, src->nodes[i].n_param[0], a->out, err);
        if (s) {
            aibox_quant_free(&q);
            return s;
        }
        aibox_qweights *b = &q->qw[d];
        memcpy(b->w, a->w, src->nodes[i].n_param[0]);
        memcpy(b->bias, a->bias, (size_t)a->out * sizeof *b->bias);
        memcpy(b->wscale, a->wscale, (size_t)a->out * sizeof *b->wscale);
        b->wofs = a->wofs, b->float_product = a->float_product;
    }
    m->quant = q;
    return AIBOX_OK;
}

aibox_status aibox_model_extract(aibox_model **out, const aibox_model *src, int node, int *map,
                                 aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "extract: NULL output pointer");
    *out = NULL;
    aibox_status ws = need_weights(src, "extract", err);
    if (ws) return ws;
    if (node < 1 || node >= src->n_nodes)
        return aibox_fail(err, AIBOX_E_INVALID, "extract: node %d out of range 1..%d", node, src->n_nodes - 1);
    int n = src->n_nodes;
    int *keep = calloc((size_t)n, sizeof *keep);
    if (!keep) return aibox_fail(err, AIBOX_E_NOMEM, "extract: out of memory");
    keep[node] = 1, keep[0] = 1;
    for (int i = node; i >= 1; i--) /* topological order: inputs precede their users */
        if (keep[i])
            for (int j = 0; j < src->nodes[i].n_in; j++) keep[src->nodes[i].in[j]] = 1;
    aibox_model *m = NULL;
    aibox_status s = aibox_model_create(&m, src->in_c, src->in_h, src->in_w, err);
    for (int i = 0; i < n; i++) keep[i] = keep[i] ? (i == 0 ? 0 : -2) : -1; /* -2: to copy */
    for (int i = 1; i < n && !s; i++) {
        if (keep[i] != -2) continue;
        const aibox_node *sn = &src->nodes[i];
        int in[AIBOX_NODE_MAX_IN];
        for (int j = 0; j < sn->n_in; j++) in[j] = keep[sn->in[j]];
        int id = aibox_model_add_node(m, sn->kind, sn->n_in, in, &sn->settings);
        if (id < 0) {
            s = aibox_fail(err, (aibox_status)-id, "extract: %s", m->build_msg);
            break;
        }
        m->nodes[id].frozen = sn->frozen;
        keep[i] = id;
    }
    if (!s) s = aibox_model_alloc_params(m, 0, 0, err);
    for (int i = 1; i < n && !s; i++) {
        if (keep[i] < 0) continue;
        const aibox_node *sn = &src->nodes[i];
        aibox_node *dn = &m->nodes[keep[i]];
        for (int k = 0; k < 2; k++) {
            if (sn->n_param[k]) memcpy(m->params + dn->param_off[k], src->params + sn->param_off[k], sn->n_param[k] * sizeof(float));
            if (sn->n_state[k]) memcpy(m->state + dn->state_off[k], src->state + sn->state_off[k], sn->n_state[k] * sizeof(float));
        }
    }
    if (!s) s = aibox_meta_copy(&m->meta, &src->meta, err);
    if (!s && src->quant) s = extract_quant(m, src, keep, err);
    /* Node references in metadata ("aibox.tap.<name>" = node index) follow
     * the renumbering; taps that were cut away are dropped. */
    for (int i = 0; i < m->meta.count && !s; i++) {
        aibox_meta *e = &m->meta.items[i];
        if (strncmp(e->key, "aibox.tap.", 10) || e->type != AIBOX_META_INT) continue;
        e->i = (e->i >= 0 && e->i < n) ? keep[e->i] : -1;
    }
    if (s) {
        aibox_model_free(&m);
        free(keep);
        return s;
    }
    m->output = keep[node];
    if (map)
        for (int i = 0; i < n; i++) map[i] = keep[i];
    free(keep);
    *out = m;
    return AIBOX_OK;
}

int aibox_model_stride_node(const aibox_model *m, int stride)
{
    if (!m || stride < 1 || m->in_h % stride || m->in_w % stride) return -1;
    int h = m->in_h / stride, w = m->in_w / stride, last = aibox_model_output(m);
    for (int i = last; i >= 1; i--) /* the last node at that size ends the stage */
        if (m->nodes[i].h == h && m->nodes[i].w == w) return i;
    return -1;
}

static int is_pool(aibox_layer_kind k)
{
    return k == AIBOX_LAYER_AVGPOOL || k == AIBOX_LAYER_GLOBAL_AVGPOOL || k == AIBOX_LAYER_MAXPOOL;
}

int aibox_model_embedding_node(const aibox_model *m)
{
    if (!m) return -1;
    int out = aibox_model_output(m), pool = -1, spatial = -1;
    for (int i = 1; i <= out; i++) {
        const aibox_node *nd = &m->nodes[i];
        if (nd->h * nd->w > 1) spatial = i;
        if (is_pool(nd->kind) && nd->h * nd->w == 1 && nd->n_in >= 1 &&
            m->nodes[nd->in[0]].h * m->nodes[nd->in[0]].w > 1)
            pool = i;
    }
    if (pool < 0) return spatial;
    for (int i = pool + 1; i <= out; i++) { /* element-wise nodes fed by it */
        const aibox_node *nd = &m->nodes[i];
        if (nd->n_in == 1 && nd->in[0] == pool &&
            (nd->kind == AIBOX_LAYER_CLAMP || nd->kind == AIBOX_LAYER_QUANTIZE || nd->kind == AIBOX_LAYER_RELU ||
             nd->kind == AIBOX_LAYER_RELU6))
            pool = i;
    }
    return pool;
}

aibox_status aibox_model_set_output(aibox_model *m, int node)
{
    if (!m || node < 1 || node >= m->n_nodes) return AIBOX_E_INVALID;
    m->output = node;
    return AIBOX_OK;
}

int aibox_model_output(const aibox_model *m) { return m ? (m->output > 0 ? m->output : m->n_nodes - 1) : -1; }
int aibox_model_node_count(const aibox_model *m) { return m ? m->n_nodes : 0; }

aibox_layer_kind aibox_model_node_kind(const aibox_model *m, int node)
{
    if (!m || node < 0 || node >= m->n_nodes) return AIBOX_LAYER_KIND_COUNT;
    return m->nodes[node].kind;
}

int aibox_model_node_inputs(const aibox_model *m, int node, int *in, int max)
{
    if (!m || node < 0 || node >= m->n_nodes) return -1;
    const aibox_node *nd = &m->nodes[node];
    for (int j = 0; in && j < nd->n_in && j < max; j++) in[j] = nd->in[j];
    return nd->n_in;
}

void aibox_model_node_shape(const aibox_model *m, int node, int *c, int *h, int *w)
{
    int cc = 0, hh = 0, ww = 0;
    if (m && node >= 0 && node < m->n_nodes) cc = m->nodes[node].c, hh = m->nodes[node].h, ww = m->nodes[node].w;
    if (c) *c = cc;
    if (h) *h = hh;
    if (w) *w = ww;
}

void aibox_model_input_shape(const aibox_model *m, int *c, int *h, int *w) { aibox_model_node_shape(m, 0, c, h, w); }

size_t aibox_model_param_count(const aibox_model *m)
{
    size_t n = 0;
    if (!m) return 0;
    for (int i = 0; i < m->n_nodes; i++) n += m->nodes[i].n_param[0] + m->nodes[i].n_param[1];
    return n;
}

float *aibox_model_params(aibox_model *m) { return m ? m->params : NULL; }
aibox_status aibox_model_grads_ready(aibox_model *m, aibox_error *err)
{
    aibox_status s = need_weights(m, "gradients", err);
    if (s) return s;
    if (m->grads) return AIBOX_OK;
    m->grads = aibox_alloc((m->n_params ? m->n_params : 1) * sizeof(float));
    if (!m->grads)
        return aibox_fail(err, AIBOX_E_NOMEM, "model: cannot allocate gradients for %zu parameters", m->n_params);
    memset(m->grads, 0, m->n_params * sizeof(float));
    return AIBOX_OK;
}

float *aibox_model_grads(aibox_model *m) { return aibox_model_grads_ready(m, NULL) ? NULL : m->grads; }

float *aibox_model_node_param(aibox_model *m, int node, int index, size_t *count)
{
    if (count) *count = 0;
    if (!m || !m->finished || m->weightless || node < 0 || node >= m->n_nodes || index < 0 || index > 1) return NULL;
    aibox_node *nd = &m->nodes[node];
    if (!nd->n_param[index]) return NULL;
    if (count) *count = nd->n_param[index];
    return m->params + nd->param_off[index];
}

float *aibox_model_node_state(aibox_model *m, int node, int index, size_t *count)
{
    if (count) *count = 0;
    if (!m || !m->finished || m->weightless || node < 0 || node >= m->n_nodes || index < 0 || index > 1) return NULL;
    aibox_node *nd = &m->nodes[node];
    if (!nd->n_state[index]) return NULL;
    if (count) *count = nd->n_state[index];
    return m->state + nd->state_off[index];
}

void aibox_model_zero_grad(aibox_model *m)
{
    if (aibox_model_grads_ready(m, NULL) == AIBOX_OK) memset(m->grads, 0, m->n_params * sizeof(float));
}

aibox_status aibox_model_set_frozen(aibox_model *m, int node, int frozen)
{
    if (!m || node < 0 || node >= m->n_nodes) return AIBOX_E_INVALID;
    m->nodes[node].frozen = frozen ? 1 : 0;
    return AIBOX_OK;
}

const char *aibox_model_last_error(const aibox_model *m) { return m ? m->build_msg : "NULL model"; }

void aibox_model_summary(const aibox_model *m, void (*print)(void *user, const char *line), void *user)
{
    if (!m || !print) return;
    char line[256];
    for (int i = 0; i < m->n_nodes; i++) {
        const aibox_node *nd = &m->nodes[i];
        int o = snprintf(line, sizeof line, "%4d %-18s", i, aibox_layer_kind_name(nd->kind));
        for (int j = 0; j < nd->n_in && o < 120; j++) o += snprintf(line + o, sizeof line - o, "%s%d", j ? "," : " <- ", nd->in[j]);
        snprintf(line + o, sizeof line - o, "  -> %dx%dx%d  params %zu%s", nd->c, nd->h, nd->w,
                 nd->n_param[0] + nd->n_param[1], nd->frozen ? " (frozen)" : "");
        print(user, line);
    }
    snprintf(line, sizeof line, "total trainable parameters: %zu", aibox_model_param_count(m));
    print(user, line);
}

/* ---------------------------------------------------------------- metadata */
aibox_status aibox_model_set_meta_str(aibox_model *m, const char *key, const char *value, aibox_error *err)
{
    if (!m) return aibox_fail(err, AIBOX_E_INVALID, "model: NULL model");
    return aibox_meta_set_str(&m->meta, key, value, err);
}
aibox_status aibox_model_set_meta_int(aibox_model *m, const char *key, int64_t value, aibox_error *err)
{
    if (!m) return aibox_fail(err, AIBOX_E_INVALID, "model: NULL model");
    return aibox_meta_set_int(&m->meta, key, value, err);
}
aibox_status aibox_model_set_meta_float(aibox_model *m, const char *key, double value, aibox_error *err)
{
    if (!m) return aibox_fail(err, AIBOX_E_INVALID, "model: NULL model");
    return aibox_meta_set_float(&m->meta, key, value, err);
}
aibox_status aibox_model_set_meta_strs(aibox_model *m, const char *key, int n, const char *const *values,
                                       aibox_error *err)
{
    if (!m) return aibox_fail(err, AIBOX_E_INVALID, "model: NULL model");
    return aibox_meta_set_strs(&m->meta, key, n, values, err);
}
aibox_status aibox_model_set_meta_floats(aibox_model *m, const char *key, int n, const double *values,
                                         aibox_error *err)
{
    if (!m) return aibox_fail(err, AIBOX_E_INVALID, "model: NULL model");
    return aibox_meta_set_floats(&m->meta, key, n, values, err);
}

aibox_status aibox_model_set_meta_ints(aibox_model *m, const char *key, int n, const int64_t *values, aibox_error *err)
{
    if (!m) return aibox_fail(err, AIBOX_E_INVALID, "model: NULL model");
    return aibox_meta_set_ints(&m->meta, key, n, values, err);
}

static const aibox_meta *find(const aibox_model *m, const char *key, aibox_meta_type t)
{
    if (!m || !key) return NULL;
    const aibox_meta *e = aibox_meta_find(&m->meta, key);
    return e && e->type == t ? e : NULL;
}
aibox_status aibox_model_get_meta_str(const aibox_model *m, const char *key, const char **value)
{
    const aibox_meta *e = find(m, key, AIBOX_META_STR);
    if (!e) return AIBOX_E_NOTFOUND;
    *value = e->s;
    return AIBOX_OK;
}
aibox_status aibox_model_get_meta_int(const aibox_model *m, const char *key, int64_t *value)
{
    const aibox_meta *e = find(m, key, AIBOX_META_INT);
    if (!e) return AIBOX_E_NOTFOUND;
    *value = e->i;
    return AIBOX_OK;
}
aibox_status aibox_model_get_meta_float(const aibox_model *m, const char *key, double *value)
{
    const aibox_meta *e = find(m, key, AIBOX_META_FLOAT);
    if (!e) return AIBOX_E_NOTFOUND;
    *value = e->f;
    return AIBOX_OK;
}
aibox_status aibox_model_get_meta_strs(const aibox_model *m, const char *key, int *n, const char *const **values)
{
    const aibox_meta *e = find(m, key, AIBOX_META_STRS);
    if (!e) return AIBOX_E_NOTFOUND;
    *n = e->n;
    *values = (const char *const *)e->strs;
    return AIBOX_OK;
}
aibox_status aibox_model_get_meta_floats(const aibox_model *m, const char *key, int *n, const double **values)
{
    const aibox_meta *e = find(m, key, AIBOX_META_FLOATS);
    if (!e) return AIBOX_E_NOTFOUND;
    *n = e->n;
    *values = e->floats;
    return AIBOX_OK;
}
aibox_status aibox_model_get_meta_ints(const aibox_model *m, const char *key, int *n, const int64_t **values)
{
    const aibox_meta *e = find(m, key, AIBOX_META_INTS);
    if (!e) return AIBOX_E_NOTFOUND;
    *n = e->n;
    *values = e->ints;
    return AIBOX_OK;
}
aibox_meta_kind aibox_model_meta_kind(const aibox_model *m, const char *key)
{
    const aibox_meta *e = m && key ? aibox_meta_find(&m->meta, key) : NULL;
    /* the container's type codes are the public kinds, one to one */
    return e ? (aibox_meta_kind)e->type : AIBOX_META_NONE;
}
int aibox_model_meta_count(const aibox_model *m) { return m ? m->meta.count : 0; }
const char *aibox_model_meta_key(const aibox_model *m, int i)
{
    return m && i >= 0 && i < m->meta.count ? m->meta.items[i].key : NULL;
}

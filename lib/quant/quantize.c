/* Post-training quantisation (include/aibox/quant.h): fold, calibrate,
 * quantise. The integer plan that then runs the model is lib/nn/qplan.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

#define BINS 2048 /* per node, for the percentile choice */

/* The graph of m again without the batch norms that follow a convolution
 * only they read: each folded into that convolution's weights and bias. */
static aibox_status fold_copy(const aibox_model *m, aibox_model **out, aibox_error *err)
{
    const int N = m->n_nodes, last = m->output;
    int *map = malloc(sizeof(int) * (size_t)N), *users = calloc((size_t)N, sizeof(int)), *folded = calloc((size_t)N, sizeof(int));
    aibox_model *f = NULL;
    aibox_status s = AIBOX_OK;
    if (!map || !users || !folded) {
        s = aibox_fail(err, AIBOX_E_NOMEM, "quantize: out of memory");
        goto done;
    }
    for (int i = 1; i < N; i++)
        for (int k = 0; k < m->nodes[i].n_in; k++) users[m->nodes[i].in[k]]++;
    if ((s = aibox_model_create(&f, m->in_c, m->in_h, m->in_w, err))) goto done;
    map[0] = 0;
    for (int i = 1; i < N && i <= last; i++) {
        const aibox_node *nd = &m->nodes[i];
        int p = nd->in[0];
        if (nd->kind == AIBOX_LAYER_BATCHNORM && p > 0 && m->nodes[p].kind == AIBOX_LAYER_CONV2D && users[p] == 1) {
            map[i] = map[p], folded[p] = i; /* conv p takes batch norm i */
            continue;
        }
        int in[AIBOX_NODE_MAX_IN];
        for (int k = 0; k < nd->n_in; k++) in[k] = map[nd->in[k]];
        aibox_node_settings set = nd->settings;
        if (nd->kind == AIBOX_LAYER_CONV2D) {
            int bn = 0;
            for (int j = i + 1; j < N && j <= last; j++)
                if (m->nodes[j].n_in == 1 && m->nodes[j].in[0] == i && m->nodes[j].kind == AIBOX_LAYER_BATCHNORM &&
                    users[i] == 1)
                    bn = 1;
            if (bn) set.conv.bias = 1; /* the folded shift becomes its bias */
        }
        map[i] = aibox_model_add_node(f, nd->kind, nd->n_in, in, &set);
        if (map[i] < 0) {
            s = aibox_fail(err, (aibox_status)-map[i], "quantize: node %d: %s", i, aibox_model_last_error(f));
            goto done;
        }
    }
    if ((s = aibox_model_set_output(f, map[last])) || (s = aibox_model_finish(f, 1, err))) goto done;
    if ((s = aibox_meta_copy(&f->meta, &m->meta, err))) goto done;
    for (int i = 1; i <= last; i++) {
        const aibox_node *nd = &m->nodes[i];
        if (nd->kind == AIBOX_LAYER_BATCHNORM && map[i] == map[nd->in[0]] && folded[nd->in[0]] == i) continue;
        const aibox_node *fn = &f->nodes[map[i]];
        for (int k = 0; k < 2; k++) {
            if (nd->n_param[k]) memcpy(f->params + fn->param_off[k], m->params + nd->param_off[k], nd->n_param[k] * sizeof(float));
            else if (fn->n_param[k]) memset(f->params + fn->param_off[k], 0, fn->n_param[k] * sizeof(float));
            if (nd->n_state[k]) memcpy(f->state + fn->state_off[k], m->state + nd->state_off[k], nd->n_state[k] * sizeof(float));
        }
        int b = folded[i];
        if (!b) continue;
        /* w' = w gamma / sqrt(var + eps), b' = (b - mean) gamma / sqrt(var + eps) + beta, in double */
        const aibox_node *bn = &m->nodes[b];
        const float *g = m->params + bn->param_off[0], *beta = m->params + bn->param_off[1];
        const float *mean = m->state + bn->state_off[0], *var = m->state + bn->state_off[1];
        int oc = nd->settings.conv.out_channels;
        size_t per = fn->n_param[0] / (size_t)oc;
        float *w = f->params + fn->param_off[0], *bias = f->params + fn->param_off[1];
        for (int o = 0; o < oc; o++) {
            double sc = g[o] / sqrt((double)var[o] + bn->settings.batchnorm.eps);
            for (size_t k = 0; k < per; k++) w[(size_t)o * per + k] = (float)(w[(size_t)o * per + k] * sc);
            bias[o] = (float)(((double)bias[o] - mean[o]) * sc + beta[o]);
        }
    }
    *out = f;
    f = NULL;
done:
    aibox_model_free(&f);
    free(map), free(users), free(folded);
    return s;
}

/* Which node's range a node's output uses: ReLU-like activations right
 * after a convolution, dense layer or add that only they read lend theirs to
 * it (it then clamps, as TFLite's fused activations); domain-keeping ops
 * (pools, flatten, dropout, padding, nearest upsampling) take their input's. */
static int keeps_domain(aibox_layer_kind k)
{
    return k == AIBOX_LAYER_MAXPOOL || k == AIBOX_LAYER_AVGPOOL || k == AIBOX_LAYER_GLOBAL_AVGPOOL ||
           k == AIBOX_LAYER_FLATTEN || k == AIBOX_LAYER_DROPOUT || k == AIBOX_LAYER_ZEROPAD ||
           k == AIBOX_LAYER_UPSAMPLE_NEAREST;
}
static int clamp_like(aibox_layer_kind k)
{
    return k == AIBOX_LAYER_RELU || k == AIBOX_LAYER_RELU6 || k == AIBOX_LAYER_CLAMP;
}

static int users_of(const aibox_model *f, int p)
{
    int users = 0;
    for (int j = 1; j <= f->output; j++)
        for (int k = 0; k < f->nodes[j].n_in; k++) users += f->nodes[j].in[k] == p;
    return users;
}

/* Node i is a ReLU-like activation after a convolution, dense layer or add
 * that only it reads: that producer takes i's domain. */
static int lends_domain(const aibox_model *f, int i)
{
    const aibox_node *nd = &f->nodes[i];
    int p = nd->in[0];
    if (!clamp_like(nd->kind) || p < 1 || users_of(f, p) != 1) return 0;
    aibox_layer_kind k = f->nodes[p].kind;
    return k == AIBOX_LAYER_CONV2D || k == AIBOX_LAYER_DENSE || k == AIBOX_LAYER_ADD;
}

/* Node p's only consumer lends it its domain (p rounds after that consumer). */
static int lends_to_consumer(const aibox_model *f, int p)
{
    for (int j = p + 1; j <= f->output; j++)
        if (f->nodes[j].n_in >= 1 && f->nodes[j].in[0] == p) return lends_domain(f, j);
    return 0;
}

typedef struct range {
    double lo, hi;
    double *hist; /* BINS over [lo, hi] (percentile) */
    double count;
} range;

/* Scale and zero point of the uint8 domain covering [lo, hi] and 0. */
static void domain(double lo, double hi, float *scale, int32_t *zp)
{
    lo = lo < 0 ? lo : 0, hi = hi > 0 ? hi : 0;
    if (!(hi - lo > 1e-12)) hi = lo + 1e-6;
    double sc = (hi - lo) / 255.0;
    long z = lround(-lo / sc);
    *scale = (float)sc, *zp = (int32_t)(z < 0 ? 0 : z > 255 ? 255 : z);
}

/* The folded model's activation domains (q->scale, q->zp) from running it
 * on the calibration inputs. */
static aibox_status calibrate(aibox_model *f, const float *calib, int n, const aibox_quantize_opts *o, double pct,
                              aibox_quant *q, aibox_error *err)
{
    const int N = f->n_nodes, last = f->output;
    aibox_ctx *ctx = NULL;
    range *r = calloc((size_t)N, sizeof *r);
    aibox_status s = AIBOX_OK;
    if (!r) return aibox_fail(err, AIBOX_E_NOMEM, "quantize: out of memory");
    /* pass 1: min/max per node (pass 2, percentile: histograms over them) */
    size_t in_n = (size_t)f->in_c * f->in_h * f->in_w;
    if ((s = aibox_ctx_create(&ctx, f, &(aibox_ctx_opts){.threads = o->threads}, err))) goto done;
    for (int i = 0; i <= last; i++) r[i].lo = INFINITY, r[i].hi = -INFINITY;
    for (int pass = 0; pass < (o->method == AIBOX_CALIB_PERCENTILE ? 2 : 1); pass++) {
        if (pass == 1)
            for (int i = 0; i <= last; i++)
                if (!(r[i].hist = calloc(BINS, sizeof(double)))) {
                    s = aibox_fail(err, AIBOX_E_NOMEM, "quantize: out of memory");
                    goto done;
                }
        for (int k = 0; k < n; k++) {
            if ((s = aibox_ctx_infer(ctx, f, calib + (size_t)k * in_n, 1, err))) goto done;
            for (int i = 0; i <= last; i++) {
                int c, h, w;
                const float *a = aibox_ctx_node_output(ctx, i, &c, &h, &w);
                size_t cnt = (size_t)c * h * w;
                for (size_t j = 0; j < cnt; j++) {
                    double v = a[j];
                    if (!isfinite(v)) {
                        s = aibox_fail(err, AIBOX_E_INVALID, "quantize: calibration input %d gives a non-finite "
                                       "value at node %d", k, i);
                        goto done;
                    }
                    if (pass == 0) {
                        r[i].lo = v < r[i].lo ? v : r[i].lo, r[i].hi = v > r[i].hi ? v : r[i].hi;
                    } else {
                        double span = r[i].hi - r[i].lo;
                        int b = span > 0 ? (int)((v - r[i].lo) / span * (BINS - 1) + 0.5) : 0;
                        r[i].hist[b < 0 ? 0 : b >= BINS ? BINS - 1 : b]++, r[i].count++;
                    }
                }
            }
        }
    }
    if (o->method == AIBOX_CALIB_PERCENTILE) /* the central pct % of the values seen */
        for (int i = 0; i <= last; i++) {
            double tail = r[i].count * (100.0 - pct) / 100.0, acc = 0, span = r[i].hi - r[i].lo;
            int a = 0, b = BINS - 1;
            while (a < BINS - 1 && acc + r[i].hist[a] <= tail) acc += r[i].hist[a++];
            for (acc = 0; b > 0 && acc + r[i].hist[b] <= tail;) acc += r[i].hist[b--];
            double lo = r[i].lo + span * a / (BINS - 1), hi = r[i].lo + span * b / (BINS - 1);
            r[i].lo = lo, r[i].hi = hi > lo ? hi : lo;
        }
    /* domains, in node order (a node's input is settled before it) */
    for (int i = 0; i <= last; i++) domain(r[i].lo, r[i].hi, &q->scale[i], &q->zp[i]);
    for (int i = 1; i <= last; i++) {
        const aibox_node *nd = &f->nodes[i];
        int p = nd->in[0];
        if (keeps_domain(nd->kind)) q->scale[i] = q->scale[p], q->zp[i] = q->zp[p];
        else if (nd->kind == AIBOX_LAYER_SOFTMAX) q->scale[i] = 1.0f / 256.0f, q->zp[i] = 0;
        else if (lends_domain(f, i)) q->scale[p] = q->scale[i], q->zp[p] = q->zp[i];
    }
done:
    aibox_ctx_free(&ctx);
    for (int i = 0; i < N; i++) free(r[i].hist);
    free(r);
    return s;
}

/* Weights per output channel, symmetric; biases on in_scale x wscale; then
 * q goes to f (whose floats become the dequantised integers) and a plan is
 * built once, so a model the plan cannot run is refused here. */
static aibox_status finish_quant(aibox_model *f, aibox_quant *q, aibox_error *err)
{
    aibox_status s;
    for (int i = 1; i <= f->output; i++) {
        const aibox_node *nd = &f->nodes[i];
        int oc = aibox_quant_out_channels(nd);
        if (!oc) continue;
        size_t per = nd->n_param[0] / (size_t)oc;
        if ((s = aibox_quant_alloc_weights(q, i, nd->n_param[0], oc, err))) return s;
        aibox_qweights *qw = &q->qw[i];
        float *w = f->params + nd->param_off[0];
        const float *b = nd->n_param[1] ? f->params + nd->param_off[1] : NULL;
        double sin = q->scale[nd->in[0]];
        for (int o2 = 0; o2 < oc; o2++) {
            /* the floats become the dequantised integers below anyway */
            qw->wscale[o2] = aibox_quant_weights_row(w + (size_t)o2 * per, per, qw->w + (size_t)o2 * per);
            double bq = b ? b[o2] / (sin * qw->wscale[o2]) : 0;
            bq = bq < -16777216.0 ? -16777216.0 : bq > 16777216.0 ? 16777216.0 : bq;
            qw->bias[o2] = (int32_t)lround(bq);
        }
    }
    aibox_model_set_quant(f, q);
    aibox_quant_dequantize(f);
    aibox_ctx *ctx = NULL;
    s = aibox_ctx_create(&ctx, f, NULL, err);
    aibox_ctx_free(&ctx);
    return s;
}

/* Options checked, m folded (*f) and a table for its domains (*q). */
static aibox_status prepare(const aibox_model *m, const float *calib, int n, const aibox_quantize_opts *opts,
                            aibox_quantize_opts *o, double *pct, aibox_model **f, aibox_quant **q, aibox_error *err)
{
    if (!m || !m->finished || m->weightless) return aibox_fail(err, AIBOX_E_STATE, "quantize: the model is not finished");
    if (!calib || n < 1) return aibox_fail(err, AIBOX_E_INVALID, "quantize: no calibration inputs");
    if (m->quant) return aibox_fail(err, AIBOX_E_INVALID, "quantize: the model is 8-bit already");
    *o = opts ? *opts : (aibox_quantize_opts){0};
    if (o->method != AIBOX_CALIB_MINMAX && o->method != AIBOX_CALIB_PERCENTILE)
        return aibox_fail(err, AIBOX_E_INVALID, "quantize: unknown calibration method %d", (int)o->method);
    *pct = o->percentile > 0 ? o->percentile : 99.99;
    if (!(*pct > 50 && *pct <= 100)) return aibox_fail(err, AIBOX_E_INVALID, "quantize: percentile %g outside (50, 100]", *pct);
    aibox_status s = fold_copy(m, f, err);
    if (s) return s;
    for (int i = 1; i <= (*f)->output; i++) { /* refuse before calibrating what the plan cannot run */
        aibox_layer_kind k = (*f)->nodes[i].kind;
        if (k == AIBOX_LAYER_BATCHNORM || k == AIBOX_LAYER_UPSAMPLE_BILINEAR) {
            aibox_model_free(f);
            return aibox_fail(err, AIBOX_E_UNSUPPORTED, "quantize: node %d is a %s, which has no integer kernel%s", i,
                              aibox_layer_kind_name(k), k == AIBOX_LAYER_BATCHNORM ? " (only a batch norm right after a "
                              "convolution folds)" : "");
        }
    }
    if (!(*q = aibox_quant_create((*f)->n_nodes))) {
        aibox_model_free(f);
        return aibox_fail(err, AIBOX_E_NOMEM, "quantize: out of memory");
    }
    return AIBOX_OK;
}

aibox_status aibox_model_quantize(aibox_model **out, const aibox_model *m, const float *calib, int n,
                                  const aibox_quantize_opts *opts, aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "quantize: NULL output pointer");
    *out = NULL;
    aibox_quantize_opts o;
    double pct = 0;
    aibox_model *f = NULL;
    aibox_quant *q = NULL;
    aibox_status s = prepare(m, calib, n, opts, &o, &pct, &f, &q, err);
    if (!s && !(s = calibrate(f, calib, n, &o, pct, q, err)) && !(s = finish_quant(f, q, err))) {
        *out = f;
        return AIBOX_OK;
    }
    if (f && f->quant == q) q = NULL; /* handed over: freed with f */
    aibox_quant_free(&q);
    aibox_model_free(&f);
    return s;
}

/* The training graph of quantisation-aware fine-tuning: f's nodes with a
 * fake-quantisation node (AIBOX_LAYER_QUANTIZE: round to the 8-bit grid of
 * the node's domain, clamp, gradients straight through inside the range)
 * after the input and after every node whose output the integer plan rounds
 * to a domain of its own. at[i]: where f's node i (its parameters) is in g;
 * the output is the last node's, before a softmax (the trainer takes logits). */
static aibox_status qat_graph(const aibox_model *f, const aibox_quant *q, aibox_model **out, int *at, aibox_error *err)
{
    const int N = f->n_nodes, last = f->output;
    int *rd = malloc(sizeof(int) * (size_t)N); /* what f's node i's consumers read in g */
    aibox_model *g = NULL;
    aibox_status s = rd ? aibox_model_create(&g, f->in_c, f->in_h, f->in_w, err)
                        : aibox_fail(err, AIBOX_E_NOMEM, "quantize: out of memory");
    if (s) goto done;
    at[0] = 0;
    rd[0] = aibox_quantize(g, 0, q->scale[0], (float)q->zp[0], 0.0f, 255.0f);
    int out_node = -1;
    for (int i = 1; i <= last && rd[0] > 0; i++) {
        const aibox_node *nd = &f->nodes[i];
        if (i == last && nd->kind == AIBOX_LAYER_SOFTMAX) {
            out_node = rd[nd->in[0]];
            break;
        }
        int in[AIBOX_NODE_MAX_IN];
        for (int k = 0; k < nd->n_in; k++) in[k] = rd[nd->in[k]];
        at[i] = rd[i] = aibox_model_add_node(g, nd->kind, nd->n_in, in, &nd->settings);
        if (rd[i] < 0) break;
        if (!keeps_domain(nd->kind) && nd->kind != AIBOX_LAYER_SOFTMAX && !lends_to_consumer(f, i))
            rd[i] = aibox_quantize(g, rd[i], q->scale[i], (float)q->zp[i], 0.0f, 255.0f);
        out_node = rd[i];
    }
    if (out_node < 0 || rd[0] < 0) {
        s = aibox_fail(err, AIBOX_E_INVALID, "quantize: the training graph: %s", aibox_model_last_error(g));
        goto done;
    }
    if ((s = aibox_model_set_output(g, out_node)) || (s = aibox_model_finish(g, 1, err))) goto done;
    for (int i = 1; i <= last; i++) {
        if (i == last && f->nodes[i].kind == AIBOX_LAYER_SOFTMAX) break;
        const aibox_node *a = &f->nodes[i], *b = &g->nodes[at[i]];
        for (int k = 0; k < 2; k++) {
            if (a->n_param[k]) memcpy(g->params + b->param_off[k], f->params + a->param_off[k], a->n_param[k] * sizeof(float));
            if (a->n_state[k]) memcpy(g->state + b->state_off[k], f->state + a->state_off[k], a->n_state[k] * sizeof(float));
        }
    }
    *out = g;
    g = NULL;
done:
    aibox_model_free(&g);
    free(rd);
    return s;
}

aibox_status aibox_model_quantize_aware(aibox_model **out, const aibox_model *m, const float *calib, int n,
                                        const aibox_quantize_opts *opts, aibox_batch_source *train, int batch,
                                        aibox_batch_source *val, const aibox_train_opts *to, int threads,
                                        aibox_train_result *res, aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "quantize: NULL output pointer");
    *out = NULL;
    if (!train || !to) return aibox_fail(err, AIBOX_E_INVALID, "quantize: NULL training source or options");
    aibox_quantize_opts o;
    double pct = 0;
    aibox_model *f = NULL, *g = NULL;
    aibox_quant *q = NULL;
    int *at = NULL;
    aibox_status s = prepare(m, calib, n, opts, &o, &pct, &f, &q, err);
    if (!s) s = calibrate(f, calib, n, &o, pct, q, err);
    if (!s && !(at = calloc((size_t)f->n_nodes, sizeof *at))) s = aibox_fail(err, AIBOX_E_NOMEM, "quantize: out of memory");
    if (!s) s = qat_graph(f, q, &g, at, err);
    if (!s) {
        aibox_train_opts t = *to;
        t.fake_quant_weights = 1;
        s = aibox_train(g, train, batch, val, &t, threads, res, err);
    }
    if (!s) {
        for (int i = 1; i <= f->output; i++) {
            if (i == f->output && f->nodes[i].kind == AIBOX_LAYER_SOFTMAX) break;
            const aibox_node *a = &f->nodes[i], *b = &g->nodes[at[i]];
            for (int k = 0; k < 2; k++)
                if (a->n_param[k]) memcpy(f->params + a->param_off[k], g->params + b->param_off[k], a->n_param[k] * sizeof(float));
        }
        s = finish_quant(f, q, err);
    }
    aibox_model_free(&g);
    free(at);
    if (!s) {
        *out = f;
        return AIBOX_OK;
    }
    if (f && f->quant == q) q = NULL;
    aibox_quant_free(&q);
    aibox_model_free(&f);
    return s;
}

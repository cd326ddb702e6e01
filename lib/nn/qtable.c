/* An 8-bit model's quantisation table (nn.h; what it means: lib/quant/quant.h). */
#include <math.h>
#include <stdlib.h>

#include "nn/nn.h"

aibox_quant *aibox_quant_create(int n_nodes)
{
    aibox_quant *q = calloc(1, sizeof *q);
    if (!q || n_nodes < 1) {
        free(q);
        return NULL;
    }
    q->n_nodes = n_nodes;
    q->scale = calloc((size_t)n_nodes, sizeof *q->scale);
    q->zp = calloc((size_t)n_nodes, sizeof *q->zp);
    q->qw = calloc((size_t)n_nodes, sizeof *q->qw);
    if (!q->scale || !q->zp || !q->qw) aibox_quant_free(&q);
    return q;
}

void aibox_quant_free(aibox_quant **pq)
{
    if (!pq || !*pq) return;
    aibox_quant *q = *pq;
    for (int i = 0; q->qw && i < q->n_nodes; i++) {
        free(q->qw[i].w);
        free(q->qw[i].bias);
        free(q->qw[i].wscale);
    }
    free(q->qw);
    free(q->scale);
    free(q->zp);
    free(q);
    *pq = NULL;
}

aibox_status aibox_quant_alloc_weights(aibox_quant *q, int i, size_t count, int out, aibox_error *err)
{
    aibox_qweights *w = &q->qw[i];
    free(w->w), free(w->bias), free(w->wscale);
    w->w = malloc(count ? count : 1);
    w->bias = calloc((size_t)out, sizeof *w->bias);
    w->wscale = calloc((size_t)out, sizeof *w->wscale);
    w->out = out;
    w->wofs = 0;
    if (!w->w || !w->bias || !w->wscale) {
        free(w->w), free(w->bias), free(w->wscale);
        w->w = NULL, w->bias = NULL, w->wscale = NULL;
        return aibox_fail(err, AIBOX_E_NOMEM, "quantisation: out of memory for node %d's weights", i);
    }
    return AIBOX_OK;
}

void aibox_quant_dequantize(aibox_model *m)
{
    aibox_quant *q = m->quant;
    for (int i = 1; q && i < m->n_nodes && i < q->n_nodes; i++) {
        const aibox_qweights *w = &q->qw[i];
        const aibox_node *nd = &m->nodes[i];
        if (!w->w || w->out < 1) continue;
        float *p0 = m->params + nd->param_off[0], *p1 = nd->n_param[1] ? m->params + nd->param_off[1] : NULL;
        size_t per = nd->n_param[0] / (size_t)w->out;
        double in_scale = q->scale[nd->in[0]];
        for (int o = 0; o < w->out; o++) {
            for (size_t k = 0; k < per; k++)
                p0[(size_t)o * per + k] = (float)((double)w->wscale[o] * (w->w[(size_t)o * per + k] + w->wofs));
            if (p1) p1[o] = (float)((double)w->bias[o] * in_scale * w->wscale[o]);
        }
    }
}

int aibox_quant_out_channels(const aibox_node *nd)
{
    return nd->kind == AIBOX_LAYER_CONV2D ? nd->settings.conv.out_channels
           : nd->kind == AIBOX_LAYER_DENSE ? nd->settings.dense.units : 0;
}

float aibox_quant_weights_row(float *w, size_t n, int8_t *q)
{
    double mx = 0;
    /* a comparison, not fmax: GCC 12's aarch64 vectoriser crashes on a
     * double fmax reduction over floats (NaN is skipped either way) */
    for (size_t k = 0; k < n; k++) {
        double a = fabs((double)w[k]);
        if (a > mx) mx = a;
    }
    float sc = mx > 0 ? (float)(mx / 127.0) : 1.0f;
    for (size_t k = 0; k < n; k++) {
        long v = lroundf(w[k] / sc);
        v = v < -127 ? -127 : v > 127 ? 127 : v;
        if (q) q[k] = (int8_t)v;
        w[k] = sc * (float)v;
    }
    return sc;
}

void aibox_model_set_quant(aibox_model *m, aibox_quant *q)
{
    aibox_quant_free(&m->quant);
    m->quant = q;
}

int aibox_model_quantized(const aibox_model *m) { return m && m->quant ? 1 : 0; }

void aibox_model_dequantize(aibox_model *m)
{
    if (m) aibox_quant_free(&m->quant);
}

/* Grad-CAM for classifiers (include/aibox/explain.h): one forward and one
 * backward on a probe context (lib/nn/nn.h), which keeps every node's own
 * activation and gradient with inference behaviour and writes nothing into
 * the model. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

struct aibox_gradcam {
    const aibox_model *m;
    aibox_preproc pp;
    aibox_ctx *ctx;
    int node, score; /* the node weighed; the node whose values are the class scores */
    int classes;
    int c, h, w;     /* the node's shape at the preprocessing's size */
    float *input;    /* pp.channels x pp.height x pp.width */
    float *onehot;   /* classes */
    float *cam;      /* h x w */
    double *alpha, *acc; /* c; h x w */
};

/* The class scores: the output, or the input of the softmax a model ends in
 * (behind nodes that only reshape or re-quantise, as
 * aibox_model_outputs_probabilities looks for it). */
static int score_node(const aibox_model *m)
{
    int out = aibox_model_output(m);
    if (!aibox_model_outputs_probabilities(m)) return out;
    for (int i = out; i > 0;) {
        int in;
        if (aibox_model_node_inputs(m, i, &in, 1) != 1) return out;
        if (aibox_model_node_kind(m, i) == AIBOX_LAYER_SOFTMAX) return in;
        i = in;
    }
    return out;
}

int aibox_gradcam_default_node(const aibox_model *m)
{
    if (!m || !m->finished) return -1;
    int s = score_node(m), best = -1;
    if (m->nodes[s].h * m->nodes[s].w != 1) return -1; /* not one score per class */
    unsigned char *dep = calloc((size_t)m->n_nodes, 1); /* the score depends on node i */
    if (!dep) return -1;
    dep[s] = 1;
    for (int i = s; i > 0; i--)
        if (dep[i])
            for (int j = 0; j < m->nodes[i].n_in; j++) dep[m->nodes[i].in[j]] = 1;
    for (int i = s - 1; i > 0 && best < 0; i--)
        if (dep[i] && (int64_t)m->nodes[i].h * m->nodes[i].w > 1) best = i;
    free(dep);
    return best;
}

void aibox_gradcam_free(aibox_gradcam **pg)
{
    if (!pg || !*pg) return;
    aibox_gradcam *g = *pg;
    aibox_ctx_free(&g->ctx);
    free(g->input), free(g->onehot), free(g->cam), free(g->alpha), free(g->acc), free(g);
    *pg = NULL;
}

aibox_status aibox_gradcam_create(aibox_gradcam **out, const aibox_model *m, int node, int threads, aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "grad-cam: NULL output pointer");
    *out = NULL;
    if (!m) return aibox_fail(err, AIBOX_E_INVALID, "grad-cam: NULL model");
    if (!m->finished || m->weightless)
        return aibox_fail(err, AIBOX_E_STATE, "grad-cam: the model is not finished or has no weights");
    const char *task = NULL;
    if (!aibox_model_get_meta_str(m, AIBOX_META_TASK, &task) && strcmp(task, "classify"))
        return aibox_fail(err, AIBOX_E_UNSUPPORTED,
                          "grad-cam: a %s model is an anomaly detector, not a classifier (its maps are its heatmaps)",
                          task);
    int s = score_node(m);
    if (m->nodes[s].h * m->nodes[s].w != 1)
        return aibox_fail(err, AIBOX_E_UNSUPPORTED,
                          "grad-cam: the model's output (node %d, %dx%dx%d) is not one score per class", s,
                          m->nodes[s].c, m->nodes[s].h, m->nodes[s].w);
    if (node == -1) {
        node = aibox_gradcam_default_node(m);
        if (node < 0)
            return aibox_fail(err, AIBOX_E_UNSUPPORTED, "grad-cam: the model has no spatial map before its scores");
    }
    if (node < 1 || node >= s)
        return aibox_fail(err, AIBOX_E_INVALID, "grad-cam: node %d is not between the input and the scores (node %d)",
                          node, s);
    aibox_gradcam *g = calloc(1, sizeof *g);
    if (!g) return aibox_fail(err, AIBOX_E_NOMEM, "grad-cam: out of memory");
    g->m = m, g->node = node, g->score = s, g->classes = m->nodes[s].c;
    aibox_status st = aibox_preproc_from_model(&g->pp, m, err);
    if (!st)
        st = aibox_ctx_create_probe(&g->ctx, m,
                                    &(aibox_ctx_opts){.height = g->pp.height, .width = g->pp.width, .threads = threads},
                                    err);
    if (!st) {
        aibox_ctx_node_output(g->ctx, node, &g->c, &g->h, &g->w);
        size_t hw = (size_t)g->h * g->w;
        g->input = malloc(sizeof(float) * (size_t)g->pp.channels * g->pp.height * g->pp.width);
        g->onehot = calloc((size_t)g->classes, sizeof(float));
        g->cam = malloc(sizeof(float) * hw);
        g->alpha = malloc(sizeof(double) * (size_t)g->c);
        g->acc = malloc(sizeof(double) * hw);
        if (!g->input || !g->onehot || !g->cam || !g->alpha || !g->acc)
            st = aibox_fail(err, AIBOX_E_NOMEM, "grad-cam: out of memory");
    }
    if (st) {
        aibox_gradcam_free(&g);
        return st;
    }
    *out = g;
    return AIBOX_OK;
}

int aibox_gradcam_node(const aibox_gradcam *g, int *c, int *h, int *w)
{
    if (!g) return -1;
    if (c) *c = g->c;
    if (h) *h = g->h;
    if (w) *w = g->w;
    return g->node;
}

aibox_status aibox_gradcam_run_input(aibox_gradcam *g, const float *input, int label, aibox_gradcam_result *res,
                                     aibox_error *err)
{
    if (!g || !input || !res) return aibox_fail(err, AIBOX_E_INVALID, "grad-cam: NULL argument");
    if (label < -1 || label >= g->classes)
        return aibox_fail(err, AIBOX_E_INVALID, "grad-cam: class %d outside 0..%d", label, g->classes - 1);
    memset(res, 0, sizeof *res);
    aibox_status st = aibox_ctx_infer(g->ctx, g->m, input, 1, err);
    if (st) return st;
    const float *y = aibox_ctx_node_output(g->ctx, g->score, NULL, NULL, NULL);
    int best = 0;
    for (int k = 0; k < g->classes; k++) {
        if (!isfinite(y[k]))
            return aibox_fail(err, AIBOX_E_NONFINITE, "grad-cam: the score of class %d is not a finite number", k);
        if (y[k] > y[best]) best = k;
    }
    if (label < 0) label = best;
    memset(g->onehot, 0, sizeof(float) * (size_t)g->classes);
    g->onehot[label] = 1.0f; /* dy_c / dy = the one-hot of c: the score's gradient */
    st = aibox_ctx_probe_backward(g->ctx, g->m, g->score, g->onehot, g->node, err);
    if (st) return st;
    const float *A = aibox_ctx_node_output(g->ctx, g->node, NULL, NULL, NULL);
    const float *G = aibox_ctx_node_grad(g->ctx, g->node, NULL, NULL, NULL);
    size_t hw = (size_t)g->h * g->w;
    /* in double: the sums run over every channel and position */
    for (int k = 0; k < g->c; k++) {
        double s = 0;
        for (size_t i = 0; i < hw; i++) s += G[(size_t)k * hw + i];
        g->alpha[k] = s / (double)hw;
    }
    memset(g->acc, 0, sizeof(double) * hw);
    for (int k = 0; k < g->c; k++) {
        const float *a = A + (size_t)k * hw;
        double w = g->alpha[k];
        if (w != 0.0)
            for (size_t i = 0; i < hw; i++) g->acc[i] += w * a[i];
    }
    float mx = 0.0f;
    for (size_t i = 0; i < hw; i++) {
        if (!isfinite(g->acc[i]))
            return aibox_fail(err, AIBOX_E_NONFINITE, "grad-cam: the map of class %d is not finite", label);
        g->cam[i] = g->acc[i] > 0.0 ? (float)g->acc[i] : 0.0f;
        if (g->cam[i] > mx) mx = g->cam[i];
    }
    res->label = label;
    res->score = y[label];
    res->map_w = g->w, res->map_h = g->h;
    res->cam = g->cam;
    res->cam_max = mx;
    return AIBOX_OK;
}

aibox_status aibox_gradcam_run(aibox_gradcam *g, const aibox_image *img, int label, float *map,
                               aibox_gradcam_result *res, aibox_error *err)
{
    if (!g || !img || !res) return aibox_fail(err, AIBOX_E_INVALID, "grad-cam: NULL argument");
    aibox_status st = aibox_preprocess(&g->pp, img, g->input, err);
    if (!st) st = aibox_gradcam_run_input(g, g->input, label, res, err);
    if (st || !map) return st;
    st = aibox_map_resize(res->cam, res->map_w, res->map_h, map, img->width, img->height, err);
    if (st) return st;
    size_t n = (size_t)img->width * img->height;
    float mx = 0.0f;
    for (size_t i = 0; i < n; i++) mx = map[i] > mx ? map[i] : mx;
    for (size_t i = 0; i < n; i++) map[i] = mx > 0.0f ? map[i] / mx : 0.0f;
    return AIBOX_OK;
}

aibox_status aibox_gradcam_overlay(aibox_gradcam *g, const aibox_image *img, int label, float alpha, aibox_image *dst,
                                   aibox_gradcam_result *res, aibox_error *err)
{
    if (!g || !img || !dst || !img->data) return aibox_fail(err, AIBOX_E_INVALID, "grad-cam: NULL argument");
    if (img->width < 1 || img->height < 1) return aibox_fail(err, AIBOX_E_INVALID, "grad-cam: empty image");
    float *map = malloc(sizeof(float) * (size_t)img->width * img->height);
    if (!map) return aibox_fail(err, AIBOX_E_NOMEM, "grad-cam: out of memory for a %dx%d map", img->width, img->height);
    aibox_gradcam_result r;
    aibox_status st = aibox_gradcam_run(g, img, label, map, &r, err);
    if (!st) st = aibox_heatmap_overlay(dst, img, map, img->width, img->height, 0.0f, 1.0f, alpha, err);
    free(map);
    if (!st && res) *res = r;
    return st;
}

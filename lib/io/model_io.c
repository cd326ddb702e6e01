/* Models to and from .aibox files: the graph travels as one integer array
 * ("aibox.graph"), parameters and statistics as tensors "n<node>.p<k>" and
 * "n<node>.s<k>", next to the user's metadata. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/aibox_file.h"
#include "io/model_io.h"
#include "nn/nn.h"

#define GRAPH_KEY "aibox.graph"
#define GRAPH_VERSION 1

static int64_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return (int64_t)u;
}
static float bitsf(int64_t v)
{
    uint32_t u = (uint32_t)v;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* The first non-finite value of n floats, or -1. */
static long long first_nonfinite(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return (long long)i;
    return -1;
}

aibox_status aibox_model_save(const aibox_model *m, const char *path, aibox_error *err)
{
    return aibox_model_save_ex(m, path, 0, NULL, err);
}

aibox_status aibox_model_save_ex(const aibox_model *m, const char *path, int n_extra, const aibox_file_tensor *extra,
                                 aibox_error *err)
{
    if (!m || !path || n_extra < 0 || (n_extra && !extra)) return aibox_fail(err, AIBOX_E_INVALID, "save: NULL argument");
    if (!m->finished) return aibox_fail(err, AIBOX_E_STATE, "save %s: the model is not finished", path);
    if (m->weightless)
        return aibox_fail(err, AIBOX_E_STATE, "save %s: the model was loaded without its weights (aibox_model_load_info)",
                          path);
    /* graph: version, input c h w, output, node count, then per node:
     * kind frozen n_in in[n_in] ip[NI] fp-bits[NF] */
    size_t cap = 6 + (size_t)m->n_nodes * (3 + AIBOX_NODE_MAX_IN + AIBOX_NODE_NI + AIBOX_NODE_NF);
    int64_t *g = malloc(cap * sizeof *g);
    aibox_file_tensor *t = calloc((size_t)m->n_nodes * 4 + 1 + (size_t)n_extra, sizeof *t);
    char(*names)[32] = calloc((size_t)m->n_nodes * 4 + 1, sizeof *names);
    aibox_meta_list meta = {0};
    aibox_status s = AIBOX_OK;
    if (!g || !t || !names) {
        s = aibox_fail(err, AIBOX_E_NOMEM, "save %s: out of memory", path);
        goto done;
    }
    size_t k = 0;
    g[k++] = GRAPH_VERSION, g[k++] = m->in_c, g[k++] = m->in_h, g[k++] = m->in_w;
    g[k++] = aibox_model_output(m), g[k++] = m->n_nodes;
    int nt = 0;
    for (int i = 0; i < m->n_nodes; i++) {
        const aibox_node *nd = &m->nodes[i];
        g[k++] = nd->kind, g[k++] = nd->frozen, g[k++] = nd->n_in;
        for (int j = 0; j < nd->n_in; j++) g[k++] = nd->in[j];
        for (int j = 0; j < AIBOX_NODE_NI; j++) g[k++] = nd->ip[j];
        for (int j = 0; j < AIBOX_NODE_NF; j++) g[k++] = fbits(nd->fp[j]);
        for (int q = 0; q < 4; q++) {
            size_t n = q < 2 ? nd->n_param[q] : nd->n_state[q - 2];
            if (!n) continue;
            snprintf(names[nt], sizeof names[nt], "n%d.%c%d", i, q < 2 ? 'p' : 's', q & 1);
            t[nt].name = names[nt];
            t[nt].ndim = 1;
            t[nt].dims[0] = (int64_t)n;
            t[nt].data = q < 2 ? m->params + nd->param_off[q] : m->state + nd->state_off[q - 2];
            nt++;
        }
    }
    for (int i = 0; i < n_extra; i++) t[nt++] = extra[i];
    /* A model file never carries a non-finite number (the loader refuses
     * one): a diverged model is not saved over a good one. */
    for (int i = 0; i < nt; i++) {
        size_t n = 1;
        for (int d = 0; d < t[i].ndim; d++) n *= (size_t)t[i].dims[d];
        long long at = t[i].data ? first_nonfinite(t[i].data, n) : -1;
        if (at >= 0) {
            s = aibox_fail(err, AIBOX_E_INVALID, "save %s: tensor %s holds a non-finite value (%g at index %lld); not saved",
                           path, t[i].name, t[i].data[at], at);
            goto done;
        }
    }
    if ((s = aibox_meta_copy(&meta, &m->meta, err)) ||
        (s = aibox_meta_set_str(&meta, AIBOX_META_LIBRARY_VERSION, AIBOX_VERSION, err)) ||
        (s = aibox_meta_set_ints(&meta, GRAPH_KEY, (int)k, g, err)))
        goto done;
    s = aibox_file_write(path, &meta, nt, t, err);
done:
    aibox_meta_list_free(&meta);
    free(g);
    free(t);
    free(names);
    return s;
}

/* Reads one value from the graph array, refusing to run past its end. */
static int next(const aibox_meta *e, size_t *k, int64_t lo, int64_t hi, int64_t *v)
{
    if (*k >= (size_t)e->n) return 0;
    *v = e->ints[(*k)++];
    return *v >= lo && *v <= hi;
}

aibox_status aibox_model_check_finite(const aibox_model *m, const char *path, aibox_error *err)
{
    for (int i = 1; i < m->n_nodes; i++) {
        const aibox_node *nd = &m->nodes[i];
        for (int q = 0; q < 4; q++) {
            size_t n = q < 2 ? nd->n_param[q] : nd->n_state[q - 2];
            const float *v = q < 2 ? m->params + nd->param_off[q] : m->state + nd->state_off[q - 2];
            long long at = n ? first_nonfinite(v, n) : -1;
            if (at >= 0)
                return aibox_fail(err, AIBOX_E_FORMAT,
                                  "%s: node %d (%s) holds a non-finite %s (%g at index %lld): the model is broken",
                                  path, i, aibox_layer_kind_name(nd->kind), q < 2 ? "weight" : "statistic", v[at], at);
        }
    }
    return AIBOX_OK;
}

/* Rebuilds the nodes from the graph array: every value range-checked, every
 * shape computed by the same checked rules as the builders. */
static aibox_status read_graph(aibox_model **out, const aibox_meta *e, const char *path, aibox_error *err)
{
    int64_t v[6] = {0};
    size_t k = 0;
    aibox_status s;
    aibox_model *m = NULL;
    if (!next(e, &k, 0, INT64_MAX, &v[0]) || v[0] != GRAPH_VERSION)
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: graph version %lld, this library reads %d", path, (long long)v[0],
                          GRAPH_VERSION);
    if (!next(e, &k, 1, 65536, &v[1]) || !next(e, &k, 1, 65536, &v[2]) || !next(e, &k, 1, 65536, &v[3]) ||
        !next(e, &k, 1, 1 << 20, &v[4]) || !next(e, &k, 2, 1 << 20, &v[5]))
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: graph header out of range", path);
    aibox_error ce = {0};
    if (aibox_model_create(&m, (int)v[1], (int)v[2], (int)v[3], &ce))
        return aibox_fail(err, ce.code == AIBOX_E_NOMEM ? AIBOX_E_NOMEM : AIBOX_E_FORMAT, "%s: graph input: %s", path,
                          ce.msg);
    for (int i = 0; i < v[5]; i++) {
        int64_t kind, frozen, n_in, x;
        int in[AIBOX_NODE_MAX_IN], ip[AIBOX_NODE_NI];
        float fp[AIBOX_NODE_NF];
        if (!next(e, &k, 0, AIBOX_LAYER_KIND_COUNT - 1, &kind) || !next(e, &k, 0, 1, &frozen) ||
            !next(e, &k, 0, AIBOX_NODE_MAX_IN, &n_in))
            goto bad_node;
        if ((i == 0) != (kind == AIBOX_LAYER_INPUT)) goto bad_node;
        for (int j = 0; j < n_in; j++) {
            if (!next(e, &k, 0, i - 1, &x)) goto bad_node;
            in[j] = (int)x;
        }
        for (int j = 0; j < AIBOX_NODE_NI; j++) {
            if (!next(e, &k, INT32_MIN, INT32_MAX, &x)) goto bad_node;
            ip[j] = (int)x;
        }
        for (int j = 0; j < AIBOX_NODE_NF; j++) {
            if (!next(e, &k, 0, UINT32_MAX, &x)) goto bad_node;
            fp[j] = bitsf(x);
        }
        if (i == 0) continue;
        int id = aibox_model_add_node(m, (aibox_layer_kind)kind, (int)n_in, in, ip, fp);
        if (id < 0) {
            s = aibox_fail(err, AIBOX_E_FORMAT, "%s: graph %s", path, m->build_msg);
            aibox_model_free(&m);
            return s;
        }
        m->nodes[id].frozen = (int)frozen;
        continue;
    bad_node:
        aibox_model_free(&m);
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: graph node %d is malformed", path, i);
    }
    if (k != (size_t)e->n || v[4] >= m->n_nodes) {
        aibox_model_free(&m);
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: graph has trailing values or a bad output node", path);
    }
    m->output = (int)v[4];
    *out = m;
    return AIBOX_OK;
}

/* Each node's tensors, found in the file's index with exactly the size the
 * node needs, before anything is allocated for them: what a model costs is
 * then bounded by the bytes the file really holds. */
static aibox_status check_tensors(const aibox_model *m, const aibox_file *f, const char *path, aibox_error *err)
{
    for (int i = 1; i < m->n_nodes; i++) {
        const aibox_node *nd = &m->nodes[i];
        for (int q = 0; q < 4; q++) {
            size_t n = q < 2 ? nd->n_param[q] : nd->n_state[q - 2];
            if (!n) continue;
            char name[32];
            snprintf(name, sizeof name, "n%d.%c%d", i, q < 2 ? 'p' : 's', q & 1);
            const aibox_file_entry *t = NULL;
            for (int j = 0; j < f->n_tensors && !t; j++)
                if (!strcmp(f->tensors[j].name, name)) t = &f->tensors[j];
            if (!t)
                return aibox_fail(err, AIBOX_E_FORMAT, "%s: tensor %s (node %d, %s) is missing", path, name, i,
                                  aibox_layer_kind_name(nd->kind));
            if (t->ndim != 1 || t->count != n)
                return aibox_fail(err, AIBOX_E_FORMAT, "%s: tensor %s has %zu values, node %d (%s) needs %zu", path,
                                  name, t->count, i, aibox_layer_kind_name(nd->kind), n);
        }
    }
    return AIBOX_OK;
}

/* Every tensor of a model file, the model's and the extra ones, must be
 * finite: a broken model is refused at the door, not at the first verdict. */
static aibox_status check_finite(const aibox_file *f, const char *path, aibox_error *err)
{
    for (int j = 0; j < f->n_tensors; j++) {
        long long at = first_nonfinite(f->tensors[j].data, f->tensors[j].count);
        if (at >= 0)
            return aibox_fail(err, AIBOX_E_FORMAT,
                              "%s: tensor %s holds a non-finite value (%g at index %lld): the model is broken "
                              "(diverged training or a damaged copy); use another copy or retrain",
                              path, f->tensors[j].name, f->tensors[j].data[at], at);
    }
    return AIBOX_OK;
}

static aibox_status copy_meta(aibox_model *m, const aibox_file *f, aibox_error *err)
{
    aibox_status s = AIBOX_OK;
    /* Keep the user's metadata; the graph itself now lives in the nodes. */
    for (int i = 0; i < f->meta.count && !s; i++) {
        const aibox_meta *x = &f->meta.items[i];
        if (!strcmp(x->key, GRAPH_KEY)) continue;
        switch (x->type) {
        case AIBOX_META_INT: s = aibox_meta_set_int(&m->meta, x->key, x->i, err); break;
        case AIBOX_META_FLOAT: s = aibox_meta_set_float(&m->meta, x->key, x->f, err); break;
        case AIBOX_META_STR: s = aibox_meta_set_str(&m->meta, x->key, x->s, err); break;
        case AIBOX_META_INTS: s = aibox_meta_set_ints(&m->meta, x->key, x->n, x->ints, err); break;
        case AIBOX_META_FLOATS: s = aibox_meta_set_floats(&m->meta, x->key, x->n, x->floats, err); break;
        case AIBOX_META_STRS: s = aibox_meta_set_strs(&m->meta, x->key, x->n, (const char *const *)x->strs, err); break;
        }
    }
    return s;
}

/* The loader behind every public entry. weights 0: graph and metadata only
 * (the file's data section is never read). */
static aibox_status load(aibox_model **out, const char *path, int weights, aibox_file **file, aibox_error *err)
{
    if (file) *file = NULL;
    if (!out || !path) return aibox_fail(err, AIBOX_E_INVALID, "load: NULL argument");
    *out = NULL;
    aibox_file *f = NULL;
    aibox_status s = weights ? aibox_file_read(path, &f, err) : aibox_file_read_index(path, &f, err);
    if (s) return s;
    aibox_model *m = NULL;
    const aibox_meta *e = aibox_meta_find(&f->meta, GRAPH_KEY);
    if (!e || e->type != AIBOX_META_INTS) {
        s = aibox_fail(err, AIBOX_E_FORMAT, "%s: an aibox file without a model graph (no %s)", path, GRAPH_KEY);
        goto fail;
    }
    if ((s = read_graph(&m, e, path, err)) || (s = check_tensors(m, f, path, err))) goto fail;
    if (!weights) {
        m->finished = 1, m->weightless = 1;
    } else {
        if ((s = check_finite(f, path, err)) || (s = aibox_model_alloc_params(m, 0, 0, err))) goto fail;
        for (int i = 1; i < m->n_nodes; i++) {
            const aibox_node *nd = &m->nodes[i];
            for (int q = 0; q < 4; q++) {
                size_t n = q < 2 ? nd->n_param[q] : nd->n_state[q - 2];
                if (!n) continue;
                char name[32];
                snprintf(name, sizeof name, "n%d.%c%d", i, q < 2 ? 'p' : 's', q & 1);
                const float *data = aibox_file_tensor_data(f, name, NULL, NULL);
                memcpy(q < 2 ? m->params + nd->param_off[q] : m->state + nd->state_off[q - 2], data, n * sizeof(float));
            }
        }
    }
    if ((s = copy_meta(m, f, err))) goto fail;
    if (file) *file = f;
    else aibox_file_free(&f);
    *out = m;
    return AIBOX_OK;
fail:
    aibox_model_free(&m);
    aibox_file_free(&f);
    return s;
}

aibox_status aibox_model_load(aibox_model **out, const char *path, aibox_error *err)
{
    return load(out, path, 1, NULL, err);
}

aibox_status aibox_model_load_ex(aibox_model **out, const char *path, aibox_file **file, aibox_error *err)
{
    return load(out, path, 1, file, err);
}

aibox_status aibox_model_load_info(aibox_model **out, const char *path, aibox_error *err)
{
    return load(out, path, 0, NULL, err);
}

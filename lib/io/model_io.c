/* Models to and from .aibox files: the graph travels as metadata (graph
 * version 2: a header array "aibox.graph" and per node its kind, inputs,
 * frozen flag and every setting by name, "aibox.node.<i>.<name>"; version 1
 * files, one positional integer array, are still read), parameters and
 * statistics as tensors "n<node>.p<k>" and "n<node>.s<k>", next to the
 * user's metadata. lib/io/FORMAT.md describes both graph versions. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/aibox_file.h"
#include "io/model_io.h"
#include "nn/nn.h"
#include "ops/ops.h" /* float16 range */

#define GRAPH_KEY "aibox.graph"
#define NODE_PREFIX "aibox.node."
#define NODE_PREFIX_LEN (sizeof NODE_PREFIX - 1)
#define GRAPH_VERSION 2 /* written; 1 and 2 are read */
#define GRAPH_HEADER 6  /* version, input c h w, output, node count */

/* Keys the graph owns: never user metadata. */
#define QUANT_ACT "q.act" /* an 8-bit model's per-node output scale and zero point */

static int graph_key(const char *key) { return !strcmp(key, GRAPH_KEY) || !strncmp(key, NODE_PREFIX, NODE_PREFIX_LEN); }

static float bitsf(int64_t v)
{
    uint32_t u = (uint32_t)v;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Node i's tensor q (0, 1: parameters; 2, 3: statistics) as files name it,
 * "n<i>.p<k>" / "n<i>.s<k>": its value count (0: the node has none) and name. */
static size_t node_tensor(const aibox_model *m, int i, int q, char name[32])
{
    const aibox_node *nd = &m->nodes[i];
    snprintf(name, 32, "n%d.%c%d", i, q < 2 ? 'p' : 's', q & 1);
    return q < 2 ? nd->n_param[q] : nd->n_state[q - 2];
}

/* Where node i's tensor q lives in the model's blocks. */
static float *node_tensor_data(const aibox_model *m, int i, int q)
{
    const aibox_node *nd = &m->nodes[i];
    return q < 2 ? m->params + nd->param_off[q] : m->state + nd->state_off[q - 2];
}

/* The first non-finite value of n floats, or -1. */
static long long first_nonfinite(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return (long long)i;
    return -1;
}

/* The first of n finite floats that float16 rounds to infinity (|x| >=
 * 65520, half a step past the largest half), or -1. */
static long long first_beyond_half(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((aibox_float_to_half(v[i]) & 0x7fff) == 0x7c00) return (long long)i;
    return -1;
}

/* Graph version 2: the header array, then per node (the input, node 0, is
 * the header's) "aibox.node.<i>.kind" (the kind's name), ".in" (its input
 * nodes), ".frozen" and one key per setting, by the kind's field list. */
static aibox_status write_graph(aibox_meta_list *meta, const aibox_model *m, aibox_error *err)
{
    int64_t head[GRAPH_HEADER] = {GRAPH_VERSION, m->in_c, m->in_h, m->in_w, aibox_model_output(m), m->n_nodes};
    aibox_status s = aibox_meta_set_ints(meta, GRAPH_KEY, GRAPH_HEADER, head, err);
    char key[AIBOX_FILE_MAX_NAME + 1];
#define KEY(name) (snprintf(key, sizeof key, NODE_PREFIX "%d.%s", i, (name)), key)
    for (int i = 1; i < m->n_nodes && !s; i++) {
        const aibox_node *nd = &m->nodes[i];
        const aibox_layer_ops *ops = aibox_layer_get(nd->kind);
        int64_t in[AIBOX_NODE_MAX_IN];
        for (int j = 0; j < nd->n_in; j++) in[j] = nd->in[j];
        if ((s = aibox_meta_set_str(meta, KEY("kind"), ops->name, err)) ||
            (s = aibox_meta_set_ints(meta, KEY("in"), nd->n_in, in, err)) ||
            (s = aibox_meta_set_int(meta, KEY("frozen"), nd->frozen, err)))
            break;
        aibox_node_settings set = nd->settings;
        for (int f = 0; f < ops->n_fields && !s; f++) {
            const aibox_setting_field *fd = &ops->fields[f];
            s = fd->type == AIBOX_SETTING_INT ? aibox_meta_set_int(meta, KEY(fd->name), *aibox_setting_int(&set, fd), err)
                                              : aibox_meta_set_float(meta, KEY(fd->name), *aibox_setting_float(&set, fd), err);
        }
    }
#undef KEY
    return s;
}

/* An 8-bit model's integers and tables as floats, in the order
 * aibox_model_save_ex lists them: per quantised node its weights and bias
 * (where the node has the tensors), then per node its weight scales and
 * offset, then "q.act". Integers beyond what the file's int32 holds exactly
 * are refused. */
static aibox_status quant_tensors(const aibox_model *m, const char *path, float **out, aibox_error *err)
{
    const aibox_quant *q = m->quant;
    size_t total = (size_t)m->n_nodes * 2;
    for (int i = 1; i < m->n_nodes; i++)
        if (q->qw[i].w) total += m->nodes[i].n_param[0] + m->nodes[i].n_param[1] + (size_t)q->qw[i].out + 2;
    float *b = malloc(total * sizeof *b), *at = b;
    if (!b) return aibox_fail(err, AIBOX_E_NOMEM, "save %s: out of memory", path);
    for (int i = 0; i < m->n_nodes; i++) {
        const aibox_qweights *qw = &q->qw[i];
        if (!qw->w) continue;
        for (size_t k = 0; k < m->nodes[i].n_param[0]; k++) *at++ = (float)qw->w[k];
        for (size_t k = 0; k < m->nodes[i].n_param[1]; k++) {
            if (qw->bias[k] < -AIBOX_FILE_I32_MAX || qw->bias[k] > AIBOX_FILE_I32_MAX) {
                free(b);
                return aibox_fail(err, AIBOX_E_INVALID, "save %s: node %d's int32 bias %ld is beyond +-2^24; not saved",
                                  path, i, (long)qw->bias[k]);
            }
            *at++ = (float)qw->bias[k];
        }
    }
    for (int i = 1; i < m->n_nodes; i++)
        if (q->qw[i].w) {
            memcpy(at, q->qw[i].wscale, (size_t)q->qw[i].out * sizeof *at);
            at += q->qw[i].out;
            *at++ = (float)q->qw[i].wofs, *at++ = (float)q->qw[i].float_product;
        }
    for (int i = 0; i < m->n_nodes; i++) *at++ = q->scale[i], *at++ = (float)q->zp[i];
    *out = b;
    return AIBOX_OK;
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
    aibox_file_tensor *t = calloc((size_t)m->n_nodes * 6 + 2 + (size_t)n_extra, sizeof *t);
    char(*names)[32] = calloc((size_t)m->n_nodes * 6 + 2, sizeof *names);
    aibox_meta_list meta = {0};
    aibox_status s = AIBOX_OK;
    float *qbuf = NULL; /* an 8-bit model's integers and tables as the floats the container takes */
    if (!t || !names) {
        s = aibox_fail(err, AIBOX_E_NOMEM, "save %s: out of memory", path);
        goto done;
    }
    if (m->quant && (s = quant_tensors(m, path, &qbuf, err))) goto done;
    int nt = 0;
    float *qat = qbuf;
    for (int i = 0; i < m->n_nodes; i++)
        for (int q = 0; q < 4; q++) {
            size_t n = node_tensor(m, i, q, names[nt]);
            if (!n) continue;
            t[nt].name = names[nt];
            t[nt].ndim = 1;
            t[nt].dims[0] = (int64_t)n;
            t[nt].data = node_tensor_data(m, i, q);
            if (q < 2 && m->quant && m->quant->qw[i].w) /* the integers, not their dequantised floats */
                t[nt].data = qat, t[nt].dtype = q ? AIBOX_FILE_I32 : AIBOX_FILE_I8, qat += n;
            nt++;
        }
    for (int i = 1; m->quant && i < m->n_nodes; i++)
        if (m->quant->qw[i].w) {
            const aibox_qweights *qw = &m->quant->qw[i];
            for (int k = 0; k < 2; k++) {
                snprintf(names[nt], 32, "n%d.q%d", i, k);
                t[nt] = (aibox_file_tensor){names[nt], 1, {k ? 2 : qw->out}, qat, k ? AIBOX_FILE_I32 : AIBOX_FILE_F32};
                qat += k ? 2 : qw->out;
                nt++;
            }
        }
    if (m->quant) {
        snprintf(names[nt], 32, QUANT_ACT);
        t[nt] = (aibox_file_tensor){names[nt], 2, {m->n_nodes, 2}, qat, AIBOX_FILE_F32};
        nt++;
    }
    for (int i = 0; i < n_extra; i++) t[nt++] = extra[i];
    /* A model file never carries a non-finite number (the loader refuses
     * one): a diverged model is not saved over a good one. Nor a value that
     * float16 storage would turn into infinity. */
    for (int i = 0; i < nt; i++) {
        size_t n = 1;
        for (int d = 0; d < t[i].ndim; d++) n *= (size_t)t[i].dims[d];
        long long at = t[i].data ? first_nonfinite(t[i].data, n) : -1;
        if (at >= 0) {
            s = aibox_fail(err, AIBOX_E_INVALID, "save %s: tensor %s holds a non-finite value (%g at index %lld); not saved",
                           path, t[i].name, t[i].data[at], at);
            goto done;
        }
        at = t[i].data && t[i].dtype == AIBOX_FILE_F16 ? first_beyond_half(t[i].data, n) : -1;
        if (at >= 0) {
            s = aibox_fail(err, AIBOX_E_INVALID,
                           "save %s: tensor %s, to be stored as float16, holds %g at index %lld, beyond float16's "
                           "+-%g; not saved (store it as float32)",
                           path, t[i].name, t[i].data[at], at, (double)AIBOX_HALF_MAX);
            goto done;
        }
    }
    for (int i = 0; i < m->meta.count; i++)
        if (graph_key(m->meta.items[i].key)) {
            s = aibox_fail(err, AIBOX_E_INVALID, "save %s: metadata key %s is reserved for the model graph; not saved",
                           path, m->meta.items[i].key);
            goto done;
        }
    if ((s = aibox_meta_copy(&meta, &m->meta, err)) ||
        (s = aibox_meta_set_str(&meta, AIBOX_META_LIBRARY_VERSION, AIBOX_VERSION, err)) ||
        (s = write_graph(&meta, m, err)))
        goto done;
    s = aibox_file_write(path, &meta, nt, t, err);
done:
    aibox_meta_list_free(&meta);
    free(t);
    free(names);
    free(qbuf);
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
            char name[32];
            size_t n = node_tensor(m, i, q, name);
            const float *v = node_tensor_data(m, i, q);
            long long at = n ? first_nonfinite(v, n) : -1;
            if (at >= 0)
                return aibox_fail(err, AIBOX_E_FORMAT,
                                  "%s: node %d (%s) holds a non-finite %s (%g at index %lld): the model is broken",
                                  path, i, aibox_layer_kind_name(nd->kind), q < 2 ? "weight" : "statistic", v[at], at);
        }
    }
    return AIBOX_OK;
}

/* The header both graph versions start with: the version (checked by the
 * caller), the input shape, the output and the node count; creates the model. */
static aibox_status read_header(aibox_model **out, const aibox_meta *e, int64_t v[GRAPH_HEADER], const char *path,
                                aibox_error *err)
{
    size_t k = 1;
    if (!next(e, &k, 1, 65536, &v[1]) || !next(e, &k, 1, 65536, &v[2]) || !next(e, &k, 1, 65536, &v[3]) ||
        !next(e, &k, 1, 1 << 20, &v[4]) || !next(e, &k, 2, 1 << 20, &v[5]))
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: graph header out of range", path);
    aibox_error ce = {0};
    if (aibox_model_create(out, (int)v[1], (int)v[2], (int)v[3], &ce))
        return aibox_fail(err, ce.code == AIBOX_E_NOMEM ? AIBOX_E_NOMEM : AIBOX_E_FORMAT, "%s: graph input: %s", path,
                          ce.msg);
    return AIBOX_OK;
}

/* Appends a node read from a file: the builders' checked shape rules decide. */
static aibox_status add_read_node(aibox_model *m, aibox_layer_kind kind, int n_in, const int *in,
                                  const aibox_node_settings *set, int frozen, const char *path, aibox_error *err)
{
    int id = aibox_model_add_node(m, kind, n_in, in, set);
    if (id < 0) return aibox_fail(err, AIBOX_E_FORMAT, "%s: graph %s", path, m->build_msg);
    m->nodes[id].frozen = frozen;
    return AIBOX_OK;
}

/* Graph version 1 (libaibox 0.1.0 until the named settings): one integer
 * array, the header then per node kind (the enum value), frozen, n_in,
 * in[n_in], 12 int slots and 4 float slots (their bits); the kind's fields
 * say which slot held what (v1_slot). */
static aibox_status read_graph_v1(aibox_model *m, const aibox_meta *e, const int64_t v[GRAPH_HEADER],
                                  const char *path, aibox_error *err)
{
    size_t k = GRAPH_HEADER;
    for (int i = 0; i < v[5]; i++) {
        int64_t kind, frozen, n_in, x;
        int in[AIBOX_NODE_MAX_IN], ip[AIBOX_V1_INT_SLOTS];
        float fp[AIBOX_V1_FLOAT_SLOTS];
        if (!next(e, &k, 0, AIBOX_LAYER_KIND_COUNT - 1, &kind) || !next(e, &k, 0, 1, &frozen) ||
            !next(e, &k, 0, AIBOX_NODE_MAX_IN, &n_in))
            goto bad_node;
        if ((i == 0) != (kind == AIBOX_LAYER_INPUT)) goto bad_node;
        for (int j = 0; j < n_in; j++) {
            if (!next(e, &k, 0, i - 1, &x)) goto bad_node;
            in[j] = (int)x;
        }
        for (int j = 0; j < AIBOX_V1_INT_SLOTS; j++) {
            if (!next(e, &k, INT32_MIN, INT32_MAX, &x)) goto bad_node;
            ip[j] = (int)x;
        }
        for (int j = 0; j < AIBOX_V1_FLOAT_SLOTS; j++) {
            if (!next(e, &k, 0, UINT32_MAX, &x)) goto bad_node;
            fp[j] = bitsf(x);
        }
        if (i == 0) continue;
        const aibox_layer_ops *ops = aibox_layer_get((aibox_layer_kind)kind);
        aibox_node_settings set;
        memset(&set, 0, sizeof set);
        for (int f = 0; f < ops->n_fields; f++) {
            const aibox_setting_field *fd = &ops->fields[f];
            int slot = fd->v1_slot;
            if (fd->type == AIBOX_SETTING_INT && slot >= 0 && slot < AIBOX_V1_INT_SLOTS)
                *aibox_setting_int(&set, fd) = ip[slot];
            else if (fd->type == AIBOX_SETTING_FLOAT && slot >= 0 && slot < AIBOX_V1_FLOAT_SLOTS)
                *aibox_setting_float(&set, fd) = fp[slot];
        }
        aibox_status s = add_read_node(m, (aibox_layer_kind)kind, (int)n_in, in, &set, (int)frozen, path, err);
        if (s) return s;
        continue;
    bad_node:
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: graph node %d is malformed", path, i);
    }
    if (k != (size_t)e->n) return aibox_fail(err, AIBOX_E_FORMAT, "%s: graph has trailing values", path);
    return AIBOX_OK;
}

/* The node index of a graph key "aibox.node.<i>.<name>" (decimal, no
 * leading zero, 1..n-1; a name follows), or -1. */
static int node_key(const char *key, int n)
{
    if (strncmp(key, NODE_PREFIX, NODE_PREFIX_LEN)) return -1;
    const char *p = key + NODE_PREFIX_LEN;
    long i = 0;
    if (*p < '1' || *p > '9') return -1;
    for (; *p >= '0' && *p <= '9'; p++)
        if ((i = i * 10 + (*p - '0')) >= n) return -1;
    return *p == '.' && p[1] ? (int)i : -1;
}

/* One setting's value from its entry: the field's type, an int in int
 * range, a float in float range (or infinite; NaN is left to the shape rule). */
static int read_setting(const aibox_meta *x, const aibox_setting_field *fd, aibox_node_settings *set)
{
    if (fd->type == AIBOX_SETTING_INT) {
        if (x->type != AIBOX_META_INT || x->i < INT32_MIN || x->i > INT32_MAX) return 0;
        *aibox_setting_int(set, fd) = (int)x->i;
        return 1;
    }
    if (x->type != AIBOX_META_FLOAT || (isfinite(x->f) && fabs(x->f) > FLT_MAX)) return 0;
    *aibox_setting_float(set, fd) = (float)x->f;
    return 1;
}

/* The name part of a graph key node_key accepted. */
static const char *key_name(const char *key) { return strchr(key + NODE_PREFIX_LEN, '.') + 1; }

/* One node of a version 2 graph from its entries (ent[0..n_ent), any order). */
static aibox_status read_node_v2(aibox_model *m, int i, const aibox_meta *const *ent, int n_ent, const char *path,
                                 aibox_error *err)
{
    const aibox_meta *kind_e = NULL, *in_e = NULL, *frozen_e = NULL;
    for (int j = 0; j < n_ent; j++)
        if (!strcmp(key_name(ent[j]->key), "kind")) kind_e = ent[j];
    aibox_layer_kind kind;
    const aibox_layer_ops *ops = NULL;
    if (!kind_e || kind_e->type != AIBOX_META_STR)
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: graph node %d is malformed: no %s%d.kind string", path, i,
                          NODE_PREFIX, i);
    if (!(ops = aibox_layer_by_name(kind_e->s, &kind)))
        return aibox_fail(err, AIBOX_E_UNSUPPORTED,
                          "%s: graph node %d has the unknown layer kind \"%.40s\" (a newer libaibox wrote it?)", path,
                          i, kind_e->s);
    if (kind == AIBOX_LAYER_INPUT)
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: graph node %d is an input; only node 0 is", path, i);
    aibox_node_settings set;
    memset(&set, 0, sizeof set);
    unsigned seen = 0;
    for (int j = 0; j < n_ent; j++) {
        const aibox_meta *x = ent[j];
        const char *name = key_name(x->key);
        if (x == kind_e) continue;
        if (!strcmp(name, "in")) {
            in_e = x;
        } else if (!strcmp(name, "frozen")) {
            frozen_e = x;
        } else {
            int f = 0;
            while (f < ops->n_fields && strcmp(ops->fields[f].name, name)) f++;
            if (f == ops->n_fields)
                return aibox_fail(err, AIBOX_E_FORMAT, "%s: graph node %d (%s) has an unknown setting \"%s\"", path, i,
                                  ops->name, name);
            if (!read_setting(x, &ops->fields[f], &set))
                return aibox_fail(err, AIBOX_E_FORMAT, "%s: graph node %d (%s): %s must be %s", path, i, ops->name,
                                  name, ops->fields[f].type == AIBOX_SETTING_INT ? "an int (32 bits)" : "a float (32 bits)");
            seen |= 1u << f;
        }
    }
    for (int f = 0; f < ops->n_fields; f++)
        if (!(seen & 1u << f))
            return aibox_fail(err, AIBOX_E_FORMAT, "%s: graph node %d (%s): setting %s is missing", path, i, ops->name,
                              ops->fields[f].name);
    int in[AIBOX_NODE_MAX_IN];
    if (!in_e || in_e->type != AIBOX_META_INTS || in_e->n > AIBOX_NODE_MAX_IN)
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: graph node %d (%s): no %s%d.in array of at most %d inputs", path, i,
                          ops->name, NODE_PREFIX, i, AIBOX_NODE_MAX_IN);
    for (int j = 0; j < in_e->n; j++) {
        if (in_e->ints[j] < 0 || in_e->ints[j] >= i)
            return aibox_fail(err, AIBOX_E_FORMAT, "%s: graph node %d (%s): input %lld is not an earlier node", path, i,
                              ops->name, (long long)in_e->ints[j]);
        in[j] = (int)in_e->ints[j];
    }
    if (!frozen_e || frozen_e->type != AIBOX_META_INT || frozen_e->i < 0 || frozen_e->i > 1)
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: graph node %d (%s): no %s%d.frozen of 0 or 1", path, i, ops->name,
                          NODE_PREFIX, i);
    return add_read_node(m, kind, in_e->n, in, &set, (int)frozen_e->i, path, err);
}

/* Graph version 2: the node keys are grouped by node in two passes over the
 * metadata (counts, then places), so a graph costs time and memory linear
 * in the entries the file really holds, whatever node count it claims. */
static aibox_status read_graph_v2(aibox_model *m, const aibox_meta *e, const aibox_meta_list *meta,
                                  const int64_t v[GRAPH_HEADER], const char *path, aibox_error *err)
{
    int n = (int)v[5], total = 0;
    if (e->n != GRAPH_HEADER)
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: graph header has %d values, version 2 has %d", path, e->n,
                          GRAPH_HEADER);
    for (int j = 0; j < meta->count; j++) {
        const char *key = meta->items[j].key;
        if (strncmp(key, NODE_PREFIX, NODE_PREFIX_LEN)) continue;
        if (node_key(key, n) < 0)
            return aibox_fail(err, AIBOX_E_FORMAT, "%s: graph key %s names no node 1..%d", path, key, n - 1);
        total++;
    }
    if (total < n - 1)
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: graph malformed: %d nodes claimed, keys for at most %d", path, n,
                          total);
    int *start = calloc((size_t)n + 1, sizeof *start);
    const aibox_meta **ent = malloc((size_t)(total ? total : 1) * sizeof *ent);
    aibox_status s = AIBOX_OK;
    if (!start || !ent) {
        s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory reading the graph", path);
        goto done;
    }
    for (int j = 0; j < meta->count; j++)
        if (!strncmp(meta->items[j].key, NODE_PREFIX, NODE_PREFIX_LEN))
            start[node_key(meta->items[j].key, n) + 1]++;
    for (int i = 0; i < n; i++) start[i + 1] += start[i];
    for (int j = 0; j < meta->count; j++) /* start[i] moves to node i's end; back after the loop */
        if (!strncmp(meta->items[j].key, NODE_PREFIX, NODE_PREFIX_LEN))
            ent[start[node_key(meta->items[j].key, n)]++] = &meta->items[j];
    for (int i = n; i > 0; i--) start[i] = start[i - 1];
    start[0] = 0;
    for (int i = 1; i < n && !s; i++) s = read_node_v2(m, i, ent + start[i], start[i + 1] - start[i], path, err);
done:
    free(start);
    free(ent);
    return s;
}

/* Rebuilds the nodes from the graph metadata, either version: every value
 * range-checked, every shape computed by the same checked rules as the
 * builders. */
static aibox_status read_graph(aibox_model **out, const aibox_meta *e, const aibox_meta_list *meta, const char *path,
                               aibox_error *err)
{
    int64_t v[GRAPH_HEADER] = {0};
    aibox_model *m = NULL;
    v[0] = e->n > 0 ? e->ints[0] : 0;
    if (v[0] > GRAPH_VERSION)
        return aibox_fail(err, AIBOX_E_UNSUPPORTED,
                          "%s: graph version %lld, written by a newer libaibox (this one reads graph versions up to "
                          "%d); update libaibox to load it",
                          path, (long long)v[0], GRAPH_VERSION);
    if (v[0] < 1) return aibox_fail(err, AIBOX_E_FORMAT, "%s: graph version %lld is invalid", path, (long long)v[0]);
    aibox_status s = read_header(&m, e, v, path, err);
    if (!s) s = v[0] == 1 ? read_graph_v1(m, e, v, path, err) : read_graph_v2(m, e, meta, v, path, err);
    if (!s && v[4] >= m->n_nodes) s = aibox_fail(err, AIBOX_E_FORMAT, "%s: graph output node %lld does not exist", path, (long long)v[4]);
    if (s) {
        aibox_model_free(&m);
        return s;
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
            char name[32];
            size_t n = node_tensor(m, i, q, name);
            if (!n) continue;
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
        if (graph_key(x->key)) continue;
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

static const aibox_file_entry *entry(const aibox_file *f, const char *name)
{
    for (int j = 0; j < f->n_tensors; j++)
        if (!strcmp(f->tensors[j].name, name)) return &f->tensors[j];
    return NULL;
}

/* An 8-bit model's quantisation from its file (quant_tensors' layout): the
 * parameters just read hold the integers; they become the dequantised floats. */
static aibox_status load_quant(aibox_model *m, const aibox_file *f, const char *path, aibox_error *err)
{
    const aibox_file_entry *act = entry(f, QUANT_ACT);
    if (act->ndim != 2 || act->dims[0] != m->n_nodes || act->dims[1] != 2)
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: tensor %s is not %d x 2 (a scale and a zero point per node)", path,
                          QUANT_ACT, m->n_nodes);
    aibox_quant *q = aibox_quant_create(m->n_nodes);
    if (!q) return aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", path);
    aibox_model_set_quant(m, q);
    for (int i = 0; i < m->n_nodes; i++) {
        float sc = act->data[2 * i], zp = act->data[2 * i + 1];
        if (!(sc >= 0 && sc < 1e30f) || !(zp >= 0 && zp <= 255 && zp == (float)(int)zp))
            return aibox_fail(err, AIBOX_E_FORMAT, "%s: node %d's quantisation (scale %g, zero point %g) is invalid",
                              path, i, (double)sc, (double)zp);
        q->scale[i] = sc, q->zp[i] = (int32_t)zp;
    }
    for (int i = 1; i < m->n_nodes; i++) {
        char n0[32], n1[32], p0[32], p1[32];
        snprintf(n0, sizeof n0, "n%d.q0", i), snprintf(n1, sizeof n1, "n%d.q1", i);
        const aibox_file_entry *ws = entry(f, n0), *wo = entry(f, n1);
        const aibox_node *nd = &m->nodes[i];
        if (!ws && !wo) {
            char pn[32];
            const aibox_file_entry *e = node_tensor(m, i, 0, pn) ? entry(f, pn) : NULL;
            if (e && e->dtype == AIBOX_FILE_I8)
                return aibox_fail(err, AIBOX_E_FORMAT, "%s: node %d's weights are int8 without their scales (%s)", path,
                                  i, n0);
            continue;
        }
        int out = aibox_quant_out_channels(nd);
        size_t np0 = node_tensor(m, i, 0, p0), np1 = node_tensor(m, i, 1, p1);
        const aibox_file_entry *e0 = entry(f, p0), *e1 = np1 ? entry(f, p1) : NULL;
        if (out < 1 || !ws || !wo || ws->count != (size_t)out || wo->count != 2 || !e0 || e0->dtype != AIBOX_FILE_I8 ||
            (np1 && (!e1 || e1->dtype != AIBOX_FILE_I32)))
            return aibox_fail(err, AIBOX_E_FORMAT, "%s: node %d (%s): its integer weights are incomplete (%s, %s, "
                              "%s as int8, %s as int32)", path, i, aibox_layer_kind_name(nd->kind), n0, n1, p0, p1);
        aibox_status s = aibox_quant_alloc_weights(q, i, np0, out, err);
        if (s) return s;
        aibox_qweights *qw = &q->qw[i];
        for (size_t k = 0; k < np0; k++) qw->w[k] = (int8_t)e0->data[k];
        for (size_t k = 0; k < np1; k++) qw->bias[k] = (int32_t)e1->data[k];
        for (int o = 0; o < out; o++) {
            if (!(ws->data[o] > 0 && ws->data[o] < 1e30f))
                return aibox_fail(err, AIBOX_E_FORMAT, "%s: node %d's weight scale %d is %g", path, i, o,
                                  (double)ws->data[o]);
            qw->wscale[o] = ws->data[o];
        }
        if (!(wo->data[0] >= -255 && wo->data[0] <= 255))
            return aibox_fail(err, AIBOX_E_FORMAT, "%s: node %d's weight offset %g is outside -255..255", path, i,
                              (double)wo->data[0]);
        if (wo->data[1] != 0 && wo->data[1] != 1)
            return aibox_fail(err, AIBOX_E_FORMAT, "%s: node %d's multiplier rule %g is not 0 or 1", path, i,
                              (double)wo->data[1]);
        qw->wofs = (int32_t)wo->data[0], qw->float_product = (int)wo->data[1];
    }
    aibox_quant_dequantize(m);
    return AIBOX_OK;
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
    if ((s = read_graph(&m, e, &f->meta, path, err)) || (s = check_tensors(m, f, path, err))) goto fail;
    if (!weights) {
        m->finished = 1, m->weightless = 1;
    } else {
        if ((s = check_finite(f, path, err)) || (s = aibox_model_alloc_params(m, 0, 0, err))) goto fail;
        for (int i = 1; i < m->n_nodes; i++) {
            for (int q = 0; q < 4; q++) {
                char name[32];
                size_t n = node_tensor(m, i, q, name);
                if (!n) continue;
                memcpy(node_tensor_data(m, i, q), aibox_file_tensor_data(f, name, NULL, NULL), n * sizeof(float));
            }
        }
    }
    if (weights && aibox_file_tensor_data(f, QUANT_ACT, NULL, NULL) && (s = load_quant(m, f, path, err))) goto fail;
    /* without weights, an 8-bit model still says it is one (an empty table: it cannot run anyway) */
    if (!weights && entry(f, QUANT_ACT) && !(m->quant = aibox_quant_create(m->n_nodes))) {
        s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", path);
        goto fail;
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

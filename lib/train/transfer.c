/* Transfer learning (see aibox/transfer.h): a pretrained model cut at its
 * feature layer with a new head, and the head trained on features the frozen
 * trunk computes once per image. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/meta.h"
#include "nn/nn.h"
#include "train/train.h"

/* ------------------------------------------------------------------ the cut */
static const char *backbone_name(const aibox_transfer_opts *o)
{
    return o->name ? o->name : "the backbone";
}

/* A tap name, or a node index in decimal, of a backbone with n nodes: the node or -1. */
static int tap_node(const aibox_model *bb, const char *tap, int n)
{
    char *end, key[AIBOX_FILE_MAX_NAME + 1];
    long v = strtol(tap, &end, 10);
    int64_t t;
    if (*tap && !*end && v >= 1 && v < n) return (int)v;
    if (snprintf(key, sizeof key, "%s%s", AIBOX_META_TAP_PREFIX, tap) >= (int)sizeof key) return -1;
    if (aibox_model_get_meta_int(bb, key, &t) == AIBOX_OK && t >= 1 && t < n) return (int)t;
    return -1;
}

int aibox_transfer_cut(const aibox_model *bb, const aibox_transfer_opts *opts, aibox_error *err)
{
    static const aibox_transfer_opts zero;
    const aibox_transfer_opts *o = opts ? opts : &zero;
    if (!bb) return -aibox_fail(err, AIBOX_E_INVALID, "transfer: NULL backbone");
    int n = aibox_model_node_count(bb), node;
    if ((o->node > 0) + (o->tap != NULL) + (o->stride > 0) > 1)
        return -aibox_fail(err, AIBOX_E_INVALID, "transfer: a node, a tap and a stride each choose the cut; give one");
    if (o->node > 0) {
        if (o->node >= n)
            return -aibox_fail(err, AIBOX_E_INVALID, "node %d is not a node 1..%d of %s", o->node, n - 1,
                               backbone_name(o));
        return o->node;
    }
    if (o->stride > 0) {
        if ((node = aibox_model_stride_node(bb, o->stride)) < 1)
            return -aibox_fail(err, AIBOX_E_NOTFOUND, "%s: no stage ends at stride %d", backbone_name(o), o->stride);
        return node;
    }
    if (o->tap) {
        if ((node = tap_node(bb, o->tap, n)) < 1)
            return -aibox_fail(err, AIBOX_E_NOTFOUND, "'%s' is neither a node 1..%d of %s nor a tap name it has",
                               o->tap, n - 1, backbone_name(o));
        return node;
    }
    if ((node = aibox_model_embedding_node(bb)) < 1)
        return -aibox_fail(err, AIBOX_E_NOTFOUND, "%s: no feature layer (no spatial node) to cut at", backbone_name(o));
    return node;
}

/* ------------------------------------------------------------------ the new model */
/* What makes the model self-describing: where it came from, its
 * preprocessing (the backbone's), its classes and its task. */
static aibox_status describe_build(aibox_model *m, const aibox_preproc *pp, int cut, int classes,
                                   const char *const *names, const aibox_transfer_opts *o, aibox_error *err)
{
    aibox_status s = AIBOX_OK;
    if (o->name && aibox_utf8_valid(o->name, strlen(o->name))) s = aibox_model_set_meta_str(m, "aibox.backbone", o->name, err);
    if (!s) s = aibox_model_set_meta_int(m, "aibox.backbone.cut", cut, err);
    if (!s) s = aibox_model_set_meta_int(m, "aibox.backbone.frozen", o->freeze ? 1 : 0, err);
    if (!s) s = aibox_model_set_meta_str(m, "aibox.backbone.init", o->from_scratch ? "random" : "pretrained", err);
    if (!s) s = aibox_preproc_to_model(pp, m, err);
    if (!s) s = aibox_model_set_meta_strs(m, AIBOX_META_CLASS_NAMES, names ? classes : 0, names, err);
    if (!s) s = aibox_model_set_meta_str(m, AIBOX_META_TASK, "classify", err);
    return s;
}

aibox_status aibox_transfer_build(aibox_model **out, const aibox_model *bb, int classes,
                                  const char *const *class_names, const aibox_transfer_opts *opts,
                                  aibox_transfer_info *info, aibox_error *err)
{
    static const aibox_transfer_opts zero;
    const aibox_transfer_opts *o = opts ? opts : &zero;
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "transfer: NULL output pointer");
    *out = NULL;
    if (classes < 2) return aibox_fail(err, AIBOX_E_INVALID, "transfer: %d classes, need >= 2", classes);
    if (!(o->dropout >= 0.0f && o->dropout < 1.0f))
        return aibox_fail(err, AIBOX_E_INVALID, "transfer: dropout %g is not in [0, 1)", (double)o->dropout);
    int cut = aibox_transfer_cut(bb, o, err);
    if (cut < 0) return (aibox_status)-cut;
    aibox_preproc pp;
    aibox_status s = aibox_preproc_from_model(&pp, bb, err);
    if (s) return s;
    aibox_model *m = NULL;
    int *map = malloc(sizeof(int) * (size_t)aibox_model_node_count(bb));
    s = map ? aibox_model_extract(&m, bb, cut, map, err) : aibox_fail(err, AIBOX_E_NOMEM, "transfer: out of memory");
    /* a new head is trained in float: the trunk of an 8-bit backbone becomes
     * its float twin (quantise the trained model afterwards: aibox-quantize) */
    if (!s) aibox_model_dequantize(m);
    if (!s && o->from_scratch) s = aibox_model_init_params(m, o->seed, err);
    int t = map ? map[cut] : -1, f = -1, k = -1;
    free(map);
    if (!s) {
        int c, h, w;
        for (int i = 1; i < aibox_model_node_count(m); i++) aibox_model_set_frozen(m, i, o->freeze);
        aibox_model_node_shape(m, t, &c, &h, &w);
        f = h * w > 1 ? aibox_global_avgpool(m, t) : t;
        int d = o->dropout > 0 ? aibox_dropout(m, f, o->dropout) : f;
        k = aibox_dense(m, d, classes, 1);
        s = aibox_model_finish(m, o->seed, err);
    }
    if (!s) s = describe_build(m, &pp, cut, classes, class_names, o, err);
    if (s) {
        aibox_model_free(&m);
        return s;
    }
    if (info) info->cut = cut, info->feature_node = f, info->head_node = k;
    *out = m;
    return AIBOX_OK;
}

/* ------------------------------------------------------------------ the head */
/* A model's head as aibox_transfer_train_head reads it: the output dense
 * layer, an optional dropout before it, and the node they read. */
typedef struct {
    int dense, dropout, feature; /* dropout: -1 when there is none */
    float rate;
} head_nodes;

static aibox_status find_head(const aibox_model *m, head_nodes *h, const char *what, aibox_error *err)
{
    if (!m || !m->finished || m->weightless)
        return aibox_fail(err, AIBOX_E_STATE, "%s: the model is %s", what,
                          m && m->finished ? "without its weights (aibox_model_load_info)" : "not finished");
    int out = aibox_model_output(m);
    if (out < 1 || m->nodes[out].kind != AIBOX_LAYER_DENSE)
        return aibox_fail(err, AIBOX_E_INVALID, "%s: the model's output is not a dense layer (a head)", what);
    h->dense = out, h->dropout = -1, h->rate = 0, h->feature = m->nodes[out].in[0];
    if (m->nodes[h->feature].kind == AIBOX_LAYER_DROPOUT) {
        h->dropout = h->feature, h->rate = m->nodes[h->feature].settings.dropout.rate;
        h->feature = m->nodes[h->feature].in[0];
    }
    if (h->feature < 1) return aibox_fail(err, AIBOX_E_INVALID, "%s: the head reads the input: there is no trunk", what);
    return AIBOX_OK;
}

/* ------------------------------------------------------------------ cached features */
struct aibox_transfer_features {
    int dim, batch, n[2]; /* n: training, validation images */
    float *x[2];          /* n x dim each; x[1] may be x[0] (validation on the training images) */
    int *y[2];
    uint64_t seed;
    double seconds;
};

void aibox_transfer_features_free(aibox_transfer_features **pf)
{
    if (!pf || !*pf) return;
    aibox_transfer_features *f = *pf;
    if (f->x[1] != f->x[0]) free(f->x[1]), free(f->y[1]);
    free(f->x[0]), free(f->y[0]), free(f);
    *pf = NULL;
}

/* Runs m once over a split in order, in batches of eb, keeping node feat's
 * output (dim values) per image into *x and the labels into *y. */
static aibox_status extract_split(const aibox_model *m, int feat, int dim, const aibox_dataset *ds, aibox_split split,
                                  const aibox_preproc *pp, int eb, uint64_t seed, int threads, float **x, int **y,
                                  int *count, aibox_error *err)
{
    int n = aibox_dataset_count(ds, split);
    *x = malloc(sizeof(float) * (size_t)dim * (n ? n : 1));
    *y = malloc(sizeof(int) * (n ? n : 1));
    if (!*x || !*y) return aibox_fail(err, AIBOX_E_NOMEM, "features: out of memory");
    aibox_loader *ld = NULL;
    aibox_ctx *ctx = NULL;
    aibox_status s = aibox_loader_create(&ld, ds, pp, &(aibox_loader_opts){.split = split, .batch = eb, .seed = seed, .threads = threads}, err);
    if (!s) s = aibox_ctx_create(&ctx, m, &(aibox_ctx_opts){.max_batch = eb, .height = pp->height, .width = pp->width, .threads = threads, .seed = 1}, err);
    if (!s) s = aibox_ctx_freeze_weights(ctx, m, err); /* the trunk does not change while this context lives */
    int seen = 0;
    while (!s) {
        const float *bx;
        const int *by;
        int k;
        if ((s = aibox_loader_next(ld, &bx, &by, &k, err)) || k == 0) break;
        if (seen + k > n) {
            s = aibox_fail(err, AIBOX_E_STATE, "features: the loader gave more images than the split has");
            break;
        }
        if ((s = aibox_ctx_infer(ctx, m, bx, k, err))) break;
        memcpy(*x + (size_t)seen * dim, aibox_ctx_node_output(ctx, feat, NULL, NULL, NULL), sizeof(float) * (size_t)dim * k);
        memcpy(*y + seen, by, sizeof(int) * k);
        seen += k;
    }
    *count = seen;
    aibox_ctx_free(&ctx);
    aibox_loader_free(&ld);
    return s;
}

aibox_status aibox_transfer_features_create(aibox_transfer_features **out, const aibox_model *m,
                                            const aibox_dataset *ds, const aibox_preproc *pp_or_null,
                                            const aibox_transfer_features_opts *opts,
                                            aibox_transfer_features_stats *stats, aibox_error *err)
{
    static const aibox_transfer_features_opts zero;
    const aibox_transfer_features_opts *o = opts ? opts : &zero;
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "features: NULL output pointer");
    *out = NULL;
    if (!ds) return aibox_fail(err, AIBOX_E_INVALID, "features: NULL dataset");
    if (o->batch < 0 || o->validation < -1 || o->validation > 1)
        return aibox_fail(err, AIBOX_E_INVALID, "features: batch %d or validation %d out of range", o->batch,
                          o->validation);
    head_nodes hn;
    aibox_preproc pp;
    aibox_status s = find_head(m, &hn, "features", err);
    if (!s && pp_or_null) pp = *pp_or_null;
    else if (!s) s = aibox_preproc_from_model(&pp, m, err);
    if (s) return s;
    if (pp.channels != m->in_c || pp.height != m->in_h || pp.width != m->in_w)
        return aibox_fail(err, AIBOX_E_SHAPE, "features: preprocessing %dx%dx%d does not match the model input %dx%dx%d",
                          pp.channels, pp.height, pp.width, m->in_c, m->in_h, m->in_w);
    aibox_transfer_features *f = calloc(1, sizeof *f);
    if (!f) return aibox_fail(err, AIBOX_E_NOMEM, "features: out of memory");
    int c, h, w;
    aibox_model_node_shape(m, hn.feature, &c, &h, &w);
    f->dim = c * h * w, f->batch = o->batch ? o->batch : 32, f->seed = o->seed;
    int eb = AIBOX_MIN(f->batch, 16), threads = o->threads;
    double t0 = aibox_train_now();
    s = extract_split(m, hn.feature, f->dim, ds, AIBOX_SPLIT_TRAIN, &pp, eb, o->seed, threads, &f->x[0], &f->y[0],
                      &f->n[0], err);
    if (!s && o->validation == 1) f->x[1] = f->x[0], f->y[1] = f->y[0], f->n[1] = f->n[0];
    else if (!s && o->validation == 0 && aibox_dataset_count(ds, AIBOX_SPLIT_VAL) > 0)
        s = extract_split(m, hn.feature, f->dim, ds, AIBOX_SPLIT_VAL, &pp, eb, o->seed, threads, &f->x[1], &f->y[1],
                          &f->n[1], err);
    f->seconds = aibox_train_now() - t0;
    if (s) {
        aibox_transfer_features_free(&f);
        return s;
    }
    if (stats) stats->dim = f->dim, stats->train = f->n[0], stats->val = f->n[1], stats->seconds = f->seconds;
    *out = f;
    return AIBOX_OK;
}

/* Cached features served as aibox_train's batch source. */
typedef struct {
    const float *x;
    const int *y;
    int n, dim, batch, shuffle, pos;
    uint64_t seed;
    int *order;
    float *bx; /* one batch */
    int *by;
} feat_source;

#define TAG_SHUFFLE 0x73687566666c65ULL /* "shuffle", the loader's tag */

static aibox_status feats_begin(void *user, int epoch, aibox_error *err)
{
    feat_source *f = user;
    for (int i = 0; i < f->n; i++) f->order[i] = i;
    if (f->shuffle) {
        aibox_rng r;
        aibox_rng_seed(&r, aibox_seed_mix(f->seed, (uint32_t)epoch, TAG_SHUFFLE)); /* as the loader's shuffle */
        for (int i = f->n - 1; i > 0; i--) {
            int j = (int)aibox_rng_below(&r, (uint32_t)i + 1), t = f->order[i];
            f->order[i] = f->order[j], f->order[j] = t;
        }
    }
    f->pos = 0;
    return AIBOX_OK;
}

static aibox_status feats_next(void *user, const float **x, const int **labels, int *n, aibox_error *err)
{
    feat_source *f = user;
    int k = AIBOX_MIN(f->n - f->pos, f->batch);
    for (int i = 0; i < k; i++) {
        int s = f->order[f->pos + i];
        memcpy(f->bx + (size_t)i * f->dim, f->x + (size_t)s * f->dim, sizeof(float) * f->dim);
        f->by[i] = f->y[s];
    }
    f->pos += k;
    *x = f->bx, *labels = f->by, *n = k;
    return AIBOX_OK;
}

static aibox_status source_open(feat_source *src, const aibox_transfer_features *f, int which, aibox_error *err)
{
    *src = (feat_source){.x = f->x[which], .y = f->y[which], .n = f->n[which], .dim = f->dim, .batch = f->batch,
                         .shuffle = which == 0, .seed = f->seed};
    src->order = malloc(sizeof(int) * (size_t)(src->n ? src->n : 1));
    src->bx = malloc(sizeof(float) * (size_t)f->dim * f->batch);
    src->by = malloc(sizeof(int) * (size_t)f->batch);
    if (!src->order || !src->bx || !src->by) return aibox_fail(err, AIBOX_E_NOMEM, "features: out of memory");
    return AIBOX_OK;
}

static void source_close(feat_source *src)
{
    free(src->order), free(src->bx), free(src->by);
}

/* Copies a dense layer's weight and bias from one model to another. */
static void copy_dense(aibox_model *dst, int dn, aibox_model *src, int sn)
{
    for (int k = 0; k < 2; k++) {
        size_t a, b;
        float *d = aibox_model_node_param(dst, dn, k, &a), *s = aibox_model_node_param(src, sn, k, &b);
        if (d && s && a == b) memcpy(d, s, sizeof(float) * a);
    }
}

/* m's head alone, on a dim-value input: [dropout] -> dense, with m's head
 * weights and class names; *dense receives the dense node's index. */
static aibox_status head_model(aibox_model **out, aibox_model *m, const head_nodes *hn, int dim, uint64_t seed,
                               int *dense, aibox_error *err)
{
    aibox_model *h = NULL;
    int classes, d = 0, n_names;
    const char *const *names;
    aibox_model_node_shape(m, hn->dense, &classes, NULL, NULL);
    aibox_status s = aibox_model_create(&h, dim, 1, 1, err);
    if (!s) {
        if (hn->dropout >= 0) d = aibox_dropout(h, 0, hn->rate);
        *dense = aibox_dense(h, d, classes, 1);
        s = aibox_model_finish(h, seed, err);
    }
    if (!s && aibox_model_get_meta_strs(m, AIBOX_META_CLASS_NAMES, &n_names, &names) == AIBOX_OK)
        s = aibox_model_set_meta_strs(h, AIBOX_META_CLASS_NAMES, n_names, names, err);
    if (!s) copy_dense(h, *dense, m, hn->dense);
    if (s) aibox_model_free(&h);
    *out = h;
    return s;
}

aibox_status aibox_transfer_train_head(aibox_model *m, const aibox_transfer_features *f, const aibox_train_opts *o,
                                       int threads, aibox_train_result *res, aibox_error *err)
{
    if (!m || !f || !o) return aibox_fail(err, AIBOX_E_INVALID, "train head: NULL argument");
    head_nodes hn;
    aibox_status s = find_head(m, &hn, "train head", err);
    if (s) return s;
    int c, h, w;
    aibox_model_node_shape(m, hn.feature, &c, &h, &w);
    if (c * h * w != f->dim)
        return aibox_fail(err, AIBOX_E_SHAPE, "train head: the features have %d values, the head reads %d", f->dim,
                          c * h * w);
    for (int i = 1; i < m->n_nodes; i++) {
        const aibox_node *nd = &m->nodes[i];
        if (i != hn.dense && nd->n_param[0] + nd->n_param[1] > 0 && !nd->frozen)
            return aibox_fail(err, AIBOX_E_STATE,
                              "train head: node %d (%s) is not frozen: the trunk would not train; train the whole "
                              "model with aibox_train",
                              i, aibox_layer_kind_name(nd->kind));
    }
    aibox_model *hm = NULL;
    int dense = -1;
    feat_source ts = {0}, vs = {0};
    if (!(s = head_model(&hm, m, &hn, f->dim, o->seed, &dense, err)) && !(s = source_open(&ts, f, 0, err)) &&
        !(f->x[1] && (s = source_open(&vs, f, 1, err)))) {
        aibox_batch_source tb = {&ts, ts.n, feats_begin, feats_next, NULL}, vb = {&vs, vs.n, feats_begin, feats_next, NULL};
        s = aibox_train(hm, &tb, f->batch, f->x[1] ? &vb : NULL, o, threads, res, err);
    }
    if (!s) copy_dense(m, hn.dense, hm, dense);
    source_close(&ts);
    source_close(&vs);
    aibox_model_free(&hm);
    return s;
}

/* Fine-tuning for aibox-train --backbone (header-only, static): cut a
 * pretrained model at its feature layer, put a new head on it, and train the
 * head on cached features when the trunk is frozen and the images are not
 * augmented (the trunk's output is then the same every epoch). */
#ifndef AIBOX_TRANSFER_H
#define AIBOX_TRANSFER_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aibox.h"
#include "cli.h"

/* Fills a caller's error record (the library's own helper is internal). */
static aibox_status transfer_fail(aibox_error *err, aibox_status code, const char *msg)
{
    if (err) {
        err->code = code;
        snprintf(err->msg, sizeof err->msg, "%s", msg);
    }
    return code;
}

/* The cut node for --tap (a node index or an "aibox.tap.NAME" name) or
 * --stride; -1 with a message on stderr when there is none. */
static int transfer_cut(const aibox_model *bb, const char *path, const char *tap, long stride)
{
    const char *prog = "aibox-train";
    int n = aibox_model_node_count(bb), node = -1;
    if (stride > 0) {
        if ((node = aibox_model_stride_node(bb, (int)stride)) < 1)
            fprintf(stderr, "%s: %s: no stage ends at stride %ld\n", prog, path, stride);
        return node;
    }
    if (tap) {
        char *end, key[200];
        long v = strtol(tap, &end, 10);
        int64_t t;
        snprintf(key, sizeof key, "aibox.tap.%s", tap);
        if (*tap && !*end && v >= 1 && v < n) node = (int)v;
        else if (aibox_model_get_meta_int(bb, key, &t) == AIBOX_OK && t >= 1 && t < n) node = (int)t;
        else fprintf(stderr, "%s: --tap '%s' is neither a node 1..%d of %s nor a tap name it has\n", prog, tap, n - 1, path);
        return node;
    }
    /* default: the embedding before the classifier (see aibox_model_embedding_node) */
    if ((node = aibox_model_embedding_node(bb)) < 1)
        fprintf(stderr, "%s: %s: no feature layer (no spatial node) to cut at; use --tap NODE\n", prog, path);
    return node;
}

/* The new model: the backbone up to cut, then [global average pool if the
 * cut is spatial] -> [dropout] -> dense(classes). scratch: the trunk's
 * parameters are drawn afresh (same architecture, no pretraining). *feat
 * receives the node whose output is the pooled feature vector, *head the
 * dense node. */
static aibox_status transfer_build(aibox_model **out, const aibox_model *bb, int cut, int classes, float dropout,
                                   int freeze, int scratch, uint64_t seed, int *feat, int *head, aibox_error *err)
{
    aibox_model *m = NULL;
    int *map = malloc(sizeof(int) * (size_t)aibox_model_node_count(bb));
    aibox_status s = map ? aibox_model_extract(&m, bb, cut, map, err) : transfer_fail(err, AIBOX_E_NOMEM, "out of memory");
    if (!s && scratch) s = aibox_model_init_params(m, seed, err);
    if (!s) {
        int t = map[cut], c, h, w;
        for (int i = 1; i < aibox_model_node_count(m); i++) aibox_model_set_frozen(m, i, freeze);
        aibox_model_node_shape(m, t, &c, &h, &w);
        int f = h * w > 1 ? aibox_global_avgpool(m, t) : t;
        int d = dropout > 0 ? aibox_dropout(m, f, dropout) : f;
        int k = aibox_dense(m, d, classes, 1);
        s = aibox_model_finish(m, seed, err);
        *feat = f, *head = k;
    }
    free(map);
    if (s) aibox_model_free(&m);
    *out = m;
    return s;
}

/* Features held in memory, served as a batch source (shuffled per epoch). */
typedef struct {
    float *x;     /* n x dim */
    int *y;
    int n, dim, batch, shuffle, pos;
    uint64_t seed;
    int *order;
    float *bx;    /* one batch */
    int *by;
} transfer_feats;

static aibox_status feats_begin(void *user, int epoch, aibox_error *err)
{
    transfer_feats *f = user;
    for (int i = 0; i < f->n; i++) f->order[i] = i;
    if (f->shuffle) {
        aibox_rng r;
        aibox_rng_seed(&r, f->seed * 1000003u + (uint64_t)epoch);
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
    transfer_feats *f = user;
    int k = f->n - f->pos < f->batch ? f->n - f->pos : f->batch;
    for (int i = 0; i < k; i++) {
        int s = f->order[f->pos + i];
        memcpy(f->bx + (size_t)i * f->dim, f->x + (size_t)s * f->dim, sizeof(float) * f->dim);
        f->by[i] = f->y[s];
    }
    f->pos += k;
    *x = f->bx, *labels = f->by, *n = k;
    return AIBOX_OK;
}

static void feats_free(transfer_feats *f)
{
    free(f->x), free(f->y), free(f->order), free(f->bx), free(f->by);
    memset(f, 0, sizeof *f);
}

/* Runs the frozen trunk once over a split and keeps node feat's output. */
static aibox_status feats_extract(transfer_feats *f, const aibox_model *m, int feat, const aibox_dataset *ds,
                                  aibox_split split, const aibox_preproc *pp, int batch, int shuffle, uint64_t seed,
                                  int threads, aibox_error *err)
{
    int c, h, w, n = aibox_dataset_count(ds, split), eb = batch < 16 ? batch : 16; /* activations of a whole trunk */
    aibox_model_node_shape(m, feat, &c, &h, &w);
    memset(f, 0, sizeof *f);
    f->n = n, f->dim = c * h * w, f->batch = batch, f->shuffle = shuffle, f->seed = seed;
    f->x = malloc(sizeof(float) * (size_t)f->dim * (n ? n : 1));
    f->y = malloc(sizeof(int) * (n ? n : 1));
    f->order = malloc(sizeof(int) * (n ? n : 1));
    f->bx = malloc(sizeof(float) * (size_t)f->dim * batch);
    f->by = malloc(sizeof(int) * batch);
    if (!f->x || !f->y || !f->order || !f->bx || !f->by) return transfer_fail(err, AIBOX_E_NOMEM, "features: out of memory");
    aibox_loader *ld = NULL;
    aibox_ctx *ctx = NULL;
    aibox_status s = aibox_loader_create(&ld, ds, pp, &(aibox_loader_opts){.split = split, .batch = eb, .seed = seed, .threads = threads}, err);
    if (!s) s = aibox_ctx_create(&ctx, m, &(aibox_ctx_opts){.max_batch = eb, .height = pp->height, .width = pp->width, .threads = threads, .seed = 1}, err);
    if (!s) s = aibox_ctx_freeze_weights(ctx, m, err); /* the trunk does not change while this context lives */
    int seen = 0;
    while (!s) {
        const float *x;
        const int *y;
        int k;
        if ((s = aibox_loader_next(ld, &x, &y, &k, err)) || k == 0) break;
        if (seen + k > n) {
            s = transfer_fail(err, AIBOX_E_STATE, "features: the loader gave more images than the split has");
            break;
        }
        if ((s = aibox_ctx_infer(ctx, m, x, k, err))) break;
        memcpy(f->x + (size_t)seen * f->dim, aibox_ctx_node_output(ctx, feat, NULL, NULL, NULL),
               sizeof(float) * (size_t)f->dim * k);
        memcpy(f->y + seen, y, sizeof(int) * k);
        seen += k;
    }
    f->n = seen;
    aibox_ctx_free(&ctx);
    aibox_loader_free(&ld);
    return s;
}

/* A copy of cached features served in order (validation on the training images). */
static aibox_status feats_clone(transfer_feats *d, const transfer_feats *f, aibox_error *err)
{
    memset(d, 0, sizeof *d);
    d->n = f->n, d->dim = f->dim, d->batch = f->batch, d->seed = f->seed;
    size_t n = f->n ? (size_t)f->n : 1;
    d->x = malloc(sizeof(float) * (size_t)f->dim * n);
    d->y = malloc(sizeof(int) * n);
    d->order = malloc(sizeof(int) * n);
    d->bx = malloc(sizeof(float) * (size_t)f->dim * f->batch);
    d->by = malloc(sizeof(int) * f->batch);
    if (!d->x || !d->y || !d->order || !d->bx || !d->by) return transfer_fail(err, AIBOX_E_NOMEM, "features: out of memory");
    memcpy(d->x, f->x, sizeof(float) * (size_t)f->dim * f->n);
    memcpy(d->y, f->y, sizeof(int) * f->n);
    return AIBOX_OK;
}

/* Copies the dense head's weight and bias from one model to another. */
static void transfer_copy_head(aibox_model *dst, int dn, aibox_model *src, int sn)
{
    for (int k = 0; k < 2; k++) {
        size_t a, b;
        float *d = aibox_model_node_param(dst, dn, k, &a), *s = aibox_model_node_param(src, sn, k, &b);
        if (d && s && a == b) memcpy(d, s, sizeof(float) * a);
    }
}

/* Trains m's head on features the frozen trunk computes once per image
 * (train split shuffled per epoch, val split in order; val_split < 0: no
 * validation). The head alone becomes a model (input: the feature vector,
 * initial weights: m's head), is trained by aibox_train with the caller's
 * options (so o->out_dir's checkpoints hold that head model), and its
 * weights are copied back into m. *feat_seconds: the extraction time. */
static aibox_status transfer_train_cached(aibox_model *m, int feat, int head, float dropout, const aibox_dataset *ds,
                                          const aibox_preproc *pp, int val_split, int batch, const aibox_train_opts *o,
                                          int threads, int quiet, aibox_train_result *res, double *feat_seconds,
                                          aibox_error *err)
{
    transfer_feats tf, vf;
    memset(&vf, 0, sizeof vf);
    aibox_model *h = NULL;
    double t0 = cli_now();
    aibox_status s = feats_extract(&tf, m, feat, ds, AIBOX_SPLIT_TRAIN, pp, batch, 1, o->seed, threads, err);
    if (!s && val_split == AIBOX_SPLIT_TRAIN) s = feats_clone(&vf, &tf, err);
    else if (!s && val_split >= 0)
        s = feats_extract(&vf, m, feat, ds, (aibox_split)val_split, pp, batch, 0, o->seed, threads, err);
    *feat_seconds = cli_now() - t0;
    if (!s && !quiet)
        fprintf(stderr, "aibox-train: frozen backbone, no augmentation: %d-value features of %d + %d images computed "
                        "once in %.1fs; the head trains on them\n",
                tf.dim, tf.n, vf.n, *feat_seconds);
    int classes, d = 0, k = -1;
    aibox_model_node_shape(m, head, &classes, NULL, NULL);
    if (!s) s = aibox_model_create(&h, tf.dim, 1, 1, err);
    if (!s) {
        if (dropout > 0) d = aibox_dropout(h, 0, dropout);
        k = aibox_dense(h, d, classes, 1);
        s = aibox_model_finish(h, o->seed, err);
    }
    int n_names;
    const char *const *names;
    if (!s && aibox_model_get_meta_strs(m, AIBOX_META_CLASS_NAMES, &n_names, &names) == AIBOX_OK)
        s = aibox_model_set_meta_strs(h, AIBOX_META_CLASS_NAMES, n_names, names, err);
    if (!s) {
        transfer_copy_head(h, k, m, head);
        aibox_batch_source ts = {&tf, tf.n, feats_begin, feats_next, NULL}, vs = {&vf, vf.n, feats_begin, feats_next, NULL};
        s = aibox_train(h, &ts, batch, val_split >= 0 ? &vs : NULL, o, threads, res, err);
    }
    if (!s) transfer_copy_head(m, head, h, k);
    aibox_model_free(&h);
    feats_free(&tf);
    feats_free(&vf);
    return s;
}

#endif

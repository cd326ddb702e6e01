/* Fitting a detector on a folder of good parts: the seeded hold-out, the
 * streamed fit of the method (PaDiM, PatchCore, the auto-encoder), the held-out (and defect) scores, the thresholds and
 * everything inference and evaluation need, stored in the model. What
 * `aibox-train padim|patchcore|autoencoder` does, as one library call. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "anomaly/anomaly.h"
#include "anomaly/tiles.h"
#include "anomaly/dist.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static const char *leaf(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

typedef struct fitter {
    const aibox_fit_opts *o;
    aibox_fit_report *rep;
    long long max_pixels;
    int min_side;
} fitter;

/* Loads an image (sides below min_side refused) into img. An unusable file
 * is skipped and reported (1 returned with *skip set), or with strict fatal. */
static aibox_status load(fitter *f, const char *path, aibox_image *img, int *skip, aibox_error *err)
{
    aibox_error e = {0};
    *skip = 0;
    aibox_status s = aibox_image_load(img, path, f->max_pixels, &e);
    if (!s && (img->width < f->min_side || img->height < f->min_side))
        s = aibox_fail(&e, AIBOX_E_INVALID, "%s: too small: %dx%d (each side must be at least %d pixels)", path,
                       img->width, img->height, f->min_side);
    if (!s) return AIBOX_OK;
    aibox_image_free(img);
    if (s == AIBOX_E_NOMEM) return aibox_fail(err, s, "%s", e.msg);
    if (f->o->strict) return aibox_fail(err, AIBOX_E_INVALID, "%s (strict: stopped at the first unusable image)", e.msg);
    *skip = 1;
    f->rep->skipped++;
    if (f->o->on_skip) f->o->on_skip(f->o->user, path, &e);
    return AIBOX_OK;
}

/* Scores a list of images with the fitted detector: scores, and with maps
 * and masks (map_len pixels each) their maps and ground truth, at each
 * image's place; ok[i] = 1 for the images scored (the others are skipped). */
static aibox_status score_list(fitter *f, aibox_detector *d, char **paths, int n, float *scores, float *maps,
                               uint8_t *masks, size_t map_len, const char *mask_dir, uint8_t *ok, aibox_error *err)
{
    aibox_status s = AIBOX_OK;
    for (int i = 0; !s && i < n; i++) {
        aibox_image img = {0};
        int skip;
        if ((s = load(f, paths[i], &img, &skip, err)) || skip) continue;
        aibox_error e = {0};
        s = aibox_detector_score(d, &img, scores + i, &e); /* a threshold never rests on a non-finite score */
        aibox_image_free(&img);
        if (s) {
            s = aibox_fail(err, s, "%s: %s", paths[i], e.msg);
            break;
        }
        const float *fm = maps ? aibox_detector_fixed_map(d, &e) : NULL;
        if (maps && !fm) {
            s = aibox_fail(err, e.code, "%s: %s", paths[i], e.msg);
            break;
        }
        if (maps) memcpy(maps + map_len * i, fm, sizeof(float) * map_len);
        if (masks && (s = aibox_load_mask(paths[i], mask_dir, d->pp.width, d->pp.height, f->max_pixels,
                                          masks + map_len * i, &e)))
            s = aibox_fail(err, s, "mask of %s", e.msg);
        if (!s) ok[i] = 1;
        if (f->o->on_progress) f->o->on_progress(f->o->user, "score", i + 1, n);
    }
    return s;
}

/* The scored images of [from, to) moved down to *k onwards, in order. */
static void compact(float *scores, float *maps, uint8_t *masks, size_t map_len, const uint8_t *ok, int from, int to,
                    int *k)
{
    for (int i = from; i < to; i++) {
        if (!ok[i]) continue;
        if (*k != i) {
            scores[*k] = scores[i];
            if (maps) memcpy(maps + map_len * *k, maps + map_len * i, sizeof(float) * map_len);
            if (masks) memcpy(masks + map_len * *k, masks + map_len * i, map_len);
        }
        ++*k;
    }
}

/* The fitted images' fingerprints and names, the backbone's name. Across
 * ranks each rank reads its share of the files. */
static aibox_status record_fit(aibox_model *m, const aibox_fit_opts *o, char **paths, int n, const aibox_comm *comm,
                               aibox_error *err)
{
    int64_t *fp = calloc((size_t)n + 1, sizeof *fp);
    const char **names = malloc(sizeof *names * (size_t)(n + 1));
    aibox_status s = fp && names ? AIBOX_OK : aibox_fail(err, AIBOX_E_NOMEM, "fit: out of memory");
    int a, b;
    aibox_dist_share(comm, aibox_comm_rank(comm), n, 1, &a, &b);
    for (int i = a; !s && i < b; i++) {
        uint64_t v = 0;
        s = aibox_file_fingerprint(paths[i], &v, err); /* the file changed under us */
        fp[i] = (int64_t)v;
    }
    s = aibox_dist_agree(comm, s, "", NULL, 0, err);
    if (!s) s = aibox_dist_gather(comm, fp, sizeof *fp, n, 1, err);
    for (int i = 0; !s && i < n; i++) names[i] = leaf(paths[i]);
    if (!s) s = aibox_model_set_meta_strs(m, AIBOX_META_ANOMALY_FIT_FILES, n, names, err);
    if (!s) s = aibox_model_set_meta_ints(m, AIBOX_META_ANOMALY_FIT_FINGERPRINTS, n, fp, err);
    if (!s && o->backbone_name) s = aibox_model_set_meta_str(m, AIBOX_META_ANOMALY_BACKBONE, o->backbone_name, err);
    free(fp), free((void *)names);
    return s;
}

/* A method's streamed fit behind one shape: begin, the preprocessing its
 * images need, batches added, end into a detector. */
typedef struct fit_ops {
    aibox_status (*begin)(void **fit, const aibox_model *bb, const aibox_fit_opts *o, int batch, aibox_error *err);
    aibox_status (*preproc)(const void *fit, aibox_preproc *pp, aibox_error *err);
    aibox_status (*add)(void *fit, const float *x, int n, aibox_error *err);
    /* every rank's statistics on every rank (NULL: no fit across ranks) */
    aibox_status (*merge)(void *fit, const aibox_comm *comm, aibox_error *err);
    size_t (*bytes)(const void *fit);
    aibox_status (*end)(void *fit, const aibox_fit_opts *o, aibox_detector **d, aibox_error *err);
    void (*free)(void *fit);
} fit_ops;

static aibox_status padim_begin(void **f, const aibox_model *bb, const aibox_fit_opts *o, int batch, aibox_error *err)
{
    return aibox_padim_fit_begin((aibox_padim_fit **)f, bb, o->padim, batch, o->threads, err);
}
static aibox_status padim_preproc(const void *f, aibox_preproc *pp, aibox_error *err)
{
    return aibox_padim_fit_preproc(f, pp, err);
}
static aibox_status padim_add(void *f, const float *x, int n, aibox_error *err) { return aibox_padim_fit_add(f, x, n, err); }
static aibox_status padim_merge(void *f, const aibox_comm *c, aibox_error *err)
{
    return aibox_padim_fit_reduce(f, c, err);
}
static size_t padim_bytes(const void *f) { return aibox_padim_fit_bytes(f); }
static aibox_status padim_end(void *f, const aibox_fit_opts *o, aibox_detector **d, aibox_error *err)
{
    aibox_padim *pd = NULL;
    aibox_status s = aibox_padim_fit_end(f, &pd, err);
    if (!s && o->float32) s = aibox_padim_set_half(pd, 0, err);
    if (!s) s = aibox_detector_from_padim(d, pd, o->threads, err);
    if (s) aibox_padim_free(&pd);
    return s;
}
static void padim_free(void *f) { aibox_padim_fit_free((aibox_padim_fit **)&f); }
static const fit_ops PADIM = {padim_begin, padim_preproc, padim_add, padim_merge, padim_bytes, padim_end, padim_free};

static aibox_status patchcore_begin(void **f, const aibox_model *bb, const aibox_fit_opts *o, int batch,
                                    aibox_error *err)
{
    return aibox_patchcore_fit_begin((aibox_patchcore_fit **)f, bb, o->patchcore, batch, o->threads, err);
}
static aibox_status patchcore_preproc(const void *f, aibox_preproc *pp, aibox_error *err)
{
    return aibox_patchcore_fit_preproc(f, pp, err);
}
static aibox_status patchcore_add(void *f, const float *x, int n, aibox_error *err)
{
    return aibox_patchcore_fit_add(f, x, n, err);
}
static aibox_status patchcore_merge(void *f, const aibox_comm *c, aibox_error *err)
{
    return aibox_patchcore_fit_gather(f, c, err);
}
static size_t patchcore_bytes(const void *f) { return aibox_patchcore_fit_bytes(f); }
static aibox_status patchcore_end(void *f, const aibox_fit_opts *o, aibox_detector **d, aibox_error *err)
{
    aibox_patchcore *pc = NULL;
    aibox_status s = aibox_patchcore_fit_end(f, &pc, err);
    if (!s) s = aibox_detector_from_patchcore(d, pc, o->threads, err);
    if (s) aibox_patchcore_free(&pc);
    return s;
}
static void patchcore_free(void *f) { aibox_patchcore_fit_free((aibox_patchcore_fit **)&f); }
static const fit_ops PATCHCORE = {patchcore_begin, patchcore_preproc, patchcore_add, patchcore_merge, patchcore_bytes, patchcore_end,
                                  patchcore_free};

/* The auto-encoder: no backbone; its options arrive with the channels resolved (fit_folder). */
static aibox_status autoencoder_begin(void **f, const aibox_model *bb, const aibox_fit_opts *o, int batch,
                                      aibox_error *err)
{
    (void)bb, (void)batch;
    return aibox_autoencoder_fit_begin((aibox_autoencoder_fit **)f, o->autoencoder, o->threads, err);
}
static aibox_status autoencoder_preproc(const void *f, aibox_preproc *pp, aibox_error *err)
{
    return aibox_autoencoder_fit_preproc(f, pp, err);
}
static aibox_status autoencoder_add(void *f, const float *x, int n, aibox_error *err)
{
    return aibox_autoencoder_fit_add(f, x, n, err);
}
static size_t autoencoder_bytes(const void *f) { return aibox_autoencoder_fit_bytes(f); }
static aibox_status autoencoder_end(void *f, const aibox_fit_opts *o, aibox_detector **d, aibox_error *err)
{
    aibox_autoencoder *a = NULL;
    aibox_status s = aibox_autoencoder_fit_end(f, &a, err);
    if (!s) s = aibox_detector_from_autoencoder(d, a, o->threads, err);
    if (s) aibox_autoencoder_free(&a);
    return s;
}
static void autoencoder_free(void *f) { aibox_autoencoder_fit_free((aibox_autoencoder_fit **)&f); }
static const fit_ops AUTOENCODER = {autoencoder_begin, autoencoder_preproc, autoencoder_add, NULL, autoencoder_bytes,
                                    autoencoder_end, autoencoder_free};

/* The auto-encoder's channels when the caller left them open: 1 when the
 * first usable fit image is grey (or grey + alpha), else 3. */
static aibox_status pick_channels(fitter *f, char **paths, int n, int *channels, aibox_error *err)
{
    *channels = 3;
    for (int i = 0; i < n; i++) {
        aibox_image img = {0};
        aibox_error e = {0};
        if (aibox_image_load(&img, paths[i], f->max_pixels, &e)) {
            if (e.code == AIBOX_E_NOMEM) return aibox_fail(err, AIBOX_E_NOMEM, "%s", e.msg);
            continue; /* the fit itself skips or refuses it, and says so */
        }
        *channels = img.channels <= 2 ? 1 : 3;
        aibox_image_free(&img);
        break;
    }
    return AIBOX_OK;
}

/* The method's model of the fit list, streamed in batches; used receives
 * the images actually fitted (the skipped ones left out). Across ranks each
 * rank streams its share of the list, the statistics are merged and every
 * rank ends the same fit. */
static aibox_status fit_model(fitter *f, const fit_ops *ops, const aibox_model *bb, char **paths, int n,
                              const aibox_comm *comm, aibox_detector **d, char **used, int *n_used, aibox_error *err)
{
    const aibox_fit_opts *o = f->o;
    int batch = o->batch > 0 ? o->batch : 8;
    void *fit = NULL;
    aibox_preproc pp;
    aibox_status s = ops->begin(&fit, bb, o, batch, err);
    if (!s) s = ops->preproc(fit, &pp, err);
    size_t in_len = s ? 0 : (size_t)pp.channels * pp.width * pp.height;
    float *x = s ? NULL : malloc(sizeof(float) * in_len * (size_t)batch);
    uint8_t *ok = calloc((size_t)n + 1, 1);
    if (!s && (!x || !ok)) s = aibox_fail(err, AIBOX_E_NOMEM, "fit: out of memory");
    int nb = 0, tiled = o->tiling.side > 0, a, b;
    int xs[AIBOX_TILES_MAX], ys[AIBOX_TILES_MAX];
    uint8_t *crop = NULL;
    if (!s && tiled) s = aibox_tiling_check(&o->tiling, &pp, err);
    if (!s && tiled && !(crop = malloc((size_t)pp.channels * pp.width * pp.height)))
        s = aibox_fail(err, AIBOX_E_NOMEM, "fit: out of memory");
    /* shares of whole batches: an image's batch-mates, and so its features to
     * the last bit (the backbone's GEMM blocking depends on the batch), are
     * one process's as long as no image is skipped */
    const int unit = tiled ? 1 : batch;
    aibox_dist_share(comm, aibox_comm_rank(comm), n, unit, &a, &b);
    *n_used = 0;
    for (int i = a; !s && i < b; i++) {
        aibox_image img = {0}, src = {0};
        int skip, tiles = 1;
        aibox_tile_plan p = {.x = xs, .y = ys, .nx = 1, .ny = 1};
        if (!(s = load(f, paths[i], &img, &skip, err)) && !skip && tiled) {
            aibox_error e = {0};
            s = aibox_tile_plan_make(&o->tiling, &pp, img.width, img.height, &p, &e);
            if (!s) s = aibox_tile_source(&pp, &img, &p, &src, &e);
            if (s) s = aibox_fail(err, s, "%s: %s", paths[i], e.msg);
            tiles = p.nx * p.ny;
        }
        for (int t = 0; !s && !skip && t < tiles; t++) {
            /* every tile is one sample of the fit; the batch goes whenever it is full */
            if (tiled) s = aibox_tile_input(&pp, &src, xs[t % p.nx], ys[t / p.nx], crop, x + in_len * nb, err);
            else s = aibox_preprocess(&pp, &img, x + in_len * nb, err);
            if (!s && ++nb == batch) s = ops->add(fit, x, nb, err), nb = 0;
        }
        if (!s && !skip) ok[i] = 1;
        aibox_image_free(&img), aibox_image_free(&src);
        if (!s && i == b - 1 && nb) s = ops->add(fit, x, nb, err), nb = 0;
        if (!s && o->on_progress) o->on_progress(o->user, "fit", i + 1 - a, b - a);
    }
    free(crop);
    s = aibox_dist_agree(comm, s, "", NULL, 0, err); /* every rank's images are in, or all stop */
    if (!s) s = aibox_dist_gather(comm, ok, 1, n, unit, err);
    for (int i = 0; !s && i < n; i++)
        if (ok[i]) used[(*n_used)++] = paths[i];
    if (!s && *n_used < 1) s = aibox_fail(err, AIBOX_E_INVALID, "fit: no usable good image to fit");
    if (!s && aibox_comm_ranks(comm) > 1) s = ops->merge(fit, comm, err);
    if (!s) f->rep->fit_bytes = ops->bytes(fit);
    if (!s) s = ops->end(fit, o, d, err);
    if (!s && tiled) s = aibox_detector_use_tiling(*d, &o->tiling, err); /* the scores that set the thresholds tile too */
    if (fit) ops->free(fit);
    free(x), free(ok);
    return aibox_dist_agree(comm, s, "", NULL, 0, err);
}

aibox_status aibox_detector_fit_folder(aibox_detector **out, const aibox_model *backbone, const char *good_dir,
                                       const aibox_fit_opts *opts, aibox_fit_report *rep, aibox_error *err)
{
    return aibox_detector_fit_folder_dist(out, backbone, good_dir, opts, NULL, rep, err);
}

static uint32_t hash_list(const aibox_file_list *l)
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < l->n; i++) h = aibox_dist_hash(h, l->path[i], strlen(l->path[i]) + 1);
    return h;
}

aibox_status aibox_detector_fit_folder_dist(aibox_detector **out, const aibox_model *backbone, const char *good_dir,
                                            const aibox_fit_opts *opts, const aibox_comm *comm, aibox_fit_report *rep,
                                            aibox_error *err)
{
    aibox_fit_report r0;
    if (!rep) rep = &r0;
    memset(rep, 0, sizeof *rep);
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "fit: NULL output");
    *out = NULL;
    if (!good_dir || !opts || (!backbone && opts->method != AIBOX_ANOMALY_AUTOENCODER))
        return aibox_fail(err, AIBOX_E_INVALID, "fit: NULL argument");
    aibox_status s = aibox_comm_check(comm, err);
    if (s) return s;
    int ranks = aibox_comm_ranks(comm), me = aibox_comm_rank(comm);
    const aibox_fit_opts *o = opts;
    if (ranks > 1 && o->method == AIBOX_ANOMALY_AUTOENCODER)
        return aibox_fail(err, AIBOX_E_UNSUPPORTED,
                          "fit: the auto-encoder is trained, not fitted from sums: it cannot be fitted across ranks "
                          "(fit it in one process)");
    double t_start = now(), holdout = o->holdout == 0 ? 0.2 : o->holdout < 0 ? 0 : o->holdout;
    aibox_threshold_rule rule = o->threshold.rule;
    if (!(holdout >= 0 && holdout <= 0.9))
        return aibox_fail(err, AIBOX_E_INVALID, "fit: hold-out share %g (0 to 0.9)", holdout);
    if (o->method != AIBOX_ANOMALY_PADIM && o->method != AIBOX_ANOMALY_PATCHCORE &&
        o->method != AIBOX_ANOMALY_AUTOENCODER)
        return aibox_fail(err, AIBOX_E_INVALID, "fit: unknown anomaly method %d", (int)o->method);
    if (rule == AIBOX_THRESHOLD_F1 && !o->abnormal_dir)
        return aibox_fail(err, AIBOX_E_INVALID, "fit: the f1 threshold needs defect examples (abnormal_dir)");
    if (rule != AIBOX_THRESHOLD_F1 && rule != AIBOX_THRESHOLD_FIXED && holdout <= 0)
        return aibox_fail(err, AIBOX_E_INVALID, "fit: this threshold rule needs held-out good images (holdout > 0)");
    fitter f = {o, rep, o->max_pixels, o->min_side > 0 ? o->min_side : 8};
    aibox_list_opts lo = {.subfolders = AIBOX_SUBFOLDERS_RECURSE, .images_only = 1, .skip_masks = 1};
    aibox_file_list goods = {0}, bad = {0};
    s = aibox_list_files(&goods, good_dir, &lo, err);
    if (!s && o->abnormal_dir) s = aibox_list_files(&bad, o->abnormal_dir, &lo, err);
    int n_hold = (int)floor(holdout * goods.n + 0.5);
    if (holdout > 0 && n_hold < 1) n_hold = 1;
    if (!s && goods.n - n_hold < 1)
        s = aibox_fail(err, AIBOX_E_INVALID, "%s: %d good images, too few to fit and hold out %d", good_dir, goods.n,
                       n_hold);
    int n_fit = goods.n - n_hold;
    char **g = goods.path, **used = malloc(sizeof *used * (size_t)(goods.n + 1));
    double *times = calloc((size_t)ranks * 2 + 1, sizeof(double)); /* per rank: fit, total seconds; skipped */
    if (!s && (!used || !times)) s = aibox_fail(err, AIBOX_E_NOMEM, "fit: out of memory");
    if (!s) { /* a seeded Fisher-Yates draw; the fit list in name order (reproducible streaming), the hold-out after it */
        aibox_rng rng;
        aibox_rng_seed(&rng, o->seed);
        for (int i = goods.n - 1; i > 0; i--) {
            int j = (int)aibox_rng_below(&rng, (uint32_t)i + 1);
            char *t = g[i];
            g[i] = g[j], g[j] = t;
        }
        qsort(g, (size_t)n_fit, sizeof *g, cmp_str);
        qsort(g + n_fit, (size_t)n_hold, sizeof *g, cmp_str);
    }
    /* every rank lists the same files (they split the lists by position) */
    uint32_t lists[2][2] = {{(uint32_t)goods.n, hash_list(&goods)}, {(uint32_t)bad.n, hash_list(&bad)}};
    s = aibox_dist_agree(comm, s, "the image lists (every rank must see the same folders)", lists[0], 4, err);
    aibox_detector *d = NULL;
    int n_used = 0;
    double t_fit = now();
    const fit_ops *ops = o->method == AIBOX_ANOMALY_PATCHCORE ? &PATCHCORE
                         : o->method == AIBOX_ANOMALY_AUTOENCODER ? &AUTOENCODER
                                                                  : &PADIM;
    aibox_autoencoder_opts ae = {0};
    aibox_fit_opts o2 = *o; /* o with the auto-encoder's channels resolved */
    if (o->method == AIBOX_ANOMALY_AUTOENCODER) {
        if (o->autoencoder) ae = *o->autoencoder;
        if (!s && !ae.channels) s = pick_channels(&f, g, n_fit, &ae.channels, err);
        o2.autoencoder = &ae, f.o = &o2;
    }
    if (!s) s = fit_model(&f, ops, backbone, g, n_fit, comm, &d, used, &n_used, err);
    rep->fit = n_used, rep->fit_seconds = now() - t_fit;
    int go = !s; /* the same on every rank (fit_model ends agreed): whether the collectives below run */
    /* held-out good images, then defect examples: each rank scores its share
     * of each list in place, the shares are gathered, the scored ones kept */
    float *scores = NULL, *maps = NULL;
    uint8_t *masks = NULL, *ok = NULL;
    int n_total = n_hold + bad.n, h_ok = 0, b_ok = 0, ha, hb, ba, bb;
    aibox_dist_share(comm, me, n_hold, 1, &ha, &hb);
    aibox_dist_share(comm, me, bad.n, 1, &ba, &bb);
    if (!s) {
        scores = malloc(sizeof(float) * (size_t)(n_total + 1));
        ok = calloc((size_t)n_total + 1, 1);
        if (o->abnormal_dir) {
            maps = malloc(sizeof(float) * d->map_len * (size_t)(n_total + 1));
            masks = malloc(d->map_len * (size_t)(n_total + 1));
        }
        if (!scores || !ok || (o->abnormal_dir && (!maps || !masks)))
            s = aibox_fail(err, AIBOX_E_NOMEM, "fit: out of memory for %d score maps", n_total);
    }
    size_t ml = d ? d->map_len : 0;
    if (!s)
        s = score_list(&f, d, g + n_fit + ha, hb - ha, scores + ha, maps ? maps + ml * ha : NULL,
                       masks ? masks + ml * ha : NULL, ml, o->mask_dir, ok + ha, err);
    if (!s)
        s = score_list(&f, d, bad.path + ba, bb - ba, scores + n_hold + ba, maps ? maps + ml * (n_hold + ba) : NULL,
                       masks ? masks + ml * (n_hold + ba) : NULL, ml, o->mask_dir, ok + n_hold + ba, err);
    if (ranks > 1 && go) {
        s = aibox_dist_agree(comm, s, "", NULL, 0, err);
        for (int part = 0; part < 2 && !s; part++) {
            int at = part ? n_hold : 0, cnt = part ? bad.n : n_hold;
            s = aibox_dist_gather(comm, scores + at, sizeof *scores, cnt, 1, err);
            if (!s) s = aibox_dist_gather(comm, ok + at, 1, cnt, 1, err);
            if (!s && maps) s = aibox_dist_gather(comm, maps + ml * at, sizeof(float) * ml, cnt, 1, err);
            if (!s && masks) s = aibox_dist_gather(comm, masks + ml * at, ml, cnt, 1, err);
        }
    }
    if (!s) {
        int k = 0;
        compact(scores, maps, masks, ml, ok, 0, n_hold, &k);
        h_ok = k;
        compact(scores, maps, masks, ml, ok, n_hold, n_total, &k);
        b_ok = k - h_ok;
    }
    rep->holdout = h_ok, rep->abnormal = b_ok;
    aibox_thresholds t;
    if (!s)
        s = aibox_thresholds_compute(&o->threshold, scores, h_ok, scores + h_ok, b_ok, maps, masks, ml, &t,
                                     &rep->stats, err);
    if (!s) s = aibox_detector_set_thresholds(d, &t, err);
    if (go) s = aibox_dist_agree(comm, s, "", NULL, 0, err);
    if (!s) s = record_fit(d->method->model(d), o, used, n_used, comm, err);
    if (go) s = aibox_dist_agree(comm, s, "", NULL, 0, err);
    free(scores), free(maps), free(masks), free(ok), free(used);
    aibox_file_list_free(&goods), aibox_file_list_free(&bad);
    rep->seconds = now() - t_start;
    if (!s && ranks > 1) { /* the skipped images of all ranks; the slowest rank's times */
        times[2 * me] = rep->fit_seconds, times[2 * me + 1] = rep->seconds, times[2 * ranks] = rep->skipped;
        s = aibox_comm_sum_f64(comm, times, (size_t)ranks * 2 + 1, err);
        rep->skipped = (int)times[2 * ranks], rep->fit_seconds = rep->seconds = 0;
        for (int r = 0; !s && r < ranks; r++)
            rep->fit_seconds = fmax(rep->fit_seconds, times[2 * r]), rep->seconds = fmax(rep->seconds, times[2 * r + 1]);
    }
    free(times);
    if (s) {
        aibox_detector_free(&d);
        return s;
    }
    *out = d;
    return AIBOX_OK;
}

/* An anomaly model ready to judge images: scores, verdicts, regions,
 * pictures and folder evaluation (see aibox/anomaly.h, "detectors"). The
 * method behind it (PaDiM, PatchCore, the auto-encoder) is one record of scoring calls, so
 * every method shares the same thresholds, regions, pictures and
 * evaluation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "anomaly/anomaly.h"
#include "anomaly/tiles.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------ methods */
/* Each method's record: d->fitted is its model, d->ctx its scoring context. */
static aibox_status padim_score(aibox_detector *d, const float *x, float *map, float *score, aibox_error *err)
{
    return aibox_padim_score(d->ctx, x, 1, NULL, map, score, err);
}
static aibox_model *padim_model(const aibox_detector *d) { return aibox_padim_model(d->fitted); }
static aibox_status padim_open(aibox_detector *d, int threads, aibox_error *err)
{
    return aibox_padim_ctx_create((aibox_padim_ctx **)&d->ctx, d->fitted, 1, threads, err);
}
static aibox_status padim_save(const aibox_detector *d, const char *path, aibox_error *err)
{
    return aibox_padim_save(d->fitted, path, err);
}
static aibox_status padim_load(void **fitted, const char *path, aibox_error *err)
{
    aibox_padim *f = NULL;
    aibox_status s = aibox_padim_load(&f, path, err);
    *fitted = f;
    return s;
}
static void padim_free(aibox_detector *d)
{
    aibox_padim_ctx_free((aibox_padim_ctx **)&d->ctx);
    aibox_padim_free((aibox_padim **)&d->fitted);
}
static const aibox_anomaly_ops PADIM = {"padim", padim_score, padim_model, padim_open, padim_save, padim_load, padim_free};

static aibox_status patchcore_score(aibox_detector *d, const float *x, float *map, float *score, aibox_error *err)
{
    return aibox_patchcore_score(d->ctx, x, 1, NULL, map, score, NULL, err);
}
static aibox_model *patchcore_model(const aibox_detector *d) { return aibox_patchcore_model(d->fitted); }
static aibox_status patchcore_open(aibox_detector *d, int threads, aibox_error *err)
{
    return aibox_patchcore_ctx_create((aibox_patchcore_ctx **)&d->ctx, d->fitted, 1, threads, err);
}
static aibox_status patchcore_save(const aibox_detector *d, const char *path, aibox_error *err)
{
    return aibox_patchcore_save(d->fitted, path, err);
}
static aibox_status patchcore_load(void **fitted, const char *path, aibox_error *err)
{
    aibox_patchcore *f = NULL;
    aibox_status s = aibox_patchcore_load(&f, path, err);
    *fitted = f;
    return s;
}
static void patchcore_free(aibox_detector *d)
{
    aibox_patchcore_ctx_free((aibox_patchcore_ctx **)&d->ctx);
    aibox_patchcore_free((aibox_patchcore **)&d->fitted);
}
static const aibox_anomaly_ops PATCHCORE = {"patchcore", patchcore_score, patchcore_model, patchcore_open,
                                            patchcore_save, patchcore_load, patchcore_free};

static aibox_status autoencoder_score(aibox_detector *d, const float *x, float *map, float *score, aibox_error *err)
{
    return aibox_autoencoder_score(d->ctx, x, 1, NULL, map, score, err);
}
static aibox_model *autoencoder_model(const aibox_detector *d) { return aibox_autoencoder_model(d->fitted); }
static aibox_status autoencoder_open(aibox_detector *d, int threads, aibox_error *err)
{
    return aibox_autoencoder_ctx_create((aibox_autoencoder_ctx **)&d->ctx, d->fitted, 1, threads, err);
}
static aibox_status autoencoder_save(const aibox_detector *d, const char *path, aibox_error *err)
{
    return aibox_autoencoder_save(d->fitted, path, err);
}
static aibox_status autoencoder_load(void **fitted, const char *path, aibox_error *err)
{
    aibox_autoencoder *f = NULL;
    aibox_status s = aibox_autoencoder_load(&f, path, err);
    *fitted = f;
    return s;
}
static void autoencoder_free(aibox_detector *d)
{
    aibox_autoencoder_ctx_free((aibox_autoencoder_ctx **)&d->ctx);
    aibox_autoencoder_free((aibox_autoencoder **)&d->fitted);
}
static const aibox_anomaly_ops AUTOENCODER = {"autoencoder", autoencoder_score, autoencoder_model, autoencoder_open,
                                              autoencoder_save, autoencoder_load, autoencoder_free};

/* The records by the task name their files store (aibox.task). */
static const aibox_anomaly_ops *const METHODS[] = {&PADIM, &PATCHCORE, &AUTOENCODER};

/* ------------------------------------------------------------------ life cycle */
/* Tiling t in use, with its per-tile buffers (none without tiling). */
static aibox_status tiling_buffers(aibox_detector *d, const aibox_tiling *t, aibox_error *err)
{
    if (t->side && !d->tile_map) {
        d->tile_map = malloc(sizeof(float) * d->map_len);
        d->fixed = malloc(sizeof(float) * d->map_len);
        d->crop = malloc(d->map_len * (size_t)d->pp.channels);
        if (!d->tile_map || !d->fixed || !d->crop) return aibox_fail(err, AIBOX_E_NOMEM, "detector: out of memory");
    }
    d->tiling = *t;
    return AIBOX_OK;
}

aibox_status aibox_detector_use_tiling(aibox_detector *d, const aibox_tiling *t, aibox_error *err)
{
    aibox_model *m = d->method->model(d);
    aibox_status s = aibox_tiling_check(t, &d->pp, err);
    if (!s) s = aibox_tiling_to_model(t, m, err);
    return s ? s : tiling_buffers(d, t, err);
}

/* A detector around a method's fitted model: its scoring context,
 * preprocessing, buffers and stored thresholds. On failure the caller keeps
 * its model. */
static aibox_status detector_new(aibox_detector **out, const aibox_anomaly_ops *method, void *fitted, int threads,
                                 aibox_error *err)
{
    if (!out || !fitted) return aibox_fail(err, AIBOX_E_INVALID, "detector: NULL argument");
    *out = NULL;
    aibox_detector *d = calloc(1, sizeof *d);
    if (!d) return aibox_fail(err, AIBOX_E_NOMEM, "detector: out of memory");
    d->method = method, d->fitted = fitted;
    aibox_status s = method->open(d, threads, err);
    const aibox_model *m = s ? NULL : method->model(d);
    if (!s) s = aibox_preproc_from_model(&d->pp, m, err);
    if (!s) {
        d->map_len = d->map_cap = (size_t)d->pp.width * d->pp.height;
        d->map_w = d->pp.width, d->map_h = d->pp.height;
        d->input = malloc(sizeof(float) * (size_t)d->pp.channels * d->map_len);
        d->map = malloc(sizeof(float) * d->map_len);
        if (!d->input || !d->map) s = aibox_fail(err, AIBOX_E_NOMEM, "detector: out of memory");
    }
    aibox_tiling t;
    if (!s) s = aibox_tiling_from_model(&t, m, err);
    if (!s) s = tiling_buffers(d, &t, err);
    /* thresholds are optional until the model judges an image */
    if (!s) d->has_thresholds = aibox_thresholds_from_model(&d->thr, m, NULL) == AIBOX_OK;
    if (s) {
        d->fitted = NULL; /* the caller keeps its model */
        aibox_detector_free(&d);
        return s;
    }
    *out = d;
    return AIBOX_OK;
}

aibox_status aibox_detector_from_padim(aibox_detector **out, aibox_padim *pd, int threads, aibox_error *err)
{
    return detector_new(out, &PADIM, pd, threads, err);
}

aibox_status aibox_detector_from_patchcore(aibox_detector **out, aibox_patchcore *pc, int threads, aibox_error *err)
{
    return detector_new(out, &PATCHCORE, pc, threads, err);
}

aibox_status aibox_detector_from_autoencoder(aibox_detector **out, aibox_autoencoder *a, int threads, aibox_error *err)
{
    return detector_new(out, &AUTOENCODER, a, threads, err);
}

aibox_status aibox_detector_load(aibox_detector **out, const char *path, int threads, aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "detector: NULL output");
    *out = NULL;
    /* the task from the graph and metadata alone: a classifier or a method's
     * model is told apart without reading its weights twice */
    aibox_model *info = NULL;
    aibox_status s = aibox_model_load_info(&info, path, err);
    if (s) return s;
    const char *task = NULL;
    const aibox_anomaly_ops *method = NULL;
    if (!aibox_model_get_meta_str(info, AIBOX_META_TASK, &task))
        for (size_t i = 0; i < sizeof METHODS / sizeof *METHODS; i++)
            if (!strcmp(task, METHODS[i]->name)) method = METHODS[i];
    aibox_model_free(&info);
    if (!method) return aibox_fail(err, AIBOX_E_NOTFOUND, "%s: not an anomaly model", path);
    void *fitted = NULL;
    if ((s = method->load(&fitted, path, err))) return s;
    if ((s = detector_new(out, method, fitted, threads, err))) {
        aibox_detector spent = {.method = method, .fitted = fitted}; /* the model goes with it */
        method->free(&spent);
        return s;
    }
    aibox_thresholds t;
    aibox_error te = {0};
    if ((s = aibox_thresholds_from_model(&t, aibox_detector_model(*out), &te))) {
        aibox_detector_free(out);
        return aibox_fail(err, s == AIBOX_E_NOTFOUND ? AIBOX_E_FORMAT : s, "%s: %s", path, te.msg);
    }
    return AIBOX_OK;
}

void aibox_detector_free(aibox_detector **pd)
{
    if (!pd || !*pd) return;
    aibox_detector *d = *pd;
    if (d->method) d->method->free(d);
    free(d->input), free(d->map), free(d->big), free(d->tile_map), free(d->fixed), free(d->crop);
    free(d);
    *pd = NULL;
}

aibox_status aibox_detector_save(const aibox_detector *d, const char *path, aibox_error *err)
{
    if (!d || !path) return aibox_fail(err, AIBOX_E_INVALID, "detector: NULL argument");
    return d->method->save(d, path, err);
}

const aibox_model *aibox_detector_model(const aibox_detector *d) { return d ? d->method->model(d) : NULL; }
const char *aibox_detector_method(const aibox_detector *d) { return d ? d->method->name : NULL; }
const aibox_padim *aibox_detector_padim(const aibox_detector *d) { return d && d->method == &PADIM ? d->fitted : NULL; }
const aibox_patchcore *aibox_detector_patchcore(const aibox_detector *d)
{
    return d && d->method == &PATCHCORE ? d->fitted : NULL;
}
const aibox_autoencoder *aibox_detector_autoencoder(const aibox_detector *d)
{
    return d && d->method == &AUTOENCODER ? d->fitted : NULL;
}
const aibox_thresholds *aibox_detector_thresholds(const aibox_detector *d)
{
    return d && d->has_thresholds ? &d->thr : NULL;
}
const aibox_preproc *aibox_detector_preproc(const aibox_detector *d) { return d ? &d->pp : NULL; }
aibox_tiling aibox_detector_tiling(const aibox_detector *d)
{
    aibox_tiling none = {0};
    return d ? d->tiling : none;
}

aibox_status aibox_detector_set_thresholds(aibox_detector *d, const aibox_thresholds *t, aibox_error *err)
{
    if (!d || !t) return aibox_fail(err, AIBOX_E_INVALID, "detector: NULL argument");
    aibox_model *m = d->method ? d->method->model(d) : NULL;
    aibox_status s = m ? aibox_thresholds_to_model(t, m, err) : aibox_fail(err, AIBOX_E_STATE, "detector: no model");
    if (!s) d->thr = *t, d->has_thresholds = 1;
    return s;
}

/* ------------------------------------------------------------------ judging one image */
/* Every tile of img scored: the maps averaged into d->map (the resized
 * image's size), the largest tile score in *score. */
static aibox_status score_tiles(aibox_detector *d, const aibox_image *img, float *score, aibox_error *err)
{
    int xs[AIBOX_TILES_MAX], ys[AIBOX_TILES_MAX];
    aibox_tile_plan p = {.x = xs, .y = ys};
    aibox_status s = aibox_tile_plan_make(&d->tiling, &d->pp, img->width, img->height, &p, err);
    if (s) return s;
    size_t n = (size_t)p.rw * p.rh;
    if (n > d->map_cap) {
        float *m = realloc(d->map, sizeof(float) * n);
        if (!m) return aibox_fail(err, AIBOX_E_NOMEM, "detector: out of memory for a %dx%d map", p.rw, p.rh);
        d->map = m, d->map_cap = n;
    }
    aibox_image src = {0};
    if ((s = aibox_tile_source(&d->pp, img, &p, &src, err))) return s;
    memset(d->map, 0, sizeof(float) * n);
    int W = d->pp.width, H = d->pp.height;
    *score = -INFINITY;
    for (int ty = 0; !s && ty < p.ny; ty++)
        for (int tx = 0; !s && tx < p.nx; tx++) {
            float ts;
            s = aibox_tile_input(&d->pp, &src, xs[tx], ys[ty], d->crop, d->input, err);
            if (!s) s = d->method->score(d, d->input, d->tile_map, &ts, err);
            if (s) break;
            *score = ts > *score || isnan(ts) ? ts : *score;
            for (int y = 0; y < H; y++) {
                float *row = d->map + (size_t)(ys[ty] + y) * p.rw + xs[tx];
                const float *t = d->tile_map + (size_t)y * W;
                for (int x = 0; x < W; x++) row[x] += t[x];
            }
        }
    aibox_image_free(&src);
    if (s) return s;
    /* the overlaps averaged: a pixel's tile count is the product of its counts across and down */
    for (int y = 0; y < p.rh; y++) {
        int cy = 0;
        for (int ty = 0; ty < p.ny; ty++) cy += y >= ys[ty] && y < ys[ty] + H;
        float *row = d->map + (size_t)y * p.rw;
        /* tiles started minus tiles ended: the edges ascend, so one walk along the row */
        for (int x = 0, on = 0, off = 0; x < p.rw; x++) {
            while (on < p.nx && xs[on] <= x) on++;
            while (off < p.nx && xs[off] + W <= x) off++;
            row[x] /= (float)((on - off) * cy);
        }
    }
    d->map_w = p.rw, d->map_h = p.rh;
    return AIBOX_OK;
}

aibox_status aibox_detector_score(aibox_detector *d, const aibox_image *img, float *score, aibox_error *err)
{
    if (!d || !img || !score) return aibox_fail(err, AIBOX_E_INVALID, "detector: NULL argument");
    aibox_status s;
    d->img_w = 0; /* no map of this image until it is scored */
    if (d->tiling.side) {
        s = score_tiles(d, img, score, err);
    } else {
        s = aibox_preprocess(&d->pp, img, d->input, err);
        if (!s) s = d->method->score(d, d->input, d->map, score, err);
        d->map_w = d->pp.width, d->map_h = d->pp.height;
    }
    if (s) return s;
    size_t bad = 0, n = (size_t)d->map_w * d->map_h;
    while (bad < n && isfinite(d->map[bad])) bad++;
    if (!isfinite(*score) || bad < n) /* never a verdict from non-finite numbers */
        return aibox_fail(err, AIBOX_E_NONFINITE, "the anomaly %s is not a finite number (%g)",
                          isfinite(*score) ? "map" : "score", isfinite(*score) ? d->map[bad] : *score);
    d->img_w = img->width, d->img_h = img->height;
    return AIBOX_OK;
}

const float *aibox_detector_fixed_map(aibox_detector *d, aibox_error *err)
{
    if (d->map_w == d->pp.width && d->map_h == d->pp.height) return d->map;
    if (aibox_map_resize(d->map, d->map_w, d->map_h, d->fixed, d->pp.width, d->pp.height, err)) return NULL;
    return d->fixed;
}

/* The last map at w x h (the image's size), in d->big. */
static aibox_status big_map(aibox_detector *d, int w, int h, aibox_error *err)
{
    size_t n = (size_t)w * h;
    if (n > d->big_cap) {
        float *b = realloc(d->big, sizeof(float) * n);
        if (!b) return aibox_fail(err, AIBOX_E_NOMEM, "detector: out of memory for a %dx%d map", w, h);
        d->big = b, d->big_cap = n;
    }
    return aibox_map_resize(d->map, d->map_w, d->map_h, d->big, w, h, err);
}

aibox_status aibox_detector_run(aibox_detector *d, const aibox_image *img, aibox_detection *out, aibox_error *err)
{
    if (!d || !img || !out) return aibox_fail(err, AIBOX_E_INVALID, "detector: NULL argument");
    memset(out, 0, sizeof *out);
    if (!d->has_thresholds) return aibox_fail(err, AIBOX_E_STATE, "detector: the model has no thresholds to judge with");
    double t0 = now();
    float score;
    aibox_status s = aibox_detector_score(d, img, &score, err);
    if (s) return s;
    out->ms_score = (now() - t0) * 1e3;
    out->score = score;
    out->norm_score = aibox_anomaly_normalise(score, d->thr.image, d->thr.score_min, d->thr.score_max);
    out->ng = !(score < d->thr.image); /* at or above the threshold; whatever fails the comparison is NG */
    /* regions in the image's own pixels */
    if ((s = big_map(d, img->width, img->height, err))) return s;
    return aibox_map_regions(d->big, img->width, img->height, (float)d->thr.pixel, out->regions,
                             AIBOX_DETECTION_MAX_REGIONS, &out->n_regions, err);
}

const float *aibox_detector_map(const aibox_detector *d, int *w, int *h)
{
    if (w) *w = d ? d->map_w : 0;
    if (h) *h = d ? d->map_h : 0;
    return d ? d->map : NULL;
}

aibox_status aibox_detector_heatmap(aibox_detector *d, const aibox_image *img, aibox_image *out, aibox_error *err)
{
    if (!d || !img || !out) return aibox_fail(err, AIBOX_E_INVALID, "detector: NULL argument");
    if (!d->has_thresholds) return aibox_fail(err, AIBOX_E_STATE, "detector: the model has no thresholds");
    /* colours normalised as the scores: 0.5 (the colour scale's middle) at the pixel threshold */
    size_t n = (size_t)d->map_w * d->map_h;
    float *nm = malloc(sizeof(float) * n);
    if (!nm) return aibox_fail(err, AIBOX_E_NOMEM, "detector: out of memory");
    for (size_t i = 0; i < n; i++)
        nm[i] = (float)aibox_anomaly_normalise(d->map[i], d->thr.pixel, d->thr.score_min, d->thr.score_max);
    aibox_status s = aibox_heatmap_overlay(out, img, nm, d->map_w, d->map_h, 0, 1, 0.5f, err);
    free(nm);
    return s;
}

aibox_status aibox_detector_mask(aibox_detector *d, aibox_image *out, aibox_error *err)
{
    if (!d || !out) return aibox_fail(err, AIBOX_E_INVALID, "detector: NULL argument");
    if (!d->has_thresholds || d->img_w < 1) return aibox_fail(err, AIBOX_E_STATE, "detector: no image was run");
    aibox_status s = big_map(d, d->img_w, d->img_h, err);
    return s ? s : aibox_map_mask(out, d->big, d->img_w, d->img_h, (float)d->thr.pixel, err);
}

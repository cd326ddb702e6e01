/* The good-only Gaussian detector on FEATURES windows (include/aibox/sound.h,
 * "good-only detector"): bench/signal_outlier.c's method as a library call
 * whose result is an ordinary model. Standardisation, covariance and the
 * Cholesky factor are computed in double; the whitening L^-1 diag(1/sd) and
 * the bias -W mu are then rounded once into one dense layer, so every tool
 * that runs a model runs the detector, and a window's Mahalanobis distance
 * is the Euclidean norm of the model's output. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "core/pool.h"

/* The task name a detector model carries under AIBOX_META_TASK, as the image
 * anomaly models carry "padim", "patchcore", "autoencoder". */
#define GAUSSIAN_TASK "gaussian"

void aibox_sound_fit_opts_default(aibox_sound_fit_opts *o, double rate)
{
    if (!o) return;
    memset(o, 0, sizeof *o);
    aibox_sound_opts_default(&o->sound, rate, AIBOX_SOUND_FEATURES);
    /* 32 bands (68 features): a few seconds of normal operation give tens of
     * windows, too few for a 132-dimensional covariance (CWRU 48 kHz, 3 s of
     * fit: 6 of 10 normal windows over the threshold with 64 bands, 1 with 32) */
    o->sound.spec.n_mels = 32;
    o->reg = 0.01;
    o->held_out = 0.2;
    o->threshold.rule = AIBOX_THRESHOLD_MAX;
    /* the same reading of files as a dataset of recordings */
    aibox_sound_data_opts d;
    aibox_sound_data_opts_default(&d, rate, AIBOX_SOUND_FEATURES);
    o->channel = d.channel, o->max_frames = d.max_frames, o->threads = d.threads;
}

/* Rows of d floats that grow. */
typedef struct rows {
    float *x;
    long n, cap;
} rows;

static aibox_status rows_reserve(rows *r, long more, int d, aibox_error *err)
{
    if (r->n + more <= r->cap) return AIBOX_OK;
    long cap = r->cap ? r->cap : 64;
    while (cap < r->n + more) cap *= 2;
    size_t bytes;
    if (!aibox_mul_ok((size_t)cap, (size_t)d * sizeof(float), &bytes))
        return aibox_fail(err, AIBOX_E_NOMEM, "detector fit: %ld windows of %d features overflow", cap, d);
    float *p = realloc(r->x, bytes);
    if (!p) return aibox_fail(err, AIBOX_E_NOMEM, "detector fit: out of memory for %ld windows", cap);
    r->x = p, r->cap = cap;
    return AIBOX_OK;
}

typedef struct fitter {
    aibox_sound_opts so; /* the settings stored (in_mean 0, in_std 1: the dense layer standardises) */
    int d, threads;
    aibox_pool *pool;
    aibox_sound_frontend **fe; /* one per thread */
    rows fit, held;
    int recordings;
    /* one window job: read by the tasks */
    const float *x;
    float *const *dst; /* per window: where its features go */
    aibox_status *st;  /* per thread: the first failure and its window */
    long *bad_window;
    aibox_error *errs;
} fitter;

static void window_task(void *arg, int task, int thread)
{
    fitter *f = arg;
    if (f->st[thread] && f->bad_window[thread] < task) return; /* an earlier window already failed here */
    aibox_error e = {0};
    aibox_status s = aibox_sound_frontend_run(f->fe[thread], f->x + (size_t)task * f->so.hop, f->dst[task], NULL, &e);
    if (s && (!f->st[thread] || task < f->bad_window[thread])) {
        f->st[thread] = s, f->bad_window[thread] = task;
        f->errs[thread] = e;
    }
}

static void fitter_free(fitter *f)
{
    for (int t = 0; f->fe && t < f->threads; t++) aibox_sound_frontend_free(&f->fe[t]);
    free(f->fe);
    aibox_pool_free(&f->pool);
    free(f->fit.x), free(f->held.x);
    free(f->st), free(f->bad_window), free(f->errs);
}

static aibox_status fitter_init(fitter *f, const aibox_sound_fit_opts *o, int n, aibox_error *err)
{
    memset(f, 0, sizeof *f);
    if (!o) return aibox_fail(err, AIBOX_E_INVALID, "detector fit: NULL options");
    if (n < 1) return aibox_fail(err, AIBOX_E_INVALID, "detector fit: no recordings (n = %d)", n);
    if (o->sound.input != AIBOX_SOUND_FEATURES)
        return aibox_fail(err, AIBOX_E_INVALID, "detector fit: the Gaussian detector takes FEATURES windows, not '%s'",
                          aibox_sound_input_name(o->sound.input));
    if (!(o->reg >= 0 && o->reg <= 1e6))
        return aibox_fail(err, AIBOX_E_INVALID, "detector fit: reg must be a number from 0 to 1e6 (got %g)", o->reg);
    if (!(o->held_out > 0 && o->held_out < 1))
        return aibox_fail(err, AIBOX_E_INVALID,
                          "detector fit: held_out must be above 0 and below 1 (got %g): the threshold is set from "
                          "held-out normal windows",
                          o->held_out);
    if (o->threshold.rule == AIBOX_THRESHOLD_F1) /* it needs defect examples, which a good-only fit never has */
        return aibox_fail(err, AIBOX_E_INVALID,
                          "detector fit: the f1 threshold needs anomalous examples; the detector fits normal windows "
                          "only (use max, p99, sigma:K or a number)");
    f->so = o->sound;
    f->so.in_mean = 0, f->so.in_std = 1; /* the dense layer does the standardising, per dimension */
    aibox_status s = aibox_sound_opts_check(&f->so, err);
    if (s) return s;
    int c, h, w;
    if ((s = aibox_sound_input_shape(&f->so, &c, &h, &w, err))) return s;
    f->d = c * h * w;
    f->threads = o->threads > 0 ? o->threads : aibox_default_threads();
    if (f->threads > 64) f->threads = 64;
    f->fe = calloc((size_t)f->threads, sizeof *f->fe);
    f->st = calloc((size_t)f->threads, sizeof *f->st);
    f->bad_window = calloc((size_t)f->threads, sizeof *f->bad_window);
    f->errs = calloc((size_t)f->threads, sizeof *f->errs);
    if (!f->fe || !f->st || !f->bad_window || !f->errs) return aibox_fail(err, AIBOX_E_NOMEM, "detector fit: out of memory");
    for (int t = 0; t < f->threads && !s; t++) s = aibox_sound_frontend_create(&f->fe[t], &f->so, err);
    if (!s && f->threads > 1) s = aibox_pool_create(&f->pool, f->threads, err);
    return s;
}

/* Appends the windows of one mono recording: the last held_out share of
 * them (at least one when it has two or more, never all) to held, the rest
 * to fit. name labels messages. */
static aibox_status add_recording(fitter *f, const aibox_signal *rec, const char *name, double held_out,
                                  aibox_error *err)
{
    if (!rec->data || rec->frames < 1)
        return aibox_fail(err, AIBOX_E_INVALID, "detector fit: %s is empty", name);
    if (rec->channels != 1)
        return aibox_fail(err, AIBOX_E_INVALID,
                          "detector fit: %s has %d channels; the detector fits mono recordings (pick or mix a channel "
                          "when reading it)",
                          name, rec->channels);
    if (!(rec->rate > 0 && isfinite(rec->rate)))
        return aibox_fail(err, AIBOX_E_INVALID, "detector fit: %s has no usable sample rate (%g)", name, rec->rate);
    aibox_signal tmp = {0};
    const aibox_signal *s = rec;
    aibox_status st;
    if (rec->rate != f->so.spec.rate) { /* the model's rate decides what a window is */
        aibox_error e = {0};
        if ((st = aibox_signal_resample(rec, f->so.spec.rate, &tmp, &e)))
            return aibox_fail(err, st, "detector fit: %s: %s", name, e.msg);
        s = &tmp;
    }
    long nw = aibox_sound_window_count(&f->so, s->frames);
    if (nw < 1) {
        aibox_signal_free(&tmp);
        return aibox_fail(err, AIBOX_E_INVALID,
                          "detector fit: %s holds %ld samples at %g Hz, shorter than one window (%ld samples)", name,
                          s->frames, f->so.spec.rate, f->so.window);
    }
    if (nw > 0x7fffffff) nw = 0x7fffffff; /* the pool counts tasks in int; 2^31 windows is far past max_frames */
    long n_held = 0;
    if (nw >= 2) {
        n_held = lround(held_out * (double)nw);
        n_held = n_held < 1 ? 1 : n_held > nw - 1 ? nw - 1 : n_held;
    }
    long n_fit = nw - n_held;
    float **dst = malloc(sizeof *dst * (size_t)nw);
    st = dst ? AIBOX_OK : aibox_fail(err, AIBOX_E_NOMEM, "detector fit: out of memory");
    if (!st) st = rows_reserve(&f->fit, n_fit, f->d, err);
    if (!st) st = rows_reserve(&f->held, n_held, f->d, err);
    if (!st) {
        for (long j = 0; j < nw; j++)
            dst[j] = j < n_fit ? f->fit.x + (size_t)(f->fit.n + j) * f->d
                               : f->held.x + (size_t)(f->held.n + j - n_fit) * f->d;
        f->x = s->data, f->dst = dst;
        memset(f->st, 0, sizeof *f->st * (size_t)f->threads);
        aibox_pool_run(f->pool, (int)nw, window_task, f);
        int bad = -1; /* the failure of the earliest window, whichever thread met it */
        for (int t = 0; t < f->threads; t++)
            if (f->st[t] && (bad < 0 || f->bad_window[t] < f->bad_window[bad])) bad = t;
        if (bad >= 0) {
            long j = f->bad_window[bad];
            st = aibox_fail(err, f->st[bad], "detector fit: %s, window %ld (%.3f s to %.3f s): %s", name, j,
                            (double)j * f->so.hop / f->so.spec.rate,
                            ((double)j * f->so.hop + f->so.window) / f->so.spec.rate, f->errs[bad].msg);
        } else {
            f->fit.n += n_fit, f->held.n += n_held;
            f->recordings++;
        }
    }
    free(dst);
    aibox_signal_free(&tmp);
    return st;
}

/* The Gaussian of the fit rows as the dense layer's weights W (d x d, row
 * per output) and bias b, in double: W = L^-1 diag(1/sd), b = -W mu. */
static aibox_status gaussian(const rows *fit, int d, double reg, double *W, double *b, aibox_error *err)
{
    long n = fit->n;
    double *mu = calloc((size_t)d, sizeof *mu), *sd = calloc((size_t)d, sizeof *sd), *z = calloc((size_t)d, sizeof *z);
    double *C = calloc((size_t)d * d, sizeof *C);
    aibox_status s = AIBOX_OK;
    if (!mu || !sd || !z || !C) {
        s = aibox_fail(err, AIBOX_E_NOMEM, "detector fit: out of memory for a %d x %d covariance", d, d);
        goto done;
    }
    for (long i = 0; i < n; i++)
        for (int j = 0; j < d; j++) mu[j] += fit->x[(size_t)i * d + j];
    for (int j = 0; j < d; j++) mu[j] /= (double)n;
    for (long i = 0; i < n; i++)
        for (int j = 0; j < d; j++) {
            double e = fit->x[(size_t)i * d + j] - mu[j];
            sd[j] += e * e;
        }
    /* a dimension that never moves keeps scale 1: any change in it still scores */
    for (int j = 0; j < d; j++) sd[j] = sd[j] > 0 ? sqrt(sd[j] / (double)(n - 1)) : 1.0;
    for (long i = 0; i < n; i++) { /* lower triangle of the standardised windows' covariance */
        for (int j = 0; j < d; j++) z[j] = (fit->x[(size_t)i * d + j] - mu[j]) / sd[j];
        for (int a = 0; a < d; a++)
            for (int c = 0; c <= a; c++) C[(size_t)a * d + c] += z[a] * z[c];
    }
    double tr = 0;
    for (int a = 0; a < d; a++) {
        for (int c = 0; c <= a; c++) C[(size_t)a * d + c] /= (double)(n - 1);
        tr += C[(size_t)a * d + a];
    }
    for (int a = 0; a < d; a++) C[(size_t)a * d + a] += reg * tr / d;
    /* Cholesky in place (lower triangle): C = L L^T */
    for (int j = 0; j < d; j++) {
        double p = C[(size_t)j * d + j];
        for (int k = 0; k < j; k++) p -= C[(size_t)j * d + k] * C[(size_t)j * d + k];
        /* a pivot lost to rounding against the diagonal it came from is as singular as a negative one */
        if (!(p > 1e-12 * (C[(size_t)j * d + j] > 0 ? C[(size_t)j * d + j] : 1))) {
            s = aibox_fail(err, AIBOX_E_INVALID,
                           "detector fit: the covariance of the %ld fit windows (%d features) is not positive definite "
                           "(feature %d depends on the others%s); raise reg (now %g) or give more varied windows",
                           n, d, j, tr > 0 ? "" : ", every feature is constant", reg);
            goto done;
        }
        double l = sqrt(p);
        C[(size_t)j * d + j] = l;
        for (int i = j + 1; i < d; i++) {
            double t = C[(size_t)i * d + j];
            for (int k = 0; k < j; k++) t -= C[(size_t)i * d + k] * C[(size_t)j * d + k];
            C[(size_t)i * d + j] = t / l;
        }
    }
    /* W = L^-1 (forward substitution column by column), then the scales */
    memset(W, 0, sizeof *W * (size_t)d * d);
    for (int c = 0; c < d; c++)
        for (int i = c; i < d; i++) {
            double t = i == c ? 1.0 : 0.0;
            for (int k = c; k < i; k++) t -= C[(size_t)i * d + k] * W[(size_t)k * d + c];
            W[(size_t)i * d + c] = t / C[(size_t)i * d + i];
        }
    for (int i = 0; i < d; i++) {
        double t = 0;
        for (int j = 0; j <= i; j++) {
            W[(size_t)i * d + j] /= sd[j];
            t += W[(size_t)i * d + j] * mu[j];
        }
        b[i] = -t;
    }
done:
    free(mu), free(sd), free(z), free(C);
    return s;
}

/* The detector's score of one window through the model, as the listener
 * computes it: one sample, one thread, the norm in double. */
static aibox_status model_score(aibox_ctx *ctx, const aibox_model *m, const float *x, int d, double *score,
                                aibox_error *err)
{
    aibox_status s = aibox_ctx_infer(ctx, m, x, 1, err);
    if (s) return s;
    const float *y = aibox_ctx_output(ctx, NULL, NULL, NULL);
    double q = 0;
    for (int i = 0; i < d; i++) q += (double)y[i] * y[i];
    *score = sqrt(q);
    return AIBOX_OK;
}

static aibox_status fit_finish(aibox_model **out, fitter *f, const aibox_sound_fit_opts *o, aibox_threshold_stats *st,
                               aibox_error *err)
{
    const int d = f->d;
    if (f->fit.n < 2)
        return aibox_fail(err, AIBOX_E_INVALID,
                          "detector fit: %ld fit window%s from %d recording%s; a Gaussian needs at least 2 (and, for a "
                          "well-conditioned covariance, more than the %d features): give longer or more recordings",
                          f->fit.n, f->fit.n == 1 ? "" : "s", f->recordings, f->recordings == 1 ? "" : "s", d);
    if (o->reg == 0 && f->fit.n < d + 1)
        return aibox_fail(err, AIBOX_E_INVALID,
                          "detector fit: %ld fit windows cannot give a regular covariance of %d features without "
                          "regularisation: it needs at least %d windows, or reg > 0",
                          f->fit.n, d, d + 1);
    if (f->held.n < 1 && o->threshold.rule != AIBOX_THRESHOLD_FIXED)
        return aibox_fail(err, AIBOX_E_INVALID,
                          "detector fit: no held-out windows to set the threshold from (every recording gave a single "
                          "window; one of two or more windows holds out its last)");
    double *W = malloc(sizeof *W * (size_t)d * d), *b = malloc(sizeof *b * (size_t)d);
    float *scores = malloc(sizeof *scores * (size_t)(f->held.n ? f->held.n : 1));
    aibox_model *m = NULL;
    aibox_ctx *ctx = NULL;
    aibox_status s = W && b && scores ? AIBOX_OK : aibox_fail(err, AIBOX_E_NOMEM, "detector fit: out of memory");
    if (!s) s = gaussian(&f->fit, d, o->reg, W, b, err);
    if (!s) s = aibox_model_create(&m, d, 1, 1, err);
    if (!s) {
        int node = aibox_dense(m, 0, d, 1);
        if (node < 0) s = aibox_fail(err, (aibox_status)-node, "detector fit: %s", aibox_model_last_error(m));
    }
    if (!s) s = aibox_model_finish(m, 0, err);
    if (!s) {
        int node = aibox_model_output(m);
        size_t nw = 0, nb = 0;
        float *pw = aibox_model_node_param(m, node, 0, &nw), *pb = aibox_model_node_param(m, node, 1, &nb);
        if (!pw || !pb || nw != (size_t)d * d || nb != (size_t)d)
            s = aibox_fail(err, AIBOX_E_STATE, "detector fit: the dense layer has %zu weights and %zu biases", nw, nb);
        for (size_t i = 0; !s && i < nw; i++) pw[i] = (float)W[i];
        for (size_t i = 0; !s && i < nb; i++) pb[i] = (float)b[i];
        for (size_t i = 0; !s && i < nw; i++)
            if (!isfinite(pw[i]))
                s = aibox_fail(err, AIBOX_E_NONFINITE,
                               "detector fit: the whitening overflows a float (a feature's spread is too small); raise reg");
    }
    if (!s) s = aibox_ctx_create(&ctx, m, &(aibox_ctx_opts){.threads = 1}, err);
    for (long i = 0; !s && i < f->held.n; i++) {
        double sc = NAN;
        s = model_score(ctx, m, f->held.x + (size_t)i * d, d, &sc, err);
        scores[i] = (float)sc;
        if (!s && !isfinite(scores[i]))
            s = aibox_fail(err, AIBOX_E_NONFINITE, "detector fit: held-out window %ld scores %g", i, sc);
    }
    aibox_thresholds t;
    if (!s) {
        aibox_error e = {0};
        s = aibox_thresholds_compute(&o->threshold, scores, (int)f->held.n, NULL, 0, NULL, NULL, 0, &t, st, &e);
        if (s) aibox_fail(err, s, "detector fit: %ld held-out windows: %s", f->held.n, e.msg);
    }
    if (!s) s = aibox_thresholds_to_model(&t, m, err);
    if (!s) s = aibox_sound_opts_to_model(&f->so, m, err);
    if (!s) s = aibox_model_set_meta_str(m, AIBOX_META_TASK, GAUSSIAN_TASK, err);
    aibox_ctx_free(&ctx);
    free(W), free(b), free(scores);
    if (s) {
        aibox_model_free(&m);
        return s;
    }
    *out = m;
    return AIBOX_OK;
}

aibox_status aibox_sound_detector_fit(aibox_model **m, const aibox_signal *recs, int n, const aibox_sound_fit_opts *o,
                                      aibox_threshold_stats *st, aibox_error *err)
{
    if (!m) return aibox_fail(err, AIBOX_E_INVALID, "detector fit: NULL output");
    *m = NULL;
    if (n > 0 && !recs) return aibox_fail(err, AIBOX_E_INVALID, "detector fit: NULL recordings");
    fitter f;
    aibox_status s = fitter_init(&f, o, n, err);
    for (int i = 0; !s && i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "recording %d", i);
        s = add_recording(&f, &recs[i], name, o->held_out, err);
    }
    if (!s) s = fit_finish(m, &f, o, st, err);
    fitter_free(&f);
    return s;
}

aibox_status aibox_sound_detector_fit_files(aibox_model **m, const char *const *paths, int n,
                                            const aibox_sound_fit_opts *o, aibox_threshold_stats *st, aibox_error *err)
{
    if (!m) return aibox_fail(err, AIBOX_E_INVALID, "detector fit: NULL output");
    *m = NULL;
    if (n > 0 && !paths) return aibox_fail(err, AIBOX_E_INVALID, "detector fit: NULL paths");
    fitter f;
    aibox_status s = fitter_init(&f, o, n, err);
    /* one recording in memory at a time */
    for (int i = 0; !s && i < n; i++) {
        if (!paths[i]) {
            s = aibox_fail(err, AIBOX_E_INVALID, "detector fit: path %d is NULL", i);
            break;
        }
        aibox_signal rec = {0};
        aibox_error e = {0};
        s = aibox_signal_load(&rec, paths[i], &(aibox_signal_opts){.channel = o->channel, .max_frames = o->max_frames},
                              &e);
        if (s) aibox_fail(err, s, "detector fit: %s", e.msg);
        if (!s) s = add_recording(&f, &rec, paths[i], o->held_out, err);
        aibox_signal_free(&rec);
    }
    if (!s) s = fit_finish(m, &f, o, st, err);
    fitter_free(&f);
    return s;
}

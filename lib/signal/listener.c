/* The listener (include/aibox/sound.h): a signal model judging windows of a
 * recording or an endless stream as they complete. Memory is fixed at
 * creation: one window of samples at the model's rate, and, when the input
 * rate differs, one block of input samples and one of resampled output
 * around libsamplerate's streaming converter. Input reaches the converter in
 * whole blocks whatever the caller's chunks, so a recording pushed in one
 * call or sample by sample gives the same windows to the last bit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <samplerate.h>

#include "core/core.h"

#define GAUSSIAN_TASK "gaussian" /* as lib/signal/sounddet.c stores it */
#define IN_BLOCK 1024            /* input samples per converter call: latency of 21 ms at 48 kHz */

struct aibox_listener {
    const aibox_model *m;
    aibox_sound_opts o;
    int detector;      /* 1: the Gaussian detector, 0: a classifier */
    int classes, probs; /* classifier: output size; probs: the output already is probabilities */
    const char *const *names;
    int n_names;
    char (*numbers)[16]; /* "0", "1", ... for classes without a name */
    aibox_thresholds thr;
    aibox_sound_frontend *fe;
    aibox_ctx *ctx;
    float *input;       /* the model input of one window */
    double *p, *psum;   /* classifier: this window's probabilities, their sum over the windows */
    int out_size;
    /* resampling (src NULL: the input is at the model's rate) */
    double in_rate, ratio;
    SRC_STATE *src;
    float *in_blk, *out_blk;
    long in_have, out_cap;
    /* the window being filled, at the model's rate */
    float *buf;
    long have, skip;     /* samples in buf; samples still to pass over before the next window (hop > window) */
    long index;          /* the next window's number */
    long long in_total;  /* input samples since the last finish */
    /* the summary's sums */
    double score_sum;
    long ng_windows;
};

void aibox_listener_free(aibox_listener **pl)
{
    if (!pl || !*pl) return;
    aibox_listener *l = *pl;
    aibox_sound_frontend_free(&l->fe);
    aibox_ctx_free(&l->ctx);
    if (l->src) src_delete(l->src);
    free(l->input), free(l->p), free(l->psum), free(l->numbers);
    free(l->in_blk), free(l->out_blk), free(l->buf);
    free(l);
    *pl = NULL;
}

/* What kind of sound model m is, and whether its graph fits it. */
static aibox_status classify_model(aibox_listener *l, aibox_error *err)
{
    const aibox_model *m = l->m;
    int c, h, w, oc, oh, ow;
    aibox_sound_input_shape(&l->o, &c, &h, &w, NULL);
    aibox_model_node_shape(m, aibox_model_output(m), &oc, &oh, &ow);
    l->out_size = oc * oh * ow;
    const char *task = NULL;
    if (aibox_model_get_meta_str(m, AIBOX_META_TASK, &task)) task = NULL;
    if (task && !strcmp(task, GAUSSIAN_TASK)) {
        l->detector = 1;
        if (l->o.input != AIBOX_SOUND_FEATURES)
            return aibox_fail(err, AIBOX_E_FORMAT, "listener: a Gaussian detector on '%s' windows (it takes features)",
                              aibox_sound_input_name(l->o.input));
        aibox_error e = {0};
        aibox_status s = aibox_thresholds_from_model(&l->thr, m, &e);
        if (s)
            return aibox_fail(err, s == AIBOX_E_NOTFOUND ? AIBOX_E_FORMAT : s, "listener: the Gaussian detector: %s",
                              e.msg);
        return AIBOX_OK;
    }
    /* an image anomaly method's model carrying sound settings is nothing this listener can judge with */
    if (task && strcmp(task, "classify"))
        return aibox_fail(err, AIBOX_E_UNSUPPORTED,
                          "listener: a '%s' model is neither a classifier nor a Gaussian sound detector", task);
    l->classes = l->out_size;
    l->probs = aibox_model_outputs_probabilities(m);
    if (aibox_model_get_meta_strs(m, AIBOX_META_CLASS_NAMES, &l->n_names, &l->names)) l->n_names = 0, l->names = NULL;
    l->p = malloc(sizeof *l->p * (size_t)l->classes);
    l->psum = calloc((size_t)l->classes, sizeof *l->psum);
    l->numbers = calloc((size_t)l->classes, sizeof *l->numbers);
    if (!l->p || !l->psum || !l->numbers) return aibox_fail(err, AIBOX_E_NOMEM, "listener: out of memory");
    for (int k = 0; k < l->classes; k++) snprintf(l->numbers[k], sizeof l->numbers[k], "%d", k);
    return AIBOX_OK;
}

aibox_status aibox_listener_create(aibox_listener **out, const aibox_model *m, double input_rate, int threads,
                                   aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "listener: NULL output");
    *out = NULL;
    if (!m) return aibox_fail(err, AIBOX_E_INVALID, "listener: NULL model");
    if (!(input_rate > 0 && input_rate < 1e9))
        return aibox_fail(err, AIBOX_E_INVALID, "listener: input rate %g Hz is not a positive number", input_rate);
    aibox_listener *l = calloc(1, sizeof *l);
    if (!l) return aibox_fail(err, AIBOX_E_NOMEM, "listener: out of memory");
    l->m = m;
    aibox_error e = {0};
    aibox_status s = aibox_sound_opts_from_model(&l->o, m, &e);
    if (s == AIBOX_E_NOTFOUND)
        s = aibox_fail(err, s,
                       "listener: the model has no sound settings (aibox.sound.*): it was not made for sound or "
                       "vibration windows");
    else if (s)
        aibox_fail(err, s, "listener: %s", e.msg);
    if (!s) s = classify_model(l, err);
    if (!s) s = aibox_sound_frontend_create(&l->fe, &l->o, err);
    /* the detector's dense layer is tiny: one thread, and the very arithmetic the fit scored its held-out windows
       with, so the "max" threshold keeps every held-out window OK */
    if (!s)
        s = aibox_ctx_create(&l->ctx, m, &(aibox_ctx_opts){.threads = l->detector ? 1 : threads}, err);
    if (!s && !l->detector) s = aibox_ctx_freeze_weights(l->ctx, m, err);
    if (!s) {
        l->input = malloc(sizeof *l->input * aibox_sound_frontend_size(l->fe));
        l->buf = malloc(sizeof *l->buf * (size_t)l->o.window);
        if (!l->input || !l->buf) s = aibox_fail(err, AIBOX_E_NOMEM, "listener: out of memory");
    }
    l->in_rate = input_rate;
    l->ratio = l->o.spec.rate / input_rate;
    if (!s && input_rate != l->o.spec.rate) {
        if (!src_is_valid_ratio(l->ratio))
            s = aibox_fail(err, AIBOX_E_UNSUPPORTED,
                           "listener: input at %g Hz for a model at %g Hz (ratio %g; 1/256 .. 256 supported)", input_rate,
                           l->o.spec.rate, l->ratio);
        int se = 0;
        if (!s && !(l->src = src_new(SRC_SINC_MEDIUM_QUALITY, 1, &se)))
            s = aibox_fail(err, AIBOX_E_NOMEM, "listener: libsamplerate: %s", src_strerror(se));
        l->out_cap = (long)ceil(IN_BLOCK * l->ratio) + 64;
        if (!s) {
            l->in_blk = malloc(sizeof *l->in_blk * IN_BLOCK);
            l->out_blk = malloc(sizeof *l->out_blk * (size_t)l->out_cap);
            if (!l->in_blk || !l->out_blk) s = aibox_fail(err, AIBOX_E_NOMEM, "listener: out of memory");
        }
    }
    if (s) {
        aibox_listener_free(&l);
        return s;
    }
    *out = l;
    return AIBOX_OK;
}

const aibox_sound_opts *aibox_listener_opts(const aibox_listener *l) { return l ? &l->o : NULL; }
int aibox_listener_classes(const aibox_listener *l) { return l ? l->classes : 0; }
int aibox_listener_is_detector(const aibox_listener *l) { return l ? l->detector : 0; }

const char *aibox_listener_class_name(const aibox_listener *l, int k)
{
    if (!l || k < 0 || k >= l->classes) return NULL;
    return k < l->n_names ? l->names[k] : l->numbers[k];
}

/* Judges the full window in buf. */
static aibox_status judge(aibox_listener *l, aibox_listener_fn fn, void *user, aibox_error *err)
{
    const long i = l->index;
    const double rate = l->o.spec.rate;
    aibox_sound_result r;
    memset(&r, 0, sizeof r);
    r.index = i;
    /* model samples and input samples span the same seconds */
    r.t_start = (double)i * (double)l->o.hop / rate;
    r.t_end = ((double)i * (double)l->o.hop + (double)l->o.window) / rate;
    aibox_error e = {0};
    aibox_status s = aibox_sound_frontend_run(l->fe, l->buf, l->input, NULL, &e);
    if (!s) s = aibox_ctx_infer(l->ctx, l->m, l->input, 1, &e);
    if (s) return aibox_fail(err, s, "listener: window %ld (%.3f s to %.3f s): %s", i, r.t_start, r.t_end, e.msg);
    const float *y = aibox_ctx_output(l->ctx, NULL, NULL, NULL);
    if (l->detector) {
        double q = 0;
        for (int k = 0; k < l->out_size; k++) q += (double)y[k] * y[k];
        r.anomaly = 1;
        r.label = -1;
        r.score = sqrt(q);
        if (!isfinite(r.score))
            return aibox_fail(err, AIBOX_E_NONFINITE, "listener: window %ld (%.3f s to %.3f s) scores %g", i, r.t_start,
                              r.t_end, r.score);
        r.threshold = l->thr.image;
        r.norm_score = aibox_anomaly_normalise(r.score, r.threshold, l->thr.score_min, l->thr.score_max);
        r.ng = !(r.score < r.threshold);
        l->score_sum += r.score;
        l->ng_windows += r.ng;
    } else {
        double *p = l->p;
        const int best = aibox_output_probabilities(y, l->classes, l->probs, p);
        if (best < 0)
            for (int k = 0; k < l->classes; k++)
                if (!isfinite(y[k]))
                    return aibox_fail(err, AIBOX_E_NONFINITE,
                                      "listener: window %ld (%.3f s to %.3f s): the model's output %d is not a finite "
                                      "number (%g)",
                                      i, r.t_start, r.t_end, k, y[k]);
        for (int k = 0; k < l->classes; k++) l->psum[k] += p[k];
        r.label = best;
        r.confidence = p[best];
        r.name = aibox_listener_class_name(l, best);
        r.score = r.norm_score = r.threshold = 0;
    }
    l->index++;
    return fn ? fn(user, &r, l->detector ? NULL : l->p, err) : AIBOX_OK;
}

/* Samples at the model's rate into the window, judging every window that completes. */
static aibox_status feed(aibox_listener *l, const float *y, long k, aibox_listener_fn fn, void *user, aibox_error *err)
{
    const long win = l->o.window, hop = l->o.hop;
    while (k > 0) {
        if (l->skip > 0) {
            long n = AIBOX_MIN(l->skip, k);
            l->skip -= n, y += n, k -= n;
            continue;
        }
        long n = AIBOX_MIN(win - l->have, k);
        memcpy(l->buf + l->have, y, sizeof *y * (size_t)n);
        l->have += n, y += n, k -= n;
        if (l->have < win) break;
        /* the next window starts hop samples on: keep the overlap, or pass over the gap */
        aibox_status s = judge(l, fn, user, err);
        if (hop < win) {
            memmove(l->buf, l->buf + hop, sizeof *l->buf * (size_t)(win - hop));
            l->have = win - hop;
        } else {
            l->have = 0, l->skip = hop - win;
        }
        if (s) return s;
    }
    return AIBOX_OK;
}

/* Runs the converter over the input block (end: the input ends after it),
 * feeding what it gives; with end, until it has given everything. */
static aibox_status convert(aibox_listener *l, int end, aibox_listener_fn fn, void *user, aibox_error *err)
{
    long used = 0;
    for (;;) {
        SRC_DATA d;
        memset(&d, 0, sizeof d);
        d.data_in = l->in_blk + used;
        d.input_frames = l->in_have - used;
        d.data_out = l->out_blk;
        d.output_frames = l->out_cap;
        d.src_ratio = l->ratio;
        d.end_of_input = end;
        int e = src_process(l->src, &d);
        if (e) return aibox_fail(err, AIBOX_E_INVALID, "listener: libsamplerate: %s", src_strerror(e));
        used += d.input_frames_used;
        aibox_status s = feed(l, l->out_blk, d.output_frames_gen, fn, user, err);
        if (s) return s;
        if (used >= l->in_have && (!end || d.output_frames_gen == 0)) break;
        /* without end of input, a call that neither consumes nor produces would loop forever */
        if (!end && d.input_frames_used == 0 && d.output_frames_gen == 0) break;
    }
    l->in_have = 0;
    return AIBOX_OK;
}

aibox_status aibox_listener_push(aibox_listener *l, const float *x, long n, aibox_listener_fn fn, void *user,
                                 aibox_error *err)
{
    if (!l || n < 0 || (n > 0 && !x)) return aibox_fail(err, AIBOX_E_INVALID, "listener: NULL or negative argument");
    /* refused before anything is used: the caller may push again after mending the chunk */
    for (long i = 0; i < n; i++)
        if (!isfinite(x[i])) {
            double t = (double)(l->in_total + i) / l->in_rate;
            long at = (long)floor(t * l->o.spec.rate); /* the sample at the model's rate */
            long w = at < l->o.window ? 0 : (at - l->o.window) / l->o.hop + 1;
            return aibox_fail(err, AIBOX_E_NONFINITE,
                              "listener: window %ld: input sample %lld (%.3f s) is not a finite number (%g); "
                              "nothing of this push was used",
                              w, l->in_total + i, t, (double)x[i]);
        }
    if (!l->src) {
        l->in_total += n;
        return feed(l, x, n, fn, user, err);
    }
    while (n > 0) {
        long k = AIBOX_MIN(IN_BLOCK - l->in_have, n);
        memcpy(l->in_blk + l->in_have, x, sizeof *x * (size_t)k);
        l->in_have += k, l->in_total += k, x += k, n -= k;
        if (l->in_have == IN_BLOCK) {
            aibox_status s = convert(l, 0, fn, user, err);
            if (s) return s;
        }
    }
    return AIBOX_OK;
}

aibox_status aibox_listener_finish(aibox_listener *l, aibox_listener_fn fn, void *user, aibox_sound_summary *sum,
                                   aibox_error *err)
{
    if (!l) return aibox_fail(err, AIBOX_E_INVALID, "listener: NULL listener");
    aibox_status s = AIBOX_OK;
    if (l->src) s = convert(l, 1, fn, user, err);
    if (!s && sum) {
        memset(sum, 0, sizeof *sum);
        const long nw = l->index;
        sum->windows = nw;
        sum->anomaly = l->detector;
        sum->label = -1;
        /* the input samples past the end of the last window, in input seconds */
        double end = nw ? ((double)(nw - 1) * l->o.hop + l->o.window) / l->o.spec.rate * l->in_rate : 0;
        long long dropped = l->in_total - llround(end);
        sum->dropped = dropped > 0 ? (long)dropped : 0;
        if (nw && l->detector) {
            sum->score = l->score_sum / (double)nw;
            sum->norm_score = aibox_anomaly_normalise(sum->score, l->thr.image, l->thr.score_min, l->thr.score_max);
            sum->ng = !(sum->score < l->thr.image);
            sum->ng_windows = l->ng_windows;
        } else if (nw) {
            int best = 0;
            for (int k = 1; k < l->classes; k++)
                if (l->psum[k] > l->psum[best]) best = k;
            sum->label = best;
            sum->confidence = l->psum[best] / (double)nw;
            sum->name = aibox_listener_class_name(l, best);
        }
    }
    /* a new input starts from window 0, whatever happened to the last one */
    if (l->src) src_reset(l->src);
    l->in_have = 0, l->have = 0, l->skip = 0, l->index = 0, l->in_total = 0;
    l->score_sum = 0, l->ng_windows = 0;
    for (int k = 0; k < l->classes; k++) l->psum[k] = 0;
    return s;
}

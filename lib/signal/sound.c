/* Windows of a recording as a model's input (include/aibox/sound.h): the
 * settings, their place in a model's metadata, and the front end that turns
 * one window into LOGMEL, RAW or FEATURES floats. The dataset
 * (sounddata.c), the detector and the listener all go through the front
 * end, so training and inference compute exactly the same numbers. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

#define MAX_WINDOW (1L << 22)
/* One window's input is held in memory per window of a dataset: a cap well
 * above any sensible spectrogram keeps int shapes and allocations sane. */
#define MAX_INPUT_FLOATS (1L << 24)
#define N_STATS 4 /* RMS, peak, crest, kurtosis: the FEATURES tail */
/* The spectral work of one window, frames x n_fft x (n_fft's largest prime
 * factor above 5: kissfft's generic radix is quadratic in it), is bounded: a
 * model file of a few kB could otherwise ask for hours per window (hop 1,
 * n_fft 65536). The largest the tools make (2^22 samples, n_fft 1024, hop
 * 512) is 2^23. */
#define MAX_WINDOW_WORK (1LL << 28)
#define MAX_RATE 1e9 /* as the readers and the listener: Hz */

static const char *const INPUT_NAMES[] = {"logmel", "raw", "features"};
static const char *const NORM_NAMES[] = {"none", "rms"};

const char *aibox_sound_input_name(aibox_sound_input k) { return (unsigned)k < 3 ? INPUT_NAMES[k] : "?"; }
const char *aibox_sound_norm_name(aibox_sound_norm k) { return (unsigned)k < 2 ? NORM_NAMES[k] : "?"; }

/* The power of two nearest v (linear distance; ties go up), clamped to 16 .. 2^22. */
static long pow2_nearest(double v)
{
    long p = 16;
    while (p < MAX_WINDOW && (double)p * 2 <= v) p *= 2;
    if (p < MAX_WINDOW && v - (double)p >= (double)p * 2 - v) p *= 2;
    return p;
}

void aibox_sound_opts_default(aibox_sound_opts *o, double rate, aibox_sound_input input)
{
    if (!o) return;
    memset(o, 0, sizeof *o);
    aibox_spectral_opts_default(&o->spec, rate);
    o->spec.n_fft = rate >= 32000.0 ? 1024 : 512;
    o->window = pow2_nearest(rate / 2.0);
    /* very low rates: a frame may not be longer than the window */
    if (o->window < o->spec.n_fft) o->spec.n_fft = (int)o->window;
    o->spec.hop = o->spec.n_fft / 2;
    o->spec.win_length = 0;
    o->spec.pad = AIBOX_PAD_NONE;
    o->spec.n_mels = 64;
    o->spec.top_db = 0.0; /* a window's features must not depend on its own maximum */
    o->spec.n_mfcc = 1;   /* windows use no MFCC; 1 stays valid whatever n_mels is set to */
    o->hop = o->window / 2;
    o->input = input;
    o->norm = input == AIBOX_SOUND_RAW ? AIBOX_SOUND_NORM_RMS : AIBOX_SOUND_NORM_NONE;
    o->in_mean = 0.0f, o->in_std = 1.0f;
}

/* c x h x w of a checked o (no messages). */
static void shape_of(const aibox_sound_opts *o, long *c, long *h, long *w)
{
    const aibox_spectral_opts *p = &o->spec;
    switch (o->input) {
    case AIBOX_SOUND_LOGMEL: {
        /* aibox_spectral_frames' rule, without building the FFT plan */
        const long len = p->pad == AIBOX_PAD_NONE ? o->window : o->window + 2 * (p->n_fft / 2);
        *c = 1, *h = p->n_mels, *w = len < p->n_fft ? 0 : 1 + (len - p->n_fft) / p->hop;
        break;
    }
    case AIBOX_SOUND_RAW: *c = 1, *h = 1, *w = o->window; break;
    default: *c = 2 * p->n_mels + N_STATS, *h = 1, *w = 1; break;
    }
}

aibox_status aibox_sound_opts_check(const aibox_sound_opts *o, aibox_error *err)
{
    if (!o) return aibox_fail(err, AIBOX_E_INVALID, "sound: NULL settings");
    if ((unsigned)o->input > AIBOX_SOUND_FEATURES)
        return aibox_fail(err, AIBOX_E_INVALID, "sound: unknown input kind %d", (int)o->input);
    if ((unsigned)o->norm > AIBOX_SOUND_NORM_RMS)
        return aibox_fail(err, AIBOX_E_INVALID, "sound: unknown normalisation %d", (int)o->norm);
    aibox_error why = {0};
    if (aibox_spectral_opts_check(&o->spec, &why))
        return aibox_fail(err, AIBOX_E_INVALID, "sound: %s", why.msg);
    if (o->window < 16 || o->window > MAX_WINDOW)
        return aibox_fail(err, AIBOX_E_INVALID, "sound: window %ld samples must be 16 .. %ld", o->window, MAX_WINDOW);
    if (o->hop < 1 || o->hop > MAX_WINDOW)
        return aibox_fail(err, AIBOX_E_INVALID, "sound: hop %ld samples must be 1 .. %ld", o->hop, MAX_WINDOW);
    if (o->input != AIBOX_SOUND_RAW && o->window < o->spec.n_fft)
        return aibox_fail(err, AIBOX_E_INVALID, "sound: window %ld samples is shorter than one frame (n_fft %d)",
                          o->window, o->spec.n_fft);
    if (!isfinite(o->in_mean) || !(o->in_std > 0.0f) || !isfinite(o->in_std))
        return aibox_fail(err, AIBOX_E_INVALID, "sound: standardisation mean %g, std %g (need finite, std > 0)",
                          (double)o->in_mean, (double)o->in_std);
    if (!(o->spec.rate < MAX_RATE))
        return aibox_fail(err, AIBOX_E_INVALID, "sound: rate %g Hz must be below %g Hz", o->spec.rate, MAX_RATE);
    if (o->input != AIBOX_SOUND_RAW) {
        const long len = o->spec.pad == AIBOX_PAD_NONE ? o->window : o->window + 2 * (o->spec.n_fft / 2);
        const long frames = len < o->spec.n_fft ? 0 : 1 + (len - o->spec.n_fft) / o->spec.hop;
        long p = 1, q = o->spec.n_fft; /* n_fft's largest prime factor */
        for (long f = 2; f * f <= q; f++)
            while (q % f == 0) q /= f, p = f;
        if (q > p) p = q;
        const long long work = (long long)frames * o->spec.n_fft * (p > 5 ? p : 1);
        if (work > MAX_WINDOW_WORK)
            return aibox_fail(err, AIBOX_E_INVALID,
                              "sound: a window of %ld samples takes %ld frames of n_fft %d (hop %d): too much work per "
                              "window (frames x n_fft x its largest prime factor, when above 5, must be at most 2^28)",
                              o->window, frames, o->spec.n_fft, o->spec.hop);
    }
    long c, h, w;
    shape_of(o, &c, &h, &w);
    if (c * h * w < 1)
        return aibox_fail(err, AIBOX_E_INVALID, "sound: window %ld gives no frame (n_fft %d, pad %s)", o->window,
                          o->spec.n_fft, aibox_pad_name(o->spec.pad));
    if (c * h * w > MAX_INPUT_FLOATS)
        return aibox_fail(err, AIBOX_E_INVALID, "sound: a window's input of %ld x %ld x %ld floats is too large (max %ld)",
                          c, h, w, MAX_INPUT_FLOATS);
    return AIBOX_OK;
}

aibox_status aibox_sound_input_shape(const aibox_sound_opts *o, int *c, int *h, int *w, aibox_error *err)
{
    aibox_status s = aibox_sound_opts_check(o, err);
    if (s) return s;
    long lc, lh, lw;
    shape_of(o, &lc, &lh, &lw);
    if (c) *c = (int)lc;
    if (h) *h = (int)lh;
    if (w) *w = (int)lw;
    return AIBOX_OK;
}

long aibox_sound_window_count(const aibox_sound_opts *o, long n)
{
    if (!o || o->window < 1 || o->hop < 1 || n < o->window) return 0;
    return 1 + (n - o->window) / o->hop;
}

/* ------------------------------------------------------------------ model metadata */
#define KEY(name) "aibox.sound." name

aibox_status aibox_sound_opts_to_model(const aibox_sound_opts *o, aibox_model *m, aibox_error *err)
{
    if (!o || !m) return aibox_fail(err, AIBOX_E_INVALID, "sound: NULL argument");
    int c, h, w, mc, mh, mw;
    aibox_status s = aibox_sound_input_shape(o, &c, &h, &w, err);
    if (s) return s;
    aibox_model_input_shape(m, &mc, &mh, &mw);
    /* a model whose input is not what the windows give could never run on them */
    if (mc != c || mh != h || mw != w)
        return aibox_fail(err, AIBOX_E_SHAPE, "sound: %s windows give %d x %d x %d inputs, the model takes %d x %d x %d",
                          aibox_sound_input_name(o->input), c, h, w, mc, mh, mw);
    if ((s = aibox_spectral_opts_to_model(&o->spec, m, err))) return s;
    if (!s) s = aibox_model_set_meta_int(m, KEY("window"), o->window, err);
    if (!s) s = aibox_model_set_meta_int(m, KEY("hop"), o->hop, err);
    if (!s) s = aibox_model_set_meta_str(m, KEY("input"), aibox_sound_input_name(o->input), err);
    if (!s) s = aibox_model_set_meta_str(m, KEY("norm"), aibox_sound_norm_name(o->norm), err);
    if (!s) s = aibox_model_set_meta_float(m, KEY("in_mean"), o->in_mean, err);
    if (!s) s = aibox_model_set_meta_float(m, KEY("in_std"), o->in_std, err);
    return s;
}

/* Any kind of value counts: a damaged sound model (aibox.sound.input not a
 * string) is then refused as a sound model saying why, not taken for an
 * image model that fails on every recording. */
int aibox_model_is_sound(const aibox_model *m)
{
    return m && aibox_model_meta_kind(m, KEY("input")) != AIBOX_META_NONE;
}

static aibox_status name_index(const char *key, const char *v, const char *const *names, int n, int *out,
                               aibox_error *err)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(v, names[i])) return *out = i, AIBOX_OK;
    return aibox_fail(err, AIBOX_E_FORMAT, "model metadata %s: unknown value '%s'", key, v);
}

static aibox_status req_int(const aibox_model *m, const char *key, long *v, aibox_error *err)
{
    int64_t x;
    if (aibox_model_get_meta_int(m, key, &x) != AIBOX_OK)
        return aibox_fail(err, AIBOX_E_FORMAT, "model metadata %s: absent or not an integer", key);
    if (x < -MAX_WINDOW * 4 || x > MAX_WINDOW * 4)
        return aibox_fail(err, AIBOX_E_FORMAT, "model metadata %s: %lld is out of range", key, (long long)x);
    *v = (long)x;
    return AIBOX_OK;
}

aibox_status aibox_sound_opts_from_model(aibox_sound_opts *o, const aibox_model *m, aibox_error *err)
{
    if (!o || !m) return aibox_fail(err, AIBOX_E_INVALID, "sound: NULL argument");
    const char *in_name, *norm_name = "none";
    if (aibox_model_meta_kind(m, KEY("input")) == AIBOX_META_NONE)
        return aibox_fail(err, AIBOX_E_NOTFOUND, "the model is not a signal model (no aibox.sound.input)");
    if (aibox_model_get_meta_str(m, KEY("input"), &in_name) != AIBOX_OK)
        return aibox_fail(err, AIBOX_E_FORMAT, "model metadata %s: not a string", KEY("input"));
    aibox_sound_opts r;
    memset(&r, 0, sizeof r);
    aibox_error why = {0};
    aibox_status s = aibox_spectral_opts_from_model(&r.spec, m, &why);
    if (s == AIBOX_E_NOTFOUND)
        return aibox_fail(err, AIBOX_E_FORMAT, "model metadata: aibox.sound.input without aibox.signal.rate");
    if (s) return aibox_fail(err, s, "%s", why.msg);
    int k = 0, nk = 0;
    if ((s = name_index(KEY("input"), in_name, INPUT_NAMES, 3, &k, err))) return s;
    if (aibox_model_meta_kind(m, KEY("norm")) != AIBOX_META_NONE &&
        aibox_model_get_meta_str(m, KEY("norm"), &norm_name) != AIBOX_OK)
        return aibox_fail(err, AIBOX_E_FORMAT, "model metadata %s: not a string", KEY("norm"));
    if ((s = name_index(KEY("norm"), norm_name, NORM_NAMES, 2, &nk, err))) return s;
    r.input = (aibox_sound_input)k, r.norm = (aibox_sound_norm)nk;
    if ((s = req_int(m, KEY("window"), &r.window, err)) || (s = req_int(m, KEY("hop"), &r.hop, err))) return s;
    double mean = 0.0, sd = 1.0;
    const char *fk[2] = {KEY("in_mean"), KEY("in_std")};
    double *fv[2] = {&mean, &sd};
    for (int i = 0; i < 2; i++)
        if (aibox_model_meta_kind(m, fk[i]) != AIBOX_META_NONE && aibox_model_get_meta_float(m, fk[i], fv[i]))
            return aibox_fail(err, AIBOX_E_FORMAT, "model metadata %s: not a number", fk[i]);
    /* a float must hold them: beyond it the standardisation is meaningless */
    if (!(fabs(mean) < 1e30) || !(sd > 0.0 && sd < 1e30) || !((float)sd > 0.0f))
        return aibox_fail(err, AIBOX_E_FORMAT, "model metadata aibox.sound.in_mean %g / in_std %g are unusable", mean,
                          sd);
    r.in_mean = (float)mean, r.in_std = (float)sd;
    if (aibox_sound_opts_check(&r, &why))
        return aibox_fail(err, AIBOX_E_FORMAT, "model metadata aibox.sound.*: %s", why.msg);
    int c, h, w, mc, mh, mw;
    aibox_sound_input_shape(&r, &c, &h, &w, NULL);
    aibox_model_input_shape(m, &mc, &mh, &mw);
    if (mc != c || mh != h || mw != w)
        return aibox_fail(err, AIBOX_E_FORMAT,
                          "model metadata aibox.sound.*: %s windows give %d x %d x %d inputs, the model takes %d x %d x %d",
                          in_name, c, h, w, mc, mh, mw);
    *o = r;
    return AIBOX_OK;
}

/* ------------------------------------------------------------------ front end */
struct aibox_sound_frontend {
    aibox_sound_opts o;
    size_t size;       /* floats out */
    long frames;       /* spectral frames per window (LOGMEL, FEATURES) */
    aibox_spectral *sp; /* NULL for RAW */
    float *xn;         /* the window after RMS normalisation */
    float *mel;        /* frames x n_mels */
    float *stats;      /* frames x AIBOX_STAT_COUNT */
};

aibox_status aibox_sound_frontend_create(aibox_sound_frontend **out, const aibox_sound_opts *o, aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "sound front end: NULL output");
    *out = NULL;
    aibox_status s = aibox_sound_opts_check(o, err);
    if (s) return s;
    aibox_sound_frontend *fe = calloc(1, sizeof *fe);
    if (!fe) return aibox_fail(err, AIBOX_E_NOMEM, "sound front end: out of memory");
    fe->o = *o;
    long c, h, w;
    shape_of(o, &c, &h, &w);
    fe->size = (size_t)(c * h * w);
    fe->xn = malloc(sizeof *fe->xn * (size_t)o->window);
    if (!fe->xn) s = aibox_fail(err, AIBOX_E_NOMEM, "sound front end: out of memory");
    if (!s && o->input != AIBOX_SOUND_RAW) {
        s = aibox_spectral_create(&fe->sp, &o->spec, err);
        if (!s) {
            fe->frames = (long)aibox_spectral_frames(fe->sp, (size_t)o->window);
            fe->mel = malloc(sizeof *fe->mel * (size_t)fe->frames * (size_t)o->spec.n_mels);
            fe->stats = malloc(sizeof *fe->stats * (size_t)fe->frames * AIBOX_STAT_COUNT);
            if (!fe->mel || !fe->stats) s = aibox_fail(err, AIBOX_E_NOMEM, "sound front end: out of memory");
        }
    }
    if (s) {
        aibox_sound_frontend_free(&fe);
        return s;
    }
    *out = fe;
    return AIBOX_OK;
}

void aibox_sound_frontend_free(aibox_sound_frontend **fe)
{
    if (!fe || !*fe) return;
    aibox_spectral_free(&(*fe)->sp);
    free((*fe)->xn), free((*fe)->mel), free((*fe)->stats);
    free(*fe);
    *fe = NULL;
}

const aibox_sound_opts *aibox_sound_frontend_opts(const aibox_sound_frontend *fe) { return fe ? &fe->o : NULL; }
size_t aibox_sound_frontend_size(const aibox_sound_frontend *fe) { return fe ? fe->size : 0; }

aibox_status aibox_sound_frontend_run(aibox_sound_frontend *fe, const float *x, float *out, float *raw,
                                      aibox_error *err)
{
    if (!fe || !x || !out) return aibox_fail(err, AIBOX_E_INVALID, "sound front end: NULL argument");
    const aibox_sound_opts *o = &fe->o;
    const long n = o->window;
    double sq = 0.0;
    for (long i = 0; i < n; i++) {
        if (!isfinite(x[i])) return aibox_fail(err, AIBOX_E_NONFINITE, "sound: sample %ld of the window is not finite", i);
        sq += (double)x[i] * x[i];
    }
    const float *xs = x;
    if (o->norm == AIBOX_SOUND_NORM_RMS) {
        const double rms = sqrt(sq / (double)n);
        if (rms > 0.0) { /* a silent window stays as it is */
            for (long i = 0; i < n; i++) fe->xn[i] = (float)((double)x[i] / rms);
            xs = fe->xn;
        }
    }
    /* the unstandardised input goes to raw if given, else straight to out */
    float *v = raw ? raw : out;
    aibox_status s = AIBOX_OK;
    if (o->input == AIBOX_SOUND_RAW) {
        memcpy(v, xs, sizeof *v * (size_t)n);
    } else if (o->input == AIBOX_SOUND_LOGMEL) {
        const long F = fe->frames, M = o->spec.n_mels;
        if ((s = aibox_spectral_logmel(fe->sp, xs, (size_t)n, fe->mel, err))) return s;
        for (long t = 0; t < F; t++) /* frames x mels -> mels as rows, frames as columns */
            for (long mm = 0; mm < M; mm++) v[mm * F + t] = fe->mel[t * M + mm];
    } else {
        const long F = fe->frames, M = o->spec.n_mels;
        if ((s = aibox_spectral_logmel(fe->sp, xs, (size_t)n, fe->mel, err))) return s;
        if ((s = aibox_spectral_stats(fe->sp, xs, (size_t)n, fe->stats, err))) return s;
        static const int pick[N_STATS] = {AIBOX_STAT_RMS, AIBOX_STAT_PEAK, AIBOX_STAT_CREST, AIBOX_STAT_KURTOSIS};
        /* each band's mean and standard deviation over the frames (two passes
         * in double: the deviations are small beside dB levels near -60) */
        for (long mm = 0; mm < M; mm++) {
            double acc = 0.0, dev = 0.0;
            for (long t = 0; t < F; t++) acc += fe->mel[t * M + mm];
            const double mean = acc / (double)F;
            for (long t = 0; t < F; t++) {
                const double dv = fe->mel[t * M + mm] - mean;
                dev += dv * dv;
            }
            v[mm] = (float)mean;
            v[M + mm] = (float)sqrt(dev / (double)F);
        }
        for (int k = 0; k < N_STATS; k++) {
            double acc = 0.0;
            for (long t = 0; t < F; t++) acc += fe->stats[t * AIBOX_STAT_COUNT + pick[k]];
            v[2 * M + k] = (float)(acc / (double)F);
        }
    }
    const float mean = o->in_mean, sd = o->in_std;
    for (size_t i = 0; i < fe->size; i++) out[i] = (v[i] - mean) / sd;
    return AIBOX_OK;
}

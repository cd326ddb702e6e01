/* Signal features: framing, Hann window, STFT on kissfft's real FFT (BSD;
 * FFTW would be GPL), mel filterbank, log-mel, MFCC and per-frame time
 * statistics (include/aibox/spectral.h says what each computes). Tables
 * are built once per aibox_spectral in double; only the FFT runs in float,
 * the one precision Debian's kissfft ships. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define KISS_FFT_SHARED /* the Debian library's declarations (kissfft-float.pc) */
#include <kissfft/kiss_fftr.h>

#include "core/core.h"

struct aibox_spectral {
    aibox_spectral_opts o;
    int bins;
    kiss_fftr_cfg fft;
    double *window;    /* n_fft, win_length centred */
    double *mel;       /* n_mels x bins */
    int *mel_lo, *mel_hi; /* each filter's non-zero bins [lo, hi) */
    double *dct;       /* n_mfcc x n_mels */
    float *frame;      /* n_fft scratch */
    kiss_fft_cpx *spec; /* bins scratch */
    double *power;     /* bins scratch */
    double *lm;        /* frames x n_mels in double: grows to the longest call, kept (a call a window
                          would otherwise allocate and free once per window) */
    size_t lm_cap;     /* doubles lm holds */
};

void aibox_spectral_opts_default(aibox_spectral_opts *o, double rate)
{
    memset(o, 0, sizeof *o);
    o->rate = rate;
    o->n_fft = 2048;
    o->hop = 512;
    o->win_length = 0;
    o->window = AIBOX_WINDOW_HANN;
    o->pad = AIBOX_PAD_REFLECT;
    o->power = 2;
    o->n_mels = 128;
    o->fmin = 0.0;
    o->fmax = 0.0;
    o->mel_scale = AIBOX_MEL_SLANEY;
    o->mel_norm = AIBOX_MELNORM_SLANEY;
    o->log = AIBOX_LOG_DB;
    o->amin = 1e-10;
    o->top_db = 80.0;
    o->eps = 1e-6;
    o->n_mfcc = 20;
}

aibox_status aibox_spectral_opts_check(const aibox_spectral_opts *o, aibox_error *err)
{
    if (!o) return aibox_fail(err, AIBOX_E_INVALID, "spectral: NULL settings");
    if (!(o->rate > 0.0) || !isfinite(o->rate))
        return aibox_fail(err, AIBOX_E_INVALID, "spectral: rate %g is not a positive number", o->rate);
    if (o->n_fft < 2 || o->n_fft > 65536 || o->n_fft % 2)
        return aibox_fail(err, AIBOX_E_INVALID, "spectral: n_fft %d must be even, 2 .. 65536", o->n_fft);
    if (o->hop < 1) return aibox_fail(err, AIBOX_E_INVALID, "spectral: hop %d must be >= 1", o->hop);
    if (o->win_length < 0 || o->win_length > o->n_fft)
        return aibox_fail(err, AIBOX_E_INVALID, "spectral: win_length %d must be 1 .. n_fft %d (0: n_fft)",
                          o->win_length, o->n_fft);
    if ((unsigned)o->window > AIBOX_WINDOW_RECT) return aibox_fail(err, AIBOX_E_INVALID, "spectral: unknown window");
    if ((unsigned)o->pad > AIBOX_PAD_NONE) return aibox_fail(err, AIBOX_E_INVALID, "spectral: unknown padding");
    if (o->power != 1 && o->power != 2)
        return aibox_fail(err, AIBOX_E_INVALID, "spectral: power %d must be 1 (magnitude) or 2", o->power);
    if (o->n_mels < 1 || o->n_mels > 1024)
        return aibox_fail(err, AIBOX_E_INVALID, "spectral: n_mels %d must be 1 .. 1024", o->n_mels);
    const double nyq = o->rate / 2.0, fmax = o->fmax == 0.0 ? nyq : o->fmax;
    if (!(o->fmin >= 0.0) || !(fmax > o->fmin) || !(fmax <= nyq))
        return aibox_fail(err, AIBOX_E_INVALID, "spectral: mel band %g .. %g Hz must lie in 0 .. %g Hz", o->fmin, fmax,
                          nyq);
    if ((unsigned)o->mel_scale > AIBOX_MEL_HTK) return aibox_fail(err, AIBOX_E_INVALID, "spectral: unknown mel scale");
    if ((unsigned)o->mel_norm > AIBOX_MELNORM_NONE)
        return aibox_fail(err, AIBOX_E_INVALID, "spectral: unknown mel normalisation");
    if ((unsigned)o->log > AIBOX_LOG_LN) return aibox_fail(err, AIBOX_E_INVALID, "spectral: unknown log kind");
    if (o->log == AIBOX_LOG_DB && (!(o->amin > 0.0) || !isfinite(o->amin) || !(o->top_db >= 0.0) ||
                                   !isfinite(o->top_db)))
        return aibox_fail(err, AIBOX_E_INVALID, "spectral: dB needs amin > 0 (%g) and top_db >= 0 (%g)", o->amin,
                          o->top_db);
    if (o->log == AIBOX_LOG_LN && (!(o->eps > 0.0) || !isfinite(o->eps)))
        return aibox_fail(err, AIBOX_E_INVALID, "spectral: ln needs eps > 0 (%g)", o->eps);
    if (o->n_mfcc < 1 || o->n_mfcc > o->n_mels)
        return aibox_fail(err, AIBOX_E_INVALID, "spectral: n_mfcc %d must be 1 .. n_mels %d", o->n_mfcc, o->n_mels);
    return AIBOX_OK;
}

/* librosa.hz_to_mel / mel_to_hz: Slaney's scale is linear (200/3 Hz per
 * mel) below 1 kHz and logarithmic (27 mels per factor 6.4) above. */
static double hz_to_mel(double f, aibox_mel_scale s)
{
    if (s == AIBOX_MEL_HTK) return 2595.0 * log10(1.0 + f / 700.0);
    const double f_sp = 200.0 / 3.0, min_log_mel = 1000.0 / f_sp, logstep = log(6.4) / 27.0;
    return f >= 1000.0 ? min_log_mel + log(f / 1000.0) / logstep : f / f_sp;
}

static double mel_to_hz(double m, aibox_mel_scale s)
{
    if (s == AIBOX_MEL_HTK) return 700.0 * (pow(10.0, m / 2595.0) - 1.0);
    const double f_sp = 200.0 / 3.0, min_log_mel = 1000.0 / f_sp, logstep = log(6.4) / 27.0;
    return m >= min_log_mel ? 1000.0 * exp(logstep * (m - min_log_mel)) : f_sp * m;
}

/* librosa.filters.mel: triangles on n_mels + 2 mel-spaced points, the
 * ramps evaluated at the FFT bin frequencies k * rate / n_fft. */
static aibox_status build_mel(aibox_spectral *sp, aibox_error *err)
{
    const aibox_spectral_opts *o = &sp->o;
    const int nm = o->n_mels, nb = sp->bins;
    double *pts = malloc((size_t)(nm + 2) * sizeof *pts);
    if (!pts) return aibox_fail(err, AIBOX_E_NOMEM, "spectral: out of memory");
    const double m0 = hz_to_mel(o->fmin, o->mel_scale), m1 = hz_to_mel(o->fmax, o->mel_scale);
    for (int i = 0; i < nm + 2; i++) /* np.linspace(m0, m1, nm + 2) */
        pts[i] = mel_to_hz(i == nm + 1 ? m1 : m0 + (m1 - m0) * i / (nm + 1), o->mel_scale);
    for (int i = 0; i < nm; i++) {
        double *row = sp->mel + (size_t)i * nb;
        const double d0 = pts[i + 1] - pts[i], d1 = pts[i + 2] - pts[i + 1];
        const double scale = o->mel_norm == AIBOX_MELNORM_SLANEY ? 2.0 / (pts[i + 2] - pts[i]) : 1.0;
        int lo = nb, hi = 0;
        for (int k = 0; k < nb; k++) {
            const double f = k * o->rate / o->n_fft;
            const double lower = (f - pts[i]) / d0, upper = (pts[i + 2] - f) / d1;
            double w = lower < upper ? lower : upper;
            w = w > 0.0 ? w * scale : 0.0;
            row[k] = w;
            if (w > 0.0) {
                if (k < lo) lo = k;
                hi = k + 1;
            }
        }
        sp->mel_lo[i] = lo < hi ? lo : 0;
        sp->mel_hi[i] = hi;
    }
    free(pts);
    return AIBOX_OK;
}

aibox_status aibox_spectral_create(aibox_spectral **out, const aibox_spectral_opts *o, aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "spectral: NULL argument");
    *out = NULL;
    aibox_status s = aibox_spectral_opts_check(o, err);
    if (s) return s;
    aibox_spectral *sp = calloc(1, sizeof *sp);
    if (!sp) return aibox_fail(err, AIBOX_E_NOMEM, "spectral: out of memory");
    sp->o = *o;
    if (sp->o.win_length == 0) sp->o.win_length = o->n_fft;
    if (sp->o.fmax == 0.0) sp->o.fmax = o->rate / 2.0;
    const int nf = o->n_fft, nb = nf / 2 + 1, nm = o->n_mels;
    sp->bins = nb;
    sp->fft = kiss_fftr_alloc(nf, 0, NULL, NULL);
    sp->window = calloc((size_t)nf, sizeof *sp->window);
    sp->mel = calloc((size_t)nm * nb, sizeof *sp->mel);
    sp->mel_lo = calloc((size_t)nm, sizeof *sp->mel_lo);
    sp->mel_hi = calloc((size_t)nm, sizeof *sp->mel_hi);
    sp->dct = calloc((size_t)o->n_mfcc * nm, sizeof *sp->dct);
    sp->frame = calloc((size_t)nf, sizeof *sp->frame);
    sp->spec = calloc((size_t)nb, sizeof *sp->spec);
    sp->power = calloc((size_t)nb, sizeof *sp->power);
    if (!sp->fft || !sp->window || !sp->mel || !sp->mel_lo || !sp->mel_hi || !sp->dct || !sp->frame || !sp->spec ||
        !sp->power) {
        aibox_spectral_free(&sp);
        return aibox_fail(err, AIBOX_E_NOMEM, "spectral: out of memory (n_fft %d, %d mels)", nf, nm);
    }
    const int wl = sp->o.win_length, off = (nf - wl) / 2; /* librosa's pad_center */
    for (int i = 0; i < wl; i++)
        sp->window[off + i] = o->window == AIBOX_WINDOW_RECT ? 1.0 : 0.5 - 0.5 * cos(2.0 * M_PI * i / wl);
    if ((s = build_mel(sp, err))) {
        aibox_spectral_free(&sp);
        return s;
    }
    for (int k = 0; k < o->n_mfcc; k++) { /* orthonormal DCT-II rows */
        const double scale = sqrt((k == 0 ? 1.0 : 2.0) / nm);
        for (int j = 0; j < nm; j++) sp->dct[(size_t)k * nm + j] = scale * cos(M_PI * k * (2 * j + 1) / (2.0 * nm));
    }
    *out = sp;
    return AIBOX_OK;
}

void aibox_spectral_free(aibox_spectral **sp)
{
    if (!sp || !*sp) return;
    aibox_spectral *p = *sp;
    kiss_fftr_free(p->fft);
    free(p->window);
    free(p->mel);
    free(p->mel_lo);
    free(p->mel_hi);
    free(p->dct);
    free(p->frame);
    free(p->spec);
    free(p->power);
    free(p->lm);
    free(p);
    *sp = NULL;
}

const aibox_spectral_opts *aibox_spectral_get_opts(const aibox_spectral *sp) { return sp ? &sp->o : NULL; }
int aibox_spectral_bins(const aibox_spectral *sp) { return sp ? sp->bins : 0; }
const double *aibox_spectral_mel_filters(const aibox_spectral *sp) { return sp ? sp->mel : NULL; }

size_t aibox_spectral_frames(const aibox_spectral *sp, size_t n)
{
    if (!sp || n == 0) return 0; /* nothing to pad an empty signal with */
    const size_t nf = (size_t)sp->o.n_fft, len = sp->o.pad == AIBOX_PAD_NONE ? n : n + 2 * (nf / 2);
    return len < nf ? 0 : 1 + (len - nf) / (size_t)sp->o.hop;
}

/* Sample j of the padded signal (numpy.pad's 'reflect': mirrored about the
 * end samples, repeatedly when the padding is longer than the signal). */
static double padded(const aibox_spectral *sp, const float *x, size_t n, size_t j)
{
    const size_t p = sp->o.pad == AIBOX_PAD_NONE ? 0 : (size_t)sp->o.n_fft / 2;
    if (j >= p && j - p < n) return x[j - p];
    if (sp->o.pad != AIBOX_PAD_REFLECT || n == 1) return sp->o.pad == AIBOX_PAD_REFLECT ? x[0] : 0.0;
    const long long period = 2 * ((long long)n - 1);
    long long i = ((long long)j - (long long)p) % period;
    if (i < 0) i += period;
    return x[i >= (long long)n ? period - i : i];
}

static aibox_status check_input(const aibox_spectral *sp, const float *x, size_t n, const float *out, size_t *frames,
                                aibox_error *err)
{
    if (!sp || !x || !out) return aibox_fail(err, AIBOX_E_INVALID, "spectral: NULL argument");
    *frames = aibox_spectral_frames(sp, n);
    if (*frames == 0)
        return aibox_fail(err, AIBOX_E_SHAPE, "spectral: %zu samples are less than one frame (n_fft %d, padding %s)",
                          n, sp->o.n_fft, aibox_pad_name(sp->o.pad));
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return aibox_fail(err, AIBOX_E_NONFINITE, "spectral: sample %zu is not finite", i);
    return AIBOX_OK;
}

/* |rfft(window * frame t)|^power into sp->power. */
static void frame_power(aibox_spectral *sp, const float *x, size_t n, size_t t)
{
    const int nf = sp->o.n_fft;
    const size_t start = t * (size_t)sp->o.hop;
    for (int i = 0; i < nf; i++) sp->frame[i] = (float)(sp->window[i] * padded(sp, x, n, start + i));
    kiss_fftr(sp->fft, sp->frame, sp->spec);
    for (int k = 0; k < sp->bins; k++) {
        const double re = sp->spec[k].r, im = sp->spec[k].i, p = re * re + im * im;
        sp->power[k] = sp->o.power == 2 ? p : sqrt(p);
    }
}

aibox_status aibox_spectral_stft(aibox_spectral *sp, const float *x, size_t n, float *out, aibox_error *err)
{
    size_t frames;
    aibox_status s = check_input(sp, x, n, out, &frames, err);
    if (s) return s;
    for (size_t t = 0; t < frames; t++) {
        frame_power(sp, x, n, t);
        for (int k = 0; k < sp->bins; k++) out[t * sp->bins + k] = (float)sp->power[k];
    }
    return AIBOX_OK;
}

/* The log-mel matrix in double (frames x n_mels), top_db over all of it. */
static void logmel_d(aibox_spectral *sp, const float *x, size_t n, size_t frames, double *lm)
{
    const aibox_spectral_opts *o = &sp->o;
    const int nm = o->n_mels;
    double top = -HUGE_VAL;
    for (size_t t = 0; t < frames; t++) {
        frame_power(sp, x, n, t);
        for (int m = 0; m < nm; m++) {
            const double *w = sp->mel + (size_t)m * sp->bins;
            double acc = 0.0;
            for (int k = sp->mel_lo[m]; k < sp->mel_hi[m]; k++) acc += w[k] * sp->power[k];
            const double v = o->log == AIBOX_LOG_DB ? 10.0 * log10(acc > o->amin ? acc : o->amin) : log(acc + o->eps);
            lm[t * nm + m] = v;
            if (v > top) top = v;
        }
    }
    if (o->log == AIBOX_LOG_DB && o->top_db > 0.0) {
        const double floor_db = top - o->top_db;
        for (size_t i = 0; i < frames * nm; i++)
            if (lm[i] < floor_db) lm[i] = floor_db;
    }
}

/* The object's log-mel scratch for `frames` frames, grown when too small. */
static double *logmel_scratch(aibox_spectral *sp, size_t frames, aibox_error *err)
{
    size_t count;
    if (!aibox_mul_ok(frames, (size_t)sp->o.n_mels, &count) || count > SIZE_MAX / sizeof(double)) count = SIZE_MAX;
    if (count > sp->lm_cap) {
        double *lm = count == SIZE_MAX ? NULL : realloc(sp->lm, count * sizeof(double));
        if (!lm) {
            aibox_fail(err, AIBOX_E_NOMEM, "spectral: no memory for %zu frames of %d mels", frames, sp->o.n_mels);
            return NULL;
        }
        sp->lm = lm, sp->lm_cap = count;
    }
    return sp->lm;
}

/* The checked input's log-mel in double (the object's scratch), for both
 * outputs made from it; NULL with *s set on failure. */
static double *logmel_of(aibox_spectral *sp, const float *x, size_t n, const float *out, size_t *frames,
                         aibox_status *s, aibox_error *err)
{
    if ((*s = check_input(sp, x, n, out, frames, err))) return NULL;
    double *lm = logmel_scratch(sp, *frames, err);
    if (!lm) return *s = AIBOX_E_NOMEM, NULL;
    logmel_d(sp, x, n, *frames, lm);
    return lm;
}

aibox_status aibox_spectral_logmel(aibox_spectral *sp, const float *x, size_t n, float *out, aibox_error *err)
{
    size_t frames;
    aibox_status s;
    double *lm = logmel_of(sp, x, n, out, &frames, &s, err);
    if (!lm) return s;
    for (size_t i = 0; i < frames * (size_t)sp->o.n_mels; i++) out[i] = (float)lm[i];
    return AIBOX_OK;
}

aibox_status aibox_spectral_mfcc(aibox_spectral *sp, const float *x, size_t n, float *out, aibox_error *err)
{
    size_t frames;
    aibox_status s;
    double *lm = logmel_of(sp, x, n, out, &frames, &s, err);
    if (!lm) return s;
    const int nm = sp->o.n_mels, nc = sp->o.n_mfcc;
    for (size_t t = 0; t < frames; t++)
        for (int k = 0; k < nc; k++) {
            const double *c = sp->dct + (size_t)k * nm, *v = lm + t * nm;
            double acc = 0.0;
            for (int j = 0; j < nm; j++) acc += c[j] * v[j];
            out[t * nc + k] = (float)acc;
        }
    return AIBOX_OK;
}

aibox_status aibox_spectral_stats(const aibox_spectral *sp, const float *x, size_t n, float *out, aibox_error *err)
{
    size_t frames;
    aibox_status s = check_input(sp, x, n, out, &frames, err);
    if (s) return s;
    const int nf = sp->o.n_fft;
    for (size_t t = 0; t < frames; t++) {
        const size_t start = t * (size_t)sp->o.hop;
        double sum = 0.0, sq = 0.0, peak = 0.0, lo = HUGE_VAL, hi = -HUGE_VAL;
        for (int i = 0; i < nf; i++) {
            const double v = padded(sp, x, n, start + i), a = fabs(v);
            sum += v, sq += v * v;
            if (a > peak) peak = a;
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
        const double mean = sum / nf, rms = sqrt(sq / nf);
        double m2 = 0.0, m4 = 0.0; /* central moments: a second pass keeps them accurate */
        for (int i = 0; i < nf; i++) {
            const double d = padded(sp, x, n, start + i) - mean, d2 = d * d;
            m2 += d2, m4 += d2 * d2;
        }
        m2 /= nf, m4 /= nf;
        float *r = out + t * AIBOX_STAT_COUNT;
        r[AIBOX_STAT_MEAN] = (float)mean;
        r[AIBOX_STAT_RMS] = (float)rms;
        r[AIBOX_STAT_PEAK] = (float)peak;
        r[AIBOX_STAT_CREST] = rms > 0.0 ? (float)(peak / rms) : 0.0f;
        /* a constant frame: tested directly, as rounding in the mean could
         * leave a tiny m2 whose ratio is noise */
        r[AIBOX_STAT_KURTOSIS] = lo == hi ? 0.0f : (float)(m4 / (m2 * m2) - 3.0);
    }
    return AIBOX_OK;
}

/* ------------------------------------------------------------------ names and model metadata */
static const char *const WINDOW_NAMES[] = {"hann", "rect"};
static const char *const PAD_NAMES[] = {"reflect", "zeros", "none"};
static const char *const SCALE_NAMES[] = {"slaney", "htk"};
static const char *const NORM_NAMES[] = {"slaney", "none"};
static const char *const LOG_NAMES[] = {"db", "ln"};

const char *aibox_window_name(aibox_window w) { return (unsigned)w < 2 ? WINDOW_NAMES[w] : "?"; }
const char *aibox_pad_name(aibox_pad p) { return (unsigned)p < 3 ? PAD_NAMES[p] : "?"; }
const char *aibox_mel_scale_name(aibox_mel_scale s) { return (unsigned)s < 2 ? SCALE_NAMES[s] : "?"; }
const char *aibox_mel_norm_name(aibox_mel_norm n) { return (unsigned)n < 2 ? NORM_NAMES[n] : "?"; }
const char *aibox_log_kind_name(aibox_log_kind k) { return (unsigned)k < 2 ? LOG_NAMES[k] : "?"; }

#define KEY(name) "aibox.signal." name

aibox_status aibox_spectral_opts_to_model(const aibox_spectral_opts *o, aibox_model *m, aibox_error *err)
{
    if (!o || !m) return aibox_fail(err, AIBOX_E_INVALID, "spectral: NULL argument");
    aibox_status s = aibox_spectral_opts_check(o, err);
    if (s) return s;
    const struct { const char *key; double v; } floats[] = {
        {KEY("rate"), o->rate}, {KEY("fmin"), o->fmin},     {KEY("fmax"), o->fmax == 0.0 ? o->rate / 2.0 : o->fmax},
        {KEY("amin"), o->amin}, {KEY("top_db"), o->top_db}, {KEY("eps"), o->eps}};
    const struct { const char *key; int v; } ints[] = {
        {KEY("n_fft"), o->n_fft},   {KEY("hop"), o->hop},       {KEY("win_length"), o->win_length ? o->win_length : o->n_fft},
        {KEY("power"), o->power},   {KEY("n_mels"), o->n_mels}, {KEY("n_mfcc"), o->n_mfcc}};
    const struct { const char *key, *v; } strs[] = {
        {KEY("window"), aibox_window_name(o->window)},       {KEY("pad"), aibox_pad_name(o->pad)},
        {KEY("mel_scale"), aibox_mel_scale_name(o->mel_scale)}, {KEY("mel_norm"), aibox_mel_norm_name(o->mel_norm)},
        {KEY("log"), aibox_log_kind_name(o->log)}};
    for (size_t i = 0; !s && i < sizeof floats / sizeof *floats; i++)
        s = aibox_model_set_meta_float(m, floats[i].key, floats[i].v, err);
    for (size_t i = 0; !s && i < sizeof ints / sizeof *ints; i++)
        s = aibox_model_set_meta_int(m, ints[i].key, ints[i].v, err);
    for (size_t i = 0; !s && i < sizeof strs / sizeof *strs; i++)
        s = aibox_model_set_meta_str(m, strs[i].key, strs[i].v, err);
    return s;
}

static aibox_status get_name(const aibox_model *m, const char *key, const char *const *names, int count, int *v,
                             aibox_error *err)
{
    const char *name;
    if (aibox_model_get_meta_str(m, key, &name) != AIBOX_OK) return AIBOX_OK; /* absent: keep the default */
    for (int i = 0; i < count; i++)
        if (!strcmp(name, names[i])) {
            *v = i;
            return AIBOX_OK;
        }
    return aibox_fail(err, AIBOX_E_FORMAT, "model metadata %s: unknown value '%s'", key, name);
}

static aibox_status get_int(const aibox_model *m, const char *key, int *v, aibox_error *err)
{
    int64_t x;
    if (aibox_model_get_meta_int(m, key, &x) != AIBOX_OK) return AIBOX_OK;
    if (x < -1000000000 || x > 1000000000)
        return aibox_fail(err, AIBOX_E_FORMAT, "model metadata %s: %lld is out of range", key, (long long)x);
    *v = (int)x;
    return AIBOX_OK;
}

aibox_status aibox_spectral_opts_from_model(aibox_spectral_opts *o, const aibox_model *m, aibox_error *err)
{
    if (!o || !m) return aibox_fail(err, AIBOX_E_INVALID, "spectral: NULL argument");
    double rate;
    if (aibox_model_get_meta_float(m, KEY("rate"), &rate) != AIBOX_OK)
        return aibox_fail(err, AIBOX_E_NOTFOUND, "the model has no signal feature settings (aibox.signal.rate)");
    aibox_spectral_opts_default(o, rate);
    double *fv[] = {&o->fmin, &o->fmax, &o->amin, &o->top_db, &o->eps};
    const char *fk[] = {KEY("fmin"), KEY("fmax"), KEY("amin"), KEY("top_db"), KEY("eps")};
    for (int i = 0; i < 5; i++) aibox_model_get_meta_float(m, fk[i], fv[i]); /* absent: the default stays */
    int *iv[] = {&o->n_fft, &o->hop, &o->win_length, &o->power, &o->n_mels, &o->n_mfcc};
    const char *ik[] = {KEY("n_fft"), KEY("hop"), KEY("win_length"), KEY("power"), KEY("n_mels"), KEY("n_mfcc")};
    aibox_status s = AIBOX_OK;
    for (int i = 0; !s && i < 6; i++) s = get_int(m, ik[i], iv[i], err);
    int w = o->window, p = o->pad, sc = o->mel_scale, nn = o->mel_norm, lg = o->log;
    if (!s) s = get_name(m, KEY("window"), WINDOW_NAMES, 2, &w, err);
    if (!s) s = get_name(m, KEY("pad"), PAD_NAMES, 3, &p, err);
    if (!s) s = get_name(m, KEY("mel_scale"), SCALE_NAMES, 2, &sc, err);
    if (!s) s = get_name(m, KEY("mel_norm"), NORM_NAMES, 2, &nn, err);
    if (!s) s = get_name(m, KEY("log"), LOG_NAMES, 2, &lg, err);
    if (s) return s;
    o->window = (aibox_window)w, o->pad = (aibox_pad)p, o->mel_scale = (aibox_mel_scale)sc;
    o->mel_norm = (aibox_mel_norm)nn, o->log = (aibox_log_kind)lg;
    aibox_error why = {0};
    if (aibox_spectral_opts_check(o, &why) != AIBOX_OK)
        return aibox_fail(err, AIBOX_E_FORMAT, "model metadata aibox.signal.*: %s", why.msg);
    return AIBOX_OK;
}

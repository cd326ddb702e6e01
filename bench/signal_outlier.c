/* signal_outlier: the good-only outlier figures of issue 12 on the real
 * recordings in $AIBOX_DATA/sensors (default ../shared/data/sensors), through
 * the public API only (aibox_signal_load, aibox_spectral_logmel /
 * aibox_spectral_stats, aibox_metric_auroc).
 *
 *   signal_outlier [--data DIR] [--cwru-win S] [--mimii-win S] [--mimii-mels N]
 *                  [--cwru-mels N] [--reg R] [--feat mean|meanstd|std] [--cmn]
 *                  [--mimii-own] [--json]
 *
 * --feat: the log-mel part of a window's features: per-band mean over the
 * window's frames (default), mean and standard deviation (meanstd), or the
 * standard deviation only (std). --cmn: subtract each call's per-band mean
 * log-mel (over the recording, or the CWRU slice) first. --mimii-own: NOT the
 * issue's protocol: the MIMII fit also takes the first half of the scored
 * unit's normal clip and that clip's second half is the scored normal part
 * (with one clip per condition this mostly measures recording identity).
 *
 * Method (both parts): windows of the signal (hop half a window); per window
 * one feature vector = the mean over the window's frames of the log-mel (dB,
 * no top_db clamp, so a window's features do not depend on what else one call
 * sees) and of the per-frame time statistics RMS, peak, crest and kurtosis.
 * The frames come from one call over the whole recording (or fit slice) with
 * no centre padding; a window takes the frames lying wholly inside it. A
 * Gaussian is fitted on normal windows only: features standardised with the
 * fit windows' mean and standard deviation, covariance in double, plus
 * reg * trace / d on the diagonal, Cholesky by hand; score = Mahalanobis
 * distance. AUROC: aibox_metric_auroc, window level, anomalous = positive.
 *
 * (1) CWRU 48 kHz, 0 hp: the normal recording's first 60 % is the fit part:
 * the Gaussian is fitted on the windows of its first 48 %, the threshold is
 * the maximum score of the windows of 48-60 % (held out, normal only). Scored:
 * the windows of the last 40 % of the normal recording (normal) against every
 * window of every 48 kHz fault recording (inner race, ball, outer race; 3
 * each). Reports AUROC (all, per fault type, per recording), the false-alarm
 * rate (last-40 % normal windows above the threshold) and the detection rate.
 *
 * (2) MIMII (16 kHz, 0 dB): per machine type, for each unit (ID) in turn,
 * fit on the other three units' normal clips, score the held-out unit's normal
 * and abnormal clip windows; AUROC per unit and the mean per machine type,
 * beside the DCASE 2020 Task 2 auto-encoder baseline's development-set AUCs
 * (many clips per ID; indicative only: one normal and one abnormal clip per
 * unit here).
 *
 * Prints the settings, one JSON line per figure on stdout and a markdown
 * table (human lines on stdout, or stderr with --json). */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aibox.h"
#define BENCH_NAME "signal_outlier"
#include "bench.h"

#define N_STATS 4 /* RMS, peak, crest, kurtosis */

enum { FEAT_MEAN, FEAT_MEANSTD, FEAT_STD };
static const char *const FEAT_NAMES[3] = {"mean", "meanstd", "std"};

typedef struct {
    double win_s;  /* window length, seconds (hop: half) */
    int n_fft, hop, n_mels;
    double fmax;
    int feat, cmn; /* FEAT_*: per-band log-mel mean / mean and std / std over the window's frames; cmn: subtract
                    * each call's (recording's or slice's) per-band mean log-mel first */
} feat_cfg;

static int feat_dim(const feat_cfg *c) { return c->n_mels * (c->feat == FEAT_MEANSTD ? 2 : 1) + N_STATS; }

typedef struct { /* rows of d doubles */
    int d, n, cap;
    double *x;
} fset;

static void fset_init(fset *f, int d)
{
    f->d = d, f->n = 0, f->cap = 64;
    f->x = xmalloc(sizeof *f->x * (size_t)d * f->cap);
}

static double *fset_add(fset *f)
{
    if (f->n == f->cap) {
        f->cap *= 2;
        double *p = realloc(f->x, sizeof *p * (size_t)f->d * f->cap);
        if (!p) die("out of memory");
        f->x = p;
    }
    return f->x + (size_t)f->d * f->n++;
}

static void fset_free(fset *f)
{
    free(f->x);
    f->x = NULL, f->n = f->cap = 0;
}

static aibox_spectral *make_spectral(const feat_cfg *c, double rate)
{
    aibox_error err = {0};
    aibox_spectral_opts o;
    aibox_spectral_opts_default(&o, rate);
    o.n_fft = c->n_fft, o.hop = c->hop, o.win_length = 0;
    o.pad = AIBOX_PAD_NONE;
    o.n_mels = c->n_mels, o.fmin = 0, o.fmax = c->fmax;
    o.log = AIBOX_LOG_DB, o.top_db = 0;
    o.n_mfcc = 1;
    aibox_spectral *sp = NULL;
    check(aibox_spectral_create(&sp, &o, &err), &err, "spectral settings");
    return sp;
}

/* Windows of x[from, to) (window win samples, hop win / 2) appended to out. */
static void windows(aibox_spectral *sp, const feat_cfg *c, const float *x, long from, long to, long win, fset *out)
{
    aibox_error err = {0};
    size_t len = (size_t)(to - from), nf = aibox_spectral_frames(sp, len);
    if (!nf) die("a slice of %zu samples is shorter than one frame", len);
    float *mel = xalloc_floats(nf * (size_t)c->n_mels), *st = xalloc_floats(nf * AIBOX_STAT_COUNT);
    check(aibox_spectral_logmel(sp, x + from, len, mel, &err), &err, "log-mel");
    check(aibox_spectral_stats(sp, x + from, len, st, &err), &err, "time statistics");
    static const int pick[N_STATS] = {AIBOX_STAT_RMS, AIBOX_STAT_PEAK, AIBOX_STAT_CREST, AIBOX_STAT_KURTOSIS};
    int M = c->n_mels, nm = c->feat == FEAT_MEANSTD ? 2 * M : M;
    if (out->d != feat_dim(c)) die("feature dimension mismatch");
    double *mu = xmalloc(sizeof *mu * (size_t)M), *sq = xmalloc(sizeof *sq * (size_t)M);
    if (c->cmn) { /* per-band mean over every frame of this call */
        for (int m = 0; m < M; m++) mu[m] = 0;
        for (size_t t = 0; t < nf; t++)
            for (int m = 0; m < M; m++) mu[m] += mel[t * M + m];
        for (size_t t = 0; t < nf; t++)
            for (int m = 0; m < M; m++) mel[t * M + m] -= (float)(mu[m] / nf);
    }
    for (long w0 = 0; w0 + win <= (long)len; w0 += win / 2) {
        double *v = fset_add(out);
        memset(v, 0, sizeof *v * (size_t)out->d);
        for (int m = 0; m < M; m++) mu[m] = sq[m] = 0;
        int k = 0;
        for (size_t t = 0; t < nf; t++) {
            long a = (long)t * c->hop;
            if (a < w0 || a + c->n_fft > w0 + win) continue;
            for (int m = 0; m < M; m++) {
                double y = mel[t * M + m];
                mu[m] += y, sq[m] += y * y;
            }
            for (int s = 0; s < N_STATS; s++) v[nm + s] += st[t * AIBOX_STAT_COUNT + pick[s]];
            k++;
        }
        if (!k) die("a window holds no whole frame");
        for (int m = 0; m < M; m++) { /* population std over the window's frames */
            double mean = mu[m] / k, var = sq[m] / k - mean * mean;
            double sd = var > 0 ? sqrt(var) : 0;
            if (c->feat == FEAT_MEAN) v[m] = mean;
            else if (c->feat == FEAT_STD) v[m] = sd;
            else v[m] = mean, v[M + m] = sd;
        }
        for (int s = 0; s < N_STATS; s++) v[nm + s] /= k;
    }
    free(mu), free(sq);
    aibox_free(mel), aibox_free(st);
}

typedef struct {
    int d;
    double *mu, *sd, *L; /* L: Cholesky factor, d x d lower */
    double *tmp;
} gauss;

static void gauss_fit(gauss *g, const fset *f, double reg)
{
    int d = f->d, n = f->n;
    if (n < 2) die("fewer than 2 fit windows");
    g->d = d;
    g->mu = calloc((size_t)d, sizeof(double)), g->sd = calloc((size_t)d, sizeof(double));
    g->L = calloc((size_t)d * d, sizeof(double)), g->tmp = calloc((size_t)d, sizeof(double));
    if (!g->mu || !g->sd || !g->L || !g->tmp) die("out of memory");
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) g->mu[j] += f->x[(size_t)i * d + j] / n;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) {
            double e = f->x[(size_t)i * d + j] - g->mu[j];
            g->sd[j] += e * e / (n - 1);
        }
    for (int j = 0; j < d; j++) g->sd[j] = g->sd[j] > 0 ? sqrt(g->sd[j]) : 1.0;
    double *C = g->L, *z = g->tmp;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < d; j++) z[j] = (f->x[(size_t)i * d + j] - g->mu[j]) / g->sd[j];
        for (int a = 0; a < d; a++)
            for (int b = 0; b <= a; b++) C[(size_t)a * d + b] += z[a] * z[b] / (n - 1);
    }
    double tr = 0;
    for (int a = 0; a < d; a++) tr += C[(size_t)a * d + a];
    for (int a = 0; a < d; a++) C[(size_t)a * d + a] += reg * tr / d;
    /* in-place Cholesky of the lower triangle */
    for (int j = 0; j < d; j++) {
        double s = C[(size_t)j * d + j];
        for (int k = 0; k < j; k++) s -= C[(size_t)j * d + k] * C[(size_t)j * d + k];
        if (!(s > 0)) die("covariance not positive definite (raise --reg)");
        double ljj = sqrt(s);
        C[(size_t)j * d + j] = ljj;
        for (int i = j + 1; i < d; i++) {
            double t = C[(size_t)i * d + j];
            for (int k = 0; k < j; k++) t -= C[(size_t)i * d + k] * C[(size_t)j * d + k];
            C[(size_t)i * d + j] = t / ljj;
        }
    }
}

static double gauss_score(const gauss *g, const double *x)
{
    int d = g->d;
    double *y = g->tmp, q = 0;
    for (int i = 0; i < d; i++) {
        double s = (x[i] - g->mu[i]) / g->sd[i];
        for (int k = 0; k < i; k++) s -= g->L[(size_t)i * d + k] * y[k];
        y[i] = s / g->L[(size_t)i * d + i];
        q += y[i] * y[i];
    }
    return sqrt(q);
}

static void gauss_free(gauss *g)
{
    free(g->mu), free(g->sd), free(g->L), free(g->tmp);
    memset(g, 0, sizeof *g);
}

/* Scores of every row of f appended to sc / lab (label 0 normal, 1 anomalous). */
typedef struct {
    int n, cap;
    float *s;
    uint8_t *lab;
} scores;

static void scores_add(scores *v, const gauss *g, const fset *f, uint8_t label)
{
    for (int i = 0; i < f->n; i++) {
        if (v->n == v->cap) {
            v->cap = v->cap ? 2 * v->cap : 256;
            float *s = realloc(v->s, sizeof *s * v->cap);
            uint8_t *l = realloc(v->lab, (size_t)v->cap);
            if (!s || !l) die("out of memory");
            v->s = s, v->lab = l;
        }
        v->s[v->n] = (float)gauss_score(g, f->x + (size_t)i * f->d);
        v->lab[v->n++] = label;
    }
}

static double above(const scores *v, uint8_t label, double thr) /* fraction of label's scores > thr */
{
    int n = 0, k = 0;
    for (int i = 0; i < v->n; i++)
        if (v->lab[i] == label) n++, k += v->s[i] > thr;
    return n ? (double)k / n : NAN;
}

static void load(aibox_signal *s, const char *path, double rate)
{
    aibox_error err = {0};
    check(aibox_signal_load(s, path, &(aibox_signal_opts){.channel = 0}, &err), &err, path);
    if (s->channels != 1 || s->rate != rate) die("%s: %d channels at %g Hz, expected mono at %g Hz", path, s->channels, s->rate, rate);
}

/* Sorted *.wav names in dir. */
static char **list_wavs(const char *dir, int *n)
{
    DIR *d = opendir(dir);
    *n = 0;
    if (!d) die("cannot open %s", dir);
    char **v = xmalloc(sizeof *v * 64);
    struct dirent *e;
    while ((e = readdir(d)))
        if (ends_with(e->d_name, ".wav") && *n < 64) v[(*n)++] = strdup(e->d_name);
    closedir(d);
    qsort(v, (size_t)*n, sizeof *v, cmp_str);
    return v;
}

typedef struct {
    const char *data;
    double cwru_win, mimii_win, reg;
    int cwru_mels, mimii_mels, json;
    int feat, cmn, own; /* own: the MIMII fit also takes the first half of the scored unit's normal clip */
} options;

/* ------------------------------------------------------------------ CWRU */
static const char *const FAULTS[3] = {"inner_race", "ball", "outer_race"};

typedef struct {
    double auroc[4], det[4]; /* per fault type, then all */
    double far, thr;
} cwru_result;

static void cwru(const options *o, cwru_result *res)
{
    char path[2048];
    const double rate = 48000;
    feat_cfg c = {o->cwru_win, 1024, 512, o->cwru_mels, 24000, o->feat, o->cmn};
    aibox_spectral *sp = make_spectral(&c, rate);
    int d = feat_dim(&c);
    long win = lround(c.win_s * rate);

    snprintf(path, sizeof path, "%s/vibration-cwru/48k/normal/normal_0hp_X097_DE_48k.wav", o->data);
    aibox_signal nrm = {0};
    load(&nrm, path, rate);
    long n = nrm.frames, a48 = (long)(0.48 * n), a60 = (long)(0.60 * n);
    fset fit, held, test;
    fset_init(&fit, d), fset_init(&held, d), fset_init(&test, d);
    windows(sp, &c, nrm.data, 0, a48, win, &fit);
    windows(sp, &c, nrm.data, a48, a60, win, &held);
    windows(sp, &c, nrm.data, a60, n, win, &test);
    gauss g;
    gauss_fit(&g, &fit, o->reg);
    double thr = 0;
    for (int i = 0; i < held.n; i++) {
        double s = gauss_score(&g, held.x + (size_t)i * d);
        if (s > thr) thr = s;
    }
    say("CWRU 48 kHz 0 hp: normal %ld samples (%.2f s); fit 0-48 %% = %d windows, threshold slice 48-60 %% = %d "
        "windows (max score %.3f), test 60-100 %% = %d normal windows; %.3f s windows (%ld samples), hop %ld; "
        "n_fft %d hop %d, %d Slaney mels 0-%.0f Hz (dB, log-mel %s over frames%s) + %d time statistics = %d "
        "features; reg %g x trace/d\n",
        n, n / rate, fit.n, held.n, thr, test.n, c.win_s, win, win / 2, c.n_fft, c.hop, c.n_mels, c.fmax,
        FEAT_NAMES[c.feat], c.cmn ? ", per-call mean removed" : "", N_STATS, d, o->reg);

    scores all = {0};
    scores_add(&all, &g, &test, 0);
    int n_norm = all.n;
    scores per[3] = {{0}};
    for (int f = 0; f < 3; f++) scores_add(&per[f], &g, &test, 0);
    for (int f = 0; f < 3; f++) {
        char dir[1536];
        snprintf(dir, sizeof dir, "%s/vibration-cwru/48k/%s", o->data, FAULTS[f]);
        int nw;
        char **names = list_wavs(dir, &nw);
        for (int k = 0; k < nw; k++) {
            snprintf(path, sizeof path, "%s/%s", dir, names[k]);
            aibox_signal s = {0};
            load(&s, path, rate);
            fset fw;
            fset_init(&fw, d);
            windows(sp, &c, s.data, 0, s.frames, win, &fw);
            scores one = {0};
            scores_add(&one, &g, &test, 0);
            scores_add(&one, &g, &fw, 1);
            scores_add(&per[f], &g, &fw, 1);
            scores_add(&all, &g, &fw, 1);
            double au = aibox_metric_auroc(one.s, one.lab, (size_t)one.n), det = above(&one, 1, thr);
            printf("{\"bench\":\"signal_outlier\",\"figure\":\"cwru48k_recording\",\"fault\":\"%s\",\"file\":\"%s\","
                   "\"n_normal\":%d,\"n_fault\":%d,\"auroc\":%.4f,\"detection\":%.4f}\n",
                   FAULTS[f], names[k], n_norm, fw.n, au, det);
            say("  %-11s %-36s %4d windows  AUROC %.4f  detected %.1f %%\n", FAULTS[f], names[k], fw.n, au, 100 * det);
            free(one.s), free(one.lab);
            fset_free(&fw);
            aibox_signal_free(&s);
        }
        free_names(names, nw);
        res->auroc[f] = aibox_metric_auroc(per[f].s, per[f].lab, (size_t)per[f].n);
        res->det[f] = above(&per[f], 1, thr);
        printf("{\"bench\":\"signal_outlier\",\"figure\":\"cwru48k_fault\",\"fault\":\"%s\",\"n_normal\":%d,"
               "\"n_fault\":%d,\"auroc\":%.4f,\"detection\":%.4f,\"threshold\":%.4f}\n",
               FAULTS[f], n_norm, per[f].n - n_norm, res->auroc[f], res->det[f], thr);
        free(per[f].s), free(per[f].lab);
    }
    res->auroc[3] = aibox_metric_auroc(all.s, all.lab, (size_t)all.n);
    res->det[3] = above(&all, 1, thr);
    res->far = above(&all, 0, thr);
    res->thr = thr;
    printf("{\"bench\":\"signal_outlier\",\"figure\":\"cwru48k\",\"fault\":\"all\",\"fit_windows\":%d,"
           "\"threshold_windows\":%d,\"n_normal\":%d,\"n_fault\":%d,\"auroc\":%.4f,\"false_alarm\":%.4f,"
           "\"detection\":%.4f,\"threshold\":%.4f,\"window_s\":%g,\"n_mels\":%d,\"reg\":%g,\"feat\":\"%s\","
           "\"cmn\":%d}\n",
           fit.n, held.n, n_norm, all.n - n_norm, res->auroc[3], res->far, res->det[3], thr, c.win_s, c.n_mels,
           o->reg, FEAT_NAMES[c.feat], c.cmn);
    free(all.s), free(all.lab);
    gauss_free(&g);
    fset_free(&fit), fset_free(&held), fset_free(&test);
    aibox_signal_free(&nrm);
    aibox_spectral_free(&sp);
}

/* ------------------------------------------------------------------ MIMII */
static const char *const MACHINES[4] = {"fan", "pump", "slider", "valve"};
static const char *const IDS[4] = {"00", "02", "04", "06"};
/* DCASE 2020 Task 2 auto-encoder baseline, development set, AUC averaged over
 * the IDs (baseline README), in %. */
static const double DCASE_AUC[4] = {65.83, 72.89, 84.76, 66.28};

static void mimii(const options *o, double auroc[4][4], double mean[4])
{
    const double rate = 16000;
    feat_cfg c = {o->mimii_win, 1024, 512, o->mimii_mels, 8000, o->feat, o->cmn};
    aibox_spectral *sp = make_spectral(&c, rate);
    int d = feat_dim(&c);
    long win = lround(c.win_s * rate);
    say("MIMII 16 kHz: %.3f s windows (%ld samples), hop %ld; n_fft %d hop %d, %d Slaney mels 0-%.0f Hz (dB, log-mel "
        "%s over frames%s) + %d time statistics = %d features; reg %g x trace/d; %s\n",
        c.win_s, win, win / 2, c.n_fft, c.hop, c.n_mels, c.fmax, FEAT_NAMES[c.feat],
        c.cmn ? ", per-recording mean removed" : "", N_STATS, d, o->reg,
        o->own ? "fit on 3 units' normal clips + the first half of the 4th unit's normal clip, score the 4th unit's "
                 "second half (normal) and abnormal clip (NOT the issue's protocol: the scored unit is seen)"
               : "fit on 3 units' normal clips, score the 4th");
    for (int m = 0; m < 4; m++) {
        fset f[2][4], own[2][4]; /* [normal, abnormal][id]; own: normal clip's [first, second] half (--mimii-own) */
        for (int cond = 0; cond < 2; cond++)
            for (int u = 0; u < 4; u++) {
                char path[2048];
                snprintf(path, sizeof path, "%s/sound-mimii/%s/%s/id_%s_00000000_ch0.wav", o->data, MACHINES[m],
                         cond ? "abnormal" : "normal", IDS[u]);
                aibox_signal s = {0};
                load(&s, path, rate);
                fset_init(&f[cond][u], d);
                windows(sp, &c, s.data, 0, s.frames, win, &f[cond][u]);
                if (o->own && !cond) {
                    fset_init(&own[0][u], d), fset_init(&own[1][u], d);
                    windows(sp, &c, s.data, 0, s.frames / 2, win, &own[0][u]);
                    windows(sp, &c, s.data, s.frames / 2, s.frames, win, &own[1][u]);
                }
                aibox_signal_free(&s);
            }
        mean[m] = 0;
        for (int u = 0; u < 4; u++) {
            fset fit;
            fset_init(&fit, d);
            for (int v = 0; v < 4; v++)
                if (v != u)
                    for (int i = 0; i < f[0][v].n; i++)
                        memcpy(fset_add(&fit), f[0][v].x + (size_t)i * d, sizeof(double) * d);
            if (o->own)
                for (int i = 0; i < own[0][u].n; i++)
                    memcpy(fset_add(&fit), own[0][u].x + (size_t)i * d, sizeof(double) * d);
            gauss g;
            gauss_fit(&g, &fit, o->reg);
            scores sc = {0};
            const fset *nrm = o->own ? &own[1][u] : &f[0][u];
            scores_add(&sc, &g, nrm, 0);
            scores_add(&sc, &g, &f[1][u], 1);
            auroc[m][u] = aibox_metric_auroc(sc.s, sc.lab, (size_t)sc.n);
            mean[m] += auroc[m][u] / 4;
            printf("{\"bench\":\"signal_outlier\",\"figure\":\"mimii_unit\",\"machine\":\"%s\",\"id\":\"%s\","
                   "\"fit_windows\":%d,\"n_normal\":%d,\"n_abnormal\":%d,\"auroc\":%.4f}\n",
                   MACHINES[m], IDS[u], fit.n, nrm->n, f[1][u].n, auroc[m][u]);
            free(sc.s), free(sc.lab);
            gauss_free(&g);
            fset_free(&fit);
        }
        printf("{\"bench\":\"signal_outlier\",\"figure\":\"mimii_machine\",\"machine\":\"%s\",\"auroc_mean\":%.4f,"
               "\"dcase2020_baseline_auc_dev\":%.4f,\"window_s\":%g,\"n_mels\":%d,\"reg\":%g,\"feat\":\"%s\","
               "\"cmn\":%d,\"fit\":\"%s\"}\n",
               MACHINES[m], mean[m], DCASE_AUC[m] / 100, c.win_s, c.n_mels, o->reg, FEAT_NAMES[c.feat], c.cmn,
               o->own ? "others+own_half" : "others");
        for (int cond = 0; cond < 2; cond++)
            for (int u = 0; u < 4; u++) {
                fset_free(&f[cond][u]);
                if (o->own) fset_free(&own[cond][u]);
            }
    }
    aibox_spectral_free(&sp);
}

static void usage(void)
{
    fprintf(stderr, "usage: signal_outlier [--data DIR] [--cwru-win S] [--mimii-win S] [--cwru-mels N]\n"
                    "                      [--mimii-mels N] [--reg R] [--feat mean|meanstd|std] [--cmn]\n"
                    "                      [--mimii-own] [--json]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static char defdata[1024];
    const char *root = getenv("AIBOX_DATA");
    snprintf(defdata, sizeof defdata, "%s/sensors", root && *root ? root : "../shared/data");
    options o = {defdata, 0.25, 1.0, 1e-3, 32, 64, 0, FEAT_MEAN, 0, 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) o.json = 1;
        else if (!strcmp(a, "--cmn")) o.cmn = 1;
        else if (!strcmp(a, "--mimii-own")) o.own = 1;
        else if (!v) usage();
        else if (!strcmp(a, "--data")) o.data = v, i++;
        else if (!strcmp(a, "--cwru-win")) o.cwru_win = atof(v), i++;
        else if (!strcmp(a, "--mimii-win")) o.mimii_win = atof(v), i++;
        else if (!strcmp(a, "--cwru-mels")) o.cwru_mels = atoi(v), i++;
        else if (!strcmp(a, "--mimii-mels")) o.mimii_mels = atoi(v), i++;
        else if (!strcmp(a, "--reg")) o.reg = atof(v), i++;
        else if (!strcmp(a, "--feat")) {
            int k = 0;
            while (k < 3 && strcmp(v, FEAT_NAMES[k])) k++;
            if (k == 3) usage();
            o.feat = k, i++;
        } else usage();
    }
    if (!(o.cwru_win > 0.03) || !(o.mimii_win > 0.07) || o.cwru_mels < 1 || o.mimii_mels < 1 || !(o.reg > 0))
        usage();
    bench_human = o.json ? stderr : stdout;
    say("signal_outlier: data %s, libaibox %s, load %s\n", o.data, aibox_version(), loadavg());

    double t0 = now_ms();
    cwru_result cr;
    cwru(&o, &cr);
    double t1 = now_ms();
    double au[4][4], mean[4];
    mimii(&o, au, mean);
    double t2 = now_ms();

    say("\n| figure | AUROC | other |\n|---|---|---|\n");
    for (int f = 0; f < 3; f++)
        say("| CWRU 48k: normal (last 40 %%) vs %s | %.4f | detected %.1f %% |\n", FAULTS[f], cr.auroc[f],
            100 * cr.det[f]);
    say("| CWRU 48k: normal (last 40 %%) vs all faults | %.4f | false alarms %.1f %%, detected %.1f %% "
        "(threshold %.3f) |\n",
        cr.auroc[3], 100 * cr.far, 100 * cr.det[3], cr.thr);
    for (int m = 0; m < 4; m++)
        say("| MIMII %s (ID 00/02/04/06: %.3f %.3f %.3f %.3f) | %.4f | DCASE 2020 AE baseline %.2f %% (dev set) |\n",
            MACHINES[m], au[m][0], au[m][1], au[m][2], au[m][3], mean[m], DCASE_AUC[m]);
    say("\nDCASE 2020 Task 2 baseline AUCs: full development set (hundreds of clips per ID), not this 8-clip-per-"
        "machine subset: indicative only.\nrun time: CWRU %.0f ms, MIMII %.0f ms, total %.0f ms\n",
        t1 - t0, t2 - t1, t2 - t0);
    printf("{\"bench\":\"signal_outlier\",\"figure\":\"run_time\",\"cwru_ms\":%.0f,\"mimii_ms\":%.0f,\"total_ms\":%.0f}\n",
           t1 - t0, t2 - t1, t2 - t0);
    return 0;
}

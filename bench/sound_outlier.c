/* sound_outlier: the good-only detector of issue 12 on the real recordings in
 * $AIBOX_DATA/sensors (default ../shared/data/sensors), through the library
 * as a user gets it: aibox_sound_detector_fit (FEATURES windows: each log-mel
 * band's mean and standard deviation over the window, RMS, peak, crest,
 * kurtosis; a Gaussian, Mahalanobis scores; the threshold from held-out
 * normal windows only) and aibox_listener (the windows aibox-infer judges).
 *
 *   sound_outlier [--data DIR] [--window S] [--mels N] [--reg R]
 *                 [--threshold RULE] [--held-out F] [--json]
 *
 * (1) CWRU 48 kHz, 0 hp: fitted on the first 60 % of the normal recording
 *     (its last held-out share of windows sets the threshold), scored on the
 *     last 40 % (normal) against every window of the nine fault recordings:
 *     window AUROC (all, per fault type), false alarms (last-40 % windows at
 *     or above the stored threshold) and detected fault windows.
 * (2) MIMII (16 kHz, 0 dB): per machine type, for each unit in turn, fitted
 *     on the other three units' normal clips and scored on the unit's normal
 *     and abnormal clips: window AUROC per unit and the mean per type, the
 *     false alarms on the unit's normal clip and the detected abnormal
 *     windows at the stored threshold. Then the same with the fit also
 *     hearing the unit (the first half of its normal clip; the second half
 *     scored), as DCASE 2020's training data holds every unit's normal sound
 *     — with one clip per unit and condition this also rewards telling
 *     recordings apart, so it flatters.
 * Options change the library's defaults (window about 0.5 s, 64 mels, reg
 * 0.01, threshold max, held-out 0.2). Human lines on stdout, or stderr with
 * --json (then one JSON line per figure on stdout). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aibox.h"
#define BENCH_NAME "sound_outlier"
#include "bench.h"

typedef struct {
    double window_s, reg, held_out;
    int mels;
    const char *threshold;
} settings;

typedef struct { /* scores and NG flags of windows */
    long n, cap;
    float *score;
    uint8_t *ng;
} scores;

static aibox_status keep(void *user, const aibox_sound_result *r, const double *probs, aibox_error *err)
{
    (void)probs, (void)err;
    scores *s = user;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 256;
        s->score = realloc(s->score, sizeof *s->score * (size_t)s->cap);
        s->ng = realloc(s->ng, (size_t)s->cap);
        if (!s->score || !s->ng) die("out of memory");
    }
    s->score[s->n] = (float)r->score, s->ng[s->n] = (uint8_t)r->ng;
    s->n++;
    return AIBOX_OK;
}

static void load(aibox_signal *s, const char *dir, const char *name)
{
    char *p = join_path(dir, name);
    aibox_error e = {0};
    aibox_signal_opts so = {.channel = AIBOX_CHANNEL_MIX};
    check(aibox_signal_load(s, p, &so, &e), &e, p);
    free(p);
}

/* Every window of x into s (one listener run, as aibox-infer on a recording). */
static void score(const aibox_model *m, const aibox_signal *x, scores *s)
{
    aibox_error e = {0};
    aibox_listener *l = NULL;
    check(aibox_listener_create(&l, m, x->rate, 1, &e), &e, "listener");
    check(aibox_listener_push(l, x->data, x->frames, keep, s, &e), &e, "push");
    check(aibox_listener_finish(l, keep, s, NULL, &e), &e, "finish");
    aibox_listener_free(&l);
}

static aibox_model *fit(const aibox_signal *recs, int n, double rate, const settings *st, aibox_threshold_stats *ts,
                        aibox_sound_opts *used)
{
    aibox_sound_fit_opts o;
    aibox_sound_fit_opts_default(&o, rate);
    aibox_error e = {0};
    if (st->window_s > 0) o.sound.window = (long)(st->window_s * rate + 0.5), o.sound.hop = o.sound.window / 2;
    if (st->mels > 0) o.sound.spec.n_mels = st->mels;
    if (st->reg >= 0) o.reg = st->reg;
    if (st->held_out > 0) o.held_out = st->held_out;
    if (st->threshold) check(aibox_threshold_parse(st->threshold, &o.threshold, &e), &e, "--threshold");
    o.threads = 1;
    aibox_model *m = NULL;
    check(aibox_sound_detector_fit(&m, recs, n, &o, ts, &e), &e, "fit");
    *used = o.sound;
    return m;
}

/* AUROC of normal (label 0) against anomalous windows. */
static double auroc_of(const scores *nrm, const scores *bad, long from, long to)
{
    long n = nrm->n + (to - from);
    float *s = xalloc_floats((size_t)n);
    uint8_t *lab = xmalloc((size_t)n);
    for (long i = 0; i < nrm->n; i++) s[i] = nrm->score[i], lab[i] = 0;
    for (long i = from; i < to; i++) s[nrm->n + i - from] = bad->score[i], lab[nrm->n + i - from] = 1;
    double a = aibox_metric_auroc(s, lab, (size_t)n);
    free(s), free(lab);
    return a;
}

static long count_ng(const scores *s, long from, long to)
{
    long k = 0;
    for (long i = from; i < to; i++) k += s->ng[i];
    return k;
}

static void cwru(const char *data, const settings *st, int json)
{
    char *dir = join_path(data, "sensors/vibration-cwru/48k");
    aibox_signal nrm = {0};
    load(&nrm, dir, "normal/normal_0hp_X097_DE_48k.wav");
    const long a60 = (long)(0.6 * (double)nrm.frames);
    aibox_signal fitpart = nrm, rest = nrm;
    fitpart.frames = a60;
    rest.data = nrm.data + a60, rest.frames = nrm.frames - a60;
    aibox_threshold_stats ts;
    aibox_sound_opts so;
    aibox_model *m = fit(&fitpart, 1, nrm.rate, st, &ts, &so);
    scores sn = {0}, sb = {0};
    score(m, &rest, &sn);
    static const char *const kinds[3] = {"ball", "inner_race", "outer_race"};
    static const char *const files[3][3] = {
        {"ball/ball_0.007in_0hp_X122_DE_48k.wav", "ball/ball_0.014in_0hp_X189_DE_48k.wav",
         "ball/ball_0.021in_0hp_X226_DE_48k.wav"},
        {"inner_race/inner_race_0.007in_0hp_X109_DE_48k.wav", "inner_race/inner_race_0.014in_0hp_X173_DE_48k.wav",
         "inner_race/inner_race_0.021in_0hp_X213_DE_48k.wav"},
        {"outer_race/outer_race_0.007in_0hp_DE_48k.wav", "outer_race/outer_race_0.014in_0hp_DE_48k.wav",
         "outer_race/outer_race_0.021in_0hp_DE_48k.wav"}};
    long bounds[4] = {0};
    for (int f = 0; f < 3; f++) {
        for (int k = 0; k < 3; k++) {
            aibox_signal r = {0};
            load(&r, dir, files[f][k]);
            score(m, &r, &sb);
            aibox_signal_free(&r);
        }
        bounds[f + 1] = sb.n;
    }
    double thr;
    aibox_model_get_meta_float(m, AIBOX_META_ANOMALY_THRESHOLD, &thr);
    const long fa = count_ng(&sn, 0, sn.n), det = count_ng(&sb, 0, sb.n);
    say("CWRU 48 kHz (window %ld = %.3f s, %d mels, %d features): fitted on %.2f s (%d held-out windows, threshold "
        "%.4g), scored %ld normal windows (last 40 %%) and %ld fault windows\n",
        so.window, so.window / nrm.rate, so.spec.n_mels, 2 * so.spec.n_mels + 4, a60 / nrm.rate, ts.good, thr, sn.n,
        sb.n);
    say("| fault | windows | AUROC | detected at the threshold |\n|---|---|---|---|\n");
    for (int f = 0; f < 3; f++) {
        const double a = auroc_of(&sn, &sb, bounds[f], bounds[f + 1]);
        const long d = count_ng(&sb, bounds[f], bounds[f + 1]);
        say("| %s | %ld | %.4f | %.1f %% |\n", kinds[f], bounds[f + 1] - bounds[f], a,
            100.0 * d / (double)(bounds[f + 1] - bounds[f]));
        if (json)
            printf("{\"bench\":\"sound_outlier\",\"data\":\"cwru48k\",\"fault\":\"%s\",\"windows\":%ld,\"auroc\":%.6f,"
                   "\"detected\":%.6f}\n",
                   kinds[f], bounds[f + 1] - bounds[f], a, (double)d / (double)(bounds[f + 1] - bounds[f]));
    }
    const double all = auroc_of(&sn, &sb, 0, sb.n);
    say("| all | %ld | %.4f | %.1f %% |\nfalse alarms at the stored threshold: %ld of %ld normal windows (%.1f %%)\n\n",
        sb.n, all, 100.0 * det / (double)sb.n, fa, sn.n, 100.0 * fa / (double)sn.n);
    if (json)
        printf("{\"bench\":\"sound_outlier\",\"data\":\"cwru48k\",\"fault\":\"all\",\"auroc\":%.6f,\"false_alarms\":%ld,"
               "\"normal_windows\":%ld,\"false_alarm_rate\":%.6f,\"detected\":%.6f,\"window\":%ld,\"mels\":%d,"
               "\"held_out_windows\":%d,\"threshold\":%.6g}\n",
               all, fa, sn.n, (double)fa / (double)sn.n, (double)det / (double)sb.n, so.window, so.spec.n_mels, ts.good,
               thr);
    free(sn.score), free(sn.ng), free(sb.score), free(sb.ng);
    aibox_model_free(&m);
    aibox_signal_free(&nrm);
    free(dir);
}

/* own: the DCASE way round — the fit also sees the scored unit's normal
 * sound (the first half of its clip; the second half is scored). */
static void mimii(const char *data, const settings *st, int json, int own)
{
    static const char *const types[4] = {"fan", "pump", "slider", "valve"};
    static const char *const ids[4] = {"00", "02", "04", "06"};
    /* DCASE 2020 Task 2 auto-encoder baseline, development set, AUC averaged
     * over IDs 00/02/04/06 (github.com/y-kawagu/dcase2020_task2_baseline README) */
    static const double dcase[4] = {65.16, 72.59, 84.99, 66.46};
    char *dir = join_path(data, "sensors/sound-mimii");
    if (own)
        say("MIMII, the fit also hears the unit: fitted on the other three units' normal clips and the first half of "
            "the unit's own, scored on the second half of its normal clip and its abnormal clip\n");
    else
        say("MIMII: fitted on three units' normal clips, scored on the fourth unit's normal and abnormal clip\n");
    say("| machine | AUROC per unit (00 / 02 / 04 / 06) | mean | false alarms | detected | DCASE 2020 AE |\n"
        "|---|---|---|---|---|---|\n");
    double grand = 0;
    for (int t = 0; t < 4; t++) {
        aibox_signal nrm[4] = {{0}}, ab[4] = {{0}};
        for (int u = 0; u < 4; u++) {
            char name[128];
            snprintf(name, sizeof name, "%s/normal/id_%s_00000000_ch0.wav", types[t], ids[u]);
            load(&nrm[u], dir, name);
            snprintf(name, sizeof name, "%s/abnormal/id_%s_00000000_ch0.wav", types[t], ids[u]);
            load(&ab[u], dir, name);
        }
        double a[4], mean = 0;
        long fa = 0, nn = 0, det = 0, nb = 0;
        for (int u = 0; u < 4; u++) {
            aibox_signal others[4], scored = nrm[u];
            for (int k = 0, j = 0; k < 4; k++)
                if (k != u) others[j++] = nrm[k];
            if (own) {
                others[3] = nrm[u], others[3].frames = nrm[u].frames / 2;
                scored.data += others[3].frames, scored.frames -= others[3].frames;
            }
            aibox_threshold_stats ts;
            aibox_sound_opts so;
            aibox_model *m = fit(others, own ? 4 : 3, nrm[u].rate, st, &ts, &so);
            scores sn = {0}, sb = {0};
            score(m, &scored, &sn);
            score(m, &ab[u], &sb);
            a[u] = auroc_of(&sn, &sb, 0, sb.n);
            mean += a[u] / 4;
            fa += count_ng(&sn, 0, sn.n), nn += sn.n;
            det += count_ng(&sb, 0, sb.n), nb += sb.n;
            if (json)
                printf("{\"bench\":\"sound_outlier\",\"data\":\"mimii\",\"own\":%d,\"machine\":\"%s\",\"unit\":\"%s\","
                       "\"auroc\":%.6f,\"false_alarm_rate\":%.6f,\"detected\":%.6f}\n",
                       own, types[t], ids[u], a[u], (double)count_ng(&sn, 0, sn.n) / (double)sn.n,
                       (double)count_ng(&sb, 0, sb.n) / (double)sb.n);
            free(sn.score), free(sn.ng), free(sb.score), free(sb.ng);
            aibox_model_free(&m);
        }
        grand += mean / 4;
        say("| %s | %.3f / %.3f / %.3f / %.3f | %.3f | %.1f %% | %.1f %% | %.2f %% |\n", types[t], a[0], a[1], a[2], a[3],
            mean, 100.0 * fa / (double)nn, 100.0 * det / (double)nb, dcase[t]);
        if (json)
            printf("{\"bench\":\"sound_outlier\",\"data\":\"mimii\",\"own\":%d,\"machine\":\"%s\",\"auroc_mean\":%.6f,"
                   "\"dcase2020_baseline\":%.4f}\n",
                   own, types[t], mean, dcase[t] / 100);
        for (int u = 0; u < 4; u++) aibox_signal_free(&nrm[u]), aibox_signal_free(&ab[u]);
    }
    say("mean over the machine types: %.3f (DCASE 2020 AE baseline: 0.723)\n\n", grand);
    free(dir);
}

int main(int argc, char **argv)
{
    const char *data = getenv("AIBOX_DATA") ? getenv("AIBOX_DATA") : "../shared/data";
    settings st = {.window_s = 0, .reg = -1, .held_out = 0, .mels = 0, .threshold = NULL};
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc) data = argv[++i];
        else if (!strcmp(argv[i], "--window") && i + 1 < argc) st.window_s = atof(argv[++i]);
        else if (!strcmp(argv[i], "--mels") && i + 1 < argc) st.mels = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reg") && i + 1 < argc) st.reg = atof(argv[++i]);
        else if (!strcmp(argv[i], "--held-out") && i + 1 < argc) st.held_out = atof(argv[++i]);
        else if (!strcmp(argv[i], "--threshold") && i + 1 < argc) st.threshold = argv[++i];
        else if (!strcmp(argv[i], "--json")) json = 1;
        else
            die("usage: sound_outlier [--data DIR] [--window S] [--mels N] [--reg R] [--threshold RULE] "
                "[--held-out F] [--json]");
    }
    bench_human = json ? stderr : stdout;
    cwru(data, &st, json);
    mimii(data, &st, json, 0);
    mimii(data, &st, json, 1);
    return 0;
}

/* Anomaly thresholds from good images only (or with defects for the
 * F1-optimal ones), Anomalib's min-max normalisation, and the metadata keys
 * that carry them in a model (see aibox/anomaly.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

/* Keys written since 0.2.0; models of 0.1.0 carried the same values under
 * "aibox.padim.*", which are still read. */
static const char *const KEYS[][2] = {
    {AIBOX_META_ANOMALY_THRESHOLD, "aibox.padim.threshold"},
    {AIBOX_META_ANOMALY_PIXEL_THRESHOLD, "aibox.padim.pixel_threshold"},
    {AIBOX_META_ANOMALY_SCORE_MIN, "aibox.padim.score_min"},
    {AIBOX_META_ANOMALY_SCORE_MAX, "aibox.padim.score_max"},
    {AIBOX_META_ANOMALY_THRESHOLD_F1, "aibox.padim.threshold_f1"},
    {AIBOX_META_ANOMALY_THRESHOLD_RULE, "aibox.padim.threshold_rule"},
};

aibox_status aibox_threshold_parse(const char *text, aibox_threshold_spec *spec, aibox_error *err)
{
    if (!text || !spec) return aibox_fail(err, AIBOX_E_INVALID, "threshold: NULL argument");
    char *end;
    memset(spec, 0, sizeof *spec);
    if (!strcmp(text, "max")) spec->rule = AIBOX_THRESHOLD_MAX;
    else if (!strcmp(text, "p99")) spec->rule = AIBOX_THRESHOLD_P99;
    else if (!strcmp(text, "f1")) spec->rule = AIBOX_THRESHOLD_F1;
    else if (!strncmp(text, "sigma:", 6)) {
        spec->rule = AIBOX_THRESHOLD_SIGMA;
        spec->value = strtod(text + 6, &end);
        if (!text[6] || *end || !(spec->value >= 0 && spec->value <= 100))
            return aibox_fail(err, AIBOX_E_INVALID, "threshold: sigma:K needs K from 0 to 100 (got '%s')", text);
    } else {
        spec->rule = AIBOX_THRESHOLD_FIXED;
        spec->value = strtod(text, &end);
        if (!*text || *end || !(spec->value >= 0 && spec->value <= 1e30))
            return aibox_fail(err, AIBOX_E_INVALID,
                              "threshold: '%s' is not a rule (max, p99, sigma:K, f1) nor a number from 0 to 1e30", text);
    }
    return AIBOX_OK;
}

void aibox_threshold_format(const aibox_threshold_spec *spec, char *buf, size_t size)
{
    if (!buf || !size) return;
    if (!spec) return (void)snprintf(buf, size, "?");
    switch (spec->rule) {
    case AIBOX_THRESHOLD_MAX: snprintf(buf, size, "max"); break;
    case AIBOX_THRESHOLD_P99: snprintf(buf, size, "p99"); break;
    case AIBOX_THRESHOLD_F1: snprintf(buf, size, "f1"); break;
    case AIBOX_THRESHOLD_SIGMA: snprintf(buf, size, "sigma:%.17g", spec->value); break;
    default: snprintf(buf, size, "%.17g", spec->value); break;
    }
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* q-quantile (0..1) of sorted values, linear interpolation. */
static double quantile(const float *v, int n, double q)
{
    double pos = q * (n - 1);
    int i = (int)floor(pos);
    if (i >= n - 1) return v[n - 1];
    return v[i] + (pos - i) * (v[i + 1] - v[i]);
}

aibox_status aibox_thresholds_compute(const aibox_threshold_spec *spec, const float *good, int n_good, const float *bad,
                                      int n_bad, const float *maps, const uint8_t *masks, size_t map_len,
                                      aibox_thresholds *t, aibox_threshold_stats *st, aibox_error *err)
{
    if (!spec || !t || n_good < 0 || n_bad < 0 || (n_good && !good) || (n_bad && !bad))
        return aibox_fail(err, AIBOX_E_INVALID, "thresholds: bad argument");
    aibox_threshold_stats s0;
    if (!st) st = &s0;
    memset(t, 0, sizeof *t);
    t->spec = *spec;
    st->good = n_good, st->bad = n_bad;
    st->good_min = st->good_mean = st->good_sd = st->good_p99 = st->good_max = NAN;
    st->image_auroc = st->f1 = st->pixel_f1 = st->pixel_threshold_f1 = NAN;
    t->image_f1 = NAN;
    for (int i = 0; i < n_good; i++)
        if (!isfinite(good[i])) return aibox_fail(err, AIBOX_E_NONFINITE, "thresholds: good score %d is not finite", i);
    for (int i = 0; i < n_bad; i++)
        if (!isfinite(bad[i])) return aibox_fail(err, AIBOX_E_NONFINITE, "thresholds: defect score %d is not finite", i);
    double mean = 0, sd = 0, lo = INFINITY, hi = -INFINITY;
    /* comparisons, not fmin/fmax (the scores are finite): GCC 12's aarch64
     * vectoriser crashes on a double fmin/fmax reduction over floats */
    for (int i = 0; i < n_good; i++) {
        mean += good[i];
        if (good[i] < lo) lo = good[i];
        if (good[i] > hi) hi = good[i];
    }
    mean /= n_good > 0 ? n_good : 1;
    for (int i = 0; i < n_good; i++) sd += (good[i] - mean) * (good[i] - mean);
    sd = n_good > 1 ? sqrt(sd / (n_good - 1)) : 0;
    if (n_good > 0) {
        float *tmp = malloc(sizeof(float) * (size_t)n_good);
        if (!tmp) return aibox_fail(err, AIBOX_E_NOMEM, "thresholds: out of memory");
        memcpy(tmp, good, sizeof(float) * (size_t)n_good);
        qsort(tmp, (size_t)n_good, sizeof *tmp, cmp_float);
        st->good_min = lo, st->good_mean = mean, st->good_sd = sd;
        st->good_p99 = quantile(tmp, n_good, 0.99), st->good_max = tmp[n_good - 1];
        free(tmp);
    }
    for (int i = 0; i < n_bad; i++) {
        if (bad[i] < lo) lo = bad[i];
        if (bad[i] > hi) hi = bad[i];
    }
    if (n_bad > 0) { /* F1-optimal thresholds against the good scores */
        int na = n_good + n_bad;
        float *sc = malloc(sizeof(float) * (size_t)na);
        uint8_t *lb = malloc((size_t)na);
        if (!sc || !lb) {
            free(sc), free(lb);
            return aibox_fail(err, AIBOX_E_NOMEM, "thresholds: out of memory");
        }
        for (int i = 0; i < n_good; i++) sc[i] = good[i], lb[i] = 0;
        for (int i = 0; i < n_bad; i++) sc[n_good + i] = bad[i], lb[n_good + i] = 1;
        float th = 0;
        st->image_auroc = aibox_metric_auroc(sc, lb, (size_t)na);
        if (!aibox_metric_f1_best(sc, lb, (size_t)na, &th, &st->f1, NULL)) t->image_f1 = th;
        free(sc), free(lb);
        /* pixels: only when some mask has defect pixels */
        size_t np = maps && masks ? map_len * (size_t)na : 0, pos = 0;
        for (size_t i = 0; i < np; i++) pos += masks[i] != 0;
        if (pos && !aibox_metric_f1_best(maps, masks, np, &th, &st->pixel_f1, NULL)) st->pixel_threshold_f1 = th;
    }
    /* verdicts are score >= threshold (as F1's): "max" sits just above the largest good score */
    switch (spec->rule) {
    case AIBOX_THRESHOLD_MAX: t->image = n_good ? nextafterf((float)st->good_max, INFINITY) : NAN; break;
    case AIBOX_THRESHOLD_P99: t->image = st->good_p99; break;
    case AIBOX_THRESHOLD_SIGMA: t->image = n_good ? mean + spec->value * sd : NAN; break;
    case AIBOX_THRESHOLD_F1: t->image = t->image_f1; break;
    case AIBOX_THRESHOLD_FIXED: t->image = spec->value; break;
    default: return aibox_fail(err, AIBOX_E_INVALID, "thresholds: unknown rule %d", (int)spec->rule);
    }
    if (!isfinite(t->image)) {
        char rule[64];
        aibox_threshold_format(spec, rule, sizeof rule);
        return aibox_fail(err, AIBOX_E_INVALID,
                          "thresholds: the %s threshold could not be set (no usable held-out good or defect images)", rule);
    }
    t->pixel = isfinite(st->pixel_threshold_f1) ? st->pixel_threshold_f1 : t->image;
    if (!isfinite(lo)) lo = 0, hi = t->image;
    t->score_min = lo, t->score_max = hi;
    return AIBOX_OK;
}

aibox_status aibox_thresholds_to_model(const aibox_thresholds *t, aibox_model *m, aibox_error *err)
{
    if (!t || !m) return aibox_fail(err, AIBOX_E_INVALID, "thresholds: NULL argument");
    const double v[5] = {t->image, t->pixel, t->score_min, t->score_max, t->image_f1};
    for (int k = 0; k < 4; k++)
        if (!isfinite(v[k])) return aibox_fail(err, AIBOX_E_NONFINITE, "thresholds: %s is not finite", KEYS[k][0]);
    char rule[64];
    aibox_threshold_format(&t->spec, rule, sizeof rule);
    aibox_status s = AIBOX_OK;
    for (int k = 0; k < 5 && !s; k++)
        if (isfinite(v[k])) s = aibox_model_set_meta_float(m, KEYS[k][0], v[k], err);
    if (!s) s = aibox_model_set_meta_str(m, KEYS[5][0], rule, err);
    return s;
}

/* A float stored under the key or its 0.1.0 name; NaN when absent. */
static double read_key(const aibox_model *m, int k)
{
    double v;
    if (!aibox_model_get_meta_float(m, KEYS[k][0], &v) || !aibox_model_get_meta_float(m, KEYS[k][1], &v)) return v;
    return NAN;
}

aibox_status aibox_thresholds_from_model(aibox_thresholds *t, const aibox_model *m, aibox_error *err)
{
    if (!t || !m) return aibox_fail(err, AIBOX_E_INVALID, "thresholds: NULL argument");
    memset(t, 0, sizeof *t);
    double v[5];
    for (int k = 0; k < 5; k++) v[k] = read_key(m, k);
    if (aibox_model_meta_kind(m, KEYS[0][0]) == AIBOX_META_NONE && aibox_model_meta_kind(m, KEYS[0][1]) == AIBOX_META_NONE)
        return aibox_fail(err, AIBOX_E_NOTFOUND, "the anomaly model has no threshold (%s)", KEYS[0][0]);
    t->image = v[0];
    t->pixel = isnan(v[1]) && aibox_model_meta_kind(m, KEYS[1][0]) == AIBOX_META_NONE &&
                       aibox_model_meta_kind(m, KEYS[1][1]) == AIBOX_META_NONE
                   ? t->image
                   : v[1];
    t->score_min = aibox_model_meta_kind(m, KEYS[2][0]) || aibox_model_meta_kind(m, KEYS[2][1]) ? v[2] : 0;
    t->score_max = aibox_model_meta_kind(m, KEYS[3][0]) || aibox_model_meta_kind(m, KEYS[3][1]) ? v[3] : t->image;
    t->image_f1 = v[4];
    if (!isfinite(t->image) || !isfinite(t->pixel) || !isfinite(t->score_min) || !isfinite(t->score_max))
        return aibox_fail(err, AIBOX_E_FORMAT, "the anomaly model's thresholds or score range are not finite numbers");
    const char *rule = NULL;
    if (aibox_model_get_meta_str(m, KEYS[5][0], &rule) && aibox_model_get_meta_str(m, KEYS[5][1], &rule)) rule = NULL;
    if (!rule || aibox_threshold_parse(rule, &t->spec, NULL)) t->spec = (aibox_threshold_spec){AIBOX_THRESHOLD_FIXED, t->image};
    return AIBOX_OK;
}

double aibox_anomaly_normalise(double score, double threshold, double lo, double hi)
{
    double span = hi - lo > 0 ? hi - lo : (threshold > 0 ? threshold : 1);
    double v = (score - threshold) / span + 0.5;
    return v < 0 ? 0 : v > 1 ? 1 : v; /* NaN: the comparisons fail, NaN is returned */
}

/* Folder evaluation of a detector: image AUROC, pixel AUROC, AUPRO, F1 and
 * the confusion at the image threshold, per defect class. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "anomaly/anomaly.h"

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

void aibox_eval_result_free(aibox_eval_result *r)
{
    if (!r) return;
    for (int c = 0; c < r->n_classes; c++) free(r->classes[c].name);
    free(r->classes);
    memset(r, 0, sizeof *r);
}

/* The defect class of an abnormal image: its first folder below dir ("" when none). */
static char *class_of(const char *dir, const char *path)
{
    const char *rest = path + strlen(dir);
    while (*rest == '/') rest++;
    const char *slash = strchr(rest, '/');
    return strndup(rest, slash ? (size_t)(slash - rest) : 0);
}

static int class_index(aibox_eval_result *r, const char *name)
{
    for (int c = 0; c < r->n_classes; c++)
        if (!strcmp(r->classes[c].name, name)) return c;
    aibox_eval_class *v = realloc(r->classes, sizeof *v * (size_t)(r->n_classes + 1));
    if (!v) return -1;
    r->classes = v;
    memset(&v[r->n_classes], 0, sizeof *v);
    if (!(v[r->n_classes].name = strdup(name))) return -1;
    return r->n_classes++;
}

/* The normal files the model was not fitted on (by content). */
static aibox_status unfitted(const aibox_model *m, const aibox_file_list *normal, char **keep, int *n_keep,
                             aibox_eval_result *r, aibox_error *err)
{
    int n_fit = 0;
    const int64_t *fit = NULL;
    r->fingerprints = aibox_model_get_meta_ints(m, AIBOX_META_ANOMALY_FIT_FINGERPRINTS, &n_fit, &fit) == AIBOX_OK;
    int64_t *sorted = r->fingerprints && n_fit > 0 ? malloc(sizeof *sorted * (size_t)n_fit) : NULL;
    if (r->fingerprints && n_fit > 0 && !sorted) return aibox_fail(err, AIBOX_E_NOMEM, "evaluate: out of memory");
    if (sorted) {
        memcpy(sorted, fit, sizeof *sorted * (size_t)n_fit);
        qsort(sorted, (size_t)n_fit, sizeof *sorted, cmp_i64);
    }
    *n_keep = 0;
    for (int i = 0; i < normal->n; i++) {
        uint64_t fp = 0;
        int used = sorted && !normal->note[i] && !aibox_file_fingerprint(normal->path[i], &fp, NULL) &&
                   bsearch(&(int64_t){(int64_t)fp}, sorted, (size_t)n_fit, sizeof *sorted, cmp_i64);
        if (used) r->excluded++;
        else keep[(*n_keep)++] = normal->path[i]; /* an unreadable file is reported when it is scored */
    }
    free(sorted);
    return AIBOX_OK;
}

aibox_status aibox_detector_evaluate(aibox_detector *d, const aibox_eval_opts *o, aibox_eval_result *r,
                                     aibox_error *err)
{
    if (!r) return aibox_fail(err, AIBOX_E_INVALID, "evaluate: NULL result");
    memset(r, 0, sizeof *r);
    if (!d || !o || !o->normal_dir || !o->abnormal_dir) return aibox_fail(err, AIBOX_E_INVALID, "evaluate: NULL argument");
    if (!d->has_thresholds) return aibox_fail(err, AIBOX_E_STATE, "evaluate: the model has no thresholds");
    aibox_list_opts lo = {.subfolders = AIBOX_SUBFOLDERS_RECURSE, .images_only = 1, .skip_masks = 1};
    aibox_file_list normal = {0}, abnormal = {0};
    aibox_status s = aibox_list_files(&normal, o->normal_dir, &lo, err);
    if (!s) s = aibox_list_files(&abnormal, o->abnormal_dir, &lo, err);
    int n_max = normal.n + abnormal.n, n_keep = 0, k = 0;
    size_t ml = d->map_len;
    char **keep = malloc(sizeof *keep * (size_t)(normal.n + 1));
    float *maps = malloc(sizeof(float) * ml * (size_t)(n_max + 1)), *scores = malloc(sizeof(float) * (size_t)(n_max + 1));
    uint8_t *masks = calloc(ml * (size_t)(n_max + 1), 1), *labels = calloc((size_t)n_max + 1, 1);
    int *cls = calloc((size_t)n_max + 1, sizeof *cls);
    if (!s && (!keep || !maps || !scores || !masks || !labels || !cls))
        s = aibox_fail(err, AIBOX_E_NOMEM, "evaluate: out of memory for %d maps of %dx%d", n_max, d->pp.width,
                       d->pp.height);
    if (!s) s = unfitted(aibox_detector_model(d), &normal, keep, &n_keep, r, err);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int n = n_keep + abnormal.n;
    for (int i = 0; !s && i < n; i++) {
        const char *path = i < n_keep ? keep[i] : abnormal.path[i - n_keep];
        aibox_error e = {0};
        aibox_image img = {0};
        aibox_status is = aibox_image_load(&img, path, o->max_pixels, &e);
        if (!is) is = aibox_detector_score(d, &img, scores + k, &e);
        aibox_image_free(&img);
        if (is) {
            if (is == AIBOX_E_NOMEM) s = aibox_fail(err, is, "%s", e.msg);
            else if (o->on_failure) o->on_failure(o->user, path, &e);
            r->failed++;
            continue;
        }
        const float *fm = aibox_detector_fixed_map(d, &e);
        if (!fm) {
            s = aibox_fail(err, e.code, "%s: %s", path, e.msg);
            break;
        }
        memcpy(maps + ml * k, fm, sizeof(float) * ml);
        /* normal images: only a mask beside them (the mask folder holds the defects') */
        aibox_error me = {0};
        if (aibox_load_mask(path, i < n_keep ? NULL : o->mask_dir, d->pp.width, d->pp.height, o->max_pixels,
                            masks + ml * k, &me)) {
            s = aibox_fail(err, me.code, "mask of %s", me.msg);
            break;
        }
        labels[k] = i >= n_keep;
        cls[k] = -1;
        if (labels[k]) {
            char *c = class_of(o->abnormal_dir, path);
            cls[k] = c ? class_index(r, c) : -1;
            free(c);
            if (cls[k] < 0) s = aibox_fail(err, AIBOX_E_NOMEM, "evaluate: out of memory");
        }
        k++;
        if (o->on_progress) o->on_progress(o->user, i + 1, n);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (!s) {
        const double thr = d->thr.image;
        r->seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        for (int i = 0; i < k; i++) r->normal += !labels[i], r->abnormal += labels[i];
        r->threshold = thr;
        r->image_auroc = aibox_metric_auroc(scores, labels, (size_t)k);
        r->pixel_auroc = aibox_metric_auroc(maps, masks, ml * (size_t)k);
        r->aupro = aibox_metric_aupro(maps, masks, k, d->pp.width, d->pp.height, o->fpr_limit > 0 ? o->fpr_limit : 0.3);
        r->f1 = aibox_metric_f1_at(scores, labels, (size_t)k, (float)thr);
        for (int i = 0; i < k; i++) {
            int pred = !(scores[i] < thr);
            r->tp += pred && labels[i], r->fp += pred && !labels[i], r->fn += !pred && labels[i], r->tn += !pred && !labels[i];
        }
        /* per defect class: its images against all normal ones */
        float *sc = malloc(sizeof(float) * (size_t)(k + 1));
        uint8_t *lb = malloc((size_t)k + 1);
        if (!sc || !lb) s = aibox_fail(err, AIBOX_E_NOMEM, "evaluate: out of memory");
        for (int c = 0; !s && c < r->n_classes; c++) {
            int kk = 0;
            for (int i = 0; i < k; i++)
                if (!labels[i] || cls[i] == c) {
                    sc[kk] = scores[i], lb[kk++] = labels[i];
                    if (labels[i]) r->classes[c].n++, r->classes[c].detected += !(scores[i] < thr);
                }
            r->classes[c].image_auroc = aibox_metric_auroc(sc, lb, (size_t)kk);
        }
        free(sc), free(lb);
    }
    free(keep), free(maps), free(scores), free(masks), free(labels), free(cls);
    aibox_file_list_free(&normal), aibox_file_list_free(&abnormal);
    if (s) aibox_eval_result_free(r);
    return s;
}

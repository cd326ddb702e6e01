/* aibox-infer on a PaDiM model: scores, verdicts, defect regions, heatmaps,
 * masks, and the evaluation mode. Included by aibox-infer.c after its
 * `infer` struct (which holds the fields used here). */
#ifndef AIBOX_INFER_PADIM_H
#define AIBOX_INFER_PADIM_H

#include "padim_cli.h"

#define PADIM_MAX_REGIONS 64

/* Writes an image into dir as <stem of file>.png (atomic). */
static int padim_write_png(infer *in, const char *dir, const char *file, const aibox_image *img)
{
    char path[4400];
    const char *leaf = cli_leaf(file);
    snprintf(path, sizeof path, "%s/%.*s.png", dir, (int)cli_stem_len(leaf), leaf);
    aibox_error err = {0};
    if (aibox_image_write_png(img, path, &err)) {
        emit_error(in, file, err.msg);
        return 0;
    }
    return 1;
}

/* One decoded image (of an accepted size) through a PaDiM model. */
static void padim_one(infer *in, const char *file, const aibox_image *img, double t0)
{
    aibox_error err = {0};
    double t1 = cli_now();
    float score = 0;
    if (aibox_preprocess(&in->pp, img, in->input, &err) ||
        aibox_padim_score(in->pctx, in->input, 1, NULL, in->map, &score, &err)) {
        emit_error(in, file, err.msg);
        return;
    }
    double t2 = cli_now();
    size_t bad = 0, map_n = (size_t)in->pp.width * in->pp.height;
    while (bad < map_n && isfinite(in->map[bad])) bad++;
    if (!isfinite(score) || bad < map_n) { /* never a verdict from non-finite numbers */
        char msg[4400];
        snprintf(msg, sizeof msg, "%s: the anomaly %s is not a finite number (%g)", file,
                 isfinite(score) ? "map" : "score", isfinite(score) ? in->map[bad] : score);
        emit_error(in, file, msg);
        return;
    }
    /* regions in the image's own pixels */
    size_t big_n = (size_t)img->width * img->height;
    float *big = malloc(sizeof(float) * big_n);
    aibox_region reg[PADIM_MAX_REGIONS];
    int n_reg = 0;
    if (!big || aibox_map_resize(in->map, in->pp.width, in->pp.height, big, img->width, img->height, &err) ||
        aibox_map_regions(big, img->width, img->height, (float)in->pix_thr, reg, PADIM_MAX_REGIONS, &n_reg, &err)) {
        emit_error(in, file, big ? err.msg : "out of memory");
        free(big);
        return;
    }
    if (in->mask_dir) {
        aibox_image mk = {0};
        int ok = !aibox_map_mask(&mk, big, img->width, img->height, (float)in->pix_thr, &err);
        if (!ok) emit_error(in, file, err.msg);
        else ok = padim_write_png(in, in->mask_dir, file, &mk);
        aibox_image_free(&mk);
        if (!ok) {
            free(big);
            return;
        }
    }
    free(big);
    if (in->heat_dir) {
        /* colours normalised as the scores: 0.5 (the colour scale's middle) at the pixel threshold */
        size_t n = (size_t)in->pp.width * in->pp.height;
        float *nm = malloc(sizeof(float) * n);
        aibox_image ov = {0};
        int ok = nm != NULL;
        for (size_t i = 0; ok && i < n; i++) nm[i] = (float)cli_normalise(in->map[i], in->pix_thr, in->lo, in->hi);
        if (ok && aibox_heatmap_overlay(&ov, img, nm, in->pp.width, in->pp.height, 0, 1, 0.5f, &err)) {
            emit_error(in, file, err.msg);
            ok = 0;
        } else if (ok) ok = padim_write_png(in, in->heat_dir, file, &ov);
        aibox_image_free(&ov);
        free(nm);
        if (!ok) return;
    }
    double norm = cli_normalise(score, in->thr, in->lo, in->hi);
    int ng = !(score < in->thr); /* NG at or above the threshold; anything that fails the comparison is NG */
    const char *verdict = ng ? "NG" : "OK";
    if (ng && in->worst < 1) in->worst = 1;
    int shown = n_reg < PADIM_MAX_REGIONS ? n_reg : PADIM_MAX_REGIONS;
    double ms = (cli_now() - t0) * 1e3;
    if (in->fmt == FMT_JSONL) {
        cli_json j;
        cj_begin(&j, stdout);
        cj_str(&j, "file", file);
        cj_num(&j, "score", "%.6g", score);
        cj_num(&j, "norm_score", "%.6f", norm);
        cj_num(&j, "threshold", "%.6g", in->thr);
        cj_str(&j, "verdict", verdict);
        cj_arr(&j, "regions");
        for (int i = 0; i < shown; i++) {
            cj_obj(&j, NULL);
            cj_int(&j, "x", reg[i].x), cj_int(&j, "y", reg[i].y), cj_int(&j, "w", reg[i].w), cj_int(&j, "h", reg[i].h);
            cj_int(&j, "area", reg[i].area);
            cj_num(&j, "peak", "%.6g", reg[i].peak);
            cj_close(&j);
        }
        cj_close(&j);
        cj_int(&j, "n_regions", n_reg);
        cj_obj(&j, "ms");
        cj_num(&j, "decode", "%.3f", (t1 - t0) * 1e3);
        cj_num(&j, "score", "%.3f", (t2 - t1) * 1e3);
        cj_num(&j, "total", "%.3f", ms);
        cj_end(&j);
    } else if (in->fmt == FMT_CSV) {
        cli_csv_str(stdout, file);
        printf(",%.6g,%.6f,%s,%d,%.3f,\n", score, norm, verdict, n_reg, ms);
    } else {
        printf("%s: %s score %.4g (normalised %.3f, threshold %.4g), %d region%s (%.1f ms)\n", file, verdict, score, norm,
               in->thr, n_reg, n_reg == 1 ? "" : "s", ms);
    }
}

/* Reads the stored thresholds; 0 on a model without them. */
static int padim_setup(infer *in, const char *model_path)
{
    aibox_error err = {0};
    const aibox_model *m = aibox_padim_model_const(in->pd);
    if (aibox_model_get_meta_float(m, "aibox.padim.threshold", &in->thr)) {
        fprintf(stderr, "aibox-infer: %s: the PaDiM model has no threshold (aibox.padim.threshold)\n", model_path);
        return 0;
    }
    if (aibox_model_get_meta_float(m, "aibox.padim.pixel_threshold", &in->pix_thr)) in->pix_thr = in->thr;
    if (aibox_model_get_meta_float(m, "aibox.padim.score_min", &in->lo)) in->lo = 0;
    if (aibox_model_get_meta_float(m, "aibox.padim.score_max", &in->hi)) in->hi = in->thr;
    if (!isfinite(in->thr) || !isfinite(in->pix_thr) || !isfinite(in->lo) || !isfinite(in->hi)) {
        fprintf(stderr, "aibox-infer: %s: the PaDiM model's thresholds or score range are not finite numbers\n",
                model_path);
        return 0;
    }
    if (aibox_preproc_from_model(&in->pp, m, &err) ||
        aibox_padim_ctx_create(&in->pctx, in->pd, 1, in->threads, &err)) {
        fprintf(stderr, "aibox-infer: %s: %s\n", model_path, err.msg);
        return 0;
    }
    in->map = malloc(sizeof(float) * (size_t)in->pp.width * in->pp.height);
    return in->map != NULL;
}

/* ------------------------------------------------------------------ evaluation */
typedef struct padim_eval_set {
    cli_list files;
    int *cls; /* abnormal: index of the sub-folder (defect class) */
    cli_list classes;
} padim_eval_set;

/* The defect class of an abnormal image: its first folder below dir ("" when none). */
static void padim_class_of(const char *dir, const char *path, char *out, size_t len)
{
    const char *rest = path + strlen(dir);
    while (*rest == '/') rest++;
    const char *slash = strchr(rest, '/');
    snprintf(out, len, "%.*s", slash ? (int)(slash - rest) : 0, rest);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Anomalib-style evaluation: image AUROC, pixel AUROC, AUPRO (FPR <= 0.3),
 * F1 at the stored threshold, per defect class; one JSON line. */
static int padim_eval(infer *in, const char *normal_dir, const char *abnormal_dir, const char *mask_dir)
{
    const char *prog = "aibox-infer";
    char why[4400] = "";
    cli_list normal = {0}, abnormal = {0}, classes = {0};
    int rc = 2;
    if (!cli_list_images(normal_dir, &normal, why, sizeof why) ||
        !cli_list_images(abnormal_dir, &abnormal, why, sizeof why)) {
        fprintf(stderr, "%s: %s\n", prog, why);
        cli_list_free(&normal), cli_list_free(&abnormal);
        return 2;
    }
    /* never score an image the model was fitted on: known by content (the
     * fingerprints recorded at fit), never by name (MVTec's train/good/000.png
     * and test/good/000.png are different images) */
    const aibox_model *m = aibox_padim_model_const(in->pd);
    int n_fit = 0, excluded = 0, have_fp = 0;
    const int64_t *fit = NULL;
    have_fp = aibox_model_get_meta_ints(m, "aibox.padim.fit_fingerprints", &n_fit, &fit) == AIBOX_OK;
    int64_t *sorted = have_fp && n_fit > 0 ? malloc(sizeof *sorted * (size_t)n_fit) : NULL;
    if (sorted) {
        memcpy(sorted, fit, sizeof *sorted * (size_t)n_fit);
        qsort(sorted, (size_t)n_fit, sizeof *sorted, cmp_i64);
    }
    cli_list keep = {0};
    for (int i = 0; i < normal.n; i++) {
        uint64_t fp = 0;
        aibox_error fe = {0};
        int used = sorted && !aibox_file_fingerprint(normal.v[i], &fp, &fe) &&
                   bsearch(&(int64_t){(int64_t)fp}, sorted, (size_t)n_fit, sizeof *sorted, cmp_i64);
        if (used) excluded++;
        else cli_list_add(&keep, normal.v[i]); /* an unreadable file is reported when it is scored */
    }
    free(sorted);
    if (!have_fp)
        fprintf(stderr, "%s: the model does not record its fitted images' content (made before fingerprints): none left "
                        "out; if %s holds images it was fitted on, the metrics are optimistic\n", prog, normal_dir);
    else if (excluded)
        fprintf(stderr, "%s: left out %d of %d normal images: their content equals images the model was fitted on\n",
                prog, excluded, normal.n);
    int n = keep.n + abnormal.n;
    size_t ml = (size_t)in->pp.width * in->pp.height;
    float *maps = malloc(sizeof(float) * ml * (size_t)(n + 1)), *scores = malloc(sizeof(float) * (size_t)(n + 1));
    uint8_t *masks = calloc(ml * (size_t)(n + 1), 1), *labels = calloc((size_t)n + 1, 1);
    int *cls = calloc((size_t)n + 1, sizeof *cls);
    if (!maps || !scores || !masks || !labels || !cls) {
        fprintf(stderr, "%s: out of memory for %d maps of %dx%d\n", prog, n, in->pp.width, in->pp.height);
        goto done;
    }
    double t0 = cli_now();
    int k = 0, failed = 0;
    for (int i = 0; i < n; i++) {
        const char *path = i < keep.n ? keep.v[i] : abnormal.v[i - keep.n];
        aibox_error err = {0};
        aibox_image img = {0};
        if (aibox_image_load(&img, path, in->max_pixels, &err) || aibox_preprocess(&in->pp, &img, in->input, &err) ||
            aibox_padim_score(in->pctx, in->input, 1, NULL, maps + ml * k, scores + k, &err)) {
            emit_error(in, path, err.msg);
            aibox_image_free(&img);
            failed++;
            continue;
        }
        aibox_image_free(&img);
        /* normal images: only a mask beside them (the mask folder holds the defects') */
        if (cli_load_mask(path, i < keep.n ? NULL : mask_dir, in->pp.width, in->pp.height, in->max_pixels,
                          masks + ml * k, &err)) {
            fprintf(stderr, "%s: mask %s\n", prog, err.msg);
            goto done;
        }
        labels[k] = i >= keep.n;
        cls[k] = -1;
        if (labels[k]) {
            char c[4300];
            padim_class_of(abnormal_dir, path, c, sizeof c);
            int found = -1;
            for (int j = 0; j < classes.n && found < 0; j++)
                if (!strcmp(classes.v[j], c)) found = j;
            if (found < 0 && cli_list_add(&classes, c)) found = classes.n - 1;
            cls[k] = found;
        }
        k++;
        if (isatty(2)) fprintf(stderr, "\r%s: evaluating %d/%d", prog, i + 1, n);
    }
    if (isatty(2)) fputc('\n', stderr);
    double secs = cli_now() - t0;
    int n_norm = 0, n_abn = 0;
    for (int i = 0; i < k; i++) n_norm += !labels[i], n_abn += labels[i];
    double img_auroc = aibox_metric_auroc(scores, labels, (size_t)k);
    double pix_auroc = aibox_metric_auroc(maps, masks, ml * (size_t)k);
    double aupro = aibox_metric_aupro(maps, masks, k, in->pp.width, in->pp.height, 0.3);
    double f1 = aibox_metric_f1_at(scores, labels, (size_t)k, (float)in->thr);
    int tp = 0, fp = 0, fn = 0, tn = 0;
    for (int i = 0; i < k; i++) {
        int pred = !(scores[i] < in->thr);
        tp += pred && labels[i], fp += pred && !labels[i], fn += !pred && labels[i], tn += !pred && !labels[i];
    }
    cli_json j;
    cj_begin(&j, stdout);
    cj_int(&j, "normal", n_norm);
    cj_int(&j, "abnormal", n_abn);
    cj_int(&j, "excluded_fit_images", excluded);
    cj_str(&j, "excluded_by", have_fp ? "content fingerprint" : NULL);
    cj_int(&j, "failed", failed);
    cj_num(&j, "image_auroc", "%.6f", img_auroc);
    cj_num(&j, "pixel_auroc", "%.6f", pix_auroc);
    cj_num(&j, "aupro", "%.6f", aupro);
    cj_num(&j, "threshold", "%.6g", in->thr);
    cj_num(&j, "f1", "%.6f", f1);
    cj_obj(&j, "confusion");
    cj_int(&j, "tp", tp), cj_int(&j, "fp", fp), cj_int(&j, "fn", fn), cj_int(&j, "tn", tn);
    cj_close(&j);
    /* per defect class: its images against all normal ones */
    cj_obj(&j, "per_class");
    float *s = malloc(sizeof(float) * (size_t)(k + 1));
    uint8_t *l = malloc((size_t)k + 1);
    for (int c = 0; s && l && c < classes.n; c++) {
        int kk = 0, hit = 0, tot = 0;
        for (int i = 0; i < k; i++)
            if (!labels[i] || cls[i] == c) {
                s[kk] = scores[i], l[kk++] = labels[i];
                if (labels[i]) tot++, hit += !(scores[i] < in->thr);
            }
        cj_obj(&j, classes.v[c][0] ? classes.v[c] : "(top)");
        cj_int(&j, "n", tot);
        cj_num(&j, "image_auroc", "%.6f", aibox_metric_auroc(s, l, (size_t)kk));
        cj_int(&j, "detected", hit);
        cj_close(&j);
    }
    free(s), free(l);
    cj_close(&j);
    cj_num(&j, "seconds", "%.3f", secs);
    cj_num(&j, "ms_per_image", "%.3f", k ? secs * 1e3 / k : 0);
    cj_end(&j);
    rc = failed ? 2 : 0;
done:
    free(maps), free(scores), free(masks), free(labels), free(cls);
    cli_list_free(&normal), cli_list_free(&abnormal), cli_list_free(&keep), cli_list_free(&classes);
    return rc;
}

#endif

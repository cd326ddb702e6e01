/* aibox-train padim: fit a PaDiM anomaly model on a folder of good parts.
 * Kept apart from the classifier trainer (aibox-train.c includes it). */
#ifndef AIBOX_TRAIN_PADIM_H
#define AIBOX_TRAIN_PADIM_H

#include <sys/resource.h>

#include "padim_cli.h"

static const char padim_usage[] =
    "usage: aibox-train padim GOOD_DIR -o MODEL.aibox --backbone FILE [options]\n"
    "Fits a PaDiM anomaly detector on images of good parts only (GOOD_DIR and its sub-folders;\n"
    "a PNG beside an image of the same name is its mask, not a sample). A seeded part of the\n"
    "good images is held out to set the threshold; everything inference needs is stored in\n"
    "the model (aibox-infer -m MODEL.aibox then prints scores, verdicts and defect regions).\n"
    "  -o, --output FILE      the PaDiM model; an existing FILE is replaced, atomically (on failure\n"
    "                         or interruption the old file stays)\n"
    "  --backbone FILE        a pretrained CNN: TensorFlow Lite, safetensors (torchvision\n"
    "                         ResNet) or .aibox; its preprocessing is used and stored\n"
    "  --layers LIST          feature taps by stride (default 4,8,16: ResNet's layer1-3)\n"
    "  --dims D               kept dimensions (default 100, or all channels if fewer)\n"
    "  --projection P         random (default: a seeded channel subset, as PaDiM) or\n"
    "                         orthogonal (a seeded semi-orthogonal projection, Kim et al.)\n"
    "  --holdout F            fraction of the good images held out for the threshold (default 0.2)\n"
    "  --threshold RULE       max (default: just above the largest held-out score), p99, sigma:K\n"
    "                         (mean + K standard deviations), f1 (needs --abnormal-dir) or a number\n"
    "  --abnormal-dir DIR     defect examples (optional): the F1-optimal image threshold is\n"
    "                         computed and stored too; with masks (beside the images or in\n"
    "                         --mask-dir) also the F1-optimal pixel threshold for regions\n"
    "  --mask-dir DIR         masks named STEM.png or STEM_mask.png\n"
    "  --reg X                added to each covariance's diagonal (default 0.01)\n"
    "  --float32              score with the float32 factors (default: a half-precision copy on\n"
    "                         CPUs with F16C, half the memory traffic, distances within ~1e-3;\n"
    "                         the file keeps float32 either way)\n"
    "  --sigma X              anomaly-map blur (default 4, as Anomalib; 0: none)\n"
    "  --batch N              images per backbone pass (default 8)\n"
    "  --seed N               seed of the hold-out, channel subset and projection (default 1)\n"
    "  --threads N            default: $AIBOX_THREADS or all CPUs\n"
    "  --max-pixels N         skip images whose header announces more pixels (default 100000000)\n"
    "  --strict               fail on the first unreadable image instead of skipping it\n"
    "  --quiet                no progress output\n"
    "Memory does not grow with the number of images (per-patch sums are streamed).\n"
    "Exit status: 0 fitted, 2 bad usage or data, 3 the backbone or the fit failed.\n";

typedef struct padim_train {
    const char *prog;
    long long max_pixels;
    int strict, quiet;
    aibox_preproc pp;
    cli_list skipped, skip_why;
} padim_train;

/* Loads an image into x; a bad file is skipped (recorded) or, strict, fatal. */
static int padim_load(padim_train *t, const char *path, float *x, int *fatal)
{
    aibox_error err = {0};
    if (!cli_load_input(&t->pp, path, t->max_pixels, 8, x, &err)) return 1;
    if (t->strict) {
        fprintf(stderr, "%s: %s\n", t->prog, err.msg);
        *fatal = 1;
        return 0;
    }
    if (!t->quiet) fprintf(stderr, "%s: skipping %s\n", t->prog, err.msg);
    cli_list_add(&t->skipped, path);
    cli_list_add(&t->skip_why, err.msg);
    return 0;
}

/* Scores every image of a list: image scores, and when maps is given the maps
 * at the model input size (with masks, their ground truth); returns the
 * number scored, or -1 on a fatal error. */
static int padim_score_list(padim_train *t, aibox_padim_ctx *c, char **paths, int n, float *x, float *scores,
                            float *maps, size_t map_len, uint8_t *masks, const char *mask_dir)
{
    int k = 0, fatal = 0;
    aibox_error err = {0};
    for (int i = 0; i < n; i++) {
        if (!padim_load(t, paths[i], x, &fatal)) {
            if (fatal) return -1;
            continue;
        }
        if (aibox_padim_score(c, x, 1, NULL, maps ? maps + map_len * k : NULL, scores + k, &err)) {
            fprintf(stderr, "%s: %s: %s\n", t->prog, paths[i], err.msg);
            return -1;
        }
        if (!isfinite(scores[k])) { /* a threshold must never rest on a non-finite score */
            fprintf(stderr, "%s: %s: the anomaly score is not a finite number (%g)\n", t->prog, paths[i], scores[k]);
            return -1;
        }
        if (masks && cli_load_mask(paths[i], mask_dir, t->pp.width, t->pp.height, t->max_pixels, masks + map_len * k,
                                   &err)) {
            fprintf(stderr, "%s: mask %s\n", t->prog, err.msg);
            return -1;
        }
        k++;
        if (!t->quiet && isatty(2)) fprintf(stderr, "\r%s: scoring %d/%d", t->prog, i + 1, n);
    }
    if (!t->quiet && isatty(2)) fputc('\n', stderr);
    return k;
}

static int padim_parse_layers(const char *s, aibox_padim_opts *o)
{
    o->n_taps = 0;
    char *copy = strdup(s), *save = NULL;
    int ok = copy != NULL;
    for (char *tok = copy ? strtok_r(copy, ",", &save) : NULL; tok && ok; tok = strtok_r(NULL, ",", &save)) {
        char *end;
        long v = strtol(tok, &end, 10);
        ok = !*end && v >= 1 && v <= 1024 && o->n_taps < AIBOX_PADIM_MAX_TAPS;
        if (ok) o->strides[o->n_taps++] = (int)v;
    }
    free(copy);
    return ok && o->n_taps > 0;
}

static int padim_main(int argc, char **argv)
{
    const char *prog = "aibox-train padim", *good = NULL, *out = NULL, *bb_path = NULL, *rule = "max";
    const char *abnormal = NULL, *mask_dir = NULL;
    long dims = 0, batch = 8, seed = 1, threads = 0, max_pixels = 100000000;
    double holdout = 0.2, reg = 0.01, sigma = 4;
    int quiet = 0, strict = 0, half = 1;
    aibox_padim_opts po = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(padim_usage, stdout);
            return 0;
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && v) out = v, i++;
        else if (!strcmp(a, "--backbone") && v) bb_path = v, i++;
        else if (!strcmp(a, "--threshold") && v) rule = v, i++;
        else if (!strcmp(a, "--abnormal-dir") && v) abnormal = v, i++;
        else if (!strcmp(a, "--mask-dir") && v) mask_dir = v, i++;
        else if (!strcmp(a, "--layers") && v) {
            if (!(ok = padim_parse_layers(v, &po)))
                fprintf(stderr, "%s: --layers needs 1 to %d strides such as 4,8,16 (got '%s')\n", prog,
                        AIBOX_PADIM_MAX_TAPS, v);
            i++;
        } else if (!strcmp(a, "--projection") && v) {
            if (!strcmp(v, "random")) po.projection = AIBOX_PADIM_RANDOM;
            else if (!strcmp(v, "orthogonal")) po.projection = AIBOX_PADIM_ORTHOGONAL;
            else ok = 0, fprintf(stderr, "%s: --projection must be random or orthogonal (got '%s')\n", prog, v);
            i++;
        } else if (!strcmp(a, "--dims")) ok = cli_int(prog, a, v, 1, 4096, &dims), i++;
        else if (!strcmp(a, "--batch")) ok = cli_int(prog, a, v, 1, 256, &batch), i++;
        else if (!strcmp(a, "--seed")) ok = cli_int(prog, a, v, 0, 0x7fffffffL, &seed), i++;
        else if (!strcmp(a, "--threads")) ok = cli_int(prog, a, v, 1, 1024, &threads), i++;
        else if (!strcmp(a, "--max-pixels")) ok = cli_int(prog, a, v, 1, 2000000000L, &max_pixels), i++;
        else if (!strcmp(a, "--holdout")) ok = cli_float(prog, a, v, 0, 0.9, &holdout), i++;
        else if (!strcmp(a, "--reg")) ok = cli_float(prog, a, v, 1e-9, 1e6, &reg), i++;
        else if (!strcmp(a, "--sigma")) ok = cli_float(prog, a, v, 0, 100, &sigma), i++;
        else if (!strcmp(a, "--quiet")) quiet = 1;
        else if (!strcmp(a, "--strict")) strict = 1;
        else if (!strcmp(a, "--float32")) half = 0;
        else if (a[0] != '-' && !good) good = a;
        else {
            fprintf(stderr, "%s: unknown option, missing value or extra argument '%s' (see --help)\n", prog, a);
            return 2;
        }
        if (!ok) return 2;
    }
    if (!good || !out || !bb_path) {
        fprintf(stderr, "%s: needs GOOD_DIR, -o MODEL.aibox and --backbone FILE (see --help)\n", prog);
        return 2;
    }
    double thr_fixed = 0, sig_k = 0;
    int rule_kind = 0; /* 0 max, 1 p99, 2 sigma, 3 f1, 4 fixed */
    if (!strcmp(rule, "max")) rule_kind = 0;
    else if (!strcmp(rule, "p99")) rule_kind = 1;
    else if (!strncmp(rule, "sigma:", 6) && cli_float(prog, "--threshold sigma:K", rule + 6, 0, 100, &sig_k)) rule_kind = 2;
    else if (!strcmp(rule, "f1")) rule_kind = 3;
    else if (cli_float(prog, "--threshold", rule, 0, 1e30, &thr_fixed)) rule_kind = 4;
    else return 2;
    if (rule_kind == 3 && !abnormal) {
        fprintf(stderr, "%s: --threshold f1 needs --abnormal-dir\n", prog);
        return 2;
    }
    if (rule_kind < 3 && holdout <= 0) {
        fprintf(stderr, "%s: --threshold %s needs held-out good images (--holdout > 0)\n", prog, rule);
        return 2;
    }
    double t_start = cli_now();
    padim_train t = {.prog = prog, .max_pixels = max_pixels, .strict = strict, .quiet = quiet};
    aibox_error err = {0};
    char why[4400] = "";
    cli_list goods = {0}, bad = {0};
    if (!cli_list_images(good, &goods, why, sizeof why)) {
        fprintf(stderr, "%s: %s\n", prog, why);
        return 2;
    }
    if (abnormal && !cli_list_images(abnormal, &bad, why, sizeof why)) {
        fprintf(stderr, "%s: %s\n", prog, why);
        cli_list_free(&goods);
        return 2;
    }
    int n_hold = (int)floor(holdout * goods.n + 0.5);
    if (holdout > 0 && n_hold < 1) n_hold = 1;
    if (goods.n - n_hold < 1) {
        fprintf(stderr, "%s: %s: %d good images, too few to fit and hold out %d\n", prog, good, goods.n, n_hold);
        cli_list_free(&goods), cli_list_free(&bad);
        return 2;
    }
    cli_shuffle(goods.v, goods.n, (uint64_t)seed);
    /* the fit list in name order (reproducible streaming), the hold-out after it */
    qsort(goods.v, (size_t)(goods.n - n_hold), sizeof *goods.v, cli_cmp_str);
    qsort(goods.v + goods.n - n_hold, (size_t)n_hold, sizeof *goods.v, cli_cmp_str);
    int n_fit = goods.n - n_hold;

    aibox_model *bb = NULL;
    aibox_padim_fit *fit = NULL;
    aibox_padim *pd = NULL;
    aibox_padim_ctx *pc = NULL;
    float *x = NULL, *hold_scores = NULL, *bad_scores = NULL, *maps = NULL;
    uint8_t *masks = NULL;
    char **fit_names = NULL;
    int64_t *fit_hashes = NULL; /* content fingerprints (aibox_file_fingerprint) of the fitted images */
    int rc = 3, fatal = 0;
    if (aibox_import(&bb, bb_path, NULL, &err)) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        goto done;
    }
    po.dims = (int)dims, po.seed = (uint64_t)seed, po.reg = reg, po.blur_sigma = sigma > 0 ? (float)sigma : -1;
    if (aibox_padim_fit_begin(&fit, bb, &po, (int)batch, (int)threads, &err) ||
        aibox_padim_fit_preproc(fit, &t.pp, &err)) {
        fprintf(stderr, "%s: %s: %s\n", prog, bb_path, err.msg);
        rc = err.code == AIBOX_E_INVALID ? 2 : 3;
        goto done;
    }
    aibox_model_free(&bb);
    size_t in_len = (size_t)t.pp.channels * t.pp.width * t.pp.height, map_len = (size_t)t.pp.width * t.pp.height;
    x = malloc(sizeof(float) * in_len * (size_t)batch);
    fit_names = calloc((size_t)n_fit + 1, sizeof *fit_names);
    fit_hashes = calloc((size_t)n_fit + 1, sizeof *fit_hashes);
    if (!x || !fit_names || !fit_hashes) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto done;
    }
    int nb = 0, n_used = 0;
    double t_fit = cli_now();
    for (int i = 0; i < n_fit; i++) {
        if (padim_load(&t, goods.v[i], x + in_len * nb, &fatal)) {
            uint64_t fp = 0;
            if (aibox_file_fingerprint(goods.v[i], &fp, &err)) { /* the file changed under us */
                fprintf(stderr, "%s: %s\n", prog, err.msg);
                rc = 2;
                goto done;
            }
            fit_hashes[n_used] = (int64_t)fp;
            fit_names[n_used++] = (char *)cli_leaf(goods.v[i]), nb++;
        } else if (fatal) {
            rc = 2;
            goto done;
        }
        if (nb == batch || (i == n_fit - 1 && nb)) {
            if (aibox_padim_fit_add(fit, x, nb, &err)) {
                fprintf(stderr, "%s: %s\n", prog, err.msg);
                goto done;
            }
            nb = 0;
            if (!quiet && isatty(2)) fprintf(stderr, "\r%s: fitting %d/%d", prog, i + 1, n_fit);
        }
    }
    if (!quiet && isatty(2)) fputc('\n', stderr);
    if (n_used < 1) {
        fprintf(stderr, "%s: %s: no usable good image to fit\n", prog, good);
        rc = 2;
        goto done;
    }
    size_t fit_bytes = aibox_padim_fit_bytes(fit);
    if (aibox_padim_fit_end(fit, &pd, &err)) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        goto done;
    }
    aibox_padim_fit_free(&fit);
    t_fit = cli_now() - t_fit;
    if (!half && aibox_padim_set_half(pd, 0, &err)) { /* the library's default is the half-precision copy */
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        goto done;
    }
    if (aibox_padim_ctx_create(&pc, pd, 1, (int)threads, &err)) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        goto done;
    }
    /* held-out good images, then defect examples: their scores (and maps) */
    int want_pixels = abnormal != NULL;
    int n_total = n_hold + bad.n;
    hold_scores = malloc(sizeof(float) * (size_t)(n_hold + 1));
    bad_scores = malloc(sizeof(float) * (size_t)(bad.n + 1));
    if (want_pixels) {
        maps = malloc(sizeof(float) * map_len * (size_t)(n_total + 1));
        masks = malloc(map_len * (size_t)(n_total + 1));
    }
    if (!hold_scores || !bad_scores || (want_pixels && (!maps || !masks))) {
        fprintf(stderr, "%s: out of memory for %d score maps\n", prog, n_total);
        goto done;
    }
    int h_ok = padim_score_list(&t, pc, goods.v + n_fit, n_hold, x, hold_scores, maps, map_len, masks, mask_dir);
    int b_ok = h_ok < 0 ? -1
                        : padim_score_list(&t, pc, bad.v, bad.n, x, bad_scores, maps ? maps + map_len * h_ok : NULL,
                                           map_len, masks ? masks + map_len * h_ok : NULL, mask_dir);
    if (h_ok < 0 || b_ok < 0) {
        rc = t.strict ? 2 : 3;
        goto done;
    }
    aibox_model *m = aibox_padim_model(pd);
    double mean = 0, sd = 0, lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < h_ok; i++) mean += hold_scores[i], lo = fmin(lo, hold_scores[i]), hi = fmax(hi, hold_scores[i]);
    mean /= h_ok > 0 ? h_ok : 1;
    for (int i = 0; i < h_ok; i++) sd += (hold_scores[i] - mean) * (hold_scores[i] - mean);
    sd = h_ok > 1 ? sqrt(sd / (h_ok - 1)) : 0;
    double lo_hold = lo; /* the held-out scores' minimum; lo and hi then cover the defects' scores too */
    for (int i = 0; i < b_ok; i++) lo = fmin(lo, bad_scores[i]), hi = fmax(hi, bad_scores[i]);
    double thr_max = hi, thr_p99 = 0, thr_f1 = NAN, f1 = NAN, auroc = NAN, pix_thr = NAN, pix_f1 = NAN;
    if (h_ok > 0) {
        float *tmp = malloc(sizeof(float) * (size_t)h_ok);
        if (tmp) {
            memcpy(tmp, hold_scores, sizeof(float) * (size_t)h_ok);
            thr_p99 = cli_quantile(tmp, h_ok, 0.99);
            thr_max = tmp[h_ok - 1];
        }
        free(tmp);
    }
    if (b_ok > 0) {
        int na = h_ok + b_ok;
        float *s = malloc(sizeof(float) * (size_t)na);
        uint8_t *l = malloc((size_t)na);
        float th = 0;
        if (s && l) {
            for (int i = 0; i < h_ok; i++) s[i] = hold_scores[i], l[i] = 0;
            for (int i = 0; i < b_ok; i++) s[h_ok + i] = bad_scores[i], l[h_ok + i] = 1;
            auroc = aibox_metric_auroc(s, l, (size_t)na);
            if (!aibox_metric_f1_best(s, l, (size_t)na, &th, &f1, &err)) thr_f1 = th;
            /* pixels: only when some mask has defect pixels */
            size_t np = map_len * (size_t)na, pos = 0;
            for (size_t i = 0; i < np; i++) pos += masks[i];
            if (pos && !aibox_metric_f1_best(maps, masks, np, &th, &pix_f1, &err)) pix_thr = th;
        }
        free(s), free(l);
    }
    /* verdicts are score >= threshold (as F1's): "max" sits just above the largest held-out score */
    double thr = rule_kind == 0 ? nextafterf((float)thr_max, INFINITY)
                 : rule_kind == 1 ? thr_p99
                 : rule_kind == 2 ? mean + sig_k * sd
                 : rule_kind == 3 ? thr_f1
                                  : thr_fixed;
    if (!isfinite(thr)) {
        fprintf(stderr, "%s: the %s threshold could not be set (no usable held-out or defect images)\n", prog, rule);
        rc = 2;
        goto done;
    }
    if (!isfinite(lo)) lo = 0, hi = thr;
    aibox_status s = aibox_model_set_meta_float(m, "aibox.padim.threshold", thr, &err);
    if (!s) s = aibox_model_set_meta_str(m, "aibox.padim.threshold_rule", rule, &err);
    if (!s) s = aibox_model_set_meta_float(m, "aibox.padim.pixel_threshold", isfinite(pix_thr) ? pix_thr : thr, &err);
    if (!s) s = aibox_model_set_meta_float(m, "aibox.padim.score_min", lo, &err);
    if (!s) s = aibox_model_set_meta_float(m, "aibox.padim.score_max", hi, &err);
    if (!s && isfinite(thr_f1)) s = aibox_model_set_meta_float(m, "aibox.padim.threshold_f1", thr_f1, &err);
    if (!s) s = aibox_model_set_meta_strs(m, "aibox.padim.fit_files", n_used, (const char *const *)fit_names, &err);
    if (!s) s = aibox_model_set_meta_ints(m, "aibox.padim.fit_fingerprints", n_used, fit_hashes, &err);
    if (!s) s = aibox_model_set_meta_str(m, "aibox.padim.backbone", cli_leaf(bb_path), &err);
    if (!s) s = aibox_padim_save(pd, out, &err);
    if (s) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        goto done;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    struct stat st;
    long long model_bytes = stat(out, &st) ? -1 : (long long)st.st_size;
    int gw, gh, d;
    aibox_padim_info(pd, &gw, &gh, &d, NULL);
    cli_json j;
    cj_begin(&j, stdout);
    cj_str(&j, "model", out);
    cj_str(&j, "backbone", bb_path);
    cj_obj(&j, "images");
    cj_int(&j, "fit", n_used), cj_int(&j, "holdout", h_ok), cj_int(&j, "abnormal", b_ok), cj_int(&j, "skipped", t.skipped.n);
    cj_close(&j);
    cj_int(&j, "dims", d);
    cj_arr(&j, "grid");
    cj_int(&j, NULL, gw), cj_int(&j, NULL, gh);
    cj_close(&j);
    cj_num(&j, "threshold", "%.6g", thr);
    cj_str(&j, "threshold_rule", rule);
    cj_obj(&j, "holdout_scores"); /* null when nothing was held out */
    cj_num(&j, "min", "%.6g", h_ok ? lo_hold : NAN);
    cj_num(&j, "mean", "%.6g", h_ok ? mean : NAN);
    cj_num(&j, "sd", "%.6g", h_ok > 1 ? sd : NAN);
    cj_num(&j, "p99", "%.6g", h_ok ? thr_p99 : NAN);
    cj_num(&j, "max", "%.6g", h_ok ? thr_max : NAN);
    cj_close(&j);
    if (b_ok > 0) {
        cj_obj(&j, "abnormal_eval");
        cj_num(&j, "image_auroc", "%.6f", auroc);
        cj_num(&j, "f1", "%.6f", f1);
        cj_num(&j, "threshold_f1", "%.6g", thr_f1);
        cj_num(&j, "pixel_threshold_f1", "%.6g", pix_thr);
        cj_num(&j, "pixel_f1", "%.6f", pix_f1);
        cj_close(&j);
    }
    cj_arr(&j, "skipped");
    for (int i = 0; i < t.skipped.n; i++) {
        cj_obj(&j, NULL);
        cj_str(&j, "file", t.skipped.v[i]);
        cj_str(&j, "error", t.skip_why.v[i]);
        cj_close(&j);
    }
    cj_close(&j);
    cj_obj(&j, "seconds");
    cj_num(&j, "fit", "%.3f", t_fit);
    cj_num(&j, "total", "%.3f", cli_now() - t_start);
    cj_close(&j);
    cj_num(&j, "fit_state_mb", "%.1f", fit_bytes / 1048576.0);
    cj_num(&j, "peak_rss_mb", "%.1f", ru.ru_maxrss / 1024.0);
    cj_num(&j, "model_mb", "%.1f", model_bytes / 1048576.0);
    cj_end(&j);
    rc = 0;
done:
    aibox_model_free(&bb);
    aibox_padim_fit_free(&fit);
    aibox_padim_ctx_free(&pc);
    aibox_padim_free(&pd);
    free(x), free(hold_scores), free(bad_scores), free(maps), free(masks), free(fit_names), free(fit_hashes);
    cli_list_free(&goods), cli_list_free(&bad), cli_list_free(&t.skipped), cli_list_free(&t.skip_why);
    return rc;
}

#endif

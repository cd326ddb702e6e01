/* bench_patchcore: PatchCore speed and memory — end-to-end inference per
 * image (JPEG decode, preprocessing, backbone, patch features, nearest bank
 * entry per patch, re-weighted image score, anomaly map) per coreset share
 * and thread count, and the fit's time and peak memory per number of good
 * images.
 *
 *   bench_patchcore [--threads 1,2] [--images N] [--fit 200[,800]] [--coresets 0.01,0.1,0.25]
 *                   [--score-fits LIST] [--fit-threads N] [--passes N] [--data DIR] [--json]
 *
 * Backbone: ResNet-18 (aibox_preset_resnet18 at 224, ImageNet preprocessing
 * stored by aibox_preproc_to_model with AREA resize, as bench_padim; random
 * weights — they do not change the speed). PatchCore with the library's
 * defaults: taps at strides 8 and 16 (layer2, layer3), each averaged 3 x 3,
 * layer3 upsampled bilinearly to layer2's 28 x 28 grid, concatenated
 * (D = 384 channels, no reduction); coreset by greedy k-centre on a 128-d
 * seeded Gaussian projection; image score re-weighted over 9 neighbours; map
 * bilinear to 224 x 224 and blurred with sigma 4. Seed 1.
 *
 * Fit, per --fit size and per coreset share (a fresh fit each time, on
 * --fit-threads threads, default the largest of --threads):
 * aibox_patchcore_fit_begin (the feature network and its context: "setup"),
 * decode from memory + preprocess + aibox_patchcore_fit_add in batches of 8
 * (with the setup, the "features" part), then aibox_patchcore_fit_end (the
 * coreset selection and the bank: "selection"). Reported: seconds of each
 * part; the bytes the fit held just before fit_end
 * (aibox_patchcore_fit_bytes: the bank before subsampling and the backbone
 * context); and the peak memory of the fit, measured as the growth of the
 * process's peak resident set (VmHWM in /proc/self/status) over the fit:
 * freed heap memory is returned first (malloc_trim), VmRSS is read, VmHWM is
 * reset to it (writing 5 to /proc/self/clear_refs, Linux 4.0 on), the fit
 * runs, and VmHWM - VmRSS before is the growth. The JPEGs of the fit are in
 * memory before, so they are not counted. When clear_refs cannot be
 * written, VmHWM is the whole process's peak so far and the output says so
 * ("hwm_reset": false): the growth then only holds for a fit whose peak is
 * the largest yet.
 *
 * Inference, for the fits of --score-fits sizes (default: the smallest
 * --fit), per coreset and thread count: --images tiles, read into memory
 * beforehand, --passes times each: aibox_image_decode from memory +
 * aibox_preprocess, then aibox_patchcore_score with a map and a score,
 * batch 1, one aibox_patchcore_ctx per thread count (after 3 warm-up
 * images). Reports the median, 90th percentile and minimum ms per image end
 * to end, the medians of the two parts, and a profile of the score call from
 * separate, interleaved timings (medians): the feature network alone
 * (aibox_ctx_infer on aibox_patchcore_model, weights frozen as the
 * context's), the grid (aibox_patchcore_score with the grid only: features +
 * nearest neighbours; "nn" is the difference) and the rest of the full call
 * ("map+score": the re-weighted score and the map). Also the bank's entries
 * and size (K x D floats).
 *
 * Data: $AIBOX_DATA/magnetic-tile/MT_Free/Imgs (default --data
 * ../shared/data/magnetic-tile/MT_Free/Imgs), the files sorted by name. The
 * timed images are bench_padim's (its default --fit 16): of 16 + --images
 * files taken at an even stride, all but the first 16. The fit images are
 * taken from the other files (in name order) at an even stride, the first N
 * of them for a fit of N; bench/peer_patchcore.py picks the same ones.
 * Without enough files, synthetic grayscale JPEGs (bench_padim's, encoded
 * here, so decoding is still timed) stand in and the output says so.
 *
 * Human lines go to stdout, or to stderr with --json, which prints one JSON
 * line of the results on stdout. Not a test: it checks that every call
 * succeeds and the scores are finite. */
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aibox.h"
#define BENCH_NAME "bench_patchcore"
#include "bench.h"

#define MAX_THREADS 4
#define MAX_LIST 8
#define FIT_BATCH 8

typedef struct {
    int threads[MAX_THREADS], n_threads;
    int fits[MAX_LIST], n_fits;
    int score_fits[MAX_LIST], n_score_fits;
    double coresets[MAX_LIST];
    int n_coresets;
    int images, passes, fit_threads, json;
    const char *data;
} options;

typedef struct { /* one thread count (ms) */
    int threads;
    e2e_times e2e; /* batch 1 */
    double feat_ms, grid_ms, full_ms;
} tres;

typedef struct { /* one fit: a fit size and a coreset share */
    int fit;
    double coreset;
    long patches, bank;
    int dims, gw, gh;
    double fit_s, begin_s, features_s, select_s;
    double held_mb, rss_before_mb, hwm_mb, growth_mb;
    int hwm_reset, scored;
    tres t[MAX_THREADS];
} fres;

/* ------------------------------------------------------------ memory */
/* A field of /proc/self/status in kB ("VmRSS", "VmHWM"); -1 if absent. */
static long status_kb(const char *field)
{
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    FILE *f = fopen("/proc/self/status", "r");
    while (f && v < 0 && fgets(line, sizeof line, f))
        if (!strncmp(line, field, n) && line[n] == ':') v = strtol(line + n + 1, NULL, 10);
    if (f) fclose(f);
    return v;
}

/* Resets VmHWM to the current VmRSS; 1 when the kernel took it. */
static int reset_hwm(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return 0;
    int ok = fputs("5", f) >= 0;
    ok = (fclose(f) == 0) && ok;
    return ok;
}

/* ------------------------------------------------------------ the bench */
/* One fit, measured (see the header); returns the fitted model. */
static aibox_patchcore *fit_one(const options *o, const aibox_model *bb, const blob *imgs, int n, double coreset,
                                fres *r)
{
    aibox_error err = {0};
    malloc_trim(0); /* an earlier fit's freed memory back to the system, so the baseline is what is live */
    long rss0 = status_kb("VmRSS");
    r->hwm_reset = reset_hwm();
    double t0 = now_ms();
    aibox_patchcore_opts po = {0};
    po.coreset = coreset;
    po.seed = 1;
    aibox_patchcore_fit *f = NULL;
    aibox_patchcore *p = NULL;
    check(aibox_patchcore_fit_begin(&f, bb, &po, FIT_BATCH, o->fit_threads, &err), &err, "aibox_patchcore_fit_begin");
    aibox_preproc pp;
    check(aibox_patchcore_fit_preproc(f, &pp, &err), &err, "aibox_patchcore_fit_preproc");
    r->begin_s = (now_ms() - t0) / 1e3;
    int ch, h, w;
    aibox_model_input_shape(bb, &ch, &h, &w);
    size_t in_sz = (size_t)ch * h * w;
    float *xb = xalloc_floats(in_sz * FIT_BATCH);
    for (int i = 0; i < n; i += FIT_BATCH) {
        int nb = n - i < FIT_BATCH ? n - i : FIT_BATCH;
        for (int b = 0; b < nb; b++) decode_pre(&pp, &imgs[i + b], xb + in_sz * b);
        check(aibox_patchcore_fit_add(f, xb, nb, &err), &err, "aibox_patchcore_fit_add");
    }
    aibox_free(xb);
    r->held_mb = aibox_patchcore_fit_bytes(f) / 1048576.0;
    double t1 = now_ms();
    check(aibox_patchcore_fit_end(f, &p, &err), &err, "aibox_patchcore_fit_end");
    aibox_patchcore_fit_free(&f);
    double t2 = now_ms();
    long hwm = status_kb("VmHWM");
    r->fit = n, r->coreset = coreset;
    r->features_s = (t1 - t0) / 1e3, r->select_s = (t2 - t1) / 1e3, r->fit_s = (t2 - t0) / 1e3;
    r->rss_before_mb = rss0 / 1024.0, r->hwm_mb = hwm / 1024.0;
    r->growth_mb = rss0 >= 0 && hwm >= 0 ? (hwm - rss0) / 1024.0 : -1;
    aibox_patchcore_info(p, &r->gw, &r->gh, &r->dims, &r->bank, NULL, &r->patches);
    return p;
}

/* time_images' score call: batch 1 with a map and a score. */
typedef struct {
    aibox_patchcore_ctx *c;
    float *maps;
} scorer;

static float score_one(void *arg, const float *x)
{
    scorer *s = arg;
    aibox_error err = {0};
    float score = 0;
    check(aibox_patchcore_score(s->c, x, 1, NULL, s->maps, &score, NULL, &err), &err, "aibox_patchcore_score");
    return score;
}

/* Times the inference of a fitted model at each thread count. */
static void score_all(const options *o, aibox_patchcore *p, const blob *imgs, fres *r)
{
    aibox_error err = {0};
    aibox_model *net = aibox_patchcore_model(p);
    aibox_preproc pp;
    check(aibox_preproc_from_model(&pp, net, &err), &err, "aibox_preproc_from_model");
    int ch, h, w;
    aibox_model_input_shape(net, &ch, &h, &w);
    size_t in_sz = (size_t)ch * h * w;
    float *x = xalloc_floats(in_sz), *maps = xalloc_floats((size_t)h * w);
    float *grid = xalloc_floats((size_t)r->gw * r->gh);
    float score = 0;
    r->scored = 1;
    for (int ti = 0; ti < o->n_threads; ti++) {
        tres *R = &r->t[ti];
        int th = o->threads[ti];
        R->threads = th;
        aibox_patchcore_ctx *c = NULL;
        check(aibox_patchcore_ctx_create(&c, p, 1, th, &err), &err, "aibox_patchcore_ctx_create");
        time_images(&pp, imgs, o->images, o->passes, x, score_one, &(scorer){c, maps}, NULL, &R->e2e);

        /* Profile, the parts interleaved round by round (medians): the
         * feature network alone, the grid (features + nearest neighbours),
         * the full call (+ re-weighted score + map). About 3 s of them at
         * most, 3 to 15 rounds, after two warm-up rounds. */
        int reps = (int)(3000.0 / (2.2 * R->e2e.score_med + 1e-3));
        reps = reps < 3 ? 3 : reps > 15 ? 15 : reps;
        double *tf = xmalloc(sizeof(double) * 3 * reps), *tg = tf + reps, *tm = tf + 2 * reps;
        aibox_ctx *fc = NULL;
        check(aibox_ctx_create(&fc, net, &(aibox_ctx_opts){.height = h, .width = w, .threads = th}, &err), &err,
              "feature context");
        check(aibox_ctx_freeze_weights(fc, net, &err), &err, "aibox_ctx_freeze_weights"); /* as PatchCore's own */
        decode_pre(&pp, &imgs[0], x);
        for (int i = -2; i < reps; i++) {
            double a = now_ms();
            check(aibox_ctx_infer(fc, net, x, 1, &err), &err, "feature inference");
            double b = now_ms();
            check(aibox_patchcore_score(c, x, 1, grid, NULL, NULL, NULL, &err), &err, "aibox_patchcore_score (grid)");
            double g = now_ms();
            check(aibox_patchcore_score(c, x, 1, NULL, maps, &score, NULL, &err), &err, "aibox_patchcore_score");
            double e = now_ms();
            if (i >= 0) tf[i] = b - a, tg[i] = g - b, tm[i] = e - g;
        }
        R->feat_ms = quantile(tf, reps, 0.5);
        R->grid_ms = quantile(tg, reps, 0.5);
        R->full_ms = quantile(tm, reps, 0.5);
        free(tf);
        aibox_ctx_free(&fc);
        aibox_patchcore_ctx_free(&c);
        int target = th == 1 && fabs(r->coreset - 0.1) < 1e-9;
        say("   %-8d %9.2f %9.2f %9.2f %12.2f %9.2f | %9.2f %9.2f %9.2f%s\n", th, R->e2e.med, R->e2e.p90, R->e2e.min,
            R->e2e.pre_med, R->e2e.score_med, R->feat_ms, R->grid_ms - R->feat_ms, R->full_ms - R->grid_ms,
            target ? "   target <= 40 ms" : "");
    }
    aibox_free(x), aibox_free(maps), aibox_free(grid);
}

/* ------------------------------------------------------------ main */
static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_patchcore [--threads 1,2] [--images N] [--fit 200[,800]] [--coresets 0.01,0.1,0.25]\n"
            "                       [--score-fits LIST] [--fit-threads N] [--passes N] [--data DIR] [--json]\n"
            "  --threads L      thread counts of the inference, comma-separated (default 1,2)\n"
            "  --images N       timed images, read into memory first (default 50; bench_padim's)\n"
            "  --fit L          numbers of good images to fit on, comma-separated (default 200)\n"
            "  --coresets L     coreset shares in (0, 1], comma-separated (default 0.01,0.1,0.25)\n"
            "  --score-fits L   the fit sizes whose models are also timed at inference\n"
            "                   (default: the smallest --fit; each must be one of --fit)\n"
            "  --fit-threads N  threads of the fits (default: the largest of --threads)\n"
            "  --passes N       passes over the timed images at batch 1 (default 1)\n"
            "  --data DIR       the good tiles (default $AIBOX_DATA/magnetic-tile/MT_Free/Imgs,\n"
            "                   AIBOX_DATA defaulting to ../shared/data); synthetic images if too few\n"
            "  --json           one JSON line of results on stdout; human lines on stderr\n");
}

int main(int argc, char **argv)
{
    options o = {.threads = {1, 2}, .n_threads = 2, .fits = {200}, .n_fits = 1, .coresets = {0.01, 0.1, 0.25},
                 .n_coresets = 3, .images = 50, .passes = 1};
    o.data = tiles_default_dir();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--threads")) o.n_threads = parse_list(a, v, o.threads, NULL, MAX_THREADS, 256), i++;
        else if (!strcmp(a, "--fit")) o.n_fits = parse_list(a, v, o.fits, NULL, MAX_LIST, 100000), i++;
        else if (!strcmp(a, "--score-fits"))
            o.n_score_fits = parse_list(a, v, o.score_fits, NULL, MAX_LIST, 100000), i++;
        else if (!strcmp(a, "--coresets")) o.n_coresets = parse_list(a, v, NULL, o.coresets, MAX_LIST, 0), i++;
        else if (!strcmp(a, "--images")) o.images = parse_pos(a, v, 10000), i++;
        else if (!strcmp(a, "--passes")) o.passes = parse_pos(a, v, 100), i++;
        else if (!strcmp(a, "--fit-threads")) o.fit_threads = parse_pos(a, v, 256), i++;
        else if (!strcmp(a, "--data")) {
            if (!v) die("--data needs a folder");
            o.data = v, i++;
        } else if (!strcmp(a, "--json")) o.json = 1;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        else { usage(stderr); die("unknown option '%s'", a); }
    }
    int max_fit = 0, min_fit = 0;
    for (int i = 0; i < o.n_fits; i++) {
        max_fit = o.fits[i] > max_fit ? o.fits[i] : max_fit;
        min_fit = !i || o.fits[i] < min_fit ? o.fits[i] : min_fit;
    }
    if (!o.n_score_fits) o.score_fits[0] = min_fit, o.n_score_fits = 1;
    for (int i = 0; i < o.n_score_fits; i++) {
        int found = 0;
        for (int j = 0; j < o.n_fits; j++) found |= o.fits[j] == o.score_fits[i];
        if (!found) die("--score-fits %d is not one of the --fit sizes", o.score_fits[i]);
    }
    if (!o.fit_threads)
        for (int i = 0; i < o.n_threads; i++) o.fit_threads = o.threads[i] > o.fit_threads ? o.threads[i] : o.fit_threads;
    bench_human = o.json ? stderr : stdout;
    aibox_blas_setup();
    char load_before[64];
    snprintf(load_before, sizeof load_before, "%s", loadavg());

    source src;
    source_open(&src, o.data, o.images, max_fit);
    size_t bytes = 0;
    for (int k = 0; k < o.images; k++) bytes += src.timed[k].len;

    aibox_model *bb = NULL;
    resnet18_imagenet(&bb);
    say("libaibox %s; %s\n", aibox_version(), aibox_blas_info());
    say("PatchCore, ResNet-18 (preset, random weights) at 224: layer2 + layer3, 3x3 average, bilinear to layer2's "
        "grid, concat; greedy k-centre coreset on a 128-d projection; seed 1\n");
    say("end to end per image: decode (from memory) + preprocess + features + nearest bank entry per patch + "
        "re-weighted score (9 neighbours) + map (bilinear to 224, blur sigma 4)\n");
    if (src.synthetic)
        say("images: SYNTHETIC (%s has %d JPEGs, %d + %d needed): %d timed JPEGs (%zu KB), fits from %d others\n",
            o.data, src.nfiles, PADIM_FIT + o.images, max_fit, o.images, bytes >> 10, src.n_rest);
    else
        say("images: %s, %d timed JPEGs (%zu KB; bench_padim's at --fit 16) of %d, %d pass%s at batch 1; fits "
            "from the other %d at an even stride\n",
            o.data, o.images, bytes >> 10, src.nfiles, o.passes, o.passes > 1 ? "es" : "", src.n_rest);
    say("fits on %d thread%s: decode + preprocess + features in batches of %d, then coreset selection; memory: "
        "growth of the peak RSS over the fit (VmHWM reset before)\n",
        o.fit_threads, o.fit_threads > 1 ? "s" : "", FIT_BATCH);
    say("load average before: %s\n", load_before);

    int nres = o.n_fits * o.n_coresets;
    fres *res = calloc((size_t)nres, sizeof *res);
    if (!res) die("out of memory");
    int ri = 0;
    for (int fi = 0; fi < o.n_fits; fi++) {
        int n = o.fits[fi], score = 0;
        for (int i = 0; i < o.n_score_fits; i++) score |= o.score_fits[i] == n;
        blob *fit = fit_images(&src, n);
        for (int ci = 0; ci < o.n_coresets; ci++, ri++) {
            fres *r = &res[ri];
            aibox_patchcore *p = fit_one(&o, bb, fit, n, o.coresets[ci], r);
            say("\n== fit %d images (%ld patches, grid %dx%d, D = %d), coreset %g: bank %ld entries, %.1f MB\n", n,
                r->patches, r->gw, r->gh, r->dims, r->coreset, r->bank, r->bank * (double)r->dims * 4 / 1048576.0);
            say("   fit %.2f s (features %.2f s of which setup %.2f, selection %.2f s); held before selection %.0f MB; "
                "peak RSS +%.0f MB (%.0f MB, from %.0f)%s\n",
                r->fit_s, r->features_s, r->begin_s, r->select_s, r->held_mb, r->growth_mb, r->hwm_mb, r->rss_before_mb,
                r->hwm_reset ? "" : " [VmHWM NOT reset: the process's peak so far]");
            if (score) {
                say("   %-8s %9s %9s %9s %12s %9s | %9s %9s %9s\n", "threads", "e2e med", "e2e p90", "e2e min",
                    "dec+pre med", "score med", "features", "nn", "map+score");
                score_all(&o, p, src.timed, r);
            }
            aibox_patchcore_free(&p);
        }
        free_fit_images(&src, fit, n);
    }
    say("\nload average after: %s\n", loadavg());

    if (o.json) {
        printf("{\"bench\":\"bench_patchcore\",\"version\":\"%s\",\"blas_core\":\"%s\",\"backbone\":\"resnet18\","
               "\"images\":%d,\"passes\":%d,\"fit_threads\":%d,\"synthetic\":%s,\"load_before\":\"%s\","
               "\"load_after\":\"%s\",\"fits\":[",
               aibox_version(), aibox_blas_core(), o.images, o.passes, o.fit_threads, src.synthetic ? "true" : "false",
               load_before, loadavg());
        for (int i = 0; i < nres; i++) {
            const fres *r = &res[i];
            printf("%s{\"fit\":%d,\"coreset\":%g,\"patches\":%ld,\"dims\":%d,\"grid\":[%d,%d],\"bank\":%ld,"
                   "\"bank_mb\":%.2f,\"fit_s\":%.3f,\"begin_s\":%.3f,\"features_s\":%.3f,\"select_s\":%.3f,\"held_mb\":%.1f,"
                   "\"rss_before_mb\":%.1f,\"peak_rss_mb\":%.1f,\"peak_growth_mb\":%.1f,\"hwm_reset\":%s,\"results\":[",
                   i ? "," : "", r->fit, r->coreset, r->patches, r->dims, r->gh, r->gw, r->bank,
                   r->bank * (double)r->dims * 4 / 1048576.0, r->fit_s, r->begin_s, r->features_s, r->select_s, r->held_mb,
                   r->rss_before_mb, r->hwm_mb, r->growth_mb, r->hwm_reset ? "true" : "false");
            for (int t = 0; r->scored && t < o.n_threads; t++) {
                const tres *R = &r->t[t];
                printf("%s{\"threads\":%d,\"e2e_ms\":%.3f,\"e2e_p90_ms\":%.3f,\"e2e_min_ms\":%.3f,"
                       "\"decode_pre_ms\":%.3f,\"score_ms\":%.3f,\"features_ms\":%.3f,\"nn_ms\":%.3f,"
                       "\"map_score_ms\":%.3f}",
                       t ? "," : "", R->threads, R->e2e.med, R->e2e.p90, R->e2e.min, R->e2e.pre_med, R->e2e.score_med,
                       R->feat_ms, R->grid_ms - R->feat_ms, R->full_ms - R->grid_ms);
            }
            printf("]}");
        }
        printf("]}\n");
    }
    free(res);
    aibox_model_free(&bb);
    source_close(&src, o.images);
    return 0;
}

/* bench_padim: end-to-end PaDiM inference speed per image — JPEG decode,
 * preprocessing, backbone, Mahalanobis grid, anomaly map (bilinear upsample
 * to the input size, Gaussian blur sigma 4) and image score (the map's max).
 *
 *   bench_padim [--threads 1,2] [--images N] [--fit N] [--passes N] [--batch N]
 *               [--backbones resnet18,mnv1,mnv1_025] [--data DIR] [--models DIR] [--stages] [--half]
 *               [--json]
 *
 * Per backbone: builds it (ResNet-18: aibox_preset_resnet18 at 224 with
 * ImageNet preprocessing stored by aibox_preproc_to_model, random weights —
 * they do not change the speed; MobileNet v1 1.0 and 0.25: the TFLite files,
 * through aibox_import, when present), fits PaDiM (taps at strides 4, 8, 16,
 * d = 100, random channel subset) on --fit real good tiles, then times
 * --images other tiles, read into memory beforehand, --passes times each:
 * aibox_image_decode from memory + aibox_preprocess, then aibox_padim_score
 * with a map and a score, batch 1, one aibox_padim_ctx per thread count.
 * Reports the median and 90th percentile per image end-to-end and the split
 * (decode + preprocess / score), a batch throughput (decode + preprocess of
 * --batch images, one score call; ms per image, median over batches), and a
 * profile of the score call from separate timings (medians): the backbone
 * alone (aibox_ctx_infer on the PaDiM trunk), the grid (score with no map:
 * backbone + embedding + Mahalanobis) and the map (aibox_map_resize +
 * aibox_map_blur + max, which aibox_padim_score runs on one thread); with
 * --stages, the backbone's stem, max pool and stages too (cumulative cuts).
 *
 * Data: $AIBOX_DATA/magnetic-tile/MT_Free/Imgs (default --data
 * ../shared/data/magnetic-tile/MT_Free/Imgs, grayscale JPEG tiles of about
 * 200-500 px); the files are sorted by name and --fit + --images of them are
 * taken at an even stride, the first --fit for fitting (bench/peer_padim.py
 * picks the same ones). Without the data, synthetic grayscale JPEGs (encoded
 * here, so decoding is still timed) stand in and the output says so.
 *
 * Human lines go to stdout, or to stderr with --json, which prints one JSON
 * line of the results on stdout. Not a test: it checks that every call
 * succeeds and the scores are finite. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aibox.h"
#define BENCH_NAME "bench_padim"
#include "bench.h"

#define MAX_THREADS 4
#define MAX_BACKBONES 3

typedef struct {
    int threads[MAX_THREADS], n_threads;
    int images, fit, passes, batch, json, stages, half;
    char backbones[128];
    const char *data, *models;
} options;

/* Results of one backbone at one thread count (ms). */
typedef struct {
    int threads;
    e2e_times e2e; /* batch 1 */
    double batch_ms; /* per image, batch of o.batch */
    double backbone_ms, grid_ms, map_ms;
} tres;

typedef struct {
    char name[16], desc[96];
    int ran;
    char skipped[1100];
    int F, d, gw, gh;
    double fit_s;
    tres t[MAX_THREADS];
} bres;

/* ------------------------------------------------------------ backbones */
/* Builds the named backbone (0), or returns a reason it is skipped (1). */
static int build_backbone(const options *o, const char *name, aibox_model **m, bres *r)
{
    aibox_error err = {0};
    snprintf(r->name, sizeof r->name, "%s", name);
    if (!strcmp(name, "resnet18")) {
        resnet18_imagenet(m);
        snprintf(r->desc, sizeof r->desc, "ResNet-18 (preset, random weights), layer1-3");
        return 0;
    }
    const char *file = NULL, *desc = NULL;
    if (!strcmp(name, "mnv1")) file = "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite", desc = "MobileNet v1 1.0";
    else if (!strcmp(name, "mnv1_025")) file = "mobilenet_v1_0.25_224_quant.tflite", desc = "MobileNet v1 0.25";
    else die("unknown backbone '%s' (resnet18, mnv1, mnv1_025)", name);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", o->models, file);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(r->skipped, sizeof r->skipped, "%s absent", path);
        return 1;
    }
    fclose(f);
    check(aibox_import(m, path, NULL, &err), &err, path);
    snprintf(r->desc, sizeof r->desc, "%s (%s), stride 4/8/16", desc, file);
    return 0;
}

/* --stages: where the backbone's time goes. The trunk is cut after the stem
 * (the node before the first max pool, and the pool), then after each stage
 * ending at strides 4, 8, 16 (aibox_model_extract); each cut runs alone
 * (median of reps) and a stage costs the difference from the previous cut. */
static void stage_profile(const aibox_model *trunk, int th, const float *x, int reps)
{
    aibox_error err = {0};
    int cuts[8], nc = 0, mp = -1, ch, h, w;
    aibox_model_input_shape(trunk, &ch, &h, &w);
    for (int i = 1; i < aibox_model_node_count(trunk); i++)
        if (aibox_model_node_kind(trunk, i) == AIBOX_LAYER_MAXPOOL) {
            mp = i;
            break;
        }
    if (mp > 1) cuts[nc++] = mp - 1, cuts[nc++] = mp;
    else if (aibox_model_stride_node(trunk, 2) > 0) cuts[nc++] = aibox_model_stride_node(trunk, 2);
    for (int s = 4; s <= 16; s *= 2) {
        int node = aibox_model_stride_node(trunk, s);
        if (node > 0 && (!nc || node > cuts[nc - 1])) cuts[nc++] = node;
    }
    double prev = 0, *t = xmalloc(sizeof(double) * (size_t)reps);
    say("     stages, %d thread%s (cumulative cuts of the trunk, medians):", th, th > 1 ? "s" : "");
    for (int k = 0; k < nc; k++) {
        aibox_model *sub = NULL;
        aibox_ctx *c = NULL;
        check(aibox_model_extract(&sub, trunk, cuts[k], NULL, &err), &err, "aibox_model_extract");
        check(aibox_ctx_create(&c, sub, &(aibox_ctx_opts){.height = h, .width = w, .threads = th}, &err), &err, "stage context");
        check(aibox_ctx_freeze_weights(c, sub, &err), &err, "aibox_ctx_freeze_weights"); /* as PaDiM's own */
        for (int i = -2; i < reps; i++) {
            double a = now_ms();
            check(aibox_ctx_infer(c, sub, x, 1, &err), &err, "stage inference");
            if (i >= 0) t[i] = now_ms() - a;
        }
        double cum = quantile(t, reps, 0.5);
        int oc, oh, ow;
        aibox_model_node_shape(trunk, cuts[k], &oc, &oh, &ow);
        say("%s %s %dx%dx%d +%.2f", k ? "," : "", aibox_layer_kind_name(aibox_model_node_kind(trunk, cuts[k])), oc, oh,
            ow, cum - prev);
        prev = cum;
        aibox_ctx_free(&c);
        aibox_model_free(&sub);
    }
    say(" (total %.2f ms)\n", prev);
    free(t);
}

/* ------------------------------------------------------------ one backbone */
/* time_images' score call: batch 1 with a map and a score. */
typedef struct {
    aibox_padim_ctx *c;
    float *maps, *scores;
} scorer;

static float score_one(void *arg, const float *x)
{
    scorer *s = arg;
    aibox_error err = {0};
    check(aibox_padim_score(s->c, x, 1, NULL, s->maps, s->scores, &err), &err, "aibox_padim_score");
    return s->scores[0];
}

static void bench_backbone(const options *o, const char *name, blob *fit, blob *imgs, bres *r)
{
    aibox_error err = {0};
    aibox_model *bb = NULL;
    if (build_backbone(o, name, &bb, r)) {
        say("\n== %s: skipped (%s)\n", name, r->skipped);
        return;
    }
    r->ran = 1;
    int ch, h, w;
    aibox_model_input_shape(bb, &ch, &h, &w);
    size_t in_sz = (size_t)ch * h * w;

    /* Fit on the good tiles (timed only for information). */
    double t0 = now_ms();
    aibox_padim_opts po = {0};
    po.seed = 1;
    aibox_padim_fit *pf = NULL;
    aibox_padim *p = NULL;
    int fit_batch = 8;
    check(aibox_padim_fit_begin(&pf, bb, &po, fit_batch, 0, &err), &err, "aibox_padim_fit_begin");
    aibox_preproc pp;
    check(aibox_padim_fit_preproc(pf, &pp, &err), &err, "aibox_padim_fit_preproc");
    float *xb = xalloc_floats(in_sz * fit_batch);
    for (int i = 0; i < o->fit; i += fit_batch) {
        int nb = o->fit - i < fit_batch ? o->fit - i : fit_batch;
        for (int b = 0; b < nb; b++) decode_pre(&pp, &fit[i + b], xb + in_sz * b);
        check(aibox_padim_fit_add(pf, xb, nb, &err), &err, "aibox_padim_fit_add");
    }
    check(aibox_padim_fit_end(pf, &p, &err), &err, "aibox_padim_fit_end");
    aibox_padim_fit_free(&pf);
    aibox_model_free(&bb);
    check(aibox_padim_set_half(p, o->half, &err), &err, "aibox_padim_set_half"); /* the library's default is on */
    r->fit_s = (now_ms() - t0) / 1e3;
    aibox_padim_info(p, &r->gw, &r->gh, &r->d, NULL);
    aibox_model *trunk = aibox_padim_model(p);
    /* F: the channels of the three taps */
    {
        const int64_t *taps = NULL;
        int nt = 0;
        r->F = 0;
        if (!aibox_model_get_meta_ints(trunk, "aibox.padim.taps", &nt, &taps))
            for (int t = 0; t < nt; t++) {
                int c, th, tw;
                aibox_model_node_shape(trunk, (int)taps[t], &c, &th, &tw);
                r->F += c;
            }
    }
    say("\n== %s: %s\n   input %dx%dx%d, taps %d channels -> d = %d, grid %dx%d; fitted on %d images in %.1f s\n",
        r->name, r->desc, w, h, ch, r->F, r->d, r->gw, r->gh, o->fit, r->fit_s);
    say("   %-8s %9s %9s %9s %12s %9s %14s | %9s %9s %9s %9s\n", "threads", "e2e med", "e2e p90", "e2e min",
        "dec+pre med", "score med", "batch-N ms/img", "backbone", "grid", "maha+emb", "map");

    float *x = xalloc_floats(in_sz * o->batch), *maps = xalloc_floats((size_t)h * w * o->batch);
    float *grid = xalloc_floats((size_t)r->gw * r->gh);
    float scores[64];
    int nsamp = o->images * o->passes;
    int reps = 15;
    double *tt = xmalloc(sizeof(double) * (3 * reps + nsamp + 64));

    for (int ti = 0; ti < o->n_threads; ti++) {
        tres *R = &r->t[ti];
        int th = o->threads[ti];
        R->threads = th;
        aibox_padim_ctx *c = NULL;
        check(aibox_padim_ctx_create(&c, p, 1, th, &err), &err, "aibox_padim_ctx_create");
        time_images(&pp, imgs, o->images, o->passes, x, score_one, &(scorer){c, maps, scores}, name, &R->e2e);

        /* Profile of the score call, each part timed on its own, the three
         * interleaved round by round so a neighbour's burst hits them alike
         * (medians): the backbone alone, the grid (backbone + embedding +
         * Mahalanobis), the map (resize + blur + max). */
        aibox_ctx *bc = NULL;
        check(aibox_ctx_create(&bc, trunk, &(aibox_ctx_opts){.height = h, .width = w, .threads = th}, &err), &err, "backbone context");
        check(aibox_ctx_freeze_weights(bc, trunk, &err), &err, "aibox_ctx_freeze_weights"); /* as PaDiM's own */
        decode_pre(&pp, &imgs[0], x);
        double *tb = tt, *tg = tt + reps, *tm = tt + 2 * reps;
        for (int i = -2; i < reps; i++) { /* two warm-up rounds */
            aibox_error e2 = {0};
            double a = now_ms();
            check(aibox_ctx_infer(bc, trunk, x, 1, &err), &err, "backbone inference");
            double b = now_ms();
            check(aibox_padim_score(c, x, 1, grid, NULL, NULL, &err), &err, "aibox_padim_score (grid)");
            double g = now_ms();
            check(aibox_map_resize(grid, r->gw, r->gh, maps, w, h, &e2), &e2, "aibox_map_resize");
            check(aibox_map_blur(maps, w, h, 4.0f, &e2), &e2, "aibox_map_blur");
            float mx = maps[0];
            for (size_t q = 1; q < (size_t)h * w; q++) mx = maps[q] > mx ? maps[q] : mx;
            scores[0] = mx;
            double e = now_ms();
            if (i >= 0) tb[i] = b - a, tg[i] = g - b, tm[i] = e - g;
        }
        R->backbone_ms = quantile(tb, reps, 0.5);
        R->grid_ms = quantile(tg, reps, 0.5);
        R->map_ms = quantile(tm, reps, 0.5);
        aibox_ctx_free(&bc);
        aibox_padim_ctx_free(&c);
        if (o->stages) stage_profile(trunk, th, x, reps);

        /* Batch throughput: decode + preprocess o->batch images, one score call. */
        check(aibox_padim_ctx_create(&c, p, o->batch, th, &err), &err, "aibox_padim_ctx_create (batch)");
        int nbatches = (nsamp + o->batch - 1) / o->batch;
        if (nbatches < 4) nbatches = 4;
        for (int bi = -1, img = 0; bi < nbatches; bi++) { /* bi -1: warm-up */
            double a = now_ms();
            for (int b = 0; b < o->batch; b++, img++) decode_pre(&pp, &imgs[img % o->images], x + in_sz * b);
            check(aibox_padim_score(c, x, o->batch, NULL, maps, scores, &err), &err, "aibox_padim_score (batch)");
            if (bi >= 0) tt[bi] = (now_ms() - a) / o->batch;
        }
        R->batch_ms = quantile(tt, nbatches, 0.5);
        aibox_padim_ctx_free(&c);

        say("   %-8d %9.2f %9.2f %9.2f %12.2f %9.2f %14.2f | %9.2f %9.2f %9.2f %9.2f\n", th, R->e2e.med, R->e2e.p90,
            R->e2e.min, R->e2e.pre_med, R->e2e.score_med, R->batch_ms, R->backbone_ms, R->grid_ms,
            R->grid_ms - R->backbone_ms, R->map_ms);
    }
    aibox_free(x), aibox_free(maps), aibox_free(grid);
    free(tt);
    aibox_padim_free(&p);
}

/* ------------------------------------------------------------ main */
static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_padim [--threads 1,2] [--images N] [--fit N] [--passes N] [--batch N]\n"
            "                   [--backbones resnet18,mnv1,mnv1_025] [--data DIR] [--models DIR] [--stages]\n"
            "                   [--half] [--json]\n"
            "  --threads L    thread counts to measure, comma-separated (default 1,2)\n"
            "  --images N     timed images, read into memory first (default 50)\n"
            "  --fit N        images the PaDiM statistics are fitted on (default 16)\n"
            "  --passes N     passes over the timed images at batch 1 (default 1)\n"
            "  --batch N      batch of the throughput figure (default 8, at most 64)\n"
            "  --backbones L  resnet18, mnv1 (MobileNet v1 1.0), mnv1_025 (0.25); default all three\n"
            "  --data DIR     the good tiles (default $AIBOX_DATA/magnetic-tile/MT_Free/Imgs,\n"
            "                 AIBOX_DATA defaulting to ../shared/data); synthetic images if absent\n"
            "  --models DIR   the TFLite MobileNets (default $AIBOX_MODELS or ../shared/models/tflite)\n"
            "  --stages       also time the backbone cut after its stem, pool and each stage\n"
            "  --half         score with the half-precision factor (aibox_padim_set_half)\n"
            "  --json         one JSON line of results on stdout; human lines on stderr\n");
}

int main(int argc, char **argv)
{
    options o = {.threads = {1, 2}, .n_threads = 2, .images = 50, .fit = 16, .passes = 1, .batch = 8};
    snprintf(o.backbones, sizeof o.backbones, "resnet18,mnv1,mnv1_025");
    o.models = getenv("AIBOX_MODELS") ? getenv("AIBOX_MODELS") : "../shared/models/tflite";
    o.data = tiles_default_dir();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--threads")) {
            if (!v) die("--threads needs a list");
            char buf[64];
            snprintf(buf, sizeof buf, "%s", v);
            o.n_threads = 0;
            for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
                if (o.n_threads == MAX_THREADS) die("at most %d thread counts", MAX_THREADS);
                o.threads[o.n_threads++] = parse_pos("--threads", tok, 256);
            }
            if (!o.n_threads) die("--threads needs a list");
            i++;
        } else if (!strcmp(a, "--images")) o.images = parse_pos(a, v, 10000), i++;
        else if (!strcmp(a, "--fit")) o.fit = parse_pos(a, v, 10000), i++;
        else if (!strcmp(a, "--passes")) o.passes = parse_pos(a, v, 100), i++;
        else if (!strcmp(a, "--batch")) o.batch = parse_pos(a, v, 64), i++;
        else if (!strcmp(a, "--backbones")) {
            if (!v) die("--backbones needs a list");
            snprintf(o.backbones, sizeof o.backbones, "%s", v), i++;
        } else if (!strcmp(a, "--data")) {
            if (!v) die("--data needs a folder");
            o.data = v, i++;
        } else if (!strcmp(a, "--models")) {
            if (!v) die("--models needs a folder");
            o.models = v, i++;
        } else if (!strcmp(a, "--json")) o.json = 1;
        else if (!strcmp(a, "--stages")) o.stages = 1;
        else if (!strcmp(a, "--half")) o.half = 1;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        else { usage(stderr); die("unknown option '%s'", a); }
    }
    bench_human = o.json ? stderr : stdout;
    aibox_blas_setup();
    char load_before[64];
    snprintf(load_before, sizeof load_before, "%s", loadavg());

    /* The images: sorted names, an even stride, the first o.fit for fitting. */
    int nfiles = 0, need = o.fit + o.images;
    char **files = list_jpgs(o.data, &nfiles);
    int synthetic = nfiles < need;
    blob *all = synthetic ? synth_jpegs(need) : read_picked(o.data, files, nfiles, need, 0, NULL);
    free_names(files, nfiles);
    size_t bytes = 0;
    for (int k = o.fit; k < need; k++) bytes += all[k].len;

    say("libaibox %s; %s\n", aibox_version(), aibox_blas_info());
    say("PaDiM end-to-end per image: decode (from memory) + preprocess + backbone + Mahalanobis + map "
        "(bilinear to the input, blur sigma 4) + max\n");
    if (synthetic)
        say("images: SYNTHETIC (%s has %d JPEGs, %d needed): %d fit, %d timed JPEGs, %zu KB\n", o.data, nfiles, need,
            o.fit, o.images, bytes >> 10);
    else
        say("images: %s, %d fit + %d timed JPEGs (%zu KB) of %d, %d pass%s at batch 1\n", o.data, o.fit, o.images,
            bytes >> 10, nfiles, o.passes, o.passes > 1 ? "es" : "");
    say("load average before: %s\n", load_before);
    if (o.half) say("scoring with the half-precision factor (aibox_padim_set_half)\n");
    say("ms per image; profile columns: medians of separate runs of the score call's parts\n");

    bres res[MAX_BACKBONES];
    memset(res, 0, sizeof res);
    int nb = 0;
    char list[128];
    snprintf(list, sizeof list, "%s", o.backbones);
    char *save = NULL;
    for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (nb == MAX_BACKBONES) die("at most %d backbones", MAX_BACKBONES);
        bench_backbone(&o, tok, all, all + o.fit, &res[nb++]);
    }
    say("\nload average after: %s\n", loadavg());

    if (o.json) {
        printf("{\"bench\":\"bench_padim\",\"version\":\"%s\",\"blas_core\":\"%s\",\"images\":%d,\"fit\":%d,"
               "\"passes\":%d,\"batch\":%d,\"half\":%s,\"synthetic\":%s,\"load_before\":\"%s\",\"load_after\":\"%s\","
               "\"backbones\":[",
               aibox_version(), aibox_blas_core(), o.images, o.fit, o.passes, o.batch, o.half ? "true" : "false",
               synthetic ? "true" : "false",
               load_before, loadavg());
        for (int i = 0; i < nb; i++) {
            const bres *r = &res[i];
            printf("%s{\"name\":\"%s\",\"ran\":%s", i ? "," : "", r->name, r->ran ? "true" : "false");
            if (!r->ran) {
                printf(",\"skipped\":\"%s\"}", r->skipped);
                continue;
            }
            printf(",\"desc\":\"%s\",\"F\":%d,\"d\":%d,\"grid\":[%d,%d],\"fit_s\":%.2f,\"results\":[", r->desc, r->F,
                   r->d, r->gh, r->gw, r->fit_s);
            for (int t = 0; t < o.n_threads; t++) {
                const tres *R = &r->t[t];
                printf("%s{\"threads\":%d,\"e2e_ms\":%.3f,\"e2e_p90_ms\":%.3f,\"e2e_min_ms\":%.3f,"
                       "\"decode_pre_ms\":%.3f,\"score_ms\":%.3f,\"batch_ms_per_image\":%.3f,\"backbone_ms\":%.3f,"
                       "\"grid_ms\":%.3f,\"maha_embed_ms\":%.3f,\"map_ms\":%.3f}",
                       t ? "," : "", R->threads, R->e2e.med, R->e2e.p90, R->e2e.min, R->e2e.pre_med, R->e2e.score_med,
                       R->batch_ms, R->backbone_ms, R->grid_ms, R->grid_ms - R->backbone_ms, R->map_ms);
            }
            printf("]}");
        }
        printf("]}\n");
    }
    for (int k = 0; k < need; k++) blob_free(&all[k]);
    free(all);
    return 0;
}

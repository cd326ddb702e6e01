/* bench_autoencoder: end-to-end inference speed per image of the
 * convolutional auto-encoder anomaly model (include/aibox/autoencoder.h) —
 * JPEG decode, preprocessing, the network's forward pass, the residual map
 * (1 - SSIM or squared error), its blur and the image score (the map's max).
 *
 *   bench_autoencoder [--threads 1,2] [--images N] [--passes N] [--residual ssim[,l2]]
 *                     [--model FILE | --size S --channels N --width W --latent L] [--data DIR] [--json]
 *
 * The model: --model FILE (a trained auto-encoder .aibox, e.g. from
 * aibox-train autoencoder), or by default one fitted here for 1 epoch on 16
 * good tiles (not the timed ones) with the library's default options (size
 * 128, width 32, latent 16, seed 1) and as many channels as the first fit
 * image has (1 for these grey tiles, as aibox-train picks them; 1 for the
 * synthetic stand-ins too, which stb's JPEG writer stores as 3), unless
 * --size, --channels, --width or --latent say otherwise. The network's
 * weights do not change its speed, so a model trained for one epoch times
 * like one trained for fifty. The fit is timed for information only.
 *
 * Per residual (--residual, a comma-separated list; default the model's own,
 * ssim for the fitted one; another residual is the same network with its
 * metadata's "aibox.autoencoder.residual" changed, through a temporary file)
 * and thread count: --images tiles, read into memory beforehand, --passes
 * times each: aibox_image_decode from memory + aibox_preprocess, then
 * aibox_autoencoder_score with a map and a score, batch 1, one
 * aibox_autoencoder_ctx per thread count (after 3 warm-up images). Reports
 * the median, 90th percentile and minimum ms per image end to end and the
 * medians of the two parts, and a split of the score call from separate,
 * interleaved timings (medians): the network's forward pass alone
 * (aibox_ctx_infer on aibox_autoencoder_model_const in its own context,
 * weights frozen as the auto-encoder's own context does), the map from its
 * output (the residual — aibox_ssim_map, or the squared difference summed
 * over the channels — then aibox_map_blur with the model's sigma and the
 * max; on one thread, as aibox_autoencoder_score runs it) and the whole
 * score call beside them.
 *
 * Data: $AIBOX_DATA/magnetic-tile/MT_Free/Imgs (default --data
 * ../shared/data/magnetic-tile/MT_Free/Imgs), the files sorted by name; the
 * timed images are bench_padim's and bench_patchcore's (bench.h's source:
 * of 16 + --images files taken at an even stride, all but the first 16), the
 * fit images 16 of the other files at an even stride (bench_patchcore's
 * rule for a fit of 16). Without enough files, synthetic grayscale JPEGs
 * (encoded here, so decoding is still timed) stand in and the output says so.
 *
 * Human lines go to stdout, or to stderr with --json, which prints one JSON
 * line of the results on stdout. Not a test: it checks that every call
 * succeeds and the scores are finite. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aibox.h"
#define BENCH_NAME "bench_autoencoder"
#include "bench.h"

#define MAX_THREADS 4
#define AE_FIT 16     /* good tiles the default model is fitted on */
#define AE_EPOCHS 1   /* its epochs: the weights do not change the speed */
#define TARGET_MS 10  /* the target for the auto-encoder, end to end */
#define RESIDUAL_KEY "aibox.autoencoder.residual"

typedef struct {
    int threads[MAX_THREADS], n_threads;
    aibox_ae_residual residuals[2];
    int n_residuals; /* 0: the model's own */
    int images, passes, json;
    int size, channels, width, latent; /* the fitted model's; 0: the library's defaults */
    const char *model, *data;
} options;

typedef struct { /* one residual at one thread count (ms) */
    aibox_ae_residual residual;
    int threads;
    e2e_times e2e; /* batch 1 */
    double forward_ms, map_ms, call_ms; /* the split: forward alone, residual + blur + max, the whole call */
} tres;

static const char *residual_name(aibox_ae_residual r) { return r == AIBOX_AE_L2 ? "l2" : "ssim"; }

/* ------------------------------------------------------------ the model */
/* Fits the default model (see the header) on AE_FIT images; *fit_s its time. */
static aibox_autoencoder *fit_default(const options *o, const source *src, int threads, aibox_ae_residual residual,
                                      double *fit_s)
{
    aibox_error err = {0};
    blob *fit = fit_images(src, AE_FIT);
    int channels = o->channels;
    if (!channels && src->synthetic) /* stand-ins for the grey tiles, though stb's JPEG writer stores 3 channels */
        channels = 1;
    if (!channels) { /* as aibox-train: 1 when the first good image is grey, else 3 */
        aibox_image im = {0};
        check(aibox_image_decode(&im, fit[0].bytes, fit[0].len, fit[0].name, 0, &err), &err, "decode");
        channels = im.channels <= 2 ? 1 : 3;
        aibox_image_free(&im);
    }
    double t0 = now_ms();
    aibox_autoencoder_opts ao = {.size = o->size, .channels = channels, .width = o->width, .latent = o->latent,
                                 .epochs = AE_EPOCHS, .residual = residual, .seed = 1};
    aibox_autoencoder_fit *f = NULL;
    aibox_autoencoder *a = NULL;
    check(aibox_autoencoder_fit_begin(&f, &ao, threads, &err), &err, "aibox_autoencoder_fit_begin");
    aibox_preproc pp;
    check(aibox_autoencoder_fit_preproc(f, &pp, &err), &err, "aibox_autoencoder_fit_preproc");
    float *x = xalloc_floats((size_t)pp.channels * pp.height * pp.width);
    for (int i = 0; i < AE_FIT; i++) {
        decode_pre(&pp, &fit[i], x);
        check(aibox_autoencoder_fit_add(f, x, 1, &err), &err, "aibox_autoencoder_fit_add");
    }
    aibox_free(x);
    check(aibox_autoencoder_fit_end(f, &a, &err), &err, "aibox_autoencoder_fit_end");
    aibox_autoencoder_fit_free(&f);
    *fit_s = (now_ms() - t0) / 1e3;
    free_fit_images(src, fit, AE_FIT);
    return a;
}

/* a with another residual: its network and metadata, the residual changed,
 * saved to a temporary file and loaded back (the residual is fixed when an
 * auto-encoder is fitted or loaded). a's metadata is restored. */
static aibox_autoencoder *with_residual(aibox_autoencoder *a, aibox_ae_residual r)
{
    aibox_error err = {0};
    aibox_ae_residual own;
    aibox_autoencoder_info(a, &own, NULL, NULL, NULL);
    const char *tmp = getenv("TMPDIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/bench_autoencoder.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0) die("cannot create a temporary file %s", path);
    close(fd);
    aibox_model *net = aibox_autoencoder_model(a);
    check(aibox_model_set_meta_str(net, RESIDUAL_KEY, residual_name(r), &err), &err, "aibox_model_set_meta_str");
    aibox_status s = aibox_autoencoder_save(a, path, &err);
    aibox_autoencoder *b = NULL;
    if (!s) s = aibox_autoencoder_load(&b, path, &err);
    unlink(path);
    check(s, &err, path);
    check(aibox_model_set_meta_str(net, RESIDUAL_KEY, residual_name(own), &err), &err, "aibox_model_set_meta_str");
    return b;
}

/* The network's width (the first convolution's filters) and latent
 * channels (the 1 x 1 convolution's: the bottleneck); 0 when not found. */
static void ae_shape(aibox_autoencoder *a, int *width, int *latent)
{
    aibox_model *net = aibox_autoencoder_model(a);
    *width = *latent = 0;
    for (int i = 1; i < aibox_model_node_count(net); i++) {
        if (aibox_model_node_kind(net, i) != AIBOX_LAYER_CONV2D) continue;
        int in, ic, oc, h, w;
        size_t count = 0;
        aibox_model_node_shape(net, i, &oc, &h, &w);
        if (!*width) *width = oc;
        if (aibox_model_node_inputs(net, i, &in, 1) != 1) continue;
        aibox_model_node_shape(net, in, &ic, &h, &w);
        if (aibox_model_node_param(net, i, 0, &count) && count == (size_t)oc * ic) {
            *latent = oc;
            break;
        }
    }
}

/* ------------------------------------------------------------ the bench */
/* time_images' score call: batch 1 with a map and a score. */
typedef struct {
    aibox_autoencoder_ctx *c;
    float *maps;
} scorer;

static float score_one(void *arg, const float *x)
{
    scorer *s = arg;
    aibox_error err = {0};
    float score = 0;
    check(aibox_autoencoder_score(s->c, x, 1, NULL, s->maps, &score, &err), &err, "aibox_autoencoder_score");
    return score;
}

/* Times a (with its residual) at each thread count into r[0 .. n_threads). */
static void bench_residual(const options *o, const aibox_autoencoder *a, const blob *imgs, tres *r)
{
    aibox_error err = {0};
    const aibox_model *net = aibox_autoencoder_model_const(a);
    aibox_ae_residual residual;
    aibox_autoencoder_info(a, &residual, NULL, NULL, NULL);
    aibox_preproc pp;
    check(aibox_preproc_from_model(&pp, net, &err), &err, "aibox_preproc_from_model");
    int ch, h, w;
    aibox_model_input_shape(net, &ch, &h, &w);
    float *x = xalloc_floats((size_t)ch * h * w), *maps = xalloc_floats((size_t)h * w);
    float *scratch = xalloc_floats((size_t)6 * h * w + w + h); /* aibox_ssim_map's */
    float score = 0;
    double sigma = 4; /* the blur's, as aibox_autoencoder_load reads it */
    aibox_model_get_meta_float(net, "aibox.autoencoder.blur_sigma", &sigma);
    say("\n== residual %s\n", residual_name(residual));
    say("   %-8s %9s %9s %9s %12s %9s | %9s %12s %9s\n", "threads", "e2e med", "e2e p90", "e2e min", "dec+pre med",
        "score med", "forward", "res+blur+max", "call");
    for (int ti = 0; ti < o->n_threads; ti++) {
        tres *R = &r[ti];
        int th = o->threads[ti];
        R->residual = residual, R->threads = th;
        aibox_autoencoder_ctx *c = NULL;
        check(aibox_autoencoder_ctx_create(&c, a, 1, th, &err), &err, "aibox_autoencoder_ctx_create");
        time_images(&pp, imgs, o->images, o->passes, x, score_one, &(scorer){c, maps}, residual_name(residual),
                    &R->e2e);

        /* Split of the score call, the parts timed on their own and
         * interleaved round by round so a neighbour's burst hits them alike
         * (medians): the forward pass alone; the map from its output (the
         * residual: aibox_ssim_map, or the squared difference summed over
         * the channels; aibox_map_blur; the max), on one thread as
         * aibox_autoencoder_score runs it; the whole score call. About 3 s
         * at most, 5 to 25 rounds, after two warm-up rounds. */
        int reps = (int)(3000.0 / (2.2 * R->e2e.score_med + 1e-3));
        reps = reps < 5 ? 5 : reps > 25 ? 25 : reps;
        double *tf = xmalloc(sizeof(double) * 3 * reps), *tm = tf + reps, *tc = tf + 2 * reps;
        aibox_ctx *fc = NULL;
        check(aibox_ctx_create(&fc, net, &(aibox_ctx_opts){.height = h, .width = w, .threads = th}, &err), &err,
              "forward context");
        /* frozen weights, as the auto-encoder's own context */
        check(aibox_ctx_freeze_weights(fc, net, &err), &err, "aibox_ctx_freeze_weights");
        decode_pre(&pp, &imgs[0], x);
        size_t px = (size_t)h * w;
        for (int i = -2; i < reps; i++) {
            double t0 = now_ms();
            check(aibox_ctx_infer(fc, net, x, 1, &err), &err, "forward");
            double t1 = now_ms();
            const float *y = aibox_ctx_output(fc, NULL, NULL, NULL);
            if (residual == AIBOX_AE_SSIM)
                check(aibox_ssim_map(x, y, ch, w, h, maps, scratch, &err), &err, "aibox_ssim_map");
            else
                for (size_t q = 0; q < px; q++) {
                    float d = 0;
                    for (int k = 0; k < ch; k++) d += (x[px * k + q] - y[px * k + q]) * (x[px * k + q] - y[px * k + q]);
                    maps[q] = d;
                }
            if (sigma > 0) check(aibox_map_blur(maps, w, h, (float)sigma, &err), &err, "aibox_map_blur");
            float mx = maps[0];
            for (size_t q = 1; q < px; q++) mx = maps[q] > mx ? maps[q] : mx;
            double t2 = now_ms();
            check(aibox_autoencoder_score(c, x, 1, NULL, maps, &score, &err), &err, "aibox_autoencoder_score");
            double t3 = now_ms();
            if (!isfinite(mx) || !isfinite(score)) die("non-finite score in the split");
            if (i >= 0) tf[i] = t1 - t0, tm[i] = t2 - t1, tc[i] = t3 - t2;
        }
        R->forward_ms = quantile(tf, reps, 0.5);
        R->map_ms = quantile(tm, reps, 0.5);
        R->call_ms = quantile(tc, reps, 0.5);
        free(tf);
        aibox_ctx_free(&fc);
        aibox_autoencoder_ctx_free(&c);
        say("   %-8d %9.2f %9.2f %9.2f %12.2f %9.2f | %9.2f %12.2f %9.2f   target <= %d ms\n", th, R->e2e.med,
            R->e2e.p90, R->e2e.min, R->e2e.pre_med, R->e2e.score_med, R->forward_ms, R->map_ms, R->call_ms, TARGET_MS);
    }
    aibox_free(x), aibox_free(maps), aibox_free(scratch);
}

/* ------------------------------------------------------------ main */
static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_autoencoder [--threads 1,2] [--images N] [--passes N] [--residual ssim[,l2]]\n"
            "                         [--model FILE | --size S --channels N --width W --latent L]\n"
            "                         [--data DIR] [--json]\n"
            "  --threads L      thread counts to measure, comma-separated (default 1,2)\n"
            "  --images N       timed images, read into memory first (default 50; bench_padim's)\n"
            "  --passes N       passes over the timed images at batch 1 (default 1)\n"
            "  --residual L     ssim, l2 or ssim,l2 (default: the model's own; ssim for the fitted one)\n"
            "  --model FILE     a trained auto-encoder .aibox (aibox-train autoencoder); default: one\n"
            "                   fitted here for %d epoch on %d other good tiles (the speed does not\n"
            "                   depend on the training)\n"
            "  --size S         the fitted model's input side (default the library's, 128)\n"
            "  --channels N     its channels, 1 or 3 (default: the first fit image's; 1 for grey tiles)\n"
            "  --width W        its width (default 32)\n"
            "  --latent L       its bottleneck channels (default 16)\n"
            "  --data DIR       the good tiles (default $AIBOX_DATA/magnetic-tile/MT_Free/Imgs,\n"
            "                   AIBOX_DATA defaulting to ../shared/data); synthetic images if too few\n"
            "  --json           one JSON line of results on stdout; human lines on stderr\n",
            AE_EPOCHS, AE_FIT);
}

static int parse_residuals(const char *s, aibox_ae_residual *out)
{
    if (!s) die("--residual needs ssim, l2 or ssim,l2");
    char buf[64];
    snprintf(buf, sizeof buf, "%s", s);
    int n = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (n == 2) die("--residual: at most two (ssim,l2)");
        if (!strcmp(tok, "ssim")) out[n++] = AIBOX_AE_SSIM;
        else if (!strcmp(tok, "l2")) out[n++] = AIBOX_AE_L2;
        else die("--residual: '%s' is neither ssim nor l2", tok);
    }
    if (!n) die("--residual needs ssim, l2 or ssim,l2");
    return n;
}

/* s as a JSON string (quotes and backslashes escaped; control characters dropped). */
static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++)
        if (*s == '"' || *s == '\\') putchar('\\'), putchar(*s);
        else if ((unsigned char)*s >= 0x20) putchar(*s);
    putchar('"');
}

int main(int argc, char **argv)
{
    options o = {.threads = {1, 2}, .n_threads = 2, .images = 50, .passes = 1};
    o.data = tiles_default_dir();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--threads")) o.n_threads = parse_list(a, v, o.threads, NULL, MAX_THREADS, 256), i++;
        else if (!strcmp(a, "--images")) o.images = parse_pos(a, v, 10000), i++;
        else if (!strcmp(a, "--passes")) o.passes = parse_pos(a, v, 100), i++;
        else if (!strcmp(a, "--residual")) o.n_residuals = parse_residuals(v, o.residuals), i++;
        else if (!strcmp(a, "--size")) o.size = parse_pos(a, v, 1024), i++;
        else if (!strcmp(a, "--channels")) o.channels = parse_pos(a, v, 3), i++;
        else if (!strcmp(a, "--width")) o.width = parse_pos(a, v, 1024), i++;
        else if (!strcmp(a, "--latent")) o.latent = parse_pos(a, v, 4096), i++;
        else if (!strcmp(a, "--model")) {
            if (!v) die("--model needs a file");
            o.model = v, i++;
        } else if (!strcmp(a, "--data")) {
            if (!v) die("--data needs a folder");
            o.data = v, i++;
        } else if (!strcmp(a, "--json")) o.json = 1;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        else { usage(stderr); die("unknown option '%s'", a); }
    }
    if (o.model && (o.size || o.channels || o.width || o.latent))
        die("--size, --channels, --width and --latent shape the fitted model, not a --model file");
    if (o.channels == 2) die("--channels must be 1 or 3");
    int max_threads = 0;
    for (int i = 0; i < o.n_threads; i++) max_threads = o.threads[i] > max_threads ? o.threads[i] : max_threads;
    bench_human = o.json ? stderr : stdout;
    aibox_blas_setup();
    char load_before[64];
    snprintf(load_before, sizeof load_before, "%s", loadavg());

    source src;
    source_open(&src, o.data, o.images, o.model ? 0 : AE_FIT);
    size_t bytes = 0;
    for (int k = 0; k < o.images; k++) bytes += src.timed[k].len;

    /* The model */
    aibox_error err = {0};
    aibox_autoencoder *a = NULL;
    double fit_s = 0;
    if (o.model) check(aibox_autoencoder_load(&a, o.model, &err), &err, o.model);
    else a = fit_default(&o, &src, max_threads, o.n_residuals ? o.residuals[0] : AIBOX_AE_SSIM, &fit_s);
    const aibox_model *net = aibox_autoencoder_model_const(a);
    aibox_ae_residual own;
    long trained_on = 0;
    int epochs = 0, C, S, Sw, width, latent;
    double loss = 0, sigma = 4;
    aibox_autoencoder_info(a, &own, &trained_on, &epochs, &loss);
    aibox_model_input_shape(net, &C, &S, &Sw);
    aibox_model_get_meta_float(net, "aibox.autoencoder.blur_sigma", &sigma);
    size_t params = aibox_model_param_count(net);
    ae_shape(a, &width, &latent);
    if (!o.n_residuals) o.residuals[0] = own, o.n_residuals = 1;

    say("libaibox %s; %s\n", aibox_version(), aibox_blas_info());
    if (o.model)
        say("auto-encoder %s: %d x %d x %d, width %d, latent %d, %zu parameters; trained %d epoch%s on %ld images "
            "(its residual %s)\n",
            o.model, C, S, Sw, width, latent, params, epochs, epochs == 1 ? "" : "s", trained_on, residual_name(own));
    else
        say("auto-encoder fitted here: %d x %d x %d, width %d, latent %d, %zu parameters; %d epoch on %d good tiles "
            "in %.1f s on %d thread%s (loss %.4f) -- the speed does not depend on how long it was trained\n",
            C, S, Sw, width, latent, params, AE_EPOCHS, AE_FIT, fit_s, max_threads,
            max_threads > 1 ? "s" : "", loss);
    say("end to end per image: decode (from memory) + preprocess (to %d x %d x %d) + forward + residual map + blur "
        "(sigma %g) + max; the map part runs on one thread\n",
        C, S, Sw, sigma);
    if (src.synthetic)
        say("images: SYNTHETIC (%s has %d JPEGs, %d + %d needed): %d timed JPEGs (%zu KB)%s\n", o.data, src.nfiles,
            PADIM_FIT + o.images, o.model ? 0 : AE_FIT, o.images, bytes >> 10,
            o.model ? "" : ", the fit from others; grey stand-ins: a 1-channel network unless --channels 3");
    else
        say("images: %s, %d timed JPEGs (%zu KB; bench_padim's and bench_patchcore's) of %d, %d pass%s at batch 1%s\n",
            o.data, o.images, bytes >> 10, src.nfiles, o.passes, o.passes > 1 ? "es" : "",
            o.model ? "" : "; the fit's from the other files at an even stride");
    say("target: <= %d ms per image end to end (the issue's target for the auto-encoder)\n", TARGET_MS);
    say("load average before: %s\n", load_before);
    say("ms per image; split columns: medians of separate, interleaved runs of the forward pass alone, of the map "
        "from its output (residual + blur + max, one thread) and of the whole score call\n");

    tres res[2][MAX_THREADS];
    memset(res, 0, sizeof res);
    for (int ri = 0; ri < o.n_residuals; ri++) {
        aibox_autoencoder *b = o.residuals[ri] == own ? a : with_residual(a, o.residuals[ri]);
        bench_residual(&o, b, src.timed, res[ri]);
        if (b != a) aibox_autoencoder_free(&b);
    }
    say("\nload average after: %s\n", loadavg());

    if (o.json) {
        printf("{\"bench\":\"bench_autoencoder\",\"version\":\"%s\",\"blas_core\":\"%s\",\"images\":%d,\"passes\":%d,"
               "\"synthetic\":%s,\"load_before\":\"%s\",\"load_after\":\"%s\",\"target_ms\":%d,\"model\":{\"file\":",
               aibox_version(), aibox_blas_core(), o.images, o.passes, src.synthetic ? "true" : "false", load_before,
               loadavg(), TARGET_MS);
        if (o.model) json_str(o.model);
        else printf("null");
        printf(",\"channels\":%d,\"size\":%d,\"width\":%d,\"latent\":%d,\"params\":%zu,\"epochs\":%d,"
               "\"fit_images\":%ld,\"blur_sigma\":%g",
               C, S, width, latent, params, epochs, trained_on, sigma);
        if (!o.model) printf(",\"fit_s\":%.3f", fit_s);
        printf("},\"results\":[");
        for (int ri = 0, k = 0; ri < o.n_residuals; ri++)
            for (int t = 0; t < o.n_threads; t++, k++) {
                const tres *R = &res[ri][t];
                printf("%s{\"residual\":\"%s\",\"threads\":%d,\"e2e_ms\":%.3f,\"e2e_p90_ms\":%.3f,\"e2e_min_ms\":%.3f,"
                       "\"decode_pre_ms\":%.3f,\"score_ms\":%.3f,\"forward_ms\":%.3f,\"score_call_ms\":%.3f,"
                       "\"map_ms\":%.3f}",
                       k ? "," : "", residual_name(R->residual), R->threads, R->e2e.med, R->e2e.p90, R->e2e.min,
                       R->e2e.pre_med, R->e2e.score_med, R->forward_ms, R->call_ms, R->map_ms);
            }
        printf("]}\n");
    }
    aibox_autoencoder_free(&a);
    source_close(&src, o.images);
    return 0;
}

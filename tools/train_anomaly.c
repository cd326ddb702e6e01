/* aibox-train padim|patchcore|autoencoder: fit an anomaly model on a folder of good
 * parts (aibox_detector_fit_folder does the work; this parses, calls and
 * prints). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aibox.h"
#include "cli.h"
#include "train_anomaly.h"

static const char usage_padim[] =
    "usage: aibox-train padim GOOD_DIR -o MODEL.aibox --backbone FILE [options]\n"
    "Fits a PaDiM anomaly detector (per-patch Gaussian statistics of CNN features) on images of\n"
    "good parts only (GOOD_DIR and its sub-folders;\n"
    "a PNG beside an image of the same name is its mask, not a sample). A seeded part of the\n"
    "good images is held out to set the threshold; everything inference needs is stored in\n"
    "the model (aibox-infer -m MODEL.aibox then prints scores, verdicts and defect regions).\n"
    "%s%s%s"
    "  --layers LIST          feature taps by stride (default 4,8,16: ResNet's layer1-3)\n"
    "  --dims D               kept dimensions (default 100, or all channels if fewer)\n"
    "  --projection P         random (default: a seeded channel subset, as PaDiM) or\n"
    "                         orthogonal (a seeded semi-orthogonal projection, Kim et al.)\n"
    "  --reg X                added to each covariance's diagonal (default 0.01)\n"
    "  --float32              score with the float32 factors (default: a half-precision copy on\n"
    "                         CPUs with F16C, half the memory traffic, distances within ~1e-3;\n"
    "                         the file keeps float32 either way)\n"
    "  --seed N               seed of the hold-out, channel subset and projection (default 1)\n"
    "%s%s"
    "Memory does not grow with the number of images (per-patch sums are streamed).\n"
    "Exit status: 0 fitted, 2 bad usage or data, 3 the backbone or the fit failed.\n";

static const char usage_patchcore[] =
    "usage: aibox-train patchcore GOOD_DIR -o MODEL.aibox --backbone FILE [options]\n"
    "Fits a PatchCore anomaly detector (a memory bank of locally aware patch features, greedy\n"
    "coreset subsampling, nearest-neighbour anomaly maps; Roth et al. 2022) on images of good\n"
    "parts only (GOOD_DIR and its sub-folders; a PNG beside an image of the same name is its\n"
    "mask, not a sample). A seeded part of the good images is held out to set the threshold;\n"
    "everything inference needs, the memory bank included, is stored in the model.\n"
    "%s%s%s"
    "  --layers LIST          feature taps by stride (default 8,16: ResNet's layer2-3)\n"
    "  --coreset F            share of the patch features kept in the memory bank (default 0.1;\n"
    "                         1 keeps all)\n"
    "  --dims D               average the concatenated channels down to D (default: keep all)\n"
    "  --proj-dims K          random projection used to choose the coreset (default 128)\n"
    "  --neighbours B         image score re-weighting over B bank neighbours (default 9; 1: none)\n"
    "  --bank TYPE            how the model file stores the memory bank: f32 (default) or f16\n"
    "                         (IEEE half precision: the bank takes half the bytes; it is rounded\n"
    "                         to 11 significant bits before the threshold is set, scoring stays\n"
    "                         float32; 'bank' in the summary gives both sizes)\n"
    "  --seed N               seed of the hold-out, the first coreset centre and the projection\n"
    "                         (default 1)\n"
    "%s%s"
    "Memory: the features of every fitted image are held until the coreset is chosen\n"
    "(4 x images x patches x channels bytes; 'fit_state_mb' in the summary).\n"
    "Exit status: 0 fitted, 2 bad usage or data, 3 the backbone or the fit failed.\n";

static const char usage_autoencoder[] =
    "usage: aibox-train autoencoder GOOD_DIR -o MODEL.aibox [options]\n"
    "Trains a convolutional auto-encoder (Bergmann et al. 2019: 4x4 stride-2 convolutions,\n"
    "LeakyReLU 0.2, a bottleneck, upsampling back) with Adam to reconstruct images of good\n"
    "parts only (GOOD_DIR and its sub-folders; a PNG beside an image of the same name is its\n"
    "mask, not a sample); the anomaly map is the residual between an image and its\n"
    "reconstruction. No backbone is needed. A seeded part of the good images is held out to\n"
    "set the threshold; everything inference needs is stored in the model.\n"
    "%s%s"
    "  --size S               network input side in pixels, a multiple of 16 (default 128)\n"
    "  --channels N           1 (grey) or 3 (default: 1 if the first good image is grey, else 3)\n"
    "  --width W              filters of the first layers (default 32; the widest have 4 W)\n"
    "  --latent L             bottleneck channels at 1/16 of the size (default 16)\n"
    "  --epochs N             passes over the good images (default 50)\n"
    "  --batch N              images per Adam step (default 16)\n"
    "  --lr X                 Adam's learning rate (default 0.0002)\n"
    "  --residual R           ssim (default: 1 - SSIM, 11x11 window, as Bergmann) or l2\n"
    "  --augment LIST         training augmentations (default flip,rotation,crop; 'none', or\n"
    "                         names from: brightness contrast flip hue saturation jpeg rotation\n"
    "                         blur crop shear zoom)\n"
    "  --augment-p P          probability of chaining one more augmentation (default 0.6)\n"
    "  --seed N               seed of the hold-out, the weights, the order and the augmentations\n"
    "                         (default 1)\n"
    "%s"
    "Memory: the good images are kept at the network's size (channels x S x S bytes each).\n"
    "Exit status: 0 fitted, 2 bad usage or data, 3 the fit failed.\n";

static const char usage_out[] =
    "  -o, --output FILE      the model; an existing FILE is replaced, atomically (on failure\n"
    "                         or interruption the old file stays)\n";
static const char usage_backbone[] =
    "  --backbone FILE        a pretrained CNN: TensorFlow Lite, safetensors (torchvision\n"
    "                         ResNet) or .aibox; its preprocessing is used and stored\n";
static const char usage_common[] =
    "  --holdout F            fraction of the good images held out for the threshold (default 0.2)\n"
    "  --threshold RULE       max (default: just above the largest held-out score), p99, sigma:K\n"
    "                         (mean + K standard deviations), f1 (needs --abnormal-dir) or a number\n"
    "  --abnormal-dir DIR     defect examples (optional): the F1-optimal image threshold is\n"
    "                         computed and stored too; with masks (beside the images or in\n"
    "                         --mask-dir) also the F1-optimal pixel threshold for regions\n"
    "  --mask-dir DIR         masks named STEM.png or STEM_mask.png\n"
    "  --sigma X              anomaly-map blur (default 4, as Anomalib; 0: none)\n"
    "  --tile SIDE            tiling for large or elongated images: resize keeping the aspect\n"
    "                         ratio to a short side of SIDE pixels (at least the model's input\n"
    "                         side) and fit and score overlapping tiles of the input size; maps\n"
    "                         are stitched at that size, the score is the largest tile's\n"
    "                         (default: none, the whole image resized to the input size)\n"
    "  --tile-overlap F       least overlap of neighbouring tiles, a share of a tile (default 0.25)\n";

static const char usage_batch[] = "  --batch N              images per backbone pass (default 8)\n";
static const char usage_tail[] =
    "  --threads N            default: $AIBOX_THREADS or all CPUs\n"
    "  --max-pixels N         skip images whose header announces more pixels (default 100000000)\n"
    "  --strict               fail on the first unreadable image instead of skipping it\n"
    "  --quiet                no progress output\n";

typedef struct options {
    const char *good, *out, *backbone, *rule, *prog;
    aibox_anomaly_method method;
    aibox_padim_opts padim;
    aibox_patchcore_opts pc;
    aibox_autoencoder_opts ae;
    aibox_fit_opts fit;
    int quiet;
} options;

/* The skipped images, for the summary (and, unless quiet, stderr). */
typedef struct skips {
    char **file, **why;
    int n, cap, quiet;
    const char *prog;
} skips;

static void on_skip(void *user, const char *path, const aibox_error *e)
{
    skips *s = user;
    if (!s->quiet) fprintf(stderr, "%s: skipping %s\n", s->prog, e->msg);
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 16;
        char **f = realloc(s->file, sizeof *f * (size_t)cap), **w = f ? realloc(s->why, sizeof *w * (size_t)cap) : NULL;
        if (f) s->file = f;
        if (!f || !w) return;
        s->why = w, s->cap = cap;
    }
    s->file[s->n] = strdup(path), s->why[s->n] = strdup(e->msg);
    if (s->file[s->n] && s->why[s->n]) s->n++;
}

static void on_progress(void *user, const char *phase, int done, int total)
{
    const skips *s = user;
    if (s->quiet || !isatty(2)) return;
    fprintf(stderr, "\r%s: %s %d/%d%s", s->prog, !strcmp(phase, "fit") ? "fitting" : "scoring", done, total,
            done == total ? "\n" : "");
}

/* One line per auto-encoder epoch: training takes minutes. */
static void on_epoch(void *user, int epoch, int epochs, double loss)
{
    const skips *s = user;
    if (!s->quiet) fprintf(stderr, "%s: epoch %d/%d, loss %.6g\n", s->prog, epoch, epochs, loss);
}

/* A comma-separated list of 1 to max strides into strides; the count, or 0. */
static int parse_layers(const char *s, int *strides, int max)
{
    int n = 0;
    char *copy = strdup(s), *save = NULL;
    int ok = copy != NULL;
    for (char *tok = copy ? strtok_r(copy, ",", &save) : NULL; tok && ok; tok = strtok_r(NULL, ",", &save)) {
        char *end;
        long v = strtol(tok, &end, 10);
        ok = !*end && v >= 1 && v <= 1024 && n < max;
        if (ok) strides[n++] = (int)v;
    }
    free(copy);
    return ok ? n : 0;
}

/* Options into o; 0 to go on, else the exit status (help: 0 with *done). */
static int parse(int argc, char **argv, options *o, int *done)
{
    const char *prog = o->prog;
    long dims = 0, batch = 0, seed = 1, threads = 0, max_pixels = 100000000, proj = 128, nb = 9;
    long size = 128, channels = 0, width = 32, latent = 16, epochs = 50;
    double holdout = 0.2, reg = 0.01, sigma = 4, coreset = 0.1, lr = 2e-4, aug_p = AIBOX_AUG_P_DEFAULT;
    double overlap = 0.25;
    long tile = 0;
    int n_taps = 0, strides[AIBOX_PADIM_MAX_TAPS];
    int pc = o->method == AIBOX_ANOMALY_PATCHCORE, ae = o->method == AIBOX_ANOMALY_AUTOENCODER, pd = !pc && !ae;
    unsigned augment = 0;
    aibox_error err = {0};
    o->rule = "max";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            if (ae) printf(usage_autoencoder, usage_out, usage_common, usage_tail);
            else printf(pc ? usage_patchcore : usage_padim, usage_out, usage_backbone, usage_common, usage_batch,
                        usage_tail);
            return *done = 1, 0;
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && v) o->out = v, i++;
        else if (!ae && !strcmp(a, "--backbone") && v) o->backbone = v, i++;
        else if (!strcmp(a, "--threshold") && v) o->rule = v, i++;
        else if (!strcmp(a, "--abnormal-dir") && v) o->fit.abnormal_dir = v, i++;
        else if (!strcmp(a, "--mask-dir") && v) o->fit.mask_dir = v, i++;
        else if (!ae && !strcmp(a, "--layers") && v) {
            if (!(ok = (n_taps = parse_layers(v, strides, AIBOX_PADIM_MAX_TAPS)) > 0))
                fprintf(stderr, "%s: --layers needs 1 to %d strides such as %s (got '%s')\n", prog,
                        AIBOX_PADIM_MAX_TAPS, pc ? "8,16" : "4,8,16", v);
            i++;
        } else if (pd && !strcmp(a, "--projection") && v) {
            if (!strcmp(v, "random")) o->padim.projection = AIBOX_PADIM_RANDOM;
            else if (!strcmp(v, "orthogonal")) o->padim.projection = AIBOX_PADIM_ORTHOGONAL;
            else ok = 0, fprintf(stderr, "%s: --projection must be random or orthogonal (got '%s')\n", prog, v);
            i++;
        } else if (ae && !strcmp(a, "--residual") && v) {
            if (!strcmp(v, "ssim")) o->ae.residual = AIBOX_AE_SSIM;
            else if (!strcmp(v, "l2")) o->ae.residual = AIBOX_AE_L2;
            else ok = 0, fprintf(stderr, "%s: --residual must be ssim or l2 (got '%s')\n", prog, v);
            i++;
        } else if (ae && !strcmp(a, "--augment") && v) {
            if (!(ok = !aibox_augment_parse(v, &augment, &err))) fprintf(stderr, "%s: --augment: %s\n", prog, err.msg);
            if (ok && !augment) augment = AIBOX_AE_NO_AUGMENT;
            i++;
        } else if (!ae && !strcmp(a, "--dims")) ok = cli_int(prog, a, v, 1, 4096, &dims), i++;
        else if (!strcmp(a, "--batch")) ok = cli_int(prog, a, v, 1, 256, &batch), i++;
        else if (!strcmp(a, "--seed")) ok = cli_int(prog, a, v, 0, 0x7fffffffL, &seed), i++;
        else if (!strcmp(a, "--threads")) ok = cli_int(prog, a, v, 1, 1024, &threads), i++;
        else if (!strcmp(a, "--max-pixels")) ok = cli_int(prog, a, v, 1, 2000000000L, &max_pixels), i++;
        else if (!strcmp(a, "--holdout")) ok = cli_float(prog, a, v, 0, 0.9, &holdout), i++;
        else if (pd && !strcmp(a, "--reg")) ok = cli_float(prog, a, v, 1e-9, 1e6, &reg), i++;
        else if (!strcmp(a, "--sigma")) ok = cli_float(prog, a, v, 0, 100, &sigma), i++;
        else if (!strcmp(a, "--tile")) ok = cli_int(prog, a, v, 1, 16384, &tile), i++;
        else if (!strcmp(a, "--tile-overlap")) ok = cli_float(prog, a, v, 0, 0.9, &overlap), i++;
        else if (pc && !strcmp(a, "--coreset")) ok = cli_float(prog, a, v, 1e-6, 1, &coreset), i++;
        else if (pc && !strcmp(a, "--proj-dims")) ok = cli_int(prog, a, v, 1, 4096, &proj), i++;
        else if (pc && !strcmp(a, "--neighbours")) ok = cli_int(prog, a, v, 1, 1024, &nb), i++;
        else if (pc && !strcmp(a, "--bank") && v) {
            if (!strcmp(v, "f32") || !strcmp(v, "f16")) o->pc.half_bank = !strcmp(v, "f16");
            else ok = 0, fprintf(stderr, "%s: --bank must be f32 or f16 (got '%s')\n", prog, v);
            i++;
        }
        else if (ae && !strcmp(a, "--size")) {
            if ((ok = cli_int(prog, a, v, 32, 1024, &size)) && size % 16)
                ok = 0, fprintf(stderr, "%s: --size must be a multiple of 16 (got %ld)\n", prog, size);
            i++;
        } else if (ae && !strcmp(a, "--channels")) {
            if ((ok = cli_int(prog, a, v, 1, 3, &channels)) && channels == 2)
                ok = 0, fprintf(stderr, "%s: --channels must be 1 or 3 (got 2)\n", prog);
            i++;
        } else if (ae && !strcmp(a, "--width")) ok = cli_int(prog, a, v, 1, 1024, &width), i++;
        else if (ae && !strcmp(a, "--latent")) ok = cli_int(prog, a, v, 1, 4096, &latent), i++;
        else if (ae && !strcmp(a, "--epochs")) ok = cli_int(prog, a, v, 1, 100000, &epochs), i++;
        else if (ae && !strcmp(a, "--lr")) ok = cli_float(prog, a, v, 1e-7, 1, &lr), i++;
        else if (ae && !strcmp(a, "--augment-p")) ok = cli_float(prog, a, v, 0, 1, &aug_p), i++;
        else if (!strcmp(a, "--quiet")) o->quiet = 1;
        else if (!strcmp(a, "--strict")) o->fit.strict = 1;
        else if (pd && !strcmp(a, "--float32")) o->fit.float32 = 1;
        else if (a[0] != '-' && !o->good) o->good = a;
        else {
            fprintf(stderr, "%s: unknown option, missing value or extra argument '%s' (see --help)\n", prog, a);
            return 2;
        }
        if (!ok) return 2;
    }
    if (!o->good || !o->out || (!ae && !o->backbone)) {
        fprintf(stderr, ae ? "%s: needs GOOD_DIR and -o MODEL.aibox (see --help)\n"
                           : "%s: needs GOOD_DIR, -o MODEL.aibox and --backbone FILE (see --help)\n",
                prog);
        return 2;
    }
    if (aibox_threshold_parse(o->rule, &o->fit.threshold, &err)) {
        fprintf(stderr, "%s: --threshold: %s\n", prog, err.msg);
        return 2;
    }
    float blur = sigma > 0 ? (float)sigma : -1;
    o->fit.method = o->method;
    if (pc) {
        o->pc.n_taps = n_taps, memcpy(o->pc.strides, strides, sizeof(int) * (size_t)n_taps);
        o->pc.dims = (int)dims, o->pc.seed = (uint64_t)seed, o->pc.coreset = coreset;
        o->pc.proj_dims = (int)proj, o->pc.neighbours = (int)nb, o->pc.blur_sigma = blur;
        o->fit.patchcore = &o->pc;
    } else if (ae) {
        o->ae.size = (int)size, o->ae.channels = (int)channels, o->ae.width = (int)width;
        o->ae.latent = (int)latent, o->ae.epochs = (int)epochs, o->ae.batch = batch ? (int)batch : 16;
        o->ae.lr = (float)lr, o->ae.augment_mask = augment;
        o->ae.augment_p = aug_p > 0 ? (float)aug_p : 1e-9f; /* 0 means the default to the library */
        o->ae.blur_sigma = blur, o->ae.seed = (uint64_t)seed;
        o->fit.autoencoder = &o->ae;
    } else {
        o->padim.n_taps = n_taps, memcpy(o->padim.strides, strides, sizeof(int) * (size_t)n_taps);
        o->padim.dims = (int)dims, o->padim.seed = (uint64_t)seed, o->padim.reg = reg;
        o->padim.blur_sigma = blur;
        o->fit.padim = &o->padim;
    }
    o->fit.tiling = (aibox_tiling){(int)tile, overlap};
    o->fit.holdout = holdout > 0 ? holdout : -1, o->fit.seed = (uint64_t)seed;
    o->fit.batch = batch ? (int)batch : 8, o->fit.threads = (int)threads, o->fit.max_pixels = max_pixels;
    if (o->backbone) {
        const char *slash = strrchr(o->backbone, '/');
        o->fit.backbone_name = slash ? slash + 1 : o->backbone;
    }
    return 0;
}

/* The one summary line. */
static void print_summary(const options *o, const aibox_detector *d, const aibox_fit_report *r, const skips *sk)
{
    const aibox_threshold_stats *st = &r->stats;
    const aibox_thresholds *t = aibox_detector_thresholds(d);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    struct stat sb;
    long long model_bytes = stat(o->out, &sb) ? -1 : (long long)sb.st_size;
    int gw = 0, gh = 0, dims = 0;
    long bank = 0, patches = 0;
    const aibox_autoencoder *ae = aibox_detector_autoencoder(d);
    if (aibox_detector_padim(d)) aibox_padim_info(aibox_detector_padim(d), &gw, &gh, &dims, NULL);
    else if (aibox_detector_patchcore(d))
        aibox_patchcore_info(aibox_detector_patchcore(d), &gw, &gh, &dims, &bank, NULL, &patches);
    cli_json j;
    cj_begin(&j, stdout);
    cj_str(&j, "model", o->out);
    cj_str(&j, "method", aibox_detector_method(d));
    cj_str(&j, "backbone", o->backbone);
    cj_obj(&j, "images");
    cj_int(&j, "fit", r->fit), cj_int(&j, "holdout", r->holdout), cj_int(&j, "abnormal", r->abnormal);
    cj_int(&j, "skipped", r->skipped);
    cj_close(&j);
    if (ae) { /* the network and its training */
        aibox_ae_residual res;
        int epochs, ch, h, w;
        double loss;
        aibox_autoencoder_info(ae, &res, NULL, &epochs, &loss);
        aibox_model_input_shape(aibox_detector_model(d), &ch, &h, &w);
        cj_obj(&j, "autoencoder");
        cj_int(&j, "size", w), cj_int(&j, "channels", ch), cj_int(&j, "epochs", epochs);
        cj_num(&j, "loss", "%.6g", loss), cj_str(&j, "residual", res == AIBOX_AE_L2 ? "l2" : "ssim");
        cj_int(&j, "params", (long)aibox_model_param_count(aibox_detector_model(d)));
        cj_close(&j);
    } else {
        cj_int(&j, "dims", dims);
        cj_arr(&j, "grid");
        cj_int(&j, NULL, gw), cj_int(&j, NULL, gh);
        cj_close(&j);
    }
    if (aibox_detector_patchcore(d)) { /* the memory bank: entries kept of the patches seen */
        cj_obj(&j, "bank");
        cj_int(&j, "entries", bank), cj_int(&j, "patches", patches);
        cj_num(&j, "mb", "%.1f", bank * (double)dims * 4 / 1048576.0); /* in memory: float32 */
        cj_str(&j, "file_dtype", o->pc.half_bank ? "f16" : "f32");  /* and in the model file: */
        cj_num(&j, "file_mb", "%.1f", bank * (double)dims * (o->pc.half_bank ? 2 : 4) / 1048576.0);
        cj_close(&j);
    }
    aibox_tiling tl = aibox_detector_tiling(d);
    if (tl.side) {
        cj_obj(&j, "tiling");
        cj_int(&j, "side", tl.side), cj_num(&j, "overlap", "%g", tl.overlap);
        cj_close(&j);
    }
    cj_num(&j, "threshold", "%.6g", t->image);
    cj_str(&j, "threshold_rule", o->rule);
    cj_obj(&j, "holdout_scores"); /* null when nothing was held out */
    cj_num(&j, "min", "%.6g", st->good_min), cj_num(&j, "mean", "%.6g", st->good_mean);
    cj_num(&j, "sd", "%.6g", st->good > 1 ? st->good_sd : NAN), cj_num(&j, "p99", "%.6g", st->good_p99);
    cj_num(&j, "max", "%.6g", st->good_max);
    cj_close(&j);
    if (r->abnormal > 0) {
        cj_obj(&j, "abnormal_eval");
        cj_num(&j, "image_auroc", "%.6f", st->image_auroc), cj_num(&j, "f1", "%.6f", st->f1);
        cj_num(&j, "threshold_f1", "%.6g", t->image_f1), cj_num(&j, "pixel_threshold_f1", "%.6g", st->pixel_threshold_f1);
        cj_num(&j, "pixel_f1", "%.6f", st->pixel_f1);
        cj_close(&j);
    }
    cj_arr(&j, "skipped");
    for (int i = 0; i < sk->n; i++) {
        cj_obj(&j, NULL);
        cj_str(&j, "file", sk->file[i]), cj_str(&j, "error", sk->why[i]);
        cj_close(&j);
    }
    cj_close(&j);
    cj_obj(&j, "seconds");
    cj_num(&j, "fit", "%.3f", r->fit_seconds), cj_num(&j, "total", "%.3f", r->seconds);
    cj_close(&j);
    cj_num(&j, "fit_state_mb", "%.1f", r->fit_bytes / 1048576.0);
    cj_num(&j, "peak_rss_mb", "%.1f", ru.ru_maxrss / 1024.0);
    cj_num(&j, "model_mb", "%.1f", model_bytes / 1048576.0);
    cj_end(&j);
}

int anomaly_main(const char *method, int argc, char **argv, const aibox_comm *comm)
{
    options o;
    memset(&o, 0, sizeof o);
    o.method = !strcmp(method, "patchcore")     ? AIBOX_ANOMALY_PATCHCORE
               : !strcmp(method, "autoencoder") ? AIBOX_ANOMALY_AUTOENCODER
                                                : AIBOX_ANOMALY_PADIM;
    const char *prog = o.prog = o.method == AIBOX_ANOMALY_PATCHCORE     ? "aibox-train patchcore"
                                : o.method == AIBOX_ANOMALY_AUTOENCODER ? "aibox-train autoencoder"
                                                                        : "aibox-train padim";
    int done = 0, rc = parse(argc, argv, &o, &done);
    if (rc || done) return rc;
    /* across ranks (an MPI build under mpirun) each fits its share; rank 0 talks and writes */
    const int rank = comm && comm->size > 1 ? comm->rank : 0;
    skips sk = {.quiet = o.quiet || rank, .prog = prog};
    o.fit.on_skip = on_skip, o.fit.on_progress = on_progress, o.fit.user = &sk;
    o.ae.on_epoch = on_epoch, o.ae.user = &sk;
    aibox_error err = {0};
    aibox_model *bb = NULL;
    aibox_detector *d = NULL;
    aibox_fit_report rep;
    aibox_status s;
    rc = 3;
    if (o.backbone && (s = aibox_import(&bb, o.backbone, NULL, &err))) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
    } else if ((s = aibox_detector_fit_folder_dist(&d, bb, o.good, &o.fit, comm, &rep, &err))) {
        if (rank) fprintf(stderr, "%s: rank %d: %s\n", prog, rank, err.msg);
        else fprintf(stderr, "%s: %s\n", prog, err.msg);
        rc = s == AIBOX_E_INVALID || s == AIBOX_E_NOTFOUND ? 2 : 3; /* the data, not the backbone */
    } else if (rank) {
        rc = 0;
    } else if ((s = aibox_detector_save(d, o.out, &err))) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
    } else {
        print_summary(&o, d, &rep, &sk);
        rc = 0;
    }
    aibox_detector_free(&d);
    aibox_model_free(&bb);
    for (int i = 0; i < sk.n; i++) free(sk.file[i]), free(sk.why[i]);
    free(sk.file), free(sk.why);
    return rc;
}

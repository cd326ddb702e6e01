/* aibox-quantize: post-training quantisation of a float .aibox model to an
 * 8-bit one (aibox_model_quantize), calibrated on a folder of representative
 * images. Progress on stderr, one JSON summary line on stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "aibox.h"
#include "cli.h"

static const char usage[] =
    "usage: aibox-quantize MODEL.aibox --calib DIR -o OUT.aibox [options]\n"
    "Quantises a float model to 8 bits: batch norms folded into their convolutions, per-channel\n"
    "symmetric int8 weights, int32 biases, per-tensor uint8 activations whose ranges come from\n"
    "running the model on representative images (the images of DIR and its sub-folders, e.g. a\n"
    "training folder). The 8-bit model runs in integer arithmetic wherever aibox-infer runs it.\n"
    "  -o, --output FILE    the 8-bit model; an existing FILE is replaced atomically\n"
    "  --calib DIR          calibration images (their labels are not used)\n"
    "  --calib-max N        use at most N of them, evenly spread over the sorted list (default 200)\n"
    "  --method M           minmax (default: the smallest and largest value seen) or percentile\n"
    "  --percentile P       with --method percentile: keep the central P %% (default 99.99)\n"
    "  --threads N          threads for the calibration runs (default: all)\n"
    "  --quiet              no progress on stderr\n"
    "  --version, --help\n"
    "Stdout: one JSON line {\"model\", \"source\", \"calibration_images\", \"skipped\", \"method\",\n"
    "\"bytes\", \"source_bytes\", \"ratio\"}. An image that cannot be read is skipped with a line on\n"
    "stderr naming it. Exit status: 0 written, 2 bad usage, 3 the model could not be read,\n"
    "quantised or written, or no calibration image could be read.\n";

static long long file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (long long)st.st_size : -1;
}

int main(int argc, char **argv)
{
    const char *prog = "aibox-quantize", *src = NULL, *out = NULL, *calib = NULL, *method = "minmax";
    long cmax = 200, threads = 0;
    double pct = 99.99;
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (cli_help_or_version(prog, a, usage)) return 0;
        else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && v) out = v, i++;
        else if (!strcmp(a, "--calib") && v) calib = v, i++;
        else if (!strcmp(a, "--calib-max") && v) {
            if (!cli_int(prog, a, v, 1, 100000, &cmax)) return 2;
            i++;
        } else if (!strcmp(a, "--method") && v) method = v, i++;
        else if (!strcmp(a, "--percentile") && v) {
            if (!cli_float(prog, a, v, 50.000001, 100, &pct)) return 2;
            i++;
        } else if (!strcmp(a, "--threads") && v) {
            if (!cli_int(prog, a, v, 1, 1024, &threads)) return 2;
            i++;
        } else if (!strcmp(a, "--quiet")) quiet = 1;
        else if (a[0] != '-' && !src) src = a;
        else {
            fprintf(stderr, "%s: unknown option, missing value or extra argument '%s' (see --help)\n", prog, a);
            return 2;
        }
    }
    if (!src || !out || !calib) {
        fprintf(stderr, "%s: needs MODEL, --calib DIR and -o OUT (see --help)\n", prog);
        return 2;
    }
    aibox_quantize_opts qo = {0};
    if (!strcmp(method, "percentile")) qo.method = AIBOX_CALIB_PERCENTILE, qo.percentile = pct;
    else if (strcmp(method, "minmax")) {
        fprintf(stderr, "%s: --method must be minmax or percentile (got '%s')\n", prog, method);
        return 2;
    }
    qo.threads = (int)threads;
    aibox_error err = {0};
    aibox_model *m = NULL, *q = NULL;
    aibox_file_list files = {0};
    float *x = NULL;
    int rc = 3, used = 0, skipped = 0;
    if (aibox_model_load(&m, src, &err)) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        goto done;
    }
    aibox_preproc pp;
    aibox_list_opts lo = {.subfolders = AIBOX_SUBFOLDERS_RECURSE, .images_only = 1, .skip_masks = 1};
    if (aibox_preproc_from_model(&pp, m, &err) || aibox_list_files(&files, calib, &lo, &err)) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        goto done;
    }
    int total = 0;
    for (int i = 0; i < files.n; i++) total += !files.note[i];
    int want = total < cmax ? total : (int)cmax;
    size_t per = (size_t)pp.channels * pp.height * pp.width;
    if (want < 1 || !(x = malloc(per * (size_t)want * sizeof *x))) {
        fprintf(stderr, "%s: %s: no calibration image%s\n", prog, calib, want < 1 ? "" : " (out of memory)");
        goto done;
    }
    /* evenly spread over the sorted regular files: every class of a class folder is seen */
    for (int k = 0, seen = 0, i = 0; k < want && i < files.n; i++) {
        if (files.note[i]) continue;
        if (seen++ != (int)((long long)k * total / want)) continue; /* the k-th of want, evenly spaced */
        k++;
        aibox_image img = {0};
        if (aibox_image_load(&img, files.path[i], 0, &err) || aibox_preprocess(&pp, &img, x + per * (size_t)used, &err)) {
            fprintf(stderr, "%s: skipped %s\n", prog, err.msg);
            skipped++;
        } else used++;
        aibox_image_free(&img);
    }
    if (!used) {
        fprintf(stderr, "%s: %s: none of the calibration images could be read\n", prog, calib);
        goto done;
    }
    if (!quiet) fprintf(stderr, "%s: calibrating on %d images of %s (%s)\n", prog, used, calib, method);
    if (aibox_model_quantize(&q, m, x, used, &qo, &err) || aibox_model_save(q, out, &err)) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        goto done;
    }
    long long b = file_size(out), sb = file_size(src);
    if (!quiet) fprintf(stderr, "%s: wrote %s (%lld bytes, %.1f %% of %s)\n", prog, out, b, 100.0 * b / sb, src);
    cli_json j;
    cj_begin(&j, stdout);
    cj_str(&j, "model", out);
    cj_str(&j, "source", src);
    cj_int(&j, "calibration_images", used);
    cj_int(&j, "skipped", skipped);
    cj_str(&j, "method", method);
    cj_int(&j, "bytes", b);
    cj_int(&j, "source_bytes", sb);
    cj_num(&j, "ratio", "%.4f", sb > 0 ? (double)b / sb : 0);
    cj_end(&j);
    rc = 0;
done:
    free(x);
    aibox_file_list_free(&files);
    aibox_model_free(&q);
    aibox_model_free(&m);
    return rc;
}

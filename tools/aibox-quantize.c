/* aibox-quantize: post-training quantisation of a float .aibox model to an
 * 8-bit one (aibox_model_quantize), calibrated on a folder of representative
 * images. Progress on stderr, one JSON summary line on stdout. */
#include <math.h>
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
    "  --train-split        DIR is a class-folder data set: calibrate on its training split only\n"
    "                       (aibox-train's split with the same --seed and --val-split), so the\n"
    "                       held-out images stay unseen\n"
    "  --method M           minmax (default: the smallest and largest value seen) or percentile\n"
    "  --percentile P       with --method percentile: keep the central P % (default 99.99)\n"
    "  --threads N          threads (default: all)\n"
    "quantisation-aware fine-tuning, when post-training quantisation loses accuracy:\n"
    "  --qat DATA           after calibrating, train on DATA/<class>/ images (the model's classes,\n"
    "                       as aibox-train reads them) with every activation and weight rounded to\n"
    "                       8 bits in each forward pass (straight-through gradients), then quantise\n"
    "  --epochs N           QAT epochs (default 3)    --lr X        Adam's rate (default 1e-4)\n"
    "  --batch N            QAT batch (default 32)    --seed N      shuffle and split seed (default 1)\n"
    "  --val-split F        held-out fraction for the QAT epochs' validation, the best kept (default\n"
    "                       0.2: with aibox-train's --seed, the same hold-out it used)\n"
    "  --quiet              no progress on stderr\n"
    "  --version, --help\n"
    "Stdout: one JSON line {\"model\", \"source\", \"calibration_images\", \"skipped\", \"method\",\n"
    "\"bytes\", \"source_bytes\", \"ratio\", \"qat\" (with --qat: {\"epochs\", \"best_epoch\",\n"
    "\"val_acc\"}, the 8-bit simulation's validation accuracy)}. An image that cannot be read is skipped with a line on\n"
    "stderr naming it. Exit status: 0 written, 2 bad usage, 3 the model could not be read,\n"
    "quantised or written, or no calibration image could be read.\n";

static long long file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (long long)st.st_size : -1;
}

int main(int argc, char **argv)
{
    const char *prog = "aibox-quantize", *src = NULL, *out = NULL, *calib = NULL, *method = "minmax", *qat = NULL;
    long cmax = 200, threads = 0, epochs = 3, batch = 32, seed = 1;
    double pct = 99.99, lr = 1e-4, val_split = 0.2;
    int quiet = 0, train_split = 0;
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
        } else if (!strcmp(a, "--qat") && v) qat = v, i++;
        else if (!strcmp(a, "--train-split")) train_split = 1;
        else if (!strcmp(a, "--epochs") && v) {
            if (!cli_int(prog, a, v, 1, 100000, &epochs)) return 2;
            i++;
        } else if (!strcmp(a, "--batch") && v) {
            if (!cli_int(prog, a, v, 1, 4096, &batch)) return 2;
            i++;
        } else if (!strcmp(a, "--seed") && v) {
            if (!cli_int(prog, a, v, 0, 2147483647, &seed)) return 2;
            i++;
        } else if (!strcmp(a, "--lr") && v) {
            if (!cli_float(prog, a, v, 1e-9, 1, &lr)) return 2;
            i++;
        } else if (!strcmp(a, "--val-split") && v) {
            if (!cli_float(prog, a, v, 0, 0.9, &val_split)) return 2;
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
    aibox_dataset *ds = NULL, *cds = NULL;
    aibox_loader *tl = NULL, *vl = NULL;
    float *x = NULL;
    int rc = 3, used = 0, skipped = 0;
    if (aibox_model_load(&m, src, &err)) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        goto done;
    }
    aibox_preproc pp;
    aibox_list_opts lo = {.subfolders = AIBOX_SUBFOLDERS_RECURSE, .images_only = 1, .skip_masks = 1};
    aibox_dataset_opts dopt = {.val_split = val_split > 0 ? (float)val_split : -1.0f, .seed = (uint64_t)seed,
                               .threads = (int)threads};
    if (aibox_preproc_from_model(&pp, m, &err) ||
        (train_split ? aibox_dataset_open(&cds, calib, &dopt, &err) : aibox_list_files(&files, calib, &lo, &err))) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        goto done;
    }
    int total = 0;
    if (cds) total = aibox_dataset_count(cds, AIBOX_SPLIT_TRAIN);
    else
        for (int i = 0; i < files.n; i++) total += !files.note[i];
    int want = total < cmax ? total : (int)cmax;
    size_t per = (size_t)pp.channels * pp.height * pp.width;
    if (want < 1 || !(x = malloc(per * (size_t)want * sizeof *x))) {
        fprintf(stderr, "%s: %s: no calibration image%s\n", prog, calib, want < 1 ? "" : " (out of memory)");
        goto done;
    }
    /* the k-th of want, evenly spaced over the sorted files (every class of a class folder is seen) */
    for (int k = 0, seen = 0, i = 0; k < want && (cds ? i < total : i < files.n); i++) {
        if (!cds && files.note[i]) continue;
        if (seen++ != (int)((long long)k * total / want)) continue;
        k++;
        aibox_image img = {0};
        aibox_status st = cds ? aibox_dataset_image(cds, AIBOX_SPLIT_TRAIN, i, &img, &err)
                              : aibox_image_load(&img, files.path[i], 0, &err);
        if (st || aibox_preprocess(&pp, &img, x + per * (size_t)used, &err)) {
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
    aibox_train_result tr = {0};
    if (qat) {
        aibox_loader_opts lo2 = {.split = AIBOX_SPLIT_TRAIN, .batch = (int)batch, .shuffle = 1, .seed = (uint64_t)seed,
                                 .threads = (int)threads};
        aibox_loader_opts vo = {.split = AIBOX_SPLIT_VAL, .batch = (int)batch, .seed = (uint64_t)seed,
                                .threads = (int)threads};
        aibox_train_opts to = {.epochs = (int)epochs, .seed = (uint64_t)seed};
        to.optim.kind = AIBOX_ADAM;
        to.optim.lr = (float)lr;
        if (aibox_dataset_open(&ds, qat, &dopt, &err) || aibox_loader_create(&tl, ds, &pp, &lo2, &err) ||
            (aibox_dataset_count(ds, AIBOX_SPLIT_VAL) > 0 && aibox_loader_create(&vl, ds, &pp, &vo, &err))) {
            fprintf(stderr, "%s: %s\n", prog, err.msg);
            goto done;
        }
        if (!quiet) fprintf(stderr, "%s: quantisation-aware training on %s, %ld epochs\n", prog, qat, epochs);
        aibox_batch_source ts = aibox_loader_source(tl), vs = vl ? aibox_loader_source(vl) : ts;
        if (aibox_model_quantize_aware(&q, m, x, used, &qo, &ts, (int)batch, vl ? &vs : NULL, &to, (int)threads, &tr,
                                       &err)) {
            fprintf(stderr, "%s: %s\n", prog, err.msg);
            goto done;
        }
    } else if (aibox_model_quantize(&q, m, x, used, &qo, &err)) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        goto done;
    }
    if (aibox_model_save(q, out, &err)) {
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
    if (qat) {
        cj_obj(&j, "qat");
        cj_int(&j, "epochs", tr.epochs_run);
        cj_int(&j, "best_epoch", tr.best_epoch + 1);
        cj_num(&j, "val_acc", "%.4f", vl ? tr.best_val_acc : NAN);
        cj_close(&j);
    }
    cj_end(&j);
    rc = 0;
done:
    aibox_loader_free(&tl);
    aibox_loader_free(&vl);
    aibox_dataset_free(&ds);
    aibox_dataset_free(&cds);
    free(x);
    aibox_file_list_free(&files);
    aibox_model_free(&q);
    aibox_model_free(&m);
    return rc;
}

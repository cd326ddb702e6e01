/* aibox-train: train an image classifier from a folder (the AI-Box
 * pipeline). Logs and progress on stderr; one JSON summary line on stdout. */
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aibox.h"
#include "aibox/data.h"
#include "cli.h"
#include "train_padim.h"
#include "transfer.h"

static const char usage[] =
    "usage: aibox-train DATA -o MODEL.aibox [options]\n"
    "       aibox-train padim GOOD_DIR -o MODEL.aibox --backbone FILE [options]  (see padim --help)\n"
    "Trains an image classifier on DATA/<class>/* (a seeded validation split is held out) or\n"
    "DATA/train/<class> + DATA/val/<class> (+ DATA/test/<class>).\n"
    "  -o, --output FILE      the trained model (the best validation epoch); an existing FILE is\n"
    "                         replaced, atomically (on failure or interruption the old file stays)\n"
    "  --model NAME           small (default; a Keras-tutorial CNN), alexnet, squeezenet, resnext, resnet18,\n"
    "                         resnet50, wide_resnet50_2\n"
    "  --size N               input size (default: small 64, alexnet 256, others 224)\n"
    "  --gray | --rgb         input channels (default: 1 when every image is grey, else 3)\n"
    "  --resize MODE          area (default), bilinear, bilinear_center or nearest: how images reach\n"
    "                         the input size\n"
    "  --epochs N             default 20\n"
    "  --batch N              default 32\n"
    "  --lr X                 learning rate (default: Adam 0.001, SGD 0.01)\n"
    "  --optimizer adam|sgd   default adam (Keras defaults; SGD with momentum 0.9)\n"
    "  --patience N           stop after N epochs without a better validation loss and keep the\n"
    "                         best weights (default 0: off)\n"
    "  --class-weight W       auto (balanced), none (default), or a=1,b=4 by class name\n"
    "  --val-split F          validation fraction per class for DATA/<class> layouts (default 0.2)\n"
    "  --validate-on-train    validate on the training images themselves (the AI-Box protocol)\n"
    "  --augment LIST         comma list of brightness,contrast,flip,hue,saturation,jpeg,rotation,\n"
    "                         blur,crop,shear,zoom, or all (default), aibox (the paper's nine), none\n"
    "  --no-augment           same as --augment none\n"
    "  --aug-p P              probability that another augmentation follows (default 0.6)\n"
    "  --preview-augment N DIR  write N augmented training samples as PNG to DIR and exit\n"
    "  --dropout P            dropout rate of the alexnet preset and of a --backbone head (default 0.25)\n"
    "  --seed N               seed of the split, initial weights, shuffling, augmentation, dropout\n"
    "  --threads N            default: $AIBOX_THREADS or all CPUs\n"
    "  --out-dir DIR          best.aibox, last.aibox, train.csv, metrics.json and split.csv (which\n"
    "                         image went to which split) (default: MODEL.train)\n"
    "  --resume CKPT          continue from a last.aibox checkpoint (same data, options and seed)\n"
    "  --strict               fail on the first unreadable image instead of skipping it\n"
    "  --min-samples N        fewest usable images (default 30, as AI-Box)\n"
    "  --max-pixels N         skip images whose header announces more pixels (default 100000000)\n"
    "  --quiet                no progress output\n"
    "  --version, --help\n"
    "Fine-tuning a pretrained model (any file aibox-import reads: .aibox, .tflite, safetensors):\n"
    "  --backbone FILE        cut FILE at its feature layer and train a new head for DATA's classes:\n"
    "                         [global average pool if spatial] -> dropout -> dense. The default cut\n"
    "                         is the global pooling (the embedding before the classifier, e.g.\n"
    "                         MobileNet's 7x7 average pool, ResNet's global pool). The backbone's\n"
    "                         input size, channels, resize and mean/std are used and stored (grey\n"
    "                         images become RGB for an RGB backbone); --model, --size, --gray,\n"
    "                         --rgb and --resize do not apply\n"
    "  --freeze | --no-freeze keep the backbone's weights (default) or train them too. Frozen and\n"
    "                         without augmentation, features are computed once and the head trains\n"
    "                         on them (out-dir checkpoints then hold the head alone)\n"
    "  --tap NODE             cut at this node (an index, or a tap name such as layer3) instead\n"
    "  --stride S             cut at the end of the stage at input size / S (e.g. 16)\n"
    "  --from-scratch         the backbone's architecture with freshly drawn weights, trained\n"
    "                         (not frozen): the baseline for the pretrained weights\n"
    "Files that cannot be used (unreadable, truncated, too small) and anything in a class folder\n"
    "that is not a file (sub-folders, FIFOs, devices, broken or looping links) are listed with the\n"
    "reason in the summary's \"skipped\" list. Training that diverges (a non-finite loss, gradient\n"
    "or weight) stops with exit 3 and saves nothing from that state.\n"
    "Same data, seed and threads give the same model. Ctrl-C stops; the checkpoint last.aibox in\n"
    "the output folder then resumes the run exactly (--resume).\n"
    "Exit status: 0 trained, 2 bad usage or data, 3 training failed, 130 interrupted.\n";

static volatile sig_atomic_t stop_flag;
static void on_sigint(int sig)
{
    (void)sig;
    stop_flag = 1;
}


typedef struct {
    int tty, quiet;
} progress;

static void on_progress(void *user, const aibox_train_progress *p)
{
    progress *pr = user;
    if (pr->quiet) return;
    if (!p->end_of_epoch) {
        if (!pr->tty) return;
        int width = 30, fill = p->total > 0 ? (int)(width * p->done / p->total) : 0;
        char bar[64];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\repoch %d/%d [%s] %ld/%ld loss %.4f acc %.4f  ", p->epoch + 1, p->epochs, bar, p->done,
                p->total, p->loss, p->acc);
        return;
    }
    if (pr->tty) fputc('\r', stderr);
    fprintf(stderr, "epoch %d/%d: loss %.4f acc %.4f", p->epoch + 1, p->epochs, p->loss, p->acc);
    if (!isnan(p->val_loss)) fprintf(stderr, " val_loss %.4f val_acc %.4f", p->val_loss, p->val_acc);
    fprintf(stderr, " lr %.3g %.1fs%s%s\n", p->lr, p->epoch_seconds, p->improved ? " *" : "",
            pr->tty ? "                    " : "");
}

/* DIR/split.csv: which image went to which split, with its class, so that the
 * held-out images can be fed to aibox-infer (written before training). */
static int write_split_list(const aibox_dataset *ds, const char *dir, aibox_error *err)
{
    char path[4200], *buf = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/split.csv", dir);
    FILE *f = open_memstream(&buf, &len);
    if (!f) return 0;
    static const char *const names[AIBOX_SPLIT_COUNT] = {"train", "val", "test"};
    fprintf(f, "file,split,class\n");
    for (int sp = 0; sp < AIBOX_SPLIT_COUNT; sp++)
        for (int i = 0; i < aibox_dataset_count(ds, (aibox_split)sp); i++) {
            cli_csv_str(f, aibox_dataset_path(ds, (aibox_split)sp, i));
            fprintf(f, ",%s,", names[sp]);
            cli_csv_str(f, aibox_dataset_class_name(ds, aibox_dataset_label(ds, (aibox_split)sp, i)));
            fputc('\n', f);
        }
    int ok = fclose(f) == 0 && aibox_write_atomic(path, buf, len, err) == AIBOX_OK;
    free(buf);
    return ok;
}

/* Accuracy of the model on a split, through the same preprocessing. */
static aibox_status split_accuracy(aibox_model *m, const aibox_dataset *ds, aibox_split split, const aibox_preproc *pp,
                                   int batch, int threads, double *acc, aibox_error *err)
{
    aibox_loader *ld = NULL;
    aibox_ctx *ctx = NULL;
    aibox_status s = aibox_loader_create(&ld, ds, pp, &(aibox_loader_opts){.split = split, .batch = batch, .threads = threads}, err);
    if (!s) s = aibox_ctx_create(&ctx, m, &(aibox_ctx_opts){.max_batch = batch, .height = pp->height, .width = pp->width, .threads = threads, .seed = 1}, err);
    if (!s) s = aibox_ctx_freeze_weights(ctx, m, err); /* trained: the weights stay while this context lives */
    long right = 0, seen = 0;
    while (!s) {
        const float *x;
        const int *y;
        int n, k;
        if ((s = aibox_loader_next(ld, &x, &y, &n, err)) || n == 0) break;
        if ((s = aibox_ctx_infer(ctx, m, x, n, err))) break;
        const float *out = aibox_ctx_output(ctx, &k, NULL, NULL);
        for (int i = 0; i < n; i++) {
            int best = 0;
            for (int c = 1; c < k; c++)
                if (out[i * k + c] > out[i * k + best]) best = c;
            right += best == y[i];
        }
        seen += n;
    }
    *acc = seen ? (double)right / seen : NAN;
    aibox_ctx_free(&ctx);
    aibox_loader_free(&ld);
    return s;
}

static int parse_class_weights(const char *spec, const aibox_dataset *ds, float *w)
{
    int K = aibox_dataset_class_count(ds);
    if (!strcmp(spec, "none")) return 0;
    if (!strcmp(spec, "auto")) { /* balanced: n / (K * n_c) */
        int total = aibox_dataset_count(ds, AIBOX_SPLIT_TRAIN);
        for (int c = 0; c < K; c++) {
            int nc = aibox_dataset_class_samples(ds, AIBOX_SPLIT_TRAIN, c);
            w[c] = nc ? (float)total / (float)(K * nc) : 1.0f;
        }
        return 1;
    }
    for (int c = 0; c < K; c++) w[c] = 1.0f;
    char *copy = strdup(spec);
    int ok = copy != NULL;
    for (char *tok = copy ? strtok(copy, ",") : NULL; tok && ok; tok = strtok(NULL, ",")) {
        char *eq = strrchr(tok, '=');
        ok = 0;
        if (!eq) break;
        *eq = 0;
        char *end;
        double v = strtod(eq + 1, &end);
        if (*end || !(v > 0 && v < 1e6)) break;
        for (int c = 0; c < K; c++)
            if (!strcmp(aibox_dataset_class_name(ds, c), tok)) w[c] = (float)v, ok = 1;
        if (!ok) fprintf(stderr, "aibox-train: --class-weight names '%s', which is not a class\n", tok);
    }
    free(copy);
    if (!ok) {
        fprintf(stderr, "aibox-train: --class-weight must be auto, none or name=weight,... (got '%s')\n", spec);
        return -1;
    }
    return 1;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "padim")) return padim_main(argc - 1, argv + 1);
    const char *prog = "aibox-train", *data = NULL, *out = NULL, *model_name = "small", *out_dir = NULL;
    const char *resume = NULL, *cw_spec = "none", *aug_spec = "all", *preview_dir = NULL, *resize = "area";
    long size = 0, epochs = 20, batch = 32, patience = 0, threads = 0, min_samples = 30, preview_n = 0, seed = 1;
    long max_pixels = 100000000, stride = 0;
    const char *backbone = NULL, *tap = NULL;
    int freeze = -1, scratch = 0, fixed_input = 0; /* fixed_input: options a backbone decides */
    double lr = 0, val_split = 0.2, aug_p = 0.6, dropout = 0.25;
    int gray = -1, strict = 0, quiet = 0, val_on_train = 0, sgd = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (cli_help_or_version(prog, a, usage)) {
            return 0;
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && v) out = v, i++;
        else if (!strcmp(a, "--model") && v) model_name = v, i++, fixed_input++;
        else if (!strcmp(a, "--backbone") && v) backbone = v, i++;
        else if (!strcmp(a, "--tap") && v) tap = v, i++;
        else if (!strcmp(a, "--freeze")) freeze = 1;
        else if (!strcmp(a, "--no-freeze")) freeze = 0;
        else if (!strcmp(a, "--from-scratch")) scratch = 1;
        else if (!strcmp(a, "--stride")) ok = cli_int(prog, a, v, 1, 4096, &stride), i++;
        else if (!strcmp(a, "--out-dir") && v) out_dir = v, i++;
        else if (!strcmp(a, "--resume") && v) resume = v, i++;
        else if (!strcmp(a, "--class-weight") && v) cw_spec = v, i++;
        else if (!strcmp(a, "--augment") && v) aug_spec = v, i++;
        else if (!strcmp(a, "--resize") && v) resize = v, i++, fixed_input++;
        else if (!strcmp(a, "--no-augment")) aug_spec = "none";
        else if (!strcmp(a, "--gray")) gray = 1, fixed_input++;
        else if (!strcmp(a, "--rgb")) gray = 0, fixed_input++;
        else if (!strcmp(a, "--strict")) strict = 1;
        else if (!strcmp(a, "--quiet")) quiet = 1;
        else if (!strcmp(a, "--validate-on-train")) val_on_train = 1;
        else if (!strcmp(a, "--optimizer") && v) {
            if (!strcmp(v, "sgd")) sgd = 1;
            else if (strcmp(v, "adam")) {
                fprintf(stderr, "%s: --optimizer must be adam or sgd (got '%s')\n", prog, v);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--size")) ok = cli_int(prog, a, v, 8, 4096, &size), i++, fixed_input++;
        else if (!strcmp(a, "--epochs")) ok = cli_int(prog, a, v, 1, 1000000, &epochs), i++;
        else if (!strcmp(a, "--batch")) ok = cli_int(prog, a, v, 1, 4096, &batch), i++;
        else if (!strcmp(a, "--patience")) ok = cli_int(prog, a, v, 0, 1000000, &patience), i++;
        else if (!strcmp(a, "--threads")) ok = cli_int(prog, a, v, 1, 1024, &threads), i++;
        else if (!strcmp(a, "--min-samples")) ok = cli_int(prog, a, v, 1, 1L << 30, &min_samples), i++;
        else if (!strcmp(a, "--max-pixels")) ok = cli_int(prog, a, v, 1, 2000000000L, &max_pixels), i++;
        else if (!strcmp(a, "--seed")) ok = cli_int(prog, a, v, 0, 0x7fffffffL, &seed), i++;
        else if (!strcmp(a, "--lr")) ok = cli_float(prog, a, v, 1e-9, 10, &lr), i++;
        else if (!strcmp(a, "--val-split")) ok = cli_float(prog, a, v, 0, 0.9, &val_split), i++;
        else if (!strcmp(a, "--aug-p")) ok = cli_float(prog, a, v, 0, 0.95, &aug_p), i++;
        else if (!strcmp(a, "--dropout")) ok = cli_float(prog, a, v, 0, 0.95, &dropout), i++;
        else if (!strcmp(a, "--preview-augment")) {
            ok = cli_int(prog, a, v, 1, 100000, &preview_n);
            preview_dir = i + 2 < argc ? argv[i + 2] : NULL;
            if (ok && !preview_dir) {
                fprintf(stderr, "%s: --preview-augment needs N and DIR\n", prog);
                return 2;
            }
            i += 2;
        } else if (a[0] != '-' && !data) data = a;
        else {
            fprintf(stderr, "%s: unknown option, missing value or extra argument '%s' (see --help)\n", prog, a);
            return 2;
        }
        if (!ok) return 2;
    }
    if (!data) {
        fprintf(stderr, "%s: no data folder given (see --help)\n", prog);
        return 2;
    }
    if (!out && !preview_dir) {
        fprintf(stderr, "%s: no output model given (-o MODEL.aibox)\n", prog);
        return 2;
    }
    if (!backbone && (tap || stride || freeze >= 0 || scratch)) {
        fprintf(stderr, "%s: --tap, --stride, --freeze, --no-freeze and --from-scratch need --backbone\n", prog);
        return 2;
    }
    if (backbone && (fixed_input || (tap && stride) || (scratch && freeze == 1))) {
        fprintf(stderr, "%s: %s\n", prog,
                fixed_input ? "the backbone fixes the input: --model, --size, --gray, --rgb and --resize do not apply"
                : scratch   ? "--from-scratch trains the whole network: it cannot be --freeze"
                            : "--tap and --stride both choose the cut; give one");
        return 2;
    }
    if (freeze < 0) freeze = !scratch;
    aibox_error err = {0};
    /* the backbone first: a bad file fails before any data is read or anything written */
    aibox_model *bb = NULL;
    int cut = -1;
    if (backbone) {
        if (aibox_import(&bb, backbone, NULL, &err)) {
            fprintf(stderr, "%s: --backbone %s\n", prog, err.msg);
            return 2;
        }
        if ((cut = transfer_cut(bb, backbone, tap, stride)) < 1) {
            aibox_model_free(&bb);
            return 2;
        }
    }
    unsigned aug_mask;
    aibox_resize_mode rmode;
    if (aibox_augment_parse(aug_spec, &aug_mask, &err) || aibox_resize_mode_parse(resize, &rmode)) {
        fprintf(stderr, "%s: %s\n", prog, err.msg[0] ? err.msg : "--resize must be area, bilinear or nearest");
        aibox_model_free(&bb);
        return 2;
    }

    /* data */
    aibox_dataset *ds = NULL;
    aibox_dataset_opts dopts = {.val_split = val_on_train ? -1.0f : (val_split > 0 ? (float)val_split : -1.0f),
                                .seed = (uint64_t)seed,
                                .strict = strict,
                                .min_samples = (int)min_samples,
                                .max_pixels = max_pixels,
                                .threads = (int)threads};
    if (aibox_dataset_open(&ds, data, &dopts, &err)) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        aibox_model_free(&bb);
        return 2;
    }
    int n_skip = aibox_dataset_skipped_count(ds);
    for (int i = 0; i < n_skip; i++) {
        const char *p, *why;
        aibox_dataset_skipped(ds, i, &p, &why);
        fprintf(stderr, "%s: skipped %s: %s\n", prog, p, why);
    }
    int K = aibox_dataset_class_count(ds);
    int n_train = aibox_dataset_count(ds, AIBOX_SPLIT_TRAIN), n_val = aibox_dataset_count(ds, AIBOX_SPLIT_VAL);
    aibox_split val_split_id = val_on_train ? AIBOX_SPLIT_TRAIN : AIBOX_SPLIT_VAL;
    if (!quiet)
        fprintf(stderr, "%s: %s: %d classes, %d training images, %d validation%s, %d skipped\n", prog, data, K, n_train,
                val_on_train ? n_train : n_val, val_on_train ? " (the training images)" : "", n_skip);
    if (preview_dir) {
        int rc = 0;
        if (aibox_dataset_preview_augment(ds, (int)preview_n, preview_dir, aug_mask, (float)aug_p, (uint64_t)seed,
                                          &err)) {
            fprintf(stderr, "%s: %s\n", prog, err.msg);
            rc = 2;
        } else if (!quiet) {
            fprintf(stderr, "%s: wrote %ld augmented samples to %s\n", prog, preview_n, preview_dir);
        }
        aibox_dataset_free(&ds);
        aibox_model_free(&bb);
        return rc;
    }

    /* model and its preprocessing */
    int channels = gray == 1 ? 1 : gray == 0 ? 3 : (aibox_dataset_channels(ds) == 1 ? 1 : 3);
    if (!size) size = !strcmp(model_name, "small") ? 64 : !strcmp(model_name, "alexnet") ? 256 : 224;
    aibox_model *m = NULL;
    aibox_loader *tl = NULL, *vl = NULL;
    float *weights = NULL;
    int rc = 2;
    aibox_preproc pp;
    aibox_status s;
    int feat = -1, head = -1;
    if (bb) { /* the backbone's preprocessing, cut and a new head */
        s = aibox_preproc_from_model(&pp, bb, &err);
        if (!s) s = transfer_build(&m, bb, cut, K, (float)dropout, freeze, scratch, (uint64_t)seed, &feat, &head, &err);
        if (!s) {
            int c, h, w;
            aibox_model_node_shape(bb, cut, &c, &h, &w);
            channels = pp.channels, size = pp.height, model_name = backbone;
            if (!quiet)
                fprintf(stderr, "%s: backbone %s cut at node %d (%s, %dx%dx%d)%s, %s; new head for %d classes\n", prog,
                        backbone, cut, aibox_layer_kind_name(aibox_model_node_kind(bb, cut)), c, h, w,
                        scratch ? ", weights drawn afresh" : "", freeze ? "frozen" : "trained", K);
            aibox_model_set_meta_str(m, "aibox.backbone", backbone, NULL);
            aibox_model_set_meta_int(m, "aibox.backbone.cut", cut, NULL);
            aibox_model_set_meta_int(m, "aibox.backbone.frozen", freeze, NULL);
            aibox_model_set_meta_str(m, "aibox.backbone.init", scratch ? "random" : "pretrained", NULL);
        }
    } else {
        s = !strcmp(model_name, "alexnet") ? aibox_preset_alexnet(&m, K, channels, (int)size, (float)dropout, &err)
                                           : aibox_preset(&m, model_name, K, channels, (int)size, &err);
        if (!s) s = aibox_model_init_params(m, (uint64_t)seed, &err);
        if (!s) {
            aibox_preproc_default(&pp, m);
            pp.resize = rmode;
        }
    }
    if (s || (s = aibox_preproc_to_model(&pp, m, &err)) ||
        (s = aibox_model_set_meta_strs(m, AIBOX_META_CLASS_NAMES, K, aibox_dataset_class_names(ds), &err)) ||
        (s = aibox_model_set_meta_str(m, AIBOX_META_TASK, "classify", &err)) ||
        (s = aibox_model_set_meta_int(m, "aibox.seed", seed, &err))) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        goto out;
    }
    weights = calloc((size_t)K, sizeof *weights);
    int has_w = weights ? parse_class_weights(cw_spec, ds, weights) : -1;
    if (has_w < 0) goto out;
    if (has_w) {
        double dw[64];
        int nw = K < 64 ? K : 64;
        for (int c = 0; c < nw; c++) dw[c] = weights[c];
        aibox_model_set_meta_floats(m, "aibox.train.class_weights", nw, dw, NULL);
    }

    /* loaders: training (shuffled, augmented) and validation (in order, never augmented) */
    if ((s = aibox_loader_create(&tl, ds, &pp, &(aibox_loader_opts){.split = AIBOX_SPLIT_TRAIN, .batch = (int)batch, .shuffle = 1, .augment = aug_mask, .aug_p = (float)aug_p, .seed = (uint64_t)seed, .threads = (int)threads}, &err)) ||
        ((val_on_train || n_val > 0) &&
         (s = aibox_loader_create(&vl, ds, &pp, &(aibox_loader_opts){.split = val_split_id, .batch = (int)batch, .seed = (uint64_t)seed, .threads = (int)threads}, &err)))) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        goto out;
    }
    aibox_batch_source tsrc = aibox_loader_source(tl), vsrc = aibox_loader_source(vl);
    char dir_buf[4096];
    if (!out_dir) {
        snprintf(dir_buf, sizeof dir_buf, "%s", out);
        char *dot = strrchr(dir_buf, '.');
        if (dot && !strcmp(dot, ".aibox")) *dot = 0;
        strncat(dir_buf, ".train", sizeof dir_buf - strlen(dir_buf) - 1);
        out_dir = dir_buf;
    }
    mkdir(out_dir, 0777);
    aibox_error werr = {0};
    if (!write_split_list(ds, out_dir, &werr))
        fprintf(stderr, "%s: warning: cannot write %s/split.csv: %s\n", prog, out_dir, werr.msg[0] ? werr.msg : "out of memory");
    progress pr = {isatty(2), quiet};
    aibox_train_opts o = {.epochs = (int)epochs,
                          .optim = {.kind = sgd ? AIBOX_SGD : AIBOX_ADAM, .lr = (float)lr, .momentum = sgd ? 0.9f : 0},
                          .patience = (int)patience,
                          .class_weights = has_w ? weights : NULL,
                          .seed = (uint64_t)seed,
                          .out_dir = out_dir,
                          .resume = resume,
                          .stop = (const volatile int *)&stop_flag,
                          .on_progress = on_progress,
                          .user = &pr};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (!quiet)
    {
        size_t n_par = aibox_model_param_count(m), hw = 0, hb = 0;
        if (bb && freeze) aibox_model_node_param(m, head, 0, &hw), aibox_model_node_param(m, head, 1, &hb);
        char trained[64] = "";
        if (bb && freeze) snprintf(trained, sizeof trained, " (%zu trained)", hw + hb);
        fprintf(stderr, "%s: %s %dx%dx%d, %zu parameters%s, %d threads, %s\n", prog, model_name, channels, (int)size,
                (int)size, n_par, trained, threads ? (int)threads : aibox_default_num_threads(), aibox_blas_core());
    }
    aibox_train_result res;
    int cached = bb && freeze && aug_mask == 0;
    double feat_seconds = 0;
    if (cached)
        s = transfer_train_cached(m, feat, head, (float)dropout, ds, &pp, vl ? (int)val_split_id : -1, (int)batch, &o,
                                  (int)threads, quiet, &res, &feat_seconds, &err);
    else
        s = aibox_train(m, &tsrc, (int)batch, vl ? &vsrc : NULL, &o, (int)threads, &res, &err);
    rc = 0;
    if (s == AIBOX_E_INTERRUPTED) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        rc = 130;
    } else if (s) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        rc = 3;
    } else {
        double test_acc = NAN;
        if (aibox_dataset_count(ds, AIBOX_SPLIT_TEST) > 0 &&
            (s = split_accuracy(m, ds, AIBOX_SPLIT_TEST, &pp, (int)batch, (int)threads, &test_acc, &err)))
            fprintf(stderr, "%s: test split: %s\n", prog, err.msg);
        if (!isnan(res.best_val_acc)) aibox_model_set_meta_float(m, "aibox.train.val_acc", res.best_val_acc, NULL);
        if ((s = aibox_model_save(m, out, &err))) {
            fprintf(stderr, "%s: %s\n", prog, err.msg);
            rc = 3;
        } else {
            cli_json j;
            cj_begin(&j, stdout);
            cj_str(&j, "model", out);
            cj_str(&j, "out_dir", out_dir);
            cj_int(&j, "classes", K);
            cj_int(&j, "train_images", n_train);
            cj_int(&j, "val_images", val_on_train ? n_train : n_val);
            cj_int(&j, "epochs_run", res.epochs_run);
            cj_int(&j, "best_epoch", res.best_epoch + 1);
            cj_num(&j, "val_acc", "%.6f", isnan(res.best_val_acc) ? -1.0 : res.best_val_acc);
            cj_num(&j, "val_loss", "%.6f", isnan(res.best_val_loss) ? -1.0 : res.best_val_loss);
            cj_int(&j, "first_perfect_epoch", res.first_perfect_epoch >= 0 ? res.first_perfect_epoch + 1 : -1);
            cj_num(&j, "first_perfect_seconds", "%.3f", res.first_perfect_seconds);
            cj_num(&j, "test_acc", "%.6f", isnan(test_acc) ? -1.0 : test_acc);
            cj_num(&j, "seconds", "%.3f", res.seconds);
            cj_bool(&j, "stopped_early", res.stopped_early);
            if (bb) {
                cj_str(&j, "backbone", backbone);
                cj_int(&j, "cut", cut);
                cj_bool(&j, "frozen", freeze);
                cj_str(&j, "init", scratch ? "random" : "pretrained");
                cj_bool(&j, "cached_features", cached);
                cj_num(&j, "feature_seconds", "%.3f", feat_seconds);
            }
            cj_arr(&j, "skipped");
            for (int i = 0; i < n_skip; i++) {
                const char *p, *why;
                aibox_dataset_skipped(ds, i, &p, &why);
                cj_obj(&j, NULL);
                cj_str(&j, "file", p);
                cj_str(&j, "reason", why);
                cj_close(&j);
            }
            cj_end(&j);
        }
    }
out:
    aibox_loader_free(&tl);
    aibox_loader_free(&vl);
    aibox_model_free(&m);
    aibox_model_free(&bb);
    aibox_dataset_free(&ds);
    free(weights);
    return rc;
}

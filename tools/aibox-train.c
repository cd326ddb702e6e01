/* aibox-train: train an image classifier from a folder (the AI-Box
 * pipeline). Logs and progress on stderr; one JSON summary line on stdout. */
#include <dirent.h>
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
#include "train_anomaly.h"
#include "train_sound.h"
#ifdef AIBOX_MPI
#include "mpi/mpi_tool.h"
#endif

static const char usage[] =
    "usage: aibox-train DATA -o MODEL.aibox [options]\n"
    "       aibox-train padim GOOD_DIR -o MODEL.aibox --backbone FILE [options]  (see padim --help)\n"
    "       aibox-train patchcore GOOD_DIR -o MODEL.aibox --backbone FILE [options]  (see patchcore --help)\n"
    "       aibox-train autoencoder GOOD_DIR -o MODEL.aibox [options]  (see autoencoder --help)\n"
    "       aibox-train sound DATA -o MODEL.aibox [options]  (recordings; see sound --help)\n"
    "       aibox-train sound-outlier GOOD... -o MODEL.aibox [options]  (see sound-outlier --help)\n"
    "Trains an image classifier on DATA/<class>/* (a seeded validation split is held out) or\n"
    "DATA/train/<class> + DATA/val/<class> (+ DATA/test/<class>). A DATA whose class folders hold\n"
    "sound files and no images is trained as aibox-train sound DATA (its options then apply).\n"
    "  --store DIR            train on the labelled samples of a sample store (aibox-store) instead of\n"
    "                         DATA (its classes with a labelled sample; a seeded validation split)\n"
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
    "  --out-dir DIR          best.aibox, last.aibox, train.csv, metrics.json, split.csv (which\n"
    "                         image went to which split), results.png (loss and accuracy per epoch)\n"
    "                         and confusion.png (default: MODEL.train)\n"
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
    "Exit status: 0 trained, 2 bad usage or data, 3 training failed, 130 interrupted.\n"
#ifdef AIBOX_MPI
    "\nThis build runs across processes: mpirun -np N aibox-train ... trains data-parallel, each rank\n"
    "on its shard of every global batch of N x --batch images (the same steps as one process with\n"
    "--batch N x B); rank 0 writes the model, checkpoints and summary; --resume takes any N.\n"
    "One failing rank ends all (exit status as above).\n"
#endif
    ;

/* A folder of recordings — sound files and no images in DATA/<class>/ or
 * DATA/train/<class>/ — is trained as `aibox-train sound DATA` would: the
 * user need not know that sound has its own subcommand. */
static int holds_recordings(const char *data)
{
    int sound = 0, image = 0;
    static const char *const roots[2] = {"", "/train"};
    for (int r = 0; r < 2; r++) {
        char top[4096];
        snprintf(top, sizeof top, "%s%s", data, roots[r]);
        DIR *d = opendir(top);
        if (!d) continue;
        struct dirent *c;
        while ((c = readdir(d))) {
            if (c->d_name[0] == '.') continue;
            char sub[8192];
            snprintf(sub, sizeof sub, "%s/%s", top, c->d_name);
            DIR *k = opendir(sub);
            if (!k) continue;
            struct dirent *f;
            while ((f = readdir(k))) sound += aibox_is_sound_name(f->d_name), image += aibox_is_image_name(f->d_name);
            closedir(k);
        }
        closedir(d);
    }
    return sound > 0 && image == 0;
}

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

/* The command line, as parsed. */
typedef struct {
    const char *data, *out, *model_name, *out_dir, *resume, *cw_spec, *aug_spec, *preview_dir, *resize;
    const char *backbone, *tap;
    long size, epochs, batch, patience, threads, min_samples, preview_n, seed, max_pixels, stride;
    double lr, val_split, aug_p, dropout;
    int freeze, scratch, fixed_input; /* freeze: -1 until decided; fixed_input: options a backbone decides */
    int gray, strict, quiet, val_on_train, sgd, store; /* store: data is a sample store */
} train_args;

static const char prog[] = "aibox-train";

/* One option at argv[*i] (its value, if any, after it); 1 when taken, 0
 * after an error message, -1 for --help / --version (printed). */
static int parse_option(train_args *a, int argc, char **argv, int *i)
{
    const char *o = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    int ok = 1;
    if (cli_help_or_version(prog, o, usage)) return -1;
    else if ((!strcmp(o, "-o") || !strcmp(o, "--output")) && v) a->out = v, (*i)++;
    else if (!strcmp(o, "--model") && v) a->model_name = v, (*i)++, a->fixed_input++;
    else if (!strcmp(o, "--backbone") && v) a->backbone = v, (*i)++;
    else if (!strcmp(o, "--tap") && v) a->tap = v, (*i)++;
    else if (!strcmp(o, "--freeze")) a->freeze = 1;
    else if (!strcmp(o, "--no-freeze")) a->freeze = 0;
    else if (!strcmp(o, "--from-scratch")) a->scratch = 1;
    else if (!strcmp(o, "--stride")) ok = cli_int(prog, o, v, 1, 4096, &a->stride), (*i)++;
    else if (!strcmp(o, "--out-dir") && v) a->out_dir = v, (*i)++;
    else if (!strcmp(o, "--resume") && v) a->resume = v, (*i)++;
    else if (!strcmp(o, "--class-weight") && v) a->cw_spec = v, (*i)++;
    else if (!strcmp(o, "--augment") && v) a->aug_spec = v, (*i)++;
    else if (!strcmp(o, "--resize") && v) a->resize = v, (*i)++, a->fixed_input++;
    else if (!strcmp(o, "--no-augment")) a->aug_spec = "none";
    else if (!strcmp(o, "--gray")) a->gray = 1, a->fixed_input++;
    else if (!strcmp(o, "--rgb")) a->gray = 0, a->fixed_input++;
    else if (!strcmp(o, "--strict")) a->strict = 1;
    else if (!strcmp(o, "--quiet")) a->quiet = 1;
    else if (!strcmp(o, "--validate-on-train")) a->val_on_train = 1;
    else if (!strcmp(o, "--store") && v && !a->data) a->data = v, a->store = 1, (*i)++;
    else if (!strcmp(o, "--optimizer") && v) {
        if (!strcmp(v, "sgd")) a->sgd = 1;
        else if (strcmp(v, "adam")) {
            fprintf(stderr, "%s: --optimizer must be adam or sgd (got '%s')\n", prog, v);
            return 0;
        }
        (*i)++;
    } else if (!strcmp(o, "--size")) ok = cli_int(prog, o, v, 8, 4096, &a->size), (*i)++, a->fixed_input++;
    else if (!strcmp(o, "--epochs")) ok = cli_int(prog, o, v, 1, 1000000, &a->epochs), (*i)++;
    else if (!strcmp(o, "--batch")) ok = cli_int(prog, o, v, 1, 4096, &a->batch), (*i)++;
    else if (!strcmp(o, "--patience")) ok = cli_int(prog, o, v, 0, 1000000, &a->patience), (*i)++;
    else if (!strcmp(o, "--threads")) ok = cli_int(prog, o, v, 1, 1024, &a->threads), (*i)++;
    else if (!strcmp(o, "--min-samples")) ok = cli_int(prog, o, v, 1, 1L << 30, &a->min_samples), (*i)++;
    else if (!strcmp(o, "--max-pixels")) ok = cli_int(prog, o, v, 1, 2000000000L, &a->max_pixels), (*i)++;
    else if (!strcmp(o, "--seed")) ok = cli_int(prog, o, v, 0, 0x7fffffffL, &a->seed), (*i)++;
    else if (!strcmp(o, "--lr")) ok = cli_float(prog, o, v, 1e-9, 10, &a->lr), (*i)++;
    else if (!strcmp(o, "--val-split")) ok = cli_float(prog, o, v, 0, 0.9, &a->val_split), (*i)++;
    else if (!strcmp(o, "--aug-p")) ok = cli_float(prog, o, v, 0, 0.95, &a->aug_p), (*i)++;
    else if (!strcmp(o, "--dropout")) ok = cli_float(prog, o, v, 0, 0.95, &a->dropout), (*i)++;
    else if (!strcmp(o, "--preview-augment")) {
        ok = cli_int(prog, o, v, 1, 100000, &a->preview_n);
        a->preview_dir = *i + 2 < argc ? argv[*i + 2] : NULL;
        if (ok && !a->preview_dir) {
            fprintf(stderr, "%s: --preview-augment needs N and DIR\n", prog);
            return 0;
        }
        *i += 2;
    } else if (o[0] != '-' && !a->data) a->data = o;
    else {
        fprintf(stderr, "%s: unknown option, missing value or extra argument '%s' (see --help)\n", prog, o);
        return 0;
    }
    return ok;
}

/* Fills a from the command line; -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, train_args *a)
{
    *a = (train_args){.model_name = "small", .cw_spec = "none", .aug_spec = "all", .resize = "area", .epochs = 20,
                      .batch = 32, .min_samples = 30, .seed = 1, .max_pixels = 100000000, .val_split = 0.2,
                      .aug_p = 0.6, .dropout = 0.25, .freeze = -1, .gray = -1};
    for (int i = 1; i < argc; i++) {
        int r = parse_option(a, argc, argv, &i);
        if (r <= 0) return r < 0 ? 0 : 2;
    }
    const char *bad = NULL;
    if (!a->data) bad = "no data folder given (see --help)";
    else if (!a->out && !a->preview_dir) bad = "no output model given (-o MODEL.aibox)";
    else if (!a->backbone && (a->tap || a->stride || a->freeze >= 0 || a->scratch))
        bad = "--tap, --stride, --freeze, --no-freeze and --from-scratch need --backbone";
    else if (a->backbone && a->fixed_input)
        bad = "the backbone fixes the input: --model, --size, --gray, --rgb and --resize do not apply";
    else if (a->backbone && a->scratch && a->freeze == 1) bad = "--from-scratch trains the whole network: it cannot be --freeze";
    else if (a->backbone && a->tap && a->stride) bad = "--tap and --stride both choose the cut; give one";
    if (bad) {
        fprintf(stderr, "%s: %s\n", prog, bad);
        return 2;
    }
    if (a->freeze < 0) a->freeze = !a->scratch;
    return -1;
}

/* Everything one run holds. */
typedef struct {
    train_args a;
    aibox_error err;
    aibox_model *bb, *m;
    aibox_transfer_opts to;
    aibox_transfer_info ti;
    aibox_dataset *ds;
    aibox_loader *tl, *vl;
    aibox_preproc pp;
    unsigned aug_mask;
    aibox_resize_mode rmode;
    int classes, n_train, n_val, n_skip;
    float *weights;
    int has_w;
    const char *out_dir;
    char dir_buf[4096];
    const aibox_comm *comm; /* the ranks (MPI build under mpirun), or NULL */
    int rank;               /* 0 prints and writes */
} run;

static void run_free(run *r)
{
    aibox_loader_free(&r->tl);
    aibox_loader_free(&r->vl);
    aibox_model_free(&r->m);
    aibox_model_free(&r->bb);
    aibox_dataset_free(&r->ds);
    free(r->weights);
}

/* The backbone first: a bad file or cut fails before any data is read or anything written. */
static int open_backbone(run *r)
{
    const train_args *a = &r->a;
    if (!a->backbone) return -1;
    r->to = (aibox_transfer_opts){.tap = a->tap, .stride = (int)a->stride, .dropout = (float)a->dropout,
                                  .freeze = a->freeze, .from_scratch = a->scratch, .seed = (uint64_t)a->seed,
                                  .name = a->backbone};
    if (aibox_import(&r->bb, a->backbone, NULL, &r->err)) {
        fprintf(stderr, "%s: --backbone %s\n", prog, r->err.msg);
        return 2;
    }
    if (aibox_transfer_cut(r->bb, &r->to, &r->err) < 0) {
        fprintf(stderr, "%s: %s%s%s\n", prog, a->tap ? "--tap " : "", r->err.msg,
                a->tap || a->stride ? "" : "; use --tap NODE");
        return 2;
    }
    return -1;
}

/* The augmentations, the resize mode and the data set (its skip list
 * printed); --preview-augment ends here. */
static int open_data(run *r)
{
    const train_args *a = &r->a;
    if (aibox_augment_parse(a->aug_spec, &r->aug_mask, &r->err) || aibox_resize_mode_parse(a->resize, &r->rmode)) {
        fprintf(stderr, "%s: %s\n", prog, r->err.msg[0] ? r->err.msg : "--resize must be area, bilinear, bilinear_center or nearest");
        return 2;
    }
    aibox_dataset_opts dopts = {.val_split = a->val_on_train ? -1.0f : (a->val_split > 0 ? (float)a->val_split : -1.0f),
                                .seed = (uint64_t)a->seed,
                                .strict = a->strict,
                                .min_samples = (int)a->min_samples,
                                .max_pixels = a->max_pixels,
                                .threads = (int)a->threads};
    if ((a->store ? aibox_store_dataset_open : aibox_dataset_open)(&r->ds, a->data, &dopts, &r->err)) {
        fprintf(stderr, "%s: %s\n", prog, r->err.msg);
        return 2;
    }
    r->n_skip = aibox_dataset_skipped_count(r->ds);
    for (int i = 0; i < r->n_skip; i++) {
        const char *p, *why;
        aibox_dataset_skipped(r->ds, i, &p, &why);
        fprintf(stderr, "%s: skipped %s: %s\n", prog, p, why);
    }
    r->classes = aibox_dataset_class_count(r->ds);
    r->n_train = aibox_dataset_count(r->ds, AIBOX_SPLIT_TRAIN), r->n_val = aibox_dataset_count(r->ds, AIBOX_SPLIT_VAL);
    if (!a->quiet)
        fprintf(stderr, "%s: %s: %d classes, %d training images, %d validation%s, %d skipped\n", prog, a->data,
                r->classes, r->n_train, a->val_on_train ? r->n_train : r->n_val,
                a->val_on_train ? " (the training images)" : "", r->n_skip);
    if (!a->preview_dir) return -1;
    if (aibox_dataset_preview_augment(r->ds, (int)a->preview_n, a->preview_dir, r->aug_mask, (float)a->aug_p,
                                      (uint64_t)a->seed, &r->err)) {
        fprintf(stderr, "%s: %s\n", prog, r->err.msg);
        return 2;
    }
    if (!a->quiet) fprintf(stderr, "%s: wrote %ld augmented samples to %s\n", prog, a->preview_n, a->preview_dir);
    return 0;
}

/* The model: the backbone cut with a new head (its metadata written by the
 * library), or a preset drawn from the seed; pp: its preprocessing. */
static int build_model(run *r)
{
    const train_args *a = &r->a;
    aibox_status s;
    if (r->bb) {
        s = aibox_transfer_build(&r->m, r->bb, r->classes, aibox_dataset_class_names(r->ds), &r->to, &r->ti, &r->err);
        if (!s) s = aibox_preproc_from_model(&r->pp, r->m, &r->err);
        if (!s && !a->quiet) {
            int c, h, w, cut = r->ti.cut;
            aibox_model_node_shape(r->bb, cut, &c, &h, &w);
            fprintf(stderr, "%s: backbone %s cut at node %d (%s, %dx%dx%d)%s, %s; new head for %d classes\n", prog,
                    a->backbone, cut, aibox_layer_kind_name(aibox_model_node_kind(r->bb, cut)), c, h, w,
                    a->scratch ? ", weights drawn afresh" : "", a->freeze ? "frozen" : "trained", r->classes);
        }
    } else {
        int channels = a->gray == 1 ? 1 : a->gray == 0 ? 3 : (aibox_dataset_channels(r->ds) == 1 ? 1 : 3);
        int size = a->size ? (int)a->size : !strcmp(a->model_name, "small") ? 64 : !strcmp(a->model_name, "alexnet") ? 256 : 224;
        s = !strcmp(a->model_name, "alexnet") ? aibox_preset_alexnet(&r->m, r->classes, channels, size, (float)a->dropout, &r->err)
                                              : aibox_preset(&r->m, a->model_name, r->classes, channels, size, &r->err);
        if (!s) s = aibox_model_init_params(r->m, (uint64_t)a->seed, &r->err);
        if (!s) {
            aibox_preproc_default(&r->pp, r->m);
            r->pp.resize = r->rmode;
        }
    }
    if (!s) return -1;
    fprintf(stderr, "%s: %s\n", prog, r->err.msg);
    return 2;
}

static int cached_features(const run *r);

/* The loaders (training: shuffled, augmented; validation: in order, never
 * augmented) and the model's metadata. A transferred model has its
 * preprocessing and class names from aibox_transfer_build; a preset gets them
 * here, where the keys stand in the file, from the training source's describe
 * hook (which aibox_train calls again). Then task, seed and class weights. */
static int prepare_model(run *r)
{
    const train_args *a = &r->a;
    aibox_status s;
    int has_val = a->val_on_train || r->n_val > 0;
    aibox_loader_opts lo = {.split = AIBOX_SPLIT_TRAIN, .batch = (int)a->batch, .shuffle = 1, .augment = r->aug_mask,
                            .aug_p = (float)a->aug_p, .seed = (uint64_t)a->seed, .threads = (int)a->threads};
    aibox_loader_opts vo = {.split = a->val_on_train ? AIBOX_SPLIT_TRAIN : AIBOX_SPLIT_VAL, .batch = (int)a->batch,
                            .seed = (uint64_t)a->seed, .threads = (int)a->threads};
    r->weights = calloc((size_t)r->classes, sizeof *r->weights);
    r->has_w = r->weights ? parse_class_weights(a->cw_spec, r->ds, r->weights) : -1;
    if (r->has_w < 0) return 2;
    if (!(s = aibox_loader_create(&r->tl, r->ds, &r->pp, &lo, &r->err)) && has_val)
        s = aibox_loader_create(&r->vl, r->ds, &r->pp, &vo, &r->err);
    if (!s && r->comm) { /* each rank its slice of every global batch */
        if (cached_features(r)) {
            fprintf(stderr, "%s: a frozen backbone without augmentation trains its head on cached features in one "
                            "process: run it without mpirun\n", prog);
            return 2;
        }
        if (!(s = aibox_loader_shard(r->tl, r->comm->rank, r->comm->size, &r->err)) && r->vl)
            s = aibox_loader_shard(r->vl, r->comm->rank, r->comm->size, &r->err);
    }
    aibox_batch_source src = aibox_loader_source(r->tl);
    if (!s && !r->bb && !(s = src.describe(src.user, r->m, &r->err)))
        s = aibox_model_set_meta_str(r->m, AIBOX_META_TASK, "classify", &r->err);
    if (s || (s = aibox_model_set_meta_int(r->m, "aibox.seed", a->seed, &r->err))) {
        fprintf(stderr, "%s: %s\n", prog, r->err.msg);
        return 2;
    }
    if (r->has_w) {
        double dw[64];
        int nw = r->classes < 64 ? r->classes : 64;
        for (int c = 0; c < nw; c++) dw[c] = r->weights[c];
        aibox_model_set_meta_floats(r->m, "aibox.train.class_weights", nw, dw, NULL);
    }
    return -1;
}

/* The output folder (MODEL.train by default) and its split.csv. */
static void prepare_output(run *r)
{
    r->out_dir = r->a.out_dir;
    if (!r->out_dir) {
        snprintf(r->dir_buf, sizeof r->dir_buf, "%s", r->a.out);
        char *dot = strrchr(r->dir_buf, '.');
        if (dot && !strcmp(dot, ".aibox")) *dot = 0;
        strncat(r->dir_buf, ".train", sizeof r->dir_buf - strlen(r->dir_buf) - 1);
        r->out_dir = r->dir_buf;
    }
    if (r->rank) return; /* rank 0 writes */
    mkdir(r->out_dir, 0777);
    aibox_error werr = {0};
    if (!write_split_list(r->ds, r->out_dir, &werr))
        fprintf(stderr, "%s: warning: cannot write %s/split.csv: %s\n", prog, r->out_dir,
                werr.msg[0] ? werr.msg : "out of memory");
}

static int cached_features(const run *r)
{
    return r->bb && r->a.freeze && r->aug_mask == 0;
}

/* Trains: the head on cached features when the backbone is frozen and
 * nothing is augmented (the trunk's output is then the same every epoch),
 * else the whole model. *feat_seconds: the features' time. */
static aibox_status train(run *r, const aibox_train_opts *o, aibox_train_result *res, double *feat_seconds)
{
    const train_args *a = &r->a;
    if (!cached_features(r)) {
        aibox_batch_source tsrc = aibox_loader_source(r->tl), vsrc = aibox_loader_source(r->vl);
        return aibox_train_dist(r->m, &tsrc, (int)a->batch, r->vl ? &vsrc : NULL, o, r->comm, (int)a->threads, res,
                                &r->err);
    }
    aibox_transfer_features *f = NULL;
    aibox_transfer_features_stats st;
    aibox_transfer_features_opts fo = {.batch = (int)a->batch, .validation = a->val_on_train ? 1 : 0,
                                       .seed = (uint64_t)a->seed, .threads = (int)a->threads};
    aibox_status s = aibox_transfer_features_create(&f, r->m, r->ds, &r->pp, &fo, &st, &r->err);
    if (!s) {
        *feat_seconds = st.seconds;
        if (!a->quiet)
            fprintf(stderr, "%s: frozen backbone, no augmentation: %d-value features of %d + %d images computed "
                            "once in %.1fs; the head trains on them\n",
                    prog, st.dim, st.train, st.val, st.seconds);
        s = aibox_transfer_train_head(r->m, f, o, (int)a->threads, res, &r->err);
    }
    aibox_transfer_features_free(&f);
    return s;
}

/* The summary line on stdout. */
static void print_summary(const run *r, const aibox_train_result *res, double test_acc, double feat_seconds)
{
    const train_args *a = &r->a;
    cli_json j;
    cj_begin(&j, stdout);
    cj_str(&j, "model", a->out);
    cj_str(&j, "out_dir", r->out_dir);
    cj_int(&j, "classes", r->classes);
    cj_int(&j, "train_images", r->n_train);
    cj_int(&j, "val_images", a->val_on_train ? r->n_train : r->n_val);
    cj_int(&j, "epochs_run", res->epochs_run);
    cj_int(&j, "best_epoch", res->best_epoch + 1);
    cj_num(&j, "val_acc", "%.6f", isnan(res->best_val_acc) ? -1.0 : res->best_val_acc);
    cj_num(&j, "val_loss", "%.6f", isnan(res->best_val_loss) ? -1.0 : res->best_val_loss);
    cj_int(&j, "first_perfect_epoch", res->first_perfect_epoch >= 0 ? res->first_perfect_epoch + 1 : -1);
    cj_num(&j, "first_perfect_seconds", "%.3f", res->first_perfect_seconds);
    cj_num(&j, "test_acc", "%.6f", isnan(test_acc) ? -1.0 : test_acc);
    cj_num(&j, "seconds", "%.3f", res->seconds);
    cj_bool(&j, "stopped_early", res->stopped_early);
    if (r->bb) {
        cj_str(&j, "backbone", a->backbone);
        cj_int(&j, "cut", r->ti.cut);
        cj_bool(&j, "frozen", a->freeze);
        cj_str(&j, "init", a->scratch ? "random" : "pretrained");
        cj_bool(&j, "cached_features", cached_features(r));
        cj_num(&j, "feature_seconds", "%.3f", feat_seconds);
    }
    cj_arr(&j, "skipped");
    for (int i = 0; i < r->n_skip; i++) {
        const char *p, *why;
        aibox_dataset_skipped(r->ds, i, &p, &why);
        cj_obj(&j, NULL);
        cj_str(&j, "file", p);
        cj_str(&j, "reason", why);
        cj_close(&j);
    }
    cj_end(&j);
}

/* Training (Ctrl-C and SIGTERM stop it), the test split's accuracy, the
 * model file and the summary; the exit code. */
static int train_and_report(run *r)
{
    const train_args *a = &r->a;
    progress pr = {isatty(2), a->quiet || r->rank};
    aibox_train_opts o = {.epochs = (int)a->epochs,
                          .optim = {.kind = a->sgd ? AIBOX_SGD : AIBOX_ADAM, .lr = (float)a->lr, .momentum = a->sgd ? 0.9f : 0},
                          .patience = (int)a->patience,
                          .class_weights = r->has_w ? r->weights : NULL,
                          .seed = (uint64_t)a->seed,
                          .out_dir = r->out_dir,
                          .resume = a->resume,
                          .stop = (const volatile int *)&stop_flag,
                          .on_progress = on_progress,
                          .user = &pr};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (!a->quiet && !r->rank) {
        size_t n_par = aibox_model_param_count(r->m), hw = 0, hb = 0;
        char trained[64] = "";
        if (r->bb && a->freeze) {
            aibox_model_node_param(r->m, r->ti.head_node, 0, &hw), aibox_model_node_param(r->m, r->ti.head_node, 1, &hb);
            snprintf(trained, sizeof trained, " (%zu trained)", hw + hb);
        }
        char ranks[64] = "";
        if (r->comm)
            snprintf(ranks, sizeof ranks, " per rank, %d ranks (global batch %ld)", r->comm->size,
                     a->batch * r->comm->size);
        fprintf(stderr, "%s: %s %dx%dx%d, %zu parameters%s, %d threads%s, %s\n", prog,
                r->bb ? a->backbone : a->model_name, r->pp.channels, r->pp.height, r->pp.width, n_par, trained,
                a->threads ? (int)a->threads : aibox_default_num_threads(), ranks, aibox_blas_core());
    }
    aibox_train_result res;
    double feat_seconds = 0, test_acc = NAN;
    aibox_status s = train(r, &o, &res, &feat_seconds);
    if (s) {
        /* every rank stops alike on a stop or divergence: rank 0 says it */
        if (!r->rank || (s != AIBOX_E_INTERRUPTED && s != AIBOX_E_NONFINITE))
            fprintf(stderr, "%s: %s%s\n", prog, r->rank ? "rank " : "", r->err.msg);
        return s == AIBOX_E_INTERRUPTED ? 130 : 3;
    }
    if (r->rank) return 0; /* rank 0 tests, saves and reports */
    if (aibox_dataset_count(r->ds, AIBOX_SPLIT_TEST) > 0 &&
        split_accuracy(r->m, r->ds, AIBOX_SPLIT_TEST, &r->pp, (int)a->batch, (int)a->threads, &test_acc, &r->err))
        fprintf(stderr, "%s: test split: %s\n", prog, r->err.msg);
    if (!isnan(res.best_val_acc)) aibox_model_set_meta_float(r->m, "aibox.train.val_acc", res.best_val_acc, NULL);
    if (aibox_model_save(r->m, a->out, &r->err)) {
        fprintf(stderr, "%s: %s\n", prog, r->err.msg);
        return 3;
    }
    print_summary(r, &res, test_acc, feat_seconds);
    return 0;
}

int main(int argc, char **argv)
{
    run r = {0};
#ifdef AIBOX_MPI
    mpi_tool mt;
    int rc = mpi_tool_init(&argc, &argv, prog, &mt);
    if (rc) return rc;
    if (mt.size > 1) r.comm = &mt.comm, r.rank = mt.rank;
#else
    int rc;
#endif
    if (argc > 1 && (!strcmp(argv[1], "padim") || !strcmp(argv[1], "patchcore") || !strcmp(argv[1], "autoencoder"))) {
        rc = anomaly_main(argv[1], argc - 1, argv + 1, r.comm);
        goto end;
    }
    if (argc > 1 && (!strcmp(argv[1], "sound") || !strcmp(argv[1], "sound-outlier"))) {
        if (r.comm) fprintf(stderr, "%s: %s runs in one process: run it without mpirun\n", prog, argv[1]), rc = 2;
        else rc = sound_main(argv[1], argc - 1, argv + 1);
        goto end;
    }
    if (argc > 1 && argv[1][0] != '-' && holds_recordings(argv[1])) {
        fprintf(stderr, "%s: %s holds recordings, not images: training a sound classifier (aibox-train sound)\n",
                prog, argv[1]);
        if (r.comm) fprintf(stderr, "%s: sound runs in one process: run it without mpirun\n", prog), rc = 2;
        else rc = sound_main("sound", argc, argv);
        goto end;
    }
    rc = parse_args(argc, argv, &r.a);
    if (rc < 0) rc = open_backbone(&r);
    if (rc < 0) rc = open_data(&r);
    if (rc < 0) rc = build_model(&r);
    if (rc < 0) rc = prepare_model(&r);
    if (rc < 0) {
        prepare_output(&r);
        rc = train_and_report(&r);
    }
    run_free(&r);
end:
#ifdef AIBOX_MPI
    /* a failed rank ends the job: the others may be waiting for it */
    if (rc > 0 && rc != 130) return mpi_tool_fail(&mt, rc);
    return mpi_tool_end(&mt, rc);
#else
    return rc;
#endif
}

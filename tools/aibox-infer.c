/* aibox-infer: judge images with a trained .aibox model (a classifier or an
 * anomaly model), one machine-readable line per image on stdout, logs on
 * stderr, exit codes a line script can act on. The library does the work
 * (aibox_classifier_*, aibox_detector_*); this parses, calls and prints. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aibox.h"
#include "cli.h"
#include "infer_sound.h"
#include "plc.h"
#include "record.h"
#ifdef AIBOX_MPI
#include "mpi/mpi_tool.h"
#endif

static const char usage[] =
    "usage: aibox-infer -m MODEL.aibox [options] IMAGE|DIR|- ...\n"
    "       aibox-infer -m SOUND_MODEL.aibox [options] RECORDING|DIR ...\n"
    "       aibox-infer -m SOUND_MODEL.aibox --stream --rate HZ [options] [FILE|-]\n"
    "Classifies images with a model trained by aibox-train or imported by aibox-import; one result\n"
    "line per image on stdout. Probabilities are the softmax of the model's outputs, or the outputs\n"
    "themselves when the model ends in a softmax (imported classifiers).\n"
    "  IMAGE        an image file (JPEG, PNG, BMP, PGM/PPM, TGA, GIF)\n"
    "  DIR          every file in the folder, sorted by name (not recursive; hidden names skipped;\n"
    "               an entry that is not a readable file, such as a FIFO, gets an error record)\n"
    "  -            one image's bytes read from standard input\n"
    "  -m, --model FILE     the .aibox model (required)\n"
    "  --stdin-list         read image paths from standard input, one per line, keeping the\n"
    "                       model loaded; the result line is flushed after each\n"
    "  --format F           jsonl (default), csv or text\n"
    "  --min-conf P         results whose top probability is below P are \"uncertain\" (default 0)\n"
    "  --ok-class NAME      the class that means a good part (repeatable or a comma list): one of\n"
    "                       the labels this tool prints (the model's class names, or 0, 1, ...\n"
    "                       for a model without them); the verdict is then OK, NG or uncertain.\n"
    "                       Without it the verdict is \"classified\" or \"uncertain\".\n"
    "  --threads N          threads (default: $AIBOX_THREADS or all CPUs)\n"
    "  --max-pixels N       refuse images whose header announces more pixels (default 100000000)\n"
    "  --min-side N         refuse images narrower or lower than N pixels (default 8, as aibox-train)\n"
    "  --info               print the model's metadata as JSON and exit (reads the graph and\n"
    "                       metadata only, not the weights; \"int8\": an 8-bit model, run in integers)\n"
    "  --explain DIR        classifiers: write a Grad-CAM overlay PNG per image (DIR/<name>.png),\n"
    "                       where the model looked for the class it predicted (its last\n"
    "                       convolution stage; red: strong evidence)\n"
    SOUND_USAGE
    PLC_USAGE
    "                       aibox-infer connects before the first image (exit 2 when it cannot)\n"
    "                       and writes each verdict before printing its line; a failed write is\n"
    "                       reported on stderr, the line still printed (exit 2). A classifier\n"
    "                       needs --ok-class.\n"
    "Anomaly models (aibox-train padim, patchcore or autoencoder; the same fields for all):\n"
    "  --heatmap DIR        write a colour overlay PNG per image (DIR/<name>.png)\n"
    "  --mask DIR           write a binary defect mask PNG per image (DIR/<name>.png)\n"
    "  --eval --normal-dir DIR --abnormal-dir DIR [--mask-dir DIR]\n"
    "                       evaluate instead: image AUROC, pixel AUROC, AUPRO (FPR <= 0.3),\n"
    "                       F1 at the stored threshold, per defect class (sub-folders of the\n"
    "                       abnormal folder); masks beside the images (STEM.png) or in\n"
    "                       --mask-dir; images the model was fitted on are left out, recognised\n"
    "                       by content (fingerprints stored at fit). One JSON line.\n"
    "                       Every map is kept for the pixel metrics: 0.25 MB per image at 224 px.\n"
    "  --version, --help\n"
    "JSON lines: {\"file\", \"label\", \"confidence\", \"probs\": {class: p}, \"verdict\", \"ms\"}; for\n"
    "anomaly models {\"file\", \"score\", \"norm_score\" (0.5 at the threshold), \"threshold\", \"verdict\" (OK/NG),\n"
    "\"regions\": [{x, y, w, h, area, peak}] in image pixels, \"n_regions\", \"ms\"} (regions: the\n"
    "map at or above the pixel threshold, which is the image threshold unless masks gave aibox-train\n"
    "an F1-optimal one; then an OK part may still show weak regions); or\n"
    "{\"file\", \"error\"} for an image that could not be processed (the others still are).\n"
    "Exit status: 0 every image OK (or classified), 1 at least one NG or uncertain,\n"
    "2 at least one image failed (or its verdict did not reach the PLC: the line is still printed,\n"
    "the error on stderr), the PLC could not be reached at start, or bad usage;\n"
    "3 the model could not be loaded.\n"
#ifdef AIBOX_MPI
    "\nThis build runs across processes: mpirun -np N aibox-infer -m MODEL IMAGE|DIR ... splits the\n"
    "images over the ranks and prints the lines in the same order as one process (files and\n"
    "folders only: not -, --stdin-list or --eval); the exit status is the worst over all images.\n"
#endif
    ;

typedef enum { FMT_JSONL, FMT_CSV, FMT_TEXT } out_format;

typedef struct options {
    const char *model, *normal_dir, *abnormal_dir, *mask_dir, *heat_dir, *mask_out_dir;
    char **inputs, **ok;
    int n_inputs, n_ok, stdin_list, info, eval, threads;
    double min_conf;
    long long max_pixels;
    long min_side;
    out_format fmt;
    plc_opts plc;
    const char *explain_dir; /* --explain */
    sound_cli sound;         /* recordings and streams (infer_sound.h) */
} options;

typedef struct infer {
    const options *o;
    aibox_model *m;        /* a classifier, with cls */
    aibox_classifier *cls;
    double *probs;
    aibox_detector *det;   /* an anomaly model */
    int worst;             /* exit status so far */
    FILE *out;             /* the result lines: stdout, or a rank's buffer under mpirun */
    plc *plc;              /* --modbus: the PLC each verdict is written to */
    aibox_gradcam *cam;    /* --explain, with a classifier */
} infer;

/* Each verdict to the PLC, before its line is printed (a script that has read
 * the line knows the PLC has it); a failed write is that image's error. */
static void to_plc(infer *in, const char *file, const char *verdict)
{
    char msg[512];
    if (!in->plc || !plc_write(in->plc, plc_verdict_of(verdict), msg, sizeof msg)) return;
    fprintf(stderr, "aibox-infer: %s: %s (verdict %s not delivered)\n", file, msg, verdict ? verdict : "error");
    if (in->worst < 2) in->worst = 2;
}

static void emit_error(infer *in, const char *file, const char *msg)
{
    to_plc(in, file, NULL); /* an image that could not be judged is no good part */
    if (in->o->fmt == FMT_JSONL) {
        cli_json j;
        cj_begin(&j, in->out);
        cj_str(&j, "file", file);
        cj_str(&j, "error", msg);
        cj_end(&j);
    } else if (in->o->fmt == FMT_CSV) {
        cli_csv_str(in->out, file);
        fputs(",,,error,,", in->out);
        cli_csv_str(in->out, msg);
        fputc('\n', in->out);
    } else {
        fprintf(in->out, "%s: error: %s\n", file, msg);
    }
    fprintf(stderr, "aibox-infer: %s\n", msg);
    if (in->worst < 2) in->worst = 2;
}

/* An error message naming the file (the library's may not). */
static void emit_failure(infer *in, const char *file, const aibox_error *e)
{
    char msg[4400];
    if (!strncmp(e->msg, file, strlen(file))) return emit_error(in, file, e->msg);
    snprintf(msg, sizeof msg, "%s: %s", file, e->msg);
    emit_error(in, file, msg);
}

static int write_png(infer *in, const char *dir, const char *file, const aibox_image *img);

static void classify(infer *in, const char *file, const aibox_image *img, double t0)
{
    aibox_error err = {0};
    aibox_classification r;
    if (aibox_classifier_run(in->cls, img, &r, in->probs, &err)) return emit_failure(in, file, &err);
    if (in->cam) { /* the overlay before the line, as the anomaly pictures */
        aibox_image pic = {0};
        int ok = !aibox_gradcam_overlay(in->cam, img, r.label, 0.5f, &pic, NULL, &err);
        if (!ok) emit_failure(in, file, &err);
        else ok = write_png(in, in->o->explain_dir, file, &pic);
        aibox_image_free(&pic);
        if (!ok) return;
    }
    const record_policy pol = {in->o->min_conf, in->o->ok, in->o->n_ok};
    const char *verdict = record_cls_verdict(&pol, &r);
    if (strcmp(verdict, "OK") && strcmp(verdict, "classified") && in->worst < 1) in->worst = 1;
    to_plc(in, file, verdict);
    double ms = (cli_now() - t0) * 1e3;
    if (in->o->fmt == FMT_JSONL) {
        cli_json j;
        cj_begin(&j, in->out);
        record_cls_json(&j, file, &r, in->cls, in->probs, verdict, ms);
        cj_end(&j);
    } else if (in->o->fmt == FMT_CSV) {
        cli_csv_str(in->out, file);
        fputc(',', in->out);
        cli_csv_str(in->out, r.name);
        fprintf(in->out, ",%.6f,%s,%.3f,\n", r.confidence, verdict, ms);
    } else {
        fprintf(in->out, "%s: %s %.1f%% %s (%.1f ms)\n", file, r.name, 100 * r.confidence, verdict, ms);
    }
}

/* Writes a picture into dir as <stem of file>.png (atomic); 0 on failure (reported). */
static int write_png(infer *in, const char *dir, const char *file, const aibox_image *img)
{
    char path[4400];
    const char *leaf = strrchr(file, '/');
    leaf = leaf ? leaf + 1 : file;
    const char *dot = strrchr(leaf, '.');
    snprintf(path, sizeof path, "%s/%.*s.png", dir, (int)(dot ? (size_t)(dot - leaf) : strlen(leaf)), leaf);
    aibox_error err = {0};
    if (!aibox_image_write_png(img, path, &err)) return 1;
    emit_error(in, file, err.msg);
    return 0;
}

/* The heatmap and mask pictures of the image just run; 0 on failure (reported). */
static int pictures(infer *in, const char *file, const aibox_image *img)
{
    aibox_error err = {0};
    aibox_image pic = {0};
    int ok = 1;
    if (in->o->mask_out_dir) {
        if (aibox_detector_mask(in->det, &pic, &err)) emit_failure(in, file, &err), ok = 0;
        else ok = write_png(in, in->o->mask_out_dir, file, &pic);
        aibox_image_free(&pic);
    }
    if (ok && in->o->heat_dir) {
        if (aibox_detector_heatmap(in->det, img, &pic, &err)) emit_failure(in, file, &err), ok = 0;
        else ok = write_png(in, in->o->heat_dir, file, &pic);
        aibox_image_free(&pic);
    }
    return ok;
}

static void detect(infer *in, const char *file, const aibox_image *img, double t0)
{
    aibox_error err = {0};
    aibox_detection r;
    double t1 = cli_now();
    if (aibox_detector_run(in->det, img, &r, &err)) return emit_failure(in, file, &err);
    if (!pictures(in, file, img)) return;
    const char *verdict = r.ng ? "NG" : "OK";
    if (r.ng && in->worst < 1) in->worst = 1;
    to_plc(in, file, verdict);
    double ms = (cli_now() - t0) * 1e3, thr = aibox_detector_thresholds(in->det)->image;
    if (in->o->fmt == FMT_JSONL) {
        cli_json j;
        cj_begin(&j, in->out);
        record_det_json(&j, file, &r, thr, (t1 - t0) * 1e3, ms);
        cj_end(&j);
    } else if (in->o->fmt == FMT_CSV) {
        cli_csv_str(in->out, file);
        fprintf(in->out, ",%.6g,%.6f,%s,%d,%.3f,\n", r.score, r.norm_score, verdict, r.n_regions, ms);
    } else {
        fprintf(in->out, "%s: %s score %.4g (normalised %.3f, threshold %.4g), %d region%s (%.1f ms)\n", file, verdict, r.score,
               r.norm_score, thr, r.n_regions, r.n_regions == 1 ? "" : "s", ms);
    }
}

/* One decoded image through the model, and its line. */
static void judge(infer *in, const char *file, const aibox_image *img, double t0)
{
    if (img->width < in->o->min_side || img->height < in->o->min_side) {
        char msg[4300];
        snprintf(msg, sizeof msg, "%s: too small: %dx%d (each side must be at least %ld pixels)", file, img->width,
                 img->height, in->o->min_side);
        return emit_error(in, file, msg);
    }
    if (in->det) detect(in, file, img, t0);
    else classify(in, file, img, t0);
}

static void process_file(infer *in, const char *path)
{
    double t0 = cli_now();
    aibox_image img = {0};
    aibox_error err = {0};
    if (aibox_image_load(&img, path, in->o->max_pixels, &err)) return emit_error(in, path, err.msg);
    judge(in, path, &img, t0);
    aibox_image_free(&img);
}

static void process_dir(infer *in, const char *dir)
{
    aibox_file_list l = {0};
    aibox_error err = {0};
    if (aibox_list_files(&l, dir, NULL, &err)) return emit_error(in, dir, err.msg); /* sub-folders: not recursive */
    for (int i = 0; i < l.n; i++) {
        process_file(in, l.path[i]); /* a FIFO or a broken link gets an error record saying so */
        fflush(in->out);
    }
    aibox_file_list_free(&l);
}

static void process_stdin_image(infer *in)
{
    double t0 = cli_now();
    unsigned char *buf = NULL;
    size_t len = 0;
    aibox_error err = {0};
    aibox_image img = {0};
    if (aibox_read_fd(0, "stdin", (size_t)1 << 30, &buf, &len, &err) ||
        aibox_image_decode(&img, buf, len, "stdin", in->o->max_pixels, &err))
        emit_error(in, "stdin", err.msg);
    else judge(in, "stdin", &img, t0);
    aibox_image_free(&img);
    free(buf);
}

/* Runs every input (files, folders, "-", then --stdin-list paths). */
static int process_inputs(infer *in)
{
    const options *o = in->o;
    for (int i = 0; i < o->n_inputs; i++) {
        struct stat st;
        if (!strcmp(o->inputs[i], "-")) process_stdin_image(in);
        else if (stat(o->inputs[i], &st) == 0 && S_ISDIR(st.st_mode)) process_dir(in, o->inputs[i]);
        else process_file(in, o->inputs[i]);
        fflush(in->out);
    }
    if (o->stdin_list) {
        char line[8192];
        while (fgets(line, sizeof line, stdin)) {
            line[strcspn(line, "\r\n")] = 0;
            if (!line[0]) continue;
            process_file(in, line);
            fflush(in->out); /* a waiting line script gets each answer at once */
        }
    }
    return in->worst;
}

#ifdef AIBOX_MPI
/* Under mpirun: the files of every input in order (a folder that cannot be
 * listed is an item of its own, its error record), dealt out in rounds of
 * ROUND per rank; each rank's lines of a round go to rank 0, which prints
 * them in file order. Returns the worst status over all ranks. */
#define ROUND 8
static int process_ranks(infer *in, const mpi_tool *mt)
{
    const options *o = in->o;
    aibox_file_list l;
    char **items = NULL;
    int n = 0, cap = 0, ok = 1;
    for (int i = 0; ok && i < o->n_inputs; i++) {
        struct stat st;
        aibox_error err = {0};
        int is_dir = stat(o->inputs[i], &st) == 0 && S_ISDIR(st.st_mode);
        memset(&l, 0, sizeof l);
        int listed = is_dir && aibox_list_files(&l, o->inputs[i], NULL, &err) == AIBOX_OK;
        int add = listed ? l.n : 1;
        if (n + add > cap) {
            cap = (n + add) * 2;
            char **grown = realloc(items, (size_t)cap * sizeof *items);
            ok = grown != NULL;
            if (ok) items = grown;
        }
        for (int k = 0; ok && k < add; k++) ok = (items[n++] = strdup(listed ? l.path[k] : o->inputs[i])) != NULL;
        if (listed) aibox_file_list_free(&l);
    }
    if (!ok) fprintf(stderr, "aibox-infer: out of memory for the file list\n"), in->worst = 2;
    const int per = ROUND * mt->size;
    for (int r0 = 0; ok && r0 < n; r0 += per) {
        char *text = NULL;
        size_t len = 0;
        FILE *buf = open_memstream(&text, &len);
        if (!buf) {
            fprintf(stderr, "aibox-infer: out of memory\n");
            return mpi_tool_fail(mt, 2);
        }
        in->out = buf;
        for (int k = r0 + mt->rank * ROUND; k < r0 + (mt->rank + 1) * ROUND && k < n; k++) {
            struct stat st;
            if (stat(items[k], &st) == 0 && S_ISDIR(st.st_mode)) process_dir(in, items[k]); /* unlistable */
            else process_file(in, items[k]);
        }
        fclose(buf);
        in->out = stdout;
        mpi_tool_print_in_order(mt, text, len, stdout);
        fflush(stdout);
        free(text);
    }
    for (int k = 0; k < n; k++) free(items[k]);
    free(items);
    return mpi_tool_max(mt, in->worst);
}
#endif

static void print_info(const aibox_model *m, const char *path)
{
    cli_json j;
    cj_begin(&j, stdout);
    cj_str(&j, "file", path);
    record_model_info(&j, m);
    cj_end(&j);
}

static void on_eval_failure(void *user, const char *path, const aibox_error *e) { emit_failure(user, path, e); }

static void on_eval_progress(void *user, int done, int total)
{
    (void)user;
    if (isatty(2)) fprintf(stderr, "\raibox-infer: evaluating %d/%d%s", done, total, done == total ? "\n" : "");
}

/* --eval: one JSON line of metrics. */
static int evaluate(infer *in)
{
    const options *o = in->o;
    aibox_eval_opts eo = {o->normal_dir, o->abnormal_dir, o->mask_dir, o->max_pixels, 0, on_eval_failure,
                          on_eval_progress, in};
    aibox_eval_result r;
    aibox_error err = {0};
    if (aibox_detector_evaluate(in->det, &eo, &r, &err)) {
        fprintf(stderr, "aibox-infer: %s\n", err.msg);
        return err.code == AIBOX_E_NOMEM ? 3 : 2;
    }
    if (!r.fingerprints)
        fprintf(stderr, "aibox-infer: the model does not record its fitted images' content (made before fingerprints): "
                        "none left out; if %s holds images it was fitted on, the metrics are optimistic\n", o->normal_dir);
    else if (r.excluded)
        fprintf(stderr, "aibox-infer: left out %d normal images: their content equals images the model was fitted on\n",
                r.excluded);
    cli_json j;
    cj_begin(&j, stdout);
    cj_int(&j, "normal", r.normal), cj_int(&j, "abnormal", r.abnormal);
    cj_int(&j, "excluded_fit_images", r.excluded);
    cj_str(&j, "excluded_by", r.fingerprints ? "content fingerprint" : NULL);
    cj_int(&j, "failed", r.failed);
    cj_num(&j, "image_auroc", "%.6f", r.image_auroc), cj_num(&j, "pixel_auroc", "%.6f", r.pixel_auroc);
    cj_num(&j, "aupro", "%.6f", r.aupro), cj_num(&j, "threshold", "%.6g", r.threshold), cj_num(&j, "f1", "%.6f", r.f1);
    cj_obj(&j, "confusion");
    cj_int(&j, "tp", r.tp), cj_int(&j, "fp", r.fp), cj_int(&j, "fn", r.fn), cj_int(&j, "tn", r.tn);
    cj_close(&j);
    cj_obj(&j, "per_class");
    for (int c = 0; c < r.n_classes; c++) {
        cj_obj(&j, r.classes[c].name[0] ? r.classes[c].name : "(top)");
        cj_int(&j, "n", r.classes[c].n);
        cj_num(&j, "image_auroc", "%.6f", r.classes[c].image_auroc);
        cj_int(&j, "detected", r.classes[c].detected);
        cj_close(&j);
    }
    cj_close(&j);
    cj_num(&j, "seconds", "%.3f", r.seconds);
    cj_num(&j, "ms_per_image", "%.3f", r.normal + r.abnormal ? r.seconds * 1e3 / (r.normal + r.abnormal) : 0);
    cj_end(&j);
    int rc = r.failed ? 2 : 0;
    aibox_eval_result_free(&r);
    return rc;
}

/* Options into o (inputs and ok point into argv or into o->ok's copies);
 * 0 to go on, else the exit status (help/version: 0 with *done). */
static int parse(int argc, char **argv, options *o, int *done)
{
    const char *prog = "aibox-infer";
    long threads = 0, mp = 0;
    o->max_pixels = AIBOX_IMAGE_MAX_PIXELS_DEFAULT, o->min_side = 8;
    plc_opts_init(&o->plc);
    sound_cli_init(&o->sound);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (cli_help_or_version(prog, a, usage)) return *done = 1, 0;
        else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && v) o->model = v, i++;
        else if (!strcmp(a, "--stdin-list")) o->stdin_list = 1;
        else if (!strcmp(a, "--info")) o->info = 1;
        else if (!strcmp(a, "--eval")) o->eval = 1;
        else if (!strcmp(a, "--normal-dir") && v) o->normal_dir = v, i++;
        else if (!strcmp(a, "--abnormal-dir") && v) o->abnormal_dir = v, i++;
        else if (!strcmp(a, "--mask-dir") && v) o->mask_dir = v, i++;
        else if (!strcmp(a, "--heatmap") && v) o->heat_dir = v, i++;
        else if (!strcmp(a, "--mask") && v) o->mask_out_dir = v, i++;
        else if (!strcmp(a, "--explain") && v) o->explain_dir = v, i++;
        else if (!strcmp(a, "--format") && v) {
            if (!strcmp(v, "jsonl")) o->fmt = FMT_JSONL;
            else if (!strcmp(v, "csv")) o->fmt = FMT_CSV;
            else if (!strcmp(v, "text")) o->fmt = FMT_TEXT;
            else ok = 0, fprintf(stderr, "%s: --format must be jsonl, csv or text (got '%s')\n", prog, v);
            i++;
        } else if (!strcmp(a, "--min-conf")) ok = cli_float(prog, a, v, 0, 1, &o->min_conf), i++;
        else if (!strcmp(a, "--threads")) ok = cli_int(prog, a, v, 1, 1024, &threads), i++;
        else if (!strcmp(a, "--max-pixels")) ok = cli_int(prog, a, v, 1, 2000000000L, &mp), o->max_pixels = mp, i++;
        else if (!strcmp(a, "--min-side")) ok = cli_int(prog, a, v, 1, 65536, &o->min_side), i++;
        else if (!strcmp(a, "--ok-class") && v) { /* a comma list, or the option repeated */
            for (char *tok = strtok(argv[++i], ","); tok; tok = strtok(NULL, ",")) o->ok[o->n_ok++] = tok;
        } else if (plc_parse_opt(&o->plc, prog, argc, argv, &i, &ok)) { /* --modbus and its companions */
        } else if (sound_cli_parse_opt(&o->sound, prog, argc, argv, &i, &ok)) { /* --stream, --rate, ... */
        } else if (!strcmp(a, "-") || a[0] != '-') {
            o->inputs[o->n_inputs++] = argv[i];
        } else {
            fprintf(stderr, "%s: unknown option or missing value '%s' (see --help)\n", prog, a);
            return 2;
        }
        if (!ok) return 2;
    }
    o->threads = (int)threads;
    if (!o->model) return fprintf(stderr, "%s: no model given (-m MODEL.aibox; see --help)\n", prog), 2;
    if (o->eval && (!o->normal_dir || !o->abnormal_dir || o->n_inputs || o->stdin_list))
        return fprintf(stderr, "%s: --eval needs --normal-dir and --abnormal-dir and no other images (see --help)\n",
                       prog), 2;
    if (!plc_opts_check(&o->plc, prog)) return 2;
    if (o->plc.target && (o->info || o->eval))
        return fprintf(stderr, "%s: --modbus writes a verdict per image: not with --info or --eval\n", prog), 2;
    if (!o->info && !o->eval && !o->stdin_list && o->n_inputs == 0 && !o->sound.stream)
        return fprintf(stderr,
                       "%s: no inputs given (IMAGE, DIR, - or --stdin-list; for a sound model RECORDING, DIR or "
                       "--stream; see --help)\n",
                       prog),
               2;
    return 0;
}

/* The labels this tool prints are the ones --ok-class accepts ("0", "1", ... without class names). */
static int check_ok_classes(const infer *in)
{
    for (int i = 0; i < in->o->n_ok; i++) {
        if (aibox_classifier_class_index(in->cls, in->o->ok[i]) >= 0) continue;
        int k_max = aibox_classifier_classes(in->cls);
        fprintf(stderr, "aibox-infer: --ok-class '%s' is not one of the model's classes (", in->o->ok[i]);
        for (int k = 0; k < k_max && k < 12; k++) fprintf(stderr, "%s%s", k ? ", " : "", aibox_classifier_class_name(in->cls, k));
        fprintf(stderr, "%s)\n", k_max > 12 ? ", ..." : "");
        return 0;
    }
    return 1;
}

/* Loads the model as what it is: an anomaly model, else a classifier. */
static int load_model(infer *in)
{
    const options *o = in->o;
    aibox_error err = {0};
    aibox_status s = aibox_detector_load(&in->det, o->model, o->threads, &err);
    if (s == AIBOX_E_NOTFOUND) s = aibox_model_load(&in->m, o->model, &err); /* a classifier */
    if (!s && in->m && !(s = aibox_classifier_create(&in->cls, in->m, o->threads, &err)) &&
        !(in->probs = malloc(sizeof(double) * (size_t)aibox_classifier_classes(in->cls))))
        s = AIBOX_E_NOMEM, snprintf(err.msg, sizeof err.msg, "out of memory");
    if (s) {
        fprintf(stderr, "aibox-infer: %s%s%s\n", strstr(err.msg, o->model) ? "" : o->model,
                strstr(err.msg, o->model) ? "" : ": ", err.msg);
        return 3;
    }
    if (!in->det && (o->eval || o->heat_dir || o->mask_out_dir)) {
        fprintf(stderr, "aibox-infer: %s: --eval, --heatmap and --mask need an anomaly model (aibox-train padim, patchcore or autoencoder)\n",
                o->model);
        return 2;
    }
    if (in->det && o->explain_dir) {
        fprintf(stderr, "aibox-infer: %s: --explain explains a classifier; an anomaly model shows where it looked "
                        "with --heatmap DIR\n", o->model);
        return 2;
    }
    if (in->cls && o->explain_dir && aibox_gradcam_create(&in->cam, in->m, -1, o->threads, &err)) {
        fprintf(stderr, "aibox-infer: %s: --explain: %s\n", o->model, err.msg);
        return 2;
    }
    if (in->cls && o->plc.target && !o->n_ok) {
        fprintf(stderr, "aibox-infer: --modbus needs --ok-class with a classifier (which verdict is a good part)\n");
        return 2;
    }
    return in->cls && !check_ok_classes(in) ? 2 : 0;
}

/* --modbus: connected before the first image, so a line never runs unheard. */
static int open_plc(infer *in)
{
    char msg[512];
    if (!in->o->plc.target || !plc_open(&in->plc, &in->o->plc, msg, sizeof msg)) return 0;
    fprintf(stderr, "aibox-infer: %s\n", msg);
    return 2;
}

int main(int argc, char **argv)
{
#ifdef AIBOX_MPI
    mpi_tool mt;
    if (mpi_tool_init(&argc, &argv, "aibox-infer", &mt)) return 2;
#endif
    options o;
    memset(&o, 0, sizeof o);
    o.inputs = calloc((size_t)argc + 1, sizeof *o.inputs);
    o.ok = calloc((size_t)argc * 8 + 1, sizeof *o.ok);
    int done = 0, rc = o.inputs && o.ok ? parse(argc, argv, &o, &done) : 2;
    infer in = {.o = &o, .out = stdout};
    int lead = 1; /* prints what is printed once */
#ifdef AIBOX_MPI
    lead = mt.rank == 0;
#endif
    aibox_error err = {0};
    if (rc || done) {
    } else if (o.info) { /* metadata only: the weights are never read */
        if (aibox_model_load_info(&in.m, o.model, &err)) fprintf(stderr, "aibox-infer: %s\n", err.msg), rc = 3;
        else print_info(in.m, o.model);
    } else if (sound_infer_wanted(&o.sound, o.model)) { /* a sound or vibration model: infer_sound.c */
        const char *refused = o.stdin_list ? "--stdin-list" : o.eval ? "--eval" : o.heat_dir ? "--heatmap"
                              : o.mask_out_dir ? "--mask" : o.explain_dir ? "--explain" : o.plc.target ? "--modbus" : NULL;
#ifdef AIBOX_MPI
        if (mt.size > 1) refused = "running across ranks (mpirun)";
#endif
        sound_infer_args sa = {o.model, o.inputs, o.n_inputs, o.ok, o.n_ok, o.min_conf, o.threads, o.fmt == FMT_JSONL, refused};
        rc = sound_infer_main(&o.sound, &sa);
    } else if (!(rc = load_model(&in)) && !(rc = open_plc(&in))) {
        if (o.eval) rc = evaluate(&in);
        else {
            if (o.fmt == FMT_CSV && lead)
                puts(in.det ? "file,score,norm_score,verdict,regions,ms,error" : "file,label,confidence,verdict,ms,error");
#ifdef AIBOX_MPI
            int piped = o.stdin_list;
            for (int i = 0; i < o.n_inputs; i++) piped |= !strcmp(o.inputs[i], "-");
            if (mt.size > 1 && in.plc) {
                fprintf(stderr, "aibox-infer: --modbus needs one process (the verdicts must reach the PLC in order)\n");
                rc = 2;
            } else if (mt.size > 1 && piped) {
                fprintf(stderr, "aibox-infer: across ranks only files and folders are split, not standard input "
                                "(- or --stdin-list)\n");
                rc = 2;
            } else if (mt.size > 1) {
                rc = process_ranks(&in, &mt);
            } else
#endif
            rc = process_inputs(&in);
        }
    }
    plc_close(&in.plc);
    free(in.probs);
    aibox_gradcam_free(&in.cam);
    aibox_classifier_free(&in.cls);
    aibox_detector_free(&in.det);
    aibox_model_free(&in.m);
    free(o.inputs), free(o.ok);
#ifdef AIBOX_MPI
    return mpi_tool_end(&mt, rc);
#else
    return rc;
#endif
}

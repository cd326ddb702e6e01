/* aibox-infer: classify images with a trained .aibox model, one
 * machine-readable line per image on stdout, logs on stderr, exit codes a
 * line script can act on. The model carries its preprocessing. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "aibox.h"
#include "cli.h"

static const char usage[] =
    "usage: aibox-infer -m MODEL.aibox [options] IMAGE|DIR|- ...\n"
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
    "                       metadata only, not the weights)\n"
    "PaDiM models (aibox-train padim):\n"
    "  --heatmap DIR        write a colour overlay PNG per image (DIR/<name>.png)\n"
    "  --mask DIR           write a binary defect mask PNG per image (DIR/<name>.png)\n"
    "  --eval --normal-dir DIR --abnormal-dir DIR [--mask-dir DIR]\n"
    "                       evaluate instead: image AUROC, pixel AUROC, AUPRO (FPR <= 0.3),\n"
    "                       F1 at the stored threshold, per defect class (sub-folders of the\n"
    "                       abnormal folder); masks beside the images (STEM.png) or in\n"
    "                       --mask-dir; images the model was fitted on are left out. One JSON line.\n"
    "                       Every map is kept for the pixel metrics: 0.25 MB per image at 224 px.\n"
    "  --version, --help\n"
    "JSON lines: {\"file\", \"label\", \"confidence\", \"probs\": {class: p}, \"verdict\", \"ms\"}; for\n"
    "PaDiM {\"file\", \"score\", \"norm_score\" (0.5 at the threshold), \"threshold\", \"verdict\" (OK/NG),\n"
    "\"regions\": [{x, y, w, h, area, peak}] in image pixels, \"n_regions\", \"ms\"} (regions: the\n"
    "map at or above the pixel threshold, which is the image threshold unless masks gave aibox-train\n"
    "an F1-optimal one; then an OK part may still show weak regions); or\n"
    "{\"file\", \"error\"} for an image that could not be processed (the others still are).\n"
    "Exit status: 0 every image OK (or classified), 1 at least one NG or uncertain,\n"
    "2 at least one image failed or bad usage, 3 the model could not be loaded.\n";

typedef enum { FMT_JSONL, FMT_CSV, FMT_TEXT } out_format;

typedef struct {
    aibox_model *m;
    aibox_classifier *cls; /* a classifier model */
    double *probs;         /* its per-class probabilities for the current image */
    aibox_preproc pp;      /* PaDiM models */
    char **ok;
    int n_ok;
    double min_conf;
    long long max_pixels;
    long min_side;
    out_format fmt;
    float *input;
    int worst; /* exit status so far */
    int threads;
    /* PaDiM models */
    aibox_padim *pd;
    aibox_padim_ctx *pctx;
    float *map;                    /* the model-size anomaly map of the current image */
    double thr, pix_thr, lo, hi;   /* image / pixel thresholds, score range for normalising */
    const char *heat_dir, *mask_dir;
} infer;

static void emit_error(infer *in, const char *file, const char *msg)
{
    if (in->fmt == FMT_JSONL) {
        cli_json j;
        cj_begin(&j, stdout);
        cj_str(&j, "file", file);
        cj_str(&j, "error", msg);
        cj_end(&j);
    } else if (in->fmt == FMT_CSV) {
        cli_csv_str(stdout, file);
        fputs(",,,error,,", stdout);
        cli_csv_str(stdout, msg);
        fputc('\n', stdout);
    } else {
        printf("%s: error: %s\n", file, msg);
    }
    fprintf(stderr, "aibox-infer: %s\n", msg);
    if (in->worst < 2) in->worst = 2;
}

#include "infer_padim.h"
/* Classifies one decoded image and prints its line. */
static void classify(infer *in, const char *file, const aibox_image *img, double t0)
{
    if (img->width < in->min_side || img->height < in->min_side) {
        char msg[4300];
        snprintf(msg, sizeof msg, "%s: too small: %dx%d (each side must be at least %ld pixels)", file, img->width,
                 img->height, in->min_side);
        emit_error(in, file, msg);
        return;
    }
    if (in->pd) {
        padim_one(in, file, img, t0);
        return;
    }
    aibox_error err = {0};
    aibox_classification r;
    if (aibox_classifier_run(in->cls, img, &r, in->probs, &err)) {
        char msg[4400];
        snprintf(msg, sizeof msg, "%s: %s", file, err.msg);
        emit_error(in, file, err.code == AIBOX_E_NONFINITE ? msg : err.msg);
        return;
    }
    const double *p = in->probs;
    const char *label = r.name;
    const char *verdict = "classified";
    if (!(r.confidence >= in->min_conf)) verdict = "uncertain"; /* written so that NaN fails */
    else if (in->n_ok) {
        verdict = "NG";
        for (int i = 0; i < in->n_ok; i++)
            if (!strcmp(in->ok[i], label)) verdict = "OK";
    }
    if (strcmp(verdict, "OK") && strcmp(verdict, "classified") && in->worst < 1) in->worst = 1;
    double ms = (cli_now() - t0) * 1e3;
    if (in->fmt == FMT_JSONL) {
        cli_json j;
        cj_begin(&j, stdout);
        cj_str(&j, "file", file);
        cj_str(&j, "label", label);
        cj_num(&j, "confidence", "%.6f", r.confidence);
        cj_obj(&j, "probs");
        for (int k = 0; k < aibox_classifier_classes(in->cls); k++)
            cj_num(&j, aibox_classifier_class_name(in->cls, k), "%.6f", p[k]);
        cj_close(&j);
        cj_str(&j, "verdict", verdict);
        cj_num(&j, "ms", "%.3f", ms);
        cj_end(&j);
    } else if (in->fmt == FMT_CSV) {
        cli_csv_str(stdout, file);
        fputc(',', stdout);
        cli_csv_str(stdout, label);
        printf(",%.6f,%s,%.3f,\n", r.confidence, verdict, ms);
    } else {
        printf("%s: %s %.1f%% %s (%.1f ms)\n", file, label, 100 * r.confidence, verdict, ms);
    }
}

static void process_bytes(infer *in, const char *name, const void *bytes, size_t len)
{
    double t0 = cli_now();
    aibox_image img = {0};
    aibox_error err = {0};
    if (aibox_image_decode(&img, bytes, len, name, in->max_pixels, &err)) {
        emit_error(in, name, err.msg);
        return;
    }
    classify(in, name, &img, t0);
    aibox_image_free(&img);
}

static void process_file(infer *in, const char *path)
{
    double t0 = cli_now();
    aibox_image img = {0};
    aibox_error err = {0};
    if (aibox_image_load(&img, path, in->max_pixels, &err)) {
        emit_error(in, path, err.msg);
        return;
    }
    classify(in, path, &img, t0);
    aibox_image_free(&img);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void process_dir(infer *in, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        char msg[4200];
        snprintf(msg, sizeof msg, "%s: cannot open the folder", dir);
        emit_error(in, dir, msg);
        return;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *path = malloc(len);
        if (!path) break;
        snprintf(path, len, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) { /* not recursive */
            free(path);
            continue;
        }
        /* anything else is processed: a FIFO or a broken link gets an error record saying so */
        if (n == cap) {
            char **nn = realloc(names, (cap = cap ? cap * 2 : 64) * sizeof *nn);
            if (!nn) {
                free(path);
                break;
            }
            names = nn;
        }
        names[n++] = path;
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        process_file(in, names[i]);
        free(names[i]);
        fflush(stdout);
    }
    free(names);
}

static void process_stdin_image(infer *in)
{
    size_t cap = 1 << 20, len = 0;
    unsigned char *buf = malloc(cap);
    while (buf) {
        size_t r = fread(buf + len, 1, cap - len, stdin);
        len += r;
        if (r == 0) break;
        if (len == cap) {
            if (cap >= ((size_t)1 << 30)) {
                emit_error(in, "stdin", "stdin: more than 1 GiB of input");
                free(buf);
                return;
            }
            unsigned char *nb = realloc(buf, cap *= 2);
            if (!nb) break;
            buf = nb;
        }
    }
    if (!buf) {
        emit_error(in, "stdin", "stdin: out of memory");
        return;
    }
    process_bytes(in, "stdin", buf, len);
    free(buf);
}

static void print_info(const aibox_model *m, const char *path)
{
    int c, h, w, n;
    aibox_model_input_shape(m, &c, &h, &w);
    cli_json j;
    cj_begin(&j, stdout);
    cj_str(&j, "file", path);
    cj_arr(&j, "input");
    cj_int(&j, NULL, c), cj_int(&j, NULL, h), cj_int(&j, NULL, w);
    cj_close(&j);
    cj_int(&j, "parameters", (long long)aibox_model_param_count(m));
    cj_int(&j, "nodes", aibox_model_node_count(m));
    cj_obj(&j, "metadata");
    for (int i = 0; i < aibox_model_meta_count(m); i++) {
        const char *k = aibox_model_meta_key(m, i);
        int64_t iv;
        double fv;
        const char *sv;
        const int64_t *ia;
        const double *fa;
        const char *const *sa;
        switch (aibox_model_meta_kind(m, k)) {
        case AIBOX_META_KIND_INT: aibox_model_get_meta_int(m, k, &iv), cj_int(&j, k, iv); break;
        case AIBOX_META_KIND_FLOAT: aibox_model_get_meta_float(m, k, &fv), cj_num(&j, k, "%.17g", fv); break;
        case AIBOX_META_KIND_STR: aibox_model_get_meta_str(m, k, &sv), cj_str(&j, k, sv); break;
        case AIBOX_META_KIND_INTS:
            aibox_model_get_meta_ints(m, k, &n, &ia), cj_arr(&j, k);
            for (int q = 0; q < n; q++) cj_int(&j, NULL, ia[q]);
            cj_close(&j);
            break;
        case AIBOX_META_KIND_FLOATS:
            aibox_model_get_meta_floats(m, k, &n, &fa), cj_arr(&j, k);
            for (int q = 0; q < n; q++) cj_num(&j, NULL, "%.17g", fa[q]);
            cj_close(&j);
            break;
        case AIBOX_META_KIND_STRS:
            aibox_model_get_meta_strs(m, k, &n, &sa), cj_arr(&j, k);
            for (int q = 0; q < n; q++) cj_str(&j, NULL, sa[q]);
            cj_close(&j);
            break;
        default: cj_null(&j, k);
        }
    }
    cj_end(&j);
}

/* Runs every input (files, folders, "-", then --stdin-list paths). */
static int process_inputs(infer *in, char **inputs, int n_inputs, int stdin_list)
{
    for (int i = 0; i < n_inputs; i++) {
        struct stat st;
        if (!strcmp(inputs[i], "-")) process_stdin_image(in);
        else if (stat(inputs[i], &st) == 0 && S_ISDIR(st.st_mode)) process_dir(in, inputs[i]);
        else process_file(in, inputs[i]);
        fflush(stdout);
    }
    if (stdin_list) {
        char line[8192];
        while (fgets(line, sizeof line, stdin)) {
            line[strcspn(line, "\r\n")] = 0;
            if (!line[0]) continue;
            process_file(in, line);
            fflush(stdout); /* a waiting line script gets each answer at once */
        }
    }
    return in->worst;
}

/* The command; main() owns the argument arrays so every return frees them. */
static int run(int argc, char **argv, char **inputs, char **ok, char **ok_copies)
{
    const char *model_path = NULL, *prog = "aibox-infer";
    infer in = {.max_pixels = AIBOX_IMAGE_MAX_PIXELS_DEFAULT, .min_side = 8};
    int stdin_list = 0, info = 0, n_inputs = 0, n_copies = 0, eval = 0;
    const char *normal_dir = NULL, *abnormal_dir = NULL, *eval_mask_dir = NULL;
    long threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (cli_help_or_version(prog, a, usage)) {
            return 0;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && v) {
            model_path = v, i++;
        } else if (!strcmp(a, "--stdin-list")) {
            stdin_list = 1;
        } else if (!strcmp(a, "--info")) {
            info = 1;
        } else if (!strcmp(a, "--eval")) {
            eval = 1;
        } else if (!strcmp(a, "--normal-dir") && v) {
            normal_dir = v, i++;
        } else if (!strcmp(a, "--abnormal-dir") && v) {
            abnormal_dir = v, i++;
        } else if (!strcmp(a, "--mask-dir") && v) {
            eval_mask_dir = v, i++;
        } else if (!strcmp(a, "--heatmap") && v) {
            in.heat_dir = v, i++;
        } else if (!strcmp(a, "--mask") && v) {
            in.mask_dir = v, i++;
        } else if (!strcmp(a, "--format") && v) {
            if (!strcmp(v, "jsonl")) in.fmt = FMT_JSONL;
            else if (!strcmp(v, "csv")) in.fmt = FMT_CSV;
            else if (!strcmp(v, "text")) in.fmt = FMT_TEXT;
            else {
                fprintf(stderr, "%s: --format must be jsonl, csv or text (got '%s')\n", prog, v);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--min-conf")) {
            if (!cli_float(prog, a, v, 0, 1, &in.min_conf)) return 2;
            i++;
        } else if (!strcmp(a, "--threads")) {
            if (!cli_int(prog, a, v, 1, 1024, &threads)) return 2;
            i++;
        } else if (!strcmp(a, "--max-pixels")) {
            long mp;
            if (!cli_int(prog, a, v, 1, 2000000000L, &mp)) return 2;
            in.max_pixels = mp, i++;
        } else if (!strcmp(a, "--min-side")) {
            if (!cli_int(prog, a, v, 1, 65536, &in.min_side)) return 2;
            i++;
        } else if (!strcmp(a, "--ok-class") && v) {
            /* a comma list, or the option repeated */
            char *copy = ok_copies[n_copies++] = strdup(v);
            for (char *tok = copy ? strtok(copy, ",") : NULL; tok && in.n_ok < argc * 8; tok = strtok(NULL, ",")) ok[in.n_ok++] = tok;
            i++;
        } else if (!strcmp(a, "-") || a[0] != '-') {
            inputs[n_inputs++] = argv[i];
        } else {
            fprintf(stderr, "%s: unknown option or missing value '%s' (see --help)\n", prog, a);
            return 2;
        }
    }
    in.ok = ok;
    if (!model_path) {
        fprintf(stderr, "%s: no model given (-m MODEL.aibox; see --help)\n", prog);
        return 2;
    }
    if (eval && (!normal_dir || !abnormal_dir || n_inputs || stdin_list)) {
        fprintf(stderr, "%s: --eval needs --normal-dir and --abnormal-dir and no other images (see --help)\n", prog);
        return 2;
    }
    if (!info && !eval && !stdin_list && n_inputs == 0) {
        fprintf(stderr, "%s: no images given (IMAGE, DIR, - or --stdin-list; see --help)\n", prog);
        return 2;
    }
    aibox_error err = {0};
    in.threads = (int)threads;
    if (info) { /* metadata only: the weights are never read */
        if (aibox_model_load_info(&in.m, model_path, &err)) {
            fprintf(stderr, "%s: %s\n", prog, err.msg);
            return 3;
        }
        print_info(in.m, model_path);
        aibox_model_free(&in.m);
        return 0;
    }
    aibox_status ls = aibox_padim_load(&in.pd, model_path, &err);
    if (ls == AIBOX_E_NOTFOUND) ls = aibox_model_load(&in.m, model_path, &err); /* a classifier */
    if (ls) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return 3;
    }
    if (!in.pd && (eval || in.heat_dir || in.mask_dir)) {
        fprintf(stderr, "%s: %s: --eval, --heatmap and --mask need a PaDiM model (aibox-train padim)\n", prog,
                model_path);
        aibox_model_free(&in.m);
        return 2;
    }
    if (in.pd) {
        int rc = 3;
        if (padim_setup(&in, model_path)) {
            in.input = malloc(sizeof(float) * in.pp.channels * in.pp.width * in.pp.height);
            if (in.input && eval) rc = padim_eval(&in, normal_dir, abnormal_dir, eval_mask_dir);
            else if (in.input) rc = -1;
        }
        if (rc == -1) {
            if (in.fmt == FMT_CSV) printf("file,score,norm_score,verdict,regions,ms,error\n");
            rc = process_inputs(&in, inputs, n_inputs, stdin_list);
        }
        free(in.input), free(in.map);
        aibox_padim_ctx_free(&in.pctx);
        aibox_padim_free(&in.pd);
        return rc;
    }
    if (aibox_classifier_create(&in.cls, in.m, (int)threads, &err) ||
        !(in.probs = malloc(sizeof(double) * (size_t)aibox_classifier_classes(in.cls)))) {
        fprintf(stderr, "%s: %s: %s\n", prog, model_path, in.cls ? "out of memory" : err.msg);
        aibox_classifier_free(&in.cls);
        aibox_model_free(&in.m);
        return 3;
    }
    int rc = 2;
    /* the labels this tool prints are the ones --ok-class accepts ("0", "1", ... without class names) */
    for (int i = 0; i < in.n_ok; i++) {
        if (aibox_classifier_class_index(in.cls, in.ok[i]) >= 0) continue;
        int k_max = aibox_classifier_classes(in.cls);
        fprintf(stderr, "%s: --ok-class '%s' is not one of the model's classes (", prog, in.ok[i]);
        for (int k = 0; k < k_max && k < 12; k++)
            fprintf(stderr, "%s%s", k ? ", " : "", aibox_classifier_class_name(in.cls, k));
        fprintf(stderr, "%s)\n", k_max > 12 ? ", ..." : "");
        goto done;
    }
    if (in.fmt == FMT_CSV) printf("file,label,confidence,verdict,ms,error\n");
    rc = process_inputs(&in, inputs, n_inputs, stdin_list);
done:
    free(in.probs);
    aibox_classifier_free(&in.cls);
    aibox_model_free(&in.m);
    return rc;
}

int main(int argc, char **argv)
{
    char **inputs = calloc((size_t)argc + 1, sizeof *inputs);
    char **ok = calloc((size_t)argc * 8 + 1, sizeof *ok);
    char **copies = calloc((size_t)argc + 1, sizeof *copies);
    int rc = inputs && ok && copies ? run(argc, argv, inputs, ok, copies) : 2;
    for (int i = 0; copies && copies[i]; i++) free(copies[i]);
    free(inputs);
    free(ok);
    free(copies);
    return rc;
}

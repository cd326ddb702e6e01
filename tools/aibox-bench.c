/* aibox-bench: speed and memory of a model on this machine.
 * Results on stdout (text, or one JSON line with --json); errors on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "aibox.h"
#include "cli.h"

static const char usage[] =
    "usage: aibox-bench [options]\n"
    "Times inference (and with --train, a training step) of a model on this machine.\n"
    "  --model NAME|FILE  preset (alexnet, squeezenet, resnext, resnet18, resnet50,\n"
    "                     wide_resnet50_2, small) or a .aibox file\n"
    "                     (default alexnet)\n"
    "  --size N           input size for presets (default 256; small: 64)\n"
    "  --channels N       input channels for presets (default 3)\n"
    "  --classes N        classes for presets (default 2)\n"
    "  --batch N          batch size (default 1; training default 16)\n"
    "  --threads N        threads (default: $AIBOX_THREADS or all CPUs)\n"
    "  --train            also time a training step (softmax cross-entropy + Adam)\n"
    "  --reps N           timed repetitions after one warm-up (default 10); the median is reported\n"
    "  --json             one JSON line instead of text\n"
    "  --version          version and the active OpenBLAS kernel set\n"
    "  --help             this text\n"
    "Exit status: 0 success, 2 bad usage or failure.\n";

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct options {
    const char *model;
    long size, channels, classes, batch, threads, reps;
    int train, json;
} options;

/* 0 to go on, else the exit status (help/version: 0 with *done). */
static int parse(int argc, char **argv, options *o, int *done)
{
    const char *prog = "aibox-bench";
    *o = (options){.model = "alexnet", .channels = 3, .classes = 2, .reps = 10};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (cli_help_or_version(prog, a, usage)) return *done = 1, 0;
        else if (!strcmp(a, "--model") && v) o->model = v, i++;
        else if (!strcmp(a, "--size")) ok = cli_int(prog, a, v, 8, 4096, &o->size), i++;
        else if (!strcmp(a, "--channels")) ok = cli_int(prog, a, v, 1, 4, &o->channels), i++;
        else if (!strcmp(a, "--classes")) ok = cli_int(prog, a, v, 2, 100000, &o->classes), i++;
        else if (!strcmp(a, "--batch")) ok = cli_int(prog, a, v, 1, 4096, &o->batch), i++;
        else if (!strcmp(a, "--threads")) ok = cli_int(prog, a, v, 1, 1024, &o->threads), i++;
        else if (!strcmp(a, "--reps")) ok = cli_int(prog, a, v, 1, 100000, &o->reps), i++;
        else if (!strcmp(a, "--train")) o->train = 1;
        else if (!strcmp(a, "--json")) o->json = 1;
        else return fprintf(stderr, "aibox-bench: unknown option '%s' (see --help)\n", a), 2;
        if (!ok) return 2;
    }
    if (!o->batch) o->batch = o->train ? 16 : 1;
    size_t len = strlen(o->model);
    if (!o->size && !(len > 6 && !strcmp(o->model + len - 6, ".aibox"))) o->size = strcmp(o->model, "small") ? 256 : 64;
    return 0;
}

typedef struct timing {
    double fwd_ms, step_s; /* medians */
} timing;

/* The medians of reps forwards (and training steps), after one warm-up each. */
static aibox_status time_model(const options *o, aibox_model *m, aibox_ctx *ctx, timing *tm, aibox_error *err)
{
    int c, h, w, oc, oh, ow, batch = (int)o->batch, reps = (int)o->reps;
    aibox_model_input_shape(m, &c, &h, &w);
    aibox_model_node_shape(m, aibox_model_output(m), &oc, &oh, &ow);
    size_t in = (size_t)batch * c * h * w;
    float *x = malloc(in * sizeof *x);
    int *labels = calloc((size_t)batch, sizeof *labels);
    double *t = calloc((size_t)reps, sizeof *t), *tt = calloc((size_t)reps, sizeof *tt);
    aibox_optim *opt = NULL;
    aibox_status s = x && labels && t && tt ? AIBOX_OK : AIBOX_E_NOMEM;
    if (s) snprintf(err->msg, sizeof err->msg, "out of memory");
    aibox_rng rng;
    aibox_rng_seed(&rng, 1);
    for (size_t i = 0; !s && i < in; i++) x[i] = aibox_rng_uniform(&rng);
    for (int i = 0; !s && i < batch; i++) labels[i] = i % (oc * oh * ow);
    /* inference (a training context infers in training mode: no statistics update is needed) */
    for (int r = -1; !s && r < reps; r++) {
        double t0 = cli_now();
        if ((s = o->train ? aibox_ctx_forward(ctx, m, x, batch, err) : aibox_ctx_infer(ctx, m, x, batch, err))) break;
        if (r >= 0) t[r] = cli_now() - t0;
    }
    if (!s && o->train && !(s = aibox_optim_create(&opt, m, NULL, err))) {
        aibox_optim_set_ctx(opt, ctx);
        for (int r = -1; r < reps && !s; r++) {
            double t0 = cli_now();
            float loss;
            aibox_model_zero_grad(m);
            if (!(s = aibox_ctx_forward(ctx, m, x, batch, err)) &&
                !(s = aibox_ctx_loss_softmax_ce(ctx, labels, NULL, &loss, err)) && !(s = aibox_ctx_backward(ctx, m, err)))
                s = aibox_optim_step(opt, m, err);
            if (r >= 0) tt[r] = cli_now() - t0;
        }
    }
    if (!s) tm->fwd_ms = median(t, reps) * 1e3, tm->step_s = o->train ? median(tt, reps) : 0;
    aibox_optim_free(&opt);
    free(x), free(labels), free(t), free(tt);
    return s;
}

static void report(const options *o, const aibox_model *m, const aibox_ctx *ctx, const timing *tm)
{
    int c, h, w;
    aibox_model_input_shape(m, &c, &h, &w);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    if (o->json) {
        cli_json j;
        cj_begin(&j, stdout);
        cj_str(&j, "version", aibox_version());
        cj_str(&j, "blas", aibox_blas_core());
        cj_str(&j, "model", o->model);
        cj_arr(&j, "input");
        cj_int(&j, NULL, c), cj_int(&j, NULL, h), cj_int(&j, NULL, w);
        cj_close(&j);
        cj_int(&j, "params", (long long)aibox_model_param_count(m));
        cj_int(&j, "threads", aibox_ctx_threads(ctx));
        cj_int(&j, "batch", o->batch);
        cj_num(&j, "forward_ms", "%.3f", tm->fwd_ms);
        if (o->train) {
            cj_num(&j, "train_step_ms", "%.3f", tm->step_s * 1e3);
            cj_num(&j, "train_images_per_s", "%.3f", o->batch / tm->step_s);
        }
        cj_num(&j, "context_mb", "%.1f", aibox_ctx_bytes(ctx) / 1048576.0);
        cj_num(&j, "peak_rss_mb", "%.1f", ru.ru_maxrss / 1024.0);
        cj_end(&j);
        return;
    }
    printf("aibox-bench %s, %s\n", aibox_version(), aibox_blas_info());
    printf("model %s, input %dx%dx%d, %zu parameters, %d threads, batch %ld\n", o->model, c, h, w,
           aibox_model_param_count(m), aibox_ctx_threads(ctx), o->batch);
    printf("forward: %.2f ms per batch (median of %ld), %.2f ms per image\n", tm->fwd_ms, o->reps,
           tm->fwd_ms / o->batch);
    if (o->train) printf("training step: %.1f ms, %.2f images/s\n", tm->step_s * 1e3, o->batch / tm->step_s);
    printf("memory: context %.1f MB, peak RSS %.1f MB\n", aibox_ctx_bytes(ctx) / 1048576.0, ru.ru_maxrss / 1024.0);
}

int main(int argc, char **argv)
{
    options o;
    int done = 0, rc = parse(argc, argv, &o, &done);
    if (rc || done) return rc;
    aibox_error err = {0};
    aibox_model *m = NULL;
    aibox_ctx *ctx = NULL;
    timing tm;
    aibox_status s = o.size ? aibox_preset(&m, o.model, (int)o.classes, (int)o.channels, (int)o.size, &err)
                            : aibox_model_load(&m, o.model, &err);
    aibox_ctx_opts co = {.mode = o.train ? AIBOX_TRAIN : AIBOX_INFER, .max_batch = (int)o.batch, .threads = (int)o.threads,
                         .seed = 1};
    if (!s) s = aibox_ctx_create(&ctx, m, &co, &err);
    if (!s && !o.train) s = aibox_ctx_freeze_weights(ctx, m, &err); /* inference only: the weights stay */
    if (!s) s = time_model(&o, m, ctx, &tm, &err);
    if (s) fprintf(stderr, "aibox-bench: %s\n", err.msg);
    else report(&o, m, ctx, &tm);
    aibox_ctx_free(&ctx);
    aibox_model_free(&m);
    return s ? 2 : 0;
}

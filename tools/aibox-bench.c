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

int main(int argc, char **argv)
{
    const char *model_name = "alexnet";
    long size = 0, channels = 3, classes = 2, batch = 0, threads = 0, reps = 10;
    int train = 0, json = 0;
    const char *prog = "aibox-bench";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (cli_help_or_version(prog, a, usage)) {
            return 0;
        } else if (!strcmp(a, "--model") && v) model_name = v, i++;
        else if (!strcmp(a, "--size")) ok = cli_int(prog, a, v, 8, 4096, &size), i++;
        else if (!strcmp(a, "--channels")) ok = cli_int(prog, a, v, 1, 4, &channels), i++;
        else if (!strcmp(a, "--classes")) ok = cli_int(prog, a, v, 2, 100000, &classes), i++;
        else if (!strcmp(a, "--batch")) ok = cli_int(prog, a, v, 1, 4096, &batch), i++;
        else if (!strcmp(a, "--threads")) ok = cli_int(prog, a, v, 1, 1024, &threads), i++;
        else if (!strcmp(a, "--reps")) ok = cli_int(prog, a, v, 1, 100000, &reps), i++;
        else if (!strcmp(a, "--train")) train = 1;
        else if (!strcmp(a, "--json")) json = 1;
        else {
            fprintf(stderr, "aibox-bench: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        if (!ok) return 2;
    }
    if (!batch) batch = train ? 16 : 1;
    aibox_error err = {0};
    aibox_model *m = NULL;
    size_t len = strlen(model_name);
    aibox_status s;
    if (len > 6 && !strcmp(model_name + len - 6, ".aibox")) {
        s = aibox_model_load(&m, model_name, &err);
    } else {
        if (!size) size = strcmp(model_name, "small") ? 256 : 64;
        s = aibox_preset(&m, model_name, (int)classes, (int)channels, (int)size, &err);
    }
    if (s) {
        fprintf(stderr, "aibox-bench: %s\n", err.msg);
        return 2;
    }
    int c, h, w;
    aibox_model_input_shape(m, &c, &h, &w);
    aibox_ctx *ctx = NULL;
    aibox_mode mode = train ? AIBOX_TRAIN : AIBOX_INFER;
    if ((s = aibox_ctx_create(&ctx, m, &(aibox_ctx_opts){.mode = mode, .max_batch = (int)batch, .height = h, .width = w, .threads = (int)threads, .seed = 1}, &err)) ||
        (!train && (s = aibox_ctx_freeze_weights(ctx, m, &err)))) { /* inference only: the weights stay */
        fprintf(stderr, "aibox-bench: %s\n", err.msg);
        aibox_ctx_free(&ctx);
        aibox_model_free(&m);
        return 2;
    }
    size_t in = (size_t)batch * c * h * w;
    float *x = malloc(in * sizeof *x);
    int *labels = calloc((size_t)batch, sizeof *labels);
    double *t = calloc((size_t)reps, sizeof *t), *tt = calloc((size_t)reps, sizeof *tt);
    if (!x || !labels || !t || !tt) {
        fprintf(stderr, "aibox-bench: out of memory\n");
        return 2;
    }
    aibox_rng rng;
    aibox_rng_seed(&rng, 1);
    for (size_t i = 0; i < in; i++) x[i] = aibox_rng_uniform(&rng);
    int oc, oh, ow;
    aibox_model_node_shape(m, aibox_model_output(m), &oc, &oh, &ow);
    for (int i = 0; i < batch; i++) labels[i] = i % (oc * oh * ow);
    /* inference (a training context infers in training mode: no statistics update is needed) */
    for (int r = -1; r < reps; r++) {
        double t0 = cli_now();
        if ((s = train ? aibox_ctx_forward(ctx, m, x, batch, &err) : aibox_ctx_infer(ctx, m, x, batch, &err))) break;
        if (r >= 0) t[r] = cli_now() - t0;
    }
    aibox_optim *opt = NULL;
    if (!s && train && !(s = aibox_optim_create(&opt, m, NULL, &err))) {
        for (int r = -1; r < reps && !s; r++) {
            double t0 = cli_now();
            float loss;
            aibox_model_zero_grad(m);
            if (!(s = aibox_ctx_forward(ctx, m, x, batch, &err)) &&
                !(s = aibox_ctx_loss_softmax_ce(ctx, labels, NULL, &loss, &err)) &&
                !(s = aibox_ctx_backward(ctx, m, &err)))
                s = aibox_optim_step(opt, m, &err);
            if (r >= 0) tt[r] = cli_now() - t0;
        }
    }
    if (s) {
        fprintf(stderr, "aibox-bench: %s\n", err.msg);
        return 2;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double fwd_ms = median(t, reps) * 1e3, step_s = train ? median(tt, reps) : 0;
    if (json) {
        cli_json j;
        cj_begin(&j, stdout);
        cj_str(&j, "version", aibox_version());
        cj_str(&j, "blas", aibox_blas_core());
        cj_str(&j, "model", model_name);
        cj_arr(&j, "input");
        cj_int(&j, NULL, c), cj_int(&j, NULL, h), cj_int(&j, NULL, w);
        cj_close(&j);
        cj_int(&j, "params", (long long)aibox_model_param_count(m));
        cj_int(&j, "threads", aibox_ctx_threads(ctx));
        cj_int(&j, "batch", batch);
        cj_num(&j, "forward_ms", "%.3f", fwd_ms);
        if (train) {
            cj_num(&j, "train_step_ms", "%.3f", step_s * 1e3);
            cj_num(&j, "train_images_per_s", "%.3f", batch / step_s);
        }
        cj_num(&j, "context_mb", "%.1f", aibox_ctx_bytes(ctx) / 1048576.0);
        cj_num(&j, "peak_rss_mb", "%.1f", ru.ru_maxrss / 1024.0);
        cj_end(&j);
    } else {
        printf("aibox-bench %s, %s\n", aibox_version(), aibox_blas_info());
        printf("model %s, input %dx%dx%d, %zu parameters, %d threads, batch %ld\n", model_name, c, h, w,
               aibox_model_param_count(m), aibox_ctx_threads(ctx), batch);
        printf("forward: %.2f ms per batch (median of %ld), %.2f ms per image\n", fwd_ms, reps, fwd_ms / batch);
        if (train) printf("training step: %.1f ms, %.2f images/s\n", step_s * 1e3, batch / step_s);
        printf("memory: context %.1f MB, peak RSS %.1f MB\n", aibox_ctx_bytes(ctx) / 1048576.0, ru.ru_maxrss / 1024.0);
    }
    aibox_optim_free(&opt);
    aibox_ctx_free(&ctx);
    aibox_model_free(&m);
    free(x), free(labels), free(t), free(tt);
    return 0;
}

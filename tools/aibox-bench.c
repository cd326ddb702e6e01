/* aibox-bench: speed and memory of a model on this machine, or (--cost) what
 * one image costs it on any machine.
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
    "  --cost             print the model's cost per image instead of timing it: one line\n"
    "                     per node and a total. FLOPs are 2 x the multiply-adds of the\n"
    "                     convolutions and dense layers (other layers count 0); parameter\n"
    "                     bytes are every stored parameter as 4-byte floats (weights, biases,\n"
    "                     batch-norm scales and statistics) and, for an 8-bit model, as it\n"
    "                     stores them (int8 weights, int32 biases); activations are the node\n"
    "                     outputs (4-byte floats; 8-bit models: 1 byte), as their sum and as\n"
    "                     the peak live set when the nodes run in order and each output is\n"
    "                     freed after its last consumer\n"
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
    int train, json, cost;
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
        else if (!strcmp(a, "--cost")) o->cost = 1;
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

/* --cost: what one image costs, from the graph alone (no context, no timing). */
typedef struct node_cost {
    double macs;
    size_t params, param_bytes, int_bytes, out_elems;
} node_cost;

static node_cost cost_of(aibox_model *m, int i)
{
    node_cost nc = {0};
    aibox_layer_kind k = aibox_model_node_kind(m, i);
    int c, h, w;
    aibox_model_node_shape(m, i, &c, &h, &w);
    nc.out_elems = (size_t)c * h * w;
    size_t n[4] = {0};
    aibox_model_node_param(m, i, 0, &n[0]);
    aibox_model_node_param(m, i, 1, &n[1]);
    if (k == AIBOX_LAYER_BATCHNORM) aibox_model_node_state(m, i, 0, &n[2]), aibox_model_node_state(m, i, 1, &n[3]);
    nc.params = n[0] + n[1] + n[2] + n[3];
    nc.param_bytes = 4 * nc.params;
    if (k == AIBOX_LAYER_CONV2D || k == AIBOX_LAYER_DENSE) {
        /* one multiply-add per weight and output pixel: out_c x in_c/groups x kh x kw
         * (or units x inputs) weights, each used at every output position */
        nc.macs = (double)n[0] * h * w;
        nc.int_bytes = n[0] + 4 * n[1]; /* int8 weights, int32 biases */
    } else {
        nc.int_bytes = 4 * nc.params;
    }
    return nc;
}

static int print_cost(const options *o, aibox_model *m)
{
    int nodes = aibox_model_node_count(m), out = aibox_model_output(m), q = aibox_model_quantized(m);
    int c, h, w;
    aibox_model_input_shape(m, &c, &h, &w);
    node_cost *nc = calloc((size_t)nodes, sizeof *nc);
    int *last = calloc((size_t)nodes, sizeof *last), *in = calloc((size_t)nodes + 1, sizeof *in);
    if (!nc || !last || !in) {
        free(nc), free(last), free(in);
        fprintf(stderr, "aibox-bench: out of memory\n");
        return 2;
    }
    /* each output lives from its node to its last consumer (the model's output to the end) */
    for (int i = 0; i < nodes; i++) {
        nc[i] = cost_of(m, i);
        last[i] = i == out ? nodes : i;
        int n = aibox_model_node_inputs(m, i, in, nodes);
        for (int j = 0; j < n && j < nodes; j++)
            if (in[j] >= 0 && in[j] < nodes && last[in[j]] < i) last[in[j]] = i;
    }
    double macs = 0;
    size_t params = 0, pbytes = 0, ibytes = 0, sum = 0, peak = 0;
    int peak_at = 0;
    for (int i = 0; i < nodes; i++) {
        size_t live = 0;
        for (int j = 0; j <= i; j++)
            if (last[j] >= i) live += nc[j].out_elems;
        if (live > peak) peak = live, peak_at = i;
        macs += nc[i].macs, params += nc[i].params, pbytes += nc[i].param_bytes, ibytes += nc[i].int_bytes;
        sum += nc[i].out_elems;
    }
    if (o->json) {
        cli_json j;
        cj_begin(&j, stdout);
        cj_str(&j, "model", o->model);
        cj_arr(&j, "input");
        cj_int(&j, NULL, c), cj_int(&j, NULL, h), cj_int(&j, NULL, w);
        cj_close(&j);
        cj_bool(&j, "quantized", q);
        cj_num(&j, "flops", "%.0f", 2 * macs);
        cj_num(&j, "multiply_adds", "%.0f", macs);
        cj_int(&j, "params", (long long)params);
        cj_int(&j, "param_bytes", (long long)pbytes);
        if (q) cj_int(&j, "int_param_bytes", (long long)ibytes);
        cj_int(&j, "activation_sum_bytes", (long long)(4 * sum));
        cj_int(&j, "activation_peak_bytes", (long long)(4 * peak));
        if (q) {
            cj_int(&j, "int_activation_sum_bytes", (long long)sum);
            cj_int(&j, "int_activation_peak_bytes", (long long)peak);
        }
        cj_int(&j, "activation_peak_node", peak_at);
        cj_arr(&j, "layers");
        for (int i = 0; i < nodes; i++) {
            int lc, lh, lw;
            aibox_model_node_shape(m, i, &lc, &lh, &lw);
            cj_obj(&j, NULL);
            cj_int(&j, "node", i);
            cj_str(&j, "kind", aibox_layer_kind_name(aibox_model_node_kind(m, i)));
            cj_arr(&j, "output");
            cj_int(&j, NULL, lc), cj_int(&j, NULL, lh), cj_int(&j, NULL, lw);
            cj_close(&j);
            cj_num(&j, "flops", "%.0f", 2 * nc[i].macs);
            cj_int(&j, "params", (long long)nc[i].params);
            cj_int(&j, "param_bytes", (long long)(q ? nc[i].int_bytes : nc[i].param_bytes));
            cj_int(&j, "output_bytes", (long long)(q ? 1 : 4) * (long long)nc[i].out_elems);
            cj_close(&j);
        }
        cj_end(&j);
    } else {
        printf("model %s, input %dx%dx%d, cost per image (%s; FLOPs = 2 x multiply-adds of conv and dense)\n", o->model,
               c, h, w, q ? "8-bit model: int8 weights, int32 biases, uint8 activations" : "float");
        printf("%4s %-18s %-14s %12s %10s %12s %12s\n", "node", "kind", "output", "MFLOPs", "params", "param_B", "output_B");
        for (int i = 0; i < nodes; i++) {
            int lc, lh, lw;
            char shape[48];
            aibox_model_node_shape(m, i, &lc, &lh, &lw);
            snprintf(shape, sizeof shape, "%dx%dx%d", lc, lh, lw);
            printf("%4d %-18s %-14s %12.3f %10zu %12zu %12zu\n", i, aibox_layer_kind_name(aibox_model_node_kind(m, i)),
                   shape, 2 * nc[i].macs / 1e6, nc[i].params, q ? nc[i].int_bytes : nc[i].param_bytes,
                   (q ? 1 : 4) * nc[i].out_elems);
        }
        printf("total: %.3f MFLOPs (%.0f multiply-adds), %zu parameters\n", 2 * macs / 1e6, macs, params);
        printf("parameters: %.3f MB as floats", pbytes / 1e6);
        if (q) printf(", %.3f MB as stored (int8 weights, int32 biases)", ibytes / 1e6);
        printf("\nactivations: sum of node outputs %.3f MB, peak live %.3f MB (at node %d) as floats", 4 * sum / 1e6,
               4 * peak / 1e6, peak_at);
        if (q) printf("; %.3f MB and %.3f MB as 8-bit", sum / 1e6, peak / 1e6);
        printf("\n");
    }
    free(nc), free(last), free(in);
    return 0;
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
    if (!s && o.cost) {
        rc = print_cost(&o, m);
        aibox_model_free(&m);
        return rc;
    }
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

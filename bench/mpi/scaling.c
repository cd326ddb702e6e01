/* Data-parallel scaling across processes (issue 13, item 6): per preset, the
 * gradient allreduce on its parameter count and data-parallel training steps,
 * as one JSON line per measurement on stdout (rank 0; human lines on stderr).
 *
 *   mpirun -np 2 build/mpi/bench/scaling --threads 1     2 ranks x 1 thread
 *   mpirun -np 1 --bind-to none build/mpi/bench/scaling --threads 2
 *                                                         1 process x 2 threads
 *
 * Both runs take the same global batch per model (--batch, split evenly
 * over the ranks), so their images/s compare the same training.
 *
 *   scaling [--models LIST] [--batch LIST] [--steps N] [--warmup N] [--reps N]
 *           [--threads N] [--classes N] [--chunk N] [--no-allreduce] [--no-train] [--lib]
 *
 * --models   presets, comma-separated (default small,squeezenet,resnet18,alexnet):
 *            small at 64x64x3, alexnet at 256x256x3, the others at 224x224x3
 * --batch    global batch per model, in --models' order (default small 64,
 *            squeezenet 16, resnet18 16, alexnet 32, resnext 16, resnet50 8)
 * --steps    timed training steps (default 6) after --warmup (default 1)
 * --reps     timed allreduces per model (default 15, after 2 warm-ups)
 * --threads  each rank's context threads (default 1)
 * --classes  outputs of every model (default 2)
 * --chunk    with 2+ ranks, models of more parameters than this (default
 *            4194304 = 16 MiB of floats) are also timed with the gradient sum
 *            split into sum_f32 calls of at most this many floats (lines
 *            "allreduce_chunked", "step_chunked"); 0: not
 * --lib      also times aibox_train_dist on the same synthetic batches (two
 *            epochs of --steps steps, the second timed)
 *
 * Lines (every time in ms, medians unless named):
 *   {"what":"allreduce", model, params, bytes, ranks, ms, ms_min, ms_p90,
 *    algbw_GBs (bytes / time), busbw_GBs (2(N-1)/N x bytes / time: what each
 *    link of a ring carries)}: comm->sum_f32 on the parameter count, every
 *    repetition after a barrier, its time the slowest rank's;
 *   {"what":"allreduce_small", n: 5, us}: comm->sum_f64 of 5 doubles (the
 *    per-step figures aibox_train_dist sums): the latency;
 *   {"what":"step", ...}: a training step as aibox_train_dist takes it: zero
 *    the gradients, forward, softmax cross-entropy, backward ("compute_ms", the
 *    slowest rank's), the gradients scaled by the rank's share ("scale_ms")
 *    and summed with sum_f32 beside the 5-double sum_f64 ("allreduce_ms": the
 *    rank that waited least, i.e. the transfer without the wait for a slower
 *    rank; "wait_ms" the rest of the slowest rank's), Adam over the context's
 *    threads ("optim_ms"); "step_ms" the slowest rank's whole step;
 *    "img_s" = global batch / step_ms; "compute_ms_per_image" =
 *    compute_ms / local batch (per rank, on its threads);
 *   {"what":"allreduce_chunked"} and {"what":"step_chunked"}: the same with
 *    the sum in sum_f32 calls of at most --chunk floats (see sum_grads);
 *   {"what":"train_dist", ...}: with --lib, aibox_train_dist's images/s. */
#define BENCH_NAME "scaling"
#include <mpi.h>

#include "../bench.h"
#include "aibox.h"
#include "aibox/mpi.h"

#define MAX_MODELS 8
#define MAX_STEPS 1000

typedef struct {
    const char *name;
    int size, batch;
} preset_info;

static const preset_info known[] = {
    {"small", 64, 64},     {"squeezenet", 224, 16}, {"resnet18", 224, 16}, {"alexnet", 256, 32},
    {"resnext", 224, 16},  {"resnet50", 224, 8},
};

static int rank, nranks;

static void mdie(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void mdie(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, BENCH_NAME " (rank %d): ", rank);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
}

static void mcheck(aibox_status s, const aibox_error *err, const char *what)
{
    if (s != AIBOX_OK) mdie("%s: %s", what, err->msg[0] ? err->msg : aibox_strerror(s));
}

static const preset_info *find_preset(const char *name)
{
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (!strcmp(known[i].name, name)) return &known[i];
    return NULL;
}

static aibox_model *build(const preset_info *p, int classes)
{
    aibox_error err = {0};
    aibox_model *m = NULL;
    /* alexnet as aibox-train builds it (dropout 0.25, the preset's) */
    aibox_status s = !strcmp(p->name, "alexnet") ? aibox_preset_alexnet(&m, classes, 3, p->size, 0.25f, &err)
                                                 : aibox_preset(&m, p->name, classes, 3, p->size, &err);
    mcheck(s, &err, p->name);
    return m;
}

static double median(double *v, int n) { return quantile(v, n, 0.5); }

static void emit_common(const char *what, const char *model)
{
    printf("{\"bench\":\"scaling\",\"what\":\"%s\",\"model\":\"%s\",\"ranks\":%d", what, model, nranks);
}

/* ---------------------------------------------------------------- allreduce */

/* --chunk: the gradient sum as consecutive sum_f32 calls of at most chunk
 * floats (0: one call, as aibox_train_dist makes it). Open MPI's allreduce
 * allocates a temporary buffer of the message's size each call: glibc serves
 * one above its mmap threshold (at most 32 MiB) with a fresh mmap, whose pages
 * are faulted in and zeroed every call. */
static size_t chunk;

static aibox_status sum_grads(const aibox_comm *c, float *v, size_t n, size_t piece, aibox_error *err)
{
    if (!piece) return c->sum_f32(c->user, v, n, err);
    for (size_t at = 0; at < n; at += piece) {
        aibox_status s = c->sum_f32(c->user, v + at, n - at < piece ? n - at : piece, err);
        if (s) return s;
    }
    return AIBOX_OK;
}

static void time_allreduce(const aibox_comm *c, const char *model, size_t P, int reps, size_t piece)
{
    aibox_error err = {0};
    float *v = xalloc_floats(P);
    aibox_rng r;
    aibox_rng_seed(&r, 7 + (uint64_t)rank);
    for (size_t i = 0; i < P; i++) v[i] = aibox_rng_normal(&r) * 1e-3f;
    double *t = xmalloc(sizeof *t * (size_t)reps), *tmax = xmalloc(sizeof *tmax * (size_t)reps);
    for (int k = -2; k < reps; k++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        mcheck(sum_grads(c, v, P, piece, &err), &err, "sum_f32");
        double dt = (MPI_Wtime() - t0) * 1e3;
        if (k >= 0) t[k] = dt;
        /* keep the values bounded: the sums double them each time */
        for (size_t i = 0; i < P; i++) v[i] *= 1.0f / (float)nranks;
    }
    MPI_Reduce(t, tmax, reps, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    if (piece) { /* the chunked variant: its line only */
        if (rank == 0) {
            double bytes = (double)P * sizeof(float), med = median(tmax, reps);
            double bus = 2.0 * (nranks - 1) / nranks * bytes;
            emit_common("allreduce_chunked", model);
            printf(",\"params\":%zu,\"bytes\":%.0f,\"chunk\":%zu,\"reps\":%d,\"ms\":%.3f,\"ms_min\":%.3f,"
                   "\"ms_p90\":%.3f,\"algbw_GBs\":%.3f,\"busbw_GBs\":%.3f}\n",
                   P, bytes, piece, reps, med, quantile(tmax, reps, 0), quantile(tmax, reps, 0.9),
                   bytes / (med * 1e-3) / 1e9, bus / (med * 1e-3) / 1e9);
            fflush(stdout);
            say("  allreduce %-10s in chunks of %zu floats: median %8.3f ms, bus %.2f GB/s\n", model, piece, med,
                bus / (med * 1e-3) / 1e9);
        }
        free(t), free(tmax);
        aibox_free(v);
        return;
    }
    /* the 5-double sum of every step: latency */
    double small[5] = {1, 2, 3, 4, 5}, ts[64], tsmax[64];
    int nsmall = 64;
    for (int k = -4; k < nsmall; k++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        mcheck(c->sum_f64(c->user, small, 5, &err), &err, "sum_f64");
        if (k >= 0) ts[k] = (MPI_Wtime() - t0) * 1e6;
    }
    MPI_Reduce(ts, tsmax, nsmall, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        double bytes = (double)P * sizeof(float);
        double mn = quantile(tmax, reps, 0), p90 = quantile(tmax, reps, 0.9), med = median(tmax, reps);
        double bus = nranks > 1 ? 2.0 * (nranks - 1) / nranks * bytes : 0;
        emit_common("allreduce", model);
        printf(",\"params\":%zu,\"bytes\":%.0f,\"reps\":%d,\"ms\":%.3f,\"ms_min\":%.3f,\"ms_p90\":%.3f,"
               "\"algbw_GBs\":%.3f,\"busbw_GBs\":%.3f}\n",
               P, bytes, reps, med, mn, p90, bytes / (med * 1e-3) / 1e9, bus / (med * 1e-3) / 1e9);
        double us = median(tsmax, nsmall);
        emit_common("allreduce_small", model);
        printf(",\"n\":5,\"us\":%.2f,\"us_min\":%.2f}\n", us, quantile(tsmax, nsmall, 0));
        fflush(stdout);
        say("  allreduce %-10s %10zu floats (%6.1f MB): median %8.3f ms (min %.3f, p90 %.3f), bus %.2f GB/s; "
            "5 doubles %.1f us\n",
            model, P, bytes / 1e6, med, mn, p90, bus / (med * 1e-3) / 1e9, us);
    }
    free(t), free(tmax);
    aibox_free(v);
}

/* ---------------------------------------------------------------- steps */

enum { T_COMPUTE, T_SCALE, T_ALLREDUCE, T_OPTIM, T_TOTAL, T_N };

static void random_batch(float *x, int *y, size_t in, int n, int classes, uint64_t seed)
{
    aibox_rng r;
    aibox_rng_seed(&r, seed);
    for (size_t i = 0; i < in * (size_t)n; i++) x[i] = aibox_rng_normal(&r);
    for (int i = 0; i < n; i++) y[i] = (int)aibox_rng_below(&r, (uint32_t)classes);
}

static void time_steps(const aibox_comm *c, const preset_info *p, int global, int classes, int threads, int warmup,
                       int steps, size_t piece)
{
    aibox_error err = {0};
    int local = global / nranks;
    aibox_model *m = build(p, classes);
    size_t P = aibox_model_param_count(m);
    /* every rank starts from rank 0's weights, as aibox_train_dist does */
    mcheck(c->bcast(c->user, aibox_model_params(m), P * sizeof(float), 0, &err), &err, "bcast");
    aibox_ctx *ctx = NULL;
    aibox_ctx_opts co = {.mode = AIBOX_TRAIN, .max_batch = local, .threads = threads, .seed = 1 + (uint64_t)rank};
    mcheck(aibox_ctx_create(&ctx, m, &co, &err), &err, "training context");
    aibox_optim *opt = NULL;
    aibox_optim_opts oo = {.kind = AIBOX_ADAM};
    mcheck(aibox_optim_create(&opt, m, &oo, &err), &err, "optimizer");
    aibox_optim_set_ctx(opt, ctx);
    size_t in = (size_t)3 * p->size * p->size;
    float *x = xalloc_floats(in * (size_t)local);
    int *y = xmalloc(sizeof *y * (size_t)local);
    random_batch(x, y, in, local, classes, 1000 + (uint64_t)rank);
    float *g = aibox_model_grads(m);
    if (!g) mdie("no gradient block");
    double *t = xmalloc(sizeof *t * (size_t)steps * T_N);
    MPI_Barrier(MPI_COMM_WORLD);
    for (int k = -warmup; k < steps; k++) {
        double t0 = MPI_Wtime();
        float loss;
        aibox_model_zero_grad(m);
        mcheck(aibox_ctx_forward(ctx, m, x, local, &err), &err, "forward");
        mcheck(aibox_ctx_loss_softmax_ce(ctx, y, NULL, &loss, &err), &err, "loss");
        mcheck(aibox_ctx_backward(ctx, m, &err), &err, "backward");
        double t1 = MPI_Wtime(), t2 = t1, t3 = t1;
        if (nranks > 1) {
            const float share = 1.0f / (float)nranks;
            for (size_t i = 0; i < P; i++) g[i] *= share;
            t2 = MPI_Wtime();
            double st[5] = {local, loss * local, 0, 0, 0};
            mcheck(c->sum_f64(c->user, st, 5, &err), &err, "sum_f64");
            mcheck(sum_grads(c, g, P, piece, &err), &err, "sum_f32");
            t3 = MPI_Wtime();
        }
        mcheck(aibox_optim_step(opt, m, &err), &err, "optimizer step");
        double t4 = MPI_Wtime();
        if (k >= 0) {
            double *r = t + (size_t)k * T_N;
            r[T_COMPUTE] = (t1 - t0) * 1e3, r[T_SCALE] = (t2 - t1) * 1e3, r[T_ALLREDUCE] = (t3 - t2) * 1e3;
            r[T_OPTIM] = (t4 - t3) * 1e3, r[T_TOTAL] = (t4 - t0) * 1e3;
        }
    }
    double *all = rank == 0 ? xmalloc(sizeof *all * (size_t)steps * T_N * (size_t)nranks) : NULL;
    MPI_Gather(t, steps * T_N, MPI_DOUBLE, all, steps * T_N, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        double col[T_N + 1][MAX_STEPS];
        for (int k = 0; k < steps; k++) {
            double cmax = 0, amin = 1e300, amax = 0, smax = 0, omax = 0, tmax = 0, wait = 0;
            for (int r = 0; r < nranks; r++) {
                const double *v = all + ((size_t)r * steps + k) * T_N;
                cmax = fmax(cmax, v[T_COMPUTE]), smax = fmax(smax, v[T_SCALE]), omax = fmax(omax, v[T_OPTIM]);
                tmax = fmax(tmax, v[T_TOTAL]), amin = fmin(amin, v[T_ALLREDUCE]), amax = fmax(amax, v[T_ALLREDUCE]);
            }
            wait = amax - amin;
            col[T_COMPUTE][k] = cmax, col[T_SCALE][k] = smax, col[T_ALLREDUCE][k] = amin, col[T_OPTIM][k] = omax;
            col[T_TOTAL][k] = tmax, col[T_N][k] = wait;
        }
        double med[T_N + 1];
        for (int i = 0; i <= T_N; i++) med[i] = median(col[i], steps);
        double step_min = quantile(col[T_TOTAL], steps, 0);
        emit_common(piece ? "step_chunked" : "step", p->name);
        printf(",\"size\":%d,\"params\":%zu,\"threads\":%d,\"local_batch\":%d,\"global_batch\":%d,\"steps\":%d,"
               "\"step_ms\":%.2f,\"step_ms_min\":%.2f,\"compute_ms\":%.2f,\"scale_ms\":%.3f,\"allreduce_ms\":%.3f,"
               "\"wait_ms\":%.3f,\"optim_ms\":%.3f,\"img_s\":%.3f,\"compute_ms_per_image\":%.3f,\"chunk\":%zu,"
               "\"load\":\"%s\"}\n",
               p->size, P, threads, local, global, steps, med[T_TOTAL], step_min, med[T_COMPUTE], med[T_SCALE],
               med[T_ALLREDUCE], med[T_N], med[T_OPTIM], global / (med[T_TOTAL] * 1e-3), med[T_COMPUTE] / local,
               piece, loadavg());
        fflush(stdout);
        say("  step%s %-10s %d x %d thr, batch %d (%d/rank): %8.1f ms (compute %.1f, scale %.2f, allreduce %.2f, "
            "wait %.2f, adam %.2f) = %.2f img/s\n",
            piece ? " (chunked)" : "", p->name, nranks, threads, global, local, med[T_TOTAL], med[T_COMPUTE], med[T_SCALE], med[T_ALLREDUCE],
            med[T_N], med[T_OPTIM], global / (med[T_TOTAL] * 1e-3));
        free(all);
    }
    free(t), free(y);
    aibox_free(x);
    aibox_optim_set_ctx(opt, NULL);
    aibox_optim_free(&opt);
    aibox_ctx_free(&ctx);
    aibox_model_free(&m);
}

/* ---------------------------------------------------------------- aibox_train_dist */

typedef struct {
    const float *x;
    const int *y;
    int local, steps, done;
} synth_source;

static aibox_status synth_begin(void *user, int epoch, aibox_error *err)
{
    (void)epoch, (void)err;
    ((synth_source *)user)->done = 0;
    return AIBOX_OK;
}

static aibox_status synth_next(void *user, const float **x, const int **labels, int *n, aibox_error *err)
{
    (void)err;
    synth_source *s = user;
    *x = s->x, *labels = s->y;
    *n = s->done < s->steps ? s->local : 0;
    s->done++;
    return AIBOX_OK;
}

typedef struct {
    double seconds[4];
} epoch_times;

static void on_progress(void *user, const aibox_train_progress *p)
{
    epoch_times *e = user;
    if (p->end_of_epoch && p->epoch >= 0 && p->epoch < 4) e->seconds[p->epoch] = p->epoch_seconds;
}

static void time_train_dist(const aibox_comm *c, const preset_info *p, int global, int classes, int threads,
                            int steps)
{
    aibox_error err = {0};
    int local = global / nranks;
    aibox_model *m = build(p, classes);
    size_t in = (size_t)3 * p->size * p->size;
    float *x = xalloc_floats(in * (size_t)local);
    int *y = xmalloc(sizeof *y * (size_t)local);
    random_batch(x, y, in, local, classes, 1000 + (uint64_t)rank);
    synth_source ss = {x, y, local, steps, 0};
    aibox_batch_source src = {.user = &ss, .samples = (long)local * steps, .begin_epoch = synth_begin,
                              .next = synth_next};
    epoch_times et = {{0}};
    aibox_train_opts o = {.epochs = 2, .optim = {.kind = AIBOX_ADAM}, .seed = 1, .on_progress = on_progress,
                          .user = &et};
    aibox_train_result res;
    mcheck(aibox_train_dist(m, &src, local, NULL, &o, c, threads, &res, &err), &err, "aibox_train_dist");
    double sec = et.seconds[1], smax = 0;
    MPI_Reduce(&sec, &smax, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        emit_common("train_dist", p->name);
        printf(",\"threads\":%d,\"local_batch\":%d,\"global_batch\":%d,\"steps\":%d,\"epoch_s\":%.3f,"
               "\"step_ms\":%.2f,\"img_s\":%.3f}\n",
               threads, local, global, steps, smax, smax * 1e3 / steps, (double)global * steps / smax);
        fflush(stdout);
        say("  aibox_train_dist %-10s %d x %d thr, batch %d: second epoch %.2f s = %.2f img/s\n", p->name, nranks,
            threads, global, smax, (double)global * steps / smax);
    }
    free(y);
    aibox_free(x);
    aibox_model_free(&m);
}

/* ---------------------------------------------------------------- main */

static void usage(void)
{
    if (rank == 0)
        fprintf(stderr, "usage: [mpirun -np N] scaling [--models LIST] [--batch LIST] [--steps N] [--warmup N] "
                        "[--reps N] [--threads N] [--classes N] [--chunk N] [--no-allreduce] [--no-train] [--lib]\n");
    MPI_Finalize();
    exit(2);
}

static int split(char *s, char **out, int max)
{
    int n = 0;
    for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
        if (n == max) return -1;
        out[n++] = tok;
    }
    return n;
}

static int pos_int(const char *opt, const char *v, int max)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (*v == 0 || *end || x < 1 || x > max) mdie("%s: expected an integer in 1..%d, got '%s'", opt, max, v);
    return (int)x;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    bench_human = stderr;
    char models_buf[256] = "small,squeezenet,resnet18,alexnet", batch_buf[256] = "";
    chunk = (size_t)1 << 22;
    int steps = 6, warmup = 1, reps = 15, threads = 1, classes = 2, do_ar = 1, do_train = 1, do_lib = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--no-allreduce")) do_ar = 0;
        else if (!strcmp(o, "--no-train")) do_train = 0;
        else if (!strcmp(o, "--lib")) do_lib = 1;
        else if (!strcmp(o, "--help") || !strcmp(o, "-h")) usage();
        else if (!v) usage();
        else if (!strcmp(o, "--models")) snprintf(models_buf, sizeof models_buf, "%s", v), i++;
        else if (!strcmp(o, "--batch")) snprintf(batch_buf, sizeof batch_buf, "%s", v), i++;
        else if (!strcmp(o, "--steps")) steps = pos_int(o, v, MAX_STEPS), i++;
        else if (!strcmp(o, "--warmup")) warmup = pos_int(o, v, 100), i++;
        else if (!strcmp(o, "--reps")) reps = pos_int(o, v, 10000), i++;
        else if (!strcmp(o, "--threads")) threads = pos_int(o, v, 256), i++;
        else if (!strcmp(o, "--classes")) classes = pos_int(o, v, 100000), i++;
        else if (!strcmp(o, "--chunk")) chunk = strcmp(v, "0") ? (size_t)pos_int(o, v, 1 << 30) : 0, i++;
        else usage();
    }
    char *names[MAX_MODELS], *batches[MAX_MODELS];
    int nm = split(models_buf, names, MAX_MODELS), nb = batch_buf[0] ? split(batch_buf, batches, MAX_MODELS) : 0;
    if (nm <= 0 || nb < 0 || (nb && nb != nm)) mdie("--models / --batch: up to %d, as many batches as models", MAX_MODELS);
    const preset_info *pi[MAX_MODELS];
    int gb[MAX_MODELS];
    for (int k = 0; k < nm; k++) {
        if (!(pi[k] = find_preset(names[k]))) mdie("unknown model '%s'", names[k]);
        gb[k] = nb ? pos_int("--batch", batches[k], 1 << 20) : pi[k]->batch;
        if (gb[k] % nranks) mdie("%s: global batch %d does not split over %d ranks", names[k], gb[k], nranks);
    }

    aibox_error err = {0};
    aibox_comm c;
    mcheck(aibox_mpi_comm(&c, &err), &err, "aibox_mpi_comm");
    aibox_blas_setup();
    if (rank == 0)
        say("scaling: %d rank(s) x %d thread(s), %s, load %s\n", nranks, threads, aibox_blas_info(), loadavg());
    for (int k = 0; k < nm; k++) {
        if (do_ar && nranks > 1) {
            aibox_model *m = build(pi[k], classes);
            size_t P = aibox_model_param_count(m);
            aibox_model_free(&m);
            time_allreduce(&c, pi[k]->name, P, reps, 0);
            if (chunk && P > chunk) time_allreduce(&c, pi[k]->name, P, reps, chunk);
        }
        if (do_train) {
            time_steps(&c, pi[k], gb[k], classes, threads, warmup, steps, 0);
            if (chunk && nranks > 1) {
                aibox_model *m = build(pi[k], classes);
                size_t P = aibox_model_param_count(m);
                aibox_model_free(&m);
                if (P > chunk) time_steps(&c, pi[k], gb[k], classes, threads, warmup, steps, chunk);
            }
        }
        if (do_lib) time_train_dist(&c, pi[k], gb[k], classes, threads, steps);
    }
    MPI_Finalize();
    return 0;
}

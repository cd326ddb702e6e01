/* Float against 8-bit: file size, batch-1 latency (median, 1 and 2
 * threads) and accuracy on a classification data set's seeded validation
 * split (the one aibox-train holds out with the same --seed and --val).
 *
 *   bench_quant FLOAT.aibox INT8.aibox [DATA_DIR] [--seed S] [--val F] [--runs N]
 *
 * DATA_DIR absent: latency and size only (an imported model). Prints a
 * human table on stderr and one JSON line per model on stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "aibox.h"
#define BENCH_NAME "bench_quant"
#include "bench.h"

typedef struct row {
    const char *path;
    long long bytes;
    double ms[2], acc;
    int n_val;
} row;

static double latency(aibox_model *m, int threads, int runs)
{
    aibox_error err = {0};
    aibox_ctx *c = NULL;
    int C, H, W;
    aibox_model_input_shape(m, &C, &H, &W);
    check(aibox_ctx_create(&c, m, &(aibox_ctx_opts){.threads = threads}, &err), &err, "context");
    check(aibox_ctx_freeze_weights(c, m, &err), &err, "freeze");
    float *x = xalloc_floats((size_t)C * H * W);
    for (size_t i = 0; i < (size_t)C * H * W; i++) x[i] = (float)((i * 7919) % 255) / 128.0f - 1.0f;
    double *t = xmalloc(sizeof(double) * (size_t)runs);
    for (int r = -5; r < runs; r++) {
        double t0 = now_ms();
        check(aibox_ctx_infer(c, m, x, 1, &err), &err, "infer");
        if (r >= 0) t[r] = now_ms() - t0;
    }
    double med = quantile(t, runs, 0.5);
    free(t), free(x);
    aibox_ctx_free(&c);
    return med;
}

static double accuracy(aibox_model *m, aibox_dataset *ds, int *n_val)
{
    aibox_error err = {0};
    aibox_preproc pp;
    aibox_ctx *c = NULL;
    check(aibox_preproc_from_model(&pp, m, &err), &err, "preprocessing");
    check(aibox_ctx_create(&c, m, &(aibox_ctx_opts){.threads = 2}, &err), &err, "context");
    float *x = xalloc_floats((size_t)pp.channels * pp.height * pp.width);
    int n = aibox_dataset_count(ds, AIBOX_SPLIT_VAL), right = 0;
    for (int i = 0; i < n; i++) {
        aibox_image img = {0};
        check(aibox_dataset_image(ds, AIBOX_SPLIT_VAL, i, &img, &err), &err, "image");
        check(aibox_preprocess(&pp, &img, x, &err), &err, "preprocess");
        check(aibox_ctx_infer(c, m, x, 1, &err), &err, "infer");
        int k, h, w, best = 0;
        const float *y = aibox_ctx_output(c, &k, &h, &w);
        for (int j = 1; j < k * h * w; j++)
            if (y[j] > y[best]) best = j;
        right += best == aibox_dataset_label(ds, AIBOX_SPLIT_VAL, i);
        aibox_image_free(&img);
    }
    free(x);
    aibox_ctx_free(&c);
    *n_val = n;
    return n ? (double)right / n : 0;
}

int main(int argc, char **argv)
{
    const char *paths[2] = {NULL, NULL}, *data = NULL;
    long long seed = 1;
    double val = 0.2;
    int runs = 50, np = 0;
    bench_human = stderr;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--val") && i + 1 < argc) val = atof(argv[++i]);
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atoi(argv[++i]);
        else if (np < 2) paths[np++] = argv[i];
        else if (!data) data = argv[i];
        else die("usage: bench_quant FLOAT.aibox INT8.aibox [DATA_DIR] [--seed S] [--val F] [--runs N]");
    }
    if (np < 2 || runs < 1) die("usage: bench_quant FLOAT.aibox INT8.aibox [DATA_DIR] [--seed S] [--val F] [--runs N]");
    aibox_dataset *ds = NULL;
    aibox_error err = {0};
    if (data) {
        aibox_dataset_opts o = {.val_split = (float)val, .seed = (uint64_t)seed};
        check(aibox_dataset_open(&ds, data, &o, &err), &err, data);
    }
    row r[2];
    for (int k = 0; k < 2; k++) {
        aibox_model *m = NULL;
        struct stat st;
        check(aibox_model_load(&m, paths[k], &err), &err, paths[k]);
        r[k].path = paths[k];
        r[k].bytes = stat(paths[k], &st) == 0 ? (long long)st.st_size : -1;
        for (int t = 0; t < 2; t++) r[k].ms[t] = latency(m, t + 1, runs);
        r[k].acc = ds ? accuracy(m, ds, &r[k].n_val) : -1, r[k].n_val = ds ? r[k].n_val : 0;
        printf("{\"model\":\"%s\",\"int8\":%s,\"bytes\":%lld,\"ms_1thread\":%.3f,\"ms_2threads\":%.3f,\"accuracy\":%.4f,"
               "\"val_images\":%d,\"load\":\"%s\"}\n",
               paths[k], aibox_model_quantized(m) ? "true" : "false", r[k].bytes, r[k].ms[0], r[k].ms[1], r[k].acc,
               r[k].n_val, loadavg());
        aibox_model_free(&m);
    }
    say("%-8s %12s %10s %10s %9s\n", "", "bytes", "1 thr ms", "2 thr ms", "accuracy");
    for (int k = 0; k < 2; k++)
        say("%-8s %12lld %10.3f %10.3f %9.4f\n", k ? "int8" : "float", r[k].bytes, r[k].ms[0], r[k].ms[1], r[k].acc);
    say("int8/float: size %.3f, speed-up %.2fx (1 thread) %.2fx (2 threads), accuracy %+.2f points\n",
        (double)r[1].bytes / r[0].bytes, r[0].ms[0] / r[1].ms[0], r[0].ms[1] / r[1].ms[1], 100 * (r[1].acc - r[0].acc));
    aibox_dataset_free(&ds);
    return 0;
}

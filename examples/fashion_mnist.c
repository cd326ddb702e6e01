/* Fashion-MNIST with libaibox: read the IDX files, build a small CNN, train
 * it with Adam and report the test accuracy.
 *
 *   fashion_mnist [DATA_DIR [EPOCHS [THREADS]]]
 *
 * DATA_DIR holds the four gzip IDX files of Debian's dataset-fashion-mnist
 * (default /usr/share/datasets/fashion-mnist). Build against the library:
 *   cc fashion_mnist.c -o fashion_mnist $(pkg-config --cflags --libs aibox) -lz
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zlib.h>

#include "aibox.h"

#define SIDE 28
#define PIXELS (SIDE * SIDE)
#define CLASSES 10
#define BATCH 64
#define SEED 42

typedef struct {
    int count;
    uint8_t *images; /* count x 28 x 28 */
    uint8_t *labels; /* count */
} dataset;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* IDX numbers are big-endian regardless of the host. */
static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads exactly len bytes; a short read means a truncated or corrupt file. */
static int read_exact(gzFile f, void *buf, size_t len, const char *path)
{
    unsigned char *p = buf;
    while (len > 0) {
        /* gzread takes an unsigned count; read in chunks to stay within it. */
        unsigned chunk = len > (1u << 30) ? 1u << 30 : (unsigned)len;
        int got = gzread(f, p, chunk);
        if (got <= 0) {
            int zerr;
            const char *msg = gzerror(f, &zerr);
            fprintf(stderr, "fashion_mnist: %s: %s\n", path,
                    got == 0 || zerr == Z_OK ? "file is truncated" : msg);
            return -1;
        }
        p += got;
        len -= (size_t)got;
    }
    return 0;
}

/* Opens one IDX file and checks its header: magic 0x801 (labels) with one
 * dimension or 0x803 (images) with three, 28x28. Returns the item count. */
static long read_idx(const char *dir, const char *name, int images, uint8_t **out)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    gzFile f = gzopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fashion_mnist: %s: cannot open (install dataset-fashion-mnist or pass the folder)\n", path);
        return -1;
    }
    unsigned char hdr[16];
    size_t hlen = images ? 16 : 8;
    long count = -1;
    uint32_t magic_want = images ? 0x00000803 : 0x00000801;
    if (read_exact(f, hdr, hlen, path) == 0) {
        uint32_t magic = be32(hdr), n = be32(hdr + 4);
        if (magic != magic_want)
            fprintf(stderr, "fashion_mnist: %s: bad IDX magic 0x%08x (expected 0x%08x)\n", path, magic, magic_want);
        else if (n == 0 || n > 1000000)
            fprintf(stderr, "fashion_mnist: %s: implausible item count %u\n", path, n);
        else if (images && (be32(hdr + 8) != SIDE || be32(hdr + 12) != SIDE))
            fprintf(stderr, "fashion_mnist: %s: images are %ux%u, expected %dx%d\n", path, be32(hdr + 8),
                    be32(hdr + 12), SIDE, SIDE);
        else
            count = n;
    }
    if (count > 0) {
        size_t bytes = (size_t)count * (images ? PIXELS : 1);
        *out = malloc(bytes);
        if (!*out) {
            fprintf(stderr, "fashion_mnist: %s: out of memory\n", path);
            count = -1;
        } else if (read_exact(f, *out, bytes, path) != 0) {
            free(*out);
            *out = NULL;
            count = -1;
        }
    }
    gzclose(f);
    return count;
}

static int load(const char *dir, const char *prefix, dataset *d)
{
    char img_name[64], lbl_name[64];
    snprintf(img_name, sizeof img_name, "%s-images-idx3-ubyte.gz", prefix);
    snprintf(lbl_name, sizeof lbl_name, "%s-labels-idx1-ubyte.gz", prefix);
    long ni = read_idx(dir, img_name, 1, &d->images);
    if (ni < 0) return -1;
    long nl = read_idx(dir, lbl_name, 0, &d->labels);
    if (nl < 0) return -1;
    if (ni != nl) {
        fprintf(stderr, "fashion_mnist: %s/%s: %ld labels for %ld images\n", dir, lbl_name, nl, ni);
        return -1;
    }
    for (long i = 0; i < nl; i++)
        if (d->labels[i] >= CLASSES) {
            fprintf(stderr, "fashion_mnist: %s/%s: label %d at %ld is not a class 0-9\n", dir, lbl_name,
                    d->labels[i], i);
            return -1;
        }
    d->count = (int)ni;
    return 0;
}

/* Copies samples idx[0..n) into x as floats in [0, 1] and their labels. */
static void gather(const dataset *d, const int *idx, int n, float *x, int *y)
{
    for (int i = 0; i < n; i++) {
        const uint8_t *src = d->images + (size_t)idx[i] * PIXELS;
        for (int p = 0; p < PIXELS; p++) x[(size_t)i * PIXELS + p] = src[p] * (1.0f / 255.0f);
        y[i] = d->labels[idx[i]];
    }
}

/* Counts the rows of the n x 10 logits whose largest entry is the label. */
static int correct(const float *logits, const int *y, int n)
{
    int hits = 0;
    for (int i = 0; i < n; i++) {
        const float *row = logits + (size_t)i * CLASSES;
        int best = 0;
        for (int c = 1; c < CLASSES; c++)
            if (row[c] > row[best]) best = c;
        hits += best == y[i];
    }
    return hits;
}

/* conv 32 -> pool -> conv 64 -> pool -> dense 128 -> dropout -> dense 10. */
static aibox_model *build_model(aibox_error *err)
{
    aibox_model *m = NULL;
    if (aibox_model_create(&m, 1, SIDE, SIDE, err) != AIBOX_OK) return NULL;
    aibox_pool_opts pool2 = {.kernel_h = 2, .kernel_w = 2};
    /* Builder errors are sticky: check once, at aibox_model_finish. */
    int x = 0;
    x = aibox_relu(m, aibox_conv2d_simple(m, x, 32, 3, 1, 1));
    x = aibox_maxpool(m, x, &pool2);
    x = aibox_relu(m, aibox_conv2d_simple(m, x, 64, 3, 1, 1));
    x = aibox_maxpool(m, x, &pool2);
    x = aibox_flatten(m, x);
    x = aibox_relu(m, aibox_dense(m, x, 128, 1));
    x = aibox_dropout(m, x, 0.3f);
    aibox_dense(m, x, CLASSES, 1);
    if (aibox_model_finish(m, SEED, err) != AIBOX_OK) aibox_model_free(&m);
    return m;
}

static int parse_int(const char *s, const char *what, int lo, int hi)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "fashion_mnist: %s must be an integer from %d to %d, not '%s'\n", what, lo, hi, s);
        exit(2);
    }
    return (int)v;
}

int main(int argc, char **argv)
{
    if (argc > 4 || (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))) {
        fprintf(stderr, "usage: %s [DATA_DIR [EPOCHS [THREADS]]]\n", argv[0]);
        return argc > 4 ? 2 : 0;
    }
    const char *dir = argc > 1 ? argv[1] : "/usr/share/datasets/fashion-mnist";
    int epochs = argc > 2 ? parse_int(argv[2], "EPOCHS", 1, 1000) : 5;
    int threads = argc > 3 ? parse_int(argv[3], "THREADS", 1, 256) : 2;

    double t0 = now();
    dataset train = {0}, test = {0};
    if (load(dir, "train", &train) != 0 || load(dir, "t10k", &test) != 0) return 1;
    printf("loaded %d training and %d test images from %s in %.1f s\n", train.count, test.count, dir, now() - t0);

    aibox_error err = {0};
    aibox_model *model = build_model(&err);
    aibox_ctx *tctx = NULL, *ectx = NULL;
    aibox_optim *opt = NULL;
    aibox_optim_opts oo = {.kind = AIBOX_ADAM, .lr = 1e-3f};
    int rc = 1;
    float *x = malloc(sizeof *x * BATCH * PIXELS);
    int *y = malloc(sizeof *y * BATCH);
    int *order = malloc(sizeof *order * (train.count > test.count ? train.count : test.count));
    if (!model || !x || !y || !order) {
        fprintf(stderr, "fashion_mnist: %s\n", model ? "out of memory" : err.msg);
        goto done;
    }
    /* Each context runs its own pool of worker threads. */
    if (aibox_ctx_create(&tctx, model, &(aibox_ctx_opts){.mode = AIBOX_TRAIN, .max_batch = BATCH, .height = SIDE, .width = SIDE, .threads = threads, .seed = SEED}, &err) != AIBOX_OK ||
        aibox_ctx_create(&ectx, model, &(aibox_ctx_opts){.max_batch = BATCH, .height = SIDE, .width = SIDE, .threads = threads, .seed = SEED}, &err) != AIBOX_OK ||
        aibox_optim_create(&opt, model, &oo, &err) != AIBOX_OK) {
        fprintf(stderr, "fashion_mnist: %s\n", err.msg);
        goto done;
    }
    printf("model: %zu parameters; %s\n", aibox_model_param_count(model), aibox_blas_info());

    int oc, oh, ow; /* output shape, 10 x 1 x 1 */
    aibox_rng rng;
    aibox_rng_seed(&rng, SEED);
    double t_train = now();
    for (int e = 0; e < epochs; e++) {
        double te = now();
        /* Fisher-Yates shuffle, seeded: the same run gives the same batches. */
        for (int i = 0; i < train.count; i++) order[i] = i;
        for (int i = train.count - 1; i > 0; i--) {
            int j = (int)aibox_rng_below(&rng, (uint32_t)i + 1);
            int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        double loss_sum = 0;
        long hits = 0;
        for (int b = 0; b < train.count; b += BATCH) {
            int n = train.count - b < BATCH ? train.count - b : BATCH;
            float loss;
            gather(&train, order + b, n, x, y);
            aibox_model_zero_grad(model);
            if (aibox_ctx_forward(tctx, model, x, n, &err) != AIBOX_OK ||
                aibox_ctx_loss_softmax_ce(tctx, y, NULL, &loss, &err) != AIBOX_OK ||
                aibox_ctx_backward(tctx, model, &err) != AIBOX_OK || aibox_optim_step(opt, model, &err) != AIBOX_OK) {
                fprintf(stderr, "fashion_mnist: training step failed: %s\n", err.msg);
                goto done;
            }
            loss_sum += (double)loss * n;
            hits += correct(aibox_ctx_output(tctx, &oc, &oh, &ow), y, n);
        }
        printf("epoch %d/%d: train loss %.4f, train accuracy %.2f%% (%.1f s)\n", e + 1, epochs,
               loss_sum / train.count, 100.0 * hits / train.count, now() - te);
        fflush(stdout);
    }
    double train_s = now() - t_train;

    long hits = 0;
    for (int i = 0; i < test.count; i++) order[i] = i;
    for (int b = 0; b < test.count; b += BATCH) {
        int n = test.count - b < BATCH ? test.count - b : BATCH;
        gather(&test, order + b, n, x, y);
        if (aibox_ctx_infer(ectx, model, x, n, &err) != AIBOX_OK) {
            fprintf(stderr, "fashion_mnist: inference failed: %s\n", err.msg);
            goto done;
        }
        hits += correct(aibox_ctx_output(ectx, &oc, &oh, &ow), y, n);
    }
    printf("test accuracy %.2f%% (%ld/%d); training %.1f s, total wall time %.1f s, %d threads\n",
           100.0 * hits / test.count, hits, test.count, train_s, now() - t0, threads);
    rc = 0;
done:
    aibox_optim_free(&opt);
    aibox_ctx_free(&ectx);
    aibox_ctx_free(&tctx);
    aibox_model_free(&model);
    free(order);
    free(y);
    free(x);
    free(train.images);
    free(train.labels);
    free(test.images);
    free(test.labels);
    return rc;
}

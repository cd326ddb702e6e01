/* bench_loader: images per second the background loader delivers at
 * 256x256x3 (AREA resize, all eleven augmentations chained with p = 0.6,
 * and without augmentation), on 1 and 2 loader threads, against the
 * AI-Box AlexNet-256 training speed it has to keep up with.
 *
 *   bench_loader [--data DIR] [--batches N] [--batch N] [--size N] [--json]
 *
 * Data: --data, else $AIBOX_DATA/neu-cls, else ../shared/data/neu-cls, else
 * a generated folder of 300 textured 200x200 JPEGs (removed afterwards).
 * The caller only takes batches (no training runs meanwhile), so the figures
 * are the loader's ceiling; the per-image CPU cost shows what it takes from
 * the cores that training also uses. Human lines go to stdout, or to stderr
 * with --json, which prints one JSON line on stdout.
 *
 * Not a test: it checks nothing but that every call succeeds. */
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "aibox.h"
#include "aibox/data.h"

/* AI-Box AlexNet-256 training on this 2-core machine (bench_layers,
 * bench/README.md: 21.5-23.5 img/s measured; the brief's round figure). */
#define ALEXNET_TRAIN_IMG_S 20.0

static int json;

static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(json ? stderr : stdout, fmt, ap);
    va_end(ap);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int is_dir(const char *p)
{
    struct stat st;
    return p && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* Two classes of 150 JPEGs with smooth texture (so JPEG sizes are realistic). */
static int generate(char *root)
{
    aibox_error e = {0};
    aibox_rng r;
    aibox_rng_seed(&r, 1);
    aibox_image img = {200, 200, 3, malloc(200 * 200 * 3)};
    if (!img.data) return 1;
    for (int c = 0; c < 2; c++) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s/class%d", root, c);
        mkdir(dir, 0777);
        for (int i = 0; i < 150; i++) {
            const int fx = 1 + (int)aibox_rng_below(&r, 9), fy = 1 + (int)aibox_rng_below(&r, 9);
            for (int y = 0; y < 200; y++)
                for (int x = 0; x < 200; x++)
                    for (int k = 0; k < 3; k++)
                        img.data[(y * 200 + x) * 3 + k] =
                            (uint8_t)(100 + 60 * c + ((x * fx + y * fy + k * 7) % 64) + aibox_rng_below(&r, 24));
            char path[600];
            snprintf(path, sizeof path, "%s/%03d.jpg", dir, i);
            if (aibox_image_write_jpg(&img, path, 90, &e)) {
                fprintf(stderr, "%s\n", e.msg);
                free(img.data);
                return 1;
            }
        }
    }
    free(img.data);
    return 0;
}

typedef struct {
    int threads, augment;
    double img_s, cpu_ms; /* delivered rate; process CPU time per image */
} result;

static int measure(const aibox_dataset *ds, const aibox_preproc *pp, int batch, int batches, result *res)
{
    aibox_error e = {0};
    aibox_loader *ld;
    if (aibox_loader_create(&ld, ds, pp, &(aibox_loader_opts){.split = AIBOX_SPLIT_TRAIN, .batch = batch, .shuffle = 1, .augment = res->augment ? AIBOX_AUG_ALL : 0, .aug_p = AIBOX_AUG_P_DEFAULT, .seed = 1, .threads = res->threads}, &e)) {
        fprintf(stderr, "bench_loader: %s\n", e.msg);
        return 1;
    }
    const float *x;
    const int *l;
    int n, epoch = 0, images = 0;
    /* the first batch includes thread start-up and the pipeline filling */
    if (aibox_loader_next(ld, &x, &l, &n, &e)) goto fail;
    const double t0 = now(), c0 = cpu_now();
    for (int b = 0; b < batches; b++) {
        if (aibox_loader_next(ld, &x, &l, &n, &e)) goto fail;
        if (!n) { /* wrap into the next epoch, as training does */
            if (aibox_loader_epoch(ld, ++epoch, &e) || aibox_loader_next(ld, &x, &l, &n, &e)) goto fail;
        }
        images += n;
    }
    const double dt = now() - t0, dc = cpu_now() - c0;
    res->img_s = images / dt;
    res->cpu_ms = 1e3 * dc / images;
    aibox_loader_free(&ld);
    return 0;
fail:
    fprintf(stderr, "bench_loader: %s\n", e.msg);
    aibox_loader_free(&ld);
    return 1;
}

int main(int argc, char **argv)
{
    const char *data = NULL;
    int batches = 12, batch = 32, size = 256;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc) data = argv[++i];
        else if (!strcmp(argv[i], "--batches") && i + 1 < argc) batches = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--size") && i + 1 < argc) size = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json")) json = 1;
        else {
            fprintf(stderr, "usage: bench_loader [--data DIR] [--batches N] [--batch N] [--size N] [--json]\n");
            return 2;
        }
    }
    if (batches < 1 || batch < 1 || size < 8) {
        fprintf(stderr, "bench_loader: --batches, --batch must be >= 1 and --size >= 8\n");
        return 2;
    }
    char env_dir[512], tmp[] = "/tmp/aibox_bench_loader_XXXXXX";
    int generated = 0;
    if (!data) {
        const char *env = getenv("AIBOX_DATA");
        snprintf(env_dir, sizeof env_dir, "%s/neu-cls", env && *env ? env : "../shared/data");
        if (is_dir(env_dir)) data = env_dir;
    }
    if (!data) {
        if (!mkdtemp(tmp)) {
            perror("bench_loader: mkdtemp");
            return 1;
        }
        say("no NEU data found: generating 300 JPEGs (200x200) in %s\n", tmp);
        if (generate(tmp)) return 1;
        data = tmp, generated = 1;
    }

    aibox_error e = {0};
    aibox_dataset *ds;
    const double t0 = now();
    if (aibox_dataset_open(&ds, data, NULL, &e)) {
        fprintf(stderr, "bench_loader: %s\n", e.msg);
        return 1;
    }
    const double open_s = now() - t0;
    const int total = aibox_dataset_count(ds, AIBOX_SPLIT_TRAIN) + aibox_dataset_count(ds, AIBOX_SPLIT_VAL);
    say("dataset %s: %d images, %d classes, opened (decoded, validated) in %.2f s (%.0f images/s)\n", data, total,
        aibox_dataset_class_count(ds), open_s, total / open_s);

    aibox_preproc pp = {.channels = 3, .width = size, .height = size, .resize = AIBOX_RESIZE_AREA,
                        .mean = {0.5f, 0.5f, 0.5f}, .std = {0.25f, 0.25f, 0.25f}};
    result res[4] = {{1, 1, 0, 0}, {2, 1, 0, 0}, {1, 0, 0, 0}, {2, 0, 0, 0}};
    say("loader -> %dx%dx3 batches of %d (%d batches timed after the first):\n", size, size, batch, batches);
    for (int i = 0; i < 4; i++) {
        if (measure(ds, &pp, batch, batches, &res[i])) return 1;
        say("  %-28s %d thread%s  %7.1f images/s  (%.1f ms CPU per image)\n",
            res[i].augment ? "augment all, p = 0.6," : "no augmentation,", res[i].threads,
            res[i].threads > 1 ? "s" : " ", res[i].img_s, res[i].cpu_ms);
    }
    /* training at R img/s keeps both cores busy for 2/R s per image; the
     * loader adds its CPU time per image on top of that */
    const double train_ms = 2e3 / ALEXNET_TRAIN_IMG_S;
    say("AlexNet-256 training: ~%.0f images/s on this machine (bench_layers), i.e. %.0f ms of the 2 cores per image.\n",
        ALEXNET_TRAIN_IMG_S, train_ms);
    say("The augmenting loader delivers %.1fx (1 thread) / %.1fx (2 threads) that rate; its CPU cost, %.1f ms per\n"
        "image, is %.1f %% of the training's, so training slows by about that much while sharing the cores.\n",
        res[0].img_s / ALEXNET_TRAIN_IMG_S, res[1].img_s / ALEXNET_TRAIN_IMG_S, res[0].cpu_ms,
        100.0 * res[0].cpu_ms / train_ms);
    if (json)
        printf("{\"data\":\"%s\",\"images\":%d,\"open_s\":%.3f,\"size\":%d,\"batch\":%d,"
               "\"aug_1t_img_s\":%.2f,\"aug_2t_img_s\":%.2f,\"plain_1t_img_s\":%.2f,\"plain_2t_img_s\":%.2f,"
               "\"aug_cpu_ms\":%.3f,\"alexnet_train_img_s\":%.1f}\n",
               generated ? "generated" : data, total, open_s, size, batch, res[0].img_s, res[1].img_s, res[2].img_s,
               res[3].img_s, res[0].cpu_ms, ALEXNET_TRAIN_IMG_S);
    aibox_dataset_free(&ds);
    if (generated) nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* Helpers shared by the benchmark programs (header-only). Define BENCH_NAME
 * (the program's name, for messages) before including. Human-readable lines
 * go to bench_human: stdout, or stderr when a program prints JSON. */
#ifndef AIBOX_BENCH_H
#define AIBOX_BENCH_H

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aibox.h"

static FILE *bench_human;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(bench_human ? bench_human : stdout, fmt, ap);
    va_end(ap);
    fflush(bench_human ? bench_human : stdout);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(BENCH_NAME ": ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static inline void check(aibox_status s, const aibox_error *err, const char *what)
{
    if (s != AIBOX_OK) die("%s: %s", what, err->msg[0] ? err->msg : aibox_strerror(s));
}

static inline double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts t in place; the q-quantile by linear interpolation (numpy's default). */
static inline double quantile(double *t, int n, double q)
{
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    double pos = q * (n - 1);
    int i = (int)pos;
    if (i >= n - 1) return t[n - 1];
    return t[i] + (pos - i) * (t[i + 1] - t[i]);
}

static inline void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) die("out of memory (%zu bytes)", n);
    return p;
}

static inline float *xalloc_floats(size_t n)
{
    float *p = aibox_alloc(n * sizeof *p);
    if (!p) die("out of memory (%zu floats)", n);
    return p;
}

/* The first three fields of /proc/loadavg, or "unknown" (a static buffer). */
static inline const char *loadavg(void)
{
    static char buf[64];
    FILE *f = fopen("/proc/loadavg", "r");
    buf[0] = '\0';
    if (f) {
        if (fgets(buf, sizeof buf, f)) {
            char *p = buf;
            for (int k = 0; k < 3 && p; k++) p = strchr(p + (k > 0), ' ');
            if (p) *p = '\0';
        }
        fclose(f);
    }
    return buf[0] ? buf : "unknown";
}

/* ------------------------------------------------------------ images
 * The magnetic-tile benches (bench_padim, bench_patchcore,
 * bench_autoencoder) time JPEG tiles read into memory beforehand: the good
 * tiles of MT_Free, sorted by name and taken at an even stride, or synthetic
 * stand-ins encoded here. */

typedef struct { /* one encoded image in memory */
    char *name;
    unsigned char *bytes;
    size_t len;
} blob;

static inline void blob_free(blob *b)
{
    free(b->bytes), free(b->name);
    b->bytes = NULL, b->name = NULL, b->len = 0;
}

/* The default --data: $AIBOX_DATA/magnetic-tile/MT_Free/Imgs, AIBOX_DATA
 * defaulting to ../shared/data (a static buffer). */
static inline const char *tiles_default_dir(void)
{
    static char dir[1024];
    const char *root = getenv("AIBOX_DATA");
    snprintf(dir, sizeof dir, "%s/magnetic-tile/MT_Free/Imgs", root && *root ? root : "../shared/data");
    return dir;
}

static inline int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static inline int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* Sorted *.jpg names in dir; NULL (and *n 0) when the folder is absent. */
static inline char **list_jpgs(const char *dir, int *n)
{
    DIR *d = opendir(dir);
    *n = 0;
    if (!d) return NULL;
    int cap = 256;
    char **v = xmalloc(sizeof *v * cap);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!ends_with(e->d_name, ".jpg")) continue;
        if (*n == cap) {
            cap *= 2;
            char **w = realloc(v, sizeof *v * cap);
            if (!w) die("out of memory");
            v = w;
        }
        v[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(v, (size_t)*n, sizeof *v, cmp_str);
    return v;
}

static inline void free_names(char **names, int n)
{
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* dir/name in a malloc'ed string. */
static inline char *join_path(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = xmalloc(a + b + 2);
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

/* Reads a whole file into b (b->name: the path). */
static inline void read_file(const char *path, blob *b)
{
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (len <= 0) die("%s is empty", path);
    b->bytes = xmalloc((size_t)len);
    if (fread(b->bytes, 1, (size_t)len, f) != (size_t)len) die("cannot read %s", path);
    fclose(f);
    b->len = (size_t)len;
    b->name = strdup(path);
}

/* The index of the k-th of need names taken at an even stride from n sorted
 * ones: bench_padim's choice (and bench/peer_padim.py's), k < need <= n. */
static inline int even_pick(int k, int n, int need) { return (int)((long)k * n / need); }

/* Reads the names even_pick(k, n, need) for k in [from, need) of dir into
 * memory, in that order (need - from blobs); marks each one read in used
 * (n flags) unless used is NULL. */
static inline blob *read_picked(const char *dir, char **names, int n, int need, int from, char *used)
{
    blob *v = xmalloc(sizeof *v * (need - from));
    for (int k = from; k < need; k++) {
        int at = even_pick(k, n, need);
        char *path = join_path(dir, names[at]);
        read_file(path, &v[k - from]);
        free(path);
        if (used) used[at] = 1;
    }
    return v;
}

/* n synthetic grayscale tiles, JPEG-encoded here (so decoding is still
 * timed): smooth shading plus a little texture, sizes 240-352 x 280-312,
 * tile k the same in every program (one generator, seed 7, in order). */
static inline blob *synth_jpegs(int n)
{
    aibox_error err = {0};
    aibox_rng rng;
    aibox_rng_seed(&rng, 7);
    blob *v = xmalloc(sizeof *v * n);
    for (int k = 0; k < n; k++) {
        aibox_image im = {.width = 240 + 16 * (k % 8), .height = 280 + 8 * (k % 5), .channels = 1};
        im.data = xmalloc((size_t)im.width * im.height);
        for (int y = 0; y < im.height; y++)
            for (int x = 0; x < im.width; x++) {
                double g = 110 + 40 * sin(0.02 * x + 0.1 * k) * cos(0.015 * y) + 20 * aibox_rng_uniform(&rng);
                im.data[(size_t)y * im.width + x] = (uint8_t)(g < 0 ? 0 : g > 255 ? 255 : g);
            }
        uint8_t *bytes = NULL;
        size_t len = 0;
        check(aibox_image_encode_jpg(&im, 90, &bytes, &len, &err), &err, "encoding a synthetic JPEG");
        free(im.data);
        v[k].bytes = xmalloc(len);
        memcpy(v[k].bytes, bytes, len);
        free(bytes);
        v[k].len = len;
        char name[32];
        snprintf(name, sizeof name, "synthetic-%d.jpg", k);
        v[k].name = strdup(name);
    }
    return v;
}

/* The image source of the magnetic-tile benches after bench_padim
 * (bench_patchcore, bench_autoencoder): the timed images, in memory, are
 * bench_padim's at its default --fit 16 (of 16 + images files taken at an
 * even stride, all but the first 16), so every bench times the same tiles;
 * the pool that fit images come from is the other files, in name order (file
 * paths), or, without enough files, bench_padim's synthetic tiles in its
 * order, the timed ones taken out, and max_fit more (in memory). */
#define PADIM_FIT 16 /* bench_padim's default --fit: the timed images are its */

typedef struct {
    int synthetic, nfiles;
    blob *timed;
    int n_rest;
    char **rest_paths; /* real data */
    blob *rest_blobs;  /* synthetic */
} source;

static inline void source_open(source *s, const char *dir, int images, int max_fit)
{
    memset(s, 0, sizeof *s);
    char **files = list_jpgs(dir, &s->nfiles);
    int need = PADIM_FIT + images;
    s->synthetic = s->nfiles < need || s->nfiles - images < max_fit;
    if (!s->synthetic) {
        /* bench_padim's choice at --fit 16: even_pick(k, n, need), k >= 16 timed */
        char *used = calloc((size_t)s->nfiles, 1);
        if (!used) die("out of memory");
        s->timed = read_picked(dir, files, s->nfiles, need, PADIM_FIT, used);
        s->rest_paths = xmalloc(sizeof *s->rest_paths * s->nfiles);
        for (int i = 0; i < s->nfiles; i++)
            if (!used[i]) s->rest_paths[s->n_rest++] = join_path(dir, files[i]);
        free(used);
    } else {
        /* bench_padim's synthetic tiles, in its order (k < 16 + images: its
         * fit and timed ones), then more for fitting; the same split */
        int total = need + max_fit;
        blob *all = synth_jpegs(total);
        s->timed = xmalloc(sizeof *s->timed * images);
        s->rest_blobs = xmalloc(sizeof *s->rest_blobs * total);
        for (int k = 0; k < total; k++)
            if (k >= PADIM_FIT && k < need) s->timed[k - PADIM_FIT] = all[k];
            else s->rest_blobs[s->n_rest++] = all[k];
        free(all);
    }
    free_names(files, s->nfiles);
}

/* The n fit images (n <= s->n_rest): rest[j * n_rest / n], read into memory. */
static inline blob *fit_images(const source *s, int n)
{
    blob *b = xmalloc(sizeof *b * n);
    for (int j = 0; j < n; j++) {
        int at = even_pick(j, s->n_rest, n);
        if (s->synthetic) b[j] = s->rest_blobs[at];
        else read_file(s->rest_paths[at], &b[j]);
    }
    return b;
}

static inline void free_fit_images(const source *s, blob *b, int n)
{
    if (!s->synthetic)
        for (int j = 0; j < n; j++) blob_free(&b[j]);
    free(b);
}

static inline void source_close(source *s, int images)
{
    for (int k = 0; k < images; k++) blob_free(&s->timed[k]);
    free(s->timed);
    for (int i = 0; i < s->n_rest; i++) {
        if (s->synthetic) blob_free(&s->rest_blobs[i]);
        else free(s->rest_paths[i]);
    }
    free(s->rest_paths), free(s->rest_blobs);
}

/* decode + preprocess one in-memory image into x */
static inline void decode_pre(const aibox_preproc *pp, const blob *b, float *x)
{
    aibox_error err = {0};
    aibox_image im = {0};
    check(aibox_image_decode(&im, b->bytes, b->len, b->name, 0, &err), &err, "decode");
    check(aibox_preprocess(pp, &im, x, &err), &err, "preprocess");
    aibox_image_free(&im);
}

/* Batch-1 timings of images end to end (ms). */
typedef struct {
    double med, p90, min; /* end to end: median, 90th percentile, minimum */
    double pre_med, score_med; /* medians of the parts: decode + preprocess, the score call */
} e2e_times;

/* Times the n in-memory images, passes times each after 3 warm-up images:
 * decode_pre into x, then score(arg, x), which returns the image's score
 * (dies when it is not finite; the message starts with "label: " unless
 * label is NULL). */
static inline void time_images(const aibox_preproc *pp, const blob *imgs, int n, int passes, float *x,
                               float (*score)(void *arg, const float *x), void *arg, const char *label,
                               e2e_times *t)
{
    int nsamp = n * passes, k = 0;
    double *e2e = xmalloc(sizeof(double) * 3 * nsamp), *pre = e2e + nsamp, *sc = e2e + 2 * nsamp;
    for (int i = 0; i < 3; i++) { /* warm-up: pages, caches, the pool's threads */
        decode_pre(pp, &imgs[i % n], x);
        score(arg, x);
    }
    for (int pass = 0; pass < passes; pass++)
        for (int i = 0; i < n; i++, k++) {
            double a = now_ms();
            decode_pre(pp, &imgs[i], x);
            double b = now_ms();
            float s = score(arg, x);
            double e = now_ms();
            if (!isfinite(s)) die("%s%snon-finite score for %s", label ? label : "", label ? ": " : "", imgs[i].name);
            e2e[k] = e - a, pre[k] = b - a, sc[k] = e - b;
        }
    t->med = quantile(e2e, nsamp, 0.5);
    t->p90 = quantile(e2e, nsamp, 0.9);
    t->min = e2e[0]; /* sorted */
    t->pre_med = quantile(pre, nsamp, 0.5);
    t->score_med = quantile(sc, nsamp, 0.5);
    free(e2e);
}

/* ------------------------------------------------------------ options */
static inline int parse_pos(const char *opt, const char *s, int max)
{
    char *end;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || *s == '\0' || *end != '\0' || v < 1 || v > max) die("%s needs an integer in 1..%d", opt, max);
    return (int)v;
}

static inline double parse_share(const char *opt, const char *s)
{
    char *end;
    double d = strtod(s, &end);
    if (*end != '\0' || !(d > 0 && d <= 1)) die("%s: '%s' is not a share in (0, 1]", opt, s);
    return d;
}

/* A comma-separated list of at most max_n values into ints (integers in
 * 1..max) or, when ints is NULL, into shares (in (0, 1]); the count. */
static inline int parse_list(const char *opt, const char *s, int *ints, double *shares, int max_n, int max)
{
    if (!s) die("%s needs a list", opt);
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    int n = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ","), n++) {
        if (n == max_n) die("%s: at most %d values", opt, max_n);
        if (ints) ints[n] = parse_pos(opt, tok, max);
        else shares[n] = parse_share(opt, tok);
    }
    if (!n) die("%s needs a list", opt);
    return n;
}

/* ------------------------------------------------------------ models */
/* ResNet-18 (aibox_preset_resnet18, 1000 classes, 3 x 224 x 224, random
 * weights: they do not change the speed) with ImageNet preprocessing stored
 * by aibox_preproc_to_model: AREA resize, ImageNet mean and std. */
static inline void resnet18_imagenet(aibox_model **m)
{
    aibox_error err = {0};
    check(aibox_preset_resnet18(m, 1000, 3, 224, &err), &err, "aibox_preset_resnet18");
    aibox_preproc pp;
    aibox_preproc_default(&pp, *m);
    pp.resize = AIBOX_RESIZE_AREA;
    const float mean[3] = {0.485f, 0.456f, 0.406f}, sd[3] = {0.229f, 0.224f, 0.225f};
    for (int c = 0; c < 3; c++) pp.mean[c] = mean[c], pp.std[c] = sd[c];
    check(aibox_preproc_to_model(&pp, *m, &err), &err, "aibox_preproc_to_model");
}

#endif

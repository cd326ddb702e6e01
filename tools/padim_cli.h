/* PaDiM helpers shared by aibox-train (fit) and aibox-infer (score, eval):
 * image folders, masks, scoring a file, thresholds (header-only, static). */
#ifndef AIBOX_PADIM_CLI_H
#define AIBOX_PADIM_CLI_H

#include <ctype.h>
#include <errno.h>
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aibox.h"
#include "cli.h"

typedef struct cli_list {
    char **v;
    int n, cap;
} cli_list;

static inline void cli_list_free(cli_list *l)
{
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static inline int cli_list_add(cli_list *l, const char *s)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 64;
        char **nv = realloc(l->v, sizeof *nv * (size_t)cap);
        if (!nv) return 0;
        l->v = nv, l->cap = cap;
    }
    return (l->v[l->n] = strdup(s)) ? (l->n++, 1) : 0;
}

static inline int cli_cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static inline const char *cli_ext(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot ? dot + 1 : "";
}

static inline int cli_is_image_name(const char *name)
{
    static const char *const ext[] = {"jpg", "jpeg", "png", "bmp", "pgm", "ppm", "pnm", "tga", "gif"};
    const char *e = cli_ext(name);
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++)
        if (!strcasecmp(e, ext[i])) return 1;
    return 0;
}

static inline size_t cli_stem_len(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot ? (size_t)(dot - name) : strlen(name);
}

/* Image files under dir (sorted; recursive into sub-folders): every entry
 * with an image extension that is not a folder, whether or not it is a
 * readable regular file (its loading reports why not). A PNG beside an
 * image of another type with the same stem is that image's mask (the
 * magnetic-tile layout), not a sample. Returns 0 with why set on failure. */
static inline int cli_list_images(const char *dir, cli_list *out, char *why, size_t why_len)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(why, why_len, "%s: cannot open the folder: %s", dir, strerror(errno));
        return 0;
    }
    cli_list names = {0}, subdirs = {0};
    struct dirent *e;
    int ok = 1;
    while (ok && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        int is_dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
        /* an image name that is not a regular file (a FIFO, a looping or
         * broken link) is kept: loading it then says what is wrong, in the
         * skip list or as an error record, rather than dropping it silently */
        if (is_dir) ok = cli_list_add(&subdirs, path);
        else if (cli_is_image_name(e->d_name)) ok = cli_list_add(&names, e->d_name);
    }
    closedir(d);
    for (int i = 0; ok && i < names.n; i++) {
        const char *nm = names.v[i];
        int mask = 0;
        if (!strcasecmp(cli_ext(nm), "png"))
            for (int j = 0; j < names.n && !mask; j++)
                mask = j != i && strcasecmp(cli_ext(names.v[j]), "png") && cli_stem_len(names.v[j]) == cli_stem_len(nm) &&
                       !strncmp(names.v[j], nm, cli_stem_len(nm));
        if (mask) continue;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, nm);
        ok = cli_list_add(out, path);
    }
    if (subdirs.n) qsort(subdirs.v, (size_t)subdirs.n, sizeof *subdirs.v, cli_cmp_str);
    for (int i = 0; ok && i < subdirs.n; i++) ok = cli_list_images(subdirs.v[i], out, why, why_len);
    if (!ok && !why[0]) snprintf(why, why_len, "%s: out of memory listing the folder", dir);
    cli_list_free(&names), cli_list_free(&subdirs);
    if (ok && out->n) qsort(out->v, (size_t)out->n, sizeof *out->v, cli_cmp_str);
    return ok;
}

/* The mask of an image: STEM.png beside it (when the image is not a PNG), or
 * in mask_dir as STEM.png or STEM_mask.png (MVTec). 1 when found. */
static inline int cli_find_mask(const char *image, const char *mask_dir, char *out, size_t len)
{
    const char *leaf = strrchr(image, '/');
    leaf = leaf ? leaf + 1 : image;
    int stem = (int)cli_stem_len(leaf);
    struct stat st;
    if (mask_dir) {
        snprintf(out, len, "%s/%.*s.png", mask_dir, stem, leaf);
        if (!stat(out, &st) && S_ISREG(st.st_mode)) return 1;
        snprintf(out, len, "%s/%.*s_mask.png", mask_dir, stem, leaf);
        if (!stat(out, &st) && S_ISREG(st.st_mode)) return 1;
        return 0;
    }
    if (!strcasecmp(cli_ext(leaf), "png")) return 0;
    snprintf(out, len, "%.*s.png", (int)(leaf - image) + stem, image);
    return !stat(out, &st) && S_ISREG(st.st_mode);
}

/* The ground truth of an image at w x h (nearest, >= 128 is defect): its mask
 * as cli_find_mask finds it, or all zeros when it has none. */
static inline aibox_status cli_load_mask(const char *image, const char *mask_dir, int w, int h, long long max_pixels,
                                         uint8_t *dst, aibox_error *err)
{
    char mp[4300];
    memset(dst, 0, (size_t)w * h);
    if (!cli_find_mask(image, mask_dir, mp, sizeof mp)) return AIBOX_OK;
    aibox_image mi = {0}, g = {0}, r = {0};
    aibox_status s = aibox_image_load(&mi, mp, max_pixels, err);
    if (!s) s = aibox_image_convert(&g, &mi, 1, err);
    if (!s) s = aibox_image_resize(&r, &g, w, h, AIBOX_RESIZE_NEAREST, err);
    for (size_t p = 0; !s && p < (size_t)w * h; p++) dst[p] = r.data[p] >= 128;
    aibox_image_free(&mi), aibox_image_free(&g), aibox_image_free(&r);
    return s;
}

/* A seeded shuffle (Fisher-Yates on the sorted list). */
static inline void cli_shuffle(char **v, int n, uint64_t seed)
{
    aibox_rng r;
    aibox_rng_seed(&r, seed);
    for (int i = n - 1; i > 0; i--) {
        int j = (int)aibox_rng_below(&r, (uint32_t)i + 1);
        char *t = v[i];
        v[i] = v[j], v[j] = t;
    }
}

static inline int cli_cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Fills an aibox_error from the tool side; returns code. */
static inline aibox_status cli_fail(aibox_error *err, aibox_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline aibox_status cli_fail(aibox_error *err, aibox_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err) {
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    }
    va_end(ap);
    return code;
}

static inline const char *cli_leaf(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Loads and preprocesses one image for a model (sides below min_side refused). */
static inline aibox_status cli_load_input(const aibox_preproc *pp, const char *path, long long max_pixels, int min_side,
                                          float *x, aibox_error *err)
{
    aibox_image img = {0};
    aibox_status s = aibox_image_load(&img, path, max_pixels, err);
    if (!s && (img.width < min_side || img.height < min_side))
        s = cli_fail(err, AIBOX_E_INVALID, "%s: too small: %dx%d (each side must be at least %d pixels)", path,
                     img.width, img.height, min_side);
    if (!s) s = aibox_preprocess(pp, &img, x, err);
    aibox_image_free(&img);
    return s;
}

/* q-quantile (0..1) of n values by linear interpolation (sorts v). */
static inline double cli_quantile(float *v, int n, double q)
{
    qsort(v, (size_t)n, sizeof *v, cli_cmp_float);
    double pos = q * (n - 1);
    int i = (int)floor(pos);
    if (i >= n - 1) return v[n - 1];
    return v[i] + (pos - i) * (v[i + 1] - v[i]);
}

/* Anomalib's min-max normalisation: 0.5 at the threshold, clamped to [0, 1]. */
static inline double cli_normalise(double s, double thr, double lo, double hi)
{
    double span = hi - lo > 0 ? hi - lo : (thr > 0 ? thr : 1);
    double v = (s - thr) / span + 0.5;
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

#endif

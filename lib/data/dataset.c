/* Folder datasets: listing, validation by decoding every file once, the skip
 * list, the seeded stratified split and the decoded-image cache. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/pool.h"
#include "data/data.h"

#define VAL_SPLIT_DEFAULT 0.2f
#define MIN_SAMPLES_DEFAULT 30
#define MIN_SIDE_DEFAULT 8
#define CACHE_MB_DEFAULT 2048
#define TAG_SPLIT 0x73706c6974ULL /* "split": keeps the split's draws apart from the loader's */

typedef struct entry {
    char *path;
    const char *cls; /* points into path (the class folder's name) */
    int root;        /* AIBOX_SPLIT_* of the folder it came from (flat: TRAIN) */
    int ok;          /* decoded and large enough */
    int label;
    int width, height, channels;
    aibox_status code; /* why it failed */
    char *reason;
    long src;        /* a source dataset's index of the sample (aibox_dataset_from_source) */
    aibox_image img; /* cached pixels (data NULL when not cached) */
} entry;

struct aibox_dataset {
    char *dir;
    aibox_dataset_layout layout;
    long long max_pixels;
    int n_entries;
    entry *e;
    int n_classes;
    char **classes;
    int count[AIBOX_SPLIT_COUNT];
    int *idx[AIBOX_SPLIT_COUNT];     /* entry index of each sample */
    int *per_class[AIBOX_SPLIT_COUNT];
    int n_skipped;
    int *skipped; /* entry indices */
    int channels;
    size_t cached_bytes;
    /* a dataset over a source (the sample store): its reader, owned */
    aibox_dataset_read_fn read;
    void *user;
    void (*release)(void *user);
};

/* ------------------------------------------------------------ listing */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

typedef struct strlist {
    char **v;
    int n, cap;
} strlist;

static int strlist_push(strlist *l, char *s)
{
    if (!s) return 0;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        char **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) {
            free(s);
            return 0;
        }
        l->v = v, l->cap = cap;
    }
    l->v[l->n++] = s;
    return 1;
}

static void strlist_free(strlist *l)
{
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static char *join(const char *a, const char *b)
{
    char *s;
    return asprintf(&s, "%s/%s", a, b) < 0 ? NULL : s;
}

/* One entry for a path in a class folder; reason set: listed, but not a
 * file (it goes to the skip list without being read). */
static aibox_status add_entry(entry **e, int *n, int *cap, const char *path, size_t cls_at, int split,
                              const char *reason, const char *root, aibox_error *err)
{
    if (*n == *cap) {
        int nc = *cap ? 2 * *cap : 256;
        entry *ne = realloc(*e, (size_t)nc * sizeof *ne);
        if (!ne) return aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", root);
        *e = ne, *cap = nc;
    }
    entry *x = &(*e)[*n];
    memset(x, 0, sizeof *x);
    x->path = strdup(path);
    x->reason = reason ? strdup(reason) : NULL;
    if (!x->path || (reason && !x->reason)) {
        free(x->path), free(x->reason);
        return aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", root);
    }
    x->cls = x->path + cls_at; /* the class folder's name: the path's second-to-last component */
    x->root = split;
    x->label = -1;
    x->code = reason ? AIBOX_E_IO : AIBOX_OK;
    (*n)++;
    return AIBOX_OK;
}

/* Appends every entry of root/<class>/ as entries of the given split: the
 * regular files first (name order), then what is not a file (noted). */
static aibox_status list_root(const char *root, int split, entry **e, int *n, int *cap, aibox_error *err)
{
    aibox_file_list classes = {0};
    aibox_status s = aibox_list_files(&classes, root, &(aibox_list_opts){.folders = 1}, err);
    for (int c = 0; !s && c < classes.n; c++) {
        aibox_file_list f = {0};
        size_t cls_at = strlen(root) + 1;
        s = aibox_list_files(&f, classes.path[c], &(aibox_list_opts){.subfolders = AIBOX_SUBFOLDERS_NOTE}, err);
        for (int pass = 0; pass < 2; pass++)
            for (int i = 0; !s && i < f.n; i++)
                if (!f.note[i] == !pass) s = add_entry(e, n, cap, f.path[i], cls_at, split, f.note[i], root, err);
        aibox_file_list_free(&f);
    }
    aibox_file_list_free(&classes);
    return s;
}

/* ------------------------------------------------------------ decoding */

typedef struct decode_job {
    entry *e;
    long long max_pixels;
    int min_side;
} decode_job;

/* The image module's messages start with the path; the skip list shows the
 * path separately, so keep only the reason. */
static char *reason_of(const char *msg, const char *path)
{
    size_t lp = strlen(path);
    if (!strncmp(msg, path, lp) && msg[lp] == ':') msg += lp + 1;
    while (*msg == ' ') msg++;
    return strdup(*msg ? msg : "cannot be decoded");
}

static void decode_task(void *arg, int task, int thread)
{
    (void)thread;
    decode_job *j = arg;
    entry *x = &j->e[task];
    if (x->reason) return; /* listed, but not a file: nothing to read */
    aibox_error e = {0};
    aibox_status s = aibox_image_load(&x->img, x->path, j->max_pixels, &e);
    if (s) {
        x->code = s;
        x->reason = reason_of(e.msg, x->path);
        memset(&x->img, 0, sizeof x->img);
        return;
    }
    x->width = x->img.width, x->height = x->img.height, x->channels = x->img.channels;
    if (x->width < j->min_side || x->height < j->min_side) {
        char buf[96];
        snprintf(buf, sizeof buf, "too small: %dx%d (each side must be at least %d pixels)", x->width, x->height,
                 j->min_side);
        aibox_image_free(&x->img);
        x->code = AIBOX_E_INVALID;
        x->reason = strdup(buf);
        return;
    }
    x->ok = 1;
}

/* ------------------------------------------------------------ open */

static uint64_t name_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
    return h;
}

static int find_class(const aibox_dataset *ds, const char *name)
{
    int lo = 0, hi = ds->n_classes - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(ds->classes[mid], name);
        if (!c) return mid;
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

/* The class folder name of an entry as its own string. */
static char *class_of(const entry *x)
{
    const char *end = strrchr(x->path, '/');
    return strndup(x->cls, (size_t)(end - x->cls));
}

/* The end of every open: the per-split indices, at least one training
 * image, and the dataset handed over (or freed on any failure). */
static aibox_status build_index(aibox_dataset *ds, aibox_error *err);

/* A usable entry just decoded: its channels count towards the dataset's, and
 * its pixels stay in the cache while *cache_left has room (else freed: read
 * again when asked for). */
static void keep_decoded(aibox_dataset *ds, entry *x, size_t *cache_left)
{
    ds->channels = AIBOX_MAX(ds->channels, x->channels);
    size_t bytes = (size_t)x->width * x->height * x->channels;
    if (bytes <= *cache_left) {
        *cache_left -= bytes;
        ds->cached_bytes += bytes;
    } else {
        aibox_image_free(&x->img);
    }
}
static aibox_status finish_open(aibox_dataset *ds, aibox_status s, aibox_dataset **out, aibox_error *err)
{
    if (!s) s = build_index(ds, err);
    if (!s && ds->count[AIBOX_SPLIT_TRAIN] == 0)
        s = aibox_fail(err, AIBOX_E_INVALID, "%s: no usable training images", ds->dir);
    if (s) {
        aibox_dataset_free(&ds);
        return s;
    }
    *out = ds;
    return AIBOX_OK;
}

/* Seeded stratified split of the usable TRAIN-root entries of each class:
 * round(frac * n) (at most n - 1) move to VAL. A permutation per class seeded
 * by (seed, class name), over the class's files in name order. */
static aibox_status draw_split(aibox_dataset *ds, float frac, uint64_t seed, aibox_error *err)
{
    int *members = malloc((size_t)(ds->n_entries ? ds->n_entries : 1) * sizeof *members);
    if (!members) return aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", ds->dir);
    for (int c = 0; c < ds->n_classes; c++) {
        int n = 0;
        for (int i = 0; i < ds->n_entries; i++)
            if (ds->e[i].ok && ds->e[i].root == AIBOX_SPLIT_TRAIN && ds->e[i].label == c) members[n++] = i;
        int n_val = frac > 0 ? (int)(frac * (float)n + 0.5f) : 0;
        if (n_val > n - 1) n_val = n > 0 ? n - 1 : 0;
        aibox_rng r;
        aibox_rng_seed(&r, aibox_seed_mix(seed, name_hash(ds->classes[c]), TAG_SPLIT));
        for (int i = n - 1; i > 0; i--) { /* Fisher-Yates */
            int j = (int)aibox_rng_below(&r, (uint32_t)i + 1);
            int t = members[i];
            members[i] = members[j], members[j] = t;
        }
        for (int i = 0; i < n_val; i++) ds->e[members[i]].root = AIBOX_SPLIT_VAL;
    }
    free(members);
    return AIBOX_OK;
}

static aibox_status build_index(aibox_dataset *ds, aibox_error *err)
{
    for (int s = 0; s < AIBOX_SPLIT_COUNT; s++) {
        ds->idx[s] = malloc((size_t)(ds->n_entries ? ds->n_entries : 1) * sizeof(int));
        ds->per_class[s] = calloc((size_t)ds->n_classes, sizeof(int));
        if (!ds->idx[s] || !ds->per_class[s]) return aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", ds->dir);
    }
    ds->skipped = malloc((size_t)(ds->n_entries ? ds->n_entries : 1) * sizeof(int));
    if (!ds->skipped) return aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", ds->dir);
    /* entries are in (root folder, class, name) order; the classes are sorted
     * the same way, so each split comes out ordered by label, then name */
    for (int i = 0; i < ds->n_entries; i++) {
        entry *x = &ds->e[i];
        if (!x->ok) {
            ds->skipped[ds->n_skipped++] = i;
            continue;
        }
        ds->idx[x->root][ds->count[x->root]++] = i;
        ds->per_class[x->root][x->label]++;
    }
    return AIBOX_OK;
}

static aibox_status check_usable(const aibox_dataset *ds, int usable, const aibox_dataset_opts *o, aibox_error *err);

static void opts_defaults(aibox_dataset_opts *o, const aibox_dataset_opts *in)
{
    if (in) *o = *in;
    else memset(o, 0, sizeof *o);
    if (o->val_split == 0) o->val_split = VAL_SPLIT_DEFAULT;
    if (o->min_samples == 0) o->min_samples = MIN_SAMPLES_DEFAULT;
    if (o->max_pixels <= 0) o->max_pixels = AIBOX_IMAGE_MAX_PIXELS_DEFAULT;
    if (o->min_side <= 0) o->min_side = MIN_SIDE_DEFAULT;
    if (o->cache_mb == 0) o->cache_mb = CACHE_MB_DEFAULT;
    if (o->threads <= 0) o->threads = aibox_default_threads();
}

aibox_status aibox_dataset_open(aibox_dataset **out, const char *dir, const aibox_dataset_opts *in, aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "dataset: NULL argument");
    *out = NULL;
    if (!dir || !*dir) return aibox_fail(err, AIBOX_E_INVALID, "dataset: no folder given");
    aibox_dataset_opts o;
    opts_defaults(&o, in);
    if (!(o.val_split < 1.0f))
        return aibox_fail(err, AIBOX_E_INVALID, "dataset: val_split %g must be below 1", (double)o.val_split);
    struct stat st;
    if (stat(dir, &st) != 0) return aibox_fail(err, AIBOX_E_NOTFOUND, "%s: no such folder", dir);
    if (!S_ISDIR(st.st_mode)) return aibox_fail(err, AIBOX_E_INVALID, "%s: not a folder", dir);

    aibox_dataset *ds = calloc(1, sizeof *ds);
    if (!ds || !(ds->dir = strdup(dir))) {
        free(ds);
        return aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", dir);
    }
    ds->max_pixels = o.max_pixels;
    size_t dl = strlen(ds->dir);
    while (dl > 1 && ds->dir[dl - 1] == '/') ds->dir[--dl] = 0; /* tidy paths in messages */
    aibox_status s = AIBOX_OK;
    aibox_pool *pool = NULL;
    strlist classes = {0};
    int cap = 0, has_val = 0;

    /* 1. the file list */
    char *train_dir = join(ds->dir, "train");
    if (!train_dir) s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", dir);
    else if (is_dir(train_dir)) {
        static const char *const roots[AIBOX_SPLIT_COUNT] = {"train", "val", "test"};
        ds->layout = AIBOX_LAYOUT_SPLIT;
        for (int r = 0; !s && r < AIBOX_SPLIT_COUNT; r++) {
            char *rd = join(ds->dir, roots[r]);
            if (!rd) s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", dir);
            else if (is_dir(rd)) {
                has_val |= r == AIBOX_SPLIT_VAL;
                s = list_root(rd, r, &ds->e, &ds->n_entries, &cap, err);
            }
            free(rd);
        }
    } else {
        ds->layout = AIBOX_LAYOUT_FLAT;
        s = list_root(ds->dir, AIBOX_SPLIT_TRAIN, &ds->e, &ds->n_entries, &cap, err);
    }
    free(train_dir);

    /* 2. decode everything in chunks (bounding the memory beyond the cache);
     * the cache keeps images in file order until it is full */
    if (!s) s = aibox_pool_create(&pool, o.threads, err);
    size_t cache_left = o.cache_mb < 0 ? 0 : (size_t)o.cache_mb << 20;
    const int chunk = 32 * o.threads;
    for (int first = 0; !s && first < ds->n_entries; first += chunk) {
        int n = AIBOX_MIN(chunk, ds->n_entries - first);
        decode_job job = {ds->e + first, o.max_pixels, o.min_side};
        aibox_pool_run(pool, n, decode_task, &job);
        for (int i = first; !s && i < first + n; i++) {
            entry *x = &ds->e[i];
            if (!x->ok) {
                if (!x->reason) s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", dir);
                else if (o.strict)
                    s = aibox_fail(err, x->code ? x->code : AIBOX_E_FORMAT, "%s: %s (strict: stopped at the first bad file)",
                                   x->path, x->reason);
                continue;
            }
            keep_decoded(ds, x, &cache_left);
        }
    }
    aibox_pool_free(&pool);

    /* 3. classes: the sorted union of the folders holding a usable image */
    int usable = 0;
    for (int i = 0; !s && i < ds->n_entries; i++) {
        if (!ds->e[i].ok) continue;
        usable++;
        if (!strlist_push(&classes, class_of(&ds->e[i]))) s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", dir);
    }
    if (!s) {
        if (classes.n > 1) qsort(classes.v, (size_t)classes.n, sizeof *classes.v, cmp_str);
        int u = 0;
        for (int i = 0; i < classes.n; i++) {
            if (u > 0 && !strcmp(classes.v[u - 1], classes.v[i])) free(classes.v[i]);
            else classes.v[u++] = classes.v[i];
        }
        ds->classes = classes.v, ds->n_classes = u;
        classes.v = NULL, classes.n = 0;
        for (int i = 0; i < ds->n_entries; i++)
            if (ds->e[i].ok) {
                char *c = class_of(&ds->e[i]);
                if (!c) {
                    s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", dir);
                    break;
                }
                ds->e[i].label = find_class(ds, c);
                free(c);
            }
    }
    strlist_free(&classes);

    /* 4. the checks that make training pointless */
    if (!s) s = check_usable(ds, usable, &o, err);

    /* 5. the validation split, then the per-split indices */
    if (!s && (ds->layout == AIBOX_LAYOUT_FLAT || !has_val)) s = draw_split(ds, o.val_split, o.seed, err);
    return finish_open(ds, s, out, err);
}

/* Fewer than 2 classes or min_samples usable images make training pointless. */
static aibox_status check_usable(const aibox_dataset *ds, int usable, const aibox_dataset_opts *o, aibox_error *err)
{
    aibox_status s = AIBOX_OK;
    int skipped = ds->n_entries - usable;
    if (ds->n_classes == 0)
        s = aibox_fail(err, AIBOX_E_INVALID,
                       "%s: no usable images in class folders (%d files skipped); expected %s/<class>/<image> or "
                       "%s/train/<class>/<image>",
                       ds->dir, skipped, ds->dir, ds->dir);
    else if (ds->n_classes < 2)
        s = aibox_fail(err, AIBOX_E_INVALID,
                       "%s: only 1 class (%s, %d usable images, %d skipped); at least 2 classes are needed",
                       ds->dir, ds->classes[0], usable, skipped);
    else if (usable < o->min_samples)
        s = aibox_fail(err, AIBOX_E_INVALID,
                       "%s: %d usable images in %d classes (%d skipped); at least %d are needed (min_samples)",
                       ds->dir, usable, ds->n_classes, skipped, o->min_samples);
    return s;
}

aibox_status aibox_dataset_from_source(aibox_dataset **out, const aibox_dataset_source *src,
                                       const aibox_dataset_opts *in, aibox_error *err)
{
    if (!out || !src || !src->dir || !src->read || src->n < 0 || src->n_classes < 0) {
        if (src && src->release) src->release(src->user);
        return aibox_fail(err, AIBOX_E_INVALID, "dataset: bad source");
    }
    *out = NULL;
    aibox_dataset_opts o;
    opts_defaults(&o, in);
    aibox_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) {
        if (src->release) src->release(src->user);
        return aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", src->dir);
    }
    ds->read = src->read, ds->user = src->user, ds->release = src->release; /* owned from here */
    ds->layout = AIBOX_LAYOUT_FLAT;
    ds->max_pixels = o.max_pixels;
    aibox_status s = AIBOX_OK;
    if (!(o.val_split < 1.0f))
        s = aibox_fail(err, AIBOX_E_INVALID, "dataset: val_split %g must be below 1", (double)o.val_split);
    if (!s && (!(ds->dir = strdup(src->dir)) ||
               !(ds->classes = calloc((size_t)(src->n_classes ? src->n_classes : 1), sizeof *ds->classes)) ||
               !(ds->e = calloc((size_t)(src->n ? src->n : 1), sizeof *ds->e))))
        s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", src->dir);
    for (int c = 0; !s && c < src->n_classes; c++, ds->n_classes++)
        if (!(ds->classes[c] = strdup(src->classes[c]))) s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", src->dir);
    /* every sample read once (validated), kept while the cache has room */
    size_t cache_left = o.cache_mb < 0 ? 0 : (size_t)o.cache_mb << 20;
    int usable = 0;
    for (int i = 0; !s && i < src->n; i++, ds->n_entries++) {
        entry *x = &ds->e[i];
        x->src = src->src[i];
        x->label = src->labels[i];
        x->root = AIBOX_SPLIT_TRAIN;
        if (!(x->path = strdup(src->names[i]))) {
            s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", src->dir);
            break;
        }
        x->cls = x->path;
        if (x->label < 0 || x->label >= ds->n_classes) {
            s = aibox_fail(err, AIBOX_E_INVALID, "%s: label %d of %s out of range", src->dir, x->label, x->path);
            break;
        }
        aibox_error e = {0};
        aibox_status r = src->read(src->user, x->src, &x->img, &e);
        if (r) {
            if (o.strict) s = aibox_fail(err, r, "%s (strict: stopped at the first bad sample)", e.msg);
            else if (!(x->reason = reason_of(e.msg, x->path))) s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", src->dir);
            x->code = r;
            memset(&x->img, 0, sizeof x->img);
            continue;
        }
        x->ok = 1, usable++;
        x->width = x->img.width, x->height = x->img.height, x->channels = x->img.channels;
        keep_decoded(ds, x, &cache_left);
    }
    if (!s) s = check_usable(ds, usable, &o, err);
    if (!s) s = draw_split(ds, o.val_split, o.seed, err);
    return finish_open(ds, s, out, err);
}

void aibox_dataset_free(aibox_dataset **pds)
{
    if (!pds || !*pds) return;
    aibox_dataset *ds = *pds;
    for (int i = 0; i < ds->n_entries; i++) {
        free(ds->e[i].path);
        free(ds->e[i].reason);
        aibox_image_free(&ds->e[i].img);
    }
    free(ds->e);
    for (int c = 0; c < ds->n_classes; c++) free(ds->classes[c]);
    free(ds->classes);
    for (int s = 0; s < AIBOX_SPLIT_COUNT; s++) {
        free(ds->idx[s]);
        free(ds->per_class[s]);
    }
    free(ds->skipped);
    free(ds->dir);
    if (ds->release) ds->release(ds->user);
    free(ds);
    *pds = NULL;
}

/* ------------------------------------------------------------ accessors */

static const entry *sample(const aibox_dataset *ds, aibox_split split, int i)
{
    if (!ds || (unsigned)split >= AIBOX_SPLIT_COUNT || i < 0 || i >= ds->count[split]) return NULL;
    return &ds->e[ds->idx[split][i]];
}

const char *aibox_dataset_dir(const aibox_dataset *ds) { return ds ? ds->dir : NULL; }
aibox_dataset_layout aibox_dataset_layout_of(const aibox_dataset *ds) { return ds ? ds->layout : AIBOX_LAYOUT_FLAT; }
int aibox_dataset_class_count(const aibox_dataset *ds) { return ds ? ds->n_classes : 0; }

const char *aibox_dataset_class_name(const aibox_dataset *ds, int c)
{
    return ds && c >= 0 && c < ds->n_classes ? ds->classes[c] : NULL;
}

const char *const *aibox_dataset_class_names(const aibox_dataset *ds)
{
    return ds ? (const char *const *)ds->classes : NULL;
}

int aibox_dataset_count(const aibox_dataset *ds, aibox_split split)
{
    return ds && (unsigned)split < AIBOX_SPLIT_COUNT ? ds->count[split] : 0;
}

int aibox_dataset_class_samples(const aibox_dataset *ds, aibox_split split, int c)
{
    if (!ds || (unsigned)split >= AIBOX_SPLIT_COUNT || c < 0 || c >= ds->n_classes) return 0;
    return ds->per_class[split][c];
}

const char *aibox_dataset_path(const aibox_dataset *ds, aibox_split split, int i)
{
    const entry *x = sample(ds, split, i);
    return x ? x->path : NULL;
}

int aibox_dataset_label(const aibox_dataset *ds, aibox_split split, int i)
{
    const entry *x = sample(ds, split, i);
    return x ? x->label : -1;
}

int aibox_dataset_channels(const aibox_dataset *ds) { return ds ? ds->channels : 0; }
size_t aibox_dataset_cached_bytes(const aibox_dataset *ds) { return ds ? ds->cached_bytes : 0; }
int aibox_dataset_skipped_count(const aibox_dataset *ds) { return ds ? ds->n_skipped : 0; }

aibox_status aibox_dataset_skipped(const aibox_dataset *ds, int i, const char **path, const char **reason)
{
    if (!ds || i < 0 || i >= ds->n_skipped) return AIBOX_E_NOTFOUND;
    const entry *x = &ds->e[ds->skipped[i]];
    if (path) *path = x->path;
    if (reason) *reason = x->reason;
    return AIBOX_OK;
}

aibox_status aibox_dataset_image_ref(const aibox_dataset *ds, aibox_split split, int i, const aibox_image **ref,
                                     aibox_image *tmp, aibox_error *err)
{
    memset(tmp, 0, sizeof *tmp);
    *ref = NULL;
    const entry *x = sample(ds, split, i);
    if (!x) return aibox_fail(err, AIBOX_E_INVALID, "dataset: no sample %d in split %d", i, (int)split);
    if (x->img.data) {
        *ref = &x->img;
        return AIBOX_OK;
    }
    aibox_status s = ds->read ? ds->read(ds->user, x->src, tmp, err) : aibox_image_load(tmp, x->path, ds->max_pixels, err);
    if (s) return s;
    *ref = tmp;
    return AIBOX_OK;
}

aibox_status aibox_dataset_image(const aibox_dataset *ds, aibox_split split, int i, aibox_image *out,
                                 aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "dataset: NULL image");
    const aibox_image *ref;
    aibox_image tmp;
    aibox_status s = aibox_dataset_image_ref(ds, split, i, &ref, &tmp, err);
    if (s) return s;
    if (ref == &tmp) {
        *out = tmp; /* already the caller's */
        return AIBOX_OK;
    }
    return aibox_image_copy(out, ref, err);
}

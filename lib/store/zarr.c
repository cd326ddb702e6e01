/* The sample store: a Zarr v2 folder of images, labels and per-sample
 * metadata (layout and guarantees in include/aibox/store.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>

#include <cjson/cJSON.h>
#include <zlib.h>

#include "aibox/store.h"
#include "core/atomic.h"
#include "core/core.h"
#include "data/data.h"

#define STORE_VERSION 1
#define SIDE_MAX 8192
#define BLOCK_MAX (1 << 20)
/* Far above any inspection line's store; bounds what a bogus shape costs
 * (the labels are held in memory: 4 bytes each). */
#define SAMPLES_MAX (1L << 26)
#define JSON_MAX ((size_t)1 << 20)        /* .zgroup, .zattrs, .zarray */
#define META_MAX ((size_t)64 << 20)       /* one metadata block */
#define CHUNK_MAX ((size_t)1 << 30)       /* one decoded chunk */

/* One Zarr array's header, as far as this reader needs it. */
typedef struct zarray {
    int ndim;
    long long shape[4], chunks[4];
    int zlib;      /* compressor: 1 zlib, 0 none */
    char sep;      /* dimension separator */
    int has_fill;  /* fill_value not null */
    long long fill;
} zarray;

struct aibox_store {
    char *dir;
    int readonly, lock_fd;
    pthread_mutex_t mu;
    long n;          /* committed samples */
    int c, h, w;
    long img_chunk;  /* samples per images chunk */
    zarray img, lab;
    int level;
    long block;      /* labels per labels chunk = samples per metadata block */
    aibox_resize_mode resize;
    int *labels;     /* n of them, capacity cap */
    long cap;
    int n_classes;
    char **classes;
};

/* ------------------------------------------------------------ small helpers */

static char *path_of(const char *dir, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *path_of(const char *dir, const char *fmt, ...)
{
    char tail[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tail, sizeof tail, fmt, ap);
    va_end(ap);
    char *p;
    return asprintf(&p, "%s/%s", dir, tail) < 0 ? NULL : p;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A copy of s with every byte that is not part of valid UTF-8 replaced by
 * '?': file names may hold any bytes, JSON readers (Python's) refuse them. */
static char *utf8_clean(const char *s)
{
    size_t n = strlen(s);
    char *o = malloc(n + 1);
    if (!o) return NULL;
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned char b = p[i];
        int len = b < 0x80 ? 1 : (b & 0xe0) == 0xc0 && b >= 0xc2 ? 2 : (b & 0xf0) == 0xe0 ? 3
                                : (b & 0xf8) == 0xf0 && b <= 0xf4 ? 4 : 0;
        int ok = len > 0 && i + (size_t)len <= n;
        for (int k = 1; ok && k < len; k++) ok = (p[i + k] & 0xc0) == 0x80;
        if (ok && len == 3) ok = !(b == 0xe0 && p[i + 1] < 0xa0) && !(b == 0xed && p[i + 1] >= 0xa0);
        if (ok && len == 4) ok = !(b == 0xf0 && p[i + 1] < 0x90) && !(b == 0xf4 && p[i + 1] >= 0x90);
        if (!ok) {
            o[i++] = '?';
            continue;
        }
        memcpy(o + i, p + i, (size_t)len);
        i += (size_t)len;
    }
    o[n] = 0;
    return o;
}

/* A JSON file (at most max bytes), parsed. Absent: AIBOX_E_NOTFOUND. */
static aibox_status read_json(const char *path, size_t max, cJSON **out, aibox_error *err)
{
    unsigned char *bytes = NULL;
    size_t len = 0;
    *out = NULL;
    aibox_status s = aibox_read_file(path, max, &bytes, &len, err);
    if (s) return s;
    *out = cJSON_ParseWithLength((const char *)bytes, len);
    free(bytes);
    if (!*out) return aibox_fail(err, AIBOX_E_FORMAT, "%s: not valid JSON", path);
    return AIBOX_OK;
}

static aibox_status write_json(const char *path, const cJSON *j, int pretty, aibox_error *err)
{
    char *text = pretty ? cJSON_Print(j) : cJSON_PrintUnformatted(j);
    if (!text) return aibox_fail(err, AIBOX_E_NOMEM, "saving %s: out of memory", path);
    aibox_status s = aibox_write_atomic_nosweep(path, text, strlen(text), err);
    free(text);
    return s;
}

static aibox_status write_zgroup(const char *path, aibox_error *err)
{
    static const char text[] = "{\n    \"zarr_format\": 2\n}";
    return aibox_write_atomic(path, text, sizeof text - 1, err);
}

/* A whole integer held by a JSON number (exact in a double). */
static int json_int(const cJSON *v, long long lo, long long hi, long long *out)
{
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= (double)lo && d <= (double)hi) || d != floor(d)) return 0;
    *out = (long long)d;
    return 1;
}

/* ------------------------------------------------------------ .zarray */

/* Parses an array header; dtype must be want_dtype (or one of its spellings). */
static aibox_status parse_zarray(const char *path, int ndim, const char *const *dtypes, zarray *z, aibox_error *err)
{
    cJSON *j;
    aibox_status s = read_json(path, JSON_MAX, &j, err);
    if (s == AIBOX_E_NOTFOUND) return aibox_fail(err, AIBOX_E_FORMAT, "%s: missing (not a sample store?)", path);
    if (s) return s;
    memset(z, 0, sizeof *z);
    z->sep = '.';
    const char *bad = NULL;
    aibox_status code = AIBOX_E_FORMAT;
    long long v;
    cJSON *shape = cJSON_GetObjectItemCaseSensitive(j, "shape"), *chunks = cJSON_GetObjectItemCaseSensitive(j, "chunks");
    cJSON *dtype = cJSON_GetObjectItemCaseSensitive(j, "dtype"), *comp = cJSON_GetObjectItemCaseSensitive(j, "compressor");
    cJSON *order = cJSON_GetObjectItemCaseSensitive(j, "order"), *filters = cJSON_GetObjectItemCaseSensitive(j, "filters");
    cJSON *fill = cJSON_GetObjectItemCaseSensitive(j, "fill_value"), *fmt = cJSON_GetObjectItemCaseSensitive(j, "zarr_format");
    cJSON *sep = cJSON_GetObjectItemCaseSensitive(j, "dimension_separator");
    if (!cJSON_IsObject(j)) bad = "not a JSON object";
    else if (!json_int(fmt, 2, 2, &v)) bad = "zarr_format is not 2";
    else if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) != ndim) bad = "shape has the wrong number of dimensions";
    else if (!cJSON_IsArray(chunks) || cJSON_GetArraySize(chunks) != ndim) bad = "chunks has the wrong number of dimensions";
    else if (!cJSON_IsString(dtype)) bad = "dtype is not a string";
    else if (!cJSON_IsString(order)) bad = "order is not a string";
    if (!bad) {
        z->ndim = ndim;
        for (int d = 0; !bad && d < ndim; d++) {
            if (!json_int(cJSON_GetArrayItem(shape, d), 0, LLONG_MAX / 2, &z->shape[d])) bad = "a shape entry is not a count";
            else if (!json_int(cJSON_GetArrayItem(chunks, d), 1, LLONG_MAX / 2, &z->chunks[d])) bad = "a chunks entry is not a positive count";
        }
    }
    if (!bad) {
        int known = 0;
        for (int k = 0; dtypes[k]; k++) known |= !strcmp(dtype->valuestring, dtypes[k]);
        if (!known) bad = "dtype", code = AIBOX_E_UNSUPPORTED;
    }
    if (!bad && strcmp(order->valuestring, "C")) bad = "order is not \"C\"", code = AIBOX_E_UNSUPPORTED;
    if (!bad && filters && !cJSON_IsNull(filters) && !(cJSON_IsArray(filters) && cJSON_GetArraySize(filters) == 0))
        bad = "filters are set (only null is read)", code = AIBOX_E_UNSUPPORTED;
    if (!bad && comp && !cJSON_IsNull(comp)) {
        cJSON *id = cJSON_GetObjectItemCaseSensitive(comp, "id");
        if (!cJSON_IsObject(comp) || !cJSON_IsString(id)) bad = "compressor has no id";
        else if (strcmp(id->valuestring, "zlib")) bad = "compressor (only zlib and null are read)", code = AIBOX_E_UNSUPPORTED;
        else z->zlib = 1;
    }
    if (!bad && sep && !cJSON_IsNull(sep)) {
        if (!cJSON_IsString(sep) || (strcmp(sep->valuestring, ".") && strcmp(sep->valuestring, "/")))
            bad = "dimension_separator is not \".\" or \"/\"";
        else z->sep = sep->valuestring[0];
    }
    if (!bad && fill && !cJSON_IsNull(fill)) {
        if (!json_int(fill, INT_MIN, INT_MAX, &z->fill)) bad = "fill_value is not an integer";
        else z->has_fill = 1;
    }
    if (bad && !strcmp(bad, "dtype"))
        s = aibox_fail(err, code, "%s: dtype \"%s\" is not read (want \"%s\")", path, dtype->valuestring, dtypes[0]);
    else if (bad && code == AIBOX_E_UNSUPPORTED && strstr(bad, "compressor"))
        s = aibox_fail(err, code, "%s: compressor \"%s\" is not read (only zlib and null)", path,
                       cJSON_GetObjectItemCaseSensitive(comp, "id")->valuestring);
    else if (bad)
        s = aibox_fail(err, code, "%s: %s", path, bad);
    cJSON_Delete(j);
    return s;
}

static cJSON *zarray_json(const zarray *z, const char *dtype, int level)
{
    cJSON *j = cJSON_CreateObject(), *shape = cJSON_CreateArray(), *chunks = cJSON_CreateArray();
    if (!j || !shape || !chunks) {
        cJSON_Delete(j), cJSON_Delete(shape), cJSON_Delete(chunks);
        return NULL;
    }
    cJSON_AddItemToObject(j, "chunks", chunks);
    for (int d = 0; d < z->ndim; d++) {
        cJSON_AddItemToArray(chunks, cJSON_CreateNumber((double)z->chunks[d]));
        cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)z->shape[d]));
    }
    if (z->zlib) {
        cJSON *c = cJSON_AddObjectToObject(j, "compressor");
        cJSON_AddStringToObject(c, "id", "zlib");
        cJSON_AddNumberToObject(c, "level", level);
    } else {
        cJSON_AddNullToObject(j, "compressor");
    }
    char sep[2] = {z->sep, 0};
    cJSON_AddStringToObject(j, "dimension_separator", sep);
    cJSON_AddStringToObject(j, "dtype", dtype);
    if (z->has_fill) cJSON_AddNumberToObject(j, "fill_value", (double)z->fill);
    else cJSON_AddNullToObject(j, "fill_value");
    cJSON_AddNullToObject(j, "filters");
    cJSON_AddStringToObject(j, "order", "C");
    cJSON_AddItemToObject(j, "shape", shape);
    cJSON_AddNumberToObject(j, "zarr_format", 2);
    return j;
}

static aibox_status write_zarray(const aibox_store *st, int images, long n, aibox_error *err)
{
    zarray z = images ? st->img : st->lab;
    z.shape[0] = n;
    char *path = path_of(st->dir, images ? "images/.zarray" : "labels/.zarray");
    cJSON *j = path ? zarray_json(&z, images ? "|u1" : "<i4", st->level) : NULL;
    aibox_status s = j ? write_json(path, j, 1, err) : aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", st->dir);
    cJSON_Delete(j);
    free(path);
    return s;
}

/* ------------------------------------------------------------ chunks */

/* Chunk file path into out: "images/i.0.0.0" (or i/0/0/0) or "labels/j". */
static char *chunk_path(const aibox_store *st, int images, long idx)
{
    if (!images) return path_of(st->dir, "labels/%ld", idx);
    char s = st->img.sep;
    return path_of(st->dir, "images/%ld%c0%c0%c0", idx, s, s, s);
}

/* Reads a chunk of exactly want decoded bytes into out. An absent file is
 * AIBOX_E_NOTFOUND (the caller applies the fill value). */
static aibox_status read_chunk(const char *path, int zlib, size_t want, unsigned char *out, aibox_error *err)
{
    unsigned char *bytes = NULL;
    size_t len = 0, max = zlib ? (size_t)compressBound((uLong)want) + 64 : want;
    aibox_status s = aibox_read_file(path, max, &bytes, &len, err);
    if (s == AIBOX_E_UNSUPPORTED)
        return aibox_fail(err, AIBOX_E_CORRUPT, "%s: larger than a chunk of %zu bytes can be", path, want);
    if (s) return s;
    if (!zlib) {
        if (len != want) s = aibox_fail(err, AIBOX_E_CORRUPT, "%s: %zu bytes, a chunk holds %zu (truncated?)", path, len, want);
        else memcpy(out, bytes, want);
        free(bytes);
        return s;
    }
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit(&zs) != Z_OK) {
        free(bytes);
        return aibox_fail(err, AIBOX_E_NOMEM, "%s: cannot start zlib", path);
    }
    zs.next_in = bytes, zs.avail_in = (uInt)len;
    zs.next_out = out, zs.avail_out = (uInt)want;
    int r = inflate(&zs, Z_FINISH);
    if (r == Z_STREAM_END && zs.total_out == want && zs.avail_in == 0) s = AIBOX_OK;
    else if (r == Z_STREAM_END)
        s = aibox_fail(err, AIBOX_E_CORRUPT, "%s: decodes to %lu bytes, a chunk holds %zu", path, zs.total_out, want);
    else if (r == Z_BUF_ERROR && zs.avail_out == 0)
        s = aibox_fail(err, AIBOX_E_CORRUPT, "%s: decodes to more than the %zu bytes of a chunk", path, want);
    else if (r == Z_BUF_ERROR)
        s = aibox_fail(err, AIBOX_E_CORRUPT, "%s: zlib stream truncated (%lu of %zu bytes)", path, zs.total_out, want);
    else
        s = aibox_fail(err, AIBOX_E_CORRUPT, "%s: not a valid zlib stream (%s)", path, zs.msg ? zs.msg : "corrupt");
    inflateEnd(&zs);
    free(bytes);
    return s;
}

static aibox_status write_chunk(const char *path, int zlib, int level, const unsigned char *data, size_t len,
                                aibox_error *err)
{
    /* no sweep of the folder per write: images/ holds a file per sample, so
     * each append would read all of them (aibox_store_open sweeps once) */
    if (!zlib) return aibox_write_atomic_nosweep(path, data, len, err);
    uLongf cap = compressBound((uLong)len);
    unsigned char *z = malloc(cap);
    if (!z) return aibox_fail(err, AIBOX_E_NOMEM, "saving %s: out of memory", path);
    aibox_status s = compress2(z, &cap, data, (uLong)len, level) == Z_OK
                         ? aibox_write_atomic_nosweep(path, z, cap, err)
                         : aibox_fail(err, AIBOX_E_NOMEM, "saving %s: zlib failed", path);
    free(z);
    return s;
}

/* Labels chunk j of the in-memory labels (entries from n on: the fill). */
static aibox_status write_labels_chunk(const aibox_store *st, long j, const int *labels, long n, aibox_error *err)
{
    size_t len = (size_t)st->block * 4;
    unsigned char *b = malloc(len);
    char *path = chunk_path(st, 0, j);
    aibox_status s = AIBOX_OK;
    if (!b || !path) s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", st->dir);
    for (long k = 0; !s && k < st->block; k++) {
        long i = j * st->block + k;
        uint32_t v = (uint32_t)(i < n ? labels[i] : (int)st->lab.fill);
        for (int q = 0; q < 4; q++) b[4 * k + q] = (unsigned char)(v >> (8 * q)); /* "<i4": little-endian */
    }
    if (!s) s = write_chunk(path, st->lab.zlib, st->level, b, len, err);
    free(b), free(path);
    return s;
}

/* ------------------------------------------------------------ metadata */

/* The samples array of metadata block j (a new empty one when absent). */
static aibox_status read_meta_block(const aibox_store *st, long j, cJSON **root, cJSON **samples, aibox_error *err)
{
    char *path = path_of(st->dir, "meta/%ld/.zattrs", j);
    if (!path) return aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", st->dir);
    aibox_status s = read_json(path, META_MAX, root, err);
    if (s == AIBOX_E_NOTFOUND) {
        s = AIBOX_OK;
        *root = cJSON_CreateObject();
        if (!*root) s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", st->dir);
    }
    if (!s) {
        *samples = cJSON_GetObjectItemCaseSensitive(*root, "samples");
        if (!cJSON_IsObject(*root)) s = aibox_fail(err, AIBOX_E_FORMAT, "%s: not a JSON object", path);
        else if (!*samples) *samples = cJSON_AddArrayToObject(*root, "samples");
        else if (!cJSON_IsArray(*samples)) s = aibox_fail(err, AIBOX_E_FORMAT, "%s: \"samples\" is not an array", path);
        if (!s && !*samples) s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", st->dir);
    }
    if (s) cJSON_Delete(*root), *root = NULL;
    free(path);
    return s;
}

static aibox_status write_meta_block(const aibox_store *st, long j, const cJSON *root, aibox_error *err)
{
    char *dir = path_of(st->dir, "meta/%ld", j), *zg = path_of(st->dir, "meta/%ld/.zgroup", j),
         *za = path_of(st->dir, "meta/%ld/.zattrs", j);
    aibox_status s = AIBOX_OK;
    if (!dir || !zg || !za) s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", st->dir);
    if (!s && mkdir(dir, 0777) != 0 && errno != EEXIST)
        s = aibox_fail(err, AIBOX_E_IO, "%s: cannot create folder: %s", dir, strerror(errno));
    if (!s && access(zg, F_OK) != 0) s = write_zgroup(zg, err);
    if (!s) s = write_json(za, root, 0, err);
    free(dir), free(zg), free(za);
    return s;
}

/* The object of sample i in its block's array: existing entries are kept,
 * missing ones before it padded with {} (a store whose metadata is absent). */
static cJSON *meta_slot(cJSON *samples, long k, int truncate)
{
    if (truncate)
        while (cJSON_GetArraySize(samples) > k) cJSON_DeleteItemFromArray(samples, cJSON_GetArraySize(samples) - 1);
    while (cJSON_GetArraySize(samples) <= k) {
        cJSON *o = cJSON_CreateObject();
        if (!o) return NULL;
        cJSON_AddItemToArray(samples, o);
    }
    cJSON *o = cJSON_GetArrayItem(samples, (int)k);
    if (!cJSON_IsObject(o)) {
        cJSON *fresh = cJSON_CreateObject();
        if (!fresh) return NULL;
        cJSON_ReplaceItemInArray(samples, (int)k, fresh);
        o = fresh;
    }
    return o;
}

static void set_string(cJSON *o, const char *key, const char *v)
{
    cJSON_DeleteItemFromObjectCaseSensitive(o, key);
    if (!v) {
        cJSON_AddNullToObject(o, key);
        return;
    }
    char *clean = utf8_clean(v);
    if (clean) cJSON_AddStringToObject(o, key, clean);
    free(clean);
}

static void set_number(cJSON *o, const char *key, double v)
{
    cJSON_DeleteItemFromObjectCaseSensitive(o, key);
    cJSON_AddNumberToObject(o, key, v);
}

/* ------------------------------------------------------------ root attributes */

static aibox_status write_root_attrs(const aibox_store *st, char **classes, int n_classes, aibox_error *err)
{
    char *path = path_of(st->dir, ".zattrs");
    if (!path) return aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", st->dir);
    cJSON *j = NULL;
    aibox_status s = read_json(path, JSON_MAX, &j, err);
    if (s == AIBOX_E_NOTFOUND || (!s && !cJSON_IsObject(j))) { /* other keys a user set are kept */
        cJSON_Delete(j);
        j = cJSON_CreateObject();
        s = AIBOX_OK;
    }
    if (!s && !j) s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", st->dir);
    if (!s) {
        cJSON_DeleteItemFromObjectCaseSensitive(j, "aibox_store");
        cJSON_DeleteItemFromObjectCaseSensitive(j, "classes");
        cJSON_AddNumberToObject(j, "aibox_store", STORE_VERSION);
        cJSON *a = cJSON_AddArrayToObject(j, "classes");
        for (int c = 0; a && c < n_classes; c++) cJSON_AddItemToArray(a, cJSON_CreateString(classes[c]));
        cJSON_DeleteItemFromObjectCaseSensitive(j, "resize");
        cJSON_AddStringToObject(j, "resize", aibox_resize_mode_name(st->resize));
        s = write_json(path, j, 1, err);
    }
    cJSON_Delete(j);
    free(path);
    return s;
}

/* ------------------------------------------------------------ create, open, free */

static void store_release(aibox_store *st)
{
    if (!st) return;
    if (st->lock_fd >= 0) close(st->lock_fd); /* drops the lock */
    pthread_mutex_destroy(&st->mu);
    for (int c = 0; c < st->n_classes; c++) free(st->classes[c]);
    free(st->classes);
    free(st->labels);
    free(st->dir);
    free(st);
}

void aibox_store_free(aibox_store **st)
{
    if (!st || !*st) return;
    store_release(*st);
    *st = NULL;
}

static aibox_store *store_new(const char *dir)
{
    aibox_store *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    st->lock_fd = -1;
    pthread_mutex_init(&st->mu, NULL);
    if (!(st->dir = strdup(dir))) {
        store_release(st);
        return NULL;
    }
    size_t l = strlen(st->dir);
    while (l > 1 && st->dir[l - 1] == '/') st->dir[--l] = 0;
    return st;
}

/* Removes a store folder being created (its files and sub-folders, two
 * levels: the layout's depth). Best effort. */
static void remove_tree(const char *dir)
{
    static const char *const subs[] = {"images", "labels", "meta/0", "meta", ""};
    for (int k = 0; k < 5; k++) {
        char *d = path_of(dir, "%s", subs[k]);
        DIR *h = d ? opendir(d) : NULL;
        struct dirent *e;
        while (h && (e = readdir(h)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlinkat(dirfd(h), e->d_name, 0);
        if (h) closedir(h);
        if (d) rmdir(d);
        free(d);
    }
    rmdir(dir);
}

/* Makes the rename of a new store durable. */
static void sync_parent(const char *dir)
{
    char *copy = strdup(dir);
    if (!copy) return;
    char *slash = strrchr(copy, '/');
    const char *parent = slash ? (slash == copy ? "/" : (*slash = 0, copy)) : ".";
    int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) fsync(fd), close(fd);
    free(copy);
}

/* One writer per store: an advisory lock on DIR/.zgroup (kept by the fd). */
static aibox_status take_lock(aibox_store *st, aibox_error *err)
{
    char *path = path_of(st->dir, ".zgroup");
    if (!path) return aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", st->dir);
    aibox_status s = AIBOX_OK;
    st->lock_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (st->lock_fd < 0) s = aibox_fail(err, AIBOX_E_IO, "%s: cannot open: %s", path, strerror(errno));
    else if (flock(st->lock_fd, LOCK_EX | LOCK_NB) != 0)
        s = aibox_fail(err, errno == EWOULDBLOCK ? AIBOX_E_STATE : AIBOX_E_IO,
                       "%s: another process has the store open for writing (%s)", st->dir, strerror(errno));
    free(path);
    return s;
}

static aibox_status grow_labels(aibox_store *st, long need, aibox_error *err)
{
    if (need <= st->cap) return AIBOX_OK;
    long cap = st->cap ? st->cap : 256;
    while (cap < need) cap *= 2;
    int *l = realloc(st->labels, (size_t)cap * sizeof *l);
    if (!l) return aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory (%ld labels)", st->dir, cap);
    st->labels = l, st->cap = cap;
    return AIBOX_OK;
}

aibox_status aibox_store_create(aibox_store **out, const char *dir, const aibox_store_opts *in, int n_classes,
                                const char *const *classes, aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "store: NULL argument");
    *out = NULL;
    if (!dir || !*dir) return aibox_fail(err, AIBOX_E_INVALID, "store: no folder given");
    aibox_store_opts o = in ? *in : (aibox_store_opts){0};
    if (!o.channels) o.channels = 1;
    if (!o.height) o.height = 224;
    if (!o.width) o.width = 224;
    if (!o.level) o.level = 1;
    if (!o.block) o.block = 256;
    if (o.channels != 1 && o.channels != 3)
        return aibox_fail(err, AIBOX_E_INVALID, "%s: %d channels (a store holds 1 or 3)", dir, o.channels);
    if (o.height < 1 || o.height > SIDE_MAX || o.width < 1 || o.width > SIDE_MAX)
        return aibox_fail(err, AIBOX_E_INVALID, "%s: sample size %dx%d (each side 1..%d)", dir, o.width, o.height, SIDE_MAX);
    if (o.level < 1 || o.level > 9) return aibox_fail(err, AIBOX_E_INVALID, "%s: zlib level %d (1..9)", dir, o.level);
    if (o.block < 1 || o.block > BLOCK_MAX) return aibox_fail(err, AIBOX_E_INVALID, "%s: block %d (1..%d)", dir, o.block, BLOCK_MAX);
    if (!aibox_resize_mode_name(o.resize)) return aibox_fail(err, AIBOX_E_INVALID, "%s: unknown resize mode", dir);
    if (n_classes < 0 || (n_classes > 0 && !classes)) return aibox_fail(err, AIBOX_E_INVALID, "%s: bad class list", dir);
    for (int c = 0; c < n_classes; c++) {
        if (!classes[c] || !*classes[c]) return aibox_fail(err, AIBOX_E_INVALID, "%s: class %d has no name", dir, c);
        for (int d = 0; d < c; d++)
            if (!strcmp(classes[c], classes[d])) return aibox_fail(err, AIBOX_E_INVALID, "%s: class \"%s\" twice", dir, classes[c]);
    }
    struct stat sb;
    int exists = stat(dir, &sb) == 0;
    if (exists) {
        if (!S_ISDIR(sb.st_mode)) return aibox_fail(err, AIBOX_E_INVALID, "%s: exists and is not a folder", dir);
        aibox_file_list l = {0};
        aibox_status ls = aibox_list_files(&l, dir, &(aibox_list_opts){.subfolders = AIBOX_SUBFOLDERS_NOTE}, err);
        int n = l.n;
        aibox_file_list_free(&l);
        char probe[4200];
        snprintf(probe, sizeof probe, "%s/.zgroup", dir);
        if (ls) return ls;
        if (n > 0 || access(probe, F_OK) == 0)
            return aibox_fail(err, AIBOX_E_INVALID, "%s: not empty (a new store needs an absent or empty folder)", dir);
    }
    /* built in a folder beside DIR, renamed over it when complete: a kill
     * during the creation leaves no half store at DIR */
    char *final = NULL, *tmp = NULL;
    aibox_store *st = NULL;
    if (!(final = strdup(dir)) || asprintf(&tmp, "%s.creating.%ld", dir, (long)getpid()) < 0) tmp = NULL;
    if (tmp) remove_tree(tmp); /* left by an earlier creation of ours that was killed */
    if (!final || !tmp || !(st = store_new(tmp))) {
        free(final), free(tmp);
        return aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", dir);
    }
    free(tmp);
    if (mkdir(st->dir, 0777) != 0) {
        aibox_status fs = aibox_fail(err, AIBOX_E_IO, "%s: cannot create folder: %s", st->dir, strerror(errno));
        free(final);
        store_release(st);
        return fs;
    }
    st->c = o.channels, st->h = o.height, st->w = o.width, st->level = o.level, st->block = o.block;
    st->resize = o.resize;
    st->img_chunk = 1;
    st->img = (zarray){.ndim = 4, .shape = {0, st->c, st->h, st->w}, .chunks = {1, st->c, st->h, st->w}, .zlib = 1,
                       .sep = '.', .has_fill = 1, .fill = 0};
    st->lab = (zarray){.ndim = 1, .shape = {0}, .chunks = {st->block}, .zlib = 0, .sep = '.', .has_fill = 1, .fill = -1};
    aibox_status s = AIBOX_OK;
    if (n_classes && !(st->classes = calloc((size_t)n_classes, sizeof *st->classes)))
        s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", dir);
    for (int c = 0; !s && c < n_classes; c++, st->n_classes++)
        if (!(st->classes[c] = strdup(classes[c]))) s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", dir);
    /* the groups and empty arrays; .zgroup first (the lock), labels last */
    static const char *const folders[] = {"images", "labels", "meta"};
    for (int k = 0; !s && k < 3; k++) {
        char *p = path_of(st->dir, "%s", folders[k]);
        if (!p) s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", dir);
        else if (mkdir(p, 0777) != 0 && errno != EEXIST)
            s = aibox_fail(err, AIBOX_E_IO, "%s: cannot create folder: %s", p, strerror(errno));
        free(p);
    }
    char *zg = path_of(st->dir, ".zgroup"), *mg = path_of(st->dir, "meta/.zgroup");
    if (!s && (!zg || !mg)) s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", dir);
    if (!s) s = write_zgroup(zg, err);
    if (!s) s = take_lock(st, err);
    if (!s) s = write_zgroup(mg, err);
    if (!s) s = write_root_attrs(st, st->classes, st->n_classes, err);
    if (!s) s = write_zarray(st, 1, 0, err);
    if (!s) s = write_zarray(st, 0, 0, err);
    free(zg), free(mg);
    if (!s && rename(st->dir, final) != 0)
        s = aibox_fail(err, AIBOX_E_IO, "%s: cannot rename %s to it: %s", final, st->dir, strerror(errno));
    if (s) {
        remove_tree(st->dir);
        free(final);
        store_release(st);
        return s;
    }
    free(st->dir);
    st->dir = final;
    size_t l = strlen(st->dir);
    while (l > 1 && st->dir[l - 1] == '/') st->dir[--l] = 0;
    sync_parent(st->dir);
    *out = st;
    return AIBOX_OK;
}

/* The class names of DIR/.zattrs ("classes"); absent: named by number up
 * to the largest label (set later, by the caller). */
static aibox_status read_root(aibox_store *st, int *has_classes, aibox_error *err)
{
    char *zg = path_of(st->dir, ".zgroup"), *za = path_of(st->dir, ".zattrs");
    aibox_status s = (!zg || !za) ? aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", st->dir) : AIBOX_OK;
    cJSON *j = NULL;
    long long v;
    *has_classes = 0;
    if (!s) {
        s = read_json(zg, JSON_MAX, &j, err);
        if (s == AIBOX_E_NOTFOUND) s = aibox_fail(err, AIBOX_E_NOTFOUND, "%s: not a sample store (no .zgroup)", st->dir);
        else if (!s && !json_int(cJSON_GetObjectItemCaseSensitive(j, "zarr_format"), 2, 2, &v))
            s = aibox_fail(err, AIBOX_E_FORMAT, "%s: zarr_format is not 2", zg);
        cJSON_Delete(j), j = NULL;
    }
    if (!s) {
        s = read_json(za, JSON_MAX, &j, err);
        if (s == AIBOX_E_NOTFOUND) s = AIBOX_OK;
        else if (!s && !cJSON_IsObject(j)) s = aibox_fail(err, AIBOX_E_FORMAT, "%s: not a JSON object", za);
    }
    cJSON *cls = j ? cJSON_GetObjectItemCaseSensitive(j, "classes") : NULL;
    cJSON *rz = j ? cJSON_GetObjectItemCaseSensitive(j, "resize") : NULL;
    if (!s && rz && (!cJSON_IsString(rz) || aibox_resize_mode_parse(rz->valuestring, &st->resize)))
        s = aibox_fail(err, AIBOX_E_FORMAT, "%s: \"resize\" is not a resize mode", za);
    if (!s && cls) {
        int n = cJSON_IsArray(cls) ? cJSON_GetArraySize(cls) : -1;
        if (n < 0 || n > 100000) s = aibox_fail(err, AIBOX_E_FORMAT, "%s: \"classes\" is not a list of names", za);
        if (!s && n && !(st->classes = calloc((size_t)n, sizeof *st->classes)))
            s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", st->dir);
        for (int c = 0; !s && c < n; c++) {
            cJSON *name = cJSON_GetArrayItem(cls, c);
            if (!cJSON_IsString(name) || !name->valuestring[0]) {
                s = aibox_fail(err, AIBOX_E_FORMAT, "%s: class %d is not a name", za, c);
                break;
            }
            for (int d = 0; !s && d < c; d++)
                if (!strcmp(st->classes[d], name->valuestring))
                    s = aibox_fail(err, AIBOX_E_FORMAT, "%s: class \"%s\" twice", za, name->valuestring);
            if (!s && !(st->classes[c] = strdup(name->valuestring))) s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", st->dir);
            if (!s) st->n_classes++;
        }
        *has_classes = 1;
    }
    cJSON_Delete(j);
    free(zg), free(za);
    return s;
}

/* The labels of samples 0..n-1 from their chunks. */
static aibox_status read_labels(aibox_store *st, aibox_error *err)
{
    size_t want = (size_t)st->block * 4;
    unsigned char *b = malloc(want);
    if (!b) return aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", st->dir);
    aibox_status s = AIBOX_OK;
    for (long j = 0; !s && j * st->block < st->n; j++) {
        char *path = chunk_path(st, 0, j);
        if (!path) s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", st->dir);
        if (!s) s = read_chunk(path, st->lab.zlib, want, b, err);
        if (s == AIBOX_E_NOTFOUND && st->lab.has_fill) { /* Zarr: an absent chunk holds the fill value */
            s = AIBOX_OK;
            for (long k = 0; k < st->block; k++) {
                uint32_t v = (uint32_t)(int)st->lab.fill;
                for (int q = 0; q < 4; q++) b[4 * k + q] = (unsigned char)(v >> (8 * q));
            }
        } else if (s == AIBOX_E_NOTFOUND) {
            s = aibox_fail(err, AIBOX_E_CORRUPT, "%s: missing (and the array has no fill_value)", path);
        }
        for (long k = 0; !s && k < st->block && j * st->block + k < st->n; k++) {
            int32_t v = (int32_t)((uint32_t)b[4 * k] | (uint32_t)b[4 * k + 1] << 8 | (uint32_t)b[4 * k + 2] << 16 |
                                  (uint32_t)b[4 * k + 3] << 24);
            st->labels[j * st->block + k] = v;
        }
        free(path);
    }
    free(b);
    return s;
}

aibox_status aibox_store_open(aibox_store **out, const char *dir, int flags, aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "store: NULL argument");
    *out = NULL;
    if (!dir || !*dir) return aibox_fail(err, AIBOX_E_INVALID, "store: no folder given");
    struct stat sb;
    if (stat(dir, &sb) != 0) return aibox_fail(err, AIBOX_E_NOTFOUND, "%s: no such store", dir);
    if (!S_ISDIR(sb.st_mode)) return aibox_fail(err, AIBOX_E_NOTFOUND, "%s: not a folder (a store is one)", dir);
    aibox_store *st = store_new(dir);
    if (!st) return aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", dir);
    st->readonly = (flags & AIBOX_STORE_READONLY) != 0;
    st->level = 1;
    int has_classes = 0;
    aibox_status s = read_root(st, &has_classes, err);
    if (!s && !st->readonly) s = take_lock(st, err); /* before reading N: no writer moves it under us */
    if (!s && !st->readonly) /* temporary files of writers killed mid-append (the writes do not sweep) */
        for (int k = 0; k < 2; k++) {
            char *d = path_of(st->dir, k ? "labels" : "images");
            if (d) aibox_atomic_sweep(d);
            free(d);
        }
    char *ip = path_of(st->dir, "images/.zarray"), *lp = path_of(st->dir, "labels/.zarray");
    if (!s && (!ip || !lp)) s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", dir);
    static const char *const u1[] = {"|u1", "<u1", ">u1", NULL}, *const i4[] = {"<i4", NULL};
    if (!s) s = parse_zarray(ip, 4, u1, &st->img, err);
    if (!s) s = parse_zarray(lp, 1, i4, &st->lab, err);
    if (!s) {
        const zarray *z = &st->img;
        long long c = z->shape[1], h = z->shape[2], w = z->shape[3];
        if (c != 1 && c != 3 && c != 4)
            s = aibox_fail(err, AIBOX_E_UNSUPPORTED, "%s: %lld channels (1, 3 or 4 are read)", ip, c);
        else if (h < 1 || h > SIDE_MAX || w < 1 || w > SIDE_MAX)
            s = aibox_fail(err, AIBOX_E_FORMAT, "%s: sample size %lldx%lld (each side 1..%d)", ip, w, h, SIDE_MAX);
        else if (z->chunks[1] != c || z->chunks[2] != h || z->chunks[3] != w)
            s = aibox_fail(err, AIBOX_E_UNSUPPORTED, "%s: chunks split a sample (want chunks [k, %lld, %lld, %lld])", ip, c, h, w);
        else if ((double)z->chunks[0] * (double)(c * h * w) > (double)CHUNK_MAX)
            s = aibox_fail(err, AIBOX_E_UNSUPPORTED, "%s: chunks of %lld samples exceed %zu bytes", ip, z->chunks[0], CHUNK_MAX);
        else if (z->has_fill && (z->fill < 0 || z->fill > 255))
            s = aibox_fail(err, AIBOX_E_FORMAT, "%s: fill_value %lld is not a byte", ip, z->fill);
        else if (st->lab.chunks[0] > BLOCK_MAX)
            s = aibox_fail(err, AIBOX_E_UNSUPPORTED, "%s: chunks of %lld labels (at most %d)", lp, st->lab.chunks[0], BLOCK_MAX);
        else if (st->lab.shape[0] > SAMPLES_MAX)
            s = aibox_fail(err, AIBOX_E_UNSUPPORTED, "%s: %lld samples (at most %ld)", lp, st->lab.shape[0], SAMPLES_MAX);
        else if (z->shape[0] < st->lab.shape[0])
            s = aibox_fail(err, AIBOX_E_CORRUPT, "%s: %lld samples, but %s has %lld labels", ip, z->shape[0], lp, st->lab.shape[0]);
        if (!s) {
            st->c = (int)c, st->h = (int)h, st->w = (int)w;
            st->img_chunk = (long)z->chunks[0];
            st->block = (long)st->lab.chunks[0];
            /* the labels' N is the commit point: images beyond it are an append that did not finish */
            st->n = (long)st->lab.shape[0];
            st->img.shape[0] = st->n;
            cJSON *j = NULL; /* the level appends keep (when the header has one) */
            if (z->zlib && !read_json(ip, JSON_MAX, &j, NULL)) {
                long long lv;
                cJSON *comp = cJSON_GetObjectItemCaseSensitive(j, "compressor");
                if (json_int(cJSON_GetObjectItemCaseSensitive(comp, "level"), 1, 9, &lv)) st->level = (int)lv;
            }
            cJSON_Delete(j);
        }
    }
    if (!s) s = grow_labels(st, st->n > 0 ? st->n : 1, err);
    if (!s) s = read_labels(st, err);
    /* classes: named by number when the store does not name them */
    int max_label = -1;
    for (long i = 0; !s && i < st->n; i++) {
        int l = st->labels[i];
        if (l < -1 || (has_classes && l >= st->n_classes)) {
            char *path = chunk_path(st, 0, i / st->block);
            s = aibox_fail(err, AIBOX_E_FORMAT, "%s: sample %ld has label %d (classes: %d; -1 is unlabelled)",
                           path ? path : st->dir, i, l, st->n_classes);
            free(path);
        }
        if (l > max_label) max_label = l;
    }
    if (!s && !has_classes && max_label >= 0) {
        if (!(st->classes = calloc((size_t)max_label + 1, sizeof *st->classes)))
            s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", dir);
        for (int c = 0; !s && c <= max_label; c++, st->n_classes++)
            if (asprintf(&st->classes[c], "%d", c) < 0) {
                st->classes[c] = NULL;
                s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", dir);
            }
    }
    /* an interrupted append left images' N ahead: put it back, so readers of
     * the Zarr arrays see equal lengths */
    if (!s && !st->readonly) {
        zarray disk;
        if (!parse_zarray(ip, 4, u1, &disk, NULL) && disk.shape[0] != st->n) s = write_zarray(st, 1, st->n, err);
    }
    free(ip), free(lp);
    if (s) {
        store_release(st);
        return s;
    }
    *out = st;
    return AIBOX_OK;
}

/* ------------------------------------------------------------ accessors */

const char *aibox_store_dir(const aibox_store *st) { return st ? st->dir : NULL; }
int aibox_store_channels(const aibox_store *st) { return st ? st->c : 0; }
int aibox_store_height(const aibox_store *st) { return st ? st->h : 0; }
int aibox_store_width(const aibox_store *st) { return st ? st->w : 0; }

/* The lock is taken on a const store: appends change what these read. */
#define LOCKED(st) pthread_mutex_lock((pthread_mutex_t *)&(st)->mu)
#define UNLOCKED(st) pthread_mutex_unlock((pthread_mutex_t *)&(st)->mu)

long aibox_store_count(const aibox_store *st)
{
    if (!st) return 0;
    LOCKED(st);
    long n = st->n;
    UNLOCKED(st);
    return n;
}

int aibox_store_class_count(const aibox_store *st)
{
    if (!st) return 0;
    LOCKED(st);
    int n = st->n_classes;
    UNLOCKED(st);
    return n;
}

const char *aibox_store_class_name(const aibox_store *st, int c)
{
    if (!st) return NULL;
    LOCKED(st);
    const char *name = c >= 0 && c < st->n_classes ? st->classes[c] : NULL; /* names are never freed before the store */
    UNLOCKED(st);
    return name;
}

static int find_class(const aibox_store *st, const char *name)
{
    for (int c = 0; c < st->n_classes; c++)
        if (!strcmp(st->classes[c], name)) return c;
    return -1;
}

int aibox_store_class_find(const aibox_store *st, const char *name)
{
    if (!st || !name) return -1;
    LOCKED(st);
    int c = find_class(st, name);
    UNLOCKED(st);
    return c;
}

int aibox_store_label(const aibox_store *st, long i)
{
    if (!st) return -1;
    LOCKED(st);
    int l = i >= 0 && i < st->n ? st->labels[i] : -1;
    UNLOCKED(st);
    return l;
}

void aibox_store_class_counts(const aibox_store *st, long *counts)
{
    if (!st || !counts) return;
    LOCKED(st);
    memset(counts, 0, (size_t)(st->n_classes + 1) * sizeof *counts);
    for (long i = 0; i < st->n; i++) counts[st->labels[i] >= 0 ? st->labels[i] : st->n_classes]++;
    UNLOCKED(st);
}

static aibox_status writable(const aibox_store *st, aibox_error *err)
{
    if (!st) return aibox_fail(err, AIBOX_E_INVALID, "store: NULL store");
    if (st->readonly) return aibox_fail(err, AIBOX_E_STATE, "%s: opened read-only", st->dir);
    return AIBOX_OK;
}

aibox_status aibox_store_add_class(aibox_store *st, const char *name, int *label, aibox_error *err)
{
    aibox_status s = writable(st, err);
    if (s) return s;
    if (!name || !*name) return aibox_fail(err, AIBOX_E_INVALID, "%s: a class needs a name", st->dir);
    LOCKED(st);
    int c = find_class(st, name);
    if (c < 0) {
        char **v = realloc(st->classes, (size_t)(st->n_classes + 1) * sizeof *v);
        char *copy = strdup(name);
        if (v) st->classes = v;
        if (!v || !copy) {
            free(copy);
            s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", st->dir);
        } else {
            v[st->n_classes] = copy;
            s = write_root_attrs(st, v, st->n_classes + 1, err);
            if (s) free(copy);
            else c = st->n_classes++;
        }
    }
    UNLOCKED(st);
    if (!s && label) *label = c;
    return s;
}

/* ------------------------------------------------------------ append, relabel */

/* img as the store's C x H x W planes (a new buffer). */
static aibox_status to_planes(const aibox_store *st, const aibox_image *img, unsigned char **out, aibox_error *err)
{
    aibox_image conv = {0}, sized = {0};
    const aibox_image *p = img;
    aibox_status s = AIBOX_OK;
    if (img->channels != st->c) {
        s = aibox_image_convert(&conv, img, st->c, err);
        p = &conv;
    }
    if (!s && (p->width != st->w || p->height != st->h)) {
        s = aibox_image_resize(&sized, p, st->w, st->h, st->resize, err);
        p = &sized;
    }
    size_t plane = (size_t)st->w * st->h;
    if (!s && !(*out = malloc(plane * st->c))) s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", st->dir);
    for (size_t i = 0; !s && i < plane; i++)
        for (int c = 0; c < st->c; c++) (*out)[c * plane + i] = p->data[i * st->c + c];
    aibox_image_free(&conv);
    aibox_image_free(&sized);
    return s;
}

aibox_status aibox_store_append(aibox_store *st, const aibox_image *img, int label, const aibox_store_info *info,
                                long *id, aibox_error *err)
{
    aibox_status s = writable(st, err);
    if (s) return s;
    if (!img || !img->data || img->width < 1 || img->height < 1)
        return aibox_fail(err, AIBOX_E_INVALID, "%s: append: no image", st->dir);
    cJSON *extra = NULL;
    if (info && info->extra_json) {
        extra = cJSON_Parse(info->extra_json);
        if (!cJSON_IsObject(extra)) {
            cJSON_Delete(extra);
            return aibox_fail(err, AIBOX_E_INVALID, "%s: append: extra_json is not a JSON object", st->dir);
        }
    }
    unsigned char *planes = NULL;
    s = to_planes(st, img, &planes, err); /* outside the lock: the slow part */
    cJSON *root = NULL, *samples = NULL;
    LOCKED(st);
    long i = st->n, j = i / (st->block ? st->block : 1);
    if (!s && (label < -1 || label >= st->n_classes))
        s = aibox_fail(err, AIBOX_E_INVALID, "%s: append: label %d (classes: %d; -1 is unlabelled)", st->dir, label,
                       st->n_classes);
    if (!s && st->img_chunk != 1)
        s = aibox_fail(err, AIBOX_E_UNSUPPORTED, "%s: images are chunked by %ld samples; appending needs chunks of 1",
                       st->dir, st->img_chunk);
    if (!s && st->img.sep != '.')
        s = aibox_fail(err, AIBOX_E_UNSUPPORTED, "%s: images use \"/\" as dimension separator; appending needs \".\"", st->dir);
    if (!s && i >= SAMPLES_MAX) s = aibox_fail(err, AIBOX_E_UNSUPPORTED, "%s: full (%ld samples)", st->dir, SAMPLES_MAX);
    if (!s) s = grow_labels(st, i + 1, err);
    /* 1. the sample's chunk; 2. its labels chunk; 3. its metadata block
     * (entries from i on dropped: left by an append that did not finish) */
    char *cp = s ? NULL : chunk_path(st, 1, i);
    if (!s && !cp) s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", st->dir);
    if (!s) s = write_chunk(cp, 1, st->level, planes, (size_t)st->c * st->h * st->w, err);
    free(cp);
    if (!s) {
        st->labels[i] = label; /* beyond n until the commit: nobody reads it */
        s = write_labels_chunk(st, j, st->labels, i + 1, err);
    }
    if (!s) s = read_meta_block(st, j, &root, &samples, err);
    if (!s) {
        cJSON *o = meta_slot(samples, i - j * st->block, 1);
        if (!o) s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", st->dir);
        for (cJSON *e = extra ? extra->child : NULL; o && e; e = e->next)
            if (e->string) cJSON_AddItemToObject(o, e->string, cJSON_Duplicate(e, 1));
        if (o) {
            set_number(o, "time", info && info->time > 0 ? info->time : now_seconds());
            if (info && info->source) set_string(o, "source", info->source);
            if (info && info->verdict) set_string(o, "verdict", info->verdict);
        }
        if (!s) s = write_meta_block(st, j, root, err);
    }
    /* 4. the lengths, labels' last: the commit */
    if (!s) s = write_zarray(st, 1, i + 1, err);
    if (!s) s = write_zarray(st, 0, i + 1, err);
    if (!s) st->n = i + 1;
    UNLOCKED(st);
    cJSON_Delete(root);
    cJSON_Delete(extra);
    free(planes);
    if (!s && id) *id = i;
    return s;
}

aibox_status aibox_store_set_label(aibox_store *st, long id, int label, aibox_error *err)
{
    aibox_status s = writable(st, err);
    if (s) return s;
    cJSON *root = NULL, *samples = NULL;
    LOCKED(st);
    if (id < 0 || id >= st->n) s = aibox_fail(err, AIBOX_E_NOTFOUND, "%s: no sample %ld (%ld samples)", st->dir, id, st->n);
    else if (label < -1 || label >= st->n_classes)
        s = aibox_fail(err, AIBOX_E_INVALID, "%s: label %d (classes: %d; -1 is unlabelled)", st->dir, label, st->n_classes);
    long j = id / (st->block ? st->block : 1);
    /* metadata first, the authoritative labels chunk last */
    if (!s) s = read_meta_block(st, j, &root, &samples, err);
    if (!s) {
        cJSON *o = meta_slot(samples, id - j * st->block, 0);
        if (!o) s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", st->dir);
        else {
            set_string(o, "operator", label >= 0 ? st->classes[label] : NULL);
            set_number(o, "label_time", now_seconds());
            s = write_meta_block(st, j, root, err);
        }
    }
    if (!s) {
        int old = st->labels[id];
        st->labels[id] = label;
        s = write_labels_chunk(st, j, st->labels, st->n, err);
        if (s) st->labels[id] = old;
    }
    UNLOCKED(st);
    cJSON_Delete(root);
    return s;
}

/* ------------------------------------------------------------ reading */

aibox_status aibox_store_image(const aibox_store *st, long i, aibox_image *out, aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "store: NULL image");
    memset(out, 0, sizeof *out);
    if (!st) return aibox_fail(err, AIBOX_E_INVALID, "store: NULL store");
    long n = aibox_store_count(st);
    if (i < 0 || i >= n) return aibox_fail(err, AIBOX_E_NOTFOUND, "%s: no sample %ld (%ld samples)", st->dir, i, n);
    /* committed chunks never change: read without the lock */
    size_t sample = (size_t)st->c * st->h * st->w, plane = (size_t)st->h * st->w;
    long ci = i / st->img_chunk;
    size_t want = sample * (size_t)st->img_chunk;
    unsigned char *chunk = malloc(want), *px = malloc(sample);
    char *path = chunk_path(st, 1, ci);
    aibox_status s = AIBOX_OK;
    if (!chunk || !px || !path) s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", st->dir);
    if (!s) s = read_chunk(path, st->img.zlib, want, chunk, err);
    if (s == AIBOX_E_NOTFOUND) { /* Zarr: an absent chunk holds the fill value */
        s = AIBOX_OK;
        memset(chunk, (int)(st->img.has_fill ? st->img.fill : 0), want);
    }
    if (!s) {
        const unsigned char *src = chunk + (size_t)(i % st->img_chunk) * sample;
        for (size_t p = 0; p < plane; p++)
            for (int c = 0; c < st->c; c++) px[p * st->c + c] = src[c * plane + p];
        *out = (aibox_image){.width = st->w, .height = st->h, .channels = st->c, .data = px};
        px = NULL;
    }
    free(chunk), free(px), free(path);
    return s;
}

aibox_status aibox_store_meta(const aibox_store *st, long i, char **json, aibox_error *err)
{
    if (!json) return aibox_fail(err, AIBOX_E_INVALID, "store: NULL argument");
    *json = NULL;
    if (!st) return aibox_fail(err, AIBOX_E_INVALID, "store: NULL store");
    cJSON *root = NULL, *samples = NULL;
    LOCKED(st); /* a relabel rewrites the block */
    aibox_status s = AIBOX_OK;
    if (i < 0 || i >= st->n) s = aibox_fail(err, AIBOX_E_NOTFOUND, "%s: no sample %ld (%ld samples)", st->dir, i, st->n);
    long j = s ? 0 : i / st->block;
    if (!s) s = read_meta_block(st, j, &root, &samples, err);
    UNLOCKED(st);
    if (!s) {
        cJSON *o = cJSON_GetArrayItem(samples, (int)(i - j * st->block));
        *json = cJSON_IsObject(o) ? cJSON_PrintUnformatted(o) : strdup("{}");
        if (!*json) s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", st->dir);
    }
    cJSON_Delete(root);
    return s;
}

/* ------------------------------------------------------------ as a dataset */

static aibox_status read_sample(void *user, long src, aibox_image *out, aibox_error *err)
{
    return aibox_store_image(user, src, out, err);
}

static void release_store(void *user)
{
    aibox_store *st = user;
    aibox_store_free(&st);
}

aibox_status aibox_store_dataset_open(aibox_dataset **ds, const char *dir, const struct aibox_dataset_opts *o,
                                      aibox_error *err)
{
    if (!ds) return aibox_fail(err, AIBOX_E_INVALID, "store: NULL argument");
    *ds = NULL;
    aibox_store *st = NULL;
    aibox_status s = aibox_store_open(&st, dir, AIBOX_STORE_READONLY, err);
    if (s) return s;
    long n = st->n;
    int K = st->n_classes, used = 0, m = 0;
    int *map = calloc((size_t)(K ? K : 1), sizeof *map);
    const char **names = calloc((size_t)(K ? K : 1), sizeof *names);
    long *srcs = malloc((size_t)(n ? n : 1) * sizeof *srcs);
    int *labels = malloc((size_t)(n ? n : 1) * sizeof *labels);
    char **paths = calloc((size_t)(n ? n : 1), sizeof *paths);
    if (!map || !names || !srcs || !labels || !paths) s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", dir);
    /* classes without a labelled sample are left out, as empty class folders are */
    for (long i = 0; !s && i < n; i++)
        if (st->labels[i] >= 0) map[st->labels[i]] = 1;
    for (int c = 0; !s && c < K; c++) {
        if (map[c]) names[used] = st->classes[c], map[c] = used++;
        else map[c] = -1;
    }
    for (long i = 0; !s && i < n; i++) {
        if (st->labels[i] < 0) continue;
        if (m == INT_MAX || !(paths[m] = chunk_path(st, 1, i))) {
            s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", dir);
            break;
        }
        srcs[m] = i, labels[m] = map[st->labels[i]], m++;
    }
    if (s) {
        aibox_store_free(&st);
    } else {
        aibox_dataset_source src = {.dir = st->dir, .n_classes = used, .classes = names, .n = m, .src = srcs,
                                    .labels = labels, .names = (const char *const *)paths, .read = read_sample,
                                    .user = st, .release = release_store};
        s = aibox_dataset_from_source(ds, &src, o, err); /* owns st from here, also on failure */
    }
    for (int i = 0; paths && i < m; i++) free(paths[i]);
    free(paths), free(labels), free(srcs), free(names), free(map);
    return s;
}

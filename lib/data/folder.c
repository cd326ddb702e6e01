/* The library's one folder lister (see aibox/data.h): class folders of a
 * dataset, the images of an anomaly folder tree, the files aibox-infer is
 * pointed at. Entries are sorted bytewise (never by locale or file system
 * order) and anything that is not a readable file is reported, not dropped. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/core.h"

static const char *ext_of(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot ? dot + 1 : "";
}

static size_t stem_len(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot ? (size_t)(dot - name) : strlen(name);
}

int aibox_is_image_name(const char *name)
{
    static const char *const ext[] = {"jpg", "jpeg", "png", "bmp", "pgm", "ppm", "pnm", "tga", "gif"};
    const char *e = ext_of(name ? name : "");
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++)
        if (!strcasecmp(e, ext[i])) return 1;
    return 0;
}

int aibox_is_sound_name(const char *name)
{
    static const char *const ext[] = {"wav", "wave", "flac", "ogg", "oga", "opus", "aif", "aiff", "aifc", "au",
                                      "snd", "caf", "w64", "rf64", "mp3"};
    const char *e = ext_of(name ? name : "");
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++)
        if (!strcasecmp(e, ext[i])) return 1;
    return 0;
}

/* What an entry is: 0 a regular file, 1 a folder, else a reason it is neither. */
static const char *classify(const char *path, int *kind)
{
    struct stat st;
    *kind = 2;
    if (stat(path, &st) != 0) {
        if (errno == ELOOP) return "a symbolic link loop";
        if (errno == ENOENT) return "a broken symbolic link (its target does not exist)";
        return errno == EACCES ? "cannot be examined (permission denied)" : "cannot be examined";
    }
    if (S_ISREG(st.st_mode)) return *kind = 0, NULL;
    if (S_ISDIR(st.st_mode)) return *kind = 1, "a sub-folder: not searched (not recursive)";
    if (S_ISFIFO(st.st_mode)) return "a FIFO (named pipe), not a regular file";
    if (S_ISSOCK(st.st_mode)) return "a socket, not a regular file";
    return "a device, not a regular file";
}

typedef struct item {
    char *path;
    const char *note;
} item;

typedef struct items {
    item *v;
    int n, cap;
} items;

static int push(items *l, char *path, const char *note)
{
    if (!path) return 0;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        item *v = realloc(l->v, sizeof *v * (size_t)cap);
        if (!v) {
            free(path);
            return 0;
        }
        l->v = v, l->cap = cap;
    }
    l->v[l->n++] = (item){path, note};
    return 1;
}

static int cmp_item(const void *a, const void *b) { return strcmp(((const item *)a)->path, ((const item *)b)->path); }

static char *join(const char *a, const char *b)
{
    char *s;
    return asprintf(&s, "%s/%s", a, b) < 0 ? NULL : s;
}

/* Whether name (a PNG) is the mask of an image of another type beside it. */
static int is_mask(const char *name, char **names, int n)
{
    if (strcasecmp(ext_of(name), "png")) return 0;
    size_t sl = stem_len(name);
    for (int j = 0; j < n; j++)
        if (names[j] != name && strcasecmp(ext_of(names[j]), "png") && aibox_is_image_name(names[j]) &&
            stem_len(names[j]) == sl && !strncmp(names[j], name, sl))
            return 1;
    return 0;
}

static aibox_status list_dir(items *out, const char *dir, const aibox_list_opts *o, int depth, aibox_error *err)
{
    if (depth > 64) return aibox_fail(err, AIBOX_E_INVALID, "%s: folders nested more than 64 deep", dir);
    DIR *d = opendir(dir);
    if (!d) return aibox_fail(err, errno == ENOENT ? AIBOX_E_NOTFOUND : AIBOX_E_IO, "%s: cannot read the folder: %s", dir,
                              strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0;
    aibox_status s = AIBOX_OK;
    struct dirent *e;
    while (!s && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue; /* hidden names, '.' and '..' */
        if (n == cap) {
            char **v = realloc(names, sizeof *v * (size_t)(cap = cap ? 2 * cap : 64));
            if (!v) {
                s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", dir);
                break;
            }
            names = v;
        }
        if (!(names[n] = strdup(e->d_name))) s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", dir);
        else n++;
    }
    closedir(d);
    for (int i = 0; !s && i < n; i++) {
        char *path = join(dir, names[i]);
        if (!path) {
            s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", dir);
            break;
        }
        int kind;
        const char *note = classify(path, &kind);
        int ok = 1;
        if (o->folders) { /* the sub-folders themselves */
            if (kind == 1) ok = push(out, path, NULL);
            else free(path);
        } else if (kind == 1) {
            if (o->subfolders == AIBOX_SUBFOLDERS_RECURSE) s = list_dir(out, path, o, depth + 1, err);
            else if (o->subfolders == AIBOX_SUBFOLDERS_NOTE) ok = push(out, path, note), path = NULL;
            free(path);
        } else if (o->images_only && !aibox_is_image_name(names[i])) {
            free(path);
        } else if (kind == 0 && o->skip_masks && is_mask(names[i], names, n)) {
            free(path);
        } else {
            ok = push(out, path, note); /* a file, or an entry that is not one: reported with why */
        }
        if (!ok) s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", dir);
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return s;
}

aibox_status aibox_list_files(aibox_file_list *out, const char *dir, const aibox_list_opts *opts, aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "list: NULL output");
    memset(out, 0, sizeof *out);
    if (!dir || !*dir) return aibox_fail(err, AIBOX_E_INVALID, "list: no folder given");
    aibox_list_opts o = opts ? *opts : (aibox_list_opts){0};
    items l = {0};
    aibox_status s = list_dir(&l, dir, &o, 0, err);
    if (!s && l.n > 1) qsort(l.v, (size_t)l.n, sizeof *l.v, cmp_item);
    if (!s && l.n) {
        out->path = malloc(sizeof *out->path * (size_t)l.n);
        out->note = malloc(sizeof *out->note * (size_t)l.n);
        if (!out->path || !out->note) s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", dir);
    }
    for (int i = 0; i < l.n; i++) {
        if (s) {
            free(l.v[i].path);
            continue;
        }
        out->path[i] = l.v[i].path, out->note[i] = l.v[i].note;
    }
    if (!s) out->n = l.n;
    else aibox_file_list_free(out);
    free(l.v);
    return s;
}

void aibox_file_list_free(aibox_file_list *l)
{
    if (!l) return;
    for (int i = 0; i < l->n; i++) free(l->path[i]);
    free(l->path);
    free((void *)l->note);
    memset(l, 0, sizeof *l);
}

/* ------------------------------------------------------------------ masks */
int aibox_find_mask(const char *image, const char *mask_dir, char *out, size_t len)
{
    if (!image || !out || !len) return 0;
    const char *leaf = strrchr(image, '/');
    leaf = leaf ? leaf + 1 : image;
    int stem = (int)stem_len(leaf);
    struct stat st;
    if (mask_dir) {
        snprintf(out, len, "%s/%.*s.png", mask_dir, stem, leaf);
        if (!stat(out, &st) && S_ISREG(st.st_mode)) return 1;
        snprintf(out, len, "%s/%.*s_mask.png", mask_dir, stem, leaf);
        return !stat(out, &st) && S_ISREG(st.st_mode);
    }
    if (!strcasecmp(ext_of(leaf), "png")) return 0;
    snprintf(out, len, "%.*s.png", (int)(leaf - image) + stem, image);
    return !stat(out, &st) && S_ISREG(st.st_mode);
}

aibox_status aibox_load_mask(const char *image, const char *mask_dir, int w, int h, long long max_pixels, uint8_t *dst,
                             aibox_error *err)
{
    if (!image || !dst || w < 1 || h < 1) return aibox_fail(err, AIBOX_E_INVALID, "mask: bad argument");
    memset(dst, 0, (size_t)w * h);
    char mp[4300];
    if (!aibox_find_mask(image, mask_dir, mp, sizeof mp)) return AIBOX_OK;
    aibox_image mi = {0}, g = {0}, r = {0};
    aibox_status s = aibox_image_load(&mi, mp, max_pixels, err);
    if (!s) s = aibox_image_convert(&g, &mi, 1, err);
    if (!s) s = aibox_image_resize(&r, &g, w, h, AIBOX_RESIZE_NEAREST, err);
    for (size_t p = 0; !s && p < (size_t)w * h; p++) dst[p] = r.data[p] >= 128;
    aibox_image_free(&mi), aibox_image_free(&g), aibox_image_free(&r);
    return s;
}

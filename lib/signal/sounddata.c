/* Datasets of recordings for window classifiers (include/aibox/sound.h):
 * folders of sound or vibration files, split by recording, every window
 * turned into a model input once at open, and the batches aibox_train
 * reads. Each recording is one pool task writing only its own buffers, so
 * the result is the same bits for any thread count. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/core.h"
#include "core/pool.h"

#define TAG_SPLIT 0x73706c6974ULL    /* "split" */
#define TAG_SHUFFLE 0x73687566666cULL /* "shuffl" */

typedef struct rec {
    char *path;
    int cls;       /* index into the class-name table of the listing */
    int split;     /* AIBOX_SPLIT_*; -1 until the flat layout's draw */
    /* filled by the task */
    aibox_status st;
    char *reason;  /* why it is skipped (owned) */
    float *win;    /* count windows of the unstandardised input */
    long count;
    long first;    /* within its split, once assembled */
} rec;

typedef struct split_data {
    int n_rec;
    int *rec;      /* indices into ds->recs, in class/name order */
    long n_win;
    float *x;      /* n_win x size, standardised */
    int *label;
} split_data;

typedef struct skip {
    char *path;
    char *reason;
} skip;

struct aibox_sound_dataset {
    aibox_sound_data_opts o;
    aibox_sound_opts sound; /* with in_mean / in_std computed */
    size_t size;
    int n_classes;
    char **classes;
    rec *recs;
    int n_recs;
    int *label_of;          /* listing class index -> label, -1 when the class has no usable recording */
    split_data sp[AIBOX_SPLIT_COUNT];
    skip *skips;
    int n_skips, cap_skips;
};

void aibox_sound_data_opts_default(aibox_sound_data_opts *o, double rate, aibox_sound_input input)
{
    if (!o) return;
    memset(o, 0, sizeof *o);
    aibox_sound_opts_default(&o->sound, rate, input);
    o->val_split = 0.2;
    o->seed = 0;
    o->channel = AIBOX_CHANNEL_MIX; /* a mono file mixes to itself */
    o->strict = 0;
    o->max_frames = 0;
    o->threads = 0;
}

static int add_skip(aibox_sound_dataset *ds, const char *path, const char *reason)
{
    if (ds->n_skips == ds->cap_skips) {
        int cap = ds->cap_skips ? 2 * ds->cap_skips : 16;
        skip *v = realloc(ds->skips, sizeof *v * (size_t)cap);
        if (!v) return 0;
        ds->skips = v, ds->cap_skips = cap;
    }
    skip *k = &ds->skips[ds->n_skips];
    k->path = strdup(path), k->reason = strdup(reason);
    if (!k->path || !k->reason) {
        free(k->path), free(k->reason);
        return 0;
    }
    ds->n_skips++;
    return 1;
}

static const char *base_name(const char *path)
{
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ------------------------------------------------------------------ listing */
typedef struct listing {
    char **names; /* class names, sorted, unique */
    int n_names;
    rec *recs;
    int n, cap;
} listing;

static int name_index(listing *l, const char *name)
{
    for (int i = 0; i < l->n_names; i++)
        if (!strcmp(l->names[i], name)) return i;
    return -1;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The class folders of root (one split's folder, or DIR) added to l->names. */
static aibox_status list_classes(listing *l, const char *root, aibox_error *err)
{
    aibox_file_list fl;
    aibox_list_opts lo = {.folders = 1};
    aibox_status s = aibox_list_files(&fl, root, &lo, err);
    if (s) return s;
    for (int i = 0; !s && i < fl.n; i++) {
        const char *b = base_name(fl.path[i]);
        if (name_index(l, b) >= 0) continue;
        char **v = realloc(l->names, sizeof *v * (size_t)(l->n_names + 1));
        if (!v || !(v[l->n_names] = strdup(b))) {
            if (v) l->names = v;
            s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", root);
            break;
        }
        l->names = v, l->n_names++;
    }
    aibox_file_list_free(&fl);
    if (!s && l->n_names > 1) qsort(l->names, (size_t)l->n_names, sizeof *l->names, cmp_str);
    return s;
}

/* The files of root/<class> for every class (in class order) as recordings
 * of split (-1: drawn later); entries that are not files are skipped with
 * what they are. A class folder absent from this root is fine. */
static aibox_status list_recs(aibox_sound_dataset *ds, listing *l, const char *root, int split, aibox_error *err)
{
    aibox_status s = AIBOX_OK;
    for (int c = 0; !s && c < l->n_names; c++) {
        char *dir = NULL;
        if (asprintf(&dir, "%s/%s", root, l->names[c]) < 0) return aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", root);
        if (!is_dir(dir)) {
            free(dir);
            continue;
        }
        aibox_file_list fl;
        aibox_list_opts lo = {.subfolders = AIBOX_SUBFOLDERS_NOTE};
        s = aibox_list_files(&fl, dir, &lo, err);
        free(dir);
        for (int i = 0; !s && i < fl.n; i++) {
            if (fl.note[i]) {
                if (ds->o.strict)
                    s = aibox_fail(err, AIBOX_E_FORMAT, "%s: %s (strict: every entry must be a recording)", fl.path[i],
                                   fl.note[i]);
                else if (!add_skip(ds, fl.path[i], fl.note[i]))
                    s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", root);
                continue;
            }
            if (l->n == l->cap) {
                int cap = l->cap ? 2 * l->cap : 64;
                rec *v = realloc(l->recs, sizeof *v * (size_t)cap);
                if (!v) {
                    s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", root);
                    break;
                }
                l->recs = v, l->cap = cap;
            }
            rec *r = &l->recs[l->n];
            memset(r, 0, sizeof *r);
            if (!(r->path = strdup(fl.path[i]))) {
                s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", root);
                break;
            }
            r->cls = c, r->split = split;
            l->n++;
        }
        aibox_file_list_free(&fl);
    }
    return s;
}

/* ------------------------------------------------------------------ reading (pool tasks) */
typedef struct job {
    aibox_sound_dataset *ds;
    aibox_sound_frontend **fe; /* one per thread */
} job;

static void set_reason(rec *r, aibox_status st, const char *fmt, const char *a)
{
    r->st = st;
    if (asprintf(&r->reason, fmt, a) < 0) r->reason = NULL;
}

static void read_task(void *arg, int task, int thread)
{
    job *j = arg;
    aibox_sound_dataset *ds = j->ds;
    rec *r = &ds->recs[task];
    aibox_sound_frontend *fe = j->fe[thread];
    const aibox_sound_opts *o = &ds->sound;
    aibox_error e = {0};
    aibox_signal sig = {0}, rs = {0};
    aibox_signal_opts so = {.channel = ds->o.channel, .max_frames = ds->o.max_frames};
    aibox_status s = aibox_signal_load(&sig, r->path, &so, &e);
    if (s) {
        /* libsndfile's "not a sound file" and the reader's other refusals,
         * without the path the skip list shows beside it */
        const size_t pl = strlen(r->path);
        const char *why = !strncmp(e.msg, r->path, pl) && !strncmp(e.msg + pl, ": ", 2) ? e.msg + pl + 2 : e.msg;
        set_reason(r, s, "%s", why);
        return;
    }
    if (sig.channels != 1) {
        r->st = AIBOX_E_INVALID;
        if (asprintf(&r->reason, "%d channels: choose one channel or mix them", sig.channels) < 0) r->reason = NULL;
        aibox_signal_free(&sig);
        return;
    }
    if (sig.rate != o->spec.rate) {
        s = aibox_signal_resample(&sig, o->spec.rate, &rs, &e);
        aibox_signal_free(&sig);
        if (s) {
            set_reason(r, s, "resampling: %s", e.msg);
            return;
        }
        sig = rs;
    }
    const long n = aibox_sound_window_count(o, sig.frames);
    if (n == 0) {
        r->st = AIBOX_E_SHAPE;
        if (asprintf(&r->reason, "too short: %ld samples at %g Hz, one window is %ld", sig.frames, o->spec.rate,
                     o->window) < 0)
            r->reason = NULL;
        aibox_signal_free(&sig);
        return;
    }
    size_t total;
    if (!aibox_mul_ok((size_t)n, ds->size, &total) || !(r->win = malloc(sizeof(float) * total))) {
        r->st = AIBOX_E_NOMEM;
        r->reason = strdup("out of memory for its windows");
        aibox_signal_free(&sig);
        return;
    }
    for (long w = 0; w < n && !s; w++) {
        float *v = r->win + (size_t)w * ds->size;
        /* in_mean 0, in_std 1 in the front end: out is the raw input exactly */
        s = aibox_sound_frontend_run(fe, sig.data + (size_t)w * (size_t)o->hop, v, NULL, &e);
        if (s) {
            char pos[64];
            snprintf(pos, sizeof pos, "window %ld: ", w);
            r->st = s;
            if (asprintf(&r->reason, "%s%s", pos, e.msg) < 0) r->reason = NULL;
        }
    }
    aibox_signal_free(&sig);
    if (s) {
        free(r->win);
        r->win = NULL;
        return;
    }
    r->count = n;
}

/* ------------------------------------------------------------------ open */
static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

/* The flat layout's draw, per class: val_split of its usable recordings
 * (at least one when it has two or more, never all) go to validation,
 * chosen by a permutation seeded from (seed, class name) over them in name
 * order; those still undecided (-1) are the ones drawn among. */
static aibox_status draw_split(aibox_sound_dataset *ds, char **names, int n_names, aibox_error *err)
{
    int *idx = malloc(sizeof *idx * (size_t)(ds->n_recs ? ds->n_recs : 1));
    if (!idx) return aibox_fail(err, AIBOX_E_NOMEM, "sound dataset: out of memory");
    for (int c = 0; c < n_names; c++) {
        int n = 0;
        for (int i = 0; i < ds->n_recs; i++)
            if (ds->recs[i].cls == c && ds->recs[i].split < 0 && ds->recs[i].count > 0) idx[n++] = i;
        int n_val = 0;
        if (ds->o.val_split > 0 && n >= 2) {
            n_val = (int)floor(ds->o.val_split * n + 0.5);
            n_val = AIBOX_MAX(1, AIBOX_MIN(n_val, n - 1));
        }
        aibox_rng r;
        aibox_rng_seed(&r, aibox_seed_mix(ds->o.seed, fnv1a(names[c]), TAG_SPLIT));
        for (int i = n - 1; i > 0; i--) {
            int k = (int)aibox_rng_below(&r, (uint32_t)i + 1), t = idx[i];
            idx[i] = idx[k], idx[k] = t;
        }
        for (int i = 0; i < n; i++) ds->recs[idx[i]].split = i < n_val ? AIBOX_SPLIT_VAL : AIBOX_SPLIT_TRAIN;
    }
    free(idx);
    return AIBOX_OK;
}

static aibox_status assemble(aibox_sound_dataset *ds, aibox_error *err)
{
    for (int sp = 0; sp < AIBOX_SPLIT_COUNT; sp++) {
        split_data *d = &ds->sp[sp];
        int n = 0;
        long w = 0;
        for (int i = 0; i < ds->n_recs; i++)
            if (ds->recs[i].count > 0 && ds->recs[i].split == sp) n++, w += ds->recs[i].count;
        size_t total;
        if (!aibox_mul_ok((size_t)w, ds->size, &total))
            return aibox_fail(err, AIBOX_E_NOMEM, "sound dataset: %ld windows are too many", w);
        d->rec = malloc(sizeof *d->rec * (size_t)(n ? n : 1));
        d->x = malloc(sizeof *d->x * (total ? total : 1));
        d->label = malloc(sizeof *d->label * (size_t)(w ? w : 1));
        if (!d->rec || !d->x || !d->label)
            return aibox_fail(err, AIBOX_E_NOMEM, "sound dataset: out of memory for %ld windows", w);
        d->n_rec = 0, d->n_win = 0;
        for (int i = 0; i < ds->n_recs; i++) {
            rec *r = &ds->recs[i];
            if (r->count <= 0 || r->split != sp) continue;
            d->rec[d->n_rec++] = i;
            r->first = d->n_win;
            memcpy(d->x + (size_t)d->n_win * ds->size, r->win, sizeof(float) * (size_t)r->count * ds->size);
            for (long k = 0; k < r->count; k++) d->label[d->n_win + k] = ds->label_of[r->cls];
            d->n_win += r->count;
            free(r->win);
            r->win = NULL;
        }
    }
    return AIBOX_OK;
}

/* in_mean / in_std over every value of the training windows (two passes in
 * double), then every split standardised as the front end does it. */
static aibox_status standardise(aibox_sound_dataset *ds, const char *dir, aibox_error *err)
{
    const split_data *t = &ds->sp[AIBOX_SPLIT_TRAIN];
    const size_t n = (size_t)t->n_win * ds->size;
    if (n == 0) return aibox_fail(err, AIBOX_E_INVALID, "%s: no training windows", dir);
    double sum = 0.0, sq = 0.0;
    for (size_t i = 0; i < n; i++) sum += t->x[i];
    const double mean = sum / (double)n;
    for (size_t i = 0; i < n; i++) {
        const double d = t->x[i] - mean;
        sq += d * d;
    }
    const double sd = sqrt(sq / (double)n);
    ds->sound.in_mean = (float)mean;
    /* a constant input: nothing to scale (in_std must stay > 0) */
    ds->sound.in_std = sd > 0.0 && (float)sd > 0.0f && isfinite(sd) ? (float)sd : 1.0f;
    const float m = ds->sound.in_mean, s = ds->sound.in_std;
    for (int sp = 0; sp < AIBOX_SPLIT_COUNT; sp++) {
        split_data *d = &ds->sp[sp];
        const size_t k = (size_t)d->n_win * ds->size;
        for (size_t i = 0; i < k; i++) d->x[i] = (d->x[i] - m) / s;
    }
    return AIBOX_OK;
}

aibox_status aibox_sound_dataset_open(aibox_sound_dataset **out, const char *dir, const aibox_sound_data_opts *o,
                                      aibox_error *err)
{
    if (!out || !dir || !o) return aibox_fail(err, AIBOX_E_INVALID, "sound dataset: NULL argument");
    *out = NULL;
    aibox_sound_opts so = o->sound;
    so.in_mean = 0.0f, so.in_std = 1.0f; /* computed here */
    aibox_status s = aibox_sound_opts_check(&so, err);
    if (s) return s;
    if (!(o->val_split >= 0.0 && o->val_split <= 0.9))
        return aibox_fail(err, AIBOX_E_INVALID, "sound dataset: val_split %g must be in 0 .. 0.9", o->val_split);
    if (o->channel < AIBOX_CHANNEL_MIX)
        return aibox_fail(err, AIBOX_E_INVALID, "sound dataset: channel %d is not a channel, AIBOX_CHANNEL_ALL or _MIX",
                          o->channel);
    if (o->max_frames < 0) return aibox_fail(err, AIBOX_E_INVALID, "sound dataset: max_frames %ld < 0", o->max_frames);
    if (!is_dir(dir)) return aibox_fail(err, AIBOX_E_NOTFOUND, "%s: no such folder", dir);

    aibox_sound_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return aibox_fail(err, AIBOX_E_NOMEM, "sound dataset: out of memory");
    ds->o = *o, ds->sound = so;
    listing l = {0};
    aibox_sound_frontend **fe = NULL;
    aibox_pool *pool = NULL;
    int threads = 0;
    char *sub[AIBOX_SPLIT_COUNT] = {0};
    static const char *const SPLIT_DIRS[AIBOX_SPLIT_COUNT] = {"train", "val", "test"};
    for (int i = 0; !s && i < AIBOX_SPLIT_COUNT; i++)
        if (asprintf(&sub[i], "%s/%s", dir, SPLIT_DIRS[i]) < 0) {
            sub[i] = NULL;
            s = aibox_fail(err, AIBOX_E_NOMEM, "sound dataset: out of memory");
        }
    const int split_layout = !s && is_dir(sub[0]);
    /* the list: classes (the union over the split folders), then files */
    if (!s && split_layout) {
        for (int i = 0; !s && i < AIBOX_SPLIT_COUNT; i++)
            if (is_dir(sub[i])) s = list_classes(&l, sub[i], err);
        /* without DIR/val the validation recordings are drawn from train */
        const int draw = !is_dir(sub[1]);
        for (int i = 0; !s && i < AIBOX_SPLIT_COUNT; i++)
            if (is_dir(sub[i])) s = list_recs(ds, &l, sub[i], i == 0 && draw ? -1 : i, err);
    } else if (!s) {
        s = list_classes(&l, dir, err);
        if (!s) s = list_recs(ds, &l, dir, -1, err);
    }
    ds->recs = l.recs, ds->n_recs = l.n;
    l.recs = NULL;
    if (!s && ds->n_recs == 0) s = aibox_fail(err, AIBOX_E_INVALID, "%s: no recordings in class folders", dir);
    /* every recording read and cut once, one task each */
    if (!s) {
        threads = o->threads > 0 ? o->threads : aibox_default_threads();
        threads = AIBOX_MAX(1, AIBOX_MIN(threads, ds->n_recs));
        fe = calloc((size_t)threads, sizeof *fe);
        if (!fe) s = aibox_fail(err, AIBOX_E_NOMEM, "sound dataset: out of memory");
        for (int i = 0; !s && i < threads; i++) s = aibox_sound_frontend_create(&fe[i], &so, err);
        if (!s && threads > 1) s = aibox_pool_create(&pool, threads, err);
        if (!s) {
            ds->size = aibox_sound_frontend_size(fe[0]);
            job j = {ds, fe};
            aibox_pool_run(pool, ds->n_recs, read_task, &j);
        }
    }
    /* failures in class/name order: the skip list, or with strict the open's error */
    for (int i = 0; !s && i < ds->n_recs; i++) {
        rec *r = &ds->recs[i];
        if (!r->st) continue;
        const char *why = r->reason ? r->reason : aibox_strerror(r->st);
        if (o->strict) s = aibox_fail(err, r->st, "%s: %s (strict)", r->path, why);
        else if (!add_skip(ds, r->path, why)) s = aibox_fail(err, AIBOX_E_NOMEM, "sound dataset: out of memory");
    }
    /* classes: the folders with at least one usable recording */
    if (!s) {
        ds->label_of = malloc(sizeof *ds->label_of * (size_t)(l.n_names ? l.n_names : 1));
        ds->classes = calloc((size_t)(l.n_names ? l.n_names : 1), sizeof *ds->classes);
        if (!ds->label_of || !ds->classes) s = aibox_fail(err, AIBOX_E_NOMEM, "sound dataset: out of memory");
        for (int c = 0; !s && c < l.n_names; c++) {
            int used = 0;
            for (int i = 0; i < ds->n_recs && !used; i++) used = ds->recs[i].cls == c && ds->recs[i].count > 0;
            ds->label_of[c] = used ? ds->n_classes : -1;
            if (used) ds->classes[ds->n_classes++] = l.names[c], l.names[c] = NULL;
        }
        if (!s && ds->n_classes < 2)
            s = aibox_fail(err, AIBOX_E_INVALID, "%s: %d class folder(s) with usable recordings (%d skipped); need 2 or more",
                           dir, ds->n_classes, ds->n_skips);
    }
    if (!s) {
        /* the draw seeds each class from its name (cls indexes the listing) */
        char **names = malloc(sizeof *names * (size_t)(l.n_names ? l.n_names : 1));
        if (!names) s = aibox_fail(err, AIBOX_E_NOMEM, "sound dataset: out of memory");
        for (int c = 0; !s && c < l.n_names; c++) names[c] = ds->label_of[c] >= 0 ? ds->classes[ds->label_of[c]] : "";
        if (!s) s = draw_split(ds, names, l.n_names, err);
        free(names);
    }
    if (!s) s = assemble(ds, err);
    if (!s) s = standardise(ds, dir, err);
    for (int i = 0; fe && i < threads; i++) aibox_sound_frontend_free(&fe[i]);
    free(fe);
    aibox_pool_free(&pool);
    for (int i = 0; i < l.n_names; i++) free(l.names[i]);
    free(l.names);
    for (int i = 0; i < AIBOX_SPLIT_COUNT; i++) free(sub[i]);
    if (s) {
        aibox_sound_dataset_free(&ds);
        return s;
    }
    *out = ds;
    return AIBOX_OK;
}

void aibox_sound_dataset_free(aibox_sound_dataset **pds)
{
    if (!pds || !*pds) return;
    aibox_sound_dataset *ds = *pds;
    for (int i = 0; i < ds->n_recs; i++) free(ds->recs[i].path), free(ds->recs[i].reason), free(ds->recs[i].win);
    free(ds->recs);
    for (int i = 0; i < ds->n_classes; i++) free(ds->classes[i]);
    free(ds->classes);
    free(ds->label_of);
    for (int i = 0; i < AIBOX_SPLIT_COUNT; i++) free(ds->sp[i].rec), free(ds->sp[i].x), free(ds->sp[i].label);
    for (int i = 0; i < ds->n_skips; i++) free(ds->skips[i].path), free(ds->skips[i].reason);
    free(ds->skips);
    free(ds);
    *pds = NULL;
}

/* ------------------------------------------------------------------ accessors */
static const split_data *split_of(const aibox_sound_dataset *ds, aibox_split split)
{
    return ds && (unsigned)split < AIBOX_SPLIT_COUNT ? &ds->sp[split] : NULL;
}

const aibox_sound_opts *aibox_sound_dataset_opts(const aibox_sound_dataset *ds) { return ds ? &ds->sound : NULL; }
int aibox_sound_dataset_class_count(const aibox_sound_dataset *ds) { return ds ? ds->n_classes : 0; }
const char *aibox_sound_dataset_class_name(const aibox_sound_dataset *ds, int c)
{
    return ds && c >= 0 && c < ds->n_classes ? ds->classes[c] : NULL;
}
const char *const *aibox_sound_dataset_class_names(const aibox_sound_dataset *ds)
{
    return ds ? (const char *const *)ds->classes : NULL;
}
int aibox_sound_dataset_recordings(const aibox_sound_dataset *ds, aibox_split split)
{
    const split_data *d = split_of(ds, split);
    return d ? d->n_rec : 0;
}

static const rec *rec_of(const aibox_sound_dataset *ds, aibox_split split, int i)
{
    const split_data *d = split_of(ds, split);
    return d && i >= 0 && i < d->n_rec ? &ds->recs[d->rec[i]] : NULL;
}

const char *aibox_sound_dataset_recording_path(const aibox_sound_dataset *ds, aibox_split split, int i)
{
    const rec *r = rec_of(ds, split, i);
    return r ? r->path : NULL;
}
int aibox_sound_dataset_recording_label(const aibox_sound_dataset *ds, aibox_split split, int i)
{
    const rec *r = rec_of(ds, split, i);
    return r ? ds->label_of[r->cls] : -1;
}
void aibox_sound_dataset_recording_windows(const aibox_sound_dataset *ds, aibox_split split, int i, long *first,
                                           long *count)
{
    const rec *r = rec_of(ds, split, i);
    if (first) *first = r ? r->first : 0;
    if (count) *count = r ? r->count : 0;
}
long aibox_sound_dataset_windows(const aibox_sound_dataset *ds, aibox_split split)
{
    const split_data *d = split_of(ds, split);
    return d ? d->n_win : 0;
}
const float *aibox_sound_dataset_window(const aibox_sound_dataset *ds, aibox_split split, long j, int *label)
{
    const split_data *d = split_of(ds, split);
    if (!d || j < 0 || j >= d->n_win) {
        if (label) *label = -1;
        return NULL;
    }
    if (label) *label = d->label[j];
    return d->x + (size_t)j * ds->size;
}
int aibox_sound_dataset_skipped_count(const aibox_sound_dataset *ds) { return ds ? ds->n_skips : 0; }
aibox_status aibox_sound_dataset_skipped(const aibox_sound_dataset *ds, int i, const char **path, const char **reason)
{
    if (!ds || i < 0 || i >= ds->n_skips) return AIBOX_E_NOTFOUND;
    if (path) *path = ds->skips[i].path;
    if (reason) *reason = ds->skips[i].reason;
    return AIBOX_OK;
}

/* ------------------------------------------------------------------ batches */
struct aibox_sound_batches {
    const aibox_sound_dataset *ds;
    aibox_split split;
    int batch, shuffle;
    uint64_t seed;
    long n, pos;
    long *order;
    float *x;    /* batch x size: a contiguous copy of the batch's windows */
    int *labels;
};

aibox_status aibox_sound_batches_create(aibox_sound_batches **out, const aibox_sound_dataset *ds, aibox_split split,
                                        int batch, int shuffle, uint64_t seed, aibox_error *err)
{
    if (!out || !ds) return aibox_fail(err, AIBOX_E_INVALID, "sound batches: NULL argument");
    *out = NULL;
    if ((unsigned)split >= AIBOX_SPLIT_COUNT) return aibox_fail(err, AIBOX_E_INVALID, "sound batches: unknown split %d", (int)split);
    if (batch < 1 || batch > 1000000) return aibox_fail(err, AIBOX_E_INVALID, "sound batches: batch %d must be 1 .. 1000000", batch);
    const long n = ds->sp[split].n_win;
    /* the shuffle draws below 2^32 */
    if (n > 0x7fffffffL) return aibox_fail(err, AIBOX_E_UNSUPPORTED, "sound batches: %ld windows are too many", n);
    aibox_sound_batches *b = calloc(1, sizeof *b);
    size_t xs;
    if (!b || !aibox_mul_ok((size_t)batch, ds->size, &xs)) {
        free(b);
        return aibox_fail(err, AIBOX_E_NOMEM, "sound batches: out of memory");
    }
    b->ds = ds, b->split = split, b->batch = batch, b->shuffle = shuffle != 0, b->seed = seed, b->n = n;
    b->order = malloc(sizeof *b->order * (size_t)(n ? n : 1));
    b->x = aibox_alloc(sizeof(float) * xs);
    b->labels = malloc(sizeof *b->labels * (size_t)batch);
    if (!b->order || !b->x || !b->labels) {
        aibox_sound_batches_free(&b);
        return aibox_fail(err, AIBOX_E_NOMEM, "sound batches: out of memory for batches of %d", batch);
    }
    for (long i = 0; i < n; i++) b->order[i] = i;
    b->pos = n; /* nothing until the first epoch begins */
    *out = b;
    return AIBOX_OK;
}

void aibox_sound_batches_free(aibox_sound_batches **b)
{
    if (!b || !*b) return;
    free((*b)->order), aibox_free((*b)->x), free((*b)->labels);
    free(*b);
    *b = NULL;
}

static aibox_status batches_begin(void *user, int epoch, aibox_error *err)
{
    aibox_sound_batches *b = user;
    if (!b) return aibox_fail(err, AIBOX_E_INVALID, "sound batches: NULL source");
    for (long i = 0; i < b->n; i++) b->order[i] = i;
    if (b->shuffle) { /* Fisher-Yates from (seed, epoch): any epoch, in any order, the same */
        aibox_rng r;
        aibox_rng_seed(&r, aibox_seed_mix(b->seed, (uint32_t)epoch, TAG_SHUFFLE));
        for (long i = b->n - 1; i > 0; i--) {
            long j = (long)aibox_rng_below(&r, (uint32_t)i + 1), t = b->order[i];
            b->order[i] = b->order[j], b->order[j] = t;
        }
    }
    b->pos = 0;
    return AIBOX_OK;
}

static aibox_status batches_next(void *user, const float **x, const int **labels, int *n, aibox_error *err)
{
    aibox_sound_batches *b = user;
    if (!b || !x || !labels || !n) return aibox_fail(err, AIBOX_E_INVALID, "sound batches: NULL argument");
    const split_data *d = &b->ds->sp[b->split];
    const size_t size = b->ds->size;
    int k = 0;
    for (; k < b->batch && b->pos < b->n; k++, b->pos++) {
        const long j = b->order[b->pos];
        memcpy(b->x + (size_t)k * size, d->x + (size_t)j * size, sizeof(float) * size);
        b->labels[k] = d->label[j];
    }
    *x = b->x, *labels = b->labels, *n = k;
    return AIBOX_OK;
}

static aibox_status batches_describe(void *user, aibox_model *m, aibox_error *err)
{
    const aibox_sound_batches *b = user;
    if (!b || !m) return aibox_fail(err, AIBOX_E_INVALID, "sound batches: NULL argument");
    aibox_status s = aibox_sound_opts_to_model(&b->ds->sound, m, err);
    if (s) return s;
    return aibox_model_set_meta_strs(m, AIBOX_META_CLASS_NAMES, b->ds->n_classes,
                                     (const char *const *)b->ds->classes, err);
}

aibox_batch_source aibox_sound_batches_source(aibox_sound_batches *b)
{
    aibox_batch_source src = {b, b ? b->n : 0, batches_begin, batches_next, batches_describe};
    return src;
}

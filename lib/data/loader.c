/* The background loader: T pthreads claim samples one at a time in the
 * epoch's order and write them, augmented and preprocessed, into one of three
 * rotating batch buffers; the caller takes finished batches in order. What a
 * sample becomes depends only on (seed, epoch, sample index), so thread count
 * and timing never change a batch. Also the augmentation preview. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/pool.h"
#include "data/data.h"

#define SLOTS 3 /* one held by the caller, two being prepared */
#define MAX_THREADS 256
#define TAG_SHUFFLE 0x73687566666c65ULL /* "shuffle" */
#define TAG_AUGMENT 0x6175676d656e74ULL /* "augment" */

/* ------------------------------------------------------------ seeding */

void aibox_data_shuffle_rng(aibox_rng *r, uint64_t seed, int epoch)
{
    aibox_rng_seed(r, aibox_seed_mix(seed, (uint32_t)epoch, TAG_SHUFFLE));
}

void aibox_data_sample_rng(aibox_rng *r, uint64_t seed, int epoch, int index)
{
    aibox_rng_seed(r, aibox_seed_mix(seed, ((uint64_t)(uint32_t)epoch << 32) | (uint32_t)index, TAG_AUGMENT));
}

/* ------------------------------------------------------------ loader */

struct aibox_loader {
    const aibox_dataset *ds;
    aibox_split split;
    aibox_preproc pp;
    int batch, shuffle, n_threads;
    unsigned mask;
    float p;
    uint64_t seed;
    int n, n_batches; /* this rank's samples per epoch (all of the split unless sharded) */
    int n_all, rank, ranks; /* the split's samples; the shard (aibox_loader_shard) */
    size_t sample_floats;
    float *x[SLOTS];
    int *labels[SLOTS];
    int *order; /* epoch position -> sample index */
    pthread_t *tid;
    int started;

    /* everything below is guarded by mu */
    pthread_mutex_t mu;
    pthread_cond_t work;  /* workers: a sample may be claimed, or stop */
    pthread_cond_t ready; /* caller: a sample finished (batch complete, idle, error) */
    int epoch;
    int next_pos;      /* next epoch position to claim */
    int take;          /* batch the caller takes next */
    int holding;       /* the caller holds batch take - 1 */
    int paused;        /* aibox_loader_epoch is draining the workers */
    int inflight;      /* samples being prepared */
    int done[SLOTS];   /* finished samples of the batch in each slot */
    int stop;
    aibox_error error; /* first failure of this epoch (code != OK) */
};

static int batch_size(const aibox_loader *ld, int b) { return AIBOX_MIN(ld->batch, ld->n - b * ld->batch); }

static int can_claim(const aibox_loader *ld)
{
    if (ld->paused || ld->next_pos >= ld->n) return 0;
    /* a slot is free unless the caller holds it or an earlier batch fills it */
    return ld->next_pos / ld->batch < ld->take + SLOTS - ld->holding;
}

/* One sample into its row of its batch's slot. */
static aibox_status prepare(aibox_loader *ld, int epoch, int pos, aibox_error *err)
{
    const int idx = ld->order[pos], b = pos / ld->batch, slot = b % SLOTS, row = pos % ld->batch;
    float *out = ld->x[slot] + (size_t)row * ld->sample_floats;
    ld->labels[slot][row] = aibox_dataset_label(ld->ds, ld->split, idx);
    aibox_status s;
    if (ld->mask) {
        aibox_image img;
        aibox_rng r;
        if ((s = aibox_dataset_image(ld->ds, ld->split, idx, &img, err))) return s;
        aibox_data_sample_rng(&r, ld->seed, epoch, idx);
        s = aibox_augment_apply(&img, ld->mask, ld->p, &r, err);
        if (!s) s = aibox_preprocess(&ld->pp, &img, out, err);
        aibox_image_free(&img);
        return s;
    }
    const aibox_image *ref; /* no copy: preprocessing only reads */
    aibox_image tmp;
    s = aibox_dataset_image_ref(ld->ds, ld->split, idx, &ref, &tmp, err);
    if (!s) s = aibox_preprocess(&ld->pp, ref, out, err);
    aibox_image_free(&tmp);
    return s;
}

static void *worker(void *arg)
{
    aibox_loader *ld = arg;
    pthread_mutex_lock(&ld->mu);
    for (;;) {
        while (!ld->stop && !can_claim(ld)) pthread_cond_wait(&ld->work, &ld->mu);
        if (ld->stop) break;
        const int pos = ld->next_pos++, epoch = ld->epoch;
        ld->inflight++;
        pthread_mutex_unlock(&ld->mu);

        aibox_error e = {0};
        aibox_status s = prepare(ld, epoch, pos, &e);

        pthread_mutex_lock(&ld->mu);
        ld->inflight--;
        if (s && !ld->error.code) {
            ld->error = e;
            ld->error.code = s;
        }
        const int b = pos / ld->batch;
        /* a failed sample still counts, so the caller never waits forever */
        if (++ld->done[b % SLOTS] == batch_size(ld, b) || s || ld->inflight == 0) pthread_cond_broadcast(&ld->ready);
    }
    pthread_mutex_unlock(&ld->mu);
    return NULL;
}

/* Sets the epoch's order and resets the batch bookkeeping (under mu, with
 * no sample in flight). */
static void reset_epoch(aibox_loader *ld, int epoch)
{
    ld->epoch = epoch;
    for (int i = 0; i < ld->n_all; i++) ld->order[i] = i;
    if (ld->shuffle) {
        aibox_rng r;
        aibox_data_shuffle_rng(&r, ld->seed, epoch);
        for (int i = ld->n_all - 1; i > 0; i--) {
            int j = (int)aibox_rng_below(&r, (uint32_t)i + 1), t = ld->order[i];
            ld->order[i] = ld->order[j], ld->order[j] = t;
        }
    }
    if (ld->ranks > 1) { /* this rank's slice of every global batch, in order */
        const int g = ld->batch * ld->ranks;
        int k = 0;
        for (int p = 0; p < ld->n_all; p++)
            if ((p % g) / ld->batch == ld->rank) ld->order[k++] = ld->order[p];
    }
    ld->next_pos = ld->take = ld->holding = 0;
    memset(ld->done, 0, sizeof ld->done);
    memset(&ld->error, 0, sizeof ld->error);
}

aibox_status aibox_loader_create(aibox_loader **out, const aibox_dataset *ds, const aibox_preproc *pp,
                                 const aibox_loader_opts *opts, aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "loader: NULL argument");
    *out = NULL;
    aibox_loader_opts o = opts ? *opts : (aibox_loader_opts){0};
    aibox_split split = o.split;
    int batch = o.batch ? o.batch : 32, shuffle = o.shuffle, threads = o.threads;
    unsigned augment = o.augment;
    float aug_p = o.aug_p;
    uint64_t seed = o.seed;
    if (!ds || !pp) return aibox_fail(err, AIBOX_E_INVALID, "loader: NULL argument");
    if ((unsigned)split >= AIBOX_SPLIT_COUNT) return aibox_fail(err, AIBOX_E_INVALID, "loader: unknown split %d", (int)split);
    static const char *const split_names[AIBOX_SPLIT_COUNT] = {"training", "validation", "test"};
    const int n = aibox_dataset_count(ds, split);
    if (n < 1)
        return aibox_fail(err, AIBOX_E_INVALID, "%s: the %s split has no images", aibox_dataset_dir(ds),
                          split_names[split]);
    if (pp->channels < 1 || pp->channels > 4 || pp->width < 1 || pp->height < 1)
        return aibox_fail(err, AIBOX_E_INVALID, "loader: input %dx%dx%d is not an image shape", pp->channels,
                          pp->height, pp->width);
    for (int c = 0; c < pp->channels; c++)
        if (!(pp->std[c] > 0)) return aibox_fail(err, AIBOX_E_INVALID, "loader: std[%d] must be > 0", c);
    if (batch < 1) return aibox_fail(err, AIBOX_E_INVALID, "loader: batch %d must be at least 1", batch);
    if (augment & ~AIBOX_AUG_ALL)
        return aibox_fail(err, AIBOX_E_INVALID, "loader: augmentation mask 0x%x has unknown bits", augment);
    if (!(aug_p >= 0.0f && aug_p <= 1.0f))
        return aibox_fail(err, AIBOX_E_INVALID, "loader: augmentation probability %g must be in [0, 1]", (double)aug_p);
    if (threads == 0) threads = aibox_default_threads();
    if (threads < 1 || threads > MAX_THREADS)
        return aibox_fail(err, AIBOX_E_INVALID, "loader: threads %d (1 to %d)", threads, MAX_THREADS);
    size_t sf, bytes;
    if (!aibox_mul_ok((size_t)pp->channels * pp->width, (size_t)pp->height, &sf) ||
        !aibox_mul_ok(sf * sizeof(float), (size_t)batch, &bytes))
        return aibox_fail(err, AIBOX_E_INVALID, "loader: batch %d of %dx%dx%d is too large", batch, pp->channels,
                          pp->height, pp->width);

    aibox_loader *ld = calloc(1, sizeof *ld);
    if (!ld) return aibox_fail(err, AIBOX_E_NOMEM, "loader: out of memory");
    ld->ds = ds, ld->split = split, ld->pp = *pp, ld->batch = batch, ld->shuffle = shuffle != 0;
    ld->mask = split == AIBOX_SPLIT_TRAIN ? augment : 0; /* validation and test are never augmented */
    ld->p = aug_p, ld->seed = seed, ld->n_threads = threads;
    ld->n = ld->n_all = n, ld->n_batches = (n + batch - 1) / batch, ld->sample_floats = sf;
    ld->rank = 0, ld->ranks = 1;
    pthread_mutex_init(&ld->mu, NULL);
    pthread_cond_init(&ld->work, NULL);
    pthread_cond_init(&ld->ready, NULL);
    int ok = (ld->order = malloc((size_t)n * sizeof *ld->order)) != NULL;
    for (int s = 0; ok && s < SLOTS; s++)
        ok = (ld->x[s] = aibox_alloc(bytes)) && (ld->labels[s] = malloc((size_t)batch * sizeof(int)));
    ok = ok && (ld->tid = calloc((size_t)threads, sizeof *ld->tid));
    if (!ok) {
        aibox_loader_free(&ld);
        return aibox_fail(err, AIBOX_E_NOMEM, "loader: out of memory for %d batches of %d", SLOTS, batch);
    }
    reset_epoch(ld, 0);
    for (; ld->started < threads; ld->started++)
        if (pthread_create(&ld->tid[ld->started], NULL, worker, ld)) {
            const int started = ld->started;
            aibox_loader_free(&ld); /* joins the ones that did start */
            return aibox_fail(err, AIBOX_E_NOMEM, "loader: cannot start thread %d", started + 1);
        }
    *out = ld;
    return AIBOX_OK;
}

aibox_status aibox_loader_epoch(aibox_loader *ld, int epoch, aibox_error *err)
{
    if (!ld) return aibox_fail(err, AIBOX_E_INVALID, "loader: NULL argument");
    if (epoch < 0) return aibox_fail(err, AIBOX_E_INVALID, "loader: epoch %d must be >= 0", epoch);
    pthread_mutex_lock(&ld->mu);
    ld->paused = 1; /* no new claims; wait for the samples in flight */
    while (ld->inflight > 0) pthread_cond_wait(&ld->ready, &ld->mu);
    reset_epoch(ld, epoch);
    ld->paused = 0;
    pthread_cond_broadcast(&ld->work);
    pthread_mutex_unlock(&ld->mu);
    return AIBOX_OK;
}

/* Samples of rank r of `ranks` (local batch b) among n: the full global
 * batches' b each, then its part of the last one. */
static int shard_count(int n, int b, int r, int ranks)
{
    const long g = (long)b * ranks, full = n / g, rest = n - full * g;
    long mine = rest - (long)r * b;
    mine = mine < 0 ? 0 : mine > b ? b : mine;
    return (int)(full * b + mine);
}

aibox_status aibox_loader_shard(aibox_loader *ld, int rank, int size, aibox_error *err)
{
    if (!ld) return aibox_fail(err, AIBOX_E_INVALID, "loader: NULL argument");
    if (size < 1 || rank < 0 || rank >= size)
        return aibox_fail(err, AIBOX_E_INVALID, "loader: rank %d of %d is not a shard", rank, size);
    pthread_mutex_lock(&ld->mu);
    ld->paused = 1;
    while (ld->inflight > 0) pthread_cond_wait(&ld->ready, &ld->mu);
    ld->rank = rank, ld->ranks = size;
    ld->n = shard_count(ld->n_all, ld->batch, rank, size);
    ld->n_batches = (ld->n + ld->batch - 1) / ld->batch;
    reset_epoch(ld, ld->epoch);
    ld->paused = 0;
    pthread_cond_broadcast(&ld->work);
    pthread_mutex_unlock(&ld->mu);
    return AIBOX_OK;
}

aibox_status aibox_loader_next(aibox_loader *ld, const float **x, const int **labels, int *n, aibox_error *err)
{
    if (!ld || !x || !labels || !n) return aibox_fail(err, AIBOX_E_INVALID, "loader: NULL argument");
    *x = NULL, *labels = NULL, *n = 0;
    pthread_mutex_lock(&ld->mu);
    if (ld->holding) { /* the previous batch's slot is free again */
        ld->done[(ld->take - 1) % SLOTS] = 0;
        ld->holding = 0;
        pthread_cond_broadcast(&ld->work);
    }
    aibox_status s = AIBOX_OK;
    if (!ld->error.code && ld->take < ld->n_batches) {
        const int slot = ld->take % SLOTS, size = batch_size(ld, ld->take);
        while (!ld->error.code && ld->done[slot] < size) pthread_cond_wait(&ld->ready, &ld->mu);
        if (!ld->error.code) {
            *x = ld->x[slot], *labels = ld->labels[slot], *n = size;
            ld->holding = 1;
            ld->take++;
        }
    }
    if (ld->error.code) {
        s = ld->error.code;
        if (err) *err = ld->error;
    }
    pthread_mutex_unlock(&ld->mu);
    return s;
}

int aibox_loader_samples(const aibox_loader *ld) { return ld ? ld->n : 0; }
int aibox_loader_batches(const aibox_loader *ld) { return ld ? ld->n_batches : 0; }
int aibox_loader_threads(const aibox_loader *ld) { return ld ? ld->n_threads : 0; }

void aibox_loader_free(aibox_loader **pld)
{
    if (!pld || !*pld) return;
    aibox_loader *ld = *pld;
    pthread_mutex_lock(&ld->mu);
    ld->stop = 1;
    pthread_cond_broadcast(&ld->work);
    pthread_mutex_unlock(&ld->mu);
    for (int i = 0; i < ld->started; i++) pthread_join(ld->tid[i], NULL);
    pthread_mutex_destroy(&ld->mu);
    pthread_cond_destroy(&ld->work);
    pthread_cond_destroy(&ld->ready);
    for (int s = 0; s < SLOTS; s++) {
        aibox_free(ld->x[s]);
        free(ld->labels[s]);
    }
    free(ld->order);
    free(ld->tid);
    free(ld);
    *pld = NULL;
}

/* ------------------------------------------------------------ preview */

/* mkdir -p: each missing component in turn */
static aibox_status make_dirs(const char *dir, aibox_error *err)
{
    char *p = strdup(dir);
    if (!p) return aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", dir);
    aibox_status s = AIBOX_OK;
    for (char *q = p + 1;; q++) {
        if (*q != '/' && *q) continue;
        const char c = *q;
        *q = 0;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            s = aibox_fail(err, AIBOX_E_IO, "%s: cannot create the folder: %s", p, strerror(errno));
            break;
        }
        *q = c;
        if (!c) break;
    }
    free(p);
    struct stat st;
    if (!s && (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)))
        s = aibox_fail(err, AIBOX_E_IO, "%s: not a folder", dir);
    return s;
}

aibox_status aibox_dataset_preview_augment(const aibox_dataset *ds, int n, const char *dir, unsigned mask, float p,
                                           uint64_t seed, aibox_error *err)
{
    if (!ds || !dir) return aibox_fail(err, AIBOX_E_INVALID, "preview: NULL argument");
    if (n < 0) return aibox_fail(err, AIBOX_E_INVALID, "preview: count %d must be >= 0", n);
    if (mask & ~AIBOX_AUG_ALL) return aibox_fail(err, AIBOX_E_INVALID, "preview: augmentation mask 0x%x has unknown bits", mask);
    if (!(p >= 0.0f && p <= 1.0f))
        return aibox_fail(err, AIBOX_E_INVALID, "preview: augmentation probability %g must be in [0, 1]", (double)p);
    const int total = aibox_dataset_count(ds, AIBOX_SPLIT_TRAIN);
    if (n == 0) return AIBOX_OK;
    aibox_status s = make_dirs(dir, err);
    for (int k = 0; !s && k < n; k++) {
        /* spread over the split (so every class shows), wrapping when n > total */
        const int idx = n <= total ? (int)((long long)k * total / n) : k % total;
        aibox_image img;
        aibox_rng r;
        if ((s = aibox_dataset_image(ds, AIBOX_SPLIT_TRAIN, idx, &img, err))) break;
        aibox_data_sample_rng(&r, seed, k, idx);
        s = aibox_augment_apply(&img, mask, p, &r, err);
        char *path = NULL;
        const char *cls = aibox_dataset_class_name(ds, aibox_dataset_label(ds, AIBOX_SPLIT_TRAIN, idx));
        if (!s && asprintf(&path, "%s/%s_%d_%d.png", dir, cls, idx, k) < 0) {
            path = NULL;
            s = aibox_fail(err, AIBOX_E_NOMEM, "preview: out of memory");
        }
        if (!s) s = aibox_image_write_png(&img, path, err);
        free(path);
        aibox_image_free(&img);
    }
    return s;
}

/* ------------------------------------------------------------------ as a batch source */
static aibox_status source_begin(void *user, int epoch, aibox_error *err) { return aibox_loader_epoch(user, epoch, err); }

static aibox_status source_next(void *user, const float **x, const int **labels, int *n, aibox_error *err)
{
    return aibox_loader_next(user, x, labels, n, err);
}

static aibox_status source_describe(void *user, aibox_model *m, aibox_error *err)
{
    const aibox_loader *ld = user;
    aibox_status s = aibox_preproc_to_model(&ld->pp, m, err);
    if (s) return s;
    int k = aibox_dataset_class_count(ld->ds);
    return aibox_model_set_meta_strs(m, AIBOX_META_CLASS_NAMES, k, (const char *const *)aibox_dataset_class_names(ld->ds),
                                     err);
}

aibox_batch_source aibox_loader_source(aibox_loader *ld)
{
    aibox_batch_source b = {ld, ld ? ld->n : 0, source_begin, source_next, source_describe};
    return b;
}

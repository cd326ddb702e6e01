/* The training loop: epochs of softmax cross-entropy with an optimizer,
 * validation after each epoch, early stopping that restores the best
 * weights, resumable checkpoints, train.csv and metrics.json.
 *
 * Determinism: batches come from the source (seeded per epoch by the
 * loader), dropout is reseeded per epoch from (seed, epoch), and all work is
 * split over threads deterministically, so the same data, seed and thread
 * count give the same model, also across an interruption and --resume. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/atomic.h"
#include "io/model_io.h"
#include "nn/nn.h"

typedef struct {
    float loss, acc, val_loss, val_acc, lr;
    double seconds;
} epoch_row;

typedef struct {
    aibox_model *m;
    const aibox_train_opts *o;
    int classes;
    epoch_row *rows;
    int n_rows;
    float *best_params, *best_state; /* in-memory copy of the best epoch */
    char path[3][4096];              /* best, last, csv */
} trainer;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static uint64_t mix(uint64_t a, uint64_t b)
{
    uint64_t z = a ^ (b + 0x9e3779b97f4a7c15ULL + (a << 6) + (a >> 2));
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Index of the largest of k logits (the predicted class). */
static int argmax(const float *o, int k)
{
    int best = 0;
    for (int i = 1; i < k; i++)
        if (o[i] > o[best]) best = i;
    return best;
}

/* Validation in inference mode: mean loss, accuracy and confusion matrix
 * (rows = true class, columns = predicted). */
static aibox_status evaluate(aibox_ctx *ctx, const aibox_model *m, aibox_batch_source *val, int epoch, int classes,
                             float *loss, float *acc, long *confusion, aibox_error *err)
{
    aibox_status s = val->begin_epoch ? val->begin_epoch(val->user, epoch, err) : AIBOX_OK;
    double lsum = 0;
    long seen = 0, right = 0;
    if (confusion) memset(confusion, 0, sizeof(long) * classes * classes);
    while (!s) {
        const float *x;
        const int *y;
        int n;
        if ((s = val->next(val->user, &x, &y, &n, err)) || n == 0) break;
        if ((s = aibox_ctx_infer(ctx, m, x, n, err))) break;
        const float *out = aibox_ctx_output(ctx, NULL, NULL, NULL);
        lsum += (double)aibox_softmax_ce(n, classes, out, y, NULL, NULL) * n;
        for (int i = 0; i < n; i++) {
            int best = argmax(out + (size_t)i * classes, classes);
            right += best == y[i];
            if (confusion && y[i] >= 0 && y[i] < classes) confusion[y[i] * classes + best]++;
        }
        seen += n;
    }
    if (s) return s;
    if (!seen) return aibox_fail(err, AIBOX_E_INVALID, "validation: no samples");
    *loss = (float)(lsum / seen);
    *acc = (float)right / (float)seen;
    return AIBOX_OK;
}

/* The first non-finite value of n floats, or -1. */
static long long first_nonfinite(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return (long long)i;
    return -1;
}

/* Training stops at the first non-finite loss, gradient or weight: nothing
 * from that state is saved (the checkpoints keep the last good epoch). */
static aibox_status diverged(const trainer *t, const char *what, float value, int epoch, long step, aibox_error *err)
{
    char kept[4200] = "nothing was saved";
    if (t->o->out_dir && epoch > 0) snprintf(kept, sizeof kept, "%s keeps the state after epoch %d", t->path[1], epoch);
    else if (t->o->out_dir) snprintf(kept, sizeof kept, "%s keeps the initial weights", t->path[1]);
    return aibox_fail(err, AIBOX_E_STATE,
                      "train: %s became %s in epoch %d (step %ld): training diverged; lower the learning rate or "
                      "check the data. No model was saved from this state; %s",
                      what, isnan(value) ? "NaN" : value > 0 ? "+Inf" : "-Inf", epoch + 1, step + 1, kept);
}

static aibox_status write_csv(trainer *t, aibox_error *err)
{
    size_t cap = 128 + (size_t)t->n_rows * 160, len = 0;
    char *buf = malloc(cap);
    if (!buf) return aibox_fail(err, AIBOX_E_NOMEM, "train.csv: out of memory");
    len += (size_t)snprintf(buf, cap, "epoch,loss,acc,val_loss,val_acc,lr,seconds\n");
    for (int i = 0; i < t->n_rows; i++) {
        const epoch_row *r = &t->rows[i];
        len += (size_t)snprintf(buf + len, cap - len, "%d,%.6f,%.6f,%.6f,%.6f,%.6g,%.3f\n", i + 1, r->loss, r->acc,
                                r->val_loss, r->val_acc, r->lr, r->seconds);
    }
    aibox_status s = aibox_write_atomic(t->path[2], buf, len, err);
    free(buf);
    return s;
}

/* Reads back the rows of epochs already done when resuming. */
static void read_csv(trainer *t, int epochs_done)
{
    FILE *f = fopen(t->path[2], "r");
    if (!f) return;
    char line[512];
    if (!fgets(line, sizeof line, f)) epochs_done = 0;
    for (int i = 0; i < epochs_done && fgets(line, sizeof line, f); i++) {
        epoch_row *r = &t->rows[i];
        int e;
        if (sscanf(line, "%d,%f,%f,%f,%f,%f,%lf", &e, &r->loss, &r->acc, &r->val_loss, &r->val_acc, &r->lr,
                   &r->seconds) != 7)
            break;
        t->n_rows = i + 1;
    }
    fclose(f);
}

/* Per-class precision, recall and F1 from the confusion matrix, as JSON. */
static aibox_status write_metrics(trainer *t, const long *conf, float acc, float loss, aibox_error *err)
{
    int K = t->classes, n_names = 0;
    const char *const *names = NULL;
    aibox_model_get_meta_strs(t->m, "aibox.class_names", &n_names, &names);
    size_t cap = 4096 + (size_t)K * K * 24 + (size_t)K * 512, len = 0;
    char *b = malloc(cap);
    if (!b) return aibox_fail(err, AIBOX_E_NOMEM, "metrics.json: out of memory");
#define OUT(...) len += (size_t)snprintf(b + len, cap - len, __VA_ARGS__)
    /* JSON has no NaN or Infinity: a non-finite loss is written as null */
    char lbuf[32] = "null";
    if (isfinite(loss)) snprintf(lbuf, sizeof lbuf, "%.6f", loss);
    OUT("{\n  \"accuracy\": %.6f,\n  \"loss\": %s,\n  \"classes\": [", acc, lbuf);
    for (int k = 0; k < K; k++) {
        OUT("%s\"", k ? ", " : "");
        const char *nm = k < n_names ? names[k] : NULL;
        char fallback[16];
        if (!nm) snprintf(fallback, sizeof fallback, "%d", k), nm = fallback;
        for (const char *c = nm; *c && len + 8 < cap; c++) {
            if (*c == '"' || *c == '\\') OUT("\\%c", *c);
            else if ((unsigned char)*c < 0x20) OUT("\\u%04x", *c);
            else OUT("%c", *c);
        }
        OUT("\"");
    }
    OUT("],\n  \"confusion\": [");
    for (int i = 0; i < K; i++) {
        OUT("%s[", i ? ", " : "");
        for (int j = 0; j < K; j++) OUT("%s%ld", j ? ", " : "", conf[i * K + j]);
        OUT("]");
    }
    OUT("],\n  \"per_class\": [");
    for (int k = 0; k < K; k++) {
        long tp = conf[k * K + k], pred = 0, support = 0;
        for (int j = 0; j < K; j++) pred += conf[j * K + k], support += conf[k * K + j];
        double p = pred ? (double)tp / pred : 0, r = support ? (double)tp / support : 0;
        double f1 = p + r > 0 ? 2 * p * r / (p + r) : 0;
        OUT("%s\n    {\"precision\": %.6f, \"recall\": %.6f, \"f1\": %.6f, \"support\": %ld}", k ? "," : "", p, r, f1,
            support);
    }
    OUT("\n  ]\n}\n");
#undef OUT
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.json", t->o->out_dir);
    aibox_status s = aibox_write_atomic(path, b, len, err);
    free(b);
    return s;
}

static void set_ckpt_meta(aibox_model *m, int epochs_done, long step, float best_loss, int best_epoch, int bad,
                          double seconds, int perfect_epoch, double perfect_s)
{
    aibox_model_set_meta_int(m, "aibox.train.epochs_done", epochs_done, NULL);
    aibox_model_set_meta_int(m, "aibox.train.step", step, NULL);
    aibox_model_set_meta_float(m, "aibox.train.best_val_loss", best_loss, NULL);
    aibox_model_set_meta_int(m, "aibox.train.best_epoch", best_epoch, NULL);
    aibox_model_set_meta_int(m, "aibox.train.bad_epochs", bad, NULL);
    aibox_model_set_meta_float(m, "aibox.train.seconds", seconds, NULL);
    aibox_model_set_meta_int(m, "aibox.train.first_perfect_epoch", perfect_epoch, NULL);
    aibox_model_set_meta_float(m, "aibox.train.first_perfect_seconds", perfect_s, NULL);
}

static aibox_status save_last(trainer *t, aibox_optim *opt, aibox_error *err)
{
    float *m1, *m2;
    size_t n;
    aibox_optim_state(opt, &m1, &m2, &n, NULL);
    aibox_file_tensor ex[2] = {{"optim.m1", 1, {(int64_t)n}, m1}, {"optim.m2", 1, {(int64_t)n}, m2}};
    return aibox_model_save_ex(t->m, t->path[1], m2 ? 2 : 1, ex, err);
}

static int64_t meta_int(const aibox_model *m, const char *k, int64_t def)
{
    int64_t v;
    return aibox_model_get_meta_int(m, k, &v) == AIBOX_OK ? v : def;
}
static double meta_float(const aibox_model *m, const char *k, double def)
{
    double v;
    return aibox_model_get_meta_float(m, k, &v) == AIBOX_OK ? v : def;
}

/* Loads a last.aibox checkpoint into m and opt; returns the epochs done. */
static aibox_status resume(trainer *t, aibox_optim *opt, int *epochs_done, long *step, aibox_error *err)
{
    aibox_model *c = NULL;
    aibox_file *f = NULL;
    aibox_status s = aibox_model_load_ex(&c, t->o->resume, &f, err);
    if (s) return s;
    if (c->n_nodes != t->m->n_nodes || c->n_params != t->m->n_params || c->n_state != t->m->n_state) {
        s = aibox_fail(err, AIBOX_E_INVALID, "%s: checkpoint of another network (%zu parameters, this one %zu)",
                       t->o->resume, aibox_model_param_count(c), aibox_model_param_count(t->m));
        goto done;
    }
    memcpy(t->m->params, c->params, c->n_params * sizeof(float));
    memcpy(t->m->state, c->state, c->n_state * sizeof(float));
    /* carry the training metadata over so later checkpoints keep counting */
    aibox_meta_copy(&t->m->meta, &c->meta, NULL);
    float *m1, *m2;
    size_t n;
    aibox_optim_state(opt, &m1, &m2, &n, NULL);
    int nd;
    int64_t dims[4];
    const float *d1 = aibox_file_tensor_data(f, "optim.m1", &nd, dims);
    const float *d2 = aibox_file_tensor_data(f, "optim.m2", &nd, dims);
    if (!d1 || (m2 && !d2)) {
        s = aibox_fail(err, AIBOX_E_FORMAT, "%s: not a resumable checkpoint (no optimizer state of this kind)",
                       t->o->resume);
        goto done;
    }
    memcpy(m1, d1, n * sizeof(float));
    if (m2) memcpy(m2, d2, n * sizeof(float));
    *epochs_done = (int)meta_int(c, "aibox.train.epochs_done", -1);
    *step = (long)meta_int(c, "aibox.train.step", 0);
    if (*epochs_done < 0) s = aibox_fail(err, AIBOX_E_FORMAT, "%s: not a training checkpoint", t->o->resume);
done:
    aibox_file_free(&f);
    aibox_model_free(&c);
    return s;
}

aibox_status aibox_train(aibox_model *m, aibox_batch_source *train, int train_batch, aibox_batch_source *val,
                         const aibox_train_opts *o, int threads, aibox_train_result *res, aibox_error *err)
{
    if (!m || !train || !train->next || !o || train_batch < 1)
        return aibox_fail(err, AIBOX_E_INVALID, "train: NULL argument");
    if (!m->finished) return aibox_fail(err, AIBOX_E_STATE, "train: the model is not finished");
    if (o->epochs < 1) return aibox_fail(err, AIBOX_E_INVALID, "train: epochs must be >= 1");
    int oc, oh, ow, ic, ih, iw;
    aibox_model_node_shape(m, aibox_model_output(m), &oc, &oh, &ow);
    aibox_model_input_shape(m, &ic, &ih, &iw);
    int classes = oc * oh * ow;
    if (classes < 2) return aibox_fail(err, AIBOX_E_INVALID, "train: the model has %d outputs, need >= 2 classes", classes);

    trainer t = {.m = m, .o = o, .classes = classes};
    aibox_ctx *ctx = NULL, *vctx = NULL;
    aibox_optim *opt = NULL;
    long *conf = calloc((size_t)classes * classes, sizeof *conf);
    t.rows = calloc((size_t)o->epochs, sizeof *t.rows);
    t.best_params = aibox_alloc(m->n_params * sizeof(float));
    t.best_state = aibox_alloc((m->n_state ? m->n_state : 1) * sizeof(float));
    aibox_status s = AIBOX_OK;
    if (!conf || !t.rows || !t.best_params || !t.best_state) {
        s = aibox_fail(err, AIBOX_E_NOMEM, "train: out of memory");
        goto done;
    }
    if (o->out_dir) {
        struct stat st;
        if (stat(o->out_dir, &st) != 0 && mkdir(o->out_dir, 0777) != 0) {
            s = aibox_fail(err, AIBOX_E_IO, "%s: cannot create the output folder", o->out_dir);
            goto done;
        }
        const char *names[3] = {"best.aibox", "last.aibox", "train.csv"};
        for (int i = 0; i < 3; i++) snprintf(t.path[i], sizeof t.path[i], "%s/%s", o->out_dir, names[i]);
    }
    if ((s = aibox_ctx_create_ex(&ctx, m, AIBOX_TRAIN, train_batch, ic, ih, iw, o->seed, threads, err)) ||
        (val && (s = aibox_ctx_create_ex(&vctx, m, AIBOX_INFER, train_batch, ic, ih, iw, o->seed, threads, err))) ||
        (s = aibox_optim_create(&opt, m, &o->optim, err)))
        goto done;

    int start = 0, bad = 0, best_epoch = -1, perfect_epoch = -1;
    long step = 0;
    float best_loss = INFINITY, best_acc = NAN;
    double seconds = 0, perfect_s = -1;
    if (o->resume) {
        if ((s = resume(&t, opt, &start, &step, err))) goto done;
        aibox_optim_set_step(opt, step);
        best_loss = (float)meta_float(m, "aibox.train.best_val_loss", INFINITY);
        best_epoch = (int)meta_int(m, "aibox.train.best_epoch", -1);
        bad = (int)meta_int(m, "aibox.train.bad_epochs", 0);
        seconds = meta_float(m, "aibox.train.seconds", 0);
        perfect_epoch = (int)meta_int(m, "aibox.train.first_perfect_epoch", -1);
        perfect_s = meta_float(m, "aibox.train.first_perfect_seconds", -1);
        if (o->out_dir) read_csv(&t, start);
    }
    /* the best weights so far: the current ones, or best.aibox when resuming */
    memcpy(t.best_params, m->params, m->n_params * sizeof(float));
    if (m->n_state) memcpy(t.best_state, m->state, m->n_state * sizeof(float));
    if (o->resume && o->out_dir && best_epoch >= 0) {
        aibox_model *b = NULL;
        if (aibox_model_load(&b, t.path[0], NULL) == AIBOX_OK && b->n_params == m->n_params && b->n_state == m->n_state) {
            memcpy(t.best_params, b->params, m->n_params * sizeof(float));
            if (m->n_state) memcpy(t.best_state, b->state, m->n_state * sizeof(float));
        }
        aibox_model_free(&b);
    }
    if (o->out_dir && !o->resume) {
        set_ckpt_meta(m, 0, 0, best_loss, -1, 0, 0, -1, -1);
        if ((s = save_last(&t, opt, err))) goto done;
    }

    int stopped_early = 0, epoch;
    for (epoch = start; epoch < o->epochs; epoch++) {
        double t0 = now();
        aibox_optim_set_epoch(opt, epoch);
        aibox_ctx_reseed(ctx, mix(o->seed, (uint64_t)epoch));
        if (train->begin_epoch && (s = train->begin_epoch(train->user, epoch, err))) goto done;
        double lsum = 0;
        long seen = 0, right = 0;
        for (;;) {
            const float *x;
            const int *y;
            int n;
            if ((s = train->next(train->user, &x, &y, &n, err))) goto done;
            if (n == 0) break;
            if (n > train_batch) {
                s = aibox_fail(err, AIBOX_E_INVALID, "train: a batch of %d exceeds %d", n, train_batch);
                goto done;
            }
            float loss;
            aibox_model_zero_grad(m);
            if ((s = aibox_ctx_forward(ctx, m, x, n, err)) ||
                (s = aibox_ctx_loss_softmax_ce(ctx, y, o->class_weights, &loss, err)))
                goto done;
            if (!isfinite(loss)) {
                s = diverged(&t, "the loss", loss, epoch, step, err);
                goto done;
            }
            if ((s = aibox_ctx_backward(ctx, m, err))) goto done;
            /* a non-finite gradient never reaches the weights */
            long long g_bad = first_nonfinite(m->grads, m->n_params);
            if (g_bad >= 0) {
                s = diverged(&t, "a gradient", m->grads[g_bad], epoch, step, err);
                goto done;
            }
            if ((s = aibox_optim_step(opt, m, err))) goto done;
            step++;
            const float *out = aibox_ctx_output(ctx, NULL, NULL, NULL);
            for (int i = 0; i < n; i++) right += argmax(out + (size_t)i * classes, classes) == y[i];
            lsum += (double)loss * n;
            seen += n;
            if (o->on_progress) {
                aibox_train_progress p = {epoch, o->epochs, seen, train->samples, (float)(lsum / seen),
                                          (float)right / (float)seen, 0, NAN, NAN, aibox_optim_lr(opt), now() - t0, 0};
                o->on_progress(o->user, &p);
            }
            if (o->stop && *o->stop) {
                if (o->out_dir)
                    s = aibox_fail(err, AIBOX_E_INTERRUPTED,
                                   "interrupted in epoch %d; %s holds the state after epoch %d and resumes exactly",
                                   epoch + 1, t.path[1], epoch);
                else
                    s = aibox_fail(err, AIBOX_E_INTERRUPTED, "interrupted in epoch %d (no output folder: nothing saved)",
                                   epoch + 1);
                goto done;
            }
        }
        if (!seen) {
            s = aibox_fail(err, AIBOX_E_INVALID, "train: the training source gave no samples");
            goto done;
        }
        epoch_row *row = &t.rows[epoch];
        row->loss = (float)(lsum / seen);
        row->acc = (float)right / (float)seen;
        row->lr = aibox_optim_lr(opt);
        row->val_loss = row->val_acc = NAN;
        if (vctx && (s = evaluate(vctx, m, val, epoch, classes, &row->val_loss, &row->val_acc, NULL, err))) goto done;
        /* finite gradients can still push a weight past the float range (a huge step) */
        long long w_bad = first_nonfinite(m->params, m->n_params);
        if (w_bad >= 0 || (vctx && !isfinite(row->val_loss))) {
            s = diverged(&t, w_bad >= 0 ? "a weight" : "the validation loss",
                         w_bad >= 0 ? m->params[w_bad] : row->val_loss, epoch, step, err);
            goto done;
        }
        row->seconds = now() - t0;
        seconds += row->seconds;
        t.n_rows = epoch + 1;
        float monitored = vctx ? row->val_loss : row->loss;
        int improved = monitored < best_loss;
        if (improved) {
            best_loss = monitored, best_acc = row->val_acc, best_epoch = epoch, bad = 0;
            memcpy(t.best_params, m->params, m->n_params * sizeof(float));
            if (m->n_state) memcpy(t.best_state, m->state, m->n_state * sizeof(float));
        } else {
            bad++;
        }
        if (vctx && perfect_epoch < 0 && row->val_acc >= 1.0f) perfect_epoch = epoch, perfect_s = seconds;
        if (o->on_progress) {
            aibox_train_progress p = {epoch, o->epochs, seen, train->samples, row->loss, row->acc, 1, row->val_loss,
                                      row->val_acc, row->lr, row->seconds, improved};
            o->on_progress(o->user, &p);
        }
        if (o->out_dir) {
            set_ckpt_meta(m, epoch + 1, step, best_loss, best_epoch, bad, seconds, perfect_epoch, perfect_s);
            if (improved && (s = aibox_model_save(m, t.path[0], err))) goto done;
            if ((s = save_last(&t, opt, err)) || (s = write_csv(&t, err))) goto done;
        }
        if (o->patience > 0 && bad >= o->patience) {
            stopped_early = 1;
            epoch++;
            break;
        }
    }
    /* restore the best weights (the model that validated best) */
    if (vctx && best_epoch >= 0) {
        memcpy(m->params, t.best_params, m->n_params * sizeof(float));
        if (m->n_state) memcpy(m->state, t.best_state, m->n_state * sizeof(float));
    }
    if (vctx && o->out_dir) {
        float vl, va;
        if ((s = evaluate(vctx, m, val, epoch, classes, &vl, &va, conf, err)) ||
            (s = write_metrics(&t, conf, va, vl, err)))
            goto done;
    }
    if (res) {
        res->epochs_run = epoch;
        res->best_epoch = vctx ? best_epoch : -1;
        res->best_val_loss = vctx ? best_loss : NAN;
        res->best_val_acc = best_acc;
        res->first_perfect_epoch = perfect_epoch;
        res->first_perfect_seconds = perfect_s;
        res->seconds = seconds;
        res->stopped_early = stopped_early;
    }
done:
    aibox_optim_free(&opt);
    aibox_ctx_free(&ctx);
    aibox_ctx_free(&vctx);
    aibox_free(t.best_params);
    aibox_free(t.best_state);
    free(t.rows);
    free(conf);
    return s;
}

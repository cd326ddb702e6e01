/* The training loop: epochs of softmax cross-entropy with an optimizer,
 * validation after each epoch, early stopping that restores the best
 * weights, resumable checkpoints, train.csv and metrics.json.
 *
 * Determinism: batches come from the source (seeded per epoch by the
 * loader), dropout is reseeded per epoch from (seed, epoch), and all work is
 * split over threads deterministically, so the same data, seed and thread
 * count give the same model, also across an interruption and --resume.
 *
 * Across ranks (aibox_train_dist): each rank runs this loop on its shard;
 * after every step one small sum (samples, loss, right answers, stop and
 * divergence flags) and one sum of the gradients, each scaled by its rank's
 * share of the global batch, keep every rank's weights the same bits, so
 * every decision (divergence, early stopping, the best epoch) is taken alike
 * everywhere without further messages. Only rank 0 writes files. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/atomic.h"
#include "core/comm.h"
#include "io/model_io.h"
#include "nn/nn.h"
#include "train/train.h"

typedef struct {
    float loss, acc, val_loss, val_acc, lr;
    double seconds;
} epoch_row;

typedef struct {
    aibox_model *m;
    const aibox_train_opts *o;
    aibox_batch_source *train, *val;
    int classes, batch;
    aibox_ctx *ctx, *vctx; /* training; validation (inference) */
    aibox_optim *opt;
    epoch_row *rows;
    int n_rows;
    float *best_params, *best_state; /* in-memory copy of the best epoch */
    char path[3][4096];              /* best, last, csv */
    /* progress, saved in every checkpoint so a resumed run continues exactly */
    int epoch, bad, best_epoch, perfect_epoch;
    long step, seen; /* optimizer steps so far; samples of the last epoch */
    float best_loss, best_acc;
    double seconds, perfect_s;
    float *master; /* fake_quant_weights: the float weights while the rounded ones are in the model */
    const aibox_comm *comm; /* NULL: one process */
    int writer;             /* this rank writes out_dir (rank 0) */
    long total;             /* training samples per epoch over all ranks */
} trainer;

/* fake_quant_weights: on 1, the float weights of every convolution and
 * dense node go to t->master and the model gets them rounded to
 * per-channel symmetric int8; on 0 they come back. */
static void fake_quant(trainer *t, int on)
{
    aibox_model *m = t->m;
    if (!t->master) return;
    size_t at = 0;
    for (int i = 1; i < m->n_nodes; i++) {
        const aibox_node *nd = &m->nodes[i];
        int out = aibox_quant_out_channels(nd);
        if (!out) continue;
        float *w = m->params + nd->param_off[0];
        size_t n = nd->n_param[0];
        if (!on) {
            memcpy(w, t->master + at, n * sizeof *w);
            at += n;
            continue;
        }
        memcpy(t->master + at, w, n * sizeof *w);
        at += n;
        size_t per = n / (size_t)out;
        for (int o = 0; o < out; o++) aibox_quant_weights_row(w + (size_t)o * per, per, NULL);
    }
}

static size_t fake_quant_floats(const aibox_model *m)
{
    size_t n = 0;
    for (int i = 1; i < m->n_nodes; i++)
        if (aibox_quant_out_channels(&m->nodes[i])) n += m->nodes[i].n_param[0];
    return n;
}

double aibox_train_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

#define TAG_DROPOUT 0x64726f706f7574ULL /* "dropout" */

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
                             const aibox_comm *comm, float *loss, float *acc, long *confusion, aibox_error *err)
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
    if (aibox_comm_ranks(comm) > 1) { /* the global figures: every rank's shard */
        size_t k2 = confusion ? (size_t)classes * classes : 0;
        double *v = calloc(3 + k2, sizeof *v);
        if (!v) return aibox_fail(err, AIBOX_E_NOMEM, "validation: out of memory");
        v[0] = lsum, v[1] = (double)right, v[2] = (double)seen;
        for (size_t i = 0; i < k2; i++) v[3 + i] = (double)confusion[i];
        s = aibox_comm_sum_f64(comm, v, 3 + k2, err);
        lsum = v[0], right = (long)v[1], seen = (long)v[2];
        for (size_t i = 0; i < k2; i++) confusion[i] = (long)v[3 + i];
        free(v);
        if (s) return s;
    }
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
static aibox_status diverged(const trainer *t, const char *what, float value, aibox_error *err)
{
    int epoch = t->epoch;
    long step = t->step;
    char kept[4200] = "nothing was saved";
    if (!t->writer) snprintf(kept, sizeof kept, "rank 0 reports what was saved");
    else if (t->o->out_dir && epoch > 0) snprintf(kept, sizeof kept, "%s keeps the state after epoch %d", t->path[1], epoch);
    else if (t->o->out_dir) snprintf(kept, sizeof kept, "%s keeps the initial weights", t->path[1]);
    return aibox_fail(err, AIBOX_E_NONFINITE,
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
    aibox_model_get_meta_strs(t->m, AIBOX_META_CLASS_NAMES, &n_names, &names);
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
    aibox_file_tensor ex[2] = {{"optim.m1", 1, {(int64_t)n}, m1, AIBOX_FILE_F32},
                               {"optim.m2", 1, {(int64_t)n}, m2, AIBOX_FILE_F32}};
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

/* The step's figures over all ranks: [0] samples, [1] loss sum, [2] right
 * answers, [3] ranks whose loss is not finite, [4] ranks asked to stop. */
enum { ST_N, ST_LOSS, ST_RIGHT, ST_BAD, ST_STOP, ST_COUNT };

/* One step: zero the gradients, forward, loss, backward, (across ranks: the
 * step's figures and the gradients summed), optimizer step; nothing
 * non-finite reaches the weights. n may be 0 on a rank whose shard ended
 * (its gradients are zeros); st[ST_N] == 0 afterwards: the epoch is over
 * on every rank, and nothing was stepped. */
static aibox_status train_step(trainer *t, const float *x, const int *y, int n, double *st, aibox_error *err)
{
    aibox_model *m = t->m;
    aibox_model_zero_grad(m);
    aibox_status s;
    float loss = 0;
    int right = 0;
    if (n > 0) {
        fake_quant(t, 1);
        if ((s = aibox_ctx_forward(t->ctx, m, x, n, err)) ||
            (s = aibox_ctx_loss_softmax_ce(t->ctx, y, t->o->class_weights, &loss, err)) ||
            (s = isfinite(loss) ? aibox_ctx_backward(t->ctx, m, err) : AIBOX_OK)) {
            fake_quant(t, 0);
            return s;
        }
        fake_quant(t, 0); /* the rounded weights' gradients update the floats */
        const float *out = aibox_ctx_output(t->ctx, NULL, NULL, NULL);
        for (int i = 0; i < n; i++) right += argmax(out + (size_t)i * t->classes, t->classes) == y[i];
    }
    st[ST_N] = n, st[ST_LOSS] = (double)loss * n, st[ST_RIGHT] = right;
    st[ST_BAD] = n > 0 && !isfinite(loss), st[ST_STOP] = t->o->stop && *t->o->stop;
    if (aibox_comm_ranks(t->comm) > 1) {
        if ((s = aibox_comm_sum_f64(t->comm, st, ST_COUNT, err))) return s;
        if (st[ST_N] == 0) return AIBOX_OK;
        if (st[ST_BAD] > 0) return diverged(t, "the loss", n > 0 && !isfinite(loss) ? loss : NAN, err);
        /* each rank's gradient is of its own batch's mean loss: weighted by
         * its share, the sum is the global batch's mean loss's gradient */
        const float share = (float)(n / st[ST_N]);
        for (size_t i = 0; i < m->n_params; i++) m->grads[i] *= share;
        if ((s = aibox_comm_sum_f32(t->comm, m->grads, m->n_params, err))) return s;
    } else if (n == 0) {
        return AIBOX_OK;
    }
    if (st[ST_BAD] > 0) return diverged(t, "the loss", loss, err);
    long long bad = first_nonfinite(m->grads, m->n_params);
    if (bad >= 0) return diverged(t, "a gradient", m->grads[bad], err);
    if ((s = aibox_optim_step(t->opt, m, err))) return s;
    t->step++;
    return AIBOX_OK;
}

static void report(const trainer *t, long seen, float loss, float acc, const epoch_row *row, int improved, double t0)
{
    if (!t->o->on_progress) return;
    aibox_train_progress p = {t->epoch, t->o->epochs, seen, t->total, loss, acc, row != NULL,
                              row ? row->val_loss : NAN, row ? row->val_acc : NAN, aibox_optim_lr(t->opt),
                              row ? row->seconds : aibox_train_now() - t0, improved};
    t->o->on_progress(t->o->user, &p);
}

/* The batches of one epoch into row's loss and accuracy; honours the stop flag. */
static aibox_status run_epoch(trainer *t, epoch_row *row, double t0, aibox_error *err)
{
    const aibox_train_opts *o = t->o;
    aibox_status s;
    aibox_optim_set_epoch(t->opt, t->epoch);
    /* rank r > 0 draws its own dropout masks (rank 0 those of one process) */
    uint64_t dseed = aibox_seed_mix(o->seed, (uint64_t)t->epoch, TAG_DROPOUT);
    if (aibox_comm_rank(t->comm) > 0) dseed = aibox_seed_mix(dseed, (uint64_t)aibox_comm_rank(t->comm), TAG_DROPOUT);
    aibox_ctx_reseed(t->ctx, dseed);
    if (t->train->begin_epoch && (s = t->train->begin_epoch(t->train->user, t->epoch, err))) return s;
    double lsum = 0;
    long seen = 0, right = 0;
    for (;;) {
        const float *x;
        const int *y;
        int n;
        double st[ST_COUNT];
        if ((s = t->train->next(t->train->user, &x, &y, &n, err))) return s;
        if (n > t->batch) return aibox_fail(err, AIBOX_E_INVALID, "train: a batch of %d exceeds %d", n, t->batch);
        if ((s = train_step(t, x, y, n, st, err))) return s;
        if (st[ST_N] == 0) break;
        lsum += st[ST_LOSS];
        right += (long)st[ST_RIGHT];
        seen += (long)st[ST_N];
        report(t, seen, (float)(lsum / seen), (float)right / (float)seen, NULL, 0, t0);
        if (st[ST_STOP] > 0) {
            if (o->out_dir && t->writer)
                return aibox_fail(err, AIBOX_E_INTERRUPTED,
                                  "interrupted in epoch %d; %s holds the state after epoch %d and resumes exactly",
                                  t->epoch + 1, t->path[1], t->epoch);
            return aibox_fail(err, AIBOX_E_INTERRUPTED, "interrupted in epoch %d (no output folder: nothing saved)",
                              t->epoch + 1);
        }
    }
    if (!seen) return aibox_fail(err, AIBOX_E_INVALID, "train: the training source gave no samples");
    row->loss = (float)(lsum / seen);
    row->acc = (float)right / (float)seen;
    row->lr = aibox_optim_lr(t->opt);
    row->val_loss = row->val_acc = NAN;
    t->seen = seen;
    return AIBOX_OK;
}

/* After an epoch: validation, the best weights so far, the checkpoints.
 * *improved: the monitored loss reached a new best. */
static aibox_status end_epoch(trainer *t, epoch_row *row, double t0, int *improved, aibox_error *err)
{
    aibox_model *m = t->m;
    aibox_status s;
    /* batch norm's running statistics: each rank's mean */
    if (aibox_comm_ranks(t->comm) > 1 && m->n_state) {
        if ((s = aibox_comm_sum_f32(t->comm, m->state, m->n_state, err))) return s;
        const float inv = 1.0f / (float)aibox_comm_ranks(t->comm);
        for (size_t i = 0; i < m->n_state; i++) m->state[i] *= inv;
    }
    fake_quant(t, 1);
    s = t->vctx ? evaluate(t->vctx, m, t->val, t->epoch, t->classes, t->comm, &row->val_loss, &row->val_acc, NULL, err)
                : AIBOX_OK;
    fake_quant(t, 0);
    if (s)
        return s;
    /* finite gradients can still push a weight past the float range (a huge step) */
    long long w_bad = first_nonfinite(m->params, m->n_params);
    if (w_bad >= 0) return diverged(t, "a weight", m->params[w_bad], err);
    if (t->vctx && !isfinite(row->val_loss)) return diverged(t, "the validation loss", row->val_loss, err);
    row->seconds = aibox_train_now() - t0;
    t->seconds += row->seconds;
    t->n_rows = t->epoch + 1;
    float monitored = t->vctx ? row->val_loss : row->loss;
    *improved = monitored < t->best_loss;
    if (*improved) {
        t->best_loss = monitored, t->best_acc = row->val_acc, t->best_epoch = t->epoch, t->bad = 0;
        memcpy(t->best_params, m->params, m->n_params * sizeof(float));
        if (m->n_state) memcpy(t->best_state, m->state, m->n_state * sizeof(float));
    } else {
        t->bad++;
    }
    if (t->vctx && t->perfect_epoch < 0 && row->val_acc >= 1.0f) t->perfect_epoch = t->epoch, t->perfect_s = t->seconds;
    if (!t->o->out_dir || !t->writer) return AIBOX_OK;
    set_ckpt_meta(m, t->epoch + 1, t->step, t->best_loss, t->best_epoch, t->bad, t->seconds, t->perfect_epoch,
                  t->perfect_s);
    if (*improved && (s = aibox_model_save(m, t->path[0], err))) return s;
    if ((s = save_last(t, t->opt, err)) || (s = write_csv(t, err))) return s;
    const epoch_row *r = t->rows; /* results.png: the curves so far */
    return aibox_train_plot_results(t->o->out_dir, t->n_rows, &r->loss, &r->acc, &r->val_loss, &r->val_acc, sizeof *r,
                                    t->vctx ? t->best_epoch : -1, err);
}

/* Where a run starts: fresh, or from a last.aibox checkpoint (and the best
 * weights from best.aibox beside it). */
static aibox_status start(trainer *t, aibox_error *err)
{
    aibox_model *m = t->m;
    const aibox_train_opts *o = t->o;
    aibox_status s;
    t->best_loss = INFINITY, t->best_acc = NAN, t->best_epoch = -1, t->perfect_epoch = -1, t->perfect_s = -1;
    if (o->resume) {
        if ((s = resume(t, t->opt, &t->epoch, &t->step, err))) return s;
        aibox_optim_set_step(t->opt, t->step);
        t->best_loss = (float)meta_float(m, "aibox.train.best_val_loss", INFINITY);
        t->best_epoch = (int)meta_int(m, "aibox.train.best_epoch", -1);
        t->bad = (int)meta_int(m, "aibox.train.bad_epochs", 0);
        t->seconds = meta_float(m, "aibox.train.seconds", 0);
        t->perfect_epoch = (int)meta_int(m, "aibox.train.first_perfect_epoch", -1);
        t->perfect_s = meta_float(m, "aibox.train.first_perfect_seconds", -1);
        if (o->out_dir && t->writer) read_csv(t, t->epoch);
    }
    /* the best weights so far: the current ones, or best.aibox when resuming */
    memcpy(t->best_params, m->params, m->n_params * sizeof(float));
    if (m->n_state) memcpy(t->best_state, m->state, m->n_state * sizeof(float));
    if (o->resume && o->out_dir && t->best_epoch >= 0) {
        aibox_model *b = NULL;
        if (aibox_model_load(&b, t->path[0], NULL) == AIBOX_OK && b->n_params == m->n_params && b->n_state == m->n_state) {
            memcpy(t->best_params, b->params, m->n_params * sizeof(float));
            if (m->n_state) memcpy(t->best_state, b->state, m->n_state * sizeof(float));
        }
        aibox_model_free(&b);
    }
    if (o->out_dir && !o->resume && t->writer) {
        set_ckpt_meta(m, 0, 0, t->best_loss, -1, 0, 0, -1, -1);
        if ((s = save_last(t, t->opt, err))) return s;
    }
    return AIBOX_OK;
}

/* The model that validated best, its metrics.json, and the result. */
static aibox_status finish(trainer *t, long *conf, int stopped_early, aibox_train_result *res, aibox_error *err)
{
    aibox_model *m = t->m;
    aibox_status s;
    if (t->vctx && t->best_epoch >= 0) {
        memcpy(m->params, t->best_params, m->n_params * sizeof(float));
        if (m->n_state) memcpy(m->state, t->best_state, m->n_state * sizeof(float));
    }
    if (t->vctx && t->o->out_dir) {
        float vl = NAN, va = NAN;
        fake_quant(t, 1);
        s = evaluate(t->vctx, m, t->val, t->epoch, t->classes, t->comm, &vl, &va, conf, err);
        fake_quant(t, 0);
        if (s || (t->writer && ((s = write_metrics(t, conf, va, vl, err)) ||
                                (s = aibox_train_plot_confusion(t->o->out_dir, m, conf, t->classes, err)))))
            return s;
    }
    if (res) {
        res->epochs_run = t->epoch;
        res->best_epoch = t->vctx ? t->best_epoch : -1;
        res->best_val_loss = t->vctx ? t->best_loss : NAN;
        res->best_val_acc = t->best_acc;
        res->first_perfect_epoch = t->perfect_epoch;
        res->first_perfect_seconds = t->perfect_s;
        res->seconds = t->seconds;
        res->stopped_early = stopped_early;
    }
    return AIBOX_OK;
}

aibox_status aibox_train(aibox_model *m, aibox_batch_source *train, int train_batch, aibox_batch_source *val,
                         const aibox_train_opts *o, int threads, aibox_train_result *res, aibox_error *err)
{
    return aibox_train_dist(m, train, train_batch, val, o, NULL, threads, res, err);
}

aibox_status aibox_train_dist(aibox_model *m, aibox_batch_source *train, int train_batch, aibox_batch_source *val,
                              const aibox_train_opts *o, const aibox_comm *comm, int threads, aibox_train_result *res,
                              aibox_error *err)
{
    if (!m || !train || !train->next || !o || train_batch < 1)
        return aibox_fail(err, AIBOX_E_INVALID, "train: NULL argument");
    aibox_status s = aibox_comm_check(comm, err);
    if (s) return s;
    if (aibox_comm_ranks(comm) == 1) comm = NULL;
    if (!m->finished) return aibox_fail(err, AIBOX_E_STATE, "train: the model is not finished");
    if (o->epochs < 1) return aibox_fail(err, AIBOX_E_INVALID, "train: epochs must be >= 1");
    int oc, oh, ow;
    aibox_model_node_shape(m, aibox_model_output(m), &oc, &oh, &ow);
    int classes = oc * oh * ow;
    if (classes < 2) return aibox_fail(err, AIBOX_E_INVALID, "train: the model has %d outputs, need >= 2 classes", classes);

    trainer t = {.m = m, .o = o, .train = train, .val = val, .classes = classes, .batch = train_batch, .comm = comm,
                 .writer = aibox_comm_rank(comm) == 0, .total = train->samples};
    long *conf = calloc((size_t)classes * classes, sizeof *conf);
    t.rows = calloc((size_t)o->epochs, sizeof *t.rows);
    t.best_params = aibox_alloc(m->n_params * sizeof(float));
    t.best_state = aibox_alloc((m->n_state ? m->n_state : 1) * sizeof(float));
    if (o->fake_quant_weights) t.master = aibox_alloc((fake_quant_floats(m) + 1) * sizeof(float));
    if (!conf || !t.rows || !t.best_params || !t.best_state || (o->fake_quant_weights && !t.master)) {
        s = aibox_fail(err, AIBOX_E_NOMEM, "train: out of memory");
        goto done;
    }
    if (o->out_dir && t.writer) {
        struct stat st;
        if (stat(o->out_dir, &st) != 0 && mkdir(o->out_dir, 0777) != 0) {
            s = aibox_fail(err, AIBOX_E_IO, "%s: cannot create the output folder", o->out_dir);
            goto done;
        }
        const char *names[3] = {"best.aibox", "last.aibox", "train.csv"};
        for (int i = 0; i < 3; i++) snprintf(t.path[i], sizeof t.path[i], "%s/%s", o->out_dir, names[i]);
    }
    aibox_ctx_opts co = {.mode = AIBOX_TRAIN, .max_batch = train_batch, .threads = threads, .seed = o->seed};
    if ((s = aibox_ctx_create(&t.ctx, m, &co, err))) goto done;
    co.mode = AIBOX_INFER;
    if ((val && (s = aibox_ctx_create(&t.vctx, m, &co, err))) || (s = aibox_optim_create(&t.opt, m, &o->optim, err)))
        goto done;
    aibox_optim_set_ctx(t.opt, t.ctx); /* steps over the training context's threads */
    /* the data's preprocessing and class names go into the model before anything is saved */
    if (train->describe && (s = train->describe(train->user, m, err))) goto done;
    if ((s = start(&t, err))) goto done;
    if (comm) { /* rank 0's weights everywhere; the samples per epoch over all ranks */
        double total = (double)train->samples;
        if ((s = aibox_comm_bcast(comm, m->params, m->n_params * sizeof(float), 0, err)) ||
            (s = aibox_comm_bcast(comm, m->state, m->n_state * sizeof(float), 0, err)) ||
            (s = aibox_comm_sum_f64(comm, &total, 1, err)))
            goto done;
        t.total = (long)total;
        memcpy(t.best_params, m->params, m->n_params * sizeof(float));
        if (m->n_state) memcpy(t.best_state, m->state, m->n_state * sizeof(float));
    }

    int stopped_early = 0;
    for (; t.epoch < o->epochs; t.epoch++) {
        double t0 = aibox_train_now();
        epoch_row *row = &t.rows[t.epoch];
        int improved = 0;
        if ((s = run_epoch(&t, row, t0, err)) || (s = end_epoch(&t, row, t0, &improved, err))) goto done;
        report(&t, t.seen, row->loss, row->acc, row, improved, t0);
        if (o->patience > 0 && t.bad >= o->patience) {
            stopped_early = 1;
            t.epoch++;
            break;
        }
    }
    s = finish(&t, conf, stopped_early, res, err);
done:
    aibox_optim_free(&t.opt);
    aibox_ctx_free(&t.ctx);
    aibox_ctx_free(&t.vctx);
    aibox_free(t.best_params);
    aibox_free(t.best_state);
    aibox_free(t.master);
    free(t.rows);
    free(conf);
    return s;
}

/* SGD (momentum, Nesterov, L2 weight decay), Adam with Keras' update rule
 * (epsilon added to sqrt(v) after folding the bias corrections into the
 * step size, epsilon 1e-7), and AdamW (decoupled weight decay).
 * State lives in one block parallel to the model's parameter block. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

struct aibox_optim {
    aibox_optim_opts o;
    const aibox_model *model;
    size_t n;
    float *m, *v; /* momentum / first moment, second moment */
    long step;
    int epoch;
    float last_lr;
    aibox_lr_schedule schedule;
    void *user;
    aibox_pool *pool; /* aibox_optim_set_ctx: the context's (borrowed), else NULL (the caller's thread) */
    int threads;
    unsigned features; /* the context's, else aibox_cpu_features() at creation */
};

aibox_status aibox_optim_create(aibox_optim **out, const aibox_model *m, const aibox_optim_opts *opts,
                                aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "optimizer: NULL output pointer");
    *out = NULL;
    if (!m || !m->finished) return aibox_fail(err, AIBOX_E_STATE, "optimizer: the model is not finished");
    aibox_optim_opts o = opts ? *opts : (aibox_optim_opts){.kind = AIBOX_ADAM};
    if (o.kind != AIBOX_SGD && o.kind != AIBOX_ADAM && o.kind != AIBOX_ADAMW)
        return aibox_fail(err, AIBOX_E_INVALID, "optimizer: unknown kind %d", o.kind);
    if (o.lr == 0.0f) o.lr = o.kind == AIBOX_SGD ? 0.01f : 1e-3f;
    if (o.beta1 == 0.0f) o.beta1 = 0.9f;
    if (o.beta2 == 0.0f) o.beta2 = 0.999f;
    if (o.eps == 0.0f) o.eps = 1e-7f;
    if (!(o.lr > 0.0f) || !(o.momentum >= 0.0f && o.momentum < 1.0f) || !(o.beta1 > 0.0f && o.beta1 < 1.0f) ||
        !(o.beta2 > 0.0f && o.beta2 < 1.0f) || !(o.eps > 0.0f) || !(o.weight_decay >= 0.0f))
        return aibox_fail(err, AIBOX_E_INVALID, "optimizer: lr must be > 0, momentum/betas in [0, 1), eps > 0, decay >= 0");
    aibox_optim *op = calloc(1, sizeof *op);
    if (!op) return aibox_fail(err, AIBOX_E_NOMEM, "optimizer: out of memory");
    op->o = o;
    op->model = m;
    op->n = m->n_params;
    op->m = aibox_alloc(op->n * sizeof(float));
    op->v = o.kind == AIBOX_SGD ? NULL : aibox_alloc(op->n * sizeof(float));
    if (!op->m || (o.kind != AIBOX_SGD && !op->v)) {
        aibox_optim_free(&op);
        return aibox_fail(err, AIBOX_E_NOMEM, "optimizer: cannot allocate state for %zu parameters", m->n_params);
    }
    memset(op->m, 0, op->n * sizeof(float));
    if (op->v) memset(op->v, 0, op->n * sizeof(float));
    op->last_lr = o.lr;
    op->threads = 1;
    op->features = aibox_cpu_features();
    *out = op;
    return AIBOX_OK;
}

void aibox_optim_free(aibox_optim **po)
{
    if (!po || !*po) return;
    aibox_free((*po)->m);
    aibox_free((*po)->v);
    free(*po);
    *po = NULL;
}

void aibox_optim_set_schedule(aibox_optim *o, aibox_lr_schedule fn, void *user)
{
    if (o) o->schedule = fn, o->user = user;
}
void aibox_optim_set_ctx(aibox_optim *o, aibox_ctx *ctx)
{
    if (!o) return;
    o->pool = ctx ? aibox_ctx_pool(ctx) : NULL;
    o->threads = ctx ? aibox_ctx_threads(ctx) : 1;
    if (ctx) o->features = aibox_ctx_features(ctx);
}

void aibox_optim_set_epoch(aibox_optim *o, int epoch)
{
    if (o) o->epoch = epoch;
}
float aibox_optim_lr(const aibox_optim *o) { return o ? o->last_lr : 0.0f; }

static void sgd(const aibox_optim_opts *o, float lr, size_t n, float *p, const float *g, float *mom)
{
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] + o->weight_decay * p[i];
        if (o->momentum > 0.0f) {
            mom[i] = o->momentum * mom[i] + gi;
            gi = o->nesterov ? gi + o->momentum * mom[i] : mom[i];
        }
        p[i] -= lr * gi;
    }
}

/* One step over the flat parameter block, split into equal ranges (on 16
 * floats) over the tasks: every update is element-wise, so the bits do not
 * depend on the split. Each task walks the trainable nodes' parameter
 * ranges that meet its own. */
typedef struct {
    aibox_optim *o;
    aibox_model *m;
    float lr;
    aibox_adam_coef coef;
    aibox_adam_fn adam;
    int parts;
} step_job;

static void step_task(void *arg, int part, int thread)
{
    step_job *j = arg;
    aibox_optim *o = j->o;
    aibox_model *m = j->m;
    size_t units = (o->n + 15) / 16;
    size_t a = AIBOX_MIN(units * part / j->parts * 16, o->n), b = AIBOX_MIN(units * (part + 1) / j->parts * 16, o->n);
    for (int i = 1; i < m->n_nodes && a < b; i++) {
        const aibox_node *nd = &m->nodes[i];
        if (nd->frozen) continue;
        for (int k = 0; k < 2; k++) {
            size_t lo = AIBOX_MAX(nd->param_off[k], a), hi = AIBOX_MIN(nd->param_off[k] + nd->n_param[k], b);
            if (!nd->n_param[k] || hi <= lo) continue;
            if (o->o.kind == AIBOX_SGD)
                sgd(&o->o, j->lr, hi - lo, m->params + lo, m->grads + lo, o->m + lo);
            else
                j->adam(&j->coef, hi - lo, m->params + lo, m->grads + lo, o->m + lo, o->v + lo);
        }
    }
}

aibox_status aibox_optim_step(aibox_optim *o, aibox_model *m, aibox_error *err)
{
    if (!o || !m) return aibox_fail(err, AIBOX_E_INVALID, "optimizer: NULL argument");
    if (m != o->model || m->n_params != o->n)
        return aibox_fail(err, AIBOX_E_INVALID, "optimizer: created for another model");
    aibox_status gs = aibox_model_grads_ready(m, err);
    if (gs) return gs;
    float lr = o->schedule ? o->schedule(o->user, o->step, o->epoch, o->o.lr) : o->o.lr;
    if (!(lr >= 0.0f) || !isfinite(lr)) return aibox_fail(err, AIBOX_E_INVALID, "optimizer: schedule gave lr %g", lr);
    o->step++;
    o->last_lr = lr;
    step_job j = {.o = o, .m = m, .lr = lr, .parts = o->threads > 0 ? o->threads : 1};
    if (o->o.kind != AIBOX_SGD) {
        /* Keras' rule: the bias corrections folded into the step size */
        const float b1 = o->o.beta1, b2 = o->o.beta2;
        const double t = (double)o->step;
        j.coef = (aibox_adam_coef){
            .b1 = b1,
            .b2 = b2,
            .one_minus_b1 = 1.0f - b1,
            .one_minus_b2 = 1.0f - b2,
            .l2 = o->o.kind == AIBOX_ADAM ? o->o.weight_decay : 0.0f,
            .decay = o->o.kind == AIBOX_ADAMW ? lr * o->o.weight_decay : 0.0f,
            .lr_t = (float)(lr * sqrt(1.0 - pow(b2, t)) / (1.0 - pow(b1, t))),
            .eps = o->o.eps,
        };
        j.adam = aibox_adam_pick(o->features);
    }
    /* a small model is not worth waking the threads for */
    if (o->n < 65536) j.parts = 1;
    if (j.parts > 1) aibox_pool_run(o->pool, j.parts, step_task, &j);
    else step_task(&j, 0, 0);
    return AIBOX_OK;
}

void aibox_optim_state(aibox_optim *o, float **m1, float **m2, size_t *n, long *step)
{
    if (m1) *m1 = o ? o->m : NULL;
    if (m2) *m2 = o ? o->v : NULL;
    if (n) *n = o ? o->n : 0;
    if (step) *step = o ? o->step : 0;
}

void aibox_optim_set_step(aibox_optim *o, long step)
{
    if (o && step >= 0) o->step = step;
}

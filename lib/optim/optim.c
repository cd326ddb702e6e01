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

static void adam(const aibox_optim_opts *o, float lr, long t, size_t n, float *p, const float *g, float *m, float *v)
{
    const float b1 = o->beta1, b2 = o->beta2;
    const float lr_t = (float)(lr * sqrt(1.0 - pow(b2, (double)t)) / (1.0 - pow(b1, (double)t)));
    const float decay = o->kind == AIBOX_ADAMW ? lr * o->weight_decay : 0.0f;
    const float l2 = o->kind == AIBOX_ADAM ? o->weight_decay : 0.0f;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] + l2 * p[i];
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        p[i] -= decay * p[i] + lr_t * m[i] / (sqrtf(v[i]) + o->eps);
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
    for (int i = 1; i < m->n_nodes; i++) {
        const aibox_node *nd = &m->nodes[i];
        if (nd->frozen) continue;
        for (int k = 0; k < 2; k++) {
            size_t off = nd->param_off[k], n = nd->n_param[k];
            if (!n) continue;
            if (o->o.kind == AIBOX_SGD)
                sgd(&o->o, lr, n, m->params + off, m->grads + off, o->m + off);
            else
                adam(&o->o, lr, o->step, n, m->params + off, m->grads + off, o->m + off, o->v + off);
        }
    }
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

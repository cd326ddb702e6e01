/* Contexts: the memory one forward/backward pass writes, planned once per
 * input shape (one arena), and the passes themselves. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn/nn.h"
#include "nn/qplan.h"

struct aibox_ctx {
    const aibox_model *model;
    aibox_mode mode;
    int max_batch, n; /* capacity, batch of the last forward */
    int n_nodes;
    int (*shape)[3];  /* per node c, h, w for this context's input */
    float **act;      /* per node activations, max_batch samples */
    float **grad;     /* training: per node gradients (node 0 only if wanted) */
    void **saved;     /* training: per node memory kept for backward */
    float *ws;        /* scratch shared by all nodes: threads x ws_stride */
    size_t ws_stride;
    float *partial;   /* per-task partial parameter gradients: threads x partial_stride */
    size_t partial_stride;
    aibox_pool *pool;
    int threads;
    unsigned features; /* aibox_cpu_features(), once: cpuid is slow in a VM */
    unsigned char *fused; /* producer i: FUSE_RELU / FUSE_AFFINE flags; FUSE_ABSORBED on the nodes it took over */
    int *affine_of;   /* inference: the affine consumer (batch norm) producer i absorbed, or 0 */
    float *fold;      /* inference: per absorbing producer, scale and shift (2 x out channels) */
    size_t *fold_off; /* offsets into fold, per node */
    size_t *prep_off; /* inference: per node, its prepared weights' offset in prepared, or NO_PREP */
    float *prepared;  /* prepared weights, allocated by aibox_ctx_freeze_weights (NULL before) */
    size_t prepared_floats;
    float *prep_ws;   /* scratch shared by the threads when running prepared, for the node wanting most */
    size_t prep_ws_floats;
    float *discard;   /* parameter gradients of frozen nodes land here */
    unsigned char *need; /* per node, planned per backward: 1 its gradient is wanted, 2 also written */
    unsigned char *assign; /* training: per node, bit j: its backward stores (not adds) input j's gradient */
    unsigned char *unzeroed; /* training: per node, 1: one backward stores its whole gradient (never zeroed) */
    void *arena;
    size_t bytes;
    aibox_rng rng;    /* dropout */
    int want_input_grad;
    int fwd_training;  /* the last forward ran in training mode */
    int grad_set;      /* an output gradient is waiting for backward */
    int probe;         /* aibox_ctx_create_probe's: training memory, inference behaviour, no fusion */
    aibox_qplan *qplan; /* inference on an 8-bit model: its integer plan (the float nodes then stay unused) */
    unsigned char *qfresh; /* with qplan: per node, act[] holds the last run's values (dequantised on request) */
};

static size_t align64(size_t b) { return (b + 63) & ~(size_t)63; }

/* The arena is planned in checked arithmetic: *off += align64(count * unit),
 * clearing *ok on overflow (a hostile model's sizes then fail cleanly). */
static void plan_add(size_t *off, size_t count, size_t unit, int *ok)
{
    size_t b;
    if (!aibox_mul_ok(count, unit, &b) || b > SIZE_MAX - 63 || __builtin_add_overflow(*off, align64(b), off)) *ok = 0;
}

/* Physical memory of this machine, or SIZE_MAX when unknown: an arena larger
 * than it could only end in the OOM killer, so it is refused up front. */
static size_t phys_bytes(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    size_t b;
    if (pages <= 0 || page <= 0 || !aibox_mul_ok((size_t)pages, (size_t)page, &b)) return SIZE_MAX;
    return b;
}

enum { FUSE_RELU = 1, FUSE_ABSORBED = 2, FUSE_AFFINE = 4 };
#define NO_PREP SIZE_MAX

static void fill_run(aibox_ctx *c, const aibox_model *m, int i, aibox_run *r)
{
    const aibox_node *nd = &m->nodes[i];
    memset(r, 0, sizeof *r);
    r->nd = nd;
    r->n = c->n;
    for (int j = 0; j < nd->n_in; j++) {
        int s = nd->in[j];
        r->in_c[j] = c->shape[s][0], r->in_h[j] = c->shape[s][1], r->in_w[j] = c->shape[s][2];
        r->x[j] = c->act[s];
    }
    r->c = c->shape[i][0], r->h = c->shape[i][1], r->w = c->shape[i][2];
    r->y = c->act[i];
    /* The model is only written through st[] in training (BN running
     * statistics); inference reads, so sharing one model across threads is safe. */
    for (int k = 0; k < 2; k++) {
        r->p[k] = nd->n_param[k] ? m->params + nd->param_off[k] : NULL;
        r->st[k] = nd->n_state[k] ? m->state + nd->state_off[k] : NULL;
    }
    r->ws = c->ws;
    r->ws_stride = c->ws_stride;
    r->partial = c->partial;
    r->partial_stride = c->partial_stride;
    r->saved = c->saved ? c->saved[i] : NULL;
    r->rng = &c->rng;
    r->pool = c->pool;
    r->threads = c->threads;
    r->features = c->features;
    r->fuse_relu = c->fused[i] != FUSE_ABSORBED && (c->fused[i] & FUSE_RELU);
    if (c->affine_of && c->affine_of[i]) {
        r->fuse_scale = c->fold + c->fold_off[i];
        r->fuse_shift = r->fuse_scale + c->shape[i][0];
    }
    if (c->prepared && c->prep_off[i] != NO_PREP) {
        r->prepared = c->prepared + c->prep_off[i];
        r->prep_ws = c->prep_ws, r->prep_ws_floats = c->prep_ws_floats;
    }
}

/* An absorbed affine consumer's scale and shift (its fold hook, the
 * producer's bias taken in), from the model's current values (so a context
 * sees parameters changed after its creation). */
static void fold_affine(const aibox_ctx *c, const aibox_model *m, int producer)
{
    const aibox_node *a = &m->nodes[c->affine_of[producer]], *pr = &m->nodes[producer];
    int C = c->shape[producer][0];
    float *scale = c->fold + c->fold_off[producer];
    const float *p[2], *st[2];
    for (int k = 0; k < 2; k++) {
        p[k] = a->n_param[k] ? m->params + a->param_off[k] : NULL;
        st[k] = a->n_state[k] ? m->state + a->state_off[k] : NULL;
    }
    aibox_layer_get(a->kind)->fold(a, p, st, pr->n_param[1] ? m->params + pr->param_off[1] : NULL, C, scale,
                                   scale + C);
}

/* The single consumer of node i (up to the output), or -1. */
static int sole_user(const aibox_model *m, int i)
{
    int uses = 0, user = -1, out = aibox_model_output(m);
    for (int j = i + 1; j < m->n_nodes; j++)
        for (int k = 0; k < m->nodes[j].n_in; k++)
            if (m->nodes[j].in[k] == i) uses++, user = j;
    return uses == 1 && user <= out ? user : -1;
}

/* Whether node i's kind can be taken over as what (AIBOX_FUSE_*). */
static int fuses_as(const aibox_model *m, int i, unsigned what)
{
    return (aibox_layer_get(m->nodes[i].kind)->fuses_as & what) != 0;
}

/* A producer (conv) whose output feeds exactly one node, a ReLU, and is not
 * the model's output runs the ReLU in its own chunk loop; the ReLU node then
 * shares the producer's buffers and does nothing. In inference contexts a
 * producer's sole affine consumer (batch norm; with its sole ReLU) is folded
 * in the same way: y * scale + shift, one pass over the output instead of
 * three. What takes over what is the layer records' (fuse_accepts, fuses_as). */
static void plan_fusion(const aibox_model *m, aibox_mode mode, unsigned char *fused, int *affine_of)
{
    int out = aibox_model_output(m);
    for (int i = 1; i < m->n_nodes; i++) {
        unsigned accepts = aibox_layer_get(m->nodes[i].kind)->fuse_accepts;
        if (!accepts || i == out) continue;
        int user = sole_user(m, i);
        if (user < 0) continue;
        if (mode == AIBOX_INFER && (accepts & AIBOX_FUSE_AFFINE) && fuses_as(m, user, AIBOX_FUSE_AFFINE)) {
            fused[i] = FUSE_AFFINE, fused[user] = FUSE_ABSORBED, affine_of[i] = user;
            int r = user == out ? -1 : sole_user(m, user);
            if (r > 0 && (accepts & AIBOX_FUSE_RELU) && fuses_as(m, r, AIBOX_FUSE_RELU))
                fused[i] |= FUSE_RELU, fused[r] = FUSE_ABSORBED;
        } else if ((accepts & AIBOX_FUSE_RELU) && fuses_as(m, user, AIBOX_FUSE_RELU)) {
            fused[i] = FUSE_RELU, fused[user] = FUSE_ABSORBED;
        }
    }
}

/* Gradient buffers written by one backward only: node s's gradient (shared
 * with a ReLU it absorbed) is read by s's backward alone and written by its
 * sole consumer k alone; when k's kind can store the whole gradient
 * (dx_assigns), k is told to (assign bit) and the buffer is never zeroed:
 * k runs before s in the reverse walk, and whenever s's backward runs k's
 * does too, with that input's gradient wanted. The output's gradient (the
 * loss writes it) and the input's are zeroed as before. */
static void plan_assign(const aibox_model *m, const unsigned char *fused, unsigned char *assign,
                        unsigned char *unzeroed)
{
    int out = aibox_model_output(m);
    for (int s = 1; s < out; s++) {
        if (fused[s] == FUSE_ABSORBED) continue;
        int k = sole_user(m, s);
        if (k > 0 && fused[k] == FUSE_ABSORBED) k = k == out ? -1 : sole_user(m, k);
        if (k <= 0 || fused[k] == FUSE_ABSORBED || !aibox_layer_get(m->nodes[k].kind)->dx_assigns) continue;
        int buf = m->nodes[k].in[0], slot = -1, uses = 0;
        for (int j = 0; j < m->nodes[k].n_in; j++) {
            buf = m->nodes[k].in[j];
            if (buf == s || (fused[buf] == FUSE_ABSORBED && m->nodes[buf].in[0] == s)) slot = j, uses++;
        }
        if (uses != 1 || slot > 7) continue;
        assign[k] |= (unsigned char)(1u << slot);
        unzeroed[s] = 1;
    }
}

static aibox_status ctx_create(aibox_ctx **out, const aibox_model *m, const aibox_ctx_opts *opts, int probe,
                               aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "context: NULL output pointer");
    *out = NULL;
    if (!m || !m->finished) return aibox_fail(err, AIBOX_E_STATE, "context: the model is not finished");
    aibox_ctx_opts o = opts ? *opts : (aibox_ctx_opts){0};
    aibox_mode mode = probe ? AIBOX_TRAIN : o.mode;
    int max_batch = o.max_batch ? o.max_batch : 1, channels = m->in_c;
    int height = o.height ? o.height : m->in_h, width = o.width ? o.width : m->in_w, threads = o.threads;
    uint64_t seed = o.seed;
    if (m->weightless)
        return aibox_fail(err, AIBOX_E_STATE, "context: the model was loaded without its weights (aibox_model_load_info)");
    if (mode != AIBOX_INFER && mode != AIBOX_TRAIN) return aibox_fail(err, AIBOX_E_INVALID, "context: bad mode");
    if (max_batch < 1 || max_batch > (1 << 20)) return aibox_fail(err, AIBOX_E_INVALID, "context: batch %d", max_batch);
    if (height < 1 || width < 1 || height > 65536 || width > 65536 ||
        (int64_t)channels * height * width > AIBOX_MAX_ELEMS)
        return aibox_fail(err, AIBOX_E_SHAPE, "context: input size %dx%dx%d out of range", channels, height, width);
    if (threads < 0 || threads > 1024) return aibox_fail(err, AIBOX_E_INVALID, "context: %d threads", threads);
    aibox_blas_setup();

    aibox_ctx *c = calloc(1, sizeof *c);
    int N = m->n_nodes;
    if (!c) return aibox_fail(err, AIBOX_E_NOMEM, "context: out of memory");
    c->model = m, c->mode = mode, c->max_batch = max_batch, c->n_nodes = N, c->probe = probe;
    aibox_rng_seed(&c->rng, seed);
    c->shape = calloc((size_t)N, sizeof *c->shape);
    c->act = calloc((size_t)N, sizeof *c->act);
    c->grad = calloc((size_t)N, sizeof *c->grad);
    c->saved = calloc((size_t)N, sizeof *c->saved);
    c->fused = calloc((size_t)N, 1);
    c->affine_of = calloc((size_t)N, sizeof *c->affine_of);
    c->fold_off = calloc((size_t)N, sizeof *c->fold_off);
    c->prep_off = malloc((size_t)N * sizeof *c->prep_off);
    c->need = calloc((size_t)N, 1);
    c->assign = calloc((size_t)N, 1);
    c->unzeroed = calloc((size_t)N, 1);
    c->threads = threads ? threads : aibox_default_threads();
    c->features = aibox_cpu_features();
    size_t *act_off = calloc((size_t)N * 3, sizeof(size_t));
    if (!c->shape || !c->act || !c->grad || !c->saved || !c->fused || !c->affine_of || !c->fold_off || !c->need ||
        !c->assign || !c->unzeroed || !c->prep_off || !act_off) {
        free(act_off);
        aibox_ctx_free(&c);
        return aibox_fail(err, AIBOX_E_NOMEM, "context: out of memory");
    }
    size_t *grad_off = act_off + N, *saved_off = act_off + 2 * N;

    /* Shapes for this input, checked against the model's parameters. */
    c->shape[0][0] = channels, c->shape[0][1] = height, c->shape[0][2] = width;
    if (!probe) { /* a probe shows every node's own activation and gradient */
        plan_fusion(m, mode, c->fused, c->affine_of);
        if (mode == AIBOX_TRAIN) plan_assign(m, c->fused, c->assign, c->unzeroed);
    }
    size_t ws = 0, partial = 0, off = 0, discard = 0, fold_n = 0;
    int ok = 1;
    c->n = max_batch;
    for (int i = 0; i < N; i++) {
        const aibox_node *nd = &m->nodes[i];
        const aibox_layer_ops *ops = aibox_layer_get(nd->kind);
        c->prep_off[i] = NO_PREP;
        if (i > 0) {
            int ic[AIBOX_NODE_MAX_IN], ih[AIBOX_NODE_MAX_IN], iw[AIBOX_NODE_MAX_IN];
            for (int j = 0; j < nd->n_in; j++)
                ic[j] = c->shape[nd->in[j]][0], ih[j] = c->shape[nd->in[j]][1], iw[j] = c->shape[nd->in[j]][2];
            size_t np[2], ns[2];
            char why[256] = "";
            if (!aibox_node_shape(nd, ic, ih, iw, c->shape[i], np, ns, why, sizeof why)) {
                free(act_off);
                aibox_ctx_free(&c);
                return aibox_fail(err, AIBOX_E_SHAPE, "context: input %dx%dx%d: node %d (%s): %s", channels, height,
                                  width, i, ops->name, why);
            }
            if (np[0] != nd->n_param[0] || np[1] != nd->n_param[1]) {
                free(act_off);
                aibox_ctx_free(&c);
                return aibox_fail(err, AIBOX_E_SHAPE,
                                  "context: input %dx%dx%d does not fit node %d (%s), built for %dx%dx%d", channels,
                                  height, width, i, ops->name, m->in_c, m->in_h, m->in_w);
            }
            if (nd->frozen) discard = AIBOX_MAX(discard, np[0] + np[1]);
        }
        aibox_run r;
        if (i > 0) {
            /* Sizes only depend on shapes and n; act pointers are not used. */
            memset(&r, 0, sizeof r);
            r.nd = nd, r.n = max_batch, r.training = mode == AIBOX_TRAIN;
            for (int j = 0; j < nd->n_in; j++)
                r.in_c[j] = c->shape[nd->in[j]][0], r.in_h[j] = c->shape[nd->in[j]][1], r.in_w[j] = c->shape[nd->in[j]][2];
            r.c = c->shape[i][0], r.h = c->shape[i][1], r.w = c->shape[i][2];
            size_t pws = 0, pn = ops->prepared_floats ? ops->prepared_floats(&r, &pws) : 0;
            if (pn) {
                /* its weights once frozen; the shared scratch now, so the arena never grows */
                c->prep_off[i] = c->prepared_floats;
                c->prepared_floats += pn;
                c->prep_ws_floats = AIBOX_MAX(c->prep_ws_floats, pws);
            }
        }
        size_t count = (size_t)max_batch * c->shape[i][0] * c->shape[i][1] * c->shape[i][2];
        if (c->affine_of[i]) { /* room for the folded scale and shift */
            c->fold_off[i] = fold_n;
            fold_n += 2 * (size_t)c->shape[i][0];
        }
        if (c->fused[i] == FUSE_ABSORBED) { /* a fused BN/ReLU shares its producer's buffers */
            act_off[i] = act_off[nd->in[0]];
            grad_off[i] = grad_off[nd->in[0]];
        } else {
            act_off[i] = off;
            plan_add(&off, count, sizeof(float), &ok);
            if (mode == AIBOX_TRAIN) {
                grad_off[i] = off;
                plan_add(&off, count, sizeof(float), &ok);
            }
        }
        if (i > 0) {
            if (ops->ws_floats) ws = AIBOX_MAX(ws, ops->ws_floats(&r));
            if (mode == AIBOX_TRAIN && ops->partial_floats) partial = AIBOX_MAX(partial, ops->partial_floats(&r));
            saved_off[i] = off;
            if (mode == AIBOX_TRAIN && ops->saved_bytes) plan_add(&off, ops->saved_bytes(&r), 1, &ok);
        }
    }
    size_t ws_off = 0, partial_off = 0, discard_off = 0, fold_off = 0, prep_ws_off = 0, per_thread = 0;
    plan_add(&per_thread, ws, sizeof(float), &ok);
    c->ws_stride = per_thread / sizeof(float);
    ws_off = off;
    plan_add(&off, (size_t)c->threads, per_thread, &ok);
    per_thread = 0;
    plan_add(&per_thread, partial, sizeof(float), &ok);
    c->partial_stride = per_thread / sizeof(float);
    partial_off = off;
    plan_add(&off, (size_t)c->threads, per_thread, &ok);
    discard_off = off;
    plan_add(&off, discard, sizeof(float), &ok);
    fold_off = off;
    plan_add(&off, fold_n, sizeof(float), &ok);
    prep_ws_off = off;
    plan_add(&off, c->prep_ws_floats, sizeof(float), &ok);
    if (!ok || off > phys_bytes()) {
        free(act_off);
        aibox_ctx_free(&c);
        if (!ok)
            return aibox_fail(err, AIBOX_E_NOMEM, "context: the memory for batch %d of %dx%dx%d overflows", max_batch,
                              channels, height, width);
        return aibox_fail(err, AIBOX_E_NOMEM,
                          "context: batch %d of %dx%dx%d needs %zu MB, more than this machine's %zu MB of memory",
                          max_batch, channels, height, width, off >> 20, phys_bytes() >> 20);
    }
    c->arena = aibox_alloc(off);
    if (!c->arena) {
        free(act_off);
        aibox_ctx_free(&c);
        return aibox_fail(err, AIBOX_E_NOMEM, "context: cannot allocate %zu MB for batch %d of %dx%dx%d",
                          off >> 20, max_batch, channels, height, width);
    }
    memset(c->arena, 0, off);
    c->bytes = off;
    char *base = c->arena;
    for (int i = 0; i < N; i++) {
        c->act[i] = (float *)(base + act_off[i]);
        if (mode == AIBOX_TRAIN) {
            c->grad[i] = (float *)(base + grad_off[i]);
            if (i > 0) c->saved[i] = base + saved_off[i];
        }
    }
    c->ws = (float *)(base + ws_off);
    c->partial = (float *)(base + partial_off);
    aibox_status ps = aibox_pool_create(&c->pool, c->threads, err);
    if (ps) {
        free(act_off);
        aibox_ctx_free(&c);
        return ps;
    }
    c->discard = (float *)(base + discard_off);
    c->fold = (float *)(base + fold_off);
    c->prep_ws = (float *)(base + prep_ws_off);
    free(act_off);
    if (mode == AIBOX_INFER && m->quant) {
        aibox_status qs = aibox_qplan_create(&c->qplan, m, (const int(*)[3])c->shape, max_batch, c->threads,
                                             c->features, err);
        if (qs) {
            aibox_ctx_free(&c);
            return qs;
        }
        c->bytes += aibox_qplan_bytes(c->qplan);
        if (!(c->qfresh = calloc((size_t)N, 1))) {
            aibox_ctx_free(&c);
            return aibox_fail(err, AIBOX_E_NOMEM, "context: out of memory");
        }
    }
    c->n = 0;
    *out = c;
    return AIBOX_OK;
}

aibox_status aibox_ctx_create(aibox_ctx **out, const aibox_model *m, const aibox_ctx_opts *opts, aibox_error *err)
{
    return ctx_create(out, m, opts, 0, err);
}

aibox_status aibox_ctx_create_probe(aibox_ctx **out, const aibox_model *m, const aibox_ctx_opts *opts,
                                    aibox_error *err)
{
    return ctx_create(out, m, opts, 1, err);
}

void aibox_ctx_free(aibox_ctx **pc)
{
    if (!pc || !*pc) return;
    aibox_ctx *c = *pc;
    aibox_pool_free(&c->pool);
    aibox_qplan_free(&c->qplan);
    free(c->qfresh);
    aibox_free(c->arena);
    free(c->fused);
    free(c->need);
    free(c->assign);
    free(c->unzeroed);
    free(c->affine_of);
    free(c->fold_off);
    free(c->prep_off);
    aibox_free(c->prepared);
    free(c->shape);
    free(c->act);
    free(c->grad);
    free(c->saved);
    free(c);
    *pc = NULL;
}

size_t aibox_ctx_bytes(const aibox_ctx *c) { return c ? c->bytes : 0; }
int aibox_ctx_threads(const aibox_ctx *c) { return c ? c->threads : 0; }
unsigned aibox_ctx_features(const aibox_ctx *c) { return c ? c->features : 0; }
aibox_pool *aibox_ctx_pool(aibox_ctx *c) { return c ? c->pool : NULL; }
int aibox_ctx_batch(const aibox_ctx *c) { return c ? c->n : 0; }

void aibox_ctx_reseed(aibox_ctx *c, uint64_t seed)
{
    if (c) aibox_rng_seed(&c->rng, seed);
}

void aibox_ctx_set_input_grad(aibox_ctx *c, int want)
{
    if (c) c->want_input_grad = want ? 1 : 0;
}

static aibox_status run_forward(aibox_ctx *c, const aibox_model *m, const float *input, int n, int training,
                                aibox_error *err)
{
    if (!c || !m || !input) return aibox_fail(err, AIBOX_E_INVALID, "forward: NULL argument");
    if (m != c->model) return aibox_fail(err, AIBOX_E_INVALID, "forward: the context was made for another model");
    if (m->n_nodes != c->n_nodes)
        return aibox_fail(err, AIBOX_E_STATE, "forward: the model has %d nodes, %d when the context was made",
                          m->n_nodes, c->n_nodes);
    if (n < 1 || n > c->max_batch)
        return aibox_fail(err, AIBOX_E_INVALID, "forward: batch %d outside 1..%d", n, c->max_batch);
    c->n = n;
    c->fwd_training = training;
    c->grad_set = 0;
    int last = aibox_model_output(m);
    if (c->qplan) { /* node 0 too is then made on request: the input's bytes as the plan saw them */
        aibox_qplan_run(c->qplan, input, n, c->act[last], c->pool);
        memset(c->qfresh, 0, (size_t)c->n_nodes);
        c->qfresh[last] = 1;
        return AIBOX_OK;
    }
    size_t in = (size_t)n * c->shape[0][0] * c->shape[0][1] * c->shape[0][2];
    memcpy(c->act[0], input, in * sizeof(float));
    for (int i = 1; i <= last; i++) {
        if (c->fused[i] == FUSE_ABSORBED) continue; /* done inside its producer */
        if (c->affine_of[i]) fold_affine(c, m, i);
        aibox_run r;
        fill_run(c, m, i, &r);
        r.training = training || c->probe; /* a probe keeps what backward needs */
        r.eval = c->probe;
        aibox_layer_get(m->nodes[i].kind)->forward(&r);
    }
    return AIBOX_OK;
}

aibox_status aibox_ctx_forward(aibox_ctx *c, aibox_model *m, const float *input, int n, aibox_error *err)
{
    if (c && c->mode != AIBOX_TRAIN) return aibox_ctx_infer(c, m, input, n, err);
    return run_forward(c, m, input, n, 1, err);
}

aibox_status aibox_ctx_infer(aibox_ctx *c, const aibox_model *m, const float *input, int n, aibox_error *err)
{
    return run_forward(c, m, input, n, 0, err);
}

aibox_status aibox_ctx_freeze_weights(aibox_ctx *c, const aibox_model *m, aibox_error *err)
{
    if (!c || !m) return aibox_fail(err, AIBOX_E_INVALID, "freeze: NULL argument");
    if (c->mode != AIBOX_INFER)
        return aibox_fail(err, AIBOX_E_INVALID,
                          "freeze: only inference contexts freeze weights (training changes them)");
    if (m != c->model) return aibox_fail(err, AIBOX_E_INVALID, "freeze: the context was made for another model");
    if (!m->finished || m->n_nodes != c->n_nodes)
        return aibox_fail(err, AIBOX_E_STATE, "freeze: the model changed since the context was made");
    if (c->prepared_floats && !c->prepared) {
        c->prepared = aibox_alloc(c->prepared_floats * sizeof(float));
        if (!c->prepared)
            return aibox_fail(err, AIBOX_E_NOMEM, "freeze: cannot allocate %zu MB of transformed weights",
                              (c->prepared_floats * sizeof(float)) >> 20);
        c->bytes += c->prepared_floats * sizeof(float);
    }
    for (int i = 1; i < c->n_nodes; i++)
        if (c->prep_off[i] != NO_PREP) {
            aibox_run r;
            fill_run(c, m, i, &r);
            aibox_layer_get(m->nodes[i].kind)->prepare(&r, c->prepared + c->prep_off[i]);
        }
    return AIBOX_OK;
}

const float *aibox_ctx_node_output(const aibox_ctx *c, int node, int *ch, int *h, int *w)
{
    if (!c || node < 0 || node >= c->n_nodes) return NULL;
    if (ch) *ch = c->shape[node][0];
    if (h) *h = c->shape[node][1];
    if (w) *w = c->shape[node][2];
    if (c->qplan && !c->qfresh[node] && c->n > 0) {
        /* an 8-bit context computes every node in bytes and keeps the floats
         * of the output only: another node's are made on first request (into
         * the context's own memory, hence the cast: like every call on a
         * context, not concurrently with another call on it) */
        if (node > aibox_model_output(c->model)) return NULL; /* not computed */
        aibox_ctx *mc = (aibox_ctx *)(uintptr_t)c;
        aibox_qplan_dequantize(mc->qplan, node, c->n, mc->act[node]);
        mc->qfresh[node] = 1;
    }
    return c->act[node];
}

const float *aibox_ctx_output(const aibox_ctx *c, int *ch, int *h, int *w)
{
    return c ? aibox_ctx_node_output(c, aibox_model_output(c->model), ch, h, w) : NULL;
}

/* Which gradients a backward pass needs: a node's output gradient matters
 * only when the node or something upstream of it trains (or it is the input
 * and its gradient was asked for). Below a frozen trunk nothing does, so
 * backward stops at the lowest trainable node instead of running the whole
 * trunk for nothing. need[i] = 1: wanted; |2: some kernel writes it anyway
 * (an input of a node that runs), so it is zeroed too. Planned per pass
 * because frozen flags may change after the context was made. */
static void plan_grads(aibox_ctx *c, const aibox_model *m)
{
    int out = aibox_model_output(m);
    memset(c->need, 0, (size_t)c->n_nodes);
    c->need[0] = (unsigned char)c->want_input_grad;
    for (int i = 1; i <= out; i++) {
        const aibox_node *nd = &m->nodes[i];
        int live = !nd->frozen && nd->n_param[0] + nd->n_param[1] > 0;
        for (int j = 0; j < nd->n_in && !live; j++) live = c->need[nd->in[j]] & 1;
        c->need[i] = (unsigned char)live;
    }
    for (int i = 1; i <= out; i++)
        if (c->need[i] & 1)
            for (int j = 0; j < m->nodes[i].n_in; j++) c->need[m->nodes[i].in[j]] |= 2;
    c->need[out] |= 2; /* the loss writes it */
}

/* Zeroes the gradient buffers backward will use and returns the output
 * node's, ready to be written. */
static float *begin_grad(aibox_ctx *c, size_t *per_sample, aibox_error *err)
{
    if (!c || c->mode != AIBOX_TRAIN) {
        aibox_fail(err, AIBOX_E_STATE, "loss: the context was not created for training");
        return NULL;
    }
    if (c->n < 1 || !c->fwd_training) {
        aibox_fail(err, AIBOX_E_STATE, "loss: run a training forward pass first");
        return NULL;
    }
    int out = aibox_model_output(c->model);
    plan_grads(c, c->model);
    for (int i = 0; i <= out; i++) {
        /* a fused ReLU shares its producer's buffer: zeroed (or stored) once, by the producer's entry */
        int shared = c->fused[i] == FUSE_ABSORBED ? c->model->nodes[i].in[0] : -1;
        if (c->need[i] && !c->unzeroed[i] && !(shared >= 0 && (c->need[shared] || c->unzeroed[shared])))
            memset(c->grad[i], 0, (size_t)c->n * c->shape[i][0] * c->shape[i][1] * c->shape[i][2] * sizeof(float));
    }
    *per_sample = (size_t)c->shape[out][0] * c->shape[out][1] * c->shape[out][2];
    c->grad_set = 1;
    return c->grad[out];
}

aibox_status aibox_ctx_loss_softmax_ce(aibox_ctx *c, const int *labels, const float *class_weights, float *loss,
                                       aibox_error *err)
{
    if (!labels) return aibox_fail(err, AIBOX_E_INVALID, "loss: NULL labels");
    if (c && c->n > 0) { /* check the labels before any gradient is touched */
        int out = aibox_model_output(c->model);
        size_t k = (size_t)c->shape[out][0] * c->shape[out][1] * c->shape[out][2];
        for (int i = 0; i < c->n; i++)
            if (labels[i] < 0 || (size_t)labels[i] >= k)
                return aibox_fail(err, AIBOX_E_INVALID, "loss: label %d of sample %d outside 0..%zu", labels[i], i,
                                  k - 1);
    }
    size_t k;
    float *g = begin_grad(c, &k, err);
    if (!g) return err ? err->code : AIBOX_E_STATE;
    float l = aibox_softmax_ce(c->n, (int)k, c->act[aibox_model_output(c->model)], labels, class_weights, g);
    if (loss) *loss = l;
    return AIBOX_OK;
}

/* Losses with one target per output element. */
typedef float (*elementwise_loss)(size_t count, const float *y, const float *targets, float *dx);

static aibox_status loss_elementwise(aibox_ctx *c, elementwise_loss fn, const float *targets, float *loss,
                                     aibox_error *err)
{
    if (!targets) return aibox_fail(err, AIBOX_E_INVALID, "loss: NULL targets");
    size_t k;
    float *g = begin_grad(c, &k, err);
    if (!g) return err ? err->code : AIBOX_E_STATE;
    float l = fn((size_t)c->n * k, c->act[aibox_model_output(c->model)], targets, g);
    if (loss) *loss = l;
    return AIBOX_OK;
}

aibox_status aibox_ctx_loss_sigmoid_bce(aibox_ctx *c, const float *targets, float *loss, aibox_error *err)
{
    return loss_elementwise(c, aibox_sigmoid_bce, targets, loss, err);
}

aibox_status aibox_ctx_loss_mse(aibox_ctx *c, const float *targets, float *loss, aibox_error *err)
{
    return loss_elementwise(c, aibox_mse, targets, loss, err);
}

aibox_status aibox_ctx_set_output_grad(aibox_ctx *c, const float *grad, aibox_error *err)
{
    if (!grad) return aibox_fail(err, AIBOX_E_INVALID, "backward: NULL gradient");
    size_t k;
    float *g = begin_grad(c, &k, err);
    if (!g) return err ? err->code : AIBOX_E_STATE;
    memcpy(g, grad, (size_t)c->n * k * sizeof(float));
    return AIBOX_OK;
}

aibox_status aibox_ctx_backward(aibox_ctx *c, aibox_model *m, aibox_error *err)
{
    if (!c || !m) return aibox_fail(err, AIBOX_E_INVALID, "backward: NULL argument");
    if (m != c->model) return aibox_fail(err, AIBOX_E_INVALID, "backward: the context was made for another model");
    if (c->mode != AIBOX_TRAIN)
        return aibox_fail(err, AIBOX_E_STATE,
                          "backward: the context was created for inference; create one with mode AIBOX_TRAIN to train");
    if (!c->grad_set) return aibox_fail(err, AIBOX_E_STATE, "backward: compute a loss (or set the output gradient) first");
    aibox_status gs = aibox_model_grads_ready(m, err);
    if (gs) return gs;
    c->grad_set = 0;
    plan_grads(c, m);
    for (int i = aibox_model_output(m); i >= 1; i--) {
        const aibox_node *nd = &m->nodes[i];
        if (c->fused[i] == FUSE_ABSORBED) continue; /* its producer masks the shared gradient */
        if (!(c->need[i] & 1)) continue; /* nothing here or upstream trains */
        aibox_run r;
        fill_run(c, m, i, &r);
        r.training = 1;
        r.dy = c->grad[i];
        int any = 0;
        for (int j = 0; j < nd->n_in; j++) {
            r.dx_assign[j] = (unsigned char)((c->assign[i] >> j) & 1);
            r.dx[j] = (c->need[nd->in[j]] & 1) ? c->grad[nd->in[j]] : NULL;
            any |= r.dx[j] != NULL;
        }
        int has_params = !nd->frozen && nd->n_param[0] + nd->n_param[1] > 0;
        if (!any && !has_params) continue; /* nothing upstream wants this gradient */
        const aibox_layer_ops *ops = aibox_layer_get(nd->kind);
        if (!ops->backward)
            return aibox_fail(err, AIBOX_E_UNSUPPORTED, "backward: node %d (%s) has no backward (forward-only kind)", i,
                              ops->name);
        /* Kinds that cannot skip an input gradient get its buffer anyway
         * (allocated in training, just unreported). */
        if (!ops->dx_optional)
            for (int j = 0; j < nd->n_in; j++)
                if (!r.dx[j]) r.dx[j] = c->grad[nd->in[j]];
        for (int k = 0; k < 2; k++)
            if (nd->n_param[k])
                r.dp[k] = nd->frozen ? c->discard + (k ? nd->n_param[0] : 0) : m->grads + nd->param_off[k];
        ops->backward(&r);
    }
    return AIBOX_OK;
}

aibox_status aibox_ctx_probe_backward(aibox_ctx *c, const aibox_model *m, int from, const float *dfrom, int to,
                                     aibox_error *err)
{
    if (!c || !m || !dfrom) return aibox_fail(err, AIBOX_E_INVALID, "probe: NULL argument");
    if (!c->probe) return aibox_fail(err, AIBOX_E_STATE, "probe: not a probe context");
    if (m != c->model) return aibox_fail(err, AIBOX_E_INVALID, "probe: the context was made for another model");
    if (m->n_nodes != c->n_nodes)
        return aibox_fail(err, AIBOX_E_STATE, "probe: the model has %d nodes, %d when the context was made",
                          m->n_nodes, c->n_nodes);
    if (c->n < 1) return aibox_fail(err, AIBOX_E_STATE, "probe: run a forward pass first");
    int out = aibox_model_output(m);
    if (from < 1 || from > out || to < 0 || to >= from)
        return aibox_fail(err, AIBOX_E_INVALID, "probe: nodes %d -> %d outside the graph's 0..%d or not ordered",
                          from, to, out);
    /* need[i] & 1: node i depends on to (its gradient matters); & 2: some
     * backward writes it (zeroed first) */
    memset(c->need, 0, (size_t)c->n_nodes);
    c->need[to] = 1;
    for (int i = to + 1; i <= from; i++)
        for (int j = 0; j < m->nodes[i].n_in; j++) c->need[i] |= c->need[m->nodes[i].in[j]] & 1;
    if (!(c->need[from] & 1))
        return aibox_fail(err, AIBOX_E_INVALID, "probe: node %d does not depend on node %d", from, to);
    for (int i = to + 1; i <= from; i++)
        if (c->need[i] & 1)
            for (int j = 0; j < m->nodes[i].n_in; j++) c->need[m->nodes[i].in[j]] |= 2;
    for (int i = 0; i < from; i++)
        if (c->need[i])
            memset(c->grad[i], 0, (size_t)c->n * c->shape[i][0] * c->shape[i][1] * c->shape[i][2] * sizeof(float));
    memcpy(c->grad[from], dfrom, (size_t)c->n * c->shape[from][0] * c->shape[from][1] * c->shape[from][2] * sizeof(float));
    c->grad_set = 0;
    for (int i = from; i > to; i--) {
        const aibox_node *nd = &m->nodes[i];
        if (!(c->need[i] & 1)) continue;
        const aibox_layer_ops *ops = aibox_layer_get(nd->kind);
        if (!ops->backward)
            return aibox_fail(err, AIBOX_E_UNSUPPORTED, "probe: node %d (%s) has no backward (forward-only kind)", i,
                              ops->name);
        aibox_run r;
        fill_run(c, m, i, &r);
        r.training = 1, r.eval = 1;
        r.dy = c->grad[i];
        for (int j = 0; j < nd->n_in; j++) {
            int s = nd->in[j];
            /* kinds that cannot skip an input's gradient get its buffer anyway (never read) */
            r.dx[j] = (c->need[s] & 1) || !ops->dx_optional ? c->grad[s] : NULL;
        }
        /* dp stays NULL: no parameter gradients, the model is only read */
        ops->backward(&r);
    }
    return AIBOX_OK;
}

const float *aibox_ctx_node_grad(const aibox_ctx *c, int node, int *ch, int *h, int *w)
{
    if (!c || c->mode != AIBOX_TRAIN || node < 0 || node >= c->n_nodes) return NULL;
    if (ch) *ch = c->shape[node][0];
    if (h) *h = c->shape[node][1];
    if (w) *w = c->shape[node][2];
    return c->grad[node];
}

const float *aibox_ctx_input_grad(const aibox_ctx *c)
{
    return c && c->mode == AIBOX_TRAIN && c->want_input_grad ? c->grad[0] : NULL;
}

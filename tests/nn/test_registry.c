/* The layer table, kind by kind. Every kind in aibox_layer_kind must have an
 * example graph below (a kind without one fails, named), and its record and
 * example must pass: the record is complete (name, shape rule, forward,
 * backward unless documented forward-only, a consistent settings field
 * list); the whole small graph's gradients w.r.t. its input and every
 * parameter match central finite differences (and the parameters' stay the
 * same without the input's); the model saved and loaded again has the same
 * nodes, every named setting, the same parameters and bit-identical outputs
 * (and saves to the same bytes); inference contexts (fused, frozen) agree
 * with a training context's inference pass; and in inference each sample of
 * a batch gives what it gives alone. Adding a layer kind fails
 * this test until the kind is complete. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "aibox.h"
#include "common/check.h"
#include "nn/nn.h"

#define BATCH 3    /* gradient check batch (batch norm: batch statistics) and batch-N size */
#define STEP 1e-3  /* finite-difference step: float forward passes (tolerance 2e-3 + 2e-2 relative; */
                   /* batch norm's float noise uses up to 0.4 of it) */
#define GAP 5e-3f  /* inputs stay this far from kinks (relu, clamp, ...), > STEP */

/* How an example's gradients are checked. */
typedef enum {
    GRAD_NUMERIC, /* against central differences */
    GRAD_STE,     /* quantize: the straight-through estimator, dL/dx = dL/dy inside the representable range */
} grad_rule;

typedef struct example {
    /* Appends the kind (after helper nodes if it needs them) to node x;
     * returns the node of the kind under test. NULL: no example. */
    int (*build)(aibox_model *m, int x);
    int c, h, w;          /* input per sample */
    const char *settings; /* every setting of the kind: "name=value ..." as build sets them */
    float lo, hi;         /* inputs uniform in [lo, hi) ... */
    float kinks[2];       /* ... away from these (nk of them) */
    int nk;
    int distinct;  /* inputs all distinct, 0.01 apart (max pooling: no ties to flip) */
    grad_rule grad;
} example;

static int ex_conv(aibox_model *m, int x)
{
    aibox_conv_opts o = {.out_channels = 4, .kernel_h = 3, .kernel_w = 2, .stride_h = 2, .stride_w = 1, .pad_top = 1,
                         .pad_left = 2, .pad_bottom = 2, .pad_right = 1, .groups = 2, .bias = 1};
    return aibox_conv2d(m, x, &o);
}
static int ex_dense(aibox_model *m, int x) { return aibox_dense(m, x, 5, 1); }
static const aibox_pool_opts pool_opts = {.kernel_h = 3, .kernel_w = 2, .stride_h = 2, .stride_w = 1, .pad_top = 1,
                                          .pad_left = 1, .pad_bottom = 2, .pad_right = 1, .ceil_mode = 1,
                                          .count_include_pad = 1};
static int ex_maxpool(aibox_model *m, int x) { return aibox_maxpool(m, x, &pool_opts); }
static int ex_avgpool(aibox_model *m, int x) { return aibox_avgpool(m, x, &pool_opts); }
static int ex_gap(aibox_model *m, int x) { return aibox_global_avgpool(m, x); }
static int ex_relu(aibox_model *m, int x) { return aibox_relu(m, x); }
static int ex_relu6(aibox_model *m, int x) { return aibox_relu6(m, x); }
static int ex_leaky(aibox_model *m, int x) { return aibox_leaky_relu(m, x, 0.125f); }
static int ex_sigmoid(aibox_model *m, int x) { return aibox_sigmoid(m, x); }
static int ex_clamp(aibox_model *m, int x) { return aibox_clamp(m, x, -0.5f, 0.75f); }
static int ex_dropout(aibox_model *m, int x) { return aibox_dropout(m, x, 0.25f); }
/* after a convolution: inference contexts fold it in (AIBOX_FUSE_AFFINE),
 * frozen ones run the convolution as Winograd (its prepare hook) */
static int ex_batchnorm(aibox_model *m, int x)
{
    return aibox_batchnorm(m, aibox_conv2d_simple(m, x, 4, 3, 1, 1), 1e-3f, 0.25f);
}
static int ex_zeropad(aibox_model *m, int x) { return aibox_zeropad(m, x, 1, 2, 3, 1); }
static int ex_flatten(aibox_model *m, int x) { return aibox_flatten(m, x); }
/* Multi-input kinds next to a convolution: without an input gradient, only
 * some of their inputs want one. */
static int ex_concat(aibox_model *m, int x)
{
    int in[3] = {x, aibox_conv2d_simple(m, x, 3, 1, 1, 0), x};
    return aibox_concat(m, 3, in);
}
static int ex_add(aibox_model *m, int x) { return aibox_add(m, aibox_conv2d_simple(m, x, 2, 1, 1, 0), x); }
static int ex_up_nearest(aibox_model *m, int x) { return aibox_upsample_nearest(m, x, 5, 7); }
static int ex_up_bilinear(aibox_model *m, int x) { return aibox_upsample_bilinear(m, x, 5, 7); }
static int ex_softmax(aibox_model *m, int x) { return aibox_softmax(m, x); }
static int ex_quantize(aibox_model *m, int x) { return aibox_quantize(m, x, 0.125f, 3.0f, 0.0f, 12.0f); }

/* build, input c h w, its settings, input range */
#define EX(fn, c_, h_, w_, set, lo_, hi_) \
    .build = fn, .c = c_, .h = h_, .w = w_, .settings = set, .lo = lo_, .hi = hi_
static const example examples[AIBOX_LAYER_KIND_COUNT] = {
    /* INPUT is node 0 of every example */
    [AIBOX_LAYER_CONV2D] = {EX(ex_conv, 4, 7, 6,
                               "out_channels=4 kernel_h=3 kernel_w=2 stride_h=2 stride_w=1 pad_top=1 pad_left=2 "
                               "pad_bottom=2 pad_right=1 groups=2 bias=1",
                               -1, 1)},
    [AIBOX_LAYER_DENSE] = {EX(ex_dense, 3, 2, 2, "units=5 bias=1", -1, 1)},
    [AIBOX_LAYER_MAXPOOL] = {EX(ex_maxpool, 2, 7, 6,
                                "kernel_h=3 kernel_w=2 stride_h=2 stride_w=1 pad_top=1 pad_left=1 pad_bottom=2 "
                                "pad_right=1 ceil_mode=1 count_include_pad=1",
                                -1, 1),
                             .distinct = 1},
    [AIBOX_LAYER_AVGPOOL] = {EX(ex_avgpool, 2, 7, 6,
                                "kernel_h=3 kernel_w=2 stride_h=2 stride_w=1 pad_top=1 pad_left=1 pad_bottom=2 "
                                "pad_right=1 ceil_mode=1 count_include_pad=1",
                                -1, 1)},
    [AIBOX_LAYER_GLOBAL_AVGPOOL] = {EX(ex_gap, 3, 4, 5, "", -1, 1)},
    [AIBOX_LAYER_RELU] = {EX(ex_relu, 2, 4, 5, "", -1, 1), .kinks = {0}, .nk = 1},
    [AIBOX_LAYER_RELU6] = {EX(ex_relu6, 2, 4, 5, "", -2, 8), .kinks = {0, 6}, .nk = 2},
    [AIBOX_LAYER_LEAKY_RELU] = {EX(ex_leaky, 2, 4, 5, "alpha=0.125", -1, 1), .kinks = {0}, .nk = 1},
    [AIBOX_LAYER_SIGMOID] = {EX(ex_sigmoid, 2, 4, 5, "", -3, 3)},
    [AIBOX_LAYER_CLAMP] = {EX(ex_clamp, 2, 4, 5, "lo=-0.5 hi=0.75", -1, 1), .kinks = {-0.5f, 0.75f}, .nk = 2},
    [AIBOX_LAYER_DROPOUT] = {EX(ex_dropout, 2, 4, 5, "rate=0.25", -1, 1)},
    [AIBOX_LAYER_BATCHNORM] = {EX(ex_batchnorm, 8, 6, 6, "eps=0.001 momentum=0.25", -1, 1)},
    [AIBOX_LAYER_ZEROPAD] = {EX(ex_zeropad, 2, 4, 5, "top=1 left=2 bottom=3 right=1", -1, 1)},
    [AIBOX_LAYER_FLATTEN] = {EX(ex_flatten, 2, 3, 4, "", -1, 1)},
    [AIBOX_LAYER_CONCAT] = {EX(ex_concat, 2, 3, 4, "", -1, 1)},
    [AIBOX_LAYER_ADD] = {EX(ex_add, 2, 3, 4, "", -1, 1)},
    [AIBOX_LAYER_UPSAMPLE_NEAREST] = {EX(ex_up_nearest, 2, 3, 4, "out_h=5 out_w=7", -1, 1)},
    [AIBOX_LAYER_UPSAMPLE_BILINEAR] = {EX(ex_up_bilinear, 2, 3, 4, "out_h=5 out_w=7", -1, 1)},
    [AIBOX_LAYER_SOFTMAX] = {EX(ex_softmax, 4, 3, 3, "", -2, 2)},
    [AIBOX_LAYER_QUANTIZE] = {EX(ex_quantize, 2, 4, 5, "scale=0.125 zero_point=3 qmin=0 qmax=12", -1, 1.5f),
                              .grad = GRAD_STE},
};
#undef EX

static char g_dir[64];

/* ------------------------------------------------------------ the records */
/* Every record is complete and its settings field list consistent. */
static void check_record(aibox_layer_kind k)
{
    const aibox_layer_ops *o = aibox_layer_get(k);
    assert_non_null(o);
    if (!o->name) fail_msg("layer kind %d has no record (no name) in lib/nn/layers.c", (int)k);
    assert_string_equal(aibox_layer_kind_name(k), o->name);
    aibox_layer_kind back = AIBOX_LAYER_KIND_COUNT;
    assert_ptr_equal(aibox_layer_by_name(o->name, &back), o);
    assert_int_equal(back, k);
    assert_true(o->min_in >= 0 && o->min_in <= o->max_in && o->max_in <= AIBOX_NODE_MAX_IN);
    if (k == AIBOX_LAYER_INPUT) {
        assert_int_equal(o->max_in, 0);
        assert_int_equal(o->n_fields, 0);
        return;
    }
    if (!o->shape || !o->forward) fail_msg("layer kind %s: the record lacks a shape rule or forward", o->name);
    if (!o->backward && !o->forward_only)
        fail_msg("layer kind %s: no backward, and not documented forward-only (.forward_only = 1)", o->name);
    assert_true(o->n_fields >= 0 && o->n_fields <= AIBOX_SETTINGS_MAX_FIELDS);
    assert_true(o->n_fields == 0 || o->fields);
    for (int f = 0; f < o->n_fields; f++) {
        const aibox_setting_field *a = &o->fields[f];
        assert_non_null(a->name);
        assert_true(a->type == AIBOX_SETTING_INT || a->type == AIBOX_SETTING_FLOAT);
        assert_true(a->offset % 4 == 0 && a->offset + 4 <= sizeof(aibox_node_settings));
        int slots = a->type == AIBOX_SETTING_INT ? AIBOX_V1_INT_SLOTS : AIBOX_V1_FLOAT_SLOTS;
        assert_true(a->v1_slot >= -1 && a->v1_slot < slots);
        assert_true(strcmp(a->name, "kind") && strcmp(a->name, "in") && strcmp(a->name, "frozen")); /* the node's own keys */
        for (int g = 0; g < f; g++) {
            const aibox_setting_field *b = &o->fields[g];
            if (!strcmp(a->name, b->name)) fail_msg("layer kind %s: setting %s listed twice", o->name, a->name);
            if (a->offset == b->offset) fail_msg("layer kind %s: %s and %s share bytes", o->name, a->name, b->name);
            if (a->type == b->type && a->v1_slot >= 0 && a->v1_slot == b->v1_slot)
                fail_msg("layer kind %s: %s and %s share version-1 slot %d", o->name, a->name, b->name, a->v1_slot);
        }
    }
    if ((o->fuses_as & AIBOX_FUSE_AFFINE) && !o->fold)
        fail_msg("layer kind %s: fuses as an affine map without a fold hook", o->name);
    if (!o->prepared_floats != !o->prepare)
        fail_msg("layer kind %s: prepared_floats and prepare come together", o->name);
}

static void test_records(void **state)
{
    (void)state;
    for (int k = 0; k < AIBOX_LAYER_KIND_COUNT; k++) check_record((aibox_layer_kind)k);
    assert_null(aibox_layer_get(AIBOX_LAYER_KIND_COUNT));
    assert_null(aibox_layer_by_name("no such kind", NULL));
}

/* ------------------------------------------------------------ one kind */
typedef struct kind_run {
    aibox_layer_kind kind;
    const example *ex;
    aibox_model *m;
    int node, n_in, n_out; /* the kind's node; input and output values per sample */
    aibox_ctx *train;
    float *x;     /* BATCH inputs */
    int n_t;      /* parameter tensors */
    float *t[2 * 64];
    size_t t_n[2 * 64];
    size_t nx;    /* inputs + parameters */
} kind_run;

/* Builds the example, finishes it and moves every parameter and statistic
 * off its initial value (BN: gamma, beta, running mean and variance). */
static void build(kind_run *kr, uint64_t seed)
{
    const example *ex = kr->ex;
    aibox_error e = {0};
    assert_int_equal(aibox_model_create(&kr->m, ex->c, ex->h, ex->w, &e), AIBOX_OK);
    kr->node = ex->build(kr->m, 0);
    if (kr->node < 0) fail_msg("%s: the example does not build: %s", aibox_layer_kind_name(kr->kind),
                               aibox_model_last_error(kr->m));
    assert_int_equal(aibox_model_node_kind(kr->m, kr->node), kr->kind);
    assert_int_equal(aibox_model_finish(kr->m, seed, &e), AIBOX_OK);
    aibox_rng rng;
    aibox_rng_seed(&rng, seed + 1);
    kr->n_t = 0;
    for (int i = 1; i < aibox_model_node_count(kr->m); i++)
        for (int q = 0; q < 2; q++) {
            size_t n = 0;
            float *p = aibox_model_node_param(kr->m, i, q, &n);
            for (size_t j = 0; j < n; j++) p[j] += 0.4f * aibox_rng_uniform(&rng) - 0.2f;
            if (p) {
                assert_true(kr->n_t < 2 * 64);
                kr->t[kr->n_t] = p, kr->t_n[kr->n_t++] = n;
            }
            size_t ns = 0;
            float *s = aibox_model_node_state(kr->m, i, q, &ns);
            for (size_t j = 0; j < ns; j++) /* mean shifted, variance scaled (stays positive) */
                s[j] = q == 0 ? s[j] + 0.6f * aibox_rng_uniform(&rng) - 0.3f : s[j] * (0.5f + aibox_rng_uniform(&rng));
        }
    int c, h, w;
    aibox_model_node_shape(kr->m, aibox_model_output(kr->m), &c, &h, &w);
    kr->n_in = ex->c * ex->h * ex->w, kr->n_out = c * h * w;
    kr->x = aibox_test_floats((size_t)BATCH * kr->n_in);
    if (ex->distinct) {
        aibox_test_fill_distinct(&rng, kr->x, (size_t)BATCH * kr->n_in, ex->lo, 0.01f);
    } else {
        aibox_test_fill_away(&rng, kr->x, (size_t)BATCH * kr->n_in, ex->lo, ex->hi, ex->kinks, ex->nk, GAP);
    }
    kr->nx = (size_t)BATCH * kr->n_in;
    for (int i = 0; i < kr->n_t; i++) kr->nx += kr->t_n[i];
}

/* The training forward of packed [inputs, parameters]; the same dropout
 * masks every time (the context is reseeded). */
static void train_fwd(void *user, const float *xp, float *y)
{
    kind_run *kr = user;
    aibox_error e = {0};
    size_t k = (size_t)BATCH * kr->n_in;
    memcpy(kr->x, xp, k * sizeof(float));
    for (int i = 0; i < kr->n_t; i++) {
        memcpy(kr->t[i], xp + k, kr->t_n[i] * sizeof(float));
        k += kr->t_n[i];
    }
    aibox_ctx_reseed(kr->train, 99);
    assert_int_equal(aibox_ctx_forward(kr->train, kr->m, kr->x, BATCH, &e), AIBOX_OK);
    memcpy(y, aibox_ctx_output(kr->train, NULL, NULL, NULL), (size_t)BATCH * kr->n_out * sizeof(float));
}

/* Whole-graph gradients (input and every parameter) for a random output
 * gradient r: analytic backward against the example's rule. Returns the
 * values checked. */
static size_t check_gradients(kind_run *kr)
{
    aibox_error e = {0};
    const char *name = aibox_layer_kind_name(kr->kind);
    aibox_ctx_opts co = {.mode = AIBOX_TRAIN, .max_batch = BATCH, .threads = 2, .seed = 1};
    assert_int_equal(aibox_ctx_create(&kr->train, kr->m, &co, &e), AIBOX_OK);
    aibox_ctx_set_input_grad(kr->train, 1);
    size_t ny = (size_t)BATCH * kr->n_out;
    double *x = aibox_test_doubles(kr->nx), *r = aibox_test_doubles(ny);
    float *xf = aibox_test_floats(kr->nx), *rf = aibox_test_floats(ny), *y = aibox_test_floats(ny);
    float *dx = aibox_test_floats(kr->nx);
    aibox_rng rng;
    aibox_rng_seed(&rng, 17);
    aibox_test_fill_uniform(&rng, rf, ny, -1, 1);
    aibox_test_f2d(rf, r, ny);
    size_t k = (size_t)BATCH * kr->n_in;
    memcpy(xf, kr->x, k * sizeof(float));
    for (int i = 0; i < kr->n_t; i++) {
        memcpy(xf + k, kr->t[i], kr->t_n[i] * sizeof(float));
        k += kr->t_n[i];
    }
    aibox_test_f2d(xf, x, kr->nx);
    /* analytic: forward, dL/dy = r, backward */
    aibox_model_zero_grad(kr->m);
    train_fwd(kr, xf, y);
    assert_int_equal(aibox_ctx_set_output_grad(kr->train, rf, &e), AIBOX_OK);
    assert_int_equal(aibox_ctx_backward(kr->train, kr->m, &e), AIBOX_OK);
    memcpy(dx, aibox_ctx_input_grad(kr->train), (size_t)BATCH * kr->n_in * sizeof(float));
    const float *params = aibox_model_params(kr->m), *grads = aibox_model_grads(kr->m);
    k = (size_t)BATCH * kr->n_in;
    for (int i = 0; i < kr->n_t; i++) {
        memcpy(dx + k, grads + (kr->t[i] - params), kr->t_n[i] * sizeof(float));
        k += kr->t_n[i];
    }
    char what[128];
    snprintf(what, sizeof what, "%s: whole-graph gradient", name);
    if (kr->ex->grad == GRAD_STE) {
        const aibox_quantize_settings *q = &kr->m->nodes[kr->node].settings.quantize;
        double lo = q->scale * (q->qmin - q->zero_point), hi = q->scale * (q->qmax - q->zero_point);
        double *want = aibox_test_doubles(kr->nx);
        int inside = 0;
        for (size_t i = 0; i < ny; i++) {
            want[i] = (x[i] >= lo && x[i] <= hi) ? r[i] : 0.0;
            inside += want[i] != 0.0;
        }
        assert_true(inside > 0 && (size_t)inside < ny); /* both sides of the range are seen */
        assert_true(aibox_test_close(what, dx, want, kr->nx, 0, 0));
        free(want);
    } else {
        assert_true(aibox_test_gradcheck(what, NULL, train_fwd, kr, x, kr->nx, r, ny, STEP, dx, 2e-3, 2e-2));
    }
    /* Without the input's gradient (kinds with dx_optional get NULL where
     * an input wants none): the same parameter gradients. */
    aibox_ctx_set_input_grad(kr->train, 0);
    aibox_model_zero_grad(kr->m);
    train_fwd(kr, xf, y);
    assert_int_equal(aibox_ctx_set_output_grad(kr->train, rf, &e), AIBOX_OK);
    assert_int_equal(aibox_ctx_backward(kr->train, kr->m, &e), AIBOX_OK);
    assert_null(aibox_ctx_input_grad(kr->train));
    snprintf(what, sizeof what, "%s: parameter gradients without the input's", name);
    k = (size_t)BATCH * kr->n_in;
    for (int i = 0; i < kr->n_t; i++) {
        AIBOX_TEST_CLOSE_FF(what, grads + (kr->t[i] - params), dx + k, kr->t_n[i], 1e-6, 1e-5);
        k += kr->t_n[i];
    }
    memcpy(kr->x, xf, (size_t)BATCH * kr->n_in * sizeof(float)); /* the inputs as drawn */
    k = (size_t)BATCH * kr->n_in;
    for (int i = 0; i < kr->n_t; i++) {
        memcpy(kr->t[i], xf + k, kr->t_n[i] * sizeof(float));
        k += kr->t_n[i];
    }
    aibox_ctx_free(&kr->train);
    free(x), free(r), free(xf), free(rf), free(y), free(dx);
    return kr->nx;
}

/* Inference outputs of the example's BATCH inputs. */
static void infer(aibox_model *m, const kind_run *kr, int n, const float *x, float *y)
{
    aibox_error e = {0};
    aibox_ctx *c = NULL;
    aibox_ctx_opts co = {.mode = AIBOX_INFER, .max_batch = n, .threads = 2};
    assert_int_equal(aibox_ctx_create(&c, m, &co, &e), AIBOX_OK);
    assert_int_equal(aibox_ctx_infer(c, m, x, n, &e), AIBOX_OK);
    memcpy(y, aibox_ctx_output(c, NULL, NULL, NULL), (size_t)n * kr->n_out * sizeof(float));
    aibox_ctx_free(&c);
}

/* The settings the example promises ("name=value ..."): each of the kind's
 * fields exactly once, with the value the node holds. */
static int check_settings(const kind_run *kr, const aibox_node *nd, const char *when)
{
    const aibox_layer_ops *o = aibox_layer_get(kr->kind);
    char buf[512];
    snprintf(buf, sizeof buf, "%s", kr->ex->settings);
    unsigned listed = 0;
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(tok, '=');
        assert_non_null(eq);
        *eq = 0;
        int f = 0;
        while (f < o->n_fields && strcmp(o->fields[f].name, tok)) f++;
        if (f == o->n_fields) fail_msg("%s: the example lists %s, which is no setting of the kind", o->name, tok);
        if (listed & 1u << f) fail_msg("%s: the example lists %s twice", o->name, tok);
        listed |= 1u << f;
        aibox_node_settings s = nd->settings;
        int ok = o->fields[f].type == AIBOX_SETTING_INT ? *aibox_setting_int(&s, &o->fields[f]) == atoi(eq + 1)
                                                         : *aibox_setting_float(&s, &o->fields[f]) == strtof(eq + 1, NULL);
        if (!ok) fail_msg("%s %s: setting %s is not %s", o->name, when, tok, eq + 1);
        n++;
    }
    for (int f = 0; f < o->n_fields; f++)
        if (!(listed & 1u << f))
            fail_msg("%s: setting %s is missing from the example's settings (tests/nn/test_registry.c)", o->name,
                     o->fields[f].name);
    return n;
}

/* Saved and loaded: the same nodes (kind, inputs, frozen flag, every named
 * setting), parameters and statistics, bit-identical outputs, and saved
 * again the same bytes. The kind's node is frozen for the trip. */
static void check_round_trip(kind_run *kr)
{
    aibox_error e = {0};
    const char *name = aibox_layer_kind_name(kr->kind);
    char p1[128], p2[128];
    snprintf(p1, sizeof p1, "%s/%s.aibox", g_dir, name);
    snprintf(p2, sizeof p2, "%s/%s-again.aibox", g_dir, name);
    assert_int_equal(aibox_model_set_frozen(kr->m, kr->node, 1), AIBOX_OK);
    assert_int_equal(aibox_model_save(kr->m, p1, &e), AIBOX_OK);
    aibox_model *l = NULL, *info = NULL;
    assert_int_equal(aibox_model_load(&l, p1, &e), AIBOX_OK);
    assert_int_equal(aibox_model_load_info(&info, p1, &e), AIBOX_OK);
    assert_int_equal(aibox_model_node_count(l), aibox_model_node_count(kr->m));
    assert_int_equal(aibox_model_output(l), aibox_model_output(kr->m));
    for (int i = 0; i < aibox_model_node_count(l); i++) {
        const aibox_node *a = &kr->m->nodes[i];
        for (int v = 0; v < 2; v++) {
            const aibox_node *b = &(v ? info : l)->nodes[i];
            assert_int_equal(b->kind, a->kind);
            assert_int_equal(b->n_in, a->n_in);
            assert_memory_equal(b->in, a->in, sizeof(int) * (size_t)a->n_in);
            assert_int_equal(b->frozen, a->frozen);
            assert_int_equal(b->c * b->h * b->w, a->c * a->h * a->w);
            const aibox_layer_ops *o = aibox_layer_get(a->kind);
            for (int f = 0; f < o->n_fields; f++) /* bit for bit, named field by named field */
                if (memcmp((const char *)&a->settings + o->fields[f].offset,
                           (const char *)&b->settings + o->fields[f].offset, 4))
                    fail_msg("%s: node %d (%s) setting %s changed in the round trip", name, i, o->name,
                             o->fields[f].name);
        }
        for (int q = 0; q < 2; q++) {
            size_t na = 0, nb = 0;
            const float *pa = aibox_model_node_param(kr->m, i, q, &na), *pb = aibox_model_node_param(l, i, q, &nb);
            assert_int_equal(na, nb);
            if (na) assert_memory_equal(pa, pb, na * sizeof(float));
            pa = aibox_model_node_state(kr->m, i, q, &na), pb = aibox_model_node_state(l, i, q, &nb);
            assert_int_equal(na, nb);
            if (na) assert_memory_equal(pa, pb, na * sizeof(float));
        }
    }
    check_settings(kr, &l->nodes[kr->node], "after the round trip");
    size_t ny = (size_t)BATCH * kr->n_out;
    float *ya = aibox_test_floats(ny), *yb = aibox_test_floats(ny);
    infer(kr->m, kr, BATCH, kr->x, ya);
    infer(l, kr, BATCH, kr->x, yb);
    assert_memory_equal(ya, yb, ny * sizeof(float));
    assert_int_equal(aibox_model_save(l, p2, &e), AIBOX_OK);
    assert_int_equal(aibox_test_run(NULL, 0, "cmp -s '%s' '%s'", p1, p2), 0); /* the same bytes */
    free(ya), free(yb);
    aibox_model_free(&l);
    aibox_model_free(&info);
    unlink(p1), unlink(p2);
    assert_int_equal(aibox_model_set_frozen(kr->m, kr->node, 0), AIBOX_OK);
}

/* Inference three ways: an inference context (fusion planned from the
 * records: a folded affine consumer), the same frozen (prepared weights:
 * Winograd), and a training context's inference pass (nothing folded):
 * within 1e-5 of the largest output. Returns 1 when freezing prepared weights. */
static int check_inference_paths(kind_run *kr)
{
    aibox_error e = {0};
    size_t ny = (size_t)BATCH * kr->n_out;
    float *y[3];
    aibox_ctx *c[3] = {NULL, NULL, NULL};
    int prepared = 0;
    for (int v = 0; v < 3; v++) {
        aibox_ctx_opts co = {.mode = v < 2 ? AIBOX_INFER : AIBOX_TRAIN, .max_batch = BATCH, .threads = 2};
        assert_int_equal(aibox_ctx_create(&c[v], kr->m, &co, &e), AIBOX_OK);
        if (v == 1) {
            size_t before = aibox_ctx_bytes(c[v]);
            assert_int_equal(aibox_ctx_freeze_weights(c[v], kr->m, &e), AIBOX_OK);
            prepared = aibox_ctx_bytes(c[v]) > before;
        }
        assert_int_equal(aibox_ctx_infer(c[v], kr->m, kr->x, BATCH, &e), AIBOX_OK);
        y[v] = (float *)aibox_ctx_output(c[v], NULL, NULL, NULL);
    }
    double big = 0;
    for (size_t i = 0; i < ny; i++) big = fmax(big, fabs(y[2][i]));
    char what[128];
    snprintf(what, sizeof what, "%s: inference context vs a training context's inference",
             aibox_layer_kind_name(kr->kind));
    AIBOX_TEST_CLOSE_FF(what, y[0], y[2], ny, 1e-5 * big, 0);
    snprintf(what, sizeof what, "%s: frozen inference context vs a training context's inference",
             aibox_layer_kind_name(kr->kind));
    AIBOX_TEST_CLOSE_FF(what, y[1], y[2], ny, 1e-5 * big, 0);
    for (int v = 0; v < 3; v++) aibox_ctx_free(&c[v]);
    return prepared;
}

/* Inference: each sample of a batch of BATCH gives what it gives alone
 * (dropout is the identity, batch norm uses its running statistics). */
static double check_batch(kind_run *kr)
{
    size_t ny = (size_t)BATCH * kr->n_out;
    float *yn = aibox_test_floats(ny), *y1 = aibox_test_floats((size_t)kr->n_out);
    infer(kr->m, kr, BATCH, kr->x, yn);
    double worst = 0;
    for (int s = 0; s < BATCH; s++) {
        infer(kr->m, kr, 1, kr->x + (size_t)s * kr->n_in, y1);
        char what[128];
        snprintf(what, sizeof what, "%s: sample %d of a batch of %d vs alone", aibox_layer_kind_name(kr->kind), s,
                 BATCH);
        const float *ys = yn + (size_t)s * kr->n_out;
        AIBOX_TEST_CLOSE_FF(what, y1, ys, (size_t)kr->n_out, 1e-6, 1e-6);
        for (int i = 0; i < kr->n_out; i++) worst = fmax(worst, fabs((double)y1[i] - ys[i]));
    }
    free(yn), free(y1);
    return worst;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void test_every_kind(void **state)
{
    (void)state;
    double t_all = now();
    for (int k = 0; k < AIBOX_LAYER_KIND_COUNT; k++) {
        const char *name = aibox_layer_kind_name((aibox_layer_kind)k);
        const aibox_layer_ops *o = aibox_layer_get((aibox_layer_kind)k);
        if (k == AIBOX_LAYER_INPUT) {
            print_message("# %-18s node 0 of every example\n", name);
            continue;
        }
        const example *ex = &examples[k];
        if (!ex->build)
            fail_msg("layer kind %s has no example in tests/nn/test_registry.c: add one (a small graph, its "
                     "settings) before the kind is complete",
                     name);
        double t0 = now();
        kind_run kr = {.kind = (aibox_layer_kind)k, .ex = ex};
        build(&kr, 1000 + (uint64_t)k);
        int n_set = check_settings(&kr, &kr.m->nodes[kr.node], "as built");
        size_t checked = 0;
        if (!o->forward_only) checked = check_gradients(&kr);
        check_round_trip(&kr);
        int prepared = check_inference_paths(&kr);
        double worst = check_batch(&kr);
        print_message("# %-18s %2d settings round-trip; %s %4zu gradients (input + parameters); batch-%d vs alone "
                      "max diff %.1e;%s %.0f ms\n",
                      name, n_set, o->forward_only ? "forward-only, no" : ex->grad == GRAD_STE ? "STE" : "checked",
                      checked, BATCH, worst, prepared ? " frozen: prepared weights;" : "", 1e3 * (now() - t0));
        free(kr.x);
        aibox_model_free(&kr.m);
    }
    print_message("# every kind: %.2f s\n", now() - t_all);
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/aibox_registry_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return rmdir(g_dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_records),
        cmocka_unit_test(test_every_kind),
    };
    return cmocka_run_group_tests_name("nn/registry", tests, setup, teardown);
}

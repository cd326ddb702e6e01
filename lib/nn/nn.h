/* Model graph internals: nodes, the layer table, contexts. */
#ifndef AIBOX_NN_H
#define AIBOX_NN_H

#include "core/core.h"
#include "core/meta.h" /* aibox_meta_list: typed metadata carried by models */
#include "core/pool.h"
#include "ops/ops.h"

#define AIBOX_NODE_MAX_IN 16

/* Limits every node's nominal shape and parameter tensors obey, whether
 * built in code or read from a file: sizes are computed in checked 64-bit
 * arithmetic against them, so no later int or size_t product can overflow
 * (kernels index a sample with int). */
#define AIBOX_MAX_SIDE (1 << 20)        /* height, width, kernel, stride, padding */
#define AIBOX_MAX_CHANNELS (1 << 24)    /* channels, dense units */
#define AIBOX_MAX_ELEMS 2147483647LL    /* elements of one sample of a node; values of one parameter tensor */

/* ------------------------------------------------------------ named settings
 * What a node is besides its inputs: one struct per layer kind that has
 * settings (relu, sigmoid, flatten, ... have none). Builders fill them with
 * their defaults resolved (stride 0 -> 1, ...); the kind's shape rule
 * range-checks them whoever filled them (a builder or a file); files store
 * them field by field, by name, through the kind's field list
 * (aibox_layer_ops.fields, lib/io/model_io.c). */
typedef struct aibox_conv_settings {
    int out_channels, kernel_h, kernel_w, stride_h, stride_w;
    int pad_top, pad_left, pad_bottom, pad_right;
    int groups; /* divides the in and out channels */
    int bias;   /* 0 or 1 */
} aibox_conv_settings;
typedef struct aibox_dense_settings {
    int units, bias;
} aibox_dense_settings;
typedef struct aibox_pool_settings { /* maxpool, avgpool */
    int kernel_h, kernel_w, stride_h, stride_w;
    int pad_top, pad_left, pad_bottom, pad_right;
    int ceil_mode, count_include_pad; /* 0 or 1 each */
} aibox_pool_settings;
typedef struct aibox_leaky_relu_settings {
    float alpha;
} aibox_leaky_relu_settings;
typedef struct aibox_clamp_settings {
    float lo, hi;
} aibox_clamp_settings;
typedef struct aibox_dropout_settings {
    float rate;
} aibox_dropout_settings;
typedef struct aibox_batchnorm_settings {
    float eps, momentum;
} aibox_batchnorm_settings;
typedef struct aibox_zeropad_settings {
    int top, left, bottom, right;
} aibox_zeropad_settings;
typedef struct aibox_upsample_settings { /* nearest, bilinear */
    int out_h, out_w;
} aibox_upsample_settings;
typedef struct aibox_quantize_settings {
    float scale, zero_point, qmin, qmax;
} aibox_quantize_settings;

/* A node's settings: the member of its kind (the record's field list says
 * which bytes are meaningful); zeroed when a kind has none. */
typedef union aibox_node_settings {
    aibox_conv_settings conv;
    aibox_dense_settings dense;
    aibox_pool_settings pool;
    aibox_leaky_relu_settings leaky_relu;
    aibox_clamp_settings clamp;
    aibox_dropout_settings dropout;
    aibox_batchnorm_settings batchnorm;
    aibox_zeropad_settings zeropad;
    aibox_upsample_settings upsample;
    aibox_quantize_settings quantize;
} aibox_node_settings;

typedef enum aibox_setting_type { AIBOX_SETTING_INT = 1, AIBOX_SETTING_FLOAT = 2 } aibox_setting_type;

/* One named field of a kind's settings: an int or a float at offset in
 * aibox_node_settings. v1_slot: where graph version 1 files (positional
 * slots: 12 ints, 4 floats per node) kept it, in the int or the float slots
 * by type; -1 for a field added after version 1. */
typedef struct aibox_setting_field {
    const char *name;
    aibox_setting_type type;
    size_t offset;
    int v1_slot;
} aibox_setting_field;
#define AIBOX_SETTINGS_MAX_FIELDS 16 /* per kind (the loader tracks them in a bit mask) */
#define AIBOX_V1_INT_SLOTS 12         /* graph version 1: int slots per node */
#define AIBOX_V1_FLOAT_SLOTS 4        /* graph version 1: float slots per node (stored as their bits) */

/* The field's value, as the int or float it is. */
static inline int *aibox_setting_int(aibox_node_settings *s, const aibox_setting_field *f)
{
    return (int *)(void *)((char *)s + f->offset);
}
static inline float *aibox_setting_float(aibox_node_settings *s, const aibox_setting_field *f)
{
    return (float *)(void *)((char *)s + f->offset);
}

/* A node: its kind, its inputs and its kind's settings. Parameters live in
 * the model's single block at param_off[]. */
typedef struct aibox_node {
    aibox_layer_kind kind;
    int n_in;
    int in[AIBOX_NODE_MAX_IN];
    aibox_node_settings settings;
    int c, h, w;                     /* nominal output shape per sample */
    size_t n_param[2], param_off[2]; /* trainable tensors (weight, bias / gamma, beta) */
    size_t n_state[2], state_off[2]; /* non-trainable (BN running mean, variance) */
    int frozen;                      /* 1: parameters receive no updates */
} aibox_node;

/* An 8-bit model's quantisation (lib/quant/quant.h says what it means;
 * lib/nn/qtable.c keeps it). */
typedef struct aibox_qweights {
    int8_t *w;      /* n_param[0] values in the float weights' layout (PyTorch's OIHW; dense out x in) */
    int32_t *bias;  /* out channels (zeros when the node has no bias) */
    float *wscale;  /* per out channel */
    int32_t wofs;
    int float_product; /* 1: the requantisation multiplier from in_scale * wscale in float (TFLite's uint8 rule) */
    int out;        /* out channels */
} aibox_qweights;

struct aibox_quant {
    int n_nodes;
    float *scale;      /* per node: its output's scale; 0: not quantised (the plan then refuses the model) */
    int32_t *zp;       /* per node: its output's zero point, 0..255 (uint8 domain) */
    aibox_qweights *qw; /* per node; w NULL for nodes without weights */
};
typedef struct aibox_quant aibox_quant;

/* A table for n_nodes nodes, nothing quantised yet. */
AIBOX_INTERNAL aibox_quant *aibox_quant_create(int n_nodes);
AIBOX_INTERNAL void aibox_quant_free(aibox_quant **q);
/* Node i's integer weights: allocates w (count), bias and wscale (out). */
AIBOX_INTERNAL aibox_status aibox_quant_alloc_weights(aibox_quant *q, int i, size_t count, int out, aibox_error *err);
/* The model's float parameters of every quantised node from its integers:
 * w = wscale (w + wofs), b = bias * in_scale * wscale (in double, then float). */
AIBOX_INTERNAL void aibox_quant_dequantize(aibox_model *m);
/* The rule for 8-bit weights, one place for aibox_model_quantize and the
 * trainer's fake quantisation (which must round alike): nd's output channels
 * when it is a convolution or dense layer (0 for any other kind); and one
 * channel's n weights w: scale max|w| / 127 (1 for zeros), each rounded half
 * away from zero to w / scale in -127..127 (into q unless NULL) and replaced
 * by scale * that. Returns the scale. */
AIBOX_INTERNAL int aibox_quant_out_channels(const aibox_node *nd);
AIBOX_INTERNAL float aibox_quant_weights_row(float *w, size_t n, int8_t *q);
/* Hands q to m (which frees it with itself); a model already holding one frees it first. */
AIBOX_INTERNAL void aibox_model_set_quant(aibox_model *m, aibox_quant *q);



struct aibox_model {
    int in_c, in_h, in_w;
    aibox_node *nodes;
    int n_nodes, cap;
    int output;
    int finished;
    int weightless; /* loaded by aibox_model_load_info: graph and metadata, no parameter blocks */
    aibox_status build_status; /* first builder error (sticky) */
    char build_msg[AIBOX_ERROR_MSG_LEN];
    float *params, *grads, *state;
    size_t n_params, n_state;
    /* A finished model that gets new nodes keeps the parameters and statistics
     * of its first kept_nodes nodes here until the next finish (fine-tuning:
     * a pretrained trunk, a new head). Node order fixes the block layout, so
     * they are the leading kept_np / kept_ns floats of the new blocks. */
    float *kept_params, *kept_state;
    size_t kept_np, kept_ns;
    aibox_meta_list meta;
    aibox_quant *quant; /* NULL: a float model */
};

/* Everything a kernel call needs for one node in one pass. */
typedef struct aibox_run {
    const aibox_node *nd;
    int n, training;
    /* 1 with training: a probe context's pass (aibox_ctx_create_probe):
     * kept for backward, computed with inference behaviour (batch norm's
     * running statistics, dropout off), the model never written */
    int eval;
    int in_c[AIBOX_NODE_MAX_IN], in_h[AIBOX_NODE_MAX_IN], in_w[AIBOX_NODE_MAX_IN];
    const float *x[AIBOX_NODE_MAX_IN];
    float *dx[AIBOX_NODE_MAX_IN]; /* NULL where no gradient is needed */
    /* backward, kinds with dx_assigns: 1 when dx[j] was not zeroed and this
     * node is its only writer, so backward must store every element of it
     * (dx = ..., not dx += ...): the context then skips zeroing it */
    unsigned char dx_assign[AIBOX_NODE_MAX_IN];
    int c, h, w;
    float *y;
    const float *dy;
    const float *p[2];
    float *dp[2];  /* NULL: not wanted (probe contexts; dp[0] NULL means dp[1] is too) */
    float *st[2];  /* running statistics (written in training) */
    float *ws;     /* scratch: threads x ws_stride floats, one slice per running thread */
    size_t ws_stride;
    float *partial; /* per-task partial parameter gradients: threads x partial_stride */
    size_t partial_stride;
    void *saved;   /* per-node memory kept from forward to backward */
    aibox_rng *rng;
    uint64_t draw;  /* one draw from rng per call, for work split in blocks */
    aibox_pool *pool;
    int threads;   /* tasks to split work into (the pool's threads) */
    unsigned features; /* aibox_cpu_features() of the context, read once at its creation */
    /* Fusion (AIBOX_FUSE_*, planned by the context): */
    int fuse_relu; /* the following ReLU is applied here (in place) */
    const float *fuse_scale, *fuse_shift; /* inference: a folded affine consumer (replaces the bias p[1]) */
    /* Frozen inference contexts: the weights the kind prepared (prepare
     * hook), then it runs that way; else NULL. */
    const float *prepared;
    float *prep_ws; /* scratch shared by the threads when running prepared: prep_ws_floats */
    size_t prep_ws_floats;
} aibox_run;

/* What a producer's forward can take over from its sole consumer (ctx.c
 * plans it once per context): the consumer's node then shares the
 * producer's buffers and does nothing. */
enum {
    /* max(0, x) in place (run.fuse_relu); the producer's backward first
     * masks dy by y > 0. */
    AIBOX_FUSE_RELU = 1,
    /* Inference only: y * scale + shift per output channel, computed from
     * the consumer's parameters by its fold hook (run.fuse_scale,
     * fuse_shift). The producer's p[1], when it has one, is a per-channel
     * bias the fold takes in. */
    AIBOX_FUSE_AFFINE = 2,
};

/* One record per layer kind, keyed by aibox_layer_kind (layers.c). */
typedef struct aibox_layer_ops {
    const char *name;
    int min_in, max_in;
    /* Named settings (saved by name; see aibox_setting_field). */
    const aibox_setting_field *fields;
    int n_fields;
    /* 1: the kind has no backward, by design (a backward pass through it is
     * refused); otherwise backward must exist (tests/nn/test_registry.c). */
    int forward_only;
    /* 1: backward skips an input's gradient when dx[j] is NULL; 0: every
     * dx[j] must be a buffer (the context then passes one it does not report). */
    int dx_optional;
    /* 1: backward honours run.dx_assign (stores every element of an input
     * gradient it is the only writer of, instead of adding to zeros). */
    unsigned char dx_assigns;
    unsigned char fuse_accepts; /* AIBOX_FUSE_* work this kind's forward can take over from its sole consumer */
    unsigned char fuses_as;     /* AIBOX_FUSE_* this kind can be taken over as */
    /* AIBOX_FUSE_AFFINE consumers: its per-channel scale and shift (of
     * channels values each) from its parameters p, statistics st and the
     * producer's bias (NULL when it has none). */
    void (*fold)(const aibox_node *nd, const float *const p[2], const float *const st[2], const float *bias,
                 int channels, float *scale, float *shift);
    /* Frozen inference contexts (aibox_ctx_freeze_weights): the floats of
     * weights the kind prepares once for this input shape (0: it runs as
     * usual) and, in *ws_floats, the scratch shared by the threads it then
     * needs; prepare computes them from r->p. May be NULL. */
    size_t (*prepared_floats)(const aibox_run *r, size_t *ws_floats);
    void (*prepare)(const aibox_run *r, float *prepared);
    /* Output shape from the input shapes; parameter and state sizes. It
     * range-checks the node's settings too: the one check for nodes built in
     * code and nodes read from files. Writes a reason into why on failure. */
    int (*shape)(const aibox_node *nd, const int *ic, const int *ih, const int *iw, int out[3], size_t n_param[2],
                 size_t n_state[2], char *why, size_t why_len);
    void (*init)(const aibox_node *nd, const int *ic, const int *ih, const int *iw, float *p0, float *p1, float *s0,
                 float *s1, aibox_rng *rng);
    size_t (*ws_floats)(const aibox_run *r);    /* per thread; may be NULL */
    size_t (*partial_floats)(const aibox_run *r); /* per task, backward; may be NULL */
    size_t (*saved_bytes)(const aibox_run *r);  /* training only; may be NULL */
    void (*forward)(aibox_run *r);
    void (*backward)(aibox_run *r);
} aibox_layer_ops;

AIBOX_INTERNAL const aibox_layer_ops *aibox_layer_get(aibox_layer_kind k);
/* A node's output shape and parameter sizes for the given input shapes: the
 * kind's shape rule, then the limits above. 0 with a reason in why when the
 * node cannot take these inputs. The one entry builders and contexts use. */
AIBOX_INTERNAL int aibox_node_shape(const aibox_node *nd, const int *ic, const int *ih, const int *iw, int out[3],
                                    size_t n_param[2], size_t n_state[2], char *why, size_t why_len);

/* The record of the kind named name (as aibox_layer_kind_name), or NULL. */
AIBOX_INTERNAL const aibox_layer_ops *aibox_layer_by_name(const char *name, aibox_layer_kind *kind);

/* Builder core shared by the public builders and the loader: appends a node
 * after checking its inputs and computing its nominal shape (settings may be
 * NULL for a kind without any). */
AIBOX_INTERNAL int aibox_model_add_node(aibox_model *m, aibox_layer_kind kind, int n_in, const int *in,
                                        const aibox_node_settings *settings);
/* A pooling node's (maxpool, avgpool) description for an ic x ih x iw input. */
AIBOX_INTERNAL void aibox_pool_node_desc(const aibox_node *nd, int ic, int ih, int iw, aibox_pool_desc *d);
/* A convolution node's kernel description for an ic x ih x iw input. */
AIBOX_INTERNAL void aibox_conv_node_desc(const aibox_node *nd, int ic, int ih, int iw, aibox_conv_desc *d);
/* A context's thread pool (borrowed), for work between its forwards (PaDiM's
 * scoring): one pool per context, so two pools never compete for the cores. */
AIBOX_INTERNAL aibox_pool *aibox_ctx_pool(aibox_ctx *ctx);
/* A context's aibox_cpu_features(), read once at its creation. */
AIBOX_INTERNAL unsigned aibox_ctx_features(const aibox_ctx *ctx);
/* Probe contexts (Grad-CAM, lib/classify/gradcam.c): the memory of a
 * training context (activations kept, gradients, saved masks) with the
 * behaviour of an inference one (batch norm's running statistics, no
 * dropout) and no fusion, so every node's activation and gradient is its
 * own (a convolution shows its values before the ReLU). Forward with
 * aibox_ctx_infer (the model is only read; several probe contexts may share
 * a model with inference contexts across threads). */
AIBOX_INTERNAL aibox_status aibox_ctx_create_probe(aibox_ctx **ctx, const aibox_model *m, const aibox_ctx_opts *opts,
                                                   aibox_error *err);
/* After a forward on a probe context: sets node from's gradient to dfrom
 * (n x its size) and backpropagates down to node to (an ancestor of from),
 * computing no parameter gradient (the model is only read). Afterwards
 * aibox_ctx_node_grad gives the gradients of to and of the nodes between. */
AIBOX_INTERNAL aibox_status aibox_ctx_probe_backward(aibox_ctx *ctx, const aibox_model *m, int from,
                                                     const float *dfrom, int to, aibox_error *err);
/* A node's gradient from the last backward: n x c x h x w (borrowed), or
 * NULL (an inference context, a node out of range). */
AIBOX_INTERNAL const float *aibox_ctx_node_grad(const aibox_ctx *ctx, int node, int *c, int *h, int *w);
/* The gradient block, allocated (zeroed) on first need: models loaded or
 * built for inference never pay for it. */
AIBOX_INTERNAL aibox_status aibox_model_grads_ready(aibox_model *m, aibox_error *err);
/* Allocates parameter/state blocks (after the last node); init: 1 to draw initial values. */
AIBOX_INTERNAL aibox_status aibox_model_alloc_params(aibox_model *m, int init, uint64_t seed, aibox_error *err);

#endif

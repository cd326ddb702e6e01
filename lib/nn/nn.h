/* Model graph internals: nodes, the layer table, contexts. */
#ifndef AIBOX_NN_H
#define AIBOX_NN_H

#include "core/core.h"
#include "core/meta.h" /* aibox_meta_list: typed metadata carried by models */
#include "core/pool.h"
#include "ops/ops.h"

#define AIBOX_NODE_MAX_IN 16
#define AIBOX_NODE_NI 12 /* integer configuration slots per node */
#define AIBOX_NODE_NF 4  /* float configuration slots per node */

/* Limits every node's nominal shape and parameter tensors obey, whether
 * built in code or read from a file: sizes are computed in checked 64-bit
 * arithmetic against them, so no later int or size_t product can overflow
 * (kernels index a sample with int). */
#define AIBOX_MAX_SIDE (1 << 20)        /* height, width, kernel, stride, padding */
#define AIBOX_MAX_CHANNELS (1 << 24)    /* channels, dense units */
#define AIBOX_MAX_ELEMS 2147483647LL    /* elements of one sample of a node; values of one parameter tensor */

/* A node: its kind, its inputs and a small kind-specific configuration
 * (documented per kind in layers.c). Parameters live in the model's single
 * block at param_off[]. */
typedef struct aibox_node {
    aibox_layer_kind kind;
    int n_in;
    int in[AIBOX_NODE_MAX_IN];
    int ip[AIBOX_NODE_NI];
    float fp[AIBOX_NODE_NF];
    int c, h, w;                     /* nominal output shape per sample */
    size_t n_param[2], param_off[2]; /* trainable tensors (weight, bias / gamma, beta) */
    size_t n_state[2], state_off[2]; /* non-trainable (BN running mean, variance) */
    int frozen;                      /* 1: parameters receive no updates */
} aibox_node;

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
};

/* Everything a kernel call needs for one node in one pass. */
typedef struct aibox_run {
    const aibox_node *nd;
    int n, training;
    int in_c[AIBOX_NODE_MAX_IN], in_h[AIBOX_NODE_MAX_IN], in_w[AIBOX_NODE_MAX_IN];
    const float *x[AIBOX_NODE_MAX_IN];
    float *dx[AIBOX_NODE_MAX_IN]; /* NULL where no gradient is needed */
    int c, h, w;
    float *y;
    const float *dy;
    const float *p[2];
    float *dp[2];  /* NULL when frozen */
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
    int fuse_relu; /* conv: the following ReLU is applied here (in place) */
    const float *fuse_scale, *fuse_shift; /* conv, inference: a folded batch norm (scale, shift) */
    const float *wino_u; /* conv, frozen inference context: Winograd weights (then it runs that way), else NULL */
    float *wino_vm;      /* Winograd tile scratch shared by the threads: wino_vm_floats */
    size_t wino_vm_floats;
} aibox_run;

typedef struct aibox_layer_ops {
    const char *name;
    int min_in, max_in;
    /* Output shape from the input shapes; parameter and state sizes. Writes a
     * reason into why on failure. */
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

/* Builder core shared by the public builders and the loader: appends a node
 * after checking its inputs and computing its nominal shape. */
AIBOX_INTERNAL int aibox_model_add_node(aibox_model *m, aibox_layer_kind kind, int n_in, const int *in, const int *ip,
                                        const float *fp);
/* A convolution node's kernel description for an ic x ih x iw input. */
AIBOX_INTERNAL void aibox_conv_node_desc(const aibox_node *nd, int ic, int ih, int iw, aibox_conv_desc *d);
/* A context's thread pool (borrowed), for work between its forwards (PaDiM's
 * scoring): one pool per context, so two pools never compete for the cores. */
AIBOX_INTERNAL aibox_pool *aibox_ctx_pool(aibox_ctx *ctx);
/* The gradient block, allocated (zeroed) on first need: models loaded or
 * built for inference never pay for it. */
AIBOX_INTERNAL aibox_status aibox_model_grads_ready(aibox_model *m, aibox_error *err);
/* Allocates parameter/state blocks (after the last node); init: 1 to draw initial values. */
AIBOX_INTERNAL aibox_status aibox_model_alloc_params(aibox_model *m, int init, uint64_t seed, aibox_error *err);

#endif

/*
 * libaibox — a pure-C deep-learning library for visual quality inspection.
 *
 * One public header. Conventions:
 *  - Every public symbol starts with aibox_ / AIBOX_.
 *  - Every fallible call returns an aibox_status; where a message helps, the
 *    caller passes an aibox_error (may be NULL) that receives a readable line.
 *    The library never calls exit() or abort() on a user's error.
 *  - Ownership: every *_create / *_load has a *_free taking the pointer; the
 *    caller owns what it created. Pointers returned by getters are borrowed and
 *    stay valid until the owning object is freed (or, for context buffers, until
 *    the next call on that context).
 *  - Thread-safety: there is no mutable global state of libaibox's own. A model
 *    is read-only during inference, so several threads may run inference on one
 *    model at once, each with its own aibox_ctx. Training (forward in training
 *    mode, backward, optimizer steps, zero_grad) mutates the model and must not
 *    run concurrently with anything else on that model. The one process-wide
 *    setting is OpenBLAS's own thread count and kernel set (aibox_blas_*).
 *  - Tensors are float32, NCHW, row-major, contiguous, 64-byte aligned.
 */
#ifndef AIBOX_H
#define AIBOX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define AIBOX_API __attribute__((visibility("default")))
#else
#define AIBOX_API
#endif

#define AIBOX_VERSION_MAJOR 0
#define AIBOX_VERSION_MINOR 7
#define AIBOX_VERSION_PATCH 1
#define AIBOX_VERSION "0.7.1"
/* Encoded as MAJOR*10000 + MINOR*100 + PATCH for compile-time comparisons.
 * The binary interface has its own number, the SONAME's: libaibox.so.1 since
 * 0.2.0 (options structs for contexts and loaders changed signatures),
 * libaibox.so.2 since 0.3.0 (aibox_fit_opts gained the anomaly method),
 * libaibox.so.3 since 0.4.0 (aibox_fit_opts gained the auto-encoder's options
 * and the tiling, aibox_patchcore_opts the half-precision bank), libaibox.so.4
 * since 0.5.0 (aibox_import_opts gained float_only, aibox_train_opts
 * fake_quant_weights). 0.6.0 only adds functions (aibox/dist.h, store.h,
 * explain.h): still libaibox.so.4. */
#define AIBOX_ABI_VERSION 4
#define AIBOX_VERSION_NUMBER (AIBOX_VERSION_MAJOR * 10000 + AIBOX_VERSION_MINOR * 100 + AIBOX_VERSION_PATCH)

/* Version of the library actually linked (may differ from the header's). */
AIBOX_API const char *aibox_version(void);

/* ------------------------------------------------------------------ status */
typedef enum aibox_status {
    AIBOX_OK = 0,
    AIBOX_E_INVALID = 1,     /* a bad argument or option */
    AIBOX_E_NOMEM = 2,       /* an allocation failed */
    AIBOX_E_IO = 3,          /* reading or writing a file failed */
    AIBOX_E_FORMAT = 4,      /* a file is not what it should be (magic, version, structure) */
    AIBOX_E_CORRUPT = 5,     /* a file failed its checksum or is truncated */
    AIBOX_E_UNSUPPORTED = 6, /* valid input that this build cannot handle */
    AIBOX_E_SHAPE = 7,       /* tensor shapes do not fit together */
    AIBOX_E_STATE = 8,       /* a call made in the wrong state (e.g. backward before forward) */
    AIBOX_E_NOTFOUND = 9,    /* a key, file or node that does not exist */
    AIBOX_E_INTERRUPTED = 10, /* stopped at the caller's request */
    AIBOX_E_NONFINITE = 11    /* a computation gave NaN or infinity (a diverged training, an output
                                 that overflowed): never used as a result */
} aibox_status;

#define AIBOX_ERROR_MSG_LEN 512
/* Caller-owned error record: one line naming what failed and why. */
typedef struct aibox_error {
    aibox_status code;
    char msg[AIBOX_ERROR_MSG_LEN];
} aibox_error;

/* A short fixed description of a status code ("invalid argument", ...). */
AIBOX_API const char *aibox_strerror(aibox_status s);

/* ------------------------------------------------------------------ rng */
/* Seeded random generator (xoshiro256**); an object, never global state. */
typedef struct aibox_rng {
    uint64_t s[4];
} aibox_rng;
AIBOX_API void aibox_rng_seed(aibox_rng *r, uint64_t seed);
AIBOX_API uint64_t aibox_rng_u64(aibox_rng *r);
AIBOX_API float aibox_rng_uniform(aibox_rng *r);   /* [0, 1) */
AIBOX_API float aibox_rng_normal(aibox_rng *r);    /* N(0, 1) */
AIBOX_API uint32_t aibox_rng_below(aibox_rng *r, uint32_t n); /* [0, n), unbiased */

/* ------------------------------------------------------------------ tensor */
#define AIBOX_MAX_DIMS 4
typedef struct aibox_tensor {
    float *data;               /* 64-byte aligned when owned */
    int ndim;                  /* 1..4 */
    int shape[AIBOX_MAX_DIMS]; /* N, C, H, W order for 4-D */
    int owns;                  /* 1: data is freed by aibox_tensor_free; 0: a view */
} aibox_tensor;

/* Zero-filled tensor; free with aibox_tensor_free. */
AIBOX_API aibox_status aibox_tensor_create(aibox_tensor *t, int ndim, const int *shape, aibox_error *err);
/* A view on rows [first, first+count) of the leading dimension of src; shares src's data. */
AIBOX_API aibox_status aibox_tensor_view(aibox_tensor *view, const aibox_tensor *src, int first, int count,
                                         aibox_error *err);
/* A view of the same data with another shape of equal element count. */
AIBOX_API aibox_status aibox_tensor_reshape(aibox_tensor *view, const aibox_tensor *src, int ndim, const int *shape,
                                            aibox_error *err);
AIBOX_API size_t aibox_tensor_count(const aibox_tensor *t);
/* Frees owned data (not views) and clears the struct; safe on a zeroed struct. */
AIBOX_API void aibox_tensor_free(aibox_tensor *t);

/* 64-byte aligned allocation (NULL on failure) and its release. */
AIBOX_API void *aibox_alloc(size_t bytes);
AIBOX_API void aibox_free(void *p);

/* ------------------------------------------------------------------ BLAS */
/* OpenBLAS picks its kernels once per process from the CPU it recognises; on
 * CPUs newer than the packaged OpenBLAS it falls back to slow generic kernels
 * (or OPENBLAS_CORETYPE pins a weaker set). aibox_blas_setup() (called by
 * every context creation) switches OpenBLAS to the best kernel set this CPU
 * supports. Set AIBOX_BLAS_CORE=keep to leave OpenBLAS's choice alone, or
 * AIBOX_BLAS_CORE=<name> (e.g. Haswell) to force one. Idempotent, thread-safe. */
AIBOX_API void aibox_blas_setup(void);
/* Name of the active OpenBLAS kernel set, e.g. "SkylakeX" (after setup). */
AIBOX_API const char *aibox_blas_core(void);
/* One line: active core, what OpenBLAS had picked, and why it changed. */
AIBOX_API const char *aibox_blas_info(void);
/* Threading: each context runs its own small thread pool and splits every
 * layer over it (batches by sample, single images by output pixels/units);
 * setup therefore runs OpenBLAS itself single-threaded, process-wide, so
 * the two never compete for cores. The thread count is per context (see
 * aibox_ctx_create_ex); the default is $AIBOX_THREADS or the online CPUs. */
AIBOX_API int aibox_default_num_threads(void);

/* ------------------------------------------------------------------ model graph */
/* A model is a list of nodes in topological order; each names its input nodes.
 * Node 0 is the input. Builder calls return the new node's index (>= 0), or a
 * negative status (-AIBOX_E_...) on error. Errors are sticky: a builder call
 * given a negative input just returns it, so a chain can be checked once, and
 * aibox_model_finish() reports the first error with its message (also
 * readable at any time through aibox_model_last_error). */
typedef struct aibox_model aibox_model;
typedef struct aibox_ctx aibox_ctx;

typedef enum aibox_layer_kind {
    AIBOX_LAYER_INPUT = 0,
    AIBOX_LAYER_CONV2D,
    AIBOX_LAYER_DENSE,
    AIBOX_LAYER_MAXPOOL,
    AIBOX_LAYER_AVGPOOL,
    AIBOX_LAYER_GLOBAL_AVGPOOL,
    AIBOX_LAYER_RELU,
    AIBOX_LAYER_RELU6,
    AIBOX_LAYER_LEAKY_RELU,
    AIBOX_LAYER_SIGMOID,
    AIBOX_LAYER_CLAMP,
    AIBOX_LAYER_DROPOUT,
    AIBOX_LAYER_BATCHNORM,
    AIBOX_LAYER_ZEROPAD,
    AIBOX_LAYER_FLATTEN,
    AIBOX_LAYER_CONCAT,
    AIBOX_LAYER_ADD,
    AIBOX_LAYER_UPSAMPLE_NEAREST,
    AIBOX_LAYER_UPSAMPLE_BILINEAR,
    AIBOX_LAYER_SOFTMAX,
    AIBOX_LAYER_QUANTIZE,
    AIBOX_LAYER_KIND_COUNT
} aibox_layer_kind;

/* An empty model whose input is channels x height x width per sample. */
AIBOX_API aibox_status aibox_model_create(aibox_model **m, int channels, int height, int width, aibox_error *err);
AIBOX_API void aibox_model_free(aibox_model **m);

/* Convolution: padding (top, left, bottom, right) in pixels; groups divides
 * both channel counts (groups == in channels == out channels: depthwise). */
typedef struct aibox_conv_opts {
    int out_channels;
    int kernel_h, kernel_w;
    int stride_h, stride_w;       /* 0 means 1 */
    int pad_top, pad_left, pad_bottom, pad_right;
    int groups;                   /* 0 means 1 */
    int bias;                     /* 1: with bias */
} aibox_conv_opts;
AIBOX_API int aibox_conv2d(aibox_model *m, int in, const aibox_conv_opts *o);
/* Square kernel, 'same'-style symmetric padding pad, with bias. */
AIBOX_API int aibox_conv2d_simple(aibox_model *m, int in, int out_channels, int kernel, int stride, int pad);
AIBOX_API int aibox_dense(aibox_model *m, int in, int units, int bias);

typedef struct aibox_pool_opts {
    int kernel_h, kernel_w;
    int stride_h, stride_w;       /* 0 means the kernel size */
    int pad_top, pad_left, pad_bottom, pad_right;
    int ceil_mode;                /* 1: output size rounds up (Caffe/PyTorch ceil_mode) */
    int count_include_pad;        /* average pool: 1 divides by the full window */
} aibox_pool_opts;
AIBOX_API int aibox_maxpool(aibox_model *m, int in, const aibox_pool_opts *o);
AIBOX_API int aibox_avgpool(aibox_model *m, int in, const aibox_pool_opts *o);
AIBOX_API int aibox_global_avgpool(aibox_model *m, int in);
AIBOX_API int aibox_relu(aibox_model *m, int in);
AIBOX_API int aibox_relu6(aibox_model *m, int in);
AIBOX_API int aibox_leaky_relu(aibox_model *m, int in, float alpha);
AIBOX_API int aibox_sigmoid(aibox_model *m, int in);
AIBOX_API int aibox_clamp(aibox_model *m, int in, float lo, float hi);
AIBOX_API int aibox_dropout(aibox_model *m, int in, float rate);
AIBOX_API int aibox_batchnorm(aibox_model *m, int in, float eps, float momentum);
AIBOX_API int aibox_zeropad(aibox_model *m, int in, int top, int left, int bottom, int right);
AIBOX_API int aibox_flatten(aibox_model *m, int in);
AIBOX_API int aibox_concat(aibox_model *m, int n_inputs, const int *inputs); /* along channels */
AIBOX_API int aibox_add(aibox_model *m, int a, int b);
AIBOX_API int aibox_upsample_nearest(aibox_model *m, int in, int out_h, int out_w);
AIBOX_API int aibox_upsample_bilinear(aibox_model *m, int in, int out_h, int out_w); /* align_corners = false */
AIBOX_API int aibox_softmax(aibox_model *m, int in); /* over channels */
/* Fake quantisation: x -> scale * (clamp(round(x / scale) + zp, qmin, qmax) - zp);
 * the gradient passes straight through inside the representable range. */
AIBOX_API int aibox_quantize(aibox_model *m, int in, float scale, float zero_point, float qmin, float qmax);

/* Ends building: checks the graph, allocates parameters and initialises them
 * from the seed (He-uniform on fan-in for conv/dense, zero bias, BN gamma 1,
 * beta 0, running mean 0, variance 1). The last node is the output unless
 * aibox_model_set_output chose another. */
AIBOX_API aibox_status aibox_model_finish(aibox_model *m, uint64_t seed, aibox_error *err);
/* Draws all parameters again from a new seed (a finished model). */
AIBOX_API aibox_status aibox_model_init_params(aibox_model *m, uint64_t seed, aibox_error *err);
/* Frozen nodes keep their parameters through optimizer steps (fine-tuning). */
AIBOX_API aibox_status aibox_model_set_frozen(aibox_model *m, int node, int frozen);
AIBOX_API aibox_status aibox_model_set_output(aibox_model *m, int node);
/* The end of the stage at a stride: the last node (up to the output) whose
 * output is exactly the input size / stride in both directions (ResNet's
 * layer1..4 for 4..32, MobileNet's last block at that resolution), or -1. */
AIBOX_API int aibox_model_stride_node(const aibox_model *m, int stride);
/* The embedding of a classifier or feature extractor: its global pooling,
 * i.e. the last pooling node whose output is 1x1 while its input is larger
 * (MobileNet's 7x7 average pool, ResNet's global pool), extended over the
 * element-wise nodes that directly follow it (a quantised model's clamp).
 * Without one (a fully convolutional model) the last node larger than 1x1;
 * -1 when there is no such node either. */
AIBOX_API int aibox_model_embedding_node(const aibox_model *m);
/* A new finished model made of node and the nodes it depends on (in their
 * order), with their parameters, statistics, frozen flags and the metadata
 * ("aibox.tap.*" node indices renumbered, -1 where cut away); its output is
 * node's copy. map (NULL, or src's node count long) receives each source
 * node's new index, -1 where dropped. Builder calls on a finished model
 * (this one or any other) reopen it: the existing nodes keep their values and
 * the next aibox_model_finish initialises only the new ones; a head on a
 * pretrained trunk is built that way (on a float model: the extract of an
 * 8-bit model is 8-bit, its integers kept, and takes no new nodes until
 * aibox_model_dequantize). */
AIBOX_API aibox_status aibox_model_extract(aibox_model **dst, const aibox_model *src, int node, int *map,
                                           aibox_error *err);
AIBOX_API int aibox_model_output(const aibox_model *m);
AIBOX_API int aibox_model_node_count(const aibox_model *m);
/* 8-bit models (aibox-quantize's, imported 8-bit TFLite ones): 1 when m
 * carries integer weights and per-node scales. Its inference contexts then
 * run in integer arithmetic (TFLite's, lib/ops/qops.h): the output node's
 * floats are made by every forward, another node's on its first
 * aibox_ctx_node_output after a forward (dequantised from its bytes, into
 * the context's memory). Training contexts and everything else see its float
 * twin: weights and biases exactly equal to the dequantised integers. */
AIBOX_API int aibox_model_quantized(const aibox_model *m);
/* Drops m's integer tables: m is then its float twin only. */
AIBOX_API void aibox_model_dequantize(aibox_model *m);
AIBOX_API aibox_layer_kind aibox_model_node_kind(const aibox_model *m, int node);
/* A node's input count (0 for the input node, -1 out of range); in (may be
 * NULL) receives up to max of their indices. */
AIBOX_API int aibox_model_node_inputs(const aibox_model *m, int node, int *in, int max);
AIBOX_API const char *aibox_layer_kind_name(aibox_layer_kind k);
/* The nominal per-sample output shape of a node (c, h, w) for the build-time input. */
AIBOX_API void aibox_model_node_shape(const aibox_model *m, int node, int *c, int *h, int *w);
AIBOX_API void aibox_model_input_shape(const aibox_model *m, int *c, int *h, int *w);
AIBOX_API size_t aibox_model_param_count(const aibox_model *m); /* trainable */
/* Contiguous blocks of all parameters and their gradients (borrowed). The
 * gradient block exists once training needs it (backward, an optimizer
 * step, zero_grad or this call allocate it, zeroed): a model loaded or built
 * only for inference never holds one. aibox_model_grads returns NULL when
 * that allocation fails. */
AIBOX_API float *aibox_model_params(aibox_model *m);
AIBOX_API float *aibox_model_grads(aibox_model *m);
/* A node's parameters: index 0 weight, 1 bias (conv/dense); BN: 0 gamma,
 * 1 beta. Returns NULL when absent; *count receives the element count. */
AIBOX_API float *aibox_model_node_param(aibox_model *m, int node, int index, size_t *count);
/* BN running statistics: index 0 mean, 1 variance. */
AIBOX_API float *aibox_model_node_state(aibox_model *m, int node, int index, size_t *count);
AIBOX_API void aibox_model_zero_grad(aibox_model *m);
AIBOX_API const char *aibox_model_last_error(const aibox_model *m); /* builder's sticky message */
/* One line per node: index, kind, inputs, output shape, parameter count. */
AIBOX_API void aibox_model_summary(const aibox_model *m, void (*print)(void *user, const char *line), void *user);

/* ------------------------------------------------------------------ contexts */
/* A context holds everything one forward/backward pass writes: activations,
 * their gradients (training), saved masks, and one scratch workspace, all
 * sized once at creation for max_batch samples of the input size; no allocation
 * happens in forward or backward. One context per calling thread.
 * A convolution whose only consumer is a ReLU runs fused with it (in place):
 * aibox_ctx_node_output of that convolution then shows rectified values. */
typedef enum aibox_mode { AIBOX_INFER = 0, AIBOX_TRAIN = 1 } aibox_mode;

/* How a context is made; a zeroed struct (or NULL) is an inference context
 * for one sample of the model's own input size on the default threads. */
typedef struct aibox_ctx_opts {
    aibox_mode mode;   /* AIBOX_INFER (0) or AIBOX_TRAIN */
    int max_batch;     /* samples per forward; 0: 1 */
    int height, width; /* input size; 0: the model's (a fully convolutional model takes others);
                          the channel count is always the model's */
    int threads;       /* 0: aibox_default_num_threads() */
    uint64_t seed;     /* training: the dropout draws (0 is a seed like any other) */
} aibox_ctx_opts;
AIBOX_API aibox_status aibox_ctx_create(aibox_ctx **ctx, const aibox_model *m, const aibox_ctx_opts *opts,
                                        aibox_error *err);
AIBOX_API int aibox_ctx_threads(const aibox_ctx *ctx);
AIBOX_API void aibox_ctx_free(aibox_ctx **ctx);
/* Inference contexts only (a training context: AIBOX_E_INVALID): precomputes,
 * from m's current parameters, transformed weights for the convolutions that
 * have a faster inference algorithm (3x3, stride 1, ungrouped: Winograd
 * F(2x2, 3x3), about half the time per layer; outputs agree with the default
 * path to float rounding, ~1e-6 of their range). Allocates them here, never in
 * forward (aibox_ctx_bytes counts them); freed by aibox_ctx_free. Afterwards
 * this context's forwards use them and do NOT see later changes to those
 * convolutions' weights: call again after changing them (a second call
 * refreshes; batch-norm folding still follows the model). Without the call a
 * context computes exactly as before. m must be the model the context was
 * made for (else AIBOX_E_INVALID). Reads m only (other threads may run
 * inference on it meanwhile); like every call on a context, not concurrently
 * with another call on the same context. */
AIBOX_API aibox_status aibox_ctx_freeze_weights(aibox_ctx *ctx, const aibox_model *m, aibox_error *err);
/* Bytes the context allocated (activations, gradients and workspace). */
AIBOX_API size_t aibox_ctx_bytes(const aibox_ctx *ctx);
/* Runs the graph on n samples (n <= max_batch) of the context's input shape.
 * Training mode uses batch statistics and dropout; inference the running
 * statistics. In training mode the model must be the non-const one passed at
 * creation, since batch norm updates its running statistics. */
AIBOX_API aibox_status aibox_ctx_forward(aibox_ctx *ctx, aibox_model *m, const float *input, int n, aibox_error *err);
/* Inference only: the model is not modified (thread-safe on a shared model). */
AIBOX_API aibox_status aibox_ctx_infer(aibox_ctx *ctx, const aibox_model *m, const float *input, int n,
                                       aibox_error *err);
/* A node's activations from the last forward: n x c x h x w (borrowed). */
AIBOX_API const float *aibox_ctx_node_output(const aibox_ctx *ctx, int node, int *c, int *h, int *w);
AIBOX_API const float *aibox_ctx_output(const aibox_ctx *ctx, int *c, int *h, int *w);
AIBOX_API int aibox_ctx_batch(const aibox_ctx *ctx); /* n of the last forward */
/* Restarts the context's dropout generator (e.g. per epoch, so a resumed run
 * draws exactly what an uninterrupted one would). */
AIBOX_API void aibox_ctx_reseed(aibox_ctx *ctx, uint64_t seed);

/* Losses on the output node: compute the mean loss over the batch and set the
 * output gradient for aibox_ctx_backward.
 *  softmax cross-entropy: labels[n] class indices; class_weights (length C) or
 *    NULL; loss = sum_i w[y_i] * -log softmax(x_i)[y_i] / n (as Keras).
 *  sigmoid binary cross-entropy: targets n*C in [0,1]; mean over elements.
 *  mean squared error: targets n*C*H*W; mean over elements. */
AIBOX_API aibox_status aibox_ctx_loss_softmax_ce(aibox_ctx *ctx, const int *labels, const float *class_weights,
                                                 float *loss, aibox_error *err);
AIBOX_API aibox_status aibox_ctx_loss_sigmoid_bce(aibox_ctx *ctx, const float *targets, float *loss,
                                                  aibox_error *err);
AIBOX_API aibox_status aibox_ctx_loss_mse(aibox_ctx *ctx, const float *targets, float *loss, aibox_error *err);
/* Sets the output gradient directly (n x output size), instead of a loss. */
AIBOX_API aibox_status aibox_ctx_set_output_grad(aibox_ctx *ctx, const float *grad, aibox_error *err);
/* Backpropagates; parameter gradients ACCUMULATE into the model's gradient
 * block (call aibox_model_zero_grad per step). */
AIBOX_API aibox_status aibox_ctx_backward(aibox_ctx *ctx, aibox_model *m, aibox_error *err);
/* Whether backward also computes the gradient with respect to the input
 * (off by default: the first convolution's input gradient costs time). */
AIBOX_API void aibox_ctx_set_input_grad(aibox_ctx *ctx, int want);
/* Gradient with respect to the context's input (valid after backward). */
AIBOX_API const float *aibox_ctx_input_grad(const aibox_ctx *ctx);

/* ------------------------------------------------------------------ optimizers */
typedef enum aibox_optim_kind { AIBOX_SGD = 0, AIBOX_ADAM = 1, AIBOX_ADAMW = 2 } aibox_optim_kind;
typedef struct aibox_optim_opts {
    aibox_optim_kind kind;
    float lr;           /* 0: default (SGD 0.01, Adam 1e-3) */
    float momentum;     /* SGD */
    int nesterov;       /* SGD */
    float beta1, beta2; /* 0: 0.9, 0.999 */
    float eps;          /* 0: 1e-7 as Keras */
    float weight_decay; /* SGD: L2 added to the gradient; AdamW: decoupled */
} aibox_optim_opts;
typedef struct aibox_optim aibox_optim;
/* Learning-rate schedule hook: returns the rate for this step (0-based) and epoch. */
typedef float (*aibox_lr_schedule)(void *user, long step, int epoch, float base_lr);

AIBOX_API aibox_status aibox_optim_create(aibox_optim **o, const aibox_model *m, const aibox_optim_opts *opts,
                                          aibox_error *err);
AIBOX_API void aibox_optim_free(aibox_optim **o);
AIBOX_API void aibox_optim_set_schedule(aibox_optim *o, aibox_lr_schedule fn, void *user);
AIBOX_API void aibox_optim_set_epoch(aibox_optim *o, int epoch);
AIBOX_API float aibox_optim_lr(const aibox_optim *o); /* rate used by the last step */
AIBOX_API aibox_status aibox_optim_step(aibox_optim *o, aibox_model *m, aibox_error *err);
/* Runs each step over the thread pool of a context of the same model (the
 * update split over its threads; the same bits for any split), or, with
 * NULL, on the caller's thread (the default). The context is borrowed: it
 * must outlive the optimizer or be unset first, and a step must not run
 * while the context does (like every call on a context). */
AIBOX_API void aibox_optim_set_ctx(aibox_optim *o, aibox_ctx *ctx);
/* The optimizer's state, for resumable checkpoints: moments (second NULL for
 * SGD), their length (the model's parameter block) and the step count. */
AIBOX_API void aibox_optim_state(aibox_optim *o, float **m1, float **m2, size_t *n, long *step);
AIBOX_API void aibox_optim_set_step(aibox_optim *o, long step);

/* ------------------------------------------------------------------ presets */
/* AI-Box AlexNet-like (16,888,226 parameters at 256x256x3, 2 classes). */
AIBOX_API aibox_status aibox_preset_alexnet(aibox_model **m, int classes, int channels, int size, float dropout,
                                            aibox_error *err);
/* SqueezeNet 1.0 with Conv(classes,1,1) + global average pool (736,450 for 2). */
AIBOX_API aibox_status aibox_preset_squeezenet(aibox_model **m, int classes, int channels, int size,
                                               aibox_error *err);
/* AI-Box ResNeXt (Table 1). */
AIBOX_API aibox_status aibox_preset_resnext(aibox_model **m, int classes, int channels, int size, aibox_error *err);
/* torchvision ResNet-18 (11,689,512 parameters for 1000 classes). */
AIBOX_API aibox_status aibox_preset_resnet18(aibox_model **m, int classes, int channels, int size, aibox_error *err);
/* torchvision ResNet-50 (25,557,032 for 1000 classes) and Wide ResNet-50-2
 * (68,883,240): Bottleneck blocks, stride on the 3x3 conv (v1.5). */
AIBOX_API aibox_status aibox_preset_resnet50(aibox_model **m, int classes, int channels, int size, aibox_error *err);
AIBOX_API aibox_status aibox_preset_wide_resnet50_2(aibox_model **m, int classes, int channels, int size,
                                                    aibox_error *err);
/* Keras-tutorial-sized CNN for small inputs. */
AIBOX_API aibox_status aibox_preset_small(aibox_model **m, int classes, int channels, int size, aibox_error *err);
/* Builds a preset by name ("alexnet", "squeezenet", "resnext", "resnet18", "resnet50",
 * "wide_resnet50_2", "small"). */
AIBOX_API aibox_status aibox_preset(aibox_model **m, const char *name, int classes, int channels, int size,
                                    aibox_error *err);

/* ------------------------------------------------------------------ model files */
/* Metadata travels with the model: free-form typed key/values. Keys are
 * dotted names ("aibox.class_names"); values are strings, int64, float64 or
 * arrays of them. The model owns copies. Keys starting "aibox." are the
 * library's ("aibox.graph" and "aibox.node.*" hold the graph in model files,
 * lib/io/FORMAT.md: never listed as metadata, and saving a model whose
 * metadata uses them fails); the ones a caller may read or set: */
#define AIBOX_META_CLASS_NAMES "aibox.class_names"         /* strs: a name per output */
#define AIBOX_META_INPUT_RESIZE "aibox.input.resize"       /* str: aibox_resize_mode_name() */
#define AIBOX_META_INPUT_MEAN "aibox.input.mean"           /* floats, per channel */
#define AIBOX_META_INPUT_STD "aibox.input.std"             /* floats, per channel */
#define AIBOX_META_ARCH "aibox.arch"                       /* str: what the graph is (a preset's or importer's name) */
#define AIBOX_META_TASK "aibox.task"                       /* str: "padim" for anomaly models; absent: a classifier */
#define AIBOX_META_LIBRARY_VERSION "aibox.library_version" /* str: the libaibox that saved the file */
#define AIBOX_META_TAP_PREFIX "aibox.tap."                 /* int per name: a named node ("aibox.tap.layer3") */
AIBOX_API aibox_status aibox_model_set_meta_str(aibox_model *m, const char *key, const char *value, aibox_error *err);
AIBOX_API aibox_status aibox_model_set_meta_int(aibox_model *m, const char *key, int64_t value, aibox_error *err);
AIBOX_API aibox_status aibox_model_set_meta_float(aibox_model *m, const char *key, double value, aibox_error *err);
AIBOX_API aibox_status aibox_model_set_meta_strs(aibox_model *m, const char *key, int n, const char *const *values,
                                                 aibox_error *err);
AIBOX_API aibox_status aibox_model_set_meta_floats(aibox_model *m, const char *key, int n, const double *values,
                                                   aibox_error *err);
AIBOX_API aibox_status aibox_model_set_meta_ints(aibox_model *m, const char *key, int n, const int64_t *values,
                                                 aibox_error *err);
/* Getters return AIBOX_E_NOTFOUND when the key is absent or of another type. */
AIBOX_API aibox_status aibox_model_get_meta_str(const aibox_model *m, const char *key, const char **value);
AIBOX_API aibox_status aibox_model_get_meta_int(const aibox_model *m, const char *key, int64_t *value);
AIBOX_API aibox_status aibox_model_get_meta_float(const aibox_model *m, const char *key, double *value);
AIBOX_API aibox_status aibox_model_get_meta_strs(const aibox_model *m, const char *key, int *n,
                                                 const char *const **values);
AIBOX_API aibox_status aibox_model_get_meta_floats(const aibox_model *m, const char *key, int *n,
                                                   const double **values);
AIBOX_API aibox_status aibox_model_get_meta_ints(const aibox_model *m, const char *key, int *n,
                                                 const int64_t **values);
typedef enum aibox_meta_kind {
    AIBOX_META_NONE = 0, AIBOX_META_KIND_INT = 1, AIBOX_META_KIND_FLOAT = 2, AIBOX_META_KIND_STR = 3,
    AIBOX_META_KIND_INTS = 4, AIBOX_META_KIND_FLOATS = 5, AIBOX_META_KIND_STRS = 6
} aibox_meta_kind;
/* The type of a key's value (AIBOX_META_NONE when absent). */
AIBOX_API aibox_meta_kind aibox_model_meta_kind(const aibox_model *m, const char *key);
AIBOX_API int aibox_model_meta_count(const aibox_model *m);
AIBOX_API const char *aibox_model_meta_key(const aibox_model *m, int i);

/* Writes the model (graph, parameters, BN statistics, metadata) with
 * aibox_write_atomic's guarantees: an existing file at path is replaced as a
 * whole or not at all. */
AIBOX_API aibox_status aibox_model_save(const aibox_model *m, const char *path, aibox_error *err);
/* Reads a whole regular file, the one way libaibox reads every file: a FIFO
 * or device is refused (never waited on), a file larger than max_bytes (0:
 * no cap) is AIBOX_E_UNSUPPORTED before anything is read, a file that
 * shrinks while read is AIBOX_E_IO, a missing one AIBOX_E_NOTFOUND. *bytes
 * is the caller's (free()). */
AIBOX_API aibox_status aibox_read_file(const char *path, size_t max_bytes, unsigned char **bytes, size_t *len,
                                       aibox_error *err);
/* The same for an open descriptor (standard input: 0), read to its end;
 * name is used in messages. */
AIBOX_API aibox_status aibox_read_fd(int fd, const char *name, size_t max_bytes, unsigned char **bytes, size_t *len,
                                     aibox_error *err);
/* Writes bytes to path atomically, the one way libaibox writes every file:
 * a temporary file "<path>.tmp.<pid>.<hex>" beside it, fsync, rename over
 * path, fsync of the folder. An interruption at any point (kill -9, a full
 * disk) leaves a previous file at path intact; temporary files left in that
 * folder by processes that no longer exist are removed by the next save. */
AIBOX_API aibox_status aibox_write_atomic(const char *path, const void *bytes, size_t len, aibox_error *err);
/* Loads and verifies a model file: magic, version, structure, CRC-32, every
 * size in checked 64-bit arithmetic against the bytes the file holds (each
 * node's tensors present with exactly the values it needs) before anything
 * is allocated, and every stored number finite. What a refused file costs
 * is bounded by its own size. The model holds no gradient block (see
 * aibox_model_grads). Saving likewise refuses a model with non-finite values. */
AIBOX_API aibox_status aibox_model_load(aibox_model **m, const char *path, aibox_error *err);
/* The graph and metadata of a model file without its weights (shapes,
 * parameter counts, metadata: what `aibox-infer --info` shows). The file is
 * verified as by aibox_model_load (the CRC streamed over it) except that the
 * weights are neither read nor checked; memory stays at the size of the
 * metadata and index, whatever the file's size. Contexts, saving, extraction
 * and training refuse such a model (AIBOX_E_STATE); free it as any model. */
AIBOX_API aibox_status aibox_model_load_info(aibox_model **m, const char *path, aibox_error *err);

/* ------------------------------------------------------------------ images */
/* 8-bit images, rows top to bottom, channels interleaved (1 grey, 3 RGB, 4
 * RGBA); data is owned (aibox_image_free). Decoding goes through stb_image
 * (JPEG baseline/progressive, PNG 8/16-bit, BMP, PGM/PPM, TGA, GIF first frame). */
typedef struct aibox_image {
    int width, height, channels;
    uint8_t *data;
} aibox_image;

/* Largest image accepted by default: 100 megapixels (checked from the
 * header, before any pixel memory is allocated). */
#define AIBOX_IMAGE_MAX_PIXELS_DEFAULT (100LL * 1000 * 1000)

/* Decodes an encoded image held in memory; name is used in messages (a path
 * or "stdin"). max_pixels <= 0 means the default cap. 16-bit PNGs are
 * reduced to 8 bits. The result keeps the file's channel count. */
AIBOX_API aibox_status aibox_image_decode(aibox_image *img, const void *bytes, size_t len, const char *name,
                                          long long max_pixels, aibox_error *err);
/* Reads and decodes a file (regular files only). */
AIBOX_API aibox_status aibox_image_load(aibox_image *img, const char *path, long long max_pixels, aibox_error *err);
AIBOX_API void aibox_image_free(aibox_image *img);
AIBOX_API aibox_status aibox_image_copy(aibox_image *dst, const aibox_image *src, aibox_error *err);
/* Channel conversion: grey = ITU-R BT.601 luma of RGB; alpha is dropped or set opaque. */
AIBOX_API aibox_status aibox_image_convert(aibox_image *dst, const aibox_image *src, int channels, aibox_error *err);

typedef enum aibox_resize_mode {
    AIBOX_RESIZE_AREA = 0,     /* stb_image_resize's default filters: antialiased (training default) */
    AIBOX_RESIZE_BILINEAR = 1, /* TensorFlow Lite's: align_corners = false, half_pixel_centers = false, no
                                  antialiasing; 8-bit results truncated as TFLite's label_image casts them */
    AIBOX_RESIZE_NEAREST = 2,
    AIBOX_RESIZE_BILINEAR_CENTER = 3 /* bilinear with half-pixel centres (TensorFlow's half_pixel_centers = true;
                                        as OpenCV, PyTorch align_corners = false and libyuv, which the TFLite
                                        Task Library's image pipeline uses; libyuv's 7-bit weights differ from
                                        it by up to 3 levels), no antialiasing, truncated as BILINEAR */
} aibox_resize_mode;
/* The names stored in model metadata: "area", "bilinear", "nearest", "bilinear_center". */
AIBOX_API const char *aibox_resize_mode_name(aibox_resize_mode m);
AIBOX_API aibox_status aibox_resize_mode_parse(const char *name, aibox_resize_mode *m);
AIBOX_API aibox_status aibox_image_resize(aibox_image *dst, const aibox_image *src, int width, int height,
                                          aibox_resize_mode mode, aibox_error *err);

/* Encoders. The _write functions are atomic (temporary file, fsync, rename). */
AIBOX_API aibox_status aibox_image_encode_png(const aibox_image *img, uint8_t **bytes, size_t *len, aibox_error *err);
AIBOX_API aibox_status aibox_image_encode_jpg(const aibox_image *img, int quality, uint8_t **bytes, size_t *len,
                                              aibox_error *err);
AIBOX_API aibox_status aibox_image_write_png(const aibox_image *img, const char *path, aibox_error *err);
AIBOX_API aibox_status aibox_image_write_jpg(const aibox_image *img, const char *path, int quality, aibox_error *err);

/* ------------------------------------------------------------------ preprocessing */
/* How an image becomes a model input. Stored in the model's metadata so that
 * inference repeats exactly what training did:
 *   input shape       the graph's input (channels, height, width)
 *   aibox.input.resize       "area" | "bilinear" | "bilinear_center" | "nearest" (the whole
 *                            image is resized; see aibox_resize_mode)
 *   aibox.input.mean / .std  per channel: x = (pixel / 255 - mean[c]) / std[c]  */
typedef struct aibox_preproc {
    int channels, width, height;
    aibox_resize_mode resize;
    float mean[4], std[4];
} aibox_preproc;

/* Defaults for a model: its input shape, AREA resize, mean 0, std 1. */
AIBOX_API void aibox_preproc_default(aibox_preproc *p, const aibox_model *m);
/* Reads the model's preprocessing (defaults for keys that are absent). */
AIBOX_API aibox_status aibox_preproc_from_model(aibox_preproc *p, const aibox_model *m, aibox_error *err);
/* Stores p in the model's metadata (the shape must match the model's input). */
AIBOX_API aibox_status aibox_preproc_to_model(const aibox_preproc *p, aibox_model *m, aibox_error *err);
/* Converts channels, resizes and normalises img into out (channels x height x width floats). */
AIBOX_API aibox_status aibox_preprocess(const aibox_preproc *p, const aibox_image *img, float *out, aibox_error *err);

/* ------------------------------------------------------------------ classification */
/* Whether a model's output already is probabilities: the graph ends in a
 * softmax, possibly behind nodes that only reshape or re-quantise (imported
 * classifiers). Otherwise it gives logits (aibox-train's models), which a
 * classifier turns into probabilities with a softmax. */
AIBOX_API int aibox_model_outputs_probabilities(const aibox_model *m);
/* A classification model's k outputs as probabilities into p (k doubles):
 * the outputs themselves when is_probs (aibox_model_outputs_probabilities),
 * else their softmax, in double. Returns the most probable class (the first
 * of equals), or -1, p untouched, when an output is not a finite number. */
AIBOX_API int aibox_output_probabilities(const float *out, int k, int is_probs, double *p);

/* A model ready to classify images: its stored preprocessing and an
 * inference context with frozen weights, for one image at a time. It borrows
 * the model (which must outlive it and stay unchanged). One thread per
 * classifier; several classifiers may share a model. */
typedef struct aibox_classifier aibox_classifier;
typedef struct aibox_classification {
    int label;         /* the most probable class */
    double confidence; /* its probability */
    const char *name;  /* its label: the class name, or "0", "1", ... for a model without names
                          (borrowed from the classifier) */
} aibox_classification;
/* threads: 0 for the default. */
AIBOX_API aibox_status aibox_classifier_create(aibox_classifier **c, const aibox_model *m, int threads,
                                               aibox_error *err);
AIBOX_API void aibox_classifier_free(aibox_classifier **c);
AIBOX_API int aibox_classifier_classes(const aibox_classifier *c);
/* Class k's label as aibox_classification.name gives it (NULL out of range). */
AIBOX_API const char *aibox_classifier_class_name(const aibox_classifier *c, int k);
/* The class whose label is `label`, or -1. */
AIBOX_API int aibox_classifier_class_index(const aibox_classifier *c, const char *label);
/* Classifies a decoded image; probs (NULL, or aibox_classifier_classes long)
 * receives every class's probability. A model output that is not a finite
 * number is AIBOX_E_NONFINITE, never a result. */
AIBOX_API aibox_status aibox_classifier_run(aibox_classifier *c, const aibox_image *img, aibox_classification *out,
                                            double *probs, aibox_error *err);
/* The same for an image file (aibox_image_load; max_pixels <= 0: the default cap). */
AIBOX_API aibox_status aibox_classifier_file(aibox_classifier *c, const char *path, long long max_pixels,
                                             aibox_classification *out, double *probs, aibox_error *err);
/* The whole thing in one call, for the simple case: loads the model, builds a
 * classifier, classifies the image file and frees everything. label,
 * confidence and name (copied, truncated to name_len) may be NULL. */
AIBOX_API aibox_status aibox_classify_file(const char *model_path, const char *image_path, int *label,
                                           double *confidence, char *name, size_t name_len, aibox_error *err);

/* ------------------------------------------------------------------ training loop */
/* Where batches come from: the folder loader, or anything else. next() hands
 * out a borrowed batch (n x input floats, n labels), n == 0 ending the epoch. */
typedef struct aibox_batch_source {
    void *user;
    long samples; /* per epoch, for progress reports (0 if unknown) */
    aibox_status (*begin_epoch)(void *user, int epoch, aibox_error *err);
    aibox_status (*next)(void *user, const float **x, const int **labels, int *n, aibox_error *err);
    /* Optional (NULL): stores what the data implies in the model, its
     * preprocessing and class names; aibox_train calls it on the training
     * source before anything is saved, so checkpoints and the trained model
     * describe themselves (aibox_loader_source's does). */
    aibox_status (*describe)(void *user, aibox_model *m, aibox_error *err);
} aibox_batch_source;

typedef struct aibox_train_progress {
    int epoch, epochs;       /* epoch is 0-based */
    long done, total;        /* training samples so far in this epoch, per epoch */
    float loss, acc;         /* running means over the epoch */
    int end_of_epoch;        /* 1: the fields below are set */
    float val_loss, val_acc; /* NaN without validation */
    float lr;
    double epoch_seconds;
    int improved;            /* the monitored loss reached a new best */
} aibox_train_progress;

typedef struct aibox_train_opts {
    int epochs;
    aibox_optim_opts optim;
    int patience;               /* early stopping on validation loss; 0 = off. Best weights are restored. */
    const float *class_weights; /* per class, or NULL */
    uint64_t seed;              /* dropout draws (per epoch) */
    const char *out_dir;        /* best.aibox, last.aibox, train.csv, metrics.json; NULL = none */
    const char *resume;         /* a last.aibox checkpoint to continue from, or NULL */
    const volatile int *stop;   /* polled after every batch (e.g. set by SIGINT) */
    void (*on_progress)(void *user, const aibox_train_progress *p);
    void *user;
    /* 1: quantisation-aware training (aibox_model_quantize_aware sets it):
     * every forward, training and validation, sees each convolution's and
     * dense layer's weights rounded to per-output-channel symmetric int8
     * (scale max|w| / 127, as aibox_model_quantize stores them); their
     * gradients update the float weights unchanged (straight through). */
    int fake_quant_weights;
} aibox_train_opts;

typedef struct aibox_train_result {
    int epochs_run;             /* epochs completed, including resumed ones */
    int best_epoch;             /* 0-based, -1 without validation */
    float best_val_loss, best_val_acc;
    int first_perfect_epoch;    /* first epoch with 100 % validation accuracy, -1 if none */
    double first_perfect_seconds;
    double seconds;             /* training wall time, including resumed runs */
    int stopped_early;
} aibox_train_result;

/* Trains a finished classification model (output: one logit per class) with
 * softmax cross-entropy. Validation (val may be NULL) runs in inference mode
 * after every epoch. The training context holds train_batch samples. Returns
 * AIBOX_E_INTERRUPTED when *stop was set; the last.aibox checkpoint (written
 * after every epoch and before the first) then resumes the run exactly. */
AIBOX_API aibox_status aibox_train(aibox_model *m, aibox_batch_source *train, int train_batch,
                                   aibox_batch_source *val, const aibox_train_opts *o, int threads,
                                   aibox_train_result *res, aibox_error *err);

#ifdef __cplusplus
}
#endif

/* Folder datasets, augmentation and the background loader. */
#include "aibox/data.h"
/* Transfer learning: a pretrained model cut at a feature layer with a new
 * classification head, trained whole or on cached features. */
#include "aibox/transfer.h"
/* Importers of pretrained models. */
#include "aibox/import.h"
/* Post-training quantisation to 8 bits. */
#include "aibox/quant.h"
/* Anomaly maps: resize, blur, regions, overlays, and the metrics AUROC, F1, AUPRO. */
#include "aibox/anomaly.h"
/* Anomaly detection methods: PaDiM, PatchCore, the convolutional auto-encoder. */
#include "aibox/padim.h"
#include "aibox/patchcore.h"
#include "aibox/autoencoder.h"
/* Across processes: data-parallel training, merged fits (the collectives are the caller's). */
#include "aibox/dist.h"
/* The sample store: images, labels and metadata in a Zarr v2 folder. */
#include "aibox/store.h"
/* Explaining a classifier's verdict: Grad-CAM maps and overlays. */
#include "aibox/explain.h"
/* Reading signals: sound and vibration files, raw streams, CSV columns; resampling. */
#include "aibox/signal.h"
/* Signal features: STFT, log-mel, MFCC and per-frame time statistics (kissfft). */
#include "aibox/spectral.h"
/* Models on sound and vibration: windows, recording datasets, the Gaussian detector, the listener. */
#include "aibox/sound.h"

#endif

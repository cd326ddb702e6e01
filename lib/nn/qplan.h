/* 8-bit models: the quantisation a model carries (aibox_quant, owned by the
 * model, nn.h) and the integer plan an inference context runs from it
 * (aibox_qplan, owned by the context). Internal.
 *
 * A quantised model is an ordinary graph whose float parameters are the
 * exact dequantisation of its integer ones (so everything that reads a
 * model, a float context included, still works: it then computes the
 * "fake-quantised" network in float), plus per node the scale and zero point
 * of its output (node 0: the input) and, for convolutions and dense layers,
 * the int8 weights, int32 biases, per-channel weight scales and the weight
 * offset (lib/ops/qops.h: real weight = wscale (w + wofs)). Files store the
 * integers in the parameters' own tensors ("n<i>.p0" as int8, "n<i>.p1" as
 * int32) and the rest in "q.act" (n_nodes x 2: scale, zero point) and
 * "n<i>.q0" (the weight scales) / "n<i>.q1" (wofs, the multiplier rule): lib/io/FORMAT.md. The
 * table itself is the model's (lib/nn/qtable.c). */
#ifndef AIBOX_NN_QPLAN_H
#define AIBOX_NN_QPLAN_H

#include "nn/nn.h"
#include "ops/qops.h"

/* ------------------------------------------------------------ the plan */
typedef struct aibox_qplan aibox_qplan;
/* The integer program of m for inputs of shape (per node) shape[], batch up to
 * max_batch; refuses (AIBOX_E_UNSUPPORTED, naming the node) a model with a
 * node it cannot run in integers. Reads m's quantisation only; the plan
 * keeps its own packed weights. features: aibox_cpu_features() or fewer. */
AIBOX_INTERNAL aibox_status aibox_qplan_create(aibox_qplan **out, const aibox_model *m, const int (*shape)[3],
                                               int max_batch, int threads, unsigned features, aibox_error *err);
AIBOX_INTERNAL void aibox_qplan_free(aibox_qplan **p);
AIBOX_INTERNAL size_t aibox_qplan_bytes(const aibox_qplan *p);
/* Runs n samples: input as the float context takes it (n x C x H x W,
 * preprocessed), quantised with the input's scale and zero point (round half
 * away from zero, clamped); the output node's result dequantised into out
 * (n x c x h x w floats). pool may be NULL (one thread). */
AIBOX_INTERNAL void aibox_qplan_run(aibox_qplan *p, const float *input, int n, float *out, aibox_pool *pool);
/* The same from and to raw bytes: input n x H x W x C uint8 (the quantised
 * image), and the output node's bytes (n x h x w x c), borrowed until the
 * next run. For tests and tools that compare with other runtimes. */
AIBOX_INTERNAL const uint8_t *aibox_qplan_run_u8(aibox_qplan *p, const uint8_t *input, int n, aibox_pool *pool);
/* Node's values from the last run of n samples, dequantised into out
 * (n x c x h x w floats). node <= the model's output; node 0: the
 * quantised input. */
AIBOX_INTERNAL void aibox_qplan_dequantize(const aibox_qplan *p, int node, int n, float *out);
/* Node's bytes (n x h x w x c) from the last run, or NULL: an alias
 * (a clamp folded into its convolution) shows its producer's buffer. */
AIBOX_INTERNAL const uint8_t *aibox_qplan_node_u8(const aibox_qplan *p, int node);
/* Quantises a float input as aibox_qplan_run does (n x C x H x W floats to n x H x W x C bytes). */
AIBOX_INTERNAL void aibox_qplan_quantize_input(const aibox_qplan *p, const float *input, int n, uint8_t *q);

#endif

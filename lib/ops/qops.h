/* 8-bit integer kernels (inference only): what an int8 model's plan runs
 * (lib/quant/qplan.c). Internal; they know nothing of models or files.
 *
 * Arithmetic is TensorFlow Lite's (tensorflow/lite/kernels/internal/common.h,
 * TFLite 2.9 without TFLITE_SINGLE_ROUNDING): a real value is
 * scale * (q - zero_point); activations are uint8 in NHWC order (an int8
 * tensor is its uint8 twin: q + 128 and zero point + 128 give the same reals
 * and, every step being a difference of q and its zero point, the same
 * results); weights are int8 with a per-tensor integer offset wofs, the
 * real weight being wscale[o] * (w + wofs): 0 for symmetric weights, 128 - z
 * for TFLite's uint8 weights of zero point z. Accumulators are int32;
 * results are scaled down by fixed-point multipliers (aibox_q_multiplier)
 * with TFLite's rounding. Integer results are exact, so every fast path
 * equals its plain-C reference bit for bit (tests/ops/test_qops.c). */
#ifndef AIBOX_OPS_QOPS_H
#define AIBOX_OPS_QOPS_H

#include <stddef.h>
#include <stdint.h>

#include "ops/ops.h"

/* ------------------------------------------------------------ fixed point */
/* TFLite's SaturatingRoundingDoublingHighMul: (a * b * 2 + 2^31 rounded) / 2^32,
 * ties away from zero; saturates the one overflow (INT32_MIN squared). */
static inline int32_t aibox_q_srdhm(int32_t a, int32_t b)
{
    if (a == b && a == INT32_MIN) return INT32_MAX;
    int64_t ab = (int64_t)a * b;
    int64_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31)); /* C division truncates, as TFLite's */
}
/* RoundingDivideByPOT: x / 2^e rounded to nearest, ties away from zero. */
static inline int32_t aibox_q_rdpot(int32_t x, int e)
{
    int32_t mask = (int32_t)(((int64_t)1 << e) - 1), rem = x & mask, thr = (mask >> 1) + (x < 0);
    return (x >> e) + (rem > thr);
}
/* MultiplyByQuantizedMultiplier: x * mult * 2^(shift - 31), TFLite's two roundings. */
static inline int32_t aibox_q_mbqm(int32_t x, int32_t mult, int shift)
{
    int left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
    return aibox_q_rdpot(aibox_q_srdhm((int32_t)((uint32_t)x << left), mult), right);
}
/* QuantizeMultiplier: real = mult * 2^(shift - 31), mult in [2^30, 2^31) (0 for
 * real 0, and below 2^-31 of range). real must be finite and >= 0. */
AIBOX_INTERNAL void aibox_q_multiplier(double real, int32_t *mult, int *shift);

/* ------------------------------------------------------------ convolution */
/* One convolution or dense layer (a dense layer is a 1x1 convolution of a
 * 1x1 input). x: n x in_h x in_w x in_c uint8; y: n x out_h x out_w x out_c. */
typedef struct aibox_qconv {
    aibox_conv_desc d;
    int in_zp, out_zp, act_min, act_max; /* act_*: the output clamp, within 0..255 */
    int wofs;
    const int8_t *w;      /* out_c x kh x kw x (in_c / groups): NHWC patch order */
    const int32_t *bias;  /* out_c */
    const int32_t *mult;  /* out_c fixed-point multipliers ... */
    const int8_t *shift;  /* ... and their shifts (aibox_q_multiplier) */
} aibox_qconv;

/* The plain-C reference: direct loops, skipping padded cells (TFLite's). */
AIBOX_INTERNAL void aibox_qconv_ref(const aibox_qconv *q, int n, const uint8_t *x, uint8_t *y);

/* The fast path: weights packed once (aibox_qconv_pack into
 * aibox_qconv_packed_bytes, 64-byte aligned), then aibox_qconv_run in
 * `parts` pieces that may run concurrently (piece `part`, each with its own
 * ws of aibox_qconv_ws_bytes). One packed layout serves every path;
 * features (aibox_cpu_features() or fewer bits, 0: plain C) picks the one
 * that runs. */
AIBOX_INTERNAL size_t aibox_qconv_packed_bytes(const aibox_qconv *q);
AIBOX_INTERNAL void aibox_qconv_pack(const aibox_qconv *q, void *packed);
AIBOX_INTERNAL size_t aibox_qconv_ws_bytes(const aibox_qconv *q);
AIBOX_INTERNAL void aibox_qconv_run(const aibox_qconv *q, const void *packed, int n, const uint8_t *x, uint8_t *y,
                                    void *ws, int part, int parts, unsigned features);
/* Which path aibox_qconv_run takes for q with features: "vnni", "avx2",
 * "neon-dot", "neon", "c"; for a depthwise layer "depthwise-avx512",
 * "depthwise-neon", "depthwise-c". */
AIBOX_INTERNAL const char *aibox_qconv_path(const aibox_qconv *q, unsigned features);

/* ------------------------------------------------------------ other layers */
/* Pools in one quantised domain (input and output share scale and zero
 * point), NHWC. Average: (sum + count / 2) / count over the window's cells
 * inside the image, as TFLite (count_include_pad: padded cells count as the
 * zero point and in count). Then clamped to [act_min, act_max]. Part of
 * parts: that share of the output pixels. */
AIBOX_INTERNAL void aibox_qpool(const aibox_pool_desc *d, int n, int is_max, int zp, int act_min, int act_max,
                                const uint8_t *x, uint8_t *y, int part, int parts);
/* TFLite's MEAN over height and width (reduce.cc, uint8, 4-D, keep dims):
 * sum - count * in_zp, times real in_scale / (count * out_scale) in fixed
 * point, plus out_zp. */
AIBOX_INTERNAL void aibox_qmean(int n, int hw, int c, int in_zp, int32_t mult, int shift, int out_zp,
                                const uint8_t *x, uint8_t *y);
/* n floats to bytes: zp + x * inv rounded half away from zero, clamped to
 * 0..255 (NaN to 0): an input's quantisation. */
AIBOX_INTERNAL void aibox_q_quantize(const float *x, int n, float inv, float zp, uint8_t *q);
/* Three planes of n floats (plane apart: an NCHW colour image) to n pixels
 * of three bytes (NHWC), each byte as aibox_q_quantize's. features as
 * aibox_qconv_run's. */
AIBOX_INTERNAL void aibox_q_quantize3(const float *x, size_t plane, int n, float inv, float zp, uint8_t *q,
                                      unsigned features);
/* y = lut[x] for count bytes: any element-wise function of one input
 * (activations, requantisation). */
AIBOX_INTERNAL void aibox_qlut(size_t count, const uint8_t lut[256], const uint8_t *x, uint8_t *y);
/* TFLite's quantised ADD (add.cc, uint8): inputs scaled to 2^20 times the
 * common scale, summed, scaled to the output. */
typedef struct aibox_qadd {
    int a_zp, b_zp, out_zp, act_min, act_max;
    int32_t a_mult, b_mult, out_mult;
    int a_shift, b_shift, out_shift;
} aibox_qadd;
AIBOX_INTERNAL void aibox_qadd_setup(aibox_qadd *p, float a_scale, int a_zp, float b_scale, int b_zp, float out_scale,
                                     int out_zp, int act_min, int act_max);
AIBOX_INTERNAL void aibox_qadd_run(const aibox_qadd *p, size_t count, const uint8_t *a, const uint8_t *b, uint8_t *y);
/* TFLite's uint8 softmax (optimized_ops::Softmax with its lookup table of
 * expf, summed in float in order; output scale 1/256, zero point 0): rows of
 * k values. table: 256 floats made by aibox_qsoftmax_table(in_scale, beta). */
AIBOX_INTERNAL void aibox_qsoftmax_table(float in_scale, float beta, float table[256]);
AIBOX_INTERNAL void aibox_qsoftmax(const float table[256], float out_scale, int out_zp, int rows, int k,
                                   const uint8_t *x, uint8_t *y);

#endif

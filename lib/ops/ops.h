/* Kernels: forward and backward of each layer family on raw float arrays.
 * Internal to the library (hidden in the shared object, reachable from the
 * tests through the static library). They know nothing of models or files.
 *
 * Conventions:
 *  - Layout NCHW, contiguous; n is the batch size.
 *  - Backward functions ACCUMULATE (+=) into dx and into parameter gradients,
 *    because a node's output may feed several consumers (residual adds).
 *  - Each BLAS-backed kernel has a plain-C reference twin (suffix _ref) used
 *    by the tests to check the BLAS path.
 *  - `ws` is caller-provided scratch of at least the size the matching
 *    *_ws_floats() returns; kernels never allocate.
 */
#ifndef AIBOX_OPS_H
#define AIBOX_OPS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h> /* memcpy: aibox_half_to_float */

#include "aibox.h"
#include "core/core.h" /* AIBOX_INTERNAL, AIBOX_MIN */

/* ------------------------------------------------------------ convolution */
typedef struct aibox_conv_desc {
    int in_c, in_h, in_w;
    int out_c, out_h, out_w;
    int kh, kw, sh, sw;
    int pt, pl; /* top/left padding; bottom/right follow from out_h/out_w */
    int groups;
} aibox_conv_desc;

/* Output size along one axis: floor((in + pad0 + pad1 - k) / s) + 1 (0 if negative). */
AIBOX_INTERNAL int aibox_conv_out_size(int in, int k, int s, int pad0, int pad1);
AIBOX_INTERNAL size_t aibox_conv_ws_floats(const aibox_conv_desc *d);
/* w: out_c x (in_c/groups) x kh x kw (PyTorch layout); b: out_c or NULL. */
AIBOX_INTERNAL void aibox_conv_fwd(const aibox_conv_desc *d, int n, const float *x, const float *w, const float *b,
                                   float *y, float *ws);
/* The same work split into `parts` deterministic pieces (output pixels, or
 * output channels for depthwise-style convolutions); piece `part` only.
 * scale (NULL: none) multiplies each output channel before b is added (a
 * folded inference batch norm); relu: 1 applies max(0, .) to the result (a
 * fused following ReLU). Each concurrent piece needs its own ws. */
AIBOX_INTERNAL void aibox_conv_fwd_part(const aibox_conv_desc *d, int n, const float *x, const float *w,
                                        const float *scale, const float *b, float *y, float *ws, int relu, int part,
                                        int parts);
/* Depthwise 3x3 forward (dwconv.c): groups == in_c, any channel multiplier
 * (out_c / groups), any top/left padding >= 0, row stride any, column
 * stride 1 or 2 (aibox_dwconv_eligible). The convolution layer runs these
 * convolutions here (aibox_conv_fwd_part keeps its general direct loops for
 * them). Each kernel gives the same bits as those loops, on every path. Kernels as aibox_maha_kernels: the ones
 * this build has that a CPU with `features` runs, plain C first ("c",
 * "avx2", "avx512" or "neon"); _pick the widest. aibox_dwconv_fwd_part has
 * aibox_conv_fwd_part's contract (pieces = ranges of output channels,
 * scale / b / relu as there, no workspace) with kernel k. */
struct aibox_dwconv_plane;
typedef void (*aibox_dwconv_fn)(const aibox_conv_desc *d, const struct aibox_dwconv_plane *p);
typedef struct aibox_dwconv_kernel {
    aibox_dwconv_fn fn;
    const char *name;
} aibox_dwconv_kernel;
AIBOX_INTERNAL int aibox_dwconv_eligible(const aibox_conv_desc *d);
AIBOX_INTERNAL int aibox_dwconv_kernels(unsigned features, aibox_dwconv_kernel *k, int max);
AIBOX_INTERNAL aibox_dwconv_kernel aibox_dwconv_pick(unsigned features);
AIBOX_INTERNAL void aibox_dwconv_fwd_part(const aibox_dwconv_kernel *k, const aibox_conv_desc *d, int n,
                                          const float *x, const float *w, const float *scale, const float *b,
                                          float *y, int relu, int part, int parts);
/* Direct convolution (conv_small.c): ungrouped, stride 1, not 1x1, out_c a
 * multiple of 8, and in_c <= 4 with in_c * kh * kw <= AIBOX_CONVSMALL_FEW_K
 * (an RGB network's first layer) or out_w >= 64 with in_c * kh * kw <=
 * AIBOX_CONVSMALL_MAX_K (aibox_convsmall_eligible). Kernels as
 * aibox_dwconv_kernels ("c", "avx2", "avx512" or "neon"; every one the same bits);
 * _pick returns 0 when only the plain-C twin runs here (then im2col +
 * sgemm is faster). _fwd_part has aibox_conv_fwd_part's contract (pieces
 * = ranges of output rows) with per-thread scratch ws of
 * aibox_convsmall_ws_floats. _dx_desc gives, for a stride-1 ungrouped d,
 * the convolution t of dy that is d's input gradient, and says whether t is
 * eligible; its weights are d's transposed and flipped (_dx_weights: in_c *
 * out_c * kh * kw floats). */
#define AIBOX_CONVSMALL_FEW_K 32
#define AIBOX_CONVSMALL_MAX_K 576
struct aibox_convsmall_row;
typedef struct aibox_convsmall_kernel {
    void (*fn)(const struct aibox_convsmall_row *r);
    const char *name;
} aibox_convsmall_kernel;
AIBOX_INTERNAL int aibox_convsmall_eligible(const aibox_conv_desc *d);
AIBOX_INTERNAL size_t aibox_convsmall_ws_floats(const aibox_conv_desc *d);
AIBOX_INTERNAL int aibox_convsmall_dx_desc(const aibox_conv_desc *d, aibox_conv_desc *t);
AIBOX_INTERNAL void aibox_convsmall_dx_weights(const aibox_conv_desc *d, const float *w, float *wt);
AIBOX_INTERNAL int aibox_convsmall_kernels(unsigned features, aibox_convsmall_kernel *k, int max);
AIBOX_INTERNAL int aibox_convsmall_pick(unsigned features, aibox_convsmall_kernel *k);
AIBOX_INTERNAL void aibox_convsmall_fwd_part(const aibox_convsmall_kernel *k, const aibox_conv_desc *d, int n,
                                             const float *x, const float *w, const float *scale, const float *b,
                                             float *y, float *ws, int relu, int part, int parts);
/* Winograd F(2x2, 3x3) forward for inference (no backward): 16 GEMMs on
 * transformed 4x4 tiles, 4 instead of 9 multiply-adds per output pixel and
 * input channel. Computes any 3x3, stride-1, ungrouped convolution with
 * top/left padding <= 2; aibox_wino_eligible says where it is also faster
 * than im2col (a measured rule, see winograd.c). The weights are transformed
 * once into u (aibox_wino_u_floats). A forward runs in blocks of tile rows:
 * tile row ty (output rows 2ty, 2ty + 1) of sample s is row
 * g = s * aibox_wino_tile_rows + ty of the batch, and a block [g0, g1) may
 * span samples. Each block goes through three phases in
 * order, each split into `parts` pieces that may run concurrently (piece
 * `part` here): x (the batch's first sample) into vm, times u, then into y
 * (also the whole batch) with aibox_conv_fwd_part's epilogue (scale, shift
 * b, relu). vm holds a block: aibox_wino_vm_floats(d, g1 - g0) floats; each
 * concurrent input piece needs its own ws. */
AIBOX_INTERNAL int aibox_wino_eligible(const aibox_conv_desc *d);
AIBOX_INTERNAL size_t aibox_wino_u_floats(const aibox_conv_desc *d);
AIBOX_INTERNAL void aibox_wino_weights(const aibox_conv_desc *d, const float *w, float *u);
AIBOX_INTERNAL int aibox_wino_tile_rows(const aibox_conv_desc *d); /* per sample */
AIBOX_INTERNAL size_t aibox_wino_vm_floats(const aibox_conv_desc *d, int rows);
/* The vm this layer runs best with: one sample's tile rows, or as many as
 * keep a block cache-sized; and the rows per block (>= 1) a vm of vm_floats
 * allows for a batch of n. */
AIBOX_INTERNAL size_t aibox_wino_scratch_floats(const aibox_conv_desc *d);
AIBOX_INTERNAL int aibox_wino_block_rows(const aibox_conv_desc *d, int n, size_t vm_floats);
AIBOX_INTERNAL size_t aibox_wino_ws_floats(const aibox_conv_desc *d);
AIBOX_INTERNAL void aibox_wino_input(const aibox_conv_desc *d, int g0, int g1, const float *x, float *vm, float *ws,
                                     int part, int parts);
AIBOX_INTERNAL void aibox_wino_gemm(const aibox_conv_desc *d, int rows, const float *u, float *vm, int part,
                                    int parts);
AIBOX_INTERNAL void aibox_wino_output(const aibox_conv_desc *d, int g0, int g1, const float *vm, const float *scale,
                                      const float *b, float *y, int relu, int part, int parts);
/* aibox_map_blur in pieces, for callers that split it over threads: the
 * kernel (aibox_map_blur_kernel_size(sigma) floats), the row pass of rows
 * [y0, y1) from map into tmp (w x h; pad: w + ks - 1 floats per caller), and
 * the column pass writing rows [y0, y1) of map from all of tmp. */
AIBOX_INTERNAL void aibox_map_blur_kernel(float sigma, float *k);
AIBOX_INTERNAL void aibox_map_blur_rows(const float *map, float *tmp, float *pad, int w, const float *k, int ks, int y0,
                                        int y1);
AIBOX_INTERNAL void aibox_map_blur_cols(float *map, const float *tmp, int w, int h, const float *k, int ks, int y0,
                                        int y1);
/* dx may be NULL (input needs no gradient); dw, db accumulate (either may be
 * NULL: not wanted, as in Grad-CAM's backward). */
AIBOX_INTERNAL void aibox_conv_bwd(const aibox_conv_desc *d, int n, const float *x, const float *w, const float *dy,
                                   float *dx, float *dw, float *db, float *ws);
/* The same, for a convolution whose forward applied a ReLU (relu_y: its
 * output, else NULL): dy is first masked by relu_y > 0, in place, chunk by
 * chunk while the chunk is in cache (the ReLU's backward, fused). dx_assign:
 * dx is stored whole (zeroed per sample here) rather than added to. The
 * values equal aibox_conv_bwd's after a separate mask pass. */
AIBOX_INTERNAL void aibox_conv_bwd_ex(const aibox_conv_desc *d, int n, const float *x, const float *w,
                                      const float *relu_y, float *dy, float *dx, int dx_assign, float *dw, float *db,
                                      float *ws);
AIBOX_INTERNAL void aibox_conv_fwd_ref(const aibox_conv_desc *d, int n, const float *x, const float *w,
                                       const float *b, float *y);
AIBOX_INTERNAL void aibox_conv_bwd_ref(const aibox_conv_desc *d, int n, const float *x, const float *w,
                                       const float *dy, float *dx, float *dw, float *db);

/* ------------------------------------------------------------ Mahalanobis */
/* PaDiM's scoring kernel (maha.c, maha_x86.c, maha_neon.c): acc[b] =
 * |L v_b|^2 for bn vectors v_b = diff + b d, with L the lower-triangular
 * d x d factor packed by rows (row i holds i + 1 entries, d (d + 1) / 2 in
 * all), in float32 or in IEEE half precision (uint16_t). Each row's dot product is summed in
 * float, its square accumulated in double; every kernel has a fixed
 * summation order (the same inputs give the same bits). */
typedef void (*aibox_maha_fn)(const void *L, const float *diff, int d, int bn, double *acc);
typedef struct aibox_maha_kernel {
    aibox_maha_fn fn;
    int half;         /* 1: L is IEEE half precision, 0: float32 */
    const char *name; /* "c-f32", "c-f16", then "avx2-f32", "avx2-f16" or "neon-f32", "neon-f16" */
} aibox_maha_kernel;
/* The kernels this build has that a CPU with `features` (aibox_cpu_features(),
 * or fewer bits to leave vector paths out) runs, the plain-C ones first
 * (always there): up to max of them into k; returns how many. For tests. */
AIBOX_INTERNAL int aibox_maha_kernels(unsigned features, aibox_maha_kernel *k, int max);
/* The kernel for scoring: the half-precision one when have_half (the model
 * keeps a half copy of its factor) and a vector kernel reads it, else the
 * fastest float32 one (plain C reads half only for the tests: converting in
 * scalar code costs more than the bandwidth it saves). Callers choose once
 * per model or context; features 0 picks plain C. */
AIBOX_INTERNAL aibox_maha_kernel aibox_maha_pick(unsigned features, int have_half);

/* ------------------------------------------------------------ half precision */
/* half.c: the library's one float <-> IEEE binary16 conversion (PaDiM's
 * half factor, float16 tensors in .aibox files, safetensors imports).
 * To half: rounded to nearest with ties to even (F16C's rounding mode 0):
 * overflow to +-inf (from 65520 on), results below the normal range as
 * subnormals or +-0, NaN as a quiet NaN with the sign and the top 9 payload
 * bits kept. Bit for bit the same on every path; features as for
 * aibox_maha_kernels (0: plain C). And back (exact), NaN quietened. */
#define AIBOX_HALF_MAX 65504.0f /* the largest finite half; from 65520 on a float rounds to inf */
AIBOX_INTERNAL void aibox_f32_to_f16(const float *x, uint16_t *h, size_t n, unsigned features);
AIBOX_INTERNAL void aibox_f16_to_f32(const uint16_t *h, float *x, size_t n, unsigned features);
/* The path both take with `features`: "c", "f16c" or "neon" (for test logs). */
AIBOX_INTERNAL const char *aibox_f16_path(unsigned features);
/* One value, plain C (the scalar path of aibox_f32_to_f16). */
AIBOX_INTERNAL uint16_t aibox_float_to_half(float f);
/* One half to float, exact, NaN quietened (the scalar path of
 * aibox_f16_to_f32); inline for loops that widen as they read. */
static inline float aibox_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = h >> 10 & 0x1f, m = h & 0x3ff, x;
    float f;
    if (e == 0x1f) x = sign | 0x7f800000 | m << 13 | (m ? 0x400000 : 0);
    else if (e) x = sign | (e + 112) << 23 | m << 13;
    else if (m) { /* subnormal: m 2^-24, exact in float */
        f = (float)m * 0x1p-24f;
        memcpy(&x, &f, sizeof x);
        x |= sign;
    } else x = sign;
    memcpy(&f, &x, sizeof f);
    return f;
}

/* ------------------------------------------------------------ dense */
/* y[n][out] = x[n][in] . w[out][in]^T + b[out] (PyTorch layout). */
AIBOX_INTERNAL void aibox_dense_fwd(int n, int in, int out, const float *x, const float *w, const float *b, float *y);
AIBOX_INTERNAL void aibox_dense_bwd(int n, int in, int out, const float *x, const float *w, const float *dy,
                                    float *dx, float *dw, float *db);
/* dx, dw may be NULL (not wanted; dw NULL skips db too). Piece `part` of
 * `parts`: forward computes a range of output units;
 * backward a range of rows of dw/db and a range of columns of dx. Pieces
 * touch disjoint memory, so they may run concurrently. */
AIBOX_INTERNAL void aibox_dense_fwd_part(int n, int in, int out, const float *x, const float *w, const float *b,
                                         float *y, int part, int parts);
AIBOX_INTERNAL void aibox_dense_bwd_part(int n, int in, int out, const float *x, const float *w, const float *dy,
                                         float *dx, float *dw, float *db, int part, int parts);
AIBOX_INTERNAL void aibox_dense_fwd_ref(int n, int in, int out, const float *x, const float *w, const float *b,
                                        float *y);
AIBOX_INTERNAL void aibox_dense_bwd_ref(int n, int in, int out, const float *x, const float *w, const float *dy,
                                        float *dx, float *dw, float *db);

/* ------------------------------------------------------------ pooling */
typedef struct aibox_pool_desc {
    int c, in_h, in_w, out_h, out_w;
    int kh, kw, sh, sw;
    int pt, pl;             /* top/left padding */
    int count_include_pad;  /* average: divide by kh*kw (1) or by the valid cells (0) */
} aibox_pool_desc;

/* Max pool: padded cells never win (as PyTorch's -inf padding). argmax
 * (n*c*out_h*out_w, index into the sample-channel plane) may be NULL in inference. */
AIBOX_INTERNAL void aibox_maxpool_fwd(const aibox_pool_desc *d, int n, const float *x, float *y, int32_t *argmax);
AIBOX_INTERNAL void aibox_maxpool_bwd(const aibox_pool_desc *d, int n, const float *dy, const int32_t *argmax,
                                      float *dx);
/* assign: dx is stored whole (each input cell its gradient or 0) instead of
 * added to; the same values as aibox_maxpool_bwd into zeros. */
AIBOX_INTERNAL void aibox_maxpool_bwd_ex(const aibox_pool_desc *d, int n, const float *dy, const int32_t *argmax,
                                         float *dx, int assign);
AIBOX_INTERNAL void aibox_avgpool_fwd(const aibox_pool_desc *d, int n, const float *x, float *y);
AIBOX_INTERNAL void aibox_avgpool_bwd(const aibox_pool_desc *d, int n, const float *dy, float *dx);
/* Global average pool: y[n][c] = mean over h*w. */
AIBOX_INTERNAL void aibox_gap_fwd(int n, int c, int hw, const float *x, float *y);
AIBOX_INTERNAL void aibox_gap_bwd(int n, int c, int hw, const float *dy, float *dx);

/* ------------------------------------------------------------ activations */
/* count elements. Backward reads the forward input x (relu, leaky, clamp) or
 * output y (sigmoid). */
AIBOX_INTERNAL void aibox_relu_fwd(size_t count, const float *x, float *y);
AIBOX_INTERNAL void aibox_relu_bwd(size_t count, const float *x, const float *dy, float *dx);
/* dx = (x > 0 ? dy : 0), stored (a gradient nothing else writes). */
AIBOX_INTERNAL void aibox_relu_bwd_set(size_t count, const float *x, const float *dy, float *dx);
AIBOX_INTERNAL void aibox_clamp_fwd(size_t count, float lo, float hi, const float *x, float *y);
AIBOX_INTERNAL void aibox_clamp_bwd(size_t count, float lo, float hi, const float *x, const float *dy, float *dx);
AIBOX_INTERNAL void aibox_leaky_fwd(size_t count, float alpha, const float *x, float *y);
AIBOX_INTERNAL void aibox_leaky_bwd(size_t count, float alpha, const float *x, const float *dy, float *dx);
AIBOX_INTERNAL void aibox_sigmoid_fwd(size_t count, const float *x, float *y);
AIBOX_INTERNAL void aibox_sigmoid_bwd(size_t count, const float *y, const float *dy, float *dx);

/* Dropout (inverted): mask[i] = 0 or 1/(1-rate), drawn from rng; y = x*mask. */
AIBOX_INTERNAL void aibox_dropout_fwd(size_t count, float rate, aibox_rng *rng, const float *x, float *y,
                                      float *mask);
AIBOX_INTERNAL void aibox_dropout_bwd(size_t count, const float *mask, const float *dy, float *dx);
/* dx = dy * mask, stored. */
AIBOX_INTERNAL void aibox_dropout_bwd_set(size_t count, const float *mask, const float *dy, float *dx);

/* ------------------------------------------------------------ optimizer updates */
/* Adam / AdamW over n parameters (optim_ops.c): gi = g + l2 * p;
 * m = b1 m + (1 - b1) gi; v = b2 v + (1 - b2) gi gi;
 * p -= decay p + lr_t m / (sqrt(v) + eps), in that order of operations on
 * every path. Kernels as aibox_dwconv_kernels: plain C first ("c", "avx2",
 * "avx512" or "neon"), what this build has and `features` allow; _pick the widest. */
typedef struct aibox_adam_coef {
    float b1, b2, one_minus_b1, one_minus_b2, l2, decay, lr_t, eps;
} aibox_adam_coef;
typedef void (*aibox_adam_fn)(const aibox_adam_coef *c, size_t n, float *p, const float *g, float *m, float *v);
AIBOX_INTERNAL int aibox_adam_kernels(unsigned features, aibox_adam_fn *k, const char **names, int max);
AIBOX_INTERNAL aibox_adam_fn aibox_adam_pick(unsigned features);

/* Softmax over channels for each (n, h*w) position. */
AIBOX_INTERNAL void aibox_softmax_fwd(int n, int c, int hw, const float *x, float *y);
AIBOX_INTERNAL void aibox_softmax_bwd(int n, int c, int hw, const float *y, const float *dy, float *dx);

/* ------------------------------------------------------------ batch norm */
/* Training: batch statistics over (n, h*w) per channel (biased variance for
 * normalising, unbiased for the running update as PyTorch);
 * running = (1-momentum)*running + momentum*batch. Saves mean and 1/std. */
AIBOX_INTERNAL void aibox_bn_fwd_train(int n, int c, int hw, float eps, float momentum, const float *x,
                                       const float *gamma, const float *beta, float *y, float *save_mean,
                                       float *save_invstd, float *run_mean, float *run_var);
AIBOX_INTERNAL void aibox_bn_fwd_infer(int n, int c, int hw, float eps, const float *x, const float *gamma,
                                       const float *beta, const float *run_mean, const float *run_var, float *y);
AIBOX_INTERNAL void aibox_bn_bwd(int n, int c, int hw, const float *x, const float *gamma, const float *save_mean,
                                 const float *save_invstd, const float *dy, float *dx, float *dgamma, float *dbeta);

/* ------------------------------------------------------------ shape ops */
AIBOX_INTERNAL void aibox_zeropad_fwd(int n, int c, int h, int w, int pt, int pl, int pb, int pr, const float *x,
                                      float *y);
AIBOX_INTERNAL void aibox_zeropad_bwd(int n, int c, int h, int w, int pt, int pl, int pb, int pr, const float *dy,
                                      float *dx);
/* Concat along channels: input i has cs[i] channels, all h*w = hw. */
AIBOX_INTERNAL void aibox_concat_fwd(int n, int k, const int *cs, int hw, const float *const *xs, float *y);
AIBOX_INTERNAL void aibox_concat_bwd(int n, int k, const int *cs, int hw, const float *dy, float *const *dxs);
AIBOX_INTERNAL void aibox_add_fwd(size_t count, const float *a, const float *b, float *y);
/* Upsampling from (h, w) to (oh, ow). Bilinear uses align_corners = false
 * (half-pixel centres, source clamped at the borders) as PyTorch. */
AIBOX_INTERNAL void aibox_upsample_nearest_fwd(int n, int c, int h, int w, int oh, int ow, const float *x, float *y);
AIBOX_INTERNAL void aibox_upsample_nearest_bwd(int n, int c, int h, int w, int oh, int ow, const float *dy,
                                               float *dx);
AIBOX_INTERNAL void aibox_upsample_bilinear_fwd(int n, int c, int h, int w, int oh, int ow, const float *x,
                                                float *y);
AIBOX_INTERNAL void aibox_upsample_bilinear_bwd(int n, int c, int h, int w, int oh, int ow, const float *dy,
                                                float *dx);

/* ------------------------------------------------------------ distances */
/* out[r] = |y[rows[r]] - z|^2 for n rows of k floats (row-major y), each as
 * eight lane sums (lane j % 8) added pairwise: the same result on every path. */
AIBOX_INTERNAL void aibox_sqdist_rows(const float *y, int k, const int *rows, int n, const float *z, float *out);

/* ------------------------------------------------------------ losses */
/* Each returns the mean loss and WRITES (not accumulates) the gradient with
 * respect to its input into dx; dx may be NULL. */
AIBOX_INTERNAL float aibox_softmax_ce(int n, int k, const float *logits, const int *labels,
                                      const float *class_weights, float *dx);
AIBOX_INTERNAL float aibox_sigmoid_bce(size_t count, const float *logits, const float *targets, float *dx);
AIBOX_INTERNAL float aibox_mse(size_t count, const float *y, const float *targets, float *dx);

#endif

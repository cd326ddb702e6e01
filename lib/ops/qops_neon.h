/* The aarch64 twins of the 8-bit kernels (qops_neon.c), internal to
 * lib/ops/qops.c. Each has the contract of the plain-C kernel named beside it
 * and must equal it bit for bit (tests/ops/test_qops.c). Include after
 * ops/simd.h: everything here exists only with AIBOX_SIMD_NEON. */
#ifndef AIBOX_OPS_QOPS_NEON_H
#define AIBOX_OPS_QOPS_NEON_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

#ifdef AIBOX_SIMD_NEON
/* One block of the packed 8-bit convolution (qops.c's gemm_c). Both take the
 * patches as (a - 128) int8, so the packed tables must include the fifth,
 * colc + 128 sum(w) per output channel (tab + 4 * O16). */
#define AIBOX_NEON_QGEMM_NEEDS AIBOX_CPU_NEON
#define AIBOX_NEON_QGEMM_DOT_NEEDS (AIBOX_CPU_NEON | AIBOX_CPU_DOTPROD)
/* sdot (Armv8.2 DotProd): call only when the features have AIBOX_NEON_QGEMM_DOT_NEEDS. */
AIBOX_INTERNAL void aibox_qgemm_neon_dot(const uint8_t *a, size_t lda, int rows, const int8_t *w, const int32_t *tab,
                                         const int32_t *rowsum, int K4, int O16, int ocg, int wofs, int out_zp,
                                         int act_min, int act_max, uint8_t *y, size_t ldy);
/* Baseline Advanced SIMD (widening multiplies into int32). */
AIBOX_INTERNAL void aibox_qgemm_neon(const uint8_t *a, size_t lda, int rows, const int8_t *w, const int32_t *tab,
                                     const int32_t *rowsum, int K4, int O16, int ocg, int wofs, int out_zp,
                                     int act_min, int act_max, uint8_t *y, size_t ldy);
/* The sums of rows patches of K bytes (qops.c's row_sums_c). */
AIBOX_INTERNAL void aibox_qrowsum_neon(const uint8_t *a, size_t lda, int rows, int K, int32_t *rowsum);
/* The depthwise convolution of output pixels [p0, p1) (qops.c's depthwise_rows). */
AIBOX_INTERNAL void aibox_qdw_neon(const int32_t *packed, int C, int in_h, int in_w, int out_h, int out_w, int kh,
                                   int kw, int sh, int sw, int pt, int pl, int in_zp, int out_zp, int act_min,
                                   int act_max, const uint8_t *x, int p0, int p1, uint8_t *y);
/* An input's quantisation (qops.c's quantize_c). */
AIBOX_INTERNAL void aibox_q_quantize_neon(const float *x, int n, float inv, float zp, uint8_t *q);
#endif

#endif

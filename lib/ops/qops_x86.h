/* The x86 twins of qops.c's 8-bit helpers beyond simd.h's kernels, internal
 * to lib/ops/qops.c. Include after ops/simd.h: everything here exists only
 * with AIBOX_SIMD_X86. */
#ifndef AIBOX_OPS_QOPS_X86_H
#define AIBOX_OPS_QOPS_X86_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

#ifdef AIBOX_SIMD_X86
/* qops.c's im2col for an ungrouped layer of short kernel rows (row = kw *
 * in_c <= 16 bytes, each in a slot of row4 bytes, the rest zero; K4 = kh *
 * row4): patches of output pixels [p0, p0 + rows) with their sums (rowsum
 * may be NULL). AIBOX_X86_QGEMM_NEEDS. */
AIBOX_INTERNAL void aibox_qim2col_short_avx512(const uint8_t *x, int in_h, int in_w, int in_c, int out_h, int out_w,
                                               int kh, int kw, int sh, int sw, int pt, int pl, int zp, int row4,
                                               int p0, int rows, uint8_t *col, int32_t *rowsum);
/* qops.c's aibox_q_quantize3 (three planes to pixels of three bytes),
 * AIBOX_X86_QGEMM_NEEDS. */
AIBOX_INTERNAL void aibox_q_quantize3_avx512(const float *x, size_t plane, int n, float inv, float zp, uint8_t *q);
#endif

#endif

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
/* An ungrouped convolution of short kernel rows (row = kw * in_c <= 16,
 * sw * in_c <= 7) straight from x, output pixels [p0, p1): the contract of
 * im2col into row4 slots then aibox_qgemm_vnni with the group's packed
 * weights w and tables tab (ldy = ocg). ws: aibox_qconv_rows_ws bytes.
 * AIBOX_X86_QROWS_NEEDS. */
#define AIBOX_X86_QROWS_NEEDS (AIBOX_X86_QGEMM_NEEDS | AIBOX_CPU_AVX512VBMI)
AIBOX_INTERNAL size_t aibox_qconv_rows_ws(int in_c, int out_w, int kh, int sw);
AIBOX_INTERNAL void aibox_qconv_rows_vbmi(const uint8_t *x, int in_h, int in_w, int in_c, int out_h, int out_w, int kh,
                                          int kw, int sh, int sw, int pt, int pl, int in_zp, int row4, const int8_t *w,
                                          const int32_t *tab, int O16, int ocg, int wofs, int out_zp, int act_min,
                                          int act_max, int p0, int p1, uint8_t *y, uint8_t *ws);
/* qops.c's aibox_q_quantize3 (three planes to pixels of three bytes),
 * AIBOX_X86_QGEMM_NEEDS. */
AIBOX_INTERNAL void aibox_q_quantize3_avx512(const float *x, size_t plane, int n, float inv, float zp, uint8_t *q);
#endif

#endif

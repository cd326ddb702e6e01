/* Which hand-written SIMD paths this build compiles: the one place that
 * decides, included by lib/ops only. Every vector kernel lives in a file of
 * lib/ops whose whole body is inside one of these guards (maha_x86.c), next
 * to a plain-C twin in the dispatching file (maha.c; half.c for the
 * conversions) that every build has and the tests compare with the same
 * double-precision reference.
 *
 *  - AIBOX_SIMD_X86: x86-64 or i386. The kernels carry target attributes
 *    (the rest of the build stays baseline x86-64) and are only called when
 *    aibox_cpu_features() reports what they use, so one binary runs on any
 *    x86 CPU.
 *  - -DAIBOX_NO_SIMD: none at all, plain C everywhere (the compiler's own
 *    auto-vectorisation for the baseline target only); `make check-nosimd`.
 *  - AIBOX_SIMD_NEON: aarch64. Advanced SIMD is part of the base
 *    architecture, so NEON kernels need no target attribute; the Armv8.2
 *    extensions (DotProd's sdot/udot, FP16) carry one and are only called
 *    when aibox_cpu_features() reports them (AIBOX_CPU_DOTPROD, ...). The
 *    kernels live in *_neon.c files (or a guarded section of the dispatching
 *    file) next to the same plain-C twins the x86 kernels are tested against.
 *  - Other architectures: plain C. */
#ifndef AIBOX_OPS_SIMD_H
#define AIBOX_OPS_SIMD_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

#if (defined(__x86_64__) || defined(__i386__)) && !defined(AIBOX_NO_SIMD)
#define AIBOX_SIMD_X86 1
#endif
#if defined(__aarch64__) && !defined(AIBOX_NO_SIMD)
#define AIBOX_SIMD_NEON 1
#endif

/* GCC/clang function multi-versioning (an AVX2 clone picked by the loader
 * through an ifunc, the baseline one elsewhere) for plain-C loops the
 * compiler vectorises better with AVX2: x86 only, and not with AIBOX_NO_SIMD. */
#if defined(AIBOX_SIMD_X86) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define AIBOX_CLONES_AVX2 __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef AIBOX_CLONES_AVX2
#define AIBOX_CLONES_AVX2
#endif

#ifdef AIBOX_SIMD_X86
/* maha_x86.c (AVX2 + FMA + F16C): the contracts of aibox_maha_fn and of
 * aibox_f32_to_f16 / aibox_f16_to_f32 in ops.h. Call only when
 * aibox_cpu_features() has AIBOX_CPU_AVX2 | AIBOX_CPU_FMA | AIBOX_CPU_F16C. */
#define AIBOX_X86_MAHA_NEEDS (AIBOX_CPU_AVX2 | AIBOX_CPU_FMA | AIBOX_CPU_F16C)
AIBOX_INTERNAL void aibox_maha_f32_avx2(const void *L, const float *diff, int d, int bn, double *acc);
AIBOX_INTERNAL void aibox_maha_f16_avx2(const void *L, const float *diff, int d, int bn, double *acc);
AIBOX_INTERNAL void aibox_f32_to_f16_f16c(const float *x, uint16_t *h, size_t n);
AIBOX_INTERNAL void aibox_f16_to_f32_f16c(const uint16_t *h, float *x, size_t n);
/* qops_x86.c (AVX-512 VNNI): one block of the packed 8-bit convolution, the
 * contract of qops.c's plain-C gemm_c (rows patches of K4 bytes at a, lda
 * apart, times one group's packed weights and tables, into rows of ocg
 * bytes at y, ldy apart). */
#define AIBOX_X86_QGEMM_NEEDS (AIBOX_CPU_AVX512F | AIBOX_CPU_AVX512BW | AIBOX_CPU_AVX512VL | AIBOX_CPU_AVX512VNNI)
AIBOX_INTERNAL void aibox_qgemm_vnni(const uint8_t *a, size_t lda, int rows, const int8_t *w, const int32_t *tab,
                                     const int32_t *rowsum, int K4, int O16, int ocg, int wofs, int out_zp,
                                     int act_min, int act_max, uint8_t *y, size_t ldy);
/* The sums of rows patches of K bytes (qops.c's row_sums), AIBOX_X86_QGEMM_NEEDS. */
AIBOX_INTERNAL void aibox_qrowsum_avx512(const uint8_t *a, size_t lda, int rows, int K, int32_t *rowsum);
/* The same GEMM with AVX2 alone (int16 products by vpmaddwd, exact). */
#define AIBOX_X86_QGEMM2_NEEDS AIBOX_CPU_AVX2
AIBOX_INTERNAL void aibox_qgemm_avx2(const uint8_t *a, size_t lda, int rows, const int8_t *w, const int32_t *tab,
                                     const int32_t *rowsum, int K4, int O16, int ocg, int wofs, int out_zp,
                                     int act_min, int act_max, uint8_t *y, size_t ldy);
/* The depthwise convolution of output pixels [p0, p1), qops.c's depthwise_rows. */
AIBOX_INTERNAL void aibox_qdw_avx512(const int32_t *packed, int C, int in_h, int in_w, int out_h, int out_w, int kh,
                                     int kw, int sh, int sw, int pt, int pl, int in_zp, int out_zp, int act_min,
                                     int act_max, const uint8_t *x, int p0, int p1, uint8_t *y);
#endif

#ifdef AIBOX_SIMD_NEON
/* ------------------------------------------------------------ NEON float kernels */
/* maha_neon.c: the contracts of aibox_maha_fn and of aibox_f32_to_f16 /
 * aibox_f16_to_f32 in ops.h, as maha_x86.c's. Base Armv8 Advanced SIMD (FMA,
 * FCVTL / FCVTN included): call when aibox_cpu_features() has
 * AIBOX_CPU_NEON. (The depthwise, small-channel convolution and Adam twins
 * are static in dwconv.c, conv_small.c and optim_ops.c, as the x86 ones.) */
AIBOX_INTERNAL void aibox_maha_f32_neon(const void *L, const float *diff, int d, int bn, double *acc);
AIBOX_INTERNAL void aibox_maha_f16_neon(const void *L, const float *diff, int d, int bn, double *acc);
AIBOX_INTERNAL void aibox_f32_to_f16_neon(const float *x, uint16_t *h, size_t n);
AIBOX_INTERNAL void aibox_f16_to_f32_neon(const uint16_t *h, float *x, size_t n);
#endif

#endif

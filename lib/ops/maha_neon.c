/* aarch64 vector kernels of the Mahalanobis scoring and the half-precision
 * conversions: the NEON twins of maha_x86.c, under the same contracts
 * (aibox_maha_fn, aibox_f32_to_f16 / aibox_f16_to_f32 in ops.h). Advanced
 * SIMD and its half <-> single conversions (FCVTL / FCVTN) are Armv8.0 base,
 * so no target attribute; maha.c and half.c call these when the feature mask
 * has AIBOX_CPU_NEON and hold their plain-C twins. */
#include "ops/ops.h"
#include "ops/simd.h"

#ifdef AIBOX_SIMD_NEON /* aarch64 and not AIBOX_NO_SIMD: see simd.h */
#include <arm_neon.h>

#define INLINE __attribute__((always_inline)) static inline

/* 4 factor entries from k as floats: float32, or IEEE half widened exactly. */
INLINE float32x4_t load4(const void *L, int k, int half)
{
    return half ? vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)L + k)))
                : vld1q_f32((const float *)L + k);
}

/* |L v|^2 for bn vectors v as maha_x86.c's maha_wide (the factor, the one
 * big operand, read once per batch): each row's dot product in four 4-wide
 * fused accumulators (a 4-cycle FMA latency needs four chains in flight),
 * 16 entries a step, then 4 at a time into the first, the lanes summed in a
 * fixed order, the row's tail in scalar order. The order depends on the row
 * length only, so a vector gets the same bits alone as in a batch. */
INLINE void maha_neon(const void *L, int half, const float *diff, int d, int bn, double *acc)
{
    for (int b = 0; b < bn; b++) acc[b] = 0;
    for (int i = 0; i < d; i++) {
        int n = i + 1;
        for (int b = 0; b < bn; b++) {
            const float *v = diff + (size_t)b * d;
            float32x4_t s0 = vdupq_n_f32(0), s1 = s0, s2 = s0, s3 = s0;
            int k = 0;
            for (; k + 16 <= n; k += 16) {
                s0 = vfmaq_f32(s0, load4(L, k, half), vld1q_f32(v + k));
                s1 = vfmaq_f32(s1, load4(L, k + 4, half), vld1q_f32(v + k + 4));
                s2 = vfmaq_f32(s2, load4(L, k + 8, half), vld1q_f32(v + k + 8));
                s3 = vfmaq_f32(s3, load4(L, k + 12, half), vld1q_f32(v + k + 12));
            }
            for (; k + 4 <= n; k += 4) s0 = vfmaq_f32(s0, load4(L, k, half), vld1q_f32(v + k));
            float z = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
            for (; k < n; k++)
                z += (half ? aibox_half_to_float(((const uint16_t *)L)[k]) : ((const float *)L)[k]) * v[k];
            acc[b] += (double)z * z;
        }
        L = half ? (const void *)((const uint16_t *)L + n) : (const void *)((const float *)L + n);
    }
}

void aibox_maha_f32_neon(const void *L, const float *diff, int d, int bn, double *acc)
{
    maha_neon(L, 0, diff, d, bn, acc);
}

/* The half-precision factor: half the bytes to stream, widened in registers. */
void aibox_maha_f16_neon(const void *L, const float *diff, int d, int bn, double *acc)
{
    maha_neon(L, 1, diff, d, bn, acc);
}

/* FCVTN rounds by FPCR's mode: to nearest, ties to even, in C's default
 * floating-point environment (the library never changes it; fesetround
 * would). With FPCR.DN clear (Linux's default) a NaN comes out quiet with
 * its sign and the payload's top 9 bits, as half.c's plain-C twin, bit for
 * bit (tests/ops/test_maha.c). The tail goes through the same instruction
 * in a padded vector, so every value takes one path. */
void aibox_f32_to_f16_neon(const float *x, uint16_t *h, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        float16x8_t q = vcvt_high_f16_f32(vcvt_f16_f32(vld1q_f32(x + i)), vld1q_f32(x + i + 4));
        vst1q_u16(h + i, vreinterpretq_u16_f16(q));
    }
    for (; i < n; i += 4) {
        float in[4] = {0, 0, 0, 0};
        uint16_t out[4];
        size_t m = n - i < 4 ? n - i : 4;
        for (size_t j = 0; j < m; j++) in[j] = x[i + j];
        vst1_u16(out, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(in))));
        for (size_t j = 0; j < m; j++) h[i + j] = out[j];
    }
}

/* FCVTL: exact; a signalling NaN quietened with its payload (FPCR.DN clear). */
void aibox_f16_to_f32_neon(const uint16_t *h, float *x, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        float16x8_t q = vreinterpretq_f16_u16(vld1q_u16(h + i));
        vst1q_f32(x + i, vcvt_f32_f16(vget_low_f16(q)));
        vst1q_f32(x + i + 4, vcvt_high_f32_f16(q));
    }
    for (; i < n; i += 4) {
        uint16_t in[4] = {0, 0, 0, 0};
        float out[4];
        size_t m = n - i < 4 ? n - i : 4;
        for (size_t j = 0; j < m; j++) in[j] = h[i + j];
        vst1q_f32(out, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(in))));
        for (size_t j = 0; j < m; j++) x[i + j] = out[j];
    }
}
#else
typedef int aibox_maha_neon_not_built; /* ISO C wants a declaration in every file */
#endif

/* x86 vector kernels of the Mahalanobis scoring and the half-precision
 * conversions (AVX2 + FMA + F16C). Compiled with target attributes, so the
 * rest of the build stays baseline x86-64; maha.c and half.c call them only
 * when aibox_cpu_features() reports the features (and the OS's YMM state),
 * and hold their plain-C twins. Moved from lib/padim/padim.c unchanged in
 * arithmetic: fixed summation order per kernel, as before. */
#include "ops/simd.h"

#ifdef AIBOX_SIMD_X86 /* (x86-64 or i386) and not AIBOX_NO_SIMD: see simd.h */
#include <immintrin.h>

#define X86_TARGET __attribute__((target("avx2,fma,f16c")))

/* 8 factor entries as floats: float32 or IEEE half (F16C). */
X86_TARGET __attribute__((always_inline)) static inline __m256 load8(const void *L, int k, int half)
{
    return half ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)L + k)))
                : _mm256_loadu_ps((const float *)L + k);
}

/* |L v|^2 for bn vectors v (each d long) with the row-packed lower factor L.
 * The factor (P * d(d+1)/2 floats, 63 MB at d = 100) is the one big operand,
 * so scoring is bound by memory bandwidth: it is read once per batch, and the
 * row dot products run 8 wide, two accumulators, then the row's tail in
 * scalar order. */
X86_TARGET __attribute__((always_inline)) static inline void maha_wide(const void *L, int half, const float *diff,
                                                                       int d, int bn, double *acc)
{
    for (int b = 0; b < bn; b++) acc[b] = 0;
    for (int i = 0; i < d; i++) {
        int n = i + 1;
        for (int b = 0; b < bn; b++) {
            const float *v = diff + (size_t)b * d;
            __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
            int k = 0;
            for (; k + 16 <= n; k += 16) {
                s0 = _mm256_fmadd_ps(load8(L, k, half), _mm256_loadu_ps(v + k), s0);
                s1 = _mm256_fmadd_ps(load8(L, k + 8, half), _mm256_loadu_ps(v + k + 8), s1);
            }
            if (k + 8 <= n) s0 = _mm256_fmadd_ps(load8(L, k, half), _mm256_loadu_ps(v + k), s0), k += 8;
            s0 = _mm256_add_ps(s0, s1);
            __m128 h = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
            h = _mm_add_ps(h, _mm_movehl_ps(h, h));
            h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
            float z = _mm_cvtss_f32(h);
            for (; k < n; k++) z += (half ? _cvtsh_ss(((const uint16_t *)L)[k]) : ((const float *)L)[k]) * v[k];
            acc[b] += (double)z * z;
        }
        L = half ? (const void *)((const uint16_t *)L + n) : (const void *)((const float *)L + n);
    }
}

X86_TARGET void aibox_maha_f32_avx2(const void *L, const float *diff, int d, int bn, double *acc)
{
    maha_wide(L, 0, diff, d, bn, acc);
}

/* The half-precision factor: half the bytes to stream. */
X86_TARGET void aibox_maha_f16_avx2(const void *L, const float *diff, int d, int bn, double *acc)
{
    maha_wide(L, 1, diff, d, bn, acc);
}

/* Rounding mode 0 (to nearest, ties to even) whatever MXCSR says; NaNs come
 * out quiet with the payload's top bits (half.c's plain-C twin does the same,
 * bit for bit; tests/ops/test_maha.c checks it). */
__attribute__((target("avx,f16c"))) void aibox_f32_to_f16_f16c(const float *x, uint16_t *h, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(h + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) h[i] = _cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
}

__attribute__((target("avx,f16c"))) void aibox_f16_to_f32_f16c(const uint16_t *h, float *x, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
    for (; i < n; i++) x[i] = _cvtsh_ss(h[i]);
}
#else
typedef int aibox_maha_x86_not_built; /* ISO C wants a declaration in every file */
#endif

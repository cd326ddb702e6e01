/* PaDiM's Mahalanobis kernels and the half-precision conversions: the
 * plain-C paths every build has, and the run-time choice among them and the
 * vector ones of this architecture (simd.h says which are compiled). The
 * choice is a pure function of the CPU feature mask the caller passes
 * (aibox_cpu_features(), asked once per model or context): no state here.
 * Features, not the CPU's model name: target_clones("arch=...") dispatches
 * on the model and would miss AMD CPUs. */
#include <string.h>

#include "ops/ops.h"
#include "ops/simd.h"

/* ------------------------------------------------------------ half precision */
/* One float to IEEE binary16, round to nearest, ties to even. */
static uint16_t f2h(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = x >> 16 & 0x8000, a = x & 0x7fffffff;
    if (a >= 0x7f800000) /* inf, or NaN: quiet, the payload's top bits kept (as F16C) */
        return (uint16_t)(sign | 0x7c00 | (a > 0x7f800000 ? 0x200 | (a >> 13 & 0x3ff) : 0));
    if (a >= 0x477ff000) return (uint16_t)(sign | 0x7c00); /* >= 65520: past 65504 by half a step or more */
    uint32_t q, rem, halfway;
    if (a >= 0x38800000) { /* normal: rebias the exponent, 23 mantissa bits to 10 */
        a -= 0x38000000;
        q = a >> 13, rem = a & 0x1fff, halfway = 0x1000;
    } else if (a >= 0x33000000) { /* [2^-25, 2^-14): a subnormal (or the smallest normal, by carry) */
        uint32_t m = (a & 0x7fffff) | 0x800000, shift = 126 - (a >> 23); /* 14 .. 24 */
        q = m >> shift, rem = m & ((1u << shift) - 1), halfway = 1u << (shift - 1);
    } else {
        return (uint16_t)sign; /* below half the smallest subnormal: zero */
    }
    if (rem > halfway || (rem == halfway && (q & 1))) q++; /* a carry moves into the exponent, as it should */
    return (uint16_t)(sign | q);
}

/* IEEE binary16 to float: exact; a NaN comes out quiet (as F16C). */
static inline float h2f(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = h >> 10 & 0x1f, m = h & 0x3ff, x;
    if (e == 0x1f) x = sign | 0x7f800000 | m << 13 | (m ? 0x400000 : 0);
    else if (e) x = sign | (e + 112) << 23 | m << 13;
    else if (m) { /* subnormal: m 2^-24, exact in float */
        float f = (float)m * 0x1p-24f;
        memcpy(&x, &f, sizeof x);
        x |= sign;
    } else x = sign;
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

void aibox_f32_to_f16(const float *x, uint16_t *h, size_t n, unsigned features)
{
#ifdef AIBOX_SIMD_X86
    if (features & AIBOX_CPU_F16C) {
        aibox_f32_to_f16_f16c(x, h, n);
        return;
    }
#endif
    (void)features;
    for (size_t i = 0; i < n; i++) h[i] = f2h(x[i]);
}

void aibox_f16_to_f32(const uint16_t *h, float *x, size_t n, unsigned features)
{
#ifdef AIBOX_SIMD_X86
    if (features & AIBOX_CPU_F16C) {
        aibox_f16_to_f32_f16c(h, x, n);
        return;
    }
#endif
    (void)features;
    for (size_t i = 0; i < n; i++) x[i] = h2f(h[i]);
}

/* ------------------------------------------------------------ Mahalanobis */
/* Plain C: each row's dot product in four interleaved float partial sums
 * (independent, so the compiler may keep them in one 4-wide register
 * without reordering anything), then the row's tail in order. */
static void maha_f32_c(const void *factor, const float *diff, int d, int bn, double *acc)
{
    const float *L = factor;
    for (int b = 0; b < bn; b++) acc[b] = 0;
    for (int i = 0; i < d; i++) {
        int n = i + 1;
        for (int b = 0; b < bn; b++) {
            const float *v = diff + (size_t)b * d;
            float s4[4] = {0, 0, 0, 0};
            int k = 0;
            for (; k + 4 <= n; k += 4)
                for (int l = 0; l < 4; l++) s4[l] += L[k + l] * v[k + l];
            float z = (s4[0] + s4[2]) + (s4[1] + s4[3]);
            for (; k < n; k++) z += L[k] * v[k];
            acc[b] += (double)z * z;
        }
        L += n;
    }
}

/* The same order on a half-precision factor, each entry widened exactly. */
static void maha_f16_c(const void *factor, const float *diff, int d, int bn, double *acc)
{
    const uint16_t *L = factor;
    for (int b = 0; b < bn; b++) acc[b] = 0;
    for (int i = 0; i < d; i++) {
        int n = i + 1;
        for (int b = 0; b < bn; b++) {
            const float *v = diff + (size_t)b * d;
            float s4[4] = {0, 0, 0, 0};
            int k = 0;
            for (; k + 4 <= n; k += 4)
                for (int l = 0; l < 4; l++) s4[l] += h2f(L[k + l]) * v[k + l];
            float z = (s4[0] + s4[2]) + (s4[1] + s4[3]);
            for (; k < n; k++) z += h2f(L[k]) * v[k];
            acc[b] += (double)z * z;
        }
        L += n;
    }
}

/* Every kernel, plain C first, then the vector ones (faster last within a
 * precision): what the build compiled and the features allow. */
int aibox_maha_kernels(unsigned features, aibox_maha_kernel *k, int max)
{
    aibox_maha_kernel all[4];
    int n = 0;
    all[n++] = (aibox_maha_kernel){maha_f32_c, 0, "c-f32"};
    all[n++] = (aibox_maha_kernel){maha_f16_c, 1, "c-f16"};
#ifdef AIBOX_SIMD_X86
    if ((features & AIBOX_X86_MAHA_NEEDS) == AIBOX_X86_MAHA_NEEDS) {
        all[n++] = (aibox_maha_kernel){aibox_maha_f32_avx2, 0, "avx2-f32"};
        all[n++] = (aibox_maha_kernel){aibox_maha_f16_avx2, 1, "avx2-f16"};
    }
#endif
    (void)features;
    for (int i = 0; i < n && i < max; i++) k[i] = all[i];
    return n < max ? n : max;
}

aibox_maha_kernel aibox_maha_pick(unsigned features, int have_half)
{
    aibox_maha_kernel k[4], best = {maha_f32_c, 0, "c-f32"};
    int n = aibox_maha_kernels(features, k, 4);
    for (int i = 2; i < n; i++) /* past the plain-C pair: vector kernels, in order */
        if (!k[i].half || have_half) best = k[i];
    return best;
}

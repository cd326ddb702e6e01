/* The optimizers' element-wise updates over ranges of the flat parameter
 * block (lib/optim splits the block over a context's threads). Adam's
 * update is a square root and a division per parameter: compilers leave the
 * plain loop scalar (sqrtf may set errno), so it has AVX2 and AVX-512 twins
 * behind AIBOX_SIMD_X86 (simd.h) and a NEON one behind AIBOX_SIMD_NEON,
 * doing the same IEEE operations in the same order (no FMA:
 * -ffp-contract=off and separate multiplies and adds), so every path gives
 * the same bits; aibox_adam_kernels lists them for the tests. */
#include <math.h>

#include "ops/ops.h"
#include "ops/simd.h"

static void adam_c(const aibox_adam_coef *c, size_t n, float *p, const float *g, float *m, float *v)
{
    const float b1 = c->b1, b2 = c->b2, ob1 = c->one_minus_b1, ob2 = c->one_minus_b2;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] + c->l2 * p[i];
        m[i] = b1 * m[i] + ob1 * gi;
        v[i] = b2 * v[i] + ob2 * gi * gi;
        p[i] -= c->decay * p[i] + c->lr_t * m[i] / (sqrtf(v[i]) + c->eps);
    }
}

#ifdef AIBOX_SIMD_X86 /* (x86-64 or i386) and not AIBOX_NO_SIMD: see simd.h */
#include <immintrin.h>

#define AVX2_TARGET __attribute__((target("avx2")))
#define AVX512_TARGET __attribute__((target("avx2,avx512f")))

AVX2_TARGET static void adam_avx2(const aibox_adam_coef *c, size_t n, float *p, const float *g, float *m, float *v)
{
    const __m256 b1 = _mm256_set1_ps(c->b1), b2 = _mm256_set1_ps(c->b2), ob1 = _mm256_set1_ps(c->one_minus_b1),
                 ob2 = _mm256_set1_ps(c->one_minus_b2), l2 = _mm256_set1_ps(c->l2), lr = _mm256_set1_ps(c->lr_t),
                 eps = _mm256_set1_ps(c->eps), dec = _mm256_set1_ps(c->decay);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 pv = _mm256_loadu_ps(p + i);
        __m256 gi = _mm256_add_ps(_mm256_loadu_ps(g + i), _mm256_mul_ps(l2, pv));
        __m256 mv = _mm256_add_ps(_mm256_mul_ps(b1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(ob1, gi));
        __m256 vv = _mm256_add_ps(_mm256_mul_ps(b2, _mm256_loadu_ps(v + i)), _mm256_mul_ps(_mm256_mul_ps(ob2, gi), gi));
        __m256 st = _mm256_div_ps(_mm256_mul_ps(lr, mv), _mm256_add_ps(_mm256_sqrt_ps(vv), eps));
        _mm256_storeu_ps(m + i, mv);
        _mm256_storeu_ps(v + i, vv);
        _mm256_storeu_ps(p + i, _mm256_sub_ps(pv, _mm256_add_ps(_mm256_mul_ps(dec, pv), st)));
    }
    adam_c(c, n - i, p + i, g + i, m + i, v + i);
}

AVX512_TARGET static void adam_avx512(const aibox_adam_coef *c, size_t n, float *p, const float *g, float *m,
                                      float *v)
{
    const __m512 b1 = _mm512_set1_ps(c->b1), b2 = _mm512_set1_ps(c->b2), ob1 = _mm512_set1_ps(c->one_minus_b1),
                 ob2 = _mm512_set1_ps(c->one_minus_b2), l2 = _mm512_set1_ps(c->l2), lr = _mm512_set1_ps(c->lr_t),
                 eps = _mm512_set1_ps(c->eps), dec = _mm512_set1_ps(c->decay);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 pv = _mm512_loadu_ps(p + i);
        __m512 gi = _mm512_add_ps(_mm512_loadu_ps(g + i), _mm512_mul_ps(l2, pv));
        __m512 mv = _mm512_add_ps(_mm512_mul_ps(b1, _mm512_loadu_ps(m + i)), _mm512_mul_ps(ob1, gi));
        __m512 vv = _mm512_add_ps(_mm512_mul_ps(b2, _mm512_loadu_ps(v + i)), _mm512_mul_ps(_mm512_mul_ps(ob2, gi), gi));
        __m512 st = _mm512_div_ps(_mm512_mul_ps(lr, mv), _mm512_add_ps(_mm512_sqrt_ps(vv), eps));
        _mm512_storeu_ps(m + i, mv);
        _mm512_storeu_ps(v + i, vv);
        _mm512_storeu_ps(p + i, _mm512_sub_ps(pv, _mm512_add_ps(_mm512_mul_ps(dec, pv), st)));
    }
    adam_c(c, n - i, p + i, g + i, m + i, v + i);
}
#endif

#ifdef AIBOX_SIMD_NEON /* aarch64 and not AIBOX_NO_SIMD: see simd.h */
#include <arm_neon.h>

/* 4 parameters a vector, the operations of adam_c in its order: FSQRT and
 * FDIV are correctly rounded as sqrtf and /, and vmulq / vaddq stay
 * separate (never fused under -ffp-contract=off), so the bits are adam_c's. */
static void adam_neon(const aibox_adam_coef *c, size_t n, float *p, const float *g, float *m, float *v)
{
    const float32x4_t b1 = vdupq_n_f32(c->b1), b2 = vdupq_n_f32(c->b2), ob1 = vdupq_n_f32(c->one_minus_b1),
                      ob2 = vdupq_n_f32(c->one_minus_b2), l2 = vdupq_n_f32(c->l2), lr = vdupq_n_f32(c->lr_t),
                      eps = vdupq_n_f32(c->eps), dec = vdupq_n_f32(c->decay);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        float32x4_t pv = vld1q_f32(p + i);
        float32x4_t gi = vaddq_f32(vld1q_f32(g + i), vmulq_f32(l2, pv));
        float32x4_t mv = vaddq_f32(vmulq_f32(b1, vld1q_f32(m + i)), vmulq_f32(ob1, gi));
        float32x4_t vv = vaddq_f32(vmulq_f32(b2, vld1q_f32(v + i)), vmulq_f32(vmulq_f32(ob2, gi), gi));
        float32x4_t st = vdivq_f32(vmulq_f32(lr, mv), vaddq_f32(vsqrtq_f32(vv), eps));
        vst1q_f32(m + i, mv);
        vst1q_f32(v + i, vv);
        vst1q_f32(p + i, vsubq_f32(pv, vaddq_f32(vmulq_f32(dec, pv), st)));
    }
    adam_c(c, n - i, p + i, g + i, m + i, v + i);
}
#endif

int aibox_adam_kernels(unsigned features, aibox_adam_fn *k, const char **names, int max)
{
    aibox_adam_fn all[3];
    const char *nm[3];
    int n = 0;
    all[n] = adam_c, nm[n++] = "c";
#ifdef AIBOX_SIMD_X86
    if (features & AIBOX_CPU_AVX2) all[n] = adam_avx2, nm[n++] = "avx2";
    if ((features & (AIBOX_CPU_AVX2 | AIBOX_CPU_AVX512F)) == (AIBOX_CPU_AVX2 | AIBOX_CPU_AVX512F))
        all[n] = adam_avx512, nm[n++] = "avx512";
#endif
#ifdef AIBOX_SIMD_NEON
    if (features & AIBOX_CPU_NEON) all[n] = adam_neon, nm[n++] = "neon";
#endif
    (void)features;
    for (int i = 0; i < n && i < max; i++) {
        k[i] = all[i];
        if (names) names[i] = nm[i];
    }
    return n < max ? n : max;
}

aibox_adam_fn aibox_adam_pick(unsigned features)
{
    aibox_adam_fn k[3];
    int n = aibox_adam_kernels(features, k, NULL, 3);
    return k[n - 1]; /* the widest */
}

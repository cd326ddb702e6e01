/* PaDiM's Mahalanobis kernels: the plain-C paths every build has, and the
 * run-time choice among them and the vector ones of this architecture
 * (maha_x86.c, maha_neon.c; simd.h says which are compiled; the
 * half-precision conversions they read are in half.c). The choice is a pure function of the CPU feature mask the
 * caller passes (aibox_cpu_features(), asked once per model or context): no
 * state here. Features, not the CPU's model name: target_clones("arch=...")
 * dispatches on the model and would miss AMD CPUs. */
#include "ops/ops.h"
#include "ops/simd.h"

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
                for (int l = 0; l < 4; l++) s4[l] += aibox_half_to_float(L[k + l]) * v[k + l];
            float z = (s4[0] + s4[2]) + (s4[1] + s4[3]);
            for (; k < n; k++) z += aibox_half_to_float(L[k]) * v[k];
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
#ifdef AIBOX_SIMD_NEON
    if (features & AIBOX_CPU_NEON) {
        all[n++] = (aibox_maha_kernel){aibox_maha_f32_neon, 0, "neon-f32"};
        all[n++] = (aibox_maha_kernel){aibox_maha_f16_neon, 1, "neon-f16"};
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

/* IEEE binary16 <-> float32, the library's one conversion: PaDiM's half
 * factor (lib/padim), float16 tensors of .aibox files (lib/io/aibox_file.c)
 * and of safetensors imports all go through here. Plain C every build has,
 * and F16C (maha_x86.c) or NEON (maha_neon.c) where the caller's feature
 * mask allows; all give the same bits (tests/ops/test_maha.c). The widening
 * direction is inline in ops.h (aibox_half_to_float) for loops that widen as
 * they read. */
#include <string.h>

#include "ops/ops.h"
#include "ops/simd.h"

uint16_t aibox_float_to_half(float f)
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

void aibox_f32_to_f16(const float *x, uint16_t *h, size_t n, unsigned features)
{
#ifdef AIBOX_SIMD_X86
    if (features & AIBOX_CPU_F16C) {
        aibox_f32_to_f16_f16c(x, h, n);
        return;
    }
#endif
#ifdef AIBOX_SIMD_NEON
    if (features & AIBOX_CPU_NEON) {
        aibox_f32_to_f16_neon(x, h, n);
        return;
    }
#endif
    (void)features;
    for (size_t i = 0; i < n; i++) h[i] = aibox_float_to_half(x[i]);
}

void aibox_f16_to_f32(const uint16_t *h, float *x, size_t n, unsigned features)
{
#ifdef AIBOX_SIMD_X86
    if (features & AIBOX_CPU_F16C) {
        aibox_f16_to_f32_f16c(h, x, n);
        return;
    }
#endif
#ifdef AIBOX_SIMD_NEON
    if (features & AIBOX_CPU_NEON) {
        aibox_f16_to_f32_neon(h, x, n);
        return;
    }
#endif
    (void)features;
    for (size_t i = 0; i < n; i++) x[i] = aibox_half_to_float(h[i]);
}

const char *aibox_f16_path(unsigned features)
{
#ifdef AIBOX_SIMD_X86
    if (features & AIBOX_CPU_F16C) return "f16c";
#endif
#ifdef AIBOX_SIMD_NEON
    if (features & AIBOX_CPU_NEON) return "neon";
#endif
    (void)features;
    return "c";
}

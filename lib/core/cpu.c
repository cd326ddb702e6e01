/* Run-time CPU feature tests for the hand-written SIMD paths.
 *
 * cpuid plus the OS's XSAVE state (xgetbv), not __builtin_cpu_supports:
 * clang 14 does not know "f16c" there, and a feature the OS does not save
 * across context switches (AVX's YMM registers) is not usable even when
 * cpuid lists it. Nothing is cached: callers ask once per model or context,
 * never per element (cpuid traps to the hypervisor in a virtual machine:
 * 5.7 us a call here, on a 2-core VM). On aarch64 the HWCAP words the
 * kernel passes in the auxiliary vector (NEON, DotProd, FP16). Elsewhere 0:
 * the plain-C paths (lib/ops/simd.h). */
#include "core/core.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static unsigned long long xcr0(void)
{
    unsigned lo, hi;
    /* the instruction, not _xgetbv(): that intrinsic needs -mxsave */
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (unsigned long long)hi << 32 | lo;
}

unsigned aibox_cpu_features(void)
{
    unsigned a, b, c, d, f = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    /* AVX, FMA, F16C and AVX2 need the OS to save XMM and YMM state */
    if (!osxsave || !avx || (xcr0() & 6) != 6) return 0;
    f |= AIBOX_CPU_AVX;
    if ((c >> 12) & 1) f |= AIBOX_CPU_FMA;
    if ((c >> 29) & 1) f |= AIBOX_CPU_F16C;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
    if ((b >> 5) & 1) f |= AIBOX_CPU_AVX2;
    /* AVX-512 also needs the opmask and upper ZMM state saved */
    if ((xcr0() & 0xe6) == 0xe6) {
        if ((b >> 16) & 1) f |= AIBOX_CPU_AVX512F;
        if ((b >> 17) & 1) f |= AIBOX_CPU_AVX512DQ;
        if ((b >> 28) & 1) f |= AIBOX_CPU_AVX512CD;
        if ((b >> 30) & 1) f |= AIBOX_CPU_AVX512BW;
        if ((b >> 31) & 1) f |= AIBOX_CPU_AVX512VL;
        if ((c >> 11) & 1) f |= AIBOX_CPU_AVX512VNNI;
        if ((c >> 1) & 1) f |= AIBOX_CPU_AVX512VBMI;
    }
    return f;
}
#elif defined(__aarch64__)
#include <sys/auxv.h>
/* The kernel's HWCAP bits (asm/hwcap.h), spelt out so that an older libc's
 * headers need not name them. */
#define HWCAP_ASIMD_BIT (1ul << 1)
#define HWCAP_ASIMDHP_BIT (1ul << 10)
#define HWCAP_ASIMDDP_BIT (1ul << 20)

unsigned aibox_cpu_features(void)
{
    unsigned long hw = getauxval(AT_HWCAP);
    unsigned f = 0;
    if (hw & HWCAP_ASIMD_BIT) f |= AIBOX_CPU_NEON;
    if (hw & HWCAP_ASIMDDP_BIT) f |= AIBOX_CPU_DOTPROD;
    if (hw & HWCAP_ASIMDHP_BIT) f |= AIBOX_CPU_FP16;
    return f;
}
#else
unsigned aibox_cpu_features(void) { return 0; }
#endif

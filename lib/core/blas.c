/* OpenBLAS kernel selection.
 *
 * Debian's OpenBLAS is built with DYNAMIC_ARCH: at load it picks a kernel set
 * from the CPUID it recognises. On CPUs newer than the package (or when
 * OPENBLAS_CORETYPE pins an older set) it runs generic kernels several times
 * slower than the CPU allows (measured: 30 vs 145 GFLOPS per core). We ask
 * OpenBLAS to re-run its own dynamic initialisation with the best set this
 * CPU supports, through its exported gotoblas_dynamic_{quit,init}. Symbols
 * are weak so a non-DYNAMIC_ARCH BLAS simply keeps its kernels.
 *
 * This touches process-wide state (OpenBLAS's kernel table), exactly once,
 * under pthread_once; nothing else in libaibox is global. */
#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "core/pool.h"

extern void gotoblas_dynamic_init(void) __attribute__((weak));
extern void gotoblas_dynamic_quit(void) __attribute__((weak));
extern char *openblas_get_corename(void) __attribute__((weak));
extern void openblas_set_num_threads(int) __attribute__((weak));

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
/* Written once inside blas_once, read-only afterwards. */
static char blas_info[160];

/* Capability class of a kernel set: 3 AVX-512, 2 AVX2+FMA, 1 older. */
static int core_class(const char *name)
{
    static const char *const avx512[] = {"skylakex", "cooperlake", "sapphirerapids"};
    static const char *const avx2[] = {"haswell", "zen", "excavator", "steamroller", "skylake"};
    for (size_t i = 0; i < sizeof avx512 / sizeof *avx512; i++)
        if (!strcasecmp(name, avx512[i])) return 3;
    for (size_t i = 0; i < sizeof avx2 / sizeof *avx2; i++)
        if (!strcasecmp(name, avx2[i])) return 2;
    return 1;
}

/* x86 only (cpuid through aibox_cpu_features, which also checks that the OS
 * saves the vector state; __builtin_cpu_supports is x86- and compiler-
 * specific); elsewhere OpenBLAS keeps its own choice. Independent of
 * AIBOX_NO_SIMD, which concerns libaibox's own kernels. */
static const char *best_core_for_cpu(void)
{
#if defined(__x86_64__) || defined(__i386__)
    unsigned f = aibox_cpu_features();
    if ((f & AIBOX_CPU_AVX512_SKX) == AIBOX_CPU_AVX512_SKX) return "SkylakeX";
    if ((f & (AIBOX_CPU_AVX2 | AIBOX_CPU_FMA)) == (AIBOX_CPU_AVX2 | AIBOX_CPU_FMA)) return "Haswell";
#endif
    return NULL;
}

static const char *corename(void)
{
    const char *c = openblas_get_corename ? openblas_get_corename() : NULL;
    return c ? c : "unknown";
}

static void switch_core(const char *target)
{
    /* gotoblas_dynamic_init reads OPENBLAS_CORETYPE; set it only around the
     * call, then restore the user's environment as it was. */
    const char *old = getenv("OPENBLAS_CORETYPE");
    char saved[64] = {0};
    if (old) snprintf(saved, sizeof saved, "%s", old);
    setenv("OPENBLAS_CORETYPE", target, 1);
    gotoblas_dynamic_quit();
    gotoblas_dynamic_init();
    if (old) setenv("OPENBLAS_CORETYPE", saved, 1);
    else unsetenv("OPENBLAS_CORETYPE");
}

static void blas_setup_once(void)
{
    char before[48];
    snprintf(before, sizeof before, "%s", corename());
    const char *want = getenv("AIBOX_BLAS_CORE");
    const char *why = "kept";
    if (!gotoblas_dynamic_init || !gotoblas_dynamic_quit || !openblas_get_corename) {
        why = "BLAS without runtime kernel selection";
    } else if (want && !strcasecmp(want, "keep")) {
        why = "kept (AIBOX_BLAS_CORE=keep)";
    } else if (want && *want) {
        switch_core(want);
        why = "forced by AIBOX_BLAS_CORE";
    } else {
        const char *best = best_core_for_cpu();
        if (best && core_class(best) > core_class(before)) {
            switch_core(best);
            why = "upgraded to the best set this CPU supports";
        }
    }
    /* libaibox's contexts run their own threads; nested BLAS threads would
     * compete with them for the same cores. */
    if (openblas_set_num_threads) openblas_set_num_threads(1);
    snprintf(blas_info, sizeof blas_info, "OpenBLAS %s kernels (%s; OpenBLAS chose %s), single-threaded under libaibox's pools",
             corename(), why, before);
}

void aibox_blas_setup(void) { pthread_once(&blas_once, blas_setup_once); }

const char *aibox_blas_core(void)
{
    aibox_blas_setup();
    return corename();
}

const char *aibox_blas_info(void)
{
    aibox_blas_setup();
    return blas_info;
}


int aibox_default_num_threads(void) { return aibox_default_threads(); }

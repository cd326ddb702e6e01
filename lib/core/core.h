/* Internal helpers shared by every box of the library. */
#ifndef AIBOX_CORE_H
#define AIBOX_CORE_H

#include <stdarg.h>
#include <stddef.h>

#include "aibox.h"

#define AIBOX_INTERNAL __attribute__((visibility("hidden")))
#define AIBOX_ALIGN 64

/* Fills err (when not NULL) with code and a printf-style message; returns code
 * so callers can write `return aibox_fail(err, AIBOX_E_IO, "...")`. */
AIBOX_INTERNAL aibox_status aibox_fail(aibox_error *err, aibox_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
AIBOX_INTERNAL aibox_status aibox_vfail(aibox_error *err, aibox_status code, const char *fmt, va_list ap);
AIBOX_INTERNAL void aibox_error_clear(aibox_error *err);

/* aibox_read_file / aibox_read_fd with the buffer 64-byte aligned
 * (aibox_alloc, freed with aibox_free) when aligned is 1. */
AIBOX_INTERNAL aibox_status aibox_read_file_ex(const char *path, size_t max_bytes, int aligned, unsigned char **bytes,
                                               size_t *len, aibox_error *err);
AIBOX_INTERNAL aibox_status aibox_read_fd_ex(int fd, const char *name, size_t max_bytes, int aligned,
                                             unsigned char **bytes, size_t *len, aibox_error *err);

/* The one seed mixer: three words into one seed (splitmix64's finaliser per
 * word). Every derived draw (an epoch's shuffle, a sample's augmentation, a
 * split, an epoch's dropout) is aibox_seed_mix(seed, index, tag), never
 * timing; distinct tags keep the streams apart. */
AIBOX_INTERNAL uint64_t aibox_seed_mix(uint64_t a, uint64_t b, uint64_t c);

/* Overflow-checked size arithmetic: return 0 on overflow. */
AIBOX_INTERNAL int aibox_mul_ok(size_t a, size_t b, size_t *out);

/* Run-time CPU features (x86: cpuid, and the OS saves the AVX state;
 * aarch64: the kernel's HWCAP words); 0 elsewhere. A bit mask of AIBOX_CPU_*:
 * the x86 and the Arm bits share one mask, as a process only ever sees one
 * architecture's. */
#define AIBOX_CPU_AVX 1u
#define AIBOX_CPU_AVX2 2u
#define AIBOX_CPU_FMA 4u
#define AIBOX_CPU_F16C 8u
#define AIBOX_CPU_AVX512F 16u
#define AIBOX_CPU_AVX512DQ 32u
#define AIBOX_CPU_AVX512CD 64u
#define AIBOX_CPU_AVX512BW 128u
#define AIBOX_CPU_AVX512VL 256u
#define AIBOX_CPU_AVX512VNNI 512u /* vpdpbusd: the integer kernels (lib/quant) */
#define AIBOX_CPU_NEON 1024u     /* aarch64 Advanced SIMD (every aarch64 Linux has it) */
#define AIBOX_CPU_DOTPROD 2048u  /* sdot/udot (Armv8.2 DotProd: Cortex-A76/A78, Neoverse) */
#define AIBOX_CPU_FP16 4096u     /* half-precision arithmetic (Armv8.2 FP16) */
#define AIBOX_CPU_AVX512VBMI 8192u /* vpermt2b: byte gathers for the 8-bit first layers */
/* what OpenBLAS's SkylakeX kernels use */
#define AIBOX_CPU_AVX512_SKX \
    (AIBOX_CPU_AVX512F | AIBOX_CPU_AVX512DQ | AIBOX_CPU_AVX512CD | AIBOX_CPU_AVX512BW | AIBOX_CPU_AVX512VL)
AIBOX_INTERNAL unsigned aibox_cpu_features(void);

/* The OpenBLAS kernel set (a name OPENBLAS_CORETYPE accepts, e.g.
 * "NeoverseN1") for the aarch64 CPU that a /proc/cpuinfo text describes
 * ("CPU implementer" / "CPU part" per core, "Features"), or NULL when it
 * names no core this table knows (x86 text, garbage: keep OpenBLAS's
 * choice). On big.LITTLE CPUs the big cores decide. desc (may be NULL)
 * receives the cores, e.g. "Cortex-A76 x4". Pure: lib/core/blas.c. */
AIBOX_INTERNAL const char *aibox_blas_arm_core(const char *cpuinfo, char *desc, size_t desc_len);
/* Capability class of an OpenBLAS kernel set by name, any case (x86 1-3,
 * aarch64 1-5; unknown 1): setup switches only to a higher class. */
AIBOX_INTERNAL int aibox_blas_core_class(const char *name);

#define AIBOX_MIN(a, b) ((a) < (b) ? (a) : (b))
#define AIBOX_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Piece part of parts of [0, total): an even share [*a, *b), its boundaries on
 * multiples of unit (1: anywhere; 16: whole cache lines of floats). The one
 * rule every split of work over a context's threads uses. */
static inline void aibox_share(int total, int unit, int part, int parts, int *a, int *b)
{
    long units = ((long)total + unit - 1) / unit;
    *a = (int)AIBOX_MIN(units * part / parts * unit, (long)total);
    *b = (int)AIBOX_MIN(units * (part + 1) / parts * unit, (long)total);
}

#endif

/* PaDiM's Mahalanobis kernels (lib/ops/maha.c, maha_x86.c, maha_neon.c)
 * and the float <-> half conversions (lib/ops/half.c), every path this
 * build and CPU have (plain C always; AVX2 + FMA + F16C on x86, NEON on
 * aarch64, unless -DAIBOX_NO_SIMD) against one double-precision reference.
 *
 *  - Kernels: acc[b] = sum_i (sum_k L_ik v_bk)^2 for d = 1, 7, 15, 16, 17, 100,
 *    129 (tails of every length around the 4-, 8- and 16-wide steps) and
 *    batches of 1, 5 and 64, the factor at an odd (unaligned) address, in
 *    float32 and in half precision (the reference then uses the halves'
 *    exact values). Tolerance: the worst-case bound of float summation in
 *    any order, |z - z_ref| <= e = gamma(n + 1) sum_k |L_ik v_k| per row
 *    (gamma(m) = m u / (1 - m u), u = 2^-24, n = i + 1 terms), so
 *    |acc - ref| <= sum_i e (2 |z_ref| + e) + 2^-50 ref; the largest fraction
 *    of it used is printed. Each vector's result has the same bits alone as
 *    in a batch (PaDiM's batch invariance rests on it).
 *  - Conversions: bit-exact. float -> half rounds to nearest, ties to even
 *    (as F16C's _cvtps_ph with rounding 0): every path against a reference
 *    that picks the nearer of the two neighbouring halves in double, on the
 *    edge cases (zeros, float subnormals, half subnormals and their ties, the
 *    normal boundary, 65504 / 65519.99 / 65520, inf, quiet and signalling
 *    NaNs with payloads), a sweep of every exponent and top mantissa bits
 *    with rounding-relevant low bits, and 2^21 patterns strided over all
 *    2^32; half -> float exhaustively (65536 values). Paths compared with
 *    each other bit for bit as well. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/check.h"
#include "ops/ops.h"

#define MAX_KERNELS 8

static float bits_f(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t f_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* ------------------------------------------------------------ references */
/* float -> half, round to nearest, ties to even, by search: the largest
 * finite half magnitude not above |f|, then the nearer of it and the next
 * (distances in double, exact here). NaN: quiet, sign and the payload's top
 * 9 bits kept (Intel SDM, VCVTPS2PH). */
static uint16_t ref_f2h(float f)
{
    uint32_t u = f_bits(f);
    uint16_t sign = (uint16_t)(u >> 16 & 0x8000);
    if (isnan(f)) return (uint16_t)(sign | 0x7e00 | (u >> 13 & 0x1ff));
    double a = fabs((double)f);
    if (a >= 65520.0) return sign | 0x7c00; /* 65504 + half its step: ties away to even (inf) */
    int lo = 0, hi = 0x7bff; /* aibox_test_half_value(lo) <= a */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (aibox_test_half_value((uint16_t)mid) <= a) lo = mid;
        else hi = mid - 1;
    }
    if (lo == 0x7bff) return sign | 0x7bff;
    double d0 = a - aibox_test_half_value((uint16_t)lo), d1 = aibox_test_half_value((uint16_t)(lo + 1)) - a;
    int h = d0 < d1 ? lo : d1 < d0 ? lo + 1 : (lo & 1 ? lo + 1 : lo);
    return (uint16_t)(sign | h);
}

/* sum_i (sum_k L_ik v_k)^2 in double, and the bound on a float kernel's error. */
static void ref_maha(const double *L, const float *v, int d, double *ref, double *bound)
{
    const double u = 0x1p-24;
    double acc = 0, b = 0;
    for (int i = 0; i < d; i++) {
        const double *row = L + (size_t)i * (i + 1) / 2;
        double z = 0, s = 0;
        for (int k = 0; k <= i; k++) z += row[k] * v[k], s += fabs(row[k] * v[k]);
        double m = i + 2, e = m * u / (1 - m * u) * s;
        acc += z * z, b += e * (2 * fabs(z) + e);
    }
    *ref = acc;
    *bound = b + 0x1p-50 * acc;
}

/* ------------------------------------------------------------ the kernels */
static void test_maha_kernels(void **state)
{
    (void)state;
    static const int dims[] = {1, 7, 15, 16, 17, 100, 129}, batches[] = {1, 5, 64};
    aibox_maha_kernel k[MAX_KERNELS];
    int nk = aibox_maha_kernels(aibox_cpu_features(), k, MAX_KERNELS);
    assert_true(nk >= 2);
    char names[128] = "";
    for (int i = 0; i < nk; i++) snprintf(names + strlen(names), sizeof names - strlen(names), " %s", k[i].name);
    print_message("kernels compared:%s\n", names);
    double used[MAX_KERNELS] = {0}, rel[MAX_KERNELS] = {0};
    aibox_rng rng;
    aibox_rng_seed(&rng, 17);
    for (size_t di = 0; di < sizeof dims / sizeof *dims; di++) {
        int d = dims[di];
        size_t T = (size_t)d * (d + 1) / 2;
        float *Lf = aibox_test_floats(T + 1), *v = aibox_test_floats((size_t)64 * d);
        uint16_t *Lh = aibox_test_malloc(sizeof(uint16_t) * (T + 1));
        double *Ld = aibox_test_doubles(T), *Lhd = aibox_test_doubles(T);
        aibox_test_fill_uniform(&rng, Lf + 1, T, -1, 1);
        aibox_test_fill_uniform(&rng, v, (size_t)64 * d, -2, 2);
        aibox_f32_to_f16(Lf + 1, Lh + 1, T, 0);
        for (size_t i = 0; i < T; i++) Ld[i] = Lf[1 + i], Lhd[i] = aibox_test_half_value(Lh[1 + i]);
        for (size_t bi = 0; bi < sizeof batches / sizeof *batches; bi++) {
            int bn = batches[bi];
            for (int ki = 0; ki < nk; ki++) {
                double acc[64], one;
                const void *L = k[ki].half ? (const void *)(Lh + 1) : (const void *)(Lf + 1); /* unaligned */
                k[ki].fn(L, v, d, bn, acc);
                for (int b = 0; b < bn; b++) {
                    double ref, bound;
                    ref_maha(k[ki].half ? Lhd : Ld, v + (size_t)b * d, d, &ref, &bound);
                    double err = fabs(acc[b] - ref);
                    if (!(err <= bound))
                        print_error("%s d=%d bn=%d b=%d: %.17g vs reference %.17g (bound %.3g)\n", k[ki].name, d, bn,
                                    b, acc[b], ref, bound);
                    assert_true(err <= bound);
                    used[ki] = fmax(used[ki], err / bound);
                    rel[ki] = fmax(rel[ki], err / ref);
                    k[ki].fn(L, v + (size_t)b * d, d, 1, &one); /* alone: the same bits */
                    assert_memory_equal(&one, &acc[b], sizeof one);
                }
            }
        }
        free(Lf), free(v), free(Lh), free(Ld), free(Lhd);
    }
    for (int ki = 0; ki < nk; ki++)
        printf("# %-8s largest error: %.2e relative, %.3f of the summation bound\n", k[ki].name, rel[ki], used[ki]);
}

/* What is chosen: plain C float32 without vector kernels (features 0, or
 * AIBOX_NO_SIMD, or another architecture); the half kernel only when the
 * model keeps a half factor and a vector kernel reads it. */
static void test_maha_pick(void **state)
{
    (void)state;
    for (int have_half = 0; have_half < 2; have_half++) {
        aibox_maha_kernel c = aibox_maha_pick(0, have_half);
        assert_string_equal(c.name, "c-f32");
        assert_int_equal(c.half, 0);
    }
    aibox_maha_kernel k[MAX_KERNELS];
    unsigned f = aibox_cpu_features();
    int nk = aibox_maha_kernels(f, k, MAX_KERNELS);
    assert_string_equal(k[0].name, "c-f32"), assert_string_equal(k[1].name, "c-f16");
    aibox_maha_kernel p0 = aibox_maha_pick(f, 0), p1 = aibox_maha_pick(f, 1);
    assert_int_equal(p0.half, 0);
    if (nk == 2) { /* no vector kernel in this build or on this CPU */
        assert_string_equal(p1.name, "c-f32");
    } else {
        assert_ptr_equal(p0.fn, k[nk - 2].fn);
        assert_ptr_equal(p1.fn, k[nk - 1].fn);
        assert_int_equal(p1.half, 1);
    }
    printf("# picked: %s (float32 factor), %s (with a half factor)\n", p0.name, p1.name);
    assert_int_equal(aibox_maha_kernels(f, k, 1), 1); /* max respected */
}

/* ------------------------------------------------------------ conversions */
/* Converts n floats on every path (plain C, and the CPU's), each value alone
 * and in runs (vector bodies and tails), and requires the reference's bits. */
static long check_f2h(const float *x, size_t n, unsigned cpu)
{
    uint16_t *c = aibox_test_malloc(sizeof(uint16_t) * n), *s = aibox_test_malloc(sizeof(uint16_t) * n);
    aibox_f32_to_f16(x, c, n, 0);
    aibox_f32_to_f16(x, s, n, cpu);
    for (size_t i = 0; i < n; i++) {
        uint16_t want = ref_f2h(x[i]), one;
        aibox_f32_to_f16(x + i, &one, 1, cpu); /* the scalar tail */
        if (c[i] != want || s[i] != want || one != want)
            print_error("f32 0x%08x (%.9g): plain C 0x%04x, CPU path 0x%04x / 0x%04x, reference 0x%04x\n",
                        f_bits(x[i]), (double)x[i], c[i], s[i], one, want);
        assert_int_equal(c[i], want);
        assert_int_equal(s[i], want);
        assert_int_equal(one, want);
    }
    free(c), free(s);
    return (long)n;
}

static void test_half_edges(void **state)
{
    (void)state;
    static const uint32_t bits[] = {
        0x00000000, 0x80000000, /* +-0 */
        0x00000001, 0x807fffff, 0x00400000, /* float subnormals: 0 */
        0x33000000, 0xb3000000, /* 2^-25: a tie between 0 and 2^-24 -> 0 */
        0x33000001, 0x32ffffff, /* just above (-> 2^-24) and below (-> 0) */
        0x33400000, /* 1.5 * 2^-25 -> 2^-24 */
        0x33800000, 0x33c00000, /* 2^-24 (smallest subnormal); 1.5 * 2^-24: tie 1 | 2 -> 2 */
        0x34200000, /* 2.5 * 2^-24: tie 2 | 3 -> 2 */
        0x34600000, /* 3.5 * 2^-24: tie 3 | 4 -> 4 */
        0x387fc000, /* 1023 * 2^-24: the largest subnormal */
        0x387fe000, /* 1023.5 * 2^-24: tie -> 1024 * 2^-24, the smallest normal, by carry */
        0x387fdfff, 0x387fe001, 0x38800000, 0xb8800000,
        0x3f800000, 0x3f801000, /* 1, 1 + 2^-11: tie -> 1 */
        0x3f803000, /* 1 + 3 * 2^-11: tie -> 1 + 2^-9 (even) */
        0x3f801001, 0x3f800fff, 0x3fffffff, /* just off the tie; 2 - 2^-23 -> 2 by carry */
        0x477fe000, /* 65504, the largest half */
        0x477fefff, /* 65519.998: -> 65504 */
        0x477ff000, 0xc77ff000, /* +-65520: tie -> inf */
        0x47800000, 0x7f7fffff, 0xff7fffff, /* 65536, +-FLT_MAX: inf */
        0x7f800000, 0xff800000, /* +-inf */
        0x7fc00000, 0xffc00000, /* quiet NaNs */
        0x7f800001, 0xff800001, /* signalling NaNs, payload below the kept bits: quiet, no payload */
        0x7fa00000, 0x7f802000, 0x7fbfffff, 0x7fffffff, 0x7fc02000, /* payloads */
    };
    float x[sizeof bits / sizeof *bits];
    for (size_t i = 0; i < sizeof bits / sizeof *bits; i++) x[i] = bits_f(bits[i]);
    check_f2h(x, sizeof bits / sizeof *bits, aibox_cpu_features());
    /* by hand, for the reference itself */
    uint16_t h[8];
    float y[8] = {bits_f(0x33000000), bits_f(0x33c00000), bits_f(0x387fe000), bits_f(0x3f803000),
                  bits_f(0x477ff000), bits_f(0x477fefff), bits_f(0x7f800001), bits_f(0xffa00000)};
    static const uint16_t want[8] = {0x0000, 0x0002, 0x0400, 0x3c02, 0x7c00, 0x7bff, 0x7e00, 0xff00};
    aibox_f32_to_f16(y, h, 8, 0);
    assert_memory_equal(h, want, sizeof want);
    for (int i = 0; i < 8; i++) assert_int_equal(ref_f2h(y[i]), want[i]);
}

/* Every exponent, sign and top mantissa bits, with the bits below the
 * rounding position at 0, 1, halfway - 1, halfway, halfway + 1, all ones and
 * random; then patterns strided over all 2^32. */
static void test_half_sweep(void **state)
{
    (void)state;
    size_t cap = (size_t)1 << 22, n = 0;
    float *x = aibox_test_floats(cap);
    aibox_rng rng;
    aibox_rng_seed(&rng, 99);
    long total = 0;
    unsigned cpu = aibox_cpu_features(); /* once: cpuid traps to the hypervisor in a VM (microseconds) */
    for (uint32_t e = 0; e < 256; e++) {
        /* mantissa bits below half precision's rounding position at this exponent */
        uint32_t s = e >= 113 ? 13 : e >= 103 ? 126 - e : 23;
        if (s > 23) s = 23;
        uint32_t half = 1u << (s - 1), mask = (1u << s) - 1, tops = 1u << (23 - s);
        uint32_t lows[7] = {0, 1, half - 1, half, half + 1, mask, 0};
        for (uint32_t t = 0; t < (tops < 1024 ? tops : 1024); t++) {
            uint32_t top = tops <= 1024 ? t : (uint32_t)(aibox_rng_u64(&rng) % tops);
            lows[6] = (uint32_t)aibox_rng_u64(&rng) & mask;
            for (int l = 0; l < 7; l++)
                for (uint32_t sign = 0; sign < 2; sign++) {
                    x[n++] = bits_f(sign << 31 | e << 23 | top << s | lows[l]);
                    if (n == cap) total += check_f2h(x, n, cpu), n = 0;
                }
        }
    }
    for (uint64_t u = 12345; u < (1ull << 32); u += 2039) { /* 2^21 patterns, all exponents */
        x[n++] = bits_f((uint32_t)u);
        if (n == cap) total += check_f2h(x, n, cpu), n = 0;
    }
    total += check_f2h(x, n, cpu);
    print_message("float -> half: %ld values bit-exact on every path (c, %s)\n", total, aibox_f16_path(cpu));
    free(x);
}

/* half -> float, all 65536: exact values, NaNs quiet with the payload kept;
 * and back to the same half (NaNs: their quiet form). */
static void test_half_to_float(void **state)
{
    (void)state;
    uint16_t *h = aibox_test_malloc(sizeof(uint16_t) * 65536), *back = aibox_test_malloc(sizeof(uint16_t) * 65536);
    float *c = aibox_test_floats(65536), *s = aibox_test_floats(65536);
    for (int i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    aibox_f16_to_f32(h, c, 65536, 0);
    aibox_f16_to_f32(h, s, 65536, aibox_cpu_features());
    assert_memory_equal(c, s, sizeof(float) * 65536);
    print_message("half -> float: 65536 values, paths c and %s the same bits\n", aibox_f16_path(aibox_cpu_features()));
    for (int i = 0; i < 65536; i++) {
        int e = i >> 10 & 0x1f, m = i & 0x3ff;
        if (e == 0x1f && m) { /* NaN: quiet, sign and payload */
            assert_true(isnan(c[i]));
            assert_int_equal(f_bits(c[i]), (uint32_t)(i & 0x8000) << 16 | 0x7fc00000 | (uint32_t)m << 13);
        } else if (e == 0x1f) {
            assert_true(isinf(c[i]) && (c[i] < 0) == !!(i & 0x8000));
        } else {
            assert_true((double)c[i] == aibox_test_half_value((uint16_t)i));
            assert_int_equal(signbit(c[i]) != 0, !!(i & 0x8000));
        }
    }
    aibox_f32_to_f16(c, back, 65536, 0);
    for (int i = 0; i < 65536; i++) {
        int nan = (i & 0x7c00) == 0x7c00 && (i & 0x3ff);
        assert_int_equal(back[i], nan ? i | 0x200 : i);
    }
    free(h), free(back), free(c), free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_maha_kernels), cmocka_unit_test(test_maha_pick), cmocka_unit_test(test_half_edges),
        cmocka_unit_test(test_half_sweep), cmocka_unit_test(test_half_to_float),
    };
    return cmocka_run_group_tests_name("ops/maha", tests, NULL, NULL);
}

/* The 8-bit convolution's GEMM with AVX-512 VNNI (vpdpbusd: 64 uint8 x int8
 * products into 16 int32 sums per instruction, exact: a sum of four
 * products stays below 2^17, no saturation as vpmaddubsw's int16 has) and
 * TFLite's requantisation, 16 output channels a vector. qops.c calls it only
 * when aibox_cpu_features() has AIBOX_X86_QGEMM_NEEDS and holds the plain-C
 * twin (gemm_c) it must equal bit for bit. */
#include <string.h>

#include "ops/simd.h"
#include "ops/qops_x86.h"

#ifdef AIBOX_SIMD_X86 /* (x86-64 or i386) and not AIBOX_NO_SIMD: see simd.h */
#include <immintrin.h>

#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#define MR 6 /* the narrow kernel's row pairs a block: 12 patch rows in 6 accumulators */
typedef int32_t __attribute__((may_alias, aligned(1))) i32u; /* four patch bytes, broadcast straight from memory */

/* TFLite's SaturatingRoundingDoublingHighMul then RoundingDivideByPOT, per
 * lane (mult >= 0, so the one saturating case cannot occur). */
VNNI_TARGET __attribute__((always_inline)) static inline __m512i requant(__m512i v, __m512i mult, __m512i lsh,
                                                                          __m512i rsh)
{
    v = _mm512_sllv_epi32(v, lsh);
    /* floor((a b + 2^30) / 2^31) is TFLite's nudged, truncated quotient for
     * both signs (tests/ops/test_qops.c checks the identity); the low 32 bits
     * of a logical shift are the arithmetic one's */
    const __m512i half = _mm512_set1_epi64((long long)1 << 30);
    __m512i pe = _mm512_srli_epi64(_mm512_add_epi64(_mm512_mul_epi32(v, mult), half), 31);
    __m512i po = _mm512_srli_epi64(
        _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(v, 32), _mm512_srli_epi64(mult, 32)), half), 31);
    __m512i x = _mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64(po, 32));
    const __m512i one = _mm512_set1_epi32(1);
    __m512i mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, rsh), one);
    __m512i rem = _mm512_and_si512(x, mask);
    __m512i thr = _mm512_sub_epi32(_mm512_srai_epi32(mask, 1), _mm512_srai_epi32(x, 31));
    __m512i q = _mm512_srav_epi32(x, rsh);
    return _mm512_mask_add_epi32(q, _mm512_cmpgt_epi32_mask(rem, thr), q, one);
}

/* 16 int32 lanes (already within 0..255) as bytes into a register, then a
 * masked store: written as one, compilers fuse the two into vpmovdb to
 * memory, which AMD Zen 4/5 runs several times slower (it was the hottest
 * spot of the 8-bit GEMM). The empty asm keeps the conversion in a register. */
VNNI_TARGET static inline __m128i bytes16(__m512i v)
{
    __m128i b = _mm512_cvtepi32_epi8(v);
    __asm__("" : "+v"(b));
    return b;
}

/* ... and stored: a plain store when all 16 bytes go (masked byte stores
 * cost more there too). */
VNNI_TARGET static inline void store16(uint8_t *p, __mmask16 keep, __m512i v)
{
    if (keep == 0xFFFF) _mm_storeu_si128((__m128i *)(void *)p, bytes16(v));
    else _mm_mask_storeu_epi8(p, keep, bytes16(v));
}

/* At most 8 output channels (a first layer): two patch rows a vector, row i
 * in lanes 0-7 and row i + 1 in lanes 8-15 against the block's channels 0-7
 * in both halves, so the products and the requantisation fill the vector. */
VNNI_TARGET static void qgemm_vnni_narrow(const uint8_t *a, size_t lda, int rows, const int8_t *w,
                                          const int32_t *tab, const int32_t *rowsum, int K4, int ocg, int wofs,
                                          __m512i zp, __m512i lo, __m512i hi, uint8_t *y, size_t ldy)
{
    const int KG = K4 / 4;
#define DUP8(p) _mm512_broadcast_i64x4(_mm256_loadu_si256((const void *)(p)))
    const __m512i colc = DUP8(tab), mult = DUP8(tab + 16), lsh = DUP8(tab + 32), rsh = DUP8(tab + 48);
#undef DUP8
    const __mmask16 keep = (__mmask16)((1u << ocg) - 1);
    for (int r = 0; r < rows; r += 2 * MR) {
        const int mr = rows - r < 2 * MR ? rows - r : 2 * MR, np = (mr + 1) / 2; /* rows, row pairs */
        __m512i acc[MR];
        for (int i = 0; i < MR; i++) acc[i] = _mm512_setzero_si512();
        const uint8_t *ar = a + (size_t)r * lda;
        if (mr == 2 * MR) {
            for (int kg = 0; kg < KG; kg++) {
                __m512i b = _mm512_load_si512((const void *)(w + (size_t)kg * 64));
                b = _mm512_shuffle_i64x2(b, b, 0x44); /* channels 0-7 in both halves */
                for (int i = 0; i < MR; i++) {
                    const uint8_t *a0 = ar + (size_t)2 * i * lda + 4 * kg;
                    __m512i av = _mm512_mask_set1_epi32(_mm512_set1_epi32(*(const i32u *)(const void *)a0), 0xFF00,
                                                        *(const i32u *)(const void *)(a0 + lda));
                    acc[i] = _mm512_dpbusd_epi32(acc[i], av, b);
                }
            }
        } else {
            for (int kg = 0; kg < KG; kg++) {
                __m512i b = _mm512_load_si512((const void *)(w + (size_t)kg * 64));
                b = _mm512_shuffle_i64x2(b, b, 0x44);
                for (int i = 0; i < np; i++) {
                    const uint8_t *a0 = ar + (size_t)2 * i * lda + 4 * kg;
                    __m512i av = _mm512_set1_epi32(*(const i32u *)(const void *)a0);
                    if (2 * i + 1 < mr) av = _mm512_mask_set1_epi32(av, 0xFF00, *(const i32u *)(const void *)(a0 + lda));
                    acc[i] = _mm512_dpbusd_epi32(acc[i], av, b);
                }
            }
        }
        for (int i = 0; i < np; i++) {
            const int r0 = r + 2 * i, two = 2 * i + 1 < mr;
            __m512i v = _mm512_add_epi32(acc[i], colc);
            if (rowsum)
                v = _mm512_add_epi32(v, _mm512_mask_set1_epi32(_mm512_set1_epi32(wofs * rowsum[r0]), 0xFF00,
                                                               two ? wofs * rowsum[r0 + 1] : 0));
            v = _mm512_add_epi32(requant(v, mult, lsh, rsh), zp);
            v = _mm512_min_epi32(_mm512_max_epi32(v, lo), hi);
            __m128i b8 = bytes16(v);
            _mm_mask_storeu_epi8(y + (size_t)r0 * ldy, keep, b8);
            if (two) _mm_mask_storeu_epi8(y + (size_t)(r0 + 1) * ldy, keep, _mm_srli_si128(b8, 8));
        }
    }
}

/* M patch rows times NBL blocks of 16 channels (w: the first block's
 * weights, KG * 64 bytes a block), requantised into rows of y. Inlined with
 * M and NBL constants, so the M x NBL accumulators stay in registers. */
VNNI_TARGET __attribute__((always_inline)) static inline void
gemm_tile(const uint8_t *ar, size_t lda, const int8_t *w, int KG, const int32_t *tab, int O16, int o0, int ocg,
          const int32_t *rowsum, int wofs, __m512i zp, __m512i lo, __m512i hi, uint8_t *y, size_t ldy, const int M,
          const int NBL)
{
    __m512i acc[8][2];
    for (int i = 0; i < M; i++)
        for (int j = 0; j < NBL; j++) acc[i][j] = _mm512_setzero_si512();
    for (int kg = 0; kg < KG; kg++) {
        __m512i b[2];
        for (int j = 0; j < NBL; j++) b[j] = _mm512_load_si512((const void *)(w + ((size_t)j * KG + kg) * 64));
        for (int i = 0; i < M; i++) {
            const __m512i av = _mm512_set1_epi32(*(const i32u *)(const void *)(ar + (size_t)i * lda + 4 * kg));
            for (int j = 0; j < NBL; j++) acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], av, b[j]);
        }
    }
    for (int j = 0; j < NBL; j++) {
        const int o = o0 + 16 * j;
        const __m512i colc = _mm512_loadu_si512((const void *)(tab + o));
        const __m512i mult = _mm512_loadu_si512((const void *)(tab + O16 + o));
        const __m512i lsh = _mm512_loadu_si512((const void *)(tab + 2 * O16 + o));
        const __m512i rsh = _mm512_loadu_si512((const void *)(tab + 3 * O16 + o));
        const int left = ocg - o < 16 ? ocg - o : 16;
        const __mmask16 keep = (__mmask16)((1u << left) - 1);
        for (int i = 0; i < M; i++) {
            __m512i v = _mm512_add_epi32(acc[i][j], colc);
            if (rowsum) v = _mm512_add_epi32(v, _mm512_set1_epi32(wofs * rowsum[i]));
            v = _mm512_add_epi32(requant(v, mult, lsh, rsh), zp);
            v = _mm512_min_epi32(_mm512_max_epi32(v, lo), hi);
            store16(y + (size_t)i * ldy + o, keep, v);
        }
    }
}

/* Rows [r, rows) of one band of NBL channel blocks: tiles of M rows, the
 * rest one row at a time. */
#define GEMM_BAND(M, NBL)                                                                                         \
    do {                                                                                                        \
        int r = 0;                                                                                              \
        for (; r + (M) <= rows; r += (M))                                                                       \
            gemm_tile(a + (size_t)r * lda, lda, wb, KG, tab, O16, o0, ocg, rowsum ? rowsum + r : NULL, wofs, zp, \
                      lo, hi, y + (size_t)r * ldy, ldy, (M), (NBL));                                             \
        for (; r < rows; r++)                                                                                   \
            gemm_tile(a + (size_t)r * lda, lda, wb, KG, tab, O16, o0, ocg, rowsum ? rowsum + r : NULL, wofs, zp, \
                      lo, hi, y + (size_t)r * ldy, ldy, 1, (NBL));                                               \
    } while (0)

VNNI_TARGET void aibox_qgemm_vnni(const uint8_t *a, size_t lda, int rows, const int8_t *w, const int32_t *tab,
                                  const int32_t *rowsum, int K4, int O16, int ocg, int wofs, int out_zp, int act_min,
                                  int act_max, uint8_t *y, size_t ldy)
{
    const int KG = K4 / 4, NB = O16 / 16;
    const __m512i zp = _mm512_set1_epi32(out_zp), lo = _mm512_set1_epi32(act_min), hi = _mm512_set1_epi32(act_max);
    if (ocg <= 8) {
        qgemm_vnni_narrow(a, lda, rows, w, tab, rowsum, K4, ocg, wofs, zp, lo, hi, y, ldy);
        return;
    }
    /* bands of two channel blocks (a broadcast patch quad feeds both), 8
     * rows a tile; a last single block 6 rows a tile (measured: four-block
     * bands and 12-row tiles were slower on Zen 5) */
    for (int ob = 0; ob < NB;) {
        const int8_t *wb = w + (size_t)ob * KG * 64;
        const int o0 = ob * 16;
        if (NB - ob >= 2) {
            GEMM_BAND(8, 2);
            ob += 2;
        } else {
            GEMM_BAND(6, 1);
            ob += 1;
        }
    }
}
#undef GEMM_BAND

/* Depthwise (one channel per group), 16 channels a vector: int32 products
 * of (x - in_zp) and the packed int32 (w + wofs), padded taps skipped, then
 * the same requantisation. qops.c's depthwise_rows is the plain-C twin.
 * Border pixels go tap by tap; the interior of a row (every kx tap inside)
 * keeps a channel block's weights of the row's valid taps in registers
 * across its pixels, and the zero point's share, in_zp * sum(w), in the
 * starting value (integer sums: the order does not matter). */
VNNI_TARGET static inline __m512i dw_out(__m512i acc, const int32_t *mult, const int32_t *shift, int c, __mmask16 keep,
                                         __m512i zout, __m512i lo, __m512i hi)
{
    const __m512i zero = _mm512_setzero_si512();
    __m512i sv = _mm512_maskz_loadu_epi32(keep, shift + c);
    __m512i v = requant(acc, _mm512_maskz_loadu_epi32(keep, mult + c), _mm512_max_epi32(sv, zero),
                        _mm512_max_epi32(_mm512_sub_epi32(zero, sv), zero));
    return _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(v, zout), lo), hi);
}

VNNI_TARGET void aibox_qdw_avx512(const int32_t *packed, int C, int in_h, int in_w, int out_h, int out_w, int kh,
                                  int kw, int sh, int sw, int pt, int pl, int in_zp, int out_zp, int act_min,
                                  int act_max, const uint8_t *x, int p0, int p1, uint8_t *y)
{
    const int taps = kh * kw, per = out_h * out_w;
    const int32_t *wv = packed, *bias = wv + (size_t)taps * C, *mult = bias + C, *shift = mult + C;
    const __m512i zin = _mm512_set1_epi32(in_zp), zout = _mm512_set1_epi32(out_zp);
    const __m512i lo = _mm512_set1_epi32(act_min), hi = _mm512_set1_epi32(act_max);
    /* interior columns: ox * sw - pl >= 0 and ox * sw - pl + kw <= in_w */
    int ix_lo = (pl + sw - 1) / sw, ix_hi = in_w - kw + pl >= 0 ? (in_w - kw + pl) / sw + 1 : 0;
    if (ix_hi > out_w) ix_hi = out_w;
    for (int p = p0; p < p1;) {
        int s = p / per, oy = p % per / out_w, ox = p % out_w;
        int iy0 = oy * sh - pt;
        int ky0 = iy0 < 0 ? -iy0 : 0, ky1 = in_h - iy0 < kh ? in_h - iy0 : kh;
        const uint8_t *xs = x + (size_t)s * in_h * in_w * C;
        int run_end = ox >= ix_lo && ox < ix_hi ? ix_hi : ox + 1; /* this row's interior, or one border pixel */
        if (run_end - ox > p1 - p) run_end = ox + (p1 - p);
        if (run_end > ox + 1 && kw == 3 && kh <= 3 && C == 8 && sw == 1) {
            /* 8 channels: two neighbouring pixels a vector (their taps are 16
             * contiguous bytes), the weights and tables in both halves */
            const int rows = ky1 - ky0;
            __m512i w[3][3], base = _mm512_broadcast_i64x4(_mm256_loadu_si256((const void *)bias));
            for (int ky = ky0; ky < ky1 && ky - ky0 < 3; ky++)
                for (int kx = 0; kx < 3; kx++) {
                    w[ky - ky0][kx] = _mm512_broadcast_i64x4(_mm256_loadu_si256((const void *)(wv + (size_t)(ky * 3 + kx) * 8)));
                    base = _mm512_sub_epi32(base, _mm512_mullo_epi32(zin, w[ky - ky0][kx]));
                }
            const __m512i zero = _mm512_setzero_si512();
            const __m512i sv = _mm512_broadcast_i64x4(_mm256_loadu_si256((const void *)shift));
            const __m512i mv = _mm512_broadcast_i64x4(_mm256_loadu_si256((const void *)mult));
            const __m512i lsh = _mm512_max_epi32(sv, zero), rsh = _mm512_max_epi32(_mm512_sub_epi32(zero, sv), zero);
            for (int o = ox; o < run_end; o += 2) {
                const __mmask16 keep = run_end - o >= 2 ? 0xFFFF : 0x00FF;
                const uint8_t *xr = xs + ((size_t)(iy0 + ky0) * in_w + (o - pl)) * 8;
                __m512i acc = base;
                for (int r = 0; r < rows && r < 3; r++, xr += (size_t)in_w * 8) {
                    acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(keep, xr)), w[r][0]));
                    acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(keep, xr + 8)), w[r][1]));
                    acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(keep, xr + 16)), w[r][2]));
                }
                __m512i v = _mm512_add_epi32(requant(acc, mv, lsh, rsh), zout);
                v = _mm512_min_epi32(_mm512_max_epi32(v, lo), hi);
                store16(y + ((size_t)p + (o - ox)) * 8, keep, v);
            }
            p += run_end - ox;
            continue;
        }
        if (run_end > ox + 1 && kw == 3 && kh <= 3) {
            for (int c = 0; c < C; c += 16) {
                const int left = C - c < 16 ? C - c : 16;
                const __mmask16 keep = (__mmask16)((1u << left) - 1);
                __m512i w[3][3], base = _mm512_maskz_loadu_epi32(keep, bias + c);
                for (int ky = ky0; ky < ky1; ky++)
                    for (int kx = 0; kx < 3; kx++) {
                        w[ky - ky0 < 3 ? ky - ky0 : 0][kx] = _mm512_maskz_loadu_epi32(keep, wv + (size_t)(ky * 3 + kx) * C + c);
                        base = _mm512_sub_epi32(base, _mm512_mullo_epi32(zin, w[ky - ky0 < 3 ? ky - ky0 : 0][kx]));
                    }
                const int rows = ky1 - ky0;
                const __m512i zero = _mm512_setzero_si512(), sv = _mm512_maskz_loadu_epi32(keep, shift + c);
                const __m512i mv = _mm512_maskz_loadu_epi32(keep, mult + c), lsh = _mm512_max_epi32(sv, zero);
                const __m512i rsh = _mm512_max_epi32(_mm512_sub_epi32(zero, sv), zero);
#define DW_STORE(acc, o)                                                                                      \
    store16(y + ((size_t)p + ((o) - ox)) * C + c, keep,                                                     \
            _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(requant(acc, mv, lsh, rsh), zout), lo), hi))
                if (sw == 1 && rows == 3) {
                    /* stride 1: a step brings one new input column per kernel row, the
                     * other two (widened) kept from the pixel before */
                    const size_t rs = (size_t)in_w * C;
                    const uint8_t *x0 = xs + ((size_t)(iy0 + ky0) * in_w + (ox - pl)) * C + c;
                    __m512i a[3][2];
                    for (int r = 0; r < 3; r++)
                        a[r][0] = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(keep, x0 + r * rs)),
                        a[r][1] = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(keep, x0 + r * rs + C));
                    for (int o = ox; o < run_end; o++) {
                        const uint8_t *xn = x0 + (size_t)(o - ox + 2) * C;
                        __m512i acc = base;
                        for (int r = 0; r < 3; r++) {
                            __m512i nx = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(keep, xn + r * rs));
                            acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(a[r][0], w[r][0]));
                            acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(a[r][1], w[r][1]));
                            acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(nx, w[r][2]));
                            a[r][0] = a[r][1], a[r][1] = nx;
                        }
                        DW_STORE(acc, o);
                    }
                    continue;
                }
                for (int o = ox; o < run_end; o++) {
                    const uint8_t *xr = xs + ((size_t)(iy0 + ky0) * in_w + (o * sw - pl)) * C + c;
                    __m512i acc = base;
                    for (int r = 0; r < rows && r < 3; r++, xr += (size_t)in_w * C) {
                        acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(keep, xr)), w[r][0]));
                        acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(keep, xr + C)), w[r][1]));
                        acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(keep, xr + 2 * C)), w[r][2]));
                    }
                    DW_STORE(acc, o);
                }
#undef DW_STORE
            }
            p += run_end - ox;
            continue;
        }
        int ix0 = ox * sw - pl;
        int kx0 = ix0 < 0 ? -ix0 : 0, kx1 = in_w - ix0 < kw ? in_w - ix0 : kw;
        uint8_t *yp = y + (size_t)p * C;
        for (int c = 0; c < C; c += 16) {
            const int left = C - c < 16 ? C - c : 16;
            const __mmask16 keep = (__mmask16)((1u << left) - 1);
            __m512i acc = _mm512_maskz_loadu_epi32(keep, bias + c);
            for (int ky = ky0; ky < ky1; ky++) {
                const uint8_t *xr = xs + ((size_t)(iy0 + ky) * in_w + ix0) * C + c;
                const int32_t *wr = wv + (size_t)ky * kw * C + c;
                for (int kx = kx0; kx < kx1; kx++) {
                    __m512i xv = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(keep, xr + (size_t)kx * C));
                    __m512i wk = _mm512_maskz_loadu_epi32(keep, wr + (size_t)kx * C);
                    acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(_mm512_sub_epi32(xv, zin), wk));
                }
            }
            store16(yp + c, keep, dw_out(acc, mult, shift, c, keep, zout, lo, hi));
        }
        p++;
    }
}


/* Short kernel rows (a first layer's 3x3 of 1-4 channels): each row one
 * masked 16-byte load into its slot, no overlapping stores, and the patch
 * sum from the same registers (vpsadbw). Border cells go byte by byte. */
VNNI_TARGET void aibox_qim2col_short_avx512(const uint8_t *x, int in_h, int in_w, int in_c, int out_h, int out_w,
                                            int kh, int kw, int sh, int sw, int pt, int pl, int zp, int row4, int p0,
                                            int rows, uint8_t *col, int32_t *rowsum)
{
    const int per = out_h * out_w, row = kw * in_c, K4 = kh * row4;
    const __mmask16 mrow = (__mmask16)((1u << row) - 1), mslot = (__mmask16)((1u << row4) - 1);
    const size_t plane = (size_t)in_h * in_w * in_c;
    const __m128i zero = _mm_setzero_si128();
    int s = p0 / per, oy = p0 % per / out_w, ox = p0 % out_w;
    for (int r = 0; r < rows; r++, ox = ox + 1 < out_w ? ox + 1 : (oy = oy + 1 < out_h ? oy + 1 : (s++, 0), 0)) {
        uint8_t *c = col + (size_t)r * K4;
        const uint8_t *xs = x + (size_t)s * plane;
        const int ix0 = ox * sw - pl, inside = ix0 >= 0 && ix0 + kw <= in_w;
        __m128i sum = zero;
        for (int ky = 0; ky < kh; ky++) {
            const int iy = oy * sh - pt + ky;
            __m128i v;
            if (inside && iy >= 0 && iy < in_h) {
                v = _mm_maskz_loadu_epi8(mrow, xs + ((size_t)iy * in_w + ix0) * in_c);
            } else { /* padded cells read as the zero point */
                uint8_t t[16] = {0};
                for (int kx = 0; kx < kw; kx++) {
                    const int ix = ix0 + kx, in = iy >= 0 && iy < in_h && ix >= 0 && ix < in_w;
                    for (int ci = 0; ci < in_c; ci++)
                        t[kx * in_c + ci] = in ? xs[((size_t)iy * in_w + ix) * in_c + ci] : (uint8_t)zp;
                }
                v = _mm_loadu_si128((const __m128i *)(const void *)t);
            }
            _mm_mask_storeu_epi8(c + (size_t)ky * row4, mslot, v);
            sum = _mm_add_epi64(sum, _mm_sad_epu8(v, zero));
        }
        if (rowsum) rowsum[r] = _mm_cvtsi128_si32(_mm_add_epi64(sum, _mm_unpackhi_epi64(sum, sum)));
    }
}

/* A convolution of short kernel rows (row = kw * in_c <= 16 bytes, a first
 * layer), straight from the image instead of through patches: 16 output
 * pixels a vector (lane = pixel), one accumulator per output channel. Each
 * kernel row's four-byte quads of the 16 pixels come from two 64-byte loads
 * of a padded copy of the input row by vpermt2b (AVX-512 VBMI; a slot's
 * bytes past row zeroed by its mask), each channel's quad of weights is
 * broadcast from the packed weights, and the requantised bytes are
 * transposed back to NHWC by vpermt2b. The same integer sums as the patches
 * and aibox_qgemm_vnni: the same bytes. */
#define VBMI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")))

/* A padded input row's bytes: every 128-byte load of a 16-pixel block
 * inside it, rounded to cache lines. */
static size_t rows_len(int in_c, int out_w, int sw) { return ((size_t)(out_w - 1) * sw * in_c + 128 + 63) & ~(size_t)63; }

size_t aibox_qconv_rows_ws(int in_c, int out_w, int kh, int sw)
{
    return (size_t)kh * rows_len(in_c, out_w, sw) + 256 + 64; /* the rows, the transposition's 256 bytes, alignment */
}

/* One block of 16 pixels (m of them stored) and NC (8 or 16) channels of
 * the output block ob: inlined with NC a constant, so the accumulators stay
 * in registers. */
VBMI_TARGET __attribute__((always_inline)) static inline void
rows_block(const uint8_t *pr, size_t rlen, int kh, int Q, const __m512i *qidx, const __mmask64 *qmask,
           const int8_t *w, const int32_t *tab, int O16, int ob, int nc, int wofs, __m512i *rsv, int need_rs,
           __m512i zp, __m512i lo, __m512i hi, const __m512i *tidx, uint8_t *y, size_t ldy, int m, uint8_t *tmp,
           const int NC)
{
    __m512i acc[16], rs = _mm512_setzero_si512();
    const __m512i ones = _mm512_set1_epi8(1);
    for (int o = 0; o < NC; o++) acc[o] = _mm512_setzero_si512();
    for (int ky = 0; ky < kh; ky++) {
        const __m512i a0 = _mm512_loadu_si512((const void *)(pr + (size_t)ky * rlen));
        const __m512i a1 = _mm512_loadu_si512((const void *)(pr + (size_t)ky * rlen + 64));
        for (int q = 0; q < Q; q++) {
            const __m512i qv = _mm512_maskz_permutex2var_epi8(qmask[q], a0, qidx[q], a1);
            if (need_rs) rs = _mm512_dpbusd_epi32(rs, qv, ones);
            const int8_t *wq = w + (size_t)(ky * Q + q) * 64;
            for (int o = 0; o < NC; o++)
                acc[o] = _mm512_dpbusd_epi32(acc[o], qv, _mm512_set1_epi32(*(const i32u *)(const void *)(wq + 4 * o)));
        }
    }
    if (need_rs) *rsv = _mm512_mullo_epi32(rs, _mm512_set1_epi32(wofs));
    __m128i b[16];
    for (int o = 0; o < NC; o++) {
        const int c = ob * 16 + o;
        __m512i v = _mm512_add_epi32(acc[o], _mm512_set1_epi32(tab[c]));
        if (wofs) v = _mm512_add_epi32(v, *rsv);
        v = _mm512_add_epi32(requant(v, _mm512_set1_epi32(tab[O16 + c]), _mm512_set1_epi32(tab[2 * O16 + c]),
                                     _mm512_set1_epi32(tab[3 * O16 + c])),
                             zp);
        b[o] = _mm512_cvtepi32_epi8(_mm512_min_epi32(_mm512_max_epi32(v, lo), hi));
    }
    /* channel-major bytes (16 pixels a channel) to pixel-major: z[k] holds
     * channels 4k..4k+3, byte 16 (c % 4) + pixel */
    __m512i z[4];
    for (int k = 0; k < NC / 4; k++)
        z[k] = _mm512_inserti32x4(
            _mm512_inserti32x4(_mm512_inserti32x4(_mm512_castsi128_si512(b[4 * k]), b[4 * k + 1], 1), b[4 * k + 2], 2),
            b[4 * k + 3], 3);
    if (NC == 8) { /* 8 bytes a pixel: pixels 0-7, then 8-15 */
        const __m512i p0 = _mm512_permutex2var_epi8(z[0], tidx[0], z[1]),
                      p1 = _mm512_permutex2var_epi8(z[0], tidx[1], z[1]);
        if (ldy == 8 && nc == 8) { /* the rows are contiguous */
            const unsigned long long all = ~0ull;
            _mm512_mask_storeu_epi8(y, m >= 8 ? all : (1ull << (8 * m)) - 1, p0);
            if (m > 8) _mm512_mask_storeu_epi8(y + 64, m >= 16 ? all : (1ull << (8 * (m - 8))) - 1, p1);
            return;
        }
        _mm512_storeu_si512((void *)tmp, p0), _mm512_storeu_si512((void *)(tmp + 64), p1);
        for (int p = 0; p < m; p++)
            _mm_mask_storeu_epi8(y + (size_t)p * ldy, (__mmask16)((1u << nc) - 1),
                                 _mm_loadu_si128((const __m128i *)(const void *)(tmp + 8 * p)));
        return;
    }
    /* 16 bytes a pixel: channels 0-7 from z[0], z[1] and 8-15 from z[2], z[3]
     * by the same index, blended */
    for (int k = 0; k < 4; k++) {
        const __m512i pk = _mm512_mask_blend_epi8(0xFF00FF00FF00FF00ull, _mm512_permutex2var_epi8(z[0], tidx[2 + k], z[1]),
                                                  _mm512_permutex2var_epi8(z[2], tidx[2 + k], z[3]));
        _mm512_storeu_si512((void *)(tmp + 64 * k), pk);
    }
    for (int p = 0; p < m; p++)
        _mm_mask_storeu_epi8(y + (size_t)p * ldy, (__mmask16)((1u << nc) - 1),
                             _mm_loadu_si128((const __m128i *)(const void *)(tmp + 16 * p)));
}

VBMI_TARGET void aibox_qconv_rows_vbmi(const uint8_t *x, int in_h, int in_w, int in_c, int out_h, int out_w, int kh,
                                       int kw, int sh, int sw, int pt, int pl, int in_zp, int row4, const int8_t *w,
                                       const int32_t *tab, int O16, int ocg, int wofs, int out_zp, int act_min,
                                       int act_max, int p0, int p1, uint8_t *y, uint8_t *ws)
{
    const int row = kw * in_c, Q = row4 / 4, KG = kh * Q, per = out_h * out_w;
    const size_t rlen = rows_len(in_c, out_w, sw);
    uint8_t *pad = (uint8_t *)(((uintptr_t)ws + 63) & ~(uintptr_t)63), *tmp = pad + (size_t)kh * rlen;
    __m512i qidx[4];
    __mmask64 qmask[4];
    for (int q = 0; q < Q; q++) {
        uint8_t idx[64];
        unsigned long long mk = 0;
        for (int i = 0; i < 64; i++) {
            idx[i] = (uint8_t)(i / 4 * sw * in_c + 4 * q + i % 4);
            if (4 * q + i % 4 < row) mk |= 1ull << i;
        }
        qidx[q] = _mm512_loadu_si512((const void *)idx), qmask[q] = mk;
    }
    /* the transpositions' indices: 8 channels, byte 8 p + c of vector v is
     * channel c of pixel 8 v + p; 16 channels, byte 16 p + j of vector k is
     * channel j % 8 (of z[0..1] or z[2..3]) of pixel 4 k + p */
    __m512i tidx[6];
    for (int v = 0; v < 6; v++) {
        uint8_t idx[64];
        for (int i = 0; i < 64; i++)
            idx[i] = (uint8_t)(v < 2 ? i % 8 * 16 + 8 * v + i / 8 : i % 8 * 16 + 4 * (v - 2) + i / 16);
        tidx[v] = _mm512_loadu_si512((const void *)idx);
    }
    const __m512i zp = _mm512_set1_epi32(out_zp), lo = _mm512_set1_epi32(act_min), hi = _mm512_set1_epi32(act_max);
    const size_t plane = (size_t)in_h * in_w * in_c;
    for (int p = p0; p < p1;) {
        const int s = p / per, oy = p % per / out_w, ox0 = p % out_w;
        const int ox1 = out_w - ox0 < p1 - p ? out_w : ox0 + (p1 - p);
        /* the kernel's input rows, padded with the zero point: byte j is
         * column j / in_c - pl */
        for (int ky = 0; ky < kh; ky++) {
            uint8_t *r = pad + (size_t)ky * rlen;
            const int iy = oy * sh - pt + ky;
            const size_t left = (size_t)pl * in_c, body = (size_t)in_w * in_c;
            if (iy < 0 || iy >= in_h) {
                memset(r, in_zp, rlen);
                continue;
            }
            memset(r, in_zp, left < rlen ? left : rlen);
            if (left < rlen) memcpy(r + left, x + s * plane + (size_t)iy * in_w * in_c, body < rlen - left ? body : rlen - left);
            if (left + body < rlen) memset(r + left + body, in_zp, rlen - left - body);
        }
        for (int ox = ox0; ox < ox1; ox += 16) {
            const int m = ox1 - ox < 16 ? ox1 - ox : 16;
            const uint8_t *pr = pad + (size_t)ox * sw * in_c;
            uint8_t *yo = y + ((size_t)p + (ox - ox0)) * ocg; /* groups == 1: a pixel's ocg bytes */
            __m512i rsv = _mm512_setzero_si512();
            for (int ob = 0; ob * 16 < ocg; ob++) {
                const int nc = ocg - ob * 16 < 16 ? ocg - ob * 16 : 16;
                const int8_t *wb = w + (size_t)ob * KG * 64;
                if (nc <= 8)
                    rows_block(pr, rlen, kh, Q, qidx, qmask, wb, tab, O16, ob, nc, wofs, &rsv, wofs && ob == 0, zp, lo,
                               hi, tidx, yo + ob * 16, (size_t)ocg, m, tmp, 8);
                else
                    rows_block(pr, rlen, kh, Q, qidx, qmask, wb, tab, O16, ob, nc, wofs, &rsv, wofs && ob == 0, zp, lo,
                               hi, tidx, yo + ob * 16, (size_t)ocg, m, tmp, 16);
            }
        }
        p += ox1 - ox0;
    }
}

/* An RGB input's quantisation, 16 pixels a step: quantize_c's float steps in
 * the same order (no contraction: -ffp-contract=off), vmaxps(v, 0) giving 0
 * for NaN as its v > 0 ? v : 0 does, then the three planes' bytes
 * interleaved by pshufb. */
VNNI_TARGET void aibox_q_quantize3_avx512(const float *x, size_t plane, int n, float inv, float zp, uint8_t *q)
{
    uint8_t idx[3][3][16]; /* output vector j, channel c: byte i is pixel (16j + i) / 3's when (16j + i) % 3 == c */
    for (int j = 0; j < 3; j++)
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < 16; i++) idx[j][c][i] = (16 * j + i) % 3 == c ? (uint8_t)((16 * j + i) / 3) : 0x80;
    __m128i m[3][3];
    for (int j = 0; j < 3; j++)
        for (int c = 0; c < 3; c++) m[j][c] = _mm_loadu_si128((const __m128i *)(const void *)idx[j][c]);
    const __m512 vi = _mm512_set1_ps(inv), vz = _mm512_set1_ps(zp), half = _mm512_set1_ps(0.5f);
    const __m512 lo = _mm512_setzero_ps(), hi = _mm512_set1_ps(255.0f);
    int k = 0;
    for (; k + 16 <= n; k += 16) {
        __m128i b[3];
        for (int c = 0; c < 3; c++) {
            __m512 v = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(x + (size_t)c * plane + k), vi), vz), half);
            v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
            b[c] = _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(v));
        }
        for (int j = 0; j < 3; j++) {
            __m128i o = _mm_or_si128(_mm_or_si128(_mm_shuffle_epi8(b[0], m[j][0]), _mm_shuffle_epi8(b[1], m[j][1])),
                                     _mm_shuffle_epi8(b[2], m[j][2]));
            _mm_storeu_si128((__m128i *)(void *)(q + 3 * (size_t)k + 16 * j), o);
        }
    }
    for (; k < n; k++)
        for (int c = 0; c < 3; c++) {
            float v = x[(size_t)c * plane + k] * inv + zp + 0.5f;
            v = v > 0.0f ? v : 0.0f;
            v = v < 255.0f ? v : 255.0f;
            q[3 * (size_t)k + c] = (uint8_t)(int32_t)v;
        }
}

/* ------------------------------------------------------------ AVX2
 * The same GEMM on CPUs without VNNI: vpmaddubsw would saturate its int16
 * pair sums (255 * 127 * 2 > 32767), so both operands widen to int16 and
 * vpmaddwd sums pairs exactly into int32. Per 4 patch bytes of 4 output
 * channels one vpmaddwd leaves two pair sums per channel, added at the end
 * (vphaddd); then TFLite's requantisation, 8 channels a vector. */
#define AVX2_TARGET __attribute__((target("avx2")))
#define MR2 4

AVX2_TARGET static inline __m256i requant8(__m256i v, __m256i mult, __m256i lsh, __m256i rsh)
{
    v = _mm256_sllv_epi32(v, lsh);
    const __m256i half = _mm256_set1_epi64x((long long)1 << 30);
    /* SaturatingRoundingDoublingHighMul = floor((a b + 2^30) / 2^31), both signs
     * (tests/ops/test_qops.c checks the identity); the low 32 bits of a logical
     * shift are the arithmetic shift's */
    __m256i pe = _mm256_srli_epi64(_mm256_add_epi64(_mm256_mul_epi32(v, mult), half), 31);
    __m256i po = _mm256_srli_epi64(
        _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(v, 32), _mm256_srli_epi64(mult, 32)), half), 31);
    __m256i x = _mm256_blend_epi32(pe, _mm256_slli_epi64(po, 32), 0xAA);
    const __m256i one = _mm256_set1_epi32(1);
    __m256i mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, rsh), one);
    __m256i rem = _mm256_and_si256(x, mask);
    __m256i thr = _mm256_sub_epi32(_mm256_srai_epi32(mask, 1), _mm256_srai_epi32(x, 31));
    return _mm256_add_epi32(_mm256_srav_epi32(x, rsh), _mm256_and_si256(_mm256_cmpgt_epi32(rem, thr), one));
}

AVX2_TARGET void aibox_qgemm_avx2(const uint8_t *a, size_t lda, int rows, const int8_t *w, const int32_t *tab,
                                  const int32_t *rowsum, int K4, int O16, int ocg, int wofs, int out_zp, int act_min,
                                  int act_max, uint8_t *y, size_t ldy)
{
    const int KG = K4 / 4;
    const __m256i zp = _mm256_set1_epi32(out_zp), lo = _mm256_set1_epi32(act_min), hi = _mm256_set1_epi32(act_max);
    for (int o8 = 0; o8 < ocg; o8 += 8) { /* 8 output channels: half of a packed 16-channel block */
        const int8_t *wb = w + (size_t)(o8 / 16) * KG * 64 + (o8 % 16) * 4;
        for (int r = 0; r < rows; r += MR2) {
            const int mr = rows - r < MR2 ? rows - r : MR2;
            __m256i acc[MR2][2];
            for (int i = 0; i < MR2; i++) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
            const uint8_t *ar = a + (size_t)r * lda;
            for (int kg = 0; kg < KG; kg++) {
                __m128i w8 = _mm_loadu_si128((const __m128i *)(const void *)(wb + (size_t)kg * 64)); /* 4 ch x 4 */
                __m128i w8b = _mm_loadu_si128((const __m128i *)(const void *)(wb + (size_t)kg * 64 + 16));
                __m256i w0 = _mm256_cvtepi8_epi16(w8), w1 = _mm256_cvtepi8_epi16(w8b);
                for (int i = 0; i < mr; i++) {
                    __m256i xv = _mm256_cvtepu8_epi16(_mm_set1_epi32(*(const i32u *)(const void *)(ar + (size_t)i * lda + 4 * kg)));
                    acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(w0, xv));
                    acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(w1, xv));
                }
            }
            const __m256i colc = _mm256_loadu_si256((const __m256i *)(const void *)(tab + o8));
            const __m256i mult = _mm256_loadu_si256((const __m256i *)(const void *)(tab + O16 + o8));
            const __m256i lsh = _mm256_loadu_si256((const __m256i *)(const void *)(tab + 2 * O16 + o8));
            const __m256i rsh = _mm256_loadu_si256((const __m256i *)(const void *)(tab + 3 * O16 + o8));
            const int left = ocg - o8 < 8 ? ocg - o8 : 8;
            for (int i = 0; i < mr; i++) {
                /* pair sums (c0 c0 c1 c1 c2 c2 c3 c3 | c4 ...) to c0..c7 */
                __m256i v = _mm256_permute4x64_epi64(_mm256_hadd_epi32(acc[i][0], acc[i][1]), 0xD8);
                v = _mm256_add_epi32(v, colc);
                if (rowsum) v = _mm256_add_epi32(v, _mm256_set1_epi32(wofs * rowsum[r + i]));
                v = _mm256_add_epi32(requant8(v, mult, lsh, rsh), zp);
                v = _mm256_min_epi32(_mm256_max_epi32(v, lo), hi);
                __m128i p16 = _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
                __m128i p8 = _mm_packus_epi16(p16, p16);
                uint8_t *yo = y + (size_t)(r + i) * ldy + o8;
                if (left == 8) _mm_storel_epi64((__m128i *)(void *)yo, p8);
                else {
                    uint8_t tmp[16];
                    _mm_storeu_si128((__m128i *)(void *)tmp, p8);
                    memcpy(yo, tmp, (size_t)left);
                }
            }
        }
    }
}

/* Sums of rows patches of K bytes (lda apart): vpsadbw against zero adds 8
 * bytes into a 64-bit lane, 64 bytes a step, the tail masked. */
VNNI_TARGET void aibox_qrowsum_avx512(const uint8_t *a, size_t lda, int rows, int K, int32_t *rowsum)
{
    const __m512i zero = _mm512_setzero_si512();
    int r = 0;
    if (lda == (size_t)K && K == 8) /* contiguous rows of 8 (a 1x1 layer's input of 8 channels): 8 sums a load */
        for (; r + 8 <= rows; r += 8)
            _mm256_storeu_si256((__m256i *)(void *)(rowsum + r),
                                _mm512_cvtepi64_epi32(_mm512_sad_epu8(_mm512_loadu_si512((const void *)(a + (size_t)r * 8)), zero)));
    if (lda == (size_t)K && K == 16) /* of 16: 4 a load, each the sum of two 8-byte lanes */
        for (; r + 4 <= rows; r += 4) {
            __m512i sd = _mm512_sad_epu8(_mm512_loadu_si512((const void *)(a + (size_t)r * 16)), zero);
            sd = _mm512_maskz_compress_epi64(0x55, _mm512_add_epi64(sd, _mm512_bsrli_epi128(sd, 8)));
            _mm_storeu_si128((__m128i *)(void *)(rowsum + r), _mm256_castsi256_si128(_mm512_cvtepi64_epi32(sd)));
        }
    for (; r < rows; r++) {
        const uint8_t *ar = a + (size_t)r * lda;
        __m512i acc = zero;
        int k = 0;
        for (; k + 64 <= K; k += 64) acc = _mm512_add_epi64(acc, _mm512_sad_epu8(_mm512_loadu_si512((const void *)(ar + k)), zero));
        if (k < K) {
            __mmask64 m = (__mmask64)(~0ull >> (64 - (K - k)));
            acc = _mm512_add_epi64(acc, _mm512_sad_epu8(_mm512_maskz_loadu_epi8(m, ar + k), zero));
        }
        rowsum[r] = (int32_t)_mm512_reduce_add_epi64(acc);
    }
}

#endif

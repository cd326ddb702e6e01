/* The 8-bit kernels with Advanced SIMD (aarch64): the packed convolution's
 * GEMM with DotProd's sdot or with baseline widening multiplies, the row
 * sums, the depthwise rows and the input quantisation. Integer results are
 * exact, so each equals its plain-C twin in qops.c bit for bit; qops.c picks
 * them from aibox_cpu_features() (contracts: qops_neon.h).
 *
 * Activations are uint8 and weights int8, and Armv8.2's dot products are
 * sdot (int8 x int8) and udot (uint8 x uint8); the mixed usdot needs i8mm,
 * which Cortex-A76 and the Neoverse N1 lack. So the patches go in as
 * (a - 128), an int8 (a ^ 0x80), and the packer's fifth table adds back
 * 128 sum(w) per output channel: a per-channel constant, where udot on
 * (w + 128) would need every row's sum. */
#include <string.h>

#include "ops/simd.h"

#ifdef AIBOX_SIMD_NEON /* aarch64 and not AIBOX_NO_SIMD: see simd.h */
#include <arm_neon.h>

#include "ops/qops.h"
#include "ops/qops_neon.h"

/* GCC 12's arm_neon.h declares the dot products under armv8.2-a+dotprod and
 * refuses to inline them into a bare "+dotprod" function (the base
 * architectures differ); nothing else in these functions uses Armv8.2. */
#define DOT_TARGET __attribute__((target("arch=armv8.2-a+dotprod")))
#define MR 4 /* patch rows a block */
#define FLIP 0x80808080u /* a ^ 0x80 = a - 128 as int8, four bytes at a time */

/* TFLite's MultiplyByQuantizedMultiplier per lane: the left shift, then
 * sqrdmulh, which is SaturatingRoundingDoublingHighMul exactly (floor of
 * (2ab + 2^31) / 2^32 is TFLite's nudged, truncated quotient for both signs,
 * the identity the x86 kernels use too; it saturates the same one case), then
 * RoundingDivideByPOT as TFLite's NEON code does it: a negative value takes
 * 1 off before the round-half-up shift, so ties go away from zero. nrsh is
 * minus the right shift. */
static inline int32x4_t requant(int32x4_t v, int32x4_t mult, int32x4_t lsh, int32x4_t nrsh)
{
    v = vqrdmulhq_s32(vshlq_s32(v, lsh), mult);
    const int32x4_t fix = vshrq_n_s32(vandq_s32(v, nrsh), 31); /* -1 where v < 0 and the shift is not 0 */
    return vrshlq_s32(vqaddq_s32(v, fix), nrsh);
}

/* Four channels [o, o + 4) of a row's accumulators to clamped output values:
 * + the (a - 128) constant and the weight offset's share, requantised. */
static inline int32x4_t finish4(int32x4_t acc, const int32_t *tab, int O16, int o, int32x4_t rowterm, int32x4_t zp,
                                int32x4_t lo, int32x4_t hi)
{
    int32x4_t v = vaddq_s32(vaddq_s32(acc, vld1q_s32(tab + 4 * O16 + o)), rowterm);
    v = requant(v, vld1q_s32(tab + O16 + o), vld1q_s32(tab + 2 * O16 + o), vnegq_s32(vld1q_s32(tab + 3 * O16 + o)));
    return vminq_s32(vmaxq_s32(vaddq_s32(v, zp), lo), hi);
}

/* Values already within 0..255 to bytes. */
static inline uint8x8_t narrow8(int32x4_t a, int32x4_t b)
{
    return vqmovun_s16(vcombine_s16(vmovn_s32(a), vmovn_s32(b)));
}

static inline void store_n(uint8_t *dst, uint8x16_t v, int n)
{
    if (n >= 16) {
        vst1q_u8(dst, v);
        return;
    }
    uint8_t t[16];
    vst1q_u8(t, v);
    memcpy(dst, t, (size_t)n);
}

static inline void store_n8(uint8_t *dst, uint8x8_t v, int n)
{
    if (n >= 8) {
        vst1_u8(dst, v);
        return;
    }
    uint8_t t[8];
    vst1_u8(t, v);
    memcpy(dst, t, (size_t)n);
}

/* Row pointers of a block; rows past the end repeat the first (computed,
 * never stored), so the inner loops have no row count. */
static inline void block_rows(const uint8_t *a, size_t lda, int r, int mr, const uint8_t *ar[MR])
{
    for (int i = 0; i < MR; i++) ar[i] = a + (size_t)(r + (i < mr ? i : 0)) * lda;
}

/* One 16-byte step of each row's patch (four steps of 4 bytes), as a - 128
 * in int8, the form both GEMMs multiply. */
static inline void load_rows16(const uint8_t *ar[MR], int off, int8x16_t av[MR])
{
    const uint8x16_t flip = vdupq_n_u8(0x80);
    for (int i = 0; i < MR; i++) av[i] = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(ar[i] + off), flip));
}

/* One 4-byte step of each row, a - 128, in every lane: the last 1 to 3
 * steps of a patch, without a 16-byte load past its end. */
static inline void load_rows4(const uint8_t *ar[MR], int off, int8x16_t av[MR])
{
    for (int i = 0; i < MR; i++) {
        uint32_t u;
        memcpy(&u, ar[i] + off, 4);
        av[i] = vreinterpretq_s8_u32(vdupq_n_u32(u ^ FLIP));
    }
}

static inline int32x4_t row_term(const int32_t *rowsum, int wofs, int r)
{
    return vdupq_n_s32(rowsum ? wofs * rowsum[r] : 0);
}

/* ------------------------------------------------------------ DotProd
 * 16 output channels (one packed block) by 4 rows: 16 accumulators. A
 * 16-byte load of a row holds four steps of 4 patch bytes; sdot's indexed
 * form multiplies each 4-channel weight vector by one of them. */
#define DOT_STEP(l)                                                                                                  \
    do {                                                                                                             \
        const int8x16_t w0 = vld1q_s8(wk + 64 * (l)), w1 = vld1q_s8(wk + 64 * (l) + 16);                             \
        const int8x16_t w2 = vld1q_s8(wk + 64 * (l) + 32), w3 = vld1q_s8(wk + 64 * (l) + 48);                        \
        for (int i = 0; i < MR; i++) {                                                                               \
            acc[i][0] = vdotq_laneq_s32(acc[i][0], w0, av[i], (l));                                                  \
            acc[i][1] = vdotq_laneq_s32(acc[i][1], w1, av[i], (l));                                                  \
            acc[i][2] = vdotq_laneq_s32(acc[i][2], w2, av[i], (l));                                                  \
            acc[i][3] = vdotq_laneq_s32(acc[i][3], w3, av[i], (l));                                                  \
        }                                                                                                            \
    } while (0)

DOT_TARGET void aibox_qgemm_neon_dot(const uint8_t *a, size_t lda, int rows, const int8_t *w, const int32_t *tab,
                                     const int32_t *rowsum, int K4, int O16, int ocg, int wofs, int out_zp,
                                     int act_min, int act_max, uint8_t *y, size_t ldy)
{
    const int KG = K4 / 4, KQ = K4 / 16;
    const int32x4_t zp = vdupq_n_s32(out_zp), lo = vdupq_n_s32(act_min), hi = vdupq_n_s32(act_max);
    for (int o = 0; o < ocg; o += 16) {
        const int8_t *wb = w + (size_t)(o / 16) * KG * 64;
        for (int r = 0; r < rows; r += MR) {
            const int mr = rows - r < MR ? rows - r : MR;
            const uint8_t *ar[MR];
            block_rows(a, lda, r, mr, ar);
            int32x4_t acc[MR][4];
            for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = vdupq_n_s32(0);
            const int8_t *wk = wb;
            for (int kq = 0; kq < KQ; kq++, wk += 256) {
                int8x16_t av[MR];
                load_rows16(ar, 16 * kq, av);
                DOT_STEP(0);
                DOT_STEP(1);
                DOT_STEP(2);
                DOT_STEP(3);
            }
            for (int kg = 4 * KQ; kg < KG; kg++, wk += 64) { /* the last 1 to 3 steps: no 16-byte load past K4 */
                int8x16_t av[MR];
                load_rows4(ar, 4 * kg, av);
                for (int j = 0; j < 4; j++) {
                    const int8x16_t wj = vld1q_s8(wk + 16 * j);
                    for (int i = 0; i < MR; i++) acc[i][j] = vdotq_s32(acc[i][j], wj, av[i]);
                }
            }
            for (int i = 0; i < mr; i++) {
                const int32x4_t rt = row_term(rowsum, wofs, r + i);
                int32x4_t v[4];
                for (int j = 0; j < 4; j++) v[j] = finish4(acc[i][j], tab, O16, o + 4 * j, rt, zp, lo, hi);
                store_n(y + (size_t)(r + i) * ldy + o, vcombine_u8(narrow8(v[0], v[1]), narrow8(v[2], v[3])), ocg - o);
            }
        }
    }
}

/* ------------------------------------------------------------ baseline
 * 8 output channels (half a packed block) by 4 rows. smull multiplies 8
 * int8 pairs into int16 (at most 128 * 128: exact, where adding two such
 * products would not be) and sadalp adds neighbouring products into int32
 * lanes; each lane pair of one channel is summed at the end. */
#define MUL_STEP(l)                                                                                                  \
    do {                                                                                                             \
        const int8x16_t w0 = vld1q_s8(wk + 64 * (l)), w1 = vld1q_s8(wk + 64 * (l) + 16);                             \
        for (int i = 0; i < MR; i++) {                                                                               \
            const int8x8_t ai = vreinterpret_s8_u32(vdup_laneq_u32(vreinterpretq_u32_s8(av[i]), (l)));              \
            acc[i][0] = vpadalq_s16(acc[i][0], vmull_s8(vget_low_s8(w0), ai));                                       \
            acc[i][1] = vpadalq_s16(acc[i][1], vmull_s8(vget_high_s8(w0), ai));                                      \
            acc[i][2] = vpadalq_s16(acc[i][2], vmull_s8(vget_low_s8(w1), ai));                                       \
            acc[i][3] = vpadalq_s16(acc[i][3], vmull_s8(vget_high_s8(w1), ai));                                      \
        }                                                                                                            \
    } while (0)

void aibox_qgemm_neon(const uint8_t *a, size_t lda, int rows, const int8_t *w, const int32_t *tab,
                      const int32_t *rowsum, int K4, int O16, int ocg, int wofs, int out_zp, int act_min, int act_max,
                      uint8_t *y, size_t ldy)
{
    const int KG = K4 / 4, KQ = K4 / 16;
    const int32x4_t zp = vdupq_n_s32(out_zp), lo = vdupq_n_s32(act_min), hi = vdupq_n_s32(act_max);
    for (int o8 = 0; o8 < ocg; o8 += 8) {
        const int8_t *wb = w + (size_t)(o8 / 16) * KG * 64 + (o8 % 16) * 4;
        for (int r = 0; r < rows; r += MR) {
            const int mr = rows - r < MR ? rows - r : MR;
            const uint8_t *ar[MR];
            block_rows(a, lda, r, mr, ar);
            int32x4_t acc[MR][4];
            for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = vdupq_n_s32(0);
            const int8_t *wk = wb;
            for (int kq = 0; kq < KQ; kq++, wk += 256) {
                int8x16_t av[MR];
                load_rows16(ar, 16 * kq, av);
                MUL_STEP(0);
                MUL_STEP(1);
                MUL_STEP(2);
                MUL_STEP(3);
            }
            for (int kg = 4 * KQ; kg < KG; kg++, wk += 64) {
                int8x16_t av[MR];
                load_rows4(ar, 4 * kg, av);
                MUL_STEP(0);
            }
            const int left = ocg - o8;
            for (int i = 0; i < mr; i++) {
                const int32x4_t rt = row_term(rowsum, wofs, r + i);
                /* lanes (c k01, c k23, c+1 k01, c+1 k23) pairwise: channels c..c+3 */
                int32x4_t v0 = finish4(vpaddq_s32(acc[i][0], acc[i][1]), tab, O16, o8, rt, zp, lo, hi);
                int32x4_t v1 = finish4(vpaddq_s32(acc[i][2], acc[i][3]), tab, O16, o8 + 4, rt, zp, lo, hi);
                store_n8(y + (size_t)(r + i) * ldy + o8, narrow8(v0, v1), left);
            }
        }
    }
}

/* ------------------------------------------------------------ row sums */
void aibox_qrowsum_neon(const uint8_t *a, size_t lda, int rows, int K, int32_t *rowsum)
{
    for (int r = 0; r < rows; r++) {
        const uint8_t *ar = a + (size_t)r * lda;
        uint32x4_t acc = vdupq_n_u32(0);
        int k = 0;
        for (; k + 16 <= K; k += 16) acc = vpadalq_u16(acc, vpaddlq_u8(vld1q_u8(ar + k)));
        uint32_t sum = vaddvq_u32(acc);
        for (; k < K; k++) sum += ar[k];
        rowsum[r] = (int32_t)sum;
    }
}

/* ------------------------------------------------------------ depthwise
 * 8 channels a step: (x - in_zp) in int16, widened to int32 and multiplied
 * by the packed int32 (w + wofs), padded taps skipped, the accumulators in
 * registers across the taps; a tail of C % 8 channels as in plain C. */
void aibox_qdw_neon(const int32_t *packed, int C, int in_h, int in_w, int out_h, int out_w, int kh, int kw, int sh,
                    int sw, int pt, int pl, int in_zp, int out_zp, int act_min, int act_max, const uint8_t *x, int p0,
                    int p1, uint8_t *y)
{
    const int taps = kh * kw, per = out_h * out_w, C8 = C & ~7;
    const int32_t *wv = packed, *bias = wv + (size_t)taps * C, *mult = bias + C, *shift = mult + C;
    const uint16x8_t zin = vdupq_n_u16((uint16_t)in_zp);
    const int32x4_t zout = vdupq_n_s32(out_zp), lo = vdupq_n_s32(act_min), hi = vdupq_n_s32(act_max);
    const int32x4_t zero = vdupq_n_s32(0);
    for (int p = p0; p < p1; p++) {
        const int s = p / per, oy = p % per / out_w, ox = p % out_w;
        const int iy0 = oy * sh - pt, ix0 = ox * sw - pl;
        const int ky0 = iy0 < 0 ? -iy0 : 0, ky1 = in_h - iy0 < kh ? in_h - iy0 : kh;
        const int kx0 = ix0 < 0 ? -ix0 : 0, kx1 = in_w - ix0 < kw ? in_w - ix0 : kw;
        const uint8_t *xs = x + (size_t)s * in_h * in_w * C;
        uint8_t *yp = y + (size_t)p * C;
        for (int c = 0; c < C8; c += 8) {
            int32x4_t a0 = vld1q_s32(bias + c), a1 = vld1q_s32(bias + c + 4);
            for (int ky = ky0; ky < ky1; ky++) {
                const uint8_t *xr = xs + ((size_t)(iy0 + ky) * in_w + ix0) * C + c;
                const int32_t *wr = wv + (size_t)ky * kw * C + c;
                for (int kx = kx0; kx < kx1; kx++) {
                    /* x - in_zp in -255..255: the wrapped uint16 difference read as int16 */
                    const int16x8_t d = vreinterpretq_s16_u16(vsubq_u16(vmovl_u8(vld1_u8(xr + (size_t)kx * C)), zin));
                    a0 = vmlaq_s32(a0, vmovl_s16(vget_low_s16(d)), vld1q_s32(wr + (size_t)kx * C));
                    a1 = vmlaq_s32(a1, vmovl_high_s16(d), vld1q_s32(wr + (size_t)kx * C + 4));
                }
            }
            /* the signed shift: its positive part to the left, its negative part (minus the right shift) as is */
            const int32x4_t s0 = vld1q_s32(shift + c), s1 = vld1q_s32(shift + c + 4);
            a0 = requant(a0, vld1q_s32(mult + c), vmaxq_s32(s0, zero), vminq_s32(s0, zero));
            a1 = requant(a1, vld1q_s32(mult + c + 4), vmaxq_s32(s1, zero), vminq_s32(s1, zero));
            a0 = vminq_s32(vmaxq_s32(vaddq_s32(a0, zout), lo), hi);
            a1 = vminq_s32(vmaxq_s32(vaddq_s32(a1, zout), lo), hi);
            vst1_u8(yp + c, narrow8(a0, a1));
        }
        for (int c = C8; c < C; c++) {
            int32_t acc = bias[c];
            for (int ky = ky0; ky < ky1; ky++)
                for (int kx = kx0; kx < kx1; kx++)
                    acc += ((int32_t)xs[((size_t)(iy0 + ky) * in_w + ix0 + kx) * C + c] - in_zp) *
                           wv[(size_t)(ky * kw + kx) * C + c];
            int32_t v = aibox_q_mbqm(acc, mult[c], shift[c]) + out_zp;
            yp[c] = (uint8_t)(v < act_min ? act_min : v > act_max ? act_max : v);
        }
    }
}

/* ------------------------------------------------------------ quantisation
 * zp + x * inv + 0.5 in float, the same three roundings as plain C (no
 * fused multiply-add), clamped by fmaxnm/fminnm (a NaN goes to 0 as there),
 * then truncated. */
void aibox_q_quantize_neon(const float *x, int n, float inv, float zp, uint8_t *q)
{
    const float32x4_t vinv = vdupq_n_f32(inv), vzp = vdupq_n_f32(zp), half = vdupq_n_f32(0.5f);
    const float32x4_t fzero = vdupq_n_f32(0.0f), top = vdupq_n_f32(255.0f);
    int k = 0;
    for (; k + 16 <= n; k += 16) {
        uint16x4_t h[4];
        for (int j = 0; j < 4; j++) {
            float32x4_t v = vaddq_f32(vaddq_f32(vmulq_f32(vld1q_f32(x + k + 4 * j), vinv), vzp), half);
            v = vminnmq_f32(vmaxnmq_f32(v, fzero), top);
            h[j] = vmovn_u32(vcvtq_u32_f32(v));
        }
        vst1q_u8(q + k, vcombine_u8(vmovn_u16(vcombine_u16(h[0], h[1])), vmovn_u16(vcombine_u16(h[2], h[3]))));
    }
    for (; k < n; k++) {
        float v = x[k] * inv + zp + 0.5f;
        v = v > 0.0f ? v : 0.0f;
        v = v < 255.0f ? v : 255.0f;
        q[k] = (uint8_t)(int32_t)v;
    }
}

#endif

/* Direct convolution: ungrouped, stride 1, not 1x1, out_c a multiple of 8,
 * and either few input channels (at most 4 and AIBOX_CONVSMALL_FEW_K taps,
 * in_c x kh x kw: the first layer of an RGB network, AlexNet-256's conv1,
 * K = 27, where im2col writes 27 floats per output pixel for a GEMM with a
 * 27-deep inner dimension) or rows of at least 64 pixels and at most
 * AIBOX_CONVSMALL_MAX_K taps (AlexNet-256's conv2-4, K = 288-576: im2col
 * writes each input value 9 times and OpenBLAS copies the columns once more
 * into its panels; reading the taps from kh padded rows instead made conv2's
 * forward 1.7x faster on 2 threads). Each output row is computed from a
 * zero-padded copy of the kh input rows it reads (per thread, in the caller's
 * scratch), blocks of output channels times blocks of pixels held in
 * registers, each tap's weight broadcast. Every path accumulates one output's
 * taps in the same order (channel, row, column) with fused multiply-adds from
 * 0, then adds the bias (or scale and shift) and applies the ReLU as
 * aibox_conv_fwd_part does: the plain-C twin (fmaf) and the AVX2, AVX-512 and
 * NEON kernels give the same bits (tests/ops/test_conv.c). The same kernels
 * give a stride-1 convolution's input gradient: a convolution of the output
 * gradient with the weights transposed and flipped (aibox_convsmall_dx_desc). */
#include <math.h>
#include <string.h>

#include "ops/ops.h"
#include "ops/simd.h"

/* padded row length: the output row rounded up to 48 pixels (the widest
 * block), plus the kernel's width and slack */
static int row_len(const aibox_conv_desc *d) { return (d->out_w + 47) / 48 * 48 + d->kw + 16; }

int aibox_convsmall_eligible(const aibox_conv_desc *d)
{
    long K = (long)d->in_c * d->kh * d->kw;
    if (!(d->groups == 1 && d->sh == 1 && d->sw == 1 && d->kh * d->kw > 1 && d->out_c % 8 == 0 && d->out_w >= 1 &&
          d->out_w <= 65536))
        return 0;
    /* below 64 pixels a row is too short to pay for its copy (and OpenBLAS
     * does well on the many small planes of deeper layers) */
    return (d->in_c <= 4 && K <= AIBOX_CONVSMALL_FEW_K) || (K <= AIBOX_CONVSMALL_MAX_K && d->out_w >= 64);
}

int aibox_convsmall_dx_desc(const aibox_conv_desc *d, aibox_conv_desc *t)
{
    if (d->groups != 1 || d->sh != 1 || d->sw != 1 || d->pt > d->kh - 1 || d->pl > d->kw - 1) return 0;
    /* dx[c][iy][ix] sums w[oc][c][ky][kx] dy[oc][iy + pt - ky][ix + pl - kx]: with ky' = kh - 1 - ky that
     * is a convolution of dy padded by kh - 1 - pt on top (the bottom and right need no padding
     * of their own: the rows and columns past dy read as zeros) */
    *t = (aibox_conv_desc){.in_c = d->out_c, .in_h = d->out_h, .in_w = d->out_w, .out_c = d->in_c,
                           .out_h = d->in_h, .out_w = d->in_w, .kh = d->kh, .kw = d->kw, .sh = 1, .sw = 1,
                           .pt = d->kh - 1 - d->pt, .pl = d->kw - 1 - d->pl, .groups = 1};
    return aibox_convsmall_eligible(t);
}

void aibox_convsmall_dx_weights(const aibox_conv_desc *d, const float *w, float *wt)
{
    const int C = d->in_c, OC = d->out_c, kh = d->kh, kw = d->kw;
    for (int oc = 0; oc < OC; oc++)
        for (int c = 0; c < C; c++)
            for (int ky = 0; ky < kh; ky++)
                for (int kx = 0; kx < kw; kx++)
                    wt[(((size_t)c * OC + oc) * kh + kh - 1 - ky) * kw + kw - 1 - kx] =
                        w[(((size_t)oc * C + c) * kh + ky) * kw + kx];
}

size_t aibox_convsmall_ws_floats(const aibox_conv_desc *d)
{
    return (size_t)d->in_c * d->kh * row_len(d) + AIBOX_CONVSMALL_MAX_K;
}

/* One output row: K taps, tap t reads rows + off[t] + ox. */
typedef struct aibox_convsmall_row {
    const float *rows, *w, *scale, *b;
    const int *off;
    float *y;   /* output row oy of channel 0; channel oc at y + oc * P */
    size_t P;   /* output plane */
    int K, out_c, ow, relu;
} cs_row;

static inline float finish(const cs_row *r, int oc, float acc)
{
    float v = acc;
    if (r->scale) v = acc * r->scale[oc] + (r->b ? r->b[oc] : 0.0f);
    else if (r->b) v = acc + r->b[oc];
    return r->relu ? (v > 0.0f ? v : 0.0f) : v;
}

static void row_c(const cs_row *r)
{
    for (int oc = 0; oc < r->out_c; oc++) {
        const float *w = r->w + (size_t)oc * r->K;
        float *y = r->y + (size_t)oc * r->P;
        for (int ox = 0; ox < r->ow; ox++) {
            float acc = 0.0f;
            for (int t = 0; t < r->K; t++) acc = fmaf(w[t], r->rows[r->off[t] + ox], acc);
            y[ox] = finish(r, oc, acc);
        }
    }
}

#ifdef AIBOX_SIMD_X86 /* (x86-64 or i386) and not AIBOX_NO_SIMD: see simd.h */
#include <immintrin.h>

#define AVX2_TARGET __attribute__((target("avx2,fma")))
#define AVX512_TARGET __attribute__((target("avx2,fma,avx512f")))

/* 8 output channels x nv vectors of 16 pixels from ox (nv <= 3: up to 24
 * registers); always inlined with nv a constant, so the accumulators stay
 * in registers */
AVX512_TARGET static inline __attribute__((always_inline)) void block_avx512(const cs_row *r, int oc0, int ox,
                                                                             const int nv, const __m512 *sc,
                                                                             const __m512 *sh)
{
    const int K = r->K, OW = r->ow;
    const float *w = r->w + (size_t)oc0 * K;
    const __m512 zero = _mm512_setzero_ps();
    __m512 acc[8][3], xv[3];
    for (int j = 0; j < 8; j++)
        for (int v = 0; v < nv; v++) acc[j][v] = zero;
    for (int t = 0; t < K; t++) {
        const float *src = r->rows + r->off[t] + ox;
        for (int v = 0; v < nv; v++) xv[v] = _mm512_loadu_ps(src + 16 * v);
        for (int j = 0; j < 8; j++) {
            __m512 wv = _mm512_set1_ps(w[j * K + t]);
            for (int v = 0; v < nv; v++) acc[j][v] = _mm512_fmadd_ps(wv, xv[v], acc[j][v]);
        }
    }
    for (int j = 0; j < 8; j++) {
        float *y = r->y + (size_t)(oc0 + j) * r->P + ox;
        for (int v = 0; v < nv; v++) {
            int left = OW - ox - 16 * v;
            if (left <= 0) break;
            __m512 o = acc[j][v];
            if (r->scale) o = _mm512_add_ps(_mm512_mul_ps(o, sc[j]), sh[j]);
            else if (r->b) o = _mm512_add_ps(o, sh[j]);
            if (r->relu) o = _mm512_max_ps(o, zero); /* v > 0 ? v : 0, NaN to 0 as the C select */
            __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
            _mm512_mask_storeu_ps(y + 16 * v, m, o);
        }
    }
}

/* 48-pixel blocks, the row's last 1-32 pixels in one or two vectors (a
 * 256-pixel row would waste an eighth of a sixth 48-pixel block, 64 a third) */
AVX512_TARGET static void row_avx512(const cs_row *r)
{
    const int OW = r->ow;
    for (int oc0 = 0; oc0 < r->out_c; oc0 += 8) {
        __m512 sc[8], sh[8];
        for (int j = 0; j < 8; j++) {
            int oc = oc0 + j;
            sc[j] = _mm512_set1_ps(r->scale ? r->scale[oc] : 1.0f);
            sh[j] = _mm512_set1_ps(r->b ? r->b[oc] : 0.0f);
        }
        for (int ox = 0; ox < OW; ox += 48) {
            int left = OW - ox;
            if (left > 32) block_avx512(r, oc0, ox, 3, sc, sh);
            else if (left > 16) block_avx512(r, oc0, ox, 2, sc, sh);
            else block_avx512(r, oc0, ox, 1, sc, sh);
        }
    }
}

/* 4 output channels x 24 pixels in 12 registers */
AVX2_TARGET static void row_avx2(const cs_row *r)
{
    const int K = r->K, OW = r->ow;
    const __m256 zero = _mm256_setzero_ps();
    for (int oc0 = 0; oc0 < r->out_c; oc0 += 4) {
        const float *w = r->w + (size_t)oc0 * K;
        for (int ox = 0; ox < OW; ox += 24) {
            __m256 acc[4][3];
            for (int j = 0; j < 4; j++) acc[j][0] = acc[j][1] = acc[j][2] = zero;
            for (int t = 0; t < K; t++) {
                const float *src = r->rows + r->off[t] + ox;
                __m256 x0 = _mm256_loadu_ps(src), x1 = _mm256_loadu_ps(src + 8), x2 = _mm256_loadu_ps(src + 16);
                for (int j = 0; j < 4; j++) {
                    __m256 wv = _mm256_broadcast_ss(w + j * K + t);
                    acc[j][0] = _mm256_fmadd_ps(wv, x0, acc[j][0]);
                    acc[j][1] = _mm256_fmadd_ps(wv, x1, acc[j][1]);
                    acc[j][2] = _mm256_fmadd_ps(wv, x2, acc[j][2]);
                }
            }
            for (int j = 0; j < 4; j++) {
                int oc = oc0 + j;
                float *y = r->y + (size_t)oc * r->P + ox;
                const __m256 sc = _mm256_set1_ps(r->scale ? r->scale[oc] : 1.0f),
                             sh = _mm256_set1_ps(r->b ? r->b[oc] : 0.0f);
                for (int v = 0; v < 3; v++) {
                    int left = OW - ox - 8 * v;
                    if (left <= 0) break;
                    __m256 o = acc[j][v];
                    if (r->scale) o = _mm256_add_ps(_mm256_mul_ps(o, sc), sh);
                    else if (r->b) o = _mm256_add_ps(o, sh);
                    if (r->relu) o = _mm256_max_ps(o, zero);
                    if (left >= 8) {
                        _mm256_storeu_ps(y + 8 * v, o);
                    } else {
                        float tmp[8];
                        _mm256_storeu_ps(tmp, o);
                        memcpy(y + 8 * v, tmp, sizeof(float) * (size_t)left);
                    }
                }
            }
        }
    }
}
#endif

#ifdef AIBOX_SIMD_NEON /* aarch64 and not AIBOX_NO_SIMD: see simd.h */
#include <arm_neon.h>

/* 8 output channels x 12 pixels in 24 of the 32 registers. The block's
 * weights are first laid out tap by tap (8 a tap, two vectors), so a tap
 * costs two weight loads and three input loads for 24 FMAs, each weight
 * taken by lane (vfmaq_laneq_f32: the fused a + x w of fmaf). */
static void row_neon(const cs_row *r)
{
    const int K = r->K, OW = r->ow;
    const float32x4_t zero = vdupq_n_f32(0.0f);
    float wt[AIBOX_CONVSMALL_MAX_K * 8];
    for (int oc0 = 0; oc0 < r->out_c; oc0 += 8) {
        for (int t = 0; t < K; t++)
            for (int j = 0; j < 8; j++) wt[t * 8 + j] = r->w[(size_t)(oc0 + j) * K + t];
        for (int ox = 0; ox < OW; ox += 12) {
            float32x4_t acc[8][3];
            for (int j = 0; j < 8; j++) acc[j][0] = acc[j][1] = acc[j][2] = zero;
            for (int t = 0; t < K; t++) {
                const float *src = r->rows + r->off[t] + ox;
                const float32x4_t x0 = vld1q_f32(src), x1 = vld1q_f32(src + 4), x2 = vld1q_f32(src + 8);
                const float32x4_t wa = vld1q_f32(wt + t * 8), wb = vld1q_f32(wt + t * 8 + 4);
#define CS_TAP(j, wv, l)                                         \
    acc[j][0] = vfmaq_laneq_f32(acc[j][0], x0, wv, l);           \
    acc[j][1] = vfmaq_laneq_f32(acc[j][1], x1, wv, l);           \
    acc[j][2] = vfmaq_laneq_f32(acc[j][2], x2, wv, l)
                CS_TAP(0, wa, 0); CS_TAP(1, wa, 1); CS_TAP(2, wa, 2); CS_TAP(3, wa, 3);
                CS_TAP(4, wb, 0); CS_TAP(5, wb, 1); CS_TAP(6, wb, 2); CS_TAP(7, wb, 3);
#undef CS_TAP
            }
            for (int j = 0; j < 8; j++) {
                int oc = oc0 + j;
                float *y = r->y + (size_t)oc * r->P + ox;
                const float32x4_t sc = vdupq_n_f32(r->scale ? r->scale[oc] : 1.0f),
                                  sh = vdupq_n_f32(r->b ? r->b[oc] : 0.0f);
                for (int v = 0; v < 3; v++) {
                    int left = OW - ox - 4 * v;
                    if (left <= 0) break;
                    float32x4_t o = acc[j][v];
                    if (r->scale) o = vaddq_f32(vmulq_f32(o, sc), sh);
                    else if (r->b) o = vaddq_f32(o, sh);
                    if (r->relu) o = vbslq_f32(vcgtq_f32(o, zero), o, zero); /* v > 0 ? v : 0, NaN to 0 */
                    if (left >= 4) {
                        vst1q_f32(y + 4 * v, o);
                    } else {
                        float tmp[4];
                        vst1q_f32(tmp, o);
                        memcpy(y + 4 * v, tmp, sizeof(float) * (size_t)left);
                    }
                }
            }
        }
    }
}
#endif

int aibox_convsmall_kernels(unsigned features, aibox_convsmall_kernel *k, int max)
{
    aibox_convsmall_kernel all[3];
    int n = 0;
    all[n++] = (aibox_convsmall_kernel){row_c, "c"};
#ifdef AIBOX_SIMD_X86
    if ((features & (AIBOX_CPU_AVX2 | AIBOX_CPU_FMA)) == (AIBOX_CPU_AVX2 | AIBOX_CPU_FMA))
        all[n++] = (aibox_convsmall_kernel){row_avx2, "avx2"};
    if ((features & (AIBOX_CPU_AVX2 | AIBOX_CPU_FMA | AIBOX_CPU_AVX512F)) ==
        (AIBOX_CPU_AVX2 | AIBOX_CPU_FMA | AIBOX_CPU_AVX512F))
        all[n++] = (aibox_convsmall_kernel){row_avx512, "avx512"};
#endif
#ifdef AIBOX_SIMD_NEON
    if (features & AIBOX_CPU_NEON) all[n++] = (aibox_convsmall_kernel){row_neon, "neon"};
#endif
    (void)features;
    for (int i = 0; i < n && i < max; i++) k[i] = all[i];
    return n < max ? n : max;
}

int aibox_convsmall_pick(unsigned features, aibox_convsmall_kernel *k)
{
    aibox_convsmall_kernel all[3];
    int n = aibox_convsmall_kernels(features, all, 3);
    *k = all[n - 1];
    return n > 1; /* the plain-C twin is slower than im2col + sgemm: a vector kernel only */
}

void aibox_convsmall_fwd_part(const aibox_convsmall_kernel *k, const aibox_conv_desc *d, int n, const float *x,
                              const float *w, const float *scale, const float *b, float *y, float *ws, int relu,
                              int part, int parts)
{
    const int L = row_len(d), K = d->in_c * d->kh * d->kw;
    const size_t HW = (size_t)d->in_h * d->in_w, P = (size_t)d->out_h * d->out_w;
    int *off = (int *)(ws + (size_t)d->in_c * d->kh * L); /* K ints in the slack */
    for (int c = 0; c < d->in_c; c++)
        for (int ky = 0; ky < d->kh; ky++)
            for (int kx = 0; kx < d->kw; kx++) off[(c * d->kh + ky) * d->kw + kx] = (c * d->kh + ky) * L + kx;
    int r0, r1;
    aibox_share(d->out_h, 1, part, parts, &r0, &r1);
    /* input columns [lo, hi) of a padded row hold ix = j - pl inside [0, in_w) */
    const int lo = AIBOX_MIN(d->pl, L), hi = AIBOX_MAX(lo, AIBOX_MIN(L, d->pl + d->in_w));
    for (int s = 0; s < n; s++) {
        const float *xs = x + (size_t)s * d->in_c * HW;
        for (int oy = r0; oy < r1; oy++) {
            for (int c = 0; c < d->in_c; c++)
                for (int ky = 0; ky < d->kh; ky++) {
                    float *row = ws + (size_t)(c * d->kh + ky) * L;
                    int iy = oy - d->pt + ky;
                    if (iy < 0 || iy >= d->in_h) {
                        memset(row, 0, sizeof(float) * (size_t)L);
                        continue;
                    }
                    memset(row, 0, sizeof(float) * (size_t)lo);
                    memcpy(row + lo, xs + (size_t)c * HW + (size_t)iy * d->in_w + (lo - d->pl),
                           sizeof(float) * (size_t)(hi - lo));
                    memset(row + hi, 0, sizeof(float) * (size_t)(L - hi));
                }
            cs_row r = {.rows = ws, .w = w, .scale = scale, .b = b, .off = off,
                        .y = y + (size_t)s * d->out_c * P + (size_t)oy * d->out_w, .P = P, .K = K,
                        .out_c = d->out_c, .ow = d->out_w, .relu = relu};
            k->fn(&r);
        }
    }
}
